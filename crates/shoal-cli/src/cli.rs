//! Command-line flags.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Default `--partitions` of `shoal topic create`.
const DEFAULT_PARTITIONS: u32 = 1;

/// Shoal: declare streaming pipelines in YAML, run them exactly once.
#[derive(Debug, Parser)]
#[command(name = "shoal", version, about, long_about = None, after_help = "Examples:\n  shoal validate pipelines/*.yaml\n  shoal explain pipelines/large-foreign.yaml\n  shoal run pipelines/large-foreign.yaml\n  shoal topic create txns --partitions 8\n  shoal produce txns --key card txns.jsonl\n  shoal consume txns --group audit --max 10\n\nExit codes: 0 success, 1 runtime failure, 2 bad input or usage.")]
pub struct Cli {
    /// Data directory: embedded log, checkpoints, group offsets.
    #[arg(long, global = true, env = "SHOAL_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline until its sources end (or Ctrl-C).
    #[command(
        after_help = "Examples:\n  shoal run pipelines/large-foreign.yaml\n  RUST_LOG=info shoal run --no-progress pipelines/fraud-detection.yaml\n  shoal run --json pipelines/large-foreign.yaml > summary.json"
    )]
    Run {
        /// The pipeline file.
        file: PathBuf,
        /// Print the final summary as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Never show the live progress line (it is shown only on a terminal anyway).
        #[arg(long)]
        no_progress: bool,
        /// Serve the HTTP API (health, readiness, /metrics, /api/v1/job…)
        /// on ADDR while running [default: 127.0.0.1:8088, or a free port
        /// when that one is taken]. `--metrics-addr` is an alias.
        #[arg(
            long,
            visible_alias = "metrics-addr",
            env = "SHOAL_HTTP_ADDR",
            value_name = "ADDR"
        )]
        http_addr: Option<std::net::SocketAddr>,
        /// Do not serve the HTTP API.
        #[arg(long, conflicts_with = "http_addr")]
        no_http: bool,
        /// Bearer token that POST requests (stop) must carry; required when
        /// --http-addr is not a loopback address.
        #[arg(
            long,
            env = "SHOAL_HTTP_TOKEN",
            value_name = "TOKEN",
            hide_env_values = true
        )]
        http_token: Option<String>,
        /// Log format of `tracing` events on stderr (RUST_LOG sets the level).
        #[arg(long, value_name = "FORMAT", default_value = "text")]
        log_format: LogFormat,
        /// Start this stateful operator afresh: its state in the checkpoint
        /// is dropped (after a change of its query that its state cannot
        /// follow). Repeat for several operators.
        #[arg(long = "drop-state", value_name = "OPERATOR")]
        drop_state: Vec<String>,
        /// Restore savepoint NAME (kept by `POST /api/v1/job/stop?savepoint=true&name=NAME`)
        /// instead of the newest checkpoint; checkpoints taken after it
        /// move to `rolled-back/`.
        #[arg(long, value_name = "NAME")]
        from_savepoint: Option<String>,
    },
    /// Check pipeline files: syntax, references, schemas, SQL. Nothing runs.
    #[command(
        after_help = "Examples:\n  shoal validate pipelines/*.yaml\n\nEvery error names FILE:LINE:COLUMN, what was expected, and a hint."
    )]
    Validate {
        /// Pipeline files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List completed checkpoints: id, time, duration, state size.
    #[command(
        after_help = "Examples:\n  shoal checkpoints\n  shoal checkpoints shoal-data/checkpoints/fraud-detection --json"
    )]
    Checkpoints {
        /// A checkpoint directory (default: every pipeline's under DATA_DIR/checkpoints).
        dir: Option<PathBuf>,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the compiled operator graph: operators, parallelism, channels, schemas.
    #[command(
        after_help = "Examples:\n  shoal explain pipelines/large-foreign.yaml\n  shoal explain --json pipelines/large-foreign.yaml | jq .nodes"
    )]
    Explain {
        /// The pipeline file.
        file: PathBuf,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create, list, describe and delete topics of the embedded log.
    #[command(
        subcommand,
        after_help = "Examples:\n  shoal topic create txns --partitions 8\n  shoal topic list\n  shoal topic describe txns\n  shoal topic delete txns\n\nThe log lives in DATA_DIR/log (--data-dir, env SHOAL_DATA_DIR, default ./shoal-data)."
    )]
    Topic(TopicCommand),
    /// Append JSON lines (one object per line) to a topic of the embedded log.
    #[command(
        after_help = "Examples:\n  shoal produce txns txns.jsonl\n  shoal produce txns --key card_id < txns.jsonl\n  echo '{\"card\":\"c1\",\"amount\":3}' | shoal produce txns --key card\n\nEvery line must be a JSON object (blank lines are skipped). With --key FIELD the\nrecord key is that field's value (a string's UTF-8 or a number's decimal text) and\nthe partition is Kafka's murmur2 of the key; without it records go round-robin.\nA bad line stops the command with exit 2, naming the line; the lines before it\nhave been produced and the message says how many. The topic must exist."
    )]
    Produce {
        /// The topic.
        topic: String,
        /// JSON lines to read; `-` for stdin.
        #[arg(default_value = "-", value_name = "FILE|-")]
        file: PathBuf,
        /// Use this field of each object as the record key.
        #[arg(long, value_name = "FIELD")]
        key: Option<String>,
        /// Print the summary (records per partition) as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Print the records of a topic of the embedded log as JSON lines on stdout.
    #[command(
        after_help = "Examples:\n  shoal consume txns | head\n  shoal consume txns --group audit --max 100\n  shoal consume txns --json | jq 'select(.partition == 3)'\n\nWithout --group: reads every partition from its first stored offset.\nWith --group G: joins consumer group G, reads the partitions assigned to it from\nthe group's committed offsets (from the first stored offset where none is\ncommitted, or everywhere with --from-beginning), commits the offsets of what it\nprinted and leaves the group.\nEither way it stops at the end offsets seen when it started, or after --max\nrecords; output is partition by partition, each in offset order. --json wraps\neach record as {topic, partition, offset, timestamp, key, value}."
    )]
    Consume {
        /// The topic.
        topic: String,
        /// Consume as a member of this consumer group and commit offsets.
        #[arg(long, value_name = "G")]
        group: Option<String>,
        /// With --group: ignore committed offsets and start at the beginning
        /// (without --group this is always the case).
        #[arg(long)]
        from_beginning: bool,
        /// Stop after N records.
        #[arg(long, value_name = "N")]
        max: Option<u64>,
        /// One JSON envelope per record: topic, partition, offset, timestamp, key, value.
        #[arg(long)]
        json: bool,
        /// read_committed: only records of committed transactions (what a
        /// transactional log sink has committed), never past a partition's
        /// last stable offset; read_uncommitted: every record.
        #[arg(long, value_name = "MODE", default_value = "read_committed")]
        isolation: shoal_log::Isolation,
    },
    /// List and describe consumer groups of the embedded log: members, lag.
    #[command(
        subcommand,
        after_help = "Examples:\n  shoal group list\n  shoal group describe audit\n  shoal group describe audit --json | jq .total_lag"
    )]
    Group(GroupCommand),
}

/// How `tracing` events are written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per event (with its span fields, e.g. pipeline and
    /// operator), for log shippers.
    Json,
}

/// `shoal topic …`
#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic (succeeds if it exists with the same partition count).
    #[command(
        after_help = "Examples:\n  shoal topic create txns\n  shoal topic create txns --partitions 8\n\nCreating an existing topic with another partition count fails (exit 1)."
    )]
    Create {
        /// Topic name: letters, digits, `.`, `_`, `-`.
        name: String,
        /// Number of partitions (fixed at creation).
        #[arg(long, short = 'p', default_value_t = DEFAULT_PARTITIONS, value_name = "N")]
        partitions: u32,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// List topics with their partition counts.
    #[command(
        after_help = "Examples:\n  shoal topic list\n  shoal topic list --json | jq -r '.[].name'"
    )]
    List {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Partitions of a topic: start and end offsets, records, segments, bytes.
    #[command(
        after_help = "Examples:\n  shoal topic describe txns\n  shoal topic describe txns --json | jq .records"
    )]
    Describe {
        /// The topic.
        name: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check every record of a topic (length, CRC, offset sequence); exit 1 if damaged.
    #[command(
        after_help = "Examples:\n  shoal topic verify txns\n  shoal topic verify txns --json\n\nA torn tail of a partition's newest segment (a write cut by a crash) is\nreported but is not damage: the next writer truncates it."
    )]
    Verify {
        /// The topic.
        name: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cut each damaged partition at its first damage, dropping every record from there on.
    #[command(
        after_help = "Examples:\n  shoal topic repair txns --truncate-after-damage\n\nRecords from the damage on are deleted and their offsets reused by the next\nappend; reset consumer groups that committed past them. Fails while another\nprocess writes the topic."
    )]
    Repair {
        /// The topic.
        name: String,
        /// Required: confirms that records after the damage are dropped.
        #[arg(long)]
        truncate_after_damage: bool,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a topic and all its records (fails while another process writes it).
    #[command(after_help = "Examples:\n  shoal topic delete txns")]
    Delete {
        /// The topic.
        name: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `shoal group …`
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List consumer groups: state, generation, members, assignor.
    #[command(after_help = "Examples:\n  shoal group list\n  shoal group list --json")]
    List {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// A group's members, generation, assignor, state, assignment, and per
    /// partition the committed offset, log end offset and lag.
    #[command(
        after_help = "Examples:\n  shoal group describe audit\n  shoal group describe audit --json | jq .total_lag\n\nLag = log end offset - committed offset (everything stored when nothing is committed)."
    )]
    Describe {
        /// The group.
        group: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}
