//! `kube-sim`: runs the Kubernetes API simulator until interrupted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// An in-memory Kubernetes API server for tests, benchmarks and the demo.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:0", env = "KUBE_SIM_LISTEN")]
    listen: SocketAddr,
    /// Serve plain HTTP instead of HTTPS.
    #[arg(long, env = "KUBE_SIM_INSECURE_HTTP")]
    insecure_http: bool,
    /// Bearer token clients must present (generated when omitted).
    #[arg(long, env = "KUBE_SIM_TOKEN")]
    token: Option<String>,
    /// Extra IP addresses for the server certificate, comma separated or repeated (for clients that
    /// reach the server at another address than the kubeconfig's, e.g. from other network namespaces).
    #[arg(long = "tls-san", env = "KUBE_SIM_TLS_SAN", value_delimiter = ',')]
    tls_sans: Vec<std::net::IpAddr>,
    /// Write a kubeconfig for `kube` and `kubectl` here.
    #[arg(long, env = "KUBE_SIM_KUBECONFIG_OUT", default_value = "kube-sim.kubeconfig")]
    kubeconfig_out: PathBuf,
    /// ClusterIP ranges, comma separated (one per IP family).
    #[arg(
        long,
        env = "KUBE_SIM_SERVICE_CIDR",
        value_delimiter = ',',
        default_value = "10.96.0.0/16,fd00:10:96::/112"
    )]
    service_cidr: Vec<ipnet::IpNet>,
    /// Changes kept for watches; a watch from an older resourceVersion gets 410 Gone.
    #[arg(long, env = "KUBE_SIM_HISTORY", default_value_t = 100_000)]
    history: usize,
    /// Interval between BOOKMARK events on watches that allow them.
    #[arg(long, env = "KUBE_SIM_BOOKMARK_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    bookmark_interval: Duration,
    /// Apply these manifests (files or directories of YAML) at start, e.g. the CRDs.
    #[arg(long = "apply", env = "KUBE_SIM_APPLY", value_delimiter = ',')]
    apply: Vec<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let args = Args::parse();
    let sim = kube_sim::KubeSim::start(kube_sim::Options {
        listen: args.listen,
        tls: !args.insecure_http,
        token: args.token,
        tls_sans: args.tls_sans,
        kubeconfig_out: Some(args.kubeconfig_out.clone()),
        service_cidrs: args.service_cidr,
        history: args.history,
        bookmark_interval: args.bookmark_interval,
    })
    .await?;
    for path in &args.apply {
        let n = kube_sim::seed::apply_path(sim.sim(), path)?;
        println!("applied {n} object(s) from {}", path.display());
    }
    println!("kube-sim listening on {}", sim.url());
    println!("kubeconfig written to {}", args.kubeconfig_out.display());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
