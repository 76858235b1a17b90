//! The `kafka` connector, through `rdkafka` (librdkafka built from its
//! vendored source).
//!
//! * [`KafkaSource`]: each instance is a member of a Kafka consumer group;
//!   see its docs for where a partition starts and how offsets are committed.
//! * [`KafkaSink`]: JSON records, keyed by a column; with checkpoints, one
//!   Kafka transaction per completed checkpoint.
//! * [`OffsetLedger`]: when a pipeline reads Kafka and writes one
//!   transactional sink (Kafka or Postgres), the sink stores the source's
//!   offsets atomically with its output, so "what was read" and "what was
//!   written" can never disagree, whichever process dies when.

mod connector;
mod ledger;
mod restart;
mod sink;
mod source;

pub use connector::{KafkaSinkConfig, KafkaSourceConfig, RawKafkaSink, RawKafkaSource};
pub use ledger::{OffsetLedger, PositionStore, TopicPartition};
pub use restart::{GroupOffsets, checkpoint_positions, group_offsets};
pub use sink::{EPOCH_MARKER_PARTITION, KafkaSink, KafkaSinkTransactions};
pub use source::{KafkaSource, SharedPositions};

use std::path::Path;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use rdkafka::ClientConfig;
use shoal_dsl::SchemaSpec;
use shoal_runtime::{Result, RuntimeError};

use crate::schema::arrow_schema;

/// The batches a Kafka source emits: the value schema, plus the record
/// timestamp as a `timestamp_ms` column when `timestamp_column` is set.
pub fn source_schema(values: &SchemaSpec, timestamp_column: Option<&str>) -> SchemaRef {
    let base = arrow_schema(values);
    match timestamp_column {
        None => base,
        Some(c) => {
            let mut fields: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.push(Field::new(
                c,
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ));
            std::sync::Arc::new(Schema::new(fields))
        }
    }
}

/// A client configuration: `bootstrap.servers` plus the pass-through
/// `options:` (which win over Shoal's own settings made before this call).
pub(crate) fn client_config(
    brokers: &str,
    own: &[(&str, String)],
    options: &[(String, String)],
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in own {
        c.set(*k, v);
    }
    for (k, v) in options {
        c.set(k, v);
    }
    c
}

/// A Kafka error as a runtime error, with what was being done.
pub(crate) fn kafka_err(context: &str, e: rdkafka::error::KafkaError) -> RuntimeError {
    RuntimeError::External(format!("kafka: {context}: {e}"))
}

/// This process's stable identity: a random id kept in `data_dir/process-id`
/// (created on first use). Two processes of one job have different data
/// directories and so different ids; a process restarted on its data
/// directory keeps its id, so its Kafka transactional ids fence its own
/// zombie and its Postgres markers continue where it stopped.
pub fn process_identity(data_dir: &Path) -> Result<String> {
    let path = data_dir.join("process-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim().to_string();
        if !id.is_empty() {
            return Ok(id);
        }
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| RuntimeError::io(format!("create {}", data_dir.display()), e))?;
    let id = format!("{:016x}", rand::random::<u64>());
    let tmp = data_dir.join(".process-id.tmp");
    std::fs::write(&tmp, &id)
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|e| RuntimeError::io(format!("write {}", path.display()), e))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_identity_is_stable_per_data_dir() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let first = process_identity(a.path()).unwrap();
        assert_eq!(process_identity(a.path()).unwrap(), first);
        assert_ne!(process_identity(b.path()).unwrap(), first);
    }
}
