//! The HTTP API of `shoal run`, hit over loopback while a real job runs:
//! health and readiness, the job's snapshots (status, graph, checkpoints,
//! partitions, dead letters), Prometheus, a graceful stop over POST with a
//! bearer token (401 without it, and nothing changes), the refusal to
//! listen beyond loopback without a token, two jobs on one machine, and
//! `--log-format json`.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use shoal_tests::http::{Run, get_json, poll, request};
use shoal_tests::{read_jsonl_dir, shoal, shoal_bin, shoal_ok, workdir};

const RECORDS: u64 = 2000;
/// Every 100th record has a bad amount: a dead letter.
const BAD: u64 = RECORDS / 100;

/// A job over the 4-partition topic `txns` (read at a limited rate, never
/// ending by itself), checkpointed, into a file sink.
const YAML: &str = r#"name: api
checkpoint: { interval: 200ms }
sources:
  txns:
    type: log
    topic: txns
    group: api
    parallelism: 2
    start: earliest
    batch_size: 100
    rate: 1000
    schema: { id: int64, card: int64, amount: float64 }
transforms:
  big:
    type: filter
    inputs: [txns]
    where: amount >= 0
sinks:
  out: { type: file, inputs: [big], path: out/api }
"#;

/// Produces `RECORDS` JSON records (every 100th with a bad amount) into
/// the 4-partition topic `txns` of `d`'s data dir.
fn produce(d: &Path) {
    shoal_ok(d, &["topic", "create", "txns", "--partitions", "4"]);
    let mut lines = String::new();
    for i in 0..RECORDS {
        if i % 100 == 99 {
            lines.push_str(&format!(
                "{{\"id\":{i},\"card\":{},\"amount\":\"bad\"}}\n",
                i % 10
            ));
        } else {
            lines.push_str(&format!(
                "{{\"id\":{i},\"card\":{},\"amount\":{}}}\n",
                i % 10,
                i % 50
            ));
        }
    }
    std::fs::write(d.join("txns.jsonl"), lines).unwrap();
    shoal_ok(d, &["produce", "txns", "--key", "card", "txns.jsonl"]);
}

#[test]
fn the_api_shows_a_running_job_and_stops_it_with_a_token() {
    let dir = workdir();
    let d = dir.path();
    produce(d);
    std::fs::write(d.join("api.yaml"), YAML).unwrap();
    let token = "s3cret-token";
    let run = Run::start(
        d,
        &[
            "--no-progress",
            "--json",
            "--http-addr",
            "127.0.0.1:0",
            "--http-token",
            token,
            "api.yaml",
        ],
    );
    let addr = run.addr.clone();

    let (code, body) = request(&addr, "GET", "/healthz", None);
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let index = get_json(&addr, "/api/v1");
    assert_eq!(index["pipeline"], "api");
    assert_eq!(index["endpoints"].as_array().unwrap().len(), 11);
    // `/` is the dashboard: a page whose script and style are served too.
    let (code, page) = request(&addr, "GET", "/", None);
    assert_eq!(code, 200);
    assert!(page.contains("./assets/app.js"), "{page}");
    for asset in ["/assets/app.js", "/assets/app.css"] {
        let (code, body) = request(&addr, "GET", asset, None);
        assert_eq!(code, 200, "GET {asset}");
        assert!(body.len() > 1000, "GET {asset}: {} bytes", body.len());
    }

    // Everything read: every good record at the sink, every bad one
    // dead-lettered, checkpoints taken; the job keeps running (no end).
    let job = poll(&addr, "/api/v1/job", "all records read", |v| {
        v["sink_records"] == RECORDS - BAD
            && v["dead_letters"] == BAD
            && v["checkpoints_completed"].as_u64().unwrap() >= 2
    });
    assert_eq!(job["name"], "api");
    assert_eq!(job["state"], "running");
    assert_eq!(job["error"], Value::Null);
    assert_eq!(job["source_records"], RECORDS - BAD);
    let nodes: Vec<&str> = job["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["txns", "big", "out"]);
    assert_eq!(job["nodes"][0]["dead_letters"], BAD);
    assert_eq!(job["nodes"][2]["records_in"], RECORDS - BAD);
    // Per instance: one entry per parallel instance, adding up to the node.
    let txns = &job["nodes"][0];
    let instances = txns["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 2, "{txns}");
    let sum = |field: &str| -> u64 { instances.iter().map(|i| i[field].as_u64().unwrap()).sum() };
    assert_eq!(sum("records_out"), RECORDS - BAD);
    assert!(
        instances
            .iter()
            .all(|i| i["records_out"].as_u64().unwrap() > 0),
        "{txns}"
    );
    assert_eq!(sum("bytes_out"), txns["bytes_out"].as_u64().unwrap());
    // Every good record holds three 8-byte values.
    assert!(
        txns["bytes_out"].as_u64().unwrap() >= (RECORDS - BAD) * 24,
        "{txns}"
    );
    assert_eq!(job["nodes"][2]["bytes_in"], job["nodes"][1]["bytes_out"]);
    assert!(txns["backpressure"].as_f64().is_some() && txns["blocked_ms"].as_u64().is_some());

    let (code, body) = request(&addr, "GET", "/readyz", None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["ready"], true);

    let graph = get_json(&addr, "/api/v1/job/graph");
    assert_eq!(graph["pipeline"], "api");
    let edges: Vec<(String, String)> = graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap().to_string(),
                e["to"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        edges,
        [
            ("txns".to_string(), "big".to_string()),
            ("big".to_string(), "out".to_string())
        ]
    );
    assert_eq!(graph["nodes"][0]["kind"], "log");
    assert_eq!(graph["nodes"][0]["parallelism"], 2);
    let columns: Vec<&str> = graph["nodes"][0]["schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["id", "card", "amount"]);

    // Per partition: 4 partitions, at their ends, RECORDS in all.
    let parts = poll(&addr, "/api/v1/job/partitions", "partitions at end", |v| {
        let p = &v["sources"][0]["partitions"];
        p.as_array().is_some_and(|a| {
            a.len() == 4
                && a.iter().all(|p| p["lag"] == 0)
                && a.iter()
                    .map(|p| p["position"].as_u64().unwrap())
                    .sum::<u64>()
                    == RECORDS
        })
    });
    assert_eq!(parts["sources"][0]["node"], "txns");
    let ids: Vec<u64> = parts["sources"][0]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["partition"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [0, 1, 2, 3]);

    let ck = get_json(&addr, "/api/v1/job/checkpoints");
    assert_eq!(ck["enabled"], true);
    let history = ck["history"].as_array().unwrap();
    assert!(
        history.len() as u64 >= 2
            && history.len() as u64
                <= ck["completed"].as_u64().unwrap() + ck["abandoned"].as_u64().unwrap()
    );
    let ids: Vec<u64> = history.iter().map(|c| c["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in order: {ids:?}");

    let dl = get_json(&addr, "/api/v1/job/dead-letters?limit=5");
    assert_eq!(dl["total"], BAD);
    assert_eq!(dl["by_node"]["txns"], BAD);
    let latest = dl["latest"].as_array().unwrap();
    assert_eq!(latest.len(), 5);
    for l in latest {
        assert_eq!(l["node"], "txns");
        assert!(l["record"].as_str().unwrap().contains("\"bad\""), "{l}");
    }
    let all = get_json(&addr, "/api/v1/job/dead-letters?limit=100");
    assert_eq!(all["latest"].as_array().unwrap().len() as u64, BAD);

    let (code, prom) = request(&addr, "GET", "/metrics", None);
    assert_eq!(code, 200);
    assert!(
        prom.contains(&format!(
            "shoal_records_in_total{{node=\"out\"}} {}\n",
            RECORDS - BAD
        )),
        "{prom}"
    );
    assert!(
        prom.contains(&format!(
            "shoal_bytes_in_total{{node=\"out\"}} {}\n",
            job["nodes"][2]["bytes_in"]
        )),
        "{prom}"
    );
    assert!(
        prom.contains("shoal_job_state{state=\"running\"} 1\n"),
        "{prom}"
    );
    assert!(
        prom.contains("shoal_partition_lag{node=\"txns\",partition=\"3\"} 0\n"),
        "{prom}"
    );

    // POST without the token, or with a wrong one: 401, and nothing changes.
    for bad in [None, Some("wrong-token")] {
        let (code, body) = request(&addr, "POST", "/api/v1/job/stop", bad);
        assert_eq!(code, 401, "{body}");
    }
    // A savepoint name that is not a safe file name: 400, nothing changes.
    let (code, body) = request(
        &addr,
        "POST",
        "/api/v1/job/stop?savepoint=true&name=..%2Fescape",
        Some(token),
    );
    assert_eq!(code, 400, "{body}");
    assert_eq!(get_json(&addr, "/api/v1/job")["state"], "running");
    assert_eq!(request(&addr, "GET", "/readyz", None).0, 200);

    // With the token: a graceful stop, exit 0, everything committed, the
    // final checkpoint kept as a savepoint.
    let (code, body) = request(
        &addr,
        "POST",
        "/api/v1/job/stop?savepoint=true&name=before-upgrade",
        Some(token),
    );
    assert_eq!(code, 202, "{body}");
    let answer = serde_json::from_str::<Value>(&body).unwrap();
    assert_eq!(answer["state"], "stopping");
    assert_eq!(answer["savepoint"], "before-upgrade");
    let (code, stdout, stderr) = run.finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("stop requested over HTTP"), "{stderr}");
    assert!(
        stderr.contains("savepoint `before-upgrade` kept"),
        "{stderr}"
    );
    let saved: Value = serde_json::from_slice(
        &std::fs::read(d.join("shoal-data/checkpoints/api/savepoints/before-upgrade.json"))
            .unwrap(),
    )
    .unwrap();
    let listed = String::from_utf8(shoal_ok(d, &["checkpoints"]).stdout).unwrap();
    assert!(
        listed.contains(&format!(
            "savepoint before-upgrade: pipeline api, checkpoint {}",
            saved["id"]
        )),
        "{listed}"
    );
    // And in the JSON listing, after the checkpoints.
    let listed: Vec<Value> =
        serde_json::from_slice(&shoal_ok(d, &["checkpoints", "--json"]).stdout).unwrap();
    let sp: Vec<&Value> = listed
        .iter()
        .filter(|e| !e["savepoint"].is_null())
        .collect();
    assert_eq!(sp.len(), 1, "{listed:?}");
    assert_eq!(sp[0]["savepoint"], "before-upgrade");
    assert_eq!(sp[0]["id"], saved["id"]);
    assert!(
        listed.iter().any(|e| e["savepoint"].is_null()),
        "{listed:?}"
    );
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert!(summary["checkpoints"]["completed"].as_u64().unwrap() >= 2);
    assert_eq!(
        read_jsonl_dir(&d.join("out/api")).len() as u64,
        RECORDS - BAD,
        "every good record committed once"
    );
}

#[test]
fn a_non_loopback_address_without_a_token_is_refused() {
    let dir = workdir();
    let d = dir.path();
    std::fs::write(
        d.join("gen.yaml"),
        "name: gen\nsources:\n  g: { type: generator, count: 10 }\nsinks:\n  out: { type: file, inputs: [g], path: out/gen }\n",
    )
    .unwrap();
    let out = Command::new(shoal_bin())
        .args(["run", "--http-addr", "0.0.0.0:0", "gen.yaml"])
        .current_dir(d)
        .env("SHOAL_DATA_DIR", d.join("shoal-data"))
        .env_remove("SHOAL_HTTP_TOKEN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--http-token"), "{stderr}");
    assert!(!d.join("out/gen").exists(), "nothing ran");
    // With a token it runs (and ends: the generator is bounded).
    let out = Command::new(shoal_bin())
        .args(["run", "--http-addr", "0.0.0.0:0", "gen.yaml"])
        .current_dir(d)
        .env("SHOAL_DATA_DIR", d.join("shoal-data"))
        .env("SHOAL_HTTP_TOKEN", "t0ken")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read_jsonl_dir(&d.join("out/gen")).len(), 10);
    // --no-http serves nothing and prints no address.
    let out = shoal(d, &["run", "--no-http", "gen.yaml"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("http api:"));
}

#[test]
fn two_jobs_at_once_both_serve_on_their_own_ports() {
    let dirs = [workdir(), workdir()];
    let runs: Vec<Run> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            std::fs::write(
                dir.path().join("endless.yaml"),
                format!("name: endless-{i}\nsources:\n  g: {{ type: generator, rate: 2000 }}\nsinks:\n  out: {{ type: file, inputs: [g], path: out/e }}\n"),
            )
            .unwrap();
            // The default address: the second takes another port.
            Run::start(dir.path(), &["--no-progress", "endless.yaml"])
        })
        .collect();
    assert_ne!(runs[0].addr, runs[1].addr);
    for (i, run) in runs.iter().enumerate() {
        let job = poll(&run.addr, "/api/v1/job", "records", |v| {
            v["sink_records"].as_u64().unwrap() > 0
        });
        assert_eq!(job["name"], format!("endless-{i}"));
        assert_eq!(job["state"], "running");
    }
    for (i, run) in runs.into_iter().enumerate() {
        // Loopback without a token: POST is open.
        let (code, body) = request(&run.addr, "POST", "/api/v1/job/stop", None);
        assert_eq!(code, 202, "{body}");
        let (code, _, stderr) = run.finish();
        assert_eq!(code, Some(0), "{stderr}");
        let written = read_jsonl_dir(&dirs[i].path().join("out/e")).len();
        assert!(written > 0, "job {i} committed its output");
    }
}

#[test]
fn json_logs_are_one_object_per_event_with_the_pipeline() {
    let dir = workdir();
    let d = dir.path();
    std::fs::write(
        d.join("gen.yaml"),
        "name: logged\ncheckpoint: { interval: 100ms }\nsources:\n  g: { type: generator, count: 5000, rate: 10000 }\nsinks:\n  out: { type: file, inputs: [g], path: out/gen }\n",
    )
    .unwrap();
    let out = Command::new(shoal_bin())
        .args(["run", "--no-http", "--log-format", "json", "gen.yaml"])
        .current_dir(d)
        .env("SHOAL_DATA_DIR", d.join("shoal-data"))
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let events: Vec<Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let checkpoints: Vec<&Value> = events
        .iter()
        .filter(|e| e["fields"]["message"] == "checkpoint completed")
        .collect();
    assert!(!checkpoints.is_empty(), "{stderr}");
    for e in &checkpoints {
        assert_eq!(e["level"], "INFO");
        assert_eq!(e["target"], "shoal_runtime::checkpoint::coordinator");
        assert!(e["fields"]["id"].as_u64().is_some(), "{e}");
        let spans = e["spans"].as_array().unwrap();
        assert!(
            spans.iter().any(|s| s["pipeline"] == "logged"),
            "the pipeline's name in the event's spans: {e}"
        );
    }
    // Every line is either an event or one of the CLI's own messages.
    let other: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with('{') && !l.is_empty())
        .filter(|l| {
            !l.starts_with("done in")
                && !l.starts_with("checkpoints:")
                && !l.starts_with("node ")
                && !l.starts_with("g ")
                && !l.starts_with("out ")
        })
        .collect();
    assert!(other.is_empty(), "non-JSON lines: {other:?}");
}

/// A savepoint kept at a stop is restored later by `--from-savepoint`,
/// after other checkpoints were taken: the job reads again exactly what
/// came after the savepoint, and the later checkpoints move aside.
#[test]
fn a_savepoint_is_restored_after_later_checkpoints() {
    let dir = workdir();
    let d = dir.path();
    produce(d);
    std::fs::write(d.join("api.yaml"), YAML).unwrap();
    let args = [
        "--no-progress",
        "--json",
        "--http-addr",
        "127.0.0.1:0",
        "api.yaml",
    ];
    // Run 1: read everything, stop keeping savepoint `sp1`.
    let run = Run::start(d, &args);
    poll(&run.addr, "/api/v1/job", "all records read", |v| {
        v["sink_records"] == RECORDS - BAD && v["checkpoints_completed"].as_u64().unwrap() >= 1
    });
    let (code, body) = request(
        &run.addr,
        "POST",
        "/api/v1/job/stop?savepoint=true&name=sp1",
        None,
    );
    assert_eq!(code, 202, "{body}");
    let (code, _, stderr) = run.finish();
    assert_eq!(code, Some(0), "{stderr}");
    let saved: Value = serde_json::from_slice(
        &std::fs::read(d.join("shoal-data/checkpoints/api/savepoints/sp1.json")).unwrap(),
    )
    .unwrap();
    let sp_id = saved["id"].as_u64().unwrap();

    // 1 000 more records; run 2 reads them and takes later checkpoints.
    let more: String = (RECORDS..RECORDS + 1000)
        .map(|i| format!("{{\"id\":{i},\"card\":{},\"amount\":1}}\n", i % 10))
        .collect();
    std::fs::write(d.join("more.jsonl"), more).unwrap();
    shoal_ok(d, &["produce", "txns", "--key", "card", "more.jsonl"]);
    let run = Run::start(d, &args);
    poll(&run.addr, "/api/v1/job", "the new records read", |v| {
        v["sink_records"] == 1000 && v["last_checkpoint"].as_u64().is_some_and(|c| c > sp_id + 1)
    });
    assert_eq!(request(&run.addr, "POST", "/api/v1/job/stop", None).0, 202);
    let (code, _, stderr) = run.finish();
    assert_eq!(code, Some(0), "{stderr}");

    // An unknown savepoint is refused, naming the ones there are.
    let out = shoal(
        d,
        &["run", "--no-http", "--from-savepoint", "nope", "api.yaml"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no savepoint `nope`") && err.contains("sp1"),
        "{err}"
    );

    // Run 3 from `sp1`: exactly the 1 000 records after it are read again.
    let mut with_sp = vec!["--from-savepoint", "sp1"];
    with_sp.extend(args);
    let run = Run::start(d, &with_sp);
    let job = poll(
        &run.addr,
        "/api/v1/job",
        "re-read after the savepoint",
        |v| v["sink_records"] == 1000,
    );
    assert_eq!(job["restored_from"], sp_id);
    assert_eq!(request(&run.addr, "POST", "/api/v1/job/stop", None).0, 202);
    let (code, stdout, stderr) = run.finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("rolled back") || stderr.contains("rolled_back"),
        "{stderr}"
    );
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["nodes"][0]["node"], "txns");
    assert_eq!(summary["nodes"][0]["records_out"], 1000, "{summary}");
    let moved = std::fs::read_dir(d.join("shoal-data/checkpoints/api/rolled-back"))
        .unwrap()
        .count();
    assert!(moved >= 2, "later checkpoints moved aside: {moved}");
}
