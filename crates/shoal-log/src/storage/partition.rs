//! A partition: the ordered list of segments in `<topic>/<partition>/`, the
//! single writer (lock file, append, roll, retention, fsync, crash recovery)
//! and lock-free reads.
//!
//! # Writer and readers
//!
//! A process becomes a partition's writer on its first append: it takes
//! `writer.lock` (an exclusive `flock`; a second writer, in another process
//! or through another `LogDir` in this one, gets
//! [`Error::PartitionLocked`]), then recovers the active (last) segment:
//! it scans every entry, checking length, CRC and offset sequence, and
//! truncates the file at the first entry that fails (a torn tail after a
//! crash, or damage in the tail); everything before that point is kept as
//! is. The active segment's index is rebuilt from the same scan.
//!
//! In the writer's process, reads are bounded by the valid length the writer
//! publishes after each append, so they never see a partial batch. Any other
//! process reads the files as they are: it lists the directory, follows new
//! segments, re-reads the index tail, and treats an incomplete or invalid
//! entry at the end of the *last* segment as "end for now" (the writer may
//! be in the middle of a write); the same in an older segment is corruption.
//!
//! # Transactions
//!
//! [`Partition::append_tagged`] appends records of an open transaction
//! (rolling first to a version 2 segment if the active one is version 1);
//! [`Partition::end_txn`] appends its COMMIT or ABORT marker, once (a
//! replayed end is a no-op). The partition's [`TxnView`] knows the open
//! transactions (the *last stable offset* is the first offset of the oldest
//! one), the aborted ranges, and the newest epoch of each producer: an
//! append or marker with an older epoch fails with
//! [`Error::ProducerFenced`]. `read_committed` fetches never pass the last
//! stable offset and skip aborted records; markers are never returned.
//!
//! # Batches
//!
//! An append encodes the whole batch into one reusable buffer and hands it
//! to the OS with one positioned write (plus one for any new index entries).
//! A segment rolls before a batch that would grow it past `segment_bytes`;
//! the old segment is fsynced on roll, whatever the [`FsyncPolicy`].

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use super::index::{self, IndexEntry};
use super::segment::{LOG_HEADER, LOG_VERSION, LOG_VERSION_TXN, SegRead, Segment, UNKNOWN};
use super::txn_view::{ReadFilter, TxnView};
use crate::clock::Clock;
use crate::config::{FsyncPolicy, TopicConfig};
use crate::error::{Error, IoContext, Result};
use crate::fetch::FetchBuffer;
use crate::fetch::Isolation;
use crate::fsutil::LockFile;
use crate::record::{self, Control, MAX_BODY, RecordRef, TxnTag};

/// Lock file name inside a partition directory.
pub(crate) const WRITER_LOCK: &str = "writer.lock";

/// One segment as shown by `describe_topic`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentInfo {
    /// Offset of the segment's first record.
    pub base_offset: u64,
    /// Bytes of the `.log` file.
    pub bytes: u64,
}

/// A partition as shown by `describe_topic`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    /// Partition number.
    pub partition: u32,
    /// First offset still stored.
    pub start_offset: u64,
    /// Log end offset: the offset the next record will get.
    pub end_offset: u64,
    /// Number of records stored (`end - start`).
    pub records: u64,
    /// Segments, oldest first.
    pub segments: Vec<SegmentInfo>,
    /// Bytes of all segment files.
    pub bytes: u64,
}

/// What a retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionReport {
    /// Segments deleted.
    pub segments_deleted: usize,
    /// Bytes freed.
    pub bytes_deleted: u64,
}

impl RetentionReport {
    fn add(&mut self, other: RetentionReport) {
        self.segments_deleted += other.segments_deleted;
        self.bytes_deleted += other.bytes_deleted;
    }
}

/// State owned by the writer (behind the partition's writer mutex).
struct Writer {
    _lock: LockFile,
    active: Arc<Segment>,
    log: Arc<File>,
    index: File,
    position: u64,
    index_len: u64,
    next_offset: u64,
    bytes_since_index: u64,
    buf: Vec<u8>,
    index_buf: Vec<u8>,
    new_entries: Vec<IndexEntry>,
}

/// One partition of a topic; see the module docs.
pub(crate) struct Partition {
    topic: String,
    id: u32,
    dir: PathBuf,
    config: TopicConfig,
    read_only: bool,
    clock: Arc<dyn Clock>,
    segments: RwLock<Arc<Vec<Arc<Segment>>>>,
    view_loaded: AtomicBool,
    writer: Mutex<Option<Writer>>,
    is_writer: AtomicBool,
    end_offset: AtomicU64,
    /// Handle of the active log file for background syncs.
    sync_file: Mutex<Option<Arc<File>>>,
    dirty: AtomicBool,
    last_sync_ms: AtomicU64,
    /// Open and aborted transactions, producer epochs.
    txns: Mutex<TxnView>,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition")
            .field("topic", &self.topic)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Base offsets of the segments in `dir`, ascending.
fn list_bases(dir: &Path) -> Result<Vec<u64>> {
    let mut bases = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(bases),
        Err(e) => return Err(Error::io("list", dir, e)),
    };
    for entry in rd {
        let entry = entry.ctx("list", dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".log")
            && stem.len() == 20
            && let Ok(b) = stem.parse::<u64>()
        {
            bases.push(b);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

impl Partition {
    /// A handle on `dir` (created if missing and writable). Nothing is read
    /// or locked until first use.
    pub(crate) fn new(
        topic: &str,
        id: u32,
        dir: PathBuf,
        config: TopicConfig,
        read_only: bool,
        clock: Arc<dyn Clock>,
    ) -> Partition {
        Partition {
            topic: topic.to_owned(),
            id,
            dir,
            config,
            read_only,
            clock,
            segments: RwLock::new(Arc::new(Vec::new())),
            view_loaded: AtomicBool::new(false),
            writer: Mutex::new(None),
            is_writer: AtomicBool::new(false),
            end_offset: AtomicU64::new(0),
            sync_file: Mutex::new(None),
            dirty: AtomicBool::new(false),
            last_sync_ms: AtomicU64::new(0),
            txns: Mutex::new(TxnView::default()),
        }
    }

    /// Partition number.
    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    /// Topic name.
    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    /// The segments on disk now, opened afresh (for verify and repair).
    pub(crate) fn segment_files(&self) -> Result<Vec<Segment>> {
        list_bases(&self.dir)?
            .into_iter()
            .map(|b| Segment::open(&self.dir, b))
            .collect()
    }

    /// Whether this process is the partition's writer.
    pub(crate) fn is_writer(&self) -> bool {
        self.is_writer.load(Ordering::Acquire)
    }

    /// Current segment list (loading it from disk on first use).
    fn segments(&self) -> Result<Arc<Vec<Arc<Segment>>>> {
        if !self.view_loaded.load(Ordering::Acquire) {
            self.refresh_view()?;
        }
        Ok(self.segments.read().expect("segments lock").clone())
    }

    /// Reader processes: re-lists the directory, keeping already open
    /// segments. No-op once this process is the writer.
    fn refresh_view(&self) -> Result<()> {
        if self.is_writer() {
            return Ok(());
        }
        let bases = list_bases(&self.dir)?;
        let current = self.segments.read().expect("segments lock").clone();
        let mut next = Vec::with_capacity(bases.len());
        for b in bases {
            if let Some(s) = current.iter().find(|s| s.base_offset == b) {
                next.push(s.clone());
                continue;
            }
            match Segment::open(&self.dir, b) {
                Ok(s) => next.push(Arc::new(s)),
                // Deleted by retention between listing and opening.
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let mut guard = self.segments.write().expect("segments lock");
        if !self.is_writer() {
            *guard = Arc::new(next);
            self.view_loaded.store(true, Ordering::Release);
        }
        Ok(())
    }

    // ---- writer -------------------------------------------------------------

    /// Takes the writer lock and recovers the partition (see module docs).
    fn open_writer(&self) -> Result<Writer> {
        if self.read_only {
            return Err(Error::ReadOnly {
                path: self.dir.clone(),
            });
        }
        std::fs::create_dir_all(&self.dir).ctx("create dir", &self.dir)?;
        let lock_path = self.dir.join(WRITER_LOCK);
        let lock = LockFile::try_acquire(&lock_path)?.map_err(|held| Error::PartitionLocked {
            topic: self.topic.clone(),
            partition: self.id,
            path: lock_path.clone(),
            holder: held.holder,
        })?;
        let mut bases = list_bases(&self.dir)?;
        if bases.is_empty() {
            let (seg, _, _) = Segment::create(&self.dir, 0, LOG_VERSION)?;
            drop(seg);
            crate::fsutil::sync_dir(&self.dir)?;
            bases.push(0);
        }
        let mut segs: Vec<Arc<Segment>> = Vec::with_capacity(bases.len());
        for (i, &b) in bases.iter().enumerate() {
            let seg = Segment::open(&self.dir, b)?;
            if i + 1 < bases.len() {
                self.load_closed(&seg)?;
            }
            segs.push(Arc::new(seg));
        }
        let active = segs.last().expect("at least one segment").clone();
        let (position, next_offset, bytes_since_index) = self.recover_active(&active)?;
        // Rebuild the transaction view from the segments that can hold
        // transactional entries (the recovered lengths are known now).
        let mut view = TxnView::default();
        for seg in segs.iter().filter(|s| s.version() == LOG_VERSION_TXN) {
            seg.scan(LOG_HEADER, seg.base_offset, seg.len(), |_, m| view.apply(m))?;
        }
        *self.txns.lock().expect("txn view lock") = view;
        let log = Arc::new(
            OpenOptions::new()
                .write(true)
                .open(&active.log_path)
                .ctx("open for write", &active.log_path)?,
        );
        let index = OpenOptions::new()
            .write(true)
            .open(&active.index_path)
            .ctx("open for write", &active.index_path)?;
        let index_len =
            (index::INDEX_HEADER + active.index_entries().len() * index::INDEX_ENTRY) as u64;
        {
            let mut guard = self.segments.write().expect("segments lock");
            *guard = Arc::new(segs);
            self.end_offset.store(next_offset, Ordering::Release);
            self.is_writer.store(true, Ordering::Release);
            self.view_loaded.store(true, Ordering::Release);
        }
        *self.sync_file.lock().expect("sync lock") = Some(log.clone());
        self.last_sync_ms
            .store(self.clock.now_ms(), Ordering::Release);
        Ok(Writer {
            _lock: lock,
            active,
            log,
            index,
            position,
            index_len,
            next_offset,
            bytes_since_index,
            buf: Vec::new(),
            index_buf: Vec::new(),
            new_entries: Vec::new(),
        })
    }

    /// Fills in a closed segment's length, newest timestamp and
    /// (if missing) index.
    fn load_closed(&self, seg: &Segment) -> Result<()> {
        let len = seg.disk_len()?;
        seg.set_len(len);
        let entries = seg.index_entries();
        if entries.is_empty() && len > LOG_HEADER + self.config.index_interval_bytes as u64 * 2 {
            // Index missing or unreadable: rebuild it from the log.
            let (entries, end, _) = self.build_index(seg, len)?;
            let mut bytes = index::header(seg.base_offset).to_vec();
            entries.iter().for_each(|e| e.encode(&mut bytes));
            crate::fsutil::atomic_write(&seg.index_path, &bytes)?;
            seg.set_index(entries);
            seg.observe_timestamp(end);
            return Ok(());
        }
        let (pos, off) = seg.position_for(u64::MAX);
        let mut max_ts = seg.max_timestamp();
        seg.scan(pos, off, len, |_, m| max_ts = max_ts.max(m.timestamp))?;
        seg.observe_timestamp(max_ts);
        Ok(())
    }

    /// Scans a whole segment, returning the index it should have, its
    /// newest timestamp and how the scan ended.
    fn build_index(
        &self,
        seg: &Segment,
        limit: u64,
    ) -> Result<(Vec<IndexEntry>, i64, super::segment::ScanEnd)> {
        let interval = self.config.index_interval_bytes as u64;
        let mut entries = Vec::new();
        let mut since = 0u64;
        let mut max_ts = i64::MIN;
        let end = seg.scan(LOG_HEADER, seg.base_offset, limit, |pos, m| {
            max_ts = max_ts.max(m.timestamp);
            if since >= interval {
                entries.push(IndexEntry {
                    rel_offset: (m.offset - seg.base_offset) as u32,
                    position: pos as u32,
                    max_timestamp: max_ts,
                });
                since = 0;
            }
            since += m.total as u64;
        })?;
        Ok((entries, max_ts, end))
    }

    /// Recovers the active segment: validates every entry, truncates a torn
    /// tail, rewrites the index. Returns (valid length, next offset, bytes
    /// since the last index entry).
    fn recover_active(&self, seg: &Segment) -> Result<(u64, u64, u64)> {
        let disk = seg.disk_len()?;
        if disk < LOG_HEADER {
            // Crash while creating the segment: write its header again.
            let f = OpenOptions::new()
                .write(true)
                .open(&seg.log_path)
                .ctx("open for write", &seg.log_path)?;
            f.set_len(0).ctx("truncate", &seg.log_path)?;
            f.write_all_at(&super::segment::header(seg.base_offset, seg.version()), 0)
                .ctx("write", &seg.log_path)?;
            f.sync_all().ctx("fsync", &seg.log_path)?;
        }
        let (entries, max_ts, end) = self.build_index(seg, UNKNOWN)?;
        if let Some(reason) = end.torn
            && let Some((pos, offset)) = seg.entry_after(end.end_pos)?
        {
            // Acknowledged records follow the bad bytes: never drop them
            // silently (issue 16).
            return Err(Error::Corrupt {
                path: seg.log_path.clone(),
                position: end.end_pos,
                reason: format!(
                    "{reason} at offset {} of topic {} partition {}, before acknowledged records (offset {offset} at byte {pos}); \
                     the partition is not opened for writing: `shoal topic verify {}` shows the damage, \
                     `shoal topic repair {} --truncate-after-damage` drops everything from it on",
                    end.next_offset, self.topic, self.id, self.topic, self.topic
                ),
            });
        }
        if let Some(reason) = end.torn {
            let disk = seg.disk_len()?;
            tracing::warn!(
                topic = %self.topic,
                partition = self.id,
                segment = %seg.log_path.display(),
                position = end.end_pos,
                dropped_bytes = disk - end.end_pos,
                reason,
                "truncating invalid tail of the active segment"
            );
            let f = OpenOptions::new()
                .write(true)
                .open(&seg.log_path)
                .ctx("open for write", &seg.log_path)?;
            f.set_len(end.end_pos).ctx("truncate", &seg.log_path)?;
            f.sync_all().ctx("fsync", &seg.log_path)?;
        }
        let mut bytes = index::header(seg.base_offset).to_vec();
        entries.iter().for_each(|e| e.encode(&mut bytes));
        crate::fsutil::atomic_write(&seg.index_path, &bytes)?;
        let since = match entries.last() {
            Some(e) => end.end_pos - e.position as u64,
            None => end.end_pos - LOG_HEADER,
        };
        seg.set_index(entries);
        seg.observe_timestamp(max_ts);
        seg.set_len(end.end_pos);
        Ok((end.end_pos, end.next_offset, since))
    }

    /// Appends records (all of `records`, or those at `indices`) as one
    /// batch; returns the offset of the first. An empty batch returns the
    /// log end offset.
    pub(crate) fn append(&self, records: &[RecordRef<'_>], indices: Option<&[u32]>) -> Result<u64> {
        self.append_tagged(records, indices, None)
    }

    /// [`Partition::append`], the records belonging to the open transaction
    /// `tag` (whose control must be [`Control::Data`]) when given.
    pub(crate) fn append_tagged(
        &self,
        records: &[RecordRef<'_>],
        indices: Option<&[u32]>,
        tag: Option<&TxnTag>,
    ) -> Result<u64> {
        let mut guard = self.writer.lock().expect("writer lock");
        if guard.is_none() {
            *guard = Some(self.open_writer()?);
        }
        let w = guard.as_mut().expect("writer");
        if let Some(t) = tag {
            self.check_epoch(t)?;
            if w.active.version() != LOG_VERSION_TXN
                && indices.map_or(records.len(), <[u32]>::len) > 0
            {
                self.upgrade_active(w)?;
            }
        }
        self.append_locked(w, records, indices, tag)
    }

    /// Fails with [`Error::ProducerFenced`] if a newer epoch of the producer
    /// wrote here.
    fn check_epoch(&self, t: &TxnTag) -> Result<()> {
        let view = self.txns.lock().expect("txn view lock");
        match view.epochs.get(&t.producer_id) {
            Some(&newer) if newer > t.epoch => Err(Error::ProducerFenced {
                producer_id: t.producer_id,
                epoch: t.epoch,
                current: newer,
            }),
            _ => Ok(()),
        }
    }

    /// Makes the active segment version 2 before its first transactional
    /// entry: rolls, or (if it is empty) rewrites its header in place.
    fn upgrade_active(&self, w: &mut Writer) -> Result<()> {
        if w.position > LOG_HEADER {
            return self.roll(w, LOG_VERSION_TXN);
        }
        w.log
            .write_all_at(
                &super::segment::header(w.active.base_offset, LOG_VERSION_TXN),
                0,
            )
            .ctx("write", &w.active.log_path)?;
        w.log.sync_data().ctx("fsync", &w.active.log_path)?;
        w.active.set_version(LOG_VERSION_TXN);
        Ok(())
    }

    /// Ends transaction `tag.txn` of `tag.producer_id` with a marker of
    /// kind `tag.control` (commit or abort). Returns the marker's offset, or
    /// `None` if the transaction is not open here (never started, or already
    /// ended: a replayed end is a no-op).
    pub(crate) fn end_txn(&self, tag: &TxnTag, timestamp: i64) -> Result<Option<u64>> {
        debug_assert!(tag.control != Control::Data);
        let mut guard = self.writer.lock().expect("writer lock");
        if guard.is_none() {
            *guard = Some(self.open_writer()?);
        }
        let w = guard.as_mut().expect("writer");
        self.check_epoch(tag)?;
        if !self
            .txns
            .lock()
            .expect("txn view lock")
            .open
            .contains_key(&(tag.producer_id, tag.txn))
        {
            return Ok(None);
        }
        let marker: [RecordRef<'_>; 1] = [(None, b"", timestamp)];
        self.append_locked(w, &marker, None, Some(tag)).map(Some)
    }

    /// Open transactions of `producer_id` in this partition (becoming its
    /// writer first, which rebuilds the view from the files).
    pub(crate) fn open_txns(&self, producer_id: u64) -> Result<Vec<u64>> {
        self.open_for_write()?;
        Ok(self
            .txns
            .lock()
            .expect("txn view lock")
            .open_of(producer_id))
    }

    fn append_locked(
        &self,
        w: &mut Writer,
        records: &[RecordRef<'_>],
        indices: Option<&[u32]>,
        tag: Option<&TxnTag>,
    ) -> Result<u64> {
        let count = indices.map_or(records.len(), <[u32]>::len);
        if count == 0 {
            return Ok(w.next_offset);
        }
        let rec = |i: usize| -> &RecordRef<'_> {
            match indices {
                Some(ix) => &records[ix[i] as usize],
                None => &records[i],
            }
        };
        let mut total = 0u64;
        for i in 0..count {
            let (k, v, _) = rec(i);
            let n = record::encoded_len(*k, v, tag.is_some());
            if n - record::ENTRY_HEADER > MAX_BODY {
                return Err(Error::RecordTooLarge {
                    size: n,
                    max: MAX_BODY,
                });
            }
            total += n as u64;
        }
        if w.position > LOG_HEADER && w.position + total > self.config.segment_bytes {
            let version = w.active.version();
            self.roll(w, version)?;
        }
        let first = w.next_offset;
        let interval = self.config.index_interval_bytes as u64;
        w.buf.clear();
        w.index_buf.clear();
        w.new_entries.clear();
        let mut max_ts = w.active.max_timestamp();
        for i in 0..count {
            let (k, v, ts) = *rec(i);
            let pos = w.position + w.buf.len() as u64;
            let offset = first + i as u64;
            max_ts = max_ts.max(ts);
            if w.bytes_since_index >= interval && pos <= u32::MAX as u64 {
                let e = IndexEntry {
                    rel_offset: (offset - w.active.base_offset) as u32,
                    position: pos as u32,
                    max_timestamp: max_ts,
                };
                e.encode(&mut w.index_buf);
                w.new_entries.push(e);
                w.bytes_since_index = 0;
            }
            let before = w.buf.len();
            record::encode_tagged(&mut w.buf, offset, ts, k, v, tag);
            w.bytes_since_index += (w.buf.len() - before) as u64;
        }
        if let Err(e) = w.log.write_all_at(&w.buf, w.position) {
            // Cut whatever part of the batch reached the file.
            let _ = w.log.set_len(w.position);
            return Err(Error::io("append", &w.active.log_path, e));
        }
        if !w.index_buf.is_empty() {
            w.index
                .write_all_at(&w.index_buf, w.index_len)
                .ctx("append", &w.active.index_path)?;
            w.index_len += w.index_buf.len() as u64;
            w.active.extend_index(&w.new_entries);
        }
        if let Some(t) = tag {
            // Data: the transaction is open from its first record on; a
            // marker (always a batch of one) closes it.
            self.txns.lock().expect("txn view lock").apply_tag(t, first);
        }
        w.position += w.buf.len() as u64;
        w.next_offset += count as u64;
        w.active.observe_timestamp(max_ts);
        w.active.set_len(w.position);
        self.end_offset.store(w.next_offset, Ordering::Release);
        match self.config.fsync {
            FsyncPolicy::EveryBatch => {
                w.log.sync_data().ctx("fsync", &w.active.log_path)?;
            }
            FsyncPolicy::Interval(d) => {
                let now = self.clock.now_ms();
                if now.saturating_sub(self.last_sync_ms.load(Ordering::Acquire))
                    >= d.as_millis() as u64
                {
                    w.log.sync_data().ctx("fsync", &w.active.log_path)?;
                    self.last_sync_ms.store(now, Ordering::Release);
                    self.dirty.store(false, Ordering::Release);
                } else {
                    self.dirty.store(true, Ordering::Release);
                }
            }
            FsyncPolicy::Never => self.dirty.store(true, Ordering::Release),
        }
        Ok(first)
    }

    /// Closes the active segment (fsynced) and starts a new one at the log
    /// end offset, then applies retention.
    fn roll(&self, w: &mut Writer, version: u8) -> Result<()> {
        w.log.sync_data().ctx("fsync", &w.active.log_path)?;
        w.index.sync_data().ctx("fsync", &w.active.index_path)?;
        let (seg, log_w, index_w) = Segment::create(&self.dir, w.next_offset, version)?;
        crate::fsutil::sync_dir(&self.dir)?;
        let seg = Arc::new(seg);
        {
            let mut guard = self.segments.write().expect("segments lock");
            let mut list: Vec<Arc<Segment>> = guard.as_ref().clone();
            list.push(seg.clone());
            *guard = Arc::new(list);
        }
        w.active = seg;
        w.log = Arc::new(log_w);
        w.index = index_w;
        w.position = LOG_HEADER;
        w.index_len = index::INDEX_HEADER as u64;
        w.bytes_since_index = 0;
        *self.sync_file.lock().expect("sync lock") = Some(w.log.clone());
        self.dirty.store(false, Ordering::Release);
        self.retain(w)?;
        Ok(())
    }

    /// Deletes old closed segments per the retention settings.
    fn retain(&self, w: &Writer) -> Result<RetentionReport> {
        let mut report = RetentionReport::default();
        let segs = self.segments.read().expect("segments lock").clone();
        let mut total: u64 = segs.iter().map(|s| s.size()).sum();
        let now = self.clock.now_ms() as i64;
        let mut drop_n = 0;
        for s in segs.iter() {
            if Arc::ptr_eq(s, &w.active) {
                break;
            }
            let size = s.size();
            let by_size = self
                .config
                .retention_bytes
                .is_some_and(|limit| total.saturating_sub(size) >= limit);
            let by_age = self.config.retention.is_some_and(|age| {
                s.max_timestamp() != i64::MIN && s.max_timestamp() < now - age.as_millis() as i64
            });
            if !(by_size || by_age) {
                break;
            }
            total -= size;
            drop_n += 1;
            report.segments_deleted += 1;
            report.bytes_deleted += size;
        }
        if drop_n == 0 {
            return Ok(report);
        }
        {
            let mut guard = self.segments.write().expect("segments lock");
            *guard = Arc::new(guard[drop_n..].to_vec());
            let start = guard.first().map_or(0, |s| s.base_offset);
            self.txns
                .lock()
                .expect("txn view lock")
                .forget_before(start);
        }
        for s in &segs[..drop_n] {
            tracing::debug!(topic = %self.topic, partition = self.id, base = s.base_offset, "retention deletes segment");
            std::fs::remove_file(&s.log_path).ctx("delete segment", &s.log_path)?;
            let _ = std::fs::remove_file(&s.index_path);
        }
        crate::fsutil::sync_dir(&self.dir)?;
        Ok(report)
    }

    /// Applies retention now if this process writes the partition.
    pub(crate) fn enforce_retention(&self) -> Result<RetentionReport> {
        let guard = self.writer.lock().expect("writer lock");
        match guard.as_ref() {
            Some(w) => self.retain(w),
            None => Ok(RetentionReport::default()),
        }
    }

    /// Becomes the writer now (takes the lock and recovers) if not already.
    pub(crate) fn open_for_write(&self) -> Result<()> {
        let mut guard = self.writer.lock().expect("writer lock");
        if guard.is_none() {
            *guard = Some(self.open_writer()?);
        }
        Ok(())
    }

    /// Fsyncs the active segment if it has unsynced appends.
    pub(crate) fn flush(&self) -> Result<()> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let f = self.sync_file.lock().expect("sync lock").clone();
        if let Some(f) = f {
            f.sync_data().ctx("fsync", &self.dir)?;
            self.last_sync_ms
                .store(self.clock.now_ms(), Ordering::Release);
        }
        Ok(())
    }

    /// Background flusher: syncs if dirty and the interval has passed.
    pub(crate) fn flush_if_due(&self) -> Result<()> {
        if let FsyncPolicy::Interval(d) = self.config.fsync
            && self.dirty.load(Ordering::Acquire)
            && self
                .clock
                .now_ms()
                .saturating_sub(self.last_sync_ms.load(Ordering::Acquire))
                >= d.as_millis() as u64
        {
            self.flush()?;
        }
        Ok(())
    }

    // ---- readers ------------------------------------------------------------

    /// First offset still stored.
    pub(crate) fn start_offset(&self) -> Result<u64> {
        if !self.is_writer() {
            self.refresh_view()?;
        }
        let segs = self.segments()?;
        Ok(segs.first().map_or(0, |s| s.base_offset))
    }

    /// Log end offset (next offset to be written).
    pub(crate) fn end_offset(&self) -> Result<u64> {
        if self.is_writer() {
            return Ok(self.end_offset.load(Ordering::Acquire));
        }
        self.refresh_view()?;
        let segs = self.segments()?;
        let Some(last) = segs.last() else {
            return Ok(0);
        };
        last.refresh_index()?;
        let (pos, off) = last.position_for(u64::MAX);
        Ok(last.scan(pos, off, UNKNOWN, |_, _| {})?.next_offset)
    }

    /// Reads records from `offset` into `out` (cleared first).
    pub(crate) fn read(
        &self,
        offset: u64,
        max_records: usize,
        max_bytes: usize,
        isolation: Isolation,
        out: &mut FetchBuffer,
    ) -> Result<()> {
        out.clear();
        if max_records == 0 {
            return Ok(());
        }
        let mut refreshed = false;
        'outer: loop {
            let writer = self.is_writer();
            let end = self.end_offset.load(Ordering::Acquire);
            let segs = self.segments()?;
            let start = segs.first().map_or(0, |s| s.base_offset);
            if writer {
                out.set_bounds(Some(start), Some(end));
                if offset < start || offset > end {
                    return Err(self.out_of_range(offset, start, end));
                }
                if offset == end {
                    return Ok(());
                }
            } else {
                out.set_bounds(Some(start), None);
                if segs.is_empty() || offset < start {
                    if !refreshed {
                        self.refresh_view()?;
                        refreshed = true;
                        continue 'outer;
                    }
                    if segs.is_empty() && offset == 0 {
                        return Ok(());
                    }
                    return Err(self.out_of_range(offset, start, self.end_offset()?));
                }
            }
            let filter = self.read_filter(isolation, writer, end, &segs, offset)?;
            if isolation == Isolation::ReadCommitted {
                if filter.stop != u64::MAX {
                    out.set_last_stable(filter.stop);
                } else if writer {
                    out.set_last_stable(end);
                }
                if offset >= filter.stop {
                    return Ok(());
                }
            }
            let first = segs.partition_point(|s| s.base_offset <= offset) - 1;
            for (i, seg) in segs.iter().enumerate().skip(first) {
                let last = i + 1 == segs.len();
                let limit = if writer { seg.len() } else { UNKNOWN };
                if !writer && last && seg.past_index(offset) {
                    seg.refresh_index()?;
                }
                match seg.read_into(offset, limit, max_records, max_bytes, &filter, out)? {
                    SegRead::Records | SegRead::Stopped => return Ok(()),
                    SegRead::End { next_offset } => {
                        if !last {
                            continue;
                        }
                        if writer {
                            return Ok(());
                        }
                        if !refreshed {
                            self.refresh_view()?;
                            refreshed = true;
                            continue 'outer;
                        }
                        out.set_bounds(Some(start), Some(next_offset));
                        if offset > next_offset {
                            return Err(self.out_of_range(offset, start, next_offset));
                        }
                        return Ok(());
                    }
                    SegRead::Torn {
                        position,
                        reason,
                        next_offset,
                    } => {
                        if !writer && last {
                            seg.refresh_index()?;
                            if seg.entry_after(position)?.is_none() {
                                // Another process is mid-write: end for now.
                                out.set_bounds(Some(start), Some(next_offset));
                                return Ok(());
                            }
                            // Valid records follow: damage, reported below.
                            return Err(self.damaged(seg, position, reason, next_offset));
                        }
                        if !writer && !refreshed {
                            self.refresh_view()?;
                            refreshed = true;
                            continue 'outer;
                        }
                        return Err(self.damaged(seg, position, reason, next_offset));
                    }
                }
            }
            return Ok(());
        }
    }

    /// The error for damage at byte `position` of `seg`, where offset
    /// `offset` was expected.
    fn damaged(&self, seg: &Segment, position: u64, reason: &str, offset: u64) -> Error {
        Error::Corrupt {
            path: seg.log_path.clone(),
            position,
            reason: format!(
                "{reason} at offset {offset} (topic {}, partition {}, segment {}); see `shoal topic verify {}`",
                self.topic,
                self.id,
                seg.log_path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                self.topic
            ),
        }
    }

    /// What a fetch from `offset` with `isolation` may return (see
    /// [`ReadFilter`]); reader processes first scan what is new.
    fn read_filter(
        &self,
        isolation: Isolation,
        writer: bool,
        end: u64,
        segs: &[Arc<Segment>],
        offset: u64,
    ) -> Result<ReadFilter> {
        if isolation == Isolation::ReadUncommitted {
            return Ok(ReadFilter::uncommitted());
        }
        let mut view = self.txns.lock().expect("txn view lock");
        let covered = if writer {
            // Everything below `end` (loaded before this lock) is in the view.
            end
        } else {
            Self::advance_view(&mut view, segs)?;
            view.scanned.map_or(0, |(_, _, next)| next)
        };
        Ok(ReadFilter {
            stop: view.first_open().unwrap_or(u64::MAX),
            covered,
            aborted: Some(view.aborted_from(offset)),
        })
    }

    /// Reader processes: scans the version 2 segments from where the last
    /// scan ended, up to what is readable now.
    fn advance_view(view: &mut TxnView, segs: &[Arc<Segment>]) -> Result<()> {
        for (i, seg) in segs.iter().enumerate() {
            let last = i + 1 == segs.len();
            let (pos, off) = match view.scanned {
                Some((base, _, _)) if base > seg.base_offset => continue,
                Some((base, pos, off)) if base == seg.base_offset => (pos, off),
                _ => (LOG_HEADER, seg.base_offset),
            };
            if seg.refresh_version()? != LOG_VERSION_TXN {
                // No transactional entry in it; the active one may still
                // turn version 2 (in place, while empty), so look again later.
                if !last {
                    let next = segs[i + 1].base_offset;
                    view.scanned = Some((next, LOG_HEADER, next));
                }
                continue;
            }
            let end = seg.scan(pos, off, UNKNOWN, |_, m| view.apply(m))?;
            view.scanned = Some((seg.base_offset, end.end_pos, end.next_offset));
            if end.torn.is_some() {
                // The writer is mid-write (or a closed segment is damaged,
                // which the fetch itself reports): known up to here.
                break;
            }
        }
        Ok(())
    }

    /// The last stable offset: the first offset of the oldest open
    /// transaction, else the log end offset.
    pub(crate) fn last_stable_offset(&self) -> Result<u64> {
        let end = self.end_offset()?;
        let segs = self.segments()?;
        let mut view = self.txns.lock().expect("txn view lock");
        if !self.is_writer() {
            Self::advance_view(&mut view, &segs)?;
        }
        Ok(view.first_open().map_or(end, |f| f.min(end)))
    }

    fn out_of_range(&self, offset: u64, start: u64, end: u64) -> Error {
        Error::OffsetOutOfRange {
            topic: self.topic.clone(),
            partition: self.id,
            offset,
            start,
            end,
        }
    }

    /// Offsets, segments and sizes.
    pub(crate) fn describe(&self) -> Result<PartitionInfo> {
        if !self.is_writer() {
            self.refresh_view()?;
        }
        let end_offset = self.end_offset()?;
        let segs = self.segments()?;
        let start_offset = segs.first().map_or(0, |s| s.base_offset);
        let segments: Vec<SegmentInfo> = segs
            .iter()
            .map(|s| SegmentInfo {
                base_offset: s.base_offset,
                bytes: s.size(),
            })
            .collect();
        Ok(PartitionInfo {
            partition: self.id,
            start_offset,
            end_offset,
            records: end_offset.saturating_sub(start_offset),
            bytes: segments.iter().map(|s| s.bytes).sum(),
            segments,
        })
    }

    /// Releases the writer (lock file) and forgets the view.
    pub(crate) fn close(&self) {
        let _ = self.flush();
        *self.writer.lock().expect("writer lock") = None;
        *self.sync_file.lock().expect("sync lock") = None;
    }

    /// The partition directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        // A clean close leaves nothing unsynced, whatever the policy.
        if let Err(e) = self.flush() {
            tracing::warn!(topic = %self.topic, partition = self.id, error = %e, "fsync on close failed");
        }
    }
}

/// Sums retention reports.
pub(crate) fn sum_reports(reports: impl IntoIterator<Item = RetentionReport>) -> RetentionReport {
    let mut r = RetentionReport::default();
    reports.into_iter().for_each(|x| r.add(x));
    r
}
