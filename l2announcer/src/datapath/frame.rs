//! Ethernet frames in and out: what an ARP request or a Neighbor Solicitation asks, and the replies
//! and announcements the responder sends. Pure functions over byte slices (parsing with etherparse),
//! so every rule here is unit-tested without a socket.
//!
//! Validation follows the RFCs closely enough that a frame we answer is one the kernel would have
//! answered too: ARP for Ethernet/IPv4 only (RFC 826), NS per RFC 4861 §7.1.1 (hop limit 255, code 0,
//! valid checksum, target not multicast, DAD probes sent to a solicited-node group and without a
//! source link-layer option). What fails those checks is [`Malformed`]: counted and dropped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::icmpv6::{NdpOptionSlice, NeighborAdvertisementHeader};
use etherparse::{
    ArpHardwareId, ArpOperation, ArpPacket, ArpPacketSlice, EtherType, Ethernet2Slice, Icmpv6Slice,
    Icmpv6Type, IpNumber, Ipv6Slice, PacketBuilder,
};

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    pub const ZERO: Mac = Mac([0; 6]);

    /// `33:33:` + the low 32 bits of an IPv6 multicast group (RFC 2464 §7).
    pub fn ipv6_multicast(group: Ipv6Addr) -> Mac {
        let o = group.octets();
        Mac([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }

    /// Whether this is a group (multicast or broadcast) address.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl std::fmt::Debug for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

impl std::str::FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut out {
            let p = parts.next().ok_or_else(|| format!("{s:?} is not a MAC address"))?;
            *b = u8::from_str_radix(p, 16).map_err(|_| format!("{s:?} is not a MAC address"))?;
        }
        if parts.next().is_some() {
            return Err(format!("{s:?} is not a MAC address"));
        }
        Ok(Mac(out))
    }
}

/// The solicited-node multicast group of an IPv6 address (`ff02::1:ffXX:XXXX`, RFC 4291 §2.7.1).
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | u16::from(o[13]), u16::from_be_bytes([o[14], o[15]]))
}

/// The all-nodes multicast group.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

const ICMPV6_NS: u8 = 135;
const NDP_HOP_LIMIT: u8 = 255;

/// A question a frame asks that the responder may answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// An ARP request (RFC 826) for `target`.
    Arp { eth_src: Mac, sender_mac: Mac, sender_ip: Ipv4Addr, target: Ipv4Addr },
    /// A Neighbor Solicitation for `target`. `sllao` is the source link-layer address option, if
    /// any; `source` is unspecified (`::`) for duplicate address detection.
    Ns { eth_src: Mac, source: Ipv6Addr, target: Ipv6Addr, sllao: Option<Mac> },
}

impl Query {
    /// The address asked about.
    pub fn target(&self) -> IpAddr {
        match self {
            Query::Arp { target, .. } => IpAddr::V4(*target),
            Query::Ns { target, .. } => IpAddr::V6(*target),
        }
    }
}

/// What a frame is, from the responder's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A question to consider answering.
    Query(Query),
    /// Well-formed but not a question for us (ARP reply, gratuitous ARP, other ICMPv6, ...).
    Ignored,
}

/// Why a frame that claimed to be ARP or NS was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed frame: {0}")]
pub struct Malformed(pub &'static str);

/// Parses one Ethernet frame (as read from an AF_PACKET socket, without FCS).
pub fn parse(frame: &[u8]) -> Result<Parsed, Malformed> {
    let eth =
        Ethernet2Slice::from_slice_without_fcs(frame).map_err(|_| Malformed("short Ethernet header"))?;
    let eth_src = Mac(eth.source());
    match eth.ether_type() {
        EtherType::ARP => parse_arp(eth_src, eth.payload_slice()),
        EtherType::IPV6 => parse_ns(eth_src, eth.payload_slice()),
        _ => Ok(Parsed::Ignored),
    }
}

fn parse_arp(eth_src: Mac, payload: &[u8]) -> Result<Parsed, Malformed> {
    let arp = ArpPacketSlice::from_slice(payload).map_err(|_| Malformed("truncated ARP packet"))?;
    if arp.hw_addr_type() != ArpHardwareId::ETHERNET
        || arp.proto_addr_type() != EtherType::IPV4
        || arp.hw_addr_size() != 6
        || arp.proto_addr_size() != 4
    {
        return Err(Malformed("ARP packet is not Ethernet/IPv4"));
    }
    if arp.operation() != ArpOperation::REQUEST {
        return Ok(Parsed::Ignored);
    }
    let mac = |s: &[u8]| Mac(s.try_into().expect("length checked above"));
    let ip = |s: &[u8]| Ipv4Addr::from(<[u8; 4]>::try_from(s).expect("length checked above"));
    let sender_mac = mac(arp.sender_hw_addr());
    let sender_ip = ip(arp.sender_protocol_addr());
    let target = ip(arp.target_protocol_addr());
    if sender_mac.is_multicast() {
        return Err(Malformed("ARP sender hardware address is a group address"));
    }
    // A gratuitous request (sender = target) is an announcement, not a question: answering it
    // would fight a new holder's announcement during a hand-over.
    if sender_ip == target || target.is_multicast() || target.is_broadcast() || target.is_unspecified() {
        return Ok(Parsed::Ignored);
    }
    Ok(Parsed::Query(Query::Arp { eth_src, sender_mac, sender_ip, target }))
}

fn parse_ns(eth_src: Mac, payload: &[u8]) -> Result<Parsed, Malformed> {
    let ip = Ipv6Slice::from_slice(payload).map_err(|_| Malformed("truncated or invalid IPv6 packet"))?;
    let header = ip.header();
    let ip_payload = ip.payload();
    // NS never carries extension headers; the socket filter only passes next-header ICMPv6 anyway.
    if ip_payload.ip_number != IpNumber::IPV6_ICMP || !ip.extensions().is_empty() {
        return Ok(Parsed::Ignored);
    }
    let icmp = Icmpv6Slice::from_slice(ip_payload.payload).map_err(|_| Malformed("truncated ICMPv6"))?;
    if icmp.type_u8() != ICMPV6_NS {
        return Ok(Parsed::Ignored);
    }
    let source = header.source_addr();
    let destination = header.destination_addr();
    if header.hop_limit() != NDP_HOP_LIMIT {
        return Err(Malformed("NS hop limit is not 255"));
    }
    if icmp.code_u8() != 0 {
        return Err(Malformed("NS code is not 0"));
    }
    if !icmp.is_checksum_valid(source.octets(), destination.octets()) {
        return Err(Malformed("NS checksum is invalid"));
    }
    let ns = match icmp.payload_slice() {
        Ok(etherparse::icmpv6::Icmpv6PayloadSlice::NeighborSolicitation(ns)) => ns,
        _ => return Err(Malformed("NS shorter than 24 bytes")),
    };
    let target = ns.target_address();
    if target.is_multicast() {
        return Err(Malformed("NS target is a multicast address"));
    }
    let mut sllao = None;
    for option in ns.options_iterator() {
        match option {
            Ok(NdpOptionSlice::SourceLinkLayerAddress(o)) => {
                let lla: [u8; 6] =
                    o.link_layer_address().try_into().map_err(|_| Malformed("NS SLLAO is not 6 bytes"))?;
                sllao = Some(Mac(lla));
            }
            Ok(_) => {}
            Err(_) => return Err(Malformed("NS option has zero or truncated length")),
        }
    }
    if source.is_unspecified() {
        if destination != solicited_node(target) {
            return Err(Malformed("DAD NS not sent to the solicited-node group"));
        }
        if sllao.is_some() {
            return Err(Malformed("DAD NS carries a source link-layer option"));
        }
    }
    Ok(Parsed::Query(Query::Ns { eth_src, source, target, sllao }))
}

/// The ARP reply to a request for `target` (RFC 826): sender = (our MAC, target), target = the
/// requester; unicast to the requester's hardware address.
pub fn arp_reply(our_mac: Mac, sender_mac: Mac, sender_ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    arp_frame(our_mac, sender_mac, ArpOperation::REPLY, (our_mac, target), (sender_mac, sender_ip))
}

/// Gratuitous ARP, request form (RFC 5227 §3 announcement): sender = target = `ip`, target hardware
/// address zero, broadcast.
pub fn gratuitous_arp_request(our_mac: Mac, ip: Ipv4Addr) -> Vec<u8> {
    arp_frame(our_mac, Mac::BROADCAST, ArpOperation::REQUEST, (our_mac, ip), (Mac::ZERO, ip))
}

/// Gratuitous ARP, reply form (for hosts that update their cache only on replies): sender = target =
/// `ip`, target hardware address broadcast, broadcast.
pub fn gratuitous_arp_reply(our_mac: Mac, ip: Ipv4Addr) -> Vec<u8> {
    arp_frame(our_mac, Mac::BROADCAST, ArpOperation::REPLY, (our_mac, ip), (Mac::BROADCAST, ip))
}

fn arp_frame(
    eth_src: Mac,
    eth_dst: Mac,
    op: ArpOperation,
    sender: (Mac, Ipv4Addr),
    target: (Mac, Ipv4Addr),
) -> Vec<u8> {
    let arp = ArpPacket::new(
        ArpHardwareId::ETHERNET,
        EtherType::IPV4,
        op,
        &sender.0.0,
        &sender.1.octets(),
        &target.0.0,
        &target.1.octets(),
    )
    .expect("fixed Ethernet/IPv4 sizes");
    let builder = PacketBuilder::ethernet2(eth_src.0, eth_dst.0).arp(arp);
    let mut out = Vec::with_capacity(builder.size());
    builder.write(&mut out).expect("writing to a Vec cannot fail");
    out
}

/// The answer to a Neighbor Solicitation (RFC 4861 §7.2.4): from a DAD probe (unspecified source),
/// an advertisement to all-nodes with Solicited clear; otherwise a unicast solicited advertisement
/// to the solicitor, at its SLLAO or (without one) at the frame's Ethernet source. Override set,
/// target link-layer option always included; the IPv6 source is the target address itself, which
/// works on interfaces without any address of their own.
pub fn neighbor_advertisement(
    our_mac: Mac,
    query_source: Ipv6Addr,
    eth_src: Mac,
    sllao: Option<Mac>,
    target: Ipv6Addr,
) -> Vec<u8> {
    if query_source.is_unspecified() {
        na_frame(our_mac, target, ALL_NODES, Mac::ipv6_multicast(ALL_NODES), false)
    } else {
        na_frame(our_mac, target, query_source, sllao.unwrap_or(eth_src), true)
    }
}

/// Unsolicited Neighbor Advertisement (RFC 4861 §7.2.6): Override set, Solicited clear, to
/// all-nodes, with the target link-layer option.
pub fn unsolicited_na(our_mac: Mac, ip: Ipv6Addr) -> Vec<u8> {
    na_frame(our_mac, ip, ALL_NODES, Mac::ipv6_multicast(ALL_NODES), false)
}

fn na_frame(our_mac: Mac, target: Ipv6Addr, ip_dst: Ipv6Addr, eth_dst: Mac, solicited: bool) -> Vec<u8> {
    let flags = NeighborAdvertisementHeader { router: false, solicited, r#override: true };
    let mut body = [0u8; 24];
    body[..16].copy_from_slice(&target.octets());
    // Target link-layer address option: type 2, length 1 (8 bytes), the MAC.
    body[16] = 2;
    body[17] = 1;
    body[18..].copy_from_slice(&our_mac.0);
    let builder = PacketBuilder::ethernet2(our_mac.0, eth_dst.0)
        .ipv6(target.octets(), ip_dst.octets(), NDP_HOP_LIMIT)
        .icmpv6(Icmpv6Type::NeighborAdvertisement(flags));
    let mut out = Vec::with_capacity(builder.size(body.len()));
    builder.write(&mut out, &body).expect("writing to a Vec cannot fail");
    out
}

/// A Neighbor Solicitation for `target` (for tests and probes): to the solicited-node group, with
/// an SLLAO when `with_sllao` and the source is specified.
pub fn neighbor_solicitation(src_mac: Mac, source: Ipv6Addr, target: Ipv6Addr, with_sllao: bool) -> Vec<u8> {
    let group = solicited_node(target);
    let mut body = Vec::with_capacity(24);
    body.extend_from_slice(&target.octets());
    if with_sllao && !source.is_unspecified() {
        body.extend_from_slice(&[1, 1]);
        body.extend_from_slice(&src_mac.0);
    }
    let builder = PacketBuilder::ethernet2(src_mac.0, Mac::ipv6_multicast(group).0)
        .ipv6(source.octets(), group.octets(), NDP_HOP_LIMIT)
        .icmpv6_raw(ICMPV6_NS, 0, [0; 4]);
    let mut out = Vec::with_capacity(builder.size(body.len()));
    builder.write(&mut out, &body).expect("writing to a Vec cannot fail");
    out
}

/// An ARP request from (`src_mac`, `sender_ip`) for `target`, broadcast (for tests and probes).
pub fn arp_request(src_mac: Mac, sender_ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    arp_frame(src_mac, Mac::BROADCAST, ArpOperation::REQUEST, (src_mac, sender_ip), (Mac::ZERO, target))
}

/// A decoded ARP packet or Neighbor Advertisement, for tests and captures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    Arp {
        eth_dst: Mac,
        op: u16,
        sender_mac: Mac,
        sender_ip: Ipv4Addr,
        target_mac: Mac,
        target_ip: Ipv4Addr,
    },
    Na {
        eth_src: Mac,
        eth_dst: Mac,
        ip_src: Ipv6Addr,
        ip_dst: Ipv6Addr,
        solicited: bool,
        override_: bool,
        router: bool,
        target: Ipv6Addr,
        tlla: Option<Mac>,
    },
}

/// Decodes ARP packets and Neighbor Advertisements (anything else: `None`).
pub fn observe(frame: &[u8]) -> Option<Observed> {
    let eth = Ethernet2Slice::from_slice_without_fcs(frame).ok()?;
    match eth.ether_type() {
        EtherType::ARP => {
            let arp =
                ArpPacketSlice::from_slice(eth.payload_slice()).ok()?.to_packet().try_eth_ipv4().ok()?;
            Some(Observed::Arp {
                eth_dst: Mac(eth.destination()),
                op: arp.operation.0,
                sender_mac: Mac(arp.sender_mac),
                sender_ip: arp.sender_ipv4_addr(),
                target_mac: Mac(arp.target_mac),
                target_ip: arp.target_ipv4_addr(),
            })
        }
        EtherType::IPV6 => {
            let ip = Ipv6Slice::from_slice(eth.payload_slice()).ok()?;
            let icmp = Icmpv6Slice::from_slice(ip.payload().payload).ok()?;
            let Icmpv6Type::NeighborAdvertisement(flags) = icmp.icmp_type() else { return None };
            let Ok(etherparse::icmpv6::Icmpv6PayloadSlice::NeighborAdvertisement(na)) = icmp.payload_slice()
            else {
                return None;
            };
            let tlla = na.options_iterator().find_map(|o| match o {
                Ok(NdpOptionSlice::TargetLinkLayerAddress(t)) => {
                    t.link_layer_address().try_into().ok().map(Mac)
                }
                _ => None,
            });
            Some(Observed::Na {
                eth_src: Mac(eth.source()),
                eth_dst: Mac(eth.destination()),
                ip_src: ip.header().source_addr(),
                ip_dst: ip.header().destination_addr(),
                solicited: flags.solicited,
                override_: flags.r#override,
                router: flags.router,
                target: na.target_address(),
                tlla,
            })
        }
        _ => None,
    }
}

/// An MLD message seen on the wire (for tests and captures).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mld {
    /// An MLDv2 report (RFC 3810 §5.2): its records as (record type, group, number of sources).
    /// Record types: 1 MODE_IS_INCLUDE, 2 MODE_IS_EXCLUDE, 3 CHANGE_TO_INCLUDE_MODE (with no
    /// source: a leave), 4 CHANGE_TO_EXCLUDE_MODE (with no source: a join), 5 ALLOW, 6 BLOCK.
    ReportV2 { ip_src: Ipv6Addr, records: Vec<(u8, Ipv6Addr, u16)> },
    /// An MLDv1 report (type 131) or done (type 132) for `group` (RFC 2710).
    V1 { ip_src: Ipv6Addr, icmp_type: u8, group: Ipv6Addr },
    /// A query (type 130, MLDv1 or v2) for `group` (`::`: a general query).
    Query { ip_src: Ipv6Addr, group: Ipv6Addr },
}

/// ICMPv6 types of MLD messages.
pub const MLD_QUERY: u8 = 130;
pub const MLD_V1_REPORT: u8 = 131;
pub const MLD_V1_DONE: u8 = 132;
pub const MLD_V2_REPORT: u8 = 143;
/// MLDv2 record types that say "joined" and "left" when they carry no source.
pub const MLD_CHANGE_TO_INCLUDE: u8 = 3;
pub const MLD_CHANGE_TO_EXCLUDE: u8 = 4;

impl Mld {
    /// Whether this says that the sender joined `group` (MLDv1 report, or an MLDv2 record
    /// excluding no source: "every source").
    pub fn joins(&self, group: Ipv6Addr) -> bool {
        match self {
            Mld::ReportV2 { records, .. } => {
                records.iter().any(|&(kind, g, sources)| g == group && matches!(kind, 2 | 4) && sources == 0)
            }
            Mld::V1 { icmp_type, group: g, .. } => *icmp_type == MLD_V1_REPORT && *g == group,
            Mld::Query { .. } => false,
        }
    }

    /// Whether this says that the sender left `group` (MLDv1 done, or an MLDv2 record
    /// changing to include no source: "no source").
    pub fn leaves(&self, group: Ipv6Addr) -> bool {
        match self {
            Mld::ReportV2 { records, .. } => records
                .iter()
                .any(|&(kind, g, sources)| g == group && kind == MLD_CHANGE_TO_INCLUDE && sources == 0),
            Mld::V1 { icmp_type, group: g, .. } => *icmp_type == MLD_V1_DONE && *g == group,
            Mld::Query { .. } => false,
        }
    }

    /// The sender's IPv6 address (link-local, or `::` when it has none, RFC 3590).
    pub fn ip_src(&self) -> Ipv6Addr {
        match self {
            Mld::ReportV2 { ip_src, .. } | Mld::V1 { ip_src, .. } | Mld::Query { ip_src, .. } => *ip_src,
        }
    }
}

/// Decodes MLD queries, reports and dones (anything else, or anything truncated: `None`). MLD messages carry
/// a hop-by-hop Router Alert option, which is skipped.
pub fn observe_mld(frame: &[u8]) -> Option<Mld> {
    let eth = Ethernet2Slice::from_slice_without_fcs(frame).ok()?;
    if eth.ether_type() != EtherType::IPV6 {
        return None;
    }
    let ip = Ipv6Slice::from_slice(eth.payload_slice()).ok()?;
    if ip.payload().ip_number != IpNumber::IPV6_ICMP {
        return None;
    }
    let ip_src = ip.header().source_addr();
    let icmp = ip.payload().payload;
    let group_at = |at: usize| -> Option<Ipv6Addr> {
        <[u8; 16]>::try_from(icmp.get(at..at + 16)?).ok().map(Ipv6Addr::from)
    };
    match *icmp.first()? {
        MLD_QUERY => Some(Mld::Query { ip_src, group: group_at(8)? }),
        t @ (MLD_V1_REPORT | MLD_V1_DONE) => Some(Mld::V1 { ip_src, icmp_type: t, group: group_at(8)? }),
        MLD_V2_REPORT => {
            let count = u16::from_be_bytes(icmp.get(6..8)?.try_into().ok()?);
            let mut at = 8;
            let mut records = Vec::with_capacity(usize::from(count).min(64));
            for _ in 0..count {
                let header = icmp.get(at..at + 4)?;
                let (kind, aux_words) = (header[0], usize::from(header[1]));
                let sources = u16::from_be_bytes([header[2], header[3]]);
                records.push((kind, group_at(at + 4)?, sources));
                at += 20 + 16 * usize::from(sources) + 4 * aux_words;
            }
            Some(Mld::ReportV2 { ip_src, records })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NODE: Mac = Mac([0x02, 0, 0, 0, 0, 0x11]);
    const CLIENT: Mac = Mac([0x02, 0, 0, 0, 0, 0x02]);
    const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 200);
    const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

    fn vip6() -> Ipv6Addr {
        "2001:db8:100::1000".parse().unwrap()
    }
    fn client6() -> Ipv6Addr {
        "2001:db8:100::2".parse().unwrap()
    }

    #[test]
    fn arp_request_parses_and_reply_follows_rfc826() {
        let req = arp_request(CLIENT, CLIENT_IP, VIP);
        let q = parse(&req).unwrap();
        let Parsed::Query(Query::Arp { eth_src, sender_mac, sender_ip, target }) = q else { panic!("{q:?}") };
        assert_eq!((eth_src, sender_mac, sender_ip, target), (CLIENT, CLIENT, CLIENT_IP, VIP));
        let reply = observe(&arp_reply(NODE, sender_mac, sender_ip, target)).unwrap();
        assert_eq!(
            reply,
            Observed::Arp {
                eth_dst: CLIENT,
                op: 2,
                sender_mac: NODE,
                sender_ip: VIP,
                target_mac: CLIENT,
                target_ip: CLIENT_IP
            }
        );
        // The reply itself and gratuitous requests are not questions.
        assert_eq!(parse(&arp_reply(NODE, CLIENT, CLIENT_IP, VIP)).unwrap(), Parsed::Ignored);
        assert_eq!(parse(&gratuitous_arp_request(CLIENT, VIP)).unwrap(), Parsed::Ignored);
    }

    #[test]
    fn gratuitous_arp_forms() {
        let Some(Observed::Arp { eth_dst, op, sender_ip, target_ip, sender_mac, target_mac }) =
            observe(&gratuitous_arp_request(NODE, VIP))
        else {
            panic!()
        };
        assert_eq!(
            (eth_dst, op, sender_mac, sender_ip, target_mac, target_ip),
            (Mac::BROADCAST, 1, NODE, VIP, Mac::ZERO, VIP)
        );
        let Some(Observed::Arp { eth_dst, op, sender_ip, target_ip, .. }) =
            observe(&gratuitous_arp_reply(NODE, VIP))
        else {
            panic!()
        };
        assert_eq!((eth_dst, op, sender_ip, target_ip), (Mac::BROADCAST, 2, VIP, VIP));
    }

    #[test]
    fn ns_with_and_without_sllao() {
        for with in [true, false] {
            let ns = neighbor_solicitation(CLIENT, client6(), vip6(), with);
            let Parsed::Query(Query::Ns { eth_src, source, target, sllao }) = parse(&ns).unwrap() else {
                panic!()
            };
            assert_eq!((eth_src, source, target), (CLIENT, client6(), vip6()));
            assert_eq!(sllao, with.then_some(CLIENT));
            let na = observe(&neighbor_advertisement(NODE, source, eth_src, sllao, target)).unwrap();
            assert_eq!(
                na,
                Observed::Na {
                    eth_src: NODE,
                    eth_dst: CLIENT,
                    ip_src: vip6(),
                    ip_dst: client6(),
                    solicited: true,
                    override_: true,
                    router: false,
                    target: vip6(),
                    tlla: Some(NODE)
                }
            );
        }
    }

    #[test]
    fn na_prefers_sllao_over_ethernet_source() {
        let other = Mac([0x02, 9, 9, 9, 9, 9]);
        let Observed::Na { eth_dst, .. } =
            observe(&neighbor_advertisement(NODE, client6(), CLIENT, Some(other), vip6())).unwrap()
        else {
            panic!()
        };
        assert_eq!(eth_dst, other);
    }

    #[test]
    fn dad_probe_is_answered_to_all_nodes_without_solicited() {
        let ns = neighbor_solicitation(CLIENT, Ipv6Addr::UNSPECIFIED, vip6(), true);
        let Parsed::Query(Query::Ns { source, eth_src, sllao, target }) = parse(&ns).unwrap() else {
            panic!()
        };
        assert_eq!(sllao, None, "no SLLAO from the unspecified address");
        let Observed::Na { eth_dst, ip_dst, solicited, override_, .. } =
            observe(&neighbor_advertisement(NODE, source, eth_src, sllao, target)).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (eth_dst, ip_dst, solicited, override_),
            (Mac([0x33, 0x33, 0, 0, 0, 1]), ALL_NODES, false, true)
        );
    }

    #[test]
    fn unsolicited_na_has_override_and_tlla() {
        let Observed::Na { ip_dst, solicited, override_, tlla, target, .. } =
            observe(&unsolicited_na(NODE, vip6())).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (ip_dst, solicited, override_, tlla, target),
            (ALL_NODES, false, true, Some(NODE), vip6())
        );
    }

    #[test]
    fn invalid_ns_is_malformed() {
        let good = neighbor_solicitation(CLIENT, client6(), vip6(), true);
        // Hop limit (IPv6 byte 7 = frame byte 21) not 255.
        let mut bad = good.clone();
        bad[21] = 64;
        assert!(parse(&bad).is_err());
        // Corrupted checksum (ICMPv6 starts at 54; checksum at 56).
        let mut bad = good.clone();
        bad[56] ^= 0xff;
        assert!(parse(&bad).is_err());
        // Truncated: the IPv6 payload length no longer fits.
        assert!(parse(&good[..good.len() - 4]).is_err());
        // Multicast target.
        let bad = neighbor_solicitation(CLIENT, client6(), ALL_NODES, false);
        assert!(parse(&bad).is_err());
    }

    #[test]
    fn invalid_arp_is_malformed() {
        let good = arp_request(CLIENT, CLIENT_IP, VIP);
        assert!(parse(&good[..30]).is_err());
        let mut bad = good.clone();
        bad[18] = 8; // hardware size 8
        assert!(parse(&bad).is_err());
        assert!(parse(&good[..10]).is_err());
    }

    #[test]
    fn solicited_node_group() {
        assert_eq!(solicited_node(vip6()), "ff02::1:ff00:1000".parse::<Ipv6Addr>().unwrap());
        assert_eq!(Mac::ipv6_multicast(solicited_node(vip6())), "33:33:ff:00:10:00".parse().unwrap());
        assert_eq!(NODE.to_string(), "02:00:00:00:00:11");
    }

    /// An MLD message as Linux sends it: IPv6 with a hop-by-hop Router Alert, to `dst`.
    fn mld_frame(src: Ipv6Addr, dst: Ipv6Addr, icmp: &[u8]) -> Vec<u8> {
        let mut f = vec![0x33, 0x33, 0, 0, 0, 0x16];
        f.extend_from_slice(&NODE.0);
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&u16::try_from(8 + icmp.len()).unwrap().to_be_bytes());
        f.extend_from_slice(&[0, 1]); // next header hop-by-hop, hop limit 1
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&dst.octets());
        f.extend_from_slice(&[58, 0, 5, 2, 0, 0, 1, 0]); // ICMPv6 next; Router Alert (MLD); PadN
        f.extend_from_slice(icmp);
        f
    }

    #[test]
    fn mld_reports_and_dones_decode() {
        let src: Ipv6Addr = "fe80::11".parse().unwrap();
        let group = solicited_node(vip6());
        let other: Ipv6Addr = "ff02::1:ff00:1".parse().unwrap();
        // MLDv2: a join of `group` (CHANGE_TO_EXCLUDE, no source), then a record with one source
        // and one aux word, then a leave of `other`.
        let mut v2 = vec![MLD_V2_REPORT, 0, 0, 0, 0, 0, 0, 3];
        v2.extend_from_slice(&[MLD_CHANGE_TO_EXCLUDE, 0, 0, 0]);
        v2.extend_from_slice(&group.octets());
        v2.extend_from_slice(&[5, 1, 0, 1]);
        v2.extend_from_slice(&other.octets());
        v2.extend_from_slice(&vip6().octets());
        v2.extend_from_slice(&[0; 4]);
        v2.extend_from_slice(&[MLD_CHANGE_TO_INCLUDE, 0, 0, 0]);
        v2.extend_from_slice(&other.octets());
        let mld = observe_mld(&mld_frame(src, "ff02::16".parse().unwrap(), &v2)).unwrap();
        assert_eq!(
            mld,
            Mld::ReportV2 {
                ip_src: src,
                records: vec![
                    (MLD_CHANGE_TO_EXCLUDE, group, 0),
                    (5, other, 1),
                    (MLD_CHANGE_TO_INCLUDE, other, 0)
                ]
            }
        );
        assert!(mld.joins(group) && !mld.leaves(group));
        assert!(mld.leaves(other) && !mld.joins(other));
        assert_eq!(mld.ip_src(), src);
        // Truncated inside the records: nothing.
        let frame = mld_frame(src, "ff02::16".parse().unwrap(), &v2[..40]);
        assert_eq!(observe_mld(&frame), None);

        // MLDv1: report and done, from `::` (no link-local address).
        for (t, joins) in [(MLD_V1_REPORT, true), (MLD_V1_DONE, false)] {
            let mut v1 = vec![t, 0, 0, 0, 0, 0, 0, 0];
            v1.extend_from_slice(&group.octets());
            let mld = observe_mld(&mld_frame(Ipv6Addr::UNSPECIFIED, group, &v1)).unwrap();
            assert_eq!((mld.joins(group), mld.leaves(group)), (joins, !joins));
            assert_eq!(mld.ip_src(), Ipv6Addr::UNSPECIFIED);
        }
        // A general query.
        let mut query = vec![MLD_QUERY, 0, 0, 0, 0, 0, 0, 0];
        query.extend_from_slice(&[0; 16]);
        let mld = observe_mld(&mld_frame(src, ALL_NODES, &query)).unwrap();
        assert_eq!(mld, Mld::Query { ip_src: src, group: Ipv6Addr::UNSPECIFIED });
        assert!(!mld.joins(group) && !mld.leaves(group));
        // Not MLD.
        assert_eq!(observe_mld(&neighbor_solicitation(CLIENT, client6(), vip6(), true)), None);
        assert_eq!(observe_mld(&arp_request(CLIENT, CLIENT_IP, VIP)), None);
    }

    proptest! {
        #[test]
        fn parse_never_panics(frame in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&frame);
            let _ = observe(&frame);
            let _ = observe_mld(&frame);
        }

        #[test]
        fn parse_never_panics_on_mutated_queries(i in 0usize..90, b in any::<u8>(), cut in 0usize..90) {
            for mut f in [arp_request(CLIENT, CLIENT_IP, VIP), neighbor_solicitation(CLIENT, client6(), vip6(), true)] {
                if i < f.len() { f[i] = b; }
                f.truncate(cut.max(1));
                let _ = parse(&f);
            }
        }
    }
}
