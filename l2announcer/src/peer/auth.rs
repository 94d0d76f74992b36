//! The pure parts of peer-message authentication: the canonical encoding a MAC covers, signing and
//! verifying, and the replay window. No I/O, no clock.
//!
//! **Canonical encoding** (what the HMAC-SHA256 covers): the domain [`DOMAIN`], one byte for the
//! message kind ([`Kind`]), then every field except `mac` in a fixed order per kind: strings as a
//! big-endian `u64` byte length followed by their UTF-8 bytes, integers as big-endian `u64`. Every
//! variable-length part carries its length and the order is fixed, so two different messages never
//! encode to the same bytes; the kind byte keeps a Heartbeat from being accepted as anything else.
//!
//! **Replay window** ([`ReplayGuard`]): per sender node and epoch, a seq is accepted once, and only
//! if it is above the highest accepted one or within [`REPLAY_WINDOW`] below it and not seen yet (a
//! sender's heartbeats, acks and takeover notices to one recipient share one counter and travel
//! concurrently, so they may arrive slightly out of order; strictly "greater than the last" would
//! drop the slower one). The counter is per recipient, so the window is about messages to us only.

use std::collections::HashMap;

use ferrolb_proto::v1;
use ring::hmac;

use super::PeerKey;

/// Prefix of every canonical encoding: these bytes are a FerroLB peer message, format version 1.
pub const DOMAIN: &[u8] = b"ferrolb.v1.Peer\0";

/// How far below the highest accepted seq of a sender process a late message is still accepted.
pub const REPLAY_WINDOW: u64 = 128;

/// How many epochs (sender processes) of one node the replay guard remembers; older ones are
/// forgotten, least recently used first. Epochs change only when an announcer restarts, and only
/// authenticated messages reach the guard.
pub const EPOCHS_PER_NODE: usize = 4;

/// The message kinds, as tagged in the canonical encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Heartbeat = 1,
    HeartbeatAck = 2,
    TakeoverNotice = 3,
    TakeoverAck = 4,
}

/// Why a message was rejected. [`Reject::reason`] is the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// The MAC is missing, wrong, or present where this node has no key: the sender does not hold our
    /// key (another cluster, a stale or mistyped key, someone else entirely).
    Auth(&'static str),
    /// Authentic, but already accepted, too old to tell, from our own node name, or meant for another
    /// node: a copy of a real message, not something its sender is saying to us now.
    Replay(&'static str),
}

impl Reject {
    /// The `reason` label of `ferrolb_announcer_peer_rejected_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Reject::Auth(_) => "auth",
            Reject::Replay(_) => "replay",
        }
    }

    /// What was wrong, for logs and the gRPC status message.
    pub fn detail(self) -> &'static str {
        match self {
            Reject::Auth(d) | Reject::Replay(d) => d,
        }
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason(), self.detail())
    }
}

/// Builds a canonical encoding.
#[derive(Debug)]
pub struct Canon(Vec<u8>);

impl Canon {
    fn new(kind: Kind) -> Self {
        let mut b = Vec::with_capacity(128);
        b.extend_from_slice(DOMAIN);
        b.push(kind as u8);
        Self(b)
    }

    /// A length-prefixed string.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.0.extend_from_slice(&(s.len() as u64).to_be_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self
    }

    /// A big-endian integer.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
}

/// The header every peer message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub node: &'a str,
    pub epoch: u64,
    pub seq: u64,
    pub to: &'a str,
}

/// A peer message that carries a MAC.
pub trait Signed {
    const KIND: Kind;
    fn header(&self) -> Header<'_>;
    fn mac(&self) -> &[u8];
    fn set_mac(&mut self, mac: Vec<u8>);
    /// Appends the kind-specific fields, in their fixed order.
    fn body(&self, c: &mut Canon);
}

/// The bytes the MAC of `m` covers: everything but the MAC.
pub fn canonical<M: Signed>(m: &M) -> Vec<u8> {
    let h = m.header();
    let mut c = Canon::new(M::KIND);
    c.str(h.node).u64(h.epoch).u64(h.seq).str(h.to);
    m.body(&mut c);
    c.0
}

/// Sets the MAC of `m` (empty without a key).
pub fn sign<M: Signed>(key: Option<&PeerKey>, m: &mut M) {
    let mac = match key {
        Some(k) => hmac::sign(&k.0, &canonical(m)).as_ref().to_vec(),
        None => Vec::new(),
    };
    m.set_mac(mac);
}

/// Checks the MAC of `m` against our key. Without a key, only messages without a MAC pass: a peer
/// that has a key while we have none is misconfigured, and accepting it would hide that.
pub fn verify<M: Signed>(key: Option<&PeerKey>, m: &M) -> Result<(), Reject> {
    match (key, m.mac().is_empty()) {
        (None, true) => Ok(()),
        (None, false) => Err(Reject::Auth("message has a MAC but this node has no peer key")),
        (Some(_), true) => Err(Reject::Auth("message has no MAC")),
        (Some(k), false) => hmac::verify(&k.0, &canonical(m), m.mac())
            .map_err(|_| Reject::Auth("MAC does not verify (different peer key?)")),
    }
}

/// The checks every incoming message goes through, in order: MAC, sender is not ourselves, addressed
/// to us, not a replay. Records the seq in `guard` only when everything passed.
pub fn check_incoming<M: Signed>(
    key: Option<&PeerKey>,
    own_node: &str,
    guard: &mut ReplayGuard,
    m: &M,
) -> Result<(), Reject> {
    verify(key, m)?;
    let h = m.header();
    if h.node == own_node {
        return Err(Reject::Replay(
            "message from this node's own name (reflected, or a duplicate node name)",
        ));
    }
    if h.to != own_node {
        return Err(Reject::Replay("message addressed to another node"));
    }
    guard.accept(h.node, h.epoch, h.seq)
}

impl Signed for v1::Heartbeat {
    const KIND: Kind = Kind::Heartbeat;
    fn header(&self) -> Header<'_> {
        Header { node: &self.node, epoch: self.epoch, seq: self.seq, to: &self.to }
    }
    fn mac(&self) -> &[u8] {
        &self.mac
    }
    fn set_mac(&mut self, mac: Vec<u8>) {
        self.mac = mac;
    }
    fn body(&self, c: &mut Canon) {
        c.u64(self.sent_at).u64(u64::from(self.api_ok)).u64(self.silent.len() as u64);
        for s in &self.silent {
            c.str(&s.node).u64(s.silent_for_ms);
        }
    }
}

impl Signed for v1::HeartbeatAck {
    const KIND: Kind = Kind::HeartbeatAck;
    fn header(&self) -> Header<'_> {
        Header { node: &self.node, epoch: self.epoch, seq: self.seq, to: &self.to }
    }
    fn mac(&self) -> &[u8] {
        &self.mac
    }
    fn set_mac(&mut self, mac: Vec<u8>) {
        self.mac = mac;
    }
    fn body(&self, c: &mut Canon) {
        c.u64(self.heartbeat_epoch).u64(self.heartbeat_seq).u64(self.heartbeat_sent_at);
    }
}

impl Signed for v1::TakeoverNotice {
    const KIND: Kind = Kind::TakeoverNotice;
    fn header(&self) -> Header<'_> {
        Header { node: &self.node, epoch: self.epoch, seq: self.seq, to: &self.to }
    }
    fn mac(&self) -> &[u8] {
        &self.mac
    }
    fn set_mac(&mut self, mac: Vec<u8>) {
        self.mac = mac;
    }
    fn body(&self, c: &mut Canon) {
        c.str(&self.service_namespace)
            .str(&self.service_name)
            .str(&self.address)
            .str(&self.new_holder)
            .str(&self.lease_resource_version)
            .str(&self.replaced_resource_version);
    }
}

impl Signed for v1::TakeoverAck {
    const KIND: Kind = Kind::TakeoverAck;
    fn header(&self) -> Header<'_> {
        Header { node: &self.node, epoch: self.epoch, seq: self.seq, to: &self.to }
    }
    fn mac(&self) -> &[u8] {
        &self.mac
    }
    fn set_mac(&mut self, mac: Vec<u8>) {
        self.mac = mac;
    }
    fn body(&self, c: &mut Canon) {
        c.u64(self.notice_epoch).u64(self.notice_seq);
    }
}

/// Which seqs of one sender process were accepted: the highest, and a bitmap of the
/// [`REPLAY_WINDOW`] seqs at and below it (bit `i`: `highest - i`).
#[derive(Debug, Clone)]
struct Window {
    epoch: u64,
    highest: u64,
    seen: u128,
    /// Tick of the guard at the last acceptance, for evicting the least recently used epoch.
    used: u64,
}

const _: () = assert!(REPLAY_WINDOW == u128::BITS as u64);

/// Remembers which (node, epoch, seq) were accepted, to refuse them a second time.
///
/// Limits, by construction: a seq more than [`REPLAY_WINDOW`] below the highest is refused even if
/// never seen (it is too old to tell); the state lives in one receiver process, so a restarted
/// receiver (and one that forgot an epoch, see [`EPOCHS_PER_NODE`]) would accept recorded messages
/// of a sender process once more. Only a party that can record the node network's traffic can do
/// that, and the heartbeat Leases still tell the truth about a dead node.
#[derive(Debug, Clone, Default)]
pub struct ReplayGuard {
    nodes: HashMap<String, Vec<Window>>,
    tick: u64,
}

impl ReplayGuard {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `seq` of (`node`, `epoch`) would be accepted; changes nothing.
    pub fn check(&self, node: &str, epoch: u64, seq: u64) -> Result<(), Reject> {
        if seq == 0 {
            return Err(Reject::Replay("seq 0 is never sent"));
        }
        let Some(w) = self.nodes.get(node).and_then(|ws| ws.iter().find(|w| w.epoch == epoch)) else {
            return Ok(());
        };
        if seq > w.highest {
            return Ok(());
        }
        let back = w.highest - seq;
        if back >= REPLAY_WINDOW {
            return Err(Reject::Replay("seq too far behind the highest accepted one"));
        }
        if w.seen & (1u128 << back) != 0 {
            return Err(Reject::Replay("seq already accepted"));
        }
        Ok(())
    }

    /// Checks `seq` and, when it passes, records it as accepted.
    pub fn accept(&mut self, node: &str, epoch: u64, seq: u64) -> Result<(), Reject> {
        self.check(node, epoch, seq)?;
        self.tick += 1;
        let tick = self.tick;
        let windows = self.nodes.entry(node.to_owned()).or_default();
        let i = match windows.iter().position(|w| w.epoch == epoch) {
            Some(i) => i,
            None => {
                if windows.len() >= EPOCHS_PER_NODE
                    && let Some((lru, _)) = windows.iter().enumerate().min_by_key(|(_, w)| w.used)
                {
                    windows.swap_remove(lru);
                }
                windows.push(Window { epoch, highest: seq, seen: 0, used: tick });
                windows.len() - 1
            }
        };
        let w = &mut windows[i];
        w.used = tick;
        if seq > w.highest {
            let ahead = seq - w.highest;
            w.seen = if ahead >= REPLAY_WINDOW { 0 } else { w.seen << ahead };
            w.highest = seq;
        }
        w.seen |= 1u128 << (w.highest - seq);
        Ok(())
    }

    /// Forgets every sender process of `node`.
    pub fn forget(&mut self, node: &str) {
        self.nodes.remove(node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(b: u8) -> PeerKey {
        PeerKey::from_bytes(&[b; 32]).unwrap()
    }

    fn heartbeat() -> v1::Heartbeat {
        v1::Heartbeat {
            node: "n1".into(),
            epoch: 7,
            seq: 3,
            to: "n2".into(),
            mac: Vec::new(),
            sent_at: 123_456,
            api_ok: true,
            silent: Vec::new(),
        }
    }

    fn notice() -> v1::TakeoverNotice {
        v1::TakeoverNotice {
            node: "n2".into(),
            epoch: 9,
            seq: 10,
            to: "n1".into(),
            mac: Vec::new(),
            service_namespace: "default".into(),
            service_name: "web".into(),
            address: "198.51.100.128".into(),
            new_holder: "n2".into(),
            lease_resource_version: "42".into(),
            replaced_resource_version: "41".into(),
        }
    }

    #[test]
    fn sign_and_verify() {
        let k = key(1);
        let mut m = heartbeat();
        sign(Some(&k), &mut m);
        assert_eq!(m.mac.len(), 32);
        assert_eq!(verify(Some(&k), &m), Ok(()));
        assert!(matches!(verify(Some(&key(2)), &m), Err(Reject::Auth(_))));
        // Keyless receivers refuse MACs; keyed receivers refuse their absence.
        assert!(matches!(verify(None, &m), Err(Reject::Auth(_))));
        let mut bare = heartbeat();
        sign(None, &mut bare);
        assert!(bare.mac.is_empty());
        assert_eq!(verify(None, &bare), Ok(()));
        assert_eq!(verify(Some(&k), &bare), Err(Reject::Auth("message has no MAC")));
    }

    #[test]
    fn kinds_and_lengths_are_part_of_the_encoding() {
        // Same header and a body of one u64 in both: the kind tag alone tells them apart.
        let hb = heartbeat();
        let ack = v1::HeartbeatAck {
            node: hb.node.clone(),
            epoch: hb.epoch,
            seq: hb.seq,
            to: hb.to.clone(),
            ..Default::default()
        };
        let (a, b) = (canonical(&hb), canonical(&ack));
        assert_eq!(a[DOMAIN.len()], Kind::Heartbeat as u8);
        assert_eq!(b[DOMAIN.len()], Kind::HeartbeatAck as u8);
        assert_ne!(a[..DOMAIN.len() + 1], b[..DOMAIN.len() + 1]);
        // Moving a byte from one string to the next changes the encoding.
        let mut n1 = notice();
        n1.service_namespace = "defaultw".into();
        n1.service_name = "eb".into();
        assert_ne!(canonical(&n1), canonical(&notice()));
    }

    #[test]
    fn incoming_checks() {
        let k = key(1);
        let mut g = ReplayGuard::new();
        let mut m = heartbeat();
        sign(Some(&k), &mut m);
        assert_eq!(check_incoming(Some(&k), "n2", &mut g, &m), Ok(()));
        // The very same message again: a replay.
        assert_eq!(check_incoming(Some(&k), "n2", &mut g, &m), Err(Reject::Replay("seq already accepted")));
        // Not for us / from ourselves.
        let mut other = heartbeat();
        other.seq = 4;
        sign(Some(&k), &mut other);
        assert!(matches!(check_incoming(Some(&k), "n3", &mut g, &other), Err(Reject::Replay(_))));
        let mut own = heartbeat();
        own.seq = 5;
        own.to = "n1".into();
        sign(Some(&k), &mut own);
        assert!(matches!(check_incoming(Some(&k), "n1", &mut g, &own), Err(Reject::Replay(_))));
        // A tampered message fails authentication and leaves no trace in the guard.
        let mut tampered = other.clone();
        tampered.sent_at += 1;
        assert!(matches!(check_incoming(Some(&k), "n2", &mut g, &tampered), Err(Reject::Auth(_))));
        assert_eq!(check_incoming(Some(&k), "n2", &mut g, &other), Ok(()));
    }

    #[test]
    fn replay_window() {
        let mut g = ReplayGuard::new();
        assert!(g.accept("a", 1, 0).is_err());
        assert_eq!(g.accept("a", 1, 10), Ok(()));
        assert!(g.accept("a", 1, 10).is_err());
        // Late but unseen: accepted once.
        assert_eq!(g.accept("a", 1, 8), Ok(()));
        assert!(g.accept("a", 1, 8).is_err());
        assert_eq!(g.accept("a", 1, 11), Ok(()));
        assert_eq!(g.accept("a", 1, 9), Ok(()));
        assert!(g.check("a", 1, 10).is_err() && g.check("a", 1, 11).is_err());
        // Another epoch or node is another sequence.
        assert_eq!(g.accept("a", 2, 10), Ok(()));
        assert_eq!(g.accept("b", 1, 10), Ok(()));
        // Far ahead: the window slides; too old is refused even if never seen.
        assert_eq!(g.accept("a", 1, 11 + REPLAY_WINDOW), Ok(()));
        assert!(g.check("a", 1, 11).is_err());
        assert_eq!(g.accept("a", 1, 12), Ok(()));
        assert!(g.accept("a", 1, 12).is_err());
        assert!(g.accept("a", 1, 11 + REPLAY_WINDOW).is_err());
        // Shifting by exactly the window, and by more.
        assert_eq!(g.accept("c", 1, 1), Ok(()));
        assert_eq!(g.accept("c", 1, 1 + REPLAY_WINDOW), Ok(()));
        assert!(g.check("c", 1, 1).is_err());
        assert_eq!(g.accept("c", 1, 2), Ok(()));
        assert_eq!(g.accept("c", 1, 10 * REPLAY_WINDOW), Ok(()));
        assert!(g.check("c", 1, 10 * REPLAY_WINDOW).is_err());
        assert!(g.check("c", 1, 10 * REPLAY_WINDOW - 1).is_ok());
        // Bounded epochs: the least recently used one is forgotten.
        for e in 10..10 + EPOCHS_PER_NODE as u64 {
            assert_eq!(g.accept("d", e, 5), Ok(()));
        }
        assert!(g.check("d", 10, 5).is_err());
        assert_eq!(g.accept("d", 99, 5), Ok(()));
        assert!(g.check("d", 10, 5).is_ok());
        assert!(g.check("d", 11, 5).is_err());
        g.forget("d");
        assert!(g.check("d", 11, 5).is_ok());
    }

    fn arb_notice() -> impl Strategy<Value = v1::TakeoverNotice> {
        (
            (".{0,12}", any::<u64>(), any::<u64>(), ".{0,12}"),
            (".{0,12}", ".{0,12}", ".{0,40}", ".{0,12}", ".{0,12}"),
        )
            .prop_map(|((node, epoch, seq, to), (ns, name, address, holder, rv))| {
                v1::TakeoverNotice {
                    node,
                    epoch,
                    seq,
                    to,
                    mac: Vec::new(),
                    service_namespace: ns,
                    service_name: name,
                    address,
                    new_holder: holder,
                    replaced_resource_version: format!("{rv}-"),
                    lease_resource_version: rv,
                }
            })
    }

    /// Changes field `i` of `m` (0..11) to something else.
    fn change_field(m: &mut v1::TakeoverNotice, i: usize, s: &str) {
        let bump = |v: &mut String| {
            if v == s { v.push('x') } else { *v = s.to_owned() }
        };
        match i {
            0 => bump(&mut m.node),
            1 => m.epoch = m.epoch.wrapping_add(1),
            2 => m.seq = m.seq.wrapping_add(1),
            3 => bump(&mut m.to),
            4 => bump(&mut m.service_namespace),
            5 => bump(&mut m.service_name),
            6 => bump(&mut m.address),
            7 => bump(&mut m.new_holder),
            8 => bump(&mut m.replaced_resource_version),
            _ => bump(&mut m.lease_resource_version),
        }
    }

    proptest! {
        #[test]
        fn any_byte_change_breaks_the_mac(m in arb_notice(), pos in any::<prop::sample::Index>(), x in 1u8..) {
            let k = key(3);
            let mut m = m;
            sign(Some(&k), &mut m);
            let enc = canonical(&m);
            let mut changed = enc.clone();
            let i = pos.index(changed.len());
            changed[i] ^= x;
            prop_assert!(hmac::verify(&k.0, &changed, &m.mac).is_err());
            // And a flipped MAC byte.
            let mut bad = m.clone();
            let j = pos.index(bad.mac.len());
            bad.mac[j] ^= x;
            prop_assert!(verify(Some(&k), &bad).is_err());
        }

        #[test]
        fn any_field_change_breaks_the_mac(m in arb_notice(), field in 0usize..10, s in ".{0,12}") {
            let k = key(4);
            let mut m = m;
            sign(Some(&k), &mut m);
            let mut changed = m.clone();
            change_field(&mut changed, field, &s);
            prop_assert_ne!(&canonical(&changed), &canonical(&m));
            prop_assert!(verify(Some(&k), &changed).is_err());
        }

        #[test]
        fn heartbeat_field_changes_break_the_mac(
            node in ".{0,8}", to in ".{0,8}", epoch: u64, seq: u64, sent_at: u64, field in 0usize..6,
        ) {
            let k = key(5);
            let mut m = v1::Heartbeat { node, epoch, seq, to, mac: Vec::new(), sent_at, api_ok: sent_at % 2 == 0, silent: Vec::new() };
            sign(Some(&k), &mut m);
            let mut c = m.clone();
            match field {
                0 => c.node.push('x'),
                1 => c.epoch = c.epoch.wrapping_add(1),
                2 => c.seq = c.seq.wrapping_add(1),
                3 => c.to.push('x'),
                4 => c.api_ok = !c.api_ok,
                _ => c.sent_at = c.sent_at.wrapping_add(1),
            }
            prop_assert!(verify(Some(&k), &c).is_err());
            // A heartbeat is never a valid ack, whatever the fields.
            let as_ack = v1::HeartbeatAck {
                node: m.node.clone(), epoch: m.epoch, seq: m.seq, to: m.to.clone(), mac: m.mac.clone(),
                heartbeat_epoch: m.sent_at, heartbeat_seq: 0, heartbeat_sent_at: 0,
            };
            prop_assert!(verify(Some(&k), &as_ack).is_err());
        }
    }
}
