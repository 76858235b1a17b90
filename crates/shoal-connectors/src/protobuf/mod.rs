//! Protobuf records into Arrow batches, with `prost-reflect`'s dynamic
//! messages and `protox` (a `.proto` compiler in Rust: no `protoc`).
//!
//! Two ways to know the message type (see [`ProtoSource`]):
//!
//! * the Confluent wire format — byte `0`, a 4-byte big-endian schema id,
//!   the message indexes (zigzag varints: a count, then the path to the
//!   message type inside the schema; a lone `0` is the first message), the
//!   message — with the `.proto` schema fetched from a schema registry by id
//!   the first time the id is seen (its references too), compiled once and
//!   kept for the run;
//! * `proto_schema: { file, message }`: each record is one plain message of
//!   that type, compiled from the file (and its imports, relative to its
//!   folder; Google's well-known types are built in) when the job starts.
//!
//! Columns are matched to the message's fields by name: a field the message
//! type lacks, or a field with presence (a message, `optional`, proto2) that
//! is not set, is NULL; proto3 scalars without presence read their value,
//! which is the default when it was not sent. Conversions are lossless only:
//! any integer into `int64`, into `int32` when it fits, into `float64` when
//! exact (|x| ≤ 2^53); enums as their number, or their name into `utf8`;
//! `google.protobuf.Timestamp` or an integer into the timestamp types.
//!
//! A record that cannot be read is a dead letter with its partition, offset,
//! schema id and reason (not in the framing, an unknown id or a schema that
//! is not Protobuf, message indexes the schema lacks, bytes that are not a
//! message of the type, a required field missing or of another type), and
//! the rest of the chunk decodes.

mod columns;
pub mod encode;
pub(crate) mod plan;
mod wire;

use std::collections::HashMap;
use std::path::Path;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
/// A message type (from [`find_message`]).
pub use prost_reflect::MessageDescriptor;
use prost_reflect::prost::encoding::decode_varint;
use prost_reflect::{DescriptorPool, FileDescriptor};
use shoal_dsl::ProtoSource;
use shoal_runtime::{Result, RuntimeError};

use crate::format::{BadRecord, RecordChunk};
use crate::schema_registry::{Lookup, SchemaRegistry, framed_id};
use columns::{Plan, Rows};

/// Compile `path` (imports resolved next to it, and Google's well-known
/// types).
pub fn compile_file(path: &Path) -> std::result::Result<DescriptorPool, String> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| format!("{} is not a file", path.display()))?;
    let mut compiler = protox::Compiler::new([dir]).map_err(|e| e.to_string())?;
    compiler
        .open_file(name)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(compiler.descriptor_pool())
}

/// The message type `message` (full name) of a compiled file.
pub fn find_message(
    pool: &DescriptorPool,
    message: &str,
    path: &Path,
) -> std::result::Result<MessageDescriptor, String> {
    pool.get_message_by_name(message).ok_or_else(|| {
        let names: Vec<String> = pool
            .all_messages()
            .filter(|m| !m.full_name().starts_with("google.protobuf."))
            .map(|m| m.full_name().to_string())
            .collect();
        format!(
            "no message `{message}` in {} (it has: {})",
            path.display(),
            names.join(", ")
        )
    })
}

/// [`compile_file`], then [`find_message`].
pub fn message_from_file(
    path: &Path,
    message: &str,
) -> std::result::Result<MessageDescriptor, String> {
    find_message(&compile_file(path)?, message, path)
}

/// Whether the declared columns can be read from `message` (names, and
/// types as far as the message tells them).
pub fn check_columns(
    schema: &SchemaRef,
    message: MessageDescriptor,
) -> std::result::Result<(), String> {
    Plan::new(schema, message).map(|_| ())
}

/// Files given as source text, by import name, for the compiler.
struct Sources(HashMap<String, String>);

impl protox::file::FileResolver for Sources {
    fn open_file(&self, name: &str) -> std::result::Result<protox::file::File, protox::Error> {
        match self.0.get(name) {
            Some(text) => protox::file::File::from_source(name, text),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// Compile a registry schema and its references: the main file.
fn compile_registered(
    registry: &SchemaRegistry,
    id: u32,
    text: String,
    references: Vec<(String, String, i64)>,
) -> Result<std::result::Result<FileDescriptor, String>> {
    let main = format!("schema-id-{id}.proto");
    let mut files = HashMap::new();
    let mut todo = references;
    while let Some((name, subject, version)) = todo.pop() {
        if files.contains_key(&name) || name.starts_with("google/protobuf/") {
            continue;
        }
        match registry.version(&subject, version)? {
            Some(r) => {
                todo.extend(r.references);
                files.insert(name, r.text);
            }
            None => {
                return Ok(Err(format!(
                    "schema id {id}: its reference {name} ({subject} version {version}) is not in the registry"
                )));
            }
        }
    }
    files.insert(main.clone(), text);
    let mut resolver = protox::file::ChainFileResolver::new();
    resolver.add(Sources(files));
    resolver.add(protox::file::GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    if let Err(e) = compiler.open_file(&main) {
        return Ok(Err(format!("schema id {id} does not compile: {e}")));
    }
    let pool: DescriptorPool = compiler.descriptor_pool();
    Ok(pool
        .get_file_by_name(&main)
        .ok_or_else(|| format!("schema id {id}: compiled, but its file is missing")))
}

/// The message type at `indexes` in `file` (the wire format's path).
fn message_at(file: &FileDescriptor, indexes: &[i32]) -> Option<MessageDescriptor> {
    let (&first, rest) = indexes.split_first()?;
    let mut m = file.messages().nth(usize::try_from(first).ok()?)?;
    for &i in rest {
        let child = m.child_messages().nth(usize::try_from(i).ok()?)?;
        m = child;
    }
    Some(m)
}

/// The message indexes after the schema id, and the message's offset.
fn message_indexes(r: &[u8], out: &mut Vec<i32>) -> std::result::Result<usize, String> {
    fn zigzag(buf: &mut &[u8]) -> std::result::Result<i64, String> {
        let v = decode_varint(buf)
            .map_err(|_| "bad message indexes (a varint is cut short)".to_string())?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }
    out.clear();
    let mut buf = &r[5..];
    let count = zigzag(&mut buf)?;
    if count == 0 {
        out.push(0);
    } else if !(1..=64).contains(&count) {
        return Err(format!("bad message indexes (a count of {count})"));
    } else {
        for _ in 0..count {
            let i = zigzag(&mut buf)?;
            out.push(i32::try_from(i).map_err(|_| format!("bad message index {i}"))?);
        }
    }
    Ok(r.len() - buf.len())
}

/// Where message types come from.
enum Schemas {
    Registry {
        registry: SchemaRegistry,
        /// Schema id → its compiled file, or why its records are unreadable.
        files: HashMap<u32, std::result::Result<FileDescriptor, String>>,
        /// Schema id → (message indexes, how that type is read).
        plans: HashMap<u32, Vec<(Vec<i32>, std::result::Result<Plan, String>)>>,
    },
    File(Plan),
}

/// Decodes chunks of protobuf records into batches of a declared schema.
pub struct ProtoDecoder {
    schema: SchemaRef,
    schemas: Schemas,
    rows: Rows,
    indexes: Vec<i32>,
}

impl std::fmt::Debug for ProtoDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtoDecoder")
            .field("schema", &self.schema)
            .finish()
    }
}

impl ProtoDecoder {
    /// A decoder into `schema` for records as `source` says (a schema file
    /// is compiled, and its message checked against `schema`, now).
    pub fn new(schema: SchemaRef, source: &ProtoSource) -> Result<Self> {
        let rows = Rows::new(schema.clone()).map_err(RuntimeError::User)?;
        let schemas = match source {
            ProtoSource::Registry { url } => Schemas::Registry {
                registry: SchemaRegistry::new(url),
                files: HashMap::new(),
                plans: HashMap::new(),
            },
            ProtoSource::SchemaFile { path, message } => {
                let m = message_from_file(path, message).map_err(RuntimeError::User)?;
                Schemas::File(Plan::new(&schema, m).map_err(RuntimeError::User)?)
            }
        };
        Ok(Self {
            schema,
            schemas,
            rows,
            indexes: Vec::new(),
        })
    }

    /// Fetch and compile the schemas of ids not seen before.
    fn learn_ids(&mut self, chunk: &RecordChunk) -> Result<()> {
        let Schemas::Registry {
            registry, files, ..
        } = &mut self.schemas
        else {
            return Ok(());
        };
        for i in 0..chunk.len() {
            let Ok(id) = framed_id(chunk.record(i)) else {
                continue;
            };
            if files.contains_key(&id) {
                continue;
            }
            let file = shoal_runtime::off_worker(|| match registry.schema(id)? {
                Lookup::Unknown => Ok(Err(format!("unknown schema id {id} (not in the registry)"))),
                Lookup::Found(s) if s.kind != "PROTOBUF" => Ok(Err(format!(
                    "schema id {id} is a {} schema, not Protobuf",
                    s.kind
                ))),
                Lookup::Found(s) => compile_registered(registry, id, s.text, s.references),
            })?;
            match &file {
                Ok(f) => tracing::info!(
                    id,
                    file = f.name(),
                    "protobuf schema fetched from the registry"
                ),
                Err(why) => {
                    tracing::warn!(id, reason = %why, "protobuf schema unusable; its records go to the dead letters")
                }
            }
            files.insert(id, file);
        }
        Ok(())
    }

    /// Read record `r`: its message type's plan and the message bytes.
    fn read(&mut self, r: &[u8]) -> std::result::Result<(), String> {
        let registry = matches!(self.schemas, Schemas::Registry { .. });
        let (plan, body) = match &mut self.schemas {
            Schemas::File(plan) => (&*plan, r),
            Schemas::Registry { files, plans, .. } => {
                let id = framed_id(r)?;
                let file = match files.get(&id) {
                    Some(Ok(f)) => f,
                    Some(Err(why)) => return Err(why.clone()),
                    None => return Err(format!("schema id {id} was not fetched")),
                };
                let start = message_indexes(r, &mut self.indexes)
                    .map_err(|why| format!("schema id {id}: {why}"))?;
                let known = plans.entry(id).or_default();
                let at = match known.iter().position(|(ix, _)| *ix == self.indexes) {
                    Some(at) => at,
                    None => {
                        let plan = match message_at(file, &self.indexes) {
                            Some(m) => Plan::new(&self.schema, m),
                            None => Err(format!(
                                "schema id {id} has no message at indexes {:?}",
                                self.indexes
                            )),
                        };
                        known.push((self.indexes.clone(), plan));
                        known.len() - 1
                    }
                };
                match &known[at].1 {
                    Ok(plan) => (plan, &r[start..]),
                    Err(why) => return Err(format!("schema id {id}: {why}")),
                }
            }
        };
        self.rows.append(plan, body).map_err(|(unreadable, why)| {
            if unreadable {
                return format!("not a {} message: {why}", plan.message().full_name());
            }
            match framed_id(r) {
                Ok(id) if registry => format!("schema id {id}: {why}"),
                _ => why,
            }
        })
    }

    /// Decode a chunk of records; bad ones are appended to `bad`, in order.
    pub fn decode(
        &mut self,
        chunk: &RecordChunk,
        bad: &mut Vec<BadRecord>,
    ) -> Result<Option<RecordBatch>> {
        if chunk.is_empty() {
            return Ok(None);
        }
        self.learn_ids(chunk)?;
        for i in 0..chunk.len() {
            if let Err(why) = self.read(chunk.record(i)) {
                bad.push(BadRecord::binary(chunk, i, why));
            }
        }
        if self.rows.len() == 0 {
            return Ok(None);
        }
        Ok(Some(self.rows.finish()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{
        DataType, Field, Int64Type, Schema, TimeUnit, TimestampMillisecondType,
    };
    use prost_reflect::prost::Message;
    use prost_reflect::{DynamicMessage, Value};
    use std::sync::Arc;

    const PROTO: &str = r#"
syntax = "proto3";
package shoal.test;
import "google/protobuf/timestamp.proto";
enum Channel { WEB = 0; POS = 1; APP = 2; }
message Txn {
  string txn_id = 1;
  int64 card_id = 2;
  double amount = 3;
  google.protobuf.Timestamp ts = 4;
  Channel channel = 5;
  optional string note = 6;
  repeated string tags = 7;
  uint64 big = 8;
  message Inner { int64 x = 1; }
}
message Refund { string refund_id = 1; }
"#;

    /// The `.proto` in a folder of the test's own, and its Txn type.
    fn txn_type() -> (tempfile::TempDir, std::path::PathBuf, MessageDescriptor) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("txn.proto");
        std::fs::write(&path, PROTO).unwrap();
        let m = message_from_file(&path, "shoal.test.Txn").unwrap();
        (dir, path, m)
    }

    fn txn(m: &MessageDescriptor, i: i64, note: Option<&str>, nanos: i32) -> Vec<u8> {
        let mut msg = DynamicMessage::new(m.clone());
        msg.set_field_by_name("txn_id", Value::String(format!("t{i}")));
        msg.set_field_by_name("card_id", Value::I64(i % 7));
        msg.set_field_by_name("amount", Value::F64(i as f64 * 1.5));
        let ts_type = m.get_field_by_name("ts").unwrap().kind();
        let mut ts = DynamicMessage::new(ts_type.as_message().unwrap().clone());
        ts.set_field_by_name("seconds", Value::I64(1_767_225_600 + i));
        ts.set_field_by_name("nanos", Value::I32(nanos));
        msg.set_field_by_name("ts", Value::Message(ts));
        msg.set_field_by_name("channel", Value::EnumNumber((i % 3) as i32));
        if let Some(n) = note {
            msg.set_field_by_name("note", Value::String(n.into()));
        }
        msg.encode_to_vec()
    }

    fn declared() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("txn_id", DataType::Utf8, false),
            Field::new("card_id", DataType::Int64, false),
            Field::new("amount", DataType::Float64, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            Field::new("channel", DataType::Utf8, false),
            Field::new("note", DataType::Utf8, true),
            Field::new("not_in_message", DataType::Int64, true),
        ]))
    }

    fn chunk(records: &[Vec<u8>]) -> RecordChunk {
        let mut c = RecordChunk::default();
        for (i, r) in records.iter().enumerate() {
            c.push(r, Some(2), 50 + i as u64);
        }
        c
    }

    #[test]
    fn messages_decode_into_the_declared_columns() {
        let (_dir, path, m) = txn_type();
        let source = ProtoSource::SchemaFile {
            path,
            message: "shoal.test.Txn".into(),
        };
        let mut d = ProtoDecoder::new(declared(), &source).unwrap();
        let records = vec![txn(&m, 1, None, 0), txn(&m, 2, Some("hi"), 250_000_000)];
        let mut bad = Vec::new();
        let b = d.decode(&chunk(&records), &mut bad).unwrap().unwrap();
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(b.num_rows(), 2);
        let ids: &StringArray = b.column(0).as_string();
        assert_eq!(ids.value(1), "t2");
        let cards: &Int64Array = b.column(1).as_primitive::<Int64Type>();
        assert_eq!(cards.values(), &[1, 2]);
        let amounts: &Float64Array = b.column(2).as_primitive();
        assert_eq!(amounts.value(1), 3.0);
        let ts = b.column(3).as_primitive::<TimestampMillisecondType>();
        assert_eq!(ts.value(1), 1_767_225_602_250);
        let channels: &StringArray = b.column(4).as_string();
        assert_eq!((channels.value(0), channels.value(1)), ("POS", "APP"));
        // `optional` not set is NULL; a column the message lacks is NULL.
        let notes: &StringArray = b.column(5).as_string();
        assert!(notes.is_null(0));
        assert_eq!(notes.value(1), "hi");
        assert_eq!(b.column(6).null_count(), 2);
    }

    /// Every scalar kind, written by prost-reflect's encoder with random
    /// values (some fields left out), read back by the wire reader: each
    /// column holds what was set, the kind's default when a field without
    /// presence is left out, NULL when one with presence is.
    #[test]
    fn every_kind_reads_as_prost_reflect_writes_it() {
        use arrow::array::{BooleanArray, Float32Array};
        use rand::{Rng, SeedableRng};
        const ALL: &str = r#"
syntax = "proto3";
package shoal.kinds;
import "google/protobuf/timestamp.proto";
enum E { ZERO = 0; ONE = 1; MINUS = -3; }
message All {
  int32 i32 = 1; int64 i64 = 2; uint32 u32 = 3; uint64 u64 = 4;
  sint32 s32 = 5; sint64 s64 = 6; fixed32 f32x = 7; fixed64 f64x = 8;
  sfixed32 sf32 = 9; sfixed64 sf64 = 10; bool b = 11; float fl = 12;
  double db = 13; string st = 14; E e = 15; google.protobuf.Timestamp ts = 16;
  optional int64 opt = 17; repeated int64 skipped = 18; bytes also_skipped = 19;
  int64 high = 4000;
}
"#;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("all.proto");
        std::fs::write(&path, ALL).unwrap();
        let m = message_from_file(&path, "shoal.kinds.All").unwrap();
        let ints = [
            "i32", "i64", "u32", "u64", "s32", "s64", "f32x", "f64x", "sf32", "sf64", "high",
        ];
        let mut fields: Vec<Field> = ints
            .iter()
            .map(|n| Field::new(*n, DataType::Int64, false))
            .collect();
        fields.extend([
            Field::new("b", DataType::Boolean, false),
            Field::new("fl", DataType::Float32, false),
            Field::new("db", DataType::Float64, false),
            Field::new("st", DataType::Utf8, false),
            Field::new("e", DataType::Utf8, false),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("opt", DataType::Int64, true),
        ]);
        let schema = Arc::new(Schema::new(fields));
        let source = ProtoSource::SchemaFile {
            path: path.clone(),
            message: "shoal.kinds.All".into(),
        };
        let mut d = ProtoDecoder::new(schema, &source).unwrap();
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(7);
        for round in 0..20 {
            let mut records = Vec::new();
            let mut want: Vec<Vec<Option<String>>> = Vec::new();
            for _ in 0..200 {
                let mut msg = DynamicMessage::new(m.clone());
                let mut row: Vec<Option<String>> = Vec::new();
                let set = |msg: &mut DynamicMessage, name: &str, v: Value| {
                    msg.set_field_by_name(name, v);
                };
                for name in ints {
                    let present = rng.random_bool(0.8);
                    let x: i64 = match rng.random_range(0..4) {
                        0 => 0,
                        1 => rng.random_range(-5..5),
                        2 => rng.random::<i32>().into(),
                        _ => rng.random::<i64>() >> rng.random_range(0..40),
                    };
                    let v = match name {
                        "i32" | "s32" | "sf32" => Value::I32(x as i32),
                        "u32" | "f32x" => Value::U32(x as u32),
                        "u64" | "f64x" => Value::U64((x as u64) >> 1),
                        _ => Value::I64(x),
                    };
                    let shown = match &v {
                        Value::I32(x) => i64::from(*x),
                        Value::U32(x) => i64::from(*x),
                        Value::U64(x) => *x as i64,
                        Value::I64(x) => *x,
                        _ => unreachable!(),
                    };
                    if present {
                        set(&mut msg, name, v);
                        row.push(Some(shown.to_string()));
                    } else {
                        row.push(Some("0".into()));
                    }
                }
                let b = rng.random_bool(0.5);
                set(&mut msg, "b", Value::Bool(b));
                row.push(Some(b.to_string()));
                let fl: f32 = rng.random_range(-1e6..1e6);
                set(&mut msg, "fl", Value::F32(fl));
                row.push(Some(fl.to_string()));
                let db: f64 = rng.random_range(-1e12..1e12);
                set(&mut msg, "db", Value::F64(db));
                row.push(Some(db.to_string()));
                let st: String = (0..rng.random_range(0..12))
                    .map(|_| ['a', 'é', '字', '🦀', ' '][rng.random_range(0..5)])
                    .collect();
                set(&mut msg, "st", Value::String(st.clone()));
                row.push(Some(st));
                let (number, name) =
                    [(0, "ZERO"), (1, "ONE"), (-3, "MINUS")][rng.random_range(0..3)];
                if number != 0 || rng.random_bool(0.5) {
                    set(&mut msg, "e", Value::EnumNumber(number));
                }
                row.push(Some(name.to_string()));
                if rng.random_bool(0.7) {
                    let ts_type = m.get_field_by_name("ts").unwrap().kind();
                    let mut ts = DynamicMessage::new(ts_type.as_message().unwrap().clone());
                    let secs: i64 = rng.random_range(-2_000_000_000..4_000_000_000);
                    let millis: i32 = rng.random_range(0..1000);
                    ts.set_field_by_name("seconds", Value::I64(secs));
                    ts.set_field_by_name("nanos", Value::I32(millis * 1_000_000));
                    set(&mut msg, "ts", Value::Message(ts));
                    row.push(Some((secs * 1000 + i64::from(millis)).to_string()));
                } else {
                    row.push(None);
                }
                if rng.random_bool(0.5) {
                    let o: i64 = rng.random();
                    set(&mut msg, "opt", Value::I64(o));
                    row.push(Some(o.to_string()));
                } else {
                    row.push(None);
                }
                set(
                    &mut msg,
                    "skipped",
                    Value::List(vec![Value::I64(1), Value::I64(-2)]),
                );
                set(
                    &mut msg,
                    "also_skipped",
                    Value::Bytes(vec![0xff, 0xfe].into()),
                );
                records.push(msg.encode_to_vec());
                want.push(row);
            }
            let mut bad = Vec::new();
            let b = d.decode(&chunk(&records), &mut bad).unwrap().unwrap();
            assert!(bad.is_empty(), "round {round}: {bad:?}");
            for (r, row) in want.iter().enumerate() {
                let got: Vec<Option<String>> = (0..b.num_columns())
                    .map(|c| {
                        let col = b.column(c);
                        if col.is_null(r) {
                            return None;
                        }
                        Some(match col.data_type() {
                            DataType::Int64 => col.as_primitive::<Int64Type>().value(r).to_string(),
                            DataType::Boolean => col
                                .as_any()
                                .downcast_ref::<BooleanArray>()
                                .unwrap()
                                .value(r)
                                .to_string(),
                            DataType::Float32 => col
                                .as_any()
                                .downcast_ref::<Float32Array>()
                                .unwrap()
                                .value(r)
                                .to_string(),
                            DataType::Float64 => col
                                .as_primitive::<arrow::datatypes::Float64Type>()
                                .value(r)
                                .to_string(),
                            DataType::Utf8 => col.as_string::<i32>().value(r).to_string(),
                            _ => col
                                .as_primitive::<TimestampMillisecondType>()
                                .value(r)
                                .to_string(),
                        })
                    })
                    .collect();
                assert_eq!(&got, row, "round {round} row {r}");
            }
        }
    }

    #[test]
    fn bad_records_are_dead_letters_and_the_rest_decodes() {
        let (_dir, path, m) = txn_type();
        let source = ProtoSource::SchemaFile {
            path,
            message: "shoal.test.Txn".into(),
        };
        let mut d = ProtoDecoder::new(declared(), &source).unwrap();
        let mut cut = txn(&m, 3, Some("long enough note"), 0);
        cut.truncate(cut.len() - 4);
        let records = vec![
            txn(&m, 1, None, 0),
            vec![0xff, 0xff, 0xff],
            txn(&m, 2, None, 1), // 1 ns: finer than the column's milliseconds
            cut,
            txn(&m, 4, None, 0),
        ];
        let mut bad = Vec::new();
        let b = d.decode(&chunk(&records), &mut bad).unwrap().unwrap();
        let cards: &Int64Array = b.column(1).as_primitive::<Int64Type>();
        assert_eq!(cards.values(), &[1, 4]);
        let at: Vec<(Option<u32>, u64)> = bad.iter().map(|b| (b.partition, b.position)).collect();
        assert_eq!(at, vec![(Some(2), 51), (Some(2), 52), (Some(2), 53)]);
        assert!(
            bad[0].reason.starts_with("not a shoal.test.Txn message"),
            "{}",
            bad[0].reason
        );
        assert!(
            bad[1].reason.contains("finer than a millisecond"),
            "{}",
            bad[1].reason
        );
        assert!(
            bad[2].reason.starts_with("not a shoal.test.Txn message"),
            "{}",
            bad[2].reason
        );
        assert_eq!(bad[0].record, "hex:ffffff");
    }

    #[test]
    fn columns_the_message_cannot_fill_are_refused() {
        let (_dir, _path, m) = txn_type();
        let one = |name: &str, t: DataType, nullable: bool| {
            let s: SchemaRef = Arc::new(Schema::new(vec![Field::new(name, t, nullable)]));
            check_columns(&s, m.clone())
        };
        assert!(one("card_id", DataType::Int64, false).is_ok());
        assert!(one("card_id", DataType::Float64, false).is_ok());
        let e = one("amount", DataType::Int64, false).unwrap_err();
        assert!(
            e.contains("field `amount` of shoal.test.Txn is double, which cannot be read as Int64"),
            "{e}"
        );
        let e = one("tags", DataType::Utf8, true).unwrap_err();
        assert!(e.contains("repeated"), "{e}");
        let e = one("merchant", DataType::Utf8, false).unwrap_err();
        assert!(
            e.contains("not in message shoal.test.Txn and the schema requires it"),
            "{e}"
        );
        assert!(one("merchant", DataType::Utf8, true).is_ok());
        let e = message_from_file(&_path, "shoal.test.Nope").unwrap_err();
        assert!(
            e.contains("it has: shoal.test.Txn, shoal.test.Txn.Inner, shoal.test.Refund"),
            "{e}"
        );
    }

    #[test]
    fn a_uint64_beyond_int64_is_a_dead_letter() {
        let (_dir, path, m) = txn_type();
        let schema: SchemaRef =
            Arc::new(Schema::new(vec![Field::new("big", DataType::Int64, false)]));
        let source = ProtoSource::SchemaFile {
            path,
            message: "shoal.test.Txn".into(),
        };
        let mut d = ProtoDecoder::new(schema, &source).unwrap();
        let mut ok = DynamicMessage::new(m.clone());
        ok.set_field_by_name("big", Value::U64(i64::MAX as u64));
        let mut over = DynamicMessage::new(m.clone());
        over.set_field_by_name("big", Value::U64(i64::MAX as u64 + 1));
        let mut bad = Vec::new();
        let b = d
            .decode(
                &chunk(&[ok.encode_to_vec(), over.encode_to_vec()]),
                &mut bad,
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            b.column(0).as_primitive::<Int64Type>().values(),
            &[i64::MAX]
        );
        assert_eq!(bad.len(), 1);
        assert!(
            bad[0]
                .reason
                .contains("9223372036854775808 does not fit int64"),
            "{}",
            bad[0].reason
        );
    }

    #[test]
    fn message_indexes_follow_the_confluent_framing() {
        let mut ix = Vec::new();
        // A lone 0: the first message.
        assert_eq!(message_indexes(&[0, 0, 0, 0, 9, 0, 0xAA], &mut ix), Ok(6));
        assert_eq!(ix, vec![0]);
        // Count 2 (zigzag 4), then 1 (2) and 0 (0): the first nested type of the second message.
        assert_eq!(
            message_indexes(&[0, 0, 0, 0, 9, 4, 2, 0, 0xAA], &mut ix),
            Ok(8)
        );
        assert_eq!(ix, vec![1, 0]);
        assert!(message_indexes(&[0, 0, 0, 0, 9, 4, 2], &mut ix).is_err());
        let (_dir, _path, m) = txn_type();
        let file = m.parent_file();
        assert_eq!(
            message_at(&file, &[1]).unwrap().full_name(),
            "shoal.test.Refund"
        );
        assert_eq!(
            message_at(&file, &[0, 0]).unwrap().full_name(),
            "shoal.test.Txn.Inner"
        );
        assert!(message_at(&file, &[2]).is_none());
    }
}
