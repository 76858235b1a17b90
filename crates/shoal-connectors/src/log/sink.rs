//! The `log` sink: appends each batch's rows as records (JSON, or Avro or
//! Protobuf: [`ValueEncoder`]) to a topic of
//! the embedded log, keyed by a column (murmur2 partitioning, as Kafka) or
//! round-robin without a key. One append call per batch.
//!
//! **Exactly-once with checkpoints.** In a checkpointed run every instance
//! is a transactional producer ([`shoal_log::txn`]) with the transactional
//! id `<pipeline>.<sink>.<instance>`; opening it bumps the id's epoch,
//! which fences any older instance. The records between barrier n-1 and
//! barrier n are transaction n: they are appended as they arrive, but
//! `read_committed` readers (the default of the log source and of
//! `shoal consume`) do not see them yet. [`Sink::pre_commit`] at barrier n
//! fsyncs them (the transaction stays open); [`Sink::commit`] after the
//! checkpoint manifest is written appends a COMMIT marker to each touched
//! partition (a replayed commit writes nothing). On restart,
//! [`Sink::recover`] commits the open transactions the newest completed
//! checkpoint covers and aborts the later ones, whose records are then
//! skipped by readers and written again by the restored run — the same
//! staged-epoch scheme as the file sink, with the log's markers in place of
//! renames.
//!
//! Without checkpoints the records are plain appends, visible at once
//! (at-least-once across a crash).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::record_batch::RecordBatch;
use shoal_log::{LogDir, RecordRef, TransactionalProducer};
use shoal_runtime::{Result, RuntimeError, Sink};

use super::key::KeyEncoder;
use super::log_err;
use crate::values::ValueEncoder;

/// One log sink instance.
pub struct LogSink {
    log: LogDir,
    topic: String,
    key: Option<String>,
    keys: KeyEncoder,
    /// How rows become record values (`format:`).
    encoder: ValueEncoder,
    values: Vec<u8>,
    ends: Vec<usize>,
    writers: Option<Arc<AtomicUsize>>,
    /// The transactional id used in checkpointed runs.
    transactional_id: Option<String>,
    /// Checkpointed run: the producer (opened by [`Sink::recover`]).
    producer: Option<TransactionalProducer>,
    /// The transaction being written: the epoch the next barrier closes.
    epoch: u64,
    /// Checkpointed run after end of data: the epoch holding the last
    /// records; once it is committed this instance is no longer a writer.
    last_epoch: Option<u64>,
}

impl LogSink {
    /// A sink appending to `topic` (which must exist) in `log`.
    pub fn new(log: LogDir, topic: &str, key: Option<String>) -> Self {
        Self {
            log,
            topic: topic.to_string(),
            key,
            keys: KeyEncoder::default(),
            encoder: ValueEncoder::Json,
            values: Vec::new(),
            ends: Vec::new(),
            writers: None,
            transactional_id: None,
            producer: None,
            epoch: 1,
            last_epoch: None,
        }
    }

    /// Write record values as `encoder` encodes them (JSON by default).
    pub fn with_values(mut self, encoder: ValueEncoder) -> Self {
        self.encoder = encoder;
        self
    }

    /// The transactional id (`<pipeline>.<sink>.<instance>`) this instance
    /// uses in checkpointed runs; without one it appends plainly.
    pub fn with_transactional_id(mut self, id: String) -> Self {
        self.transactional_id = Some(id);
        self
    }

    fn txn_err(&self, what: &str, e: shoal_log::Error) -> RuntimeError {
        log_err(&format!("{what} ({})", self.topic), e)
    }

    /// Count this instance among the topic's writers (decremented once its
    /// last record is visible: at finish, or in a checkpointed run when the
    /// epoch after end of data is committed).
    pub fn with_writers(mut self, writers: Option<Arc<AtomicUsize>>) -> Self {
        self.writers = writers;
        self
    }

    /// This instance will write nothing more that readers do not see yet.
    fn leave_writers(&mut self) {
        if let Some(w) = self.writers.take() {
            w.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Sink for LogSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.values.clear();
        self.ends.clear();
        self.encoder
            .encode(batch, &mut self.values, &mut self.ends)?;
        if let Some(key) = &self.key {
            let col = batch.schema().index_of(key)?;
            self.keys.encode(batch, col)?;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let mut records: Vec<RecordRef<'_>> = Vec::with_capacity(self.ends.len());
        let mut start = 0;
        for (i, end) in self.ends.iter().enumerate() {
            let key = if self.key.is_some() {
                self.keys.key(i)
            } else {
                None
            };
            records.push((key, &self.values[start..*end], now));
            start = end + 1;
        }
        let written = match &mut self.producer {
            Some(p) => p.send(self.epoch, &records).map(drop),
            None => self.log.append(&self.topic, &records).map(drop),
        };
        drop(records);
        written.map_err(|e| self.txn_err("append", e))
    }

    fn pre_commit(&mut self, epoch: u64) -> Result<()> {
        let Some(p) = &self.producer else {
            return Ok(());
        };
        if epoch != self.epoch {
            return Err(RuntimeError::Internal(format!(
                "log sink on {}: barrier {epoch} while writing transaction {}",
                self.topic, self.epoch
            )));
        }
        // The transaction stays open; its records must survive a crash.
        p.flush().map_err(|e| self.txn_err("fsync", e))?;
        self.epoch = epoch + 1;
        Ok(())
    }

    fn commit(&mut self, epoch: u64) -> Result<()> {
        let result = match &mut self.producer {
            Some(p) => p.commit(epoch).map(drop),
            None => return Ok(()),
        };
        result.map_err(|e| self.txn_err("commit", e))?;
        // In-pipeline readers of the topic (`stop_at_end`) may end now:
        // every record this instance wrote is committed.
        if self.last_epoch.is_some_and(|last| epoch >= last) {
            self.leave_writers();
        }
        Ok(())
    }

    fn end_of_data(&mut self) -> Result<()> {
        if self.producer.is_some() {
            // The open transaction is the last one; the next barrier closes it.
            self.last_epoch = Some(self.epoch);
        }
        Ok(())
    }

    fn recover(&mut self, committed: Option<u64>) -> Result<()> {
        let Some(id) = &self.transactional_id else {
            return Ok(());
        };
        let opened = self.log.transactional_producer(id, &self.topic);
        let mut p = opened.map_err(|e| self.txn_err("open transactional producer", e))?;
        let done = p
            .recover(committed)
            .map_err(|e| self.txn_err("recover transactions", e))?;
        if done != shoal_log::Recovered::default() {
            tracing::info!(
                topic = %self.topic,
                transactional_id = %id,
                committed = ?done.committed,
                aborted = ?done.aborted,
                "log sink recovered transactions of an earlier run"
            );
        }
        self.producer = Some(p);
        self.epoch = committed.map_or(1, |c| c + 1);
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if let Some(p) = &mut self.producer {
            p.commit(u64::MAX)
                .map_err(|e| log_err("commit at end of input", e))?;
        }
        self.log.flush().map_err(|e| log_err("flush log", e))?;
        self.leave_writers();
        Ok(())
    }
}
