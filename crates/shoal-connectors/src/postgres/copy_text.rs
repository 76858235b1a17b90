//! Rows as `COPY … FROM STDIN` in Postgres's *text* format: one line per
//! row, columns separated by tabs, `\N` for NULL, and backslash escapes in
//! values (`\\`, `\t`, `\n`, `\r`).
//!
//! Unlike CSV, text format is unambiguous for every string: a value that
//! *is* the two characters `\N` is written `\\N` and stored as such (CSV
//! cannot tell it from NULL unless every string is quoted), and since no
//! value contains a raw newline, each line is exactly one row — which the
//! sink uses to find the rows a COPY rejects.

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use shoal_runtime::{Result, RuntimeError};
use std::io::Write;

/// The NULL marker of text format.
const NULL: &[u8] = b"\\N";

/// One column's writer.
enum Column<'a> {
    Text(&'a dyn Array, TextKind),
    Other(&'a dyn Array, ArrayFormatter<'a>),
}

#[derive(Clone, Copy)]
enum TextKind {
    Utf8,
    LargeUtf8,
    Utf8View,
}

/// Appends the rows of `batch` to `out`, one line each.
pub(crate) fn encode(batch: &RecordBatch, out: &mut Vec<u8>) -> Result<()> {
    let options = FormatOptions::default();
    let columns = batch
        .columns()
        .iter()
        .map(|c| {
            Ok(match c.data_type() {
                DataType::Utf8 => Column::Text(c.as_ref(), TextKind::Utf8),
                DataType::LargeUtf8 => Column::Text(c.as_ref(), TextKind::LargeUtf8),
                DataType::Utf8View => Column::Text(c.as_ref(), TextKind::Utf8View),
                _ => Column::Other(c.as_ref(), ArrayFormatter::try_new(c.as_ref(), &options)?),
            })
        })
        .collect::<std::result::Result<Vec<_>, arrow::error::ArrowError>>()
        .map_err(|e| RuntimeError::User(format!("postgres sink: encode rows: {e}")))?;
    for row in 0..batch.num_rows() {
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            match c {
                Column::Text(a, _) | Column::Other(a, _) if a.is_null(row) => {
                    out.extend_from_slice(NULL)
                }
                Column::Text(a, kind) => {
                    let v = match kind {
                        TextKind::Utf8 => a.as_string::<i32>().value(row),
                        TextKind::LargeUtf8 => a.as_string::<i64>().value(row),
                        TextKind::Utf8View => a.as_string_view().value(row),
                    };
                    escape(v.as_bytes(), out);
                }
                Column::Other(_, f) => {
                    write!(out, "{}", f.value(row)).map_err(|e| {
                        RuntimeError::User(format!("postgres sink: encode rows: {e}"))
                    })?;
                }
            }
        }
        out.push(b'\n');
    }
    Ok(())
}

/// Appends `v` with text format's escapes.
fn escape(v: &[u8], out: &mut Vec<u8>) {
    let mut start = 0;
    for (i, &b) in v.iter().enumerate() {
        let esc: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        out.extend_from_slice(&v[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&v[start..]);
}

/// The byte ranges of the lines (rows) of `buf`, each with its newline.
pub(crate) fn rows(buf: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            out.push(start..i + 1);
            start = i + 1;
        }
    }
    if start < buf.len() {
        out.push(start..buf.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{BooleanArray, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    #[test]
    fn strings_are_escaped_and_null_is_distinct_from_backslash_n() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("i", DataType::Int64, true),
            Field::new("f", DataType::Float64, true),
            Field::new("b", DataType::Boolean, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![
                    Some("\\N"),
                    None,
                    Some("a\tb\nc\\d\r"),
                    Some(""),
                ])),
                Arc::new(Int64Array::from(vec![
                    Some(-9_223_372_036_854_775_808),
                    None,
                    Some(7),
                    Some(0),
                ])),
                Arc::new(Float64Array::from(vec![
                    Some(0.1),
                    Some(f64::INFINITY),
                    None,
                    Some(-2.5),
                ])),
                Arc::new(BooleanArray::from(vec![
                    Some(true),
                    Some(false),
                    None,
                    Some(true),
                ])),
            ],
        )
        .unwrap();
        let mut out = Vec::new();
        encode(&batch, &mut out).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(
            text,
            "\\\\N\t-9223372036854775808\t0.1\ttrue\n\
             \\N\t\\N\tinf\tfalse\n\
             a\\tb\\nc\\\\d\\r\t7\t\\N\t\\N\n\
             \t0\t-2.5\ttrue\n"
        );
        let r = rows(&out);
        assert_eq!(r.len(), 4);
        assert_eq!(&out[r[1].clone()], b"\\N\t\\N\tinf\tfalse\n");
    }
}
