//! The sticky assignor: balanced like round-robin, but a partition stays
//! with its previous owner unless that owner left, no longer subscribes to
//! the topic, or balance requires moving it.
//!
//! Algorithm (deterministic):
//!
//! 1. **Keep**: every previous owner that is still a member and still
//!    subscribes keeps its partitions (a partition claimed twice goes to the
//!    first claimant in id order).
//! 2. **Place**: unowned partitions, most constrained first (fewest eligible
//!    members), go to the eligible member with the fewest partitions.
//! 3. **Balance**: while some member has at least two more partitions than
//!    a member that could take one of them, move one partition from the
//!    fullest to the emptiest. The partition moved is, in order of
//!    preference, one the receiver owned before, one the donor did *not*
//!    own before (placed in step 2), then the donor's highest.
//!
//! Each move lowers the sum of squared counts, so step 3 ends; with identical
//! subscriptions it ends with counts differing by at most one, having moved
//! the fewest partitions that balance allows (checked by property tests).

use std::collections::BTreeSet;

use super::{AssignmentMap, AssignorInput};
use crate::group::TopicPartition;

/// Sticky assignment; see the module docs.
pub fn assign(input: &AssignorInput<'_>) -> AssignmentMap {
    let subs = input.subscriptions;
    let eligible =
        |m: &str, tp: &TopicPartition| subs.get(m).is_some_and(|t| t.contains(&tp.topic));
    let all = input.subscribed_partitions();
    let exists: BTreeSet<&TopicPartition> = all.iter().collect();
    let mut out = input.empty_assignment();
    let mut taken: BTreeSet<TopicPartition> = BTreeSet::new();

    // 1. Keep.
    for (m, tps) in input.previous {
        if !subs.contains_key(m) {
            continue;
        }
        for tp in tps {
            if exists.contains(tp) && eligible(m, tp) && !taken.contains(tp) {
                taken.insert(tp.clone());
                out.get_mut(m).expect("member").insert(tp.clone());
            }
        }
    }

    // 2. Place.
    let mut unowned: Vec<(usize, &TopicPartition)> = all
        .iter()
        .filter(|tp| !taken.contains(*tp))
        .map(|tp| (subs.values().filter(|t| t.contains(&tp.topic)).count(), tp))
        .collect();
    unowned.sort();
    for (_, tp) in unowned {
        let best = out
            .iter()
            .filter(|(m, _)| eligible(m, tp))
            .min_by_key(|(_, s)| s.len())
            .map(|(m, _)| m.clone());
        if let Some(m) = best {
            out.get_mut(&m).expect("member").insert(tp.clone());
        }
    }

    // 3. Balance.
    let empty = BTreeSet::new();
    loop {
        let mut order: Vec<(usize, &String)> = out.iter().map(|(m, s)| (s.len(), m)).collect();
        order.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        let mut chosen: Option<(String, String, TopicPartition)> = None;
        'search: for &(dc, donor) in order.iter().rev() {
            for &(rc, receiver) in order.iter() {
                if dc < rc + 2 {
                    break;
                }
                let prev_d = input.previous.get(donor).unwrap_or(&empty);
                let prev_r = input.previous.get(receiver).unwrap_or(&empty);
                let pick = out[donor]
                    .iter()
                    .rev()
                    .filter(|tp| eligible(receiver, tp))
                    .min_by_key(|tp| (!prev_r.contains(*tp), prev_d.contains(*tp)));
                if let Some(tp) = pick {
                    chosen = Some((donor.clone(), receiver.clone(), tp.clone()));
                    break 'search;
                }
            }
        }
        let Some((donor, receiver, tp)) = chosen else {
            break;
        };
        out.get_mut(&donor).expect("donor").remove(&tp);
        out.get_mut(&receiver).expect("receiver").insert(tp);
    }
    out
}

/// Fewest partitions that must leave surviving owners to reach a balanced
/// assignment, when every member subscribes to the same topics (test oracle).
#[cfg(test)]
pub(crate) fn minimal_moves(input: &AssignorInput<'_>) -> usize {
    let all: BTreeSet<TopicPartition> = input.subscribed_partitions().into_iter().collect();
    let m = input.subscriptions.len();
    if m == 0 {
        return 0;
    }
    let mut kept: Vec<usize> = input
        .subscriptions
        .keys()
        .map(|id| {
            input
                .previous
                .get(id)
                .map_or(0, |p| p.intersection(&all).count())
        })
        .collect();
    kept.sort_unstable_by(|a, b| b.cmp(a));
    let (q, r) = (all.len() / m, all.len() % m);
    kept.iter()
        .enumerate()
        .map(|(i, &k)| k.saturating_sub(q + usize::from(i < r)))
        .sum()
}

/// Partitions that left a member still present (test helper).
#[cfg(test)]
pub(crate) fn moved_from_survivors(input: &AssignorInput<'_>, out: &AssignmentMap) -> usize {
    input
        .previous
        .iter()
        .filter(|(m, _)| out.contains_key(*m))
        .map(|(m, prev)| prev.difference(&out[m]).count())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::assignor::testutil::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// A random previous assignment: each partition to a random member of
    /// `owners` or to nobody.
    fn random_previous(
        parts: &[TopicPartition],
        owners: &[String],
        picks: &[usize],
    ) -> AssignmentMap {
        let mut prev = AssignmentMap::new();
        for (tp, &pick) in parts.iter().zip(picks.iter().cycle()) {
            if pick < owners.len() {
                prev.entry(owners[pick].clone())
                    .or_default()
                    .insert(tp.clone());
            }
        }
        prev
    }

    fn check_sticky(input: &AssignorInput<'_>, out: &AssignmentMap) -> Result<(), TestCaseError> {
        check_complete(input, out)?;
        check_balanced(out)?;
        prop_assert_eq!(
            moved_from_survivors(input, out),
            minimal_moves(input),
            "not minimal: {:?} -> {:?}",
            input.previous,
            out
        );
        for (m, prev) in input.previous {
            if let Some(now) = out.get(m) {
                prop_assert_eq!(
                    prev.intersection(now).count(),
                    prev.len().min(now.len()),
                    "{} swapped needlessly",
                    m
                );
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn balanced_and_minimal_from_any_previous(
            (subs, parts) in same_subscriptions(),
            picks in proptest::collection::vec(0usize..12, 1..40),
        ) {
            let empty = AssignmentMap::new();
            let all = AssignorInput { subscriptions: &subs, previous: &empty, partitions: &parts }.subscribed_partitions();
            let owners: Vec<String> = subs.keys().cloned().collect();
            let prev = random_previous(&all, &owners, &picks);
            let input = AssignorInput { subscriptions: &subs, previous: &prev, partitions: &parts };
            check_sticky(&input, &assign(&input))?;
        }

        #[test]
        fn member_joins_or_leaves((subs, parts) in same_subscriptions(), join in any::<bool>(), who in 0usize..9) {
            let empty = AssignmentMap::new();
            let first = assign(&AssignorInput { subscriptions: &subs, previous: &empty, partitions: &parts });
            let mut next = subs.clone();
            if join {
                let topics = subs.values().next().unwrap().clone();
                next.insert("new".into(), topics);
            } else if subs.len() > 1 {
                let id = subs.keys().nth(who % subs.len()).unwrap().clone();
                next.remove(&id);
            }
            let input = AssignorInput { subscriptions: &next, previous: &first, partitions: &parts };
            let out = assign(&input);
            check_sticky(&input, &out)?;
            // A partition moves only if its owner left or balance requires it.
            let moved = moved_from_survivors(&input, &out);
            prop_assert_eq!(moved, minimal_moves(&input));
        }

        #[test]
        fn complete_with_mixed_subscriptions(
            (subs, parts) in mixed_subscriptions(),
            picks in proptest::collection::vec(0usize..10, 1..30),
        ) {
            let empty = AssignmentMap::new();
            let all = AssignorInput { subscriptions: &subs, previous: &empty, partitions: &parts }.subscribed_partitions();
            let owners: Vec<String> = subs.keys().cloned().collect();
            let prev = random_previous(&all, &owners, &picks);
            let input = AssignorInput { subscriptions: &subs, previous: &prev, partitions: &parts };
            let out = assign(&input);
            check_complete(&input, &out)?;
            // Deterministic.
            prop_assert_eq!(out, assign(&input));
        }
    }

    #[test]
    fn join_moves_only_what_balance_needs() {
        let topics: BTreeSet<String> = ["t".to_string()].into();
        let mut subs: BTreeMap<String, BTreeSet<String>> = ["a", "b"]
            .iter()
            .map(|m| (m.to_string(), topics.clone()))
            .collect();
        let parts = BTreeMap::from([("t".to_string(), 6)]);
        let empty = AssignmentMap::new();
        let first = assign(&AssignorInput {
            subscriptions: &subs,
            previous: &empty,
            partitions: &parts,
        });
        subs.insert("c".into(), topics);
        let second = assign(&AssignorInput {
            subscriptions: &subs,
            previous: &first,
            partitions: &parts,
        });
        assert_eq!(second["c"].len(), 2);
        assert_eq!(second["a"].intersection(&first["a"]).count(), 2);
        assert_eq!(second["b"].intersection(&first["b"]).count(), 2);
    }
}
