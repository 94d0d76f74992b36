//! `ferrolb-announcer`: one per node. Elects, per announced (Service, address), the node that answers
//! ARP/NDP for it, and answers for the addresses this node holds.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use ferrolb_l2announcer::adapter::{self, GrpcTcp, Mode, Settings};
use ferrolb_l2announcer::datapath::{AnnounceSchedule, RtNetlink};
use ferrolb_l2announcer::engine::EngineConfig;
use ferrolb_l2announcer::lease_state::LeaseConfig;
use ferrolb_l2announcer::liveness::LivenessConfig;
use ferrolb_l2announcer::peer::{PeerConfig, PeerKey};
use ferrolb_proto::tls::ServerTlsFiles;
use ferrolb_runtime::cli::CommonArgs;
use ferrolb_runtime::election::ElectionConfig;
use tokio_util::sync::CancellationToken;

ferrolb_runtime::jemalloc_global_allocator!();

fn duration(s: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(s)
}

/// `--netlink-address-lifetime`: a duration, or `forever`.
#[derive(Debug, Clone, Copy)]
struct AddressLifetime(Option<Duration>);

fn address_lifetime(s: &str) -> Result<AddressLifetime, String> {
    if s == "forever" {
        return Ok(AddressLifetime(None));
    }
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    // The kernel counts lifetimes in whole seconds; with 1 s, a refresh every 333 ms would leave no
    // room for one late refresh.
    if d.subsec_nanos() != 0 || d < Duration::from_secs(2) {
        return Err(format!("{s:?} must be whole seconds, at least 2s (or `forever`)"));
    }
    Ok(AddressLifetime(Some(d)))
}

/// FerroLB L2 announcer.
#[derive(Debug, Parser)]
#[command(name = "ferrolb-announcer", version, about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,

    /// This node's name (its Node object). Without it: FERROLB_NODE_NAME, then NODE_NAME.
    #[arg(long, env = "FERROLB_NODE_NAME", value_name = "NODE")]
    node_name: Option<String>,

    /// How addresses are made reachable: `responder` (userspace ARP/NDP replies), `netlink` (the
    /// address is added to the interface and the kernel answers), `delegate` (a CNI agent programs
    /// its datapath through the gRPC API).
    #[arg(long, env = "FERROLB_DATAPATH", value_enum, default_value_t = Mode::Responder)]
    datapath: Mode,

    /// With `--datapath netlink`: addresses are added with this lifetime (whole seconds, at least
    /// 2s) and refreshed every third of it while held, so the kernel deletes them by itself this long
    /// after the announcer is killed. `forever`: permanent addresses (a killed announcer's addresses
    /// are then answered until it restarts).
    #[arg(long, env = "FERROLB_NETLINK_ADDRESS_LIFETIME", value_name = "DURATION|forever",
          default_value = "3s", value_parser = address_lifetime)]
    netlink_address_lifetime: AddressLifetime,

    /// Unix socket of the gRPC API (mode 0660). `none`: not served.
    #[arg(long, env = "FERROLB_GRPC_SOCKET", value_name = "PATH",
          default_value = ferrolb_proto::server::DEFAULT_SOCKET_PATH)]
    grpc_socket: String,

    /// Also serve the gRPC API on TCP at this address:port, with mutual TLS only: needs
    /// --grpc-tls-cert, --grpc-tls-key and --grpc-client-ca (plaintext TCP is refused at startup).
    #[arg(long, env = "FERROLB_GRPC_LISTEN", value_name = "ADDR:PORT")]
    grpc_listen: Option<SocketAddr>,

    /// With --grpc-listen: the server's certificate chain (PEM, leaf first).
    #[arg(long, env = "FERROLB_GRPC_TLS_CERT", value_name = "PATH")]
    grpc_tls_cert: Option<PathBuf>,

    /// With --grpc-listen: the server's private key (PEM).
    #[arg(long, env = "FERROLB_GRPC_TLS_KEY", value_name = "PATH")]
    grpc_tls_key: Option<PathBuf>,

    /// With --grpc-listen: the CA certificates (PEM) client certificates must chain to; clients
    /// without such a certificate are refused during the TLS handshake.
    #[arg(long, env = "FERROLB_GRPC_CLIENT_CA", value_name = "PATH")]
    grpc_client_ca: Option<PathBuf>,

    /// With `--datapath delegate`: how long an address this node starts to answer for waits for the
    /// CNI agent's ReportProgrammed before a Warning Event (ProgrammingFailed) and the failure
    /// metric say so. No gratuitous ARP/NA goes out before an ok report.
    #[arg(long, env = "FERROLB_DELEGATE_REPORT_TIMEOUT", value_name = "DURATION", default_value = "5s",
          value_parser = duration)]
    delegate_report_timeout: Duration,

    /// Where the peer channel listens (heartbeats between announcers). Peers are dialled at their
    /// Node's InternalIP with the port they report. `none`: no peer channel (liveness from heartbeat
    /// Leases only, so failover takes the heartbeat Lease duration).
    #[arg(long, env = "FERROLB_PEER_ADDR", value_name = "ADDR", default_value = "0.0.0.0:7947")]
    peer_addr: String,

    /// File holding the peer channel's shared key (at least 16 bytes). Without it the peer channel is
    /// unauthenticated, and only peers without a key are heard.
    #[arg(long, env = "FERROLB_PEER_KEY_FILE", value_name = "PATH")]
    peer_key_file: Option<PathBuf>,

    /// Interval of heartbeats to each peer.
    #[arg(long, env = "FERROLB_PEER_INTERVAL", value_name = "DURATION", default_value = "100ms",
          value_parser = duration)]
    peer_interval: Duration,

    /// A peer not heard for this long (and whose heartbeat Lease expired) is dead.
    #[arg(long, env = "FERROLB_PEER_TIMEOUT", value_name = "DURATION", default_value = "500ms",
          value_parser = duration)]
    peer_timeout: Duration,

    /// A holder whose heartbeat Lease lapsed keeps answering while a peer acknowledged one of its
    /// heartbeats sent less than this long ago. At most --peer-timeout.
    #[arg(long, env = "FERROLB_PEER_ACK_TIMEOUT", value_name = "DURATION", default_value = "400ms",
          value_parser = duration)]
    peer_ack_timeout: Duration,

    /// Duration of this node's heartbeat Lease (`ferrolb-node-<node>`), whole seconds.
    #[arg(long, env = "FERROLB_HEARTBEAT_LEASE_DURATION", value_name = "DURATION", default_value = "3s",
          value_parser = duration)]
    heartbeat_lease_duration: Duration,

    /// How long this node counts its heartbeat claim valid after its last confirmed renewal.
    #[arg(long, env = "FERROLB_HEARTBEAT_RENEW_DEADLINE", value_name = "DURATION", default_value = "2s",
          value_parser = duration)]
    heartbeat_renew_deadline: Duration,

    /// Interval of heartbeat Lease renewals. With the peer channel and more than 10 announcers, the
    /// Lease is written every ⌈announcers / 10⌉ periods and read in between, so the cluster writes
    /// about 10 heartbeats per period whatever its size.
    #[arg(long, env = "FERROLB_HEARTBEAT_RETRY_PERIOD", value_name = "DURATION", default_value = "1s",
          value_parser = duration)]
    heartbeat_retry_period: Duration,

    /// Delay per fallback position before a candidate other than the placement's choice takes a
    /// free address.
    #[arg(long, env = "FERROLB_ACQUIRE_STAGGER", value_name = "DURATION", default_value = "200ms",
          value_parser = duration)]
    acquire_stagger: Duration,

    /// A returning node gets its share back only after being ready this long, and a holder hands an
    /// address on only after holding it this long.
    #[arg(long, env = "FERROLB_HANDOVER_SETTLE", value_name = "DURATION", default_value = "5s",
          value_parser = duration)]
    handover_settle: Duration,

    /// Longest wait on SIGTERM for the successors to take this node's addresses.
    #[arg(long, env = "FERROLB_SHUTDOWN_GRACE", value_name = "DURATION", default_value = "5s",
          value_parser = duration)]
    shutdown_grace: Duration,

    /// Announce Services without `spec.loadBalancerClass` (as well as the classes served).
    #[arg(long, env = "FERROLB_DEFAULT_CLASS", default_value_t = true, action = clap::ArgAction::Set)]
    default_class: bool,

    /// Load-balancer classes served besides `ferrolb.io/l2` (always served), comma separated, e.g.
    /// `ingress,io.cilium/l2-announcer`; give ferrolb-ipam the same list. Services of other
    /// classes are never announced and get no Lease.
    #[arg(long, env = "FERROLB_LOAD_BALANCER_CLASSES", value_name = "CLASSES", default_value = "",
          value_parser = ferrolb_api::parse_class_list)]
    load_balancer_classes: std::collections::BTreeSet<String>,

    /// Lease writes in flight at once.
    #[arg(long, env = "FERROLB_WRITE_CONCURRENCY", default_value_t = 32)]
    write_concurrency: usize,

    /// How often preflight reads kube-proxy's and Cilium's configuration in kube-system again
    /// (three GETs by name, so 3 x nodes reads per interval in the cluster). Its checks (kube-proxy
    /// in IPVS mode without strictARP, no kube-proxy, policies that select none of this node's
    /// interfaces; Warning Events on the Node, the ferrolb_announcer_preflight_failed gauge) run at
    /// startup and every 5s with what the node and the watch caches show.
    #[arg(long, env = "FERROLB_PREFLIGHT_INTERVAL", value_name = "DURATION", default_value = "5m",
          value_parser = preflight_interval)]
    preflight_interval: Duration,

    /// BGP mode: open the sessions of the BGPPeers that select this node and advertise what the
    /// BGPAdvertisements select (nothing is opened while no BGPPeer selects the node); `false`: the
    /// BGP kinds are not watched (needs list/watch on them, and get/list/watch on Secrets in the
    /// namespace for MD5 passwords; the chart grants both).
    #[arg(long, env = "FERROLB_BGP", default_value_t = true, action = clap::ArgAction::Set)]
    bgp: bool,
}

/// `--preflight-interval`: at least a second, so a typo cannot turn it into a tight loop of API reads.
fn preflight_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_secs(1) {
        return Err(format!("{s:?} is shorter than 1s"));
    }
    Ok(d)
}

/// `--grpc-listen` with its TLS files: TCP is served with mutual TLS or not at all.
fn grpc_tcp(
    listen: Option<SocketAddr>,
    cert: Option<&Path>,
    key: Option<&Path>,
    client_ca: Option<&Path>,
) -> anyhow::Result<Option<GrpcTcp>> {
    let flags = [("--grpc-tls-cert", cert), ("--grpc-tls-key", key), ("--grpc-client-ca", client_ca)];
    let Some(listen) = listen else {
        let given: Vec<&str> = flags.iter().filter(|(_, v)| v.is_some()).map(|(f, _)| *f).collect();
        if !given.is_empty() {
            bail!("{} given without --grpc-listen: nothing would use them", given.join(", "));
        }
        return Ok(None);
    };
    let (Some(cert), Some(key), Some(client_ca)) = (cert, key, client_ca) else {
        let missing: Vec<&str> = flags.iter().filter(|(_, v)| v.is_none()).map(|(f, _)| *f).collect();
        bail!(
            "--grpc-listen {listen}: plaintext gRPC over TCP is refused; the API is served on TCP with \
             mutual TLS only: missing {}",
            missing.join(", ")
        );
    };
    let files = ServerTlsFiles {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        client_ca: client_ca.to_path_buf(),
    };
    let tls =
        ferrolb_proto::tls::server_tls_config(&files).with_context(|| format!("--grpc-listen {listen}"))?;
    Ok(Some(GrpcTcp { listen, tls }))
}

impl Args {
    fn settings(&self) -> anyhow::Result<Settings> {
        let node = self
            .node_name
            .clone()
            .or_else(|| std::env::var("NODE_NAME").ok())
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .context("no node name: pass --node-name or set NODE_NAME")?;
        let liveness = LivenessConfig {
            heartbeat_lease_duration: self.heartbeat_lease_duration,
            peer_timeout: self.peer_timeout,
            ack_timeout: self.peer_ack_timeout,
        };
        liveness.validate().map_err(anyhow::Error::msg)?;
        let heartbeat = ElectionConfig {
            identity: node.clone(),
            lease_duration: self.heartbeat_lease_duration,
            renew_deadline: self.heartbeat_renew_deadline,
            retry_period: self.heartbeat_retry_period,
        };
        heartbeat.validate().map_err(|e| {
            anyhow::anyhow!(
                "{}",
                e.to_string()
                    .replace("--lease", "--heartbeat-lease")
                    .replace("--renew", "--heartbeat-renew")
                    .replace("--retry", "--heartbeat-retry")
            )
        })?;
        if self.heartbeat_lease_duration.subsec_nanos() != 0 {
            bail!("--heartbeat-lease-duration must be whole seconds (a Lease holds leaseDurationSeconds)");
        }
        let peer = match self.peer_addr.as_str() {
            "none" => None,
            addr => {
                let listen: SocketAddr =
                    addr.parse().with_context(|| format!("--peer-addr {addr:?} is not an address:port"))?;
                let key = self.peer_key_file.as_deref().map(PeerKey::from_file).transpose()?;
                let mut cfg = PeerConfig::new(node.clone(), listen);
                cfg.interval = self.peer_interval;
                cfg.silence = self.peer_timeout;
                cfg.key = key;
                Some(cfg)
            }
        };
        Ok(Settings {
            engine: EngineConfig {
                this_node: node.clone(),
                lease: LeaseConfig {
                    acquire_stagger: self.acquire_stagger,
                    handover_settle: self.handover_settle,
                    heartbeat_lease_duration: self.heartbeat_lease_duration,
                },
                liveness,
                classes: ferrolb_api::ServedClasses::new(
                    self.default_class,
                    self.load_balancer_classes.clone(),
                ),
            },
            node: node.clone(),
            namespace: self.common.namespace(),
            heartbeat,
            datapath: self.datapath,
            netlink_address_lifetime: self.netlink_address_lifetime.0,
            schedule: AnnounceSchedule::default(),
            grpc_socket: (self.grpc_socket != "none").then(|| PathBuf::from(&self.grpc_socket)),
            grpc_tcp: grpc_tcp(
                self.grpc_listen,
                self.grpc_tls_cert.as_deref(),
                self.grpc_tls_key.as_deref(),
                self.grpc_client_ca.as_deref(),
            )?,
            delegate_report_timeout: self.delegate_report_timeout,
            peer,
            write_concurrency: self.write_concurrency.max(1),
            event_interval: Duration::from_secs(10),
            shutdown_grace: self.shutdown_grace,
            preflight_interval: self.preflight_interval,
            bgp: self.bgp.then(|| ferrolb_l2announcer::bgp::Settings {
                node,
                namespace: self.common.namespace(),
                classes: ferrolb_api::ServedClasses::new(
                    self.default_class,
                    self.load_balancer_classes.clone(),
                ),
            }),
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.common.init_logging();
    let settings = args.settings()?;
    let client = args.common.client().await.context("building the Kubernetes client")?;

    let metrics = ferrolb_runtime::admin::install_metrics()?;
    ferrolb_l2announcer::metrics::describe();
    let readiness = ferrolb_runtime::admin::Readiness::default();
    let (bound, _server) =
        ferrolb_runtime::admin::serve(args.common.metrics_addr, metrics, readiness.clone()).await?;
    tracing::info!(%bound, node = %settings.node, datapath = ?settings.datapath, "starting");

    let netlink = Arc::new(RtNetlink::new()?);
    let shutdown = CancellationToken::new();
    let mut announcer = tokio::spawn(adapter::run(client, settings, netlink, readiness, shutdown.clone()));
    let result = tokio::select! {
        () = ferrolb_runtime::shutdown_signal() => {
            shutdown.cancel();
            (&mut announcer).await
        }
        result = &mut announcer => result,
    };
    result.context("the announcer task panicked")??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netlink_address_lifetime_is_whole_seconds_from_2s_or_forever() {
        let parse = |v: &str| Args::try_parse_from(["ferrolb-announcer", "--netlink-address-lifetime", v]);
        assert_eq!(parse("5s").unwrap().netlink_address_lifetime.0, Some(Duration::from_secs(5)));
        assert_eq!(parse("forever").unwrap().netlink_address_lifetime.0, None);
        for bad in ["1s", "2500ms", "soon"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let default = Args::try_parse_from(["ferrolb-announcer"]).unwrap();
        assert_eq!(default.netlink_address_lifetime.0, Some(Duration::from_secs(3)));
    }

    #[test]
    fn preflight_interval_is_at_least_a_second() {
        let parse = |v: &str| Args::try_parse_from(["ferrolb-announcer", "--preflight-interval", v]);
        assert_eq!(parse("30s").unwrap().preflight_interval, Duration::from_secs(30));
        for bad in ["0s", "500ms", "often"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let default = Args::try_parse_from(["ferrolb-announcer"]).unwrap();
        assert_eq!(default.preflight_interval, Duration::from_secs(300));
    }

    #[test]
    fn tcp_without_all_three_tls_files_is_refused() {
        let listen = Some("127.0.0.1:7948".parse().unwrap());
        let file = Some(Path::new("/nonexistent/server.pem"));
        let error = grpc_tcp(listen, None, None, None).unwrap_err().to_string();
        assert!(error.contains("plaintext gRPC over TCP is refused"), "{error}");
        assert!(error.contains("missing --grpc-tls-cert, --grpc-tls-key, --grpc-client-ca"), "{error}");
        let error = grpc_tcp(listen, file, file, None).unwrap_err().to_string();
        assert!(error.ends_with("missing --grpc-client-ca"), "{error}");
        let error = grpc_tcp(None, file, None, None).unwrap_err().to_string();
        assert!(error.contains("--grpc-tls-cert given without --grpc-listen"), "{error}");
        assert!(grpc_tcp(None, None, None, None).unwrap().is_none());
        let error = format!("{:#}", grpc_tcp(listen, file, file, file).unwrap_err());
        assert!(error.contains("--grpc-tls-cert /nonexistent/server.pem: cannot read"), "{error}");
    }

    #[test]
    fn version_names_the_binary_and_the_workspace_version() {
        let error = Args::try_parse_from(["ferrolb-announcer", "--version"]).unwrap_err();
        assert_eq!(error.kind(), clap::error::ErrorKind::DisplayVersion);
        assert_eq!(error.to_string(), format!("ferrolb-announcer {}\n", env!("CARGO_PKG_VERSION")));
    }
}
