//! # shoal-sql
//!
//! SQL text → streaming operators on DataFusion.
//!
//! DataFusion parses, plans and type-checks each query **once**, when the
//! pipeline is planned. Shoal then walks the logical plan and compiles it into
//! operators that run on every batch:
//!
//! * [`compile_filter`] turns a `filter` transform's `where:` expression into
//!   a [`FilterOperator`] (one physical boolean expression);
//! * [`compile_query`] turns a `sql` transform's query into a
//!   [`QueryOperator`]: a chain of filter and projection stages, each a set of
//!   physical expressions (scalar functions, `CASE`, casts, UDFs).
//!
//! No query plan is ever built per batch. Event-time windowed aggregation
//! (`GROUP BY tumble(…) | hop(…) | session(…)`, see [`window`]) keeps its
//! state in the operator and emits when the watermark passes a window's end.
//! Interval joins of two streams ([`join`](IntervalJoinSpec)) and lookup
//! joins against a file ([`lookup`]) are compiled too. Other constructs that
//! need unbounded state (sorting, `GROUP BY` without a window) are rejected
//! at plan time with an error that names the construct.

mod blob_state;
mod codec;
mod context;
mod dedup;
mod error;
mod filter;
mod flink;
mod join;
mod late;
pub mod lookup;
mod over;
mod query;
mod stream_checks;
#[cfg(test)]
mod test_support;
pub mod window;

pub use context::sql_context;
pub use dedup::{DedupOperator, DedupSpec};
pub use error::{Result, SqlError};
pub use filter::{FilterOperator, compile_filter};
pub use join::IntervalJoinSpec;
pub use lookup::{CacheConfig, LookupStore, LookupTable, LookupTableSpec};
pub use query::{CompiledQuery, QueryOperator, compile_query, compile_query_with};
