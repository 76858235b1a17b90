//! Event time at a source: which column, how late records may be, and the
//! watermarks that follow from it.

use std::time::Instant;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use shoal_dsl::EventTimeSpec;
use shoal_runtime::{
    Result, RuntimeError, SharedPartitionTimes, SourceContext, WatermarkTracker, max_event_time_ms,
};

/// Watermark generation for one source instance.
#[derive(Debug)]
pub struct EventTime {
    column: usize,
    tracker: WatermarkTracker,
}

impl EventTime {
    /// Event time from `spec.column` of `schema`, over `partitions` partitions.
    pub fn new(spec: &EventTimeSpec, schema: &SchemaRef, partitions: usize) -> Result<Self> {
        let column = schema.index_of(&spec.column).map_err(|_| {
            RuntimeError::User(format!(
                "event_time column `{}` is not in the source schema",
                spec.column
            ))
        })?;
        Ok(Self {
            column,
            tracker: WatermarkTracker::new(partitions, spec.max_delay, spec.idle_timeout),
        })
    }

    /// Share partition times with the source's other instances (see
    /// [`WatermarkTracker::shared`]): every partition, owned or not, then
    /// holds this instance's watermark back.
    pub fn shared(mut self, times: SharedPartitionTimes) -> Self {
        self.tracker = self.tracker.shared(times);
        self
    }

    /// Note a batch read from `partition`.
    pub fn observe(&mut self, partition: usize, batch: &RecordBatch) {
        if let Some(ts) = max_event_time_ms(batch, self.column) {
            self.tracker.observe(partition, ts, Instant::now());
        }
    }

    /// `partition`'s own watermark: its largest event time seen minus the
    /// allowed delay (`i64::MIN` before its first record).
    pub fn partition_watermark(&self, partition: usize) -> i64 {
        self.tracker.partition_watermark(partition)
    }

    /// The instance now reads exactly `partitions`; only they hold its
    /// watermark back.
    pub fn assign(&mut self, partitions: &[u32]) {
        let ps: Vec<usize> = partitions.iter().map(|p| *p as usize).collect();
        self.tracker.assign(&ps, Instant::now());
    }

    /// Emit the current watermark downstream if it advanced.
    pub async fn emit(&self, ctx: &mut SourceContext) -> Result<()> {
        match self.tracker.watermark(Instant::now()) {
            Some(w) => ctx.emit_watermark(w).await,
            None => Ok(()),
        }
    }
}
