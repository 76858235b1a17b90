//! Whole-pipeline throughput: generator → filter → sql → file, run in this
//! process on a tokio runtime with 1 and then 2 worker threads.
//!
//! ```sh
//! cargo run --release -p shoal-benches --bin pipeline-bench -- [RECORDS]
//! ```
//!
//! Prints records/s (wall clock), records/s per CPU-second actually used,
//! and the process's peak RSS, as a markdown table.

use std::time::Instant;

use shoal_benches::{cpu_seconds, peak_rss_mib};
use shoal_plan::PlanOptions;
use shoal_runtime::RunOptions;

const PIPELINE: &str = r#"
name: bench
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

fn run(records: u64, workers: usize) -> (f64, f64, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let yaml = PIPELINE
        .replace("COUNT", &records.to_string())
        .replace("PAR", &workers.to_string())
        .replace("OUT", &out.display().to_string());
    let spec = shoal_dsl::parse_str("bench.yaml", &yaml).expect("valid pipeline");
    let opts = PlanOptions {
        data_dir: Some(dir.path().join("data")),
        ..PlanOptions::default()
    };
    let plan = shoal_plan::plan(&spec, &opts).expect("plan");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime");
    let cpu0 = cpu_seconds().unwrap_or(0.0);
    let t0 = Instant::now();
    let summary = rt.block_on(async {
        let handle = plan
            .into_job_graph()
            .expect("graph")
            .spawn(RunOptions::default())
            .expect("spawn");
        handle.wait().await.expect("run")
    });
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds().unwrap_or(0.0) - cpu0;
    assert_eq!(summary.source_records(), records);
    (wall, cpu, summary.sink_records())
}

fn main() {
    let records: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5_000_000);
    // Warm up (page cache, allocator).
    run(records / 10, 1);
    println!(
        "| workers | records | wall s | records/s | records/s per CPU-second | sink records |"
    );
    println!("|---|---|---|---|---|---|");
    for workers in [1, 2] {
        let (wall, cpu, sunk) = run(records, workers);
        println!(
            "| {workers} | {records} | {wall:.2} | {:.0} | {:.0} | {sunk} |",
            records as f64 / wall,
            records as f64 / cpu.max(1e-9)
        );
    }
    println!("\npeak RSS: {:.0} MiB", peak_rss_mib().unwrap_or(f64::NAN));
}
