//! The typed pipeline: [`PipelineSpec`] and the specs of its sources, transforms and
//! sinks, with every default filled in.
//!
//! A `PipelineSpec` remembers its file text and where each YAML value sits, so later
//! stages (the planner, the SQL compiler) can report their own errors at the right
//! line with [`PipelineSpec::error_at`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use miette::NamedSource;

use crate::connector::{SinkConfig, SourceConfig};
use crate::error::{DslError, Location};
use crate::positions::PositionMap;

/// A whole pipeline file, validated: ids are unique, inputs exist, there is no cycle.
#[derive(Clone)]
pub struct PipelineSpec {
    /// `name:`; defaults to the file stem (`fraud.yaml` -> `fraud`).
    pub name: String,
    /// The file it came from, as given.
    pub file: PathBuf,
    /// `data_dir:` (embedded log, checkpoints, group offsets); `None` = the CLI default.
    pub data_dir: Option<PathBuf>,
    /// `checkpoint:`; `None` = no checkpoints (at-least-once).
    pub checkpoint: Option<CheckpointSpec>,
    /// `sources:` in file order.
    pub sources: IndexMap<String, SourceSpec>,
    /// `transforms:` in file order.
    pub transforms: IndexMap<String, TransformSpec>,
    /// `sinks:` in file order.
    pub sinks: IndexMap<String, SinkSpec>,
    /// `dead_letter:`; where undecodable records go (`None` = drop and count them).
    pub dead_letter: Option<DeadLetterSpec>,
    /// `outage_timeout:` how long an unreachable Postgres, Redis or schema
    /// registry is waited out (retried with backoff) before the job fails;
    /// default 2 minutes.
    pub outage_timeout: Duration,
    /// Problems that do not stop the pipeline, e.g. a source nobody reads.
    pub warnings: Vec<DslError>,
    pub(crate) source: Arc<NamedSource<String>>,
    pub(crate) positions: Arc<PositionMap>,
}

impl fmt::Debug for PipelineSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineSpec")
            .field("name", &self.name)
            .field("file", &self.file)
            .field("data_dir", &self.data_dir)
            .field("checkpoint", &self.checkpoint)
            .field("sources", &self.sources)
            .field("transforms", &self.transforms)
            .field("sinks", &self.sinks)
            .field("dead_letter", &self.dead_letter)
            .field("outage_timeout", &self.outage_timeout)
            .field("warnings", &self.warnings)
            .finish_non_exhaustive()
    }
}

impl PartialEq for PipelineSpec {
    /// Compares the pipeline content, not the file text or positions.
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.file == other.file
            && self.data_dir == other.data_dir
            && self.checkpoint == other.checkpoint
            && self.sources == other.sources
            && self.transforms == other.transforms
            && self.sinks == other.sinks
            && self.dead_letter == other.dead_letter
    }
}

impl PipelineSpec {
    /// Build an error located at a YAML path such as `&["transforms", "big", "query"]`
    /// (list items by index: `&["sinks", "out", "inputs", "0"]`).
    ///
    /// Falls back to the nearest existing parent path, then to 1:1. Used by the planner
    /// for plan-time errors (bad SQL, unknown column) so they name the YAML line.
    pub fn error_at(
        &self,
        path: &[&str],
        message: impl Into<String>,
        hint: Option<String>,
    ) -> DslError {
        let loc = self
            .positions
            .nearest_value(path)
            .unwrap_or(Location::new(1, 1));
        DslError::new(self.file.display().to_string(), message)
            .located(&self.source, loc)
            .with_hint_opt(hint)
    }

    /// Like [`error_at`](Self::error_at), but at `line`:`column` *inside* the string
    /// value at `path` (both 1-based, relative to the value's text) — for example a
    /// SQL error at line 2, column 7 of a `query: |` block.
    ///
    /// Exact for block scalars (`|`, `>`) and unquoted or quoted one-line values;
    /// falls back to the value's own position when the value cannot be mapped.
    pub fn error_in_value(
        &self,
        path: &[&str],
        line: usize,
        column: usize,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> DslError {
        let loc = self
            .positions
            .position_in_value(self.source.inner(), path, line, column)
            .or_else(|| self.positions.nearest_value(path))
            .unwrap_or(Location::new(1, 1));
        DslError::new(self.file.display().to_string(), message)
            .located(&self.source, loc)
            .with_hint_opt(hint)
    }

    /// Where the value at a YAML path starts, if the path exists in the file.
    pub fn location_of(&self, path: &[&str]) -> Option<Location> {
        self.positions.value(path)
    }

    /// The text of the pipeline file.
    pub fn source_text(&self) -> &str {
        self.source.inner()
    }

    /// The ids a transform or sink reads; `Some(&[])` for a source, `None` for an
    /// unknown id.
    pub fn upstream_of(&self, id: &str) -> Option<&[String]> {
        if self.sources.contains_key(id) {
            return Some(&[]);
        }
        if let Some(t) = self.transforms.get(id) {
            return Some(t.inputs());
        }
        self.sinks.get(id).map(|s| s.inputs())
    }

    /// The ids that read `id` (transforms and sinks), in file order.
    pub fn downstream_of(&self, id: &str) -> Vec<&str> {
        let transforms = self.transforms.iter().map(|(k, t)| (k, t.inputs()));
        let sinks = self.sinks.iter().map(|(k, s)| (k, s.inputs()));
        transforms
            .chain(sinks)
            .filter(|(_, inputs)| inputs.iter().any(|i| i == id))
            .map(|(k, _)| k.as_str())
            .collect()
    }

    /// A topological order of all node ids: sources (file order), then transforms
    /// (each after all of its inputs, otherwise in file order), then sinks.
    pub fn topo_order(&self) -> Vec<&str> {
        let mut order: Vec<&str> = self.sources.keys().map(String::as_str).collect();
        let mut pending: HashMap<&str, usize> = HashMap::new();
        let mut readers: HashMap<&str, Vec<&str>> = HashMap::new();
        for (id, t) in &self.transforms {
            let deps: HashSet<&str> = t
                .inputs()
                .iter()
                .map(String::as_str)
                .filter(|i| self.transforms.contains_key(*i))
                .collect();
            pending.insert(id, deps.len());
            for d in deps {
                readers.entry(d).or_default().push(id);
            }
        }
        let mut ready: VecDeque<&str> = self
            .transforms
            .keys()
            .map(String::as_str)
            .filter(|id| pending[id] == 0)
            .collect();
        let mut done: HashSet<&str> = HashSet::new();
        while let Some(id) = ready.pop_front() {
            order.push(id);
            done.insert(id);
            for r in readers.get(id).map(Vec::as_slice).unwrap_or(&[]) {
                let n = pending.get_mut(r).expect("reader is a transform");
                *n -= 1;
                if *n == 0 {
                    ready.push_back(r);
                }
            }
        }
        // A validated spec has no cycle; keep every id anyway.
        order.extend(
            self.transforms
                .keys()
                .map(String::as_str)
                .filter(|id| !done.contains(id)),
        );
        order.extend(self.sinks.keys().map(String::as_str));
        order
    }
}

/// `checkpoint:` — periodic consistent snapshots (exactly-once sinks need them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointSpec {
    /// `interval:` between checkpoints; default 10s.
    pub interval: Duration,
    /// `dir:`; default `<data_dir>/checkpoints` when `data_dir` is set, else `None`
    /// (the CLI then uses `<--data-dir>/checkpoints`).
    pub dir: Option<PathBuf>,
    /// `keep:` how many completed checkpoints to retain; default 3.
    pub keep: usize,
    /// `timeout:` after which an unfinished checkpoint is abandoned; default 60s.
    pub timeout: Duration,
    /// `store:` the state store — a directory several processes of one job
    /// share (a shared file system) — where operators whose state follows
    /// source partitions write it; default `<dir>/shards`.
    pub store: Option<PathBuf>,
}

impl Default for CheckpointSpec {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            dir: None,
            keep: 3,
            timeout: Duration::from_secs(60),
            store: None,
        }
    }
}

/// A source (`sources:` entry): the config of the connector its `type:` names.
#[derive(Debug, Clone)]
pub struct SourceSpec(Arc<dyn SourceConfig>);

impl SourceSpec {
    /// Wrap a connector's config.
    pub fn new(config: Arc<dyn SourceConfig>) -> Self {
        Self(config)
    }

    /// The connector's config.
    pub fn config(&self) -> &dyn SourceConfig {
        self.0.as_ref()
    }

    /// The config as the connector's own type, if it is a `T`.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref()
    }

    /// How many parallel readers (tasks, group members).
    pub fn parallelism(&self) -> usize {
        self.0.parallelism()
    }

    /// The event-time settings, if any.
    pub fn event_time(&self) -> Option<&EventTimeSpec> {
        self.0.event_time()
    }

    /// The declared schema, if any.
    pub fn schema(&self) -> Option<&SchemaSpec> {
        self.0.schema()
    }

    /// The YAML `type:` value.
    pub fn kind(&self) -> &'static str {
        self.0.kind()
    }
}

impl PartialEq for SourceSpec {
    fn eq(&self, other: &Self) -> bool {
        self.0.same_as(other.0.as_any())
    }
}

/// A sink (`sinks:` entry): the config of the connector its `type:` names.
#[derive(Debug, Clone)]
pub struct SinkSpec(Arc<dyn SinkConfig>);

impl SinkSpec {
    /// Wrap a connector's config.
    pub fn new(config: Arc<dyn SinkConfig>) -> Self {
        Self(config)
    }

    /// The connector's config.
    pub fn config(&self) -> &dyn SinkConfig {
        self.0.as_ref()
    }

    /// The config as the connector's own type, if it is a `T`.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref()
    }

    /// The ids it reads.
    pub fn inputs(&self) -> &[String] {
        self.0.inputs()
    }

    /// Parallel writers.
    pub fn parallelism(&self) -> usize {
        self.0.parallelism()
    }

    /// The column its input is partitioned by across writers, if any.
    pub fn key(&self) -> Option<&str> {
        self.0.key()
    }

    /// The YAML `type:` value.
    pub fn kind(&self) -> &'static str {
        self.0.kind()
    }
}

impl PartialEq for SinkSpec {
    fn eq(&self, other: &Self) -> bool {
        self.0.same_as(other.0.as_any())
    }
}

/// Default `max_record_bytes:` (1 MiB).
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;
/// Default `max_depth:` (JSON nesting levels).
pub const DEFAULT_MAX_DEPTH: usize = 64;

/// Limits and typing of a source's record decoder. A record over a limit,
/// or a value that does not fit its declared type exactly, becomes a dead
/// letter with the reason; the job goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeSpec {
    /// `max_record_bytes:` the largest record (line) read; default 1 MiB.
    pub max_record_bytes: usize,
    /// `max_depth:` the deepest JSON nesting of objects and arrays; default 64.
    pub max_depth: usize,
    /// `coerce:` which declared fields convert leniently; default none.
    pub coerce: Coerce,
}

impl Default for DecodeSpec {
    fn default() -> Self {
        Self {
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_depth: DEFAULT_MAX_DEPTH,
            coerce: Coerce::None,
        }
    }
}

/// Which declared fields convert leniently (`1.9` -> 1 for an integer, the
/// string `"123"` -> 123, out-of-range integers clamped, too-large floats ->
/// infinity) instead of becoming dead letters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Coerce {
    /// `coerce: false` (the default): strict typing for every field.
    #[default]
    None,
    /// `coerce: true`: lenient for every field.
    All,
    /// `coerce: [a, b]`: lenient for these fields only.
    Fields(Vec<String>),
}

impl Coerce {
    /// Whether `field` converts leniently.
    pub fn applies(&self, field: &str) -> bool {
        match self {
            Coerce::None => false,
            Coerce::All => true,
            Coerce::Fields(f) => f.iter().any(|n| n == field),
        }
    }
}

/// Partition assignment strategy of a consumer group (Kafka names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Assignor {
    /// `range`: contiguous partition ranges per member.
    Range,
    /// `round-robin`: partitions dealt one by one.
    RoundRobin,
    /// `sticky`: balanced, keeps previous assignments (eager rebalance).
    Sticky,
    /// `cooperative-sticky`: sticky with incremental (cooperative) rebalances.
    #[default]
    CooperativeSticky,
}

impl Assignor {
    /// The YAML name.
    pub fn name(&self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "round-robin",
            Assignor::Sticky => "sticky",
            Assignor::CooperativeSticky => "cooperative-sticky",
        }
    }
}

/// Where a log source starts when its group has no committed offset... or always.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StartFrom {
    /// `earliest`: from the first retained offset.
    Earliest,
    /// `latest`: only records produced from now on.
    Latest,
    /// `committed`: from the group's committed offsets (earliest when none).
    #[default]
    Committed,
}

impl StartFrom {
    /// The YAML name.
    pub fn name(&self) -> &'static str {
        match self {
            StartFrom::Earliest => "earliest",
            StartFrom::Latest => "latest",
            StartFrom::Committed => "committed",
        }
    }
}

/// The encoding of log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RecordFormat {
    /// `json` (alias `jsonl`): one JSON object per record.
    #[default]
    Json,
    /// `avro`: one Avro datum per record, framed (see [`AvroSource`]).
    Avro,
    /// `protobuf`: one Protobuf message per record (see [`ProtoSource`]).
    Protobuf,
}

impl RecordFormat {
    /// The YAML spelling.
    pub fn name(&self) -> &'static str {
        match self {
            RecordFormat::Json => "json",
            RecordFormat::Avro => "avro",
            RecordFormat::Protobuf => "protobuf",
        }
    }
}

/// Where the message type of `format: protobuf` records comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtoSource {
    /// `schema_registry: { url }`: records in the Confluent wire format
    /// (byte 0, a 4-byte big-endian schema id, the message indexes, the
    /// message); `.proto` schemas are fetched from the registry by id.
    Registry {
        /// The registry's base URL.
        url: String,
    },
    /// `proto_schema: { file, message }`: each record is a plain message of
    /// type `message` (its full name, `package.Name`) from the `.proto` file.
    SchemaFile {
        /// The `.proto` file (imports are resolved next to it).
        path: PathBuf,
        /// The message type's full name.
        message: String,
    },
}

/// Where the writer schemas of `format: avro` records come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AvroSource {
    /// `schema_registry: { url }`: records in the Confluent wire format
    /// (byte 0, a 4-byte big-endian schema id, the Avro body); schemas are
    /// fetched from the registry by id (`GET /schemas/ids/{id}`).
    Registry {
        /// The registry's base URL.
        url: String,
    },
    /// `avro_schema: file.avsc`: records in Avro's single-object encoding
    /// (`C3 01`, the schema's 8-byte Rabin fingerprint, the body).
    SchemaFile(PathBuf),
}

/// `event_time:` — which column is event time and how late records may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTimeSpec {
    /// `column:` holding the event timestamp.
    pub column: String,
    /// `max_delay:` bounded out-of-orderness for watermarks; default 0s.
    pub max_delay: Duration,
    /// `idle_timeout:` after which a silent partition stops holding back the watermark.
    pub idle_timeout: Option<Duration>,
}

/// File encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FileFormat {
    /// `jsonl` (alias `json`): one JSON object per line.
    #[default]
    Jsonl,
    /// `csv`.
    Csv,
    /// `parquet`: Apache Parquet files (file sources and sinks only; one
    /// Parquet file per committed part).
    Parquet,
}

impl FileFormat {
    /// The YAML name, also the usual file extension.
    pub fn name(&self) -> &'static str {
        match self {
            FileFormat::Jsonl => "jsonl",
            FileFormat::Csv => "csv",
            FileFormat::Parquet => "parquet",
        }
    }
}

/// `schema:` — a YAML map `column: type`, order preserved.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SchemaSpec {
    /// The columns, in file order.
    pub fields: Vec<FieldSpec>,
}

impl SchemaSpec {
    /// The field named `name`.
    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// One column of a [`SchemaSpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    /// Column name.
    pub name: String,
    /// Column type.
    pub data_type: FieldType,
    /// Whether the value may be missing or null (type written with a trailing `?`).
    pub nullable: bool,
}

/// Column types a schema may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// `utf8` or `string`.
    Utf8,
    /// `int32`.
    Int32,
    /// `int64`.
    Int64,
    /// `float32`.
    Float32,
    /// `float64`.
    Float64,
    /// `bool` or `boolean`.
    Boolean,
    /// `timestamp_ms` or `timestamp(ms)`: milliseconds since the Unix epoch.
    TimestampMs,
    /// `timestamp_us` or `timestamp(us)`: microseconds since the Unix epoch.
    TimestampUs,
    /// `date32` or `date`: days since the Unix epoch.
    Date32,
}

impl FieldType {
    /// The canonical YAML name.
    pub fn name(&self) -> &'static str {
        match self {
            FieldType::Utf8 => "utf8",
            FieldType::Int32 => "int32",
            FieldType::Int64 => "int64",
            FieldType::Float32 => "float32",
            FieldType::Float64 => "float64",
            FieldType::Boolean => "bool",
            FieldType::TimestampMs => "timestamp_ms",
            FieldType::TimestampUs => "timestamp_us",
            FieldType::Date32 => "date32",
        }
    }
}

/// A transform (`transforms:` entry), selected by `type:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransformSpec {
    /// `type: filter`.
    Filter(FilterTransform),
    /// `type: sql`.
    Sql(SqlTransform),
    /// `type: score`.
    Score(ScoreTransform),
    /// `type: dedup`.
    Dedup(DedupTransform),
}

impl TransformSpec {
    /// The ids it reads.
    pub fn inputs(&self) -> &[String] {
        match self {
            TransformSpec::Filter(t) => &t.inputs,
            TransformSpec::Sql(t) => &t.inputs,
            TransformSpec::Score(t) => &t.inputs,
            TransformSpec::Dedup(t) => &t.inputs,
        }
    }

    /// Parallel instances; default 1.
    pub fn parallelism(&self) -> usize {
        match self {
            TransformSpec::Filter(t) => t.parallelism,
            TransformSpec::Sql(t) => t.parallelism,
            TransformSpec::Score(t) => t.parallelism,
            TransformSpec::Dedup(t) => t.parallelism,
        }
    }

    /// The column records are partitioned by between parallel instances.
    pub fn key(&self) -> Option<&str> {
        match self {
            TransformSpec::Filter(t) => t.key.as_deref(),
            TransformSpec::Sql(t) => t.key.as_deref(),
            TransformSpec::Score(t) => t.key.as_deref(),
            // Equal keys are equal on the first column: shuffle on it.
            TransformSpec::Dedup(t) => (t.parallelism > 1).then(|| t.key[0].as_str()),
        }
    }

    /// The YAML `type:` value: `filter`, `sql`, `score` or `dedup`.
    pub fn kind(&self) -> &'static str {
        match self {
            TransformSpec::Filter(_) => "filter",
            TransformSpec::Sql(_) => "sql",
            TransformSpec::Score(_) => "score",
            TransformSpec::Dedup(_) => "dedup",
        }
    }
}

/// `type: filter` — keep the records matching a SQL boolean expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterTransform {
    /// `inputs:` (non-empty).
    pub inputs: Vec<String>,
    /// `where:` a SQL boolean expression over the input columns.
    pub where_: String,
    /// `parallelism:`; default 1.
    pub parallelism: usize,
    /// `key:` partitioning column between parallel instances.
    pub key: Option<String>,
}

/// `type: sql` — a SQL query; each input is a table of that name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlTransform {
    /// `inputs:` (non-empty).
    pub inputs: Vec<String>,
    /// `query:`.
    pub query: String,
    /// `parallelism:`; default 1.
    pub parallelism: usize,
    /// `key:` partitioning column between parallel instances.
    pub key: Option<String>,
    /// `lookup:` tables loaded from files that the query may join with.
    pub lookup: Vec<LookupSpec>,
}

/// One entry of a `sql` transform's `lookup:` map: a table the query
/// joins the stream with, by that name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupSpec {
    /// The table's name in the query (the map key).
    pub name: String,
    /// Where the rows are.
    pub source: LookupSource,
    /// `schema:` column types; absent = inferred from the file or read
    /// from Postgres (required for Redis).
    pub schema: Option<SchemaSpec>,
    /// `cache:` of a table in Postgres or Redis (looked up per batch).
    pub cache: LookupCache,
}

/// Where a lookup table's rows are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupSource {
    /// `type: file` (the default): a CSV file with a header row, loaded
    /// whole.
    File {
        /// `path:` (relative paths: from the working directory).
        path: PathBuf,
        /// `refresh:` poll the file this often and swap in a changed one;
        /// absent = read once at start.
        refresh: Option<Duration>,
    },
    /// `type: postgres`: rows fetched per batch by key.
    Postgres {
        /// `url:`.
        url: String,
        /// `table:` or `query:` (a `SELECT` whose result is the table).
        relation: PostgresRelation,
    },
    /// `type: redis`: one hash per key.
    Redis {
        /// `url:`.
        url: String,
        /// `key:` template naming the join key column, e.g. `merchant:{merchant_id}`.
        key: String,
    },
}

/// What a Postgres lookup reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostgresRelation {
    /// `table:` `name` or `schema.name`.
    Table(String),
    /// `query:` a `SELECT`.
    Query(String),
}

/// `cache:` of a lookup in an outside store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupCache {
    /// `max_entries:` keys held (found or not); default 100 000.
    pub max_entries: usize,
    /// `ttl:` how long an answer (a row, or "no such key") is reused; a
    /// changed row is seen after at most this long. Default 30 s.
    pub ttl: Duration,
}

impl Default for LookupCache {
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            ttl: Duration::from_secs(30),
        }
    }
}

/// `type: score` — run a model over every batch and append its score.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreTransform {
    /// `inputs:` (non-empty).
    pub inputs: Vec<String>,
    /// `model:` the model file (relative paths: from the working directory,
    /// like every path in the pipeline file).
    pub model: PathBuf,
    /// `format:`; absent = inferred from the file.
    pub format: Option<ModelFormat>,
    /// `features:` input columns, in the model's feature order.
    pub features: Vec<String>,
    /// `output:` the score column's name; default `score`.
    pub output: String,
    /// `reload:` swap in a changed model file while running; default false.
    pub reload: bool,
    /// `parallelism:`; default 1.
    pub parallelism: usize,
    /// `key:` partitioning column between parallel instances.
    pub key: Option<String>,
}

/// A model file format (`format:` of a `score` transform).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    /// ONNX (through tract).
    Onnx,
    /// XGBoost JSON.
    Xgboost,
    /// LightGBM text.
    Lightgbm,
}

/// `type: dedup` — drop records whose key was seen within a time bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupTransform {
    /// `inputs:` (non-empty).
    pub inputs: Vec<String>,
    /// `key:` the columns that identify a record (non-empty).
    pub key: Vec<String>,
    /// `time:` the event-time column.
    pub time: String,
    /// `within:` how far apart in event time two records count as repeats.
    pub within: Duration,
    /// `parallelism:`; default 1 (shuffled on the first key column).
    pub parallelism: usize,
}

/// The messages a `format: protobuf` sink writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoSink {
    /// `proto_schema.file`: the `.proto` file.
    pub path: PathBuf,
    /// `proto_schema.message`: the message type's full name.
    pub message: String,
    /// `schema_registry:` where the file is registered (the records are then
    /// in the Confluent wire format); `None`: plain messages.
    pub registry: Option<AvroSink>,
}

/// Where an Avro (or Protobuf) sink registers its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvroSink {
    /// The registry's base URL.
    pub url: String,
    /// The subject; default `<topic>-value` (TopicNameStrategy).
    pub subject: String,
}

/// One part of a key template (see [`key_template`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    /// Text copied as is.
    Text(String),
    /// The value of a column.
    Column(String),
}

/// Parse a key template such as `features:card:{card_id}`: text with
/// `{column}` parts (`{{` and `}}` stand for literal braces). At least one
/// column is required, so that rows do not all write one key.
pub fn key_template(template: &str) -> Result<Vec<KeyPart>, String> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut column = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some('{') | None => {
                            return Err(format!("unclosed `{{` in key template `{template}`"));
                        }
                        Some(c) => column.push(c),
                    }
                }
                let column = column.trim().to_string();
                if column.is_empty() {
                    return Err(format!("an empty `{{}}` in key template `{template}`"));
                }
                if !text.is_empty() {
                    parts.push(KeyPart::Text(std::mem::take(&mut text)));
                }
                parts.push(KeyPart::Column(column));
            }
            '}' => return Err(format!("a `}}` without `{{` in key template `{template}`")),
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        parts.push(KeyPart::Text(text));
    }
    if !parts.iter().any(|p| matches!(p, KeyPart::Column(_))) {
        return Err(format!(
            "key template `{template}` names no column, so every row would write one key"
        ));
    }
    Ok(parts)
}

/// The columns a key template names, or why it does not parse.
pub fn key_template_columns(template: &str) -> Result<Vec<String>, String> {
    Ok(key_template(template)?
        .into_iter()
        .filter_map(|p| match p {
            KeyPart::Column(c) => Some(c),
            KeyPart::Text(_) => None,
        })
        .collect())
}

/// `dead_letter:` — where records that cannot be decoded or processed go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterSpec {
    /// The output.
    pub sink: DeadLetterSink,
}

/// The output of the dead-letter channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterSink {
    /// `{ type: file, path: DIR, format: jsonl }`.
    File {
        /// Output directory.
        path: PathBuf,
        /// Encoding; default `jsonl`.
        format: FileFormat,
    },
    /// `{ type: stdout }`.
    Stdout,
}
