//! Bounded channels between tasks.
//!
//! Every task has one bounded input channel that all its upstream task
//! instances send into; messages are tagged ([`Envelope`]) with the logical
//! input and the upstream channel so the [`InputGate`](crate::InputGate) can
//! count ends, track per-channel watermarks and align barriers.

use crate::message::Envelope;

/// Sending half of a task's input channel.
pub(crate) type TaskSender = async_channel::Sender<Envelope>;
/// Receiving half of a task's input channel.
pub(crate) type TaskReceiver = async_channel::Receiver<Envelope>;

/// A bounded channel holding at most `capacity` messages (batches).
pub(crate) fn bounded(capacity: usize) -> (TaskSender, TaskReceiver) {
    async_channel::bounded(capacity.max(1))
}
