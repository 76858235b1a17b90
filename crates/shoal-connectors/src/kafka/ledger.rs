//! Source offsets handed from Kafka sources to the one transactional sink
//! that stores them atomically with its output.
//!
//! At every checkpoint barrier each Kafka source instance records, for that
//! epoch, the next offset of every partition it emitted records of (owned,
//! or released since the previous barrier). When the sink commits epoch `n`
//! it takes the offsets of every epoch up to `n` and writes them in the same
//! transaction as the rows: a Kafka sink sends them to the source's consumer
//! group inside its producer transaction, a Postgres sink upserts them into
//! `shoal_offsets`. Where the sink keeps them is then the one truth about
//! where each partition resumes — in this process after a crash, or in
//! another process of the same group after a rebalance.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use shoal_runtime::Result;

/// `(topic, partition)`.
pub type TopicPartition = (String, i32);

/// Offsets per epoch, waiting for the sink's commit.
#[derive(Debug)]
pub struct OffsetLedger {
    group: String,
    epochs: Mutex<BTreeMap<u64, HashMap<TopicPartition, i64>>>,
    /// The offsets handed out last, per partition: an unchanged offset is
    /// not handed out again (an idle pipeline then commits nothing).
    taken: Mutex<HashMap<TopicPartition, i64>>,
    /// The newest epoch the sink has committed (0: none yet).
    committed: AtomicU64,
}

impl OffsetLedger {
    /// A ledger for the sources of consumer group `group`.
    pub fn new(group: &str) -> Self {
        Self {
            group: group.to_string(),
            epochs: Mutex::new(BTreeMap::new()),
            taken: Mutex::new(HashMap::new()),
            committed: AtomicU64::new(0),
        }
    }

    /// The consumer group whose offsets the ledger carries.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Record next offsets as of barrier `epoch` (several source instances
    /// add to one epoch; the larger offset wins).
    pub fn record(&self, epoch: u64, positions: impl IntoIterator<Item = (TopicPartition, i64)>) {
        let mut epochs = self.epochs.lock().expect("ledger lock");
        let e = epochs.entry(epoch).or_default();
        for (tp, o) in positions {
            let v = e.entry(tp).or_insert(o);
            *v = (*v).max(o);
        }
    }

    /// Remove and return the offsets of every epoch up to `epoch`, the newest
    /// epoch's offset winning per partition, leaving out offsets equal to
    /// the ones returned last time (nothing new was read there).
    pub fn take_upto(&self, epoch: u64) -> Vec<(TopicPartition, i64)> {
        let mut epochs = self.epochs.lock().expect("ledger lock");
        let later = epochs.split_off(&(epoch + 1));
        let done = std::mem::replace(&mut *epochs, later);
        let mut merged: HashMap<TopicPartition, i64> = HashMap::new();
        for (_, e) in done {
            merged.extend(e);
        }
        let mut taken = self.taken.lock().expect("ledger lock");
        merged.retain(|tp, o| taken.insert(tp.clone(), *o) != Some(*o));
        let mut out: Vec<_> = merged.into_iter().collect();
        out.sort();
        out
    }
}

impl OffsetLedger {
    /// The sink committed the output (and offsets) of every epoch up to
    /// `epoch`.
    pub fn mark_committed(&self, epoch: u64) {
        self.committed.fetch_max(epoch, Ordering::Release);
    }

    /// The newest epoch whose output the sink has committed (0: none yet).
    /// A source hands revoked partitions over only after the epoch holding
    /// their last records is committed.
    pub fn committed_through(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }
}

/// Where a sink that owns the offsets keeps them, read by the sources when
/// they are assigned partitions.
pub trait PositionStore: Send + Sync + std::fmt::Debug {
    /// The stored next offsets of `partitions` for `group` (partitions
    /// without one are left out).
    fn positions(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, i64>>;

    /// [`PositionStore::positions`] with the state reference stored in the
    /// same record (see `shoal_runtime::shard`), read at once: offset and
    /// state of a partition are always of one commit.
    fn positions_with_state(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, (i64, Option<String>)>> {
        Ok(self
            .positions(group, partitions)?
            .into_iter()
            .map(|(tp, o)| (tp, (o, None)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        ("t".to_string(), p)
    }

    #[test]
    fn take_upto_merges_epochs_newest_first_and_keeps_later_ones() {
        let l = OffsetLedger::new("g");
        l.record(1, [(tp(0), 10), (tp(1), 5)]);
        l.record(1, [(tp(0), 7)]); // another instance: max wins
        l.record(2, [(tp(0), 20)]);
        l.record(3, [(tp(1), 9)]);
        assert_eq!(l.take_upto(2), vec![(tp(0), 20), (tp(1), 5)]);
        assert_eq!(l.take_upto(2), vec![]);
        assert_eq!(l.take_upto(9), vec![(tp(1), 9)]);
    }

    #[test]
    fn unchanged_offsets_are_not_handed_out_twice() {
        let l = OffsetLedger::new("g");
        l.record(1, [(tp(0), 10), (tp(1), 5)]);
        assert_eq!(l.take_upto(1), vec![(tp(0), 10), (tp(1), 5)]);
        l.record(2, [(tp(0), 10), (tp(1), 6)]);
        assert_eq!(l.take_upto(2), vec![(tp(1), 6)]);
        l.record(3, [(tp(0), 10), (tp(1), 6)]);
        assert_eq!(l.take_upto(3), vec![]);
    }
}
