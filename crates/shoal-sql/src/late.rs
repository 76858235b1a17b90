//! Rows that arrive after the watermark, rendered for the dead-letter output.

use arrow::record_batch::RecordBatch;
use shoal_runtime::{Result, RuntimeError};

/// Each row of `batch` as one JSON object (rare: only late rows).
pub(crate) fn json_lines(batch: &RecordBatch) -> Result<Vec<String>> {
    let mut w = arrow::json::LineDelimitedWriter::new(Vec::new());
    w.write(batch)?;
    w.finish()?;
    let text = String::from_utf8(w.into_inner())
        .map_err(|e| RuntimeError::Internal(format!("json writer produced bad utf-8: {e}")))?;
    Ok(text.lines().map(str::to_string).collect())
}
