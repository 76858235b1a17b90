//! Command-line flags.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Shoal: declare streaming pipelines in YAML, run them exactly once.
#[derive(Debug, Parser)]
#[command(name = "shoal", version, about, long_about = None, after_help = "Examples:\n  shoal validate pipelines/*.yaml\n  shoal explain pipelines/large-foreign.yaml\n  shoal run pipelines/large-foreign.yaml\n\nExit codes: 0 success, 1 runtime failure, 2 bad input or usage.")]
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
}
