//! `type: kafka` sources and sinks — their configs and how they plug into
//! a pipeline.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use shoal_dsl::connector::{
    ConfigCx, FromYaml, RawCoerce, RawEventTime, RawProtoSchema, RawSchemaRegistry, Scalar,
    SinkConfig, SourceConfig,
};
use shoal_dsl::{
    Assignor, AvroSink, AvroSource, DecodeSpec, DslError, EventTimeSpec, FieldSpec, FieldType,
    IndexMap, ProtoSink, ProtoSource, RecordFormat, SchemaSpec, StartFrom,
};
use shoal_runtime::{Sink, Source};

use super::{KafkaSink, KafkaSinkTransactions, KafkaSource, SharedPositions, source_schema};
use crate::connector::{
    BuildCx, OffsetOwner, Partitioned, PlanCx, PlannedSink, PlannedSource, SinkCapabilities,
    SinkConnector, SinkFactory, SinkTask, SourceCapabilities, SourceConnector, SourceFactory,
    SourceTask,
};
use crate::values::ValueEncoder;

/// `type: kafka` source — a member (per instance) of a Kafka consumer group.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSourceConfig {
    /// `brokers:` bootstrap servers, `host:port[,host:port...]`.
    pub brokers: String,
    /// `topic:` or `topics:` (non-empty).
    pub topics: Vec<String>,
    /// `group:` consumer group; default: the pipeline name.
    pub group: String,
    /// `parallelism:` group members in this process; default 1.
    pub parallelism: usize,
    /// `assignor:` `range`, `round-robin` or `cooperative-sticky`; default `cooperative-sticky`.
    pub assignor: Assignor,
    /// `start:` where a partition without a checkpointed or committed position starts; default `committed`.
    pub start: StartFrom,
    /// `stop_at_end:` stop once caught up with the end offsets seen at start; default false.
    pub stop_at_end: bool,
    /// `session_timeout:` the group's `session.timeout.ms`; default `10s`.
    pub session_timeout: Duration,
    /// `format:` of the record values: `json` (default), `avro` or `protobuf`.
    pub format: RecordFormat,
    /// With `format: avro`: the registry or schema file.
    pub avro: Option<AvroSource>,
    /// With `format: protobuf`: the registry, or the `.proto` file and message.
    pub protobuf: Option<ProtoSource>,
    /// JSON typing and record limits (`coerce`, `max_record_bytes`, `max_depth`).
    pub decode: DecodeSpec,
    /// `schema:` of the record values (required).
    pub schema: Option<SchemaSpec>,
    /// `timestamp_column:` add the record timestamp as a `timestamp_ms` column of this name.
    pub timestamp_column: Option<String>,
    /// `batch_size:`; default 8192.
    pub batch_size: usize,
    /// `event_time:`.
    pub event_time: Option<EventTimeSpec>,
    /// `options:` librdkafka settings passed through (SASL, TLS, ...).
    pub options: Vec<(String, String)>,
    /// `key:` the column the topic is partitioned by (every record of one
    /// value is in one partition). Operators whose state is split by it
    /// keep that state per partition, and it follows the partition to
    /// whichever process of the group reads it.
    pub key: Option<String>,
}

/// The keys of a `type: kafka` source, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafkaSource {
    brokers: String,
    topic: Option<String>,
    topics: Option<Vec<String>>,
    group: Option<String>,
    parallelism: Option<u64>,
    assignor: Option<String>,
    start: Option<String>,
    stop_at_end: Option<bool>,
    session_timeout: Option<Scalar>,
    format: Option<String>,
    schema: Option<IndexMap<String, String>>,
    timestamp_column: Option<String>,
    batch_size: Option<u64>,
    event_time: Option<RawEventTime>,
    options: Option<IndexMap<String, Scalar>>,
    key: Option<String>,
    schema_registry: Option<RawSchemaRegistry>,
    avro_schema: Option<String>,
    proto_schema: Option<RawProtoSchema>,
    coerce: Option<RawCoerce>,
    max_record_bytes: Option<Scalar>,
    max_depth: Option<u64>,
}

impl FromYaml for KafkaSourceConfig {
    type Raw = RawKafkaSource;

    fn from_raw(
        k: RawKafkaSource,
        cx: &ConfigCx<'_>,
        section: &str,
        id: &str,
    ) -> Result<Self, DslError> {
        let at = |key: &'static str| -> [&str; 3] { [section, id, key] };
        let mut topics = Vec::new();
        if let Some(t) = k.topic {
            topics.push(cx.topic(&at("topic"), t)?);
        }
        for t in k.topics.unwrap_or_default() {
            topics.push(cx.topic(&at("topics"), t)?);
        }
        if topics.is_empty() {
            return Err(cx
                .err(&[section, id], format!("source \"{id}\" needs a `topic:`"))
                .with_hint("add topic: NAME (or topics: [A, B])"));
        }
        let schema = cx.schema(id, k.schema)?;
        let timestamp_column = match k.timestamp_column {
            Some(c) => {
                let c = cx.non_empty(&at("timestamp_column"), c, "the column name")?;
                if schema.as_ref().is_some_and(|s| s.field(&c).is_some()) {
                    return Err(cx
                        .err(
                            &at("timestamp_column"),
                            format!("column `{c}` is already in the schema"),
                        )
                        .with_hint("timestamp_column adds a new column; pick another name"));
                }
                Some(c)
            }
            None => None,
        };
        // event_time may name the timestamp column, which the schema lacks.
        let mut with_ts = schema.clone();
        if let (Some(s), Some(c)) = (&mut with_ts, &timestamp_column) {
            s.fields.push(FieldSpec {
                name: c.clone(),
                data_type: FieldType::TimestampMs,
                nullable: false,
            });
        }
        let event_time = cx.event_time(id, k.event_time, with_ts.as_ref())?;
        let key = cx.partition_key(&at("key"), k.key, with_ts.as_ref())?;
        let format = cx.record_format(&at("format"), k.format)?;
        let (avro, protobuf) =
            cx.binary_format(id, format, k.schema_registry, k.avro_schema, k.proto_schema)?;
        if format != RecordFormat::Json && k.coerce.is_some() {
            return Err(cx
                .err(
                    &at("coerce"),
                    format!(
                        "`coerce` is for JSON records, not format: {}",
                        format.name()
                    ),
                )
                .with_hint("remove coerce: Avro and Protobuf values are typed by their schema"));
        }
        let decode = cx.decode(
            id,
            k.coerce,
            k.max_record_bytes,
            k.max_depth,
            schema.as_ref(),
        )?;
        Ok(KafkaSourceConfig {
            decode,
            key,
            brokers: cx.brokers(&at("brokers"), k.brokers)?,
            topics,
            group: match k.group {
                Some(g) => cx.safe_name(&at("group"), g, "group name")?,
                None => cx.pipeline().to_string(),
            },
            parallelism: cx.parallelism(&at("parallelism"), k.parallelism)?,
            assignor: cx.assignor(&at("assignor"), k.assignor, true)?,
            start: cx.start(&at("start"), k.start)?,
            stop_at_end: k.stop_at_end.unwrap_or(false),
            session_timeout: match k.session_timeout {
                Some(d) => cx.duration(&at("session_timeout"), d)?,
                None => Duration::from_secs(10),
            },
            format,
            avro,
            protobuf,
            schema,
            timestamp_column,
            batch_size: cx.batch_size(&at("batch_size"), k.batch_size)?,
            event_time,
            options: cx.kafka_options(&at("options"), k.options)?,
        })
    }
}

impl SourceConfig for KafkaSourceConfig {
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

impl SourceConnector for KafkaSourceConfig {
    const TYPE: &'static str = "kafka";

    fn plan(&self, cx: &PlanCx<'_>) -> Result<PlannedSource, DslError> {
        let Some(values) = &self.schema else {
            return Err(cx.error(
                &[],
                "a kafka source needs a `schema`",
                Some(
                    "declare the record fields, e.g. schema: { card_id: int64, amount: float64 }"
                        .into(),
                ),
            ));
        };
        let schema = source_schema(values, self.timestamp_column.as_deref());
        let mut planned = self.clone();
        crate::protobuf::plan::check_source(cx, &mut planned.protobuf, values)?;
        Ok(PlannedSource {
            schema,
            detail: format!(
                "brokers={} topics={} group={} assignor={} start={}",
                self.brokers,
                self.topics.join(","),
                self.group,
                self.assignor.name(),
                self.start.name()
            ),
            task: Arc::new(planned),
        })
    }
}

impl SourceTask for KafkaSourceConfig {
    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities {
            embedded_log: None,
            // Processes of a group share a Kafka topic's partitions.
            partitions: Some(Partitioned {
                topics: self.topics.clone(),
                key: self.key.clone(),
                shared: true,
            }),
            kafka_group: Some(self.clone()),
        }
    }

    fn instances(&self, cx: &BuildCx<'_>) -> shoal_runtime::Result<SourceFactory> {
        let live = SharedPositions::default();
        let restored = SharedPositions::default();
        let ledger = cx.job.ledger.clone();
        let (spec, node, schema) = (self.clone(), cx.node.to_string(), cx.schema.clone());
        Ok(Box::new(move |_| {
            let mut src = KafkaSource::new(
                &node,
                spec.clone(),
                schema.clone(),
                live.clone(),
                restored.clone(),
            );
            if let Some((l, store)) = &ledger {
                src = src.with_ledger(l.clone(), store.clone());
            }
            Ok(Box::new(src) as Box<dyn Source>)
        }))
    }
}

/// `type: kafka` sink — produce records to a Kafka topic; transactional
/// (one transaction per checkpoint) when the pipeline checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSinkConfig {
    /// `inputs:` (non-empty).
    pub inputs: Vec<String>,
    /// `brokers:` bootstrap servers.
    pub brokers: String,
    /// `topic:` (must exist).
    pub topic: String,
    /// `key:` column used as the record key (and so the partition).
    pub key: Option<String>,
    /// `options:` librdkafka producer settings passed through.
    pub options: Vec<(String, String)>,
    /// `format: avro` with `schema_registry:`: records in the Confluent
    /// wire format under a schema the sink registers; `None` = JSON.
    pub avro: Option<AvroSink>,
    /// `format: protobuf`: the message type, and where it is registered.
    pub protobuf: Option<ProtoSink>,
}

/// The keys of a `type: kafka` sink, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafkaSink {
    inputs: Vec<String>,
    brokers: String,
    topic: String,
    key: Option<String>,
    options: Option<IndexMap<String, Scalar>>,
    format: Option<String>,
    schema_registry: Option<RawSchemaRegistry>,
    proto_schema: Option<RawProtoSchema>,
}

impl FromYaml for KafkaSinkConfig {
    type Raw = RawKafkaSink;

    fn from_raw(
        k: RawKafkaSink,
        cx: &ConfigCx<'_>,
        section: &str,
        id: &str,
    ) -> Result<Self, DslError> {
        let at = |key: &'static str| -> [&str; 3] { [section, id, key] };
        let topic = cx.topic(&at("topic"), k.topic)?;
        let format = cx.record_format(&at("format"), k.format)?;
        let (avro, protobuf) =
            cx.sink_format(id, &topic, format, k.schema_registry, k.proto_schema)?;
        Ok(KafkaSinkConfig {
            inputs: k.inputs,
            brokers: cx.brokers(&at("brokers"), k.brokers)?,
            topic,
            key: cx.key(&at("key"), k.key)?,
            options: cx.kafka_options(&at("options"), k.options)?,
            avro,
            protobuf,
        })
    }
}

impl SinkConfig for KafkaSinkConfig {
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

impl SinkConnector for KafkaSinkConfig {
    const TYPE: &'static str = "kafka";

    fn plan(
        &self,
        cx: &PlanCx<'_>,
        schema: &arrow::datatypes::SchemaRef,
    ) -> Result<PlannedSink, DslError> {
        let mut planned = self.clone();
        crate::protobuf::plan::check_sink(cx, &mut planned.protobuf, schema)?;
        Ok(PlannedSink {
            detail: format!(
                "brokers={} topic={} key={}",
                self.brokers,
                self.topic,
                self.key.as_deref().unwrap_or("-")
            ),
            task: Arc::new(planned),
        })
    }
}

impl SinkTask for KafkaSinkConfig {
    fn capabilities(&self) -> SinkCapabilities {
        SinkCapabilities {
            embedded_log: None,
            owns_offsets: Some(OffsetOwner::Kafka {
                topic: self.topic.clone(),
            }),
            external: true,
        }
    }

    fn instances(&self, cx: &BuildCx<'_>) -> shoal_runtime::Result<SinkFactory> {
        let ledger = cx.job.ledger.as_ref().map(|l| l.0.clone());
        let (pipeline, process, node) = (
            cx.job.pipeline.to_string(),
            cx.job.process.to_string(),
            cx.node.to_string(),
        );
        let (spec, schema, checkpointing) = (self.clone(), cx.schema.clone(), cx.job.checkpointing);
        Ok(Box::new(move |i| {
            let txn = checkpointing.then(|| KafkaSinkTransactions {
                transactional_id: format!("shoal.{pipeline}.{node}.{i}.{process}"),
                ledger: ledger.clone(),
            });
            let sink = KafkaSink::new(
                &spec.brokers,
                &spec.topic,
                spec.key.clone(),
                &spec.options,
                txn,
            )?;
            let sink = sink.with_values(ValueEncoder::new(
                &schema,
                spec.avro.as_ref(),
                spec.protobuf.as_ref(),
            )?);
            Ok(Box::new(sink) as Box<dyn Sink>)
        }))
    }
}
