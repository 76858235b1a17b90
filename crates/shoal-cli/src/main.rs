//! The `shoal` binary: parses flags and dispatches; the work is in the
//! library crates.

mod cli;
mod commands;
mod exit;
mod metrics_http;
mod progress;
mod signals;
mod table;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    init_tracing();
    let code = match commands::dispatch(cli) {
        Ok(()) => 0,
        Err(e) => e.report(),
    };
    std::process::exit(code);
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
