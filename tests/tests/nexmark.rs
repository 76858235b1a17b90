//! The Nexmark example pipelines (`pipelines/nexmark-q*.yaml`) run on a small
//! input and their outputs equal an independent computation over the same
//! generated events.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use shoal_tests::{read_jsonl_dir, shoal_ok, workdir};

const EVENTS: u64 = 200_000;

#[derive(Debug, Clone)]
struct Bid {
    auction: i64,
    bidder: i64,
    price: i64,
    ts: i64,
}

/// Milliseconds of a `2026-01-01T..` timestamp since midnight.
fn ms(v: &serde_json::Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}"));
    let t = &s[s.find('T').unwrap() + 1..];
    let (hms, frac) = t.split_once('.').unwrap_or((t, "0"));
    let p: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    let frac: String = frac.chars().chain("000".chars()).take(3).collect();
    // Hopping windows may start before midnight (the previous day).
    let day = if s.starts_with("2025-12-31") {
        -86_400_000
    } else {
        0
    };
    day + ((p[0] * 60 + p[1]) * 60 + p[2]) * 1_000 + frac.parse::<i64>().unwrap()
}

struct Events {
    bids: Vec<Bid>,
    /// (person id, name, ts)
    persons: Vec<(i64, String, i64)>,
    /// (seller, ts)
    auctions: Vec<(i64, i64)>,
}

fn all_events(dir: &std::path::Path) -> Events {
    let yaml = format!(
        "name: all\nsources:\n  e: {{ type: generator, profile: nexmark, seed: 1, count: {EVENTS} }}\nsinks:\n  all: {{ type: file, inputs: [e], path: out/all }}\n"
    );
    std::fs::write(dir.join("all.yaml"), yaml).unwrap();
    shoal_ok(dir, &["run", "all.yaml", "--no-progress"]);
    let rows = read_jsonl_dir(&dir.join("out/all"));
    assert_eq!(rows.len() as u64, EVENTS);
    let mut e = Events {
        bids: vec![],
        persons: vec![],
        auctions: vec![],
    };
    for r in rows {
        let ts = ms(&r["date_time"]);
        match r["event_type"].as_i64().unwrap() {
            0 => e.persons.push((
                r["person_id"].as_i64().unwrap(),
                r["name"].as_str().unwrap().to_string(),
                ts,
            )),
            1 => e.auctions.push((r["seller"].as_i64().unwrap(), ts)),
            _ => e.bids.push(Bid {
                auction: r["auction"].as_i64().unwrap(),
                bidder: r["bidder"].as_i64().unwrap(),
                price: r["price"].as_i64().unwrap(),
                ts,
            }),
        }
    }
    assert_eq!(e.persons.len() * 46, e.bids.len());
    assert_eq!(e.persons.len() * 3, e.auctions.len());
    e
}

fn run(dir: &std::path::Path, q: &str) -> Vec<serde_json::Value> {
    shoal_ok(
        dir,
        &[
            "run",
            &format!("pipelines/nexmark-{q}.yaml"),
            "--no-progress",
        ],
    );
    read_jsonl_dir(&dir.join(format!("out/nexmark-{q}")))
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

#[test]
fn nexmark_queries_give_the_expected_rows() {
    let dir = workdir();
    let d = dir.path();
    let ev = all_events(d);

    // q0: every bid.
    let got = sorted(
        run(d, "q0")
            .iter()
            .map(|r| {
                (
                    r["auction"].as_i64().unwrap(),
                    r["bidder"].as_i64().unwrap(),
                    r["price"].as_i64().unwrap(),
                    ms(&r["date_time"]),
                )
            })
            .collect(),
    );
    let want = sorted(
        ev.bids
            .iter()
            .map(|b| (b.auction, b.bidder, b.price, b.ts))
            .collect(),
    );
    assert_eq!(got, want, "q0");

    // q1: prices in euros.
    let got = run(d, "q1");
    assert_eq!(got.len(), ev.bids.len(), "q1");
    let total: f64 = got.iter().map(|r| r["price"].as_f64().unwrap()).sum();
    let want: f64 = ev.bids.iter().map(|b| 0.908 * b.price as f64).sum();
    assert!((total - want).abs() <= 1e-9 * want, "q1: {total} vs {want}");

    // q2: bids on every 123rd auction.
    let got = sorted(
        run(d, "q2")
            .iter()
            .map(|r| (r["auction"].as_i64().unwrap(), r["price"].as_i64().unwrap()))
            .collect(),
    );
    let want = sorted(
        ev.bids
            .iter()
            .filter(|b| b.auction % 123 == 0)
            .map(|b| (b.auction, b.price))
            .collect(),
    );
    assert!(!want.is_empty());
    assert_eq!(got, want, "q2");

    // q5: per 10 s window sliding by 2 s, the auctions with the most bids.
    let mut counts: BTreeMap<i64, HashMap<i64, i64>> = BTreeMap::new();
    for b in &ev.bids {
        let mut s = b.ts.div_euclid(2_000) * 2_000;
        while s + 10_000 > b.ts {
            *counts.entry(s).or_default().entry(b.auction).or_default() += 1;
            s -= 2_000;
        }
    }
    let mut want = Vec::new();
    for (s, per) in &counts {
        let max = per.values().max().unwrap();
        want.extend(
            per.iter()
                .filter(|(_, n)| *n == max)
                .map(|(a, n)| (*s, *a, *n)),
        );
    }
    let got = sorted(
        run(d, "q5")
            .iter()
            .map(|r| {
                (
                    ms(&r["window_start"]),
                    r["auction"].as_i64().unwrap(),
                    r["num"].as_i64().unwrap(),
                )
            })
            .collect(),
    );
    assert!(counts.len() >= 5);
    assert_eq!(got, sorted(want), "q5");

    // q7: the highest bids of each 10 s window (bids in [start, end]).
    let mut max: BTreeMap<i64, i64> = BTreeMap::new();
    for b in &ev.bids {
        let m = max
            .entry(b.ts.div_euclid(10_000) * 10_000)
            .or_insert(i64::MIN);
        *m = (*m).max(b.price);
    }
    let mut want = Vec::new();
    for (s, m) in &max {
        want.extend(
            ev.bids
                .iter()
                .filter(|b| b.price == *m && b.ts >= *s && b.ts <= s + 10_000)
                .map(|b| (b.auction, b.price, b.bidder, b.ts)),
        );
    }
    let got = sorted(
        run(d, "q7")
            .iter()
            .map(|r| {
                (
                    r["auction"].as_i64().unwrap(),
                    r["price"].as_i64().unwrap(),
                    r["bidder"].as_i64().unwrap(),
                    ms(&r["date_time"]),
                )
            })
            .collect(),
    );
    assert!(!want.is_empty());
    assert_eq!(got, sorted(want), "q7");

    // q8: persons who opened an auction in the 10 s window they joined in.
    let sellers: BTreeSet<(i64, i64)> = ev
        .auctions
        .iter()
        .map(|(s, ts)| (*s, ts.div_euclid(10_000)))
        .collect();
    let want: Vec<(i64, String, i64)> = sorted(
        ev.persons
            .iter()
            .filter(|(id, _, ts)| sellers.contains(&(*id, ts.div_euclid(10_000))))
            .map(|(id, name, ts)| (*id, name.clone(), ts.div_euclid(10_000) * 10_000))
            .collect(),
    );
    let got = sorted(
        run(d, "q8")
            .iter()
            .map(|r| {
                (
                    r["person_id"].as_i64().unwrap(),
                    r["name"].as_str().unwrap().to_string(),
                    ms(&r["window_start"]),
                )
            })
            .collect(),
    );
    assert!(!want.is_empty());
    assert_eq!(got, want, "q8");
}

/// Rows of a file sink's output, each as its JSON text, sorted.
fn canonical(rows: &[serde_json::Value]) -> Vec<String> {
    sorted(rows.iter().map(|r| r.to_string()).collect())
}

/// With checkpoints, what windows and joins emit at end of input is flushed
/// before the final checkpoint and committed by it: a checkpointed run
/// writes exactly the rows of an uncheckpointed one.
#[test]
fn checkpointed_window_queries_commit_their_end_of_input_output() {
    let dir = workdir();
    let d = dir.path();
    for q in ["q5", "q7"] {
        let plain = run(d, q);
        assert!(!plain.is_empty(), "{q}: no rows");
        let yaml = std::fs::read_to_string(d.join(format!("pipelines/nexmark-{q}.yaml"))).unwrap();
        let name = format!("nexmark-{q}");
        let ckpt = format!("{name}-ckpt");
        let yaml = yaml
            .replace(
                &format!("name: {name}\n"),
                &format!("name: {ckpt}\ncheckpoint: {{ interval: 300ms }}\n"),
            )
            .replace(&format!("out/{name}"), &format!("out/{ckpt}"));
        assert!(yaml.contains("checkpoint:"), "{q}: name line not found");
        std::fs::write(d.join(format!("{ckpt}.yaml")), yaml).unwrap();
        shoal_ok(d, &["run", &format!("{ckpt}.yaml"), "--no-progress"]);
        let got = read_jsonl_dir(&d.join(format!("out/{ckpt}")));
        assert_eq!(
            canonical(&got),
            canonical(&plain),
            "{q}: checkpointed output differs"
        );
    }
}
