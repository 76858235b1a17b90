//! Stateful pipelines whose sink owns the source offsets (Kafka → Postgres):
//! a crash between the two halves of a checkpoint's commit — the manifest
//! of checkpoint `c` durable, the sink's transaction of epoch `c` not yet
//! run — must not replay epoch `c` into state that already holds it.
//!
//! The crash comes from the runtime's `test-hooks` feature
//! (`SHOAL_TEST_ABORT_AFTER_MANIFEST=N`), compiled only into the test
//! build of `shoal`. Each test runs `SHOAL_CHAOS_RUNS` seeds (see
//! `shoal_tests::chaos`); a seed picks which checkpoint with rows (1st to
//! 4th, or the final one if the run has fewer) the crash follows.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use shoal_tests::chaos::{Rng, for_each_seed};
use shoal_tests::services::{
    Reader, create_topic, kafka_brokers, pg, postgres_url, produce, unique,
};
use shoal_tests::{shoal_bin, workdir};

const CARDS: usize = 37;

/// `n` records, keyed by card, one a second of event time; every 10th id
/// is sent twice (the duplicate follows it at once: `dedup` drops it).
fn records(n: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for i in 0..n {
        let card = i % CARDS;
        let rec = format!(
            "{{\"id\":{i},\"card\":{card},\"amount\":{},\"ts\":\"2026-01-01T{:02}:{:02}:{:02}\"}}",
            (i % 100) as f64,
            i / 3600,
            i / 60 % 60,
            i % 60
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
    transforms: &str,
) -> String {
    format!(
        "name: {table}\ncheckpoint: {{ interval: 100ms }}\nsources:\n  txns:\n    type: kafka\n    brokers: {brokers}\n    topic: {topic}\n    group: {group}\n    start: earliest\n    stop_at_end: true\n    key: card\n    session_timeout: 6s\n    batch_size: 500\n    event_time: {{ column: ts, max_delay: 1s }}\n    schema: {{ id: int64, card: int64, amount: float64, ts: timestamp_ms }}\ntransforms:\n  once:\n    type: dedup\n    inputs: [txns]\n    key: [card, id]\n    time: ts\n    within: 1h\n{transforms}sinks:\n  db: {{ type: postgres, inputs: [out], url: \"{url}\", table: {table} }}\n"
    )
}

fn count(url: &str, sql: &str) -> i64 {
    pg(url, sql)[0][0].as_deref().unwrap().parse().unwrap()
}

/// The checkpoint (counting those whose epoch brought rows) a seed crashes after.
fn crash_point(seed: u64) -> u64 {
    1 + Rng::new(seed).next_u64() % 4
}

/// Runs `shoal run p.yaml` in `d` with the abort hook at manifest `at`;
/// asserts the hook fired (the process did not finish on its own).
fn run_aborting(d: &Path, at: u64) {
    let out = Command::new(shoal_bin())
        .args(["run", "--no-progress", "p.yaml"])
        .current_dir(d)
        .env("SHOAL_DATA_DIR", d.join("shoal-data"))
        .env_remove("RUST_LOG")
        .env("SHOAL_TEST_ABORT_AFTER_MANIFEST", at.to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("test hook: aborting after manifest"),
        "the run was not aborted at manifest {at} (status {}): {stderr}",
        out.status
    );
}

/// Writes `yaml` as `p.yaml` in `d`, runs it to the seed's crash point,
/// then runs it again until `done` says the output is complete.
///
/// "Again" may be more than once: `stop_at_end` stops once every partition
/// reached the high watermark the broker reported at start, and tansu 0.6
/// sometimes reports a stale one (seen under load: a partition reported
/// empty, the run ended with it at 1 920 of ~8 900). Every run resumes
/// exactly after the committed output, so a further run must complete the
/// output without duplicates — which is what the checks then verify.
fn crash_and_rerun(d: &Path, seed: u64, yaml: &str, mut done: impl FnMut() -> bool) {
    std::fs::write(d.join("p.yaml"), yaml).unwrap();
    run_aborting(d, crash_point(seed));
    // Each rerun's log is kept in `d` (see `SHOAL_CHAOS_KEEP`).
    for run in 0..5 {
        let out = Command::new(shoal_bin())
            .args(["run", "--no-progress", "p.yaml"])
            .current_dir(d)
            .env("SHOAL_DATA_DIR", d.join("shoal-data"))
            .env("RUST_LOG", "info")
            .output()
            .unwrap();
        std::fs::write(d.join(format!("rerun-{run}.log")), &out.stderr).unwrap();
        assert!(
            out.status.success(),
            "rerun {run} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if done() {
            break;
        }
    }
}

/// The Kafka topic, produced; returns (topic, group, table, input size).
fn setup(brokers: &str, n: usize, prefix: &str) -> (String, String, String) {
    let topic = unique(&format!("in-{prefix}"));
    create_topic(brokers, &topic, 4);
    produce(brokers, &topic, &records(n));
    (
        topic,
        unique(&format!("g-{prefix}")),
        unique(prefix).replace('-', "_"),
    )
}

/// [`shoal_tests::running::check_running`] over this file's input.
fn check_running(rows: impl Iterator<Item = (i64, i64, f64)>, n: usize) {
    shoal_tests::running::check_running(rows, n as i64, CARDS as i64);
}

const RUNNING: &str = "  out:\n    type: sql\n    inputs: [once]\n    query: |\n      SELECT id, card, COUNT(*) OVER w AS n, SUM(amount) OVER w AS total\n      FROM once\n      WINDOW w AS (PARTITION BY card ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)\n";

/// The same crash with a Kafka sink, whose transactions carry the source
/// offsets to the group: the restart restores the checkpoint standing where
/// the committed offsets are, and a `read_committed` reader of the output
/// sees every record once with its one-pass running values. (The abort
/// happens before the sink's transaction begins, so the broker's handling
/// of aborted transactions plays no part.)
#[test]
fn crash_after_manifest_before_kafka_commit_keeps_over_and_dedup_exact() {
    let Some(brokers) = kafka_brokers() else {
        return;
    };
    for_each_seed(
        "crash_after_manifest_before_kafka_commit_keeps_over_and_dedup_exact",
        0xc0ffee,
        workdir,
        |d, seed| {
            let n = 30_000;
            let (topic, group, name) = setup(&brokers, n, "c_kafka");
            let out_topic = unique("out-c-kafka");
            create_topic(&brokers, &out_topic, 4);
            let yaml = yaml(&brokers, &topic, &group, "unused", &name, RUNNING).replace(
            "  db: { type: postgres, inputs: [out], url: \"unused\", table: ",
            &format!("  db: {{ type: kafka, inputs: [out], brokers: {brokers}, topic: {out_topic}, key: card }}\n# "),
        );
            assert!(yaml.contains("type: kafka, inputs: [out]"), "{yaml}");
            let mut reader = Reader::new(&brokers, &out_topic);
            crash_and_rerun(d, seed, &yaml, || {
                reader.poll_for(std::time::Duration::from_secs(2));
                reader.records.len() >= n
            });
            // The hang guard bounds a broken build, never what is checked.
            if !reader.wait_for(n, std::time::Duration::from_secs(300)) {
                let ids: std::collections::BTreeSet<i64> = reader
                    .records
                    .iter()
                    .map(|r| r.value["id"].as_i64().unwrap())
                    .collect();
                let missing: Vec<i64> = (0..n as i64)
                    .filter(|i| !ids.contains(i))
                    .take(20)
                    .collect();
                panic!(
                    "only {} of {n} records arrived; missing (first 20) {missing:?}",
                    reader.records.len()
                );
            }
            reader.poll_for(std::time::Duration::from_secs(2));
            check_running(
                reader.records.iter().map(|r| {
                    (
                        r.value["id"].as_i64().unwrap(),
                        r.value["n"].as_i64().unwrap(),
                        r.value["total"].as_f64().unwrap(),
                    )
                }),
                n,
            );
        },
    );
}

/// dedup → per-card running COUNT and SUM (OVER): after the crash and a
/// restart, every record is in the table once with the running values one
/// uninterrupted pass computes (per card, in id order).
#[test]
fn crash_after_manifest_before_sink_commit_keeps_over_and_dedup_exact() {
    let (Some(brokers), Some(url)) = (kafka_brokers(), postgres_url()) else {
        return;
    };
    for_each_seed(
        "crash_after_manifest_before_sink_commit_keeps_over_and_dedup_exact",
        0xc0ffee ^ 1,
        workdir,
        |d, seed| {
            let n = 30_000;
            let (topic, group, table) = setup(&brokers, n, "c_over");
            let rows = || count(&url, &format!("SELECT count(*) FROM {table}"));
            crash_and_rerun(
                d,
                seed,
                &yaml(&brokers, &topic, &group, &url, &table, RUNNING),
                || rows() >= n as i64,
            );
            let rows = pg(&url, &format!("SELECT id, n, total FROM {table}"));
            check_running(
                rows.iter().map(|r| {
                    let v: Vec<&str> = r.iter().map(|c| c.as_deref().unwrap()).collect();
                    (
                        v[0].parse().unwrap(),
                        v[1].parse().unwrap(),
                        v[2].parse().unwrap(),
                    )
                }),
                n,
            );
        },
    );
}

/// dedup → per-card tumbling windows: after the crash and a restart, every
/// (card, minute) window is in the table once, counting each record once.
#[test]
fn crash_after_manifest_before_sink_commit_keeps_windows_exact() {
    let (Some(brokers), Some(url)) = (kafka_brokers(), postgres_url()) else {
        return;
    };
    for_each_seed(
        "crash_after_manifest_before_sink_commit_keeps_windows_exact",
        0xc0ffee ^ 2,
        workdir,
        |d, seed| {
            let n = 30_000;
            let (topic, group, table) = setup(&brokers, n, "c_win");
            let transforms = "  out:\n    type: sql\n    inputs: [once]\n    key: card\n    query: |\n      SELECT card, tumble(ts, INTERVAL '1' MINUTE) AS w, COUNT(*) AS n\n      FROM once GROUP BY card, tumble(ts, INTERVAL '1' MINUTE)\n";
            let windows = (0..n)
                .map(|i| (i % CARDS, i / 60))
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            let rows = || count(&url, &format!("SELECT count(*) FROM {table}"));
            crash_and_rerun(
                d,
                seed,
                &yaml(&brokers, &topic, &group, &url, &table, transforms),
                || rows() >= windows as i64,
            );
            let rows = pg(&url, &format!("SELECT card, w, n FROM {table}"));
            let mut got: BTreeMap<(i64, String), i64> = BTreeMap::new();
            for r in &rows {
                let v: Vec<&str> = r.iter().map(|c| c.as_deref().unwrap()).collect();
                let key = (v[0].parse().unwrap(), v[1].to_owned());
                assert!(
                    got.insert(key.clone(), v[2].parse().unwrap()).is_none(),
                    "window {key:?} twice"
                );
            }
            let mut want: BTreeMap<(i64, i64), i64> = BTreeMap::new();
            for i in 0..n {
                *want
                    .entry(((i % CARDS) as i64, (i / 60) as i64))
                    .or_default() += 1;
            }
            assert_eq!(got.len(), want.len(), "windows");
            let got_counts: Vec<i64> = got.values().copied().collect();
            let mut by_card: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
            for ((card, _), n) in &got {
                by_card.entry(*card).or_default().push(*n);
            }
            let mut want_by_card: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
            for ((card, _), n) in &want {
                want_by_card.entry(*card).or_default().push(*n);
            }
            assert_eq!(
                by_card, want_by_card,
                "per-card window counts (in window order)"
            );
            assert_eq!(got_counts.iter().sum::<i64>(), n as i64);
        },
    );
}
