//! Window frames an OVER window may use on a stream, translated from
//! DataFusion's `WindowFrame`.

use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{WindowFrame, WindowFrameBound, WindowFrameUnits};

/// Which earlier rows of the key belong to the current row's frame. Every
/// frame ends at the current row; RANGE frames include its peers (rows of
/// the key with the same ORDER BY value), as in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Frame {
    /// `ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW`.
    RowsUnbounded,
    /// `ROWS BETWEEN n PRECEDING AND CURRENT ROW`.
    Rows(u64),
    /// `RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW` (the default
    /// frame when the window has an ORDER BY).
    RangeUnbounded,
    /// `RANGE BETWEEN d PRECEDING AND CURRENT ROW`, `d` in the ORDER BY
    /// column's units (milliseconds, microseconds, ... or plain integers).
    Range(i64),
}

impl Frame {
    /// Whether the frame includes the current row's peers.
    pub(crate) fn is_range(self) -> bool {
        matches!(self, Frame::RangeUnbounded | Frame::Range(_))
    }

    /// Whether rows leave the frame again (so they must be kept).
    pub(crate) fn is_sliding(self) -> bool {
        matches!(self, Frame::Rows(_) | Frame::Range(_))
    }

    /// Translate a DataFusion frame over an ORDER BY column of type `order`.
    /// `Err` carries a description of what is not supported.
    pub(crate) fn from_datafusion(f: &WindowFrame, order: &DataType) -> Result<Self, String> {
        if f.end_bound != WindowFrameBound::CurrentRow {
            return Err(format!(
                "a frame ending at {} (frames end at CURRENT ROW on a stream)",
                show_bound(&f.end_bound)
            ));
        }
        let WindowFrameBound::Preceding(start) = &f.start_bound else {
            return Err(format!(
                "a frame starting at {}",
                show_bound(&f.start_bound)
            ));
        };
        match f.units {
            WindowFrameUnits::Rows => {
                if start.is_null() {
                    return Ok(Frame::RowsUnbounded);
                }
                match start {
                    ScalarValue::UInt64(Some(n)) => Ok(Frame::Rows(*n)),
                    ScalarValue::Int64(Some(n)) if *n >= 0 => Ok(Frame::Rows(*n as u64)),
                    other => Err(format!("a ROWS frame of `{other}` rows")),
                }
            }
            WindowFrameUnits::Range => {
                if start.is_null() {
                    return Ok(Frame::RangeUnbounded);
                }
                range_width(start, order).map(Frame::Range)
            }
            WindowFrameUnits::Groups => Err("a GROUPS frame".into()),
        }
    }
}

/// A frame bound as SQL (`INTERVAL '1' MINUTE PRECEDING`, `3 FOLLOWING`),
/// not DataFusion's debug form of its value.
fn show_bound(b: &WindowFrameBound) -> String {
    let (v, side) = match b {
        WindowFrameBound::CurrentRow => return "CURRENT ROW".into(),
        WindowFrameBound::Preceding(v) => (v, "PRECEDING"),
        WindowFrameBound::Following(v) => (v, "FOLLOWING"),
    };
    let value = match v {
        v if v.is_null() => "UNBOUNDED".to_owned(),
        ScalarValue::IntervalMonthDayNano(Some(i)) if i.months == 0 => {
            let ns = i128::from(i.days) * 86_400_000_000_000 + i128::from(i.nanoseconds);
            const UNITS: [(i128, &str); 5] = [
                (86_400_000_000_000, "DAY"),
                (3_600_000_000_000, "HOUR"),
                (60_000_000_000, "MINUTE"),
                (1_000_000_000, "SECOND"),
                (1_000_000, "MILLISECOND"),
            ];
            match UNITS.iter().find(|(n, _)| ns != 0 && ns % n == 0) {
                Some((n, unit)) => format!("INTERVAL '{}' {unit}", ns / n),
                None => format!("INTERVAL '{ns}' NANOSECOND"),
            }
        }
        other => other.to_string(),
    };
    format!("`{value} {side}`")
}

/// The width of a `RANGE … PRECEDING` bound in the units of the ORDER BY
/// column.
fn range_width(bound: &ScalarValue, order: &DataType) -> Result<i64, String> {
    let per_ms: Option<i64> = match order {
        DataType::Timestamp(TimeUnit::Second, _) => None,
        DataType::Timestamp(TimeUnit::Millisecond, _) => Some(1),
        DataType::Timestamp(TimeUnit::Microsecond, _) => Some(1_000),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => Some(1_000_000),
        _ => None,
    };
    let nanos: Option<i128> = match bound {
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => {
            Some(v.days as i128 * 86_400_000_000_000 + v.nanoseconds as i128)
        }
        ScalarValue::IntervalDayTime(Some(v)) => {
            Some((v.days as i128 * 86_400_000 + v.milliseconds as i128) * 1_000_000)
        }
        ScalarValue::DurationMillisecond(Some(v)) => Some(*v as i128 * 1_000_000),
        _ => None,
    };
    match (order, nanos, bound) {
        (DataType::Timestamp(TimeUnit::Second, _), Some(n), _) => Ok((n / 1_000_000_000) as i64),
        (DataType::Timestamp(..), Some(n), _) => {
            Ok((n * per_ms.unwrap_or(1) as i128 / 1_000_000) as i64)
        }
        (DataType::Int64 | DataType::Int32, None, b) => match b {
            ScalarValue::Int64(Some(v)) => Ok(*v),
            ScalarValue::UInt64(Some(v)) => Ok(*v as i64),
            ScalarValue::Int32(Some(v)) => Ok(*v as i64),
            other => Err(format!("a RANGE bound of `{other}` over an integer column")),
        },
        (_, _, b) => Err(format!(
            "a RANGE bound of `{b}` over a {order} column (use INTERVAL 'n' MINUTE over a timestamp, without months)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::common::arrow::datatypes::IntervalMonthDayNano;

    #[test]
    fn interval_bounds_convert_to_column_units() {
        let hour = ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(
            0,
            0,
            3_600_000_000_000,
        )));
        let ms = DataType::Timestamp(TimeUnit::Millisecond, None);
        let us = DataType::Timestamp(TimeUnit::Microsecond, None);
        assert_eq!(range_width(&hour, &ms), Ok(3_600_000));
        assert_eq!(range_width(&hour, &us), Ok(3_600_000_000));
        let month = ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(1, 0, 0)));
        assert!(range_width(&month, &ms).is_err());
        assert_eq!(
            range_width(&ScalarValue::UInt64(Some(5)), &DataType::Int64),
            Ok(5)
        );
    }
}
