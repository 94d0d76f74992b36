//! `--datapath netlink` in the lab: the holder adds the VIP to `eth0` (with a lifetime, refreshed
//! while held) and its kernel answers ARP; every other node's kernel ignores the VIP (the lab's
//! `arp_ignore=1`). Checked with `ip address` in every node's namespace and ARP from the client:
//!
//! - takeover (the holder's link goes down), hand-over (the holder's Node excluded while its
//!   announcer runs) and SIGTERM leave each VIP of a dual-stack Service on exactly one node, its
//!   holder, on `eth0` only;
//! - after SIGKILL of the holder's announcer its kernel keeps answering until the address's
//!   lifetime runs out, beside the new holder: the double-answer window, measured from the client
//!   and bounded by docs/l2-failover.md ("Worst-case double announcement": L + 1.25 s, 4.25 s with
//!   the default `--netlink-address-lifetime 3s`).
//!
//! Needs root; fails loudly (never skips) without it.

mod support;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_lab::cluster;
use ferrolb_testkit::fixtures::ServiceFixture as _;
use nix::sys::signal::Signal;
use support::raw::{Captured, Frame, Mac};
use support::{Harness, ms, node_number, secs, v4_service};

/// docs/l2-failover.md: the kernel deletes an expired address at most L + 1.25 s after its last
/// refresh (its lifetime check runs at least 1 s apart, rounded up by up to 0.25 s), and the double
/// answer after SIGKILL lasts at most that.
const LIFETIME: Duration = Duration::from_secs(3);
const KERNEL_SLACK: Duration = Duration::from_millis(1250);
const DOUBLE_ANSWER_BOUND: Duration = Duration::from_millis(4250);

fn node(i: u8) -> String {
    format!("node{i}")
}

/// A dual-stack Service: both addresses, and the node holding each.
fn dual_stack(h: &Harness) -> Vec<(IpAddr, u8)> {
    h.default_pool_and_policy();
    let ips = h.create_service(support::service("web").with_family_policy("RequireDualStack"), 2);
    ips.into_iter().map(|ip| (ip, h.wait_any_holder("web", ip))).collect()
}

/// Every VIP is on its Lease holder's `eth0` and on no other interface of any node.
fn assert_only_on_holders(h: &Harness, ips: &[IpAddr], what: &str) -> Vec<u8> {
    let mut holders = Vec::new();
    for ip in ips {
        let holder = h.wait_any_holder("web", *ip);
        h.wait_address_on(*ip, &[holder], secs(5), what);
        let devices: Vec<String> =
            h.node_addresses(holder).into_iter().filter(|(_, a)| a == ip).map(|(d, _)| d).collect();
        assert_eq!(devices, ["eth0"], "{what}: {ip} on node{holder}'s {devices:?}");
        holders.push(holder);
    }
    holders
}

#[test]
fn netlink_takeover_handover_and_sigterm_leave_no_address_behind() {
    let h = Harness::up("netlink-moves", 3, &["--datapath", "netlink"]);
    let placed = dual_stack(&h);
    let ips: Vec<IpAddr> = placed.iter().map(|(ip, _)| *ip).collect();
    assert_only_on_holders(&h, &ips, "placed");
    let (v4, first) = placed[0];
    assert_eq!(h.wait_http(v4, None, secs(5)), node(first));

    // Takeover: the holder of the IPv4 address loses its LAN link.
    h.set_link(&h.lab.node_ns(first), "eth0", false);
    let (new, moved) = h.wait_holder("web", v4, secs(5), "takeover", |x| x.is_some_and(|x| x != node(first)));
    let second = node_number(&new.unwrap());
    assert_only_on_holders(&h, &ips, "after the takeover");
    assert_eq!(h.wait_http(v4, Some(&node(second)), secs(5)), node(second));
    h.log(&format!("takeover: node{first} -> node{second} in {} ms", moved.as_millis()));

    // The link returns: placement is sticky, nothing moves. Then a hand-over while alive: the
    // holder's Node is excluded from load balancers; it removes the address as it hands it over.
    h.set_link(&h.lab.node_ns(first), "eth0", true);
    std::thread::sleep(secs(1));
    assert_only_on_holders(&h, &ips, "after the old holder's link came back");
    h.exclude_node(second, true);
    let (new, took) =
        h.wait_holder("web", v4, secs(5), "hand-over", |x| x.is_some_and(|x| x != node(second)));
    let third = node_number(&new.unwrap());
    assert_only_on_holders(&h, &ips, "after the hand-over");
    assert_eq!(h.wait_http(v4, Some(&node(third)), secs(5)), node(third));
    h.exclude_node(second, false);
    h.log(&format!("hand-over: node{second} -> node{third} {} ms after the exclusion", took.as_millis()));
    let first = third;

    // SIGTERM: every address the node held goes with it, whichever family.
    let held: Vec<IpAddr> =
        ips.iter().copied().filter(|ip| h.holder("web", *ip) == Some(node(first))).collect();
    assert!(held.contains(&v4), "node{first} holds {v4}");
    let at = Instant::now();
    let pid = cluster::kill_announcer(&h.lab, first, Signal::SIGTERM).unwrap();
    for ip in &held {
        h.wait_holder("web", *ip, secs(5), "hand-over on SIGTERM", |x| x.is_some_and(|x| x != node(first)));
    }
    assert!(cluster::wait_exit(pid, secs(10)), "node{first}'s announcer did not exit after SIGTERM");
    let leftovers: Vec<(String, IpAddr)> =
        h.node_addresses(first).into_iter().filter(|(_, a)| ips.contains(a)).collect();
    assert!(leftovers.is_empty(), "node{first}'s announcer exited and left {leftovers:?}");
    assert_only_on_holders(&h, &ips, "after SIGTERM");
    h.log(&format!(
        "SIGTERM: node{first} handed over {held:?} and exited within {} ms, leaving no address",
        at.elapsed().as_millis()
    ));
}

/// ARP replies for `ip` from the client every 20 ms for `duration`, with their times.
fn arp_replies(h: &Harness, ip: IpAddr, duration: Duration, mut each: impl FnMut()) -> Vec<(Instant, Mac)> {
    let IpAddr::V4(target) = ip else { panic!("{ip} is not IPv4") };
    let port = h.client_port();
    port.drain();
    let start = Instant::now();
    let mut frames: Vec<Captured> = Vec::new();
    while start.elapsed() < duration {
        port.solicit(ip).unwrap();
        frames.extend(port.capture(ms(20)));
        each();
    }
    frames
        .into_iter()
        .filter_map(|c| match c.frame {
            Frame::Arp { op: 2, sha, spa, tpa, .. } if spa == target && tpa != target => Some((c.at, sha)),
            _ => None,
        })
        .collect()
}

#[test]
fn netlink_double_answer_after_sigkill_is_bounded_by_the_address_lifetime() {
    let h = Harness::up("netlink-sigkill", 3, &["--datapath", "netlink"]);
    h.default_pool_and_policy();
    let vip = h.create_service(v4_service("web"), 1)[0];
    let old = h.wait_any_holder("web", vip);
    h.wait_address_on(vip, &[old], secs(5), "placed");
    let old_mac = h.mac(old);

    let mut killed_at = None;
    let mut gone_at = None;
    let mut polls = 0u32;
    let ns = h.lab.node_ns(old);
    let replies = arp_replies(&h, vip, secs(6), || {
        if killed_at.is_none() {
            polls += 1;
            // Half a second of replies from the holder alone, then SIGKILL.
            if polls >= 20 {
                cluster::kill_announcer(&h.lab, old, Signal::SIGKILL).unwrap();
                killed_at = Some(Instant::now());
            }
        } else if gone_at.is_none() {
            let out = ferrolb_lab::run("ip", &["-n", &ns, "-j", "address", "show", "dev", "eth0"]).unwrap();
            if !out.contains(&format!("\"{vip}\"")) {
                gone_at = Some(Instant::now());
            }
        }
    });
    let killed_at = killed_at.expect("the announcer was killed");
    // Long over: the replies were collected for 6 s.
    let (new, _) =
        h.wait_holder("web", vip, secs(1), "takeover after SIGKILL", |x| x.is_some_and(|x| x != node(old)));
    let new = node_number(&new.unwrap());
    let new_mac = h.mac(new);
    let after = |t: Instant| t.saturating_duration_since(killed_at);
    let first_new = replies.iter().filter(|(_, m)| *m == new_mac).map(|(t, _)| *t).min();
    let last_old = replies.iter().filter(|(_, m)| *m == old_mac).map(|(t, _)| *t).max();
    let strangers: Vec<&Mac> =
        replies.iter().map(|(_, m)| m).filter(|m| **m != old_mac && **m != new_mac).collect();
    let first_new =
        first_new.unwrap_or_else(|| panic!("node{new} never answered ARP within 6 s: {replies:?}"));
    let last_old = last_old.expect("the old holder answered before the kill");
    let window = last_old.saturating_duration_since(first_new);
    h.log(&format!(
        "SIGKILL of node{old}'s announcer: node{new} answers ARP from {} ms; \
         node{old}'s kernel answered until {} ms, its address gone from eth0 at {:?} ms; both answered for {} ms \
         (bound {} ms)",
        after(first_new).as_millis(),
        after(last_old).as_millis(),
        gone_at.map(|t| after(t).as_millis()),
        window.as_millis(),
        DOUBLE_ANSWER_BOUND.as_millis()
    ));
    assert!(strangers.is_empty(), "ARP replies from other nodes: {strangers:?}");
    // The window exists (the killed node's kernel still has the address), so the instrument
    // measures what the bound is about; and it ends within the documented bound.
    assert!(after(last_old) > ms(500), "node{old}'s kernel stopped answering at once: no lifetime at work?");
    assert!(window <= DOUBLE_ANSWER_BOUND, "both answered for {window:?}, over {DOUBLE_ANSWER_BOUND:?}");
    let gone_at = gone_at.unwrap_or_else(|| panic!("{vip} still on node{old}'s eth0 6 s after SIGKILL"));
    assert!(
        after(gone_at) <= LIFETIME + KERNEL_SLACK,
        "{vip} left node{old}'s eth0 {:?} after SIGKILL",
        after(gone_at)
    );
    h.wait_address_on(vip, &[new], secs(2), "after the old address expired");
    assert_eq!(h.wait_http(vip, Some(&node(new)), secs(5)), node(new));
}
