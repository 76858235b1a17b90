//! [`Consumer`]: a consumer-group member's handle, what a pipeline source
//! task holds. It joins on creation, and leaves when [`Consumer::leave`] is
//! called or the handle is dropped.
//!
//! A source task's loop, with the cooperative protocol:
//!
//! ```no_run
//! # use shoal_log::*;
//! # fn run(log: &LogDir) -> Result<()> {
//! let c = log.consumer("fraud", ConsumerConfig::new(["transactions"], AssignorKind::CooperativeSticky))?;
//! let mut buf = FetchBuffer::new();
//! let mut positions = std::collections::HashMap::new();
//! loop {
//!     let a = c.poll_assignment()?;
//!     if a.must_revoke() {
//!         // stop reading a.revoke, optionally commit their offsets with a.generation
//!         c.ack_revocation(a.generation)?;
//!         continue;
//!     }
//!     for tp in &a.partitions {
//!         let pos = positions.entry(tp.clone()).or_insert(0u64);
//!         c.fetch(&tp.topic, tp.partition, *pos, 1000, 1 << 20, &mut buf)?;
//!         for v in buf.values() { /* decode JSON */ let _ = v; }
//!         if let Some(next) = buf.next_offset() { *pos = next; }
//!     }
//! #   break;
//! }
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::LogDir;
use crate::error::Result;
use crate::fetch::{FetchBuffer, Isolation};
use crate::group::{Assignment, AssignorKind, Heartbeat};

/// How a member joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// Topics to subscribe to.
    pub topics: Vec<String>,
    /// The group's assignor (every member must use the same).
    pub assignor: AssignorKind,
    /// A stable member id, or `None` for a generated one.
    pub member_id: Option<String>,
}

impl ConsumerConfig {
    /// Subscribe to `topics` with `assignor`, generated member id.
    pub fn new<I, S>(topics: I, assignor: AssignorKind) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ConsumerConfig {
            topics: topics.into_iter().map(Into::into).collect(),
            assignor,
            member_id: None,
        }
    }

    /// Use `id` as the member id.
    pub fn member_id(mut self, id: impl Into<String>) -> Self {
        self.member_id = Some(id.into());
        self
    }
}

/// A member of a consumer group; see the module docs. `Send + Sync`.
#[derive(Debug)]
pub struct Consumer {
    log: LogDir,
    group: String,
    member: String,
    left: AtomicBool,
    /// When the member last polled its assignment (ms since `born`), for
    /// [`Consumer::keep_alive`].
    polled: Arc<AtomicU64>,
    born: Instant,
}

/// A thread that keeps a member's session alive while its task is blocked
/// (see [`Consumer::keep_alive`]); stopped and joined when dropped.
#[derive(Debug)]
pub struct KeepAlive {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Consumer {
    pub(crate) fn join(log: &LogDir, group: &str, config: ConsumerConfig) -> Result<Consumer> {
        let member = log.coordinator().join(
            group,
            config.member_id.as_deref(),
            &config.topics,
            config.assignor,
        )?;
        Ok(Consumer {
            log: log.clone(),
            group: group.to_owned(),
            member,
            left: AtomicBool::new(false),
            polled: Arc::new(AtomicU64::new(0)),
            born: Instant::now(),
        })
    }

    /// Heartbeat from a thread of its own, a third of the session timeout
    /// apart, so that a task blocked by backpressure (a full channel, a
    /// slow sink, a long checkpoint) keeps its membership — Kafka's
    /// separation of liveness from progress (KIP-62). A member that has
    /// not polled its assignment for `max_poll_interval` is taken as stuck:
    /// the thread stops heartbeating and the group expels it after the
    /// session timeout. Rebalances still wait for the task itself to
    /// confirm revocations.
    pub fn keep_alive(&self, max_poll_interval: Duration) -> KeepAlive {
        let stop = Arc::new(AtomicBool::new(false));
        let every = (self.log.config().group.session_timeout / 3).max(Duration::from_millis(10));
        let (log, group, member) = (self.log.clone(), self.group.clone(), self.member.clone());
        let (polled, born, flag) = (self.polled.clone(), self.born, stop.clone());
        let max_ms = max_poll_interval.as_millis() as u64;
        let thread = std::thread::Builder::new()
            .name("shoal-heartbeat".into())
            .spawn(move || {
                while !flag.load(Ordering::Acquire) {
                    let now = born.elapsed().as_millis() as u64;
                    let idle = now.saturating_sub(polled.load(Ordering::Relaxed));
                    if idle > max_ms {
                        tracing::warn!(%group, %member, idle_ms = idle,
                            "member has not polled within max_poll_interval; no more heartbeats");
                        return;
                    }
                    // A member that left or was expelled has nothing to keep.
                    if log.coordinator().heartbeat(&group, &member).is_err() {
                        return;
                    }
                    std::thread::park_timeout(every);
                }
            })
            .ok();
        KeepAlive { stop, thread }
    }

    /// The group id.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// This member's id.
    pub fn member_id(&self) -> &str {
        &self.member
    }

    /// Current assigned partitions, generation and pending revocations.
    pub fn poll_assignment(&self) -> Result<Assignment> {
        self.polled
            .store(self.born.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.log
            .coordinator()
            .poll_assignment(&self.group, &self.member)
    }

    /// Confirms the revocations announced in `generation` are done.
    pub fn ack_revocation(&self, generation: u64) -> Result<Assignment> {
        self.log
            .coordinator()
            .ack_revocation(&self.group, &self.member, generation)
    }

    /// Reads up to `max_records` records (about `max_bytes`, at least one if
    /// any) of `topic`/`partition` from `offset` into `buf` (cleared first).
    /// An empty `buf` means caught up for now.
    pub fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_records: usize,
        max_bytes: usize,
        buf: &mut FetchBuffer,
    ) -> Result<()> {
        self.log
            .fetch(topic, partition, offset, max_records, max_bytes, buf)
    }

    /// [`Consumer::fetch`] with an [`Isolation`] (see [`LogDir::fetch_with`]).
    #[allow(clippy::too_many_arguments)]
    pub fn fetch_with(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_records: usize,
        max_bytes: usize,
        isolation: Isolation,
        buf: &mut FetchBuffer,
    ) -> Result<()> {
        self.log.fetch_with(
            topic,
            partition,
            offset,
            max_records,
            max_bytes,
            isolation,
            buf,
        )
    }

    /// Commits `(topic, partition, next offset)`s under `generation`.
    pub fn commit(&self, generation: u64, offsets: &[(&str, u32, u64)]) -> Result<()> {
        self.log
            .coordinator()
            .commit(&self.group, &self.member, generation, offsets)
    }

    /// Signals liveness; tells whether a rebalance is under way.
    pub fn heartbeat(&self) -> Result<Heartbeat> {
        self.log.coordinator().heartbeat(&self.group, &self.member)
    }

    /// Leaves the group (the others rebalance). Idempotent.
    pub fn leave(&self) -> Result<()> {
        if self.left.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.log.coordinator().leave(&self.group, &self.member)
    }

    /// Log end offsets of every partition of `topic`.
    pub fn end_offsets(&self, topic: &str) -> Result<Vec<u64>> {
        self.log.end_offsets(topic)
    }

    /// This group's committed offsets for `topic`.
    pub fn committed(&self, topic: &str) -> Result<BTreeMap<u32, u64>> {
        self.log.committed(&self.group, topic)
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let Err(e) = self.leave() {
            tracing::warn!(group = %self.group, member = %self.member, error = %e, "leave on drop failed");
        }
    }
}
