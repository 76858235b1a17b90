//! The `filter` transform: keep the rows where a boolean SQL expression is true.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use shoal_runtime::{Collector, Operator, Result as RtResult, RuntimeError};

use crate::context::sql_context;
use crate::error::{Result, SqlError};

/// Compile `where_sql` against `schema` into a predicate. Rows where it is
/// NULL are dropped, as in SQL's `WHERE`.
pub fn compile_filter(where_sql: &str, schema: &SchemaRef) -> Result<Arc<dyn PhysicalExpr>> {
    let ctx = sql_context();
    let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
    let expr = ctx.parse_sql_expr(where_sql, &df_schema)?;
    let physical = ctx.create_physical_expr(expr, &df_schema)?;
    let ty = physical.data_type(schema)?;
    if ty != DataType::Boolean {
        return Err(SqlError::new(format!(
            "`where` must be a boolean expression, but `{where_sql}` is {ty}"
        ))
        .with_hint("compare a column, e.g. `amount > 1000`"));
    }
    Ok(physical)
}

/// Applies a compiled predicate to every batch.
pub struct FilterOperator {
    predicate: Arc<dyn PhysicalExpr>,
}

impl FilterOperator {
    /// An operator applying `predicate` (from [`compile_filter`]).
    pub fn new(predicate: Arc<dyn PhysicalExpr>) -> Self {
        Self { predicate }
    }
}

/// Keep the rows of `batch` where `predicate` is true.
pub(crate) fn apply_predicate(
    predicate: &dyn PhysicalExpr,
    batch: &RecordBatch,
) -> RtResult<RecordBatch> {
    let mask = predicate.evaluate(batch)?.into_array(batch.num_rows())?;
    let mask = mask
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| RuntimeError::Internal("filter predicate did not return booleans".into()))?;
    if mask.null_count() == 0 && mask.true_count() == batch.num_rows() {
        return Ok(batch.clone());
    }
    Ok(filter_record_batch(batch, mask)?)
}

impl Operator for FilterOperator {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        out: &mut Collector,
    ) -> RtResult<()> {
        out.emit(apply_predicate(self.predicate.as_ref(), &batch)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("amount", DataType::Float64, false),
            Field::new("country", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Float64Array::from(vec![10.0, 2000.0, 5000.0, 3000.0])),
                Arc::new(StringArray::from(vec![
                    Some("US"),
                    Some("FR"),
                    Some("US"),
                    None,
                ])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn filters_with_coercion_and_drops_nulls() {
        let b = batch();
        let p = compile_filter("amount > 1000 AND country <> 'US'", &b.schema()).unwrap();
        let mut op = FilterOperator::new(p);
        let mut out = Collector::default();
        op.process_batch(0, b, &mut out).unwrap();
        assert_eq!(out.batches().len(), 1);
        assert_eq!(
            out.batches()[0].num_rows(),
            1,
            "only FR 2000; NULL country dropped"
        );
    }

    #[test]
    fn unknown_column_and_non_boolean_are_errors() {
        let b = batch();
        let e = compile_filter("amont > 1", &b.schema()).unwrap_err();
        assert!(e.message.contains("amont"), "{}", e.message);
        let e = compile_filter("amount + 1", &b.schema()).unwrap_err();
        assert!(e.message.contains("boolean"), "{}", e.message);
    }
}
