//! # shoal-runtime
//!
//! The runtime runs an operator graph as tokio tasks that exchange
//! [`Message`]s over bounded channels:
//!
//! * [`Message::Batch`] carries an Arrow `RecordBatch` — data never moves as
//!   single rows;
//! * [`Message::Watermark`] carries event time (milliseconds since the epoch);
//! * [`Message::Barrier`] marks a checkpoint epoch;
//! * [`Message::End`] says an upstream task has no more input.
//!
//! A [`JobGraph`] is built from [`Source`]s, [`Operator`]s and [`Sink`]s,
//! each with a parallelism and connected by [`Partitioning`] edges (forward,
//! round-robin or a hash shuffle on a key column). [`JobGraph::spawn`] starts
//! one task per parallel instance and returns a [`JobHandle`] whose
//! [`Metrics`] the CLI reads for live progress.
//!
//! Operators keep per-key state in [`state::KeyedState`] (value, map and
//! list tables), snapshotted incrementally into files at each checkpoint.
//! Behind a key-partitioned source, a stateful operator's state is kept per
//! source partition and follows the partition between processes
//! ([`shard`]).
//!
//! Backpressure is the channels' job: every edge is a bounded channel, so a
//! slow sink makes its upstream `send` wait, all the way back to the sources,
//! and memory stays flat.

mod blocking;
mod channel;
pub mod checkpoint;
mod dead_letter;
mod error;
mod gate;
mod graph;
mod lookup;
mod message;
mod metrics;
mod operator;
mod output;
mod partition;
pub mod shard;
mod sharded;
mod sink;
mod source;
pub mod state;
mod task;
#[cfg(feature = "test-hooks")]
mod test_hooks;
mod watermark;

pub use blocking::off_worker;
pub use checkpoint::{CheckpointConfig, Manifest, SAVEPOINTS_DIR, check_savepoint_name};
pub use dead_letter::{DeadLetter, DeadLetterSink, DeadLetters};
pub use error::{ErrorDomain, Result, RuntimeError};
pub use gate::{InputEvent, InputGate};
pub use graph::{EdgeSpec, JobGraph, JobHandle, JobSummary, NodeId, NodeSummary, RunOptions};
pub use lookup::LookupStore;
pub use message::{Envelope, Message};
pub use metrics::{
    CheckpointRecord, CheckpointStats, InstanceSnapshot, Metrics, NodeMetrics, NodeRole,
    PartitionProgress,
};
pub use operator::{Collector, Operator};
pub use output::Output;
pub use partition::{HashPartitioner, KEY_HASH, Partitioning, key_family, key_hashes};
pub use sink::Sink;
pub use source::{BarrierHook, Source, SourceContext};
pub use watermark::{SharedPartitionTimes, WatermarkTracker, max_event_time_ms};

/// The crate's re-export of Arrow, so dependants agree on one version.
pub use arrow;
