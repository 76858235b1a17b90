//! Records that could not be processed, with the reason.
//!
//! Any task can dead-letter a record: it is sent, with where it came from and
//! why, to the pipeline's dead-letter sink. Dead letters are rare, so they are
//! plain structs rather than Arrow batches; sinks write them as JSON lines.

use crate::error::{Result, RuntimeError};

/// One record that could not be processed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeadLetter {
    /// The node (source, transform) that rejected it.
    pub node: String,
    /// The partition it came from, when the source is partitioned.
    pub partition: Option<u32>,
    /// Its offset (log), line number (file) or sequence number.
    pub offset: Option<u64>,
    /// Why it was rejected, e.g. `late`, `bad json: ...`.
    pub reason: String,
    /// The raw record (or as much of it as was readable).
    pub record: String,
}

impl DeadLetter {
    /// The dead letter as a JSON object line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a dead letter always serialises")
    }
}

/// Where a task sends its dead letters. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    tx: async_channel::Sender<DeadLetter>,
}

impl DeadLetters {
    pub(crate) fn channel(capacity: usize) -> (Self, async_channel::Receiver<DeadLetter>) {
        let (tx, rx) = async_channel::bounded(capacity);
        (Self { tx }, rx)
    }

    /// Send one dead letter; waits if the dead-letter sink is behind.
    pub async fn send(&self, letter: DeadLetter) -> Result<()> {
        self.tx
            .send(letter)
            .await
            .map_err(|_| RuntimeError::ChannelClosed("dead-letter".into()))
    }

    /// Send one dead letter from blocking code.
    pub fn send_blocking(&self, letter: DeadLetter) -> Result<()> {
        self.tx
            .send_blocking(letter)
            .map_err(|_| RuntimeError::ChannelClosed("dead-letter".into()))
    }
}

/// Writes dead letters somewhere (a file, stdout).
pub trait DeadLetterSink: Send + 'static {
    /// Write one dead letter.
    fn write(&mut self, letter: &DeadLetter) -> Result<()>;
    /// Flush and make everything written visible.
    fn finish(&mut self) -> Result<()>;
}
