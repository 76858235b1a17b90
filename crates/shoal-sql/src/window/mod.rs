//! Event-time windowed aggregation: `GROUP BY tumble(…) | hop(…) | session(…)`
//! plus keys, with any DataFusion aggregate.
//!
//! [`functions`] registers the window functions so queries plan;
//! [`spec`] compiles the logical `Aggregate` node; [`aggregate`] runs it;
//! [`state`] holds (and snapshots) what is open.

mod aggregate;
pub(crate) mod functions;
pub(crate) mod spec;
pub(crate) mod state;
#[cfg(test)]
mod tests;

pub use functions::{WindowKind, register_window_functions};
pub use spec::WindowAggSpec;
pub use state::WindowAggState;
