//! The planned nodes and edges.

use arrow::datatypes::SchemaRef;
use shoal_runtime::{NodeRole, Partitioning};

use shoal_connectors::connector::{SinkCapabilities, SourceCapabilities};

use crate::build::Builder;

/// An input edge of a planned node.
#[derive(Debug, Clone)]
pub struct PlanEdge {
    /// The upstream node id.
    pub from: String,
    /// How batches are routed to this node's instances.
    pub partitioning: Partitioning,
}

/// One planned node: a source, transform or sink with its resolved schema.
pub struct PlanNode {
    /// The id from the pipeline file.
    pub id: String,
    /// `generator`, `file`, `filter`, `sql`, ….
    pub kind: &'static str,
    /// Source, transform or sink.
    pub role: NodeRole,
    /// Parallel instances.
    pub parallelism: usize,
    /// Input edges.
    pub inputs: Vec<PlanEdge>,
    /// The schema of what the node emits (its input schema for sinks).
    pub schema: SchemaRef,
    /// A one-line description (query stages, path, …).
    pub detail: String,
    /// The state the node keeps between batches, if any.
    pub state: Option<NodeState>,
    pub(crate) builder: Builder,
}

/// The state a stateful operator keeps, and how it is split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    /// The columns it is keyed by (empty: not split by key).
    pub keys: Vec<String>,
    /// What the state is made of (the stateful query): state is restored
    /// only into an operator with the same description.
    pub schema: String,
    /// Kept per partition of this source, whose topic is partitioned by
    /// this key column: the state follows the partition between processes.
    pub by_partition: Option<(String, String)>,
}

impl PlanNode {
    /// What a source node needs from the job and offers to it.
    pub(crate) fn source_capabilities(&self) -> Option<SourceCapabilities> {
        match &self.builder {
            Builder::Source(t) => Some(t.capabilities()),
            _ => None,
        }
    }

    /// What a sink node needs from the job and offers to it.
    pub(crate) fn sink_capabilities(&self) -> Option<SinkCapabilities> {
        match &self.builder {
            Builder::Sink(t) => Some(t.capabilities()),
            _ => None,
        }
    }
}
