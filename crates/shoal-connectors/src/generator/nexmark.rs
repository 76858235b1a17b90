//! The `nexmark` profile: the Nexmark auction benchmark's event stream —
//! persons, auctions and bids in the standard 1 : 3 : 46 mix (every block of
//! 50 events holds 1 person, 3 auctions, 46 bids) — as one flat table, like
//! the `datagen` table of Flink's Nexmark (`event_type` says which columns
//! are set; the others are null).
//!
//! | column | type | set for |
//! |---|---|---|
//! | `event_type` | int32 | all: 0 person, 1 auction, 2 bid |
//! | `person_id`, `name`, `email_address`, `credit_card`, `city`, `state` | int64, utf8… | persons |
//! | `auction_id`, `item_name`, `description`, `initial_bid`, `reserve`, `expires`, `seller`, `category` | int64, utf8, timestamp(ms)… | auctions |
//! | `auction`, `bidder`, `price`, `channel`, `url` | int64, utf8 | bids |
//! | `date_time` | timestamp(ms) | all: 2026-01-01 + 0.1 ms per event (10 000 events per second of event time), in order |
//!
//! As in Nexmark, ids count up (persons and auctions from 1000), bids go
//! mostly to a few "hot" auctions and bidders (ratio 100 : 1), sellers are
//! recent persons, and prices are `round(10^(6u) * 100)` cents.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{Int32Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use shoal_runtime::Result;

use super::CHUNK;
use super::transactions::BASE_TS_MS;

/// Events per block: 1 person, 3 auctions, 46 bids.
const BLOCK: u64 = 50;
const FIRST_ID: i64 = 1000;
/// One in this many bids (and sellers) are not "hot".
const HOT_RATIO: u64 = 100;
/// How many recent auctions / persons bids and sellers choose from.
const RECENT: i64 = 500;
/// Events per millisecond of event time.
const EVENTS_PER_MS: u64 = 10;

const FIRST_NAMES: [&str; 10] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter",
];
const LAST_NAMES: [&str; 10] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
    "Fischer",
];
const CITIES: [&str; 10] = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
const STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];

/// The schema of the `nexmark` profile.
pub fn nexmark_schema() -> SchemaRef {
    let ts = || DataType::Timestamp(TimeUnit::Millisecond, None);
    Arc::new(Schema::new(vec![
        Field::new("event_type", DataType::Int32, false),
        Field::new("person_id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("email_address", DataType::Utf8, true),
        Field::new("credit_card", DataType::Utf8, true),
        Field::new("city", DataType::Utf8, true),
        Field::new("state", DataType::Utf8, true),
        Field::new("auction_id", DataType::Int64, true),
        Field::new("item_name", DataType::Utf8, true),
        Field::new("description", DataType::Utf8, true),
        Field::new("initial_bid", DataType::Int64, true),
        Field::new("reserve", DataType::Int64, true),
        Field::new("expires", ts(), true),
        Field::new("seller", DataType::Int64, true),
        Field::new("category", DataType::Int64, true),
        Field::new("auction", DataType::Int64, true),
        Field::new("bidder", DataType::Int64, true),
        Field::new("price", DataType::Int64, true),
        Field::new("channel", DataType::Utf8, true),
        Field::new("url", DataType::Utf8, true),
        Field::new("date_time", ts(), false),
    ]))
}

/// Column builders for a batch of Nexmark events.
pub(crate) struct NexmarkBuilders {
    event_type: Int32Builder,
    person_id: Int64Builder,
    name: StringBuilder,
    email: StringBuilder,
    card: StringBuilder,
    city: StringBuilder,
    state: StringBuilder,
    auction_id: Int64Builder,
    item: StringBuilder,
    description: StringBuilder,
    initial_bid: Int64Builder,
    reserve: Int64Builder,
    expires: TimestampMillisecondBuilder,
    seller: Int64Builder,
    category: Int64Builder,
    auction: Int64Builder,
    bidder: Int64Builder,
    price: Int64Builder,
    channel: StringBuilder,
    url: StringBuilder,
    date_time: TimestampMillisecondBuilder,
    buf: String,
}

/// The last person / auction id created before event `n`.
fn last_ids(n: u64) -> (i64, i64) {
    let block = (n / BLOCK) as i64;
    let off = n % BLOCK;
    let persons = block + i64::from(off >= 1);
    let auctions = block * 3 + (off.clamp(1, 4) as i64 - 1);
    (FIRST_ID + persons - 1, FIRST_ID + auctions - 1)
}

/// A recent id up to `last`: "hot" (a multiple of `HOT_RATIO`) most of the time.
fn recent(rng: &mut Pcg64Mcg, last: i64) -> i64 {
    let last = last.max(FIRST_ID);
    if rng.random_range(0..HOT_RATIO) > 0 {
        let hot = (last / HOT_RATIO as i64) * HOT_RATIO as i64;
        hot.max(FIRST_ID)
    } else {
        (last - rng.random_range(0..RECENT)).max(FIRST_ID)
    }
}

fn price(rng: &mut Pcg64Mcg) -> i64 {
    (10f64.powf(rng.random::<f64>() * 6.0) * 100.0).round() as i64
}

impl NexmarkBuilders {
    pub(crate) fn new(n: usize) -> Self {
        let s = |bytes| StringBuilder::with_capacity(n, n * bytes);
        Self {
            event_type: Int32Builder::with_capacity(n),
            person_id: Int64Builder::with_capacity(n),
            name: s(2),
            email: s(2),
            card: s(2),
            city: s(1),
            state: s(1),
            auction_id: Int64Builder::with_capacity(n),
            item: s(2),
            description: s(2),
            initial_bid: Int64Builder::with_capacity(n),
            reserve: Int64Builder::with_capacity(n),
            expires: TimestampMillisecondBuilder::with_capacity(n),
            seller: Int64Builder::with_capacity(n),
            category: Int64Builder::with_capacity(n),
            auction: Int64Builder::with_capacity(n),
            bidder: Int64Builder::with_capacity(n),
            price: Int64Builder::with_capacity(n),
            channel: s(6),
            url: s(40),
            date_time: TimestampMillisecondBuilder::with_capacity(n),
            buf: String::with_capacity(64),
        }
    }

    fn nulls_person(&mut self) {
        self.person_id.append_null();
        for b in [
            &mut self.name,
            &mut self.email,
            &mut self.card,
            &mut self.city,
            &mut self.state,
        ] {
            b.append_null();
        }
    }

    fn nulls_auction(&mut self) {
        self.auction_id.append_null();
        self.item.append_null();
        self.description.append_null();
        self.initial_bid.append_null();
        self.reserve.append_null();
        self.expires.append_null();
        self.seller.append_null();
        self.category.append_null();
    }

    fn nulls_bid(&mut self) {
        self.auction.append_null();
        self.bidder.append_null();
        self.price.append_null();
        self.channel.append_null();
        self.url.append_null();
    }

    /// Generate events `start..end` (within one chunk) of generator `seed`.
    pub(crate) fn fill(&mut self, seed: u64, start: u64, end: u64) {
        let chunk = start / CHUNK;
        let mut rng = Pcg64Mcg::seed_from_u64(seed ^ chunk.wrapping_mul(0x9FB2_1C65_1E98_DF25));
        for n in chunk * CHUNK..end {
            // A fixed number of draws per event, so any batch split gives the same events.
            let draws: [u64; 4] = [rng.random(), rng.random(), rng.random(), rng.random()];
            if n < start {
                continue;
            }
            let mut r = Pcg64Mcg::seed_from_u64(draws[0] ^ draws[1].rotate_left(17));
            let ts = BASE_TS_MS + (n / EVENTS_PER_MS) as i64;
            self.date_time.append_value(ts);
            let (last_person, last_auction) = last_ids(n);
            match n % BLOCK {
                0 => {
                    self.event_type.append_value(0);
                    let id = FIRST_ID + (n / BLOCK) as i64;
                    let first = FIRST_NAMES[(draws[2] % 10) as usize];
                    let last = LAST_NAMES[(draws[3] % 10) as usize];
                    self.person_id.append_value(id);
                    self.buf.clear();
                    let _ = write!(self.buf, "{first} {last}");
                    self.name.append_value(&self.buf);
                    self.buf.clear();
                    let _ = write!(
                        self.buf,
                        "{}@{}.com",
                        first.to_lowercase(),
                        last.to_lowercase()
                    );
                    self.email.append_value(&self.buf);
                    self.buf.clear();
                    let c = draws[2] ^ draws[3];
                    let _ = write!(
                        self.buf,
                        "{:04} {:04} {:04} {:04}",
                        c % 10_000,
                        (c >> 16) % 10_000,
                        (c >> 32) % 10_000,
                        (c >> 48) % 10_000
                    );
                    self.card.append_value(&self.buf);
                    self.city
                        .append_value(CITIES[r.random_range(0..CITIES.len())]);
                    self.state
                        .append_value(STATES[r.random_range(0..STATES.len())]);
                    self.nulls_auction();
                    self.nulls_bid();
                }
                1..=3 => {
                    self.event_type.append_value(1);
                    self.nulls_person();
                    let id = FIRST_ID + (n / BLOCK) as i64 * 3 + (n % BLOCK) as i64 - 1;
                    self.auction_id.append_value(id);
                    self.buf.clear();
                    let _ = write!(self.buf, "item-{}", draws[2] % 100_000);
                    self.item.append_value(&self.buf);
                    self.buf.clear();
                    let _ = write!(self.buf, "description of item {id}");
                    self.description.append_value(&self.buf);
                    let initial = price(&mut r);
                    self.initial_bid.append_value(initial);
                    self.reserve.append_value(initial + price(&mut r));
                    self.expires
                        .append_value(ts + r.random_range(10_000..200_000));
                    self.seller.append_value(recent(&mut r, last_person));
                    self.category.append_value(10 + r.random_range(0..5));
                    self.nulls_bid();
                }
                _ => {
                    self.event_type.append_value(2);
                    self.nulls_person();
                    self.nulls_auction();
                    self.auction.append_value(recent(&mut r, last_auction));
                    self.bidder.append_value(recent(&mut r, last_person));
                    self.price.append_value(price(&mut r));
                    let ch = (draws[2] % CHANNELS.len() as u64) as usize;
                    self.channel.append_value(CHANNELS[ch]);
                    self.buf.clear();
                    let _ = write!(
                        self.buf,
                        "https://www.nexmark.com/{}/item.htm?query=1&channel_id={}",
                        CHANNELS[ch].to_lowercase(),
                        draws[3] % 10_000
                    );
                    self.url.append_value(&self.buf);
                }
            }
        }
    }

    pub(crate) fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        Ok(RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(self.event_type.finish()),
                Arc::new(self.person_id.finish()),
                Arc::new(self.name.finish()),
                Arc::new(self.email.finish()),
                Arc::new(self.card.finish()),
                Arc::new(self.city.finish()),
                Arc::new(self.state.finish()),
                Arc::new(self.auction_id.finish()),
                Arc::new(self.item.finish()),
                Arc::new(self.description.finish()),
                Arc::new(self.initial_bid.finish()),
                Arc::new(self.reserve.finish()),
                Arc::new(self.expires.finish()),
                Arc::new(self.seller.finish()),
                Arc::new(self.category.finish()),
                Arc::new(self.auction.finish()),
                Arc::new(self.bidder.finish()),
                Arc::new(self.price.finish()),
                Arc::new(self.channel.finish()),
                Arc::new(self.url.finish()),
                Arc::new(self.date_time.finish()),
            ],
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int32Array, Int64Array};

    fn events(seed: u64, count: u64, batch: u64) -> Vec<RecordBatch> {
        let schema = nexmark_schema();
        let mut b = NexmarkBuilders::new(batch as usize);
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < count {
            let end = (pos + batch).min(count).min((pos / CHUNK + 1) * CHUNK);
            b.fill(seed, pos, end);
            out.push(b.finish(&schema).unwrap());
            pos = end;
        }
        out
    }

    #[test]
    fn mix_is_1_3_46_and_ids_refer_to_earlier_entities() {
        let batches = events(3, 5_000, 700);
        let mut counts = [0usize; 3];
        let mut max_person = 0;
        let mut max_auction = 0;
        for b in &batches {
            let t = b.column(0).as_any().downcast_ref::<Int32Array>().unwrap();
            let person = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
            let auction_id = b.column(7).as_any().downcast_ref::<Int64Array>().unwrap();
            let seller = b.column(13).as_any().downcast_ref::<Int64Array>().unwrap();
            let auction = b.column(15).as_any().downcast_ref::<Int64Array>().unwrap();
            let bidder = b.column(16).as_any().downcast_ref::<Int64Array>().unwrap();
            for i in 0..b.num_rows() {
                counts[t.value(i) as usize] += 1;
                match t.value(i) {
                    0 => max_person = person.value(i),
                    1 => {
                        max_auction = auction_id.value(i);
                        assert!(seller.value(i) <= max_person && seller.value(i) >= FIRST_ID);
                    }
                    _ => {
                        assert!(auction.value(i) <= max_auction && auction.value(i) >= FIRST_ID);
                        assert!(bidder.value(i) <= max_person && bidder.value(i) >= FIRST_ID);
                        assert!(auction.is_valid(i) && person.is_null(i));
                    }
                }
            }
        }
        assert_eq!(counts, [100, 300, 4_600]);
        assert_eq!(max_person, FIRST_ID + 99);
        assert_eq!(max_auction, FIRST_ID + 299);
    }

    #[test]
    fn same_seed_same_events_whatever_the_batch_size() {
        let render = |bs: Vec<RecordBatch>| -> Vec<String> {
            bs.iter()
                .flat_map(|b| {
                    (0..b.num_rows())
                        .map(|r| {
                            (0..b.num_columns())
                                .map(|c| {
                                    arrow::util::display::array_value_to_string(b.column(c), r)
                                        .unwrap()
                                })
                                .collect::<Vec<_>>()
                                .join("|")
                        })
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let a = render(events(9, 3_000, 100));
        assert_eq!(a, render(events(9, 3_000, 1024)));
        assert_ne!(a, render(events(10, 3_000, 100)));
    }
}
