//! # shoal-connectors
//!
//! Sources and sinks, each implementing the runtime's
//! [`Source`](shoal_runtime::Source) / [`Sink`](shoal_runtime::Sink) traits:
//!
//! | kind | source | sink |
//! |---|---|---|
//! | `generator` | [`generator::TransactionGenerator`] | |
//! | `file` | [`file::FileSource`] (JSON lines, CSV) | [`file::FileSink`] (JSON lines, CSV; atomic commit by rename) |
//! | `stdout` | | [`stdout::StdoutSink`] |
//! | `log` | [`log::LogSource`] (consumer-group member) | [`log::LogSink`] (keyed, murmur2) |
//! | `kafka` | [`kafka::KafkaSource`] (Kafka consumer-group member) | [`kafka::KafkaSink`] (transactional per checkpoint) |
//! | `postgres` | | [`postgres::PostgresSink`] (epoch + marker in one transaction) |
//! | `redis` | | [`redis::RedisSink`] (hashes; each epoch applied atomically with its marker) |
//!
//! plus the dead-letter writers in [`dead_letter`]. Records that cannot be
//! decoded never stop a source: they go to the dead-letter output with their
//! position and the reason.

pub mod avro;
pub mod connector;
pub mod dead_letter;
pub mod event_time;
pub mod file;
pub mod format;
#[doc(hidden)]
pub mod fuzz;
pub mod generator;
pub mod json_check;
pub mod kafka;
pub mod log;
pub mod lookup;
pub mod postgres;
pub mod protobuf;
pub mod redis;
pub mod registry;
pub mod retry;
pub mod schema;
pub mod schema_registry;
pub mod stdout;
pub mod values;
