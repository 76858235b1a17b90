//! SIGTERM and SIGINT while `shoal run` runs.
//!
//! The first of either asks the job to stop gracefully: the sources stop,
//! the graph drains, the final checkpoint is taken and committed, and the
//! process exits 0 (what `docker stop`, systemd and Kubernetes expect from
//! SIGTERM). A second one aborts at once with the shell's code for that
//! signal: 130 for SIGINT, 143 for SIGTERM.
//!
//! The signals are received on a thread of their own (with a one-thread
//! tokio runtime), so an abort is honoured even when every worker of the
//! job's runtime is busy or blocked in a stuck sink.

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

/// Which signal arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl Stop {
    /// The exit code of a process killed by this signal (128 + number).
    pub fn abort_code(self) -> i32 {
        match self {
            Stop::Interrupt => 130,
            Stop::Terminate => 143,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Stop::Interrupt => "SIGINT",
            Stop::Terminate => "SIGTERM",
        }
    }
}

/// Listen for SIGTERM and SIGINT: call `on_first` with the first one, and
/// exit the process with [`Stop::abort_code`] on the second. The handlers
/// are installed before this returns, so a signal sent right after is not
/// lost to the default action.
pub fn install(on_first: impl FnOnce(Stop) + Send + 'static) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("starting the signal runtime")?;
    // Register inside the runtime that will poll them.
    let (mut term, mut int) = rt
        .block_on(async {
            Ok::<_, std::io::Error>((
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
            ))
        })
        .context("installing the SIGTERM and SIGINT handlers")?;
    std::thread::Builder::new()
        .name("shoal-signals".into())
        .spawn(move || {
            rt.block_on(async move {
                let first = next(&mut term, &mut int).await;
                tracing::info!(signal = first.name(), "stopping gracefully");
                on_first(first);
                let second = next(&mut term, &mut int).await;
                eprintln!("aborted by a second signal ({})", second.name());
                std::process::exit(second.abort_code());
            })
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// The next SIGTERM or SIGINT.
async fn next(
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
) -> Stop {
    tokio::select! {
        _ = term.recv() => Stop::Terminate,
        _ = int.recv() => Stop::Interrupt,
    }
}
