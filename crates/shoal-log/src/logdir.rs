//! [`LogDir`]: the entry point. One log directory holds topics and
//! consumer groups:
//!
//! ```text
//! <dir>/topics/<topic>/topic.json                 partition count + TopicConfig
//! <dir>/topics/<topic>/<p>/<base>.log, .index     segments (see storage)
//! <dir>/topics/<topic>/<p>/writer.lock            held by the partition's writer
//! <dir>/groups/<group>/state.json, offsets.json   group state, committed offsets
//! <dir>/groups/<group>/coordinator.lock           held by the coordinating process
//! <dir>/transactions/<id>.json, <id>.lock          transactional ids (crate::txn)
//! ```
//!
//! Any number of processes may open the same directory: writes to a
//! partition are limited to one process (the first to append), a group is
//! coordinated by one process (the first whose member joins), and reading
//! and describing are open to all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::catalog::Catalog;
use crate::config::{LogConfig, TopicConfig};
use crate::consumer::{Consumer, ConsumerConfig};
use crate::error::{IoContext, Result};
use crate::fetch::{FetchBuffer, Isolation};
use crate::group::{Coordinator, GroupDescription, GroupSummary};
use crate::producer::{Appended, Producer};
use crate::record::RecordRef;
use crate::storage::RetentionReport;
use crate::topic::{TopicDescription, TopicSummary};
use crate::txn::{TransactionalProducer, TxnRegistry};

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    catalog: Arc<Catalog>,
    coordinator: Arc<Coordinator>,
    txns: Arc<TxnRegistry>,
}

/// An open log directory; cheap to clone, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct LogDir {
    inner: Arc<Inner>,
}

impl LogDir {
    /// Opens (creating unless `config.read_only`) the log directory at `path`.
    pub fn open(path: impl AsRef<Path>, config: LogConfig) -> Result<LogDir> {
        let root = path.as_ref().to_owned();
        if !config.read_only {
            std::fs::create_dir_all(&root).ctx("create dir", &root)?;
        }
        let catalog = Catalog::open(&root, config.clone())?;
        let coordinator = Arc::new(Coordinator::new(
            root.join("groups"),
            config.group,
            config.clock.clone(),
            catalog.clone(),
            config.read_only,
        ));
        Ok(LogDir {
            inner: Arc::new(Inner {
                root,
                catalog,
                coordinator,
                txns: Arc::default(),
            }),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.inner.root
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &LogConfig {
        &self.inner.catalog.config
    }

    /// Creates `name` with `partitions` partitions and the default topic
    /// config. Idempotent when the topic exists with the same count;
    /// [`crate::Error::TopicExists`] if with another.
    pub fn create_topic(&self, name: &str, partitions: u32) -> Result<()> {
        let config = self.config().default_topic.clone();
        self.create_topic_with(name, partitions, config)
    }

    /// [`LogDir::create_topic`] with an explicit config (ignored if the
    /// topic already exists).
    pub fn create_topic_with(
        &self,
        name: &str,
        partitions: u32,
        config: TopicConfig,
    ) -> Result<()> {
        self.inner
            .catalog
            .create(name, partitions, config)
            .map(drop)
    }

    /// All topics, sorted by name.
    pub fn list_topics(&self) -> Result<Vec<TopicSummary>> {
        self.inner.catalog.list()
    }

    /// Partitions with start/end offsets, segments and bytes.
    pub fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        self.inner.catalog.topic(name)?.describe()
    }

    /// Scans every entry of every partition of `name`: the damage found
    /// (torn tails of active segments are flagged as such).
    pub fn verify_topic(&self, name: &str) -> Result<Vec<crate::Damage>> {
        let topic = self.inner.catalog.topic(name)?;
        let mut all = Vec::new();
        for p in &topic.partitions {
            all.extend(p.verify()?);
        }
        Ok(all)
    }

    /// Cuts each damaged partition of `name` at its first damage, dropping
    /// everything from there on (fails while another process writes it).
    pub fn repair_topic(&self, name: &str) -> Result<Vec<crate::Repair>> {
        let topic = self.inner.catalog.topic(name)?;
        topic.partitions.iter().map(|p| p.repair()).collect()
    }

    /// Deletes a topic (fails if another process writes any partition).
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        self.inner.catalog.delete(name)
    }

    /// Partition count of `topic`.
    pub fn partition_count(&self, topic: &str) -> Result<u32> {
        Ok(self.inner.catalog.topic(topic)?.partition_count())
    }

    /// A producer for this directory.
    pub fn producer(&self) -> Producer {
        Producer::new(self.inner.catalog.clone())
    }

    /// Shorthand for [`Producer::append`].
    pub fn append(&self, topic: &str, records: &[RecordRef<'_>]) -> Result<Vec<Appended>> {
        self.producer().append(topic, records)
    }

    /// Shorthand for [`Producer::append_to`].
    pub fn append_to(&self, topic: &str, partition: u32, records: &[RecordRef<'_>]) -> Result<u64> {
        self.producer().append_to(topic, partition, records)
    }

    /// Opens a transactional producer for `topic` under the transactional
    /// id `id`, bumping the id's epoch (which fences older handles); see
    /// [`crate::txn`].
    pub fn transactional_producer(&self, id: &str, topic: &str) -> Result<TransactionalProducer> {
        TransactionalProducer::open(
            self.inner.catalog.clone(),
            self.inner.txns.clone(),
            id,
            topic,
        )
    }

    /// Makes this process the writer of every partition of `topic` now
    /// (taking the locks and recovering torn tails) instead of on first append.
    pub fn open_for_write(&self, topic: &str) -> Result<()> {
        let t = self.inner.catalog.topic(topic)?;
        t.partitions.iter().try_for_each(|p| p.open_for_write())
    }

    /// Reads records of `topic`/`partition` from `offset` into `buf`
    /// (cleared first): at most `max_records`, about `max_bytes` (at least
    /// one record if any is available). No group needed. Reads
    /// [`Isolation::ReadUncommitted`]; see [`LogDir::fetch_with`].
    pub fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_records: usize,
        max_bytes: usize,
        buf: &mut FetchBuffer,
    ) -> Result<()> {
        self.fetch_with(
            topic,
            partition,
            offset,
            max_records,
            max_bytes,
            Isolation::ReadUncommitted,
            buf,
        )
    }

    /// [`LogDir::fetch`] with an [`Isolation`]: `read_committed` returns
    /// only records of committed transactions (and plain records), never at
    /// or past the last stable offset. Continue from
    /// [`FetchBuffer::next_offset`]: it moves past skipped entries even when
    /// no record is returned.
    #[allow(clippy::too_many_arguments)]
    pub fn fetch_with(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_records: usize,
        max_bytes: usize,
        isolation: Isolation,
        buf: &mut FetchBuffer,
    ) -> Result<()> {
        self.inner.catalog.topic(topic)?.partition(partition)?.read(
            offset,
            max_records,
            max_bytes,
            isolation,
            buf,
        )
    }

    /// Last stable offset of every partition of `topic`: the first offset
    /// of its oldest open transaction, else its log end offset.
    pub fn last_stable_offsets(&self, topic: &str) -> Result<Vec<u64>> {
        let t = self.inner.catalog.topic(topic)?;
        t.partitions
            .iter()
            .map(|p| p.last_stable_offset())
            .collect()
    }

    /// First stored offset of every partition.
    pub fn start_offsets(&self, topic: &str) -> Result<Vec<u64>> {
        self.inner.catalog.topic(topic)?.start_offsets()
    }

    /// Log end offset of every partition.
    pub fn end_offsets(&self, topic: &str) -> Result<Vec<u64>> {
        self.inner.catalog.topic(topic)?.end_offsets()
    }

    /// Joins `group` as a new member.
    pub fn consumer(&self, group: &str, config: ConsumerConfig) -> Result<Consumer> {
        Consumer::join(self, group, config)
    }

    /// The group coordinator.
    pub fn coordinator(&self) -> &Arc<Coordinator> {
        &self.inner.coordinator
    }

    /// All groups with files here.
    pub fn list_groups(&self) -> Result<Vec<GroupSummary>> {
        self.inner.coordinator.list()
    }

    /// Members, generation, assignor, assignment, committed offsets, lag.
    pub fn describe_group(&self, name: &str) -> Result<GroupDescription> {
        self.inner.coordinator.describe(name)
    }

    /// Committed offsets of `group` for `topic`.
    pub fn committed(&self, group: &str, topic: &str) -> Result<BTreeMap<u32, u64>> {
        self.inner.coordinator.committed(group, topic)
    }

    /// Fsyncs every partition this process writes that has unsynced data.
    pub fn flush(&self) -> Result<()> {
        self.inner
            .catalog
            .loaded_partitions()
            .iter()
            .try_for_each(|p| p.flush())
    }

    /// Applies size and age retention now to the partitions this process
    /// writes (it also runs on every segment roll and every 30 s in the
    /// background).
    pub fn enforce_retention(&self) -> Result<RetentionReport> {
        let reports = self
            .inner
            .catalog
            .loaded_topics()
            .iter()
            .map(|t| t.enforce_retention())
            .collect::<Result<Vec<_>>>()?;
        Ok(crate::storage::partition::sum_reports(reports))
    }
}
