//! Nexmark throughput: each `pipelines/nexmark-q*.yaml` run in this process
//! on a single-worker tokio runtime over N generated events, reporting
//! events per second and per CPU-second (one core), next to the per-core
//! figures of Flink's published Nexmark run.
//!
//! ```sh
//! cargo run --release -p shoal-benches --bin nexmark-bench -- [EVENTS]
//! ```

use std::path::Path;

use shoal_benches::{peak_rss_mib, run_plan};
use shoal_plan::PlanOptions;

/// (query, Flink events/s per core).
const QUERIES: [(&str, f64); 6] = [
    ("q0", 155e3),
    ("q1", 158e3),
    ("q2", 175e3),
    ("q5", 22e3),
    ("q7", 12e3),
    ("q8", 146e3),
];

fn run(query: &str, events: u64) -> (f64, f64, u64) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let file = root.join(format!("pipelines/nexmark-{query}.yaml"));
    let yaml = std::fs::read_to_string(&file).expect("read pipeline");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let yaml = yaml
        .replace("count: 200000", &format!("count: {events}"))
        .replace("path: out/", &format!("path: {}/", out.display()));
    let spec = shoal_plan::parse_str(&file.display().to_string(), &yaml).expect("valid pipeline");
    let opts = PlanOptions {
        data_dir: Some(dir.path().join("data")),
        ..PlanOptions::default()
    };
    let plan = shoal_plan::plan(&spec, &opts).expect("plan");
    let t = run_plan(plan, 1);
    assert_eq!(t.summary.source_records(), events);
    (t.wall, t.cpu, t.summary.sink_records())
}

fn main() {
    let events: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    run("q0", events / 10); // warm up
    println!(
        "| query | events | wall s | events/s | events/s per CPU-second | Flink per core | ratio | output rows |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (q, flink) in QUERIES {
        let (wall, cpu, rows) = run(q, events);
        let per_core = events as f64 / cpu.max(1e-9);
        println!(
            "| {q} | {events} | {wall:.2} | {:.0} | {per_core:.0} | {flink:.0} | {:.1}x | {rows} |",
            events as f64 / wall,
            per_core / flink
        );
    }
    println!("\npeak RSS: {:.0} MiB", peak_rss_mib().unwrap_or(f64::NAN));
}
