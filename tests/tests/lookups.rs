//! Lookup joins against a real Postgres (`SHOAL_POSTGRES_URL`) and Redis
//! (`SHOAL_REDIS_URL`, or a server of the test's own for the outage):
//! every output row carries exactly its card's account row and its
//! merchant's hash; a change made in the stores mid-run is seen after the
//! cache TTL, and per key never goes back; an outage of Redis is waited
//! out, never answered with NULLs.

use std::collections::{BTreeMap, HashMap};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ::redis as client;
use shoal_tests::services::{OwnRedis, pg, postgres_url, redis, redis_url, unique};
use shoal_tests::{read_jsonl_dir, shoal_bin, shoal_run, workdir};

const COUNT: u64 = 24_000;
/// Merchants with a hash in Redis (the generator makes 0–4 999).
const MERCHANTS_IN_REDIS: i64 = 2_500;

/// Accounts for every card: status `active` or `frozen` (every 7th card),
/// tagged with a version.
fn setup_postgres(url: &str, table: &str, version: &str) {
    pg(
        url,
        &format!(
            "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (card_id bigint PRIMARY KEY, status text NOT NULL, credit numeric);
             INSERT INTO {table} SELECT c, CASE WHEN c % 7 = 0 THEN 'frozen' ELSE 'active' END || '-{version}', c * 10.5 FROM generate_series(0, 9999) c"
        ),
    );
}

fn tier(m: i64) -> &'static str {
    if m < 50 { "high" } else { "low" }
}

fn setup_redis(url: &str, prefix: &str, version: &str) {
    let mut con = redis(url);
    let mut p = client::pipe();
    for m in 0..MERCHANTS_IN_REDIS {
        p.hset_multiple(
            format!("{prefix}:{m}"),
            &[
                ("tier", format!("{}-{version}", tier(m))),
                ("score", format!("{}", m % 100)),
            ],
        )
        .ignore();
    }
    let _: () = p.query(&mut con).unwrap();
}

fn pipeline(
    name: &str,
    pg_url: &str,
    table: &str,
    redis_url: &str,
    prefix: &str,
    rate: u64,
) -> String {
    format!(
        r#"name: {name}
checkpoint: {{ interval: 300ms }}
sources:
  txns: {{ type: generator, seed: 3, count: {COUNT}, rate: {rate}, batch_size: 400 }}
transforms:
  enriched:
    type: sql
    inputs: [txns]
    lookup:
      accounts:
        type: postgres
        url: "{pg_url}"
        table: {table}
        cache: {{ max_entries: 50000, ttl: 1s }}
      merchants:
        type: redis
        url: "{redis_url}"
        key: "{prefix}:{{merchant_id}}"
        schema: {{ merchant_id: int64, tier: utf8, score: int64 }}
        cache: {{ max_entries: 50000, ttl: 1s }}
    query: |
      SELECT t.txn_id, t.card_id, t.merchant_id, a.status, a.credit, m.tier, m.score
      FROM txns t
      JOIN accounts a ON t.card_id = a.card_id
      LEFT JOIN merchants m ON t.merchant_id = m.merchant_id
sinks:
  out: {{ type: file, inputs: [enriched], path: out }}
"#
    )
}

/// `(base, version)` of a tagged value such as `active-v1`.
fn split(v: &str) -> (&str, &str) {
    v.rsplit_once('-').unwrap()
}

#[test]
fn lookups_in_postgres_and_redis_are_exact_and_see_changes_after_the_ttl() {
    let (Some(pg_url), Some(redis_url)) = (postgres_url(), redis_url()) else {
        return;
    };
    let dir = workdir();
    let d = dir.path();
    let name = unique("lk");
    let table = name.replace('-', "_");
    let prefix = format!("{name}:merchant");
    setup_postgres(&pg_url, &table, "v1");
    setup_redis(&redis_url, &prefix, "v1");
    std::fs::write(
        d.join("p.yaml"),
        pipeline(&name, &pg_url, &table, &redis_url, &prefix, 4000),
    )
    .unwrap();
    let mut child = shoal_run(d, "p.yaml")
        .stderr(std::fs::File::create(d.join("run.log")).unwrap())
        .spawn()
        .unwrap();
    // Once the first rows are committed, change both stores.
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::read_dir(d.join("out")).map_or(true, |mut r| r.next().is_none()) {
        assert!(Instant::now() < deadline, "no output");
        std::thread::sleep(Duration::from_millis(50));
    }
    pg(
        &pg_url,
        &format!("UPDATE {table} SET status = replace(status, '-v1', '-v2')"),
    );
    setup_redis(&redis_url, &prefix, "v2");
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(d.join("run.log")).unwrap()
    );

    let rows = read_jsonl_dir(&d.join("out"));
    assert_eq!(
        rows.len() as u64,
        COUNT,
        "an inner join on accounts that exist for every card"
    );
    let mut last_version: HashMap<(String, i64), String> = HashMap::new();
    let mut versions: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        let card = r["card_id"].as_i64().unwrap();
        let merchant = r["merchant_id"].as_i64().unwrap();
        let (status, sv) = split(r["status"].as_str().unwrap());
        assert_eq!(
            status,
            if card % 7 == 0 { "frozen" } else { "active" },
            "row {i}: {r}"
        );
        assert_eq!(
            r["credit"].as_f64().unwrap(),
            card as f64 * 10.5,
            "row {i}: {r}"
        );
        let mut seen = vec![(("card".to_string(), card), sv.to_string())];
        if merchant < MERCHANTS_IN_REDIS {
            let (t, tv) = split(
                r["tier"]
                    .as_str()
                    .unwrap_or_else(|| panic!("row {i}: no tier: {r}")),
            );
            assert_eq!(t, tier(merchant), "row {i}: {r}");
            assert_eq!(r["score"].as_i64(), Some(merchant % 100), "row {i}: {r}");
            seen.push((("merchant".to_string(), merchant), tv.to_string()));
        } else {
            assert!(
                r["tier"].is_null() && r["score"].is_null(),
                "row {i}: a merchant without a hash: {r}"
            );
        }
        for (key, v) in seen {
            *versions
                .entry(if v == "v1" { "v1" } else { "v2" })
                .or_default() += 1;
            // Per key, once the new version is seen the old never comes back.
            if let Some(prev) = last_version.get(&key) {
                assert!(
                    !(prev == "v2" && v == "v1"),
                    "row {i}: {key:?} went back to v1"
                );
            }
            last_version.insert(key, v);
        }
    }
    // Both versions were served, and the last rows (written seconds after
    // the change, past the 1 s TTL) all carry the new one.
    assert!(versions.get("v1").copied().unwrap_or(0) > 0, "{versions:?}");
    assert!(versions.get("v2").copied().unwrap_or(0) > 0, "{versions:?}");
    let tail = &rows[rows.len() * 95 / 100..];
    for r in tail {
        assert!(
            r["status"].as_str().unwrap().ends_with("-v2"),
            "a tail row still old: {r}"
        );
    }
}

#[test]
fn a_redis_outage_during_lookups_is_waited_out_not_answered_with_nulls() {
    if redis_url().is_none() || postgres_url().is_none() {
        return;
    }
    let pg_url = postgres_url().unwrap();
    let mut server = OwnRedis::start();
    let dir = workdir();
    let d = dir.path();
    let name = unique("lko");
    let table = name.replace('-', "_");
    let prefix = format!("{name}:merchant");
    setup_postgres(&pg_url, &table, "v1");
    setup_redis(&server.url, &prefix, "v1");
    // A short TTL so the outage is met by fetches, not hidden by the cache.
    let yaml = pipeline(&name, &pg_url, &table, &server.url, &prefix, 3000)
        .replace("ttl: 1s", "ttl: 100ms");
    std::fs::write(d.join("p.yaml"), yaml).unwrap();
    let mut child = shoal_run(d, "p.yaml")
        .env("RUST_LOG", "warn")
        .stderr(std::fs::File::create(d.join("run.log")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::fs::read_dir(d.join("out")).map_or(true, |mut r| r.next().is_none()) {
        assert!(Instant::now() < deadline, "no output");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.down();
    std::thread::sleep(Duration::from_secs(3));
    server.up();
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(d.join("run.log")).unwrap();
    assert!(status.success(), "{log}");
    let rows = read_jsonl_dir(&d.join("out"));
    assert_eq!(rows.len() as u64, COUNT);
    for r in &rows {
        let merchant = r["merchant_id"].as_i64().unwrap();
        if merchant < MERCHANTS_IN_REDIS {
            assert!(r["tier"].is_string(), "a NULL for an outage: {r}");
        }
    }
    assert!(
        log.contains("redis unavailable; retrying"),
        "the outage was not met: {log}"
    );
}

#[test]
fn bad_store_lookups_are_plan_errors_at_their_lines() {
    let (Some(pg_url), Some(redis_url)) = (postgres_url(), redis_url()) else {
        return;
    };
    let dir = workdir();
    let d = dir.path();
    let name = unique("lkbad");
    let table = name.replace('-', "_");
    setup_postgres(&pg_url, &table, "v1");
    let good = pipeline(&name, &pg_url, &table, &redis_url, "m", 1000);
    let run = |yaml: String| -> String {
        std::fs::write(d.join("p.yaml"), yaml).unwrap();
        let out = Command::new(shoal_bin())
            .args(["validate", "p.yaml"])
            .current_dir(d)
            .env("SHOAL_DATA_DIR", d.join("data"))
            .stdout(Stdio::piped())
            .output()
            .unwrap();
        assert!(!out.status.success(), "accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // A table that does not exist: the error names the `table:` line (13).
    let e = run(good.replace(&format!("table: {table}"), "table: no_such_table"));
    assert!(e.contains("p.yaml:13"), "{e}");
    assert!(e.contains("no_such_table"), "{e}");
    // A declared column Postgres does not have.
    let e = run(good.replace(
        "        cache: { max_entries: 50000, ttl: 1s }\n      merchants:",
        "        schema: { card_id: int64, stauts: utf8 }\n      merchants:",
    ));
    assert!(e.contains("no column `stauts`"), "{e}");
    // A declared type Postgres cannot give.
    let e = run(good.replace(
        "        cache: { max_entries: 50000, ttl: 1s }\n      merchants:",
        "        schema: { card_id: int64, status: bool }\n      merchants:",
    ));
    assert!(
        e.contains("is text in Postgres but declared Boolean"),
        "{e}"
    );
    // A redis table joined on a column that is not its key.
    let e = run(good.replace(
        "ON t.merchant_id = m.merchant_id",
        "ON t.merchant_id = m.score",
    ));
    assert!(e.contains("keyed by `merchant_id`"), "{e}");
}

/// The README's example: `scripts/seed-online-features.sh`, then
/// `pipelines/fraud-online-features.yaml` as it is (its urls are the ports
/// `scripts/services.sh` uses). The alerts are exactly the transactions
/// the reference data makes risky, computed here from the generator's
/// records; every card's features hash is in Redis.
#[test]
fn the_online_features_example_alerts_exactly_and_publishes_features() {
    let (Some(pg_url), Some(redis_url)) = (postgres_url(), redis_url()) else {
        return;
    };
    if !pg_url.contains(":54329/") || !redis_url.contains(":54331/") {
        eprintln!("*** SKIPPED: the example's urls are scripts/services.sh's default ports ***");
        return;
    }
    let dir = workdir();
    let d = dir.path();
    let st = Command::new("bash")
        .arg(shoal_tests::repo_root().join("scripts/seed-online-features.sh"))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "seed script");
    let out = shoal_run(d, "pipelines/fraud-online-features.yaml")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("200000 records in"), "{stderr}");
    // The generator's records, through a plain pipeline.
    std::fs::write(
        d.join("all.yaml"),
        "name: all\nsources:\n  txns: { type: generator, seed: 42, count: 200000 }\nsinks:\n  all: { type: file, inputs: [txns], path: out/all }\n",
    )
    .unwrap();
    let st = Command::new(shoal_bin())
        .args(["run", "--no-progress", "all.yaml"])
        .current_dir(d)
        .env("SHOAL_DATA_DIR", d.join("data-all"))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let all = shoal_tests::read_jsonl_dir(&d.join("out/all"));
    assert_eq!(all.len(), 200_000);
    let want: std::collections::BTreeSet<String> = all
        .iter()
        .filter(|r| {
            let card = r["card_id"].as_i64().unwrap();
            let merchant = r["merchant_id"].as_i64().unwrap();
            card % 50 == 0 || (merchant < 50 && r["amount"].as_f64().unwrap() > 300.0)
        })
        .map(|r| r["txn_id"].as_str().unwrap().to_string())
        .collect();
    let alerts = shoal_tests::read_jsonl_dir(&d.join("out/online-alerts"));
    let got: std::collections::BTreeSet<String> = alerts
        .iter()
        .map(|r| r["txn_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(alerts.len(), got.len(), "an alert twice");
    assert_eq!(got, want);
    // Every card's features, with its transaction count as of the end.
    let mut per_card: HashMap<i64, u64> = HashMap::new();
    for r in &all {
        *per_card.entry(r["card_id"].as_i64().unwrap()).or_default() += 1;
    }
    let mut con = redis(&redis_url);
    for card in [0i64, 42, 4242, 9999] {
        let h: HashMap<String, String> =
            client::Commands::hgetall(&mut con, format!("features:card:{card}")).unwrap();
        assert!(
            h.contains_key("n_1h") && h.contains_key("sum_1h") && h.contains_key("max_amount"),
            "card {card}: {h:?}"
        );
        assert!(
            h["n_1h"].parse::<u64>().unwrap() <= per_card[&card],
            "card {card}: {h:?}"
        );
    }
}
