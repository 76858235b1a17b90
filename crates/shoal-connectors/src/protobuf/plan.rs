//! Plan-time checks of `proto_schema:` files, shared by the topic sources
//! and sinks: the file compiles, has the message, and the message fits the
//! columns.

use arrow::datatypes::SchemaRef;
use shoal_dsl::{DslError, ProtoSink, ProtoSource, SchemaSpec};

use crate::connector::PlanCx;

/// A source's `proto_schema` file, compiled now (its path resolved): a
/// file that does not compile, a message it lacks, or a declared column the
/// message cannot fill is a plan error at its YAML key.
pub(crate) fn check_source(
    cx: &PlanCx<'_>,
    proto: &mut Option<ProtoSource>,
    values: &SchemaSpec,
) -> Result<(), DslError> {
    let Some(ProtoSource::SchemaFile { path, message }) = proto else {
        return Ok(());
    };
    *path = cx.resolve(path);
    let m = message_of(cx, path, message)?;
    super::check_columns(&crate::schema::arrow_schema(values), m)
        .map_err(|e| cx.error(&["schema"], e, None))
}

/// A sink's `proto_schema` file, compiled now (its path resolved): every
/// input column must have a field of a type it can fill.
pub(crate) fn check_sink(
    cx: &PlanCx<'_>,
    proto: &mut Option<ProtoSink>,
    schema: &SchemaRef,
) -> Result<(), DslError> {
    let Some(p) = proto else {
        return Ok(());
    };
    p.path = cx.resolve(&p.path);
    let m = message_of(cx, &p.path, &p.message)?;
    super::encode::check_columns(schema, &m).map_err(|e| {
        cx.error(
            &["proto_schema"],
            e,
            Some(
                "select only the columns the message has (a sql transform before the sink)".into(),
            ),
        )
    })?;
    Ok(())
}

/// Compile `path` and find `message`, errors at `proto_schema.file` or
/// `proto_schema.message`.
fn message_of(
    cx: &PlanCx<'_>,
    path: &std::path::Path,
    message: &str,
) -> Result<super::MessageDescriptor, DslError> {
    let pool =
        super::compile_file(path).map_err(|e| cx.error(&["proto_schema", "file"], e, None))?;
    super::find_message(&pool, message, path)
        .map_err(|e| cx.error(&["proto_schema", "message"], e, None))
}
