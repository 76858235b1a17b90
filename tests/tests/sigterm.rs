//! SIGTERM, as `docker stop`, systemd and Kubernetes send it: the first one
//! stops `shoal run` like the first Ctrl-C (sources stop, the graph drains,
//! the final checkpoint is committed, exit 0), and a restart continues
//! exactly where it stopped; a second signal aborts (exit 143 for SIGTERM).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shoal_tests::{produce_transactions, read_jsonl_dir, shoal_bin, workdir};

const RECORDS: u64 = 40_000;

/// A keyed running aggregate over the 4-partition log topic `txns`, read at
/// a limited rate so that a SIGTERM lands mid-run, into a file sink.
const YAML: &str = r#"name: sigterm
checkpoint: { interval: 200ms }
sources:
  txns:
    type: log
    topic: txns
    group: sigterm
    parallelism: 2
    start: earliest
    stop_at_end: true
    batch_size: 500
    rate: 8000
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
  out: { type: file, inputs: [running], path: out/running }
"#;

/// Only bounds how long a broken build hangs; never what a test checks.
const HANG_GUARD: Duration = Duration::from_secs(300);

fn spawn_run(d: &Path, file: &str, stdout: Stdio) -> Child {
    Command::new(shoal_bin())
        .args(["run", "--no-progress", "--json", file])
        .current_dir(d)
        .env("SHOAL_DATA_DIR", d.join("shoal-data"))
        .env_remove("RUST_LOG")
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shoal run")
}

fn kill(child: &Child, signal: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal}");
}

fn sink_records(summary: &serde_json::Value) -> u64 {
    summary["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["role"] == "sink")
        .map(|n| n["records_in"].as_u64().unwrap())
        .sum()
}

#[test]
fn sigterm_commits_what_was_read_and_a_restart_continues_exactly() {
    let dir = workdir();
    let d = dir.path();
    produce_transactions(d, 7, RECORDS, "txns", 4);
    std::fs::write(d.join("sigterm.yaml"), YAML).unwrap();
    let out_dir = d.join("out/running");

    // Run 1: SIGTERM once the sink has committed output (so checkpoints
    // are running), however long that takes.
    let mut child = spawn_run(d, "sigterm.yaml", Stdio::piped());
    let guard = Instant::now() + HANG_GUARD;
    while !out_dir.exists() || read_jsonl_dir(&out_dir).is_empty() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before SIGTERM"
        );
        assert!(Instant::now() < guard, "hang guard: nothing committed");
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.contains("terminated (SIGTERM)"), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = read_jsonl_dir(&out_dir);
    let sunk = sink_records(&summary);
    assert!(
        (first.len() as u64) < RECORDS,
        "SIGTERM stopped nothing: all {RECORDS} records written in run 1"
    );
    assert_eq!(
        first.len() as u64,
        sunk,
        "everything the sink received before SIGTERM is committed"
    );

    // Run 2 restores the final checkpoint of run 1 and reads the rest.
    let child = spawn_run(d, "sigterm.yaml", Stdio::piped());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.contains("restoring from checkpoint"), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        sink_records(&summary),
        RECORDS - first.len() as u64,
        "run 2 reads exactly what run 1 did not"
    );

    // Every record exactly once, and every per-card running count exact
    // (the state crossed the SIGTERM too).
    let rows = read_jsonl_dir(&out_dir);
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for r in &rows {
        *seen.entry(r["txn_id"].as_str().unwrap()).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "written twice: {twice:?}");
    assert_eq!(seen.len() as u64, RECORDS, "every record once");
    assert_eq!(rows.len() as u64, RECORDS);
    let mut by_card: HashMap<i64, Vec<u64>> = HashMap::new();
    for r in &rows {
        by_card
            .entry(r["card_id"].as_i64().unwrap())
            .or_default()
            .push(r["n"].as_u64().unwrap());
    }
    for (card, mut counts) in by_card {
        counts.sort_unstable();
        let want: Vec<u64> = (1..=counts.len() as u64).collect();
        assert_eq!(counts, want, "card {card}: running counts 1..=k");
    }
}

#[test]
fn a_second_sigterm_aborts_a_stuck_drain_with_143() {
    let dir = workdir();
    let d = dir.path();
    // A stdout sink whose reader stops reading: the drain after the first
    // SIGTERM can never finish (the pipe is full), so only the second
    // signal ends the process.
    std::fs::write(
        d.join("stuck.yaml"),
        "name: stuck\nsources:\n  txns: { type: generator, seed: 3 }\nsinks:\n  out: { type: stdout, inputs: [txns] }\n",
    )
    .unwrap();
    let mut child = spawn_run(d, "stuck.yaml", Stdio::piped());
    // Read some records (so they flow), then stop reading.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    for _ in 0..1000 {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "stdout ended");
    }
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    kill(&child, "TERM");
    let mut said = String::new();
    while !said.contains("terminated (SIGTERM)") {
        let mut l = String::new();
        assert!(
            stderr.read_line(&mut l).unwrap() > 0,
            "stderr ended: {said}"
        );
        said.push_str(&l);
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited after the first SIGTERM though its sink cannot drain"
    );
    kill(&child, "TERM");
    let status = child.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert_eq!(status.code(), Some(143), "stderr: {said}{rest}");
    assert!(
        rest.contains("aborted by a second signal (SIGTERM)"),
        "{rest}"
    );
    drop(stdout);
}
