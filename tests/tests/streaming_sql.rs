//! Streaming SQL end to end through the `shoal` binary: event-time windows
//! firing on watermarks, late records in the dead-letter output, the
//! `dedup` transform and an interval join of two sources.

use std::collections::BTreeMap;

use shoal_tests::{read_jsonl_dir, shoal, shoal_ok};

fn write(dir: &std::path::Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn dead_letters(dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("out/dead/dead-letters.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn tumbling_window_counts_and_late_records_are_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    // Event time in ms; max_delay 1s. Batches of 2 records, so watermarks
    // advance as the file is read. The two `late` records are more than 1s
    // behind the largest event time seen before them.
    let rows = [
        ("a", 1_000),
        ("b", 2_000),
        ("a", 3_500),
        ("a", 2_900), // 0.6s out of order: on time
        ("b", 12_000),
        ("a", 12_500),
        ("late", 4_000), // window [0,10s) already fired
        ("b", 13_000),
        ("a", 25_000),
        ("late", 11_000), // 14s behind
        ("b", 26_000),
    ];
    let text: String = rows
        .iter()
        .map(|(k, t)| format!("{{\"k\":\"{k}\",\"ts\":{t}}}\n"))
        .collect();
    write(dir.path(), "events.jsonl", &text);
    write(
        dir.path(),
        "p.yaml",
        r#"name: windows
sources:
  events:
    type: file
    path: events.jsonl
    batch_size: 2
    schema: { k: utf8, ts: timestamp_ms }
    event_time: { column: ts, max_delay: 1s }
transforms:
  per_window:
    type: sql
    inputs: [events]
    query: |
      SELECT tumble(ts, INTERVAL '10' SECOND) AS window_start, k, COUNT(*) AS n, MAX(ts) AS last_ts
      FROM events GROUP BY tumble(ts, INTERVAL '10' SECOND), k
sinks:
  out: { type: file, inputs: [per_window], path: out/windows }
dead_letter: { type: file, path: out/dead }
"#,
    );
    shoal_ok(dir.path(), &["run", "p.yaml", "--no-progress"]);
    let out = read_jsonl_dir(&dir.path().join("out/windows"));
    let got: BTreeMap<(String, String), i64> = out
        .iter()
        .map(|r| {
            (
                (
                    r["window_start"].as_str().unwrap()[..19].to_string(),
                    r["k"].as_str().unwrap().to_string(),
                ),
                r["n"].as_i64().unwrap(),
            )
        })
        .collect();
    let w = |s: &str| s.to_string();
    let expected: BTreeMap<(String, String), i64> = [
        ((w("1970-01-01T00:00:00"), w("a")), 3),
        ((w("1970-01-01T00:00:00"), w("b")), 1),
        ((w("1970-01-01T00:00:10"), w("a")), 1),
        ((w("1970-01-01T00:00:10"), w("b")), 2),
        ((w("1970-01-01T00:00:20"), w("a")), 1),
        ((w("1970-01-01T00:00:20"), w("b")), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, expected, "{out:?}");
    let dead = dead_letters(dir.path());
    assert_eq!(dead.len(), 2, "{dead:?}");
    for d in &dead {
        assert_eq!(d["reason"], "late");
        assert_eq!(d["node"], "per_window");
        assert!(d["record"].as_str().unwrap().contains("late"), "{d}");
    }
}

#[test]
fn dedup_drops_repeats_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let rows = [
        ("t1", 0),
        ("t2", 1_000),
        ("t1", 30_000), // repeat of t1 within 1m: dropped
        ("t3", 61_000),
        ("t1", 70_000),  // 70s after the kept t1: kept
        ("t2", 65_000),  // 64s after t2: kept
        ("t3", 100_000), // repeat: dropped
    ];
    let text: String = rows
        .iter()
        .map(|(k, t)| format!("{{\"txn_id\":\"{k}\",\"ts\":{t}}}\n"))
        .collect();
    write(dir.path(), "txns.jsonl", &text);
    write(
        dir.path(),
        "p.yaml",
        r#"name: dedup
sources:
  txns:
    type: file
    path: txns.jsonl
    batch_size: 3
    schema: { txn_id: utf8, ts: timestamp_ms }
    event_time: { column: ts, max_delay: 10s }
transforms:
  unique:
    type: dedup
    inputs: [txns]
    key: [txn_id]
    time: ts
    within: 1m
sinks:
  out: { type: file, inputs: [unique], path: out/unique }
dead_letter: { type: file, path: out/dead }
"#,
    );
    shoal_ok(dir.path(), &["run", "p.yaml", "--no-progress"]);
    let mut got: Vec<(String, String)> = read_jsonl_dir(&dir.path().join("out/unique"))
        .iter()
        .map(|r| {
            (
                r["txn_id"].as_str().unwrap().to_string(),
                r["ts"].as_str().unwrap()[..19].to_string(),
            )
        })
        .collect();
    got.sort();
    let expected = [
        ("t1", "1970-01-01T00:00:00"),
        ("t1", "1970-01-01T00:01:10"),
        ("t2", "1970-01-01T00:00:01"),
        ("t2", "1970-01-01T00:01:05"),
        ("t3", "1970-01-01T00:01:01"),
    ]
    .map(|(a, b)| (a.to_string(), b.to_string()));
    assert_eq!(got, expected);
    assert!(dead_letters(dir.path()).is_empty());
}

#[test]
fn interval_join_of_two_sources() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "clicks.jsonl",
        "{\"user\":1,\"ts\":1000}\n{\"user\":2,\"ts\":2000}\n{\"user\":1,\"ts\":50000}\n",
    );
    write(
        dir.path(),
        "buys.jsonl",
        "{\"user\":1,\"ts\":4000,\"amount\":9.5}\n{\"user\":2,\"ts\":40000,\"amount\":3.0}\n{\"user\":1,\"ts\":52000,\"amount\":1.0}\n",
    );
    write(
        dir.path(),
        "p.yaml",
        r#"name: join
sources:
  clicks:
    type: file
    path: clicks.jsonl
    schema: { user: int64, ts: timestamp_ms }
    event_time: { column: ts, max_delay: 1s }
  buys:
    type: file
    path: buys.jsonl
    schema: { user: int64, ts: timestamp_ms, amount: float64 }
    event_time: { column: ts, max_delay: 1s }
transforms:
  attributed:
    type: sql
    inputs: [clicks, buys]
    query: |
      SELECT c.user, c.ts AS click_ts, b.ts AS buy_ts, b.amount
      FROM clicks c JOIN buys b ON c.user = b.user
       AND b.ts BETWEEN c.ts AND c.ts + INTERVAL '10' SECOND
sinks:
  out: { type: file, inputs: [attributed], path: out/joined }
"#,
    );
    let explain = shoal_ok(dir.path(), &["explain", "p.yaml"]);
    assert!(
        String::from_utf8_lossy(&explain.stdout).contains("interval-join"),
        "{}",
        String::from_utf8_lossy(&explain.stdout)
    );
    shoal_ok(dir.path(), &["run", "p.yaml", "--no-progress"]);
    let mut got: Vec<(i64, f64)> = read_jsonl_dir(&dir.path().join("out/joined"))
        .iter()
        .map(|r| (r["user"].as_i64().unwrap(), r["amount"].as_f64().unwrap()))
        .collect();
    got.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(got, [(1, 1.0), (1, 9.5)]);
}

#[test]
fn unsupported_streaming_sql_is_a_plan_error_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "e.jsonl", "{\"k\":1,\"ts\":1}\n");
    write(
        dir.path(),
        "p.yaml",
        r#"name: bad
sources:
  e:
    type: file
    path: e.jsonl
    schema: { k: int64, ts: timestamp_ms }
transforms:
  agg:
    type: sql
    inputs: [e]
    query: SELECT k, COUNT(*) FROM e GROUP BY k
sinks:
  out: { type: stdout, inputs: [agg] }
"#,
    );
    let out = shoal(dir.path(), &["validate", "p.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("p.yaml:11"), "{text}");
    assert!(text.contains("GROUP BY without a time window"), "{text}");
}
