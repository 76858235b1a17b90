//! The `generator` source: deterministic synthetic data.
//!
//! Record `i` of a generator with seed `s` is a pure function of `(s, i)`, so
//! the same seed and count give the same records whatever the parallelism:
//! the index space is cut into chunks of [`CHUNK`] records, instance `j` of
//! `n` generates chunks `j, j + n, j + 2n, …`.

mod connector;
mod nexmark;
mod transactions;

pub use connector::{GeneratorConfig, GeneratorProfile, RawGenerator};
pub use nexmark::nexmark_schema;
pub use transactions::{TransactionGenerator, generator_schema, transactions_schema};

/// Records per deterministic chunk.
pub const CHUNK: u64 = 1024;
