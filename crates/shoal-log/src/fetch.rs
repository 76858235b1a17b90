//! [`FetchBuffer`]: the reusable read buffer a fetch fills.
//!
//! A fetch reads the partition's bytes straight into one `Vec<u8>` (the raw
//! on-disk entries, see [`crate::record`]) and records, per record, where its
//! key and value sit in that buffer. Nothing is allocated per record; reusing
//! the same `FetchBuffer` across fetches reuses both vectors. The caller walks
//! [`FetchBuffer::iter`] (borrowed [`Record`]s) or [`FetchBuffer::values`]
//! and feeds the JSON value slices to a decoder (e.g. Arrow's JSON decoder)
//! without copying them.

/// Which records a fetch returns; see [`crate::txn`].
///
/// Both modes hide commit/abort markers (they take offsets but are not
/// records) and return non-transactional records as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Isolation {
    /// Records of transactions too, whether open, committed or aborted, up
    /// to the log end offset.
    ReadUncommitted,
    /// Only records of committed transactions, never at or past the last
    /// stable offset (the first offset of the oldest open transaction);
    /// records of aborted transactions are skipped. Shoal's default.
    #[default]
    ReadCommitted,
}

impl std::str::FromStr for Isolation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read_committed" => Ok(Isolation::ReadCommitted),
            "read_uncommitted" => Ok(Isolation::ReadUncommitted),
            other => Err(format!(
                "unknown isolation {other:?} (expected read_committed or read_uncommitted)"
            )),
        }
    }
}

impl std::fmt::Display for Isolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Isolation::ReadCommitted => "read_committed",
            Isolation::ReadUncommitted => "read_uncommitted",
        })
    }
}

/// Where one fetched record lives inside the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    offset: u64,
    timestamp: i64,
    key_start: usize,
    /// `usize::MAX` when the record has no key.
    key_len: usize,
    value_start: usize,
    value_len: usize,
}

/// A record borrowed from a [`FetchBuffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Offset within the partition.
    pub offset: u64,
    /// Producer timestamp, ms since the Unix epoch.
    pub timestamp: i64,
    /// The key, if the record has one.
    pub key: Option<&'a [u8]>,
    /// The value (JSON bytes in Shoal).
    pub value: &'a [u8],
}

/// A reusable buffer of fetched records; see the module docs.
#[derive(Debug, Default, Clone)]
pub struct FetchBuffer {
    data: Vec<u8>,
    slots: Vec<Slot>,
    bytes: usize,
    high_watermark: Option<u64>,
    log_start: Option<u64>,
    /// Offset after the last entry passed over (marker, aborted record).
    skipped_to: Option<u64>,
    last_stable: Option<u64>,
}

impl FetchBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty buffer with room for `bytes` of raw data.
    pub fn with_capacity(bytes: usize) -> Self {
        FetchBuffer {
            data: Vec::with_capacity(bytes),
            ..Self::default()
        }
    }

    /// Forgets the records, keeping the allocations.
    pub fn clear(&mut self) {
        self.data.clear();
        self.slots.clear();
        self.bytes = 0;
        self.high_watermark = None;
        self.log_start = None;
        self.skipped_to = None;
        self.last_stable = None;
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True if the fetch returned no record (caught up, for now).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The `i`-th record. Panics if `i >= len()`.
    pub fn get(&self, i: usize) -> Record<'_> {
        let s = &self.slots[i];
        Record {
            offset: s.offset,
            timestamp: s.timestamp,
            key: (s.key_len != usize::MAX)
                .then(|| &self.data[s.key_start..s.key_start + s.key_len]),
            value: &self.data[s.value_start..s.value_start + s.value_len],
        }
    }

    /// The records in offset order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Record<'_>> + '_ {
        (0..self.slots.len()).map(|i| self.get(i))
    }

    /// The values only, in offset order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.slots
            .iter()
            .map(|s| &self.data[s.value_start..s.value_start + s.value_len])
    }

    /// Offset of the first record, if any.
    pub fn first_offset(&self) -> Option<u64> {
        self.slots.first().map(|s| s.offset)
    }

    /// The offset to fetch next: after the last record returned or entry
    /// passed over (a transaction marker or an aborted record), if any. A
    /// fetch may pass over entries and return no record: then the buffer
    /// is empty but this is `Some`, and the reader should move on to it.
    pub fn next_offset(&self) -> Option<u64> {
        let last = self.slots.last().map(|s| s.offset + 1);
        match (last, self.skipped_to) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// `read_committed` fetches: the partition's last stable offset seen by
    /// this fetch (no record at or past it was returned).
    pub fn last_stable(&self) -> Option<u64> {
        self.last_stable
    }

    /// Total encoded bytes of the returned records (framing included).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Log end offset seen by this fetch, when known (always known when
    /// this process is the partition's writer).
    pub fn high_watermark(&self) -> Option<u64> {
        self.high_watermark
    }

    /// First offset still stored in the partition, when known.
    pub fn log_start(&self) -> Option<u64> {
        self.log_start
    }

    pub(crate) fn data_mut(&mut self) -> &mut Vec<u8> {
        &mut self.data
    }

    /// Records that the entry at `offset` was passed over.
    pub(crate) fn skip_past(&mut self, offset: u64) {
        self.skipped_to = Some(self.skipped_to.map_or(offset + 1, |s| s.max(offset + 1)));
    }

    pub(crate) fn set_last_stable(&mut self, offset: u64) {
        self.last_stable = Some(offset);
    }

    pub(crate) fn set_bounds(&mut self, log_start: Option<u64>, high_watermark: Option<u64>) {
        self.log_start = log_start;
        self.high_watermark = high_watermark;
    }

    /// Registers the entry decoded at `at` in the data buffer.
    pub(crate) fn push(&mut self, at: usize, m: &crate::record::EntryMeta) {
        let (key_start, key_len) = match m.key {
            Some((s, l)) => (at + s, l),
            None => (0, usize::MAX),
        };
        self.slots.push(Slot {
            offset: m.offset,
            timestamp: m.timestamp,
            key_start,
            key_len,
            value_start: at + m.value.0,
            value_len: m.value.1,
        });
        self.bytes += m.total;
    }
}
