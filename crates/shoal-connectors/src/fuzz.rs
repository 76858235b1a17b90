//! The entry points of the fuzz targets (`tests/fuzz`: `pipeline_yaml`,
//! `json_lines`, `csv_lines`), also run over their corpora by `cargo test`
//! (`tests/fuzz_corpus.rs`). Each takes any bytes and must return without
//! panicking; what it checks beyond that is said on each.

use shoal_dsl::FileFormat;

use crate::format::{RecordChunk, RecordDecoder};

/// A pipeline file read with every connector: an error or a spec, never a
/// panic; a spec's ids are unique and ordered (`topo_order` lists each once).
pub fn pipeline_yaml(data: &[u8]) {
    if let Ok(spec) = crate::registry::parse_bytes("fuzz.yaml", data) {
        let order = spec.topo_order();
        let ids = spec.sources.len() + spec.transforms.len() + spec.sinks.len();
        assert_eq!(order.len(), ids, "topo_order lists every id once");
    }
}

/// JSON lines decoded into the transactions schema (7 typed columns) with
/// the default limits: every line that is not blank is a row or a dead
/// letter, never both (blank records, such as an empty Kafka value, decode
/// to nothing), and a chunk never fails as a whole.
pub fn json_lines(data: &[u8]) {
    decode_lines(FileFormat::Jsonl, data, false);
}

/// CSV lines, the first one the header, decoded as [`json_lines`] is.
pub fn csv_lines(data: &[u8]) {
    decode_lines(FileFormat::Csv, data, true);
}

fn decode_lines(format: FileFormat, data: &[u8], header: bool) {
    let schema = crate::generator::transactions_schema();
    let mut decoder = RecordDecoder::new(format, schema).expect("a decoder");
    let mut lines = data.split(|b| *b == b'\n').filter(|l| !l.is_empty());
    if header {
        let Some(first) = lines.next() else {
            return;
        };
        if decoder.set_csv_header(first).is_err() {
            return;
        }
    }
    let mut chunk = RecordChunk::default();
    for (i, line) in lines.enumerate() {
        chunk.push(line, Some(0), i as u64);
    }
    let mut bad = Vec::new();
    let batch = decoder
        .decode(&chunk, &mut bad)
        .expect("bad records are dead letters, not a failed chunk");
    let rows = batch.map_or(0, |b| b.num_rows());
    let records = (0..chunk.len())
        .filter(|&i| !chunk.record(i).iter().all(u8::is_ascii_whitespace))
        .count();
    assert_eq!(
        rows + bad.len(),
        records,
        "every record that is not blank is a row or a dead letter"
    );
}
