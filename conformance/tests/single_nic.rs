//! The L2 announcer when each node has one NIC (DESIGN.md §8, "Topologies"): the API server, the peer
//! channel and Service traffic share each node's `eth0`, as on most small clusters. A node whose
//! link goes down, or that loses power, then vanishes from everything at once, and refuses nothing.
//!
//! Needs root; fails loudly (never skips) without it. One test at a time, each in its own lab (see
//! `support`). Scenarios:
//! - node death (link down and announcer killed together) is taken over by the peers' majority,
//!   long before the dead node's heartbeat Lease could expire;
//! - a holder whose link flaps (down with the announcer alive, up again, ten cycles) is taken over
//!   every time, and never answers beside the node that took over once its link is back;
//! - a holder cut off from its peers but not from the API server loses the address to the majority
//!   and stops answering within a bounded window (measured from the client);
//! - a holder whose Node turns NotReady, or gets the `node.kubernetes.io/out-of-service` taint, loses
//!   its addresses at once.

mod support;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use nix::sys::signal::Signal;
use serde_json::json;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use support::raw::{Captured, Frame, Mac};
use support::{Harness, ms, node_number, secs, v4_service};

fn node(i: u8) -> String {
    format!("node{i}")
}

/// A Service with one IPv4 address, its holder, and HTTP through it answered by that holder.
fn one_service(h: &Harness) -> (IpAddr, u8) {
    h.default_pool_and_policy();
    let ip = h.create_service(v4_service("web"), 1)[0];
    let holder = h.wait_any_holder("web", ip);
    assert_eq!(h.wait_http(ip, None, secs(10)), node(holder));
    (ip, holder)
}

/// Waits until the Lease names another node than `old`; returns it and how long that took.
fn wait_moved(h: &Harness, ip: IpAddr, old: u8, timeout: Duration, what: &str) -> (u8, Duration) {
    let (new, took) = h.wait_holder("web", ip, timeout, what, |x| x.is_some_and(|x| x != node(old)));
    (node_number(&new.unwrap()), took)
}

/// ARP requests for `ip` from the client every 20 ms for `duration`; every reply with its time.
fn arp_replies(h: &Harness, ip: IpAddr, duration: Duration) -> Vec<(Instant, Mac)> {
    let IpAddr::V4(target) = ip else { panic!("{ip} is not IPv4") };
    let port = h.client_port();
    port.drain();
    let start = Instant::now();
    let mut frames: Vec<Captured> = Vec::new();
    while start.elapsed() < duration {
        port.solicit(ip).unwrap();
        frames.extend(port.capture(ms(20)));
    }
    frames
        .into_iter()
        .filter_map(|c| match c.frame {
            Frame::Arp { op: 2, sha, spa, tpa, .. } if spa == target && tpa != target => Some((c.at, sha)),
            _ => None,
        })
        .collect()
}

/// Node death on one NIC: the holder's only link goes down and its announcer is killed at the same
/// moment. The heartbeat Lease is made long (20 s) so that a takeover that waits for it fails this
/// test: the peers must decide from their majority's silence.
#[test]
fn node_death_is_taken_over_by_the_majority_before_its_heartbeat_lease_expires() {
    let h = Harness::up_single_nic(
        "single-death",
        3,
        &["--heartbeat-lease-duration=20s", "--heartbeat-renew-deadline=15s", "--heartbeat-retry-period=2s"],
    );
    let (ip, old) = one_service(&h);
    let at = Instant::now();
    h.set_link(&h.lab.node_ns(old), "eth0", false);
    ferrolb_lab::cluster::kill_announcer(&h.lab, old, Signal::SIGKILL).unwrap();
    let (new, moved) = wait_moved(&h, ip, old, secs(15), "the Lease moves after the node's death");
    let answered = h.wait_http(ip, Some(&node(new)), secs(5));
    h.log(&format!(
        "node death: Lease moved node{old} -> node{new} {} ms after the fault; HTTP answered by {answered} \
         {} ms after it",
        moved.as_millis(),
        at.elapsed().as_millis()
    ));
    assert!(moved < secs(5), "the Lease moved {moved:?} after the node died: not by the peers' majority");
}

/// A flapping cable: the holder's only link goes down with its announcer alive, comes back, and the
/// cycle repeats on whoever holds the address then (with one address and placement stickiness, the
/// address alternates between two nodes, each bouncing every other cycle). Every cycle must be
/// taken over, well before the holder's heartbeat Lease (3 s) could expire, and a node whose link
/// comes back must not answer beside the node that took over.
#[test]
fn a_flapping_holder_is_taken_over_every_cycle() {
    const CYCLES: usize = 10;
    let h = Harness::up_single_nic("single-flap", 3, &[]);
    let (ip, first) = one_service(&h);
    let mut holder = first;
    let mut takeovers = Vec::new();
    for cycle in 1..=CYCLES {
        let ns = h.lab.node_ns(holder);
        let old_mac = h.dev_mac(holder, "eth0");
        h.set_link(&ns, "eth0", false);
        let (new, moved) = wait_moved(&h, ip, holder, secs(8), &format!("cycle {cycle}: takeover"));
        assert_eq!(h.wait_http(ip, Some(&node(new)), secs(5)), node(new));
        takeovers.push(moved);
        h.set_link(&ns, "eth0", true);
        // Back on the LAN with a stale view of the Lease: it must not answer again.
        let replies = arp_replies(&h, ip, ms(1500));
        let stale = replies.iter().filter(|(_, m)| *m == old_mac).count();
        h.log(&format!(
            "cycle {cycle}: node{holder} -> node{new} in {} ms; after its link came back, {stale} of {} ARP \
             replies from node{holder}",
            moved.as_millis(),
            replies.len()
        ));
        assert!(!replies.is_empty(), "cycle {cycle}: nobody answered ARP for {ip} after the link came back");
        assert_eq!(stale, 0, "cycle {cycle}: node{holder} answered beside node{new} once its link came back");
        assert!(
            moved < secs(2),
            "cycle {cycle}: the Lease moved {moved:?} after the link went down: not by the peers' majority"
        );
        holder = new;
    }
    h.log(&format!("{CYCLES} flap cycles taken over; takeover times {takeovers:?}"));
    h.assert_announcers_running();
}

/// The holder is cut off from its peers (blackhole routes both ways) but still reaches the API
/// server and the client. The two others form a majority that does not hear it: one takes over; the
/// holder learns it from the Lease and stops. Both answering is bounded (here: 1 s, the stated
/// window is one Lease watch delivery).
#[test]
fn a_holder_cut_off_from_its_peers_stops_once_the_majority_took_over() {
    let h = Harness::up_single_nic("single-partition", 3, &[]);
    let (ip, old) = one_service(&h);
    let old_mac = h.dev_mac(old, "eth0");
    let others: Vec<u8> = (1..=3).filter(|n| *n != old).collect();
    let route = |ns: &str, to: u8| {
        ferrolb_lab::run(
            "ip",
            &["-n", ns, "route", "add", "blackhole", &format!("{}/32", ferrolb_lab::Lab::node_v4(to))],
        )
        .unwrap();
    };
    for o in &others {
        route(&h.lab.node_ns(old), *o);
        route(&h.lab.node_ns(*o), old);
    }
    let at = Instant::now();
    let replies = arp_replies(&h, ip, secs(4));
    let (new, moved) = wait_moved(&h, ip, old, secs(5), "the Lease moves away from the isolated holder");
    let new_mac = h.dev_mac(new, "eth0");
    let first_new = replies.iter().filter(|(_, m)| *m == new_mac).map(|(t, _)| *t).min();
    let last_old = replies.iter().filter(|(_, m)| *m == old_mac).map(|(t, _)| *t).max();
    let overlap = match (first_new, last_old) {
        (Some(n), Some(o)) if o > n => o - n,
        _ => Duration::ZERO,
    };
    h.log(&format!(
        "partition: node{old} -> node{new}, Lease moved {} ms after the cut; first reply from node{new} at \
         {:?}, last from node{old} at {:?}; both answered for {} ms",
        moved.as_millis(),
        first_new.map(|t| t - at),
        last_old.map(|t| t - at),
        overlap.as_millis()
    ));
    assert!(first_new.is_some(), "node{new} never answered ARP within 4 s of the cut");
    assert!(overlap <= secs(1), "node{old} and node{new} both answered for {overlap:?}");
    // The isolated node is alive and still reaches the API: it must not have been killed.
    h.assert_announcers_running();
    assert_eq!(h.wait_http(ip, Some(&node(new)), secs(5)), node(new));
}

/// A Node that turns NotReady, or gets the out-of-service taint, loses its addresses at once (the
/// announcer on it still runs and reaches everything).
#[test]
fn a_node_not_ready_or_out_of_service_loses_its_addresses() {
    let h = Harness::up_single_nic("single-node-state", 3, &[]);
    let (ip, first) = one_service(&h);
    let name = node(first);
    h.api("marking the Node NotReady", move |c| async move {
        let api: Api<Node> = Api::all(c);
        let status = json!({"status": {"conditions": [{
            "type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
            "message": "Kubelet stopped posting node status.",
            "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z",
        }]}});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await?;
        Ok(())
    });
    let (second, moved) = wait_moved(&h, ip, first, secs(5), "the Lease leaves the NotReady node");
    h.log(&format!("NotReady: node{first} -> node{second} in {} ms", moved.as_millis()));
    assert_eq!(h.wait_http(ip, Some(&node(second)), secs(5)), node(second));

    let name = node(second);
    h.api("tainting the Node out-of-service", move |c| async move {
        let api: Api<Node> = Api::all(c);
        let spec = json!({"spec": {"taints": [{
            "key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute",
        }]}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&spec)).await?;
        Ok(())
    });
    let (third, moved) = wait_moved(&h, ip, second, secs(5), "the Lease leaves the out-of-service node");
    h.log(&format!("out-of-service: node{second} -> node{third} in {} ms", moved.as_millis()));
    assert_ne!(third, first, "the address went back to the NotReady node");
    assert_eq!(h.wait_http(ip, Some(&node(third)), secs(5)), node(third));
}
