//! An operator instance that keeps one inner operator per source partition
//! (shard), so each partition's state can be snapshotted, dropped and
//! restored on its own (see [`crate::shard`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use serde_json::{Map, Value, json};

use crate::error::{Result, RuntimeError};
use crate::operator::{Collector, Operator};
use crate::shard::{ShardId, ShardRegistry, ShardTag, writer_id};
use crate::state::{StateContext, StateStore, StateWrites};

/// Builds an inner operator (the node's factory, for this instance).
pub(crate) type OperatorFactory = Arc<dyn Fn(usize) -> Result<Box<dyn Operator>> + Send + Sync>;

/// One instance of a sharded operator: it owns the shards `s` with
/// `s % parallelism == instance`.
pub(crate) struct Sharded {
    pub node: String,
    pub instance: usize,
    pub parallelism: usize,
    pub factory: OperatorFactory,
    pub registry: Arc<ShardRegistry>,
    /// The state store.
    pub store: StateStore,
    shards: BTreeMap<ShardId, Box<dyn Operator>>,
    seen_generation: u64,
    /// Per shard, the assignment (count) it was last loaded for.
    loaded_for: BTreeMap<ShardId, u64>,
    /// The operator's watermark: the minimum over its inputs.
    global: i64,
    /// Per shard, the watermark its operator was last given.
    given: BTreeMap<ShardId, i64>,
    /// Shards driven by their partition's own event time until it reaches
    /// the operator's (see "Event time of a partition that moves" in
    /// [`crate::shard`]).
    catching_up: BTreeSet<ShardId>,
}

impl Sharded {
    pub(crate) fn new(
        node: String,
        instance: usize,
        parallelism: usize,
        factory: OperatorFactory,
        registry: Arc<ShardRegistry>,
        store: StateStore,
    ) -> Self {
        Self {
            node,
            instance,
            parallelism,
            factory,
            registry,
            store,
            shards: BTreeMap::new(),
            seen_generation: u64::MAX,
            loaded_for: BTreeMap::new(),
            global: i64::MIN,
            given: BTreeMap::new(),
            catching_up: BTreeSet::new(),
        }
    }

    fn ctx(&self, shard: ShardId, checkpoint: u64) -> StateContext {
        StateContext::new(
            self.store.clone(),
            format!("{}/p{shard}/{}", self.node, writer_id()),
            0,
            checkpoint,
        )
    }

    fn mine(&self, shard: ShardId) -> bool {
        shard as usize % self.parallelism == self.instance
    }

    /// Load every shard this process was assigned since the last call, so
    /// a shard's state is back before its first record — or without any
    /// record (windows it still has to fire, buffered rows).
    pub(crate) fn sync(&mut self) -> Result<()> {
        let g = self.registry.generation();
        if g == self.seen_generation {
            return Ok(());
        }
        self.seen_generation = g;
        for (s, owned, assigned) in self.registry.assignments() {
            if !self.mine(s) {
                continue;
            }
            let loaded = self.loaded_for.get(&s).copied().unwrap_or(0);
            if !self.shards.contains_key(&s) && (owned || assigned > loaded) {
                self.load(s)?;
            }
            if self.shards.contains_key(&s) {
                self.loaded_for.insert(s, assigned);
            }
        }
        Ok(())
    }

    /// A fresh inner operator for `shard`, restored from the reference the
    /// registry holds for it (if any).
    fn load(&mut self, shard: ShardId) -> Result<()> {
        let mut op = (self.factory)(self.instance)?;
        let mut time = i64::MIN;
        if let Some(reference) = self.registry.take_restore(shard, &self.node) {
            // `{"shard": {"watermark", "state"}}`; older references are the
            // operator's state alone.
            let reference = match reference.get("shard") {
                Some(s) => {
                    time = s["watermark"].as_i64().unwrap_or(i64::MIN);
                    s["state"].clone()
                }
                None => reference,
            };
            tracing::info!(operator = %self.node, partition = shard, "restoring the partition's state");
            let ctx = self.ctx(shard, 0);
            let started = std::time::Instant::now();
            crate::off_worker(|| op.restore_at(&[reference], 0, &ctx))?;
            tracing::info!(
                operator = %self.node,
                partition = shard,
                ms = started.elapsed().as_millis() as u64,
                "partition's state restored"
            );
        }
        self.shards.insert(shard, op);
        self.given.insert(shard, i64::MIN);
        if self.registry.catch_up() && time < self.global {
            tracing::info!(operator = %self.node, partition = shard, partition_ms = time,
                operator_ms = self.global, "partition behind the operator's event time: it catches up on its own");
            self.catching_up.insert(shard);
        } else {
            self.catching_up.remove(&shard);
        }
        if let Some((_, _, n)) = self
            .registry
            .assignments()
            .into_iter()
            .find(|(s, _, _)| *s == shard)
        {
            self.loaded_for.insert(shard, n);
        }
        Ok(())
    }

    pub(crate) fn process_batch(
        &mut self,
        input: usize,
        batch: RecordBatch,
        shard: Option<ShardTag>,
        out: &mut Collector,
    ) -> Result<()> {
        let Some(ShardTag { id: s, time }) = shard else {
            return Err(RuntimeError::Internal(format!(
                "{}: a batch without a source partition reached an operator whose state is sharded by partition",
                self.node
            )));
        };
        self.sync()?;
        if !self.shards.contains_key(&s) {
            self.load(s)?;
        }
        out.shard = Some(self.tag(s));
        let op = self.shards.get_mut(&s).expect("loaded");
        let r = op.process_batch(input, batch, out);
        out.shard = None;
        r?;
        if self.catching_up.contains(&s) {
            // The partition's own watermark after this batch drives it.
            if time >= self.global {
                self.catching_up.remove(&s);
                tracing::info!(operator = %self.node, partition = s, "partition caught up with the operator's event time");
            }
            self.advance(s, time, out)?;
        }
        Ok(())
    }

    /// The tag of what shard `s` emits: its partition, at the watermark
    /// its operator has.
    fn tag(&self, s: ShardId) -> ShardTag {
        ShardTag {
            id: s,
            time: self.given.get(&s).copied().unwrap_or(i64::MIN),
        }
    }

    /// Gives shard `s`'s operator watermark `t` if it moves it forward.
    fn advance(&mut self, s: ShardId, t: i64, out: &mut Collector) -> Result<()> {
        let given = self.given.entry(s).or_insert(i64::MIN);
        if t <= *given {
            return Ok(());
        }
        *given = t;
        out.shard = Some(ShardTag { id: s, time: t });
        let r = match self.shards.get_mut(&s) {
            Some(op) => op.on_watermark(t, out),
            None => Ok(()),
        };
        out.shard = None;
        r
    }

    pub(crate) fn on_watermark(&mut self, t: i64, out: &mut Collector) -> Result<()> {
        self.global = self.global.max(t);
        self.sync()?;
        let shards: Vec<ShardId> = self.shards.keys().copied().collect();
        for s in shards {
            if !self.catching_up.contains(&s) {
                self.advance(s, t, out)?;
            }
        }
        Ok(())
    }

    /// Catching-up shards do not hold the output back: an operator
    /// downstream that keeps state per partition loads the same partition
    /// behind its own event time and catches up on the tags too, and
    /// holding back for a partition that stays silent would stop event
    /// time for every other partition.
    pub(crate) fn output_watermark(&self, t: i64) -> i64 {
        self.shards
            .values()
            .map(|op| op.output_watermark(t))
            .min()
            .unwrap_or(t)
    }

    pub(crate) fn state_entries(&self) -> Option<usize> {
        let mut any = false;
        let mut n = 0;
        for op in self.shards.values() {
            if let Some(k) = op.state_entries() {
                any = true;
                n += k;
            }
        }
        any.then_some(n)
    }

    pub(crate) fn on_end(&mut self, out: &mut Collector) -> Result<()> {
        self.sync()?;
        let shards: Vec<ShardId> = self.shards.keys().copied().collect();
        for s in shards {
            out.shard = Some(self.tag(s));
            self.shards.get_mut(&s).expect("held").on_end(out)?;
        }
        out.shard = None;
        Ok(())
    }

    /// Snapshot every shard into the store for checkpoint `id`, record the
    /// references for the sink, then drop the shards this process no longer
    /// owns (their last state is now in the store). Returns the manifest's
    /// entry: `{"shards": {"<partition>": reference}}`.
    /// The shards' files are queued on `writes`.
    pub(crate) fn snapshot(&mut self, id: u64, writes: &StateWrites) -> Result<Value> {
        self.sync()?;
        let mut refs = Map::new();
        let keys: Vec<ShardId> = self.shards.keys().copied().collect();
        for s in keys {
            let ctx = StateContext {
                writes: Some(writes.clone()),
                ..self.ctx(s, id)
            };
            let op = self.shards.get_mut(&s).expect("present");
            let state = op.snapshot_at(&ctx)?;
            let v = json!({ "shard": {
                "watermark": self.given.get(&s).copied().unwrap_or(i64::MIN),
                "state": state,
            }});
            self.registry.record(id, s, &self.node, v.clone());
            if !self.registry.is_owned(s) {
                tracing::info!(operator = %self.node, partition = s, "partition's state handed over");
                self.shards.remove(&s);
                self.given.remove(&s);
                self.catching_up.remove(&s);
                self.registry.keep_dropped(s, &self.node, v.clone());
            }
            refs.insert(s.to_string(), v);
        }
        // Shards of this instance not held now (restored from the manifest
        // but not assigned yet, or dropped here and not taken again) keep
        // their state in this checkpoint. Not handed to the sink: its
        // committed reference stays, and another process may own them.
        for (s, v) in self.registry.pending(&self.node) {
            if self.mine(s) && !self.shards.contains_key(&s) {
                refs.entry(s.to_string()).or_insert(v);
            }
        }
        Ok(json!({ "shards": refs }))
    }
}

/// The shard references in manifest entries written by [`Sharded::snapshot`]
/// (every instance's), as (partition, reference).
pub(crate) fn manifest_shards(states: &[Value]) -> Vec<(ShardId, Value)> {
    let mut out = Vec::new();
    for st in states {
        if let Some(m) = st.get("shards").and_then(Value::as_object) {
            for (k, v) in m {
                if let Ok(s) = k.parse::<ShardId>() {
                    out.push((s, v.clone()));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    type Seen = Arc<Mutex<Vec<String>>>;

    /// Records what it is given: `rows <ts>… (late <n>)` per batch (a row
    /// is late when its time is below the last watermark) and `wm <t>`.
    struct Recorder {
        seen: Seen,
        watermark: i64,
    }

    impl Operator for Recorder {
        fn process_batch(
            &mut self,
            _input: usize,
            batch: RecordBatch,
            _out: &mut Collector,
        ) -> Result<()> {
            let ts = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("int64");
            let late = ts.values().iter().filter(|t| **t < self.watermark).count();
            self.seen
                .lock()
                .unwrap()
                .push(format!("rows {:?} late {late}", ts.values().to_vec()));
            Ok(())
        }

        fn on_watermark(&mut self, t: i64, _out: &mut Collector) -> Result<()> {
            self.watermark = t;
            self.seen.lock().unwrap().push(format!("wm {t}"));
            Ok(())
        }
    }

    fn batch(ts: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("ts", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ts.to_vec()))]).unwrap()
    }

    fn sharded(registry: Arc<ShardRegistry>, seen: Seen) -> Sharded {
        let factory: OperatorFactory = Arc::new(move |_| {
            Ok(Box::new(Recorder {
                seen: seen.clone(),
                watermark: i64::MIN,
            }) as Box<dyn Operator>)
        });
        let dir = std::env::temp_dir().join(format!("shoal-sharded-{}", std::process::id()));
        Sharded::new("op".into(), 0, 1, factory, registry, dir.into())
    }

    fn tag(id: ShardId, time: i64) -> Option<ShardTag> {
        Some(ShardTag { id, time })
    }

    /// A partition that moves in behind the operator's event time is driven
    /// by its own watermark (its records are not late) until it catches up,
    /// then follows the operator's; its reference carries its watermark.
    #[test]
    fn a_partition_behind_the_operator_catches_up_on_its_own_event_time() {
        let registry = Arc::new(ShardRegistry::new("t").with_catch_up(true));
        let seen: Seen = Arc::default();
        let mut op = sharded(registry.clone(), seen.clone());
        let mut out = Collector::default();
        // Partition 0 drives the operator to 1 000.
        registry.assign(0, None);
        op.process_batch(0, batch(&[900, 1_000]), tag(0, 1_000), &mut out)
            .unwrap();
        op.on_watermark(1_000, &mut out).unwrap();
        // Partition 1 arrives from another process, handed over at 500.
        let mut refs = crate::shard::ShardRefs::new();
        refs.insert(
            "op".into(),
            json!({"shard": {"watermark": 500, "state": null}}),
        );
        registry.assign(1, Some(refs));
        seen.lock().unwrap().clear();
        op.process_batch(0, batch(&[600, 700]), tag(1, 650), &mut out)
            .unwrap();
        // The operator's watermark moves on: partition 1 does not follow yet.
        op.on_watermark(1_100, &mut out).unwrap();
        op.process_batch(0, batch(&[700, 800]), tag(1, 750), &mut out)
            .unwrap();
        // Its own time passes the operator's: from now on it follows.
        op.process_batch(0, batch(&[1_200]), tag(1, 1_150), &mut out)
            .unwrap();
        op.on_watermark(1_120, &mut out).unwrap();
        op.on_watermark(1_300, &mut out).unwrap();
        let seen_now = seen.lock().unwrap().clone();
        assert_eq!(
            seen_now,
            [
                // Partition 1: nothing late, its own watermarks.
                "rows [600, 700] late 0",
                "wm 650",
                "wm 1100", // partition 0
                "rows [700, 800] late 0",
                "wm 750",
                "rows [1200] late 0",
                "wm 1150",
                // 1 120: partition 0 only (partition 1 is past it).
                "wm 1120",
                "wm 1300",
                "wm 1300",
            ]
        );
        // The hand-over reference records each partition's watermark.
        let snap = op.snapshot(1, &StateWrites::default()).unwrap();
        assert_eq!(snap["shards"]["1"]["shard"]["watermark"], 1_300);
        assert_eq!(snap["shards"]["0"]["shard"]["watermark"], 1_300);
    }

    /// Without catching up (one process: a `log` source) a restored shard
    /// follows the operator's watermark at once, as before.
    #[test]
    fn without_catch_up_a_restored_shard_follows_the_operator() {
        let registry = Arc::new(ShardRegistry::new("t"));
        let seen: Seen = Arc::default();
        let mut op = sharded(registry.clone(), seen.clone());
        let mut out = Collector::default();
        registry.assign(0, None);
        op.process_batch(0, batch(&[1_000]), tag(0, 1_000), &mut out)
            .unwrap();
        op.on_watermark(1_000, &mut out).unwrap();
        registry.assign(1, None);
        op.on_watermark(1_100, &mut out).unwrap();
        seen.lock().unwrap().clear();
        op.process_batch(0, batch(&[600]), tag(1, 650), &mut out)
            .unwrap();
        assert_eq!(*seen.lock().unwrap(), ["rows [600] late 1"]);
    }
}
