//! Coordinator: join, leave, heartbeat, session timeout, generations,
//! eager and cooperative rebalances, fencing, durable offsets, lag.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use shoal_log::*;

struct Env {
    _dir: tempfile::TempDir,
    log: LogDir,
    clock: ManualClock,
}

fn config(clock: &ManualClock) -> LogConfig {
    LogConfig {
        clock: Arc::new(clock.clone()),
        group: GroupConfig {
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
        },
        ..LogConfig::default()
    }
}

fn env(partitions: u32) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let log = LogDir::open(dir.path(), config(&clock)).unwrap();
    log.create_topic("t", partitions).unwrap();
    Env {
        _dir: dir,
        log,
        clock,
    }
}

fn reopen(path: &Path, clock: &ManualClock) -> LogDir {
    LogDir::open(path, config(clock)).unwrap()
}

fn join(log: &LogDir, id: &str, assignor: AssignorKind) -> Consumer {
    log.consumer("g", ConsumerConfig::new(["t"], assignor).member_id(id))
        .unwrap()
}

fn parts(a: &Assignment) -> BTreeSet<u32> {
    a.partitions.iter().map(|tp| tp.partition).collect()
}

/// Acks pending revocations of all consumers until the group is stable.
fn settle(consumers: &[&Consumer]) -> Vec<Assignment> {
    for _ in 0..4 {
        for c in consumers {
            let a = c.poll_assignment().unwrap();
            if a.must_revoke() {
                c.ack_revocation(a.generation).unwrap();
            }
        }
    }
    let out: Vec<Assignment> = consumers
        .iter()
        .map(|c| c.poll_assignment().unwrap())
        .collect();
    assert!(out.iter().all(|a| !a.rebalancing && !a.must_revoke()));
    out
}

fn assert_disjoint_cover(assignments: &[Assignment], n: u32) {
    let mut seen = BTreeSet::new();
    for a in assignments {
        for tp in &a.partitions {
            assert!(
                seen.insert(tp.partition),
                "partition {} owned twice",
                tp.partition
            );
        }
    }
    assert_eq!(seen, (0..n).collect());
}

#[test]
fn first_member_gets_everything_in_generation_one() {
    let e = env(4);
    let c = join(&e.log, "a", AssignorKind::Range);
    let a = c.poll_assignment().unwrap();
    assert_eq!(a.generation, 1);
    assert_eq!(parts(&a), (0..4).collect());
    assert!(!a.rebalancing && a.revoke.is_empty());
    assert_eq!(c.member_id(), "a");
}

#[test]
fn eager_join_revokes_everything_then_assigns_in_the_next_generation() {
    let e = env(6);
    let a = join(&e.log, "a", AssignorKind::Range);
    assert_eq!(a.poll_assignment().unwrap().generation, 1);
    let b = join(&e.log, "b", AssignorKind::Range);
    let va = a.poll_assignment().unwrap();
    let vb = b.poll_assignment().unwrap();
    assert_eq!(va.generation, 2, "join bumps the generation");
    assert!(va.partitions.is_empty(), "eager: a stops everything");
    assert_eq!(va.revoke.len(), 6);
    assert!(
        vb.partitions.is_empty() && vb.rebalancing,
        "b waits for a's revocation"
    );
    // A commit for the revoked partitions is still allowed in this generation.
    a.commit(2, &[("t", 0, 5)]).unwrap();
    let after = a.ack_revocation(2).unwrap();
    assert_eq!(after.generation, 3);
    let all = settle(&[&a, &b]);
    assert_eq!(all[0].generation, 3);
    assert_eq!(parts(&all[0]), [0, 1, 2].into());
    assert_eq!(parts(&all[1]), [3, 4, 5].into());
}

#[test]
fn cooperative_join_revokes_only_what_moves_and_others_keep_flowing() {
    let e = env(6);
    let a = join(&e.log, "a", AssignorKind::CooperativeSticky);
    let b = join(&e.log, "b", AssignorKind::CooperativeSticky);
    let before = settle(&[&a, &b]);
    assert_disjoint_cover(&before, 6);
    let gen_before = before[0].generation;

    let c = join(&e.log, "c", AssignorKind::CooperativeSticky);
    let va = a.poll_assignment().unwrap();
    let vb = b.poll_assignment().unwrap();
    let vc = c.poll_assignment().unwrap();
    assert_eq!(va.generation, gen_before + 1);
    // Each of a and b gives up exactly one partition and keeps the other two.
    assert_eq!((va.revoke.len(), vb.revoke.len()), (1, 1));
    assert_eq!(va.partitions.len(), 2);
    assert_eq!(vb.partitions.len(), 2);
    assert!(parts(&va).is_subset(&parts(&before[0])));
    assert!(
        vc.partitions.is_empty(),
        "moved partitions wait for the revocation"
    );
    assert!(vc.rebalancing);

    a.ack_revocation(va.generation).unwrap();
    assert!(
        c.poll_assignment().unwrap().partitions.is_empty(),
        "still waiting for b"
    );
    b.ack_revocation(vb.generation).unwrap();
    let all = settle(&[&a, &b, &c]);
    assert_eq!(
        all[2].generation,
        gen_before + 2,
        "follow-up generation assigns them"
    );
    assert_eq!(all[2].partitions.len(), 2);
    assert_disjoint_cover(&all, 6);
    // a and b kept what they did not revoke.
    assert_eq!(parts(&all[0]), parts(&va));
    assert_eq!(parts(&all[1]), parts(&vb));
}

#[test]
fn leave_rebalances_to_the_remaining_members() {
    let e = env(4);
    let a = join(&e.log, "a", AssignorKind::CooperativeSticky);
    let b = join(&e.log, "b", AssignorKind::CooperativeSticky);
    let before = settle(&[&a, &b]);
    b.leave().unwrap();
    b.leave().unwrap(); // idempotent
    let va = a.poll_assignment().unwrap();
    assert_eq!(va.generation, before[0].generation + 1);
    assert_eq!(
        parts(&va),
        (0..4).collect(),
        "free partitions are handed out at once"
    );
    assert!(!va.rebalancing);
    assert!(matches!(
        b.poll_assignment(),
        Err(Error::UnknownMember { .. })
    ));
    drop(b);
    // Dropping a handle leaves too.
    drop(a);
    let d = e.log.describe_group("g").unwrap();
    assert_eq!(d.state, GroupState::Empty);
    assert!(d.members.is_empty());
}

#[test]
fn heartbeats_keep_members_and_silence_expels_them() {
    let e = env(4);
    let a = join(&e.log, "a", AssignorKind::Sticky);
    let b = join(&e.log, "b", AssignorKind::Sticky);
    let g0 = settle(&[&a, &b])[0].generation;
    for _ in 0..5 {
        e.clock.advance(Duration::from_secs(6));
        a.heartbeat().unwrap();
        b.heartbeat().unwrap();
    }
    assert_eq!(
        a.heartbeat().unwrap().generation,
        g0,
        "no change while both are alive"
    );
    // b goes silent past the session timeout.
    e.clock.advance(Duration::from_secs(6));
    a.heartbeat().unwrap();
    e.clock.advance(Duration::from_secs(6));
    let hb = a.heartbeat().unwrap();
    assert!(hb.generation > g0, "expulsion bumps the generation");
    assert!(matches!(b.heartbeat(), Err(Error::UnknownMember { .. })));
    let err = b.commit(hb.generation, &[("t", 0, 1)]).unwrap_err();
    assert_eq!(err.fault(), Fault::Fenced);
    let all = settle(&[&a]);
    assert_eq!(parts(&all[0]), (0..4).collect());
    let d = e.log.describe_group("g").unwrap();
    assert_eq!(
        d.members.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        ["a"]
    );
}

#[test]
fn a_member_that_never_confirms_its_revocation_is_expelled() {
    let e = env(2);
    let a = join(&e.log, "a", AssignorKind::Range);
    let b = join(&e.log, "b", AssignorKind::Range);
    assert!(a.poll_assignment().unwrap().must_revoke());
    // a heartbeats but never acks; b keeps polling.
    for _ in 0..7 {
        e.clock.advance(Duration::from_secs(5));
        let _ = a.heartbeat();
        b.poll_assignment().unwrap();
    }
    assert!(matches!(a.heartbeat(), Err(Error::UnknownMember { .. })));
    let vb = b.poll_assignment().unwrap();
    assert_eq!(parts(&vb), [0, 1].into());
}

#[test]
fn stale_generation_commits_are_fenced() {
    let e = env(2);
    let a = join(&e.log, "a", AssignorKind::CooperativeSticky);
    let g1 = a.poll_assignment().unwrap().generation;
    a.commit(g1, &[("t", 0, 10), ("t", 1, 20)]).unwrap();
    let _b = join(&e.log, "b", AssignorKind::CooperativeSticky);
    let err = a.commit(g1, &[("t", 0, 11)]).unwrap_err();
    match err {
        Error::StaleGeneration { given, current, .. } => assert_eq!((given, current), (g1, g1 + 1)),
        other => panic!("{other}"),
    }
    assert!(matches!(
        a.ack_revocation(g1),
        Err(Error::StaleGeneration { .. })
    ));
    assert_eq!(a.committed("t").unwrap(), [(0, 10), (1, 20)].into());
    let g2 = a.poll_assignment().unwrap().generation;
    a.commit(g2, &[("t", 0, 11)]).unwrap();
    assert_eq!(a.committed("t").unwrap()[&0], 11);
}

#[test]
fn join_errors() {
    let e = env(2);
    let _a = join(&e.log, "a", AssignorKind::Range);
    let dup = e.log.consumer(
        "g",
        ConsumerConfig::new(["t"], AssignorKind::Range).member_id("a"),
    );
    assert!(matches!(dup, Err(Error::MemberExists { .. })));
    let other = e
        .log
        .consumer("g", ConsumerConfig::new(["t"], AssignorKind::Sticky));
    assert!(matches!(other, Err(Error::InconsistentAssignor { .. })));
    let bad = e
        .log
        .consumer("no/slash", ConsumerConfig::new(["t"], AssignorKind::Range));
    assert!(matches!(bad, Err(Error::InvalidName { .. })));
    let generated = e
        .log
        .consumer("g", ConsumerConfig::new(["t"], AssignorKind::Range))
        .unwrap();
    assert!(generated.member_id().starts_with("g-"));
    assert_eq!(
        "cooperative-sticky".parse::<AssignorKind>().unwrap(),
        AssignorKind::CooperativeSticky
    );
    assert!("nope".parse::<AssignorKind>().is_err());
}

#[test]
fn offsets_and_generation_survive_reopen_and_are_visible_to_other_processes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(5_000);
    let last_gen;
    {
        let log = reopen(dir.path(), &clock);
        log.create_topic("t", 3).unwrap();
        let a = join(&log, "a", AssignorKind::RoundRobin);
        let g = a.poll_assignment().unwrap().generation;
        a.commit(g, &[("t", 0, 7), ("t", 2, 9)]).unwrap();

        // Another "process" (a second handle, no shared memory) reads the files.
        let other = reopen(dir.path(), &clock);
        let d = other.describe_group("g").unwrap();
        assert!(d.active, "the first handle coordinates the group");
        assert_eq!(d.generation, g);
        assert_eq!(d.assignor, Some(AssignorKind::RoundRobin));
        assert_eq!(d.members.len(), 1);
        assert_eq!(d.members[0].assigned.len(), 3);
        assert_eq!(other.committed("g", "t").unwrap(), [(0, 7), (2, 9)].into());
        // ... and cannot coordinate it at the same time.
        let err = other
            .consumer("g", ConsumerConfig::new(["t"], AssignorKind::RoundRobin))
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::GroupLocked {
                    holder: Some(_),
                    ..
                }
            ),
            "{err}"
        );
        last_gen = g;
        drop(a);
    }
    let log = reopen(dir.path(), &clock);
    assert_eq!(log.committed("g", "t").unwrap(), [(0, 7), (2, 9)].into());
    let d = log.describe_group("g").unwrap();
    assert!(!d.active);
    let b = join(&log, "b", AssignorKind::Range);
    let a = b.poll_assignment().unwrap();
    assert!(a.generation > last_gen, "generations never go back");
    assert_eq!(b.committed("t").unwrap()[&2], 9);
    let groups = log.list_groups().unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!((groups[0].members, groups[0].active), (1, true));
}

#[test]
fn lag_is_log_end_minus_committed() {
    let e = env(2);
    for p in 0..2u32 {
        let recs: Vec<RecordRef<'_>> = (0..10).map(|_| (None, b"{}".as_slice(), 0)).collect();
        e.log
            .append_to("t", p, &recs[..(5 + p as usize * 5)])
            .unwrap();
    }
    let a = join(&e.log, "a", AssignorKind::Range);
    assert_eq!(a.end_offsets("t").unwrap(), [5, 10]);
    let d = e.log.describe_group("g").unwrap();
    assert_eq!(d.total_lag, 15, "no commit yet: everything is backlog");
    let g = a.poll_assignment().unwrap().generation;
    a.commit(g, &[("t", 0, 5), ("t", 1, 4)]).unwrap();
    let d = e.log.describe_group("g").unwrap();
    let lags: Vec<(u32, Option<u64>, u64, u64)> = d
        .partitions
        .iter()
        .map(|p| (p.partition, p.committed, p.log_end, p.lag))
        .collect();
    assert_eq!(lags, [(0, Some(5), 5, 0), (1, Some(4), 10, 6)]);
    assert_eq!(d.total_lag, 6);
    assert_eq!(d.partitions[1].owner.as_deref(), Some("a"));
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["partitions"][1]["lag"], 6);
    assert_eq!(json["assignor"], "range");
    assert_eq!(json["state"], "stable");
}

#[test]
fn new_partitions_trigger_a_rebalance() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(0);
    let log = reopen(dir.path(), &clock);
    // Subscribing to a topic that does not exist yet is allowed.
    let c = log
        .consumer(
            "g",
            ConsumerConfig::new(["later"], AssignorKind::CooperativeSticky),
        )
        .unwrap();
    let a0 = c.poll_assignment().unwrap();
    assert!(a0.partitions.is_empty());
    log.create_topic("later", 3).unwrap();
    let a1 = c.poll_assignment().unwrap();
    assert_eq!(a1.generation, a0.generation + 1);
    assert_eq!(a1.partitions.len(), 3);
}
