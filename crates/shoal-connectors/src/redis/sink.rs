//! The Redis sink task: each row becomes a hash (`HSET key field value …`).
//!
//! # With checkpoints: each epoch once, atomically
//!
//! Two phases, like the other transactional sinks:
//!
//! 1. At the checkpoint barrier ([`Sink::pre_commit`]) the epoch's rows are
//!    *staged* in Redis: one list `shoal:{pipeline}:{sink}:stage:{task}:{epoch}`
//!    written in one `MULTI`/`EXEC` together with its entry in the sink's
//!    set of staged epochs. Nothing a reader looks at changes.
//! 2. When the checkpoint is complete ([`Sink::commit`]) a Lua script
//!    ([`apply.lua`](./apply.lua)) writes the staged rows into their
//!    hashes, records the epoch in the sink's marker hash
//!    `shoal:{pipeline}:{sink}:epochs` (task → last epoch applied) and
//!    drops the stage. Redis runs a script alone, so the epoch appears all
//!    at once; an epoch the marker already holds is skipped, so a commit
//!    that is repeated (after a crash, or a retry whose first answer was
//!    lost) changes nothing.
//!
//! A restarted job ([`Sink::recover`]) applies the task's staged epochs up
//! to the checkpoint it restores (they were committed, but the process died
//! before Redis heard of it) and drops the later ones (their checkpoint
//! never completed; the job replays them).
//!
//! What a reader of Redis observes: every hash holds the values of a whole
//! number of epochs — the features as of the last completed checkpoint,
//! trailing the pipeline by up to one checkpoint interval — never part of
//! an epoch. While a large epoch is applied Redis answers no other client
//! (a script runs alone); the README's benchmark gives the time per row.
//!
//! # Without checkpoints
//!
//! Rows are written as they come (every [`FLUSH_ROWS`] rows and at the end
//! of input), each flush atomically, at least once across failures.
//!
//! # Bad rows and outages
//!
//! A row with a NULL in a key column, or whose key holds a Redis value that
//! is not a hash (checked at the barrier, and again by the apply script),
//! goes to the dead-letter output with the reason; the rest of the epoch is
//! written. While Redis cannot be reached every step is
//! retried with backoff for [`retry_for`](crate::retry::retry_for), then
//! the job fails; an epoch is applied whole or not at all.

use std::sync::Arc;

use super::RedisSinkConfig as RedisSinkSpec;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use shoal_runtime::{DeadLetter, NodeMetrics, Result, RuntimeError, Sink};

use super::conn::RedisConn;
use super::row::{RowEncoder, Texts};

/// Rows buffered before a write in a run without checkpoints.
pub const FLUSH_ROWS: usize = 8192;

/// Staged rows sent per `RPUSH`.
const PUSH_CHUNK: usize = 1000;

/// Keys whose type is checked per round trip.
const TYPE_CHUNK: usize = 10_000;

/// Who a sink task is: its marker and stage keys are named after it.
#[derive(Debug, Clone)]
pub struct RedisSinkTask {
    /// Pipeline name.
    pub pipeline: String,
    /// Sink node id.
    pub sink: String,
    /// Task id: instance and process identity (`0@…`).
    pub task: String,
    /// Whether the pipeline checkpoints.
    pub checkpointing: bool,
}

/// The Redis keys a sink keeps its bookkeeping in.
#[derive(Debug, Clone)]
pub struct SinkKeys {
    /// Hash: task → last epoch applied.
    pub epochs: String,
    /// Set of staged epochs, members `task|epoch`.
    pub staged: String,
    prefix: String,
}

impl SinkKeys {
    /// The keys of sink `sink` of pipeline `pipeline`.
    pub fn new(pipeline: &str, sink: &str) -> Self {
        let prefix = format!("shoal:{pipeline}:{sink}");
        Self {
            epochs: format!("{prefix}:epochs"),
            staged: format!("{prefix}:staged"),
            prefix,
        }
    }

    /// The list holding a staged epoch of a task.
    pub fn stage(&self, task: &str, epoch: &str) -> String {
        format!("{}:stage:{task}:{epoch}", self.prefix)
    }
}

/// One Redis sink instance.
pub struct RedisSink {
    conn: RedisConn,
    encoder: RowEncoder,
    task: RedisSinkTask,
    keys: SinkKeys,
    /// The field names as a JSON array (the apply script's argument).
    fields: String,
    ttl_ms: u64,
    /// Rows written since the last barrier (staged JSON arrays), and their keys.
    rows: Texts,
    row_keys: Texts,
    /// Epochs staged and not yet applied, oldest first.
    staged: Vec<u64>,
    /// Flushes without checkpoints, to name their stage lists.
    flushes: u64,
    rejected: Vec<DeadLetter>,
    script: redis::Script,
}

impl RedisSink {
    /// A sink writing `schema`'s rows as `spec` says; connects on first use.
    pub fn new(spec: RedisSinkSpec, schema: SchemaRef, task: RedisSinkTask) -> Result<Self> {
        let encoder = RowEncoder::new(&spec, &schema).map_err(|(_, msg, _)| {
            RuntimeError::User(format!("redis sink {}: {msg}", task.sink))
        })?;
        let fields = serde_json::to_string(&encoder.field_names()).expect("strings encode");
        Ok(Self {
            conn: RedisConn::new(&spec.url, format!("redis sink {}", task.sink))?,
            keys: SinkKeys::new(&task.pipeline, &task.sink),
            encoder,
            fields,
            ttl_ms: spec.ttl.map_or(0, |t| t.as_millis() as u64),
            task,
            rows: Texts::default(),
            row_keys: Texts::default(),
            staged: Vec::new(),
            flushes: 0,
            rejected: Vec::new(),
            script: redis::Script::new(include_str!("apply.lua")),
        })
    }

    /// Take the buffered rows, leaving out (as dead letters) those whose
    /// key holds a Redis value that is not a hash — found now, at the
    /// barrier, so that their dead letters belong to this epoch.
    fn take_rows(&mut self) -> Result<Texts> {
        let rows = std::mem::take(&mut self.rows);
        let keys = std::mem::take(&mut self.row_keys);
        let mut kinds: Vec<String> = Vec::with_capacity(keys.len());
        let all: Vec<&str> = keys.iter().collect();
        for chunk in all.chunks(TYPE_CHUNK) {
            kinds.extend(self.conn.run("check key types", |con| {
                let mut p = redis::pipe();
                for k in chunk {
                    p.cmd("TYPE").arg(*k);
                }
                p.query::<Vec<String>>(con)
            })?);
        }
        let fits = |kind: &str| kind == "hash" || kind == "none";
        if kinds.iter().all(|k| fits(k)) {
            return Ok(rows);
        }
        let mut kept = Texts::default();
        for (i, kind) in kinds.iter().enumerate() {
            if fits(kind) {
                kept.push(rows.get(i));
            } else {
                self.rejected
                    .push(self.wrong_type(keys.get(i), kind, rows.get(i).to_string()));
            }
        }
        Ok(kept)
    }

    /// The dead letter of a row whose key holds another Redis type.
    fn wrong_type(&self, key: &str, kind: &str, row: String) -> DeadLetter {
        DeadLetter {
            node: self.task.sink.clone(),
            partition: None,
            offset: None,
            reason: format!("redis sink: key `{key}` holds a {kind}, not a hash"),
            record: row,
        }
    }

    /// Stage `rows` as list `stage` (replacing anything there) and record
    /// it in the staged set, in one transaction.
    fn stage(&mut self, stage: &str, member: &str, rows: &Texts) -> Result<()> {
        let staged = self.keys.staged.clone();
        let rows: Vec<&str> = rows.iter().collect();
        self.conn.run("stage an epoch", |con| {
            let mut p = redis::pipe();
            p.atomic().del(stage).ignore();
            for chunk in rows.chunks(PUSH_CHUNK) {
                p.rpush(stage, chunk).ignore();
            }
            p.sadd(&staged, member).ignore();
            p.query::<()>(con)
        })
    }

    /// Run the apply script for a staged list (see the module docs).
    fn apply(&mut self, task: &str, epoch: &str, marker: bool) -> Result<()> {
        let stage = self.keys.stage(task, epoch);
        let member = format!("{task}|{epoch}");
        let (keys, fields, ttl, script) =
            (self.keys.clone(), &self.fields, self.ttl_ms, &self.script);
        let answer: Vec<redis::Value> = self.conn.run("apply an epoch", |con| {
            script
                .key(&keys.epochs)
                .key(&stage)
                .key(&keys.staged)
                .arg(task)
                .arg(epoch)
                .arg(fields)
                .arg(ttl)
                .arg(&member)
                .arg(if marker { "1" } else { "0" })
                .invoke(con)
        })?;
        let text = |v: &redis::Value| -> String {
            redis::from_redis_value_ref::<String>(v).unwrap_or_default()
        };
        let rows = answer
            .first()
            .and_then(|v| redis::from_redis_value_ref::<i64>(v).ok())
            .unwrap_or(0);
        tracing::debug!(sink = %self.task.sink, task, epoch, rows, "redis epoch applied");
        // Rows whose key changed type since the barrier checked it (see
        // `take_rows`): their dead letters fall in the next epoch.
        for bad in answer[1..].chunks(2) {
            let (row, kind) = (text(&bad[0]), bad.get(1).map(text).unwrap_or_default());
            let key = serde_json::from_str::<Vec<serde_json::Value>>(&row)
                .ok()
                .and_then(|v| v.first().and_then(|k| k.as_str().map(str::to_owned)))
                .unwrap_or_default();
            self.rejected.push(self.wrong_type(&key, &kind, row));
        }
        Ok(())
    }

    /// Write the buffered rows now (runs without checkpoints).
    fn flush_direct(&mut self) -> Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        self.flushes += 1;
        let (task, name) = (self.task.task.clone(), format!("direct{}", self.flushes));
        let stage = self.keys.stage(&task, &name);
        shoal_runtime::off_worker(|| {
            let rows = self.take_rows()?;
            self.stage(&stage, &format!("{task}|{name}"), &rows)?;
            self.apply(&task, &name, false)
        })
    }

    /// Apply this task's staged epochs up to `epoch`, oldest first.
    fn apply_up_to(&mut self, epoch: u64) -> Result<()> {
        while let Some(&e) = self.staged.first().filter(|&&e| e <= epoch) {
            let task = self.task.task.clone();
            self.apply(&task, &e.to_string(), true)?;
            self.staged.remove(0);
        }
        Ok(())
    }
}

impl Sink for RedisSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut bad = Vec::new();
        self.encoder
            .encode(batch, &mut self.rows, &mut self.row_keys, &mut bad)?;
        for (row, reason) in bad {
            self.rejected.push(DeadLetter {
                node: self.task.sink.clone(),
                partition: None,
                offset: None,
                reason,
                record: crate::format::row_json(batch, row),
            });
        }
        if !self.task.checkpointing && self.rows.len() >= FLUSH_ROWS {
            self.flush_direct()?;
        }
        Ok(())
    }

    fn pre_commit(&mut self, epoch: u64) -> Result<()> {
        if !self.task.checkpointing || self.rows.is_empty() {
            return Ok(());
        }
        let rows = self.take_rows()?;
        let task = self.task.task.clone();
        let e = epoch.to_string();
        let (stage, member) = (self.keys.stage(&task, &e), format!("{task}|{e}"));
        self.stage(&stage, &member, &rows)?;
        self.staged.push(epoch);
        Ok(())
    }

    fn commit(&mut self, epoch: u64) -> Result<()> {
        self.apply_up_to(epoch)
    }

    fn finish(&mut self) -> Result<()> {
        self.flush_direct()
    }

    fn take_rejected(&mut self) -> Vec<DeadLetter> {
        std::mem::take(&mut self.rejected)
    }

    fn recover(&mut self, committed: Option<u64>) -> Result<()> {
        let staged_key = self.keys.staged.clone();
        let members: Vec<String> = self.conn.run("list staged epochs", |con| {
            redis::cmd("SMEMBERS").arg(&staged_key).query(con)
        })?;
        let prefix = format!("{}|", self.task.task);
        let mut mine: Vec<(u64, String)> = members
            .iter()
            .filter_map(|m| m.strip_prefix(&prefix))
            .map(|e| (e.parse::<u64>().unwrap_or(u64::MAX), e.to_string()))
            .collect();
        mine.sort();
        let task = self.task.task.clone();
        for (epoch, name) in mine {
            if committed.is_some_and(|c| epoch <= c) {
                tracing::info!(sink = %self.task.sink, epoch, "applying an epoch committed before a restart");
                self.apply(&task, &name, true)?;
            } else {
                let (stage, member) = (self.keys.stage(&task, &name), format!("{task}|{name}"));
                self.conn.run("drop an aborted epoch", |con| {
                    redis::pipe()
                        .atomic()
                        .del(&stage)
                        .ignore()
                        .srem(&staged_key, &member)
                        .ignore()
                        .query::<()>(con)
                })?;
            }
        }
        Ok(())
    }

    fn bind_metrics(&mut self, metrics: Arc<NodeMetrics>) {
        self.conn.bind_metrics(metrics);
    }
}

impl std::fmt::Debug for RedisSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSink")
            .field("task", &self.task)
            .finish()
    }
}
