//! Per-key running aggregates: `COUNT(..)` / `SUM(col) OVER (PARTITION BY
//! key ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)`.
//!
//! Each input row gets the aggregate over every earlier row of its key plus
//! itself, in arrival order (for a keyed log topic: the key's partition
//! order). The state — one accumulator per key — is keyed state: the
//! operator is hash-partitioned on the key, snapshotted at checkpoint
//! barriers and restored on restart, so the aggregates stay exact across
//! crashes.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Builder, Int64Builder};
use arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::logical_expr::expr::WindowFunction;
use datafusion::logical_expr::{
    Expr, WindowFrameBound, WindowFrameUnits, WindowFunctionDefinition,
};
use shoal_runtime::{Result as RtResult, RuntimeError};

use crate::error::{Result, SqlError};

/// Which aggregate.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Count,
    SumF64,
    SumI64,
}

/// A compiled running-aggregate stage.
#[derive(Debug, Clone)]
pub(crate) struct RunningSpec {
    key: usize,
    key_name: String,
    aggs: Vec<(Kind, Option<usize>)>,
    schema: SchemaRef,
}

/// Accumulators per key.
#[derive(Debug, Default, Clone)]
pub(crate) struct RunningState {
    by_int: HashMap<i64, Vec<f64>>,
    by_str: HashMap<String, Vec<f64>>,
}

const HINT: &str = "supported now: COUNT(..) and SUM(col) OVER (PARTITION BY key ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)";

fn unsupported(what: String) -> SqlError {
    SqlError::new(format!("{what} is not supported on a stream yet")).with_hint(HINT)
}

fn column_index(e: &Expr, schema: &DFSchema) -> Result<usize> {
    match e {
        Expr::Column(c) => Ok(schema.index_of_column(c)?),
        Expr::Cast(c) => column_index(&c.expr, schema),
        other => Err(unsupported(format!(
            "the expression `{other}` in a window function"
        ))),
    }
}

impl RunningSpec {
    /// Compile the window expressions of a `Window` plan node.
    pub(crate) fn compile(
        window_expr: &[Expr],
        input: &DFSchema,
        output: SchemaRef,
    ) -> Result<Self> {
        let mut key: Option<usize> = None;
        let mut aggs = Vec::new();
        for e in window_expr {
            let e = match e {
                Expr::Alias(a) => a.expr.as_ref(),
                e => e,
            };
            let Expr::WindowFunction(wf) = e else {
                return Err(unsupported(format!("`{e}`")));
            };
            let WindowFunction { fun, params } = wf.as_ref();
            let WindowFunctionDefinition::AggregateUDF(udaf) = fun else {
                return Err(unsupported(format!("the window function {}", fun)));
            };
            let f = &params.window_frame;
            let unbounded_start =
                matches!(&f.start_bound, WindowFrameBound::Preceding(v) if v.is_null());
            if f.units != WindowFrameUnits::Rows
                || !unbounded_start
                || f.end_bound != WindowFrameBound::CurrentRow
                || params.filter.is_some()
                || params.distinct
                || params.order_by.len() != 1
            {
                return Err(unsupported(format!("the OVER window `{e}`")));
            }
            let [p] = params.partition_by.as_slice() else {
                return Err(unsupported(
                    "an OVER window without exactly one PARTITION BY column".into(),
                ));
            };
            let k = column_index(p, input)?;
            if key.is_some_and(|old| old != k) {
                return Err(unsupported("windows partitioned by different keys".into()));
            }
            key = Some(k);
            let arg = params.args.first();
            let agg = match udaf.name() {
                "count" => match arg {
                    Some(Expr::Literal(..)) | None => (Kind::Count, None),
                    Some(a) => (Kind::Count, Some(column_index(a, input)?)),
                },
                "sum" => {
                    let a = arg.ok_or_else(|| SqlError::new("SUM needs an argument"))?;
                    let idx = column_index(a, input)?;
                    match input.field(idx).data_type() {
                        DataType::Float64 => (Kind::SumF64, Some(idx)),
                        DataType::Int64 => (Kind::SumI64, Some(idx)),
                        t => return Err(unsupported(format!("SUM over {t} in an OVER window"))),
                    }
                }
                other => {
                    return Err(unsupported(format!(
                        "{} in an OVER window",
                        other.to_uppercase()
                    )));
                }
            };
            aggs.push(agg);
        }
        let key = key.ok_or_else(|| SqlError::new("a window without window functions"))?;
        match input.field(key).data_type() {
            DataType::Int64 | DataType::Int32 | DataType::Utf8 => {}
            t => return Err(unsupported(format!("PARTITION BY a {t} column"))),
        }
        let key_name = input.field(key).name().clone();
        Ok(Self {
            key,
            key_name,
            aggs,
            schema: output,
        })
    }

    /// The key column's name, for the hash shuffle.
    pub(crate) fn key_name(&self) -> &str {
        &self.key_name
    }

    /// Append the aggregate columns to `batch`, updating `state` row by row.
    pub(crate) fn apply(
        &self,
        batch: &RecordBatch,
        state: &mut RunningState,
    ) -> RtResult<RecordBatch> {
        let rows = batch.num_rows();
        let mut outs: Vec<(Option<Int64Builder>, Option<Float64Builder>)> = self
            .aggs
            .iter()
            .map(|(k, _)| match k {
                Kind::SumF64 => (None, Some(Float64Builder::with_capacity(rows))),
                _ => (Some(Int64Builder::with_capacity(rows)), None),
            })
            .collect();
        let args: Vec<Option<ArrayRef>> = self
            .aggs
            .iter()
            .map(|(_, a)| a.map(|i| batch.column(i).clone()))
            .collect();
        let key_col = batch.column(self.key);
        let int_keys = match key_col.data_type() {
            DataType::Int64 => Some(key_col.as_primitive::<Int64Type>().clone()),
            DataType::Int32 => Some(
                arrow::compute::cast(key_col, &DataType::Int64)?
                    .as_primitive::<Int64Type>()
                    .clone(),
            ),
            _ => None,
        };
        let str_keys = key_col.as_string_opt::<i32>();
        let n = self.aggs.len();
        for row in 0..rows {
            let acc = match (&int_keys, str_keys) {
                (Some(k), _) => state
                    .by_int
                    .entry(k.value(row))
                    .or_insert_with(|| vec![0.0; n]),
                (None, Some(k)) => {
                    let key = k.value(row);
                    if !state.by_str.contains_key(key) {
                        state.by_str.insert(key.to_string(), vec![0.0; n]);
                    }
                    state.by_str.get_mut(key).expect("just inserted")
                }
                _ => return Err(RuntimeError::Internal("window key column type".into())),
            };
            for (i, (kind, _)) in self.aggs.iter().enumerate() {
                let arg = args[i].as_ref();
                let valid = arg.is_none_or(|a| a.is_valid(row));
                match kind {
                    Kind::Count => {
                        if valid {
                            acc[i] += 1.0;
                        }
                        outs[i].0.as_mut().expect("int").append_value(acc[i] as i64);
                    }
                    Kind::SumF64 => {
                        if valid {
                            acc[i] += arg
                                .expect("sum arg")
                                .as_primitive::<Float64Type>()
                                .value(row);
                        }
                        outs[i].1.as_mut().expect("float").append_value(acc[i]);
                    }
                    Kind::SumI64 => {
                        if valid {
                            acc[i] +=
                                arg.expect("sum arg").as_primitive::<Int64Type>().value(row) as f64;
                        }
                        outs[i].0.as_mut().expect("int").append_value(acc[i] as i64);
                    }
                }
            }
        }
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        for (ib, fb) in outs.iter_mut() {
            columns.push(match (ib, fb) {
                (Some(b), _) => Arc::new(b.finish()),
                (None, Some(b)) => Arc::new(b.finish()),
                _ => unreachable!("one builder per aggregate"),
            });
        }
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

impl RunningState {
    /// The accumulators as JSON: `[[key, [acc...]], ...]`.
    pub(crate) fn snapshot(&self) -> serde_json::Value {
        let ints = self.by_int.iter().map(|(k, v)| serde_json::json!([k, v]));
        let strs = self.by_str.iter().map(|(k, v)| serde_json::json!([k, v]));
        serde_json::Value::Array(ints.chain(strs).collect())
    }

    /// Restore from [`RunningState::snapshot`].
    pub(crate) fn restore(&mut self, v: &serde_json::Value) -> RtResult<()> {
        let bad = || RuntimeError::User(format!("window state is not in the expected shape: {v}"));
        for entry in v.as_array().ok_or_else(bad)? {
            let key = &entry[0];
            let accs: Vec<f64> = entry[1]
                .as_array()
                .ok_or_else(bad)?
                .iter()
                .map(|x| x.as_f64().unwrap_or(0.0))
                .collect();
            match (key.as_i64(), key.as_str()) {
                (Some(k), _) => self.by_int.insert(k, accs),
                (None, Some(k)) => self.by_str.insert(k.to_string(), accs),
                _ => return Err(bad()),
            };
        }
        Ok(())
    }

    /// Number of keys held.
    pub(crate) fn keys(&self) -> usize {
        self.by_int.len() + self.by_str.len()
    }
}
