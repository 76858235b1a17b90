//! Avro records into Arrow batches, with `arrow-avro`'s streaming decoder.
//!
//! Two framings (see [`AvroSource`]):
//!
//! * the Confluent wire format — byte `0`, a 4-byte big-endian schema id,
//!   the Avro body — with writer schemas fetched from a schema registry by
//!   id (`GET {url}/schemas/ids/{id}`) the first time an id is seen, and
//!   kept for the run;
//! * Avro's single-object encoding — `C3 01`, the writer schema's 8-byte
//!   Rabin fingerprint, the body — with the schema from an `.avsc` file.
//!
//! Each writer schema decodes into its own Arrow columns, which are then
//! matched to the source's declared `schema:` by name and cast: a field the
//! writer schema lacks is NULL (so a field added in a newer schema version
//! appears once it is declared, and records of older versions read NULL);
//! fields not declared are dropped.
//!
//! A record that cannot be decoded is a dead letter with its partition,
//! offset and reason — not in the framing, an id the registry does not
//! know (or a schema that is not Avro), a body that is truncated or does
//! not match its schema — and the rest of the chunk decodes. The decoder
//! is fed one record at a time and checked to have taken exactly that
//! record's bytes as one row; after a bad record it is rebuilt and the
//! good records since the last flush are fed again, so each record is
//! decoded at most twice.
//!
//! While the registry cannot be reached, requests are retried with backoff
//! for [`retry_for`](crate::retry::retry_for), then the job fails.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use arrow::datatypes::SchemaRef;
use arrow_avro::reader::{Decoder, ReaderBuilder};
use arrow_avro::schema::{AvroSchema, Fingerprint, FingerprintAlgorithm, SchemaStore};
use shoal_dsl::AvroSource;
use shoal_runtime::{Result, RuntimeError};

use crate::format::{BadRecord, RecordChunk, truncate_reason};
use crate::schema_registry::{Lookup, SchemaRegistry, framed_id};

/// Rows per decoded batch (a chunk is at most one source batch, smaller).
const DECODE_BATCH: usize = 1 << 16;

/// Encodes rows as Avro records in the Confluent wire format, under a
/// schema derived from the rows' Arrow schema and registered (or found) in
/// a schema registry.
pub struct AvroEncoder {
    encoder: arrow_avro::writer::Encoder,
    id: u32,
}

impl std::fmt::Debug for AvroEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroEncoder").field("id", &self.id).finish()
    }
}

impl AvroEncoder {
    /// Derive the Avro schema of `schema`, register it under `subject` at
    /// the registry `url`, and encode with its id.
    pub fn registered(schema: &arrow::datatypes::Schema, url: &str, subject: &str) -> Result<Self> {
        let avro = AvroSchema::try_from(schema)
            .map_err(|e| RuntimeError::User(format!("no Avro schema for these columns: {e}")))?;
        let id = SchemaRegistry::new(url).register(subject, "AVRO", &avro.json_string)?;
        let mut md = schema.metadata().clone();
        md.insert(
            arrow_avro::schema::SCHEMA_METADATA_KEY.to_string(),
            avro.json_string.clone(),
        );
        let with_avro = arrow::datatypes::Schema::new_with_metadata(schema.fields().clone(), md);
        let encoder = arrow_avro::writer::WriterBuilder::new(with_avro)
            .with_fingerprint_strategy(arrow_avro::schema::FingerprintStrategy::Id(id))
            .build_encoder::<arrow_avro::writer::format::AvroSoeFormat>()
            .map_err(|e| RuntimeError::User(format!("avro encoder: {e}")))?;
        tracing::info!(subject, id, "avro schema registered");
        Ok(Self { encoder, id })
    }

    /// The registered schema's id.
    pub fn schema_id(&self) -> u32 {
        self.id
    }

    /// Append each row of `batch` as one record to `values`, followed by a
    /// separator byte, with its end (exclusive) in `ends`.
    pub fn encode(
        &mut self,
        batch: &RecordBatch,
        values: &mut Vec<u8>,
        ends: &mut Vec<usize>,
    ) -> Result<()> {
        self.encoder
            .encode(batch)
            .map_err(|e| RuntimeError::User(format!("avro encode: {e}")))?;
        let rows = self.encoder.flush();
        for r in rows.iter() {
            values.extend_from_slice(&r);
            ends.push(values.len());
            values.push(b'\n');
        }
        Ok(())
    }
}

/// Where writer schemas come from.
enum Schemas {
    Registry {
        registry: SchemaRegistry,
        known: HashMap<u32, String>,
        missing: HashMap<u32, String>,
    },
    File {
        json: String,
        fingerprint: u64,
    },
}

/// Decodes chunks of framed Avro records into batches of a declared schema.
pub struct AvroDecoder {
    schema: SchemaRef,
    schemas: Schemas,
    decoder: Option<Decoder>,
}

impl std::fmt::Debug for AvroDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroDecoder")
            .field("schema", &self.schema)
            .finish()
    }
}

fn avro_err(e: impl std::fmt::Display) -> String {
    truncate_reason(format!("bad avro: {e}"))
}

impl AvroDecoder {
    /// A decoder into `schema` for records framed as `source` says (a
    /// schema file is read, and checked to parse, now).
    pub fn new(schema: SchemaRef, source: &AvroSource) -> Result<Self> {
        let schemas = match source {
            AvroSource::Registry { url } => Schemas::Registry {
                registry: SchemaRegistry::new(url),
                known: HashMap::new(),
                missing: HashMap::new(),
            },
            AvroSource::SchemaFile(path) => {
                let json = std::fs::read_to_string(path).map_err(|e| {
                    RuntimeError::User(format!("cannot read avro_schema {}: {e}", path.display()))
                })?;
                let mut store = SchemaStore::new();
                let fp = store.register(AvroSchema::new(json.clone())).map_err(|e| {
                    RuntimeError::User(format!("avro_schema {}: {e}", path.display()))
                })?;
                let Fingerprint::Rabin(fingerprint) = fp else {
                    return Err(RuntimeError::Internal(
                        "expected a Rabin fingerprint".into(),
                    ));
                };
                Schemas::File { json, fingerprint }
            }
        };
        Ok(Self {
            schema,
            schemas,
            decoder: None,
        })
    }

    /// A fresh decoder knowing every writer schema seen so far.
    fn build(&self) -> Result<Decoder> {
        let store = match &self.schemas {
            Schemas::Registry { known, .. } => {
                let mut store = SchemaStore::new_with_type(FingerprintAlgorithm::Id);
                for (id, json) in known {
                    store
                        .set(Fingerprint::Id(*id), AvroSchema::new(json.clone()))
                        .map_err(|e| RuntimeError::External(format!("schema id {id}: {e}")))?;
                }
                store
            }
            Schemas::File { json, .. } => {
                let mut store = SchemaStore::new();
                store
                    .register(AvroSchema::new(json.clone()))
                    .map_err(|e| RuntimeError::User(format!("avro_schema: {e}")))?;
                store
            }
        };
        ReaderBuilder::new()
            .with_writer_schema_store(store)
            .with_batch_size(DECODE_BATCH)
            .build_decoder()
            .map_err(|e| RuntimeError::External(format!("avro decoder: {e}")))
    }

    /// Why record `r` cannot be decoded from its framing alone, if so.
    fn framing_problem(&self, r: &[u8]) -> Option<String> {
        match &self.schemas {
            Schemas::Registry { missing, .. } => match framed_id(r) {
                Ok(id) => missing.get(&id).cloned(),
                Err(why) => Some(why),
            },
            Schemas::File { fingerprint, .. } => {
                if r.len() < 10 || r[0] != 0xC3 || r[1] != 0x01 {
                    return Some(
                        "not in Avro's single-object encoding (C3 01 and a fingerprint expected)"
                            .into(),
                    );
                }
                let fp = u64::from_le_bytes(r[2..10].try_into().expect("8 bytes"));
                (fp != *fingerprint).then(|| {
                    format!("written with another schema (fingerprint {fp:016x}, avro_schema has {fingerprint:016x})")
                })
            }
        }
    }

    /// Learn the schemas of ids not seen before (registry framing).
    fn learn_ids(&mut self, chunk: &RecordChunk) -> Result<()> {
        let Schemas::Registry {
            registry,
            known,
            missing,
        } = &mut self.schemas
        else {
            return Ok(());
        };
        let mut new: HashSet<u32> = HashSet::new();
        for i in 0..chunk.len() {
            let r = chunk.record(i);
            if r.len() >= 5 && r[0] == 0 {
                let id = u32::from_be_bytes([r[1], r[2], r[3], r[4]]);
                if !known.contains_key(&id) && !missing.contains_key(&id) {
                    new.insert(id);
                }
            }
        }
        let mut learned = false;
        for id in new {
            match shoal_runtime::off_worker(|| registry.schema(id))? {
                Lookup::Found(s) if s.kind != "AVRO" => {
                    missing.insert(
                        id,
                        format!("schema id {id} is a {} schema, not Avro", s.kind),
                    );
                }
                Lookup::Found(s) => {
                    let json = s.text;
                    // A schema arrow-avro cannot use fails its records, not the job.
                    let mut probe = SchemaStore::new_with_type(FingerprintAlgorithm::Id);
                    match probe.set(Fingerprint::Id(id), AvroSchema::new(json.clone())) {
                        Ok(_) => {
                            tracing::info!(id, "avro writer schema fetched from the registry");
                            known.insert(id, json);
                            learned = true;
                        }
                        Err(e) => {
                            missing.insert(id, format!("schema id {id} cannot be read: {e}"));
                        }
                    }
                }
                Lookup::Unknown => {
                    missing.insert(id, format!("unknown schema id {id} (not in the registry)"));
                }
            }
        }
        if learned {
            self.decoder = None;
        }
        Ok(())
    }

    /// Decode a chunk of records; bad ones are appended to `bad`, in order.
    pub fn decode(
        &mut self,
        chunk: &RecordChunk,
        bad: &mut Vec<BadRecord>,
    ) -> Result<Option<RecordBatch>> {
        let first_bad = bad.len();
        if chunk.is_empty() {
            return Ok(None);
        }
        self.learn_ids(chunk)?;
        let mut dec = match self.decoder.take() {
            Some(d) => d,
            None => self.build()?,
        };
        let mut parts: Vec<(RecordBatch, Vec<usize>)> = Vec::new();
        // Records fed since the last flush, in order.
        let mut pending: Vec<usize> = Vec::new();
        for i in 0..chunk.len() {
            let r = chunk.record(i);
            if let Some(why) = self.framing_problem(r) {
                bad.push(BadRecord::binary(chunk, i, why));
                continue;
            }
            match feed(&mut dec, r, &mut parts, &mut pending) {
                Ok(()) => pending.push(i),
                Err(why) => {
                    let why = match &self.schemas {
                        Schemas::Registry { .. } => {
                            format!(
                                "schema id {}: {why}",
                                u32::from_be_bytes([r[1], r[2], r[3], r[4]])
                            )
                        }
                        Schemas::File { .. } => why,
                    };
                    bad.push(BadRecord::binary(chunk, i, why));
                    // The decoder may hold part of the bad record: start
                    // again and feed the good ones since the last flush.
                    dec = self.build()?;
                    let again = std::mem::take(&mut pending);
                    for &g in &again {
                        feed(&mut dec, chunk.record(g), &mut parts, &mut pending).map_err(|e| {
                            RuntimeError::Internal(format!(
                                "avro: a record that decoded failed again: {e}"
                            ))
                        })?;
                        pending.push(g);
                    }
                }
            }
        }
        flush(&mut dec, &mut parts, &mut pending).map_err(RuntimeError::Internal)?;
        self.decoder = Some(dec);
        // Each part has its writer schema's columns: match them to ours.
        let mut out = Vec::with_capacity(parts.len());
        for (batch, records) in parts {
            match self.project(&batch) {
                Ok(b) => out.push(b),
                Err(why) => {
                    for i in records {
                        bad.push(BadRecord::binary(chunk, i, why.clone()));
                    }
                }
            }
        }
        bad[first_bad..].sort_by_key(|b| b.position);
        match out.len() {
            0 => Ok(None),
            1 => Ok(out.pop()),
            _ => Ok(Some(arrow::compute::concat_batches(&self.schema, &out)?)),
        }
    }

    /// The declared columns from a decoded batch: by name, cast; NULL when
    /// the writer schema lacks a nullable one.
    fn project(&self, batch: &RecordBatch) -> std::result::Result<RecordBatch, String> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for f in self.schema.fields() {
            match batch.column_by_name(f.name()) {
                Some(c) => {
                    let c = if c.data_type() == f.data_type() {
                        Arc::clone(c)
                    } else {
                        arrow::compute::cast(c, f.data_type()).map_err(|e| {
                            format!(
                                "field `{}`: cannot read {} as {}: {e}",
                                f.name(),
                                c.data_type(),
                                f.data_type()
                            )
                        })?
                    };
                    if !f.is_nullable() && c.null_count() > 0 {
                        return Err(format!(
                            "field `{}` is null but the schema requires it",
                            f.name()
                        ));
                    }
                    columns.push(c);
                }
                None if f.is_nullable() => {
                    columns.push(new_null_array(f.data_type(), batch.num_rows()))
                }
                None => {
                    return Err(format!(
                        "field `{}` is not in the writer schema and the schema requires it",
                        f.name()
                    ));
                }
            }
        }
        RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(|e| e.to_string())
    }
}

/// Rows the decoder holds.
fn rows(dec: &Decoder) -> usize {
    dec.batch_size() - dec.capacity()
}

fn flush(
    dec: &mut Decoder,
    parts: &mut Vec<(RecordBatch, Vec<usize>)>,
    pending: &mut Vec<usize>,
) -> std::result::Result<(), String> {
    if let Some(b) = dec.flush().map_err(avro_err)? {
        parts.push((b, std::mem::take(pending)));
    }
    Ok(())
}

/// Feed one record; Ok when it became exactly one row.
fn feed(
    dec: &mut Decoder,
    r: &[u8],
    parts: &mut Vec<(RecordBatch, Vec<usize>)>,
    pending: &mut Vec<usize>,
) -> std::result::Result<(), String> {
    let mut before = rows(dec);
    let mut off = 0;
    loop {
        let n = match dec.decode(&r[off..]) {
            Ok(n) => n,
            // The body was complete: what follows is not another record.
            Err(_) if rows(dec) == before + 1 => {
                return Err(avro_err(format!(
                    "the record has bytes after its body that the schema does not use ({} in all)",
                    r.len()
                )));
            }
            Err(e) => return Err(avro_err(e)),
        };
        off += n;
        if dec.batch_is_full() {
            // Full, or a new writer schema: what came before goes first.
            flush(dec, parts, pending)?;
            before = 0;
            if off < r.len() {
                continue;
            }
        }
        if off == r.len() || n == 0 {
            break;
        }
    }
    if off < r.len() {
        return Err(avro_err(format!(
            "the record is cut short or has {} bytes the schema does not use",
            r.len() - off
        )));
    }
    if rows(dec) != before + 1 {
        return Err(avro_err("the record's body is incomplete"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use arrow_avro::schema::SCHEMA_METADATA_KEY;
    use arrow_avro::writer::WriterBuilder;
    use arrow_avro::writer::format::AvroSoeFormat;

    const V1: &str = r#"{"type":"record","name":"Txn","fields":[
        {"name":"id","type":"long"},{"name":"country","type":"string"}]}"#;

    /// One single-object encoded message per row, written by arrow-avro.
    fn messages(schema_json: &str, ids: &[i64], countries: &[&str]) -> Vec<Vec<u8>> {
        let mut md = std::collections::HashMap::new();
        md.insert(SCHEMA_METADATA_KEY.to_string(), schema_json.to_string());
        let schema = Schema::new_with_metadata(
            vec![
                Field::new("id", DataType::Int64, false),
                Field::new("country", DataType::Utf8, false),
            ],
            md,
        );
        ids.iter()
            .zip(countries)
            .map(|(id, c)| {
                let batch = RecordBatch::try_new(
                    Arc::new(schema.clone()),
                    vec![
                        Arc::new(Int64Array::from(vec![*id])),
                        Arc::new(StringArray::from(vec![*c])),
                    ],
                )
                .unwrap();
                let mut w = WriterBuilder::new(schema.clone())
                    .build::<_, AvroSoeFormat>(Vec::new())
                    .unwrap();
                w.write(&batch).unwrap();
                w.finish().unwrap();
                w.into_inner()
            })
            .collect()
    }

    fn decoder(declared: Vec<Field>) -> AvroDecoder {
        // A file of this call's own: tests run in parallel.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("txn.avsc");
        std::fs::write(&path, V1).unwrap();
        AvroDecoder::new(
            Arc::new(Schema::new(declared)),
            &AvroSource::SchemaFile(path),
        )
        .unwrap()
    }

    fn chunk(records: &[Vec<u8>]) -> RecordChunk {
        let mut c = RecordChunk::default();
        for (i, r) in records.iter().enumerate() {
            c.push(r, Some(3), 100 + i as u64);
        }
        c
    }

    #[test]
    fn records_decode_into_the_declared_columns() {
        let mut d = decoder(vec![
            Field::new("country", DataType::Utf8, false),
            Field::new("id", DataType::Int64, false),
            Field::new("channel", DataType::Utf8, true),
        ]);
        let recs = messages(V1, &[1, 2, 3], &["US", "DE", "FR"]);
        let mut bad = Vec::new();
        let b = d.decode(&chunk(&recs), &mut bad).unwrap().unwrap();
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(b.num_rows(), 3);
        assert_eq!(b.column(1).as_primitive::<Int64Type>().values(), &[1, 2, 3]);
        assert_eq!(b.column(0).as_string::<i32>().value(2), "FR");
        // A declared field the writer schema lacks is NULL.
        assert_eq!(b.column(2).null_count(), 3);
    }

    #[test]
    fn bad_records_are_dead_letters_and_the_rest_decodes() {
        let mut d = decoder(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("country", DataType::Utf8, false),
        ]);
        let mut recs = messages(V1, &[1, 2, 3, 4, 5], &["US", "DE", "FR", "JP", "BR"]);
        // Record 1 cut short, record 3 not framed, record 4 with junk after it.
        let cut = recs[1].len() - 2;
        recs[1].truncate(cut);
        recs[3] = b"{\"id\": 4}".to_vec();
        recs[4].extend_from_slice(&[7, 7, 7]);
        // A record written with another schema.
        let other = r#"{"type":"record","name":"Other","fields":[{"name":"id","type":"long"},{"name":"country","type":"string"}]}"#;
        recs.push(messages(other, &[6], &["XX"]).remove(0));
        recs.push(messages(V1, &[7], &["CA"]).remove(0));
        let mut bad = Vec::new();
        let b = d.decode(&chunk(&recs), &mut bad).unwrap().unwrap();
        assert_eq!(b.column(0).as_primitive::<Int64Type>().values(), &[1, 3, 7]);
        let got: Vec<(u64, Option<u32>)> = bad.iter().map(|b| (b.position, b.partition)).collect();
        assert_eq!(
            got,
            [
                (101, Some(3)),
                (103, Some(3)),
                (104, Some(3)),
                (105, Some(3))
            ]
        );
        assert!(bad[0].reason.contains("bad avro"), "{}", bad[0].reason);
        assert!(bad[1].reason.contains("single-object"), "{}", bad[1].reason);
        assert!(bad[2].reason.contains("does not use"), "{}", bad[2].reason);
        assert!(
            bad[3].reason.contains("another schema"),
            "{}",
            bad[3].reason
        );
        assert!(bad[0].record.starts_with("hex:c301"), "{}", bad[0].record);
        // The decoder goes on after bad records.
        let again = messages(V1, &[8], &["MX"]);
        let b = d.decode(&chunk(&again), &mut bad).unwrap().unwrap();
        assert_eq!(b.column(0).as_primitive::<Int64Type>().values(), &[8]);
    }
}
