//! OVER windows on a stream give exactly the rows of the same query run as
//! a DataFusion batch query: whatever the batching and watermark steps,
//! with NULL keys, integers beyond 2^53, rows at the watermark, chained
//! after a window, and rows without an event time.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::test_support::{Lcg, Step, batch, slices, stream, stream_chain, with_delay, wrong_rows};

const T0: i64 = 1_700_000_000_000;
const MIN: i64 = 60_000;

/// Columns `id` (unique), `k` (the key column given), `v`, `ts`.
fn table(key: ArrayRef, v: Vec<Option<i64>>, ts: Vec<Option<i64>>) -> (SchemaRef, RecordBatch) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("k", key.data_type().clone(), true),
        Field::new("v", DataType::Int64, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]));
    let n = v.len();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..n as i64)),
            key,
            Arc::new(Int64Array::from(v)),
            Arc::new(TimestampMillisecondArray::from(ts)),
        ],
    )
    .unwrap();
    (schema, batch)
}

/// Streamed through the operator (event time `ts`, watermarks `max_delay`
/// behind) and as a batch query: the number of rows that differ.
fn wrong(sql: &str, schema: &SchemaRef, rows: &RecordBatch, size: usize, delay: i64) -> usize {
    let batches = slices(rows, size);
    let got = stream(
        sql,
        "t",
        schema,
        Some("ts"),
        &with_delay(&batches, "ts", delay),
    );
    assert!(got.dead.is_empty(), "{sql}: {:?}", &got.dead[..1]);
    let want = batch(sql, "t", &[rows.clone()]);
    wrong_rows(&got.out, &want, &["id"])
}

const RANGE_10M: &str = "SELECT id, k, ts, COUNT(*) OVER w AS n, SUM(v) OVER w AS s, \
     MIN(v) OVER w AS lo, COUNT(DISTINCT v) OVER w AS d FROM t \
     WINDOW w AS (PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL '10' MINUTE PRECEDING AND CURRENT ROW)";

/// Issue 15, bug 1: rows released by a watermark step larger than the
/// frame kept their key's history (keys were expired by the new watermark
/// before its rows were processed).
#[test]
fn rows_released_by_a_large_watermark_step_keep_their_history() {
    let mut rng = Lcg(15);
    let n = 30_000;
    let keys: Vec<i64> = (0..n).map(|_| rng.range(0, 199)).collect();
    let v = (0..n).map(|_| Some(rng.range(0, 999))).collect();
    let ts = (0..n as i64)
        .map(|i| Some(T0 + i * 1_000 + rng.range(-4_000, 4_000)))
        .collect();
    let (schema, rows) = table(Arc::new(Int64Array::from(keys)), v, ts);
    // Batches of 8192 rows: each watermark step is ~2 h 16 min.
    let bad = wrong(RANGE_10M, &schema, &rows, 8_192, 10_000);
    assert_eq!(bad, 0, "{bad} of {n} rows differ from the batch query");
}

/// The same before a gap in event time longer than the frame.
#[test]
fn rows_before_a_gap_in_event_time_keep_their_history() {
    let mut rng = Lcg(16);
    let n = 6_000;
    let keys: Vec<i64> = (0..n).map(|_| rng.range(0, 49)).collect();
    let v = (0..n).map(|_| Some(rng.range(0, 999))).collect();
    let ts = (0..n as i64)
        .map(|i| {
            let gap = if i >= 3_000 { 30 * MIN } else { 0 };
            Some(T0 + i * 1_000 + gap + rng.range(-4_000, 4_000))
        })
        .collect();
    let (schema, rows) = table(Arc::new(Int64Array::from(keys)), v, ts);
    let bad = wrong(RANGE_10M, &schema, &rows, 100, 10_000);
    assert_eq!(bad, 0, "{bad} of {n} rows differ from the batch query");
}

const NULL_KEYS: &str = "SELECT id, k, ts, COUNT(*) OVER w AS n, SUM(v) OVER w AS s, \
     COUNT(*) OVER (PARTITION BY k ORDER BY ts ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS total \
     FROM t WINDOW w AS (PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL '1' MINUTE PRECEDING AND CURRENT ROW)";

fn null_key_input(key: ArrayRef, seed: u64) -> (SchemaRef, RecordBatch) {
    let mut rng = Lcg(seed);
    let n = key.len();
    let v = (0..n).map(|_| Some(rng.range(1, 100))).collect();
    // Unique times, so ROWS frames have one order.
    let ts = (0..n as i64).map(|i| Some(T0 + i * 997)).collect();
    table(key, v, ts)
}

/// Issue 15, bug 2: a NULL key is its own partition, not key 0 (int64) or
/// '' (utf8).
#[test]
fn null_keys_are_their_own_partition() {
    let mut rng = Lcg(2);
    let n = 2_000;
    let ints: Int64Array = (0..n)
        .map(|_| match rng.range(0, 3) {
            0 => None,
            k => Some(k - 1),
        })
        .collect();
    let strs: StringArray = (0..n)
        .map(|_| match rng.range(0, 3) {
            0 => None,
            1 => Some(""),
            2 => Some("a"),
            _ => Some("b"),
        })
        .collect();
    let mut bad = Vec::new();
    for key in [Arc::new(ints) as ArrayRef, Arc::new(strs)] {
        let t = key.data_type().clone();
        let (schema, rows) = null_key_input(key, 3);
        // Event time (sorted per key at the watermark) …
        bad.push((
            t.clone(),
            "event time",
            wrong(NULL_KEYS, &schema, &rows, 64, 5_000),
        ));
        // … and arrival order (no event time).
        let sql = "SELECT id, k, COUNT(*) OVER (PARTITION BY k ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS n, \
                   SUM(v) OVER (PARTITION BY k ORDER BY id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS s FROM t";
        let got = stream(
            sql,
            "t",
            &schema,
            None,
            &slices(&rows, 64)
                .into_iter()
                .map(Step::Batch)
                .collect::<Vec<_>>(),
        );
        let want = batch(sql, "t", &[rows.clone()]);
        bad.push((t, "arrival order", wrong_rows(&got.out, &want, &["id"])));
    }
    assert!(
        bad.iter().all(|b| b.2 == 0),
        "rows differing from the batch query: {bad:?}"
    );
}

/// Issue 15, bug 3: MIN and MAX over int64 are exact beyond 2^53.
#[test]
fn min_and_max_of_int64_are_exact_beyond_2_pow_53() {
    let mut rng = Lcg(3);
    let n = 600;
    let keys: Int64Array = (0..n).map(|_| Some(rng.range(0, 4))).collect();
    let base = 9_007_199_254_740_993; // 2^53 + 1
    let v = (0..n)
        .map(|i| {
            Some(match i % 3 {
                0 => base + rng.range(0, 2),
                1 => i64::MAX - rng.range(0, 2),
                _ => -base - rng.range(0, 2),
            })
        })
        .collect();
    let ts = (0..n as i64).map(|i| Some(T0 + i * 1_000)).collect();
    let (schema, rows) = table(Arc::new(keys), v, ts);
    let sql = "SELECT id, k, MIN(v) OVER (PARTITION BY k ORDER BY ts ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS lo, \
               MAX(v) OVER (PARTITION BY k ORDER BY ts ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS hi, \
               MAX(v) OVER (PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL '5' SECOND PRECEDING AND CURRENT ROW) AS hi5, \
               MIN(v) OVER (PARTITION BY k ORDER BY ts RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS lo_all \
               FROM t";
    let bad = wrong(sql, &schema, &rows, 50, 1_000);
    assert_eq!(bad, 0, "{bad} of {n} rows differ from the batch query");
}

/// Issue 15, bug 4: one lateness rule, `ts < watermark`: a row exactly at
/// the watermark is on time, one before it is late.
#[test]
fn a_row_at_the_watermark_is_on_time() {
    let sql = "SELECT id, k, COUNT(*) OVER (PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL '1' MINUTE PRECEDING AND CURRENT ROW) AS n FROM t";
    let row = |id: i64, ts: i64| {
        let (schema, b) = table(
            Arc::new(Int64Array::from(vec![1])),
            vec![Some(1)],
            vec![Some(ts)],
        );
        let id: ArrayRef = Arc::new(Int64Array::from(vec![id]));
        let mut cols = b.columns().to_vec();
        cols[0] = id;
        (schema.clone(), RecordBatch::try_new(schema, cols).unwrap())
    };
    let (schema, first) = row(0, 1_000);
    let steps = [
        Step::Batch(first),
        Step::Watermark(2_000),
        Step::Batch(row(1, 2_000).1),
        Step::Batch(row(2, 1_999).1),
    ];
    let got = stream(sql, "t", &schema, Some("ts"), &steps);
    assert_eq!(got.rows(), 2, "{:?}", got.out);
    assert_eq!(got.dead.len(), 1, "{:?}", got.dead);
    assert!(got.dead[0].record.contains("\"id\":2"), "{:?}", got.dead);
    assert!(got.dead[0].reason.starts_with("late"), "{:?}", got.dead);
}

fn chain_input() -> (SchemaRef, Vec<RecordBatch>, RecordBatch) {
    let mut rng = Lcg(4);
    let n = 4_000;
    let keys: Int64Array = (0..n).map(|_| Some(rng.range(0, 9))).collect();
    let v = (0..n).map(|_| Some(rng.range(1, 100))).collect();
    let ts = (0..n as i64)
        .map(|i| Some(T0 + i * 2_000 + rng.range(-4_000, 4_000)))
        .collect();
    let (schema, rows) = table(Arc::new(keys), v, ts);
    (schema, slices(&rows, 100), rows)
}

/// Issue 15, bug 4: a window's rows reach an OVER window chained after it
/// on time (the window forwards the start of the earliest window it may
/// still emit), whether the window column is called `ts` or
/// `window_start`.
#[test]
fn over_after_a_window_drops_nothing_as_late() {
    let (schema, batches, _) = chain_input();
    let steps = with_delay(&batches, "ts", 10_000);
    let mut report = Vec::new();
    for col in ["ts", "window_start"] {
        let first = format!(
            "SELECT k, tumble(ts, INTERVAL '1' MINUTE) AS {col}, COUNT(*) AS n, SUM(v) AS s \
             FROM t GROUP BY k, tumble(ts, INTERVAL '1' MINUTE)"
        );
        let second = format!(
            "SELECT k, {col}, n, SUM(n) OVER w AS n_5m, MAX(s) OVER w AS s_max FROM w \
             WINDOW w AS (PARTITION BY k ORDER BY {col} RANGE BETWEEN INTERVAL '5' MINUTE PRECEDING AND CURRENT ROW)"
        );
        let (windows, over) = match stream_chain(&first, "t", &schema, &second, "w", "ts", &steps) {
            Ok(r) => r,
            Err(e) => {
                report.push(format!("{col}: {e}"));
                continue;
            }
        };
        assert!(windows.dead.is_empty(), "{:?}", windows.dead);
        let want = batch(&second, "w", &windows.out);
        let bad = wrong_rows(&over.out, &want, &["k", col]);
        if !over.dead.is_empty() || bad != 0 {
            report.push(format!(
                "{col}: {} of {} window rows late, {bad} rows differ",
                over.dead.len(),
                windows.rows()
            ));
        }
    }
    assert!(report.is_empty(), "{report:#?}");
}

/// Issue 15, bug 6: a row without an event time is a dead letter saying so
/// (it used to vanish: neither output nor dead letter).
#[test]
fn a_null_event_time_is_a_dead_letter_with_a_reason() {
    let keys = Arc::new(Int64Array::from(vec![1, 1, 2, 1]));
    let ts = vec![Some(T0), None, Some(T0 + 1), Some(T0 + 2)];
    let (schema, rows) = table(keys, vec![Some(1); 4], ts);
    let sql = "SELECT id, k, COUNT(*) OVER (PARTITION BY k ORDER BY ts RANGE BETWEEN INTERVAL '1' MINUTE PRECEDING AND CURRENT ROW) AS n FROM t";
    let got = stream(sql, "t", &schema, Some("ts"), &with_delay(&[rows], "ts", 0));
    assert_eq!(
        got.rows() + got.dead.len(),
        4,
        "{:?} {:?}",
        got.out,
        got.dead
    );
    assert_eq!(got.dead.len(), 1, "{:?}", got.dead);
    assert!(got.dead[0].reason.contains("NULL"), "{:?}", got.dead);
    assert!(got.dead[0].record.contains("\"id\":1"), "{:?}", got.dead);
}

/// A window and an OVER window in one query: the window fires first and the
/// OVER window sees the window's own watermark, so nothing is late.
#[test]
fn over_after_a_window_in_the_same_query_drops_nothing_as_late() {
    let (schema, batches, rows) = chain_input();
    let sql = "SELECT k, window_start, n, SUM(n) OVER (PARTITION BY k ORDER BY window_start \
               RANGE BETWEEN INTERVAL '5' MINUTE PRECEDING AND CURRENT ROW) AS n_5m FROM \
               (SELECT k, tumble(ts, INTERVAL '1' MINUTE) AS window_start, COUNT(*) AS n \
                FROM t GROUP BY k, tumble(ts, INTERVAL '1' MINUTE))";
    let got = stream(
        sql,
        "t",
        &schema,
        Some("ts"),
        &with_delay(&batches, "ts", 10_000),
    );
    let want = batch(sql, "t", &[rows]);
    let bad = wrong_rows(&got.out, &want, &["k", "window_start"]);
    assert!(
        got.dead.is_empty() && bad == 0,
        "{} late, {bad} of {} rows differ",
        got.dead.len(),
        got.rows()
    );
}

/// The NULL key's frame survives a checkpoint (keyed-state files) and a
/// restore, apart from key 0's.
#[test]
fn the_null_key_survives_a_checkpoint() {
    use shoal_runtime::state::StateContext;
    use shoal_runtime::{Collector, Operator};
    let keys = Arc::new(Int64Array::from(vec![None, Some(0), None]));
    let (schema, rows) = table(keys, vec![Some(1), Some(2), Some(3)], vec![Some(T0); 3]);
    let sql = "SELECT id, k, SUM(v) OVER (PARTITION BY k ORDER BY id \
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS s FROM t";
    let q = crate::compile_query(sql, &[("t".into(), schema)]).unwrap();
    let dir = std::env::temp_dir().join(format!("shoal-over-null-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ctx = StateContext::new(&dir, "t", 0, 1);
    let mut op = crate::QueryOperator::new(q.clone());
    let mut out = Collector::default();
    op.process_batch(0, rows.clone(), &mut out).unwrap();
    let snap = op.snapshot_at(&ctx).unwrap();
    for (how, mut restored) in [("keyed state", crate::QueryOperator::new(q.clone()))] {
        restored
            .restore_at(std::slice::from_ref(&snap), 0, &ctx)
            .unwrap();
        assert_eq!(restored.state_keys(), 2, "{how}");
        let mut out = Collector::default();
        restored.process_batch(0, rows.clone(), &mut out).unwrap();
        let s = out.batches()[0].column_by_name("s").unwrap();
        let s = s.as_any().downcast_ref::<Int64Array>().unwrap();
        // NULL: 1 + 3 before, then 1, 3 again; key 0: 2 before, then 2.
        assert_eq!(s.values(), &[5, 4, 8], "{how}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Keys expire by the watermark in the ORDER BY column's units: with a
/// `timestamp(µs)` event time, a key whose 1-minute frame slid past all its
/// rows is dropped (it was compared with the watermark in ms and kept for
/// ever).
#[test]
fn keys_expire_with_a_microsecond_event_time() {
    use shoal_runtime::{Collector, Operator};
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
    ]));
    let rows = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 1])),
            Arc::new(arrow::array::TimestampMicrosecondArray::from(vec![
                T0 * 1_000,
                (T0 + 1) * 1_000,
                (T0 + 2) * 1_000,
            ])),
        ],
    )
    .unwrap();
    let sql = "SELECT k, COUNT(*) OVER (PARTITION BY k ORDER BY ts \
               RANGE BETWEEN INTERVAL '1' MINUTE PRECEDING AND CURRENT ROW) AS n FROM t";
    let mut q = crate::compile_query(sql, &[("t".into(), schema)]).unwrap();
    q.set_event_time("ts").unwrap();
    let mut op = crate::QueryOperator::new(q);
    let mut out = Collector::default();
    op.process_batch(0, rows, &mut out).unwrap();
    op.on_watermark(T0 + 10, &mut out).unwrap();
    assert_eq!((op.state_keys(), op.state_rows()), (2, 3));
    // An hour later every frame slid past the keys' rows.
    op.on_watermark(T0 + 60 * MIN, &mut out).unwrap();
    assert_eq!((op.state_keys(), op.state_rows()), (0, 0));
}

/// LEAD needs rows that have not arrived: refused with the LAG to write;
/// a LAG default other than NULL names the COALESCE to write.
#[test]
fn lead_and_lag_defaults_are_refused_with_what_to_write() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("v", DataType::Int64, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
    ]));
    let compile = |sql: &str| crate::compile_query(sql, &[("t".into(), schema.clone())]);
    let e = compile("SELECT LEAD(v) OVER (PARTITION BY k ORDER BY ts) AS n FROM t")
        .unwrap_err()
        .to_string();
    assert!(e.contains("LEAD"), "{e}");
    let e = compile("SELECT LAG(v, 1, 0) OVER (PARTITION BY k ORDER BY ts) AS p FROM t")
        .unwrap_err()
        .to_string();
    assert!(e.contains("default"), "{e}");
    compile("SELECT LAG(v, 2) OVER (PARTITION BY k ORDER BY ts) AS p, ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts) AS rn FROM t")
        .unwrap();
}
