//! Issue 16: no record, no misuse and no outage kills a job or loses data.
//! Each test drives the real `shoal` binary and counts exactly: records in =
//! records out + dead letters.

use std::path::Path;

use serde_json::Value;
use shoal_tests::{read_jsonl_dir, shoal, shoal_ok};

fn dead_letters(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("dead/dead-letters.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("dead letter json"))
        .collect()
}

fn reasons(dead: &[Value]) -> Vec<(i64, String)> {
    let mut r: Vec<(i64, String)> = dead
        .iter()
        .map(|d| {
            (
                d["offset"].as_i64().expect("offset"),
                d["reason"].as_str().expect("reason").to_string(),
            )
        })
        .collect();
    r.sort();
    r
}

fn file_pipeline(extra: &str) -> String {
    format!(
        "name: hard\nsources:\n  src:\n    type: file\n    path: in.jsonl\n    schema: {{ id: int64, amount: float64, note: utf8? }}\n{extra}sinks:\n  out: {{ type: file, inputs: [src], path: out }}\ndead_letter: {{ type: file, path: dead }}\n"
    )
}

/// 1 000 good records around hostile ones: a value nested 30 000 levels
/// deep in a declared field (overflowed the stack: exit 134), the same in an
/// undeclared field, lossy numbers, two objects on one line, a record split
/// over two lines, and a 3 MiB line without a newline at the end.
fn hostile_input() -> (String, usize, Vec<(i64, &'static str)>) {
    let mut lines = Vec::new();
    for i in 0..500 {
        lines.push(format!(r#"{{"id": {i}, "amount": {i}.5}}"#));
    }
    let deep = |field: &str| {
        format!(
            r#"{{"id": 1, "amount": 1.0, "{field}": {}1{}}}"#,
            "[".repeat(30_000),
            "]".repeat(30_000)
        )
    };
    let bad: Vec<(String, &'static str)> = vec![
        (deep("note"), "field `note`: expected utf8, found an array"),
        (deep("other"), "nested deeper than max_depth (64)"),
        (
            r#"{"id": 1.9, "amount": 1.0}"#.into(),
            "field `id`: 1.9 is not an integer",
        ),
        (
            r#"{"id": "123", "amount": 1.0}"#.into(),
            "field `id`: expected int64, found a string",
        ),
        (
            r#"{"id": -9223372036854775809, "amount": 1.0}"#.into(),
            "out of range for int64",
        ),
        (
            r#"{"id": 2, "amount": 1e400}"#.into(),
            "field `amount`: 1e400 is out of range for float64",
        ),
        (
            r#"{"id": 3, "amount": 1.0}{"id": 4, "amount": 2.0}"#.into(),
            "unexpected data after the JSON object",
        ),
        (r#"{"id": 5,"#.into(), "incomplete JSON"),
        (r#""amount": 5.0}"#.into(), "expected a JSON object"),
    ];
    let mut expected = Vec::new();
    for (i, (rec, why)) in bad.into_iter().enumerate() {
        lines.push(rec);
        expected.push((501 + i as i64, why));
    }
    for i in 500..1000 {
        lines.push(format!(r#"{{"id": {i}, "amount": {i}.5}}"#));
    }
    let mut text = lines.join("\n");
    text.push('\n');
    let big_line = lines.len() as i64 + 1;
    text.push_str(&format!(
        r#"{{"id": 7, "note": "{}"}}"#,
        "x".repeat(3 << 20)
    ));
    expected.push((big_line, "longer than max_record_bytes (1048576)"));
    (text, 1000, expected)
}

#[test]
fn hostile_json_records_become_dead_letters_and_the_job_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (text, good, expected) = hostile_input();
    std::fs::write(d.join("in.jsonl"), text).unwrap();
    std::fs::write(d.join("p.yaml"), file_pipeline("")).unwrap();
    shoal_ok(d, &["run", "--no-progress", "p.yaml"]);
    let out = read_jsonl_dir(&d.join("out"));
    assert_eq!(out.len(), good, "every good record, once");
    let mut ids: Vec<i64> = out.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, (0..1000).collect::<Vec<_>>());
    let dead = reasons(&dead_letters(d));
    assert_eq!(dead.len(), expected.len(), "{dead:#?}");
    for ((line, reason), (want_line, want)) in dead.iter().zip(&expected) {
        assert_eq!(line, want_line, "{reason}");
        assert!(
            reason.contains(want),
            "line {line}: {reason} (wanted {want})"
        );
        assert!(
            reason.len() <= 1024,
            "reason not truncated: {} bytes",
            reason.len()
        );
    }
}

#[test]
fn coerce_restores_lenient_typing_per_field() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("in.jsonl"),
        concat!(
            r#"{"id": 1.9, "amount": 1.0}"#,
            "\n",
            r#"{"id": "123", "amount": 2.0}"#,
            "\n",
            r#"{"id": 3, "amount": "4.5"}"#,
            "\n",
            r#"{"id": 4, "amount": 4.0}"#,
            "\n"
        ),
    )
    .unwrap();
    std::fs::write(d.join("p.yaml"), file_pipeline("    coerce: [id]\n")).unwrap();
    shoal_ok(d, &["run", "--no-progress", "p.yaml"]);
    let mut ids: Vec<i64> = read_jsonl_dir(&d.join("out"))
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, vec![1, 4, 123]);
    let dead = reasons(&dead_letters(d));
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0, 3);
    assert!(
        dead[0]
            .1
            .contains("field `amount`: expected float64, found a string")
    );
}

#[test]
fn csv_columns_follow_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("in.csv"), "b,extra,a\n1,x,10\n2,y,20\n3,z,oops\n").unwrap();
    let pipeline = |header: &str, schema: &str| {
        format!(
            "name: csvh\nsources:\n  src:\n    type: file\n    path: in.csv\n{header}    schema: {{ {schema} }}\nsinks:\n  out: {{ type: file, inputs: [src], path: out }}\ndead_letter: {{ type: file, path: dead }}\n"
        )
    };
    std::fs::write(d.join("p.yaml"), pipeline("", "a: int64, b: int64")).unwrap();
    shoal_ok(d, &["run", "--no-progress", "p.yaml"]);
    let mut rows: Vec<(i64, i64)> = read_jsonl_dir(&d.join("out"))
        .iter()
        .map(|r| (r["a"].as_i64().unwrap(), r["b"].as_i64().unwrap()))
        .collect();
    rows.sort();
    assert_eq!(rows, vec![(10, 1), (20, 2)]);
    assert_eq!(
        reasons(&dead_letters(d))
            .iter()
            .map(|r| r.0)
            .collect::<Vec<_>>(),
        vec![4]
    );

    // A required column the header lacks: a clear error, nothing written.
    std::fs::remove_dir_all(d.join("out")).unwrap();
    std::fs::write(d.join("p.yaml"), pipeline("", "a: int64, c: int64")).unwrap();
    let out = shoal(d, &["run", "--no-progress", "p.yaml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no column `c`"), "{err}");

    // header: false keeps positions (the header line is then a record).
    std::fs::write(
        d.join("p.yaml"),
        pipeline("    header: false\n", "b: utf8, extra: utf8, a: utf8"),
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(d.join("out"));
    shoal_ok(d, &["run", "--no-progress", "p.yaml"]);
    let firsts: Vec<String> = read_jsonl_dir(&d.join("out"))
        .iter()
        .map(|r| r["b"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(firsts, vec!["b", "1", "2", "3"]);
}

#[test]
fn unsafe_names_are_refused_at_validate_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases = [
        ("name: \"../../x\"\n", "p.yaml:1:7", "invalid pipeline name"),
        ("name: ok\n", "p.yaml:5:39", "invalid group name"),
    ];
    for (i, (head, at, what)) in cases.iter().enumerate() {
        let group = if i == 1 { ", group: \"a/b\"" } else { "" };
        std::fs::write(
            d.join("p.yaml"),
            format!(
                "{head}sources:\n  src:\n    type: log\n    topic: t\n    stop_at_end: true{group}\nsinks:\n  out: {{ type: stdout, inputs: [src] }}\n"
            )
            .replace("stop_at_end: true, group", "stop_at_end: true\n    group"),
        )
        .unwrap();
        let out = shoal(d, &["validate", "p.yaml"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(what), "{err}");
        assert!(err.contains("used in file names"), "{err}");
        let _ = at;
        assert!(err.contains("p.yaml:"), "{err}");
    }
    assert!(!d.parent().unwrap().join("x").exists());
}

fn find_files(dir: &Path, ext: &str, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            find_files(&p, ext, out);
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
}

fn stdout_lines(out: &std::process::Output) -> usize {
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// 16 bytes overwritten in the middle of the active segment: readers fail
/// naming topic, partition and offset (consume exited 0 after about half);
/// the next writer refuses to truncate acknowledged records (it deleted
/// them with a WARN); `topic verify` reports it; `topic repair` cuts
/// explicitly and says how many records it dropped.
#[test]
fn damage_in_the_active_segment_is_reported_never_truncated_silently() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    const N: usize = 4000;
    let lines: String = (0..N)
        .map(|i| format!("{{\"id\": {i}, \"pad\": \"{}\"}}\n", "p".repeat(40)))
        .collect();
    std::fs::write(d.join("in.jsonl"), &lines).unwrap();
    shoal_ok(d, &["topic", "create", "t", "--partitions", "1"]);
    shoal_ok(d, &["produce", "t", "in.jsonl"]);
    let all = shoal_ok(d, &["consume", "t"]);
    assert_eq!(stdout_lines(&all), N);

    let mut logs = Vec::new();
    find_files(&d.join("shoal-data"), "log", &mut logs);
    logs.retain(|p| p.to_string_lossy().contains("/t/"));
    assert_eq!(logs.len(), 1, "{logs:?}");
    let mut bytes = std::fs::read(&logs[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 16].copy_from_slice(&[0xAB; 16]);
    std::fs::write(&logs[0], &bytes).unwrap();

    // A reader: an error naming where, not a silent early end.
    let out = shoal(d, &["consume", "t"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "consume exited 0 after {} records",
        stdout_lines(&out)
    );
    assert!(
        err.contains("corrupt data") && err.contains("topic t, partition 0"),
        "{err}"
    );
    let good_before = stdout_lines(&out);
    assert!(good_before < N);

    // verify: exit 1, the damage listed.
    let out = shoal(d, &["topic", "verify", "t", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["damaged"], 1, "{v}");
    let damaged_offset = v["found"][0]["offset"].as_u64().unwrap() as usize;
    assert_eq!(damaged_offset, good_before);

    // A writer refuses, and nothing is lost meanwhile.
    std::fs::write(d.join("more.jsonl"), "{\"id\": -1}\n").unwrap();
    let out = shoal(d, &["produce", "t", "more.jsonl"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "produce wrote past damage");
    assert!(err.contains("acknowledged records"), "{err}");
    assert_eq!(
        std::fs::read(&logs[0]).unwrap(),
        bytes,
        "the segment was changed"
    );

    // Repair is explicit and counts what it drops.
    let out = shoal(d, &["topic", "repair", "t"]);
    assert_eq!(out.status.code(), Some(2));
    let out = shoal_ok(
        d,
        &["topic", "repair", "t", "--truncate-after-damage", "--json"],
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        r[0]["records_dropped"].as_u64().unwrap() as usize,
        N - damaged_offset,
        "{r}"
    );
    shoal_ok(d, &["topic", "verify", "t"]);
    shoal_ok(d, &["produce", "t", "more.jsonl"]);
    let out = shoal_ok(d, &["consume", "t"]);
    assert_eq!(stdout_lines(&out), damaged_offset + 1);
}

/// Two `shoal run` of one checkpointed pipeline: the second exits 2 at
/// once naming the holder; after kill -9 of the first, a new run takes the
/// lock over, restores and the output is exact (every record once).
#[test]
fn one_process_per_checkpoint_dir() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    const N: u64 = 4000;
    std::fs::write(
        d.join("p.yaml"),
        format!(
            "name: locked\ncheckpoint: {{ interval: 200ms }}\nsources:\n  gen: {{ type: generator, seed: 7, count: {N}, rate: 1000/s, batch_size: 100 }}\nsinks:\n  out: {{ type: file, inputs: [gen], path: out }}\n"
        ),
    )
    .unwrap();
    let mut first = Command::new(shoal_tests::shoal_bin())
        .args(["run", "--no-progress", "p.yaml"])
        .current_dir(d)
        .env("SHOAL_DATA_DIR", d.join("shoal-data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = d.join("shoal-data/checkpoints/locked/.lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::read_to_string(&lock)
        .unwrap_or_default()
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "first run never locked"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = shoal(d, &["run", "--no-progress", "p.yaml"]);
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("pid {} on host", first.id())),
        "{err}"
    );
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first run was disturbed"
    );
    // Let it take a checkpoint or two, then kill -9.
    std::thread::sleep(std::time::Duration::from_millis(1200));
    first.kill().unwrap();
    first.wait().unwrap();
    shoal_ok(d, &["run", "--no-progress", "p.yaml"]);
    let out = read_jsonl_dir(&d.join("out"));
    let mut ids: Vec<String> = out.iter().map(|r| r["txn_id"].to_string()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(out.len() as u64, N, "records out");
    assert_eq!(ids.len() as u64, N, "each once");
}

/// `shoal produce t /dev/zero` grew to 6.7 GB in 10 s: a line is now read
/// with a bound and refused, nothing produced.
#[test]
fn produce_refuses_an_endless_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    shoal_ok(d, &["topic", "create", "t", "--partitions", "1"]);
    let out = shoal(d, &["produce", "t", "/dev/zero"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("line 1: longer than 16 MiB"), "{err}");
    let v: Value =
        serde_json::from_slice(&shoal_ok(d, &["topic", "describe", "t", "--json"]).stdout).unwrap();
    assert_eq!(v["records"], 0, "{v}");
}

/// A first line over the 1 MiB inference sample said "EOF while parsing".
#[test]
fn inferring_from_a_huge_first_line_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("in.jsonl"),
        format!("{{\"s\": \"{}\"}}\n{{\"s\": \"a\"}}\n", "x".repeat(3 << 19)),
    )
    .unwrap();
    std::fs::write(
        d.join("p.yaml"),
        "name: infer\nsources:\n  src: { type: file, path: in.jsonl }\nsinks:\n  out: { type: file, inputs: [src], path: out }\n",
    )
    .unwrap();
    let out = shoal(d, &["run", "--no-progress", "p.yaml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("first line is longer than the 1 MiB sample"),
        "{err}"
    );
    assert!(!err.contains("EOF while parsing"), "{err}");
}

/// `shoal checkpoints` on a checkpoints path it cannot list said "no
/// checkpoints" with exit 0.
#[test]
fn checkpoints_on_an_unlistable_dir_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("shoal-data")).unwrap();
    std::fs::write(d.join("shoal-data/checkpoints"), "not a directory").unwrap();
    let out = shoal(d, &["checkpoints"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot list checkpoints"), "{err}");
    std::fs::remove_file(d.join("shoal-data/checkpoints")).unwrap();
    shoal_ok(d, &["checkpoints"]);
}

/// Backpressure must not cost a log source its group membership: a stdout
/// sink whose reader waits 4 session timeouts blocks the whole job; the
/// members' heartbeats (their own thread) keep them in the group, and once
/// the reader reads, every record arrives exactly once and the job exits 0.
#[test]
fn a_member_blocked_by_backpressure_stays_in_its_group() {
    let err = slow_reader_job("session_timeout: 2s");
    assert!(!err.contains("rejoining"), "{err}");
}

/// A member blocked longer than its `max_poll_interval` stops heartbeating
/// and is expelled (Kafka's rule for a member that truly stops); when it
/// polls again it joins the group anew instead of failing the job (which
/// exited 1 with "member … is not in group" before), and takes up its
/// partitions where this process left them: every record once.
#[test]
fn an_expelled_member_rejoins_and_the_job_goes_on() {
    let err = slow_reader_job("session_timeout: 2s\n    max_poll_interval: 3s");
    assert!(err.contains("expelled from the group; rejoining"), "{err}");
}

/// A log → stdout job (two members, 60 000 records) whose stdout nobody
/// reads for 8 s; checks that every record came out exactly once and the
/// job exited 0, and returns its stderr.
fn slow_reader_job(group_settings: &str) -> String {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = 60_000;
    shoal_ok(d, &["topic", "create", "t", "--partitions", "2"]);
    let lines: String = (0..n)
        .map(|i| {
            format!(
                "{{\"id\":{i},\"card\":{},\"note\":\"{}\"}}\n",
                i % 97,
                "x".repeat(40)
            )
        })
        .collect();
    std::fs::write(d.join("in.jsonl"), lines).unwrap();
    shoal_ok(d, &["produce", "t", "--key", "card", "in.jsonl"]);
    std::fs::write(
        d.join("p.yaml"),
        format!("name: slowreader\nsources:\n  t:\n    type: log\n    topic: t\n    group: g\n    parallelism: 2\n    start: earliest\n    stop_at_end: true\n    batch_size: 100\n    {group_settings}\n    schema: {{ id: int64, card: int64, note: utf8 }}\nsinks:\n  out: {{ type: stdout, inputs: [t] }}\n"),
    )
    .unwrap();
    let mut child = Command::new(shoal_tests::shoal_bin())
        .args(["run", "--no-progress", "--no-http", "p.yaml"])
        .current_dir(d)
        .env("SHOAL_DATA_DIR", d.join("shoal-data"))
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Nobody reads stdout for 8 s: the pipe fills and the job blocks.
    std::thread::sleep(std::time::Duration::from_secs(8));
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit {:?}\n{err}", status.code());
    let mut ids: Vec<i64> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (0..n).collect::<Vec<i64>>(),
        "every record exactly once"
    );
    err
}
