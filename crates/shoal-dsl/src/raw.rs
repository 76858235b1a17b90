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
pub enum Scalar {
    /// An integer.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// Text, such as `5s` or `50000/s`.
    Str(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPipeline {
    pub name: Option<String>,
    pub data_dir: Option<String>,
    pub checkpoint: Option<RawCheckpoint>,
    pub sources: Option<IndexMap<String, serde_yaml::Value>>,
    pub transforms: Option<IndexMap<String, RawTransform>>,
    pub sinks: Option<IndexMap<String, serde_yaml::Value>>,
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

/// `coerce: true | false | [field, ...]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawCoerce {
    /// Every declared field, or none.
    All(bool),
    /// These fields.
    Fields(Vec<String>),
}

/// `proto_schema: { file, message }` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProtoSchema {
    /// The `.proto` file.
    pub file: String,
    /// The message type, e.g. `pkg.Txn`.
    pub message: String,
}

/// `schema_registry: { url, subject }` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchemaRegistry {
    /// The registry's base URL.
    pub url: String,
    /// The subject a sink registers under.
    pub subject: Option<String>,
}

/// `event_time: { column, max_delay, idle_timeout }` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEventTime {
    /// The event-time column.
    pub column: String,
    /// How far out of order records may arrive.
    pub max_delay: Option<Scalar>,
    /// After how long without records a partition stops holding time back.
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
