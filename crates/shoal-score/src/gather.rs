//! Gathering named Arrow columns into one contiguous column-major `f64`
//! matrix, the evaluator's input.
//!
//! Integers, floats and booleans are converted to `f64`; nulls become `NaN`
//! (the "missing" value of both model formats). Other numeric types
//! (decimals, `f16`) go through Arrow's cast kernel. Strings and other
//! non-numeric columns are rejected.

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, PrimitiveArray};
use arrow::compute::cast;
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::record_batch::RecordBatch;

use crate::error::{Result, ScoreError};

/// Append the columns `names` of `batch` to `matrix` (cleared first), one
/// after the other: feature `f` of row `r` ends up at `matrix[f * rows + r]`.
pub(crate) fn gather(batch: &RecordBatch, names: &[&str], matrix: &mut Vec<f64>) -> Result<()> {
    let rows = batch.num_rows();
    matrix.clear();
    matrix.reserve(names.len() * rows);
    for name in names {
        let column = batch
            .column_by_name(name)
            .ok_or_else(|| ScoreError::ColumnNotFound {
                name: (*name).to_string(),
                available: batch
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        append(name, column, matrix)?;
    }
    Ok(())
}

/// Whether a column of type `data_type` can be a feature: integers,
/// floats, decimals and booleans can.
pub(crate) fn check_feature_type(name: &str, data_type: &DataType) -> Result<()> {
    if data_type.is_numeric() || *data_type == DataType::Boolean {
        Ok(())
    } else {
        Err(ScoreError::ColumnType {
            name: name.to_string(),
            data_type: data_type.clone(),
        })
    }
}

/// Append one column's values as `f64`, nulls as `NaN`.
fn append(name: &str, column: &ArrayRef, matrix: &mut Vec<f64>) -> Result<()> {
    match column.data_type() {
        DataType::Float64 => append_f64(column.as_primitive::<Float64Type>(), matrix),
        DataType::Float32 => append_primitive::<Float32Type>(column, matrix, |v| v as f64),
        DataType::Int8 => append_primitive::<Int8Type>(column, matrix, |v| v as f64),
        DataType::Int16 => append_primitive::<Int16Type>(column, matrix, |v| v as f64),
        DataType::Int32 => append_primitive::<Int32Type>(column, matrix, |v| v as f64),
        DataType::Int64 => append_primitive::<Int64Type>(column, matrix, |v| v as f64),
        DataType::UInt8 => append_primitive::<UInt8Type>(column, matrix, |v| v as f64),
        DataType::UInt16 => append_primitive::<UInt16Type>(column, matrix, |v| v as f64),
        DataType::UInt32 => append_primitive::<UInt32Type>(column, matrix, |v| v as f64),
        DataType::UInt64 => append_primitive::<UInt64Type>(column, matrix, |v| v as f64),
        DataType::Boolean => append_bool(column.as_boolean(), matrix),
        t if t.is_numeric() => {
            let converted = cast(column, &DataType::Float64)?;
            append_f64(converted.as_primitive::<Float64Type>(), matrix);
        }
        t => {
            return Err(ScoreError::ColumnType {
                name: name.to_string(),
                data_type: t.clone(),
            });
        }
    }
    Ok(())
}

fn append_f64(array: &PrimitiveArray<Float64Type>, matrix: &mut Vec<f64>) {
    let values = array.values();
    match array.nulls().filter(|n| n.null_count() > 0) {
        None => matrix.extend_from_slice(values),
        Some(nulls) => matrix.extend(
            values
                .iter()
                .zip(nulls.iter())
                .map(|(v, valid)| if valid { *v } else { f64::NAN }),
        ),
    }
}

fn append_primitive<T: ArrowPrimitiveType>(
    column: &ArrayRef,
    matrix: &mut Vec<f64>,
    to_f64: impl Fn(T::Native) -> f64,
) {
    let array = column.as_primitive::<T>();
    let values = array.values();
    match array.nulls().filter(|n| n.null_count() > 0) {
        None => matrix.extend(values.iter().map(|v| to_f64(*v))),
        Some(nulls) => matrix.extend(
            values
                .iter()
                .zip(nulls.iter())
                .map(|(v, valid)| if valid { to_f64(*v) } else { f64::NAN }),
        ),
    }
}

fn append_bool(array: &BooleanArray, matrix: &mut Vec<f64>) {
    let values = array.values();
    match array.nulls().filter(|n| n.null_count() > 0) {
        None => matrix.extend(values.iter().map(f64::from)),
        Some(nulls) => matrix.extend(
            values.iter().zip(nulls.iter()).map(
                |(v, valid)| {
                    if valid { f64::from(v) } else { f64::NAN }
                },
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Decimal128Array, Float32Array, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn converts_types_and_nulls() {
        let batch = RecordBatch::try_from_iter(vec![
            (
                "f64",
                Arc::new(Float64Array::from(vec![Some(1.5), None, Some(-2.0)])) as ArrayRef,
            ),
            (
                "f32",
                Arc::new(Float32Array::from(vec![Some(0.5f32), Some(1.0), None])) as ArrayRef,
            ),
            (
                "i64",
                Arc::new(Int64Array::from(vec![None, Some(7), Some(-3)])) as ArrayRef,
            ),
            (
                "bool",
                Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])) as ArrayRef,
            ),
            (
                "dec",
                Arc::new(
                    Decimal128Array::from(vec![Some(125), None, Some(-5)])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ) as ArrayRef,
            ),
        ])
        .unwrap();
        let mut m = vec![99.0; 3];
        gather(&batch, &["bool", "f64", "f32", "i64", "dec"], &mut m).unwrap();
        let want = [
            1.0,
            0.0,
            f64::NAN,
            1.5,
            f64::NAN,
            -2.0,
            0.5,
            1.0,
            f64::NAN,
            f64::NAN,
            7.0,
            -3.0,
            1.25,
            f64::NAN,
            -0.05,
        ];
        assert_eq!(m.len(), want.len());
        for (got, want) in m.iter().zip(want) {
            assert!(got == &want || (got.is_nan() && want.is_nan()), "{m:?}");
        }
    }

    #[test]
    fn rejects_missing_and_non_numeric_columns() {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, false)]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec!["1"]))]).unwrap();
        let mut m = Vec::new();
        let e = gather(&batch, &["s"], &mut m).unwrap_err();
        assert!(matches!(e, ScoreError::ColumnType { .. }), "{e}");
        let e = gather(&batch, &["amount"], &mut m).unwrap_err();
        assert_eq!(
            e.to_string(),
            "feature column \"amount\" is not in the batch (columns: s)"
        );
    }
}
