//! ARP/NDP responder benchmark (DESIGN.md §4 "Datapath"), against the kernel, in network namespaces
//! of its own:
//!
//! 1. reply latency of the userspace [`Responder`] against the kernel's own reply on the same link
//!    (ARP and NS → NA), probes interleaved;
//! 2. responder throughput: the client sends requests for held addresses as fast as it can for a
//!    bounded time and counts the replies;
//! 3. 100,000 held addresses on one node: time to hold them, RSS growth, what the kernel does with
//!    one solicited-node group membership per IPv6 address, and the latency with 100k held against
//!    the latency with one held.
//!
//! Topology: namespaces `fbr<pid>-node` and `fbr<pid>-client` joined by one veth pair (`eth0` on
//! both sides), no link to any physical interface, no route out. The node has 198.51.100.11/24 and
//! 2001:db8:100::11/64 (the kernel answers for those) with `arp_ignore=1`/`arp_announce=2` as in the
//! lab, and a responder on `eth0` holding 198.51.100.200 and 2001:db8:100::1000, which no kernel
//! holds. The client (198.51.100.2, 2001:db8:100::2) times requests from an AF_PACKET socket of its
//! own. Code that opens sockets runs only on threads that entered a namespace; the root namespace
//! sends nothing. Every loop is bounded in count and time. The namespaces are deleted at the end
//! and on failure; failing to create them fails the benchmark (non-zero exit), it never skips.
//!
//! Run (as root): `cargo bench -p ferrolb-l2announcer --bench responder` (release profile).
//! JSON: `-- --json` prints it after the tables; `FERROLB_BENCH_JSON=<file>` writes it to a file.
//! Knobs (bounded): `FERROLB_BENCH_PROBES` (1000 per case), `FERROLB_BENCH_HOLD` (100000),
//! `FERROLB_BENCH_HOLD_SECS` (60, time limit of the bulk hold), `FERROLB_BENCH_BLAST_SECS` (3),
//! `FERROLB_BENCH_NODE_WORKERS` (2, the node runtime's workers: `#[tokio::main]` on 2 cores).

use std::fs::File;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use ferrolb_l2announcer::datapath::frame::{self, Observed};
use ferrolb_l2announcer::datapath::{CountersSnapshot, Mac, PacketSocket, Responder};
use futures::FutureExt;
use nix::sched::{CloneFlags, setns};
use serde_json::{Value, json};

const NODE_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);
const VIP_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 200);
const NODE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x11);
const VIP_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x1000);
/// Probes ask from 8 client addresses in turn (.2-.9, ::2-::9), so a late reply cannot pass for
/// the reply to one of the next 7 probes of the same case.
const ASKERS: u8 = 8;
/// A probe without a reply after this long is lost.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause between two probes, so latency is measured on an idle link rather than under load.
const PROBE_GAP: Duration = Duration::from_micros(100);
/// Probes per case sent first and not counted (neighbour entries, caches, wake-ups).
const WARMUP: usize = 20;
/// Requests sent per throughput round before the replies received so far are counted.
const BLAST_BATCH: usize = 32;
/// Hard cap on requests per throughput case, whatever the duration.
const BLAST_CAP: u64 = 20_000_000;

fn env_num(name: &str, default: u64, max: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(v) => {
            let n: u64 = v.parse().with_context(|| format!("{name}={v:?} is not a number"))?;
            ensure!((1..=max).contains(&n), "{name}={n} is out of range 1..={max}");
            Ok(n)
        }
        Err(_) => Ok(default),
    }
}

// ---------------------------------------------------------------------------------------------
// Network namespaces

/// A network namespace `fbr<pid>-<role>`, deleted on drop (also when the benchmark fails).
struct Netns {
    name: String,
    inode: u64,
}

impl Netns {
    fn new(role: &str) -> anyhow::Result<Self> {
        let name = format!("fbr{}-{role}", std::process::id());
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .context("cannot run `ip` (this benchmark needs iproute2 and root)")?;
        ensure!(
            out.status.success(),
            "cannot create network namespace {name}: {} (this benchmark needs root and netns support)",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let mut ns = Self { name, inode: 0 };
        ns.inode = std::fs::metadata(format!("/run/netns/{}", ns.name))
            .with_context(|| format!("namespace file of {}", ns.name))?
            .ino();
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// `ip -n <ns> <args>`: stdout, or an error with stderr.
    fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("ip").arg("-n").arg(&self.name).args(args).output().context("run ip")?;
        ensure!(
            out.status.success(),
            "ip -n {} {}: {}",
            self.name,
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn sysctl(&self, key: &str, value: &str) -> anyhow::Result<()> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "sysctl", "-q", "-w", &format!("{key}={value}")])
            .output()
            .context("run sysctl")?;
        ensure!(
            out.status.success(),
            "sysctl {key}={value} in {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    fn link_json(&self, dev: &str) -> anyhow::Result<Value> {
        let out = self.ip(&["-j", "link", "show", "dev", dev])?;
        Ok(serde_json::from_str::<Value>(&out).context("ip -j link")?[0].clone())
    }

    /// Interface index and MAC of `dev`.
    fn link(&self, dev: &str) -> anyhow::Result<(u32, Mac)> {
        let j = self.link_json(dev)?;
        let index = j["ifindex"].as_u64().context("ifindex")?;
        let mac = j["address"].as_str().context("address")?.parse().map_err(|e: String| anyhow!(e))?;
        Ok((u32::try_from(index)?, mac))
    }

    /// Link-layer multicast groups of `dev` in the IPv6 solicited-node range (`33:33:ff:..`).
    fn solicited_node_groups(&self, dev: &str) -> anyhow::Result<usize> {
        let out = self.ip(&["maddr", "show", "dev", dev])?;
        Ok(out.lines().filter(|l| l.trim_start().starts_with("link") && l.contains("33:33:ff:")).count())
    }

    /// Moves the calling thread into this namespace and checks that it got there. Only for threads
    /// this benchmark starts for that purpose.
    fn enter(&self) -> anyhow::Result<()> {
        let f = File::open(format!("/run/netns/{}", self.name))?;
        setns(&f, CloneFlags::CLONE_NEWNET).with_context(|| format!("setns into {}", self.name))?;
        assert_in_namespace(self.inode);
        Ok(())
    }

    /// Runs `f` on a new thread inside this namespace and waits for it.
    fn on_thread<T: Send>(&self, f: impl FnOnce() -> anyhow::Result<T> + Send) -> anyhow::Result<T> {
        std::thread::scope(|s| {
            s.spawn(|| {
                self.enter()?;
                f()
            })
            .join()
            .map_err(|_| anyhow!("a thread in namespace {} panicked", self.name))?
        })
    }

    /// Runs a future on a current-thread runtime on a new thread inside this namespace.
    fn block_on<T: Send, F: Future<Output = anyhow::Result<T>>>(
        &self,
        make: impl FnOnce() -> F + Send,
    ) -> anyhow::Result<T> {
        self.on_thread(|| {
            tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(make())
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let out = Command::new("ip").args(["netns", "del", &self.name]).output();
        if !matches!(&out, Ok(o) if o.status.success()) {
            eprintln!("warning: could not delete network namespace {}: {out:?}", self.name);
        }
    }
}

/// Panics unless the calling thread is in the namespace with this inode: nothing may be sent from
/// the root namespace.
fn assert_in_namespace(inode: u64) {
    let here = std::fs::metadata("/proc/thread-self/ns/net").expect("own netns").ino();
    assert_eq!(here, inode, "benchmark code ran outside its network namespace");
}

/// A multi-thread runtime whose workers live in `ns` (threads inherit the namespace of the
/// thread that starts them). Work goes onto it with [`node_run`].
fn runtime_in(ns: &Netns, workers: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    ns.on_thread(|| {
        Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()?)
    })
}

/// Runs `fut` on a worker of `rt` (inside the namespace with `inode`) and waits for it.
fn node_run<T: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    inode: u64,
    fut: impl Future<Output = anyhow::Result<T>> + Send + 'static,
) -> anyhow::Result<T> {
    rt.block_on(rt.spawn(async move {
        assert_in_namespace(inode);
        fut.await
    }))?
}

struct Lab {
    // Dropped in this order: the client first, then the node (and with it the veth pair).
    client: Netns,
    node: Netns,
}

impl Lab {
    fn new() -> anyhow::Result<Self> {
        let node = Netns::new("node")?;
        let client = Netns::new("client")?;
        let lab = Self { client, node };
        let (node, client) = (&lab.node, &lab.client);
        node.ip(&["link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", &client.name])?;
        for key in ["all", "eth0"] {
            node.sysctl(&format!("net.ipv4.conf.{key}.arp_ignore"), "1")?;
            node.sysctl(&format!("net.ipv4.conf.{key}.arp_announce"), "2")?;
        }
        node.ip(&["addr", "add", "198.51.100.11/24", "dev", "eth0"])?;
        node.ip(&["addr", "add", "2001:db8:100::11/64", "dev", "eth0", "nodad"])?;
        client.ip(&["addr", "add", "198.51.100.2/24", "dev", "eth0"])?;
        client.ip(&["addr", "add", "2001:db8:100::2/64", "dev", "eth0", "nodad"])?;
        node.ip(&["link", "set", "eth0", "up"])?;
        client.ip(&["link", "set", "eth0", "up"])?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let up = |ns: &Netns| -> anyhow::Result<bool> {
            Ok(ns.link_json("eth0")?["flags"].as_array().is_some_and(|f| f.iter().any(|x| x == "LOWER_UP")))
        };
        while !(up(node)? && up(client)?) {
            ensure!(Instant::now() < deadline, "eth0 did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(lab)
    }
}

// ---------------------------------------------------------------------------------------------
// Counting the responder's warnings (a failed solicited-node join is logged, not returned)

static WARNINGS: AtomicU64 = AtomicU64::new(0);
static FIRST_WARNING: Mutex<Option<String>> = Mutex::new(None);

/// A `tracing` subscriber that counts warnings and errors and keeps the first one's text.
struct WarningCounter;

struct Text(String);

impl tracing::field::Visit for Text {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl tracing::Subscriber for WarningCounter {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::WARN
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::WARN)
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if WARNINGS.fetch_add(1, Ordering::Relaxed) == 0 {
            let mut text = Text(String::new());
            event.record(&mut text);
            *FIRST_WARNING.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(text.0);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

// ---------------------------------------------------------------------------------------------
// Latency

/// One request and what its answer looks like.
struct Probe {
    frame: Vec<u8>,
    asker: IpAddr,
    target: IpAddr,
}

impl Probe {
    fn new(client_mac: Mac, asker: IpAddr, target: IpAddr) -> Self {
        let frame = match (asker, target) {
            (IpAddr::V4(a), IpAddr::V4(t)) => frame::arp_request(client_mac, a, t),
            // With the source link-layer option: the kernel then answers without resolving the
            // asker first.
            (IpAddr::V6(a), IpAddr::V6(t)) => frame::neighbor_solicitation(client_mac, a, t, true),
            _ => unreachable!("asker and target of one family"),
        };
        Self { frame, asker, target }
    }

    fn answered_by(&self, o: &Observed) -> bool {
        match *o {
            Observed::Arp { op: 2, sender_ip, target_ip, .. } => {
                IpAddr::V4(sender_ip) == self.target && IpAddr::V4(target_ip) == self.asker
            }
            Observed::Na { target, ip_dst, solicited: true, .. } => {
                IpAddr::V6(target) == self.target && IpAddr::V6(ip_dst) == self.asker
            }
            _ => false,
        }
    }
}

fn asker(target: IpAddr, i: usize) -> IpAddr {
    let n = 2 + (i % usize::from(ASKERS)) as u8;
    match target {
        IpAddr::V4(_) => Ipv4Addr::new(198, 51, 100, n).into(),
        IpAddr::V6(_) => Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, u16::from(n)).into(),
    }
}

/// Drops whatever the capture socket has queued (bounded).
fn drain(capture: &PacketSocket, buf: &mut [u8]) -> anyhow::Result<usize> {
    for n in 0..100_000 {
        match capture.recv(buf).now_or_never() {
            Some(r) => {
                r?;
            }
            None => return Ok(n),
        }
    }
    bail!("the capture socket never ran dry")
}

/// Sends one probe and waits for its answer: the time from just before the send to the return
/// of the receive that delivered the answer, or `None` after [`PROBE_TIMEOUT`].
async fn probe_once(
    capture: &PacketSocket,
    sender: &PacketSocket,
    probe: &Probe,
    buf: &mut [u8],
) -> anyhow::Result<Option<Duration>> {
    drain(capture, buf)?;
    let start = Instant::now();
    let deadline = tokio::time::Instant::from_std(start + PROBE_TIMEOUT);
    sender.send(&probe.frame).await.context("send probe")?;
    loop {
        match tokio::time::timeout_at(deadline, capture.recv(buf)).await {
            Ok(Ok(n)) => {
                let at = Instant::now();
                if frame::observe(&buf[..n]).is_some_and(|o| probe.answered_by(&o)) {
                    return Ok(Some(at - start));
                }
            }
            Ok(Err(e)) => return Err(e).context("capture"),
            Err(_) => return Ok(None),
        }
    }
}

/// `rounds` rounds, each probing every target once (in an order rotated every round), after
/// [`WARMUP`] uncounted rounds. Runs in the client namespace.
async fn latency(
    ifindex: u32,
    client_mac: Mac,
    targets: Vec<IpAddr>,
    rounds: usize,
) -> anyhow::Result<Vec<Vec<Option<Duration>>>> {
    let capture = PacketSocket::capture(ifindex).context("capture socket")?;
    let sender = PacketSocket::sender(ifindex).context("sender socket")?;
    let probes: Vec<Vec<Probe>> = targets
        .iter()
        .map(|&t| (0..usize::from(ASKERS)).map(|i| Probe::new(client_mac, asker(t, i), t)).collect())
        .collect();
    let mut samples = vec![Vec::with_capacity(rounds); targets.len()];
    let mut buf = vec![0u8; 2048];
    for round in 0..WARMUP + rounds {
        for k in 0..targets.len() {
            let t = (k + round) % targets.len();
            let probe = &probes[t][round % usize::from(ASKERS)];
            let rtt = probe_once(&capture, &sender, probe, &mut buf).await?;
            if round >= WARMUP {
                samples[t].push(rtt);
            }
            std::thread::sleep(PROBE_GAP);
        }
    }
    Ok(samples)
}

#[derive(Debug, Clone, Copy)]
struct Stats {
    probes: usize,
    lost: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Stats {
    /// Percentiles (nearest rank, microseconds) of the answered probes.
    fn of(samples: &[Option<Duration>]) -> Self {
        let mut us: Vec<f64> = samples.iter().flatten().map(|d| d.as_secs_f64() * 1e6).collect();
        us.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            if us.is_empty() {
                f64::NAN
            } else {
                us[((p * us.len() as f64).ceil() as usize).clamp(1, us.len()) - 1]
            }
        };
        Self {
            probes: samples.len(),
            lost: samples.len() - us.len(),
            p50: pct(0.50),
            p90: pct(0.90),
            p99: pct(0.99),
            max: pct(1.0),
        }
    }

    fn json(&self) -> Value {
        json!({"probes": self.probes, "lost": self.lost, "p50_us": self.p50, "p90_us": self.p90,
               "p99_us": self.p99, "max_us": self.max})
    }
}

fn print_stats_header() {
    println!(
        "{:<40} {:>6} {:>5} {:>8} {:>8} {:>8} {:>8}",
        "case (µs)", "probes", "lost", "p50", "p90", "p99", "max"
    );
}

fn print_stats(label: &str, s: &Stats) {
    println!(
        "{label:<40} {:>6} {:>5} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
        s.probes, s.lost, s.p50, s.p90, s.p99, s.max
    );
}

/// Prints kernel and responder figures and their ratio; returns them as JSON.
fn compare(proto: &str, kernel: &Stats, responder: &Stats) -> Value {
    let (r50, r99) = (responder.p50 / kernel.p50, responder.p99 / kernel.p99);
    println!(
        "{:<40} p50 {r50:.2}x   p99 {r99:.2}x   (target ≤ 2x)",
        format!("  {proto} ratio responder/kernel")
    );
    json!({"kernel": kernel.json(), "responder": responder.json(),
           "ratio_p50": r50, "ratio_p99": r99})
}

// ---------------------------------------------------------------------------------------------
// Throughput

#[derive(Debug, Default)]
struct Blast {
    sent: u64,
    send_errors: u64,
    replies: u64,
    sending: Duration,
}

/// Whether a received frame is the kind of reply counted.
type IsReply = fn(&[u8]) -> bool;

fn is_arp_reply(f: &[u8]) -> bool {
    f.len() >= 22 && f[12..14] == [0x08, 0x06] && f[20..22] == [0, 2]
}

fn is_na(f: &[u8]) -> bool {
    // Ethernet (14) + IPv6 header (40, next header ICMPv6 = 58 at offset 20) + ICMPv6 type 136.
    f.len() >= 55 && f[12..14] == [0x86, 0xdd] && f[20] == 58 && f[54] == 136
}

/// Sends `frames` round-robin as fast as possible for `duration` (at most [`BLAST_CAP`]),
/// counting the frames `is_reply` accepts, then waits for stragglers (quiet 300 ms, at most 2 s).
/// Runs in the client namespace.
async fn blast(
    ifindex: u32,
    frames: Vec<Vec<u8>>,
    is_reply: IsReply,
    duration: Duration,
) -> anyhow::Result<Blast> {
    let capture = PacketSocket::capture(ifindex).context("capture socket")?;
    let sender = PacketSocket::sender(ifindex).context("sender socket")?;
    let mut buf = vec![0u8; 2048];
    let mut b = Blast::default();
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < duration && b.sent + b.send_errors < BLAST_CAP {
        for _ in 0..BLAST_BATCH {
            match sender.send(&frames[i % frames.len()]).await {
                Ok(()) => b.sent += 1,
                // ENOBUFS when the link's backlog is full: the request was dropped.
                Err(_) => b.send_errors += 1,
            }
            i += 1;
        }
        // Let the runtime poll its I/O driver: the capture socket's readiness is only refreshed
        // then, and without it the replies would pile up unread (and overflow).
        tokio::task::yield_now().await;
        for _ in 0..100_000 {
            match capture.recv(&mut buf).now_or_never() {
                Some(Ok(n)) => b.replies += u64::from(is_reply(&buf[..n])),
                Some(Err(e)) => return Err(e).context("capture"),
                None => break,
            }
        }
    }
    b.sending = start.elapsed();
    ensure!(b.sent > 0, "no request could be sent ({} send errors)", b.send_errors);
    let tail = Instant::now() + Duration::from_secs(2);
    while Instant::now() < tail {
        match tokio::time::timeout(Duration::from_millis(300), capture.recv(&mut buf)).await {
            Ok(Ok(n)) => b.replies += u64::from(is_reply(&buf[..n])),
            Ok(Err(e)) => return Err(e).context("capture"),
            Err(_) => break,
        }
    }
    Ok(b)
}

fn counters_json(c: &CountersSnapshot) -> Value {
    json!({"arp_answered": c.arp_answered, "ndp_answered": c.ndp_answered, "malformed": c.malformed,
           "send_errors": c.send_errors, "recv_errors": c.recv_errors})
}

fn delta(after: CountersSnapshot, before: CountersSnapshot) -> CountersSnapshot {
    CountersSnapshot {
        arp_answered: after.arp_answered - before.arp_answered,
        ndp_answered: after.ndp_answered - before.ndp_answered,
        gratuitous_sent: after.gratuitous_sent - before.gratuitous_sent,
        malformed: after.malformed - before.malformed,
        send_errors: after.send_errors - before.send_errors,
        recv_errors: after.recv_errors - before.recv_errors,
    }
}

// ---------------------------------------------------------------------------------------------
// Memory

/// The 1, 5 and 15 minute load averages.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn proc_kib(file: &str, key: &str) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(file)?;
    let line = text.lines().find(|l| l.starts_with(key)).with_context(|| format!("{key} in {file}"))?;
    Ok(line[key.len()..].trim().trim_end_matches("kB").trim().parse()?)
}

/// The bulk addresses: all of 203.0.113.0/24, 198.51.100.128/25 but the probed VIP, then IPv6
/// hosts `::100`-`::ffff` of 2001:db8:100::/112 (but the probed VIP), 2001:db8:101::/112, ...
/// Two addresses that differ only above their low 24 bits share a solicited-node group, so past
/// the first /112 the groups repeat (the kernel counts a second join of a group, it does not add
/// one).
fn bulk_addresses(n: usize) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = Vec::with_capacity(n);
    v.extend((0..=255).map(|i| IpAddr::V4(Ipv4Addr::new(203, 0, 113, i))));
    v.extend((128..=255).map(|i| Ipv4Addr::new(198, 51, 100, i)).filter(|&ip| ip != VIP_V4).map(IpAddr::V4));
    let mut k: u32 = 0;
    while v.len() < n {
        let ip = Ipv6Addr::new(0x2001, 0xdb8, 0x100 + (k >> 16) as u16, 0, 0, 0, 0, k as u16);
        // Host numbers below 0x100 are the lab's nodes and client (the kernel answers for those).
        if ip != VIP_V6 && k & 0xffff >= 0x100 {
            v.push(ip.into());
        }
        k += 1;
    }
    v.truncate(n);
    v
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let json_stdout = std::env::args().any(|a| a == "--json");
    match run() {
        Ok(report) => {
            let text = serde_json::to_string_pretty(&report).expect("JSON");
            if json_stdout {
                println!("{text}");
            }
            if let Ok(path) = std::env::var("FERROLB_BENCH_JSON")
                && let Err(e) = std::fs::write(&path, text + "\n")
            {
                eprintln!("error: writing {path}: {e}");
                std::process::exit(1);
            }
        }
        Err(e) => {
            // The namespaces are gone by now (dropped on the way out of `run`).
            eprintln!("error: responder benchmark failed: {e:#}");
            std::process::exit(1);
        }
    }
}

fn run() -> anyhow::Result<Value> {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` (CI) does not: then the same bench
    // runs at smoke size, so it is exercised on every CI run without taking its full minute.
    let full = std::env::args().any(|a| a == "--bench");
    let probes = env_num("FERROLB_BENCH_PROBES", if full { 1000 } else { 50 }, 100_000)? as usize;
    let hold_n = env_num("FERROLB_BENCH_HOLD", if full { 100_000 } else { 2_000 }, 1_000_000)? as usize;
    let hold_limit = Duration::from_secs(env_num("FERROLB_BENCH_HOLD_SECS", 60, 600)?);
    let blast_for = Duration::from_secs(env_num("FERROLB_BENCH_BLAST_SECS", if full { 3 } else { 1 }, 60)?);
    let workers = env_num("FERROLB_BENCH_NODE_WORKERS", 2, 16)? as usize;
    tracing::subscriber::set_global_default(WarningCounter).context("tracing subscriber")?;
    let load_start = loadavg();

    let lab = Lab::new()?;
    let (n_idx, n_mac) = lab.node.link("eth0")?;
    let (c_idx, c_mac) = lab.client.link("eth0")?;
    let node_rt = runtime_in(&lab.node, workers)?;
    let inode = lab.node.inode;
    let attach = move || async move {
        let r = Responder::default();
        r.attach(n_idx, n_mac).context("attach the responder")?;
        Ok(r)
    };
    let mut report = json!({
        "machine": {"cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
                    "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
                    "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
                    "node_runtime_workers": workers},
    });
    println!(
        "ARP/NDP responder vs kernel, client and node namespaces over one veth pair ({} build, node runtime {workers} workers, load {load_start})\n",
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );

    // 1. Latency, kernel vs responder, interleaved.
    let r = node_run(&node_rt, inode, attach())?;
    r.hold(n_idx, VIP_V4.into());
    r.hold(n_idx, VIP_V6.into());
    let targets = vec![NODE_V4.into(), VIP_V4.into(), NODE_V6.into(), VIP_V6.into()];
    let t = targets.clone();
    let s = lab.client.block_on(move || latency(c_idx, c_mac, t, probes))?;
    let st: Vec<Stats> = s.iter().map(|x| Stats::of(x)).collect();
    println!(
        "1. Reply latency at the client, {probes} probes per case, interleaved, {PROBE_TIMEOUT:?} timeout"
    );
    print_stats_header();
    print_stats("kernel ARP (198.51.100.11)", &st[0]);
    print_stats("responder ARP (198.51.100.200)", &st[1]);
    let arp = compare("ARP", &st[0], &st[1]);
    print_stats("kernel NS→NA (2001:db8:100::11)", &st[2]);
    print_stats("responder NS→NA (2001:db8:100::1000)", &st[3]);
    let ndp = compare("NDP", &st[2], &st[3]);
    report["latency"] = json!({"arp": arp, "ndp": ndp});

    // 2. Throughput.
    println!(
        "\n2. Responder throughput: requests for 64 held addresses, as fast as the client sends, {blast_for:?}"
    );
    println!(
        "{:<10} {:>12} {:>10} {:>12} {:>12} {:>10} {:>16}",
        "protocol", "sent/s", "send errs", "replies/s", "replies", "lost %", "counters Δ"
    );
    let v4: Vec<Ipv4Addr> = (128..192).map(|i| Ipv4Addr::new(198, 51, 100, i)).collect();
    let v6: Vec<Ipv6Addr> =
        (0..64).map(|i| Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x1000 + i)).collect();
    for ip in &v4 {
        r.hold(n_idx, (*ip).into());
    }
    for ip in &v6 {
        r.hold(n_idx, (*ip).into());
    }
    let client_v4 = Ipv4Addr::new(198, 51, 100, 2);
    let client_v6 = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 2);
    let mut throughput = serde_json::Map::new();
    let cases: [(&str, Vec<Vec<u8>>, IsReply); 2] = [
        ("ARP", v4.iter().map(|&t| frame::arp_request(c_mac, client_v4, t)).collect(), is_arp_reply),
        (
            "NS→NA",
            v6.iter().map(|&t| frame::neighbor_solicitation(c_mac, client_v6, t, true)).collect(),
            is_na,
        ),
    ];
    for (name, frames, is_reply) in cases {
        let before = r.counters();
        let b = lab.client.block_on(move || blast(c_idx, frames, is_reply, blast_for))?;
        let d = delta(r.counters(), before);
        let secs = b.sending.as_secs_f64();
        let answered = d.arp_answered + d.ndp_answered;
        println!(
            "{name:<10} {:>12.0} {:>10} {:>12.0} {:>12} {:>9.1}% {:>16}",
            b.sent as f64 / secs,
            b.send_errors,
            b.replies as f64 / secs,
            b.replies,
            100.0 * (1.0 - b.replies as f64 / b.sent as f64),
            format!("answered {answered}")
        );
        throughput.insert(
            name.to_string(),
            json!({"seconds": secs, "sent": b.sent, "send_errors": b.send_errors, "replies": b.replies,
                   "sent_per_s": b.sent as f64 / secs, "replies_per_s": b.replies as f64 / secs,
                   "responder_counters_delta": counters_json(&d)}),
        );
    }
    println!("   responder counters so far: {:?}", r.counters());
    report["throughput"] = Value::Object(throughput);
    r.detach(n_idx);
    drop(r);

    // 3. 100k held addresses.
    println!("\n3. {hold_n} held addresses on one node (fresh responder)");
    let r = node_run(&node_rt, inode, attach())?;
    r.hold(n_idx, VIP_V4.into());
    r.hold(n_idx, VIP_V6.into());
    let groups_before = lab.node.solicited_node_groups("eth0")?;
    let rounds = probes.div_ceil(2);
    let t = targets.clone();
    let few = lab.client.block_on(move || latency(c_idx, c_mac, t, rounds))?;
    let bulk = bulk_addresses(hold_n.saturating_sub(2));
    let n_v6 = bulk.iter().filter(|ip| ip.is_ipv6()).count();
    let (rss0, slab0) = (proc_kib("/proc/self/status", "VmRSS:")?, proc_kib("/proc/meminfo", "Slab:")?);
    let warnings0 = WARNINGS.load(Ordering::Relaxed);
    let start = Instant::now();
    let mut held = 0usize;
    let mut progress = Vec::new();
    for ip in &bulk {
        if start.elapsed() > hold_limit {
            break;
        }
        r.hold(n_idx, *ip);
        held += 1;
        if held.is_multiple_of(10_000) {
            progress.push(json!({"held": held, "seconds": start.elapsed().as_secs_f64()}));
        }
    }
    let hold_time = start.elapsed();
    let (rss1, slab1) = (proc_kib("/proc/self/status", "VmRSS:")?, proc_kib("/proc/meminfo", "Slab:")?);
    let join_failures = WARNINGS.load(Ordering::Relaxed) - warnings0;
    let groups_after = lab.node.solicited_node_groups("eth0")?;
    let total_held = r.held().len();
    let t = targets.clone();
    let many = lab.client.block_on(move || latency(c_idx, c_mac, t, rounds))?;
    let teardown_start = Instant::now();
    r.detach(n_idx);
    drop(r);
    let teardown_deadline = teardown_start + Duration::from_secs(30);
    while lab.node.solicited_node_groups("eth0")? >= groups_before && Instant::now() < teardown_deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let teardown = teardown_start.elapsed();
    // Control: a fresh responder holding 2 again, to tell the held set's effect from the machine's
    // load at the time.
    let r = node_run(&node_rt, inode, attach())?;
    r.hold(n_idx, VIP_V4.into());
    r.hold(n_idx, VIP_V6.into());
    let t = targets.clone();
    let after = lab.client.block_on(move || latency(c_idx, c_mac, t, rounds))?;
    r.detach(n_idx);
    drop(r);

    let complete = held == bulk.len();
    println!(
        "   held {total_held} ({} IPv4, {} IPv6 in bulk) in {:.2} s{}; {:.0} holds/s",
        bulk.len() - n_v6,
        n_v6,
        hold_time.as_secs_f64(),
        if complete {
            String::new()
        } else {
            format!(" — STOPPED at the {hold_limit:?} limit after {held}")
        },
        held as f64 / hold_time.as_secs_f64()
    );
    for p in &progress {
        println!("     {:>7} held after {:>7.2} s", p["held"], p["seconds"].as_f64().unwrap_or(0.0));
    }
    println!(
        "   RSS {:+.1} MiB ({rss0} → {rss1} KiB); kernel slab {:+.1} MiB (whole machine, noisy)",
        (rss1 as f64 - rss0 as f64) / 1024.0,
        (slab1 as f64 - slab0 as f64) / 1024.0
    );
    println!(
        "   solicited-node link groups on node eth0: {groups_before} → {groups_after}; join failures logged: {join_failures}{}",
        FIRST_WARNING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(|w| format!(" (first: {w})"))
            .unwrap_or_default()
    );
    println!("   closing the socket (detach) until the groups were gone: {:.2} s", teardown.as_secs_f64());
    print_stats_header();
    let few: Vec<Stats> = few.iter().map(|x| Stats::of(x)).collect();
    let many: Vec<Stats> = many.iter().map(|x| Stats::of(x)).collect();
    let after: Vec<Stats> = after.iter().map(|x| Stats::of(x)).collect();
    print_stats("responder ARP, 2 held", &few[1]);
    print_stats(&format!("responder ARP, {total_held} held"), &many[1]);
    print_stats("responder ARP, 2 held again (control)", &after[1]);
    print_stats("responder NS→NA, 2 held", &few[3]);
    print_stats(&format!("responder NS→NA, {total_held} held"), &many[3]);
    print_stats("responder NS→NA, 2 held again (control)", &after[3]);
    print_stats("kernel ARP (reference, 2 held)", &few[0]);
    print_stats(&format!("kernel ARP (reference, {total_held} held)"), &many[0]);
    print_stats("kernel NS→NA (reference, 2 held)", &few[2]);
    print_stats(&format!("kernel NS→NA (reference, {total_held} held)"), &many[2]);
    report["many_held"] = json!({
        "requested": hold_n, "held": total_held, "complete": complete, "bulk_ipv6": n_v6,
        "hold_seconds": hold_time.as_secs_f64(), "progress": progress,
        "rss_kib_before": rss0, "rss_kib_after": rss1, "slab_kib_delta": slab1 as i64 - slab0 as i64,
        "solicited_node_groups_before": groups_before, "solicited_node_groups_after": groups_after,
        "join_failures": join_failures, "teardown_seconds": teardown.as_secs_f64(),
        "latency_2_held": {"kernel_arp": few[0].json(), "responder_arp": few[1].json(),
                           "kernel_ndp": few[2].json(), "responder_ndp": few[3].json()},
        "latency_many_held": {"kernel_arp": many[0].json(), "responder_arp": many[1].json(),
                              "kernel_ndp": many[2].json(), "responder_ndp": many[3].json()},
        "latency_2_held_again": {"kernel_arp": after[0].json(), "responder_arp": after[1].json(),
                                 "kernel_ndp": after[2].json(), "responder_ndp": after[3].json()},
    });
    let load = loadavg();
    println!(
        "\nload average at the end: {load} (the machine is shared; a loaded CPU delays the responder's wake-up, not the kernel's reply)"
    );
    report["machine"]["loadavg_start"] = json!(load_start);
    report["machine"]["loadavg_end"] = json!(load);
    node_rt.shutdown_timeout(Duration::from_secs(2));
    drop(lab);
    Ok(report)
}
