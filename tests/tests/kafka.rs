//! Kafka sources and sinks against a real broker (`SHOAL_KAFKA_BROKERS`,
//! started by `scripts/services.sh`): Kafka → Shoal → file with exact
//! contents, and Kafka → Shoal → Kafka checked with a `read_committed`
//! consumer.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use shoal_tests::http::{Run, get_json, poll, request};
use shoal_tests::services::{
    Consumed, Reader, committed, create_topic, kafka_brokers, produce, unique,
};
use shoal_tests::{read_jsonl_dir, shoal_ok, workdir};

/// `n` records `{"id": i, "card": i % 37, "amount": i % 1000 / 10}`, keyed by card.
pub fn records(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let card = i % 37;
            (
                card.to_string(),
                format!(
                    "{{\"id\":{i},\"card\":{card},\"amount\":{}}}",
                    (i % 1000) as f64 / 10.0
                ),
            )
        })
        .collect()
}

const SCHEMA: &str = "{ id: int64, card: int64, amount: float64 }";

/// Only bounds how long a broken build hangs; never what a test checks.
const HANG_GUARD: Duration = Duration::from_secs(300);

/// Every `read_committed` record of `topic`: waits (up to the hang guard)
/// until `expected` arrived, then reads a while longer so extra records
/// (duplicates) show up too. A slow broker or machine cannot make it return
/// fewer than `expected`.
fn read_output(brokers: &str, topic: &str, expected: usize) -> Vec<Consumed> {
    let mut reader = Reader::new(brokers, topic);
    assert!(
        reader.wait_for(expected, HANG_GUARD),
        "only {} of {expected} records arrived",
        reader.records.len()
    );
    reader.poll_for(Duration::from_secs(2));
    reader.records
}

#[test]
fn kafka_to_file_reads_every_record_once_in_partition_order() {
    let Some(brokers) = kafka_brokers() else {
        return;
    };
    let topic = unique("in-file");
    create_topic(&brokers, &topic, 4);
    let input = records(20_000);
    produce(&brokers, &topic, &input);
    // One bad record: it goes to the dead letters with its offset.
    produce(&brokers, &topic, &[("1".into(), "not json".into())]);

    let dir = workdir();
    let d = dir.path();
    std::fs::write(
        d.join("p.yaml"),
        format!(
            "name: kfile\nsources:\n  in:\n    type: kafka\n    brokers: {brokers}\n    topic: {topic}\n    group: {group}\n    start: earliest\n    stop_at_end: true\n    parallelism: 2\n    session_timeout: 6s\n    timestamp_column: kafka_ts\n    schema: {SCHEMA}\nsinks:\n  out: {{ type: file, inputs: [in], path: out }}\ndead_letter: {{ type: file, path: dead }}\n",
            group = unique("g-file"),
        ),
    )
    .unwrap();
    shoal_ok(d, &["run", "--no-progress", "p.yaml"]);
    let rows = read_jsonl_dir(&d.join("out"));
    assert_eq!(rows.len(), input.len(), "every record exactly once");
    let mut ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..input.len() as i64).collect::<Vec<_>>());
    // Within a card (one key → one partition) records keep their order.
    let mut last: HashMap<i64, i64> = HashMap::new();
    for r in &rows {
        let (card, id) = (r["card"].as_i64().unwrap(), r["id"].as_i64().unwrap());
        assert_eq!(card, id % 37);
        assert!(
            r["kafka_ts"].as_str().is_some(),
            "record timestamp column: {r}"
        );
        if let Some(prev) = last.insert(card, id) {
            assert!(prev < id, "card {card}: {prev} before {id}");
        }
    }
    let dead = read_jsonl_dir(&d.join("dead"));
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0]["record"].as_str().unwrap().contains("not json"));
}

#[test]
fn kafka_to_kafka_is_exactly_once_for_a_read_committed_consumer() {
    let Some(brokers) = kafka_brokers() else {
        return;
    };
    let (input_topic, output_topic, group) = (unique("in-k"), unique("out-k"), unique("g-k"));
    create_topic(&brokers, &input_topic, 4);
    create_topic(&brokers, &output_topic, 3);
    let input = records(30_000);
    produce(&brokers, &input_topic, &input);

    let dir = workdir();
    let d = dir.path();
    let yaml = format!(
        "name: k2k\ncheckpoint: {{ interval: 200ms }}\nsources:\n  in:\n    type: kafka\n    brokers: {brokers}\n    topic: {input_topic}\n    group: {group}\n    start: earliest\n    stop_at_end: true\n    session_timeout: 6s\n    batch_size: 1000\n    schema: {SCHEMA}\ntransforms:\n  big: {{ type: filter, inputs: [in], where: amount >= 50 }}\nsinks:\n  out: {{ type: kafka, inputs: [big], brokers: {brokers}, topic: {output_topic}, key: card }}\n"
    );
    std::fs::write(d.join("p.yaml"), &yaml).unwrap();
    shoal_ok(d, &["run", "--no-progress", "p.yaml"]);

    let expected: BTreeMap<i64, i64> = (0..input.len() as i64)
        .filter(|i| (i % 1000) as f64 / 10.0 >= 50.0)
        .map(|i| (i, i % 37))
        .collect();
    let out = read_output(&brokers, &output_topic, expected.len());
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    for r in &out {
        let id = r.value["id"].as_i64().unwrap();
        *seen.entry(id).or_default() += 1;
        assert_eq!(r.key.as_deref(), Some(expected[&id].to_string().as_str()));
    }
    let dupes: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(dupes.is_empty(), "duplicates: {dupes:?}");
    assert_eq!(seen.len(), expected.len(), "missing records");
    assert!(seen.keys().eq(expected.keys()));

    // The source offsets were committed in the sink's transactions: the
    // group's committed offsets cover every input record.
    let offsets = committed(&brokers, &group, &input_topic, 4);
    let total: i64 = offsets.values().sum();
    assert_eq!(total, input.len() as i64, "committed offsets {offsets:?}");

    // A second run resumes from there and writes nothing.
    shoal_ok(d, &["run", "--no-progress", "p.yaml"]);
    let again = read_output(&brokers, &output_topic, out.len());
    assert_eq!(again.len(), out.len(), "the rerun wrote records again");
}

/// Kills the child when dropped (a failing assertion must not leave a
/// `shoal run` behind).
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Parallelism 4 over a 2-partition topic: two members own nothing. They
/// tell downstream they are idle, so event time moves on and per-card
/// tumbling windows fire while the job runs (it never ends: no
/// `stop_at_end`), not only at the end of input. Before idle members were
/// left out of the watermark, no window fired at all.
#[test]
fn idle_members_do_not_stall_event_time_windows() {
    let Some(brokers) = kafka_brokers() else {
        return;
    };
    let topic = unique("in-idle");
    create_topic(&brokers, &topic, 2);
    // One record a second of event time for 30 minutes, 7 cards.
    let n = 1_800;
    let input: Vec<(String, String)> = (0..n)
        .map(|i| {
            let card = i % 7;
            let ts = format!("2026-01-01T00:{:02}:{:02}", i / 60, i % 60);
            (
                card.to_string(),
                format!("{{\"id\":{i},\"card_id\":{card},\"amount\":1.0,\"ts\":\"{ts}\"}}"),
            )
        })
        .collect();
    produce(&brokers, &topic, &input);
    let dir = workdir();
    let d = dir.path();
    std::fs::write(
        d.join("p.yaml"),
        format!(
            "name: kidle\ncheckpoint: {{ interval: 200ms }}\nsources:\n  txns:\n    type: kafka\n    brokers: {brokers}\n    topic: {topic}\n    group: {group}\n    start: earliest\n    parallelism: 4\n    session_timeout: 6s\n    event_time: {{ column: ts, max_delay: 1s }}\n    schema: {{ id: int64, card_id: int64, amount: float64, ts: timestamp_ms }}\ntransforms:\n  w:\n    type: sql\n    inputs: [txns]\n    key: card_id\n    query: |\n      SELECT card_id, tumble(ts, INTERVAL '1' MINUTE) AS w, COUNT(*) AS n, SUM(amount) AS total\n      FROM txns GROUP BY card_id, tumble(ts, INTERVAL '1' MINUTE)\nsinks:\n  out: {{ type: file, inputs: [w], path: out }}\n",
            group = unique("g-idle"),
        ),
    )
    .unwrap();
    let _run = Running(
        std::process::Command::new(shoal_tests::shoal_bin())
            .args(["run", "--no-progress", "p.yaml"])
            .current_dir(d)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Every window but the last minute's closes by event time alone: 29
    // minutes x 7 cards, each with 60 / 7 records or so.
    let closed = 29 * 7;
    let started = std::time::Instant::now();
    let rows = loop {
        let rows = if d.join("out").is_dir() {
            read_jsonl_dir(&d.join("out"))
        } else {
            Vec::new()
        };
        if rows.len() >= closed {
            break rows;
        }
        assert!(
            started.elapsed() < HANG_GUARD,
            "only {} of {closed} windows fired while the job ran",
            rows.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut per_window: BTreeMap<String, u64> = BTreeMap::new();
    for r in &rows {
        *per_window
            .entry(r["w"].as_str().unwrap().to_owned())
            .or_default() += r["n"].as_u64().unwrap();
    }
    for (w, n) in &per_window {
        assert_eq!(*n, 60, "window {w}: {n} records, not 60");
    }
}

/// Consumer lag per partition in the job's API, from the broker's offsets
/// (librdkafka's statistics): the partitions' ends add up to what was
/// produced, and move when more is.
#[test]
fn kafka_partition_ends_and_lag_come_from_the_broker() {
    let Some(brokers) = kafka_brokers() else {
        return;
    };
    let topic = unique("lag");
    create_topic(&brokers, &topic, 3);
    produce(&brokers, &topic, &records(3_000));
    let dir = workdir();
    let d = dir.path();
    std::fs::write(
        d.join("p.yaml"),
        format!(
            "name: klag\nsources:\n  in:\n    type: kafka\n    brokers: {brokers}\n    topic: {topic}\n    group: {group}\n    start: earliest\n    session_timeout: 6s\n    schema: {SCHEMA}\nsinks:\n  out: {{ type: file, inputs: [in], path: out }}\n",
            group = unique("g-lag"),
        ),
    )
    .unwrap();
    let run = Run::start(
        d,
        &["--no-progress", "--http-addr", "127.0.0.1:0", "p.yaml"],
    );
    let at_end = |total: u64| {
        move |v: &serde_json::Value| {
            let p = &v["sources"][0]["partitions"];
            p.as_array().is_some_and(|a| {
                a.len() == 3
                    && a.iter().map(|p| p["end"].as_u64().unwrap()).sum::<u64>() == total
                    && a.iter().all(|p| p["lag"] == 0 && p["position"] == p["end"])
            })
        }
    };
    let parts = poll(
        &run.addr,
        "/api/v1/job/partitions",
        "ends of 3 000",
        at_end(3_000),
    );
    assert_eq!(parts["sources"][0]["node"], "in");
    produce(&brokers, &topic, &records(600));
    poll(
        &run.addr,
        "/api/v1/job/partitions",
        "ends of 3 600",
        at_end(3_600),
    );
    let job = get_json(&run.addr, "/api/v1/job");
    assert_eq!(job["source_records"], 3_600);
    assert_eq!(job["lag"], 0);
    let (code, body) = request(&run.addr, "POST", "/api/v1/job/stop", None);
    assert_eq!(code, 202, "{body}");
    let (code, _, stderr) = run.finish();
    assert_eq!(code, Some(0), "{stderr}");
}

/// `coerce`, `max_record_bytes` and `max_depth` on a Kafka source, as on
/// files and log topics: strict typing by default (a quoted number is a
/// dead letter), lenient per field when asked; a record over the size or
/// nesting limit is a dead letter with its partition and offset.
#[test]
fn kafka_sources_take_coerce_and_record_limits() {
    let Some(brokers) = kafka_brokers() else {
        return;
    };
    let topic = unique("in-limits");
    create_topic(&brokers, &topic, 1);
    let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
    produce(
        &brokers,
        &topic,
        &[
            ("a".into(), r#"{"id":1,"amount":"12"}"#.into()),
            ("a".into(), r#"{"id":2,"amount":7}"#.into()),
            (
                "a".into(),
                format!(r#"{{"id":3,"amount":1,"note":"{}"}}"#, "x".repeat(200)),
            ),
            (
                "a".into(),
                format!(r#"{{"id":4,"amount":1,"deep":{deep}}}"#),
            ),
        ],
    );
    let run = |coerce: &str| {
        let dir = workdir();
        let d = dir.path();
        std::fs::write(
            d.join("p.yaml"),
            format!(
                "name: klimits\nsources:\n  in:\n    type: kafka\n    brokers: {brokers}\n    topic: {topic}\n    group: {group}\n    start: earliest\n    stop_at_end: true\n    session_timeout: 6s\n    schema: {{ id: int64, amount: int64 }}\n    max_record_bytes: 128\n    max_depth: 16\n{coerce}sinks:\n  out: {{ type: file, inputs: [in], path: out }}\ndead_letter: {{ type: file, path: dead }}\n",
                group = unique("g-limits"),
            ),
        )
        .unwrap();
        shoal_ok(d, &["run", "--no-progress", "p.yaml"]);
        let mut ids: Vec<i64> = read_jsonl_dir(&d.join("out"))
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect();
        ids.sort_unstable();
        let mut dead: Vec<(i64, String)> = read_jsonl_dir(&d.join("dead"))
            .iter()
            .map(|r| {
                (
                    r["offset"].as_i64().unwrap(),
                    r["reason"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        dead.sort();
        (ids, dead)
    };
    let (ids, dead) = run("");
    assert_eq!(ids, vec![2], "{dead:?}");
    assert_eq!(
        dead.iter().map(|d| d.0).collect::<Vec<_>>(),
        vec![0, 2, 3],
        "{dead:?}"
    );
    assert!(dead[1].1.contains("128"), "size limit: {dead:?}");
    assert!(dead[2].1.contains("16"), "depth limit: {dead:?}");
    let (ids, dead) = run("    coerce: [amount]\n");
    assert_eq!(ids, vec![1, 2], "{dead:?}");
    assert_eq!(dead.len(), 2, "{dead:?}");
}
