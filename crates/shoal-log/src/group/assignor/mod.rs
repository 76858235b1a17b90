//! Partition assignors: pure functions from (members with their
//! subscriptions, previous assignment, partitions per topic) to a new
//! assignment, the same four Kafka offers.
//!
//! * [`range`]: per topic, contiguous ranges over the members subscribed to
//!   it (sorted by id); balanced per topic, not across topics.
//! * [`round_robin`]: all partitions (sorted) dealt in turn to the members
//!   (sorted), skipping members not subscribed to the partition's topic.
//! * [`sticky`]: as balanced as round-robin, but keeps every previous owner
//!   it can: a partition moves only if its owner left, stopped subscribing,
//!   or balance needs it.
//! * [`cooperative_sticky`]: the sticky target plus the incremental
//!   cooperative plan: which partitions each member must revoke (only those
//!   that move) and what it may consume right away.
//!
//! Assignors are deterministic: the same input gives the same output.

pub mod cooperative_sticky;
pub mod range;
pub mod round_robin;
pub mod sticky;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::group::TopicPartition;

/// Member id → the partitions it owns.
pub type AssignmentMap = BTreeMap<String, BTreeSet<TopicPartition>>;

/// What every assignor gets.
#[derive(Debug, Clone, Copy)]
pub struct AssignorInput<'a> {
    /// Member id → topics it subscribes to.
    pub subscriptions: &'a BTreeMap<String, BTreeSet<String>>,
    /// Member id → partitions it owned before this rebalance (members that
    /// left may appear here; they are ignored).
    pub previous: &'a AssignmentMap,
    /// Topic → partition count (topics missing here have no partitions).
    pub partitions: &'a BTreeMap<String, u32>,
}

impl AssignorInput<'_> {
    /// Every partition of every topic some member subscribes to, sorted.
    pub fn subscribed_partitions(&self) -> Vec<TopicPartition> {
        let topics: BTreeSet<&String> = self.subscriptions.values().flatten().collect();
        topics
            .into_iter()
            .filter_map(|t| self.partitions.get(t).map(|&n| (t, n)))
            .flat_map(|(t, n)| (0..n).map(move |p| TopicPartition::new(t.clone(), p)))
            .collect()
    }

    /// An assignment with every member present and owning nothing.
    pub fn empty_assignment(&self) -> AssignmentMap {
        self.subscriptions
            .keys()
            .map(|m| (m.clone(), BTreeSet::new()))
            .collect()
    }
}

/// How a group moves partitions between members during a rebalance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RebalanceProtocol {
    /// Every member revokes everything, then the new assignment is handed
    /// out (Kafka's classic protocol; consumption stops group-wide).
    Eager,
    /// Only partitions that move are revoked; the rest keep flowing
    /// (Kafka's incremental cooperative protocol, KIP-429).
    Cooperative,
}

/// The assignors, by their Kafka names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AssignorKind {
    /// [`range`]
    Range,
    /// [`round_robin`]
    RoundRobin,
    /// [`sticky`]
    Sticky,
    /// [`cooperative_sticky`]
    CooperativeSticky,
}

impl AssignorKind {
    /// All assignors.
    pub const ALL: [AssignorKind; 4] = [
        AssignorKind::Range,
        AssignorKind::RoundRobin,
        AssignorKind::Sticky,
        AssignorKind::CooperativeSticky,
    ];

    /// The name used in pipeline files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            AssignorKind::Range => "range",
            AssignorKind::RoundRobin => "round-robin",
            AssignorKind::Sticky => "sticky",
            AssignorKind::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// The rebalance protocol this assignor runs under.
    pub fn protocol(self) -> RebalanceProtocol {
        match self {
            AssignorKind::CooperativeSticky => RebalanceProtocol::Cooperative,
            _ => RebalanceProtocol::Eager,
        }
    }

    /// The target assignment.
    pub fn assign(self, input: &AssignorInput<'_>) -> AssignmentMap {
        match self {
            AssignorKind::Range => range::assign(input),
            AssignorKind::RoundRobin => round_robin::assign(input),
            AssignorKind::Sticky => sticky::assign(input),
            AssignorKind::CooperativeSticky => cooperative_sticky::assign(input).target,
        }
    }
}

impl fmt::Display for AssignorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AssignorKind {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AssignorKind::ALL
            .into_iter()
            .find(|k| k.name() == s || (s == "roundrobin" && *k == AssignorKind::RoundRobin))
            .ok_or_else(|| {
                crate::Error::InvalidArgument(format!(
                    "unknown assignor {s:?} (expected range, round-robin, sticky or cooperative-sticky)"
                ))
            })
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Shared generators and checks for the assignor property tests.

    use super::*;
    use proptest::prelude::*;

    /// Members m0..mN all subscribed to the same topics, random partition counts.
    pub fn same_subscriptions()
    -> impl Strategy<Value = (BTreeMap<String, BTreeSet<String>>, BTreeMap<String, u32>)> {
        (1usize..9, proptest::collection::vec(0u32..12, 1..4)).prop_map(|(m, counts)| {
            let topics: BTreeMap<String, u32> = counts
                .iter()
                .enumerate()
                .map(|(i, &n)| (format!("t{i}"), n))
                .collect();
            let subs = (0..m)
                .map(|i| (format!("m{i}"), topics.keys().cloned().collect()))
                .collect();
            (subs, topics)
        })
    }

    /// Members with random (possibly different, possibly empty) subscriptions.
    pub fn mixed_subscriptions()
    -> impl Strategy<Value = (BTreeMap<String, BTreeSet<String>>, BTreeMap<String, u32>)> {
        (
            proptest::collection::vec(proptest::collection::btree_set(0usize..4, 0..4), 1..8),
            proptest::collection::vec(0u32..10, 4),
        )
            .prop_map(|(members, counts)| {
                let topics: BTreeMap<String, u32> = counts
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != 3) // t3 is subscribed to but does not exist
                    .map(|(i, &n)| (format!("t{i}"), n))
                    .collect();
                let subs = members
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| {
                        (
                            format!("m{i}"),
                            s.into_iter().map(|t| format!("t{t}")).collect(),
                        )
                    })
                    .collect();
                (subs, topics)
            })
    }

    /// Every subscribed, existing partition has exactly one owner, owners
    /// subscribe to its topic, and every member appears.
    pub fn check_complete(
        input: &AssignorInput<'_>,
        out: &AssignmentMap,
    ) -> Result<(), TestCaseError> {
        let mut owners: BTreeMap<&TopicPartition, usize> = BTreeMap::new();
        for (m, tps) in out {
            prop_assert!(input.subscriptions.contains_key(m), "unknown member {m}");
            for tp in tps {
                prop_assert!(
                    input.subscriptions[m].contains(&tp.topic),
                    "{m} not subscribed to {tp}"
                );
                *owners.entry(tp).or_default() += 1;
            }
        }
        for m in input.subscriptions.keys() {
            prop_assert!(out.contains_key(m), "member {m} missing from assignment");
        }
        let all = input.subscribed_partitions();
        prop_assert_eq!(owners.len(), all.len());
        for tp in &all {
            prop_assert_eq!(owners.get(tp).copied(), Some(1), "{} owners", tp);
        }
        Ok(())
    }

    /// Per-member totals differ by at most one.
    pub fn check_balanced(out: &AssignmentMap) -> Result<(), TestCaseError> {
        let counts: Vec<usize> = out.values().map(BTreeSet::len).collect();
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        prop_assert!(max - min <= 1, "unbalanced: {:?}", counts);
        Ok(())
    }
}
