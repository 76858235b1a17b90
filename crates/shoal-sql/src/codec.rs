//! Operator state in checkpoints: Arrow batches as Arrow IPC (stream
//! format) blobs, so every column type (lists of distinct values,
//! percentile digests, strings) round-trips exactly. In the keyed-state
//! files a [`Blob`] is stored as raw bytes; state written by earlier
//! versions (base64 text inside JSON) still reads.

use std::io::Cursor;

use arrow::array::{RecordBatch, RecordBatchOptions};
use arrow::datatypes::SchemaRef;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use shoal_runtime::{Result, RuntimeError};

/// Bytes in state: raw bytes in binary formats, base64 text in
/// human-readable ones (the JSON of format-1 state files).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Blob(pub Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&STANDARD.encode(&self.0))
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            STANDARD
                .decode(text)
                .map(Blob)
                .map_err(serde::de::Error::custom)
        } else {
            struct Bytes;
            impl<'de> serde::de::Visitor<'de> for Bytes {
                type Value = Blob;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E>(self, v: &[u8]) -> std::result::Result<Blob, E> {
                    Ok(Blob(v.to_vec()))
                }
                fn visit_byte_buf<E>(self, v: Vec<u8>) -> std::result::Result<Blob, E> {
                    Ok(Blob(v))
                }
            }
            d.deserialize_byte_buf(Bytes)
        }
    }
}

/// `batch` as Arrow IPC (stream format).
pub(crate) fn encode(batch: &RecordBatch) -> Result<Blob> {
    let mut w = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema())?;
    w.write(batch)?;
    w.finish()?;
    Ok(Blob(w.into_inner()?))
}

/// `batches` (one schema, at least one batch) as one Arrow IPC stream;
/// [`decode`] reads them back as one batch.
pub(crate) fn encode_all<'a>(mut batches: impl Iterator<Item = &'a RecordBatch>) -> Result<Blob> {
    let first = batches
        .next()
        .ok_or_else(|| RuntimeError::Internal("encode_all: no batch".into()))?;
    let mut w = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &first.schema())?;
    w.write(first)?;
    for b in batches {
        w.write(b)?;
    }
    w.finish()?;
    Ok(Blob(w.into_inner()?))
}

/// The batch [`encode`] wrote, under `schema` (same columns).
pub(crate) fn decode(blob: &Blob, schema: &SchemaRef) -> Result<RecordBatch> {
    let reader = arrow_ipc::reader::StreamReader::try_new(Cursor::new(&blob.0), None)?;
    let mut batches = Vec::new();
    for b in reader {
        batches.push(b?);
    }
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let columns = match batches.as_slice() {
        [] => return Ok(RecordBatch::new_empty(schema.clone())),
        [one] => one.columns().to_vec(),
        many => arrow::compute::concat_batches(&many[0].schema(), many)?
            .columns()
            .to_vec(),
    };
    if columns.len() != schema.fields().len() {
        return Err(RuntimeError::User(format!(
            "operator state has {} columns, this query expects {}: the query changed since the checkpoint",
            columns.len(),
            schema.fields().len()
        )));
    }
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn round_trip_and_shape_check() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
        ]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("a"), None])),
                Arc::new(Int64Array::from(vec![1, 2])),
            ],
        )
        .unwrap();
        let blob = encode(&b).unwrap();
        assert_eq!(decode(&blob, &schema).unwrap(), b);
        let other = Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true)]));
        assert!(decode(&blob, &other).is_err());
        assert!(decode(&Blob(b"not ipc".to_vec()), &schema).is_err());
        // Binary formats store the bytes; JSON (format-1 state) base64.
        let bin = postcard::to_stdvec(&blob).unwrap();
        assert!(bin.len() < blob.0.len() + 4);
        assert_eq!(postcard::from_bytes::<Blob>(&bin).unwrap(), blob);
        let json = serde_json::to_value(&blob).unwrap();
        assert!(json.is_string());
        assert_eq!(serde_json::from_value::<Blob>(json).unwrap(), blob);
    }
}
