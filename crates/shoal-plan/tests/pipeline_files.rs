//! Pipeline files through the public API: valid files, and every kind of bad input
//! (each must fail fast, with a located message and no panic).

use std::path::Path;
use std::time::{Duration, Instant};

use miette::Diagnostic;
use shoal_connectors::file::{FileSinkConfig, FileSourceConfig};
use shoal_connectors::generator::{GeneratorConfig, GeneratorProfile};
use shoal_connectors::log::{LogSinkConfig, LogSourceConfig};
use shoal_connectors::redis::RedisSinkConfig;
use shoal_connectors::stdout::StdoutSinkConfig;
use shoal_dsl::*;
use shoal_plan::{load_file, parse_bytes, parse_str};

const EXAMPLE: &str = r#"name: large-foreign
sources:
  txns: { type: generator, seed: 42, count: 100000 }
transforms:
  big: { type: filter, inputs: [txns], where: "amount > 1000" }
  flagged:
    type: sql
    inputs: [big]
    query: SELECT txn_id, card_id, amount, country, country <> 'US' AS foreign_txn FROM big
sinks:
  out: { type: file, inputs: [flagged], path: out/large, format: jsonl }
dead_letter: { type: file, path: out/dead-letter }
"#;

/// Hang guard for every parse: catches a hang or a runaway blow-up, never
/// fails on a slow or loaded machine (parses take milliseconds; the real
/// limits — alias expansion, nesting depth, file size — are checked by the
/// errors they produce).
const HANG_GUARD: Duration = Duration::from_secs(120);

fn timed<T>(f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    assert!(took < HANG_GUARD, "hang guard: took {took:?}");
    out
}

fn ok(yaml: &str) -> PipelineSpec {
    timed(|| parse_str("p.yaml", yaml))
        .unwrap_or_else(|e| panic!("expected Ok, got:\n{}", e.render()))
}

fn err(yaml: &str) -> DslError {
    let e = timed(|| parse_str("p.yaml", yaml)).expect_err("expected an error");
    // Every rendering works and Display is one line.
    let shown = e.to_string();
    assert!(!shown.contains('\n'), "{shown}");
    assert!(shown.starts_with("p.yaml"), "{shown}");
    let _ = e.render();
    e
}

fn err_bytes(bytes: &[u8]) -> DslError {
    timed(|| parse_bytes("p.yaml", bytes)).expect_err("expected an error")
}

/// Assert the error is at `line` (and `column` when given), and its Display says so.
fn at(e: &DslError, line: usize, column: Option<usize>) {
    let loc = e
        .location
        .unwrap_or_else(|| panic!("no location: {}", e.render()));
    assert_eq!(loc.line, line, "{}", e.render());
    if let Some(c) = column {
        assert_eq!(loc.column, c, "{}", e.render());
    }
    assert!(e.to_string().contains(&format!(":{line}:")), "{e}");
}

fn contains(e: &DslError, needle: &str) {
    let r = e.render();
    assert!(r.contains(needle), "expected {needle:?} in:\n{r}");
}

// ---------------------------------------------------------------- valid files

#[test]
fn the_example_pipeline() {
    let spec = ok(EXAMPLE);
    assert_eq!(spec.name, "large-foreign");
    assert_eq!(spec.file, Path::new("p.yaml"));
    assert_eq!(spec.data_dir, None);
    assert_eq!(spec.checkpoint, None);
    assert!(spec.warnings.is_empty(), "{:?}", spec.warnings);
    let Some(g) = spec.sources["txns"].get::<GeneratorConfig>() else {
        panic!()
    };
    assert_eq!(g.seed, 42);
    assert_eq!(g.count, Some(100_000));
    assert_eq!(g.profile, GeneratorProfile::Transactions);
    assert_eq!((g.batch_size, g.parallelism, g.rate), (8192, 1, None));
    let TransformSpec::Filter(f) = &spec.transforms["big"] else {
        panic!()
    };
    assert_eq!(f.where_, "amount > 1000");
    assert_eq!(f.inputs, ["txns"]);
    let TransformSpec::Sql(q) = &spec.transforms["flagged"] else {
        panic!()
    };
    assert!(q.query.starts_with("SELECT txn_id") && q.query.ends_with("FROM big"));
    let Some(out) = spec.sinks["out"].get::<FileSinkConfig>() else {
        panic!()
    };
    assert_eq!(out.path, Path::new("out/large"));
    assert_eq!(out.format, FileFormat::Jsonl);
    assert_eq!(out.parallelism, 1);
    assert_eq!(
        spec.dead_letter,
        Some(DeadLetterSpec {
            sink: DeadLetterSink::File {
                path: "out/dead-letter".into(),
                format: FileFormat::Jsonl
            }
        })
    );
    assert_eq!(spec.topo_order(), ["txns", "big", "flagged", "out"]);
    assert_eq!(spec.upstream_of("flagged"), Some(&["big".to_string()][..]));
    assert_eq!(spec.upstream_of("txns"), Some(&[][..]));
    assert_eq!(spec.upstream_of("nope"), None);
    assert_eq!(spec.downstream_of("big"), ["flagged"]);
    assert_eq!(spec.transforms["flagged"].kind(), "sql");
    assert_eq!(spec.sinks["out"].kind(), "file");
    assert_eq!(spec.sources["txns"].kind(), "generator");
    // positions
    assert_eq!(
        spec.location_of(&["transforms", "big", "inputs", "0"]),
        Some(Location::new(5, 33))
    );
    assert_eq!(
        spec.location_of(&["transforms", "flagged", "query"]),
        Some(Location::new(9, 12))
    );
    assert_eq!(spec.location_of(&["transforms", "nope"]), None);
}

#[test]
fn default_name_is_the_file_stem() {
    let spec = timed(|| {
        parse_str(
            "dir/fraud-check.yaml",
            &EXAMPLE.replace("name: large-foreign\n", ""),
        )
    })
    .unwrap();
    assert_eq!(spec.name, "fraud-check");
}

#[test]
fn a_full_pipeline_with_every_section() {
    let yaml = r#"
name: fraud-detection
data_dir: ./shoal-data
checkpoint: { interval: 2m30s, keep: 5 }
sources:
  seed_txns:
    type: generator
    profile: transactions
    seed: 42
    count: 200000
    rate: 50000/s
    parallelism: 2
  txns:
    type: log
    topic: transactions
    parallelism: 4
    assignor: round-robin
    start: earliest
    stop_at_end: true
    format: json
    schema: { txn_id: utf8, card_id: int64, amount: float64, country: "utf8?", ts: timestamp_ms }
    event_time: { column: ts, max_delay: 5s, idle_timeout: 30s }
  files:
    type: file
    path: data/in.csv
    header: false
    batch_size: 1024
transforms:
  features:
    type: sql
    inputs: [txns, files]
    parallelism: 4
    key: card_id
    query: |
      SELECT txn_id, card_id, amount, ts
      FROM txns
sinks:
  to_log: { type: log, inputs: [seed_txns], topic: transactions, partitions: 8, key: card_id }
  alerts: { type: stdout, inputs: [features], format: csv }
dead_letter: { type: stdout }
"#;
    let spec = ok(yaml);
    assert_eq!(spec.data_dir.as_deref(), Some(Path::new("./shoal-data")));
    let cp = spec.checkpoint.clone().unwrap();
    assert_eq!(cp.interval, Duration::from_secs(150));
    assert_eq!(cp.keep, 5);
    assert_eq!(cp.timeout, Duration::from_secs(60));
    assert_eq!(
        cp.dir.as_deref(),
        Some(Path::new("./shoal-data/checkpoints"))
    );
    let Some(g) = spec.sources["seed_txns"].get::<GeneratorConfig>() else {
        panic!()
    };
    assert_eq!(g.rate, Some(50000.0));
    assert_eq!(spec.sources["seed_txns"].parallelism(), 2);
    let Some(l) = spec.sources["txns"].get::<LogSourceConfig>() else {
        panic!()
    };
    assert_eq!(l.group, "fraud-detection");
    assert_eq!(l.assignor, Assignor::RoundRobin);
    assert_eq!(l.start, StartFrom::Earliest);
    assert!(l.stop_at_end);
    let schema = l.schema.as_ref().unwrap();
    let names: Vec<&str> = schema.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["txn_id", "card_id", "amount", "country", "ts"]);
    assert_eq!(schema.field("country").unwrap().data_type, FieldType::Utf8);
    assert!(schema.field("country").unwrap().nullable);
    assert!(!schema.field("ts").unwrap().nullable);
    assert_eq!(
        schema.field("ts").unwrap().data_type,
        FieldType::TimestampMs
    );
    let et = spec.sources["txns"].event_time().unwrap();
    assert_eq!(et.column, "ts");
    assert_eq!(et.max_delay, Duration::from_secs(5));
    assert_eq!(et.idle_timeout, Some(Duration::from_secs(30)));
    let Some(f) = spec.sources["files"].get::<FileSourceConfig>() else {
        panic!()
    };
    assert_eq!(f.format, FileFormat::Csv); // from the extension
    assert!(!f.header);
    assert_eq!(f.batch_size, 1024);
    assert_eq!(spec.transforms["features"].parallelism(), 4);
    assert_eq!(spec.transforms["features"].key(), Some("card_id"));
    let Some(ls) = spec.sinks["to_log"].get::<LogSinkConfig>() else {
        panic!()
    };
    assert_eq!(ls.partitions, Some(8));
    assert_eq!(spec.sinks["to_log"].parallelism(), 1);
    assert_eq!(spec.sinks["to_log"].key(), Some("card_id"));
    let Some(s) = spec.sinks["alerts"].get::<StdoutSinkConfig>() else {
        panic!()
    };
    assert_eq!(s.format, FileFormat::Csv);
    assert_eq!(
        spec.dead_letter,
        Some(DeadLetterSpec {
            sink: DeadLetterSink::Stdout
        })
    );
    assert_eq!(
        spec.topo_order(),
        ["seed_txns", "txns", "files", "features", "to_log", "alerts"]
    );
    assert!(spec.warnings.is_empty(), "{:?}", spec.warnings);
}

#[test]
fn topo_order_follows_inputs_not_file_order() {
    let spec = ok(r#"
sources: { s: { type: generator } }
transforms:
  c: { type: filter, inputs: [b], where: "x" }
  b: { type: filter, inputs: [a], where: "x" }
  a: { type: filter, inputs: [s], where: "x" }
sinks: { out: { type: stdout, inputs: [c] } }
"#);
    assert_eq!(spec.topo_order(), ["s", "a", "b", "c", "out"]);
}

#[test]
fn unread_sources_and_transforms_are_warnings() {
    let spec = ok(r#"
sources:
  txns: { type: generator }
  unused: { type: generator }
transforms:
  dead_end: { type: filter, inputs: [txns], where: "x" }
sinks:
  out: { type: stdout, inputs: [txns] }
"#);
    assert_eq!(spec.warnings.len(), 2);
    let w = &spec.warnings[0];
    assert!(w.is_warning());
    assert_eq!(w.severity(), Some(miette::Severity::Warning));
    assert!(w.message.contains("source \"unused\""), "{w}");
    at(w, 4, Some(3));
    assert!(spec.warnings[1].message.contains("transform \"dead_end\""));
    at(&spec.warnings[1], 6, Some(3));
}

#[test]
fn error_at_names_the_yaml_line() {
    let spec = ok(EXAMPLE);
    let e = spec.error_at(
        &["transforms", "flagged", "query"],
        "unknown column \"cardid\"",
        Some("did you mean \"card_id\"?".into()),
    );
    assert_eq!(e.to_string(), "p.yaml:9:12: unknown column \"cardid\"");
    assert_eq!(e.help().unwrap().to_string(), "did you mean \"card_id\"?");
    // falls back to the nearest parent
    let e = spec.error_at(&["transforms", "big", "nope", "deeper"], "m", None);
    at(&e, 5, Some(8));
    // then to 1:1
    let e = spec.error_at(&["nothing", "here"], "m", None);
    assert_eq!(e.location, Some(Location::new(1, 1)));
    // inside a value: column 15 of the query is "card_id"
    let e = spec.error_in_value(&["transforms", "flagged", "query"], 1, 16, "m", None);
    assert_eq!(e.location, Some(Location::new(9, 27)));
}

#[test]
fn error_in_a_block_query() {
    let spec = ok(r#"
sources: { t: { type: generator } }
transforms:
  q:
    type: sql
    inputs: [t]
    query: |
      SELECT a
      FROM t WHERE b > 1
sinks: { o: { type: stdout, inputs: [q] } }
"#);
    let e = spec.error_in_value(&["transforms", "q", "query"], 2, 14, "no column b", None);
    at(&e, 9, Some(20));
    contains(&e, "FROM t WHERE b > 1");
}

#[test]
fn diagnostics_have_a_label_and_source() {
    let e = err(&EXAMPLE.replace("inputs: [txns]", "inputs: [txn]"));
    assert_eq!(e.to_string(), "p.yaml:5:33: unknown input \"txn\"");
    assert_eq!(e.help().unwrap().to_string(), "did you mean \"txns\"?");
    assert!(e.source_code().is_some());
    let labels: Vec<_> = e.labels().unwrap().collect();
    assert_eq!(labels.len(), 1);
    assert_eq!(labels[0].len(), 3);
    let r = e.render();
    let lines: Vec<&str> = r.lines().collect();
    assert_eq!(lines[0], "p.yaml:5:33: unknown input \"txn\"");
    assert!(lines[1].ends_with("big: { type: filter, inputs: [txn], where: \"amount > 1000\" }"));
    let caret = lines[2].find('^').unwrap();
    assert_eq!(&lines[1][caret..caret + 3], "txn");
    assert_eq!(lines[3], "hint: did you mean \"txns\"?");
}

#[test]
fn crlf_line_endings_and_a_bom() {
    let crlf = EXAMPLE.replace('\n', "\r\n");
    let spec = ok(&crlf);
    assert_eq!(
        spec.location_of(&["transforms", "big", "inputs", "0"]),
        Some(Location::new(5, 33))
    );
    let e = err(&crlf.replace("inputs: [txns]", "inputs: [txn]"));
    at(&e, 5, Some(33));
    assert!(!e.render().contains('\r'));
    let bom = format!("\u{feff}{EXAMPLE}");
    ok(&bom);
    let e = err(&bom.replace("inputs: [txns]", "inputs: [txn]"));
    at(&e, 5, Some(33));
}

#[test]
fn yaml_anchors_and_aliases_work() {
    let spec = ok(r#"
sources:
  a: &gen { type: generator, seed: 7 }
  b: *gen
sinks: { out: { type: stdout, inputs: [a, b] } }
"#);
    assert_eq!(spec.sources["a"], spec.sources["b"]);
}

// --------------------------------------------------------- bad input: files

#[test]
fn empty_file() {
    for text in ["", "\n\n", "# just a comment\n", "---\n"] {
        let e = err(text);
        assert_eq!(
            e.message,
            "the file is empty; a pipeline needs sources and sinks"
        );
        contains(&e, "sources:");
    }
}

#[test]
fn bare_scalar_and_top_level_list() {
    let e = err("hello\n");
    contains(&e, "expected a pipeline");
    contains(&e, "found the string \"hello\"");
    at(&e, 1, Some(1));
    let e = err("# c\n- a\n- b\n");
    contains(&e, "found a list");
    at(&e, 2, Some(1));
    let e = err("42");
    contains(&e, "found the number 42");
    let e = err("~");
    contains(&e, "found null");
}

#[test]
fn invalid_utf8_names_the_position() {
    let e = err_bytes(b"sources:\n  ab\xff\xfe: x\n");
    contains(&e, "invalid UTF-8");
    at(&e, 2, Some(5));
    // random bytes
    let mut x: u32 = 12345;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let e = err_bytes(&bytes);
    assert!(e.location.is_some(), "{}", e.render());
    // UTF-16
    let e = err_bytes(b"\xff\xfes\x00o\x00");
    contains(&e, "UTF-16");
}

#[test]
fn nul_byte() {
    let e = err_bytes(b"sources:\n  a\0b: 1\n");
    contains(&e, "NUL byte");
    at(&e, 2, Some(4));
    let e = err("name: x\nsources:\0\n");
    at(&e, 2, Some(9));
    let e = err("name: \u{1}x\n");
    contains(&e, "control character U+0001");
    at(&e, 1, Some(7));
}

#[test]
fn tab_indentation() {
    let e = err("sources:\n\ttxns: { type: generator }\nsinks: {}\n");
    contains(&e, "tab");
    at(&e, 2, Some(1));
    let e = err("sources:\n  txns:\n  \ttype: generator\n");
    contains(&e, "tab");
    at(&e, 3, None);
    // tabs inside a value are fine
    ok(&EXAMPLE.replace("amount > 1000", "amount >\t1000"));
}

#[test]
fn unclosed_quote() {
    let e = err(
        "sources:\n  txns: { type: generator }\ntransforms:\n  a: { type: filter, inputs: [txns], where: \"x > 1}\nsinks: {}\n",
    );
    contains(&e, "unclosed quote");
    at(&e, 4, Some(45));
    let e = err("sources:\n  txns:\n    type: 'generator\n    seed: 1\n");
    contains(&e, "unclosed quote");
    at(&e, 3, Some(11));
}

#[test]
fn unclosed_bracket() {
    let e = err("sources:\n  txns: { type: generator\nsinks: {}\n");
    assert!(e.location.is_some(), "{}", e.render());
}

#[test]
fn duplicate_keys() {
    let e = err(
        "sources:\n  txns: {type: generator}\n  other: {type: generator}\n  txns: {type: generator}\n",
    );
    contains(&e, "duplicate key \"txns\" in \"sources\"");
    contains(&e, "first defined at line 2");
    at(&e, 4, Some(3));
    let e = err("sources:\n  txns:\n    type: generator\n    seed: 1\n    seed: 2\n");
    contains(&e, "duplicate key \"seed\"");
    at(&e, 5, Some(5));
    let e = err("name: a\nname: b\n");
    contains(&e, "duplicate key \"name\" at the top level");
    at(&e, 2, Some(1));
}

#[test]
fn duplicate_ids_across_sections() {
    let e = err(r#"
sources: { txns: { type: generator } }
transforms: { txns: { type: filter, inputs: [txns], where: "x" } }
sinks: { out: { type: stdout, inputs: [txns] } }
"#);
    contains(
        &e,
        "id \"txns\" is used twice: source \"txns\" and transform \"txns\"",
    );
    at(&e, 3, Some(15));
}

#[test]
fn billion_laughs() {
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for i in 0..9u8 {
        let (p, c) = ((b'a' + i) as char, (b'b' + i) as char);
        bomb.push_str(&format!(
            "{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
        ));
    }
    let e = err(&bomb);
    contains(&e, "alias");
}

#[test]
fn deep_nesting() {
    let flow = "[".repeat(10_000) + &"]".repeat(10_000);
    let e = err(&flow);
    contains(&e, "nested too deeply");
    let e = err(&format!("sources: {}", "{a: ".repeat(10_000)));
    assert!(e.to_string().contains("p.yaml"));
    let block = "- ".repeat(10_000) + "x\n";
    let e = err(&block);
    contains(&e, "nested too deeply");
}

#[test]
fn huge_single_line() {
    let line = format!("name: \"{}\"\n", "x".repeat(3 << 20));
    let e = err(&line);
    contains(&e, "limited to 1 MiB");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.yaml");
    std::fs::write(&path, &line).unwrap();
    let e = timed(|| load_file(&path)).unwrap_err();
    contains(&e, "limited to 1 MiB");
    assert!(e.to_string().starts_with(&path.display().to_string()));
}

#[test]
fn directory_and_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = load_file(dir.path()).unwrap_err();
    contains(&e, "is a directory");
    let e = load_file(&dir.path().join("nope.yaml")).unwrap_err();
    contains(&e, "no such file");
}

#[test]
fn load_file_reads_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("large.yaml");
    std::fs::write(&path, EXAMPLE).unwrap();
    let spec = load_file(&path).unwrap();
    assert_eq!(spec.file, path);
    let e = spec.error_at(&["sinks", "out"], "m", None);
    assert!(
        e.to_string()
            .starts_with(&format!("{}:11:8: m", path.display())),
        "{e}"
    );
}

#[test]
fn json_of_the_wrong_type() {
    let e = err(r#"{"sources": 5}"#);
    contains(
        &e,
        "invalid value for \"sources\": expected a map, found integer 5",
    );
    at(&e, 1, Some(13));
    let e = err(
        r#"{"sources": {"a": {"type": "generator", "seed": "x"}}, "sinks": {"o": {"type": "stdout", "inputs": ["a"]}}}"#,
    );
    contains(&e, "\"seed\" of source \"a\"");
    at(&e, 1, Some(49));
}

#[test]
fn more_than_one_document() {
    let e = err("sources: {}\n---\nsinks: {}\n");
    contains(&e, "more than one YAML document");
    at(&e, 2, Some(1));
}

// ---------------------------------------------------- bad input: structure

#[test]
fn unknown_keys_suggest_the_closest() {
    let e = err(&EXAMPLE.replace("where:", "wher:"));
    assert_eq!(e.message, "unknown key \"wher\" in transform \"big\"");
    assert!(
        e.hint
            .as_deref()
            .unwrap()
            .starts_with("did you mean \"where\"?"),
        "{:?}",
        e.hint
    );
    at(&e, 5, Some(40));
    let e = err(&EXAMPLE.replace("dead_letter:", "dead_leter:"));
    contains(&e, "unknown key \"dead_leter\"");
    contains(&e, "did you mean \"dead_letter\"?");
    at(&e, 12, Some(1));
    let e = err(&EXAMPLE.replace("seed: 42", "sed: 42"));
    contains(&e, "unknown key \"sed\" in source \"txns\"");
    contains(&e, "did you mean \"seed\"?");
    at(&e, 3, Some(28));
    // nested: event_time inside a source
    let e = err(
        "sources:\n  t:\n    type: generator\n    event_time: { colum: ts }\nsinks: { o: { type: stdout, inputs: [t] } }\n",
    );
    contains(
        &e,
        "unknown key \"colum\" in \"event_time\" of source \"t\"",
    );
    contains(&e, "did you mean \"column\"?");
    at(&e, 4, Some(19));
    // a key of another source type
    let e = err(
        "sources:\n  t:\n    type: generator\n    topic: x\nsinks: { o: { type: stdout, inputs: [t] } }\n",
    );
    contains(&e, "unknown key \"topic\"");
    contains(&e, "valid keys: profile");
    at(&e, 4, Some(5));
    let e = err(
        "sources: { t: { type: generator } }\nsinks: { o: { type: stdout, inputs: [t] } }\ndead_letter: { type: stdout, path: x }\n",
    );
    contains(&e, "unknown key \"path\"");
}

#[test]
fn unknown_and_missing_types() {
    let e = err(&EXAMPLE.replace("type: filter", "type: filtr"));
    assert_eq!(e.message, "unknown transform type \"filtr\"");
    contains(
        &e,
        "did you mean \"filter\"? (valid types: filter, sql, score, dedup)",
    );
    at(&e, 5, Some(16));
    let e = err(&EXAMPLE.replace("type: generator, ", ""));
    contains(&e, "source \"txns\" is missing the required key \"type\"");
    contains(&e, "generator, file, log");
    at(&e, 3, None);
    let e = err(&EXAMPLE.replace("type: file, inputs", "type: kinesis, inputs"));
    contains(&e, "unknown sink type \"kinesis\"");
    contains(&e, "valid types: stdout, file, log, kafka, postgres, redis");
}

#[test]
fn missing_required_keys() {
    let e = err(&EXAMPLE.replace(", where: \"amount > 1000\"", ""));
    contains(
        &e,
        "transform \"big\" is missing the required key \"where\"",
    );
    at(&e, 5, None);
    let e = err(
        "sources:\n  t:\n    type: generator\n    event_time: { max_delay: 5s }\nsinks: { o: { type: stdout, inputs: [t] } }\n",
    );
    contains(
        &e,
        "\"event_time\" of source \"t\" is missing the required key \"column\"",
    );
    at(&e, 4, Some(17));
}

#[test]
fn wrong_value_types() {
    let e = err(&EXAMPLE.replace("seed: 42", "seed: abc"));
    contains(
        &e,
        "invalid value for \"seed\" of source \"txns\": expected a non-negative integer, found string \"abc\"",
    );
    at(&e, 3, Some(34));
    let e = err(&EXAMPLE.replace("seed: 42", "seed: -1"));
    contains(&e, "found integer -1");
    at(&e, 3, Some(34));
    let e = err(&EXAMPLE.replace("inputs: [txns]", "inputs: txns"));
    contains(&e, "expected a list");
    contains(&e, "inputs: [txns]");
    at(&e, 5, Some(32));
    let e = err(&EXAMPLE.replace("name: large-foreign", "name: [a]"));
    contains(&e, "\"name\"");
    at(&e, 1, None);
    // A connector's serde error carries its key path: the same literal
    // elsewhere in the entry (`seed: 7`) is not taken for the bad value.
    let e = err(&EXAMPLE.replace("seed: 42, count: 100000", "seed: 7, count: \"7\""));
    contains(
        &e,
        "invalid value for \"count\" of source \"txns\": expected a non-negative integer, found string \"7\"",
    );
    at(&e, 3, Some(44));
}

#[test]
fn unknown_inputs() {
    let e = err(&EXAMPLE.replace("inputs: [txns]", "inputs: [txn]"));
    assert_eq!(e.message, "unknown input \"txn\"");
    assert_eq!(e.hint.as_deref(), Some("did you mean \"txns\"?"));
    let e = err(&EXAMPLE.replace("inputs: [txns]", "inputs: [zzzzzz]"));
    contains(&e, "known sources and transforms: txns, flagged");
    let e = err(&EXAMPLE.replace("inputs: [txns]", "inputs: [out]"));
    contains(&e, "\"out\" is a sink; sinks cannot be inputs");
    let e = err(&EXAMPLE.replace("inputs: [txns]", "inputs: []"));
    contains(&e, "transform \"big\" has no inputs");
    at(&e, 5, Some(32));
    let e = err(&EXAMPLE.replace("inputs: [txns]", "inputs: [txns, txns]"));
    contains(&e, "listed twice");
    at(&e, 5, Some(39));
    let e = err(&EXAMPLE.replace("inputs: [flagged]", "inputs: [flaged]"));
    contains(&e, "did you mean \"flagged\"?");
    at(&e, 11, Some(31));
}

#[test]
fn cycles() {
    let e = err(&EXAMPLE.replace("inputs: [txns]", "inputs: [flagged]"));
    contains(&e, "cycle among transforms: ");
    assert!(
        e.message.contains("big -> flagged -> big")
            || e.message.contains("flagged -> big -> flagged"),
        "{e}"
    );
    assert!(e.location.is_some());
    let e = err(&EXAMPLE.replace("inputs: [txns]", "inputs: [big]"));
    contains(&e, "transform \"big\" reads its own output");
    at(&e, 5, Some(33));
    let e = err(r#"
sources: { s: { type: generator } }
transforms:
  a: { type: filter, inputs: [s, c], where: "x" }
  b: { type: filter, inputs: [a], where: "x" }
  c: { type: filter, inputs: [b], where: "x" }
sinks: { out: { type: stdout, inputs: [c] } }
"#);
    contains(&e, "cycle among transforms: ");
    for id in ["a", "b", "c"] {
        assert!(e.message.contains(id));
    }
}

#[test]
fn at_least_one_source_and_sink() {
    let e = err("sinks: { out: { type: stdout, inputs: [x] } }\n");
    contains(&e, "the pipeline has no sources");
    let e = err("sources: {}\nsinks: { out: { type: stdout, inputs: [x] } }\n");
    contains(&e, "the pipeline has no sources");
    at(&e, 1, Some(10));
    let e = err("sources: { t: { type: generator } }\n");
    contains(&e, "the pipeline has no sinks");
    let e = err("sources: { t: { type: generator } }\nsinks:\n");
    contains(&e, "the pipeline has no sinks");
}

#[test]
fn ranges() {
    let e = err(&EXAMPLE.replace("seed: 42", "parallelism: 0"));
    contains(&e, "parallelism must be between 1 and 1024, found 0");
    at(&e, 3, Some(41));
    let e = err(&EXAMPLE.replace("seed: 42", "parallelism: 2000"));
    contains(&e, "between 1 and 1024");
    let e = err(&EXAMPLE.replace("seed: 42", "batch_size: 0"));
    contains(&e, "batch_size must be between 1 and 1048576");
    let e = err(&EXAMPLE.replace("where: \"amount > 1000\"", "where: \"x\", parallelism: 0"));
    contains(&e, "parallelism must be");
    at(&e, 5, None);
}

#[test]
fn durations_rates_and_enums() {
    let e =
        err(&format!("checkpoint: {{ interval: 10 }}\n{EXAMPLE}")
            .replace("name: large-foreign\n", ""));
    contains(&e, "no unit");
    at(&e, 1, Some(25));
    let e =
        err(&format!("checkpoint: {{ interval: 10x }}\n{EXAMPLE}")
            .replace("name: large-foreign\n", ""));
    contains(&e, "unknown unit \"x\"");
    let e = err(&EXAMPLE.replace("seed: 42", "rate: fast"));
    contains(&e, "invalid rate \"fast\"");
    at(&e, 3, Some(34));
    let e = err(&EXAMPLE.replace("seed: 42", "rate: 0"));
    contains(&e, "positive");
    let e = err(&EXAMPLE.replace("format: jsonl", "format: jsnl"));
    contains(&e, "unknown format \"jsnl\"");
    contains(&e, "did you mean \"jsonl\"?");
    at(&e, 11, Some(66));
    let e = err(&EXAMPLE.replace("seed: 42", "profile: nexmarc"));
    contains(&e, "unknown generator profile \"nexmarc\"");
    let log = "sources:\n  t: { type: log, topic: x, assignor: cooperative_sticky }\nsinks: { o: { type: stdout, inputs: [t] } }\n";
    let e = err(log);
    contains(&e, "did you mean \"cooperative-sticky\"?");
    at(&e, 2, Some(39));
    let e = err(
        "sources:\n  t: { type: log, topic: 'a b' }\nsinks: { o: { type: stdout, inputs: [t] } }\n",
    );
    contains(&e, "invalid topic name");
}

#[test]
fn schemas_and_event_time() {
    let base = "sources:\n  t:\n    type: log\n    topic: x\n    schema: { id: int64, ts: timestamp_ms, name: utf8? }\n    event_time: { column: ts }\nsinks: { o: { type: stdout, inputs: [t] } }\n";
    ok(base);
    let e = err(&base.replace("int64", "in64"));
    contains(&e, "unknown column type \"in64\" for \"id\"");
    contains(&e, "did you mean \"int64\"?");
    at(&e, 5, Some(19));
    let e = err(&base.replace("column: ts", "column: tss"));
    contains(&e, "event-time column \"tss\" is not in the schema");
    contains(&e, "did you mean \"ts\"?");
    at(&e, 6, Some(27));
    let e = err(&base.replace("column: ts", "column: name"));
    contains(&e, "has type utf8");
    let e = err(&base.replace("{ id: int64, ts: timestamp_ms, name: utf8? }", "{}"));
    contains(&e, "no columns");
    let e = err(&base.replace("{ column: ts }", "{ column: ts, max_delay: soon }"));
    contains(&e, "invalid duration \"soon\"");
}

#[test]
fn invalid_ids() {
    let e = err(&EXAMPLE
        .replace("  big:", "  \"big one\":")
        .replace("[big]", "[\"big one\"]"));
    contains(&e, "invalid id \"big one\"");
    at(&e, 5, Some(3));
}

#[test]
fn file_source_needs_a_format_it_can_tell() {
    let e = err(
        "sources:\n  f: { type: file, path: data/in }\nsinks: { o: { type: stdout, inputs: [f] } }\n",
    );
    contains(&e, "needs a `format:`");
    at(&e, 2, Some(6));
}

#[test]
fn garbage_never_panics() {
    // A crude fuzz: mutate the example at many positions; every outcome is Ok or a
    // one-line located-or-not error, never a panic, always fast.
    let base = EXAMPLE.as_bytes();
    let inserts: &[&[u8]] = &[
        b"\t", b"\"", b"'", b"{", b"[", b"]", b"}", b":", b"- ", b"&a ", b"*a", b"!x ", b"\n",
        b"#", b"\xff", b"\0", b"? ", b"|", b">",
    ];
    let start = Instant::now();
    for i in (0..base.len()).step_by(7) {
        for ins in inserts {
            let mut v = base[..i].to_vec();
            v.extend_from_slice(ins);
            v.extend_from_slice(&base[i..]);
            if let Err(e) = parse_bytes("p.yaml", &v) {
                assert!(!e.to_string().contains('\n'));
                let _ = e.render();
            }
            // and truncations
            let _ = parse_bytes("p.yaml", &base[..i]);
        }
    }
    assert!(
        start.elapsed() < HANG_GUARD,
        "hang guard: took {:?}",
        start.elapsed()
    );
}

// ------------------------------------------------------------- big inputs

/// Near-1 MiB inputs (typically well under 1 s): only the hang guard.
fn slow_ok(yaml: &str) -> PipelineSpec {
    timed(|| parse_str("p.yaml", yaml)).unwrap_or_else(|e| panic!("{}", e.render()))
}

fn slow_err(yaml: &str) -> DslError {
    timed(|| parse_str("p.yaml", yaml)).expect_err("expected an error")
}

#[test]
fn a_large_valid_file_is_fast() {
    let n = 20_000;
    let mut y = String::from("sources:\n");
    for i in 0..n {
        y.push_str(&format!("  s{i}: {{ type: generator }}\n"));
    }
    y.push_str("sinks:\n  out:\n    type: stdout\n    inputs:\n");
    for i in 0..n {
        y.push_str(&format!("      - s{i}\n"));
    }
    assert!(y.len() < MAX_FILE_BYTES, "{}", y.len());
    let spec = slow_ok(&y);
    assert_eq!(spec.sources.len(), n);
    assert_eq!(spec.sinks["out"].inputs().len(), n);
    assert!(spec.warnings.is_empty());
    assert_eq!(spec.topo_order().len(), n + 1);
    // an error at the very end of it
    let e = slow_err(&y.replace(&format!("      - s{}\n", n - 1), "      - nope\n"));
    contains(&e, "unknown input \"nope\"");
    at(&e, 2 * n + 5, Some(9));
}

#[test]
fn many_warnings_are_capped() {
    let mut y = String::from("sources:\n");
    for i in 0..100 {
        y.push_str(&format!("  s{i}: {{ type: generator }}\n"));
    }
    y.push_str("sinks: { out: { type: stdout, inputs: [s0] } }\n");
    let spec = ok(&y);
    assert_eq!(spec.warnings.len(), 21);
    assert!(spec.warnings[20].message.contains("and 79 more"));
}

#[test]
fn deep_then_wide_stays_small_and_fast() {
    // 100 levels deep, then a list filling the rest of the 1 MiB: the position map
    // must not store a 100-segment path per item.
    let depth = 100;
    let mut y = String::new();
    for i in 0..depth {
        y.push_str(&format!("{}k{i}:\n", "  ".repeat(i)));
    }
    y.push_str(&"  ".repeat(depth));
    y.push('[');
    while y.len() < MAX_FILE_BYTES - 10 {
        y.push_str("1,");
    }
    y.push_str("1]\n");
    // Adversarial and 1 MiB (typically well under 1 s).
    let e = slow_err(&y);
    contains(&e, "unknown key \"k0\"");
    let items = "x, ".repeat(200_000);
    let e = slow_err(&format!(
        "sources: {{ t: {{ type: generator }} }}\nsinks: {{ o: {{ type: stdout, inputs: [t, {items} t] }} }}\n"
    ));
    contains(&e, "unknown input \"x\"");
}

const REDIS_SINK: &str = r#"name: features
sources:
  txns: { type: generator, seed: 1, count: 10 }
sinks:
  online:
    type: redis
    inputs: [txns]
    url: redis://127.0.0.1:6379/0
    key: "features:card:{card_id}"
    fields: [amount, country]
    ttl: 1d
"#;

#[test]
fn a_redis_sink() {
    let spec = ok(REDIS_SINK);
    let Some(r) = spec.sinks["online"].get::<RedisSinkConfig>() else {
        panic!("not a redis sink: {:?}", spec.sinks["online"]);
    };
    assert_eq!(r.key, "features:card:{card_id}");
    assert_eq!(r.fields, ["amount", "country"]);
    assert_eq!(r.ttl, Some(Duration::from_secs(86_400)));
    assert_eq!(
        key_template("f:{{x}}:{ card_id }:{country}").unwrap(),
        [
            KeyPart::Text("f:{x}:".into()),
            KeyPart::Column("card_id".into()),
            KeyPart::Text(":".into()),
            KeyPart::Column("country".into()),
        ]
    );
}

#[test]
fn bad_redis_sinks_name_the_line() {
    let e = err(&REDIS_SINK.replace("redis://127.0.0.1:6379/0", "http://x"));
    at(&e, 8, None);
    contains(&e, "not a Redis URL");
    let e = err(&REDIS_SINK.replace("{card_id}", "card"));
    at(&e, 9, None);
    contains(&e, "names no column");
    let e = err(&REDIS_SINK.replace("{card_id}", "{card_id"));
    contains(&e, "unclosed");
    let e = err(&REDIS_SINK.replace("ttl: 1d", "ttl: 0s"));
    at(&e, 11, None);
    let e = err(&REDIS_SINK.replace("fields:", "field:"));
    contains(&e, "did you mean \"fields\"?");
}

#[test]
fn a_log_sources_max_poll_interval() {
    let yaml = "name: p\nsources:\n  l:\n    type: log\n    topic: t\n    schema: { a: int64 }\n    max_poll_interval: 1m\nsinks:\n  out: { type: stdout, inputs: [l] }\n";
    let spec = ok(yaml);
    let Some(l) = spec.sources["l"].get::<LogSourceConfig>() else {
        panic!("not a log source");
    };
    assert_eq!(l.max_poll_interval, Duration::from_secs(60));
    let spec = ok(&yaml.replace("    max_poll_interval: 1m\n", ""));
    let Some(l) = spec.sources["l"].get::<LogSourceConfig>() else {
        panic!("not a log source");
    };
    assert_eq!(l.max_poll_interval, Duration::from_secs(300));
    let e = err(&yaml.replace("1m", "5s"));
    at(&e, 7, None);
    contains(&e, "longer than `session_timeout`");
    // A long session timeout alone (as for a member blocked on purpose)
    // raises the default instead of failing.
    let long = yaml.replace("    max_poll_interval: 1m\n", "    session_timeout: 10m\n");
    let spec = ok(&long);
    let Some(l) = spec.sources["l"].get::<LogSourceConfig>() else {
        panic!("not a log source");
    };
    assert_eq!(l.max_poll_interval, Duration::from_secs(600));
}
