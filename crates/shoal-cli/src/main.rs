//! The `shoal` binary: parses flags and dispatches; the work is in the
//! library crates.

mod cli;
mod commands;
mod exit;
mod progress;
mod signals;
mod table;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    let json_logs = matches!(
        cli.command,
        cli::Command::Run {
            log_format: cli::LogFormat::Json,
            ..
        }
    );
    init_tracing(json_logs);
    let code = match commands::dispatch(cli) {
        Ok(()) => 0,
        Err(e) => e.report(),
    };
    std::process::exit(code);
}

/// `tracing` on stderr at RUST_LOG's level (default `warn`): text lines, or
/// one JSON object per event with its spans' fields (`--log-format json`).
fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    use std::io::IsTerminal;
    if json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_current_span(true)
            .with_span_list(true)
            .with_target(true)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .init();
    }
}
