//! The in-process group coordinator: membership (join, heartbeat, leave,
//! session timeout), generations, rebalances driven by the group's
//! assignor, revocation acknowledgements, and committed offsets.
//!
//! # Protocol
//!
//! Every membership change (join, leave, expulsion) and every change in the
//! partition count of a subscribed topic bumps the generation and runs the
//! assignor over the members' subscriptions and what each currently holds.
//! What happens next depends on the assignor's [`RebalanceProtocol`]:
//!
//! * **Eager** (`range`, `round-robin`, `sticky`): like Kafka's classic
//!   protocol, every member must revoke *all* its partitions. Nothing is
//!   handed out until every member has confirmed with
//!   [`Coordinator::ack_revocation`]; then the generation is bumped again
//!   and everyone receives the new assignment.
//! * **Cooperative** (`cooperative-sticky`): like Kafka's incremental
//!   cooperative protocol (KIP-429), only partitions that move are revoked;
//!   partitions nobody holds are handed out at once, and everything else
//!   keeps flowing. When every revocation is confirmed, a follow-up
//!   generation hands the moved partitions to their new owners.
//!
//! If nothing has to be revoked, the assignment is handed out in the same
//! generation. A partition is never held by two members at once: it is
//! either owned, being revoked by its old owner, or free.
//!
//! Members learn about all this by polling ([`Coordinator::poll_assignment`]),
//! which is cheap (one mutex). Any member call (poll, heartbeat, commit,
//! ack) counts as a sign of life; a member silent for longer than the
//! session timeout, or that does not confirm a revocation within the
//! rebalance timeout, is expelled at the next call on the group (or
//! [`Coordinator::tick`]) and the group rebalances. Time comes from the
//! injected [`Clock`], so tests do not sleep.
//!
//! # Fencing and offsets
//!
//! A commit carries the generation the member last saw; if the group has
//! moved on, it fails with [`Error::StaleGeneration`] (and an expelled
//! member gets [`Error::UnknownMember`]). Because a moved partition reaches
//! its new owner only in a later generation, a stale owner can never
//! overwrite the new owner's commits. Committed offsets are Kafka's: the
//! next offset to read. They are written to `offsets.json` atomically and
//! durably before `commit` returns; membership and assignment go to
//! `state.json` on every change (atomic rename, see [`super::store`]). Files are written after the group's mutex
//! is released, so slow disks never block other members' polls.
//!
//! A group is coordinated by one process at a time (`coordinator.lock`,
//! taken when the first member joins, released when the last one leaves).
//! Members recorded by a previous process are not resurrected; the
//! generation and committed offsets are.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::assignor::{
    AssignmentMap, AssignorInput, AssignorKind, RebalanceProtocol, cooperative_sticky,
};
use super::store::{self, CommittedOffsets, GROUP_FILES_VERSION, OffsetsFile, StateFile};
use super::{
    Assignment, GroupDescription, GroupState, GroupSummary, Heartbeat, MemberDescription,
    PartitionLag, TopicPartition,
};
use crate::catalog::TopicMetadata;
use crate::clock::Clock;
use crate::config::GroupConfig;
use crate::error::{Error, Result};
use crate::fsutil::{self, LockFile};

/// One member's state.
#[derive(Debug, Clone, Default)]
struct Member {
    topics: BTreeSet<String>,
    owned: BTreeSet<TopicPartition>,
    revoking: BTreeSet<TopicPartition>,
    joined_ms: u64,
    last_seen_ms: u64,
    revoke_deadline_ms: Option<u64>,
}

/// A group's mutable state (behind its mutex).
#[derive(Debug, Default)]
struct GroupData {
    generation: u64,
    assignor: Option<AssignorKind>,
    members: BTreeMap<String, Member>,
    target: AssignmentMap,
    partitions_seen: BTreeMap<String, u32>,
    offsets: CommittedOffsets,
    lock: Option<LockFile>,
    state_seq: u64,
    offsets_seq: u64,
}

/// A group known to this process.
#[derive(Debug)]
struct Group {
    name: String,
    dir: PathBuf,
    data: Mutex<GroupData>,
    /// Sequence numbers of the state/offsets snapshots last written.
    written: Mutex<(u64, u64)>,
}

/// What group operations need besides the group itself.
struct Ctx<'a> {
    name: &'a str,
    config: &'a GroupConfig,
    meta: &'a dyn TopicMetadata,
}

/// The coordinator of all groups of one log directory; see the module docs.
pub struct Coordinator {
    groups_dir: PathBuf,
    config: GroupConfig,
    clock: Arc<dyn Clock>,
    meta: Arc<dyn TopicMetadata>,
    read_only: bool,
    groups: Mutex<HashMap<String, Arc<Group>>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("groups_dir", &self.groups_dir)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl GroupData {
    fn topics(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.topics.iter().cloned())
            .collect()
    }

    fn is_rebalancing(&self) -> bool {
        self.members.values().any(|m| !m.revoking.is_empty())
    }

    fn state(&self) -> GroupState {
        if self.members.is_empty() {
            GroupState::Empty
        } else if self.is_rebalancing() {
            GroupState::Rebalancing
        } else {
            GroupState::Stable
        }
    }

    /// Fence a member acting under an old generation.
    fn check_generation(&self, ctx: &Ctx<'_>, member: &str, generation: u64) -> Result<()> {
        if generation != self.generation {
            return Err(Error::StaleGeneration {
                group: ctx.name.to_owned(),
                member: member.to_owned(),
                given: generation,
                current: self.generation,
            });
        }
        Ok(())
    }

    fn member(&mut self, ctx: &Ctx<'_>, id: &str) -> Result<&mut Member> {
        self.members
            .get_mut(id)
            .ok_or_else(|| Error::UnknownMember {
                group: ctx.name.to_owned(),
                member: id.to_owned(),
            })
    }

    fn view(&self, id: &str) -> Assignment {
        let m = &self.members[id];
        Assignment {
            generation: self.generation,
            partitions: m.owned.iter().cloned().collect(),
            revoke: m.revoking.iter().cloned().collect(),
            rebalancing: self.is_rebalancing(),
        }
    }

    /// Expels members past their session or revocation deadline.
    fn expire(&mut self, ctx: &Ctx<'_>, now: u64) {
        let session = ctx.config.session_timeout.as_millis() as u64;
        let gone: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| {
                now.saturating_sub(m.last_seen_ms) > session
                    || m.revoke_deadline_ms.is_some_and(|d| now > d)
            })
            .map(|(id, _)| id.clone())
            .collect();
        if gone.is_empty() {
            return;
        }
        for id in &gone {
            tracing::warn!(group = ctx.name, member = %id, "member expelled (session or rebalance timeout)");
            self.members.remove(id);
        }
        self.rebalance(ctx, now, "member expelled");
    }

    /// Rebalances if a subscribed topic's partition count changed.
    fn check_metadata(&mut self, ctx: &Ctx<'_>, now: u64) {
        let counts = partition_counts(ctx.meta, &self.topics());
        if counts != self.partitions_seen {
            self.rebalance(ctx, now, "partition metadata changed");
        }
    }

    /// Bumps the generation and starts a rebalance; see the module docs.
    fn rebalance(&mut self, ctx: &Ctx<'_>, now: u64, reason: &str) {
        self.generation += 1;
        self.state_seq += 1;
        self.partitions_seen = partition_counts(ctx.meta, &self.topics());
        if self.members.is_empty() {
            self.target.clear();
            tracing::info!(
                group = ctx.name,
                generation = self.generation,
                reason,
                "group is empty"
            );
            return;
        }
        let kind = self.assignor.unwrap_or(AssignorKind::Range);
        let subs: BTreeMap<String, BTreeSet<String>> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.topics.clone()))
            .collect();
        let previous: AssignmentMap = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.owned.union(&m.revoking).cloned().collect()))
            .collect();
        let input = AssignorInput {
            subscriptions: &subs,
            previous: &previous,
            partitions: &self.partitions_seen,
        };
        match kind.protocol() {
            RebalanceProtocol::Eager => {
                self.target = kind.assign(&input);
                for m in self.members.values_mut() {
                    let owned = std::mem::take(&mut m.owned);
                    m.revoking.extend(owned);
                }
            }
            RebalanceProtocol::Cooperative => {
                let plan = cooperative_sticky::assign(&input);
                self.target = plan.target;
                for (id, revoke) in plan.revoke {
                    let m = self.members.get_mut(&id).expect("member");
                    for tp in revoke {
                        if m.owned.remove(&tp) {
                            m.revoking.insert(tp);
                        }
                    }
                }
            }
        }
        let deadline = now + ctx.config.rebalance_timeout.as_millis() as u64;
        for m in self.members.values_mut() {
            if m.revoking.is_empty() {
                m.revoke_deadline_ms = None;
            } else if m.revoke_deadline_ms.is_none() {
                m.revoke_deadline_ms = Some(deadline);
            }
        }
        if !self.is_rebalancing() || kind.protocol() == RebalanceProtocol::Cooperative {
            self.grant_free();
        }
        tracing::info!(
            group = ctx.name,
            generation = self.generation,
            members = self.members.len(),
            assignor = kind.name(),
            pending_revocations = self.is_rebalancing(),
            reason,
            "rebalance"
        );
    }

    /// Gives every target partition nobody holds to its target owner.
    fn grant_free(&mut self) {
        let held: BTreeSet<TopicPartition> = self
            .members
            .values()
            .flat_map(|m| m.owned.iter().chain(m.revoking.iter()).cloned())
            .collect();
        for (id, tps) in &self.target {
            if let Some(m) = self.members.get_mut(id) {
                for tp in tps {
                    if !held.contains(tp) {
                        m.owned.insert(tp.clone());
                    }
                }
            }
        }
    }

    fn describe_members(&self) -> Vec<MemberDescription> {
        self.members
            .iter()
            .map(|(id, m)| MemberDescription {
                id: id.clone(),
                topics: m.topics.iter().cloned().collect(),
                assigned: m.owned.iter().cloned().collect(),
                revoking: m.revoking.iter().cloned().collect(),
                joined_ms: m.joined_ms,
                last_seen_ms: m.last_seen_ms,
            })
            .collect()
    }
}

fn partition_counts(meta: &dyn TopicMetadata, topics: &BTreeSet<String>) -> BTreeMap<String, u32> {
    topics
        .iter()
        .filter_map(|t| meta.partition_count(t).map(|n| (t.clone(), n)))
        .collect()
}

impl Coordinator {
    /// A coordinator keeping its files in `groups_dir`.
    pub fn new(
        groups_dir: PathBuf,
        config: GroupConfig,
        clock: Arc<dyn Clock>,
        meta: Arc<dyn TopicMetadata>,
        read_only: bool,
    ) -> Coordinator {
        Coordinator {
            groups_dir,
            config,
            clock,
            meta,
            read_only,
            groups: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        }
    }

    /// The group timing in force.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    fn group(&self, name: &str) -> Result<Arc<Group>> {
        fsutil::validate_name("group", name)?;
        let mut groups = self.groups.lock().expect("groups lock");
        if let Some(g) = groups.get(name) {
            return Ok(g.clone());
        }
        let g = Arc::new(Group {
            name: name.to_owned(),
            dir: store::group_dir(&self.groups_dir, name),
            data: Mutex::new(GroupData::default()),
            written: Mutex::new((0, 0)),
        });
        groups.insert(name.to_owned(), g.clone());
        Ok(g)
    }

    fn existing_group(&self, name: &str) -> Option<Arc<Group>> {
        self.groups.lock().expect("groups lock").get(name).cloned()
    }

    /// Runs `f` on the group's data under its mutex, then writes whatever
    /// changed (state, offsets) after releasing it.
    fn run<R>(
        &self,
        g: &Group,
        f: impl FnOnce(&mut GroupData, &Ctx<'_>, u64) -> Result<R>,
    ) -> Result<R> {
        let now = self.clock.now_ms();
        let ctx = Ctx {
            name: &g.name,
            config: &self.config,
            meta: self.meta.as_ref(),
        };
        let (res, state, offsets, empty) = {
            let mut d = g.data.lock().expect("group lock");
            let (s0, o0) = (d.state_seq, d.offsets_seq);
            let res = f(&mut d, &ctx, now);
            let state = (d.state_seq != s0 && d.lock.is_some()).then(|| {
                let file = StateFile {
                    version: GROUP_FILES_VERSION,
                    group: g.name.clone(),
                    generation: d.generation,
                    assignor: d.assignor,
                    state: d.state(),
                    members: d.describe_members(),
                    coordinator_pid: std::process::id(),
                    updated_ms: now,
                };
                (
                    d.state_seq,
                    serde_json::to_vec_pretty(&file).expect("state serializes"),
                )
            });
            let offsets = (d.offsets_seq != o0 && d.lock.is_some()).then(|| {
                let file = OffsetsFile {
                    version: GROUP_FILES_VERSION,
                    group: g.name.clone(),
                    generation: d.generation,
                    offsets: d.offsets.clone(),
                };
                (
                    d.offsets_seq,
                    serde_json::to_vec_pretty(&file).expect("offsets serialize"),
                )
            });
            (
                res,
                state,
                offsets,
                d.members.is_empty() && d.lock.is_some(),
            )
        };
        if state.is_some() || offsets.is_some() {
            let mut written = g.written.lock().expect("persist lock");
            if let Some((seq, bytes)) = state
                && seq > written.0
            {
                if let Err(e) = store::write_state(&g.dir, &bytes) {
                    tracing::warn!(group = %g.name, error = %e, "cannot write group state");
                } else {
                    written.0 = seq;
                }
            }
            if let Some((seq, bytes)) = offsets
                && seq > written.1
            {
                store::write_offsets(&g.dir, &bytes)?;
                written.1 = seq;
            }
        }
        if empty {
            // Last member left: let another process coordinate the group.
            let mut d = g.data.lock().expect("group lock");
            if d.members.is_empty() {
                d.lock = None;
            }
        }
        res
    }

    /// Adds a member subscribing to `topics` with `assignor` (all members of
    /// a group must use the same one) and rebalances. `member_id`: a stable
    /// id of the caller's choosing (e.g. `"<source>-<index>"`), or `None` to
    /// have one generated. Returns the member id.
    pub fn join(
        &self,
        group: &str,
        member_id: Option<&str>,
        topics: &[String],
        assignor: AssignorKind,
    ) -> Result<String> {
        if self.read_only {
            return Err(Error::ReadOnly {
                path: self.groups_dir.clone(),
            });
        }
        if topics.is_empty() {
            return Err(Error::InvalidArgument(
                "a member must subscribe to at least one topic".into(),
            ));
        }
        for t in topics {
            fsutil::validate_name("topic", t)?;
        }
        let g = self.group(group)?;
        let id = match member_id {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => format!(
                "{group}-{}-{}",
                std::process::id(),
                self.next_id.fetch_add(1, Ordering::Relaxed)
            ),
        };
        self.run(&g, |d, ctx, now| {
            d.expire(ctx, now);
            if d.lock.is_none() {
                self.take_over(&g, d)?;
            }
            if let Some(current) = d.assignor.filter(|_| !d.members.is_empty())
                && current != assignor
            {
                return Err(Error::InconsistentAssignor {
                    group: g.name.clone(),
                    current: current.name().into(),
                    requested: assignor.name().into(),
                });
            }
            if d.members.contains_key(&id) {
                return Err(Error::MemberExists {
                    group: g.name.clone(),
                    member: id.clone(),
                });
            }
            d.assignor = Some(assignor);
            d.members.insert(
                id.clone(),
                Member {
                    topics: topics.iter().cloned().collect(),
                    joined_ms: now,
                    last_seen_ms: now,
                    ..Member::default()
                },
            );
            d.rebalance(ctx, now, "member joined");
            Ok(id.clone())
        })
    }

    /// Takes the coordinator lock and reloads generation and offsets.
    fn take_over(&self, g: &Group, d: &mut GroupData) -> Result<()> {
        std::fs::create_dir_all(&g.dir).map_err(|e| Error::io("create dir", &g.dir, e))?;
        let path = g.dir.join(store::LOCK_FILE);
        let lock = LockFile::try_acquire(&path)?.map_err(|held| Error::GroupLocked {
            group: g.name.clone(),
            path: path.clone(),
            holder: held.holder,
        })?;
        if let Some(s) = store::read_state(&g.dir)? {
            d.generation = d.generation.max(s.generation);
        }
        d.offsets = store::read_offsets(&g.dir)?
            .map(|o| o.offsets)
            .unwrap_or_default();
        d.members.clear();
        d.lock = Some(lock);
        Ok(())
    }

    /// Removes a member and rebalances. Leaving twice is not an error.
    pub fn leave(&self, group: &str, member: &str) -> Result<()> {
        let Some(g) = self.existing_group(group) else {
            return Ok(());
        };
        self.run(&g, |d, ctx, now| {
            if d.members.remove(member).is_some() {
                d.rebalance(ctx, now, "member left");
            }
            d.expire(ctx, now);
            Ok(())
        })
    }

    fn with_member<R>(
        &self,
        group: &str,
        member: &str,
        f: impl FnOnce(&mut GroupData, &Ctx<'_>, u64) -> Result<R>,
    ) -> Result<R> {
        let unknown = || Error::UnknownMember {
            group: group.to_owned(),
            member: member.to_owned(),
        };
        let g = self.existing_group(group).ok_or_else(unknown)?;
        self.run(&g, |d, ctx, now| {
            d.expire(ctx, now);
            d.member(ctx, member)?.last_seen_ms = now;
            f(d, ctx, now)
        })
    }

    /// Records a sign of life.
    pub fn heartbeat(&self, group: &str, member: &str) -> Result<Heartbeat> {
        self.with_member(group, member, |d, _, _| {
            Ok(Heartbeat {
                generation: d.generation,
                rebalancing: d.is_rebalancing(),
            })
        })
    }

    /// The member's current assignment (also a sign of life). Notices
    /// partition-count changes of subscribed topics and rebalances.
    pub fn poll_assignment(&self, group: &str, member: &str) -> Result<Assignment> {
        self.with_member(group, member, |d, ctx, now| {
            d.check_metadata(ctx, now);
            Ok(d.view(member))
        })
    }

    /// Confirms the member stopped consuming the partitions it was asked to
    /// revoke in `generation`. When the last pending revocation is
    /// confirmed, the next generation hands them to their new owners.
    pub fn ack_revocation(&self, group: &str, member: &str, generation: u64) -> Result<Assignment> {
        self.with_member(group, member, |d, ctx, _| {
            d.check_generation(ctx, member, generation)?;
            let m = d.member(ctx, member)?;
            if m.revoking.is_empty() {
                return Ok(d.view(member));
            }
            m.revoking.clear();
            m.revoke_deadline_ms = None;
            d.state_seq += 1;
            if !d.is_rebalancing() {
                d.generation += 1;
                d.grant_free();
                tracing::info!(
                    group = ctx.name,
                    generation = d.generation,
                    "rebalance completed"
                );
            }
            Ok(d.view(member))
        })
    }

    /// Commits offsets (next offset to read) for `(topic, partition)`s.
    /// Fails with [`Error::StaleGeneration`] if `generation` is not the
    /// group's current one. Durable when it returns.
    pub fn commit(
        &self,
        group: &str,
        member: &str,
        generation: u64,
        offsets: &[(&str, u32, u64)],
    ) -> Result<()> {
        self.with_member(group, member, |d, ctx, _| {
            d.check_generation(ctx, member, generation)?;
            for &(topic, partition, offset) in offsets {
                d.offsets
                    .entry(topic.to_owned())
                    .or_default()
                    .insert(partition, offset);
            }
            if !offsets.is_empty() {
                d.offsets_seq += 1;
            }
            Ok(())
        })
    }

    /// Expels timed-out members of every group this process coordinates.
    pub fn tick(&self) -> Result<()> {
        let groups: Vec<Arc<Group>> = self
            .groups
            .lock()
            .expect("groups lock")
            .values()
            .cloned()
            .collect();
        for g in groups {
            self.run(&g, |d, ctx, now| {
                d.expire(ctx, now);
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Committed offsets of `group` for `topic` (partition → offset).
    pub fn committed(&self, group: &str, topic: &str) -> Result<BTreeMap<u32, u64>> {
        fsutil::validate_name("group", group)?;
        if let Some(g) = self.existing_group(group) {
            let d = g.data.lock().expect("group lock");
            if d.lock.is_some() {
                return Ok(d.offsets.get(topic).cloned().unwrap_or_default());
            }
        }
        let dir = store::group_dir(&self.groups_dir, group);
        Ok(store::read_offsets(&dir)?
            .and_then(|mut o| o.offsets.remove(topic))
            .unwrap_or_default())
    }

    /// Members, generation, assignment, committed offsets and lag. Live if
    /// this process coordinates the group, else from its files.
    pub fn describe(&self, group: &str) -> Result<GroupDescription> {
        fsutil::validate_name("group", group)?;
        if let Some(g) = self.existing_group(group) {
            let live = self.run(&g, |d, ctx, now| {
                if d.lock.is_none() {
                    return Ok(None);
                }
                d.expire(ctx, now);
                Ok(Some((
                    d.generation,
                    d.assignor,
                    d.state(),
                    d.describe_members(),
                    d.offsets.clone(),
                )))
            })?;
            if let Some((generation, assignor, state, members, offsets)) = live {
                return Ok(self.build_description(
                    group, true, generation, assignor, state, members, offsets,
                ));
            }
        }
        let dir = store::group_dir(&self.groups_dir, group);
        let state = store::read_state(&dir)?;
        let offsets = store::read_offsets(&dir)?;
        if state.is_none() && offsets.is_none() {
            return Err(Error::GroupNotFound {
                group: group.to_owned(),
            });
        }
        let active = dir.join(store::LOCK_FILE).exists()
            && matches!(
                LockFile::try_acquire(&dir.join(store::LOCK_FILE)),
                Ok(Err(_))
            );
        let offsets = offsets.map(|o| o.offsets).unwrap_or_default();
        let (generation, assignor, gstate, members) = match state {
            Some(s) => (s.generation, s.assignor, s.state, s.members),
            None => (0, None, GroupState::Empty, Vec::new()),
        };
        Ok(self.build_description(
            group, active, generation, assignor, gstate, members, offsets,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn build_description(
        &self,
        group: &str,
        active: bool,
        generation: u64,
        assignor: Option<AssignorKind>,
        state: GroupState,
        members: Vec<MemberDescription>,
        offsets: CommittedOffsets,
    ) -> GroupDescription {
        let mut topics: BTreeSet<String> = offsets.keys().cloned().collect();
        topics.extend(members.iter().flat_map(|m| m.topics.iter().cloned()));
        let owner: BTreeMap<&TopicPartition, &String> = members
            .iter()
            .flat_map(|m| {
                m.assigned
                    .iter()
                    .chain(m.revoking.iter())
                    .map(move |tp| (tp, &m.id))
            })
            .collect();
        let mut partitions = Vec::new();
        for topic in &topics {
            let Some(bounds) = self.meta.offsets(topic) else {
                continue;
            };
            for (p, (start, end)) in bounds.into_iter().enumerate() {
                let p = p as u32;
                let committed = offsets.get(topic).and_then(|o| o.get(&p)).copied();
                let from = committed.unwrap_or(start).max(start);
                partitions.push(PartitionLag {
                    topic: topic.clone(),
                    partition: p,
                    owner: owner
                        .get(&TopicPartition::new(topic.clone(), p))
                        .map(|s| (*s).clone()),
                    committed,
                    log_start: start,
                    log_end: end,
                    lag: end.saturating_sub(from),
                });
            }
        }
        GroupDescription {
            group: group.to_owned(),
            active,
            state,
            generation,
            assignor,
            total_lag: partitions.iter().map(|p| p.lag).sum(),
            members,
            partitions,
        }
    }

    /// Every group with files in the log directory, sorted by id.
    pub fn list(&self) -> Result<Vec<GroupSummary>> {
        let mut names = Vec::new();
        match std::fs::read_dir(&self.groups_dir) {
            Ok(rd) => {
                for e in rd {
                    let e = e.map_err(|e| Error::io("list", &self.groups_dir, e))?;
                    if let Some(n) = e.file_name().to_str()
                        && !n.starts_with('.')
                        && e.path().is_dir()
                    {
                        names.push(n.to_owned());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("list", &self.groups_dir, e)),
        }
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            match self.describe(&n) {
                Ok(d) => out.push(GroupSummary {
                    group: d.group,
                    active: d.active,
                    state: d.state,
                    generation: d.generation,
                    members: d.members.len(),
                    assignor: d.assignor,
                }),
                Err(Error::GroupNotFound { .. }) | Err(Error::InvalidName { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}
