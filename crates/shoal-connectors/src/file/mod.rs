//! The `file` connector: a source reading JSON lines or CSV, and a sink
//! writing them with atomic commits.

mod connector;
mod sink;
mod source;

pub use connector::{FileSinkConfig, FileSourceConfig, RawFileSink, RawFileSource};
pub use sink::{FileSink, committed_files};
pub use source::{FileSource, file_source_schema};
