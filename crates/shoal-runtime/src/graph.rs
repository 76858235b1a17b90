//! The job graph: nodes (sources, operators, sinks) with parallelism, edges
//! with partitioning, and [`JobGraph::spawn`] which starts one tokio task per
//! parallel instance.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::channel::{TaskReceiver, TaskSender, bounded};
use crate::checkpoint::coordinator::Coordinator;
use crate::checkpoint::{CheckpointConfig, CheckpointLink, Manifest, TopologyNode};
use crate::dead_letter::{DeadLetterSink, DeadLetters};
use crate::error::{Result, RuntimeError};
use crate::gate::InputGate;
use crate::metrics::{Metrics, NodeRole};
use crate::operator::Operator;
use crate::output::{OutEdge, Output};
use crate::partition::Partitioning;
use crate::sink::Sink;
use crate::source::SourceCheckpoint;
use crate::source::{Source, SourceContext};
use crate::task;

/// Index of a node in its [`JobGraph`].
pub type NodeId = usize;

type Factory<T> = std::sync::Arc<dyn Fn(usize) -> Result<Box<T>> + Send + Sync>;

enum NodeKind {
    Source(Factory<dyn Source>),
    Operator(Factory<dyn Operator>),
    Sink(Factory<dyn Sink>),
}

/// An input edge of a node.
#[derive(Debug, Clone)]
pub struct EdgeSpec {
    /// The upstream node.
    pub from: NodeId,
    /// How its batches are routed to this node's instances.
    pub partitioning: Partitioning,
}

struct Node {
    id: String,
    parallelism: usize,
    inputs: Vec<EdgeSpec>,
    kind: NodeKind,
    /// An operator whose state is kept per source partition.
    sharded: bool,
    /// What its state is made of (see [`TopologyNode::state_schema`]).
    state_schema: Option<String>,
}

/// Options for running a job.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Capacity of every task's input channel, in messages (batches).
    pub channel_capacity: usize,
    /// Cancelling this token stops the sources; the job then drains and ends.
    pub cancel: CancellationToken,
    /// Take checkpoints (exactly-once with transactional sinks).
    pub checkpoint: Option<CheckpointConfig>,
    /// Restore from this checkpoint (its state must fit the graph, see
    /// [`Manifest::check_topology`]).
    pub restore: Option<Manifest>,
    /// Nodes whose state in `restore` is dropped: they start afresh.
    pub drop_state: Vec<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            channel_capacity: 8,
            cancel: CancellationToken::new(),
            checkpoint: None,
            restore: None,
            drop_state: Vec::new(),
        }
    }
}

/// An operator graph ready to run. Nodes must be added after their inputs.
pub struct JobGraph {
    name: String,
    nodes: Vec<Node>,
    dead_letter: Option<Box<dyn DeadLetterSink>>,
    shards: Option<std::sync::Arc<crate::shard::ShardRegistry>>,
}

impl JobGraph {
    /// An empty graph for the pipeline `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            nodes: Vec::new(),
            dead_letter: None,
            shards: None,
        }
    }

    /// Add a source with `parallelism` instances; `factory(i)` builds instance `i`.
    pub fn add_source(
        &mut self,
        id: impl Into<String>,
        parallelism: usize,
        factory: impl Fn(usize) -> Result<Box<dyn Source>> + Send + Sync + 'static,
    ) -> NodeId {
        self.push(
            id.into(),
            parallelism,
            Vec::new(),
            NodeKind::Source(std::sync::Arc::new(factory)),
        )
    }

    /// Add an operator reading `inputs`.
    pub fn add_operator(
        &mut self,
        id: impl Into<String>,
        parallelism: usize,
        inputs: Vec<EdgeSpec>,
        factory: impl Fn(usize) -> Result<Box<dyn Operator>> + Send + Sync + 'static,
    ) -> NodeId {
        self.push(
            id.into(),
            parallelism,
            inputs,
            NodeKind::Operator(std::sync::Arc::new(factory)),
        )
    }

    /// Add a sink reading `inputs`.
    pub fn add_sink(
        &mut self,
        id: impl Into<String>,
        parallelism: usize,
        inputs: Vec<EdgeSpec>,
        factory: impl Fn(usize) -> Result<Box<dyn Sink>> + Send + Sync + 'static,
    ) -> NodeId {
        self.push(
            id.into(),
            parallelism,
            inputs,
            NodeKind::Sink(std::sync::Arc::new(factory)),
        )
    }

    /// Nodes added so far (the next node's id).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node was added yet.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Keep operator `node`'s state per source partition (see
    /// [`crate::shard`]): its inputs are routed by partition, its state
    /// goes to the checkpoint's state store shard by shard, and `registry`
    /// — shared with the partitioned source and the sink that commits
    /// references — says which shards this process owns. Sources get the
    /// registry through [`SourceContext::shards`].
    pub fn shard_operator(
        &mut self,
        node: NodeId,
        registry: std::sync::Arc<crate::shard::ShardRegistry>,
    ) {
        let n = &mut self.nodes[node];
        assert!(
            matches!(n.kind, NodeKind::Operator(_)),
            "only operators are sharded"
        );
        n.sharded = true;
        for e in &mut n.inputs {
            e.partitioning = Partitioning::Shard;
        }
        self.shards = Some(registry);
    }

    /// Describe what operator `node`'s state is made of (for a SQL
    /// operator, its stateful query): a checkpoint's state is restored only
    /// into an operator with the same description.
    pub fn set_state_schema(&mut self, node: NodeId, description: impl Into<String>) {
        self.nodes[node].state_schema = Some(description.into());
    }

    /// Where dead letters go (default: logged and counted only).
    pub fn set_dead_letter_sink(&mut self, sink: Box<dyn DeadLetterSink>) {
        self.dead_letter = Some(sink);
    }

    fn push(
        &mut self,
        id: String,
        parallelism: usize,
        inputs: Vec<EdgeSpec>,
        kind: NodeKind,
    ) -> NodeId {
        let n = self.nodes.len();
        for e in &inputs {
            assert!(
                e.from < n,
                "node {id}: input {} must be added before it",
                e.from
            );
        }
        self.nodes.push(Node {
            id,
            parallelism: parallelism.max(1),
            inputs,
            kind,
            sharded: false,
            state_schema: None,
        });
        n
    }

    /// The graph's shape, as checkpoints record it.
    pub fn topology(&self) -> Vec<TopologyNode> {
        self.nodes
            .iter()
            .map(|n| TopologyNode {
                id: n.id.clone(),
                role: match n.kind {
                    NodeKind::Source(_) => "source",
                    NodeKind::Operator(_) => "transform",
                    NodeKind::Sink(_) => "sink",
                }
                .to_string(),
                parallelism: n.parallelism,
                sharded: n.sharded,
                state_schema: n.state_schema.clone(),
                key_hash: n.inputs.iter().find_map(|e| match &e.partitioning {
                    Partitioning::Hash { column, key_type } => Some(format!(
                        "{} {column}:{}",
                        crate::partition::KEY_HASH,
                        key_type
                            .as_ref()
                            .map_or("unknown", crate::partition::key_family)
                    )),
                    _ => None,
                }),
            })
            .collect()
    }

    /// Start every task. The returned handle reports metrics and completion.
    pub fn spawn(self, opts: RunOptions) -> Result<JobHandle> {
        let metrics = Metrics::default();
        let started = Instant::now();
        let cancel = opts.cancel.clone();
        let topology = self.topology();
        if let (Some(m), Some(c)) = (&opts.restore, &opts.checkpoint) {
            m.check_topology(&topology, &c.dir, &opts.drop_state)?;
        }
        let restored = |node: &str| -> Vec<serde_json::Value> {
            if opts.drop_state.iter().any(|d| d == node) {
                return Vec::new();
            }
            opts.restore
                .as_ref()
                .and_then(|m| m.states.get(node).cloned())
                .unwrap_or_default()
        };
        let nodes = self.nodes;
        // Checkpointing: one inbox for the coordinator, a barrier channel per
        // source instance, a completion channel per sink instance.
        let (to_coord, coord_inbox) = tokio::sync::mpsc::unbounded_channel();
        let (completed_tx, completed_rx) = tokio::sync::watch::channel(0u64);
        let mut source_injects = Vec::new();
        let mut sink_completes = Vec::new();
        let mut sink_committed = Vec::new();
        let checkpointing = opts.checkpoint.is_some();
        let checkpoint_dir = opts.checkpoint.as_ref().map(|c| c.dir.clone());
        let link = |node: usize, instance: usize| {
            checkpoint_dir.as_ref().map(|dir| CheckpointLink {
                node,
                instance,
                to_coordinator: to_coord.clone(),
                dir: dir.clone(),
            })
        };

        // One input channel per instance of every non-source node.
        let mut senders: Vec<Vec<TaskSender>> = Vec::with_capacity(nodes.len());
        let mut receivers: Vec<Vec<Option<TaskReceiver>>> = Vec::with_capacity(nodes.len());
        for node in &nodes {
            let (tx, rx): (Vec<_>, Vec<_>) = if node.inputs.is_empty() {
                (Vec::new(), Vec::new())
            } else {
                (0..node.parallelism)
                    .map(|_| bounded(opts.channel_capacity))
                    .map(|(t, r)| (t, Some(r)))
                    .unzip()
            };
            senders.push(tx);
            receivers.push(rx);
        }
        // Channel index base per (node, input).
        let channel_base: Vec<Vec<u32>> = nodes
            .iter()
            .map(|node| {
                let mut base = 0u32;
                node.inputs
                    .iter()
                    .map(|e| {
                        let b = base;
                        base += nodes[e.from].parallelism as u32;
                        b
                    })
                    .collect()
            })
            .collect();

        let restored_id = opts.restore.as_ref().map(|m| m.id);
        let (dead, dead_rx) = DeadLetters::channel(1024, restored_id.unwrap_or(0));
        let mut set: JoinSet<(String, Result<()>)> = JoinSet::new();
        let mut dl_sink = self
            .dead_letter
            .unwrap_or_else(|| Box::new(LogDeadLetters::default()));
        // Dead letters are committed with the checkpoints, like sink output.
        let dl_completed = if checkpointing {
            dl_sink.recover(restored_id)?;
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            sink_completes.push(tx);
            Some(rx)
        } else {
            None
        };
        // The job-control API shows the newest letters.
        let dl_sink = Box::new(crate::metrics::RecordingDeadLetters {
            inner: dl_sink,
            metrics: metrics.clone(),
        });
        let dl_task = tokio::spawn(task::run_dead_letters(dl_sink, dead_rx, dl_completed));

        for (nid, node) in nodes.iter().enumerate() {
            let role = match node.kind {
                NodeKind::Source(_) => NodeRole::Source,
                NodeKind::Operator(_) => NodeRole::Transform,
                NodeKind::Sink(_) => NodeRole::Sink,
            };
            let node_metrics = metrics.node(&node.id, role);
            node_metrics.set_parallelism(node.parallelism);
            let channels: usize = node.inputs.iter().map(|e| nodes[e.from].parallelism).sum();
            for instance in 0..node.parallelism {
                let mut output = build_output(&nodes, &senders, &channel_base, nid, instance);
                output.metrics = Some(node_metrics.clone());
                let gate = receivers[nid]
                    .get_mut(instance)
                    .and_then(Option::take)
                    .map(|rx| InputGate::new(rx, channels));
                let id = node.id.clone();
                let fut: std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>> =
                    match &node.kind {
                        NodeKind::Source(f) => {
                            let mut src = f(instance).map_err(|e| e.in_operator(&id))?;
                            let states = restored(&id);
                            if !states.is_empty() {
                                src.restore(&states, instance)
                                    .map_err(|e| e.in_operator(&id))?;
                            }
                            // Until the source reports a position, a checkpoint
                            // holds the one it restored (a restored generator
                            // with nothing left to emit must not report "from
                            // the start").
                            let initial = if states.len() == node.parallelism {
                                states[instance].clone()
                            } else {
                                serde_json::Value::Null
                            };
                            let checkpoint = link(nid, instance).map(|link| {
                                let (tx, injects) = tokio::sync::mpsc::unbounded_channel();
                                source_injects.push(tx);
                                SourceCheckpoint {
                                    link,
                                    injects,
                                    completed: completed_rx.clone(),
                                    state: initial,
                                    reported: Default::default(),
                                    on_barrier: None,
                                }
                            });
                            let ctx = SourceContext {
                                node: id.clone(),
                                instance,
                                parallelism: node.parallelism,
                                output,
                                metrics: node_metrics.clone(),
                                cancel: cancel.clone(),
                                dead: dead.clone(),
                                last_watermark: i64::MIN,
                                idle: false,
                                checkpoint,
                                shards: self.shards.clone(),
                            };
                            Box::pin(task::run_source(src, ctx))
                        }
                        NodeKind::Operator(f) if node.sharded => {
                            let (Some(registry), Some(config)) = (&self.shards, &opts.checkpoint)
                            else {
                                return Err(RuntimeError::User(format!(
                                    "{id}: its state is kept per source partition, which needs checkpoints"
                                )));
                            };
                            if instance == 0 {
                                registry
                                    .prefill(&id, crate::sharded::manifest_shards(&restored(&id)));
                            }
                            let gate = gate.ok_or_else(|| {
                                RuntimeError::Internal(format!("{id} has no input"))
                            })?;
                            let sharded = crate::sharded::Sharded::new(
                                id.clone(),
                                instance,
                                node.parallelism,
                                f.clone(),
                                registry.clone(),
                                config.state_store(),
                            );
                            Box::pin(task::run_operator(
                                id.clone(),
                                task::OperatorTask::Sharded(sharded),
                                gate,
                                output,
                                node_metrics.clone(),
                                dead.clone(),
                                link(nid, instance),
                            ))
                        }
                        NodeKind::Operator(f) => {
                            let mut op = f(instance).map_err(|e| e.in_operator(&id))?;
                            let states = restored(&id);
                            if !states.is_empty() {
                                let ctx = crate::state::StateContext::new(
                                    checkpoint_dir.clone().unwrap_or_default(),
                                    id.clone(),
                                    instance,
                                    opts.restore.as_ref().map_or(0, |m| m.id),
                                );
                                op.restore_at(&states, instance, &ctx)
                                    .map_err(|e| e.in_operator(&id))?;
                            }
                            let gate = gate.ok_or_else(|| {
                                RuntimeError::Internal(format!("{id} has no input"))
                            })?;
                            Box::pin(task::run_operator(
                                id.clone(),
                                task::OperatorTask::One(op),
                                gate,
                                output,
                                node_metrics.clone(),
                                dead.clone(),
                                link(nid, instance),
                            ))
                        }
                        NodeKind::Sink(f) => {
                            let mut sink = f(instance).map_err(|e| e.in_operator(&id))?;
                            if checkpointing {
                                sink.recover(opts.restore.as_ref().map(|m| m.id))
                                    .map_err(|e| e.in_operator(&id))?;
                            }
                            let gate = gate.ok_or_else(|| {
                                RuntimeError::Internal(format!("{id} has no input"))
                            })?;
                            let checkpoint = link(nid, instance).map(|l| {
                                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                                sink_completes.push(tx);
                                // Epochs up to the restored checkpoint are
                                // committed by `recover`.
                                let mark = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(
                                    opts.restore.as_ref().map_or(0, |m| m.id),
                                ));
                                sink_committed.push(mark.clone());
                                (l, rx, mark)
                            });
                            Box::pin(task::run_sink(
                                id.clone(),
                                instance,
                                sink,
                                gate,
                                node_metrics.clone(),
                                dead.clone(),
                                checkpoint,
                            ))
                        }
                    };
                // Tasks' spans nest in the caller's (e.g. the job's, with
                // the pipeline name).
                set.spawn(tracing::Instrument::in_current_span(async move {
                    (id, fut.await)
                }));
            }
        }
        drop(senders);
        drop(dead);
        let coordinator = match &opts.checkpoint {
            Some(config) => {
                let c = Coordinator {
                    config: config.clone(),
                    pipeline: self.name.clone(),
                    instances: topology.iter().map(|t| t.parallelism).collect(),
                    topology: topology.clone(),
                    next_id: opts.restore.as_ref().map_or(1, |m| m.id + 1),
                    sources: source_injects,
                    sinks: sink_completes,
                    sink_committed,
                    inbox: coord_inbox,
                    completed: completed_tx,
                    metrics: metrics.clone(),
                };
                Some(tokio::spawn(tracing::Instrument::in_current_span(c.run())))
            }
            None => {
                drop((source_injects, sink_completes, coord_inbox, completed_tx));
                None
            }
        };
        drop(to_coord);

        let sup_cancel = cancel.clone();
        let sup_metrics = metrics.clone();
        let join = tokio::spawn(async move {
            let mut first_error: Option<RuntimeError> = None;
            while let Some(res) = set.join_next().await {
                let (id, result) = match res {
                    Ok(r) => r,
                    Err(e) => (
                        "?".to_string(),
                        Err(RuntimeError::Internal(format!("task panicked: {e}"))),
                    ),
                };
                if let Err(e) = result {
                    tracing::debug!(operator = %id, error = %e, "task failed");
                    let e = e.in_operator(&id);
                    // Keep the root cause: the failures it causes elsewhere are channel closures.
                    if first_error
                        .as_ref()
                        .is_none_or(|f| is_secondary(f) && !is_secondary(&e))
                    {
                        first_error = Some(e);
                    }
                    sup_cancel.cancel();
                    // A failed job commits nothing more.
                    if let Some(c) = &coordinator {
                        c.abort();
                    }
                }
            }
            if let Some(c) = coordinator
                && first_error.is_none()
            {
                match c.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => first_error = Some(e.in_operator("checkpoint coordinator")),
                    Err(e) if e.is_cancelled() => {}
                    Err(e) => {
                        first_error = Some(RuntimeError::Internal(format!(
                            "checkpoint coordinator: {e}"
                        )))
                    }
                }
            }
            let dl = dl_task
                .await
                .map_err(|e| RuntimeError::Internal(format!("dead-letter task: {e}")))?;
            if let Some(e) = first_error {
                return Err(e);
            }
            dl?;
            Ok(JobSummary::from_metrics(&sup_metrics, started.elapsed()))
        });
        Ok(JobHandle {
            name: self.name,
            metrics,
            cancel,
            join,
            started,
        })
    }
}

fn is_secondary(e: &RuntimeError) -> bool {
    match e {
        RuntimeError::InOperator { source, .. } => is_secondary(source),
        RuntimeError::ChannelClosed(_) => true,
        RuntimeError::Internal(m) => m.contains("upstream task stopped"),
        _ => false,
    }
}

/// Wire instance `instance` of node `nid` to every node that reads it.
fn build_output(
    nodes: &[Node],
    senders: &[Vec<TaskSender>],
    channel_base: &[Vec<u32>],
    nid: NodeId,
    instance: usize,
) -> Output {
    let mut edges = Vec::new();
    for (did, down) in nodes.iter().enumerate() {
        for (k, e) in down.inputs.iter().enumerate() {
            if e.from != nid {
                continue;
            }
            let up_p = nodes[nid].parallelism;
            let partitioning = match &e.partitioning {
                // Forward needs equal parallelism (or a single receiver).
                Partitioning::Forward if up_p != down.parallelism && down.parallelism != 1 => {
                    Partitioning::RoundRobin
                }
                p => p.clone(),
            };
            edges.push(OutEdge::new(
                senders[did].clone(),
                k as u16,
                channel_base[did][k] + instance as u32,
                &partitioning,
                instance,
            ));
        }
    }
    Output {
        node: nodes[nid].id.clone(),
        edges,
        metrics: None,
        instance,
    }
}

/// Dead-letter sink used when a pipeline declares none: log each one.
#[derive(Default)]
struct LogDeadLetters;

impl DeadLetterSink for LogDeadLetters {
    fn write(&mut self, _after: u64, letter: &crate::DeadLetter) -> Result<()> {
        tracing::warn!(node = %letter.node, reason = %letter.reason, "dead letter");
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A running job.
pub struct JobHandle {
    name: String,
    metrics: Metrics,
    cancel: CancellationToken,
    join: tokio::task::JoinHandle<Result<JobSummary>>,
    started: Instant,
}

impl JobHandle {
    /// The job's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Live counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Time since the job started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Ask the sources to stop; the job then drains and ends cleanly.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Whether the job has finished.
    pub fn is_finished(&self) -> bool {
        self.join.is_finished()
    }

    /// Wait for the job to end.
    pub async fn wait(self) -> Result<JobSummary> {
        self.join
            .await
            .map_err(|e| RuntimeError::Internal(format!("job supervisor: {e}")))?
    }
}

/// Counters of one node at the end of a job.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeSummary {
    /// Node id.
    pub node: String,
    /// `source`, `transform` or `sink`.
    pub role: &'static str,
    /// Records received.
    pub records_in: u64,
    /// Records emitted.
    pub records_out: u64,
    /// Records dead-lettered.
    pub dead_letters: u64,
    /// The most entries its operator state held at once (0 when stateless).
    pub state_peak: u64,
}

/// What a finished job did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobSummary {
    /// Wall-clock duration.
    pub elapsed: Duration,
    /// Per-node counters, in graph order.
    pub nodes: Vec<NodeSummary>,
    /// Checkpoints completed during the run.
    pub checkpoints: crate::metrics::CheckpointStats,
}

impl JobSummary {
    fn from_metrics(metrics: &Metrics, elapsed: Duration) -> Self {
        let nodes = metrics
            .snapshot()
            .into_iter()
            .map(|(node, m)| NodeSummary {
                node,
                role: match m.role {
                    NodeRole::Source => "source",
                    NodeRole::Transform => "transform",
                    NodeRole::Sink => "sink",
                },
                records_in: m.records_in(),
                records_out: m.records_out(),
                dead_letters: m.dead_letters(),
                state_peak: m.state_peak(),
            })
            .collect();
        Self {
            elapsed,
            nodes,
            checkpoints: metrics.checkpoints(),
        }
    }

    /// Records emitted by all sources.
    pub fn source_records(&self) -> u64 {
        self.nodes
            .iter()
            .filter(|n| n.role == "source")
            .map(|n| n.records_out)
            .sum()
    }

    /// Records received by all sinks.
    pub fn sink_records(&self) -> u64 {
        self.nodes
            .iter()
            .filter(|n| n.role == "sink")
            .map(|n| n.records_in)
            .sum()
    }

    /// Records dead-lettered anywhere.
    pub fn dead_letters(&self) -> u64 {
        self.nodes.iter().map(|n| n.dead_letters).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::Collector;
    use arrow::array::{Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use futures::future::BoxFuture;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    struct Counter {
        batches: usize,
        rows: usize,
    }

    impl Source for Counter {
        fn run<'a>(self: Box<Self>, ctx: &'a mut SourceContext) -> BoxFuture<'a, Result<()>> {
            Box::pin(async move {
                let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
                for b in 0..self.batches {
                    if ctx.is_cancelled() {
                        break;
                    }
                    let start = (b * self.rows) as i64;
                    let keys = Int64Array::from_iter_values(start..start + self.rows as i64);
                    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(keys)])?;
                    ctx.emit(batch).await?;
                }
                Ok(())
            })
        }
    }

    struct KeepEven;
    impl Operator for KeepEven {
        fn process_batch(
            &mut self,
            _input: usize,
            batch: RecordBatch,
            out: &mut Collector,
        ) -> Result<()> {
            let k = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            let mask = arrow::compute::kernels::cmp::eq(
                &arrow::compute::kernels::numeric::rem(k, &Int64Array::new_scalar(2))?,
                &Int64Array::new_scalar(0),
            )?;
            out.emit(arrow::compute::filter_record_batch(&batch, &mask)?);
            Ok(())
        }
    }

    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<(usize, i64)>>>, Arc<AtomicUsize>);
    struct Collect {
        instance: usize,
        seen: Seen,
        delay: Duration,
    }
    impl Sink for Collect {
        fn write(&mut self, batch: &RecordBatch) -> Result<()> {
            std::thread::sleep(self.delay);
            let k = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            let mut seen = self.seen.0.lock().unwrap();
            seen.extend(k.values().iter().map(|v| (self.instance, *v)));
            Ok(())
        }
        fn finish(&mut self) -> Result<()> {
            self.seen.1.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    fn graph(seen: Seen, batches: usize, sink_p: usize, delay: Duration) -> JobGraph {
        let mut g = JobGraph::new("test");
        let src = g.add_source("src", 2, move |_| {
            Ok(Box::new(Counter { batches, rows: 100 }) as Box<dyn Source>)
        });
        let op = g.add_operator(
            "even",
            2,
            vec![EdgeSpec {
                from: src,
                partitioning: Partitioning::Forward,
            }],
            |_| Ok(Box::new(KeepEven) as Box<dyn Operator>),
        );
        g.add_sink(
            "sink",
            sink_p,
            vec![EdgeSpec {
                from: op,
                partitioning: Partitioning::Hash {
                    column: "k".into(),
                    key_type: None,
                },
            }],
            move |instance| {
                Ok(Box::new(Collect {
                    instance,
                    seen: seen.clone(),
                    delay,
                }) as Box<dyn Sink>)
            },
        );
        g
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_to_end_with_hash_shuffle() {
        let seen = Seen::default();
        let handle = graph(seen.clone(), 10, 3, Duration::ZERO)
            .spawn(RunOptions::default())
            .unwrap();
        let summary = handle.wait().await.unwrap();
        let rows = seen.0.lock().unwrap().clone();
        // 2 source instances x 10 batches x 100 rows, half of them even.
        assert_eq!(rows.len(), 1000);
        assert_eq!(
            seen.1.load(Ordering::SeqCst),
            3,
            "every sink instance finished"
        );
        let mut owner = std::collections::HashMap::new();
        for (inst, k) in rows {
            assert_eq!(k % 2, 0);
            assert_eq!(
                *owner.entry(k).or_insert(inst),
                inst,
                "key {k} reached two sink instances"
            );
        }
        assert_eq!(summary.source_records(), 2000);
        assert_eq!(summary.sink_records(), 1000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_sink_backpressures_source() {
        let seen = Seen::default();
        let opts = RunOptions {
            channel_capacity: 2,
            ..Default::default()
        };
        let handle = graph(seen.clone(), 1_000, 1, Duration::from_millis(5))
            .spawn(opts)
            .unwrap();
        // Wait until the slow sink has taken some batches (a hang guard,
        // not a time bound), so the bound below is checked on a running job.
        let guard = std::time::Instant::now() + Duration::from_secs(120);
        while handle.metrics().sink_records() < 500 {
            assert!(
                std::time::Instant::now() < guard,
                "the sink never got records"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let consumed = handle.metrics().sink_records();
        let produced = handle.metrics().source_records();
        // The operator in front of the slow sink waited on its full
        // channel: that is its backpressure. The sink sends nothing.
        let blocked = |node: &str| {
            handle
                .metrics()
                .snapshot()
                .into_iter()
                .find(|(id, _)| id == node)
                .map(|(_, m)| m.blocked_ns())
                .unwrap()
        };
        assert!(blocked("even") > 0, "no backpressure counted");
        assert_eq!(blocked("sink"), 0);
        // The source can only be a few channel-capacities ahead of the sink.
        // Each source instance can be at most (capacity of 2 channels + in-flight) batches ahead.
        assert!(
            produced <= consumed * 2 + 2 * 8 * 100 + 1000,
            "produced {produced}, consumed {consumed}"
        );
        assert!(produced < 200_000, "source ran ahead: {produced}");
        handle.cancel();
        let summary = handle.wait().await.unwrap();
        assert!(
            summary.source_records() < 200_000,
            "cancel stops the sources"
        );
        assert_eq!(
            seen.1.load(Ordering::SeqCst),
            1,
            "sink finished cleanly after cancel"
        );
    }

    struct Boom;
    impl Operator for Boom {
        fn process_batch(&mut self, _: usize, _: RecordBatch, _: &mut Collector) -> Result<()> {
            Err(RuntimeError::User("boom".into()))
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failure_names_the_operator_and_stops_the_job() {
        let mut g = JobGraph::new("t");
        let src = g.add_source("src", 1, |_| {
            Ok(Box::new(Counter {
                batches: 1_000_000,
                rows: 10,
            }) as Box<dyn Source>)
        });
        let op = g.add_operator(
            "boom",
            1,
            vec![EdgeSpec {
                from: src,
                partitioning: Partitioning::Forward,
            }],
            |_| Ok(Box::new(Boom) as Box<dyn Operator>),
        );
        let seen = Seen::default();
        g.add_sink(
            "sink",
            1,
            vec![EdgeSpec {
                from: op,
                partitioning: Partitioning::Forward,
            }],
            move |i| {
                Ok(Box::new(Collect {
                    instance: i,
                    seen: seen.clone(),
                    delay: Duration::ZERO,
                }) as Box<dyn Sink>)
            },
        );
        let err = g
            .spawn(RunOptions::default())
            .unwrap()
            .wait()
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("boom") && msg.contains("in boom"), "{msg}");
    }
}
