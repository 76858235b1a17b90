//! Parity with the reference libraries: every model in `models/` scores the
//! fixed test set `models/parity/features.csv` (with missing values and rows
//! sitting on split thresholds) as the library's own `predict` did when
//! `scripts/train_models.py` wrote `models/parity/<model>.csv`.
//!
//! Tolerance: `|ours - reference| <= 1e-5 * max(1, |reference|)`, i.e.
//! absolute 1e-5 for scores up to 1 in magnitude (all probabilities) and
//! relative 1e-5 above. No Python is needed to run these tests.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Float64Array};
use arrow::datatypes::Float64Type;
use arrow::record_batch::RecordBatch;
use shoal_score::{ModelFormat, Task, TreeModel};

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
        ModelFormat::XGBoost,
        Task::BinaryClassification,
    );
}

#[test]
fn parity_fraud_lightgbm_binary() {
    check(
        "fraud.lgbm.txt",
        ModelFormat::LightGbm,
        Task::BinaryClassification,
    );
}

#[test]
fn parity_risk_xgboost_regression() {
    check("risk.xgb.json", ModelFormat::XGBoost, Task::Regression);
}

#[test]
fn parity_risk_lightgbm_regression_zero_as_missing() {
    check("risk.lgbm.txt", ModelFormat::LightGbm, Task::Regression);
}

#[test]
fn parity_kind_xgboost_multiclass() {
    check(
        "kind.xgb.json",
        ModelFormat::XGBoost,
        Task::Multiclass { classes: 3 },
    );
}

#[test]
fn parity_kind_lightgbm_multiclass() {
    check(
        "kind.lgbm.txt",
        ModelFormat::LightGbm,
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
