//! The `file` source: JSON lines, CSV or Parquet, with a declared or
//! inferred schema (a Parquet file's own schema; a declared one selects
//! columns by name and casts them).
//!
//! Lines are read into a reusable [`RecordChunk`] and decoded a chunk at a
//! time; a line that does not decode goes to the dead-letter output with its
//! line number and the reason. A file source has parallelism 1.
//! Limitation: CSV fields with quoted newlines are not supported.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use futures::future::BoxFuture;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use shoal_dsl::{FileFormat, FileSource as FileSourceSpec};
use shoal_runtime::{DeadLetter, Result, RuntimeError, Source, SourceContext};

use crate::event_time::EventTime;
use crate::format::{RecordChunk, RecordDecoder, infer_schema};
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
    let mut sample = Vec::new();
    open(&path)?
        .take(1 << 20)
        .read_to_end(&mut sample)
        .map_err(|e| RuntimeError::io(path.display().to_string(), e))?;
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
            let mut decoder = RecordDecoder::new(self.format.clone(), self.schema.clone())?;
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
                    let n = reader
                        .read_until(b'\n', &mut line)
                        .map_err(|e| RuntimeError::io(self.path.display().to_string(), e))?;
                    if n == 0 {
                        eof = true;
                        break;
                    }
                    line_no += 1;
                    if skip_header && line_no == 1 {
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
                        reason: format!("line {}: {}", b.position, b.reason),
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

fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}
