//! The entry point of the segment fuzz target (`tests/fuzz`, `segment`),
//! also run over its corpus by `cargo test` (`tests/fuzz_corpus.rs`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{FetchBuffer, FsyncPolicy, LogConfig, LogDir, RecordRef, TopicConfig};

/// Write a partition of 60 records (small segments, so some are closed),
/// damage its files as `data` says, then open, read, verify and repair it.
/// Must never panic or loop; errors are expected. Checked: a read returns
/// contiguous offsets from 0, and after `repair_topic` the topic verifies
/// clean and reads back exactly what the repair kept.
///
/// `data`: `[which file, mode, position (2 bytes LE), bytes...]`; mode 0
/// overwrites at the position, 1 truncates there and appends the bytes,
/// 2 inserts them there.
pub fn segment(data: &[u8]) {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "shoal-fuzz-segment-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    run(&dir, data);
    let _ = std::fs::remove_dir_all(&dir);
}

fn run(dir: &Path, data: &[u8]) {
    let topic = TopicConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        retention_bytes: None,
        retention: None,
        fsync: FsyncPolicy::Never,
    };
    {
        let log = LogDir::open(dir, LogConfig::default()).expect("a new log dir");
        log.create_topic_with("t", 1, topic).expect("a new topic");
        let values: Vec<Vec<u8>> = (0..60u64)
            .map(|i| {
                format!(r#"{{"i":{i},"pad":"{}"}}"#, "x".repeat((i % 23) as usize)).into_bytes()
            })
            .collect();
        for chunk in values.chunks(7) {
            let recs: Vec<RecordRef<'_>> =
                chunk.iter().map(|v| (None, v.as_slice(), 1_000)).collect();
            log.append_to("t", 0, &recs).expect("append");
        }
    }
    // The maintenance thread may still hold the catalog it upgraded for a
    // tick (20 ms): let it let go before the files are damaged, so the
    // damage is this input's alone.
    std::thread::sleep(std::time::Duration::from_millis(50));
    let [which, mode, lo, hi, bytes @ ..] = data else {
        return;
    };
    let mut files = partition_files(dir);
    if files.is_empty() {
        return;
    }
    let file = files.swap_remove(*which as usize % files.len());
    let mut content = std::fs::read(&file).expect("a partition file");
    let at = usize::from(u16::from_le_bytes([*lo, *hi])) % (content.len() + 1);
    match mode % 3 {
        0 => {
            let end = (at + bytes.len()).min(content.len());
            content[at..end].copy_from_slice(&bytes[..end - at]);
        }
        1 => {
            content.truncate(at);
            content.extend_from_slice(bytes);
        }
        _ => {
            content.splice(at..at, bytes.iter().copied());
        }
    }
    std::fs::write(&file, &content).expect("write the damage");

    let Ok(log) = LogDir::open(dir, LogConfig::default()) else {
        return;
    };
    read_all(&log);
    let _ = log.verify_topic("t");
    let _ = log.open_for_write("t");
    if log.repair_topic("t").is_ok() {
        let left = log.verify_topic("t").expect("verify after repair");
        assert!(left.is_empty(), "damage left after repair: {left:?}");
        let (n, complete) = read_all(&log);
        assert!(complete, "a read error after repair");
        let end = log.end_offsets("t").expect("end offsets")[0];
        assert!(n <= end, "read {n} records, end offset {end}");
    }
}

/// Every `.log` and `.index` file of partition 0.
fn partition_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir.join("topics").join("t").join("0")) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log" || e == "index"))
        .collect();
    files.sort();
    files
}

/// Read partition 0 from offset 0 until its end or an error: (records
/// read, whether the end was reached). Offsets must increase.
fn read_all(log: &LogDir) -> (u64, bool) {
    let mut buf = FetchBuffer::new();
    let (mut next, mut n) = (0u64, 0u64);
    // Bounded: each round moves on by at least one record.
    for _ in 0..10_000 {
        match log.fetch("t", 0, next, 64, 1 << 16, &mut buf) {
            Ok(()) if buf.is_empty() => return (n, true),
            Ok(()) => {
                for r in buf.iter() {
                    assert!(r.offset >= next, "offset {} after {next}", r.offset);
                    next = r.offset + 1;
                    n += 1;
                }
            }
            Err(_) => return (n, false),
        }
    }
    panic!("a read that does not end");
}
