//! Throughput and rebalance benchmark of the embedded log.
//!
//! `cargo run -p shoal-log --release --example log_bench [-- RECORDS]`
//!
//! * append: one producer thread, batches of 1000 records of ~200-byte JSON
//!   values (keyed by card id, so 8 partitions split each batch by murmur2),
//!   default fsync policy (`interval` 1 s) unless stated;
//! * read: one thread fetching every partition from offset 0 with 1 MiB
//!   fetches into one reused `FetchBuffer`, touching every value;
//! * rebalance: 16 members × 64 partitions: the assignor alone (15 → 16
//!   members, previous assignment given), and the coordinator from the 16th
//!   `join` until every member has its final assignment (revocations
//!   confirmed at once; includes the atomic `state.json` writes).
//!
//! MB/s counts value bytes (record payload), MiB = 2^20.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use shoal_log::group::assignor::{AssignmentMap, AssignorInput};
use shoal_log::*;

fn json_value(i: u64) -> Vec<u8> {
    let v = format!(
        r#"{{"txn_id":"txn-{i:012}","card_id":{},"merchant_id":{},"amount":{}.{:02},"country":"NL","channel":"ecommerce","mcc":"5411","ts":{}}}"#,
        i % 100_000,
        i % 7919,
        i % 1000,
        i % 100,
        1_700_000_000_000u64 + i
    );
    let mut b = v.into_bytes();
    // Pad to ~200 bytes inside the JSON object.
    b.pop();
    let pad = 200usize.saturating_sub(b.len() + 12);
    b.extend_from_slice(b",\"note\":\"");
    b.extend(std::iter::repeat_n(b'x', pad));
    b.extend_from_slice(b"\"}");
    b
}

struct Row {
    what: String,
    records: u64,
    bytes: u64,
    secs: f64,
}

fn append(log: &LogDir, topic: &str, values: &[Vec<u8>], keys: &[String]) -> Row {
    let producer = log.producer();
    let start = Instant::now();
    let mut bytes = 0u64;
    let mut batch: Vec<RecordRef<'_>> = Vec::with_capacity(1000);
    for (chunk_v, chunk_k) in values.chunks(1000).zip(keys.chunks(1000)) {
        batch.clear();
        for (v, k) in chunk_v.iter().zip(chunk_k) {
            bytes += v.len() as u64;
            batch.push((Some(k.as_bytes()), v.as_slice(), 0));
        }
        producer.append(topic, &batch).unwrap();
    }
    log.flush().unwrap();
    Row {
        what: String::new(),
        records: values.len() as u64,
        bytes,
        secs: start.elapsed().as_secs_f64(),
    }
}

fn read(log: &LogDir, topic: &str) -> Row {
    let start = Instant::now();
    let mut buf = FetchBuffer::with_capacity(2 << 20);
    let (mut records, mut bytes, mut checksum) = (0u64, 0u64, 0u64);
    for p in 0..log.partition_count(topic).unwrap() {
        let mut off = 0;
        loop {
            log.fetch(topic, p, off, 100_000, 1 << 20, &mut buf)
                .unwrap();
            let Some(next) = buf.next_offset() else { break };
            for v in buf.values() {
                bytes += v.len() as u64;
                checksum = checksum.wrapping_add(v[v.len() / 2] as u64);
            }
            records += buf.len() as u64;
            off = next;
        }
    }
    std::hint::black_box(checksum);
    Row {
        what: String::new(),
        records,
        bytes,
        secs: start.elapsed().as_secs_f64(),
    }
}

fn throughput(dir: &std::path::Path, n: u64) -> Vec<Row> {
    let values: Vec<Vec<u8>> = (0..n).map(json_value).collect();
    let keys: Vec<String> = (0..n).map(|i| format!("card-{}", i % 100_000)).collect();
    let avg = values.iter().map(Vec::len).sum::<usize>() as f64 / n as f64;
    println!("{n} records, average value {avg:.0} bytes\n");
    let mut rows = Vec::new();
    for partitions in [1u32, 8] {
        let log = LogDir::open(dir.join(format!("p{partitions}")), LogConfig::default()).unwrap();
        log.create_topic("bench", partitions).unwrap();
        let mut r = append(&log, "bench", &values, &keys);
        r.what = format!("append, {partitions} partition(s), fsync interval 1s");
        rows.push(r);
        drop(log);
        // Read through a fresh handle (reader view, page cache warm).
        let log = LogDir::open(dir.join(format!("p{partitions}")), LogConfig::default()).unwrap();
        let mut r = read(&log, "bench");
        assert_eq!(r.records, n);
        r.what = format!("read, {partitions} partition(s)");
        rows.push(r);
    }
    let m = (n / 10).max(1000) as usize;
    let log = LogDir::open(dir.join("sync"), LogConfig::default()).unwrap();
    log.create_topic_with(
        "bench",
        1,
        TopicConfig {
            fsync: FsyncPolicy::EveryBatch,
            ..TopicConfig::default()
        },
    )
    .unwrap();
    let mut r = append(&log, "bench", &values[..m], &keys[..m]);
    r.what = "append, 1 partition, fsync every batch (1000 rec)".into();
    rows.push(r);
    rows
}

fn assign_compute(kind: AssignorKind) -> Duration {
    let topics: BTreeSet<String> = ["t".to_string()].into();
    let parts = BTreeMap::from([("t".to_string(), 64u32)]);
    let mut subs: BTreeMap<String, BTreeSet<String>> = (0..15)
        .map(|i| (format!("m{i:02}"), topics.clone()))
        .collect();
    let empty = AssignmentMap::new();
    let prev = kind.assign(&AssignorInput {
        subscriptions: &subs,
        previous: &empty,
        partitions: &parts,
    });
    subs.insert("m15".into(), topics);
    let iters = 200;
    let start = Instant::now();
    for _ in 0..iters {
        std::hint::black_box(kind.assign(&AssignorInput {
            subscriptions: &subs,
            previous: &prev,
            partitions: &parts,
        }));
    }
    start.elapsed() / iters
}

fn coordinator_rebalance(dir: &std::path::Path, kind: AssignorKind) -> (Duration, u64) {
    let log = LogDir::open(dir.join(format!("g-{kind}")), LogConfig::default()).unwrap();
    log.create_topic("t", 64).unwrap();
    let mut members: Vec<Consumer> = Vec::new();
    let settle = |members: &[Consumer]| {
        loop {
            let mut pending = false;
            for c in members {
                let a = c.poll_assignment().unwrap();
                if a.must_revoke() {
                    let _ = c.ack_revocation(a.generation);
                    pending = true;
                } else if a.rebalancing {
                    pending = true;
                }
            }
            if !pending {
                break;
            }
        }
    };
    for i in 0..15 {
        members.push(
            log.consumer(
                "g",
                ConsumerConfig::new(["t"], kind).member_id(format!("m{i:02}")),
            )
            .unwrap(),
        );
        settle(&members);
    }
    let g0 = members[0].poll_assignment().unwrap().generation;
    let start = Instant::now();
    members.push(
        log.consumer("g", ConsumerConfig::new(["t"], kind).member_id("m15"))
            .unwrap(),
    );
    settle(&members);
    let took = start.elapsed();
    let g1 = members[0].poll_assignment().unwrap().generation;
    let total: usize = members
        .iter()
        .map(|c| c.poll_assignment().unwrap().partitions.len())
        .sum();
    assert_eq!(total, 64);
    (took, g1 - g0)
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(500_000);
    let dir = tempfile::tempdir().unwrap();
    println!("## shoal-log benchmark\n");
    let rows = throughput(dir.path(), n);
    println!("| operation | records | MiB | seconds | MiB/s | records/s |");
    println!("|---|---:|---:|---:|---:|---:|");
    for r in rows {
        let mib = r.bytes as f64 / (1 << 20) as f64;
        println!(
            "| {} | {} | {:.1} | {:.3} | {:.0} | {:.0} |",
            r.what,
            r.records,
            mib,
            r.secs,
            mib / r.secs,
            r.records as f64 / r.secs
        );
    }
    println!("\n### rebalance, 16 members x 64 partitions (15 -> 16 members)\n");
    println!(
        "| assignor | protocol | assignment compute | join -> stable (coordinator) | generations bumped |"
    );
    println!("|---|---|---:|---:|---:|");
    for kind in AssignorKind::ALL {
        let compute = assign_compute(kind);
        let (full, gens) = coordinator_rebalance(dir.path(), kind);
        println!(
            "| {} | {:?} | {:.1} µs | {:.2} ms | {} |",
            kind,
            kind.protocol(),
            compute.as_secs_f64() * 1e6,
            full.as_secs_f64() * 1e3,
            gens
        );
    }
}
