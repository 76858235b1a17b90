//! Operator state that lives in Arrow structures — window panes, interval
//! join chunks — checkpointed through the runtime's keyed state: each unit
//! (a pane, a chunk) is one entry of a `ValueState` keyed by its id, holding
//! the unit as an Arrow IPC blob (bytes in the state file). A checkpoint writes only the units that
//! are new or changed since the previous one and removes the dropped ones,
//! so the keyed state's delta files stay small while most units are
//! unchanged (closed panes, buffered chunks).
//!
//! The operator keeps its units in memory in its own structures (Arrow
//! accumulators and batches); this is their checkpoint image.

use shoal_runtime::state::StateStore;
use std::collections::HashSet;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use serde_json::Value;
use shoal_runtime::Result as RtResult;
use shoal_runtime::state::{KeyedState, StateContext, StateHandle, ValueState};

use crate::codec::{Blob, decode, encode};

/// The checkpoint image of an operator's units; see the module docs.
#[derive(Debug)]
pub(crate) struct BlobState {
    /// The node path suffix its files go under (one operator may hold
    /// several: `<node>.<part>`).
    part: &'static str,
    keyed: KeyedState,
    blobs: StateHandle<ValueState<String, Blob>>,
    /// Ids in the table as of the last checkpoint.
    present: HashSet<String>,
}

/// One unit of state at a checkpoint.
pub(crate) struct Unit<'a> {
    /// Stable id (e.g. the pane's start).
    pub id: String,
    /// Whether it may have changed since it was last written.
    pub changed: bool,
    pub batch: &'a RecordBatch,
}

impl BlobState {
    /// An empty image whose files go under `<node>.<part>`.
    pub(crate) fn new(part: &'static str) -> Self {
        let mut keyed = KeyedState::new();
        let blobs = keyed.value("units");
        Self {
            part,
            keyed,
            blobs,
            present: HashSet::new(),
        }
    }

    fn ctx(&self, ctx: &StateContext) -> StateContext {
        StateContext {
            node: format!("{}.{}", ctx.node, self.part),
            ..ctx.clone()
        }
    }

    /// Bring the image up to date with `units` and write the checkpoint's
    /// file; returns the keyed-state reference (`{"keyed_state": …}`).
    pub(crate) fn snapshot<'a>(
        &mut self,
        ctx: &StateContext,
        units: impl Iterator<Item = Unit<'a>>,
    ) -> RtResult<Value> {
        let mut now = HashSet::with_capacity(self.present.len());
        let table = self.keyed.table(self.blobs);
        for u in units {
            if u.changed || !self.present.contains(&u.id) {
                table.insert(u.id.clone(), encode(u.batch)?);
            }
            now.insert(u.id);
        }
        for gone in self.present.difference(&now) {
            table.remove(gone);
        }
        self.present = now;
        let ctx = self.ctx(ctx);
        self.keyed.snapshot(&ctx)
    }

    /// Read the image a reference names; returns every unit as (id, its
    /// IPC blob — [`decode`] it with the unit's schema).
    pub(crate) fn restore(
        &mut self,
        reference: &Value,
        dir: &StateStore,
    ) -> RtResult<Vec<(String, Blob)>> {
        *self = Self::new(self.part);
        self.keyed.restore(reference, dir)?;
        let units: Vec<(String, Blob)> = self
            .keyed
            .get(self.blobs)
            .iter()
            .map(|(id, blob)| (id.clone(), blob.clone()))
            .collect();
        self.present = units.iter().map(|(id, _)| id.clone()).collect();
        Ok(units)
    }
}

/// A unit's batch from its blob.
pub(crate) fn unit_batch(blob: &Blob, schema: &SchemaRef) -> RtResult<RecordBatch> {
    decode(blob, schema)
}
