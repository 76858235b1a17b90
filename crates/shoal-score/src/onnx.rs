//! [`OnnxModel`]: an ONNX model run by `tract-onnx` (pure Rust, offline).
//!
//! Supported graphs take **one input**, a `float` or `double` tensor of
//! shape `[batch, n_features]` (the batch dimension may be symbolic or
//! unknown; it is made symbolic here so one optimised plan serves every batch
//! size), and produce either
//!
//! * **a regression score**: one floating-point output of shape `[batch]` or
//!   `[batch, 1]` (e.g. skl2onnx's `variable`), or
//! * **class probabilities**: a floating-point output of shape
//!   `[batch, K]`, beside a rank-1 label output (skl2onnx classifiers
//!   converted with `options={"zipmap": False}`: `label` and
//!   `probabilities`). The label output is ignored: Shoal reports the
//!   probabilities and the index of the most probable class.
//!
//! Everything else (several inputs, sequence-of-map outputs from `ZipMap`,
//! integer inputs) is rejected at load time with the reason.

use std::fmt;
use std::sync::Arc;

use tract_onnx::prelude::{
    Datum, DatumType, Framework, InferenceFact, InferenceModelExt, IntoTensor, TDim, TValue,
    Tensor, TypedModel, TypedRunnableModel, tract_ndarray, tvec,
};
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;

use crate::error::{Result, ScoreError};
use crate::format::ModelFormat;
use crate::objective::Task;
use crate::onnx_trees::OnnxTrees;

/// What the model's outputs mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outputs {
    /// Output `index` holds one score per row.
    Score { index: usize },
    /// Output `index` holds `classes` probabilities per row.
    Probabilities { index: usize, classes: usize },
}

/// An ONNX model, typed and optimised for `[batch, n_features]` input.
pub struct OnnxModel {
    plan: Arc<TypedRunnableModel>,
    /// A tree-ensemble classifier evaluated by Shoal's forest instead of
    /// tract (see [`crate::onnx_trees`]).
    trees: Option<OnnxTrees>,
    input_type: DatumType,
    num_features: usize,
    outputs: Outputs,
}

impl fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnnxModel")
            .field("input_type", &self.input_type)
            .field("num_features", &self.num_features)
            .field("outputs", &self.outputs)
            .field(
                "native_trees",
                &self.trees.as_ref().map(OnnxTrees::num_trees),
            )
            .finish_non_exhaustive()
    }
}

fn malformed(message: impl Into<String>) -> ScoreError {
    ScoreError::Malformed {
        format: ModelFormat::Onnx,
        path: None,
        message: message.into(),
    }
}

fn unsupported(what: impl Into<String>) -> ScoreError {
    ScoreError::Unsupported {
        format: ModelFormat::Onnx,
        path: None,
        what: what.into(),
    }
}

impl OnnxModel {
    /// Decode, type and optimise an ONNX model held in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let onnx = tract_onnx::onnx();
        let mut proto = onnx
            .proto_model_for_read(&mut &*bytes)
            .map_err(|e| malformed(format!("not a valid ONNX protobuf: {e:#}")))?;
        if let Some(graph) = proto.graph.as_mut() {
            pad_binary_base_values(graph);
        }
        let mut model = onnx.model_for_proto_model(&proto).map_err(|e| {
            let msg = format!("{e:#}");
            let hint = if msg.contains("ZipMap") {
                " (convert classifiers with skl2onnx `options={\"zipmap\": False}`)"
            } else {
                ""
            };
            unsupported(format!("tract-onnx cannot build the graph: {msg}{hint}"))
        })?;

        let inputs = model
            .input_outlets()
            .map_err(|e| malformed(e.to_string()))?
            .len();
        if inputs != 1 {
            return Err(unsupported(format!(
                "the graph has {inputs} inputs; Shoal feeds one [batch, n_features] tensor"
            )));
        }
        let fact = model.input_fact(0).map_err(|e| malformed(e.to_string()))?;
        let input_type = fact.datum_type.concretize().unwrap_or(DatumType::F32);
        if input_type != DatumType::F32 && input_type != DatumType::F64 {
            return Err(unsupported(format!(
                "the input is {input_type:?}; Shoal feeds float (f32) or double (f64)"
            )));
        }
        let dims: Vec<_> = fact.shape.dims().map(|d| d.concretize()).collect();
        let num_features = match dims.as_slice() {
            [_, Some(n)] => n.to_usize().ok(),
            _ => None,
        }
        .ok_or_else(|| {
            unsupported(format!(
                "the input shape is {}; Shoal feeds [batch, n_features] with a fixed n_features",
                fact.format_dt_shape()
            ))
        })?;
        let batch = model.sym("batch");
        model
            .set_input_fact(
                0,
                InferenceFact::dt_shape(input_type, [TDim::from(batch), TDim::from(num_features)]),
            )
            .map_err(|e| malformed(format!("{e:#}")))?;
        let typed = model
            .into_optimized()
            .map_err(|e| unsupported(format!("tract-onnx cannot type the graph: {e:#}")))?;
        let outputs = classify_outputs(&typed)?;
        let plan = tract_onnx::tract_core::plan::SimplePlan::new(typed)
            .map_err(|e| unsupported(format!("tract-onnx cannot plan the graph: {e:#}")))?;
        let trees = proto
            .graph
            .as_ref()
            .and_then(|g| OnnxTrees::from_graph(g, num_features))
            .filter(|t| matches!(outputs, Outputs::Probabilities { classes, .. } if classes == t.classes()));
        Ok(Self {
            plan,
            trees,
            input_type,
            num_features,
            outputs,
        })
    }

    /// Number of features the input holds per row.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// `Float32` or `Float64`, the input's element type.
    pub fn input_type(&self) -> DatumType {
        self.input_type
    }

    /// What the model predicts: a score (regression), the probability of
    /// the second of two classes, or several class probabilities.
    pub fn task(&self) -> Task {
        match self.outputs {
            Outputs::Score { .. } => Task::Regression,
            Outputs::Probabilities { classes: 2, .. } => Task::BinaryClassification,
            Outputs::Probabilities { classes, .. } => Task::Multiclass { classes },
        }
    }

    /// Score `rows` rows given column-major (feature `f` of row `r` at
    /// `matrix[f * rows + r]`, `NaN` = missing). Returns one `f64` per row
    /// for a score, or `classes` per row (row-major) for probabilities.
    pub(crate) fn run(&self, matrix: &[f64], rows: usize) -> Result<Vec<f64>> {
        let n = self.num_features;
        debug_assert_eq!(matrix.len(), n * rows);
        if let Some(trees) = &self.trees {
            return Ok(trees.run(matrix, rows));
        }
        let input = match self.input_type {
            DatumType::F64 => row_major::<f64>(matrix, rows, n, |v| v)?,
            _ => row_major::<f32>(matrix, rows, n, |v| v as f32)?,
        };
        let outputs = self
            .plan
            .run(tvec![TValue::from(input)])
            .map_err(|e| run_error(format!("{e:#}")))?;
        let index = match self.outputs {
            Outputs::Score { index } | Outputs::Probabilities { index, .. } => index,
        };
        let out = outputs
            .get(index)
            .ok_or_else(|| run_error(format!("the graph returned no output {index}")))?;
        let values = out
            .cast_to::<f64>()
            .map_err(|e| run_error(format!("{e:#}")))?;
        let slice = values
            .try_as_plain_ram()
            .and_then(|v| v.as_slice::<f64>().map(<[f64]>::to_vec))
            .map_err(|e| run_error(format!("{e:#}")))?;
        let per_row = match self.outputs {
            Outputs::Score { .. } => 1,
            Outputs::Probabilities { classes, .. } => classes,
        };
        if slice.len() != rows * per_row {
            return Err(run_error(format!(
                "output {index} has {} values for {rows} rows, expected {}",
                slice.len(),
                rows * per_row
            )));
        }
        Ok(slice)
    }
}

/// skl2onnx writes a binary tree classifier (boosted trees, all leaves on
/// class 0, `LOGISTIC`) with one `base_values` entry for its two class
/// labels, as the ONNX-ML spec allows and onnxruntime accepts; tract-onnx
/// 0.23 wants one per label. The score of class 0 is the only one used in
/// that layout, so the second entry is 0.
fn pad_binary_base_values(graph: &mut tract_onnx::pb::GraphProto) {
    for node in &mut graph.node {
        if node.op_type != "TreeEnsembleClassifier" {
            continue;
        }
        let labels = node
            .attribute
            .iter()
            .find(|a| a.name == "classlabels_int64s" || a.name == "classlabels_strings")
            .map_or(0, |a| a.ints.len().max(a.strings.len()));
        if let Some(base) = node.attribute.iter_mut().find(|a| a.name == "base_values")
            && labels == 2
            && base.floats.len() == 1
        {
            base.floats.push(0.0);
        }
    }
}

fn run_error(message: String) -> ScoreError {
    ScoreError::Inference {
        format: ModelFormat::Onnx,
        message,
    }
}

/// Transpose a column-major `f64` matrix into a row-major tensor.
fn row_major<T: Datum + Copy + Default>(
    matrix: &[f64],
    rows: usize,
    n: usize,
    convert: impl Fn(f64) -> T,
) -> Result<Tensor> {
    let mut data = vec![T::default(); rows * n];
    for (f, column) in matrix.chunks_exact(rows.max(1)).enumerate().take(n) {
        for (r, v) in column.iter().enumerate() {
            data[r * n + f] = convert(*v);
        }
    }
    let array = tract_ndarray::Array2::from_shape_vec((rows, n), data)
        .map_err(|e| run_error(e.to_string()))?;
    Ok(array.into_tensor())
}

/// Find the output to read: a score or class probabilities.
fn classify_outputs(model: &TypedModel) -> Result<Outputs> {
    let count = model
        .output_outlets()
        .map_err(|e| malformed(e.to_string()))?
        .len();
    let mut facts = Vec::with_capacity(count);
    for i in 0..count {
        let fact = model.output_fact(i).map_err(|e| malformed(e.to_string()))?;
        let dims: Vec<Option<usize>> = fact.shape.iter().map(|d| d.to_usize().ok()).collect();
        facts.push((fact.datum_type, dims));
    }
    let describe = || {
        facts
            .iter()
            .map(|(t, d)| format!("{t:?}{d:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let float = |t: &DatumType| t.is_float();
    match facts.as_slice() {
        // One score per row.
        [(t, dims)] if float(t) && (dims.len() == 1 || (dims.len() == 2 && dims[1] == Some(1))) => {
            Ok(Outputs::Score { index: 0 })
        }
        // label + probabilities (either order).
        [_, _] => {
            let probs = facts.iter().position(|(t, dims)| {
                float(t) && dims.len() == 2 && dims[1].is_some_and(|k| k >= 2)
            });
            let label = facts.iter().position(|(_, dims)| dims.len() == 1);
            match (probs, label) {
                (Some(index), Some(l)) if l != index => Ok(Outputs::Probabilities {
                    index,
                    classes: facts[index].1[1].unwrap_or(0),
                }),
                _ => Err(unsupported(format!(
                    "outputs {}: expected a label [batch] and probabilities [batch, classes]",
                    describe()
                ))),
            }
        }
        _ => Err(unsupported(format!(
            "outputs {}: expected one score [batch] / [batch, 1], or a label and \
             probabilities [batch, classes]",
            describe()
        ))),
    }
}

#[cfg(test)]
mod native_tree_tests {
    use super::*;

    fn model(name: &str) -> OnnxModel {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models")
            .join(name);
        OnnxModel::from_bytes(&std::fs::read(path).unwrap()).unwrap()
    }

    /// The native forest and tract (an independent implementation of the
    /// ONNX-ML operator) agree on random rows with missing values; the
    /// onnxruntime parity of the native path is in `tests/parity.rs`.
    #[test]
    fn native_tree_ensembles_agree_with_tract() {
        for name in ["fraud.onnx", "kind.onnx"] {
            let mut m = model(name);
            assert!(m.trees.is_some(), "{name}: not translated");
            let n = m.num_features();
            let rows = 500;
            let mut state = 0x9e37_79b9_7f4a_7c15u64;
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            // Feature values on the scale of the training data (amounts up
            // to ~1000, counts, flags), 5 % missing.
            let matrix: Vec<f64> = (0..n * rows)
                .map(|_| {
                    let r = next();
                    if r % 20 == 0 {
                        f64::NAN
                    } else {
                        (r >> 11) as f64 / (1u64 << 53) as f64 * 1000.0 - 50.0
                    }
                })
                .collect();
            let native = m.run(&matrix, rows).unwrap();
            m.trees = None;
            let tract = m.run(&matrix, rows).unwrap();
            assert_eq!(native.len(), tract.len());
            let worst = native
                .iter()
                .zip(&tract)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(worst < 1e-5, "{name}: differs from tract by {worst}");
        }
    }

    #[test]
    fn other_graphs_stay_with_tract() {
        assert!(model("risk.onnx").trees.is_none());
    }
}
