//! The one IP-range type FerroLB uses: an inclusive range of addresses of one family, parsed from
//! pool blocks, MetalLB address strings and annotations.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use thiserror::Error;

use crate::pool::IpBlock;

/// IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The family of an address. IPv4-mapped IPv6 addresses count as IPv6, as the API server does.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Kubernetes' spelling (`IPv4`, `IPv6`), as in `spec.ipFamilies`.
    pub fn as_k8s(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_k8s())
    }
}

/// Addresses as numbers, so ranges of both families are intervals over `u128`.
pub fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address of `family` whose number is `n`; `None` when `n` is too large for IPv4.
pub fn u128_to_ip(family: Family, n: u128) -> Option<IpAddr> {
    match family {
        Family::V4 => u32::try_from(n).ok().map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        Family::V6 => Some(IpAddr::V6(Ipv6Addr::from(n))),
    }
}

/// An inclusive range `first..=last` of one family; `first <= last` always holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpRange {
    first: IpAddr,
    last: IpAddr,
}

/// Why a range or block could not be used. Messages name the offending value.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum RangeError {
    #[error("{value:?} is not an IP address")]
    BadAddress { value: String },
    #[error("{value:?} is not an address prefix (expected e.g. 198.51.100.0/25 or 2001:db8::/64)")]
    BadCidr { value: String },
    #[error("start {start} is after stop {stop}")]
    Reversed { start: IpAddr, stop: IpAddr },
    #[error("start {start} and stop {stop} are of different address families")]
    MixedFamilies { start: IpAddr, stop: IpAddr },
    #[error("a block needs either cidr or start (with optional stop)")]
    Empty,
    #[error("a block has both cidr {cidr:?} and start {start:?}; use one")]
    Ambiguous { cidr: String, start: String },
    #[error("stop {stop:?} without start")]
    StopWithoutStart { stop: String },
}

/// Something worth telling the user about a block that is still usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockWarning {
    /// The CIDR had host bits set; the masked prefix is used.
    HostBitsMasked { given: String, used: IpNet },
}

impl fmt::Display for BlockWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockWarning::HostBitsMasked { given, used } => {
                write!(f, "cidr {given} has host bits set; using {used}")
            }
        }
    }
}

/// A parsed pool block: its range, and whether it came from a CIDR (first/last handling differs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedBlock {
    pub range: IpRange,
    /// The prefix, when the block was written as a CIDR.
    pub cidr: Option<IpNet>,
    pub warning: Option<BlockWarning>,
}

impl IpRange {
    /// The range `first..=last`; both must be of one family and in order.
    pub fn new(first: IpAddr, last: IpAddr) -> Result<Self, RangeError> {
        if Family::of(first) != Family::of(last) {
            return Err(RangeError::MixedFamilies { start: first, stop: last });
        }
        if ip_to_u128(first) > ip_to_u128(last) {
            return Err(RangeError::Reversed { start: first, stop: last });
        }
        Ok(Self { first, last })
    }

    /// One address.
    pub fn single(ip: IpAddr) -> Self {
        Self { first: ip, last: ip }
    }

    /// Every address of a prefix (host bits are ignored).
    pub fn from_net(net: IpNet) -> Self {
        let net = net.trunc();
        Self { first: net.network(), last: net.broadcast() }
    }

    pub fn first(&self) -> IpAddr {
        self.first
    }

    pub fn last(&self) -> IpAddr {
        self.last
    }

    pub fn family(&self) -> Family {
        Family::of(self.first)
    }

    /// Number of addresses (`u128` because a /0 IPv6 range has 2^128 of them, saturated to
    /// `u128::MAX`).
    pub fn len(&self) -> u128 {
        (ip_to_u128(self.last) - ip_to_u128(self.first)).saturating_add(1)
    }

    /// Never true: a range holds at least one address. Here for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        Family::of(ip) == self.family()
            && (ip_to_u128(self.first)..=ip_to_u128(self.last)).contains(&ip_to_u128(ip))
    }

    pub fn overlaps(&self, other: &IpRange) -> bool {
        self.family() == other.family()
            && ip_to_u128(self.first) <= ip_to_u128(other.last)
            && ip_to_u128(other.first) <= ip_to_u128(self.last)
    }

    /// Parses a MetalLB-style address string: a CIDR (`198.51.100.0/25`), a range
    /// (`198.51.100.10-198.51.100.20`, spaces allowed around `-`) or a single address.
    pub fn parse(s: &str) -> Result<Self, RangeError> {
        let s = s.trim();
        if s.contains('/') {
            return parse_cidr(s).map(|(net, _)| Self::from_net(net));
        }
        // An IPv6 address contains no '-', so a '-' always separates a range.
        if let Some((a, b)) = s.split_once('-') {
            return Self::new(parse_ip(a.trim())?, parse_ip(b.trim())?);
        }
        parse_ip(s).map(Self::single)
    }

    /// Parses a pool block (DESIGN.md §2): `cidr`, or `start` with optional `stop`.
    pub fn from_block(block: &IpBlock) -> Result<ParsedBlock, RangeError> {
        match (&block.cidr, &block.start, &block.stop) {
            (Some(cidr), None, None) => {
                let (net, warning) = parse_cidr(cidr)?;
                Ok(ParsedBlock { range: Self::from_net(net), cidr: Some(net.trunc()), warning })
            }
            (Some(cidr), Some(start), _) => {
                Err(RangeError::Ambiguous { cidr: cidr.clone(), start: start.clone() })
            }
            (Some(_), None, Some(stop)) | (None, None, Some(stop)) => {
                Err(RangeError::StopWithoutStart { stop: stop.clone() })
            }
            (None, Some(start), stop) => {
                let first = parse_ip(start)?;
                let last = stop.as_deref().map(parse_ip).transpose()?.unwrap_or(first);
                Ok(ParsedBlock { range: Self::new(first, last)?, cidr: None, warning: None })
            }
            (None, None, None) => Err(RangeError::Empty),
        }
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// Parses one address; surrounding white space is allowed, anything else is an error.
pub fn parse_ip(s: &str) -> Result<IpAddr, RangeError> {
    s.trim().parse().map_err(|_| RangeError::BadAddress { value: s.to_string() })
}

fn parse_cidr(s: &str) -> Result<(IpNet, Option<BlockWarning>), RangeError> {
    let net: IpNet = s.trim().parse().map_err(|_| RangeError::BadCidr { value: s.to_string() })?;
    let warning = (net.trunc() != net)
        .then(|| BlockWarning::HostBitsMasked { given: s.to_string(), used: net.trunc() });
    Ok((net.trunc(), warning))
}

/// One entry of a comma-separated address list that could not be parsed.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("entry {index} ({value:?}) is not an IP address")]
pub struct ListEntryError {
    /// 1-based position in the list, as a user counts.
    pub index: usize,
    pub value: String,
}

/// Parses a comma-separated address list (annotations such as `ferrolb.io/ips`). Valid entries
/// are returned in order without duplicates, bad ones as errors, so the valid rest can be served.
/// Empty entries (`a,,b`, a trailing comma) are ignored.
pub fn parse_ip_list(s: &str) -> (Vec<IpAddr>, Vec<ListEntryError>) {
    let mut ips = Vec::new();
    let mut errors = Vec::new();
    for (i, entry) in s.split(',').enumerate() {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        match parse_ip(entry) {
            Ok(ip) if !ips.contains(&ip) => ips.push(ip),
            Ok(_) => {}
            Err(_) => errors.push(ListEntryError { index: i + 1, value: entry.to_string() }),
        }
    }
    (ips, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks() {
        let b = IpRange::from_block(&IpBlock::cidr("198.51.100.128/25")).unwrap();
        assert_eq!(b.range.len(), 128);
        assert_eq!(b.range.first(), ip("198.51.100.128"));
        assert!(b.warning.is_none());

        let b = IpRange::from_block(&IpBlock::cidr("198.51.100.130/25")).unwrap();
        assert_eq!(b.range.first(), ip("198.51.100.128"));
        assert_eq!(
            b.warning.unwrap().to_string(),
            "cidr 198.51.100.130/25 has host bits set; using 198.51.100.128/25"
        );

        let b = IpRange::from_block(&IpBlock::cidr("2001:db8:100::/64")).unwrap();
        assert_eq!(b.range.len(), 1 << 64);

        let single = IpBlock { start: Some("203.0.113.7".into()), ..Default::default() };
        assert_eq!(IpRange::from_block(&single).unwrap().range.len(), 1);
    }

    #[test]
    fn block_errors_name_the_value() {
        let e = IpRange::from_block(&IpBlock::range("198.51.100.20", "198.51.100.10")).unwrap_err();
        assert_eq!(e.to_string(), "start 198.51.100.20 is after stop 198.51.100.10");
        let e = IpRange::from_block(&IpBlock::range("198.51.100.1", "2001:db8::1")).unwrap_err();
        assert!(matches!(e, RangeError::MixedFamilies { .. }));
        let e = IpRange::from_block(&IpBlock::cidr("198.51.100.0/33")).unwrap_err();
        assert!(e.to_string().contains("198.51.100.0/33"));
        let both =
            IpBlock { cidr: Some("198.51.100.0/24".into()), start: Some("198.51.100.1".into()), stop: None };
        assert!(matches!(IpRange::from_block(&both), Err(RangeError::Ambiguous { .. })));
        assert_eq!(IpRange::from_block(&IpBlock::default()), Err(RangeError::Empty));
        let stop_only = IpBlock { stop: Some("198.51.100.1".into()), ..Default::default() };
        assert!(matches!(IpRange::from_block(&stop_only), Err(RangeError::StopWithoutStart { .. })));
    }

    #[test]
    fn metallb_strings() {
        assert_eq!(IpRange::parse("198.51.100.10 - 198.51.100.20").unwrap().len(), 11);
        assert_eq!(IpRange::parse("2001:db8::1-2001:db8::ff").unwrap().len(), 255);
        assert_eq!(IpRange::parse("198.51.100.0/24").unwrap().len(), 256);
        assert_eq!(IpRange::parse("203.0.113.9").unwrap().len(), 1);
        assert!(IpRange::parse("198.51.100.x").is_err());
    }

    #[test]
    fn ip_lists_keep_the_valid_rest() {
        let (ips, errs) = parse_ip_list("198.51.100.130, nonsense,,2001:db8:100::1000,198.51.100.130");
        assert_eq!(ips, vec![ip("198.51.100.130"), ip("2001:db8:100::1000")]);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].to_string(), "entry 2 (\"nonsense\") is not an IP address");
    }

    #[test]
    fn whole_v6_space() {
        let all = IpRange::parse("::/0").unwrap();
        assert_eq!(all.len(), u128::MAX);
    }

    proptest! {
        #[test]
        fn overlap_is_symmetric_and_matches_containment(a in any::<u32>(), b in any::<u32>(), c in any::<u32>(), d in any::<u32>()) {
            let r1 = IpRange::new(IpAddr::V4(a.min(b).into()), IpAddr::V4(a.max(b).into())).unwrap();
            let r2 = IpRange::new(IpAddr::V4(c.min(d).into()), IpAddr::V4(c.max(d).into())).unwrap();
            prop_assert_eq!(r1.overlaps(&r2), r2.overlaps(&r1));
            let brute = r1.contains(r2.first()) || r1.contains(r2.last()) || r2.contains(r1.first());
            prop_assert_eq!(r1.overlaps(&r2), brute);
        }

        #[test]
        fn parse_never_panics(s in ".{0,80}") {
            let _ = IpRange::parse(&s);
            let _ = parse_ip_list(&s);
        }

        #[test]
        fn u128_roundtrip(n in any::<u32>()) {
            let ip = u128_to_ip(Family::V4, u128::from(n)).unwrap();
            prop_assert_eq!(ip_to_u128(ip), u128::from(n));
        }
    }
}
