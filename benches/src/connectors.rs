//! Connector throughput against the real services of `scripts/services.sh`
//! (`SHOAL_POSTGRES_URL`, `SHOAL_REDIS_URL`), in this process on a 1-worker
//! tokio runtime, records per CPU-second of this process (the stores run in
//! their own; Redis's own CPU is reported from `INFO cpu`):
//!
//! 1. Lookup join (generator → `LEFT JOIN` lookup → filter) against a CSV
//!    file, a Postgres table and Redis hashes, with 0 %, 90 % and 99 % of
//!    the rows' keys in the cache: row `i` has a hot key (`i % 100`, one of
//!    100 rows present in every store, cached after the first batch) when
//!    `i % 100 < hit %`, else a key of its own (`1 000 000 + i`, fetched and
//!    absent). For Redis the keys fetched are counted from the server's
//!    command statistics, as a check of the construction.
//! 2. The Redis sink: generator → hashes `bench:<run>:card:{card_id}` with
//!    checkpoints every second (each epoch staged, then applied by one
//!    script), and the time Redis spent applying (its CPU).
//!
//! 3. Avro and Protobuf decode into Arrow next to JSON decode of the same
//!    records (generator rows; Avro in single-object encoding, plain
//!    Protobuf messages, JSON lines), chunks
//!    of 8 192 through the decoders the Kafka source uses, one thread. This
//!    part needs no services: `connector-bench RECORDS --decode-only`.
//!
//! ```sh
//! scripts/services.sh start && source /tmp/shoal-services/env
//! cargo run --release -p shoal-benches --bin connector-bench -- [RECORDS]
//! ```

use shoal_benches::run_plan;
use shoal_plan::PlanOptions;
use shoal_tests::services::{pg, redis, unique};

const HOT: i64 = 100;

/// (rows/s wall, rows/s per CPU-second, rows in, rows out of the join).
fn run(yaml: &str) -> (f64, f64, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = shoal_plan::parse_str("connector-bench.yaml", yaml).expect("valid pipeline");
    let opts = PlanOptions {
        data_dir: Some(dir.path().join("data")),
        base_dir: dir.path().to_path_buf(),
        ..PlanOptions::default()
    };
    let plan = shoal_plan::plan(&spec, &opts).expect("plan");
    let t = run_plan(plan, 1);
    let n = t.summary.source_records();
    (n as f64 / t.wall, n as f64 / t.cpu, n)
}

fn lookup_yaml(n: u64, hit: u32, lookup: &str) -> String {
    format!(
        r#"name: lookup-bench
sources:
  txns: {{ type: generator, seed: 1, count: {n} }}
transforms:
  keyed:
    type: sql
    inputs: [txns]
    query: |
      SELECT txn_id, amount,
             CASE WHEN CAST(substr(txn_id, 5) AS BIGINT) % 100 < {hit}
                  THEN CAST(substr(txn_id, 5) AS BIGINT) % 100
                  ELSE 1000000 + CAST(substr(txn_id, 5) AS BIGINT) END AS k
      FROM txns
  joined:
    type: sql
    inputs: [keyed]
    lookup:
      m:
{lookup}
    query: |
      SELECT t.txn_id, t.amount, m.category FROM keyed t LEFT JOIN m ON t.k = m.id
  none: {{ type: filter, inputs: [joined], where: "amount < 0" }}
sinks:
  out: {{ type: stdout, inputs: [none] }}
"#
    )
}

fn redis_info(url: &str, section: &str, field: &str) -> f64 {
    let mut con = redis(url);
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query(&mut con)
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().trim_start_matches("calls=").parse().ok())
        .unwrap_or(0.0)
}

fn hmget_calls(url: &str) -> f64 {
    let mut con = redis(url);
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut con)
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_hmget:calls="))
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Avro vs JSON decode of the same `n` generator records.
fn decode_bench(n: u64) {
    use shoal_connectors::format::{RecordChunk, RecordDecoder};
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "name: rows\nsources:\n  txns: {{ type: generator, seed: 4, count: {n} }}\nsinks:\n  all: {{ type: file, inputs: [txns], path: {} }}\n",
        dir.path().join("all").display()
    );
    let spec = shoal_plan::parse_str("rows.yaml", &yaml).expect("valid pipeline");
    let opts = PlanOptions {
        data_dir: Some(dir.path().join("data")),
        ..PlanOptions::default()
    };
    run_plan(shoal_plan::plan(&spec, &opts).expect("plan"), 1);
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for f in std::fs::read_dir(dir.path().join("all")).unwrap() {
        let text = std::fs::read(f.unwrap().path()).unwrap();
        lines.extend(
            text.split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(<[u8]>::to_vec),
        );
    }
    let schema = shoal_connectors::generator::transactions_schema();
    // The same rows as Avro single-object records.
    let mut json = RecordDecoder::new(shoal_dsl::FileFormat::Jsonl, schema.clone()).unwrap();
    let avro_schema = arrow_avro::schema::AvroSchema::try_from(schema.as_ref()).unwrap();
    let avsc = dir.path().join("txn.avsc");
    std::fs::write(&avsc, &avro_schema.json_string).unwrap();
    let mut md = std::collections::HashMap::new();
    md.insert(
        arrow_avro::schema::SCHEMA_METADATA_KEY.to_string(),
        avro_schema.json_string.clone(),
    );
    let with_avro = arrow::datatypes::Schema::new_with_metadata(schema.fields().clone(), md);
    let mut enc = arrow_avro::writer::WriterBuilder::new(with_avro)
        .build_encoder::<arrow_avro::writer::format::AvroSoeFormat>()
        .unwrap();
    let mut avro_records: Vec<Vec<u8>> = Vec::with_capacity(lines.len());
    let mut bad = Vec::new();
    for part in lines.chunks(8192) {
        let mut c = RecordChunk::default();
        for (i, l) in part.iter().enumerate() {
            c.push(l, None, i as u64);
        }
        let b = json.decode(&c, &mut bad).unwrap().unwrap();
        enc.encode(&b).unwrap();
        avro_records.extend(enc.flush().iter().map(|r| r.to_vec()));
    }
    assert_eq!(avro_records.len(), lines.len());
    let mut avro = shoal_connectors::avro::AvroDecoder::new(
        schema.clone(),
        &shoal_dsl::AvroSource::SchemaFile(avsc),
    )
    .unwrap();
    // The same rows as plain Protobuf messages (the encoder a `protobuf`
    // sink uses), decoded as a `proto_schema` source does.
    let proto = dir.path().join("txn.proto");
    std::fs::write(
        &proto,
        "syntax = \"proto3\";\npackage bench;\nimport \"google/protobuf/timestamp.proto\";\n\
         message Txn { string txn_id = 1; int64 card_id = 2; int64 merchant_id = 3; double amount = 4; \
         string country = 5; google.protobuf.Timestamp ts = 6; bool is_fraud = 7; }\n",
    )
    .unwrap();
    let mut proto_enc =
        shoal_connectors::protobuf::encode::ProtoEncoder::new(&schema, &proto, "bench.Txn", None)
            .unwrap();
    let mut proto_records: Vec<Vec<u8>> = Vec::with_capacity(lines.len());
    for part in lines.chunks(8192) {
        let mut c = RecordChunk::default();
        for (i, l) in part.iter().enumerate() {
            c.push(l, None, i as u64);
        }
        let b = json.decode(&c, &mut bad).unwrap().unwrap();
        let (mut values, mut ends) = (Vec::new(), Vec::new());
        proto_enc.encode(&b, &mut values, &mut ends).unwrap();
        let mut start = 0;
        for end in ends {
            proto_records.push(values[start..end].to_vec());
            start = end + 1; // the separator byte
        }
    }
    assert_eq!(proto_records.len(), lines.len());
    let mut protobuf = shoal_connectors::protobuf::ProtoDecoder::new(
        schema.clone(),
        &shoal_dsl::ProtoSource::SchemaFile {
            path: proto.clone(),
            message: "bench.Txn".into(),
        },
    )
    .unwrap();
    let time = |records: &[Vec<u8>], decode: &mut dyn FnMut(&RecordChunk) -> usize| -> (f64, f64) {
        let chunks: Vec<RecordChunk> = records
            .chunks(8192)
            .map(|part| {
                let mut c = RecordChunk::default();
                for (i, r) in part.iter().enumerate() {
                    c.push(r, None, i as u64);
                }
                c
            })
            .collect();
        let cpu0 = shoal_benches::cpu_seconds().unwrap_or(0.0);
        let t0 = std::time::Instant::now();
        let mut rows = 0;
        for c in &chunks {
            rows += decode(c);
        }
        assert_eq!(rows, records.len());
        let cpu = shoal_benches::cpu_seconds().unwrap_or(0.0) - cpu0;
        (
            rows as f64 / t0.elapsed().as_secs_f64(),
            rows as f64 / cpu.max(0.01),
        )
    };
    let bytes = |r: &[Vec<u8>]| r.iter().map(Vec::len).sum::<usize>() as f64 / r.len() as f64;
    let (jw, jc) = time(&lines, &mut |c| {
        json.decode(c, &mut bad)
            .unwrap()
            .map_or(0, |b| b.num_rows())
    });
    let (aw, ac) = time(&avro_records, &mut |c| {
        avro.decode(c, &mut bad)
            .unwrap()
            .map_or(0, |b| b.num_rows())
    });
    let (pw, pc) = time(&proto_records, &mut |c| {
        protobuf
            .decode(c, &mut bad)
            .unwrap()
            .map_or(0, |b| b.num_rows())
    });
    assert!(bad.is_empty());
    println!(
        "## Decode into Arrow, {n} generator records (7 columns), chunks of 8 192, one thread\n"
    );
    println!("| format | bytes per record | records/s (wall) | records per CPU-second |");
    println!("|---|---:|---:|---:|");
    println!(
        "| JSON lines (arrow-json + strict checks) | {:.0} | {jw:.0} | {jc:.0} |",
        bytes(&lines)
    );
    println!(
        "| Avro, single-object encoding (arrow-avro, one record at a time) | {:.0} | {aw:.0} | {ac:.0} |",
        bytes(&avro_records)
    );
    println!(
        "| Protobuf, plain messages (wire format read straight into the builders) | {:.0} | {pw:.0} | {pc:.0} |",
        bytes(&proto_records)
    );
    println!();
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500_000);
    decode_bench(n);
    if std::env::args().any(|a| a == "--decode-only") {
        return;
    }
    let pg_url =
        std::env::var("SHOAL_POSTGRES_URL").expect("SHOAL_POSTGRES_URL (scripts/services.sh)");
    let redis_url =
        std::env::var("SHOAL_REDIS_URL").expect("SHOAL_REDIS_URL (scripts/services.sh)");
    let run_id = unique("cb").replace('-', "_");

    // The hot rows in every store.
    let csv = std::env::temp_dir().join(format!("{run_id}.csv"));
    let mut text = String::from("id,category\n");
    for i in 0..HOT {
        text += &format!("{i},cat-{}\n", i % 7);
    }
    std::fs::write(&csv, text).unwrap();
    let table = format!("{run_id}_m");
    pg(
        &pg_url,
        &format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, category text);
             INSERT INTO {table} SELECT i, 'cat-' || (i % 7) FROM generate_series(0, {}) i",
            HOT - 1
        ),
    );
    let prefix = format!("{run_id}:m");
    {
        let mut con = redis(&redis_url);
        let mut p = redis::pipe();
        for i in 0..HOT {
            p.cmd("HSET")
                .arg(format!("{prefix}:{i}"))
                .arg("category")
                .arg(format!("cat-{}", i % 7))
                .ignore();
        }
        let _: () = p.query(&mut con).unwrap();
    }

    println!("## Lookup join, {n} generator rows, 1 tokio worker\n");
    println!(
        "| table | rows with a cached key | keys fetched (measured) | rows/s (wall) | rows per CPU-second (Shoal) |"
    );
    println!("|---|---:|---:|---:|---:|");
    let csv_lookup = format!(
        "        path: {}\n        schema: {{ id: int64, category: utf8 }}",
        csv.display()
    );
    let (w, c, _) = run(&lookup_yaml(n, 90, &csv_lookup));
    println!("| CSV file (held whole) | all | — | {:.0} | {:.0} |", w, c);
    for hit in [0u32, 90, 99] {
        let pg_lookup = format!(
            "        type: postgres\n        url: \"{pg_url}\"\n        table: {table}\n        schema: {{ id: int64, category: utf8 }}\n        cache: {{ max_entries: 100000, ttl: 1h }}"
        );
        let (w, c, _) = run(&lookup_yaml(n, hit, &pg_lookup));
        println!("| Postgres table | {hit} % | — | {w:.0} | {c:.0} |");
    }
    for hit in [0u32, 90, 99] {
        let redis_lookup = format!(
            "        type: redis\n        url: \"{redis_url}\"\n        key: \"{prefix}:{{id}}\"\n        schema: {{ id: int64, category: utf8 }}\n        cache: {{ max_entries: 100000, ttl: 1h }}"
        );
        let before = hmget_calls(&redis_url);
        let (w, c, _) = run(&lookup_yaml(n, hit, &redis_lookup));
        let fetched = hmget_calls(&redis_url) - before;
        println!(
            "| Redis hashes | {hit} % | {:.1} % of rows | {w:.0} | {c:.0} |",
            100.0 * fetched / n as f64
        );
    }

    println!("\n## Redis sink, {n} generator rows, checkpoint every 1 s, 1 tokio worker\n");
    let sink_yaml = format!(
        "name: redis-sink-bench\ncheckpoint: {{ interval: 1s }}\nsources:\n  txns: {{ type: generator, seed: 2, count: {n} }}\nsinks:\n  online: {{ type: redis, inputs: [txns], url: \"{redis_url}\", key: \"bench:{run_id}:card:{{card_id}}\", fields: [amount, country, ts] }}\n"
    );
    let cpu0 = redis_info(&redis_url, "cpu", "used_cpu_user")
        + redis_info(&redis_url, "cpu", "used_cpu_sys");
    let (w, c, _) = run(&sink_yaml);
    let cpu1 = redis_info(&redis_url, "cpu", "used_cpu_user")
        + redis_info(&redis_url, "cpu", "used_cpu_sys");
    println!(
        "| rows/s (wall) | rows per CPU-second (Shoal) | Redis CPU per 1 000 rows (stage + apply) |"
    );
    println!("|---:|---:|---:|");
    println!(
        "| {w:.0} | {c:.0} | {:.2} ms |",
        1000.0 * 1000.0 * (cpu1 - cpu0) / n as f64
    );

    // Clean up what the run wrote.
    pg(&pg_url, &format!("DROP TABLE {table}"));
    let _ = std::fs::remove_file(&csv);
    let mut con = redis(&redis_url);
    for pattern in [
        format!("{prefix}:*"),
        format!("bench:{run_id}:*"),
        "shoal:redis-sink-bench:*".to_string(),
    ] {
        let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(&mut con).unwrap();
        for chunk in keys.chunks(10_000) {
            let _: () = redis::cmd("DEL").arg(chunk).query(&mut con).unwrap();
        }
    }
}
