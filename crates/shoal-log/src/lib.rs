//! `shoal-log`: Shoal's embedded partitioned log, with Kafka's
//! consumer-group model, so a pipeline runs on a fresh machine with nothing
//! else installed. It is the default source and sink of Shoal pipelines.
//!
//! * **Storage** ([`storage`], [`record`]): a [`LogDir`] holds topics; a
//!   topic has N partitions; a partition is a sequence of segment files
//!   (documented binary format, CRC per record, sparse offset index). One
//!   writer process per partition (lock file), any number of readers, also
//!   in other processes. Torn tails are cut on recovery; retention by size
//!   and age deletes whole old segments; fsync per [`FsyncPolicy`].
//! * **Producing** ([`Producer`], [`partitioner`]): keyed records go to
//!   `toPositive(murmur2(key)) % partitions` exactly like Kafka's default
//!   partitioner; records without a key go round-robin.
//! * **Consuming** ([`Consumer`], [`FetchBuffer`]): fetches fill a reusable
//!   buffer (no per-record allocation); consumers are group members.
//! * **Transactions** ([`txn`]): a [`TransactionalProducer`] appends
//!   records that [`Isolation::ReadCommitted`] fetches see only once
//!   committed (Kafka's design: producer id + epoch fencing, commit/abort
//!   markers, last stable offset, aborted records skipped).
//! * **Groups** ([`group`]): an in-process [`Coordinator`] with join,
//!   heartbeat, leave, session timeouts, generations, fencing, durable
//!   committed offsets and lag, and the `range`, `round-robin`, `sticky` and
//!   `cooperative-sticky` [`assignor`](group::assignor)s.
//!
//! ```
//! use shoal_log::*;
//! # fn main() -> Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let log = LogDir::open(dir.path(), LogConfig::default())?;
//! log.create_topic("txns", 4)?;
//! let placed = log.append("txns", &[(Some(b"card-1".as_slice()), br#"{"amount":3}"#.as_slice(), 1_700_000_000_000)])?;
//! let mut buf = FetchBuffer::new();
//! log.fetch("txns", placed[0].partition, placed[0].offset, 100, 1 << 20, &mut buf)?;
//! assert_eq!(buf.get(0).value, br#"{"amount":3}"#);
//! # Ok(()) }
//! ```

pub mod catalog;
pub mod clock;
pub mod config;
pub mod consumer;
pub mod error;
pub mod fetch;
mod fsutil;
#[doc(hidden)]
pub mod fuzz;
pub mod group;
pub mod logdir;
pub mod partitioner;
pub mod producer;
pub mod record;
pub mod storage;
pub mod topic;
pub mod txn;

pub use catalog::TopicMetadata;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{FsyncPolicy, GroupConfig, LogConfig, TopicConfig};
pub use consumer::{Consumer, ConsumerConfig, KeepAlive};
pub use error::{Error, Fault, Result};
pub use fetch::{FetchBuffer, Isolation, Record};
pub use group::{
    Assignment, AssignorKind, Coordinator, GroupDescription, GroupState, GroupSummary, Heartbeat,
    MemberDescription, PartitionLag, RebalanceProtocol, TopicPartition,
};
pub use logdir::LogDir;
pub use producer::{Appended, Producer};
pub use record::{Control, RecordRef, TxnTag};
pub use storage::{Damage, PartitionInfo, Repair, RetentionReport, SegmentInfo};
pub use topic::{TopicDescription, TopicMeta, TopicSummary};
pub use txn::{Recovered, TransactionalProducer};
