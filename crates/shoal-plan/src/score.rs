//! Planning a `score` transform: load the model once, check it against the
//! input schema, and work out the output schema.

use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema, SchemaRef};
use shoal_dsl::{DslError, PipelineSpec, ScoreTransform};
use shoal_score::{Model, ModelHandle, ReloadingModel};

use crate::build::Builder;
use crate::planner::resolve;

fn format_of(f: shoal_dsl::ModelFormat) -> shoal_score::ModelFormat {
    match f {
        shoal_dsl::ModelFormat::Onnx => shoal_score::ModelFormat::Onnx,
        shoal_dsl::ModelFormat::Xgboost => shoal_score::ModelFormat::Xgboost,
        shoal_dsl::ModelFormat::Lightgbm => shoal_score::ModelFormat::Lightgbm,
    }
}

/// Plan transform `id`: returns its output schema, the `explain` detail and
/// the builder. Every mismatch between model and input is an error at the
/// YAML line of the key at fault, naming the model file.
pub(crate) fn plan_score(
    spec: &PipelineSpec,
    id: &str,
    s: &ScoreTransform,
    input: SchemaRef,
    base_dir: &Path,
) -> Result<(SchemaRef, String, Builder), DslError> {
    let at = |key: &'static str| ["transforms", id, key];
    let path = resolve(base_dir, &s.model);
    let format = s.format.map(format_of);
    let model = Model::load(&path, format).map_err(|e| {
        spec.error_at(
            &at("model"),
            format!("cannot load model {}: {e}", path.display()),
            Some(
                "check the path (relative to the working directory) and `format:` (onnx, xgboost, lightgbm)"
                    .into(),
            ),
        )
    })?;
    for f in &s.features {
        let Ok(field) = input.field_with_name(f) else {
            let columns: Vec<&str> = input.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(spec.error_at(
                &at("features"),
                format!("feature `{f}` is not a column of the input"),
                Some(format!("columns: {}", columns.join(", "))),
            ));
        };
        let t = field.data_type();
        if !(t.is_numeric() || *t == DataType::Boolean) {
            return Err(spec.error_at(
                &at("features"),
                format!("feature `{f}` is {t}; models take numbers (cast it in a `sql` step)"),
                None,
            ));
        }
    }
    if model.num_features() != s.features.len() {
        let names = model
            .feature_names()
            .map(|n| format!(" ({})", n.join(", ")))
            .unwrap_or_default();
        return Err(spec.error_at(
            &at("features"),
            format!(
                "model {} takes {} features{names}, but `features` lists {}",
                path.display(),
                model.num_features(),
                s.features.len()
            ),
            Some("list the model's input columns, in its order".into()),
        ));
    }
    if let Some(names) = model.feature_names()
        && names.iter().zip(&s.features).any(|(a, b)| a != b)
    {
        tracing::warn!(
            transform = id,
            model = %path.display(),
            "the model was trained on features [{}] but is given [{}]; scoring by position",
            names.join(", "),
            s.features.join(", ")
        );
    }
    let outputs = model.output_fields(&s.output);
    let mut fields: Vec<_> = input.fields().iter().cloned().collect();
    for o in &outputs {
        if input.field_with_name(o.name()).is_ok() {
            return Err(spec.error_at(
                &at("output"),
                format!(
                    "the output column `{}` already exists in the input",
                    o.name()
                ),
                Some("choose another `output:` name".into()),
            ));
        }
        fields.push(Arc::new(o.clone()));
    }
    let schema = Arc::new(Schema::new(fields));
    let handle = if s.reload {
        let reloading = ReloadingModel::start(
            &path,
            Some(model.format()),
            shoal_score::ReloadOptions::default(),
        )
        .map_err(|e| {
            spec.error_at(
                &at("reload"),
                format!("cannot watch model {}: {e}", path.display()),
                None,
            )
        })?;
        ModelHandle::Reloading(Arc::new(reloading))
    } else {
        ModelHandle::Fixed(Arc::new(model))
    };
    let m = handle.current();
    let detail = format!(
        "{} model {} ({} features -> {}){}",
        m.format().name(),
        s.model.display(),
        s.features.len(),
        outputs
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>()
            .join(", "),
        if s.reload { ", hot reload" } else { "" }
    );
    Ok((
        schema.clone(),
        detail,
        Builder::Score {
            model: handle,
            features: s.features.clone(),
            schema,
        },
    ))
}
