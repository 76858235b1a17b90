//! Record formats: decoding chunks of JSON-lines / CSV records into Arrow
//! batches (bad records become dead letters, the rest go on), and encoding
//! batches back to bytes.
//!
//! Decoding is batch-at-a-time: a whole chunk of lines goes through Arrow's
//! decoder in one call. Only when that fails is the chunk decoded line by
//! line, to separate the bad records (with their reason) from the good ones.
//!
//! Before Arrow sees a JSON record, [`JsonCheck`] bounds its size and
//! nesting depth and checks strict typing (see [`crate::json_check`]); a CSV
//! record's size is bounded too. A panic inside Arrow's decoder is caught
//! and, found line by line, turns the record into a dead letter. Reasons are
//! cut at [`MAX_REASON_BYTES`].

use std::io::Write;
use std::sync::Arc;

use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use shoal_dsl::{DecodeSpec, FileFormat};
use shoal_runtime::{Result, RuntimeError};

use crate::json_check::JsonCheck;

/// Longest dead-letter reason kept, in bytes (longer ones are cut with `…`).
pub const MAX_REASON_BYTES: usize = 1024;

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

    /// The partition record `i` came from.
    pub fn partition(&self, i: usize) -> Option<u32> {
        self.partitions[i]
    }

    /// The position (offset, line) of record `i`.
    pub fn position(&self, i: usize) -> u64 {
        self.positions[i]
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

impl BadRecord {
    /// Record `i` of `chunk`, binary (Avro, Protobuf): kept as `hex:…` of
    /// its first 2 KiB.
    pub fn binary(chunk: &RecordChunk, i: usize, reason: String) -> Self {
        let r = chunk.record(i);
        Self {
            partition: chunk.partition(i),
            position: chunk.position(i),
            reason: truncate_reason(reason),
            record: format!("hex:{}", hex::encode(&r[..r.len().min(2048)])),
        }
    }
}

/// Decodes chunks of records of one format and schema.
pub struct RecordDecoder {
    schema: SchemaRef,
    /// What Arrow decodes into: `schema`, or a CSV file's columns in header
    /// order (then `project` maps them to `schema`).
    read_schema: SchemaRef,
    /// For each field of `schema`, its column in `read_schema` (`None`: all null).
    project: Option<Vec<Option<usize>>>,
    format: FileFormat,
    inner: Inner,
    check: JsonCheck,
    /// Records that passed the check, when some of a chunk did not.
    passed: RecordChunk,
}

enum Inner {
    Json(arrow::json::reader::Decoder),
    Csv(arrow::csv::reader::Decoder),
}

const MAX_CHUNK: usize = 1 << 20;

impl RecordDecoder {
    /// A decoder for `format` records into `schema`, with the default
    /// limits and strict typing.
    pub fn new(format: FileFormat, schema: SchemaRef) -> Result<Self> {
        Self::with_spec(format, schema, &DecodeSpec::default())
    }

    /// A decoder with the limits and coercions of `spec`.
    pub fn with_spec(format: FileFormat, schema: SchemaRef, spec: &DecodeSpec) -> Result<Self> {
        let inner = Self::build(&format, &schema)?;
        Ok(Self {
            check: JsonCheck::new(&schema, spec),
            read_schema: schema.clone(),
            project: None,
            schema,
            format,
            inner,
            passed: RecordChunk::default(),
        })
    }

    /// Match CSV columns to the schema by the names in `header` (a CSV
    /// line): extra columns are ignored, a missing nullable column is null,
    /// a missing required one is an error naming it.
    pub fn set_csv_header(&mut self, header: &[u8]) -> Result<()> {
        let names: Vec<String> = arrow::csv::reader::Format::default()
            .with_header(true)
            .infer_schema(std::io::Cursor::new(header), Some(0))?
            .0
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let mut project = Vec::with_capacity(self.schema.fields().len());
        for f in self.schema.fields() {
            match names.iter().position(|n| n == f.name()) {
                Some(i) => project.push(Some(i)),
                None if f.is_nullable() => project.push(None),
                None => {
                    return Err(RuntimeError::User(format!(
                        "the CSV header has no column `{}`, which the schema requires (header: {})",
                        f.name(),
                        names.join(",")
                    )));
                }
            }
        }
        let identity =
            names.len() == project.len() && project.iter().enumerate().all(|(i, p)| *p == Some(i));
        if identity {
            return Ok(());
        }
        let fields: Vec<arrow::datatypes::Field> = names
            .iter()
            .enumerate()
            .map(|(i, _)| match project.iter().position(|p| *p == Some(i)) {
                Some(t) => self.schema.field(t).clone(),
                None => arrow::datatypes::Field::new(
                    format!("__ignored_{i}"),
                    arrow::datatypes::DataType::Utf8,
                    true,
                ),
            })
            .collect();
        self.read_schema = Arc::new(arrow::datatypes::Schema::new(fields));
        self.project = Some(project);
        self.inner = Self::build(&self.format, &self.read_schema)?;
        Ok(())
    }

    /// `batch` (in `read_schema`) as `schema`.
    fn projected(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let Some(project) = &self.project else {
            return Ok(batch);
        };
        let columns = project
            .iter()
            .zip(self.schema.fields())
            .map(|(p, f)| match p {
                Some(i) => batch.column(*i).clone(),
                None => arrow::array::new_null_array(f.data_type(), batch.num_rows()),
            })
            .collect();
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }

    /// Why `rec` may not go to Arrow, if it may not.
    fn precheck(&self, rec: &[u8]) -> std::result::Result<(), String> {
        match self.format {
            FileFormat::Csv => {
                if rec.len() > self.check.max_bytes() {
                    return Err(format!(
                        "record is {} bytes, over max_record_bytes ({})",
                        rec.len(),
                        self.check.max_bytes()
                    ));
                }
                Ok(())
            }
            // Blank records are skipped below, as before.
            _ if rec.iter().all(u8::is_ascii_whitespace) => Ok(()),
            _ => self.check.check(rec),
        }
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

    /// [`Self::decode_raw`], a panic turned into an error.
    fn decode_bytes(
        &mut self,
        bytes: &[u8],
    ) -> std::result::Result<Option<RecordBatch>, ArrowError> {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.decode_raw(bytes)));
        r.unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(ArrowError::JsonError(format!(
                "the decoder panicked: {msg}"
            )))
        })
    }

    fn decode_raw(&mut self, bytes: &[u8]) -> std::result::Result<Option<RecordBatch>, ArrowError> {
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
        // Records refused by the check never reach Arrow.
        let first_bad = bad.len();
        let mut refused = false;
        for i in 0..chunk.len() {
            if let Err(reason) = self.precheck(chunk.record(i)) {
                if !refused {
                    refused = true;
                    self.passed.clear();
                    for j in 0..i {
                        self.passed
                            .push(chunk.record(j), chunk.partitions[j], chunk.positions[j]);
                    }
                }
                bad.push(bad_record(chunk, i, reason));
            } else if refused {
                self.passed
                    .push(chunk.record(i), chunk.partitions[i], chunk.positions[i]);
            }
        }
        let batch = if refused {
            let passed = std::mem::take(&mut self.passed);
            let r = self.decode_checked(&passed, bad);
            self.passed = passed;
            // Letters in record order, whichever check found them.
            bad[first_bad..].sort_by_key(|b| b.position);
            r?
        } else {
            self.decode_checked(chunk, bad)?
        };
        batch.map(|b| self.projected(b)).transpose()
    }

    fn decode_checked(
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
                // then find the bad records by halving.
                self.inner = Self::build(&self.format, &self.read_schema)?;
            }
        }
        let mut good = Vec::new();
        let mid = chunk.len() / 2;
        self.decode_range(chunk, 0, mid, &mut good, bad)?;
        self.decode_range(chunk, mid, chunk.len(), &mut good, bad)?;
        if good.is_empty() {
            return Ok(None);
        }
        Ok(Some(concat_batches(&self.read_schema, &good)?))
    }

    /// Decode records `lo..hi` of a chunk that failed as a whole: a range
    /// that decodes in one go is good; one that does not is halved, down to
    /// the single records that are bad. A chunk with `k` bad records costs
    /// about `k · log2(len)` extra decodes of shrinking ranges instead of
    /// one decode per record (one bad line in 8 192 no longer turns its
    /// chunk into 8 192 one-line decodes). Good rows keep their order.
    fn decode_range(
        &mut self,
        chunk: &RecordChunk,
        lo: usize,
        hi: usize,
        good: &mut Vec<RecordBatch>,
        bad: &mut Vec<BadRecord>,
    ) -> Result<()> {
        if lo >= hi {
            return Ok(());
        }
        if hi - lo == 1 {
            return self.decode_one(chunk, lo, good, bad);
        }
        // Blank lines decode to nothing: they are neither good nor bad.
        let expected = (lo..hi)
            .filter(|&i| !chunk.record(i).iter().all(u8::is_ascii_whitespace))
            .count();
        if expected == 0 {
            return Ok(());
        }
        let start = if lo == 0 { 0 } else { chunk.ends[lo - 1] };
        let end = chunk.ends[hi - 1];
        match self.decode_bytes(&chunk.buf[start..end]) {
            Ok(batch) if batch.as_ref().map_or(0, |b| b.num_rows()) == expected => {
                good.extend(batch);
                return Ok(());
            }
            Ok(_) | Err(_) => self.inner = Self::build(&self.format, &self.read_schema)?,
        }
        let mid = lo + (hi - lo) / 2;
        self.decode_range(chunk, lo, mid, good, bad)?;
        self.decode_range(chunk, mid, hi, good, bad)
    }

    /// Decode record `i` alone: a good row, or a dead letter with the
    /// decoder's reason.
    fn decode_one(
        &mut self,
        chunk: &RecordChunk,
        i: usize,
        good: &mut Vec<RecordBatch>,
        bad: &mut Vec<BadRecord>,
    ) -> Result<()> {
        let rec = chunk.record(i);
        if rec.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let start = if i == 0 { 0 } else { chunk.ends[i - 1] };
        // The record with its newline.
        match self.decode_bytes(&chunk.buf[start..chunk.ends[i]]) {
            Ok(Some(b)) if b.num_rows() == 1 => good.push(b),
            Ok(other) => {
                let rows = other.map_or(0, |b| b.num_rows());
                bad.push(bad_record(
                    chunk,
                    i,
                    format!("expected one record, decoded {rows}"),
                ));
                self.inner = Self::build(&self.format, &self.read_schema)?;
            }
            Err(e) => {
                bad.push(bad_record(chunk, i, reason(&e)));
                self.inner = Self::build(&self.format, &self.read_schema)?;
            }
        }
        Ok(())
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
        reason: truncate_reason(reason),
        record: String::from_utf8_lossy(rec).into_owned(),
    }
}

/// Row `i` of `batch` as a JSON object (a dead letter's record); empty
/// when the row cannot be encoded.
pub fn row_json(batch: &RecordBatch, i: usize) -> String {
    let mut out = Vec::new();
    let mut w = arrow::json::LineDelimitedWriter::new(&mut out);
    if w.write(&batch.slice(i, 1))
        .and_then(|_| w.finish())
        .is_err()
    {
        return String::new();
    }
    String::from_utf8_lossy(&out).trim_end().to_owned()
}

/// `reason` cut to at most [`MAX_REASON_BYTES`] (on a char boundary).
pub fn truncate_reason(mut reason: String) -> String {
    if reason.len() > MAX_REASON_BYTES {
        let mut cut = MAX_REASON_BYTES - 3;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason.push('…');
    }
    reason
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
    fn records_only_the_decoder_refuses_are_found_by_halving_in_order() {
        // An unparsable time passes the JSON check; only Arrow refuses it.
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new(
                "ts",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None),
                false,
            ),
        ]));
        let mut d = RecordDecoder::new(FileFormat::Jsonl, schema).unwrap();
        let mut c = RecordChunk::default();
        let bad_at = [0u64, 10, 500, 501, 999];
        let blank_at = [100u64, 700];
        for i in 0..1000u64 {
            if bad_at.contains(&i) {
                c.push(
                    format!(r#"{{"id": {i}, "ts": "not a time"}}"#).as_bytes(),
                    None,
                    i,
                );
            } else if blank_at.contains(&i) {
                c.push(b"  ", None, i);
            } else {
                c.push(format!(r#"{{"id": {i}, "ts": {i}}}"#).as_bytes(), None, i);
            }
        }
        let mut bad = Vec::new();
        let b = d.decode(&c, &mut bad).unwrap().unwrap();
        let ids = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap()
            .values()
            .to_vec();
        let expected: Vec<i64> = (0..1000u64)
            .filter(|i| !bad_at.contains(i) && !blank_at.contains(i))
            .map(|i| i as i64)
            .collect();
        assert_eq!(ids, expected, "good rows, in their order");
        let positions: Vec<u64> = bad.iter().map(|b| b.position).collect();
        assert_eq!(positions, bad_at);
        assert!(
            bad.iter().all(|b| b.reason.contains("not a time")),
            "{bad:?}"
        );
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
    fn csv_columns_are_matched_by_header_name() {
        let mut d = RecordDecoder::new(FileFormat::Csv, schema()).unwrap();
        // Swapped order, an extra column, the nullable `note` missing.
        d.set_csv_header(b"amount,extra,id").unwrap();
        let mut c = RecordChunk::default();
        c.push(b"2.5,zzz,1", None, 2);
        c.push(b"oops,zzz,2", None, 3);
        c.push(b"4.5,,3", None, 4);
        let mut bad = Vec::new();
        let b = d.decode(&c, &mut bad).unwrap().unwrap();
        assert_eq!(b.schema(), schema());
        assert_eq!(b.num_rows(), 2);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].position, 3);
        let ids = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap();
        let amounts = b
            .column(1)
            .as_any()
            .downcast_ref::<arrow::array::Float64Array>()
            .unwrap();
        assert_eq!(ids.values(), &[1, 3]);
        assert_eq!(amounts.values(), &[2.5, 4.5]);
        assert_eq!(b.column(2).null_count(), 2);
        // A required column missing from the header is an error naming it.
        let mut d = RecordDecoder::new(FileFormat::Csv, schema()).unwrap();
        let e = d.set_csv_header(b"amount,note").unwrap_err().to_string();
        assert!(e.contains("no column `id`"), "{e}");
    }

    #[test]
    fn hostile_json_records_become_dead_letters() {
        let mut d = RecordDecoder::new(FileFormat::Jsonl, schema()).unwrap();
        let mut c = RecordChunk::default();
        let deep = format!(
            "{{\"id\": 1, \"amount\": 1.0, \"note\": {}1{}}}",
            "[".repeat(30_000),
            "]".repeat(30_000)
        );
        c.push(br#"{"id": 1, "amount": 1.0}"#, Some(0), 10);
        c.push(deep.as_bytes(), Some(0), 11);
        c.push(br#"{"id": 1.9, "amount": 1.0}"#, Some(0), 12);
        c.push(br#"{"id": "123", "amount": 1.0}"#, Some(0), 13);
        c.push(
            br#"{"id": -9223372036854775809, "amount": 1.0}"#,
            Some(0),
            14,
        );
        c.push(br#"{"id": 5, "amount": 1e400}"#, Some(0), 15);
        c.push(
            br#"{"id": 6, "amount": 1.0}{"id": 7, "amount": 2.0}"#,
            Some(0),
            16,
        );
        c.push(br#"{"id": 8, "amount": 8.0}"#, Some(0), 17);
        let mut bad = Vec::new();
        let b = d.decode(&c, &mut bad).unwrap().unwrap();
        assert_eq!(b.num_rows(), 2);
        let positions: Vec<u64> = bad.iter().map(|b| b.position).collect();
        assert_eq!(positions, vec![11, 12, 13, 14, 15, 16]);
        assert!(bad.iter().all(|b| b.reason.len() <= MAX_REASON_BYTES));
        // Lenient on request: Arrow's conversions.
        let mut d =
            RecordDecoder::with_spec(FileFormat::Jsonl, schema(), &crate::json_check::lenient())
                .unwrap();
        let mut c = RecordChunk::default();
        c.push(br#"{"id": 1.9, "amount": 1.0}"#, None, 1);
        c.push(br#"{"id": "123", "amount": 1.0}"#, None, 2);
        let b = d.decode(&c, &mut bad).unwrap().unwrap();
        assert_eq!(b.num_rows(), 2);
    }

    #[test]
    fn reasons_are_truncated() {
        let r = truncate_reason("é".repeat(2000));
        assert!(
            r.len() <= MAX_REASON_BYTES && r.ends_with('…'),
            "{}",
            r.len()
        );
        assert_eq!(truncate_reason("short".into()), "short");
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
