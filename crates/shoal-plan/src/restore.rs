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
//! The coordinator never prunes the manifest of an epoch a sink has not yet
//! committed past, so `E`'s manifest is there; manifests newer than `E` are
//! discarded (their checkpoint numbers are taken again). No sink epoch
//! committed yet means no state to restore.

use shoal_connectors::kafka::process_identity;
use shoal_connectors::postgres::PostgresPositions;
use shoal_runtime::{Manifest, Result, RuntimeError};

use crate::build::Builder;
use crate::planner::Plan;

impl Plan {
    /// The checkpoint `shoal run` restores, if any (see the module docs).
    pub fn restore_point(&self) -> Result<Option<Manifest>> {
        let Some(config) = &self.checkpoint else {
            return Ok(None);
        };
        let Some(latest) = Manifest::latest(&config.dir)? else {
            return Ok(None);
        };
        let Some((sink, parallelism, url)) = self.offset_owning_postgres_sink() else {
            return Ok(Some(latest));
        };
        let process = process_identity(&self.data_dir)?;
        let tasks: Vec<String> = (0..parallelism).map(|i| format!("{i}@{process}")).collect();
        let epochs = PostgresPositions::connect(url)?.committed_epochs(&self.name, sink, &tasks)?;
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

    /// `(sink id, parallelism, url)` of a Postgres sink that stores the
    /// source offsets with its output, if the pipeline has one.
    fn offset_owning_postgres_sink(&self) -> Option<(&str, usize, &str)> {
        let kafka_sources = self
            .nodes
            .iter()
            .filter(|n| matches!(n.builder, Builder::Kafka(_)))
            .count();
        let mut sinks = self
            .nodes
            .iter()
            .filter(|n| matches!(n.builder, Builder::KafkaSink(_) | Builder::PostgresSink(_)));
        let (Some(sink), None) = (sinks.next(), sinks.next()) else {
            return None;
        };
        match &sink.builder {
            Builder::PostgresSink(p) if kafka_sources == 1 => {
                Some((sink.id.as_str(), sink.parallelism, p.url.as_str()))
            }
            _ => None,
        }
    }
}
