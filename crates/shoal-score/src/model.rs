//! [`Model`]: a loaded model of any supported format, and the one way the
//! `score` operator uses it: [`Model::score_batch`] over an Arrow batch.
//!
//! # Output columns
//!
//! [`Model::output_fields`] and [`Model::score_batch`] agree on these
//! columns, given the user's output name `out` (the `output:` key):
//!
//! | model | columns |
//! |---|---|
//! | regression | `out`: `Float64`, the prediction |
//! | binary classifier | `out`: `Float64`, the probability of the positive class (class 1) |
//! | classifier with K ≥ 3 classes | `out`: `Int64`, the index (0..K-1) of the most probable class (null when every probability is NaN); then `out_0` .. `out_{K-1}`: `Float64`, each class's probability |
//!
//! The class index is the position in the model's own class list (for
//! skl2onnx: `classes_` in sorted order; for XGBoost/LightGBM: the label
//! value). The score columns are never null; a model may return `NaN`
//! (e.g. a neural network given a missing feature).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, Float64Array, Int64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

use crate::error::{Result, ScoreError};
use crate::format::ModelFormat;
use crate::gather::{check_feature_type, gather};
use crate::objective::Task;
use crate::onnx::OnnxModel;
use crate::tree_model::TreeModel;
use crate::{lightgbm, xgboost};

/// A model ready to score batches, whatever its file format.
///
/// Load it once ([`Model::load`]), check it against the input schema at plan
/// time ([`Model::check_schema`]), share it (`Arc<Model>`; it is
/// `Send + Sync`) and call [`Model::score_batch`] per batch. For a model
/// that follows changes of its file, see [`crate::ReloadingModel`].
#[derive(Debug)]
pub struct Model {
    engine: Engine,
    path: Option<PathBuf>,
    /// Column-major feature matrices for ONNX batches, reused across calls.
    scratch: Mutex<Vec<Vec<f64>>>,
}

#[derive(Debug)]
enum Engine {
    Tree(Box<TreeModel>),
    Onnx(OnnxModel),
}

impl Model {
    /// Load a model file. `format` is the user's `format:`; `None` tells it
    /// from the file (see [`ModelFormat::detect`]) and fails with
    /// [`ScoreError::FormatNotInferred`] when the content and the extension
    /// are not conclusive. Every error names `path`.
    pub fn load(path: &Path, format: Option<ModelFormat>) -> Result<Model> {
        let bytes = std::fs::read(path).map_err(|source| ScoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let format = match format {
            Some(f) => f,
            None => ModelFormat::detect(&bytes, extension.as_deref()).ok_or_else(|| {
                ScoreError::FormatNotInferred {
                    path: path.to_path_buf(),
                    reason: if bytes.is_empty() {
                        "the file is empty".to_string()
                    } else {
                        "neither its content nor its extension is one of .onnx, XGBoost .json, \
                         LightGBM .txt"
                            .to_string()
                    },
                }
            })?,
        };
        let mut model = Model::from_bytes(&bytes, format).map_err(|e| e.with_path(path))?;
        model.path = Some(path.to_path_buf());
        Ok(model)
    }

    /// Parse a model of the given format held in memory.
    pub fn from_bytes(bytes: &[u8], format: ModelFormat) -> Result<Model> {
        let text = || {
            std::str::from_utf8(bytes).map_err(|e| ScoreError::Malformed {
                format,
                path: None,
                message: format!("the file is not UTF-8 text ({e}); is it the right format?"),
            })
        };
        let engine = match format {
            ModelFormat::Onnx => Engine::Onnx(OnnxModel::from_bytes(bytes)?),
            ModelFormat::Xgboost => Engine::Tree(Box::new(xgboost::parse(text()?)?)),
            ModelFormat::Lightgbm => Engine::Tree(Box::new(lightgbm::parse(text()?)?)),
        };
        Ok(Model {
            engine,
            path: None,
            scratch: Mutex::new(Vec::new()),
        })
    }

    /// Wrap an already loaded tree model.
    pub fn from_tree(tree: TreeModel) -> Model {
        Model {
            engine: Engine::Tree(Box::new(tree)),
            path: None,
            scratch: Mutex::new(Vec::new()),
        }
    }

    /// The file the model was loaded from, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The model's format.
    pub fn format(&self) -> ModelFormat {
        match &self.engine {
            Engine::Tree(t) => t.format(),
            Engine::Onnx(_) => ModelFormat::Onnx,
        }
    }

    /// Number of feature columns the model reads (the length of the
    /// `features:` list).
    pub fn num_features(&self) -> usize {
        match &self.engine {
            Engine::Tree(t) => t.num_features(),
            Engine::Onnx(o) => o.num_features(),
        }
    }

    /// The feature names stored in the model file, in model order, when it
    /// stores them (XGBoost and LightGBM models trained with names; ONNX
    /// graphs take one unnamed matrix, so never).
    pub fn feature_names(&self) -> Option<&[String]> {
        match &self.engine {
            Engine::Tree(t) if !t.feature_names().is_empty() => Some(t.feature_names()),
            _ => None,
        }
    }

    /// What the model predicts.
    pub fn task(&self) -> Task {
        match &self.engine {
            Engine::Tree(t) => t.objective().task(),
            Engine::Onnx(o) => o.task(),
        }
    }

    /// The columns [`score_batch`](Self::score_batch) returns, named after
    /// `output` (see the module docs for the exact layout).
    pub fn output_fields(&self, output: &str) -> Vec<Field> {
        match self.task() {
            Task::Regression | Task::BinaryClassification => {
                vec![Field::new(output, DataType::Float64, false)]
            }
            Task::Multiclass { classes } => {
                let mut fields = Vec::with_capacity(classes + 1);
                fields.push(Field::new(output, DataType::Int64, true));
                fields.extend(
                    (0..classes)
                        .map(|k| Field::new(format!("{output}_{k}"), DataType::Float64, false)),
                );
                fields
            }
        }
    }

    /// Plan-time check of the input: `feature_columns` has one name per
    /// model feature, and each is a numeric or boolean column of `schema`.
    pub fn check_schema(&self, schema: &Schema, feature_columns: &[&str]) -> Result<()> {
        self.check_count(feature_columns.len())?;
        for name in feature_columns {
            let field = schema
                .field_with_name(name)
                .map_err(|_| ScoreError::ColumnNotFound {
                    name: (*name).to_string(),
                    available: schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            check_feature_type(name, field.data_type())?;
        }
        Ok(())
    }

    /// Whether `other` can replace this model under the same pipeline: the
    /// same number of features and the same output columns. `Err` says what
    /// differs.
    pub fn check_compatible(&self, other: &Model) -> std::result::Result<(), String> {
        if self.num_features() != other.num_features() {
            return Err(format!(
                "the new model uses {} features, the running one {}",
                other.num_features(),
                self.num_features()
            ));
        }
        let (mine, theirs) = (self.output_fields("out"), other.output_fields("out"));
        if mine != theirs {
            let names = |f: &[Field]| {
                f.iter()
                    .map(|f| format!("{}: {}", f.name(), f.data_type()))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(format!(
                "the new model's outputs ({}) differ from the running one's ({})",
                names(&theirs),
                names(&mine)
            ));
        }
        Ok(())
    }

    fn check_count(&self, got: usize) -> Result<()> {
        if got != self.num_features() {
            return Err(ScoreError::FeatureCount {
                expected: self.num_features(),
                got,
            });
        }
        Ok(())
    }

    /// Score a whole batch: gather `feature_columns` (in model order) into
    /// one contiguous matrix, run the model once, and return the columns
    /// described by [`output_fields`](Self::output_fields), each
    /// `batch.num_rows()` long.
    pub fn score_batch(
        &self,
        batch: &RecordBatch,
        feature_columns: &[&str],
    ) -> Result<Vec<ArrayRef>> {
        self.check_count(feature_columns.len())?;
        let rows = batch.num_rows();
        let (values, classes) = match &self.engine {
            Engine::Tree(tree) => {
                let columns = tree.predict_batch(batch, feature_columns)?;
                if columns.len() == 1 {
                    return Ok(columns);
                }
                return Ok(with_class_index(columns, rows));
            }
            Engine::Onnx(onnx) => {
                let mut matrix = self.take_scratch();
                let result = gather(batch, feature_columns, &mut matrix).and_then(|()| {
                    if rows == 0 {
                        Ok(Vec::new())
                    } else {
                        onnx.run(&matrix, rows)
                    }
                });
                self.put_scratch(matrix);
                (result?, onnx.task())
            }
        };
        match classes {
            Task::Regression => Ok(vec![Arc::new(Float64Array::from(values)) as ArrayRef]),
            Task::BinaryClassification => {
                // Row-major [p0, p1] pairs: the positive class is 1.
                let p1: Float64Array = values
                    .chunks_exact(2)
                    .map(|p| p[1])
                    .collect::<Vec<_>>()
                    .into();
                Ok(vec![Arc::new(p1) as ArrayRef])
            }
            Task::Multiclass { classes } => {
                let columns: Vec<ArrayRef> = (0..classes)
                    .map(|k| {
                        let col: Vec<f64> = values.chunks_exact(classes).map(|p| p[k]).collect();
                        Arc::new(Float64Array::from(col)) as ArrayRef
                    })
                    .collect();
                Ok(with_class_index(columns, rows))
            }
        }
    }

    fn take_scratch(&self) -> Vec<f64> {
        let mut pool = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        pool.pop().unwrap_or_default()
    }

    fn put_scratch(&self, matrix: Vec<f64>) {
        let mut pool = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        pool.push(matrix);
    }
}

/// Prepend the index of the most probable class to per-class probability
/// columns (null when every probability of the row is NaN; ties go to the
/// lowest index).
fn with_class_index(probabilities: Vec<ArrayRef>, rows: usize) -> Vec<ArrayRef> {
    let columns: Vec<&Float64Array> = probabilities
        .iter()
        .map(|c| {
            c.as_any()
                .downcast_ref::<Float64Array>()
                .expect("Float64 scores")
        })
        .collect();
    let mut best = vec![f64::NEG_INFINITY; rows];
    let mut index: Vec<Option<i64>> = vec![None; rows];
    for (k, column) in columns.iter().enumerate() {
        for (r, p) in column.values().iter().enumerate() {
            if *p > best[r] || (index[r].is_none() && !p.is_nan()) {
                best[r] = *p;
                index[r] = Some(k as i64);
            }
        }
    }
    let mut out = Vec::with_capacity(probabilities.len() + 1);
    out.push(Arc::new(Int64Array::from(index)) as ArrayRef);
    out.extend(probabilities);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Float64Array, StringArray};
    use arrow::datatypes::Int64Type;

    use crate::error::ErrorDomain;

    fn models_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
    }

    /// A batch of `rows` rows with the six fraud features (all 1.0) plus a
    /// string column `s`.
    fn fraud_batch(rows: usize) -> RecordBatch {
        let names = [
            "amount",
            "n_1h",
            "sum_1h",
            "distinct_merchants_1h",
            "amount_avg_ratio",
            "is_foreign",
        ];
        let mut columns: Vec<(&str, ArrayRef)> = names
            .iter()
            .map(|n| {
                (
                    *n,
                    Arc::new(Float64Array::from(vec![1.0; rows])) as ArrayRef,
                )
            })
            .collect();
        columns.push(("s", Arc::new(StringArray::from(vec!["x"; rows]))));
        RecordBatch::try_from_iter(columns).unwrap()
    }

    const FEATURES: [&str; 6] = [
        "amount",
        "n_1h",
        "sum_1h",
        "distinct_merchants_1h",
        "amount_avg_ratio",
        "is_foreign",
    ];

    #[test]
    fn load_infers_every_committed_format() {
        for (file, format) in [
            ("fraud.onnx", ModelFormat::Onnx),
            ("fraud.xgb.json", ModelFormat::Xgboost),
            ("fraud.lgbm.txt", ModelFormat::Lightgbm),
        ] {
            let path = models_dir().join(file);
            let m = Model::load(&path, None).unwrap();
            assert_eq!(m.format(), format, "{file}");
            assert_eq!(m.path(), Some(path.as_path()));
            assert_eq!(m.num_features(), 6);
            assert_eq!(m.task(), Task::BinaryClassification);
            assert_eq!(
                m.output_fields("fraud_p"),
                [Field::new("fraud_p", DataType::Float64, false)]
            );
            let scores = m.score_batch(&fraud_batch(3), &FEATURES).unwrap();
            assert_eq!(scores.len(), 1);
            let p = scores[0].as_primitive::<arrow::datatypes::Float64Type>();
            assert!(
                p.values().iter().all(|v| (0.0..=1.0).contains(v)),
                "{file}: {p:?}"
            );
        }
        let names = Model::load(&models_dir().join("fraud.xgb.json"), None).unwrap();
        assert_eq!(names.feature_names().unwrap(), FEATURES);
        let onnx = Model::load(&models_dir().join("fraud.onnx"), None).unwrap();
        assert_eq!(onnx.feature_names(), None);
    }

    #[test]
    fn multiclass_fields_are_index_then_probabilities() {
        let m = Model::load(&models_dir().join("kind.onnx"), Some(ModelFormat::Onnx)).unwrap();
        let names: Vec<String> = m
            .output_fields("kind")
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["kind", "kind_0", "kind_1", "kind_2"]);
        let cols = m.score_batch(&fraud_batch(2), &FEATURES).unwrap();
        assert_eq!(cols.len(), 4);
        let index = cols[0].as_primitive::<Int64Type>();
        assert!(index.values().iter().all(|k| (0..3).contains(k)));
    }

    #[test]
    fn class_index_ignores_nan_and_is_null_when_all_are_nan() {
        let p0: ArrayRef = Arc::new(Float64Array::from(vec![f64::NAN, 0.2, f64::NAN, 0.5]));
        let p1: ArrayRef = Arc::new(Float64Array::from(vec![0.3, 0.8, f64::NAN, 0.5]));
        let out = with_class_index(vec![p0, p1], 4);
        let index = out[0].as_primitive::<Int64Type>();
        assert_eq!(
            index.iter().collect::<Vec<_>>(),
            [Some(1), Some(1), None, Some(0)]
        );
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        // Unknown format: neither content nor extension tells.
        let p = write("model.bin", b"\x00\x01\x02garbage");
        let e = Model::load(&p, None).unwrap_err();
        assert!(matches!(e, ScoreError::FormatNotInferred { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("model.bin") && msg.contains("format: onnx | xgboost | lightgbm"),
            "{msg}"
        );
        assert_eq!(e.domain(), ErrorDomain::User);
        let e = Model::load(&write("empty", b""), None).unwrap_err();
        assert!(e.to_string().contains("the file is empty"), "{e}");

        // Corrupt ONNX: truncated, and garbage with an .onnx extension.
        let onnx = std::fs::read(models_dir().join("fraud.onnx")).unwrap();
        let p = write("cut.onnx", &onnx[..onnx.len() / 2]);
        let e = Model::load(&p, None).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("invalid ONNX model ") && msg.contains("cut.onnx"),
            "{msg}"
        );
        assert_eq!(e.domain(), ErrorDomain::User);
        let e =
            Model::load(&write("junk.onnx", b"\x12\xff\xff\xff\xff\x0fjunk"), None).unwrap_err();
        assert!(e.to_string().contains("junk.onnx"), "{e}");

        // A format that does not match the file.
        let p = write("fraud.model", &onnx);
        let e = Model::load(&p, Some(ModelFormat::Xgboost)).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("invalid XGBoost model ") && msg.contains("not UTF-8"),
            "{msg}"
        );
        let xgb = std::fs::read(models_dir().join("fraud.xgb.json")).unwrap();
        let e = Model::load(&write("x.json", &xgb), Some(ModelFormat::Lightgbm)).unwrap_err();
        assert!(e.to_string().starts_with("invalid LightGBM model "), "{e}");

        // A missing file.
        let e = Model::load(&dir.path().join("nope.onnx"), None).unwrap_err();
        assert!(
            e.is_retryable() && e.to_string().contains("nope.onnx"),
            "{e}"
        );
    }

    #[test]
    fn wrong_features_are_errors_at_plan_time_and_at_run_time() {
        for file in ["fraud.onnx", "fraud.lgbm.txt"] {
            let m = Model::load(&models_dir().join(file), None).unwrap();
            let batch = fraud_batch(2);
            let schema = batch.schema();
            let e = m.check_schema(&schema, &FEATURES[..5]).unwrap_err();
            assert_eq!(e.to_string(), "the model uses 6 features but 5 were given");
            let e = m.score_batch(&batch, &FEATURES[..5]).unwrap_err();
            assert!(
                matches!(
                    e,
                    ScoreError::FeatureCount {
                        expected: 6,
                        got: 5
                    }
                ),
                "{e}"
            );

            let mut wrong = FEATURES;
            wrong[2] = "sum_1d";
            let e = m.check_schema(&schema, &wrong).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("feature column \"sum_1d\" is not in the batch"),
                "{e}"
            );
            assert!(m.score_batch(&batch, &wrong).is_err());
            wrong[2] = "s";
            let e = m.check_schema(&schema, &wrong).unwrap_err();
            assert_eq!(
                e.to_string(),
                "feature column \"s\" has type Utf8, which is not numeric"
            );
            assert!(matches!(
                m.score_batch(&batch, &wrong),
                Err(ScoreError::ColumnType { .. })
            ));
            m.check_schema(&schema, &FEATURES).unwrap();
        }
    }

    #[test]
    fn compatibility_compares_features_and_outputs() {
        let load = |f: &str| Model::load(&models_dir().join(f), None).unwrap();
        let (onnx, xgb, kind, risk) = (
            load("fraud.onnx"),
            load("fraud.xgb.json"),
            load("kind.onnx"),
            load("risk.onnx"),
        );
        assert_eq!(onnx.check_compatible(&xgb), Ok(()));
        assert_eq!(onnx.check_compatible(&risk), Ok(()));
        let e = onnx.check_compatible(&kind).unwrap_err();
        assert!(e.contains("outputs") && e.contains("out_2"), "{e}");
        let one_feature = TreeModel::parse(
            "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\nmax_feature_idx=0\n\
             objective=regression\nfeature_names=amount\n\nTree=0\nnum_leaves=2\n\
             split_feature=0\nthreshold=100\ndecision_type=10\nleft_child=-1\n\
             right_child=-2\nleaf_value=0.1 0.9\n\nend of trees\n",
        )
        .unwrap();
        let e = onnx
            .check_compatible(&Model::from_tree(one_feature))
            .unwrap_err();
        assert_eq!(e, "the new model uses 1 features, the running one 6");
    }
}
