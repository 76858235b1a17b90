//! Event-time watermarks at sources.
//!
//! A source tracks the largest event time seen per partition; its watermark
//! is the minimum over partitions of (max seen − allowed delay). A partition
//! with no data for `idle_timeout` stops holding event time back until it
//! produces again.
//!
//! # Partitions that move between instances
//!
//! An instance's watermark is a promise about every record it sends later.
//! When a consumer group moves a partition from instance A to instance B,
//! B continues where A stopped — but B may already have promised a later
//! event time (over its other partitions) than the moved partition has
//! reached, and A, no longer holding it, promises more too. The moved
//! partition's next records would then be *late* everywhere downstream,
//! which a run that never moved it would not see (a restart, where members
//! join one by one and partitions move between them, lost window results
//! this way: the chaos test `sigkill_with_event_time_windows…`).
//!
//! So the instances of one source in a process share a
//! [`SharedPartitionTimes`]: each records what it reads into it, and each
//! instance's watermark is the minimum over *every* partition of the topic,
//! owned by it or not. A partition between owners, or not read yet in this
//! run, holds event time back for all of them. This is safe across
//! channels: a watermark derived from another instance's reads never passes
//! records that instance has still in flight, because that instance's own
//! channel (carrying them before its own watermark) is part of the
//! downstream minimum.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrowPrimitiveType, PrimitiveArray};
use arrow::compute::max;
use arrow::datatypes::{
    DataType, Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow::record_batch::RecordBatch;

/// The largest event time seen per partition (and when it last produced),
/// shared by the instances of one source in a process; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct SharedPartitionTimes(Arc<Mutex<Vec<(i64, Instant)>>>);

impl SharedPartitionTimes {
    fn with<R>(&self, partitions: usize, f: impl FnOnce(&mut Vec<(i64, Instant)>) -> R) -> R {
        let mut t = self.0.lock().expect("partition times lock");
        if t.len() < partitions {
            t.resize(partitions, (i64::MIN, Instant::now()));
        }
        f(&mut t)
    }
}

/// Where a tracker keeps its partitions' (event time, last produced).
#[derive(Debug)]
enum Times {
    /// This instance's own.
    Own(Vec<(i64, Instant)>),
    /// Shared with the source's other instances.
    Shared(SharedPartitionTimes),
}

/// Per-partition event-time tracking for one source instance.
#[derive(Debug)]
pub struct WatermarkTracker {
    max_delay_ms: i64,
    idle_timeout: Option<Duration>,
    times: Times,
    /// Which partitions this instance reads (only they hold time back,
    /// unless the times are shared).
    assigned: Vec<bool>,
}

impl WatermarkTracker {
    /// A tracker for `partitions` partitions.
    pub fn new(partitions: usize, max_delay: Duration, idle_timeout: Option<Duration>) -> Self {
        Self {
            max_delay_ms: max_delay.as_millis() as i64,
            idle_timeout,
            times: Times::Own(vec![(i64::MIN, Instant::now()); partitions.max(1)]),
            assigned: vec![true; partitions.max(1)],
        }
    }

    /// Share partition times with the other instances of the source: the
    /// watermark then covers every partition, owned by this instance or
    /// not, so a partition that moves between instances never finds event
    /// time already past its next records.
    pub fn shared(mut self, times: SharedPartitionTimes) -> Self {
        times.with(self.assigned.len(), |_| ());
        self.times = Times::Shared(times);
        self
    }

    /// Runs `f` on the times table, grown to at least `n` partitions.
    fn with_times<R>(&mut self, n: usize, f: impl FnOnce(&mut Vec<(i64, Instant)>) -> R) -> R {
        match &mut self.times {
            Times::Own(t) => {
                if t.len() < n {
                    t.resize(n, (i64::MIN, Instant::now()));
                }
                f(t)
            }
            Times::Shared(s) => s.with(n, f),
        }
    }

    /// This instance now reads exactly `partitions` (a consumer-group
    /// assignment): the others no longer hold its watermark back. A newly
    /// assigned partition holds it back until it produces (or idles).
    pub fn assign(&mut self, partitions: &[usize], now: Instant) {
        let n = partitions.iter().copied().max().map_or(0, |m| m + 1);
        if n > self.assigned.len() {
            self.assigned.resize(n, false);
        }
        let mut acquired = Vec::new();
        for (p, a) in self.assigned.iter_mut().enumerate() {
            let now_assigned = partitions.contains(&p);
            if now_assigned && !*a {
                acquired.push(p);
            }
            *a = now_assigned;
        }
        if !acquired.is_empty() {
            self.with_times(n, |t| acquired.iter().for_each(|p| t[*p].1 = now));
        }
    }

    /// Record that `partition` produced data with event times up to `max_ts`.
    pub fn observe(&mut self, partition: usize, max_ts: i64, now: Instant) {
        if partition >= self.assigned.len() {
            self.assigned.resize(partition + 1, true);
        }
        self.with_times(partition + 1, |t| {
            t[partition].0 = t[partition].0.max(max_ts);
            t[partition].1 = now;
        });
    }

    /// `partition`'s own watermark: its largest event time seen minus the
    /// allowed delay (`i64::MIN` before its first record).
    pub fn partition_watermark(&self, partition: usize) -> i64 {
        let seen = match &self.times {
            Times::Own(t) => t.get(partition).map(|p| p.0),
            Times::Shared(s) => {
                s.0.lock()
                    .expect("partition times lock")
                    .get(partition)
                    .map(|p| p.0)
            }
        };
        match seen {
            Some(ts) if ts != i64::MIN => ts.saturating_sub(self.max_delay_ms),
            _ => i64::MIN,
        }
    }

    /// The current watermark, if every partition that holds time back has
    /// produced data.
    pub fn watermark(&self, now: Instant) -> Option<i64> {
        match &self.times {
            Times::Shared(shared) => shared.with(self.assigned.len(), |t| self.over(t.iter(), now)),
            Times::Own(t) => self.over(
                t.iter()
                    .zip(&self.assigned)
                    .filter(|(_, a)| **a)
                    .map(|(p, _)| p),
                now,
            ),
        }
    }

    /// The watermark over `partitions` (event time, last produced).
    fn over<'a>(
        &self,
        partitions: impl Iterator<Item = &'a (i64, Instant)> + Clone,
        now: Instant,
    ) -> Option<i64> {
        let active = partitions
            .clone()
            .filter(|(_, seen)| match self.idle_timeout {
                Some(idle) => now.saturating_duration_since(*seen) < idle,
                None => true,
            });
        let min = match active.map(|(ts, _)| *ts).min() {
            Some(m) => m,
            // Every partition is idle: follow the most advanced one.
            None => partitions.map(|(ts, _)| *ts).max()?,
        };
        (min != i64::MIN).then(|| min.saturating_sub(self.max_delay_ms))
    }
}

/// The largest value of a timestamp (any unit) or int64 column, in milliseconds.
pub fn max_event_time_ms(batch: &RecordBatch, column: usize) -> Option<i64> {
    let col = batch.column(column);
    fn m<T: ArrowPrimitiveType<Native = i64>>(a: &dyn Array) -> Option<i64> {
        max(a.as_any().downcast_ref::<PrimitiveArray<T>>()?)
    }
    match col.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, _) => m::<TimestampMillisecondType>(col),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            m::<TimestampMicrosecondType>(col).map(|v| v / 1_000)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            m::<TimestampNanosecondType>(col).map(|v| v / 1_000_000)
        }
        DataType::Timestamp(TimeUnit::Second, _) => {
            m::<TimestampSecondType>(col).map(|v| v * 1_000)
        }
        DataType::Int64 => m::<Int64Type>(col),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_over_partitions_minus_delay() {
        let t0 = Instant::now();
        let mut w = WatermarkTracker::new(2, Duration::from_millis(100), None);
        assert_eq!(w.watermark(t0), None);
        w.observe(0, 1_000, t0);
        // partition 1 has not produced yet: it holds time back.
        assert_eq!(w.watermark(t0), None);
        w.observe(1, 500, t0);
        assert_eq!(w.watermark(t0), Some(400));
        w.observe(1, 2_000, t0);
        assert_eq!(w.watermark(t0), Some(900));
    }

    #[test]
    fn only_assigned_partitions_hold_time_back() {
        let t0 = Instant::now();
        let mut w = WatermarkTracker::new(4, Duration::from_millis(10), None);
        w.assign(&[1, 3], t0);
        w.observe(1, 1_000, t0);
        assert_eq!(w.watermark(t0), None, "partition 3 has not produced yet");
        w.observe(3, 500, t0);
        assert_eq!(w.watermark(t0), Some(490));
        // Partition 3 moves away; partition 0 arrives and holds time back.
        w.assign(&[0, 1], t0);
        assert_eq!(w.watermark(t0), None);
        w.observe(0, 2_000, t0);
        assert_eq!(w.watermark(t0), Some(990));
    }

    #[test]
    fn shared_times_hold_every_instance_back_by_a_moving_partition() {
        let t0 = Instant::now();
        let times = SharedPartitionTimes::default();
        let mut a = WatermarkTracker::new(2, Duration::ZERO, None).shared(times.clone());
        let mut b = WatermarkTracker::new(2, Duration::ZERO, None).shared(times.clone());
        a.assign(&[0], t0);
        b.assign(&[1], t0);
        a.observe(0, 1_000, t0);
        assert_eq!(a.watermark(t0), None, "partition 1 has not produced yet");
        b.observe(1, 9_000, t0);
        assert_eq!(a.watermark(t0), Some(1_000));
        assert_eq!(
            b.watermark(t0),
            Some(1_000),
            "b is held back by a's partition"
        );
        // Partition 0 leaves a and is not yet picked up by b: it still holds
        // both back (unshared, b would promise 9 000 and a nothing).
        a.assign(&[], t0);
        assert_eq!(a.watermark(t0), Some(1_000));
        assert_eq!(b.watermark(t0), Some(1_000));
        b.assign(&[0, 1], t0);
        b.observe(0, 5_000, t0);
        assert_eq!(b.watermark(t0), Some(5_000));
        assert_eq!(a.watermark(t0), Some(5_000));
    }

    #[test]
    fn idle_partition_stops_holding_time_back() {
        let t0 = Instant::now();
        let mut w = WatermarkTracker::new(2, Duration::ZERO, Some(Duration::from_secs(1)));
        w.observe(0, 100, t0);
        w.observe(1, 5_000, t0);
        assert_eq!(w.watermark(t0), Some(100));
        let later = t0 + Duration::from_secs(2);
        w.observe(1, 6_000, later);
        assert_eq!(
            w.watermark(later),
            Some(6_000),
            "idle partition 0 is skipped"
        );
    }
}
