//! Storage: append/read, roll, index lookup from any offset, retention,
//! reopen, torn and corrupted tails, cross-process style readers, locking,
//! fsync policies, topic admin, partitioning.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use shoal_log::partitioner::partition_for_key;
use shoal_log::*;

fn small_topic() -> TopicConfig {
    TopicConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        retention_bytes: None,
        retention: None,
        fsync: FsyncPolicy::Never,
    }
}

fn open(dir: &Path) -> LogDir {
    LogDir::open(dir, LogConfig::default()).unwrap()
}

fn value(i: u64) -> Vec<u8> {
    format!(r#"{{"i":{i},"pad":"{}"}}"#, "x".repeat((i % 37) as usize)).into_bytes()
}

/// Appends records `from..to` to partition 0 in batches of `batch`.
fn fill(log: &LogDir, topic: &str, from: u64, to: u64, batch: usize) {
    let values: Vec<Vec<u8>> = (from..to).map(value).collect();
    let keys: Vec<String> = (from..to).map(|i| format!("k{i}")).collect();
    for (chunk_i, chunk) in values.chunks(batch).enumerate() {
        let base = from as usize + chunk_i * batch;
        let recs: Vec<RecordRef<'_>> = chunk
            .iter()
            .enumerate()
            .map(|(j, v)| {
                let i = base + j;
                let key = (!i.is_multiple_of(3)).then(|| keys[i - from as usize].as_bytes());
                (key, v.as_slice(), 1_000 + i as i64)
            })
            .collect();
        let first = log.append_to(topic, 0, &recs).unwrap();
        assert_eq!(first, base as u64);
    }
}

fn read_all(log: &LogDir, topic: &str, partition: u32, from: u64) -> Vec<(u64, Vec<u8>)> {
    let mut buf = FetchBuffer::new();
    let mut out = Vec::new();
    let mut pos = from;
    loop {
        log.fetch(topic, partition, pos, 17, 1000, &mut buf)
            .unwrap();
        if buf.is_empty() {
            return out;
        }
        for r in buf.iter() {
            assert_eq!(r.offset, pos, "offsets are consecutive");
            out.push((r.offset, r.value.to_vec()));
            pos += 1;
        }
    }
}

fn active_segment(dir: &Path, topic: &str, p: u32) -> PathBuf {
    let pdir = dir.join("topics").join(topic).join(p.to_string());
    let mut logs: Vec<PathBuf> = std::fs::read_dir(pdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().unwrap()
}

#[test]
fn append_read_roll_and_lookup_from_every_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_topic_with("t", 1, small_topic()).unwrap();
    fill(&log, "t", 0, 600, 25);
    let d = log.describe_topic("t").unwrap();
    let p = &d.partitions[0];
    assert_eq!((p.start_offset, p.end_offset, p.records), (0, 600, 600));
    assert!(
        p.segments.len() > 5,
        "segments rolled: {}",
        p.segments.len()
    );
    assert!(p.segments.iter().all(|s| s.bytes <= 4096 + 2048));
    assert_eq!(p.bytes, p.segments.iter().map(|s| s.bytes).sum::<u64>());

    // Every record reads back with its key, value and timestamp.
    let mut buf = FetchBuffer::with_capacity(1 << 16);
    for off in 0..600u64 {
        log.fetch("t", 0, off, 3, 1 << 16, &mut buf).unwrap();
        assert!(!buf.is_empty(), "offset {off}");
        let r = buf.get(0);
        assert_eq!(r.offset, off);
        assert_eq!(r.value, value(off).as_slice());
        assert_eq!(r.timestamp, 1_000 + off as i64);
        let key = format!("k{off}");
        assert_eq!(r.key, (!off.is_multiple_of(3)).then_some(key.as_bytes()));
        assert_eq!(buf.high_watermark(), Some(600));
        // One fetch reads from one segment: up to 3 records, fewer at a segment end.
        let next = buf.next_offset().unwrap();
        assert!(next > off && next <= (off + 3).min(600));
    }
    assert_eq!(read_all(&log, "t", 0, 0).len(), 600);
    // At the end: empty, not an error; past the end: out of range.
    log.fetch("t", 0, 600, 10, 1000, &mut buf).unwrap();
    assert!(buf.is_empty());
    assert!(matches!(
        log.fetch("t", 0, 601, 10, 1000, &mut buf),
        Err(Error::OffsetOutOfRange {
            start: 0,
            end: 600,
            ..
        })
    ));
}

#[test]
fn max_bytes_is_soft_and_large_records_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_topic_with("t", 1, small_topic()).unwrap();
    let big = vec![b'7'; 100_000];
    log.append_to(
        "t",
        0,
        &[(None, b"small", 1), (None, &big, 2), (None, b"after", 3)],
    )
    .unwrap();
    let mut buf = FetchBuffer::new();
    log.fetch("t", 0, 0, 100, 10, &mut buf).unwrap();
    assert_eq!(buf.len(), 1, "max_bytes caps but returns at least one");
    log.fetch("t", 0, 1, 100, 10, &mut buf).unwrap();
    assert_eq!(buf.len(), 1);
    assert_eq!(buf.get(0).value.len(), 100_000);
    log.fetch("t", 0, 0, 100, 1 << 20, &mut buf).unwrap();
    assert_eq!(
        buf.values().collect::<Vec<_>>(),
        [b"small".as_slice(), &big, b"after"]
    );
    assert_eq!(buf.bytes(), 3 * 32 + 5 + 100_000 + 5);
}

#[test]
fn reopen_keeps_everything_and_continues_offsets() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path());
        log.create_topic_with("t", 1, small_topic()).unwrap();
        fill(&log, "t", 0, 300, 7);
    }
    let log = open(dir.path());
    assert_eq!(log.end_offsets("t").unwrap(), [300]);
    fill(&log, "t", 300, 400, 9);
    let all = read_all(&log, "t", 0, 0);
    assert_eq!(all.len(), 400);
    assert!(all.iter().all(|(o, v)| *v == value(*o)));
    // The topic config survived too.
    assert_eq!(log.describe_topic("t").unwrap().config, small_topic());
}

#[test]
fn torn_tail_is_truncated_on_open_and_nothing_before_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let seg;
    let good_len;
    {
        let log = open(dir.path());
        log.create_topic_with("t", 1, small_topic()).unwrap();
        fill(&log, "t", 0, 200, 10);
        seg = active_segment(dir.path(), "t", 0);
        good_len = std::fs::metadata(&seg).unwrap().len();
    }
    // A crash mid-write: the first 20 bytes of a 60-byte entry.
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&60u32.to_le_bytes()).unwrap();
    f.write_all(&[0xAB; 16]).unwrap();
    drop(f);

    // A reader (not the writer) sees the end, no error.
    let reader = open(dir.path());
    assert_eq!(read_all(&reader, "t", 0, 0).len(), 200);
    assert_eq!(reader.end_offsets("t").unwrap(), [200]);
    drop(reader);

    let log = open(dir.path());
    log.open_for_write("t").unwrap();
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), good_len);
    assert_eq!(log.end_offsets("t").unwrap(), [200]);
    fill(&log, "t", 200, 230, 10);
    let all = read_all(&log, "t", 0, 0);
    assert_eq!(all.len(), 230);
    assert!(all.iter().all(|(o, v)| *v == value(*o)));
}

/// Issue 16: damage inside the active segment with acknowledged records
/// after it used to be cut by the next writer with a WARN (records lost,
/// offsets reused). Now readers and the writer report it, and only an
/// explicit repair cuts, saying how many records it dropped.
#[test]
fn corrupted_crc_before_acknowledged_records_is_refused_until_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let seg;
    {
        let log = open(dir.path());
        log.create_topic_with("t", 1, small_topic()).unwrap();
        fill(&log, "t", 0, 150, 10);
        seg = active_segment(dir.path(), "t", 0);
    }
    // Find the entry of some record in the active segment and flip a value byte.
    let bytes = std::fs::read(&seg).unwrap();
    let base = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
    let mut pos = 16usize;
    let mut entries = Vec::new();
    while pos < bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        entries.push(pos);
        pos += 8 + len;
    }
    assert!(entries.len() > 4, "active segment has a few records");
    let victim = entries.len() / 2;
    let mut damaged = bytes.clone();
    let at = entries[victim + 1] - 2; // last byte of the value
    damaged[at] ^= 0xFF;
    std::fs::write(&seg, &damaged).unwrap();
    let end_before = base + entries.len() as u64;
    let end = base + victim as u64;

    // A reader gets an error naming the place, not an early end.
    let reader = open(dir.path());
    let mut buf = FetchBuffer::new();
    let mut offset = 0;
    let err = loop {
        match reader.fetch("t", 0, offset, 1000, 1 << 20, &mut buf) {
            Ok(()) if buf.is_empty() => panic!("silent end at {offset}"),
            Ok(()) => offset = buf.iter().last().unwrap().offset + 1,
            Err(e) => break e,
        }
    };
    assert_eq!(offset, end);
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!(
            "crc mismatch at offset {end} (topic t, partition 0"
        )),
        "{err}"
    );
    drop(reader);

    // The writer refuses; the file is untouched.
    let log = open(dir.path());
    let err = log.open_for_write("t").unwrap_err();
    assert!(err.to_string().contains("acknowledged records"), "{err}");
    assert_eq!(std::fs::read(&seg).unwrap(), damaged);
    let found = log.verify_topic("t").unwrap();
    assert_eq!(found.len(), 1);
    assert!(!found[0].torn_tail);
    assert_eq!(found[0].offset, end);
    drop(log);

    // An explicit repair cuts there and counts what it dropped.
    let log = open(dir.path());
    let repairs = log.repair_topic("t").unwrap();
    assert_eq!(repairs[0].records_dropped, end_before - end);
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        entries[victim] as u64
    );
    assert!(log.verify_topic("t").unwrap().is_empty());
    log.open_for_write("t").unwrap();
    assert_eq!(log.end_offsets("t").unwrap(), [end]);
    let all = read_all(&log, "t", 0, 0);
    assert_eq!(all.len() as u64, end);
    assert!(all.iter().all(|(o, v)| *v == value(*o)));
    // New appends continue right after the cut.
    assert_eq!(log.append_to("t", 0, &[(None, b"new", 5)]).unwrap(), end);
}

/// Damage in the last entry only (nothing acknowledged after it) is a torn
/// tail: cut on open, as before.
#[test]
fn corrupted_last_entry_is_a_torn_tail_and_cut() {
    let dir = tempfile::tempdir().unwrap();
    let seg;
    {
        let log = open(dir.path());
        log.create_topic_with("t", 1, small_topic()).unwrap();
        fill(&log, "t", 0, 150, 10);
        seg = active_segment(dir.path(), "t", 0);
    }
    let mut bytes = std::fs::read(&seg).unwrap();
    let base = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
    let mut pos = 16usize;
    let mut entries = Vec::new();
    while pos < bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        entries.push(pos);
        pos += 8 + len;
    }
    let n = bytes.len();
    bytes[n - 2] ^= 0xFF;
    std::fs::write(&seg, &bytes).unwrap();
    let log = open(dir.path());
    assert!(log.verify_topic("t").unwrap().iter().all(|d| d.torn_tail));
    log.open_for_write("t").unwrap();
    let end = base + entries.len() as u64 - 1;
    assert_eq!(log.end_offsets("t").unwrap(), [end]);
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        *entries.last().unwrap() as u64
    );
}

#[test]
fn reader_in_another_handle_follows_a_live_partition() {
    let dir = tempfile::tempdir().unwrap();
    let writer = open(dir.path());
    writer.create_topic_with("t", 1, small_topic()).unwrap();
    let reader = LogDir::open(
        dir.path(),
        LogConfig {
            read_only: true,
            ..LogConfig::default()
        },
    )
    .unwrap();
    fill(&writer, "t", 0, 50, 10);
    assert_eq!(read_all(&reader, "t", 0, 0).len(), 50);
    // The writer rolls several segments; the reader follows.
    fill(&writer, "t", 50, 500, 10);
    let all = read_all(&reader, "t", 0, 40);
    assert_eq!(all.len(), 460);
    assert_eq!(reader.end_offsets("t").unwrap(), [500]);
    assert_eq!(
        reader.describe_topic("t").unwrap().partitions[0].end_offset,
        500
    );
    // A write in progress (partial entry) is "end for now" for the reader.
    let seg = active_segment(dir.path(), "t", 0);
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&[40, 0, 0, 0, 1, 2, 3]).unwrap();
    drop(f);
    let mut buf = FetchBuffer::new();
    reader.fetch("t", 0, 500, 10, 1000, &mut buf).unwrap();
    assert!(buf.is_empty());
    assert_eq!(read_all(&reader, "t", 0, 495).len(), 5);
    // The read-only handle refuses to write.
    assert!(matches!(
        reader.append_to("t", 0, &[(None, b"x", 0)]),
        Err(Error::ReadOnly { .. })
    ));
}

#[test]
fn damage_in_a_closed_segment_is_corruption_for_readers() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_topic_with("t", 1, small_topic()).unwrap();
    fill(&log, "t", 0, 300, 10);
    let first = dir.path().join("topics/t/0/00000000000000000000.log");
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[40] ^= 0xFF;
    std::fs::write(&first, &bytes).unwrap();
    let mut buf = FetchBuffer::new();
    let err = log.fetch("t", 0, 0, 10, 1000, &mut buf).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert_eq!(err.fault(), Fault::Corruption);
    // A bad header is reported as such.
    bytes[0] = b'X';
    std::fs::write(&first, &bytes).unwrap();
    let other = open(dir.path());
    let err = other.fetch("t", 0, 0, 10, 1000, &mut buf).unwrap_err();
    assert!(err.to_string().contains("bad segment header"), "{err}");
}

#[test]
fn second_writer_gets_a_clear_lock_error() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path());
    a.create_topic("t", 2).unwrap();
    a.append_to("t", 0, &[(None, b"a", 0)]).unwrap();
    let b = open(dir.path());
    let err = b.append_to("t", 0, &[(None, b"b", 0)]).unwrap_err();
    match &err {
        Error::PartitionLocked {
            partition: 0,
            holder,
            ..
        } => {
            assert_eq!(*holder, Some(std::process::id()))
        }
        other => panic!("{other}"),
    }
    assert_eq!(err.fault(), Fault::Conflict);
    assert!(err.to_string().contains("only one process may write"));
    // Another partition is free; b can read partition 0 meanwhile.
    b.append_to("t", 1, &[(None, b"b", 0)]).unwrap();
    let mut buf = FetchBuffer::new();
    b.fetch("t", 0, 0, 10, 100, &mut buf).unwrap();
    assert_eq!(buf.get(0).value, b"a");
    // Once a is gone, b may write.
    drop(a);
    b.append_to("t", 0, &[(None, b"b", 0)]).unwrap();
    assert_eq!(b.end_offsets("t").unwrap(), [2, 1]);
}

#[test]
fn retention_by_size_deletes_whole_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let cfg = TopicConfig {
        retention_bytes: Some(10_000),
        ..small_topic()
    };
    log.create_topic_with("t", 1, cfg).unwrap();
    fill(&log, "t", 0, 1000, 10);
    let p = log.describe_topic("t").unwrap().partitions.remove(0);
    assert!(p.start_offset > 0, "old segments deleted");
    assert!(
        p.bytes >= 10_000 && p.bytes <= 10_000 + 4096 + 2048,
        "{} bytes",
        p.bytes
    );
    assert_eq!(p.end_offset, 1000);
    let mut buf = FetchBuffer::new();
    assert!(matches!(
        log.fetch("t", 0, 0, 1, 100, &mut buf),
        Err(Error::OffsetOutOfRange {
            offset: 0,
            end: 1000,
            ..
        })
    ));
    let kept = read_all(&log, "t", 0, p.start_offset);
    assert_eq!(kept.len() as u64, 1000 - p.start_offset);
    let files = std::fs::read_dir(dir.path().join("topics/t/0"))
        .unwrap()
        .count();
    assert_eq!(
        files,
        p.segments.len() * 2 + 1,
        "log + index per segment, plus the lock"
    );
}

#[test]
fn retention_by_age_uses_record_timestamps_and_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let log = LogDir::open(
        dir.path(),
        LogConfig {
            clock: Arc::new(clock.clone()),
            ..LogConfig::default()
        },
    )
    .unwrap();
    let cfg = TopicConfig {
        retention: Some(Duration::from_secs(60)),
        ..small_topic()
    };
    log.create_topic_with("t", 1, cfg).unwrap();
    let v = vec![b'v'; 200];
    // Old records (ts 1_000_000), then newer ones (ts 1_100_000).
    for _ in 0..40 {
        log.append_to("t", 0, &[(None, &v, 1_000_000)]).unwrap();
    }
    let boundary = log.end_offsets("t").unwrap()[0];
    for _ in 0..40 {
        log.append_to("t", 0, &[(None, &v, 1_100_000)]).unwrap();
    }
    assert_eq!(log.start_offsets("t").unwrap(), [0], "nothing old yet");
    clock.set(1_100_000 + 30_000);
    let r = log.enforce_retention().unwrap();
    assert!(r.segments_deleted > 0 && r.bytes_deleted > 0);
    let start = log.start_offsets("t").unwrap()[0];
    assert!(
        start > 0 && start <= boundary,
        "start {start}, boundary {boundary}"
    );
    // Far in the future everything but the active segment goes.
    clock.set(10_000_000);
    log.enforce_retention().unwrap();
    assert_eq!(
        log.describe_topic("t").unwrap().partitions[0]
            .segments
            .len(),
        1
    );
    assert_eq!(log.end_offsets("t").unwrap(), [80]);
}

#[test]
fn every_fsync_policy_writes_durably_readable_data() {
    for policy in [
        FsyncPolicy::EveryBatch,
        FsyncPolicy::Interval(Duration::from_millis(5)),
        FsyncPolicy::Never,
    ] {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = open(dir.path());
            log.create_topic_with(
                "t",
                1,
                TopicConfig {
                    fsync: policy,
                    ..small_topic()
                },
            )
            .unwrap();
            fill(&log, "t", 0, 100, 10);
            if policy == FsyncPolicy::Never {
                log.flush().unwrap();
            } else if let FsyncPolicy::Interval(_) = policy {
                std::thread::sleep(Duration::from_millis(30)); // let the flusher run
            }
        }
        let log = open(dir.path());
        assert_eq!(read_all(&log, "t", 0, 0).len(), 100, "{policy:?}");
    }
    // The policy is part of the stored topic config.
    let cfg: TopicConfig = serde_json::from_str(r#"{"fsync":{"interval":250}}"#).unwrap();
    assert_eq!(cfg.fsync, FsyncPolicy::Interval(Duration::from_millis(250)));
}

#[test]
fn topic_admin() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_topic("b", 3).unwrap();
    log.create_topic("a", 1).unwrap();
    log.create_topic("b", 3).unwrap(); // idempotent
    assert!(matches!(
        log.create_topic("b", 4),
        Err(Error::TopicExists {
            existing: 3,
            requested: 4,
            ..
        })
    ));
    assert!(matches!(
        log.create_topic("bad/name", 1),
        Err(Error::InvalidName { .. })
    ));
    assert!(matches!(
        log.create_topic("z", 0),
        Err(Error::InvalidArgument(_))
    ));
    let names: Vec<(String, u32)> = log
        .list_topics()
        .unwrap()
        .into_iter()
        .map(|t| (t.name, t.partitions))
        .collect();
    assert_eq!(names, [("a".to_string(), 1), ("b".to_string(), 3)]);
    let placed = log.append("b", &[(Some(b"k"), b"v", 1)]).unwrap();
    let d = log.describe_topic("b").unwrap();
    assert_eq!(d.partitions.len(), 3);
    assert_eq!(d.records, 1);
    let json = serde_json::to_value(&d).unwrap();
    let p = placed[0].partition as usize;
    assert_eq!(json["partitions"][p]["segments"][0]["base_offset"], 0);
    assert_eq!(json["partitions"][p]["end_offset"], 1);
    log.delete_topic("b").unwrap();
    assert!(matches!(
        log.describe_topic("b"),
        Err(Error::TopicNotFound { .. })
    ));
    assert_eq!(log.list_topics().unwrap().len(), 1);
    log.create_topic("b", 2).unwrap(); // recreate with another count
    assert_eq!(log.end_offsets("b").unwrap(), [0, 0]);
    assert!(matches!(
        log.fetch("a", 5, 0, 1, 1, &mut FetchBuffer::new()),
        Err(Error::PartitionNotFound { .. })
    ));
}

#[test]
fn keyed_records_follow_murmur2_and_unkeyed_go_round_robin() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_topic("t", 6).unwrap();
    let keys: Vec<String> = (0..300).map(|i| format!("card-{}", i % 20)).collect();
    let vals: Vec<String> = (0..300).map(|i| format!("{{\"n\":{i}}}")).collect();
    let recs: Vec<RecordRef<'_>> = keys
        .iter()
        .zip(&vals)
        .map(|(k, v)| (Some(k.as_bytes()), v.as_bytes(), 0))
        .collect();
    let placed = log.producer().append("t", &recs).unwrap();
    for (k, a) in keys.iter().zip(&placed) {
        assert_eq!(a.partition, partition_for_key(k.as_bytes(), 6));
    }
    // Per-key order is kept within each partition.
    for p in 0..6 {
        let got = read_all(&log, "t", p, 0);
        let mut last_n: std::collections::HashMap<String, i64> = Default::default();
        for (_, v) in got {
            let v: serde_json::Value = serde_json::from_slice(&v).unwrap();
            let n = v["n"].as_i64().unwrap();
            let key = keys[n as usize].clone();
            assert_eq!(partition_for_key(key.as_bytes(), 6), p);
            let prev = last_n.insert(key, n).unwrap_or(-1);
            assert!(n > prev);
        }
    }
    // No key: spread evenly.
    let before = log.end_offsets("t").unwrap();
    let unkeyed: Vec<RecordRef<'_>> = (0..60).map(|_| (None, b"{}".as_slice(), 0)).collect();
    log.append("t", &unkeyed).unwrap();
    let after = log.end_offsets("t").unwrap();
    let added: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(added, [10; 6]);
}
