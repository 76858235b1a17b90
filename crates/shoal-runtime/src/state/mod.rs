//! Keyed state for operators: [`ValueState`], [`MapState`] and
//! [`ListState`] tables per key, held in a [`KeyedState`] that snapshots
//! them into incremental files at each checkpoint and restores them.
//!
//! # Use
//!
//! An operator owns a `KeyedState`, registers its tables once (by name) and
//! keeps the typed [`StateHandle`]s; per record it reaches a table through
//! [`KeyedState::table`] (no serialization on access — tables hold typed
//! values). It forwards [`Operator::snapshot_at`](crate::Operator::snapshot_at)
//! to [`KeyedState::snapshot`] and
//! [`Operator::restore_at`](crate::Operator::restore_at) to
//! [`KeyedState::restore`]; see `examples` in the tests of this module
//! (`CountDistinct`), an operator counting records and distinct values per
//! key.
//!
//! # Snapshots on disk
//!
//! At checkpoint `n`, instance `i` of node `op` writes
//! `CHECKPOINT_DIR/state/op/i/<n, 20 digits>.full.ks` or `….delta.ks`
//! (the format is in [`format`], version [`STATE_FORMAT_VERSION`]): a
//! *delta* holds only the entries changed or removed since the previous
//! file, a *full* file every entry. Every `full_every` snapshots (default
//! [`DEFAULT_FULL_EVERY`]) a full one is written (compaction), which starts
//! a new chain. What goes into the manifest is a small reference:
//!
//! ```json
//! {"keyed_state": {"version": 2, "files": ["state/op/0/…0012.full.ks", "state/op/0/…0013.delta.ks"],
//!                  "bytes": 48211, "keys": 1024, "written_bytes": 911, "snapshot_ms": 0.4}}
//! ```
//!
//! `files` is the chain to replay on restore (paths relative to the
//! checkpoint directory); `bytes` is the chain's size, which the coordinator
//! adds to the checkpoint's state size (shown by `shoal run` and `shoal
//! checkpoints`); `written_bytes` and `snapshot_ms` are what this snapshot
//! cost. A chain may include files of checkpoints that were abandoned
//! (their changes are part of the state). Pruning old manifests deletes the
//! state files no kept manifest references ([`prune_files`]). Restoring a
//! reference or a file of a newer format version is an error naming both
//! versions.

mod format;
mod store;
mod tables;

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};

pub use format::STATE_FORMAT_VERSION;
pub use store::{ObjectStoreRoot, STORE_SCHEMES, StateStore, is_store_url};
use tables::Table;
pub use tables::{ListState, MapState, StateKey, StateKind, StateValue, ValueState};

use crate::error::{Result, RuntimeError};

/// A full snapshot every this many snapshots, by default.
pub const DEFAULT_FULL_EVERY: u64 = 10;
/// Directory of the state files, under the checkpoint directory.
pub const STATE_DIR: &str = "state";

/// Where an operator instance's state goes at a checkpoint, and comes from
/// on restore.
#[derive(Debug, Clone)]
pub struct StateContext {
    /// Where the files go: the checkpoint directory, or the state store
    /// for sharded operators.
    pub store: StateStore,
    /// The operator's node id.
    pub node: String,
    /// The instance.
    pub instance: usize,
    /// The checkpoint being taken (or restored).
    pub checkpoint: u64,
    /// Where snapshot files are handed for writing: `None` writes them at
    /// once on the calling thread (tests, tools); the runtime passes a
    /// queue that it writes on a blocking thread before it acknowledges
    /// the barrier ([`StateWrites`]).
    pub writes: Option<StateWrites>,
}

impl StateContext {
    /// A context that writes snapshot files at once.
    pub fn new(
        store: impl Into<StateStore>,
        node: impl Into<String>,
        instance: usize,
        checkpoint: u64,
    ) -> Self {
        Self {
            store: store.into(),
            node: node.into(),
            instance,
            checkpoint,
            writes: None,
        }
    }

    fn write(&self, rel: String, bytes: Vec<u8>) -> Result<()> {
        match &self.writes {
            Some(w) => {
                w.0.lock()
                    .expect("state writes lock")
                    .push((self.store.clone(), rel, bytes));
                Ok(())
            }
            None => self.store.put_blocking(&rel, bytes),
        }
    }
}

/// Snapshot files encoded by a task at a barrier, waiting to be written.
/// The encoding (walking the changed entries) happens on the task, which
/// owns the tables; the store work (write, fsync, rename; or an object
/// store's put) happens in [`StateWrites::flush`], on tokio's blocking pool
/// or the store's own I/O runtime, so a checkpoint never blocks a runtime
/// worker thread on the disk or the network.
#[derive(Debug, Clone, Default)]
pub struct StateWrites(Arc<Mutex<Vec<(StateStore, String, Vec<u8>)>>>);

impl StateWrites {
    /// Writes every queued file durably (each atomically, see
    /// [`format`] and [`StateStore::put`]); returns when all are stored.
    pub async fn flush(&self) -> Result<()> {
        let files = std::mem::take(&mut *self.0.lock().expect("state writes lock"));
        if files.is_empty() {
            return Ok(());
        }
        let (on_disk, objects): (Vec<_>, Vec<_>) = files
            .into_iter()
            .partition(|(store, _, _)| store.dir().is_some());
        let disk = async move {
            if on_disk.is_empty() {
                return Ok(());
            }
            tokio::task::spawn_blocking(move || {
                on_disk
                    .into_iter()
                    .try_for_each(|(store, rel, bytes)| store.put_blocking(&rel, bytes))
            })
            .await
            .map_err(|e| RuntimeError::Internal(format!("state writer: {e}")))?
        };
        let puts = futures::future::try_join_all(
            objects
                .into_iter()
                .map(|(store, rel, bytes)| async move { store.put(&rel, bytes).await }),
        );
        futures::try_join!(disk, puts)?;
        Ok(())
    }
}

/// A typed reference to a table of a [`KeyedState`].
#[derive(Debug)]
pub struct StateHandle<T> {
    index: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for StateHandle<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for StateHandle<T> {}

/// The keyed state of one operator instance; see the module docs.
pub struct KeyedState {
    tables: Vec<(String, Box<dyn Table>)>,
    /// The files to replay, relative to the checkpoint dir, with sizes.
    chain: Vec<(String, u64)>,
    full_every: u64,
}

impl std::fmt::Debug for KeyedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedState")
            .field(
                "tables",
                &self.tables.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("chain", &self.chain)
            .finish()
    }
}

impl Default for KeyedState {
    fn default() -> Self {
        KeyedState {
            tables: Vec::new(),
            chain: Vec::new(),
            full_every: DEFAULT_FULL_EVERY,
        }
    }
}

impl KeyedState {
    /// No tables yet; a full snapshot every [`DEFAULT_FULL_EVERY`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Write a full snapshot every `n` snapshots (1 = always full).
    pub fn full_every(mut self, n: u64) -> Self {
        self.full_every = n.max(1);
        self
    }

    fn register<T: Table + Default + 'static>(&mut self, name: &str) -> StateHandle<T> {
        assert!(
            self.tables.iter().all(|(n, _)| n != name),
            "keyed state table {name:?} registered twice"
        );
        self.tables.push((name.to_owned(), Box::new(T::default())));
        StateHandle {
            index: self.tables.len() - 1,
            _t: PhantomData,
        }
    }

    /// Registers a [`ValueState`] table named `name`.
    pub fn value<K: StateKey, V: StateValue>(
        &mut self,
        name: &str,
    ) -> StateHandle<ValueState<K, V>> {
        self.register(name)
    }

    /// Registers a [`MapState`] table named `name`.
    pub fn map<K: StateKey, M: StateKey, V: StateValue>(
        &mut self,
        name: &str,
    ) -> StateHandle<MapState<K, M, V>> {
        self.register(name)
    }

    /// Registers a [`ListState`] table named `name`.
    pub fn list<K: StateKey, V: StateValue>(&mut self, name: &str) -> StateHandle<ListState<K, V>> {
        self.register(name)
    }

    /// The table `h` refers to. Panics if `h` comes from another
    /// `KeyedState` with a different table at that index.
    pub fn table<T: 'static>(&mut self, h: StateHandle<T>) -> &mut T {
        let any: &mut dyn Any = self.tables[h.index].1.as_any_mut();
        any.downcast_mut::<T>()
            .expect("state handle of another KeyedState")
    }

    /// The table `h` refers to, read only (see [`KeyedState::table`]).
    pub fn get<T: 'static>(&self, h: StateHandle<T>) -> &T {
        let any: &dyn Any = self.tables[h.index].1.as_any();
        any.downcast_ref::<T>()
            .expect("state handle of another KeyedState")
    }

    /// Keys held over all tables.
    pub fn keys(&self) -> usize {
        self.tables.iter().map(|(_, t)| t.keys()).sum()
    }

    /// Encodes this checkpoint's file (a delta, or a full one every
    /// `full_every`), hands it to `ctx` for writing and returns the
    /// reference for the manifest.
    pub fn snapshot(&mut self, ctx: &StateContext) -> Result<Value> {
        let started = Instant::now();
        let full = self.chain.is_empty() || self.chain.len() as u64 >= self.full_every;
        let rel = format!(
            "{STATE_DIR}/{}/{}/{:020}.{}.ks",
            ctx.node,
            ctx.instance,
            ctx.checkpoint,
            if full { "full" } else { "delta" }
        );
        let kinds: BTreeMap<String, String> = self
            .tables
            .iter()
            .map(|(n, t)| (n.clone(), t.kind().name().to_owned()))
            .collect();
        let header = format::Header::new(full, ctx.checkpoint, &ctx.node, ctx.instance, kinds);
        let mut image = format::FileImage::new(&header)?;
        let mut entries = 0;
        for (name, t) in self.tables.iter_mut() {
            let index = header
                .tables
                .keys()
                .position(|n| n == name)
                .expect("own table") as u32;
            entries += t.write(index, full, image.body())?;
        }
        let bytes = image.finish(entries);
        let size = bytes.len() as u64;
        ctx.write(rel.clone(), bytes)?;
        if full {
            self.chain.clear();
        }
        // A file of the same checkpoint (a restored run taking the number
        // again) replaces the old one in the chain.
        self.chain.retain(|(p, _)| p != &rel);
        self.chain.push((rel, size));
        Ok(json!({ "keyed_state": {
            "version": STATE_FORMAT_VERSION,
            "files": self.chain.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
            "sizes": self.chain.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
            "bytes": self.chain.iter().map(|(_, s)| *s).sum::<u64>(),
            "keys": self.keys(),
            "written_bytes": size,
            "snapshot_ms": started.elapsed().as_secs_f64() * 1e3,
        }}))
    }

    /// Restores from the reference [`KeyedState::snapshot`] returned
    /// (`Null` = nothing to restore): replays its files into the registered
    /// tables. The next snapshot continues the same chain. References and
    /// files of format version 1 are read too.
    pub fn restore(&mut self, state: &Value, store: &StateStore) -> Result<()> {
        if state.is_null() {
            return Ok(());
        }
        let r = &state["keyed_state"];
        if r.is_null() {
            return Err(RuntimeError::User(format!(
                "operator state is not a keyed state reference: {state}"
            )));
        }
        let version = r["version"].as_u64().unwrap_or(0);
        if version == 0 || version > u64::from(STATE_FORMAT_VERSION) {
            return Err(RuntimeError::User(format!(
                "keyed state has format version {version}, but this build reads versions 1 to \
                 {STATE_FORMAT_VERSION} (written by a newer Shoal? restore with that version)"
            )));
        }
        let files: Vec<&str> = r["files"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let sizes: Vec<u64> = r["sizes"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        self.chain.clear();
        for (i, rel) in files.iter().enumerate() {
            let bytes = store.read(rel)?;
            format::read_bytes(&store.describe(rel), &bytes, |header, entries| {
                self.apply(header, entries)
            })?;
            self.chain
                .push(((*rel).to_owned(), sizes.get(i).copied().unwrap_or(0)));
        }
        Ok(())
    }

    /// Replays one file's entries into the tables.
    fn apply(&mut self, header: &format::Header, entries: format::Entries<'_>) -> Result<()> {
        // Header table number → this operator's table.
        let mut by_index = Vec::with_capacity(header.tables.len());
        for (name, kind) in &header.tables {
            let found = self.tables.iter().position(|(n, _)| n == name);
            if let Some(i) = found
                && self.tables[i].1.kind().name() != kind
            {
                return Err(RuntimeError::User(format!(
                    "table {name:?} was a {kind} state, the operator registers a {} state",
                    self.tables[i].1.kind().name()
                )));
            }
            by_index.push((name, found));
        }
        let table = |name: &str, found: Option<usize>| {
            found.ok_or_else(|| {
                RuntimeError::User(format!(
                    "the file has table {name:?}, which this operator does not register"
                ))
            })
        };
        match entries {
            format::Entries::Binary(mut body, count) => {
                let mut n = 0u64;
                while !body.is_empty() {
                    let (index, rest): (u32, _) = format::take(body, "table number")?;
                    let (&op, rest) = rest.split_first().ok_or_else(|| {
                        RuntimeError::User("an entry ends after its table number".into())
                    })?;
                    let &(name, found) = by_index.get(index as usize).ok_or_else(|| {
                        RuntimeError::User(format!("an entry names table number {index}"))
                    })?;
                    let i = table(name, found)?;
                    body = self.tables[i].1.apply(op, rest)?;
                    n += 1;
                }
                if n != count {
                    return Err(RuntimeError::User(format!(
                        "the trailer says {count} entries, found {n}"
                    )));
                }
            }
            format::Entries::Lines(lines) => {
                for line in lines {
                    let found = self.tables.iter().position(|(n, _)| *n == line.s);
                    let i = table(&line.s, found)?;
                    self.tables[i].1.apply_v1(line)?;
                }
            }
        }
        Ok(())
    }
}

/// The number of entries in the snapshot file at `path` (from its
/// trailer; the file is checked as on restore).
pub fn file_entries(path: &Path) -> Result<u64> {
    let mut n = 0;
    format::read_file(path, |_, entries| {
        n = match entries {
            format::Entries::Binary(_, count) => count,
            format::Entries::Lines(lines) => lines.len() as u64,
        };
        Ok(())
    })?;
    Ok(n)
}

/// Size of an instance's state as the checkpoint reports it: the bytes of
/// its JSON plus, for each keyed state reference in it, the bytes of its
/// files.
pub fn state_size(state: &Value) -> u64 {
    if state.is_null() {
        return 0;
    }
    let mut refs = Vec::new();
    keyed_refs(state, &mut refs);
    state.to_string().len() as u64
        + refs
            .iter()
            .map(|r| r["bytes"].as_u64().unwrap_or(0))
            .sum::<u64>()
}

/// The keyed state references (`{"keyed_state": {...}}`) anywhere in an
/// operator's state: an operator may keep several [`KeyedState`]s (each
/// snapshotted under its own node path) and nest their references.
fn keyed_refs<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "keyed_state" {
                    out.push(v);
                } else {
                    keyed_refs(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| keyed_refs(v, out)),
        _ => {}
    }
}

/// Every state file the given states (manifest states) reference.
fn referenced<'a>(states: impl Iterator<Item = &'a Value>) -> BTreeSet<String> {
    let mut refs = Vec::new();
    for s in states {
        keyed_refs(s, &mut refs);
    }
    refs.iter()
        .filter_map(|r| r["files"].as_array())
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_owned))
        .collect()
}

/// Deletes the state files under `store/state` that none of `kept` (the
/// states of the manifests still kept) references and whose checkpoint is
/// not newer than `newest` (newer ones may belong to a checkpoint in
/// flight). Returns how many were deleted.
pub fn prune_files<'a>(
    store: &StateStore,
    kept: impl Iterator<Item = &'a Value>,
    newest: u64,
) -> Result<usize> {
    prune_files_where(store, kept, newest, |rel| !rel.ends_with(".tmp"))
}

/// [`prune_files`] for the files whose path (relative to the store, `/`
/// separated) `consider` accepts; the others are left alone.
pub fn prune_files_where<'a>(
    store: &StateStore,
    kept: impl Iterator<Item = &'a Value>,
    newest: u64,
    consider: impl Fn(&str) -> bool,
) -> Result<usize> {
    let keep = referenced(kept);
    let mut deleted = 0;
    for rel in store.list(STATE_DIR)? {
        let id = rel
            .rsplit('/')
            .next()
            // `<id>.<kind>.ks` (`.jsonl` in format 1), or `.<id>.….tmp` while being written.
            .and_then(|n| n.trim_start_matches('.').split('.').next())
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(id) = id
            && id <= newest
            && !keep.contains(&rel)
            && consider(&rel)
        {
            store.delete(&rel)?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests;
