//! The Postgres sink against a real database (`SHOAL_POSTGRES_URL`) fed by
//! a real Kafka broker (`SHOAL_KAFKA_BROKERS`), both started by
//! `scripts/services.sh`.

use std::collections::BTreeMap;

use shoal_tests::services::{create_topic, kafka_brokers, pg, postgres_url, produce, unique};
use shoal_tests::{shoal, shoal_ok, workdir};

fn records(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let card = i % 37;
            (
                card.to_string(),
                format!(
                    "{{\"id\":{i},\"card\":{card},\"amount\":{},\"note\":{}}}",
                    (i % 1000) as f64 / 10.0,
                    if i % 10 == 0 {
                        "null".to_string()
                    } else if i % 10 == 1 {
                        "\"\"".to_string()
                    } else {
                        format!("\"n,{i}\\\"q\"")
                    }
                ),
            )
        })
        .collect()
}

const SCHEMA: &str = "{ id: int64, card: int64, amount: float64, note: utf8? }";

fn pipeline(
    brokers: &str,
    topic: &str,
    group: &str,
    url: &str,
    table: &str,
    sink_extra: &str,
) -> String {
    format!(
        "name: {table}\ncheckpoint: {{ interval: 200ms }}\nsources:\n  in:\n    type: kafka\n    brokers: {brokers}\n    topic: {topic}\n    group: {group}\n    start: earliest\n    stop_at_end: true\n    session_timeout: 6s\n    batch_size: 2000\n    schema: {SCHEMA}\nsinks:\n  db: {{ type: postgres, inputs: [in], url: \"{url}\", table: {table}{sink_extra} }}\n"
    )
}

fn count(url: &str, sql: &str) -> i64 {
    pg(url, sql)[0][0].as_deref().unwrap().parse().unwrap()
}

#[test]
fn kafka_to_postgres_insert_writes_every_record_once_with_its_offsets() {
    let (Some(brokers), Some(url)) = (kafka_brokers(), postgres_url()) else {
        return;
    };
    let (topic, group, table) = (
        unique("in-pg"),
        unique("g-pg"),
        unique("pg_ins").replace('-', "_"),
    );
    create_topic(&brokers, &topic, 4);
    let input = records(25_000);
    produce(&brokers, &topic, &input);
    let dir = workdir();
    let d = dir.path();
    std::fs::write(
        d.join("p.yaml"),
        pipeline(&brokers, &topic, &group, &url, &table, ""),
    )
    .unwrap();
    shoal_ok(d, &["run", "--no-progress", "p.yaml"]);

    assert_eq!(
        count(&url, &format!("SELECT count(*) FROM {table}")),
        25_000
    );
    assert_eq!(
        count(&url, &format!("SELECT count(DISTINCT id) FROM {table}")),
        25_000
    );
    assert_eq!(
        count(
            &url,
            &format!("SELECT count(*) FROM {table} WHERE note IS NULL")
        ),
        2_500
    );
    assert_eq!(
        count(
            &url,
            &format!("SELECT count(*) FROM {table} WHERE note = ''")
        ),
        2_500
    );
    let row = pg(
        &url,
        &format!("SELECT card, amount, note FROM {table} WHERE id = 12345"),
    );
    assert_eq!(
        row,
        vec![vec![
            Some("24".into()),
            Some("34.5".into()),
            Some("n,12345\"q".into())
        ]]
    );
    // Types as documented: bigint, double precision, text.
    let types = pg(
        &url,
        &format!(
            "SELECT data_type FROM information_schema.columns WHERE table_name = '{table}' ORDER BY ordinal_position"
        ),
    );
    let types: Vec<&str> = types.iter().map(|r| r[0].as_deref().unwrap()).collect();
    assert_eq!(types, ["bigint", "bigint", "double precision", "text"]);
    // The source offsets were stored in the same transactions.
    assert_eq!(
        count(
            &url,
            &format!("SELECT sum(next_offset) FROM shoal_offsets WHERE consumer_group = '{group}'")
        ),
        25_000
    );
    assert!(
        count(
            &url,
            &format!("SELECT max(epoch) FROM shoal_epochs WHERE pipeline = '{table}'")
        ) >= 1
    );

    // A rerun resumes from the stored offsets: nothing new.
    shoal_ok(d, &["run", "--no-progress", "p.yaml"]);
    assert_eq!(
        count(&url, &format!("SELECT count(*) FROM {table}")),
        25_000
    );
}

#[test]
fn upsert_keeps_the_last_row_of_every_key() {
    let (Some(brokers), Some(url)) = (kafka_brokers(), postgres_url()) else {
        return;
    };
    let (topic, group, table) = (
        unique("in-up"),
        unique("g-up"),
        unique("pg_up").replace('-', "_"),
    );
    create_topic(&brokers, &topic, 3);
    let input = records(5_000);
    produce(&brokers, &topic, &input);
    let dir = workdir();
    let d = dir.path();
    std::fs::write(
        d.join("p.yaml"),
        pipeline(
            &brokers,
            &topic,
            &group,
            &url,
            &table,
            ", mode: upsert, key_columns: [card]",
        ),
    )
    .unwrap();
    shoal_ok(d, &["run", "--no-progress", "p.yaml"]);
    let rows = pg(&url, &format!("SELECT card, id FROM {table} ORDER BY card"));
    let got: BTreeMap<i64, i64> = rows
        .iter()
        .map(|r| {
            (
                r[0].as_deref().unwrap().parse().unwrap(),
                r[1].as_deref().unwrap().parse().unwrap(),
            )
        })
        .collect();
    // A card's records share a partition, so they arrive in id order: the last wins.
    let expected: BTreeMap<i64, i64> = (0..5_000i64).map(|i| (i % 37, i)).collect();
    assert_eq!(got, expected);
}

#[test]
fn an_existing_table_whose_columns_do_not_fit_is_an_error_before_the_run() {
    let (Some(brokers), Some(url)) = (kafka_brokers(), postgres_url()) else {
        return;
    };
    let (topic, group, table) = (
        unique("in-bad"),
        unique("g-bad"),
        unique("pg_bad").replace('-', "_"),
    );
    create_topic(&brokers, &topic, 1);
    pg(
        &url,
        &format!("CREATE TABLE {table} (id text, card bigint, amount double precision, note text)"),
    );
    let dir = workdir();
    let d = dir.path();
    std::fs::write(
        d.join("p.yaml"),
        pipeline(&brokers, &topic, &group, &url, &table, ""),
    )
    .unwrap();
    let out = shoal(d, &["run", "--no-progress", "p.yaml"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("table {table} column `id` is text")),
        "{err}"
    );
    // It is a plan error: `shoal validate` names the file and line.
    let out = shoal(d, &["validate", "p.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("p.yaml:") && err.contains(&format!("table {table} column `id` is text")),
        "{err}"
    );
}

/// Rows Postgres refuses (a NULL for a NOT NULL column, a NUL byte in
/// text, a CHECK violation) go to the dead letters with the reason and to
/// `shoal_rejected`; every other row is written, the job goes on, and the
/// text `\N` is stored as those two characters, not as NULL.
#[test]
fn rows_postgres_rejects_are_dead_letters_and_the_rest_is_written() {
    let Some(url) = postgres_url() else {
        return;
    };
    let table = unique("pg_rej").replace('-', "_");
    pg(
        &url,
        &format!(
            "CREATE TABLE {table} (id bigint NOT NULL, note text NOT NULL, v bigint CHECK (v < 1000))"
        ),
    );
    let dir = workdir();
    let d = dir.path();
    let n = 5_000;
    let mut input = String::new();
    let mut bad = std::collections::BTreeMap::new();
    for i in 0..n {
        let (note, v) = if i % 500 == 7 {
            bad.insert(i, "null value");
            ("null".to_string(), i % 1000)
        } else if i % 700 == 3 {
            bad.insert(i, "0x00");
            ("\"a\\u0000b\"".to_string(), i % 1000)
        } else if i % 900 == 5 {
            bad.insert(i, "check constraint");
            (format!("\"n{i}\""), 5000)
        } else if i == 42 {
            ("\"\\\\N\"".to_string(), 42)
        } else {
            (format!("\"n{i}\\tx\\\\y\""), i % 1000)
        };
        input.push_str(&format!("{{\"id\":{i},\"note\":{note},\"v\":{v}}}\n"));
    }
    std::fs::write(d.join("in.jsonl"), input).unwrap();
    std::fs::write(
        d.join("p.yaml"),
        format!(
            "name: {table}\ncheckpoint: {{ interval: 100ms }}\nsources:\n  in:\n    type: file\n    path: in.jsonl\n    batch_size: 700\n    schema: {{ id: int64, note: utf8?, v: int64 }}\nsinks:\n  db: {{ type: postgres, inputs: [in], url: \"{url}\", table: {table} }}\ndead_letter: {{ type: file, path: out/dead }}\n"
        ),
    )
    .unwrap();
    shoal_ok(d, &["run", "--no-progress", "p.yaml"]);
    let good = n - bad.len() as i64;
    assert_eq!(count(&url, &format!("SELECT count(*) FROM {table}")), good);
    assert_eq!(
        count(&url, &format!("SELECT count(DISTINCT id) FROM {table}")),
        good
    );
    // `\N` is text, not NULL; tabs and backslashes survive.
    let row = pg(&url, &format!("SELECT note FROM {table} WHERE id = 42"));
    assert_eq!(row, vec![vec![Some("\\N".to_string())]]);
    let row = pg(&url, &format!("SELECT note FROM {table} WHERE id = 43"));
    assert_eq!(row, vec![vec![Some("n43\tx\\y".to_string())]]);
    // Each rejected row once in the dead letters, with its reason and record.
    let dead: Vec<serde_json::Value> =
        std::fs::read_to_string(d.join("out/dead/dead-letters.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let mut got = std::collections::BTreeMap::new();
    for l in &dead {
        assert_eq!(l["node"], "db", "{l}");
        let rec: serde_json::Value = serde_json::from_str(l["record"].as_str().unwrap()).unwrap();
        let id = rec["id"].as_i64().unwrap();
        let reason = l["reason"].as_str().unwrap().to_string();
        assert!(got.insert(id, reason).is_none(), "{id} twice");
    }
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        bad.keys().collect::<Vec<_>>()
    );
    for (id, want) in &bad {
        assert!(got[id].contains(want), "row {id}: {}", got[id]);
    }
    // The same rows in shoal_rejected, written with their epochs.
    assert_eq!(
        count(
            &url,
            &format!("SELECT count(*) FROM shoal_rejected WHERE pipeline = '{table}'")
        ),
        bad.len() as i64
    );
}
