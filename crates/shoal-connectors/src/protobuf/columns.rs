//! One protobuf message into one row of the declared Arrow columns.
//!
//! The message's wire format is read straight into the fields the columns
//! use ([`super::wire`]); a row is then converted into [`Cell`]s (strings
//! checked and left in the record), and appended to the builders only when
//! every column read, so a record that fails in its third column leaves no
//! half row behind.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float32Builder, Float64Builder, Int32Builder,
    Int64Builder, StringBuilder, TimestampMicrosecondBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};

use super::wire::{self, Raw, Slot, Slots, WireType};

/// How the declared columns are read from one message type: for each
/// column, its field (`None`: the type has no such field).
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    message: MessageDescriptor,
    fields: Vec<Option<FieldDescriptor>>,
    /// The fields' kinds (what their wire values mean).
    kinds: Vec<Option<Kind>>,
    /// Field number → column, for the wire reader.
    slots: Slots,
    /// The names of the enum values of enum fields read as text.
    names: String,
    /// Per column: enum value number → its name's range in `names`.
    enum_names: Vec<Vec<(i32, usize, usize)>>,
}

impl Plan {
    /// Match `schema`'s columns to `message`'s fields by name. A required
    /// column the message lacks, or a repeated or map field, makes every
    /// record of the type unreadable: that reason is the `Err`.
    pub(crate) fn new(schema: &SchemaRef, message: MessageDescriptor) -> Result<Self, String> {
        let mut fields = Vec::with_capacity(schema.fields().len());
        for f in schema.fields() {
            match message.get_field_by_name(f.name()) {
                Some(fd) if fd.is_list() || fd.is_map() => {
                    return Err(format!(
                        "field `{}` of {} is {}; only singular fields are read",
                        f.name(),
                        message.full_name(),
                        if fd.is_map() { "a map" } else { "repeated" }
                    ));
                }
                Some(fd) if !readable(&fd.kind(), f.data_type()) => {
                    return Err(format!(
                        "field `{}` of {} is {}, which cannot be read as {}",
                        f.name(),
                        message.full_name(),
                        kind_name(&fd),
                        f.data_type()
                    ));
                }
                Some(fd) => fields.push(Some(fd)),
                None if f.is_nullable() => fields.push(None),
                None => {
                    return Err(format!(
                        "field `{}` is not in message {} and the schema requires it",
                        f.name(),
                        message.full_name()
                    ));
                }
            }
        }
        let mut slots = Slots::default();
        let kinds: Vec<Option<Kind>> = fields
            .iter()
            .map(|f| f.as_ref().map(|f| f.kind()))
            .collect();
        for (column, (fd, kind)) in fields.iter().zip(&kinds).enumerate() {
            let (Some(fd), Some(kind)) = (fd, kind) else {
                continue;
            };
            let timestamp = matches!(kind, Kind::Message(_));
            slots.insert(
                fd.number(),
                Slot {
                    column,
                    wire: wire_type(kind),
                    timestamp,
                },
            );
        }
        let mut names = String::new();
        let enum_names = kinds
            .iter()
            .map(|k| match k {
                Some(Kind::Enum(e)) => e
                    .values()
                    .map(|v| {
                        let start = names.len();
                        names.push_str(v.name());
                        (v.number(), start, names.len())
                    })
                    .collect(),
                _ => Vec::new(),
            })
            .collect();
        Ok(Self {
            message,
            fields,
            kinds,
            slots,
            names,
            enum_names,
        })
    }

    /// The message type read.
    pub(crate) fn message(&self) -> &MessageDescriptor {
        &self.message
    }
}

/// The wire type fields of `kind` are written with.
fn wire_type(kind: &Kind) -> WireType {
    match kind {
        Kind::Double | Kind::Fixed64 | Kind::Sfixed64 => WireType::Fixed64,
        Kind::Float | Kind::Fixed32 | Kind::Sfixed32 => WireType::Fixed32,
        Kind::String | Kind::Bytes | Kind::Message(_) => WireType::Len,
        _ => WireType::Varint,
    }
}

/// Whether values of `kind` can ever be read into `t` (some only when the
/// value fits: an uint64 into int64, an int64 into float64).
fn readable(kind: &Kind, t: &DataType) -> bool {
    let int = matches!(
        kind,
        Kind::Int32
            | Kind::Int64
            | Kind::Uint32
            | Kind::Uint64
            | Kind::Sint32
            | Kind::Sint64
            | Kind::Fixed32
            | Kind::Fixed64
            | Kind::Sfixed32
            | Kind::Sfixed64
            | Kind::Enum(_)
    );
    match t {
        DataType::Utf8 => matches!(kind, Kind::String | Kind::Enum(_)),
        DataType::Int32 | DataType::Int64 | DataType::Date32 => int,
        DataType::Float64 => int || matches!(kind, Kind::Double | Kind::Float),
        DataType::Float32 => matches!(kind, Kind::Float),
        DataType::Boolean => matches!(kind, Kind::Bool),
        DataType::Timestamp(_, _) => {
            int || matches!(kind, Kind::Message(m) if m.full_name() == "google.protobuf.Timestamp")
        }
        _ => false,
    }
}

/// One value of a row, before it is appended.
#[derive(Debug, Clone, Copy)]
enum Cell {
    Null,
    Bool(bool),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    /// A UTF-8 range of the record.
    Str(usize, usize),
    /// An enum value's name: a range of the plan's names.
    Name(usize, usize),
}

/// A field's value, decoded from the wire by its kind.
#[derive(Debug, Clone, Copy)]
enum V {
    Int(i128),
    Enum(i32),
    F64(f64),
    F32(f32),
    Bool(bool),
    /// A UTF-8 range of the record.
    Str(usize, usize),
    /// Seconds and nanos of a `google.protobuf.Timestamp`.
    Ts(i64, i32),
}

/// A builder per declared column.
enum Column {
    Utf8(StringBuilder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    TsMs(TimestampMillisecondBuilder),
    TsUs(TimestampMicrosecondBuilder),
    Date32(Date32Builder),
}

/// Rows being built for the declared schema.
pub(crate) struct Rows {
    schema: SchemaRef,
    columns: Vec<Column>,
    cells: Vec<Cell>,
    /// The wire values of the record being read, per column.
    raw: Vec<Option<Raw>>,
    len: usize,
}

impl Rows {
    /// Builders for `schema` (its types are those a `schema:` can declare).
    pub(crate) fn new(schema: SchemaRef) -> Result<Self, String> {
        let columns = schema
            .fields()
            .iter()
            .map(|f| {
                Ok(match f.data_type() {
                    DataType::Utf8 => Column::Utf8(StringBuilder::new()),
                    DataType::Int32 => Column::I32(Int32Builder::new()),
                    DataType::Int64 => Column::I64(Int64Builder::new()),
                    DataType::Float32 => Column::F32(Float32Builder::new()),
                    DataType::Float64 => Column::F64(Float64Builder::new()),
                    DataType::Boolean => Column::Bool(BooleanBuilder::new()),
                    DataType::Timestamp(TimeUnit::Millisecond, None) => {
                        Column::TsMs(TimestampMillisecondBuilder::new())
                    }
                    DataType::Timestamp(TimeUnit::Microsecond, None) => {
                        Column::TsUs(TimestampMicrosecondBuilder::new())
                    }
                    DataType::Date32 => Column::Date32(Date32Builder::new()),
                    other => {
                        return Err(format!(
                            "column `{}`: {other} cannot be read from protobuf",
                            f.name()
                        ));
                    }
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self {
            raw: vec![None; columns.len()],
            schema,
            columns,
            cells: Vec::new(),
            len: 0,
        })
    }

    /// Rows appended since the last [`Rows::finish`].
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Read the message `body` by `plan` and append it as one row, or say
    /// why it cannot be (`Err((true, why))`: the bytes are no message of
    /// the type; `Err((false, why))`: a value does not fit its column).
    pub(crate) fn append(&mut self, plan: &Plan, body: &[u8]) -> Result<(), (bool, String)> {
        self.raw.iter_mut().for_each(|r| *r = None);
        wire::read(body, &plan.slots, &mut self.raw).map_err(|why| (true, why))?;
        self.cells.clear();
        for (i, (fd, kind)) in plan.fields.iter().zip(&plan.kinds).enumerate() {
            let field = &self.schema.fields()[i];
            let cell = match (fd, kind, self.raw[i]) {
                (Some(fd), Some(kind), raw) => {
                    let v = match raw {
                        Some(raw) => Some(value(kind, raw, body).map_err(|why| (true, why))?),
                        // Not in the message: NULL for a field with
                        // presence, the type's default for the others.
                        None if fd.supports_presence() => None,
                        None => Some(default(kind)),
                    };
                    match v {
                        Some(v) => cell(&self.columns[i], fd, v, &plan.enum_names[i])
                            .map_err(|why| (false, format!("field `{}`: {why}", field.name())))?,
                        None => Cell::Null,
                    }
                }
                _ => Cell::Null,
            };
            if matches!(cell, Cell::Null) && !field.is_nullable() {
                return Err((
                    false,
                    format!(
                        "field `{}` is not set and the schema requires it",
                        field.name()
                    ),
                ));
            }
            self.cells.push(cell);
        }
        for (col, c) in self.columns.iter_mut().zip(&self.cells) {
            push(col, *c, body, &plan.names);
        }
        self.len += 1;
        Ok(())
    }

    /// The rows so far as one batch; the builders start again.
    pub(crate) fn finish(&mut self) -> arrow::error::Result<arrow::array::RecordBatch> {
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|c| -> ArrayRef {
                match c {
                    Column::Utf8(b) => Arc::new(b.finish()),
                    Column::I32(b) => Arc::new(b.finish()),
                    Column::I64(b) => Arc::new(b.finish()),
                    Column::F32(b) => Arc::new(b.finish()),
                    Column::F64(b) => Arc::new(b.finish()),
                    Column::Bool(b) => Arc::new(b.finish()),
                    Column::TsMs(b) => Arc::new(b.finish()),
                    Column::TsUs(b) => Arc::new(b.finish()),
                    Column::Date32(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        self.len = 0;
        arrow::array::RecordBatch::try_new(Arc::clone(&self.schema), arrays)
    }
}

fn push(col: &mut Column, c: Cell, body: &[u8], names: &str) {
    macro_rules! put {
        ($b:expr, $v:expr) => {
            match $v {
                Some(v) => $b.append_value(v),
                None => $b.append_null(),
            }
        };
    }
    match (col, c) {
        (Column::Utf8(b), Cell::Str(s, e)) => {
            b.append_value(std::str::from_utf8(&body[s..e]).expect("checked when read"))
        }
        (Column::Utf8(b), Cell::Name(s, e)) => b.append_value(&names[s..e]),
        (Column::I32(b), Cell::I32(v)) => b.append_value(v),
        (Column::Date32(b), Cell::I32(v)) => b.append_value(v),
        (Column::I64(b), Cell::I64(v)) => b.append_value(v),
        (Column::TsMs(b), Cell::I64(v)) => b.append_value(v),
        (Column::TsUs(b), Cell::I64(v)) => b.append_value(v),
        (Column::F32(b), Cell::F32(v)) => b.append_value(v),
        (Column::F64(b), Cell::F64(v)) => b.append_value(v),
        (Column::Bool(b), Cell::Bool(v)) => b.append_value(v),
        (Column::Utf8(b), _) => put!(b, None::<&str>),
        (Column::I32(b), _) => put!(b, None::<i32>),
        (Column::Date32(b), _) => put!(b, None::<i32>),
        (Column::I64(b), _) => put!(b, None::<i64>),
        (Column::TsMs(b), _) => put!(b, None::<i64>),
        (Column::TsUs(b), _) => put!(b, None::<i64>),
        (Column::F32(b), _) => put!(b, None::<f32>),
        (Column::F64(b), _) => put!(b, None::<f64>),
        (Column::Bool(b), _) => put!(b, None::<bool>),
    }
}

/// The largest integer a float64 holds exactly.
const F64_EXACT: i64 = 1 << 53;

/// The value of a field of `kind` from its wire value (whose wire type
/// the reader checked) in `body`.
fn value(kind: &Kind, raw: Raw, body: &[u8]) -> Result<V, String> {
    Ok(match (kind, raw) {
        (Kind::Int32, Raw::Varint(v)) => V::Int(i128::from(v as i32)),
        (Kind::Int64, Raw::Varint(v)) => V::Int(i128::from(v as i64)),
        (Kind::Uint32, Raw::Varint(v)) => V::Int(i128::from(v as u32)),
        (Kind::Uint64, Raw::Varint(v)) => V::Int(i128::from(v)),
        (Kind::Sint32, Raw::Varint(v)) => {
            let n = v as u32;
            V::Int(i128::from((n >> 1) as i32 ^ -((n & 1) as i32)))
        }
        (Kind::Sint64, Raw::Varint(v)) => V::Int(i128::from((v >> 1) as i64 ^ -((v & 1) as i64))),
        (Kind::Bool, Raw::Varint(v)) => V::Bool(v != 0),
        (Kind::Enum(_), Raw::Varint(v)) => V::Enum(v as i32),
        (Kind::Fixed64, Raw::Fixed64(v)) => V::Int(i128::from(v)),
        (Kind::Sfixed64, Raw::Fixed64(v)) => V::Int(i128::from(v as i64)),
        (Kind::Double, Raw::Fixed64(v)) => V::F64(f64::from_bits(v)),
        (Kind::Fixed32, Raw::Fixed32(v)) => V::Int(i128::from(v)),
        (Kind::Sfixed32, Raw::Fixed32(v)) => V::Int(i128::from(v as i32)),
        (Kind::Float, Raw::Fixed32(v)) => V::F32(f32::from_bits(v)),
        (Kind::String, Raw::Bytes(s, e)) => {
            std::str::from_utf8(&body[s..e])
                .map_err(|_| "a string that is not UTF-8".to_string())?;
            V::Str(s, e)
        }
        (Kind::Message(_), Raw::Timestamp(seconds, nanos)) => V::Ts(seconds, nanos),
        (k, raw) => return Err(format!("a {k:?} field holds {raw:?}")),
    })
}

/// The value of a field of `kind` that is not in a message (proto3's
/// defaults: 0, false, "", the first enum value).
fn default(kind: &Kind) -> V {
    match kind {
        Kind::Double => V::F64(0.0),
        Kind::Float => V::F32(0.0),
        Kind::Bool => V::Bool(false),
        Kind::String | Kind::Bytes => V::Str(0, 0),
        Kind::Enum(e) => V::Enum(e.default_value().number()),
        Kind::Message(_) => V::Ts(0, 0),
        _ => V::Int(0),
    }
}

/// `v` (of field `fd`) as a cell of `col`'s type: lossless conversions
/// only, as for JSON input. `names`: the enum value names of the field.
fn cell(
    col: &Column,
    fd: &FieldDescriptor,
    v: V,
    names: &[(i32, usize, usize)],
) -> Result<Cell, String> {
    let int = match v {
        V::Int(x) => Some(x),
        V::Enum(x) => Some(i128::from(x)),
        _ => None,
    };
    let wrong = || {
        format!(
            "a {} field cannot be read as {}",
            kind_name(fd),
            col_name(col)
        )
    };
    Ok(match col {
        Column::Utf8(_) => match v {
            V::Str(s, e) => Cell::Str(s, e),
            V::Enum(n) => match names.iter().find(|(number, _, _)| *number == n) {
                Some((_, s, e)) => Cell::Name(*s, *e),
                None => return Err(format!("enum value {n} has no name")),
            },
            _ => return Err(wrong()),
        },
        Column::I32(_) | Column::Date32(_) => match int {
            Some(x) => Cell::I32(i32::try_from(x).map_err(|_| format!("{x} does not fit int32"))?),
            None => return Err(wrong()),
        },
        Column::I64(_) => match int {
            Some(x) => Cell::I64(i64::try_from(x).map_err(|_| format!("{x} does not fit int64"))?),
            None => return Err(wrong()),
        },
        Column::TsMs(_) | Column::TsUs(_) => {
            let micros = matches!(col, Column::TsUs(_));
            match (v, int) {
                (_, Some(x)) => {
                    Cell::I64(i64::try_from(x).map_err(|_| format!("{x} does not fit int64"))?)
                }
                (V::Ts(seconds, nanos), _) => Cell::I64(timestamp(seconds, nanos, micros)?),
                _ => return Err(wrong()),
            }
        }
        Column::F64(_) => match (v, int) {
            (V::F64(x), _) => Cell::F64(x),
            (V::F32(x), _) => Cell::F64(f64::from(x)),
            (_, Some(x)) if x.abs() <= i128::from(F64_EXACT) => Cell::F64(x as f64),
            (_, Some(x)) => return Err(format!("{x} is not exact as float64")),
            _ => return Err(wrong()),
        },
        Column::F32(_) => match v {
            V::F32(x) => Cell::F32(x),
            _ => return Err(wrong()),
        },
        Column::Bool(_) => match v {
            V::Bool(b) => Cell::Bool(b),
            _ => return Err(wrong()),
        },
    })
}

/// A `google.protobuf.Timestamp` in milliseconds (or microseconds) since
/// the epoch; a value between two units is refused, not rounded.
fn timestamp(seconds: i64, nanos: i32, micros: bool) -> Result<i64, String> {
    let nanos = i64::from(nanos);
    let per = if micros { 1_000 } else { 1_000_000 };
    if nanos % per != 0 {
        return Err(format!(
            "timestamp {seconds}s {nanos}ns is finer than a {}",
            if micros { "microsecond" } else { "millisecond" }
        ));
    }
    seconds
        .checked_mul(1_000_000_000 / per)
        .and_then(|s| s.checked_add(nanos / per))
        .ok_or_else(|| format!("timestamp {seconds}s is out of range"))
}

fn kind_name(fd: &FieldDescriptor) -> String {
    match fd.kind() {
        Kind::Message(m) => m.full_name().to_string(),
        Kind::Enum(e) => format!("enum {}", e.full_name()),
        k => format!("{k:?}").to_ascii_lowercase(),
    }
}

fn col_name(col: &Column) -> &'static str {
    match col {
        Column::Utf8(_) => "utf8",
        Column::I32(_) => "int32",
        Column::I64(_) => "int64",
        Column::F32(_) => "float32",
        Column::F64(_) => "float64",
        Column::Bool(_) => "bool",
        Column::TsMs(_) => "timestamp_ms",
        Column::TsUs(_) => "timestamp_us",
        Column::Date32(_) => "date32",
    }
}
