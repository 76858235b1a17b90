//! Protobuf records from Kafka, written by another program: confluent-kafka's
//! ProtobufSerializer (Python) against a real schema registry (karapace, on
//! the test broker), in the Confluent wire format (schema id, message
//! indexes). The producer switches to a second schema version with an added
//! field mid-stream and finally sends four records no one can read; Shoal
//! reads every good record with the declared columns (the new field NULL
//! before the switch, its value after) and sends the four to the dead
//! letters with their partition, offset and reason, without stopping.

use std::collections::BTreeMap;
use std::process::Command;

use shoal_tests::services::{create_topic, kafka_brokers, schema_registry_url, unique};
use shoal_tests::{read_jsonl_dir, shoal_run, workdir};

#[test]
fn protobuf_from_the_registry_with_a_new_schema_version_and_bad_records() {
    let (Some(brokers), Some(registry)) = (kafka_brokers(), schema_registry_url()) else {
        return;
    };
    let topic = unique("proto");
    create_topic(&brokers, &topic, 2);
    let alerts = unique("proto-alerts");
    create_topic(&brokers, &alerts, 2);
    let (n1, n2) = (3000u64, 2000u64);
    let produced = shoal_tests::python_json(
        "tests/protobuf/produce.py",
        &[
            &brokers,
            &registry,
            &topic,
            &n1.to_string(),
            &n2.to_string(),
        ],
    );
    let dir = workdir();
    let d = dir.path();
    std::fs::write(
        d.join("p.yaml"),
        format!(
            r#"name: proto-in
sources:
  txns:
    type: kafka
    brokers: {brokers}
    topic: {topic}
    group: {group}
    start: earliest
    stop_at_end: true
    session_timeout: 6s
    format: protobuf
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
    format: protobuf
    proto_schema: {{ file: "{proto}", message: shoal.alerts.Alert }}
    schema_registry: {{ url: "{registry}" }}
dead_letter: {{ type: file, path: dead }}
"#,
            group = unique("g-proto"),
            proto = shoal_tests::repo_root()
                .join("pipelines/schemas/alerts.proto")
                .display()
        ),
    )
    .unwrap();
    let run = shoal_run(d, "p.yaml").output().unwrap();
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
        // google.protobuf.Timestamp into timestamp_ms: 2026-01-01 + i seconds.
        let ts = r["ts"].as_str().unwrap();
        let (h, m, s) = (i / 3600, (i / 60) % 60, i % 60);
        assert!(
            ts.starts_with(&format!("2026-01-01T{h:02}:{m:02}:{s:02}")),
            "{r}"
        );
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
    assert_eq!(letters.len(), 4, "{dead}");
    let ids = &produced["ids"];
    let want = [
        ("unknown id", "unknown schema id 999999".to_string()),
        ("truncated", "not a shoal.test.Txn message".to_string()),
        (
            "other type",
            format!(
                "schema id {}: field `txn_id` is not in message shoal.test.Refund and the schema requires it",
                ids["v1"]
            ),
        ),
        (
            "avro",
            format!("schema id {} is a AVRO schema, not Protobuf", ids["avro"]),
        ),
    ];
    for (what, reason) in want {
        let at = produced["bad"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["what"] == what)
            .unwrap();
        shoal_tests::dead_letter_at(&letters, at, "txns", &reason);
    }
    // The alerts, read back by confluent-kafka's ProtobufDeserializer.
    let read =
        shoal_tests::python_json("tests/protobuf/consume.py", &[&brokers, &registry, &alerts]);
    let records = read["records"].as_array().unwrap();
    let want: Vec<u64> = (0..n1 + n2).filter(|i| *i as f64 * 1.25 > 5000.0).collect();
    assert_eq!(records.len(), want.len(), "alerts: {read}");
    let mut got: Vec<u64> = records
        .iter()
        .map(|r| r["txn_id"].as_str().unwrap()[1..].parse().unwrap())
        .collect();
    got.sort_unstable();
    assert_eq!(got, want, "every alert once");
    for r in records {
        let i: u64 = r["txn_id"].as_str().unwrap()[1..].parse().unwrap();
        // int64 is a string in protobuf's JSON mapping.
        assert_eq!(
            r["card_id"].as_str(),
            Some((i % 97).to_string().as_str()),
            "{r}"
        );
        assert_eq!(r["amount"].as_f64(), Some(i as f64 * 1.25), "{r}");
        let (h, m, s) = (i / 3600, (i / 60) % 60, i % 60);
        assert_eq!(
            r["ts"].as_str(),
            Some(format!("2026-01-01T{h:02}:{m:02}:{s:02}Z").as_str()),
            "{r}"
        );
        assert_eq!(
            r["channel"].as_str(),
            Some(["web", "pos", "app"][(i % 3) as usize]),
            "{r}"
        );
    }
    let schemas = read["schemas"].as_object().unwrap();
    assert_eq!(schemas.len(), 1, "one registered schema: {read}");
    let (_, s) = schemas.iter().next().unwrap();
    assert_eq!(s["type"], "PROTOBUF");
    assert!(s["text"].as_str().unwrap().contains("message Alert"), "{s}");
}

/// Without a registry: plain messages of the type named in
/// `proto_schema`, compiled from the `.proto` file when the job is planned
/// — so a wrong message name or a column the message cannot fill is a plan
/// error at its YAML line, before anything runs.
#[test]
fn a_proto_file_is_checked_at_plan_time() {
    let dir = workdir();
    let d = dir.path();
    std::fs::write(
        d.join("txn.proto"),
        "syntax = \"proto3\";\npackage shop;\nmessage Txn { string txn_id = 1; double amount = 2; repeated string tags = 3; }\n",
    )
    .unwrap();
    let yaml = |message: &str, schema: &str| {
        format!(
            r#"name: proto-file
sources:
  txns:
    type: kafka
    brokers: 127.0.0.1:1
    topic: t
    format: protobuf
    proto_schema: {{ file: txn.proto, message: {message} }}
    schema: {{ {schema} }}
sinks:
  out: {{ type: stdout, inputs: [txns] }}
"#
        )
    };
    let validate = |name: &str, text: String| {
        std::fs::write(d.join(name), text).unwrap();
        let out = Command::new(shoal_tests::shoal_bin())
            .current_dir(d)
            .args(["validate", name])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string()
                + &String::from_utf8_lossy(&out.stdout),
        )
    };
    let (code, text) = validate("ok.yaml", yaml("shop.Txn", "txn_id: utf8, amount: float64"));
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = validate("name.yaml", yaml("shop.Nope", "txn_id: utf8"));
    assert_ne!(code, Some(0), "{text}");
    assert!(text.contains("name.yaml:8:47:"), "{text}");
    assert!(
        text.contains("no message `shop.Nope`") && text.contains("it has: shop.Txn"),
        "{text}"
    );
    let (code, text) = validate("type.yaml", yaml("shop.Txn", "txn_id: utf8, amount: int64"));
    assert_ne!(code, Some(0), "{text}");
    assert!(text.contains("type.yaml:9:"), "{text}");
    assert!(
        text.contains("field `amount` of shop.Txn is double, which cannot be read as Int64"),
        "{text}"
    );
    std::fs::write(
        d.join("broken.proto"),
        "syntax = \"proto3\";\nmessage Txn { strin txn_id = 1; }\n",
    )
    .unwrap();
    let (code, text) = validate(
        "broken.yaml",
        yaml("Txn", "txn_id: utf8").replace("txn.proto", "broken.proto"),
    );
    assert_ne!(code, Some(0), "{text}");
    assert!(
        text.contains("broken.yaml:8:27:") && text.contains("broken.proto"),
        "{text}"
    );
    let (code, text) = validate("list.yaml", yaml("shop.Txn", "tags: utf8"));
    assert_ne!(code, Some(0), "{text}");
    assert!(text.contains("repeated"), "{text}");
}

/// The embedded log carries binary records too: one job writes the
/// generator's transactions to two log topics — as plain Protobuf messages
/// of a `.proto` type, and as Avro under a schema it registers — in a
/// checkpointed (transactional) run; a second job reads both back. Every
/// row must come back exactly as the first job wrote it to a JSON file.
#[test]
fn log_topics_carry_protobuf_and_avro() {
    let registry = schema_registry_url();
    let dir = workdir();
    let d = dir.path();
    std::fs::write(
        d.join("txn.proto"),
        r#"syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
message Txn {
  string txn_id = 1;
  int64 card_id = 2;
  int64 merchant_id = 3;
  double amount = 4;
  string country = 5;
  google.protobuf.Timestamp ts = 6;
  bool is_fraud = 7;
}
"#,
    )
    .unwrap();
    let (avro_sink, avro_source, avro_out) = match &registry {
        Some(url) => (
            format!(
                "  av: {{ type: log, inputs: [txns], topic: txns-av, partitions: 2, key: card_id, format: avro, schema_registry: {{ url: \"{url}\", subject: {} }} }}\n",
                unique("log-avro")
            ),
            format!(
                "  av: {{ type: log, topic: txns-av, start: earliest, stop_at_end: true, format: avro, schema_registry: {{ url: \"{url}\" }}, schema: {{ {SCHEMA} }} }}\n"
            ),
            "  out_av: { type: file, inputs: [av], path: out-av }\n".to_string(),
        ),
        None => Default::default(),
    };
    std::fs::write(
        d.join("write.yaml"),
        format!(
            r#"name: write-binary
checkpoint: {{ interval: 500ms }}
sources:
  txns: {{ type: generator, seed: 7, count: 4000, rate: 8000/s, batch_size: 500 }}
sinks:
  reference: {{ type: file, inputs: [txns], path: reference }}
  pb: {{ type: log, inputs: [txns], topic: txns-pb, partitions: 2, key: card_id, format: protobuf, proto_schema: {{ file: txn.proto, message: shop.Txn }} }}
{avro_sink}"#
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("read.yaml"),
        format!(
            r#"name: read-binary
sources:
  pb: {{ type: log, topic: txns-pb, start: earliest, stop_at_end: true, format: protobuf, proto_schema: {{ file: txn.proto, message: shop.Txn }}, schema: {{ {SCHEMA} }} }}
{avro_source}sinks:
  out_pb: {{ type: file, inputs: [pb], path: out-pb }}
{avro_out}dead_letter: {{ type: file, path: dead }}
"#
        ),
    )
    .unwrap();
    for file in ["write.yaml", "read.yaml"] {
        let run = shoal_run(d, file).output().unwrap();
        assert!(
            run.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let sorted = |dir: &str| {
        let mut rows: Vec<String> = read_jsonl_dir(&d.join(dir))
            .iter()
            .map(|r| r.to_string())
            .collect();
        rows.sort();
        rows
    };
    let reference = sorted("reference");
    assert_eq!(reference.len(), 4000);
    let same = |what: &str, got: Vec<String>| {
        assert_eq!(got.len(), reference.len(), "{what}: rows");
        if let Some((g, r)) = got.iter().zip(&reference).find(|(g, r)| g != r) {
            panic!("{what}: read back {g}, written {r}");
        }
    };
    same("protobuf through the log", sorted("out-pb"));
    if registry.is_some() {
        same("avro through the log", sorted("out-av"));
    }
    assert!(
        !d.join("dead/dead-letters.jsonl").exists()
            || std::fs::read_to_string(d.join("dead/dead-letters.jsonl"))
                .unwrap()
                .is_empty()
    );
}

const SCHEMA: &str = "txn_id: utf8, card_id: int64, merchant_id: int64, amount: float64, country: utf8, ts: timestamp_ms, is_fraud: bool";
