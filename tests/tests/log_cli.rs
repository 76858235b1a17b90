//! The embedded log from the command line, through the real binary:
//! `shoal topic …`, `shoal produce`, `shoal consume`, `shoal group …`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use shoal_tests::{shoal, shoal_bin, shoal_ok, workdir};

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(cwd: &Path, args: &[&str]) -> Value {
    let out = shoal_ok(cwd, args);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("shoal {args:?}: not JSON ({e}):\n{}", stdout(&out)))
}

/// Every stdout line parsed as JSON.
fn lines(out: &Output) -> Vec<Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

/// The `i` field of every record printed by a plain `consume`.
fn ids(out: &Output) -> Vec<u64> {
    lines(out)
        .iter()
        .map(|v| v["i"].as_u64().expect("i"))
        .collect()
}

#[test]
fn every_log_command_has_examples_in_its_help() {
    let dir = workdir();
    for cmd in [
        "topic",
        "topic create",
        "topic list",
        "topic describe",
        "topic delete",
        "produce",
        "consume",
        "group",
        "group list",
        "group describe",
    ] {
        let mut args: Vec<&str> = cmd.split(' ').collect();
        args.push("--help");
        let out = shoal_ok(dir.path(), &args);
        assert!(
            stdout(&out).contains("Examples:\n  shoal "),
            "`shoal {cmd} --help` has no examples:\n{}",
            stdout(&out)
        );
    }
}

#[test]
fn topic_create_list_describe_delete() {
    let dir = workdir();
    let cwd = dir.path();
    assert_eq!(
        json(cwd, &["topic", "list", "--json"]),
        Value::Array(vec![])
    );

    let out = shoal_ok(cwd, &["topic", "create", "alpha"]);
    assert!(stdout(&out).contains("created topic alpha with 1 partitions"));
    shoal_ok(cwd, &["topic", "create", "beta", "--partitions", "4"]);
    assert!(cwd.join("shoal-data/log/topics/beta/topic.json").exists());

    // Same count again: fine, and said so.
    let again = json(
        cwd,
        &["topic", "create", "beta", "--partitions", "4", "--json"],
    );
    assert_eq!(again["created"], false);
    assert_eq!(again["partitions"], 4);

    // Another count: an error naming both counts.
    let out = shoal(cwd, &["topic", "create", "beta", "--partitions", "2"]);
    assert_eq!(code(&out), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("already exists with 4 partitions (asked for 2)"),
        "{}",
        stderr(&out)
    );

    // Bad names and counts are bad input.
    let out = shoal(cwd, &["topic", "create", "no/slash"]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    let out = shoal(cwd, &["topic", "create", "gamma", "--partitions", "0"]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));

    let table = stdout(&shoal_ok(cwd, &["topic", "list"]));
    assert!(table.starts_with("TOPIC  PARTITIONS\n"), "{table}");
    assert!(table.contains("alpha") && table.contains("beta"), "{table}");
    let list = json(cwd, &["topic", "list", "--json"]);
    assert_eq!(
        list,
        serde_json::json!([
            {"name": "alpha", "partitions": 1},
            {"name": "beta", "partitions": 4}
        ])
    );

    let d = json(cwd, &["topic", "describe", "beta", "--json"]);
    assert_eq!(d["name"], "beta");
    assert_eq!(d["records"], 0);
    let parts = d["partitions"].as_array().expect("partitions");
    assert_eq!(parts.len(), 4);
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(p["partition"], i);
        assert_eq!(p["start_offset"], 0);
        assert_eq!(p["end_offset"], 0);
    }
    let table = stdout(&shoal_ok(cwd, &["topic", "describe", "beta"]));
    assert!(
        table.contains("PARTITION  START  END  RECORDS  SEGMENTS  BYTES"),
        "{table}"
    );

    let out = shoal_ok(cwd, &["topic", "delete", "alpha"]);
    assert!(stdout(&out).contains("deleted topic alpha"));
    let list = json(cwd, &["topic", "list", "--json"]);
    assert_eq!(list, serde_json::json!([{"name": "beta", "partitions": 4}]));

    for args in [
        &["topic", "describe", "alpha"][..],
        &["topic", "delete", "alpha"][..],
    ] {
        let out = shoal(cwd, args);
        assert_eq!(code(&out), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("topic \"alpha\" does not exist"));
    }
}

#[test]
fn produce_consume_and_group_lag() {
    let dir = workdir();
    let cwd = dir.path();
    shoal_ok(cwd, &["topic", "create", "txns", "--partitions", "8"]);

    let mut input = String::new();
    for i in 0..1000 {
        input.push_str(&format!(
            "{{\"i\":{i},\"card\":\"card-{}\",\"amount\":{}.5}}\n",
            i % 37,
            i % 100
        ));
    }
    std::fs::write(cwd.join("txns.jsonl"), &input).unwrap();
    let out = shoal_ok(cwd, &["produce", "txns", "--key", "card", "txns.jsonl"]);
    assert!(
        stderr(&out).contains("produced 1000 records to txns"),
        "{}",
        stderr(&out)
    );

    // 1000 records, spread over the partitions.
    let d = json(cwd, &["topic", "describe", "txns", "--json"]);
    assert_eq!(d["records"], 1000);
    let per_partition: Vec<u64> = d["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["records"].as_u64().unwrap())
        .collect();
    assert_eq!(per_partition.iter().sum::<u64>(), 1000);
    assert!(
        per_partition.iter().filter(|&&n| n > 0).count() >= 4,
        "37 keys over 8 partitions: {per_partition:?}"
    );

    // Same key, same partition; per partition in offset order; values intact.
    let out = shoal_ok(cwd, &["consume", "txns", "--json"]);
    let envelopes = lines(&out);
    assert_eq!(envelopes.len(), 1000);
    let mut key_partition: BTreeMap<String, u64> = BTreeMap::new();
    let mut last: Option<(u64, u64)> = None;
    let mut counted = vec![0u64; 8];
    for e in &envelopes {
        let key = e["key"].as_str().expect("key").to_owned();
        let partition = e["partition"].as_u64().unwrap();
        let offset = e["offset"].as_u64().unwrap();
        assert_eq!(e["topic"], "txns");
        assert_eq!(e["value"]["card"].as_str(), Some(key.as_str()));
        assert!(e["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
        let seen = *key_partition.entry(key.clone()).or_insert(partition);
        assert_eq!(seen, partition, "key {key} in two partitions");
        if let Some(prev) = last {
            assert!(
                (partition, offset) > prev,
                "{prev:?} then {partition}/{offset}"
            );
        }
        last = Some((partition, offset));
        counted[partition as usize] += 1;
    }
    assert_eq!(key_partition.len(), 37);
    assert_eq!(counted, per_partition);

    // Without a group: every value, as produced.
    let out = shoal_ok(cwd, &["consume", "txns"]);
    let all = ids(&out);
    assert_eq!(all.len(), 1000);
    assert_eq!(all.iter().copied().collect::<BTreeSet<_>>().len(), 1000);
    let first_line = stdout(&out).lines().next().unwrap().to_owned();
    assert!(
        input.lines().any(|l| l == first_line),
        "value bytes changed: {first_line}"
    );
    // ... and --max without a group.
    let out = shoal_ok(cwd, &["consume", "txns", "--max", "5"]);
    assert_eq!(ids(&out), all[..5]);

    // A group reads 300, commits, leaves: lag 700.
    let out = shoal_ok(cwd, &["consume", "txns", "--group", "g", "--max", "300"]);
    let first = ids(&out);
    assert_eq!(first.len(), 300);
    let g = json(cwd, &["group", "describe", "g", "--json"]);
    assert_eq!(g["group"], "g");
    assert_eq!(g["total_lag"], 700, "{g:#}");
    assert_eq!(g["members"], Value::Array(vec![]), "the consumer left");
    let parts = g["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 8);
    let committed: u64 = parts
        .iter()
        .map(|p| p["committed"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(committed, 300);
    assert!(parts.iter().any(|p| p["committed"].is_u64()));
    for p in parts {
        let end = p["log_end"].as_u64().unwrap();
        let from = p["committed"].as_u64().unwrap_or(0);
        assert_eq!(p["lag"].as_u64().unwrap(), end - from, "{p}");
    }
    let table = stdout(&shoal_ok(cwd, &["group", "describe", "g"]));
    assert!(table.contains("total lag 700"), "{table}");
    assert!(table.contains("COMMITTED"), "{table}");

    // The same group again: the other 700, then no lag.
    let out = shoal_ok(cwd, &["consume", "txns", "--group", "g"]);
    let rest = ids(&out);
    assert_eq!(rest.len(), 700);
    let union: BTreeSet<u64> = first.iter().chain(&rest).copied().collect();
    assert_eq!(union.len(), 1000, "no record twice, none missing");
    let g = json(cwd, &["group", "describe", "g", "--json"]);
    assert_eq!(g["total_lag"], 0, "{g:#}");
    for p in g["partitions"].as_array().unwrap() {
        assert_eq!(p["committed"], p["log_end"], "{p}");
    }
    // Nothing left for the group; everything again with --from-beginning.
    let out = shoal_ok(cwd, &["consume", "txns", "--group", "g"]);
    assert_eq!(stdout(&out), "");
    let out = shoal_ok(
        cwd,
        &[
            "consume",
            "txns",
            "--group",
            "g",
            "--from-beginning",
            "--max",
            "10",
        ],
    );
    assert_eq!(ids(&out).len(), 10);

    let list = json(cwd, &["group", "list", "--json"]);
    assert_eq!(list[0]["group"], "g");
    assert_eq!(list[0]["members"], 0);
    let table = stdout(&shoal_ok(cwd, &["group", "list"]));
    assert!(table.starts_with("GROUP "), "{table}");

    let out = shoal(cwd, &["group", "describe", "nope"]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
}

#[test]
fn produce_reads_stdin() {
    let dir = workdir();
    let cwd = dir.path();
    shoal_ok(cwd, &["topic", "create", "events", "--partitions", "2"]);
    let mut child = Command::new(shoal_bin())
        .args(["produce", "events", "--key", "user", "--json"])
        .current_dir(cwd)
        .env("SHOAL_DATA_DIR", cwd.join("shoal-data"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"user\":7,\"n\":1}\n\n{\"user\":7,\"n\":2}\r\n{\"user\":7,\"n\":3}")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["records"], 3);
    // One numeric key: all three in one partition, in order.
    let counts = summary["partitions"].as_array().unwrap();
    assert!(counts.contains(&Value::from(3)), "{summary}");
    let out = shoal_ok(cwd, &["consume", "events"]);
    assert_eq!(
        stdout(&out),
        "{\"user\":7,\"n\":1}\n{\"user\":7,\"n\":2}\n{\"user\":7,\"n\":3}\n"
    );
}

#[test]
fn produce_bad_line_exits_2_naming_it() {
    let dir = workdir();
    let cwd = dir.path();
    shoal_ok(cwd, &["topic", "create", "t", "--partitions", "3"]);
    std::fs::write(
        cwd.join("bad.jsonl"),
        "{\"k\":\"a\"}\n{\"k\":\"b\"}\n\n{\"k\": oops}\n{\"k\":\"c\"}\n",
    )
    .unwrap();
    let out = shoal(cwd, &["produce", "t", "--key", "k", "bad.jsonl"]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("bad.jsonl, line 4: not valid JSON"), "{err}");
    assert!(err.contains("2 records"), "{err}");
    let d = json(cwd, &["topic", "describe", "t", "--json"]);
    assert_eq!(
        d["records"], 2,
        "the lines before the bad one were produced"
    );

    for (content, expected) in [
        ("[1,2]\n", "line 1: expected a JSON object, got an array"),
        (
            "{\"k\":\"x\"}\n\"s\"\n",
            "line 2: expected a JSON object, got a string",
        ),
        ("{\"j\":1}\n", "line 1: no key field \"k\""),
        ("{\"k\":null}\n", "line 1: key field \"k\" is null"),
    ] {
        std::fs::write(cwd.join("bad.jsonl"), content).unwrap();
        let out = shoal(cwd, &["produce", "t", "--key", "k", "bad.jsonl"]);
        assert_eq!(code(&out), Some(2), "{content:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(expected),
            "{content:?}: {}",
            stderr(&out)
        );
    }

    // A missing topic is not created: exit 2 with the command to create it.
    std::fs::write(cwd.join("good.jsonl"), "{\"k\":\"a\"}\n").unwrap();
    let out = shoal(cwd, &["produce", "missing", "good.jsonl"]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("shoal topic create missing --partitions N"),
        "{}",
        stderr(&out)
    );
    assert!(!cwd.join("shoal-data/log/topics/missing").exists());

    // A missing file is bad input too.
    let out = shoal(cwd, &["produce", "t", "nope.jsonl"]);
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
}

#[test]
fn consume_missing_topic_exits_2() {
    let dir = workdir();
    let cwd = dir.path();
    for args in [
        &["consume", "missing"][..],
        &["consume", "missing", "--group", "g"][..],
    ] {
        let out = shoal(cwd, args);
        assert_eq!(code(&out), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("topic \"missing\" does not exist"),
            "{}",
            stderr(&out)
        );
        assert_eq!(stdout(&out), "");
    }
}
