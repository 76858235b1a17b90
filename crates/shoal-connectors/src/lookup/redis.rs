//! A lookup table in Redis: one hash per key (`key: "merchant:{merchant_id}"`),
//! its fields the table's other columns. A batch of missing keys is one
//! pipelined round trip of `HMGET`s. A hash that does not exist — or has
//! none of the fields — is no row; a missing field is NULL. The key column
//! is filled from the key, not read from the hash.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::datatypes::SchemaRef;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use shoal_dsl::{KeyPart, key_template};
use shoal_runtime::LookupStore;

use crate::redis::RedisConn;

/// Hashes read per pipelined round trip.
const CHUNK: usize = 10_000;

/// A Redis lookup table.
#[derive(Debug)]
pub struct RedisLookup {
    conn: Mutex<RedisConn>,
    key: Vec<KeyPart>,
    key_column: String,
    /// The columns read from the hash (every column but the key's).
    fields: Vec<String>,
    schema: SchemaRef,
    template: String,
}

impl RedisLookup {
    /// A table of hashes `template` (naming one column of `schema`) at
    /// `url`; checks the server answers when it is up (a server that is
    /// down is waited for at run time). Errors are plan-time messages.
    pub fn open(url: &str, template: &str, schema: SchemaRef) -> Result<Self, String> {
        let key = key_template(template)?;
        let columns: Vec<&String> = key
            .iter()
            .filter_map(|p| match p {
                KeyPart::Column(c) => Some(c),
                KeyPart::Text(_) => None,
            })
            .collect();
        let [key_column] = columns.as_slice() else {
            return Err("a redis lookup's key names exactly one column".into());
        };
        let key_column = (*key_column).clone();
        if schema.index_of(&key_column).is_err() {
            return Err(format!("the key column `{key_column}` is not in `schema:`"));
        }
        let fields = schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| *n != key_column)
            .collect();
        let mut conn =
            RedisConn::new(url, format!("redis lookup {template}")).map_err(|e| e.to_string())?;
        match conn.once(|c| redis::cmd("PING").query::<String>(c)) {
            Ok(_) => {}
            Err(e) if crate::redis::conn::unreachable(&e) => {
                tracing::warn!(error = %e, "redis lookup: server not reachable now; it is read at run time");
            }
            Err(e) => return Err(format!("redis at {url}: {e}")),
        }
        Ok(Self {
            conn: Mutex::new(conn),
            key,
            key_column,
            fields,
            schema: super::nullable(&schema),
            template: template.to_string(),
        })
    }
}

impl LookupStore for RedisLookup {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn check_key(&self, column: &str) -> Result<(), String> {
        if column == self.key_column {
            Ok(())
        } else {
            Err(format!(
                "it is keyed by `{}` (key: \"{}\"), not `{column}`",
                self.key_column, self.template
            ))
        }
    }

    fn fetch(&self, _column: &str, keys: &ArrayRef) -> Result<RecordBatch, String> {
        let fmt = ArrayFormatter::try_new(keys.as_ref(), &FormatOptions::default())
            .map_err(|e| e.to_string())?;
        let names: Vec<String> = (0..keys.len())
            .map(|i| {
                let mut s = String::new();
                for p in &self.key {
                    match p {
                        KeyPart::Text(t) => s.push_str(t),
                        KeyPart::Column(_) => {
                            let _ = write!(s, "{}", fmt.value(i));
                        }
                    }
                }
                s
            })
            .collect();
        let mut answers: Vec<Vec<Option<String>>> = Vec::with_capacity(names.len());
        let mut conn = self.conn.lock().expect("not poisoned");
        for chunk in names.chunks(CHUNK) {
            let got: Vec<Vec<Option<String>>> = conn
                .run("read hashes", |c| {
                    let mut p = redis::pipe();
                    for k in chunk {
                        if self.fields.is_empty() {
                            // Only the key: does the hash exist?
                            p.cmd("EXISTS").arg(k);
                        } else {
                            p.cmd("HMGET").arg(k).arg(&self.fields);
                        }
                    }
                    if self.fields.is_empty() {
                        let e: Vec<i64> = p.query(c)?;
                        Ok(e.into_iter()
                            .map(|n| {
                                if n > 0 {
                                    vec![Some(String::new())]
                                } else {
                                    vec![None]
                                }
                            })
                            .collect())
                    } else {
                        p.query(c)
                    }
                })
                .map_err(|e| e.to_string())?;
            answers.extend(got);
        }
        drop(conn);
        // A hash with none of the fields is no row.
        let present: Vec<u32> = answers
            .iter()
            .enumerate()
            .filter(|(_, a)| a.iter().any(Option::is_some))
            .map(|(i, _)| i as u32)
            .collect();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        let mut field = 0;
        for f in self.schema.fields() {
            if *f.name() == self.key_column {
                let k = arrow::compute::take(keys, &UInt32Array::from(present.clone()), None)
                    .map_err(|e| e.to_string())?;
                columns.push(arrow::compute::cast(&k, f.data_type()).map_err(|e| e.to_string())?);
                continue;
            }
            let values: Vec<Option<String>> = present
                .iter()
                .map(|&i| answers[i as usize][field].take())
                .collect();
            let (col, lost) = super::text_column(values, f.data_type())?;
            if lost > 0 {
                tracing::warn!(lookup = %self.template, field = %f.name(), values = lost,
                    "lookup values that do not parse as the declared type read as NULL");
            }
            columns.push(col);
            field += 1;
        }
        RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(|e| e.to_string())
    }

    fn describe(&self) -> String {
        format!("redis {}", self.template)
    }
}
