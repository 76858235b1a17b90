//! File-system helpers shared by the storage and group modules: atomic JSON
//! writes (temp file, fsync, rename, fsync dir), lock files, name checks.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, IoContext, Result};

/// Writes `bytes` to `path` atomically: a temp file in the same directory is
/// written and fsynced, renamed over `path`, and the directory is fsynced,
/// so a reader sees either the old or the new content, never a mix, and the
/// new content survives a crash once this returns.
pub(crate) fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    write_replace(path, bytes, true)
}

/// Like [`atomic_write`] but without the fsyncs: readers still see the old or
/// the new content, never a mix, but a machine crash may lose the update
/// (used for monitoring snapshots that are rewritten on every change).
pub(crate) fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    write_replace(path, bytes, false)
}

fn write_replace(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut f = File::create(&tmp).ctx("create", &tmp)?;
        f.write_all(bytes).ctx("write", &tmp)?;
        if durable {
            f.sync_all().ctx("fsync", &tmp)?;
        }
    }
    fs::rename(&tmp, path).ctx("rename", path)?;
    if durable { sync_dir(dir) } else { Ok(()) }
}

/// Serializes `value` as pretty JSON and writes it with [`atomic_write`].
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| Error::Json {
        path: path.to_owned(),
        source,
    })?;
    atomic_write(path, &bytes)
}

/// Reads a JSON file; `Ok(None)` if it does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| Error::Json {
                path: path.to_owned(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// Fsyncs a directory so renames/creates/deletes in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("fsync dir", dir)
}

/// An exclusive advisory lock on a file, held until dropped. The holder's pid
/// is written into the file so a conflicting process can name it.
#[derive(Debug)]
pub(crate) struct LockFile {
    _file: File,
    path: PathBuf,
}

/// Outcome of [`LockFile::try_acquire`] when the lock is taken.
pub(crate) struct Held {
    /// Pid found in the lock file, if any.
    pub holder: Option<u32>,
}

impl LockFile {
    /// Takes the lock without blocking; `Ok(Err(Held))` if another open file
    /// (another process, or another handle in this one) holds it.
    pub(crate) fn try_acquire(path: &Path) -> Result<std::result::Result<LockFile, Held>> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .ctx("open lock", path)?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0).ctx("truncate lock", path)?;
                let _ = write!(file, "{}", std::process::id());
                Ok(Ok(LockFile {
                    _file: file,
                    path: path.to_owned(),
                }))
            }
            Err(fs::TryLockError::WouldBlock) => {
                let mut s = String::new();
                let _ = file.read_to_string(&mut s);
                Ok(Err(Held {
                    holder: s.trim().parse().ok(),
                }))
            }
            Err(fs::TryLockError::Error(e)) => Err(Error::io("lock", path, e)),
        }
    }

    /// The lock file's path.
    #[allow(dead_code)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Checks a topic or group name: 1..=200 chars of `[A-Za-z0-9._-]`, not `.`/`..`.
pub(crate) fn validate_name(kind: &'static str, name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            kind,
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("must not be empty");
    }
    if name.len() > 200 {
        return bad("must be at most 200 characters");
    }
    if name == "." || name == ".." {
        return bad("must not be '.' or '..'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("may only contain ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}
