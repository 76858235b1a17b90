//! Scoring throughput per format on one core: the committed fraud models
//! (`models/fraud.xgb.json`, `fraud.lgbm.txt`, `fraud.onnx`) at batch sizes
//! 1, 64, 1024 and 8192.
//!
//! ```sh
//! cargo run --release -p shoal-score-bench -- [SECONDS [MODEL...]]
//! ```
//!
//! The data is `models/parity/features.csv` (600 rows, about 5 % missing
//! values) repeated to 65 536 rows; `scripts/bench_reference.py` times the
//! reference libraries (XGBoost, LightGBM, onnxruntime) on the same rows.
//! For each model and batch size the bench scores consecutive batches on
//! this thread for SECONDS (default 1; only the MODELs named, if any) after
//! a short warm-up, through
//! `Model::score_batch` (an Arrow batch in, gather + score + output columns
//! out), and for the tree models also through `TreeModel::predict` (plain
//! `f64` columns, no Arrow). It prints rows per second of wall time and
//! rows per CPU-second of the process (the bench is single-threaded, so
//! that is rows/s per core, whatever else the machine is doing).

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Float64Array};
use arrow::record_batch::RecordBatch;
use shoal_score::{Model, TreeModel};

const ROWS: usize = 65_536;
const BATCH_SIZES: [usize; 4] = [1, 64, 1024, 8192];
/// The fraud models of each format, and the ONNX regressor (a small neural
/// network: tract's dense kernels rather than its tree-ensemble operator).
const MODELS: [&str; 4] = [
    "fraud.xgb.json",
    "fraud.lgbm.txt",
    "fraud.onnx",
    "risk.onnx",
];

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

/// CPU time (user + system) used by this process so far, in seconds
/// (Linux `/proc/self/stat`; the same reading as `shoal_benches::cpu_seconds`,
/// repeated here to keep DataFusion out of this package).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = 100.0; // USER_HZ on Linux
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

/// The parity features tiled to `rows` rows, column-major, and their names.
fn features(rows: usize) -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(models_dir().join("parity/features.csv"))
        .expect("models/parity/features.csv");
    let mut lines = text.lines();
    let names: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    let mut base = vec![Vec::new(); names.len()];
    for line in lines {
        for (c, cell) in line.split(',').enumerate() {
            base[c].push(cell.parse::<f64>().unwrap());
        }
    }
    let cols = base
        .iter()
        .map(|col| col.iter().copied().cycle().take(rows).collect())
        .collect();
    (names, cols)
}

/// Rows per wall-second and per CPU-second.
struct Rate {
    wall: f64,
    cpu: f64,
}

/// Call `score(batch_index)` (returning rows scored) for `secs` after a
/// warm-up.
fn rate(secs: f64, mut score: impl FnMut(usize) -> usize) -> Rate {
    let warm = Instant::now();
    let mut i = 0;
    while warm.elapsed() < Duration::from_millis(200) {
        score(i);
        i += 1;
    }
    let cpu0 = cpu_seconds().unwrap_or(0.0);
    let start = Instant::now();
    let mut rows = 0;
    loop {
        // Check the clock every few calls only: tiny batches are ~100 ns.
        for _ in 0..16 {
            rows += score(i);
            i += 1;
        }
        let elapsed = start.elapsed().as_secs_f64();
        if elapsed >= secs {
            let cpu = cpu_seconds().unwrap_or(0.0) - cpu0;
            return Rate {
                wall: rows as f64 / elapsed,
                cpu: if cpu > 0.0 {
                    rows as f64 / cpu
                } else {
                    f64::NAN
                },
            };
        }
    }
}

fn human(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2} M", rate / 1e6)
    } else {
        format!("{:.0} k", rate / 1e3)
    }
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("SECONDS"))
        .unwrap_or(1.0);
    let only: Vec<String> = std::env::args().skip(2).collect();
    let (names, cols) = features(ROWS);
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();

    println!("| model | batch | API | rows/s (wall) | rows/s per core (CPU time) |");
    println!("|---|---:|---|---:|---:|");
    for file in MODELS {
        if !only.is_empty() && !only.iter().any(|m| m == file) {
            continue;
        }
        let path = models_dir().join(file);
        let model = Model::load(&path, None).expect("model");
        let tree = (!file.ends_with(".onnx")).then(|| TreeModel::load(&path).expect("model"));
        for &batch in &BATCH_SIZES {
            let batches = ROWS / batch;
            let slices: Vec<Vec<&[f64]>> = (0..batches)
                .map(|b| {
                    cols.iter()
                        .map(|c| &c[b * batch..(b + 1) * batch])
                        .collect()
                })
                .collect();
            let arrow_batches: Vec<RecordBatch> = slices
                .iter()
                .take(64.min(batches))
                .map(|cs| {
                    RecordBatch::try_from_iter(names.iter().zip(cs).map(|(n, c)| {
                        let values = c.iter().map(|v| (!v.is_nan()).then_some(*v));
                        (n, Arc::new(Float64Array::from_iter(values)) as ArrayRef)
                    }))
                    .unwrap()
                })
                .collect();
            let arrow = rate(secs, |i| {
                let b = &arrow_batches[i % arrow_batches.len()];
                black_box(model.score_batch(black_box(b), &name_refs).unwrap());
                batch
            });
            println!(
                "| {file} | {batch} | Model::score_batch (Arrow) | {} | {} |",
                human(arrow.wall),
                human(arrow.cpu)
            );
            if let Some(tree) = &tree {
                let mut out = Vec::with_capacity(batch);
                let plain = rate(secs, |i| {
                    tree.predict(black_box(&slices[i % batches]), &mut out)
                        .unwrap();
                    black_box(&out);
                    batch
                });
                println!(
                    "| {file} | {batch} | TreeModel::predict (f64 columns) | {} | {} |",
                    human(plain.wall),
                    human(plain.cpu)
                );
            }
        }
    }
}
