//! FerroLB's network-namespace lab (DESIGN.md §8).
//!
//! Topology, for a prefix `P` (default `flb`) and `N` nodes (1..=100; host number 10 + I):
//!
//! ```text
//!   P-sw:      br0 (198.51.100.1/24, 2001:db8:100::1/64), ports node1..nodeN, client   (the LAN)
//!              brmgmt (203.0.113.1/24), ports mnode1..mnodeN                        (management)
//!   P-nodeI:   eth0 198.51.100.1I/24, 2001:db8:100::1I/64; AnyIP routes for the VIP ranges on lo
//!              mgmt0 203.0.113.1I/24 (API access that survives taking eth0 down)
//!   P-client:  eth0 198.51.100.2/24, 2001:db8:100::2/64
//! ```
//!
//! With [`Topology::SingleNic`] (`ferrolb-lab up --single-nic`) there is no management network:
//! `brmgmt` and `mgmt0` are not created and the API server is reached at `198.51.100.1` over `eth0`,
//! so API traffic, the peer channel and Service traffic share each node's one link, as on most small
//! clusters. A node whose `eth0` goes down then loses everything at once, as a node that loses power.
//!
//! With a cluster ([`cluster::start_cluster`], `ferrolb-lab up --cluster`), the switch namespace also
//! runs kube-sim (0.0.0.0:6443, HTTPS, clients use `https://203.0.113.1:6443`, or
//! `https://198.51.100.1:6443` on a single-NIC lab) and `ferrolb-ipam`, and every node namespace runs
//! `ferrolb-announcer`.
//!
//! Everything is done with `ip`/`sysctl` run as child processes. Only namespaces with the exact names
//! above are ever created or deleted; nothing is linked to a physical interface and no route leads
//! out of the lab. Processes started in the lab (HTTP servers now; kube-sim, controller and announcers
//! later) are recorded in a state file so `down` can stop them, and `down` also works without the state
//! file (it kills whatever runs in the lab's namespaces, then deletes them).

pub mod bgp;
pub mod cluster;
pub mod demo;
pub mod demo_bgp;
pub mod netns;
pub mod probe;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Maximum number of node namespaces (host numbers .11-.110: below the VIP range).
pub const MAX_NODES: u8 = 100;
/// Directory holding state files and process logs.
pub const STATE_DIR: &str = "/run/ferrolb-lab";
/// The switch's address (kube-sim listens here).
pub const SWITCH_V4: &str = "198.51.100.1";
/// The switch's IPv6 address.
pub const SWITCH_V6: &str = "2001:db8:100::1";
/// Client addresses.
pub const CLIENT_V4: &str = "198.51.100.2";
/// Client IPv6 address.
pub const CLIENT_V6: &str = "2001:db8:100::2";
/// The switch's address on the management network (kube-sim is reached here).
pub const MGMT_SWITCH_V4: &str = "203.0.113.1";
/// The VIP pool every node treats as local (AnyIP).
pub const VIP_RANGE_V4: &str = "198.51.100.128/25";
/// The IPv6 VIP range (2001:db8:100::1000 - 2001:db8:100::1fff).
pub const VIP_RANGE_V6: &str = "2001:db8:100::1000/116";

/// How the nodes reach the API server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Topology {
    /// A management network (`mgmt0`, `brmgmt`) apart from the LAN: the API survives `eth0` down.
    #[default]
    Split,
    /// One link per node (`eth0`) for the API, the peer channel and Service traffic.
    SingleNic,
}

impl Topology {
    /// The API server's address as the nodes reach it.
    pub fn api_address(self) -> &'static str {
        match self {
            Topology::Split => MGMT_SWITCH_V4,
            Topology::SingleNic => SWITCH_V4,
        }
    }
}

/// Set by the Ctrl-C / SIGTERM handler; long operations check it between steps.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Names and addresses of one lab instance.
#[derive(Debug, Clone)]
pub struct Lab {
    pub prefix: String,
}

impl Lab {
    pub fn new(prefix: &str) -> Result<Self> {
        let ok = !prefix.is_empty()
            && prefix.len() <= 16
            && prefix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && prefix.starts_with(|c: char| c.is_ascii_lowercase());
        if !ok {
            bail!("invalid prefix {prefix:?}: 1-16 characters [a-z0-9], starting with a letter");
        }
        Ok(Self { prefix: prefix.to_string() })
    }

    pub fn switch_ns(&self) -> String {
        format!("{}-sw", self.prefix)
    }
    pub fn client_ns(&self) -> String {
        format!("{}-client", self.prefix)
    }
    pub fn node_ns(&self, i: u8) -> String {
        format!("{}-node{i}", self.prefix)
    }
    /// Node name as used in Kubernetes objects and HTTP answers.
    pub fn node_name(i: u8) -> String {
        format!("node{i}")
    }
    /// Node `i`'s LAN address: host number 10 + i (`.11`-`.19` for the usual nine nodes, up to
    /// `.110` for the scale benchmark's hundred, below the VIP range `.128/25`).
    pub fn node_v4(i: u8) -> String {
        format!("198.51.100.{}", 10 + u16::from(i))
    }
    /// Node `i`'s IPv6 LAN address, with the same host number written as hex digits
    /// (`::11`-`::19`, up to `::110`; the VIP range starts at `::1000`).
    pub fn node_v6(i: u8) -> String {
        format!("2001:db8:100::{}", 10 + u16::from(i))
    }
    /// Node `i`'s address on the management network (its `mgmt0`).
    pub fn node_mgmt_v4(i: u8) -> String {
        format!("203.0.113.{}", 10 + u16::from(i))
    }
    /// The node number of a node name (`node3` → 3).
    pub fn node_number(name: &str) -> Option<u8> {
        name.strip_prefix("node").and_then(|n| n.parse().ok()).filter(|n| (1..=MAX_NODES).contains(n))
    }

    /// Every namespace name this lab may own, in deletion order (hosts first, switch last).
    pub fn all_namespaces(&self) -> Vec<String> {
        let mut v: Vec<String> = (1..=MAX_NODES).map(|i| self.node_ns(i)).collect();
        v.push(self.client_ns());
        v.push(self.outside_ns());
        v.push(self.router_ns());
        v.push(self.switch_ns());
        v
    }

    /// Maps a short name (`sw`, `client`, `node1`) or a full namespace name of this lab to the full name.
    pub fn resolve_ns(&self, name: &str) -> Result<String> {
        let full = if name.starts_with(&format!("{}-", self.prefix)) {
            name.to_string()
        } else {
            format!("{}-{name}", self.prefix)
        };
        if !self.all_namespaces().contains(&full) {
            bail!("{name:?} is not a namespace of lab {:?} (use sw, client or node1..node9)", self.prefix);
        }
        Ok(full)
    }

    pub fn state_path(&self) -> PathBuf {
        Path::new(STATE_DIR).join(format!("{}.json", self.prefix))
    }
    /// Process logs, the kubeconfig, the peer key and the announcers' sockets (removed by `down`).
    pub fn log_dir(&self) -> PathBuf {
        Path::new(STATE_DIR).join(&self.prefix)
    }
    /// Same directory as [`Lab::log_dir`].
    pub fn state_dir(&self) -> PathBuf {
        self.log_dir()
    }
}

/// A background process started inside a lab namespace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabProcess {
    pub role: String,
    pub namespace: String,
    pub pid: u32,
    pub argv: Vec<String>,
    /// Extra environment variables it was started with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
}

/// Contents of the state file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LabState {
    pub prefix: String,
    pub nodes: u8,
    /// How the nodes reach the API server (absent in state files of older labs: split).
    #[serde(default)]
    pub topology: Topology,
    pub namespaces: Vec<String>,
    pub processes: Vec<LabProcess>,
    /// Set once a cluster runs in the lab.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<cluster::ClusterInfo>,
}

impl LabState {
    pub fn load(lab: &Lab) -> Result<Option<Self>> {
        let path = lab.state_path();
        match std::fs::read(&path) {
            Ok(b) => {
                Ok(Some(serde_json::from_slice(&b).with_context(|| format!("parsing {}", path.display()))?))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn save(&self, lab: &Lab) -> Result<()> {
        std::fs::create_dir_all(STATE_DIR).with_context(|| format!("creating {STATE_DIR}"))?;
        let path = lab.state_path();
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("renaming to {}", path.display()))?;
        Ok(())
    }
}

/// Runs a command, failing with the command line and its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run `{program}` (is it installed?)"))?;
    if !out.status.success() {
        bail!(
            "command failed ({}): {program} {}\n{}",
            out.status,
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(crate) fn ip(args: &[&str]) -> Result<String> {
    run("ip", args)
}

/// `sysctl -w` inside a namespace.
pub(crate) fn sysctl(ns: &str, settings: &[String]) -> Result<()> {
    let mut args = vec!["netns", "exec", ns, "sysctl", "-q", "-w"];
    args.extend(settings.iter().map(String::as_str));
    ip(&args).map(|_| ())
}

/// Neighbour entries a lab of `nodes` nodes may need at once, per address family: every node
/// namespace may resolve every other node (the peer channel's monitors, dissemination, hand-overs),
/// the switch and the API server, and the switch and the client resolve every node.
pub fn neighbour_entries_needed(nodes: u8) -> u64 {
    let n = u64::from(nodes);
    n * (n + 2) + 2 * (n + 2)
}

/// The kernel's neighbour tables (ARP and NDP) are one per host, shared by every network namespace,
/// with a hard cap of `gc_thresh3` entries (1024 by default). A 100-node lab needs about ten times
/// that; past the cap the kernel drops packets to unresolved neighbours (`neighbor table
/// overflow!`), and the lab would measure its own table instead of FerroLB. So a lab that could
/// overflow the host's tables raises `gc_thresh2` and `gc_thresh3` (never lowers them) and says so.
fn ensure_neighbour_capacity(nodes: u8) -> Result<()> {
    let need = neighbour_entries_needed(nodes);
    for family in ["ipv4", "ipv6"] {
        for (knob, want) in [("gc_thresh2", need), ("gc_thresh3", 2 * need)] {
            let key = format!("net.{family}.neigh.default.{knob}");
            let path = format!("/proc/sys/{}", key.replace('.', "/"));
            let current: u64 = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {path}"))?
                .trim()
                .parse()
                .with_context(|| format!("parsing {path}"))?;
            if current < want {
                run("sysctl", &["-q", "-w", &format!("{key}={want}")]).with_context(|| {
                    format!("raising {key} from {current} to {want} for a {nodes}-node lab")
                })?;
                eprintln!(
                    "ferrolb-lab: raised the host's {key} from {current} to {want}: {nodes} nodes need up to \
                     {need} {family} neighbour entries, and the table is shared by every namespace"
                );
            }
        }
    }
    Ok(())
}

pub(crate) fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// Names of the existing network namespaces (`ip netns list`).
pub fn existing_namespaces() -> Result<Vec<String>> {
    Ok(ip(&["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// Builds the topology for `nodes` nodes and starts one HTTP server per node.
/// Leftovers of a previous lab with the same prefix are removed first; on any failure (or Ctrl-C)
/// everything created so far is removed again.
pub fn up(lab: &Lab, nodes: u8, self_exe: &Path) -> Result<LabState> {
    up_with(lab, nodes, self_exe, Topology::Split)
}

/// [`up`] with the given topology.
pub fn up_with(lab: &Lab, nodes: u8, self_exe: &Path, topology: Topology) -> Result<LabState> {
    if !(1..=MAX_NODES).contains(&nodes) {
        bail!("--nodes must be between 1 and {MAX_NODES}, got {nodes}");
    }
    down(lab).context("cleaning up leftovers of a previous lab")?;
    ensure_neighbour_capacity(nodes)?;
    let mut state = LabState { prefix: lab.prefix.clone(), nodes, topology, ..Default::default() };
    match build(lab, nodes, self_exe, &mut state) {
        Ok(()) => Ok(state),
        Err(e) => {
            if let Err(e2) = down(lab) {
                eprintln!("ferrolb-lab: cleanup after failed `up` also failed: {e2:#}");
            }
            Err(e)
        }
    }
}

fn build(lab: &Lab, nodes: u8, self_exe: &Path, state: &mut LabState) -> Result<()> {
    let sw = lab.switch_ns();
    let client = lab.client_ns();
    let node_nss: Vec<(u8, String)> = (1..=nodes).map(|i| (i, lab.node_ns(i))).collect();
    let mut all = vec![sw.clone(), client.clone()];
    all.extend(node_nss.iter().map(|(_, n)| n.clone()));

    // Namespaces first, recorded at once so that a crash leaves a usable state file.
    for ns in &all {
        check_interrupted()?;
        ip(&["netns", "add", ns])?;
        state.namespaces.push(ns.clone());
        state.save(lab)?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        // New links in this namespace come up without DAD, so addresses are usable at once, and keep
        // their static IPv6 addresses across a link down/up (tests bounce links).
        sysctl(
            ns,
            &[
                "net.ipv6.conf.all.accept_dad=0".into(),
                "net.ipv6.conf.default.accept_dad=0".into(),
                "net.ipv6.conf.all.keep_addr_on_down=1".into(),
                "net.ipv6.conf.default.keep_addr_on_down=1".into(),
            ],
        )?;
    }

    // The switch: a plain bridge (no STP, no forwarding delay, no multicast snooping so NDP multicast
    // reaches every port whatever MLD says).
    check_interrupted()?;
    ip(&[
        "-n",
        &sw,
        "link",
        "add",
        "br0",
        "type",
        "bridge",
        "stp_state",
        "0",
        "forward_delay",
        "0",
        "mcast_snooping",
        "0",
    ])?;
    sysctl(&sw, &["net.ipv6.conf.br0.accept_dad=0".into()])?;
    ip(&["-n", &sw, "addr", "add", &format!("{SWITCH_V4}/24"), "dev", "br0"])?;
    ip(&["-n", &sw, "addr", "add", &format!("{SWITCH_V6}/64"), "dev", "br0", "nodad"])?;
    ip(&["-n", &sw, "link", "set", "br0", "up"])?;
    // The management network: a second bridge, IPv4 only, not routed to the LAN (forwarding stays
    // off in every lab namespace).
    let split = state.topology == Topology::Split;
    if split {
        ip(&["-n", &sw, "link", "add", "brmgmt", "type", "bridge", "stp_state", "0", "forward_delay", "0"])?;
        sysctl(&sw, &["net.ipv6.conf.brmgmt.disable_ipv6=1".into()])?;
        ip(&["-n", &sw, "addr", "add", &format!("{MGMT_SWITCH_V4}/24"), "dev", "brmgmt"])?;
        ip(&["-n", &sw, "link", "set", "brmgmt", "up"])?;
    }

    // Hosts: a veth pair each, created inside the switch namespace with the peer placed directly in
    // the host namespace (the root namespace never holds a lab link).
    let mut hosts: Vec<(String, String, String, String)> = node_nss
        .iter()
        .map(|(i, ns)| (ns.clone(), Lab::node_name(*i), Lab::node_v4(*i), Lab::node_v6(*i)))
        .collect();
    hosts.push((client.clone(), "client".into(), CLIENT_V4.into(), CLIENT_V6.into()));
    for (ns, port, v4, v6) in &hosts {
        check_interrupted()?;
        ip(&["-n", &sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns])?;
        // Bridge ports carry no addresses of their own.
        sysctl(&sw, &[format!("net.ipv6.conf.{port}.disable_ipv6=1")])?;
        ip(&["-n", &sw, "link", "set", port, "master", "br0"])?;
        ip(&["-n", &sw, "link", "set", port, "up"])?;
        sysctl(
            ns,
            &["net.ipv6.conf.eth0.accept_dad=0".into(), "net.ipv6.conf.eth0.keep_addr_on_down=1".into()],
        )?;
        ip(&["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", "eth0"])?;
        ip(&["-n", ns, "addr", "add", &format!("{v6}/64"), "dev", "eth0", "nodad"])?;
        ip(&["-n", ns, "link", "set", "eth0", "up"])?;
    }

    for (i, ns) in node_nss.iter().filter(|_| split) {
        check_interrupted()?;
        let port = format!("mnode{i}");
        ip(&["-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", "mgmt0", "netns", ns])?;
        sysctl(&sw, &[format!("net.ipv6.conf.{port}.disable_ipv6=1")])?;
        ip(&["-n", &sw, "link", "set", &port, "master", "brmgmt"])?;
        ip(&["-n", &sw, "link", "set", &port, "up"])?;
        sysctl(ns, &["net.ipv6.conf.mgmt0.disable_ipv6=1".into()])?;
        ip(&["-n", ns, "addr", "add", &format!("{}/24", Lab::node_mgmt_v4(*i)), "dev", "mgmt0"])?;
        ip(&["-n", ns, "link", "set", "mgmt0", "up"])?;
    }

    // Nodes play kube-proxy: the VIP ranges are local (AnyIP), but the kernel must not answer ARP for
    // them (arp_ignore=1: only for addresses configured on the receiving interface; arp_announce=2:
    // never use a VIP as ARP source). For IPv6 the kernel answers NS only for addresses configured on
    // an interface (or with proxy_ndp), never for AnyIP local routes; proxy_ndp stays 0.
    for (_, ns) in &node_nss {
        check_interrupted()?;
        let mut s = Vec::new();
        for dev in ["all", "default", "eth0"] {
            s.push(format!("net.ipv4.conf.{dev}.arp_ignore=1"));
            s.push(format!("net.ipv4.conf.{dev}.arp_announce=2"));
            s.push(format!("net.ipv6.conf.{dev}.proxy_ndp=0"));
        }
        sysctl(ns, &s)?;
        ip(&["-n", ns, "route", "add", "local", VIP_RANGE_V4, "dev", "lo"])?;
        ip(&["-n", ns, "-6", "route", "add", "local", VIP_RANGE_V6, "dev", "lo"])?;
    }

    // One HTTP server per node.
    let exe = self_exe.to_str().context("executable path is not UTF-8")?.to_string();
    for (i, ns) in &node_nss {
        check_interrupted()?;
        let name = Lab::node_name(*i);
        let ready = lab.log_dir().join(format!("{name}-http.ready"));
        let _ = std::fs::remove_file(&ready);
        let argv = vec![
            exe.clone(),
            "serve-http".into(),
            "--name".into(),
            name.clone(),
            "--port".into(),
            "80".into(),
            "--ready-file".into(),
            ready.to_string_lossy().into_owned(),
        ];
        spawn_in_ns(lab, state, &format!("http-{name}"), ns, &argv)?;
        wait_for_file(&ready, Duration::from_secs(5)).with_context(|| {
            format!("HTTP server in {ns} did not start (see its log in {})", lab.log_dir().display())
        })?;
    }
    Ok(())
}

pub(crate) fn wait_for_file(path: &Path, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    while !path.exists() {
        check_interrupted()?;
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {}", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Starts `argv` in the background inside namespace `ns` (via `ip netns exec`, which execs, so the
/// recorded PID is the program's own), in its own process group (a later Ctrl-C in the terminal does
/// not reach it), output to `<log dir>/<role>.log`, and records it in the state file.
pub fn spawn_in_ns(lab: &Lab, state: &mut LabState, role: &str, ns: &str, argv: &[String]) -> Result<u32> {
    spawn_in_ns_env(lab, state, role, ns, argv, &[])
}

/// [`spawn_in_ns`] with extra environment variables (recorded too, for restarts).
pub fn spawn_in_ns_env(
    lab: &Lab,
    state: &mut LabState,
    role: &str,
    ns: &str,
    argv: &[String],
    env: &[(String, String)],
) -> Result<u32> {
    use std::os::unix::process::CommandExt;
    let dir = lab.log_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let log = dir.join(format!("{role}.log"));
    let f = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let child = Command::new("ip")
        .args(["netns", "exec", ns])
        .args(argv)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(f.try_clone()?)
        .stderr(f)
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start `ip netns exec {ns} {}`", argv.join(" ")))?;
    let pid = child.id();
    // The child is deliberately not waited for: it outlives this process and is stopped by `down`.
    drop(child);
    state.processes.push(LabProcess {
        role: role.to_string(),
        namespace: ns.to_string(),
        pid,
        argv: argv.to_vec(),
        env: env.to_vec(),
        log,
    });
    state.save(lab)?;
    Ok(pid)
}

pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid)
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

/// True if `pid` still runs the program recorded for it (guards against PID reuse).
pub(crate) fn same_process(p: &LabProcess) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{}/cmdline", p.pid)) else { return false };
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    // Either still `ip netns exec <ns> argv...` (before exec) or argv itself.
    args.ends_with(&p.argv) || args.get(1..) == p.argv.get(1..)
}

/// SIGTERM, then SIGKILL after a grace period, for every listed PID.
pub(crate) fn stop_pids(pids: &[u32]) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let pids: Vec<u32> = pids.iter().copied().filter(|p| *p > 1 && *p != std::process::id()).collect();
    for p in &pids {
        let _ = kill(Pid::from_raw(*p as i32), Signal::SIGTERM);
    }
    let start = Instant::now();
    while pids.iter().any(|p| pid_alive(*p)) && start.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in pids.iter().filter(|p| pid_alive(**p)) {
        let _ = kill(Pid::from_raw(*p as i32), Signal::SIGKILL);
    }
}

/// Removes the lab: stops its recorded processes, then anything still running in its namespaces,
/// then deletes the namespaces (exact names only). Idempotent; works without the state file.
pub fn down(lab: &Lab) -> Result<()> {
    if let Some(state) = LabState::load(lab).unwrap_or_else(|e| {
        eprintln!("ferrolb-lab: ignoring unreadable state file: {e:#}");
        None
    }) {
        let pids: Vec<u32> = state.processes.iter().filter(|p| same_process(p)).map(|p| p.pid).collect();
        stop_pids(&pids);
    }
    let existing = existing_namespaces()?;
    let ours: Vec<String> = lab.all_namespaces().into_iter().filter(|n| existing.contains(n)).collect();
    let mut errors = Vec::new();
    for ns in &ours {
        // Whatever still runs in our namespace (e.g. after a crash that lost the state file).
        if let Ok(out) = ip(&["netns", "pids", ns]) {
            let pids: Vec<u32> = out.split_whitespace().filter_map(|p| p.parse().ok()).collect();
            stop_pids(&pids);
        }
        if let Err(e) = ip(&["netns", "del", ns]) {
            errors.push(format!("{e:#}"));
        }
    }
    let _ = std::fs::remove_file(lab.state_path());
    let _ = std::fs::remove_dir_all(lab.log_dir());
    if !errors.is_empty() {
        bail!("could not delete every namespace:\n{}", errors.join("\n"));
    }
    Ok(())
}

/// Installs a SIGINT/SIGTERM handler that sets [`INTERRUPTED`] (a second signal exits at once).
pub fn install_interrupt_handler() -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // Register the handlers before returning so no signal is missed.
    let (mut int, mut term) = rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        Ok::<_, std::io::Error>((signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?))
    })?;
    std::thread::spawn(move || {
        rt.block_on(async move {
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                if INTERRUPTED.swap(true, Ordering::SeqCst) {
                    eprintln!("ferrolb-lab: interrupted twice, exiting without cleanup");
                    std::process::exit(130);
                }
                eprintln!("ferrolb-lab: interrupted, cleaning up...");
            }
        })
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_labs_leave_the_hosts_default_neighbour_tables_alone() {
        // Default gc_thresh2 is 512: labs up to 20 nodes must fit under it, so that the suites that
        // CI runs change nothing on the host.
        assert!(neighbour_entries_needed(20) <= 512, "{}", neighbour_entries_needed(20));
        // A 100-node lab needs about ten times the default hard cap of 1024.
        assert!(neighbour_entries_needed(MAX_NODES) > 10_000);
    }
}
