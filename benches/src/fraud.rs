//! The fraud-detection job end to end (`pipelines/fraud-detection.yaml`):
//! generator → embedded log → 2 consumer-group members → per-card OVER
//! windows → per-(card, country) OVER window → XGBoost score → filter →
//! file, run in this process.
//!
//! ```sh
//! cargo run --release -p shoal-benches --bin fraud-bench -- [TRANSACTIONS]
//! ```
//!
//! 1. Throughput: transactions/s (wall) and per CPU-second, on a tokio
//!    runtime with 1 and 2 worker threads, as fast as possible.
//! 2. Latency from event to alert: the generator at a fixed rate with
//!    `clock: wall` (event time = the wall clock when a transaction is made);
//!    a last SQL step stamps every alert with `wall_clock_ms() - ts`. Run
//!    with the pipeline's `max_delay` (2 s) and with 100 ms, and with the
//!    checkpoint interval of 2 s and of 200 ms: rows wait for the watermark
//!    (`max_delay`) and, behind the transactional log hop, for the
//!    checkpoint that commits them (half the interval on average).
//!
//! Run from the repository root (the pipeline and the model are read from
//! `pipelines/` and `models/`).

use shoal_benches::{Timed, peak_rss_mib, run_plan};
use shoal_plan::PlanOptions;

fn pipeline_text() -> String {
    std::fs::read_to_string("pipelines/fraud-detection.yaml")
        .expect("run from the repository root: pipelines/fraud-detection.yaml")
}

/// Bytes the state files of the newest checkpoint in `data` wrote (the sum
/// of `written_bytes` over its keyed-state references) and its whole state.
fn newest_checkpoint_bytes(data: &std::path::Path) -> (u64, u64) {
    fn written(v: &serde_json::Value) -> u64 {
        match v {
            serde_json::Value::Object(m) => m
                .iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("keyed_state", r) => r["written_bytes"].as_u64().unwrap_or(0),
                    _ => written(v),
                })
                .sum(),
            serde_json::Value::Array(a) => a.iter().map(written).sum(),
            _ => 0,
        }
    }
    let dir = data.join("checkpoints/fraud-detection");
    let newest = std::fs::read_dir(&dir)
        .expect("checkpoint dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("chk-"))
        .max()
        .expect("a manifest");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(newest).expect("manifest")).expect("json");
    (
        written(&m["states"]),
        m["state_bytes"].as_u64().unwrap_or(0),
    )
}

/// Runs `yaml` (alerts and dead letters redirected into a temporary
/// directory, data dir `DIR/data`) on `workers` tokio threads.
fn run_timed(yaml: &str, workers: usize) -> (Timed, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("alerts");
    let yaml = yaml
        .replace(
            "path: out/fraud-alerts",
            &format!("path: {}", out.display()),
        )
        .replace(
            "path: out/fraud-dead-letter",
            &format!("path: {}", dir.path().join("dead").display()),
        );
    let spec = shoal_plan::parse_str("fraud-bench.yaml", &yaml).expect("valid pipeline");
    let opts = PlanOptions {
        data_dir: Some(dir.path().join("data")),
        ..PlanOptions::default()
    };
    let plan = shoal_plan::plan(&spec, &opts).expect("plans");
    (run_plan(plan, workers), out, dir)
}

fn run(yaml: &str, workers: usize) -> (f64, f64, std::path::PathBuf, tempfile::TempDir) {
    let (t, out, dir) = run_timed(yaml, workers);
    (t.wall, t.cpu, out, dir)
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("TRANSACTIONS is a number"))
        .unwrap_or(1_000_000);
    let base = pipeline_text().replace("count: 200000", &format!("count: {n}"));
    println!("fraud-detection job, {n} transactions\n");
    println!("| workers | transactions/s (wall) | per CPU-second | peak RSS |");
    println!("|---|---|---|---|");
    for workers in [1, 2] {
        let (wall, cpu, _, _dir) = run(&base, workers);
        println!(
            "| {workers} | {:.0} | {:.0} | {:.0} MiB |",
            n as f64 / wall,
            n as f64 / cpu.max(1e-9),
            peak_rss_mib().unwrap_or(0.0)
        );
    }
    // Checkpoint overhead: every 1 s against (almost) never — a 1 h interval
    // still takes the checkpoints at end of input, which commit the
    // in-pipeline log hop. `card_features` keeps its state per partition.
    println!("\ncheckpoint overhead, {n} transactions, 1 worker\n");
    println!(
        "| checkpoint interval | transactions/s per CPU-second | checkpoints | state written by the newest | state size |"
    );
    println!("|---|---|---|---|---|");
    let mut per_cpu = Vec::new();
    for interval in ["1h", "1s"] {
        let yaml = base.replace(
            "checkpoint: { interval: 2s }",
            &format!("checkpoint: {{ interval: {interval}, keep: 2 }}"),
        );
        let (t, _, dir) = run_timed(&yaml, 1);
        let (written, size) = newest_checkpoint_bytes(&dir.path().join("data"));
        per_cpu.push(n as f64 / t.cpu.max(1e-9));
        println!(
            "| {interval} | {:.0} | {} | {:.1} MiB | {:.1} MiB |",
            n as f64 / t.cpu.max(1e-9),
            t.summary.checkpoints.completed,
            written as f64 / (1 << 20) as f64,
            size as f64 / (1 << 20) as f64
        );
    }
    println!(
        "\noverhead of checkpoints every 1 s: {:+.1} % CPU per transaction",
        (per_cpu[0] / per_cpu[1] - 1.0) * 100.0
    );

    let rate = 20_000;
    let count = 200_000;
    println!("\nevent → alert latency, {count} transactions at {rate}/s, 2 workers\n");
    println!("| max_delay | checkpoint interval | alerts | p50 | p99 | max |");
    println!("|---|---|---|---|---|---|");
    // The in-pipeline log hop is transactional (read_committed): a record
    // reaches the features only once the checkpoint after it commits.
    for (delay, interval) in [("2s", "2s"), ("100ms", "2s"), ("100ms", "200ms")] {
        let yaml = pipeline_text()
            .replace(
                "count: 200000",
                &format!("count: {count}\n    rate: {rate}/s\n    clock: wall"),
            )
            .replace("max_delay: 2s", &format!("max_delay: {delay}"))
            .replace(
                "checkpoint: { interval: 2s }",
                &format!("checkpoint: {{ interval: {interval} }}"),
            )
            .replace(
                "sinks:\n",
                "  timed:\n    type: sql\n    inputs: [alerts_only]\n    query: SELECT txn_id, wall_clock_ms() - CAST(ts AS BIGINT) AS latency_ms FROM alerts_only\nsinks:\n",
            )
            .replace("inputs: [alerts_only]\n    path:", "inputs: [timed]\n    path:");
        let (_, _, out, _dir) = run(&yaml, 2);
        let mut latencies: Vec<i64> = Vec::new();
        for entry in std::fs::read_dir(&out).expect("alerts dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "jsonl")
                && !path.file_name().unwrap().to_string_lossy().starts_with('.')
            {
                for line in std::fs::read_to_string(&path).expect("read").lines() {
                    let v: serde_json::Value = serde_json::from_str(line).expect("json");
                    latencies.push(v["latency_ms"].as_i64().expect("latency_ms"));
                }
            }
        }
        latencies.sort_unstable();
        assert!(!latencies.is_empty(), "no alerts");
        println!(
            "| {delay} | {interval} | {} | {} ms | {} ms | {} ms |",
            latencies.len(),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies[latencies.len() - 1]
        );
    }
}
