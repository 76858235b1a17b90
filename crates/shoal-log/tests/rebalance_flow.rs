//! Real threads: consumers drain a partitioned topic that a producer keeps
//! writing; a member joins; records must keep flowing on the partitions the
//! rebalance does not move (cooperative-sticky), while the eager protocol
//! stops everything until the revocations are confirmed.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use shoal_log::*;

const PARTITIONS: u32 = 8;
const REVOKE_DELAY: Duration = Duration::from_millis(400);

struct Shared {
    stop: AtomicBool,
    counts: Vec<AtomicU64>,
}

impl Shared {
    fn snapshot(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .collect()
    }
}

fn spawn_consumer(
    log: &LogDir,
    id: &str,
    assignor: AssignorKind,
    shared: &Arc<Shared>,
) -> JoinHandle<()> {
    let log = log.clone();
    let shared = shared.clone();
    let id = id.to_owned();
    // Join before returning so the caller knows the member is in.
    let c = log
        .consumer("g", ConsumerConfig::new(["t"], assignor).member_id(&id))
        .unwrap();
    thread::spawn(move || {
        let mut pos: HashMap<u32, u64> = HashMap::new();
        let mut buf = FetchBuffer::new();
        let mut revoke_since: Option<Instant> = None;
        while !shared.stop.load(Ordering::SeqCst) {
            let a = c.poll_assignment().unwrap();
            if a.must_revoke() {
                // Stop reading `a.revoke` (it is not in `a.partitions`) and
                // confirm once done; that takes a while (e.g. waiting for a
                // checkpoint). Meanwhile keep consuming what stays ours.
                let since = *revoke_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= REVOKE_DELAY {
                    let _ = c.ack_revocation(a.generation);
                    revoke_since = None;
                    continue;
                }
            }
            let mut got = 0;
            for tp in &a.partitions {
                let off = pos.entry(tp.partition).or_insert(0);
                c.fetch("t", tp.partition, *off, 50, 1 << 16, &mut buf)
                    .unwrap();
                if let Some(next) = buf.next_offset() {
                    *off = next;
                }
                got += buf.len();
                shared.counts[tp.partition as usize].fetch_add(buf.len() as u64, Ordering::SeqCst);
            }
            if got == 0 {
                thread::sleep(Duration::from_millis(1));
            }
        }
        c.leave().unwrap();
    })
}

fn spawn_producer(log: &LogDir, shared: &Arc<Shared>) -> JoinHandle<()> {
    let log = log.clone();
    let shared = shared.clone();
    thread::spawn(move || {
        let producer = log.producer();
        let value = br#"{"txn_id":"t-1","card_id":42,"amount":12.5,"country":"NL"}"#;
        let recs: Vec<RecordRef<'_>> = (0..PARTITIONS)
            .map(|_| (None, value.as_slice(), 0))
            .collect();
        while !shared.stop.load(Ordering::SeqCst) {
            producer.append("t", &recs).unwrap(); // round-robin: one per partition
            thread::sleep(Duration::from_millis(1));
        }
    })
}

fn wait_for(log: &LogDir, what: &str, f: impl Fn(&GroupDescription) -> bool) -> GroupDescription {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = log.describe_group("g").unwrap();
        if f(&d) {
            return d;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {d:#?}"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

fn owned(d: &GroupDescription) -> BTreeSet<u32> {
    d.members
        .iter()
        .flat_map(|m| m.assigned.iter().map(|tp| tp.partition))
        .collect()
}

fn revoking(d: &GroupDescription) -> BTreeSet<u32> {
    d.members
        .iter()
        .flat_map(|m| m.revoking.iter().map(|tp| tp.partition))
        .collect()
}

fn run(assignor: AssignorKind) {
    let dir = tempfile::tempdir().unwrap();
    let log = LogDir::open(dir.path(), LogConfig::default()).unwrap();
    log.create_topic("t", PARTITIONS).unwrap();
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        counts: (0..PARTITIONS).map(|_| AtomicU64::new(0)).collect(),
    });
    let mut threads = vec![spawn_producer(&log, &shared)];
    threads.push(spawn_consumer(&log, "c1", assignor, &shared));
    threads.push(spawn_consumer(&log, "c2", assignor, &shared));
    wait_for(&log, "two stable members", |d| {
        d.state == GroupState::Stable
            && d.members.len() == 2
            && owned(d).len() == PARTITIONS as usize
    });

    threads.push(spawn_consumer(&log, "c3", assignor, &shared));
    let d = wait_for(&log, "the rebalance", |d| {
        d.members.len() == 3 && d.state == GroupState::Rebalancing
    });
    let unaffected = owned(&d);
    let moving = revoking(&d);
    thread::sleep(Duration::from_millis(50));
    let s1 = shared.snapshot();
    thread::sleep(Duration::from_millis(200));
    let s2 = shared.snapshot();
    let d2 = log.describe_group("g").unwrap();
    assert_eq!(
        d2.state,
        GroupState::Rebalancing,
        "the window was inside the rebalance"
    );
    assert_eq!(d2.generation, d.generation);

    match assignor.protocol() {
        RebalanceProtocol::Cooperative => {
            assert_eq!(moving.len(), 2, "only what c3 needs is revoked: {moving:?}");
            assert_eq!(unaffected.len(), PARTITIONS as usize - 2);
            for p in &unaffected {
                let p = *p as usize;
                assert!(
                    s2[p] > s1[p],
                    "partition {p} stalled during the rebalance: {s1:?} -> {s2:?}"
                );
            }
            for p in &moving {
                let p = *p as usize;
                assert_eq!(s2[p], s1[p], "revoked partition {p} is not consumed");
            }
        }
        RebalanceProtocol::Eager => {
            assert!(unaffected.is_empty());
            assert_eq!(moving.len(), PARTITIONS as usize);
            assert_eq!(
                s1, s2,
                "eager: everything stops until revocations are confirmed"
            );
        }
    }

    let d = wait_for(&log, "three stable members", |d| {
        d.state == GroupState::Stable
            && d.members.len() == 3
            && owned(d).len() == PARTITIONS as usize
    });
    let mut seen = BTreeSet::new();
    for m in &d.members {
        assert!((2..=3).contains(&m.assigned.len()), "{m:?}");
        for tp in &m.assigned {
            assert!(seen.insert(tp.partition));
        }
    }
    // Afterwards every partition flows again, moved ones included.
    let s3 = shared.snapshot();
    let deadline = Instant::now() + Duration::from_secs(5);
    while shared.snapshot().iter().zip(&s3).any(|(a, b)| a <= b) {
        assert!(
            Instant::now() < deadline,
            "some partition does not flow after the rebalance"
        );
        thread::sleep(Duration::from_millis(10));
    }
    shared.stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn cooperative_sticky_keeps_unaffected_partitions_flowing() {
    run(AssignorKind::CooperativeSticky);
}

#[test]
fn eager_sticky_pauses_everything_until_revoked() {
    run(AssignorKind::Sticky);
}
