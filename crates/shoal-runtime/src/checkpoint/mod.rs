//! Aligned-barrier checkpoints (the Chandy–Lamport variant Flink uses).
//!
//! 1. Every `interval` the [coordinator](coordinator) injects `Barrier(n)` at
//!    every source instance, which acknowledges with its state (offsets) as
//!    of the records it emitted before the barrier, and forwards it.
//! 2. Operators align the barrier on all inputs ([`InputGate`](crate::InputGate)),
//!    snapshot their state, acknowledge and forward it.
//! 3. Sinks stage the epoch ([`Sink::pre_commit`](crate::Sink::pre_commit))
//!    and acknowledge.
//! 4. When every task instance acknowledged, the [`Manifest`] is written
//!    atomically; only then are sinks told to commit epoch `n`.
//! 5. On restart the newest manifest restores every instance's state, sources
//!    seek to its offsets, and sinks commit the epochs it covers and abort the
//!    others ([`Sink::recover`](crate::Sink::recover)).
//!
//! End of input (Flink's "checkpoints after tasks finished"): a source whose
//! input ended sends `EndOfData`; operators flush what end of input emits
//! (windows, buffered OVER rows) *before* the barriers that follow, so the
//! next checkpoint commits it. A source ending triggers a checkpoint at
//! once (a pipeline that reads its own log topic waits for that commit).
//! When every source has ended, the coordinator takes a final checkpoint;
//! sinks commit it, then the job ends. A checkpoint that does not complete
//! within `timeout` is abandoned: its staged output is committed with the
//! next checkpoint that completes.

pub(crate) mod coordinator;
mod manifest;

use std::path::PathBuf;
use std::time::Duration;

pub use manifest::{
    MANIFEST_VERSION, Manifest, SAVEPOINTS_DIR, TopologyNode, check_savepoint_name,
};

/// Checkpointing settings of a job.
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// Time between checkpoints.
    pub interval: Duration,
    /// Directory of the manifests.
    pub dir: PathBuf,
    /// Manifests kept.
    pub keep: usize,
    /// A checkpoint not acknowledged by every task within this is abandoned.
    pub timeout: Duration,
    /// The state store: where sharded operators write their shard files
    /// (see [`crate::shard`]); a directory or an object store that several
    /// processes of one job may share. `None`: `dir/shards`.
    pub store: Option<crate::state::StateStore>,
    /// Other live processes write shard files into the same store (a job
    /// of several processes): old files are then deleted only from this
    /// process's own writer directories. `false`: every writer but this
    /// process is gone (one process per job), so unreferenced files of
    /// earlier runs are deleted too.
    pub store_shared: bool,
}

impl CheckpointConfig {
    /// The state store.
    pub fn state_store(&self) -> crate::state::StateStore {
        self.store
            .clone()
            .unwrap_or_else(|| self.dir.join("shards").into())
    }
}

/// What the coordinator tells a source instance.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Inject {
    pub id: u64,
    /// The final checkpoint: every source has ended.
    pub last: bool,
}

/// What task instances tell the coordinator.
#[derive(Debug)]
pub(crate) enum ToCoordinator {
    /// Instance `instance` of node `node` took its part of checkpoint `id`.
    Ack {
        node: usize,
        instance: usize,
        id: u64,
        state: serde_json::Value,
    },
    /// A source instance has no more input.
    SourceEnded,
}

/// Handles a task instance holds to take part in checkpoints.
#[derive(Debug, Clone)]
pub(crate) struct CheckpointLink {
    pub node: usize,
    pub instance: usize,
    pub to_coordinator: tokio::sync::mpsc::UnboundedSender<ToCoordinator>,
    /// The checkpoint directory (operators write keyed-state files there).
    pub dir: PathBuf,
}

impl CheckpointLink {
    pub(crate) fn ack(&self, id: u64, state: serde_json::Value) {
        // The coordinator only goes away when the job is over.
        let _ = self.to_coordinator.send(ToCoordinator::Ack {
            node: self.node,
            instance: self.instance,
            id,
            state,
        });
    }
}
