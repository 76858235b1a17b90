//! State shards: a stateful operator's state for one source partition,
//! which follows the partition from process to process.
//!
//! # The model
//!
//! A source whose records of one key are all in one partition (a `kafka`
//! source with `key:`) tags every batch with its partition
//! ([`SourceContext::emit_shard`](crate::SourceContext::emit_shard)).
//! Stateless operators keep the tag; a *sharded* operator (one whose state
//! is split by that key) is fed by partition — shard `p` always goes to
//! instance `p % parallelism` ([`Partitioning::Shard`](crate::Partitioning::Shard)) —
//! and keeps one inner operator per shard. At every checkpoint barrier each
//! shard is snapshotted on its own into the shared state store, under a name
//! no other process writes (`<node>/p<partition>/<writer>/…`, [`writer_id`]),
//! and its reference is recorded here for the epoch.
//!
//! # One record says where a partition stands
//!
//! The sink that owns the source offsets (Postgres) takes, at its commit of
//! epoch `e`, the offsets of `e` *and* the shard references of `e`
//! ([`ShardRegistry::take_refs_upto`]) and stores both in one transaction
//! (`shoal_offsets.state`). A process that is assigned the partition reads
//! offset and reference from that one row ([`ShardRegistry::assign`]) and the
//! operator restores exactly that reference before it sees a record of the
//! partition. Output, offset and state of a partition are therefore always
//! of the same epoch, whatever crashed where: the reference cannot be newer
//! than the offset (both are in one row of one transaction) nor older.
//!
//! A partition revoked from this process is snapshotted once more at the
//! first barrier after the revocation — the epoch whose commit the source's
//! hand-over waits for — and then dropped ([`ShardRegistry::is_owned`]), so a
//! partition that later comes back is restored from the committed reference,
//! never from stale memory.
//!
//! Without a sink that owns the offsets (a single process with file or log
//! sinks), references live in the checkpoint manifest: on restart they are
//! put back here ([`ShardRegistry::prefill`]) and restored the same way.
//!
//! # Event time of a partition that moves
//!
//! An operator's watermark is the minimum over its inputs, and it only
//! moves forward. When a partition moves to a process whose event time is
//! ahead of the partition's (its other partitions are further on, or it
//! read further before the partition came), the partition's next records
//! would be behind that watermark: late, though the process that had the
//! partition would have taken them. So a partition's shards keep their own
//! event time, as Kafka Streams keeps stream time per task:
//!
//! * each shard's reference records the watermark the shard had when it was
//!   snapshotted (`{"shard": {"watermark": W, "state": …}}`);
//! * in a job whose processes share partitions ([`ShardRegistry::catch_up`]:
//!   Kafka sources), a shard loaded while the operator's watermark is ahead
//!   of the shard's — the restored `W`, or nothing for a partition never
//!   seen — *catches up*: it is driven by its partition's own watermark,
//!   which the source sends with every batch ([`ShardTag`]), not by the
//!   operator's, until its own reaches the operator's; from then on it
//!   follows the operator's watermark like every other shard;
//! * what a catching-up shard emits carries its time in the tag, so a
//!   downstream operator that keeps state per partition (it loaded the same
//!   partition, behind too) catches up on it in the same way. The
//!   operator's output watermark is not held back for a catching-up shard
//!   (a silent partition would stop event time for all the others): an
//!   operator downstream that does *not* keep state per partition may see
//!   its rows as late — which a job of several processes cannot have, as
//!   every stateful operator there is keyed by the source's key.
//!
//! A catching-up partition that receives no records stays where it is (its
//! windows wait for its next records), as a Kafka Streams task does.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};

/// A source partition, as a batch's tag.
pub type ShardId = u32;

/// What a batch of one source partition carries: the partition, and the
/// partition's own watermark after it (its largest event time seen minus
/// the allowed delay; `i64::MIN` when unknown). See "Event time of a
/// partition that moves" in the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardTag {
    /// The source partition.
    pub id: ShardId,
    /// The partition's own watermark (ms).
    pub time: i64,
}

/// One partition's state references, by operator node id.
pub type ShardRefs = Map<String, Value>;

#[derive(Debug, Default)]
struct Entry {
    owned: bool,
    /// How many times it was assigned in this run (0: never).
    assignments: u64,
    /// References to restore from, by operator, not yet taken.
    pending: ShardRefs,
}

/// What this process knows about its partitions' shards; see the module
/// docs. One per job, shared by the partitioned source's instances, the
/// sharded operators and the sink that commits references.
#[derive(Debug, Default)]
pub struct ShardRegistry {
    /// The partitioned source's topic.
    topic: Option<String>,
    entries: Mutex<HashMap<ShardId, Entry>>,
    /// Bumped on every change of ownership, so operators notice cheaply.
    generation: AtomicU64,
    /// Shards loaded behind the operator's event time catch up on their
    /// partition's own (see the module docs).
    catch_up: bool,
    /// References snapshotted per epoch, waiting for the sink's commit.
    epochs: Mutex<BTreeMap<u64, HashMap<ShardId, ShardRefs>>>,
}

impl ShardRegistry {
    /// An empty registry for the partitions of `topic`.
    pub fn new(topic: &str) -> Self {
        Self {
            topic: Some(topic.to_string()),
            ..Self::default()
        }
    }

    /// Let shards loaded behind an operator's event time catch up on their
    /// partition's own (a job whose processes share the partitions).
    pub fn with_catch_up(mut self, on: bool) -> Self {
        self.catch_up = on;
        self
    }

    /// Whether shards catch up (see [`ShardRegistry::with_catch_up`]).
    pub fn catch_up(&self) -> bool {
        self.catch_up
    }

    /// The topic whose partitions are the shards.
    pub fn topic(&self) -> Option<String> {
        self.topic.clone()
    }

    /// The source was assigned `shard`. `refs` is the committed reference
    /// stored with its start offset (`None`: keep what [`Self::prefill`]
    /// put, or start empty).
    pub fn assign(&self, shard: ShardId, refs: Option<ShardRefs>) {
        let mut e = self.entries.lock().expect("shard lock");
        let entry = e.entry(shard).or_default();
        entry.owned = true;
        entry.assignments += 1;
        if let Some(r) = refs {
            entry.pending = r;
        }
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The source no longer reads `shard`: operators snapshot it once more
    /// at the next barrier and drop it. A shard assigned and revoked before
    /// an operator loaded it keeps its reference: the operator still loads
    /// it (its windows may fire, end of input flushes it) and commits its
    /// state once more.
    pub fn revoke(&self, shard: ShardId) {
        let mut e = self.entries.lock().expect("shard lock");
        if let Some(entry) = e.get_mut(&shard) {
            entry.owned = false;
        }
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// References to restore from after a restart from a checkpoint
    /// manifest (operator `node`'s shards).
    pub fn prefill(&self, node: &str, shards: impl IntoIterator<Item = (ShardId, Value)>) {
        let mut e = self.entries.lock().expect("shard lock");
        for (shard, v) in shards {
            e.entry(shard)
                .or_default()
                .pending
                .insert(node.to_string(), v);
        }
    }

    /// Changes whenever ownership changes.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether this process reads `shard` now.
    pub fn is_owned(&self, shard: ShardId) -> bool {
        let e = self.entries.lock().expect("shard lock");
        e.get(&shard).is_some_and(|x| x.owned)
    }

    /// Every shard assigned in this run: (shard, owned now, how many times
    /// assigned). An operator holds the owned ones, and loads a shard
    /// assigned since it last loaded it even when it is revoked again
    /// already (its end-of-input flush and its state must not be skipped).
    pub fn assignments(&self) -> Vec<(ShardId, bool, u64)> {
        let e = self.entries.lock().expect("shard lock");
        let mut v: Vec<(ShardId, bool, u64)> = e
            .iter()
            .filter(|(_, x)| x.assignments > 0)
            .map(|(s, x)| (*s, x.owned, x.assignments))
            .collect();
        v.sort_unstable();
        v
    }

    /// Operator `node` dropped `shard` (revoked) after snapshotting it as
    /// `reference`: if the shard comes back to this process without a
    /// committed reference (another member of this process takes it, with a
    /// sink that does not store references), it continues from there.
    pub fn keep_dropped(&self, shard: ShardId, node: &str, reference: Value) {
        let mut e = self.entries.lock().expect("shard lock");
        e.entry(shard)
            .or_default()
            .pending
            .insert(node.to_string(), reference);
    }

    /// Operator `node`'s references not taken yet (shards restored from a
    /// manifest or dropped here, and not loaded since), without taking them:
    /// a checkpoint must carry them on, or a restore from it would lose
    /// those shards' state.
    pub fn pending(&self, node: &str) -> Vec<(ShardId, Value)> {
        let e = self.entries.lock().expect("shard lock");
        let mut v: Vec<(ShardId, Value)> = e
            .iter()
            .filter_map(|(s, x)| Some((*s, x.pending.get(node)?.clone())))
            .collect();
        v.sort_unstable_by_key(|(s, _)| *s);
        v
    }

    /// Take operator `node`'s reference to restore `shard` from, if any.
    pub fn take_restore(&self, shard: ShardId, node: &str) -> Option<Value> {
        let mut e = self.entries.lock().expect("shard lock");
        e.get_mut(&shard)?.pending.remove(node)
    }

    /// Operator `node` snapshotted `shard` at barrier `epoch` as `reference`.
    pub fn record(&self, epoch: u64, shard: ShardId, node: &str, reference: Value) {
        let mut epochs = self.epochs.lock().expect("shard lock");
        epochs
            .entry(epoch)
            .or_default()
            .entry(shard)
            .or_default()
            .insert(node.to_string(), reference);
    }

    /// Remove and return the references of every epoch up to `epoch`, the
    /// newest winning per (shard, operator): what the sink commits with
    /// epoch `epoch`'s offsets.
    pub fn take_refs_upto(&self, epoch: u64) -> BTreeMap<ShardId, ShardRefs> {
        let mut epochs = self.epochs.lock().expect("shard lock");
        let later = epochs.split_off(&(epoch + 1));
        let done = std::mem::replace(&mut *epochs, later);
        let mut merged: BTreeMap<ShardId, ShardRefs> = BTreeMap::new();
        for (_, shards) in done {
            for (s, refs) in shards {
                merged.entry(s).or_default().extend(refs);
            }
        }
        merged
    }
}

/// A name for this process's state files that no other process uses: the
/// process id and its start time (ns). Files are written once under it and
/// never overwritten, so a zombie process cannot clobber a live owner's.
pub fn writer_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("w{:x}-{:x}", std::process::id(), nanos)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn assign_revoke_and_restore_references() {
        let r = ShardRegistry::new("t");
        let g0 = r.generation();
        let mut refs = ShardRefs::new();
        refs.insert("over".into(), json!({"a": 1}));
        r.assign(3, Some(refs));
        assert!(r.generation() > g0);
        assert!(r.is_owned(3));
        assert!(!r.is_owned(4));
        assert_eq!(r.take_restore(3, "over"), Some(json!({"a": 1})));
        assert_eq!(r.take_restore(3, "over"), None, "taken once");
        r.revoke(3);
        assert!(!r.is_owned(3));
        assert_eq!(r.assignments(), vec![(3, false, 1)]);
        // Assigned and revoked before an operator loaded it: still listed
        // (its end-of-input flush must not be lost); a prefilled shard never
        // assigned here is another process's.
        let mut refs = ShardRefs::new();
        refs.insert("win".into(), json!(1));
        r.assign(5, Some(refs));
        r.revoke(5);
        r.prefill("win", [(6, json!(2))]);
        assert_eq!(r.assignments(), vec![(3, false, 1), (5, false, 1)]);
        // Dropped and taken again by another member of this process: it
        // continues from the dropped state.
        r.keep_dropped(5, "win", json!("dropped"));
        assert_eq!(r.pending("win"), vec![(5, json!("dropped")), (6, json!(2))]);
        r.assign(5, None);
        assert_eq!(r.assignments()[1], (5, true, 2));
        assert_eq!(r.take_restore(5, "win"), Some(json!("dropped")));
    }

    #[test]
    fn prefill_survives_an_assign_without_references() {
        let r = ShardRegistry::new("t");
        r.prefill("w", [(1, json!("x"))]);
        r.assign(1, None);
        assert_eq!(r.take_restore(1, "w"), Some(json!("x")));
    }

    #[test]
    fn references_are_taken_per_epoch_newest_winning() {
        let r = ShardRegistry::new("t");
        r.record(1, 0, "over", json!(1));
        r.record(1, 1, "over", json!(10));
        r.record(2, 0, "over", json!(2));
        r.record(2, 0, "dedup", json!(20));
        r.record(3, 1, "over", json!(11));
        let t = r.take_refs_upto(2);
        assert_eq!(t[&0]["over"], json!(2));
        assert_eq!(t[&0]["dedup"], json!(20));
        assert_eq!(t[&1]["over"], json!(10));
        assert!(r.take_refs_upto(2).is_empty());
        assert_eq!(r.take_refs_upto(9)[&1]["over"], json!(11));
    }
}
