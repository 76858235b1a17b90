//! The `log` source: every instance is a member of the source's consumer
//! group and reads the partitions the group assigns it.
//!
//! * **Where a partition starts.** The first time any instance of this
//!   source (in this run) acquires a partition, `start` decides: `committed`
//!   resumes from the group's committed offset (else the beginning),
//!   `earliest` starts at the beginning, `latest` at the end. A partition that
//!   moves between instances later in the run always resumes from the
//!   group's committed offset, so a rebalance neither skips nor restarts it.
//! * **Order.** A batch holds records of one partition, in offset order.
//! * **Commits.** Offsets are committed at most once a second, when a
//!   partition is revoked, and at the end. Without checkpoints this is
//!   at-least-once: records read after the last commit of a member that dies
//!   are read again by the partition's next owner.
//! * **`stop_at_end`.** The member stops once the group's committed offsets
//!   reach the end offsets seen when the run started, on every partition —
//!   so if a member dies, the others still finish its partitions.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use futures::future::BoxFuture;
use shoal_dsl::{FileFormat, LogSource as LogSourceSpec, StartFrom};
use shoal_log::{AssignorKind, Consumer, ConsumerConfig, FetchBuffer, LogDir};
use shoal_runtime::{DeadLetter, Result, Source, SourceContext};

use super::log_err;
use crate::event_time::EventTime;
use crate::format::{RecordChunk, RecordDecoder};

/// Partitions that some instance of a source has already started reading in
/// this run (shared by the instances of one source).
pub type RunPartitions = Arc<Mutex<HashSet<u32>>>;

const COMMIT_EVERY: Duration = Duration::from_secs(1);
const IDLE_WAIT: Duration = Duration::from_millis(20);
const MAX_FETCH_BYTES: usize = 8 << 20;

/// One member of a log source.
pub struct LogSource {
    node: String,
    log: LogDir,
    spec: LogSourceSpec,
    schema: SchemaRef,
    started: RunPartitions,
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

    /// Simulate a crash of this member after `records` records (for tests).
    pub fn crash_after(mut self, records: Option<u64>) -> Self {
        self.crash_after = records;
        self
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
        let first_in_run = self
            .started
            .lock()
            .expect("run partitions lock")
            .insert(partition);
        let committed = || -> Result<Option<u64>> {
            Ok(consumer
                .committed(topic)
                .map_err(|e| log_err("read committed offsets", e))?
                .get(&partition)
                .copied())
        };
        let start = |p: u32| -> Result<u64> {
            Ok(self
                .log
                .start_offsets(topic)
                .map_err(|e| log_err("read start offsets", e))?[p as usize])
        };
        if !first_in_run {
            return match committed()? {
                Some(o) => Ok(o),
                None => start(partition),
            };
        }
        match self.spec.start {
            StartFrom::Earliest => start(partition),
            StartFrom::Latest => Ok(self
                .log
                .end_offsets(topic)
                .map_err(|e| log_err("read end offsets", e))?[partition as usize]),
            StartFrom::Committed => match committed()? {
                Some(o) => Ok(o),
                None => start(partition),
            },
        }
    }
}

struct Member {
    consumer: Consumer,
    generation: u64,
    /// Next offset to read, per owned partition.
    positions: BTreeMap<u32, u64>,
    /// Positions not yet committed.
    dirty: bool,
    last_commit: Instant,
}

impl Member {
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
                .consumer(&self.spec.group, config)
                .map_err(|e| log_err("join group", e))?;
            let mut m = Member {
                consumer,
                generation: 0,
                positions: BTreeMap::new(),
                dirty: false,
                last_commit: Instant::now(),
            };
            let mut decoder = RecordDecoder::new(FileFormat::Jsonl, self.schema.clone())?;
            let mut event_time = match &self.spec.event_time {
                Some(et) => Some(EventTime::new(et, &self.schema, partitions as usize)?),
                None => None,
            };
            let mut buf = FetchBuffer::new();
            let mut chunk = RecordChunk::default();
            let mut bad = Vec::new();
            let mut emitted: u64 = 0;
            let batch_size = self.spec.batch_size.max(1);
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
                let a = m
                    .consumer
                    .poll_assignment()
                    .map_err(|e| log_err("poll assignment", e))?;
                m.generation = a.generation;
                if a.must_revoke() {
                    let revoked: Vec<u32> = a
                        .revoke
                        .iter()
                        .filter(|tp| tp.topic == topic)
                        .map(|tp| tp.partition)
                        .collect();
                    m.commit(&topic, Some(&revoked))?;
                    for p in &revoked {
                        m.positions.remove(p);
                    }
                    m.consumer
                        .ack_revocation(a.generation)
                        .map_err(|e| log_err("confirm revocation", e))?;
                    continue;
                }
                // Drop partitions no longer assigned; pick up new ones.
                let owned: Vec<u32> = a
                    .partitions
                    .iter()
                    .filter(|tp| tp.topic == topic)
                    .map(|tp| tp.partition)
                    .collect();
                m.positions.retain(|p, _| owned.contains(p));
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
                        m.dirty = true;
                    }
                }
                // One fetch per owned partition per round.
                let mut fetched_any = false;
                for p in owned {
                    let pos = m.positions[&p];
                    if let Err(e) =
                        m.consumer
                            .fetch(&topic, p, pos, batch_size, MAX_FETCH_BYTES, &mut buf)
                    {
                        return Err(log_err(&format!("fetch {topic}/{p}"), e));
                    }
                    let Some(next) = buf.next_offset() else {
                        continue;
                    };
                    fetched_any = true;
                    chunk.clear();
                    for r in buf.iter() {
                        chunk.push(r.value, Some(p), r.offset);
                    }
                    if let Some(batch) = decoder.decode(&chunk, &mut bad)? {
                        emitted += batch.num_rows() as u64;
                        if let Some(et) = &mut event_time {
                            et.observe(p as usize, &batch);
                        }
                        ctx.emit(batch).await?;
                    }
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
                    m.positions.insert(p, next);
                    m.dirty = true;
                }
                if let Some(et) = &event_time {
                    et.emit(ctx).await?;
                }
                if m.dirty && m.last_commit.elapsed() >= COMMIT_EVERY {
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
                    if let Some(end) = &end_at {
                        if m.dirty {
                            m.commit(&topic, None)?;
                        }
                        if group_reached(&m.consumer, &topic, end)? {
                            break;
                        }
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(IDLE_WAIT) => {}
                        _ = ctx.cancel_token().cancelled() => {}
                    }
                }
            }
            m.commit(&topic, None)?;
            m.consumer.leave().map_err(|e| log_err("leave group", e))?;
            Ok(())
        })
    }
}

/// Whether the group's committed offsets reached `end` on every partition.
fn group_reached(consumer: &Consumer, topic: &str, end: &[u64]) -> Result<bool> {
    let committed = consumer
        .committed(topic)
        .map_err(|e| log_err("read committed offsets", e))?;
    Ok(end
        .iter()
        .enumerate()
        .all(|(p, e)| *e == 0 || committed.get(&(p as u32)).is_some_and(|c| c >= e)))
}

impl std::fmt::Debug for LogSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSource")
            .field("node", &self.node)
            .field("topic", &self.spec.topic)
            .finish()
    }
}
