//! [`TreeModel`]: a loaded tree ensemble (XGBoost or LightGBM) and the two
//! ways to score with it: [`TreeModel::predict`] over `f64` columns and
//! [`TreeModel::predict_batch`] over an Arrow [`RecordBatch`].

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, Float64Array};
use arrow::buffer::{Buffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field};
use arrow::record_batch::RecordBatch;

use crate::error::{Result, ScoreError};
use crate::forest::Forest;
use crate::format::ModelFormat;
use crate::gather::gather;
use crate::objective::{Objective, Task};
use crate::{lightgbm, xgboost};

/// A tree-ensemble model, ready to score whole batches.
///
/// Load it once ([`load`](Self::load)), share it (`Arc<TreeModel>`; it is
/// `Send + Sync`) and call [`predict_batch`](Self::predict_batch) per batch.
/// Scores match the reference library's own `predict` (probabilities for
/// classifiers, see [`Objective`]).
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::{ArrayRef, AsArray, Float64Array};
/// use arrow::datatypes::Float64Type;
/// use arrow::record_batch::RecordBatch;
/// use shoal_score::TreeModel;
///
/// // A one-split LightGBM regression model: amount <= 100 ? 0.1 : 0.9.
/// let text = "tree\nversion=v4\nnum_class=1\nnum_tree_per_iteration=1\n\
///     max_feature_idx=0\nobjective=regression\nfeature_names=amount\n\n\
///     Tree=0\nnum_leaves=2\nsplit_feature=0\nthreshold=100\ndecision_type=10\n\
///     left_child=-1\nright_child=-2\nleaf_value=0.1 0.9\n\nend of trees\n";
/// let model = TreeModel::parse(text)?;
/// assert_eq!((model.num_features(), model.num_outputs()), (1, 1));
///
/// let amount: ArrayRef = Arc::new(Float64Array::from(vec![Some(5.0), Some(500.0), None]));
/// let batch = RecordBatch::try_from_iter([("amount", amount)])?;
/// let scores = model.predict_batch(&batch, &["amount"])?;
/// let score = scores[0].as_primitive::<Float64Type>();
/// assert_eq!(score.values().to_vec(), vec![0.1, 0.9, 0.1]); // null goes left
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TreeModel {
    format: ModelFormat,
    forest: Forest,
    objective: Objective,
    feature_names: Vec<String>,
    /// Random-forest LightGBM models average their iterations.
    average_over: Option<f64>,
    /// Feature matrices for `predict_batch`, reused across calls: each
    /// concurrent caller takes one and puts it back.
    scratch: Mutex<Vec<Vec<f64>>>,
}

impl fmt::Debug for TreeModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TreeModel")
            .field("format", &self.format)
            .field("objective", &self.objective)
            .field("num_features", &self.num_features())
            .field("num_trees", &self.forest.num_trees())
            .field("num_nodes", &self.forest.num_nodes())
            .finish_non_exhaustive()
    }
}

impl TreeModel {
    pub(crate) fn from_parts(
        format: ModelFormat,
        forest: Forest,
        objective: Objective,
        feature_names: Vec<String>,
        average_over: Option<f64>,
    ) -> Self {
        // Names are only useful if there is one per feature.
        let feature_names = if feature_names.len() == forest.num_features() {
            feature_names
        } else {
            Vec::new()
        };
        Self {
            format,
            forest,
            objective,
            feature_names,
            average_over,
            scratch: Mutex::new(Vec::new()),
        }
    }

    /// Load a model file, telling the format from its content: XGBoost JSON
    /// starts with `{`, LightGBM text with a `tree` line. When neither
    /// matches, a `.json` extension means XGBoost and `.txt` LightGBM (so
    /// the error describes what is wrong in that format).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| ScoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        Self::from_bytes(&bytes, extension.as_deref()).map_err(|e| e.with_path(path))
    }

    /// Parse a model held in memory, telling the format from its content.
    pub fn parse(text: &str) -> Result<Self> {
        Self::from_bytes(text.as_bytes(), None)
    }

    /// Parse an XGBoost JSON model held in memory.
    pub fn from_xgboost_json(text: &str) -> Result<Self> {
        xgboost::parse(text)
    }

    /// Parse a LightGBM text model held in memory.
    pub fn from_lightgbm_text(text: &str) -> Result<Self> {
        lightgbm::parse(text)
    }

    fn from_bytes(bytes: &[u8], extension: Option<&str>) -> Result<Self> {
        let unknown = |reason: String| ScoreError::UnknownFormat { path: None, reason };
        let text = std::str::from_utf8(bytes).map_err(|_| {
            unknown(
                "the file is binary, not text (XGBoost UBJSON and binary models are \
                 not supported: save the model as .json)"
                    .into(),
            )
        })?;
        let start = text.trim_start();
        if start.starts_with('{') {
            return xgboost::parse(text);
        }
        if start.lines().next().map(str::trim) == Some("tree") {
            return lightgbm::parse(text);
        }
        match extension {
            Some("json") => xgboost::parse(text),
            Some("txt") => lightgbm::parse(text),
            _ if start.is_empty() => Err(unknown("the file is empty".into())),
            _ => {
                let first: String = start
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(40)
                    .collect();
                Err(unknown(format!(
                    "expected XGBoost JSON (`{{...`) or LightGBM text (`tree`), found {first:?}"
                )))
            }
        }
    }

    /// The format the model was read from.
    pub fn format(&self) -> ModelFormat {
        self.format
    }

    /// Number of features (columns) the model reads.
    pub fn num_features(&self) -> usize {
        self.forest.num_features()
    }

    /// Number of scores per row: 1, or the class count of a multiclass model.
    pub fn num_outputs(&self) -> usize {
        self.forest.num_outputs()
    }

    /// Number of trees.
    pub fn num_trees(&self) -> usize {
        self.forest.num_trees()
    }

    /// The objective the model was trained with.
    pub fn objective(&self) -> &Objective {
        &self.objective
    }

    /// The feature names stored in the model, in feature order; empty when
    /// the model has none.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// The flattened trees.
    pub fn forest(&self) -> &Forest {
        &self.forest
    }

    /// Names of the columns [`predict_batch`](Self::predict_batch) returns:
    /// `score`, or `score_0 .. score_{K-1}` (one probability per class) for a
    /// multiclass model.
    pub fn output_names(&self) -> Vec<String> {
        match self.objective.task() {
            Task::Multiclass { classes } => (0..classes).map(|k| format!("score_{k}")).collect(),
            Task::Regression | Task::BinaryClassification => vec!["score".to_string()],
        }
    }

    /// The fields of the columns [`predict_batch`](Self::predict_batch)
    /// returns (non-nullable `Float64`), for building an output schema.
    pub fn output_fields(&self) -> Vec<Field> {
        self.output_names()
            .into_iter()
            .map(|name| Field::new(name, DataType::Float64, false))
            .collect()
    }

    /// Score `rows` rows given as one slice per feature (column-major, all
    /// the same length). `out` is cleared and filled output-major with
    /// `num_outputs() * rows` scores: output `k` of row `r` is
    /// `out[k * rows + r]`. `NaN` means missing.
    pub fn predict(&self, features: &[&[f64]], out: &mut Vec<f64>) -> Result<()> {
        if features.len() != self.num_features() {
            return Err(ScoreError::FeatureCount {
                expected: self.num_features(),
                got: features.len(),
            });
        }
        let rows = features.first().map_or(0, |f| f.len());
        if let Some((feature, f)) = features.iter().enumerate().find(|(_, f)| f.len() != rows) {
            return Err(ScoreError::RowCount {
                feature,
                expected: rows,
                got: f.len(),
            });
        }
        out.clear();
        out.resize(rows * self.num_outputs(), 0.0);
        self.forest.predict_margin(features, rows, out);
        self.finish(out, rows);
        Ok(())
    }

    /// Score a batch: read `feature_columns` (in the model's feature order)
    /// from `batch`, converting integers, floats and booleans to `f64` and
    /// nulls to missing, and return one `Float64` column per output (see
    /// [`output_names`](Self::output_names)), each `batch.num_rows()` long.
    ///
    /// The gathered feature matrix is reused across calls; the only
    /// allocation per call is the returned scores (one buffer shared by all
    /// output columns).
    pub fn predict_batch(
        &self,
        batch: &RecordBatch,
        feature_columns: &[&str],
    ) -> Result<Vec<ArrayRef>> {
        if feature_columns.len() != self.num_features() {
            return Err(ScoreError::FeatureCount {
                expected: self.num_features(),
                got: feature_columns.len(),
            });
        }
        let rows = batch.num_rows();
        let outputs = self.num_outputs();
        let mut matrix = self.take_scratch();
        let gathered = gather(batch, feature_columns, &mut matrix);
        let mut scores = vec![0.0; rows * outputs];
        if gathered.is_ok() {
            self.forest
                .predict_margin_matrix(&matrix, rows, &mut scores);
        }
        self.put_scratch(matrix);
        gathered?;
        self.finish(&mut scores, rows);
        let buffer = Buffer::from_vec(scores);
        Ok((0..outputs)
            .map(|k| {
                let values = ScalarBuffer::<f64>::new(buffer.clone(), k * rows, rows);
                Arc::new(Float64Array::new(values, None)) as ArrayRef
            })
            .collect())
    }

    /// Margins to scores: averaging (random forests) then the link.
    fn finish(&self, values: &mut [f64], rows: usize) {
        if let Some(n) = self.average_over {
            for v in values.iter_mut() {
                *v /= n;
            }
        }
        self.objective.apply(values, rows);
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int32Array, StringArray};
    use arrow::datatypes::Float64Type;

    /// Two features; class k's tree adds k+1 when f0 < 0.5 (XGBoost, 3 classes).
    fn multiclass_json() -> String {
        let tree = |k: usize| {
            format!(
                r#"{{"split_indices": [0, 0, 0], "split_conditions": [0.5, {}, 0.0],
                    "left_children": [1, -1, -1], "right_children": [2, -1, -1],
                    "default_left": [0, 0, 0], "split_type": [0, 0, 0],
                    "base_weights": [0, 0, 0],
                    "tree_param": {{"num_nodes": "3", "size_leaf_vector": "1"}}}}"#,
                k + 1
            )
        };
        format!(
            r#"{{"learner": {{
              "learner_model_param": {{"base_score": "[0,0,0]", "num_class": "3",
                                      "num_feature": "2", "num_target": "1"}},
              "objective": {{"name": "multi:softprob"}},
              "gradient_booster": {{"name": "gbtree", "model": {{
                "tree_info": [0, 1, 2], "trees": [{}, {}, {}]}}}}}}}}"#,
            tree(0),
            tree(1),
            tree(2)
        )
    }

    #[test]
    fn multiclass_batch_has_one_column_per_class() {
        let m = TreeModel::parse(&multiclass_json()).unwrap();
        assert_eq!(m.format(), ModelFormat::Xgboost);
        assert_eq!(m.num_outputs(), 3);
        assert_eq!(m.output_names(), ["score_0", "score_1", "score_2"]);
        let f0: ArrayRef = Arc::new(Int32Array::from(vec![0, 1]));
        let batch = RecordBatch::try_from_iter([("x", f0.clone()), ("y", f0)]).unwrap();
        let cols = m.predict_batch(&batch, &["x", "y"]).unwrap();
        assert_eq!(cols.len(), 3);
        // Row 0 (x = 0 < 0.5): margins (1, 2, 3). Row 1: all zero.
        let e = std::f64::consts::E;
        let sum = e + e * e + e * e * e;
        for (k, c) in cols.iter().enumerate() {
            let c = c.as_primitive::<Float64Type>();
            assert!((c.value(0) - e.powi(k as i32 + 1) / sum).abs() < 1e-12);
            assert!((c.value(1) - 1.0 / 3.0).abs() < 1e-12);
        }
    }

    #[test]
    fn wrong_feature_count_and_columns_are_errors() {
        let m = TreeModel::parse(&multiclass_json()).unwrap();
        let f0: ArrayRef = Arc::new(Int32Array::from(vec![0, 1]));
        let s: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
        let batch = RecordBatch::try_from_iter([("x", f0), ("s", s)]).unwrap();
        let e = m.predict_batch(&batch, &["x"]).unwrap_err();
        assert_eq!(e.to_string(), "the model uses 2 features but 1 were given");
        let e = m.predict_batch(&batch, &["x", "x", "x"]).unwrap_err();
        assert!(matches!(e, ScoreError::FeatureCount { got: 3, .. }));
        let e = m.predict_batch(&batch, &["x", "s"]).unwrap_err();
        assert!(matches!(e, ScoreError::ColumnType { .. }), "{e}");
        // The pool still works after an error.
        let ok = m.predict_batch(&batch, &["x", "x"]).unwrap();
        assert_eq!(ok[0].len(), 2);

        let mut out = Vec::new();
        let e = m.predict(&[&[1.0]], &mut out).unwrap_err();
        assert!(matches!(
            e,
            ScoreError::FeatureCount {
                expected: 2,
                got: 1
            }
        ));
        let e = m.predict(&[&[1.0], &[1.0, 2.0]], &mut out).unwrap_err();
        assert_eq!(e.to_string(), "feature 1 has 2 rows but feature 0 has 1");
    }

    #[test]
    fn empty_batch() {
        let m = TreeModel::parse(&multiclass_json()).unwrap();
        let f0: ArrayRef = Arc::new(Int32Array::from(Vec::<i32>::new()));
        let batch = RecordBatch::try_from_iter([("x", f0.clone()), ("y", f0)]).unwrap();
        let cols = m.predict_batch(&batch, &["x", "y"]).unwrap();
        assert!(cols.iter().all(|c| c.is_empty()));
    }

    #[test]
    fn load_tells_formats_apart_and_reports_bad_files() {
        let dir = std::env::temp_dir().join(format!("shoal-score-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let p = dir.join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        let json = multiclass_json();
        let m = TreeModel::load(write("m.model", json.as_bytes())).unwrap();
        assert_eq!(m.format(), ModelFormat::Xgboost);

        let p = write("cut.json", &json.as_bytes()[..json.len() - 30]);
        let e = TreeModel::load(&p).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("invalid XGBoost model "), "{msg}");
        assert!(msg.contains("cut.json") && msg.contains("EOF"), "{msg}");

        let e = TreeModel::load(write("x.ubj", b"{L\x00\x00\x00\x07learner\xff")).unwrap_err();
        assert!(e.to_string().contains("binary"), "{e}");
        let e = TreeModel::load(write("empty.bin", b"")).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let e = TreeModel::load(write("junk.txt", b"hello\n")).unwrap_err();
        assert!(e.to_string().contains("LightGBM"), "{e}");
        let e = TreeModel::load(dir.join("missing.json")).unwrap_err();
        assert!(e.is_retryable(), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
