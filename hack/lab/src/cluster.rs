//! A whole FerroLB cluster in the lab: kube-sim and `ferrolb-ipam` in the switch namespace, one
//! `ferrolb-announcer` per node namespace, and the helpers tests and benches use to break things
//! (kill or restart an announcer, take a link down).
//!
//! kube-sim listens on `0.0.0.0:6443` (HTTPS) in the switch namespace; its certificate covers
//! 203.0.113.1 (the management network, what the lab's kubeconfig names), 198.51.100.1 (the LAN)
//! and 127.0.0.1. Everything the lab process itself says to the API goes through an
//! [`NsRuntime`] in the switch namespace, never from the root namespace.

use crate::netns::NsRuntime;
use crate::{Lab, LabState, check_interrupted, same_process, spawn_in_ns_env, stop_pids};
use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{Api, Patch, PatchParams, PostParams};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// kube-sim's port in the switch namespace.
pub const KUBE_SIM_PORT: u16 = 6443;
/// The namespace FerroLB runs in (Leases live here).
pub const SYSTEM_NAMESPACE: &str = "ferrolb-system";
/// The announcers' peer port on the LAN.
pub const PEER_PORT: u16 = 7947;

/// A binary the cluster needs: file name and the cargo package that builds it.
#[derive(Debug, Clone, Copy)]
pub struct Binary {
    pub name: &'static str,
    pub package: &'static str,
}

pub const KUBE_SIM: Binary = Binary { name: "kube-sim", package: "kube-sim" };
pub const IPAM: Binary = Binary { name: "ferrolb-ipam", package: "ferrolb-ipam" };
pub const ANNOUNCER: Binary = Binary { name: "ferrolb-announcer", package: "ferrolb-l2announcer" };
pub const LAB: Binary = Binary { name: "ferrolb-lab", package: "ferrolb-lab" };
/// The reference CNI agent; tests start it next to announcers in `--datapath delegate`.
pub const NIC_AGENT: Binary = Binary { name: "ferrolb-nic-agent", package: "ferrolb-cni" };

/// Where the cluster's binaries are looked up: next to the running executable (`target/debug` or
/// `target/release`); for a test or bench binary (`target/<profile>/deps/...`) the directory above.
pub fn default_bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating own executable")?;
    let mut dir = exe.parent().context("executable has no directory")?.to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps" || n == "examples") {
        dir.pop();
    }
    Ok(dir)
}

/// The path of `bin` in `dir`, or an error naming the cargo command that builds it.
pub fn find_binary(dir: &Path, bin: Binary) -> Result<PathBuf> {
    let path = dir.join(bin.name);
    if path.is_file() {
        return Ok(path);
    }
    let release = if dir.file_name().is_some_and(|n| n == "release") { " --release" } else { "" };
    bail!(
        "missing binary {}: build it with `cargo build{release} -p {}` (binaries are looked up in {})",
        path.display(),
        bin.package,
        dir.display()
    )
}

/// What [`start_cluster`] starts.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Where `kube-sim`, `ferrolb-ipam` and `ferrolb-announcer` are (see [`default_bin_dir`]).
    pub bin_dir: PathBuf,
    /// CRD manifests applied when kube-sim starts (default: the chart's `files/crds/`).
    pub crds: PathBuf,
    /// Start `ferrolb-ipam` (one replica, in the switch namespace).
    pub ipam: bool,
    /// Start one `ferrolb-announcer` per node.
    pub announcers: bool,
    /// Extra arguments for every announcer (timing flags for tests and benches).
    pub announcer_args: Vec<String>,
    /// Extra arguments for `ferrolb-ipam`.
    pub ipam_args: Vec<String>,
    /// Extra arguments for `kube-sim`.
    pub kube_sim_args: Vec<String>,
    /// `RUST_LOG` for the started processes (`None`: inherited).
    pub rust_log: Option<String>,
    /// How long kube-sim may take to answer.
    pub startup_timeout: Duration,
    /// The topology [`up_cluster`] builds ([`start_cluster`] follows the lab's own).
    pub topology: crate::Topology,
}

impl ClusterOptions {
    /// Everything on, binaries from [`default_bin_dir`].
    pub fn new() -> Result<Self> {
        Ok(Self::with_bin_dir(default_bin_dir()?))
    }

    pub fn with_bin_dir(bin_dir: impl Into<PathBuf>) -> Self {
        Self {
            bin_dir: bin_dir.into(),
            crds: default_crds_dir(),
            ipam: true,
            announcers: true,
            announcer_args: Vec::new(),
            ipam_args: Vec::new(),
            kube_sim_args: Vec::new(),
            rust_log: None,
            startup_timeout: Duration::from_secs(20),
            topology: crate::Topology::Split,
        }
    }
}

/// `helm/ferrolb/files/crds` of the source tree this crate was built from.
pub fn default_crds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../helm/ferrolb/files/crds")
}

/// How to reach the lab's API server (recorded in the state file).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// Kubeconfig whose server is `https://203.0.113.1:6443` (over `mgmt0`), or
    /// `https://198.51.100.1:6443` on a single-NIC lab (over `eth0`); usable from the switch
    /// namespace and every node namespace.
    pub kubeconfig: PathBuf,
    /// The API server's URL, as in the kubeconfig.
    pub server: String,
    /// Bearer token (also the token of the admin endpoints under `<server>/_sim/`).
    pub token: String,
    /// `<server>/_sim` (fault injection and counters, see kube-sim's README).
    pub admin_url: String,
    /// The announcers' shared peer key (32 random bytes, mode 0600).
    pub peer_key_file: PathBuf,
    /// Namespace of the lab's switch, where [`ClusterInfo::runtime`] runs clients.
    pub switch_ns: String,
    /// Argument lists the cluster's processes were started with, for restarts.
    #[serde(default)]
    pub announcer_args: Vec<String>,
}

impl ClusterInfo {
    /// A runtime inside the switch namespace: run every API client future through it.
    ///
    /// ```no_run
    /// # fn f(info: ferrolb_lab::cluster::ClusterInfo) -> anyhow::Result<()> {
    /// let rt = info.runtime()?;
    /// let kubeconfig = info.kubeconfig.clone();
    /// let nodes = rt.block_on(async move {
    ///     let client = kube_sim::client_from_kubeconfig(&kubeconfig).await?;
    ///     let api: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client);
    ///     anyhow::Ok(api.list(&Default::default()).await?.items.len())
    /// })??;
    /// # Ok(()) }
    /// ```
    pub fn runtime(&self) -> Result<NsRuntime> {
        Ok(NsRuntime::new(&self.switch_ns)?)
    }

    /// A kube client for the lab's API server. Call (and use the client) only inside
    /// [`ClusterInfo::runtime`].
    pub async fn client(&self) -> Result<kube::Client> {
        kube_sim::client_from_kubeconfig(&self.kubeconfig).await
    }

    /// kube-sim's fault-injection and counters client. Only inside [`ClusterInfo::runtime`].
    pub async fn admin(&self) -> Result<kube_sim::AdminClient> {
        Ok(kube_sim::AdminClient::new(self.client().await?))
    }
}

fn random_bytes(n: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("reading /dev/urandom")?;
    Ok(buf)
}

fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(data).with_context(|| format!("writing {}", path.display()))
}

/// The last `n` lines of a process log (for error messages).
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Environment of the cluster's processes: plain logs (no colours in log files), `RUST_LOG` if asked.
fn cluster_env(rust_log: Option<&str>) -> Vec<(String, String)> {
    let mut env = vec![("NO_COLOR".to_string(), "1".to_string())];
    if let Some(l) = rust_log {
        env.push(("RUST_LOG".into(), l.into()));
    }
    env
}

/// Process role names in the state file.
pub fn announcer_role(node: u8) -> String {
    format!("announcer-node{node}")
}
pub const IPAM_ROLE: &str = "ipam";
pub const KUBE_SIM_ROLE: &str = "kube-sim";

/// Role name of node `node`'s `ferrolb-nic-agent` in the state file.
pub fn nic_agent_role(node: u8) -> String {
    format!("nic-agent-node{node}")
}

/// The announcer's gRPC socket for a node.
pub fn announcer_socket(lab: &Lab, node: u8) -> PathBuf {
    lab.state_dir().join(Lab::node_name(node)).join("announcer.sock")
}

/// Starts the cluster in a lab whose topology is up (see [`crate::up`]): kube-sim (CRDs applied),
/// namespace `ferrolb-system`, Node objects `node1..nodeN`, then `ferrolb-ipam` and the announcers as
/// `opts` says. Every process is recorded in `state` so [`crate::down`] stops it. Does not clean up
/// on failure (see [`up_cluster`]).
pub fn start_cluster(lab: &Lab, state: &mut LabState, opts: &ClusterOptions) -> Result<ClusterInfo> {
    let kube_sim = find_binary(&opts.bin_dir, KUBE_SIM)?;
    let ipam = opts.ipam.then(|| find_binary(&opts.bin_dir, IPAM)).transpose()?;
    let announcer = opts.announcers.then(|| find_binary(&opts.bin_dir, ANNOUNCER)).transpose()?;
    if !opts.crds.is_dir() {
        bail!("CRD directory {} not found", opts.crds.display());
    }
    let dir = lab.state_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let sw = lab.switch_ns();
    let env = cluster_env(opts.rust_log.as_deref());

    let peer_key_file = dir.join("peer.key");
    write_private(&peer_key_file, &random_bytes(32)?)?;
    let token: String = random_bytes(16)?.iter().map(|b| format!("{b:02x}")).collect();
    let server = format!("https://{}:{KUBE_SIM_PORT}", state.topology.api_address());

    // kube-sim, with the CRDs applied before it reports that it listens.
    let sim_kubeconfig = dir.join("kube-sim.kubeconfig");
    let _ = std::fs::remove_file(&sim_kubeconfig);
    let mut argv = vec![
        path_str(&kube_sim)?,
        "--listen".into(),
        format!("0.0.0.0:{KUBE_SIM_PORT}"),
        "--token".into(),
        token.clone(),
        "--kubeconfig-out".into(),
        path_str(&sim_kubeconfig)?,
        "--tls-san".into(),
        format!("{},{},127.0.0.1", crate::MGMT_SWITCH_V4, crate::SWITCH_V4),
        "--apply".into(),
        path_str(&opts.crds)?,
    ];
    argv.extend(opts.kube_sim_args.iter().cloned());
    let pid = spawn_in_ns_env(lab, state, KUBE_SIM_ROLE, &sw, &argv, &env)?;
    let log = dir.join(format!("{KUBE_SIM_ROLE}.log"));
    let start = Instant::now();
    loop {
        check_interrupted()?;
        if std::fs::read_to_string(&log).is_ok_and(|t| t.contains("kube-sim listening on")) {
            break;
        }
        if !crate::pid_alive(pid) {
            bail!("kube-sim exited at start; its log:\n{}", log_tail(&log, 20));
        }
        if start.elapsed() > opts.startup_timeout {
            bail!(
                "kube-sim did not start within {:?}; its log:\n{}",
                opts.startup_timeout,
                log_tail(&log, 20)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    // The lab's kubeconfig: kube-sim's, pointed at the management address.
    let text = std::fs::read_to_string(&sim_kubeconfig)
        .with_context(|| format!("reading {}", sim_kubeconfig.display()))?;
    let local = format!("server: https://127.0.0.1:{KUBE_SIM_PORT}");
    if !text.contains(&local) {
        bail!("unexpected kubeconfig from kube-sim (no `{local}`): {}", sim_kubeconfig.display());
    }
    let kubeconfig = dir.join("kubeconfig");
    write_private(&kubeconfig, text.replace(&local, &format!("server: {server}")).as_bytes())?;

    let info = ClusterInfo {
        kubeconfig: kubeconfig.clone(),
        admin_url: format!("{server}/_sim"),
        server,
        token,
        peer_key_file,
        switch_ns: sw.clone(),
        announcer_args: opts.announcer_args.clone(),
    };
    state.cluster = Some(info.clone());
    state.save(lab)?;

    // Namespace and Nodes, through the API (from inside the switch namespace).
    let rt = info.runtime()?;
    let nodes = state.nodes;
    let timeout = opts.startup_timeout;
    let i2 = info.clone();
    rt.block_on(async move { seed(&i2, nodes, timeout).await })??;
    drop(rt);

    if let Some(ipam) = ipam {
        let mut argv = vec![
            path_str(&ipam)?,
            "--kubeconfig".into(),
            path_str(&kubeconfig)?,
            "--namespace".into(),
            SYSTEM_NAMESPACE.into(),
            "--metrics-addr".into(),
            "127.0.0.1:0".into(),
            "--id".into(),
            "ipam-1".into(),
        ];
        argv.extend(opts.ipam_args.iter().cloned());
        spawn_in_ns_env(lab, state, IPAM_ROLE, &sw, &argv, &env)?;
    }
    if let Some(announcer) = announcer {
        for i in 1..=nodes {
            let argv = announcer_argv(lab, &info, &announcer, i)?;
            std::fs::create_dir_all(dir.join(Lab::node_name(i)))?;
            spawn_in_ns_env(lab, state, &announcer_role(i), &lab.node_ns(i), &argv, &env)?;
        }
    }
    // Processes that die at once (bad flags, unreachable API) fail the start loudly.
    std::thread::sleep(Duration::from_millis(300));
    for p in &state.processes {
        if !crate::pid_alive(p.pid) {
            bail!(
                "{} (pid {}) exited at start; its log {}:\n{}",
                p.role,
                p.pid,
                p.log.display(),
                log_tail(&p.log, 20)
            );
        }
    }
    Ok(info)
}

fn path_str(p: &Path) -> Result<String> {
    p.to_str().map(str::to_string).with_context(|| format!("path is not UTF-8: {}", p.display()))
}

/// The announcer's command line for node `i`.
pub fn announcer_argv(lab: &Lab, info: &ClusterInfo, exe: &Path, i: u8) -> Result<Vec<String>> {
    let mut argv = vec![
        path_str(exe)?,
        "--node-name".into(),
        Lab::node_name(i),
        "--kubeconfig".into(),
        path_str(&info.kubeconfig)?,
        "--namespace".into(),
        SYSTEM_NAMESPACE.into(),
        "--metrics-addr".into(),
        "127.0.0.1:9090".into(),
        "--grpc-socket".into(),
        path_str(&announcer_socket(lab, i))?,
        "--peer-addr".into(),
        format!("{}:{PEER_PORT}", Lab::node_v4(i)),
        "--peer-key-file".into(),
        path_str(&info.peer_key_file)?,
    ];
    // The lab's nodes answer with the responder unless a test picks another datapath.
    if !info.announcer_args.iter().any(|a| a == "--datapath" || a.starts_with("--datapath=")) {
        argv.extend(["--datapath".into(), "responder".into()]);
    }
    argv.extend(info.announcer_args.iter().cloned());
    Ok(argv)
}

/// Waits for the API, then creates namespace `ferrolb-system` and the Node objects.
async fn seed(info: &ClusterInfo, nodes: u8, timeout: Duration) -> Result<()> {
    let client = info.client().await.context("building a client from the lab's kubeconfig")?;
    let ns_api: Api<Namespace> = Api::all(client.clone());
    let start = tokio::time::Instant::now();
    loop {
        match ns_api.list(&Default::default()).await {
            Ok(_) => break,
            Err(_) if start.elapsed() < timeout => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => return Err(e).context(format!("kube-sim does not answer at {}", info.server)),
        }
    }
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": SYSTEM_NAMESPACE}}))?;
    ns_api.create(&PostParams::default(), &ns).await.context("creating namespace ferrolb-system")?;

    let node_api: Api<Node> = Api::all(client);
    let now = jiff::Timestamp::now().round(jiff::Unit::Second)?.to_string();
    for i in 1..=nodes {
        let name = Lab::node_name(i);
        let node: Node = serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
            },
        }))?;
        node_api
            .create(&PostParams::default(), &node)
            .await
            .with_context(|| format!("creating Node {name}"))?;
        let status = json!({"status": {
            "addresses": [
                {"type": "InternalIP", "address": Lab::node_v4(i)},
                {"type": "InternalIP", "address": Lab::node_v6(i)},
                {"type": "Hostname", "address": name},
            ],
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "ferrolb-lab node", "lastHeartbeatTime": now, "lastTransitionTime": now,
            }],
        }});
        node_api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .with_context(|| format!("writing the status of Node {name}"))?;
    }
    Ok(())
}

/// Builds the topology and starts the cluster; on any failure (or Ctrl-C) removes everything again.
pub fn up_cluster(lab: &Lab, nodes: u8, self_exe: &Path, opts: &ClusterOptions) -> Result<LabState> {
    // Fail on a missing binary before building anything.
    find_binary(&opts.bin_dir, KUBE_SIM)?;
    if opts.ipam {
        find_binary(&opts.bin_dir, IPAM)?;
    }
    if opts.announcers {
        find_binary(&opts.bin_dir, ANNOUNCER)?;
    }
    let mut state = crate::up_with(lab, nodes, self_exe, opts.topology)?;
    match start_cluster(lab, &mut state, opts) {
        Ok(_) => Ok(state),
        Err(e) => {
            if let Err(e2) = crate::down(lab) {
                eprintln!("ferrolb-lab: cleanup after failed cluster start also failed: {e2:#}");
            }
            Err(e)
        }
    }
}

fn load_state(lab: &Lab) -> Result<LabState> {
    LabState::load(lab)?
        .with_context(|| format!("no lab {:?} (no {})", lab.prefix, lab.state_path().display()))
}

/// The PID of a recorded process that still runs (by role: `kube-sim`, `ipam`, `announcer-node2`,
/// `http-node1`).
pub fn process_pid(lab: &Lab, role: &str) -> Result<Option<u32>> {
    let state = load_state(lab)?;
    Ok(state.processes.iter().rev().find(|p| p.role == role && same_process(p)).map(|p| p.pid))
}

/// The PID of node `node`'s running announcer.
pub fn announcer_pid(lab: &Lab, node: u8) -> Result<Option<u32>> {
    process_pid(lab, &announcer_role(node))
}

/// Which node's namespace a recorded process runs in (`None` for the switch, the client, or an
/// unknown PID).
pub fn node_of_pid(lab: &Lab, pid: u32) -> Result<Option<u8>> {
    let state = load_state(lab)?;
    Ok(state
        .processes
        .iter()
        .find(|p| p.pid == pid)
        .and_then(|p| (1..=state.nodes).find(|i| lab.node_ns(*i) == p.namespace)))
}

/// Sends `signal` to node `node`'s announcer; returns its PID. Fails if it does not run.
pub fn kill_announcer(lab: &Lab, node: u8, signal: Signal) -> Result<u32> {
    signal_process(lab, &announcer_role(node), signal)
}

/// Sends `signal` to a recorded running process by role; returns its PID.
pub fn signal_process(lab: &Lab, role: &str, signal: Signal) -> Result<u32> {
    let pid =
        process_pid(lab, role)?.with_context(|| format!("no running {role} in lab {:?}", lab.prefix))?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal)
        .with_context(|| format!("sending {signal} to {role} (pid {pid})"))?;
    Ok(pid)
}

/// Waits until a PID has exited (or `timeout`); true if it did.
pub fn wait_exit(pid: u32, timeout: Duration) -> bool {
    let start = Instant::now();
    while crate::pid_alive(pid) {
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Starts node `node`'s announcer again with its recorded command line (stopping it first with
/// SIGTERM, then SIGKILL, if it still runs). Returns the new PID.
pub fn restart_announcer(lab: &Lab, node: u8) -> Result<u32> {
    restart_process(lab, &announcer_role(node))
}

/// [`restart_announcer`] for any recorded process.
pub fn restart_process(lab: &Lab, role: &str) -> Result<u32> {
    let mut state = load_state(lab)?;
    let idx = state
        .processes
        .iter()
        .rposition(|p| p.role == role)
        .with_context(|| format!("lab {:?} has no process {role}", lab.prefix))?;
    let old = state.processes.remove(idx);
    if same_process(&old) {
        stop_pids(&[old.pid]);
    }
    // Keep the old log as `<role>.<n>.log`.
    if let Some(n) = (1..1000).find(|n| !old.log.with_extension(format!("{n}.log")).exists()) {
        let _ = std::fs::rename(&old.log, old.log.with_extension(format!("{n}.log")));
    }
    spawn_in_ns_env(lab, &mut state, role, &old.namespace, &old.argv, &old.env)
}

/// Starts `ferrolb-nic-agent` (from `bin_dir`) in node `node`'s namespace, next to its announcer,
/// with `args` (at least `--interface`); on the announcer's socket unless `args` names
/// `--grpc-addr`, metrics on `127.0.0.1:9092`. Recorded as [`nic_agent_role`], so `down` stops it
/// and [`signal_process`] / [`restart_process`] reach it. Returns its PID.
pub fn start_nic_agent(lab: &Lab, node: u8, bin_dir: &Path, args: &[String]) -> Result<u32> {
    let exe = find_binary(bin_dir, NIC_AGENT)?;
    let mut state = load_state(lab)?;
    let mut argv = vec![path_str(&exe)?, "--metrics-addr".into(), "127.0.0.1:9092".into()];
    if !args.iter().any(|a| a == "--grpc-addr" || a.starts_with("--grpc-addr=")) {
        argv.extend(["--socket".into(), path_str(&announcer_socket(lab, node))?]);
    }
    argv.extend(args.iter().cloned());
    let env = cluster_env(Some("info,ferrolb_cni=debug"));
    spawn_in_ns_env(lab, &mut state, &nic_agent_role(node), &lab.node_ns(node), &argv, &env)
}

/// `ip link set dev <dev> up|down` in node `node`'s namespace (`eth0`: the LAN, `mgmt0`: the API).
pub fn set_link(lab: &Lab, node: u8, dev: &str, up: bool) -> Result<()> {
    crate::run("ip", &["-n", &lab.node_ns(node), "link", "set", "dev", dev, if up { "up" } else { "down" }])
        .map(|_| ())
}

/// `ferrolb-l2-<namespace>-<service>-<address>`.
pub fn service_lease_name(namespace: &str, service: &str, address: std::net::IpAddr) -> String {
    ferrolb_api::names::leases::service_address(namespace, service, address)
}
