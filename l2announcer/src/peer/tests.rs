//! The peer channel over loopback (127.0.0.1, port 0): hubs hearing each other, refusing strangers,
//! takeover notices, silence, and the receiver's replay rule.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferrolb_proto::v1;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::auth::{self, Reject};
use super::*;

const INTERVAL: Duration = Duration::from_millis(50);
const SILENCE: Duration = Duration::from_millis(300);
/// Upper bound for anything a test waits for.
const WAIT: Duration = Duration::from_secs(3);

fn key(b: u8) -> PeerKey {
    PeerKey::from_bytes(&[b; 32]).unwrap()
}

struct TestHub {
    hub: PeerHub,
    events: mpsc::Receiver<PeerEvent>,
    stop: CancellationToken,
}

impl Drop for TestHub {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn hub(node: &str, key: Option<PeerKey>) -> TestHub {
    let mut cfg = PeerConfig::new(node, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
    cfg.interval = INTERVAL;
    cfg.silence = SILENCE;
    cfg.request_timeout = Duration::from_millis(300);
    cfg.key = key;
    let stop = CancellationToken::new();
    let (hub, events) = PeerHub::start(cfg, stop.clone()).await.unwrap();
    assert!(hub.local_addr().ip().is_loopback() && hub.local_addr().port() != 0);
    TestHub { hub, events, stop }
}

fn peers(list: &[(&str, &TestHub)]) -> BTreeMap<String, SocketAddr> {
    list.iter().map(|(n, h)| (n.to_string(), h.hub.local_addr())).collect()
}

/// The next event matching `want`, skipping others; panics after [`WAIT`].
async fn next_event(rx: &mut mpsc::Receiver<PeerEvent>, want: impl Fn(&PeerEvent) -> bool) -> PeerEvent {
    tokio::time::timeout(WAIT, async {
        loop {
            let e = rx.recv().await.expect("event channel closed");
            if want(&e) {
                return e;
            }
        }
    })
    .await
    .expect("no such event in time")
}

/// Waits until `cond` holds; panics after [`WAIT`].
/// One hub per name, each told of all the others, once every one is acknowledged by its monitors;
/// also the peer map they were given.
async fn mesh(names: &[&str]) -> (Vec<TestHub>, BTreeMap<String, SocketAddr>) {
    let mut hubs = Vec::new();
    for n in names {
        hubs.push(hub(n, Some(key(1))).await);
    }
    let all: BTreeMap<String, SocketAddr> =
        names.iter().zip(&hubs).map(|(n, h)| (n.to_string(), h.hub.local_addr())).collect();
    for h in &hubs {
        h.hub.set_peers(all.clone());
    }
    eventually("every hub acknowledged by its monitors", || {
        hubs.iter().all(|h| h.hub.acked_sends().len() == crate::liveness::MONITORS)
    })
    .await;
    (hubs, all)
}

async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn heard(node: &str) -> impl Fn(&PeerEvent) -> bool + '_ {
    move |e| matches!(e, PeerEvent::Heard { node: n } if n == node)
}

fn silent(node: &str) -> impl Fn(&PeerEvent) -> bool + '_ {
    move |e| matches!(e, PeerEvent::Silent { node: n } if n == node)
}

#[tokio::test]
async fn peers_with_the_same_key_hear_each_other() {
    let mut a = hub("a", Some(key(1))).await;
    let mut b = hub("b", Some(key(1))).await;
    assert_eq!(a.hub.cluster_size(), 1);
    a.hub.set_peers(peers(&[("b", &b)]));
    b.hub.set_peers(peers(&[("a", &a)]));
    assert_eq!((a.hub.cluster_size(), b.hub.cluster_size()), (2, 2));
    next_event(&mut a.events, heard("b")).await;
    next_event(&mut b.events, heard("a")).await;
    assert!(a.hub.heard_at("b").is_some() && b.hub.heard_at("a").is_some());
    assert!(a.hub.heard_at("c").is_none());
    eventually("acks and RTTs", || {
        a.hub.last_acked_send().is_some()
            && b.hub.last_acked_send().is_some()
            && a.hub.rtt("b").is_some()
            && b.hub.rtt("a").is_some()
    })
    .await;
    assert!(a.hub.rtt("b").unwrap() < Duration::from_millis(300));
    // Heard keeps being refreshed, acks keep coming.
    let (h0, s0) = (a.hub.heard_at("b").unwrap(), a.hub.last_acked_send().unwrap());
    eventually("fresh heartbeats", || {
        a.hub.heard_at("b").unwrap() > h0 && a.hub.last_acked_send().unwrap() > s0
    })
    .await;
    assert_eq!(a.hub.rejections(), Rejections::default());
    assert_eq!(b.hub.rejections(), Rejections::default());
    assert!(a.hub.refused_at("b").is_none());
    // No Silent while both run.
    while let Ok(e) = a.events.try_recv() {
        assert!(!matches!(e, PeerEvent::Silent { .. }), "{e:?}");
    }
}

/// Two hubs that must refuse each other: nobody is heard or acknowledged, and both count auth
/// rejections.
async fn refused(ka: Option<PeerKey>, kb: Option<PeerKey>) {
    let mut a = hub("a", ka).await;
    let mut b = hub("b", kb).await;
    a.hub.set_peers(peers(&[("b", &b)]));
    b.hub.set_peers(peers(&[("a", &a)]));
    eventually("rejections on both sides", || a.hub.rejections().auth >= 3 && b.hub.rejections().auth >= 3)
        .await;
    tokio::time::sleep(INTERVAL * 2).await;
    for h in [&mut a, &mut b] {
        assert_eq!(h.hub.rejections().replay, 0);
        assert!(h.hub.last_acked_send().is_none());
        assert!(h.hub.rtt("a").is_none() && h.hub.rtt("b").is_none());
        assert!(h.hub.heard_at("a").is_none() && h.hub.heard_at("b").is_none());
        assert!(h.events.try_recv().is_err(), "no event expected");
    }
}

#[tokio::test]
async fn a_different_key_is_refused_and_counted() {
    refused(Some(key(1)), Some(key(2))).await;
}

#[tokio::test]
async fn keyed_and_keyless_refuse_each_other() {
    refused(None, Some(key(1))).await;
}

#[tokio::test]
async fn keyless_peers_hear_each_other() {
    let mut a = hub("a", None).await;
    let b = hub("b", None).await;
    b.hub.set_peers(peers(&[("a", &a)]));
    next_event(&mut a.events, heard("b")).await;
    eventually("ack", || b.hub.last_acked_send().is_some()).await;
}

#[tokio::test]
async fn receiver_refuses_replays_reflections_and_misdirected_messages() {
    let a = hub("a", Some(key(1))).await;
    let inner = a.hub.inner();
    let k = key(1);
    let mut hb = v1::Heartbeat {
        node: "b".into(),
        epoch: 5,
        seq: 1,
        to: "a".into(),
        mac: Vec::new(),
        sent_at: 99,
        api_ok: true,
        silent: Vec::new(),
    };
    auth::sign(Some(&k), &mut hb);
    let now = Instant::now();
    let ack = inner.receive_heartbeat(&hb, now).unwrap();
    assert_eq!((ack.node.as_str(), ack.to.as_str()), ("a", "b"));
    assert_eq!((ack.heartbeat_epoch, ack.heartbeat_seq, ack.heartbeat_sent_at), (5, 1, 99));
    assert_eq!(ack.epoch, a.hub.epoch());
    assert_eq!(auth::verify(Some(&k), &ack), Ok(()));
    assert_eq!(a.hub.heard_at("b"), Some(now));
    // The very same message again.
    assert_eq!(inner.receive_heartbeat(&hb, now), Err(Reject::Replay("seq already accepted")));
    assert_eq!(a.hub.rejections(), Rejections { auth: 0, replay: 1 });
    // The next seq passes; a new epoch (the sender restarted) starts afresh.
    hb.seq = 2;
    auth::sign(Some(&k), &mut hb);
    assert!(inner.receive_heartbeat(&hb, now).is_ok());
    hb.epoch = 6;
    hb.seq = 1;
    auth::sign(Some(&k), &mut hb);
    assert!(inner.receive_heartbeat(&hb, now).is_ok());
    // Our own name as sender, another node as recipient.
    let mut own = v1::Heartbeat { node: "a".into(), seq: 3, to: "a".into(), ..hb.clone() };
    auth::sign(Some(&k), &mut own);
    assert!(matches!(inner.receive_heartbeat(&own, now), Err(Reject::Replay(_))));
    let mut other = v1::Heartbeat { to: "c".into(), seq: 4, ..hb.clone() };
    auth::sign(Some(&k), &mut other);
    assert!(matches!(inner.receive_heartbeat(&other, now), Err(Reject::Replay(_))));
    // Forged: counted as auth; the heard time does not move.
    let mut forged = v1::Heartbeat { seq: 5, ..hb.clone() };
    auth::sign(Some(&key(2)), &mut forged);
    assert!(matches!(inner.receive_heartbeat(&forged, now + SILENCE), Err(Reject::Auth(_))));
    assert_eq!(a.hub.rejections(), Rejections { auth: 1, replay: 3 });
    assert_eq!(a.hub.heard_at("b"), Some(now));
    // A heartbeat is no takeover notice, even with its MAC.
    let as_notice = v1::TakeoverNotice {
        node: hb.node.clone(),
        epoch: hb.epoch,
        seq: 9,
        to: hb.to.clone(),
        mac: hb.mac.clone(),
        ..Default::default()
    };
    assert_eq!(inner.receive_takeover(&as_notice).unwrap_err().code(), tonic::Code::Unauthenticated);
}

#[tokio::test]
async fn takeover_notice_is_delivered_with_every_field() {
    let a = hub("a", Some(key(7))).await;
    let mut b = hub("b", Some(key(7))).await;
    a.hub.set_peers(peers(&[("b", &b)]));
    for address in [
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 128)),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x1000)),
    ] {
        let t = Takeover {
            namespace: "shop".into(),
            service: "web".into(),
            address,
            new_holder: "a".into(),
            lease_resource_version: "4711".into(),
            replaced_resource_version: "0".into(),
        };
        a.hub.notify_takeover("b", t.clone());
        let got = next_event(&mut b.events, |e| matches!(e, PeerEvent::Takeover(_))).await;
        assert_eq!(got, PeerEvent::Takeover(t));
    }
    // Unknown peer: nothing sent, nothing breaks.
    a.hub.notify_takeover(
        "nobody",
        Takeover {
            namespace: "x".into(),
            service: "y".into(),
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            new_holder: "a".into(),
            lease_resource_version: "1".into(),
            replaced_resource_version: "0".into(),
        },
    );
    assert_eq!(b.hub.rejections(), Rejections::default());
}

#[tokio::test]
async fn takeover_naming_the_receiver_as_new_holder_is_no_event() {
    let mut a = hub("a", Some(key(7))).await;
    let inner = a.hub.inner().clone();
    let mut n = v1::TakeoverNotice {
        node: "b".into(),
        epoch: 1,
        seq: 1,
        to: "a".into(),
        mac: Vec::new(),
        service_namespace: "ns".into(),
        service_name: "svc".into(),
        address: "198.51.100.130".into(),
        new_holder: "a".into(),
        lease_resource_version: "3".into(),
        replaced_resource_version: "0".into(),
    };
    auth::sign(Some(&key(7)), &mut n);
    let ack = inner.receive_takeover(&n).unwrap();
    assert_eq!((ack.notice_epoch, ack.notice_seq, ack.to.as_str()), (1, 1, "b"));
    assert!(a.events.try_recv().is_err());
    // An unparsable address is an invalid argument.
    n.seq = 2;
    n.new_holder = "b".into();
    n.address = "not-an-ip".into();
    auth::sign(Some(&key(7)), &mut n);
    assert_eq!(inner.receive_takeover(&n).unwrap_err().code(), tonic::Code::InvalidArgument);
    assert!(a.events.try_recv().is_err());
}

#[tokio::test]
async fn a_stopped_peer_goes_silent() {
    let mut a = hub("a", Some(key(3))).await;
    let b = hub("b", Some(key(3))).await;
    a.hub.set_peers(peers(&[("b", &b)]));
    b.hub.set_peers(peers(&[("a", &a)]));
    next_event(&mut a.events, heard("b")).await;
    b.stop.cancel();
    next_event(&mut a.events, silent("b")).await;
    let last = a.hub.heard_at("b").unwrap();
    let late = last.elapsed();
    assert!(late >= SILENCE, "silent after {late:?}");
    // Detected within silence + one tick; the rest is scheduling slack on a busy machine.
    assert!(late <= SILENCE + INTERVAL + Duration::from_millis(200), "silent only after {late:?}");
    // Its port is closed now: refused since after it was last heard.
    eventually("refused connections", || a.hub.refused_at("b").is_some()).await;
    assert!(a.hub.refused_at("b").unwrap() > last);
    // Our heartbeats to the stopped peer are no longer acknowledged.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let acked = a.hub.last_acked_send().unwrap();
    assert!(acked.elapsed() >= Duration::from_millis(150), "acked {:?} ago", acked.elapsed());
}

#[tokio::test]
async fn removing_a_peer_stops_its_sender() {
    let a = hub("a", Some(key(4))).await;
    let mut b = hub("b", Some(key(4))).await;
    // Our own name is never a peer.
    a.hub.set_peers(peers(&[("b", &b), ("a", &a)]));
    assert!(a.hub.sender_running("b") && !a.hub.sender_running("a"));
    next_event(&mut b.events, heard("a")).await;
    a.hub.set_peers(BTreeMap::new());
    assert!(!a.hub.cluster_size() > 1 && !a.hub.sender_running("b"));
    next_event(&mut b.events, silent("a")).await;
    let last = b.hub.heard_at("a").unwrap();
    tokio::time::sleep(INTERVAL * 3).await;
    assert_eq!(b.hub.heard_at("a"), Some(last), "a still heartbeats b");
    // Re-adding starts it again; a changed address reconnects.
    a.hub.set_peers(peers(&[("b", &b)]));
    next_event(&mut b.events, heard("a")).await;
    let c = hub("c", Some(key(4))).await;
    a.hub.set_peers(BTreeMap::from([("b".to_string(), c.hub.local_addr())]));
    // "c" answers as another node: its acks are not taken as b's, and b stops hearing a.
    next_event(&mut b.events, silent("a")).await;
    assert!(a.hub.rtt("c").is_none());
}

#[test]
fn keys_from_files() {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = |name: &str| {
        std::env::temp_dir().join(format!(
            "ferrolb-peer-key-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    };
    let good = path("good");
    std::fs::write(&good, b"0123456789abcdef\n").unwrap();
    let k = PeerKey::from_file(&good).unwrap();
    // The newline is not part of the key.
    let mut m = v1::Heartbeat { node: "n".into(), seq: 1, ..Default::default() };
    auth::sign(Some(&k), &mut m);
    assert_eq!(auth::verify(Some(&PeerKey::from_bytes(b"0123456789abcdef").unwrap()), &m), Ok(()));
    assert!(format!("{k:?}").contains("redacted"));

    let short = path("short");
    std::fs::write(&short, b"0123456789abcde\n").unwrap();
    let e = PeerKey::from_file(&short).unwrap_err().to_string();
    assert!(e.contains(&short.display().to_string()) && e.contains("15 bytes"), "{e}");
    let empty = path("empty");
    std::fs::write(&empty, b"").unwrap();
    let e = PeerKey::from_file(&empty).unwrap_err().to_string();
    assert!(e.contains(&empty.display().to_string()) && e.contains("empty"), "{e}");
    let missing = path("missing");
    let e = PeerKey::from_file(&missing).unwrap_err().to_string();
    assert!(e.contains(&missing.display().to_string()), "{e}");
    for p in [good, short, empty] {
        let _ = std::fs::remove_file(p);
    }
    assert!(PeerKey::from_bytes(b"short").is_err());
}

#[tokio::test]
async fn bind_errors_name_the_address_and_configs_are_checked() {
    let a = hub("a", None).await;
    let mut cfg = PeerConfig::new("b", a.hub.local_addr());
    let e = PeerHub::start(cfg.clone(), CancellationToken::new()).await.unwrap_err().to_string();
    assert!(e.contains(&a.hub.local_addr().to_string()), "{e}");
    cfg.listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    cfg.interval = Duration::ZERO;
    assert!(matches!(PeerHub::start(cfg, CancellationToken::new()).await, Err(PeerError::Config(_))));
}

/// Three hubs: when one stops, each of the others hears the other report its silence, and both
/// find it silent for a majority about the silence timeout after its last heartbeat; the live one
/// never is. Acks from the majority vouch for each hub while everyone runs.
#[tokio::test]
async fn a_node_the_majority_does_not_hear_is_quorum_silent() {
    let mut a = hub("a", Some(key(1))).await;
    let b = hub("b", Some(key(1))).await;
    let c = hub("c", Some(key(1))).await;
    let all = peers(&[("a", &a), ("b", &b), ("c", &c)]);
    for h in [&a, &b, &c] {
        h.hub.set_peers(all.clone());
    }
    eventually("everyone heard and acknowledged", || {
        [&a, &b].iter().all(|h| h.hub.heard_at("c").is_some() && h.hub.acked_sends().len() == 2)
    })
    .await;
    let now = Instant::now();
    assert!(a.hub.quorum_silent_at("c", now).is_none_or(|t| t > now));
    let last_heard = a.hub.heard_at("c").unwrap().max(b.hub.heard_at("c").unwrap());
    c.stop.cancel();
    drop(c);
    next_event(&mut a.events, silent("c")).await;
    eventually("a majority silent on c", || {
        let now = Instant::now();
        [&a, &b].iter().all(|h| h.hub.quorum_silent_at("c", now).is_some_and(|t| t <= now))
    })
    .await;
    let at = a.hub.quorum_silent_at("c", Instant::now()).unwrap();
    // Never before the silence timeout after the last heartbeat either of them heard; at most a
    // report's delay (two intervals and a heartbeat) later.
    assert!(at >= last_heard + SILENCE - INTERVAL, "{:?}", at.duration_since(last_heard));
    assert!(at <= last_heard + SILENCE + INTERVAL * 4, "{:?}", at.duration_since(last_heard));
    let now = Instant::now();
    assert!(a.hub.quorum_silent_at("b", now).is_none_or(|t| t > now), "b is heard");
}

/// Seven hubs: each watches only its four monitors' worth of peers, yet when one stops, every other
/// one learns from the monitors' broadcast silences that a majority of its monitors no longer hears
/// it; the others stay heard by theirs.
#[tokio::test]
async fn with_more_peers_than_monitors_the_monitors_decide_and_tell_everyone() {
    let names = ["a", "b", "c", "d", "e", "f", "g"];
    // Each hub is vouched for by its monitors.
    let (mut hubs, all) = mesh(&names).await;
    let stopped = hubs.remove(3);
    assert_eq!(stopped.hub.local_addr(), all["d"]);
    drop(stopped);
    eventually("every other hub finds d silent for a majority of its monitors", || {
        let now = Instant::now();
        hubs.iter().all(|h| h.hub.quorum_silent_at("d", now).is_some_and(|t| t <= now))
    })
    .await;
    let now = Instant::now();
    for (n, h) in names.iter().filter(|n| **n != "d").zip(&hubs) {
        for other in names.iter().filter(|o| **o != "d" && *o != n) {
            assert!(h.hub.quorum_silent_at(other, now).is_none_or(|t| t > now), "{n} finds {other} silent");
        }
    }
}

/// Three hubs cut off from each other for longer than the silence timeout (every peer address
/// pointed at a socket that never answers), then reconnected, `c` last but within the timeout: the
/// outage is nobody's silence. `a` and `b`, back in touch with each other first, must not count the
/// time they heard nobody as `c`'s silence (that would take the address from a holder that never
/// stopped); they only start counting once a majority acknowledges them again.
#[tokio::test]
async fn an_outage_of_everyone_is_not_the_silence_of_the_last_one_back() {
    let a = hub("a", Some(key(1))).await;
    let b = hub("b", Some(key(1))).await;
    let c = hub("c", Some(key(1))).await;
    let all = peers(&[("a", &a), ("b", &b), ("c", &c)]);
    for h in [&a, &b, &c] {
        h.hub.set_peers(all.clone());
    }
    eventually("everyone acknowledged", || [&a, &b, &c].iter().all(|h| h.hub.acked_sends().len() == 2)).await;
    // Datagrams to these sockets are queued and never answered: no acks, no refusals.
    let holes: Vec<std::net::UdpSocket> =
        (0..3).map(|_| std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap()).collect();
    let cut: BTreeMap<String, SocketAddr> =
        ["a", "b", "c"].iter().zip(&holes).map(|(n, s)| (n.to_string(), s.local_addr().unwrap())).collect();
    for h in [&a, &b, &c] {
        h.hub.set_peers(cut.clone());
    }
    tokio::time::sleep(SILENCE * 3).await;
    let now = Instant::now();
    assert!(a.hub.heard_at("c").is_some_and(|t| now.duration_since(t) > SILENCE * 2));
    a.hub.set_peers(all.clone());
    b.hub.set_peers(all.clone());
    tokio::time::sleep(SILENCE / 2).await;
    c.hub.set_peers(all.clone());
    let until = Instant::now() + SILENCE * 3;
    while Instant::now() < until {
        let now = Instant::now();
        for (n, h) in [("a", &a), ("b", &b)] {
            assert!(
                h.hub.quorum_silent_at("c", now).is_none_or(|t| t > now),
                "{n} finds c silent for a majority right after the outage"
            );
        }
        tokio::time::sleep(INTERVAL / 5).await;
    }
    // And the counting resumed: c stopped now is found silent as before.
    let mut a = a;
    drop(c);
    next_event(&mut a.events, silent("c")).await;
    eventually("a majority silent on c", || {
        let now = Instant::now();
        a.hub.quorum_silent_at("c", now).is_some_and(|t| t <= now)
    })
    .await;
}

/// A member that joins the ring is expected to speak only from then on: its silence counts from the
/// join, not from when its new monitors began observing. (While a cluster's announcers start, the
/// ring changes with every joiner; counting from before the join made every monitor report its new
/// members silent at once and broadcast to everyone, which at a hundred nodes starved the machine.)
#[tokio::test]
async fn a_member_that_joins_is_silent_only_from_its_join() {
    let a = hub("a", Some(key(1))).await;
    let b = hub("b", Some(key(1))).await;
    let c = hub("c", Some(key(1))).await;
    // `d` exists but never sends: it never learns its peers.
    let d = hub("d", Some(key(1))).await;
    let three = peers(&[("a", &a), ("b", &b), ("c", &c)]);
    for h in [&a, &b, &c] {
        h.hub.set_peers(three.clone());
    }
    eventually("everyone heard and acknowledged", || {
        [&a, &b, &c].iter().all(|h| h.hub.acked_sends().len() == 2)
    })
    .await;
    // Well after everyone observes, `d` joins.
    tokio::time::sleep(SILENCE * 2).await;
    let four = peers(&[("a", &a), ("b", &b), ("c", &c), ("d", &d)]);
    let joined = Instant::now();
    for h in [&a, &b, &c] {
        h.hub.set_peers(four.clone());
    }
    eventually("a majority silent on d", || {
        let now = Instant::now();
        [&a, &b, &c].iter().all(|h| h.hub.quorum_silent_at("d", now).is_some_and(|t| t <= now))
    })
    .await;
    for h in [&a, &b, &c] {
        let at = h.hub.quorum_silent_at("d", Instant::now()).unwrap();
        assert!(at >= joined + SILENCE, "silent {:?} after the join", at.saturating_duration_since(joined));
    }
}

/// Ten hubs; `h`, one of `d`'s four monitors (`e`, `f`, `g`, `h`), stops hearing `d` while the
/// others still do. Its report goes to `d`'s other monitors (not all of them are its own monitors),
/// and to nobody else: a lone report can make no majority, and at a hundred nodes broadcasting it
/// cost 99 datagrams per interval. Nobody finds `d` silent for a majority.
#[tokio::test]
async fn a_lone_silence_report_goes_to_the_other_monitors_only() {
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    let (hubs, all) = mesh(&names).await;
    // `d`'s heartbeats to `h` now go to a socket that never answers.
    let hole = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let mut cut = all.clone();
    cut.insert("h".into(), hole.local_addr().unwrap());
    hubs[3].hub.set_peers(cut);
    let at = |n: &str| &hubs[names.iter().position(|x| *x == n).unwrap()].hub;
    // `e` is not one of `h`'s monitors (`i`, `j`, `a`, `b`): it hears the report only because it
    // monitors `d` too.
    eventually("e hears h report d silent", || at("e").reported_silent("h", "d")).await;
    let until = Instant::now() + INTERVAL * 6;
    while Instant::now() < until {
        assert!(at("c").heard_at("h").is_none(), "c, no monitor of d nor of h, heard h");
        let now = Instant::now();
        for n in names {
            assert!(at(n).quorum_silent_at("d", now).is_none_or(|t| t > now), "{n} finds d silent");
        }
        tokio::time::sleep(INTERVAL / 5).await;
    }
    assert!(at("f").reported_silent("h", "d") && at("g").reported_silent("h", "d"));
}

#[tokio::test]
async fn a_node_its_monitors_do_not_hear_discounts_its_own_observations_until_heard_again() {
    let names = ["a", "b", "c", "d", "e"];
    let (hubs, all) = mesh(&names).await;
    // `a`'s heartbeats to `b`, one of its monitors, go to a socket that never answers: `b` reports
    // `a` unheard in the heartbeats it sends `a`.
    let hole = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let mut cut = all.clone();
    cut.insert("b".into(), hole.local_addr().unwrap());
    hubs[0].hub.set_peers(cut);
    eventually("a's local health degraded", || hubs[0].hub.local_health() > 0).await;
    // Nobody reports the others: they keep trusting their own observations.
    for h in &hubs[1..] {
        assert_eq!(h.hub.local_health(), 0, "{:?}", h.hub);
    }
    hubs[0].hub.set_peers(all);
    eventually("a's local health recovered", || hubs[0].hub.local_health() == 0).await;
}
