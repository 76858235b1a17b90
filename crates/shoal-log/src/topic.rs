//! A topic: its metadata file (`topic.json`: partition count and
//! [`TopicConfig`]) and its partitions, one directory each.
//!
//! ```text
//! <log dir>/topics/<topic>/topic.json
//! <log dir>/topics/<topic>/<partition>/<base offset>.log|.index, writer.lock
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::config::TopicConfig;
use crate::error::{Error, Result};
use crate::partitioner::RoundRobin;
use crate::storage::partition::Partition;
use crate::storage::{PartitionInfo, RetentionReport};

/// Version of the `topic.json` layout.
pub(crate) const TOPIC_META_VERSION: u32 = 1;
/// Metadata file name inside a topic directory.
pub(crate) const TOPIC_META: &str = "topic.json";

/// The content of `topic.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// Layout version of this file.
    pub version: u32,
    /// Topic name.
    pub name: String,
    /// Number of partitions (fixed at creation).
    pub partitions: u32,
    /// Segment, retention and fsync settings.
    pub config: TopicConfig,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
}

/// A topic as shown by `describe_topic`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicDescription {
    /// Topic name.
    pub name: String,
    /// Its settings.
    pub config: TopicConfig,
    /// Per-partition offsets, segments and sizes.
    pub partitions: Vec<PartitionInfo>,
    /// Records over all partitions.
    pub records: u64,
    /// Bytes over all partitions.
    pub bytes: u64,
}

/// One line of `list_topics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSummary {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: u32,
}

/// An open topic.
#[derive(Debug)]
pub(crate) struct Topic {
    pub(crate) meta: TopicMeta,
    pub(crate) partitions: Vec<Arc<Partition>>,
    pub(crate) round_robin: RoundRobin,
}

impl Topic {
    /// Opens the topic in `dir` from its metadata (no file is read yet).
    pub(crate) fn open(
        dir: PathBuf,
        meta: TopicMeta,
        read_only: bool,
        clock: &Arc<dyn Clock>,
    ) -> Topic {
        let partitions = (0..meta.partitions)
            .map(|p| {
                Arc::new(Partition::new(
                    &meta.name,
                    p,
                    dir.join(p.to_string()),
                    meta.config.clone(),
                    read_only,
                    clock.clone(),
                ))
            })
            .collect();
        Topic {
            meta,
            partitions,
            round_robin: RoundRobin::default(),
        }
    }

    /// Partition count.
    pub(crate) fn partition_count(&self) -> u32 {
        self.meta.partitions
    }

    /// Partition `p`, or [`Error::PartitionNotFound`].
    pub(crate) fn partition(&self, p: u32) -> Result<&Arc<Partition>> {
        self.partitions
            .get(p as usize)
            .ok_or_else(|| Error::PartitionNotFound {
                topic: self.meta.name.clone(),
                partition: p,
                partitions: self.meta.partitions,
            })
    }

    /// Log end offsets of all partitions.
    pub(crate) fn end_offsets(&self) -> Result<Vec<u64>> {
        self.partitions.iter().map(|p| p.end_offset()).collect()
    }

    /// Start offsets of all partitions.
    pub(crate) fn start_offsets(&self) -> Result<Vec<u64>> {
        self.partitions.iter().map(|p| p.start_offset()).collect()
    }

    /// Full description.
    pub(crate) fn describe(&self) -> Result<TopicDescription> {
        let partitions: Vec<PartitionInfo> = self
            .partitions
            .iter()
            .map(|p| p.describe())
            .collect::<Result<_>>()?;
        Ok(TopicDescription {
            name: self.meta.name.clone(),
            config: self.meta.config.clone(),
            records: partitions.iter().map(|p| p.records).sum(),
            bytes: partitions.iter().map(|p| p.bytes).sum(),
            partitions,
        })
    }

    /// Retention on the partitions this process writes.
    pub(crate) fn enforce_retention(&self) -> Result<RetentionReport> {
        let reports = self
            .partitions
            .iter()
            .map(|p| p.enforce_retention())
            .collect::<Result<Vec<_>>>()?;
        Ok(crate::storage::partition::sum_reports(reports))
    }

    /// Releases writer locks.
    pub(crate) fn close(&self) {
        self.partitions.iter().for_each(|p| p.close());
    }
}

/// `<topics dir>/<name>/topic.json`
pub(crate) fn meta_path(topic_dir: &Path) -> PathBuf {
    topic_dir.join(TOPIC_META)
}
