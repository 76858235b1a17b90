//! Incremental accumulators for OVER windows: rows enter at the frame's end
//! and leave (oldest first) at its start, so every aggregate is updated in
//! O(1) amortised per row instead of rescanning the frame.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

/// One argument value. Strings are represented by a 64-bit hash (only
/// `COUNT(DISTINCT …)` looks at them).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) enum Val {
    Null,
    I(i64),
    F(f64),
}

impl Val {
    /// A key for distinct counting: equal values give equal keys.
    fn distinct_key(self) -> Option<u64> {
        match self {
            Val::Null => None,
            Val::I(v) => Some(v as u64),
            // -0.0 and 0.0 are one value.
            Val::F(v) => Some(if v == 0.0 { 0 } else { v.to_bits() } ^ 0x8000_0000_0000_0001),
        }
    }
}

/// A value kept by MIN/MAX: integers stay integers (an `i64` above 2^53
/// has no exact `f64`). In binary state files it is a tagged enum; in JSON
/// (format-1 state files) a bare number, so state written when values were
/// kept as `f64` still reads (as [`Num::F`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    I(i64),
    F(f64),
}

/// [`Num`]'s binary form.
#[derive(Serialize, Deserialize)]
enum Tagged {
    I(i64),
    F(f64),
}

/// [`Num`]'s JSON form.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Untagged {
    I(i64),
    F(f64),
}

impl Serialize for Num {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (*self, s.is_human_readable()) {
            (Num::I(x), true) => Untagged::I(x).serialize(s),
            (Num::F(x), true) => Untagged::F(x).serialize(s),
            (Num::I(x), false) => Tagged::I(x).serialize(s),
            (Num::F(x), false) => Tagged::F(x).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(if d.is_human_readable() {
            match Untagged::deserialize(d)? {
                Untagged::I(x) => Num::I(x),
                Untagged::F(x) => Num::F(x),
            }
        } else {
            match Tagged::deserialize(d)? {
                Tagged::I(x) => Num::I(x),
                Tagged::F(x) => Num::F(x),
            }
        })
    }
}

impl Num {
    fn of(v: Val) -> Option<Self> {
        match v {
            Val::Null => None,
            Val::I(x) => Some(Num::I(x)),
            Val::F(x) => Some(Num::F(x)),
        }
    }

    /// `self <= other` (`self >= other` when `max` is false): a kept value
    /// `self` that a newer `other` makes useless.
    fn dominated_by(self, other: Num, max: bool) -> bool {
        let ord = match (self, other) {
            (Num::I(a), Num::I(b)) => a.partial_cmp(&b),
            (a, b) => a.as_f64().partial_cmp(&b.as_f64()),
        };
        match ord {
            Some(std::cmp::Ordering::Equal) => true,
            Some(std::cmp::Ordering::Less) => max,
            Some(std::cmp::Ordering::Greater) => !max,
            None => false,
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::I(x) => x as f64,
            Num::F(x) => x,
        }
    }
}

/// Which aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Function {
    Count,
    CountDistinct,
    Sum,
    Avg,
    Min,
    Max,
    /// `ROW_NUMBER()`: the row's position in its key (every row counts).
    RowNumber,
    /// `LAG(x, n)`: `x` of the row `n` rows before (NULL before the first).
    Lag(u32),
}

/// The running state of one aggregate over one key's frame.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Acc {
    Count(i64),
    /// Sum of integers (exact) or floats, and the number of non-null values.
    Sum {
        int: i64,
        float: f64,
        n: i64,
    },
    /// Monotonic deque of (sequence number, value): the front is the
    /// extreme of the frame.
    Extreme {
        max: bool,
        deque: VecDeque<(u64, Num)>,
        int: bool,
    },
    /// Value → occurrences in the frame.
    Distinct(HashMap<u64, u32>),
    /// Rows seen (`ROW_NUMBER`).
    Rows(i64),
    /// The last `offset + 1` values, the current row's last (`LAG`).
    Lag {
        offset: u32,
        recent: VecDeque<Val>,
    },
}

impl Function {
    /// Functions of the row's position (`ROW_NUMBER`, `LAG`): they ignore
    /// the frame and see rows one by one, peers included, in processing
    /// order.
    pub(crate) fn frame_free(self) -> bool {
        matches!(self, Function::RowNumber | Function::Lag(_))
    }
}

impl Acc {
    /// A fresh accumulator for `f` (`int`: the argument is an integer).
    pub(crate) fn new(f: Function, int: bool) -> Self {
        match f {
            Function::Count => Acc::Count(0),
            Function::CountDistinct => Acc::Distinct(HashMap::new()),
            Function::Sum | Function::Avg => Acc::Sum {
                int: 0,
                float: 0.0,
                n: 0,
            },
            Function::Min | Function::Max => Acc::Extreme {
                max: f == Function::Max,
                deque: VecDeque::new(),
                int,
            },
            Function::RowNumber => Acc::Rows(0),
            Function::Lag(offset) => Acc::Lag {
                offset,
                recent: VecDeque::new(),
            },
        }
    }

    /// The row with sequence number `seq` entered the frame.
    pub(crate) fn add(&mut self, v: Val, seq: u64) {
        match self {
            Acc::Count(n) => {
                if v != Val::Null {
                    *n += 1;
                }
            }
            Acc::Sum { int, float, n } => match v {
                Val::Null => {}
                Val::I(x) => {
                    *int = int.wrapping_add(x);
                    *n += 1;
                }
                Val::F(x) => {
                    *float += x;
                    *n += 1;
                }
            },
            Acc::Extreme { max, deque, .. } => {
                let Some(x) = Num::of(v) else { return };
                // Drop values the new one dominates: they can never be the
                // extreme again while it is in the frame.
                while let Some(&(_, back)) = deque.back() {
                    if back.dominated_by(x, *max) {
                        deque.pop_back();
                    } else {
                        break;
                    }
                }
                deque.push_back((seq, x));
            }
            Acc::Distinct(counts) => {
                if let Some(k) = v.distinct_key() {
                    *counts.entry(k).or_insert(0) += 1;
                }
            }
            Acc::Rows(n) => *n += 1,
            Acc::Lag { offset, recent } => {
                recent.push_back(v);
                while recent.len() > *offset as usize + 1 {
                    recent.pop_front();
                }
            }
        }
    }

    /// The oldest row of the frame (sequence number `seq`) left it.
    pub(crate) fn remove(&mut self, v: Val, seq: u64) {
        match self {
            Acc::Count(n) => {
                if v != Val::Null {
                    *n -= 1;
                }
            }
            Acc::Sum { int, float, n } => match v {
                Val::Null => {}
                Val::I(x) => {
                    *int = int.wrapping_sub(x);
                    *n -= 1;
                }
                Val::F(x) => {
                    *float -= x;
                    *n -= 1;
                    if *n == 0 {
                        // Start the next frame free of rounding residue.
                        *float = 0.0;
                    }
                }
            },
            Acc::Extreme { deque, .. } => {
                if deque.front().is_some_and(|&(s, _)| s == seq) {
                    deque.pop_front();
                }
            }
            Acc::Distinct(counts) => {
                if let Some(k) = v.distinct_key()
                    && let Some(c) = counts.get_mut(&k)
                {
                    *c -= 1;
                    if *c == 0 {
                        counts.remove(&k);
                    }
                }
            }
            // Their frame never slides (see `Function::frame_free`).
            Acc::Rows(_) | Acc::Lag { .. } => {}
        }
    }

    /// The aggregate's current value for function `f`.
    pub(crate) fn value(&self, f: Function, int_arg: bool) -> Val {
        match (self, f) {
            (Acc::Count(n), _) => Val::I(*n),
            (Acc::Distinct(c), _) => Val::I(c.len() as i64),
            (Acc::Sum { n: 0, .. }, _) => Val::Null,
            (Acc::Sum { int, float, n }, Function::Avg) => {
                let total = if int_arg { *int as f64 } else { *float };
                Val::F(total / *n as f64)
            }
            (Acc::Sum { int, float, .. }, _) => {
                if int_arg {
                    Val::I(*int)
                } else {
                    Val::F(*float)
                }
            }
            (Acc::Rows(n), _) => Val::I(*n),
            (Acc::Lag { offset, recent }, _) => {
                let o = *offset as usize;
                if recent.len() > o {
                    recent[recent.len() - 1 - o]
                } else {
                    Val::Null
                }
            }
            (Acc::Extreme { deque, int, .. }, _) => match deque.front() {
                None => Val::Null,
                Some(&(_, Num::I(x))) => Val::I(x),
                Some(&(_, Num::F(x))) if *int => Val::I(x as i64),
                Some(&(_, Num::F(x))) => Val::F(x),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_min_max_sum_and_distinct_follow_the_frame() {
        let vals = [5.0, 3.0, 8.0, 3.0, 1.0, 9.0];
        let mut min = Acc::new(Function::Min, false);
        let mut max = Acc::new(Function::Max, false);
        let mut sum = Acc::new(Function::Sum, false);
        let mut distinct = Acc::new(Function::CountDistinct, false);
        // A frame of the last 3 rows.
        for (seq, &x) in vals.iter().enumerate() {
            let seq = seq as u64;
            for a in [&mut min, &mut max, &mut sum, &mut distinct] {
                a.add(Val::F(x), seq);
                if seq >= 3 {
                    a.remove(Val::F(vals[seq as usize - 3]), seq - 3);
                }
            }
            let lo = seq.saturating_sub(2) as usize;
            let frame = &vals[lo..=seq as usize];
            let want_min = frame.iter().cloned().fold(f64::MAX, f64::min);
            let want_max = frame.iter().cloned().fold(f64::MIN, f64::max);
            let want_sum: f64 = frame.iter().sum();
            let mut uniq = frame.to_vec();
            uniq.sort_by(f64::total_cmp);
            uniq.dedup();
            assert_eq!(min.value(Function::Min, false), Val::F(want_min));
            assert_eq!(max.value(Function::Max, false), Val::F(want_max));
            assert_eq!(sum.value(Function::Sum, false), Val::F(want_sum));
            assert_eq!(
                distinct.value(Function::CountDistinct, false),
                Val::I(uniq.len() as i64)
            );
        }
    }

    /// Issue 15, bug 3: MIN/MAX of int64 used to go through f64 and could
    /// return a value that is not in the data.
    #[test]
    fn int64_extremes_are_exact_and_old_float_state_still_reads() {
        let mut max = Acc::new(Function::Max, true);
        let mut min = Acc::new(Function::Min, true);
        let vals = [
            9_007_199_254_740_993,
            9_007_199_254_740_995,
            9_007_199_254_740_994,
        ];
        for (seq, v) in vals.into_iter().enumerate() {
            max.add(Val::I(v), seq as u64);
            min.add(Val::I(v), seq as u64);
        }
        assert_eq!(
            max.value(Function::Max, true),
            Val::I(9_007_199_254_740_995)
        );
        assert_eq!(
            min.value(Function::Min, true),
            Val::I(9_007_199_254_740_993)
        );
        // The first value leaves the frame: the minimum is the third.
        min.remove(Val::I(vals[0]), 0);
        assert_eq!(
            min.value(Function::Min, true),
            Val::I(9_007_199_254_740_994)
        );
        // State written with f64 values reads back.
        let old = serde_json::json!({"Extreme": {"max": true, "deque": [[0, 5.0], [1, 3.0]], "int": true}});
        let old: Acc = serde_json::from_value(old).unwrap();
        assert_eq!(old.value(Function::Max, true), Val::I(5));
        let new: Acc = serde_json::from_value(serde_json::to_value(&max).unwrap()).unwrap();
        assert_eq!(
            new.value(Function::Max, true),
            Val::I(9_007_199_254_740_995)
        );
        // And through the binary state format.
        let new: Acc = postcard::from_bytes(&postcard::to_stdvec(&max).unwrap()).unwrap();
        assert_eq!(
            new.value(Function::Max, true),
            Val::I(9_007_199_254_740_995)
        );
    }

    #[test]
    fn lag_looks_back_by_position_and_row_number_counts_every_row() {
        let mut lag = Acc::new(Function::Lag(2), true);
        let mut rn = Acc::new(Function::RowNumber, true);
        let mut got = Vec::new();
        for (seq, v) in [Val::I(1), Val::Null, Val::I(3), Val::I(4)]
            .into_iter()
            .enumerate()
        {
            lag.add(v, seq as u64);
            rn.add(v, seq as u64);
            got.push((
                lag.value(Function::Lag(2), true),
                rn.value(Function::RowNumber, true),
            ));
        }
        assert_eq!(
            got,
            [
                (Val::Null, Val::I(1)),
                (Val::Null, Val::I(2)),
                (Val::I(1), Val::I(3)),
                (Val::Null, Val::I(4)),
            ]
        );
    }

    #[test]
    fn nulls_are_skipped_and_an_empty_sum_is_null() {
        let mut sum = Acc::new(Function::Avg, true);
        let mut count = Acc::new(Function::Count, true);
        sum.add(Val::Null, 0);
        count.add(Val::Null, 0);
        assert_eq!(sum.value(Function::Avg, true), Val::Null);
        assert_eq!(count.value(Function::Count, true), Val::I(0));
        sum.add(Val::I(3), 1);
        sum.add(Val::I(4), 2);
        assert_eq!(sum.value(Function::Avg, true), Val::F(3.5));
        assert_eq!(sum.value(Function::Sum, true), Val::I(7));
    }
}
