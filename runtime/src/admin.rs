//! The admin HTTP server: `/metrics` (Prometheus text), `/healthz` (the process is up) and `/readyz`
//! (the binary says it is ready, e.g. after its first full sync).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::task::JoinHandle;

use crate::Error;

/// Whether the binary is ready to serve; shared between the code that knows and the `/readyz` handler.
/// Starts not ready. Clones share the same flag. A detail (a degraded state that does not make the
/// binary unready, such as no CNI agent following a delegate-mode announcer) is appended to the
/// `/readyz` body either way.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>, Arc<Mutex<Option<String>>>);

impl Readiness {
    /// A new flag, not ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets what `/readyz` answers from now on.
    pub fn set_ready(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    /// What `/readyz` answers now.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Sets (or with `None` clears) the detail line `/readyz` adds to its body.
    pub fn set_detail(&self, detail: Option<String>) {
        *self.1.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = detail;
    }

    /// The detail line, if any.
    pub fn detail(&self) -> Option<String> {
        self.1.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

/// The buckets of every histogram (all in seconds: a heartbeat's round trip of a fraction of a
/// millisecond up to a failover or a decision round over thousands of addresses).
///
/// Why buckets: without them the exporter renders histograms as summaries, each label set keeping a
/// rolling quantile sketch (about 1 MiB for the Lease write durations after 10,000 takeovers, and one
/// sketch per peer for the heartbeat round trip), and a summary's quantiles cannot be aggregated
/// across nodes. Fixed buckets cost a few counters per label set and aggregate with
/// `histogram_quantile`.
pub const HISTOGRAM_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Installs the global Prometheus recorder (once per process) and returns its handle. Later calls return
/// the same handle, so tests and binaries can both call it. Fails only when some other recorder was
/// installed first.
pub fn install_metrics() -> Result<PrometheusHandle, Error> {
    static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
    let mut handle = HANDLE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(h) = handle.as_ref() {
        return Ok(h.clone());
    }
    let installed = PrometheusBuilder::new()
        .set_buckets(HISTOGRAM_BUCKETS)
        .map_err(|error| Error::Metrics(error.to_string()))?
        .install_recorder()
        .map_err(|error| Error::Metrics(error.to_string()))?;
    *handle = Some(installed.clone());
    Ok(installed)
}

#[derive(Clone)]
struct AppState {
    metrics: PrometheusHandle,
    readiness: Readiness,
}

/// Serves the admin endpoints on `addr` (port 0 picks one) on a new task. Returns the bound address and
/// the task, which ends only on an I/O error (abort it to stop serving).
pub async fn serve(
    addr: SocketAddr,
    handle: PrometheusHandle,
    readiness: Readiness,
) -> Result<(SocketAddr, JoinHandle<Result<(), Error>>), Error> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr, source })?;
    let bound = listener.local_addr().map_err(|source| Error::Bind { addr, source })?;
    // Histogram samples wait in the recorder until upkeep folds them into their buckets; with
    // the exporter's own listener off, nobody else runs it, and an unscraped process would keep
    // every sample (the peer heartbeat RTT alone records ten per second per peer).
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    let app = router(AppState { metrics: handle, readiness });
    tracing::info!(addr = %bound, "serving /metrics, /healthz and /readyz");
    let task = tokio::spawn(async move { axum::serve(listener, app).await.map_err(Error::Serve) });
    Ok((bound, task))
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    // With the exporter's HTTP listener feature off, nobody else drains histogram buckets: do it
    // on scrape.
    state.metrics.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    let (status, mut body) = if state.readiness.is_ready() {
        (StatusCode::OK, "ready\n".to_owned())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_owned())
    };
    if let Some(detail) = state.readiness.detail() {
        body.push_str(&detail);
        body.push('\n');
    }
    (status, body)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A plain HTTP/1.1 GET over a TCP socket: status code and body.
    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let status = response.split(' ').nth(1).unwrap().parse().unwrap();
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        (status, body)
    }

    #[tokio::test]
    async fn serves_health_readiness_and_metrics() {
        let handle = install_metrics().unwrap();
        // Idempotent: a second install returns a working handle, not an error.
        let again = install_metrics().unwrap();
        metrics::counter!("ferrolb_admin_test_total", "kind" => "probe").increment(3);
        metrics::histogram!("ferrolb_admin_test_seconds").record(0.003);

        let readiness = Readiness::new();
        let (addr, task) = serve("127.0.0.1:0".parse().unwrap(), handle, readiness.clone()).await.unwrap();
        assert_ne!(addr.port(), 0);

        assert_eq!(get(addr, "/healthz").await, (200, "ok\n".into()));
        assert_eq!(get(addr, "/readyz").await.0, 503);
        readiness.set_ready(true);
        assert_eq!(get(addr, "/readyz").await, (200, "ready\n".into()));
        readiness.set_detail(Some("no agent".into()));
        assert_eq!(get(addr, "/readyz").await, (200, "ready\nno agent\n".into()));
        readiness.set_detail(None);
        readiness.set_ready(false);
        assert_eq!(get(addr, "/readyz").await.0, 503);

        let (status, body) = get(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(body.contains(r#"ferrolb_admin_test_total{kind="probe"} 3"#), "{body}");
        assert!(again.render().contains("ferrolb_admin_test_total"));
        // Histograms have buckets (aggregable across nodes), not a summary's quantiles.
        assert!(body.contains(r#"ferrolb_admin_test_seconds_bucket{le="0.005"} 1"#), "{body}");
        assert!(body.contains(r#"ferrolb_admin_test_seconds_bucket{le="0.0025"} 0"#), "{body}");
        assert!(!body.contains("quantile"), "{body}");
        assert_eq!(get(addr, "/nope").await.0, 404);
        task.abort();
    }

    #[tokio::test]
    async fn bind_error_names_the_address() {
        let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let err = serve(addr, install_metrics().unwrap(), Readiness::new()).await.unwrap_err();
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
