use super::*;
use crate::codec::{RouteRefresh, Update};
use proptest::prelude::*;

const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const NODE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);

fn config() -> PeerConfig {
    PeerConfig::new(65001, 65000, NODE)
}

fn peer_open(asn: u32, hold: u16) -> Message {
    Message::Open(Open::new(
        asn,
        hold,
        ROUTER,
        vec![Capability::Multiprotocol(Family::IPV4_UNICAST), Capability::RouteRefresh],
    ))
}

fn sent(actions: &[Action]) -> Vec<&Message> {
    actions.iter().filter_map(|a| if let Action::Send(m) = a { Some(m) } else { None }).collect()
}

/// Drives a session to Established at `t0`; returns it.
fn established(t0: Instant) -> Session {
    let mut s = Session::new(config());
    s.handle(t0, Event::Start);
    s.handle(t0, Event::TcpConnected);
    s.handle(t0, Event::Received(peer_open(65000, 180)));
    let actions = s.handle(t0, Event::Received(Message::Keepalive));
    assert!(actions.iter().any(|a| matches!(a, Action::SessionUp(_))));
    s
}

#[test]
fn reaches_established_with_the_smaller_hold_time() {
    let t0 = Instant::now();
    let mut s = Session::new(config());
    let a = s.handle(t0, Event::Start);
    assert_eq!(
        a,
        vec![Action::Connect, Action::StartTimer(Timer::ConnectRetry, t0 + Duration::from_secs(5))]
    );
    let a = s.handle(t0, Event::TcpConnected);
    let msgs = sent(&a);
    let [Message::Open(open)] = msgs[..] else { panic!("{a:?}") };
    assert_eq!((open.asn(), open.hold_time, open.router_id), (65001, 9, NODE));
    assert_eq!(open.families(), vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
    assert!(!open.capabilities.iter().any(|c| matches!(c, Capability::GracefulRestart(_))));
    assert_eq!(s.state(), State::OpenSent);

    let a = s.handle(t0, Event::Received(peer_open(65000, 180)));
    assert_eq!(sent(&a), vec![&Message::Keepalive]);
    assert_eq!(s.state(), State::OpenConfirm);
    let n = s.negotiated().unwrap();
    assert_eq!((n.hold_time, n.keepalive), (Duration::from_secs(9), Duration::from_secs(3)));
    assert_eq!(n.families, vec![Family::IPV4_UNICAST]);
    assert!(n.route_refresh);

    let a = s.handle(t0, Event::Received(Message::Keepalive));
    assert_eq!(s.state(), State::Established);
    assert!(a.contains(&Action::StartTimer(Timer::Hold, t0 + Duration::from_secs(9))));
}

#[test]
fn a_short_peer_hold_time_shortens_keepalives() {
    let t0 = Instant::now();
    let mut s = Session::new(config());
    s.handle(t0, Event::Start);
    s.handle(t0, Event::TcpConnected);
    s.handle(t0, Event::Received(peer_open(65000, 3)));
    let n = s.negotiated().unwrap();
    assert_eq!((n.hold_time, n.keepalive), (Duration::from_secs(3), Duration::from_secs(1)));
}

#[test]
fn hold_time_zero_means_no_timers() {
    let t0 = Instant::now();
    let mut s = Session::new(config());
    s.handle(t0, Event::Start);
    s.handle(t0, Event::TcpConnected);
    s.handle(t0, Event::Received(peer_open(65000, 0)));
    s.handle(t0, Event::Received(Message::Keepalive));
    assert_eq!(s.state(), State::Established);
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn wrong_peer_as_is_refused_with_bad_peer_as() {
    let t0 = Instant::now();
    let mut s = Session::new(config());
    s.handle(t0, Event::Start);
    s.handle(t0, Event::TcpConnected);
    let a = s.handle(t0, Event::Received(peer_open(65099, 180)));
    assert_eq!(sent(&a), vec![&Message::Notification(Notification::new(2, 2))]);
    assert!(a.contains(&Action::Close));
    assert!(!a.iter().any(|a| matches!(a, Action::SessionDown(_))), "never up, so never down");
    assert_eq!(s.state(), State::Idle);
    assert_eq!(s.deadline(Timer::ConnectRetry), Some(t0 + Duration::from_secs(5)));
}

#[test]
fn open_errors() {
    let t0 = Instant::now();
    let check = |open: Message, want: Notification| {
        let mut s = Session::new(config());
        s.handle(t0, Event::Start);
        s.handle(t0, Event::TcpConnected);
        let a = s.handle(t0, Event::Received(open));
        assert_eq!(sent(&a), vec![&Message::Notification(want)]);
    };
    check(peer_open(65000, 2), Notification::new(2, 6));
    let Message::Open(mut no_as4) = peer_open(65000, 90) else { unreachable!() };
    no_as4.capabilities.retain(|c| !matches!(c, Capability::FourOctetAs(_)));
    check(Message::Open(no_as4), Notification { code: 2, subcode: 7, data: vec![65, 4, 0, 0, 0xfd, 0xe9] });
    let Message::Open(mut zero_id) = peer_open(65000, 90) else { unreachable!() };
    zero_id.router_id = Ipv4Addr::UNSPECIFIED;
    check(Message::Open(zero_id), Notification::new(2, 3));
    let Message::Open(mut l2vpn) = peer_open(65000, 90) else { unreachable!() };
    l2vpn.capabilities =
        vec![Capability::Multiprotocol(Family { afi: 25, safi: 65 }), Capability::FourOctetAs(65000)];
    check(
        Message::Open(l2vpn),
        Notification { code: 2, subcode: 7, data: vec![1, 4, 0, 1, 0, 1, 1, 4, 0, 2, 0, 1] },
    );
    check(Message::Keepalive, Notification::new(5, 1));
}

#[test]
fn ibgp_refuses_our_own_router_id() {
    let t0 = Instant::now();
    let mut s = Session::new(PeerConfig::new(65000, 65000, ROUTER));
    s.handle(t0, Event::Start);
    s.handle(t0, Event::TcpConnected);
    let a = s.handle(t0, Event::Received(peer_open(65000, 90)));
    assert_eq!(sent(&a), vec![&Message::Notification(Notification::new(2, 3))]);
}

#[test]
fn keepalives_every_three_seconds_and_hold_expiry() {
    let t0 = Instant::now();
    let mut s = established(t0);
    let t3 = t0 + Duration::from_secs(3);
    assert_eq!(
        s.handle(t3 - Duration::from_millis(1), Event::TimerExpired(Timer::Keepalive)),
        vec![],
        "not yet due"
    );
    let a = s.handle(t3, Event::TimerExpired(Timer::Keepalive));
    assert_eq!(sent(&a), vec![&Message::Keepalive]);
    assert_eq!(s.deadline(Timer::Keepalive), Some(t3 + Duration::from_secs(3)));
    // A message at 5 s pushes the hold deadline to 14 s: the expiry reported for 9 s is stale.
    s.handle(t0 + Duration::from_secs(5), Event::Received(Message::Update(Update::default())));
    assert_eq!(s.handle(t0 + Duration::from_secs(9), Event::TimerExpired(Timer::Hold)), vec![]);
    let a = s.handle(t0 + Duration::from_secs(14), Event::TimerExpired(Timer::Hold));
    assert_eq!(sent(&a), vec![&Message::Notification(Notification::new(4, 0))]);
    assert!(a.contains(&Action::SessionDown(DownReason::HoldTimerExpired)));
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn failed_connects_retry_at_the_connect_retry_time() {
    let mut t = Instant::now();
    let mut s = Session::new(config());
    s.handle(t, Event::Start);
    let mut delays = vec![];
    for i in 0..6 {
        if i % 2 == 0 {
            s.handle(t, Event::TcpFailed);
        } else {
            // No answer within connect-retry: given up, tried again after connect-retry.
            t += Duration::from_secs(5);
            assert_eq!(s.handle(t, Event::TimerExpired(Timer::ConnectRetry))[0], Action::Close);
        }
        assert_eq!(s.state(), State::Active);
        let d = s.deadline(Timer::ConnectRetry).unwrap();
        delays.push((d - t).as_secs());
        t = d;
        assert_eq!(s.handle(t, Event::TimerExpired(Timer::ConnectRetry))[0], Action::Connect);
    }
    // A link that comes back is found at the next attempt, never a back-off later.
    assert_eq!(delays, vec![5; 6]);
}

#[test]
fn session_failures_back_off_and_reset_when_established() {
    let mut t = Instant::now();
    let mut s = Session::new(config());
    s.handle(t, Event::Start);
    let mut delays = vec![];
    for _ in 0..6 {
        // The peer accepts and closes before OPEN (e.g. it has no neighbour for us).
        s.handle(t, Event::TcpConnected);
        s.handle(t, Event::TcpClosed);
        assert_eq!(s.state(), State::Idle);
        let d = s.deadline(Timer::ConnectRetry).unwrap();
        delays.push((d - t).as_secs());
        t = d;
        assert_eq!(s.handle(t, Event::TimerExpired(Timer::ConnectRetry))[0], Action::Connect);
    }
    assert_eq!(delays, vec![5, 10, 20, 40, 60, 60]);
    s.handle(t, Event::TcpConnected);
    s.handle(t, Event::Received(peer_open(65000, 90)));
    s.handle(t, Event::Received(Message::Keepalive));
    s.handle(t, Event::TcpClosed);
    assert_eq!(s.deadline(Timer::ConnectRetry), Some(t + Duration::from_secs(5)));
}

#[test]
fn a_connect_attempt_that_hangs_is_abandoned() {
    let t0 = Instant::now();
    let mut s = Session::new(config());
    s.handle(t0, Event::Start);
    let a = s.handle(t0 + Duration::from_secs(5), Event::TimerExpired(Timer::ConnectRetry));
    assert_eq!(a[0], Action::Close);
    assert_eq!(s.state(), State::Active);
}

#[test]
fn planned_stop_sends_cease_and_stays_down() {
    let t0 = Instant::now();
    let mut s = established(t0);
    let a = s.handle(t0, Event::Stop("node draining".into()));
    assert_eq!(
        sent(&a),
        vec![&Message::Notification(Notification::administrative_shutdown("node draining"))]
    );
    assert!(a.contains(&Action::SessionDown(DownReason::Stopped)));
    assert_eq!(s.next_deadline(), None);
    assert_eq!(s.handle(t0 + Duration::from_secs(60), Event::TimerExpired(Timer::ConnectRetry)), vec![]);
    assert_eq!(s.handle(t0, Event::Start)[0], Action::Connect);
}

#[test]
fn bfd_down_tears_the_session_down_at_once() {
    let t0 = Instant::now();
    let mut s = established(t0);
    let a = s.handle(t0, Event::BfdDown);
    assert_eq!(sent(&a), vec![&Message::Notification(Notification::new(6, 10))]);
    assert!(a.contains(&Action::SessionDown(DownReason::BfdDown)));
}

#[test]
fn peer_updates_are_ignored_even_malformed() {
    let t0 = Instant::now();
    let mut s = established(t0);
    let a = s.handle(t0, Event::Malformed(DecodeError::InvalidOrigin(7)));
    assert!(sent(&a).is_empty());
    assert_eq!(s.state(), State::Established);
    let a = s.handle(t0, Event::Malformed(DecodeError::BadMarker));
    assert_eq!(sent(&a), vec![&Message::Notification(Notification::new(1, 1))]);
}

#[test]
fn route_refresh_for_a_negotiated_family_asks_for_the_routes() {
    let t0 = Instant::now();
    let mut s = established(t0);
    let rr = |family| Event::Received(Message::RouteRefresh(RouteRefresh { family, subtype: 0 }));
    assert!(s.handle(t0, rr(Family::IPV4_UNICAST)).contains(&Action::RouteRefresh(Family::IPV4_UNICAST)));
    assert!(!s.handle(t0, rr(Family::IPV6_UNICAST)).iter().any(|a| matches!(a, Action::RouteRefresh(_))));
}

#[test]
fn config_validation() {
    assert_eq!(config().validate(), Ok(()));
    let bad = PeerConfig { hold_time: Duration::from_secs(2), ..config() };
    assert!(matches!(bad.validate(), Err(ConfigError::HoldTime(_))));
    let bad = PeerConfig { keepalive: Duration::from_secs(4), ..config() };
    assert!(matches!(bad.validate(), Err(ConfigError::Keepalive { .. })));
}

// ---- property test: invariants over arbitrary event sequences ----

#[derive(Debug, Clone)]
enum Input {
    Start,
    Stop,
    TcpConnected,
    TcpFailed,
    TcpClosed,
    Receive(Message),
    Malformed(DecodeError),
    Timer(Timer),
    BfdDown,
    Wait(u64),
}

fn input() -> impl Strategy<Value = Input> {
    let message = prop_oneof![
        (
            prop_oneof![Just(65000u32), Just(65099)],
            prop_oneof![Just(0u16), Just(2), Just(3), Just(9), Just(180)]
        )
            .prop_map(|(asn, hold)| peer_open(asn, hold)),
        Just(Message::Keepalive),
        Just(Message::Update(Update::default())),
        Just(Message::Notification(Notification::new(6, 2))),
        Just(Message::RouteRefresh(RouteRefresh { family: Family::IPV4_UNICAST, subtype: 0 })),
    ];
    prop_oneof![
        1 => Just(Input::Start),
        1 => Just(Input::Stop),
        3 => Just(Input::TcpConnected),
        1 => Just(Input::TcpFailed),
        1 => Just(Input::TcpClosed),
        6 => message.prop_map(Input::Receive),
        1 => prop_oneof![Just(DecodeError::BadMarker), Just(DecodeError::MalformedAsPath)].prop_map(Input::Malformed),
        3 => prop_oneof![Just(Timer::ConnectRetry), Just(Timer::Hold), Just(Timer::Keepalive)].prop_map(Input::Timer),
        1 => Just(Input::BfdDown),
        3 => (0u64..20_000).prop_map(Input::Wait),
    ]
}

proptest! {
    /// Whatever happens, in any order: the session is Established exactly between a SessionUp and
    /// a SessionDown; messages go only on a connection that is up; Connect is asked only with no
    /// connection open or opening; nothing connects between Stop and Start; timer deadlines are
    /// never in the past and are the ones the session reports; negotiated timers are sane.
    #[test]
    fn session_invariants(inputs in prop::collection::vec(input(), 1..80)) {
        let cfg = config();
        let mut s = Session::new(cfg.clone());
        let mut now = Instant::now();
        let (mut up, mut connecting, mut connected, mut started) = (false, false, false, false);
        // The timers as the adapter sees them, from the actions alone.
        let mut armed: [Option<Instant>; 3] = [None; 3];
        for inp in inputs {
            // The adapter only reports what can happen: a connection result while one is being
            // opened, messages and closes while one is up, and timers when they are due.
            let event = match inp {
                Input::Start => Event::Start,
                Input::Stop => Event::Stop("bye".into()),
                Input::TcpConnected if connecting => Event::TcpConnected,
                Input::TcpFailed if connecting => Event::TcpFailed,
                Input::TcpClosed if connected => Event::TcpClosed,
                Input::Receive(m) if connected => Event::Received(m),
                Input::Malformed(e) if connected => Event::Malformed(e),
                Input::BfdDown => Event::BfdDown,
                Input::Timer(t) => match s.deadline(t) {
                    Some(d) => {
                        now = now.max(d);
                        // A timer that fired is no longer armed, for the adapter as for the session.
                        armed[t.index()] = None;
                        Event::TimerExpired(t)
                    }
                    None => continue,
                },
                Input::Wait(ms) => {
                    now += Duration::from_millis(ms);
                    continue;
                }
                _ => continue,
            };
            match &event {
                Event::Start => started = true,
                Event::Stop(_) => started = false,
                Event::TcpConnected => (connecting, connected) = (false, true),
                Event::TcpFailed => connecting = false,
                Event::TcpClosed => connected = false,
                _ => {}
            }
            for a in s.handle(now, event) {
                match a {
                    Action::Connect => {
                        prop_assert!(started, "Connect while stopped");
                        prop_assert!(!connecting && !connected, "Connect with a connection open");
                        connecting = true;
                    }
                    Action::Send(_) => prop_assert!(connected, "Send without a connection"),
                    Action::Close => (connecting, connected) = (false, false),
                    Action::StartTimer(t, d) => {
                        prop_assert!(d >= now);
                        armed[t.index()] = Some(d);
                        if t == Timer::ConnectRetry {
                            prop_assert!(d - now <= cfg.connect_retry_max);
                        }
                    }
                    Action::StopTimer(t) => armed[t.index()] = None,
                    Action::SessionUp(n) => {
                        prop_assert!(!up);
                        up = true;
                        prop_assert!(n.hold_time.is_zero() || (n.hold_time >= Duration::from_secs(3) && n.hold_time <= cfg.hold_time));
                        prop_assert!(n.keepalive * 3 <= n.hold_time);
                    }
                    Action::SessionDown(_) => {
                        prop_assert!(up);
                        up = false;
                    }
                    Action::RouteRefresh(_) => prop_assert!(up),
                }
            }
            for t in Timer::ALL {
                prop_assert_eq!(armed[t.index()], s.deadline(t), "the adapter's timers differ for {:?}", t);
            }
            prop_assert_eq!(up, s.state() == State::Established);
            prop_assert_eq!(connected, matches!(s.state(), State::OpenSent | State::OpenConfirm | State::Established));
            prop_assert_eq!(connecting, s.state() == State::Connect);
            if !started {
                prop_assert_eq!(s.deadline(Timer::ConnectRetry), None);
            }
        }
    }
}
