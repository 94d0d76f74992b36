//! Fuzz-target bodies: everything the speaker reads from the network, from arbitrary bytes.
//!
//! Each target is a plain function over `&[u8]`, so a coverage-guided fuzzer (cargo-fuzz, outside
//! the workspace) and the smoke test under `cargo test` (`tests/fuzz_smoke.rs`) run the same code.
//! A target panics when an invariant fails, not only when a parser does:
//!
//! - [`bgp_stream`]: the bytes as a TCP stream from a router. Each framed message is decoded; a
//!   decoded message that re-encodes must decode to itself (decoding is canonical); and every
//!   message or decode error is fed to an Established session, which must not panic and must stay
//!   consistent (Established exactly while no SessionDown has been reported).
//! - [`bfd_packet`]: the bytes as one UDP payload. A decoded packet re-encodes to bytes that
//!   decode to it, and a session fed it, then time, only takes RFC 5880 §6.2 transitions.
//!
//! [`bgp_seeds`] and [`bfd_seeds`] are valid inputs to start from, named: `bgp/fuzz/seeds/` holds
//! them as files (the fuzzer's starting corpus), and the smoke test checks the files against them.

use std::net::Ipv4Addr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use crate::bfd::{BfdAction, BfdConfig, BfdSession, BfdState, ControlPacket};
use crate::codec::{
    AsSegment, Capability, Family, LargeCommunity, Message, MpReachV6, Notification, Open, Origin,
    PathAttribute, RouteRefresh, SegmentKind, Update, frame_len,
};
use crate::fsm::{Action, Event, PeerConfig, Session, State};

const PEER_AS: u32 = 65000;
const LOCAL_AS: u32 = 65001;

/// A session Established with a peer in AS 65000, and the time it got there.
fn established_session() -> (Session, Instant) {
    let now = Instant::now();
    let mut s = Session::new(PeerConfig::new(LOCAL_AS, PEER_AS, Ipv4Addr::new(198, 51, 100, 11)));
    s.handle(now, Event::Start);
    s.handle(now, Event::TcpConnected);
    s.handle(now, Event::Received(peer_open()));
    s.handle(now, Event::Received(Message::Keepalive));
    assert_eq!(s.state(), State::Established);
    (s, now)
}

fn peer_open() -> Message {
    Message::Open(Open::new(
        PEER_AS,
        90,
        Ipv4Addr::new(198, 51, 100, 1),
        vec![
            Capability::Multiprotocol(Family::IPV4_UNICAST),
            Capability::Multiprotocol(Family::IPV6_UNICAST),
            Capability::RouteRefresh,
        ],
    ))
}

/// Fuzz target: a byte stream from the peer (see the module documentation).
pub fn bgp_stream(data: &[u8]) {
    let (mut session, mut now) = established_session();
    let mut up = true;
    let mut rest = data;
    loop {
        let event = match frame_len(rest) {
            Ok(None) => break,
            Ok(Some(len)) => {
                let (msg, tail) = rest.split_at(len);
                rest = tail;
                match Message::decode(msg) {
                    Ok(m) => {
                        if let Ok(again) = m.encode() {
                            assert_eq!(Message::decode(&again).as_ref(), Ok(&m), "decoding is not canonical");
                        }
                        Event::Received(m)
                    }
                    Err(e) => Event::Malformed(e),
                }
            }
            Err(e) => {
                // A broken header ends the stream: the session would close the connection.
                rest = &[];
                Event::Malformed(e)
            }
        };
        now += Duration::from_millis(1);
        for action in session.handle(now, event) {
            match action {
                Action::SessionDown(_) => {
                    assert!(up, "SessionDown while not up");
                    up = false;
                }
                Action::SessionUp(_) => up = true,
                _ => {}
            }
        }
        assert_eq!(up, session.state() == State::Established);
    }
}

/// Fuzz target: one BFD control packet (see the module documentation).
pub fn bfd_packet(data: &[u8]) {
    let Ok(packet) = ControlPacket::decode(data) else { return };
    // Bytes past 24 without the A bit are allowed and ignored (RFC 5880 §6.8.6), so the
    // re-encoding may be shorter than the input, but must read back the same.
    assert_eq!(ControlPacket::decode(&packet.encode()).as_ref(), Ok(&packet), "re-encoding differs");
    let now = Instant::now();
    let discriminator = NonZeroU32::new(packet.your_discriminator).unwrap_or(NonZeroU32::MIN);
    let mut session = BfdSession::new(BfdConfig::default(), discriminator, now);
    let mut actions = session.on_packet(&packet, now);
    actions.extend(session.on_packet(&packet, now + Duration::from_millis(10)));
    actions.extend(session.poll(now + Duration::from_secs(30)));
    for a in actions {
        if let BfdAction::StateChanged { from, to, .. } = a {
            use BfdState::*;
            let ok = matches!(
                (from, to),
                (Down, Init)
                    | (Down, Up)
                    | (Init, Up)
                    | (Init, Down)
                    | (Up, Down)
                    | (_, AdminDown)
                    | (AdminDown, Down)
            );
            assert!(ok, "transition {from:?} -> {to:?}");
        }
    }
}

/// Valid streams for [`bgp_stream`]: an OPEN, keepalives, UPDATEs with every attribute the codec
/// knows, a ROUTE-REFRESH and a NOTIFICATION; each with its file name (without `.bin`).
pub fn bgp_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let update = Update {
        withdrawn: vec!["203.0.113.0/24".parse().expect("a prefix")],
        attributes: vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(vec![AsSegment {
                kind: SegmentKind::Sequence,
                asns: vec![PEER_AS, 4_200_000_000],
            }]),
            PathAttribute::NextHop(Ipv4Addr::new(198, 51, 100, 1)),
            PathAttribute::MultiExitDisc(10),
            PathAttribute::LocalPref(100),
            PathAttribute::Communities(vec![0xfde8_0001]),
            PathAttribute::MpReach(MpReachV6 {
                next_hop: "2001:db8:100::1".parse().expect("an address"),
                link_local: Some("fe80::1".parse().expect("an address")),
                nlri: vec!["2001:db8:200::/48".parse().expect("a prefix")],
            }),
            PathAttribute::LargeCommunities(vec![LargeCommunity { global: PEER_AS, local1: 1, local2: 2 }]),
            PathAttribute::Other { flags: 0xc0, type_code: 99, value: vec![1, 2, 3] },
        ],
        nlri: vec!["198.51.100.128/25".parse().expect("a prefix")],
    };
    let messages = [
        ("open-keepalive", vec![peer_open(), Message::Keepalive]),
        ("update-all-attributes", vec![Message::Update(update), Message::Keepalive]),
        (
            "end-of-rib-route-refresh",
            vec![
                Message::Update(Update::end_of_rib(Family::IPV6_UNICAST)),
                Message::RouteRefresh(RouteRefresh { family: Family::IPV4_UNICAST, subtype: 0 }),
            ],
        ),
        (
            "notification-shutdown",
            vec![Message::Notification(Notification::administrative_shutdown("maintenance"))],
        ),
    ];
    messages
        .iter()
        .map(|(name, stream)| {
            (*name, stream.iter().flat_map(|m| m.encode().expect("seed messages encode")).collect())
        })
        .collect()
}

/// Valid packets for [`bfd_packet`]: each state, with Poll and Final, with and without a
/// discriminator and an authentication section; each with its file name (without `.bin`).
pub fn bfd_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let base = ControlPacket {
        diag: 0,
        state: BfdState::Down,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 0x22,
        your_discriminator: 0,
        desired_min_tx: 1_000_000,
        required_min_rx: 100_000,
        required_min_echo_rx: 0,
        auth: None,
    };
    let mut out = vec![("down", base.encode())];
    for (name, state, poll, final_) in [
        ("init", BfdState::Init, false, false),
        ("up-poll", BfdState::Up, true, false),
        ("up-final", BfdState::Up, false, true),
        ("admin-down", BfdState::AdminDown, false, false),
    ] {
        out.push((
            name,
            ControlPacket { state, poll, final_, your_discriminator: 0x11, diag: 3, ..base.clone() }.encode(),
        ));
    }
    out.push((
        "down-simple-password",
        ControlPacket {
            auth: Some(crate::bfd::Auth { auth_type: 1, data: vec![1, b'k', b'e', b'y'] }),
            ..base
        }
        .encode(),
    ));
    out
}
