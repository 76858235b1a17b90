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
        SqlError::new(msg.to_string())
    }
}

impl From<arrow::error::ArrowError> for SqlError {
    fn from(e: arrow::error::ArrowError) -> Self {
        SqlError::new(e.to_string())
    }
}

/// The crate's result alias.
pub type Result<T, E = SqlError> = std::result::Result<T, E>;
