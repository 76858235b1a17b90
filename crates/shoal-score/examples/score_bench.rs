//! Scoring throughput of the committed fraud models, one thread.
//!
//! ```text
//! cargo run --release -p shoal-score --example score_bench [-- SECONDS]
//! ```
//!
//! The data is `models/parity/features.csv` (600 rows, about 5 % missing
//! values) repeated to 65 536 rows; `scripts/bench_reference.py` times the
//! reference libraries on the same rows. For each model and batch size the
//! bench scores consecutive batches for SECONDS (default 1) after a short
//! warm-up and prints rows per second on one core, for `predict` (plain
//! `f64` columns) and `predict_batch` (an Arrow batch: gather, score, link).

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Float64Array};
use arrow::record_batch::RecordBatch;
use shoal_score::TreeModel;

const ROWS: usize = 65_536;
const BATCH_SIZES: [usize; 4] = [1, 64, 1024, 8192];

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models")
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

/// Call `score(batch_index)` (returning rows scored) for `secs` after a
/// warm-up; rows per second.
fn rate(secs: f64, mut score: impl FnMut(usize) -> usize) -> f64 {
    let warm = Instant::now();
    let mut i = 0;
    while warm.elapsed() < Duration::from_millis(200) {
        score(i);
        i += 1;
    }
    let start = Instant::now();
    let mut rows = 0;
    let mut n = 0;
    loop {
        // Check the clock every few calls only: tiny batches are ~100 ns.
        for _ in 0..16 {
            rows += score(i + n);
            n += 1;
        }
        let elapsed = start.elapsed().as_secs_f64();
        if elapsed >= secs {
            return rows as f64 / elapsed;
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
    let (names, cols) = features(ROWS);
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();

    println!("| model | trees | batch | predict rows/s | predict_batch rows/s |");
    println!("|---|---:|---:|---:|---:|");
    for file in ["fraud.xgb.json", "fraud.lgbm.txt"] {
        let model = TreeModel::load(models_dir().join(file)).expect("model");
        for &batch in &BATCH_SIZES {
            let batches = ROWS / batch;
            let slices: Vec<Vec<&[f64]>> = (0..batches)
                .map(|b| {
                    cols.iter()
                        .map(|c| &c[b * batch..(b + 1) * batch])
                        .collect()
                })
                .collect();
            let mut out = Vec::with_capacity(batch);
            let plain = rate(secs, |i| {
                model
                    .predict(black_box(&slices[i % batches]), &mut out)
                    .unwrap();
                black_box(&out);
                batch
            });

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
                black_box(model.predict_batch(black_box(b), &name_refs).unwrap());
                batch
            });
            println!(
                "| {file} | {} | {batch} | {} | {} |",
                model.num_trees(),
                human(plain),
                human(arrow)
            );
        }
    }
}
