//! Errors from planning SQL.

/// A query or expression that cannot run as a stream.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SqlError {
    /// What is wrong.
    pub message: String,
    /// How to fix it, when known.
    pub hint: Option<String>,
}

impl SqlError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl From<datafusion::error::DataFusionError> for SqlError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        // DataFusion prefixes errors with their kind; users need the message.
        let msg = e.strip_backtrace();
        let msg = msg
            .strip_prefix("Error during planning: ")
            .or_else(|| msg.strip_prefix("SQL error: "))
            .or_else(|| msg.strip_prefix("Schema error: "))
            .unwrap_or(&msg);
        if let Some(e) = not_grouped(msg) {
            return e;
        }
        SqlError::new(msg.to_string())
    }
}

/// DataFusion's "Column in SELECT must be in GROUP BY … While expanding
/// wildcard, column "t.ts" must appear in the GROUP BY clause …" (raw
/// interval structs included, and no wildcard in sight: seen for
/// `date_bin(…, ts)` selected next to a `tumble` GROUP BY), said plainly.
fn not_grouped(msg: &str) -> Option<SqlError> {
    if !msg.starts_with("Column in SELECT must be in GROUP BY") {
        return None;
    }
    let (_, rest) = msg.split_once("column \"")?;
    let (qualified, _) = rest.split_once('"')?;
    let column = qualified.rsplit('.').next().unwrap_or(qualified);
    Some(
        SqlError::new(format!(
            "column `{column}` is used outside an aggregate but is not in GROUP BY"
        ))
        .with_hint(format!(
            "every selected expression must be in GROUP BY or inside an aggregate (COUNT, SUM, MAX(...)); \
             for the window's time select the window call itself (tumble({column}, INTERVAL '1' MINUTE) AS window_start); \
             a finer bucket such as date_bin(INTERVAL '10' SECOND, {column}) goes in GROUP BY too"
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_column_outside_group_by_is_named_plainly() {
        let df = datafusion::error::DataFusionError::Plan(
            "Column in SELECT must be in GROUP BY or an aggregate function: While expanding wildcard, \
             column \"src.ts\" must appear in the GROUP BY clause or must be part of an aggregate function, \
             currently only \"tumble(src.ts,IntervalMonthDayNano(\"IntervalMonthDayNano { months: 0 }\")), count(Int64(1))\" \
             appears in the SELECT clause satisfies this requirement"
                .into(),
        );
        let e = SqlError::from(df).to_string();
        assert!(
            e.contains("column `ts` is used outside an aggregate"),
            "{e}"
        );
        assert!(
            !e.contains("wildcard") && !e.contains("IntervalMonthDayNano"),
            "{e}"
        );
        let other = SqlError::from(datafusion::error::DataFusionError::Plan("x".into()));
        assert_eq!(other.to_string(), "x");
    }
}

impl From<arrow::error::ArrowError> for SqlError {
    fn from(e: arrow::error::ArrowError) -> Self {
        SqlError::new(e.to_string())
    }
}

/// The crate's result alias.
pub type Result<T, E = SqlError> = std::result::Result<T, E>;
