//! The interface between lookup joins (in `shoal-sql`) and the stores
//! their tables live in (in `shoal-connectors`): Postgres, Redis.

use arrow::array::ArrayRef;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

/// A table in an outside store, read by key one batch of the stream at a
/// time.
pub trait LookupStore: Send + Sync + std::fmt::Debug {
    /// The table's columns.
    fn schema(&self) -> SchemaRef;

    /// The rows whose column `column` holds one of `keys` (distinct, no
    /// NULLs), in [`LookupStore::schema`]'s columns; a key without a row
    /// has none. Waits out an outage (retrying) and fails only when the
    /// store stays unreachable: never an empty answer for an outage.
    fn fetch(&self, column: &str, keys: &ArrayRef) -> Result<RecordBatch, String>;

    /// Whether rows can be fetched by `column` (a Redis table only by the
    /// column of its key template); the error says why not.
    fn check_key(&self, _column: &str) -> Result<(), String> {
        Ok(())
    }

    /// What it is, for `shoal explain` (`postgres accounts`).
    fn describe(&self) -> String;
}
