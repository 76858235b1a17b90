//! Redis, through the `redis` crate's synchronous client (calls are made
//! off the tokio workers, see [`conn`]).
//!
//! * [`RedisSink`] writes rows as hashes; with checkpoints each epoch is
//!   staged at the barrier and applied atomically, once, when the
//!   checkpoint completes (see [`sink`]).
//! * [`check_columns`] is the plan-time check of a sink's key template and
//!   fields against its input.

pub mod conn;
mod connector;
mod row;
pub mod sink;

use arrow::datatypes::Schema;
use connector::RedisSinkConfig as RedisSinkSpec;

pub use conn::RedisConn;
pub use connector::{RawRedisSink, RedisSinkConfig};
pub use row::SpecProblem;
pub use sink::{RedisSink, RedisSinkTask, SinkKeys};

/// Check the sink's key template and fields against its input: the YAML key
/// a problem is about, the message and a hint.
pub fn check_columns(schema: &Schema, spec: &RedisSinkSpec) -> Result<(), SpecProblem> {
    row::RowEncoder::new(spec, schema).map(|_| ())
}
