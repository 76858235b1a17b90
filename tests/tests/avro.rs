//! Avro records from Kafka, written by another program: confluent-kafka's
//! AvroSerializer (Python) against a real schema registry (karapace, on the
//! test broker), in the Confluent wire format. The producer switches to a
//! second schema version with an added field mid-stream and finally sends
//! three records no one can decode; Shoal reads every good record with the
//! declared columns (the new field NULL before the switch, its value after)
//! and sends the three to the dead letters with their partition, offset and
//! reason, without stopping.

use std::collections::BTreeMap;
use std::process::Command;

use shoal_tests::services::{create_topic, kafka_brokers, schema_registry_url, unique};
use shoal_tests::{read_jsonl_dir, shoal_bin, workdir};

#[test]
fn avro_from_the_registry_with_a_new_schema_version_and_bad_records() {
    let (Some(brokers), Some(registry)) = (kafka_brokers(), schema_registry_url()) else {
        return;
    };
    let topic = unique("avro");
    create_topic(&brokers, &topic, 2);
    let alerts = unique("avro-alerts");
    create_topic(&brokers, &alerts, 2);
    let (n1, n2) = (3000u64, 2000u64);
    let out = Command::new("python3")
        .arg(shoal_tests::repo_root().join("tests/avro/produce.py"))
        .args([
            &brokers,
            &registry,
            &topic,
            &n1.to_string(),
            &n2.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "producer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let produced: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dir = workdir();
    let d = dir.path();
    std::fs::write(
        d.join("p.yaml"),
        format!(
            r#"name: avro-in
sources:
  txns:
    type: kafka
    brokers: {brokers}
    topic: {topic}
    group: {group}
    start: earliest
    stop_at_end: true
    session_timeout: 6s
    format: avro
    schema_registry: {{ url: "{registry}" }}
    schema: {{ txn_id: utf8, card_id: int64, amount: float64, ts: timestamp_ms, channel: utf8? }}
transforms:
  large: {{ type: filter, inputs: [txns], where: "amount > 5000" }}
sinks:
  out: {{ type: file, inputs: [txns], path: out }}
  alerts:
    type: kafka
    inputs: [large]
    brokers: {brokers}
    topic: {alerts}
    key: card_id
    format: avro
    schema_registry: {{ url: "{registry}" }}
dead_letter: {{ type: file, path: dead }}
"#,
            group = unique("g-avro")
        ),
    )
    .unwrap();
    let run = Command::new(shoal_bin())
        .args([
            "run",
            "--no-progress",
            "--http-addr",
            "127.0.0.1:0",
            "p.yaml",
        ])
        .current_dir(d)
        .env("SHOAL_DATA_DIR", d.join("data"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let rows = read_jsonl_dir(&d.join("out"));
    assert_eq!(rows.len() as u64, n1 + n2, "{stderr}");
    let by_id: BTreeMap<u64, &serde_json::Value> = rows
        .iter()
        .map(|r| (r["txn_id"].as_str().unwrap()[1..].parse().unwrap(), r))
        .collect();
    assert_eq!(by_id.len() as u64, n1 + n2, "a record twice");
    for (i, r) in &by_id {
        assert_eq!(r["card_id"].as_u64(), Some(i % 97), "{r}");
        assert_eq!(r["amount"].as_f64(), Some(*i as f64 * 1.25), "{r}");
        // Event time from the logical timestamp-millis type.
        let ts = chrono_free_seconds(r["ts"].as_str().unwrap());
        assert_eq!(ts, *i as i64, "{r}");
        if *i < n1 {
            assert!(
                r.get("channel").is_none_or(|c| c.is_null()),
                "version 1 has no channel: {r}"
            );
        } else {
            assert_eq!(
                r["channel"].as_str(),
                Some(["web", "pos", "app"][(*i % 3) as usize]),
                "{r}"
            );
        }
    }
    let dead = std::fs::read_to_string(d.join("dead/dead-letters.jsonl")).unwrap();
    let letters: Vec<serde_json::Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 3, "{dead}");
    let ids = &produced["ids"];
    let want = [
        ("unknown id", "unknown schema id 999999".to_string()),
        ("truncated", format!("schema id {}: bad avro", ids["v1"])),
        (
            "protobuf",
            format!(
                "schema id {} is a PROTOBUF schema, not Avro",
                ids["protobuf"]
            ),
        ),
    ];
    for (what, reason) in want {
        let at = produced["bad"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["what"] == what)
            .unwrap();
        let l = letters
            .iter()
            .find(|l| l["partition"] == at["partition"] && l["offset"] == at["offset"])
            .unwrap_or_else(|| panic!("no dead letter for the {what} record at {at}: {dead}"));
        assert!(
            l["reason"].as_str().unwrap().contains(&reason),
            "{what}: {l}"
        );
        assert_eq!(l["node"], "txns");
    }
}

/// Seconds after 2026-01-01T00:00:00 of a `YYYY-MM-DDTHH:MM:SS` text on
/// that day or the next.
fn chrono_free_seconds(ts: &str) -> i64 {
    let (date, time) = ts.split_once('T').unwrap();
    let day: i64 = date[8..10].parse().unwrap();
    let mut p = time.split(':').map(|x| x.parse::<f64>().unwrap() as i64);
    let (h, m, s) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap());
    (day - 1) * 86_400 + h * 3600 + m * 60 + s
}
