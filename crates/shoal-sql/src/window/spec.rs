//! Compiling a `GROUP BY <window>, keys…` aggregate of DataFusion's logical
//! plan into a [`WindowAggSpec`]: physical expressions for the event time,
//! the keys and each aggregate's arguments, and DataFusion's own aggregate
//! functions (their `GroupsAccumulator`s do the arithmetic).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Aggregate, Expr, GroupsAccumulator};
use datafusion::physical_expr::aggregate::{AggregateFunctionExpr, LoweredAggregateBuilder};
use datafusion::physical_expr::{GroupsAccumulatorAdapter, PhysicalExpr};
use datafusion::prelude::SessionContext;

use crate::error::{Result, SqlError};
use crate::window::functions::{WindowKind, window_call};

/// One aggregate of the `SELECT` list.
#[derive(Debug, Clone)]
pub(crate) struct Agg {
    pub(crate) expr: Arc<AggregateFunctionExpr>,
    pub(crate) args: Vec<Arc<dyn PhysicalExpr>>,
    pub(crate) filter: Option<Arc<dyn PhysicalExpr>>,
    /// How many intermediate-state columns the aggregate has.
    pub(crate) n_state: usize,
}

impl Agg {
    /// A fresh per-group accumulator: DataFusion's vectorised one when the
    /// function has it, otherwise its row accumulator behind an adapter.
    pub(crate) fn accumulator(&self) -> Result<Box<dyn GroupsAccumulator>> {
        if self.expr.groups_accumulator_supported() {
            return Ok(self.expr.create_groups_accumulator()?);
        }
        let expr = Arc::clone(&self.expr);
        Ok(Box::new(GroupsAccumulatorAdapter::new(move || {
            expr.create_accumulator()
        })))
    }
}

/// A compiled windowed aggregation.
#[derive(Debug, Clone)]
pub struct WindowAggSpec {
    pub(crate) kind: WindowKind,
    /// Event time, over the aggregate's input.
    pub(crate) time: Arc<dyn PhysicalExpr>,
    /// The window's time is the stream's event time plus `shift` ms
    /// (`tumble(ts - INTERVAL '1' HOUR, …)`: -3 600 000): watermarks are
    /// shifted alike before they are compared with it.
    pub(crate) shift: i64,
    /// Position of the window column among the output's group columns.
    pub(crate) window_pos: usize,
    /// The other `GROUP BY` expressions.
    pub(crate) keys: Vec<Arc<dyn PhysicalExpr>>,
    /// Their fields (for the group-value tables).
    pub(crate) key_schema: SchemaRef,
    pub(crate) aggs: Vec<Agg>,
    /// What the operator emits: group columns, then aggregates.
    pub(crate) output: SchemaRef,
    /// Keys, then every aggregate's state columns (frozen panes, snapshots).
    pub(crate) state_schema: SchemaRef,
    /// Event time (`int64` ms), keys, aggregate arguments and filters
    /// (buffered session rows, snapshots).
    pub(crate) rows_schema: SchemaRef,
}

impl WindowAggSpec {
    /// Compile `agg` if it groups by exactly one window function.
    pub(crate) fn compile(ctx: &SessionContext, agg: &Aggregate) -> Result<Self> {
        let input = agg.input.schema();
        let physical_schema = input.inner();
        let mut window = None;
        let mut keys = Vec::new();
        let mut key_fields: Vec<FieldRef> = Vec::new();
        for (i, e) in agg.group_expr.iter().enumerate() {
            if matches!(e, Expr::GroupingSet(_)) {
                return Err(SqlError::new(
                    "GROUPING SETS / ROLLUP / CUBE are not supported on a stream",
                )
                .with_hint("group by one window function and plain columns"));
            }
            match window_call(e) {
                Some(call) => {
                    let (kind, ts) = call?;
                    if window.is_some() {
                        return Err(SqlError::new("a GROUP BY may use one window function")
                            .with_hint("use one of tumble(), hop() or session()"));
                    }
                    let shift = time_shift(ts).unwrap_or(0);
                    window = Some((i, kind, shift, ctx.create_physical_expr(ts.clone(), input)?));
                }
                None => {
                    keys.push(ctx.create_physical_expr(e.clone(), input)?);
                    key_fields.push(Arc::clone(&agg.schema.inner().fields()[i]));
                }
            }
        }
        let Some((window_pos, kind, shift, time)) = window else {
            return Err(SqlError::new(
                "GROUP BY without a time window is not supported on a stream",
            )
            .with_hint(
                "group by tumble(ts, INTERVAL '1' MINUTE), hop(ts, INTERVAL '10' SECOND, INTERVAL '1' MINUTE) or session(ts, INTERVAL '5' MINUTE) plus your keys",
            ));
        };
        match time.data_type(physical_schema)? {
            DataType::Timestamp(..) => {}
            other => {
                return Err(SqlError::new(format!(
                    "the window's event-time argument must be a timestamp, got {other}"
                )));
            }
        }
        let props = ctx.state().execution_props().clone();
        let planning = PhysicalPlanningContext::default();
        let mut aggs = Vec::new();
        let mut state_fields: Vec<FieldRef> =
            key_fields.iter().map(|f| nullable(f, f.name())).collect();
        let mut row_fields: Vec<FieldRef> =
            vec![Arc::new(Field::new("__event_time", DataType::Int64, false))];
        row_fields.extend(key_fields.iter().map(|f| nullable(f, f.name())));
        for (i, e) in agg.aggr_expr.iter().enumerate() {
            let lowered =
                LoweredAggregateBuilder::new(e, input, physical_schema, &props, &planning)
                    .build()?;
            let expr = lowered.aggregate;
            // `WITHIN GROUP (ORDER BY x)` of a percentile names its argument; it
            // does not need sorted input.
            if !lowered.order_bys.is_empty()
                && expr.order_sensitivity().hard_requires()
                && !expr.fun().supports_within_group_clause()
            {
                return Err(SqlError::new(format!(
                    "the ordered aggregate `{}` is not supported on a stream",
                    expr.name()
                ))
                .with_hint(
                    "drop its ORDER BY / WITHIN GROUP, or use an order-insensitive aggregate",
                ));
            }
            let args = expr.expressions();
            for (j, a) in args.iter().enumerate() {
                row_fields.push(Arc::new(Field::new(
                    format!("__a{i}_{j}"),
                    a.data_type(physical_schema)?,
                    true,
                )));
            }
            if lowered.filter.is_some() {
                row_fields.push(Arc::new(Field::new(
                    format!("__f{i}"),
                    DataType::Boolean,
                    true,
                )));
            }
            let fields = expr.state_fields()?;
            for (j, f) in fields.iter().enumerate() {
                state_fields.push(nullable(f, &format!("__s{i}_{j}")));
            }
            aggs.push(Agg {
                n_state: fields.len(),
                args,
                filter: lowered.filter,
                expr,
            });
        }
        Ok(Self {
            kind,
            time,
            shift,
            window_pos,
            keys,
            key_schema: Arc::new(Schema::new(key_fields)),
            aggs,
            output: Arc::clone(agg.schema.inner()),
            state_schema: Arc::new(Schema::new(state_fields)),
            rows_schema: Arc::new(Schema::new(row_fields)),
        })
    }

    /// The output schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.output
    }

    /// A one-line description for `shoal explain`.
    pub fn describe(&self) -> String {
        let window = match self.kind {
            WindowKind::Tumble { size } => format!("tumble {size}ms"),
            WindowKind::Hop { slide, size } => {
                format!(
                    "hop {size}ms every {slide}ms (panes of {}ms)",
                    pane_ms(self.kind)
                )
            }
            WindowKind::Session { gap } => format!("session gap {gap}ms"),
        };
        let window = match self.shift {
            0 => window,
            ms => format!("{window} of event time {ms:+}ms"),
        };
        let aggs: Vec<&str> = self.aggs.iter().map(|a| a.expr.name()).collect();
        format!(
            "window-aggregate[{window}; {} keys; {}] (state, fires on watermark)",
            self.keys.len(),
            aggs.join(", ")
        )
    }

    /// The first `GROUP BY` key when it is a plain column: with parallelism
    /// > 1 the input must be shuffled on it.
    pub fn key_column(&self) -> Option<&str> {
        let first = self.keys.first()?;
        first
            .downcast_ref::<datafusion::physical_expr::expressions::Column>()
            .map(|c| c.name())
    }

    /// A watermark of the stream, in the window's (shifted) time.
    pub(crate) fn shifted(&self, watermark: i64) -> i64 {
        if watermark == i64::MIN || watermark == i64::MAX {
            watermark
        } else {
            watermark.saturating_add(self.shift)
        }
    }

    /// The type of the window column.
    pub(crate) fn window_type(&self) -> &DataType {
        self.output.field(self.window_pos).data_type()
    }
}

/// The width of the panes rows are aggregated into: a tumble's size, and the
/// largest width dividing both a hop's slide and size (so each row updates
/// exactly one pane, whatever `size / slide` is).
pub(crate) fn pane_ms(kind: WindowKind) -> i64 {
    match kind {
        WindowKind::Tumble { size } => size,
        WindowKind::Hop { slide, size } => gcd(slide, size),
        WindowKind::Session { gap } => gap,
    }
}

/// How far (ms) a window's time expression is from the column it reads,
/// when it is that column shifted by constant intervals (`ts`, `ts -
/// INTERVAL '1' HOUR`, casts between timestamp units); `None` for any other
/// expression.
fn time_shift(e: &Expr) -> Option<i64> {
    use datafusion::logical_expr::{BinaryExpr, Operator};
    match e {
        Expr::Column(_) => Some(0),
        Expr::Alias(a) => time_shift(&a.expr),
        Expr::Cast(c) if matches!(c.field.data_type(), DataType::Timestamp(..)) => {
            time_shift(&c.expr)
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match (op, &**left, &**right) {
            (Operator::Plus, e, Expr::Literal(v, _)) | (Operator::Plus, Expr::Literal(v, _), e) => {
                time_shift(e)?.checked_add(signed_interval_ms(v)?)
            }
            (Operator::Minus, e, Expr::Literal(v, _)) => {
                time_shift(e)?.checked_sub(signed_interval_ms(v)?)
            }
            _ => None,
        },
        _ => None,
    }
}

/// A fixed-length interval literal in ms, of either sign.
fn signed_interval_ms(v: &datafusion::common::ScalarValue) -> Option<i64> {
    use datafusion::common::ScalarValue as S;
    match v {
        S::IntervalMonthDayNano(Some(i)) if i.months == 0 => {
            Some(i.days as i64 * 86_400_000 + i.nanoseconds / 1_000_000)
        }
        S::IntervalDayTime(Some(i)) => Some(i.days as i64 * 86_400_000 + i.milliseconds as i64),
        S::DurationSecond(Some(s)) => s.checked_mul(1_000),
        S::DurationMillisecond(Some(ms)) => Some(*ms),
        S::DurationMicrosecond(Some(us)) => Some(us / 1_000),
        S::DurationNanosecond(Some(ns)) => Some(ns / 1_000_000),
        _ => None,
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn nullable(f: &Field, name: &str) -> FieldRef {
    Arc::new(Field::new(name, f.data_type().clone(), true))
}

/// `timestamp(ms)` with the time zone of `t` (the window column's type).
pub(crate) fn millis_type(t: &DataType) -> DataType {
    match t {
        DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Millisecond, tz.clone()),
        _ => DataType::Timestamp(TimeUnit::Millisecond, None),
    }
}
