//! `ferrolb-nic-agent`: the reference CNI-side agent. Follows the announcer on this node and keeps the
//! addresses the node holds on one interface (over netlink), reporting each result to the announcer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use ferrolb_cni::agent::{self, AgentConfig};
use ferrolb_cni::{Target, TlsTarget};
use ferrolb_runtime::admin::{self, Readiness};
use ferrolb_runtime::cli::LogFormat;

/// Programs the LoadBalancer addresses this node holds on one interface, following the local
/// FerroLB announcer (run it with `--datapath delegate`), and reports each result to it. Only
/// addresses the agent added (marked with address protocol 102) are ever removed.
#[derive(Parser, Debug)]
#[command(name = "ferrolb-nic-agent", version)]
struct Args {
    /// The announcer's gRPC unix socket.
    #[arg(long, env = "FERROLB_SOCKET", value_name = "PATH", default_value = ferrolb_proto::DEFAULT_SOCKET_PATH,
          conflicts_with = "grpc_addr")]
    socket: PathBuf,

    /// The announcer's TCP endpoint (its --grpc-listen) instead of the socket; needs --tls-cert,
    /// --tls-key and --tls-ca (the announcer serves TCP with mutual TLS only).
    #[arg(long, env = "FERROLB_GRPC_ADDR", value_name = "HOST:PORT", requires_all = ["tls_cert", "tls_key", "tls_ca"])]
    grpc_addr: Option<String>,

    /// With --grpc-addr: this agent's certificate (PEM), signed by the announcer's --grpc-client-ca.
    #[arg(long, env = "FERROLB_TLS_CERT", value_name = "PATH", requires = "grpc_addr")]
    tls_cert: Option<PathBuf>,

    /// With --grpc-addr: this agent's private key (PEM).
    #[arg(long, env = "FERROLB_TLS_KEY", value_name = "PATH", requires = "grpc_addr")]
    tls_key: Option<PathBuf>,

    /// With --grpc-addr: the CA (PEM) the announcer's certificate must chain to.
    #[arg(long, env = "FERROLB_TLS_CA", value_name = "PATH", requires = "grpc_addr")]
    tls_ca: Option<PathBuf>,

    /// With --grpc-addr: the name the announcer's certificate must carry (default: HOST).
    #[arg(long, env = "FERROLB_TLS_SERVER_NAME", value_name = "NAME", requires = "grpc_addr")]
    tls_server_name: Option<String>,

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

impl Args {
    /// The unix socket, or TCP with mutual TLS when --grpc-addr is given. The PEM files are read
    /// once, at start: a missing or unreadable file is a startup error, not a retry loop.
    fn target(&self) -> anyhow::Result<Target> {
        let Some(address) = &self.grpc_addr else { return Ok(Target::unix(&self.socket)) };
        // clap requires the three files with --grpc-addr.
        let (Some(cert), Some(key), Some(ca)) = (&self.tls_cert, &self.tls_key, &self.tls_ca) else {
            anyhow::bail!("--grpc-addr {address} needs --tls-cert, --tls-key and --tls-ca");
        };
        let mut tls = TlsTarget::from_files(address, ca, cert, key)?;
        if let Some(name) = &self.tls_server_name {
            tls = tls.with_server_name(name);
        }
        Ok(Target::Tls(tls))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_format);
    let target = args.target()?;
    let handle = admin::install_metrics().context("installing the metrics recorder")?;
    agent::metrics::describe();
    let readiness = Readiness::new();
    let (bound, _admin) = admin::serve(args.metrics_addr, handle, readiness.clone())
        .await
        .with_context(|| format!("serving metrics on {}", args.metrics_addr))?;
    let mut config = AgentConfig::new(target.clone(), &args.interface);
    config.fence_after = args.fence_after;
    config.resync_every = args.resync_interval;
    tracing::info!(announcer = %target.describe(), interface = %args.interface, metrics = %bound, "ferrolb-nic-agent starting");
    agent::run(config, readiness, ferrolb_runtime::shutdown_signal()).await.context("running the agent")?;
    tracing::info!("ferrolb-nic-agent stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from([&["ferrolb-nic-agent", "--interface", "eth0"], args].concat())
    }

    #[test]
    fn tcp_needs_every_tls_file_and_tls_files_need_tcp() {
        let tls = ["--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-ca", "ca.pem"];
        let ok = parse(&[&["--grpc-addr", "198.51.100.11:7443"], &tls[..]].concat()).unwrap();
        assert_eq!(ok.grpc_addr.as_deref(), Some("198.51.100.11:7443"));
        // Plaintext TCP does not exist on the announcer's side: refused here too.
        let error = parse(&["--grpc-addr", "198.51.100.11:7443", "--tls-cert", "c.pem"]).unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::MissingRequiredArgument, "{error}");
        let error = parse(&["--tls-ca", "ca.pem"]).unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::MissingRequiredArgument, "{error}");
        let error =
            parse(&[&["--socket", "/run/a.sock", "--grpc-addr", "h:1"], &tls[..]].concat()).unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::ArgumentConflict, "{error}");
    }

    #[test]
    fn the_socket_is_the_default_target_and_unreadable_tls_files_are_named() {
        let unix = parse(&[]).unwrap().target().unwrap();
        assert_eq!(unix, Target::unix(ferrolb_proto::DEFAULT_SOCKET_PATH));
        let args = parse(&[
            "--grpc-addr",
            "198.51.100.11:7443",
            "--tls-cert",
            "/nonexistent/tls.crt",
            "--tls-key",
            "/nonexistent/tls.key",
            "--tls-ca",
            "/nonexistent/ca.pem",
        ])
        .unwrap();
        let error = args.target().unwrap_err().to_string();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
    }
}
