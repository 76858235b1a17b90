//! [`TxnView`]: what a partition knows about transactions: which are open
//! (and where they start), which were aborted (the offset range to skip),
//! and the newest epoch seen per producer (fencing).
//!
//! The writer process keeps it current as it appends. At writer start and in
//! reader processes it is rebuilt by scanning the version 2 segments (the
//! only ones that can hold transactional entries, see
//! [`crate::storage::segment`]) — incrementally: a reader continues from
//! where its previous scan ended. The log itself (data records and
//! markers) is the only truth; nothing else is stored, so a torn tail cut on
//! recovery simply leaves its transaction open (to be committed or aborted
//! again, idempotently).

use std::collections::HashMap;

use crate::record::{Control, EntryMeta, TxnTag};

/// An aborted transaction's records in one partition: those of
/// `producer_id`/`txn` with offsets in `first..=last` (`last` is the abort
/// marker's offset) are skipped by `read_committed` fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AbortedTxn {
    pub producer_id: u64,
    pub txn: u64,
    pub first: u64,
    pub last: u64,
}

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct TxnView {
    /// Open transactions `(producer_id, txn)` → offset of their first record.
    pub open: HashMap<(u64, u64), u64>,
    /// Aborted transactions, in marker order (ascending `last`).
    pub aborted: Vec<AbortedTxn>,
    /// Newest epoch seen per producer id.
    pub epochs: HashMap<u64, u32>,
    /// Reader processes: `(segment base, byte position, next offset)` the
    /// scan has covered; the view knows every transactional entry before it.
    pub scanned: Option<(u64, u64, u64)>,
}

impl TxnView {
    /// Takes one entry (in offset order) into account.
    pub fn apply(&mut self, m: &EntryMeta) {
        if let Some(t) = &m.txn {
            self.apply_tag(t, m.offset);
        }
    }

    /// Takes a transactional entry at `offset` into account.
    pub fn apply_tag(&mut self, t: &TxnTag, offset: u64) {
        let e = self.epochs.entry(t.producer_id).or_insert(t.epoch);
        *e = (*e).max(t.epoch);
        let key = (t.producer_id, t.txn);
        match t.control {
            Control::Data => {
                self.open.entry(key).or_insert(offset);
            }
            Control::Commit => {
                self.open.remove(&key);
            }
            Control::Abort => {
                if let Some(first) = self.open.remove(&key) {
                    self.aborted.push(AbortedTxn {
                        producer_id: t.producer_id,
                        txn: t.txn,
                        first,
                        last: offset,
                    });
                }
            }
        }
    }

    /// First offset of the oldest open transaction, if any.
    pub fn first_open(&self) -> Option<u64> {
        self.open.values().min().copied()
    }

    /// Open transactions of `producer_id`, ascending.
    pub fn open_of(&self, producer_id: u64) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .open
            .keys()
            .filter(|(p, _)| *p == producer_id)
            .map(|(_, t)| *t)
            .collect();
        v.sort_unstable();
        v
    }

    /// Aborted transactions whose range reaches `offset` or later.
    pub fn aborted_from(&self, offset: u64) -> Vec<AbortedTxn> {
        let i = self.aborted.partition_point(|a| a.last < offset);
        self.aborted[i..].to_vec()
    }

    /// Forgets aborted ranges wholly before `start` (deleted by retention).
    pub fn forget_before(&mut self, start: u64) {
        let i = self.aborted.partition_point(|a| a.last < start);
        self.aborted.drain(..i);
    }
}

/// What a fetch may return; see [`crate::Isolation`].
#[derive(Debug, Clone, Default)]
pub(crate) struct ReadFilter {
    /// Nothing at or past this offset is returned (the last stable offset).
    pub stop: u64,
    /// No transactional entry at or past this offset is returned (the view
    /// does not know its fate yet).
    pub covered: u64,
    /// `read_committed`: records of these aborted transactions are skipped.
    pub aborted: Option<Vec<AbortedTxn>>,
}

impl ReadFilter {
    /// Everything (markers excepted): `read_uncommitted`.
    pub fn uncommitted() -> Self {
        ReadFilter {
            stop: u64::MAX,
            covered: u64::MAX,
            aborted: None,
        }
    }

    /// Whether the fetch must end before the entry `m`.
    #[inline]
    pub fn stops_at(&self, m: &EntryMeta) -> bool {
        m.offset >= self.stop || (m.txn.is_some() && m.offset >= self.covered)
    }

    /// Whether the entry `m` is skipped (a marker, or a record of an aborted
    /// transaction in `read_committed` mode).
    #[inline]
    pub fn skips(&self, m: &EntryMeta) -> bool {
        let Some(t) = &m.txn else { return false };
        if m.is_marker() {
            return true;
        }
        self.aborted.as_ref().is_some_and(|list| {
            list.iter().any(|a| {
                a.producer_id == t.producer_id
                    && a.txn == t.txn
                    && a.first <= m.offset
                    && m.offset <= a.last
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(pid: u64, txn: u64, control: Control) -> TxnTag {
        TxnTag {
            producer_id: pid,
            epoch: 1,
            txn,
            control,
        }
    }

    #[test]
    fn open_commit_abort_bookkeeping() {
        let mut v = TxnView::default();
        v.apply_tag(&tag(1, 5, Control::Data), 10);
        v.apply_tag(&tag(1, 5, Control::Data), 11);
        v.apply_tag(&tag(2, 7, Control::Data), 12);
        assert_eq!(v.first_open(), Some(10));
        v.apply_tag(&tag(1, 5, Control::Commit), 13);
        assert_eq!(v.first_open(), Some(12));
        v.apply_tag(&tag(2, 7, Control::Abort), 14);
        assert_eq!(v.first_open(), None);
        assert_eq!(
            v.aborted,
            vec![AbortedTxn {
                producer_id: 2,
                txn: 7,
                first: 12,
                last: 14
            }]
        );
        // A replayed marker of a closed transaction changes nothing.
        v.apply_tag(&tag(2, 7, Control::Abort), 15);
        assert_eq!(v.aborted.len(), 1);
        assert_eq!(v.aborted_from(15), vec![]);
        assert_eq!(v.aborted_from(14).len(), 1);
    }
}
