//! The routers' test lab: a router namespace and a node namespace joined by a veth pair, the
//! speakers and BFD sessions that run in the node namespace, and bounded waits. Shared by the
//! FRR and BIRD suites.

#![allow(dead_code)]

pub mod faults;

pub use ferrolb_testkit::netns;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_bgp::bfd::BfdConfig;
use ferrolb_bgp::bfd_socket::{BfdPeer, BfdStatus, run_bfd};
use ferrolb_bgp::fsm::PeerConfig;
use ferrolb_bgp::rib::RouteAttrs;
use ferrolb_bgp::speaker::{PeerStatus, PeerTransport, Routes, SpeakerError, run_peer};
use ipnet::IpNet;
use netns::Netns;
use tokio::sync::watch;

pub const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
pub const NODE1: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);
pub const NODE2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 12);
/// A third node, for the MD5 mismatch tests.
pub const NODE3: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 13);
/// The MD5 password of the router's sessions with nodes 1 and 3.
pub const PASSWORD: &str = "ferrolb-test";

/// Polls `f` every 20 ms until it is true or `limit` passes; returns how long it took.
/// `log` is the router's log, shown when the wait fails.
pub fn wait_for(
    limit: Duration,
    what: &str,
    log: impl Fn() -> String,
    mut f: impl FnMut() -> bool,
) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}\nrouter log:\n{}", log());
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

pub struct Speaker {
    pub routes: watch::Sender<Routes>,
    pub shutdown: watch::Sender<bool>,
    pub status: watch::Receiver<PeerStatus>,
    pub task: std::thread::JoinHandle<()>,
}

/// The session settings of a node at `source`: AS 65001 to 65000, the default timers.
pub fn peer_config(source: Ipv4Addr) -> PeerConfig {
    PeerConfig::new(65001, 65000, source)
}

/// The router from `source`, with `password` for TCP MD5.
pub fn transport(source: Ipv4Addr, password: Option<&str>) -> PeerTransport {
    PeerTransport {
        source: Some(IpAddr::V4(source)),
        md5_password: password.map(str::to_string),
        next_hop_v6: Some(format!("2001:db8:100::{}", source.octets()[3]).parse().expect("an address")),
        ..PeerTransport::new(SocketAddr::new(IpAddr::V4(ROUTER), 179))
    }
}

/// A speaker in `node` peering with the router from `source` (AS 65001 to 65000).
pub fn start_speaker(
    node: &Netns,
    source: Ipv4Addr,
    password: Option<&str>,
    routes: Routes,
    bfd: Option<watch::Receiver<BfdStatus>>,
) -> Speaker {
    start_speaker_with(node, peer_config(source), transport(source, password), routes, bfd)
}

/// A speaker in `node` with these settings; its task panics if `run_peer` fails.
pub fn start_speaker_with(
    node: &Netns,
    config: PeerConfig,
    transport: PeerTransport,
    routes: Routes,
    bfd: Option<watch::Receiver<BfdStatus>>,
) -> Speaker {
    let (routes_tx, routes_rx) = watch::channel(routes);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (status_tx, status_rx) = watch::channel(PeerStatus::INITIAL);
    let task = node.spawn_thread(async move {
        run_peer(config, transport, routes_rx, shutdown_rx, status_tx, bfd).await.expect("peer task");
    });
    Speaker { routes: routes_tx, shutdown: shutdown_tx, status: status_rx, task }
}

/// Runs a peer task with `config` in `node` for at most `limit`: what `run_peer` returned, or
/// None if it was still running then (it accepted the settings).
pub fn run_peer_for(
    node: &Netns,
    config: PeerConfig,
    transport: PeerTransport,
    routes: Routes,
    limit: Duration,
) -> Option<Result<(), SpeakerError>> {
    let (routes_tx, routes_rx) = watch::channel(routes);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (status_tx, status_rx) = watch::channel(PeerStatus::INITIAL);
    node.spawn_thread(async move {
        // The other ends live as long as the task: a dropped sender would stop it early.
        let _keep = (routes_tx, shutdown_tx, status_rx);
        tokio::time::timeout(limit, run_peer(config, transport, routes_rx, shutdown_rx, status_tx, None))
            .await
            .ok()
    })
    .join()
    .expect("peer thread")
}

/// `v4` IPv4 /32s from 203.0.113.0 and `v6` IPv6 /128s from 2001:db8:200::, all with `attrs`.
pub fn table(v4: u32, v6: u32, attrs: &Arc<RouteAttrs>) -> Routes {
    let mut t = BTreeMap::new();
    // Documentation prefixes only: 203.0.113.0/24 holds 256 /32s, so big tables are IPv6.
    assert!(v4 <= 256);
    for i in 0..v4 {
        let a = Ipv4Addr::from(u32::from(Ipv4Addr::new(203, 0, 113, 0)) + i);
        t.insert(IpNet::new(IpAddr::V4(a), 32).expect("a prefix"), Arc::clone(attrs));
    }
    for i in 0..v6 {
        let a = std::net::Ipv6Addr::from((0x2001_0db8_0200_u128 << 80) | u128::from(i));
        t.insert(IpNet::new(IpAddr::V6(a), 128).expect("a prefix"), Arc::clone(attrs));
    }
    Arc::new(t)
}

/// A router namespace (198.51.100.1, 2001:db8:100::1) and a node namespace with three nodes'
/// addresses (.11, .12 and .13), joined by a veth pair.
pub fn lab() -> (Netns, Netns) {
    let router = Netns::new("router");
    let node = Netns::new("node");
    router.join(&node, "eth0");
    router.ip(&["addr", "add", "198.51.100.1/24", "dev", "eth0"]);
    router.ip(&["addr", "add", "2001:db8:100::1/64", "dev", "eth0", "nodad"]);
    for a in ["198.51.100.11/24", "198.51.100.12/24", "198.51.100.13/24"] {
        node.ip(&["addr", "add", a, "dev", "eth0"]);
    }
    for a in ["2001:db8:100::11/64", "2001:db8:100::12/64", "2001:db8:100::13/64"] {
        node.ip(&["addr", "add", a, "dev", "eth0", "nodad"]);
    }
    (router, node)
}

/// A BFD session to `peer` from `local`, in `ns`, for at most `life` (then it vanishes without a
/// word, like a router that died); returns its status and the thread to join.
pub fn start_bfd(
    ns: &Netns,
    local: Ipv4Addr,
    peer: Ipv4Addr,
    discriminator: u32,
    life: Duration,
) -> (watch::Receiver<BfdStatus>, watch::Sender<bool>, std::thread::JoinHandle<()>) {
    let (status_tx, status_rx) = watch::channel(BfdStatus::INITIAL);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let bfd_peer = BfdPeer {
        address: IpAddr::V4(peer),
        config: BfdConfig::default(),
        discriminator: std::num::NonZeroU32::new(discriminator).expect("nonzero"),
        status: status_tx,
    };
    let task = ns.spawn_thread(async move {
        let run = run_bfd(IpAddr::V4(local), vec![bfd_peer], shutdown_rx);
        if let Ok(result) = tokio::time::timeout(life, run).await {
            result.expect("BFD task");
        }
    });
    (status_rx, shutdown_tx, task)
}
