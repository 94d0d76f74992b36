//! The L2 announcer end to end, in the network-namespace lab: kube-sim, `ferrolb-ipam` and one
//! `ferrolb-announcer` per node (`hack/lab`), driven through the Kubernetes API, observed from the
//! client namespace with HTTP, raw ARP/NDP and its neighbour table.
//!
//! Needs root; fails loudly (never skips) without it, without network namespaces or without the
//! binaries. The tests run one at a time (a lock in `support`), each in its own lab. Every announcer
//! runs with its default timing flags (`--peer-interval 100ms`, `--peer-timeout 500ms`,
//! `--heartbeat-lease-duration 3s`, `--handover-settle 5s`, `--shutdown-grace 5s`).

mod support;

use ferrolb_api::L2AnnouncementPolicy;
use ferrolb_lab::probe::{Gap, ProbeOptions};
use ferrolb_testkit::fixtures::{PolicyFixture as _, ServiceFixture as _, match_labels};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams, PostParams};
use nix::sys::signal::Signal;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use support::raw::{self, Reply};
use support::{Harness, mac_str, ms, node_number, secs, v4_service};

/// A Service with one IPv4 and one IPv6 address.
fn dual_stack(name: &str) -> Service {
    support::service(name).with_family_policy("RequireDualStack").with_ip_families(&["IPv4", "IPv6"])
}

fn family(ips: &[IpAddr], v6: bool) -> IpAddr {
    *ips.iter()
        .find(|i| i.is_ipv6() == v6)
        .unwrap_or_else(|| panic!("no {} address in {ips:?}", if v6 { "IPv6" } else { "IPv4" }))
}

fn node(i: u8) -> String {
    format!("node{i}")
}

/// The first answer in `gap` sent at or after `after` by `node`, as a duration since `after`.
fn first_answer_by(gap: &Gap, node: &str, after: Instant) -> Option<Duration> {
    gap.answered_by.iter().find(|(t, n)| *t >= after && n == node).map(|(t, _)| t.duration_since(after))
}

fn describe(gap: &Gap) -> String {
    let r = &gap.report;
    format!(
        "{} sent, {} answered, {} skipped, nodes {:?}, longest gap {:.0} ms ({:.0}-{:.0} ms), errors {:?}",
        r.sent,
        r.answered,
        r.skipped,
        r.node_sequence(),
        r.longest_gap_ms,
        r.gap_from_ms,
        r.gap_to_ms,
        r.errors
    )
}

/// Every reply came from `mac` (payload and Ethernet source), and there was at least one.
fn assert_replies_only_from(h: &Harness, what: &str, replies: &[Reply], mac: &raw::Mac) {
    assert!(!replies.is_empty(), "{what}: no reply at all from any node (expected {})", mac_str(mac));
    for r in replies {
        assert!(
            r.lladdr == *mac && r.eth_src == *mac,
            "{what}: a reply names {} (from {}, node {:?}); only the holder's {} may answer. All: {replies:?}",
            mac_str(&r.lladdr),
            mac_str(&r.eth_src),
            h.node_of_mac(&r.eth_src),
            mac_str(mac)
        );
    }
}

/// Scenario 1: ARP and NDP are answered only by the Lease holder, with its eth0 MAC; the client's neighbour
/// table and HTTP agree.
#[test]
fn arp_and_ndp_answered_only_by_the_leader() {
    let h = Harness::up("arp-ndp-leader", 3, &[]);
    h.default_pool_and_policy();
    let ips = h.create_service(dual_stack("web"), 2);
    h.log(&format!("Service default/web: {ips:?}"));
    for v6 in [false, true] {
        let ip = family(&ips, v6);
        let holder = h.wait_any_holder("web", ip);
        let mac = h.mac(holder);
        h.log(&format!("{ip}: Lease held by node{holder} ({})", mac_str(&mac)));
        let answered = h.wait_http(ip, None, secs(10));
        assert_eq!(
            answered,
            node(holder),
            "HTTP to {ip} answered by {answered}, the Lease names node{holder}"
        );
        let (nmac, states) =
            h.client_neigh(ip).unwrap_or_else(|| panic!("the client has no neighbour entry for {ip}"));
        assert_eq!(
            mac_str(&nmac),
            mac_str(&mac),
            "the client's neighbour entry for {ip} ({states:?}) is not node{holder}'s eth0"
        );
        let port = h.client_port();
        let replies = port.resolve(ip, 3, secs(1)).unwrap();
        h.log(&format!("{ip}: {} replies to 3 solicitations, all from {}", replies.len(), mac_str(&mac)));
        assert_replies_only_from(&h, &format!("solicitations for {ip}"), &replies, &mac);
        h.wait_event("web", "Normal", "Announcing", &[&node(holder), &ip.to_string()], secs(10));
        // Still the holder afterwards (nothing moved while we looked).
        assert_eq!(h.holder("web", ip), Some(node(holder)));
    }
}

/// Scenario 2: No answer for an address nobody holds, for a Service no policy selects, and on interfaces the
/// policy does not select (`mgmt0`; a regex matching nothing). A selected Service answered on the
/// same port shows the instrument works.
#[test]
fn no_answer_for_unheld_addresses_or_unselected_interfaces() {
    let h = Harness::up("no-answer", 2, &[]);
    h.create_pool("conformance");
    let policy = |name: &str, interface: &str| {
        L2AnnouncementPolicy::test(name)
            .with_service_selector(match_labels(&[("conformance/announce", name)]))
            .with_interfaces(&[interface])
    };
    h.create_policy(policy("lan", "eth0"));
    h.create_policy(policy("mgmt", "mgmt0"));
    h.create_policy(policy("nomatch", "nomatch[0-9]+"));
    let labelled = |name: &str, v: &str| v4_service(name).with_labels(&[("conformance/announce", v)]);
    let control = h.create_service(labelled("control", "lan"), 1)[0];
    let unselected = h.create_service(labelled("unselected", "none"), 1)[0];
    let onmgmt = h.create_service(labelled("onmgmt", "mgmt"), 1)[0];
    let noiface = h.create_service(labelled("noiface", "nomatch"), 1)[0];
    let all = [control, unselected, onmgmt, noiface];
    let unheld_v4: IpAddr = "198.51.100.254".parse().unwrap();
    let unheld_v6: IpAddr = "2001:db8:100::1ffe".parse().unwrap();
    assert!(!all.contains(&unheld_v4), "{unheld_v4} was allocated: {all:?}");

    let holder = h.wait_any_holder("control", control);
    let port = h.client_port();
    let replies = port.resolve(control, 3, secs(1)).unwrap();
    assert_replies_only_from(&h, &format!("control Service {control}"), &replies, &h.mac(holder));
    // The mgmt0 policy is in effect (someone holds that address on mgmt0), so its silence on the
    // LAN is the interface selection at work, not an address nobody looked at.
    let mgmt_holder = h.wait_any_holder("onmgmt", onmgmt);
    h.log(&format!(
        "control {control} held by node{holder}; onmgmt {onmgmt} held by node{mgmt_holder} (on mgmt0)"
    ));
    let replies = h.mgmt_port().resolve(onmgmt, 3, secs(1)).unwrap();
    assert_replies_only_from(
        &h,
        &format!("{onmgmt} asked on the management bridge"),
        &replies,
        &h.dev_mac(mgmt_holder, "mgmt0"),
    );
    // Give every announcer time to act on all four Services before looking for silence.
    std::thread::sleep(secs(1));

    for (what, ip) in [
        ("an address in the pool that no Service has", unheld_v4),
        ("an IPv6 address in the pool that no Service has", unheld_v6),
        ("a Service no policy selects", unselected),
        ("a Service whose policy selects only mgmt0", onmgmt),
        ("a Service whose policy's interface regex matches nothing", noiface),
    ] {
        let replies = port.resolve(ip, 3, secs(1)).unwrap();
        assert!(
            replies.is_empty(),
            "{what} ({ip}) was answered on the LAN: {:?}",
            replies.iter().map(|r| (mac_str(&r.eth_src), h.node_of_mac(&r.eth_src))).collect::<Vec<_>>()
        );
        h.log(&format!("{what} ({ip}): no reply to 3 solicitations within 1.3 s"));
    }
    assert_eq!(h.holder("unselected", unselected), None, "a Lease exists for a Service no policy selects");
    assert_eq!(h.holder("noiface", noiface), None, "a Lease is held for a Service no interface can carry");
    h.wait_event("noiface", "Warning", "NotAnnouncing", &["no node can announce"], secs(10));
}

/// Scenario 3: Takeover after SIGKILL: the new holder's gratuitous ARP (sender IP == target IP == VIP) and
/// unsolicited NA (Override) reach the client, and its neighbour entries move to the new MAC.
#[test]
fn gratuitous_arp_and_na_on_takeover() {
    let h = Harness::up("gratuitous", 3, &[]);
    h.default_pool_and_policy();
    let ips = h.create_service(dual_stack("web"), 2);
    let (v4, v6) = (family(&ips, false), family(&ips, true));
    let (h4, h6) = (h.wait_any_holder("web", v4), h.wait_any_holder("web", v6));
    for (ip, holder) in [(v4, h4), (v6, h6)] {
        assert_eq!(h.wait_http(ip, None, secs(10)), node(holder));
        h.wait_client_neigh(ip, &h.mac(holder), secs(1));
    }
    let killed: BTreeSet<u8> = [h4, h6].into();
    h.log(&format!("{v4} held by node{h4}, {v6} by node{h6}; killing {killed:?}"));
    // Neighbour entries are not replaced within `locktime` (1 s) of their last update.
    std::thread::sleep(ms(1200));
    let port = h.client_port();
    port.drain();
    let killed_at = Instant::now();
    let frames = std::thread::scope(|s| {
        let cap = s.spawn(|| port.capture(secs(4)));
        for n in &killed {
            h.announcer_pid(*n).expect("announcer running");
            ferrolb_lab::cluster::kill_announcer(&h.lab, *n, Signal::SIGKILL).unwrap();
        }
        cap.join().unwrap()
    });
    for (ip, old) in [(v4, h4), (v6, h6)] {
        let (new, _) = h.wait_holder("web", ip, secs(3), "takeover", |x| {
            x.is_some_and(|x| !killed.contains(&node_number(x)))
        });
        let new = node_number(&new.unwrap());
        let mac = h.mac(new);
        let garps = raw::gratuitous_for(&frames, ip);
        assert!(
            !garps.is_empty(),
            "no gratuitous announcement for {ip} within 4 s of killing node{old}'s announcer (new holder node{new})"
        );
        for (_, r, kind) in &garps {
            assert!(
                r.lladdr == mac && r.eth_src == mac,
                "gratuitous {kind} for {ip} names {} from {} (node {:?}); the new holder node{new} is {}",
                mac_str(&r.lladdr),
                mac_str(&r.eth_src),
                h.node_of_mac(&r.eth_src),
                mac_str(&mac)
            );
        }
        if ip.is_ipv6() {
            assert!(
                garps.iter().any(|(_, _, k)| k.contains("override true")),
                "no NA with Override: {garps:?}"
            );
        }
        let first = garps[0].0.duration_since(killed_at);
        let moved = h.wait_client_neigh(ip, &mac, secs(3));
        h.log(&format!(
            "{ip}: node{old} -> node{new}; {} gratuitous frames, first {} ms after the kill ({}); neighbour entry moved (checked {} ms after capture)",
            garps.len(),
            first.as_millis(),
            garps[0].2,
            moved.as_millis()
        ));
        assert!(first < secs(2), "first gratuitous frame for {ip} {first:?} after the kill");
        assert_eq!(h.wait_http(ip, None, secs(3)), node(new));
    }
}

/// Probe, break the holder of a fresh IPv4 Service, and wait for the Lease to move. Returns
/// (old holder, new holder, fault instant, Lease move time, probe result).
fn failover(h: &Harness, fault: impl FnOnce(u8)) -> (u8, u8, Instant, Duration, Gap) {
    h.default_pool_and_policy();
    let ip = h.create_service(v4_service("web"), 1)[0];
    let old = h.wait_any_holder("web", ip);
    assert_eq!(h.wait_http(ip, None, secs(10)), node(old));
    let probe = h.start_probe(&ProbeOptions {
        stop_after_switch: Some(secs(1)),
        ..ProbeOptions::new(ip, ms(10), secs(10))
    });
    std::thread::sleep(secs(1));
    let at = Instant::now();
    fault(old);
    let (new, moved) =
        h.wait_holder("web", ip, secs(5), "the Lease moves", |x| x.is_some_and(|x| x != node(old)));
    let new = node_number(&new.unwrap());
    let gap = probe.wait().unwrap();
    h.log(&format!(
        "{ip}: node{old} -> node{new}, Lease moved {} ms after the fault; probe: {}",
        moved.as_millis(),
        describe(&gap)
    ));
    (old, new, at, moved, gap)
}

/// Scenario 4: SIGKILL of the holder's announcer: the Lease moves and HTTP through the VIP is answered by
/// the new holder within 3 s.
#[test]
fn failover_after_sigkill_of_the_leader() {
    let h = Harness::up("sigkill", 3, &[]);
    let (old, new, at, moved, gap) = failover(&h, |n| {
        ferrolb_lab::cluster::kill_announcer(&h.lab, n, Signal::SIGKILL).unwrap();
    });
    assert!(moved < secs(3), "Lease moved {moved:?} after the SIGKILL");
    let t = first_answer_by(&gap, &node(new), at).unwrap_or_else(|| {
        panic!("node{new} never answered after node{old}'s announcer was killed: {}", describe(&gap))
    });
    h.log(&format!("SIGKILL: node{new} answers {} ms after the kill", t.as_millis()));
    assert!(t < secs(3), "node{new} answered {t:?} after the kill");
    assert_eq!(gap.report.last_node(), Some(node(new).as_str()), "{}", describe(&gap));
    // The dead announcer's node keeps serving what it still receives: no outage expected.
    assert!(gap.longest_gap < secs(1), "{}", describe(&gap));
}

/// Scenario 5: The holder's LAN link (eth0) goes down while its API access (mgmt0) stays: it hands over,
/// and another node answers within 3 s.
#[test]
fn failover_after_the_leaders_lan_link_goes_down() {
    let h = Harness::up("link-down", 3, &[]);
    // The fault runs `ip` in the node's namespace, which takes a while on a loaded machine: answers sent
    // before the link is really down are the old holder's right.
    let down = std::cell::Cell::new(None);
    let (old, new, at, moved, gap) = failover(&h, |n| {
        h.set_link(&h.lab.node_ns(n), "eth0", false);
        down.set(Some(Instant::now()));
    });
    let down = down.get().expect("the fault ran");
    assert!(moved < secs(3), "Lease moved {moved:?} after eth0 went down");
    let t = first_answer_by(&gap, &node(new), at).unwrap_or_else(|| {
        panic!("node{new} never answered after node{old}'s eth0 went down: {}", describe(&gap))
    });
    h.log(&format!(
        "eth0 down: node{new} answers {} ms after the link went down; longest gap {:.0} ms",
        t.as_millis(),
        gap.report.longest_gap_ms
    ));
    assert!(t < secs(3), "node{new} answered {t:?} after the link went down");
    assert!(gap.longest_gap < secs(3), "{}", describe(&gap));
    assert!(
        gap.answered_by.iter().all(|(t, n)| *t < down || n != &node(old)),
        "node{old} answered with its LAN link down"
    );
    // It handed over itself, over mgmt0: it still runs.
    h.assert_announcers_running();
}

/// Scenario 6: SIGTERM: the holder names its successor in the Lease within 1 s, exits 0, and the client sees
/// no gap longer than 200 ms.
#[test]
fn graceful_handover_on_sigterm() {
    let h = Harness::up("sigterm", 3, &[]);
    h.default_pool_and_policy();
    let ip = h.create_service(v4_service("web"), 1)[0];
    let old = h.wait_any_holder("web", ip);
    assert_eq!(h.wait_http(ip, None, secs(10)), node(old));
    let pid = h.announcer_pid(old).expect("holder's announcer runs");
    let probe = h.start_probe(&ProbeOptions {
        stop_after_switch: Some(secs(1)),
        ..ProbeOptions::new(ip, ms(10), secs(8))
    });
    std::thread::sleep(secs(1));
    ferrolb_lab::cluster::kill_announcer(&h.lab, old, Signal::SIGTERM).unwrap();
    let mut seen: Vec<Option<String>> = Vec::new();
    let (new, took) = h.wait_holder("web", ip, secs(5), "the Lease moves on SIGTERM", |x| {
        if seen.last().map(Option::as_deref) != Some(x) {
            seen.push(x.map(str::to_string));
        }
        x != Some(node(old).as_str())
    });
    let new =
        node_number(&new.unwrap_or_else(|| {
            panic!("node{old} released the Lease on SIGTERM instead of naming a successor")
        }));
    // The handover can land before the first read, so the old holder may not be in `seen`; what must
    // not be there is a released Lease or a third node.
    let after: Vec<_> = seen.iter().skip_while(|x| x.as_deref() == Some(node(old).as_str())).collect();
    assert_eq!(after, [&Some(node(new))], "the Lease went through {seen:?}");
    // The announcer is this process's child (the lab spawns it): its exit status is ours to read.
    let status = wait_child(pid, secs(8));
    let gap = probe.wait().unwrap();
    h.log(&format!(
        "SIGTERM: Lease names node{new} {} ms after the signal; announcer exit {status:?}; probe: {}",
        took.as_millis(),
        describe(&gap)
    ));
    assert!(took < secs(1), "the Lease named the successor {took:?} after SIGTERM");
    assert_eq!(status, Some(0), "node{old}'s announcer did not exit 0 within 8 s of SIGTERM");
    assert!(gap.longest_gap < ms(200), "gap on a graceful hand-over: {}", describe(&gap));
    // A request whose SYN reached the old node while the client's neighbour entry moved gets a
    // reset from the new one (no connection state moves with an L2 failover): at most a few, and
    // nothing else (a timeout would be a blackhole).
    let failed = gap.sent - gap.answered;
    assert!(
        failed <= 3 && gap.report.errors.iter().all(|(e, _)| e.contains("reset")),
        "requests failed on a graceful hand-over: {}",
        describe(&gap)
    );
    assert_eq!(gap.report.last_node(), Some(node(new).as_str()), "{}", describe(&gap));
}

/// Waits (bounded) for child `pid` to exit; its exit code, `None` if it did not exit in time or
/// died from a signal.
fn wait_child(pid: u32, timeout: Duration) -> Option<i32> {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let start = Instant::now();
    loop {
        match waitpid(nix::unistd::Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return Some(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => panic!("announcer {pid} died from {sig}"),
            Ok(_) => {}
            Err(e) => panic!("waitpid({pid}): {e}"),
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(ms(10));
    }
}

/// Scenario 7: externalTrafficPolicy: Local: only a node with a local ready endpoint holds the address; the
/// Lease follows the endpoint; without endpoints nobody holds it and a Warning says why.
#[test]
fn external_traffic_policy_local_follows_endpoints() {
    let h = Harness::up("etp-local", 3, &[]);
    h.default_pool_and_policy();
    let set_slice = |nodes: &[u8], create: bool| {
        let slice = support::endpoint_slice("local", nodes, true);
        h.api("writing the EndpointSlice", move |c| async move {
            let api: Api<EndpointSlice> = Api::namespaced(c, "default");
            if create {
                api.create(&PostParams::default(), &serde_json::from_value(slice)?).await?;
            } else {
                api.patch("local-conformance", &PatchParams::default(), &Patch::Merge(&slice)).await?;
            }
            Ok(())
        })
    };
    set_slice(&[2], true);
    let ip = h.create_service(v4_service("local").with_external_traffic_policy("Local"), 1)[0];
    let (_, t) =
        h.wait_holder("local", ip, secs(15), "node2 (the endpoint's node) holds it", |x| x == Some("node2"));
    h.log(&format!("{ip}: held by node2 {} ms after the address", t.as_millis()));
    assert_eq!(h.wait_http(ip, None, secs(10)), "node2");
    let port = h.client_port();
    let replies = port.resolve(ip, 3, secs(1)).unwrap();
    assert_replies_only_from(&h, &format!("ARP for {ip} (held by node2)"), &replies, &h.mac(2));
    h.wait_event("local", "Normal", "Announcing", &["node2", &ip.to_string()], secs(10));

    // The endpoint moves node2 -> node3 -> node2 -> node3 -> node2 -> node3: each time the Lease
    // follows within 3 s and the new holder itself answers ARP (every move is a chance for the two
    // nodes' views of the EndpointSlice and the Lease to race).
    let mut follows = Vec::new();
    for to in [3u8, 2, 3, 2, 3] {
        set_slice(&[to], false);
        let (_, t) = h.wait_holder(
            "local",
            ip,
            secs(5),
            &format!("the Lease follows the endpoint to node{to}"),
            |x| x == Some(node(to).as_str()),
        );
        assert!(t < secs(3), "the Lease followed the endpoint to node{to} after {t:?}");
        follows.push(t.as_millis());
        // Settled: still there a moment later, and answering ARP itself.
        std::thread::sleep(ms(300));
        assert_eq!(h.holder("local", ip), Some(node(to)), "the Lease left node{to} again");
        let replies = port.resolve(ip, 3, secs(1)).unwrap();
        assert_replies_only_from(
            &h,
            &format!("ARP for {ip} (endpoint and Lease on node{to})"),
            &replies,
            &h.mac(to),
        );
    }
    h.log(&format!("endpoint moved 5 times: the Lease followed in {follows:?} ms"));
    assert_eq!(h.wait_http(ip, Some("node3"), secs(5)), "node3");

    set_slice(&[], false);
    let (_, t) = h.wait_holder("local", ip, secs(5), "nobody holds it without endpoints", |x| x.is_none());
    h.log(&format!("no endpoints: Lease released in {} ms", t.as_millis()));
    h.wait_event("local", "Warning", "NotAnnouncing", &["no node can announce"], secs(10));
    let replies = port.resolve(ip, 3, secs(1)).unwrap();
    assert!(replies.is_empty(), "{ip} still answered without endpoints: {replies:?}");
    // Stays released.
    std::thread::sleep(secs(1));
    assert_eq!(h.holder("local", ip), None);
}

/// Scenario 8: `ferrolb.io/ip-count: "3"` on 3 nodes: three IPv4 addresses, held by three different nodes,
/// each answering (HTTP and ARP) from its holder.
#[test]
fn ip_count_spreads_over_nodes() {
    let h = Harness::up("ip-count", 3, &[]);
    h.default_pool_and_policy();
    let multi = v4_service("multi").with_annotations(&[(ferrolb_api::names::annotations::IP_COUNT, "3")]);
    let ips = h.create_service(multi, 3);
    assert_eq!(ips.len(), 3, "{ips:?}");
    assert!(ips.iter().all(IpAddr::is_ipv4), "{ips:?}");
    let holders: Vec<u8> = ips.iter().map(|ip| h.wait_any_holder("multi", *ip)).collect();
    h.log(&format!("addresses {ips:?} held by {holders:?}"));
    let distinct: BTreeSet<u8> = holders.iter().copied().collect();
    assert_eq!(distinct.len(), 3, "the 3 addresses are held by {holders:?}, not 3 different nodes");
    let port = h.client_port();
    for (ip, n) in ips.iter().zip(&holders) {
        assert_eq!(h.wait_http(*ip, None, secs(10)), node(*n), "HTTP to {ip}");
        let replies = port.resolve(*ip, 2, secs(1)).unwrap();
        assert_replies_only_from(&h, &format!("ARP for {ip}"), &replies, &h.mac(*n));
    }
}

/// Scenario 8b: The same Service created while the announcers are still starting: whichever is ready first
/// takes every address, and the others are handed their share once they have been ready for
/// `--handover-settle` (5 s): three different holders within 9 s, each answering.
#[test]
fn ip_count_spreads_after_a_late_start() {
    let h = Harness::up_with("ip-count-late", 3, &[], false);
    h.default_pool_and_policy();
    let multi = v4_service("multi").with_annotations(&[(ferrolb_api::names::annotations::IP_COUNT, "3")]);
    let ips = h.create_service(multi, 3);
    let start = Instant::now();
    let mut first = None;
    let holders = loop {
        let holders: Vec<Option<String>> = ips.iter().map(|ip| h.holder("multi", *ip)).collect();
        first.get_or_insert_with(|| holders.clone());
        let distinct: BTreeSet<&String> = holders.iter().flatten().collect();
        if distinct.len() == 3 {
            break holders;
        }
        if start.elapsed() > secs(9) {
            h.dump_leases();
            panic!("the 3 addresses {ips:?} are held by {holders:?} 9 s after the Service was created");
        }
        std::thread::sleep(ms(100));
    };
    h.log(&format!(
        "{ips:?}: first held by {first:?}, spread to {holders:?} after {} ms",
        start.elapsed().as_millis()
    ));
    for (ip, n) in ips.iter().zip(&holders) {
        let n = n.as_deref().unwrap();
        assert_eq!(h.wait_http(*ip, Some(n), secs(5)), n, "HTTP to {ip}");
    }
}

fn heartbeat_renewals(h: &Harness) -> Vec<(String, Option<String>)> {
    h.api("reading the heartbeat Leases", |c| async move {
        let api: Api<Lease> = Api::namespaced(c, ferrolb_lab::cluster::SYSTEM_NAMESPACE);
        let mut v: Vec<(String, Option<String>)> = api
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .filter_map(|l| {
                let name = l.metadata.name?;
                name.starts_with("ferrolb-node-")
                    .then(|| (name, l.spec.and_then(|s| s.renew_time).map(|t| t.0.to_string())))
            })
            .collect();
        v.sort();
        Ok(v)
    })
}

/// Scenarios 9 and 10: The API server hangs for 60 s: the VIP keeps being answered, always by the same node.
/// After it resumes, the heartbeats are renewed within a few seconds, the holder is the one from
/// before the pause and stays so for 10 s, and every announcer still runs. (One test: 10 continues
/// 9's lab.)
#[test]
fn api_pause_keeps_the_holder_then_converges() {
    let h = Harness::up("api-pause", 3, &[]);
    h.default_pool_and_policy();
    let ip = h.create_service(v4_service("web"), 1)[0];
    let holder = h.wait_any_holder("web", ip);
    assert_eq!(h.wait_http(ip, None, secs(10)), node(holder));
    let before = heartbeat_renewals(&h);
    assert_eq!(before.len(), 3, "{before:?}");

    let admin = h.admin();
    h.api("pausing the API (hang)", move |_| async move {
        Ok(admin.pause(kube_sim::admin::PauseMode::Hang).await?)
    });
    h.log(&format!("API paused (hang); {ip} held by node{holder}; probing every 20 ms for 60 s"));
    let gap = h
        .start_probe(&ProbeOptions { timeout: ms(1000), ..ProbeOptions::new(ip, ms(20), secs(60)) })
        .wait()
        .unwrap();
    let admin = h.admin();
    h.api("resuming the API", move |_| async move { Ok(admin.resume().await?) });
    let resumed = Instant::now();
    h.log(&format!("API resumed; during the pause: {}", describe(&gap)));
    assert!(gap.sent > 1000, "{}", describe(&gap));
    assert_eq!(gap.answered, gap.sent, "requests failed while the API was paused: {}", describe(&gap));
    assert_eq!(gap.report.skipped, 0, "{}", describe(&gap));
    assert_eq!(gap.report.node_sequence(), [node(holder)], "the answering node changed: {}", describe(&gap));

    // Converges: every heartbeat Lease is renewed again.
    loop {
        let now = heartbeat_renewals(&h);
        let renewed = now.iter().zip(&before).filter(|(a, b)| a.1 != b.1).count();
        if renewed == before.len() {
            h.log(&format!(
                "all heartbeat Leases renewed {} ms after the resume",
                resumed.elapsed().as_millis()
            ));
            break;
        }
        assert!(
            resumed.elapsed() < secs(5),
            "heartbeats not renewed 5 s after the resume: {before:?} -> {now:?}"
        );
        std::thread::sleep(ms(100));
    }
    assert_eq!(h.holder("web", ip), Some(node(holder)), "the holder changed across the pause");

    // No flapping: 10 s of Lease reads and traffic, one holder, one answering node.
    let probe = h.start_probe(&ProbeOptions { timeout: ms(1000), ..ProbeOptions::new(ip, ms(20), secs(10)) });
    let start = Instant::now();
    let mut reads = 0;
    while start.elapsed() < secs(10) {
        let x = h.holder("web", ip);
        assert_eq!(x, Some(node(holder)), "the holder changed {:?} after the resume", resumed.elapsed());
        reads += 1;
        std::thread::sleep(ms(200));
    }
    let gap = probe.wait().unwrap();
    h.log(&format!("after the resume: {reads} Lease reads, all node{holder}; probe: {}", describe(&gap)));
    assert_eq!(gap.answered, gap.sent, "{}", describe(&gap));
    assert_eq!(gap.report.node_sequence(), [node(holder)], "{}", describe(&gap));
    h.assert_announcers_running();
}

/// Scenario 11: Every LAN link (each node's eth0 and the client's) down for 30 s, then up: traffic is
/// answered again within 2 s, by one node at a time (at most one move, to the preferred node), and the
/// Lease holder is the one that answers ARP.
#[test]
fn lan_bounce_recovers_with_one_node_answering() {
    let h = Harness::up("lan-bounce", 3, &[]);
    h.default_pool_and_policy();
    let ip = h.create_service(v4_service("web"), 1)[0];
    let holder = h.wait_any_holder("web", ip);
    assert_eq!(h.wait_http(ip, None, secs(10)), node(holder));
    let mut links: Vec<String> = (1..=h.nodes).map(|i| h.lab.node_ns(i)).collect();
    links.push(h.lab.client_ns());
    for ns in &links {
        h.set_link(ns, "eth0", false);
    }
    h.log(&format!("all LAN links down ({ip} was held by node{holder}); waiting 30 s"));
    std::thread::sleep(secs(15));
    h.log(&format!("15 s into the outage the Lease of {ip} names {:?}", h.holder("web", ip)));
    std::thread::sleep(secs(15));
    let probe = h.start_probe(&ProbeOptions::new(ip, ms(10), secs(10)));
    std::thread::sleep(ms(300));
    // All at once, as when the switch comes back (one after the other, the first node up would
    // rightly take the address and hand it to its preferred holder a moment later).
    let up = Instant::now();
    std::thread::scope(|s| {
        for ns in &links {
            s.spawn(|| h.set_link(ns, "eth0", true));
        }
    });
    let gap = probe.wait().unwrap();
    let first = gap
        .answered_by
        .iter()
        .find(|(t, _)| *t >= up)
        .map(|(t, n)| (t.duration_since(up), n.clone()))
        .unwrap_or_else(|| {
            panic!("nothing answered within 10 s of the links coming back: {}", describe(&gap))
        });
    let after: BTreeSet<&str> =
        gap.answered_by.iter().filter(|(t, _)| *t >= up).map(|(_, n)| n.as_str()).collect();
    let now = h.holder("web", ip);
    h.log(&format!(
        "links up: first answer after {} ms by {}; answering nodes {after:?}; Lease holder {now:?}; probe: {}",
        first.0.as_millis(),
        first.1,
        describe(&gap)
    ));
    assert!(first.0 < secs(2), "traffic answered {:?} after the links came back", first.0);
    // The answering node settles at once: one node, or (when a link came up a moment before the
    // preferred node's) one move to the preferred node, and never back and forth.
    let mut runs: Vec<&str> = Vec::new();
    for (_, n) in gap.answered_by.iter().filter(|(t, _)| *t >= up) {
        if runs.last() != Some(&n.as_str()) {
            runs.push(n);
        }
    }
    assert!(
        after.len() <= 2 && runs.len() == after.len(),
        "answers after the links came back went {runs:?}: {}",
        describe(&gap)
    );
    let last = runs.last().copied().unwrap_or_default().to_string();
    assert_eq!(now.as_deref(), Some(last.as_str()), "the answering node is not the Lease holder");
    let replies = h.client_port().resolve(ip, 3, secs(1)).unwrap();
    assert_replies_only_from(
        &h,
        &format!("ARP for {ip} after the bounce"),
        &replies,
        &h.mac(node_number(&last)),
    );
    h.assert_announcers_running();
}
