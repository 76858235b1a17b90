//! Crash points for end-to-end tests, compiled only with the `test-hooks`
//! feature (which only the `shoal-tests` crate enables, so a `cargo test
//! --workspace` build of `shoal` has them and a release build does not).
//!
//! `SHOAL_TEST_ABORT_AFTER_MANIFEST=N`: abort the process right after the
//! manifest of the `N`-th checkpoint whose epoch brought rows to the sinks
//! is durable, and before any sink is told to commit that epoch — the crash
//! window between the two halves of the checkpoint commit (or after the
//! final checkpoint's manifest, when the run has fewer). It first waits
//! (up to 30 s) until the sinks committed every earlier epoch, so that no
//! earlier commit is cut in half: this is the window after one commit and
//! before the next, not a crash inside a sink's transaction.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::Metrics;

/// Sink rows seen at the previous manifest, and checkpoints with rows.
static SINK_ROWS: AtomicU64 = AtomicU64::new(0);
static WITH_ROWS: AtomicU64 = AtomicU64::new(0);

/// Called by the coordinator once manifest `id` is written.
pub(crate) fn after_manifest(
    id: u64,
    last: bool,
    metrics: &Metrics,
    sinks_committed: impl Fn() -> u64,
) {
    let Some(wanted) = std::env::var("SHOAL_TEST_ABORT_AFTER_MANIFEST")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    let rows = metrics.sink_records();
    let with_rows = rows > SINK_ROWS.swap(rows, Ordering::Relaxed)
        && WITH_ROWS.fetch_add(1, Ordering::Relaxed) + 1 == wanted;
    if with_rows || last {
        let waiting = std::time::Instant::now();
        while sinks_committed() + 1 < id && waiting.elapsed() < std::time::Duration::from_secs(30) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        eprintln!(
            "test hook: aborting after manifest {id} (checkpoint {wanted} with rows), before the sinks commit it"
        );
        std::process::abort();
    }
}
