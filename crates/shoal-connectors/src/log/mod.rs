//! The `log` connector: the embedded partitioned log (`shoal-log`) as a
//! source (each instance a consumer-group member) and as a sink (keyed
//! appends, murmur2-partitioned like Kafka).

mod connector;
mod key;
mod sink;
mod source;

pub use connector::{LogIsolation, LogSinkConfig, LogSourceConfig, RawLogSink, RawLogSource};
pub use key::KeyEncoder;
pub use sink::LogSink;
pub use source::{LogSource, RunPartitions};

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use shoal_runtime::RuntimeError;

/// Counts, per topic, the log-sink instances of this pipeline still writing
/// it. A log source with `stop_at_end` on such a topic waits for the count to
/// reach zero before taking the end offsets it stops at — so one file can hold
/// a generator → log flow and a log → … flow.
#[derive(Debug, Clone, Default)]
pub struct TopicWriters(Arc<Mutex<HashMap<String, Arc<AtomicUsize>>>>);

impl TopicWriters {
    /// Register `n` more writers of `topic`.
    pub fn add(&self, topic: &str, n: usize) {
        let mut map = self.0.lock().expect("topic writers lock");
        map.entry(topic.to_string())
            .or_default()
            .fetch_add(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// The writer count of `topic`, if this pipeline writes it.
    pub fn get(&self, topic: &str) -> Option<Arc<AtomicUsize>> {
        self.0
            .lock()
            .expect("topic writers lock")
            .get(topic)
            .cloned()
    }
}

/// A log error as a runtime error, with what was being done.
pub(crate) fn log_err(context: &str, e: shoal_log::Error) -> RuntimeError {
    use shoal_log::Fault;
    match e.fault() {
        Fault::Io => RuntimeError::External(format!("{context}: {e}")),
        _ => RuntimeError::User(format!("{context}: {e}")),
    }
}
