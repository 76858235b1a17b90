//! `shoal run FILE`: plan, spawn, show progress, stop on SIGINT/SIGTERM,
//! summarise.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use shoal_runtime::RunOptions;

use crate::exit::{CliResult, Failure};
use crate::progress::{Progress, summary_table};

pub fn run(
    file: &Path,
    data_dir: Option<PathBuf>,
    json: bool,
    no_progress: bool,
    metrics_addr: Option<std::net::SocketAddr>,
    drop_state: Vec<String>,
) -> CliResult {
    let plan = super::load_and_plan(file, data_dir)?;
    let name = plan.name.clone();
    let channel_capacity = plan.channel_capacity;
    let checkpoint = plan.checkpoint.clone();
    let restore = plan.restore_point().map_err(|e| match e.domain() {
        shoal_runtime::ErrorDomain::User => Failure::BadInput(format!("error: {e}")),
        _ => Failure::Runtime(e.into()),
    })?;
    if let (Some(m), Some(c)) = (&restore, &checkpoint) {
        eprintln!("restoring from checkpoint {} in {}", m.id, c.dir.display());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("shoal-worker")
        .build()
        .context("starting the tokio runtime")?;
    let show_progress = !no_progress && std::io::stderr().is_terminal();
    let endpoint = metrics_addr
        .map(crate::metrics_http::bind)
        .transpose()
        .map_err(|e| Failure::BadInput(format!("error: {e:#}")))?;
    // Signals are handled from here on: the first stops the job gracefully.
    let cancel = tokio_util::sync::CancellationToken::new();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel();
    let stop_cancel = cancel.clone();
    crate::signals::install(move |signal| {
        stop_cancel.cancel();
        let _ = stop_tx.send(signal);
    })
    .map_err(Failure::Runtime)?;
    let summary = runtime.block_on(async move {
        let graph = plan
            .into_job_graph()
            .map_err(|e| Failure::Runtime(e.into()))?;
        let handle = graph
            .spawn(RunOptions {
                channel_capacity,
                cancel: cancel.clone(),
                checkpoint,
                restore,
                drop_state,
            })
            .map_err(|e| match e.domain() {
                shoal_runtime::ErrorDomain::User => Failure::BadInput(format!("error: {e}")),
                _ => Failure::Runtime(e.into()),
            })?;
        tracing::info!(pipeline = %name, "started");
        if let Some(endpoint) = endpoint {
            let addr = endpoint.addr;
            crate::metrics_http::serve(endpoint, handle.metrics().clone())
                .map_err(|e| Failure::Runtime(e.context("metrics endpoint")))?;
            eprintln!("metrics: http://{addr}/metrics");
        }
        let mut progress = Progress::new(handle.metrics().clone(), show_progress);
        let mut ticker = tokio::time::interval(std::time::Duration::from_millis(500));
        let mut stopping = false;
        let wait = handle.wait();
        tokio::pin!(wait);
        let result = loop {
            tokio::select! {
                r = &mut wait => break r,
                _ = ticker.tick() => progress.tick(),
                signal = &mut stop_rx, if !stopping => {
                    stopping = true;
                    progress.clear();
                    let how = match signal {
                        Ok(crate::signals::Stop::Terminate) => "terminated (SIGTERM)",
                        _ => "interrupted",
                    };
                    eprintln!("{how}: stopping sources, draining, taking the final checkpoint (Ctrl-C or SIGTERM again to abort)");
                }
            }
        };
        progress.clear();
        result.map_err(|e| {
            Failure::Runtime(anyhow::Error::new(e).context(format!("pipeline {name} failed")))
        })
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary).expect("json"));
    } else {
        eprint!("{}", summary_table(&summary));
    }
    Ok(())
}
