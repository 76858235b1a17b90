//! Rows an operator rejects — late, or without an event time — rendered
//! for the dead-letter output.
//!
//! **One lateness rule** for every operator of this crate (windows, OVER
//! windows, interval joins, dedup): a watermark `w` promises that no more
//! rows with an event time before `w` will come, so a row with `ts < w` is
//! late and a row with `ts == w` is on time. A window forwards the start of
//! the earliest window it may still emit, so its rows are on time for the
//! next operator under the same rule.
//!
//! A row whose event-time column is NULL cannot be placed in event time:
//! it is rejected with its own reason ([`Rejection::NoEventTime`]).

use arrow::record_batch::RecordBatch;
use shoal_runtime::{DeadLetter, Result, RuntimeError};

/// Why rows were rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// The event time is before the watermark.
    Late,
    /// The event-time column is NULL.
    NoEventTime,
}

impl Rejection {
    /// The dead letter's reason.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Rejection::Late => "late",
            Rejection::NoEventTime => NO_EVENT_TIME,
        }
    }
}

/// The reason of a row whose event time is NULL.
pub(crate) const NO_EVENT_TIME: &str = "no event time: the event-time column is NULL";

/// Each row of `batch` as one JSON object (rare: only late rows).
pub(crate) fn json_lines(batch: &RecordBatch) -> Result<Vec<String>> {
    let mut w = arrow::json::LineDelimitedWriter::new(Vec::new());
    w.write(batch)?;
    w.finish()?;
    let text = String::from_utf8(w.into_inner())
        .map_err(|e| RuntimeError::Internal(format!("json writer produced bad utf-8: {e}")))?;
    Ok(text.lines().map(str::to_string).collect())
}

/// One dead letter per row of `rows`, from `node`, with `reason`.
pub(crate) fn letters(node: &str, rows: &RecordBatch, reason: &str) -> Result<Vec<DeadLetter>> {
    Ok(json_lines(rows)?
        .into_iter()
        .map(|record| DeadLetter {
            node: node.to_string(),
            partition: None,
            offset: None,
            reason: reason.to_string(),
            record,
        })
        .collect())
}
