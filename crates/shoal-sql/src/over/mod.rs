//! Per-key OVER windows: `AGG(..) OVER (PARTITION BY key ORDER BY ts
//! <frame>)`, one output row per input row — rolling fraud features such as
//! "the card's transactions in the last hour".
//!
//! Supported: `COUNT(*)`, `COUNT(col)`, `COUNT(DISTINCT col)`, `SUM`, `AVG`,
//! `MIN`, `MAX`, over the frames of [`Frame`]: `ROWS`/`RANGE BETWEEN
//! UNBOUNDED PRECEDING AND CURRENT ROW`, `ROWS BETWEEN n PRECEDING AND
//! CURRENT ROW` and `RANGE BETWEEN INTERVAL '…' PRECEDING AND CURRENT ROW`.
//! All window functions of one query share one PARTITION BY column and one
//! ORDER BY column.
//!
//! **Order.** When the input carries event time (a source upstream declares
//! `event_time`), rows are buffered until the watermark passes their
//! timestamp (`ts < watermark`) and then processed per key in event-time
//! order, ties in arrival order; RANGE frames include peers (rows with the
//! same ORDER BY value), exactly as the batch query over the same rows
//! would, whatever the batch sizes and watermark steps. A row that arrives
//! with a timestamp before the watermark already processed is late: it goes
//! to the dead-letter output with the reason `late` (the one rule of
//! [`crate::late`]); a row with a NULL timestamp goes there too, with its
//! own reason. After a windowed aggregation the window may be ordered by
//! the window column, whatever its name (its watermark is in window
//! starts). Without event time, rows are processed as they arrive (for a
//! keyed log topic: the key's partition order) and emitted at once.
//!
//! **State** is keyed by the PARTITION BY column — the operator's input is
//! hash-partitioned on it; NULL is a key of its own, as in SQL — and holds,
//! per key, only the rows still inside a sliding frame plus one incremental
//! accumulator per aggregate ([`accumulator`]); with event time, keys whose
//! RANGE frames have slid past all their rows are dropped as the watermark
//! advances, after the rows it releases were processed. State is
//! snapshotted at checkpoint barriers and restored on restart.

mod accumulator;
mod frame;
mod keyed;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, StringArray, UInt32Array,
};
use arrow::buffer::NullBuffer;
use arrow::compute::{SortColumn, cast, concat_batches, filter_record_batch, lexsort_to_indices};
use arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::logical_expr::expr::WindowFunction;
use datafusion::logical_expr::{Expr, WindowFunctionDefinition};
use shoal_runtime::state::{KeyedState, StateContext, StateHandle, ValueState};
use shoal_runtime::{DeadLetter, Result as RtResult, RuntimeError};

use crate::codec::{Blob, decode, encode_all};
use crate::error::{Result, SqlError};
use accumulator::{Function, Val};
use frame::Frame;
use keyed::KeyState;

/// One window function of the query.
#[derive(Debug, Clone)]
pub(crate) struct AggSpec {
    func: Function,
    /// Argument column (`None`: `COUNT(*)`).
    arg: Option<usize>,
    frame: Frame,
    /// The argument is an integer (sums stay exact; MIN/MAX stay integers).
    int_arg: bool,
    /// Output column type (`Int64` or `Float64`).
    out_type: DataType,
}

/// A compiled OVER-window stage.
#[derive(Debug, Clone)]
pub(crate) struct OverSpec {
    key: usize,
    key_name: String,
    order: Option<usize>,
    aggs: Vec<AggSpec>,
    input_schema: SchemaRef,
    schema: SchemaRef,
    /// The event-time column (index into the input) when the input carries
    /// watermarks; `None`: process rows as they arrive.
    event_time: Option<usize>,
    /// Input columns that carry the event time under another name (a
    /// window's column, see [`crate::query::event_time_marks`]).
    marked: Vec<usize>,
}

const HINT: &str = "supported: COUNT/COUNT(DISTINCT)/SUM/AVG/MIN/MAX OVER (PARTITION BY key ORDER BY ts \
                    ROWS|RANGE BETWEEN UNBOUNDED PRECEDING | n PRECEDING | INTERVAL '…' PRECEDING AND CURRENT ROW), \
                    ROW_NUMBER() and LAG(col [, n]) OVER (PARTITION BY key ORDER BY ts)";

fn unsupported(what: String) -> SqlError {
    SqlError::new(format!(
        "{what} is not supported in an OVER window on a stream"
    ))
    .with_hint(HINT)
}

/// `LAG(x [, n [, NULL]])`'s offset `n` (default 1); a default other than
/// NULL is refused with the `COALESCE` to write.
fn lag_offset(args: &[Expr]) -> Result<u32> {
    let n = match args.get(1) {
        None => 1,
        Some(Expr::Literal(v, _)) => match v {
            ScalarValue::Int64(Some(n)) if (0..=100_000).contains(n) => *n as u32,
            ScalarValue::Int32(Some(n)) if (0..=100_000).contains(n) => *n as u32,
            ScalarValue::UInt64(Some(n)) if *n <= 100_000 => *n as u32,
            other => {
                return Err(unsupported(format!("LAG with an offset of {other}")));
            }
        },
        Some(other) => return Err(unsupported(format!("LAG with an offset of `{other}`"))),
    };
    match args.get(2) {
        None => {}
        Some(Expr::Literal(v, _)) if v.is_null() => {}
        Some(_) => {
            return Err(SqlError::new("LAG with a default value is not supported")
                .with_hint("write COALESCE(LAG(x) OVER w, default)"));
        }
    }
    Ok(n)
}

fn column_index(e: &Expr, schema: &DFSchema) -> Result<usize> {
    match e {
        Expr::Column(c) => Ok(schema.index_of_column(c)?),
        Expr::Cast(c) => column_index(&c.expr, schema),
        other => Err(unsupported(format!(
            "the expression `{other}` (use a column; compute it in a subquery)"
        ))),
    }
}

fn is_int(t: &DataType) -> bool {
    t.is_integer() || matches!(t, DataType::Timestamp(..))
}

impl OverSpec {
    /// Compile the window expressions of a `Window` plan node.
    pub(crate) fn compile(
        window_expr: &[Expr],
        input: &DFSchema,
        output: SchemaRef,
        marks: &[bool],
    ) -> Result<Self> {
        let mut key: Option<usize> = None;
        let mut order: Option<Option<usize>> = None;
        let mut aggs = Vec::new();
        for (i, e) in window_expr.iter().enumerate() {
            let e = match e {
                Expr::Alias(a) => a.expr.as_ref(),
                e => e,
            };
            let Expr::WindowFunction(wf) = e else {
                return Err(unsupported(format!("`{e}`")));
            };
            let WindowFunction { fun, params } = wf.as_ref();
            // Aggregates over the frame, or ROW_NUMBER / LAG (by position).
            let (name, func) = match fun {
                WindowFunctionDefinition::AggregateUDF(udaf) => {
                    let func = match (udaf.name(), params.distinct) {
                        ("count", false) => Function::Count,
                        ("count", true) => Function::CountDistinct,
                        (_, true) => {
                            return Err(unsupported(format!("{}(DISTINCT …)", udaf.name())));
                        }
                        ("sum", _) => Function::Sum,
                        ("avg", _) => Function::Avg,
                        ("min", _) => Function::Min,
                        ("max", _) => Function::Max,
                        (other, _) => return Err(unsupported(other.to_uppercase())),
                    };
                    (udaf.name().to_owned(), func)
                }
                WindowFunctionDefinition::WindowUDF(w) => match w.name() {
                    "row_number" => ("row_number".to_owned(), Function::RowNumber),
                    "lag" => ("lag".to_owned(), Function::Lag(lag_offset(&params.args)?)),
                    "lead" => {
                        return Err(SqlError::new(
                            "LEAD is not supported on a stream: it needs rows that have not arrived yet",
                        )
                        .with_hint(
                            "compute the feature on the later row instead: LAG(x) OVER (PARTITION BY key ORDER BY ts)",
                        ));
                    }
                    other => return Err(unsupported(format!("the window function {other}"))),
                },
            };
            if params.filter.is_some() {
                return Err(unsupported("FILTER (WHERE …)".into()));
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
            let o = match params.order_by.as_slice() {
                [] => None,
                [s] if s.asc => Some(column_index(&s.expr, input)?),
                [_] => return Err(unsupported("ORDER BY … DESC".into())),
                _ => return Err(unsupported("ORDER BY several columns".into())),
            };
            if order.is_some_and(|old| old != o) {
                return Err(unsupported("windows ordered by different columns".into()));
            }
            order = Some(o);
            let order_type = o.map_or(DataType::Null, |o| input.field(o).data_type().clone());
            let frame = if func.frame_free() {
                Frame::RowsUnbounded
            } else {
                Frame::from_datafusion(&params.window_frame, &order_type).map_err(unsupported)?
            };
            let arg = match params.args.first() {
                None | Some(Expr::Literal(..)) => None,
                Some(a) => Some(column_index(a, input)?),
            };
            let arg_type = arg.map(|a| input.field(a).data_type().clone());
            let numeric = arg_type.as_ref().is_some_and(|t| {
                (t.is_numeric() && !matches!(t, DataType::Decimal128(..)))
                    || (matches!(func, Function::Lag(_)) && is_int(t))
            });
            let countable = matches!(
                func,
                Function::Count | Function::CountDistinct | Function::RowNumber
            );
            if arg.is_none() && !countable {
                return Err(SqlError::new(format!("{name} needs a column argument")));
            }
            if arg.is_some() && !countable && !numeric {
                return Err(unsupported(format!(
                    "{} over a {} column",
                    name.to_uppercase(),
                    arg_type.unwrap_or(DataType::Null)
                )));
            }
            let out_type = output.field(input.fields().len() + i).data_type().clone();
            let out_ok = match func {
                Function::RowNumber => matches!(out_type, DataType::UInt64 | DataType::Int64),
                Function::Lag(_) => {
                    matches!(
                        out_type,
                        DataType::Int64 | DataType::Float64 | DataType::Int32 | DataType::Float32
                    ) || matches!(out_type, DataType::Timestamp(..))
                }
                _ => matches!(out_type, DataType::Int64 | DataType::Float64),
            };
            if !out_ok {
                return Err(unsupported(format!(
                    "{} returning {out_type}",
                    name.to_uppercase()
                )));
            }
            aggs.push(AggSpec {
                func,
                arg,
                frame,
                int_arg: arg_type.as_ref().is_some_and(is_int),
                out_type,
            });
        }
        let key = key.ok_or_else(|| SqlError::new("a window without window functions"))?;
        match input.field(key).data_type() {
            DataType::Int64
            | DataType::Int32
            | DataType::Utf8
            | DataType::Utf8View
            | DataType::LargeUtf8 => {}
            t => return Err(unsupported(format!("PARTITION BY a {t} column"))),
        }
        Ok(Self {
            key,
            key_name: input.field(key).name().clone(),
            order: order.flatten(),
            aggs,
            input_schema: Arc::clone(input.inner()),
            schema: output,
            event_time: None,
            marked: (0..marks.len()).filter(|&i| marks[i]).collect(),
        })
    }

    /// The key column's name, for the hash shuffle.
    pub(crate) fn key_name(&self) -> &str {
        &self.key_name
    }

    /// The input carries watermarks on event-time column `column`: process
    /// rows in event-time order. The window must be ordered by that column,
    /// or by a column carrying the event time under another name (after a
    /// windowed aggregation: its window column, whatever its name).
    pub(crate) fn set_event_time(&mut self, column: &str) -> Result<()> {
        let et = match (self.order, self.marked.first()) {
            (Some(o), Some(_)) if self.marked.contains(&o) => o,
            (_, Some(&m)) => m,
            (_, None) => self.input_schema.index_of(column).map_err(|_| {
                SqlError::new(format!(
                    "an OVER window on an event-time stream needs the event-time column `{column}` in its input"
                ))
                .with_hint(format!("select `{column}` in the query's FROM clause"))
            })?,
        };
        let name = self.input_schema.field(et).name();
        if let Some(o) = self.order
            && o != et
        {
            let why = if self.marked.is_empty() {
                format!("the stream's event time is `{name}`")
            } else {
                format!("the stream's event time is the window column `{name}`")
            };
            return Err(SqlError::new(format!(
                "the OVER window is ordered by `{}`, but {why}",
                self.input_schema.field(o).name()
            ))
            .with_hint(format!("use ORDER BY {name}")));
        }
        self.event_time = Some(et);
        Ok(())
    }

    /// A short description for `shoal explain`.
    pub(crate) fn describe(&self) -> String {
        let order = if self.event_time.is_some() {
            "event-time order"
        } else {
            "arrival order"
        };
        format!(
            "over[by {}; {} aggregates; {order}] (keyed state)",
            self.key_name,
            self.aggs.len()
        )
    }

    /// A batch arrived. Without event time, returns its rows with the
    /// aggregates appended; with event time, buffers the rows (late ones go
    /// to `dead`) and returns nothing — [`OverSpec::release`] emits them.
    pub(crate) fn push(
        &self,
        batch: RecordBatch,
        state: &mut OverState,
        dead: &mut Vec<DeadLetter>,
    ) -> RtResult<Option<RecordBatch>> {
        let Some(et) = self.event_time else {
            return self.process(&batch, state).map(Some);
        };
        // A row without an event time has no place in event-time order.
        let batch = match batch.column(et).logical_nulls() {
            Some(nulls) if nulls.null_count() > 0 => {
                let no_time = BooleanArray::from(nulls.inner().clone());
                let no_time = arrow::compute::not(&no_time)?;
                let rows = filter_record_batch(&batch, &no_time)?;
                dead.extend(crate::late::letters("", &rows, crate::late::NO_EVENT_TIME)?);
                let valid = BooleanArray::from(nulls.into_inner());
                filter_record_batch(&batch, &valid)?
            }
            _ => batch,
        };
        let ts = event_times(&batch, et)?;
        let w = state.watermark;
        // One rule for every operator: `ts < watermark` is late.
        let late = (w > i64::MIN)
            .then(|| BooleanArray::from_unary(&ts, |t| t < w))
            .filter(|m| m.true_count() > 0);
        let batch = match late {
            Some(late) => {
                let late_rows = filter_record_batch(&batch, &late)?;
                let reason = format!("late: event time is before the watermark {w}");
                dead.extend(crate::late::letters("", &late_rows, &reason)?);
                let keep = arrow::compute::not(&late)?;
                filter_record_batch(&batch, &keep)?
            }
            None => batch,
        };
        if batch.num_rows() > 0 {
            let ts = event_times(&batch, et)?;
            let min = arrow::compute::min(&ts).unwrap_or(i64::MAX);
            let max = arrow::compute::max(&ts).unwrap_or(i64::MIN);
            state.pending.push(Pending { batch, min, max });
        }
        Ok(None)
    }

    /// Event time reached `watermark` (ms): process and return the buffered
    /// rows before it (rows at it may still get peers).
    pub(crate) fn release(
        &self,
        watermark: i64,
        state: &mut OverState,
    ) -> RtResult<Option<RecordBatch>> {
        let Some(et) = self.event_time else {
            return Ok(None);
        };
        if watermark <= state.watermark {
            return Ok(None);
        }
        state.watermark = watermark;
        if watermark == i64::MAX {
            // End of input: what is persisted is the event time processed
            // (just after the newest row released), not +inf, so a rerun on
            // a grown input goes on normally.
            let newest = state.pending.iter().map(|p| p.max).max();
            let next = newest.map_or(i64::MIN, |t| t.saturating_add(1));
            state.finite_watermark = state.finite_watermark.max(next);
        } else {
            state.finite_watermark = watermark;
        }
        let mut released = Vec::new();
        let mut kept = Vec::new();
        for p in state.pending.drain(..) {
            if p.max < watermark || watermark == i64::MAX {
                released.push(p.batch);
            } else if p.min >= watermark {
                kept.push(p);
            } else {
                let ts = event_times(&p.batch, et)?;
                let now = BooleanArray::from_unary(&ts, |t| t < watermark);
                released.push(filter_record_batch(&p.batch, &now)?);
                let later = arrow::compute::not(&now)?;
                let batch = filter_record_batch(&p.batch, &later)?;
                let ts = event_times(&batch, et)?;
                let min = arrow::compute::min(&ts).unwrap_or(i64::MAX);
                kept.push(Pending {
                    batch,
                    min,
                    max: p.max,
                });
            }
        }
        state.pending = kept;
        let out = if released.iter().all(|b| b.num_rows() == 0) {
            None
        } else {
            let all = concat_batches(&self.input_schema, &released)?;
            let sorted = self.sort(&all)?;
            Some(self.process(&sorted, state)?)
        };
        // Expire only after the released rows saw their frames: a step
        // wider than the frame releases rows whose history is older than
        // `watermark - frame`. At end of input nothing expires: the frames
        // stay for a rerun.
        if watermark != i64::MAX {
            self.expire(watermark, state);
        }
        Ok(out)
    }

    /// Drop keys every RANGE frame has slid past (event time only).
    fn expire(&self, watermark: i64, state: &mut OverState) {
        // Frames and rows are in the ORDER BY column's units.
        let watermark = self.in_order_units(watermark);
        if watermark < state.next_expiry || !self.aggs.iter().all(|a| a.frame.is_sliding()) {
            return;
        }
        let widest = self
            .aggs
            .iter()
            .map(|a| match a.frame {
                Frame::Range(w) => w,
                _ => i64::MAX,
            })
            .max()
            .unwrap_or(i64::MAX);
        if widest == i64::MAX {
            return;
        }
        let t = state.tables();
        let ints = t.keyed.table(t.ints);
        let gone: Vec<i64> = ints
            .iter()
            .filter(|(_, k)| k.expired(&self.aggs, watermark))
            .map(|(key, _)| *key)
            .collect();
        for key in gone {
            let dropped = ints.remove(&key).map_or(0, |k| k.rows());
            t.rows -= dropped;
        }
        let strs = t.keyed.table(t.strs);
        let gone: Vec<String> = strs
            .iter()
            .filter(|(_, k)| k.expired(&self.aggs, watermark))
            .map(|(key, _)| key.clone())
            .collect();
        for key in gone {
            let dropped = strs.remove(&key).map_or(0, |k| k.rows());
            t.rows -= dropped;
        }
        let nulls = t.keyed.table(t.nulls);
        if nulls
            .get(&())
            .is_some_and(|k| k.expired(&self.aggs, watermark))
        {
            let dropped = nulls.remove(&()).map_or(0, |k| k.rows());
            t.rows -= dropped;
        }
        state.next_expiry = watermark.saturating_add(widest / 2 + 1);
    }

    /// A watermark (ms) in the units of the ORDER BY column, rounded down:
    /// every row still to come has an ORDER BY value at or after it.
    fn in_order_units(&self, watermark: i64) -> i64 {
        let unit = self.order.map(|o| self.input_schema.field(o).data_type());
        match unit {
            Some(DataType::Timestamp(TimeUnit::Second, _)) => watermark.div_euclid(1_000),
            Some(DataType::Timestamp(TimeUnit::Microsecond, _)) => watermark.saturating_mul(1_000),
            Some(DataType::Timestamp(TimeUnit::Nanosecond, _)) => {
                watermark.saturating_mul(1_000_000)
            }
            _ => watermark,
        }
    }

    /// Sort rows by (key, ORDER BY value, arrival).
    fn sort(&self, batch: &RecordBatch) -> RtResult<RecordBatch> {
        let arrival: ArrayRef = Arc::new(UInt32Array::from_iter_values(0..batch.num_rows() as u32));
        let mut columns = vec![SortColumn {
            values: batch.column(self.key).clone(),
            options: None,
        }];
        if let Some(o) = self.order {
            columns.push(SortColumn {
                values: batch.column(o).clone(),
                options: None,
            });
        }
        columns.push(SortColumn {
            values: arrival,
            options: None,
        });
        let indices = lexsort_to_indices(&columns, None)?;
        Ok(arrow::compute::take_record_batch(batch, &indices)?)
    }

    /// Compute the aggregates of `batch`'s rows in their order and append
    /// them as columns.
    fn process(&self, batch: &RecordBatch, state: &mut OverState) -> RtResult<RecordBatch> {
        let rows = batch.num_rows();
        let n = self.aggs.len();
        let args = self
            .aggs
            .iter()
            .map(|a| ArgColumn::new(a.arg.map(|i| batch.column(i))))
            .collect::<RtResult<Vec<_>>>()?;
        let orders = match self.order {
            Some(o) => Some(as_i64(batch.column(o))?),
            None => None,
        };
        let key_col = match batch.column(self.key) {
            c if matches!(c.data_type(), DataType::Utf8View | DataType::LargeUtf8) => {
                cast(c, &DataType::Utf8)?
            }
            c => c.clone(),
        };
        let key_col = &key_col;
        let key_nulls = key_col.logical_nulls();
        let key_nulls = key_nulls.as_ref();
        let int_keys = match key_col.data_type() {
            DataType::Utf8 => None,
            _ => Some(as_i64(key_col)?),
        };
        let str_keys = key_col.as_string_opt::<i32>();
        state.tables();
        let OverState {
            tables, out, vals, ..
        } = state;
        let OverTables {
            keyed,
            ints,
            strs,
            nulls,
            rows: retained,
            ..
        } = tables.as_mut().expect("created above");
        out.resize_with(n, Vec::new);
        for o in out.iter_mut() {
            o.clear();
            o.reserve(rows);
        }
        let mut row = 0;
        while row < rows {
            // A group: consecutive rows with one key and one ORDER BY value.
            let order = orders.as_ref().map_or(0, |o| o.value(row));
            let mut end = row + 1;
            while end < rows
                && orders.as_ref().is_some_and(|o| o.value(end) == order)
                && same_key(int_keys.as_ref(), str_keys, key_nulls, row, end)
            {
                end += 1;
            }
            vals.clear();
            for r in row..end {
                vals.extend(args.iter().map(|a| a.value(r)));
            }
            let key_state = match (&int_keys, str_keys) {
                // NULL is a key of its own (SQL's PARTITION BY), not 0 or ''.
                _ if key_nulls.is_some_and(|n| n.is_null(row)) => keyed
                    .table(*nulls)
                    .get_or_insert_with(&(), || KeyState::new(&self.aggs)),
                (Some(k), _) => {
                    let k = k.value(row);
                    keyed
                        .table(*ints)
                        .get_or_insert_with(&k, || KeyState::new(&self.aggs))
                }
                (None, Some(k)) => {
                    let k = k.value(row);
                    keyed
                        .table(*strs)
                        .get_or_insert_with(k, || KeyState::new(&self.aggs))
                }
                _ => return Err(RuntimeError::Internal("OVER window key column".into())),
            };
            let before = key_state.rows();
            key_state.process_group(&self.aggs, order, vals, out);
            *retained = *retained + key_state.rows() - before;
            row = end;
        }
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        for (a, values) in self.aggs.iter().zip(out.iter()) {
            columns.push(output_array(&a.out_type, values));
        }
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

fn same_key(
    ints: Option<&Int64Array>,
    strs: Option<&StringArray>,
    nulls: Option<&NullBuffer>,
    a: usize,
    b: usize,
) -> bool {
    if let Some(n) = nulls
        && (n.is_null(a) || n.is_null(b))
    {
        return n.is_null(a) && n.is_null(b);
    }
    match (ints, strs) {
        (Some(k), _) => k.value(a) == k.value(b),
        (None, Some(k)) => k.value(a) == k.value(b),
        _ => false,
    }
}

/// An aggregate's argument column, read as [`Val`]s.
enum ArgColumn {
    Star,
    Int(Int64Array),
    Float(Float64Array),
    Str(StringArray),
}

impl ArgColumn {
    fn new(col: Option<&ArrayRef>) -> RtResult<Self> {
        let Some(col) = col else {
            return Ok(ArgColumn::Star);
        };
        Ok(match col.data_type() {
            DataType::Utf8 => ArgColumn::Str(col.as_string::<i32>().clone()),
            DataType::Utf8View | DataType::LargeUtf8 => {
                ArgColumn::Str(cast(col, &DataType::Utf8)?.as_string::<i32>().clone())
            }
            DataType::Float64 => ArgColumn::Float(col.as_primitive::<Float64Type>().clone()),
            DataType::Float32 | DataType::Float16 => ArgColumn::Float(
                cast(col, &DataType::Float64)?
                    .as_primitive::<Float64Type>()
                    .clone(),
            ),
            _ => ArgColumn::Int(as_i64(col)?),
        })
    }

    fn value(&self, row: usize) -> Val {
        match self {
            ArgColumn::Star => Val::I(1),
            ArgColumn::Int(a) if a.is_valid(row) => Val::I(a.value(row)),
            ArgColumn::Float(a) if a.is_valid(row) => Val::F(a.value(row)),
            ArgColumn::Str(a) if a.is_valid(row) => Val::I(hash_str(a.value(row)) as i64),
            _ => Val::Null,
        }
    }
}

/// A stable 64-bit hash of a string (FNV-1a), so distinct counts of
/// strings survive a restore.
fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn as_i64(col: &ArrayRef) -> RtResult<Int64Array> {
    let c = match col.data_type() {
        DataType::Int64 => col.clone(),
        _ => cast(col, &DataType::Int64)?,
    };
    Ok(c.as_primitive::<Int64Type>().clone())
}

/// Event time of every row in milliseconds.
fn event_times(batch: &RecordBatch, column: usize) -> RtResult<Int64Array> {
    let col = batch.column(column);
    let ms = match col.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Int64 => col.clone(),
        DataType::Timestamp(_, tz) => {
            cast(col, &DataType::Timestamp(TimeUnit::Millisecond, tz.clone()))?
        }
        t => {
            return Err(RuntimeError::User(format!(
                "event-time column is {t}, not a timestamp"
            )));
        }
    };
    as_i64(&ms)
}

fn output_array(t: &DataType, values: &[Val]) -> ArrayRef {
    match t {
        DataType::UInt64 => Arc::new(
            values
                .iter()
                .map(|v| match *v {
                    Val::I(x) => Some(x as u64),
                    Val::F(x) => Some(x as u64),
                    Val::Null => None,
                })
                .collect::<arrow::array::UInt64Array>(),
        ),
        DataType::Float64 | DataType::Int64 => output_array_64(t, values),
        // LAG of an int32, float32 or timestamp column: its own type.
        other => {
            let wide = if matches!(other, DataType::Float32) {
                DataType::Float64
            } else {
                DataType::Int64
            };
            let a = output_array_64(&wide, values);
            cast(&a, other).unwrap_or(a)
        }
    }
}

fn output_array_64(t: &DataType, values: &[Val]) -> ArrayRef {
    match t {
        DataType::Float64 => Arc::new(
            values
                .iter()
                .map(|v| match *v {
                    Val::F(x) => Some(x),
                    Val::I(x) => Some(x as f64),
                    Val::Null => None,
                })
                .collect::<Float64Array>(),
        ),
        _ => Arc::new(
            values
                .iter()
                .map(|v| match *v {
                    Val::I(x) => Some(x),
                    Val::F(x) => Some(x as i64),
                    Val::Null => None,
                })
                .collect::<Int64Array>(),
        ),
    }
}

/// Rows waiting for the watermark, with their event-time range.
#[derive(Debug, Clone)]
struct Pending {
    batch: RecordBatch,
    min: i64,
    max: i64,
}

/// The per-key state of an OVER stage, in the runtime's keyed state (so a
/// checkpoint writes only the keys that changed since the previous one).
#[derive(Debug)]
struct OverTables {
    keyed: KeyedState,
    ints: StateHandle<ValueState<i64, KeyState>>,
    strs: StateHandle<ValueState<String, KeyState>>,
    /// The NULL key (one partition of its own).
    nulls: StateHandle<ValueState<(), KeyState>>,
    /// Rows waiting for the watermark, as one Arrow IPC blob (key 0), put
    /// in only while a snapshot is taken.
    pending: StateHandle<ValueState<u8, Blob>>,
    /// Rows retained over all keys (kept up to date, for the state metric).
    rows: usize,
}

impl OverTables {
    fn new() -> Self {
        let mut keyed = KeyedState::new();
        let ints = keyed.value("over_int_keys");
        let strs = keyed.value("over_str_keys");
        let nulls = keyed.value("over_null_key");
        let pending = keyed.value("over_pending_rows");
        Self {
            keyed,
            ints,
            strs,
            nulls,
            pending,
            rows: 0,
        }
    }

    /// Count the retained rows of every key (after a restore).
    fn count_rows(&mut self) {
        let ints = self.keyed.get(self.ints).iter();
        let strs = self.keyed.get(self.strs).iter();
        let nulls = self.keyed.get(self.nulls).iter();
        self.rows = ints.map(|(_, k)| k.rows()).sum::<usize>()
            + strs.map(|(_, k)| k.rows()).sum::<usize>()
            + nulls.map(|(_, k)| k.rows()).sum::<usize>();
    }
}

/// The runtime state of one OVER stage in one operator instance.
#[derive(Debug)]
pub(crate) struct OverState {
    /// Created on first use (a stateless query never needs it).
    tables: Option<OverTables>,
    pending: Vec<Pending>,
    /// Event time processed so far (ms); +inf once the input ended.
    watermark: i64,
    /// The same, never +inf: at end of input the newest row's event time.
    /// This is what snapshots persist.
    finite_watermark: i64,
    next_expiry: i64,
    /// Scratch: output values per aggregate, argument values of a group.
    out: Vec<Vec<Val>>,
    vals: Vec<Val>,
}

impl Default for OverState {
    fn default() -> Self {
        Self {
            tables: None,
            pending: Vec::new(),
            watermark: i64::MIN,
            finite_watermark: i64::MIN,
            next_expiry: i64::MIN,
            out: Vec::new(),
            vals: Vec::new(),
        }
    }
}

impl OverState {
    fn tables(&mut self) -> &mut OverTables {
        self.tables.get_or_insert_with(OverTables::new)
    }

    /// Keys held.
    pub(crate) fn keys(&self) -> usize {
        self.tables.as_ref().map_or(0, |t| t.keyed.keys())
    }

    /// Rows held: buffered until the watermark, and inside sliding frames.
    pub(crate) fn rows(&self) -> usize {
        self.pending
            .iter()
            .map(|p| p.batch.num_rows())
            .sum::<usize>()
            + self.tables.as_ref().map_or(0, |t| t.rows)
    }

    /// A checkpoint: the per-key state and the rows waiting for the
    /// watermark go to the keyed-state files of the checkpoint (a delta of
    /// the changed keys); returns `{"watermark", "keyed_state"}`.
    pub(crate) fn snapshot_at(&mut self, ctx: &StateContext) -> RtResult<serde_json::Value> {
        let waiting = match self.pending.as_slice() {
            [] => None,
            some => Some(encode_all(some.iter().map(|p| &p.batch))?),
        };
        let t = self.tables();
        if let Some(blob) = waiting {
            t.keyed.table(t.pending).insert(0, blob);
        }
        let reference = t.keyed.snapshot(ctx)?;
        // Held in `pending` only; the next snapshot writes them again (or
        // their removal).
        t.keyed.table(t.pending).remove(&0);
        Ok(serde_json::json!({
            "watermark": self.finite_watermark,
            "keyed_state": reference["keyed_state"].clone(),
        }))
    }

    /// Restore from [`OverState::snapshot_at`]'s reference.
    pub(crate) fn restore_at(
        &mut self,
        spec: &OverSpec,
        v: &serde_json::Value,
        dir: &shoal_runtime::state::StateStore,
    ) -> RtResult<()> {
        *self = OverState::default();
        let t = self.tables();
        let reference = serde_json::json!({ "keyed_state": v["keyed_state"].clone() });
        t.keyed.restore(&reference, dir)?;
        let waiting = t.keyed.table(t.pending).remove(&0);
        t.count_rows();
        self.restore_buffered(spec, v, waiting)
    }

    /// Restore the watermark and the rows waiting for it: `waiting` from
    /// the keyed state, or (a checkpoint of Shoal before state format 2)
    /// the JSON lines in the reference's `pending`.
    fn restore_buffered(
        &mut self,
        spec: &OverSpec,
        v: &serde_json::Value,
        waiting: Option<Blob>,
    ) -> RtResult<()> {
        self.watermark = v["watermark"].as_i64().unwrap_or(i64::MIN);
        self.finite_watermark = self.watermark;
        self.pending.clear();
        let mut batches = Vec::new();
        if let Some(blob) = waiting {
            batches.push(decode(&blob, &spec.input_schema)?);
        }
        let text = v["pending"].as_str().unwrap_or("");
        if !text.is_empty() {
            let reader = arrow::json::ReaderBuilder::new(spec.input_schema.clone())
                .build(std::io::Cursor::new(text.as_bytes()))?;
            for batch in reader {
                batches.push(batch?);
            }
        }
        if let Some(et) = spec.event_time {
            for batch in batches.into_iter().filter(|b| b.num_rows() > 0) {
                let ts = event_times(&batch, et)?;
                let min = arrow::compute::min(&ts).unwrap_or(i64::MAX);
                let max = arrow::compute::max(&ts).unwrap_or(i64::MIN);
                self.pending.push(Pending { batch, min, max });
            }
        }
        Ok(())
    }
}
