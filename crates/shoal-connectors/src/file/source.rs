//! The `file` source: JSON lines, CSV or Parquet, with a declared or
//! inferred schema (a Parquet file's own schema; a declared one selects
//! columns by name and casts them).
//!
//! Lines are read into a reusable [`RecordChunk`] and decoded a chunk at a
//! time; a line that does not decode goes to the dead-letter output with its
//! line number and the reason. A file source has parallelism 1.
//! Limitation: CSV fields with quoted newlines are not supported.
//!
//! Lines are read with a bound (`max_record_bytes:`): the bytes of a longer
//! line past the bound are skipped, not buffered, and the line becomes a
//! dead letter. With `header: true` (the default) and a declared schema, CSV
//! columns are matched to the schema by the header's names (extra columns
//! are ignored; a missing required column is an error naming it); with
//! `header: false` they are taken by position.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use futures::future::BoxFuture;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use shoal_dsl::{DecodeSpec, FileFormat};

use super::FileSourceConfig as FileSourceSpec;
use shoal_runtime::{DeadLetter, Result, RuntimeError, Source, SourceContext};

use crate::event_time::EventTime;
use crate::format::{RecordChunk, RecordDecoder, infer_schema, truncate_reason};
use crate::schema::arrow_schema;

/// The schema a file source produces: declared, or inferred from the first
/// records of the file.
pub fn file_source_schema(spec: &FileSourceSpec, base_dir: &Path) -> Result<SchemaRef> {
    if let Some(schema) = &spec.schema {
        return Ok(arrow_schema(schema));
    }
    let path = base_dir.join(&spec.path);
    if spec.format == FileFormat::Parquet {
        let reader = ParquetRecordBatchReaderBuilder::try_new(open(&path)?)
            .map_err(|e| parquet_err(&path, e))?;
        return Ok(reader.schema().clone());
    }
    const SAMPLE: u64 = 1 << 20;
    let mut sample = Vec::new();
    open(&path)?
        .take(SAMPLE)
        .read_to_end(&mut sample)
        .map_err(|e| RuntimeError::io(path.display().to_string(), e))?;
    if sample.len() as u64 == SAMPLE {
        // Infer from whole lines only.
        match sample.iter().rposition(|&b| b == b'\n') {
            Some(i) => sample.truncate(i + 1),
            None => {
                return Err(RuntimeError::User(format!(
                    "cannot infer a schema for {}: its first line is longer than the 1 MiB sample; declare the columns with `schema:`",
                    path.display()
                )));
            }
        }
    }
    infer_schema(&spec.format, &sample, spec.header)
}

fn parquet_err(path: &Path, e: parquet::errors::ParquetError) -> RuntimeError {
    RuntimeError::User(format!("cannot read {} as Parquet: {e}", path.display()))
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| RuntimeError::User(format!("cannot open {}: {e}", path.display())))
}

/// One file source instance.
pub struct FileSource {
    node: String,
    path: PathBuf,
    format: FileFormat,
    header: bool,
    batch_size: usize,
    schema: SchemaRef,
    event_time: Option<EventTime>,
    decode: DecodeSpec,
}

impl FileSource {
    /// A source for `spec`, paths relative to `base_dir`, producing `schema`.
    pub fn new(
        node: &str,
        spec: &FileSourceSpec,
        base_dir: &Path,
        schema: SchemaRef,
    ) -> Result<Self> {
        let event_time = match &spec.event_time {
            Some(et) => Some(EventTime::new(et, &schema, 1)?),
            None => None,
        };
        Ok(Self {
            node: node.to_string(),
            path: base_dir.join(&spec.path),
            format: spec.format.clone(),
            header: spec.header,
            batch_size: spec.batch_size.max(1),
            schema,
            event_time,
            decode: spec.decode.clone(),
        })
    }
}

impl Source for FileSource {
    fn run<'a>(mut self: Box<Self>, ctx: &'a mut SourceContext) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if ctx.instance > 0 {
                return Ok(()); // one reader per file
            }
            if self.format == FileFormat::Parquet {
                return self.run_parquet(ctx).await;
            }
            let mut reader = BufReader::with_capacity(1 << 16, open(&self.path)?);
            let mut decoder =
                RecordDecoder::with_spec(self.format.clone(), self.schema.clone(), &self.decode)?;
            let max_line = self.decode.max_record_bytes;
            let mut chunk = RecordChunk::default();
            let mut line = Vec::with_capacity(256);
            let mut bad = Vec::new();
            let mut line_no: u64 = 0;
            let skip_header = matches!(self.format, FileFormat::Csv) && self.header;
            loop {
                chunk.clear();
                let mut eof = false;
                while chunk.len() < self.batch_size {
                    line.clear();
                    let (n, skipped) = read_line_bounded(&mut reader, &mut line, max_line)
                        .map_err(|e| RuntimeError::io(self.path.display().to_string(), e))?;
                    if n == 0 {
                        eof = true;
                        break;
                    }
                    line_no += 1;
                    if skip_header && line_no == 1 {
                        if skipped > 0 {
                            return Err(RuntimeError::User(format!(
                                "{}: the CSV header is over max_record_bytes ({max_line})",
                                self.path.display()
                            )));
                        }
                        decoder.set_csv_header(trim_newline(&line)).map_err(|e| {
                            RuntimeError::User(format!("{}: {e}", self.path.display()))
                        })?;
                        continue;
                    }
                    if skipped > 0 {
                        let reason = format!(
                            "line {line_no}: record is longer than max_record_bytes ({max_line})"
                        );
                        let record =
                            String::from_utf8_lossy(&line[..line.len().min(4096)]).into_owned();
                        ctx.dead_letter(DeadLetter {
                            node: self.node.clone(),
                            partition: None,
                            offset: Some(line_no),
                            reason,
                            record,
                        })
                        .await?;
                        continue;
                    }
                    let rec = trim_newline(&line);
                    if rec.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    chunk.push(rec, None, line_no);
                }
                if let Some(batch) = decoder.decode(&chunk, &mut bad)? {
                    if let Some(et) = &mut self.event_time {
                        et.observe(0, &batch);
                    }
                    ctx.emit(batch).await?;
                    if let Some(et) = &self.event_time {
                        et.emit(ctx).await?;
                    }
                }
                for b in bad.drain(..) {
                    ctx.dead_letter(DeadLetter {
                        node: self.node.clone(),
                        partition: None,
                        offset: Some(b.position),
                        reason: truncate_reason(format!("line {}: {}", b.position, b.reason)),
                        record: b.record,
                    })
                    .await?;
                }
                if eof || ctx.is_cancelled() {
                    return Ok(());
                }
            }
        })
    }
}

impl FileSource {
    /// Read a Parquet file batch by batch, as the source's schema (columns
    /// picked by name and cast).
    async fn run_parquet(&mut self, ctx: &mut SourceContext) -> Result<()> {
        let reader = ParquetRecordBatchReaderBuilder::try_new(open(&self.path)?)
            .map_err(|e| parquet_err(&self.path, e))?
            .with_batch_size(self.batch_size)
            .build()
            .map_err(|e| parquet_err(&self.path, e))?;
        for batch in reader {
            let batch = batch.map_err(|e| {
                RuntimeError::User(format!("cannot read {}: {e}", self.path.display()))
            })?;
            let batch = conform(&batch, &self.schema)
                .map_err(|e| RuntimeError::User(format!("{}: {e}", self.path.display())))?;
            if let Some(et) = &mut self.event_time {
                et.observe(0, &batch);
            }
            ctx.emit(batch).await?;
            if let Some(et) = &self.event_time {
                et.emit(ctx).await?;
            }
            if ctx.is_cancelled() {
                break;
            }
        }
        Ok(())
    }
}

/// `batch` with `schema`'s columns, taken by name and cast to its types.
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> std::result::Result<RecordBatch, String> {
    if batch.schema() == *schema {
        return Ok(batch.clone());
    }
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            let c = batch
                .column_by_name(f.name())
                .ok_or_else(|| format!("no column `{}` in the file", f.name()))?;
            arrow::compute::cast(c, f.data_type())
                .map_err(|e| format!("column `{}`: {e}", f.name()))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}

/// Read one line (with its `\n`) into `buf`, keeping at most `max + 2`
/// bytes (room for `\r\n`): the rest of a longer line is read and dropped.
/// Returns the bytes read and how many were dropped.
fn read_line_bounded<R: BufRead>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<(usize, u64)> {
    let keep = max.saturating_add(2);
    let mut read = 0;
    let mut dropped = 0u64;
    loop {
        let avail = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok((read, dropped));
        }
        let (used, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        let room = keep.saturating_sub(buf.len()).min(used);
        buf.extend_from_slice(&avail[..room]);
        dropped += (used - room) as u64;
        r.consume(used);
        read += used;
        if done {
            if dropped == 0 && trim_newline(buf).len() > max {
                // Over the bound by the last byte or two: count them.
                dropped = (trim_newline(buf).len() - max) as u64;
                buf.truncate(max);
            }
            return Ok((read, dropped));
        }
    }
}

fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_not_buffered() {
        let text = format!("ab\n{}\ncd\r\nxyz", "z".repeat(100));
        let mut r = BufReader::with_capacity(8, text.as_bytes());
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        loop {
            buf.clear();
            let (n, dropped) = read_line_bounded(&mut r, &mut buf, 10).unwrap();
            if n == 0 {
                break;
            }
            lines.push((String::from_utf8(buf.clone()).unwrap(), n, dropped));
            assert!(buf.len() <= 12);
        }
        assert_eq!(lines[0], ("ab\n".to_string(), 3, 0));
        assert_eq!(lines[1].1, 101);
        assert_eq!(lines[1].0.len() as u64 + lines[1].2, 101);
        assert!(lines[1].2 > 0);
        assert_eq!(lines[2], ("cd\r\n".to_string(), 4, 0));
        assert_eq!(lines[3], ("xyz".to_string(), 3, 0));
        // Exactly at the bound is fine; one byte over is not.
        let mut buf = Vec::new();
        let (_, d) = read_line_bounded(&mut "0123456789\n".as_bytes(), &mut buf, 10).unwrap();
        assert_eq!(d, 0);
        buf.clear();
        let (_, d) = read_line_bounded(&mut "0123456789A\n".as_bytes(), &mut buf, 10).unwrap();
        assert_eq!(d, 1);
    }
}
