//! The [`Source`] trait and the context a source runs in.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::{CheckpointLink, Inject, ToCoordinator};
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

    /// Restore from a checkpoint: `states` holds the state every instance of
    /// this source reported (index = instance), `instance` is this one's.
    /// The default ignores it (a source that cannot resume).
    fn restore(&mut self, _states: &[serde_json::Value], _instance: usize) -> Result<()> {
        Ok(())
    }
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
    /// Whether [`SourceContext::emit_idle`] was the last thing said.
    pub(crate) idle: bool,
    pub(crate) checkpoint: Option<SourceCheckpoint>,
    pub(crate) shards: Option<Arc<crate::shard::ShardRegistry>>,
}

/// A source instance's side of checkpointing.
pub(crate) struct SourceCheckpoint {
    pub link: CheckpointLink,
    pub injects: tokio::sync::mpsc::UnboundedReceiver<Inject>,
    pub completed: tokio::sync::watch::Receiver<u64>,
    /// State as of the last batch emitted.
    pub state: serde_json::Value,
    /// States reported at recent barriers, oldest first.
    pub reported: std::collections::VecDeque<(u64, serde_json::Value)>,
    /// Called with each barrier's id and state before the barrier goes on.
    pub on_barrier: Option<BarrierHook>,
}

/// See [`SourceContext::on_barrier`].
pub type BarrierHook = Box<dyn FnMut(u64, &serde_json::Value) + Send>;

impl SourceContext {
    /// Whether the job takes checkpoints (a source then reports its
    /// position with [`SourceContext::set_state`] after every batch).
    pub fn is_checkpointing(&self) -> bool {
        self.checkpoint.is_some()
    }

    /// Record the source's position after the batches emitted so far; it is
    /// what a checkpoint taken now restores.
    pub fn set_state(&mut self, state: serde_json::Value) {
        if let Some(c) = &mut self.checkpoint {
            c.state = state;
        }
    }

    /// Take part in pending checkpoints: acknowledge with the current state
    /// and forward the barrier. [`SourceContext::emit`] does this before every
    /// batch; call it from idle loops too.
    pub async fn checkpoint_point(&mut self) -> Result<()> {
        loop {
            let Some(c) = &mut self.checkpoint else {
                return Ok(());
            };
            let Ok(inject) = c.injects.try_recv() else {
                return Ok(());
            };
            self.take_checkpoint(inject.id).await?;
        }
    }

    /// Call `hook` with the id and state of every checkpoint barrier this
    /// instance takes, before the barrier is forwarded downstream (so a sink
    /// that receives barrier `n` can rely on the hook having run for `n`).
    /// Ignored when the job does not checkpoint.
    pub fn on_barrier(&mut self, hook: BarrierHook) {
        if let Some(c) = &mut self.checkpoint {
            c.on_barrier = Some(hook);
        }
    }

    async fn take_checkpoint(&mut self, id: u64) -> Result<()> {
        // The dead letters this epoch covers are durable before the ack.
        self.dead.barrier(id).await?;
        let c = self.checkpoint.as_mut().expect("checkpointing");
        if let Some(hook) = &mut c.on_barrier {
            hook(id, &c.state);
        }
        c.link.ack(id, c.state.clone());
        c.reported.push_back((id, c.state.clone()));
        while c.reported.len() > 16 {
            c.reported.pop_front();
        }
        self.output.broadcast(Message::Barrier(id)).await
    }

    /// The state this source reported at the newest *completed* checkpoint,
    /// once per checkpoint (e.g. to commit offsets to a consumer group).
    pub fn take_completed_state(&mut self) -> Option<(u64, serde_json::Value)> {
        let c = self.checkpoint.as_mut()?;
        if !c.completed.has_changed().unwrap_or(false) {
            return None;
        }
        let done = *c.completed.borrow_and_update();
        let mut found = None;
        while let Some((id, _)) = c.reported.front() {
            if *id > done {
                break;
            }
            found = c.reported.pop_front();
        }
        found
    }

    /// After the source's input ended: report it, then answer barriers until
    /// the final checkpoint.
    pub(crate) async fn finish_checkpoints(&mut self) -> Result<()> {
        let Some(c) = &mut self.checkpoint else {
            return Ok(());
        };
        let _ = c.link.to_coordinator.send(ToCoordinator::SourceEnded);
        loop {
            let c = self.checkpoint.as_mut().expect("checkpointing");
            let Some(inject) = c.injects.recv().await else {
                return Ok(());
            };
            self.take_checkpoint(inject.id).await?;
            if inject.last {
                return Ok(());
            }
        }
    }

    /// The job's shard registry, when operators downstream keep their state
    /// per partition of this source: the source then reports the partitions
    /// it is assigned and revoked there (with the committed state reference
    /// of each) and emits with [`SourceContext::emit_shard`].
    pub fn shards(&self) -> Option<&Arc<crate::shard::ShardRegistry>> {
        self.shards.as_ref()
    }

    /// Send a batch downstream, waiting while downstream is busy.
    pub async fn emit(&mut self, batch: RecordBatch) -> Result<()> {
        self.emit_tagged(batch, None).await
    }

    /// [`SourceContext::emit`] for a batch whose records all come from
    /// partition `partition` (see [`crate::shard`]); `time` is the
    /// partition's own watermark after this batch (its largest event time
    /// seen minus the allowed delay; `i64::MIN` when unknown), which
    /// operators use for a partition that moved in behind their event time
    /// ([`crate::shard::ShardTag`]).
    pub async fn emit_shard(
        &mut self,
        batch: RecordBatch,
        partition: u32,
        time: i64,
    ) -> Result<()> {
        self.emit_tagged(
            batch,
            Some(crate::shard::ShardTag {
                id: partition,
                time,
            }),
        )
        .await
    }

    async fn emit_tagged(
        &mut self,
        batch: RecordBatch,
        shard: Option<crate::shard::ShardTag>,
    ) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        self.checkpoint_point().await?;
        self.idle = false;
        self.metrics.add_out(self.instance, &batch);
        self.output.send_tagged(batch, shard).await?;
        Ok(())
    }

    /// Advance event time downstream (ignored unless it moves forward).
    pub async fn emit_watermark(&mut self, watermark: i64) -> Result<()> {
        if watermark <= self.last_watermark {
            return Ok(());
        }
        self.last_watermark = watermark;
        self.idle = false;
        self.metrics
            .watermark
            .store(watermark, std::sync::atomic::Ordering::Relaxed);
        self.output.broadcast(Message::Watermark(watermark)).await
    }

    /// Say that this instance has nothing to read for now (it owns no
    /// partitions), so it does not hold event time back downstream; its
    /// next watermark or batch ends that. Sent once per idle spell.
    pub async fn emit_idle(&mut self) -> Result<()> {
        if self.idle {
            return Ok(());
        }
        self.idle = true;
        self.output.broadcast(Message::Idle).await
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

    /// The node's counters, shared (for callbacks that outlive a borrow of
    /// the context, such as a client library's statistics hook).
    pub fn metrics_handle(&self) -> Arc<NodeMetrics> {
        self.metrics.clone()
    }
}
