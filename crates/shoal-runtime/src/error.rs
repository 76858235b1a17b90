//! The runtime's error type, grouped by who is at fault.

use arrow::error::ArrowError;

/// Who is at fault for an error, and so what a user should do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorDomain {
    /// The pipeline or its input is wrong: fix the file or the data.
    User,
    /// Something outside Shoal failed (disk, network, broker): may be retried.
    External,
    /// A bug in Shoal: please report it.
    Internal,
}

/// An error raised while running a job.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A configuration or input problem the user can fix.
    #[error("{0}")]
    User(String),
    /// An I/O failure talking to the outside world.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An Arrow kernel failed.
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
    /// A DataFusion expression failed to evaluate.
    #[error("datafusion: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// An external system failed.
    #[error("{0}")]
    External(String),
    /// A downstream task went away (it failed or the job was cancelled).
    #[error("channel closed: downstream of {0} stopped")]
    ChannelClosed(String),
    /// A bug in Shoal.
    #[error("internal error (this is a bug in Shoal, please report it): {0}")]
    Internal(String),
    /// An error tagged with the operator it happened in.
    #[error("in {operator}: {source}")]
    InOperator {
        /// The node id.
        operator: String,
        /// The error.
        #[source]
        source: Box<RuntimeError>,
    },
}

impl RuntimeError {
    /// Who is at fault.
    pub fn domain(&self) -> ErrorDomain {
        match self {
            RuntimeError::User(_) => ErrorDomain::User,
            RuntimeError::Io { .. } | RuntimeError::External(_) => ErrorDomain::External,
            RuntimeError::Arrow(_) | RuntimeError::DataFusion(_) => ErrorDomain::User,
            RuntimeError::ChannelClosed(_) | RuntimeError::Internal(_) => ErrorDomain::Internal,
            RuntimeError::InOperator { source, .. } => source.domain(),
        }
    }

    /// Whether retrying the same action may succeed.
    pub fn is_retryable(&self) -> bool {
        self.domain() == ErrorDomain::External
    }

    /// Wrap an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        RuntimeError::Io {
            context: context.into(),
            source,
        }
    }

    /// Tag the error with the operator it happened in.
    pub fn in_operator(self, operator: &str) -> Self {
        match self {
            e @ RuntimeError::InOperator { .. } => e,
            e => RuntimeError::InOperator {
                operator: operator.to_string(),
                source: Box::new(e),
            },
        }
    }
}

/// The runtime's result alias.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
