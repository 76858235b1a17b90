//! Storage: partitions made of segment files with a sparse offset index.
//!
//! * [`segment`]: one `.log` file (header, entries, positioned reads, scans).
//! * [`index`]: the sparse `.index` file beside each segment.
//! * [`partition`]: the segment list, the single writer, recovery, retention.
//! * [`flusher`]: the background thread (interval fsyncs, periodic retention).
//!
//! The entry format is in [`crate::record`].

pub(crate) mod flusher;
pub(crate) mod index;
pub(crate) mod partition;
pub(crate) mod segment;

pub use partition::{PartitionInfo, RetentionReport, SegmentInfo};
