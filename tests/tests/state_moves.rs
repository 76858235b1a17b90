//! State that moves between processes: a stateful pipeline (dedup and a
//! per-card running count and sum) reads an 8-partition Kafka topic keyed by
//! card and writes Postgres, run as several `shoal run` processes of one
//! consumer group sharing one state store. Processes join and are
//! SIGKILLed while input keeps arriving; the last one finishes alone. Every
//! input record must be in the output exactly once, and every running value
//! must equal what one process reading everything in partition order
//! computes — which holds only if each partition's state followed it, from
//! the reference committed with its offsets, to every next owner.
//!
//! Each test runs `SHOAL_CHAOS_RUNS` seeds (see `shoal_tests::chaos`); a
//! seed picks the moments of the joins and kills.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shoal_tests::chaos::{Rng, for_each_seed};
use shoal_tests::services::{
    Feed, create_topic, kafka_brokers, pg, postgres_url, s3_bucket, unique,
};
use shoal_tests::{shoal_bin, workdir};

const CARDS: i64 = 37;
/// Records fed while the processes come and go, in chunks.
const RECORDS: i64 = 16_000;
const CHUNK: i64 = 100;

/// Records `from..to`, keyed by card; every 10th id is sent twice (the
/// duplicate follows it at once: `dedup` drops it).
fn records(from: i64, to: i64) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for i in from..to {
        let card = i % CARDS;
        let rec = format!(
            "{{\"id\":{i},\"card\":{card},\"amount\":{},\"ts\":{}}}",
            (i % 100) as f64,
            1_767_225_600_000 + i * 1000
        );
        out.push((card.to_string(), rec.clone()));
        if i % 10 == 0 {
            out.push((card.to_string(), rec));
        }
    }
    out
}

fn yaml(
    brokers: &str,
    topic: &str,
    group: &str,
    url: &str,
    table: &str,
    store: &str,
    stop: bool,
) -> String {
    format!(
        "name: {table}
checkpoint: {{ interval: 200ms, store: {store} }}
sources:
  txns:
    type: kafka
    brokers: {brokers}
    topic: {topic}
    group: {group}
    key: card
    start: earliest
    stop_at_end: {stop}
    session_timeout: 6s
    batch_size: 200
    schema: {{ id: int64, card: int64, amount: float64, ts: timestamp_ms }}
transforms:
  once:
    type: dedup
    inputs: [txns]
    key: [card, id]
    time: ts
    within: 1h
  running:
    type: sql
    inputs: [once]
    parallelism: 2
    key: card
    query: |
      SELECT id, card, COUNT(*) OVER w AS n, SUM(amount) OVER w AS total
      FROM once
      WINDOW w AS (PARTITION BY card ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
sinks:
  db: {{ type: postgres, inputs: [running], url: \"{url}\", table: {table} }}
"
    )
}

fn count(url: &str, table: &str) -> i64 {
    pg(url, &format!("SELECT count(*) FROM {table}"))[0][0]
        .as_deref()
        .unwrap_or("0")
        .parse()
        .unwrap_or(0)
}

/// Starts process `name` (its own data dir under `d`) on `file`.
fn start(d: &Path, name: &str, file: &str) -> Child {
    let log = std::fs::File::create(d.join(format!("{name}.log"))).unwrap();
    Command::new(shoal_bin())
        .args(["run", "--no-progress", file])
        .current_dir(d)
        .env("SHOAL_DATA_DIR", d.join(format!("data-{name}")))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn kill(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// Waits until process `name`'s log says it was assigned a partition (a
/// bound only against a hang: the group's rebalance takes a while).
fn wait_assigned(d: &Path, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let log = d.join(format!("{name}.log"));
    while Instant::now() < deadline {
        if std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("partition assigned")
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `table` has at least `n` rows (a bound only against a hang).
fn wait_rows(url: &str, table: &str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while count(url, table) < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// [`shoal_tests::running::check_running`] over `table`'s rows.
fn check_running(url: &str, table: &str, n: i64) {
    let rows = pg(url, &format!("SELECT id, n, total FROM {table}"));
    shoal_tests::running::check_running(
        rows.iter().map(|r| {
            let v: Vec<&str> = r.iter().map(|c| c.as_deref().unwrap()).collect();
            (
                v[0].parse().unwrap(),
                v[1].parse().unwrap(),
                v[2].parse().unwrap(),
            )
        }),
        n,
        CARDS,
    );
}

/// A runs alone; B joins; A is killed; C joins; B and C are killed while
/// input keeps arriving; D finishes alone with `stop_at_end`. The state
/// store is a directory all processes share.
#[test]
fn stateful_partitions_follow_processes_that_come_and_go() {
    come_and_go(
        "stateful_partitions_follow_processes_that_come_and_go",
        0x5ad_c0de,
        |d| d.join("store").display().to_string(),
    );
}

/// The same through an S3-compatible object store (moto's server in CI):
/// the processes share a bucket prefix instead of a directory.
#[test]
fn stateful_partitions_follow_processes_through_an_object_store() {
    let Some(bucket) = s3_bucket() else {
        return;
    };
    come_and_go(
        "stateful_partitions_follow_processes_through_an_object_store",
        0x53_5707e,
        move |_| format!("s3://{bucket}/{}", unique("moves")),
    );
}

/// The processes-come-and-go scenario with the state store `store(dir)`.
fn come_and_go(name: &str, base_seed: u64, store: impl Fn(&Path) -> String) {
    let (Some(brokers), Some(url)) = (kafka_brokers(), postgres_url()) else {
        return;
    };
    for_each_seed(name, base_seed, workdir, |d, seed| {
        let mut rng = Rng::new(seed);
        let topic = unique("moves");
        create_topic(&brokers, &topic, 8);
        let group = unique("g-moves");
        let table = unique("moves").replace('-', "_");
        pg(
            &url,
            &format!(
                "CREATE TABLE {table} (id bigint NOT NULL, card bigint NOT NULL, n bigint NOT NULL, total double precision)"
            ),
        );
        let store = store(d);
        std::fs::write(
            d.join("run.yaml"),
            yaml(&brokers, &topic, &group, &url, &table, &store, false),
        )
        .unwrap();
        std::fs::write(
            d.join("finish.yaml"),
            yaml(&brokers, &topic, &group, &url, &table, &store, true),
        )
        .unwrap();
        // Input keeps arriving while the processes come and go.
        let feeder = {
            let (brokers, topic) = (brokers.clone(), topic.clone());
            std::thread::spawn(move || {
                let feed = Feed::new(&brokers, &topic);
                let mut i = 0;
                while i < RECORDS {
                    feed.send(&records(i, i + CHUNK));
                    i += CHUNK;
                    std::thread::sleep(Duration::from_millis(250));
                }
            })
        };
        let mut history = Vec::new();
        let pause = |rng: &mut Rng, what: &str, history: &mut Vec<String>| {
            let ms = 1500 + rng.next_u64() % 3000;
            std::thread::sleep(Duration::from_millis(ms));
            history.push(format!(
                "{what} after {ms} ms ({} rows)",
                count(&url, &table)
            ));
        };
        let mut a = start(d, "a", "run.yaml");
        wait_rows(&url, &table, 200);
        pause(&mut rng, "start b", &mut history);
        let mut b = start(d, "b", "run.yaml");
        wait_assigned(d, "b");
        pause(&mut rng, "kill a", &mut history);
        kill(&mut a);
        pause(&mut rng, "start c", &mut history);
        let mut c = start(d, "c", "run.yaml");
        wait_assigned(d, "c");
        pause(&mut rng, "kill b", &mut history);
        kill(&mut b);
        pause(&mut rng, "kill c", &mut history);
        kill(&mut c);
        feeder.join().unwrap();
        // D finishes alone. `stop_at_end` may stop before the dead
        // members' partitions came to it (or on tansu's stale high
        // watermark); every run resumes after the committed output, so
        // it runs again until the output is complete.
        for run in 0..6 {
            let out = Command::new(shoal_bin())
                .args(["run", "--no-progress", "finish.yaml"])
                .current_dir(d)
                .env("SHOAL_DATA_DIR", d.join("data-d"))
                .env_remove("RUST_LOG")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "d failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let rows = count(&url, &table);
            history.push(format!("d run {run}: {rows} rows"));
            if rows >= RECORDS {
                break;
            }
        }
        println!("seed {seed}: {}", history.join("; "));
        // Every process restored partitions from committed references.
        let logs: String = ["a", "b", "c"]
            .iter()
            .map(|p| std::fs::read_to_string(d.join(format!("{p}.log"))).unwrap_or_default())
            .collect();
        for p in ["a", "b", "c"] {
            let _ = std::fs::copy(d.join(format!("{p}.log")), format!("/tmp/moves-{p}.log"));
        }
        check_running(&url, &table, RECORDS);
        let tail: Vec<&str> = logs.lines().filter(|l| l.contains("partition")).collect();
        assert!(
            logs.contains("restoring the partition's state"),
            "no partition state moved: {history:?}\n{}",
            tail[tail.len().saturating_sub(40)..].join("\n")
        );
    });
}

fn rescale_yaml(
    brokers: &str,
    topic: &str,
    group: &str,
    parallelism: usize,
    extra: &str,
    query_extra: &str,
) -> String {
    format!(
        "name: rescale
checkpoint: {{ interval: 200ms }}
sources:
  txns:
    type: kafka
    brokers: {brokers}
    topic: {topic}
    group: {group}
    key: card
    start: earliest
    stop_at_end: true
    batch_size: 200
    schema: {{ id: int64, card: int64, amount: float64, ts: timestamp_ms }}
transforms:
  once:
    type: dedup
    inputs: [txns]
    key: [card, id]
    time: ts
    within: 1h
  running:
    type: sql
    inputs: [once]
    parallelism: {parallelism}
    key: card
    query: |
      SELECT id, card, COUNT(*) OVER w AS n, SUM(amount) OVER w AS total{query_extra}
      FROM once
      WINDOW w AS (PARTITION BY card ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
{extra}sinks:
  out: {{ type: file, inputs: [LAST], path: out, format: jsonl }}
"
    )
    .replace("LAST", if extra.is_empty() { "running" } else { "big" })
}

/// State kept per partition restores at any parallelism and survives
/// adding a stateless step; a changed stateful query is refused by name
/// (exit 2) unless its state is dropped with `--drop-state`.
#[test]
fn per_partition_state_rescales_and_upgrades() {
    let Some(brokers) = kafka_brokers() else {
        return;
    };
    let d = workdir();
    let d = d.path();
    let topic = unique("rescale");
    create_topic(&brokers, &topic, 8);
    let group = unique("g-rescale");
    let feed = Feed::new(&brokers, &topic);
    let filter = "  big:\n    type: filter\n    inputs: [running]\n    where: n > 0\n";
    let run = |yaml: String| {
        std::fs::write(d.join("p.yaml"), yaml).unwrap();
        shoal_tests::shoal(d, &["run", "--no-progress", "p.yaml"])
    };
    let rows = |d: &Path| shoal_tests::read_jsonl_dir(&d.join("out")).len() as i64;
    let mut history = Vec::new();
    for (k, (p, extra)) in [(2, ""), (4, ""), (1, filter)].into_iter().enumerate() {
        let k = k as i64;
        feed.send(&records(k * 3000, (k + 1) * 3000));
        // `stop_at_end` may stop early on tansu's stale high watermark; a
        // rerun goes on exactly after the committed output.
        for _ in 0..4 {
            let out = run(rescale_yaml(&brokers, &topic, &group, p, extra, ""));
            assert!(
                out.status.success(),
                "parallelism {p}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            history.push(format!("parallelism {p}: {} rows", rows(d)));
            if rows(d) >= (k + 1) * 3000 {
                break;
            }
        }
    }
    println!("rescale: {history:?}");
    let got: Vec<serde_json::Value> = shoal_tests::read_jsonl_dir(&d.join("out"));
    shoal_tests::running::check_running(
        got.iter().map(|r| {
            (
                r["id"].as_i64().unwrap(),
                r["n"].as_i64().unwrap(),
                r["total"].as_f64().unwrap(),
            )
        }),
        9000,
        CARDS,
    );
    // A changed stateful query: refused by name, exit 2.
    let changed = rescale_yaml(
        &brokers,
        &topic,
        &group,
        1,
        filter,
        ", MAX(amount) OVER w AS top",
    );
    let out = run(changed.clone());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`running`") && stderr.contains("--drop-state"),
        "{stderr}"
    );
    // Dropping its state starts it afresh: the next record's count is 1.
    feed.send(&records(9000, 9037));
    std::fs::write(d.join("p.yaml"), changed).unwrap();
    let out = shoal_tests::shoal(
        d,
        &["run", "--no-progress", "--drop-state", "running", "p.yaml"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after: Vec<serde_json::Value> = shoal_tests::read_jsonl_dir(&d.join("out"))
        .into_iter()
        .filter(|r| r["id"].as_i64().unwrap() >= 9000)
        .collect();
    assert!(!after.is_empty(), "records after the upgrade");
    assert!(
        after.iter().all(|r| r["n"].as_i64() == Some(1)),
        "state dropped: {:?}",
        &after[..after.len().min(3)]
    );
}
