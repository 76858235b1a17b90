//! Bad pipeline files through the real binary: `shoal validate FILE` and
//! `shoal run FILE` must exit 2 with a message before starting anything (never a
//! panic), naming the line where the problem is one.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shoal_tests::shoal_bin;

/// A bad input and, where the problem is on one line, that line.
struct Case {
    name: &'static str,
    contents: Contents,
    line: Option<usize>,
}

enum Contents {
    Bytes(Vec<u8>),
    /// Pass a directory instead of a file.
    Directory,
    /// Pass a path that does not exist.
    Missing,
}

fn text(s: impl Into<String>) -> Contents {
    Contents::Bytes(s.into().into_bytes())
}

fn cases() -> Vec<Case> {
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 0..9u8 {
        let (p, c) = ((b'a' + i) as char, (b'b' + i) as char);
        bomb.push_str(&format!(
            "{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
        ));
    }
    let mut random = Vec::with_capacity(64 * 1024);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..64 * 1024 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        random.push(x as u8);
    }
    vec![
        Case {
            name: "empty",
            contents: text(""),
            line: None,
        },
        Case {
            name: "comments only",
            contents: text("# nothing here\n"),
            line: None,
        },
        Case {
            name: "bare scalar",
            contents: text("hello\n"),
            line: None,
        },
        Case {
            name: "top-level list",
            contents: text("- sources\n- sinks\n"),
            line: None,
        },
        Case {
            name: "invalid utf-8",
            contents: Contents::Bytes(b"sources:\n  t\xff\xfe: x\n".to_vec()),
            line: Some(2),
        },
        Case {
            name: "random bytes",
            contents: Contents::Bytes(random),
            line: None,
        },
        Case {
            name: "nul byte",
            contents: Contents::Bytes(b"name: x\nsources:\0\n".to_vec()),
            line: Some(2),
        },
        Case {
            name: "tab indentation",
            contents: text("sources:\n  txns:\n\ttype: generator\nsinks: {}\n"),
            line: Some(3),
        },
        Case {
            name: "unclosed quote",
            contents: text(
                "sources:\n  txns: { type: generator }\ntransforms:\n  big: { type: filter, inputs: [txns], where: \"amount > 1 }\nsinks:\n  out: { type: stdout, inputs: [big] }\n",
            ),
            line: Some(4),
        },
        Case {
            name: "duplicate key",
            contents: text(
                "sources:\n  txns: { type: generator }\n  other: { type: generator }\n  txns: { type: generator }\nsinks:\n  out: { type: stdout, inputs: [txns] }\n",
            ),
            line: Some(4),
        },
        Case {
            name: "billion laughs",
            contents: text(bomb),
            line: None,
        },
        Case {
            name: "10000-deep flow nesting",
            contents: text("[".repeat(10_000) + &"]".repeat(10_000)),
            line: None,
        },
        Case {
            name: "10000-deep block nesting",
            contents: text("- ".repeat(10_000) + "x\n"),
            line: None,
        },
        Case {
            name: "3 MB single line",
            contents: text(format!("name: \"{}\"\n", "x".repeat(3 << 20))),
            line: None,
        },
        Case {
            name: "directory",
            contents: Contents::Directory,
            line: None,
        },
        Case {
            name: "missing file",
            contents: Contents::Missing,
            line: None,
        },
        Case {
            name: "json of the wrong type",
            contents: text(r#"{"sources": 5}"#),
            line: Some(1),
        },
    ]
}

struct Outcome {
    code: Option<i32>,
    stderr: String,
}

/// Only bounds how long a hung `shoal` may block the test (it is then killed
/// and the case fails); never what a test checks, so a slow machine cannot
/// fail it. Bad input is rejected before anything starts (checked below:
/// exit code 2, a located message, no data directory), not by a time limit.
const HANG_GUARD: Duration = Duration::from_secs(120);

/// Run `shoal ARGS...` in `dir`, killing it if it outlives the hang guard so a
/// hang fails the test instead of blocking it.
fn shoal(dir: &Path, args: &[&std::ffi::OsStr]) -> Outcome {
    let start = Instant::now();
    let mut child = Command::new(shoal_bin())
        .args(args)
        .current_dir(dir)
        .env("SHOAL_DATA_DIR", dir.join("shoal-data"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shoal");
    let mut stderr_pipe = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr_pipe.read_to_string(&mut s);
        s
    });
    let deadline = start + HANG_GUARD;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stderr = reader.join().unwrap_or_default();
    Outcome {
        code: status.and_then(|s| s.code()),
        stderr,
    }
}

fn case_path(dir: &Path, case: &Case, i: usize) -> PathBuf {
    match &case.contents {
        Contents::Bytes(bytes) => {
            let path = dir.join(format!("case{i}.yaml"));
            std::fs::write(&path, bytes).expect("write case");
            path
        }
        Contents::Directory => {
            let path = dir.join(format!("case{i}.d"));
            std::fs::create_dir_all(&path).expect("mkdir");
            path
        }
        Contents::Missing => dir.join(format!("case{i}-does-not-exist.yaml")),
    }
}

fn check(case: &Case, command: &str, out: &Outcome) -> Vec<String> {
    let mut problems = Vec::new();
    let what = format!("[{}] shoal {command}", case.name);
    if out.code != Some(2) {
        problems.push(format!("{what}: exit code {:?}, expected 2", out.code));
    }
    if out.stderr.trim().is_empty() {
        problems.push(format!("{what}: empty stderr"));
    }
    if out.stderr.contains("panicked") {
        problems.push(format!("{what}: panicked:\n{}", out.stderr));
    }
    if let Some(line) = case.line
        && !out.stderr.contains(&format!(":{line}:"))
    {
        problems.push(format!(
            "{what}: stderr does not name line {line}:\n{}",
            out.stderr
        ));
    }
    problems
}

#[test]
fn bad_input_exits_2_fast_with_a_message() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let mut problems = Vec::new();
    for (i, case) in cases().iter().enumerate() {
        let path = case_path(dir.path(), case, i);
        for command in ["validate", "run"] {
            let out = shoal(dir.path(), &[command.as_ref(), path.as_os_str()]);
            problems.extend(check(case, command, &out));
        }
    }
    // Nothing may have started: no data directory, no output.
    assert!(!dir.path().join("shoal-data").join("checkpoints").exists());
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn unknown_input_suggests_the_closest_id() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let path = dir.path().join("typo.yaml");
    std::fs::write(
        &path,
        "sources:\n  transactions: { type: generator, count: 10 }\nsinks:\n  out: { type: stdout, inputs: [transaction] }\n",
    )
    .expect("write");
    for command in ["validate", "run"] {
        let out = shoal(dir.path(), &[command.as_ref(), path.as_os_str()]);
        assert_eq!(out.code, Some(2), "shoal {command}: {}", out.stderr);
        assert!(
            out.stderr.contains("did you mean \"transactions\"?"),
            "shoal {command}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains(":4:"),
            "shoal {command}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("panicked"),
            "shoal {command}: {}",
            out.stderr
        );
    }
}

#[test]
fn unknown_key_suggests_the_closest_key() {
    let dir = tempfile::TempDir::new().expect("tempdir");
    let path = dir.path().join("key.yaml");
    std::fs::write(
        &path,
        "sources:\n  txns: { type: generator, count: 10 }\ntransforms:\n  big: { type: filter, inputs: [txns], wher: \"amount > 1000\" }\nsinks:\n  out: { type: stdout, inputs: [big] }\n",
    )
    .expect("write");
    let out = shoal(dir.path(), &["validate".as_ref(), path.as_os_str()]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains(":4:"), "{}", out.stderr);
    assert!(
        out.stderr.contains("did you mean \"where\"?"),
        "{}",
        out.stderr
    );
}

/// A FIFO as the pipeline file: with nobody writing, `shoal validate`
/// gives up after its wait with exit 2 instead of hanging; with a writer
/// (as `<(…)` process substitution has), the pipeline is read and valid.
#[test]
fn a_fifo_without_a_writer_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("p.yaml");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo");
    let out = Command::new(shoal_bin())
        .args(["validate"])
        .arg(&fifo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a regular file"), "{err}");

    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            std::fs::write(
                &fifo,
                "name: piped\nsources:\n  g: { type: generator, count: 10 }\nsinks:\n  out: { type: stdout, inputs: [g] }\n",
            )
            .unwrap();
        })
    };
    let out = Command::new(shoal_bin())
        .args(["validate"])
        .arg(&fifo)
        .output()
        .unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
