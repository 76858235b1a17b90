//! The keyed-state snapshot file (format version [`STATE_FORMAT_VERSION`]).
//!
//! One file per operator instance per checkpoint, JSON lines:
//!
//! ```text
//! {"format":"shoal-keyed-state","version":1,"kind":"full"|"delta","checkpoint":12,
//!  "node":"running","instance":0,"tables":{"count":"value","seen":"map","recent":"list"}}
//! {"s":"count","k":<key>,"v":<value>}                 put (value, list: the whole list)
//! {"s":"seen","k":<key>,"m":<map key>,"v":<value>}    put of one map entry
//! {"s":"count","k":<key>}                             remove (map: with "m")
//! {"end":true,"lines":N}                              trailer: N data lines above
//! ```
//!
//! Keys and values are serde JSON (numbers go through `serde_json`, so an
//! `f64` is stored with the shortest text that prints it and read back with
//! `serde_json`'s best-effort parser). A *full* file holds every entry; a
//! *delta* only what changed since the previous file of the chain
//! (removes are written only in deltas). Restoring replays the chain in
//! order: the full file, then each delta. Files are written to a temp name,
//! fsynced and renamed, so a file with its final name is complete; the
//! trailer is checked anyway.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, RuntimeError};

/// The snapshot file format version this build writes and reads.
pub const STATE_FORMAT_VERSION: u32 = 1;
const FORMAT_NAME: &str = "shoal-keyed-state";

/// The first line of a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Header {
    pub format: String,
    pub version: u32,
    /// `full` or `delta`.
    pub kind: String,
    pub checkpoint: u64,
    pub node: String,
    pub instance: usize,
    /// Table name → kind name.
    pub tables: BTreeMap<String, String>,
}

/// One data line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Line {
    /// Table name.
    pub s: String,
    /// The key.
    pub k: Value,
    /// The map key (map state only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m: Option<Value>,
    /// The value; absent = remove.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<Value>,
}

impl Line {
    pub fn put(table: &str, k: Value, m: Option<Value>, v: Value) -> Self {
        Line {
            s: table.to_owned(),
            k,
            m,
            v: Some(v),
        }
    }

    pub fn remove(table: &str, k: Value, m: Option<Value>) -> Self {
        Line {
            s: table.to_owned(),
            k,
            m,
            v: None,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Trailer {
    end: bool,
    lines: u64,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> RuntimeError {
    RuntimeError::io(format!("keyed state {what} {}", path.display()), e)
}

fn bad(path: &Path, why: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::User(format!("keyed state file {}: {why}", path.display()))
}

/// Writes one JSON line.
pub(crate) fn write_line<T: Serialize>(w: &mut dyn Write, v: &T) -> Result<()> {
    serde_json::to_writer(&mut *w, v)
        .map_err(|e| RuntimeError::Internal(format!("keyed state json: {e}")))?;
    w.write_all(b"\n")
        .map_err(|e| RuntimeError::io("keyed state write", e))
}

/// Writes `path` atomically: header, the lines `body` writes (it returns
/// their count), trailer. Returns the file's size.
pub(crate) fn write_file(
    path: &Path,
    header: &Header,
    body: impl FnOnce(&mut dyn Write) -> Result<u64>,
) -> Result<u64> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state")
    ));
    let f = File::create(&tmp).map_err(|e| io("create", &tmp, e))?;
    let mut w = BufWriter::with_capacity(1 << 16, f);
    write_line(&mut w, header)?;
    let lines = body(&mut w)?;
    write_line(&mut w, &Trailer { end: true, lines })?;
    let f = w
        .into_inner()
        .map_err(|e| io("write", &tmp, e.into_error()))?;
    f.sync_all().map_err(|e| io("fsync", &tmp, e))?;
    let size = f.metadata().map_err(|e| io("stat", &tmp, e))?.len();
    fs::rename(&tmp, path).map_err(|e| io("rename", path, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("fsync", dir, e))?;
    Ok(size)
}

impl Header {
    pub fn new(
        full: bool,
        checkpoint: u64,
        node: &str,
        instance: usize,
        tables: BTreeMap<String, String>,
    ) -> Self {
        Header {
            format: FORMAT_NAME.to_owned(),
            version: STATE_FORMAT_VERSION,
            kind: if full { "full" } else { "delta" }.to_owned(),
            checkpoint,
            node: node.to_owned(),
            instance,
            tables,
        }
    }
}

/// Reads `path`: checks the header (format, version) and the trailer, and
/// calls `apply` for every data line, in order. Returns the header.
pub(crate) fn read_file(path: &Path, mut apply: impl FnMut(Line) -> Result<()>) -> Result<Header> {
    let f = File::open(path).map_err(|e| io("open", path, e))?;
    let mut lines = BufReader::with_capacity(1 << 16, f).lines();
    let first = lines
        .next()
        .ok_or_else(|| bad(path, "empty file"))?
        .map_err(|e| io("read", path, e))?;
    let v: Value = serde_json::from_str(&first).map_err(|e| bad(path, e))?;
    if v["format"] != FORMAT_NAME {
        return Err(bad(path, "not a keyed state snapshot"));
    }
    let version = v["version"].as_u64().unwrap_or(0);
    if version != u64::from(STATE_FORMAT_VERSION) {
        return Err(bad(
            path,
            format!(
                "format version {version}, but this build reads version {STATE_FORMAT_VERSION} \
                 (written by a newer Shoal? restore with that version)"
            ),
        ));
    }
    let header: Header = serde_json::from_value(v).map_err(|e| bad(path, e))?;
    let mut count = 0u64;
    for line in lines {
        let line = line.map_err(|e| io("read", path, e))?;
        if line.starts_with("{\"end\"") {
            let t: Trailer = serde_json::from_str(&line).map_err(|e| bad(path, e))?;
            if t.lines != count {
                return Err(bad(
                    path,
                    format!("trailer says {} lines, found {count}", t.lines),
                ));
            }
            return Ok(header);
        }
        let l: Line = serde_json::from_str(&line).map_err(|e| bad(path, e))?;
        apply(l)?;
        count += 1;
    }
    Err(bad(path, "truncated (no trailer)"))
}
