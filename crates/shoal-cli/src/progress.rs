//! The live progress line and the final summary.

use std::io::Write;
use std::time::Instant;

use shoal_job::JobView;
use shoal_runtime::JobSummary;

/// Live progress on stderr: records/s in and out, consumer lag, dead
/// letters, the last checkpoint, elapsed.
pub struct Progress {
    job: JobView,
    enabled: bool,
    started: Instant,
    last: (Instant, u64, u64),
    drawn: bool,
}

impl Progress {
    /// A progress line over `metrics`, drawn only if `enabled` (a terminal).
    pub fn new(job: JobView, enabled: bool) -> Self {
        let now = Instant::now();
        Self {
            job,
            enabled,
            started: now,
            last: (now, 0, 0),
            drawn: false,
        }
    }

    /// Redraw the line.
    pub fn tick(&mut self) {
        if !self.enabled {
            return;
        }
        let Some(metrics) = self.job.metrics() else {
            return;
        };
        let now = Instant::now();
        let (src, sink) = (metrics.source_records(), metrics.sink_records());
        let dt = now.duration_since(self.last.0).as_secs_f64().max(1e-3);
        let rate_in = (src - self.last.1) as f64 / dt;
        let rate_out = (sink - self.last.2) as f64 / dt;
        self.last = (now, src, sink);
        let c = metrics.checkpoints();
        let ckpt = if c.completed > 0 {
            format!(
                " | checkpoint #{} ({} ms, {})",
                c.last_id,
                c.last_duration.as_millis(),
                bytes(c.last_state_bytes)
            )
        } else {
            String::new()
        };
        let lag = match metrics.source_lag() {
            0 => String::new(),
            n => format!(" | lag {}", human(n as f64)),
        };
        // A node waiting on an outside system (an unreachable database)
        // holds the job back: say which and for how long.
        let waiting = metrics
            .snapshot()
            .into_iter()
            .filter_map(|(node, m)| {
                let (_, waited) = m.waiting()?;
                Some(format!(" | {node} WAITING {:.0}s", waited.as_secs_f64()))
            })
            .collect::<String>();
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K in {} rec/s ({} total) | out {} rec/s ({} total){lag}{waiting} | dead-letter {}{} | {:.1}s",
            human(rate_in),
            human(src as f64),
            human(rate_out),
            human(sink as f64),
            metrics.dead_letters(),
            ckpt,
            self.started.elapsed().as_secs_f64()
        );
        let _ = err.flush();
        self.drawn = true;
    }

    /// Erase the line before other output.
    pub fn clear(&mut self) {
        if self.drawn {
            eprint!("\r\x1b[2K");
            self.drawn = false;
        }
    }
}

fn bytes(b: u64) -> String {
    if b >= 1 << 20 {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    } else if b >= 1 << 10 {
        format!("{:.1} KiB", b as f64 / 1024.0)
    } else {
        format!("{b} B")
    }
}

fn human(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// The one-screen summary printed at the end of a run.
pub fn summary_table(s: &JobSummary) -> String {
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    let mut out = String::new();
    out.push_str(&format!(
        "done in {:.2}s: {} records in, {} records out, {} dead letters ({} rec/s in)\n",
        secs,
        s.source_records(),
        s.sink_records(),
        s.dead_letters(),
        human(s.source_records() as f64 / secs)
    ));
    if s.checkpoints.completed > 0 {
        let mut d = s.checkpoints.durations_ms.clone();
        d.sort_by(f64::total_cmp);
        let pct = |q: f64| d[((d.len() - 1) as f64 * q).round() as usize];
        out.push_str(&format!(
            "checkpoints: {} completed, last #{} ({}), duration p50 {:.0} ms, p99 {:.0} ms\n",
            s.checkpoints.completed,
            s.checkpoints.last_id,
            bytes(s.checkpoints.last_state_bytes),
            pct(0.5),
            pct(0.99)
        ));
    }
    out.push_str(&format!(
        "{:<24} {:<10} {:>12} {:>12} {:>8}\n",
        "node", "role", "in", "out", "dead"
    ));
    for n in &s.nodes {
        out.push_str(&format!(
            "{:<24} {:<10} {:>12} {:>12} {:>8}\n",
            n.node, n.role, n.records_in, n.records_out, n.dead_letters
        ));
    }
    out
}
