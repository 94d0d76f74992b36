//! BGP mode against real routers (issue 13; DESIGN.md §10): three single-NIC lab nodes whose
//! announcers peer with a router namespace running Debian's FRR (zebra, bgpd, bfdd) or BIRD 2,
//! and a client outside, behind the router (`ferrolb-lab up --bgp`).
//!
//! Needs root, `frr` and `bird2` (hack/test.sh installs them); fails loudly (never skips) without
//! them. One test at a time, each in its own lab. Scenarios:
//! - FRR, IPv4: a Service's address is in the router's kernel FIB with one next hop per node (ECMP)
//!   and the outside client reaches several nodes through it; `BGPSessionState`s say Established
//!   with BFD Up; `externalTrafficPolicy: Local` advertises only from nodes with a ready local
//!   endpoint and withdraws when the last one goes; a node's link going down (announcer alive)
//!   is dropped by the router through BFD; SIGTERM withdraws before the announcer exits.
//! - FRR, IPv6: IPv6 prefixes over IPv6 sessions, reached from outside over IPv6; a peer whose
//!   spec cannot be used gets `ferrolb.io/InvalidSpec` and leaves the other peer's routes alone.
//! - BIRD, no BFD, hold time 3 s: the same ECMP route and outside client; a node's link going down
//!   is dropped within the hold time; a withdraw on SIGTERM.

mod support;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_lab::bgp::{self, Router};
use ferrolb_lab::{Lab, LabState};
use ferrolb_testkit::fixtures::ServiceFixture as _;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use support::{Harness, ms, secs, v4_service};

fn node_v4(i: u8) -> IpAddr {
    Lab::node_v4(i).parse().unwrap()
}

fn node_v6(i: u8) -> IpAddr {
    Lab::node_v6(i).parse().unwrap()
}

/// A single-NIC lab of three nodes with BGP mode on, the router `router` beside it, the lab's
/// BGPPeer (IPv4 or IPv6 session, BFD profile `fast` for FRR), BGPAdvertisement and BFDProfile,
/// and a pool with both lab ranges (no L2AnnouncementPolicy: BGP only).
fn bgp_lab(name: &str, router: Router, v6: bool) -> Harness {
    bgp_lab_with(name, router, v6, |_| {})
}

/// [`bgp_lab`] with the BGPPeer changed by `peer` before it is created.
fn bgp_lab_with(name: &str, router: Router, v6: bool, peer: impl FnOnce(&mut Value)) -> Harness {
    let h = Harness::up_single_nic(name, 3, &["--bgp=true"]);
    let mut state = LabState::load(&h.lab).expect("reading the lab state").expect("the lab has a state");
    bgp::add_router(&h.lab, &mut state, router)
        .unwrap_or_else(|e| panic!("[{name}] adding the router: {e:#}"));
    let mut objects = bgp::lab_objects(v6, (router == Router::Frr).then_some("fast"));
    peer(&mut objects[0]);
    h.api("creating the BGP objects", move |c| bgp::create_objects(c, objects));
    h.create_pool("conformance");
    h.log(&format!("{router:?} router up"));
    h
}

/// Polls the router's FIB until the next hops of `prefix` satisfy `want`; returns how long it took.
fn wait_hops(
    h: &Harness,
    prefix: &str,
    timeout: Duration,
    what: &str,
    want: impl Fn(&[IpAddr]) -> bool,
) -> Duration {
    let start = Instant::now();
    let waited = bgp::wait_next_hops(&h.lab, prefix, timeout, want)
        .unwrap_or_else(|e| panic!("reading the router's FIB: {e:#}"));
    match waited.met_at {
        Some(at) => at.duration_since(start),
        None => {
            let log = std::fs::read_to_string(h.lab.log_dir().join("router-bgpd.log")).unwrap_or_default();
            panic!(
                "{prefix}: {what} not reached in {timeout:?}; next hops {:?}\nrouter log tail:\n{}",
                waited.hops,
                tail(&log)
            );
        }
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// `n` GETs from outside, each a new connection (a new source port, so ECMP may pick another
/// node); the answering nodes, sorted and deduplicated. Panics on any failed GET.
fn outside_nodes(h: &Harness, ip: IpAddr, n: usize) -> Vec<String> {
    let mut seen: Vec<String> = (0..n)
        .map(|_| {
            bgp::outside_get(&h.lab, &h.lab_exe, ip).unwrap_or_else(|e| panic!("HTTP from outside: {e:#}"))
        })
        .collect();
    seen.sort();
    seen.dedup();
    seen
}

fn dynamic(kind: &str, plural: &str) -> ApiResource {
    let gvk = GroupVersionKind::gvk(ferrolb_api::names::GROUP, ferrolb_api::names::VERSION, kind);
    ApiResource::from_gvk_with_plural(&gvk, plural)
}

/// FRR over IPv4: ECMP, the outside client, session status, eTP Local, BFD node death, SIGTERM.
#[test]
fn frr_ecmp_local_endpoints_bfd_and_sigterm() {
    let h = bgp_lab("bgp-frr", Router::Frr, false);
    let all = [node_v4(1), node_v4(2), node_v4(3)];
    let ip = h.create_service(v4_service("web"), 1)[0];
    let prefix = format!("{ip}/32");
    let t = wait_hops(&h, &prefix, secs(20), "one next hop per node", |x| x == all);
    h.log(&format!("{prefix}: ECMP over the 3 nodes {} ms after the address", t.as_millis()));

    // Each connection hashes on its ports: 24 connections reach more than one node.
    let nodes = outside_nodes(&h, ip, 24);
    h.log(&format!("outside client reached {nodes:?}"));
    assert!(nodes.len() >= 2, "24 connections from outside all reached {nodes:?}: no ECMP");

    // Status: every node's session Established with BFD Up and at least this prefix sent.
    let start = Instant::now();
    loop {
        let states = h.api("listing BGPSessionStates", bgp::session_states);
        let good = states.len() == 3
            && states.iter().all(|r| r.state == "Established" && r.bfd == "Up" && r.sent >= 1);
        if good {
            break;
        }
        assert!(
            start.elapsed() < secs(15),
            "BGPSessionStates not all Established, BFD Up, ≥1 prefix: {states:?}"
        );
        std::thread::sleep(ms(200));
    }

    // externalTrafficPolicy Local: only node2 (its one ready endpoint) advertises.
    let slice = support::endpoint_slice("local", &[2], true);
    h.api("creating the EndpointSlice", move |c| async move {
        let api: Api<EndpointSlice> = Api::namespaced(c, "default");
        api.create(&PostParams::default(), &serde_json::from_value(slice)?).await?;
        Ok(())
    });
    let local = h.create_service(v4_service("local").with_external_traffic_policy("Local"), 1)[0];
    let local_prefix = format!("{local}/32");
    wait_hops(&h, &local_prefix, secs(15), "node2 alone", |x| x == [node_v4(2)]);
    assert_eq!(outside_nodes(&h, local, 6), ["node2"]);
    // The endpoint turns not ready: the last local endpoint is gone, the prefix is withdrawn.
    let slice = support::endpoint_slice("local", &[2], false);
    h.api("patching the EndpointSlice", move |c| async move {
        let api: Api<EndpointSlice> = Api::namespaced(c, "default");
        api.patch("local-conformance", &PatchParams::default(), &Patch::Merge(&slice)).await?;
        Ok(())
    });
    let t = wait_hops(&h, &local_prefix, secs(10), "withdrawn", |x| x.is_empty());
    h.log(&format!(
        "{local_prefix}: withdrawn {} ms after its last endpoint turned not ready",
        t.as_millis()
    ));
    // ... and the other Service's route is untouched.
    assert_eq!(bgp::next_hops(&h.lab, &prefix).unwrap(), all);

    // Node death as the router sees it: node1's link down, its announcer alive. BFD (100 ms × 3)
    // drops it long before the 9 s hold time.
    let start = Instant::now();
    while bgp::frr_bfd_up(&h.lab).unwrap() != all {
        assert!(
            start.elapsed() < secs(15),
            "the router's BFD sessions not all Up: {:?}",
            bgp::frr_bfd_up(&h.lab)
        );
        std::thread::sleep(ms(50));
    }
    h.set_link(&h.lab.node_ns(1), "eth0", false);
    let t = wait_hops(&h, &prefix, secs(5), "node1 dropped", |x| x == [node_v4(2), node_v4(3)]);
    h.log(&format!("node1 link down: dropped by the router after {} ms", t.as_millis()));
    assert!(t < secs(2), "node1 dropped after {t:?}: BFD (0.3 s) did not act, the hold time (9 s) did");
    assert!(outside_nodes(&h, ip, 6).iter().all(|n| n != "node1"));
    h.set_link(&h.lab.node_ns(1), "eth0", true);
    wait_hops(&h, &prefix, secs(20), "node1 back", |x| x == all);

    // SIGTERM: node3 withdraws (and closes with Cease) before it exits.
    let pid = h.announcer_pid(3).expect("node3's announcer runs");
    let sent = Instant::now();
    ferrolb_lab::cluster::kill_announcer(&h.lab, 3, Signal::SIGTERM).unwrap();
    let t = wait_hops(&h, &prefix, secs(5), "node3 withdrawn", |x| x == [node_v4(1), node_v4(2)]);
    let exited = ferrolb_lab::cluster::wait_exit(pid, secs(10));
    h.log(&format!("SIGTERM: node3 withdrawn after {} ms, exited: {exited}", t.as_millis()));
    assert!(exited, "node3's announcer did not exit within 10 s of SIGTERM");
    assert!(t < secs(1), "node3 withdrawn {t:?} after SIGTERM (wanted before it exits, well under 1 s)");
    let log = std::fs::read_to_string(h.lab.log_dir().join("announcer-node3.log")).unwrap_or_default();
    assert!(log.contains("withdrawing and closing every session"), "node3's log does not show the withdraw");
    assert!(sent.elapsed() < secs(10));
}

/// FRR over IPv6: IPv6 prefixes over an IPv6 session; a broken peer gets a condition and leaves the
/// working one alone.
#[test]
fn frr_ipv6_sessions_and_an_invalid_peer() {
    let h = bgp_lab("bgp-frr6", Router::Frr, true);
    let all = [node_v6(1), node_v6(2), node_v6(3)];
    let web6 = support::service("web6").with_family_policy("SingleStack").with_ip_families(&["IPv6"]);
    let ip = h.create_service(web6, 1)[0];
    assert!(ip.is_ipv6(), "{ip} is not IPv6");
    let prefix = format!("{ip}/128");
    let t = wait_hops(&h, &prefix, secs(20), "one IPv6 next hop per node", |x| x == all);
    h.log(&format!("{prefix}: ECMP over the 3 nodes' IPv6 addresses {} ms after the address", t.as_millis()));
    let nodes = outside_nodes(&h, ip, 24);
    assert!(nodes.len() >= 2, "24 IPv6 connections from outside all reached {nodes:?}");

    // A peer at a multicast address (the schema only checks that it is an IP address) is
    // reported, not run, and the working session keeps its routes.
    let broken = json!({
        "apiVersion": "ferrolb.io/v1alpha1", "kind": "BGPPeer",
        "metadata": {"name": "broken"},
        "spec": {"myASN": bgp::NODE_ASN, "peerASN": bgp::ROUTER_ASN, "peerAddress": "224.0.0.5"},
    });
    h.api("creating BGPPeer broken", move |c| bgp::create_objects(c, vec![broken]));
    let start = Instant::now();
    let condition = loop {
        let peer = h.api("reading BGPPeer broken", |c| async move {
            let api: Api<DynamicObject> = Api::all_with(c, &dynamic("BGPPeer", "bgppeers"));
            Ok(api.get("broken").await?)
        });
        let found = peer.data["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == ferrolb_api::names::conditions::INVALID_SPEC)
            .cloned();
        if let Some(c) = found.filter(|c| c["status"] == "True") {
            break c;
        }
        assert!(
            start.elapsed() < secs(15),
            "BGPPeer broken has no InvalidSpec=True: {}",
            peer.data["status"]
        );
        std::thread::sleep(ms(200));
    };
    h.log(&format!("BGPPeer broken: {}", condition["message"]));
    assert!(
        condition["message"].as_str().unwrap_or_default().contains("not a unicast address"),
        "{condition}"
    );
    std::thread::sleep(secs(2));
    assert_eq!(bgp::next_hops(&h.lab, &prefix).unwrap(), all, "the working peer's routes moved");
    h.assert_announcers_running();
}

/// BIRD 2 as the router (no BFD, hold time 3 s): ECMP into its kernel table, the outside client,
/// a node's link going down bounded by the hold time, and SIGTERM's withdraw.
#[test]
fn bird_ecmp_hold_time_and_sigterm() {
    let h = bgp_lab_with("bgp-bird", Router::Bird, false, |peer| {
        peer["spec"]["holdTime"] = json!("3s");
        peer["spec"]["keepaliveTime"] = json!("1s");
    });
    let all = [node_v4(1), node_v4(2), node_v4(3)];
    let ip = h.create_service(v4_service("web"), 1)[0];
    let prefix = format!("{ip}/32");
    let t = wait_hops(&h, &prefix, secs(20), "one next hop per node", |x| x == all);
    h.log(&format!("{prefix}: ECMP over the 3 nodes {} ms after the address (BIRD)", t.as_millis()));
    let nodes = outside_nodes(&h, ip, 24);
    assert!(nodes.len() >= 2, "24 connections from outside all reached {nodes:?}: no ECMP");

    // Without BFD, the hold time (3 s) bounds how long a silent node stays a next hop.
    h.set_link(&h.lab.node_ns(3), "eth0", false);
    let t = wait_hops(&h, &prefix, secs(10), "node3 dropped", |x| x == [node_v4(1), node_v4(2)]);
    h.log(&format!("node3 link down: dropped by BIRD after {} ms (hold time 3 s)", t.as_millis()));
    assert!(t <= ms(3200), "node3 dropped after {t:?}, beyond the 3 s hold time");
    h.set_link(&h.lab.node_ns(3), "eth0", true);
    wait_hops(&h, &prefix, secs(20), "node3 back", |x| x == all);

    ferrolb_lab::cluster::kill_announcer(&h.lab, 2, Signal::SIGTERM).unwrap();
    let t = wait_hops(&h, &prefix, secs(5), "node2 withdrawn", |x| x == [node_v4(1), node_v4(3)]);
    h.log(&format!("SIGTERM: node2 withdrawn after {} ms (BIRD)", t.as_millis()));
    assert!(t < secs(1), "node2 withdrawn {t:?} after SIGTERM");
}
