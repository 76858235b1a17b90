//! Running a [`WindowAggSpec`]: rows are assigned to panes (tumble, hop) or
//! buffered per key (session) as batches arrive; windows fire when the
//! watermark passes their end.
//!
//! * **tumble** — one pane per window; the pane's accumulators are
//!   evaluated when `end <= watermark`.
//! * **hop** — panes of `gcd(slide, size)`: each row updates exactly one
//!   pane, so the per-row cost does not grow with `size / slide`. A pane is
//!   frozen (its intermediate state kept as a batch) once complete; a window
//!   fires by merging the frozen panes it covers. A pane is dropped when the
//!   last window covering it has fired.
//! * **session** — rows are buffered; at a watermark the buffer is sorted by
//!   (keys, event time) and split where two consecutive rows of a key are at
//!   least `gap` apart; sessions whose `last event + gap <= watermark` are
//!   aggregated and emitted, the rest stay buffered.
//!
//! Rows with an event time before the watermark are *late*, rows with a
//! NULL event time have none: both are returned to the caller (for the
//! dead-letter output), never aggregated.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, RecordBatchOptions,
    TimestampMillisecondArray, UInt32Array,
};
use arrow::compute::{
    SortColumn, cast, filter_record_batch, lexsort_to_indices, take_record_batch,
};
use arrow::datatypes::DataType;
use datafusion::logical_expr::EmitTo;
use shoal_runtime::{Result as RtResult, RuntimeError};

use crate::late::Rejection;
use crate::window::functions::WindowKind;
use crate::window::spec::{WindowAggSpec, millis_type, pane_ms};
use crate::window::state::{LivePane, Pane, WindowAggState, min_event_time};

impl WindowAggSpec {
    /// Absorb one input batch. Rows it rejects (late, or without an event
    /// time) go to `rejected`.
    pub(crate) fn process(
        &self,
        batch: &RecordBatch,
        state: &mut WindowAggState,
        rejected: &mut Vec<(Rejection, RecordBatch)>,
    ) -> RtResult<()> {
        let n = batch.num_rows();
        let ts = self.time.evaluate(batch)?.into_array(n)?;
        let ts = cast(&ts, &millis_type(ts.data_type()))?;
        let ts = cast(&ts, &DataType::Int64)?;
        let ts = ts
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("cast to int64");
        // Late: before the watermark (one rule for every operator).
        let wm = state.watermark;
        let all_on_time = ts.null_count() == 0 && arrow::compute::min(ts).is_none_or(|t| t >= wm);
        let (batch, ts) = if all_on_time {
            (batch.clone(), ts.clone())
        } else {
            let on_time: BooleanArray = ts
                .iter()
                .map(|t| Some(t.is_some_and(|t| t >= wm)))
                .collect();
            let no_time = ts
                .logical_nulls()
                .map(|n| BooleanArray::new(n.inner().clone(), None));
            let no_time = no_time.map(|v| arrow::compute::not(&v)).transpose()?;
            if let Some(no_time) = no_time.filter(|m| m.true_count() > 0) {
                let rows = filter_record_batch(batch, &no_time)?;
                rejected.push((Rejection::NoEventTime, rows));
            }
            let late: BooleanArray = ts.iter().map(|t| Some(t.is_some_and(|t| t < wm))).collect();
            if late.true_count() > 0 {
                rejected.push((Rejection::Late, filter_record_batch(batch, &late)?));
            }
            let kept = filter_record_batch(batch, &on_time)?;
            let ts = arrow::compute::filter(ts, &on_time)?;
            let ts = ts
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("int64")
                .clone();
            (kept, ts)
        };
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let rows = self.rows(&batch, ts)?;
        match self.kind {
            WindowKind::Session { .. } => {
                state.session_min_ts = state.session_min_ts.min(min_event_time(&rows));
                state.session_rows.push(rows);
            }
            WindowKind::Tumble { .. } | WindowKind::Hop { .. } => self.add_to_panes(rows, state)?,
        }
        Ok(())
    }

    /// Event time (ms, `ts`: none NULL), keys, aggregate arguments and
    /// filters of `batch`.
    fn rows(&self, batch: &RecordBatch, ts: Int64Array) -> RtResult<RecordBatch> {
        let n = batch.num_rows();
        let mut cols: Vec<ArrayRef> = vec![Arc::new(ts)];
        for k in &self.keys {
            cols.push(k.evaluate(batch)?.into_array(n)?);
        }
        for a in &self.aggs {
            for e in &a.args {
                cols.push(e.evaluate(batch)?.into_array(n)?);
            }
            if let Some(f) = &a.filter {
                cols.push(f.evaluate(batch)?.into_array(n)?);
            }
        }
        Ok(RecordBatch::try_new_with_options(
            self.rows_schema.clone(),
            cols,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )?)
    }

    fn add_to_panes(&self, rows: RecordBatch, state: &mut WindowAggState) -> RtResult<()> {
        let pane = pane_ms(self.kind);
        let ts = event_times(&rows);
        let starts: Int64Array = ts.unary(|t| t.div_euclid(pane) * pane);
        let mut distinct: Vec<i64> = Vec::new();
        for s in starts.values().iter() {
            if distinct.last() != Some(s) && !distinct.contains(s) {
                distinct.push(*s);
            }
        }
        let mut ids = Vec::with_capacity(rows.num_rows());
        for start in distinct {
            let part =
                if starts.len() == rows.num_rows() && starts.values().iter().all(|s| *s == start) {
                    rows.clone()
                } else {
                    let mask =
                        arrow::compute::kernels::cmp::eq(&starts, &Int64Array::new_scalar(start))?;
                    filter_record_batch(&rows, &mask)?
                };
            let pane = match state.panes.entry(start) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(Pane::Live(LivePane::new(self)?))
                }
            };
            let Pane::Live(live) = pane else {
                return Err(RuntimeError::Internal(format!(
                    "a row of a completed pane ({start} ms) was not marked late"
                )));
            };
            self.update(live, &part, &mut ids)?;
        }
        Ok(())
    }

    /// Feed `rows` (rows schema) into `pane`'s accumulators.
    fn update(
        &self,
        pane: &mut LivePane,
        rows: &RecordBatch,
        ids: &mut Vec<usize>,
    ) -> RtResult<()> {
        let cols = rows.columns();
        let k = self.keys.len();
        let total = pane.groups.intern(&cols[1..1 + k], rows.num_rows(), ids)?;
        let mut at = 1 + k;
        for (acc, agg) in pane.accs.iter_mut().zip(&self.aggs) {
            let args = &cols[at..at + agg.args.len()];
            at += agg.args.len();
            let filter = match agg.filter {
                Some(_) => {
                    at += 1;
                    Some(
                        cols[at - 1]
                            .as_any()
                            .downcast_ref::<BooleanArray>()
                            .expect("filters are boolean"),
                    )
                }
                None => None,
            };
            acc.update_batch(args, ids, filter, total)?;
        }
        Ok(())
    }

    /// The watermark to forward once the input reached `watermark`: the
    /// earliest start of a window still to be emitted (its rows carry that
    /// start as event time).
    pub(crate) fn output_watermark(&self, watermark: i64, state: &WindowAggState) -> i64 {
        if watermark == i64::MIN || watermark == i64::MAX {
            return watermark;
        }
        let watermark = self.shifted(watermark);
        match self.kind {
            WindowKind::Tumble { size } => watermark.div_euclid(size) * size,
            WindowKind::Hop { slide, size } => {
                (watermark.saturating_sub(size).div_euclid(slide) + 1) * slide
            }
            WindowKind::Session { .. } => watermark.min(state.session_min_ts),
        }
    }

    /// Event time reached `watermark`: fire every window that ended.
    pub(crate) fn on_watermark(
        &self,
        watermark: i64,
        state: &mut WindowAggState,
    ) -> RtResult<Vec<RecordBatch>> {
        // The window's time may be the event time shifted: so is its
        // watermark (the state keeps the shifted one).
        let watermark = self.shifted(watermark);
        if watermark <= state.watermark {
            return Ok(Vec::new());
        }
        let previous = state.watermark;
        state.watermark = watermark;
        if watermark != i64::MAX {
            state.finite_watermark = watermark;
        }
        match self.kind {
            WindowKind::Tumble { size } => self.fire_tumble(size, watermark, state),
            WindowKind::Hop { slide, size } => {
                self.fire_hop(slide, size, previous, watermark, state)
            }
            WindowKind::Session { gap } => self.fire_sessions(gap, watermark, state),
        }
    }

    fn fire_tumble(
        &self,
        size: i64,
        wm: i64,
        state: &mut WindowAggState,
    ) -> RtResult<Vec<RecordBatch>> {
        let mut out = Vec::new();
        while let Some(entry) = state.panes.first_entry() {
            let start = *entry.key();
            if start.saturating_add(size) > wm {
                break;
            }
            match entry.remove() {
                Pane::Live(mut live) => out.push(self.emit(&mut live, start)?),
                Pane::Frozen(_) => {
                    return Err(RuntimeError::Internal(
                        "tumble panes are never frozen".into(),
                    ));
                }
            }
        }
        Ok(out)
    }

    fn fire_hop(
        &self,
        slide: i64,
        size: i64,
        previous: i64,
        wm: i64,
        state: &mut WindowAggState,
    ) -> RtResult<Vec<RecordBatch>> {
        let pane = pane_ms(self.kind);
        // Complete panes stop changing: keep their intermediate state only.
        let mut windows = BTreeSet::new();
        for (start, p) in state.panes.iter_mut() {
            if start.saturating_add(pane) > wm {
                break;
            }
            if let Pane::Live(live) = p {
                *p = Pane::Frozen(live.freeze(self)?);
            }
            // Windows covering this pane that end in (previous, wm].
            let mut w = start.div_euclid(slide) * slide;
            while w.saturating_add(size) > *start {
                let end = w.saturating_add(size);
                if end > previous && end <= wm {
                    windows.insert(w);
                }
                w -= slide;
            }
        }
        let mut out = Vec::new();
        let mut ids = Vec::new();
        for w in windows {
            let mut window = LivePane::new(self)?;
            for (_, p) in state.panes.range(w..w.saturating_add(size)) {
                if let Pane::Frozen(b) = p {
                    window.merge(self, b, &mut ids)?;
                }
            }
            out.push(self.emit(&mut window, w)?);
        }
        // Drop panes no window still to fire covers.
        while let Some(entry) = state.panes.first_entry() {
            let last_window = entry.key().div_euclid(slide) * slide;
            if last_window.saturating_add(size) > wm {
                break;
            }
            entry.remove();
        }
        Ok(out)
    }

    fn fire_sessions(
        &self,
        gap: i64,
        wm: i64,
        state: &mut WindowAggState,
    ) -> RtResult<Vec<RecordBatch>> {
        if state.session_rows.is_empty() || state.session_min_ts.saturating_add(gap) > wm {
            return Ok(Vec::new());
        }
        let all = arrow::compute::concat_batches(&self.rows_schema, &state.session_rows)?;
        let k = self.keys.len();
        let mut sort: Vec<SortColumn> = all.columns()[1..1 + k]
            .iter()
            .map(|c| SortColumn {
                values: Arc::clone(c),
                options: None,
            })
            .collect();
        sort.push(SortColumn {
            values: Arc::clone(all.column(0)),
            options: None,
        });
        let order = lexsort_to_indices(&sort, None)?;
        let sorted = take_record_batch(&all, &order)?;
        let ts = event_times(&sorted);
        let ranges = if k == 0 {
            vec![0..sorted.num_rows()]
        } else {
            arrow::compute::partition(&sorted.columns()[1..1 + k])?.ranges()
        };
        let (mut closed, mut open, mut first) = (Vec::new(), Vec::new(), Vec::new());
        let mut ids = Vec::new();
        for range in ranges {
            let mut s = range.start;
            while s < range.end {
                let mut e = s + 1;
                while e < range.end && ts.value(e) - ts.value(e - 1) < gap {
                    e += 1;
                }
                if ts.value(e - 1).saturating_add(gap) <= wm {
                    let id = first.len();
                    first.push(s as u32);
                    for i in s..e {
                        closed.push(i as u32);
                        ids.push(id);
                    }
                } else {
                    open.extend(s as u32..e as u32);
                }
                s = e;
            }
        }
        let kept = take_record_batch(&sorted, &UInt32Array::from(open))?;
        state.session_min_ts = min_event_time(&kept);
        state.session_rows = if kept.num_rows() > 0 {
            vec![kept]
        } else {
            Vec::new()
        };
        if first.is_empty() {
            return Ok(Vec::new());
        }
        let rows = take_record_batch(&sorted, &UInt32Array::from(closed))?;
        let heads = take_record_batch(&sorted, &UInt32Array::from(first))?;
        let mut pane = LivePane::new(self)?;
        // Every closed session is one group: ids were assigned above.
        let cols = rows.columns();
        let total = heads.num_rows();
        let mut at = 1 + k;
        for (acc, agg) in pane.accs.iter_mut().zip(&self.aggs) {
            let args = &cols[at..at + agg.args.len()];
            at += agg.args.len();
            let filter = match agg.filter {
                Some(_) => {
                    at += 1;
                    Some(
                        cols[at - 1]
                            .as_any()
                            .downcast_ref::<BooleanArray>()
                            .expect("filters are boolean"),
                    )
                }
                None => None,
            };
            acc.update_batch(args, &ids, filter, total)?;
        }
        let values = pane
            .accs
            .iter_mut()
            .map(|a| a.evaluate(EmitTo::All))
            .collect::<datafusion::common::Result<Vec<_>>>()?;
        let starts = cast(
            heads.column(0),
            &DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
        )?;
        let starts = cast(&starts, self.window_type())?;
        Ok(vec![self.assemble(
            starts,
            heads.columns()[1..1 + k].to_vec(),
            values,
            total,
        )?])
    }

    /// Evaluate a window's accumulators into an output batch.
    fn emit(&self, pane: &mut LivePane, start: i64) -> RtResult<RecordBatch> {
        let rows = pane.groups.len();
        let keys = pane.groups.emit()?;
        let values = pane
            .accs
            .iter_mut()
            .map(|a| a.evaluate(EmitTo::All))
            .collect::<datafusion::common::Result<Vec<_>>>()?;
        let window: ArrayRef = Arc::new(TimestampMillisecondArray::from_value(start, rows));
        let window = cast(&window, self.window_type())?;
        self.assemble(window, keys, values, rows)
    }

    fn assemble(
        &self,
        window: ArrayRef,
        keys: Vec<ArrayRef>,
        values: Vec<ArrayRef>,
        rows: usize,
    ) -> RtResult<RecordBatch> {
        let mut cols = keys;
        cols.insert(self.window_pos, window);
        cols.extend(values);
        let cols = cols
            .into_iter()
            .zip(self.output.fields())
            .map(|(c, f)| {
                if c.data_type() == f.data_type() {
                    Ok(c)
                } else {
                    cast(&c, f.data_type())
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RecordBatch::try_new_with_options(
            self.output.clone(),
            cols,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?)
    }
}

fn event_times(rows: &RecordBatch) -> &Int64Array {
    rows.column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("event time is int64")
}
