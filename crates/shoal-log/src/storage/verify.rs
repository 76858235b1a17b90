//! `verify` and `repair` of a partition's segments.
//!
//! [`Partition::verify`] scans every entry of every segment (length, CRC,
//! offset sequence) and reports the first bad entry of each segment. A bad
//! entry at the very end of the active segment with no acknowledged entry
//! after it is a *torn tail* (a write cut by a crash, or one in progress):
//! the next writer truncates it, and it is reported as such, not as damage.
//!
//! [`Partition::repair`] is the explicit, destructive answer to damage: it
//! takes the writer lock, cuts the damaged segment at the bad entry, deletes
//! every later segment and says how many records that dropped. Offsets after
//! the cut are reused by the next append, so consumer groups that committed
//! past it must be reset by the operator.

use serde::{Deserialize, Serialize};

use super::index;
use super::partition::{Partition, WRITER_LOCK};
use super::segment::{LOG_HEADER, Segment, UNKNOWN};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::LockFile;

/// Bad bytes found by [`Partition::verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Damage {
    /// Partition number.
    pub partition: u32,
    /// Segment file name (`<base offset>.log`).
    pub segment: String,
    /// Byte position of the first bad entry in the segment.
    pub position: u64,
    /// Offset the bad entry should have had.
    pub offset: u64,
    /// What check failed.
    pub reason: String,
    /// A torn tail of the active segment (the next writer truncates it),
    /// rather than damage before acknowledged records.
    pub torn_tail: bool,
}

/// What [`Partition::repair`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repair {
    /// Partition number.
    pub partition: u32,
    /// Where it cut: the damage (none: nothing to repair).
    pub damage: Option<Damage>,
    /// Records dropped (from the damaged offset to the old end).
    pub records_dropped: u64,
    /// Segments deleted whole.
    pub segments_deleted: usize,
}

fn seg_name(seg: &Segment) -> String {
    seg.log_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl Partition {
    /// Every bad entry (the first of each segment), oldest first.
    pub(crate) fn verify(&self) -> Result<Vec<Damage>> {
        let segs = self.segment_files()?;
        let mut found = Vec::new();
        for (i, seg) in segs.iter().enumerate() {
            let last = i + 1 == segs.len();
            seg.refresh_index()?;
            let end = seg.scan(LOG_HEADER, seg.base_offset, UNKNOWN, |_, _| {})?;
            let Some(reason) = end.torn else { continue };
            let torn_tail = last && seg.entry_after(end.end_pos)?.is_none();
            found.push(Damage {
                partition: self.id(),
                segment: seg_name(seg),
                position: end.end_pos,
                offset: end.next_offset,
                reason: reason.to_string(),
                torn_tail,
            });
        }
        Ok(found)
    }

    /// Cuts the partition at its first damage (see the module docs). Fails
    /// with [`Error::PartitionLocked`] while another process writes it.
    pub(crate) fn repair(&self) -> Result<Repair> {
        let lock_path = self.dir().join(WRITER_LOCK);
        let _lock = LockFile::try_acquire(&lock_path)?.map_err(|held| Error::PartitionLocked {
            topic: self.topic().to_owned(),
            partition: self.id(),
            path: lock_path.clone(),
            holder: held.holder,
        })?;
        let damage = self.verify()?.into_iter().find(|d| !d.torn_tail);
        let Some(damage) = damage else {
            return Ok(Repair {
                partition: self.id(),
                damage: None,
                records_dropped: 0,
                segments_deleted: 0,
            });
        };
        let segs = self.segment_files()?;
        // The old end: the last segment's last acknowledged entry, scanned on.
        let last = segs.last().expect("damage implies a segment");
        let mut old_end = damage.offset;
        for e in last.index_entries().iter().rev() {
            let (pos, off) = (e.position as u64, last.base_offset + e.rel_offset as u64);
            let end = last.scan(pos, off, UNKNOWN, |_, _| {})?;
            if end.next_offset > off {
                old_end = old_end.max(end.next_offset);
                break;
            }
        }
        if last.index_entries().is_empty() || old_end == damage.offset {
            let end = last.scan(LOG_HEADER, last.base_offset, UNKNOWN, |_, _| {})?;
            old_end = old_end.max(end.next_offset);
        }
        let mut deleted = 0;
        let mut past = false;
        for seg in &segs {
            if seg_name(seg) == damage.segment {
                past = true;
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&seg.log_path)
                    .ctx("open for write", &seg.log_path)?;
                f.set_len(damage.position).ctx("truncate", &seg.log_path)?;
                f.sync_all().ctx("fsync", &seg.log_path)?;
                // The next writer rebuilds the index of the (now active) segment.
                crate::fsutil::atomic_write(&seg.index_path, &index::header(seg.base_offset))?;
            } else if past {
                std::fs::remove_file(&seg.log_path).ctx("delete", &seg.log_path)?;
                let _ = std::fs::remove_file(&seg.index_path);
                deleted += 1;
            }
        }
        crate::fsutil::sync_dir(self.dir())?;
        tracing::warn!(
            topic = %self.topic(),
            partition = self.id(),
            segment = %damage.segment,
            position = damage.position,
            offset = damage.offset,
            records_dropped = old_end - damage.offset,
            "repaired: cut the partition at the damage"
        );
        Ok(Repair {
            partition: self.id(),
            records_dropped: old_end.saturating_sub(damage.offset),
            damage: Some(damage),
            segments_deleted: deleted,
        })
    }
}
