//! The sending side of a task: one [`OutEdge`] per downstream operator.

use arrow::record_batch::RecordBatch;

use crate::channel::TaskSender;
use crate::error::{Result, RuntimeError};
use std::sync::Arc;

use crate::message::{Envelope, Message};
use crate::metrics::NodeMetrics;
use crate::partition::{HashPartitioner, Partitioning};

/// One edge from this task instance to every instance of one downstream operator.
pub(crate) struct OutEdge {
    /// Senders to each downstream instance, by instance index.
    pub senders: Vec<TaskSender>,
    /// The logical input index this edge has at the receiver.
    pub input: u16,
    /// This instance's channel index at the receiver.
    pub channel: u32,
    pub routing: Routing,
}

pub(crate) enum Routing {
    /// Always to this receiver instance.
    Fixed(usize),
    RoundRobin {
        next: usize,
    },
    Hash(HashPartitioner),
    /// By the batch's shard tag: shard `s` to instance `s % n`.
    Shard,
}

impl OutEdge {
    pub(crate) fn new(
        senders: Vec<TaskSender>,
        input: u16,
        channel: u32,
        partitioning: &Partitioning,
        instance: usize,
    ) -> Self {
        let n = senders.len();
        let routing = match partitioning {
            Partitioning::Forward => Routing::Fixed(instance % n),
            Partitioning::RoundRobin if n == 1 => Routing::Fixed(0),
            Partitioning::RoundRobin => Routing::RoundRobin { next: instance % n },
            Partitioning::Hash { .. } | Partitioning::Shard if n == 1 => Routing::Fixed(0),
            Partitioning::Shard => Routing::Shard,
            Partitioning::Hash { column, .. } => {
                Routing::Hash(HashPartitioner::new(column.clone(), n))
            }
        };
        Self {
            senders,
            input,
            channel,
            routing,
        }
    }

    /// Send to instance `idx`; the time spent waiting for room in a full
    /// channel is added to `blocked` (the clock is read only then).
    async fn send_to(
        &self,
        idx: usize,
        msg: Message,
        from: &str,
        blocked: Option<(&NodeMetrics, usize)>,
    ) -> Result<()> {
        let envelope = Envelope {
            input: self.input,
            channel: self.channel,
            msg,
        };
        let closed = || RuntimeError::ChannelClosed(from.to_string());
        match self.senders[idx].try_send(envelope) {
            Ok(()) => Ok(()),
            Err(async_channel::TrySendError::Closed(_)) => Err(closed()),
            Err(async_channel::TrySendError::Full(envelope)) => {
                let waited = std::time::Instant::now();
                let sent = self.senders[idx].send(envelope).await;
                if let Some((m, instance)) = blocked {
                    m.add_blocked(instance, waited.elapsed());
                }
                sent.map_err(|_| closed())
            }
        }
    }
}

/// Where a task sends what it produces. Batches are routed per edge;
/// watermarks, barriers and ends are broadcast to every receiver.
pub struct Output {
    pub(crate) node: String,
    pub(crate) edges: Vec<OutEdge>,
    /// Where time blocked on full channels is counted (backpressure).
    pub(crate) metrics: Option<Arc<NodeMetrics>>,
    /// This task's instance index.
    pub(crate) instance: usize,
}

impl Output {
    /// Whether anything is connected.
    pub fn is_connected(&self) -> bool {
        !self.edges.is_empty()
    }

    /// Send a batch downstream; waits while the receivers' channels are full.
    pub async fn send_batch(&mut self, batch: RecordBatch) -> Result<()> {
        self.send_tagged(batch, None).await
    }

    /// [`Output::send_batch`] for a batch whose records all come from source
    /// partition `shard` (the tag travels with every part of it).
    pub async fn send_tagged(
        &mut self,
        batch: RecordBatch,
        shard: Option<crate::shard::ShardTag>,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let blocked = self.metrics.as_deref().map(|m| (m, self.instance));
        for edge in &mut self.edges {
            // Cloning a batch clones Arcs to its columns, not the data.
            let b = batch.clone();
            match &mut edge.routing {
                Routing::Fixed(idx) => {
                    let idx = *idx;
                    edge.send_to(idx, Message::Batch(b, shard), &self.node, blocked)
                        .await?;
                }
                Routing::RoundRobin { next } => {
                    let idx = *next;
                    *next = (idx + 1) % edge.senders.len();
                    edge.send_to(idx, Message::Batch(b, shard), &self.node, blocked)
                        .await?;
                }
                Routing::Shard => {
                    let Some(s) = shard else {
                        return Err(RuntimeError::Internal(format!(
                            "{}: a batch without a source partition reached an operator whose state is sharded by partition",
                            self.node
                        )));
                    };
                    let idx = s.id as usize % edge.senders.len();
                    edge.send_to(idx, Message::Batch(b, shard), &self.node, blocked)
                        .await?;
                }
                Routing::Hash(p) => {
                    let parts = p.split(&b)?;
                    for (idx, part) in parts.into_iter().enumerate() {
                        if let Some(part) = part {
                            edge.send_to(idx, Message::Batch(part, shard), &self.node, blocked)
                                .await?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Send a control message (watermark, barrier, end) to every receiver.
    pub async fn broadcast(&mut self, msg: Message) -> Result<()> {
        let blocked = self.metrics.as_deref().map(|m| (m, self.instance));
        for edge in &self.edges {
            for idx in 0..edge.senders.len() {
                edge.send_to(idx, msg.clone(), &self.node, blocked).await?;
            }
        }
        Ok(())
    }
}
