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
//! A record therefore costs 32 bytes of framing. The length comes first so a
//! reader knows how much to read; the CRC covers everything after it, so a
//! torn write (short body, zero-filled pages after a crash, a half-visible
//! write seen by another process) is detected either as *incomplete* (the
//! file ends before `8 + body_len`) or *invalid* (bad length, CRC mismatch,
//! inconsistent key/value lengths).

/// Bytes of `body_len` + `crc`.
pub(crate) const ENTRY_HEADER: usize = 8;
/// Bytes of the fixed part of the body (offset, timestamp, key_len, value_len).
pub(crate) const BODY_FIXED: usize = 24;
/// Largest body accepted (1 GiB); bigger lengths are treated as garbage.
pub(crate) const MAX_BODY: usize = 1 << 30;

/// A record to append: `(key, value, timestamp_ms)`.
pub type RecordRef<'a> = (Option<&'a [u8]>, &'a [u8], i64);

/// Encoded size of a record with this key and value.
#[inline]
pub(crate) fn encoded_len(key: Option<&[u8]>, value: &[u8]) -> usize {
    ENTRY_HEADER + BODY_FIXED + key.map_or(0, <[u8]>::len) + value.len()
}

/// Appends the encoded entry to `buf`.
#[inline]
pub(crate) fn encode(
    buf: &mut Vec<u8>,
    offset: u64,
    timestamp: i64,
    key: Option<&[u8]>,
    value: &[u8],
) {
    let start = buf.len();
    let klen = key.map_or(0, <[u8]>::len);
    let body_len = BODY_FIXED + klen + value.len();
    buf.reserve(ENTRY_HEADER + body_len);
    buf.extend_from_slice(&(body_len as u32).to_le_bytes());
    buf.extend_from_slice(&[0u8; 4]);
    buf.extend_from_slice(&offset.to_le_bytes());
    buf.extend_from_slice(&timestamp.to_le_bytes());
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
    let body_len = u32_at(buf, 0) as usize;
    if !(BODY_FIXED..=MAX_BODY).contains(&body_len) {
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
    let key_len = u32_at(body, 16) as i32;
    let (key, vpos) = if key_len == -1 {
        (None, 20)
    } else if key_len < 0 || key_len as usize > body_len - BODY_FIXED {
        return Decoded::Invalid("bad key length");
    } else {
        (
            Some((ENTRY_HEADER + 20, key_len as usize)),
            20 + key_len as usize,
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
            encoded_len(Some(b"k1"), b"{\"a\":1}") + encoded_len(None, b"")
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
}
