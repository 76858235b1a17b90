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
//! No query plan is ever built per batch. Constructs that need state
//! (aggregation, windows, joins, sorting) are rejected at plan time with an
//! error that names the construct.

mod context;
mod error;
mod filter;
mod over;
mod query;

pub use context::sql_context;
pub use error::{Result, SqlError};
pub use filter::{FilterOperator, compile_filter};
pub use query::{CompiledQuery, QueryOperator, compile_query};
