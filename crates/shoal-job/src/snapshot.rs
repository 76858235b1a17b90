//! The serializable snapshots a [`JobView`](crate::JobView) answers with.
//! Their JSON shapes are the HTTP API's (documented in the README).

use std::collections::BTreeMap;

use shoal_plan::Plan;
use shoal_runtime::{CheckpointRecord, DeadLetter, NodeRole, PartitionProgress};

use crate::Lifecycle;

fn role_name(role: NodeRole) -> &'static str {
    match role {
        NodeRole::Source => "source",
        NodeRole::Transform => "transform",
        NodeRole::Sink => "sink",
    }
}

/// The operator graph of a job.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GraphSnapshot {
    /// The pipeline's name.
    pub pipeline: String,
    /// Nodes in graph order (every node after its inputs).
    pub nodes: Vec<NodeSnapshot>,
    /// Edges, upstream to downstream.
    pub edges: Vec<EdgeSnapshot>,
}

/// One node of the graph.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeSnapshot {
    /// The id from the pipeline file.
    pub id: String,
    /// `generator`, `log`, `sql`, `score`, `file`, ….
    pub kind: &'static str,
    /// `source`, `transform` or `sink`.
    pub role: &'static str,
    /// Parallel instances.
    pub parallelism: usize,
    /// A one-line description (query stages, path, …).
    pub detail: String,
    /// What it emits (sinks: what they receive).
    pub schema: Vec<FieldSnapshot>,
    /// The state it keeps, if any: its keys and how it is split.
    pub state: Option<serde_json::Value>,
}

/// A column of a schema.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FieldSnapshot {
    /// Column name.
    pub name: String,
    /// Arrow type.
    #[serde(rename = "type")]
    pub data_type: String,
    /// Whether it may be null.
    pub nullable: bool,
}

/// An edge of the graph.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EdgeSnapshot {
    /// Upstream node id.
    pub from: String,
    /// Downstream node id.
    pub to: String,
    /// How batches are routed to the downstream instances
    /// (`forward`, `round-robin`, `hash(card_id)`, …).
    pub partitioning: String,
}

impl GraphSnapshot {
    pub(crate) fn of(plan: &Plan) -> Self {
        let explained = plan.explain_json();
        let nodes = plan
            .nodes
            .iter()
            .zip(explained["nodes"].as_array().into_iter().flatten())
            .map(|(n, e)| NodeSnapshot {
                id: n.id.clone(),
                kind: n.kind,
                role: role_name(n.role),
                parallelism: n.parallelism,
                detail: n.detail.clone(),
                schema: n
                    .schema
                    .fields()
                    .iter()
                    .map(|f| FieldSnapshot {
                        name: f.name().clone(),
                        data_type: f.data_type().to_string(),
                        nullable: f.is_nullable(),
                    })
                    .collect(),
                state: Some(e["state"].clone()).filter(|s| !s.is_null()),
            })
            .collect();
        let edges = plan
            .nodes
            .iter()
            .flat_map(|n| {
                n.inputs.iter().map(|e| EdgeSnapshot {
                    from: e.from.clone(),
                    to: n.id.clone(),
                    partitioning: e.partitioning.to_string(),
                })
            })
            .collect();
        Self {
            pipeline: plan.name.clone(),
            nodes,
            edges,
        }
    }
}

/// A job's state, totals and per-node metrics.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobStatus {
    /// The pipeline's name.
    pub name: String,
    /// Lifecycle state.
    pub state: Lifecycle,
    /// Why it failed (state `failed`).
    pub error: Option<String>,
    /// When it started, ms since the epoch.
    pub started_ms: u64,
    /// Time since it started, ms.
    pub uptime_ms: u64,
    /// The checkpoint it restored, if any.
    pub restored_from: Option<u64>,
    /// Whether it takes checkpoints.
    pub checkpointing: bool,
    /// Records emitted by all sources.
    pub source_records: u64,
    /// Records received by all sinks.
    pub sink_records: u64,
    /// Records dead-lettered anywhere.
    pub dead_letters: u64,
    /// Consumer lag summed over sources.
    pub lag: u64,
    /// Checkpoints completed in this run.
    pub checkpoints_completed: u64,
    /// Checkpoints abandoned in this run.
    pub checkpoints_abandoned: u64,
    /// Id of the newest completed checkpoint of this run.
    pub last_checkpoint: Option<u64>,
    /// Per-node metrics, in graph order.
    pub nodes: Vec<NodeStatus>,
}

/// One node's metrics (summed over its instances).
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeStatus {
    /// Node id.
    pub id: String,
    /// `source`, `transform` or `sink`.
    pub role: &'static str,
    /// `generator`, `log`, `sql`, ….
    pub kind: &'static str,
    /// Parallel instances.
    pub parallelism: usize,
    /// Records received.
    pub records_in: u64,
    /// Records emitted.
    pub records_out: u64,
    /// Batches received.
    pub batches_in: u64,
    /// Records received per second over the last second.
    pub records_in_per_s: f64,
    /// Records emitted per second over the last second.
    pub records_out_per_s: f64,
    /// Throughput (records/s: emitted by sources, received by others), one
    /// sample a second, oldest first, at most 120.
    pub throughput_history: Vec<f64>,
    /// Records dead-lettered.
    pub dead_letters: u64,
    /// Bytes received (the Arrow memory of the batches), over instances.
    pub bytes_in: u64,
    /// Bytes emitted (the Arrow memory of the batches), over instances.
    pub bytes_out: u64,
    /// The same counters per parallel instance.
    pub instances: Vec<shoal_runtime::InstanceSnapshot>,
    /// Backpressure: the share (0 to 1) of the last second its instances
    /// spent waiting for room in a full downstream channel (a slow
    /// consumer further on).
    pub backpressure: f64,
    /// Time spent waiting on full downstream channels since the start, ms
    /// (summed over instances).
    pub blocked_ms: u64,
    /// What the node waits for outside the job (`"postgres unavailable:
    /// …"`), while it does.
    pub waiting: Option<String>,
    /// How long it has been waiting, ms.
    pub waiting_ms: Option<u64>,
    /// Event time reached, ms since the epoch.
    pub watermark_ms: Option<i64>,
    /// Entries in operator state now.
    pub state_entries: u64,
    /// The most entries its state held at once.
    pub state_peak: u64,
    /// Bytes of its state in the newest completed checkpoint.
    pub state_bytes: u64,
    /// Sources that know their input's end: records not read yet.
    pub lag: Option<u64>,
}

/// The checkpoint history of a job.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckpointsSnapshot {
    /// Whether the job takes checkpoints.
    pub enabled: bool,
    /// The checkpoint it restored, if any.
    pub restored_from: Option<u64>,
    /// Completed in this run.
    pub completed: u64,
    /// Abandoned in this run.
    pub abandoned: u64,
    /// The newest checkpoints (at most 200), oldest first.
    pub history: Vec<CheckpointRecord>,
}

/// Per-partition progress of the sources.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PartitionsSnapshot {
    /// One entry per source node.
    pub sources: Vec<SourcePartitions>,
}

/// One source's partitions.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourcePartitions {
    /// Source node id.
    pub node: String,
    /// Lag summed over its partitions.
    pub lag: u64,
    /// Per partition (empty for sources without partitions).
    pub partitions: Vec<PartitionProgress>,
}

/// Dead letters of a job.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLettersSnapshot {
    /// All dead letters of this run.
    pub total: u64,
    /// Per node.
    pub by_node: BTreeMap<String, u64>,
    /// The newest letters, newest first.
    pub latest: Vec<DeadLetter>,
}
