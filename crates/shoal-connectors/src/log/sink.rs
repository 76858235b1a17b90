//! The `log` sink: appends each batch's rows as JSON records to a topic of
//! the embedded log, keyed by a column (murmur2 partitioning, as Kafka) or
//! round-robin without a key. One append call per batch.
//!
//! Not yet transactional: after a crash, records written after the last
//! checkpoint may be written again (at-least-once).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::record_batch::RecordBatch;
use shoal_log::{LogDir, RecordRef};
use shoal_runtime::{Result, Sink};

use super::key::KeyEncoder;
use super::log_err;

/// One log sink instance.
pub struct LogSink {
    log: LogDir,
    topic: String,
    key: Option<String>,
    keys: KeyEncoder,
    values: Vec<u8>,
    ends: Vec<usize>,
    writers: Option<Arc<AtomicUsize>>,
}

impl LogSink {
    /// A sink appending to `topic` (which must exist) in `log`.
    pub fn new(log: LogDir, topic: &str, key: Option<String>) -> Self {
        Self {
            log,
            topic: topic.to_string(),
            key,
            keys: KeyEncoder::default(),
            values: Vec::new(),
            ends: Vec::new(),
            writers: None,
        }
    }

    /// Count this instance among the topic's writers (decremented at finish).
    pub fn with_writers(mut self, writers: Option<Arc<AtomicUsize>>) -> Self {
        self.writers = writers;
        self
    }
}

impl Sink for LogSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.values.clear();
        self.ends.clear();
        {
            let mut w = arrow::json::LineDelimitedWriter::new(&mut self.values);
            w.write(batch)?;
            w.finish()?;
        }
        for (i, b) in self.values.iter().enumerate() {
            if *b == b'\n' {
                self.ends.push(i);
            }
        }
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
        self.log
            .append(&self.topic, &records)
            .map_err(|e| log_err(&format!("append to {}", self.topic), e))?;
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.log.flush().map_err(|e| log_err("flush log", e))?;
        if let Some(w) = self.writers.take() {
            w.fetch_sub(1, Ordering::SeqCst);
        }
        Ok(())
    }
}
