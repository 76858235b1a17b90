//! The `kafka` sink: each row becomes one JSON record, keyed by the `key`
//! column (Kafka's default partitioner then places it) or unkeyed.
//!
//! * **Without checkpoints**: records are produced as they come (idempotent
//!   producer) and flushed at the end — at-least-once across crashes.
//! * **With checkpoints**: one transactional producer per sink task, its
//!   `transactional.id` derived from pipeline, sink, task and the process
//!   identity, so a restarted process fences its zombie (and the broker
//!   aborts whatever the zombie left open). The rows of each epoch are kept
//!   (encoded) in memory until the checkpoint completes; then one
//!   transaction writes them **and the source offsets of that epoch** (see
//!   [`OffsetLedger`]) to the source's consumer group, and commits. The
//!   output and the read positions thus move together: on restart, or in
//!   another process after a rebalance, reading resumes exactly after the
//!   last committed output. Memory holds one checkpoint interval of output.
//!   When the pipeline does not read Kafka (no ledger), the transaction is
//!   committed at the barrier instead, before the checkpoint is durable:
//!   at-least-once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerGroupMetadata};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientContext, Message};
use shoal_runtime::{Result, RuntimeError, Sink};

use super::ledger::OffsetLedger;
use super::{client_config, kafka_err};
use crate::log::KeyEncoder;
use crate::values::ValueEncoder;

const TXN_TIMEOUT: Duration = Duration::from_secs(60);
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(10);

/// Counts failed deliveries (non-transactional mode fails at the end).
#[derive(Default)]
struct DeliveryCounter {
    failed: AtomicU64,
    last_error: std::sync::Mutex<Option<String>>,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, m)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            *self.last_error.lock().expect("delivery lock") =
                Some(format!("{}/{}: {e}", m.topic(), m.partition()));
        }
    }
}

/// Encoded rows of one epoch.
struct Encoded {
    epoch: u64,
    values: Vec<u8>,
    /// End of each record in `values` (exclusive; a newline follows).
    ends: Vec<usize>,
    /// Key bytes, concatenated, and the end of each; `None` entries are NULL keys.
    keys: Option<(Vec<u8>, Vec<Option<usize>>)>,
}

/// How the sink's transactions line up with checkpoints.
#[derive(Debug, Clone)]
pub struct KafkaSinkTransactions {
    /// `transactional.id` of this task.
    pub transactional_id: String,
    /// Offsets to commit with each epoch; `None` = commit at the barrier.
    pub ledger: Option<Arc<OffsetLedger>>,
}

/// One Kafka sink instance.
pub struct KafkaSink {
    producer: ThreadedProducer<DeliveryCounter>,
    topic: String,
    key: Option<String>,
    keys: KeyEncoder,
    txn: Option<KafkaSinkTransactions>,
    group_meta: Option<ConsumerGroupMetadata>,
    initialised: bool,
    /// Rows waiting for their epoch to commit (transactional mode).
    pending: Vec<Encoded>,
    /// The epoch rows written now belong to.
    epoch: u64,
    /// How rows become record values (`format:`).
    values: ValueEncoder,
}

/// The partition of the sink's own output topic under which a sink that
/// owns the source offsets records, in the source's consumer group, the
/// epoch of its last transaction: the committed "offset" of
/// `(output topic, 0)` is that epoch, written in the same transaction as
/// the rows and the source offsets. A restart reads it to tell apart
/// checkpoints whose source positions are equal (epochs that read nothing
/// but emitted output, like the end-of-input flush). The broker here
/// (tansu 0.6) drops offset-commit metadata, so the marker cannot ride
/// there; an offset of a topic the group does not read is kept. The group
/// then lists the output topic's partition 0 with that "offset".
pub const EPOCH_MARKER_PARTITION: i32 = 0;

impl KafkaSink {
    /// A sink producing to `topic` on `brokers`; transactional when `txn` is
    /// given (the pipeline checkpoints).
    pub fn new(
        brokers: &str,
        topic: &str,
        key: Option<String>,
        options: &[(String, String)],
        txn: Option<KafkaSinkTransactions>,
    ) -> Result<Self> {
        let mut own: Vec<(&str, String)> = vec![
            ("enable.idempotence", "true".into()),
            ("linger.ms", "5".into()),
            ("compression.type", "none".into()),
        ];
        if let Some(t) = &txn {
            own.push(("transactional.id", t.transactional_id.clone()));
            own.push((
                "transaction.timeout.ms",
                TXN_TIMEOUT.as_millis().to_string(),
            ));
        }
        let producer: ThreadedProducer<DeliveryCounter> = client_config(brokers, &own, options)
            .create_with_context(DeliveryCounter::default())
            .map_err(|e| kafka_err("create producer", e))?;
        let group_meta = match txn.as_ref().and_then(|t| t.ledger.as_ref()) {
            Some(ledger) => {
                let c: BaseConsumer = client_config(
                    brokers,
                    &[("group.id", ledger.group().to_string())],
                    options,
                )
                .create()
                .map_err(|e| kafka_err("create group client", e))?;
                Some(c.group_metadata().ok_or_else(|| {
                    RuntimeError::External("kafka: no consumer group metadata".into())
                })?)
            }
            None => None,
        };
        Ok(Self {
            producer,
            topic: topic.to_string(),
            key,
            keys: KeyEncoder::default(),
            txn,
            group_meta,
            initialised: false,
            pending: Vec::new(),
            epoch: 1,
            values: ValueEncoder::Json,
        })
    }

    /// Write record values as `values` encodes them (JSON by default).
    pub fn with_values(mut self, values: ValueEncoder) -> Self {
        self.values = values;
        self
    }

    fn init(&mut self) -> Result<()> {
        if !self.initialised && self.txn.is_some() {
            // Fences an earlier producer with this id and aborts its open transaction.
            self.producer
                .init_transactions(TXN_TIMEOUT)
                .map_err(|e| kafka_err("init transactions", e))?;
        }
        self.initialised = true;
        Ok(())
    }

    fn encode(&mut self, batch: &RecordBatch) -> Result<Encoded> {
        let mut values = Vec::with_capacity(batch.num_rows() * 64);
        let mut ends = Vec::with_capacity(batch.num_rows());
        self.values.encode(batch, &mut values, &mut ends)?;
        let keys = match &self.key {
            Some(k) => {
                let col = batch.schema().index_of(k)?;
                self.keys.encode(batch, col)?;
                let mut bytes = Vec::new();
                let mut idx = Vec::with_capacity(batch.num_rows());
                for i in 0..batch.num_rows() {
                    match self.keys.key(i) {
                        Some(k) => {
                            bytes.extend_from_slice(k);
                            idx.push(Some(bytes.len()));
                        }
                        None => idx.push(None),
                    }
                }
                Some((bytes, idx))
            }
            None => None,
        };
        Ok(Encoded {
            epoch: self.epoch,
            values,
            ends,
            keys,
        })
    }

    /// Hand every record of `e` to the producer (waiting while its queue is full).
    fn produce(&self, e: &Encoded) -> Result<()> {
        let mut start = 0;
        let mut key_start = 0;
        for (i, end) in e.ends.iter().enumerate() {
            let value = &e.values[start..*end];
            let key = match &e.keys {
                Some((bytes, idx)) => match idx[i] {
                    Some(k_end) => {
                        let k = &bytes[key_start..k_end];
                        key_start = k_end;
                        Some(k)
                    }
                    None => None,
                },
                None => None,
            };
            loop {
                let mut record = BaseRecord::<[u8], [u8]>::to(&self.topic).payload(value);
                if let Some(k) = key {
                    record = record.key(k);
                }
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        std::thread::sleep(QUEUE_FULL_WAIT);
                    }
                    Err((e, _)) => return Err(kafka_err(&format!("produce to {}", self.topic), e)),
                }
            }
            start = end + 1;
        }
        Ok(())
    }

    /// One transaction: the pending rows of epochs up to `epoch`, and the
    /// source offsets of those epochs.
    fn commit_through(&mut self, epoch: u64) -> Result<()> {
        self.init()?;
        let n = self.pending.partition_point(|e| e.epoch <= epoch);
        let rows: Vec<Encoded> = self.pending.drain(..n).collect();
        let offsets = match self.txn.as_ref().and_then(|t| t.ledger.as_ref()) {
            Some(l) => l.take_upto(epoch),
            None => Vec::new(),
        };
        let ledger = self.txn.as_ref().and_then(|t| t.ledger.clone());
        if rows.is_empty() && offsets.is_empty() {
            if let Some(l) = &ledger {
                l.mark_committed(epoch);
            }
            return Ok(());
        }
        let p = &self.producer;
        p.begin_transaction()
            .map_err(|e| kafka_err("begin transaction", e))?;
        let result = (|| {
            for e in &rows {
                self.produce(e)?;
            }
            if let Some(meta) = &self.group_meta {
                // The source offsets, and this epoch as the sink's marker
                // (see [`EPOCH_MARKER_PARTITION`]).
                let mut tpl = TopicPartitionList::new();
                for ((t, part), o) in &offsets {
                    tpl.add_partition_offset(t, *part, Offset::Offset(*o))
                        .map_err(|e| kafka_err("offsets", e))?;
                }
                tpl.add_partition_offset(
                    &self.topic,
                    EPOCH_MARKER_PARTITION,
                    Offset::Offset(epoch as i64),
                )
                .map_err(|e| kafka_err("epoch marker", e))?;
                p.send_offsets_to_transaction(&tpl, meta, TXN_TIMEOUT)
                    .map_err(|e| kafka_err("send offsets to transaction", e))?;
            }
            p.commit_transaction(TXN_TIMEOUT)
                .map_err(|e| kafka_err(&format!("commit transaction of epoch {epoch}"), e))
        })();
        match &result {
            Ok(()) => {
                if let Some(l) = &ledger {
                    l.mark_committed(epoch);
                }
                tracing::debug!(
                    epoch,
                    records = rows.iter().map(|e| e.ends.len()).sum::<usize>(),
                    offsets = offsets.len(),
                    "kafka transaction committed"
                )
            }
            Err(_) => {
                let _ = p.abort_transaction(TXN_TIMEOUT);
            }
        }
        result
    }

    fn check_deliveries(&self) -> Result<()> {
        let ctx = self.producer.context();
        let failed = ctx.failed.load(Ordering::Relaxed);
        if failed > 0 {
            let last = ctx.last_error.lock().expect("delivery lock").clone();
            return Err(RuntimeError::External(format!(
                "kafka: {failed} records were not delivered to {} (last: {})",
                self.topic,
                last.unwrap_or_default()
            )));
        }
        Ok(())
    }
}

impl Sink for KafkaSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let e = self.encode(batch)?;
        if self.txn.is_some() {
            self.pending.push(e);
            Ok(())
        } else {
            self.produce(&e)?;
            self.check_deliveries()
        }
    }

    fn pre_commit(&mut self, epoch: u64) -> Result<()> {
        for e in self.pending.iter_mut().filter(|e| e.epoch == self.epoch) {
            e.epoch = epoch;
        }
        self.epoch = epoch + 1;
        let commit_now = self.txn.as_ref().is_some_and(|t| t.ledger.is_none());
        if commit_now {
            self.commit_through(epoch)?;
        }
        Ok(())
    }

    fn commit(&mut self, epoch: u64) -> Result<()> {
        if self.txn.is_some() {
            self.commit_through(epoch)?;
        }
        Ok(())
    }

    fn recover(&mut self, committed: Option<u64>) -> Result<()> {
        self.init()?;
        if let Some(c) = committed {
            self.epoch = c + 1;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if self.txn.is_some() {
            let epoch = self.epoch;
            self.pre_commit(epoch)?;
            self.commit_through(epoch)?;
        }
        self.producer
            .flush(TXN_TIMEOUT)
            .map_err(|e| kafka_err("flush", e))?;
        self.check_deliveries()
    }
}
