//! The keyed-state snapshot file (format version [`STATE_FORMAT_VERSION`]).
//!
//! One file per operator instance (or shard) per checkpoint, binary:
//!
//! ```text
//! b"SHOALKS\x02"                         magic and format version
//! u32 LE n, n bytes of JSON               header: {"format":"shoal-keyed-state","version":2,
//!                                          "kind":"full"|"delta","checkpoint":12,"node":"running",
//!                                          "instance":0,"tables":{"count":"value","seen":"map"}}
//! entries…                                see below
//! u64 LE entries, u32 LE crc32(entries), b"END!"      trailer (16 bytes)
//! ```
//!
//! An entry is `table` (the index of the table in the header's order, a
//! postcard varint), `op` (one byte: 0 put, 1 remove), then the key, the
//! map key (map tables only) and, for a put, the value — each in the
//! [postcard](https://postcard.jamesmunns.com/wire-format) wire format,
//! whose 1.x specification is stable. A list is one value (the whole list).
//! No entry goes through an intermediate tree (`serde_json::Value`): keys
//! and values are encoded straight from the operator's typed tables, and
//! byte blobs (Arrow IPC of window panes, buffered rows) are stored as
//! bytes.
//!
//! A *full* file holds every entry; a *delta* only what changed since the
//! previous file of the chain (removes appear only in deltas). Restoring
//! replays the chain in order. Files are written to a temp name, fsynced and
//! renamed, so a file with its final name is complete; the trailer (count
//! and CRC) is checked anyway.
//!
//! Files of version 1 (JSON lines, one `{"s","k","m","v"}` object per
//! entry, written by Shoal before this format) are still read, so a job
//! upgraded from that version restores its state; they are never written.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Result, RuntimeError};

/// The snapshot file format version this build writes (it also reads 1).
pub const STATE_FORMAT_VERSION: u32 = 2;
const FORMAT_NAME: &str = "shoal-keyed-state";
const MAGIC: &[u8; 8] = b"SHOALKS\x02";
const TRAILER_MAGIC: &[u8; 4] = b"END!";
const TRAILER_LEN: usize = 16;

/// Entry operation: put a value.
pub(crate) const OP_PUT: u8 = 0;
/// Entry operation: remove a key (or a map entry).
pub(crate) const OP_REMOVE: u8 = 1;

/// The header of a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Header {
    pub format: String,
    pub version: u32,
    /// `full` or `delta`.
    pub kind: String,
    pub checkpoint: u64,
    pub node: String,
    pub instance: usize,
    /// Table name → kind name. Entries name tables by their index in this
    /// (sorted) order.
    pub tables: BTreeMap<String, String>,
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

/// One entry of a version 1 (JSON lines) file.
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

fn bad(path: &str, why: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::User(format!("keyed state file {path}: {why}"))
}

fn newer(path: &str, version: u64) -> RuntimeError {
    bad(
        path,
        format!(
            "format version {version}, but this build reads versions 1 to {STATE_FORMAT_VERSION} \
             (written by a newer Shoal? restore with that version)"
        ),
    )
}

/// Appends `v` in the postcard wire format.
pub(crate) fn put<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) -> Result<()> {
    postcard::to_io(v, out)
        .map(|_| ())
        .map_err(|e| RuntimeError::Internal(format!("keyed state: cannot encode: {e}")))
}

/// Reads one postcard value from the front of `input`; returns the rest.
pub(crate) fn take<'a, T: serde::de::DeserializeOwned>(
    input: &'a [u8],
    what: &str,
) -> Result<(T, &'a [u8])> {
    postcard::take_from_bytes(input)
        .map_err(|e| RuntimeError::User(format!("keyed state: cannot read a {what}: {e}")))
}

/// A file being built in memory: the header is written first, entries are
/// appended by the tables, [`FileImage::finish`] adds the trailer. The
/// bytes are then written by [`write_atomically`], usually on a blocking
/// thread (see [`super::StateWrites`]).
pub(crate) struct FileImage {
    buf: Vec<u8>,
    body_start: usize,
}

impl FileImage {
    pub fn new(header: &Header) -> Result<Self> {
        let json = serde_json::to_vec(header)
            .map_err(|e| RuntimeError::Internal(format!("keyed state header: {e}")))?;
        let mut buf = Vec::with_capacity(1 << 12);
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&(json.len() as u32).to_le_bytes());
        buf.extend_from_slice(&json);
        let body_start = buf.len();
        Ok(Self { buf, body_start })
    }

    /// Where tables append their entries.
    pub fn body(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// The complete file, `entries` being the number of entries appended.
    pub fn finish(mut self, entries: u64) -> Vec<u8> {
        let crc = crc32fast::hash(&self.buf[self.body_start..]);
        self.buf.extend_from_slice(&entries.to_le_bytes());
        self.buf.extend_from_slice(&crc.to_le_bytes());
        self.buf.extend_from_slice(TRAILER_MAGIC);
        self.buf
    }
}

fn io(what: &str, path: &Path, e: std::io::Error) -> RuntimeError {
    RuntimeError::io(format!("keyed state {what} {}", path.display()), e)
}

/// Writes `bytes` to `path` atomically and durably: a temp file in the same
/// directory (`.<name>.tmp`), fsync, rename, fsync of the directory.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state")
    ));
    let mut f = File::create(&tmp).map_err(|e| io("create", &tmp, e))?;
    f.write_all(bytes).map_err(|e| io("write", &tmp, e))?;
    f.sync_all().map_err(|e| io("fsync", &tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| io("rename", path, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("fsync", dir, e))
}

/// What [`read_file`] hands to the tables.
pub(crate) enum Entries<'a> {
    /// A version 2 file: its entries, in order (see the module docs).
    Binary(&'a [u8], u64),
    /// A version 1 file: one JSON line per entry.
    Lines(Vec<Line>),
}

/// Reads `path`: see [`read_bytes`].
pub(crate) fn read_file(
    path: &Path,
    apply: impl FnOnce(&Header, Entries<'_>) -> Result<()>,
) -> Result<Header> {
    let bytes = fs::read(path).map_err(|e| io("read", path, e))?;
    read_bytes(&path.display().to_string(), &bytes, apply)
}

/// Reads the file `path` (its name, for messages) whose content is
/// `bytes`: checks magic, version, header and trailer, and passes the
/// entries to `apply` together with the header.
pub(crate) fn read_bytes(
    path: &str,
    bytes: &[u8],
    apply: impl FnOnce(&Header, Entries<'_>) -> Result<()>,
) -> Result<Header> {
    if bytes.starts_with(b"{") {
        return read_v1(path, bytes, apply);
    }
    if bytes.len() < 12 || &bytes[..7] != &MAGIC[..7] {
        return Err(bad(path, "not a keyed state snapshot"));
    }
    if bytes[7] != MAGIC[7] {
        return Err(newer(path, u64::from(bytes[7])));
    }
    let n = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    let body_start = 12 + n;
    if bytes.len() < body_start + TRAILER_LEN {
        return Err(bad(path, "truncated"));
    }
    let header: Header =
        serde_json::from_slice(&bytes[12..body_start]).map_err(|e| bad(path, e))?;
    let (body, trailer) = bytes[body_start..].split_at(bytes.len() - body_start - TRAILER_LEN);
    if &trailer[12..] != TRAILER_MAGIC {
        return Err(bad(path, "truncated (no trailer)"));
    }
    let entries = u64::from_le_bytes(trailer[..8].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(trailer[8..12].try_into().expect("4 bytes"));
    if crc32fast::hash(body) != crc {
        return Err(bad(path, "checksum mismatch (the file is damaged)"));
    }
    apply(&header, Entries::Binary(body, entries)).map_err(|e| match e {
        RuntimeError::User(m) => bad(path, m),
        e => e,
    })?;
    Ok(header)
}

#[derive(Debug, Serialize, Deserialize)]
struct Trailer {
    end: bool,
    lines: u64,
}

/// Reads a version 1 (JSON lines) file.
fn read_v1(
    path: &str,
    bytes: &[u8],
    apply: impl FnOnce(&Header, Entries<'_>) -> Result<()>,
) -> Result<Header> {
    let mut lines = BufReader::new(bytes).lines();
    let first = lines
        .next()
        .ok_or_else(|| bad(path, "empty file"))?
        .map_err(|e| bad(path, e))?;
    let v: Value = serde_json::from_str(&first).map_err(|e| bad(path, e))?;
    if v["format"] != FORMAT_NAME {
        return Err(bad(path, "not a keyed state snapshot"));
    }
    let version = v["version"].as_u64().unwrap_or(0);
    if version != 1 {
        return Err(newer(path, version));
    }
    let header: Header = serde_json::from_value(v).map_err(|e| bad(path, e))?;
    let mut entries = Vec::new();
    for line in lines {
        let line = line.map_err(|e| bad(path, e))?;
        if line.starts_with("{\"end\"") {
            let t: Trailer = serde_json::from_str(&line).map_err(|e| bad(path, e))?;
            if t.lines != entries.len() as u64 {
                return Err(bad(
                    path,
                    format!("trailer says {} lines, found {}", t.lines, entries.len()),
                ));
            }
            apply(&header, Entries::Lines(entries))?;
            return Ok(header);
        }
        entries.push(serde_json::from_str::<Line>(&line).map_err(|e| bad(path, e))?);
    }
    Err(bad(path, "truncated (no trailer)"))
}
