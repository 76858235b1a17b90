//! The pipeline file as serde sees it: every key, no defaults, values as written.
//!
//! serde checks the shape (unknown keys, `type:` values, value types); everything
//! needing a position or a friendly message (durations, enums written as strings,
//! ranges, references) is checked when converting to [`crate::spec`] types.

use indexmap::IndexMap;
use serde::Deserialize;

/// A number or a string, for values like `rate: 50000/s` or `max_delay: 5s`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Scalar {
    Int(i64),
    Float(f64),
    Str(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPipeline {
    pub name: Option<String>,
    pub data_dir: Option<String>,
    pub checkpoint: Option<RawCheckpoint>,
    pub sources: Option<IndexMap<String, RawSource>>,
    pub transforms: Option<IndexMap<String, RawTransform>>,
    pub sinks: Option<IndexMap<String, RawSink>>,
    pub dead_letter: Option<RawDeadLetter>,
    pub outage_timeout: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheckpoint {
    pub interval: Option<Scalar>,
    pub dir: Option<String>,
    pub keep: Option<u64>,
    pub timeout: Option<Scalar>,
    pub store: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum RawSource {
    Generator(RawGenerator),
    File(RawFileSource),
    Log(RawLogSource),
    Kafka(RawKafkaSource),
}

pub(crate) const SOURCE_TYPES: &[&str] = &["generator", "file", "log", "kafka"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGenerator {
    pub profile: Option<String>,
    pub seed: Option<u64>,
    pub count: Option<u64>,
    pub rate: Option<Scalar>,
    pub batch_size: Option<u64>,
    pub parallelism: Option<u64>,
    pub event_time: Option<RawEventTime>,
    pub clock: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFileSource {
    pub path: String,
    pub format: Option<String>,
    pub schema: Option<IndexMap<String, String>>,
    pub header: Option<bool>,
    pub batch_size: Option<u64>,
    pub event_time: Option<RawEventTime>,
    pub coerce: Option<RawCoerce>,
    pub max_record_bytes: Option<Scalar>,
    pub max_depth: Option<u64>,
}

/// `coerce: true | false | [field, ...]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawCoerce {
    All(bool),
    Fields(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLogSource {
    pub topic: String,
    pub group: Option<String>,
    pub parallelism: Option<u64>,
    pub assignor: Option<String>,
    pub start: Option<String>,
    pub stop_at_end: Option<bool>,
    pub session_timeout: Option<Scalar>,
    pub max_poll_interval: Option<Scalar>,
    pub rate: Option<Scalar>,
    pub format: Option<String>,
    pub schema: Option<IndexMap<String, String>>,
    pub batch_size: Option<u64>,
    pub event_time: Option<RawEventTime>,
    pub isolation: Option<String>,
    pub key: Option<String>,
    pub coerce: Option<RawCoerce>,
    pub max_record_bytes: Option<Scalar>,
    pub max_depth: Option<u64>,
    pub schema_registry: Option<RawSchemaRegistry>,
    pub avro_schema: Option<String>,
    pub proto_schema: Option<RawProtoSchema>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKafkaSource {
    pub brokers: String,
    pub topic: Option<String>,
    pub topics: Option<Vec<String>>,
    pub group: Option<String>,
    pub parallelism: Option<u64>,
    pub assignor: Option<String>,
    pub start: Option<String>,
    pub stop_at_end: Option<bool>,
    pub session_timeout: Option<Scalar>,
    pub format: Option<String>,
    pub schema: Option<IndexMap<String, String>>,
    pub timestamp_column: Option<String>,
    pub batch_size: Option<u64>,
    pub event_time: Option<RawEventTime>,
    pub options: Option<IndexMap<String, Scalar>>,
    pub key: Option<String>,
    pub schema_registry: Option<RawSchemaRegistry>,
    pub avro_schema: Option<String>,
    pub proto_schema: Option<RawProtoSchema>,
    pub coerce: Option<RawCoerce>,
    pub max_record_bytes: Option<Scalar>,
    pub max_depth: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProtoSchema {
    pub file: String,
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSchemaRegistry {
    pub url: String,
    pub subject: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEventTime {
    pub column: String,
    pub max_delay: Option<Scalar>,
    pub idle_timeout: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum RawTransform {
    Filter(RawFilter),
    Sql(RawSql),
    Score(RawScore),
    Dedup(RawDedup),
}

pub(crate) const TRANSFORM_TYPES: &[&str] = &["filter", "sql", "score", "dedup"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFilter {
    pub inputs: Vec<String>,
    #[serde(rename = "where")]
    pub where_: String,
    pub parallelism: Option<u64>,
    pub key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSql {
    pub inputs: Vec<String>,
    pub query: String,
    pub parallelism: Option<u64>,
    pub key: Option<String>,
    pub lookup: Option<IndexMap<String, RawLookup>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLookup {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub path: Option<String>,
    pub refresh: Option<Scalar>,
    pub schema: Option<IndexMap<String, String>>,
    pub url: Option<String>,
    pub table: Option<String>,
    pub query: Option<String>,
    pub key: Option<String>,
    pub cache: Option<RawLookupCache>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLookupCache {
    pub max_entries: Option<u64>,
    pub ttl: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScore {
    pub inputs: Vec<String>,
    pub model: String,
    pub format: Option<String>,
    pub features: Vec<String>,
    pub output: Option<String>,
    pub reload: Option<bool>,
    pub parallelism: Option<u64>,
    pub key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDedup {
    pub inputs: Vec<String>,
    pub key: Vec<String>,
    pub time: String,
    pub within: Scalar,
    pub parallelism: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum RawSink {
    Stdout(RawStdoutSink),
    File(RawFileSink),
    Log(RawLogSink),
    Kafka(RawKafkaSink),
    Postgres(RawPostgresSink),
    Redis(RawRedisSink),
}

pub(crate) const SINK_TYPES: &[&str] = &["stdout", "file", "log", "kafka", "postgres", "redis"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStdoutSink {
    pub inputs: Vec<String>,
    pub format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFileSink {
    pub inputs: Vec<String>,
    pub path: String,
    pub format: Option<String>,
    pub parallelism: Option<u64>,
    pub key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLogSink {
    pub inputs: Vec<String>,
    pub topic: String,
    pub partitions: Option<u64>,
    pub key: Option<String>,
    pub format: Option<String>,
    pub schema_registry: Option<RawSchemaRegistry>,
    pub proto_schema: Option<RawProtoSchema>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKafkaSink {
    pub inputs: Vec<String>,
    pub brokers: String,
    pub topic: String,
    pub key: Option<String>,
    pub options: Option<IndexMap<String, Scalar>>,
    pub format: Option<String>,
    pub schema_registry: Option<RawSchemaRegistry>,
    pub proto_schema: Option<RawProtoSchema>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPostgresSink {
    pub inputs: Vec<String>,
    pub url: String,
    pub table: String,
    pub mode: Option<String>,
    pub key_columns: Option<Vec<String>>,
    pub create: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRedisSink {
    pub inputs: Vec<String>,
    pub url: String,
    pub key: String,
    pub fields: Option<Vec<String>>,
    pub ttl: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum RawDeadLetter {
    File(RawDeadLetterFile),
    Stdout(RawDeadLetterStdout),
}

pub(crate) const DEAD_LETTER_TYPES: &[&str] = &["file", "stdout"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDeadLetterFile {
    pub path: String,
    pub format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDeadLetterStdout {}
