//! One process per checkpoint directory.
//!
//! Two `shoal run` of one pipeline on one data dir used to share the
//! checkpoint directory: the second one's restore deleted the first one's
//! staged epoch files and exactly-once was lost. [`RunLock`] is an exclusive
//! advisory lock (`flock`, through std's `File::try_lock`) on
//! `<checkpoint dir>/.lock`, held for the life of the run. The file names
//! the holder (`pid host`), so the second process can say who holds it.
//!
//! A lock of a process that died (even by SIGKILL) is released by the
//! kernel with its file descriptors, so the next run takes it over without
//! any stale-lock guessing; the old contents are overwritten. Locks on
//! network file systems depend on the file system's `flock` support.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// A held lock on a checkpoint directory; released when dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

/// Why [`RunLock::acquire`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error(
        "{dir} is in use by another shoal process ({holder}); two runs of one pipeline would break exactly-once"
    )]
    Held {
        /// The locked directory.
        dir: PathBuf,
        /// `pid N on host H`, or what the lock file held.
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl RunLock {
    /// Lock `dir` (created if missing) for this process, without waiting.
    pub fn acquire(dir: &Path) -> Result<Self, LockError> {
        let path = dir.join(".lock");
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0).map_err(io)?;
                file.rewind().map_err(io)?;
                writeln!(file, "{} {}", std::process::id(), hostname()).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok(Self { _file: file, path })
            }
            Err(fs::TryLockError::WouldBlock) => {
                let mut s = String::new();
                let _ = file.read_to_string(&mut s);
                let mut parts = s.split_whitespace();
                let holder = match (parts.next(), parts.next()) {
                    (Some(pid), Some(host)) => format!("pid {pid} on host {host}"),
                    (Some(pid), None) => format!("pid {pid}"),
                    _ => "holder unknown: it is still starting".to_string(),
                };
                Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    holder,
                })
            }
            Err(fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// This machine's name (`unknown` if it cannot be read).
fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder_and_a_released_one_is_taken_over() {
        let dir = tempfile_dir();
        let first = RunLock::acquire(&dir).unwrap();
        let e = RunLock::acquire(&dir).unwrap_err().to_string();
        assert!(
            e.contains(&format!(
                "pid {} on host {}",
                std::process::id(),
                hostname()
            )),
            "{e}"
        );
        drop(first);
        let again = RunLock::acquire(&dir).unwrap();
        assert_eq!(again.path(), dir.join(".lock"));
        let _ = fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("shoal-lock-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }
}
