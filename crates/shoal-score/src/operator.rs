//! The `score` transform as a runtime [`Operator`]: every batch is scored
//! at once and the model's output columns are appended to it.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use shoal_runtime::{Collector, Operator, Result as RtResult, RuntimeError};

use crate::{Model, ReloadingModel};

/// Where an operator gets its model: loaded once, or hot-reloaded.
#[derive(Clone)]
pub enum ModelHandle {
    /// The model loaded at plan time, for the whole run.
    Fixed(Arc<Model>),
    /// A model swapped in when its file changes (`reload: true`).
    Reloading(Arc<ReloadingModel>),
}

impl ModelHandle {
    /// The model to score the next batch with.
    pub fn current(&self) -> Arc<Model> {
        match self {
            ModelHandle::Fixed(m) => Arc::clone(m),
            ModelHandle::Reloading(r) => r.current(),
        }
    }
}

/// Scores every batch with a model and appends the output columns.
pub struct ScoreOperator {
    model: ModelHandle,
    features: Vec<String>,
    schema: SchemaRef,
}

impl ScoreOperator {
    /// Score `features` (input columns, in the model's order) with `model`;
    /// `schema` is the input schema plus the model's output fields.
    pub fn new(model: ModelHandle, features: Vec<String>, schema: SchemaRef) -> Self {
        Self {
            model,
            features,
            schema,
        }
    }
}

impl Operator for ScoreOperator {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        out: &mut Collector,
    ) -> RtResult<()> {
        // One model per batch: a reload swaps between batches, never inside one.
        let model = self.model.current();
        let features: Vec<&str> = self.features.iter().map(String::as_str).collect();
        let scores = model
            .score_batch(&batch, &features)
            .map_err(|e| RuntimeError::User(format!("scoring failed: {e}")))?;
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns.extend(scores);
        out.emit(RecordBatch::try_new(self.schema.clone(), columns)?);
        Ok(())
    }
}
