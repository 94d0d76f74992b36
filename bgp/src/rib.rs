//! Adj-RIB-Out of one session: the routes we want the peer to have, the routes it has been sent,
//! and the UPDATEs that take it from one to the other (RFC 4271 §3.2, §9.2).
//!
//! The owner states what it wants ([`AdjRibOut::announce`], [`AdjRibOut::withdraw`],
//! [`AdjRibOut::replace_all`], [`AdjRibOut::withdraw_all`]); every call only marks the prefixes it
//! touched, so [`AdjRibOut::take_updates`] looks at those alone and sends only what changed: with
//! 10,000 prefixes on a session, one new Service costs one small UPDATE, not a table walk.
//!
//! # What the UPDATEs look like
//! - Withdrawals first (IPv4 in the classic field, IPv6 in MP_UNREACH_NLRI), so a prefix that moves
//!   between attribute sets is never withdrawn after its new announcement.
//! - Then announcements, one run of UPDATEs per (family, attribute set), each packed with as many
//!   prefixes as fit in 4096 bytes: 10,000 IPv4 /32s take 13 UPDATEs.
//! - Attributes: ORIGIN IGP, AS_PATH (our AS alone on eBGP, empty on iBGP), NEXT_HOP or the
//!   MP_REACH_NLRI next hop, LOCAL_PREF on iBGP only (RFC 4271 §5.1.5), COMMUNITIES and
//!   LARGE_COMMUNITIES when set, in ascending type order (RFC 4271 §5). Never MED: every node
//!   sends the same attributes for a Service, so routers see equal paths and install ECMP.
//! - After the first batch of a session, one End-of-RIB marker per family sent (RFC 4724 §2),
//!   whether or not graceful restart was negotiated: routers use it to end their initial
//!   best-path delay.
//!
//! A prefix whose family the session did not negotiate, or has no next hop for, is kept wanted
//! but not sent; [`AdjRibOut::reset`] (a new session) looks at every prefix again.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use thiserror::Error;

use crate::codec::{
    AsSegment, Family, HEADER_LEN, LargeCommunity, MAX_MESSAGE_LEN, MpReachV6, Origin, PathAttribute,
    SegmentKind, Update, attribute_header_len, v4_prefix_len, v6_prefix_len,
};

/// At most this many standard communities on one route: with the large ones below, the
/// attributes stay well under an UPDATE's 4096 bytes, leaving room for prefixes.
pub const MAX_COMMUNITIES: usize = 256;
/// At most this many large communities on one route.
pub const MAX_LARGE_COMMUNITIES: usize = 128;

/// The LOCAL_PREF sent on iBGP when the advertisement sets none (the usual default).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// Why route attributes are refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RibError {
    /// More standard communities than [`MAX_COMMUNITIES`].
    #[error("{0} communities, more than the {MAX_COMMUNITIES} a route may carry")]
    TooManyCommunities(usize),
    /// More large communities than [`MAX_LARGE_COMMUNITIES`].
    #[error("{0} large communities, more than the {MAX_LARGE_COMMUNITIES} a route may carry")]
    TooManyLargeCommunities(usize),
}

/// The attributes an advertisement gives its prefixes. Communities are kept sorted and without
/// duplicates, so two advertisements with the same set share UPDATEs.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteAttrs {
    communities: Vec<u32>,
    large_communities: Vec<LargeCommunity>,
    local_pref: Option<u32>,
}

impl RouteAttrs {
    /// Attributes with these communities and, for iBGP sessions, this LOCAL_PREF.
    pub fn new(
        mut communities: Vec<u32>,
        mut large_communities: Vec<LargeCommunity>,
        local_pref: Option<u32>,
    ) -> Result<RouteAttrs, RibError> {
        communities.sort_unstable();
        communities.dedup();
        large_communities.sort_unstable();
        large_communities.dedup();
        if communities.len() > MAX_COMMUNITIES {
            return Err(RibError::TooManyCommunities(communities.len()));
        }
        if large_communities.len() > MAX_LARGE_COMMUNITIES {
            return Err(RibError::TooManyLargeCommunities(large_communities.len()));
        }
        Ok(RouteAttrs { communities, large_communities, local_pref })
    }

    /// Standard communities, sorted.
    pub fn communities(&self) -> &[u32] {
        &self.communities
    }

    /// Large communities, sorted.
    pub fn large_communities(&self) -> &[LargeCommunity] {
        &self.large_communities
    }

    /// LOCAL_PREF for iBGP, if set.
    pub fn local_pref(&self) -> Option<u32> {
        self.local_pref
    }
}

/// What every route of one session shares: set when the session comes up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionAttrs {
    /// Our AS.
    pub local_as: u32,
    /// Whether the peer is in another AS (AS_PATH carries ours; no LOCAL_PREF).
    pub ebgp: bool,
    /// The families both sides announced.
    pub families: Vec<Family>,
    /// NEXT_HOP for IPv4 routes: the node's address toward the peer.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Global next hop for IPv6 routes.
    pub next_hop_v6: Option<Ipv6Addr>,
    /// Link-local next hop sent beside the global one (RFC 2545 §3), for a peer on the same link.
    pub link_local_v6: Option<Ipv6Addr>,
}

impl SessionAttrs {
    fn sends_v4(&self) -> bool {
        self.families.contains(&Family::IPV4_UNICAST) && self.next_hop_v4.is_some()
    }

    fn sends_v6(&self) -> bool {
        self.families.contains(&Family::IPV6_UNICAST) && self.next_hop_v6.is_some()
    }

    /// Whether routes for `prefix` go to this peer.
    pub fn sends(&self, prefix: &IpNet) -> bool {
        match prefix {
            IpNet::V4(_) => self.sends_v4(),
            IpNet::V6(_) => self.sends_v6(),
        }
    }

    /// The attributes of an UPDATE announcing routes with `attrs`, MP_REACH_NLRI (when `mp` is
    /// given) in its place by type code.
    fn path_attributes(&self, attrs: &RouteAttrs, mp: Option<MpReachV6>) -> Vec<PathAttribute> {
        let mut out = vec![PathAttribute::Origin(Origin::Igp)];
        let path = if self.ebgp {
            vec![AsSegment { kind: SegmentKind::Sequence, asns: vec![self.local_as] }]
        } else {
            Vec::new()
        };
        out.push(PathAttribute::AsPath(path));
        if mp.is_none()
            && let Some(nh) = self.next_hop_v4
        {
            out.push(PathAttribute::NextHop(nh));
        }
        if !self.ebgp {
            out.push(PathAttribute::LocalPref(attrs.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)));
        }
        if !attrs.communities.is_empty() {
            out.push(PathAttribute::Communities(attrs.communities.clone()));
        }
        if let Some(mp) = mp {
            out.push(PathAttribute::MpReach(mp));
        }
        if !attrs.large_communities.is_empty() {
            out.push(PathAttribute::LargeCommunities(attrs.large_communities.clone()));
        }
        out
    }
}

/// The Adj-RIB-Out of one session (see the module documentation).
#[derive(Debug, Default)]
pub struct AdjRibOut {
    desired: BTreeMap<IpNet, Arc<RouteAttrs>>,
    sent: BTreeMap<IpNet, Arc<RouteAttrs>>,
    /// Prefixes whose desired state may differ from what was sent.
    dirty: BTreeSet<IpNet>,
    /// Whether this session's initial routes and End-of-RIB markers have gone out.
    synced: bool,
}

impl AdjRibOut {
    /// An empty table for a session that has not come up.
    pub fn new() -> AdjRibOut {
        AdjRibOut::default()
    }

    /// Wants `prefix` announced with `attrs` (host bits are dropped). Sharing one `Arc` among the
    /// prefixes of an advertisement keeps memory per prefix small.
    pub fn announce(&mut self, prefix: IpNet, attrs: Arc<RouteAttrs>) {
        let prefix = prefix.trunc();
        let same = self.desired.get(&prefix).is_some_and(|a| Arc::ptr_eq(a, &attrs) || **a == *attrs);
        if !same {
            self.desired.insert(prefix, attrs);
            self.dirty.insert(prefix);
        }
    }

    /// Wants `prefix` withdrawn.
    pub fn withdraw(&mut self, prefix: IpNet) {
        let prefix = prefix.trunc();
        if self.desired.remove(&prefix).is_some() {
            self.dirty.insert(prefix);
        }
    }

    /// Wants exactly `routes`: whatever is wanted now and not in `routes` is withdrawn.
    pub fn replace_all(&mut self, routes: impl IntoIterator<Item = (IpNet, Arc<RouteAttrs>)>) {
        let new: BTreeMap<IpNet, Arc<RouteAttrs>> = routes.into_iter().map(|(p, a)| (p.trunc(), a)).collect();
        let gone: Vec<IpNet> = self.desired.keys().filter(|p| !new.contains_key(p)).copied().collect();
        for p in gone {
            self.withdraw(p);
        }
        for (p, a) in new {
            self.announce(p, a);
        }
    }

    /// Wants nothing announced: the planned shutdown's last UPDATEs.
    pub fn withdraw_all(&mut self) {
        self.dirty.extend(self.desired.keys().copied());
        self.desired.clear();
    }

    /// The session went down or is new: the peer has none of our routes, and the next
    /// [`AdjRibOut::take_updates`] sends them all, then End-of-RIB.
    pub fn reset(&mut self) {
        self.sent.clear();
        self.dirty = self.desired.keys().copied().collect();
        self.synced = false;
    }

    /// The routes wanted.
    pub fn desired(&self) -> &BTreeMap<IpNet, Arc<RouteAttrs>> {
        &self.desired
    }

    /// The routes the peer has been sent.
    pub fn sent(&self) -> &BTreeMap<IpNet, Arc<RouteAttrs>> {
        &self.sent
    }

    /// Whether [`AdjRibOut::take_updates`] has anything to send.
    pub fn has_pending(&self) -> bool {
        !self.synced || !self.dirty.is_empty()
    }

    /// The UPDATEs that bring the peer from what it was sent to what is wanted, and records them
    /// as sent. Call it only while the session is Established.
    pub fn take_updates(&mut self, session: &SessionAttrs) -> Vec<Update> {
        let mut withdraw_v4 = Vec::new();
        let mut withdraw_v6 = Vec::new();
        let mut announce: BTreeMap<(bool, Arc<RouteAttrs>), Vec<IpNet>> = BTreeMap::new();
        for prefix in std::mem::take(&mut self.dirty) {
            let want = self.desired.get(&prefix).filter(|_| session.sends(&prefix));
            let have = self.sent.get(&prefix).cloned();
            match (want, have) {
                (None, Some(_)) => {
                    self.sent.remove(&prefix);
                    match prefix {
                        IpNet::V4(p) => withdraw_v4.push(p),
                        IpNet::V6(p) => withdraw_v6.push(p),
                    }
                }
                (Some(w), h) if h.as_ref().is_none_or(|h| **h != **w) => {
                    self.sent.insert(prefix, Arc::clone(w));
                    announce.entry((prefix.addr().is_ipv6(), Arc::clone(w))).or_default().push(prefix);
                }
                _ => {}
            }
        }

        let mut out = Vec::new();
        // Withdrawals: the 23 bytes of an empty UPDATE, then the prefixes (v4), or one
        // MP_UNREACH_NLRI of AFI/SAFI and the prefixes (v6).
        for chunk in pack(&withdraw_v4, v4_prefix_len, |n| HEADER_LEN + 4 + n) {
            out.push(Update { withdrawn: chunk.to_vec(), ..Update::default() });
        }
        for chunk in
            pack(&withdraw_v6, v6_prefix_len, |n| HEADER_LEN + 4 + attribute_header_len(3 + n) + 3 + n)
        {
            out.push(Update {
                attributes: vec![PathAttribute::MpUnreach(chunk.to_vec())],
                ..Update::default()
            });
        }
        for ((v6, attrs), prefixes) in &announce {
            if *v6 {
                let nets: Vec<Ipv6Net> = prefixes
                    .iter()
                    .filter_map(|p| if let IpNet::V6(n) = p { Some(*n) } else { None })
                    .collect();
                out.extend(announce_v6(session, attrs, &nets));
            } else {
                let nets: Vec<Ipv4Net> = prefixes
                    .iter()
                    .filter_map(|p| if let IpNet::V4(n) = p { Some(*n) } else { None })
                    .collect();
                let attributes = session.path_attributes(attrs, None);
                let fixed = encoded_len(&attributes);
                for chunk in pack(&nets, v4_prefix_len, |n| HEADER_LEN + 4 + fixed + n) {
                    out.push(Update {
                        withdrawn: vec![],
                        attributes: attributes.clone(),
                        nlri: chunk.to_vec(),
                    });
                }
            }
        }
        if !self.synced {
            self.synced = true;
            if session.sends_v4() {
                out.push(Update::end_of_rib(Family::IPV4_UNICAST));
            }
            if session.sends_v6() {
                out.push(Update::end_of_rib(Family::IPV6_UNICAST));
            }
        }
        out
    }
}

fn announce_v6(session: &SessionAttrs, attrs: &RouteAttrs, nets: &[Ipv6Net]) -> Vec<Update> {
    let Some(next_hop) = session.next_hop_v6 else { return Vec::new() };
    let reach = |nlri: Vec<Ipv6Net>| MpReachV6 { next_hop, link_local: session.link_local_v6, nlri };
    // MP_REACH_NLRI value: AFI, SAFI, next-hop length, next hops, reserved octet, prefixes.
    let nh_len = if session.link_local_v6.is_some() { 32 } else { 16 };
    let mp_fixed = 3 + 1 + nh_len + 1;
    // Everything but MP_REACH_NLRI: the attributes with an empty one, less its 3-byte header and
    // fixed part.
    let fixed = encoded_len(&session.path_attributes(attrs, Some(reach(Vec::new())))) - (3 + mp_fixed);
    pack(nets, v6_prefix_len, |n| HEADER_LEN + 4 + fixed + attribute_header_len(mp_fixed + n) + mp_fixed + n)
        .map(|chunk| Update {
            attributes: session.path_attributes(attrs, Some(reach(chunk.to_vec()))),
            ..Update::default()
        })
        .collect()
}

/// The encoded size of attributes that the codec accepts (ours always are).
fn encoded_len(attributes: &[PathAttribute]) -> usize {
    let mut buf = Vec::new();
    for a in attributes {
        // Only oversized values fail, and RouteAttrs bounds ours.
        let _ = a.encode_into(&mut buf);
    }
    buf.len()
}

/// Splits `items` into runs whose message size, `total(sum of item sizes)`, stays within 4096
/// bytes (`total` grows with its argument, so filling each run greedily is optimal). A run always
/// holds at least one item.
fn pack<T>(
    items: &[T],
    item_len: impl Fn(&T) -> usize,
    total: impl Fn(usize) -> usize,
) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut sum = 0;
        let mut n = 0;
        while n < rest.len() {
            let next = sum + item_len(&rest[n]);
            if n > 0 && total(next) > MAX_MESSAGE_LEN {
                break;
            }
            sum = next;
            n += 1;
        }
        let (run, tail) = rest.split_at(n);
        rest = tail;
        Some(run)
    })
}

/// Applies an UPDATE to a table the way a receiving router would (withdrawals, then
/// announcements): for tests and test peers, to check what a peer ends up with.
pub fn apply_update(table: &mut BTreeMap<IpNet, RouteAttrs>, update: &Update) {
    let mut attrs = RouteAttrs::default();
    let mut reach = Vec::new();
    for a in &update.attributes {
        match a {
            PathAttribute::Communities(c) => attrs.communities = c.clone(),
            PathAttribute::LargeCommunities(c) => attrs.large_communities = c.clone(),
            PathAttribute::LocalPref(p) => attrs.local_pref = Some(*p),
            PathAttribute::MpReach(mp) => reach = mp.nlri.clone(),
            PathAttribute::MpUnreach(w) => {
                for p in w {
                    table.remove(&IpNet::V6(*p));
                }
            }
            _ => {}
        }
    }
    for p in &update.withdrawn {
        table.remove(&IpNet::V4(*p));
    }
    for p in &update.nlri {
        table.insert(IpNet::V4(*p), attrs.clone());
    }
    for p in reach {
        table.insert(IpNet::V6(p), attrs.clone());
    }
}

#[cfg(test)]
mod tests;
