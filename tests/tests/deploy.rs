//! The deployment recipes in `deploy/` (not run on a cluster here): the
//! Kubernetes manifests parse, and hold what the README promises — SIGTERM
//! with a grace period, liveness on `/healthz` and readiness on `/readyz` at
//! the port `--http-addr` serves, a token for the API beyond loopback; the
//! systemd unit stops with SIGTERM and does not restart on bad input; and
//! every flag they pass exists in `shoal run --help`.

use serde_yaml::Value;
use shoal_tests::{repo_root, shoal_ok, workdir};

fn run_help() -> String {
    let dir = workdir();
    String::from_utf8(shoal_ok(dir.path(), &["run", "--help"]).stdout).unwrap()
}

fn flags_exist(args: &[String], help: &str) {
    for a in args.iter().filter(|a| a.starts_with("--")) {
        let flag = a.split('=').next().unwrap();
        assert!(
            help.contains(flag),
            "{flag} is not a flag of shoal run:\n{help}"
        );
    }
}

#[test]
fn kubernetes_manifests_hold_what_the_readme_promises() {
    let text = std::fs::read_to_string(repo_root().join("deploy/kubernetes/fraud-detection.yaml"))
        .unwrap();
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML"))
        .collect();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["ConfigMap", "Secret", "Deployment", "PersistentVolumeClaim"]
    );
    let deployment = &docs[2];
    assert_eq!(deployment["apiVersion"], "apps/v1");
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    let pod = &deployment["spec"]["template"];
    assert_eq!(
        &pod["metadata"]["labels"], selector,
        "the selector matches the pods"
    );
    let spec = &pod["spec"];
    assert!(
        spec["terminationGracePeriodSeconds"].as_u64().unwrap() >= 30,
        "a grace period for the final checkpoint"
    );
    let c = &spec["containers"][0];
    let args: Vec<String> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(args[0], "run");
    let http = args
        .iter()
        .find_map(|a| a.strip_prefix("--http-addr="))
        .expect("--http-addr");
    let port: u64 = http.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(c["ports"][0]["containerPort"].as_u64(), Some(port));
    assert_eq!(c["ports"][0]["name"], "http");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "http");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "http");
    // Beyond loopback shoal refuses to start without a token.
    assert!(!http.starts_with("127."));
    let token = c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "SHOAL_HTTP_TOKEN")
        .expect("SHOAL_HTTP_TOKEN");
    let secret = &token["valueFrom"]["secretKeyRef"];
    assert_eq!(secret["name"], docs[1]["metadata"]["name"]);
    assert!(docs[1]["stringData"][secret["key"].as_str().unwrap()].is_string());
    // Every mounted volume is declared.
    let volumes: Vec<&str> = spec["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    for m in c["volumeMounts"].as_sequence().unwrap() {
        assert!(volumes.contains(&m["name"].as_str().unwrap()), "{m:?}");
    }
    flags_exist(&args, &run_help());
}

#[test]
fn the_systemd_unit_stops_with_sigterm() {
    let text =
        std::fs::read_to_string(repo_root().join("deploy/systemd/shoal-fraud.service")).unwrap();
    let get = |key: &str| -> &str {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("{key}= missing"))
    };
    assert_eq!(get("KillSignal"), "SIGTERM");
    assert!(get("TimeoutStopSec").parse::<u64>().unwrap() >= 30);
    assert_eq!(
        get("RestartPreventExitStatus"),
        "2",
        "bad input is not retried"
    );
    let exec: Vec<String> = get("ExecStart")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert!(exec[0].ends_with("/shoal") && exec[1] == "run", "{exec:?}");
    flags_exist(&exec, &run_help());
    for section in ["[Unit]", "[Service]", "[Install]"] {
        assert!(text.contains(section), "{section}");
    }
}
