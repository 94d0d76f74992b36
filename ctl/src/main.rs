//! `ferrolbctl`: FerroLB's command line. `convert` turns MetalLB, Deckhouse and Cilium
//! configuration (files or the live cluster) into FerroLB objects, with a report of every field;
//! `status` shows FerroLB's pools and the LoadBalancer Services and checks that every Service
//! kept its addresses through a migration; `doctor` checks an installed FerroLB.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use ferrolb_ctl::cluster::{self, ReadOptions};
use ferrolb_ctl::doctor;
use ferrolb_ctl::input::{DocumentSource, FileSource};
use ferrolb_ctl::output::{self, ReportFormat};
use ferrolb_ctl::status::{self, AddressMap, StatusView};
use ferrolb_ctl::{InputErrors, Options};

/// FerroLB's command line.
#[derive(Debug, Parser)]
#[command(name = "ferrolbctl", version, about = "FerroLB's command line: migrate to FerroLB and inspect it")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Convert MetalLB, Deckhouse and Cilium load-balancer configuration to FerroLB manifests.
    ///
    /// Reads MetalLB CRDs (IPAddressPool, L2Advertisement, AddressPool, BGPPeer, BGPAdvertisement,
    /// BFDProfile, Community), MetalLB's legacy ConfigMap (layer2 and bgp pools, peers), Helm
    /// values with configInline, Deckhouse's metallb ModuleConfig (addressPools, bgpPeers) and
    /// MetalLoadBalancerClass, Cilium's CiliumLoadBalancerIPPool, CiliumL2AnnouncementPolicy and
    /// BGP v2 kinds (CiliumBGPClusterConfig, CiliumBGPPeerConfig, CiliumBGPAdvertisement),
    /// Services (their load-balancer annotations and current addresses) and Namespaces (to
    /// resolve MetalLB namespaceSelectors).
    ///
    /// Exit codes: 0 converted; 1 with --check when something was approximated or not converted;
    /// 2 invalid input (the message names file, document and field) or the cluster could not be
    /// read.
    Convert(ConvertArgs),

    /// Show FerroLB's pools and the LoadBalancer Services; save and compare Service addresses.
    ///
    /// Pools: disabled, conflicting (the ferrolb.io/PoolConflict condition), total/used/available
    /// addresses. Services: class, addresses, the pool they came from
    /// (ferrolb.io/allocated-from-pool) and the ferrolb.io/IPAMRequestSatisfied condition.
    ///
    /// Migration check: `status --save before.json` before migrating, `status --compare
    /// before.json` after. Exit codes: 0 shown (and, with --compare, every Service kept its
    /// addresses); 1 with --compare when a Service's addresses changed or vanished (each is
    /// listed); 2 the cluster or the saved file could not be read.
    Status(StatusArgs),

    /// Ask this node's announcer who announces an address: the Service(s), the holding node, since
    /// when, on which interfaces, and what a delegate-mode CNI agent reported.
    ///
    /// Talks to the announcer's gRPC API on its unix socket (--socket), or on TCP with mutual TLS
    /// (--grpc-addr with --tls-cert, --tls-key and --tls-ca). Exit codes: 0 announced; 1 nobody
    /// announces the address; 2 the address is invalid or the announcer could not be reached.
    WhoOwns(WhoOwnsArgs),

    /// List what an announcer knows is announced: every address, its Service(s), the holding node,
    /// since when, on which interfaces, and (delegate mode, this node's addresses) whether the CNI
    /// agent programmed it.
    ///
    /// Talks to the announcer's gRPC API like who-owns. Exit codes: 0 listed; 2 a bad filter or
    /// the announcer could not be reached.
    Announcements(AnnouncementsArgs),

    /// Check an installed FerroLB: CRDs, the IPAM controller's Lease, the announcers' heartbeats,
    /// pools, Services without an address, k3s ServiceLB, kube-proxy's strictARP, policies'
    /// interfaces and externalTrafficPolicy: Local endpoints (docs/doctor.md explains each).
    ///
    /// Every finding is ok, warning or error, each problem with what to do about it. Exit codes:
    /// 0 no error (warnings allowed); 1 at least one error; 2 the cluster could not be read.
    Doctor(DoctorArgs),
}

#[derive(Debug, clap::Args)]
struct DoctorArgs {
    #[command(flatten)]
    cluster: ClusterArgs,

    /// The namespace FerroLB is installed in (its controller's and announcers' Leases).
    #[arg(
        short = 'n',
        long,
        value_name = "NAMESPACE",
        default_value = "ferrolb-system",
        env = "FERROLB_NAMESPACE"
    )]
    namespace: String,

    /// Whether ferrolb-ipam serves Services without spec.loadBalancerClass (its --default-class).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set,
          env = "FERROLB_DEFAULT_CLASS")]
    default_class: bool,

    /// The classes ferrolb-ipam serves besides ferrolb.io/l2 (its --load-balancer-classes),
    /// comma separated.
    #[arg(long, value_name = "CLASSES", default_value = "", value_parser = ferrolb_api::parse_class_list,
          env = "FERROLB_LOAD_BALANCER_CLASSES")]
    load_balancer_classes: std::collections::BTreeSet<String>,

    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = ReportArg::Text, env = "FERROLB_OUTPUT")]
    output: ReportArg,
}

/// Arguments of `who-owns`.
#[derive(Debug, clap::Args)]
struct WhoOwnsArgs {
    /// The address (IPv4 or IPv6).
    ip: String,
    #[command(flatten)]
    announcer: AnnouncerArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `announcements`.
#[derive(Debug, clap::Args)]
struct AnnouncementsArgs {
    #[command(flatten)]
    announcer: AnnouncerArgs,
    /// Only addresses held by this node.
    #[arg(long, value_name = "NODE")]
    node: Option<String>,
    /// Only addresses with a Service in this namespace.
    #[arg(long = "service-namespace", value_name = "NAMESPACE")]
    namespace: Option<String>,
    /// Only addresses of this family.
    #[arg(long, value_enum)]
    family: Option<FamilyArg>,
    /// Only addresses held by the announcer's own node.
    #[arg(long)]
    local: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = ListFormat::Table)]
    output: ListFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FamilyArg {
    Ipv4,
    Ipv6,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ListFormat {
    Table,
    Json,
}

/// Where the announcer's gRPC API is: its unix socket, or its TCP endpoint with mutual TLS.
#[derive(Debug, clap::Args)]
struct AnnouncerArgs {
    /// The announcer's unix socket.
    #[arg(long, default_value = ferrolb_proto::server::DEFAULT_SOCKET_PATH, value_name = "PATH",
          conflicts_with = "grpc_addr")]
    socket: PathBuf,
    /// The announcer's TCP endpoint (its --grpc-listen), instead of the socket; needs --tls-cert,
    /// --tls-key and --tls-ca (the announcer serves TCP with mutual TLS only).
    #[arg(long, value_name = "HOST:PORT", requires_all = ["tls_cert", "tls_key", "tls_ca"])]
    grpc_addr: Option<String>,
    /// With --grpc-addr: this client's certificate (PEM), signed by the announcer's --grpc-client-ca.
    #[arg(long, value_name = "PATH", requires = "grpc_addr")]
    tls_cert: Option<PathBuf>,
    /// With --grpc-addr: this client's private key (PEM).
    #[arg(long, value_name = "PATH", requires = "grpc_addr")]
    tls_key: Option<PathBuf>,
    /// With --grpc-addr: the CA (PEM) the announcer's certificate must chain to.
    #[arg(long, value_name = "PATH", requires = "grpc_addr")]
    tls_ca: Option<PathBuf>,
    /// With --grpc-addr: the name the announcer's certificate must carry (default: HOST).
    #[arg(long, value_name = "NAME", requires = "grpc_addr")]
    tls_server_name: Option<String>,
}

impl AnnouncerArgs {
    async fn connect(&self) -> anyhow::Result<ferrolb_proto::AnnouncerClient<tonic::transport::Channel>> {
        let channel = match (&self.grpc_addr, &self.tls_cert, &self.tls_key, &self.tls_ca) {
            (Some(addr), Some(cert), Some(key), Some(ca)) => {
                let files = ferrolb_proto::tls::ClientTlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    ca: ca.clone(),
                    server_name: self.tls_server_name.clone(),
                };
                let tls = ferrolb_proto::tls::client_tls_config(&files)?;
                ferrolb_proto::tcp_channel(addr, tls)
                    .await
                    .with_context(|| format!("cannot reach the announcer at {addr}"))?
            }
            // clap requires the three files with --grpc-addr.
            (Some(addr), ..) => anyhow::bail!("--grpc-addr {addr} needs --tls-cert, --tls-key and --tls-ca"),
            (None, ..) => ferrolb_proto::unix_channel(&self.socket)
                .await
                .with_context(|| format!("cannot reach the announcer at {}", self.socket.display()))?,
        };
        Ok(ferrolb_proto::AnnouncerClient::new(channel))
    }
}

/// How to reach the cluster.
#[derive(Debug, clap::Args)]
struct ClusterArgs {
    /// Kubeconfig file. Default: the KUBECONFIG files, else ~/.kube/config, else the in-cluster
    /// service account.
    #[arg(long, value_name = "FILE", env = "FERROLB_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,

    /// Kubeconfig context to use (default: the current context).
    #[arg(long, value_name = "NAME", env = "FERROLB_CONTEXT")]
    context: Option<String>,
}

#[derive(Debug, clap::Args)]
struct ConvertArgs {
    /// Input file, directory (searched recursively for *.yaml, *.yml, *.json) or `-` for stdin.
    /// Repeat for several inputs.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required_unless_present = "from_cluster")]
    filenames: Vec<PathBuf>,

    /// Read the source objects from the live cluster through the kube API: MetalLB's custom
    /// resources and legacy ConfigMap, Deckhouse's metallb ModuleConfig and
    /// MetalLoadBalancerClasses, Cilium's pools, L2 policies and BGP objects, LoadBalancer Services and
    /// Namespaces (namespaceSelectors then resolve exactly). Kinds the cluster does not serve are
    /// listed in the report as not present. -f inputs (Helm values, say) are read as well.
    #[arg(long, env = "FERROLB_FROM_CLUSTER")]
    from_cluster: bool,

    #[command(flatten)]
    cluster: ClusterArgs,

    /// With --from-cluster: read MetalLB's custom resources from this namespace only (default:
    /// all namespaces).
    #[arg(long, value_name = "NAMESPACE", env = "FERROLB_METALLB_NAMESPACE", requires = "from_cluster")]
    metallb_namespace: Option<String>,

    /// With --from-cluster: MetalLB's legacy ConfigMap (MetalLB before 0.13).
    #[arg(
        long,
        value_name = "NAMESPACE/NAME",
        default_value = "metallb-system/config",
        value_parser = parse_namespaced,
        env = "FERROLB_METALLB_CONFIG"
    )]
    metallb_config: (String, String),

    /// Where to write: a directory (existing, or a path ending in `/`) receives ferrolb.yaml,
    /// ferrolb-values.yaml (the chart's loadBalancerClasses), service-patches.yaml and
    /// report.txt/report.json; any other path receives the manifests (and patches), with the
    /// report on stderr. Default: manifests on stdout, report on stderr.
    #[arg(short = 'o', long, value_name = "DIR|FILE", env = "FERROLB_OUTPUT")]
    output: Option<PathBuf>,

    /// Report format.
    #[arg(long, value_enum, default_value_t = ReportArg::Text, env = "FERROLB_REPORT")]
    report: ReportArg,

    /// Also write the report to this file (instead of stderr).
    #[arg(long, value_name = "FILE")]
    report_file: Option<PathBuf>,

    /// Emit Service patches that replace MetalLB/Cilium/Deckhouse annotations with ferrolb.io/*
    /// ones. Without it the old annotations are kept (FerroLB honours them) and only references
    /// to renamed pools are patched.
    #[arg(long, env = "FERROLB_REWRITE_ANNOTATIONS")]
    rewrite_annotations: bool,

    /// Exit with code 1 when any field was converted approximately or not at all (for CI).
    #[arg(long)]
    check: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ReportArg {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
struct StatusArgs {
    #[command(flatten)]
    cluster: ClusterArgs,

    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = ReportArg::Text, env = "FERROLB_OUTPUT")]
    output: ReportArg,

    /// Write every LoadBalancer Service's addresses to FILE as JSON (`{"namespace/name":
    /// ["192.0.2.10"]}`). Take this snapshot before migrating.
    #[arg(long, value_name = "FILE", conflicts_with = "compare")]
    save: Option<PathBuf>,

    /// Compare the Services' addresses with a map written by --save; exit 1 listing every
    /// Service whose addresses changed or vanished.
    #[arg(long, value_name = "FILE")]
    compare: Option<PathBuf>,
}

fn parse_namespaced(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(format!("{s:?} is not NAMESPACE/NAME")),
    }
}

fn who_owns(args: WhoOwnsArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut client = args.announcer.connect().await?;
        let request = ferrolb_proto::v1::GetOwnerRequest { ip: args.ip.clone() };
        let owner = match client.get_owner(request).await {
            Ok(r) => r.into_inner(),
            Err(status) if status.code() == tonic::Code::NotFound => {
                if args.json {
                    println!("null");
                } else {
                    println!("{}: nobody announces it", args.ip);
                }
                return Ok(ExitCode::from(1));
            }
            Err(status) => anyhow::bail!("{}: {}", args.ip, status.message()),
        };
        let a = owner.announcement.unwrap_or_default();
        let services: Vec<String> =
            a.services.iter().map(|s| format!("{}/{}", s.namespace, s.name)).collect();
        let since = a.since.map(|t| {
            jiff::Timestamp::new(t.seconds, t.nanos).map_or_else(|_| t.seconds.to_string(), |t| t.to_string())
        });
        let programming: Vec<serde_json::Value> = owner
            .programming
            .iter()
            .map(|p| serde_json::json!({"interface": p.interface, "ok": p.ok, "error": p.error_message}))
            .collect();
        if args.json {
            let out = serde_json::json!({
                "ip": a.ip, "services": services, "node": a.node, "since": since,
                "interfaces": a.interfaces, "local": a.local, "programming": programming,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            println!("{}", a.ip);
            println!("  services:   {}", services.join(", "));
            println!("  node:       {}{}", a.node, if a.local { " (this node)" } else { "" });
            println!("  since:      {}", since.unwrap_or_else(|| "unknown".into()));
            if !a.interfaces.is_empty() {
                println!("  interfaces: {}", a.interfaces.join(", "));
            }
            for p in &owner.programming {
                let state =
                    if p.ok { "programmed".to_owned() } else { format!("failed: {}", p.error_message) };
                println!("  agent:      {} {}", p.interface, state);
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn announcements(args: AnnouncementsArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut client = args.announcer.connect().await?;
        let family = match args.family {
            None => ferrolb_proto::v1::AddressFamily::Unspecified,
            Some(FamilyArg::Ipv4) => ferrolb_proto::v1::AddressFamily::Ipv4,
            Some(FamilyArg::Ipv6) => ferrolb_proto::v1::AddressFamily::Ipv6,
        };
        let filter = ferrolb_proto::v1::ListFilter {
            node: args.node.unwrap_or_default(),
            namespace: args.namespace.unwrap_or_default(),
            family: family.into(),
            only_local: args.local,
        };
        let list = client
            .list_announcements(ferrolb_proto::v1::ListRequest { filter: Some(filter) })
            .await
            .map_err(|status| anyhow::anyhow!("listing announcements: {}", status.message()))?
            .into_inner();
        match args.output {
            ListFormat::Table => print!("{}", ferrolb_ctl::announcements::to_text(&list)),
            ListFormat::Json => {
                println!("{}", serde_json::to_string_pretty(&ferrolb_ctl::announcements::to_json(&list))?)
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Convert(args) => convert(args),
        Command::Status(args) => status(args),
        Command::WhoOwns(args) => who_owns(args),
        Command::Announcements(args) => announcements(args),
        Command::Doctor(args) => doctor(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            match e.downcast_ref::<InputErrors>() {
                Some(errors) => eprintln!("{errors}"),
                None => eprintln!("error: {e:#}"),
            }
            ExitCode::from(2)
        }
    }
}

/// A runtime for the kube client: one thread is plenty for a command line.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")
}

async fn connect(args: &ClusterArgs) -> Result<cluster::Cluster, cluster::ClusterError> {
    cluster::connect(args.kubeconfig.as_deref(), args.context.as_deref()).await
}

fn convert(args: ConvertArgs) -> anyhow::Result<ExitCode> {
    let format = match args.report {
        ReportArg::Text => ReportFormat::Text,
        ReportArg::Json => ReportFormat::Json,
    };
    let snapshot = if args.from_cluster {
        let read = ReadOptions {
            metallb_namespace: args.metallb_namespace.clone(),
            metallb_config: args.metallb_config.clone(),
        };
        let snapshot = runtime()?.block_on(async {
            let cluster = connect(&args.cluster).await?;
            cluster::read_sources(&cluster, &read).await
        })?;
        Some(snapshot)
    } else {
        None
    };
    let mut docs = match &snapshot {
        Some(s) => s.clone().documents()?,
        None => Vec::new(),
    };
    if !args.filenames.is_empty() {
        docs.extend(FileSource::new(args.filenames, std::io::stdin().lock()).documents()?);
    }
    let opts =
        Options { rewrite_annotations: args.rewrite_annotations, namespaces_complete: args.from_cluster };
    let mut conversion = ferrolb_ctl::convert(&docs, &opts)?;
    if let Some(s) = &snapshot {
        s.note_absent(&mut conversion.report);
    }
    let report = output::report(&conversion, format);

    let to_dir =
        args.output.as_ref().filter(|o| o.is_dir() || o.as_os_str().to_string_lossy().ends_with('/'));
    match (&args.output, to_dir) {
        (_, Some(dir)) => {
            for path in output::write_dir(&conversion, dir, format)
                .with_context(|| format!("writing {}", dir.display()))?
            {
                eprintln!("wrote {path}");
            }
        }
        (Some(file), None) => {
            std::fs::write(file, output::stream(&conversion))
                .with_context(|| format!("writing {}", file.display()))?;
            eprintln!("wrote {}", file.display());
        }
        (None, None) => {
            std::io::stdout()
                .lock()
                .write_all(output::stream(&conversion).as_bytes())
                .context("writing stdout")?;
        }
    }
    match &args.report_file {
        Some(f) => std::fs::write(f, &report).with_context(|| format!("writing {}", f.display()))?,
        None if to_dir.is_none() => eprint!("{report}"),
        None => {}
    }
    if args.check && conversion.report.needs_attention() {
        eprintln!("check failed: some fields were converted approximately or not at all (see the report)");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    // A bad saved file is found before the cluster is asked anything.
    let saved = match &args.compare {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            Some(AddressMap::from_json(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?)
        }
        None => None,
    };
    let state = runtime()?.block_on(async {
        let cluster = connect(&args.cluster).await?;
        cluster::read_state(&cluster).await
    })?;
    let mut view = StatusView::new(state.pools.as_deref(), &state.services);
    let now = view.addresses();
    if let (Some(saved), Some(path)) = (&saved, &args.compare) {
        view.comparison = Some(status::compare(&path.display().to_string(), saved, &now));
    }
    let text = match args.output {
        ReportArg::Text => view.to_text(),
        ReportArg::Json => view.to_json(),
    };
    std::io::stdout().lock().write_all(text.as_bytes()).context("writing stdout")?;
    if let Some(path) = &args.save {
        std::fs::write(path, now.to_json()).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote the addresses of {} LoadBalancer Service(s) to {}", now.0.len(), path.display());
    }
    match &view.comparison {
        Some(c) if !c.ok() => {
            eprintln!(
                "address check failed: {} Service(s) changed or lost their addresses since {} was saved",
                c.changes.len(),
                c.file
            );
            Ok(ExitCode::from(1))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn doctor(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let snapshot = runtime()?.block_on(async {
        let cluster = connect(&args.cluster).await?;
        doctor::read::snapshot(
            &cluster,
            &args.namespace,
            args.default_class,
            args.load_balancer_classes.clone(),
        )
        .await
    })?;
    let findings = doctor::diagnose(&snapshot, jiff::Timestamp::now(), &doctor::Thresholds::default());
    let text = match args.output {
        ReportArg::Text => doctor::render_text(&findings),
        ReportArg::Json => doctor::render_json(&findings),
    };
    std::io::stdout().lock().write_all(text.as_bytes()).context("writing stdout")?;
    Ok(if doctor::has_errors(&findings) { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
