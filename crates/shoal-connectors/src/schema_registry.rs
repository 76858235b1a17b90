//! A Confluent-compatible schema registry, read over plain HTTP: writer
//! schemas by id for the Avro and Protobuf decoders, registration for the
//! encoders.
//!
//! While the registry cannot be reached, requests are retried with backoff
//! for [`retry_for`](crate::retry::retry_for), then the job fails. Calls block: make them through
//! [`shoal_runtime::off_worker`].

use std::time::{Duration, Instant};

use shoal_runtime::{Result, RuntimeError};

use crate::retry::{backoff, retry_for};

/// The Confluent wire format's first byte.
pub const MAGIC: u8 = 0;

/// A schema registry client.
pub struct SchemaRegistry {
    url: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRegistry")
            .field("url", &self.url)
            .finish()
    }
}

/// A schema the registry holds.
#[derive(Debug, Clone)]
pub struct Registered {
    /// `AVRO`, `PROTOBUF` or `JSON`.
    pub kind: String,
    /// The schema text (Avro JSON, `.proto` source).
    pub text: String,
    /// Other schemas it imports: (import name, subject, version).
    pub references: Vec<(String, String, i64)>,
}

/// What the registry said about a schema id.
#[derive(Debug)]
pub enum Lookup {
    /// The schema.
    Found(Registered),
    /// No schema has this id.
    Unknown,
}

impl SchemaRegistry {
    /// A client of the registry at `url` (`http://host:port`).
    pub fn new(url: &str) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        Self {
            url: url.trim_end_matches('/').to_string(),
            agent,
        }
    }

    /// Run `attempt` until it answers: `Ok(Ok(v))` is the answer,
    /// `Ok(Err(e))` a failure to reach the registry, retried with backoff
    /// for [`retry_for`](crate::retry::retry_for); `Err` ends at once.
    fn retrying<T>(
        url: &str,
        mut attempt: impl FnMut() -> Result<std::result::Result<T, String>>,
    ) -> Result<T> {
        let started = Instant::now();
        let mut delays = backoff();
        loop {
            let err = match attempt()? {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if started.elapsed() >= retry_for() {
                return Err(RuntimeError::External(format!(
                    "schema registry {url}: unreachable for {} s: {err}",
                    retry_for().as_secs()
                )));
            }
            let wait = delays.next().expect("endless");
            tracing::warn!(url = %url, error = %err, retry_in_ms = wait.as_millis() as u64,
                "schema registry unavailable; retrying");
            std::thread::sleep(wait);
        }
    }

    /// GET `path`: the JSON answer, `None` on 404.
    fn get(&self, path: &str) -> Result<Option<serde_json::Value>> {
        let url = format!("{}{path}", self.url);
        Self::retrying(&url, || {
            Ok(match self.agent.get(&url).call() {
                Ok(mut resp) => {
                    let text = resp.body_mut().read_to_string().map_err(|e| {
                        RuntimeError::External(format!("schema registry {url}: {e}"))
                    })?;
                    let v = serde_json::from_str(&text).map_err(|e| {
                        RuntimeError::External(format!("schema registry {url}: not JSON: {e}"))
                    })?;
                    Ok(Some(v))
                }
                Err(ureq::Error::StatusCode(404)) => Ok(None),
                Err(ureq::Error::StatusCode(code)) if code < 500 => {
                    return Err(RuntimeError::External(format!(
                        "schema registry {url}: HTTP {code}"
                    )));
                }
                Err(e) => Err(e.to_string()),
            })
        })
    }

    /// The schema with id `id`, waiting out an unreachable registry.
    pub fn schema(&self, id: u32) -> Result<Lookup> {
        let Some(v) = self.get(&format!("/schemas/ids/{id}"))? else {
            return Ok(Lookup::Unknown);
        };
        Ok(Lookup::Found(
            self.registered(&format!("schema id {id}"), &v)?,
        ))
    }

    /// Version `version` of `subject` (a schema's reference).
    pub fn version(&self, subject: &str, version: i64) -> Result<Option<Registered>> {
        let what = format!("subject {subject} version {version}");
        match self.get(&format!("/subjects/{subject}/versions/{version}"))? {
            Some(v) => Ok(Some(self.registered(&what, &v)?)),
            None => Ok(None),
        }
    }

    fn registered(&self, what: &str, v: &serde_json::Value) -> Result<Registered> {
        let text = v["schema"].as_str().ok_or_else(|| {
            RuntimeError::External(format!(
                "schema registry {}: no `schema` in the answer for {what}",
                self.url
            ))
        })?;
        let references = v["references"]
            .as_array()
            .map(|refs| {
                refs.iter()
                    .filter_map(|r| {
                        Some((
                            r["name"].as_str()?.to_string(),
                            r["subject"].as_str()?.to_string(),
                            r["version"].as_i64()?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Registered {
            kind: v["schemaType"].as_str().unwrap_or("AVRO").to_string(),
            text: text.to_string(),
            references,
        })
    }

    /// Register `schema` (of `kind`: `AVRO`, `PROTOBUF`) under `subject`,
    /// or find it there: its id. Waits out an unreachable registry; a
    /// refusal (an incompatible schema) fails at once.
    pub fn register(&self, subject: &str, kind: &str, schema: &str) -> Result<u32> {
        let url = format!("{}/subjects/{subject}/versions", self.url);
        let body = if kind == "AVRO" {
            serde_json::json!({ "schema": schema })
        } else {
            serde_json::json!({ "schema": schema, "schemaType": kind })
        }
        .to_string();
        Self::retrying(&url, || {
            let answer = self
                .agent
                .post(&url)
                .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                .config()
                .http_status_as_error(false)
                .build()
                .send(body.as_bytes());
            Ok(match answer {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    let text = resp.body_mut().read_to_string().unwrap_or_default();
                    if status == 200 {
                        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                            RuntimeError::External(format!("schema registry {url}: not JSON: {e}"))
                        })?;
                        let id = v["id"].as_u64().ok_or_else(|| {
                            RuntimeError::External(format!(
                                "schema registry {url}: no id in {text}"
                            ))
                        })?;
                        Ok(id as u32)
                    } else if status < 500 {
                        return Err(RuntimeError::User(format!(
                            "schema registry refused the schema for subject `{subject}` (HTTP {status}): {text}"
                        )));
                    } else {
                        Err(format!("HTTP {status}: {text}"))
                    }
                }
                Err(e) => Err(e.to_string()),
            })
        })
    }
}

/// The schema id of a record in the Confluent wire format (byte 0, a
/// 4-byte big-endian id), or why it is not in that format.
pub fn framed_id(r: &[u8]) -> std::result::Result<u32, String> {
    if r.len() < 5 || r[0] != MAGIC {
        return Err(format!(
            "not in the Confluent wire format (byte 0 is {}, a 0 and a 4-byte schema id expected)",
            r.first()
                .map_or("missing".to_string(), |b| format!("0x{b:02x}"))
        ));
    }
    Ok(u32::from_be_bytes([r[1], r[2], r[3], r[4]]))
}
