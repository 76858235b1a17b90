//! Record formats: decoding chunks of JSON-lines / CSV records into Arrow
//! batches (bad records become dead letters, the rest go on), and encoding
//! batches back to bytes.
//!
//! Decoding is batch-at-a-time: a whole chunk of lines goes through Arrow's
//! decoder in one call. Only when that fails is the chunk decoded line by
//! line, to separate the bad records (with their reason) from the good ones.

use std::io::Write;
use std::sync::Arc;

use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use shoal_dsl::FileFormat;
use shoal_runtime::{Result, RuntimeError};

/// A reusable chunk of records: the bytes of each record (a line without its
/// newline) and its position (line number or offset) for dead letters.
#[derive(Debug, Default)]
pub struct RecordChunk {
    buf: Vec<u8>,
    ends: Vec<usize>,
    positions: Vec<u64>,
    partitions: Vec<Option<u32>>,
}

impl RecordChunk {
    /// Empty the chunk, keeping its allocations.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.ends.clear();
        self.positions.clear();
        self.partitions.clear();
    }

    /// Add one record.
    pub fn push(&mut self, record: &[u8], partition: Option<u32>, position: u64) {
        self.buf.extend_from_slice(record);
        self.buf.push(b'\n');
        self.ends.push(self.buf.len());
        self.positions.push(position);
        self.partitions.push(partition);
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the chunk holds no record.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Record `i` without its trailing newline.
    pub fn record(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.buf[start..self.ends[i] - 1]
    }
}

/// A record that failed to decode.
#[derive(Debug, Clone)]
pub struct BadRecord {
    /// Partition it came from, if any.
    pub partition: Option<u32>,
    /// Its position (line number, offset).
    pub position: u64,
    /// Why it failed.
    pub reason: String,
    /// The record text (lossy UTF-8, truncated to 4 KiB).
    pub record: String,
}

/// Decodes chunks of records of one format and schema.
pub struct RecordDecoder {
    schema: SchemaRef,
    format: FileFormat,
    inner: Inner,
}

enum Inner {
    Json(arrow::json::reader::Decoder),
    Csv(arrow::csv::reader::Decoder),
}

const MAX_CHUNK: usize = 1 << 20;

impl RecordDecoder {
    /// A decoder for `format` records into `schema`.
    pub fn new(format: FileFormat, schema: SchemaRef) -> Result<Self> {
        let inner = Self::build(&format, &schema)?;
        Ok(Self {
            schema,
            format,
            inner,
        })
    }

    fn build(format: &FileFormat, schema: &SchemaRef) -> Result<Inner> {
        Ok(match format {
            FileFormat::Csv => Inner::Csv(
                arrow::csv::ReaderBuilder::new(schema.clone())
                    .with_header(false)
                    .with_batch_size(MAX_CHUNK)
                    .build_decoder(),
            ),
            _ => Inner::Json(
                arrow::json::ReaderBuilder::new(schema.clone())
                    .with_batch_size(MAX_CHUNK)
                    .build_decoder()?,
            ),
        })
    }

    /// The schema batches are decoded into.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn decode_bytes(
        &mut self,
        bytes: &[u8],
    ) -> std::result::Result<Option<RecordBatch>, ArrowError> {
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = match &mut self.inner {
                Inner::Json(d) => d.decode(rest)?,
                Inner::Csv(d) => d.decode(rest)?,
            };
            if n == 0 {
                break;
            }
            rest = &rest[n..];
        }
        match &mut self.inner {
            Inner::Json(d) => d.flush(),
            Inner::Csv(d) => d.flush(),
        }
    }

    /// Decode a chunk. Good records come back as one batch; bad ones are
    /// pushed to `bad` with their reason.
    pub fn decode(
        &mut self,
        chunk: &RecordChunk,
        bad: &mut Vec<BadRecord>,
    ) -> Result<Option<RecordBatch>> {
        if chunk.is_empty() {
            return Ok(None);
        }
        match self.decode_bytes(&chunk.buf) {
            Ok(batch) if batch.as_ref().map_or(0, |b| b.num_rows()) == chunk.len() => {
                return Ok(batch);
            }
            Ok(_) | Err(_) => {
                // A decoder that failed may hold partial state: start afresh,
                // then find the bad records one by one.
                self.inner = Self::build(&self.format, &self.schema)?;
            }
        }
        let mut good = Vec::new();
        for i in 0..chunk.len() {
            let rec = chunk.record(i);
            if rec.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let mut line = Vec::with_capacity(rec.len() + 1);
            line.extend_from_slice(rec);
            line.push(b'\n');
            match self.decode_bytes(&line) {
                Ok(Some(b)) if b.num_rows() == 1 => good.push(b),
                Ok(other) => {
                    let rows = other.map_or(0, |b| b.num_rows());
                    bad.push(bad_record(
                        chunk,
                        i,
                        format!("expected one record, decoded {rows}"),
                    ));
                    self.inner = Self::build(&self.format, &self.schema)?;
                }
                Err(e) => {
                    bad.push(bad_record(chunk, i, reason(&e)));
                    self.inner = Self::build(&self.format, &self.schema)?;
                }
            }
        }
        if good.is_empty() {
            return Ok(None);
        }
        Ok(Some(concat_batches(&self.schema, &good)?))
    }
}

fn reason(e: &ArrowError) -> String {
    let s = e.to_string();
    let s = s
        .strip_prefix("Json error: ")
        .or_else(|| s.strip_prefix("Parser error: "))
        .unwrap_or(&s);
    if s.contains("unmasked nulls") || s.contains("non-nullable") {
        // Arrow names the field in its Debug form; keep it short.
        let field = s
            .split("name: \"")
            .nth(1)
            .or_else(|| s.split("Field { \"").nth(1))
            .and_then(|r| r.split('"').next());
        return match field {
            Some(f) => format!("missing required field `{f}`"),
            None => format!("missing required field: {s}"),
        };
    }
    s.to_string()
}

fn bad_record(chunk: &RecordChunk, i: usize, reason: String) -> BadRecord {
    let rec = chunk.record(i);
    let rec = &rec[..rec.len().min(4096)];
    BadRecord {
        partition: chunk.partitions[i],
        position: chunk.positions[i],
        reason,
        record: String::from_utf8_lossy(rec).into_owned(),
    }
}

/// Infer a schema from sample records (all fields nullable).
pub fn infer_schema(format: &FileFormat, sample: &[u8], header: bool) -> Result<SchemaRef> {
    let schema = match format {
        FileFormat::Csv => {
            arrow::csv::reader::Format::default()
                .with_header(header)
                .infer_schema(std::io::Cursor::new(sample), Some(1000))?
                .0
        }
        _ => arrow::json::reader::infer_json_schema(std::io::Cursor::new(sample), Some(1000))?.0,
    };
    if schema.fields().is_empty() {
        return Err(RuntimeError::User(
            "cannot infer a schema: no records in the sample".into(),
        ));
    }
    Ok(Arc::new(schema))
}

/// Writes batches as bytes of one format.
pub struct RecordEncoder {
    format: FileFormat,
    wrote_header: bool,
}

impl RecordEncoder {
    /// An encoder for `format` (CSV writes a header before the first batch).
    pub fn new(format: FileFormat) -> Self {
        Self {
            format,
            wrote_header: false,
        }
    }

    /// Append `batch` to `w`.
    pub fn write<W: Write>(&mut self, w: &mut W, batch: &RecordBatch) -> Result<()> {
        match self.format {
            FileFormat::Csv => {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(!self.wrote_header)
                    .build(w);
                writer.write(batch)?;
                self.wrote_header = true;
            }
            _ => {
                let mut writer = arrow::json::LineDelimitedWriter::new(w);
                writer.write(batch)?;
                writer.finish()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("amount", DataType::Float64, false),
            Field::new("note", DataType::Utf8, true),
        ]))
    }

    #[test]
    fn good_chunk_decodes_in_one_go() {
        let mut d = RecordDecoder::new(FileFormat::Jsonl, schema()).unwrap();
        let mut c = RecordChunk::default();
        for i in 0..100 {
            c.push(
                format!(r#"{{"id": {i}, "amount": 1.5}}"#).as_bytes(),
                None,
                i + 1,
            );
        }
        let mut bad = Vec::new();
        let b = d.decode(&c, &mut bad).unwrap().unwrap();
        assert_eq!(b.num_rows(), 100);
        assert!(bad.is_empty());
    }

    #[test]
    fn bad_records_are_separated_with_reasons() {
        let mut d = RecordDecoder::new(FileFormat::Jsonl, schema()).unwrap();
        let mut c = RecordChunk::default();
        c.push(br#"{"id": 1, "amount": 1.0}"#, None, 1);
        c.push(br#"{"id": 2, "amount": "lots"}"#, None, 2);
        c.push(br#"{"id": 3, "amount": 3.0"#, None, 3);
        c.push(br#"{"amount": 4.0}"#, None, 4);
        c.push(br#"{"id": 5, "amount": 5.0, "note": "ok"}"#, None, 5);
        let mut bad = Vec::new();
        let b = d.decode(&c, &mut bad).unwrap().unwrap();
        assert_eq!(b.num_rows(), 2);
        let positions: Vec<u64> = bad.iter().map(|b| b.position).collect();
        assert_eq!(positions, vec![2, 3, 4]);
        assert!(
            bad[2].reason.contains("missing required field `id`"),
            "{}",
            bad[2].reason
        );
        // The decoder still works afterwards.
        let mut c2 = RecordChunk::default();
        c2.push(br#"{"id": 9, "amount": 9.0}"#, None, 6);
        assert_eq!(d.decode(&c2, &mut bad).unwrap().unwrap().num_rows(), 1);
    }

    #[test]
    fn csv_chunks_and_bad_rows() {
        let mut d = RecordDecoder::new(FileFormat::Csv, schema()).unwrap();
        let mut c = RecordChunk::default();
        c.push(b"1,2.5,hello", None, 2);
        c.push(b"x,2.5,hello", None, 3);
        c.push(b"3,4.5,", None, 4);
        let mut bad = Vec::new();
        let b = d.decode(&c, &mut bad).unwrap().unwrap();
        assert_eq!(b.num_rows(), 2);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].position, 3);
    }

    #[test]
    fn encode_jsonl_round_trip() {
        let mut d = RecordDecoder::new(FileFormat::Jsonl, schema()).unwrap();
        let mut c = RecordChunk::default();
        c.push(br#"{"id": 1, "amount": 1.5, "note": "a"}"#, None, 1);
        let b = d.decode(&c, &mut Vec::new()).unwrap().unwrap();
        let mut out = Vec::new();
        RecordEncoder::new(FileFormat::Jsonl)
            .write(&mut out, &b)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"id\":1,\"amount\":1.5,\"note\":\"a\"}\n"
        );
    }
}
