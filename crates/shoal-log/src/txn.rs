//! Transactions: a [`TransactionalProducer`] appends records that readers
//! in [`Isolation::ReadCommitted`] mode see only once their transaction is
//! committed ([`crate::Isolation::ReadCommitted`]) — Kafka's design, reduced to one topic per producer.
//!
//! * **Identity and fencing.** A producer is opened under a *transactional
//!   id* (Shoal uses `<pipeline>.<sink>.<instance>`). The id maps to a
//!   stable *producer id* and an *epoch*, kept in
//!   `<log dir>/transactions/<id>.json`; every open bumps the epoch. A
//!   handle with an older epoch (a zombie left over in this process) gets
//!   [`Error::ProducerFenced`] on its next send or commit, and so does any
//!   append or marker with an older epoch than one a partition has seen.
//!   Across processes, `<id>.lock` (and each partition's writer lock) lets
//!   one process at a time use the id: a second gets
//!   [`Error::TransactionalIdLocked`].
//! * **Transactions.** [`TransactionalProducer::send`] appends records of
//!   transaction `txn` (a number the caller chooses; Shoal uses the
//!   checkpoint epoch), tagged `(producer id, epoch, txn)` — see the entry
//!   format in [`crate::record`]. Several transactions may be open at once
//!   (Shoal writes epoch n+1 while epoch n waits for its checkpoint).
//!   [`TransactionalProducer::commit`] writes a COMMIT marker into every
//!   partition each transaction up to `txn` touched;
//!   [`TransactionalProducer::abort`] an ABORT marker. Ending a transaction
//!   that is not open in a partition is a no-op, so a replayed commit after
//!   a crash writes nothing twice.
//! * **Readers.** `read_committed` fetches stop at the *last stable offset*
//!   (LSO: the first offset of the oldest open transaction in the
//!   partition, else the log end) and skip records of aborted
//!   transactions; `read_uncommitted` fetches return every data record up
//!   to the log end. Neither returns markers.
//! * **Offsets.** Markers take offsets, as Kafka's control records do: the
//!   log end offset, `records` in `describe_topic` and consumer lag count
//!   them. A fetch that passes over markers or aborted records moves
//!   [`crate::FetchBuffer::next_offset`] past them, so a caught-up
//!   consumer's position (and its lag) still reaches the log end once every
//!   transaction has ended.
//! * **Recovery.** Nothing but the log records the transactions: at start,
//!   a partition's writer scans its version 2 segments for open and aborted
//!   transactions; a torn tail cut on recovery leaves its transaction open.
//!   [`TransactionalProducer::recover`] then commits the open transactions
//!   up to a given number and aborts the others, in every partition.
//!
//! Limits: a producer writes one topic; an open transaction blocks
//! `read_committed` readers of its partitions until its producer recovers
//! (there is no transaction timeout).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, LockFile};
use crate::producer::{Appended, Producer};
use crate::record::{Control, RecordRef, TxnTag};

/// Directory of the transactional ids' state, under the log directory.
pub(crate) const TXN_DIR: &str = "transactions";
/// Version of `<id>.json`.
pub const TXN_STATE_VERSION: u32 = 1;

/// The content of `transactions/<id>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnState {
    /// Layout version of this file.
    pub version: u32,
    /// The transactional id.
    pub transactional_id: String,
    /// Its producer id (stable for the id's life).
    pub producer_id: u64,
    /// The newest epoch (bumped by every open).
    pub epoch: u32,
}

/// This process's transactional ids: current epoch and the id's lock.
#[derive(Debug, Default)]
pub(crate) struct TxnRegistry {
    ids: Mutex<HashMap<String, (u32, Arc<LockFile>)>>,
}

impl TxnRegistry {
    /// Opens `id` under `root`: takes its lock (once per process), bumps
    /// its epoch durably and returns `(producer id, new epoch)`.
    fn open(&self, root: &std::path::Path, id: &str) -> Result<(u64, u32)> {
        fsutil::validate_name("transactional id", id)?;
        let dir = root.join(TXN_DIR);
        std::fs::create_dir_all(&dir).ctx("create dir", &dir)?;
        let mut ids = self.ids.lock().expect("txn registry lock");
        let lock = match ids.get(id) {
            Some((_, lock)) => lock.clone(),
            None => {
                let path = dir.join(format!("{id}.lock"));
                Arc::new(LockFile::try_acquire(&path)?.map_err(|held| {
                    Error::TransactionalIdLocked {
                        id: id.to_owned(),
                        path: path.clone(),
                        holder: held.holder,
                    }
                })?)
            }
        };
        let path = state_path(&dir, id);
        let state = match fsutil::read_json::<TxnState>(&path)? {
            Some(s) if s.version > TXN_STATE_VERSION => {
                return Err(Error::InvalidArgument(format!(
                    "{}: transaction state version {} is newer than this binary understands ({TXN_STATE_VERSION})",
                    path.display(),
                    s.version
                )));
            }
            Some(s) => TxnState {
                epoch: s.epoch + 1,
                ..s
            },
            None => TxnState {
                version: TXN_STATE_VERSION,
                transactional_id: id.to_owned(),
                producer_id: producer_id_for(id),
                epoch: 1,
            },
        };
        fsutil::write_json(&path, &state)?;
        ids.insert(id.to_owned(), (state.epoch, lock));
        Ok((state.producer_id, state.epoch))
    }

    /// Fails if `epoch` is no longer `id`'s newest in this process.
    fn check(&self, id: &str, producer_id: u64, epoch: u32) -> Result<()> {
        let ids = self.ids.lock().expect("txn registry lock");
        match ids.get(id) {
            Some((current, _)) if *current != epoch => Err(Error::ProducerFenced {
                producer_id,
                epoch,
                current: *current,
            }),
            _ => Ok(()),
        }
    }
}

/// `<dir>/<id>.json`
fn state_path(dir: &std::path::Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.json"))
}

/// A stable producer id for a transactional id: FNV-1a (64 bit) of its
/// bytes, never 0.
fn producer_id_for(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h.max(1)
}

/// What [`TransactionalProducer::recover`] did: `(partition, txn)` pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Open transactions it committed.
    pub committed: Vec<(u32, u64)>,
    /// Open transactions it aborted.
    pub aborted: Vec<(u32, u64)>,
}

/// Appends transactions to one topic; see the module docs.
#[derive(Debug)]
pub struct TransactionalProducer {
    producer: Producer,
    catalog: Arc<Catalog>,
    registry: Arc<TxnRegistry>,
    id: String,
    topic: String,
    producer_id: u64,
    epoch: u32,
    /// Transactions this handle wrote and has not ended → partitions touched.
    open: BTreeMap<u64, BTreeSet<u32>>,
}

impl TransactionalProducer {
    pub(crate) fn open(
        catalog: Arc<Catalog>,
        registry: Arc<TxnRegistry>,
        id: &str,
        topic: &str,
    ) -> Result<Self> {
        catalog.topic(topic)?;
        let (producer_id, epoch) = registry.open(&catalog.root, id)?;
        Ok(TransactionalProducer {
            producer: Producer::new(catalog.clone()),
            catalog,
            registry,
            id: id.to_owned(),
            topic: topic.to_owned(),
            producer_id,
            epoch,
            open: BTreeMap::new(),
        })
    }

    /// The producer id.
    pub fn producer_id(&self) -> u64 {
        self.producer_id
    }

    /// This handle's epoch.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Transactions this handle wrote and has not ended, with the
    /// partitions each touched.
    pub fn open_transactions(&self) -> &BTreeMap<u64, BTreeSet<u32>> {
        &self.open
    }

    fn tag(&self, txn: u64, control: Control) -> TxnTag {
        TxnTag {
            producer_id: self.producer_id,
            epoch: self.epoch,
            txn,
            control,
        }
    }

    /// Appends `records` as part of transaction `txn` (opened by its first
    /// record in each partition), partitioned like [`Producer::append`].
    pub fn send(&mut self, txn: u64, records: &[RecordRef<'_>]) -> Result<Vec<Appended>> {
        self.registry
            .check(&self.id, self.producer_id, self.epoch)?;
        let tag = self.tag(txn, Control::Data);
        let placed = self
            .producer
            .append_tagged(&self.topic, records, Some(&tag))?;
        if !placed.is_empty() {
            let touched = self.open.entry(txn).or_default();
            touched.extend(placed.iter().map(|a| a.partition));
        }
        Ok(placed)
    }

    /// Fsyncs the partitions with open transactions (whatever the topic's
    /// fsync policy), so what was sent survives a machine crash.
    pub fn flush(&self) -> Result<()> {
        let t = self.catalog.topic(&self.topic)?;
        let parts: BTreeSet<u32> = self.open.values().flatten().copied().collect();
        parts.iter().try_for_each(|p| t.partition(*p)?.flush())
    }

    /// Commits every transaction of this handle numbered `<= through`:
    /// a COMMIT marker in each partition it touched. Returns the number of
    /// markers written.
    pub fn commit(&mut self, through: u64) -> Result<usize> {
        self.end(through, Control::Commit)
    }

    /// Aborts every transaction of this handle numbered `<= through`.
    pub fn abort(&mut self, through: u64) -> Result<usize> {
        self.end(through, Control::Abort)
    }

    fn end(&mut self, through: u64, control: Control) -> Result<usize> {
        self.registry
            .check(&self.id, self.producer_id, self.epoch)?;
        let t = self.catalog.topic(&self.topic)?;
        let now = now_ms();
        let mut markers = 0;
        while let Some((&txn, parts)) = self.open.first_key_value() {
            if txn > through {
                break;
            }
            let tag = self.tag(txn, control);
            for p in parts {
                markers += usize::from(t.partition(*p)?.end_txn(&tag, now)?.is_some());
            }
            self.open.remove(&txn);
        }
        Ok(markers)
    }

    /// Start of a run: in every partition of the topic, commits the open
    /// transactions of this producer id numbered `<= commit_through` and
    /// aborts the others (left by an earlier run that crashed). Becomes the
    /// writer of every partition.
    pub fn recover(&mut self, commit_through: Option<u64>) -> Result<Recovered> {
        self.registry
            .check(&self.id, self.producer_id, self.epoch)?;
        let t = self.catalog.topic(&self.topic)?;
        let now = now_ms();
        let mut done = Recovered::default();
        for part in &t.partitions {
            for txn in part.open_txns(self.producer_id)? {
                let commit = commit_through.is_some_and(|c| txn <= c);
                let control = if commit {
                    Control::Commit
                } else {
                    Control::Abort
                };
                if part.end_txn(&self.tag(txn, control), now)?.is_some() {
                    let list = if commit {
                        &mut done.committed
                    } else {
                        &mut done.aborted
                    };
                    list.push((part.id(), txn));
                }
            }
            part.flush()?;
        }
        self.open.clear();
        Ok(done)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
