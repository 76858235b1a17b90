//! Kafka's `RoundRobinAssignor`: all subscribed partitions, sorted by
//! (topic, partition), are dealt one by one to the members in id order,
//! cycling; a member not subscribed to the partition's topic is skipped.
//! With identical subscriptions the counts differ by at most one.

use super::{AssignmentMap, AssignorInput};

/// Round-robin assignment; see the module docs.
pub fn assign(input: &AssignorInput<'_>) -> AssignmentMap {
    let mut out = input.empty_assignment();
    let members: Vec<(&String, _)> = input.subscriptions.iter().collect();
    if members.is_empty() {
        return out;
    }
    let mut next = 0usize;
    for tp in input.subscribed_partitions() {
        for _ in 0..members.len() {
            let (m, topics) = members[next % members.len()];
            next += 1;
            if topics.contains(&tp.topic) {
                out.get_mut(m).expect("member").insert(tp);
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::assignor::testutil::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn complete_and_balanced((subs, parts) in same_subscriptions()) {
            let prev = AssignmentMap::new();
            let input = AssignorInput { subscriptions: &subs, previous: &prev, partitions: &parts };
            let out = assign(&input);
            check_complete(&input, &out)?;
            check_balanced(&out)?;
        }

        #[test]
        fn complete_with_mixed_subscriptions((subs, parts) in mixed_subscriptions()) {
            let prev = AssignmentMap::new();
            let input = AssignorInput { subscriptions: &subs, previous: &prev, partitions: &parts };
            check_complete(&input, &assign(&input))?;
        }
    }
}
