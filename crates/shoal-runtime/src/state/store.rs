//! Where state files live: a directory, or an S3-compatible object store.
//!
//! A [`StateStore`] is what `checkpoint: { store: … }` names. Keyed-state
//! files are immutable once written and their names say who wrote them
//! (see [`crate::shard::writer_id`]), so the store needs only four
//! operations: put a whole file, read a whole file, list, delete.
//!
//! * **A directory** (a path, or `file:///path`): a file is written to a
//!   temporary name, fsynced, renamed into place and the directory fsynced;
//!   a shared file system (NFS, a ReadWriteMany volume) serves several
//!   processes.
//! * **An object store** (`s3://bucket/prefix`, through the `object_store`
//!   crate): a put is atomic by the store's contract (a reader sees the
//!   whole object or none), which is what the rename gives on a disk.
//!   Connection settings come from the standard environment variables
//!   (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//!   `AWS_ENDPOINT_URL` for MinIO and other S3-compatible stores,
//!   `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint). Requests that fail
//!   are retried with backoff by `object_store` (up to 10 times within 3
//!   minutes); then the checkpoint or the restore fails, and with it the
//!   job — the manifest and the sinks' commit never name a file that is not
//!   in the store.
//!
//! Object store requests run on a runtime of their own (one thread,
//! `shoal-state-io`), so that the HTTP client's connections outlive any one
//! job runtime and a blocking caller (a restore on a task, the checkpoint
//! pruning) never parks a tokio worker of the job.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::{Result, RuntimeError};

/// Where state files are written and read; see the module docs.
#[derive(Clone)]
pub enum StateStore {
    /// A directory on a (possibly shared) file system.
    Dir(PathBuf),
    /// A bucket (and prefix) of an S3-compatible object store.
    Object(Arc<ObjectStoreRoot>),
}

/// An object store and the prefix under which the state files go.
pub struct ObjectStoreRoot {
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
}

impl fmt::Debug for StateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StateStore({self})")
    }
}

impl fmt::Display for StateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dir(d) => write!(f, "{}", d.display()),
            Self::Object(o) => f.write_str(&o.url),
        }
    }
}

impl From<PathBuf> for StateStore {
    fn from(d: PathBuf) -> Self {
        Self::Dir(d)
    }
}

impl From<&PathBuf> for StateStore {
    fn from(d: &PathBuf) -> Self {
        Self::Dir(d.clone())
    }
}

impl From<&Path> for StateStore {
    fn from(d: &Path) -> Self {
        Self::Dir(d.to_path_buf())
    }
}

/// Whether `s` names a store by URL (`scheme://…`) rather than a path.
pub fn is_store_url(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric())
    })
}

/// The URL schemes a state store may have.
pub const STORE_SCHEMES: &[&str] = &["file", "s3", "s3a"];

impl StateStore {
    /// The store `s` names: `s3://bucket/prefix` (or `s3a://`),
    /// `file:///path`, or a path (relative ones resolved against `base`).
    pub fn parse(s: &str, base: &Path) -> Result<Self> {
        if !is_store_url(s) {
            return Ok(Self::Dir(base.join(s)));
        }
        let (scheme, rest) = s.split_once("://").expect("is a URL");
        match scheme {
            "file" => Ok(Self::Dir(PathBuf::from(rest))),
            "s3" | "s3a" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(RuntimeError::User(format!(
                        "state store {s:?}: the URL names no bucket (write s3://bucket/prefix)"
                    )));
                }
                let store = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .map_err(|e| RuntimeError::User(format!("state store {s:?}: {e}")))?;
                Ok(Self::Object(Arc::new(ObjectStoreRoot {
                    url: s.trim_end_matches('/').to_owned(),
                    store: Arc::new(store),
                    prefix: ObjectPath::from(prefix.trim_matches('/')),
                })))
            }
            other => Err(RuntimeError::User(format!(
                "state store {s:?}: unsupported scheme {other:?} (a directory, file:///path or s3://bucket/prefix)"
            ))),
        }
    }

    /// The directory, for a store on a file system.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Self::Dir(d) => Some(d),
            Self::Object(_) => None,
        }
    }

    /// Writes `bytes` as the file `rel` (a `/`-separated path under the
    /// store) durably and atomically, from async code.
    pub async fn put(&self, rel: &str, bytes: Vec<u8>) -> Result<()> {
        match self {
            Self::Dir(d) => {
                let path = d.join(rel);
                tokio::task::spawn_blocking(move || super::format::write_atomically(&path, &bytes))
                    .await
                    .map_err(|e| RuntimeError::Internal(format!("state writer: {e}")))?
            }
            Self::Object(o) => {
                let (o, rel) = (o.clone(), rel.to_owned());
                on_io_runtime(async move { o.put(&rel, bytes).await }).await
            }
        }
    }

    /// [`StateStore::put`] for a caller that is not async (tests, tools).
    pub fn put_blocking(&self, rel: &str, bytes: Vec<u8>) -> Result<()> {
        match self {
            Self::Dir(d) => super::format::write_atomically(&d.join(rel), &bytes),
            Self::Object(o) => {
                let (o, rel) = (o.clone(), rel.to_owned());
                block_on_io(async move { o.put(&rel, bytes).await })
            }
        }
    }

    /// Reads the whole file `rel`. Blocking: a task calls it off its worker
    /// (`block_in_place`).
    pub fn read(&self, rel: &str) -> Result<Vec<u8>> {
        match self {
            Self::Dir(d) => {
                let path = d.join(rel);
                std::fs::read(&path)
                    .map_err(|e| RuntimeError::io(format!("read {}", path.display()), e))
            }
            Self::Object(o) => {
                let (o, rel) = (o.clone(), rel.to_owned());
                block_on_io(async move { o.get(&rel).await })
            }
        }
    }

    /// Every file under `sub` (`/`-separated, relative to the store), as
    /// paths relative to the store. Blocking.
    pub fn list(&self, sub: &str) -> Result<Vec<String>> {
        match self {
            Self::Dir(d) => list_dir(d, sub),
            Self::Object(o) => {
                let (o, sub) = (o.clone(), sub.to_owned());
                block_on_io(async move { o.list(&sub).await })
            }
        }
    }

    /// Deletes the file `rel` (gone already is fine). Blocking.
    pub fn delete(&self, rel: &str) -> Result<()> {
        match self {
            Self::Dir(d) => {
                let path = d.join(rel);
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        Err(RuntimeError::io(format!("remove {}", path.display()), e))
                    }
                    _ => Ok(()),
                }
            }
            Self::Object(o) => {
                let (o, rel) = (o.clone(), rel.to_owned());
                block_on_io(async move { o.delete(&rel).await })
            }
        }
    }

    /// A short name of `rel` in this store, for messages.
    pub fn describe(&self, rel: &str) -> String {
        match self {
            Self::Dir(d) => d.join(rel).display().to_string(),
            Self::Object(o) => format!("{}/{rel}", o.url),
        }
    }
}

impl ObjectStoreRoot {
    fn location(&self, rel: &str) -> ObjectPath {
        rel.split('/')
            .filter(|p| !p.is_empty())
            .fold(self.prefix.clone(), |p, part| p.join(part))
    }

    fn error(&self, what: &str, rel: &str, e: object_store::Error) -> RuntimeError {
        RuntimeError::External(format!("state store {}: {what} {rel}: {e}", self.url))
    }

    async fn put(&self, rel: &str, bytes: Vec<u8>) -> Result<()> {
        self.store
            .put(&self.location(rel), PutPayload::from(bytes))
            .await
            .map_err(|e| self.error("write", rel, e))?;
        Ok(())
    }

    async fn get(&self, rel: &str) -> Result<Vec<u8>> {
        let got = self
            .store
            .get(&self.location(rel))
            .await
            .map_err(|e| self.error("read", rel, e))?;
        let bytes = got.bytes().await.map_err(|e| self.error("read", rel, e))?;
        Ok(bytes.to_vec())
    }

    async fn list(&self, sub: &str) -> Result<Vec<String>> {
        let under = self.location(sub);
        let metas: Vec<_> = self
            .store
            .list(Some(&under))
            .try_collect()
            .await
            .map_err(|e| self.error("list", sub, e))?;
        let strip = |p: &ObjectPath| -> Option<String> {
            let parts: Vec<_> = p.prefix_match(&self.prefix)?.collect();
            Some(
                parts
                    .iter()
                    .map(|p| p.as_ref())
                    .collect::<Vec<_>>()
                    .join("/"),
            )
        };
        Ok(metas.iter().filter_map(|m| strip(&m.location)).collect())
    }

    async fn delete(&self, rel: &str) -> Result<()> {
        match self.store.delete(&self.location(rel)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("delete", rel, e)),
        }
    }
}

/// Every file under `root/sub`, relative to `root`, `/`-separated.
fn list_dir(root: &Path, sub: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![root.join(sub)];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(RuntimeError::io(format!("list {}", d.display()), e)),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    Ok(out)
}

/// The runtime object store requests run on (see the module docs).
fn io_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("shoal-state-io")
            .enable_all()
            .build()
            .expect("start the state store's I/O runtime")
    })
}

/// Runs `f` on the I/O runtime and awaits it.
async fn on_io_runtime<T: Send + 'static>(
    f: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    io_runtime()
        .spawn(f)
        .await
        .map_err(|e| RuntimeError::Internal(format!("state store request: {e}")))?
}

/// Runs `f` on the I/O runtime and waits for it, from code that is not
/// async: on a multi-thread job runtime through `block_in_place`, so the
/// worker's other tasks move to another thread while it waits.
fn block_on_io<T: Send + 'static>(
    f: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let handle = io_runtime().spawn(f);
    let wait = move || {
        futures::executor::block_on(handle)
            .map_err(|e| RuntimeError::Internal(format!("state store request: {e}")))?
    };
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}
