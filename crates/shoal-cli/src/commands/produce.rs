//! `shoal produce TOPIC [--key FIELD] [FILE|-]`: JSON lines into a topic.
//!
//! Every non-blank line must be a JSON object; its bytes (trimmed) become
//! the record value, unchanged. With `--key FIELD` the key is the field's
//! value (a string's UTF-8, a number's decimal text), so the partition is
//! Kafka's murmur2 of it; the field must be present and a string or number.
//! The timestamp is the time the line was read, in ms. Lines are appended
//! in batches of [`BATCH_RECORDS`] (or [`BATCH_BYTES`]). A bad line stops
//! the command with exit 2 after appending the good lines before it, and the
//! message says how many records were produced.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use shoal_log::{Producer, RecordRef};

use super::{open_log, topic_error};
use crate::exit::{CliResult, Failure};
use crate::table;

/// Records per append call.
const BATCH_RECORDS: usize = 1000;
/// Bytes of values per append call (whichever limit comes first).
const BATCH_BYTES: usize = 4 << 20;

pub fn produce(
    topic: &str,
    file: &Path,
    key: Option<&str>,
    data_dir: Option<PathBuf>,
    json: bool,
) -> CliResult {
    let log = open_log(data_dir, false)?;
    let partitions = log.partition_count(topic).map_err(|e| {
        topic_error(
            e,
            &format!("create it first: shoal topic create {topic} --partitions N"),
        )
    })?;
    let stdin = file == Path::new("-");
    let source = if stdin {
        "stdin".to_owned()
    } else {
        file.display().to_string()
    };
    let mut input: Box<dyn BufRead> = if stdin {
        Box::new(std::io::stdin().lock())
    } else {
        let f = File::open(file)
            .map_err(|e| Failure::BadInput(format!("error: cannot open {source}: {e}")))?;
        Box::new(BufReader::with_capacity(1 << 20, f))
    };

    let mut out = Output {
        producer: log.producer(),
        topic,
        batch: Batch::default(),
        per_partition: vec![0; partitions as usize],
        produced: 0,
    };
    let mut line = Vec::new();
    let mut line_no = 0u64;
    loop {
        line.clear();
        // Bounded: a line without an end (`/dev/zero`) is not buffered whole.
        let n = std::io::Read::take(&mut input, MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| anyhow::anyhow!("reading {source}: {e}"))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if line.len() as u64 > MAX_LINE_BYTES {
            out.flush()?;
            return Err(Failure::BadInput(format!(
                "error: {source}, line {line_no}: longer than {} MiB, the largest record `shoal produce` takes\n  \
                 {} records (from the lines before line {line_no}) were produced to {topic}; \
                 nothing from line {line_no} on",
                MAX_LINE_BYTES >> 20,
                out.produced
            )));
        }
        let mut text = line.trim_ascii();
        if line_no == 1 {
            text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
        }
        if text.is_empty() {
            continue;
        }
        match record_key(text, key) {
            Ok(k) => out.batch.push(k.as_deref(), text),
            Err(reason) => {
                out.flush()?;
                return Err(Failure::BadInput(format!(
                    "error: {source}, line {line_no}: {reason}\n  \
                     {} records (from the lines before line {line_no}) were produced to {topic}; \
                     nothing from line {line_no} on",
                    out.produced
                )));
            }
        }
        if out.batch.len() >= BATCH_RECORDS || out.batch.data.len() >= BATCH_BYTES {
            out.flush()?;
        }
    }
    out.flush()?;
    log.flush()?;
    if json {
        table::print_json(&json!({
            "topic": topic,
            "records": out.produced,
            "partitions": out.per_partition,
        }));
    } else {
        eprintln!("produced {} records to {topic}", out.produced);
    }
    Ok(())
}

/// The longest input line taken (one record), in bytes.
const MAX_LINE_BYTES: u64 = 16 << 20;

/// Checks that `line` is a JSON object and returns its key, if `field` is given.
fn record_key(line: &[u8], field: Option<&str>) -> Result<Option<String>, String> {
    let value: Value = serde_json::from_slice(line).map_err(|e| {
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_owned();
        format!("not valid JSON at column {}: {msg}", e.column())
    })?;
    let Value::Object(mut obj) = value else {
        return Err(format!("expected a JSON object, got {}", kind(&value)));
    };
    let Some(field) = field else {
        return Ok(None);
    };
    match obj.remove(field) {
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(v) => Err(format!(
            "key field {field:?} is {}; expected a string or a number",
            kind(&v)
        )),
        None => Err(format!("no key field {field:?} in the object")),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Records waiting for the next append, stored in one buffer.
#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    records: Vec<(Option<Range<usize>>, Range<usize>, i64)>,
}

impl Batch {
    fn push(&mut self, key: Option<&str>, value: &[u8]) {
        let key = key.map(|k| {
            let start = self.data.len();
            self.data.extend_from_slice(k.as_bytes());
            start..self.data.len()
        });
        let start = self.data.len();
        self.data.extend_from_slice(value);
        self.records.push((key, start..self.data.len(), now_ms()));
    }

    fn len(&self) -> usize {
        self.records.len()
    }

    fn clear(&mut self) {
        self.data.clear();
        self.records.clear();
    }
}

/// The producer and what it has produced so far.
struct Output<'a> {
    producer: Producer,
    topic: &'a str,
    batch: Batch,
    per_partition: Vec<u64>,
    produced: u64,
}

impl Output<'_> {
    /// Appends the batch with one call.
    fn flush(&mut self) -> CliResult {
        if self.batch.len() == 0 {
            return Ok(());
        }
        let data = &self.batch.data;
        let refs: Vec<RecordRef<'_>> = self
            .batch
            .records
            .iter()
            .map(|(k, v, ts)| (k.clone().map(|k| &data[k]), &data[v.clone()], *ts))
            .collect();
        let placed = self.producer.append(self.topic, &refs)?;
        for a in &placed {
            self.per_partition[a.partition as usize] += 1;
        }
        self.produced += placed.len() as u64;
        self.batch.clear();
        Ok(())
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_string_utf8_or_number_text() {
        assert_eq!(
            record_key(br#"{"k":"card-1"}"#, Some("k")),
            Ok(Some("card-1".into()))
        );
        assert_eq!(record_key(br#"{"k":42}"#, Some("k")), Ok(Some("42".into())));
        assert_eq!(record_key(br#"{"k":42}"#, None), Ok(None));
        assert!(record_key(br#"{"k":true}"#, Some("k")).is_err());
        assert!(record_key(br#"{"x":1}"#, Some("k")).is_err());
    }

    #[test]
    fn rejects_non_objects_and_bad_json() {
        assert_eq!(
            record_key(b"[1,2]", None),
            Err("expected a JSON object, got an array".into())
        );
        let e = record_key(b"{\"a\":", None).unwrap_err();
        assert!(e.starts_with("not valid JSON at column"), "{e}");
    }
}
