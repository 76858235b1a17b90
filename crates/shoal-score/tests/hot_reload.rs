//! Hot reload: a changed model file is swapped in; a bad or incompatible
//! one is rejected with a logged error while the old model keeps serving.
//!
//! Its own test binary, because it installs a global `tracing` subscriber
//! that captures the watcher thread's log lines.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, AsArray, Float64Array};
use arrow::datatypes::Float64Type;
use arrow::record_batch::RecordBatch;
use shoal_score::{ModelFormat, ReloadOptions, ReloadingModel, Validator};

const FEATURES: [&str; 6] = [
    "amount",
    "n_1h",
    "sum_1h",
    "distinct_merchants_1h",
    "amount_avg_ratio",
    "is_foreign",
];

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

/// Everything logged by any thread of this test binary.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || Capture(Arc::clone(&sink)))
            .init();
        buffer
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logged() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()).into_owned()
}

/// One row of features (amount 500, foreign, three recent transactions).
fn batch() -> RecordBatch {
    let values = [500.0, 3.0, 700.0, 3.0, 8.0, 1.0];
    RecordBatch::try_from_iter(
        FEATURES
            .iter()
            .zip(values)
            .map(|(n, v)| (*n, Arc::new(Float64Array::from(vec![v])) as ArrayRef)),
    )
    .unwrap()
}

fn score(model: &ReloadingModel) -> f64 {
    let cols = model.current().score_batch(&batch(), &FEATURES).unwrap();
    cols[0].as_primitive::<Float64Type>().value(0)
}

fn fast() -> ReloadOptions {
    ReloadOptions {
        poll_interval: Duration::from_millis(20),
        validate: None,
    }
}

/// Replace `path` the way deploy tools do: write a temporary file, rename.
fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Only bounds how long a broken build hangs; never what a test checks.
const HANG_GUARD: Duration = Duration::from_secs(300);

/// Waits until `done` holds (it must, and then keep holding); the deadline
/// is a hang guard only.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < HANG_GUARD,
            "hang guard: no {what} after {HANG_GUARD:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_changed_file_is_swapped_in_and_garbage_is_rejected() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fraud.model");
    let xgb = std::fs::read(models_dir().join("fraud.xgb.json")).unwrap();
    let lgbm = std::fs::read(models_dir().join("fraud.lgbm.txt")).unwrap();
    std::fs::write(&path, &xgb).unwrap();

    let model = ReloadingModel::start(&path, None, fast()).unwrap();
    assert_eq!(model.current().format(), ModelFormat::Xgboost);
    let first = score(&model);
    let held = model.current();

    // A garbage file: rejected, logged, the old model keeps serving.
    replace(&path, b"{ this is not a model");
    wait_for("the rejection", || model.rejected() == 1);
    assert_eq!(model.reloads(), 0);
    assert!(Arc::ptr_eq(&held, &model.current()));
    assert_eq!(score(&model), first);
    let reason = model.last_error().unwrap();
    assert!(
        reason.contains("invalid XGBoost model") && reason.contains("fraud.model"),
        "{reason}"
    );
    let log = logged();
    assert!(
        log.contains("ERROR") && log.contains("model reload rejected"),
        "{log}"
    );
    assert!(log.contains("invalid XGBoost model"), "{log}");

    // A new model of the same format: swapped in.
    let mut retrained = String::from_utf8(xgb.clone()).unwrap();
    // Same trees, a different base score: every probability moves.
    let base = retrained.find("\"base_score\":\"").expect("base_score") + "\"base_score\":\"".len();
    let end = base + retrained[base..].find('"').unwrap();
    retrained.replace_range(base..end, "[9E-1]");
    replace(&path, retrained.as_bytes());
    wait_for("the reload", || model.reloads() == 1);
    let second = score(&model);
    assert_ne!(second, first);
    // The Arc taken before the swap still scores with the old model.
    let cols = held.score_batch(&batch(), &FEATURES).unwrap();
    assert_eq!(cols[0].as_primitive::<Float64Type>().value(0), first);

    // The reloads keep the first load's format: LightGBM text is rejected.
    replace(&path, &lgbm);
    wait_for("the second rejection", || model.rejected() == 2);
    assert_eq!(score(&model), second);
    drop(model);
}

#[test]
fn incompatible_models_and_the_validator_hook_keep_the_old_model() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fraud.onnx");
    let fraud = std::fs::read(models_dir().join("fraud.onnx")).unwrap();
    let kind = std::fs::read(models_dir().join("kind.onnx")).unwrap();
    let risk = std::fs::read(models_dir().join("risk.onnx")).unwrap();
    std::fs::write(&path, &fraud).unwrap();

    let validate: Validator = Arc::new(|_running, candidate| {
        if candidate.task() == shoal_score::Task::Regression {
            Err("a regressor cannot replace the fraud classifier".to_string())
        } else {
            Ok(())
        }
    });
    let options = ReloadOptions {
        validate: Some(validate),
        ..fast()
    };
    let model = ReloadingModel::start(&path, Some(ModelFormat::Onnx), options).unwrap();
    let first = score(&model);

    // Three classes instead of one probability: different output columns.
    replace(&path, &kind);
    wait_for("the rejection", || model.rejected() == 1);
    let reason = model.last_error().unwrap();
    assert!(reason.contains("outputs"), "{reason}");
    assert_eq!(score(&model), first);

    // Compatible shape, but the hook says no.
    replace(&path, &risk);
    wait_for("the hook's rejection", || model.rejected() == 2);
    assert_eq!(
        model.last_error().unwrap(),
        "a regressor cannot replace the fraud classifier"
    );
    assert!(logged().contains("a regressor cannot replace the fraud classifier"));

    // The original again: a change, so reloaded.
    replace(&path, &fraud);
    wait_for("the reload", || model.reloads() == 1);
    assert_eq!(score(&model), first);
}

#[test]
fn a_bad_first_file_is_an_error_and_drop_stops_the_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.json");
    std::fs::write(&path, b"{").unwrap();
    let e = ReloadingModel::start(&path, None, fast()).unwrap_err();
    assert!(e.to_string().contains("m.json"), "{e}");

    std::fs::copy(models_dir().join("risk.lgbm.txt"), &path).unwrap();
    // The next poll is an hour away: drop must wake the watcher, not wait
    // for it. (Dropped on another thread so a regression fails at the hang
    // guard instead of blocking for the hour.)
    let hourly = ReloadOptions {
        poll_interval: Duration::from_secs(3600),
        validate: None,
    };
    let model = ReloadingModel::start(&path, None, hourly).unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(model);
        let _ = done_tx.send(());
    });
    done_rx
        .recv_timeout(HANG_GUARD)
        .expect("drop waited for the next poll instead of waking the watcher");
}
