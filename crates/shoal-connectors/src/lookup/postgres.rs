//! A lookup table in Postgres: `table:` or `query:`, read by key with one
//! `SELECT … WHERE key = ANY($1)` per batch of missing keys.
//!
//! Values are read as text (`col::text`) and parsed into the declared
//! Arrow types, so any Postgres type whose text Arrow can parse works
//! (`numeric` into float64, `timestamp` into timestamp_ms, …). Without a
//! declared `schema:` the columns and their types come from Postgres at
//! plan time.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow::array::{ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef, TimeUnit};
use shoal_dsl::PostgresRelation;
use shoal_runtime::LookupStore;

use crate::postgres::{PgClient, quote_ident};
use crate::retry::{backoff, retry_for};

/// A Postgres table or query read by key.
pub struct PostgresLookup {
    url: String,
    /// `table AS t` or `(query) AS t`.
    from: String,
    what: String,
    schema: SchemaRef,
    client: Mutex<Option<PgClient>>,
    /// The batch query prepared on the current connection, with its text.
    statement: Mutex<Option<(String, tokio_postgres::Statement)>>,
}

impl std::fmt::Debug for PostgresLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresLookup")
            .field("what", &self.what)
            .finish()
    }
}

/// The Arrow type a Postgres column is read as, when no schema is declared.
fn arrow_type(pg: &str) -> Option<DataType> {
    Some(match pg {
        "int2" | "int4" => DataType::Int32,
        "int8" => DataType::Int64,
        "float4" | "float8" | "numeric" => DataType::Float64,
        "bool" => DataType::Boolean,
        "text" | "varchar" | "bpchar" | "name" | "uuid" | "json" | "jsonb" => DataType::Utf8,
        "timestamp" => DataType::Timestamp(TimeUnit::Millisecond, None),
        "date" => DataType::Date32,
        _ => return None,
    })
}

/// Whether a declared Arrow type can be read from a Postgres column type.
fn compatible(declared: &DataType, pg: &str) -> bool {
    match declared {
        DataType::Utf8 => true,
        DataType::Int64 => matches!(pg, "int2" | "int4" | "int8"),
        DataType::Int32 => matches!(pg, "int2" | "int4"),
        DataType::Float64 | DataType::Float32 => {
            matches!(
                pg,
                "float4" | "float8" | "numeric" | "int2" | "int4" | "int8"
            )
        }
        DataType::Boolean => pg == "bool",
        DataType::Timestamp(..) => matches!(pg, "timestamp" | "date"),
        DataType::Date32 => pg == "date",
        _ => false,
    }
}

impl PostgresLookup {
    /// Describe `relation` at `url`: with `declared` columns, check them
    /// against Postgres when it answers (a server that is down is waited
    /// for at run time); without, read the columns from Postgres. Errors
    /// are plan-time messages.
    pub fn open(
        url: &str,
        relation: &PostgresRelation,
        declared: Option<SchemaRef>,
    ) -> Result<Self, String> {
        let (from, what) = match relation {
            PostgresRelation::Table(t) => (
                format!(
                    "{} AS t",
                    t.split('.').map(quote_ident).collect::<Vec<_>>().join(".")
                ),
                format!("postgres table {t}"),
            ),
            PostgresRelation::Query(q) => (format!("({q}) AS t"), "postgres query".to_string()),
        };
        let client = match PgClient::connect(url) {
            Ok(c) => Some(c),
            Err(e) if declared.is_some() => {
                tracing::warn!(error = %e, "postgres lookup: cannot check the table now; it is read at run time");
                None
            }
            Err(e) => {
                return Err(format!(
                    "{e}; declare the table's `schema:` to start without Postgres"
                ));
            }
        };
        let schema = match &client {
            None => declared.expect("checked"),
            Some(c) => {
                let sql = format!("SELECT * FROM {from} LIMIT 0");
                let columns: Vec<(String, String)> = c
                    .run(move |rt, c| {
                        let st = rt.block_on(c.prepare(&sql)).map_err(|e| {
                            crate::postgres::pg_err("read the lookup table's columns", e)
                        })?;
                        Ok(st
                            .columns()
                            .iter()
                            .map(|c| (c.name().to_string(), c.type_().name().to_string()))
                            .collect())
                    })
                    .map_err(|e| e.to_string())?;
                match declared {
                    Some(d) => {
                        for f in d.fields() {
                            let Some((_, pg)) = columns.iter().find(|(n, _)| n == f.name()) else {
                                let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
                                return Err(format!(
                                    "{what} has no column `{}` (it has: {})",
                                    f.name(),
                                    names.join(", ")
                                ));
                            };
                            if !compatible(f.data_type(), pg) {
                                return Err(format!(
                                    "column `{}` is {pg} in Postgres but declared {}",
                                    f.name(),
                                    f.data_type()
                                ));
                            }
                        }
                        d
                    }
                    None => Arc::new(Schema::new(
                        columns
                            .iter()
                            .map(|(n, pg)| {
                                arrow_type(pg)
                                    .map(|t| Field::new(n, t, true))
                                    .ok_or_else(|| {
                                        format!(
                                            "column `{n}` has type {pg}, which Shoal cannot read; declare `schema:` (e.g. {n}: utf8)"
                                        )
                                    })
                            })
                            .collect::<Result<Vec<_>, _>>()?,
                    )),
                }
            }
        };
        Ok(Self {
            url: url.to_string(),
            from,
            what,
            schema: super::nullable(&schema),
            client: Mutex::new(client),
            statement: Mutex::new(None),
        })
    }

    /// Run the batch's query, reconnecting while Postgres cannot be reached.
    fn query(&self, sql: String, keys: KeyParam) -> Result<Vec<tokio_postgres::Row>, String> {
        let started = Instant::now();
        let mut delays = backoff();
        let mut client = self.client.lock().expect("not poisoned");
        loop {
            if client.is_none() {
                *client = Some(PgClient::connect_retrying(&self.url).map_err(|e| e.to_string())?);
            }
            let c = client.as_ref().expect("connected");
            // The batch query is prepared once per connection (and per key
            // column), not planned again for every batch.
            let stmt = self.statement.lock().expect("not poisoned").clone();
            let (sql, keys) = (sql.clone(), keys.clone());
            let answer = c.run(move |rt, c| {
                Ok(rt.block_on(async {
                    let stmt = match stmt {
                        Some((text, st)) if text == sql => st,
                        _ => c.prepare(&sql).await?,
                    };
                    let rows = match &keys {
                        KeyParam::I64(v) => c.query(&stmt, &[v]).await,
                        KeyParam::I32(v) => c.query(&stmt, &[v]).await,
                        KeyParam::Text(v) => c.query(&stmt, &[v]).await,
                    }?;
                    Ok::<_, tokio_postgres::Error>((rows, (sql, stmt)))
                }))
            });
            let answer = match answer {
                Ok(Ok((rows, prepared))) => {
                    *self.statement.lock().expect("not poisoned") = Some(prepared);
                    Ok(Ok(rows))
                }
                Ok(Err(e)) => Ok(Err(e)),
                Err(e) => Err(e),
            };
            let err = match answer {
                Ok(Ok(rows)) => return Ok(rows),
                Ok(Err(e)) if !crate::postgres::transient(&e) => {
                    return Err(format!(
                        "{}: {}",
                        self.what,
                        crate::postgres::pg_err("lookup", e)
                    ));
                }
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            *client = None;
            *self.statement.lock().expect("not poisoned") = None;
            if started.elapsed() >= retry_for() {
                return Err(format!(
                    "{}: postgres unreachable for {} s: {err}",
                    self.what,
                    retry_for().as_secs()
                ));
            }
            let wait = delays.next().expect("endless");
            tracing::warn!(lookup = %self.what, error = %err, retry_in_ms = wait.as_millis() as u64,
                "postgres unavailable; retrying the lookup");
            std::thread::sleep(wait);
        }
    }
}

/// The batch's keys as a query parameter.
#[derive(Clone)]
enum KeyParam {
    I64(Vec<i64>),
    I32(Vec<i32>),
    Text(Vec<String>),
}

impl LookupStore for PostgresLookup {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn fetch(&self, column: &str, keys: &ArrayRef) -> Result<RecordBatch, String> {
        let (param, cast) = match keys.data_type() {
            DataType::Int64 => (
                KeyParam::I64(keys.as_primitive::<Int64Type>().values().to_vec()),
                "bigint[]",
            ),
            DataType::Int32 => (
                KeyParam::I32(keys.as_primitive::<Int32Type>().values().to_vec()),
                "int4[]",
            ),
            DataType::Utf8 => (
                KeyParam::Text(
                    keys.as_string::<i32>()
                        .iter()
                        .map(|v| v.unwrap_or_default().to_string())
                        .collect(),
                ),
                "text[]",
            ),
            other => {
                return Err(format!(
                    "a postgres lookup key cannot be {other} (int32, int64 or utf8)"
                ));
            }
        };
        let columns: Vec<String> = self
            .schema
            .fields()
            .iter()
            .map(|f| format!("t.{}::text", quote_ident(f.name())))
            .collect();
        let sql = format!(
            "SELECT {} FROM {} WHERE t.{} = ANY($1::{cast})",
            columns.join(", "),
            self.from,
            quote_ident(column)
        );
        let rows = self.query(sql, param)?;
        let mut out: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (i, f) in self.schema.fields().iter().enumerate() {
            let values: Vec<Option<String>> =
                rows.iter().map(|r| r.get::<_, Option<String>>(i)).collect();
            let (col, lost) = super::text_column(values, f.data_type())?;
            if lost > 0 {
                tracing::warn!(lookup = %self.what, column = %f.name(), values = lost,
                    "lookup values that do not parse as the declared type read as NULL");
            }
            out.push(col);
        }
        RecordBatch::try_new(self.schema.clone(), out).map_err(|e| e.to_string())
    }

    fn describe(&self) -> String {
        self.what.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_map_and_check() {
        assert_eq!(arrow_type("int8"), Some(DataType::Int64));
        assert_eq!(arrow_type("numeric"), Some(DataType::Float64));
        assert_eq!(arrow_type("point"), None);
        assert!(compatible(&DataType::Int64, "int4"));
        assert!(!compatible(&DataType::Int32, "int8"));
        assert!(compatible(&DataType::Utf8, "int8"));
        assert!(!compatible(&DataType::Boolean, "text"));
    }
}
