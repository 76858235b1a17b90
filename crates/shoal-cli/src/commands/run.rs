//! `shoal run FILE`: plan, start the job (`shoal_job::Job`) and its HTTP
//! API, show progress, stop on signals, summarise.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use shoal_job::{Job, JobOptions};

use crate::exit::{CliResult, Failure};
use crate::progress::{Progress, summary_table};

/// `shoal run`'s flags.
pub struct RunFlags {
    /// The summary as JSON on stdout.
    pub json: bool,
    /// Never draw the progress line.
    pub no_progress: bool,
    /// Serve the HTTP API (`None`: `--no-http`).
    pub http: Option<HttpFlags>,
    /// Operators whose state is dropped.
    pub drop_state: Vec<String>,
    /// `--from-savepoint NAME`.
    pub from_savepoint: Option<String>,
}

/// Where and how to serve the HTTP API.
pub struct HttpFlags {
    /// `--http-addr` (default: [`shoal_http::DEFAULT_ADDR`], or a free port
    /// when it is taken).
    pub addr: Option<SocketAddr>,
    /// `--http-token`.
    pub token: Option<String>,
}

fn runtime_failure(e: shoal_runtime::RuntimeError) -> Failure {
    match e.domain() {
        shoal_runtime::ErrorDomain::User => Failure::BadInput(format!("error: {e}")),
        _ => Failure::Runtime(e.into()),
    }
}

pub fn run(file: &Path, data_dir: Option<PathBuf>, flags: RunFlags) -> CliResult {
    let mut plan = super::load_and_plan(file, data_dir)?;
    plan.from_savepoint = flags.from_savepoint.clone();
    // One process per checkpoint directory: a second run exits 2 at once,
    // naming the holder (issue 16).
    let _run_lock = match &plan.checkpoint {
        Some(c) => Some(
            shoal_plan::RunLock::acquire(&c.dir)
                .map_err(|e| Failure::BadInput(format!("error: {e}")))?,
        ),
        None => None,
    };
    let name = plan.name.clone();
    let checkpoint_dir = plan.checkpoint.as_ref().map(|c| c.dir.clone());
    // Bind before anything starts: a bad address fails the run at once.
    let http = flags
        .http
        .map(|h| -> CliResult<_> {
            let addr = h.addr.unwrap_or_else(|| {
                shoal_http::DEFAULT_ADDR
                    .parse()
                    .expect("a valid default address")
            });
            shoal_http::check_exposure(addr, h.token.as_deref())
                .map_err(|e| Failure::BadInput(format!("error: {e}")))?;
            let listener = shoal_http::bind(addr, h.addr.is_none())
                .map_err(|e| Failure::BadInput(format!("error: serving HTTP on {addr}: {e}")))?;
            Ok((listener, h.token))
        })
        .transpose()?;
    // Signals are handled from here on: the first stops the job gracefully.
    let cancel = tokio_util::sync::CancellationToken::new();
    let mut job = Job::new(
        plan,
        JobOptions {
            drop_state: flags.drop_state,
            cancel: cancel.clone(),
        },
    );
    let view = job.view();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel();
    let signal_view = view.clone();
    crate::signals::install(move |signal| {
        // Say which signal first: the run loop reads it once cancelled.
        let _ = stop_tx.send(signal);
        signal_view.stop();
    })
    .map_err(Failure::Runtime)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("shoal-worker")
        .build()
        .context("starting the tokio runtime")?;
    if let Some((listener, token)) = http {
        let addr = listener.local_addr().context("HTTP API address")?;
        let _guard = runtime.enter();
        shoal_http::serve(listener, view.clone(), token)
            .map_err(|e| Failure::Runtime(anyhow::Error::new(e).context("HTTP API")))?;
        eprintln!("http api: http://{addr}/");
        eprintln!("dashboard: http://{addr}/");
        eprintln!("metrics: http://{addr}/metrics");
    }
    if let Some(m) = job.restore_point().map_err(runtime_failure)? {
        eprintln!(
            "restoring from checkpoint {} in {}",
            m.id,
            checkpoint_dir
                .as_deref()
                .unwrap_or(Path::new("?"))
                .display()
        );
    }
    let show_progress = !flags.no_progress && std::io::stderr().is_terminal();
    let end_view = view.clone();
    let summary = runtime.block_on(async move {
        let run = job.run();
        tokio::pin!(run);
        let mut progress = Progress::new(view.clone(), show_progress);
        let mut ticker = tokio::time::interval(std::time::Duration::from_millis(500));
        let mut stopping = false;
        let result = loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled(), if !stopping => {
                    stopping = true;
                    progress.clear();
                    // A signal is sent before it cancels (see `install` above).
                    // Otherwise a failing task cancelled the job: its error
                    // is reported when the run ends.
                    let how = match stop_rx.try_recv() {
                        Ok(crate::signals::Stop::Terminate) => Some("terminated (SIGTERM)"),
                        Ok(crate::signals::Stop::Interrupt) => Some("interrupted"),
                        Err(_) if view.state() == shoal_job::Lifecycle::Stopping => {
                            Some("stop requested over HTTP")
                        }
                        Err(_) => None,
                    };
                    if let Some(how) = how {
                        eprintln!("{how}: stopping sources, draining, taking the final checkpoint (Ctrl-C or SIGTERM again to abort)");
                    }
                }
                r = &mut run => break r,
                _ = ticker.tick() => progress.tick(),
            }
        };
        progress.clear();
        tracing::info!(pipeline = %name, state = ?view.state(), "ended");
        result.map_err(|e| {
            if view.metrics().is_none() {
                // Refused before any task started (e.g. the checkpoint's
                // state does not fit the graph).
                runtime_failure(e)
            } else {
                Failure::Runtime(anyhow::Error::new(e).context(format!("pipeline {name} failed")))
            }
        })
    })?;
    if let Some((name, id)) = end_view.saved_savepoint() {
        eprintln!(
            "savepoint `{name}` kept (checkpoint {id}); restore it with: shoal run --from-savepoint {name} {}",
            file.display()
        );
    }
    if flags.json {
        println!("{}", serde_json::to_string_pretty(&summary).expect("json"));
    } else {
        eprint!("{}", summary_table(&summary));
    }
    Ok(())
}
