//! The protobuf wire format, read straight into the values of a row: no
//! `DynamicMessage` per record, no allocation per field.
//!
//! A message is a sequence of `tag` (field number and wire type) + value.
//! The fields of the declared columns are kept (the last occurrence wins,
//! as protobuf merges singular fields; a `google.protobuf.Timestamp`
//! merges field by field); every other field is skipped by its wire type.
//! A field of a declared column with another wire type than its kind's, a
//! value cut short, or a string that is not UTF-8 make the record
//! unreadable. Fields the declared columns do not use are only skipped,
//! not checked (as undeclared JSON fields are).

/// A field value as the wire carries it (`Bytes`: a range of the record).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Raw {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 5.
    Fixed32(u32),
    /// Wire type 2: `record[start..end]`.
    Bytes(usize, usize),
    /// A `google.protobuf.Timestamp` message: seconds, nanos.
    Timestamp(i64, i32),
}

/// The wire type a field of each kind is written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireType {
    Varint = 0,
    Fixed64 = 1,
    Len = 2,
    Fixed32 = 5,
}

/// What a declared column's field is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    /// The column it fills.
    pub column: usize,
    /// Its wire type.
    pub wire: WireType,
    /// A `google.protobuf.Timestamp` message (read into seconds and nanos).
    pub timestamp: bool,
}

/// Field number → slot, for the fields the declared columns use.
#[derive(Debug, Clone, Default)]
pub(crate) struct Slots {
    /// By field number, for numbers up to [`DENSE`].
    dense: Vec<Option<Slot>>,
    /// Larger field numbers.
    sparse: Vec<(u32, Slot)>,
}

/// Field numbers up to this are looked up in a table.
const DENSE: u32 = 1024;

impl Slots {
    /// Add field `number`.
    pub(crate) fn insert(&mut self, number: u32, slot: Slot) {
        if number <= DENSE {
            let i = number as usize;
            if self.dense.len() <= i {
                self.dense.resize(i + 1, None);
            }
            self.dense[i] = Some(slot);
        } else {
            self.sparse.push((number, slot));
        }
    }

    fn get(&self, number: u32) -> Option<Slot> {
        if number <= DENSE {
            self.dense.get(number as usize).copied().flatten()
        } else {
            self.sparse
                .iter()
                .find(|(n, _)| *n == number)
                .map(|(_, s)| *s)
        }
    }
}

/// Read `body` (one message) into `values` (one entry per declared
/// column, `None`: not in the message).
pub(crate) fn read(body: &[u8], slots: &Slots, values: &mut [Option<Raw>]) -> Result<(), String> {
    let mut r = Reader { buf: body, pos: 0 };
    while !r.done() {
        let (number, wire) = r.tag()?;
        let Some(slot) = slots.get(number) else {
            r.skip(number, wire)?;
            continue;
        };
        if wire != slot.wire as u8 {
            return Err(format!(
                "field {number}: wire type {wire}, expected {}",
                slot.wire as u8
            ));
        }
        let v = match slot.wire {
            WireType::Varint => Raw::Varint(r.varint()?),
            WireType::Fixed64 => Raw::Fixed64(u64::from_le_bytes(r.array()?)),
            WireType::Fixed32 => Raw::Fixed32(u32::from_le_bytes(r.array()?)),
            WireType::Len => {
                let (start, end) = r.len_delimited()?;
                if slot.timestamp {
                    let (seconds, nanos) = match values[slot.column] {
                        Some(Raw::Timestamp(s, n)) => (s, n),
                        _ => (0, 0),
                    };
                    timestamp(&body[start..end], seconds, nanos)?
                } else {
                    Raw::Bytes(start, end)
                }
            }
        };
        values[slot.column] = Some(v);
    }
    Ok(())
}

/// A `google.protobuf.Timestamp` body merged into (`seconds`, `nanos`).
fn timestamp(body: &[u8], mut seconds: i64, mut nanos: i32) -> Result<Raw, String> {
    let mut r = Reader { buf: body, pos: 0 };
    while !r.done() {
        let (number, wire) = r.tag()?;
        match (number, wire) {
            (1, 0) => seconds = r.varint()? as i64,
            (2, 0) => nanos = r.varint()? as i32,
            (1 | 2, w) => return Err(format!("timestamp field {number}: wire type {w}")),
            _ => r.skip(number, wire)?,
        }
    }
    Ok(Raw::Timestamp(seconds, nanos))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err("a value cut short".into());
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err("a varint longer than 64 bits".into());
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err("a varint longer than 10 bytes".into())
    }

    fn tag(&mut self) -> Result<(u32, u8), String> {
        let tag = self.varint()?;
        let number = tag >> 3;
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return Err(format!("invalid field number {number}"));
        }
        Ok((number as u32, (tag & 7) as u8))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let end = self.pos + N;
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| "a value cut short".to_string())?;
        self.pos = end;
        Ok(bytes.try_into().expect("N bytes"))
    }

    /// A length-delimited value: its range in the buffer.
    fn len_delimited(&mut self) -> Result<(usize, usize), String> {
        let len = self.varint()?;
        let start = self.pos;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l))
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| "a value cut short".to_string())?;
        self.pos = end;
        Ok((start, end))
    }

    /// Skip the value of field `number` of wire type `wire` (a group up to
    /// its end tag).
    fn skip(&mut self, number: u32, wire: u8) -> Result<(), String> {
        match wire {
            0 => {
                self.varint()?;
            }
            1 => {
                self.array::<8>()?;
            }
            2 => {
                self.len_delimited()?;
            }
            5 => {
                self.array::<4>()?;
            }
            3 => loop {
                if self.done() {
                    return Err(format!("group {number} without its end"));
                }
                let (n, w) = self.tag()?;
                if w == 4 {
                    if n != number {
                        return Err(format!("group {number} ended by {n}"));
                    }
                    return Ok(());
                }
                self.skip(n, w)?;
            },
            w => return Err(format!("field {number}: invalid wire type {w}")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots() -> Slots {
        let mut s = Slots::default();
        s.insert(
            1,
            Slot {
                column: 0,
                wire: WireType::Varint,
                timestamp: false,
            },
        );
        s.insert(
            5000,
            Slot {
                column: 1,
                wire: WireType::Len,
                timestamp: false,
            },
        );
        s
    }

    #[test]
    fn fields_are_read_skipped_or_refused() {
        // 1: varint 300; 2 (unknown): fixed32; 5000: "hi"; 1 again: 7 (last wins).
        let mut body = vec![0x08, 0xac, 0x02, 0x15, 1, 2, 3, 4];
        body.extend([0xc2, 0xb8, 0x02, 2, b'h', b'i', 0x08, 7]);
        let mut v = [None, None];
        read(&body, &slots(), &mut v).unwrap();
        assert_eq!(v, [Some(Raw::Varint(7)), Some(Raw::Bytes(12, 14))]);
        // Field 1 as length-delimited: refused.
        let mut v = [None, None];
        let e = read(&[0x0a, 1, 0], &slots(), &mut v).unwrap_err();
        assert!(e.contains("wire type 2"), "{e}");
        // Cut short, in a skipped field too.
        assert!(read(&[0x08], &slots(), &mut [None, None]).is_err());
        assert!(read(&[0x15, 1, 2], &slots(), &mut [None, None]).is_err());
        // A group (wire type 3) of field 9 holding a varint, skipped.
        let mut v = [None, None];
        read(&[0x4b, 0x08, 1, 0x4c, 0x08, 2], &slots(), &mut v).unwrap();
        assert_eq!(v[0], Some(Raw::Varint(2)));
        // Field number 0 and wire type 7 are invalid.
        assert!(read(&[0x00, 1], &slots(), &mut [None, None]).is_err());
        assert!(read(&[0x0f], &slots(), &mut [None, None]).is_err());
    }
}
