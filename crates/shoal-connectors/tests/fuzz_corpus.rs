//! The fuzz targets' corpora (`tests/fuzz/corpus/`, minimised by
//! `cargo fuzz cmin`) run through the targets' bodies on stable Rust: the
//! inputs the fuzzer found interesting stay checked in every `cargo test`.

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fuzz/corpus")
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "an empty corpus: {}", dir.display());
    out
}

fn replay(target: &str, body: fn(&[u8])) {
    for (path, data) in corpus(target) {
        let r = std::panic::catch_unwind(|| body(&data));
        assert!(r.is_ok(), "{target}: {} fails", path.display());
    }
}

#[test]
fn pipeline_yaml_corpus() {
    replay("pipeline_yaml", shoal_connectors::fuzz::pipeline_yaml);
}

#[test]
fn json_lines_corpus() {
    replay("json_lines", shoal_connectors::fuzz::json_lines);
}

#[test]
fn csv_lines_corpus() {
    replay("csv_lines", shoal_connectors::fuzz::csv_lines);
}
