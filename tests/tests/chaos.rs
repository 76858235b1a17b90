//! The exactly-once chaos tests: SIGKILL `shoal run` at random moments,
//! restart it, and require the committed output to hold every record exactly
//! once — written by the transactional file sink, and by the transactional
//! log sink (read back with `read_committed`) — and event-time windows whose
//! results must match the input. Every test runs `SHOAL_CHAOS_RUNS` seeds
//! (default 3) and names each failing one; `SHOAL_CHAOS_SEED` replays one
//! (see `shoal_tests::chaos`, and `scripts/chaos-search.sh` for hundreds).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shoal_tests::chaos::{Rng, for_each_seed};
use shoal_tests::windows::{Windows, check_windows, tumble_oracle, windows_of};
use shoal_tests::{produce_transactions, read_jsonl_dir, shoal_bin, shoal_ok, workdir};

const RECORDS: u64 = 200_000;
const KILLS: usize = 20;
/// The first seed of each test (`SHOAL_CHAOS_SEED` overrides it).
const BASE_SEED: u64 = 20261125;

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
    rate: 20000
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
    produce_transactions(d, 11, RECORDS, "txns", 8);
}

/// A working directory per seed holding a copy of `input`'s data dir (the
/// produced topic), so the input is produced once per test.
fn seeded_workdir(input: &Path) -> tempfile::TempDir {
    let dir = workdir();
    let ok = Command::new("cp")
        .arg("-a")
        .arg(input.join("shoal-data"))
        .arg(dir.path().join("shoal-data"))
        .status()
        .unwrap()
        .success();
    assert!(ok, "copy the input topic");
    dir
}

/// Runs `shoal run chaos.yaml` in `d`, SIGKILLing it at seeded random
/// moments `KILLS` times and restarting it, then lets it finish; returns
/// (kills, runs).
fn run_with_kills(d: &Path, seed: u64) -> (usize, usize) {
    run_with_n_kills(d, seed, KILLS, |_| {})
}

/// The checkpoint a run's log says it restored from.
fn restored_from(log: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text
        .lines()
        .find(|l| l.starts_with("restoring from checkpoint "))?;
    line["restoring from checkpoint ".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// [`run_with_kills`] with `max_kills` SIGKILLs. Each run's log goes to
/// `d/logs/run-N.log`; the history (kill moment, checkpoint restored) is
/// printed, so a failing seed shows which moments it hit.
/// `before_run(n)` runs before run `n` (1-based), e.g. to change the
/// pipeline file between restarts.
fn run_with_n_kills(
    d: &Path,
    seed: u64,
    max_kills: usize,
    before_run: impl Fn(usize),
) -> (usize, usize) {
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let (mut kills, mut runs) = (0usize, 0usize);
    let logs = d.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut history = Vec::new();
    loop {
        runs += 1;
        before_run(runs);
        let log = logs.join(format!("run-{runs}.log"));
        let mut child = Command::new(shoal_bin())
            .args(["run", "--no-progress", "chaos.yaml"])
            .current_dir(d)
            .env("SHOAL_DATA_DIR", d.join("shoal-data"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        if kills < max_kills {
            // Kill somewhere in 50..650 ms: during start-up, reading, a
            // checkpoint or a sink commit (checkpoints run every 100 ms).
            let delay = Duration::from_millis(50 + rng.next_u64() % 600);
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
                history.push(format!(
                    "run {runs}: restored {:?}, killed at {} ms",
                    restored_from(&log),
                    delay.as_millis()
                ));
                continue;
            }
        }
        let status = child.wait().unwrap();
        history.push(format!(
            "run {runs}: restored {:?}, ended {status}",
            restored_from(&log)
        ));
        assert!(
            status.success(),
            "run {runs} failed (seed {seed}): {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        if kills >= max_kills {
            break;
        }
        panic!(
            "the job finished after only {kills} kills (seed {seed}); slow it down (rate) so {max_kills} kills land mid-run"
        );
    }
    println!(
        "chaos: seed {seed}, {kills} SIGKILLs, {runs} runs, {:.1}s: {}",
        started.elapsed().as_secs_f64(),
        history.join("; ")
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

/// Every file in the state store (`CHECKPOINT_DIR/shards`) is referenced
/// by a kept manifest: the SIGKILLed runs' writers left files behind (their
/// in-flight snapshots, chains a later full snapshot replaced), and a job
/// of one process deletes them once no manifest needs them.
fn check_store_is_collected(checkpoints: &Path, seed: u64) {
    fn strings(v: &serde_json::Value, out: &mut std::collections::HashSet<String>) {
        match v {
            serde_json::Value::String(s) => {
                out.insert(s.clone());
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
            serde_json::Value::Object(m) => m.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    fn files(d: &Path, root: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            if e.path().is_dir() {
                files(&e.path(), root, out);
            } else {
                let rel = e
                    .path()
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push(rel);
            }
        }
    }
    let mut referenced = std::collections::HashSet::new();
    for e in std::fs::read_dir(checkpoints).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("chk-") && name.ends_with(".json") {
            let m: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
            strings(&m["states"], &mut referenced);
        }
    }
    let store = checkpoints.join("shards");
    let mut stored = Vec::new();
    files(&store, &store, &mut stored);
    let orphans: Vec<_> = stored.iter().filter(|f| !referenced.contains(*f)).collect();
    println!(
        "store: {} shard files, {} referenced by kept manifests",
        stored.len(),
        stored.len() - orphans.len()
    );
    assert!(!stored.is_empty(), "no shard files (seed {seed})");
    assert!(
        orphans.is_empty(),
        "{} of {} shard files are referenced by no kept manifest (seed {seed}): {:?}",
        orphans.len(),
        stored.len(),
        &orphans[..orphans.len().min(3)]
    );
}

/// The chaos pipeline with per-partition state: the `log` source declares
/// the topic's key, so `running` keeps one shard per partition, and every
/// restart after a SIGKILL changes its parallelism (1, 2, 3, 4, 1, …): the
/// shards restored from the checkpoint spread over the new instances, and
/// every running aggregate must still be exact.
#[test]
fn sigkill_and_rescale_with_per_partition_state() {
    let input = workdir();
    produce_input(input.path());
    for_each_seed(
        "sigkill_and_rescale_with_per_partition_state",
        BASE_SEED ^ 0x5ca1e,
        || seeded_workdir(input.path()),
        |d, seed| {
            let write = |run: usize| {
                let yaml = chaos_yaml("{ type: file, inputs: [running], path: out/chaos }")
                    .replace(
                        "    start: earliest\n",
                        "    start: earliest\n    key: card_id\n",
                    )
                    .replace(
                        "    parallelism: 2\n    key: card_id\n",
                        &format!("    parallelism: {}\n    key: card_id\n", 1 + (run - 1) % 4),
                    );
                assert!(yaml.contains("    key: card_id\n    stop_at_end"), "{yaml}");
                std::fs::write(d.join("chaos.yaml"), yaml).unwrap();
            };
            run_with_n_kills(d, seed, 8, write);
            check_store_is_collected(&d.join("shoal-data/checkpoints/chaos"), seed);
            let explain = shoal_ok(d, &["explain", "chaos.yaml"]);
            assert!(
                String::from_utf8_lossy(&explain.stdout).contains("state: per partition of `txns`"),
                "running is sharded"
            );
            check_exactly_once(&read_jsonl_dir(&d.join("out/chaos")), seed);
        },
    );
}

/// Undecodable records mixed into the input of
/// [`sigkill_at_random_moments`]: one after every 100th good one.
const BAD_EVERY: u64 = 100;

/// The chaos input with bad records spread through it: the generated
/// transactions, in order, with a record whose `card_id` is not a number
/// (`"card_id":"x<n>"`, txn id `bad-<n>`) after every [`BAD_EVERY`]th,
/// appended to an 8-partition topic `txns` with `shoal produce --key card_id`
/// (so every card's records keep their order). Returns the bad records'
/// count.
fn produce_input_with_bad_records(d: &Path) -> u64 {
    std::fs::write(
        d.join("gen.yaml"),
        format!(
            "name: gen\nsources:\n  gen: {{ type: generator, seed: 11, count: {RECORDS} }}\nsinks:\n  out: {{ type: file, inputs: [gen], path: gen }}\n"
        ),
    )
    .unwrap();
    shoal_ok(d, &["run", "--no-progress", "gen.yaml"]);
    let mut good = read_jsonl_dir(&d.join("gen"));
    good.sort_by(|a, b| a["txn_id"].as_str().cmp(&b["txn_id"].as_str()));
    let mut lines = String::new();
    let mut bad = 0u64;
    for (i, r) in good.iter().enumerate() {
        lines.push_str(&r.to_string());
        lines.push('\n');
        if (i as u64 + 1) % BAD_EVERY == 0 {
            bad += 1;
            let mut b = r.clone();
            b["txn_id"] = format!("bad-{bad}").into();
            b["card_id"] = format!("x{bad}").into();
            lines.push_str(&b.to_string());
            lines.push('\n');
        }
    }
    std::fs::write(d.join("input.jsonl"), lines).unwrap();
    shoal_ok(d, &["topic", "create", "txns", "--partitions", "8"]);
    shoal_ok(d, &["produce", "txns", "--key", "card_id", "input.jsonl"]);
    bad
}

/// The bad records' txn ids in the published dead letters, each with how
/// often it appears.
fn dead_lettered(d: &Path) -> HashMap<String, usize> {
    let path = d.join("shoal-data/dead-letter/chaos/dead-letters.jsonl");
    let mut seen = HashMap::new();
    for line in std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
    {
        let letter: serde_json::Value = serde_json::from_str(line).unwrap();
        let record: serde_json::Value =
            serde_json::from_str(letter["record"].as_str().unwrap()).unwrap();
        *seen
            .entry(record["txn_id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    seen
}

#[test]
fn sigkill_at_random_moments_loses_nothing_and_duplicates_nothing() {
    let input = workdir();
    let bad = produce_input_with_bad_records(input.path());
    assert_eq!(bad, RECORDS / BAD_EVERY);
    for_each_seed(
        "sigkill_at_random_moments",
        BASE_SEED,
        || seeded_workdir(input.path()),
        sigkill_at_random_moments,
    );
}

fn sigkill_at_random_moments(d: &Path, seed: u64) {
    std::fs::write(
        d.join("chaos.yaml"),
        chaos_yaml(
            "{ type: file, inputs: [running], path: out/chaos, parallelism: 2, key: card_id }",
        ),
    )
    .unwrap();
    run_with_kills(d, seed);
    check_exactly_once(&read_jsonl_dir(&d.join("out/chaos")), seed);
    // Dead letters are committed with the checkpoints: every bad record
    // once, whatever the kills interrupted.
    let letters = dead_lettered(d);
    let dupes: Vec<_> = letters.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(
        dupes.is_empty(),
        "duplicated dead letters (seed {seed}): {dupes:?}"
    );
    assert_eq!(
        letters.len() as u64,
        RECORDS / BAD_EVERY,
        "dead letters (seed {seed})"
    );
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
    assert_eq!(
        dead_lettered(d),
        letters,
        "the rerun changed the dead letters"
    );

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
    let input = workdir();
    produce_input(input.path());
    for_each_seed(
        "sigkill_with_a_transactional_log_sink",
        BASE_SEED ^ 0x10c,
        || seeded_workdir(input.path()),
        sigkill_with_a_transactional_log_sink,
    );
}

fn sigkill_with_a_transactional_log_sink(d: &Path, seed: u64) {
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

/// The windows the query must produce, computed from the input topic
/// itself (the oracle: every record in its window, none late).
fn expected_windows(d: &Path) -> Windows {
    tumble_oracle(&consume(d, "txns", "read_uncommitted"), 60_000)
}

/// The window pipeline of the event-time chaos tests: per-card 1-minute
/// tumbling windows over the chaos source with event time (5 s delay).
fn window_yaml() -> String {
    let yaml = CHAOS_YAML
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
            "{ type: file, inputs: [running], path: out/windows }\ndead_letter: { type: file, path: out/dead }",
        );
    assert!(yaml.contains("tumble(ts"), "query not replaced");
    yaml
}

/// Event-time windows under SIGKILL: per-card tumbling-window counts and
/// sums (state: window panes in the keyed state; output fired on the
/// watermark and at end of input) come out exactly as the input says —
/// every record counted once in its window, none dropped as late.
#[test]
fn sigkill_with_event_time_windows_gives_the_uninterrupted_output() {
    let input = workdir();
    produce_input(input.path());
    let expected = expected_windows(input.path());
    assert!(expected.len() > 1_000, "{} windows", expected.len());
    let yaml = window_yaml();
    for_each_seed(
        "sigkill_with_event_time_windows",
        BASE_SEED ^ 0x5eed,
        || seeded_workdir(input.path()),
        |d, seed| {
            std::fs::write(d.join("chaos.yaml"), &yaml).unwrap();
            run_with_n_kills(d, seed, 8, |_| {});
            let got = windows_of(&read_jsonl_dir(&d.join("out/windows")));
            // Late records are dead letters (the oracle has none late).
            let late = std::fs::read_to_string(d.join("out/dead/dead-letters.jsonl"))
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("\"late\""))
                .count();
            check_windows(
                &got,
                &expected,
                &format!("seed {seed}, {late} dead letters \"late\""),
            );
        },
    );
}
