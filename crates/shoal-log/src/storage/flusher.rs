//! The background maintenance thread of a writable log directory: started
//! when the first topic is opened, it fsyncs partitions whose
//! [`crate::FsyncPolicy::Interval`] has passed (every 20 ms tick) and
//! applies retention to the partitions this process writes every
//! 30 s, so idle partitions age out too (retention also runs
//! on every segment roll). It holds only a weak reference and exits when the
//! log directory is dropped.

use std::sync::Weak;
use std::time::{Duration, Instant};

use crate::catalog::Catalog;

/// Tick of the fsync check.
const TICK: Duration = Duration::from_millis(20);
/// How often retention runs in the background.
pub(crate) const RETENTION_EVERY: Duration = Duration::from_secs(30);

/// Starts the maintenance thread.
pub(crate) fn spawn(catalog: Weak<Catalog>) {
    let spawned = std::thread::Builder::new()
        .name("shoal-log-maint".into())
        .spawn(move || {
            let mut last_retention = Instant::now();
            loop {
                std::thread::sleep(TICK);
                let Some(catalog) = catalog.upgrade() else { return };
                for p in catalog.loaded_partitions() {
                    if let Err(e) = p.flush_if_due() {
                        tracing::warn!(error = %e, "background fsync failed");
                    }
                }
                if last_retention.elapsed() >= RETENTION_EVERY {
                    last_retention = Instant::now();
                    for t in catalog.loaded_topics() {
                        if let Err(e) = t.enforce_retention() {
                            tracing::warn!(topic = %t.meta.name, error = %e, "background retention failed");
                        }
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the maintenance thread; interval syncs and retention run on append/roll only");
    }
}
