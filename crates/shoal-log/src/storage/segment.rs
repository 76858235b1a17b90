//! One segment of a partition: the `<base_offset>.log` file and its
//! in-memory view (valid length, end offset, newest timestamp, sparse index).
//!
//! # Segment file format (versions 1 and 2)
//!
//! ```text
//! header (16 bytes): magic "SHLG" | version u8 | 3 reserved bytes | base_offset u64 LE
//! entries: back to back from byte 16, format in crate::record
//! ```
//!
//! Version 1 segments hold plain entries only; version 2 segments may also
//! hold transactional entries and markers (see [`crate::record`]). A
//! partition's segments stay version 1 until its first transactional append,
//! which rolls to a version 2 segment; segments after it are version 2. So
//! topics without transactions stay readable by older binaries, an older
//! binary refuses a version 2 segment with a clear "bad segment header"
//! error instead of misreading it, and a `read_committed` reader only has to
//! scan version 2 segments (plus the active one) to learn which
//! transactions are open or aborted.
//!
//! File names are the base offset zero-padded to 20 digits, so a directory
//! listing sorts in offset order. Entries carry consecutive offsets starting
//! at the base offset; a scan checks that too.
//!
//! Reads use positioned reads (`pread`) on a shared read-only handle, so any
//! number of readers read concurrently with the writer and with each other
//! without locks; a reader that still holds a segment deleted by retention
//! keeps reading it through its open handle.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};

use super::index::{self, IndexEntry};
use super::txn_view::ReadFilter;
use crate::error::{Error, IoContext, Result};
use crate::fetch::FetchBuffer;
use crate::record::{Decoded, EntryMeta, decode};

/// Magic bytes at the start of a segment file.
pub(crate) const LOG_MAGIC: &[u8; 4] = b"SHLG";
/// Segment format version without transactional entries.
pub(crate) const LOG_VERSION: u8 = 1;
/// Segment format version that may hold transactional entries.
pub(crate) const LOG_VERSION_TXN: u8 = 2;
/// Bytes of the segment header; the first entry starts here.
pub(crate) const LOG_HEADER: u64 = 16;
/// "Not known" for lengths and offsets of segments this process does not write.
pub(crate) const UNKNOWN: u64 = u64::MAX;

/// The 16-byte segment header for `base_offset`.
pub(crate) fn header(base_offset: u64, version: u8) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(LOG_MAGIC);
    h[4] = version;
    h[8..16].copy_from_slice(&base_offset.to_le_bytes());
    h
}

/// `<dir>/<base:020>.log`
pub(crate) fn log_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

/// `<dir>/<base:020>.index`
pub(crate) fn index_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.index"))
}

/// Fills `buf` from `pos` until full or end of file; returns bytes read.
pub(crate) fn read_full_at(file: &File, buf: &mut [u8], pos: u64, path: &Path) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], pos + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read", path, e)),
        }
    }
    Ok(n)
}

/// How a sequential scan ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScanEnd {
    /// Byte position just after the last valid entry.
    pub end_pos: u64,
    /// Offset the next entry would have.
    pub next_offset: u64,
    /// `Some(reason)` if the scan stopped at bytes that are not a valid
    /// entry (torn tail, corruption) rather than at a clean end.
    pub torn: Option<&'static str>,
}

/// How a read for a fetch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SegRead {
    /// At least one record was added to the buffer.
    Records,
    /// Clean end of the segment's data before any record `>= offset`.
    End {
        /// Offset after the last entry seen.
        next_offset: u64,
    },
    /// The [`ReadFilter`]'s bound was reached before any record was kept.
    Stopped,
    /// Invalid or incomplete bytes before any record `>= offset`.
    Torn {
        /// Where.
        position: u64,
        /// What check failed.
        reason: &'static str,
        /// Offset after the last valid entry seen.
        next_offset: u64,
    },
}

/// A segment as seen by this process; see the module docs.
#[derive(Debug)]
pub(crate) struct Segment {
    /// Offset of the segment's first record.
    pub base_offset: u64,
    /// The `.log` file.
    pub log_path: PathBuf,
    /// The `.index` file.
    pub index_path: PathBuf,
    file: File,
    /// Valid bytes (header included), or [`UNKNOWN`] in a reader process.
    len: AtomicU64,
    /// Newest record timestamp, `i64::MIN` if empty or unknown.
    max_timestamp: AtomicI64,
    index: RwLock<Vec<IndexEntry>>,
    /// Bytes of the index file already loaded (reader processes re-read the tail).
    index_loaded: AtomicU64,
    /// Format version from the header (1 or 2).
    version: AtomicU8,
}

impl Segment {
    /// Creates a new, empty segment (log + index with headers) and returns it
    /// with write handles for the log and the index.
    pub(crate) fn create(dir: &Path, base: u64, version: u8) -> Result<(Segment, File, File)> {
        let log_path = log_path(dir, base);
        let index_path = index_path(dir, base);
        let log_w = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&log_path)
            .ctx("create segment", &log_path)?;
        log_w
            .write_all_at(&header(base, version), 0)
            .ctx("write", &log_path)?;
        let index_w = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&index_path)
            .ctx("create index", &index_path)?;
        index_w
            .write_all_at(&index::header(base), 0)
            .ctx("write", &index_path)?;
        let file = File::open(&log_path).ctx("open", &log_path)?;
        let seg = Segment {
            base_offset: base,
            log_path,
            index_path,
            file,
            len: AtomicU64::new(LOG_HEADER),
            max_timestamp: AtomicI64::new(i64::MIN),
            index: RwLock::new(Vec::new()),
            index_loaded: AtomicU64::new(index::INDEX_HEADER as u64),
            version: AtomicU8::new(version),
        };
        Ok((seg, log_w, index_w))
    }

    /// Opens an existing segment read-only, checks its header and loads its
    /// index (empty if missing). A file shorter than the header (crash while
    /// creating it) is accepted as empty. Length and end offset start
    /// [`UNKNOWN`]; the writer fills them in.
    pub(crate) fn open(dir: &Path, base: u64) -> Result<Segment> {
        let log_path = log_path(dir, base);
        let index_path = index_path(dir, base);
        let file = File::open(&log_path).ctx("open segment", &log_path)?;
        let mut h = [0u8; 16];
        let n = read_full_at(&file, &mut h, 0, &log_path)?;
        let version = if n == 16 { h[4] } else { LOG_VERSION };
        if n == 16 && (h != header(base, LOG_VERSION) && h != header(base, LOG_VERSION_TXN)) {
            return Err(Error::Corrupt {
                path: log_path,
                position: 0,
                reason: format!(
                    "bad segment header (expected magic {:?}, version {LOG_VERSION} or {LOG_VERSION_TXN}, base offset {base})",
                    std::str::from_utf8(LOG_MAGIC).unwrap_or("?")
                ),
            });
        }
        let entries = index::load(&index_path, base)?.unwrap_or_default();
        let loaded = (index::INDEX_HEADER + entries.len() * index::INDEX_ENTRY) as u64;
        let max_ts = entries.last().map_or(i64::MIN, |e| e.max_timestamp);
        Ok(Segment {
            base_offset: base,
            log_path,
            index_path,
            file,
            len: AtomicU64::new(UNKNOWN),
            max_timestamp: AtomicI64::new(max_ts),
            index: RwLock::new(entries),
            index_loaded: AtomicU64::new(loaded),
            version: AtomicU8::new(version),
        })
    }

    /// Format version (1: plain entries only; 2: may hold transactional ones).
    pub(crate) fn version(&self) -> u8 {
        self.version.load(Ordering::Acquire)
    }

    /// The version, re-read from the header while it says 1 (the writer
    /// turns an empty active segment into version 2 in place).
    pub(crate) fn refresh_version(&self) -> Result<u8> {
        let v = self.version();
        if v == LOG_VERSION_TXN {
            return Ok(v);
        }
        let mut h = [0u8; 16];
        if read_full_at(&self.file, &mut h, 0, &self.log_path)? == 16
            && h == header(self.base_offset, LOG_VERSION_TXN)
        {
            self.set_version(LOG_VERSION_TXN);
            return Ok(LOG_VERSION_TXN);
        }
        Ok(v)
    }

    /// Records a header rewritten in place (an empty segment turned version 2).
    pub(crate) fn set_version(&self, version: u8) {
        self.version.store(version, Ordering::Release);
    }

    /// Valid bytes, or [`UNKNOWN`].
    pub(crate) fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    /// Publishes the valid length (writer only).
    pub(crate) fn set_len(&self, len: u64) {
        self.len.store(len, Ordering::Release);
    }

    /// Newest record timestamp known, `i64::MIN` if none.
    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_timestamp.load(Ordering::Acquire)
    }

    /// Raises the newest timestamp.
    pub(crate) fn observe_timestamp(&self, ts: i64) {
        self.max_timestamp.fetch_max(ts, Ordering::AcqRel);
    }

    /// Size of the log file on disk.
    pub(crate) fn disk_len(&self) -> Result<u64> {
        Ok(self.file.metadata().ctx("stat", &self.log_path)?.len())
    }

    /// Bytes for size accounting: the valid length when known, else the file size.
    pub(crate) fn size(&self) -> u64 {
        match self.len() {
            UNKNOWN => self.disk_len().unwrap_or(0),
            n => n,
        }
    }

    /// A copy of the index entries.
    pub(crate) fn index_entries(&self) -> Vec<IndexEntry> {
        self.index.read().expect("index lock").clone()
    }

    /// Replaces the index (writer recovery).
    pub(crate) fn set_index(&self, entries: Vec<IndexEntry>) {
        let loaded = (index::INDEX_HEADER + entries.len() * index::INDEX_ENTRY) as u64;
        *self.index.write().expect("index lock") = entries;
        self.index_loaded.store(loaded, Ordering::Release);
    }

    /// Adds entries the writer just wrote to the index file.
    pub(crate) fn extend_index(&self, entries: &[IndexEntry]) {
        self.index
            .write()
            .expect("index lock")
            .extend_from_slice(entries);
        self.index_loaded.fetch_add(
            (entries.len() * index::INDEX_ENTRY) as u64,
            Ordering::AcqRel,
        );
    }

    /// Reader processes: loads index entries the writer appended since the
    /// last look.
    pub(crate) fn refresh_index(&self) -> Result<()> {
        let loaded = self.index_loaded.load(Ordering::Acquire);
        let disk = match std::fs::metadata(&self.index_path) {
            Ok(m) => m.len(),
            Err(_) => return Ok(()),
        };
        if disk < loaded + index::INDEX_ENTRY as u64 {
            return Ok(());
        }
        let f = match File::open(&self.index_path) {
            Ok(f) => f,
            Err(_) => return Ok(()),
        };
        let mut buf = vec![0u8; (disk - loaded) as usize / index::INDEX_ENTRY * index::INDEX_ENTRY];
        let n = read_full_at(&f, &mut buf, loaded, &self.index_path)?;
        let fresh = index::decode_entries(&buf[..n / index::INDEX_ENTRY * index::INDEX_ENTRY]);
        let mut idx = self.index.write().expect("index lock");
        if self.index_loaded.load(Ordering::Acquire) != loaded {
            return Ok(()); // someone else refreshed meanwhile
        }
        let mut added = 0;
        for e in fresh {
            if idx
                .last()
                .is_none_or(|l| e.rel_offset > l.rel_offset && e.position > l.position)
            {
                idx.push(e);
                added += 1;
            } else {
                break;
            }
        }
        if let Some(l) = idx.last() {
            self.max_timestamp
                .fetch_max(l.max_timestamp, Ordering::AcqRel);
        }
        self.index_loaded
            .fetch_add((added * index::INDEX_ENTRY) as u64, Ordering::AcqRel);
        Ok(())
    }

    /// Byte position and offset to start scanning from to find `offset`.
    pub(crate) fn position_for(&self, offset: u64) -> (u64, u64) {
        let rel = offset.saturating_sub(self.base_offset).min(u32::MAX as u64) as u32;
        let idx = self.index.read().expect("index lock");
        match index::lookup(&idx, rel) {
            Some(e) => (e.position as u64, self.base_offset + e.rel_offset as u64),
            None => (LOG_HEADER, self.base_offset),
        }
    }

    /// Whether `offset` lies past the last index entry (a reader process
    /// should refresh the index before looking it up).
    pub(crate) fn past_index(&self, offset: u64) -> bool {
        let idx = self.index.read().expect("index lock");
        idx.last()
            .is_none_or(|e| offset >= self.base_offset + e.rel_offset as u64)
    }

    /// A valid entry that the sparse index places after byte `pos`: its
    /// position and offset. An invalid entry followed by one is damage, not
    /// a torn tail (a torn write is always the last thing in the file, and
    /// the index only names entries the writer appended and acknowledged).
    pub(crate) fn entry_after(&self, pos: u64) -> Result<Option<(u64, u64)>> {
        let idx = self.index_entries();
        for e in idx.iter().filter(|e| e.position as u64 > pos) {
            let at = e.position as u64;
            let mut head = [0u8; crate::record::ENTRY_HEADER];
            if read_full_at(&self.file, &mut head, at, &self.log_path)? < head.len() {
                continue;
            }
            let body =
                (u32::from_le_bytes(head[0..4].try_into().expect("4 bytes")) & !(1 << 31)) as usize;
            if body > crate::record::MAX_BODY {
                continue;
            }
            let mut buf = vec![0u8; crate::record::ENTRY_HEADER + body];
            let n = read_full_at(&self.file, &mut buf, at, &self.log_path)?;
            if let Decoded::Entry(m) = decode(&buf[..n])
                && m.offset == self.base_offset + e.rel_offset as u64
            {
                return Ok(Some((at, m.offset)));
            }
        }
        Ok(None)
    }

    /// Reads entries sequentially from `start_pos` (whose entry must carry
    /// `start_offset`) up to `limit` bytes or end of file, calling `f(pos,
    /// meta)` for each valid entry. Stops at the first invalid or incomplete
    /// entry, reporting it in [`ScanEnd::torn`].
    pub(crate) fn scan(
        &self,
        start_pos: u64,
        start_offset: u64,
        limit: u64,
        mut f: impl FnMut(u64, &EntryMeta),
    ) -> Result<ScanEnd> {
        let mut buf = vec![0u8; 256 * 1024];
        let mut pos = start_pos;
        let mut next = start_offset;
        loop {
            let want = (limit.saturating_sub(pos)).min(buf.len() as u64) as usize;
            let done = |torn| ScanEnd {
                end_pos: pos,
                next_offset: next,
                torn,
            };
            if want == 0 {
                return Ok(done(None));
            }
            let n = read_full_at(&self.file, &mut buf[..want], pos, &self.log_path)?;
            if n == 0 {
                return Ok(done(None));
            }
            let mut c = 0;
            while c < n {
                match decode(&buf[c..n]) {
                    Decoded::Entry(m) => {
                        if m.offset != next {
                            pos += c as u64;
                            return Ok(ScanEnd {
                                end_pos: pos,
                                next_offset: next,
                                torn: Some("offset out of sequence"),
                            });
                        }
                        f(pos + c as u64, &m);
                        next += 1;
                        c += m.total;
                    }
                    Decoded::Incomplete(need) => {
                        if c == 0 {
                            match need {
                                Some(t) if n == want && want == buf.len() && t > buf.len() => {
                                    buf.resize(t, 0);
                                }
                                _ => {
                                    return Ok(ScanEnd {
                                        end_pos: pos,
                                        next_offset: next,
                                        torn: Some("incomplete entry at end of data"),
                                    });
                                }
                            }
                        }
                        break;
                    }
                    Decoded::Invalid(reason) => {
                        pos += c as u64;
                        return Ok(ScanEnd {
                            end_pos: pos,
                            next_offset: next,
                            torn: Some(reason),
                        });
                    }
                }
            }
            pos += c as u64;
        }
    }

    /// Reads records with offset `>= offset` into `out` (appending), at most
    /// `max_records` and about `max_bytes` (always at least one record if one
    /// is available), not reading past `limit` bytes of the file. Entries the
    /// `filter` skips are passed over (recorded with
    /// [`FetchBuffer::skip_past`]); the read ends before an entry it stops at.
    pub(crate) fn read_into(
        &self,
        offset: u64,
        limit: u64,
        max_records: usize,
        max_bytes: usize,
        filter: &ReadFilter,
        out: &mut FetchBuffer,
    ) -> Result<SegRead> {
        let (mut pos, mut expected) = self.position_for(offset);
        let mut chunk = max_bytes.max(4096) + 4096;
        let mut kept_bytes = 0usize;
        let mut kept = 0usize;
        loop {
            let want = (limit.saturating_sub(pos)).min(chunk as u64) as usize;
            if want == 0 {
                return Ok(SegRead::End {
                    next_offset: expected,
                });
            }
            let start = out.data_mut().len();
            out.data_mut().resize(start + want, 0);
            let n = read_full_at(
                &self.file,
                &mut out.data_mut()[start..],
                pos,
                &self.log_path,
            )?;
            out.data_mut().truncate(start + n);
            if n == 0 {
                return Ok(SegRead::End {
                    next_offset: expected,
                });
            }
            let mut c = start;
            let end = start + n;
            while c < end {
                match decode(&out.data_mut()[c..end]) {
                    Decoded::Entry(m) => {
                        if m.offset != expected {
                            if kept > 0 {
                                out.data_mut().truncate(c);
                                return Ok(SegRead::Records);
                            }
                            return Ok(SegRead::Torn {
                                position: pos + (c - start) as u64,
                                reason: "offset out of sequence",
                                next_offset: expected,
                            });
                        }
                        if m.offset >= offset && filter.stops_at(&m) {
                            out.data_mut().truncate(if kept > 0 { c } else { start });
                            return Ok(if kept > 0 {
                                SegRead::Records
                            } else {
                                SegRead::Stopped
                            });
                        }
                        if m.offset >= offset && filter.skips(&m) {
                            out.skip_past(m.offset);
                        } else if m.offset >= offset {
                            if kept > 0 && kept_bytes + m.total > max_bytes {
                                out.data_mut().truncate(c);
                                return Ok(SegRead::Records);
                            }
                            out.push(c, &m);
                            kept += 1;
                            kept_bytes += m.total;
                        }
                        expected += 1;
                        c += m.total;
                        if kept >= max_records {
                            out.data_mut().truncate(c);
                            return Ok(SegRead::Records);
                        }
                    }
                    Decoded::Incomplete(need) => {
                        if kept > 0 {
                            out.data_mut().truncate(c);
                            return Ok(SegRead::Records);
                        }
                        if c == start {
                            // The entry at `pos` is longer than what was read.
                            match need {
                                Some(t) if n == want && want == chunk && t > chunk => {
                                    chunk = t;
                                    out.data_mut().truncate(start);
                                    break;
                                }
                                _ => {
                                    out.data_mut().truncate(start);
                                    return Ok(SegRead::Torn {
                                        position: pos,
                                        reason: "incomplete entry at end of data",
                                        next_offset: expected,
                                    });
                                }
                            }
                        }
                        break;
                    }
                    Decoded::Invalid(reason) => {
                        if kept > 0 {
                            out.data_mut().truncate(c);
                            return Ok(SegRead::Records);
                        }
                        out.data_mut().truncate(start);
                        return Ok(SegRead::Torn {
                            position: pos + (c - start) as u64,
                            reason,
                            next_offset: expected,
                        });
                    }
                }
            }
            if kept > 0 {
                out.data_mut().truncate(c);
                return Ok(SegRead::Records);
            }
            // Everything read was before `offset`: drop it and read on.
            pos += (c - start) as u64;
            out.data_mut().truncate(start);
        }
    }
}
