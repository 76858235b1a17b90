//! The crate's error type, grouped by fault, and the [`Result`] alias.
//!
//! Every fallible operation in `shoal-log` returns [`Error`]. The variants are
//! grouped by *whose fault* the failure is ([`Fault`]), so callers (the CLI's
//! exit codes, the runtime's retry policy) can decide what to do without
//! matching every variant:
//!
//! * [`Fault::Usage`]: the caller asked for something invalid (bad name,
//!   unknown topic, offset out of range). Do not retry.
//! * [`Fault::Conflict`]: another writer or coordinator holds a lock, or the
//!   request contradicts existing state (topic exists with another partition
//!   count, member id taken). Retry later or fix the setup.
//! * [`Fault::Fenced`]: a consumer-group member acted on an old generation or
//!   was expelled. Re-read the assignment (or rejoin) and carry on.
//! * [`Fault::Corruption`]: bytes on disk fail their checksum or framing in a
//!   place where a torn write is impossible. Needs an operator.
//! * [`Fault::Io`]: the operating system failed (disk full, permissions).

use std::path::PathBuf;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Who is to blame for an [`Error`]; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The request itself is invalid.
    Usage,
    /// Another process/member holds what was asked for, or state disagrees.
    Conflict,
    /// A group member is behind (stale generation) or no longer a member.
    Fenced,
    /// Stored data is damaged.
    Corruption,
    /// The operating system failed.
    Io,
}

/// Everything that can go wrong in the embedded log and its coordinator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- usage ------------------------------------------------------------
    /// A topic or group name is empty, too long or has characters outside
    /// `[A-Za-z0-9._-]`.
    #[error("invalid {kind} name {name:?}: {reason}")]
    InvalidName {
        /// `"topic"` or `"group"`.
        kind: &'static str,
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// An argument is out of its allowed range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The topic does not exist in this log directory.
    #[error("topic {topic:?} does not exist")]
    TopicNotFound {
        /// The topic asked for.
        topic: String,
    },
    /// The partition number is not below the topic's partition count.
    #[error("topic {topic:?} has {partitions} partitions; partition {partition} does not exist")]
    PartitionNotFound {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many partitions the topic has.
        partitions: u32,
    },
    /// A read asked for an offset outside `[start, end]` of the partition.
    #[error("offset {offset} is out of range for {topic}/{partition} (log holds {start}..{end})")]
    OffsetOutOfRange {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The offset asked for.
        offset: u64,
        /// First offset still stored (retention deletes older ones).
        start: u64,
        /// Log end offset (the next offset to be written).
        end: u64,
    },
    /// A single record does not fit the on-disk format limits.
    #[error("record of {size} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge {
        /// Encoded size of the record.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The group has no stored state in this log directory.
    #[error("consumer group {group:?} does not exist")]
    GroupNotFound {
        /// The group asked for.
        group: String,
    },
    /// An append was attempted on a log directory opened read-only.
    #[error("log directory {path} is open read-only")]
    ReadOnly {
        /// The log directory.
        path: PathBuf,
    },

    // ---- conflict ---------------------------------------------------------
    /// `create_topic` with a partition count different from the existing one.
    #[error("topic {topic:?} already exists with {existing} partitions (asked for {requested})")]
    TopicExists {
        /// The topic.
        topic: String,
        /// Its current partition count.
        existing: u32,
        /// The count that was asked for.
        requested: u32,
    },
    /// Another process is the writer of this partition.
    #[error(
        "partition {topic}/{partition} is locked by another writer{}: {path} \
         (only one process may write a partition; stop it or use another data dir)",
        holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    PartitionLocked {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The lock file.
        path: PathBuf,
        /// Process id written in the lock file by its holder, if readable.
        holder: Option<u32>,
    },
    /// Another process coordinates this consumer group.
    #[error(
        "consumer group {group:?} is coordinated by another process{}: {path}",
        holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    GroupLocked {
        /// The group.
        group: String,
        /// The lock file.
        path: PathBuf,
        /// Process id written in the lock file by its holder, if readable.
        holder: Option<u32>,
    },
    /// A member with this id is already in the group.
    #[error("member {member:?} is already in group {group:?}")]
    MemberExists {
        /// The group.
        group: String,
        /// The member id.
        member: String,
    },
    /// A member asked for an assignor other than the group's current one.
    #[error("group {group:?} uses assignor {current}, member asked for {requested}")]
    InconsistentAssignor {
        /// The group.
        group: String,
        /// The assignor the group's members use.
        current: String,
        /// The assignor the joining member asked for.
        requested: String,
    },

    // ---- fenced -----------------------------------------------------------
    /// The member is not (or no longer) in the group: it left or was expelled
    /// after missing its session timeout. Rejoin to continue.
    #[error("member {member:?} is not in group {group:?} (left or expelled by session timeout)")]
    UnknownMember {
        /// The group.
        group: String,
        /// The member id.
        member: String,
    },
    /// A member acted with a generation older than the group's current one.
    #[error("member {member:?} of group {group:?} used generation {given}, current is {current}")]
    StaleGeneration {
        /// The group.
        group: String,
        /// The member id.
        member: String,
        /// Generation the member sent.
        given: u64,
        /// The group's current generation.
        current: u64,
    },

    /// A transactional producer acted with an epoch older than the newest
    /// one of its transactional id: a newer instance took over (a zombie).
    #[error(
        "transactional producer {producer_id} epoch {epoch} is fenced: epoch {current} took over \
         (another instance of this sink was started)"
    )]
    ProducerFenced {
        /// The producer id.
        producer_id: u64,
        /// The epoch it used.
        epoch: u32,
        /// The newest epoch.
        current: u32,
    },
    /// Another process holds this transactional id.
    #[error(
        "transactional id {id:?} is in use by another process{}: {path}",
        holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    TransactionalIdLocked {
        /// The transactional id.
        id: String,
        /// The lock file.
        path: PathBuf,
        /// Process id written in the lock file by its holder, if readable.
        holder: Option<u32>,
    },

    // ---- corruption -------------------------------------------------------
    /// Stored bytes fail checksum/framing where no torn write can explain it.
    #[error("corrupt data in {path} at byte {position}: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte position of the damage.
        position: u64,
        /// What check failed.
        reason: String,
    },
    /// A JSON metadata file does not parse.
    #[error("cannot parse {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },

    // ---- io ---------------------------------------------------------------
    /// The operating system failed an operation on a path.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`"open"`, `"write"`, ...).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Whose fault the error is; see [`Fault`].
    pub fn fault(&self) -> Fault {
        match self {
            Error::InvalidName { .. }
            | Error::InvalidArgument(_)
            | Error::TopicNotFound { .. }
            | Error::PartitionNotFound { .. }
            | Error::OffsetOutOfRange { .. }
            | Error::RecordTooLarge { .. }
            | Error::GroupNotFound { .. }
            | Error::ReadOnly { .. } => Fault::Usage,
            Error::TopicExists { .. }
            | Error::PartitionLocked { .. }
            | Error::GroupLocked { .. }
            | Error::MemberExists { .. }
            | Error::InconsistentAssignor { .. }
            | Error::TransactionalIdLocked { .. } => Fault::Conflict,
            Error::UnknownMember { .. }
            | Error::StaleGeneration { .. }
            | Error::ProducerFenced { .. } => Fault::Fenced,
            Error::Corrupt { .. } | Error::Json { .. } => Fault::Corruption,
            Error::Io { .. } => Fault::Io,
        }
    }

    /// Builds an [`Error::Io`].
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Extension to attach an operation and path to `std::io::Result`.
pub(crate) trait IoContext<T> {
    /// Wraps the error in [`Error::Io`].
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}
