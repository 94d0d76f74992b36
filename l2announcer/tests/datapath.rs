//! The datapath against the kernel, each test in network namespaces of its own (see `netns/`):
//! a "node" namespace running the responder and a "client" namespace asking, joined by veth
//! pairs. Addresses are from 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32 only; nothing is
//! sent from the root namespace, and every wait is bounded.

mod netns;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::process::Command;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use ferrolb_l2announcer::datapath::frame::{self, Mld, Observed};
use ferrolb_l2announcer::datapath::mld::{self, MldStats};
use ferrolb_l2announcer::datapath::netlink::{Link, LinkEvent, Netlink, RtNetlink};
use ferrolb_l2announcer::datapath::{AnnounceSchedule, ExpiringAddresses, Mac, PacketSocket, Responder};
use ferrolb_l2announcer::interface::InterfaceKind;
use netns::{Lab, LinkOf, Netns, NsRuntime, wait_for};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 200);
const VIP2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 201);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// How long a test waits to conclude that nothing answers.
const SILENCE: Duration = Duration::from_millis(400);
/// How long a test waits for an answer that should come.
const ANSWER: Duration = Duration::from_secs(2);

fn vip6() -> Ipv6Addr {
    "2001:db8:100::1000".parse().unwrap()
}
fn client6() -> Ipv6Addr {
    "2001:db8:100::2".parse().unwrap()
}

/// Sends `frame` (if any) on `ifindex` and collects the ARP packets and NAs arriving there that
/// satisfy `keep`, until `want` of them arrived or `window` passed. Runs in the client namespace.
async fn exchange(
    ifindex: u32,
    frame: Option<Vec<u8>>,
    window: Duration,
    want: usize,
    keep: impl Fn(&Observed) -> bool,
) -> Vec<Observed> {
    let capture = PacketSocket::capture(ifindex).expect("capture socket");
    if let Some(f) = frame {
        PacketSocket::sender(ifindex).expect("sender socket").send(&f).await.expect("send");
    }
    collect(&capture, window, want, keep).await
}

async fn collect(
    capture: &PacketSocket,
    window: Duration,
    want: usize,
    keep: impl Fn(&Observed) -> bool,
) -> Vec<Observed> {
    let deadline = tokio::time::Instant::now() + window;
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 2048];
    while seen.len() < want {
        match tokio::time::timeout_at(deadline, capture.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                if let Some(o) = frame::observe(&buf[..n]).filter(|o| keep(o)) {
                    seen.push(o);
                }
            }
            Ok(Err(e)) => panic!("capture: {e}"),
            Err(_) => break,
        }
    }
    seen
}

fn arp_reply_for(ip: Ipv4Addr) -> impl Fn(&Observed) -> bool {
    move |o| matches!(o, Observed::Arp { op: 2, sender_ip, .. } if *sender_ip == ip)
}

fn na_for(ip: Ipv6Addr) -> impl Fn(&Observed) -> bool {
    move |o| matches!(o, Observed::Na { target, .. } if *target == ip)
}

/// Starts a responder in the node namespace attached to `links`.
fn responder(rt: &NsRuntime, schedule: AnnounceSchedule, links: Vec<(u32, Mac)>) -> Responder {
    rt.wait(async move {
        let r = Responder::new(schedule);
        for (index, mac) in links {
            r.attach(index, mac).expect("attach");
        }
        r
    })
}

#[test]
fn arp_is_answered_with_the_node_mac_only_for_held_addresses() {
    let lab = Lab::new();
    let (n_idx, n_mac) = lab.node.link("eth0");
    let (c_idx, c_mac) = lab.client.link("eth0");
    assert!(lab.node.addresses("eth0").iter().all(|a| a.starts_with("fe80")), "node eth0 has no address");
    let node = lab.node.runtime();
    let client = lab.client.runtime();
    let r = responder(&node, AnnounceSchedule::default(), vec![(n_idx, n_mac)]);
    r.hold(n_idx, VIP.into());

    // The kernel resolves the VIP (a UDP send triggers ARP) and learns the node's MAC.
    client.wait(async {
        UdpSocket::bind((CLIENT_IP, 0)).unwrap().send_to(b"x", (VIP, 9)).unwrap();
    });
    let learned = wait_for(ANSWER, || lab.client.neighbour("eth0", &VIP.to_string()));
    assert_eq!(learned, Some(n_mac.to_string()), "client neighbour table");

    // A raw request: the reply follows RFC 826, unicast to the asker.
    let got = client.wait(async move {
        exchange(c_idx, Some(frame::arp_request(c_mac, CLIENT_IP, VIP)), ANSWER, 1, arp_reply_for(VIP)).await
    });
    assert_eq!(
        got,
        vec![Observed::Arp {
            eth_dst: c_mac,
            op: 2,
            sender_mac: n_mac,
            sender_ip: VIP,
            target_mac: c_mac,
            target_ip: CLIENT_IP
        }]
    );

    // Not held: silence.
    let got = client.wait(async move {
        exchange(c_idx, Some(frame::arp_request(c_mac, CLIENT_IP, VIP2)), SILENCE, 1, arp_reply_for(VIP2))
            .await
    });
    assert!(got.is_empty(), "{got:?}");

    // Released: silence too.
    assert!(r.release(n_idx, VIP.into()));
    let got = client.wait(async move {
        exchange(c_idx, Some(frame::arp_request(c_mac, CLIENT_IP, VIP)), SILENCE, 1, arp_reply_for(VIP)).await
    });
    assert!(got.is_empty(), "{got:?}");
    assert!(r.counters().arp_answered >= 2, "{:?}", r.counters());
}

#[test]
fn no_answer_on_an_interface_not_selected() {
    let lab = Lab::new();
    lab.add_pair("eth1");
    let (n0, n0_mac) = lab.node.link("eth0");
    let (n1, _) = lab.node.link("eth1");
    let (c0, c0_mac) = lab.client.link("eth0");
    let (c1, c1_mac) = lab.client.link("eth1");
    let node = lab.node.runtime();
    let client = lab.client.runtime();
    // Only eth0 is attached; the VIP is held on both (eth1's hold has no socket to answer from).
    let r = responder(&node, AnnounceSchedule::default(), vec![(n0, n0_mac)]);
    r.hold(n0, VIP.into());
    r.hold(n1, VIP.into());
    // Held on eth1 only: eth0 must not answer for it.
    r.hold(n1, VIP2.into());

    let on_eth1 = client.wait(async move {
        exchange(c1, Some(frame::arp_request(c1_mac, CLIENT_IP, VIP)), SILENCE, 1, arp_reply_for(VIP)).await
    });
    assert!(on_eth1.is_empty(), "answered on an unselected interface: {on_eth1:?}");
    let other_link = client.wait(async move {
        exchange(c0, Some(frame::arp_request(c0_mac, CLIENT_IP, VIP2)), SILENCE, 1, arp_reply_for(VIP2)).await
    });
    assert!(other_link.is_empty(), "answered for an address held on another link: {other_link:?}");
    let on_eth0 = client.wait(async move {
        exchange(c0, Some(frame::arp_request(c0_mac, CLIENT_IP, VIP)), ANSWER, 1, arp_reply_for(VIP)).await
    });
    assert_eq!(on_eth0.len(), 1);
    assert_eq!(r.attached(), vec![n0]);
}

#[test]
fn neighbor_solicitations_with_and_without_sllao_get_solicited_advertisements() {
    let lab = Lab::new();
    let (n_idx, n_mac) = lab.node.link("eth0");
    let (c_idx, c_mac) = lab.client.link("eth0");
    let node = lab.node.runtime();
    let client = lab.client.runtime();
    let r = responder(&node, AnnounceSchedule::default(), vec![(n_idx, n_mac)]);
    r.hold(n_idx, vip6().into());

    // The solicited-node group's MAC is joined on the interface while the address is held.
    let group = "33:33:ff:00:10:00";
    assert!(lab.node.ip(&["maddr", "show", "dev", "eth0"]).contains(group), "joined {group}");

    for with_sllao in [true, false] {
        let ns = frame::neighbor_solicitation(c_mac, client6(), vip6(), with_sllao);
        let got = client.wait(async move { exchange(c_idx, Some(ns), ANSWER, 1, na_for(vip6())).await });
        assert_eq!(
            got,
            vec![Observed::Na {
                eth_src: n_mac,
                eth_dst: c_mac,
                ip_src: vip6(),
                ip_dst: client6(),
                solicited: true,
                override_: true,
                router: false,
                target: vip6(),
                tlla: Some(n_mac)
            }],
            "with SLLAO: {with_sllao}"
        );
    }

    // Duplicate address detection (unspecified source): to all-nodes, Solicited clear.
    let dad = frame::neighbor_solicitation(c_mac, Ipv6Addr::UNSPECIFIED, vip6(), false);
    let got = client.wait(async move { exchange(c_idx, Some(dad), ANSWER, 1, na_for(vip6())).await });
    let [Observed::Na { ip_dst, eth_dst, solicited, override_, .. }] = got.as_slice() else {
        panic!("{got:?}")
    };
    assert_eq!(
        (*ip_dst, *eth_dst, *solicited, *override_),
        (frame::ALL_NODES, Mac([0x33, 0x33, 0, 0, 0, 1]), false, true)
    );

    // The client kernel resolves the address through the responder.
    client.wait(async {
        UdpSocket::bind((client6(), 0)).unwrap().send_to(b"x", (vip6(), 9)).unwrap();
    });
    let learned = wait_for(ANSWER, || lab.client.neighbour("eth0", &vip6().to_string()));
    assert_eq!(learned, Some(n_mac.to_string()), "client neighbour table");

    // Released: the group is left and solicitations go unanswered.
    r.release(n_idx, vip6().into());
    assert!(!lab.node.ip(&["maddr", "show", "dev", "eth0"]).contains(group), "left {group}");
    let ns = frame::neighbor_solicitation(c_mac, client6(), vip6(), true);
    let got = client.wait(async move { exchange(c_idx, Some(ns), SILENCE, 1, na_for(vip6())).await });
    assert!(got.is_empty(), "{got:?}");
    assert!(r.counters().ndp_answered >= 4, "{:?}", r.counters());
}

#[test]
fn takeover_sends_gratuitous_arp_both_forms_and_unsolicited_na_then_stops_on_release() {
    let lab = Lab::new();
    let (n_idx, n_mac) = lab.node.link("eth0");
    let (c_idx, _) = lab.client.link("eth0");
    let node = lab.node.runtime();
    let client = lab.client.runtime();
    let offsets = |ms: &[u64]| AnnounceSchedule::new(ms.iter().map(|&m| Duration::from_millis(m)).collect());
    let r = responder(&node, offsets(&[0, 150, 300]), vec![(n_idx, n_mac)]);

    let (ready_tx, ready_rx) = mpsc::channel();
    let capture = client.spawn(async move {
        let cap = PacketSocket::capture(c_idx).unwrap();
        ready_tx.send(()).unwrap();
        collect(&cap, Duration::from_millis(1500), 9, |o| match o {
            Observed::Arp { sender_ip, .. } => *sender_ip == VIP,
            Observed::Na { target, .. } => *target == vip6(),
        })
        .await
    });
    ready_rx.recv_timeout(ANSWER).expect("capture ready");
    let started = Instant::now();
    let r2 = r.clone();
    node.wait(async move {
        r2.take_over(n_idx, VIP.into());
        r2.take_over(n_idx, vip6().into());
    });
    let seen = client.join(capture);
    assert!(started.elapsed() >= Duration::from_millis(250), "repeats follow the schedule");
    let requests = seen.iter().filter(|o| matches!(o, Observed::Arp { op: 1, .. })).count();
    let replies = seen.iter().filter(|o| matches!(o, Observed::Arp { op: 2, .. })).count();
    let nas = seen.iter().filter(|o| matches!(o, Observed::Na { .. })).count();
    assert_eq!((requests, replies, nas), (3, 3, 3), "{seen:#?}");
    for o in &seen {
        match o {
            Observed::Arp { eth_dst, sender_mac, sender_ip, target_ip, .. } => {
                assert_eq!((*eth_dst, *sender_mac, *sender_ip, *target_ip), (Mac::BROADCAST, n_mac, VIP, VIP))
            }
            Observed::Na { eth_dst, ip_dst, solicited, override_, tlla, .. } => assert_eq!(
                (*eth_dst, *ip_dst, *solicited, *override_, *tlla),
                (Mac([0x33, 0x33, 0, 0, 0, 1]), frame::ALL_NODES, false, true, Some(n_mac))
            ),
        }
    }
    assert!(
        wait_for(ANSWER, || (r.counters().gratuitous_sent == 9).then_some(())).is_some(),
        "{:?}",
        r.counters()
    );
    // Taking over also holds: the address is answered.
    assert!(r.held().contains(n_idx, VIP.into()) && r.held().contains(n_idx, vip6().into()));

    // A release cancels the rest of the burst: one round of two frames, then nothing.
    let r = responder(&node, offsets(&[0, 400, 800]), vec![(n_idx, n_mac)]);
    let (ready_tx, ready_rx) = mpsc::channel();
    let capture = client.spawn(async move {
        let cap = PacketSocket::capture(c_idx).unwrap();
        ready_tx.send(()).unwrap();
        collect(
            &cap,
            Duration::from_millis(1200),
            10,
            |o| matches!(o, Observed::Arp { sender_ip, .. } if *sender_ip == VIP2),
        )
        .await
    });
    ready_rx.recv_timeout(ANSWER).expect("capture ready");
    let r2 = r.clone();
    node.wait(async move {
        r2.take_over(n_idx, VIP2.into());
        tokio::time::sleep(Duration::from_millis(100)).await;
        r2.release(n_idx, VIP2.into());
    });
    let seen = client.join(capture);
    assert_eq!(seen.len(), 2, "only the first round: {seen:#?}");
}

#[test]
fn vlan_tagged_frames_are_not_answered_on_the_parent_and_sub_interfaces_work() {
    let lab = Lab::new();
    let (n_idx, n_mac) = lab.node.link("eth0");
    let (c_idx, c_mac) = lab.client.link("eth0");
    let node = lab.node.runtime();
    let client = lab.client.runtime();
    let r = responder(&node, AnnounceSchedule::default(), vec![(n_idx, n_mac)]);
    r.hold(n_idx, VIP.into());

    // An ARP request for a VIP held on eth0, but tagged VLAN 100: the kernel strips the tag before
    // the socket sees it, and the filter must drop it (it belongs to eth0.100, not eth0).
    let untagged = frame::arp_request(c_mac, CLIENT_IP, VIP);
    let mut tagged = untagged[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 100]);
    tagged.extend_from_slice(&untagged[12..]);
    let got = client.wait(async move { exchange(c_idx, Some(tagged), SILENCE, 1, arp_reply_for(VIP)).await });
    assert!(got.is_empty(), "answered a VLAN-tagged request on the parent: {got:?}");
    let got =
        client.wait(async move { exchange(c_idx, Some(untagged), ANSWER, 1, arp_reply_for(VIP)).await });
    assert_eq!(got.len(), 1, "untagged request answered");

    // A VLAN sub-interface on both sides, when the kernel has 802.1Q.
    if let Err(e) =
        lab.node.try_ip(&["link", "add", "link", "eth0", "name", "eth0.100", "type", "vlan", "id", "100"])
    {
        let msg = format!("this kernel cannot create VLAN links ({e}): VLAN sub-interface scenario NOT run");
        assert!(std::env::var_os("FERROLB_REQUIRE_VLAN").is_none(), "{msg}");
        eprintln!("WARNING: {msg}");
        return;
    }
    lab.client.ip(&["link", "add", "link", "eth0", "name", "eth0.100", "type", "vlan", "id", "100"]);
    lab.node.ip(&["link", "set", "eth0.100", "up"]);
    lab.client.ip(&["link", "set", "eth0.100", "up"]);
    let (nv_idx, nv_mac) = lab.node.link("eth0.100");
    let (cv_idx, cv_mac) = lab.client.link("eth0.100");
    let vip3 = Ipv4Addr::new(203, 0, 113, 100);
    let asker = Ipv4Addr::new(203, 0, 113, 2);
    node.wait({
        let r = r.clone();
        async move { r.attach(nv_idx, nv_mac).unwrap() }
    });
    r.hold(nv_idx, vip3.into());
    let got = client.wait(async move {
        exchange(cv_idx, Some(frame::arp_request(cv_mac, asker, vip3)), ANSWER, 1, arp_reply_for(vip3)).await
    });
    assert_eq!(got.len(), 1, "answered on the VLAN sub-interface");
    // The parent's VIP is not answered on the VLAN (watch the whole wire on the client's parent).
    let got = client.wait(async move {
        let cap = PacketSocket::capture(c_idx).unwrap();
        PacketSocket::sender(cv_idx).unwrap().send(&frame::arp_request(cv_mac, asker, VIP)).await.unwrap();
        collect(&cap, SILENCE, 1, arp_reply_for(VIP)).await
    });
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn malformed_frames_are_counted_and_dropped_without_stopping_the_responder() {
    let lab = Lab::new();
    let (n_idx, n_mac) = lab.node.link("eth0");
    let (c_idx, c_mac) = lab.client.link("eth0");
    let node = lab.node.runtime();
    let client = lab.client.runtime();
    let r = responder(&node, AnnounceSchedule::default(), vec![(n_idx, n_mac)]);
    r.hold(n_idx, VIP.into());
    r.hold(n_idx, vip6().into());

    let request = frame::arp_request(c_mac, CLIENT_IP, VIP);
    let ns = frame::neighbor_solicitation(c_mac, client6(), vip6(), true);
    let truncated_arp = request[..30].to_vec();
    let mut wide_arp = request.clone();
    wide_arp[18] = 8; // hardware address size 8
    let mut bad_checksum = ns.clone();
    bad_checksum[56] ^= 0xff;
    let mut low_hop_limit = ns.clone();
    low_hop_limit[21] = 64;
    let malformed = [truncated_arp, wide_arp, bad_checksum, low_hop_limit];
    let count = malformed.len() as u64;
    client.wait(async move {
        let tx = PacketSocket::sender(c_idx).unwrap();
        for f in malformed {
            tx.send(&f).await.unwrap();
        }
    });
    let counted = wait_for(ANSWER, || (r.counters().malformed >= count).then(|| r.counters().malformed));
    assert_eq!(counted, Some(count), "{:?}", r.counters());
    // Still answering.
    let got = client.wait(async move { exchange(c_idx, Some(request), ANSWER, 1, arp_reply_for(VIP)).await });
    assert_eq!(got.len(), 1);
    let got = client.wait(async move { exchange(c_idx, Some(ns), ANSWER, 1, na_for(vip6())).await });
    assert_eq!(got.len(), 1);
    let c = r.counters();
    assert_eq!((c.arp_answered, c.ndp_answered, c.malformed), (1, 1, count));
}

#[test]
fn netlink_facade_lists_links_watches_changes_and_manages_addresses() {
    let lab = Lab::new();
    lab.add_pair("eth1");
    lab.node.ip(&["link", "add", "br0", "type", "bridge"]);
    lab.node.ip(&["link", "set", "eth1", "master", "br0"]);
    let (n_idx, n_mac) = lab.node.link("eth0");
    let node = lab.node.runtime();

    let links: Vec<Link> = node.wait(async { RtNetlink::new().unwrap().links().await.unwrap() });
    let by_name =
        |n: &str| links.iter().find(|l| l.name == n).unwrap_or_else(|| panic!("{n} in {links:#?}")).clone();
    let eth0 = by_name("eth0");
    assert_eq!((eth0.index, eth0.mac), (n_idx, Some(n_mac)));
    assert!(eth0.up() && eth0.arp_capable && !eth0.enslaved, "{eth0:?}");
    assert_eq!(eth0.kind, InterfaceKind::Veth);
    let iface = eth0.interface();
    assert!(iface.up && iface.structurally_eligible());
    let lo = by_name("lo");
    assert_eq!((lo.kind, lo.arp_capable), (InterfaceKind::Loopback, false));
    let eth1 = by_name("eth1");
    assert!(eth1.enslaved && eth1.master == Some(by_name("br0").index), "{eth1:?}");
    assert_eq!(by_name("br0").kind, InterfaceKind::Bridge);
    assert!(!by_name("br0").up(), "br0 was never set up");

    // Add and remove addresses; check with `ip -j addr`.
    let v4: IpAddr = "203.0.113.10".parse().unwrap();
    let v6: IpAddr = "2001:db8:100::1000".parse().unwrap();
    let listed = node.wait(async move {
        let nl = RtNetlink::new().unwrap();
        nl.add_address(n_idx, v4, 32, None).await.unwrap();
        nl.add_address(n_idx, v4, 32, None).await.expect("adding twice is fine");
        nl.add_address(n_idx, v6, 128, None).await.unwrap();
        nl.addresses(n_idx).await.unwrap()
    });
    assert!(listed.contains(&(v4, 32)) && listed.contains(&(v6, 128)), "{listed:?}");
    let addrs = lab.node.addresses("eth0");
    assert!(
        addrs.contains(&"203.0.113.10/32".into()) && addrs.contains(&"2001:db8:100::1000/128".into()),
        "{addrs:?}"
    );
    node.wait(async move {
        let nl = RtNetlink::new().unwrap();
        nl.remove_address(n_idx, v4).await.unwrap();
        nl.remove_address(n_idx, v6).await.unwrap();
        nl.remove_address(n_idx, v6).await.expect("removing an absent address is fine");
    });
    let addrs = lab.node.addresses("eth0");
    assert!(
        !addrs.iter().any(|a| a.starts_with("203.0.113.10") || a.starts_with("2001:db8:100::1000")),
        "{addrs:?}"
    );

    // Link changes arrive as events.
    let mut events = node.wait(async { RtNetlink::new().unwrap().watch_links().unwrap() });
    lab.node.ip(&["link", "set", "eth0", "down"]);
    let down = node.wait(async move {
        tokio::time::timeout(ANSWER, async {
            while let Some(e) = events.recv().await {
                if let LinkEvent::Changed(l) = e
                    && l.name == "eth0"
                    && !l.admin_up
                {
                    return l;
                }
            }
            panic!("watch ended");
        })
        .await
        .expect("a link event for eth0 going down")
    });
    assert_eq!(down.index, n_idx);
    assert!(!down.up());
}

// ---- MLD: the solicited-node groups of held IPv6 addresses, joined at the IP layer ----

/// Captures the MLD messages arriving on `ifindex` in the client namespace, from the moment this
/// returns, until one satisfies `stop` or `window` passes; each with the time it arrived.
fn capture_mld(
    client: &NsRuntime,
    ifindex: u32,
    window: Duration,
    stop: impl Fn(&Mld) -> bool + Send + 'static,
) -> tokio::task::JoinHandle<Vec<(Instant, Mld)>> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let handle = client.spawn(async move {
        let capture = PacketSocket::capture(ifindex).expect("capture socket");
        ready_tx.send(()).unwrap();
        let deadline = tokio::time::Instant::now() + window;
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 9216];
        while let Ok(received) = tokio::time::timeout_at(deadline, capture.recv(&mut buf)).await {
            let n = received.expect("capture");
            if let Some(mld) = frame::observe_mld(&buf[..n]) {
                let done = stop(&mld);
                seen.push((Instant::now(), mld));
                if done {
                    break;
                }
            }
        }
        seen
    });
    ready_rx.recv_timeout(ANSWER).expect("capture ready");
    handle
}

/// The IPv6 groups joined at the IP layer on `dev` (`ip -6 maddr`).
fn ip_groups(ns: &Netns, dev: &str) -> Vec<Ipv6Addr> {
    ns.ip(&["-6", "maddr", "show", "dev", dev])
        .lines()
        .filter_map(|l| l.trim().strip_prefix("inet6 ")?.split_whitespace().next()?.parse().ok())
        .collect()
}

/// The link-local address of `dev`, once duplicate address detection has finished with it (while
/// it is tentative the kernel sends MLD from `::`).
fn link_local(ns: &Netns, dev: &str) -> Ipv6Addr {
    let settled = wait_for(Duration::from_secs(5), || {
        ns.ip(&["-6", "addr", "show", "dev", dev, "tentative"]).trim().is_empty().then_some(())
    });
    assert!(settled.is_some(), "{dev} still has tentative addresses");
    let addrs = ns.addresses(dev);
    let ll = addrs
        .iter()
        .find(|a| a.starts_with("fe80"))
        .unwrap_or_else(|| panic!("no link-local on {dev}: {addrs:?}"));
    ll.split('/').next().unwrap().parse().unwrap()
}

#[test]
fn holding_an_ipv6_address_reports_its_solicited_node_group_with_mld_until_its_last_address_goes() {
    let lab = Lab::new();
    let (n_idx, n_mac) = lab.node.link("eth0");
    let (c_idx, _) = lab.client.link("eth0");
    let node = lab.node.runtime();
    let client = lab.client.runtime();
    let r = responder(&node, AnnounceSchedule::default(), vec![(n_idx, n_mac)]);
    let group = frame::solicited_node(vip6());
    // Another address with the same last 24 bits: the same group.
    let twin: Ipv6Addr = "2001:db8:101::1000".parse().unwrap();
    assert_eq!(frame::solicited_node(twin), group);
    let ll = link_local(&lab.node, "eth0");

    // Hold: the kernel reports the group at once, from the link-local address.
    let capture = capture_mld(&client, c_idx, ANSWER, move |m| m.joins(group));
    let held_at = Instant::now();
    node.wait({
        let r = r.clone();
        async move { r.hold(n_idx, vip6().into()) }
    });
    let seen = client.join(capture);
    let (at, report) =
        seen.iter().find(|(_, m)| m.joins(group)).unwrap_or_else(|| panic!("no MLD join: {seen:?}"));
    eprintln!("MEASURED: MLD report for {group} seen {:?} after the hold ({report:?})", *at - held_at);
    assert_eq!(report.ip_src(), ll, "sent from the link-local address");
    assert!(ip_groups(&lab.node, "eth0").contains(&group), "joined at the IP layer");
    assert_eq!(r.mld_memberships(n_idx), Some(MldStats { joined: 1, waiting: 0, sockets: 1 }));

    // A second address of the group shares the membership; releasing the first does not leave.
    node.wait({
        let r = r.clone();
        async move { r.hold(n_idx, twin.into()) }
    });
    assert_eq!(r.mld_memberships(n_idx).map(|s| s.joined), Some(1));
    let capture = capture_mld(&client, c_idx, SILENCE, move |m| m.leaves(group));
    assert!(r.release(n_idx, vip6().into()));
    let seen = client.join(capture);
    assert!(!seen.iter().any(|(_, m)| m.leaves(group)), "left while the twin is held: {seen:?}");
    assert!(ip_groups(&lab.node, "eth0").contains(&group));

    // The last address released: the group is left ("change to include {}" / done).
    let capture = capture_mld(&client, c_idx, ANSWER, move |m| m.leaves(group));
    let released_at = Instant::now();
    assert!(r.release(n_idx, twin.into()));
    let seen = client.join(capture);
    let (at, leave) =
        seen.iter().find(|(_, m)| m.leaves(group)).unwrap_or_else(|| panic!("no MLD leave: {seen:?}"));
    eprintln!("MEASURED: MLD leave for {group} seen {:?} after the release ({leave:?})", *at - released_at);
    assert!(!ip_groups(&lab.node, "eth0").contains(&group), "left at the IP layer");
    assert_eq!(r.mld_memberships(n_idx).map(|s| s.joined), Some(0));

    // Without a link-local address (an interface with no IP at all) the kernel still reports,
    // from `::` (RFC 3590).
    lab.node.ip(&["-6", "addr", "flush", "dev", "eth0"]);
    assert!(lab.node.addresses("eth0").is_empty(), "{:?}", lab.node.addresses("eth0"));
    let capture = capture_mld(&client, c_idx, ANSWER, move |m| m.joins(group));
    node.wait({
        let r = r.clone();
        async move { r.hold(n_idx, vip6().into()) }
    });
    let seen = client.join(capture);
    let (_, report) =
        seen.iter().find(|(_, m)| m.joins(group)).unwrap_or_else(|| panic!("no MLD join: {seen:?}"));
    assert_eq!(report.ip_src(), Ipv6Addr::UNSPECIFIED);

    // Detaching the interface (its sockets close) leaves the group too.
    let capture = capture_mld(&client, c_idx, ANSWER, move |m| m.leaves(group));
    r.detach(n_idx);
    let seen = client.join(capture);
    assert!(seen.iter().any(|(_, m)| m.leaves(group)), "no MLD leave on detach: {seen:?}");
    assert!(!ip_groups(&lab.node, "eth0").contains(&group));
}

/// `bridge -n <ns> mdb show dev br0`: the groups the bridge forwards, as (port, group).
fn mdb(sw: &Netns) -> Vec<(String, Ipv6Addr)> {
    let out = Command::new("bridge")
        .args(["-n", &sw.name, "-j", "mdb", "show", "dev", "br0"])
        .output()
        .expect("run bridge");
    assert!(out.status.success(), "bridge mdb: {}", String::from_utf8_lossy(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bridge -j mdb");
    j.as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["mdb"].as_array().cloned().unwrap_or_default())
        .filter_map(|m| Some((m["port"].as_str()?.to_string(), m["grp"].as_str()?.parse().ok()?)))
        .collect()
}

/// The Neighbor Solicitations for `target` that reach the node's `ifindex` while the client sends
/// one from `c_idx`.
fn solicitations_reaching_node(
    node: &NsRuntime,
    n_idx: u32,
    client: &NsRuntime,
    c_idx: u32,
    c_mac: Mac,
    target: Ipv6Addr,
) -> usize {
    let (ready_tx, ready_rx) = mpsc::channel();
    let capture = node.spawn(async move {
        let cap = PacketSocket::capture(n_idx).unwrap();
        ready_tx.send(()).unwrap();
        let deadline = tokio::time::Instant::now() + SILENCE;
        let mut n = 0;
        let mut buf = vec![0u8; 2048];
        while let Ok(Ok(len)) = tokio::time::timeout_at(deadline, cap.recv(&mut buf)).await {
            if matches!(frame::parse(&buf[..len]), Ok(frame::Parsed::Query(q)) if q.target() == IpAddr::V6(target)) {
                n += 1;
            }
        }
        n
    });
    ready_rx.recv_timeout(ANSWER).expect("capture ready");
    client.wait(async move {
        let ns = frame::neighbor_solicitation(c_mac, client6(), target, true);
        PacketSocket::sender(c_idx).unwrap().send(&ns).await.unwrap();
    });
    node.join(capture)
}

#[test]
fn a_switch_that_snoops_mld_forwards_solicitations_to_the_node_only_while_it_holds_the_address() {
    // node eth0 -- pn [br0: MLD snooping, querier, no flooding of unknown multicast] pc -- client eth0
    let node_ns = Netns::new("node");
    let sw = Netns::new("sw");
    let client_ns = Netns::new("client");
    // Queries every second, and a membership lasts 3 s unless a report renews it: a group stays
    // only while the node answers the queries.
    sw.ip(&[
        "link",
        "add",
        "br0",
        "type",
        "bridge",
        "mcast_snooping",
        "1",
        "mcast_querier",
        "1",
        "mcast_query_interval",
        "100",
        "mcast_query_response_interval",
        "50",
        "mcast_startup_query_interval",
        "100",
        "mcast_membership_interval",
        "300",
        "mcast_last_member_interval",
        "50",
    ]);
    node_ns.ip(&["link", "add", "eth0", "type", "veth", "peer", "name", "pn", "netns", &sw.name]);
    client_ns.ip(&["link", "add", "eth0", "type", "veth", "peer", "name", "pc", "netns", &sw.name]);
    for port in ["pn", "pc"] {
        sw.ip(&["link", "set", port, "master", "br0"]);
        sw.ip(&["link", "set", port, "up"]);
    }
    // The bridge queries (and so forwards by membership) only once it has a usable link-local
    // address: skip its duplicate address detection.
    sw.sysctl("net.ipv6.conf.br0.accept_dad", "0");
    sw.ip(&["link", "set", "br0", "up"]);
    node_ns.ip(&["link", "set", "eth0", "up"]);
    client_ns.ip(&["link", "set", "eth0", "up"]);
    client_ns.ip(&["addr", "add", "2001:db8:100::2/64", "dev", "eth0", "nodad"]);
    for port in ["pn", "pc"] {
        let out = Command::new("bridge")
            .args(["-n", &sw.name, "link", "set", "dev", port, "mcast_flood", "off"])
            .output()
            .expect("run bridge");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let carrier = |ns: &Netns| {
        ns.link_json("eth0")["flags"].as_array().is_some_and(|f| f.iter().any(|x| x == "LOWER_UP"))
    };
    assert!(wait_for(ANSWER, || (carrier(&node_ns) && carrier(&client_ns)).then_some(())).is_some());
    let (n_idx, n_mac) = node_ns.link("eth0");
    let (c_idx, c_mac) = client_ns.link("eth0");
    let node = node_ns.runtime();
    let client = client_ns.runtime();
    let r = responder(&node, AnnounceSchedule::default(), vec![(n_idx, n_mac)]);
    let group = frame::solicited_node(vip6());
    // A new bridge floods multicast (here: to no port with flooding off) until it has settled as
    // the querier, about 10 s on this kernel. Wait until it forwards by membership: a solicitation
    // from the node for the client's address reaches the client, whose kernel joined that group.
    let started = Instant::now();
    let settled = wait_for(Duration::from_secs(20), || {
        let ns = frame::neighbor_solicitation(n_mac, "2001:db8:100::11".parse().unwrap(), client6(), true);
        let got = node.wait(async move {
            exchange(n_idx, Some(ns), Duration::from_millis(200), 1, na_for(client6())).await
        });
        (!got.is_empty()).then_some(())
    });
    assert!(settled.is_some(), "the bridge never forwarded by membership: {:?}", mdb(&sw));
    eprintln!("the snooping bridge forwards by membership after {:?}", started.elapsed());

    // Not held: the switch has no member for the group and keeps the solicitation from the node.
    assert_eq!(solicitations_reaching_node(&node, n_idx, &client, c_idx, c_mac, vip6()), 0);

    // Held: the node reports the group, the switch forwards the solicitation, the node answers.
    let held_at = Instant::now();
    node.wait({
        let r = r.clone();
        async move { r.hold(n_idx, vip6().into()) }
    });
    let member = wait_for(ANSWER, || mdb(&sw).contains(&("pn".into(), group)).then(|| held_at.elapsed()));
    eprintln!("MEASURED: snooping bridge forwards {group} to the node {member:?} after the hold");
    assert!(member.is_some(), "bridge never learned {group} on pn: {:?}", mdb(&sw));
    let ns = frame::neighbor_solicitation(c_mac, client6(), vip6(), true);
    let got = client.wait(async move { exchange(c_idx, Some(ns), ANSWER, 1, na_for(vip6())).await });
    assert_eq!(got.len(), 1, "solicitation answered through the snooping switch: {:?}", mdb(&sw));

    // Past the membership interval (3 s) the group is still there: the node answers the queries.
    std::thread::sleep(Duration::from_millis(4500));
    assert!(mdb(&sw).contains(&("pn".into(), group)), "membership expired: {:?}", mdb(&sw));
    let ns = frame::neighbor_solicitation(c_mac, client6(), vip6(), true);
    let got = client.wait(async move { exchange(c_idx, Some(ns), ANSWER, 1, na_for(vip6())).await });
    assert_eq!(got.len(), 1, "still answered after several queries");

    // Released: the node leaves the group, the switch stops forwarding its solicitations here.
    r.release(n_idx, vip6().into());
    let gone = wait_for(Duration::from_secs(5), || (!mdb(&sw).contains(&("pn".into(), group))).then_some(()));
    assert!(gone.is_some(), "the bridge still forwards {group} to the node: {:?}", mdb(&sw));
    assert_eq!(solicitations_reaching_node(&node, n_idx, &client, c_idx, c_mac, vip6()), 0);
}

/// Distinct solicited-node groups: 2001:db8:100::a:0, ::a:1, ... (last 24 bits 0a:00:00 + i).
fn distinct_group_addresses(n: u32) -> Vec<Ipv6Addr> {
    (0..n)
        .map(|i| {
            Ipv6Addr::from(u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0xa, 0)) + u128::from(i))
        })
        .collect()
}

/// A sysctl's value inside `ns` (`/proc/sys/<key>` read by `ip netns exec`).
fn sysctl_in(ns: &Netns, key: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "cat", &format!("/proc/sys/{key}")])
        .output()
        .expect("run ip netns exec");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn mld_memberships_spread_over_sockets_when_option_memory_runs_out() {
    let lab = Lab::new();
    let (n_idx, n_mac) = lab.node.link("eth0");
    let node = lab.node.runtime();

    // How many groups one socket takes with the namespace's default option memory.
    let default_optmem = sysctl_in(&lab.node, "net/core/optmem_max");
    let per_socket = node.wait(async move {
        let socket = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::DGRAM, None).unwrap();
        let mut joined = 0u32;
        for group in distinct_group_addresses(10_000).into_iter().map(frame::solicited_node) {
            match socket.join_multicast_v6(&group, n_idx) {
                Ok(()) => joined += 1,
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(nix::libc::ENOMEM), "{e}");
                    break;
                }
            }
        }
        joined
    });
    eprintln!("MEASURED: one socket takes {per_socket} IPv6 memberships with optmem_max {default_optmem}");
    assert!(per_socket as usize >= mld::MAX_GROUPS_PER_LINK, "a link's groups fit one socket by default");

    // With 2 KiB of option memory per socket (36 memberships), 100 groups need 3 sockets.
    let root_optmem = std::fs::read_to_string("/proc/sys/net/core/optmem_max").unwrap();
    lab.node.sysctl("net.core.optmem_max", "2048");
    let root_after = std::fs::read_to_string("/proc/sys/net/core/optmem_max").unwrap();
    assert_eq!(root_after, root_optmem, "net.core.optmem_max is not per network namespace on this kernel");
    let r = responder(&node, AnnounceSchedule::default(), vec![(n_idx, n_mac)]);
    let addresses = distinct_group_addresses(100);
    node.wait({
        let (r, addresses) = (r.clone(), addresses.clone());
        async move {
            for ip in addresses {
                r.hold(n_idx, ip.into());
            }
        }
    });
    let stats = r.mld_memberships(n_idx).unwrap();
    assert_eq!((stats.joined, stats.waiting), (100, 0), "{stats:?}");
    assert!(stats.sockets >= 3, "{stats:?}");
    let joined = ip_groups(&lab.node, "eth0");
    let missing: Vec<_> =
        addresses.iter().map(|a| frame::solicited_node(*a)).filter(|g| !joined.contains(g)).collect();
    assert!(missing.is_empty(), "not joined: {missing:?}");
    for ip in &addresses {
        r.release(n_idx, (*ip).into());
    }
    assert_eq!(r.mld_memberships(n_idx), Some(MldStats { joined: 0, waiting: 0, sockets: 1 }));
    let joined = ip_groups(&lab.node, "eth0");
    assert!(!addresses.iter().any(|a| joined.contains(&frame::solicited_node(*a))), "{joined:?}");
}

#[test]
fn mld_joins_stop_at_the_per_link_limit_and_waiting_groups_take_freed_places() {
    let lab = Lab::new();
    let (n_idx, n_mac) = lab.node.link("eth0");
    let node = lab.node.runtime();
    let r = responder(&node, AnnounceSchedule::default(), vec![(n_idx, n_mac)]);
    let limit = mld::MAX_GROUPS_PER_LINK;
    let addresses = distinct_group_addresses(limit as u32 + 5);
    let took = node.wait({
        let (r, addresses) = (r.clone(), addresses.clone());
        async move {
            let start = Instant::now();
            for ip in &addresses[..limit] {
                r.hold(n_idx, (*ip).into());
            }
            let took = start.elapsed();
            for ip in &addresses[limit..] {
                r.hold(n_idx, (*ip).into());
            }
            took
        }
    });
    eprintln!("MEASURED: holding {limit} IPv6 addresses with distinct groups (MLD joins) took {took:?}");
    assert_eq!(r.mld_memberships(n_idx), Some(MldStats { joined: limit, waiting: 5, sockets: 1 }));
    let first = frame::solicited_node(addresses[0]);
    let waiting = frame::solicited_node(addresses[limit]);
    assert!(!ip_groups(&lab.node, "eth0").contains(&waiting));
    r.release(n_idx, addresses[0].into());
    let joined = ip_groups(&lab.node, "eth0");
    assert!(
        !joined.contains(&first) && joined.contains(&waiting),
        "the first waiting group took the freed place"
    );
    assert_eq!(r.mld_memberships(n_idx), Some(MldStats { joined: limit, waiting: 4, sockets: 1 }));
    let start = Instant::now();
    r.detach(n_idx);
    eprintln!("MEASURED: detaching (closing the memberships of {limit} groups) took {:?}", start.elapsed());
}

/// What the per-link limit is based on: joining n groups on one link costs O(n²). Under `cargo
/// test` it joins 1,024 and 2,048 groups and checks every one is joined; with
/// `FERROLB_MLD_JOIN_FULL=1` it also measures 4,096-16,384 (~15 s):
/// `FERROLB_MLD_JOIN_FULL=1 cargo test -p ferrolb-l2announcer --test datapath mld_join_cost -- --nocapture`.
#[test]
fn mld_join_cost_by_number_of_groups() {
    let sizes: &[u32] = if std::env::var_os("FERROLB_MLD_JOIN_FULL").is_some() {
        &[1024, 2048, 4096, 8192, 16384]
    } else {
        &[1024, 2048]
    };
    for &n in sizes {
        let lab = Lab::new();
        let (n_idx, _) = lab.node.link("eth0");
        let node = lab.node.runtime();
        let (joined, left) = node.wait(async move {
            let mut m = mld::MldMemberships::<socket2::Socket>::new(n_idx, usize::MAX);
            let groups: Vec<Ipv6Addr> =
                distinct_group_addresses(n).into_iter().map(frame::solicited_node).collect();
            let start = Instant::now();
            for g in &groups {
                m.join(*g).unwrap();
            }
            let joined = start.elapsed();
            let stats = m.stats();
            assert_eq!((stats.joined, stats.waiting), (groups.len(), 0), "{n} groups: {stats:?}");
            let sockets = stats.sockets;
            let start = Instant::now();
            drop(m);
            (format!("{joined:?} over {sockets} sockets"), start.elapsed())
        });
        eprintln!("MEASURED: {n} groups joined in {joined}, left (sockets closed) in {left:?}");
    }
}

// ---- `--datapath netlink`: addresses that expire unless refreshed ----

/// Polls `ip -j addr` every 10 ms until `ip` is gone from `dev`; returns when.
fn wait_gone(ns: &Netns, dev: &str, ip: IpAddr, timeout: Duration) -> Option<Instant> {
    let prefix = format!("{ip}/");
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !ns.addresses(dev).iter().any(|a| a.starts_with(&prefix)) {
            return Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[test]
fn netlink_addresses_expire_after_their_lifetime_unless_refreshed_and_a_release_deletes_at_once() {
    let lab = Lab::new();
    let (n_idx, n_mac) = lab.node.link("eth0");
    let (c_idx, c_mac) = lab.client.link("eth0");
    let node = lab.node.runtime();
    let client = lab.client.runtime();
    let lifetime = Duration::from_secs(3);
    let v4: IpAddr = VIP.into();
    let v6: IpAddr = vip6().into();
    let has = |ip: IpAddr| lab.node.addresses("eth0").iter().any(|a| a.starts_with(&format!("{ip}/")));

    // Held and refreshed (every second): still there well past the lifetime.
    let kept = node.wait(async move {
        let kept = ExpiringAddresses::new(Arc::new(RtNetlink::new().unwrap()), Some(lifetime)).refreshing();
        kept.add(n_idx, v4, 32).await.unwrap();
        kept.add(n_idx, v6, 128).await.unwrap();
        kept
    });
    // IPv6 without duplicate address detection: not tentative, answered by the kernel at once.
    let info: serde_json::Value =
        serde_json::from_str(&lab.node.ip(&["-j", "-6", "addr", "show", "dev", "eth0"])).unwrap();
    let vip_info = info[0]["addr_info"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["local"] == vip6().to_string()))
        .unwrap_or_else(|| panic!("{info}"))
        .clone();
    assert_eq!((vip_info["nodad"].as_bool(), vip_info.get("tentative")), (Some(true), None), "{vip_info}");
    assert_eq!(vip_info["valid_life_time"], 3, "{vip_info}");
    let ns = frame::neighbor_solicitation(c_mac, client6(), vip6(), true);
    let got = client.wait(async move { exchange(c_idx, Some(ns), ANSWER, 1, na_for(vip6())).await });
    assert!(matches!(got.as_slice(), [Observed::Na { eth_src, .. }] if *eth_src == n_mac), "{got:?}");
    std::thread::sleep(lifetime + Duration::from_millis(1500));
    assert!(has(v4) && has(v6), "refreshed addresses expired: {:?}", lab.node.addresses("eth0"));

    // A release deletes at once, and no refresh brings the address back.
    node.wait(async move {
        kept.remove(n_idx, v4).await.unwrap();
        assert_eq!(kept.kept().await, vec![(n_idx, v6)]);
        // The announcer is killed: nothing refreshes any more, nothing is removed.
        drop(kept);
    });
    assert!(!has(v4), "released address still there");
    std::thread::sleep(Duration::from_millis(1200));
    assert!(!has(v4), "a refresh brought a released address back");

    // The window: from the last refresh (an add with the lifetime, now), the kernel deletes each
    // address between the lifetime and a little after (its timers run in whole seconds).
    for ip in [v4, v6] {
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        let added = node.wait(async move {
            RtNetlink::new().unwrap().add_address(n_idx, ip, prefix, Some(lifetime)).await.unwrap();
            Instant::now()
        });
        std::thread::sleep(
            (added + lifetime - Duration::from_millis(250)).saturating_duration_since(Instant::now()),
        );
        assert!(has(ip), "{ip} gone before its lifetime ran out ({:?})", added.elapsed());
        let gone = wait_gone(&lab.node, "eth0", ip, Duration::from_secs(3)).map(|t| t - added);
        eprintln!("MEASURED: {ip} with lifetime {lifetime:?}, not refreshed, gone after {gone:?}");
        let gone =
            gone.unwrap_or_else(|| panic!("{ip} still there {:?} after its last refresh", added.elapsed()));
        assert!(
            gone >= lifetime - Duration::from_millis(50) && gone <= lifetime + Duration::from_millis(1500),
            "{gone:?}"
        );
    }
}

#[test]
fn refreshing_netlink_address_lifetimes_costs_one_request_per_address() {
    let lab = Lab::new();
    let (n_idx, _) = lab.node.link("eth0");
    let node = lab.node.runtime();
    let v4: Vec<IpAddr> = (1..=250u8).map(|i| IpAddr::V4(Ipv4Addr::new(203, 0, 113, i))).collect();
    let v6: Vec<IpAddr> = distinct_group_addresses(500).into_iter().map(IpAddr::V6).collect();
    let (v4_round, v6_round, lifetime) = node.wait(async move {
        let nl = Arc::new(RtNetlink::new().unwrap());
        let round = |ips: Vec<IpAddr>| {
            let nl = nl.clone();
            async move {
                let kept = ExpiringAddresses::new(nl, Some(Duration::from_secs(3)));
                for ip in &ips {
                    kept.add(n_idx, *ip, if ip.is_ipv4() { 32 } else { 128 }).await.unwrap();
                }
                let start = Instant::now();
                assert_eq!(kept.refresh().await, 0, "no refresh failed");
                let took = start.elapsed();
                for ip in &ips {
                    kept.remove(n_idx, *ip).await.unwrap();
                }
                (took, kept.lifetime())
            }
        };
        let (v4_round, _) = round(v4).await;
        let (v6_round, lifetime) = round(v6).await;
        (v4_round, v6_round, lifetime)
    });
    eprintln!(
        "MEASURED: one refresh round of 250 IPv4 addresses took {v4_round:?}, of 500 IPv6 addresses {v6_round:?} (lifetime written next: {lifetime:?})"
    );
    assert!(lab.node.addresses("eth0").iter().all(|a| a.starts_with("fe80")), "all removed");
}
