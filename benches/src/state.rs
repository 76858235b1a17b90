//! `state-bench`: the cost of one partition's state in checkpoints — the
//! fraud job's per-card OVER features (1-minute and 1-hour RANGE frames,
//! COUNT DISTINCT, running averages) over `--keys` cards.
//!
//! Measures, for one operator instance (= one state shard):
//! - a full snapshot: encode time (on the task), write time (off the task,
//!   fsync included), bytes;
//! - a delta snapshot after 1 % of the cards had a new transaction;
//! - the restore of the shard into a fresh operator (read, decode,
//!   rebuild), the time a partition that moves to another process waits
//!   before its first record;
//! - peak RSS.
//!
//! ```text
//! cargo run --release -p shoal-benches --bin state-bench -- [--keys 1000000] [--rows 3]
//! ```

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Float64Array, Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use shoal_benches::peak_rss_mib;
use shoal_runtime::state::{StateContext, StateWrites};
use shoal_runtime::{Collector, Operator};
use shoal_sql::{QueryOperator, compile_query};

const QUERY: &str = "\
SELECT txn_id, card_id, amount, ts,
       COUNT(*)                    OVER last_minute AS n_1m,
       SUM(amount)                 OVER last_minute AS sum_1m,
       COUNT(*)                    OVER last_hour   AS n_1h,
       SUM(amount)                 OVER last_hour   AS sum_1h,
       COUNT(DISTINCT merchant_id) OVER last_hour   AS merchants_1h,
       AVG(amount)                 OVER history     AS avg_amount,
       COUNT(*)                    OVER history     AS n_card
FROM txns
WINDOW last_minute AS (PARTITION BY card_id ORDER BY ts
                       RANGE BETWEEN INTERVAL '1' MINUTE PRECEDING AND CURRENT ROW),
       last_hour   AS (PARTITION BY card_id ORDER BY ts
                       RANGE BETWEEN INTERVAL '1' HOUR PRECEDING AND CURRENT ROW),
       history     AS (PARTITION BY card_id ORDER BY ts
                       ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)";

const BATCH: usize = 8192;
/// Event time of the first transaction (ms).
const T0: i64 = 1_700_000_000_000;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("txn_id", DataType::Int64, false),
        Field::new("card_id", DataType::Int64, false),
        Field::new("merchant_id", DataType::Int64, false),
        Field::new("amount", DataType::Float64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
    ]))
}

/// Transactions `from..to`: card `i % keys`, one second apart per round of
/// all cards.
fn batch(schema: &SchemaRef, keys: u64, from: u64, to: u64) -> RecordBatch {
    let ids: Vec<i64> = (from..to).map(|i| i as i64).collect();
    let cards: Vec<i64> = (from..to).map(|i| (i % keys) as i64).collect();
    let merchants: Vec<i64> = (from..to).map(|i| (i * 7919 % 5000) as i64).collect();
    let amounts: Vec<f64> = (from..to).map(|i| (i % 977) as f64 + 0.5).collect();
    let ts: Vec<i64> = (from..to).map(|i| T0 + (i / keys) as i64 * 1000).collect();
    RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(Int64Array::from(cards)),
            Arc::new(Int64Array::from(merchants)),
            Arc::new(Float64Array::from(amounts)),
            Arc::new(TimestampMillisecondArray::from(ts)),
        ],
    )
    .expect("batch")
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

/// Takes a snapshot of `op` as checkpoint `id`; returns (reference, encode
/// seconds, write seconds, bytes written).
fn snapshot(
    op: &mut QueryOperator,
    dir: &std::path::Path,
    id: u64,
    rt: &tokio::runtime::Runtime,
) -> (serde_json::Value, f64, f64, u64) {
    let writes = StateWrites::default();
    let ctx = StateContext {
        writes: Some(writes.clone()),
        ..StateContext::new(dir, "card_features", 0, id)
    };
    let t = Instant::now();
    let reference = op.snapshot_at(&ctx).expect("snapshot");
    let encode = t.elapsed().as_secs_f64();
    let t = Instant::now();
    rt.block_on(writes.flush()).expect("write");
    let write = t.elapsed().as_secs_f64();
    let bytes = reference["over"]["keyed_state"]["written_bytes"]
        .as_u64()
        .expect("written_bytes");
    (reference, encode, write, bytes)
}

fn main() {
    let keys = arg("--keys", 1_000_000);
    let rows = arg("--rows", 3);
    let schema = schema();
    let q = compile_query(QUERY, &[("txns".into(), schema.clone())]).expect("query");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");

    let mut op = QueryOperator::new(q.clone()).with_node("card_features");
    let mut out = Collector::default();
    let total = keys * rows;
    let t = Instant::now();
    let mut at = 0;
    while at < total {
        let to = (at + BATCH as u64).min(total);
        op.process_batch(0, batch(&schema, keys, at, to), &mut out)
            .expect("process");
        // Every row is released: the watermark follows the newest row.
        op.on_watermark(T0 + ((to - 1) / keys) as i64 * 1000 + 1, &mut out)
            .expect("watermark");
        out.take_batches();
        at = to;
    }
    let ingest = t.elapsed().as_secs_f64();
    assert_eq!(op.state_keys(), keys as usize, "one state entry per card");

    let (_, full_encode, full_write, full_bytes) = snapshot(&mut op, dir.path(), 1, &rt);

    // 1 % of the cards get one more transaction.
    let changed = (keys / 100).max(1);
    let next = batch(&schema, keys, total, total + changed);
    op.process_batch(0, next, &mut out).expect("process");
    op.on_watermark(T0 + (total / keys) as i64 * 1000 + 1, &mut out)
        .expect("watermark");
    out.take_batches();
    let (reference, delta_encode, delta_write, delta_bytes) = snapshot(&mut op, dir.path(), 2, &rt);

    let t = Instant::now();
    let mut restored = QueryOperator::new(q).with_node("card_features");
    restored
        .restore_at(
            &[reference],
            0,
            &StateContext::new(dir.path(), "card_features", 0, 2),
        )
        .expect("restore");
    let restore = t.elapsed().as_secs_f64();
    assert_eq!(restored.state_keys(), keys as usize, "every card restored");

    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "state-bench: {keys} cards, {rows} transactions each ({total} rows), ingest {ingest:.2} s"
    );
    println!();
    println!("| what | time | bytes |");
    println!("|---|---:|---:|");
    println!(
        "| full snapshot, encode (task thread) | {:.3} s | {:.1} MiB ({:.0} B/card) |",
        full_encode,
        mib(full_bytes),
        full_bytes as f64 / keys as f64
    );
    println!("| full snapshot, write + fsync (blocking pool) | {full_write:.3} s | |");
    println!(
        "| delta snapshot after {changed} cards changed, encode | {delta_encode:.3} s | {:.2} MiB |",
        mib(delta_bytes)
    );
    println!("| delta snapshot, write + fsync | {delta_write:.3} s | |");
    println!("| restore the shard (full + delta) into a fresh operator | {restore:.3} s | |");
    println!(
        "| peak RSS | | {} |",
        peak_rss_mib().map_or("n/a".into(), |m| format!("{m:.0} MiB"))
    );
}
