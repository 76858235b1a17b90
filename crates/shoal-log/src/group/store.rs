//! The group files under `<log dir>/groups/<group>/`, each written
//! atomically (temp file, fsync, rename, fsync dir):
//!
//! * `state.json` ([`StateFile`]): generation, assignor, members and their
//!   assignment, replaced (temp file + rename, so never torn) on every
//!   membership or assignment change, so another process (`shoal group
//!   describe`) can read them. Not fsynced: it is a live snapshot, and
//!   members do not outlive their process anyway; an unreadable one is
//!   ignored;
//! * `offsets.json` ([`OffsetsFile`]): committed offsets per topic and
//!   partition, and the generation as of the last commit, fsynced before a
//!   commit returns;
//! * `coordinator.lock`: held by the process coordinating the group.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{AssignorKind, GroupState, MemberDescription};
use crate::error::Result;
use crate::fsutil;

/// Layout version of the group files.
pub const GROUP_FILES_VERSION: u32 = 1;
/// State file name.
pub(crate) const STATE_FILE: &str = "state.json";
/// Offsets file name.
pub(crate) const OFFSETS_FILE: &str = "offsets.json";
/// Coordinator lock file name.
pub(crate) const LOCK_FILE: &str = "coordinator.lock";

/// Committed offsets: topic → partition → next offset to read.
pub type CommittedOffsets = BTreeMap<String, BTreeMap<u32, u64>>;

/// Content of `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFile {
    /// Layout version.
    pub version: u32,
    /// Group id.
    pub group: String,
    /// Generation (never goes back, also across restarts).
    pub generation: u64,
    /// Assignor of the members.
    pub assignor: Option<AssignorKind>,
    /// Empty, stable or rebalancing.
    pub state: GroupState,
    /// Members and their partitions.
    pub members: Vec<MemberDescription>,
    /// Process id of the coordinator that wrote this.
    pub coordinator_pid: u32,
    /// When this was written (ms since the epoch).
    pub updated_ms: u64,
}

/// Content of `offsets.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetsFile {
    /// Layout version.
    pub version: u32,
    /// Group id.
    pub group: String,
    /// Generation at the last commit: a durable floor for the generation
    /// after a restart.
    #[serde(default)]
    pub generation: u64,
    /// Committed offsets.
    pub offsets: CommittedOffsets,
}

/// `<groups dir>/<group>`
pub(crate) fn group_dir(groups_dir: &Path, group: &str) -> PathBuf {
    groups_dir.join(group)
}

/// Reads `state.json`, if any; an unreadable one (lost in a machine crash)
/// counts as missing.
pub(crate) fn read_state(dir: &Path) -> Result<Option<StateFile>> {
    match fsutil::read_json(&dir.join(STATE_FILE)) {
        Err(e @ crate::Error::Json { .. }) => {
            tracing::warn!(error = %e, "ignoring unreadable group state");
            Ok(None)
        }
        other => other,
    }
}

/// Reads `offsets.json`, if any.
pub(crate) fn read_offsets(dir: &Path) -> Result<Option<OffsetsFile>> {
    fsutil::read_json(&dir.join(OFFSETS_FILE))
}

/// Replaces `state.json` (atomic, not fsynced).
pub(crate) fn write_state(dir: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| crate::Error::io("create dir", dir, e))?;
    fsutil::replace_file(&dir.join(STATE_FILE), bytes)
}

/// Writes `offsets.json` atomically and durably.
pub(crate) fn write_offsets(dir: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| crate::Error::io("create dir", dir, e))?;
    fsutil::atomic_write(&dir.join(OFFSETS_FILE), bytes)
}
