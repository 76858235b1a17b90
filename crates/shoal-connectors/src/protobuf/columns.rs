//! One protobuf message into one row of the declared Arrow columns.
//!
//! A row is first read into [`Cell`]s (strings into one scratch buffer), and
//! appended to the builders only when every column read, so a record that
//! fails in its third column leaves no half row behind.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float32Builder, Float64Builder, Int32Builder,
    Int64Builder, StringBuilder, TimestampMicrosecondBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage, Value,
};

/// How the declared columns are read from one message type: for each
/// column, its field (`None`: the type has no such field).
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    message: MessageDescriptor,
    fields: Vec<Option<FieldDescriptor>>,
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
        Ok(Self { message, fields })
    }

    /// The message type read.
    pub(crate) fn message(&self) -> &MessageDescriptor {
        &self.message
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
    /// A range of the scratch string buffer.
    Str(usize, usize),
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
    text: String,
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
            schema,
            columns,
            cells: Vec::new(),
            text: String::new(),
            len: 0,
        })
    }

    /// Rows appended since the last [`Rows::finish`].
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Read `msg` by `plan` and append it as one row, or say why it cannot be.
    pub(crate) fn append(&mut self, plan: &Plan, msg: &DynamicMessage) -> Result<(), String> {
        self.cells.clear();
        self.text.clear();
        for (i, fd) in plan.fields.iter().enumerate() {
            let field = &self.schema.fields()[i];
            let cell = match fd {
                None => Cell::Null,
                Some(fd) if fd.supports_presence() && !msg.has_field(fd) => Cell::Null,
                Some(fd) => {
                    let v = msg.get_field(fd);
                    cell(&self.columns[i], fd, &v, &mut self.text)
                        .map_err(|why| format!("field `{}`: {why}", field.name()))?
                }
            };
            if matches!(cell, Cell::Null) && !field.is_nullable() {
                return Err(format!(
                    "field `{}` is not set and the schema requires it",
                    field.name()
                ));
            }
            self.cells.push(cell);
        }
        for (col, c) in self.columns.iter_mut().zip(&self.cells) {
            push(col, *c, &self.text);
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

fn push(col: &mut Column, c: Cell, text: &str) {
    macro_rules! put {
        ($b:expr, $v:expr) => {
            match $v {
                Some(v) => $b.append_value(v),
                None => $b.append_null(),
            }
        };
    }
    match (col, c) {
        (Column::Utf8(b), Cell::Str(s, e)) => b.append_value(&text[s..e]),
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

/// `v` (of field `fd`) as a cell of `col`'s type: lossless conversions
/// only, as for JSON input.
fn cell(col: &Column, fd: &FieldDescriptor, v: &Value, text: &mut String) -> Result<Cell, String> {
    let int = match v {
        Value::I32(x) => Some(i128::from(*x)),
        Value::I64(x) => Some(i128::from(*x)),
        Value::U32(x) => Some(i128::from(*x)),
        Value::U64(x) => Some(i128::from(*x)),
        Value::EnumNumber(x) => Some(i128::from(*x)),
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
        Column::Utf8(_) => {
            let s = match v {
                Value::String(s) => s.as_str(),
                Value::EnumNumber(n) => match fd.kind().as_enum().and_then(|e| e.get_value(*n)) {
                    Some(ev) => {
                        let start = text.len();
                        text.push_str(ev.name());
                        return Ok(Cell::Str(start, text.len()));
                    }
                    None => return Err(format!("enum value {n} has no name")),
                },
                _ => return Err(wrong()),
            };
            let start = text.len();
            text.push_str(s);
            Cell::Str(start, text.len())
        }
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
                (Value::Message(m), _)
                    if m.descriptor().full_name() == "google.protobuf.Timestamp" =>
                {
                    Cell::I64(timestamp(m, micros)?)
                }
                _ => return Err(wrong()),
            }
        }
        Column::F64(_) => match (v, int) {
            (Value::F64(x), _) => Cell::F64(*x),
            (Value::F32(x), _) => Cell::F64(f64::from(*x)),
            (_, Some(x)) if x.abs() <= i128::from(F64_EXACT) => Cell::F64(x as f64),
            (_, Some(x)) => return Err(format!("{x} is not exact as float64")),
            _ => return Err(wrong()),
        },
        Column::F32(_) => match v {
            Value::F32(x) => Cell::F32(*x),
            _ => return Err(wrong()),
        },
        Column::Bool(_) => match v {
            Value::Bool(b) => Cell::Bool(*b),
            _ => return Err(wrong()),
        },
    })
}

/// A `google.protobuf.Timestamp` in milliseconds (or microseconds) since
/// the epoch; a value between two units is refused, not rounded.
fn timestamp(m: &DynamicMessage, micros: bool) -> Result<i64, String> {
    let seconds = match m.get_field_by_name("seconds").as_deref() {
        Some(Value::I64(s)) => *s,
        _ => 0,
    };
    let nanos = match m.get_field_by_name("nanos").as_deref() {
        Some(Value::I32(n)) => i64::from(*n),
        _ => 0,
    };
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
