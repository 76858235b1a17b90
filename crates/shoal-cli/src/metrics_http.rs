//! `shoal run --metrics-addr ADDR`: the job's metrics in the Prometheus
//! text format at `http://ADDR/metrics`, served by `tiny_http` on a thread
//! of its own while the job runs.

use std::net::SocketAddr;

use anyhow::Context;
use shoal_runtime::Metrics;

/// The Prometheus text format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A bound metrics endpoint, not serving yet.
pub struct Endpoint {
    server: tiny_http::Server,
    /// The address bound (port 0 picks a free one).
    pub addr: SocketAddr,
}

/// Bind `addr` — before the job starts, so a busy port fails the run
/// before anything is read or written.
pub fn bind(addr: SocketAddr) -> anyhow::Result<Endpoint> {
    let server = tiny_http::Server::http(addr)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("serving metrics on {addr}"))?;
    let addr = server
        .server_addr()
        .to_ip()
        .context("metrics server address")?;
    Ok(Endpoint { server, addr })
}

/// Serve `metrics` at `/metrics` on a thread of its own.
pub fn serve(endpoint: Endpoint, metrics: Metrics) -> anyhow::Result<()> {
    let server = endpoint.server;
    std::thread::Builder::new()
        .name("shoal-metrics".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let path = request.url().split('?').next().unwrap_or("");
                let response = if path == "/metrics" {
                    let header = tiny_http::Header::from_bytes("Content-Type", CONTENT_TYPE)
                        .expect("valid header");
                    tiny_http::Response::from_string(metrics.to_prometheus()).with_header(header)
                } else {
                    tiny_http::Response::from_string("see /metrics\n").with_status_code(404)
                };
                if let Err(e) = request.respond(response) {
                    tracing::debug!(error = %e, "metrics response not sent");
                }
            }
        })
        .context("starting the metrics thread")?;
    Ok(())
}
