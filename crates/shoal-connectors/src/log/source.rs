//! The `log` source: every instance is a member of the source's consumer
//! group and reads the partitions the group assigns it.
//!
//! * **Where a partition starts.** The instances share live read positions:
//!   a partition that moves between members continues exactly where its
//!   previous owner stopped (its records already emitted are in flight), and
//!   a checkpoint restores the positions of all members. The first time a
//!   partition is read in a run without such a position, `start` decides:
//!   `committed` resumes from the group's committed offset (else the
//!   beginning), `earliest` starts at the beginning, `latest` at the end.
//! * **Order.** A batch holds records of one partition, in offset order.
//! * **Event time.** The members share each partition's event time, and a
//!   member's watermark is the minimum over *all* the topic's partitions:
//!   a partition moving between members (or not read yet in this run)
//!   holds event time back, so its next records are never late.
//! * **Isolation.** `isolation: read_committed` (the default) reads only
//!   committed transactions of transactional log sinks, never past a
//!   partition's last stable offset; `read_uncommitted` reads every record.
//!   Positions move past transaction markers and aborted records.
//! * **Commits.** With checkpoints, the offsets of each completed checkpoint
//!   are committed to the group (for lag and tools; the checkpoint is what
//!   counts on restart). Without, offsets are committed about once a second,
//!   on revocation and at the end (at-least-once across process crashes);
//!   the commit at the end covers every partition read in the run and is
//!   retried if another member's leaving fenced it.
//! * **`stop_at_end`.** A member stops once every partition has been read up
//!   to the end offsets taken at start (or when the pipeline's own writers of
//!   the topic finished) — by whichever member owned it, so if a member dies
//!   the others still finish its partitions.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use futures::future::BoxFuture;
use shoal_dsl::StartFrom;

use super::{LogIsolation, LogSourceConfig as LogSourceSpec};
use shoal_log::{AssignorKind, Consumer, ConsumerConfig, FetchBuffer, Isolation, LogDir};
use shoal_runtime::{DeadLetter, Result, SharedPartitionTimes, Source, SourceContext};

use super::log_err;
use crate::event_time::EventTime;
use crate::format::RecordChunk;
use crate::values::ValueDecoder;

/// Live read positions (next offset) of every partition some instance of a
/// source has read in this run, or restored from a checkpoint — shared by
/// the instances of one source, so a partition that moves between members
/// continues exactly where its previous owner stopped.
pub type RunPartitions = Arc<Mutex<HashMap<u32, u64>>>;

const COMMIT_EVERY: Duration = Duration::from_secs(1);
const IDLE_WAIT: Duration = Duration::from_millis(20);
const MAX_FETCH_BYTES: usize = 8 << 20;
/// How often a member recomputes its consumer lag.
const LAG_EVERY: Duration = Duration::from_millis(500);

/// One member of a log source.
pub struct LogSource {
    node: String,
    log: LogDir,
    spec: LogSourceSpec,
    schema: SchemaRef,
    started: RunPartitions,
    /// Event time per partition, shared by the instances (event-time
    /// sources): a partition moving between members holds time back.
    times: SharedPartitionTimes,
    /// Test hook: stop like a crashed process after this many records
    /// (no commit, no leave), so the group must expel the member.
    crash_after: Option<u64>,
    /// In-pipeline writers of the topic still running (see `TopicWriters`).
    writers: Option<Arc<AtomicUsize>>,
}

impl LogSource {
    /// Instance of source `node` reading `spec.topic` from `log`.
    pub fn new(
        node: &str,
        log: LogDir,
        spec: LogSourceSpec,
        schema: SchemaRef,
        started: RunPartitions,
    ) -> Self {
        Self {
            node: node.to_string(),
            log,
            spec,
            schema,
            started,
            times: SharedPartitionTimes::default(),
            crash_after: None,
            writers: None,
        }
    }

    /// The topic's writers in this pipeline: with `stop_at_end`, the end is
    /// taken once they have all finished.
    pub fn with_writers(mut self, writers: Option<Arc<AtomicUsize>>) -> Self {
        self.writers = writers;
        self
    }

    /// The partition times shared by the source's instances (one value per
    /// source node, cloned into each instance).
    pub fn with_partition_times(mut self, times: SharedPartitionTimes) -> Self {
        self.times = times;
        self
    }

    /// Simulate a crash of this member after `records` records (for tests).
    pub fn crash_after(mut self, records: Option<u64>) -> Self {
        self.crash_after = records;
        self
    }

    /// Whether every partition has been read up to `end` in this run (by
    /// any member: positions are shared).
    fn all_read(&self, end: &[u64]) -> bool {
        let live = self.started.lock().expect("run partitions lock");
        end.iter()
            .enumerate()
            .all(|(p, e)| *e == 0 || live.get(&(p as u32)).is_some_and(|o| o >= e))
    }

    fn writers_done(&self) -> bool {
        self.writers
            .as_ref()
            .is_none_or(|w| w.load(Ordering::SeqCst) == 0)
    }

    fn assignor(&self) -> AssignorKind {
        self.spec
            .assignor
            .name()
            .parse()
            .unwrap_or(AssignorKind::CooperativeSticky)
    }

    /// Where to start reading `partition`, which this member just acquired.
    fn start_offset(&self, consumer: &Consumer, partition: u32) -> Result<u64> {
        let topic = &self.spec.topic;
        if let Some(live) = self
            .started
            .lock()
            .expect("run partitions lock")
            .get(&partition)
        {
            return Ok(*live);
        }
        let start = || -> Result<u64> {
            Ok(self
                .log
                .start_offsets(topic)
                .map_err(|e| log_err("read start offsets", e))?[partition as usize])
        };
        let committed = consumer
            .committed(topic)
            .map_err(|e| log_err("read committed offsets", e))?;
        match self.spec.start {
            StartFrom::Earliest => start(),
            StartFrom::Latest => Ok(self
                .log
                .end_offsets(topic)
                .map_err(|e| log_err("read end offsets", e))?[partition as usize]),
            StartFrom::Committed => match committed.get(&partition) {
                Some(o) => Ok(*o),
                None => start(),
            },
        }
    }

    fn set_live(&self, partition: u32, next: u64) {
        self.started
            .lock()
            .expect("run partitions lock")
            .insert(partition, next);
    }

    /// The last commit of a member leaving a run without checkpoints: the
    /// positions of every partition read in this run (the members share
    /// them). Members leave one by one, each bumping the group's
    /// generation, so a commit under the generation this member last saw
    /// may be fenced; it is retried under the current one. Otherwise a
    /// partition whose last owner left first would keep an old committed
    /// offset, and the next run (`start: committed`) would read it again.
    fn final_commit(&self, m: &mut Member, topic: &str) -> Result<()> {
        // Never move a committed offset back (a member still reading may
        // have committed further meanwhile).
        let committed = m
            .consumer
            .committed(topic)
            .map_err(|e| log_err("read committed offsets", e))?;
        let offsets: Vec<(&str, u32, u64)> = self
            .started
            .lock()
            .expect("run partitions lock")
            .iter()
            .filter(|(p, o)| committed.get(*p).is_none_or(|c| c < *o))
            .map(|(p, o)| (topic, *p, *o))
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        // Bounded: each retry follows a generation change, and the group
        // has at most as many of them as members leaving.
        for _ in 0..64 {
            match m.consumer.commit(m.generation, &offsets) {
                Ok(()) => return Ok(()),
                Err(e) if e.fault() == shoal_log::Fault::Fenced => {
                    match m.consumer.poll_assignment() {
                        Ok(a) => m.generation = a.generation,
                        // No longer a member (expelled): the partitions'
                        // new owners commit them.
                        Err(e) => {
                            tracing::debug!(error = %e, "final commit: no longer in the group");
                            return Ok(());
                        }
                    }
                }
                Err(e) => return Err(log_err("commit offsets", e)),
            }
        }
        tracing::warn!(member = %m.consumer.member_id(), "final offset commit kept being fenced; the next run may read some records again");
        Ok(())
    }

    /// Checkpoint state: the positions this member owns, over the ones it
    /// released in this run (a moving partition is owned by nobody for a
    /// while), over the ones restored at start (partitions nobody has read
    /// yet). Every value is a position whose records were emitted before
    /// this member's barrier, so restoring takes the maximum per partition
    /// over all members.
    fn state(
        base: &BTreeMap<u32, u64>,
        released: &BTreeMap<u32, u64>,
        owned: &BTreeMap<u32, u64>,
    ) -> serde_json::Value {
        let mut all = base.clone();
        all.extend(released.iter().map(|(p, o)| (*p, *o)));
        all.extend(owned.iter().map(|(p, o)| (*p, *o)));
        serde_json::json!({ "positions": all.iter().map(|(p, o)| (p.to_string(), *o)).collect::<BTreeMap<_, _>>() })
    }
}

struct Member {
    /// Heartbeats while the task is blocked (dropped first: it stops
    /// before the consumer leaves).
    _alive: shoal_log::KeepAlive,
    consumer: Consumer,
    generation: u64,
    /// Next offset to read, per owned partition.
    positions: BTreeMap<u32, u64>,
    /// Positions not yet committed.
    dirty: bool,
    last_commit: Instant,
}

impl Member {
    /// Commit the positions of a completed checkpoint's state for the
    /// partitions this member still owns.
    fn commit_state(&mut self, topic: &str, state: &serde_json::Value) -> Result<()> {
        let Some(positions) = state["positions"].as_object() else {
            return Ok(());
        };
        let offsets: Vec<(&str, u32, u64)> = positions
            .iter()
            .filter_map(|(p, o)| Some((topic, p.parse::<u32>().ok()?, o.as_u64()?)))
            .filter(|(_, p, _)| self.positions.contains_key(p))
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        match self.consumer.commit(self.generation, &offsets) {
            Err(e) if e.fault() != shoal_log::Fault::Fenced => Err(log_err("commit offsets", e)),
            _ => Ok(()),
        }
    }

    fn commit(&mut self, topic: &str, only: Option<&[u32]>) -> Result<()> {
        let offsets: Vec<(&str, u32, u64)> = self
            .positions
            .iter()
            .filter(|(p, _)| only.is_none_or(|o| o.contains(p)))
            .map(|(p, o)| (topic, *p, *o))
            .collect();
        if !offsets.is_empty() {
            match self.consumer.commit(self.generation, &offsets) {
                Ok(()) => {}
                // Fenced: the group moved on; the new owner resumes from the last commit.
                Err(e) if e.fault() == shoal_log::Fault::Fenced => {
                    tracing::debug!(error = %e, "commit fenced; partitions were reassigned");
                }
                Err(e) => return Err(log_err("commit offsets", e)),
            }
        }
        if only.is_none() {
            self.dirty = false;
            self.last_commit = Instant::now();
        }
        Ok(())
    }
}

impl Source for LogSource {
    fn restore(&mut self, states: &[serde_json::Value], _instance: usize) -> Result<()> {
        // Partitions move between members, so every instance restores the
        // union of all members' positions.
        let mut live = self.started.lock().expect("run partitions lock");
        for state in states.iter().filter(|s| !s.is_null()) {
            let Some(positions) = state["positions"].as_object() else {
                return Err(shoal_runtime::RuntimeError::User(format!(
                    "log source state has no positions: {state}"
                )));
            };
            for (p, o) in positions {
                if let (Ok(p), Some(o)) = (p.parse::<u32>(), o.as_u64()) {
                    let e = live.entry(p).or_insert(o);
                    *e = (*e).max(o);
                }
            }
        }
        Ok(())
    }

    fn run<'a>(self: Box<Self>, ctx: &'a mut SourceContext) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let topic = self.spec.topic.clone();
            let partitions = self
                .log
                .partition_count(&topic)
                .map_err(|e| log_err(&format!("topic {topic}"), e))?;
            let mut end_at: Option<Vec<u64>> = None;
            let member_id = format!("{}-{}", self.node, ctx.instance);
            let config = ConsumerConfig::new([topic.clone()], self.assignor()).member_id(member_id);
            let consumer = self
                .log
                .consumer(&self.spec.group, config.clone())
                .map_err(|e| log_err("join group", e))?;
            let mut m = Member {
                _alive: consumer.keep_alive(self.spec.max_poll_interval),
                consumer,
                generation: 0,
                positions: BTreeMap::new(),
                dirty: false,
                last_commit: Instant::now(),
            };
            let mut decoder = ValueDecoder::new(
                self.schema.clone(),
                self.spec.avro.as_ref(),
                self.spec.protobuf.as_ref(),
                &self.spec.decode,
            )?;
            let mut event_time = match &self.spec.event_time {
                Some(et) => Some(
                    EventTime::new(et, &self.schema, partitions as usize)?
                        .shared(self.times.clone()),
                ),
                None => None,
            };
            let mut buf = FetchBuffer::new();
            let mut chunk = RecordChunk::default();
            let mut bad = Vec::new();
            let mut emitted: u64 = 0;
            // This member's share of the node's lag metric.
            let mut reported_lag: i64 = 0;
            let mut lag_checked = Instant::now()
                .checked_sub(LAG_EVERY)
                .unwrap_or_else(Instant::now);
            let batch_size = self.spec.batch_size.max(1);
            let isolation = match self.spec.isolation {
                LogIsolation::ReadCommitted => Isolation::ReadCommitted,
                LogIsolation::ReadUncommitted => Isolation::ReadUncommitted,
            };
            let checkpointing = ctx.is_checkpointing();
            let rate = self.spec.rate.map(|r| r / ctx.parallelism as f64);
            let started_at = Instant::now();
            let base: BTreeMap<u32, u64> = self
                .started
                .lock()
                .expect("run partitions lock")
                .iter()
                .map(|(p, o)| (*p, *o))
                .collect();
            let mut released: BTreeMap<u32, u64> = BTreeMap::new();
            ctx.set_state(Self::state(&base, &released, &m.positions));
            loop {
                if ctx.is_cancelled() {
                    break;
                }
                if let Some(limit) = self.crash_after
                    && emitted >= limit
                {
                    tracing::warn!(member = %m.consumer.member_id(), "simulated crash: no commit, no leave");
                    std::mem::forget(m.consumer);
                    return Ok(());
                }
                let a = match m.consumer.poll_assignment() {
                    Ok(a) => a,
                    // Expelled (its task did not poll within
                    // `max_poll_interval`, or its heartbeats stopped for
                    // `session_timeout`): its partitions went to the other
                    // members. Give them up here too and join again, as a
                    // new member of the next rebalance.
                    Err(e @ shoal_log::Error::UnknownMember { .. }) => {
                        tracing::warn!(member = %m.consumer.member_id(), error = %e,
                            "expelled from the group; rejoining");
                        for (p, o) in std::mem::take(&mut m.positions) {
                            released.insert(p, o);
                            if let Some(shards) = ctx.shards() {
                                shards.revoke(p);
                            }
                        }
                        ctx.set_state(Self::state(&base, &released, &m.positions));
                        let _ = m.consumer.leave();
                        let consumer = self
                            .log
                            .consumer(&self.spec.group, config.clone())
                            .map_err(|e| log_err("rejoin group", e))?;
                        m._alive = consumer.keep_alive(self.spec.max_poll_interval);
                        m.consumer = consumer;
                        m.generation = 0;
                        ctx.metrics().add_rejoin();
                        continue;
                    }
                    Err(e) => return Err(log_err("poll assignment", e)),
                };
                m.generation = a.generation;
                if a.must_revoke() {
                    let revoked: Vec<u32> = a
                        .revoke
                        .iter()
                        .filter(|tp| tp.topic == topic)
                        .map(|tp| tp.partition)
                        .collect();
                    if !checkpointing {
                        m.commit(&topic, Some(&revoked))?;
                    }
                    for p in &revoked {
                        if let Some(o) = m.positions.remove(p) {
                            released.insert(*p, o);
                        }
                        if let Some(shards) = ctx.shards() {
                            shards.revoke(*p);
                        }
                    }
                    ctx.set_state(Self::state(&base, &released, &m.positions));
                    match m.consumer.ack_revocation(a.generation) {
                        // The group moved to a newer generation meanwhile: poll again.
                        Err(e) if e.fault() == shoal_log::Fault::Fenced => {
                            tracing::debug!(error = %e, "revocation confirmed too late; re-polling");
                        }
                        r => {
                            r.map_err(|e| log_err("confirm revocation", e))?;
                        }
                    }
                    continue;
                }
                // Drop partitions no longer assigned; pick up new ones.
                let owned: Vec<u32> = a
                    .partitions
                    .iter()
                    .filter(|tp| tp.topic == topic)
                    .map(|tp| tp.partition)
                    .collect();
                let lost: Vec<u32> = m
                    .positions
                    .keys()
                    .filter(|p| !owned.contains(p))
                    .copied()
                    .collect();
                for p in lost {
                    if let Some(o) = m.positions.remove(&p) {
                        released.insert(p, o);
                    }
                    if let Some(shards) = ctx.shards() {
                        shards.revoke(p);
                    }
                }
                for p in &owned {
                    if !m.positions.contains_key(p) {
                        let start = self.start_offset(&m.consumer, *p)?;
                        tracing::info!(
                            member = %m.consumer.member_id(),
                            generation = a.generation,
                            partition = *p,
                            offset = start,
                            "partition acquired"
                        );
                        m.positions.insert(*p, start);
                        released.remove(p);
                        m.dirty = true;
                        // The state goes with the position: restored from
                        // the checkpoint, or where this process dropped it.
                        if let Some(shards) = ctx.shards() {
                            shards.assign(*p, None);
                        }
                    }
                }
                if let Some(et) = &mut event_time {
                    et.assign(&owned);
                }
                ctx.set_state(Self::state(&base, &released, &m.positions));
                // One fetch per owned partition per round.
                let mut fetched_any = false;
                // Consumer lag (log end minus position), twice a second.
                if lag_checked.elapsed() >= LAG_EVERY {
                    lag_checked = Instant::now();
                    if let Ok(ends) = self.log.end_offsets(&topic) {
                        for p in &owned {
                            let end = ends.get(*p as usize).copied().unwrap_or(0);
                            ctx.metrics()
                                .set_partition(*p, ctx.instance, m.positions[p], end);
                        }
                        let lag: i64 = owned
                            .iter()
                            .map(|p| {
                                let end = ends.get(*p as usize).copied().unwrap_or(0);
                                end.saturating_sub(m.positions[p]) as i64
                            })
                            .sum();
                        ctx.metrics().add_lag(lag - reported_lag);
                        reported_lag = lag;
                    }
                }
                for p in owned {
                    let pos = m.positions[&p];
                    if let Err(e) = m.consumer.fetch_with(
                        &topic,
                        p,
                        pos,
                        batch_size,
                        MAX_FETCH_BYTES,
                        isolation,
                        &mut buf,
                    ) {
                        return Err(log_err(&format!("fetch {topic}/{p}"), e));
                    }
                    let Some(next) = buf.next_offset() else {
                        continue;
                    };
                    fetched_any = true;
                    // The process's live position moves past this batch
                    // before it is emitted: should this member be expelled
                    // while the emit waits (backpressure), the member of
                    // this process that takes the partition over starts
                    // after the batch, not inside it.
                    self.set_live(p, next);
                    chunk.clear();
                    for r in buf.iter() {
                        chunk.push(r.value, Some(p), r.offset);
                    }
                    if let Some(batch) = decoder.decode(&chunk, &mut bad)? {
                        emitted += batch.num_rows() as u64;
                        if let Some(et) = &mut event_time {
                            et.observe(p as usize, &batch);
                        }
                        if ctx.shards().is_some() {
                            let time = event_time
                                .as_ref()
                                .map_or(i64::MIN, |et| et.partition_watermark(p as usize));
                            ctx.emit_shard(batch, p, time).await?;
                        } else {
                            ctx.emit(batch).await?;
                        }
                    }
                    m.positions.insert(p, next);
                    if let Some(r) = rate {
                        let due = Duration::from_secs_f64(emitted as f64 / r);
                        if let Some(wait) = due.checked_sub(started_at.elapsed()) {
                            tokio::time::sleep(wait).await;
                        }
                    }
                    ctx.set_state(Self::state(&base, &released, &m.positions));
                    for b in bad.drain(..) {
                        ctx.dead_letter(DeadLetter {
                            node: self.node.clone(),
                            partition: b.partition,
                            offset: Some(b.position),
                            reason: b.reason,
                            record: b.record,
                        })
                        .await?;
                    }
                    m.dirty = true;
                    // A wait above (a full channel, the rate limit) may have
                    // outlived this member's place in the group: read no
                    // more of partitions that are now another member's (the
                    // next poll rejoins).
                    if matches!(
                        m.consumer.poll_assignment(),
                        Err(shoal_log::Error::UnknownMember { .. })
                    ) {
                        break;
                    }
                }
                if let Some(et) = &event_time {
                    et.emit(ctx).await?;
                }
                if checkpointing {
                    // Only offsets inside a completed checkpoint go to the group.
                    ctx.checkpoint_point().await?;
                    if let Some((_, state)) = ctx.take_completed_state() {
                        m.commit_state(&topic, &state)?;
                    }
                } else if m.dirty && m.last_commit.elapsed() >= COMMIT_EVERY {
                    m.commit(&topic, None)?;
                }
                if !fetched_any && self.spec.stop_at_end && end_at.is_none() && self.writers_done()
                {
                    end_at = Some(
                        self.log
                            .end_offsets(&topic)
                            .map_err(|e| log_err("read end offsets", e))?,
                    );
                }
                if !fetched_any {
                    if let Some(end) = &end_at
                        && self.all_read(end)
                    {
                        break;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(IDLE_WAIT) => {}
                        _ = ctx.cancel_token().cancelled() => {}
                    }
                }
            }
            ctx.metrics().add_lag(-reported_lag);
            if !checkpointing {
                self.final_commit(&mut m, &topic)?;
            }
            m.consumer.leave().map_err(|e| log_err("leave group", e))?;
            Ok(())
        })
    }
}

impl std::fmt::Debug for LogSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSource")
            .field("node", &self.node)
            .field("topic", &self.spec.topic)
            .finish()
    }
}
