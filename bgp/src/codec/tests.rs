use super::*;
use proptest::prelude::*;

/// Hex without separators or with spaces, to write wire bytes as they appear in captures.
fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap()).collect()
}

const M: &str = "ffffffffffffffffffffffffffffffff";

#[test]
fn keepalive_is_a_bare_header() {
    let wire = hex(&format!("{M} 0013 04"));
    assert_eq!(Message::Keepalive.encode().unwrap(), wire);
    assert_eq!(Message::decode(&wire).unwrap(), Message::Keepalive);
}

#[test]
fn open_with_multiprotocol_and_four_octet_as() {
    // AS 65001, hold 9 s, identifier 198.51.100.11; one Capabilities parameter (type 2, 12 bytes):
    // MP IPv4 unicast (code 1: AFI 1, reserved, SAFI 1) and 4-octet AS (code 65: 65001).
    let wire = hex(&format!("{M} 002b 01  04 fde9 0009 c633640b 0e  02 0c 01 04 0001 00 01 41 04 0000fde9"));
    let open = Open::new(
        65001,
        9,
        Ipv4Addr::new(198, 51, 100, 11),
        vec![Capability::Multiprotocol(Family::IPV4_UNICAST)],
    );
    assert_eq!(Message::Open(open.clone()).encode().unwrap(), wire);
    let decoded = Message::decode(&wire).unwrap();
    assert_eq!(decoded, Message::Open(open));
}

#[test]
fn open_with_a_four_octet_as_sends_as_trans() {
    let open = Open::new(4_200_000_001, 9, Ipv4Addr::new(198, 51, 100, 11), vec![]);
    assert_eq!(open.my_as, AS_TRANS);
    assert_eq!(open.asn(), 4_200_000_001);
    let Message::Open(back) = Message::decode(&Message::Open(open).encode().unwrap()).unwrap() else {
        panic!()
    };
    assert_eq!(back.asn(), 4_200_000_001);
}

#[test]
fn open_with_graceful_restart_and_an_unknown_capability() {
    // GR (code 64, 6 bytes): R flag, 120 s; IPv4 unicast with forwarding preserved. Then an
    // unknown capability 70 (enhanced route refresh, empty), which is kept as it came.
    let wire = hex(&format!(
        "{M} 002f 01  04 fde9 00b4 c6336401 12  02 10 40 06 8078 0001 01 80 46 00 41 04 0000fde9"
    ));
    let Message::Open(open) = Message::decode(&wire).unwrap() else { panic!() };
    assert_eq!(open.hold_time, 180);
    assert_eq!(
        open.capabilities,
        vec![
            Capability::GracefulRestart(GracefulRestart {
                flags: 0x8,
                restart_time: 120,
                families: vec![GracefulRestartFamily { family: Family::IPV4_UNICAST, flags: 0x80 }],
            }),
            Capability::Unknown { code: 70, value: vec![] },
            Capability::FourOctetAs(65001),
        ]
    );
    assert_eq!(Message::Open(open).encode().unwrap(), wire);
}

#[test]
fn open_with_another_version_answers_with_version_4() {
    let wire = hex(&format!("{M} 001d 01  03 fde9 0009 c633640b 00"));
    let err = Message::decode(&wire).unwrap_err();
    assert_eq!(err, DecodeError::UnsupportedVersion(3));
    assert_eq!(err.notification(), Notification { code: 2, subcode: 1, data: vec![0, 4] });
}

#[test]
fn update_announcing_one_ipv4_address() {
    // ORIGIN IGP; AS_PATH one AS_SEQUENCE of 65001; NEXT_HOP 198.51.100.11; NLRI 198.51.100.200/32.
    let wire = hex(&format!(
        "{M} 0030 02  0000 0014  40 01 01 00  40 02 06 02 01 0000fde9  40 03 04 c633640b  20 c63364c8"
    ));
    let update = Update {
        withdrawn: vec![],
        attributes: vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(vec![AsSegment { kind: SegmentKind::Sequence, asns: vec![65001] }]),
            PathAttribute::NextHop(Ipv4Addr::new(198, 51, 100, 11)),
        ],
        nlri: vec!["198.51.100.200/32".parse().unwrap()],
    };
    assert_eq!(Message::Update(update.clone()).encode().unwrap(), wire);
    assert_eq!(Message::decode(&wire).unwrap(), Message::Update(update));
}

#[test]
fn update_withdrawing_a_slash_28() {
    // A withdrawal of 141.193.21.16/28 and nothing else (28 bytes), as libbgp's documentation
    // decodes it.
    let wire = hex(&format!("{M} 001c 02 0005 1c 8dc11510 0000"));
    let Message::Update(u) = Message::decode(&wire).unwrap() else { panic!() };
    assert_eq!(u.withdrawn, vec!["141.193.21.16/28".parse::<Ipv4Net>().unwrap()]);
    assert!(u.attributes.is_empty() && u.nlri.is_empty());
}

#[test]
fn received_host_bits_are_cleared() {
    // 10.1.2.3/8 on the wire is one octet, 0x0a; 203.0.113.255/25 is 0xcb 0x00 0x71 0xff.
    let wire = hex(&format!("{M} 001c 02 0000 0000 19 cb0071ff"));
    let Message::Update(u) = Message::decode(&wire).unwrap() else { panic!() };
    assert_eq!(u.nlri, vec!["203.0.113.128/25".parse::<Ipv4Net>().unwrap()]);
}

#[test]
fn ipv6_update_and_end_of_rib() {
    // MP_REACH_NLRI (optional, 14): AFI 2, SAFI 1, next hop 2001:db8:100::11, reserved,
    // 2001:db8:100::1000/128. Value 3 + 1 + 16 + 1 + 17 = 38 bytes.
    let wire = hex(&format!(
        "{M} 0040 02 0000 0029  80 0e 26 0002 01 10 20010db8010000000000000000000011 00 \
         80 20010db8010000000000000000001000"
    ));
    let update = Update {
        attributes: vec![PathAttribute::MpReach(MpReachV6 {
            next_hop: "2001:db8:100::11".parse().unwrap(),
            link_local: None,
            nlri: vec!["2001:db8:100::1000/128".parse().unwrap()],
        })],
        ..Update::default()
    };
    assert_eq!(Message::Update(update.clone()).encode().unwrap(), wire);
    assert_eq!(Message::decode(&wire).unwrap(), Message::Update(update));

    let eor = hex(&format!("{M} 001d 02 0000 0006 80 0f 03 0002 01"));
    assert_eq!(Message::Update(Update::end_of_rib(Family::IPV6_UNICAST)).encode().unwrap(), eor);
    let Message::Update(u) = Message::decode(&eor).unwrap() else { panic!() };
    assert_eq!(u.end_of_rib_family(), Some(Family::IPV6_UNICAST));
    let v4_eor = hex(&format!("{M} 0017 02 0000 0000"));
    assert_eq!(Message::Update(Update::end_of_rib(Family::IPV4_UNICAST)).encode().unwrap(), v4_eor);
}

#[test]
fn communities_use_the_extended_length_past_255_bytes() {
    let update =
        Update { attributes: vec![PathAttribute::Communities((0..64).collect())], ..Update::default() };
    let wire = Message::Update(update.clone()).encode().unwrap();
    // Flags: optional, transitive, extended length; type 8; length 256.
    assert_eq!(&wire[23..27], &[0xd0, 8, 1, 0]);
    assert_eq!(Message::decode(&wire).unwrap(), Message::Update(update));
}

#[test]
fn administrative_shutdown_carries_its_message() {
    let n = Notification::administrative_shutdown("bye");
    let wire = hex(&format!("{M} 0019 03 06 02 03 627965"));
    assert_eq!(Message::Notification(n.clone()).encode().unwrap(), wire);
    assert_eq!(n.shutdown_communication(), Some("bye"));
    // Cut at a character boundary at 255 bytes.
    let long = "é".repeat(200);
    let n = Notification::administrative_shutdown(&long);
    assert_eq!(n.data[0], 254);
    assert_eq!(n.shutdown_communication().unwrap().chars().count(), 127);
}

#[test]
fn header_errors_map_to_their_notifications() {
    let mut bad_marker = Message::Keepalive.encode().unwrap();
    bad_marker[3] = 0;
    assert_eq!(Message::decode(&bad_marker).unwrap_err().notification(), Notification::new(1, 1));
    let long_keepalive = hex(&format!("{M} 0014 04 00"));
    assert_eq!(
        Message::decode(&long_keepalive).unwrap_err().notification(),
        Notification { code: 1, subcode: 2, data: vec![0, 0x14] }
    );
    let bad_type = hex(&format!("{M} 0013 09"));
    assert_eq!(
        Message::decode(&bad_type).unwrap_err().notification(),
        Notification { code: 1, subcode: 3, data: vec![9] }
    );
    assert_eq!(frame_len(&bad_type[..18]), Ok(None));
    assert_eq!(frame_len(&bad_type), Err(DecodeError::BadType(9)));
}

#[test]
fn frame_len_waits_for_the_whole_message() {
    let wire = Message::Notification(Notification::new(6, 2)).encode().unwrap();
    assert_eq!(frame_len(&wire[..20]), Ok(None));
    let mut two = wire.clone();
    two.extend_from_slice(&wire);
    assert_eq!(frame_len(&two), Ok(Some(wire.len())));
}

#[test]
fn encoding_refuses_messages_over_4096_bytes() {
    let update = Update {
        nlri: (0..1000u32).map(|i| Ipv4Net::new(Ipv4Addr::from(i << 8), 32).unwrap()).collect(),
        ..Update::default()
    };
    let mut out = vec![1, 2, 3];
    assert!(matches!(Message::Update(update).encode_into(&mut out), Err(EncodeError::TooLong(_))));
    assert_eq!(out, vec![1, 2, 3]);
}

// ---- property tests ----

pub(crate) fn v4_net() -> impl Strategy<Value = Ipv4Net> {
    (any::<u32>(), 0u8..=32).prop_map(|(a, l)| Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc())
}

pub(crate) fn v6_net() -> impl Strategy<Value = Ipv6Net> {
    (any::<u128>(), 0u8..=128).prop_map(|(a, l)| Ipv6Net::new(Ipv6Addr::from(a), l).unwrap().trunc())
}

fn family() -> impl Strategy<Value = Family> {
    (any::<u16>(), any::<u8>()).prop_map(|(afi, safi)| Family { afi, safi })
}

fn capability() -> impl Strategy<Value = Capability> {
    prop_oneof![
        family().prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        any::<u32>().prop_map(Capability::FourOctetAs),
        (0u8..16, 0u16..4096, prop::collection::vec((family(), any::<u8>()), 0..4)).prop_map(
            |(flags, t, fs)| {
                Capability::GracefulRestart(GracefulRestart {
                    flags,
                    restart_time: t,
                    families: fs
                        .into_iter()
                        .map(|(family, flags)| GracefulRestartFamily { family, flags })
                        .collect(),
                })
            }
        ),
        (
            any::<u8>().prop_filter("known code", |c| ![1, 2, 64, 65].contains(c)),
            prop::collection::vec(any::<u8>(), 0..8)
        )
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

fn attribute() -> impl Strategy<Value = PathAttribute> {
    let segment = (1u8..=4, prop::collection::vec(any::<u32>(), 0..5)).prop_map(|(k, asns)| AsSegment {
        kind: match k {
            1 => SegmentKind::Set,
            2 => SegmentKind::Sequence,
            3 => SegmentKind::ConfedSequence,
            _ => SegmentKind::ConfedSet,
        },
        asns,
    });
    let large = (any::<u32>(), any::<u32>(), any::<u32>())
        .prop_map(|(global, local1, local2)| LargeCommunity { global, local1, local2 });
    prop_oneof![
        prop_oneof![Just(Origin::Igp), Just(Origin::Egp), Just(Origin::Incomplete)]
            .prop_map(PathAttribute::Origin),
        prop::collection::vec(segment, 0..3).prop_map(PathAttribute::AsPath),
        any::<u32>().prop_map(|a| PathAttribute::NextHop(Ipv4Addr::from(a))),
        any::<u32>().prop_map(PathAttribute::MultiExitDisc),
        any::<u32>().prop_map(PathAttribute::LocalPref),
        prop::collection::vec(any::<u32>(), 0..80).prop_map(PathAttribute::Communities),
        prop::collection::vec(large, 0..25).prop_map(PathAttribute::LargeCommunities),
        (any::<u128>(), prop::option::of(any::<u128>()), prop::collection::vec(v6_net(), 0..20)).prop_map(
            |(nh, ll, nlri)| PathAttribute::MpReach(MpReachV6 {
                next_hop: Ipv6Addr::from(nh),
                link_local: ll.map(Ipv6Addr::from),
                nlri
            })
        ),
        prop::collection::vec(v6_net(), 0..20).prop_map(PathAttribute::MpUnreach),
        (
            any::<u8>().prop_map(|f| f & !FLAG_EXTENDED_LENGTH),
            any::<u8>().prop_filter("known type", |t| ![1, 2, 3, 4, 5, 8, 14, 15, 32].contains(t)),
            prop::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(flags, type_code, value)| PathAttribute::Other { flags, type_code, value }),
    ]
}

pub(crate) fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u16>(), any::<u16>(), any::<u32>(), prop::collection::vec(capability(), 0..6)).prop_map(
            |(my_as, hold_time, id, capabilities)| Message::Open(Open {
                my_as,
                hold_time,
                router_id: Ipv4Addr::from(id),
                capabilities
            })
        ),
        (
            prop::collection::vec(v4_net(), 0..50),
            prop::collection::vec(attribute(), 0..6),
            prop::collection::vec(v4_net(), 0..50)
        )
            .prop_map(|(withdrawn, attributes, nlri)| Message::Update(Update {
                withdrawn,
                attributes,
                nlri
            })),
        (any::<u8>(), any::<u8>(), prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(code, subcode, data)| Message::Notification(Notification { code, subcode, data })),
        Just(Message::Keepalive),
        (family(), any::<u8>())
            .prop_map(|(family, subtype)| Message::RouteRefresh(RouteRefresh { family, subtype })),
    ]
}

proptest! {
    #[test]
    fn every_encodable_message_decodes_to_itself(msg in message()) {
        // Some generated OPENs and UPDATEs are over their limits: those must fail to encode, and
        // every other must come back unchanged.
        if let Ok(wire) = msg.encode() {
            prop_assert!(wire.len() <= MAX_MESSAGE_LEN);
            prop_assert_eq!(frame_len(&wire), Ok(Some(wire.len())));
            prop_assert_eq!(Message::decode(&wire), Ok(msg));
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Message::decode(&bytes);
        let _ = frame_len(&bytes);
    }

    #[test]
    fn decoding_corrupted_messages_never_panics(
        msg in message(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        if let Ok(mut wire) = msg.encode() {
            // Keep the header valid most of the time so the corruption reaches the body.
            for (at, byte) in edits {
                let i = at.index(wire.len());
                if i >= HEADER_LEN {
                    wire[i] = byte;
                }
            }
            let _ = Message::decode(&wire);
            let cut = cut.index(wire.len() + 1);
            wire.truncate(cut.max(HEADER_LEN));
            let len = (wire.len() as u16).to_be_bytes();
            wire[16..18].copy_from_slice(&len);
            let _ = Message::decode(&wire);
        }
    }
}
