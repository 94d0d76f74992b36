//! `ferrolb-lab`: builds and removes FerroLB's network-namespace lab, plus small tools used inside it.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use ferrolb_lab::cluster::{self, ClusterOptions};
use ferrolb_lab::probe::{self, ProbeOptions};
use ferrolb_lab::{Lab, LabState, Topology};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "ferrolb-lab",
    about = "FerroLB network-namespace lab (DESIGN.md §8)",
    after_help = "Binaries (kube-sim, ferrolb-ipam, ferrolb-announcer) are looked up next to ferrolb-lab itself:\n  cargo build -p kube-sim -p ferrolb-ipam -p ferrolb-l2announcer -p ferrolb-lab\n\nExamples:\n  ferrolb-lab up --nodes 3 --cluster        # topology + kube-sim + ipam + announcers\n  ferrolb-lab kubectl -- get nodes\n  ferrolb-lab exec client -- ferrolb-lab probe --target 198.51.100.128 --for 10s\n  ferrolb-lab demo                          # the whole story, then tears down\n  ferrolb-lab down"
)]
struct Cli {
    /// Namespace name prefix: namespaces are <prefix>-sw, <prefix>-node1..9, <prefix>-client.
    #[arg(long, global = true, default_value = "flb", env = "FERROLB_LAB_PREFIX")]
    prefix: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Build the lab (removing leftovers of a previous one first) and start one HTTP server per node;
    /// with --cluster also kube-sim, ferrolb-ipam and one ferrolb-announcer per node.
    Up {
        #[arg(long, default_value_t = 3)]
        nodes: u8,
        /// One link per node: no management network, the API server is reached over eth0 (as on
        /// most small clusters), so a node whose eth0 goes down is cut off from everything.
        #[arg(long)]
        single_nic: bool,
        /// The BGP topology (implies --single-nic): a router namespace running FRR (zebra, bgpd,
        /// bfdd) or BIRD between the LAN and an outside client at 203.0.113.2. With --cluster, the
        /// lab's BGPPeer, BGPAdvertisement and BFDProfile are created too.
        #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "frr")]
        bgp: Option<ferrolb_lab::bgp::Router>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// The demo: 3 nodes + cluster, a pool, a policy and a Service; curl the VIP; kill the leader's
    /// announcer while probing every 10 ms; show the new node and the gap; tear down.
    Demo {
        #[arg(long, default_value_t = 3)]
        nodes: u8,
        /// Leave the lab up at the end.
        #[arg(long)]
        keep: bool,
        /// Timeout for each wait (address, leader, takeover).
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Extra arguments for every announcer (repeat).
        #[arg(long = "announcer-arg", allow_hyphen_values = true)]
        announcer_args: Vec<String>,
        /// RUST_LOG for the cluster's processes.
        #[arg(long)]
        rust_log: Option<String>,
        /// The BGP demo: nodes on one NIC peering with an FRR router; the Service's address routed
        /// to every node (ECMP), reached from outside; a node's link down, dropped by BFD.
        #[arg(long)]
        bgp: bool,
    },
    /// Probe a target from the current namespace (run it in the client namespace, e.g. with `exec`):
    /// an HTTP GET every --interval; reports who answered and the longest gap between answers.
    Probe {
        /// Address to GET `http://TARGET:PORT/` from (a VIP, or a node's own LAN address).
        #[arg(long)]
        target: IpAddr,
        #[arg(long, default_value_t = 80)]
        port: u16,
        #[arg(long, default_value = "10ms", value_parser = humantime::parse_duration)]
        interval: Duration,
        /// How long to probe.
        #[arg(long = "for", default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Per-request timeout.
        #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Stop this long after another node than the first one answered.
        #[arg(long, value_parser = humantime::parse_duration)]
        stop_after_switch: Option<Duration>,
        /// Print the full JSON report instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Send a signal to a node's announcer (default SIGKILL).
    KillAnnouncer {
        /// node1..node100 or the number.
        node: String,
        #[arg(long, default_value = "SIGKILL")]
        signal: String,
    },
    /// Start a node's announcer again with its recorded arguments (stopping it first if it runs).
    RestartAnnouncer { node: String },
    /// Set a node's link up or down: `link node2 eth0 down`.
    Link {
        node: String,
        dev: String,
        #[arg(value_parser = ["up", "down"])]
        state: String,
    },
    /// Run kubectl against the lab's kube-sim (from inside the switch namespace).
    Kubectl {
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Remove the lab: its processes and namespaces (idempotent, also after a crash).
    Down,
    /// Print the state file.
    Status,
    /// Run a command in a lab namespace: `exec client -- curl http://198.51.100.11/`.
    Exec {
        /// sw, client, node1..node100 (or the full namespace name).
        ns: String,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// HTTP server answering every request with `name` (used inside node namespaces).
    ServeHttp {
        #[arg(long)]
        name: String,
        #[arg(long, default_value_t = 80)]
        port: u16,
        /// File created once both listeners are bound.
        #[arg(long)]
        ready_file: Option<std::path::PathBuf>,
    },
    /// HTTP GET; prints the body, fails on connection errors, timeouts and non-2xx statuses.
    HttpGet {
        url: String,
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
    /// ICMP/ICMPv6 echo (raw socket, needs root); fails unless a reply arrives in time.
    Ping {
        addr: IpAddr,
        #[arg(long, default_value_t = 1)]
        count: u16,
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
}

/// Cluster flags of `up`.
#[derive(clap::Args, Debug)]
struct ClusterArgs {
    /// Also start the cluster: kube-sim (CRDs applied, namespace ferrolb-system, Node objects),
    /// ferrolb-ipam and one ferrolb-announcer per node.
    #[arg(long)]
    cluster: bool,
    /// With --cluster: do not start ferrolb-ipam.
    #[arg(long, requires = "cluster")]
    no_ipam: bool,
    /// With --cluster: do not start the announcers.
    #[arg(long, requires = "cluster")]
    no_announcers: bool,
    /// Extra argument for every announcer (repeat; e.g. --announcer-arg=--lease-duration=2s).
    #[arg(long = "announcer-arg", requires = "cluster", allow_hyphen_values = true)]
    announcer_args: Vec<String>,
    /// Extra argument for ferrolb-ipam (repeat).
    #[arg(long = "ipam-arg", requires = "cluster", allow_hyphen_values = true)]
    ipam_args: Vec<String>,
    /// Where kube-sim, ferrolb-ipam and ferrolb-announcer are (default: next to ferrolb-lab).
    #[arg(long, requires = "cluster")]
    bin_dir: Option<PathBuf>,
    /// RUST_LOG for the cluster's processes.
    #[arg(long, requires = "cluster")]
    rust_log: Option<String>,
}

fn node_arg(s: &str) -> Result<u8> {
    s.parse::<u8>()
        .ok()
        .filter(|n| (1..=ferrolb_lab::MAX_NODES).contains(n))
        .or_else(|| Lab::node_number(s))
        .with_context(|| format!("bad node {s:?}: use node1..node100 or 1..100"))
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = real_main(cli) {
        eprintln!("ferrolb-lab: error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Up { nodes, single_nic, bgp, cluster: c } => {
            let topology = if single_nic || bgp.is_some() { Topology::SingleNic } else { Topology::Split };
            let lab = Lab::new(&cli.prefix)?;
            ferrolb_lab::install_interrupt_handler()?;
            let exe = std::env::current_exe().context("locating own executable")?;
            let state = if c.cluster {
                let mut opts = ClusterOptions::new()?;
                if let Some(d) = c.bin_dir {
                    opts.bin_dir = d;
                }
                opts.ipam = !c.no_ipam;
                opts.announcers = !c.no_announcers;
                opts.announcer_args = c.announcer_args;
                if bgp.is_some() {
                    opts.announcer_args.push("--bgp=true".into());
                }
                opts.ipam_args = c.ipam_args;
                opts.rust_log = c.rust_log;
                opts.topology = topology;
                cluster::up_cluster(&lab, nodes, &exe, &opts)?
            } else {
                ferrolb_lab::up_with(&lab, nodes, &exe, topology)?
            };
            let mut state = state;
            if let Some(router) = bgp {
                if let Err(e) = ferrolb_lab::bgp::add_router(&lab, &mut state, router) {
                    let _ = ferrolb_lab::down(&lab);
                    return Err(e.context("adding the BGP router"));
                }
                if let Some(info) = &state.cluster {
                    let rt = info.runtime()?;
                    let i = info.clone();
                    rt.block_on(async move {
                        let client = i.client().await?;
                        ferrolb_lab::bgp::create_objects(
                            client,
                            ferrolb_lab::bgp::lab_objects(false, Some("fast")),
                        )
                        .await
                    })??;
                }
            }
            let split = state.topology == Topology::Split;
            println!("lab {:?} up: {} node(s), {:?} topology", lab.prefix, state.nodes, state.topology);
            println!(
                "  switch  {}  br0 198.51.100.1/24 2001:db8:100::1/64{}",
                lab.switch_ns(),
                if split { ", brmgmt 203.0.113.1/24" } else { "" }
            );
            for i in 1..=state.nodes {
                let mgmt = if split { format!(", mgmt0 {}/24", Lab::node_mgmt_v4(i)) } else { String::new() };
                println!(
                    "  node{i}   {}  eth0 {}/24 {}/64{mgmt}",
                    lab.node_ns(i),
                    Lab::node_v4(i),
                    Lab::node_v6(i),
                );
            }
            println!("  client  {}  eth0 198.51.100.2/24 2001:db8:100::2/64", lab.client_ns());
            if let Some(router) = bgp {
                use ferrolb_lab::bgp::*;
                println!(
                    "  router  {}  eth0 {ROUTER_V4}/24 {ROUTER_V6}/64, eth1 {OUTSIDE_ROUTER_V4}/24; {router:?}, AS {ROUTER_ASN} (nodes: AS {NODE_ASN})",
                    lab.router_ns()
                );
                println!(
                    "  outside {}  eth0 {OUTSIDE_CLIENT_V4}/24 {OUTSIDE_CLIENT_V6}/64",
                    lab.outside_ns()
                );
                println!("  routes: {} exec router -- ip route", lab.prefix);
            }
            println!(
                "  VIPs local on every node: {} {}",
                ferrolb_lab::VIP_RANGE_V4,
                ferrolb_lab::VIP_RANGE_V6
            );
            if let Some(info) = &state.cluster {
                println!(
                    "  API server {} (kube-sim in {}), kubeconfig {}",
                    info.server,
                    lab.switch_ns(),
                    info.kubeconfig.display()
                );
                for p in &state.processes {
                    if !p.role.starts_with("http-") {
                        println!(
                            "  {:<16} pid {:<8} {}  log {}",
                            p.role,
                            p.pid,
                            p.namespace,
                            p.log.display()
                        );
                    }
                }
            }
            println!("state: {}", lab.state_path().display());
            Ok(())
        }
        Cmd::Down => {
            let lab = Lab::new(&cli.prefix)?;
            ferrolb_lab::down(&lab)?;
            println!("lab {:?} down", lab.prefix);
            Ok(())
        }
        Cmd::Status => {
            let lab = Lab::new(&cli.prefix)?;
            match LabState::load(&lab)? {
                Some(s) => println!("{}", serde_json::to_string_pretty(&s)?),
                None => bail!("no lab {:?} (no {})", lab.prefix, lab.state_path().display()),
            }
            Ok(())
        }
        Cmd::Exec { ns, cmd } => {
            use std::os::unix::process::CommandExt;
            let lab = Lab::new(&cli.prefix)?;
            let ns = lab.resolve_ns(&ns)?;
            let err = std::process::Command::new("ip").args(["netns", "exec", &ns]).args(&cmd).exec();
            Err(err).with_context(|| format!("cannot run `ip netns exec {ns} {}`", cmd.join(" ")))
        }
        Cmd::Demo { nodes, keep, timeout, announcer_args, rust_log, bgp } => {
            let lab = Lab::new(&cli.prefix)?;
            ferrolb_lab::install_interrupt_handler()?;
            let exe = std::env::current_exe().context("locating own executable")?;
            let mut opts = ClusterOptions::new()?;
            opts.announcer_args = announcer_args;
            opts.rust_log = rust_log;
            ferrolb_lab::demo::demo(
                &lab,
                &exe,
                &ferrolb_lab::demo::DemoOptions { nodes, keep, cluster: opts, timeout, bgp },
            )
        }
        Cmd::Probe { target, port, interval, duration, timeout, stop_after_switch, json } => {
            ferrolb_lab::install_interrupt_handler()?;
            let report = probe::run_probe(&ProbeOptions {
                target,
                port,
                interval,
                duration,
                timeout,
                stop_after_switch,
            });
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "{}: {} sent, {} answered, {} skipped",
                    report.target, report.sent, report.answered, report.skipped
                );
                println!("answering nodes: {}", report.node_sequence().join(" -> "));
                println!(
                    "longest gap between answers: {:.1} ms ({:.1} ms .. {:.1} ms)",
                    report.longest_gap_ms, report.gap_from_ms, report.gap_to_ms
                );
                for (e, n) in &report.errors {
                    println!("failed {n}x: {e}");
                }
            }
            Ok(())
        }
        Cmd::KillAnnouncer { node, signal } => {
            let lab = Lab::new(&cli.prefix)?;
            let sig: nix::sys::signal::Signal = signal
                .parse()
                .or_else(|_| format!("SIG{}", signal.to_ascii_uppercase()).parse())
                .with_context(|| format!("unknown signal {signal:?}"))?;
            let n = node_arg(&node)?;
            let pid = cluster::kill_announcer(&lab, n, sig)?;
            println!("sent {sig} to the announcer of node{n} (pid {pid})");
            Ok(())
        }
        Cmd::RestartAnnouncer { node } => {
            let lab = Lab::new(&cli.prefix)?;
            let n = node_arg(&node)?;
            let pid = cluster::restart_announcer(&lab, n)?;
            println!("announcer of node{n} started again (pid {pid})");
            Ok(())
        }
        Cmd::Link { node, dev, state } => {
            let lab = Lab::new(&cli.prefix)?;
            let n = node_arg(&node)?;
            cluster::set_link(&lab, n, &dev, state == "up")?;
            println!("node{n} {dev} {state}");
            Ok(())
        }
        Cmd::Kubectl { args } => {
            use std::os::unix::process::CommandExt;
            let lab = Lab::new(&cli.prefix)?;
            let state = LabState::load(&lab)?.with_context(|| format!("no lab {:?}", lab.prefix))?;
            let info = state
                .cluster
                .with_context(|| format!("lab {:?} runs no cluster (up --cluster)", lab.prefix))?;
            let err = std::process::Command::new("ip")
                .args(["netns", "exec", &lab.switch_ns(), "kubectl", "--kubeconfig"])
                .arg(&info.kubeconfig)
                .args(&args)
                .exec();
            Err(err).context("cannot run kubectl in the switch namespace")
        }
        Cmd::ServeHttp { name, port, ready_file } => serve_http(&name, port, ready_file.as_deref()),
        Cmd::HttpGet { url, timeout_ms } => {
            let body = probe::http_get(&url, Duration::from_millis(timeout_ms))?;
            print!("{body}");
            std::io::stdout().flush()?;
            Ok(())
        }
        Cmd::Ping { addr, count, timeout_ms } => ping(addr, count, Duration::from_millis(timeout_ms)),
    }
}

fn listener(addr: SocketAddr) -> Result<TcpListener> {
    let domain = Domain::for_address(addr);
    let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into()).with_context(|| format!("binding {addr}"))?;
    s.listen(128)?;
    Ok(s.into())
}

fn serve_http(name: &str, port: u16, ready_file: Option<&std::path::Path>) -> Result<()> {
    let l4 = listener(SocketAddr::from(([0, 0, 0, 0], port)))?;
    let l6 = listener(SocketAddr::from(([0u16; 8], port)))?;
    if let Some(f) = ready_file {
        std::fs::write(f, b"").with_context(|| format!("writing {}", f.display()))?;
    }
    eprintln!("serve-http: {name} listening on 0.0.0.0:{port} and [::]:{port}");
    let name6 = name.to_string();
    let t = std::thread::spawn(move || accept_loop(l6, &name6));
    accept_loop(l4, name);
    let _ = t.join();
    Ok(())
}

fn accept_loop(l: TcpListener, name: &str) {
    for conn in l.incoming() {
        let Ok(conn) = conn else { continue };
        let name = name.to_string();
        std::thread::spawn(move || {
            let _ = handle(conn, &name);
        });
    }
}

fn handle(mut conn: TcpStream, name: &str) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16384 {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = format!("{name}\n");
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Served-By: {name}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(resp.as_bytes())?;
    conn.flush()
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn ping(addr: IpAddr, count: u16, timeout: Duration) -> Result<()> {
    let (domain, proto, req_type, reply_type) = match addr {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4, 8u8, 0u8),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6, 128u8, 129u8),
    };
    let sock =
        Socket::new(domain, Type::RAW, Some(proto)).context("opening a raw ICMP socket (needs root)")?;
    let id = (std::process::id() & 0xffff) as u16;
    let dest = SockAddr::from(SocketAddr::new(addr, 0));
    for seq in 1..=count {
        let mut pkt = vec![req_type, 0, 0, 0];
        pkt.extend_from_slice(&id.to_be_bytes());
        pkt.extend_from_slice(&seq.to_be_bytes());
        pkt.extend_from_slice(b"ferrolb-lab ping");
        if addr.is_ipv4() {
            let c = checksum(&pkt);
            pkt[2..4].copy_from_slice(&c.to_be_bytes());
        } // ICMPv6: the kernel fills in the checksum on raw ICMPv6 sockets.
        let start = Instant::now();
        sock.send_to(&pkt, &dest).with_context(|| format!("sending echo request to {addr}"))?;
        loop {
            let left = timeout.checked_sub(start.elapsed()).filter(|d| !d.is_zero());
            let Some(left) = left else { bail!("no echo reply from {addr} (seq {seq}) within {timeout:?}") };
            sock.set_read_timeout(Some(left))?;
            let mut buf = [0u8; 2048];
            let n = match (&sock).read(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    continue;
                }
                Err(e) => return Err(e).context("receiving"),
            };
            // IPv4 raw sockets deliver the IP header; IPv6 ones do not.
            let icmp = if addr.is_ipv4() {
                let ihl = usize::from(buf[0] & 0x0f) * 4;
                if n < ihl + 8
                    || buf[12..16]
                        != match addr {
                            IpAddr::V4(a) => a.octets(),
                            IpAddr::V6(_) => [0; 4],
                        }
                {
                    continue;
                }
                &buf[ihl..n]
            } else {
                &buf[..n]
            };
            if icmp.len() >= 8
                && icmp[0] == reply_type
                && icmp[4..6] == id.to_be_bytes()
                && icmp[6..8] == seq.to_be_bytes()
            {
                println!(
                    "reply from {addr}: seq={seq} time={:.3} ms",
                    start.elapsed().as_secs_f64() * 1000.0
                );
                break;
            }
        }
    }
    Ok(())
}
