//! An operator instance that keeps one inner operator per source partition
//! (shard), so each partition's state can be snapshotted, dropped and
//! restored on its own (see [`crate::shard`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use serde_json::{Map, Value, json};

use crate::error::{Result, RuntimeError};
use crate::operator::{Collector, Operator};
use crate::shard::{ShardId, ShardRegistry, writer_id};
use crate::state::{StateContext, StateStore, StateWrites};

/// Builds an inner operator (the node's factory, for this instance).
pub(crate) type OperatorFactory = Arc<dyn Fn(usize) -> Result<Box<dyn Operator>> + Send + Sync>;

/// One instance of a sharded operator: it owns the shards `s` with
/// `s % parallelism == instance`.
pub(crate) struct Sharded {
    pub node: String,
    pub instance: usize,
    pub parallelism: usize,
    pub factory: OperatorFactory,
    pub registry: Arc<ShardRegistry>,
    /// The state store.
    pub store: StateStore,
    shards: BTreeMap<ShardId, Box<dyn Operator>>,
    seen_generation: u64,
    /// Per shard, the assignment (count) it was last loaded for.
    loaded_for: BTreeMap<ShardId, u64>,
}

impl Sharded {
    pub(crate) fn new(
        node: String,
        instance: usize,
        parallelism: usize,
        factory: OperatorFactory,
        registry: Arc<ShardRegistry>,
        store: StateStore,
    ) -> Self {
        Self {
            node,
            instance,
            parallelism,
            factory,
            registry,
            store,
            shards: BTreeMap::new(),
            seen_generation: u64::MAX,
            loaded_for: BTreeMap::new(),
        }
    }

    fn ctx(&self, shard: ShardId, checkpoint: u64) -> StateContext {
        StateContext::new(
            self.store.clone(),
            format!("{}/p{shard}/{}", self.node, writer_id()),
            0,
            checkpoint,
        )
    }

    fn mine(&self, shard: ShardId) -> bool {
        shard as usize % self.parallelism == self.instance
    }

    /// Load every shard this process was assigned since the last call, so
    /// a shard's state is back before its first record — or without any
    /// record (windows it still has to fire, buffered rows).
    pub(crate) fn sync(&mut self) -> Result<()> {
        let g = self.registry.generation();
        if g == self.seen_generation {
            return Ok(());
        }
        self.seen_generation = g;
        for (s, owned, assigned) in self.registry.assignments() {
            if !self.mine(s) {
                continue;
            }
            let loaded = self.loaded_for.get(&s).copied().unwrap_or(0);
            if !self.shards.contains_key(&s) && (owned || assigned > loaded) {
                self.load(s)?;
            }
            if self.shards.contains_key(&s) {
                self.loaded_for.insert(s, assigned);
            }
        }
        Ok(())
    }

    /// A fresh inner operator for `shard`, restored from the reference the
    /// registry holds for it (if any).
    fn load(&mut self, shard: ShardId) -> Result<()> {
        let mut op = (self.factory)(self.instance)?;
        if let Some(reference) = self.registry.take_restore(shard, &self.node) {
            tracing::info!(operator = %self.node, partition = shard, "restoring the partition's state");
            let ctx = self.ctx(shard, 0);
            let started = std::time::Instant::now();
            off_worker(|| op.restore_at(&[reference], 0, &ctx))?;
            tracing::info!(
                operator = %self.node,
                partition = shard,
                ms = started.elapsed().as_millis() as u64,
                "partition's state restored"
            );
        }
        self.shards.insert(shard, op);
        if let Some((_, _, n)) = self
            .registry
            .assignments()
            .into_iter()
            .find(|(s, _, _)| *s == shard)
        {
            self.loaded_for.insert(shard, n);
        }
        Ok(())
    }

    pub(crate) fn process_batch(
        &mut self,
        input: usize,
        batch: RecordBatch,
        shard: Option<ShardId>,
        out: &mut Collector,
    ) -> Result<()> {
        let Some(s) = shard else {
            return Err(RuntimeError::Internal(format!(
                "{}: a batch without a source partition reached an operator whose state is sharded by partition",
                self.node
            )));
        };
        self.sync()?;
        if !self.shards.contains_key(&s) {
            self.load(s)?;
        }
        out.shard = Some(s);
        let op = self.shards.get_mut(&s).expect("loaded");
        let r = op.process_batch(input, batch, out);
        out.shard = None;
        r
    }

    pub(crate) fn on_watermark(&mut self, t: i64, out: &mut Collector) -> Result<()> {
        self.sync()?;
        for (s, op) in &mut self.shards {
            out.shard = Some(*s);
            op.on_watermark(t, out)?;
        }
        out.shard = None;
        Ok(())
    }

    pub(crate) fn output_watermark(&self, t: i64) -> i64 {
        self.shards
            .values()
            .map(|op| op.output_watermark(t))
            .min()
            .unwrap_or(t)
    }

    pub(crate) fn state_entries(&self) -> Option<usize> {
        let mut any = false;
        let mut n = 0;
        for op in self.shards.values() {
            if let Some(k) = op.state_entries() {
                any = true;
                n += k;
            }
        }
        any.then_some(n)
    }

    pub(crate) fn on_end(&mut self, out: &mut Collector) -> Result<()> {
        self.sync()?;
        for (s, op) in &mut self.shards {
            out.shard = Some(*s);
            op.on_end(out)?;
        }
        out.shard = None;
        Ok(())
    }

    /// Snapshot every shard into the store for checkpoint `id`, record the
    /// references for the sink, then drop the shards this process no longer
    /// owns (their last state is now in the store). Returns the manifest's
    /// entry: `{"shards": {"<partition>": reference}}`.
    /// The shards' files are queued on `writes`.
    pub(crate) fn snapshot(&mut self, id: u64, writes: &StateWrites) -> Result<Value> {
        self.sync()?;
        let mut refs = Map::new();
        let keys: Vec<ShardId> = self.shards.keys().copied().collect();
        for s in keys {
            let ctx = StateContext {
                writes: Some(writes.clone()),
                ..self.ctx(s, id)
            };
            let op = self.shards.get_mut(&s).expect("present");
            let v = op.snapshot_at(&ctx)?;
            self.registry.record(id, s, &self.node, v.clone());
            if !self.registry.is_owned(s) {
                tracing::info!(operator = %self.node, partition = s, "partition's state handed over");
                self.shards.remove(&s);
                self.registry.keep_dropped(s, &self.node, v.clone());
            }
            refs.insert(s.to_string(), v);
        }
        // Shards of this instance not held now (restored from the manifest
        // but not assigned yet, or dropped here and not taken again) keep
        // their state in this checkpoint. Not handed to the sink: its
        // committed reference stays, and another process may own them.
        for (s, v) in self.registry.pending(&self.node) {
            if self.mine(s) && !self.shards.contains_key(&s) {
                refs.entry(s.to_string()).or_insert(v);
            }
        }
        Ok(json!({ "shards": refs }))
    }
}

/// Runs `f` (reading and decoding a shard's files: seconds for a million
/// keys) so that it does not hold up the other tasks of this tokio worker:
/// on a multi-thread runtime through `block_in_place`, which hands the
/// worker's queue to another thread; elsewhere (a current-thread runtime in
/// tests, no runtime) directly.
fn off_worker<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The shard references in manifest entries written by [`Sharded::snapshot`]
/// (every instance's), as (partition, reference).
pub(crate) fn manifest_shards(states: &[Value]) -> Vec<(ShardId, Value)> {
    let mut out = Vec::new();
    for st in states {
        if let Some(m) = st.get("shards").and_then(Value::as_object) {
            for (k, v) in m {
                if let Ok(s) = k.parse::<ShardId>() {
                    out.push((s, v.clone()));
                }
            }
        }
    }
    out
}
