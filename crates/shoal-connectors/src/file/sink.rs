//! The `file` sink: a directory of part files, committed atomically.
//!
//! Each sink instance writes the records of an epoch to a staged, hidden
//! file `.part-<instance>-<epoch>.<ext>.staged`. [`Sink::pre_commit`]
//! flushes and fsyncs it; [`Sink::commit`] renames it to
//! `part-<instance>-<epoch>.<ext>` and fsyncs the directory. So
//! `DIR/*.jsonl` only ever shows committed, complete files, and replaying a
//! commit (after a crash) is a no-op; on restart [`Sink::recover`] commits
//! the staged epochs the last completed checkpoint covers and deletes the
//! others. Without checkpoints the whole run is epoch 1, committed at end of
//! input; a rerun replaces the files of a previous run with the same names.
//!
//! With `format: parquet` each part is a Parquet file (Arrow writer, Snappy
//! pages); its footer is written at `pre_commit`, so a committed part is
//! always a complete Parquet file.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use shoal_dsl::FileFormat;
use shoal_runtime::{Result, RuntimeError, Sink};

use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::format::RecordEncoder;

fn parquet_err(dir: &Path, e: parquet::errors::ParquetError) -> RuntimeError {
    RuntimeError::External(format!("file sink {}: parquet: {e}", dir.display()))
}

/// File extension for a format.
pub fn extension(format: &FileFormat) -> &'static str {
    format.name()
}

/// The open part file of an epoch.
enum Part {
    /// JSON lines or CSV.
    Lines(BufWriter<File>, RecordEncoder),
    /// Parquet, and a handle on the same file to fsync it.
    Parquet(Box<ArrowWriter<File>>, File),
}

/// One file sink instance.
pub struct FileSink {
    dir: PathBuf,
    format: FileFormat,
    instance: usize,
    epoch: u64,
    current: Option<Part>,
    /// Epochs staged (pre-committed) but not yet committed.
    staged: Vec<u64>,
}

impl FileSink {
    /// A sink writing into `dir` (created if missing).
    pub fn new(dir: &Path, format: FileFormat, instance: usize) -> Result<Self> {
        fs::create_dir_all(dir)
            .map_err(|e| RuntimeError::io(format!("create {}", dir.display()), e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            format,
            instance,
            epoch: 1,
            current: None,
            staged: Vec::new(),
        })
    }

    fn name(&self, epoch: u64) -> String {
        format!(
            "part-{:04}-{:08}.{}",
            self.instance,
            epoch,
            extension(&self.format)
        )
    }

    fn staged_path(&self, epoch: u64) -> PathBuf {
        self.dir.join(format!(".{}.staged", self.name(epoch)))
    }

    fn io(&self, what: &str, e: std::io::Error) -> RuntimeError {
        RuntimeError::io(format!("file sink {}: {what}", self.dir.display()), e)
    }
}

impl Sink for FileSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.current.is_none() {
            let path = self.staged_path(self.epoch);
            let f = File::create(&path).map_err(|e| self.io("create staged file", e))?;
            self.current = Some(match self.format {
                FileFormat::Parquet => {
                    let sync = f.try_clone().map_err(|e| self.io("open staged file", e))?;
                    let props = WriterProperties::builder()
                        .set_compression(Compression::SNAPPY)
                        .build();
                    let w = ArrowWriter::try_new(f, batch.schema(), Some(props))
                        .map_err(|e| parquet_err(&self.dir, e))?;
                    Part::Parquet(Box::new(w), sync)
                }
                _ => Part::Lines(
                    BufWriter::with_capacity(1 << 20, f),
                    RecordEncoder::new(self.format.clone()),
                ),
            });
        }
        match self.current.as_mut().expect("just opened") {
            Part::Lines(w, enc) => enc.write(w, batch),
            Part::Parquet(w, _) => w.write(batch).map_err(|e| parquet_err(&self.dir, e)),
        }
    }

    fn pre_commit(&mut self, epoch: u64) -> Result<()> {
        // Records written since the previous barrier belong to `epoch`.
        if let Some(part) = self.current.take() {
            let f = match part {
                Part::Lines(mut w, _) => {
                    w.flush().map_err(|e| self.io("flush", e))?;
                    w.into_inner()
                        .map_err(|e| self.io("flush", e.into_error()))?
                }
                Part::Parquet(w, sync) => {
                    // Row groups and the footer: a complete Parquet file.
                    w.close().map_err(|e| parquet_err(&self.dir, e))?;
                    sync
                }
            };
            f.sync_all().map_err(|e| self.io("fsync", e))?;
            if self.epoch != epoch {
                let from = self.staged_path(self.epoch);
                fs::rename(&from, self.staged_path(epoch)).map_err(|e| self.io("stage", e))?;
            }
            self.staged.push(epoch);
        }
        self.epoch = epoch + 1;
        Ok(())
    }

    fn recover(&mut self, committed: Option<u64>) -> Result<()> {
        let prefix = format!(".part-{:04}-", self.instance);
        let suffix = format!(".{}.staged", extension(&self.format));
        let entries = fs::read_dir(&self.dir).map_err(|e| self.io("list", e))?;
        let mut commit = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.io("list", e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(epoch) = name
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_suffix(&suffix))
            else {
                continue;
            };
            let Ok(epoch) = epoch.parse::<u64>() else {
                continue;
            };
            if committed.is_some_and(|c| epoch <= c) {
                commit.push(epoch);
            } else {
                // Staged after the last completed checkpoint: its records are read again.
                fs::remove_file(entry.path()).map_err(|e| self.io("abort staged epoch", e))?;
            }
        }
        self.staged.extend(commit);
        if let Some(c) = committed {
            self.commit(c)?;
            self.epoch = c + 1;
        }
        Ok(())
    }

    fn commit(&mut self, epoch: u64) -> Result<()> {
        let ready: Vec<u64> = self
            .staged
            .iter()
            .copied()
            .filter(|e| *e <= epoch)
            .collect();
        self.staged.retain(|e| *e > epoch);
        for e in ready {
            let from = self.staged_path(e);
            let to = self.dir.join(self.name(e));
            match fs::rename(&from, &to) {
                Ok(()) => {}
                // Already committed by an earlier attempt: replaying is a no-op.
                Err(err) if err.kind() == std::io::ErrorKind::NotFound && to.exists() => {}
                Err(err) => return Err(self.io("commit (rename)", err)),
            }
        }
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io("fsync directory", e))
    }

    fn finish(&mut self) -> Result<()> {
        let epoch = self.epoch;
        self.pre_commit(epoch)?;
        self.commit(epoch)
    }
}

/// The committed part files of a file sink directory, sorted by name.
pub fn committed_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("part-"))
        })
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(v: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(v.to_vec()))]).unwrap()
    }

    #[test]
    fn staged_files_are_hidden_until_commit_and_commit_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileSink::new(dir.path(), FileFormat::Jsonl, 0).unwrap();
        s.write(&batch(&[1, 2])).unwrap();
        s.pre_commit(1).unwrap();
        assert_eq!(s.staged, vec![1]);
        assert!(
            committed_files(dir.path()).unwrap().is_empty(),
            "nothing visible before commit"
        );
        s.write(&batch(&[3])).unwrap();
        s.commit(1).unwrap();
        let files = committed_files(dir.path()).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(
            fs::read_to_string(&files[0]).unwrap(),
            "{\"v\":1}\n{\"v\":2}\n"
        );
        // Replaying the commit is a no-op.
        s.staged.push(1);
        s.commit(1).unwrap();
        s.finish().unwrap();
        let files = committed_files(dir.path()).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(fs::read_to_string(&files[1]).unwrap(), "{\"v\":3}\n");
    }
}

#[cfg(test)]
mod recover_tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn recover_commits_covered_epochs_and_aborts_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let b = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![7]))]).unwrap();
        {
            let mut s = FileSink::new(dir.path(), FileFormat::Jsonl, 0).unwrap();
            for epoch in 1..=3 {
                s.write(&b).unwrap();
                s.pre_commit(epoch).unwrap();
            }
            s.write(&b).unwrap(); // epoch 4, never staged: the process "crashes"
            let Some(Part::Lines(mut w, _)) = s.current.take() else {
                panic!("a JSON lines part is open");
            };
            w.flush().unwrap();
        }
        let mut s = FileSink::new(dir.path(), FileFormat::Jsonl, 0).unwrap();
        s.recover(Some(2)).unwrap();
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into())
            .collect();
        let mut names = names;
        names.sort();
        assert_eq!(
            names,
            vec!["part-0000-00000001.jsonl", "part-0000-00000002.jsonl"]
        );
        assert_eq!(s.epoch, 3);
    }
}
