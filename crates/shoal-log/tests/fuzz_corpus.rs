//! The segment fuzz target's corpus (`tests/fuzz/corpus/segment`,
//! minimised by `cargo fuzz cmin`) run through its body on stable Rust.

use std::path::PathBuf;

#[test]
fn segment_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fuzz/corpus/segment");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "an empty corpus");
    for path in files {
        let data = std::fs::read(&path).unwrap();
        let r = std::panic::catch_unwind(|| shoal_log::fuzz::segment(&data));
        assert!(r.is_ok(), "segment: {} fails", path.display());
    }
}
