//! Checkpoint manifests on disk.
//!
//! Format (version 1): one JSON file per completed checkpoint,
//! `DIR/chk-<id, 20 digits>.json`, holding the pipeline's topology (node ids,
//! roles, parallelism) and every task instance's state as JSON. A manifest is
//! written atomically — temp file, fsync, rename, fsync of the directory — so
//! a file with that name is always complete; the newest one is the restart
//! point. The last `keep` manifests are kept.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError};

/// The on-disk format version written by this build.
pub const MANIFEST_VERSION: u32 = 1;

/// One node of the topology a checkpoint was taken with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologyNode {
    /// Node id from the pipeline file.
    pub id: String,
    /// `source`, `transform` or `sink`.
    pub role: String,
    /// Parallel instances.
    pub parallelism: usize,
    /// How records are routed to its instances by key, when they are:
    /// the hash and the key (`xxh64/v1 card:int`, see
    /// [`crate::partition::KEY_HASH`]). Keyed state restored on more than
    /// one instance must have been routed the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_hash: Option<String>,
    /// State kept per source partition ([`crate::shard`]): restorable at
    /// any parallelism.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sharded: bool,
    /// What the operator's state is made of (its stateful query, as the
    /// planner describes it): state is restored only into an operator
    /// whose description is the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_schema: Option<String>,
}

impl TopologyNode {
    /// Whether state taken on `self` can be restored on `now`: same id,
    /// role and parallelism, and — when keys were spread over several
    /// instances — the same key routing.
    /// Why state taken on `self` cannot be restored into `now` (same id),
    /// if it cannot.
    fn misfit(&self, now: &TopologyNode) -> Option<String> {
        if self.role != now.role {
            return Some(format!(
                "`{}` was a {} and is now a {}",
                self.id, self.role, now.role
            ));
        }
        if self.state_schema.is_some() && self.state_schema != now.state_schema {
            return Some(format!(
                "the state of `{}` was kept for `{}`, and its query is now `{}`",
                self.id,
                self.state_schema.as_deref().unwrap_or("-"),
                now.state_schema.as_deref().unwrap_or("-")
            ));
        }
        if self.sharded && now.sharded {
            return None;
        }
        if self.parallelism != now.parallelism {
            return Some(format!(
                "`{}` ran with parallelism {} and now has {} (its state is split by instance)",
                self.id, self.parallelism, now.parallelism
            ));
        }
        if self.parallelism > 1 && self.key_hash != now.key_hash {
            return Some(format!(
                "`{}` routed keys by {} and now by {}",
                self.id,
                self.key_hash.as_deref().unwrap_or("-"),
                now.key_hash.as_deref().unwrap_or("-")
            ));
        }
        None
    }
}

/// A completed checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version ([`MANIFEST_VERSION`]).
    pub version: u32,
    /// Pipeline name.
    pub pipeline: String,
    /// Checkpoint id (epoch); increases by one per checkpoint.
    pub id: u64,
    /// Wall-clock time it completed, ms since the epoch.
    pub completed_ms: u64,
    /// Time from barrier injection to the last acknowledgement, ms.
    pub duration_ms: u64,
    /// Size of all states: bytes of JSON plus the keyed-state files they
    /// reference (see [`crate::state`]).
    pub state_bytes: u64,
    /// Whether this was the final checkpoint at end of input.
    pub last: bool,
    /// The graph it was taken on.
    pub topology: Vec<TopologyNode>,
    /// State per node id, one entry per instance (`null` when stateless).
    pub states: BTreeMap<String, Vec<serde_json::Value>>,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> RuntimeError {
    RuntimeError::io(format!("checkpoint {what} {}", path.display()), e)
}

/// The folder of a checkpoint directory that holds its savepoints.
pub const SAVEPOINTS_DIR: &str = "savepoints";

/// A savepoint name: letters, digits, `-`, `_`, `.`; 1 to 100 characters,
/// not starting with `.` (it becomes a file name).
pub fn check_savepoint_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::User(format!(
            "savepoint name `{name}`: use 1 to 100 letters, digits, `-`, `_` or `.` (not starting with `.`)"
        )))
    }
}

fn file_name(id: u64) -> String {
    format!("chk-{id:020}.json")
}

/// The checkpoint id in a manifest's file name.
fn manifest_id(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_prefix("chk-")?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

impl Manifest {
    /// Write atomically into `dir`.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
        let path = dir.join(file_name(self.id));
        let tmp = dir.join(format!(".{}.tmp", file_name(self.id)));
        let bytes = serde_json::to_vec(self)
            .map_err(|e| RuntimeError::Internal(format!("manifest json: {e}")))?;
        let mut f = File::create(&tmp).map_err(|e| io("write", &tmp, e))?;
        f.write_all(&bytes).map_err(|e| io("write", &tmp, e))?;
        f.sync_all().map_err(|e| io("fsync", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| io("rename", &path, e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("fsync", dir, e))?;
        Ok(path)
    }

    /// Every completed manifest in `dir`, oldest first (missing dir = none).
    pub fn list(dir: &Path) -> Result<Vec<PathBuf>> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("read", dir, e)),
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("chk-") && n.ends_with(".json"))
            })
            .collect();
        files.sort();
        Ok(files)
    }

    /// Read one manifest.
    pub fn read(path: &Path) -> Result<Manifest> {
        let bytes = fs::read(path).map_err(|e| io("read", path, e))?;
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
            RuntimeError::User(format!(
                "checkpoint {} is not a manifest: {e}",
                path.display()
            ))
        })?;
        if m.version != MANIFEST_VERSION {
            return Err(RuntimeError::User(format!(
                "checkpoint {} has format version {}, this build reads version {MANIFEST_VERSION}",
                path.display(),
                m.version
            )));
        }
        Ok(m)
    }

    /// The manifest of checkpoint `id` in `dir`, if it is there.
    pub fn at(dir: &Path, id: u64) -> Result<Option<Manifest>> {
        let path = dir.join(file_name(id));
        if !path.exists() {
            return Ok(None);
        }
        Self::read(&path).map(Some)
    }

    /// Keep the newest completed checkpoint in `dir` as savepoint `name`
    /// (`savepoints/NAME.json`, a copy of its manifest): never pruned, and
    /// neither is the state it references. Returns the checkpoint's id.
    pub fn save_as(dir: &Path, name: &str) -> Result<u64> {
        check_savepoint_name(name)?;
        let latest = Self::latest(dir)?.ok_or_else(|| {
            RuntimeError::User(format!(
                "no completed checkpoint in {} to keep as savepoint `{name}`",
                dir.display()
            ))
        })?;
        let sp = dir.join(SAVEPOINTS_DIR);
        fs::create_dir_all(&sp).map_err(|e| io("create", &sp, e))?;
        let path = sp.join(format!("{name}.json"));
        let tmp = sp.join(format!(".{name}.json.tmp"));
        let bytes = serde_json::to_vec(&latest)
            .map_err(|e| RuntimeError::Internal(format!("manifest json: {e}")))?;
        let mut f = File::create(&tmp).map_err(|e| io("write", &tmp, e))?;
        f.write_all(&bytes).map_err(|e| io("write", &tmp, e))?;
        f.sync_all().map_err(|e| io("fsync", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| io("rename", &path, e))?;
        File::open(&sp)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("fsync", &sp, e))?;
        Ok(latest.id)
    }

    /// The savepoints kept in `dir`, by name.
    pub fn savepoints(dir: &Path) -> Result<Vec<(String, Manifest)>> {
        let sp = dir.join(SAVEPOINTS_DIR);
        let entries = match fs::read_dir(&sp) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("read", &sp, e)),
        };
        let mut out = Vec::new();
        for p in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            let Some(name) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .filter(|n| !n.starts_with('.'))
            else {
                continue;
            };
            out.push((name.to_string(), Self::read(&p)?));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Savepoint `name` of `dir`; an unknown name is an error listing the
    /// ones there are.
    pub fn savepoint(dir: &Path, name: &str) -> Result<Manifest> {
        check_savepoint_name(name)?;
        let all = Self::savepoints(dir)?;
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        let names = if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        };
        all.iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| m.clone())
            .ok_or_else(|| {
                RuntimeError::User(format!(
                    "no savepoint `{name}` in {} (savepoints there: {names})",
                    dir.display()
                ))
            })
    }

    /// Start again from checkpoint `id` (a savepoint's): the manifests
    /// newer than it move to `rolled-back/` (kept for inspection, no longer
    /// restored), so the next checkpoint continues after `id`. Returns how
    /// many moved.
    pub fn roll_back_to(dir: &Path, id: u64) -> Result<usize> {
        let newer: Vec<PathBuf> = Self::list(dir)?
            .into_iter()
            .filter(|f| manifest_id(f).is_some_and(|m| m > id))
            .collect();
        if newer.is_empty() {
            return Ok(0);
        }
        let to = dir.join("rolled-back");
        fs::create_dir_all(&to).map_err(|e| io("create", &to, e))?;
        for f in &newer {
            let target = to.join(f.file_name().expect("manifest file name"));
            fs::rename(f, &target).map_err(|e| io("move", f, e))?;
        }
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("fsync", dir, e))?;
        Ok(newer.len())
    }

    /// Delete the manifests newer than checkpoint `id` (a restart from `id`
    /// takes their numbers again); returns how many.
    pub fn discard_after(dir: &Path, id: u64) -> Result<usize> {
        let mut n = 0;
        for f in Self::list(dir)? {
            if manifest_id(&f).is_some_and(|m| m > id) {
                fs::remove_file(&f).map_err(|e| io("remove", &f, e))?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// The newest completed manifest in `dir`, if any.
    pub fn latest(dir: &Path) -> Result<Option<Manifest>> {
        match Self::list(dir)?.last() {
            Some(p) => Self::read(p).map(Some),
            None => Ok(None),
        }
    }

    /// Delete all but the newest `keep` manifests (and stray temp files),
    /// keeping every manifest from checkpoint `floor` on (the oldest epoch a
    /// sink has not yet committed past: a restart may need it), and the
    /// keyed-state files none of the kept ones references
    /// ([`crate::state::prune_files`]).
    pub fn prune(dir: &Path, keep: usize, floor: u64) -> Result<()> {
        Self::prune_with_store(dir, keep, floor, None)
    }

    /// [`Manifest::prune`], and also the shard files in the state store
    /// `store` (`(directory, shared)`, see
    /// [`CheckpointConfig::store_shared`](crate::CheckpointConfig)) that no
    /// kept manifest references: files are named
    /// `state/<operator>/p<partition>/<writer>/0/<checkpoint>.….jsonl`; a
    /// shared store's files are deleted only from this process's writer.
    ///
    /// Why the kept manifests hold every reference that can still be
    /// restored: a shard's live chain is in the newest manifest; the
    /// reference a sink committed is in the manifest of that epoch, which
    /// the floor keeps; a shard handed over to another process stays in
    /// this process's manifests (as not held) with the reference it was
    /// handed over with, which the new owner may restore until it commits
    /// its own. Files of other writers in a shared store may be in their
    /// chains or in flight, so they are never touched.
    pub fn prune_with_store(
        dir: &Path,
        keep: usize,
        floor: u64,
        store: Option<(&crate::state::StateStore, bool)>,
    ) -> Result<()> {
        let files = Self::list(dir)?;
        let n = files.len().saturating_sub(keep.max(1));
        let n = files[..n]
            .iter()
            .take_while(|f| manifest_id(f).is_some_and(|id| id < floor))
            .count();
        for f in &files[..n] {
            fs::remove_file(f).map_err(|e| io("remove", f, e))?;
        }
        // A directory store without state files has nothing to prune (an
        // object store is listed: it has no directories to look at).
        let store = store.filter(|(s, _)| {
            s.dir()
                .is_none_or(|d| d.join(crate::state::STATE_DIR).is_dir())
        });
        if !dir.join(crate::state::STATE_DIR).is_dir() && store.is_none() {
            return Ok(());
        }
        let mut kept = files[n..]
            .iter()
            .map(|f| Self::read(f))
            .collect::<Result<Vec<_>>>()?;
        let newest = kept.last().map_or(0, |m| m.id);
        // Savepoints keep the state they reference.
        kept.extend(Self::savepoints(dir)?.into_iter().map(|(_, m)| m));
        let states = || kept.iter().flat_map(|m| m.states.values().flatten());
        if dir.join(crate::state::STATE_DIR).is_dir() {
            crate::state::prune_files(&dir.into(), states(), newest)?;
        }
        if let Some((store, shared)) = store {
            let me = crate::shard::writer_id();
            let deleted = crate::state::prune_files_where(store, states(), newest, |rel| {
                // state/<operator>/p<partition>/<writer>/…
                let mine = rel.split('/').nth(3) == Some(me);
                if rel.ends_with(".tmp") {
                    // Left by a writer that died mid-write; this process's
                    // own may be in the middle of a (late) write.
                    !shared && !mine
                } else {
                    !shared || mine
                }
            })?;
            if deleted > 0 {
                tracing::debug!(deleted, "old shard files deleted from the state store");
            }
        }
        Ok(())
    }

    /// Check that this checkpoint's state fits `topology`.
    ///
    /// Nodes are matched by id: adding, removing or changing nodes that
    /// hold no state is fine, and so is any parallelism of an operator whose
    /// state is sharded by partition. A node that holds state must still be
    /// there with the same role, state description and (unless sharded)
    /// parallelism and key routing — or be listed in `drop` (its state is
    /// then not restored).
    pub fn check_topology(
        &self,
        topology: &[TopologyNode],
        dir: &Path,
        drop: &[String],
    ) -> Result<()> {
        let mut problems = Vec::new();
        for old in &self.topology {
            let holds_state = self
                .states
                .get(&old.id)
                .is_some_and(|v| v.iter().any(|s| !s.is_null()));
            if !holds_state || drop.contains(&old.id) {
                continue;
            }
            match topology.iter().find(|n| n.id == old.id) {
                None => problems.push(format!(
                    "`{}` holds state and is no longer in the pipeline",
                    old.id
                )),
                Some(now) => problems.extend(old.misfit(now)),
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(RuntimeError::User(format!(
            "the pipeline changed since checkpoint {} in {} in a way its state cannot follow: {}; \
             restore the previous pipeline, or start those operators afresh with `shoal run --drop-state <id>` \
             (or move the checkpoint directory away to start everything from scratch)",
            self.id,
            dir.display(),
            problems.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(id: u64) -> Manifest {
        Manifest {
            version: MANIFEST_VERSION,
            pipeline: "p".into(),
            id,
            completed_ms: 0,
            duration_ms: 1,
            state_bytes: 2,
            last: false,
            topology: vec![TopologyNode {
                id: "src".into(),
                role: "source".into(),
                parallelism: 2,
                key_hash: None,
                sharded: false,
                state_schema: None,
            }],
            states: BTreeMap::from([(
                "src".to_string(),
                vec![serde_json::json!({"pos": id}), serde_json::Value::Null],
            )]),
        }
    }

    /// A store with a shard file of checkpoints 1..=3 for this process's
    /// writer and another writer; manifests 2 and 3 kept, 3 referencing
    /// this writer's file 2 and the other writer's file 1.
    fn store_with_files() -> (tempfile::TempDir, tempfile::TempDir, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let store = tempfile::tempdir().unwrap();
        let me = crate::shard::writer_id();
        let mut files = Vec::new();
        for writer in [me, "w1-dead"] {
            for id in 1..=3u64 {
                let rel = format!("state/op/p0/{writer}/0/{id:020}.full.jsonl");
                let path = store.path().join(&rel);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, "x").unwrap();
                files.push(rel);
            }
            // A write cut short (dead writer) or in progress (this one).
            let tmp = store
                .path()
                .join(format!("state/op/p0/{writer}/0/.{:020}.delta.jsonl.tmp", 2));
            std::fs::write(tmp, "x").unwrap();
        }
        for id in 2..=3 {
            let mut m = manifest(id);
            m.states.insert(
                "op".into(),
                vec![
                    serde_json::json!({"shards": {"0": {"keyed_state": {"files": [
                        format!("state/op/p0/{me}/0/{:020}.full.jsonl", 2),
                        format!("state/op/p0/w1-dead/0/{:020}.full.jsonl", 1),
                    ]}}}}),
                ],
            );
            m.write(dir.path()).unwrap();
        }
        (dir, store, files)
    }

    #[test]
    fn pruning_deletes_shard_files_no_kept_manifest_references() {
        let me = crate::shard::writer_id();
        let left = |store: &Path| {
            let mut v: Vec<String> = walk(store);
            v.sort();
            v
        };
        fn walk(d: &Path) -> Vec<String> {
            let mut out = Vec::new();
            for e in std::fs::read_dir(d).unwrap().flatten() {
                if e.path().is_dir() {
                    out.extend(
                        walk(&e.path())
                            .into_iter()
                            .map(|f| format!("{}/{f}", e.file_name().to_string_lossy())),
                    );
                } else {
                    out.push(e.file_name().to_string_lossy().into_owned());
                }
            }
            out
        }
        let name = |w: &str, id: u64| format!("state/op/p0/{w}/0/{id:020}.full.jsonl");
        // Shared store: only this writer's unreferenced files go; file 3 is
        // not referenced but not newer than the newest manifest (3).
        let (dir, store, _) = store_with_files();
        Manifest::prune_with_store(dir.path(), 2, 0, Some((&store.path().into(), true))).unwrap();
        let tmp = |w: &str| format!("state/op/p0/{w}/0/.{:020}.delta.jsonl.tmp", 2);
        let mut want = vec![
            name(me, 2),
            tmp(me),
            name("w1-dead", 1),
            name("w1-dead", 2),
            name("w1-dead", 3),
            tmp("w1-dead"),
        ];
        want.sort();
        assert_eq!(left(store.path()), want);
        // One process per job: the dead writer's unreferenced files go too.
        let (dir, store, _) = store_with_files();
        Manifest::prune_with_store(dir.path(), 2, 0, Some((&store.path().into(), false))).unwrap();
        let mut want = vec![name(me, 2), tmp(me), name("w1-dead", 1)];
        want.sort();
        assert_eq!(left(store.path()), want);
    }

    #[test]
    fn write_latest_prune_and_topology_check() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Manifest::latest(dir.path()).unwrap().is_none());
        for id in 1..=5 {
            manifest(id).write(dir.path()).unwrap();
        }
        // A torn temp file from a crash is not a manifest.
        std::fs::write(dir.path().join(".chk-00000000000000000006.json.tmp"), b"{").unwrap();
        assert_eq!(Manifest::latest(dir.path()).unwrap().unwrap().id, 5);
        // A sink that committed only epoch 2 keeps manifests 2.. alive.
        Manifest::prune(dir.path(), 2, 2).unwrap();
        assert_eq!(Manifest::list(dir.path()).unwrap().len(), 4);
        assert!(Manifest::read(&dir.path().join(file_name(2))).is_ok());
        Manifest::prune(dir.path(), 2, u64::MAX).unwrap();
        assert_eq!(Manifest::list(dir.path()).unwrap().len(), 2);
        let m = Manifest::latest(dir.path()).unwrap().unwrap();
        assert_eq!(m.states["src"][0]["pos"], 5);
        assert!(
            m.check_topology(&m.topology.clone(), dir.path(), &[])
                .is_ok()
        );
        let mut changed = m.topology.clone();
        changed[0].parallelism = 3;
        let err = m
            .check_topology(&changed, dir.path(), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("pipeline changed") && err.contains("parallelism 2 and now has 3"),
            "{err}"
        );
        // Dropped state is not checked; sharded state fits any parallelism.
        assert!(
            m.check_topology(&changed, dir.path(), &["src".into()])
                .is_ok()
        );
        let mut sharded = m.clone();
        sharded.topology[0].sharded = true;
        changed[0].sharded = true;
        assert!(sharded.check_topology(&changed, dir.path(), &[]).is_ok());
        // A stateful node whose query changed, or that is gone, is refused by name.
        let mut q = sharded.clone();
        q.topology[0].state_schema = Some("over(a)".into());
        changed[0].state_schema = Some("over(b)".into());
        let err = q
            .check_topology(&changed, dir.path(), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`src` was kept for `over(a)`"), "{err}");
        let err = q
            .check_topology(&[], dir.path(), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`src` holds state and is no longer"), "{err}");
        // Keys spread over two instances by another hash (a checkpoint of a
        // build without `key_hash`) would land on the wrong instances.
        let mut rehashed = m.topology.clone();
        rehashed[0].key_hash = Some("xxh64/v1 k:int".into());
        let err = m
            .check_topology(&rehashed, dir.path(), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("now by xxh64/v1 k:int"), "{err}");
        // On one instance the routing does not matter.
        let mut one = m.clone();
        one.topology[0].parallelism = 1;
        rehashed[0].parallelism = 1;
        assert!(one.check_topology(&rehashed, dir.path(), &[]).is_ok());
    }
}
