//! The `score` transform end to end: scores through a pipeline match the
//! reference libraries' predictions, and a model that does not fit its
//! input is a plan error at the YAML line, naming the model file.

use shoal_tests::{read_jsonl_dir, shoal, shoal_ok, workdir};

const FEATURES: &str =
    "[amount, n_1h, sum_1h, distinct_merchants_1h, amount_avg_ratio, is_foreign]";

fn pipeline(model: &str, features: &str) -> String {
    format!(
        "name: parity
sources:
  rows:
    type: file
    path: models/parity/features.csv
    format: csv
    schema: {{ amount: float64, n_1h: float64, sum_1h: float64, distinct_merchants_1h: float64, amount_avg_ratio: float64, is_foreign: float64 }}
transforms:
  scored:
    type: score
    inputs: [rows]
    model: {model}
    features: {features}
    output: p
sinks:
  out: {{ type: file, inputs: [scored], path: out/scored }}
"
    )
}

fn expected(file: &str) -> Vec<Vec<f64>> {
    let text =
        std::fs::read_to_string(shoal_tests::repo_root().join("models/parity").join(file)).unwrap();
    text.lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect()
}

#[test]
fn pipeline_scores_match_the_reference_libraries() {
    let dir = workdir();
    for (model, reference) in [
        ("models/fraud.xgb.json", "fraud.xgb.csv"),
        ("models/fraud.lgbm.txt", "fraud.lgbm.csv"),
        ("models/kind.xgb.json", "kind.xgb.csv"),
    ] {
        std::fs::write(dir.path().join("p.yaml"), pipeline(model, FEATURES)).unwrap();
        let _ = std::fs::remove_dir_all(dir.path().join("out"));
        let _ = std::fs::remove_dir_all(dir.path().join("shoal-data"));
        shoal_ok(dir.path(), &["run", "p.yaml"]);
        let rows = read_jsonl_dir(&dir.path().join("out/scored"));
        let want = expected(reference);
        assert_eq!(rows.len(), want.len(), "{model}");
        for (i, (row, want)) in rows.iter().zip(&want).enumerate() {
            let got: Vec<f64> = if want.len() == 1 {
                vec![row["p"].as_f64().unwrap()]
            } else {
                (0..want.len())
                    .map(|k| {
                        row[format!("p_{k}")]
                            .as_f64()
                            .unwrap_or_else(|| panic!("{row}"))
                    })
                    .collect()
            };
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() <= 1e-5, "{model} row {i}: {g} vs {w}");
            }
        }
    }
}

#[test]
fn models_that_do_not_fit_are_plan_errors_at_the_yaml_line() {
    let dir = workdir();
    std::fs::write(dir.path().join("corrupt.json"), "{ \"learner\": 12 ").unwrap();
    for (model, features, line, needle) in [
        // `features` is line 13, `model` line 12.
        (
            "models/fraud.xgb.json",
            "[amount, n_1h]",
            13,
            "takes 6 features",
        ),
        (
            "models/fraud.xgb.json",
            "[amount, n_1h, sum_1h, distinct_merchants_1h, amount_avg_ratio, is_forein]",
            13,
            "is_forein",
        ),
        ("models/nope.xgb.json", FEATURES, 12, "models/nope.xgb.json"),
        ("corrupt.json", FEATURES, 12, "corrupt.json"),
    ] {
        std::fs::write(dir.path().join("bad.yaml"), pipeline(model, features)).unwrap();
        let out = shoal(dir.path(), &["validate", "bad.yaml"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{model}: {err}");
        assert!(err.contains(&format!("bad.yaml:{line}:")), "{model}: {err}");
        assert!(err.contains(needle), "{model}: {err}");
    }
}
