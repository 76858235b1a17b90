//! The HTTP API of a running job, served by axum on the job's tokio runtime.
//!
//! Every answer is read from one [`JobView`]; nothing here keeps numbers of
//! its own. Endpoints (JSON shapes in the README, "HTTP API"):
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `/` | the web dashboard (module `dashboard`) |
//! | GET | `/api/v1` | the pipeline, its state and these endpoints |
//! | GET | `/healthz` | 200 `ok` while the process serves |
//! | GET | `/readyz` | 200 when restored and running; 503 otherwise |
//! | GET | `/metrics` | Prometheus text |
//! | GET | `/api/v1/job` | [`shoal_job::JobStatus`] |
//! | GET | `/api/v1/job/graph` | [`shoal_job::GraphSnapshot`] |
//! | GET | `/api/v1/job/checkpoints` | [`shoal_job::CheckpointsSnapshot`] |
//! | GET | `/api/v1/job/partitions` | [`shoal_job::PartitionsSnapshot`] |
//! | GET | `/api/v1/job/dead-letters?limit=N` | [`shoal_job::DeadLettersSnapshot`] |
//! | POST | `/api/v1/job/stop[?savepoint=true&name=N]` | 202: graceful stop (final checkpoint, kept as savepoint `N`) |
//!
//! POST endpoints require `Authorization: Bearer TOKEN` when a token is
//! configured; [`check_exposure`] refuses a non-loopback address without
//! one (GETs stay open: they only read).

use std::net::{SocketAddr, TcpListener};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use shoal_job::{JobView, Lifecycle};

mod dashboard;

/// The default address: loopback, port 8088.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8088";

/// The Prometheus text format's content type.
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Bind `addr`. When it is taken and `fallback` is set (the default
/// address, not one the user chose), bind a free port on the same IP.
/// Binding happens before the job starts, so a bad address fails the run
/// before anything is read or written.
pub fn bind(addr: SocketAddr, fallback: bool) -> std::io::Result<TcpListener> {
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) if fallback && e.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::info!(%addr, "address in use, taking a free port");
            TcpListener::bind(SocketAddr::new(addr.ip(), 0))?
        }
        Err(e) => return Err(e),
    };
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Refuse to expose the API beyond loopback without a token.
pub fn check_exposure(addr: SocketAddr, token: Option<&str>) -> Result<(), String> {
    if addr.ip().is_loopback() || token.is_some_and(|t| !t.is_empty()) {
        Ok(())
    } else {
        Err(format!(
            "the HTTP API would listen on {addr}, beyond loopback, without a token: \
             set --http-token (or SHOAL_HTTP_TOKEN), or listen on 127.0.0.1"
        ))
    }
}

#[derive(Clone)]
struct Api {
    job: JobView,
    token: Option<String>,
}

/// The API's routes over `job`; POSTs need `token` when it is set.
pub fn router(job: JobView, token: Option<String>) -> Router {
    let api = Api {
        job,
        token: token.filter(|t| !t.is_empty()),
    };
    Router::new()
        .route("/", get(dashboard::index))
        .route("/assets/app.js", get(dashboard::script))
        .route("/assets/app.css", get(dashboard::style))
        .route("/api/v1", get(index))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/job", get(status))
        .route("/api/v1/job/graph", get(graph))
        .route("/api/v1/job/checkpoints", get(checkpoints))
        .route("/api/v1/job/partitions", get(partitions))
        .route("/api/v1/job/dead-letters", get(dead_letters))
        .route("/api/v1/job/stop", post(stop))
        .with_state(api)
}

/// Serve the API on `listener` (from [`bind`]) until the process ends.
/// Must be called inside a tokio runtime.
pub fn serve(listener: TcpListener, job: JobView, token: Option<String>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let app = router(job, token);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the HTTP API stopped");
        }
    });
    Ok(())
}

/// What `/api/v1` lists.
const ENDPOINTS: [&str; 11] = [
    "GET /",
    "GET /api/v1",
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "GET /api/v1/job",
    "GET /api/v1/job/graph",
    "GET /api/v1/job/checkpoints",
    "GET /api/v1/job/partitions",
    "GET /api/v1/job/dead-letters?limit=N",
    "POST /api/v1/job/stop?savepoint=BOOL&name=NAME",
];

async fn index(State(api): State<Api>) -> Response {
    axum::Json(serde_json::json!({
        "pipeline": api.job.name(),
        "state": api.job.state(),
        "endpoints": ENDPOINTS,
    }))
    .into_response()
}

async fn readyz(State(api): State<Api>) -> Response {
    let state = api.job.state();
    let code = if api.job.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        axum::Json(serde_json::json!({ "ready": code == StatusCode::OK, "state": state })),
    )
        .into_response()
}

async fn metrics(State(api): State<Api>) -> Response {
    let mut body = api
        .job
        .metrics()
        .map(|m| m.to_prometheus())
        .unwrap_or_default();
    let up = |s: Lifecycle| i32::from(api.job.state() == s);
    body.push_str("# HELP shoal_job_state The job's lifecycle state (1 for the current one).\n# TYPE shoal_job_state gauge\n");
    for s in [
        Lifecycle::Starting,
        Lifecycle::Restoring,
        Lifecycle::Running,
        Lifecycle::Stopping,
        Lifecycle::Finished,
        Lifecycle::Failed,
    ] {
        let name = serde_json::to_value(s).expect("a state serialises");
        body.push_str(&format!("shoal_job_state{{state={name}}} {}\n", up(s)));
    }
    ([(header::CONTENT_TYPE, PROMETHEUS)], body).into_response()
}

async fn status(State(api): State<Api>) -> Response {
    axum::Json(api.job.status()).into_response()
}

async fn graph(State(api): State<Api>) -> Response {
    axum::Json(api.job.graph()).into_response()
}

async fn checkpoints(State(api): State<Api>) -> Response {
    axum::Json(api.job.checkpoints()).into_response()
}

async fn partitions(State(api): State<Api>) -> Response {
    axum::Json(api.job.partitions()).into_response()
}

#[derive(serde::Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn dead_letters(State(api): State<Api>, Query(q): Query<Limit>) -> Response {
    axum::Json(api.job.dead_letters(q.limit.unwrap_or(20).min(100))).into_response()
}

#[derive(serde::Deserialize)]
struct StopQuery {
    #[serde(default)]
    savepoint: bool,
    /// The savepoint's name (default `savepoint-<unix seconds>`).
    name: Option<String>,
}

fn error(code: StatusCode, message: &str) -> Response {
    (code, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// Whether `headers` carry `Authorization: Bearer TOKEN` (compared in
/// constant time).
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn stop(State(api): State<Api>, headers: HeaderMap, Query(q): Query<StopQuery>) -> Response {
    if let Some(token) = &api.token
        && !authorized(&headers, token)
    {
        let mut r = error(StatusCode::UNAUTHORIZED, "a bearer token is required");
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("header"));
        return r;
    }
    let savepoint = if q.savepoint {
        let name = q.name.unwrap_or_else(|| {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            format!("savepoint-{secs}")
        });
        if let Err(e) = api.job.keep_savepoint(&name) {
            let code = match e {
                shoal_job::SavepointRefused::NoCheckpoints => StatusCode::CONFLICT,
                shoal_job::SavepointRefused::BadName(_) => StatusCode::BAD_REQUEST,
            };
            return error(code, &e.to_string());
        }
        Some(name)
    } else {
        None
    };
    tracing::info!(pipeline = api.job.name(), savepoint = ?savepoint, "stop asked over HTTP");
    let state = api.job.stop();
    (
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({ "state": state, "savepoint": savepoint })),
    )
        .into_response()
}
