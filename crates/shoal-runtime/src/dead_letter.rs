//! Records that could not be processed, with the reason.
//!
//! Any task can dead-letter a record: it is sent, with where it came from and
//! why, to the pipeline's dead-letter sink. Dead letters are rare, so they are
//! plain structs rather than Arrow batches; sinks write them as JSON lines.
//!
//! # Exactly once, like any sink output
//!
//! In a checkpointed job a dead letter belongs to the epoch its record was
//! read in. Every letter carries `after`: the id of the last checkpoint
//! barrier its task had passed when it sent the letter (the restored
//! checkpoint's id at start). So checkpoint `c` covers exactly the letters
//! with `after < c`, whichever task sent them. Before a task acknowledges
//! barrier `c` it asks the dead-letter task to make everything it sent so far
//! durable ([`DeadLetterSink::sync`]; only when it sent something since its
//! last barrier, so a job without dead letters pays nothing); the channel
//! keeps each task's messages in order, so when checkpoint `c` completes every
//! letter it covers is staged on disk. The dead-letter task then publishes
//! them ([`DeadLetterSink::commit`]), and a restarted job publishes what the
//! restored checkpoint covers and drops the rest, which the replay sends
//! again ([`DeadLetterSink::recover`]).

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

/// What tasks send to the dead-letter task.
pub(crate) enum ToDeadLetters {
    /// A letter of the epoch after checkpoint `after`.
    Letter { after: u64, letter: DeadLetter },
    /// Make everything received so far durable, then answer.
    Sync(tokio::sync::oneshot::Sender<Result<()>>),
}

/// Where a task sends its dead letters. Each task holds its own clone, which
/// tracks the checkpoint barriers that task has passed.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    tx: async_channel::Sender<ToDeadLetters>,
    /// The last checkpoint barrier this task passed.
    after: u64,
    /// Letters were sent since that barrier.
    unsynced: bool,
}

impl std::fmt::Debug for ToDeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ToDeadLetters::Letter { after, letter } => f
                .debug_struct("Letter")
                .field("after", after)
                .field("letter", letter)
                .finish(),
            ToDeadLetters::Sync(_) => f.write_str("Sync"),
        }
    }
}

impl DeadLetters {
    /// A channel to the dead-letter task; `restored` is the checkpoint the
    /// job restored (0: none).
    pub(crate) fn channel(
        capacity: usize,
        restored: u64,
    ) -> (Self, async_channel::Receiver<ToDeadLetters>) {
        let (tx, rx) = async_channel::bounded(capacity);
        (
            Self {
                tx,
                after: restored,
                unsynced: false,
            },
            rx,
        )
    }

    /// Send one dead letter; waits if the dead-letter sink is behind.
    pub async fn send(&mut self, letter: DeadLetter) -> Result<()> {
        self.unsynced = true;
        self.tx
            .send(ToDeadLetters::Letter {
                after: self.after,
                letter,
            })
            .await
            .map_err(|_| RuntimeError::ChannelClosed("dead-letter".into()))
    }

    /// This task reached checkpoint barrier `id`: make the letters it sent
    /// before it durable (before the task acknowledges the barrier); later
    /// letters belong to the next epoch.
    pub(crate) async fn barrier(&mut self, id: u64) -> Result<()> {
        if self.unsynced {
            let (reply, done) = tokio::sync::oneshot::channel();
            self.tx
                .send(ToDeadLetters::Sync(reply))
                .await
                .map_err(|_| RuntimeError::ChannelClosed("dead-letter".into()))?;
            done.await
                .map_err(|_| RuntimeError::ChannelClosed("dead-letter".into()))??;
            self.unsynced = false;
        }
        self.after = self.after.max(id);
        Ok(())
    }
}

/// Writes dead letters somewhere (a file, stderr, the log).
///
/// A sink that only implements [`DeadLetterSink::write`] and
/// [`DeadLetterSink::finish`] shows each letter at once (at least once
/// across failures); a transactional one stages letters and publishes them
/// with the checkpoint that covers them (see the module docs).
pub trait DeadLetterSink: Send + 'static {
    /// Write (stage) one dead letter of the epoch after checkpoint `after`.
    fn write(&mut self, after: u64, letter: &DeadLetter) -> Result<()>;

    /// Make everything written so far durable.
    fn sync(&mut self) -> Result<()> {
        Ok(())
    }

    /// Checkpoint `id` completed: publish the letters written with
    /// `after < id`. Idempotent.
    fn commit(&mut self, _id: u64) -> Result<()> {
        Ok(())
    }

    /// Start of a checkpointed run restored from checkpoint `restored`
    /// (`None`: from nothing): publish the staged letters it covers, drop
    /// the others, and take back published letters it does not cover (a
    /// restore point older than the newest checkpoint, see
    /// `shoal_plan::restore`).
    fn recover(&mut self, _restored: Option<u64>) -> Result<()> {
        Ok(())
    }

    /// End of a run without checkpoints: publish everything.
    fn finish(&mut self) -> Result<()>;
}
