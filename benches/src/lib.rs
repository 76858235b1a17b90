//! Shared helpers for Shoal's benchmark binaries.

/// Peak resident set size of this process in MiB (Linux `VmHWM`).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU time (user + system) used by this process so far, in seconds.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = 100.0; // USER_HZ on Linux
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

/// A pipeline run measured from start to end.
pub struct Timed {
    /// The run's summary (records per node, checkpoints).
    pub summary: shoal_runtime::JobSummary,
    /// Wall-clock seconds.
    pub wall: f64,
    /// CPU seconds this process used meanwhile.
    pub cpu: f64,
}

/// Run `plan` to its end on a tokio runtime with `workers` worker threads
/// (checkpointing as the plan says) and measure it.
pub fn run_plan(plan: shoal_plan::Plan, workers: usize) -> Timed {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime");
    let cpu0 = cpu_seconds().unwrap_or(0.0);
    let t0 = std::time::Instant::now();
    let summary = rt.block_on(async {
        let opts = shoal_runtime::RunOptions {
            checkpoint: plan.checkpoint.clone(),
            ..shoal_runtime::RunOptions::default()
        };
        let handle = plan
            .into_job_graph()
            .expect("graph")
            .spawn(opts)
            .expect("spawn");
        handle.wait().await.expect("run")
    });
    Timed {
        summary,
        wall: t0.elapsed().as_secs_f64(),
        cpu: cpu_seconds().unwrap_or(0.0) - cpu0,
    }
}
