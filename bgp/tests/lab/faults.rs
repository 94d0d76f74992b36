//! Fault scenarios run against each router (FRR and BIRD): the router process dying and coming
//! back, TCP MD5 passwords that do not match, and a peer whose settings are unusable next to one
//! that works. Each asserts what the router holds, not only what the speaker reports.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_bgp::fsm::{ConfigError, PeerConfig, State};
use ferrolb_bgp::rib::RouteAttrs;
use ferrolb_bgp::speaker::SpeakerError;

use super::netns::Netns;
use super::{
    NODE1, NODE2, NODE3, PASSWORD, ROUTER, Speaker, peer_config, run_peer_for, start_speaker, table,
    transport, wait_for,
};

/// What the scenarios need from a router under test.
pub trait Router {
    /// The IPv4 and IPv6 prefixes the router holds from `node`, or None while its session with
    /// `node` is not Established.
    fn prefixes(&self, node: Ipv4Addr) -> Option<(u64, u64)>;
    /// The router's log, shown when a wait fails.
    fn log(&self) -> String;
    /// Kills the router process (SIGKILL: no NOTIFICATION, the kernel closes its sockets).
    fn kill(&mut self);
    /// Starts the router process again with the same configuration.
    fn restart(&mut self);
}

/// The router dies while both sessions are Established and comes back: both sessions come back
/// by themselves and the router holds every prefix again. Returns the time from the router's
/// start to every prefix being in its table.
pub fn router_restart(router: &mut impl Router, node: &Netns) -> Duration {
    let attrs = Arc::new(RouteAttrs::default());
    let (v4, v6) = (100, 500);
    let routes = table(v4, v6, &attrs);
    let s1 = start_speaker(node, NODE1, Some(PASSWORD), Arc::clone(&routes), None);
    let s2 = start_speaker(node, NODE2, None, routes, None);
    let want = Some((u64::from(v4), u64::from(v6)));
    wait_for(
        Duration::from_secs(30),
        "both sessions up with every prefix",
        || router.log(),
        || [NODE1, NODE2].iter().all(|n| router.prefixes(*n) == want),
    );

    router.kill();
    wait_for(
        Duration::from_secs(15),
        "both speakers see the session end",
        || router.log(),
        || [&s1, &s2].iter().all(|s| s.status.borrow().state != State::Established),
    );
    for s in [&s1, &s2] {
        let st = s.status.borrow().clone();
        assert_eq!(st.established_count, 1, "{st:?}");
        assert!(st.last_error.is_some(), "no reason for the session's end: {st:?}");
    }

    let started = Instant::now();
    router.restart();
    wait_for(
        Duration::from_secs(90),
        "both sessions back with every prefix after the restart",
        || router.log(),
        || [NODE1, NODE2].iter().all(|n| router.prefixes(*n) == want),
    );
    let took = started.elapsed();
    for s in [&s1, &s2] {
        let st = s.status.borrow().clone();
        assert_eq!((st.state, st.established_count), (State::Established, 2), "{st:?}");
        assert_eq!(st.routes_sent, (v4 + v6) as usize, "{st:?}");
        assert!(st.last_error.is_none(), "{st:?}");
    }
    stop(s1);
    stop(s2);
    took
}

/// TCP MD5 passwords that do not match: a wrong one, one only on our side, one only on the
/// router's. Linux drops such SYNs without an answer, so no session may come up within three
/// hold times, and each speaker's status must say that its connects went unanswered. Then the
/// right password on the third node brings it up, so the lab itself was not what failed.
pub fn md5_mismatch(router: &impl Router, node: &Netns) {
    let attrs = Arc::new(RouteAttrs::default());
    let routes = table(1, 1, &attrs);
    // The router has PASSWORD for nodes 1 and 3 and none for node 2.
    let wrong = start_speaker(node, NODE1, Some("not-the-password"), Arc::clone(&routes), None);
    let ours_only = start_speaker(node, NODE2, Some(PASSWORD), Arc::clone(&routes), None);
    let theirs_only = start_speaker(node, NODE3, None, Arc::clone(&routes), None);
    let cases = [
        ("wrong password", NODE1, &wrong),
        ("password only on the speaker", NODE2, &ours_only),
        ("password only on the router", NODE3, &theirs_only),
    ];
    let hold = peer_config(NODE1).hold_time;
    let end = Instant::now() + 3 * hold;
    while Instant::now() < end {
        for (what, n, s) in &cases {
            let st = s.status.borrow().clone();
            assert!(
                st.established_count == 0 && st.state != State::Established,
                "{what}: the session came up: {st:?}\nrouter log:\n{}",
                router.log()
            );
            assert_eq!(router.prefixes(*n), None, "{what}: the router has the session");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for (what, _, s) in &cases {
        // A router slow to start refuses the first connects outright ("connection refused"), so
        // give a later, unanswered one time to be the last error, but never a session.
        wait_for(
            Duration::from_secs(30),
            &format!("{what}: a connect timed out"),
            || format!("status {:?}\n{}", s.status.borrow(), router.log()),
            || {
                let st = s.status.borrow();
                assert_eq!(st.established_count, 0, "{what}: the session came up: {st:?}");
                st.last_error.as_deref().is_some_and(|e| e.starts_with("connect: no answer within"))
            },
        );
        let error = s.status.borrow().last_error.clone().unwrap_or_default();
        eprintln!("{what}: last_error = {error}");
        assert!(error.contains("MD5"), "{what}: last_error does not name the likely cause: {error}");
    }

    stop(theirs_only);
    let right = start_speaker(node, NODE3, Some(PASSWORD), routes, None);
    wait_for(
        Duration::from_secs(20),
        "node 3 up with the router's password",
        || router.log(),
        || router.prefixes(NODE3) == Some((1, 1)),
    );
    assert!(right.status.borrow().last_error.is_none());
    stop(right);
    stop(wrong);
    stop(ours_only);
}

/// Peer tasks with settings RFC 4271 or RFC 7607 forbid end at once with
/// [`SpeakerError::Config`], while a working session with the same router, from the same address,
/// stays up and keeps its prefixes. The same address matters: a bad task that got as far as
/// connecting would collide with the good session at the router.
pub fn config_error_leaves_others_alone(router: &impl Router, node: &Netns) {
    let attrs = Arc::new(RouteAttrs::default());
    let routes = table(10, 10, &attrs);
    let good = start_speaker(node, NODE2, None, Arc::clone(&routes), None);
    wait_for(
        Duration::from_secs(30),
        "node 2 up with its prefixes",
        || router.log(),
        || router.prefixes(NODE2) == Some((10, 10)),
    );
    let established = good.status.borrow().established_count;

    let base = peer_config(NODE2);
    let bad: [(&str, PeerConfig, ConfigError); 4] = [
        (
            "hold time 1 s",
            PeerConfig { hold_time: Duration::from_secs(1), ..base.clone() },
            ConfigError::HoldTime(Duration::from_secs(1)),
        ),
        (
            "hold time 2 s",
            PeerConfig { hold_time: Duration::from_secs(2), ..base.clone() },
            ConfigError::HoldTime(Duration::from_secs(2)),
        ),
        ("peer AS 0", PeerConfig { peer_as: 0, ..base.clone() }, ConfigError::ZeroAs),
        ("local AS 0", PeerConfig { local_as: 0, ..base }, ConfigError::ZeroAs),
    ];
    let router_addr = SocketAddr::new(IpAddr::V4(ROUTER), 179);
    for (what, config, want) in bad {
        let started = Instant::now();
        let result =
            run_peer_for(node, config, transport(NODE2, None), Arc::clone(&routes), Duration::from_secs(5));
        let took = started.elapsed();
        let err = match result {
            None => panic!("{what}: the peer task accepted the settings and was still running after 5 s"),
            Some(Ok(())) => panic!("{what}: the peer task returned Ok"),
            Some(Err(e)) => e,
        };
        eprintln!("{what}: run_peer returned after {took:?}: {err}");
        assert!(
            matches!(&err, SpeakerError::Config { peer, source } if *peer == router_addr && *source == want),
            "{what}: {err:?}"
        );
        assert!(err.to_string().starts_with(&format!("peer {router_addr}: ")), "{err}");
        assert!(took < Duration::from_secs(1), "{what}: took {took:?}");
    }

    // Three keepalive intervals: the good session neither flapped nor lost a prefix.
    let end = Instant::now() + Duration::from_secs(9);
    while Instant::now() < end {
        let st = good.status.borrow().clone();
        assert_eq!((st.state, st.established_count), (State::Established, established), "{st:?}");
        assert_eq!(router.prefixes(NODE2), Some((10, 10)), "router log:\n{}", router.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    stop(good);
}

/// A planned stop of `s`, waiting for its task.
fn stop(s: Speaker) {
    s.shutdown.send_replace(true);
    s.task.join().expect("speaker stopped");
}
