//! Pipelines on the embedded log: consumer groups, a member crash, lag.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shoal_tests::{
    partition_owners, produce_transactions, read_jsonl_dir, run_with_member_crash, shoal_bin,
    shoal_ok, workdir,
};

const SCHEMA: &str = "{ txn_id: utf8, card_id: int64, merchant_id: int64, amount: float64, country: utf8, ts: timestamp_ms, is_fraud: bool }";

fn produce(dir: &std::path::Path, count: u64) {
    produce_transactions(dir, 5, count, "txns", 8);
}

#[test]
fn member_crash_moves_its_partitions_and_nothing_is_lost() {
    let dir = workdir();
    produce(dir.path(), 100_000);
    std::fs::write(
        dir.path().join("consume.yaml"),
        format!(
            r#"name: consume
sources:
  txns:
    type: log
    topic: txns
    group: readers
    parallelism: 4
    assignor: cooperative-sticky
    start: earliest
    stop_at_end: true
    session_timeout: 10s
    batch_size: 500
    schema: {SCHEMA}
sinks:
  all: {{ type: file, inputs: [txns], path: out/all }}
"#
        ),
    )
    .unwrap();
    let stderr = run_with_member_crash(dir.path(), "consume.yaml", 1, 2000);

    // Who acquired which partition, in order.
    let owners = partition_owners(&stderr);
    assert_eq!(owners.len(), 8, "every partition was read: {owners:?}");
    let crashed: Vec<u32> = owners
        .iter()
        .filter(|(_, m)| m.iter().any(|m| m == "txns-1"))
        .map(|(p, _)| *p)
        .collect();
    assert!(
        !crashed.is_empty(),
        "member 1 owned no partition: {owners:?}"
    );
    for p in &crashed {
        let after = owners[p].last().unwrap();
        assert_ne!(
            after, "txns-1",
            "partition {p} never moved off the crashed member: {owners:?}"
        );
    }

    // Every record arrived (at-least-once without checkpoints: duplicates allowed).
    let rows = read_jsonl_dir(&dir.path().join("out/all"));
    let ids: BTreeSet<String> = rows
        .iter()
        .map(|r| r["txn_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids.len(),
        100_000,
        "missing records: got {} distinct of 100000 ({} rows)",
        ids.len(),
        rows.len()
    );

    let describe = shoal_ok(dir.path(), &["group", "describe", "readers", "--json"]);
    let d: serde_json::Value = serde_json::from_slice(&describe.stdout).unwrap();
    assert_eq!(d["total_lag"], 0, "{d}");
}

#[test]
fn keyed_partition_order_survives_the_pipeline() {
    let dir = workdir();
    produce(dir.path(), 20_000);
    std::fs::write(
        dir.path().join("ordered.yaml"),
        format!(
            "name: ordered\nsources:\n  txns: {{ type: log, topic: txns, group: o, parallelism: 2, start: earliest, stop_at_end: true, schema: {SCHEMA} }}\ntransforms:\n  keep: {{ type: filter, inputs: [txns], where: \"amount > 0\", parallelism: 2 }}\nsinks:\n  out: {{ type: file, inputs: [keep], path: out/o }}\n"
        ),
    )
    .unwrap();
    shoal_ok(dir.path(), &["run", "ordered.yaml"]);
    // Within one card (one key, so one partition), txn ids come out in the order produced.
    let rows = read_jsonl_dir(&dir.path().join("out/o"));
    assert_eq!(rows.len(), 20_000);
    let mut last: BTreeMap<i64, String> = BTreeMap::new();
    let mut by_file_order_ok = true;
    for r in &rows {
        let card = r["card_id"].as_i64().unwrap();
        let id = r["txn_id"].as_str().unwrap().to_string();
        if let Some(prev) = last.get(&card)
            && *prev > id
        {
            by_file_order_ok = false;
        }
        last.insert(card, id);
    }
    // One sink instance writes one file, so file order is arrival order.
    assert!(by_file_order_ok, "a card's records arrived out of order");
}

#[test]
fn generator_to_log_and_log_to_file_in_one_pipeline() {
    let dir = workdir();
    std::fs::write(
        dir.path().join("both.yaml"),
        format!(
            r#"name: both
sources:
  seed_txns: {{ type: generator, seed: 9, count: 30000 }}
  txns: {{ type: log, topic: t, group: g, parallelism: 3, start: earliest, stop_at_end: true, schema: {SCHEMA} }}
sinks:
  to_log: {{ type: log, inputs: [seed_txns], topic: t, partitions: 4, key: card_id }}
  out: {{ type: file, inputs: [txns], path: out/both }}
"#
        ),
    )
    .unwrap();
    shoal_ok(dir.path(), &["run", "both.yaml"]);
    let rows = read_jsonl_dir(&dir.path().join("out/both"));
    let ids: BTreeSet<&str> = rows.iter().map(|r| r["txn_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 30_000);
}

#[test]
fn group_describe_shows_lag_while_draining_and_zero_after() {
    let dir = workdir();
    produce(dir.path(), 50_000);
    std::fs::write(
        dir.path().join("drain.yaml"),
        format!(
            "name: drain\nsources:\n  txns: {{ type: log, topic: txns, group: drain, start: earliest, stop_at_end: true, session_timeout: 10m, batch_size: 256, schema: {SCHEMA} }}\nsinks:\n  out: {{ type: stdout, inputs: [txns] }}\n"
        ),
    )
    .unwrap();
    // Nobody reads the pipeline's stdout at first: the pipe fills, backpressure
    // stops the source, and the backlog stays, for as long as the test takes
    // (the long session timeout keeps the blocked member in the group).
    let mut child = Command::new(shoal_bin())
        .args(["run", "drain.yaml"])
        .current_dir(dir.path())
        .env("SHOAL_DATA_DIR", dir.path().join("shoal-data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lag = |d: &std::path::Path| -> u64 {
        let out = shoal_ok(d, &["group", "describe", "drain", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["total_lag"].as_u64().unwrap()
    };
    // The deadline is a hang guard only.
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut seen = None;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let describe = shoal_tests::shoal(dir.path(), &["group", "describe", "drain", "--json"]);
        if describe.status.success() {
            seen = Some(lag(dir.path()));
            break;
        }
    }
    let during = seen.expect("group never appeared");
    assert!(
        during > 0 && during <= 50_000,
        "lag while blocked: {during}"
    );
    // Now drain the pipe; the pipeline finishes and commits everything.
    let mut sink = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut sink)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(sink.lines().count(), 50_000);
    assert_eq!(lag(dir.path()), 0);
}

/// JSON lines of `minutes` minutes of transactions from minute `from`, one
/// a second, cards 0..7.
fn minute_records(from: u64, minutes: u64) -> String {
    let mut s = String::new();
    for i in from * 60..(from + minutes) * 60 {
        s.push_str(&format!(
            "{{\"id\":{i},\"card_id\":{},\"amount\":1.0,\"ts\":\"2026-01-01T00:{:02}:{:02}\"}}\n",
            i % 7,
            i / 60,
            i % 60
        ));
    }
    s
}

/// A finished checkpointed job persists the event time it reached, not
/// +inf: rerun on the grown topic, the new records fill new windows
/// instead of all going to the dead letters as late.
#[test]
fn rerun_on_a_grown_topic_processes_the_new_records() {
    let dir = workdir();
    let d = dir.path();
    shoal_ok(d, &["topic", "create", "t", "--partitions", "2"]);
    std::fs::write(d.join("a.jsonl"), minute_records(0, 10)).unwrap();
    shoal_ok(d, &["produce", "t", "--key", "card_id", "a.jsonl"]);
    std::fs::write(
        d.join("p.yaml"),
        "name: grown\ncheckpoint: { interval: 200ms }\nsources:\n  txns:\n    type: log\n    topic: t\n    start: earliest\n    stop_at_end: true\n    event_time: { column: ts, max_delay: 1s }\n    schema: { id: int64, card_id: int64, amount: float64, ts: timestamp_ms }\ntransforms:\n  w:\n    type: sql\n    inputs: [txns]\n    key: card_id\n    query: |\n      SELECT card_id, tumble(ts, INTERVAL '1' MINUTE) AS w, COUNT(*) AS n\n      FROM txns GROUP BY card_id, tumble(ts, INTERVAL '1' MINUTE)\nsinks:\n  out: { type: file, inputs: [w], path: out }\ndead_letter: { type: file, path: dead }\n",
    )
    .unwrap();
    shoal_ok(d, &["run", "--no-progress", "p.yaml"]);
    std::fs::write(d.join("b.jsonl"), minute_records(10, 10)).unwrap();
    shoal_ok(d, &["produce", "t", "--key", "card_id", "b.jsonl"]);
    shoal_ok(d, &["run", "--no-progress", "p.yaml"]);
    let late = std::fs::read_to_string(d.join("dead/dead-letters.jsonl")).unwrap_or_default();
    assert_eq!(late.lines().count(), 0, "dead letters: {late}");
    let mut per_minute: BTreeMap<String, u64> = BTreeMap::new();
    let rows = read_jsonl_dir(&d.join("out"));
    for r in &rows {
        *per_minute
            .entry(r["w"].as_str().unwrap().to_owned())
            .or_default() += r["n"].as_u64().unwrap();
    }
    assert_eq!(per_minute.len(), 20, "{per_minute:?}");
    assert!(per_minute.values().all(|n| *n == 60), "{per_minute:?}");
    assert_eq!(rows.len(), 20 * 7, "each (card, minute) window once");
}
