//! Run and observe one Shoal job.
//!
//! [`Job`] owns the life of a job: it takes a planned pipeline
//! ([`shoal_plan::Plan`]), chooses the checkpoint to restore, spawns the
//! graph, and ends with its [`JobSummary`]. While it runs, a [`JobView`]
//! (cheap to clone, `Send + Sync`) answers every question about it as
//! serializable data — the one source the CLI's progress line, Prometheus
//! and the HTTP API (`shoal-http`) all read:
//!
//! - [`JobView::status`]: lifecycle state ([`Lifecycle`]), totals, per-node
//!   metrics with rates ([`JobStatus`]);
//! - [`JobView::graph`]: nodes, edges with their partitioning, parallelism,
//!   schemas and state ([`GraphSnapshot`]);
//! - [`JobView::checkpoints`]: the checkpoint history ([`CheckpointsSnapshot`]);
//! - [`JobView::partitions`]: per-partition source progress
//!   ([`PartitionsSnapshot`]);
//! - [`JobView::dead_letters`]: counts and the newest letters
//!   ([`DeadLettersSnapshot`]);
//! - [`JobView::stop`]: a graceful stop (the sources stop, the graph
//!   drains, the final checkpoint commits).
//!
//! ```no_run
//! # async fn demo(plan: shoal_plan::Plan) -> Result<(), shoal_job::JobError> {
//! let job = shoal_job::Job::new(plan, shoal_job::JobOptions::default());
//! let view = job.view();
//! println!("{}", serde_json::to_string(&view.status()).unwrap());
//! let summary = job.run().await?;
//! # let _ = summary; Ok(()) }
//! ```

mod job;
mod snapshot;

pub use job::{Job, JobError, JobOptions, JobView, Lifecycle, SavepointRefused};
pub use shoal_runtime::JobSummary;
pub use snapshot::{
    CheckpointsSnapshot, DeadLettersSnapshot, EdgeSnapshot, FieldSnapshot, GraphSnapshot,
    JobStatus, NodeSnapshot, NodeStatus, PartitionsSnapshot, SourcePartitions,
};
