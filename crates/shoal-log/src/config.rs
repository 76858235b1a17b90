//! Configuration: [`LogConfig`] for a log directory, [`TopicConfig`] stored
//! with each topic, and the [`FsyncPolicy`].

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::{Clock, SystemClock};

/// When appended bytes are forced to stable storage (`fdatasync`).
///
/// Every append is handed to the OS with one `write` before `append` returns,
/// so a *process* crash never loses an acknowledged record under any policy.
/// The policy decides what survives a *machine* crash (power loss, kernel
/// panic):
///
/// * `EveryBatch`: `append` returns only after the batch is on disk. Nothing
///   acknowledged is ever lost. Slowest (one fsync per append call).
/// * `Interval(d)`: a background thread (and any append that finds the last
///   sync older than `d`) syncs dirty partitions, so at most about the last
///   `d` of acknowledged records can be lost in a machine crash.
/// * `Never`: the OS writes back when it likes (typically within ~30 s on
///   Linux); segments are still synced when they roll and on [`crate::LogDir::flush`].
///
/// After a machine crash, whatever was lost is a suffix: the torn tail is cut
/// on the next open and nothing before it is touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// Sync before every append returns.
    EveryBatch,
    /// Sync at most this long after data was written.
    Interval(#[serde(with = "duration_ms")] Duration),
    /// Leave it to the OS (and segment roll).
    Never,
}

/// Per-topic settings, stored in the topic's `topic.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicConfig {
    /// A segment rolls when appending would grow it beyond this many bytes
    /// (a single oversized batch still goes into one fresh segment).
    pub segment_bytes: u64,
    /// Bytes of log between two entries of the sparse offset index.
    pub index_interval_bytes: u32,
    /// Delete the oldest whole segments while a partition is larger than
    /// this (the active segment is never deleted). `None`: no size limit.
    pub retention_bytes: Option<u64>,
    /// Delete whole segments whose newest record timestamp is older than
    /// this. `None`: keep forever.
    #[serde(with = "opt_duration_ms")]
    pub retention: Option<Duration>,
    /// Durability of appends; see [`FsyncPolicy`].
    pub fsync: FsyncPolicy,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig {
            segment_bytes: 128 * 1024 * 1024,
            index_interval_bytes: 4096,
            retention_bytes: None,
            retention: None,
            fsync: FsyncPolicy::Interval(Duration::from_secs(1)),
        }
    }
}

impl TopicConfig {
    /// Checks the ranges the on-disk format can hold.
    pub fn validate(&self) -> crate::Result<()> {
        use crate::Error::InvalidArgument;
        if self.segment_bytes < 1024 || self.segment_bytes > (1 << 31) {
            return Err(InvalidArgument(format!(
                "segment_bytes must be within 1 KiB..=2 GiB, got {}",
                self.segment_bytes
            )));
        }
        if self.index_interval_bytes == 0 {
            return Err(InvalidArgument("index_interval_bytes must be > 0".into()));
        }
        if let FsyncPolicy::Interval(d) = self.fsync
            && d.is_zero()
        {
            return Err(InvalidArgument(
                "fsync interval must be > 0 (use every_batch)".into(),
            ));
        }
        Ok(())
    }
}

/// Settings of an opened log directory (not persisted).
#[derive(Clone)]
pub struct LogConfig {
    /// Config given to topics created by [`crate::LogDir::create_topic`].
    pub default_topic: TopicConfig,
    /// Refuse appends (tools that only read and describe).
    pub read_only: bool,
    /// Consumer-group timing defaults.
    pub group: GroupConfig,
    /// Source of "now" for heartbeats, session timeouts and age retention.
    pub clock: Arc<dyn Clock>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            default_topic: TopicConfig::default(),
            read_only: false,
            group: GroupConfig::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

impl std::fmt::Debug for LogConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogConfig")
            .field("default_topic", &self.default_topic)
            .field("read_only", &self.read_only)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// Consumer-group timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupConfig {
    /// A member that shows no sign of life (heartbeat, poll, commit) for
    /// this long is expelled and the group rebalances.
    #[serde(with = "duration_ms")]
    pub session_timeout: Duration,
    /// A member asked to revoke partitions that has not confirmed within
    /// this long is expelled, so one stuck member cannot stall a rebalance.
    #[serde(with = "duration_ms")]
    pub rebalance_timeout: Duration,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(60),
        }
    }
}

mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

mod opt_duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}
