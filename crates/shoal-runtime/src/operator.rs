//! The [`Operator`] trait: a transform that maps input batches to output
//! batches, one batch at a time, with hooks for event time and end of input.

use arrow::record_batch::RecordBatch;

use crate::dead_letter::DeadLetter;
use crate::error::Result;
use crate::state::StateContext;

/// A transform run by one task per parallel instance.
///
/// Hooks are synchronous: they compute and push results into the
/// [`Collector`]; the task then sends them downstream (waiting on
/// backpressure) so operators never deal with channels.
pub trait Operator: Send + 'static {
    /// Process one batch from logical input `input` (index into the
    /// operator's inputs as declared in the pipeline).
    fn process_batch(
        &mut self,
        input: usize,
        batch: RecordBatch,
        out: &mut Collector,
    ) -> Result<()>;

    /// Event time advanced to `watermark` (ms since the epoch) on every input.
    fn on_watermark(&mut self, _watermark: i64, _out: &mut Collector) -> Result<()> {
        Ok(())
    }

    /// The watermark to forward downstream once [`Operator::on_watermark`]
    /// handled `input`. By default the input's. An operator whose output
    /// rows carry event times behind its input watermark (a window that
    /// emits its start, a join that pairs a new row with an old one) holds
    /// it back, so its rows are not late downstream. Forwarded watermarks
    /// never go backwards.
    fn output_watermark(&self, input: i64) -> i64 {
        input
    }

    /// Entries held in state (window groups, buffered rows, keys), for the
    /// `state_entries` metric; `None` for a stateless operator.
    fn state_entries(&self) -> Option<usize> {
        None
    }

    /// Every input ended: emit whatever is still held (event time is +inf).
    fn on_end(&mut self, _out: &mut Collector) -> Result<()> {
        Ok(())
    }

    /// A checkpoint barrier passed: return the operator's state (`Null`
    /// when stateless). Called between batches, after alignment, with the
    /// checkpoint's directory: operators with a
    /// [`KeyedState`](crate::state::KeyedState) hand its files to `ctx` and
    /// return the reference; what they return directly lands in the
    /// manifest, so it must stay small (watermarks, references).
    fn snapshot_at(&mut self, _ctx: &StateContext) -> Result<serde_json::Value> {
        Ok(serde_json::Value::Null)
    }

    /// Restore the state [`Operator::snapshot_at`] returned; `states` holds
    /// every instance's (index = instance) of the restored checkpoint, `ctx`
    /// the directory the references are relative to.
    fn restore_at(
        &mut self,
        _states: &[serde_json::Value],
        _instance: usize,
        _ctx: &StateContext,
    ) -> Result<()> {
        Ok(())
    }
}

/// Collects what an operator hook produced. Reused across calls.
#[derive(Debug, Default)]
pub struct Collector {
    pub(crate) batches: Vec<RecordBatch>,
    /// The shard tag of each batch in `batches`.
    pub(crate) tags: Vec<Option<crate::shard::ShardTag>>,
    /// The tag batches emitted now get (set by the task).
    pub(crate) shard: Option<crate::shard::ShardTag>,
    pub(crate) dead: Vec<DeadLetter>,
}

impl Collector {
    /// Emit a batch downstream (empty batches are dropped).
    pub fn emit(&mut self, batch: RecordBatch) {
        if batch.num_rows() > 0 {
            self.batches.push(batch);
            self.tags.push(self.shard);
        }
    }

    /// Send a record to the dead-letter output.
    pub fn dead_letter(&mut self, letter: DeadLetter) {
        self.dead.push(letter);
    }

    /// Batches emitted so far (for tests of operators).
    pub fn batches(&self) -> &[RecordBatch] {
        &self.batches
    }

    /// Dead letters so far (for tests of operators).
    pub fn dead_letters(&self) -> &[DeadLetter] {
        &self.dead
    }

    /// Take the emitted batches, leaving the collector empty.
    pub fn take_batches(&mut self) -> Vec<RecordBatch> {
        self.tags.clear();
        std::mem::take(&mut self.batches)
    }
}
