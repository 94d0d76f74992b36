//! `ferrolb-lab`: builds and removes FerroLB's network-namespace lab, plus small tools used inside it.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use ferrolb_lab::{Lab, LabState};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(name = "ferrolb-lab", about = "FerroLB network-namespace lab (DESIGN.md §8)")]
struct Cli {
    /// Namespace name prefix: namespaces are <prefix>-sw, <prefix>-node1..9, <prefix>-client.
    #[arg(long, global = true, default_value = "flb", env = "FERROLB_LAB_PREFIX")]
    prefix: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Build the lab (removing leftovers of a previous one first) and start one HTTP server per node.
    Up {
        #[arg(long, default_value_t = 3)]
        nodes: u8,
    },
    /// Remove the lab: its processes and namespaces (idempotent, also after a crash).
    Down,
    /// Print the state file.
    Status,
    /// Run a command in a lab namespace: `exec client -- curl http://198.51.100.11/`.
    Exec {
        /// sw, client, node1..node9 (or the full namespace name).
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

fn main() {
    let cli = Cli::parse();
    if let Err(e) = real_main(cli) {
        eprintln!("ferrolb-lab: error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Up { nodes } => {
            let lab = Lab::new(&cli.prefix)?;
            ferrolb_lab::install_interrupt_handler()?;
            let exe = std::env::current_exe().context("locating own executable")?;
            let state = ferrolb_lab::up(&lab, nodes, &exe)?;
            println!("lab {:?} up: {} node(s)", lab.prefix, state.nodes);
            println!("  switch  {}  br0 198.51.100.1/24 2001:db8:100::1/64", lab.switch_ns());
            for i in 1..=state.nodes {
                println!(
                    "  node{i}   {}  eth0 {}/24 {}/64",
                    lab.node_ns(i),
                    Lab::node_v4(i),
                    Lab::node_v6(i)
                );
            }
            println!("  client  {}  eth0 198.51.100.2/24 2001:db8:100::2/64", lab.client_ns());
            println!(
                "  VIPs local on every node: {} {}",
                ferrolb_lab::VIP_RANGE_V4,
                ferrolb_lab::VIP_RANGE_V6
            );
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
        Cmd::ServeHttp { name, port, ready_file } => serve_http(&name, port, ready_file.as_deref()),
        Cmd::HttpGet { url, timeout_ms } => {
            let body = http_get(&url, Duration::from_millis(timeout_ms))?;
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

/// Minimal HTTP/1.1 GET over plain TCP: `http://host[:port][/path]`, host may be `[v6]`.
fn http_get(url: &str, timeout: Duration) -> Result<String> {
    let rest =
        url.strip_prefix("http://").with_context(|| format!("only http:// URLs are supported: {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let has_port =
        if authority.starts_with('[') { authority.contains("]:") } else { authority.contains(':') };
    let with_port = if has_port { authority.to_string() } else { format!("{authority}:80") };
    let addr = with_port
        .to_socket_addrs()
        .with_context(|| format!("bad address {with_port}"))?
        .next()
        .with_context(|| format!("no address for {with_port}"))?;
    let mut s =
        TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: ferrolb-lab\r\nConnection: close\r\n\r\n"
    )?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).with_context(|| format!("reading the response from {addr}"))?;
    let resp = String::from_utf8_lossy(&resp);
    let (head, body) =
        resp.split_once("\r\n\r\n").with_context(|| format!("malformed response from {addr}"))?;
    let status = head.lines().next().unwrap_or_default();
    let code: u16 = status.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    if !(200..300).contains(&code) {
        bail!("{url}: {status}");
    }
    Ok(body.to_string())
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
