//! Turning planned nodes into runtime tasks.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::physical_expr::PhysicalExpr;
use shoal_connectors::dead_letter::{FileDeadLetters, StderrDeadLetters};
use shoal_connectors::file::{FileSink, FileSource};
use shoal_connectors::generator::TransactionGenerator;
use shoal_connectors::stdout::StdoutSink;
use shoal_dsl::{
    DeadLetterSink as DeadLetterSpec, FileFormat, GeneratorSource, LogSink, LogSource, PipelineSpec,
};
use shoal_runtime::{
    DeadLetterSink, EdgeSpec, JobGraph, Operator, Result, RuntimeError, Sink, Source,
};
use shoal_sql::{CompiledQuery, FilterOperator, QueryOperator};

use crate::planner::{Plan, resolve};

/// How to build a node's task instances.
pub(crate) enum Builder {
    Generator(GeneratorSource),
    File {
        spec: shoal_dsl::FileSource,
        base_dir: PathBuf,
    },
    Log(LogSource),
    Filter(Arc<dyn PhysicalExpr>),
    Sql(Arc<CompiledQuery>),
    Stdout(FileFormat),
    FileSink {
        dir: PathBuf,
        format: FileFormat,
    },
    LogSink(LogSink),
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

impl Plan {
    /// The runnable graph.
    pub fn into_job_graph(self) -> Result<JobGraph> {
        let mut graph = JobGraph::new(&self.name);
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
                Builder::Log(_) => {
                    return Err(RuntimeError::User(format!(
                        "source `{id}`: the embedded log source is not available in this build"
                    )));
                }
                Builder::Filter(pred) => {
                    graph.add_operator(&id, p, inputs, move |_| {
                        Ok(Box::new(FilterOperator::new(pred.clone())) as Box<dyn Operator>)
                    });
                }
                Builder::Sql(query) => {
                    graph.add_operator(&id, p, inputs, move |_| {
                        Ok(Box::new(QueryOperator::new(query.as_ref().clone()))
                            as Box<dyn Operator>)
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
                Builder::LogSink(_) => {
                    return Err(RuntimeError::User(format!(
                        "sink `{id}`: the embedded log sink is not available in this build"
                    )));
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
