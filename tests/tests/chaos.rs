//! The exactly-once chaos tests: SIGKILL `shoal run` at random moments,
//! restart it, and require the committed output to hold every record exactly
//! once — written by the transactional file sink, and by the transactional
//! log sink (read back with `read_committed`). Seeded (`SHOAL_CHAOS_SEED`)
//! so a failure can be replayed.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shoal_tests::{read_jsonl_dir, shoal_bin, shoal_ok, workdir};

const RECORDS: u64 = 200_000;
const KILLS: usize = 20;

/// xorshift64*: a tiny seeded generator for kill delays (no crate needed for a test driver).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn seed() -> u64 {
    std::env::var("SHOAL_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261125)
}

/// The chaos pipeline: a keyed running aggregate over the 8-partition log
/// topic `txns`, into `sink` (a YAML flow mapping).
fn chaos_yaml(sink: &str) -> String {
    CHAOS_YAML.replace("SINK", sink)
}

const CHAOS_YAML: &str = r#"name: chaos
checkpoint: { interval: 100ms, keep: 3 }
sources:
  txns:
    type: log
    topic: txns
    group: chaos
    parallelism: 4
    start: earliest
    stop_at_end: true
    batch_size: 500
    rate: 40000
    schema: { txn_id: utf8, card_id: int64, merchant_id: int64, amount: float64, country: utf8, ts: timestamp_ms, is_fraud: bool }
transforms:
  running:
    type: sql
    inputs: [txns]
    parallelism: 2
    key: card_id
    query: |
      SELECT txn_id, card_id, amount,
             COUNT(*) OVER w AS n, SUM(amount) OVER w AS total
      FROM txns
      WINDOW w AS (PARTITION BY card_id ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
sinks:
  out: SINK
"#;

/// Produces the input topic `txns` (200k generated records) in `d`.
fn produce_input(d: &Path) {
    std::fs::write(
        d.join("produce.yaml"),
        format!(
            "name: produce\nsources:\n  gen: {{ type: generator, seed: 11, count: {RECORDS} }}\nsinks:\n  to_log: {{ type: log, inputs: [gen], topic: txns, partitions: 8, key: card_id }}\n"
        ),
    )
    .unwrap();
    shoal_ok(d, &["run", "produce.yaml"]);
}

/// Runs `shoal run chaos.yaml` in `d`, SIGKILLing it at seeded random
/// moments `KILLS` times and restarting it, then lets it finish; returns
/// (kills, runs).
fn run_with_kills(d: &Path, seed: u64) -> (usize, usize) {
    run_with_n_kills(d, seed, KILLS)
}

/// [`run_with_kills`] with `max_kills` SIGKILLs.
fn run_with_n_kills(d: &Path, seed: u64, max_kills: usize) -> (usize, usize) {
    let mut rng = Rng(seed | 1);
    let started = Instant::now();
    let (mut kills, mut runs) = (0usize, 0usize);
    loop {
        runs += 1;
        let mut child = Command::new(shoal_bin())
            .args(["run", "--no-progress", "chaos.yaml"])
            .current_dir(d)
            .env("SHOAL_DATA_DIR", d.join("shoal-data"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if kills < max_kills {
            // Kill somewhere in 50..650 ms: during start-up, reading, a
            // checkpoint or a sink commit (checkpoints run every 100 ms).
            let delay = Duration::from_millis(50 + rng.next() % 600);
            let deadline = Instant::now() + delay;
            while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
                std::thread::sleep(Duration::from_millis(5));
            }
            if child.try_wait().unwrap().is_none() {
                Command::new("kill")
                    .args(["-KILL", &child.id().to_string()])
                    .status()
                    .unwrap();
                child.wait().unwrap();
                kills += 1;
                continue;
            }
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "run {runs} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if kills >= max_kills {
            break;
        }
        panic!(
            "the job finished after only {kills} kills; slow it down (rate) so {max_kills} kills land mid-run"
        );
    }
    println!(
        "chaos: seed {seed}, {kills} SIGKILLs, {runs} runs, {:.1}s",
        started.elapsed().as_secs_f64()
    );
    (kills, runs)
}

/// Every record exactly once, every per-key running aggregate exact.
fn check_exactly_once(rows: &[serde_json::Value], seed: u64) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in rows {
        *seen
            .entry(r["txn_id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let dupes: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(
        dupes.is_empty(),
        "duplicated records (seed {seed}): {dupes:?} …"
    );
    assert_eq!(seen.len() as u64, RECORDS, "missing records (seed {seed})");
    assert_eq!(rows.len() as u64, RECORDS);
    // Every per-key running aggregate is exact: within a card, records keep
    // the order they were produced in (txn ids increase), so the k-th record
    // of a card has count k and the sum of the card's first k amounts.
    let mut by_card: HashMap<i64, Vec<&serde_json::Value>> = HashMap::new();
    for r in rows {
        by_card
            .entry(r["card_id"].as_i64().unwrap())
            .or_default()
            .push(r);
    }
    for (card, mut recs) in by_card {
        recs.sort_by_key(|r| r["txn_id"].as_str().unwrap().to_string());
        let mut sum = 0.0;
        for (k, r) in recs.iter().enumerate() {
            sum += r["amount"].as_f64().unwrap();
            assert_eq!(
                r["n"].as_u64().unwrap(),
                k as u64 + 1,
                "card {card}: count of {} (seed {seed})",
                r["txn_id"]
            );
            let total = r["total"].as_f64().unwrap();
            assert!(
                (total - sum).abs() <= 1e-9 * sum.abs().max(1.0),
                "card {card}: sum {total} != {sum} (seed {seed})"
            );
        }
    }
}

#[test]
fn sigkill_at_random_moments_loses_nothing_and_duplicates_nothing() {
    let seed = seed();
    let dir = workdir();
    let d = dir.path();
    produce_input(d);
    std::fs::write(
        d.join("chaos.yaml"),
        chaos_yaml(
            "{ type: file, inputs: [running], path: out/chaos, parallelism: 2, key: card_id }",
        ),
    )
    .unwrap();
    run_with_kills(d, seed);
    check_exactly_once(&read_jsonl_dir(&d.join("out/chaos")), seed);
    let staged = std::fs::read_dir(d.join("out/chaos"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(staged, 0, "staged files left behind");

    // `shoal checkpoints` lists what is kept (keep: 3), the newest being the final one.
    let listed = shoal_ok(d, &["checkpoints", "--json"]);
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert_eq!(listed[2]["last"], true, "{listed:?}");
    assert!(listed[2]["id"].as_u64().unwrap() > listed[0]["id"].as_u64().unwrap());

    // A restart after the clean end resumes where it left off: nothing new.
    let again = shoal_ok(d, &["run", "--json", "chaos.yaml"]);
    let summary: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(summary["nodes"][0]["records_out"], 0, "{summary}");
    assert_eq!(read_jsonl_dir(&d.join("out/chaos")).len() as u64, RECORDS);

    // A pipeline whose state no longer fits is a clear error, not a reset.
    let changed = std::fs::read_to_string(d.join("chaos.yaml"))
        .unwrap()
        .replace("parallelism: 4", "parallelism: 3");
    std::fs::write(d.join("chaos.yaml"), changed).unwrap();
    let out = shoal_tests::shoal(d, &["run", "chaos.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pipeline changed"), "{err}");
}

/// Values printed by `shoal consume TOPIC --isolation MODE`, as JSON.
fn consume(d: &Path, topic: &str, isolation: &str) -> Vec<serde_json::Value> {
    let out = shoal_ok(d, &["consume", topic, "--isolation", isolation]);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn sigkill_with_a_transactional_log_sink_is_exactly_once_for_read_committed_readers() {
    let seed = seed();
    let dir = workdir();
    let d = dir.path();
    produce_input(d);
    std::fs::write(
        d.join("chaos.yaml"),
        chaos_yaml("{ type: log, inputs: [running], topic: results, partitions: 4, key: card_id }"),
    )
    .unwrap();
    run_with_kills(d, seed);
    let committed = consume(d, "results", "read_committed");
    check_exactly_once(&committed, seed);
    // The killed runs' open transactions were aborted on restart: a
    // read_uncommitted reader sees their records too (written again later).
    let uncommitted = consume(d, "results", "read_uncommitted");
    println!(
        "log sink: {} records read_committed, {} read_uncommitted",
        committed.len(),
        uncommitted.len()
    );
    assert!(
        uncommitted.len() > committed.len(),
        "20 kills left no aborted records behind"
    );
    // Markers take offsets: the end offsets count records and markers.
    let topic = shoal_ok(d, &["topic", "describe", "results", "--json"]);
    let topic: serde_json::Value = serde_json::from_slice(&topic.stdout).unwrap();
    assert!(
        topic["records"].as_u64().unwrap() > uncommitted.len() as u64,
        "{topic}"
    );
    // A restart after the clean end writes nothing new.
    shoal_ok(d, &["run", "chaos.yaml"]);
    assert_eq!(
        consume(d, "results", "read_committed").len() as u64,
        RECORDS
    );
}

/// Event-time windows under SIGKILL: per-card tumbling-window counts and
/// sums (state: window panes in the keyed state; output fired on the
/// watermark and at end of input) come out exactly as in a run that was
/// never killed.
#[test]
fn sigkill_with_event_time_windows_gives_the_uninterrupted_output() {
    let seed = seed() ^ 0x5eed;
    let window_yaml = CHAOS_YAML
        .replace(
            "    schema: { txn_id",
            "    event_time: { column: ts, max_delay: 5s }\n    schema: { txn_id",
        )
        .replace(
            "      SELECT txn_id, card_id, amount,\n             COUNT(*) OVER w AS n, SUM(amount) OVER w AS total\n      FROM txns\n      WINDOW w AS (PARTITION BY card_id ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)\n",
            "      SELECT card_id, tumble(ts, INTERVAL '1' MINUTE) AS w, COUNT(*) AS n, SUM(amount) AS total\n      FROM txns GROUP BY card_id, tumble(ts, INTERVAL '1' MINUTE)\n",
        )
        .replace(
            "SINK",
            "{ type: file, inputs: [running], path: out/windows }",
        );
    assert!(window_yaml.contains("tumble(ts"), "query not replaced");
    let canonical = |d: &Path| {
        let mut rows: Vec<String> = read_jsonl_dir(&d.join("out/windows"))
            .iter()
            .map(|r| {
                format!(
                    "{} {} {} {:.6}",
                    r["card_id"],
                    r["w"],
                    r["n"],
                    r["total"].as_f64().unwrap()
                )
            })
            .collect();
        rows.sort();
        rows
    };
    // Uninterrupted.
    let calm = workdir();
    produce_input(calm.path());
    std::fs::write(calm.path().join("chaos.yaml"), &window_yaml).unwrap();
    shoal_ok(calm.path(), &["run", "--no-progress", "chaos.yaml"]);
    let expected = canonical(calm.path());
    assert!(expected.len() > 1_000, "{} windows", expected.len());
    // Killed 8 times.
    let dir = workdir();
    let d = dir.path();
    produce_input(d);
    std::fs::write(d.join("chaos.yaml"), &window_yaml).unwrap();
    run_with_n_kills(d, seed, 8);
    let got = canonical(d);
    assert_eq!(got.len(), expected.len(), "window rows (seed {seed})");
    assert!(got == expected, "window results differ (seed {seed})");
}
