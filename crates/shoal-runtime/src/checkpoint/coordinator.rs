//! The checkpoint coordinator task.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

use super::{
    CheckpointConfig, Inject, Manifest, ToCoordinator, TopologyNode, manifest::MANIFEST_VERSION,
};
use crate::error::Result;
use crate::metrics::Metrics;

/// Everything the coordinator talks to.
pub(crate) struct Coordinator {
    pub config: CheckpointConfig,
    pub pipeline: String,
    pub topology: Vec<TopologyNode>,
    /// Instances per node, in node order.
    pub instances: Vec<usize>,
    pub next_id: u64,
    pub sources: Vec<mpsc::UnboundedSender<Inject>>,
    pub sinks: Vec<mpsc::UnboundedSender<u64>>,
    /// Per sink instance, the newest epoch it committed: manifests from the
    /// oldest of them on are kept (a sink that owns the source offsets may
    /// restart from the epoch it committed, not the newest manifest).
    pub sink_committed: Vec<Arc<AtomicU64>>,
    pub inbox: mpsc::UnboundedReceiver<ToCoordinator>,
    pub completed: watch::Sender<u64>,
    pub metrics: Metrics,
}

impl Coordinator {
    /// Run until the final checkpoint after every source ended (or the job
    /// is torn down).
    pub(crate) async fn run(mut self) -> Result<()> {
        let total: usize = self.instances.iter().sum();
        let mut ended = 0usize;
        let n_sources = self.sources.len();
        let mut ticker = tokio::time::interval(self.config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            // Wait for the next tick, or for every source to end.
            let last = loop {
                if ended == n_sources {
                    break true;
                }
                tokio::select! {
                    _ = ticker.tick() => break false,
                    msg = self.inbox.recv() => match msg {
                        // A source ended: checkpoint now rather than at the
                        // next tick, so the sinks commit the tail of its
                        // output (an in-pipeline reader may be waiting for it).
                        Some(ToCoordinator::SourceEnded) => {
                            ended += 1;
                            if ended < n_sources {
                                break false;
                            }
                        }
                        Some(ToCoordinator::Ack { id, .. }) => tracing::debug!(id, "late ack of an abandoned checkpoint"),
                        None => return Ok(()),
                    },
                }
            };
            let id = self.next_id;
            self.next_id += 1;
            let started = Instant::now();
            let span = tracing::info_span!("checkpoint", id, last);
            let _guard = span.enter();
            for s in &self.sources {
                let _ = s.send(Inject { id, last });
            }
            let mut states: BTreeMap<usize, Vec<serde_json::Value>> = self
                .instances
                .iter()
                .enumerate()
                .map(|(n, p)| (n, vec![serde_json::Value::Null; *p]))
                .collect();
            let mut acks = 0usize;
            let deadline = tokio::time::sleep(self.config.timeout);
            tokio::pin!(deadline);
            let complete = loop {
                if acks == total {
                    break true;
                }
                tokio::select! {
                    _ = &mut deadline => break false,
                    msg = self.inbox.recv() => match msg {
                        Some(ToCoordinator::Ack { node, instance, id: ack_id, state }) if ack_id == id => {
                            states.get_mut(&node).expect("known node")[instance] = state;
                            acks += 1;
                        }
                        Some(ToCoordinator::Ack { .. }) => {}
                        Some(ToCoordinator::SourceEnded) => ended += 1,
                        None => return Ok(()),
                    },
                }
            };
            drop(_guard);
            if !complete {
                tracing::warn!(
                    id,
                    acks,
                    expected = total,
                    "checkpoint abandoned: not every task acknowledged in time"
                );
                self.metrics
                    .record_checkpoint_abandoned(id, started.elapsed());
                if last {
                    return Err(crate::RuntimeError::External(format!(
                        "final checkpoint {id} timed out after {:?}",
                        self.config.timeout
                    )));
                }
                continue;
            }
            let state_bytes_by_node: std::collections::BTreeMap<String, u64> = states
                .iter()
                .map(|(n, v)| {
                    (
                        self.topology[*n].id.clone(),
                        v.iter().map(crate::state::state_size).sum(),
                    )
                })
                .collect();
            let state_bytes: u64 = state_bytes_by_node.values().sum();
            let manifest = Manifest {
                version: MANIFEST_VERSION,
                pipeline: self.pipeline.clone(),
                id,
                completed_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0),
                duration_ms: started.elapsed().as_millis() as u64,
                state_bytes,
                last,
                topology: self.topology.clone(),
                states: states
                    .into_iter()
                    .map(|(n, v)| (self.topology[n].id.clone(), v))
                    .collect(),
            };
            manifest.write(&self.config.dir)?;
            let sinks_committed = || {
                self.sink_committed
                    .iter()
                    .map(|c| c.load(Ordering::Acquire))
                    .min()
                    .unwrap_or(u64::MAX)
            };
            #[cfg(feature = "test-hooks")]
            crate::test_hooks::after_manifest(id, last, &self.metrics, sinks_committed);
            let floor = sinks_committed();
            let store = self.config.state_store();
            Manifest::prune_with_store(
                &self.config.dir,
                self.config.keep,
                floor,
                Some((&store, self.config.store_shared)),
            )?;
            self.metrics
                .record_checkpoint(id, started.elapsed(), state_bytes_by_node);
            tracing::info!(
                id,
                duration_ms = manifest.duration_ms,
                state_bytes,
                "checkpoint completed"
            );
            // Only now may sinks make the epoch visible.
            let _ = self.completed.send(id);
            for s in &self.sinks {
                let _ = s.send(id);
            }
            if last {
                return Ok(());
            }
        }
    }
}
