//! kube-sim: an in-memory Kubernetes API server for FerroLB's tests, benchmarks and demo.
//!
//! It speaks the real API over HTTP(S) (discovery, list/watch with resourceVersions, bookmarks
//! and 410 Gone, optimistic concurrency, status subresources, patches and server-side apply,
//! finalizers, CRDs with schema validation), so the production `kube` client code and `kubectl`
//! run against it unchanged. `README.md` lists where it differs from a real kube-apiserver.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let sim = kube_sim::KubeSim::start(kube_sim::Options::default()).await?;
//! let client = sim.client().await?;
//! sim.admin().await?.pause(kube_sim::admin::PauseMode::Hang).await?;
//! # Ok(()) }
//! ```

pub mod admin;
pub mod apply;
pub mod builtin;
pub mod error;
pub mod events;
pub mod fields;
pub mod labels;
mod openapi;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod schema;
pub mod seed;
pub mod server;
pub mod sim;
pub mod store;
pub mod table;
mod tls;
pub mod types;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

pub use admin::AdminClient;

/// How to run kube-sim.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Serve HTTPS with a generated CA (true) or plain HTTP.
    pub tls: bool,
    /// Bearer token clients must send; generated when `None`.
    pub token: Option<String>,
    /// Extra IP addresses the server certificate is valid for (beyond the listen address, and
    /// 127.0.0.1 when listening on an unspecified address), e.g. the addresses clients in other
    /// network namespaces use.
    pub tls_sans: Vec<std::net::IpAddr>,
    /// Where to write the kubeconfig; a temporary file when `None`.
    pub kubeconfig_out: Option<PathBuf>,
    /// ClusterIP ranges (one per family).
    pub service_cidrs: Vec<ipnet::IpNet>,
    /// Changes kept for watches; older resourceVersions get 410 Gone.
    pub history: usize,
    /// Interval of BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: true,
            token: None,
            tls_sans: Vec::new(),
            kubeconfig_out: None,
            service_cidrs: vec![
                "10.96.0.0/16".parse().expect("valid"),
                "fd00:10:96::/112".parse().expect("valid"),
            ],
            history: 100_000,
            bookmark_interval: Duration::from_secs(5),
        }
    }
}

/// A running kube-sim. Dropping it stops the server.
pub struct KubeSim {
    addr: SocketAddr,
    url: String,
    token: String,
    kubeconfig: PathBuf,
    shared: Arc<server::Shared>,
    shutdown: tokio::sync::watch::Sender<bool>,
    _tempdir: Option<TempDir>,
}

impl std::fmt::Debug for KubeSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSim").field("url", &self.url).finish()
    }
}

/// A directory removed on drop (no extra crate for one use).
#[derive(Debug)]
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl KubeSim {
    /// Starts serving and writes the kubeconfig.
    pub async fn start(opts: Options) -> anyhow::Result<Self> {
        let listener =
            TcpListener::bind(opts.listen).await.with_context(|| format!("binding {}", opts.listen))?;
        let addr = listener.local_addr()?;
        let token = opts.token.clone().unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let tls = if opts.tls {
            let mut ips = vec![addr.ip()];
            if addr.ip().is_unspecified() {
                ips.push(std::net::IpAddr::from([127, 0, 0, 1]));
            }
            ips.extend(opts.tls_sans.iter().copied().filter(|ip| !ips.contains(ip)).collect::<Vec<_>>());
            Some(tls::generate(&ips)?)
        } else {
            None
        };
        let host = if addr.ip().is_unspecified() { "127.0.0.1".to_string() } else { addr.ip().to_string() };
        let host = if host.contains(':') { format!("[{host}]") } else { host };
        let url = format!("{}://{host}:{}", if tls.is_some() { "https" } else { "http" }, addr.port());

        let (tempdir, kubeconfig) = match &opts.kubeconfig_out {
            Some(p) => (None, p.clone()),
            None => {
                let dir = std::env::temp_dir().join(format!("kube-sim-{}", uuid::Uuid::new_v4().simple()));
                std::fs::create_dir_all(&dir)?;
                let path = dir.join("kubeconfig");
                (Some(TempDir(dir)), path)
            }
        };
        write_kubeconfig(&kubeconfig, &url, &token, tls.as_ref().map(|t| t.ca_pem.as_str()))?;

        let sim = Arc::new(sim::Sim::new(opts.service_cidrs.clone(), opts.history));
        let shared = Arc::new(server::Shared::new(sim, token.clone(), opts.bookmark_interval));
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(serve(listener, shared.clone(), tls.map(|t| t.server_config), shutdown_rx));
        Ok(Self { addr, url, token, kubeconfig, shared, shutdown, _tempdir: tempdir })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT` (or `http://`).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// A kubeconfig `kube` and `kubectl` accept.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// A `kube::Client` configured from the kubeconfig, the way the FerroLB binaries build theirs.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        client_from_kubeconfig(&self.kubeconfig).await
    }

    /// The client configuration, for tests that tune it (e.g. `default_retry = false` to see
    /// injected 429/503 answers instead of kube's transparent retries).
    pub async fn config(&self) -> anyhow::Result<kube::Config> {
        config_from_kubeconfig(&self.kubeconfig).await
    }

    /// The fault-injection and counters client.
    pub async fn admin(&self) -> anyhow::Result<AdminClient> {
        Ok(AdminClient::new(self.client().await?))
    }

    /// Request counters, read in-process (no request, so they don't count themselves).
    pub fn counters(&self) -> admin::Counters {
        self.shared.counters.snapshot()
    }

    /// Direct access to the simulated API state (for assertions that must not go over HTTP).
    pub fn sim(&self) -> &Arc<sim::Sim> {
        &self.shared.sim
    }

    /// Stops accepting connections and ends open ones.
    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
    }
}

impl Drop for KubeSim {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Builds a client from a kubeconfig file.
pub async fn client_from_kubeconfig(path: &Path) -> anyhow::Result<kube::Client> {
    Ok(kube::Client::try_from(config_from_kubeconfig(path).await?)?)
}

/// Reads a kubeconfig file into a client configuration.
pub async fn config_from_kubeconfig(path: &Path) -> anyhow::Result<kube::Config> {
    let kc = kube::config::Kubeconfig::read_from(path)?;
    Ok(kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await?)
}

fn write_kubeconfig(path: &Path, url: &str, token: &str, ca_pem: Option<&str>) -> anyhow::Result<()> {
    use base64::Engine;
    let ca = ca_pem
        .map(|pem| {
            format!(
                "\n    certificate-authority-data: {}",
                base64::engine::general_purpose::STANDARD.encode(pem)
            )
        })
        .unwrap_or_default();
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-sim\n  cluster:\n    server: {url}{ca}\nusers:\n- name: kube-sim\n  user:\n    token: {token}\ncontexts:\n- name: kube-sim\n  context:\n    cluster: kube-sim\n    user: kube-sim\n    namespace: default\ncurrent-context: kube-sim\n"
    );
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

async fn serve(
    listener: TcpListener,
    shared: Arc<server::Shared>,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let router = axum::Router::new().fallback({
        let shared = shared.clone();
        move |req: axum::extract::Request| server::handle(shared.clone(), req)
    });
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let acceptor = acceptor.clone();
        let mut conn_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let result = match acceptor {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(tls_stream) => {
                        let conn = builder.serve_connection(TokioIo::new(tls_stream), service);
                        tokio::select! { r = conn => r, _ = conn_shutdown.changed() => Ok(()) }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                },
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    tokio::select! { r = conn => r, _ = conn_shutdown.changed() => Ok(()) }
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}
