//! Where a checkpointed run restarts.
//!
//! Usually from the newest manifest. But when a Postgres sink owns the
//! source offsets (a Kafka source, see `shoal_connectors::kafka::OffsetLedger`),
//! the two halves of a checkpoint's commit are not atomic together: the
//! manifest of checkpoint `c` is durable first, then the sink commits epoch
//! `c` — rows, source offsets and its `(pipeline, sink, task) → epoch`
//! marker in one transaction. A crash in between leaves manifest `c` with
//! the sink at `c - 1`, and the Kafka source resumes from the sink's
//! offsets (the end of `c - 1`). Restoring operator state from `c` would
//! replay epoch `c` into state that already holds it (OVER and window sums
//! counted twice, `dedup` dropping the replayed records whose first output
//! died with the crash).
//!
//! So such a run restores the manifest of the epoch the sink committed
//! last, `E`: its operator state is exactly the state after the records
//! below the offsets committed with `E`, which is where the source resumes.
//!
//! A Kafka sink's epoch is found by position: the manifests whose Kafka
//! source positions are exactly the group's committed offsets (a partition
//! without a committed offset must not have been read past its first
//! record). An epoch in which no partition moved on has the positions of
//! the one before, so several manifests may stand there; the sink's epoch
//! marker — the epoch of its last transaction, committed in the group as
//! the "offset" of partition [`EPOCH_MARKER_PARTITION`] of its output topic
//! (the broker here drops offset-commit metadata) — names the one to
//! restore. So output emitted without reading (the end-of-input flush,
//! windows fired on an idle source) is restored as committed when it was,
//! and emitted again when it was not. Without a marker (a sink of an older
//! version) the oldest of them is restored.
//! When no manifest stands there (another process committed the partitions
//! since, for instance) the newest one is restored, as before.
//! The coordinator never prunes the manifest of an epoch a sink has not yet
//! committed past, so `E`'s manifest is there; manifests newer than `E` are
//! discarded (their checkpoint numbers are taken again). No sink epoch
//! committed yet means no state to restore.

use std::collections::HashMap;

use shoal_connectors::connector::OffsetOwner;
use shoal_connectors::kafka::KafkaSourceConfig;
use shoal_connectors::kafka::{
    EPOCH_MARKER_PARTITION, TopicPartition, checkpoint_positions, group_offsets, process_identity,
};
use shoal_connectors::postgres::PostgresPositions;
use shoal_runtime::{Manifest, Result, RuntimeError};

use crate::build::offset_owner;
use crate::planner::Plan;

impl Plan {
    /// The checkpoint `shoal run` restores, if any (see the module docs).
    pub fn restore_point(&self) -> Result<Option<Manifest>> {
        let Some(config) = &self.checkpoint else {
            if let Some(name) = &self.from_savepoint {
                return Err(RuntimeError::User(format!(
                    "--from-savepoint {name}: pipeline `{}` takes no checkpoints (no `checkpoint:` section)",
                    self.name
                )));
            }
            return Ok(None);
        };
        if let Some(name) = &self.from_savepoint {
            return self.savepoint_restore(&config.dir, name).map(Some);
        }
        let Some(latest) = Manifest::latest(&config.dir)? else {
            return Ok(None);
        };
        if let Some(((node, source), sink_topic)) = self.kafka_source_of_kafka_sink() {
            return by_kafka_positions(&config.dir, (node, &source), &sink_topic, latest);
        }
        let Some((sink, parallelism, url)) = self.offset_owning_postgres_sink() else {
            return Ok(Some(latest));
        };
        let process = process_identity(&self.data_dir)?;
        let tasks: Vec<String> = (0..parallelism).map(|i| format!("{i}@{process}")).collect();
        let epochs =
            PostgresPositions::connect(&url)?.committed_epochs(&self.name, sink, &tasks)?;
        // An epoch is whole once every task of the sink committed it.
        let committed = tasks
            .iter()
            .map(|t| epochs.get(t).copied().unwrap_or(0))
            .min()
            .unwrap_or(0);
        if committed >= latest.id {
            return Ok(Some(latest));
        }
        let discarded = Manifest::discard_after(&config.dir, committed)?;
        tracing::warn!(
            sink,
            committed,
            newest = latest.id,
            discarded,
            "the newest checkpoint is ahead of what the sink committed; restoring the sink's epoch"
        );
        if committed == 0 {
            return Ok(None);
        }
        Manifest::at(&config.dir, committed)?.map(Some).ok_or_else(|| {
            RuntimeError::User(format!(
                "sink `{sink}` committed epoch {committed} last, but the checkpoint of that epoch is \
                 not in {}; state and output cannot be made to agree: move the checkpoint directory \
                 away and reset the sink's tables to start from scratch",
                config.dir.display()
            ))
        })
    }

    /// The Kafka source (node id, spec) whose offsets a Kafka sink stores
    /// with its output, if the pipeline has that shape.
    /// `--from-savepoint NAME`: that savepoint's manifest; the checkpoints
    /// taken after it are rolled back (moved aside), so the run continues
    /// from it. Refused when a sink owns the offsets: there the restore
    /// point is what the sink committed, which a savepoint cannot rewind.
    fn savepoint_restore(&self, dir: &std::path::Path, name: &str) -> Result<Manifest> {
        if self.kafka_source_of_kafka_sink().is_some()
            || self.offset_owning_postgres_sink().is_some()
        {
            return Err(RuntimeError::User(format!(
                "--from-savepoint {name}: pipeline `{}` has a sink that owns the source offsets (Kafka → Kafka, \
                 or a Postgres sink); it restores what that sink committed and cannot be rolled back to a savepoint",
                self.name
            )));
        }
        let m = Manifest::savepoint(dir, name)?;
        let moved = Manifest::roll_back_to(dir, m.id)?;
        if moved > 0 {
            tracing::warn!(
                savepoint = name,
                checkpoint = m.id,
                rolled_back = moved,
                "restoring an older savepoint: later checkpoints moved to rolled-back/; \
                 what the job wrote after the savepoint is written again"
            );
        }
        Ok(m)
    }

    /// The Kafka source and the Kafka sink's topic, when that sink stores
    /// the source's offsets with its output.
    fn kafka_source_of_kafka_sink(&self) -> Option<((&str, KafkaSourceConfig), String)> {
        match offset_owner(self)? {
            (source, _, OffsetOwner::Kafka { topic }) => Some((source, topic)),
            _ => None,
        }
    }

    /// `(sink id, parallelism, url)` of a Postgres sink that stores the
    /// source offsets with its output, if the pipeline has one.
    fn offset_owning_postgres_sink(&self) -> Option<(&str, usize, String)> {
        match offset_owner(self)? {
            (_, sink, OffsetOwner::Postgres { url }) => {
                Some((sink.id.as_str(), sink.parallelism, url))
            }
            _ => None,
        }
    }
}

/// The newest manifest in `dir` whose Kafka source positions are where the
/// group's committed offsets stand (see the module docs).
fn by_kafka_positions(
    dir: &std::path::Path,
    (node, source): (&str, &KafkaSourceConfig),
    sink_topic: &str,
    latest: Manifest,
) -> Result<Option<Manifest>> {
    let mut manifests = Vec::new();
    for path in Manifest::list(dir)?.iter().rev() {
        let m = Manifest::read(path)?;
        let positions = checkpoint_positions(m.states.get(node).map_or(&[][..], Vec::as_slice))?;
        manifests.push((m, positions));
    }
    let mut partitions: Vec<_> = manifests
        .iter()
        .flat_map(|(_, p)| p.keys().cloned())
        .collect();
    partitions.sort();
    partitions.dedup();
    let marker_tp: TopicPartition = (sink_topic.to_string(), EPOCH_MARKER_PARTITION);
    let mut asked = partitions.clone();
    if !asked.contains(&marker_tp) {
        asked.push(marker_tp.clone());
    }
    let mut offsets = group_offsets(&source.brokers, &source.options, &source.group, &asked)?;
    // The sink's epoch marker, unless the output topic is also read (then
    // that offset is a source position).
    let marker = if partitions.contains(&marker_tp) {
        None
    } else {
        offsets.low.remove(&marker_tp);
        offsets.committed.remove(&marker_tp).map(|e| e as u64)
    };
    // Newest first: the run of manifests standing at the committed offsets
    // (equal positions: epochs that read nothing). The one the marker names;
    // without a marker, the oldest (a later one may hold output emitted
    // without reading that the sink has not committed).
    let mut run: Vec<(Manifest, HashMap<TopicPartition, i64>)> = Vec::new();
    for (m, positions) in manifests {
        match run.last() {
            Some((_, p)) if *p == positions => run.push((m, positions)),
            Some(_) => break,
            None if offsets.stand_at(&positions) => run.push((m, positions)),
            None => {}
        }
    }
    let named = marker.and_then(|e| run.iter().position(|(m, _)| m.id == e));
    let found = match named {
        Some(i) => Some(run.swap_remove(i)),
        None => run.pop(),
    };
    if let Some((m, _)) = found {
        {
            if m.id < latest.id {
                let discarded = Manifest::discard_after(dir, m.id)?;
                tracing::warn!(
                    restored = m.id,
                    newest = latest.id,
                    discarded,
                    "the newest checkpoint is ahead of what the Kafka sink committed; restoring the checkpoint it committed"
                );
            }
            return Ok(Some(m));
        }
    }
    if offsets.committed.is_empty() {
        // The sink never committed: nothing of any checkpoint is output.
        let discarded = Manifest::discard_after(dir, 0)?;
        tracing::warn!(
            discarded,
            "the Kafka sink committed nothing yet; starting without state"
        );
        return Ok(None);
    }
    tracing::info!(
        newest = latest.id,
        "no checkpoint stands where the group's committed offsets are; restoring the newest"
    );
    Ok(Some(latest))
}
