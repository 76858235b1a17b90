//! A blocking handle on one Postgres connection: the connection lives on its
//! own thread with a small tokio runtime, so sinks (whose methods are
//! synchronous) and rebalance callbacks can use it from anywhere.

use std::collections::HashMap;
use std::sync::mpsc;

use shoal_runtime::{Result, RuntimeError};
use tokio::runtime::Runtime;
use tokio_postgres::{Client, NoTls};

use crate::kafka::{PositionStore, TopicPartition};

type Job = Box<dyn FnOnce(&Runtime, &mut Client) + Send>;

/// One connection, driven by its own thread.
#[derive(Debug)]
pub struct PgClient {
    jobs: mpsc::Sender<Job>,
}

/// A Postgres error with what was being done (and the server's detail).
pub(crate) fn pg_err(context: &str, e: tokio_postgres::Error) -> RuntimeError {
    let detail = match e.as_db_error() {
        Some(db) => format!(
            "{}{}",
            db.message(),
            db.detail().map(|d| format!(" ({d})")).unwrap_or_default()
        ),
        None => e.to_string(),
    };
    RuntimeError::External(format!("postgres: {context}: {detail}"))
}

impl PgClient {
    /// Connect to `url` (`postgres://user@host:port/db` or libpq key=value).
    pub fn connect(url: &str) -> Result<Self> {
        Self::try_connect(url).map_err(|(e, _)| e)
    }

    /// [`PgClient::connect`] at the start of a run: while the server cannot
    /// be reached (refused, reset, timed out: no answer from Postgres
    /// itself), retry with backoff (0.2 s doubling to 5 s) for up to
    /// [`retry_for`](crate::retry::retry_for); an answer from the server (bad
    /// password, unknown database) fails at once.
    pub fn connect_retrying(url: &str) -> Result<Self> {
        let started = std::time::Instant::now();
        let mut delays = super::backoff();
        loop {
            match Self::try_connect(url) {
                Ok(c) => return Ok(c),
                Err((e, true)) if started.elapsed() < crate::retry::retry_for() => {
                    let backoff = delays.next().expect("an endless schedule");
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64,
                        "postgres unreachable at start; retrying");
                    std::thread::sleep(backoff);
                }
                Err((e, true)) => {
                    return Err(RuntimeError::External(format!(
                        "{e} (retried for {} s)",
                        crate::retry::retry_for().as_secs()
                    )));
                }
                Err((e, false)) => return Err(e),
            }
        }
    }

    /// Connect once; on failure, the error and whether it is worth
    /// retrying (the server was not reached).
    fn try_connect(url: &str) -> std::result::Result<Self, (RuntimeError, bool)> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<std::result::Result<(), (String, bool)>>();
        let url = url.to_string();
        std::thread::Builder::new()
            .name("shoal-postgres".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err((e.to_string(), false)));
                        return;
                    }
                };
                let mut client = match rt.block_on(tokio_postgres::connect(&url, NoTls)) {
                    Ok((client, conn)) => {
                        rt.spawn(async move {
                            if let Err(e) = conn.await {
                                tracing::warn!(error = %e, "postgres connection closed");
                            }
                        });
                        client
                    }
                    Err(e) => {
                        let unreached = e.as_db_error().is_none();
                        let _ = ready_tx.send(Err((e.to_string(), unreached)));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                while let Ok(job) = rx.recv() {
                    job(&rt, &mut client);
                }
            })
            .map_err(|e| (RuntimeError::io("start postgres thread", e), false))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self { jobs }),
            Ok(Err((e, retry))) => Err((
                RuntimeError::External(format!("postgres: connect: {e}")),
                retry,
            )),
            Err(_) => Err((
                RuntimeError::External("postgres: connection thread died".into()),
                false,
            )),
        }
    }

    /// Run `f` on the connection's thread and wait for its result.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Runtime, &mut Client) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move |rt, client| {
            let _ = tx.send(f(rt, client));
        });
        self.jobs
            .send(job)
            .map_err(|_| RuntimeError::External("postgres: connection thread gone".into()))?;
        rx.recv()
            .map_err(|_| RuntimeError::External("postgres: connection thread died".into()))?
    }

    /// Run SQL statements (no parameters, no results).
    pub fn batch(&self, sql: String) -> Result<()> {
        self.run(move |rt, c| {
            rt.block_on(c.batch_execute(&sql))
                .map_err(|e| pg_err("execute", e))
        })
    }
}

/// `shoal_offsets` DDL: next offset per (group, topic, partition), written
/// by Postgres sinks in the transaction of each epoch.
pub(crate) const OFFSETS_DDL: &str = "CREATE TABLE IF NOT EXISTS shoal_offsets (
    consumer_group text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition));
ALTER TABLE shoal_offsets ADD COLUMN IF NOT EXISTS state text";

/// `shoal_epochs` DDL: the newest epoch each sink task committed.
pub(crate) const EPOCHS_DDL: &str = "CREATE TABLE IF NOT EXISTS shoal_epochs (
    pipeline text NOT NULL,
    sink text NOT NULL,
    task text NOT NULL,
    epoch bigint NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pipeline, sink, task))";

/// `shoal_rejected` DDL: rows Postgres refused (see the sink's docs),
/// written in the transaction of their epoch.
pub(crate) const REJECTED_DDL: &str = "CREATE TABLE IF NOT EXISTS shoal_rejected (
    pipeline text NOT NULL,
    sink text NOT NULL,
    task text NOT NULL,
    epoch bigint NOT NULL,
    reason text NOT NULL,
    record text NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now())";

/// Run DDL that several processes may run at once (`CREATE ... IF NOT
/// EXISTS` can still collide in the catalog): retry a few times.
pub(crate) fn ensure(client: &PgClient, ddl: &str) -> Result<()> {
    let mut last = None;
    for _ in 0..5 {
        match client.batch(ddl.to_string()) {
            Ok(()) => return Ok(()),
            Err(e) => {
                last = Some(e);
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
    Err(last.expect("tried"))
}

/// The offsets Postgres sinks stored, for Kafka sources to resume from.
#[derive(Debug)]
pub struct PostgresPositions {
    url: String,
    client: std::sync::Mutex<PgClient>,
}

impl PostgresPositions {
    /// Connect to `url` (and make sure `shoal_offsets` exists); an
    /// unreachable server is retried as [`PgClient::connect_retrying`].
    pub fn connect(url: &str) -> Result<Self> {
        let client = PgClient::connect_retrying(url)?;
        ensure(&client, OFFSETS_DDL)?;
        Ok(Self {
            url: url.to_string(),
            client: std::sync::Mutex::new(client),
        })
    }

    /// Run `query` on the connection; while Postgres is away (the
    /// connection lost, the server restarting: [`super::transient`]),
    /// reconnect and run it again with backoff for up to
    /// [`retry_for`](crate::retry::retry_for) — a partition assigned during an
    /// outage waits for its stored offset instead of failing the job.
    fn query_retrying(
        &self,
        what: &str,
        sql: &'static str,
        params: Vec<Box<dyn tokio_postgres::types::ToSql + Send + Sync>>,
    ) -> Result<Vec<tokio_postgres::Row>> {
        let started = std::time::Instant::now();
        let mut delays = super::backoff();
        let params = std::sync::Arc::new(params);
        loop {
            let answer = {
                let client = self.client.lock().expect("not poisoned");
                let params = params.clone();
                client.run(move |rt, c| {
                    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                        .iter()
                        .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
                        .collect();
                    Ok(rt.block_on(c.query(sql, &refs)))
                })
            };
            let err = match answer {
                Ok(Ok(rows)) => return Ok(rows),
                Ok(Err(e)) if !super::transient(&e) => return Err(pg_err(what, e)),
                Ok(Err(e)) => pg_err(what, e).to_string(),
                Err(e) => e.to_string(),
            };
            if started.elapsed() >= crate::retry::retry_for() {
                return Err(RuntimeError::External(format!(
                    "{err} (retried for {} s)",
                    crate::retry::retry_for().as_secs()
                )));
            }
            let wait = delays.next().expect("an endless schedule");
            tracing::warn!(error = %err, retry_in_ms = wait.as_millis() as u64,
                "postgres unavailable; retrying {what}");
            std::thread::sleep(wait);
            if let Ok(c) = PgClient::connect(&self.url) {
                *self.client.lock().expect("not poisoned") = c;
            }
        }
    }
}

impl PostgresPositions {
    /// The newest epoch each listed task of sink `sink` of `pipeline`
    /// committed (`shoal_epochs`); a task that never committed is left out.
    pub fn committed_epochs(
        &self,
        pipeline: &str,
        sink: &str,
        tasks: &[String],
    ) -> Result<HashMap<String, u64>> {
        ensure(&self.client.lock().expect("not poisoned"), EPOCHS_DDL)?;
        let rows = self.query_retrying(
            "read shoal_epochs",
            "SELECT task, epoch FROM shoal_epochs WHERE pipeline = $1 AND sink = $2 AND task = ANY($3)",
            vec![
                Box::new(pipeline.to_string()),
                Box::new(sink.to_string()),
                Box::new(tasks.to_vec()),
            ],
        )?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1).max(0) as u64))
            .collect())
    }
}

impl PositionStore for PostgresPositions {
    fn positions(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, i64>> {
        Ok(self
            .positions_with_state(group, partitions)?
            .into_iter()
            .map(|(tp, (o, _))| (tp, o))
            .collect())
    }

    fn positions_with_state(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, (i64, Option<String>)>> {
        let rows = self.query_retrying(
            "read shoal_offsets",
            "SELECT topic, partition, next_offset, state FROM shoal_offsets WHERE consumer_group = $1",
            vec![Box::new(group.to_string())],
        )?;
        let mut out = HashMap::new();
        for r in rows {
            let tp: TopicPartition = (r.get(0), r.get(1));
            if partitions.contains(&tp) {
                out.insert(tp, (r.get(2), r.get(3)));
            }
        }
        Ok(out)
    }
}
