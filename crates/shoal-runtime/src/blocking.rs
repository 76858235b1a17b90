//! Blocking work inside a task without stalling the tokio worker it runs on.

/// Runs `f`, which may block (a sink's commit waiting on a database, a
/// lookup's round trip to a store, decoding a large state shard), so that
/// it does not hold up the other tasks of this tokio worker: on a
/// multi-thread runtime through `block_in_place`, which hands the worker's
/// queue to another thread for the duration; elsewhere (a current-thread
/// runtime in tests, no runtime at all) directly.
pub fn off_worker<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::off_worker;

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_blocking_call_does_not_starve_the_workers_other_tasks() {
        // One worker: if the blocking call held it, the spawned task could
        // not run until the call returned, and the call waits for the task.
        let (tx, rx) = std::sync::mpsc::channel();
        let other = tokio::spawn(async move { tx.send(7).unwrap() });
        let got = off_worker(|| rx.recv_timeout(std::time::Duration::from_secs(30)));
        assert_eq!(got, Ok(7));
        other.await.unwrap();
    }

    #[test]
    fn runs_directly_outside_a_runtime() {
        assert_eq!(off_worker(|| 3), 3);
    }
}
