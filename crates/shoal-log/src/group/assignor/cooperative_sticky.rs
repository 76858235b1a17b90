//! Kafka's `CooperativeStickyAssignor`: the [`super::sticky`]
//! target, handed out with the incremental cooperative protocol (KIP-429).
//!
//! A rebalance runs in two phases instead of "everyone stops":
//!
//! 1. **Revoke.** Members keep every partition they own that stays with them
//!    in the target. Partitions that move are listed in [`CooperativePlan::revoke`]
//!    for their current owner, who stops consuming them (and may commit their
//!    final offsets) and confirms; they are *not* given to the new owner yet.
//!    Partitions no one owns (their owner left, new partitions) are assigned
//!    at once ([`CooperativePlan::assign_now`]).
//! 2. **Assign.** When every revocation is confirmed, a follow-up generation
//!    hands the revoked partitions to their new owners.
//!
//! So a partition never has two owners, and only moved partitions pause;
//! everything else keeps flowing through both phases. The coordinator
//! (`group::coordinator`) drives the phases and the generations.

use super::{AssignmentMap, AssignorInput, sticky};
use std::collections::BTreeMap;

/// The cooperative plan for one rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CooperativePlan {
    /// Where every partition ends up after both phases.
    pub target: AssignmentMap,
    /// Per member: owned partitions that move away (to revoke first).
    pub revoke: AssignmentMap,
    /// Per member: what it may consume during phase 1 (target minus
    /// partitions another present member still owns).
    pub assign_now: AssignmentMap,
}

/// Cooperative-sticky assignment; `input.previous` is what each member owns
/// now. See the module docs.
pub fn assign(input: &AssignorInput<'_>) -> CooperativePlan {
    let target = sticky::assign(input);
    let mut held_by = BTreeMap::new();
    for (m, tps) in input.previous {
        if input.subscriptions.contains_key(m) {
            for tp in tps {
                held_by.entry(tp).or_insert(m);
            }
        }
    }
    let revoke = target
        .iter()
        .map(|(m, now)| {
            let gone = input
                .previous
                .get(m)
                .map(|prev| prev.difference(now).cloned().collect())
                .unwrap_or_default();
            (m.clone(), gone)
        })
        .collect();
    let assign_now = target
        .iter()
        .map(|(m, now)| {
            let free = now
                .iter()
                .filter(|tp| held_by.get(tp).is_none_or(|owner| *owner == m))
                .cloned()
                .collect();
            (m.clone(), free)
        })
        .collect();
    CooperativePlan {
        target,
        revoke,
        assign_now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::TopicPartition;
    use crate::group::assignor::testutil::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        #[test]
        fn revokes_exactly_the_partitions_that_move(
            (subs, parts) in same_subscriptions(),
            join in any::<bool>(),
            who in 0usize..9,
        ) {
            let empty = AssignmentMap::new();
            let first = assign(&AssignorInput { subscriptions: &subs, previous: &empty, partitions: &parts });
            prop_assert!(first.revoke.values().all(BTreeSet::is_empty));
            prop_assert_eq!(&first.assign_now, &first.target);
            let mut next = subs.clone();
            if join {
                next.insert("new".into(), subs.values().next().unwrap().clone());
            } else if subs.len() > 1 {
                let id = subs.keys().nth(who % subs.len()).unwrap().clone();
                next.remove(&id);
            }
            let prev = first.target;
            let input = AssignorInput { subscriptions: &next, previous: &prev, partitions: &parts };
            let plan = assign(&input);
            check_complete(&input, &plan.target)?;
            check_balanced(&plan.target)?;
            let owner_now: BTreeMap<&TopicPartition, &String> = plan.target.iter()
                .flat_map(|(m, tps)| tps.iter().map(move |tp| (tp, m))).collect();
            for (m, prev_tps) in &prev {
                if !next.contains_key(m) { continue; }
                for tp in prev_tps {
                    let moved = owner_now.get(tp) != Some(&m);
                    prop_assert_eq!(plan.revoke[m].contains(tp), moved, "{} {}", m, tp);
                }
            }
            // Nothing is handed out while its previous (present) owner holds it.
            for (m, now) in &plan.assign_now {
                prop_assert!(now.is_subset(&plan.target[m]));
                for tp in now {
                    for (n, held) in &prev {
                        if n != m && next.contains_key(n) {
                            prop_assert!(!held.contains(tp), "{} given to {} while {} holds it", tp, m, n);
                        }
                    }
                }
            }
            // After phase 2 everyone has its target: partitions only in
            // target but not in assign_now are exactly the revoked ones.
            let pending: BTreeSet<&TopicPartition> = plan.target.iter()
                .flat_map(|(m, t)| t.difference(&plan.assign_now[m])).collect();
            let revoked: BTreeSet<&TopicPartition> = plan.revoke.values().flatten().collect();
            prop_assert_eq!(pending, revoked);
        }
    }
}
