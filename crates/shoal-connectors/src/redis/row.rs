//! Rows as Redis hash writes: the key from the sink's template, one field
//! per written column. Values are text as Redis stores them: numbers in
//! decimal, booleans `true`/`false`, timestamps as milliseconds since the
//! epoch (as Shoal's `timestamp_ms` fields), strings as they are. A NULL
//! value removes the field from the hash.
//!
//! A staged row is a JSON array `[key, value1, value2, ...]` (`null` for
//! NULL) that the apply script decodes.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Schema};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use shoal_dsl::{KeyPart, key_template};

use super::RedisSinkConfig as RedisSinkSpec;
use shoal_runtime::{Result, RuntimeError};

/// A plan-time problem: the YAML key it is about, the message, a hint.
pub type SpecProblem = (&'static str, String, Option<String>);

enum Part {
    Text(String),
    Column(usize),
}

/// Texts kept back to back in one buffer (a staged row or a key per
/// row): no allocation per row once the buffer has grown.
#[derive(Debug, Default)]
pub(crate) struct Texts {
    buf: String,
    ends: Vec<usize>,
}

impl Texts {
    /// Text `i`.
    pub(crate) fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.buf[start..self.ends[i]]
    }

    /// Number of texts.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there is none.
    pub(crate) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The texts in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Append one text.
    pub(crate) fn push(&mut self, t: &str) {
        self.buf.push_str(t);
        self.ends.push(self.buf.len());
    }

    /// The text being written since the last one ended.
    fn open(&mut self) -> &mut String {
        &mut self.buf
    }

    /// End the text being written.
    fn close(&mut self) {
        self.ends.push(self.buf.len());
    }

    /// Drop the text being written.
    fn discard(&mut self) {
        let start = self.ends.last().copied().unwrap_or(0);
        self.buf.truncate(start);
    }
}

/// Encodes rows for one sink (the columns are resolved once).
pub(crate) struct RowEncoder {
    key: Vec<Part>,
    /// (field name, column index).
    fields: Vec<(String, usize)>,
}

/// One column, ready to write values from.
enum Values<'a> {
    Utf8(&'a arrow::array::StringArray),
    LargeUtf8(&'a arrow::array::LargeStringArray),
    Utf8View(&'a arrow::array::StringViewArray),
    Other(ArrayFormatter<'a>),
}

impl RowEncoder {
    /// Resolve the key template's columns and the fields in `schema`.
    pub(crate) fn new(
        spec: &RedisSinkSpec,
        schema: &Schema,
    ) -> std::result::Result<Self, SpecProblem> {
        let column = |name: &str, at: &'static str| {
            schema.index_of(name).map_err(|_| {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                (
                    at,
                    format!("`{name}` is not a column of the sink's input"),
                    Some(format!("the input has: {}", names.join(", "))),
                )
            })
        };
        let parts = key_template(&spec.key).map_err(|m| ("key", m, None))?;
        let mut key = Vec::with_capacity(parts.len());
        for p in parts {
            key.push(match p {
                KeyPart::Text(t) => Part::Text(t),
                KeyPart::Column(c) => Part::Column(column(&c, "key")?),
            });
        }
        let fields = if spec.fields.is_empty() {
            schema
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| (f.name().clone(), i))
                .collect()
        } else {
            let mut seen = std::collections::HashSet::new();
            let mut out = Vec::with_capacity(spec.fields.len());
            for f in &spec.fields {
                if !seen.insert(f.as_str()) {
                    return Err(("fields", format!("`{f}` is listed twice"), None));
                }
                out.push((f.clone(), column(f, "fields")?));
            }
            out
        };
        Ok(Self { key, fields })
    }

    /// The hash's field names, in value order.
    pub(crate) fn field_names(&self) -> Vec<&str> {
        self.fields.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Append one staged row (JSON array) per row of `batch` to `out`, and
    /// its key to `keys`; a row whose key has a NULL part is left out and
    /// reported in `rejected` as (row, reason).
    pub(crate) fn encode(
        &self,
        batch: &RecordBatch,
        out: &mut Texts,
        keys: &mut Texts,
        rejected: &mut Vec<(usize, String)>,
    ) -> Result<()> {
        // Timestamps are written as epoch milliseconds: cast once per batch.
        let owned: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .map(|c| match c.data_type() {
                DataType::Timestamp(..) | DataType::Date64 => {
                    let ms = arrow::compute::cast(
                        c,
                        &DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
                    )?;
                    arrow::compute::cast(&ms, &DataType::Int64)
                }
                _ => Ok(Arc::clone(c)),
            })
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| RuntimeError::User(format!("redis sink: encode rows: {e}")))?;
        let options = FormatOptions::default();
        let values = owned
            .iter()
            .map(|c| {
                Ok(match c.data_type() {
                    DataType::Utf8 => Values::Utf8(c.as_string::<i32>()),
                    DataType::LargeUtf8 => Values::LargeUtf8(c.as_string::<i64>()),
                    DataType::Utf8View => Values::Utf8View(c.as_string_view()),
                    _ => Values::Other(ArrayFormatter::try_new(c.as_ref(), &options)?),
                })
            })
            .collect::<std::result::Result<Vec<_>, arrow::error::ArrowError>>()
            .map_err(|e| RuntimeError::User(format!("redis sink: encode rows: {e}")))?;
        let mut text = String::new();
        'rows: for row in 0..batch.num_rows() {
            for p in &self.key {
                match p {
                    Part::Text(t) => keys.open().push_str(t),
                    Part::Column(c) => {
                        if owned[*c].is_null(row) {
                            keys.discard();
                            let name = batch.schema().field(*c).name().clone();
                            rejected
                                .push((row, format!("redis sink: key column `{name}` is NULL")));
                            continue 'rows;
                        }
                        write_value(&values[*c], row, keys.open());
                    }
                }
            }
            keys.close();
            let line = out.open();
            line.push('[');
            push_json_string(keys.get(keys.len() - 1), line);
            for (_, c) in &self.fields {
                line.push(',');
                if owned[*c].is_null(row) {
                    line.push_str("null");
                } else {
                    text.clear();
                    write_value(&values[*c], row, &mut text);
                    push_json_string(&text, line);
                }
            }
            line.push(']');
            out.close();
        }
        Ok(())
    }
}

fn write_value(v: &Values<'_>, row: usize, out: &mut String) {
    match v {
        Values::Utf8(a) => out.push_str(a.value(row)),
        Values::LargeUtf8(a) => out.push_str(a.value(row)),
        Values::Utf8View(a) => out.push_str(a.value(row)),
        Values::Other(f) => {
            let _ = write!(out, "{}", f.value(row));
        }
    }
}

/// `s` as a JSON string literal.
fn push_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        BooleanArray, Float64Array, Int64Array, StringArray, TimestampMillisecondArray,
    };
    use arrow::datatypes::{Field, TimeUnit};

    fn spec(key: &str, fields: &[&str]) -> RedisSinkSpec {
        RedisSinkSpec {
            inputs: vec!["x".into()],
            url: "redis://127.0.0.1:1/0".into(),
            key: key.into(),
            fields: fields.iter().map(|f| f.to_string()).collect(),
            ttl: None,
        }
    }

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("card", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("amount", DataType::Float64, true),
            Field::new("ok", DataType::Boolean, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(7), None, Some(9)])),
                Arc::new(StringArray::from(vec![
                    Some("a \"q\"\n\u{1}"),
                    Some("b"),
                    None,
                ])),
                Arc::new(Float64Array::from(vec![Some(12.5), Some(1.0), Some(0.1)])),
                Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
                Arc::new(TimestampMillisecondArray::from(vec![
                    Some(1_700_000_000_123),
                    None,
                    Some(5),
                ])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn rows_become_json_arrays_with_the_key_first() {
        let b = batch();
        let enc = RowEncoder::new(&spec("f:{card}:{{x}}", &[]), &b.schema()).unwrap();
        assert_eq!(enc.field_names(), ["card", "name", "amount", "ok", "ts"]);
        let (mut out, mut keys, mut bad) = (Texts::default(), Texts::default(), Vec::new());
        enc.encode(&b, &mut out, &mut keys, &mut bad).unwrap();
        assert_eq!(keys.iter().collect::<Vec<_>>(), ["f:7:{x}", "f:9:{x}"]);
        let out: Vec<&str> = out.iter().collect();
        assert_eq!(
            out,
            [
                r#"["f:7:{x}","7","a \"q\"\n\u0001","12.5","true","1700000000123"]"#,
                r#"["f:9:{x}","9",null,"0.1",null,"5"]"#,
            ]
        );
        for line in &out {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v.is_array());
        }
        assert_eq!(
            bad,
            [(1, "redis sink: key column `card` is NULL".to_string())]
        );
    }

    #[test]
    fn chosen_fields_and_unknown_columns() {
        let b = batch();
        let enc = RowEncoder::new(&spec("{name}", &["amount"]), &b.schema()).unwrap();
        let (mut out, mut keys, mut bad) = (Texts::default(), Texts::default(), Vec::new());
        enc.encode(&b, &mut out, &mut keys, &mut bad).unwrap();
        assert_eq!(out.get(0), r#"["a \"q\"\n\u0001","12.5"]"#);
        assert_eq!(bad.len(), 1);
        let Err((at, msg, hint)) = RowEncoder::new(&spec("{nope}", &[]), &b.schema()) else {
            panic!("accepted an unknown key column");
        };
        assert_eq!(at, "key");
        assert!(msg.contains("`nope`"), "{msg}");
        assert!(hint.unwrap().contains("card, name"));
        let Err((at, ..)) = RowEncoder::new(&spec("{card}", &["amount", "amout"]), &b.schema())
        else {
            panic!("accepted an unknown field");
        };
        assert_eq!(at, "fields");
    }
}
