//! The streaming-SQL oracle: every query runs through Shoal's streaming
//! operators (random batches, out-of-order event time within the allowed
//! delay, watermarks after each batch, a checkpoint snapshot/restore in the
//! middle, end of input) and as a DataFusion batch query over the same
//! rows; the results must be the same rows, in any order, with floats equal
//! within 1e-9 relative.
//!
//! Hopping and session windows have no batch equivalent built into
//! DataFusion, so their batch side is written out in plain SQL (an offsets
//! cross join for hop; `LAG` and a running `SUM` for sessions).
//!
//! `SHOAL_ORACLE_SEED=N` replays one seed.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::MemTable;
use rand::{Rng, SeedableRng};
use shoal_runtime::state::StateContext;
use shoal_runtime::{Collector, Operator};
use shoal_sql::{
    LookupTable, LookupTableSpec, QueryOperator, compile_query, compile_query_with, sql_context,
};

/// Allowed out-of-orderness of the generated input (ms).
const MAX_DELAY: i64 = 5_000;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("card_id", DataType::Int64, false),
        Field::new("merchant_id", DataType::Int64, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("qty", DataType::Int64, true),
        Field::new("country", DataType::Utf8, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
    ]))
}

/// `n` rows; event time out of order by at most `MAX_DELAY`, cut into
/// random batches.
fn input(seed: u64, n: usize) -> Vec<RecordBatch> {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let countries = ["US", "FR", "DE", "GB", "JP"];
    let mut t: i64 = 1_700_000_000_000;
    let (mut card, mut merchant, mut amount, mut qty, mut country, mut ts) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        t += rng.random_range(0..2_000);
        card.push(rng.random_range(0..12i64));
        merchant.push(rng.random_range(0..40i64));
        amount.push((rng.random_range(1..50_000) as f64) / 100.0);
        qty.push(rng.random_bool(0.9).then(|| rng.random_range(1..10i64)));
        country.push(countries[rng.random_range(0..countries.len())]);
        ts.push(t - rng.random_range(0..=MAX_DELAY));
    }
    let all = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(card)),
            Arc::new(Int64Array::from(merchant)),
            Arc::new(Float64Array::from(amount)),
            Arc::new(Int64Array::from(qty)),
            Arc::new(StringArray::from(country)),
            Arc::new(TimestampMillisecondArray::from(ts)),
        ],
    )
    .unwrap();
    let mut batches = Vec::new();
    let mut at = 0;
    while at < n {
        let len = rng.random_range(1..300).min(n - at);
        batches.push(all.slice(at, len));
        at += len;
    }
    batches
}

/// Run `sql` as a stream: watermark = max event time − delay after every
/// batch; snapshot + restore into a fresh operator halfway; end of input.
fn run_stream(sql: &str, batches: &[RecordBatch], mode: Restore) -> Vec<RecordBatch> {
    run_stream_with(sql, batches, &[], mode)
}

/// How a run checkpoints and restores halfway.
#[derive(Clone, Copy, Debug)]
enum Restore {
    /// One checkpoint half-way (a full snapshot file), restored at once.
    Once,
    /// `Operator::snapshot_at` / `restore_at`: the runtime's keyed-state
    /// files, two checkpoints (a full file, then a delta) before restoring.
    Keyed,
}

/// A checkpoint directory for keyed-state snapshots, removed on drop.
struct CheckpointDir(std::path::PathBuf);

impl CheckpointDir {
    fn new() -> Self {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("shoal-oracle-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        CheckpointDir(dir)
    }

    fn ctx(&self, checkpoint: u64) -> StateContext {
        StateContext::new(&self.0, "q", 0, checkpoint)
    }
}

impl Drop for CheckpointDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Checkpoint `op` at step `i` of `steps` as `mode` says; at the second
/// point, replace it with a fresh operator restored from the checkpoint.
fn checkpoint_step(
    op: &mut QueryOperator,
    q: &shoal_sql::CompiledQuery,
    i: usize,
    steps: usize,
    mode: Restore,
    dir: &CheckpointDir,
) {
    match mode {
        Restore::Once if i == steps / 2 => {
            let snap = op.snapshot_at(&dir.ctx(1)).unwrap();
            let snap: serde_json::Value =
                serde_json::from_str(&serde_json::to_string(&snap).unwrap()).unwrap();
            *op = QueryOperator::new(q.clone());
            op.restore_at(&[snap], 0, &dir.ctx(1)).unwrap();
        }
        Restore::Keyed if i == steps / 3 => {
            op.snapshot_at(&dir.ctx(1)).unwrap();
        }
        Restore::Keyed if i == steps / 2 => {
            let snap = op.snapshot_at(&dir.ctx(2)).unwrap();
            let snap: serde_json::Value =
                serde_json::from_str(&serde_json::to_string(&snap).unwrap()).unwrap();
            *op = QueryOperator::new(q.clone());
            op.restore_at(&[snap], 0, &dir.ctx(2)).unwrap();
        }
        _ => {}
    }
}

fn run_stream_with(
    sql: &str,
    batches: &[RecordBatch],
    lookups: &[Arc<LookupTable>],
    mode: Restore,
) -> Vec<RecordBatch> {
    let dir = CheckpointDir::new();
    let q = compile_query_with(sql, &[("txns".into(), schema())], lookups)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut op = QueryOperator::new(q.clone());
    let mut out = Collector::default();
    let mut max_ts = i64::MIN;
    for (i, b) in batches.iter().enumerate() {
        checkpoint_step(&mut op, &q, i, batches.len(), mode, &dir);
        op.process_batch(0, b.clone(), &mut out).unwrap();
        let ts = b
            .column(5)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .unwrap();
        max_ts = max_ts.max(arrow::compute::max(ts).unwrap());
        op.on_watermark(max_ts - MAX_DELAY, &mut out).unwrap();
    }
    op.on_end(&mut out).unwrap();
    assert!(
        out.dead_letters().is_empty(),
        "{sql}: input within the allowed delay produced late rows: {:?}",
        &out.dead_letters()[..1]
    );
    out.take_batches()
}

fn run_batch(sql: &str, batches: &[RecordBatch]) -> Vec<RecordBatch> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ctx = sql_context();
        let table = MemTable::try_new(schema(), vec![batches.to_vec()]).unwrap();
        ctx.register_table("txns", Arc::new(table)).unwrap();
        let df = ctx.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        df.collect().await.unwrap_or_else(|e| panic!("{sql}: {e}"))
    })
}

#[derive(Debug, Clone)]
enum Cell {
    Float(Option<f64>),
    Text(String),
}

fn rows(batches: &[RecordBatch]) -> Vec<Vec<Cell>> {
    let mut rows = Vec::new();
    let opts = FormatOptions::default().with_null("NULL");
    for b in batches {
        let cols: Vec<(ArrayRef, Option<ArrayFormatter>)> = b
            .columns()
            .iter()
            .map(|c| match c.data_type() {
                DataType::Float64 | DataType::Float32 => {
                    (arrow::compute::cast(c, &DataType::Float64).unwrap(), None)
                }
                _ => (
                    c.clone(),
                    Some(ArrayFormatter::try_new(c.as_ref(), &opts).unwrap()),
                ),
            })
            .collect();
        for r in 0..b.num_rows() {
            rows.push(
                cols.iter()
                    .map(|(c, f)| match f {
                        Some(f) => Cell::Text(f.value(r).to_string()),
                        None => {
                            let f = c.as_any().downcast_ref::<Float64Array>().unwrap();
                            Cell::Float(f.is_valid(r).then(|| f.value(r)))
                        }
                    })
                    .collect(),
            );
        }
    }
    // Text cells first (group keys are unique per row), floats break ties
    // (join rows copy their floats, so equal rows have identical bits).
    rows.sort_by(|x, y| {
        let text = |r: &Vec<Cell>| {
            r.iter()
                .filter_map(|c| match c {
                    Cell::Text(t) => Some(t.clone()),
                    Cell::Float(_) => None,
                })
                .collect::<Vec<_>>()
        };
        let floats = |r: &Vec<Cell>| {
            r.iter()
                .filter_map(|c| match c {
                    Cell::Float(f) => Some(f.unwrap_or(f64::NEG_INFINITY)),
                    Cell::Text(_) => None,
                })
                .collect::<Vec<_>>()
        };
        text(x).cmp(&text(y)).then_with(|| {
            floats(x)
                .iter()
                .zip(floats(y).iter())
                .map(|(a, b)| a.total_cmp(b))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        })
    });
    rows
}

fn same(a: &Cell, b: &Cell) -> bool {
    match (a, b) {
        (Cell::Text(x), Cell::Text(y)) => x == y,
        (Cell::Float(Some(x)), Cell::Float(Some(y))) => {
            x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
        }
        (Cell::Float(None), Cell::Float(None)) => true,
        _ => false,
    }
}

fn check(name: &str, stream_sql: &str, batch_sql: &str, seed: u64) {
    let input = input(seed, 3_000);
    let expected = rows(&run_batch(batch_sql, &input));
    for mode in [Restore::Once, Restore::Keyed] {
        let streamed = rows(&run_stream(stream_sql, &input, mode));
        compare(
            &format!("{name} ({mode:?} restore)"),
            &streamed,
            &expected,
            seed,
        );
    }
}

fn compare(name: &str, streamed: &[Vec<Cell>], expected: &[Vec<Cell>], seed: u64) {
    assert!(
        !expected.is_empty(),
        "{name}: the batch query returned nothing"
    );
    assert_eq!(
        streamed.len(),
        expected.len(),
        "{name} (seed {seed}): row counts differ"
    );
    for (s, e) in streamed.iter().zip(expected.iter()) {
        assert!(
            s.len() == e.len() && s.iter().zip(e).all(|(x, y)| same(x, y)),
            "{name} (seed {seed}):\n stream {s:?}\n batch  {e:?}"
        );
    }
}

/// A query in three shapes: `{W}` is the window expression and `{FROM}` the
/// source; the batch side replaces both with a plain-SQL formulation.
struct Case {
    name: &'static str,
    sql: &'static str,
    window: Window,
    /// Source of the rows (a table or a parenthesised subquery).
    from: &'static str,
    /// Partition columns of a session (its `GROUP BY` keys).
    session_keys: &'static str,
}

#[derive(Clone, Copy)]
enum Window {
    Tumble(&'static str),
    Hop { slide_ms: i64, size_ms: i64 },
    Session { gap_ms: i64 },
}

fn interval(ms: i64) -> String {
    format!("INTERVAL '{}' SECOND", ms / 1_000)
}

impl Case {
    fn stream_sql(&self) -> String {
        let w = match self.window {
            Window::Tumble(i) => format!("tumble(ts, {i})"),
            Window::Hop { slide_ms, size_ms } => {
                format!("hop(ts, {}, {})", interval(slide_ms), interval(size_ms))
            }
            Window::Session { gap_ms } => format!("session(ts, {})", interval(gap_ms)),
        };
        self.sql
            .replace("{W}", &w)
            .replace("{FROM}", &format!("{} AS src", self.from))
    }

    fn batch_sql(&self) -> String {
        let ms = "CAST(t.ts AS BIGINT)";
        let (w, from) = match self.window {
            Window::Tumble(i) => (format!("tumble(ts, {i})"), format!("{} AS src", self.from)),
            Window::Hop { slide_ms, size_ms } => {
                let n = (size_ms + slide_ms - 1) / slide_ms;
                let ks: Vec<String> = (0..n).map(|k| format!("({k})")).collect();
                (
                    "ws".to_string(),
                    format!(
                        "(SELECT t.*, to_timestamp_millis(({ms} / {slide_ms} - o.k) * {slide_ms}) AS ws \
                         FROM {} AS t CROSS JOIN (VALUES {}) AS o(k) \
                         WHERE ({ms} / {slide_ms} - o.k) * {slide_ms} + {size_ms} > {ms}) AS src",
                        self.from,
                        ks.join(", ")
                    ),
                )
            }
            Window::Session { gap_ms } => {
                let (part, part_sid) = if self.session_keys.is_empty() {
                    (String::new(), "PARTITION BY sid".to_string())
                } else {
                    (
                        format!("PARTITION BY {}", self.session_keys),
                        format!("PARTITION BY {}, sid", self.session_keys),
                    )
                };
                (
                    "ws".to_string(),
                    format!(
                        "(SELECT s.*, to_timestamp_millis(MIN(ms) OVER ({part_sid})) AS ws FROM \
                           (SELECT f.*, SUM(nf) OVER ({part} ORDER BY ms ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS sid FROM \
                             (SELECT t.*, {ms} AS ms, \
                                CASE WHEN {ms} - LAG({ms}) OVER ({part} ORDER BY t.ts) < {gap_ms} THEN 0 ELSE 1 END AS nf \
                              FROM {} AS t) AS f) AS s) AS src",
                        self.from
                    ),
                )
            }
        };
        self.sql.replace("{W}", &w).replace("{FROM}", &from)
    }
}

const fn tumble(name: &'static str, sql: &'static str, i: &'static str) -> Case {
    Case {
        name,
        sql,
        window: Window::Tumble(i),
        from: "txns",
        session_keys: "",
    }
}

const fn hop(name: &'static str, sql: &'static str, slide_ms: i64, size_ms: i64) -> Case {
    Case {
        name,
        sql,
        window: Window::Hop { slide_ms, size_ms },
        from: "txns",
        session_keys: "",
    }
}

const fn session(name: &'static str, sql: &'static str, gap_ms: i64, keys: &'static str) -> Case {
    Case {
        name,
        sql,
        window: Window::Session { gap_ms },
        from: "txns",
        session_keys: keys,
    }
}

fn cases() -> Vec<Case> {
    let min = "INTERVAL '1' MINUTE";
    vec![
        tumble(
            "tumble count global",
            "SELECT {W} AS window_start, COUNT(*) AS n FROM {FROM} GROUP BY {W}",
            min,
        ),
        tumble(
            "tumble count/sum/avg/min/max per card",
            "SELECT {W} AS window_start, card_id, COUNT(*) AS n, SUM(amount) AS total, AVG(amount) AS mean, \
             MIN(amount) AS lo, MAX(amount) AS hi FROM {FROM} GROUP BY {W}, card_id",
            min,
        ),
        tumble(
            "tumble window_end expression and key first",
            "SELECT card_id, {W} AS window_start, {W} + INTERVAL '5' MINUTE AS window_end, SUM(amount) AS total \
             FROM {FROM} GROUP BY card_id, {W}",
            "INTERVAL '5' MINUTE",
        ),
        tumble(
            "tumble count distinct",
            "SELECT {W} AS window_start, card_id, COUNT(DISTINCT country) AS countries, \
             COUNT(DISTINCT merchant_id) AS merchants FROM {FROM} GROUP BY {W}, card_id",
            "INTERVAL '10' MINUTE",
        ),
        tumble(
            "tumble approx_percentile_cont",
            "SELECT {W} AS window_start, card_id, approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY amount) AS p50 \
             FROM {FROM} GROUP BY {W}, card_id",
            min,
        ),
        tumble(
            "tumble HAVING",
            "SELECT {W} AS window_start, country, COUNT(*) AS n FROM {FROM} GROUP BY {W}, country HAVING COUNT(*) > 3",
            min,
        ),
        tumble(
            "tumble WHERE before, arithmetic after",
            "SELECT {W} AS window_start, card_id, SUM(amount) / COUNT(*) AS mean, MAX(amount) - MIN(amount) AS spread \
             FROM {FROM} WHERE country <> 'US' AND amount > 20 GROUP BY {W}, card_id",
            "INTERVAL '2' MINUTE",
        ),
        tumble(
            "tumble FILTER clause and CASE",
            "SELECT {W} AS window_start, COUNT(*) FILTER (WHERE amount > 200) AS big, \
             SUM(CASE WHEN country = 'FR' THEN amount ELSE 0 END) AS fr_total FROM {FROM} GROUP BY {W}",
            min,
        ),
        tumble(
            "tumble two keys",
            "SELECT {W} AS window_start, card_id, country, COUNT(*) AS n, SUM(qty) AS q FROM {FROM} \
             GROUP BY {W}, card_id, country",
            "INTERVAL '3' MINUTE",
        ),
        tumble(
            "tumble expression key",
            "SELECT {W} AS window_start, card_id % 3 AS bucket, COUNT(*) AS n FROM {FROM} GROUP BY {W}, card_id % 3",
            min,
        ),
        tumble(
            "tumble nullable column and timestamps",
            "SELECT {W} AS window_start, COUNT(qty) AS with_qty, SUM(qty) AS q, AVG(qty) AS mean_qty, \
             MIN(ts) AS first_ts, MAX(ts) AS last_ts FROM {FROM} GROUP BY {W}",
            "INTERVAL '30' SECOND",
        ),
        tumble(
            "tumble stddev and variance",
            "SELECT {W} AS window_start, country, stddev(amount) AS sd, var_pop(amount) AS vp FROM {FROM} GROUP BY {W}, country",
            "INTERVAL '10' MINUTE",
        ),
        tumble(
            "tumble bool_or and utf8 min",
            "SELECT {W} AS window_start, card_id, bool_or(amount > 400) AS any_big, MIN(country) AS first_country \
             FROM {FROM} GROUP BY {W}, card_id",
            "INTERVAL '4' MINUTE",
        ),
        tumble(
            "tumble over a subquery with a UDF key",
            "SELECT {W} AS window_start, masked, SUM(a2) AS total FROM \
             (SELECT mask_card(CAST(card_id + 4000000000000000 AS VARCHAR)) AS masked, amount * 2 AS a2, ts FROM txns) AS src \
             GROUP BY {W}, masked",
            min,
        ),
        tumble(
            "tumble one-hour windows",
            "SELECT {W} AS window_start, merchant_id, COUNT(*) AS n, MAX(amount) AS hi FROM {FROM} GROUP BY {W}, merchant_id",
            "INTERVAL '1' HOUR",
        ),
        hop(
            "hop count per card",
            "SELECT {W} AS window_start, card_id, COUNT(*) AS n FROM {FROM} GROUP BY {W}, card_id",
            10_000,
            60_000,
        ),
        hop(
            "hop sum/avg/max per country",
            "SELECT {W} AS window_start, country, SUM(amount) AS total, AVG(amount) AS mean, MAX(amount) AS hi \
             FROM {FROM} GROUP BY {W}, country",
            30_000,
            120_000,
        ),
        hop(
            "hop count distinct",
            "SELECT {W} AS window_start, card_id, COUNT(DISTINCT merchant_id) AS merchants FROM {FROM} GROUP BY {W}, card_id",
            60_000,
            300_000,
        ),
        hop(
            "hop size not a multiple of slide",
            "SELECT {W} AS window_start, COUNT(*) AS n, MIN(amount) AS lo FROM {FROM} GROUP BY {W}",
            20_000,
            50_000,
        ),
        hop(
            "hop global with HAVING",
            "SELECT {W} AS window_start, COUNT(*) AS n, SUM(qty) AS q FROM {FROM} GROUP BY {W} HAVING SUM(qty) > 10",
            5_000,
            30_000,
        ),
        hop(
            "hop with WHERE and FILTER",
            "SELECT {W} AS window_start, card_id, COUNT(*) FILTER (WHERE country = 'US') AS us, SUM(amount) AS total \
             FROM {FROM} WHERE amount > 100 GROUP BY {W}, card_id",
            15_000,
            45_000,
        ),
        session(
            "session per card",
            "SELECT {W} AS window_start, card_id, COUNT(*) AS n, SUM(amount) AS total, MIN(ts) AS first_ts, \
             MAX(ts) + INTERVAL '30' SECOND AS window_end FROM {FROM} GROUP BY {W}, card_id",
            30_000,
            "card_id",
        ),
        session(
            "session global",
            "SELECT {W} AS window_start, COUNT(*) AS n, MAX(amount) AS hi FROM {FROM} GROUP BY {W}",
            3_000,
            "",
        ),
        session(
            "session per country with count distinct",
            "SELECT {W} AS window_start, country, COUNT(DISTINCT card_id) AS cards, AVG(amount) AS mean \
             FROM {FROM} GROUP BY {W}, country",
            10_000,
            "country",
        ),
        Case {
            from: "(SELECT * FROM txns WHERE amount > 250)",
            ..session(
                "session over filtered rows, two keys",
                "SELECT {W} AS window_start, card_id, country, COUNT(*) AS n, SUM(qty) AS q \
                 FROM {FROM} GROUP BY {W}, card_id, country",
                60_000,
                "card_id, country",
            )
        },
        session(
            "session with HAVING and arithmetic",
            "SELECT {W} AS window_start, merchant_id, COUNT(*) AS n, MAX(ts) - MIN(ts) AS span \
             FROM {FROM} GROUP BY {W}, merchant_id HAVING COUNT(*) >= 2",
            120_000,
            "merchant_id",
        ),
    ]
}

#[test]
fn streaming_windows_match_batch_queries() {
    let seeds: Vec<u64> = match std::env::var("SHOAL_ORACLE_SEED") {
        Ok(s) => vec![s.parse().expect("SHOAL_ORACLE_SEED is a number")],
        Err(_) => vec![1, 2],
    };
    let cases = cases();
    assert!(cases.len() >= 25, "the oracle needs at least 25 queries");
    for seed in seeds {
        for c in &cases {
            check(c.name, &c.stream_sql(), &c.batch_sql(), seed);
        }
    }
}

/// Run a two-input query as a stream: batches of `a` and `b` interleaved;
/// the watermark is the minimum over both inputs (as the input gate
/// computes it); a snapshot/restore halfway.
fn run_join_stream(
    sql: &str,
    a: &[RecordBatch],
    b: &[RecordBatch],
    mode: Restore,
) -> Vec<RecordBatch> {
    let dir = CheckpointDir::new();
    let inputs = [("a".to_string(), schema()), ("b".to_string(), schema())];
    let q = compile_query(sql, &inputs).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut op = QueryOperator::new(q.clone());
    let mut out = Collector::default();
    let mut max_ts = [i64::MIN; 2];
    let mut last_wm = i64::MIN;
    let steps = a.len().max(b.len());
    for i in 0..steps {
        if std::env::var("SHOAL_ORACLE_NO_RESTORE").is_err() {
            checkpoint_step(&mut op, &q, i, steps, mode, &dir);
        }
        for (input, batches) in [a, b].into_iter().enumerate() {
            let Some(batch) = batches.get(i) else {
                max_ts[input] = i64::MAX; // ended
                continue;
            };
            op.process_batch(input, batch.clone(), &mut out).unwrap();
            let ts = batch
                .column(5)
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .unwrap();
            max_ts[input] = max_ts[input].max(arrow::compute::max(ts).unwrap());
        }
        let wm = max_ts[0].min(max_ts[1]).saturating_sub(MAX_DELAY);
        if wm > last_wm && wm < i64::MAX - MAX_DELAY {
            op.on_watermark(wm, &mut out).unwrap();
            last_wm = wm;
        }
    }
    op.on_end(&mut out).unwrap();
    assert!(
        out.dead_letters().is_empty(),
        "{sql}: input within the allowed delay produced late rows"
    );
    out.take_batches()
}

fn run_join_batch(sql: &str, a: &[RecordBatch], b: &[RecordBatch]) -> Vec<RecordBatch> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ctx = sql_context();
        for (name, rows) in [("a", a), ("b", b)] {
            let table = MemTable::try_new(schema(), vec![rows.to_vec()]).unwrap();
            ctx.register_table(name, Arc::new(table)).unwrap();
        }
        let df = ctx.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        df.collect().await.unwrap_or_else(|e| panic!("{sql}: {e}"))
    })
}

fn join_cases() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "interval join on a key, symmetric bound",
            "SELECT a.card_id, a.amount, b.amount AS b_amount, a.ts, b.ts AS b_ts, a.merchant_id, b.merchant_id AS b_merchant \
             FROM a JOIN b ON a.card_id = b.card_id \
             AND a.ts BETWEEN b.ts - INTERVAL '10' SECOND AND b.ts + INTERVAL '10' SECOND",
        ),
        (
            "interval join, asymmetric bound and an extra condition",
            "SELECT a.card_id, a.ts, b.ts AS b_ts, a.amount - b.amount AS diff, a.merchant_id, b.merchant_id AS bm \
             FROM a JOIN b ON a.card_id = b.card_id AND a.ts >= b.ts AND a.ts < b.ts + INTERVAL '30' SECOND \
             AND a.amount > b.amount",
        ),
        (
            "interval join on two keys",
            "SELECT a.card_id, a.country, a.ts, b.ts AS b_ts, a.merchant_id, b.merchant_id AS bm FROM a JOIN b \
             ON a.card_id = b.card_id AND a.country = b.country \
             AND b.ts BETWEEN a.ts - INTERVAL '1' MINUTE AND a.ts + INTERVAL '20' SECOND",
        ),
        (
            "interval join of a filtered subquery, with a projection",
            "SELECT x.card_id, x.big, b.country, x.ts, b.ts AS b_ts, x.merchant_id, b.merchant_id AS bm FROM \
             (SELECT card_id, amount * 2 AS big, ts, merchant_id FROM a WHERE amount > 100) AS x \
             JOIN b ON x.card_id = b.card_id AND x.ts BETWEEN b.ts - INTERVAL '15' SECOND AND b.ts + INTERVAL '15' SECOND \
             WHERE b.country <> 'US'",
        ),
        (
            "interval join without an equality key",
            "SELECT a.card_id, b.card_id AS b_card, a.ts, b.ts AS b_ts, a.merchant_id, b.merchant_id AS bm FROM a JOIN b \
             ON a.ts BETWEEN b.ts - INTERVAL '1' SECOND AND b.ts + INTERVAL '1' SECOND",
        ),
    ]
}

#[test]
fn interval_joins_match_batch_queries() {
    let seed: u64 = std::env::var("SHOAL_ORACLE_SEED")
        .map(|s| s.parse().expect("SHOAL_ORACLE_SEED is a number"))
        .unwrap_or(7);
    let a = input(seed, 2_000);
    let b = input(seed + 1_000, 2_000);
    for (name, sql) in join_cases() {
        let expected = rows(&run_join_batch(sql, &a, &b));
        for mode in [Restore::Once, Restore::Keyed] {
            let streamed = rows(&run_join_stream(sql, &a, &b, mode));
            compare(
                &format!("{name} ({mode:?} restore)"),
                &streamed,
                &expected,
                seed,
            );
        }
    }
}

#[test]
fn oracle_has_at_least_25_queries() {
    assert!(cases().len() + join_cases().len() + lookup_cases().len() >= 25);
}

/// The first join case checked by brute force, independently of DataFusion.
#[test]
fn interval_join_matches_a_nested_loop() {
    let a = input(3, 600);
    let b = input(4, 600);
    let flat = |bs: &[RecordBatch]| -> Vec<(i64, i64)> {
        bs.iter()
            .flat_map(|x| {
                let c = x
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .clone();
                let t = x
                    .column(5)
                    .as_any()
                    .downcast_ref::<TimestampMillisecondArray>()
                    .unwrap()
                    .clone();
                (0..x.num_rows()).map(move |i| (c.value(i), t.value(i)))
            })
            .collect()
    };
    let (fa, fb) = (flat(&a), flat(&b));
    let expected = fa
        .iter()
        .flat_map(|x| fb.iter().map(move |y| (x, y)))
        .filter(|(x, y)| x.0 == y.0 && x.1 >= y.1 - 10_000 && x.1 <= y.1 + 10_000)
        .count();
    let sql = join_cases()[0].1;
    let out = run_join_stream(sql, &a, &b, Restore::Keyed);
    for batch in &out {
        let ta = batch
            .column(3)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .unwrap();
        let tb = batch
            .column(4)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .unwrap();
        for i in 0..batch.num_rows() {
            assert!(
                (ta.value(i) - tb.value(i)).abs() <= 10_000,
                "a row outside the bound: {:?}",
                batch.slice(i, 1)
            );
        }
    }
    let mut got: Vec<(i64, i64, i64)> = Vec::new();
    for batch in &out {
        let c = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let ta = batch
            .column(3)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .unwrap();
        let tb = batch
            .column(4)
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .unwrap();
        for i in 0..batch.num_rows() {
            got.push((c.value(i), ta.value(i), tb.value(i)));
        }
    }
    let mut want: Vec<(i64, i64, i64)> = fa
        .iter()
        .flat_map(|x| fb.iter().map(move |y| (x, y)))
        .filter(|(x, y)| x.0 == y.0 && x.1 >= y.1 - 10_000 && x.1 <= y.1 + 10_000)
        .map(|(x, y)| (x.0, x.1, y.1))
        .collect();
    got.sort();
    want.sort();
    let extra: Vec<_> = got.iter().filter(|g| !want.contains(g)).take(5).collect();
    let missing: Vec<_> = want.iter().filter(|w| !got.contains(w)).take(5).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "extra {extra:?} missing {missing:?} of {}",
        got.len()
    );
    let streamed: usize = out.iter().map(|b| b.num_rows()).sum();
    let batch: usize = run_join_batch(sql, &a, &b)
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!((streamed, batch), (expected, expected));
}

/// A merchants table for lookup joins: some merchants of the input are
/// missing, some appear twice, one row has no key.
fn merchants_csv() -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("shoal-oracle-merchants-{}.csv", std::process::id()));
    let categories = ["grocery", "travel", "electronics", "fuel"];
    let mut text = String::from("merchant_id,category,risk,country\n");
    for m in 0..40i64 {
        if m % 7 == 3 {
            continue;
        }
        let c = categories[(m % 4) as usize];
        text.push_str(&format!(
            "{m},{c},{},{}\n",
            (m * 37 % 100) as f64 / 100.0,
            ["US", "FR"][(m % 2) as usize]
        ));
        if m % 11 == 5 {
            text.push_str(&format!("{m},duplicate,0.5,DE\n"));
        }
    }
    text.push_str(",nokey,0.9,US\n");
    std::fs::write(&path, text).unwrap();
    path
}

fn lookup_cases() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "lookup inner join",
            "SELECT t.card_id, t.amount, t.ts, m.category, m.risk FROM txns t \
             JOIN merchants m ON t.merchant_id = m.merchant_id",
        ),
        (
            "lookup left join keeps unmatched rows",
            "SELECT t.card_id, t.merchant_id, t.ts, m.category FROM txns t \
             LEFT JOIN merchants m ON t.merchant_id = m.merchant_id",
        ),
        (
            "lookup join with the table on the left and two keys",
            "SELECT t.card_id, t.ts, m.category FROM merchants m \
             JOIN txns t ON t.merchant_id = m.merchant_id AND t.country = m.country",
        ),
        (
            "lookup join with conditions on both sides",
            "SELECT t.card_id, t.amount * m.risk AS weighted, t.ts FROM txns t \
             JOIN merchants m ON t.merchant_id = m.merchant_id AND t.amount > m.risk * 300 \
             WHERE m.category <> 'fuel' AND t.country <> 'JP'",
        ),
        (
            "tumbling window over a lookup join",
            "SELECT tumble(t.ts, INTERVAL '1' MINUTE) AS w, m.category, COUNT(*) AS n, SUM(t.amount) AS total \
             FROM txns t JOIN merchants m ON t.merchant_id = m.merchant_id \
             GROUP BY tumble(t.ts, INTERVAL '1' MINUTE), m.category",
        ),
    ]
}

#[test]
fn lookup_joins_match_batch_queries() {
    let path = merchants_csv();
    let table = LookupTable::open(LookupTableSpec {
        name: "merchants".into(),
        path: path.clone(),
        refresh: None,
        schema: None, // inferred: must agree with the declared batch schema below
    })
    .unwrap();
    let input = input(11, 3_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (name, sql) in lookup_cases() {
        let streamed = run_stream_with(sql, &input, std::slice::from_ref(&table), Restore::Once);
        // Batch: the same rows, the CSV through DataFusion's own reader.
        let batch_sql = sql;
        let expected = rt.block_on(async {
            let ctx = sql_context();
            let t = MemTable::try_new(schema(), vec![input.clone()]).unwrap();
            ctx.register_table("txns", Arc::new(t)).unwrap();
            let m = Schema::new(vec![
                Field::new("merchant_id", DataType::Int64, true),
                Field::new("category", DataType::Utf8, true),
                Field::new("risk", DataType::Float64, true),
                Field::new("country", DataType::Utf8, true),
            ]);
            let opts = datafusion::prelude::CsvReadOptions::new().schema(&m);
            ctx.register_csv("merchants", path.to_str().unwrap(), opts)
                .await
                .unwrap();
            let df = ctx
                .sql(batch_sql)
                .await
                .unwrap_or_else(|e| panic!("{batch_sql}: {e}"));
            df.collect().await.unwrap()
        });
        compare(name, &rows(&streamed), &rows(&expected), 11);
    }
    let _ = std::fs::remove_file(path);
}
