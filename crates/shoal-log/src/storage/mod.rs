//! Storage: partitions made of segment files with a sparse offset index.
//!
//! * [`segment`]: one `.log` file (header, entries, positioned reads, scans).
//! * [`index`]: the sparse `.index` file beside each segment.
//! * [`partition`]: the segment list, the single writer, recovery, retention.
//! * [`flusher`]: the background thread (interval fsyncs, periodic retention).
//!
//! The entry format is in [`crate::record`].

pub mod flusher;
pub mod index;
pub mod partition;
pub mod segment;
pub(crate) mod txn_view;
pub mod verify;

pub use partition::{PartitionInfo, RetentionReport, SegmentInfo};
pub use verify::{Damage, Repair};
