//! The time-window functions `tumble`, `hop` and `session`, registered with
//! DataFusion so a query using them plans like any other.
//!
//! Each returns the **start** of the row's window as `timestamp(ms)` (with
//! the input's time zone). In a streaming `GROUP BY` they are not evaluated
//! row by row: the window-aggregate operator recognises the call and assigns
//! rows to windows itself (a `hop` row belongs to `size / slide` windows).
//!
//! * `tumble(ts, INTERVAL '1' MINUTE)` — also evaluates per row (it is
//!   `date_bin`), so a batch query with it gives the same windows;
//! * `hop(ts, INTERVAL slide, INTERVAL size)` and `session(ts, INTERVAL gap)`
//!   — only meaningful as a `GROUP BY` key of a `sql` transform; evaluated
//!   per row they are an error.

use std::sync::Arc;

use arrow::array::{Array, TimestampMillisecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// Which time window a `GROUP BY` uses, with its sizes in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// Fixed, non-overlapping windows of `size`.
    Tumble {
        /// Window length.
        size: i64,
    },
    /// Windows of `size` starting every `slide`.
    Hop {
        /// Distance between window starts.
        slide: i64,
        /// Window length.
        size: i64,
    },
    /// Per-key activity periods separated by at least `gap` of silence.
    Session {
        /// Inactivity that closes a session.
        gap: i64,
    },
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct WindowFunction {
    name: &'static str,
    signature: Signature,
}

impl WindowFunction {
    fn new(name: &'static str, args: usize) -> Self {
        Self {
            name,
            signature: Signature::any(args, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for WindowFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match &arg_types[0] {
            DataType::Timestamp(_, tz) => {
                Ok(DataType::Timestamp(TimeUnit::Millisecond, tz.clone()))
            }
            other => plan_err!(
                "{}() takes an event-time timestamp column first, got {other}",
                self.name
            ),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if self.name != "tumble" {
            return exec_err!(
                "{}() only works as a GROUP BY key of a streaming `sql` transform",
                self.name
            );
        }
        let size = match &args.args[1] {
            ColumnarValue::Scalar(s) => interval_ms(s)?,
            ColumnarValue::Array(_) => return exec_err!("tumble() needs a constant INTERVAL"),
        };
        let ts = args.args[0].to_array(args.number_rows)?;
        let ms = cast(&ts, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
        let ms = ms
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .expect("cast to timestamp(ms)");
        let out: TimestampMillisecondArray = ms.unary(|t| t.div_euclid(size) * size);
        let tz = match args.return_type() {
            DataType::Timestamp(_, tz) => tz.clone(),
            _ => None,
        };
        Ok(ColumnarValue::Array(Arc::new(out.with_timezone_opt(tz))))
    }
}

/// A positive `INTERVAL` literal in milliseconds (months are not fixed
/// lengths and are refused).
pub(crate) fn interval_ms(v: &ScalarValue) -> Result<i64> {
    let ms = match v {
        ScalarValue::IntervalMonthDayNano(Some(i)) if i.months == 0 => {
            i.days as i64 * 86_400_000 + i.nanoseconds / 1_000_000
        }
        ScalarValue::IntervalDayTime(Some(i)) => i.days as i64 * 86_400_000 + i.milliseconds as i64,
        ScalarValue::IntervalMonthDayNano(Some(_)) | ScalarValue::IntervalYearMonth(_) => {
            return plan_err!("window sizes in months or years are not fixed; use days");
        }
        other => {
            return plan_err!(
                "expected an INTERVAL literal such as INTERVAL '1' MINUTE, got {other}"
            );
        }
    };
    if ms <= 0 {
        return plan_err!("a window interval must be at least 1 ms, got {ms} ms");
    }
    Ok(ms)
}

/// If `expr` is a call of one of the window functions, its kind and the
/// event-time argument.
pub(crate) fn window_call(expr: &Expr) -> Option<Result<(WindowKind, &Expr)>> {
    let Expr::ScalarFunction(f) = expr else {
        return None;
    };
    let name = f.func.name();
    if !matches!(name, "tumble" | "hop" | "session") {
        return None;
    }
    let literal = |i: usize| -> Result<i64> {
        match f.args.get(i) {
            Some(Expr::Literal(v, _)) => interval_ms(v),
            Some(other) => plan_err!("{name}() needs INTERVAL literals, got {other}"),
            None => plan_err!("{name}() is missing an argument"),
        }
    };
    let kind = (|| -> Result<WindowKind> {
        match name {
            "tumble" => Ok(WindowKind::Tumble { size: literal(1)? }),
            "hop" => {
                let (slide, size) = (literal(1)?, literal(2)?);
                if size < slide {
                    return plan_err!(
                        "hop(ts, slide, size): size ({size} ms) is shorter than slide ({slide} ms)"
                    );
                }
                Ok(WindowKind::Hop { slide, size })
            }
            _ => Ok(WindowKind::Session { gap: literal(1)? }),
        }
    })();
    Some(kind.map(|k| (k, &f.args[0])))
}

/// Register `tumble`, `hop` and `session` with `ctx`.
pub fn register_window_functions(ctx: &SessionContext) {
    for (name, args) in [("tumble", 2), ("hop", 3), ("session", 2)] {
        ctx.register_udf(ScalarUDF::new_from_impl(WindowFunction::new(name, args)));
    }
}
