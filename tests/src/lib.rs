//! Helpers for Shoal's end-to-end tests: they drive the real `shoal` binary
//! in temporary directories, as a user would.

pub mod chaos;
pub mod http;
pub mod running;
pub mod services;
pub mod windows;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `shoal` binary built alongside these tests (`cargo test --workspace`
/// builds it, because `shoal-cli` has integration tests of its own).
pub fn shoal_bin() -> PathBuf {
    if let Ok(p) = std::env::var("SHOAL_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/shoal
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join(format!("shoal{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} not found: run `cargo test --workspace` (or `cargo build -p shoal-cli`) first",
        bin.display()
    );
    bin
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// A temporary working directory holding a copy of `pipelines/` and
/// `models/` (the examples refer to both by relative paths).
pub fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for sub in ["pipelines", "models"] {
        copy_dir(&repo_root().join(sub), &dir.path().join(sub));
    }
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Run `shoal ARGS` in `cwd` with its data dir inside `cwd`.
pub fn shoal(cwd: &Path, args: &[&str]) -> Output {
    Command::new(shoal_bin())
        .args(args)
        .current_dir(cwd)
        .env("SHOAL_DATA_DIR", cwd.join("shoal-data"))
        .env_remove("RUST_LOG")
        .output()
        .expect("run shoal")
}

/// `shoal run --no-progress --http-addr 127.0.0.1:0 FILE` in `d` with its
/// data dir in `d/data`, to add environment and run or spawn.
pub fn shoal_run(d: &Path, file: &str) -> Command {
    let mut c = Command::new(shoal_bin());
    c.args(["run", "--no-progress", "--http-addr", "127.0.0.1:0", file])
        .current_dir(d)
        .env("SHOAL_DATA_DIR", d.join("data"));
    c
}

/// Like [`shoal`], but panics with both streams unless the exit code is 0.
pub fn shoal_ok(cwd: &Path, args: &[&str]) -> Output {
    let out = shoal(cwd, args);
    assert!(
        out.status.success(),
        "shoal {args:?} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every JSON line of every committed `*.jsonl` part file in `dir`.
pub fn read_jsonl_dir(dir: &Path) -> Vec<serde_json::Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !name.starts_with('.') && name.ends_with(".jsonl")
        })
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .expect("read part file")
                .lines()
                .map(|l| {
                    serde_json::from_str(l)
                        .unwrap_or_else(|e| panic!("bad json in {}: {e}: {l}", f.display()))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Writes `count` generated transactions (generator `seed`) into the log
/// topic `topic` (`partitions` partitions, keyed by card) in `dir`'s data
/// dir, with `shoal run`.
pub fn produce_transactions(dir: &Path, seed: u64, count: u64, topic: &str, partitions: u32) {
    std::fs::write(
        dir.join("produce.yaml"),
        format!(
            "name: produce\nsources:\n  gen: {{ type: generator, seed: {seed}, count: {count} }}\nsinks:\n  to_log: {{ type: log, inputs: [gen], topic: {topic}, partitions: {partitions}, key: card_id }}\n"
        ),
    )
    .expect("write produce.yaml");
    shoal_ok(dir, &["run", "--no-progress", "produce.yaml"]);
}

/// Who acquired which partition, in order, from the `partition acquired`
/// lines a `log` source logs at info level (`RUST_LOG=shoal_connectors=info`).
pub fn partition_owners(log: &str) -> std::collections::BTreeMap<u32, Vec<String>> {
    let mut owners: std::collections::BTreeMap<u32, Vec<String>> = Default::default();
    for line in log.lines().filter(|l| l.contains("partition acquired")) {
        let field = |name: &str| {
            let start = line.find(&format!("{name}=")).expect("field") + name.len() + 1;
            line[start..]
                .split_whitespace()
                .next()
                .expect("value")
                .trim_matches('"')
                .to_string()
        };
        owners
            .entry(field("partition").parse().expect("partition number"))
            .or_default()
            .push(field("member"));
    }
    owners
}

/// Runs `shoal run FILE` in `dir` with log-source member `member` of node
/// `txns` stopping like a crashed process after `records` records (the
/// test hook `SHOAL_TEST_CRASH_MEMBER`), and `partition acquired` logged;
/// asserts the run succeeded and the hook fired; returns its stderr.
pub fn run_with_member_crash(dir: &Path, file: &str, member: usize, records: u64) -> String {
    let out = Command::new(shoal_bin())
        .args(["run", "--no-progress", file])
        .current_dir(dir)
        .env("SHOAL_DATA_DIR", dir.join("shoal-data"))
        .env("RUST_LOG", "shoal_connectors=info")
        .env(
            "SHOAL_TEST_CRASH_MEMBER",
            format!("txns:{member}:{records}"),
        )
        .output()
        .expect("run shoal");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("simulated crash"),
        "the crash hook did not fire:\n{stderr}"
    );
    stderr
}

/// Run the repository's Python script `script` (a path from the repository
/// root) with `args`; its stdout as JSON. Panics with its stderr unless it
/// exits 0.
pub fn python_json(script: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new("python3")
        .arg(repo_root().join(script))
        .args(args)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{script}: stdout is not JSON ({e})"))
}

/// The dead letter at the `partition`/`offset` of `at` (a JSON object with
/// those keys, as the Python producers print them), checked to be from
/// `node` and to give a reason containing `reason`.
pub fn dead_letter_at<'a>(
    letters: &'a [serde_json::Value],
    at: &serde_json::Value,
    node: &str,
    reason: &str,
) -> &'a serde_json::Value {
    let l = letters
        .iter()
        .find(|l| l["partition"] == at["partition"] && l["offset"] == at["offset"])
        .unwrap_or_else(|| panic!("no dead letter at {at}: {letters:?}"));
    assert!(
        l["reason"].as_str().unwrap_or("").contains(reason),
        "want {reason:?} in {l}"
    );
    assert_eq!(l["node"], node, "{l}");
    l
}
