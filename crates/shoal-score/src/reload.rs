//! [`ReloadingModel`]: a [`Model`] that follows changes of its file.
//!
//! A background thread polls the file's metadata (modification time,
//! length and, on Unix, inode) every [`ReloadOptions::poll_interval`]. When
//! the metadata has changed and then stayed the same for one more interval
//! (so a file still being written is not read half-way), the file is loaded
//! and checked:
//!
//! 1. it must parse as the running model's format;
//! 2. it must be compatible with the running model
//!    ([`Model::check_compatible`]: same feature count, same output
//!    columns);
//! 3. the caller's [`ReloadOptions::validate`] hook, if any, must accept it.
//!
//! Only then is it swapped in, atomically: [`ReloadingModel::current`]
//! returns either the old or the new `Arc<Model>`, and a batch scored with
//! one model is scored with it to the end. A rejected file is logged with
//! `tracing::error!` (path and reason) and counted; the old model keeps
//! serving until a later change of the file loads. The thread stops when
//! the `ReloadingModel` is dropped.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use crate::error::Result;
use crate::format::ModelFormat;
use crate::model::Model;

/// A check a new model must pass before it replaces the running one:
/// called with `(running, candidate)`; `Err` is the reason to reject it.
pub type Validator = Arc<dyn Fn(&Model, &Model) -> std::result::Result<(), String> + Send + Sync>;

/// How a [`ReloadingModel`] watches its file.
#[derive(Clone)]
pub struct ReloadOptions {
    /// How often the file's metadata is read. Default 500 ms.
    pub poll_interval: Duration,
    /// An extra check on top of [`Model::check_compatible`] (e.g. the
    /// planner's schema check). Default none.
    pub validate: Option<Validator>,
}

impl Default for ReloadOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(500),
            validate: None,
        }
    }
}

impl fmt::Debug for ReloadOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadOptions")
            .field("poll_interval", &self.poll_interval)
            .field("validate", &self.validate.is_some())
            .finish()
    }
}

/// State shared by the handle and the watcher thread.
struct Shared {
    current: ArcSwap<Model>,
    stopped: Mutex<bool>,
    wake: Condvar,
    reloads: AtomicU64,
    rejected: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A model that is reloaded in the background when its file changes; see
/// the module docs. Cheap to read from many threads: call
/// [`current`](Self::current) once per batch.
pub struct ReloadingModel {
    shared: Arc<Shared>,
    path: PathBuf,
    watcher: Option<JoinHandle<()>>,
}

impl fmt::Debug for ReloadingModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingModel")
            .field("path", &self.path)
            .field("reloads", &self.reloads())
            .field("rejected", &self.rejected())
            .finish_non_exhaustive()
    }
}

/// What identifies a version of the file.
type Signature = (Option<SystemTime>, u64, u64);

fn signature(path: &Path) -> Option<Signature> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some((meta.modified().ok(), meta.len(), inode))
}

impl ReloadingModel {
    /// Load `path` now (an error here is the caller's to report, e.g. as a
    /// plan error) and start watching it. Reloads use the format of this
    /// first load.
    pub fn start(
        path: &Path,
        format: Option<ModelFormat>,
        options: ReloadOptions,
    ) -> Result<ReloadingModel> {
        // Read the signature before loading: a change during the load is
        // then seen as a change.
        let seen = signature(path);
        let model = Model::load(path, format)?;
        let format = model.format();
        let shared = Arc::new(Shared {
            current: ArcSwap::from_pointee(model),
            stopped: Mutex::new(false),
            wake: Condvar::new(),
            reloads: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            last_error: Mutex::new(None),
        });
        let watcher = {
            let shared = Arc::clone(&shared);
            let watched = path.to_path_buf();
            std::thread::Builder::new()
                .name("shoal-model-reload".into())
                .spawn(move || watch(&shared, &watched, format, &options, seen))
                .map_err(|source| crate::ScoreError::Io {
                    path: path.to_path_buf(),
                    source,
                })?
        };
        Ok(ReloadingModel {
            shared,
            path: path.to_path_buf(),
            watcher: Some(watcher),
        })
    }

    /// The model serving now.
    pub fn current(&self) -> Arc<Model> {
        self.shared.current.load_full()
    }

    /// The watched file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many times a new model was swapped in.
    pub fn reloads(&self) -> u64 {
        self.shared.reloads.load(Ordering::Acquire)
    }

    /// How many changed files were rejected.
    pub fn rejected(&self) -> u64 {
        self.shared.rejected.load(Ordering::Acquire)
    }

    /// Why the last rejected file was rejected.
    pub fn last_error(&self) -> Option<String> {
        self.shared
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for ReloadingModel {
    fn drop(&mut self) {
        *self
            .shared
            .stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = true;
        self.shared.wake.notify_all();
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.join();
        }
    }
}

/// The watcher thread's loop.
fn watch(
    shared: &Shared,
    path: &Path,
    format: ModelFormat,
    options: &ReloadOptions,
    mut loaded: Option<Signature>,
) {
    let mut pending: Option<Signature> = None;
    let mut missing_logged = false;
    loop {
        {
            let stopped = shared.stopped.lock().unwrap_or_else(|e| e.into_inner());
            let (stopped, _) = shared
                .wake
                .wait_timeout_while(stopped, options.poll_interval, |s| !*s)
                .unwrap_or_else(|e| e.into_inner());
            if *stopped {
                return;
            }
        }
        let Some(now) = signature(path) else {
            if !missing_logged {
                tracing::warn!(path = %path.display(), "model file is gone; the loaded model keeps serving");
                missing_logged = true;
            }
            continue;
        };
        missing_logged = false;
        if Some(now) == loaded {
            pending = None;
            continue;
        }
        if pending != Some(now) {
            // Changed: wait one interval for the writer to finish.
            pending = Some(now);
            continue;
        }
        pending = None;
        loaded = Some(now);
        let running = shared.current.load_full();
        let candidate = Model::load(path, Some(format))
            .map_err(|e| e.to_string())
            .and_then(|m| {
                running.check_compatible(&m)?;
                if let Some(validate) = &options.validate {
                    validate(&running, &m)?;
                }
                Ok(m)
            });
        match candidate {
            Ok(model) => {
                shared.current.store(Arc::new(model));
                shared.reloads.fetch_add(1, Ordering::AcqRel);
                tracing::info!(path = %path.display(), "model reloaded");
            }
            Err(reason) => {
                tracing::error!(
                    path = %path.display(),
                    error = %reason,
                    "model reload rejected; the previous model keeps serving"
                );
                *shared.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
                shared.rejected.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
}
