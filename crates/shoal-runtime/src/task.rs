//! The loops that run one task instance: source, operator, sink, dead letters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::Instrument;

use crate::checkpoint::CheckpointLink;
use crate::dead_letter::{DeadLetterSink, DeadLetters, ToDeadLetters};
use crate::error::{Result, RuntimeError};
use crate::gate::{InputEvent, InputGate};
use crate::message::Message;
use crate::metrics::NodeMetrics;
use crate::operator::{Collector, Operator};
use crate::output::Output;
use crate::shard::ShardTag;
use crate::sharded::Sharded;
use crate::sink::Sink;
use crate::source::{Source, SourceContext};
use crate::state::{StateContext, StateWrites};

fn upstream_failed(node: &str) -> RuntimeError {
    RuntimeError::Internal(format!(
        "{node}: an upstream task stopped without ending its stream"
    ))
}

/// Run a source instance, then send `EndOfData`, answer the remaining
/// checkpoints, and send `End`.
pub(crate) async fn run_source(source: Box<dyn Source>, mut ctx: SourceContext) -> Result<()> {
    let span = tracing::info_span!("source", operator = %ctx.node, instance = ctx.instance);
    async move {
        source.run(&mut ctx).await?;
        // Downstream flushes now, so the final checkpoints cover the flush.
        ctx.output.broadcast(Message::EndOfData).await?;
        ctx.finish_checkpoints().await?;
        ctx.output.broadcast(Message::End).await
    }
    .instrument(span)
    .await
}

/// What an operator task runs: one operator, or one per shard.
pub(crate) enum OperatorTask {
    One(Box<dyn Operator>),
    Sharded(Sharded),
}

impl OperatorTask {
    fn process_batch(
        &mut self,
        input: usize,
        batch: arrow::record_batch::RecordBatch,
        shard: Option<ShardTag>,
        out: &mut Collector,
    ) -> Result<()> {
        match self {
            // A stateless or unsharded operator keeps the batch's tag.
            OperatorTask::One(op) => {
                out.shard = shard;
                let r = op.process_batch(input, batch, out);
                out.shard = None;
                r
            }
            OperatorTask::Sharded(s) => s.process_batch(input, batch, shard, out),
        }
    }

    fn on_watermark(&mut self, t: i64, out: &mut Collector) -> Result<()> {
        match self {
            OperatorTask::One(op) => op.on_watermark(t, out),
            OperatorTask::Sharded(s) => s.on_watermark(t, out),
        }
    }

    fn output_watermark(&self, t: i64) -> i64 {
        match self {
            OperatorTask::One(op) => op.output_watermark(t),
            OperatorTask::Sharded(s) => s.output_watermark(t),
        }
    }

    fn state_entries(&self) -> Option<usize> {
        match self {
            OperatorTask::One(op) => op.state_entries(),
            OperatorTask::Sharded(s) => s.state_entries(),
        }
    }

    fn on_end(&mut self, out: &mut Collector) -> Result<()> {
        match self {
            OperatorTask::One(op) => op.on_end(out),
            OperatorTask::Sharded(s) => s.on_end(out),
        }
    }

    /// The operator's state at barrier `id`; its files are queued on
    /// `writes` (see [`StateWrites`]).
    fn snapshot(
        &mut self,
        node: &str,
        id: u64,
        checkpoint: Option<&CheckpointLink>,
        writes: &StateWrites,
    ) -> Result<serde_json::Value> {
        match (self, checkpoint) {
            (OperatorTask::One(op), Some(link)) => op.snapshot_at(&StateContext {
                writes: Some(writes.clone()),
                ..StateContext::new(link.dir.as_path(), node, link.instance, id)
            }),
            // Barriers flow only in checkpointed runs.
            (OperatorTask::One(_), None) => Ok(serde_json::Value::Null),
            (OperatorTask::Sharded(s), _) => s.snapshot(id, writes),
        }
    }
}

/// Run an operator instance until every input ended.
pub(crate) async fn run_operator(
    node: String,
    mut op: OperatorTask,
    mut gate: InputGate,
    mut output: Output,
    metrics: Arc<NodeMetrics>,
    mut dead: DeadLetters,
    checkpoint: Option<CheckpointLink>,
) -> Result<()> {
    let span = tracing::info_span!("operator", operator = %node);
    async {
        let mut out = Collector::default();
        let writes = StateWrites::default();
        let mut forwarded = i64::MIN;
        let mut drained = false;
        let mut state_entries: i64 = 0;
        let mut report_state = |op: &OperatorTask| {
            if let Some(n) = op.state_entries() {
                let n = n as i64;
                if n != state_entries {
                    metrics.add_state(n - state_entries);
                    state_entries = n;
                }
            }
        };
        loop {
            let Some(event) = gate.next().await else {
                return Err(upstream_failed(&node));
            };
            match event {
                InputEvent::Batch {
                    input,
                    batch,
                    shard,
                } => {
                    metrics.add_in(output.instance, &batch);
                    op.process_batch(input as usize, batch, shard, &mut out)?;
                    report_state(&op);
                    flush(&mut out, &mut output, &metrics, &mut dead).await?;
                }
                InputEvent::Watermark(t) => {
                    op.on_watermark(t, &mut out)?;
                    report_state(&op);
                    flush(&mut out, &mut output, &metrics, &mut dead).await?;
                    let t = op.output_watermark(t);
                    if t > forwarded {
                        forwarded = t;
                        metrics
                            .watermark
                            .store(t, std::sync::atomic::Ordering::Relaxed);
                        output.broadcast(Message::Watermark(t)).await?;
                    }
                }
                InputEvent::Idle => output.broadcast(Message::Idle).await?,
                InputEvent::Barrier(id) => {
                    metrics.record_alignment(id, gate.last_alignment());
                    let state = op.snapshot(&node, id, checkpoint.as_ref(), &writes)?;
                    // The state files are durable before the ack.
                    writes.flush().await?;
                    // The letters this epoch covers are durable before the ack.
                    dead.barrier(id).await?;
                    if let Some(link) = &checkpoint {
                        link.ack(id, state);
                    }
                    output.broadcast(Message::Barrier(id)).await?;
                }
                InputEvent::EndOfData => {
                    // Flush before the barriers that follow, so checkpoints
                    // taken from here on include what end of input emits.
                    drained = true;
                    op.on_end(&mut out)?;
                    report_state(&op);
                    flush(&mut out, &mut output, &metrics, &mut dead).await?;
                    output.broadcast(Message::EndOfData).await?;
                }
                InputEvent::End => {
                    if !drained {
                        op.on_end(&mut out)?;
                        report_state(&op);
                        flush(&mut out, &mut output, &metrics, &mut dead).await?;
                    }
                    output.broadcast(Message::End).await?;
                    return Ok(());
                }
            }
        }
    }
    .instrument(span)
    .await
}

async fn flush(
    out: &mut Collector,
    output: &mut Output,
    metrics: &NodeMetrics,
    dead: &mut DeadLetters,
) -> Result<()> {
    for letter in out.dead.drain(..) {
        metrics.add_dead(1);
        dead.send(letter).await?;
    }
    for (batch, shard) in out.batches.drain(..).zip(out.tags.drain(..)) {
        metrics.add_out(output.instance, &batch);
        output.send_tagged(batch, shard).await?;
    }
    Ok(())
}

/// Run a sink instance until every input ended, then finish it.
pub(crate) async fn run_sink(
    node: String,
    instance: usize,
    mut sink: Box<dyn Sink>,
    mut gate: InputGate,
    metrics: Arc<NodeMetrics>,
    mut dead: DeadLetters,
    checkpoint: Option<(
        CheckpointLink,
        tokio::sync::mpsc::UnboundedReceiver<u64>,
        Arc<AtomicU64>,
    )>,
) -> Result<()> {
    let span = tracing::info_span!("sink", operator = %node);
    // Rows the sink refused go to the dead letters.
    async fn reject(sink: &mut Box<dyn Sink>, dead: &mut DeadLetters) -> Result<()> {
        for letter in sink.take_rejected() {
            dead.send(letter).await?;
        }
        Ok(())
    }
    let (link, mut completed, mark) = match checkpoint {
        Some((l, c, m)) => (Some(l), Some(c), Some(m)),
        None => (None, None, None),
    };
    // The coordinator keeps the manifests of epochs not yet committed.
    let committed = |id: u64| {
        if let Some(m) = &mark {
            m.fetch_max(id, Ordering::Release);
        }
    };
    sink.bind_metrics(metrics.clone());
    async {
        loop {
            let event = match &mut completed {
                Some(c) => tokio::select! {
                    biased;
                    Some(id) = c.recv() => {
                        crate::off_worker(|| sink.commit(id))?;
                        reject(&mut sink, &mut dead).await?;
                        committed(id);
                        continue;
                    }
                    ev = gate.next() => ev,
                },
                None => gate.next().await,
            };
            let Some(event) = event else {
                return Err(upstream_failed(&node));
            };
            match event {
                InputEvent::Batch { batch, .. } => {
                    metrics.add_in(instance, &batch);
                    sink.write(&batch)?;
                }
                InputEvent::Watermark(t) => {
                    metrics
                        .watermark
                        .store(t, std::sync::atomic::Ordering::Relaxed);
                }
                InputEvent::Idle => {}
                InputEvent::EndOfData => crate::off_worker(|| sink.end_of_data())?,
                InputEvent::Barrier(id) => {
                    metrics.record_alignment(id, gate.last_alignment());
                    crate::off_worker(|| sink.pre_commit(id))?;
                    reject(&mut sink, &mut dead).await?;
                    dead.barrier(id).await?;
                    if let Some(link) = &link {
                        link.ack(id, serde_json::Value::Null);
                    }
                }
                InputEvent::End => {
                    let Some(c) = &mut completed else {
                        crate::off_worker(|| sink.finish())?;
                        reject(&mut sink, &mut dead).await?;
                        return Ok(());
                    };
                    // Checkpointed: everything was staged at the final barrier;
                    // commit each epoch the coordinator completes, and nothing else.
                    while let Some(id) = c.recv().await {
                        crate::off_worker(|| sink.commit(id))?;
                        reject(&mut sink, &mut dead).await?;
                        committed(id);
                    }
                    return Ok(());
                }
            }
        }
    }
    .instrument(span)
    .await
}

/// Drain dead letters into their sink until every sender is gone. In a
/// checkpointed job (`completed` is the coordinator's completion channel)
/// letters are staged, synced when a task reaches a barrier, and published
/// as the checkpoints covering them complete (see [`crate::dead_letter`]).
pub(crate) async fn run_dead_letters(
    mut sink: Box<dyn DeadLetterSink>,
    rx: async_channel::Receiver<ToDeadLetters>,
    mut completed: Option<tokio::sync::mpsc::UnboundedReceiver<u64>>,
) -> Result<()> {
    loop {
        let msg = match &mut completed {
            Some(c) => tokio::select! {
                biased;
                Some(id) = c.recv() => {
                    crate::off_worker(|| sink.commit(id))?;
                    continue;
                }
                msg = rx.recv() => msg,
            },
            None => rx.recv().await,
        };
        match msg {
            Ok(ToDeadLetters::Letter { after, letter }) => sink.write(after, &letter)?,
            Ok(ToDeadLetters::Sync(reply)) => {
                // The task waiting on the answer fails the job if this did.
                let _ = reply.send(sink.sync());
            }
            Err(_) => break,
        }
    }
    match completed {
        // Every task ended; publish what the remaining checkpoints cover.
        Some(mut c) => {
            while let Some(id) = c.recv().await {
                crate::off_worker(|| sink.commit(id))?;
            }
            Ok(())
        }
        None => sink.finish(),
    }
}
