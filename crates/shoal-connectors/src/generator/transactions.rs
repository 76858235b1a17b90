//! The `transactions` profile: card transactions with a fraud label.
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `txn_id` | utf8 | `txn-` + 10-digit index |
//! | `card_id` | int64 | one of 10 000 cards |
//! | `merchant_id` | int64 | one of 5 000 merchants (0–49 are high-risk) |
//! | `amount` | float64 | log-normal, median ≈ 33; fraud median ≈ 400 |
//! | `country` | utf8 | the card's home country, sometimes another |
//! | `ts` | timestamp(ms) | 2026-01-01 + 10 ms per record, up to 2 s out of order (`clock: wall`: the wall clock when made, in order) |
//! | `is_fraud` | bool | the label: about 1 % of records |
//!
//! Fraudulent records are more often foreign, larger and at high-risk
//! merchants, so a model can learn them from the features.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{GeneratorConfig as GeneratorSource, GeneratorProfile};
use arrow::array::{
    BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use futures::future::BoxFuture;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use shoal_dsl::EventTimeSpec;
use shoal_runtime::{Result, Source, SourceContext};

use super::CHUNK;
use super::nexmark::{NexmarkBuilders, nexmark_schema};
use crate::event_time::EventTime;

/// Event time of record 0: 2026-01-01T00:00:00Z.
pub const BASE_TS_MS: i64 = 1_767_225_600_000;
const CARDS: u64 = 10_000;
const MERCHANTS: u64 = 5_000;
const RISKY_MERCHANTS: u64 = 50;
const COUNTRIES: [&str; 8] = ["US", "GB", "DE", "FR", "BR", "IN", "JP", "NG"];

/// The schema of the `transactions` profile.
pub fn transactions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("txn_id", DataType::Utf8, false),
        Field::new("card_id", DataType::Int64, false),
        Field::new("merchant_id", DataType::Int64, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("country", DataType::Utf8, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
        Field::new("is_fraud", DataType::Boolean, false),
    ]))
}

/// The schema a generator of `profile` produces.
pub fn generator_schema(profile: GeneratorProfile) -> SchemaRef {
    match profile {
        GeneratorProfile::Transactions => transactions_schema(),
        GeneratorProfile::Nexmark => nexmark_schema(),
    }
}

/// The card's home country: most cards are American.
fn home_country(card: u64) -> usize {
    let h = card.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    if h % 100 < 60 {
        0
    } else {
        1 + (h as usize % (COUNTRIES.len() - 1))
    }
}

/// One instance of a generator (any profile; the name is historical).
pub struct TransactionGenerator {
    profile: GeneratorProfile,
    seed: u64,
    count: Option<u64>,
    rate: Option<f64>,
    batch_size: usize,
    event_time: Option<EventTimeSpec>,
    schema: SchemaRef,
    id_buf: String,
    /// Event times from the wall clock (`clock: wall`).
    wall_clock: bool,
    /// Where to resume: (chunk, next record index), from a checkpoint.
    resume: Option<(u64, u64)>,
}

impl TransactionGenerator {
    /// A generator for `spec`.
    pub fn new(spec: &GeneratorSource) -> Self {
        Self {
            profile: spec.profile,
            seed: spec.seed,
            count: spec.count,
            rate: spec.rate,
            batch_size: spec.batch_size.max(1),
            event_time: spec.event_time.clone(),
            schema: generator_schema(spec.profile),
            id_buf: String::with_capacity(16),
            wall_clock: spec.wall_clock,
            resume: None,
        }
    }

    /// Generate records `start..end` (within one chunk) into the builders.
    fn fill(&mut self, start: u64, end: u64, b: &mut Builders) {
        let chunk = start / CHUNK;
        let mut rng =
            Pcg64Mcg::seed_from_u64(self.seed ^ chunk.wrapping_mul(0xA076_1D64_78BD_642F));
        // Skip to `start` within the chunk so results do not depend on batch boundaries.
        for _ in chunk * CHUNK..start {
            draw(&mut rng);
        }
        let now_ms = self.wall_clock.then(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64)
        });
        for i in start..end {
            let d = draw(&mut rng);
            let fraud = d.fraud < 0.01;
            let card = d.card % CARDS;
            let home = home_country(card);
            let foreign = d.foreign < if fraud { 0.7 } else { 0.03 };
            let country = if foreign {
                (home + 1 + (d.card as usize >> 20) % (COUNTRIES.len() - 1)) % COUNTRIES.len()
            } else {
                home
            };
            let merchant = if fraud && d.risky < 0.5 {
                d.merchant % RISKY_MERCHANTS
            } else {
                d.merchant % MERCHANTS
            };
            let amount = if fraud {
                log_normal(6.0, 0.8, d.amount)
            } else {
                log_normal(3.5, 1.0, d.amount)
            };
            self.id_buf.clear();
            let _ = write!(self.id_buf, "txn-{i:010}");
            b.txn_id.append_value(&self.id_buf);
            b.card_id.append_value(card as i64);
            b.merchant_id.append_value(merchant as i64);
            b.amount.append_value((amount * 100.0).round() / 100.0);
            b.country.append_value(COUNTRIES[country]);
            let ts = match now_ms {
                Some(now) => now,
                None => BASE_TS_MS + i as i64 * 10 + (d.jitter % 2_000) as i64,
            };
            b.ts.append_value(ts);
            b.is_fraud.append_value(fraud);
        }
    }
}

/// The random draws behind one record (a fixed number per record).
struct Draw {
    fraud: f64,
    card: u64,
    foreign: f64,
    merchant: u64,
    risky: f64,
    amount: [f64; 2],
    jitter: u64,
}

fn draw(rng: &mut Pcg64Mcg) -> Draw {
    Draw {
        fraud: rng.random(),
        card: rng.random(),
        foreign: rng.random(),
        merchant: rng.random(),
        risky: rng.random(),
        amount: [rng.random(), rng.random()],
        jitter: rng.random(),
    }
}

/// A log-normal sample from two uniforms (Box–Muller), so every record
/// consumes a fixed number of draws.
fn log_normal(mu: f64, sigma: f64, u: [f64; 2]) -> f64 {
    let u1 = u[0].max(f64::MIN_POSITIVE);
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u[1]).cos();
    (mu + sigma * z).exp()
}

/// The column builders of the generator's profile.
enum Batcher {
    Transactions(Builders),
    Nexmark(NexmarkBuilders),
}

struct Builders {
    txn_id: StringBuilder,
    card_id: Int64Builder,
    merchant_id: Int64Builder,
    amount: Float64Builder,
    country: StringBuilder,
    ts: TimestampMillisecondBuilder,
    is_fraud: BooleanBuilder,
}

impl Builders {
    fn new(n: usize) -> Self {
        Self {
            txn_id: StringBuilder::with_capacity(n, n * 14),
            card_id: Int64Builder::with_capacity(n),
            merchant_id: Int64Builder::with_capacity(n),
            amount: Float64Builder::with_capacity(n),
            country: StringBuilder::with_capacity(n, n * 2),
            ts: TimestampMillisecondBuilder::with_capacity(n),
            is_fraud: BooleanBuilder::with_capacity(n),
        }
    }

    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        Ok(RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(self.txn_id.finish()),
                Arc::new(self.card_id.finish()),
                Arc::new(self.merchant_id.finish()),
                Arc::new(self.amount.finish()),
                Arc::new(self.country.finish()),
                Arc::new(self.ts.finish()),
                Arc::new(self.is_fraud.finish()),
            ],
        )?)
    }
}

impl Source for TransactionGenerator {
    fn restore(&mut self, states: &[serde_json::Value], instance: usize) -> Result<()> {
        let Some(state) = states.get(instance).filter(|s| !s.is_null()) else {
            return Ok(());
        };
        let (Some(chunk), Some(pos)) = (state["chunk"].as_u64(), state["pos"].as_u64()) else {
            return Err(shoal_runtime::RuntimeError::User(format!(
                "generator state is not a position: {state}"
            )));
        };
        self.resume = Some((chunk, pos));
        Ok(())
    }

    fn run<'a>(mut self: Box<Self>, ctx: &'a mut SourceContext) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let (instance, parallelism) = (ctx.instance as u64, ctx.parallelism as u64);
            let rate = self.rate.map(|r| r / parallelism as f64);
            // At a set rate, send at least ten batches a second so output is smooth.
            let batch_size = match rate {
                Some(r) => self.batch_size.min(((r / 10.0) as usize).max(1)),
                None => self.batch_size,
            };
            let mut event_time = match &self.event_time {
                Some(spec) => Some(EventTime::new(spec, &self.schema, 1)?),
                None => None,
            };
            let mut builders = match self.profile {
                GeneratorProfile::Transactions => Batcher::Transactions(Builders::new(batch_size)),
                GeneratorProfile::Nexmark => Batcher::Nexmark(NexmarkBuilders::new(batch_size)),
            };
            let started = Instant::now();
            let mut emitted: u64 = 0;
            let (mut chunk, mut pos) = self.resume.unwrap_or((instance, instance * CHUNK)); // next record
            'outer: loop {
                let mut rows = 0usize;
                while rows < batch_size {
                    let chunk_end = (chunk + 1) * CHUNK;
                    let limit = self.count.map_or(chunk_end, |c| c.min(chunk_end));
                    if pos >= limit {
                        if self.count.is_some_and(|c| chunk_end >= c) {
                            if rows == 0 {
                                break 'outer;
                            }
                            break;
                        }
                        chunk += parallelism;
                        pos = chunk * CHUNK;
                        continue;
                    }
                    let end = limit.min(pos + (batch_size - rows) as u64);
                    match &mut builders {
                        Batcher::Transactions(b) => self.fill(pos, end, b),
                        Batcher::Nexmark(b) => b.fill(self.seed, pos, end),
                    }
                    rows += (end - pos) as usize;
                    pos = end;
                }
                let batch = match &mut builders {
                    Batcher::Transactions(b) => b.finish(&self.schema)?,
                    Batcher::Nexmark(b) => b.finish(&self.schema)?,
                };
                if let Some(et) = &mut event_time {
                    et.observe(0, &batch);
                }
                ctx.emit(batch).await?;
                ctx.set_state(serde_json::json!({ "chunk": chunk, "pos": pos }));
                if let Some(et) = &event_time {
                    et.emit(ctx).await?;
                }
                emitted += rows as u64;
                if ctx.is_cancelled() {
                    break;
                }
                if let Some(r) = rate {
                    let due = Duration::from_secs_f64(emitted as f64 / r);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = ctx.cancel_token().cancelled() => break,
                        }
                    }
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, StringArray};

    fn gen_all(seed: u64, count: u64, batch: usize) -> Vec<String> {
        let spec = GeneratorSource {
            profile: Default::default(),
            seed,
            count: Some(count),
            rate: None,
            batch_size: batch,
            parallelism: 1,
            event_time: None,
            wall_clock: false,
        };
        let mut g = TransactionGenerator::new(&spec);
        let mut b = Builders::new(batch);
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < count {
            let end = (pos + batch as u64)
                .min(count)
                .min((pos / CHUNK + 1) * CHUNK);
            g.fill(pos, end, &mut b);
            pos = end;
            let batch = b.finish(&g.schema).unwrap();
            let ids = batch
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            for r in 0..batch.num_rows() {
                out.push(format!(
                    "{}:{:?}",
                    ids.value(r),
                    arrow::util::display::array_value_to_string(batch.column(3), r)
                ));
            }
        }
        out
    }

    #[test]
    fn same_seed_same_records_whatever_the_batch_size() {
        let a = gen_all(42, 3000, 100);
        let b = gen_all(42, 3000, 4096);
        assert_eq!(a, b);
        assert_ne!(a, gen_all(43, 3000, 100));
        assert_eq!(a.len(), 3000);
    }

    #[test]
    fn fraud_rate_is_about_one_percent() {
        let spec = GeneratorSource {
            profile: Default::default(),
            seed: 7,
            count: Some(100_000),
            rate: None,
            batch_size: 1024,
            parallelism: 1,
            event_time: None,
            wall_clock: false,
        };
        let mut g = TransactionGenerator::new(&spec);
        let mut frauds = 0;
        for c in 0..(100_000 / CHUNK) {
            let mut b = Builders::new(1024);
            g.fill(c * CHUNK, (c + 1) * CHUNK, &mut b);
            let batch = b.finish(&g.schema).unwrap();
            let f = batch
                .column(6)
                .as_any()
                .downcast_ref::<arrow::array::BooleanArray>()
                .unwrap();
            frauds += f.true_count();
            assert_eq!(f.null_count(), 0);
        }
        assert!((700..1300).contains(&frauds), "{frauds} frauds in ~100k");
    }
}
