//! The receiving side of a task: turns the tagged messages of all upstream
//! channels into one ordered stream of [`InputEvent`]s.
//!
//! * **Ends** are counted: the gate yields [`InputEvent::EndOfData`] once
//!   every upstream channel said it has no more records (barriers may still
//!   follow), and [`InputEvent::End`] once every upstream channel has ended.
//! * **Watermarks** are tracked per channel; the gate yields one when the
//!   minimum over all channels advances. A channel that said it is
//!   [idle](Message::Idle) is left out of the minimum until its next
//!   watermark or batch; when every channel is idle the gate yields
//!   [`InputEvent::Idle`] once (and no watermark).
//! * **Barriers** are aligned: once barrier `n` arrived on a channel, later
//!   messages from that channel are held back until barrier `n` arrived on
//!   every channel; then the gate yields [`InputEvent::Barrier`] and replays
//!   what it held.

use std::collections::VecDeque;

use arrow::record_batch::RecordBatch;

use crate::channel::TaskReceiver;
use crate::message::{Envelope, Message};

/// What a task sees next on its input.
#[derive(Debug)]
pub enum InputEvent {
    /// A batch from logical input `input`.
    Batch {
        /// Index into the operator's inputs.
        input: u16,
        /// The records.
        batch: RecordBatch,
        /// The source partition they come from (see [`crate::shard`]).
        shard: Option<crate::shard::ShardTag>,
    },
    /// The minimum watermark over all inputs advanced to this value.
    Watermark(i64),
    /// Every input channel that has not ended is idle.
    Idle,
    /// Barrier `n` arrived on every input channel.
    Barrier(u64),
    /// No input channel will deliver another record (yielded once, before
    /// any barrier that follows the last record, and always before `End`).
    EndOfData,
    /// Every input channel has ended.
    End,
}

/// Merges a task's upstream channels; see the module docs.
pub struct InputGate {
    rx: TaskReceiver,
    watermarks: Vec<i64>,
    /// Channels that said they are idle.
    idle: Vec<bool>,
    /// Whether [`InputEvent::Idle`] was yielded since the last activity.
    idle_reported: bool,
    ended: Vec<bool>,
    n_ended: usize,
    drained: Vec<bool>,
    n_drained: usize,
    /// Events decided but not yet yielded (at most two: alignment + drain).
    pending: VecDeque<InputEvent>,
    current_watermark: i64,
    /// Barrier being aligned, which channels delivered it, and when the
    /// first one did.
    aligning: Option<(u64, Vec<bool>, std::time::Instant)>,
    /// How long the last completed alignment took (first barrier in to
    /// the last).
    last_alignment: std::time::Duration,
    held: VecDeque<Envelope>,
    replay: VecDeque<Envelope>,
}

impl InputGate {
    pub(crate) fn new(rx: TaskReceiver, channels: usize) -> Self {
        Self {
            rx,
            watermarks: vec![i64::MIN; channels],
            idle: vec![false; channels],
            idle_reported: false,
            ended: vec![false; channels],
            n_ended: 0,
            drained: vec![false; channels],
            n_drained: 0,
            pending: VecDeque::new(),
            current_watermark: i64::MIN,
            aligning: None,
            last_alignment: std::time::Duration::ZERO,
            held: VecDeque::new(),
            replay: VecDeque::new(),
        }
    }

    /// How long the last barrier took to align: from its first arrival on
    /// a channel until every channel delivered it (data of the channels
    /// that had delivered it was held meanwhile).
    pub fn last_alignment(&self) -> std::time::Duration {
        self.last_alignment
    }

    /// The number of upstream channels.
    pub fn channels(&self) -> usize {
        self.ended.len()
    }

    /// The current (minimum) input watermark.
    pub fn watermark(&self) -> i64 {
        self.current_watermark
    }

    /// The next event; `None` only if every sender vanished without an `End`
    /// (an upstream task failed).
    pub async fn next(&mut self) -> Option<InputEvent> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Some(ev);
            }
            if self.n_ended == self.ended.len() && self.held.is_empty() && self.replay.is_empty() {
                return Some(InputEvent::End);
            }
            let env = match self.replay.pop_front() {
                Some(env) => env,
                None => self.rx.recv().await.ok()?,
            };
            if let Some(ev) = self.accept(env) {
                return Some(ev);
            }
        }
    }

    fn accept(&mut self, env: Envelope) -> Option<InputEvent> {
        let ch = env.channel as usize;
        if let Some((_, arrived, _)) = &self.aligning
            && arrived[ch]
        {
            self.held.push_back(env);
            return None;
        }
        match env.msg {
            Message::Batch(batch, shard) => {
                self.active(ch);
                Some(InputEvent::Batch {
                    input: env.input,
                    batch,
                    shard,
                })
            }
            Message::Watermark(t) => {
                self.active(ch);
                if t > self.watermarks[ch] {
                    self.watermarks[ch] = t;
                }
                self.advance_watermark()
            }
            Message::Idle => {
                self.idle[ch] = true;
                self.advance_watermark()
            }
            Message::Barrier(id) => self.on_barrier(ch, id),
            Message::EndOfData => {
                if let Some(ev) = self.drain(ch) {
                    return Some(ev);
                }
                self.advance_watermark()
            }
            Message::End => {
                if !self.ended[ch] {
                    self.ended[ch] = true;
                    self.n_ended += 1;
                }
                // End implies end of data (a sender may skip EndOfData).
                if let Some(ev) = self.drain(ch) {
                    self.pending.push_back(ev);
                }
                // An ended channel will never deliver the barrier being aligned.
                if let Some(ev) = self.complete_alignment_if_ready() {
                    self.pending.push_front(ev);
                }
                if let Some(ev) = self.pending.pop_front() {
                    return Some(ev);
                }
                if self.n_ended == self.ended.len() {
                    return None; // `next` yields End once held messages are replayed
                }
                self.advance_watermark()
            }
        }
    }

    /// Channel `ch` has no more records; `EndOfData` once all have none.
    fn drain(&mut self, ch: usize) -> Option<InputEvent> {
        if self.drained[ch] {
            return None;
        }
        self.drained[ch] = true;
        self.n_drained += 1;
        // A drained channel no longer holds back event time.
        self.watermarks[ch] = i64::MAX;
        (self.n_drained == self.drained.len()).then_some(InputEvent::EndOfData)
    }

    /// Channel `ch` delivered a record or a watermark: it is not idle.
    fn active(&mut self, ch: usize) {
        if self.idle[ch] {
            self.idle[ch] = false;
            self.idle_reported = false;
        }
    }

    fn advance_watermark(&mut self) -> Option<InputEvent> {
        let live = self
            .watermarks
            .iter()
            .zip(&self.idle)
            .filter(|(_, idle)| !**idle)
            .map(|(w, _)| *w);
        let Some(min) = live.min() else {
            // Every channel is idle: say so once, hold event time where it is.
            if self.idle_reported {
                return None;
            }
            self.idle_reported = true;
            return Some(InputEvent::Idle);
        };
        // All channels ended: End itself carries "+inf"; no watermark needed.
        if min > self.current_watermark && min != i64::MAX {
            self.current_watermark = min;
            return Some(InputEvent::Watermark(min));
        }
        None
    }

    fn on_barrier(&mut self, ch: usize, id: u64) -> Option<InputEvent> {
        match &mut self.aligning {
            None => {
                let mut arrived = vec![false; self.ended.len()];
                arrived[ch] = true;
                self.aligning = Some((id, arrived, std::time::Instant::now()));
            }
            Some((current, arrived, _)) => {
                if *current != id {
                    tracing::warn!(
                        expected = *current,
                        got = id,
                        "barrier out of order; ignoring"
                    );
                    return None;
                }
                arrived[ch] = true;
            }
        }
        self.complete_alignment_if_ready()
    }

    fn complete_alignment_if_ready(&mut self) -> Option<InputEvent> {
        let (id, arrived, first) = self.aligning.as_ref()?;
        let waiting = arrived
            .iter()
            .zip(&self.ended)
            .filter(|(a, e)| !**a && !**e)
            .count();
        if waiting > 0 {
            return None;
        }
        let id = *id;
        self.last_alignment = first.elapsed();
        self.aligning = None;
        // Replay what was held, before anything newer from the channel.
        while let Some(env) = self.held.pop_back() {
            self.replay.push_front(env);
        }
        Some(InputEvent::Barrier(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::bounded;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(v: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![v]))]).unwrap()
    }

    fn env(channel: u32, msg: Message) -> Envelope {
        Envelope {
            input: 0,
            channel,
            msg,
        }
    }

    #[tokio::test]
    async fn idle_channels_do_not_hold_event_time_back() {
        let (tx, rx) = bounded(16);
        let mut gate = InputGate::new(rx, 3);
        tx.send(env(0, Message::Watermark(10))).await.unwrap();
        tx.send(env(1, Message::Idle)).await.unwrap();
        tx.send(env(2, Message::Idle)).await.unwrap();
        // Channels 1 and 2 idle: channel 0 alone decides.
        assert!(matches!(gate.next().await, Some(InputEvent::Watermark(10))));
        tx.send(env(0, Message::Idle)).await.unwrap();
        assert!(matches!(gate.next().await, Some(InputEvent::Idle)));
        // Channel 2 comes back behind: time does not go back, but it holds
        // the next advance.
        tx.send(env(2, Message::Watermark(5))).await.unwrap();
        tx.send(env(0, Message::Watermark(30))).await.unwrap();
        tx.send(env(2, Message::Watermark(20))).await.unwrap();
        assert!(matches!(gate.next().await, Some(InputEvent::Watermark(20))));
        tx.send(env(0, Message::End)).await.unwrap();
        tx.send(env(1, Message::End)).await.unwrap();
        tx.send(env(2, Message::End)).await.unwrap();
        assert!(matches!(gate.next().await, Some(InputEvent::EndOfData)));
        assert!(matches!(gate.next().await, Some(InputEvent::End)));
    }

    #[tokio::test]
    async fn watermark_is_min_over_channels_and_end_needs_all() {
        let (tx, rx) = bounded(16);
        let mut gate = InputGate::new(rx, 2);
        tx.send(env(0, Message::Watermark(10))).await.unwrap();
        tx.send(env(1, Message::Watermark(5))).await.unwrap();
        tx.send(env(1, Message::Watermark(20))).await.unwrap();
        tx.send(env(0, Message::End)).await.unwrap();
        tx.send(env(1, Message::End)).await.unwrap();
        assert!(matches!(gate.next().await, Some(InputEvent::Watermark(5))));
        assert!(matches!(gate.next().await, Some(InputEvent::Watermark(10))));
        // channel 0 ended: the watermark follows channel 1 alone.
        assert!(matches!(gate.next().await, Some(InputEvent::Watermark(20))));
        assert!(matches!(gate.next().await, Some(InputEvent::EndOfData)));
        assert!(matches!(gate.next().await, Some(InputEvent::End)));
    }

    #[tokio::test]
    async fn alignment_time_runs_from_the_first_barrier_to_the_last() {
        let (tx, rx) = bounded(16);
        let mut gate = InputGate::new(rx, 2);
        tx.send(env(0, Message::Barrier(1))).await.unwrap();
        let late = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            late.send(env(1, Message::Barrier(1))).await.unwrap();
        });
        assert!(matches!(gate.next().await, Some(InputEvent::Barrier(1))));
        assert!(
            gate.last_alignment() >= std::time::Duration::from_millis(30),
            "{:?}",
            gate.last_alignment()
        );
        // A single channel aligns at once.
        let (tx, rx) = bounded(16);
        let mut gate = InputGate::new(rx, 1);
        tx.send(env(0, Message::Barrier(2))).await.unwrap();
        assert!(matches!(gate.next().await, Some(InputEvent::Barrier(2))));
        assert!(gate.last_alignment() < std::time::Duration::from_millis(30));
    }

    #[tokio::test]
    async fn barrier_alignment_holds_back_post_barrier_data() {
        let (tx, rx) = bounded(16);
        let mut gate = InputGate::new(rx, 2);
        tx.send(env(0, Message::Barrier(1))).await.unwrap();
        tx.send(env(0, Message::Batch(batch(100), None)))
            .await
            .unwrap(); // after barrier on ch0
        tx.send(env(1, Message::Batch(batch(1), None)))
            .await
            .unwrap(); // before barrier on ch1
        tx.send(env(1, Message::Barrier(1))).await.unwrap();
        tx.send(env(0, Message::End)).await.unwrap();
        tx.send(env(1, Message::End)).await.unwrap();
        let mut seen = Vec::new();
        while let Some(ev) = gate.next().await {
            match ev {
                InputEvent::Batch { batch, .. } => {
                    let v = batch
                        .column(0)
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .unwrap()
                        .value(0);
                    seen.push(format!("b{v}"));
                }
                InputEvent::Barrier(id) => seen.push(format!("B{id}")),
                InputEvent::Watermark(_) | InputEvent::Idle => {}
                InputEvent::EndOfData => seen.push("D".into()),
                InputEvent::End => {
                    seen.push("E".into());
                    break;
                }
            }
        }
        assert_eq!(seen, vec!["b1", "B1", "b100", "D", "E"]);
    }

    #[tokio::test]
    async fn ended_channel_does_not_block_alignment() {
        let (tx, rx) = bounded(16);
        let mut gate = InputGate::new(rx, 2);
        tx.send(env(1, Message::End)).await.unwrap();
        tx.send(env(0, Message::Barrier(7))).await.unwrap();
        tx.send(env(0, Message::End)).await.unwrap();
        assert!(matches!(gate.next().await, Some(InputEvent::Barrier(7))));
        assert!(matches!(gate.next().await, Some(InputEvent::EndOfData)));
        assert!(matches!(gate.next().await, Some(InputEvent::End)));
    }

    #[tokio::test]
    async fn end_of_data_once_all_drained_and_barriers_still_align_after_it() {
        let (tx, rx) = bounded(16);
        let mut gate = InputGate::new(rx, 2);
        tx.send(env(0, Message::Watermark(5))).await.unwrap();
        tx.send(env(0, Message::EndOfData)).await.unwrap();
        tx.send(env(1, Message::Batch(batch(1), None)))
            .await
            .unwrap();
        tx.send(env(0, Message::Barrier(3))).await.unwrap();
        tx.send(env(1, Message::EndOfData)).await.unwrap();
        tx.send(env(1, Message::Barrier(3))).await.unwrap();
        tx.send(env(0, Message::End)).await.unwrap();
        tx.send(env(1, Message::End)).await.unwrap();
        // Channel 0 drained: event time follows channel 1, which has none yet.
        assert!(matches!(gate.next().await, Some(InputEvent::Batch { .. })));
        // The barrier from channel 0 is aligned with channel 1's, which
        // comes after channel 1's end of data.
        assert!(matches!(gate.next().await, Some(InputEvent::EndOfData)));
        assert!(matches!(gate.next().await, Some(InputEvent::Barrier(3))));
        assert!(matches!(gate.next().await, Some(InputEvent::End)));
    }
}
