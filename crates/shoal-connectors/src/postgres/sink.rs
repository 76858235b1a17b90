//! The Postgres sink task: rows of an epoch are kept (as CSV) until the epoch
//! commits, then written with its marker (and source offsets) in one
//! transaction.
//!
//! When is an epoch written?
//! * With a Kafka source (a ledger): at [`Sink::commit`], after the
//!   checkpoint is durable, together with the source offsets. Exactly once:
//!   after a crash the source resumes from the offsets in `shoal_offsets`,
//!   which always match the rows committed.
//! * Otherwise, with checkpoints: at the barrier ([`Sink::pre_commit`]),
//!   before the checkpoint is durable — at-least-once (a crash between the
//!   two replays that epoch).
//! * Without checkpoints: at the end of input.
//!
//! Rows go as `COPY … FROM STDIN` in text format ([`super::copy_text`]).
//!
//! # Rows Postgres rejects
//!
//! A COPY that fails on its data (SQLSTATE class 22, data exception, or 23,
//! integrity constraint violation: a NULL for a `NOT NULL` column, a NUL
//! byte in text, a value out of range) is rolled back to a savepoint and the
//! epoch's rows are split in halves until each rejected row is alone; every
//! other row is written. In the same transaction each rejected row is
//! recorded in `shoal_rejected` (pipeline, sink, task, epoch, reason, the
//! row as JSON), so the database holds exactly the epoch's rows minus the
//! rejected ones plus their record, whatever crashes. The rows also go to
//! the pipeline's dead-letter output with the reason. The epoch, its
//! marker and its offsets commit as usual: a bad row never stops the job.
//!
//! # Outages
//!
//! A failure of the connection (the server stopped or restarted, the
//! network dropped; not an error the server reports about the data) is
//! retried: the sink reconnects with backoff (0.2 s doubling to 5 s) and
//! runs the epoch's whole transaction again, for up to [`retry_for`](crate::retry::retry_for). A
//! transaction whose commit reached the server before the connection
//! broke is recognised by its marker and not written twice. Past that time
//! the job fails; nothing of the epoch is committed.

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use super::{PostgresMode, PostgresSinkConfig as PostgresSinkSpec};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use futures::SinkExt;
use shoal_runtime::{DeadLetter, Result, RuntimeError, Sink};
use tokio_postgres::{Client, Transaction};

use super::client::{EPOCHS_DDL, OFFSETS_DDL, PgClient, REJECTED_DDL, ensure, pg_err};
use super::{copy_text, pg_type, quote_ident};
use crate::kafka::OffsetLedger;
use shoal_runtime::shard::ShardRegistry;

/// Who a sink task is, for its marker row.
#[derive(Debug, Clone)]
pub struct PostgresSinkTask {
    /// Pipeline name.
    pub pipeline: String,
    /// Sink node id.
    pub sink: String,
    /// Task id: instance and process identity.
    pub task: String,
    /// Source offsets to store with each epoch (a Kafka source).
    pub ledger: Option<Arc<OffsetLedger>>,
    /// State references of partition shards to store with each epoch's
    /// offsets, in the same rows (see `shoal_runtime::shard`).
    pub shards: Option<Arc<ShardRegistry>>,
    /// Whether the pipeline checkpoints.
    pub checkpointing: bool,
}

use crate::retry::retry_for;

/// One Postgres sink instance.
pub struct PostgresSink {
    client: PgClient,
    spec: PostgresSinkSpec,
    task: PostgresSinkTask,
    columns: Vec<String>,
    /// The rows of each epoch not yet written, oldest first.
    pending: Vec<(u64, Vec<RecordBatch>)>,
    epoch: u64,
    /// Rows Postgres rejected, for the dead-letter output.
    rejected: Vec<DeadLetter>,
    /// The node's counters: an outage shows there as what it waits for.
    metrics: Option<std::sync::Arc<shoal_runtime::NodeMetrics>>,
}

/// Connect to the sink's database (and create the session's staging table
/// of an upsert).
fn open(spec: &PostgresSinkSpec) -> Result<PgClient> {
    let client = PgClient::connect(&spec.url)?;
    if spec.mode == PostgresMode::Upsert {
        let t = quote_ident(&spec.table);
        client.batch(format!(
            "CREATE TEMP TABLE shoal_stage (LIKE {t} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
             ALTER TABLE shoal_stage ADD COLUMN shoal_seq bigserial"
        ))?;
    }
    Ok(client)
}

/// Everything the transaction of one epoch writes, kept for a retry.
struct EpochWrite {
    /// The rows, in COPY text format.
    rows: Vec<u8>,
    /// The same rows as batches (a rejected row's record).
    batches: Vec<RecordBatch>,
    copy: String,
    upsert: Option<String>,
    pipeline: String,
    sink: String,
    task: String,
    epoch: i64,
    /// Record the epoch in `shoal_epochs` (checkpointed runs).
    marked: bool,
    group: Option<String>,
    offsets: Vec<((String, i32), i64)>,
    states: Vec<Option<String>>,
    topic: Option<String>,
    state_only: Vec<(i32, String)>,
}

/// What the transaction did.
enum Written {
    /// The epoch was recorded already.
    Skipped,
    /// Written; these rows (index, reason, record) were rejected.
    Rows(Vec<(usize, String, String)>),
}

/// A failed transaction: is it worth running again on a new connection?
struct Failure {
    retry: bool,
    error: RuntimeError,
}

fn fail(context: &str, e: tokio_postgres::Error) -> Failure {
    Failure {
        retry: super::transient(&e),
        error: pg_err(context, e),
    }
}

/// Whether Postgres rejected the rows themselves (data exception,
/// integrity constraint violation).
fn rejects_data(e: &tokio_postgres::Error) -> bool {
    e.code()
        .is_some_and(|c| c.code().starts_with("22") || c.code().starts_with("23"))
}

impl PostgresSink {
    /// Connect, create the marker tables (and the target table when missing
    /// and `create`), and check the target table's columns against `schema`.
    pub fn new(spec: PostgresSinkSpec, schema: SchemaRef, task: PostgresSinkTask) -> Result<Self> {
        let client = PgClient::connect_retrying(&spec.url)?;
        prepare(&client, &spec, &schema, task.ledger.is_some())?;
        drop(client);
        let client = open(&spec)?;
        let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
        Ok(Self {
            client,
            spec,
            task,
            columns,
            pending: Vec::new(),
            epoch: 1,
            metrics: None,
            rejected: Vec::new(),
        })
    }

    fn write_through(&mut self, epoch: u64) -> Result<()> {
        let n = self.pending.partition_point(|(e, _)| *e <= epoch);
        let batches: Vec<RecordBatch> = self
            .pending
            .drain(..n)
            .flat_map(|(_, b)| b)
            .filter(|b| b.num_rows() > 0)
            .collect();
        let mut rows = Vec::new();
        for b in &batches {
            copy_text::encode(b, &mut rows)?;
        }
        let offsets = match &self.task.ledger {
            Some(l) => l.take_upto(epoch),
            None => Vec::new(),
        };
        let group = self.task.ledger.as_ref().map(|l| l.group().to_string());
        // References are merged per operator into what the row holds: an
        // operator that dropped a revoked partition's shard at an earlier
        // barrier than another one records no reference in the later epoch,
        // and its committed one must stay (replacing the whole value lost
        // it: the next owner started that operator's state empty).
        // The state of each partition's shards as of this epoch, stored in
        // its offsets row: the next owner restores exactly this.
        let mut refs: std::collections::BTreeMap<u32, String> = match &self.task.shards {
            Some(s) => s
                .take_refs_upto(epoch)
                .into_iter()
                .map(|(p, r)| Ok((p, serde_json::to_string(&r)?)))
                .collect::<std::result::Result<_, serde_json::Error>>()
                .map_err(|e| RuntimeError::Internal(format!("encode state references: {e}")))?,
            None => Default::default(),
        };
        let topic = self.task.shards.as_ref().and_then(|s| s.topic());
        let mut states: Vec<Option<String>> = Vec::with_capacity(offsets.len());
        for ((t, p), _) in &offsets {
            let mine = topic.as_deref() == Some(t.as_str());
            states.push(if mine {
                refs.remove(&(*p as u32))
            } else {
                None
            });
        }
        let state_only: Vec<(i32, String)> = refs.into_iter().map(|(p, r)| (p as i32, r)).collect();
        let cols = self
            .columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let table = quote_ident(&self.spec.table);
        let copy_target = match self.spec.mode {
            PostgresMode::Insert => table.clone(),
            PostgresMode::Upsert => "shoal_stage".to_string(),
        };
        let copy = format!("COPY {copy_target} ({cols}) FROM STDIN");
        let upsert = (self.spec.mode == PostgresMode::Upsert).then(|| {
            let keys = self
                .spec
                .key_columns
                .iter()
                .map(|c| quote_ident(c))
                .collect::<Vec<_>>()
                .join(", ");
            let updates: Vec<String> = self
                .columns
                .iter()
                .filter(|c| !self.spec.key_columns.contains(c))
                .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(c)))
                .collect();
            let action = if updates.is_empty() {
                "NOTHING".to_string()
            } else {
                format!("UPDATE SET {}", updates.join(", "))
            };
            format!(
                "INSERT INTO {table} ({cols}) SELECT DISTINCT ON ({keys}) {cols} FROM shoal_stage \
                 ORDER BY {keys}, shoal_seq DESC ON CONFLICT ({keys}) DO {action}"
            )
        });
        let w = Arc::new(EpochWrite {
            rows,
            batches,
            copy,
            upsert,
            pipeline: self.task.pipeline.clone(),
            sink: self.task.sink.clone(),
            task: self.task.task.clone(),
            epoch: epoch as i64,
            // Without checkpoints every run starts at epoch 1: no marker then.
            marked: self.task.checkpointing,
            group,
            offsets,
            states,
            topic,
            state_only,
        });
        let started = Instant::now();
        let mut delays = super::backoff();
        let written = loop {
            let attempt = w.clone();
            let outcome = self
                .client
                .run(move |rt, c| Ok(rt.block_on(write_epoch(c, &attempt))));
            let failure = match outcome {
                Ok(Ok(written)) => break written,
                Ok(Err(f)) => f,
                // The connection's thread is gone.
                Err(error) => Failure { retry: true, error },
            };
            if !failure.retry {
                return Err(failure.error);
            }
            if started.elapsed() >= retry_for() {
                return Err(RuntimeError::External(format!(
                    "{} (retried for {} s; nothing of epoch {epoch} was committed)",
                    failure.error,
                    retry_for().as_secs()
                )));
            }
            let backoff = delays.next().expect("an endless schedule");
            tracing::warn!(sink = %self.task.sink, epoch, error = %failure.error,
                retry_in_ms = backoff.as_millis() as u64, "postgres unavailable; retrying the epoch");
            if let Some(m) = &self.metrics {
                m.set_waiting(Some(format!("postgres unavailable: {}", failure.error)));
            }
            std::thread::sleep(backoff);
            match open(&self.spec) {
                Ok(c) => {
                    tracing::info!(sink = %self.task.sink, "postgres reconnected");
                    self.client = c;
                }
                Err(e) => {
                    tracing::warn!(sink = %self.task.sink, error = %e, "postgres reconnect failed")
                }
            }
        };
        if let Some(m) = &self.metrics {
            m.set_waiting(None);
        }
        match written {
            Written::Skipped => {
                tracing::info!(sink = %self.task.sink, epoch, "epoch already recorded; skipped")
            }
            Written::Rows(rejected) if !rejected.is_empty() => {
                tracing::warn!(sink = %self.task.sink, epoch, rows = rejected.len(),
                    "postgres rejected rows; recorded in shoal_rejected and sent to the dead letters");
                self.rejected
                    .extend(rejected.into_iter().map(|(_, reason, record)| DeadLetter {
                        node: self.task.sink.clone(),
                        partition: None,
                        offset: None,
                        reason,
                        record,
                    }));
            }
            Written::Rows(_) => {}
        }
        if let Some(l) = &self.task.ledger {
            l.mark_committed(epoch);
        }
        Ok(())
    }

    /// The newest epoch this task recorded.
    fn recorded_epoch(&self) -> Result<Option<u64>> {
        let (pipeline, sink, task) = (
            self.task.pipeline.clone(),
            self.task.sink.clone(),
            self.task.task.clone(),
        );
        self.client.run(move |rt, c| {
            let row = rt
                .block_on(c.query_opt(
                    "SELECT epoch FROM shoal_epochs WHERE pipeline = $1 AND sink = $2 AND task = $3",
                    &[&pipeline, &sink, &task],
                ))
                .map_err(|e| pg_err("read shoal_epochs", e))?;
            Ok(row.map(|r| r.get::<_, i64>(0) as u64))
        })
    }
}

/// Create what is missing and check what exists.
fn prepare(
    client: &PgClient,
    spec: &PostgresSinkSpec,
    schema: &SchemaRef,
    offsets: bool,
) -> Result<()> {
    ensure(client, EPOCHS_DDL)?;
    ensure(client, REJECTED_DDL)?;
    if offsets {
        ensure(client, OFFSETS_DDL)?;
    }
    let existing = existing_columns(client, spec)?;
    if existing.is_empty() {
        if !spec.create {
            return Err(missing_table(spec));
        }
        let mut cols: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| {
                let (t, _) = pg_type(f.data_type()).expect("checked when planning");
                let null = if f.is_nullable() { "" } else { " NOT NULL" };
                format!("{} {t}{null}", quote_ident(f.name()))
            })
            .collect();
        if spec.mode == PostgresMode::Upsert {
            let keys: Vec<String> = spec.key_columns.iter().map(|k| quote_ident(k)).collect();
            cols.push(format!("PRIMARY KEY ({})", keys.join(", ")));
        }
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            quote_ident(&spec.table),
            cols.join(", ")
        );
        // Retried: two processes of one job creating the table at once can
        // collide in the catalog (`type "…" already exists`).
        return ensure(client, &ddl);
    }
    check_existing(spec, schema, &existing)
}

/// Plan time: when the database answers (within 5 s), a table whose
/// columns do not fit the input, or a missing one without `create: true`,
/// is an error. An unreachable database is not: the run reports it when the
/// sink opens.
pub fn check_table(spec: &PostgresSinkSpec, schema: &SchemaRef) -> std::result::Result<(), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let url = spec.url.clone();
    std::thread::spawn(move || {
        let _ = tx.send(PgClient::connect(&url));
    });
    let client = match rx.recv_timeout(std::time::Duration::from_secs(5)) {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "postgres not reachable at plan time; the table is checked when the sink opens");
            return Ok(());
        }
        Err(_) => {
            tracing::warn!(
                "postgres did not answer within 5 s at plan time; the table is checked when the sink opens"
            );
            return Ok(());
        }
    };
    let existing = existing_columns(&client, spec).map_err(|e| e.to_string())?;
    if existing.is_empty() {
        return match spec.create {
            true => Ok(()),
            false => Err(missing_table(spec).to_string()),
        };
    }
    check_existing(spec, schema, &existing).map_err(|e| e.to_string())
}

fn missing_table(spec: &PostgresSinkSpec) -> RuntimeError {
    RuntimeError::User(format!(
        "postgres table {} does not exist (set create: true to create it)",
        spec.table
    ))
}

/// The table's columns `(name, data type)`, in order; empty if it does not
/// exist.
fn existing_columns(client: &PgClient, spec: &PostgresSinkSpec) -> Result<Vec<(String, String)>> {
    let (schema_name, table_name) = match spec.table.split_once('.') {
        Some((s, t)) => (Some(s.to_string()), t.to_string()),
        None => (None, spec.table.clone()),
    };
    client.run(move |rt, c| {
        let rows = rt
            .block_on(c.query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns
                 WHERE table_schema = coalesce($1, current_schema()) AND table_name = $2
                 ORDER BY ordinal_position",
                &[&schema_name, &table_name],
            ))
            .map_err(|e| pg_err("read table columns", e))?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    })
}

/// Every input column exists in the table with a type that accepts it.
fn check_existing(
    spec: &PostgresSinkSpec,
    schema: &SchemaRef,
    existing: &[(String, String)],
) -> Result<()> {
    for f in schema.fields() {
        let (created, accepted) = pg_type(f.data_type()).expect("checked when planning");
        match existing.iter().find(|(n, _)| n == f.name()) {
            None => {
                return Err(RuntimeError::User(format!(
                    "postgres table {} has no column `{}` (its columns: {})",
                    spec.table,
                    f.name(),
                    existing
                        .iter()
                        .map(|(n, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            Some((_, t)) if !accepted.contains(&t.as_str()) => {
                return Err(RuntimeError::User(format!(
                    "postgres table {} column `{}` is {t}, but the input column is {} (write it to a {created} column)",
                    spec.table,
                    f.name(),
                    f.data_type()
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

impl Sink for PostgresSink {
    fn bind_metrics(&mut self, metrics: std::sync::Arc<shoal_runtime::NodeMetrics>) {
        self.metrics = Some(metrics);
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let epoch = self.epoch;
        if self.pending.last().is_none_or(|(e, _)| *e != epoch) {
            self.pending.push((epoch, Vec::new()));
        }
        self.pending
            .last_mut()
            .expect("just pushed")
            .1
            .push(batch.clone());
        Ok(())
    }

    fn take_rejected(&mut self) -> Vec<DeadLetter> {
        std::mem::take(&mut self.rejected)
    }

    fn pre_commit(&mut self, epoch: u64) -> Result<()> {
        if let Some(last) = self.pending.last_mut()
            && last.0 == self.epoch
        {
            last.0 = epoch;
        }
        self.epoch = epoch + 1;
        if self.task.ledger.is_none() {
            self.write_through(epoch)?;
        }
        Ok(())
    }

    fn commit(&mut self, epoch: u64) -> Result<()> {
        if self.task.ledger.is_some() {
            self.write_through(epoch)?;
        }
        Ok(())
    }

    fn recover(&mut self, committed: Option<u64>) -> Result<()> {
        let recorded = self.recorded_epoch()?;
        let c = committed.unwrap_or(0);
        if let Some(r) = recorded
            && r > c
        {
            // Written at a barrier whose checkpoint never completed: those
            // records are read again and written again (at-least-once), so
            // let the new epochs with the same numbers through.
            tracing::warn!(sink = %self.task.sink, recorded = r, checkpoint = c, "postgres epochs after the checkpoint will be written again");
            let (pipeline, sink, task) = (
                self.task.pipeline.clone(),
                self.task.sink.clone(),
                self.task.task.clone(),
            );
            let c = c as i64;
            self.client.run(move |rt, client| {
                rt.block_on(client.execute(
                    "UPDATE shoal_epochs SET epoch = $4 WHERE pipeline = $1 AND sink = $2 AND task = $3",
                    &[&pipeline, &sink, &task, &c],
                ))
                .map_err(|e| pg_err("reset shoal_epochs", e))?;
                Ok(())
            })?;
        }
        self.epoch = committed.map_or(1, |c| c + 1);
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        let epoch = self.epoch;
        if let Some(last) = self.pending.last_mut()
            && last.0 == epoch
        {
            last.0 = epoch;
        }
        self.epoch = epoch + 1;
        self.write_through(epoch)
    }
}

/// The transaction of one epoch (see the module docs).
async fn write_epoch(c: &mut Client, w: &EpochWrite) -> std::result::Result<Written, Failure> {
    let tx = c.transaction().await.map_err(|e| fail("begin", e))?;
    let done: Option<i64> = tx
        .query_opt(
            "SELECT epoch FROM shoal_epochs WHERE pipeline = $1 AND sink = $2 AND task = $3 FOR UPDATE",
            &[&w.pipeline, &w.sink, &w.task],
        )
        .await
        .map_err(|e| fail("read shoal_epochs", e))?
        .map(|r| r.get(0));
    if w.marked && done.is_some_and(|d| d >= w.epoch) {
        // Already recorded: replaying its commit is a no-op.
        return Ok(Written::Skipped);
    }
    let mut rejected = Vec::new();
    if !w.rows.is_empty() {
        rejected = copy_rows(&tx, &w.copy, &w.rows).await?;
        if let Some(upsert) = &w.upsert {
            tx.execute(upsert.as_str(), &[])
                .await
                .map_err(|e| fail("upsert", e))?;
        }
    }
    let rejected: Vec<(usize, String, String)> = rejected
        .into_iter()
        .map(|(i, reason)| (i, reason, row_json(&w.batches, i)))
        .collect();
    if !rejected.is_empty() {
        let reasons: Vec<&str> = rejected.iter().map(|(_, r, _)| r.as_str()).collect();
        let records: Vec<&str> = rejected.iter().map(|(_, _, j)| j.as_str()).collect();
        tx.execute(
            "INSERT INTO shoal_rejected (pipeline, sink, task, epoch, reason, record)
             SELECT $1, $2, $3, $4, * FROM unnest($5::text[], $6::text[])",
            &[&w.pipeline, &w.sink, &w.task, &w.epoch, &reasons, &records],
        )
        .await
        .map_err(|e| fail("record rejected rows", e))?;
    }
    if w.marked {
        tx.execute(
            "INSERT INTO shoal_epochs (pipeline, sink, task, epoch) VALUES ($1, $2, $3, $4)
             ON CONFLICT (pipeline, sink, task) DO UPDATE SET epoch = EXCLUDED.epoch, committed_at = now()",
            &[&w.pipeline, &w.sink, &w.task, &w.epoch],
        )
        .await
        .map_err(|e| fail("record epoch", e))?;
    }
    if let (Some(group), false) = (&w.group, w.offsets.is_empty()) {
        let topics: Vec<&str> = w.offsets.iter().map(|((t, _), _)| t.as_str()).collect();
        let parts: Vec<i32> = w.offsets.iter().map(|((_, p), _)| *p).collect();
        let next: Vec<i64> = w.offsets.iter().map(|(_, o)| *o).collect();
        tx.execute(
            "INSERT INTO shoal_offsets (consumer_group, topic, partition, next_offset, state)
             SELECT $1, * FROM unnest($2::text[], $3::int[], $4::bigint[], $5::text[])
             ON CONFLICT (consumer_group, topic, partition)
             DO UPDATE SET next_offset = EXCLUDED.next_offset,
                           state = CASE WHEN EXCLUDED.state IS NULL THEN shoal_offsets.state
                                        ELSE (COALESCE(shoal_offsets.state::jsonb, '{}'::jsonb)
                                              || EXCLUDED.state::jsonb)::text END,
                           updated_at = now()",
            &[group, &topics, &parts, &next, &w.states],
        )
        .await
        .map_err(|e| fail("record offsets", e))?;
    }
    if let (Some(group), Some(topic), false) = (&w.group, &w.topic, w.state_only.is_empty()) {
        // Shards whose state changed while their offsets did not
        // (windows fired by time alone).
        let parts: Vec<i32> = w.state_only.iter().map(|(p, _)| *p).collect();
        let st: Vec<&str> = w.state_only.iter().map(|(_, s)| s.as_str()).collect();
        tx.execute(
            "UPDATE shoal_offsets o
             SET state = (COALESCE(o.state::jsonb, '{}'::jsonb) || u.state::jsonb)::text,
                 updated_at = now()
             FROM unnest($3::int[], $4::text[]) AS u(partition, state)
             WHERE o.consumer_group = $1 AND o.topic = $2 AND o.partition = u.partition",
            &[group, topic, &parts, &st],
        )
        .await
        .map_err(|e| fail("record state references", e))?;
    }
    tx.commit().await.map_err(|e| fail("commit", e))?;
    Ok(Written::Rows(rejected))
}

/// COPYs `rows` (text format, one line per row); rows Postgres rejects are
/// isolated by halving under a savepoint and left out. Returns the rejected
/// rows' indexes with the reason.
async fn copy_rows(
    tx: &Transaction<'_>,
    copy: &str,
    rows: &[u8],
) -> std::result::Result<Vec<(usize, String)>, Failure> {
    let lines = copy_text::rows(rows);
    let mut rejected = Vec::new();
    // Row ranges still to write, the next one last.
    let mut todo: Vec<Range<usize>> = vec![0..lines.len()];
    while let Some(r) = todo.pop() {
        if r.is_empty() {
            continue;
        }
        let bytes = &rows[lines[r.start].start..lines[r.end - 1].end];
        tx.batch_execute("SAVEPOINT shoal_rows")
            .await
            .map_err(|e| fail("savepoint", e))?;
        match copy_once(tx, copy, bytes).await {
            Ok(()) => tx
                .batch_execute("RELEASE SAVEPOINT shoal_rows")
                .await
                .map_err(|e| fail("release savepoint", e))?,
            Err(e) if rejects_data(&e) => {
                tx.batch_execute("ROLLBACK TO SAVEPOINT shoal_rows")
                    .await
                    .map_err(|e| fail("rollback to savepoint", e))?;
                if r.len() == 1 {
                    let reason = match e.as_db_error() {
                        Some(db) => format!(
                            "rejected by postgres: {} (SQLSTATE {})",
                            db.message(),
                            db.code().code()
                        ),
                        None => format!("rejected by postgres: {e}"),
                    };
                    rejected.push((r.start, reason));
                } else {
                    let mid = r.start + r.len() / 2;
                    todo.push(mid..r.end);
                    todo.push(r.start..mid);
                }
            }
            Err(e) => return Err(fail("copy rows", e)),
        }
    }
    Ok(rejected)
}

async fn copy_once(
    tx: &Transaction<'_>,
    copy: &str,
    bytes: &[u8],
) -> std::result::Result<(), tokio_postgres::Error> {
    let sink = tx.copy_in::<_, Bytes>(copy).await?;
    futures::pin_mut!(sink);
    sink.send(Bytes::copy_from_slice(bytes)).await?;
    sink.finish().await?;
    Ok(())
}

/// Row `i` of the concatenated `batches`, as a JSON object.
fn row_json(batches: &[RecordBatch], mut i: usize) -> String {
    for b in batches {
        if i < b.num_rows() {
            return crate::format::row_json(b, i);
        }
        i -= b.num_rows();
    }
    String::new()
}
