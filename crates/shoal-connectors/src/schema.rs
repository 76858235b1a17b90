//! Declared schemas (`schema:` in a source) as Arrow schemas.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use shoal_dsl::{FieldType, SchemaSpec};

/// The Arrow type of a declared field type.
pub fn arrow_type(t: &FieldType) -> DataType {
    match t {
        FieldType::Utf8 => DataType::Utf8,
        FieldType::Int32 => DataType::Int32,
        FieldType::Int64 => DataType::Int64,
        FieldType::Float32 => DataType::Float32,
        FieldType::Float64 => DataType::Float64,
        FieldType::Boolean => DataType::Boolean,
        FieldType::TimestampMs => DataType::Timestamp(TimeUnit::Millisecond, None),
        FieldType::TimestampUs => DataType::Timestamp(TimeUnit::Microsecond, None),
        FieldType::Date32 => DataType::Date32,
    }
}

/// The Arrow schema of a declared schema. Fields without a trailing `?` are
/// non-nullable, so a record missing them is rejected to the dead-letter output.
pub fn arrow_schema(spec: &SchemaSpec) -> SchemaRef {
    Arc::new(Schema::new(
        spec.fields
            .iter()
            .map(|f| Field::new(&f.name, arrow_type(&f.data_type), f.nullable))
            .collect::<Vec<_>>(),
    ))
}
