//! The background flusher for [`crate::FsyncPolicy::Interval`]: one thread
//! per log directory, started on first need, that fsyncs partitions with
//! unsynced appends once their interval has passed. It holds only a weak
//! reference and exits when the log directory is dropped.

use std::sync::Weak;
use std::time::Duration;

use crate::catalog::Catalog;

/// Starts the flusher thread, ticking every `tick`.
pub(crate) fn spawn(catalog: Weak<Catalog>, tick: Duration) {
    let tick = tick.clamp(Duration::from_millis(5), Duration::from_millis(200));
    let spawned = std::thread::Builder::new()
        .name("shoal-log-flush".into())
        .spawn(move || {
            loop {
                std::thread::sleep(tick);
                let Some(catalog) = catalog.upgrade() else {
                    return;
                };
                for p in catalog.loaded_partitions() {
                    if let Err(e) = p.flush_if_due() {
                        tracing::warn!(error = %e, "background fsync failed");
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the fsync thread; interval syncs happen on append only");
    }
}
