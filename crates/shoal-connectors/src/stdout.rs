//! The `stdout` sink: JSON lines (or CSV) on standard output.
//!
//! Not transactional: after a crash and restart from a checkpoint, records
//! after that checkpoint are printed again (at-least-once).

use std::io::{BufWriter, Stdout, Write};

use arrow::record_batch::RecordBatch;
use shoal_dsl::connector::{ConfigCx, FromYaml, SinkConfig};
use shoal_dsl::{DslError, FileFormat};
use shoal_runtime::{Result, RuntimeError, Sink};

use crate::connector::{BuildCx, PlanCx, PlannedSink, SinkConnector, SinkFactory, SinkTask};
use crate::format::RecordEncoder;

/// Writes batches to stdout.
pub struct StdoutSink {
    out: BufWriter<Stdout>,
    encoder: RecordEncoder,
}

impl StdoutSink {
    /// A stdout sink in `format`.
    pub fn new(format: FileFormat) -> Self {
        Self {
            out: BufWriter::with_capacity(1 << 16, std::io::stdout()),
            encoder: RecordEncoder::new(format),
        }
    }
}

impl Sink for StdoutSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.encoder.write(&mut self.out, batch)?;
        // Keep output flowing for people watching.
        self.out.flush().map_err(|e| RuntimeError::io("stdout", e))
    }

    fn finish(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| RuntimeError::io("stdout", e))
    }
}

/// `type: stdout` sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StdoutSinkConfig {
    /// `inputs:` (non-empty).
    pub inputs: Vec<String>,
    /// `format:`; default `jsonl`.
    pub format: FileFormat,
}

/// The keys of a `type: stdout` sink, as written.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStdoutSink {
    inputs: Vec<String>,
    format: Option<String>,
}

impl FromYaml for StdoutSinkConfig {
    type Raw = RawStdoutSink;

    fn from_raw(
        s: RawStdoutSink,
        cx: &ConfigCx<'_>,
        section: &str,
        id: &str,
    ) -> std::result::Result<Self, DslError> {
        let at = [section, id, "format"];
        Ok(StdoutSinkConfig {
            inputs: s.inputs,
            format: match s.format {
                Some(f) => match cx.file_format(&at, &f)? {
                    FileFormat::Parquet => {
                        return Err(cx
                            .err(&at, "stdout cannot take Parquet")
                            .with_hint("use format: jsonl or csv, or a file sink for Parquet"));
                    }
                    f => f,
                },
                None => FileFormat::Jsonl,
            },
        })
    }
}

impl SinkConfig for StdoutSinkConfig {
    fn kind(&self) -> &'static str {
        <Self as SinkConnector>::TYPE
    }

    fn inputs(&self) -> &[String] {
        &self.inputs
    }
}

impl SinkConnector for StdoutSinkConfig {
    const TYPE: &'static str = "stdout";

    fn plan(
        &self,
        _cx: &PlanCx<'_>,
        _schema: &arrow::datatypes::SchemaRef,
    ) -> std::result::Result<PlannedSink, DslError> {
        Ok(PlannedSink {
            detail: self.format.name().to_string(),
            task: std::sync::Arc::new(self.clone()),
        })
    }
}

impl SinkTask for StdoutSinkConfig {
    fn instances(&self, _cx: &BuildCx<'_>) -> Result<SinkFactory> {
        let format = self.format.clone();
        Ok(Box::new(move |_| {
            Ok(Box::new(StdoutSink::new(format.clone())) as Box<dyn Sink>)
        }))
    }
}
