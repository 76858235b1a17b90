//! Turning planned nodes into runtime tasks.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::physical_expr::PhysicalExpr;
use shoal_connectors::dead_letter::{FileDeadLetters, StderrDeadLetters};
use shoal_connectors::file::{FileSink, FileSource};
use shoal_connectors::generator::TransactionGenerator;
use shoal_connectors::kafka::{
    KafkaSink as KafkaSinkTask, KafkaSource as KafkaSourceTask, OffsetLedger, PositionStore,
    SharedPositions, process_identity,
};
use shoal_connectors::log::{
    LogSink as LogSinkTask, LogSource as LogSourceTask, RunPartitions, TopicWriters,
};
use shoal_connectors::postgres::{
    PostgresPositions, PostgresSink as PostgresSinkTask, PostgresSinkTask as PgTaskId,
};
use shoal_connectors::stdout::StdoutSink;
use shoal_connectors::values::ValueEncoder;
use shoal_dsl::{
    DeadLetterSink as DeadLetterSpec, FileFormat, GeneratorSource, KafkaSink, KafkaSource, LogSink,
    LogSource, PipelineSpec, PostgresSink, RedisSink,
};
use shoal_log::{GroupConfig, LogConfig, LogDir};
use shoal_runtime::{
    DeadLetterSink, EdgeSpec, JobGraph, Operator, Result, RuntimeError, SharedPartitionTimes, Sink,
    Source,
};
use shoal_sql::{CompiledQuery, DedupOperator, DedupSpec, FilterOperator, QueryOperator};

use crate::planner::{Plan, resolve};
use shoal_runtime::shard::ShardRegistry;

/// How to build a node's task instances.
pub(crate) enum Builder {
    Generator(GeneratorSource),
    File {
        spec: shoal_dsl::FileSource,
        base_dir: PathBuf,
    },
    Log(LogSource),
    Kafka(KafkaSource),
    Filter(Arc<dyn PhysicalExpr>),
    Sql(Arc<CompiledQuery>),
    Score {
        model: shoal_score::ModelHandle,
        features: Vec<String>,
        schema: arrow::datatypes::SchemaRef,
    },
    Dedup(Arc<DedupSpec>, arrow::datatypes::SchemaRef),
    Stdout(FileFormat),
    FileSink {
        dir: PathBuf,
        format: FileFormat,
    },
    LogSink(LogSink),
    KafkaSink(KafkaSink),
    PostgresSink(PostgresSink),
    RedisSink(RedisSink),
}

/// Where dead letters go.
pub(crate) enum DeadLetterBuilder {
    File(PathBuf),
    Stderr,
}

pub(crate) fn dead_letter(
    spec: &PipelineSpec,
    base: &Path,
    data_dir: &Path,
) -> (String, DeadLetterBuilder) {
    match spec.dead_letter.as_ref().map(|d| &d.sink) {
        Some(DeadLetterSpec::Stdout) => ("stderr".into(), DeadLetterBuilder::Stderr),
        Some(DeadLetterSpec::File { path, .. }) => {
            let dir = resolve(base, path);
            (
                format!("file {}", path.display()),
                DeadLetterBuilder::File(dir),
            )
        }
        None => {
            let dir = data_dir.join("dead-letter").join(&spec.name);
            (
                format!("file {}", dir.display()),
                DeadLetterBuilder::File(dir),
            )
        }
    }
}

/// The embedded log directory, opened once per run and shared by every log
/// source and sink of the pipeline (one in-process group coordinator).
fn open_log(plan: &Plan) -> Result<Option<LogDir>> {
    let mut session_timeout: Option<std::time::Duration> = None;
    let mut any = false;
    for node in &plan.nodes {
        match &node.builder {
            Builder::Log(l) => {
                any = true;
                session_timeout =
                    Some(session_timeout.map_or(l.session_timeout, |t| t.min(l.session_timeout)));
            }
            Builder::LogSink(_) => any = true,
            _ => {}
        }
    }
    if !any {
        return Ok(None);
    }
    let mut group = GroupConfig::default();
    if let Some(t) = session_timeout {
        group.session_timeout = t;
    }
    let dir = plan.data_dir.join("log");
    let config = LogConfig {
        group,
        ..LogConfig::default()
    };
    LogDir::open(&dir, config)
        .map(Some)
        .map_err(|e| RuntimeError::User(format!("open the embedded log at {}: {e}", dir.display())))
}

/// Create the topics the pipeline's log sinks write (if missing), and count
/// their writers so log sources reading them know when the input is complete.
fn prepare_topics(plan: &Plan, log: &LogDir) -> Result<TopicWriters> {
    let writers = TopicWriters::default();
    for node in &plan.nodes {
        if let Builder::LogSink(l) = &node.builder {
            let partitions = match (l.partitions, log.partition_count(&l.topic)) {
                (Some(p), _) => p,
                (None, Ok(existing)) => existing,
                (None, Err(_)) => 1,
            };
            log.create_topic(&l.topic, partitions).map_err(|e| {
                RuntimeError::User(format!("sink `{}`: topic {}: {e}", node.id, l.topic))
            })?;
            writers.add(&l.topic, node.parallelism);
        }
    }
    Ok(writers)
}

/// `SHOAL_TEST_CRASH_MEMBER=node:instance:records` makes that log-source
/// member stop like a crashed process after that many records (tests only).
fn crash_hook(node: &str) -> Option<(usize, u64)> {
    let v = std::env::var("SHOAL_TEST_CRASH_MEMBER").ok()?;
    let mut it = v.split(':');
    let (n, i, r) = (it.next()?, it.next()?, it.next()?);
    (n == node).then_some((i.parse().ok()?, r.parse().ok()?))
}

/// Exactly-once from Kafka: when the pipeline checkpoints, reads one Kafka
/// source and writes exactly one Kafka or Postgres sink, that sink stores the
/// source offsets with its output (see `shoal_connectors::kafka::OffsetLedger`).
struct KafkaLedger {
    ledger: Arc<OffsetLedger>,
    store: Option<Arc<dyn PositionStore>>,
}

/// The pipeline shape in which a sink owns the source offsets: exactly one
/// Kafka source and exactly one Kafka or Postgres sink. Returns the source
/// (node id, spec) and the sink's node.
pub(crate) fn offset_owner(plan: &Plan) -> Option<((&str, &KafkaSource), &crate::PlanNode)> {
    let mut sources = plan.nodes.iter().filter_map(|n| match &n.builder {
        Builder::Kafka(k) => Some((n.id.as_str(), k)),
        _ => None,
    });
    let mut sinks = plan
        .nodes
        .iter()
        .filter(|n| matches!(n.builder, Builder::KafkaSink(_) | Builder::PostgresSink(_)));
    match (sources.next(), sources.next(), sinks.next(), sinks.next()) {
        (Some(source), None, Some(sink), None) => Some((source, sink)),
        _ => None,
    }
}

fn kafka_ledger(plan: &Plan) -> Result<Option<KafkaLedger>> {
    if plan.checkpoint.is_none() {
        return Ok(None);
    }
    let Some(((_, source), sink)) = offset_owner(plan) else {
        return Ok(None);
    };
    let store: Option<Arc<dyn PositionStore>> = match &sink.builder {
        Builder::PostgresSink(p) => Some(Arc::new(PostgresPositions::connect(&p.url)?)),
        _ => None,
    };
    Ok(Some(KafkaLedger {
        ledger: Arc::new(OffsetLedger::new(&source.group)),
        store,
    }))
}

impl Plan {
    /// The runnable graph.
    pub fn into_job_graph(self) -> Result<JobGraph> {
        let mut graph = JobGraph::new(&self.name);
        let ledger = kafka_ledger(&self)?;
        let external_sinks = self.nodes.iter().any(|n| {
            matches!(
                n.builder,
                Builder::KafkaSink(_) | Builder::PostgresSink(_) | Builder::RedisSink(_)
            )
        });
        let process = if external_sinks {
            process_identity(&self.data_dir)?
        } else {
            String::new()
        };
        let checkpointing = self.checkpoint.is_some();
        let pipeline = self.name.clone();
        let log = open_log(&self)?;
        let writers = match &log {
            Some(log) => prepare_topics(&self, log)?,
            None => TopicWriters::default(),
        };
        // One registry of partition shards, when an operator is sharded.
        let shards = self
            .nodes
            .iter()
            .find_map(|n| n.state.as_ref()?.by_partition.as_ref())
            .and_then(|(src, _)| {
                self.nodes.iter().find_map(|n| match &n.builder {
                    Builder::Kafka(k) if n.id == *src => {
                        // Processes share a Kafka topic's partitions: a shard that
                        // moves in behind an operator's event time catches up.
                        Some(Arc::new(
                            ShardRegistry::new(&k.topics[0]).with_catch_up(true),
                        ))
                    }
                    Builder::Log(l) if n.id == *src => Some(Arc::new(ShardRegistry::new(&l.topic))),
                    _ => None,
                })
            });
        let mut ids: Vec<String> = Vec::new();
        for node in self.nodes {
            let inputs: Vec<EdgeSpec> = node
                .inputs
                .iter()
                .map(|e| EdgeSpec {
                    from: ids
                        .iter()
                        .position(|i| *i == e.from)
                        .expect("inputs are planned first"),
                    partitioning: e.partitioning.clone(),
                })
                .collect();
            let id = node.id.clone();
            let p = node.parallelism;
            let schema = node.schema.clone();
            let state = node.state.clone();
            match node.builder {
                Builder::Generator(spec) => {
                    graph.add_source(&id, p, move |_| {
                        Ok(Box::new(TransactionGenerator::new(&spec)) as Box<dyn Source>)
                    });
                }
                Builder::File { spec, base_dir } => {
                    let nid = id.clone();
                    graph.add_source(&id, p, move |_| {
                        Ok(
                            Box::new(FileSource::new(&nid, &spec, &base_dir, schema.clone())?)
                                as Box<dyn Source>,
                        )
                    });
                }
                Builder::Log(spec) => {
                    let log = log.clone().expect("log opened for log nodes");
                    log.partition_count(&spec.topic).map_err(|e| {
                        RuntimeError::User(format!(
                            "source `{id}`: topic {}: {e} (create it with `shoal topic create {} --partitions N`)",
                            spec.topic, spec.topic
                        ))
                    })?;
                    let started = RunPartitions::default();
                    let times = SharedPartitionTimes::default();
                    let crash = crash_hook(&id);
                    let nid = id.clone();
                    let topic_writers = writers.get(&spec.topic);
                    graph.add_source(&id, p, move |i| {
                        let src = LogSourceTask::new(
                            &nid,
                            log.clone(),
                            spec.clone(),
                            schema.clone(),
                            started.clone(),
                        )
                        .with_writers(topic_writers.clone())
                        .with_partition_times(times.clone())
                        .crash_after(crash.filter(|(ci, _)| *ci == i).map(|(_, r)| r));
                        Ok(Box::new(src) as Box<dyn Source>)
                    });
                }
                Builder::Kafka(spec) => {
                    let live = SharedPositions::default();
                    let restored = SharedPositions::default();
                    let nid = id.clone();
                    let ledger = ledger.as_ref().map(|l| (l.ledger.clone(), l.store.clone()));
                    graph.add_source(&id, p, move |_| {
                        let mut src = KafkaSourceTask::new(
                            &nid,
                            spec.clone(),
                            schema.clone(),
                            live.clone(),
                            restored.clone(),
                        );
                        if let Some((l, store)) = &ledger {
                            src = src.with_ledger(l.clone(), store.clone());
                        }
                        Ok(Box::new(src) as Box<dyn Source>)
                    });
                }
                Builder::KafkaSink(spec) => {
                    let ledger = ledger.as_ref().map(|l| l.ledger.clone());
                    let (pipeline, process, nid) = (pipeline.clone(), process.clone(), id.clone());
                    graph.add_sink(&id, p, inputs, move |i| {
                        let txn =
                            checkpointing.then(|| shoal_connectors::kafka::KafkaSinkTransactions {
                                transactional_id: format!("shoal.{pipeline}.{nid}.{i}.{process}"),
                                ledger: ledger.clone(),
                            });
                        let sink = KafkaSinkTask::new(
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
                    });
                }
                Builder::PostgresSink(spec) => {
                    let ledger = ledger.as_ref().map(|l| l.ledger.clone());
                    let (pipeline, process, nid) = (pipeline.clone(), process.clone(), id.clone());
                    let shards = shards.clone();
                    graph.add_sink(&id, p, inputs, move |i| {
                        let task = PgTaskId {
                            pipeline: pipeline.clone(),
                            sink: nid.clone(),
                            task: format!("{i}@{process}"),
                            ledger: ledger.clone(),
                            shards: shards.clone(),
                            checkpointing,
                        };
                        Ok(
                            Box::new(PostgresSinkTask::new(spec.clone(), schema.clone(), task)?)
                                as Box<dyn Sink>,
                        )
                    });
                }
                Builder::RedisSink(spec) => {
                    let (pipeline, process, nid) = (pipeline.clone(), process.clone(), id.clone());
                    graph.add_sink(&id, p, inputs, move |i| {
                        let task = shoal_connectors::redis::RedisSinkTask {
                            pipeline: pipeline.clone(),
                            sink: nid.clone(),
                            task: format!("{i}@{process}"),
                            checkpointing,
                        };
                        Ok(Box::new(shoal_connectors::redis::RedisSink::new(
                            spec.clone(),
                            schema.clone(),
                            task,
                        )?) as Box<dyn Sink>)
                    });
                }
                Builder::Filter(pred) => {
                    graph.add_operator(&id, p, inputs, move |_| {
                        Ok(Box::new(FilterOperator::new(pred.clone())) as Box<dyn Operator>)
                    });
                }
                Builder::Sql(query) => {
                    let nid = id.clone();
                    graph.add_operator(&id, p, inputs, move |_| {
                        Ok(
                            Box::new(QueryOperator::new(query.as_ref().clone()).with_node(&nid))
                                as Box<dyn Operator>,
                        )
                    });
                }
                Builder::Score {
                    model,
                    features,
                    schema,
                } => {
                    graph.add_operator(&id, p, inputs, move |_| {
                        Ok(Box::new(shoal_score::ScoreOperator::new(
                            model.clone(),
                            features.clone(),
                            schema.clone(),
                        )) as Box<dyn Operator>)
                    });
                }
                Builder::Dedup(spec, input_schema) => {
                    let nid = id.clone();
                    graph.add_operator(&id, p, inputs, move |_| {
                        Ok(Box::new(DedupOperator::new(
                            spec.as_ref().clone(),
                            &input_schema,
                            &nid,
                        )?) as Box<dyn Operator>)
                    });
                }
                Builder::Stdout(format) => {
                    graph.add_sink(&id, p, inputs, move |_| {
                        Ok(Box::new(StdoutSink::new(format.clone())) as Box<dyn Sink>)
                    });
                }
                Builder::FileSink { dir, format } => {
                    graph.add_sink(&id, p, inputs, move |i| {
                        Ok(Box::new(FileSink::new(&dir, format.clone(), i)?) as Box<dyn Sink>)
                    });
                }
                Builder::LogSink(spec) => {
                    let log = log.clone().expect("log opened for log nodes");
                    let done = writers.get(&spec.topic);
                    let txn_prefix = format!("{}.{id}", self.name);
                    let schema = schema.clone();
                    graph.add_sink(&id, p, inputs, move |i| {
                        let values =
                            ValueEncoder::new(&schema, spec.avro.as_ref(), spec.protobuf.as_ref())?;
                        Ok(Box::new(
                            LogSinkTask::new(log.clone(), &spec.topic, spec.key.clone())
                                .with_values(values)
                                .with_writers(done.clone())
                                .with_transactional_id(format!("{txn_prefix}.{i}")),
                        ) as Box<dyn Sink>)
                    });
                }
            }
            if let Some(st) = &state {
                let nid = graph.len() - 1;
                graph.set_state_schema(nid, st.schema.clone());
                if st.by_partition.is_some() {
                    graph.shard_operator(nid, shards.clone().expect("registry for sharded nodes"));
                }
            }
            ids.push(id);
        }
        let dl: Box<dyn DeadLetterSink> = match &self.dead_letter_builder {
            DeadLetterBuilder::File(dir) => Box::new(FileDeadLetters::new(dir)?),
            DeadLetterBuilder::Stderr => Box::new(StderrDeadLetters),
        };
        graph.set_dead_letter_sink(dl);
        Ok(graph)
    }
}
