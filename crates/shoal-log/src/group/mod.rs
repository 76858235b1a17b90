//! Consumer groups: the [`coordinator`] (membership, generations,
//! rebalances, committed offsets), the [`assignor`]s, and the persisted
//! group files ([`store`]).
//!
//! This module also holds the serde types the coordinator hands out:
//! [`Assignment`] (a member's view), [`GroupDescription`] and
//! [`GroupSummary`] (for `shoal group describe|list`).

pub mod assignor;
pub mod coordinator;
pub mod store;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use assignor::{AssignmentMap, AssignorInput, AssignorKind, RebalanceProtocol};
pub use coordinator::Coordinator;

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: u32,
}

impl TopicPartition {
    /// `topic`/`partition`.
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// A member's view of the group, from [`Coordinator::poll_assignment`].
///
/// Consume `partitions`. If `revoke` is not empty, stop consuming those
/// (commit their final offsets with this `generation` if you want), then
/// confirm with `ack_revocation(generation)`; the partitions then move to
/// their new owners in the next generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// The group's current generation; commits must carry it.
    pub generation: u64,
    /// Partitions this member may consume now.
    pub partitions: Vec<TopicPartition>,
    /// Partitions this member must stop consuming and confirm.
    pub revoke: Vec<TopicPartition>,
    /// A rebalance is under way (revocations pending somewhere in the group);
    /// more partitions may be assigned when it completes.
    pub rebalancing: bool,
}

impl Assignment {
    /// True if this member has revocations to confirm.
    pub fn must_revoke(&self) -> bool {
        !self.revoke.is_empty()
    }
}

/// Answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The group's current generation.
    pub generation: u64,
    /// A rebalance is under way; poll the assignment.
    pub rebalancing: bool,
}

/// Where a group is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupState {
    /// No members.
    Empty,
    /// Every partition is with its target owner.
    Stable,
    /// Revocations are pending.
    Rebalancing,
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GroupState::Empty => "empty",
            GroupState::Stable => "stable",
            GroupState::Rebalancing => "rebalancing",
        })
    }
}

/// One member in a [`GroupDescription`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberDescription {
    /// Member id.
    pub id: String,
    /// Topics it subscribes to.
    pub topics: Vec<String>,
    /// Partitions it consumes.
    pub assigned: Vec<TopicPartition>,
    /// Partitions it was asked to revoke and has not confirmed yet.
    pub revoking: Vec<TopicPartition>,
    /// When it joined (ms since the epoch).
    pub joined_ms: u64,
    /// Its last sign of life known when this was written.
    pub last_seen_ms: u64,
}

/// Committed offset and lag of one partition in a [`GroupDescription`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionLag {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Member consuming it, if any.
    pub owner: Option<String>,
    /// Committed offset (the next offset the group will read), if any.
    pub committed: Option<u64>,
    /// First offset still stored.
    pub log_start: u64,
    /// Log end offset.
    pub log_end: u64,
    /// `log_end - committed`; with no commit, `log_end - log_start`
    /// (everything stored is backlog).
    pub lag: u64,
}

/// Everything `shoal group describe` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDescription {
    /// Group id.
    pub group: String,
    /// Whether a live process coordinates the group right now. When false,
    /// members are those recorded by the last coordinator (likely gone).
    pub active: bool,
    /// Empty, stable or rebalancing.
    pub state: GroupState,
    /// Current generation.
    pub generation: u64,
    /// The members' assignor, once any member joined.
    pub assignor: Option<AssignorKind>,
    /// Members, by id.
    pub members: Vec<MemberDescription>,
    /// Per partition of the subscribed (or committed) topics.
    pub partitions: Vec<PartitionLag>,
    /// Sum of `lag`.
    pub total_lag: u64,
}

/// One line of `shoal group list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSummary {
    /// Group id.
    pub group: String,
    /// Whether a live process coordinates it.
    pub active: bool,
    /// Empty, stable or rebalancing.
    pub state: GroupState,
    /// Current generation.
    pub generation: u64,
    /// Number of members.
    pub members: usize,
    /// The assignor, once any member joined.
    pub assignor: Option<AssignorKind>,
}
