//! The `postgres` sink, through `tokio-postgres` (plain TCP, no TLS).
//!
//! * [`PostgresSink`] writes each epoch's rows (`COPY ... FROM STDIN` in text format)
//!   and a `(pipeline, sink, task) → epoch` marker in `shoal_epochs` in one
//!   transaction; an epoch already recorded there is skipped, so replaying a
//!   commit is a no-op. With a Kafka source the same transaction upserts the
//!   source's offsets into `shoal_offsets` (see
//!   [`OffsetLedger`](crate::kafka::OffsetLedger)).
//! * [`columns`] maps Arrow types to Postgres types; an existing table whose
//!   columns do not match is an error before the job starts.
//!
//! | Arrow | Postgres (created as) | also accepted in an existing table |
//! |---|---|---|
//! | Utf8 | `text` | `varchar`, `character varying`, `character`, `bpchar` |
//! | Int32 | `integer` | `bigint`, `numeric` |
//! | Int64 | `bigint` | `numeric` |
//! | Float32 | `real` | `double precision`, `numeric` |
//! | Float64 | `double precision` | `numeric` |
//! | Boolean | `boolean` | |
//! | Timestamp(ms/us), no zone | `timestamp` | `timestamptz` (read as UTC) |
//! | Date32 | `date` | |

mod client;
mod connector;
mod copy_text;
mod sink;

pub(crate) use client::pg_err;
pub use client::{PgClient, PostgresPositions};
pub use connector::{PostgresMode, PostgresSinkConfig, RawPostgresSink};
pub use sink::{PostgresSink, PostgresSinkTask, check_table};

/// Whether an error is worth the same statement again on a new
/// connection: no answer from the server (the connection), a connection
/// exception (`08…`), the server shutting down or starting up (`57P…`:
/// "terminating connection due to administrator command" on a stop), a
/// serialization failure or a deadlock.
pub fn transient(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        None => true,
        Some(c) => {
            let c = c.code();
            c.starts_with("08") || c.starts_with("57P") || c == "40001" || c == "40P01"
        }
    }
}

use crate::retry::backoff;
use arrow::datatypes::{DataType, Schema};
use connector::PostgresSinkConfig as PostgresSinkSpec;

/// Postgres type to create for an Arrow type, and the types an existing
/// column may have; `None` when the type cannot be written.
pub fn pg_type(t: &DataType) -> Option<(&'static str, &'static [&'static str])> {
    Some(match t {
        DataType::Utf8 | DataType::LargeUtf8 => (
            "text",
            &[
                "text",
                "character varying",
                "character",
                "bpchar",
                "varchar",
            ][..],
        ),
        DataType::Int32 => ("integer", &["integer", "bigint", "numeric"][..]),
        DataType::Int64 => ("bigint", &["bigint", "numeric"][..]),
        DataType::Float32 => ("real", &["real", "double precision", "numeric"][..]),
        DataType::Float64 => ("double precision", &["double precision", "numeric"][..]),
        DataType::Boolean => ("boolean", &["boolean"][..]),
        DataType::Timestamp(_, None) => (
            "timestamp",
            &[
                "timestamp without time zone",
                "timestamp with time zone",
                "timestamp",
            ][..],
        ),
        DataType::Date32 => ("date", &["date"][..]),
        _ => return None,
    })
}

/// Static checks at plan time: every input column has a Postgres type and
/// the upsert key columns exist. Errors are `(key, message, hint)`.
pub fn check_columns(
    schema: &Schema,
    spec: &PostgresSinkSpec,
) -> std::result::Result<(), (&'static str, String, Option<String>)> {
    for f in schema.fields() {
        if pg_type(f.data_type()).is_none() {
            return Err((
                "inputs",
                format!(
                    "column `{}` has type {} which the postgres sink cannot write",
                    f.name(),
                    f.data_type()
                ),
                Some(
                    "cast it in a sql transform to text, bigint, double, bool, timestamp or date"
                        .into(),
                ),
            ));
        }
    }
    if spec.mode == PostgresMode::Upsert {
        for k in &spec.key_columns {
            if schema.index_of(k).is_err() {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                return Err((
                    "key_columns",
                    format!("key column `{k}` is not in the input"),
                    Some(format!("columns: {}", names.join(", "))),
                ));
            }
        }
    }
    Ok(())
}

/// Quote an identifier (`schema.table` is quoted part by part).
pub(crate) fn quote_ident(name: &str) -> String {
    name.split('.')
        .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;

    #[test]
    fn unsupported_types_and_missing_keys_are_reported() {
        let spec = PostgresSinkSpec {
            inputs: vec!["a".into()],
            url: "postgres://x".into(),
            table: "t".into(),
            mode: PostgresMode::Upsert,
            key_columns: vec!["id".into()],
            create: true,
        };
        let ok = Schema::new(vec![Field::new("id", DataType::Int64, false)]);
        assert!(check_columns(&ok, &spec).is_ok());
        let no_key = Schema::new(vec![Field::new("v", DataType::Int64, false)]);
        assert_eq!(check_columns(&no_key, &spec).unwrap_err().0, "key_columns");
        let bad = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("b", DataType::Binary, false),
        ]);
        let e = check_columns(&bad, &spec).unwrap_err();
        assert!(e.1.contains("`b`"), "{}", e.1);
        assert_eq!(quote_ident("s.t\"x"), "\"s\".\"t\"\"x\"");
    }
}
