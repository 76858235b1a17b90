//! The [`Sink`] trait: the end of a pipeline.

use arrow::record_batch::RecordBatch;

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

    /// End of input: flush and make everything written visible.
    fn finish(&mut self) -> Result<()>;

    /// Start of a checkpointed run: commit the epochs staged by an earlier
    /// run up to `committed` (the newest completed checkpoint, `None` when
    /// there is none) and abort the staged epochs after it.
    fn recover(&mut self, _committed: Option<u64>) -> Result<()> {
        Ok(())
    }
}
