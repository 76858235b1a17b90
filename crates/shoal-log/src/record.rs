//! The on-disk record entry: encoding on append and decoding on read.
//!
//! # Entry format (segment format version 1)
//!
//! All integers are little-endian.
//!
//! ```text
//! offset  size  field
//! 0       4     body_len   u32   length of the body (bytes 8..8+body_len)
//! 4       4     crc        u32   CRC-32 (IEEE, as crc32fast) of the body
//! ---- body ----
//! 8       8     offset     u64   the record's offset in its partition
//! 16      8     timestamp  i64   milliseconds since the Unix epoch (producer-given)
//! 24      4     key_len    i32   -1 = no key, else length of key
//! 28      k     key              (absent when key_len = -1)
//! 28+k    4     value_len  u32   must equal body_len - 24 - k
//! 32+k    v     value            (JSON bytes in Shoal, opaque here)
//! ```
//!
//! # Transactional entries (segment format version 2)
//!
//! Bit 31 of `body_len` marks a *transactional* entry (lengths never reach
//! it: bodies are at most 1 GiB). Its body has 24 more fixed bytes after
//! the timestamp, then the key and value as above:
//!
//! ```text
//! 24      8     producer_id    u64  the transactional producer (crate::txn)
//! 32      4     producer_epoch u32  its epoch; older epochs are fenced
//! 36      4     control        u32  0 = data, 1 = COMMIT marker, 2 = ABORT marker
//! 40      8     txn            u64  the transaction number (Shoal: the sink's epoch)
//! 48      4     key_len …           as above, shifted by 24
//! ```
//!
//! A marker has no key and an empty value; like a Kafka control record it
//! takes an offset but is never returned by a fetch. Transactional entries
//! only appear in segments whose header says version 2.
//!
//! A plain record therefore costs 32 bytes of framing, a transactional one 56. The length comes first so a
//! reader knows how much to read; the CRC covers everything after it, so a
//! torn write (short body, zero-filled pages after a crash, a half-visible
//! write seen by another process) is detected either as *incomplete* (the
//! file ends before `8 + body_len`) or *invalid* (bad length, CRC mismatch,
//! inconsistent key/value lengths).

/// Bytes of `body_len` + `crc`.
pub(crate) const ENTRY_HEADER: usize = 8;
/// Bytes of the fixed part of the body (offset, timestamp, key_len, value_len).
pub(crate) const BODY_FIXED: usize = 24;
/// Bytes the transactional tag adds to the fixed part of the body.
pub(crate) const TXN_FIXED: usize = 24;
/// Largest body accepted (1 GiB); bigger lengths are treated as garbage.
pub(crate) const MAX_BODY: usize = 1 << 30;
/// Flag in `body_len` marking a transactional entry.
const TXN_FLAG: u32 = 1 << 31;

/// What a transactional entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Control {
    /// A record of an open transaction.
    Data,
    /// Ends the transaction: its records become visible to `read_committed`.
    Commit,
    /// Ends the transaction: its records are skipped by `read_committed`.
    Abort,
}

impl Control {
    fn code(self) -> u32 {
        match self {
            Control::Data => 0,
            Control::Commit => 1,
            Control::Abort => 2,
        }
    }

    fn from_code(c: u32) -> Option<Control> {
        match c {
            0 => Some(Control::Data),
            1 => Some(Control::Commit),
            2 => Some(Control::Abort),
            _ => None,
        }
    }
}

/// The transactional tag of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxnTag {
    /// The transactional producer.
    pub producer_id: u64,
    /// Its epoch when it wrote the entry.
    pub epoch: u32,
    /// The transaction number.
    pub txn: u64,
    /// Data record or marker.
    pub control: Control,
}

/// A record to append: `(key, value, timestamp_ms)`.
pub type RecordRef<'a> = (Option<&'a [u8]>, &'a [u8], i64);

/// Encoded size of a record with this key and value.
#[inline]
pub(crate) fn encoded_len(key: Option<&[u8]>, value: &[u8], txn: bool) -> usize {
    ENTRY_HEADER
        + BODY_FIXED
        + if txn { TXN_FIXED } else { 0 }
        + key.map_or(0, <[u8]>::len)
        + value.len()
}

/// Appends the encoded plain entry to `buf`.
#[cfg(test)]
pub(crate) fn encode(
    buf: &mut Vec<u8>,
    offset: u64,
    timestamp: i64,
    key: Option<&[u8]>,
    value: &[u8],
) {
    encode_tagged(buf, offset, timestamp, key, value, None)
}

/// Appends the encoded entry to `buf`, transactional when `tag` is given.
#[inline]
pub(crate) fn encode_tagged(
    buf: &mut Vec<u8>,
    offset: u64,
    timestamp: i64,
    key: Option<&[u8]>,
    value: &[u8],
    tag: Option<&TxnTag>,
) {
    let start = buf.len();
    let klen = key.map_or(0, <[u8]>::len);
    let fixed = BODY_FIXED + if tag.is_some() { TXN_FIXED } else { 0 };
    let body_len = fixed + klen + value.len();
    buf.reserve(ENTRY_HEADER + body_len);
    let word = body_len as u32 | if tag.is_some() { TXN_FLAG } else { 0 };
    buf.extend_from_slice(&word.to_le_bytes());
    buf.extend_from_slice(&[0u8; 4]);
    buf.extend_from_slice(&offset.to_le_bytes());
    buf.extend_from_slice(&timestamp.to_le_bytes());
    if let Some(t) = tag {
        buf.extend_from_slice(&t.producer_id.to_le_bytes());
        buf.extend_from_slice(&t.epoch.to_le_bytes());
        buf.extend_from_slice(&t.control.code().to_le_bytes());
        buf.extend_from_slice(&t.txn.to_le_bytes());
    }
    match key {
        Some(k) => {
            buf.extend_from_slice(&(k.len() as i32).to_le_bytes());
            buf.extend_from_slice(k);
        }
        None => buf.extend_from_slice(&(-1i32).to_le_bytes()),
    }
    buf.extend_from_slice(&(value.len() as u32).to_le_bytes());
    buf.extend_from_slice(value);
    let crc = crc32fast::hash(&buf[start + ENTRY_HEADER..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Where a decoded entry's parts are, relative to the entry's first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntryMeta {
    /// The record's offset.
    pub offset: u64,
    /// The record's timestamp (ms).
    pub timestamp: i64,
    /// `(start, len)` of the key, if any.
    pub key: Option<(usize, usize)>,
    /// `(start, len)` of the value.
    pub value: (usize, usize),
    /// Total bytes of the entry including its header.
    pub total: usize,
    /// The transactional tag, if the entry is transactional.
    pub txn: Option<TxnTag>,
}

impl EntryMeta {
    /// Whether the entry is a commit or abort marker (never returned by a fetch).
    #[inline]
    pub fn is_marker(&self) -> bool {
        self.txn.is_some_and(|t| t.control != Control::Data)
    }
}

/// Result of decoding at some position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// A complete, checksummed entry.
    Entry(EntryMeta),
    /// The buffer ends before the entry does; `Some(n)` if the entry's total
    /// length `n` is known.
    Incomplete(Option<usize>),
    /// The bytes are not a valid entry.
    Invalid(&'static str),
}

#[inline]
fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"))
}

#[inline]
fn u64_at(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"))
}

/// Decodes the entry at the start of `buf`, verifying its CRC.
#[inline]
pub(crate) fn decode(buf: &[u8]) -> Decoded {
    if buf.len() < ENTRY_HEADER {
        return Decoded::Incomplete(None);
    }
    let word = u32_at(buf, 0);
    let tagged = word & TXN_FLAG != 0;
    let body_len = (word & !TXN_FLAG) as usize;
    let fixed = BODY_FIXED + if tagged { TXN_FIXED } else { 0 };
    if !(fixed..=MAX_BODY).contains(&body_len) {
        return Decoded::Invalid("bad entry length");
    }
    let total = ENTRY_HEADER + body_len;
    if buf.len() < total {
        return Decoded::Incomplete(Some(total));
    }
    let body = &buf[ENTRY_HEADER..total];
    if crc32fast::hash(body) != u32_at(buf, 4) {
        return Decoded::Invalid("crc mismatch");
    }
    let offset = u64_at(body, 0);
    let timestamp = u64_at(body, 8) as i64;
    let (txn, kpos) = if tagged {
        let Some(control) = Control::from_code(u32_at(body, 28)) else {
            return Decoded::Invalid("bad control type");
        };
        let tag = TxnTag {
            producer_id: u64_at(body, 16),
            epoch: u32_at(body, 24),
            txn: u64_at(body, 32),
            control,
        };
        (Some(tag), 16 + TXN_FIXED)
    } else {
        (None, 16)
    };
    let key_len = u32_at(body, kpos) as i32;
    let (key, vpos) = if key_len == -1 {
        (None, kpos + 4)
    } else if key_len < 0 || key_len as usize > body_len - fixed {
        return Decoded::Invalid("bad key length");
    } else {
        (
            Some((ENTRY_HEADER + kpos + 4, key_len as usize)),
            kpos + 4 + key_len as usize,
        )
    };
    let value_len = u32_at(body, vpos) as usize;
    if vpos + 4 + value_len != body_len {
        return Decoded::Invalid("bad value length");
    }
    Decoded::Entry(EntryMeta {
        offset,
        timestamp,
        key,
        value: (ENTRY_HEADER + vpos + 4, value_len),
        total,
        txn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_with_and_without_key() {
        let mut buf = Vec::new();
        encode(&mut buf, 7, -3, Some(b"k1"), b"{\"a\":1}");
        encode(&mut buf, 8, 99, None, b"");
        assert_eq!(
            buf.len(),
            encoded_len(Some(b"k1"), b"{\"a\":1}", false) + encoded_len(None, b"", false)
        );
        let Decoded::Entry(a) = decode(&buf) else {
            panic!()
        };
        assert_eq!((a.offset, a.timestamp), (7, -3));
        let (ks, kl) = a.key.unwrap();
        assert_eq!(&buf[ks..ks + kl], b"k1");
        assert_eq!(&buf[a.value.0..a.value.0 + a.value.1], b"{\"a\":1}");
        let Decoded::Entry(b) = decode(&buf[a.total..]) else {
            panic!()
        };
        assert_eq!((b.offset, b.timestamp, b.key, b.value.1), (8, 99, None, 0));
    }

    #[test]
    fn detects_torn_and_corrupt() {
        let mut buf = Vec::new();
        encode(&mut buf, 1, 1, None, b"hello");
        for cut in 0..buf.len() {
            assert!(
                matches!(decode(&buf[..cut]), Decoded::Incomplete(_)),
                "cut {cut}"
            );
        }
        let mut bad = buf.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(decode(&bad), Decoded::Invalid("crc mismatch"));
        assert_eq!(decode(&[0u8; 16]), Decoded::Invalid("bad entry length"));
    }

    #[test]
    fn transactional_entries_roundtrip_and_are_checked() {
        let tag = TxnTag {
            producer_id: 9,
            epoch: 3,
            txn: 42,
            control: Control::Data,
        };
        let marker = TxnTag {
            control: Control::Abort,
            ..tag
        };
        let mut buf = Vec::new();
        encode_tagged(&mut buf, 5, 77, Some(b"key"), b"{}", Some(&tag));
        let first = buf.len();
        assert_eq!(first, encoded_len(Some(b"key"), b"{}", true));
        encode_tagged(&mut buf, 6, 78, None, b"", Some(&marker));
        let Decoded::Entry(a) = decode(&buf) else {
            panic!()
        };
        assert_eq!((a.offset, a.timestamp, a.txn), (5, 77, Some(tag)));
        assert!(!a.is_marker());
        let (ks, kl) = a.key.unwrap();
        assert_eq!(&buf[ks..ks + kl], b"key");
        assert_eq!(&buf[a.value.0..a.value.0 + a.value.1], b"{}");
        let Decoded::Entry(b) = decode(&buf[first..]) else {
            panic!()
        };
        assert_eq!(b.txn, Some(marker));
        assert!(b.is_marker());
        for cut in 0..first {
            assert!(matches!(decode(&buf[..cut]), Decoded::Incomplete(_)));
        }
        let mut bad = buf[..first].to_vec();
        bad[8 + 28] = 7; // unknown control type (CRC fixed up below)
        let crc = crc32fast::hash(&bad[8..]);
        bad[4..8].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&bad), Decoded::Invalid("bad control type"));
    }
}
