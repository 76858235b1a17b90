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

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use futures::SinkExt;
use shoal_dsl::{PostgresMode, PostgresSink as PostgresSinkSpec};
use shoal_runtime::{Result, RuntimeError, Sink};

use super::client::{EPOCHS_DDL, OFFSETS_DDL, PgClient, ensure, pg_err};
use super::{pg_type, quote_ident};
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

/// One Postgres sink instance.
pub struct PostgresSink {
    client: PgClient,
    spec: PostgresSinkSpec,
    task: PostgresSinkTask,
    columns: Vec<String>,
    /// CSV of the rows of each epoch not yet written, oldest first.
    pending: Vec<(u64, Vec<u8>)>,
    epoch: u64,
}

const NULL: &str = "\\N";

impl PostgresSink {
    /// Connect, create the marker tables (and the target table when missing
    /// and `create`), and check the target table's columns against `schema`.
    pub fn new(spec: PostgresSinkSpec, schema: SchemaRef, task: PostgresSinkTask) -> Result<Self> {
        let client = PgClient::connect(&spec.url)?;
        prepare(&client, &spec, &schema, task.ledger.is_some())?;
        let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
        if spec.mode == PostgresMode::Upsert {
            let t = quote_ident(&spec.table);
            client.batch(format!(
                "CREATE TEMP TABLE shoal_stage (LIKE {t} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
                 ALTER TABLE shoal_stage ADD COLUMN shoal_seq bigserial"
            ))?;
        }
        Ok(Self {
            client,
            spec,
            task,
            columns,
            pending: Vec::new(),
            epoch: 1,
        })
    }

    fn write_through(&mut self, epoch: u64) -> Result<()> {
        let n = self.pending.partition_point(|(e, _)| *e <= epoch);
        let mut csv = Vec::new();
        for (_, c) in self.pending.drain(..n) {
            if csv.is_empty() {
                csv = c;
            } else {
                csv.extend_from_slice(&c);
            }
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
        let copy =
            format!("COPY {copy_target} ({cols}) FROM STDIN WITH (FORMAT csv, NULL '{NULL}')");
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
        let (pipeline, sink, task) = (
            self.task.pipeline.clone(),
            self.task.sink.clone(),
            self.task.task.clone(),
        );
        let epoch_i = epoch as i64;
        // Without checkpoints every run starts at epoch 1: no marker then.
        let marked = self.task.checkpointing;
        let written = self.client.run(move |rt, c| {
            rt.block_on(async move {
                let tx = c.transaction().await.map_err(|e| pg_err("begin", e))?;
                let done: Option<i64> = tx
                    .query_opt(
                        "SELECT epoch FROM shoal_epochs WHERE pipeline = $1 AND sink = $2 AND task = $3 FOR UPDATE",
                        &[&pipeline, &sink, &task],
                    )
                    .await
                    .map_err(|e| pg_err("read shoal_epochs", e))?
                    .map(|r| r.get(0));
                if marked && done.is_some_and(|d| d >= epoch_i) {
                    // Already recorded: replaying its commit is a no-op.
                    return Ok(false);
                }
                if !csv.is_empty() {
                    let sink = tx
                        .copy_in::<_, Bytes>(&copy)
                        .await
                        .map_err(|e| pg_err("copy", e))?;
                    futures::pin_mut!(sink);
                    sink.send(Bytes::from(csv))
                        .await
                        .map_err(|e| pg_err("copy rows", e))?;
                    sink.finish().await.map_err(|e| pg_err("copy rows", e))?;
                    if let Some(upsert) = &upsert {
                        tx.execute(upsert.as_str(), &[])
                            .await
                            .map_err(|e| pg_err("upsert", e))?;
                    }
                }
                if marked {
                    tx.execute(
                        "INSERT INTO shoal_epochs (pipeline, sink, task, epoch) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (pipeline, sink, task) DO UPDATE SET epoch = EXCLUDED.epoch, committed_at = now()",
                        &[&pipeline, &sink, &task, &epoch_i],
                    )
                    .await
                    .map_err(|e| pg_err("record epoch", e))?;
                }
                if let (Some(group), false) = (&group, offsets.is_empty()) {
                    let topics: Vec<&str> = offsets.iter().map(|((t, _), _)| t.as_str()).collect();
                    let parts: Vec<i32> = offsets.iter().map(|((_, p), _)| *p).collect();
                    let next: Vec<i64> = offsets.iter().map(|(_, o)| *o).collect();
                    tx.execute(
                        "INSERT INTO shoal_offsets (consumer_group, topic, partition, next_offset, state)
                         SELECT $1, * FROM unnest($2::text[], $3::int[], $4::bigint[], $5::text[])
                         ON CONFLICT (consumer_group, topic, partition)
                         DO UPDATE SET next_offset = EXCLUDED.next_offset,
                                       state = CASE WHEN EXCLUDED.state IS NULL THEN shoal_offsets.state
                                                    ELSE (COALESCE(shoal_offsets.state::jsonb, '{}'::jsonb)
                                                          || EXCLUDED.state::jsonb)::text END,
                                       updated_at = now()",
                        &[group, &topics, &parts, &next, &states],
                    )
                    .await
                    .map_err(|e| pg_err("record offsets", e))?;
                }
                if let (Some(group), Some(topic), false) = (&group, &topic, state_only.is_empty()) {
                    // Shards whose state changed while their offsets did not
                    // (windows fired by time alone).
                    let parts: Vec<i32> = state_only.iter().map(|(p, _)| *p).collect();
                    let st: Vec<&str> = state_only.iter().map(|(_, s)| s.as_str()).collect();
                    tx.execute(
                        "UPDATE shoal_offsets o
                         SET state = (COALESCE(o.state::jsonb, '{}'::jsonb) || u.state::jsonb)::text,
                             updated_at = now()
                         FROM unnest($3::int[], $4::text[]) AS u(partition, state)
                         WHERE o.consumer_group = $1 AND o.topic = $2 AND o.partition = u.partition",
                        &[group, topic, &parts, &st],
                    )
                    .await
                    .map_err(|e| pg_err("record state references", e))?;
                }
                tx.commit().await.map_err(|e| pg_err("commit", e))?;
                Ok(true)
            })
        })?;
        if !written {
            tracing::info!(sink = %self.task.sink, epoch, "epoch already recorded; skipped");
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
        return client.batch(ddl);
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
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let epoch = self.epoch;
        if self.pending.last().is_none_or(|(e, _)| *e != epoch) {
            self.pending.push((epoch, Vec::new()));
        }
        let buf = &mut self.pending.last_mut().expect("just pushed").1;
        let mut w = arrow::csv::WriterBuilder::new()
            .with_header(false)
            .with_null(NULL.to_string())
            .build(buf);
        w.write(batch)
            .map_err(|e| RuntimeError::User(format!("postgres sink: encode rows: {e}")))?;
        Ok(())
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
