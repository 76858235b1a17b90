//! Every connector, by `type:`: the [`Catalog`] the pipeline file is read
//! with, and the plan step of each connector behind one interface.
//!
//! A new connector is a folder with its config type implementing
//! [`SourceConnector`] or [`SinkConnector`], and one line in [`registry`].

use std::sync::{Arc, LazyLock};

use arrow::datatypes::SchemaRef;
use shoal_dsl::connector::{
    Catalog, ConfigCx, ParseSink, ParseSource, SinkConfig, SourceConfig, parse_config,
};
use shoal_dsl::{DslError, SinkSpec, SourceSpec};

use crate::connector::{PlanCx, PlannedSink, PlannedSource, SinkConnector, SourceConnector};

type PlanSource = fn(&dyn SourceConfig, &PlanCx<'_>) -> Result<PlannedSource, DslError>;
type PlanSink = fn(&dyn SinkConfig, &PlanCx<'_>, &SchemaRef) -> Result<PlannedSink, DslError>;

struct SourceEntry {
    kind: &'static str,
    parse: ParseSource,
    plan: PlanSource,
}

struct SinkEntry {
    kind: &'static str,
    parse: ParseSink,
    plan: PlanSink,
}

/// The connectors a pipeline can use.
pub struct Registry {
    sources: Vec<SourceEntry>,
    sinks: Vec<SinkEntry>,
}

fn source<T: SourceConnector>() -> SourceEntry {
    SourceEntry {
        kind: T::TYPE,
        parse: |cx: &ConfigCx<'_>, id: &str, value| {
            Ok(Arc::new(parse_config::<T>(cx, "sources", id, value)?) as Arc<dyn SourceConfig>)
        },
        plan: |config, cx| {
            config
                .as_any()
                .downcast_ref::<T>()
                .expect("a source is planned by the connector that parsed it")
                .plan(cx)
        },
    }
}

fn sink<T: SinkConnector>() -> SinkEntry {
    SinkEntry {
        kind: T::TYPE,
        parse: |cx: &ConfigCx<'_>, id: &str, value| {
            Ok(Arc::new(parse_config::<T>(cx, "sinks", id, value)?) as Arc<dyn SinkConfig>)
        },
        plan: |config, cx, schema| {
            config
                .as_any()
                .downcast_ref::<T>()
                .expect("a sink is planned by the connector that parsed it")
                .plan(cx, schema)
        },
    }
}

/// The built-in connectors.
pub fn registry() -> &'static Registry {
    static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry {
        sources: vec![
            source::<crate::generator::GeneratorConfig>(),
            source::<crate::file::FileSourceConfig>(),
            source::<crate::log::LogSourceConfig>(),
            source::<crate::kafka::KafkaSourceConfig>(),
        ],
        sinks: vec![
            sink::<crate::stdout::StdoutSinkConfig>(),
            sink::<crate::file::FileSinkConfig>(),
            sink::<crate::log::LogSinkConfig>(),
            sink::<crate::kafka::KafkaSinkConfig>(),
            sink::<crate::postgres::PostgresSinkConfig>(),
            sink::<crate::redis::RedisSinkConfig>(),
        ],
    });
    &REGISTRY
}

impl Registry {
    /// Plan a source with the connector of its type.
    pub fn plan_source(
        &self,
        source: &SourceSpec,
        cx: &PlanCx<'_>,
    ) -> Result<PlannedSource, DslError> {
        let entry = self
            .sources
            .iter()
            .find(|e| e.kind == source.kind())
            .expect("a source's type is registered (the file was read with this registry)");
        (entry.plan)(source.config(), cx)
    }

    /// Plan a sink reading `schema` with the connector of its type.
    pub fn plan_sink(
        &self,
        sink: &SinkSpec,
        cx: &PlanCx<'_>,
        schema: &SchemaRef,
    ) -> Result<PlannedSink, DslError> {
        let entry = self
            .sinks
            .iter()
            .find(|e| e.kind == sink.kind())
            .expect("a sink's type is registered (the file was read with this registry)");
        (entry.plan)(sink.config(), cx, schema)
    }
}

impl Catalog for Registry {
    fn source_parser(&self, kind: &str) -> Option<ParseSource> {
        self.sources
            .iter()
            .find(|e| e.kind == kind)
            .map(|e| e.parse)
    }

    fn sink_parser(&self, kind: &str) -> Option<ParseSink> {
        self.sinks.iter().find(|e| e.kind == kind).map(|e| e.parse)
    }

    fn source_types(&self) -> Vec<&'static str> {
        self.sources.iter().map(|e| e.kind).collect()
    }

    fn sink_types(&self) -> Vec<&'static str> {
        self.sinks.iter().map(|e| e.kind).collect()
    }
}

/// Read a pipeline file with the built-in connectors.
pub fn load_file(path: &std::path::Path) -> Result<shoal_dsl::PipelineSpec, DslError> {
    shoal_dsl::load_file_with(path, registry())
}

/// Parse a pipeline from text with the built-in connectors (`file_name` is
/// used in messages and for the default pipeline name).
///
/// ```
/// let yaml = r#"
/// name: large-foreign
/// sources:
///   txns: { type: generator, seed: 42, count: 100000 }
/// transforms:
///   big: { type: filter, inputs: [txns], where: "amount > 1000" }
/// sinks:
///   out: { type: stdout, inputs: [big] }
/// "#;
/// let spec = shoal_connectors::registry::parse_str("large.yaml", yaml).unwrap();
/// assert_eq!(spec.name, "large-foreign");
/// assert_eq!(spec.topo_order(), ["txns", "big", "out"]);
///
/// let bad = yaml.replace("inputs: [txns]", "inputs: [txn]");
/// let err = shoal_connectors::registry::parse_str("large.yaml", &bad).unwrap_err();
/// assert_eq!(err.to_string(), r#"large.yaml:6:33: unknown input "txn""#);
/// assert_eq!(err.hint.as_deref(), Some(r#"did you mean "txns"?"#));
///
/// // A connector's own keys are checked by the connector, at their line.
/// let typo = yaml.replace("seed: 42", "sead: 42");
/// let err = shoal_connectors::registry::parse_str("large.yaml", &typo).unwrap_err();
/// assert_eq!(err.to_string(), r#"large.yaml:4:28: unknown key "sead" in source "txns""#);
/// assert_eq!(err.hint.as_deref(), Some(r#"did you mean "seed"? (valid keys: profile, seed, count, rate, batch_size, parallelism, event_time, clock)"#));
/// ```
pub fn parse_str(file_name: &str, text: &str) -> Result<shoal_dsl::PipelineSpec, DslError> {
    shoal_dsl::parse_str_with(file_name, text, registry())
}

/// Parse a pipeline from bytes with the built-in connectors.
pub fn parse_bytes(file_name: &str, bytes: &[u8]) -> Result<shoal_dsl::PipelineSpec, DslError> {
    shoal_dsl::parse_bytes_with(file_name, bytes, registry())
}
