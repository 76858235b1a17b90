//! `type: log` sources and sinks (topics of the embedded log) — their
//! configs and how they plug into a pipeline.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use shoal_dsl::connector::{
    ConfigCx, FromYaml, RawCoerce, RawEventTime, RawProtoSchema, RawSchemaRegistry, Scalar,
    SinkConfig, SourceConfig,
};
use shoal_dsl::{
    Assignor, AvroSink, AvroSource, DecodeSpec, DslError, EventTimeSpec, IndexMap, ProtoSink,
    ProtoSource, RecordFormat, SchemaSpec, StartFrom,
};
use shoal_runtime::{RuntimeError, SharedPartitionTimes, Sink, Source};

use super::{LogSink, LogSource, RunPartitions};
use crate::connector::{
    BuildCx, Partitioned, PlanCx, PlannedSink, PlannedSource, SinkCapabilities, SinkConnector,
    SinkFactory, SinkTask, SourceCapabilities, SourceConnector, SourceFactory, SourceTask,
};
use crate::schema::arrow_schema;
use crate::values::ValueEncoder;

/// `type: log` source — a consumer-group member set on an embedded-log topic.
#[derive(Debug, Clone, PartialEq)]
pub struct LogSourceConfig {
    /// `topic:`.
    pub topic: String,
    /// `group:` consumer group; default: the pipeline name.
    pub group: String,
    /// `parallelism:` group members; default 1.
    pub parallelism: usize,
    /// `assignor:`; default `cooperative-sticky`.
    pub assignor: Assignor,
    /// `start:` where to start without a committed offset; default `committed`.
    pub start: StartFrom,
    /// `stop_at_end:` stop at the end offsets seen at start; default false.
    pub stop_at_end: bool,
    /// `session_timeout:` a member silent this long is expelled from the group
    /// and its partitions move to the others; default `10s`.
    pub session_timeout: Duration,
    /// `max_poll_interval:` a member that has not polled its assignment
    /// this long is taken as stuck: its heartbeats stop and the group
    /// expels it (Kafka's `max.poll.interval.ms`); default `5m`, or
    /// `session_timeout` when that is longer.
    pub max_poll_interval: Duration,
    /// `rate:` at most this many records per second over all members
    /// (throttles a backfill); default unlimited.
    pub rate: Option<f64>,
    /// `format:` of the records: `json` (default), `avro` or `protobuf`.
    pub format: RecordFormat,
    /// With `format: avro`: the registry or schema file.
    pub avro: Option<AvroSource>,
    /// With `format: protobuf`: the registry, or the `.proto` file and message.
    pub protobuf: Option<ProtoSource>,
    /// `schema:` (required).
    pub schema: Option<SchemaSpec>,
    /// `batch_size:`; default 8192.
    pub batch_size: usize,
    /// `event_time:`.
    pub event_time: Option<EventTimeSpec>,
    /// `isolation:` which transactional records to read; default
    /// `read_committed`.
    pub isolation: LogIsolation,
    /// `key:` the column the topic is partitioned by (a `log` sink with
    /// that `key:` wrote it). Operators whose state is split by it keep it
    /// per partition: it restores at any parallelism.
    pub key: Option<String>,
    /// `coerce:`, `max_record_bytes:`, `max_depth:` — how records decode.
    pub decode: DecodeSpec,
}

/// Which records of transactional log sinks a log source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LogIsolation {
    /// `read_committed`: only committed transactions (exactly-once downstream).
    #[default]
    ReadCommitted,
    /// `read_uncommitted`: also records of open and aborted transactions.
    ReadUncommitted,
}

impl LogIsolation {
    /// The YAML name.
    pub fn name(&self) -> &'static str {
        match self {
            LogIsolation::ReadCommitted => "read_committed",
            LogIsolation::ReadUncommitted => "read_uncommitted",
        }
    }
}

/// The keys of a `type: log` source, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogSource {
    topic: String,
    group: Option<String>,
    parallelism: Option<u64>,
    assignor: Option<String>,
    start: Option<String>,
    stop_at_end: Option<bool>,
    session_timeout: Option<Scalar>,
    max_poll_interval: Option<Scalar>,
    rate: Option<Scalar>,
    format: Option<String>,
    schema: Option<IndexMap<String, String>>,
    batch_size: Option<u64>,
    event_time: Option<RawEventTime>,
    isolation: Option<String>,
    key: Option<String>,
    coerce: Option<RawCoerce>,
    max_record_bytes: Option<Scalar>,
    max_depth: Option<u64>,
    schema_registry: Option<RawSchemaRegistry>,
    avro_schema: Option<String>,
    proto_schema: Option<RawProtoSchema>,
}

impl FromYaml for LogSourceConfig {
    type Raw = RawLogSource;

    fn from_raw(
        l: RawLogSource,
        cx: &ConfigCx<'_>,
        section: &str,
        id: &str,
    ) -> Result<Self, DslError> {
        let at = |k: &'static str| -> [&str; 3] { [section, id, k] };
        let topic = cx.topic(&at("topic"), l.topic)?;
        let group = match l.group {
            Some(g) => cx.safe_name(&at("group"), g, "group name")?,
            None => cx.pipeline().to_string(),
        };
        let assignor = cx.assignor(&at("assignor"), l.assignor, false)?;
        let start = cx.start(&at("start"), l.start)?;
        let format = cx.record_format(&at("format"), l.format)?;
        let (avro, protobuf) =
            cx.binary_format(id, format, l.schema_registry, l.avro_schema, l.proto_schema)?;
        let isolation = match l.isolation {
            Some(s) => cx.choice(
                &at("isolation"),
                &s,
                &[
                    ("read_committed", LogIsolation::ReadCommitted),
                    ("read_uncommitted", LogIsolation::ReadUncommitted),
                ],
                "isolation",
            )?,
            None => LogIsolation::default(),
        };
        let schema = cx.schema(id, l.schema)?;
        let event_time = cx.event_time(id, l.event_time, schema.as_ref())?;
        let key = cx.partition_key(&at("key"), l.key, schema.as_ref())?;
        let decode = cx.decode(
            id,
            l.coerce,
            l.max_record_bytes,
            l.max_depth,
            schema.as_ref(),
        )?;
        let session_timeout = match l.session_timeout {
            Some(d) => cx.duration(&at("session_timeout"), d)?,
            None => Duration::from_secs(10),
        };
        // Default: Kafka's 5 min, or the session timeout when that is
        // longer (a member is only taken as stuck after both).
        let explicit = l.max_poll_interval.is_some();
        let max_poll_interval = match l.max_poll_interval {
            Some(d) => cx.duration(&at("max_poll_interval"), d)?,
            None => Duration::from_secs(300).max(session_timeout),
        };
        if explicit && max_poll_interval <= session_timeout {
            return Err(cx
                .err(
                    &at("max_poll_interval"),
                    "`max_poll_interval` must be longer than `session_timeout`",
                )
                .with_hint("a member's heartbeats cover the session timeout; max_poll_interval bounds a stuck task, e.g. 5m"));
        }
        Ok(LogSourceConfig {
            decode,
            key,
            topic,
            group,
            parallelism: cx.parallelism(&at("parallelism"), l.parallelism)?,
            assignor,
            start,
            stop_at_end: l.stop_at_end.unwrap_or(false),
            rate: cx.rate(&at("rate"), l.rate)?,
            session_timeout,
            max_poll_interval,
            format,
            avro,
            protobuf,
            schema,
            batch_size: cx.batch_size(&at("batch_size"), l.batch_size)?,
            event_time,
            isolation,
        })
    }
}

impl SourceConfig for LogSourceConfig {
    fn kind(&self) -> &'static str {
        <Self as SourceConnector>::TYPE
    }

    fn parallelism(&self) -> usize {
        self.parallelism
    }

    fn event_time(&self) -> Option<&EventTimeSpec> {
        self.event_time.as_ref()
    }

    fn schema(&self) -> Option<&SchemaSpec> {
        self.schema.as_ref()
    }
}

impl SourceConnector for LogSourceConfig {
    const TYPE: &'static str = "log";

    fn plan(&self, cx: &PlanCx<'_>) -> Result<PlannedSource, DslError> {
        let Some(values) = &self.schema else {
            return Err(cx.error(
                &[],
                "a log source needs a `schema`",
                Some(
                    "declare the record fields, e.g. schema: { card_id: int64, amount: float64 }"
                        .into(),
                ),
            ));
        };
        let mut planned = self.clone();
        crate::protobuf::plan::check_source(cx, &mut planned.protobuf, values)?;
        Ok(PlannedSource {
            schema: arrow_schema(values),
            detail: format!(
                "topic={} group={} start={}",
                self.topic,
                self.group,
                self.start.name()
            ),
            task: Arc::new(planned),
        })
    }
}

/// `SHOAL_TEST_CRASH_MEMBER=node:instance:records` makes that log-source
/// member stop like a crashed process after that many records (tests only).
fn crash_hook(node: &str) -> Option<(usize, u64)> {
    let v = std::env::var("SHOAL_TEST_CRASH_MEMBER").ok()?;
    let mut it = v.split(':');
    let (n, i, r) = (it.next()?, it.next()?, it.next()?);
    (n == node).then_some((i.parse().ok()?, r.parse().ok()?))
}

impl SourceTask for LogSourceConfig {
    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities {
            embedded_log: Some(self.session_timeout),
            partitions: Some(Partitioned {
                topics: vec![self.topic.clone()],
                key: self.key.clone(),
                shared: false,
            }),
            kafka_group: None,
        }
    }

    fn instances(&self, cx: &BuildCx<'_>) -> shoal_runtime::Result<SourceFactory> {
        let id = cx.node;
        let log = cx
            .job
            .log
            .clone()
            .expect("the job opens the log for log nodes");
        log.partition_count(&self.topic).map_err(|e| {
            RuntimeError::User(format!(
                "source `{id}`: topic {}: {e} (create it with `shoal topic create {} --partitions N`)",
                self.topic, self.topic
            ))
        })?;
        let started = RunPartitions::default();
        let times = SharedPartitionTimes::default();
        let crash = crash_hook(id);
        let topic_writers = cx.job.writers.get(&self.topic);
        let (spec, node, schema) = (self.clone(), id.to_string(), cx.schema.clone());
        Ok(Box::new(move |i| {
            let src = LogSource::new(
                &node,
                log.clone(),
                spec.clone(),
                schema.clone(),
                started.clone(),
            )
            .with_writers(topic_writers.clone())
            .with_partition_times(times.clone())
            .crash_after(crash.filter(|(ci, _)| *ci == i).map(|(_, r)| r));
            Ok(Box::new(src) as Box<dyn Source>)
        }))
    }
}

/// `type: log` sink — append to a topic of the embedded log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSinkConfig {
    /// `inputs:` (non-empty).
    pub inputs: Vec<String>,
    /// `topic:`.
    pub topic: String,
    /// `partitions:` to create the topic with if it does not exist.
    pub partitions: Option<u32>,
    /// `key:` column used as the record key (and so the partition).
    pub key: Option<String>,
    /// `format: avro` with `schema_registry:`: Avro records in the
    /// Confluent wire format; `None` = JSON (or Protobuf).
    pub avro: Option<AvroSink>,
    /// `format: protobuf`: the message type, and where it is registered.
    pub protobuf: Option<ProtoSink>,
}

/// The keys of a `type: log` sink, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogSink {
    inputs: Vec<String>,
    topic: String,
    partitions: Option<u64>,
    key: Option<String>,
    format: Option<String>,
    schema_registry: Option<RawSchemaRegistry>,
    proto_schema: Option<RawProtoSchema>,
}

impl FromYaml for LogSinkConfig {
    type Raw = RawLogSink;

    fn from_raw(
        l: RawLogSink,
        cx: &ConfigCx<'_>,
        section: &str,
        id: &str,
    ) -> Result<Self, DslError> {
        let at = |k: &'static str| -> [&str; 3] { [section, id, k] };
        let topic = cx.topic(&at("topic"), l.topic)?;
        let format = cx.record_format(&at("format"), l.format)?;
        let (avro, protobuf) =
            cx.sink_format(id, &topic, format, l.schema_registry, l.proto_schema)?;
        Ok(LogSinkConfig {
            inputs: l.inputs,
            topic,
            partitions: match l.partitions {
                Some(p) => Some(cx.range(&at("partitions"), Some(p), 1, 1, 100_000)? as u32),
                None => None,
            },
            key: cx.key(&at("key"), l.key)?,
            avro,
            protobuf,
        })
    }
}

impl SinkConfig for LogSinkConfig {
    fn kind(&self) -> &'static str {
        <Self as SinkConnector>::TYPE
    }

    fn inputs(&self) -> &[String] {
        &self.inputs
    }

    fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}

impl SinkConnector for LogSinkConfig {
    const TYPE: &'static str = "log";

    fn plan(
        &self,
        cx: &PlanCx<'_>,
        schema: &arrow::datatypes::SchemaRef,
    ) -> Result<PlannedSink, DslError> {
        let mut planned = self.clone();
        crate::protobuf::plan::check_sink(cx, &mut planned.protobuf, schema)?;
        Ok(PlannedSink {
            detail: format!(
                "topic={} key={}",
                self.topic,
                self.key.as_deref().unwrap_or("-")
            ),
            task: Arc::new(planned),
        })
    }
}

impl SinkTask for LogSinkConfig {
    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities {
            embedded_log: Some((self.topic.clone(), self.partitions)),
            ..SinkCapabilities::default()
        }
    }

    fn instances(&self, cx: &BuildCx<'_>) -> shoal_runtime::Result<SinkFactory> {
        let log = cx
            .job
            .log
            .clone()
            .expect("the job opens the log for log nodes");
        let done = cx.job.writers.get(&self.topic);
        let txn_prefix = format!("{}.{}", cx.job.pipeline, cx.node);
        let (spec, schema) = (self.clone(), cx.schema.clone());
        Ok(Box::new(move |i| {
            let values = ValueEncoder::new(&schema, spec.avro.as_ref(), spec.protobuf.as_ref())?;
            Ok(Box::new(
                LogSink::new(log.clone(), &spec.topic, spec.key.clone())
                    .with_values(values)
                    .with_writers(done.clone())
                    .with_transactional_id(format!("{txn_prefix}.{i}")),
            ) as Box<dyn Sink>)
        }))
    }
}
