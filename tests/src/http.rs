//! A `shoal run` process with its HTTP API, and plain HTTP/1.0 requests to
//! it (the API and dashboard tests).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::shoal_bin;

/// Only bounds how long a broken build hangs; never what a test checks.
pub const HANG_GUARD: Duration = Duration::from_secs(300);

/// A running `shoal run`, the HTTP address it printed, and a thread
/// collecting the rest of its stderr.
pub struct Run {
    child: Option<Child>,
    /// `host:port` of its HTTP API.
    pub addr: String,
    stderr: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Drop for Run {
    /// A failed test leaves no job running.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Run {
    /// `shoal run ARGS` in `d` (data dir inside it); returns once the HTTP
    /// address is printed.
    pub fn start(d: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(shoal_bin())
            .arg("run")
            .args(args)
            .current_dir(d)
            .env("SHOAL_DATA_DIR", d.join("shoal-data"))
            .env_remove("RUST_LOG")
            .env_remove("SHOAL_HTTP_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| {
                l.strip_prefix("http api: http://")
                    .map(|r| r.trim_end_matches('/').to_string())
            })
            .expect("HTTP address printed");
        let stderr = std::thread::spawn(move || lines.map_while(Result::ok).collect());
        Self {
            child: Some(child),
            addr,
            stderr: Some(stderr),
        }
    }

    /// Waits for the exit; returns the code, stdout and stderr.
    pub fn finish(mut self) -> (Option<i32>, String, String) {
        let out = self.child.take().unwrap().wait_with_output().unwrap();
        let stderr = self.stderr.take().unwrap().join().unwrap().join("\n");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr,
        )
    }
}

/// One HTTP/1.0 request; returns the status code and the body.
pub fn request(addr: &str, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (code, body.to_string())
}

/// `GET path`, which must answer 200 with JSON.
pub fn get_json(addr: &str, path: &str) -> Value {
    let (code, body) = request(addr, "GET", path, None);
    assert_eq!(code, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// Polls `GET path` until `done` holds; returns that answer.
pub fn poll(addr: &str, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let guard = Instant::now() + HANG_GUARD;
    loop {
        let v = get_json(addr, path);
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < guard, "hang guard: no {what}: {v:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
