//! The catalog: which topics exist under `<log dir>/topics/`, opened lazily
//! and shared by the producer, the consumers, the coordinator (partition
//! counts) and the fsync flusher.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::config::{LogConfig, TopicConfig};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, LockFile};
use crate::storage::partition::{Partition, WRITER_LOCK};
use crate::topic::{self, TOPIC_META_VERSION, Topic, TopicMeta, TopicSummary};

/// Partition counts, as the coordinator needs them.
pub trait TopicMetadata: Send + Sync {
    /// Partition count of `topic`, `None` if it does not exist.
    fn partition_count(&self, topic: &str) -> Option<u32>;
    /// Start and end offsets of every partition of `topic`.
    fn offsets(&self, topic: &str) -> Option<Vec<(u64, u64)>>;
}

/// The topics of one log directory.
#[derive(Debug)]
pub(crate) struct Catalog {
    pub(crate) root: PathBuf,
    topics_dir: PathBuf,
    pub(crate) config: LogConfig,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    flusher_started: AtomicBool,
    pub(crate) weak_self: std::sync::Weak<Catalog>,
}

impl Catalog {
    /// Opens (and, unless read-only, creates) `<root>/topics`.
    pub(crate) fn open(root: &Path, config: LogConfig) -> Result<Arc<Catalog>> {
        let topics_dir = root.join("topics");
        if !config.read_only {
            std::fs::create_dir_all(&topics_dir).ctx("create dir", &topics_dir)?;
        }
        Ok(Arc::new_cyclic(|weak| Catalog {
            root: root.to_owned(),
            topics_dir,
            config,
            topics: RwLock::new(HashMap::new()),
            flusher_started: AtomicBool::new(false),
            weak_self: weak.clone(),
        }))
    }

    fn topic_dir(&self, name: &str) -> PathBuf {
        self.topics_dir.join(name)
    }

    /// The topic, loading it from disk if this process has not yet.
    pub(crate) fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        if let Some(t) = self.topics.read().expect("topics lock").get(name) {
            return Ok(t.clone());
        }
        fsutil::validate_name("topic", name)?;
        let dir = self.topic_dir(name);
        let meta: TopicMeta =
            fsutil::read_json(&topic::meta_path(&dir))?.ok_or_else(|| Error::TopicNotFound {
                topic: name.to_owned(),
            })?;
        Ok(self.install(dir, meta))
    }

    fn install(&self, dir: PathBuf, meta: TopicMeta) -> Arc<Topic> {
        let mut topics = self.topics.write().expect("topics lock");
        if let Some(t) = topics.get(&meta.name) {
            return t.clone();
        }
        if !self.config.read_only && !self.flusher_started.swap(true, Ordering::AcqRel) {
            crate::storage::flusher::spawn(self.weak_self.clone());
        }
        let t = Arc::new(Topic::open(
            dir,
            meta,
            self.config.read_only,
            &self.config.clock,
        ));
        topics.insert(t.meta.name.clone(), t.clone());
        t
    }

    /// Creates a topic; idempotent for the same partition count.
    pub(crate) fn create(
        &self,
        name: &str,
        partitions: u32,
        config: TopicConfig,
    ) -> Result<Arc<Topic>> {
        fsutil::validate_name("topic", name)?;
        if partitions == 0 || partitions > 100_000 {
            return Err(Error::InvalidArgument(format!(
                "partition count must be within 1..=100000, got {partitions}"
            )));
        }
        config.validate()?;
        match self.topic(name) {
            Ok(t) if t.partition_count() == partitions => return Ok(t),
            Ok(t) => {
                return Err(Error::TopicExists {
                    topic: name.to_owned(),
                    existing: t.partition_count(),
                    requested: partitions,
                });
            }
            Err(Error::TopicNotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        if self.config.read_only {
            return Err(Error::ReadOnly {
                path: self.root.clone(),
            });
        }
        let dir = self.topic_dir(name);
        for p in 0..partitions {
            let pd = dir.join(p.to_string());
            std::fs::create_dir_all(&pd).ctx("create dir", &pd)?;
        }
        let meta = TopicMeta {
            version: TOPIC_META_VERSION,
            name: name.to_owned(),
            partitions,
            config,
            created_ms: self.config.clock.now_ms(),
        };
        fsutil::write_json(&topic::meta_path(&dir), &meta)?;
        fsutil::sync_dir(&self.topics_dir)?;
        tracing::info!(topic = name, partitions, "created topic");
        Ok(self.install(dir, meta))
    }

    /// Names and partition counts of all topics on disk, sorted by name.
    pub(crate) fn list(&self) -> Result<Vec<TopicSummary>> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&self.topics_dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io("list", &self.topics_dir, e)),
        };
        for entry in rd {
            let entry = entry.ctx("list", &self.topics_dir)?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            if let Some(meta) = fsutil::read_json::<TopicMeta>(&topic::meta_path(&entry.path()))? {
                out.push(TopicSummary {
                    name: meta.name,
                    partitions: meta.partitions,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Deletes a topic: needs every partition's writer lock (so no other
    /// process is writing it), then removes the directory.
    pub(crate) fn delete(&self, name: &str) -> Result<()> {
        let t = self.topic(name)?;
        if self.config.read_only {
            return Err(Error::ReadOnly {
                path: self.root.clone(),
            });
        }
        t.close();
        let mut locks = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let path = p.dir().join(WRITER_LOCK);
            if !p.dir().exists() {
                continue;
            }
            match LockFile::try_acquire(&path)? {
                Ok(l) => locks.push(l),
                Err(held) => {
                    return Err(Error::PartitionLocked {
                        topic: name.to_owned(),
                        partition: p.id(),
                        path,
                        holder: held.holder,
                    });
                }
            }
        }
        self.topics.write().expect("topics lock").remove(name);
        // Rename first so a concurrent reader never sees a half-deleted topic.
        let dir = self.topic_dir(name);
        let trash = self
            .topics_dir
            .join(format!(".deleted-{name}-{}", std::process::id()));
        std::fs::rename(&dir, &trash).ctx("rename", &dir)?;
        fsutil::sync_dir(&self.topics_dir)?;
        drop(locks);
        std::fs::remove_dir_all(&trash).ctx("delete", &trash)?;
        tracing::info!(topic = name, "deleted topic");
        Ok(())
    }

    /// Partitions of the topics opened in this process.
    pub(crate) fn loaded_partitions(&self) -> Vec<Arc<Partition>> {
        self.topics
            .read()
            .expect("topics lock")
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect()
    }

    /// Topics opened in this process.
    pub(crate) fn loaded_topics(&self) -> Vec<Arc<Topic>> {
        self.topics
            .read()
            .expect("topics lock")
            .values()
            .cloned()
            .collect()
    }
}

impl TopicMetadata for Catalog {
    fn partition_count(&self, topic: &str) -> Option<u32> {
        self.topic(topic).ok().map(|t| t.partition_count())
    }

    fn offsets(&self, topic: &str) -> Option<Vec<(u64, u64)>> {
        let t = self.topic(topic).ok()?;
        let starts = t.start_offsets().ok()?;
        let ends = t.end_offsets().ok()?;
        Some(starts.into_iter().zip(ends).collect())
    }
}
