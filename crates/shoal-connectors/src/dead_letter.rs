//! Dead-letter writers: JSON lines to a directory (committed with the
//! checkpoints, like the file sink) or to standard error.
//!
//! Each line is `{"node":…,"partition":…,"offset":…,"reason":…,"record":…}`.
//!
//! # The directory's files
//!
//! - `dead-letters.jsonl`: the published letters, appended as checkpoints
//!   complete (a run without checkpoints replaces it at its end).
//! - `.staged/<after>.jsonl`: letters of the epoch after checkpoint
//!   `<after>`, not yet covered by a completed checkpoint.
//! - `.published`: what was appended, epoch by epoch: `[after, length
//!   before, length after]`, newest last. Written (atomically) after the
//!   append and before the staged files are deleted, so a restart can tell
//!   a half-done append (the file is longer than the last entry says: cut
//!   it) from a finished one (its staged files are leftovers: delete them),
//!   and can take back the epochs a restore point does not cover.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use shoal_runtime::{DeadLetter, DeadLetterSink, Result, RuntimeError};

/// Entries of `.published` kept (more than the checkpoints a restore point
/// can be behind the newest one).
const HISTORY: usize = 256;

/// `(after, length before, length after)` of one published epoch.
type Published = (u64, u64, u64);

/// Writes dead letters to `DIR/dead-letters.jsonl`, staged per epoch.
pub struct FileDeadLetters {
    dir: PathBuf,
    staging: PathBuf,
    committed: PathBuf,
    /// Open staged files by `after`.
    open: BTreeMap<u64, BufWriter<File>>,
    history: Vec<Published>,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let what = what.into();
    move |e| RuntimeError::io(what, e)
}

impl FileDeadLetters {
    /// A writer into `dir` (created if missing).
    pub fn new(dir: &Path) -> Result<Self> {
        let staging = dir.join(".staged");
        fs::create_dir_all(&staging)
            .map_err(io(format!("dead-letter directory {}", dir.display())))?;
        let history = match fs::read(dir.join(".published")) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                RuntimeError::User(format!(
                    "{}: unreadable ({e}); delete it and the dead-letter files to start afresh",
                    dir.join(".published").display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io("read .published")(e)),
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            staging,
            committed: dir.join("dead-letters.jsonl"),
            open: BTreeMap::new(),
            history,
        })
    }

    fn staged_path(&self, after: u64) -> PathBuf {
        self.staging.join(format!("{after}.jsonl"))
    }

    /// The staged epochs on disk, oldest first.
    fn staged_on_disk(&self) -> Result<Vec<u64>> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.staging).map_err(io("list staged dead letters"))? {
            let name = entry.map_err(io("list staged dead letters"))?.file_name();
            if let Some(after) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".jsonl"))
                .and_then(|n| n.parse().ok())
            {
                found.push(after);
            }
        }
        found.sort_unstable();
        Ok(found)
    }

    fn published_len(&self) -> Result<u64> {
        match fs::metadata(&self.committed) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io("dead-letters.jsonl")(e)),
        }
    }

    /// Cut the published file to `len` (creating it empty if missing).
    fn truncate_to(&self, len: u64) -> Result<()> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.committed)
            .map_err(io("dead-letters.jsonl"))?;
        f.set_len(len).map_err(io("cut dead-letters.jsonl"))?;
        f.sync_all().map_err(io("sync dead-letters.jsonl"))
    }

    fn write_history(&mut self) -> Result<()> {
        if self.history.len() > HISTORY {
            self.history.drain(..self.history.len() - HISTORY);
        }
        let tmp = self.dir.join(".published.tmp");
        let bytes = serde_json::to_vec(&self.history).expect("numbers serialise");
        let mut f = File::create(&tmp).map_err(io("write .published"))?;
        f.write_all(&bytes).map_err(io("write .published"))?;
        f.sync_all().map_err(io("sync .published"))?;
        fs::rename(&tmp, self.dir.join(".published")).map_err(io("rename .published"))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io("sync dead-letter directory"))
    }

    /// Append the staged epochs `epochs` (oldest first) to the published
    /// file, record them, then delete their staged files.
    fn publish(&mut self, epochs: &[u64]) -> Result<()> {
        if epochs.is_empty() {
            return Ok(());
        }
        let mut out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.committed)
            .map_err(io("open dead-letters.jsonl"))?;
        let mut len = self.published_len()?;
        for &after in epochs {
            if let Some(mut w) = self.open.remove(&after) {
                w.flush().map_err(io("flush staged dead letters"))?;
            }
            let bytes =
                fs::read(self.staged_path(after)).map_err(io("read staged dead letters"))?;
            out.write_all(&bytes)
                .map_err(io("append to dead-letters.jsonl"))?;
            let before = len;
            len += bytes.len() as u64;
            self.history.push((after, before, len));
        }
        out.sync_all().map_err(io("sync dead-letters.jsonl"))?;
        self.write_history()?;
        for &after in epochs {
            fs::remove_file(self.staged_path(after)).map_err(io("delete staged dead letters"))?;
        }
        Ok(())
    }
}

impl DeadLetterSink for FileDeadLetters {
    fn write(&mut self, after: u64, letter: &DeadLetter) -> Result<()> {
        if !self.open.contains_key(&after) {
            // A file left by an earlier run is not this run's: `recover`
            // published or deleted every staged file it found.
            let f = File::create(self.staged_path(after)).map_err(io("stage dead letters"))?;
            self.open.insert(after, BufWriter::new(f));
        }
        let out = self.open.get_mut(&after).expect("opened above");
        writeln!(out, "{}", letter.to_json()).map_err(io("write dead letter"))
    }

    fn sync(&mut self) -> Result<()> {
        for w in self.open.values_mut() {
            w.flush().map_err(io("flush staged dead letters"))?;
            w.get_ref()
                .sync_data()
                .map_err(io("sync staged dead letters"))?;
        }
        // New staged files' names are durable too.
        File::open(&self.staging)
            .and_then(|d| d.sync_all())
            .map_err(io("sync staged dead letters"))
    }

    fn commit(&mut self, id: u64) -> Result<()> {
        let due: Vec<u64> = self.open.range(..id).map(|(after, _)| *after).collect();
        self.publish(&due)
    }

    fn recover(&mut self, restored: Option<u64>) -> Result<()> {
        let restored = restored.unwrap_or(0);
        // An append cut short by a crash: its record was not written.
        let recorded = self.history.last().map_or(0, |h| h.2);
        if self.published_len()? != recorded {
            self.truncate_to(recorded)?;
        }
        // Epochs the restore point does not cover are replayed: take their
        // letters back (oldest such epoch first: everything from it on).
        if let Some(i) = self.history.iter().position(|h| h.0 >= restored) {
            self.truncate_to(self.history[i].1)?;
            self.history.truncate(i);
            self.write_history()?;
        }
        let published: std::collections::HashSet<u64> = self.history.iter().map(|h| h.0).collect();
        let mut due = Vec::new();
        for after in self.staged_on_disk()? {
            if published.contains(&after) || after >= restored {
                // Already published, or replayed by this run.
                fs::remove_file(self.staged_path(after))
                    .map_err(io("delete staged dead letters"))?;
            } else {
                due.push(after);
            }
        }
        self.publish(&due)
    }

    fn finish(&mut self) -> Result<()> {
        // A run without checkpoints replaces the letters of earlier runs.
        self.truncate_to(0)?;
        self.history.clear();
        let ours: Vec<u64> = self.open.keys().copied().collect();
        self.publish(&ours)?;
        for after in self.staged_on_disk()? {
            fs::remove_file(self.staged_path(after)).map_err(io("delete staged dead letters"))?;
        }
        self.history.clear();
        match fs::remove_file(self.dir.join(".published")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("delete .published")(e)),
            _ => Ok(()),
        }
    }
}

/// Writes dead letters to standard error (each at once; a replay after a
/// failure may print a letter again).
#[derive(Default)]
pub struct StderrDeadLetters;

impl DeadLetterSink for StderrDeadLetters {
    fn write(&mut self, _after: u64, letter: &DeadLetter) -> Result<()> {
        eprintln!("dead letter: {}", letter.to_json());
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(n: u64) -> DeadLetter {
        DeadLetter {
            node: "src".into(),
            partition: Some(0),
            offset: Some(n),
            reason: "bad".into(),
            record: format!("r{n}"),
        }
    }

    /// The offsets in `dead-letters.jsonl`, in file order.
    fn published(dir: &Path) -> Vec<u64> {
        fs::read_to_string(dir.join("dead-letters.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["offset"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn letters_appear_when_the_checkpoint_covering_them_completes() {
        let d = tempfile::tempdir().unwrap();
        let mut s = FileDeadLetters::new(d.path()).unwrap();
        s.recover(None).unwrap();
        s.write(0, &letter(1)).unwrap();
        s.write(1, &letter(2)).unwrap();
        s.sync().unwrap();
        assert_eq!(published(d.path()), Vec::<u64>::new());
        s.commit(1).unwrap();
        assert_eq!(published(d.path()), vec![1]);
        s.write(2, &letter(3)).unwrap();
        s.commit(3).unwrap();
        assert_eq!(published(d.path()), vec![1, 2, 3]);
        s.commit(3).unwrap();
        assert_eq!(published(d.path()), vec![1, 2, 3], "commit is idempotent");
    }

    #[test]
    fn a_restart_publishes_what_its_checkpoint_covers_and_drops_the_rest() {
        let d = tempfile::tempdir().unwrap();
        let mut s = FileDeadLetters::new(d.path()).unwrap();
        s.recover(None).unwrap();
        s.write(0, &letter(1)).unwrap();
        s.write(1, &letter(2)).unwrap();
        s.write(2, &letter(3)).unwrap();
        s.sync().unwrap();
        // Killed after checkpoint 2 completed, before the letters were published.
        drop(s);
        let mut s = FileDeadLetters::new(d.path()).unwrap();
        s.recover(Some(2)).unwrap();
        assert_eq!(published(d.path()), vec![1, 2], "epoch after 2 is replayed");
        // The replay sends letter 3 again, into a fresh staged file.
        s.write(2, &letter(3)).unwrap();
        s.commit(3).unwrap();
        assert_eq!(published(d.path()), vec![1, 2, 3]);
    }

    #[test]
    fn a_half_done_append_is_cut_and_redone() {
        let d = tempfile::tempdir().unwrap();
        let mut s = FileDeadLetters::new(d.path()).unwrap();
        s.recover(None).unwrap();
        s.write(0, &letter(1)).unwrap();
        s.commit(1).unwrap();
        s.write(1, &letter(2)).unwrap();
        s.sync().unwrap();
        drop(s);
        // A crash in the middle of appending epoch 1: half a line, no record.
        let mut f = OpenOptions::new()
            .append(true)
            .open(d.path().join("dead-letters.jsonl"))
            .unwrap();
        f.write_all(b"{\"node\":\"sr").unwrap();
        let mut s = FileDeadLetters::new(d.path()).unwrap();
        s.recover(Some(2)).unwrap();
        assert_eq!(published(d.path()), vec![1, 2]);
    }

    #[test]
    fn an_older_restore_point_takes_published_letters_back() {
        let d = tempfile::tempdir().unwrap();
        let mut s = FileDeadLetters::new(d.path()).unwrap();
        s.recover(None).unwrap();
        for (after, n) in [(0, 1), (1, 2), (2, 3), (3, 4)] {
            s.write(after, &letter(n)).unwrap();
            s.commit(after + 1).unwrap();
        }
        assert_eq!(published(d.path()), vec![1, 2, 3, 4]);
        drop(s);
        // The sink that owns the offsets committed epoch 2 only.
        let mut s = FileDeadLetters::new(d.path()).unwrap();
        s.recover(Some(2)).unwrap();
        assert_eq!(published(d.path()), vec![1, 2]);
        // From nothing: nothing is covered.
        drop(s);
        let mut s = FileDeadLetters::new(d.path()).unwrap();
        s.recover(None).unwrap();
        assert_eq!(published(d.path()), Vec::<u64>::new());
    }

    #[test]
    fn a_run_without_checkpoints_replaces_the_file_at_its_end() {
        let d = tempfile::tempdir().unwrap();
        let mut s = FileDeadLetters::new(d.path()).unwrap();
        s.write(0, &letter(1)).unwrap();
        s.finish().unwrap();
        let mut s = FileDeadLetters::new(d.path()).unwrap();
        s.write(0, &letter(2)).unwrap();
        s.write(0, &letter(3)).unwrap();
        s.finish().unwrap();
        assert_eq!(published(d.path()), vec![2, 3]);
        assert!(!d.path().join(".published").exists());
    }
}
