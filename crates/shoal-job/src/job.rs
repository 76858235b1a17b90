//! [`Job`]: plan → restore → spawn → observe → stop, and its [`JobView`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shoal_plan::Plan;
use shoal_runtime::{JobSummary, Manifest, Metrics, RunOptions, RuntimeError};
use tokio_util::sync::CancellationToken;

use crate::snapshot::{
    CheckpointsSnapshot, DeadLettersSnapshot, GraphSnapshot, JobStatus, NodeStatus,
    PartitionsSnapshot, SourcePartitions,
};

/// Errors of a job: the runtime's (its [`RuntimeError::domain`] tells a
/// user's mistake from a failure).
pub type JobError = RuntimeError;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Created, nothing read yet.
    Starting,
    /// Choosing and checking the checkpoint to restore, spawning tasks.
    Restoring,
    /// Tasks are running.
    Running,
    /// A stop was asked for: sources stopped, the graph drains and takes
    /// its final checkpoint.
    Stopping,
    /// Ended cleanly.
    Finished,
    /// Ended with an error (see [`JobStatus::error`]).
    Failed,
}

/// How to run a job.
#[derive(Debug, Clone, Default)]
pub struct JobOptions {
    /// Stateful operators whose checkpointed state is dropped (they start
    /// afresh).
    pub drop_state: Vec<String>,
    /// Cancelling this stops the job gracefully (as [`JobView::stop`]).
    pub cancel: CancellationToken,
}

/// How many one-second throughput samples a node keeps (for sparklines).
pub const RATE_SAMPLES: usize = 120;

/// One job, from plan to summary.
pub struct Job {
    plan: Option<Plan>,
    opts: JobOptions,
    restore: Option<Option<Manifest>>,
    view: JobView,
}

/// A cheap, shareable window on a [`Job`]: snapshots and stop.
#[derive(Clone)]
pub struct JobView {
    shared: Arc<Shared>,
}

struct Shared {
    name: String,
    started: Instant,
    started_ms: u64,
    graph: GraphSnapshot,
    checkpointing: bool,
    checkpoint_dir: Option<std::path::PathBuf>,
    cancel: CancellationToken,
    metrics: OnceLock<Metrics>,
    life: Mutex<Life>,
    rates: Mutex<BTreeMap<String, Rates>>,
}

#[derive(Default)]
struct Life {
    state: Option<Lifecycle>,
    error: Option<String>,
    restored_from: Option<u64>,
    /// Keep the final checkpoint as this savepoint (asked with the stop).
    savepoint: Option<String>,
    /// The savepoint kept at the end: its name and checkpoint id.
    saved: Option<(String, u64)>,
}

/// Why a savepoint cannot be asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SavepointRefused {
    /// The pipeline takes no checkpoints: there is nothing to keep.
    #[error(
        "this pipeline takes no checkpoints (no `checkpoint:` section): there is nothing to keep as a savepoint"
    )]
    NoCheckpoints,
    /// Not a usable name.
    #[error("{0}")]
    BadName(String),
}

#[derive(Default)]
struct Rates {
    last: Option<(Instant, u64, u64, u64)>,
    in_per_s: f64,
    out_per_s: f64,
    /// Share of the last interval the instances waited on full channels.
    backpressure: f64,
    history: VecDeque<f64>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Job {
    /// A job for `plan`, not started: its [`JobView`] already answers (state
    /// `starting`), so a server can be up before anything is restored.
    pub fn new(plan: Plan, opts: JobOptions) -> Self {
        let view = JobView {
            shared: Arc::new(Shared {
                name: plan.name.clone(),
                started: Instant::now(),
                started_ms: now_ms(),
                graph: GraphSnapshot::of(&plan),
                checkpointing: plan.checkpoint.is_some(),
                checkpoint_dir: plan.checkpoint.as_ref().map(|c| c.dir.clone()),
                cancel: opts.cancel.clone(),
                metrics: OnceLock::new(),
                life: Mutex::new(Life {
                    state: Some(Lifecycle::Starting),
                    ..Life::default()
                }),
                rates: Mutex::new(BTreeMap::new()),
            }),
        };
        Self {
            plan: Some(plan),
            opts,
            restore: None,
            view,
        }
    }

    /// A plan and start in one: [`Job::new`], then [`Job::restore_point`].
    pub fn start(plan: Plan, opts: JobOptions) -> Result<Self, JobError> {
        let mut job = Self::new(plan, opts);
        job.restore_point()?;
        Ok(job)
    }

    /// The view on this job.
    pub fn view(&self) -> JobView {
        self.view.clone()
    }

    /// Choose the checkpoint to restore (state `restoring`); `None` when
    /// the job starts from nothing. Called by [`Job::run`] if not before.
    pub fn restore_point(&mut self) -> Result<Option<&Manifest>, JobError> {
        if self.restore.is_none() {
            self.view.set_state(Lifecycle::Restoring);
            let plan = self.plan.as_ref().expect("a job runs once");
            match plan.restore_point() {
                Ok(m) => {
                    self.view.life().restored_from = m.as_ref().map(|m| m.id);
                    self.restore = Some(m);
                }
                Err(e) => {
                    self.view.fail(&e);
                    return Err(e);
                }
            }
        }
        Ok(self.restore.as_ref().and_then(Option::as_ref))
    }

    /// Run the job to its end (its sources end, or [`JobView::stop`]).
    /// Must be called inside a tokio runtime.
    pub async fn run(mut self) -> Result<JobSummary, JobError> {
        self.restore_point()?;
        let plan = self.plan.take().expect("a job runs once");
        let view = self.view.clone();
        let span = tracing::info_span!("job", pipeline = %view.shared.name);
        let result = tracing::Instrument::instrument(
            async {
                let channel_capacity = plan.channel_capacity;
                let checkpoint = plan.checkpoint.clone();
                // Building connects to external systems (Postgres waits
                // out an outage at start): off the async worker's hot path.
                let graph = match tokio::runtime::Handle::current().runtime_flavor() {
                    tokio::runtime::RuntimeFlavor::MultiThread => {
                        tokio::task::block_in_place(|| plan.into_job_graph())?
                    }
                    _ => plan.into_job_graph()?,
                };
                let handle = graph.spawn(RunOptions {
                    channel_capacity,
                    cancel: self.opts.cancel.clone(),
                    checkpoint,
                    restore: self.restore.take().flatten(),
                    drop_state: std::mem::take(&mut self.opts.drop_state),
                })?;
                let _ = view.shared.metrics.set(handle.metrics().clone());
                {
                    let mut life = view.life();
                    if life.state == Some(Lifecycle::Restoring) {
                        life.state = Some(if view.shared.cancel.is_cancelled() {
                            Lifecycle::Stopping
                        } else {
                            Lifecycle::Running
                        });
                    }
                }
                tracing::info!(pipeline = %view.shared.name, "running");
                let sampler = tokio::spawn({
                    let view = view.clone();
                    async move {
                        let mut tick = tokio::time::interval(Duration::from_secs(1));
                        loop {
                            tick.tick().await;
                            view.sample();
                        }
                    }
                });
                let r = handle.wait().await;
                sampler.abort();
                r
            },
            span,
        )
        .await;
        let result = result.and_then(|summary| {
            view.keep_asked_savepoint()?;
            Ok(summary)
        });
        match &result {
            Ok(_) => view.set_state(Lifecycle::Finished),
            Err(e) => view.fail(e),
        }
        result
    }
}

impl JobView {
    fn life(&self) -> std::sync::MutexGuard<'_, Life> {
        self.shared.life.lock().expect("job lifecycle lock")
    }

    fn set_state(&self, state: Lifecycle) {
        self.life().state = Some(state);
    }

    fn fail(&self, e: &JobError) {
        let mut life = self.life();
        life.state = Some(Lifecycle::Failed);
        life.error = Some(e.to_string());
    }

    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The lifecycle state now.
    pub fn state(&self) -> Lifecycle {
        self.life().state.unwrap_or(Lifecycle::Starting)
    }

    /// Ready for traffic: restored and running (not yet stopping or ended).
    pub fn is_ready(&self) -> bool {
        self.state() == Lifecycle::Running
    }

    /// The live counters, once the tasks were spawned.
    pub fn metrics(&self) -> Option<&Metrics> {
        self.shared.metrics.get()
    }

    /// Stop gracefully: the sources stop, the graph drains, the final
    /// checkpoint is taken and committed. Returns the state after the call
    /// (a job that already ended stays `finished` or `failed`).
    pub fn stop(&self) -> Lifecycle {
        // The state first: whoever sees the cancellation sees `stopping`.
        let state = {
            let mut life = self.life();
            if matches!(
                life.state,
                Some(Lifecycle::Starting | Lifecycle::Restoring | Lifecycle::Running)
            ) {
                life.state = Some(Lifecycle::Stopping);
            }
            life.state.unwrap_or(Lifecycle::Stopping)
        };
        self.shared.cancel.cancel();
        state
    }

    /// Keep the final checkpoint of this run as savepoint `name` (used
    /// with [`JobView::stop`]): `shoal run --from-savepoint NAME` restores
    /// it later, whatever checkpoints came after. Checked now, written
    /// once the job has stopped cleanly.
    pub fn keep_savepoint(&self, name: &str) -> Result<(), SavepointRefused> {
        if self.shared.checkpoint_dir.is_none() {
            return Err(SavepointRefused::NoCheckpoints);
        }
        shoal_runtime::check_savepoint_name(name)
            .map_err(|e| SavepointRefused::BadName(e.to_string()))?;
        self.life().savepoint = Some(name.to_string());
        Ok(())
    }

    /// The savepoint this run kept at its end: name and checkpoint id.
    pub fn saved_savepoint(&self) -> Option<(String, u64)> {
        self.life().saved.clone()
    }

    /// After a clean end: write the savepoint asked for, if any.
    fn keep_asked_savepoint(&self) -> Result<(), JobError> {
        let (Some(name), Some(dir)) = (self.life().savepoint.clone(), &self.shared.checkpoint_dir)
        else {
            return Ok(());
        };
        let id = shoal_runtime::Manifest::save_as(dir, &name)?;
        tracing::info!(savepoint = %name, checkpoint = id, "savepoint kept");
        self.life().saved = Some((name, id));
        Ok(())
    }

    /// Take a throughput sample (every second while the job runs).
    fn sample(&self) {
        let Some(metrics) = self.metrics() else {
            return;
        };
        let now = Instant::now();
        let mut rates = self.shared.rates.lock().expect("rates lock");
        for (node, m) in metrics.snapshot() {
            let instances = self
                .shared
                .graph
                .nodes
                .iter()
                .find(|n| n.id == node)
                .map_or(1, |n| n.parallelism.max(1));
            let r = rates.entry(node).or_default();
            let (i, o, b) = (m.records_in(), m.records_out(), m.blocked_ns());
            if let Some((t, li, lo, lb)) = r.last {
                let dt = now.duration_since(t).as_secs_f64().max(1e-3);
                r.in_per_s = (i - li) as f64 / dt;
                r.out_per_s = (o - lo) as f64 / dt;
                r.backpressure = ((b - lb) as f64 / 1e9 / dt / instances as f64).clamp(0.0, 1.0);
                if r.history.len() == RATE_SAMPLES {
                    r.history.pop_front();
                }
                // Sources' throughput is what they emit; others', what
                // they receive.
                r.history
                    .push_back(if m.role == shoal_runtime::NodeRole::Source {
                        r.out_per_s
                    } else {
                        r.in_per_s
                    });
            }
            r.last = Some((now, i, o, b));
        }
    }

    /// The job's state, totals and per-node metrics.
    pub fn status(&self) -> JobStatus {
        let (state, error, restored_from) = {
            let life = self.life();
            (
                life.state.unwrap_or(Lifecycle::Starting),
                life.error.clone(),
                life.restored_from,
            )
        };
        let rates = self.shared.rates.lock().expect("rates lock");
        let nodes = self
            .shared
            .graph
            .nodes
            .iter()
            .map(|n| {
                let m = self
                    .metrics()
                    .and_then(|m| m.snapshot().into_iter().find(|(id, _)| *id == n.id))
                    .map(|(_, m)| m);
                let r = rates.get(&n.id);
                let waiting = m.as_ref().and_then(|m| m.waiting());
                NodeStatus {
                    id: n.id.clone(),
                    role: n.role,
                    kind: n.kind,
                    parallelism: n.parallelism,
                    records_in: m.as_ref().map_or(0, |m| m.records_in()),
                    records_out: m.as_ref().map_or(0, |m| m.records_out()),
                    batches_in: m.as_ref().map_or(0, |m| m.batches_in()),
                    records_in_per_s: r.map_or(0.0, |r| r.in_per_s),
                    records_out_per_s: r.map_or(0.0, |r| r.out_per_s),
                    throughput_history: r
                        .map_or_else(Vec::new, |r| r.history.iter().copied().collect()),
                    bytes_in: m.as_ref().map_or(0, |m| m.bytes_in()),
                    bytes_out: m.as_ref().map_or(0, |m| m.bytes_out()),
                    instances: m.as_ref().map_or_else(Vec::new, |m| m.instances()),
                    waiting: waiting.as_ref().map(|(why, _)| why.clone()),
                    waiting_ms: waiting.as_ref().map(|(_, d)| d.as_millis() as u64),
                    backpressure: r.map_or(0.0, |r| r.backpressure),
                    blocked_ms: m.as_ref().map_or(0, |m| m.blocked_ns() / 1_000_000),
                    dead_letters: m.as_ref().map_or(0, |m| m.dead_letters()),
                    watermark_ms: m.as_ref().and_then(|m| m.watermark_ms()),
                    state_entries: m.as_ref().map_or(0, |m| m.state_entries()),
                    state_peak: m.as_ref().map_or(0, |m| m.state_peak()),
                    state_bytes: m.as_ref().map_or(0, |m| m.state_bytes()),
                    lag: m
                        .as_ref()
                        .filter(|m| m.role == shoal_runtime::NodeRole::Source)
                        .map(|m| m.lag()),
                }
            })
            .collect::<Vec<_>>();
        let checkpoints = self.metrics().map(Metrics::checkpoints).unwrap_or_default();
        JobStatus {
            name: self.shared.name.clone(),
            state,
            error,
            started_ms: self.shared.started_ms,
            uptime_ms: self.shared.started.elapsed().as_millis() as u64,
            restored_from,
            checkpointing: self.shared.checkpointing,
            source_records: self.metrics().map_or(0, Metrics::source_records),
            sink_records: self.metrics().map_or(0, Metrics::sink_records),
            dead_letters: self.metrics().map_or(0, Metrics::dead_letters),
            lag: self.metrics().map_or(0, |m| m.source_lag().max(0) as u64),
            checkpoints_completed: checkpoints.completed,
            checkpoints_abandoned: checkpoints.abandoned,
            last_checkpoint: (checkpoints.completed > 0).then_some(checkpoints.last_id),
            nodes,
        }
    }

    /// The operator graph.
    pub fn graph(&self) -> GraphSnapshot {
        self.shared.graph.clone()
    }

    /// The checkpoint history, oldest first.
    pub fn checkpoints(&self) -> CheckpointsSnapshot {
        let stats = self.metrics().map(Metrics::checkpoints).unwrap_or_default();
        CheckpointsSnapshot {
            enabled: self.shared.checkpointing,
            restored_from: self.life().restored_from,
            completed: stats.completed,
            abandoned: stats.abandoned,
            history: self
                .metrics()
                .map(Metrics::checkpoint_history)
                .unwrap_or_default(),
        }
    }

    /// Per-partition progress of the sources that report it (`log`).
    pub fn partitions(&self) -> PartitionsSnapshot {
        let sources = self
            .metrics()
            .map(|m| {
                m.snapshot()
                    .into_iter()
                    .filter(|(_, n)| n.role == shoal_runtime::NodeRole::Source)
                    .map(|(node, n)| SourcePartitions {
                        lag: n.lag(),
                        partitions: n.partitions(),
                        node,
                    })
                    .collect()
            })
            .unwrap_or_default();
        PartitionsSnapshot { sources }
    }

    /// Dead-letter counts per node and the newest `limit` letters (newest
    /// first; the newest 100 are kept).
    pub fn dead_letters(&self, limit: usize) -> DeadLettersSnapshot {
        let by_node = self
            .metrics()
            .map(|m| {
                m.snapshot()
                    .into_iter()
                    .map(|(node, n)| (node, n.dead_letters()))
                    .collect()
            })
            .unwrap_or_default();
        DeadLettersSnapshot {
            total: self.metrics().map_or(0, Metrics::dead_letters),
            by_node,
            latest: self
                .metrics()
                .map(|m| m.recent_dead_letters(limit))
                .unwrap_or_default(),
        }
    }
}
