//! The state of one key of an OVER window: the rows still inside some
//! frame, and one accumulator per aggregate.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::AggSpec;
use super::accumulator::{Acc, Val};
use super::frame::Frame;

/// Rows of one key that may still be inside a frame, and the aggregates.
///
/// Rows are numbered by a per-key sequence number in processing order;
/// `order` and `vals` hold the retained rows (`vals` has one value per
/// aggregate per row), the oldest at the front with number `first_seq`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeyState {
    next_seq: u64,
    first_seq: u64,
    order: VecDeque<i64>,
    vals: VecDeque<Val>,
    /// Per aggregate: the number of the first row in its frame.
    starts: Vec<u64>,
    accs: Vec<Acc>,
    /// The largest ORDER BY value seen (for dropping idle keys).
    pub(crate) last_order: i64,
}

impl KeyState {
    pub(crate) fn new(aggs: &[AggSpec]) -> Self {
        Self {
            next_seq: 0,
            first_seq: 0,
            order: VecDeque::new(),
            vals: VecDeque::new(),
            starts: vec![0; aggs.len()],
            accs: aggs.iter().map(|a| Acc::new(a.func, a.int_arg)).collect(),
            last_order: i64::MIN,
        }
    }

    /// Whether the state can be dropped: no aggregate keeps anything once
    /// every frame slid past the key's rows.
    pub(crate) fn expired(&self, aggs: &[AggSpec], watermark: i64) -> bool {
        aggs.iter().all(|a| match a.frame {
            Frame::Range(width) => self.last_order < watermark.saturating_sub(width),
            _ => false,
        })
    }

    /// Process a group of rows of this key sharing one ORDER BY value
    /// `order` (peers; RANGE frames include all of them). `vals` holds one
    /// value per aggregate per row, row after row. Writes one output value
    /// per row per aggregate into `out[agg]`.
    pub(crate) fn process_group(
        &mut self,
        aggs: &[AggSpec],
        order: i64,
        vals: &[Val],
        out: &mut [Vec<Val>],
    ) {
        let n = aggs.len();
        let rows = vals.len() / n;
        let group_first = self.next_seq;
        self.last_order = self.last_order.max(order);
        for vals in vals.chunks_exact(n) {
            self.order.push_back(order);
            self.vals.extend(vals.iter().copied());
            let seq = self.next_seq;
            self.next_seq += 1;
            // ROWS frames: the frame ends at this very row.
            for (a, spec) in aggs.iter().enumerate() {
                if spec.frame.is_range() {
                    continue;
                }
                self.accs[a].add(vals[a], seq);
                self.slide(a, spec.frame, order, seq);
                out[a].push(self.accs[a].value(spec.func, spec.int_arg));
            }
        }
        // RANGE frames: the frame ends after the last peer.
        let last = self.next_seq - 1;
        for (a, spec) in aggs.iter().enumerate() {
            if !spec.frame.is_range() {
                continue;
            }
            for (i, vals) in vals.chunks_exact(n).enumerate() {
                self.accs[a].add(vals[a], group_first + i as u64);
            }
            self.slide(a, spec.frame, order, last);
            let v = self.accs[a].value(spec.func, spec.int_arg);
            out[a].extend(std::iter::repeat_n(v, rows));
        }
        self.evict(aggs, n);
    }

    /// Move aggregate `a`'s frame start past rows that left its frame.
    fn slide(&mut self, a: usize, frame: Frame, order: i64, seq: u64) {
        let n = self.accs.len();
        loop {
            let start = self.starts[a];
            if start > seq {
                break;
            }
            let out_of_frame = match frame {
                Frame::RowsUnbounded | Frame::RangeUnbounded => false,
                Frame::Rows(k) => seq - start > k,
                Frame::Range(width) => {
                    let i = (start - self.first_seq) as usize;
                    self.order[i] < order.saturating_sub(width)
                }
            };
            if !out_of_frame {
                break;
            }
            let i = (start - self.first_seq) as usize;
            self.accs[a].remove(self.vals[i * n + a], start);
            self.starts[a] += 1;
        }
    }

    /// Forget rows that every sliding frame has passed; unbounded frames
    /// need no rows at all (their accumulators hold everything).
    fn evict(&mut self, aggs: &[AggSpec], n: usize) {
        let keep_from = aggs
            .iter()
            .zip(&self.starts)
            .filter(|(a, _)| a.frame.is_sliding())
            .map(|(_, &s)| s)
            .min()
            .unwrap_or(self.next_seq);
        while self.first_seq < keep_from {
            self.order.pop_front();
            self.vals.drain(..n);
            self.first_seq += 1;
        }
    }

    /// Rows retained (for the state-size metric).
    pub(crate) fn rows(&self) -> usize {
        self.order.len()
    }
}
