//! Turning planned nodes into runtime tasks.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::physical_expr::PhysicalExpr;
use shoal_connectors::connector::{
    BuildCx, JobResources, Ledger, OffsetOwner, SinkTask, SourceTask,
};
use shoal_connectors::dead_letter::{FileDeadLetters, StderrDeadLetters};
use shoal_connectors::kafka::{KafkaSourceConfig, OffsetLedger, PositionStore, process_identity};
use shoal_connectors::log::TopicWriters;
use shoal_connectors::postgres::PostgresPositions;
use shoal_dsl::{DeadLetterSink as DeadLetterSpec, PipelineSpec};
use shoal_log::{GroupConfig, LogConfig, LogDir};
use shoal_runtime::{DeadLetterSink, EdgeSpec, JobGraph, Operator, Result, RuntimeError};
use shoal_sql::{CompiledQuery, DedupOperator, DedupSpec, FilterOperator, QueryOperator};

use crate::planner::{Plan, resolve};
use shoal_runtime::shard::ShardRegistry;

/// How to build a node's task instances.
pub(crate) enum Builder {
    /// A source connector's planned task.
    Source(Arc<dyn SourceTask>),
    /// A sink connector's planned task.
    Sink(Arc<dyn SinkTask>),
    Filter(Arc<dyn PhysicalExpr>),
    Sql(Arc<CompiledQuery>),
    Score {
        model: shoal_score::ModelHandle,
        features: Vec<String>,
        schema: arrow::datatypes::SchemaRef,
    },
    Dedup(Arc<DedupSpec>, arrow::datatypes::SchemaRef),
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
        if let Some(t) = node.source_capabilities().and_then(|c| c.embedded_log) {
            any = true;
            session_timeout = Some(session_timeout.map_or(t, |s| s.min(t)));
        }
        if node
            .sink_capabilities()
            .is_some_and(|c| c.embedded_log.is_some())
        {
            any = true;
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
        if let Some((topic, partitions)) = node.sink_capabilities().and_then(|c| c.embedded_log) {
            let partitions = match (partitions, log.partition_count(&topic)) {
                (Some(p), _) => p,
                (None, Ok(existing)) => existing,
                (None, Err(_)) => 1,
            };
            log.create_topic(&topic, partitions).map_err(|e| {
                RuntimeError::User(format!("sink `{}`: topic {topic}: {e}", node.id))
            })?;
            writers.add(&topic, node.parallelism);
        }
    }
    Ok(writers)
}

/// The pipeline shape in which a sink owns the source offsets: exactly one
/// Kafka source and exactly one sink that can own them (Kafka, Postgres).
/// Returns the source (node id, config), the sink's node and how the sink
/// stores them. Exactly-once from Kafka, when the pipeline checkpoints:
/// that sink stores the source offsets with its output (see
/// `shoal_connectors::kafka::OffsetLedger`).
pub(crate) fn offset_owner(
    plan: &Plan,
) -> Option<((&str, KafkaSourceConfig), &crate::PlanNode, OffsetOwner)> {
    let mut sources = plan.nodes.iter().filter_map(|n| {
        let group = n.source_capabilities()?.kafka_group?;
        Some((n.id.as_str(), group))
    });
    let mut sinks = plan.nodes.iter().filter_map(|n| {
        let owner = n.sink_capabilities()?.owns_offsets?;
        Some((n, owner))
    });
    match (sources.next(), sources.next(), sinks.next(), sinks.next()) {
        (Some(source), None, Some((sink, owner)), None) => Some((source, sink, owner)),
        _ => None,
    }
}

fn kafka_ledger(plan: &Plan) -> Result<Option<Ledger>> {
    if plan.checkpoint.is_none() {
        return Ok(None);
    }
    let Some(((_, source), _, owner)) = offset_owner(plan) else {
        return Ok(None);
    };
    let store: Option<Arc<dyn PositionStore>> = match owner {
        OffsetOwner::Postgres { url } => Some(Arc::new(PostgresPositions::connect(&url)?)),
        OffsetOwner::Kafka { .. } => None,
    };
    Ok(Some((Arc::new(OffsetLedger::new(&source.group)), store)))
}

impl Plan {
    /// The runnable graph.
    pub fn into_job_graph(self) -> Result<JobGraph> {
        let mut graph = JobGraph::new(&self.name);
        let ledger = kafka_ledger(&self)?;
        let external_sinks = self
            .nodes
            .iter()
            .any(|n| n.sink_capabilities().is_some_and(|c| c.external));
        let process = if external_sinks {
            process_identity(&self.data_dir)?
        } else {
            String::new()
        };
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
                let node = self.nodes.iter().find(|n| n.id == *src)?;
                let p = node.source_capabilities()?.partitions?;
                // Processes that share a topic's partitions: a shard that
                // moves in behind an operator's event time catches up.
                Some(Arc::new(
                    ShardRegistry::new(&p.topics[0]).with_catch_up(p.shared),
                ))
            });
        let job = JobResources {
            pipeline: self.name.clone(),
            process,
            checkpointing: self.checkpoint.is_some(),
            base_dir: self.base_dir.clone(),
            log,
            writers,
            ledger,
            shards,
        };
        let shards = job.shards.clone();
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
                Builder::Source(task) => {
                    let factory = task.instances(&BuildCx {
                        node: &id,
                        schema: &schema,
                        job: &job,
                    })?;
                    graph.add_source(&id, p, factory);
                }
                Builder::Sink(task) => {
                    let factory = task.instances(&BuildCx {
                        node: &id,
                        schema: &schema,
                        job: &job,
                    })?;
                    graph.add_sink(&id, p, inputs, factory);
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
