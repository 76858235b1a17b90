//! The [`Source`] trait and the context a source runs in.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::dead_letter::{DeadLetter, DeadLetters};
use crate::error::Result;
use crate::message::Message;
use crate::metrics::NodeMetrics;
use crate::output::Output;

/// Produces batches. One instance per parallel task; instance `i` of `n`
/// reads its share (partitions, a slice of the generator's sequence, ...).
pub trait Source: Send + 'static {
    /// Run until the input ends or [`SourceContext::is_cancelled`]. Returning
    /// `Ok` sends `End` downstream.
    fn run<'a>(self: Box<Self>, ctx: &'a mut SourceContext) -> BoxFuture<'a, Result<()>>;
}

/// What a running source instance can do.
pub struct SourceContext {
    /// The source's node id.
    pub node: String,
    /// This instance's index, `0..parallelism`.
    pub instance: usize,
    /// How many instances the source has.
    pub parallelism: usize,
    pub(crate) output: Output,
    pub(crate) metrics: Arc<NodeMetrics>,
    pub(crate) cancel: CancellationToken,
    pub(crate) dead: DeadLetters,
    pub(crate) last_watermark: i64,
}

impl SourceContext {
    /// Send a batch downstream, waiting while downstream is busy.
    pub async fn emit(&mut self, batch: RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        self.output.send_batch(batch).await?;
        self.metrics.add_out(rows);
        Ok(())
    }

    /// Advance event time downstream (ignored unless it moves forward).
    pub async fn emit_watermark(&mut self, watermark: i64) -> Result<()> {
        if watermark <= self.last_watermark {
            return Ok(());
        }
        self.last_watermark = watermark;
        self.metrics
            .watermark
            .store(watermark, std::sync::atomic::Ordering::Relaxed);
        self.output.broadcast(Message::Watermark(watermark)).await
    }

    /// Send a record to the dead-letter output and count it.
    pub async fn dead_letter(&mut self, letter: DeadLetter) -> Result<()> {
        self.metrics.add_dead(1);
        self.dead.send(letter).await
    }

    /// Whether the job is being stopped (Ctrl-C or a failure elsewhere).
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// A token that completes when the job is being stopped.
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// This source's counters.
    pub fn metrics(&self) -> &NodeMetrics {
        &self.metrics
    }
}
