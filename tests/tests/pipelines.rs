//! The example pipelines in `pipelines/` run and produce the right output.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use shoal_tests::{read_jsonl_dir, shoal, shoal_ok, workdir};

#[test]
fn every_example_validates() {
    let dir = workdir();
    let mut files: Vec<String> = std::fs::read_dir(dir.path().join("pipelines"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    assert!(files.len() >= 2);
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let out = shoal_ok(dir.path(), &args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("ok: ")).count(),
        files.len(),
        "{text}"
    );
}

/// All generator records, through a pipeline with no transforms: the oracle.
fn all_generated(dir: &std::path::Path, seed: u64, count: u64) -> Vec<serde_json::Value> {
    let yaml = format!(
        "name: all\nsources:\n  txns: {{ type: generator, seed: {seed}, count: {count} }}\nsinks:\n  all: {{ type: file, inputs: [txns], path: out/all }}\n"
    );
    std::fs::write(dir.join("all.yaml"), yaml).unwrap();
    shoal_ok(dir, &["run", "all.yaml"]);
    read_jsonl_dir(&dir.join("out/all"))
}

#[test]
fn large_foreign_flags_exactly_the_large_foreign_transactions() {
    let dir = workdir();
    let out = shoal_ok(dir.path(), &["run", "pipelines/large-foreign.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("400000 records in"),
        "summary missing:\n{stderr}"
    );

    let alerts = read_jsonl_dir(&dir.path().join("out/large-foreign"));
    let all = all_generated(dir.path(), 42, 200_000);
    assert_eq!(all.len(), 200_000);
    let expected: BTreeSet<String> = all
        .iter()
        .filter(|r| r["amount"].as_f64().unwrap() > 1000.0 && r["country"] != "US")
        .map(|r| r["txn_id"].as_str().unwrap().to_string())
        .collect();
    let got: BTreeSet<String> = alerts
        .iter()
        .map(|r| r["txn_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got.len(), alerts.len(), "duplicate alerts");
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
    for r in &alerts {
        let amount = r["amount"].as_f64().unwrap();
        let risk = if amount > 5000.0 { "high" } else { "medium" };
        assert_eq!(r["risk"], risk, "{r}");
        assert!(
            r.get("is_fraud").is_none(),
            "projection keeps only selected columns"
        );
    }
}

#[test]
fn file_cleanup_dead_letters_bad_records_and_keeps_going() {
    let dir = workdir();
    let out = shoal_ok(
        dir.path(),
        &["run", "--json", "pipelines/file-cleanup.yaml"],
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json summary");
    let dead: u64 = summary["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["dead_letters"].as_u64().unwrap())
        .sum();
    assert_eq!(dead, 3, "{summary}");

    let csv: Vec<String> = std::fs::read_dir(dir.path().join("out/cleaned"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(csv[0], "txn_id,card_id,amount_rounded,country,note");
    assert_eq!(csv.len(), 41, "header + 40 good records");
    assert!(
        csv[1..]
            .iter()
            .all(|l| !l.contains(",us,") && !l.contains(",fr,")),
        "country upper-cased"
    );

    let letters: Vec<serde_json::Value> = std::fs::read_to_string(
        dir.path()
            .join("out/cleanup-dead-letter/dead-letters.jsonl"),
    )
    .unwrap()
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    let lines: Vec<u64> = letters
        .iter()
        .map(|l| l["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![11, 21, 31]);
    assert!(letters.iter().all(|l| l["node"] == "raw"));
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not-a-number"),
        "{}",
        letters[0]
    );
    assert!(
        letters[1]["reason"].as_str().unwrap().contains("card_id"),
        "{}",
        letters[1]
    );
    assert!(letters[2]["record"].as_str().unwrap().contains("s-bad3"));
}

#[test]
fn hash_shuffle_keeps_each_key_in_one_sink_instance() {
    let dir = workdir();
    std::fs::write(
        dir.path().join("shuffle.yaml"),
        r#"
name: shuffle
sources:
  txns: { type: generator, seed: 3, count: 50000, parallelism: 2 }
transforms:
  keyed: { type: filter, inputs: [txns], where: "amount > 10", parallelism: 2, key: card_id }
sinks:
  out: { type: file, inputs: [keyed], path: out/keyed, parallelism: 3, key: card_id }
"#,
    )
    .unwrap();
    let explain = shoal_ok(dir.path(), &["explain", "shuffle.yaml"]);
    let text = String::from_utf8_lossy(&explain.stdout);
    assert!(
        text.contains("hash(card_id)") && text.contains("x3"),
        "{text}"
    );
    shoal_ok(dir.path(), &["run", "shuffle.yaml"]);
    let mut owner: HashMap<i64, String> = HashMap::new();
    let mut total = 0;
    for entry in std::fs::read_dir(dir.path().join("out/keyed")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        let part = name.split('-').nth(1).unwrap().to_string();
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let card = v["card_id"].as_i64().unwrap();
            assert_eq!(
                owner.entry(card).or_insert_with(|| part.clone()),
                &part,
                "card {card} in two sink instances"
            );
            total += 1;
        }
    }
    let expected = all_generated(dir.path(), 3, 50_000)
        .iter()
        .filter(|r| r["amount"].as_f64().unwrap() > 10.0)
        .count();
    assert_eq!(total, expected);
    assert_eq!(
        owner.values().collect::<BTreeSet<_>>().len(),
        3,
        "all three sink instances got keys"
    );
}

#[test]
fn sigint_stops_an_unbounded_pipeline_cleanly() {
    let dir = workdir();
    std::fs::write(
        dir.path().join("endless.yaml"),
        "name: endless\nsources:\n  txns: { type: generator, rate: 20000 }\nsinks:\n  out: { type: file, inputs: [txns], path: out/endless }\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(shoal_tests::shoal_bin())
        .args([
            "run",
            "--json",
            "--metrics-addr",
            "127.0.0.1:0",
            "endless.yaml",
        ])
        .current_dir(dir.path())
        .env("SHOAL_DATA_DIR", dir.path().join("shoal-data"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (addr, stderr) = metrics_addr(&mut child);
    // SIGINT once records reached the sink, however long that takes.
    scrape_until(&addr, "records at the sink", |body| {
        metric(body, "shoal_records_in_total", "out").is_some_and(|n| n > 0.0)
    });
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = stderr.join().unwrap().join("\n");
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sunk: u64 = summary["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["role"] == "sink")
        .map(|n| n["records_in"].as_u64().unwrap())
        .sum();
    let written = read_jsonl_dir(&dir.path().join("out/endless")).len() as u64;
    assert!(sunk > 0, "nothing flowed before SIGINT");
    assert_eq!(written, sunk, "everything the sink received is committed");
}

#[test]
fn plan_errors_name_the_yaml_line() {
    let dir = workdir();
    std::fs::write(
        dir.path().join("bad-sql.yaml"),
        "name: bad\nsources:\n  txns: { type: generator, count: 10 }\ntransforms:\n  agg:\n    type: sql\n    inputs: [txns]\n    query: SELECT card_id, COUNT(*) FROM txns GROUP BY card_id\nsinks:\n  out: { type: stdout, inputs: [agg] }\n",
    )
    .unwrap();
    let out = shoal(dir.path(), &["validate", "bad-sql.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad-sql.yaml:8:"), "{err}");
    assert!(err.contains("GROUP BY"), "{err}");

    std::fs::write(
        dir.path().join("bad-col.yaml"),
        "name: bad\nsources:\n  txns: { type: generator, count: 10 }\ntransforms:\n  f:\n    type: filter\n    inputs: [txns]\n    where: amout > 5\nsinks:\n  out: { type: stdout, inputs: [f] }\n",
    )
    .unwrap();
    let out = shoal(dir.path(), &["run", "bad-col.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad-col.yaml:8:") && err.contains("amout"),
        "{err}"
    );
}

#[test]
fn merchant_risk_enriches_every_transaction_from_the_csv_table() {
    let dir = workdir();
    let d = dir.path();
    shoal_ok(d, &["run", "--no-progress", "pipelines/merchant-risk.yaml"]);
    // The table, read independently.
    let csv = std::fs::read_to_string(d.join("pipelines/data/merchants.csv")).unwrap();
    let table: std::collections::HashMap<i64, (String, String)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse().unwrap(), (f[1].to_string(), f[2].to_string()))
        })
        .collect();
    let all = all_generated(d, 5, 100_000);
    let enriched = read_jsonl_dir(&d.join("out/merchant-risk/enriched"));
    assert_eq!(enriched.len(), all.len(), "a LEFT JOIN keeps every row");
    let by_id: std::collections::HashMap<&str, &serde_json::Value> = enriched
        .iter()
        .map(|r| (r["txn_id"].as_str().unwrap(), r))
        .collect();
    let (mut matched, mut flagged) = (0, BTreeSet::new());
    for r in &all {
        let id = r["txn_id"].as_str().unwrap();
        let got = by_id[id];
        let merchant = r["merchant_id"].as_i64().unwrap();
        assert_eq!(got["merchant_id"], merchant);
        let (cat, tier) = match table.get(&merchant) {
            Some((c, t)) => {
                matched += 1;
                (c.as_str(), t.as_str())
            }
            None => ("unknown", "unrated"),
        };
        assert_eq!(got["category"], cat, "{got}");
        assert_eq!(got["risk_tier"], tier, "{got}");
        if tier == "high" && r["amount"].as_f64().unwrap() > 200.0 {
            flagged.insert(id.to_string());
        }
    }
    // Both branches of the join are exercised.
    assert!(matched > 1_000 && matched < all.len(), "matched {matched}");
    let alerts: BTreeSet<String> = read_jsonl_dir(&d.join("out/merchant-risk/flagged"))
        .iter()
        .map(|r| r["txn_id"].as_str().unwrap().to_string())
        .collect();
    assert!(!flagged.is_empty());
    assert_eq!(alerts, flagged);
}

#[test]
fn a_missing_lookup_table_is_a_plan_error_at_its_path_line() {
    let dir = workdir();
    std::fs::write(
        dir.path().join("bad-lookup.yaml"),
        "name: bad\nsources:\n  txns: { type: generator, count: 10 }\ntransforms:\n  e:\n    type: sql\n    inputs: [txns]\n    lookup:\n      merchants:\n        path: nowhere/merchants.csv\n    query: SELECT t.txn_id FROM txns t JOIN merchants m ON t.merchant_id = m.merchant_id\nsinks:\n  out: { type: stdout, inputs: [e] }\n",
    )
    .unwrap();
    let out = shoal(dir.path(), &["validate", "bad-lookup.yaml"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad-lookup.yaml:10:") && err.contains("nowhere/merchants.csv"),
        "{err}"
    );
}

/// GET `path` from `addr` over plain HTTP/1.0; returns (status line, body).
fn http_get(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// The value of metric `name{node="node"}` in a Prometheus text body.
fn metric(body: &str, name: &str, node: &str) -> Option<f64> {
    let prefix = format!("{name}{{node=\"{node}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// Only bounds how long a broken build hangs; never what a test checks.
const HANG_GUARD: Duration = Duration::from_secs(300);

/// Scrapes `/metrics` at `addr` until `done(body)` holds and returns that
/// body. `done` must become true and stay true while the pipeline runs: the
/// deadline is a hang guard, not part of what is tested.
fn scrape_until(addr: &str, what: &str, mut done: impl FnMut(&str) -> bool) -> String {
    let guard = std::time::Instant::now() + HANG_GUARD;
    loop {
        let (status, body) = http_get(addr, "/metrics");
        assert!(status.contains("200"), "{status}");
        if done(&body) {
            return body;
        }
        assert!(
            std::time::Instant::now() < guard,
            "hang guard: no {what} after {HANG_GUARD:?}:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reads the child's stderr up to the line `metrics: http://ADDR/metrics`;
/// returns ADDR and a thread draining the rest of its stderr (so it never
/// writes to a closed pipe).
fn metrics_addr(child: &mut std::process::Child) -> (String, std::thread::JoinHandle<Vec<String>>) {
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("metrics: http://")
                .map(|r| r.trim_end_matches("/metrics").to_string())
        })
        .expect("metrics address printed");
    let stderr = std::thread::spawn(move || lines.map_while(Result::ok).collect());
    (addr, stderr)
}

/// A `shoal run --metrics-addr 127.0.0.1:0 FILE` in `dir`, the metrics
/// address it printed, and a thread draining the rest of its stderr (so it
/// never writes to a closed pipe).
struct MetricsRun {
    child: std::process::Child,
    addr: String,
    stderr: std::thread::JoinHandle<Vec<String>>,
}

impl MetricsRun {
    fn start(dir: &std::path::Path, file: &str) -> Self {
        Self::start_with_stdout(dir, file, std::process::Stdio::null())
    }

    /// Like [`MetricsRun::start`], with the child's stdout going to `stdout`.
    fn start_with_stdout(dir: &std::path::Path, file: &str, stdout: std::process::Stdio) -> Self {
        let mut child = std::process::Command::new(shoal_tests::shoal_bin())
            .args([
                "run",
                "--no-progress",
                "--metrics-addr",
                "127.0.0.1:0",
                file,
            ])
            .current_dir(dir)
            .env("SHOAL_DATA_DIR", dir.join("shoal-data"))
            .stdout(stdout)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The bound address is printed on stderr: "metrics: http://ADDR/metrics".
        let (addr, stderr) = metrics_addr(&mut child);
        MetricsRun {
            child,
            addr,
            stderr,
        }
    }

    /// Wait for the process; it must exit 0.
    fn finish(mut self) {
        let status = self.child.wait().unwrap();
        let rest = self.stderr.join().unwrap();
        assert!(status.success(), "{status}: {}", rest.join("\n"));
    }
}

#[test]
fn metrics_are_served_for_prometheus_while_running() {
    let dir = workdir();
    std::fs::write(
        dir.path().join("endless.yaml"),
        "name: endless\ncheckpoint: { interval: 200ms }\nsources:\n  txns: { type: generator, rate: 20000, event_time: { column: ts, max_delay: 1s } }\ntransforms:\n  big: { type: filter, inputs: [txns], where: amount > 100 }\nsinks:\n  out: { type: file, inputs: [big], path: out/endless }\n",
    )
    .unwrap();
    let run = MetricsRun::start(dir.path(), "endless.yaml");
    let addr = run.addr.clone();
    let completed = |body: &str| -> Option<f64> {
        body.lines()
            .find_map(|l| l.strip_prefix("shoal_checkpoints_completed_total "))
            .and_then(|v| v.parse().ok())
    };
    // The pipeline runs until SIGINT: wait for what must come, however long
    // it takes (records out, a watermark, a completed checkpoint).
    let first = scrape_until(&addr, "records, watermark and checkpoint", |body| {
        metric(body, "shoal_records_out_total", "txns").is_some_and(|n| n > 0.0)
            && metric(body, "shoal_watermark_ms", "txns").is_some()
            && completed(body).is_some_and(|n| n >= 1.0)
    });
    let out1 = metric(&first, "shoal_records_out_total", "txns").expect("source counter");
    let second = scrape_until(&addr, "growth of the source counter", |body| {
        metric(body, "shoal_records_out_total", "txns").is_some_and(|n| n > out1)
    });
    assert!(completed(&second).is_some(), "checkpoint counter: {second}");
    let (missing, _) = http_get(&addr, "/other");
    assert!(missing.contains("404"), "{missing}");
    std::process::Command::new("kill")
        .args(["-INT", &run.child.id().to_string()])
        .status()
        .unwrap();
    run.finish();
}

/// `format: parquet` on a file sink writes complete Parquet parts (also in
/// a checkpointed run), and a file source reads one back.
#[test]
fn parquet_files_round_trip_through_sink_and_source() {
    let dir = workdir();
    let d = dir.path();
    std::fs::write(
        d.join("to-parquet.yaml"),
        "name: to-parquet\ncheckpoint: { interval: 200ms }\nsources:\n  txns: { type: generator, seed: 9, count: 30000 }\nsinks:\n  pq: { type: file, inputs: [txns], path: out/pq, format: parquet }\n  js: { type: file, inputs: [txns], path: out/js }\n",
    )
    .unwrap();
    shoal_ok(d, &["run", "--no-progress", "to-parquet.yaml"]);
    let parts: Vec<_> = std::fs::read_dir(d.join("out/pq"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    assert!(!parts.is_empty(), "no parquet parts");
    let mut back = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        // Every part is a complete Parquet file (magic at both ends).
        let bytes = std::fs::read(part).unwrap();
        assert!(
            bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"),
            "{part:?}"
        );
        let yaml = format!(
            "name: from-parquet-{i}\nsources:\n  p: {{ type: file, path: {}, format: parquet }}\nsinks:\n  out: {{ type: file, inputs: [p], path: out/back-{i} }}\n",
            part.display()
        );
        std::fs::write(d.join("back.yaml"), yaml).unwrap();
        shoal_ok(d, &["run", "--no-progress", "back.yaml"]);
        back.extend(read_jsonl_dir(&d.join(format!("out/back-{i}"))));
    }
    let mut expected = read_jsonl_dir(&d.join("out/js"));
    assert_eq!(expected.len(), 30_000);
    let key = |r: &serde_json::Value| r["txn_id"].as_str().unwrap().to_string();
    expected.sort_by_key(key);
    back.sort_by_key(key);
    assert_eq!(
        back, expected,
        "parquet round trip differs from the JSON output"
    );
}

/// A log source reports its consumer lag (log end minus position) as
/// `shoal_consumer_lag`; it shrinks as the group reads. The test holds the
/// backlog with backpressure (nobody reads the stdout sink's pipe) instead
/// of racing a rate-limited read with sleeps.
#[test]
fn consumer_lag_is_a_metric_and_shrinks_while_reading() {
    let dir = workdir();
    let d = dir.path();
    std::fs::write(
        d.join("produce.yaml"),
        "name: produce\nsources:\n  gen: { type: generator, seed: 3, count: 100000 }\nsinks:\n  to_log: { type: log, inputs: [gen], topic: lagged, partitions: 4, key: card_id }\n",
    )
    .unwrap();
    shoal_ok(d, &["run", "--no-progress", "produce.yaml"]);
    // Runs until SIGINT (no stop_at_end), so the final lag can be scraped;
    // a long session timeout, so members blocked by backpressure for as long
    // as the test takes are not expelled.
    std::fs::write(
        d.join("slow.yaml"),
        "name: slow\nsources:\n  txns:\n    type: log\n    topic: lagged\n    group: slow\n    parallelism: 2\n    start: earliest\n    session_timeout: 10m\n    batch_size: 500\n    schema: { txn_id: utf8, card_id: int64, amount: float64 }\nsinks:\n  out: { type: stdout, inputs: [txns] }\n",
    )
    .unwrap();
    let mut run = MetricsRun::start_with_stdout(d, "slow.yaml", std::process::Stdio::piped());
    let addr = run.addr.clone();
    // Nobody reads stdout yet: the pipe fills, backpressure stops the
    // members, and the backlog stays (far more than pipe and channels hold).
    let first = scrape_until(&addr, "a reported backlog", |body| {
        metric(body, "shoal_consumer_lag", "txns").is_some_and(|lag| lag > 0.0)
    });
    let lag1 = metric(&first, "shoal_consumer_lag", "txns").unwrap();
    assert!(lag1 <= 100_000.0, "lag {lag1}\n{first}");
    // Now drain the pipe: the group reads everything and the lag shrinks
    // to zero.
    let mut stdout = run.child.stdout.take().unwrap();
    let drain = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).unwrap();
        text
    });
    let second = scrape_until(&addr, "the lag to shrink to zero", |body| {
        metric(body, "shoal_consumer_lag", "txns") == Some(0.0)
    });
    let lag2 = metric(&second, "shoal_consumer_lag", "txns").unwrap();
    assert!(lag2 < lag1, "lag {lag1} then {lag2}");
    std::process::Command::new("kill")
        .args(["-INT", &run.child.id().to_string()])
        .status()
        .unwrap();
    run.finish();
    assert_eq!(drain.join().unwrap().lines().count(), 100_000);
}
