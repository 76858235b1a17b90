//! Real threads: consumers drain a partitioned topic that a producer keeps
//! writing; a member joins; records must keep flowing on the partitions the
//! rebalance does not move (cooperative-sticky), while the eager protocol
//! stops everything until the revocations are confirmed.
//!
//! Nothing here depends on the machine's speed: the consumers confirm a
//! revocation only once the test releases them, so the rebalance stays open
//! for as long as the test looks at it, and every wait is for an event that
//! must happen (records delivered, poll rounds done), never for a time span.
//! The group clock is a [`ManualClock`] that never moves, so a starved thread
//! cannot be expelled by a session or rebalance timeout either. The only
//! wall-clock limit is [`HANG_GUARD`], which turns a bug into a failure
//! instead of a hung test.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use shoal_log::*;

const PARTITIONS: u32 = 8;
/// Records every partition that must flow has to deliver (and the producer
/// has to add to every partition) while the rebalance is held open, and
/// after it completes.
const FLOW: u64 = 200;
/// Poll rounds every consumer has to complete while the rebalance is held
/// open, after the revoking members saw the request.
const ROUNDS: u64 = 50;
/// Only bounds how long a broken build hangs; never what a test checks.
const HANG_GUARD: Duration = Duration::from_secs(300);

struct Shared {
    stop: AtomicBool,
    /// Consumers confirm a revocation only while this is set.
    release: AtomicBool,
    /// A consumer or producer thread panicked.
    crashed: AtomicBool,
    /// Records consumed per partition (by any member).
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

/// What the test can see of one consumer thread.
#[derive(Default)]
struct Progress {
    /// Completed poll-and-fetch rounds.
    rounds: AtomicU64,
    /// Generation of the latest revocation request the thread has seen (it
    /// no longer reads those partitions from then on), 0 if none.
    revoke_seen: AtomicU64,
}

/// Sets `crashed` if the thread owning it panics, so waits fail at once.
struct CrashFlag(Arc<Shared>);

impl Drop for CrashFlag {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.crashed.store(true, Ordering::SeqCst);
        }
    }
}

fn spawn_consumer(
    log: &LogDir,
    id: &str,
    assignor: AssignorKind,
    shared: &Arc<Shared>,
) -> (Arc<Progress>, JoinHandle<()>) {
    let shared = shared.clone();
    let progress = Arc::new(Progress::default());
    let me = progress.clone();
    // Join before returning so the caller knows the member is in.
    let c = log
        .consumer("g", ConsumerConfig::new(["t"], assignor).member_id(id))
        .unwrap();
    let t = thread::spawn(move || {
        let _crash = CrashFlag(shared.clone());
        let mut pos: HashMap<u32, u64> = HashMap::new();
        let mut buf = FetchBuffer::new();
        while !shared.stop.load(Ordering::SeqCst) {
            let a = c.poll_assignment().unwrap();
            if a.must_revoke() {
                // Stop reading `a.revoke` (it is not in `a.partitions`) and
                // confirm once done; that takes as long as the test wants
                // (think: waiting for a checkpoint). Meanwhile keep
                // consuming what stays ours.
                me.revoke_seen.store(a.generation, Ordering::SeqCst);
                if shared.release.load(Ordering::SeqCst) {
                    match c.ack_revocation(a.generation) {
                        Ok(_) | Err(Error::StaleGeneration { .. }) => {}
                        Err(e) => panic!("ack_revocation: {e}"),
                    }
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
            me.rounds.fetch_add(1, Ordering::SeqCst);
            if got == 0 {
                thread::sleep(Duration::from_millis(1));
            }
        }
        c.leave().unwrap();
    });
    (progress, t)
}

fn spawn_producer(log: &LogDir, shared: &Arc<Shared>) -> JoinHandle<()> {
    let log = log.clone();
    let shared = shared.clone();
    thread::spawn(move || {
        let _crash = CrashFlag(shared.clone());
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

/// Waits until `cond` holds. `cond` must eventually hold and keep holding;
/// the deadline is a hang guard, not part of what is tested.
fn wait_until(shared: &Shared, what: &str, mut cond: impl FnMut() -> bool) {
    let guard = Instant::now() + HANG_GUARD;
    while !cond() {
        assert!(
            !shared.crashed.load(Ordering::SeqCst),
            "a worker thread panicked while waiting for {what}"
        );
        assert!(
            Instant::now() < guard,
            "hang guard: no {what} after {HANG_GUARD:?}; counts {:?}",
            shared.snapshot()
        );
        thread::sleep(Duration::from_millis(2));
    }
}

/// Waits until the group description satisfies `f` (a lasting state).
fn wait_for_group(
    log: &LogDir,
    shared: &Shared,
    what: &str,
    f: impl Fn(&GroupDescription) -> bool,
) -> GroupDescription {
    let mut last = None;
    wait_until(shared, what, || {
        let d = log.describe_group("g").unwrap();
        let ok = f(&d);
        last = Some(d);
        ok
    });
    last.unwrap()
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

fn member<'a>(d: &'a GroupDescription, id: &str) -> &'a MemberDescription {
    d.members.iter().find(|m| m.id == id).unwrap()
}

fn partitions_of(m: &MemberDescription) -> BTreeSet<u32> {
    m.assigned.iter().map(|tp| tp.partition).collect()
}

fn run(assignor: AssignorKind) {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        clock: Arc::new(ManualClock::new(1_000_000)),
        ..LogConfig::default()
    };
    let log = LogDir::open(dir.path(), config).unwrap();
    log.create_topic("t", PARTITIONS).unwrap();
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        release: AtomicBool::new(true),
        crashed: AtomicBool::new(false),
        counts: (0..PARTITIONS).map(|_| AtomicU64::new(0)).collect(),
    });
    let mut threads = vec![spawn_producer(&log, &shared)];
    let mut progress: HashMap<&str, Arc<Progress>> = HashMap::new();
    for id in ["c1", "c2"] {
        let (p, t) = spawn_consumer(&log, id, assignor, &shared);
        progress.insert(id, p);
        threads.push(t);
    }
    let before = wait_for_group(&log, &shared, "two stable members", |d| {
        d.state == GroupState::Stable
            && d.members.len() == 2
            && owned(d).len() == PARTITIONS as usize
    });
    // Records flow on every partition before the rebalance.
    wait_until(
        &shared,
        "flow on every partition before the rebalance",
        || shared.snapshot().iter().all(|&n| n >= FLOW),
    );

    // From now on revocations stay unconfirmed until the test says so: the
    // join below opens a rebalance that stays open while we look at it.
    shared.release.store(false, Ordering::SeqCst);
    let (p, t) = spawn_consumer(&log, "c3", assignor, &shared);
    progress.insert("c3", p);
    threads.push(t);
    let d = log.describe_group("g").unwrap();
    assert_eq!(d.state, GroupState::Rebalancing, "{d:#?}");
    assert_eq!(d.members.len(), 3, "{d:#?}");
    let held = d.generation;
    let unaffected = owned(&d);
    let moving = revoking(&d);
    assert!(
        member(&d, "c3").assigned.is_empty(),
        "c3 gets nothing while the partitions it needs are still held: {d:#?}"
    );
    match assignor.protocol() {
        RebalanceProtocol::Cooperative => {
            assert_eq!(moving.len(), 2, "only what c3 needs is revoked: {moving:?}");
            assert_eq!(unaffected.len(), PARTITIONS as usize - 2);
            for id in ["c1", "c2"] {
                let now = partitions_of(member(&d, id));
                let was = partitions_of(member(&before, id));
                assert!(
                    now.is_subset(&was),
                    "{id} keeps what it is not asked to revoke"
                );
            }
        }
        RebalanceProtocol::Eager => {
            assert!(unaffected.is_empty(), "{d:#?}");
            assert_eq!(moving.len(), PARTITIONS as usize);
        }
    }

    // Once a revoking member has seen the request it never reads those
    // partitions again, so their counts are final from here on.
    let revokers: Vec<&str> = d
        .members
        .iter()
        .filter(|m| !m.revoking.is_empty())
        .map(|m| m.id.as_str())
        .collect();
    assert!(!revokers.is_empty());
    wait_until(&shared, "revocation requests seen", || {
        revokers
            .iter()
            .all(|id| progress[id].revoke_seen.load(Ordering::SeqCst) == held)
    });
    let s1 = shared.snapshot();
    let rounds1: HashMap<&str, u64> = progress
        .iter()
        .map(|(id, p)| (*id, p.rounds.load(Ordering::SeqCst)))
        .collect();
    let end1 = log.end_offsets("t").unwrap();
    // With the rebalance held open: every consumer keeps polling and
    // fetching, the producer keeps adding records to every partition (moved
    // ones included), and (cooperative) every unmoved partition delivers
    // FLOW more records.
    wait_until(&shared, "progress while the rebalance is held open", || {
        let s = shared.snapshot();
        let end = log.end_offsets("t").unwrap();
        progress
            .iter()
            .all(|(id, p)| p.rounds.load(Ordering::SeqCst) >= rounds1[id] + ROUNDS)
            && end.iter().zip(&end1).all(|(e, e1)| *e >= e1 + FLOW)
            && unaffected
                .iter()
                .all(|&p| s[p as usize] >= s1[p as usize] + FLOW)
    });
    let s2 = shared.snapshot();
    let d2 = log.describe_group("g").unwrap();
    assert_eq!(
        d2.state,
        GroupState::Rebalancing,
        "still held open: {d2:#?}"
    );
    assert_eq!(d2.generation, held);
    assert_eq!(owned(&d2), unaffected);
    assert_eq!(revoking(&d2), moving);
    for p in &moving {
        let p = *p as usize;
        assert_eq!(
            s2[p], s1[p],
            "partition {p} is being revoked and must not be consumed: {s1:?} -> {s2:?}"
        );
    }

    // Confirm the revocations; the moved partitions reach their new owners.
    shared.release.store(true, Ordering::SeqCst);
    let d3 = wait_for_group(&log, &shared, "three stable members", |d| {
        d.state == GroupState::Stable
            && d.members.len() == 3
            && owned(d).len() == PARTITIONS as usize
    });
    assert_eq!(
        d3.generation,
        held + 1,
        "one more generation hands out the moved partitions"
    );
    let mut seen = BTreeSet::new();
    for m in &d3.members {
        assert!((2..=3).contains(&m.assigned.len()), "{m:?}");
        for tp in &m.assigned {
            assert!(seen.insert(tp.partition));
        }
    }
    if assignor.protocol() == RebalanceProtocol::Cooperative {
        assert_eq!(
            partitions_of(member(&d3, "c3")),
            moving,
            "c3 gets what was revoked"
        );
        for id in ["c1", "c2"] {
            assert_eq!(
                partitions_of(member(&d3, id)),
                partitions_of(member(&d, id))
            );
        }
    }
    // Afterwards every partition flows again, moved ones included.
    let s3 = shared.snapshot();
    wait_until(
        &shared,
        "flow on every partition after the rebalance",
        || {
            shared
                .snapshot()
                .iter()
                .zip(&s3)
                .all(|(now, then)| *now >= then + FLOW)
        },
    );
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
