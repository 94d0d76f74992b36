//! The speaker against FRR's bgpd (Debian's `frr` package), in network namespaces of the test's
//! own: a "node" namespace running two speakers (two nodes' worth, from two source addresses) and
//! a "router" namespace running bgpd, joined by a veth pair. Addresses are from 198.51.100.0/24
//! and 2001:db8::/32 only; nothing is sent from the root namespace, and every wait is bounded.
//!
//! bgpd runs without zebra (`-Z`): the test reads FRR's BGP table with vtysh, which is what the
//! speaker controls; installing into the kernel is zebra's business.
//!
//! The fault scenarios of `lab/faults.rs` run here too: bgpd killed and started again, TCP MD5
//! passwords that do not match, and unusable peer settings next to a working session.

mod lab;

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_bgp::bfd::BfdState;
use ferrolb_bgp::codec::LargeCommunity;
use ferrolb_bgp::fsm::State;
use ferrolb_bgp::rib::RouteAttrs;
use lab::faults::{self, Router};
use lab::netns::Netns;
use lab::{NODE1, NODE2, NODE3, PASSWORD, ROUTER, lab, start_bfd, start_speaker, table, wait_for};
use serde_json::Value;

const BGPD: &str = "/usr/lib/frr/bgpd";
const VTYSH: &str = "/usr/bin/vtysh";

/// bgpd in the router namespace, killed on drop.
struct Frr {
    child: Child,
    dir: tempfile::TempDir,
    ns: String,
}

impl Frr {
    /// bgpd with nodes 1 and 3 behind the MD5 password [`PASSWORD`] and node 2 without one.
    fn start(router: &Netns) -> Frr {
        assert!(
            Path::new(BGPD).exists() && Path::new(VTYSH).exists(),
            "FRR is not installed: hack/test.sh installs Debian's frr package"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        // bgpd runs as Debian's frr user (root is not in the frrvty group it insists on) and
        // writes its pid file and vty socket here.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let conf = format!(
            "frr defaults datacenter\n\
             hostname router\n\
             router bgp 65000\n \
             bgp router-id {ROUTER}\n \
             no bgp ebgp-requires-policy\n \
             neighbor {NODE1} remote-as 65001\n \
             neighbor {NODE1} passive\n \
             neighbor {NODE1} password {PASSWORD}\n \
             neighbor {NODE2} remote-as 65001\n \
             neighbor {NODE2} passive\n \
             neighbor {NODE3} remote-as 65001\n \
             neighbor {NODE3} passive\n \
             neighbor {NODE3} password {PASSWORD}\n \
             address-family ipv4 unicast\n  \
             maximum-paths 8\n \
             exit-address-family\n \
             address-family ipv6 unicast\n  \
             neighbor {NODE1} activate\n  \
             neighbor {NODE2} activate\n  \
             neighbor {NODE3} activate\n  \
             maximum-paths 8\n \
             exit-address-family\n"
        );
        std::fs::write(dir.path().join("bgpd.conf"), conf).expect("write bgpd.conf");
        let child = Frr::spawn(&router.name, dir.path());
        let frr = Frr { child, dir, ns: router.name.clone() };
        // A speaker that connects before bgpd listens is refused and tries again only after its
        // connect-retry time (5 s): longer than the BFD test's whole window.
        wait_for(
            Duration::from_secs(10),
            "bgpd listening on port 179",
            || frr.log(),
            || frr.listening(router),
        );
        frr
    }

    /// Whether bgpd accepts connections on the router's BGP port.
    fn listening(&self, router: &Netns) -> bool {
        let out =
            router.command("ss").args(["-H", "-l", "-t", "-n", "sport = :179"]).output().expect("run ss");
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    }

    /// Starts bgpd in `ns` with the configuration in `dir`, appending to its log there.
    fn spawn(ns: &str, dir: &Path) -> Child {
        let path = |name: &str| -> String { dir.join(name).to_string_lossy().into_owned() };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("bgpd.out"))
            .expect("log file");
        Command::new("ip")
            .args(["netns", "exec", ns, BGPD])
            .args(["-f", &path("bgpd.conf"), "-i", &path("bgpd.pid"), "-z", &path("zserv.api")])
            .args(["--vty_socket", &path(""), "-u", "frr", "-g", "frr", "-Z", "-l", &ROUTER.to_string()])
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start bgpd")
    }

    fn kill(&mut self) {
        self.child.kill().expect("kill bgpd");
        self.child.wait().expect("reap bgpd");
    }

    fn restart(&mut self) {
        self.child = Frr::spawn(&self.ns, self.dir.path());
    }

    fn vtysh(&self, cmd: &str) -> Value {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, VTYSH, "--vty_socket"])
            .arg(self.dir.path())
            .args(["-c", cmd])
            .output()
            .expect("run vtysh");
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// Prefixes received from `peer` in `family` ("ipv4" or "ipv6"), or None before the session
    /// is up.
    fn received(&self, family: &str, peer: Ipv4Addr) -> Option<u64> {
        let v = self.vtysh(&format!("show bgp {family} unicast summary json"));
        let p = &v["peers"][peer.to_string()];
        (p["state"] == "Established").then(|| p["pfxRcd"].as_u64()).flatten()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bgpd.out")).unwrap_or_default()
    }
}

impl Router for Frr {
    fn prefixes(&self, node: Ipv4Addr) -> Option<(u64, u64)> {
        Some((self.received("ipv4", node)?, self.received("ipv6", node)?))
    }

    fn log(&self) -> String {
        Frr::log(self)
    }

    fn kill(&mut self) {
        Frr::kill(self);
    }

    fn restart(&mut self) {
        Frr::restart(self);
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn frr_installs_ecmp_paths_withdrawals_and_cease() {
    let (router, node) = lab();
    let frr = Frr::start(&router);

    let attrs = Arc::new(
        RouteAttrs::new(
            vec![(65001 << 16) | 1],
            vec![LargeCommunity { global: 65001, local1: 1, local2: 2 }],
            None,
        )
        .expect("attributes"),
    );
    let one = table(1, 1, &attrs);
    let s1 = start_speaker(&node, NODE1, Some(PASSWORD), Arc::clone(&one), None);
    let s2 = start_speaker(&node, NODE2, None, one, None);
    wait_for(
        Duration::from_secs(30),
        "both sessions up with one IPv4 and one IPv6 route",
        || frr.log(),
        || {
            [NODE1, NODE2]
                .iter()
                .all(|n| frr.received("ipv4", *n) == Some(1) && frr.received("ipv6", *n) == Some(1))
        },
    );

    // Equal paths from the two nodes: FRR uses both (ECMP), with our communities.
    let route = frr.vtysh("show bgp ipv4 unicast 203.0.113.0/32 json");
    let paths = route["paths"].as_array().cloned().unwrap_or_default();
    assert_eq!(paths.len(), 2, "{route:#}");
    for p in &paths {
        assert!(p["multipath"] == true || p["bestpath"]["overall"] == true, "not multipath: {p:#}");
        assert_eq!(p["origin"], "IGP", "{p:#}");
        assert_eq!(p["community"]["string"], "65001:1", "{p:#}");
        assert_eq!(p["largeCommunity"]["string"], "65001:1:2", "{p:#}");
        assert!(p.get("metric").is_none_or(|m| m == 0), "MED sent: {p:#}");
    }

    // 10,000 prefixes on one session, counted from the change to FRR having them all.
    let big = table(1, 10_000, &attrs);
    let start = Instant::now();
    s1.routes.send_replace(big);
    wait_for(
        Duration::from_secs(30),
        "10,000 prefixes",
        || frr.log(),
        || frr.received("ipv6", NODE1) == Some(10_000),
    );
    let took = start.elapsed();
    eprintln!("10,000 prefixes in FRR's table after {took:?}");
    assert!(took <= Duration::from_secs(2), "10,000 prefixes took {took:?}");

    // A withdrawal.
    s1.routes.send_replace(table(1, 0, &attrs));
    wait_for(Duration::from_secs(10), "withdrawal", || frr.log(), || frr.received("ipv4", NODE1) == Some(1));
    assert_eq!(frr.received("ipv6", NODE1), Some(0));

    // Planned shutdown: FRR hears Cease / Administrative Shutdown and holds no route from node 2.
    s2.shutdown.send_replace(true);
    s2.task.join().expect("speaker 2 stopped");
    assert_eq!(s2.status.borrow().state, State::Idle);
    wait_for(
        Duration::from_secs(10),
        "session 2 down",
        || frr.log(),
        || frr.received("ipv4", NODE2).is_none(),
    );
    let neighbor = frr.vtysh(&format!("show bgp neighbor {NODE2} json"));
    let text = neighbor.to_string();
    assert!(text.contains("Administrative Shutdown") || text.contains("Admin. shutdown"), "{neighbor:#}");
    assert!(text.contains("ferrolb shutting down"), "no shutdown communication: {neighbor:#}");

    s1.shutdown.send_replace(true);
    s1.task.join().expect("speaker 1 stopped");
}

#[test]
fn bfd_down_ends_the_bgp_session_at_once() {
    let (router, node) = lab();
    let frr = Frr::start(&router);
    // The router's side of BFD is ours too (bgpd runs without zebra, which FRR's BFD needs); it
    // lives 6 s and then stops answering.
    let life = Duration::from_secs(6);
    let (_router_bfd, _router_stop, router_task) = start_bfd(&router, ROUTER, NODE2, 0x0100, life);
    let started = Instant::now();
    let (node_bfd, _node_stop, _node_task) = start_bfd(&node, NODE2, ROUTER, 0x0200, Duration::from_secs(60));
    let attrs = Arc::new(RouteAttrs::default());
    let s = start_speaker(&node, NODE2, None, table(1, 0, &attrs), Some(node_bfd.clone()));
    wait_for(
        Duration::from_secs(5),
        "BGP up and BFD up",
        || frr.log(),
        || frr.received("ipv4", NODE2) == Some(1) && node_bfd.borrow().state == BfdState::Up,
    );
    assert!(started.elapsed() < life, "set-up took longer than the router's BFD lives");
    let established = s.status.borrow().established_count;

    router_task.join().expect("router BFD");
    let gone = Instant::now();
    // Detection (3 × 100 ms) and the NOTIFICATION, far less than the 9 s hold time.
    wait_for(
        Duration::from_secs(3),
        "FRR sees the session end",
        || frr.log(),
        || frr.received("ipv4", NODE2).is_none(),
    );
    let took = gone.elapsed();
    eprintln!("BGP session ended {took:?} after the router's BFD went silent");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert_eq!(node_bfd.borrow().state, BfdState::Down);
    let neighbor = frr.vtysh(&format!("show bgp neighbor {NODE2} json"));
    assert!(neighbor.to_string().contains("Cease"), "no Cease seen: {neighbor:#}");

    // BGP comes back by itself (BFD is not a precondition for it).
    wait_for(Duration::from_secs(20), "BGP back", || frr.log(), || frr.received("ipv4", NODE2) == Some(1));
    assert!(s.status.borrow().established_count > established);
    s.shutdown.send_replace(true);
    s.task.join().expect("speaker stopped");
}

#[test]
fn frr_restart_gets_every_prefix_back() {
    let (router, node) = lab();
    let mut frr = Frr::start(&router);
    let took = faults::router_restart(&mut frr, &node);
    eprintln!("FRR restart: every prefix back in bgpd's table {took:?} after bgpd started");
}

#[test]
fn frr_md5_mismatch_never_establishes_and_says_why() {
    let (router, node) = lab();
    let frr = Frr::start(&router);
    faults::md5_mismatch(&frr, &node);
}

#[test]
fn frr_peer_config_error_leaves_the_other_session_up() {
    let (router, node) = lab();
    let frr = Frr::start(&router);
    faults::config_error_leaves_others_alone(&frr, &node);
}
