//! The conformance suite's harness: one lab with a cluster per test, torn down on drop (also when the
//! test panics, after printing the last lines of the cluster's logs), and the helpers the scenarios
//! share (API objects, Leases, Events, MACs, neighbour tables, HTTP from the client).
//!
//! Every API call runs in the lab's `NsRuntime` (a thread inside the switch namespace); raw frames and
//! HTTP requests come from the client namespace. The root namespace never sends to a lab address.

#![allow(dead_code)]

pub mod helm;
pub mod raw;

use anyhow::{Context, Result, bail};
use ferrolb_api::{L2AnnouncementPolicy, LoadBalancerIPPool};
use ferrolb_lab::cluster::{self, ClusterInfo, ClusterOptions, SYSTEM_NAMESPACE};
use ferrolb_lab::netns::NsRuntime;
use ferrolb_lab::{Lab, Topology};
use ferrolb_testkit::fixtures::{PolicyFixture as _, PoolFixture as _, ServiceFixture as _};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use raw::{Mac, RawPort, mac_str};

/// The scenarios are timing-sensitive (gaps of 200 ms, failovers of a few seconds) and each lab runs
/// 6-8 processes: on a 2-core CI machine, two labs at once make the bounds flaky. Every test holds
/// this lock for its whole run, so they run one at a time whatever `--test-threads` says.
static SERIAL: Mutex<()> = Mutex::new(());
static NEXT: AtomicU32 = AtomicU32::new(0);

pub const POOL_V4: &str = "198.51.100.128/25";
pub const POOL_V6_START: &str = "2001:db8:100::1000";
pub const POOL_V6_STOP: &str = "2001:db8:100::1fff";

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Fails loudly when the suite cannot run here.
fn preflight() -> PathBuf {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the L2 conformance suite must run as root (it creates network namespaces, raw sockets and \
         processes in them); it never skips. Run it with `sudo -E cargo test -p ferrolb-conformance`."
    );
    let ip = Command::new("ip").arg("-V").output();
    assert!(
        ip.as_ref().is_ok_and(|o| o.status.success()),
        "iproute2's `ip` is needed by the lab and could not be run: {ip:?}"
    );
    let dir = cluster::default_bin_dir().expect("locating the target directory");
    for b in [cluster::KUBE_SIM, cluster::IPAM, cluster::ANNOUNCER, cluster::LAB, cluster::NIC_AGENT] {
        if let Err(e) = cluster::find_binary(&dir, b) {
            panic!(
                "{e:#}\nThe suite runs the workspace's binaries; build them all with \
                 `cargo build -p kube-sim -p ferrolb-ipam -p ferrolb-l2announcer -p ferrolb-lab -p ferrolb-cni` \
                 (`cargo test --workspace --all-targets` builds them too)."
            );
        }
    }
    dir
}

/// A lab with a running cluster. Dropping it removes the lab.
pub struct Harness {
    pub lab: Lab,
    pub nodes: u8,
    pub info: ClusterInfo,
    pub lab_exe: PathBuf,
    rt: Option<NsRuntime>,
    client: kube::Client,
    started: Instant,
    name: String,
    _serial: MutexGuard<'static, ()>,
}

impl Harness {
    /// `nodes` nodes, every announcer started with `announcer_args` (empty: the defaults).
    pub fn up(name: &str, nodes: u8, announcer_args: &[&str]) -> Self {
        Self::up_with(name, nodes, announcer_args, true)
    }

    /// [`Harness::up`]; `settled: false` returns as soon as the processes run, before the
    /// announcers report ready.
    pub fn up_with(name: &str, nodes: u8, announcer_args: &[&str], settled: bool) -> Self {
        Self::up_on(name, nodes, announcer_args, settled, Topology::Split)
    }

    /// [`Harness::up`] on a single-NIC lab: API server, peer channel and Service traffic share each
    /// node's one link (`eth0`), as on most small clusters.
    pub fn up_single_nic(name: &str, nodes: u8, announcer_args: &[&str]) -> Self {
        Self::up_on(name, nodes, announcer_args, true, Topology::SingleNic)
    }

    /// [`Harness::up_with`] on the given topology.
    pub fn up_on(name: &str, nodes: u8, announcer_args: &[&str], settled: bool, topology: Topology) -> Self {
        Self::start(name, nodes, announcer_args, &[], settled, topology, true)
    }

    /// [`Harness::up`] with `args` given to `ferrolb-ipam` and to every announcer (flags both
    /// binaries take, such as `--load-balancer-classes`).
    pub fn up_both(name: &str, nodes: u8, args: &[&str]) -> Self {
        Self::start(name, nodes, args, args, true, Topology::Split, true)
    }

    /// A lab with kube-sim only (namespace `ferrolb-system` and the Node objects seeded): the test
    /// starts FerroLB's processes itself.
    pub fn up_api_only(name: &str, nodes: u8) -> Self {
        Self::start(name, nodes, &[], &[], false, Topology::Split, false)
    }

    fn start(
        name: &str,
        nodes: u8,
        announcer_args: &[&str],
        ipam_args: &[&str],
        settled: bool,
        topology: Topology,
        ferrolb: bool,
    ) -> Self {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let dir = preflight();
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("flbc{}x{n}", std::process::id());
        let lab = Lab::new(&prefix).expect("lab prefix");
        let lab_exe = dir.join("ferrolb-lab");
        let mut opts = ClusterOptions::with_bin_dir(&dir);
        opts.ipam = ferrolb;
        opts.announcers = ferrolb;
        opts.topology = topology;
        opts.announcer_args = announcer_args.iter().map(|s| s.to_string()).collect();
        opts.announcer_args.push("--log-format=text".into());
        opts.ipam_args.extend(ipam_args.iter().map(|s| s.to_string()));
        opts.rust_log = Some("info,ferrolb_l2announcer=debug".into());
        let t = Instant::now();
        let state = cluster::up_cluster(&lab, nodes, &lab_exe, &opts).unwrap_or_else(|e| {
            panic!("[{name}] cannot build the lab {prefix} ({nodes} nodes) with its cluster: {e:#}")
        });
        let info = state.cluster.clone().expect("the lab recorded no cluster");
        let rt = info.runtime().expect("runtime in the switch namespace");
        let i = info.clone();
        let client = rt
            .wait(async move { i.client().await })
            .unwrap_or_else(|e| panic!("[{name}] kube client for the lab: {e:#}"));
        let h = Self {
            lab,
            nodes,
            info,
            lab_exe,
            rt: Some(rt),
            client,
            started: Instant::now(),
            name: name.to_string(),
            _serial: serial,
        };
        if settled {
            h.wait_announcers_ready();
        }
        h.log(&format!(
            "lab {prefix}: {nodes} nodes up (announcers ready: {settled}) in {:.1} s",
            t.elapsed().as_secs_f64()
        ));
        h
    }

    /// Waits until every node's heartbeat Lease reports `ready: true` in its
    /// `ferrolb.io/announcer-state` annotation, so every scenario starts from a settled cluster
    /// (Services created earlier are placed on whichever announcer is ready first, and spread only
    /// after `--handover-settle`).
    pub fn wait_announcers_ready(&self) {
        let start = Instant::now();
        loop {
            let ready = self.api("reading the heartbeat Leases", |c| async move {
                let api: Api<Lease> = Api::namespaced(c, SYSTEM_NAMESPACE);
                Ok(api
                    .list(&Default::default())
                    .await?
                    .items
                    .into_iter()
                    .filter(|l| l.metadata.name.as_deref().is_some_and(|n| n.starts_with("ferrolb-node-")))
                    .filter(|l| {
                        l.metadata
                            .annotations
                            .as_ref()
                            .and_then(|a| a.get(ferrolb_api::names::annotations::ANNOUNCER_STATE))
                            .and_then(|v| serde_json::from_str::<Value>(v).ok())
                            .is_some_and(|v| v["ready"] == json!(true))
                    })
                    .count())
            });
            if ready == usize::from(self.nodes) {
                return;
            }
            if start.elapsed() > secs(20) {
                self.dump_leases();
                panic!("[{}] only {ready} of {} announcers ready after 20 s", self.name, self.nodes);
            }
            std::thread::sleep(ms(50));
        }
    }

    pub fn log(&self, msg: &str) {
        eprintln!("[{} +{:.2}s] {msg}", self.name, self.started.elapsed().as_secs_f64());
    }

    /// Runs `f` with the lab's kube client inside the switch namespace.
    pub fn api<T, F, Fut>(&self, what: &str, f: F) -> T
    where
        F: FnOnce(kube::Client) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        self.try_api(f).unwrap_or_else(|e| panic!("[{}] {what}: {e:#}", self.name))
    }

    pub fn try_api<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: FnOnce(kube::Client) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let fut = f(self.client.clone());
        self.rt.as_ref().expect("runtime").block_on(fut)?
    }

    /// A pool with both lab VIP ranges, and an L2AnnouncementPolicy on `eth0` for every Service.
    pub fn default_pool_and_policy(&self) {
        self.create_pool("conformance");
        self.create_policy(L2AnnouncementPolicy::test("conformance").with_interfaces(&["eth0"]));
    }

    pub fn create_pool(&self, name: &str) {
        let pool = LoadBalancerIPPool::test(name).with_block(POOL_V4).with_range(POOL_V6_START, POOL_V6_STOP);
        self.create_cr("LoadBalancerIPPool", "loadbalancerippools", serde_json::to_value(pool).unwrap());
    }

    pub fn create_policy(&self, policy: L2AnnouncementPolicy) {
        self.create_cr(
            "L2AnnouncementPolicy",
            "l2announcementpolicies",
            serde_json::to_value(policy).unwrap(),
        );
    }

    /// Creates a FerroLB object (`LoadBalancerIPPool` or `L2AnnouncementPolicy`) as written, e.g.
    /// by `ferrolbctl convert`.
    pub fn create_ferrolb_object(&self, obj: Value) {
        match obj["kind"].as_str() {
            Some("LoadBalancerIPPool") => self.create_cr("LoadBalancerIPPool", "loadbalancerippools", obj),
            Some("L2AnnouncementPolicy") => {
                self.create_cr("L2AnnouncementPolicy", "l2announcementpolicies", obj)
            }
            other => panic!("[{}] not a FerroLB object kind: {other:?}", self.name),
        }
    }

    fn create_cr(&self, kind: &'static str, plural: &'static str, obj: Value) {
        self.api(&format!("creating {kind}"), move |c| async move {
            let gvk = GroupVersionKind::gvk(ferrolb_api::names::GROUP, ferrolb_api::names::VERSION, kind);
            let api: Api<DynamicObject> = Api::all_with(c, &ApiResource::from_gvk_with_plural(&gvk, plural));
            api.create(&PostParams::default(), &serde_json::from_value(obj)?).await?;
            Ok(())
        })
    }

    /// Creates `svc` (see [`service`]) in `default`, and waits until it has `addresses` ingress
    /// addresses.
    pub fn create_service(&self, svc: Service, addresses: usize) -> Vec<IpAddr> {
        let name = svc.metadata.name.clone().expect("the Service has no name");
        assert!(
            svc.metadata.namespace.as_deref().is_none_or(|ns| ns == "default"),
            "[{}] Service {name} is in {:?}: the harness creates Services in default",
            self.name,
            svc.metadata.namespace
        );
        let svc = svc.in_namespace("default");
        let n = name.clone();
        self.api(&format!("creating Service default/{name}"), move |c| async move {
            let api: Api<Service> = Api::namespaced(c, "default");
            api.create(&PostParams::default(), &svc).await?;
            let start = tokio::time::Instant::now();
            loop {
                let ips = ingress(&api.get(&n).await?);
                if ips.len() >= addresses {
                    return Ok(ips);
                }
                if start.elapsed() > secs(15) {
                    bail!("Service default/{n} has {ips:?} after 15 s, wanted {addresses} addresses");
                }
                tokio::time::sleep(ms(50)).await;
            }
        })
    }

    /// The holder of the Lease of (default/`svc`, `ip`): `None` when the Lease is absent or has no
    /// holder.
    pub fn holder(&self, svc: &str, ip: IpAddr) -> Option<String> {
        let name = cluster::service_lease_name("default", svc, ip);
        self.api("reading a Lease", move |c| async move {
            let api: Api<Lease> = Api::namespaced(c, SYSTEM_NAMESPACE);
            Ok(api
                .get_opt(&name)
                .await?
                .and_then(|l| l.spec)
                .and_then(|s| s.holder_identity)
                .filter(|h| !h.is_empty()))
        })
    }

    /// Polls the Lease every 20 ms until `pred(holder)`; returns the holder and how long it took.
    pub fn wait_holder(
        &self,
        svc: &str,
        ip: IpAddr,
        timeout: Duration,
        what: &str,
        mut pred: impl FnMut(Option<&str>) -> bool,
    ) -> (Option<String>, Duration) {
        let start = Instant::now();
        loop {
            let h = self.holder(svc, ip);
            if pred(h.as_deref()) {
                return (h, start.elapsed());
            }
            if start.elapsed() > timeout {
                self.dump_leases();
                panic!("[{}] {what}: not within {timeout:?} (Lease of {svc} {ip} held by {h:?})", self.name);
            }
            std::thread::sleep(ms(20));
        }
    }

    /// Waits for any holder; returns the node number.
    pub fn wait_any_holder(&self, svc: &str, ip: IpAddr) -> u8 {
        let (h, _) = self.wait_holder(svc, ip, secs(15), &format!("a holder for {ip}"), |h| h.is_some());
        node_number(&h.unwrap())
    }

    pub fn dump_leases(&self) {
        let leases = self.try_api(|c| async move {
            let api: Api<Lease> = Api::namespaced(c, SYSTEM_NAMESPACE);
            Ok(api
                .list(&Default::default())
                .await?
                .items
                .into_iter()
                .map(|l| {
                    let s = l.spec.unwrap_or_default();
                    format!(
                        "{} holder={:?} renew={:?}",
                        l.metadata.name.unwrap_or_default(),
                        s.holder_identity,
                        s.renew_time.map(|t| t.0.to_string())
                    )
                })
                .collect::<Vec<_>>())
        });
        match leases {
            Ok(l) => eprintln!("[{}] Leases:\n  {}", self.name, l.join("\n  ")),
            Err(e) => eprintln!("[{}] Leases: cannot list: {e:#}", self.name),
        }
    }

    /// events.k8s.io/v1 Events about default/`svc`.
    pub fn events(&self, svc: &str) -> Vec<Event> {
        let svc = svc.to_string();
        self.api("listing Events", move |c| async move {
            let api: Api<Event> = Api::namespaced(c, "default");
            Ok(api
                .list(&Default::default())
                .await?
                .items
                .into_iter()
                .filter(|e| {
                    e.regarding.as_ref().is_some_and(|r| {
                        r.name.as_deref() == Some(svc.as_str()) && r.kind.as_deref() == Some("Service")
                    })
                })
                .collect())
        })
    }

    /// Waits for an Event about `svc` with `reason` and `type_` whose note contains every `needle`.
    pub fn wait_event(
        &self,
        svc: &str,
        type_: &str,
        reason: &str,
        needles: &[&str],
        timeout: Duration,
    ) -> Event {
        let start = Instant::now();
        loop {
            let evs = self.events(svc);
            if let Some(e) = evs.iter().find(|e| {
                e.type_.as_deref() == Some(type_)
                    && e.reason.as_deref() == Some(reason)
                    && needles.iter().all(|n| e.note.as_deref().unwrap_or_default().contains(n))
            }) {
                return e.clone();
            }
            if start.elapsed() > timeout {
                let all: Vec<String> =
                    evs.iter().map(|e| format!("{:?} {:?}: {:?}", e.type_, e.reason, e.note)).collect();
                panic!(
                    "[{}] no {type_} {reason} Event about Service {svc} mentioning {needles:?} within \
                     {timeout:?}; its Events:\n  {}",
                    self.name,
                    all.join("\n  ")
                );
            }
            std::thread::sleep(ms(100));
        }
    }

    /// The MAC of node `i`'s (or the client's, `0`) `eth0`.
    pub fn mac(&self, node: u8) -> Mac {
        let ns = if node == 0 { self.lab.client_ns() } else { self.lab.node_ns(node) };
        let out = ip_json(&["-n", &ns, "-j", "link", "show", "eth0"]);
        let s = out[0]["address"].as_str().unwrap_or_else(|| panic!("no MAC for eth0 in {ns}: {out}"));
        raw::parse_mac(s).unwrap()
    }

    /// Node number whose eth0 has `mac`.
    pub fn node_of_mac(&self, mac: &Mac) -> Option<u8> {
        (1..=self.nodes).find(|i| self.mac(*i) == *mac)
    }

    /// The client's neighbour entry for `ip`: (lladdr, states).
    pub fn client_neigh(&self, ip: IpAddr) -> Option<(Mac, Vec<String>)> {
        let out =
            ip_json(&["-n", &self.lab.client_ns(), "-j", "neigh", "show", &ip.to_string(), "dev", "eth0"]);
        let e = out.as_array()?.first()?.clone();
        let mac = raw::parse_mac(e["lladdr"].as_str()?).ok()?;
        let states = e["state"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        Some((mac, states))
    }

    /// Waits until the client's neighbour entry for `ip` names `mac`.
    pub fn wait_client_neigh(&self, ip: IpAddr, mac: &Mac, timeout: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let e = self.client_neigh(ip);
            if e.as_ref().is_some_and(|(m, _)| m == mac) {
                return start.elapsed();
            }
            if start.elapsed() > timeout {
                panic!(
                    "[{}] the client's neighbour entry for {ip} is {e:?} after {timeout:?}, expected {}",
                    self.name,
                    mac_str(mac)
                );
            }
            std::thread::sleep(ms(20));
        }
    }

    /// A raw ARP port on the switch namespace's management bridge (IPv4 only).
    pub fn mgmt_port(&self) -> RawPort {
        let ns = self.lab.switch_ns();
        let out = ip_json(&["-n", &ns, "-j", "link", "show", "brmgmt"]);
        let mac = raw::parse_mac(out[0]["address"].as_str().expect("brmgmt MAC")).unwrap();
        RawPort::open(&ns, "brmgmt", mac, ferrolb_lab::MGMT_SWITCH_V4.parse().unwrap(), Ipv6Addr::UNSPECIFIED)
            .unwrap_or_else(|e| panic!("[{}] raw socket on brmgmt: {e:#}", self.name))
    }

    /// MAC of node `i`'s `dev`.
    pub fn dev_mac(&self, node: u8, dev: &str) -> Mac {
        let out = ip_json(&["-n", &self.lab.node_ns(node), "-j", "link", "show", dev]);
        raw::parse_mac(out[0]["address"].as_str().expect("MAC")).unwrap()
    }

    /// A raw ARP/NDP port on the client's eth0.
    pub fn client_port(&self) -> RawPort {
        RawPort::open(
            &self.lab.client_ns(),
            "eth0",
            self.mac(0),
            ferrolb_lab::CLIENT_V4.parse::<Ipv4Addr>().unwrap(),
            ferrolb_lab::CLIENT_V6.parse::<Ipv6Addr>().unwrap(),
        )
        .unwrap_or_else(|e| panic!("[{}] raw socket in the client namespace: {e:#}", self.name))
    }

    /// One HTTP GET to `ip` from the client namespace: the answering node's name.
    pub fn http_get(&self, ip: IpAddr, timeout: Duration) -> Result<String> {
        let url = ferrolb_lab::probe::url_for(ip, 80);
        let out = Command::new("ip")
            .args(["netns", "exec", &self.lab.client_ns()])
            .arg(&self.lab_exe)
            .args(["http-get", "--timeout-ms", &timeout.as_millis().to_string(), &url])
            .output()
            .context("running ferrolb-lab http-get in the client namespace")?;
        if !out.status.success() {
            bail!("{url}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// GETs `ip` until `want` (any node if `None`) answers; returns the answering node.
    pub fn wait_http(&self, ip: IpAddr, want: Option<&str>, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let r = self.http_get(ip, ms(500));
            match &r {
                Ok(n) if want.is_none_or(|w| w == n) => return n.clone(),
                _ => {}
            }
            if start.elapsed() > timeout {
                panic!("[{}] HTTP to {ip}: wanted {want:?}, last result {r:?} after {timeout:?}", self.name);
            }
            std::thread::sleep(ms(100));
        }
    }

    /// A probe from the client namespace (see `ferrolb_lab::probe`).
    pub fn start_probe(&self, opts: &ferrolb_lab::probe::ProbeOptions) -> ferrolb_lab::probe::Probe {
        ferrolb_lab::probe::start_probe(&self.lab, &self.lab_exe, opts)
            .unwrap_or_else(|e| panic!("[{}] starting the probe: {e:#}", self.name))
    }

    pub fn announcer_pid(&self, node: u8) -> Option<u32> {
        cluster::announcer_pid(&self.lab, node).expect("reading the lab state")
    }

    pub fn set_link(&self, ns: &str, dev: &str, up: bool) {
        ferrolb_lab::run("ip", &["-n", ns, "link", "set", "dev", dev, if up { "up" } else { "down" }])
            .unwrap_or_else(|e| panic!("[{}] {e:#}", self.name));
    }

    pub fn admin(&self) -> kube_sim::AdminClient {
        kube_sim::AdminClient::new(self.client.clone())
    }

    /// Sets or removes `node.kubernetes.io/exclude-from-external-load-balancers` on node `node`: a
    /// holder that gets it hands its addresses over while alive (placement is sticky, so this is
    /// how a test moves an address to a chosen node).
    pub fn exclude_node(&self, node: u8, excluded: bool) {
        let name = Lab::node_name(node);
        let value = if excluded { json!("true") } else { Value::Null };
        self.api("labelling a Node", move |c| async move {
            let api: Api<k8s_openapi::api::core::v1::Node> = Api::all(c);
            let patch = json!({"metadata": {"labels": {"node.kubernetes.io/exclude-from-external-load-balancers": value}}});
            api.patch(&name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await?;
            Ok(())
        });
    }

    /// Starts `ferrolb-nic-agent` in node `node`'s namespace with `args` (see
    /// [`cluster::start_nic_agent`]); fails loudly when the binary is missing or the agent exits at
    /// once. Returns its PID.
    pub fn start_agent(&self, node: u8, args: &[&str]) -> u32 {
        let dir = cluster::default_bin_dir().expect("locating the target directory");
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let pid = cluster::start_nic_agent(&self.lab, node, &dir, &args).unwrap_or_else(|e| {
            panic!(
                "[{}] cannot start ferrolb-nic-agent on node{node}: {e:#}\nbuild it with \
                 `cargo build -p ferrolb-cni` (`cargo test --workspace --all-targets` builds it too)",
                self.name
            )
        });
        std::thread::sleep(ms(200));
        assert!(
            ferrolb_lab::pid_alive(pid),
            "[{}] ferrolb-nic-agent on node{node} exited at start; its log:\n{}",
            self.name,
            self.agent_log(node)
        );
        pid
    }

    /// The last lines of node `node`'s agent log.
    pub fn agent_log(&self, node: u8) -> String {
        let role = cluster::nic_agent_role(node);
        cluster::log_tail(&self.lab.log_dir().join(format!("{role}.log")), 30)
    }

    /// Every address on every interface of node `node`, as `(interface, address)`.
    pub fn node_addresses(&self, node: u8) -> Vec<(String, IpAddr)> {
        let out = ip_json(&["-n", &self.lab.node_ns(node), "-j", "address", "show"]);
        let mut v = Vec::new();
        for link in out.as_array().into_iter().flatten() {
            let dev = link["ifname"].as_str().unwrap_or_default().to_string();
            for a in link["addr_info"].as_array().into_iter().flatten() {
                if let Some(ip) = a["local"].as_str().and_then(|s| s.parse().ok()) {
                    v.push((dev.clone(), ip));
                }
            }
        }
        v
    }

    /// The nodes that have `ip` on any interface (`ip address` in each node's namespace).
    pub fn nodes_with_address(&self, ip: IpAddr) -> Vec<u8> {
        (1..=self.nodes).filter(|n| self.node_addresses(*n).iter().any(|(_, a)| *a == ip)).collect()
    }

    /// Waits until `ip` is configured on exactly the nodes `want` (on any interface) and nowhere
    /// else; returns how long that took. Panics with every node's addresses.
    pub fn wait_address_on(&self, ip: IpAddr, want: &[u8], timeout: Duration, what: &str) -> Duration {
        let start = Instant::now();
        loop {
            let on = self.nodes_with_address(ip);
            if on == want {
                return start.elapsed();
            }
            if start.elapsed() > timeout {
                let all: Vec<String> =
                    (1..=self.nodes).map(|n| format!("node{n}: {:?}", self.node_addresses(n))).collect();
                panic!(
                    "[{}] {what}: {ip} is on nodes {on:?} after {timeout:?}, wanted exactly {want:?}\n  {}",
                    self.name,
                    all.join("\n  ")
                );
            }
            std::thread::sleep(ms(20));
        }
    }

    /// Asserts every announcer still runs.
    pub fn assert_announcers_running(&self) {
        for i in 1..=self.nodes {
            assert!(
                self.announcer_pid(i).is_some(),
                "[{}] the announcer of node{i} is not running; its log:\n{}",
                self.name,
                cluster::log_tail(&self.lab.log_dir().join(format!("announcer-node{i}.log")), 30)
            );
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_leases();
            if let Ok(Some(state)) = ferrolb_lab::LabState::load(&self.lab) {
                for p in state.processes.iter().filter(|p| !p.role.starts_with("http-")) {
                    eprintln!(
                        "[{}] --- last lines of {} ---\n{}",
                        self.name,
                        p.log.display(),
                        cluster::log_tail(&p.log, 25)
                    );
                }
            }
        }
        drop(self.rt.take());
        if let Err(e) = ferrolb_lab::down(&self.lab) {
            eprintln!("[{}] tearing down lab {} failed: {e:#}", self.name, self.lab.prefix);
        }
    }
}

/// EndpointSlice `<service>-conformance` in `default`: one endpoint on each of `nodes` (their LAN
/// address), all `ready` and serving or all not.
pub fn endpoint_slice(service: &str, nodes: &[u8], ready: bool) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-conformance"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        "endpoints": nodes.iter().map(|n| json!({
            "addresses": [Lab::node_v4(*n)],
            "nodeName": Lab::node_name(*n),
            "conditions": {"ready": ready, "serving": ready, "terminating": false},
        })).collect::<Vec<_>>(),
    })
}

/// LoadBalancer Service `name` as the lab's backends serve it: one TCP port 80 named `http` (the
/// port [`endpoint_slice`] names) to target port 80, rather than [`ServiceFixture::test`]'s bare
/// port 80, so nothing is left to the API server's defaulting.
///
/// [`ServiceFixture::test`]: ferrolb_testkit::fixtures::ServiceFixture::test
pub fn service(name: &str) -> Service {
    let mut svc = Service::test(name);
    svc.spec.as_mut().expect("a test Service has a spec").ports = Some(vec![ServicePort {
        name: Some("http".into()),
        port: 80,
        target_port: Some(IntOrString::Int(80)),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }]);
    svc
}

/// [`service`] with one IPv4 address (`SingleStack`, `["IPv4"]`), whatever the cluster's families.
pub fn v4_service(name: &str) -> Service {
    service(name).with_family_policy("SingleStack").with_ip_families(&["IPv4"])
}

pub fn node_number(name: &str) -> u8 {
    Lab::node_number(name).unwrap_or_else(|| panic!("unexpected node name {name:?}"))
}

pub fn ingress(svc: &Service) -> Vec<IpAddr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|i| i.iter().filter_map(|i| i.ip.as_ref()?.parse().ok()).collect())
        .unwrap_or_default()
}

fn ip_json(args: &[&str]) -> Value {
    let out = ferrolb_lab::run("ip", args).unwrap_or_else(|e| panic!("{e:#}"));
    if out.trim().is_empty() {
        return json!([]);
    }
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("`ip {}` printed no JSON ({e}): {out}", args.join(" ")))
}
