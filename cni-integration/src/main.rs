//! `ferrolb-nic-agent`: the reference CNI-side agent. Follows the announcer on this node and keeps the
//! addresses the node holds on one interface (over netlink), reporting each result to the announcer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use ferrolb_cni::Target;
use ferrolb_cni::agent::{self, AgentConfig};
use ferrolb_runtime::admin::{self, Readiness};
use ferrolb_runtime::cli::LogFormat;

/// Programs the LoadBalancer addresses this node holds on one interface, following the local
/// FerroLB announcer (run it with `--datapath delegate`), and reports each result to it. Only
/// addresses the agent added (marked with address protocol 102) are ever removed.
#[derive(Parser, Debug)]
#[command(name = "ferrolb-nic-agent", version)]
struct Args {
    /// The announcer's gRPC unix socket.
    #[arg(long, env = "FERROLB_SOCKET", value_name = "PATH", default_value = ferrolb_proto::DEFAULT_SOCKET_PATH)]
    socket: PathBuf,

    /// The interface to program the held addresses on.
    #[arg(long, env = "FERROLB_INTERFACE", value_name = "NAME")]
    interface: String,

    /// Address of the HTTP server for /metrics (Prometheus), /healthz and /readyz. Port 0 picks a free
    /// port.
    #[arg(long, env = "FERROLB_METRICS_ADDR", value_name = "ADDR", default_value = "0.0.0.0:9092")]
    metrics_addr: SocketAddr,

    /// How long the announcer may be unreachable before the agent removes its addresses (another
    /// node takes them over meanwhile).
    #[arg(long, env = "FERROLB_FENCE_AFTER", value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    fence_after: Duration,

    /// How often the agent checks the interface without news from the announcer.
    #[arg(long, env = "FERROLB_RESYNC_INTERVAL", value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    resync_interval: Duration,

    /// Log format. The RUST_LOG environment variable filters what is logged (default: info).
    #[arg(long, env = "FERROLB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_format);
    let handle = admin::install_metrics().context("installing the metrics recorder")?;
    agent::metrics::describe();
    let readiness = Readiness::new();
    let (bound, _admin) = admin::serve(args.metrics_addr, handle, readiness.clone())
        .await
        .with_context(|| format!("serving metrics on {}", args.metrics_addr))?;
    let mut config = AgentConfig::new(Target::unix(&args.socket), &args.interface);
    config.fence_after = args.fence_after;
    config.resync_every = args.resync_interval;
    tracing::info!(socket = %args.socket.display(), interface = %args.interface, metrics = %bound, "ferrolb-nic-agent starting");
    agent::run(config, readiness, shutdown_signal()).await.context("running the agent")?;
    tracing::info!("ferrolb-nic-agent stopped");
    Ok(())
}
