//! Windows over a shifted event time and rows without an event time.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::test_support::{Lcg, batch, slices, stream, with_delay, wrong_rows};

const T0: i64 = 1_700_000_000_000;

fn input(ts: Vec<Option<i64>>, seed: u64) -> (SchemaRef, RecordBatch) {
    let mut rng = Lcg(seed);
    let n = ts.len();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("k", DataType::Int64, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]));
    let rows = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..n as i64)),
            Arc::new(Int64Array::from_iter_values(
                (0..n).map(|_| rng.range(0, 4)),
            )),
            Arc::new(TimestampMillisecondArray::from(ts)),
        ],
    )
    .unwrap();
    (schema, rows)
}

/// Issue 15, bug 5: a window over `ts - INTERVAL '1' HOUR` (a time-zone
/// shift) compares the shifted time with a shifted watermark; nothing
/// within the delay is late.
#[test]
fn a_window_over_a_shifted_time_drops_nothing_as_late() {
    let mut rng = Lcg(5);
    let n = 5_000;
    let ts = (0..n as i64)
        .map(|i| Some(T0 + i * 1_000 + rng.range(-4_000, 4_000)))
        .collect();
    let (schema, rows) = input(ts, 6);
    let steps = with_delay(&slices(&rows, 100), "ts", 10_000);
    let mut report = Vec::new();
    for shift in ["ts - INTERVAL '1' HOUR", "ts + INTERVAL '90' MINUTE", "ts"] {
        let sql = format!(
            "SELECT k, tumble({shift}, INTERVAL '1' MINUTE) AS ws, COUNT(*) AS n, MIN(id) AS first_id \
             FROM t GROUP BY k, tumble({shift}, INTERVAL '1' MINUTE)"
        );
        let got = stream(&sql, "t", &schema, Some("ts"), &steps);
        let want = batch(&sql, "t", &[rows.clone()]);
        let bad = wrong_rows(&got.out, &want, &["k", "ws"]);
        if bad != 0 || !got.dead.is_empty() {
            report.push(format!(
                "{shift}: {} of {n} rows late, {bad} windows differ",
                got.dead.len()
            ));
        }
    }
    // Hop and session have no batch form: every row is counted (twice for a
    // hop of size 2 × slide), none is late.
    for (window, times) in [
        (
            "hop(ts - INTERVAL '1' HOUR, INTERVAL '30' SECOND, INTERVAL '1' MINUTE)",
            2,
        ),
        ("session(ts - INTERVAL '1' HOUR, INTERVAL '10' SECOND)", 1),
    ] {
        let sql = format!("SELECT k, {window} AS ws, COUNT(*) AS n FROM t GROUP BY k, {window}");
        let got = stream(&sql, "t", &schema, Some("ts"), &steps);
        let counted: i64 = got
            .out
            .iter()
            .map(|b| {
                let n = b.column_by_name("n").unwrap();
                arrow::compute::sum(n.as_any().downcast_ref::<Int64Array>().unwrap()).unwrap()
            })
            .sum();
        if counted != times * n as i64 || !got.dead.is_empty() {
            report.push(format!(
                "{window}: {} of {n} rows late, {counted} counted",
                got.dead.len()
            ));
        }
    }
    assert!(report.is_empty(), "{report:#?}");
}

/// Issue 15, bug 6: a window's row without an event time is a dead letter
/// saying so (the job used to fail: "Column '__event_time' is declared as
/// non-nullable but contains null values").
#[test]
fn a_null_event_time_into_a_window_is_a_dead_letter_with_a_reason() {
    let ts = vec![Some(T0), None, Some(T0 + 1), None, Some(T0 + 70_000)];
    let (schema, rows) = input(ts, 7);
    let mut report = Vec::new();
    for window in [
        "tumble(ts, INTERVAL '1' MINUTE)",
        "hop(ts, INTERVAL '30' SECOND, INTERVAL '1' MINUTE)",
        "session(ts, INTERVAL '10' SECOND)",
    ] {
        let sql = format!("SELECT {window} AS ws, COUNT(*) AS n FROM t GROUP BY {window}");
        let mut q = crate::compile_query(&sql, &[("t".into(), schema.clone())]).unwrap();
        q.set_event_time("ts").unwrap();
        let mut op = crate::QueryOperator::new(q).with_node("w");
        let mut out = shoal_runtime::Collector::default();
        use shoal_runtime::Operator;
        if let Err(e) = op.process_batch(0, rows.clone(), &mut out) {
            report.push(format!("{window}: {e}"));
            continue;
        }
        op.on_end(&mut out).unwrap();
        let counted: i64 = out
            .batches()
            .iter()
            .map(|b| {
                let n = b.column_by_name("n").unwrap();
                arrow::compute::sum(n.as_any().downcast_ref::<Int64Array>().unwrap()).unwrap()
            })
            .sum();
        let dead = out.dead_letters();
        let null_reason = dead.iter().all(|d| d.reason.contains("NULL"));
        if dead.len() != 2 || !null_reason {
            report.push(format!("{window}: dead letters {dead:?}"));
        }
        if !window.starts_with("hop") && counted != 3 {
            report.push(format!("{window}: counted {counted} rows, not 3"));
        }
    }
    assert!(report.is_empty(), "{report:#?}");
}

/// Issue 15, bug 6: an interval join's row without an event time is a dead
/// letter saying so (it was reported as `late`).
#[test]
fn a_null_event_time_into_an_interval_join_is_a_dead_letter_with_a_reason() {
    use shoal_runtime::Operator;
    let (schema, rows) = input(vec![Some(T0), None, Some(T0 + 1)], 8);
    let sql = "SELECT a.id, b.id AS other FROM a JOIN b ON a.k = b.k \
               AND b.ts BETWEEN a.ts AND a.ts + INTERVAL '1' SECOND";
    let q =
        crate::compile_query(sql, &[("a".into(), schema.clone()), ("b".into(), schema)]).unwrap();
    let mut op = crate::QueryOperator::new(q).with_node("j");
    let mut out = shoal_runtime::Collector::default();
    op.process_batch(0, rows.clone(), &mut out).unwrap();
    op.on_watermark(T0 + 1, &mut out).unwrap();
    op.process_batch(1, rows, &mut out).unwrap();
    let reasons: Vec<&str> = out
        .dead_letters()
        .iter()
        .map(|d| d.reason.as_str())
        .collect();
    assert_eq!(
        reasons,
        [
            crate::late::NO_EVENT_TIME,
            "late",
            crate::late::NO_EVENT_TIME
        ],
        "{:?}",
        out.dead_letters()
    );
}
