//! `type: file` sources and sinks — their configs and how they plug into a
//! pipeline.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use shoal_dsl::IndexMap;
use shoal_dsl::connector::{
    ConfigCx, FromYaml, RawCoerce, RawEventTime, Scalar, SinkConfig, SourceConfig,
};
use shoal_dsl::{DecodeSpec, DslError, EventTimeSpec, FileFormat, SchemaSpec};
use shoal_runtime::{Sink, Source};

use super::{FileSink, FileSource, file_source_schema};
use crate::connector::{
    BuildCx, PlanCx, PlannedSink, PlannedSource, SinkConnector, SinkFactory, SinkTask,
    SourceConnector, SourceFactory, SourceTask,
};

/// `type: file` source.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSourceConfig {
    /// `path:` a file or a directory of files.
    pub path: PathBuf,
    /// `format:` `jsonl` (alias `json`), `csv` or `parquet`; default from the path's extension.
    pub format: FileFormat,
    /// `schema:`; `None` = infer.
    pub schema: Option<SchemaSpec>,
    /// `header:` CSV only: the first line names the columns; default true.
    pub header: bool,
    /// `batch_size:`; default 8192.
    pub batch_size: usize,
    /// `event_time:`.
    pub event_time: Option<EventTimeSpec>,
    /// `coerce:`, `max_record_bytes:`, `max_depth:` — how records decode.
    pub decode: DecodeSpec,
}

/// The keys of a `type: file` source, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFileSource {
    path: String,
    format: Option<String>,
    schema: Option<IndexMap<String, String>>,
    header: Option<bool>,
    batch_size: Option<u64>,
    event_time: Option<RawEventTime>,
    coerce: Option<RawCoerce>,
    max_record_bytes: Option<Scalar>,
    max_depth: Option<u64>,
}

impl FromYaml for FileSourceConfig {
    type Raw = RawFileSource;

    fn from_raw(
        f: RawFileSource,
        cx: &ConfigCx<'_>,
        section: &str,
        id: &str,
    ) -> Result<Self, DslError> {
        let at = |k: &'static str| -> [&str; 3] { [section, id, k] };
        let path = cx.path(&at("path"), f.path)?;
        let format = match f.format {
            Some(v) => cx.file_format(&at("format"), &v)?,
            None => {
                match path
                    .extension()
                    .and_then(|e| e.to_str())
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                {
                    Some("jsonl" | "json" | "ndjson") => FileFormat::Jsonl,
                    Some("csv") => FileFormat::Csv,
                    Some("parquet") => FileFormat::Parquet,
                    _ => {
                        return Err(cx
                        .err(&[section, id], format!("source \"{id}\" needs a `format:`"))
                        .with_hint("add format: jsonl, csv or parquet (it cannot be told from the path)"));
                    }
                }
            }
        };
        let schema = cx.schema(id, f.schema)?;
        let event_time = cx.event_time(id, f.event_time, schema.as_ref())?;
        let decode = cx.decode(
            id,
            f.coerce,
            f.max_record_bytes,
            f.max_depth,
            schema.as_ref(),
        )?;
        Ok(FileSourceConfig {
            decode,
            path,
            format,
            schema,
            header: f.header.unwrap_or(true),
            batch_size: cx.batch_size(&at("batch_size"), f.batch_size)?,
            event_time,
        })
    }
}

impl SourceConfig for FileSourceConfig {
    fn kind(&self) -> &'static str {
        <Self as SourceConnector>::TYPE
    }

    fn event_time(&self) -> Option<&EventTimeSpec> {
        self.event_time.as_ref()
    }

    fn schema(&self) -> Option<&SchemaSpec> {
        self.schema.as_ref()
    }
}

impl SourceConnector for FileSourceConfig {
    const TYPE: &'static str = "file";

    fn plan(&self, cx: &PlanCx<'_>) -> Result<PlannedSource, DslError> {
        let schema = file_source_schema(self, cx.base_dir)
            .map_err(|e| cx.error(&["path"], e.to_string(), None))?;
        Ok(PlannedSource {
            schema,
            detail: format!("{} {}", self.format.name(), self.path.display()),
            task: Arc::new(self.clone()),
        })
    }
}

impl SourceTask for FileSourceConfig {
    fn instances(&self, cx: &BuildCx<'_>) -> shoal_runtime::Result<SourceFactory> {
        let (spec, node, base_dir, schema) = (
            self.clone(),
            cx.node.to_string(),
            cx.job.base_dir.to_path_buf(),
            cx.schema.clone(),
        );
        Ok(Box::new(move |_| {
            Ok(
                Box::new(FileSource::new(&node, &spec, &base_dir, schema.clone())?)
                    as Box<dyn Source>,
            )
        }))
    }
}

/// `type: file` sink — a directory where committed files appear atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSinkConfig {
    /// `inputs:` (non-empty).
    pub inputs: Vec<String>,
    /// `path:` the output directory.
    pub path: PathBuf,
    /// `format:`; default `jsonl`.
    pub format: FileFormat,
    /// `parallelism:` writers; default 1.
    pub parallelism: usize,
    /// `key:` partitioning column between writers.
    pub key: Option<String>,
}

/// The keys of a `type: file` sink, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFileSink {
    inputs: Vec<String>,
    path: String,
    format: Option<String>,
    parallelism: Option<u64>,
    key: Option<String>,
}

impl FromYaml for FileSinkConfig {
    type Raw = RawFileSink;

    fn from_raw(
        f: RawFileSink,
        cx: &ConfigCx<'_>,
        section: &str,
        id: &str,
    ) -> Result<Self, DslError> {
        let at = |k: &'static str| -> [&str; 3] { [section, id, k] };
        Ok(FileSinkConfig {
            inputs: f.inputs,
            path: cx.path(&at("path"), f.path)?,
            format: match f.format {
                Some(v) => cx.file_format(&at("format"), &v)?,
                None => FileFormat::Jsonl,
            },
            parallelism: cx.parallelism(&at("parallelism"), f.parallelism)?,
            key: cx.key(&at("key"), f.key)?,
        })
    }
}

impl SinkConfig for FileSinkConfig {
    fn kind(&self) -> &'static str {
        <Self as SinkConnector>::TYPE
    }

    fn inputs(&self) -> &[String] {
        &self.inputs
    }

    fn parallelism(&self) -> usize {
        self.parallelism
    }

    fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}

/// A planned file sink: the resolved directory and the format.
struct FileSinkTask {
    dir: PathBuf,
    format: FileFormat,
}

impl SinkConnector for FileSinkConfig {
    const TYPE: &'static str = "file";

    fn plan(
        &self,
        cx: &PlanCx<'_>,
        _schema: &arrow::datatypes::SchemaRef,
    ) -> Result<PlannedSink, DslError> {
        Ok(PlannedSink {
            detail: format!("{} {}", self.format.name(), self.path.display()),
            task: Arc::new(FileSinkTask {
                dir: cx.resolve(&self.path),
                format: self.format.clone(),
            }),
        })
    }
}

impl SinkTask for FileSinkTask {
    fn instances(&self, _cx: &BuildCx<'_>) -> shoal_runtime::Result<SinkFactory> {
        let (dir, format) = (self.dir.clone(), self.format.clone());
        Ok(Box::new(move |i| {
            Ok(Box::new(FileSink::new(&dir, format.clone(), i)?) as Box<dyn Sink>)
        }))
    }
}
