//! # shoal-plan
//!
//! `PipelineSpec` → operator graph. The planner resolves every node's input
//! schema, compiles SQL and filters once (through `shoal-sql`), builds the
//! connectors' configurations, chooses how each edge is partitioned, and
//! checks everything that can be checked before a single record flows. Every
//! error names the YAML line it comes from.
//!
//! [`plan`] gives a [`Plan`]: printable by `shoal explain`
//! ([`Plan::explain`]) and runnable ([`Plan::into_job_graph`]).

mod build;
mod explain;
mod lock;
mod node;
mod planner;
mod restore;
mod score;

pub use lock::{LockError, RunLock};
pub use node::{NodeState, PlanEdge, PlanNode};
pub use planner::{Plan, PlanOptions, plan};
pub use shoal_connectors::registry::{load_file, parse_bytes, parse_str, registry};
