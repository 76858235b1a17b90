//! `type: postgres` sinks — their config and how they plug into a pipeline.

use std::sync::Arc;

use serde::Deserialize;
use shoal_dsl::DslError;
use shoal_dsl::connector::{ConfigCx, FromYaml, SinkConfig};
use shoal_runtime::Sink;

use super::{PostgresSink, PostgresSinkTask, check_columns, check_table};
use crate::connector::{
    BuildCx, OffsetOwner, PlanCx, PlannedSink, SinkCapabilities, SinkConnector, SinkFactory,
    SinkTask,
};

/// `type: postgres` — write rows to a table, exactly once per checkpoint epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresSinkConfig {
    /// `inputs:` (non-empty).
    pub inputs: Vec<String>,
    /// `url:` `postgres://user@host:port/db` (libpq-style key=value also accepted).
    pub url: String,
    /// `table:` target table, optionally `schema.table`.
    pub table: String,
    /// `mode:` `insert` (default) or `upsert`.
    pub mode: PostgresMode,
    /// `key_columns:` the conflict key of `upsert` (a unique index must exist).
    pub key_columns: Vec<String>,
    /// `create:` create the table from the input schema when missing; default true.
    pub create: bool,
}

/// How a Postgres sink writes rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PostgresMode {
    /// `insert`: append every row (`COPY`).
    #[default]
    Insert,
    /// `upsert`: `INSERT ... ON CONFLICT (key_columns) DO UPDATE`; the last row per key in an epoch wins.
    Upsert,
}

/// The keys of a `type: postgres` sink, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPostgresSink {
    inputs: Vec<String>,
    url: String,
    table: String,
    mode: Option<String>,
    key_columns: Option<Vec<String>>,
    create: Option<bool>,
}

impl FromYaml for PostgresSinkConfig {
    type Raw = RawPostgresSink;

    fn from_raw(
        p: RawPostgresSink,
        cx: &ConfigCx<'_>,
        section: &str,
        id: &str,
    ) -> Result<Self, DslError> {
        let at = |k: &'static str| -> [&str; 3] { [section, id, k] };
        let mode = match p.mode {
            Some(m) => cx.choice(
                &at("mode"),
                &m,
                &[
                    ("insert", PostgresMode::Insert),
                    ("upsert", PostgresMode::Upsert),
                ],
                "postgres write mode",
            )?,
            None => PostgresMode::Insert,
        };
        let key_columns = p.key_columns.unwrap_or_default();
        if mode == PostgresMode::Upsert && key_columns.is_empty() {
            return Err(cx
                .err(&at("mode"), "upsert needs `key_columns`")
                .with_hint("add key_columns: [id] (the columns of a unique index)"));
        }
        if mode == PostgresMode::Insert && !key_columns.is_empty() {
            return Err(cx
                .err(
                    &at("key_columns"),
                    "`key_columns` is only used by mode: upsert",
                )
                .with_hint("add mode: upsert, or remove key_columns"));
        }
        Ok(PostgresSinkConfig {
            inputs: p.inputs,
            url: cx.non_empty(&at("url"), p.url, "the url")?,
            table: cx.table_name(&at("table"), p.table)?,
            mode,
            key_columns,
            create: p.create.unwrap_or(true),
        })
    }
}

impl SinkConfig for PostgresSinkConfig {
    fn kind(&self) -> &'static str {
        <Self as SinkConnector>::TYPE
    }

    fn inputs(&self) -> &[String] {
        &self.inputs
    }
}

impl SinkConnector for PostgresSinkConfig {
    const TYPE: &'static str = "postgres";

    fn plan(
        &self,
        cx: &PlanCx<'_>,
        schema: &arrow::datatypes::SchemaRef,
    ) -> Result<PlannedSink, DslError> {
        check_columns(schema, self).map_err(|(key, msg, hint)| cx.error(&[key], msg, hint))?;
        // The existing table, when the database answers.
        check_table(self, schema).map_err(|msg| {
            cx.error(
                &["table"],
                msg,
                Some("change the table, or write to a new one with create: true".into()),
            )
        })?;
        Ok(PlannedSink {
            detail: format!("table={} mode={:?}", self.table, self.mode).to_lowercase(),
            task: Arc::new(self.clone()),
        })
    }
}

impl SinkTask for PostgresSinkConfig {
    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities {
            embedded_log: None,
            owns_offsets: Some(OffsetOwner::Postgres {
                url: self.url.clone(),
            }),
            external: true,
        }
    }

    fn instances(&self, cx: &BuildCx<'_>) -> shoal_runtime::Result<SinkFactory> {
        let ledger = cx.job.ledger.as_ref().map(|l| l.0.clone());
        let shards = cx.job.shards.clone();
        let (pipeline, process, node) = (
            cx.job.pipeline.to_string(),
            cx.job.process.to_string(),
            cx.node.to_string(),
        );
        let (spec, schema, checkpointing) = (self.clone(), cx.schema.clone(), cx.job.checkpointing);
        Ok(Box::new(move |i| {
            let task = PostgresSinkTask {
                pipeline: pipeline.clone(),
                sink: node.clone(),
                task: format!("{i}@{process}"),
                ledger: ledger.clone(),
                shards: shards.clone(),
                checkpointing,
            };
            Ok(Box::new(PostgresSink::new(spec.clone(), schema.clone(), task)?) as Box<dyn Sink>)
        }))
    }
}
