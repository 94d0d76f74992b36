//! Fuzz-target bodies: everything the announcer reads from the wire, from arbitrary bytes.
//!
//! Each target is a plain function over `&[u8]`, so the libFuzzer crate (`l2announcer/fuzz/`,
//! outside the workspace, see docs/benchmarks.md "Fuzzing") and the smoke test under `cargo test`
//! (`tests/fuzz_smoke.rs`) run the same code. A target panics when an invariant fails; "no panic"
//! alone would miss a reply to the wrong address or a replayed message that got through.
//!
//! - [`frame()`]: one Ethernet frame, as an AF_PACKET socket delivers it, through
//!   [`frame::parse`], [`frame::observe`], `frame::observe_mld` and
//!   [`responder::answer`] with no, some and all addresses
//!   held. Every reply must answer a held address, re-read as the reply the frame asked for
//!   (etherparse and `observe`), and never itself be a question (two responders on one link must
//!   not answer each other).
//! - [`peer_message`]: a sequence of peer messages (`ferrolb.v1.Peer`), each read as it arrives
//!   (heartbeats and their acks as [`datagram`]s, takeover notices and their acks as the protobuf
//!   of a gRPC call) and judged by [`auth::check_incoming`] as a keyed and as a keyless receiver
//!   would, against a model of the rules in [`crate::peer`]: MAC, sender, recipient, and the replay
//!   window with its per-node epoch limit. The model must agree with every verdict, and two
//!   messages of one kind must have the same canonical encoding exactly when they are the same
//!   message.
//!
//! [`frame_seeds`] and [`peer_message_seeds`] are valid inputs to start from (committed under
//! `l2announcer/fuzz/seeds/`); [`peer_record`] builds the framing [`peer_message`] reads.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{EtherType, Ethernet2Slice, Icmpv6Slice, IpNumber, Ipv6Slice, checksum};
use ferrolb_proto::v1;
use prost::Message;

use crate::datapath::Protocol;
use crate::datapath::frame::{self, ALL_NODES, Mac, Observed, Parsed, Query};
use crate::datapath::responder::{self, Outcome};
use crate::peer::PeerKey;
use crate::peer::auth::{self, DOMAIN, EPOCHS_PER_NODE, REPLAY_WINDOW, Reject, ReplayGuard, Signed};
use crate::peer::datagram;

/// The MAC of the interface the [`frame()`] target's frames arrive on.
pub const OWN_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x11]);

/// The addresses the [`frame()`] target holds in its "some held" case.
pub const HELD: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, 200)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x1000)),
];

/// The node the [`peer_message`] target receives as.
pub const OWN_NODE: &str = "n2";

/// The peer key of the [`peer_message`] target's keyed receiver.
pub const KEY: [u8; 32] = [0x5a; 32];
/// Another key: messages signed with it are not authentic.
const OTHER_KEY: [u8; 32] = [0xa5; 32];

/// Fuzz target: one Ethernet frame (without FCS), and the same frame with a valid ICMPv6 checksum
/// if it has an invalid one: mutated bytes almost never keep the checksum right, which would stop
/// nearly every Neighbor Solicitation at the first check.
pub fn frame(data: &[u8]) {
    frame_as_is(data);
    if let Some(fixed) = with_valid_icmpv6_checksum(data) {
        frame_as_is(&fixed);
    }
}

/// `data` with its ICMPv6 checksum corrected, when it is Ethernet/IPv6/ICMPv6 without extension
/// headers (what the responder reads) and the checksum is wrong.
fn with_valid_icmpv6_checksum(data: &[u8]) -> Option<Vec<u8>> {
    const ICMP_AT: usize = 14 + 40;
    let eth = Ethernet2Slice::from_slice_without_fcs(data).ok()?;
    if eth.ether_type() != EtherType::IPV6 {
        return None;
    }
    let ip = Ipv6Slice::from_slice(eth.payload_slice()).ok()?;
    let icmp = Icmpv6Slice::from_slice(ip.payload().payload).ok()?;
    let (src, dst) = (ip.header().source_addr().octets(), ip.header().destination_addr().octets());
    if ip.payload().ip_number != IpNumber::IPV6_ICMP
        || !ip.extensions().is_empty()
        || icmp.is_checksum_valid(src, dst)
    {
        return None;
    }
    let mut out = data.to_vec();
    let message = &mut out[ICMP_AT..ICMP_AT + icmp.slice().len()];
    message[2..4].fill(0);
    let checksum = checksum::Sum16BitWords::new()
        .add_16bytes(src)
        .add_16bytes(dst)
        .add_4bytes((message.len() as u32).to_be_bytes())
        .add_2bytes([0, IpNumber::IPV6_ICMP.0])
        .add_slice(message)
        .ones_complement();
    // Sum16BitWords adds the words in native byte order, so the sum goes back the same way.
    message[2..4].copy_from_slice(&checksum.to_ne_bytes());
    Some(out)
}

fn frame_as_is(data: &[u8]) {
    let parsed = frame::parse(data);
    let observed = frame::observe(data);
    if let Ok(Parsed::Query(q)) = &parsed {
        check_query(data, q);
    }
    check_parse_agrees_with_observe(data, &parsed, observed.as_ref());
    // MLD is only captured (tests, the lab), never answered, and is no question either.
    if frame::observe_mld(data).is_some() {
        assert_eq!(parsed, Ok(Parsed::Ignored), "an MLD message is not a question");
    }

    let none = responder::answer(OWN_MAC, |_| false, data);
    let some = responder::answer(OWN_MAC, |ip| HELD.contains(&ip), data);
    let all = responder::answer(OWN_MAC, |_| true, data);
    match &parsed {
        Err(frame::Malformed(why)) => {
            for o in [&none, &some, &all] {
                assert_eq!(o, &Outcome::Malformed(why), "a malformed frame is dropped as such");
            }
        }
        Ok(Parsed::Ignored) => {
            for o in [&none, &some, &all] {
                assert_eq!(o, &Outcome::Ignored, "a frame that asks nothing is not answered");
            }
        }
        Ok(Parsed::Query(q)) => {
            let target = q.target();
            assert_eq!(none, Outcome::NotHeld(target), "nothing held, nothing answered");
            if HELD.contains(&target) {
                assert_eq!(some, all, "a held address is answered as if everything were held");
            } else {
                assert_eq!(some, Outcome::NotHeld(target), "only held addresses are answered");
            }
            let asker = match q {
                Query::Arp { sender_mac, .. } => *sender_mac,
                Query::Ns { eth_src, .. } => *eth_src,
            };
            if asker == OWN_MAC {
                assert_eq!(all, Outcome::Ignored, "our own question, looped back, is not answered");
            } else {
                let Outcome::Reply { frame: reply, protocol, target: answered } = &all else {
                    panic!("a question for a held address from another node is answered: {all:?}")
                };
                assert_eq!(*answered, target);
                check_reply(q, reply, *protocol);
            }
        }
    }
}

/// What `parse` may return as a question: only what RFC 826 and RFC 4861 §7.1.1 let through.
fn check_query(data: &[u8], q: &Query) {
    match q {
        Query::Arp { eth_src, sender_mac, sender_ip, target } => {
            assert_eq!(eth_src.0, data[6..12], "the Ethernet source is the frame's");
            assert!(!sender_mac.is_multicast(), "an ARP sender is never a group address");
            assert_ne!(sender_ip, target, "a gratuitous ARP is not a question");
            assert!(!target.is_multicast() && !target.is_broadcast() && !target.is_unspecified());
        }
        Query::Ns { eth_src, source, target, sllao } => {
            assert_eq!(eth_src.0, data[6..12], "the Ethernet source is the frame's");
            assert!(!target.is_multicast(), "an NS target is never multicast");
            if source.is_unspecified() {
                assert_eq!(*sllao, None, "a DAD probe carries no source link-layer option");
            }
        }
    }
}

/// `parse` and `observe` read the same frames with different aims; where they overlap they must
/// agree.
fn check_parse_agrees_with_observe(
    data: &[u8],
    parsed: &Result<Parsed, frame::Malformed>,
    observed: Option<&Observed>,
) {
    let ether_type = Ethernet2Slice::from_slice_without_fcs(data).ok().map(|e| e.ether_type());
    match (parsed, observed) {
        (Ok(Parsed::Query(Query::Arp { sender_mac, sender_ip, target, .. })), o) => {
            let Some(&Observed::Arp { op, sender_mac: m, sender_ip: ip, target_ip: t, .. }) = o else {
                panic!("an ARP question parses but is not observed as ARP: {o:?}")
            };
            assert_eq!((op, m, ip, t), (1, *sender_mac, *sender_ip, *target));
        }
        (Ok(Parsed::Query(Query::Ns { .. })), o) => {
            assert_eq!(o, None, "a Neighbor Solicitation is neither ARP nor an advertisement")
        }
        (p, Some(Observed::Na { .. })) => {
            assert_eq!(p, &Ok(Parsed::Ignored), "a Neighbor Advertisement is not a question")
        }
        (p, Some(Observed::Arp { op, .. })) if *op != 1 => {
            assert_eq!(p, &Ok(Parsed::Ignored), "an ARP packet other than a request is not a question")
        }
        (p, None) if ether_type == Some(EtherType::ARP) => {
            assert!(p.is_err(), "ARP that etherparse cannot read as Ethernet/IPv4 is malformed: {p:?}")
        }
        _ => {}
    }
}

/// A reply must be a well-formed frame that answers exactly `q`, from us, and asks nothing.
fn check_reply(q: &Query, reply: &[u8], protocol: Protocol) {
    etherparse::SlicedPacket::from_ethernet(reply).expect("a reply is a frame etherparse reads");
    assert_eq!(frame::parse(reply), Ok(Parsed::Ignored), "a reply is never itself a question");
    let seen = frame::observe(reply).expect("a reply is ARP or a Neighbor Advertisement");
    match *q {
        Query::Arp { sender_mac, sender_ip, target, .. } => {
            assert_eq!(protocol, Protocol::Arp);
            assert_eq!(reply.len(), 42, "Ethernet + ARP for Ethernet/IPv4, no padding");
            assert_eq!(
                seen,
                Observed::Arp {
                    eth_dst: sender_mac,
                    op: 2,
                    sender_mac: OWN_MAC,
                    sender_ip: target,
                    target_mac: sender_mac,
                    target_ip: sender_ip,
                }
            );
        }
        Query::Ns { eth_src, source, target, sllao } => {
            assert_eq!(protocol, Protocol::Ndp);
            let ip = Ipv6Slice::from_slice(&reply[14..]).expect("the reply's IPv6 packet reads");
            assert_eq!(ip.header().hop_limit(), 255, "NDP is sent with hop limit 255");
            let icmp = Icmpv6Slice::from_slice(ip.payload().payload).expect("the reply's ICMPv6 reads");
            let (src, dst) = (ip.header().source_addr(), ip.header().destination_addr());
            assert!(icmp.is_checksum_valid(src.octets(), dst.octets()), "the NA checksum is valid");
            assert_eq!(reply.len(), 14 + 40 + 32, "Ethernet + IPv6 + NA with a target link-layer option");
            let dad = source.is_unspecified();
            assert_eq!(
                seen,
                Observed::Na {
                    eth_src: OWN_MAC,
                    eth_dst: if dad { Mac::ipv6_multicast(ALL_NODES) } else { sllao.unwrap_or(eth_src) },
                    ip_src: target,
                    ip_dst: if dad { ALL_NODES } else { source },
                    solicited: !dad,
                    override_: true,
                    router: false,
                    target,
                    tlla: Some(OWN_MAC),
                }
            );
        }
    }
}

/// The peer message kinds, as the low two bits of a record's selector byte.
const KINDS: [auth::Kind; 4] =
    [auth::Kind::Heartbeat, auth::Kind::HeartbeatAck, auth::Kind::TakeoverNotice, auth::Kind::TakeoverAck];

/// How a record's message is signed before it is received (bits 2-3 of the selector byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// The MAC it was decoded with.
    AsDecoded = 0,
    /// Signed with [`KEY`]: authentic for the keyed receiver.
    OurKey = 1,
    /// Signed with another key.
    OtherKey = 2,
    /// No MAC: what a sender without a key sends.
    Unsigned = 3,
}

/// Selector bit 4: the message's `to` is replaced by [`OWN_NODE`], so that arbitrary senders, epochs
/// and seqs reach the replay window instead of stopping at the recipient check.
pub const TO_US: u8 = 1 << 4;

/// One record of a [`peer_message`] input: a selector byte (kind, [`Signing`], [`TO_US`]), a
/// little-endian `u16` length, then that many bytes as they arrive (a shorter rest is taken as is):
/// a heartbeat or heartbeat ack datagram, or the protobuf of a takeover notice or ack.
pub fn peer_record(kind: auth::Kind, signing: Signing, to_us: bool, body: &[u8]) -> Vec<u8> {
    let kind_bits = KINDS.iter().position(|k| *k == kind).expect("every kind is listed") as u8;
    let selector = kind_bits | (signing as u8) << 2 | if to_us { TO_US } else { 0 };
    let len = u16::try_from(body.len()).expect("a seed record is shorter than 64 KiB");
    let mut out = vec![selector];
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// How many records of one input are received: enough for every replay-window and epoch case, and
/// few enough that the all-pairs injectivity check stays cheap on long inputs.
const MAX_RECORDS: usize = 32;

/// Fuzz target: a sequence of peer messages (see [`peer_record`]), received one after the other by
/// the same receivers. The whole input is also read as each message kind, and every message that
/// is read must write back to itself.
pub fn peer_message(data: &[u8]) {
    for kind in KINDS {
        read_round_trip(kind, data);
    }
    let mut target = PeerTarget::new();
    let mut rest = data;
    for _ in 0..MAX_RECORDS {
        let Some((&selector, after)) = rest.split_first() else { break };
        let (len, after) = match after {
            [a, b, tail @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), tail),
            _ => (after.len(), &[][..]),
        };
        let (body, after) = after.split_at(len.min(after.len()));
        rest = after;
        let signing = [Signing::AsDecoded, Signing::OurKey, Signing::OtherKey, Signing::Unsigned]
            [usize::from(selector >> 2 & 3)];
        let to_us = selector & TO_US != 0;
        match KINDS[usize::from(selector & 3)] {
            auth::Kind::Heartbeat => target.receive::<v1::Heartbeat>(body, signing, to_us),
            auth::Kind::HeartbeatAck => target.receive::<v1::HeartbeatAck>(body, signing, to_us),
            auth::Kind::TakeoverNotice => target.receive::<v1::TakeoverNotice>(body, signing, to_us),
            auth::Kind::TakeoverAck => target.receive::<v1::TakeoverAck>(body, signing, to_us),
        }
    }
}

fn read_round_trip(kind: auth::Kind, data: &[u8]) {
    match kind {
        auth::Kind::Heartbeat => drop(read::<v1::Heartbeat>(data)),
        auth::Kind::HeartbeatAck => drop(read::<v1::HeartbeatAck>(data)),
        auth::Kind::TakeoverNotice => drop(read::<v1::TakeoverNotice>(data)),
        auth::Kind::TakeoverAck => drop(read::<v1::TakeoverAck>(data)),
    }
}

/// `data` read as `M`, after checking that it writes back to the same message.
fn read<M: Wire + PartialEq>(data: &[u8]) -> Option<M> {
    let m = M::read(data)?;
    assert!(M::read(&m.write()).as_ref() == Some(&m), "a message read writes back to itself");
    Some(m)
}

/// How a peer message kind travels: heartbeats and their acks as [`datagram`]s, takeover notices
/// and their acks as gRPC messages (protobuf). Plus setting the recipient, which [`Signed`] only
/// reads.
trait Wire: Sized {
    fn read(bytes: &[u8]) -> Option<Self>;
    fn write(&self) -> Vec<u8>;
    fn set_to(&mut self, to: &str);
}

impl Wire for v1::Heartbeat {
    fn read(bytes: &[u8]) -> Option<Self> {
        datagram::decode_heartbeat(bytes).ok()
    }
    fn write(&self) -> Vec<u8> {
        datagram::encode(datagram::Kind::Heartbeat, self)
    }
    fn set_to(&mut self, to: &str) {
        to.clone_into(&mut self.to);
    }
}

impl Wire for v1::HeartbeatAck {
    fn read(bytes: &[u8]) -> Option<Self> {
        datagram::decode_ack(bytes).ok()
    }
    fn write(&self) -> Vec<u8> {
        datagram::encode(datagram::Kind::HeartbeatAck, self)
    }
    fn set_to(&mut self, to: &str) {
        to.clone_into(&mut self.to);
    }
}

macro_rules! grpc_wire {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            fn read(bytes: &[u8]) -> Option<Self> {
                Self::decode(bytes).ok()
            }
            fn write(&self) -> Vec<u8> {
                self.encode_to_vec()
            }
            fn set_to(&mut self, to: &str) {
                to.clone_into(&mut self.to);
            }
        }
    )*};
}
grpc_wire!(v1::TakeoverNotice, v1::TakeoverAck);

/// The [`peer_message`] target's state across one input: the keys, a keyed and a keyless receiver,
/// and the messages seen so far.
struct PeerTarget {
    ours: PeerKey,
    other: PeerKey,
    keyed: Receiver,
    keyless: Receiver,
    seen: Vec<Seen>,
}

impl PeerTarget {
    fn new() -> Self {
        let ours = PeerKey::from_bytes(&KEY).expect("long enough");
        Self {
            keyed: Receiver::new(Some(ours.clone())),
            keyless: Receiver::new(None),
            ours,
            other: PeerKey::from_bytes(&OTHER_KEY).expect("long enough"),
            seen: Vec::new(),
        }
    }

    fn receive<M>(&mut self, body: &[u8], signing: Signing, to_us: bool)
    where
        M: Signed + Message + Clone + PartialEq + Wire,
    {
        let Some(mut m) = read::<M>(body) else { return };
        if to_us {
            m.set_to(OWN_NODE);
        }
        match signing {
            Signing::AsDecoded => {}
            Signing::OurKey => auth::sign(Some(&self.ours), &mut m),
            Signing::OtherKey => auth::sign(Some(&self.other), &mut m),
            Signing::Unsigned => auth::sign(None, &mut m),
        }
        check_signing(&m, &self.ours, &self.other);
        check_canonical_is_injective(&m, &mut self.seen);
        let authentic = !m.mac().is_empty() && m.mac() == signed(Some(&self.ours), &m).mac();
        self.keyed.receive(&m, authentic);
        self.keyless.receive(&m, m.mac().is_empty());
    }
}

/// `m` with the MAC `key` gives it.
fn signed<M: Signed + Clone>(key: Option<&PeerKey>, m: &M) -> M {
    let mut s = m.clone();
    auth::sign(key, &mut s);
    s
}

/// Whatever the fields, signing with a key makes the message verify with that key and no other,
/// and the canonical encoding starts with the domain and the kind.
fn check_signing<M: Signed + Clone>(m: &M, ours: &PeerKey, other: &PeerKey) {
    let s = signed(Some(ours), m);
    assert_eq!(auth::verify(Some(ours), &s), Ok(()));
    assert!(matches!(auth::verify(Some(other), &s), Err(Reject::Auth(_))));
    assert!(matches!(auth::verify(None, &s), Err(Reject::Auth(_))));
    let c = auth::canonical(m);
    assert!(c.starts_with(DOMAIN) && c[DOMAIN.len()] == M::KIND as u8);
}

/// A message seen earlier in the input: its kind, canonical encoding, and itself without the MAC.
struct Seen {
    kind: auth::Kind,
    canonical: Vec<u8>,
    bare: Vec<u8>,
}

/// Two messages of one kind have the same canonical encoding exactly when they are the same message
/// (the MAC aside): otherwise one message's MAC would authenticate another.
fn check_canonical_is_injective<M: Signed + Message + Clone>(m: &M, seen: &mut Vec<Seen>) {
    let mut bare = m.clone();
    bare.set_mac(Vec::new());
    let new = Seen { kind: M::KIND, canonical: auth::canonical(m), bare: bare.encode_to_vec() };
    for s in seen.iter().filter(|s| s.kind == new.kind) {
        assert_eq!(s.canonical == new.canonical, s.bare == new.bare, "canonical encoding is injective");
    }
    seen.push(new);
}

/// One receiver: its key, the real replay guard, and the model it must agree with.
struct Receiver {
    key: Option<PeerKey>,
    guard: ReplayGuard,
    model: ReplayModel,
}

impl Receiver {
    fn new(key: Option<PeerKey>) -> Self {
        Self { key, guard: ReplayGuard::new(), model: ReplayModel::default() }
    }

    /// Receives `m`, which passes this receiver's MAC check exactly when `authentic`.
    fn receive<M: Signed>(&mut self, m: &M, authentic: bool) {
        let got = auth::check_incoming(self.key.as_ref(), OWN_NODE, &mut self.guard, m);
        let h = m.header();
        let want = if !authentic {
            Err("auth")
        } else if h.node == OWN_NODE || h.to != OWN_NODE {
            Err("replay")
        } else {
            self.model.accept(h.node, h.epoch, h.seq)
        };
        assert_eq!(
            got.map_err(Reject::reason),
            want,
            "verdict on {:?} ({})",
            h,
            if authentic { "authentic" } else { "not authentic" }
        );
    }
}

/// The replay rule of [`crate::peer`], written out plainly: per sender node, the accepted seqs of
/// each of its last [`EPOCHS_PER_NODE`] epochs (least recently accepted from forgotten first); a seq
/// is accepted once, if not 0 and above the highest or less than [`REPLAY_WINDOW`] below it.
#[derive(Default)]
struct ReplayModel {
    nodes: HashMap<String, Vec<ModelEpoch>>,
    tick: u64,
}

struct ModelEpoch {
    epoch: u64,
    accepted: BTreeSet<u64>,
    last_accept: u64,
}

impl ReplayModel {
    fn accept(&mut self, node: &str, epoch: u64, seq: u64) -> Result<(), &'static str> {
        if seq == 0 {
            return Err("replay");
        }
        let epochs = self.nodes.entry(node.to_owned()).or_default();
        if let Some(e) = epochs.iter().find(|e| e.epoch == epoch) {
            let highest = *e.accepted.last().expect("an epoch is remembered from its first acceptance");
            if seq <= highest && (highest - seq >= REPLAY_WINDOW || e.accepted.contains(&seq)) {
                return Err("replay");
            }
        }
        self.tick += 1;
        let i = match epochs.iter().position(|e| e.epoch == epoch) {
            Some(i) => i,
            None => {
                if epochs.len() == EPOCHS_PER_NODE {
                    let lru = (0..epochs.len()).min_by_key(|&i| epochs[i].last_accept).expect("not empty");
                    epochs.remove(lru);
                }
                epochs.push(ModelEpoch { epoch, accepted: BTreeSet::new(), last_accept: 0 });
                epochs.len() - 1
            }
        };
        let e = &mut epochs[i];
        e.accepted.insert(seq);
        e.last_accept = self.tick;
        Ok(())
    }
}

/// Valid frames to start from: ARP requests (held, not held, from our own MAC), gratuitous ARP,
/// Neighbor Solicitations (with and without SLLAO, DAD) and advertisements.
pub fn frame_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let client = Mac([0x02, 0, 0, 0, 0, 0x02]);
    let client_ip = Ipv4Addr::new(198, 51, 100, 2);
    let client6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 2);
    let (IpAddr::V4(vip), IpAddr::V6(vip6)) = (HELD[0], HELD[1]) else { unreachable!("HELD is v4, v6") };
    let other = Ipv4Addr::new(198, 51, 100, 201);
    vec![
        ("arp-request-held", frame::arp_request(client, client_ip, vip)),
        ("arp-request-not-held", frame::arp_request(client, client_ip, other)),
        ("arp-request-own-mac", frame::arp_request(OWN_MAC, client_ip, vip)),
        ("arp-reply", frame::arp_reply(OWN_MAC, client, client_ip, vip)),
        ("gratuitous-arp-request", frame::gratuitous_arp_request(client, vip)),
        ("gratuitous-arp-reply", frame::gratuitous_arp_reply(client, vip)),
        ("ns-held-sllao", frame::neighbor_solicitation(client, client6, vip6, true)),
        ("ns-held", frame::neighbor_solicitation(client, client6, vip6, false)),
        ("ns-dad", frame::neighbor_solicitation(client, Ipv6Addr::UNSPECIFIED, vip6, false)),
        ("ns-not-held", frame::neighbor_solicitation(client, client6, client6, true)),
        ("na-solicited", frame::neighbor_advertisement(OWN_MAC, client6, client, None, vip6)),
        ("na-unsolicited", frame::unsolicited_na(client, vip6)),
    ]
}

/// Valid peer-message inputs to start from: each kind for [`OWN_NODE`] (the heartbeat with a
/// silence report), signed with [`KEY`] when received (so the seeds stay authentic when the
/// canonical encoding changes), a replayed heartbeat, an unsigned one, one signed with another key,
/// and one from a restarted sender process.
pub fn peer_message_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use auth::Kind;
    let hb = v1::Heartbeat {
        node: "n1".into(),
        epoch: 7,
        seq: 3,
        to: OWN_NODE.into(),
        sent_at: 123_456_789,
        api_ok: true,
        silent: vec![v1::Silence { node: "n4".into(), silent_for_ms: 300 }],
        ..Default::default()
    };
    let ack = v1::HeartbeatAck {
        node: "n1".into(),
        epoch: 7,
        seq: 4,
        to: OWN_NODE.into(),
        heartbeat_epoch: 9,
        heartbeat_seq: 1,
        heartbeat_sent_at: 1_000,
        ..Default::default()
    };
    let notice = v1::TakeoverNotice {
        node: "n3".into(),
        epoch: 11,
        seq: 200,
        to: OWN_NODE.into(),
        service_namespace: "default".into(),
        service_name: "web".into(),
        address: "2001:db8:100::1000".into(),
        new_holder: "n3".into(),
        lease_resource_version: "42".into(),
        replaced_resource_version: "41".into(),
        ..Default::default()
    };
    let notice_ack = v1::TakeoverAck {
        node: "n3".into(),
        epoch: 11,
        seq: 201,
        to: OWN_NODE.into(),
        notice_epoch: 9,
        notice_seq: 2,
        ..Default::default()
    };
    let ours = |kind, body: Vec<u8>| peer_record(kind, Signing::OurKey, false, &body);
    let heartbeat = ours(Kind::Heartbeat, hb.write());
    let later = v1::Heartbeat { seq: 5, ..hb.clone() };
    let restarted = v1::Heartbeat { epoch: 8, ..hb.clone() };
    vec![
        ("heartbeat", heartbeat.clone()),
        (
            "heartbeat-replayed",
            [heartbeat.clone(), heartbeat.clone(), ours(Kind::Heartbeat, later.write())].concat(),
        ),
        ("heartbeat-unsigned", peer_record(Kind::Heartbeat, Signing::Unsigned, false, &hb.write())),
        ("heartbeat-other-key", peer_record(Kind::Heartbeat, Signing::OtherKey, false, &hb.write())),
        ("heartbeat-new-epoch", [heartbeat, ours(Kind::Heartbeat, restarted.write())].concat()),
        ("heartbeat-ack", ours(Kind::HeartbeatAck, ack.write())),
        ("takeover-notice", ours(Kind::TakeoverNotice, notice.write())),
        ("takeover-ack", ours(Kind::TakeoverAck, notice_ack.write())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_pass_their_targets() {
        for (_, s) in frame_seeds() {
            frame(&s);
        }
        for (_, s) in peer_message_seeds() {
            peer_message(&s);
        }
    }

    #[test]
    fn seeds_reach_the_interesting_paths() {
        // Held questions are answered; replayed and unsigned messages are refused.
        let reply = |name: &str| {
            let (_, f) = frame_seeds().into_iter().find(|(n, _)| *n == name).unwrap();
            matches!(responder::answer(OWN_MAC, |ip| HELD.contains(&ip), &f), Outcome::Reply { .. })
        };
        assert!(reply("arp-request-held") && reply("ns-held-sllao") && reply("ns-dad"));
        assert!(!reply("arp-request-not-held") && !reply("arp-request-own-mac") && !reply("na-solicited"));
        let key = PeerKey::from_bytes(&KEY).unwrap();
        let mut guard = ReplayGuard::new();
        let (_, record) = peer_message_seeds().into_iter().find(|(n, _)| *n == "heartbeat").unwrap();
        assert_eq!(record[0] >> 2 & 3, Signing::OurKey as u8);
        let mut hb = datagram::decode_heartbeat(&record[3..]).unwrap();
        auth::sign(Some(&key), &mut hb);
        assert_eq!(auth::check_incoming(Some(&key), OWN_NODE, &mut guard, &hb), Ok(()));
        assert!(auth::check_incoming(Some(&key), OWN_NODE, &mut guard, &hb).is_err());
    }

    #[test]
    fn checksums_are_made_valid() {
        let (_, ns) = frame_seeds().into_iter().find(|(n, _)| *n == "ns-held-sllao").unwrap();
        assert_eq!(with_valid_icmpv6_checksum(&ns), None, "already valid");
        let mut bad = ns.clone();
        bad[56] ^= 0x5a;
        assert!(matches!(frame::parse(&bad), Err(frame::Malformed("NS checksum is invalid"))));
        assert_eq!(with_valid_icmpv6_checksum(&bad), Some(ns.clone()));
        // Changed elsewhere, the frame parses again once the checksum is fixed.
        let mut target_changed = ns;
        target_changed[62 + 15] ^= 1;
        let fixed = with_valid_icmpv6_checksum(&target_changed).unwrap();
        assert!(matches!(frame::parse(&fixed), Ok(Parsed::Query(Query::Ns { .. }))));
    }

    #[test]
    fn the_model_follows_the_window_and_the_epoch_limit() {
        let mut m = ReplayModel::default();
        assert_eq!(m.accept("a", 1, 0), Err("replay"));
        assert_eq!(m.accept("a", 1, 200), Ok(()));
        assert_eq!(m.accept("a", 1, 200), Err("replay"));
        assert_eq!(m.accept("a", 1, 200 - REPLAY_WINDOW + 1), Ok(()));
        assert_eq!(m.accept("a", 1, 200 - REPLAY_WINDOW), Err("replay"));
        for e in 2..=EPOCHS_PER_NODE as u64 {
            assert_eq!(m.accept("a", e, 1), Ok(()));
        }
        // A fifth epoch forgets the least recently used one (1): its seqs are new again.
        assert_eq!(m.accept("a", 99, 1), Ok(()));
        assert_eq!(m.accept("a", 1, 200), Ok(()));
    }
}
