//! The streaming-SQL oracle as data: every folder of `tests/sql-cases/`
//! is a case — input JSON lines, `pipeline.yaml` (file sources with
//! `event_time`, `sql`/`dedup` transforms, a file sink to `out/rows`, dead
//! letters to `out/dead`), the equivalent batch query for DuckDB
//! (`query.duckdb.sql`) and DuckDB's answer (`expected.jsonl`, written by
//! `scripts/bless_sql_cases.py`). This test needs no Python: it reads the
//! committed expected rows.
//!
//! Each case runs through the real `shoal` binary twice:
//!
//! 1. **straight** — the pipeline as written;
//! 2. **restored** — each file source becomes a one-partition log topic
//!    holding the same lines (`shoal produce`), read with `stop_at_end`
//!    and a `rate` that spreads the input over about a second, with
//!    checkpoints every 100 ms; the process aborts right after the 2nd
//!    checkpoint that brought rows to the sink (the runtime's test hook
//!    `SHOAL_TEST_ABORT_AFTER_MANIFEST`), the test checks that checkpoint
//!    is mid-stream (not the final one, source positions short of the
//!    end), and a second `shoal run` restores it — OVER frames, window
//!    panes, sessions, join buffers and dedup keys — and finishes.
//!
//! Both outputs must equal `expected.jsonl` as multisets of rows (a
//! missing field is NULL; integers exactly; floats within 1e-9 relative),
//! with no dead letters. Cases are run `SHOAL_SQL_CASES_JOBS` (default 3)
//! at a time; `SHOAL_SQL_CASE=name,…` runs only cases whose names contain
//! one of the words; `SHOAL_SQL_CASES_DIR` points at another folder (for
//! example `tests/sql-cases-failing`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use serde_yaml::Value as Yaml;
use shoal_tests::{read_jsonl_dir, repo_root, shoal, shoal_bin, shoal_ok};

/// The checkpoint (counting those that brought rows to the sink) after
/// which the restored run aborts.
const ABORT_AFTER: u64 = 2;
/// About how long the rate-limited restored run reads its input.
const SPREAD: Duration = Duration::from_millis(1_200);

fn cases_dir() -> PathBuf {
    std::env::var_os("SHOAL_SQL_CASES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("tests/sql-cases"))
}

fn cases() -> Vec<PathBuf> {
    let filter: Vec<String> = std::env::var("SHOAL_SQL_CASE")
        .map(|s| s.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("read the cases folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("pipeline.yaml").exists())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()))
        })
        .collect();
    cases.sort();
    cases
}

/// Copies the case's pipeline and inputs into a fresh directory.
fn stage(case: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(case).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name == "pipeline.yaml" || (name.ends_with(".jsonl") && name != "expected.jsonl") {
            std::fs::copy(&p, dir.path().join(&name)).unwrap();
        }
    }
    dir
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display())))
        .collect()
}

/// The sink's rows and the dead letters of a finished run in `dir`.
fn outputs(dir: &Path) -> (Vec<Value>, Vec<Value>) {
    let rows = if dir.join("out/rows").exists() {
        read_jsonl_dir(&dir.join("out/rows"))
    } else {
        Vec::new()
    };
    (rows, read_jsonl(&dir.join("out/dead/dead-letters.jsonl")))
}

/// A row without its NULL fields (the file sink leaves them out).
fn normalize(row: &Value) -> BTreeMap<String, Value> {
    row.as_object()
        .unwrap_or_else(|| panic!("not an object: {row}"))
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The fields compared exactly (everything but floats), as a sort key.
fn exact_key(row: &BTreeMap<String, Value>) -> String {
    row.iter()
        .filter(|(_, v)| !v.is_f64())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn same_row(a: &BTreeMap<String, Value>, b: &BTreeMap<String, Value>) -> bool {
    a.len() == b.len()
        && a.iter().all(|(k, va)| {
            b.get(k).is_some_and(|vb| match (va.as_f64(), vb.as_f64()) {
                _ if va == vb => true,
                (Some(x), Some(y)) if va.is_f64() || vb.is_f64() => close(x, y),
                _ => false,
            })
        })
}

fn floats(row: &BTreeMap<String, Value>) -> Vec<f64> {
    row.values().filter_map(Value::as_f64).collect()
}

/// `got` equals `want` as a multiset of rows; otherwise a description of
/// the difference with examples.
fn compare(got: &[Value], want: &[Value]) -> Result<(), String> {
    let group = |rows: &[Value]| {
        let mut m: BTreeMap<String, Vec<BTreeMap<String, Value>>> = BTreeMap::new();
        for r in rows {
            let r = normalize(r);
            m.entry(exact_key(&r)).or_default().push(r);
        }
        for v in m.values_mut() {
            v.sort_by(|a, b| floats(a).partial_cmp(&floats(b)).unwrap());
        }
        m
    };
    let (g, w) = (group(got), group(want));
    let (mut missing, mut extra, mut differ) = (Vec::new(), Vec::new(), Vec::new());
    let empty = Vec::new();
    for key in g
        .keys()
        .chain(w.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (gs, ws) = (g.get(key).unwrap_or(&empty), w.get(key).unwrap_or(&empty));
        for i in 0..gs.len().max(ws.len()) {
            match (gs.get(i), ws.get(i)) {
                (Some(a), Some(b)) if !same_row(a, b) => differ.push((a, b)),
                (Some(a), None) => extra.push(a),
                (None, Some(b)) => missing.push(b),
                _ => {}
            }
        }
    }
    if missing.is_empty() && extra.is_empty() && differ.is_empty() {
        return Ok(());
    }
    let show = |rows: &[&BTreeMap<String, Value>]| {
        rows.iter()
            .take(3)
            .map(|r| serde_json::to_string(r).unwrap())
            .collect::<Vec<_>>()
            .join("\n      ")
    };
    Err(format!(
        "{} rows, {} expected: {} missing, {} unexpected, {} with other float values\n    \
         missing (first 3):\n      {}\n    unexpected (first 3):\n      {}\n    \
         float differences (got, expected):\n      {}",
        got.len(),
        want.len(),
        missing.len(),
        extra.len(),
        differ.len(),
        show(&missing),
        show(&extra),
        differ
            .iter()
            .take(3)
            .map(|(a, b)| format!(
                "{} vs {}",
                serde_json::to_string(a).unwrap(),
                serde_json::to_string(b).unwrap()
            ))
            .collect::<Vec<_>>()
            .join("\n      ")
    ))
}

fn check(what: &str, dir: &Path, want: &[Value]) -> Result<(), String> {
    let (rows, dead) = outputs(dir);
    if !dead.is_empty() {
        return Err(format!(
            "{what}: {} dead letters, e.g. {}",
            dead.len(),
            dead[0]
        ));
    }
    compare(&rows, want).map_err(|e| format!("{what}: {e}"))
}

fn run_straight(case: &Path, want: &[Value]) -> Result<(), String> {
    let dir = stage(case);
    let out = shoal(
        dir.path(),
        &["run", "pipeline.yaml", "--no-progress", "--no-http"],
    );
    if !out.status.success() {
        return Err(format!(
            "straight: shoal run failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    check("straight", dir.path(), want)
}

fn ystr(s: &str) -> Yaml {
    Yaml::String(s.to_string())
}

/// The pipeline with its file sources read from log topics of the same
/// names and checkpoints every 100 ms; produces the topics in `dir`.
fn log_pipeline(dir: &Path) -> (String, String, BTreeMap<String, usize>) {
    let text = std::fs::read_to_string(dir.join("pipeline.yaml")).unwrap();
    let mut spec: Yaml = serde_yaml::from_str(&text).unwrap();
    let name = spec["name"].as_str().unwrap().to_string();
    let mut totals = BTreeMap::new();
    let sources = spec["sources"].as_mapping_mut().unwrap();
    for (id, src) in sources.iter_mut() {
        let id = id.as_str().unwrap();
        let path = src["path"].as_str().unwrap().to_string();
        let lines = std::fs::read_to_string(dir.join(&path))
            .unwrap()
            .lines()
            .count();
        totals.insert(id.to_string(), lines);
        shoal_ok(dir, &["topic", "create", id, "--partitions", "1"]);
        shoal_ok(dir, &["produce", id, &path]);
        let rate = ((lines as f64 / SPREAD.as_secs_f64()).ceil() as u64).max(5);
        let m = src.as_mapping_mut().unwrap();
        for key in ["path", "format", "header"] {
            m.remove(key);
        }
        m.insert(ystr("type"), ystr("log"));
        m.insert(ystr("topic"), ystr(id));
        m.insert(ystr("start"), ystr("committed"));
        m.insert(ystr("stop_at_end"), Yaml::Bool(true));
        m.insert(ystr("rate"), Yaml::Number(rate.into()));
    }
    let mut ck = serde_yaml::Mapping::new();
    ck.insert(ystr("interval"), ystr("100ms"));
    spec.as_mapping_mut()
        .unwrap()
        .insert(ystr("checkpoint"), Yaml::Mapping(ck));
    (name, serde_yaml::to_string(&spec).unwrap(), totals)
}

/// The newest checkpoint manifest of pipeline `name` in `dir`.
fn newest_manifest(dir: &Path, name: &str) -> Value {
    let ckdir = dir.join("shoal-data/checkpoints").join(name);
    let newest = std::fs::read_dir(&ckdir)
        .unwrap_or_else(|e| panic!("{}: {e}", ckdir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("chk-") && n.ends_with(".json")
        })
        .max()
        .expect("a checkpoint manifest");
    serde_json::from_str(&std::fs::read_to_string(newest).unwrap()).unwrap()
}

/// Runs the checkpointed log variant: aborted after checkpoint
/// [`ABORT_AFTER`], then restored and finished. Returns where the
/// restore started (source id → records read before it, and in all).
fn run_restored(case: &Path, want: &[Value]) -> Result<String, String> {
    let dir = stage(case);
    let d = dir.path();
    let (name, yaml, totals) = log_pipeline(d);
    std::fs::write(d.join("ckpt.yaml"), yaml).unwrap();
    let run = |abort: bool| {
        let mut cmd = Command::new(shoal_bin());
        cmd.args(["run", "ckpt.yaml", "--no-progress", "--no-http"])
            .current_dir(d)
            .env("SHOAL_DATA_DIR", d.join("shoal-data"))
            .env_remove("RUST_LOG");
        if abort {
            cmd.env("SHOAL_TEST_ABORT_AFTER_MANIFEST", ABORT_AFTER.to_string());
        }
        cmd.output().expect("run shoal")
    };
    let first = run(true);
    let stderr = String::from_utf8_lossy(&first.stderr);
    if first.status.success() || !stderr.contains("test hook: aborting after manifest") {
        return Err(format!(
            "restored: the first run was not aborted ({}): {stderr}",
            first.status
        ));
    }
    let manifest = newest_manifest(d, &name);
    let mut at = Vec::new();
    let mut mid_stream = manifest["last"] == Value::Bool(false);
    for (id, states) in manifest["states"].as_object().unwrap() {
        let Some(pos) = states[0]["positions"]["0"].as_u64() else {
            continue;
        };
        let total = totals[id];
        mid_stream &= (pos as usize) < total;
        at.push(format!("{id} {pos}/{total}"));
    }
    if !mid_stream {
        return Err(format!(
            "restored: checkpoint {} is not mid-stream (last: {}, positions {at:?})",
            manifest["id"], manifest["last"]
        ));
    }
    let second = run(false);
    if !second.status.success() {
        return Err(format!(
            "restored: the restarting run failed ({}): {}",
            second.status,
            String::from_utf8_lossy(&second.stderr)
        ));
    }
    if !String::from_utf8_lossy(&second.stderr).contains("restoring from checkpoint") {
        return Err("restored: the second run did not restore a checkpoint".into());
    }
    check("restored", d, want)?;
    Ok(format!(
        "restored at checkpoint {} ({})",
        manifest["id"],
        at.join(", ")
    ))
}

#[test]
fn sql_cases_match_duckdb_straight_and_through_a_restore() {
    let started = Instant::now();
    let cases = cases();
    assert!(!cases.is_empty(), "no cases in {}", cases_dir().display());
    let jobs: usize = std::env::var("SHOAL_SQL_CASES_JOBS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(case) = cases.get(i) else { break };
                    let name = case.file_name().unwrap().to_string_lossy().into_owned();
                    let t = Instant::now();
                    let want = read_jsonl(&case.join("expected.jsonl"));
                    let straight = run_straight(case, &want);
                    let restored = run_restored(case, &want);
                    let ok = straight.is_ok() && restored.is_ok();
                    eprintln!(
                        "{} {name}: {} rows, {:.1}s, {}",
                        if ok { "ok  " } else { "FAIL" },
                        want.len(),
                        t.elapsed().as_secs_f64(),
                        restored
                            .as_ref()
                            .map(String::as_str)
                            .unwrap_or("restore failed")
                    );
                    let errors: Vec<String> = [straight.err(), restored.err()]
                        .into_iter()
                        .flatten()
                        .collect();
                    if !errors.is_empty() {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{name}:\n  {}", errors.join("\n  ")));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    eprintln!(
        "{} cases, {} failed, {:.1}s",
        cases.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from DuckDB's expected rows \
         (re-bless with scripts/bless_sql_cases.py only if the case was wrong):\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
