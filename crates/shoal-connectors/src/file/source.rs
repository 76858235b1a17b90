//! The `file` source: JSON lines or CSV, with a declared or inferred schema.
//!
//! Lines are read into a reusable [`RecordChunk`] and decoded a chunk at a
//! time; a line that does not decode goes to the dead-letter output with its
//! line number and the reason. A file source has parallelism 1.
//! Limitation: CSV fields with quoted newlines are not supported.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use futures::future::BoxFuture;
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
    let mut sample = Vec::new();
    open(&path)?
        .take(1 << 20)
        .read_to_end(&mut sample)
        .map_err(|e| RuntimeError::io(path.display().to_string(), e))?;
    infer_schema(&spec.format, &sample, spec.header)
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

fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}
