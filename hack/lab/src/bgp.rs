//! The BGP topology (`ferrolb-lab up --bgp`, DESIGN.md §8 and §10): a router between the LAN and
//! an outside network, so a client reaches Service addresses only through the routes the nodes
//! advertise.
//!
//! ```text
//!   P-router:   eth0 198.51.100.4/24, 2001:db8:100::4/64 (a port of br0, the LAN)
//!               eth1 203.0.113.1/24, 2001:db8:203::1/64 (the outside network); forwarding on;
//!               FRR (zebra, bgpd, bfdd: routes go into the kernel, ECMP) or BIRD 2
//!   P-outside:  eth0 203.0.113.2/24, 2001:db8:203::2/64; routes to the LAN via the router only
//!   P-nodeI:    routes to 203.0.113.0/24 and 2001:db8:203::/64 via the router
//! ```
//!
//! The router is AS 64500 and accepts a session from any LAN address (FRR's `bgp listen range`,
//! BIRD's dynamic neighbours) as AS 64512, the nodes' AS in [`lab_objects`]; it installs up to 16
//! equal paths. With FRR, sessions have BFD (100 ms x 3) when the nodes ask for it. Only on a
//! single-NIC lab: the split topology's management network uses 203.0.113.0/24.
//! Nothing leaves the lab: the outside namespace is another lab namespace, not a way out.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::{Lab, LabState, Topology, check_interrupted, ip, spawn_in_ns, sysctl};

/// The router's LAN address (its router ID too).
pub const ROUTER_V4: &str = "198.51.100.4";
pub const ROUTER_V6: &str = "2001:db8:100::4";
/// The outside network: the router's side and the client's.
pub const OUTSIDE_ROUTER_V4: &str = "203.0.113.1";
pub const OUTSIDE_ROUTER_V6: &str = "2001:db8:203::1";
pub const OUTSIDE_CLIENT_V4: &str = "203.0.113.2";
pub const OUTSIDE_CLIENT_V6: &str = "2001:db8:203::2";
/// The router's AS, and the nodes'.
pub const ROUTER_ASN: u32 = 64500;
pub const NODE_ASN: u32 = 64512;

/// Which routing daemon plays the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Router {
    /// FRR's zebra, bgpd and bfdd (Debian's `frr`).
    Frr,
    /// BIRD 2 (Debian's `bird2`), without BFD.
    Bird,
}

impl Lab {
    pub fn router_ns(&self) -> String {
        format!("{}-router", self.prefix)
    }
    pub fn outside_ns(&self) -> String {
        format!("{}-outside", self.prefix)
    }
    /// Where the router's configuration, sockets and pid files are.
    pub fn router_dir(&self) -> PathBuf {
        self.log_dir().join("router")
    }
}

/// Adds the router and the outside network to a single-NIC lab and starts the routing daemons.
pub fn add_router(lab: &Lab, state: &mut LabState, router: Router) -> Result<()> {
    if state.topology != Topology::SingleNic {
        bail!(
            "the BGP topology needs a single-NIC lab (the split lab's management network is 203.0.113.0/24)"
        );
    }
    let (sw, rt, out) = (lab.switch_ns(), lab.router_ns(), lab.outside_ns());
    for ns in [&rt, &out] {
        check_interrupted()?;
        ip(&["netns", "add", ns])?;
        state.namespaces.push(ns.clone());
        state.save(lab)?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        sysctl(ns, &["net.ipv6.conf.all.accept_dad=0".into(), "net.ipv6.conf.default.accept_dad=0".into()])?;
    }
    // The router's LAN port on the switch, as the nodes' are.
    ip(&["-n", &sw, "link", "add", "router", "type", "veth", "peer", "name", "eth0", "netns", &rt])?;
    sysctl(&sw, &["net.ipv6.conf.router.disable_ipv6=1".into()])?;
    ip(&["-n", &sw, "link", "set", "router", "master", "br0"])?;
    ip(&["-n", &sw, "link", "set", "router", "up"])?;
    ip(&["-n", &rt, "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", &out])?;
    for (ns, dev, v4, v6) in [
        (&rt, "eth0", ROUTER_V4, ROUTER_V6),
        (&rt, "eth1", OUTSIDE_ROUTER_V4, OUTSIDE_ROUTER_V6),
        (&out, "eth0", OUTSIDE_CLIENT_V4, OUTSIDE_CLIENT_V6),
    ] {
        ip(&["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", dev])?;
        ip(&["-n", ns, "addr", "add", &format!("{v6}/64"), "dev", dev, "nodad"])?;
        ip(&["-n", ns, "link", "set", dev, "up"])?;
    }
    // Hash ECMP on ports too (policy 1), so one outside client's connections spread over the nodes.
    sysctl(
        &rt,
        &[
            "net.ipv4.ip_forward=1".into(),
            "net.ipv6.conf.all.forwarding=1".into(),
            "net.ipv4.fib_multipath_hash_policy=1".into(),
            "net.ipv6.fib_multipath_hash_policy=1".into(),
        ],
    )?;
    // The outside client reaches the LAN (and the Service addresses in it) through the router.
    ip(&["-n", &out, "route", "add", "198.51.100.0/24", "via", OUTSIDE_ROUTER_V4])?;
    ip(&["-n", &out, "-6", "route", "add", "2001:db8:100::/64", "via", OUTSIDE_ROUTER_V6])?;
    for i in 1..=state.nodes {
        let ns = lab.node_ns(i);
        ip(&["-n", &ns, "route", "add", "203.0.113.0/24", "via", ROUTER_V4])?;
        ip(&["-n", &ns, "-6", "route", "add", "2001:db8:203::/64", "via", ROUTER_V6])?;
    }
    let dir = lab.router_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    match router {
        Router::Frr => start_frr(lab, state, &dir),
        Router::Bird => start_bird(lab, state, &dir),
    }
}

fn arg(p: PathBuf) -> String {
    p.to_string_lossy().into_owned()
}

fn start_frr(lab: &Lab, state: &mut LabState, dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for daemon in ["zebra", "bgpd", "bfdd"] {
        let path = format!("/usr/lib/frr/{daemon}");
        if !std::path::Path::new(&path).exists() {
            bail!("{path} is missing: install Debian's frr package (hack/test.sh does)");
        }
    }
    // The daemons run as Debian's frr user and write their sockets here.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))?;
    std::fs::write(dir.join("zebra.conf"), "hostname router\n")?;
    std::fs::write(
        dir.join("bfdd.conf"),
        "hostname router\nbfd\n profile fast\n  receive-interval 100\n  transmit-interval 100\n  detect-multiplier 3\n exit\nexit\n",
    )?;
    let asn = ROUTER_ASN;
    let node_asn = NODE_ASN;
    std::fs::write(
        dir.join("bgpd.conf"),
        format!(
            "frr defaults datacenter\n\
             hostname router\n\
             router bgp {asn}\n \
             bgp router-id {ROUTER_V4}\n \
             no bgp ebgp-requires-policy\n \
             neighbor NODES peer-group\n \
             neighbor NODES remote-as {node_asn}\n \
             neighbor NODES bfd profile fast\n \
             bgp listen range 198.51.100.0/24 peer-group NODES\n \
             neighbor NODES6 peer-group\n \
             neighbor NODES6 remote-as {node_asn}\n \
             neighbor NODES6 bfd profile fast\n \
             bgp listen range 2001:db8:100::/64 peer-group NODES6\n \
             address-family ipv4 unicast\n  \
             maximum-paths 16\n \
             exit-address-family\n \
             address-family ipv6 unicast\n  \
             neighbor NODES6 activate\n  \
             maximum-paths 16\n \
             exit-address-family\n"
        ),
    )?;
    let rt = lab.router_ns();
    let common = |daemon: &str| -> Vec<String> {
        vec![
            format!("/usr/lib/frr/{daemon}"),
            "-f".into(),
            arg(dir.join(format!("{daemon}.conf"))),
            "-i".into(),
            arg(dir.join(format!("{daemon}.pid"))),
            "-z".into(),
            arg(dir.join("zserv.api")),
            "--vty_socket".into(),
            arg(dir.to_path_buf()),
            "-u".into(),
            "frr".into(),
            "-g".into(),
            "frr".into(),
        ]
    };
    spawn_in_ns(lab, state, "router-zebra", &rt, &common("zebra"))?;
    wait_for(&dir.join("zserv.api"))?;
    let mut bfdd = common("bfdd");
    bfdd.extend(["--bfdctl".into(), arg(dir.join("bfdd.sock"))]);
    spawn_in_ns(lab, state, "router-bfdd", &rt, &bfdd)?;
    let mut bgpd = common("bgpd");
    bgpd.extend(["-l".into(), ROUTER_V4.into(), "-l".into(), ROUTER_V6.into()]);
    spawn_in_ns(lab, state, "router-bgpd", &rt, &bgpd)?;
    wait_for(&dir.join("bgpd.vty"))
}

/// BIRD 2 with the nodes as passive dynamic neighbours. `error wait time 2, 16`: after a session
/// error (a node's hold timer expiring) BIRD refuses that node for its error wait time, 60 s by
/// default, which the lab's flap tests would spend waiting (docs/bgp.md tells BIRD users the same).
fn start_bird(lab: &Lab, state: &mut LabState, dir: &std::path::Path) -> Result<()> {
    if !std::path::Path::new("/usr/sbin/bird").exists() {
        bail!("/usr/sbin/bird is missing: install Debian's bird2 package (hack/test.sh does)");
    }
    let (asn, node_asn) = (ROUTER_ASN, NODE_ASN);
    std::fs::write(
        dir.join("bird.conf"),
        format!(
            "router id {ROUTER_V4};\n\
             protocol device {{ }}\n\
             protocol kernel kernel4 {{ merge paths on limit 16; ipv4 {{ export all; import none; }}; }}\n\
             protocol kernel kernel6 {{ merge paths on limit 16; ipv6 {{ export all; import none; }}; }}\n\
             template bgp nodes {{ local as {asn}; neighbor as {node_asn}; passive on; error wait time 2, 16; }}\n\
             protocol bgp nodes4 from nodes {{ neighbor range 198.51.100.0/24 as {node_asn}; ipv4 {{ import all; export none; }}; }}\n\
             protocol bgp nodes6 from nodes {{ neighbor range 2001:db8:100::/64 as {node_asn}; ipv6 {{ import all; export none; }}; }}\n"
        ),
    )?;
    let argv = vec![
        "/usr/sbin/bird".into(),
        "-f".into(),
        "-c".into(),
        arg(dir.join("bird.conf")),
        "-s".into(),
        arg(dir.join("bird.ctl")),
    ];
    spawn_in_ns(lab, state, "router-bird", &lab.router_ns(), &argv)?;
    wait_for(&dir.join("bird.ctl"))
}

fn wait_for(path: &std::path::Path) -> Result<()> {
    crate::wait_for_file(path, std::time::Duration::from_secs(10))
        .with_context(|| format!("the router did not start (no {})", path.display()))
}

/// The next hops the router's kernel uses for `prefix` (one per node for ECMP), sorted; empty
/// when it has no route (or only the LAN's connected route).
pub fn next_hops(lab: &Lab, prefix: &str) -> Result<Vec<IpAddr>> {
    let family = if prefix.contains(':') { "-6" } else { "-4" };
    let out = ip(&["-n", &lab.router_ns(), "-j", family, "route", "show", "exact", prefix])?;
    let routes: Value = serde_json::from_str(if out.trim().is_empty() { "[]" } else { &out })
        .with_context(|| format!("reading `ip route show exact {prefix}`: {out}"))?;
    let mut hops = Vec::new();
    for r in routes.as_array().into_iter().flatten() {
        if let Some(g) = r["gateway"].as_str() {
            hops.extend(g.parse::<IpAddr>().ok());
        }
        for h in r["nexthops"].as_array().into_iter().flatten() {
            hops.extend(h["gateway"].as_str().and_then(|g| g.parse::<IpAddr>().ok()));
        }
        // Routes through a kernel nexthop object (newer zebra): read its group.
        if let Some(id) = r["nhid"].as_u64() {
            hops.extend(nexthop_group(lab, id)?);
        }
    }
    hops.sort();
    hops.dedup();
    Ok(hops)
}

/// The peers whose BFD session FRR's bfdd has Up (FRR routers only), sorted.
pub fn frr_bfd_up(lab: &Lab) -> Result<Vec<IpAddr>> {
    let socket = arg(lab.router_dir());
    let out = crate::run(
        "ip",
        &["netns", "exec", &lab.router_ns(), "vtysh", "--vty_socket", &socket, "-c", "show bfd peers json"],
    )?;
    let peers: Value =
        serde_json::from_str(&out).with_context(|| format!("reading `show bfd peers json`: {out}"))?;
    let mut up: Vec<IpAddr> = peers
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["status"] == "up")
        .filter_map(|p| p["peer"].as_str().and_then(|a| a.parse().ok()))
        .collect();
    up.sort();
    Ok(up)
}

/// How a [`wait_next_hops`] ended.
#[derive(Debug, Clone)]
pub struct HopsWait {
    /// When the next hops first satisfied the wait; `None` when the timeout came first.
    pub met_at: Option<std::time::Instant>,
    /// The next hops last read.
    pub hops: Vec<IpAddr>,
    /// The mean time one poll of the FIB took: the resolution of `met_at`.
    pub poll: Duration,
}

/// Polls the router's FIB (back to back: each poll runs `ip` two or three times) until the next
/// hops of `prefix` satisfy `want` or `timeout` passes.
pub fn wait_next_hops(
    lab: &Lab,
    prefix: &str,
    timeout: Duration,
    want: impl Fn(&[IpAddr]) -> bool,
) -> Result<HopsWait> {
    let start = std::time::Instant::now();
    let mut polls = 0u32;
    loop {
        check_interrupted()?;
        let hops = next_hops(lab, prefix)?;
        polls += 1;
        let met = want(&hops);
        if met || start.elapsed() > timeout {
            let met_at = met.then(std::time::Instant::now);
            return Ok(HopsWait { met_at, hops, poll: start.elapsed() / polls });
        }
    }
}

/// Waits until BFD is Up at both ends for each of `nodes` (their LAN addresses, sorted): on the
/// router (FRR's `show bfd peers`) and on the nodes (their `BGPSessionState`s). A node still in
/// Init advertises the 1 s slow rate, which the router's detection time follows; whether it
/// happened within `timeout`.
pub fn wait_bfd_up(
    lab: &Lab,
    rt: &crate::netns::NsRuntime,
    info: &crate::cluster::ClusterInfo,
    nodes: &[IpAddr],
    timeout: Duration,
) -> Result<bool> {
    let start = std::time::Instant::now();
    while start.elapsed() < timeout {
        check_interrupted()?;
        let i = info.clone();
        let rows = rt.block_on(async move { session_states(i.client().await?).await })??;
        if rows.len() == nodes.len() && rows.iter().all(|r| r.bfd == "Up") && frr_bfd_up(lab)? == nodes {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(false)
}

/// One HTTP GET of `ip` from the outside client (behind the router), with `lab_exe http-get`:
/// the answering node's name.
pub fn outside_get(lab: &Lab, lab_exe: &std::path::Path, ip: IpAddr) -> Result<String> {
    let url = crate::probe::url_for(ip, 80);
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.outside_ns()])
        .arg(lab_exe)
        .args(["http-get", "--timeout-ms", "1000", &url])
        .output()
        .context("running ferrolb-lab http-get in the outside namespace")?;
    if !out.status.success() {
        bail!("{url} from outside: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn nexthop_group(lab: &Lab, id: u64) -> Result<Vec<IpAddr>> {
    let show = |id: u64| -> Result<Value> {
        let out = ip(&["-n", &lab.router_ns(), "-j", "nexthop", "show", "id", &id.to_string()])?;
        Ok(serde_json::from_str(&out).unwrap_or(Value::Null))
    };
    let mut hops = Vec::new();
    for nh in show(id)?.as_array().into_iter().flatten() {
        if let Some(g) = nh["gateway"].as_str() {
            hops.extend(g.parse::<IpAddr>().ok());
        }
        for member in nh["group"].as_array().into_iter().flatten() {
            if let Some(m) = member["id"].as_u64() {
                for inner in show(m)?.as_array().into_iter().flatten() {
                    hops.extend(inner["gateway"].as_str().and_then(|g| g.parse::<IpAddr>().ok()));
                }
            }
        }
    }
    Ok(hops)
}

/// A `BGPPeer` for the lab's router (over IPv4, or IPv6 with `v6`), every node in AS 64512,
/// with the BFD profile `bfd` when given, and a `BGPAdvertisement` of every Service address.
pub fn lab_objects(v6: bool, bfd: Option<&str>) -> Vec<Value> {
    let name = if v6 { "router-v6" } else { "router" };
    let mut peer = json!({
        "apiVersion": "ferrolb.io/v1alpha1",
        "kind": "BGPPeer",
        "metadata": {"name": name},
        "spec": {
            "myASN": NODE_ASN,
            "peerASN": ROUTER_ASN,
            "peerAddress": if v6 { ROUTER_V6 } else { ROUTER_V4 },
            "holdTime": "9s",
            "keepaliveTime": "3s",
            "connectTime": "1s",
        },
    });
    if v6 {
        peer["spec"]["addressFamilies"] = json!(["IPv6"]);
    }
    if let Some(profile) = bfd {
        peer["spec"]["bfdProfile"] = json!(profile);
    }
    vec![
        peer,
        json!({
            "apiVersion": "ferrolb.io/v1alpha1",
            "kind": "BGPAdvertisement",
            "metadata": {"name": "lab"},
            "spec": {"communities": ["64512:100"]},
        }),
        json!({
            "apiVersion": "ferrolb.io/v1alpha1",
            "kind": "BFDProfile",
            "metadata": {"name": "fast"},
            "spec": {"receiveInterval": 100, "transmitInterval": 100, "detectMultiplier": 3},
        }),
    ]
}

/// One `BGPSessionState` as `kubectl get bgpsessionstates` shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SessionRow {
    pub node: String,
    pub peer: String,
    pub state: String,
    pub bfd: String,
    pub sent: u64,
}

/// The `BGPSessionState`s, sorted by node and peer.
pub async fn session_states(client: kube::Client) -> Result<Vec<SessionRow>> {
    use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
    let gvk =
        GroupVersionKind::gvk(ferrolb_api::names::GROUP, ferrolb_api::names::VERSION, "BGPSessionState");
    let api: Api<DynamicObject> =
        Api::all_with(client, &ApiResource::from_gvk_with_plural(&gvk, "bgpsessionstates"));
    let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let mut rows: Vec<SessionRow> = api
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .map(|o| SessionRow {
            node: s(&o.data["spec"]["node"]),
            peer: s(&o.data["spec"]["peer"]),
            state: s(&o.data["status"]["sessionState"]),
            bfd: s(&o.data["status"]["bfdState"]),
            sent: o.data["status"]["prefixesSent"].as_u64().unwrap_or(0),
        })
        .collect();
    rows.sort();
    Ok(rows)
}

/// Creates FerroLB objects (`ferrolb.io/v1alpha1`, cluster-scoped) such as [`lab_objects`].
pub async fn create_objects(client: kube::Client, objects: Vec<Value>) -> Result<()> {
    use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
    for object in objects {
        let kind = object["kind"].as_str().context("an object without kind")?.to_owned();
        // Every FerroLB kind's plural is its lower-case name plus "s".
        let plural = format!("{}s", kind.to_lowercase());
        let gvk = GroupVersionKind::gvk(ferrolb_api::names::GROUP, ferrolb_api::names::VERSION, &kind);
        let api: Api<DynamicObject> =
            Api::all_with(client.clone(), &ApiResource::from_gvk_with_plural(&gvk, &plural));
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        api.create(&PostParams::default(), &serde_json::from_value(object)?)
            .await
            .with_context(|| format!("creating {kind} {name}"))?;
    }
    Ok(())
}
