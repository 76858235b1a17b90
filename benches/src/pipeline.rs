//! Whole-pipeline throughput: generator → filter → sql → file, run in this
//! process on a tokio runtime with 1 and then 2 worker threads.
//!
//! ```sh
//! cargo run --release -p shoal-benches --bin pipeline-bench -- [RECORDS]
//! ```
//!
//! Prints records/s (wall clock), records/s per CPU-second actually used,
//! and the process's peak RSS, as a markdown table.

use shoal_benches::{peak_rss_mib, run_plan};
use shoal_plan::PlanOptions;

const PIPELINE: &str = r#"
name: bench
CHECKPOINT
sources:
  txns: { type: generator, seed: 1, count: COUNT, parallelism: PAR }
transforms:
  large: { type: filter, inputs: [txns], where: "amount > 100", parallelism: PAR }
  flagged:
    type: sql
    inputs: [large]
    parallelism: PAR
    query: >
      SELECT txn_id, card_id, amount, country, ts,
             country <> 'US' AS is_foreign,
             CASE WHEN amount > 1000 THEN 'high' ELSE 'low' END AS band
      FROM large
sinks:
  out: { type: file, inputs: [flagged], path: OUT, parallelism: PAR }
"#;

struct Measured {
    wall: f64,
    cpu: f64,
    sunk: u64,
    checkpoints: shoal_runtime::CheckpointStats,
}

fn run(records: u64, workers: usize, checkpoint: Option<&str>) -> Measured {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let yaml = PIPELINE
        .replace("COUNT", &records.to_string())
        .replace("PAR", &workers.to_string())
        .replace("OUT", &out.display().to_string())
        .replace(
            "CHECKPOINT",
            &checkpoint
                .map(|i| format!("checkpoint: {{ interval: {i} }}"))
                .unwrap_or_default(),
        );
    let spec = shoal_plan::parse_str("bench.yaml", &yaml).expect("valid pipeline");
    let opts = PlanOptions {
        data_dir: Some(dir.path().join("data")),
        ..PlanOptions::default()
    };
    let plan = shoal_plan::plan(&spec, &opts).expect("plan");
    let t = run_plan(plan, workers);
    let (wall, cpu, summary) = (t.wall, t.cpu, t.summary);
    assert_eq!(summary.source_records(), records);
    Measured {
        wall,
        cpu,
        sunk: summary.sink_records(),
        checkpoints: summary.checkpoints,
    }
}

fn percentile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let records: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5_000_000);
    // Warm up (page cache, allocator).
    run(records / 10, 1, None);
    println!(
        "| workers | records | wall s | records/s | records/s per CPU-second | sink records |"
    );
    println!("|---|---|---|---|---|---|");
    for workers in [1, 2] {
        let m = run(records, workers, None);
        println!(
            "| {workers} | {records} | {:.2} | {:.0} | {:.0} | {} |",
            m.wall,
            records as f64 / m.wall,
            records as f64 / m.cpu.max(1e-9),
            m.sunk
        );
    }
    println!("\npeak RSS: {:.0} MiB", peak_rss_mib().unwrap_or(f64::NAN));

    // Checkpoint overhead: 1 worker, 8x the records so several checkpoints land.
    let n = records * 8;
    let off = run(n, 1, None);
    let on = run(n, 1, Some("1s"));
    let overhead = (on.wall / off.wall - 1.0) * 100.0;
    println!(
        "\n| checkpointing | records | wall s | records/s | checkpoints | duration p50 | p99 |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| off | {n} | {:.2} | {:.0} | - | - | - |",
        off.wall,
        n as f64 / off.wall
    );
    println!(
        "| every 1 s | {n} | {:.2} | {:.0} | {} | {:.1} ms | {:.1} ms |",
        on.wall,
        n as f64 / on.wall,
        on.checkpoints.completed,
        percentile(&on.checkpoints.durations_ms, 0.5),
        percentile(&on.checkpoints.durations_ms, 0.99)
    );
    println!("\ncheckpoint overhead: {overhead:+.1} % wall time");
}
