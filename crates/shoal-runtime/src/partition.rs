//! How a batch is spread over the parallel instances of the next operator,
//! and the pinned key hash that decides it.
//!
//! # The key hash ([`KEY_HASH`])
//!
//! A key's instance is `hash(key) % n`. Restored keyed state is only found
//! again if a key lands where it landed when the state was written, so the
//! hash is pinned: XXH64 (seed 0, output fixed by the xxHash spec) over a
//! canonical encoding of the value, which depends on the value and not on
//! its physical Arrow type:
//!
//! * integers (signed, unsigned, dates, times, timestamps, durations):
//!   the value as a little-endian `i64` (an unsigned value above `i64::MAX`
//!   as its `u64` bytes);
//! * `Utf8`, `LargeUtf8`, `Utf8View`: the UTF-8 bytes; binary types: the bytes;
//! * floats: the `f64` bits, little-endian (`-0.0` as `0.0`);
//! * booleans: one byte, 0 or 1; dictionaries: their value;
//! * NULL: the constant [`NULL_KEY_HASH`].
//!
//! So `Utf8` and `Utf8View` keys, or `Int32` and `Int64` keys, route alike.
//! Checkpoints record [`KEY_HASH`] with the key column and its type; a
//! checkpoint routed by another hash is refused rather than restored to the
//! wrong instances.

use arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, DurationMicrosecondType, DurationMillisecondType,
    DurationNanosecondType, DurationSecondType, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, Time32MillisecondType, Time32SecondType, Time64MicrosecondType,
    Time64NanosecondType, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::record_batch::RecordBatch;
use twox_hash::XxHash64;

use crate::error::{Result, RuntimeError};

/// Name and version of the key hash, as checkpoints record it.
pub const KEY_HASH: &str = "xxh64/v1";

/// The hash of a NULL key.
pub const NULL_KEY_HASH: u64 = 0x6e75_6c6c_6b65_7921;

/// The pinned hash of an integer key (see the module docs).
pub fn hash_i64(v: i64) -> u64 {
    XxHash64::oneshot(0, &v.to_le_bytes())
}

/// The pinned hash of a string or binary key (see the module docs).
pub fn hash_bytes(v: &[u8]) -> u64 {
    XxHash64::oneshot(0, v)
}

fn hash_f64(v: f64) -> u64 {
    let v = if v == 0.0 { 0.0 } else { v };
    XxHash64::oneshot(0, &v.to_bits().to_le_bytes())
}

/// The type family a key type hashes as: types of one family hash equal
/// values alike (`Utf8View` as `Utf8`, `Int32` as `Int64`). Recorded in
/// checkpoints next to [`KEY_HASH`].
pub fn key_family(t: &DataType) -> &'static str {
    use DataType::*;
    match t {
        Int8
        | Int16
        | Int32
        | Int64
        | UInt8
        | UInt16
        | UInt32
        | UInt64
        | Date32
        | Date64
        | Time32(_)
        | Time64(_)
        | Timestamp(_, _)
        | Duration(_) => "int",
        Utf8 | LargeUtf8 | Utf8View => "utf8",
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => "binary",
        Float32 | Float64 => "float",
        Boolean => "bool",
        Dictionary(_, v) => key_family(v),
        _ => "unsupported",
    }
}

macro_rules! hash_ints {
    ($col:expr, $out:expr, $t:ty) => {{
        let a = $col.as_primitive::<$t>();
        for (i, h) in $out.iter_mut().enumerate() {
            *h = if a.is_null(i) {
                NULL_KEY_HASH
            } else {
                hash_i64(a.value(i) as i64)
            };
        }
    }};
}

macro_rules! hash_strs {
    ($a:expr, $out:expr) => {{
        let a = $a;
        for (i, h) in $out.iter_mut().enumerate() {
            *h = if a.is_null(i) {
                NULL_KEY_HASH
            } else {
                hash_bytes(AsRef::<[u8]>::as_ref(a.value(i)))
            };
        }
    }};
}

/// Writes the pinned hash ([`KEY_HASH`]) of every value of `col` into
/// `out` (resized to the column's length). Batch at a time, no allocation
/// per value.
pub fn key_hashes(col: &ArrayRef, out: &mut Vec<u64>) -> Result<()> {
    out.clear();
    out.resize(col.len(), 0);
    use DataType::*;
    use arrow::datatypes::TimeUnit::*;
    match col.data_type() {
        Int8 => hash_ints!(col, out, Int8Type),
        Int16 => hash_ints!(col, out, Int16Type),
        Int32 => hash_ints!(col, out, Int32Type),
        Int64 => hash_ints!(col, out, Int64Type),
        UInt8 => hash_ints!(col, out, UInt8Type),
        UInt16 => hash_ints!(col, out, UInt16Type),
        UInt32 => hash_ints!(col, out, UInt32Type),
        UInt64 => {
            let a = col.as_primitive::<UInt64Type>();
            for (i, h) in out.iter_mut().enumerate() {
                *h = if a.is_null(i) {
                    NULL_KEY_HASH
                } else {
                    XxHash64::oneshot(0, &a.value(i).to_le_bytes())
                };
            }
        }
        Date32 => hash_ints!(col, out, Date32Type),
        Date64 => hash_ints!(col, out, Date64Type),
        Time32(Second) => hash_ints!(col, out, Time32SecondType),
        Time32(_) => hash_ints!(col, out, Time32MillisecondType),
        Time64(Microsecond) => hash_ints!(col, out, Time64MicrosecondType),
        Time64(_) => hash_ints!(col, out, Time64NanosecondType),
        Timestamp(Second, _) => hash_ints!(col, out, TimestampSecondType),
        Timestamp(Millisecond, _) => hash_ints!(col, out, TimestampMillisecondType),
        Timestamp(Microsecond, _) => hash_ints!(col, out, TimestampMicrosecondType),
        Timestamp(Nanosecond, _) => hash_ints!(col, out, TimestampNanosecondType),
        Duration(Second) => hash_ints!(col, out, DurationSecondType),
        Duration(Millisecond) => hash_ints!(col, out, DurationMillisecondType),
        Duration(Microsecond) => hash_ints!(col, out, DurationMicrosecondType),
        Duration(Nanosecond) => hash_ints!(col, out, DurationNanosecondType),
        Utf8 => hash_strs!(col.as_string::<i32>(), out),
        LargeUtf8 => hash_strs!(col.as_string::<i64>(), out),
        Utf8View => hash_strs!(col.as_string_view(), out),
        Binary => hash_strs!(col.as_binary::<i32>(), out),
        LargeBinary => hash_strs!(col.as_binary::<i64>(), out),
        BinaryView => hash_strs!(col.as_binary_view(), out),
        FixedSizeBinary(_) => hash_strs!(col.as_fixed_size_binary(), out),
        Float32 => {
            let a = col.as_primitive::<Float32Type>();
            for (i, h) in out.iter_mut().enumerate() {
                *h = if a.is_null(i) {
                    NULL_KEY_HASH
                } else {
                    hash_f64(f64::from(a.value(i)))
                };
            }
        }
        Float64 => {
            let a = col.as_primitive::<Float64Type>();
            for (i, h) in out.iter_mut().enumerate() {
                *h = if a.is_null(i) {
                    NULL_KEY_HASH
                } else {
                    hash_f64(a.value(i))
                };
            }
        }
        Boolean => {
            let a = col.as_boolean();
            for (i, h) in out.iter_mut().enumerate() {
                *h = if a.is_null(i) {
                    NULL_KEY_HASH
                } else {
                    XxHash64::oneshot(0, &[u8::from(a.value(i))])
                };
            }
        }
        Dictionary(_, value) => {
            let plain = arrow::compute::cast(col, value)?;
            key_hashes(&plain, out)?;
        }
        other => {
            return Err(RuntimeError::User(format!(
                "a key column of type {other} cannot be hashed to route records; \
                 use an integer, string, binary, float or boolean key"
            )));
        }
    }
    Ok(())
}

/// How an edge routes batches from one operator's instances to the next's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partitioning {
    /// Instance `i` sends to instance `i` (equal parallelism on both sides),
    /// or everything to instance 0 when the receiver has parallelism 1.
    Forward,
    /// Whole batches go to the receivers in turn.
    RoundRobin,
    /// Rows go to `hash(key) % n`: all rows with one key meet in one instance.
    Hash {
        /// The key column's name.
        column: String,
        /// Its type, when the planner knows it (recorded in checkpoints).
        key_type: Option<DataType>,
    },
    /// Whole batches go by their source partition: partition `p` to
    /// instance `p % n`, so one instance holds all of a partition's keys
    /// (see [`crate::shard`]).
    Shard,
}

impl std::fmt::Display for Partitioning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Partitioning::Forward => f.write_str("forward"),
            Partitioning::RoundRobin => f.write_str("round-robin"),
            Partitioning::Hash { column, .. } => write!(f, "hash({column})"),
            Partitioning::Shard => f.write_str("by partition"),
        }
    }
}

/// Splits batches by the hash of a key column. Buffers are reused between
/// batches, so splitting allocates only the output batches.
#[derive(Debug)]
pub struct HashPartitioner {
    column: String,
    hashes: Vec<u64>,
    indices: Vec<Vec<u32>>,
}

impl HashPartitioner {
    /// A partitioner on `column` into `n` parts.
    pub fn new(column: impl Into<String>, n: usize) -> Self {
        Self {
            column: column.into(),
            hashes: Vec::new(),
            indices: vec![Vec::new(); n.max(1)],
        }
    }

    /// Split `batch` into one (possibly empty, then `None`) batch per part.
    pub fn split(&mut self, batch: &RecordBatch) -> Result<Vec<Option<RecordBatch>>> {
        let n = self.indices.len();
        let col = batch.column_by_name(&self.column).ok_or_else(|| {
            RuntimeError::User(format!(
                "hash shuffle key column `{}` is not in the batch",
                self.column
            ))
        })?;
        key_hashes(col, &mut self.hashes)?;
        for part in &mut self.indices {
            part.clear();
        }
        for (row, h) in self.hashes.iter().enumerate() {
            self.indices[(*h % n as u64) as usize].push(row as u32);
        }
        let mut out = Vec::with_capacity(n);
        for part in &self.indices {
            if part.is_empty() {
                out.push(None);
            } else if part.len() == batch.num_rows() {
                out.push(Some(batch.clone()));
            } else {
                let idx = UInt32Array::from(part.clone());
                out.push(Some(take_record_batch(batch, &idx)?));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn same_key_same_part_and_nothing_lost() {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let keys: Vec<i64> = (0..1000).map(|i| i % 37).collect();
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(keys))]).unwrap();
        let mut p = HashPartitioner::new("k", 4);
        let parts = p.split(&batch).unwrap();
        let mut owner = std::collections::HashMap::new();
        let mut total = 0;
        for (i, part) in parts.iter().enumerate() {
            let Some(b) = part else { continue };
            total += b.num_rows();
            let col = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            for k in col.values() {
                assert_eq!(*owner.entry(*k).or_insert(i), i, "key {k} in two parts");
            }
        }
        assert_eq!(total, 1000);
        assert!(
            parts.iter().filter(|p| p.is_some()).count() > 1,
            "all keys hashed to one part"
        );
        // Splitting again gives the same owners (stable hash).
        let again = p.split(&batch).unwrap();
        for (a, b) in parts.iter().zip(again.iter()) {
            assert_eq!(
                a.as_ref().map(|b| b.num_rows()),
                b.as_ref().map(|b| b.num_rows())
            );
        }
        let _ = batch.column(0).len();
    }

    /// The key → instance mapping is pinned: a change of these numbers
    /// routes restored keys to other instances, which needs a new
    /// [`KEY_HASH`] version.
    #[test]
    fn key_routing_is_pinned() {
        use arrow::array::{Int32Array, StringArray, StringViewArray};
        let route = |col: ArrayRef| {
            let mut h = Vec::new();
            key_hashes(&col, &mut h).unwrap();
            h.iter().map(|h| h % 8).collect::<Vec<_>>()
        };
        let ints = route(Arc::new(Int64Array::from(vec![0, 1, 42, -7, 1 << 40])));
        assert_eq!(ints, vec![3, 5, 3, 2, 3]);
        assert_eq!(
            route(Arc::new(Int32Array::from(vec![0, 1, 42, -7]))),
            ints[..4].to_vec(),
            "Int32 keys route like Int64 ones"
        );
        let words = [
            "",
            "card-1",
            "card-2",
            "Zürich",
            "a much longer key, over sixteen bytes",
        ];
        let strs = route(Arc::new(StringArray::from(words.to_vec())));
        assert_eq!(strs, vec![1, 6, 4, 1, 1]);
        assert_eq!(
            route(Arc::new(StringViewArray::from(words.to_vec()))),
            strs,
            "Utf8View keys route like Utf8 ones"
        );
        assert_eq!(hash_i64(42), 0xb556_806f_b6d1_4353);
    }

    #[test]
    fn missing_key_column_is_an_error() {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1]))]).unwrap();
        assert!(HashPartitioner::new("nope", 2).split(&batch).is_err());
    }
}
