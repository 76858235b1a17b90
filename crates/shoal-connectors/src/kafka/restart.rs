//! What the restart of a checkpointed pipeline whose Kafka sink owns the
//! source offsets needs from the broker: the group's committed offsets (the
//! sink's last transaction put them there) and the checkpoint positions to
//! compare them with (see `shoal_plan`'s restore point).

use std::collections::HashMap;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::Value;
use shoal_runtime::Result;

use super::ledger::TopicPartition;
use super::{client_config, kafka_err};

/// How long one broker request of the restart may take.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The positions a Kafka source's checkpoint states record (one state per
/// instance; the largest position per partition wins, as on restore).
pub fn checkpoint_positions(states: &[Value]) -> Result<HashMap<TopicPartition, i64>> {
    let mut out: HashMap<TopicPartition, i64> = HashMap::new();
    for s in states.iter().filter(|s| !s.is_null()) {
        for (tp, o) in super::source::parse_positions(s)? {
            let e = out.entry(tp).or_insert(o);
            *e = (*e).max(o);
        }
    }
    Ok(out)
}

/// A consumer group's committed offsets of some partitions, and each
/// partition's first offset (low watermark).
#[derive(Debug, Default)]
pub struct GroupOffsets {
    /// Committed next offsets (partitions without one are left out).
    pub committed: HashMap<TopicPartition, i64>,
    /// First offset still in the partition.
    pub low: HashMap<TopicPartition, i64>,
}

/// Reads [`GroupOffsets`] of `partitions` for `group` (blocking; call it
/// before the job's runtime starts or on a blocking thread).
pub fn group_offsets(
    brokers: &str,
    options: &[(String, String)],
    group: &str,
    partitions: &[TopicPartition],
) -> Result<GroupOffsets> {
    let consumer: BaseConsumer = client_config(
        brokers,
        &[
            ("group.id", group.to_string()),
            ("enable.auto.commit", "false".to_string()),
        ],
        options,
    )
    .create()
    .map_err(|e| kafka_err("create a consumer", e))?;
    let mut tpl = TopicPartitionList::new();
    for (t, p) in partitions {
        tpl.add_partition(t, *p);
    }
    let mut out = GroupOffsets::default();
    let got = consumer
        .committed_offsets(tpl, TIMEOUT)
        .map_err(|e| kafka_err("read the group's committed offsets", e))?;
    for e in got.elements() {
        if let Offset::Offset(o) = e.offset() {
            out.committed
                .insert((e.topic().to_string(), e.partition()), o);
        }
    }
    for (t, p) in partitions {
        let (low, _) = consumer
            .fetch_watermarks(t, *p, TIMEOUT)
            .map_err(|e| kafka_err("read partition watermarks", e))?;
        out.low.insert((t.clone(), *p), low);
    }
    Ok(out)
}

impl GroupOffsets {
    /// Whether the sink's commits stand exactly at `positions` (a
    /// checkpoint's): every partition's committed offset equals its
    /// position, and a partition without a committed offset was not read
    /// past its first record.
    pub fn stand_at(&self, positions: &HashMap<TopicPartition, i64>) -> bool {
        positions
            .iter()
            .all(|(tp, pos)| match self.committed.get(tp) {
                Some(c) => c == pos,
                None => self.low.get(tp).is_some_and(|low| pos <= low),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        ("t".to_string(), p)
    }

    #[test]
    fn stand_at_needs_every_read_partition_committed_there() {
        let g = GroupOffsets {
            committed: HashMap::from([(tp(0), 10), (tp(1), 5)]),
            low: HashMap::from([(tp(0), 0), (tp(1), 0), (tp(2), 3)]),
        };
        let at = |v: &[(i32, i64)]| v.iter().map(|(p, o)| (tp(*p), *o)).collect();
        assert!(g.stand_at(&at(&[(0, 10), (1, 5)])));
        assert!(!g.stand_at(&at(&[(0, 12), (1, 5)])), "read past the commit");
        assert!(g.stand_at(&at(&[(0, 10), (2, 3)])), "partition 2 not read");
        assert!(
            !g.stand_at(&at(&[(0, 10), (2, 4)])),
            "partition 2 read, never committed"
        );
        let states = vec![
            serde_json::json!({"positions": {"t/0": 7, "t/1": 5}}),
            Value::Null,
            serde_json::json!({"positions": {"t/0": 10}}),
        ];
        assert_eq!(
            checkpoint_positions(&states).unwrap(),
            at(&[(0, 10), (1, 5)])
        );
    }
}
