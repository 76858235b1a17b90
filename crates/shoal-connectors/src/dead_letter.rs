//! Dead-letter writers: JSON lines to a directory (committed at end, like
//! the file sink) or to standard error.
//!
//! Each line is `{"node":…,"partition":…,"offset":…,"reason":…,"record":…}`.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use shoal_runtime::{DeadLetter, DeadLetterSink, Result, RuntimeError};

/// Writes dead letters to `DIR/dead-letters.jsonl` (staged, then renamed).
pub struct FileDeadLetters {
    staged: PathBuf,
    committed: PathBuf,
    out: BufWriter<File>,
}

impl FileDeadLetters {
    /// A writer into `dir` (created if missing).
    pub fn new(dir: &Path) -> Result<Self> {
        let io = |e| RuntimeError::io(format!("dead-letter directory {}", dir.display()), e);
        fs::create_dir_all(dir).map_err(io)?;
        let staged = dir.join(".dead-letters.jsonl.staged");
        let out = BufWriter::new(File::create(&staged).map_err(io)?);
        Ok(Self {
            staged,
            committed: dir.join("dead-letters.jsonl"),
            out,
        })
    }
}

impl DeadLetterSink for FileDeadLetters {
    fn write(&mut self, letter: &DeadLetter) -> Result<()> {
        writeln!(self.out, "{}", letter.to_json())
            .map_err(|e| RuntimeError::io("write dead letter", e))
    }

    fn finish(&mut self) -> Result<()> {
        let io = |e| RuntimeError::io("commit dead letters", e);
        self.out.flush().map_err(io)?;
        self.out.get_ref().sync_all().map_err(io)?;
        fs::rename(&self.staged, &self.committed).map_err(io)
    }
}

/// Writes dead letters to standard error.
#[derive(Default)]
pub struct StderrDeadLetters;

impl DeadLetterSink for StderrDeadLetters {
    fn write(&mut self, letter: &DeadLetter) -> Result<()> {
        eprintln!("dead letter: {}", letter.to_json());
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}
