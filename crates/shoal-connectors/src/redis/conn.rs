//! One Redis connection that waits out outages: a command that fails
//! because Redis cannot be reached (refused, reset, timed out) is retried on
//! a new connection with backoff for [`retry_for`](crate::retry::retry_for), then fails the job; an
//! answer from Redis itself (a wrong type, a script error) fails at once.
//!
//! The client is synchronous: callers run on a sink or operator task and
//! wrap their calls in [`shoal_runtime::off_worker`], so a round trip never
//! holds a tokio worker that other tasks need.

use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_runtime::{NodeMetrics, Result, RuntimeError};

use crate::retry::{backoff, retry_for};

/// How long to wait for a connection, and for an answer (a large epoch's
/// apply script runs for seconds).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// A Redis connection (opened on first use, reopened after an outage).
pub struct RedisConn {
    client: redis::Client,
    con: Option<redis::Connection>,
    /// Who uses it, for messages: `redis sink online`.
    who: String,
    /// Where an outage is shown while it lasts.
    metrics: Option<Arc<NodeMetrics>>,
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConn").field("who", &self.who).finish()
    }
}

/// Whether `e` means Redis could not be reached (worth retrying).
pub(crate) fn unreachable(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() || e.is_timeout()
}

impl RedisConn {
    /// A connection to `url` (checked now, connected on first use).
    pub fn new(url: &str, who: impl Into<String>) -> Result<Self> {
        let who = who.into();
        let client = redis::Client::open(url)
            .map_err(|e| RuntimeError::User(format!("{who}: bad url `{url}`: {e}")))?;
        Ok(Self {
            client,
            con: None,
            who,
            metrics: None,
        })
    }

    /// Show outages on this node's `waiting` gauge.
    pub fn bind_metrics(&mut self, metrics: Arc<NodeMetrics>) {
        self.metrics = Some(metrics);
    }

    /// Run `f` once, failing at once on any error (plan-time checks).
    pub fn once<T>(
        &mut self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> std::result::Result<T, redis::RedisError> {
        let con = self.connection()?;
        let out = f(con);
        if out.as_ref().is_err_and(unreachable) {
            self.con = None;
        }
        out
    }

    /// Run `f` (`what` says what it does, for messages), retrying it on a
    /// new connection while Redis cannot be reached; `f` must be safe to
    /// run again after a failure (the sink's writes are).
    pub fn run<T>(
        &mut self,
        what: &str,
        mut f: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        let started = Instant::now();
        let mut delays = backoff();
        loop {
            let out = self.connection().and_then(&mut f);
            match out {
                Ok(v) => {
                    if let Some(m) = &self.metrics {
                        m.set_waiting(None);
                    }
                    return Ok(v);
                }
                Err(e) if unreachable(&e) => {
                    self.con = None;
                    if started.elapsed() >= retry_for() {
                        return Err(RuntimeError::External(format!(
                            "{}: {what}: redis unreachable for {} s: {e}",
                            self.who,
                            retry_for().as_secs()
                        )));
                    }
                    if let Some(m) = &self.metrics {
                        m.set_waiting(Some(format!("redis unavailable: {e}")));
                    }
                    let wait = delays.next().expect("an endless schedule");
                    tracing::warn!(who = %self.who, what, error = %e,
                        retry_in_ms = wait.as_millis() as u64, "redis unavailable; retrying");
                    std::thread::sleep(wait);
                }
                Err(e) => {
                    return Err(RuntimeError::External(format!("{}: {what}: {e}", self.who)));
                }
            }
        }
    }

    fn connection(&mut self) -> redis::RedisResult<&mut redis::Connection> {
        if self.con.is_none() {
            let con = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
            con.set_read_timeout(Some(ANSWER_TIMEOUT))?;
            con.set_write_timeout(Some(ANSWER_TIMEOUT))?;
            self.con = Some(con);
        }
        Ok(self.con.as_mut().expect("just set"))
    }
}
