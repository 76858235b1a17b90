//! The connector trait: what a source or sink gives the planner and the
//! runtime, beside its typed config (see [`shoal_dsl::connector`]).
//!
//! A connector is its config type. It implements
//! - [`FromYaml`] (its serde shape and checks) and [`SourceConfig`] /
//!   [`SinkConfig`] (what the DSL's graph checks need),
//! - [`SourceConnector`] / [`SinkConnector`]: its `type:` name and the plan
//!   step (output schema, plan-time checks against files and services, a
//!   one-line description) that returns a [`SourceTask`] / [`SinkTask`],
//! - and the task builds the runtime instances from the job's shared
//!   resources ([`BuildCx`]) and says what it needs and offers
//!   ([`SourceCapabilities`], [`SinkCapabilities`]).
//!
//! [`crate::registry`] lists every connector once, by `type:`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use shoal_dsl::connector::{FromYaml, SinkConfig, SourceConfig};
use shoal_dsl::{DslError, PipelineSpec};
use shoal_log::LogDir;
use shoal_runtime::shard::ShardRegistry;
use shoal_runtime::{Result, Sink, Source};

use crate::kafka::{KafkaSourceConfig, OffsetLedger, PositionStore};
use crate::log::TopicWriters;

/// A source connector: its config type plus the plan step.
pub trait SourceConnector: SourceConfig + FromYaml + Clone {
    /// The `type:` that selects it.
    const TYPE: &'static str;
    /// Check the config against the files and services it names and give
    /// the schema of what it emits.
    fn plan(&self, cx: &PlanCx<'_>) -> std::result::Result<PlannedSource, DslError>;
}

/// A sink connector: its config type plus the plan step.
pub trait SinkConnector: SinkConfig + FromYaml + Clone {
    /// The `type:` that selects it.
    const TYPE: &'static str;
    /// Check the config against its input `schema` (and the services it
    /// writes, when they answer).
    fn plan(
        &self,
        cx: &PlanCx<'_>,
        schema: &SchemaRef,
    ) -> std::result::Result<PlannedSink, DslError>;
}

/// A planned source.
pub struct PlannedSource {
    /// What it emits.
    pub schema: SchemaRef,
    /// A one-line description for `shoal explain`.
    pub detail: String,
    /// Builds its instances.
    pub task: Arc<dyn SourceTask>,
}

/// A planned sink.
pub struct PlannedSink {
    /// A one-line description for `shoal explain`.
    pub detail: String,
    /// Builds its instances.
    pub task: Arc<dyn SinkTask>,
}

/// Builds instance `i` of a source.
pub type SourceFactory = Box<dyn Fn(usize) -> Result<Box<dyn Source>> + Send + Sync>;
/// Builds instance `i` of a sink.
pub type SinkFactory = Box<dyn Fn(usize) -> Result<Box<dyn Sink>> + Send + Sync>;

/// A planned source's runtime side.
pub trait SourceTask: Send + Sync {
    /// What it needs from the job and offers to it.
    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities::default()
    }
    /// The factory of its instances.
    fn instances(&self, cx: &BuildCx<'_>) -> Result<SourceFactory>;
}

/// A planned sink's runtime side.
pub trait SinkTask: Send + Sync {
    /// What it needs from the job and offers to it.
    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities::default()
    }
    /// The factory of its instances.
    fn instances(&self, cx: &BuildCx<'_>) -> Result<SinkFactory>;
}

/// What a source needs from the job and offers to it.
#[derive(Debug, Clone, Default)]
pub struct SourceCapabilities {
    /// It reads the embedded log, as a group member with this session
    /// timeout (the job opens the log once, with the shortest).
    pub embedded_log: Option<Duration>,
    /// It reads partitioned topics: state split by the partitioning key
    /// can be kept per partition ([`ShardRegistry`]).
    pub partitions: Option<Partitioned>,
    /// It reads a Kafka consumer group whose offsets a sink may store with
    /// its output (exactly-once from Kafka).
    pub kafka_group: Option<KafkaSourceConfig>,
}

/// How a source's topics are partitioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partitioned {
    /// The topics it reads (state follows the partitions of one topic only).
    pub topics: Vec<String>,
    /// `key:` the column the records are partitioned by, if declared.
    pub key: Option<String>,
    /// The partitions are shared with other processes of the job: a shard
    /// that moves in behind an operator's event time catches up, and
    /// state that cannot follow the partitions is refused when a sink
    /// owns the offsets.
    pub shared: bool,
}

/// What a sink needs from the job and offers to it.
#[derive(Debug, Clone, Default)]
pub struct SinkCapabilities {
    /// It writes this topic of the embedded log (created with this many
    /// partitions when missing; `None`: as it is, or 1).
    pub embedded_log: Option<(String, Option<u32>)>,
    /// It can store a Kafka source's offsets with its output, atomically.
    pub owns_offsets: Option<OffsetOwner>,
    /// It writes to a service outside the process, whose transactions are
    /// named after the process ([`crate::kafka::process_identity`]).
    pub external: bool,
}

/// How a sink stores the source offsets with its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetOwner {
    /// In its Kafka transactions (the group's offsets), writing this topic.
    Kafka {
        /// The topic it writes.
        topic: String,
    },
    /// In a table of this Postgres database, in the epoch's transaction.
    Postgres {
        /// The database.
        url: String,
    },
}

/// What the plan step of a connector knows.
pub struct PlanCx<'a> {
    /// The whole pipeline (for errors at YAML lines).
    pub spec: &'a PipelineSpec,
    /// `sources` or `sinks`.
    pub section: &'static str,
    /// The node's id.
    pub id: &'a str,
    /// Relative paths are resolved against this directory.
    pub base_dir: &'a Path,
}

impl PlanCx<'_> {
    /// An error at the node's key `path` (e.g. `&["proto_schema", "file"]`).
    pub fn error(
        &self,
        path: &[&str],
        message: impl Into<String>,
        hint: Option<String>,
    ) -> DslError {
        let mut at = vec![self.section, self.id];
        at.extend_from_slice(path);
        self.spec.error_at(&at, message, hint)
    }

    /// `p` resolved against the pipeline's base directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        resolve(self.base_dir, p)
    }
}

/// `p` resolved against `base` (an absolute `p` as it is).
pub fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// What a task's instances are built with: the node and the job's shared
/// resources.
#[derive(Clone, Copy)]
pub struct BuildCx<'a> {
    /// The node's id.
    pub node: &'a str,
    /// The node's schema (what a source emits, what a sink reads).
    pub schema: &'a SchemaRef,
    /// The job's shared resources.
    pub job: &'a JobResources,
}

/// The offset ledger a Kafka source shares with the sink that owns its
/// offsets, with the sink's position store if it keeps one.
pub type Ledger = (Arc<OffsetLedger>, Option<Arc<dyn PositionStore>>);

/// The resources the nodes of one job share.
pub struct JobResources {
    /// The pipeline's name.
    pub pipeline: String,
    /// This process's identity (empty unless a sink is
    /// [`external`](SinkCapabilities::external)).
    pub process: String,
    /// Whether the job checkpoints.
    pub checkpointing: bool,
    /// Relative paths are resolved against this directory.
    pub base_dir: PathBuf,
    /// The embedded log, when a node uses it.
    pub log: Option<LogDir>,
    /// Writers of each embedded-log topic in this job.
    pub writers: TopicWriters,
    /// The ledger of a sink that owns a Kafka source's offsets.
    pub ledger: Option<Ledger>,
    /// The registry of partition shards, when an operator keeps state per
    /// source partition.
    pub shards: Option<Arc<ShardRegistry>>,
}
