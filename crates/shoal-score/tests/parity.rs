//! Parity with the reference libraries: every model in `models/` scores the
//! fixed test set `models/parity/features.csv` (with missing values and rows
//! sitting on split thresholds) as the library's own `predict` did when
//! `scripts/train_models.py` wrote `models/parity/<model>.csv`, and every
//! ONNX model as onnxruntime did when `scripts/train_onnx.py` wrote
//! `models/parity/<model>.onnx.csv` (`NaN` expected where onnxruntime
//! returned `NaN`).
//!
//! Tolerance: `|ours - reference| <= 1e-5 * max(1, |reference|)`, i.e.
//! absolute 1e-5 for scores up to 1 in magnitude (all probabilities) and
//! relative 1e-5 above. No Python is needed to run these tests.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use arrow::record_batch::RecordBatch;
use shoal_score::{Model, ModelFormat, Task, TreeModel};

const TOLERANCE: f64 = 1e-5;

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

/// A CSV of numbers with a header; `nan` is missing.
struct Table {
    header: Vec<String>,
    /// Column-major.
    columns: Vec<Vec<f64>>,
}

fn read_csv(name: &str) -> Table {
    let path = models_dir().join("parity").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .expect("header")
        .split(',')
        .map(String::from)
        .collect();
    let mut columns = vec![Vec::new(); header.len()];
    for (i, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), header.len(), "{name} line {}", i + 2);
        for (c, cell) in cells.iter().enumerate() {
            columns[c].push(cell.parse().unwrap_or_else(|_| panic!("{name}: {cell:?}")));
        }
    }
    Table { header, columns }
}

/// Worst absolute and relative error, asserting the tolerance per value.
fn compare(model: &str, output: &str, ours: &[f64], reference: &[f64]) -> (f64, f64) {
    assert_eq!(ours.len(), reference.len(), "{model} {output}: row count");
    let (mut abs, mut rel) = (0.0f64, 0.0f64);
    for (row, (a, b)) in ours.iter().zip(reference).enumerate() {
        let err = (a - b).abs();
        assert!(
            err <= TOLERANCE * b.abs().max(1.0),
            "{model} {output} row {row}: ours {a} vs reference {b} (error {err:e})"
        );
        abs = abs.max(err);
        rel = rel.max(err / b.abs().max(f64::MIN_POSITIVE));
    }
    (abs, rel)
}

fn check(file: &str, format: ModelFormat, task: Task) {
    let model = TreeModel::load(models_dir().join(file)).unwrap();
    assert_eq!(model.format(), format);
    assert_eq!(model.objective().task(), task);

    let features = read_csv("features.csv");
    assert_eq!(model.feature_names(), features.header.as_slice());
    assert_eq!(model.num_features(), features.columns.len());
    let stem = file.rsplit_once('.').unwrap().0;
    let reference = read_csv(&format!("{stem}.csv"));
    assert_eq!(model.output_names(), reference.header);
    let rows = features.columns[0].len();

    // Plain f64 columns.
    let cols: Vec<&[f64]> = features.columns.iter().map(Vec::as_slice).collect();
    let mut out = Vec::new();
    model.predict(&cols, &mut out).unwrap();
    assert_eq!(out.len(), rows * model.num_outputs());
    for (k, name) in reference.header.iter().enumerate() {
        let (abs, rel) = compare(
            file,
            name,
            &out[k * rows..(k + 1) * rows],
            &reference.columns[k],
        );
        println!("{file} {name}: {rows} rows, max abs error {abs:.2e}, max rel error {rel:.2e}");
    }

    // The Arrow path, with NaN given as nulls, in feature-name order.
    let arrays: Vec<(String, ArrayRef)> = features
        .header
        .iter()
        .zip(&features.columns)
        .map(|(name, col)| {
            let values = col.iter().map(|v| (!v.is_nan()).then_some(*v));
            (
                name.clone(),
                Arc::new(Float64Array::from_iter(values)) as ArrayRef,
            )
        })
        .collect();
    let batch = RecordBatch::try_from_iter(arrays).unwrap();
    let names: Vec<&str> = features.header.iter().map(String::as_str).collect();
    for _ in 0..2 {
        // Twice: the second call reuses the gathered matrix.
        let scores = model.predict_batch(&batch, &names).unwrap();
        assert_eq!(scores.len(), model.num_outputs());
        for (k, col) in scores.iter().enumerate() {
            let col = col.as_primitive::<Float64Type>();
            assert_eq!(
                col.values(),
                &out[k * rows..(k + 1) * rows],
                "{file} arrow path"
            );
        }
    }
}

#[test]
fn parity_fraud_xgboost_binary_logistic() {
    check(
        "fraud.xgb.json",
        ModelFormat::Xgboost,
        Task::BinaryClassification,
    );
}

#[test]
fn parity_fraud_lightgbm_binary() {
    check(
        "fraud.lgbm.txt",
        ModelFormat::Lightgbm,
        Task::BinaryClassification,
    );
}

#[test]
fn parity_risk_xgboost_regression() {
    check("risk.xgb.json", ModelFormat::Xgboost, Task::Regression);
}

#[test]
fn parity_risk_lightgbm_regression_zero_as_missing() {
    check("risk.lgbm.txt", ModelFormat::Lightgbm, Task::Regression);
}

#[test]
fn parity_kind_xgboost_multiclass() {
    check(
        "kind.xgb.json",
        ModelFormat::Xgboost,
        Task::Multiclass { classes: 3 },
    );
}

#[test]
fn parity_kind_lightgbm_multiclass() {
    check(
        "kind.lgbm.txt",
        ModelFormat::Lightgbm,
        Task::Multiclass { classes: 3 },
    );
}

#[test]
fn truncated_committed_models_are_clear_errors() {
    let dir = std::env::temp_dir().join(format!("shoal-score-parity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for file in ["fraud.xgb.json", "fraud.lgbm.txt"] {
        let bytes = std::fs::read(models_dir().join(file)).unwrap();
        // Cut inside the trees (a LightGBM file may lose its trailing
        // parameter section: prediction does not need it).
        let end = String::from_utf8_lossy(&bytes)
            .find("end of trees")
            .unwrap_or(bytes.len() - 2);
        for keep in [bytes.len() / 3, end * 2 / 3, end - 1] {
            let cut = dir.join(file);
            std::fs::write(&cut, &bytes[..keep]).unwrap();
            let err = TreeModel::load(&cut).unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with("invalid "), "{file} cut at {keep}: {msg}");
            assert!(msg.contains(file), "{msg}");
            assert_eq!(err.domain(), shoal_score::ErrorDomain::User);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The test set as an Arrow batch (NaN given as null) and its column names.
fn feature_batch(features: &Table) -> RecordBatch {
    let arrays: Vec<(String, ArrayRef)> = features
        .header
        .iter()
        .zip(&features.columns)
        .map(|(name, col)| {
            let values = col.iter().map(|v| (!v.is_nan()).then_some(*v));
            (
                name.clone(),
                Arc::new(Float64Array::from_iter(values)) as ArrayRef,
            )
        })
        .collect();
    RecordBatch::try_from_iter(arrays).unwrap()
}

/// Like [`compare`], but `NaN` must match `NaN`.
fn compare_nan(model: &str, output: &str, ours: &[f64], reference: &[f64]) -> f64 {
    assert_eq!(ours.len(), reference.len(), "{model} {output}: row count");
    let mut worst = 0.0f64;
    for (row, (a, b)) in ours.iter().zip(reference).enumerate() {
        if b.is_nan() || a.is_nan() {
            assert!(
                a.is_nan() && b.is_nan(),
                "{model} {output} row {row}: ours {a} vs reference {b}"
            );
            continue;
        }
        let err = (a - b).abs();
        assert!(
            err <= TOLERANCE * b.abs().max(1.0),
            "{model} {output} row {row}: ours {a} vs reference {b} (error {err:e})"
        );
        worst = worst.max(err);
    }
    worst
}

/// Score the test set through the format-independent [`Model`] API (format
/// inferred from the file) and compare with `reference`; check the output
/// columns against `output_fields`, including the class index column of a
/// multiclass model.
fn check_model(file: &str, reference: &str, format: ModelFormat, task: Task) {
    let model = Model::load(&models_dir().join(file), None).unwrap();
    assert_eq!(model.format(), format, "{file}");
    assert_eq!(model.task(), task, "{file}");
    let features = read_csv("features.csv");
    assert_eq!(model.num_features(), features.columns.len());
    let reference = read_csv(reference);
    let batch = feature_batch(&features);
    let names: Vec<&str> = features.header.iter().map(String::as_str).collect();
    model.check_schema(&batch.schema(), &names).unwrap();

    let fields = model.output_fields("p");
    let columns = model.score_batch(&batch, &names).unwrap();
    assert_eq!(columns.len(), fields.len(), "{file}");
    for (column, field) in columns.iter().zip(&fields) {
        assert_eq!(
            column.data_type(),
            field.data_type(),
            "{file} {}",
            field.name()
        );
        assert_eq!(column.len(), batch.num_rows());
        assert!(field.is_nullable() || column.null_count() == 0);
    }
    let probabilities = match task {
        Task::Multiclass { classes } => {
            assert_eq!(fields.len(), classes + 1);
            assert_eq!(fields[0].name(), "p");
            assert_eq!(fields[0].data_type(), &DataType::Int64);
            assert_eq!(fields[2].name(), "p_1");
            &columns[1..]
        }
        _ => {
            assert_eq!(fields.len(), 1);
            assert_eq!(fields[0].name(), "p");
            &columns[..]
        }
    };
    assert_eq!(probabilities.len(), reference.columns.len(), "{file}");
    for (k, column) in probabilities.iter().enumerate() {
        let ours = column.as_primitive::<Float64Type>().values();
        let worst = compare_nan(file, &reference.header[k], ours, &reference.columns[k]);
        println!("{file} {}: max abs error {worst:.2e}", reference.header[k]);
    }
    if let Task::Multiclass { .. } = task {
        let index = columns[0].as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            let p: Vec<f64> = probabilities
                .iter()
                .map(|c| c.as_primitive::<Float64Type>().value(row))
                .collect();
            let best = p[index.value(row) as usize];
            assert!(
                p.iter().all(|v| *v <= best),
                "{file} row {row}: class index"
            );
        }
    }
}

#[test]
fn parity_fraud_onnx_binary() {
    check_model(
        "fraud.onnx",
        "fraud.onnx.csv",
        ModelFormat::Onnx,
        Task::BinaryClassification,
    );
}

#[test]
fn parity_risk_onnx_regression_f64_input() {
    check_model(
        "risk.onnx",
        "risk.onnx.csv",
        ModelFormat::Onnx,
        Task::Regression,
    );
}

#[test]
fn parity_kind_onnx_multiclass() {
    check_model(
        "kind.onnx",
        "kind.onnx.csv",
        ModelFormat::Onnx,
        Task::Multiclass { classes: 3 },
    );
}

#[test]
fn parity_tree_models_through_the_model_api() {
    let binary = Task::BinaryClassification;
    let multi = Task::Multiclass { classes: 3 };
    check_model(
        "fraud.xgb.json",
        "fraud.xgb.csv",
        ModelFormat::Xgboost,
        binary,
    );
    check_model(
        "fraud.lgbm.txt",
        "fraud.lgbm.csv",
        ModelFormat::Lightgbm,
        binary,
    );
    check_model(
        "risk.xgb.json",
        "risk.xgb.csv",
        ModelFormat::Xgboost,
        Task::Regression,
    );
    check_model("kind.xgb.json", "kind.xgb.csv", ModelFormat::Xgboost, multi);
    check_model(
        "kind.lgbm.txt",
        "kind.lgbm.csv",
        ModelFormat::Lightgbm,
        multi,
    );
}

/// The ONNX plan has a symbolic batch dimension: any slicing of the test
/// set scores the same as the whole (to an `f32` rounding: tract's kernels
/// take SIMD or scalar paths depending on the batch length).
#[test]
fn onnx_scores_do_not_depend_on_batch_size() {
    let features = read_csv("features.csv");
    let batch = feature_batch(&features);
    let names: Vec<&str> = features.header.iter().map(String::as_str).collect();
    for file in ["fraud.onnx", "kind.onnx", "risk.onnx"] {
        let model = Model::load(&models_dir().join(file), Some(ModelFormat::Onnx)).unwrap();
        let whole = model.score_batch(&batch, &names).unwrap();
        for size in [1, 7, 64, 600] {
            let mut offset = 0;
            while offset < batch.num_rows() {
                let len = size.min(batch.num_rows() - offset);
                let part = model
                    .score_batch(&batch.slice(offset, len), &names)
                    .unwrap();
                for (w, p) in whole.iter().zip(&part) {
                    let w = w.slice(offset, len);
                    if let Some(w) = w.as_primitive_opt::<Float64Type>() {
                        let p = p.as_primitive::<Float64Type>();
                        for (a, b) in w.values().iter().zip(p.values()) {
                            assert!(
                                (a - b).abs() <= 1e-6 || (a.is_nan() && b.is_nan()),
                                "{file} batch size {size} at {offset}: {a} vs {b}"
                            );
                        }
                    }
                }
                offset += len;
            }
        }
        let empty = model.score_batch(&batch.slice(0, 0), &names).unwrap();
        assert!(empty.iter().all(|c| c.is_empty()));
    }
}
