//! `type: redis` sinks — their config and how they plug into a pipeline.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use shoal_dsl::connector::{ConfigCx, FromYaml, Scalar, SinkConfig};
use shoal_dsl::{DslError, key_template_columns};
use shoal_runtime::Sink;

use super::{RedisSink, RedisSinkTask, check_columns};
use crate::connector::{
    BuildCx, PlanCx, PlannedSink, SinkCapabilities, SinkConnector, SinkFactory, SinkTask,
};

/// `type: redis` — write each row as a Redis hash; with checkpoints each
/// epoch is applied atomically once its checkpoint completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSinkConfig {
    /// `inputs:` (non-empty).
    pub inputs: Vec<String>,
    /// `url:` `redis://host:port/db` (or `rediss://`, `redis+unix://`).
    pub url: String,
    /// `key:` the hash's key, a template such as `features:card:{card_id}`
    /// whose `{column}` parts are replaced by the row's values.
    pub key: String,
    /// `fields:` the columns written as hash fields; empty = every column.
    pub fields: Vec<String>,
    /// `ttl:` expire each written hash this long after its last write.
    pub ttl: Option<Duration>,
}

/// The keys of a `type: redis` sink, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedisSink {
    inputs: Vec<String>,
    url: String,
    key: String,
    fields: Option<Vec<String>>,
    ttl: Option<Scalar>,
}

impl FromYaml for RedisSinkConfig {
    type Raw = RawRedisSink;

    fn from_raw(
        r: RawRedisSink,
        cx: &ConfigCx<'_>,
        section: &str,
        id: &str,
    ) -> Result<Self, DslError> {
        let at = |k: &'static str| -> [&str; 3] { [section, id, k] };
        let url = cx.non_empty(&at("url"), r.url, "the url")?;
        cx.check_redis_url(&at("url"), &url)?;
        let key = cx.non_empty(&at("key"), r.key, "the key template")?;
        if let Err(msg) = key_template_columns(&key) {
            return Err(cx
                .err(&at("key"), msg)
                .with_hint("a text with {column} parts, e.g. key: \"features:card:{card_id}\""));
        }
        let ttl = r.ttl.map(|t| cx.duration(&at("ttl"), t)).transpose()?;
        if ttl.is_some_and(|t| t.as_millis() == 0) {
            return Err(cx
                .err(&at("ttl"), "`ttl` must be at least 1ms")
                .with_hint("e.g. ttl: 1d, or remove it to keep hashes forever"));
        }
        Ok(RedisSinkConfig {
            inputs: r.inputs,
            url,
            key,
            fields: r.fields.unwrap_or_default(),
            ttl,
        })
    }
}

impl SinkConfig for RedisSinkConfig {
    fn kind(&self) -> &'static str {
        <Self as SinkConnector>::TYPE
    }

    fn inputs(&self) -> &[String] {
        &self.inputs
    }
}

impl SinkConnector for RedisSinkConfig {
    const TYPE: &'static str = "redis";

    fn plan(
        &self,
        cx: &PlanCx<'_>,
        schema: &arrow::datatypes::SchemaRef,
    ) -> Result<PlannedSink, DslError> {
        check_columns(schema, self).map_err(|(key, msg, hint)| cx.error(&[key], msg, hint))?;
        Ok(PlannedSink {
            detail: format!("key={} fields={}", self.key, self.fields.len()),
            task: Arc::new(self.clone()),
        })
    }
}

impl SinkTask for RedisSinkConfig {
    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities {
            external: true,
            ..SinkCapabilities::default()
        }
    }

    fn instances(&self, cx: &BuildCx<'_>) -> shoal_runtime::Result<SinkFactory> {
        let (pipeline, process, node) = (
            cx.job.pipeline.to_string(),
            cx.job.process.to_string(),
            cx.node.to_string(),
        );
        let (spec, schema, checkpointing) = (self.clone(), cx.schema.clone(), cx.job.checkpointing);
        Ok(Box::new(move |i| {
            let task = RedisSinkTask {
                pipeline: pipeline.clone(),
                sink: node.clone(),
                task: format!("{i}@{process}"),
                checkpointing,
            };
            Ok(Box::new(RedisSink::new(spec.clone(), schema.clone(), task)?) as Box<dyn Sink>)
        }))
    }
}
