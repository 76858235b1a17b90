//! The planned nodes and edges.

use arrow::datatypes::SchemaRef;
use shoal_runtime::{NodeRole, Partitioning};

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
    pub(crate) builder: Builder,
}
