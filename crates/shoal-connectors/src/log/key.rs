//! Record keys from a column: the bytes `shoal produce --key` would use for
//! the same value (a string's UTF-8, a number's decimal text), so keyed
//! records land in the same partition whichever way they were written.

use std::fmt::Write as _;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int32Type, Int64Type, UInt32Type, UInt64Type};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use shoal_runtime::{Result, RuntimeError};

/// Encodes one column of a batch into per-row key bytes, reusing its buffers.
#[derive(Debug, Default)]
pub struct KeyEncoder {
    bytes: String,
    ends: Vec<usize>,
    nulls: Vec<bool>,
}

impl KeyEncoder {
    /// Encode column `column` of `batch`.
    pub fn encode(&mut self, batch: &RecordBatch, column: usize) -> Result<()> {
        self.bytes.clear();
        self.ends.clear();
        self.nulls.clear();
        let col = batch.column(column);
        macro_rules! ints {
            ($t:ty) => {{
                let a = col.as_primitive::<$t>();
                for i in 0..a.len() {
                    if a.is_valid(i) {
                        let _ = write!(self.bytes, "{}", a.value(i));
                    }
                    self.push(a.is_null(i));
                }
            }};
        }
        match col.data_type() {
            DataType::Utf8 => {
                let a = col.as_string::<i32>();
                for i in 0..a.len() {
                    if a.is_valid(i) {
                        self.bytes.push_str(a.value(i));
                    }
                    self.push(a.is_null(i));
                }
            }
            DataType::Int64 => ints!(Int64Type),
            DataType::Int32 => ints!(Int32Type),
            DataType::UInt64 => ints!(UInt64Type),
            DataType::UInt32 => ints!(UInt32Type),
            _ => {
                let f = ArrayFormatter::try_new(col.as_ref(), &FormatOptions::default())
                    .map_err(|e| RuntimeError::User(format!("key column: {e}")))?;
                for i in 0..col.len() {
                    if col.is_valid(i) {
                        let _ = write!(self.bytes, "{}", f.value(i));
                    }
                    self.push(col.is_null(i));
                }
            }
        }
        Ok(())
    }

    fn push(&mut self, null: bool) {
        self.ends.push(self.bytes.len());
        self.nulls.push(null);
    }

    /// The key of row `i`; `None` for a NULL key (round-robin placement).
    pub fn key(&self, i: usize) -> Option<&[u8]> {
        if self.nulls[i] {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.bytes.as_bytes()[start..self.ends[i]])
    }
}
