//! How connectors wait out an outage of an outside system (Postgres,
//! Redis): retry with a growing wait for [`RETRY_FOR`], then fail the job.

use std::time::Duration;

/// How long a connector retries an outside system that cannot be reached
/// (at start, for an epoch's commit, for a lookup) before the job fails.
pub const RETRY_FOR: Duration = Duration::from_secs(120);

/// The waits between attempts: 0.2 s, doubling, at most 5 s; the callers
/// stop after [`RETRY_FOR`].
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
