//! Helpers for the unit tests of streaming operators: feed a
//! [`QueryOperator`] batches and watermarks as a source with `max_delay`
//! would, run the same SQL as a DataFusion batch query, and count the rows
//! that differ.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::MemTable;
use shoal_runtime::{Collector, DeadLetter, Operator};

use crate::query::{QueryOperator, compile_query};

/// A tiny deterministic generator for test data.
pub(crate) struct Lcg(pub(crate) u64);

impl Lcg {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

/// What arrives at an operator.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Batch(RecordBatch),
    Watermark(i64),
}

/// `batches` as a source with event-time column `ts` and `max_delay` sends
/// them: after each batch the watermark, the largest event time seen minus
/// the delay.
pub(crate) fn with_delay(batches: &[RecordBatch], ts: &str, max_delay: i64) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut max = i64::MIN;
    for b in batches {
        let col = arrow::compute::cast(
            b.column_by_name(ts).expect("event-time column"),
            &arrow::datatypes::DataType::Int64,
        )
        .expect("event time as int64");
        let col = col
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .expect("int64");
        if let Some(m) = arrow::compute::max(col) {
            max = max.max(m);
        }
        steps.push(Step::Batch(b.clone()));
        if max != i64::MIN {
            steps.push(Step::Watermark(max - max_delay));
        }
    }
    steps
}

/// `rows` cut into batches of `size`.
pub(crate) fn slices(rows: &RecordBatch, size: usize) -> Vec<RecordBatch> {
    (0..rows.num_rows())
        .step_by(size)
        .map(|at| rows.slice(at, size.min(rows.num_rows() - at)))
        .collect()
}

/// What an operator emitted.
#[derive(Debug, Default)]
pub(crate) struct Streamed {
    pub(crate) out: Vec<RecordBatch>,
    pub(crate) dead: Vec<DeadLetter>,
}

impl Streamed {
    pub(crate) fn rows(&self) -> usize {
        self.out.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Run `sql` over one input `name` (`event_time`: the column watermarks
/// refer to) through a [`QueryOperator`], then end the input.
pub(crate) fn stream(
    sql: &str,
    name: &str,
    schema: &SchemaRef,
    event_time: Option<&str>,
    steps: &[Step],
) -> Streamed {
    let mut q = compile_query(sql, &[(name.to_string(), schema.clone())]).expect("compiles");
    if let Some(et) = event_time {
        q.set_event_time(et).expect("event time");
    }
    let mut op = QueryOperator::new(q).with_node("t");
    let mut out = Collector::default();
    for s in steps {
        match s {
            Step::Batch(b) => op.process_batch(0, b.clone(), &mut out).expect("batch"),
            Step::Watermark(w) => op.on_watermark(*w, &mut out).expect("watermark"),
        }
    }
    op.on_end(&mut out).expect("end");
    Streamed {
        out: out.take_batches(),
        dead: out.dead_letters().to_vec(),
    }
}

/// `sql` as a DataFusion batch query over `rows` registered as `name`.
pub(crate) fn batch(sql: &str, name: &str, rows: &[RecordBatch]) -> Vec<RecordBatch> {
    let ctx = crate::context::sql_context();
    let schema = rows[0].schema();
    let table = MemTable::try_new(schema, vec![rows.to_vec()]).expect("table");
    ctx.register_table(name, Arc::new(table)).expect("register");
    // Larger inputs make DataFusion spawn tasks: give it a runtime.
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(async { ctx.sql(sql).await?.collect().await })
        .expect("batch query")
}

/// Rows by the values of the `key` columns; every column as text.
fn by_key(batches: &[RecordBatch], key: &[&str]) -> BTreeMap<Vec<String>, Vec<Vec<String>>> {
    let opts = FormatOptions::default().with_null("NULL");
    let mut rows: BTreeMap<Vec<String>, Vec<Vec<String>>> = BTreeMap::new();
    for b in batches {
        let fmts: Vec<ArrayFormatter> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).expect("formatter"))
            .collect();
        let names: Vec<&str> = b
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        for r in 0..b.num_rows() {
            let row: Vec<String> = fmts.iter().map(|f| f.value(r).to_string()).collect();
            let k = key
                .iter()
                .map(|k| {
                    let i = names.iter().position(|n| n == k).expect("key column");
                    row[i].clone()
                })
                .collect();
            rows.entry(k).or_default().push(row);
        }
    }
    rows
}

/// How many rows of `got` and `want` differ, matched by the `key` columns
/// (a row missing on either side counts once).
pub(crate) fn wrong_rows(got: &[RecordBatch], want: &[RecordBatch], key: &[&str]) -> usize {
    let (g, w) = (by_key(got, key), by_key(want, key));
    let mut wrong = 0;
    for (k, rows) in &w {
        match g.get(k) {
            Some(other) => {
                let (mut a, mut b) = (rows.clone(), other.clone());
                a.sort();
                b.sort();
                wrong += a.len().max(b.len()) - a.iter().zip(&b).filter(|(x, y)| x == y).count();
            }
            None => wrong += rows.len(),
        }
    }
    wrong += g
        .iter()
        .filter(|(k, _)| !w.contains_key(*k))
        .map(|(_, r)| r.len())
        .sum::<usize>();
    wrong
}

/// Two queries chained as two `sql` transforms: `first` over the input
/// `name`, `second` over `first`'s output `mid`, the watermark `first`
/// forwards going to `second`. Both are told the stream's event time is
/// `event_time` (as the planner does). Returns what each emitted.
pub(crate) fn stream_chain(
    first: &str,
    name: &str,
    schema: &SchemaRef,
    second: &str,
    mid: &str,
    event_time: &str,
    steps: &[Step],
) -> crate::Result<(Streamed, Streamed)> {
    let mut q1 = compile_query(first, &[(name.to_string(), schema.clone())])?;
    q1.set_event_time(event_time)?;
    let mut q2 = compile_query(second, &[(mid.to_string(), q1.schema().clone())])?;
    q2.set_event_time(event_time)?;
    let mut a = QueryOperator::new(q1).with_node("first");
    let mut b = QueryOperator::new(q2).with_node("second");
    let (mut out_a, mut out_b) = (Collector::default(), Collector::default());
    let mut firsts = Vec::new();
    let mut forwarded = i64::MIN;
    let mut forward = |a: &QueryOperator,
                       out_a: &mut Collector,
                       b: &mut QueryOperator,
                       out_b: &mut Collector,
                       watermark: Option<i64>| {
        for batch in out_a.take_batches() {
            firsts.push(batch.clone());
            b.process_batch(0, batch, out_b).expect("second: batch");
        }
        if let Some(w) = watermark {
            let w = a.output_watermark(w);
            if w > forwarded {
                forwarded = w;
                b.on_watermark(w, out_b).expect("second: watermark");
            }
        }
    };
    for s in steps {
        match s {
            Step::Batch(batch) => {
                a.process_batch(0, batch.clone(), &mut out_a)
                    .expect("first: batch");
                forward(&a, &mut out_a, &mut b, &mut out_b, None);
            }
            Step::Watermark(w) => {
                a.on_watermark(*w, &mut out_a).expect("first: watermark");
                forward(&a, &mut out_a, &mut b, &mut out_b, Some(*w));
            }
        }
    }
    a.on_end(&mut out_a).expect("first: end");
    forward(&a, &mut out_a, &mut b, &mut out_b, None);
    b.on_end(&mut out_b).expect("second: end");
    let first = Streamed {
        out: firsts,
        dead: out_a.dead_letters().to_vec(),
    };
    let second = Streamed {
        out: out_b.take_batches(),
        dead: out_b.dead_letters().to_vec(),
    };
    Ok((first, second))
}
