//! Kafka and Postgres throughput against the real services of
//! `scripts/services.sh` (`SHOAL_KAFKA_BROKERS`, `SHOAL_POSTGRES_URL`):
//!
//! 1. Kafka → filter → Kafka with Shoal, in this process on a 1-worker
//!    tokio runtime: exactly-once (checkpoints every 1 s, transactional
//!    sink) and at-least-once (no checkpoints).
//! 2. The same job as the consumer-group loop most users start from:
//!    `scripts/kafka_loop_bench.py` (Python, confluent-kafka; at-least-once),
//!    on the same broker and input topic.
//! 3. Kafka → Postgres with Shoal (exactly-once, `COPY` per checkpoint).
//!
//! ```sh
//! scripts/services.sh start && source /tmp/shoal-services/env
//! cargo run --release -p shoal-benches --bin kafka-bench -- [RECORDS]
//! ```
//!
//! Every run reads the whole input topic as a new consumer group and checks
//! its output count. Wall time counts from start to end, so it includes the
//! consumer-group join (tansu holds a joining member for about half the
//! session timeout, 2 s here) and, for Shoal, the 1 s of silence
//! `stop_at_end` waits for; records/s per CPU-second divides by the CPU time
//! of the measured process only (the broker and Postgres run in their own).

use std::process::Command;
use std::time::Duration;

use shoal_benches::run_plan;
use shoal_plan::PlanOptions;
use shoal_tests::services::{consume_all, create_topic, pg, produce, unique};

const PARTITIONS: i32 = 4;

fn records(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let card = i % 1013;
            (
                card.to_string(),
                format!(
                    "{{\"id\":{i},\"card\":{card},\"amount\":{},\"country\":\"{}\"}}",
                    (i % 1000) as f64 / 10.0,
                    ["US", "DE", "FR", "JP"][i % 4]
                ),
            )
        })
        .collect()
}

/// Records of `records(n)` with amount >= 50.
fn expected_out(n: usize) -> usize {
    (0..n).filter(|i| i % 1000 >= 500).count()
}

const SCHEMA: &str = "{ id: int64, card: int64, amount: float64, country: utf8 }";

struct Row {
    what: String,
    records: usize,
    out: usize,
    wall: f64,
    cpu: f64,
}

fn shoal(yaml: &str) -> (f64, f64, u64, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = shoal_plan::parse_str("kafka-bench.yaml", yaml).expect("valid pipeline");
    let opts = PlanOptions {
        data_dir: Some(dir.path().join("data")),
        ..PlanOptions::default()
    };
    let plan = shoal_plan::plan(&spec, &opts).expect("plan");
    let t = run_plan(plan, 1);
    (
        t.wall,
        t.cpu,
        t.summary.source_records(),
        t.summary.sink_records(),
    )
}

fn source_yaml(brokers: &str, topic: &str, group: &str) -> String {
    format!(
        "  src:\n    type: kafka\n    brokers: {brokers}\n    topic: {topic}\n    group: {group}\n    start: earliest\n    stop_at_end: true\n    session_timeout: 2s\n    batch_size: 2000\n    schema: {SCHEMA}\n"
    )
}

fn kafka_to_kafka(brokers: &str, input: &str, n: usize, exactly_once: bool) -> Row {
    let output = unique("bench-out");
    create_topic(brokers, &output, PARTITIONS);
    let checkpoint = if exactly_once {
        "checkpoint: { interval: 1s }\n"
    } else {
        ""
    };
    let yaml = format!(
        "name: kbench\n{checkpoint}sources:\n{}transforms:\n  big: {{ type: filter, inputs: [src], where: amount >= 50 }}\nsinks:\n  out: {{ type: kafka, inputs: [big], brokers: {brokers}, topic: {output}, key: card }}\n",
        source_yaml(brokers, input, &unique("g-bench"))
    );
    let (wall, cpu, read, _) = shoal(&yaml);
    assert_eq!(read as usize, n, "records read");
    let out = consume_all(brokers, &output, exactly_once, Duration::from_secs(2)).len();
    assert_eq!(out, expected_out(n), "records written");
    Row {
        what: format!(
            "Shoal, Kafka → filter → Kafka, {}",
            if exactly_once {
                "exactly-once (checkpoint 1 s, transactions)"
            } else {
                "at-least-once (no checkpoints)"
            }
        ),
        records: n,
        out,
        wall,
        cpu,
    }
}

fn python_loop(brokers: &str, input: &str, n: usize) -> Row {
    let output = unique("bench-py");
    create_topic(brokers, &output, PARTITIONS);
    let script = shoal_tests::repo_root().join("scripts/kafka_loop_bench.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(["--brokers", brokers, "--input", input, "--output", &output])
        .args(["--group", &unique("g-py"), "--records", &n.to_string()])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let written = m["written"].as_u64().unwrap() as usize;
    assert_eq!(written, expected_out(n));
    let got = consume_all(brokers, &output, false, Duration::from_secs(2)).len();
    assert_eq!(got, written, "records in the output topic");
    Row {
        what: "Python loop (confluent-kafka), at-least-once".into(),
        records: m["read"].as_u64().unwrap() as usize,
        out: written,
        wall: m["wall"].as_f64().unwrap(),
        cpu: m["cpu"].as_f64().unwrap(),
    }
}

fn kafka_to_postgres(brokers: &str, url: &str, input: &str, n: usize) -> Row {
    let table = unique("bench_pg").replace('-', "_");
    let yaml = format!(
        "name: {table}\ncheckpoint: {{ interval: 1s }}\nsources:\n{}sinks:\n  db: {{ type: postgres, inputs: [src], url: \"{url}\", table: {table} }}\n",
        source_yaml(brokers, input, &unique("g-bench-pg"))
    );
    let (wall, cpu, read, _) = shoal(&yaml);
    assert_eq!(read as usize, n);
    let rows: usize = pg(url, &format!("SELECT count(*) FROM {table}"))[0][0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(rows, n, "rows in {table}");
    pg(url, &format!("DROP TABLE {table}"));
    Row {
        what: "Shoal, Kafka → Postgres, exactly-once (checkpoint 1 s, COPY)".into(),
        records: n,
        out: rows,
        wall,
        cpu,
    }
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let brokers = std::env::var("SHOAL_KAFKA_BROKERS")
        .expect("SHOAL_KAFKA_BROKERS (scripts/services.sh start; source /tmp/shoal-services/env)");
    let url = std::env::var("SHOAL_POSTGRES_URL").ok();

    let input = unique("bench-in");
    create_topic(&brokers, &input, PARTITIONS);
    let t0 = std::time::Instant::now();
    produce(&brokers, &input, &records(n));
    eprintln!(
        "produced {n} records to {input} in {:.1}s",
        t0.elapsed().as_secs_f64()
    );

    let mut rows = vec![
        kafka_to_kafka(&brokers, &input, n, true),
        kafka_to_kafka(&brokers, &input, n, false),
        python_loop(&brokers, &input, n),
    ];
    match &url {
        Some(url) => rows.push(kafka_to_postgres(&brokers, url, &input, n)),
        None => eprintln!("SHOAL_POSTGRES_URL not set: no Postgres run"),
    }
    println!(
        "| job | records in | records out | wall s | CPU s | records/s (wall) | records/s per CPU-second |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.0} | {:.0} |",
            r.what,
            r.records,
            r.out,
            r.wall,
            r.cpu,
            r.records as f64 / r.wall,
            r.records as f64 / r.cpu.max(1e-9)
        );
    }
}
