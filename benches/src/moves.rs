//! How long a partition, with its state, takes to move between two live
//! `shoal run` processes of one consumer group.
//!
//! A stateful job (dedup by `[card, id]`, a per-card running COUNT/SUM,
//! Postgres sink owning the offsets and the state references, checkpoints
//! every second) reads an 8-partition Kafka topic keyed by card. Process A
//! reads all of it alone, so every partition's shards hold `CARDS / 8`
//! cards (two tables each: the dedup keys and the running aggregates). Then
//! B joins the group: the group moves some partitions to B. Per moved
//! partition the bench reports, from the processes' JSON logs:
//!
//! * **move**: A logs the partition revoked → B logs its state restored
//!   (the last of the two stateful operators) — the time the partition's
//!   records cannot be processed anywhere;
//! * **assigned**: of that, until the group assigned the partition to B
//!   (the hand-over commit at A and the consumer-group rebalance);
//! * **restore**: how long B took to read the shards from the store.
//!
//! ```sh
//! scripts/services.sh start && source /tmp/shoal-services/env
//! cargo build --release --workspace
//! target/release/move-bench [CARDS]      # default 200 000
//! ```
//!
//! Uses the `shoal` binary next to this one (or `SHOAL_BIN`) and the
//! services of `scripts/services.sh` (`SHOAL_KAFKA_BROKERS`,
//! `SHOAL_POSTGRES_URL`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shoal_tests::services::{create_topic, pg, produce, unique};

const PARTITIONS: i32 = 8;
const INTERVAL_MS: u64 = 1000;

fn shoal_bin() -> PathBuf {
    if let Ok(p) = std::env::var("SHOAL_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    exe.parent().expect("target dir").join("shoal")
}

fn yaml(brokers: &str, topic: &str, group: &str, url: &str, table: &str, store: &Path) -> String {
    format!(
        "name: {table}
checkpoint: {{ interval: {INTERVAL_MS}ms, store: {store} }}
sources:
  txns:
    type: kafka
    brokers: {brokers}
    topic: {topic}
    group: {group}
    key: card
    start: earliest
    session_timeout: 6s
    batch_size: 4096
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
    key: card
    query: |
      SELECT id, card, COUNT(*) OVER w AS n, SUM(amount) OVER w AS total
      FROM once
      WINDOW w AS (PARTITION BY card ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
sinks:
  db: {{ type: postgres, inputs: [running], url: \"{url}\", table: {table} }}
",
        store = store.display()
    )
}

fn start(d: &Path, name: &str) -> Child {
    let log = std::fs::File::create(d.join(format!("{name}.log"))).expect("log file");
    Command::new(shoal_bin())
        .args(["run", "--no-progress", "--log-format", "json", "p.yaml"])
        .current_dir(d)
        .env("SHOAL_DATA_DIR", d.join(format!("data-{name}")))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start shoal")
}

/// `(seconds of the day, message, fields)` of every JSON log line.
fn events(path: &Path) -> Vec<(f64, String, serde_json::Value)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            // "2026-12-07T06:47:22.123456Z"
            let ts = v["timestamp"].as_str()?;
            let time = ts.split('T').nth(1)?.trim_end_matches('Z');
            let mut parts = time.split(':');
            let h: f64 = parts.next()?.parse().ok()?;
            let m: f64 = parts.next()?.parse().ok()?;
            let s: f64 = parts.next()?.parse().ok()?;
            let fields = v["fields"].clone();
            let msg = fields["message"].as_str()?.to_owned();
            Some((h * 3600.0 + m * 60.0 + s, msg, fields))
        })
        .collect()
}

fn count(url: &str, table: &str) -> i64 {
    pg(url, &format!("SELECT count(*) FROM {table}"))[0][0]
        .as_deref()
        .unwrap_or("0")
        .parse()
        .unwrap_or(0)
}

fn kill(c: &mut Child) {
    let _ = c.kill();
    let _ = c.wait();
}

fn main() {
    let cards: i64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let (Ok(brokers), Ok(url)) = (
        std::env::var("SHOAL_KAFKA_BROKERS"),
        std::env::var("SHOAL_POSTGRES_URL"),
    ) else {
        eprintln!("set SHOAL_KAFKA_BROKERS and SHOAL_POSTGRES_URL (scripts/services.sh start)");
        std::process::exit(2);
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let topic = unique("move-bench");
    let group = unique("g-move-bench");
    let table = unique("move_bench").replace('-', "_");
    create_topic(&brokers, &topic, PARTITIONS);
    pg(
        &url,
        &format!(
            "CREATE TABLE {table} (id bigint NOT NULL, card bigint NOT NULL, n bigint NOT NULL, total double precision)"
        ),
    );
    let n = cards * 2;
    let records: Vec<(String, String)> = (0..n)
        .map(|i| {
            let card = i % cards;
            (
                card.to_string(),
                format!(
                    "{{\"id\":{i},\"card\":{card},\"amount\":{},\"ts\":{}}}",
                    (i % 100) as f64,
                    1_767_225_600_000 + i
                ),
            )
        })
        .collect();
    eprintln!("producing {n} records over {cards} cards");
    produce(&brokers, &topic, &records);
    std::fs::write(
        d.join("p.yaml"),
        yaml(&brokers, &topic, &group, &url, &table, &d.join("store")),
    )
    .expect("write pipeline");
    let mut a = start(d, "a");
    let t = Instant::now();
    while count(&url, &table) < n {
        assert!(
            t.elapsed() < Duration::from_secs(1800),
            "A did not catch up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("A caught up in {:.1} s; B joins", t.elapsed().as_secs_f64());
    // Let A take one more checkpoint of the full state.
    std::thread::sleep(Duration::from_millis(2 * INTERVAL_MS));
    let mut b = start(d, "b");
    // Wait until B restored every partition it was assigned (both operators).
    let t = Instant::now();
    let moved = loop {
        std::thread::sleep(Duration::from_millis(500));
        let ev = events(&d.join("b.log"));
        let assigned: Vec<i64> = ev
            .iter()
            .filter(|(_, m, _)| m == "partition assigned")
            .filter_map(|(_, _, f)| f["partition"].as_i64())
            .collect();
        let restored = ev
            .iter()
            .filter(|(_, m, _)| m == "partition's state restored")
            .count();
        if !assigned.is_empty() && restored >= 2 * assigned.len() {
            break assigned;
        }
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "B did not restore its partitions"
        );
    };
    kill(&mut b);
    kill(&mut a);
    let ea = events(&d.join("a.log"));
    let eb = events(&d.join("b.log"));
    let revoked: BTreeMap<i64, f64> = ea
        .iter()
        .filter(|(_, m, _)| m == "partition revoked")
        .filter_map(|(t, _, f)| Some((f["partition"].as_i64()?, *t)))
        .collect();
    let assigned_at: BTreeMap<i64, f64> = eb
        .iter()
        .filter(|(_, m, _)| m == "partition assigned")
        .filter_map(|(t, _, f)| Some((f["partition"].as_i64()?, *t)))
        .collect();
    let mut rows = Vec::new();
    for p in &moved {
        let restores: Vec<(f64, f64)> = eb
            .iter()
            .filter(|(_, m, f)| {
                m == "partition's state restored" && f["partition"].as_i64() == Some(*p)
            })
            .map(|(t, _, f)| (*t, f["ms"].as_f64().unwrap_or(0.0)))
            .collect();
        let done = restores.iter().map(|r| r.0).fold(f64::MIN, f64::max);
        let restore_ms: f64 = restores.iter().map(|r| r.1).sum();
        let from = revoked.get(p).copied().unwrap_or(f64::NAN);
        let assigned = assigned_at.get(p).copied().unwrap_or(f64::NAN);
        rows.push((*p, done - from, assigned - from, restore_ms));
    }
    println!(
        "move-bench: {cards} cards over {PARTITIONS} partitions (~{} per partition, two stateful operators), checkpoint interval {} s",
        cards / PARTITIONS as i64,
        INTERVAL_MS as f64 / 1000.0
    );
    println!(
        "| partition | revoked at A → state restored at B (s) | of which: revoked → assigned to B (s) | restore (ms, both operators) |"
    );
    println!("|---:|---:|---:|---:|");
    for (p, mv, asg, r) in &rows {
        println!("| {p} | {mv:.2} | {asg:.2} | {r:.0} |");
    }
    let mut moves: Vec<f64> = rows.iter().map(|r| r.1).filter(|m| m.is_finite()).collect();
    moves.sort_by(f64::total_cmp);
    if let (Some(min), Some(max)) = (moves.first(), moves.last()) {
        println!(
            "moved {} partitions: move time min {min:.2} s, median {:.2} s, max {max:.2} s",
            moves.len(),
            moves[moves.len() / 2]
        );
    }
}
