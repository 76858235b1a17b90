//! The [`Sink`] trait: the end of a pipeline.

use arrow::record_batch::RecordBatch;

use crate::dead_letter::DeadLetter;
use crate::error::Result;

/// Writes batches to the outside world. One instance per parallel task.
///
/// Delivery: a sink that only implements [`Sink::write`] and
/// [`Sink::finish`] is at-least-once across failures. Transactional sinks
/// stage each epoch in [`Sink::pre_commit`] and make it visible in
/// [`Sink::commit`], which must be idempotent.
pub trait Sink: Send + 'static {
    /// Write one batch.
    fn write(&mut self, batch: &RecordBatch) -> Result<()>;

    /// Checkpoint barrier `epoch` reached this sink: stage everything written
    /// since the previous barrier.
    fn pre_commit(&mut self, _epoch: u64) -> Result<()> {
        Ok(())
    }

    /// Epoch `epoch` is part of a completed checkpoint: make it visible.
    fn commit(&mut self, _epoch: u64) -> Result<()> {
        Ok(())
    }

    /// No more batches will be written. In a checkpointed run barriers
    /// still follow: everything written so far is committed by the next
    /// checkpoint that completes, and [`Sink::finish`] is not called.
    fn end_of_data(&mut self) -> Result<()> {
        Ok(())
    }

    /// End of input (runs without checkpoints): flush and make everything
    /// written visible.
    fn finish(&mut self) -> Result<()>;

    /// Records this sink refused since the last call (rows a database
    /// rejected), for the pipeline's dead-letter output. The sink task asks
    /// after every call that writes to the outside world.
    fn take_rejected(&mut self) -> Vec<DeadLetter> {
        Vec::new()
    }

    /// Start of a checkpointed run: commit the epochs staged by an earlier
    /// run up to `committed` (the newest completed checkpoint, `None` when
    /// there is none) and abort the staged epochs after it.
    fn recover(&mut self, _committed: Option<u64>) -> Result<()> {
        Ok(())
    }

    /// The sink task starts: `metrics` are its node's counters, where a
    /// sink that waits on an outside system says so
    /// ([`NodeMetrics::set_waiting`](crate::NodeMetrics::set_waiting)).
    fn bind_metrics(&mut self, _metrics: std::sync::Arc<crate::NodeMetrics>) {}
}
