//! How connectors wait out an outage of an outside system (Postgres,
//! Redis, a schema registry): retry with a growing wait for
//! [`retry_for`], then fail the job.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The default of [`retry_for`]: 2 minutes.
pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(120);

/// The pipeline's `outage_timeout`, in ms (one pipeline per process).
static RETRY_FOR_MS: AtomicU64 = AtomicU64::new(DEFAULT_RETRY_FOR.as_millis() as u64);

/// How long a connector retries an outside system that cannot be reached
/// (at start, for an epoch's commit, for a lookup, for a schema) before the
/// job fails: the pipeline's `outage_timeout`, default
/// [`DEFAULT_RETRY_FOR`].
pub fn retry_for() -> Duration {
    Duration::from_millis(RETRY_FOR_MS.load(Ordering::Relaxed))
}

/// Set [`retry_for`] for this process (the job's `outage_timeout`).
pub fn set_retry_for(d: Duration) {
    RETRY_FOR_MS.store(d.as_millis() as u64, Ordering::Relaxed);
}

/// The waits between attempts: 0.2 s, doubling, at most 5 s; the callers
/// stop after [`retry_for`].
pub fn backoff() -> impl Iterator<Item = Duration> {
    std::iter::successors(Some(Duration::from_millis(200)), |d| {
        Some((*d * 2).min(Duration::from_secs(5)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_seconds() {
        let waits: Vec<u64> = backoff().take(7).map(|d| d.as_millis() as u64).collect();
        assert_eq!(waits, [200, 400, 800, 1600, 3200, 5000, 5000]);
    }
}
