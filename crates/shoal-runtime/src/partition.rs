//! How a batch is spread over the parallel instances of the next operator.

use arrow::array::UInt32Array;
use arrow::compute::take_record_batch;
use arrow::record_batch::RecordBatch;
use datafusion::common::hash_utils::{RandomState, create_hashes};

use crate::error::Result;

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
    },
}

impl std::fmt::Display for Partitioning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Partitioning::Forward => f.write_str("forward"),
            Partitioning::RoundRobin => f.write_str("round-robin"),
            Partitioning::Hash { column } => write!(f, "hash({column})"),
        }
    }
}

/// Splits batches by the hash of a key column. Buffers are reused between
/// batches, so splitting allocates only the output batches.
#[derive(Debug)]
pub struct HashPartitioner {
    column: String,
    state: RandomState,
    hashes: Vec<u64>,
    indices: Vec<Vec<u32>>,
}

impl HashPartitioner {
    /// A partitioner on `column` into `n` parts.
    pub fn new(column: impl Into<String>, n: usize) -> Self {
        Self {
            column: column.into(),
            state: RandomState::with_seed(0x5_40a1),
            hashes: Vec::new(),
            indices: vec![Vec::new(); n.max(1)],
        }
    }

    /// Split `batch` into one (possibly empty, then `None`) batch per part.
    pub fn split(&mut self, batch: &RecordBatch) -> Result<Vec<Option<RecordBatch>>> {
        let n = self.indices.len();
        let col = batch.column_by_name(&self.column).ok_or_else(|| {
            crate::RuntimeError::User(format!(
                "hash shuffle key column `{}` is not in the batch",
                self.column
            ))
        })?;
        self.hashes.clear();
        self.hashes.resize(batch.num_rows(), 0);
        create_hashes([col], &self.state, &mut self.hashes)?;
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

    #[test]
    fn missing_key_column_is_an_error() {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1]))]).unwrap();
        assert!(HashPartitioner::new("nope", 2).split(&batch).is_err());
    }
}
