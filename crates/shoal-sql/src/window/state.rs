//! The state of one window-aggregate operator instance: open panes (live
//! accumulators per group), completed panes of hopping windows (frozen
//! intermediate state, shared by every window that covers them), and the
//! buffered rows of open sessions.
//!
//! Everything is snapshotted as Arrow IPC (blobs in the keyed-state files),
//! so any aggregate's intermediate state — including `COUNT(DISTINCT)` sets
//! and percentile digests — round-trips exactly.

use std::collections::BTreeMap;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;
use shoal_runtime::{Result as RtResult, RuntimeError};

use crate::blob_state::{BlobState, Unit, unit_batch};
use crate::window::spec::WindowAggSpec;

/// Group ids for the rows of one pane or window.
pub(crate) enum Groups {
    /// `GROUP BY` has keys besides the window.
    Keyed(Box<dyn GroupValues>),
    /// Only the window: one group.
    Single,
}

impl Groups {
    pub(crate) fn new(spec: &WindowAggSpec) -> RtResult<Self> {
        if spec.keys.is_empty() {
            return Ok(Self::Single);
        }
        Ok(Self::Keyed(new_group_values(
            spec.key_schema.clone(),
            &GroupOrdering::None,
        )?))
    }

    /// Group ids of `keys` (`rows` rows) into `ids`; returns the group count.
    pub(crate) fn intern(
        &mut self,
        keys: &[ArrayRef],
        rows: usize,
        ids: &mut Vec<usize>,
    ) -> RtResult<usize> {
        match self {
            Self::Keyed(g) => {
                g.intern(keys, ids)?;
                Ok(g.len())
            }
            Self::Single => {
                ids.clear();
                ids.resize(rows, 0);
                Ok(1)
            }
        }
    }

    /// The key columns of every group, emptying the table.
    pub(crate) fn emit(&mut self) -> RtResult<Vec<ArrayRef>> {
        match self {
            Self::Keyed(g) => Ok(g.emit(EmitTo::All)?),
            Self::Single => Ok(Vec::new()),
        }
    }

    /// Groups held.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Keyed(g) => g.len(),
            Self::Single => 1,
        }
    }
}

/// Accumulators of one pane that still receives rows.
pub(crate) struct LivePane {
    pub(crate) groups: Groups,
    pub(crate) accs: Vec<Box<dyn GroupsAccumulator>>,
}

impl LivePane {
    pub(crate) fn new(spec: &WindowAggSpec) -> RtResult<Self> {
        Ok(Self {
            groups: Groups::new(spec)?,
            accs: spec
                .aggs
                .iter()
                .map(|a| a.accumulator())
                .collect::<crate::Result<_>>()
                .map_err(|e| RuntimeError::Internal(e.message))?,
        })
    }

    /// Rebuild a live pane from its frozen state (after a restore).
    pub(crate) fn from_frozen(spec: &WindowAggSpec, frozen: &RecordBatch) -> RtResult<Self> {
        let mut pane = Self::new(spec)?;
        pane.merge(spec, frozen, &mut Vec::new())?;
        Ok(pane)
    }

    /// Merge frozen state (keys, then state columns) into this pane.
    pub(crate) fn merge(
        &mut self,
        spec: &WindowAggSpec,
        frozen: &RecordBatch,
        ids: &mut Vec<usize>,
    ) -> RtResult<()> {
        let k = spec.keys.len();
        let cols = frozen.columns();
        let total = self.groups.intern(&cols[..k], frozen.num_rows(), ids)?;
        let mut at = k;
        for (acc, agg) in self.accs.iter_mut().zip(&spec.aggs) {
            acc.merge_batch(&cols[at..at + agg.n_state], ids, total)?;
            at += agg.n_state;
        }
        Ok(())
    }

    /// The pane's keys and intermediate state as one batch (empties it).
    pub(crate) fn freeze(&mut self, spec: &WindowAggSpec) -> RtResult<RecordBatch> {
        let rows = self.groups.len();
        let mut cols = self.groups.emit()?;
        for acc in &mut self.accs {
            cols.extend(acc.state(EmitTo::All)?);
        }
        Ok(RecordBatch::try_new_with_options(
            spec.state_schema.clone(),
            cols,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?)
    }
}

/// A pane: still open, or complete and frozen.
pub(crate) enum Pane {
    Live(LivePane),
    Frozen(RecordBatch),
}

/// All state of one window-aggregate instance.
pub struct WindowAggState {
    /// Event time reached: rows before it are late; windows ending at or
    /// before it have fired.
    pub(crate) watermark: i64,
    /// The newest watermark below +inf (end of input): what snapshots
    /// persist, so a rerun on a grown input is not all late.
    pub(crate) finite_watermark: i64,
    /// Panes by start (ms).
    pub(crate) panes: BTreeMap<i64, Pane>,
    /// Rows of open sessions (`spec.rows_schema`).
    pub(crate) session_rows: Vec<RecordBatch>,
    /// Smallest event time among `session_rows`.
    pub(crate) session_min_ts: i64,
}

impl Default for WindowAggState {
    fn default() -> Self {
        Self {
            watermark: i64::MIN,
            finite_watermark: i64::MIN,
            panes: BTreeMap::new(),
            session_rows: Vec::new(),
            session_min_ts: i64::MAX,
        }
    }
}

impl WindowAggState {
    /// Groups held (over every pane) plus buffered session rows: the state
    /// size reported in metrics.
    pub fn entries(&self) -> usize {
        let panes: usize = self
            .panes
            .values()
            .map(|p| match p {
                Pane::Live(l) => l.groups.len(),
                Pane::Frozen(b) => b.num_rows(),
            })
            .sum();
        panes
            + self
                .session_rows
                .iter()
                .map(|b| b.num_rows())
                .sum::<usize>()
    }

    /// A checkpoint through the keyed state: one unit per pane
    /// (`live:<start>`, rewritten at every checkpoint; `frozen:<start>`,
    /// written once) and one for the open sessions' rows. Returns
    /// `{"watermark", "keyed_state"}`.
    pub(crate) fn snapshot_at(
        &mut self,
        spec: &WindowAggSpec,
        image: &mut BlobState,
        ctx: &shoal_runtime::state::StateContext,
    ) -> RtResult<serde_json::Value> {
        let mut live = Vec::new();
        for (start, pane) in self.panes.iter_mut() {
            if let Pane::Live(l) = pane {
                let frozen = l.freeze(spec)?;
                *l = LivePane::from_frozen(spec, &frozen)?;
                live.push((*start, frozen));
            }
        }
        let session = if self.session_rows.is_empty() {
            None
        } else {
            let all = arrow::compute::concat_batches(&spec.rows_schema, &self.session_rows)?;
            self.session_rows = vec![all.clone()];
            Some(all)
        };
        let frozen = self.panes.iter().filter_map(|(start, p)| match p {
            Pane::Frozen(b) => Some(Unit {
                id: format!("frozen:{start}"),
                changed: false,
                batch: b,
            }),
            Pane::Live(_) => None,
        });
        let units = live
            .iter()
            .map(|(start, b)| Unit {
                id: format!("live:{start}"),
                changed: true,
                batch: b,
            })
            .chain(frozen)
            .chain(session.iter().map(|b| Unit {
                id: "session".into(),
                changed: true,
                batch: b,
            }));
        let reference = image.snapshot(ctx, units)?;
        Ok(serde_json::json!({
            "watermark": self.finite_watermark,
            "keyed_state": reference["keyed_state"].clone(),
        }))
    }

    /// State from [`WindowAggState::snapshot_at`]'s reference.
    pub(crate) fn restore_at(
        spec: &WindowAggSpec,
        v: &serde_json::Value,
        image: &mut BlobState,
        dir: &shoal_runtime::state::StateStore,
    ) -> RtResult<Self> {
        let bad = || RuntimeError::User("window-aggregate state is malformed".into());
        let watermark = v["watermark"].as_i64().ok_or_else(bad)?;
        let mut state = Self {
            watermark,
            finite_watermark: watermark,
            ..Self::default()
        };
        let reference = serde_json::json!({ "keyed_state": v["keyed_state"].clone() });
        for (id, blob) in image.restore(&reference, dir)? {
            if id == "session" {
                let rows = unit_batch(&blob, &spec.rows_schema)?;
                state.session_min_ts = min_event_time(&rows);
                state.session_rows.push(rows);
                continue;
            }
            let (kind, start) = id.split_once(':').ok_or_else(bad)?;
            let start: i64 = start.parse().map_err(|_| bad())?;
            let frozen = unit_batch(&blob, &spec.state_schema)?;
            let pane = match kind {
                "live" => Pane::Live(LivePane::from_frozen(spec, &frozen)?),
                "frozen" => Pane::Frozen(frozen),
                _ => return Err(bad()),
            };
            state.panes.insert(start, pane);
        }
        Ok(state)
    }
}

/// The smallest value of a rows batch's event-time column.
pub(crate) fn min_event_time(rows: &RecordBatch) -> i64 {
    let ts = rows
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .expect("event time is int64");
    arrow::compute::min(ts).unwrap_or(i64::MAX)
}
