//! Counters per graph node, read by the CLI for live progress and summaries.
//!
//! Counters are atomics updated once per batch (never per record). Beside
//! them: per-partition progress of the sources that know it, a bounded
//! history of checkpoints and the newest dead letters, for the job-control
//! API (`shoal-job`) and Prometheus.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;

/// What a node is, for reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    /// Produces records.
    Source,
    /// Transforms records.
    Transform,
    /// Consumes records.
    Sink,
}

/// Counters of one node (summed over its parallel instances).
#[derive(Debug)]
pub struct NodeMetrics {
    /// What the node is.
    pub role: NodeRole,
    /// Records received.
    pub records_in: AtomicU64,
    /// Records emitted.
    pub records_out: AtomicU64,
    /// Batches received.
    pub batches_in: AtomicU64,
    /// Records sent to the dead-letter output.
    pub dead_letters: AtomicU64,
    /// Latest watermark forwarded (ms since epoch), `i64::MIN` if none.
    pub watermark: AtomicI64,
    /// Entries held in operator state now (window groups, buffered join
    /// rows, dedup keys…), summed over instances.
    pub state_entries: AtomicI64,
    /// Bytes of the node's state in the newest completed checkpoint (its
    /// manifest entries plus the keyed-state files they reference).
    pub state_bytes: AtomicU64,
    /// The largest `state_entries` seen.
    pub state_peak: AtomicI64,
    /// Sources that know their input's end: records (and transaction
    /// markers) not read yet, summed over instances (consumer lag).
    pub lag: AtomicI64,
    /// Times a consumer-group member of this source was expelled from its
    /// group and joined again.
    pub rejoins: AtomicU64,
    /// Time the node's instances spent waiting on full downstream channels
    /// (backpressure), ns, summed over instances.
    pub blocked_ns: AtomicU64,
    /// The newest checkpoint's barrier alignment: (checkpoint id, the
    /// longest of its instances'), see [`NodeMetrics::record_alignment`].
    alignment: Mutex<(u64, std::time::Duration)>,
    /// Per-partition progress of a partitioned source (see
    /// [`NodeMetrics::set_partition`]); empty for other nodes.
    partitions: Mutex<BTreeMap<u32, PartitionProgress>>,
    /// Counters of each parallel instance (set once when the tasks spawn).
    instances: std::sync::OnceLock<Box<[InstanceCounters]>>,
    /// What the node is waiting for outside the job (an unreachable
    /// database), and since when (ms since the epoch).
    waiting: Mutex<Option<(String, u64)>>,
}

/// Counters of one parallel instance of a node.
#[derive(Debug, Default)]
pub struct InstanceCounters {
    records_in: AtomicU64,
    records_out: AtomicU64,
    /// Arrow memory of the batches received / emitted.
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    blocked_ns: AtomicU64,
}

/// What one parallel instance of a node did so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct InstanceSnapshot {
    /// The instance (0-based).
    pub instance: usize,
    /// Records received.
    pub records_in: u64,
    /// Records emitted.
    pub records_out: u64,
    /// Bytes received: the Arrow memory of the batches.
    pub bytes_in: u64,
    /// Bytes emitted: the Arrow memory of the batches.
    pub bytes_out: u64,
    /// Time spent waiting on full downstream channels, ms.
    pub blocked_ms: u64,
}

/// Where a source partition stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PartitionProgress {
    /// The partition.
    pub partition: u32,
    /// The source instance that reads it (the newest to report it).
    pub instance: usize,
    /// The next offset to read.
    pub position: u64,
    /// The partition's end (log end offset / high watermark) when last seen.
    pub end: u64,
    /// `end - position` (0 when the position is past the end seen).
    pub lag: u64,
}

impl NodeMetrics {
    fn new(role: NodeRole) -> Self {
        Self {
            role,
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            batches_in: AtomicU64::new(0),
            dead_letters: AtomicU64::new(0),
            watermark: AtomicI64::new(i64::MIN),
            state_entries: AtomicI64::new(0),
            state_bytes: AtomicU64::new(0),
            state_peak: AtomicI64::new(0),
            lag: AtomicI64::new(0),
            rejoins: AtomicU64::new(0),
            blocked_ns: AtomicU64::new(0),
            alignment: Mutex::new((0, std::time::Duration::ZERO)),
            partitions: Mutex::new(BTreeMap::new()),
            instances: std::sync::OnceLock::new(),
            waiting: Mutex::new(None),
        }
    }

    /// Source instance `instance` reads `partition`, is at `position` and
    /// saw its end at `end`. Called at most a few times a second.
    pub fn set_partition(&self, partition: u32, instance: usize, position: u64, end: u64) {
        let p = PartitionProgress {
            partition,
            instance,
            position,
            end,
            lag: end.saturating_sub(position),
        };
        self.partitions
            .lock()
            .expect("partition progress lock")
            .insert(partition, p);
    }

    /// Source instance `instance` no longer reads `partition` (it moved to
    /// another process): drop its progress unless another instance here
    /// reported it since.
    pub fn forget_partition(&self, partition: u32, instance: usize) {
        let mut parts = self.partitions.lock().expect("partition progress lock");
        if parts
            .get(&partition)
            .is_some_and(|p| p.instance == instance)
        {
            parts.remove(&partition);
        }
    }

    /// Per-partition progress, by partition (empty unless a partitioned
    /// source reports it).
    pub fn partitions(&self) -> Vec<PartitionProgress> {
        self.partitions
            .lock()
            .expect("partition progress lock")
            .values()
            .copied()
            .collect()
    }

    /// Batches received so far.
    pub fn batches_in(&self) -> u64 {
        self.batches_in.load(Ordering::Relaxed)
    }

    /// The latest watermark forwarded (ms since the epoch), if any.
    pub fn watermark_ms(&self) -> Option<i64> {
        Some(self.watermark.load(Ordering::Relaxed)).filter(|w| *w != i64::MIN)
    }

    /// Consumer lag (0 where unknown).
    pub fn lag(&self) -> u64 {
        self.lag.load(Ordering::Relaxed).max(0) as u64
    }

    /// One source instance's lag changed by `delta` records.
    pub fn add_lag(&self, delta: i64) {
        self.lag.fetch_add(delta, Ordering::Relaxed);
    }

    /// A member of this source was expelled from its group and rejoined.
    pub fn add_rejoin(&self) {
        self.rejoins.fetch_add(1, Ordering::Relaxed);
    }

    /// One instance's state grew (or shrank) by `delta` entries.
    pub fn add_state(&self, delta: i64) {
        let now = self.state_entries.fetch_add(delta, Ordering::Relaxed) + delta;
        self.state_peak.fetch_max(now, Ordering::Relaxed);
    }

    /// Entries held in operator state now.
    pub fn state_entries(&self) -> u64 {
        self.state_entries.load(Ordering::Relaxed).max(0) as u64
    }

    /// Bytes of its state in the newest completed checkpoint.
    pub fn state_bytes(&self) -> u64 {
        self.state_bytes.load(Ordering::Relaxed)
    }

    /// The most entries held in operator state at once.
    pub fn state_peak(&self) -> u64 {
        self.state_peak.load(Ordering::Relaxed).max(0) as u64
    }

    /// Count a batch instance `instance` received.
    pub fn add_in(&self, instance: usize, batch: &arrow::record_batch::RecordBatch) {
        let rows = batch.num_rows() as u64;
        self.records_in.fetch_add(rows, Ordering::Relaxed);
        self.batches_in.fetch_add(1, Ordering::Relaxed);
        if let Some(i) = self.instance(instance) {
            i.records_in.fetch_add(rows, Ordering::Relaxed);
            i.bytes_in
                .fetch_add(batch.get_array_memory_size() as u64, Ordering::Relaxed);
        }
    }

    /// Count a batch instance `instance` emitted.
    pub fn add_out(&self, instance: usize, batch: &arrow::record_batch::RecordBatch) {
        let rows = batch.num_rows() as u64;
        self.records_out.fetch_add(rows, Ordering::Relaxed);
        if let Some(i) = self.instance(instance) {
            i.records_out.fetch_add(rows, Ordering::Relaxed);
            i.bytes_out
                .fetch_add(batch.get_array_memory_size() as u64, Ordering::Relaxed);
        }
    }

    /// Instance `instance` waited `d` for room in a full downstream channel.
    pub fn add_blocked(&self, instance: usize, d: std::time::Duration) {
        let ns = d.as_nanos() as u64;
        self.blocked_ns.fetch_add(ns, Ordering::Relaxed);
        if let Some(i) = self.instance(instance) {
            i.blocked_ns.fetch_add(ns, Ordering::Relaxed);
        }
    }

    /// The node waits on an outside system (`Some(why)`: "postgres
    /// unavailable: …"), or no longer (`None`). The first reason of an
    /// outage keeps its start time; called at most once per retry.
    pub fn set_waiting(&self, why: Option<String>) {
        let mut w = self.waiting.lock().expect("waiting lock");
        match why {
            None => *w = None,
            Some(why) => {
                let since = w.as_ref().map_or_else(now_ms, |(_, since)| *since);
                *w = Some((why, since));
            }
        }
    }

    /// What the node waits for and for how long, if it waits.
    pub fn waiting(&self) -> Option<(String, std::time::Duration)> {
        let w = self.waiting.lock().expect("waiting lock");
        w.as_ref().map(|(why, since)| {
            (
                why.clone(),
                std::time::Duration::from_millis(now_ms().saturating_sub(*since)),
            )
        })
    }

    /// The node runs `n` parallel instances: count each one's work too.
    /// The first call wins.
    pub fn set_parallelism(&self, n: usize) {
        let _ = self
            .instances
            .set((0..n).map(|_| InstanceCounters::default()).collect());
    }

    fn instance(&self, instance: usize) -> Option<&InstanceCounters> {
        self.instances.get().and_then(|i| i.get(instance))
    }

    /// What each parallel instance did so far (empty before the tasks
    /// spawn).
    pub fn instances(&self) -> Vec<InstanceSnapshot> {
        self.instances
            .get()
            .map(|all| {
                all.iter()
                    .enumerate()
                    .map(|(instance, c)| InstanceSnapshot {
                        instance,
                        records_in: c.records_in.load(Ordering::Relaxed),
                        records_out: c.records_out.load(Ordering::Relaxed),
                        bytes_in: c.bytes_in.load(Ordering::Relaxed),
                        bytes_out: c.bytes_out.load(Ordering::Relaxed),
                        blocked_ms: c.blocked_ns.load(Ordering::Relaxed) / 1_000_000,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Bytes received, summed over instances (Arrow memory of the batches).
    pub fn bytes_in(&self) -> u64 {
        self.instances().iter().map(|i| i.bytes_in).sum()
    }

    /// Bytes emitted, summed over instances (Arrow memory of the batches).
    pub fn bytes_out(&self) -> u64 {
        self.instances().iter().map(|i| i.bytes_out).sum()
    }

    /// One instance aligned checkpoint `id`'s barriers in `took` (once per
    /// checkpoint and instance; the node keeps the longest).
    pub fn record_alignment(&self, id: u64, took: std::time::Duration) {
        let mut a = self.alignment.lock().expect("alignment lock");
        if a.0 == id {
            a.1 = a.1.max(took);
        } else if id > a.0 {
            *a = (id, took);
        }
    }

    /// How long checkpoint `id`'s barriers took to align at this node (the
    /// slowest instance), if it is the newest one the node saw.
    pub fn alignment(&self, id: u64) -> Option<std::time::Duration> {
        let a = self.alignment.lock().expect("alignment lock");
        (a.0 == id).then_some(a.1)
    }

    /// Time spent waiting on full downstream channels so far, ns, summed
    /// over instances (divide a rate of it by the parallelism for the
    /// share of time a node is backpressured).
    pub fn blocked_ns(&self) -> u64 {
        self.blocked_ns.load(Ordering::Relaxed)
    }

    /// Count `n` dead-lettered records.
    pub fn add_dead(&self, n: usize) {
        self.dead_letters.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Records received so far.
    pub fn records_in(&self) -> u64 {
        self.records_in.load(Ordering::Relaxed)
    }

    /// Records emitted so far.
    pub fn records_out(&self) -> u64 {
        self.records_out.load(Ordering::Relaxed)
    }

    /// Records dead-lettered so far.
    pub fn dead_letters(&self) -> u64 {
        self.dead_letters.load(Ordering::Relaxed)
    }
}

/// Completed checkpoints of a job.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CheckpointStats {
    /// How many completed.
    pub completed: u64,
    /// Id of the newest.
    pub last_id: u64,
    /// Its duration.
    pub last_duration: std::time::Duration,
    /// Its state size in bytes.
    pub last_state_bytes: u64,
    /// Every duration so far, in ms (for percentiles).
    pub durations_ms: Vec<f64>,
    /// How many were abandoned (not every task acknowledged in time).
    pub abandoned: u64,
}

/// One checkpoint in the history of a job.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CheckpointRecord {
    /// Checkpoint id.
    pub id: u64,
    /// `completed`, or `abandoned` (not every task acknowledged in time;
    /// its output is committed with the next checkpoint that completes).
    pub status: &'static str,
    /// When it started, ms since the epoch.
    pub started_ms: u64,
    /// How long it took (until completion or abandonment), ms.
    pub duration_ms: f64,
    /// State size referenced by its manifest, bytes (0 when abandoned).
    pub state_bytes: u64,
    /// Per node: how long its barriers took to align, ms (the slowest
    /// instance; the time from the first input channel's barrier to the
    /// last one's, while the first channels' data waited).
    pub alignment_ms: BTreeMap<String, f64>,
}

/// How many checkpoints [`Metrics::checkpoint_history`] keeps.
pub const CHECKPOINT_HISTORY: usize = 200;
/// How many dead letters [`Metrics::recent_dead_letters`] keeps.
pub const RECENT_DEAD_LETTERS: usize = 100;

/// The metrics registry of one job: node id → counters.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    nodes: Arc<DashMap<String, Arc<NodeMetrics>>>,
    order: Arc<Mutex<Vec<String>>>,
    checkpoints: Arc<Mutex<CheckpointStats>>,
    history: Arc<Mutex<VecDeque<CheckpointRecord>>>,
    recent_dead: Arc<Mutex<VecDeque<crate::DeadLetter>>>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Metrics {
    /// Note a completed checkpoint and the state size of each node in it.
    pub fn record_checkpoint(
        &self,
        id: u64,
        duration: std::time::Duration,
        state_bytes_by_node: BTreeMap<String, u64>,
    ) {
        let state_bytes = state_bytes_by_node.values().sum();
        for (node, m) in self.snapshot() {
            if let Some(b) = state_bytes_by_node.get(&node) {
                m.state_bytes.store(*b, Ordering::Relaxed);
            }
        }
        let mut c = self.checkpoints.lock().expect("checkpoint stats lock");
        c.completed += 1;
        c.last_id = id;
        c.last_duration = duration;
        c.last_state_bytes = state_bytes;
        c.durations_ms.push(duration.as_secs_f64() * 1e3);
        drop(c);
        self.push_history(id, "completed", duration, state_bytes);
    }

    /// Note a checkpoint abandoned after `duration` (a task did not
    /// acknowledge in time).
    pub fn record_checkpoint_abandoned(&self, id: u64, duration: std::time::Duration) {
        self.checkpoints
            .lock()
            .expect("checkpoint stats lock")
            .abandoned += 1;
        self.push_history(id, "abandoned", duration, 0);
    }

    fn push_history(
        &self,
        id: u64,
        status: &'static str,
        duration: std::time::Duration,
        state_bytes: u64,
    ) {
        let alignment_ms = self
            .snapshot()
            .into_iter()
            .filter_map(|(node, m)| Some((node, m.alignment(id)?.as_secs_f64() * 1e3)))
            .collect();
        let mut h = self.history.lock().expect("checkpoint history lock");
        if h.len() == CHECKPOINT_HISTORY {
            h.pop_front();
        }
        h.push_back(CheckpointRecord {
            id,
            status,
            started_ms: now_ms().saturating_sub(duration.as_millis() as u64),
            duration_ms: duration.as_secs_f64() * 1e3,
            state_bytes,
            alignment_ms,
        });
    }

    /// The newest checkpoints (at most [`CHECKPOINT_HISTORY`]), oldest first.
    pub fn checkpoint_history(&self) -> Vec<CheckpointRecord> {
        self.history
            .lock()
            .expect("checkpoint history lock")
            .iter()
            .cloned()
            .collect()
    }

    /// Keep `letter` among the newest dead letters.
    pub fn note_dead_letter(&self, letter: &crate::DeadLetter) {
        let mut r = self.recent_dead.lock().expect("dead letters lock");
        if r.len() == RECENT_DEAD_LETTERS {
            r.pop_front();
        }
        r.push_back(letter.clone());
    }

    /// The newest dead letters (at most `limit`), newest first.
    pub fn recent_dead_letters(&self, limit: usize) -> Vec<crate::DeadLetter> {
        self.recent_dead
            .lock()
            .expect("dead letters lock")
            .iter()
            .rev()
            .take(limit)
            .cloned()
            .collect()
    }

    /// Completed checkpoints so far.
    pub fn checkpoints(&self) -> CheckpointStats {
        self.checkpoints
            .lock()
            .expect("checkpoint stats lock")
            .clone()
    }

    /// The counters of `node`, created on first use.
    pub fn node(&self, node: &str, role: NodeRole) -> Arc<NodeMetrics> {
        if let Some(m) = self.nodes.get(node) {
            return m.clone();
        }
        let m = self
            .nodes
            .entry(node.to_string())
            .or_insert_with(|| Arc::new(NodeMetrics::new(role)))
            .clone();
        let mut order = self.order.lock().expect("metrics order lock");
        if !order.iter().any(|n| n == node) {
            order.push(node.to_string());
        }
        m
    }

    /// Every node's counters, in registration (graph) order.
    pub fn snapshot(&self) -> Vec<(String, Arc<NodeMetrics>)> {
        let order = self.order.lock().expect("metrics order lock").clone();
        order
            .into_iter()
            .filter_map(|n| self.nodes.get(&n).map(|m| (n.clone(), m.clone())))
            .collect()
    }

    /// Sum of records emitted by sources.
    pub fn source_records(&self) -> u64 {
        self.sum(NodeRole::Source, |m| m.records_out())
    }

    /// Sum of records received by sinks.
    pub fn sink_records(&self) -> u64 {
        self.sum(NodeRole::Sink, |m| m.records_in())
    }

    /// Consumer lag summed over sources (0 where unknown).
    pub fn source_lag(&self) -> i64 {
        self.sum(NodeRole::Source, |m| {
            m.lag.load(Ordering::Relaxed).max(0) as u64
        }) as i64
    }

    /// Sum of dead-lettered records over all nodes.
    pub fn dead_letters(&self) -> u64 {
        self.nodes.iter().map(|e| e.value().dead_letters()).sum()
    }

    fn sum(&self, role: NodeRole, f: impl Fn(&NodeMetrics) -> u64) -> u64 {
        self.nodes
            .iter()
            .filter(|e| e.value().role == role)
            .map(|e| f(e.value()))
            .sum()
    }

    /// Prometheus text exposition of every counter.
    pub fn to_prometheus(&self) -> String {
        let mut s = String::new();
        let metrics: [(&str, &str, fn(&NodeMetrics) -> u64); 3] = [
            (
                "shoal_records_in_total",
                "Records received by a node.",
                NodeMetrics::records_in,
            ),
            (
                "shoal_records_out_total",
                "Records emitted by a node.",
                NodeMetrics::records_out,
            ),
            (
                "shoal_dead_letters_total",
                "Records sent to the dead-letter output.",
                NodeMetrics::dead_letters,
            ),
        ];
        for (name, help, get) in metrics {
            s.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
            for (node, m) in self.snapshot() {
                s.push_str(&format!("{name}{{node=\"{node}\"}} {}\n", get(&m)));
            }
        }
        for (name, help, get) in [
            (
                "shoal_bytes_in_total",
                "Bytes received by a node (Arrow memory of the batches).",
                NodeMetrics::bytes_in as fn(&NodeMetrics) -> u64,
            ),
            (
                "shoal_bytes_out_total",
                "Bytes emitted by a node (Arrow memory of the batches).",
                NodeMetrics::bytes_out,
            ),
        ] {
            s.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
            for (node, m) in self.snapshot() {
                s.push_str(&format!("{name}{{node=\"{node}\"}} {}\n", get(&m)));
            }
        }
        let name = "shoal_waiting_seconds";
        s.push_str(&format!(
            "# HELP {name} How long a node has been waiting on an outside system (an unreachable database); 0 when it is not.\n# TYPE {name} gauge\n"
        ));
        for (node, m) in self.snapshot() {
            let secs = m.waiting().map_or(0.0, |(_, d)| d.as_secs_f64());
            s.push_str(&format!("{name}{{node=\"{node}\"}} {secs}\n"));
        }
        let name = "shoal_backpressure_seconds_total";
        s.push_str(&format!(
            "# HELP {name} Time a node's instances waited on full downstream channels (summed over instances).\n# TYPE {name} counter\n"
        ));
        for (node, m) in self.snapshot() {
            s.push_str(&format!(
                "{name}{{node=\"{node}\"}} {}\n",
                m.blocked_ns() as f64 / 1e9
            ));
        }
        let name = "shoal_state_bytes";
        s.push_str(&format!(
            "# HELP {name} Bytes of a node's state in the newest completed checkpoint.\n# TYPE {name} gauge\n"
        ));
        for (node, m) in self.snapshot() {
            s.push_str(&format!("{name}{{node=\"{node}\"}} {}\n", m.state_bytes()));
        }
        let name = "shoal_state_entries";
        s.push_str(&format!(
            "# HELP {name} Entries held in operator state (window groups, join rows, dedup keys).\n# TYPE {name} gauge\n"
        ));
        for (node, m) in self.snapshot() {
            s.push_str(&format!(
                "{name}{{node=\"{node}\"}} {}\n",
                m.state_entries()
            ));
        }
        let name = "shoal_consumer_lag";
        s.push_str(&format!(
            "# HELP {name} Records a source has not read yet (embedded-log sources: log end minus position, over its partitions).\n# TYPE {name} gauge\n"
        ));
        for (node, m) in self.snapshot() {
            if m.role == NodeRole::Source {
                s.push_str(&format!(
                    "{name}{{node=\"{node}\"}} {}\n",
                    m.lag.load(Ordering::Relaxed).max(0)
                ));
            }
        }
        let name = "shoal_group_rejoins_total";
        s.push_str(&format!(
            "# HELP {name} Times a consumer-group member of a source was expelled (no poll within max_poll_interval, or no heartbeat within session_timeout) and joined again.\n# TYPE {name} counter\n"
        ));
        for (node, m) in self.snapshot() {
            if m.role == NodeRole::Source {
                s.push_str(&format!(
                    "{name}{{node=\"{node}\"}} {}\n",
                    m.rejoins.load(Ordering::Relaxed)
                ));
            }
        }
        let name = "shoal_partition_lag";
        s.push_str(&format!(
            "# HELP {name} Records of one source partition not read yet (log end minus position).\n# TYPE {name} gauge\n"
        ));
        for (node, m) in self.snapshot() {
            for p in m.partitions() {
                s.push_str(&format!(
                    "{name}{{node=\"{node}\",partition=\"{}\"}} {}\n",
                    p.partition, p.lag
                ));
            }
        }
        let name = "shoal_batches_in_total";
        s.push_str(&format!(
            "# HELP {name} Batches received by a node.\n# TYPE {name} counter\n"
        ));
        for (node, m) in self.snapshot() {
            s.push_str(&format!("{name}{{node=\"{node}\"}} {}\n", m.batches_in()));
        }
        let name = "shoal_watermark_ms";
        s.push_str(&format!(
            "# HELP {name} Event time a node has reached (ms since the epoch).\n# TYPE {name} gauge\n"
        ));
        for (node, m) in self.snapshot() {
            let w = m.watermark.load(Ordering::Relaxed);
            if w != i64::MIN {
                s.push_str(&format!("{name}{{node=\"{node}\"}} {w}\n"));
            }
        }
        let c = self.checkpoints();
        for (name, kind, help, value) in [
            (
                "shoal_checkpoints_completed_total",
                "counter",
                "Checkpoints completed.",
                c.completed as f64,
            ),
            (
                "shoal_checkpoints_abandoned_total",
                "counter",
                "Checkpoints abandoned (not every task acknowledged in time).",
                c.abandoned as f64,
            ),
            (
                "shoal_checkpoint_last_duration_seconds",
                "gauge",
                "Duration of the newest completed checkpoint.",
                c.last_duration.as_secs_f64(),
            ),
            (
                "shoal_checkpoint_last_state_bytes",
                "gauge",
                "State size of the newest completed checkpoint.",
                c.last_state_bytes as f64,
            ),
        ] {
            s.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        }
        s
    }
}

/// A dead-letter sink that also keeps each letter among the job's newest
/// ([`Metrics::recent_dead_letters`]) before passing it on.
pub(crate) struct RecordingDeadLetters {
    pub(crate) inner: Box<dyn crate::DeadLetterSink>,
    pub(crate) metrics: Metrics,
}

impl crate::DeadLetterSink for RecordingDeadLetters {
    fn write(&mut self, after: u64, letter: &crate::DeadLetter) -> crate::Result<()> {
        self.metrics.note_dead_letter(letter);
        self.inner.write(after, letter)
    }
    fn sync(&mut self) -> crate::Result<()> {
        self.inner.sync()
    }
    fn commit(&mut self, id: u64) -> crate::Result<()> {
        self.inner.commit(id)
    }
    fn recover(&mut self, restored: Option<u64>) -> crate::Result<()> {
        self.inner.recover(restored)
    }
    fn finish(&mut self) -> crate::Result<()> {
        self.inner.finish()
    }
}
