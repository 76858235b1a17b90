//! [`Producer`]: appends batches to a topic, choosing each record's
//! partition by Kafka's murmur2 of its key, or round-robin without a key
//! (see [`crate::partitioner`]).
//!
//! A batch is split by partition (a counting sort of record indices, no
//! per-record allocation) and each partition's share is appended with one
//! write. Order is kept within each partition. A batch spanning several
//! partitions is not atomic across them: on error, earlier partitions may
//! have been written.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::error::Result;
use crate::partitioner::partition_for_key;
use crate::record::{RecordRef, TxnTag};

/// Where one appended record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Appended {
    /// Partition chosen.
    pub partition: u32,
    /// Offset assigned.
    pub offset: u64,
}

/// Appends records to topics of one log directory. Cheap to clone; usable
/// from many threads at once (appends to one partition are serialized).
#[derive(Debug, Clone)]
pub struct Producer {
    catalog: Arc<Catalog>,
}

impl Producer {
    pub(crate) fn new(catalog: Arc<Catalog>) -> Self {
        Producer { catalog }
    }

    /// Appends `records` (`(key, value, timestamp_ms)`) to `topic`; returns
    /// each record's partition and offset, in input order.
    pub fn append(&self, topic: &str, records: &[RecordRef<'_>]) -> Result<Vec<Appended>> {
        self.append_tagged(topic, records, None)
    }

    /// [`Producer::append`], as records of the open transaction `tag` when
    /// given (see [`crate::txn`]).
    pub(crate) fn append_tagged(
        &self,
        topic: &str,
        records: &[RecordRef<'_>],
        tag: Option<&TxnTag>,
    ) -> Result<Vec<Appended>> {
        let t = self.catalog.topic(topic)?;
        let n = t.partition_count();
        let mut out = vec![
            Appended {
                partition: 0,
                offset: 0
            };
            records.len()
        ];
        if records.is_empty() {
            return Ok(out);
        }
        if n == 1 {
            let first = t.partition(0)?.append_tagged(records, None, tag)?;
            for (i, a) in out.iter_mut().enumerate() {
                a.offset = first + i as u64;
            }
            return Ok(out);
        }
        // Choose partitions, then group record indices by partition.
        let mut counts = vec![0u32; n as usize + 1];
        for (a, (key, _, _)) in out.iter_mut().zip(records) {
            a.partition = match key {
                Some(k) => partition_for_key(k, n),
                None => t.round_robin.next(n),
            };
            counts[a.partition as usize + 1] += 1;
        }
        for p in 1..counts.len() {
            counts[p] += counts[p - 1];
        }
        let mut order = vec![0u32; records.len()];
        let mut fill = counts.clone();
        for (i, a) in out.iter().enumerate() {
            let slot = &mut fill[a.partition as usize];
            order[*slot as usize] = i as u32;
            *slot += 1;
        }
        for p in 0..n {
            let (s, e) = (counts[p as usize] as usize, counts[p as usize + 1] as usize);
            if s == e {
                continue;
            }
            let first = t
                .partition(p)?
                .append_tagged(records, Some(&order[s..e]), tag)?;
            for (k, &i) in order[s..e].iter().enumerate() {
                out[i as usize].offset = first + k as u64;
            }
        }
        Ok(out)
    }

    /// Appends `records` to one partition; returns the first offset (the
    /// records get consecutive offsets).
    pub fn append_to(&self, topic: &str, partition: u32, records: &[RecordRef<'_>]) -> Result<u64> {
        self.catalog
            .topic(topic)?
            .partition(partition)?
            .append(records, None)
    }
}
