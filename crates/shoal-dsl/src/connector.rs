//! What a connector plugs into the pipeline file: its typed config.
//!
//! The DSL knows the shared shape of `sources:` and `sinks:` entries (a map
//! with a `type:`); everything else under an entry belongs to the connector
//! of that type. A connector gives a serde shape ([`FromYaml::Raw`], with
//! `#[serde(deny_unknown_fields)]`) and a conversion to its typed config
//! ([`FromYaml::from_raw`]) that uses the [`ConfigCx`] helpers (durations,
//! schemas, event time, formats, …) so every error names the YAML line.
//! serde's own errors (an unknown key, a wrong value type) are mapped back to
//! the key or value they are about, with a did-you-mean hint.
//!
//! The connectors themselves are listed in a [`Catalog`] handed to
//! [`parse_str_with`](crate::parse_str_with); `shoal-connectors` has the
//! catalog of every built-in connector.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::error::DslError;
use crate::spec::{EventTimeSpec, SchemaSpec};

pub use crate::convert::ConfigCx;
pub use crate::raw::{RawCoerce, RawEventTime, RawProtoSchema, RawSchemaRegistry, Scalar};

/// Comparison and downcasting of configs held as trait objects.
pub trait ConfigAny: Any + fmt::Debug + Send + Sync {
    /// `self` as [`Any`], to get the connector's own type back.
    fn as_any(&self) -> &dyn Any;
    /// Whether `other` is a config of the same type and equal to this one.
    fn same_as(&self, other: &dyn Any) -> bool;
}

impl<T: Any + fmt::Debug + PartialEq + Send + Sync> ConfigAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn same_as(&self, other: &dyn Any) -> bool {
        other.downcast_ref::<T>().is_some_and(|o| o == self)
    }
}

/// A source's typed config, as the rest of the pipeline sees it.
pub trait SourceConfig: ConfigAny {
    /// The YAML `type:` value.
    fn kind(&self) -> &'static str;
    /// How many parallel readers (tasks, group members).
    fn parallelism(&self) -> usize {
        1
    }
    /// The event-time settings, if any.
    fn event_time(&self) -> Option<&EventTimeSpec> {
        None
    }
    /// The declared schema, if the source has one.
    fn schema(&self) -> Option<&SchemaSpec> {
        None
    }
}

/// A sink's typed config, as the rest of the pipeline sees it.
pub trait SinkConfig: ConfigAny {
    /// The YAML `type:` value.
    fn kind(&self) -> &'static str;
    /// The ids it reads.
    fn inputs(&self) -> &[String];
    /// Parallel writers.
    fn parallelism(&self) -> usize {
        1
    }
    /// The column its input is partitioned by across writers, if any.
    fn key(&self) -> Option<&str> {
        None
    }
}

/// A config read from its YAML map.
pub trait FromYaml: Sized {
    /// The keys as written (`#[serde(deny_unknown_fields)]`), without `type`.
    type Raw: DeserializeOwned;
    /// Defaults and checks; `id` is the entry's id under `section`
    /// (`sources` or `sinks`), for error paths such as
    /// `[section, id, "topic"]`.
    fn from_raw(
        raw: Self::Raw,
        cx: &ConfigCx<'_>,
        section: &str,
        id: &str,
    ) -> Result<Self, DslError>;
}

/// Parse one connector's map (its `type:` removed) into `T`.
pub fn parse_config<T: FromYaml>(
    cx: &ConfigCx<'_>,
    section: &str,
    id: &str,
    value: serde_yaml::Value,
) -> Result<T, DslError> {
    let raw: T::Raw = serde_path_to_error::deserialize(value).map_err(|e| {
        let at = e.path().to_string();
        let path = if at == "." {
            format!("{section}.{id}")
        } else {
            format!("{section}.{id}.{at}")
        };
        crate::shape::shape_error_in(cx.ctx, &format!("{path}: {}", e.into_inner()), None)
    })?;
    T::from_raw(raw, cx, section, id)
}

/// Parses a source's map into its config.
pub type ParseSource =
    fn(&ConfigCx<'_>, &str, serde_yaml::Value) -> Result<Arc<dyn SourceConfig>, DslError>;
/// Parses a sink's map into its config.
pub type ParseSink =
    fn(&ConfigCx<'_>, &str, serde_yaml::Value) -> Result<Arc<dyn SinkConfig>, DslError>;

/// The connectors a pipeline file may name, by `type:`.
pub trait Catalog {
    /// The parser of sources of type `kind`.
    fn source_parser(&self, kind: &str) -> Option<ParseSource>;
    /// The parser of sinks of type `kind`.
    fn sink_parser(&self, kind: &str) -> Option<ParseSink>;
    /// Every source `type:`, for hints.
    fn source_types(&self) -> Vec<&'static str>;
    /// Every sink `type:`, for hints.
    fn sink_types(&self) -> Vec<&'static str>;
}
