//! Interval joins of two streams:
//! `… FROM a JOIN b ON a.k = b.k AND a.ts BETWEEN b.ts - INTERVAL '5' SECOND AND b.ts + INTERVAL '5' SECOND`.
//!
//! Each side buffers its rows (in arrival chunks, with a hash index on the
//! equality keys). A new batch probes the other side's index, the candidate
//! pairs are gathered into one joined batch and DataFusion's join filter (the
//! time bound and any other condition) is evaluated on it; then the batch is
//! buffered on its own side. Each matching pair is thus produced once, when
//! its later row arrives, and immediately (an inner join needs no watermark
//! to emit).
//!
//! The time bound `lo <= a.ts - b.ts <= hi` is read from the join condition;
//! a row of `a` can still match once `a.ts - lo >= watermark` (a row of `b`:
//! `b.ts + hi >= watermark`), so a chunk is dropped once all its rows are past
//! that, which bounds the state by the watermark. Rows before the watermark
//! are late and go to the dead-letter output.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, RecordBatchOptions, UInt32Array,
};
use arrow::compute::{cast, filter_record_batch, interleave, take};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::{DFSchema, ExprSchema};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator as Op};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use shoal_runtime::{Result as RtResult, RuntimeError};

use crate::blob_state::{BlobState, Unit, unit_batch};
use crate::error::{Result, SqlError};
use crate::late::Rejection;
use crate::window::functions::interval_ms;

/// One side of an interval join, as compiled.
#[derive(Debug, Clone)]
pub(crate) struct JoinSide {
    /// Rows of this side after its own stages.
    pub(crate) schema: SchemaRef,
    keys: Vec<Arc<dyn PhysicalExpr>>,
    time: Arc<dyn PhysicalExpr>,
    /// A row is kept while `ts + keep_ms >= watermark`.
    keep_ms: i64,
}

/// A compiled interval join.
#[derive(Debug, Clone)]
pub struct IntervalJoinSpec {
    pub(crate) sides: [JoinSide; 2],
    filter: Option<Arc<dyn PhysicalExpr>>,
    output: SchemaRef,
    lo: i64,
    hi: i64,
}

const BOUND_HINT: &str = "bound the join in event time, e.g. ON a.k = b.k AND a.ts BETWEEN b.ts - INTERVAL '10' SECOND AND b.ts + INTERVAL '10' SECOND";

impl IntervalJoinSpec {
    /// Compile an inner join of `left` and `right` (their output schemas)
    /// with equality pairs `on` and condition `filter`, emitting `output`.
    pub(crate) fn compile(
        ctx: &SessionContext,
        left: &DFSchema,
        right: &DFSchema,
        on: &[(Expr, Expr)],
        filter: Option<&Expr>,
        output: &DFSchema,
    ) -> Result<Self> {
        // lo <= left.ts - right.ts <= hi, from the conjuncts that compare the
        // two sides' time columns.
        let (mut lo, mut hi) = (None::<i64>, None::<i64>);
        let (mut lt, mut rt) = (None, None);
        for c in filter.map(split_conjunction).unwrap_or_default() {
            let Some((l, r, op, offset)) = time_bound(c) else {
                continue;
            };
            // Normalise to `left_col - right_col  op  offset`.
            let (lcol, rcol, op, offset) = if left.has_column(l) && right.has_column(r) {
                (l, r, op, offset)
            } else if left.has_column(r) && right.has_column(l) {
                (r, l, swap(op), -offset)
            } else {
                continue;
            };
            if !is_time(left, lcol) || !is_time(right, rcol) {
                continue; // a condition on other columns, e.g. a.amount > b.amount
            }
            match op {
                Op::GtEq | Op::Gt => lo = Some(lo.map_or(offset, |v: i64| v.max(offset))),
                Op::LtEq | Op::Lt => hi = Some(hi.map_or(offset, |v: i64| v.min(offset))),
                _ => continue,
            }
            lt = Some(lcol.clone());
            rt = Some(rcol.clone());
        }
        // `l.ts = r.ts` (also `BETWEEN r.ts AND r.ts`, which the optimiser
        // turns into an equality key) bounds the difference to 0.
        for (l, r) in on {
            let (Some(lc), Some(rc)) = (column(l), column(r)) else {
                continue;
            };
            if is_time(left, lc) && is_time(right, rc) {
                lo = Some(lo.map_or(0, |v: i64| v.max(0)));
                hi = Some(hi.map_or(0, |v: i64| v.min(0)));
                lt = Some(lc.clone());
                rt = Some(rc.clone());
            }
        }
        let (Some(lo), Some(hi), Some(lt), Some(rt)) = (lo, hi, lt, rt) else {
            return Err(SqlError::new(
                "a stream join needs a time bound on both sides (a lower and an upper one)",
            )
            .with_hint(BOUND_HINT));
        };
        if lo > hi {
            return Err(SqlError::new(format!(
                "the join's time bound is empty ({lo} ms > {hi} ms)"
            )));
        }
        let side = |schema: &DFSchema,
                    keys: Vec<&Expr>,
                    time: datafusion::common::Column,
                    keep_ms: i64|
         -> Result<JoinSide> {
            let keys = keys
                .into_iter()
                .map(|k| ctx.create_physical_expr(k.clone(), schema))
                .collect::<datafusion::common::Result<Vec<_>>>()?;
            let time = ctx.create_physical_expr(Expr::Column(time), schema)?;
            if !matches!(time.data_type(schema.as_arrow())?, DataType::Timestamp(..)) {
                return Err(SqlError::new("the join's time columns must be timestamps"));
            }
            Ok(JoinSide {
                schema: Arc::clone(schema.inner()),
                keys,
                time,
                keep_ms,
            })
        };
        let sides = [
            side(left, on.iter().map(|(l, _)| l).collect(), lt, -lo)?,
            side(right, on.iter().map(|(_, r)| r).collect(), rt, hi)?,
        ];
        for (a, b) in sides[0].keys.iter().zip(&sides[1].keys) {
            if a.data_type(&sides[0].schema)? != b.data_type(&sides[1].schema)? {
                return Err(
                    SqlError::new("the join keys of the two sides have different types")
                        .with_hint("CAST one side so both keys have the same type"),
                );
            }
        }
        Ok(Self {
            sides,
            filter: filter
                .map(|f| ctx.create_physical_expr(f.clone(), output))
                .transpose()?,
            output: Arc::clone(output.inner()),
            lo,
            hi,
        })
    }

    /// How far behind the input watermark an output row's event time (of
    /// either side) can be.
    pub(crate) fn lag_ms(&self) -> i64 {
        self.lo.abs().max(self.hi.abs())
    }

    /// The rows the join emits.
    pub fn schema(&self) -> &SchemaRef {
        &self.output
    }

    /// A one-line description for `shoal explain`.
    pub fn describe(&self) -> String {
        format!(
            "interval-join[{} keys; {} ms <= left.ts - right.ts <= {} ms] (state, evicted by watermark)",
            self.sides[0].keys.len(),
            self.lo,
            self.hi
        )
    }
}

fn is_time(schema: &DFSchema, c: &datafusion::common::Column) -> bool {
    schema
        .field_from_column(c)
        .is_ok_and(|f| matches!(f.data_type(), DataType::Timestamp(..)))
}

fn split_conjunction(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Op::And,
            right,
        }) => {
            let mut v = split_conjunction(left);
            v.extend(split_conjunction(right));
            v
        }
        other => vec![other],
    }
}

fn swap(op: Op) -> Op {
    match op {
        Op::Gt => Op::Lt,
        Op::GtEq => Op::LtEq,
        Op::Lt => Op::Gt,
        Op::LtEq => Op::GtEq,
        other => other,
    }
}

/// `x op y [+-] INTERVAL` as (x, y, op, ±interval ms), so that
/// `x - y op offset`.
fn time_bound(
    e: &Expr,
) -> Option<(
    &datafusion::common::Column,
    &datafusion::common::Column,
    Op,
    i64,
)> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
        return None;
    };
    if !matches!(op, Op::Gt | Op::GtEq | Op::Lt | Op::LtEq) {
        return None;
    }
    let x = column(left)?;
    let (y, offset) = match right.as_ref() {
        Expr::BinaryExpr(BinaryExpr {
            left: l,
            op: o @ (Op::Plus | Op::Minus),
            right: r,
        }) => {
            let Expr::Literal(v, _) = r.as_ref() else {
                return None;
            };
            let ms = interval_ms(v).ok()?;
            (column(l)?, if *o == Op::Plus { ms } else { -ms })
        }
        other => (column(other)?, 0),
    };
    Some((x, y, *op, offset))
}

fn column(e: &Expr) -> Option<&datafusion::common::Column> {
    match e {
        Expr::Column(c) => Some(c),
        Expr::Cast(c) => column(&c.expr),
        Expr::TryCast(c) => column(&c.expr),
        _ => None,
    }
}

/// The buffered rows of one side.
#[derive(Default)]
struct Buffer {
    /// Chunks in arrival order, with the largest event time in each.
    chunks: VecDeque<(RecordBatch, i64)>,
    /// Id of `chunks[0]`.
    base: u64,
    /// Key (row format) → (chunk id, row) of every buffered row.
    index: HashMap<Box<[u8]>, Vec<(u64, u32)>>,
    rows: usize,
}

/// The state of one interval-join instance.
pub struct IntervalJoinState {
    watermark: i64,
    buffers: [Buffer; 2],
    converters: [RowConverter; 2],
    next_sweep: i64,
}

fn millis(a: &ArrayRef) -> RtResult<Int64Array> {
    let ms = cast(a, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
    Ok(cast(&ms, &DataType::Int64)?
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("int64")
        .clone())
}

impl IntervalJoinState {
    /// Empty state for `spec`.
    pub(crate) fn new(spec: &IntervalJoinSpec) -> RtResult<Self> {
        let conv = |s: &JoinSide| -> RtResult<RowConverter> {
            let fields = s
                .keys
                .iter()
                .map(|k| Ok(SortField::new(k.data_type(&s.schema)?)))
                .collect::<RtResult<Vec<_>>>()?;
            // Without equality keys every row shares one (constant) key.
            let fields = if fields.is_empty() {
                vec![SortField::new(DataType::Boolean)]
            } else {
                fields
            };
            Ok(RowConverter::new(fields)?)
        };
        Ok(Self {
            watermark: i64::MIN,
            buffers: [Buffer::default(), Buffer::default()],
            converters: [conv(&spec.sides[0])?, conv(&spec.sides[1])?],
            next_sweep: i64::MIN,
        })
    }

    /// Rows buffered on both sides (the state size in metrics).
    pub fn rows(&self) -> usize {
        self.buffers[0].rows + self.buffers[1].rows
    }

    fn key_rows(
        &self,
        spec: &IntervalJoinSpec,
        side: usize,
        batch: &RecordBatch,
    ) -> RtResult<(Rows, Vec<bool>)> {
        let n = batch.num_rows();
        let mut keys = spec.sides[side]
            .keys
            .iter()
            .map(|k| k.evaluate(batch)?.into_array(n))
            .collect::<datafusion::common::Result<Vec<_>>>()?;
        if keys.is_empty() {
            keys.push(Arc::new(BooleanArray::from(vec![true; n])));
        }
        let mut valid = vec![true; n];
        for k in &keys {
            if k.null_count() > 0 {
                for (i, v) in valid.iter_mut().enumerate() {
                    *v &= k.is_valid(i);
                }
            }
        }
        Ok((self.converters[side].convert_columns(&keys)?, valid))
    }

    /// Join a batch of `side` (already through that side's stages) with the
    /// other side; buffer it. Returns the joined rows; rows it rejects
    /// (late, or without an event time) go to `rejected`.
    pub(crate) fn process(
        &mut self,
        spec: &IntervalJoinSpec,
        side: usize,
        batch: RecordBatch,
        rejected: &mut Vec<(Rejection, RecordBatch)>,
    ) -> RtResult<Option<RecordBatch>> {
        let ts = millis(
            &spec.sides[side]
                .time
                .evaluate(&batch)?
                .into_array(batch.num_rows())?,
        )?;
        let wm = self.watermark;
        let on_time: BooleanArray = ts
            .iter()
            .map(|t| Some(t.is_some_and(|t| t >= wm)))
            .collect();
        let (batch, ts) = if on_time.true_count() == batch.num_rows() {
            (batch, ts)
        } else {
            let late: BooleanArray = ts.iter().map(|t| Some(t.is_some_and(|t| t < wm))).collect();
            if late.true_count() > 0 {
                rejected.push((Rejection::Late, filter_record_batch(&batch, &late)?));
            }
            let no_time: BooleanArray = ts.iter().map(|t| Some(t.is_none())).collect();
            if no_time.true_count() > 0 {
                rejected.push((
                    Rejection::NoEventTime,
                    filter_record_batch(&batch, &no_time)?,
                ));
            }
            let kept = filter_record_batch(&batch, &on_time)?;
            let ts = millis(
                &spec.sides[side]
                    .time
                    .evaluate(&kept)?
                    .into_array(kept.num_rows())?,
            )?;
            (kept, ts)
        };
        if batch.num_rows() == 0 {
            return Ok(None);
        }
        let (rows, valid) = self.key_rows(spec, side, &batch)?;
        // Probe the other side.
        let other = &self.buffers[1 - side];
        let mut mine: Vec<u32> = Vec::new();
        let mut theirs: Vec<(usize, usize)> = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            if !valid[i] {
                continue;
            }
            if let Some(hits) = other.index.get(row.as_ref()) {
                for (chunk, r) in hits {
                    if *chunk >= other.base {
                        mine.push(i as u32);
                        theirs.push(((*chunk - other.base) as usize, *r as usize));
                    }
                }
            }
        }
        let joined = if mine.is_empty() {
            None
        } else {
            let idx = UInt32Array::from(mine);
            let own: Vec<ArrayRef> = batch
                .columns()
                .iter()
                .map(|c| take(c, &idx, None))
                .collect::<Result<_, _>>()?;
            let their_cols: Vec<ArrayRef> = (0..spec.sides[1 - side].schema.fields().len())
                .map(|c| {
                    let arrays: Vec<&dyn Array> = other
                        .chunks
                        .iter()
                        .map(|(b, _)| b.column(c).as_ref())
                        .collect();
                    interleave(&arrays, &theirs)
                })
                .collect::<Result<_, _>>()?;
            let cols = if side == 0 {
                own.into_iter().chain(their_cols).collect::<Vec<_>>()
            } else {
                their_cols.into_iter().chain(own).collect::<Vec<_>>()
            };
            let n = idx.len();
            let b = RecordBatch::try_new_with_options(
                spec.output.clone(),
                cols,
                &RecordBatchOptions::new().with_row_count(Some(n)),
            )?;
            Some(match &spec.filter {
                Some(f) => {
                    let mask = f.evaluate(&b)?.into_array(n)?;
                    let mask = mask
                        .as_any()
                        .downcast_ref::<BooleanArray>()
                        .ok_or_else(|| {
                            RuntimeError::Internal("join filter is not boolean".into())
                        })?;
                    filter_record_batch(&b, mask)?
                }
                None => b,
            })
        };
        // Buffer the batch on its own side.
        let max_ts = arrow::compute::max(&ts).unwrap_or(i64::MIN);
        let own = &mut self.buffers[side];
        let id = own.base + own.chunks.len() as u64;
        for (i, row) in rows.iter().enumerate() {
            if valid[i] {
                own.index
                    .entry(row.as_ref().into())
                    .or_default()
                    .push((id, i as u32));
            }
        }
        own.rows += batch.num_rows();
        own.chunks.push_back((batch, max_ts));
        Ok(joined)
    }

    /// Event time advanced: drop chunks no future row can match.
    pub(crate) fn on_watermark(&mut self, spec: &IntervalJoinSpec, watermark: i64) {
        if watermark <= self.watermark {
            return;
        }
        self.watermark = watermark;
        if watermark < self.next_sweep {
            return;
        }
        for (side, buf) in self.buffers.iter_mut().enumerate() {
            let keep = spec.sides[side].keep_ms;
            let before = buf.base;
            while let Some((b, max_ts)) = buf.chunks.front() {
                if max_ts.saturating_add(keep) >= watermark {
                    break;
                }
                buf.rows -= b.num_rows();
                buf.chunks.pop_front();
                buf.base += 1;
            }
            if buf.base != before {
                let base = buf.base;
                buf.index.retain(|_, hits| {
                    hits.retain(|(c, _)| *c >= base);
                    !hits.is_empty()
                });
            }
        }
        let span = (spec.hi - spec.lo).max(8);
        self.next_sweep = watermark.saturating_add(span / 8);
    }

    /// A checkpoint through the keyed state: each buffered chunk is one
    /// unit (`<side>:<chunk id>`); chunks never change, so a checkpoint
    /// writes only the chunks buffered since the previous one. Returns
    /// `{"watermark", "keyed_state"}`.
    pub(crate) fn snapshot_at(
        &self,
        image: &mut BlobState,
        ctx: &shoal_runtime::state::StateContext,
    ) -> RtResult<serde_json::Value> {
        let units = self.buffers.iter().enumerate().flat_map(|(side, buf)| {
            buf.chunks
                .iter()
                .enumerate()
                .map(move |(i, (batch, _))| Unit {
                    id: format!("{side}:{}", buf.base + i as u64),
                    changed: false,
                    batch,
                })
        });
        let reference = image.snapshot(ctx, units)?;
        Ok(serde_json::json!({
            "watermark": self.watermark,
            "keyed_state": reference["keyed_state"].clone(),
        }))
    }

    /// State from [`IntervalJoinState::snapshot_at`]'s reference; chunks keep
    /// their ids, so the next checkpoint writes only new chunks.
    pub(crate) fn restore_at(
        spec: &IntervalJoinSpec,
        v: &serde_json::Value,
        image: &mut BlobState,
        dir: &shoal_runtime::state::StateStore,
    ) -> RtResult<Self> {
        let bad = || RuntimeError::User("interval-join state is malformed".into());
        let mut state = Self::new(spec)?;
        let reference = serde_json::json!({ "keyed_state": v["keyed_state"].clone() });
        let mut chunks = Vec::new();
        for (id, blob) in image.restore(&reference, dir)? {
            let (side, n) = id.split_once(':').ok_or_else(bad)?;
            let side: usize = side.parse().map_err(|_| bad())?;
            let n: u64 = n.parse().map_err(|_| bad())?;
            if side > 1 {
                return Err(bad());
            }
            chunks.push((side, n, blob));
        }
        chunks.sort_by_key(|(side, n, _)| (*side, *n));
        for side in 0..2 {
            if let Some((_, first, _)) = chunks.iter().find(|(s, _, _)| *s == side) {
                state.buffers[side].base = *first;
            }
        }
        for (side, _, blob) in chunks {
            let batch = unit_batch(&blob, &spec.sides[side].schema)?;
            state.process(spec, side, batch, &mut Vec::new())?;
        }
        state.watermark = v["watermark"].as_i64().ok_or_else(bad)?;
        Ok(state)
    }
}
