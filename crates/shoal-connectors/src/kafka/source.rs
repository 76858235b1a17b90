//! The `kafka` source: every instance is a member of the source's Kafka
//! consumer group and reads the partitions the group assigns it.
//!
//! * **Where a partition starts** when this member is assigned it, first
//!   match wins:
//!   1. the position another instance of this source in this process reached
//!      in this run (its records are in flight already), when it is ahead of
//!      the stored position below (a position behind it is stale: another
//!      process owned the partition meanwhile);
//!   2. the offsets the pipeline's transactional sink stored with its output
//!      (see [`super::OffsetLedger`]): a Postgres sink's `shoal_offsets`
//!      table, or the group's committed offsets for a Kafka sink;
//!   3. the position in the restored checkpoint;
//!   4. `start`: `committed` = the group's committed offset (else the
//!      beginning), `earliest`, `latest`.
//!
//!   The group's committed offsets are looked up when the partition is
//!   assigned, so a partition's position is known before its first record
//!   (`stop_at_end` needs it for a partition with nothing left to read).
//! * **Rebalances.** A revoked partition is no longer read (records of it
//!   still queued are not emitted; the ones emitted are in flight and are
//!   committed with the epoch they belong to); an assigned one starts as
//!   above. When the sink owns the offsets (a checkpointed run, see
//!   [`super::OffsetLedger`]), the revoked partitions are handed back to the
//!   group only once the sink has committed the epoch holding their last
//!   records (the group's rebalance waits for that, about one checkpoint
//!   interval), and a member leaving at the end of its run first waits for
//!   the commit of its last epoch: the next owner then starts exactly after
//!   the committed output, so a partition moved between live processes is
//!   neither lost nor read twice. Eager assignors (`range`, `roundrobin`)
//!   revoke everything on each rebalance; `cooperative-sticky` only moves
//!   what must move.
//! * **Commits to the group.** With a Kafka sink, offsets are committed in
//!   the sink's transactions. Otherwise the offsets of each completed
//!   checkpoint are committed (for lag tools), or, without checkpoints,
//!   about once a second and at the end.
//! * **`stop_at_end`.** Stop once every partition has been read up to the
//!   high watermark seen at start and nothing arrived for a second (the
//!   grace covers brokers whose reported watermark lags the log, as tansu
//!   0.6's does).
//! * **Order.** A batch holds records of one partition, in offset order.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, TimestampMillisecondArray};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use futures::future::BoxFuture;
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use shoal_dsl::{Assignor, StartFrom};

use super::KafkaSourceConfig as KafkaSourceSpec;
use shoal_runtime::{DeadLetter, Result, RuntimeError, Source, SourceContext};

use super::ledger::{OffsetLedger, PositionStore, TopicPartition};
use shoal_runtime::shard::{ShardRefs, ShardRegistry};

/// How long a member with event time owns no partition before it tells
/// downstream it is idle.
const IDLE_AFTER: Duration = Duration::from_secs(1);
use super::{client_config, kafka_err};
use crate::event_time::EventTime;
use crate::format::{BadRecord, RecordChunk};
use crate::values::ValueDecoder;

/// Next offsets of the partitions the instances of one source in this
/// process have read in this run (or restored from a checkpoint).
pub type SharedPositions = Arc<Mutex<HashMap<TopicPartition, i64>>>;

const COMMIT_EVERY: Duration = Duration::from_secs(1);
const IDLE_WAIT: Duration = Duration::from_millis(5);
const END_GRACE: Duration = Duration::from_secs(1);
const META_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a leaving member waits for the sink to commit its last epoch.
const LEAVE_WAIT: Duration = Duration::from_secs(60);

/// One member of a Kafka source.
pub struct KafkaSource {
    node: String,
    spec: KafkaSourceSpec,
    schema: SchemaRef,
    value_schema: SchemaRef,
    live: SharedPositions,
    restored: SharedPositions,
    ledger: Option<Arc<OffsetLedger>>,
    store: Option<Arc<dyn PositionStore>>,
    sink_commits_group: bool,
}

impl KafkaSource {
    /// Instance of source `node`. `schema` is the output schema (see
    /// [`super::source_schema`]); `live` and `restored` are shared by the
    /// instances of the source in this process.
    pub fn new(
        node: &str,
        spec: KafkaSourceSpec,
        schema: SchemaRef,
        live: SharedPositions,
        restored: SharedPositions,
    ) -> Self {
        let value_schema = match &spec.schema {
            Some(s) => crate::schema::arrow_schema(s),
            None => schema.clone(),
        };
        Self {
            node: node.to_string(),
            spec,
            schema,
            value_schema,
            live,
            restored,
            ledger: None,
            store: None,
            sink_commits_group: false,
        }
    }

    /// Hand offsets to `ledger` at every barrier; a sink stores them with its
    /// output. `store` is where that sink keeps them (`None` for a Kafka
    /// sink: then it commits them to the group in its transactions, and the
    /// group's committed offsets are where partitions resume).
    pub fn with_ledger(
        mut self,
        ledger: Arc<OffsetLedger>,
        store: Option<Arc<dyn PositionStore>>,
    ) -> Self {
        self.sink_commits_group = store.is_none();
        self.ledger = Some(ledger);
        self.store = store;
        self
    }

    fn consumer_config(&self, instance: usize) -> rdkafka::ClientConfig {
        let session = self.spec.session_timeout.as_millis().max(1000);
        let assignor = match self.spec.assignor {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::Sticky | Assignor::CooperativeSticky => "cooperative-sticky",
        };
        let reset = match self.spec.start {
            StartFrom::Latest => "latest",
            _ => "earliest",
        };
        client_config(
            &self.spec.brokers,
            &[
                ("group.id", self.spec.group.clone()),
                ("client.id", format!("shoal-{}-{instance}", self.node)),
                ("enable.auto.commit", "false".into()),
                ("enable.auto.offset.store", "false".into()),
                ("auto.offset.reset", reset.into()),
                ("partition.assignment.strategy", assignor.into()),
                ("session.timeout.ms", session.to_string()),
                ("heartbeat.interval.ms", (session / 4).max(100).to_string()),
                ("isolation.level", "read_committed".into()),
                ("enable.partition.eof", "false".into()),
                ("statistics.interval.ms", STATS_EVERY_MS.to_string()),
            ],
            &self.spec.options,
        )
    }
}

/// Partitions owned by one member and their next offsets (`None` until the
/// first record when the broker decides the start).
#[derive(Debug, Default)]
struct Assignment {
    owned: BTreeMap<TopicPartition, Option<i64>>,
    /// Released in this run, with the position reached (for checkpoints).
    released: BTreeMap<TopicPartition, i64>,
    /// Released since the previous barrier (for the ledger).
    released_since_barrier: BTreeMap<TopicPartition, i64>,
    /// Revoked partitions not yet handed back to the group: they go once
    /// the sink has committed the output read from them (see
    /// [`Handover`]).
    handover: Option<Handover>,
    error: Option<String>,
    /// Whether the group has assigned this member partitions (possibly
    /// none) at least once.
    rebalanced: bool,
    /// When partitions were last assigned: `stop_at_end`'s second of
    /// silence counts from there (joining the group can take longer than
    /// that, and a broker's reported end may lag its records).
    assigned_at: Option<Instant>,
}

/// A revocation held back until the output of the revoked partitions is
/// committed, so the next owner starts exactly after it (a partition moved
/// between two live processes is then neither lost nor read twice).
///
/// The records emitted from them belong to the epoch open at the
/// revocation; the first barrier after it closes that epoch (`epoch`), and
/// once the sink reports it committed ([`OffsetLedger::committed_through`])
/// the partitions are unassigned, which lets the group's rebalance go on.
#[derive(Debug)]
struct Handover {
    partitions: Vec<TopicPartition>,
    cooperative: bool,
    epoch: Option<u64>,
}

impl Assignment {
    /// Positions whose records were emitted: owned (known) + released.
    fn positions(&self) -> impl Iterator<Item = (&TopicPartition, i64)> {
        self.owned.iter().filter_map(|(tp, o)| o.map(|o| (tp, o)))
    }
}

/// Decides where newly assigned partitions start.
struct StartRule {
    group: String,
    start: StartFrom,
    live: SharedPositions,
    restored: SharedPositions,
    store: Option<Arc<dyn PositionStore>>,
    group_is_truth: bool,
}

impl StartRule {
    /// Where `parts` start, from everything but [`StartRule::live`] (see
    /// [`StartRule::with_live`]), with the state reference the sink stored
    /// with each stored offset.
    fn offsets(&self, parts: &[TopicPartition]) -> Result<(Vec<Offset>, Vec<Option<String>>)> {
        let mut stored = match &self.store {
            Some(s) => s.positions_with_state(&self.group, parts)?,
            None => HashMap::new(),
        };
        let states = parts
            .iter()
            .map(|tp| stored.get_mut(tp).and_then(|(_, s)| s.take()))
            .collect();
        let stored: HashMap<TopicPartition, i64> =
            stored.into_iter().map(|(tp, (o, _))| (tp, o)).collect();
        let restored = self.restored.lock().expect("positions lock").clone();
        let offsets = parts
            .iter()
            .map(|tp| {
                if let Some(o) = stored.get(tp) {
                    Offset::Offset(*o)
                } else if self.store.is_some() {
                    // The sink's store is the truth: nothing stored, nothing consumed.
                    self.policy()
                } else if self.group_is_truth {
                    Offset::Stored
                } else if let Some(o) = restored.get(tp) {
                    Offset::Offset(*o)
                } else {
                    self.policy()
                }
            })
            .collect();
        Ok((offsets, states))
    }

    /// Where this process's own reading reached wins when it is further:
    /// those records are in flight here and will be committed by this
    /// process's sink. A position behind the stored one is stale (another
    /// process owned the partition meanwhile and went on).
    fn with_live(&self, parts: &[TopicPartition], offsets: &mut [Offset]) {
        let live = self.live.lock().expect("positions lock");
        for (tp, o) in parts.iter().zip(offsets.iter_mut()) {
            if let Some(l) = live.get(tp) {
                *o = match *o {
                    Offset::Offset(s) => Offset::Offset(s.max(*l)),
                    _ => Offset::Offset(*l),
                };
            }
        }
    }

    fn policy(&self) -> Offset {
        match self.start {
            StartFrom::Committed => Offset::Stored,
            StartFrom::Earliest => Offset::Beginning,
            StartFrom::Latest => Offset::End,
        }
    }
}

/// The consumer's context: applies rebalances to the shared [`Assignment`].
struct MemberContext {
    member: String,
    assignment: Arc<Mutex<Assignment>>,
    rule: StartRule,
    /// Hold revocations back until the sink committed (a sink that owns
    /// the offsets, in a checkpointed run).
    hand_over: bool,
    /// Set when the member leaves: revocations then happen at once.
    closing: Arc<std::sync::atomic::AtomicBool>,
    /// Operators downstream keep state per partition: report assignments
    /// and revocations there (see `shoal_runtime::shard`).
    shards: Option<Arc<ShardRegistry>>,
    /// Consumer lag from the client's statistics (see [`LagReport`]).
    lag: LagReport,
}

/// Consumer lag per owned partition, from librdkafka's statistics (every
/// [`STATS_EVERY_MS`]): the broker's last stable offset (what a
/// `read_committed` consumer can reach; the high watermark when unknown)
/// minus this member's next offset.
struct LagReport {
    metrics: Arc<shoal_runtime::NodeMetrics>,
    instance: usize,
    /// Where each topic's partitions start in the source's partition
    /// numbering (topics laid end to end, as for event time); set once the
    /// topics' partition counts are known.
    base: std::sync::OnceLock<HashMap<String, u32>>,
    /// What this member last reported: its partitions and its lag total.
    reported: Mutex<(Vec<u32>, i64)>,
}

/// How often librdkafka reports statistics (and Kafka lag is refreshed).
const STATS_EVERY_MS: u32 = 1000;

impl LagReport {
    fn update(&self, stats: &rdkafka::Statistics, assignment: &Assignment) {
        let Some(base) = self.base.get() else {
            return;
        };
        let mut now = Vec::new();
        let mut total = 0i64;
        for (tp, position) in &assignment.owned {
            let Some(p) = stats
                .topics
                .get(&tp.0)
                .and_then(|t| t.partitions.get(&tp.1))
            else {
                continue;
            };
            let end = if p.ls_offset >= 0 {
                p.ls_offset
            } else {
                p.hi_offset
            };
            if end < 0 {
                continue;
            }
            // Before the first record the position is the committed offset
            // (or nothing yet: the whole partition is behind).
            let position = position
                .or((p.committed_offset >= 0).then_some(p.committed_offset))
                .unwrap_or(p.lo_offset.max(0));
            let Some(b) = base.get(&tp.0) else { continue };
            let id = b + tp.1 as u32;
            self.metrics
                .set_partition(id, self.instance, position.max(0) as u64, end as u64);
            total += (end - position).max(0);
            now.push(id);
        }
        let mut reported = self.reported.lock().expect("lag report lock");
        for gone in reported.0.iter().filter(|p| !now.contains(p)) {
            self.metrics.forget_partition(*gone, self.instance);
        }
        self.metrics.add_lag(total - reported.1);
        *reported = (now, total);
    }
}

impl ClientContext for MemberContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        let a = self.assignment.lock().expect("assignment lock");
        self.lag.update(&statistics, &a);
    }
}

impl ConsumerContext for MemberContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let parts: Vec<TopicPartition> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        let mut a = self.assignment.lock().expect("assignment lock");
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let (mut offsets, states) = match self.rule.offsets(&parts) {
                    Ok(o) => o,
                    Err(e) => {
                        a.error = Some(format!("look up start offsets: {e}"));
                        (vec![Offset::Stored; parts.len()], vec![None; parts.len()])
                    }
                };
                if let Err(e) = resolve_committed(consumer, &parts, &mut offsets) {
                    a.error = Some(format!("look up committed offsets: {e}"));
                }
                let before_live = offsets.clone();
                self.rule.with_live(&parts, &mut offsets);
                if let Some(shards) = &self.shards {
                    for (i, tp) in parts.iter().enumerate() {
                        // The stored state goes with the stored offset; when
                        // this process's own reading is further, its state
                        // is in memory here and stays.
                        let refs = match (&states[i], offsets[i] == before_live[i]) {
                            (Some(s), true) => match serde_json::from_str::<ShardRefs>(s) {
                                Ok(r) => Some(r),
                                Err(e) => {
                                    a.error =
                                        Some(format!("state reference of {}/{}: {e}", tp.0, tp.1));
                                    None
                                }
                            },
                            _ => None,
                        };
                        shards.assign(tp.1 as u32, refs);
                    }
                }
                for (tp, o) in parts.iter().zip(&offsets) {
                    if let Err(e) = tpl.set_partition_offset(&tp.0, tp.1, *o) {
                        a.error = Some(format!("set start offset of {}/{}: {e}", tp.0, tp.1));
                    }
                }
                let r = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = r {
                    a.error = Some(format!("assign partitions: {e}"));
                }
                for (tp, o) in parts.into_iter().zip(offsets) {
                    tracing::info!(member = %self.member, topic = %tp.0, partition = tp.1, start = ?o, "partition assigned");
                    let known = match o {
                        Offset::Offset(o) => {
                            // Known before the first record: `stop_at_end` can
                            // tell a partition with nothing left to read is done.
                            self.rule
                                .live
                                .lock()
                                .expect("positions lock")
                                .insert(tp.clone(), o);
                            Some(o)
                        }
                        _ => None,
                    };
                    a.released.remove(&tp);
                    a.released_since_barrier.remove(&tp);
                    a.owned.insert(tp, known);
                }
                a.rebalanced = true;
                a.assigned_at = Some(Instant::now());
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let leaving = self.closing.load(std::sync::atomic::Ordering::Relaxed);
                for tp in &parts {
                    // A member leaving at the end of its run keeps its shards:
                    // end of input flushes them, and the final checkpoint
                    // commits what is left.
                    if let (Some(shards), false) = (&self.shards, leaving) {
                        shards.revoke(tp.1 as u32);
                    }
                    tracing::info!(member = %self.member, topic = %tp.0, partition = tp.1, "partition revoked");
                    if let Some(Some(o)) = a.owned.remove(tp) {
                        a.released.insert(tp.clone(), o);
                        a.released_since_barrier.insert(tp.clone(), o);
                    }
                }
                let closing = self.closing.load(std::sync::atomic::Ordering::Relaxed);
                if self.hand_over && !closing && a.handover.is_none() {
                    // Unassigned by the source loop once the sink committed.
                    a.handover = Some(Handover {
                        partitions: parts,
                        cooperative,
                        epoch: None,
                    });
                    return;
                }
                let r = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = r {
                    a.error = Some(format!("unassign partitions: {e}"));
                }
            }
            other => {
                tracing::warn!(member = %self.member, error = ?other, "rebalance error; dropping the assignment");
                for (tp, o) in std::mem::take(&mut a.owned) {
                    if let Some(shards) = &self.shards {
                        shards.revoke(tp.1 as u32);
                    }
                    if let Some(o) = o {
                        a.released.insert(tp.clone(), o);
                        a.released_since_barrier.insert(tp, o);
                    }
                }
                a.handover = None;
                let _ = consumer.unassign();
            }
        }
    }
}

/// Makes sure a member leaving (normally or on an error) revokes at once
/// and hands over what it held back: closing the consumer would otherwise
/// wait for that forever.
struct LeaveGuard<'c> {
    consumer: &'c BaseConsumer<MemberContext>,
    assignment: &'c Mutex<Assignment>,
    closing: &'c std::sync::atomic::AtomicBool,
}

impl Drop for LeaveGuard<'_> {
    fn drop(&mut self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = finish_handover(self.consumer, self.assignment, None, true);
    }
}

/// Give held-back revoked partitions to the group (see [`Handover`]): now
/// when `force` (the member leaves) or once the sink has committed the
/// epoch their records belong to.
fn finish_handover(
    consumer: &BaseConsumer<MemberContext>,
    assignment: &Mutex<Assignment>,
    ledger: Option<&OffsetLedger>,
    force: bool,
) -> Result<()> {
    let mut a = assignment.lock().expect("assignment lock");
    let ready = match &a.handover {
        None => false,
        Some(h) => {
            force
                || h.epoch
                    .zip(ledger)
                    .is_some_and(|(e, l)| l.committed_through() >= e)
        }
    };
    if !ready {
        return Ok(());
    }
    let h = a.handover.take().expect("checked");
    let r = if h.cooperative {
        let mut tpl = TopicPartitionList::new();
        for (t, p) in &h.partitions {
            tpl.add_partition(t, *p);
        }
        consumer.incremental_unassign(&tpl)
    } else {
        consumer.unassign()
    };
    tracing::info!(partitions = h.partitions.len(), epoch = ?h.epoch, "revoked partitions handed over");
    r.map_err(|e| kafka_err("unassign partitions", e))
}

/// Replace `Offset::Stored` starts with the group's committed offsets, so
/// that a partition's position is known before its first record (a
/// partition read to its end by an earlier run has no record to tell it).
/// Partitions the group has no offset for keep `Stored` (then
/// `auto.offset.reset` decides, as `start` says).
fn resolve_committed<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    parts: &[TopicPartition],
    offsets: &mut [Offset],
) -> std::result::Result<(), KafkaError> {
    let mut tpl = TopicPartitionList::new();
    for (tp, o) in parts.iter().zip(offsets.iter()) {
        if *o == Offset::Stored {
            tpl.add_partition(&tp.0, tp.1);
        }
    }
    if tpl.count() == 0 {
        return Ok(());
    }
    let got = consumer.committed_offsets(tpl, META_TIMEOUT)?;
    for e in got.elements() {
        if let Offset::Offset(c) = e.offset()
            && let Some(i) = parts
                .iter()
                .position(|(t, p)| *p == e.partition() && t == e.topic())
        {
            offsets[i] = Offset::Offset(c);
        }
    }
    Ok(())
}

/// Records of one partition collected for one batch.
#[derive(Default)]
struct PartitionChunk {
    tp: Option<TopicPartition>,
    records: RecordChunk,
    timestamps: Vec<i64>,
    offsets: Vec<i64>,
    last: i64,
}

fn state_json(a: &Assignment, restored: &SharedPositions) -> serde_json::Value {
    let mut all: BTreeMap<String, i64> = restored
        .lock()
        .expect("positions lock")
        .iter()
        .map(|((t, p), o)| (format!("{t}/{p}"), *o))
        .collect();
    for ((t, p), o) in &a.released {
        all.insert(format!("{t}/{p}"), *o);
    }
    for ((t, p), o) in a.positions() {
        all.insert(format!("{t}/{p}"), o);
    }
    serde_json::json!({ "positions": all })
}

pub(crate) fn parse_positions(state: &serde_json::Value) -> Result<Vec<(TopicPartition, i64)>> {
    let Some(map) = state["positions"].as_object() else {
        return Err(RuntimeError::User(format!(
            "kafka source state has no positions: {state}"
        )));
    };
    let mut out = Vec::with_capacity(map.len());
    for (k, v) in map {
        let parsed = k
            .rsplit_once('/')
            .and_then(|(t, p)| Some(((t.to_string(), p.parse::<i32>().ok()?), v.as_i64()?)));
        match parsed {
            Some(x) => out.push(x),
            None => {
                return Err(RuntimeError::User(format!(
                    "kafka source state: bad position {k}: {v}"
                )));
            }
        }
    }
    Ok(out)
}

impl KafkaSource {
    fn commit_owned(
        consumer: &BaseConsumer<MemberContext>,
        a: &Assignment,
        only: Option<&[(TopicPartition, i64)]>,
        mode: CommitMode,
    ) -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        match only {
            Some(list) => {
                for (tp, o) in list {
                    if a.owned.contains_key(tp) {
                        tpl.add_partition_offset(&tp.0, tp.1, Offset::Offset(*o))
                            .map_err(|e| kafka_err("commit offsets", e))?;
                    }
                }
            }
            None => {
                for (tp, o) in a.positions() {
                    tpl.add_partition_offset(&tp.0, tp.1, Offset::Offset(o))
                        .map_err(|e| kafka_err("commit offsets", e))?;
                }
            }
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        match consumer.commit(&tpl, mode) {
            Ok(()) => Ok(()),
            // The group rebalanced meanwhile: the partitions' new owners go on.
            Err(KafkaError::ConsumerCommit(code)) => {
                tracing::debug!(error = %code, "offset commit refused");
                Ok(())
            }
            Err(e) => Err(kafka_err("commit offsets", e)),
        }
    }

    /// High watermarks of every partition of the source's topics with
    /// records, and each topic's partition count.
    fn ends(
        &self,
        consumer: &BaseConsumer<MemberContext>,
    ) -> Result<(HashMap<TopicPartition, i64>, HashMap<String, usize>)> {
        let mut ends = HashMap::new();
        let mut counts = HashMap::new();
        for topic in &self.spec.topics {
            let md = consumer
                .fetch_metadata(Some(topic), META_TIMEOUT)
                .map_err(|e| kafka_err(&format!("metadata of topic {topic}"), e))?;
            let t = md
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .filter(|t| t.error().is_none() && !t.partitions().is_empty())
                .ok_or_else(|| {
                    RuntimeError::User(format!(
                        "source `{}`: kafka topic {topic} does not exist",
                        self.node
                    ))
                })?;
            counts.insert(topic.clone(), t.partitions().len());
            if self.spec.stop_at_end {
                for p in t.partitions() {
                    let (low, high) = consumer
                        .fetch_watermarks(topic, p.id(), META_TIMEOUT)
                        .map_err(|e| kafka_err(&format!("watermarks of {topic}/{}", p.id()), e))?;
                    if high > low {
                        ends.insert((topic.clone(), p.id()), high);
                    }
                }
            }
        }
        Ok((ends, counts))
    }

    fn caught_up(&self, ends: &HashMap<TopicPartition, i64>) -> bool {
        let live = self.live.lock().expect("positions lock");
        ends.iter()
            .all(|(tp, end)| live.get(tp).is_some_and(|o| o >= end))
    }
}

impl Source for KafkaSource {
    fn restore(&mut self, states: &[serde_json::Value], _instance: usize) -> Result<()> {
        // Partitions move between members: every instance restores the union.
        let mut restored = self.restored.lock().expect("positions lock");
        for state in states.iter().filter(|s| !s.is_null()) {
            for (tp, o) in parse_positions(state)? {
                let e = restored.entry(tp).or_insert(o);
                *e = (*e).max(o);
            }
        }
        Ok(())
    }

    fn run<'a>(self: Box<Self>, ctx: &'a mut SourceContext) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let member = format!("{}-{}", self.node, ctx.instance);
            let assignment = Arc::new(Mutex::new(Assignment::default()));
            let closing = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let hand_over = self.ledger.is_some() && ctx.is_checkpointing();
            let context = MemberContext {
                member: member.clone(),
                assignment: assignment.clone(),
                rule: StartRule {
                    group: self.spec.group.clone(),
                    start: self.spec.start,
                    live: self.live.clone(),
                    restored: self.restored.clone(),
                    store: self.store.clone(),
                    group_is_truth: self.sink_commits_group,
                },
                hand_over,
                closing: closing.clone(),
                shards: ctx.shards().cloned(),
                lag: LagReport {
                    metrics: ctx.metrics_handle(),
                    instance: ctx.instance,
                    base: std::sync::OnceLock::new(),
                    reported: Mutex::new((Vec::new(), 0)),
                },
            };
            let consumer: BaseConsumer<MemberContext> = self
                .consumer_config(ctx.instance)
                .create_with_context(context)
                .map_err(|e| kafka_err("create consumer", e))?;
            // Dropped before the consumer, however `run` ends.
            let _leave = LeaveGuard {
                consumer: &consumer,
                assignment: &assignment,
                closing: &closing,
            };
            let (ends, counts) = self.ends(&consumer)?;
            let topics: Vec<&str> = self.spec.topics.iter().map(String::as_str).collect();
            consumer
                .subscribe(&topics)
                .map_err(|e| kafka_err("subscribe", e))?;
            // Event-time partitions: topics laid end to end.
            let mut base = HashMap::new();
            let mut total = 0usize;
            for t in &self.spec.topics {
                base.insert(t.clone(), total);
                total += counts[t];
            }
            let _ = consumer
                .context()
                .lag
                .base
                .set(base.iter().map(|(t, b)| (t.clone(), *b as u32)).collect());
            let mut event_time = match &self.spec.event_time {
                Some(et) => Some(EventTime::new(et, &self.schema, total)?),
                None => None,
            };
            // The event-time partitions `event_time` was last assigned.
            let mut event_time_owned: Vec<u32> = Vec::new();
            // Since when this member has owned no partition (see `IDLE_AFTER`).
            let mut owning_nothing_since: Option<Instant> = None;
            let mut idle_now = false;
            let last_barrier = Arc::new(std::sync::atomic::AtomicU64::new(0));
            if let Some(ledger) = &self.ledger {
                let ledger = ledger.clone();
                let a = assignment.clone();
                let last = last_barrier.clone();
                ctx.on_barrier(Box::new(move |epoch, _state| {
                    last.store(epoch, std::sync::atomic::Ordering::Relaxed);
                    let mut a = a.lock().expect("assignment lock");
                    if let Some(h) = &mut a.handover
                        && h.epoch.is_none()
                    {
                        h.epoch = Some(epoch);
                    }
                    let mut positions: Vec<(TopicPartition, i64)> =
                        a.positions().map(|(tp, o)| (tp.clone(), o)).collect();
                    positions.extend(std::mem::take(&mut a.released_since_barrier));
                    ledger.record(epoch, positions);
                }));
            }
            let mut decoder = ValueDecoder::new(
                self.value_schema.clone(),
                self.spec.avro.as_ref(),
                self.spec.protobuf.as_ref(),
                &self.spec.decode,
            )?;
            let mut chunks: Vec<PartitionChunk> = Vec::new();
            let mut bad: Vec<BadRecord> = Vec::new();
            let batch_size = self.spec.batch_size.max(1);
            let checkpointing = ctx.is_checkpointing();
            let commit_group = !self.sink_commits_group;
            let mut last_commit = Instant::now();
            let mut last_record = Instant::now();
            let mut dirty = false;
            ctx.set_state(state_json(
                &assignment.lock().expect("assignment lock"),
                &self.restored,
            ));
            let outcome: Result<()> = async {
                loop {
                    if ctx.is_cancelled() {
                        break;
                    }
                    {
                        let mut a = assignment.lock().expect("assignment lock");
                        if let Some(e) = a.error.take() {
                            return Err(RuntimeError::External(format!(
                                "kafka source `{}`: {e}",
                                self.node
                            )));
                        }
                        // Only the partitions this member owns hold its
                        // watermark back (the others are other members').
                        if let Some(et) = &mut event_time {
                            let mut now: Vec<u32> = a
                                .owned
                                .keys()
                                .filter_map(|(t, p)| Some((base.get(t)? + *p as usize) as u32))
                                .collect();
                            now.sort_unstable();
                            if now != event_time_owned {
                                et.assign(&now);
                                event_time_owned = now;
                            }
                            // Owning nothing after the group's assignment
                            // (more members than partitions, or all moved
                            // to other processes) for a second — longer
                            // than the gap between a revocation and the
                            // next assignment — the member is idle and
                            // must not hold event time back downstream.
                            if event_time_owned.is_empty() && a.rebalanced && a.handover.is_none() {
                                let since = *owning_nothing_since.get_or_insert_with(Instant::now);
                                idle_now = since.elapsed() >= IDLE_AFTER;
                            } else {
                                owning_nothing_since = None;
                            }
                        }
                    }
                    if idle_now {
                        idle_now = false;
                        ctx.emit_idle().await?;
                    }
                    // Collect up to one batch of records, per partition.
                    for c in &mut chunks {
                        c.tp = None;
                    }
                    let mut got = 0usize;
                    while got < batch_size {
                        let Some(r) = consumer.poll(Duration::ZERO) else {
                            break;
                        };
                        let m = match r {
                            Ok(m) => m,
                            Err(e) => {
                                tracing::warn!(member = %member, error = %e, "kafka consumer error");
                                break;
                            }
                        };
                        let (topic, partition, offset) = (m.topic(), m.partition(), m.offset());
                        let owned = {
                            let a = assignment.lock().expect("assignment lock");
                            a.owned.keys().any(|(t, p)| *p == partition && t == topic)
                        };
                        if !owned {
                            continue; // queued before a revocation
                        }
                        let idx = match chunks.iter().position(|c| {
                            c.tp.as_ref()
                                .is_some_and(|(t, p)| *p == partition && t == topic)
                        }) {
                            Some(i) => i,
                            None => {
                                let i = match chunks.iter().position(|c| c.tp.is_none()) {
                                    Some(i) => i,
                                    None => {
                                        chunks.push(PartitionChunk::default());
                                        chunks.len() - 1
                                    }
                                };
                                let c = &mut chunks[i];
                                c.tp = Some((topic.to_string(), partition));
                                c.records.clear();
                                c.timestamps.clear();
                                c.offsets.clear();
                                i
                            }
                        };
                        let c = &mut chunks[idx];
                        c.records.push(
                            m.payload().unwrap_or_default(),
                            Some(partition as u32),
                            offset as u64,
                        );
                        c.timestamps.push(m.timestamp().to_millis().unwrap_or(0));
                        c.offsets.push(offset);
                        c.last = offset;
                        got += 1;
                    }
                    if got > 0 {
                        last_record = Instant::now();
                    }
                    for c in &mut chunks {
                        let Some(tp) = c.tp.clone() else { continue };
                        if let Some(batch) = decoder.decode(&c.records, &mut bad)? {
                            let batch = match &self.spec.timestamp_column {
                                Some(_) => with_timestamps(&self.schema, batch, c, &bad)?,
                                None => batch,
                            };
                            if let Some(et) = &mut event_time {
                                et.observe(base[&tp.0] + tp.1 as usize, &batch);
                            }
                            if ctx.shards().is_some() {
                                let time = event_time.as_ref().map_or(i64::MIN, |et| {
                                    et.partition_watermark(base[&tp.0] + tp.1 as usize)
                                });
                                ctx.emit_shard(batch, tp.1 as u32, time).await?;
                            } else {
                                ctx.emit(batch).await?;
                            }
                        }
                        let next = c.last + 1;
                        {
                            let mut a = assignment.lock().expect("assignment lock");
                            if let Some(o) = a.owned.get_mut(&tp) {
                                *o = Some(next);
                            } else {
                                // Revoked while this batch was on its way: emitted all the same.
                                a.released.insert(tp.clone(), next);
                                a.released_since_barrier.insert(tp.clone(), next);
                            }
                            ctx.set_state(state_json(&a, &self.restored));
                        }
                        self.live
                            .lock()
                            .expect("positions lock")
                            .insert(tp.clone(), next);
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
                        dirty = true;
                    }
                    if let Some(et) = &event_time {
                        et.emit(ctx).await?;
                    }
                    if checkpointing {
                        ctx.checkpoint_point().await?;
                        finish_handover(&consumer, &assignment, self.ledger.as_deref(), false)?;
                        if let Some((_, state)) = ctx.take_completed_state()
                            && commit_group
                        {
                            let positions = parse_positions(&state)?;
                            let a = assignment.lock().expect("assignment lock");
                            Self::commit_owned(&consumer, &a, Some(&positions), CommitMode::Async)?;
                        }
                    } else if dirty && last_commit.elapsed() >= COMMIT_EVERY {
                        let a = assignment.lock().expect("assignment lock");
                        Self::commit_owned(&consumer, &a, None, CommitMode::Async)?;
                        dirty = false;
                        last_commit = Instant::now();
                    }
                    if got == 0 {
                        let settled = assignment
                            .lock()
                            .expect("assignment lock")
                            .assigned_at
                            .is_none_or(|t| t.elapsed() >= END_GRACE);
                        if self.spec.stop_at_end
                            && last_record.elapsed() >= END_GRACE
                            && settled
                            && self.caught_up(&ends)
                        {
                            break;
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(IDLE_WAIT) => {}
                            _ = ctx.cancel_token().cancelled() => {}
                        }
                    }
                }
                if !checkpointing {
                    let a = assignment.lock().expect("assignment lock");
                    Self::commit_owned(&consumer, &a, None, CommitMode::Sync)?;
                }
                Ok(())
            }
            .await;
            // Leaving the group hands every partition over: first let the
            // sink commit what this member emitted (the next barrier's
            // epoch), so the next owners start exactly after it.
            if let (Ok(()), true, Some(ledger)) = (&outcome, hand_over, &self.ledger) {
                let target = last_barrier.load(std::sync::atomic::Ordering::Relaxed) + 1;
                let deadline = Instant::now() + LEAVE_WAIT;
                while ledger.committed_through() < target {
                    if Instant::now() > deadline {
                        tracing::warn!(member = %member, epoch = target, "left the group before the sink committed");
                        break;
                    }
                    ctx.checkpoint_point().await?;
                    tokio::time::sleep(IDLE_WAIT).await;
                }
            }
            closing.store(true, std::sync::atomic::Ordering::Relaxed);
            let handed = finish_handover(&consumer, &assignment, self.ledger.as_deref(), true);
            consumer.unsubscribe();
            outcome.and(handed)
        })
    }
}

/// Append the record timestamps of the rows that decoded (bad records are
/// left out of `batch`) as the last column.
fn with_timestamps(
    schema: &SchemaRef,
    batch: RecordBatch,
    c: &PartitionChunk,
    bad: &[BadRecord],
) -> Result<RecordBatch> {
    let ts: Vec<i64> = if bad.is_empty() {
        c.timestamps.clone()
    } else {
        c.offsets
            .iter()
            .zip(&c.timestamps)
            .filter(|(o, _)| !bad.iter().any(|b| b.position == **o as u64))
            .map(|(_, t)| *t)
            .collect()
    };
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns.push(Arc::new(TimestampMillisecondArray::from(ts)));
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("node", &self.node)
            .field("topics", &self.spec.topics)
            .field("group", &self.spec.group)
            .finish()
    }
}
