//! The sparse offset index kept beside each segment (`<base>.index`).
//!
//! # Index file format (version 1)
//!
//! ```text
//! header (16 bytes): magic "SHIX" | version u8 = 1 | 3 reserved bytes | base_offset u64 LE
//! entries (16 bytes each):
//!     relative_offset u32 LE   record offset - base_offset
//!     position        u32 LE   byte position of that record's entry in the .log file
//!     max_timestamp   i64 LE   largest record timestamp in the segment up to and
//!                              including this record (drives age retention)
//! ```
//!
//! An entry is added for the record at which at least `index_interval_bytes`
//! of log have been written since the previous entry, so finding any offset
//! costs one binary search plus a scan of at most about one interval. The
//! index is written after the log bytes it points to and is rebuilt from the
//! log when a writer recovers the active segment, so it never points past
//! valid data; a trailing partial entry (torn write) is ignored.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{Error, IoContext, Result};

/// Magic bytes at the start of an index file.
pub(crate) const INDEX_MAGIC: &[u8; 4] = b"SHIX";
/// Index file format version.
pub(crate) const INDEX_VERSION: u8 = 1;
/// Bytes of the index header.
pub(crate) const INDEX_HEADER: usize = 16;
/// Bytes of one index entry.
pub(crate) const INDEX_ENTRY: usize = 16;

/// One sparse index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    /// Offset relative to the segment's base offset.
    pub rel_offset: u32,
    /// Byte position of the record in the log file.
    pub position: u32,
    /// Running maximum timestamp up to and including this record.
    pub max_timestamp: i64,
}

impl IndexEntry {
    /// Appends the 16-byte encoding to `buf`.
    pub(crate) fn encode(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.rel_offset.to_le_bytes());
        buf.extend_from_slice(&self.position.to_le_bytes());
        buf.extend_from_slice(&self.max_timestamp.to_le_bytes());
    }

    fn decode(b: &[u8]) -> Self {
        IndexEntry {
            rel_offset: u32::from_le_bytes(b[0..4].try_into().expect("4")),
            position: u32::from_le_bytes(b[4..8].try_into().expect("4")),
            max_timestamp: i64::from_le_bytes(b[8..16].try_into().expect("8")),
        }
    }
}

/// The 16-byte index header for `base_offset`.
pub(crate) fn header(base_offset: u64) -> [u8; INDEX_HEADER] {
    let mut h = [0u8; INDEX_HEADER];
    h[0..4].copy_from_slice(INDEX_MAGIC);
    h[4] = INDEX_VERSION;
    h[8..16].copy_from_slice(&base_offset.to_le_bytes());
    h
}

/// Reads the index file's entries. `Ok(None)` if the file is missing or its
/// header does not match (the caller rebuilds it from the log).
pub(crate) fn load(path: &Path, base_offset: u64) -> Result<Option<Vec<IndexEntry>>> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes).ctx("read", path)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", path, e)),
    }
    if bytes.len() < INDEX_HEADER || bytes[..INDEX_HEADER] != header(base_offset) {
        return Ok(None);
    }
    Ok(Some(decode_entries(&bytes[INDEX_HEADER..])))
}

/// Decodes whole entries from `bytes`, ignoring a trailing partial one and
/// stopping at the first entry that is not increasing.
pub(crate) fn decode_entries(bytes: &[u8]) -> Vec<IndexEntry> {
    let mut out: Vec<IndexEntry> = Vec::with_capacity(bytes.len() / INDEX_ENTRY);
    for chunk in bytes.chunks_exact(INDEX_ENTRY) {
        let e = IndexEntry::decode(chunk);
        if let Some(last) = out.last()
            && (e.rel_offset <= last.rel_offset || e.position <= last.position)
        {
            break;
        }
        out.push(e);
    }
    out
}

/// The last entry whose offset is `<= rel_offset`.
pub(crate) fn lookup(entries: &[IndexEntry], rel_offset: u32) -> Option<IndexEntry> {
    let i = entries.partition_point(|e| e.rel_offset <= rel_offset);
    i.checked_sub(1).map(|i| entries[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_floor_entry() {
        let e = |o, p| IndexEntry {
            rel_offset: o,
            position: p,
            max_timestamp: 0,
        };
        let entries = vec![e(0, 16), e(10, 400), e(20, 800)];
        assert_eq!(lookup(&entries, 0).unwrap().position, 16);
        assert_eq!(lookup(&entries, 9).unwrap().position, 16);
        assert_eq!(lookup(&entries, 10).unwrap().position, 400);
        assert_eq!(lookup(&entries, 1000).unwrap().position, 800);
        assert_eq!(lookup(&entries[1..], 5), None);
    }

    #[test]
    fn partial_trailing_entry_is_ignored() {
        let mut buf = Vec::new();
        IndexEntry {
            rel_offset: 1,
            position: 20,
            max_timestamp: 5,
        }
        .encode(&mut buf);
        IndexEntry {
            rel_offset: 9,
            position: 90,
            max_timestamp: 6,
        }
        .encode(&mut buf);
        buf.extend_from_slice(&[1, 2, 3]);
        assert_eq!(decode_entries(&buf).len(), 2);
    }
}
