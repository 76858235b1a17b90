//! Exit codes: 0 success, 1 runtime failure, 2 bad input or usage.

use std::fmt;

/// A failure with the exit code it maps to.
pub enum Failure {
    /// Bad input (pipeline file, arguments): exit 2. Already rendered.
    BadInput(String),
    /// Something failed while running: exit 1.
    Runtime(anyhow::Error),
}

impl Failure {
    /// Print the failure on stderr and return the exit code.
    pub fn report(self) -> i32 {
        match self {
            Failure::BadInput(msg) => {
                eprintln!("{msg}");
                2
            }
            Failure::Runtime(e) => {
                eprintln!("error: {e:#}");
                1
            }
        }
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::BadInput(m) => write!(f, "BadInput({m})"),
            Failure::Runtime(e) => write!(f, "Runtime({e:#})"),
        }
    }
}

impl From<shoal_dsl::DslError> for Failure {
    fn from(e: shoal_dsl::DslError) -> Self {
        Failure::BadInput(e.render())
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(e)
    }
}

impl From<shoal_log::Error> for Failure {
    /// Usage errors (bad name, unknown topic or group, ...) are bad input
    /// (exit 2); conflicts, fencing, corruption and I/O are runtime failures
    /// (exit 1).
    fn from(e: shoal_log::Error) -> Self {
        match e.fault() {
            shoal_log::Fault::Usage => Failure::BadInput(format!("error: {e}")),
            _ => Failure::Runtime(e.into()),
        }
    }
}

/// The commands' result alias.
pub type CliResult<T = ()> = Result<T, Failure>;
