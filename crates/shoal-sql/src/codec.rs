//! Operator state in checkpoints: Arrow batches as base64 Arrow IPC inside
//! the checkpoint's JSON, so every column type (lists of distinct values,
//! percentile digests, strings) round-trips exactly.

use std::io::Cursor;

use arrow::array::{RecordBatch, RecordBatchOptions};
use arrow::datatypes::SchemaRef;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use shoal_runtime::{Result, RuntimeError};

/// `batch` as base64 Arrow IPC (stream format).
pub(crate) fn encode(batch: &RecordBatch) -> Result<String> {
    let mut w = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema())?;
    w.write(batch)?;
    w.finish()?;
    Ok(STANDARD.encode(w.into_inner()?))
}

/// The batch [`encode`] wrote, under `schema` (same columns).
pub(crate) fn decode(text: &str, schema: &SchemaRef) -> Result<RecordBatch> {
    let bytes = STANDARD
        .decode(text)
        .map_err(|e| RuntimeError::User(format!("operator state is not base64: {e}")))?;
    let reader = arrow_ipc::reader::StreamReader::try_new(Cursor::new(bytes), None)?;
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
        let text = encode(&b).unwrap();
        assert_eq!(decode(&text, &schema).unwrap(), b);
        let other = Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true)]));
        assert!(decode(&text, &other).is_err());
        assert!(decode("not base64!", &schema).is_err());
    }
}
