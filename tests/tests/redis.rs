//! The Redis sink against a real Redis (`SHOAL_REDIS_URL`, or a server of
//! the test's own for outages): per-card features from an OVER window are
//! written as hashes; after a crash between the checkpoint's manifest and
//! the sink's apply, or a SIGKILL at any moment, and a rerun, Redis holds
//! exactly the features of the whole input — computed here from the
//! generator's records, not by Shoal.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shoal_tests::chaos::{Rng, for_each_seed};
use shoal_tests::services::{OwnRedis, redis, redis_url, unique};

use ::redis as client;
use client::Commands;
use shoal_tests::{shoal_bin, shoal_run, workdir};

const COUNT: u64 = 30_000;

/// Generator → per-card running count and sum (OVER) → Redis hashes
/// `{name}:card:{card_id}` with fields `n`, `total`, `ts`.
fn pipeline(name: &str, url: &str, rate: u64) -> String {
    format!(
        r#"name: {name}
checkpoint: {{ interval: 200ms }}
sources:
  txns:
    type: generator
    seed: 11
    count: {COUNT}
    rate: {rate}
    batch_size: 250
    event_time: {{ column: ts, max_delay: 3s }}
transforms:
  features:
    type: sql
    inputs: [txns]
    query: |
      SELECT card_id, ts,
             COUNT(*)    OVER h AS n,
             SUM(amount) OVER h AS total
      FROM txns
      WINDOW h AS (PARTITION BY card_id ORDER BY ts
                   ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
sinks:
  online:
    type: redis
    inputs: [features]
    url: "{url}"
    key: "{name}:card:{{card_id}}"
    fields: [n, total, ts]
    ttl: 1h
dead_letter: {{ type: file, path: dead }}
"#
    )
}

/// Per card: (transactions, sum of amounts), from the generator's own
/// records written to a file by a plain pipeline.
fn expected(d: &Path) -> BTreeMap<i64, (u64, f64)> {
    let dir = d.join("oracle");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("p.yaml"),
        format!("name: oracle\nsources:\n  txns: {{ type: generator, seed: 11, count: {COUNT} }}\nsinks:\n  all: {{ type: file, inputs: [txns], path: all }}\n"),
    )
    .unwrap();
    let st = Command::new(shoal_bin())
        .args(["run", "--no-progress", "p.yaml"])
        .current_dir(&dir)
        .env("SHOAL_DATA_DIR", dir.join("data"))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let mut rows: Vec<(i64, i64, f64)> = Vec::new();
    for f in std::fs::read_dir(dir.join("all")).unwrap() {
        let f = f.unwrap().path();
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            rows.push((
                v["card_id"].as_i64().unwrap(),
                v["ts"].as_i64().unwrap_or_default(),
                v["amount"].as_f64().unwrap(),
            ));
        }
    }
    assert_eq!(rows.len() as u64, COUNT);
    // Sum in event-time order per card, as the OVER window does.
    rows.sort_by_key(|r| (r.0, r.1));
    let mut out = BTreeMap::new();
    for (card, _, amount) in rows {
        let e = out.entry(card).or_insert((0u64, 0.0f64));
        e.0 += 1;
        e.1 += amount;
    }
    out
}

/// Every `{name}:card:*` hash as card → (n, total).
fn features(url: &str, name: &str) -> BTreeMap<i64, (u64, f64)> {
    let mut con = redis(url);
    let keys: Vec<String> = con.keys(format!("{name}:card:*")).unwrap();
    let mut out = BTreeMap::new();
    for k in keys {
        let kind: String = client::cmd("TYPE").arg(&k).query(&mut con).unwrap();
        if kind != "hash" {
            continue; // a test's own non-hash key
        }
        let h: HashMap<String, String> = con.hgetall(&k).unwrap();
        let card = k.rsplit(':').next().unwrap().parse::<i64>().unwrap();
        out.insert(card, (h["n"].parse().unwrap(), h["total"].parse().unwrap()));
    }
    out
}

/// Compare Redis with the oracle: every card, its count exactly, its sum
/// to 1e-9 relative (sums of equal-time rows may add in another order).
fn assert_exact(got: &BTreeMap<i64, (u64, f64)>, want: &BTreeMap<i64, (u64, f64)>) {
    assert_eq!(got.len(), want.len(), "cards in redis vs in the input");
    let mut wrong = Vec::new();
    for (card, (n, total)) in want {
        match got.get(card) {
            Some((gn, gt)) if gn == n && (gt - total).abs() <= 1e-9 * total.abs().max(1.0) => {}
            other => wrong.push((card, (n, total), other.cloned())),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} cards differ, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
}

fn run(d: &Path, extra_env: &[(&str, String)]) -> std::process::Output {
    let mut c = shoal_run(d, "p.yaml");
    c.env("RUST_LOG", "info");
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// The sink's bookkeeping: (marker epoch of its one task, staged members).
fn bookkeeping(url: &str, name: &str) -> (Option<u64>, Vec<String>) {
    let mut con = redis(url);
    let marks: HashMap<String, String> =
        con.hgetall(format!("shoal:{name}:online:epochs")).unwrap();
    assert!(marks.len() <= 1, "one task: {marks:?}");
    let staged: Vec<String> = con.smembers(format!("shoal:{name}:online:staged")).unwrap();
    (marks.values().next().map(|e| e.parse().unwrap()), staged)
}

#[test]
fn redis_holds_every_cards_features_exactly_after_crashes() {
    let Some(url) = redis_url() else {
        return;
    };
    let want = expected(workdir().path());
    for_each_seed("redis_crash", 1900, workdir, |d, seed| {
        let name = unique("rf");
        std::fs::write(d.join("p.yaml"), pipeline(&name, &url, 6000)).unwrap();
        let mut rng = Rng::new(seed);
        if seed % 2 == 0 {
            // The crash window between the two halves of the commit: the
            // manifest of checkpoint `at` is durable, Redis has not applied it.
            let at = 1 + rng.next_u64() % 4;
            let out = run(d, &[("SHOAL_TEST_ABORT_AFTER_MANIFEST", at.to_string())]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let line = stderr
                .lines()
                .find(|l| l.contains("test hook: aborting after manifest"))
                .unwrap_or_else(|| panic!("the hook did not fire: {stderr}"));
            let manifest: u64 = line
                .split("manifest ")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .unwrap()
                .parse()
                .unwrap();
            let (marker, staged) = bookkeeping(&url, &name);
            assert!(
                marker.is_none_or(|m| m < manifest),
                "epoch {manifest} applied before its commit: marker {marker:?}"
            );
            assert!(
                staged.iter().any(|s| s.ends_with(&format!("|{manifest}"))),
                "epoch {manifest} not staged: {staged:?}"
            );
        } else {
            // SIGKILL at a moment the seed picks, 0.3–3 s into the run.
            let mut child = shoal_run(d, "p.yaml")
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(300 + rng.next_u64() % 2700));
            let _ = child.kill();
            child.wait().unwrap();
        }
        let out = run(d, &[]);
        assert!(
            out.status.success(),
            "rerun failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_exact(&features(&url, &name), &want);
        let (marker, staged) = bookkeeping(&url, &name);
        assert!(marker.is_some(), "no epoch marker");
        assert!(staged.is_empty(), "epochs left staged: {staged:?}");
        let mut con = redis(&url);
        let stages: Vec<String> = con.keys(format!("shoal:{name}:online:stage:*")).unwrap();
        assert!(stages.is_empty(), "stage lists left: {stages:?}");
        // `ttl: 1h` on every hash.
        let ttl: i64 = con
            .pttl(format!("{name}:card:{}", want.keys().next().unwrap()))
            .unwrap();
        assert!(ttl > 0 && ttl <= 3_600_000, "pttl {ttl}");
    });
}

#[test]
fn a_key_holding_another_type_is_a_dead_letter_and_the_rest_is_written() {
    let Some(url) = redis_url() else {
        return;
    };
    let dir = workdir();
    let d = dir.path();
    let name = unique("rbad");
    let want = expected(d);
    let (bad_card, _) = want.iter().next().map(|(c, v)| (*c, *v)).unwrap();
    let mut con = redis(&url);
    let _: () = con
        .set(format!("{name}:card:{bad_card}"), "not a hash")
        .unwrap();
    std::fs::write(
        d.join("p.yaml"),
        pipeline(&name, &url, 0).replace("    rate: 0\n", ""),
    )
    .unwrap();
    let out = run(d, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut got = features(&url, &name);
    assert!(!got.contains_key(&bad_card));
    let dead = std::fs::read_to_string(d.join("dead/dead-letters.jsonl")).unwrap();
    let letters: Vec<serde_json::Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let rows_of_card = want[&bad_card].0 as usize;
    assert_eq!(letters.len(), rows_of_card, "{dead}");
    for l in &letters {
        assert_eq!(l["node"], "online");
        let reason = l["reason"].as_str().unwrap();
        assert!(reason.contains("holds a string, not a hash"), "{reason}");
    }
    // Every other card is exact.
    let mut rest = want.clone();
    rest.remove(&bad_card);
    got.remove(&bad_card);
    assert_exact(&got, &rest);
}

#[test]
fn a_redis_outage_is_retried_and_the_features_are_exact() {
    if redis_url().is_none() {
        return;
    }
    let mut server = OwnRedis::start();
    let dir = workdir();
    let d = dir.path();
    let name = unique("rout");
    let want = expected(d);
    std::fs::write(d.join("p.yaml"), pipeline(&name, &server.url, 3000)).unwrap();
    let mut child = spawn_until_features(d, &server.url, &name);
    server.down();
    std::thread::sleep(Duration::from_secs(4));
    server.up();
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(d.join("run.log")).unwrap();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("redis unavailable; retrying"),
        "no retry logged: {log}"
    );
    assert_exact(&features(&server.url, &name), &want);
}

/// An outage longer than the pipeline's `outage_timeout` ends the job
/// cleanly: a non-zero exit naming Redis and the deadline, every hash in
/// Redis still a whole state of its card (its count and sum those of the
/// card's first `n` transactions: no epoch half-applied), and a rerun
/// with Redis back ends with exactly the features of the whole input.
#[test]
fn a_redis_outage_past_outage_timeout_fails_cleanly_and_a_rerun_is_exact() {
    if redis_url().is_none() {
        return;
    }
    let mut server = OwnRedis::start();
    let dir = workdir();
    let d = dir.path();
    let name = unique("rdead");
    let want = expected(d);
    let prefixes = card_prefix_sums(d);
    std::fs::write(
        d.join("p.yaml"),
        format!("outage_timeout: 3s\n{}", pipeline(&name, &server.url, 3000)),
    )
    .unwrap();
    let mut child = spawn_until_features(d, &server.url, &name);
    server.down();
    // The job gives up after 3 s of retries (the guard only bounds a hang).
    let guard = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > guard {
            let _ = child.kill();
            panic!(
                "the job did not give up: {}",
                std::fs::read_to_string(d.join("run.log")).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    server.up();
    let log = std::fs::read_to_string(d.join("run.log")).unwrap();
    assert!(
        !status.success(),
        "the job ended well during an outage:\n{log}"
    );
    assert!(
        log.contains("redis unavailable; retrying") && log.contains("redis unreachable for 3 s"),
        "no retries, or not the deadline, in the log:\n{log}"
    );
    let at_failure = features(&server.url, &name);
    assert!(!at_failure.is_empty());
    let torn: Vec<_> = at_failure
        .iter()
        .filter(|(card, (n, total))| {
            let sums = &prefixes[card];
            *n == 0
                || *n as usize > sums.len()
                || (sums[*n as usize - 1] - total).abs() > 1e-9 * total.abs().max(1.0)
        })
        .take(5)
        .collect();
    assert!(
        torn.is_empty(),
        "hashes that are no state of their card: {torn:?}"
    );
    // Rerun with Redis back: exactly the whole input's features.
    let out = run(d, &[]);
    assert!(
        out.status.success(),
        "the rerun failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_exact(&features(&server.url, &name), &want);
}

/// Start `p.yaml` in `d` (its log in `run.log`) and wait until it wrote
/// some features (the bound only guards against a hang).
fn spawn_until_features(d: &Path, url: &str, name: &str) -> std::process::Child {
    let child = shoal_run(d, "p.yaml")
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(d.join("run.log")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while features(url, name).is_empty() {
        assert!(Instant::now() < deadline, "no features written");
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

/// Per card: the running sums of its amounts in event-time order (entry
/// `i`: the sum of its first `i + 1` transactions), from the generator's
/// records as `expected` reads them.
fn card_prefix_sums(d: &Path) -> BTreeMap<i64, Vec<f64>> {
    let mut rows: Vec<(i64, i64, f64)> = Vec::new();
    for f in std::fs::read_dir(d.join("oracle").join("all")).unwrap() {
        for line in std::fs::read_to_string(f.unwrap().path()).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            rows.push((
                v["card_id"].as_i64().unwrap(),
                v["ts"].as_i64().unwrap_or_default(),
                v["amount"].as_f64().unwrap(),
            ));
        }
    }
    rows.sort_by_key(|r| (r.0, r.1));
    let mut out: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for (card, _, amount) in rows {
        let sums = out.entry(card).or_default();
        let last = sums.last().copied().unwrap_or(0.0);
        sums.push(last + amount);
    }
    out
}
