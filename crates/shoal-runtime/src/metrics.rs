//! Counters per graph node, read by the CLI for live progress and summaries.
//!
//! Counters are atomics updated once per batch (never per record).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

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
    /// The largest `state_entries` seen.
    pub state_peak: AtomicI64,
    /// Sources that know their input's end: records (and transaction
    /// markers) not read yet, summed over instances (consumer lag).
    pub lag: AtomicI64,
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
            state_peak: AtomicI64::new(0),
            lag: AtomicI64::new(0),
        }
    }

    /// One source instance's lag changed by `delta` records.
    pub fn add_lag(&self, delta: i64) {
        self.lag.fetch_add(delta, Ordering::Relaxed);
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

    /// The most entries held in operator state at once.
    pub fn state_peak(&self) -> u64 {
        self.state_peak.load(Ordering::Relaxed).max(0) as u64
    }

    /// Count a received batch of `rows` records.
    pub fn add_in(&self, rows: usize) {
        self.records_in.fetch_add(rows as u64, Ordering::Relaxed);
        self.batches_in.fetch_add(1, Ordering::Relaxed);
    }

    /// Count `rows` emitted records.
    pub fn add_out(&self, rows: usize) {
        self.records_out.fetch_add(rows as u64, Ordering::Relaxed);
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
}

/// The metrics registry of one job: node id → counters.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    nodes: Arc<DashMap<String, Arc<NodeMetrics>>>,
    order: Arc<std::sync::Mutex<Vec<String>>>,
    checkpoints: Arc<std::sync::Mutex<CheckpointStats>>,
}

impl Metrics {
    /// Note a completed checkpoint.
    pub fn record_checkpoint(&self, id: u64, duration: std::time::Duration, state_bytes: u64) {
        let mut c = self.checkpoints.lock().expect("checkpoint stats lock");
        c.completed += 1;
        c.last_id = id;
        c.last_duration = duration;
        c.last_state_bytes = state_bytes;
        c.durations_ms.push(duration.as_secs_f64() * 1e3);
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
