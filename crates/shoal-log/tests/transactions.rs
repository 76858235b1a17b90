//! Transactions: last stable offset, aborted records skipped, fencing,
//! recovery after a crash and a torn tail, readers in another "process"
//! (a second read-only `LogDir`), and a model-checked proptest.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use shoal_log::*;

fn small_topic() -> TopicConfig {
    TopicConfig {
        segment_bytes: 2048,
        index_interval_bytes: 128,
        retention_bytes: None,
        retention: None,
        fsync: FsyncPolicy::Never,
    }
}

fn open(dir: &Path) -> LogDir {
    let log = LogDir::open(dir, LogConfig::default()).unwrap();
    log.create_topic_with("t", 1, small_topic()).unwrap();
    log
}

fn reader(dir: &Path) -> LogDir {
    let config = LogConfig {
        read_only: true,
        ..LogConfig::default()
    };
    LogDir::open(dir, config).unwrap()
}

fn recs(values: &[String]) -> Vec<RecordRef<'_>> {
    values.iter().map(|v| (None, v.as_bytes(), 0)).collect()
}

fn vals(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("\"{prefix}{i}\"")).collect()
}

/// Every record of partition 0 from offset 0 with `isolation`, following
/// `next_offset`; returns the values and the final position.
fn read(log: &LogDir, isolation: Isolation) -> (Vec<String>, u64) {
    let mut buf = FetchBuffer::new();
    let (mut out, mut pos) = (Vec::new(), 0);
    loop {
        log.fetch_with("t", 0, pos, 3, 1 << 20, isolation, &mut buf)
            .unwrap();
        let Some(next) = buf.next_offset() else {
            return (out, pos);
        };
        out.extend(buf.values().map(|v| String::from_utf8(v.to_vec()).unwrap()));
        pos = next;
    }
}

fn committed(log: &LogDir) -> Vec<String> {
    read(log, Isolation::ReadCommitted).0
}

#[test]
fn read_committed_stops_at_the_last_stable_offset_until_commit() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let (a, b, c) = (vals("a", 2), vals("b", 3), vals("c", 1));
    log.append_to("t", 0, &recs(&a)).unwrap();
    let mut p = log.transactional_producer("sink.0", "t").unwrap();
    p.send(1, &recs(&b)).unwrap();
    log.append_to("t", 0, &recs(&c)).unwrap();

    // Uncommitted readers see everything; committed ones stop at the
    // open transaction's first record (offset 2).
    assert_eq!(read(&log, Isolation::ReadUncommitted).0.len(), 6);
    let (seen, pos) = read(&log, Isolation::ReadCommitted);
    assert_eq!((seen, pos), (a.clone(), 2));
    assert_eq!(log.last_stable_offsets("t").unwrap(), vec![2]);
    let other = reader(dir.path());
    assert_eq!(committed(&other), a, "a reader process agrees");

    assert_eq!(p.commit(1).unwrap(), 1, "one marker");
    let all: Vec<String> = [a.clone(), b.clone(), c.clone()].concat();
    let (seen, pos) = read(&log, Isolation::ReadCommitted);
    assert_eq!(seen, all);
    assert_eq!(pos, 7, "the marker takes offset 6; the position passes it");
    assert_eq!(log.end_offsets("t").unwrap(), vec![7]);
    assert_eq!(log.last_stable_offsets("t").unwrap(), vec![7]);
    assert_eq!(committed(&other), all);
    // Markers are never returned, in either mode.
    assert_eq!(read(&log, Isolation::ReadUncommitted).0, all);
    // Replaying the commit writes nothing.
    assert_eq!(p.commit(1).unwrap(), 0);
    assert_eq!(log.end_offsets("t").unwrap(), vec![7]);
}

#[test]
fn aborted_records_are_skipped_and_concurrent_transactions_resolve_separately() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let mut p = log.transactional_producer("sink.0", "t").unwrap();
    p.send(1, &recs(&vals("one", 2))).unwrap();
    p.send(2, &recs(&vals("two", 2))).unwrap();
    p.send(1, &recs(&vals("one-more", 1))).unwrap();
    assert_eq!(log.last_stable_offsets("t").unwrap(), vec![0]);
    p.abort(1).unwrap();
    // Transaction 1 is over, 2 still open from offset 2.
    assert_eq!(log.last_stable_offsets("t").unwrap(), vec![2]);
    assert!(committed(&log).is_empty());
    p.commit(2).unwrap();
    assert_eq!(committed(&log), vals("two", 2));
    let (seen, pos) = read(&log, Isolation::ReadUncommitted);
    assert_eq!(
        seen.len(),
        5,
        "read_uncommitted returns aborted records too"
    );
    assert_eq!(pos, 7);
    // A caught-up read_committed position reaches the log end.
    assert_eq!(read(&log, Isolation::ReadCommitted).1, 7);
    assert_eq!(committed(&reader(dir.path())), vals("two", 2));
    // An aborted-only tail: the fetch returns nothing but moves past it.
    p.send(3, &recs(&vals("three", 2))).unwrap();
    p.abort(3).unwrap();
    let mut buf = FetchBuffer::new();
    log.fetch_with("t", 0, 7, 10, 1 << 20, Isolation::ReadCommitted, &mut buf)
        .unwrap();
    assert!(buf.is_empty());
    assert_eq!(buf.next_offset(), Some(10));
}

#[test]
fn a_newer_epoch_fences_the_old_handle() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let mut old = log.transactional_producer("sink.0", "t").unwrap();
    old.send(1, &recs(&vals("zombie", 1))).unwrap();
    let mut new = log.transactional_producer("sink.0", "t").unwrap();
    assert_eq!(new.producer_id(), old.producer_id());
    assert_eq!(new.epoch(), old.epoch() + 1);
    let err = old.send(1, &recs(&vals("late", 1))).unwrap_err();
    assert!(matches!(err, Error::ProducerFenced { .. }), "{err}");
    assert_eq!(err.fault(), Fault::Fenced);
    assert!(matches!(old.commit(1), Err(Error::ProducerFenced { .. })));
    // The new handle aborts what the zombie left open.
    let r = new.recover(None).unwrap();
    assert_eq!(r.aborted, vec![(0, 1)]);
    assert!(committed(&log).is_empty());
    // The epoch is durable: a reopened directory continues from it.
    drop((old, new, log));
    let log = LogDir::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(
        log.transactional_producer("sink.0", "t").unwrap().epoch(),
        3
    );
    // Another id is another producer.
    let other = log.transactional_producer("sink.1", "t").unwrap();
    assert_ne!(other.producer_id(), 0);
}

#[test]
fn another_process_cannot_use_the_same_transactional_id() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path());
    let _p = a.transactional_producer("sink.0", "t").unwrap();
    // A second LogDir stands for another process: its lock attempt fails.
    let b = LogDir::open(dir.path(), LogConfig::default()).unwrap();
    let err = b.transactional_producer("sink.0", "t").unwrap_err();
    assert!(matches!(err, Error::TransactionalIdLocked { .. }), "{err}");
}

/// The active segment file of partition 0.
fn active_segment(dir: &Path) -> PathBuf {
    let pdir = dir.join("topics/t/0");
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&pdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().unwrap()
}

fn cut(path: &Path, bytes: u64) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - bytes).unwrap();
}

#[test]
fn recovery_commits_what_the_checkpoint_covers_and_aborts_the_rest_even_after_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path());
        let mut p = log.transactional_producer("sink.0", "t").unwrap();
        for txn in 1..=3 {
            p.send(txn, &recs(&vals(&format!("e{txn}-"), 4))).unwrap();
        }
        p.flush().unwrap();
        // Epoch 1 was committed before the "crash"; its marker is then torn
        // off the file, together with nothing else.
        assert_eq!(p.commit(1).unwrap(), 1);
        // The "crash": nothing else is committed (dropping the handles
        // releases the locks a dead process would have lost).
        drop((p, log));
    }
    cut(&active_segment(dir.path()), 5);
    let log = LogDir::open(dir.path(), LogConfig::default()).unwrap();
    assert!(committed(&log).is_empty(), "txn 1 is open again");
    let mut p = log.transactional_producer("sink.0", "t").unwrap();
    // The checkpoint manifest says epoch 2 is complete.
    let r = p.recover(Some(2)).unwrap();
    assert_eq!(r.committed, vec![(0, 1), (0, 2)]);
    assert_eq!(r.aborted, vec![(0, 3)]);
    let want: Vec<String> = [vals("e1-", 4), vals("e2-", 4)].concat();
    assert_eq!(committed(&log), want);
    // Recovering again (a crash during recovery, replayed) changes nothing.
    let end = log.end_offsets("t").unwrap();
    assert_eq!(p.recover(Some(2)).unwrap(), Recovered::default());
    assert_eq!(log.end_offsets("t").unwrap(), end);
    // The next run's epoch 3 reuses the aborted number: only its new records count.
    p.send(3, &recs(&vals("again", 2))).unwrap();
    p.commit(3).unwrap();
    assert_eq!(committed(&log), [want, vals("again", 2)].concat());
    assert_eq!(
        committed(&reader(dir.path())).len(),
        10,
        "a reader process agrees"
    );
}

#[test]
fn plain_topics_keep_version_1_segments_and_transactions_roll_to_version_2() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.append_to("t", 0, &recs(&vals("plain", 3))).unwrap();
    let header = |p: &Path| std::fs::read(p).unwrap()[4];
    let first = active_segment(dir.path());
    assert_eq!(header(&first), 1);
    let mut p = log.transactional_producer("sink.0", "t").unwrap();
    p.send(1, &recs(&vals("tx", 1))).unwrap();
    let second = active_segment(dir.path());
    assert_ne!(
        first, second,
        "rolled before the first transactional record"
    );
    assert_eq!(header(&second), 2);
    // Many transactions across many segment rolls.
    for txn in 2..40 {
        p.send(txn, &recs(&vals("bulk", 5))).unwrap();
        if txn % 3 == 0 {
            p.abort(txn).unwrap();
        } else {
            p.commit(txn).unwrap();
        }
    }
    p.commit(1).unwrap();
    let n = committed(&log).len();
    let expect = 3 + 1 + (2..40).filter(|t| t % 3 != 0).count() * 5;
    assert_eq!(n, expect);
    assert_eq!(committed(&reader(dir.path())).len(), expect);
    // After a restart the writer rebuilds the view from the files.
    drop((p, log));
    let log = LogDir::open(dir.path(), LogConfig::default()).unwrap();
    log.open_for_write("t").unwrap();
    assert_eq!(committed(&log).len(), expect);
}

/// One step of the model-checked run.
#[derive(Debug, Clone)]
enum Op {
    Plain,
    Send(u64),
    Commit(u64),
    Abort(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Plain),
        (1..4u64).prop_map(Op::Send),
        (1..4u64).prop_map(Op::Commit),
        (1..4u64).prop_map(Op::Abort),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// read_committed returns exactly the plain records and the records of
    /// committed transactions that lie before the first open transaction,
    /// in order — in the writer and in a reader process.
    #[test]
    fn read_committed_matches_a_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path());
        let mut p = log.transactional_producer("sink.0", "t").unwrap();
        // (offset, value, Some(txn) if transactional); txn fates by round.
        let mut entries: Vec<(u64, String, Option<(u64, u32)>)> = Vec::new();
        let mut round: std::collections::HashMap<u64, u32> = Default::default();
        let mut fate: std::collections::HashMap<(u64, u32), bool> = Default::default();
        let mut open_txns: std::collections::BTreeSet<u64> = Default::default();
        for (i, o) in ops.iter().enumerate() {
            let v = format!("\"{i}\"");
            match o {
                Op::Plain => {
                    let off = log.append_to("t", 0, &[(None, v.as_bytes(), 0)]).unwrap();
                    entries.push((off, v, None));
                }
                Op::Send(t) => {
                    let a = p.send(*t, &[(None, v.as_bytes(), 0)]).unwrap();
                    let r = *round.entry(*t).or_insert(0);
                    entries.push((a[0].offset, v, Some((*t, r))));
                    open_txns.insert(*t);
                }
                Op::Commit(t) | Op::Abort(t) => {
                    let commit = matches!(o, Op::Commit(_));
                    // The producer ends every open txn <= t, oldest first.
                    let ending: Vec<u64> = open_txns.range(..=*t).copied().collect();
                    if commit { p.commit(*t).unwrap(); } else { p.abort(*t).unwrap(); }
                    for e in ending {
                        let r = round.entry(e).or_insert(0);
                        fate.insert((e, *r), commit);
                        *r += 1;
                        open_txns.remove(&e);
                    }
                }
            }
        }
        let mut want = Vec::new();
        for (_, v, tx) in &entries {
            match tx {
                None => want.push(v.clone()),
                Some(k) => match fate.get(k) {
                    Some(true) => want.push(v.clone()),
                    Some(false) => {}
                    None => break, // first record of an open txn: the LSO
                },
            }
        }
        prop_assert_eq!(committed(&log), want.clone());
        prop_assert_eq!(committed(&reader(dir.path())), want);
    }
}
