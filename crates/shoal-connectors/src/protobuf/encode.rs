//! Rows into Protobuf messages of a type from a `.proto` file: plain
//! messages, or — with a schema registry — the Confluent wire format under
//! the file's schema, registered (or found) under the sink's subject.
//!
//! Each column is written to the message field of its name; NULLs are left
//! unset. The columns are checked against the message type when the job is
//! planned ([`check_columns`]), values that do not fit their field (an
//! int64 into an int32 field) fail the job with the column named.

use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Date32Type, Float32Type, Float64Type, Int32Type, Int64Type, Schema, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType,
};
use prost_reflect::prost::Message;
use prost_reflect::prost::encoding::encode_varint;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};
use shoal_runtime::{Result, RuntimeError};

use crate::schema_registry::{MAGIC, SchemaRegistry};

/// Whether a column of type `t` can be written to a field of `kind`.
fn writable(t: &DataType, kind: &Kind) -> bool {
    let timestamp =
        matches!(kind, Kind::Message(m) if m.full_name() == "google.protobuf.Timestamp");
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            matches!(kind, Kind::String | Kind::Enum(_))
        }
        DataType::Boolean => matches!(kind, Kind::Bool),
        DataType::Int32 | DataType::Int64 | DataType::Date32 => matches!(
            kind,
            Kind::Int32
                | Kind::Int64
                | Kind::Sint32
                | Kind::Sint64
                | Kind::Sfixed32
                | Kind::Sfixed64
                | Kind::Uint32
                | Kind::Uint64
                | Kind::Fixed32
                | Kind::Fixed64
                | Kind::Double
        ),
        DataType::Float32 => matches!(kind, Kind::Float | Kind::Double),
        DataType::Float64 => matches!(kind, Kind::Double),
        DataType::Timestamp(TimeUnit::Millisecond | TimeUnit::Microsecond, None) => {
            timestamp || matches!(kind, Kind::Int64 | Kind::Sint64 | Kind::Sfixed64)
        }
        _ => false,
    }
}

/// For each column of `schema`, its field in `message`; or what is wrong.
pub fn check_columns(
    schema: &Schema,
    message: &MessageDescriptor,
) -> std::result::Result<Vec<FieldDescriptor>, String> {
    schema
        .fields()
        .iter()
        .map(|f| {
            let fd = message.get_field_by_name(f.name()).ok_or_else(|| {
                format!(
                    "column `{}` has no field in message {}",
                    f.name(),
                    message.full_name()
                )
            })?;
            if fd.is_list() || fd.is_map() {
                return Err(format!(
                    "field `{}` of {} is repeated; columns are written to singular fields",
                    f.name(),
                    message.full_name()
                ));
            }
            if !writable(f.data_type(), &fd.kind()) {
                return Err(format!(
                    "column `{}` ({}) cannot be written to field `{}` of {} ({:?})",
                    f.name(),
                    f.data_type(),
                    fd.name(),
                    message.full_name(),
                    fd.kind()
                ));
            }
            Ok(fd)
        })
        .collect()
}

/// The Confluent framing of `message`: the path of message indexes to it.
fn indexes(message: &MessageDescriptor) -> Vec<i64> {
    let mut path = Vec::new();
    let mut m = message.clone();
    loop {
        match m.parent_message() {
            Some(parent) => {
                let i = parent
                    .child_messages()
                    .position(|c| c.full_name() == m.full_name())
                    .expect("a child of its parent");
                path.push(i as i64);
                m = parent;
            }
            None => {
                let i = m
                    .parent_file()
                    .messages()
                    .position(|c| c.full_name() == m.full_name())
                    .expect("a message of its file");
                path.push(i as i64);
                break;
            }
        }
    }
    path.reverse();
    path
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Encodes rows as messages of one type.
pub struct ProtoEncoder {
    message: MessageDescriptor,
    fields: Vec<FieldDescriptor>,
    /// The Confluent header (magic, id, indexes), when registered.
    header: Vec<u8>,
}

impl std::fmt::Debug for ProtoEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtoEncoder")
            .field("message", &self.message.full_name())
            .finish()
    }
}

impl ProtoEncoder {
    /// An encoder of `schema`'s rows as `message` of the `.proto` at `path`;
    /// with `registry` (url, subject) the file is registered and every
    /// record framed with its id.
    pub fn new(
        schema: &Schema,
        path: &Path,
        message: &str,
        registry: Option<(&str, &str)>,
    ) -> Result<Self> {
        let pool = super::compile_file(path).map_err(RuntimeError::User)?;
        let message = super::find_message(&pool, message, path).map_err(RuntimeError::User)?;
        let fields = check_columns(schema, &message).map_err(RuntimeError::User)?;
        let mut header = Vec::new();
        if let Some((url, subject)) = registry {
            let file = message.parent_file();
            if let Some(import) = file
                .dependencies()
                .find(|d| !d.name().starts_with("google/protobuf/"))
            {
                return Err(RuntimeError::User(format!(
                    "{} imports {}: only Google's well-known types can be imported by a registered schema, for now",
                    path.display(),
                    import.name()
                )));
            }
            let text = std::fs::read_to_string(path)
                .map_err(|e| RuntimeError::User(format!("cannot read {}: {e}", path.display())))?;
            let id = SchemaRegistry::new(url).register(subject, "PROTOBUF", &text)?;
            tracing::info!(subject, id, "protobuf schema registered");
            header.push(MAGIC);
            header.extend_from_slice(&id.to_be_bytes());
            let path = indexes(&message);
            if path == [0] {
                header.push(0);
            } else {
                encode_varint(zigzag(path.len() as i64), &mut header);
                for i in path {
                    encode_varint(zigzag(i), &mut header);
                }
            }
        }
        Ok(Self {
            message,
            fields,
            header,
        })
    }

    /// Append each row of `batch` as one record to `values`, followed by a
    /// separator byte, with its end (exclusive) in `ends`.
    pub fn encode(
        &mut self,
        batch: &RecordBatch,
        values: &mut Vec<u8>,
        ends: &mut Vec<usize>,
    ) -> Result<()> {
        let mut msg = DynamicMessage::new(self.message.clone());
        for row in 0..batch.num_rows() {
            msg.clear();
            for (c, fd) in batch.columns().iter().zip(&self.fields) {
                if c.is_null(row) {
                    continue;
                }
                let v = value(c.as_ref(), row, fd).map_err(|why| {
                    RuntimeError::User(format!("protobuf: column `{}` row {row}: {why}", fd.name()))
                })?;
                msg.set_field(fd, v);
            }
            values.extend_from_slice(&self.header);
            msg.encode(values)
                .map_err(|e| RuntimeError::Internal(format!("protobuf encode: {e}")))?;
            ends.push(values.len());
            values.push(b'\n');
        }
        Ok(())
    }
}

/// Row `row` of `c` as a value of field `fd`.
fn value(c: &dyn Array, row: usize, fd: &FieldDescriptor) -> std::result::Result<Value, String> {
    let int: Option<i64> = match c.data_type() {
        DataType::Int32 => Some(i64::from(c.as_primitive::<Int32Type>().value(row))),
        DataType::Date32 => Some(i64::from(c.as_primitive::<Date32Type>().value(row))),
        DataType::Int64 => Some(c.as_primitive::<Int64Type>().value(row)),
        DataType::Timestamp(TimeUnit::Millisecond, None) => {
            Some(c.as_primitive::<TimestampMillisecondType>().value(row))
        }
        DataType::Timestamp(TimeUnit::Microsecond, None) => {
            Some(c.as_primitive::<TimestampMicrosecondType>().value(row))
        }
        _ => None,
    };
    let kind = fd.kind();
    let fits = |ok: bool, x: i64| {
        if ok {
            Ok(())
        } else {
            Err(format!("{x} does not fit the {kind:?} field"))
        }
    };
    Ok(match (&kind, int) {
        (Kind::Message(m), Some(x)) => {
            // google.protobuf.Timestamp.
            let per_second: i64 = match c.data_type() {
                DataType::Timestamp(TimeUnit::Microsecond, _) => 1_000_000,
                _ => 1_000,
            };
            let mut ts = DynamicMessage::new(m.clone());
            ts.set_field_by_name("seconds", Value::I64(x.div_euclid(per_second)));
            ts.set_field_by_name(
                "nanos",
                Value::I32((x.rem_euclid(per_second) * (1_000_000_000 / per_second)) as i32),
            );
            Value::Message(ts)
        }
        (Kind::Int32 | Kind::Sint32 | Kind::Sfixed32, Some(x)) => {
            fits(i32::try_from(x).is_ok(), x)?;
            Value::I32(x as i32)
        }
        (Kind::Int64 | Kind::Sint64 | Kind::Sfixed64, Some(x)) => Value::I64(x),
        (Kind::Uint32 | Kind::Fixed32, Some(x)) => {
            fits(u32::try_from(x).is_ok(), x)?;
            Value::U32(x as u32)
        }
        (Kind::Uint64 | Kind::Fixed64, Some(x)) => {
            fits(x >= 0, x)?;
            Value::U64(x as u64)
        }
        (Kind::Double, Some(x)) => {
            fits(x.unsigned_abs() <= 1 << 53, x)?;
            Value::F64(x as f64)
        }
        (Kind::Double, None) => match c.data_type() {
            DataType::Float64 => Value::F64(c.as_primitive::<Float64Type>().value(row)),
            _ => Value::F64(f64::from(c.as_primitive::<Float32Type>().value(row))),
        },
        (Kind::Float, None) => Value::F32(c.as_primitive::<Float32Type>().value(row)),
        (Kind::Bool, None) => Value::Bool(c.as_boolean().value(row)),
        (Kind::String | Kind::Enum(_), None) => {
            let s = match c.data_type() {
                DataType::Utf8 => c.as_string::<i32>().value(row),
                DataType::LargeUtf8 => c.as_string::<i64>().value(row),
                _ => c.as_string_view().value(row),
            };
            match &kind {
                Kind::Enum(e) => match e.get_value_by_name(s) {
                    Some(v) => Value::EnumNumber(v.number()),
                    None => return Err(format!("`{s}` is not a value of enum {}", e.full_name())),
                },
                _ => Value::String(s.to_string()),
            }
        }
        _ => return Err(format!("{} into {kind:?}", c.data_type())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::RecordChunk;
    use arrow::array::{Float64Array, Int64Array, StringArray, TimestampMillisecondArray};
    use arrow::datatypes::Field;
    use shoal_dsl::ProtoSource;
    use std::sync::Arc;

    const PROTO: &str = r#"
syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
enum Level { LOW = 0; HIGH = 1; }
message Outer { message Alert { string id = 1; } }
message Alert {
  string id = 1;
  int64 card = 2;
  double amount = 3;
  google.protobuf.Timestamp ts = 4;
  Level level = 5;
  int32 small = 6;
}
"#;

    #[test]
    fn rows_written_as_messages_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alert.proto");
        std::fs::write(&path, PROTO).unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("card", DataType::Int64, false),
            Field::new("amount", DataType::Float64, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            Field::new("level", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])),
                Arc::new(Int64Array::from(vec![1, -2, i64::MAX])),
                Arc::new(Float64Array::from(vec![0.5, 1e300, -3.25])),
                Arc::new(TimestampMillisecondArray::from(vec![
                    1_767_225_600_123,
                    -1,
                    0,
                ])),
                Arc::new(StringArray::from(vec!["LOW", "HIGH", "HIGH"])),
            ],
        )
        .unwrap();
        let mut enc = ProtoEncoder::new(&schema, &path, "shop.Alert", None).unwrap();
        let (mut values, mut ends) = (Vec::new(), Vec::new());
        enc.encode(&batch, &mut values, &mut ends).unwrap();
        let mut chunk = RecordChunk::default();
        let mut start = 0;
        for (i, end) in ends.iter().enumerate() {
            chunk.push(&values[start..*end], None, i as u64);
            start = end + 1;
        }
        let source = ProtoSource::SchemaFile {
            path: path.clone(),
            message: "shop.Alert".into(),
        };
        let mut dec = crate::protobuf::ProtoDecoder::new(schema.clone(), &source).unwrap();
        let mut bad = Vec::new();
        let back = dec.decode(&chunk, &mut bad).unwrap().unwrap();
        assert!(bad.is_empty(), "{bad:?}");
        // A NULL string is left unset; proto3 reads it back as "" (no presence).
        let ids: &StringArray = back.column(0).as_string();
        assert_eq!((ids.value(0), ids.value(1), ids.value(2)), ("a", "", "c"));
        for c in 1..5 {
            assert_eq!(back.column(c), batch.column(c), "column {c}");
        }

        // Columns the message cannot take are refused.
        let wrong = Schema::new(vec![Field::new("small", DataType::Float64, false)]);
        let m = crate::protobuf::message_from_file(&path, "shop.Alert").unwrap();
        let e = check_columns(&wrong, &m).unwrap_err();
        assert!(
            e.contains("column `small` (Float64) cannot be written to field `small`"),
            "{e}"
        );
        let missing = Schema::new(vec![Field::new("nope", DataType::Utf8, false)]);
        assert!(
            check_columns(&missing, &m)
                .unwrap_err()
                .contains("has no field in message shop.Alert")
        );
        // An int64 that does not fit an int32 field fails with the column named.
        let small = Arc::new(Schema::new(vec![Field::new(
            "small",
            DataType::Int64,
            false,
        )]));
        let mut enc = ProtoEncoder::new(&small, &path, "shop.Alert", None).unwrap();
        let big = RecordBatch::try_new(small, vec![Arc::new(Int64Array::from(vec![1i64 << 40]))])
            .unwrap();
        let e = enc
            .encode(&big, &mut values, &mut ends)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("column `small` row 0: 1099511627776 does not fit"),
            "{e}"
        );
    }

    #[test]
    fn the_framing_names_the_message_by_its_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alert.proto");
        std::fs::write(&path, PROTO).unwrap();
        let m = |n: &str| crate::protobuf::message_from_file(&path, n).unwrap();
        assert_eq!(indexes(&m("shop.Outer")), vec![0]);
        assert_eq!(indexes(&m("shop.Outer.Alert")), vec![0, 0]);
        assert_eq!(indexes(&m("shop.Alert")), vec![1]);
        // The decoder's reading of the same path.
        let mut header = vec![0, 0, 0, 0, 7];
        encode_varint(zigzag(2), &mut header);
        encode_varint(zigzag(0), &mut header);
        encode_varint(zigzag(0), &mut header);
        let mut ix = Vec::new();
        assert_eq!(
            crate::protobuf::message_indexes(&header, &mut ix),
            Ok(header.len())
        );
        assert_eq!(ix, vec![0, 0]);
    }
}
