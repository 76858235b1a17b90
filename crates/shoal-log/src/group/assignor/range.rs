//! Kafka's `RangeAssignor`: for each topic, the members subscribed to it
//! (sorted by id) get contiguous ranges of its partitions; the first
//! `partitions % members` members get one extra. Balanced within a topic;
//! with several topics the same members get the extras each time.

use super::{AssignmentMap, AssignorInput};
use crate::group::TopicPartition;

/// Range assignment; see the module docs.
pub fn assign(input: &AssignorInput<'_>) -> AssignmentMap {
    let mut out = input.empty_assignment();
    for (topic, &n) in input.partitions {
        let members: Vec<&String> = input
            .subscriptions
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(m, _)| m)
            .collect();
        if members.is_empty() {
            continue;
        }
        let m = members.len() as u32;
        let (per, extra) = (n / m, n % m);
        for (i, member) in members.into_iter().enumerate() {
            let i = i as u32;
            let start = per * i + i.min(extra);
            let len = per + u32::from(i < extra);
            let set = out.get_mut(member).expect("member present");
            set.extend((start..start + len).map(|p| TopicPartition::new(topic.clone(), p)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::assignor::testutil::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn kafka_example() {
        // Kafka docs: 2 consumers, 2 topics of 3 partitions: C0 gets t0p0,t0p1,t1p0,t1p1.
        let subs: BTreeMap<String, BTreeSet<String>> = ["c0", "c1"]
            .iter()
            .map(|m| (m.to_string(), ["t0".to_string(), "t1".to_string()].into()))
            .collect();
        let parts = BTreeMap::from([("t0".to_string(), 3), ("t1".to_string(), 3)]);
        let prev = AssignmentMap::new();
        let out = assign(&AssignorInput {
            subscriptions: &subs,
            previous: &prev,
            partitions: &parts,
        });
        let names = |m: &str| out[m].iter().map(|tp| tp.to_string()).collect::<Vec<_>>();
        assert_eq!(names("c0"), ["t0/0", "t0/1", "t1/0", "t1/1"]);
        assert_eq!(names("c1"), ["t0/2", "t1/2"]);
    }

    proptest! {
        #[test]
        fn complete_and_balanced_per_topic((subs, parts) in mixed_subscriptions()) {
            let prev = AssignmentMap::new();
            let input = AssignorInput { subscriptions: &subs, previous: &prev, partitions: &parts };
            let out = assign(&input);
            check_complete(&input, &out)?;
            for topic in parts.keys() {
                let counts: Vec<usize> = subs.iter().filter(|(_, t)| t.contains(topic))
                    .map(|(m, _)| out[m].iter().filter(|tp| &tp.topic == topic).count()).collect();
                if let (Some(min), Some(max)) = (counts.iter().min(), counts.iter().max()) {
                    prop_assert!(max - min <= 1);
                }
            }
        }
    }
}
