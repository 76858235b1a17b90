//! Event-time watermarks at sources.
//!
//! A source tracks the largest event time seen per partition; its watermark
//! is the minimum over partitions of (max seen − allowed delay). A partition
//! with no data for `idle_timeout` stops holding event time back until it
//! produces again.

use std::time::{Duration, Instant};

use arrow::array::{Array, ArrowPrimitiveType, PrimitiveArray};
use arrow::compute::max;
use arrow::datatypes::{
    DataType, Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow::record_batch::RecordBatch;

/// Per-partition event-time tracking for one source instance.
#[derive(Debug)]
pub struct WatermarkTracker {
    max_delay_ms: i64,
    idle_timeout: Option<Duration>,
    partitions: Vec<(i64, Instant)>,
    /// Which partitions this instance reads (only they hold time back).
    assigned: Vec<bool>,
}

impl WatermarkTracker {
    /// A tracker for `partitions` partitions.
    pub fn new(partitions: usize, max_delay: Duration, idle_timeout: Option<Duration>) -> Self {
        let now = Instant::now();
        Self {
            max_delay_ms: max_delay.as_millis() as i64,
            idle_timeout,
            partitions: vec![(i64::MIN, now); partitions.max(1)],
            assigned: vec![true; partitions.max(1)],
        }
    }

    /// This instance now reads exactly `partitions` (a consumer-group
    /// assignment): the others no longer hold its watermark back. A newly
    /// assigned partition holds it back until it produces (or idles).
    pub fn assign(&mut self, partitions: &[usize], now: Instant) {
        let n = partitions.iter().copied().max().map_or(0, |m| m + 1);
        if n > self.partitions.len() {
            self.partitions.resize(n, (i64::MIN, now));
            self.assigned.resize(n, false);
        }
        for (p, a) in self.assigned.iter_mut().enumerate() {
            let now_assigned = partitions.contains(&p);
            if now_assigned && !*a {
                self.partitions[p].1 = now;
            }
            *a = now_assigned;
        }
    }

    /// Record that `partition` produced data with event times up to `max_ts`.
    pub fn observe(&mut self, partition: usize, max_ts: i64, now: Instant) {
        if partition >= self.partitions.len() {
            self.partitions.resize(partition + 1, (i64::MIN, now));
            self.assigned.resize(partition + 1, true);
        }
        let p = &mut self.partitions[partition];
        p.0 = p.0.max(max_ts);
        p.1 = now;
    }

    /// The current watermark, if any partition has produced data.
    pub fn watermark(&self, now: Instant) -> Option<i64> {
        let mine = || {
            self.partitions
                .iter()
                .zip(&self.assigned)
                .filter(|(_, a)| **a)
                .map(|(p, _)| p)
        };
        let active = mine().filter(|(_, seen)| match self.idle_timeout {
            Some(idle) => now.duration_since(*seen) < idle,
            None => true,
        });
        let min = active.map(|(ts, _)| *ts).min();
        let min = match min {
            Some(m) => m,
            // Every partition is idle: follow the most advanced one.
            None => mine().map(|(ts, _)| *ts).max()?,
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
