//! The web dashboard in a real browser: the fraud pipeline runs with a
//! rate-limited generator and its HTTP server; Debian's headless chromium,
//! driven by Playwright (`tests/browser/dashboard.mjs`), loads the page and
//! reports what it shows. Checked: every node and edge of the pipeline is
//! in the graph, the numbers change between two reads, lag per partition
//! and checkpoints appear, no script error; screenshots are saved under
//! `tests/browser/out/`.
//!
//! Needs `/usr/bin/chromium` and `npm ci` in `tests/browser` (`.ci/run`
//! does both); outside CI the test is skipped without them.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use shoal_tests::http::{Run, get_json, poll, request};
use shoal_tests::{repo_root, workdir};

/// Chromium and the test's node modules, or `None` (skipped) outside CI.
fn browser() -> Option<PathBuf> {
    let script = repo_root().join("tests/browser/dashboard.mjs");
    let modules = repo_root().join("tests/browser/node_modules/playwright-core");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if PathBuf::from(&chromium).exists() && modules.exists() {
        return Some(script);
    }
    let what = format!(
        "{chromium} and {} (apt-get install chromium; npm ci --prefix tests/browser)",
        modules.display()
    );
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but the browser test lacks {what}: `.ci/run` installs them"
    );
    eprintln!("\n*** SKIPPED: the dashboard browser test needs {what} ***\n");
    None
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_dashboard_shows_the_fraud_job_live_in_chromium() {
    let Some(script) = browser() else { return };
    let dir = workdir();
    let d = dir.path();
    // The example fraud pipeline, fed at 2 000 transactions a second for
    // longer than the test runs (it never ends by itself).
    let yaml = std::fs::read_to_string(d.join("pipelines/fraud-detection.yaml"))
        .unwrap()
        .replace(
            "    count: 200000\n",
            "    count: 100000000\n    rate: 2000\n    batch_size: 500\n",
        )
        .replace(
            "    stop_at_end: true            # stop once the generator's records are all read\n",
            "",
        );
    assert!(yaml.contains("rate: 2000") && !yaml.contains("stop_at_end"));
    std::fs::write(d.join("pipelines/fraud-live.yaml"), yaml).unwrap();
    let run = Run::start(
        d,
        &[
            "--no-progress",
            "--http-addr",
            "127.0.0.1:0",
            "pipelines/fraud-live.yaml",
        ],
    );
    let addr = run.addr.clone();
    // Wait until there is something to see: both members own partitions,
    // checkpoints complete.
    poll(&addr, "/api/v1/job/partitions", "8 partitions", |v| {
        v["sources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["node"] == "txns" && s["partitions"].as_array().unwrap().len() == 8)
    });
    poll(&addr, "/api/v1/job", "2 checkpoints", |v| {
        v["checkpoints_completed"].as_u64().unwrap() >= 2
    });
    let graph = get_json(&addr, "/api/v1/job/graph");
    let nodes: BTreeSet<String> = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    let edges: BTreeSet<String> = graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}->{}",
                e["from"].as_str().unwrap(),
                e["to"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(nodes.len(), 8, "{graph}");

    let out_dir = repo_root().join("tests/browser/out");
    let out = Command::new("node")
        .arg(&script)
        .arg(format!("http://{addr}/"))
        .arg(&out_dir)
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "the browser script failed ({:?}):\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let (first, second) = (&report["first"], &report["second"]);
    assert_eq!(report["errors"], serde_json::json!([]), "script errors");

    // The graph shows every node and edge of the pipeline.
    for read in [first, second] {
        let shown: BTreeSet<String> = strings(&read["graphNodes"]).into_iter().collect();
        assert_eq!(shown, nodes);
        let shown: BTreeSet<String> = strings(&read["graphEdges"]).into_iter().collect();
        assert_eq!(shown, edges);
        assert_eq!(read["pipeline"], "fraud-detection");
        assert_eq!(read["state"], "running");
    }
    // Live: more refreshes, and the record counts moved between the reads.
    assert!(second["refreshes"].as_u64() >= first["refreshes"].as_u64().map(|n| n + 3));
    assert_ne!(first["sourceRecords"], second["sourceRecords"], "{report}");
    assert_ne!(first["nodeRates"], second["nodeRates"], "{report}");
    // Keyed state on the stateful nodes: entries and how they are split.
    let state = &second["nodeState"];
    assert_eq!(state.as_object().unwrap().len(), 2, "{state}");
    let card = state["card_features"].as_str().unwrap();
    assert!(card.ends_with("in state · per partition"), "{card}");
    assert!(!card.starts_with("0 "), "card_features holds state: {card}");
    let country = state["country_features"].as_str().unwrap();
    assert!(country.ends_with("in state · per instance"), "{country}");
    // The API has each stateful node's checkpointed state size.
    let job = get_json(&addr, "/api/v1/job");
    let bytes = |id: &str| {
        job["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .unwrap()["state_bytes"]
            .as_u64()
            .unwrap()
    };
    assert!(bytes("card_features") > 1000, "{job}");
    assert_eq!(bytes("scored"), 0, "stateless");
    // Lag: one row per partition of the log source `txns`.
    let mut parts: Vec<String> = second["lagRows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["partition"].as_str().unwrap().to_string())
        .collect();
    parts.sort();
    assert_eq!(
        parts,
        (0..8).map(|p| format!("txns/{p}")).collect::<Vec<_>>()
    );
    // Checkpoints: bars for the completed ones, newer ones in the second read.
    let ids = |r: &Value| -> Vec<u64> {
        r["checkpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .collect()
    };
    assert!(ids(first).len() >= 2, "{report}");
    assert!(ids(second).last() > ids(first).last(), "{report}");
    assert!(
        second["checkpointNote"]
            .as_str()
            .unwrap()
            .contains("completed"),
        "{report}"
    );
    // A throughput sparkline per source and sink.
    let sparks: BTreeSet<String> = strings(&second["sparklines"]).into_iter().collect();
    let expected: BTreeSet<String> = ["seed_txns", "txns", "to_log", "alerts"]
        .map(String::from)
        .into_iter()
        .collect();
    assert_eq!(sparks, expected);
    let shot = PathBuf::from(report["screenshot"].as_str().unwrap());
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 20_000,
        "screenshot {} is {size} bytes",
        shot.display()
    );
    eprintln!("dashboard screenshot: {}", shot.display());

    // Stop it over the API: a clean end.
    let (code, body) = request(&addr, "POST", "/api/v1/job/stop", None);
    assert_eq!(code, 202, "{body}");
    let (code, _, stderr) = run.finish();
    assert_eq!(code, Some(0), "{stderr}");
}
