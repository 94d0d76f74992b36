//! The datapath against the kernel, each test in network namespaces of its own (see `netns/`):
//! a "node" namespace running the responder and a "client" namespace asking, joined by veth
//! pairs. Addresses are from 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32 only; nothing is
//! sent from the root namespace, and every wait is bounded.

mod netns;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ferrolb_l2announcer::datapath::frame::{self, Observed};
use ferrolb_l2announcer::datapath::netlink::{Link, LinkEvent, Netlink, RtNetlink};
use ferrolb_l2announcer::datapath::{AnnounceSchedule, Mac, PacketSocket, Responder};
use ferrolb_l2announcer::interface::InterfaceKind;
use netns::{Lab, NsRuntime, wait_for};

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
    rt.run(async move {
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
    client.run(async {
        UdpSocket::bind((CLIENT_IP, 0)).unwrap().send_to(b"x", (VIP, 9)).unwrap();
    });
    let learned = wait_for(ANSWER, || lab.client.neighbour("eth0", &VIP.to_string()));
    assert_eq!(learned, Some(n_mac.to_string()), "client neighbour table");

    // A raw request: the reply follows RFC 826, unicast to the asker.
    let got = client.run(async move {
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
    let got = client.run(async move {
        exchange(c_idx, Some(frame::arp_request(c_mac, CLIENT_IP, VIP2)), SILENCE, 1, arp_reply_for(VIP2))
            .await
    });
    assert!(got.is_empty(), "{got:?}");

    // Released: silence too.
    assert!(r.release(n_idx, VIP.into()));
    let got = client.run(async move {
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

    let on_eth1 = client.run(async move {
        exchange(c1, Some(frame::arp_request(c1_mac, CLIENT_IP, VIP)), SILENCE, 1, arp_reply_for(VIP)).await
    });
    assert!(on_eth1.is_empty(), "answered on an unselected interface: {on_eth1:?}");
    let other_link = client.run(async move {
        exchange(c0, Some(frame::arp_request(c0_mac, CLIENT_IP, VIP2)), SILENCE, 1, arp_reply_for(VIP2)).await
    });
    assert!(other_link.is_empty(), "answered for an address held on another link: {other_link:?}");
    let on_eth0 = client.run(async move {
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
        let got = client.run(async move { exchange(c_idx, Some(ns), ANSWER, 1, na_for(vip6())).await });
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
    let got = client.run(async move { exchange(c_idx, Some(dad), ANSWER, 1, na_for(vip6())).await });
    let [Observed::Na { ip_dst, eth_dst, solicited, override_, .. }] = got.as_slice() else {
        panic!("{got:?}")
    };
    assert_eq!(
        (*ip_dst, *eth_dst, *solicited, *override_),
        (frame::ALL_NODES, Mac([0x33, 0x33, 0, 0, 0, 1]), false, true)
    );

    // The client kernel resolves the address through the responder.
    client.run(async {
        UdpSocket::bind((client6(), 0)).unwrap().send_to(b"x", (vip6(), 9)).unwrap();
    });
    let learned = wait_for(ANSWER, || lab.client.neighbour("eth0", &vip6().to_string()));
    assert_eq!(learned, Some(n_mac.to_string()), "client neighbour table");

    // Released: the group is left and solicitations go unanswered.
    r.release(n_idx, vip6().into());
    assert!(!lab.node.ip(&["maddr", "show", "dev", "eth0"]).contains(group), "left {group}");
    let ns = frame::neighbor_solicitation(c_mac, client6(), vip6(), true);
    let got = client.run(async move { exchange(c_idx, Some(ns), SILENCE, 1, na_for(vip6())).await });
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
    node.run(async move {
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
    node.run(async move {
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
    let got = client.run(async move { exchange(c_idx, Some(tagged), SILENCE, 1, arp_reply_for(VIP)).await });
    assert!(got.is_empty(), "answered a VLAN-tagged request on the parent: {got:?}");
    let got = client.run(async move { exchange(c_idx, Some(untagged), ANSWER, 1, arp_reply_for(VIP)).await });
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
    node.run({
        let r = r.clone();
        async move { r.attach(nv_idx, nv_mac).unwrap() }
    });
    r.hold(nv_idx, vip3.into());
    let got = client.run(async move {
        exchange(cv_idx, Some(frame::arp_request(cv_mac, asker, vip3)), ANSWER, 1, arp_reply_for(vip3)).await
    });
    assert_eq!(got.len(), 1, "answered on the VLAN sub-interface");
    // The parent's VIP is not answered on the VLAN (watch the whole wire on the client's parent).
    let got = client.run(async move {
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
    client.run(async move {
        let tx = PacketSocket::sender(c_idx).unwrap();
        for f in malformed {
            tx.send(&f).await.unwrap();
        }
    });
    let counted = wait_for(ANSWER, || (r.counters().malformed >= count).then(|| r.counters().malformed));
    assert_eq!(counted, Some(count), "{:?}", r.counters());
    // Still answering.
    let got = client.run(async move { exchange(c_idx, Some(request), ANSWER, 1, arp_reply_for(VIP)).await });
    assert_eq!(got.len(), 1);
    let got = client.run(async move { exchange(c_idx, Some(ns), ANSWER, 1, na_for(vip6())).await });
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

    let links: Vec<Link> = node.run(async { RtNetlink::new().unwrap().links().await.unwrap() });
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
    let listed = node.run(async move {
        let nl = RtNetlink::new().unwrap();
        nl.add_address(n_idx, v4, 32).await.unwrap();
        nl.add_address(n_idx, v4, 32).await.expect("adding twice is fine");
        nl.add_address(n_idx, v6, 128).await.unwrap();
        nl.addresses(n_idx).await.unwrap()
    });
    assert!(listed.contains(&(v4, 32)) && listed.contains(&(v6, 128)), "{listed:?}");
    let addrs = lab.node.addresses("eth0");
    assert!(
        addrs.contains(&"203.0.113.10/32".into()) && addrs.contains(&"2001:db8:100::1000/128".into()),
        "{addrs:?}"
    );
    node.run(async move {
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
    let mut events = node.run(async { RtNetlink::new().unwrap().watch_links().unwrap() });
    lab.node.ip(&["link", "set", "eth0", "down"]);
    let down = node.run(async move {
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
