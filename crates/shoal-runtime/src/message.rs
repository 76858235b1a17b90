//! What flows on the edges of the operator graph.

use arrow::record_batch::RecordBatch;

/// One message on an edge.
#[derive(Debug, Clone)]
pub enum Message {
    /// A batch of records, tagged with the source partition (shard) all
    /// its records come from, when the source is partitioned by key (see
    /// [`crate::shard`]).
    Batch(RecordBatch, Option<crate::shard::ShardTag>),
    /// Event time has advanced to this many milliseconds since the epoch:
    /// no record with an earlier event time is expected any more.
    Watermark(i64),
    /// The sender has nothing to read for now (a source instance that owns
    /// no partitions): until its next watermark or batch it does not hold
    /// event time back downstream.
    Idle,
    /// Checkpoint barrier for this epoch.
    Barrier(u64),
    /// The sender has no more records. Barriers may still follow (the
    /// checkpoints that commit the tail of the output), then [`Message::End`].
    EndOfData,
    /// The sender has no more messages.
    End,
}

/// A message plus where it came from, as seen by the receiving task.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Which logical input of the receiving operator (index into its `inputs`).
    pub input: u16,
    /// Which upstream channel (unique per upstream task instance and edge).
    pub channel: u32,
    /// The message.
    pub msg: Message,
}
