//! Shoal pipeline files: YAML to a typed, validated [`PipelineSpec`], with every
//! problem reported as `FILE:LINE:COLUMN: message` plus a hint.
//!
//! # Main types
//!
//! - [`load_file_with`] / [`parse_str_with`] read a pipeline file into a [`PipelineSpec`]:
//!   `sources`, `transforms` and `sinks` maps keyed by id ([`SourceSpec`],
//!   [`TransformSpec`], [`SinkSpec`]), plus `checkpoint`, `data_dir` and
//!   `dead_letter`, with every default filled in.
//! - [`DslError`] is every error (and warning): `Display` is the one-line
//!   `pipeline.yaml:6:27: unknown input "txn"`, [`DslError::render`] adds the
//!   source line, a caret and `hint: did you mean "txns"?`, and it implements
//!   [`miette::Diagnostic`] with the file as named source and a labelled span.
//! - [`PipelineSpec::error_at`] lets later stages (planner, SQL) report their own
//!   errors at the YAML line of the offending value.
//!
//! # Connectors
//!
//! The DSL knows the shape every `sources:` and `sinks:` entry shares (a map
//! with a `type:`); the rest of an entry belongs to the connector of that
//! type, which parses it into its own config ([`connector::FromYaml`], with
//! the [`connector::ConfigCx`] helpers) behind [`SourceSpec`] / [`SinkSpec`].
//! The connectors a file may name come in a [`connector::Catalog`]
//! ([`parse_str_with`], [`load_file_with`]); `shoal_connectors::registry`
//! is the catalog of the built-in ones, and `shoal_plan::parse_str` /
//! `shoal_plan::load_file` read a file with it.
//!
//! # The file, checked
//!
//! Keys not listed below are errors (`unknown key "wher"` + `did you mean "where"?`).
//! Ids are unique across the three sections, start with a letter or `_` and use
//! letters, digits, `_` and `-`. Every `inputs` entry must name a source or a
//! transform; transforms must not form a cycle. `parallelism` is 1..=1024,
//! `batch_size` 1..=1048576. A source or transform nobody reads is a warning
//! ([`PipelineSpec::warnings`]).
//!
//! Bad input never panics: empty files, non-map documents, invalid UTF-8, NUL
//! bytes, tabs in indentation, unclosed quotes, duplicate keys, alias bombs, deep
//! nesting, files over 1 MiB ([`MAX_FILE_BYTES`]), directories and missing files
//! all give a [`DslError`].
//!
//! | key | type | default |
//! |---|---|---|
//! | `name` | string | file stem |
//! | `data_dir` | path | CLI `--data-dir` |
//! | `checkpoint` | `{interval, dir, keep, timeout}` | none (at-least-once); inside: `10s`, `<data_dir>/checkpoints`, `3`, `60s` |
//! | `sources.ID` | `type: generator` `{profile, seed, count, rate, batch_size, parallelism, event_time}` | `transactions`, `0`, unbounded, unthrottled, `8192`, `1` |
//! | | `type: file` `{path, format, schema, header, batch_size, event_time}` | -, from extension (`jsonl`/`json`/`csv`), inferred, `true`, `8192` |
//! | | `type: log` `{topic, group, parallelism, assignor, start, stop_at_end, session_timeout, rate, format, schema, batch_size, event_time, isolation}` | -, pipeline name, `1`, `cooperative-sticky`, `committed`, `false`, `10s`, unlimited, `json`, inferred, `8192`, -, `read_committed` |
//! | `event_time` | `{column, max_delay, idle_timeout}` | -, `0s`, none |
//! | `schema` | map `column: type` (`utf8`, `int32`, `int64`, `float32`, `float64`, `bool`, `timestamp_ms`, `timestamp_us`, `date32`; `?` suffix = nullable) | |
//! | `transforms.ID` | `type: filter` `{inputs, where, parallelism, key}` / `type: sql` `{inputs, query, parallelism, key}` / `type: dedup` `{inputs, key: [cols], time, within, parallelism}` | parallelism `1` |
//! | `sinks.ID` | `type: stdout` `{inputs, format}` / `type: file` `{inputs, path, format, parallelism, key}` / `type: log` `{inputs, topic, partitions, key}` | format `jsonl`, parallelism `1` |
//! | `dead_letter` | `{type: file, path, format}` or `{type: stdout}` | none |
//! | `outage_timeout` | duration (≥ 1s): how long an unreachable Postgres, Redis or schema registry is retried before the job fails | `2m` |
//!
//! Durations are written `250ms`, `5s`, `1m`, `2m30s`, `1h` ([`parse_duration`]);
//! rates `50000/s` or a number ([`parse_rate`]); sizes `64MiB`, `1GB`
//! ([`parse_size`]).

pub mod connector;
mod convert;
mod error;
mod graph;
mod load;
mod positions;
mod raw;
mod shape;
mod spec;
mod suggest;
mod syntax;
mod units;

pub use convert::{DEFAULT_BATCH_SIZE, DEFAULT_OUTAGE_TIMEOUT, MAX_BATCH_SIZE, MAX_PARALLELISM};
pub use error::{DslError, Location, Result};
pub use load::{MAX_FILE_BYTES, load_file_with, parse_bytes_with, parse_str_with};
pub use spec::{
    Assignor, AvroSink, AvroSource, CheckpointSpec, Coerce, DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_RECORD_BYTES, DeadLetterSink, DeadLetterSpec, DecodeSpec, DedupTransform,
    EventTimeSpec, FieldSpec, FieldType, FileFormat, FilterTransform, KeyPart, LookupCache,
    LookupSource, LookupSpec, ModelFormat, PipelineSpec, PostgresRelation, ProtoSink, ProtoSource,
    RecordFormat, SchemaSpec, ScoreTransform, SinkSpec, SourceSpec, SqlTransform, StartFrom,
    TransformSpec, key_template, key_template_columns,
};
pub use units::{parse_duration, parse_rate, parse_size};

/// Re-exported so users of [`PipelineSpec`]'s maps need not depend on `indexmap`.
pub use indexmap::IndexMap;
