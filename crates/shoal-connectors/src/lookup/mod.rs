//! Tables in outside stores that lookup joins read by key (see
//! `shoal_sql::lookup`): [`PostgresLookup`] (a table or a query) and
//! [`RedisLookup`] (one hash per key). Both answer one batch of keys with
//! one request, turn the store's text into the declared column types, and
//! wait out outages for [`retry_for`](crate::retry::retry_for).

mod postgres;
mod redis;

pub use postgres::PostgresLookup;
pub use redis::RedisLookup;

use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use arrow::compute::CastOptions;
use arrow::datatypes::DataType;

/// `schema` with every column nullable: a store may hold NULLs (or
/// values that do not parse) in any column.
fn nullable(schema: &arrow::datatypes::Schema) -> arrow::datatypes::SchemaRef {
    Arc::new(arrow::datatypes::Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ))
}

/// Text values from a store as a column of type `to`; a value that does
/// not parse becomes NULL (and is counted in the returned number).
fn text_column(values: Vec<Option<String>>, to: &DataType) -> Result<(ArrayRef, usize), String> {
    let text: ArrayRef = Arc::new(StringArray::from(values));
    if to == &DataType::Utf8 {
        return Ok((text, 0));
    }
    let options = CastOptions {
        safe: true,
        ..Default::default()
    };
    let out = arrow::compute::cast_with_options(&text, to, &options)
        .map_err(|e| format!("cannot read values as {to}: {e}"))?;
    let lost = out.null_count() - text.null_count();
    Ok((out, lost))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;

    #[test]
    fn text_becomes_typed_and_bad_values_null() {
        let (a, lost) = text_column(
            vec![Some("7".into()), None, Some("x".into())],
            &DataType::Int64,
        )
        .unwrap();
        let a = a.as_primitive::<Int64Type>();
        assert_eq!(a.value(0), 7);
        assert!(a.is_null(1) && a.is_null(2));
        assert_eq!(lost, 1);
    }
}
