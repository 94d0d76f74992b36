//! The datapath (DESIGN.md §4 "Datapath"): how a node makes the LAN send it a held address's
//! traffic.
//!
//! - [`driver`]: what this node answers for, programmed into the datapath of `--datapath`
//!   ([`Mode`]), over the netlink facade;
//! - [`netlink`]: the typed netlink facade (links, link changes, addresses for
//!   `--datapath netlink`), behind a trait with an in-memory fake;
//! - [`expiring`]: `--datapath netlink` addresses added with a short lifetime and refreshed while
//!   held, so a killed announcer's addresses disappear by themselves;
//! - [`responder`]: `--datapath responder`, ARP replies and solicited NAs from AF_PACKET sockets for
//!   the addresses in [`HeldAddresses`];
//! - [`mld`]: the responder's IP-layer memberships of solicited-node groups, so the kernel sends
//!   MLD reports and switches that snoop MLD forward Neighbor Solicitations to the node;
//! - [`announce`]: gratuitous ARP / unsolicited NA bursts on takeover;
//! - [`frame`]: parsing and building the frames (etherparse), pure;
//! - [`filter`]: the classic BPF program each responder socket carries;
//! - [`socket`]: the AF_PACKET socket itself (the only module allowed `unsafe`).
//!
//! Counters (the `metrics` crate, and per responder for tests): requests answered by protocol,
//! gratuitous packets sent, malformed frames dropped, send/receive errors.

pub mod announce;
pub mod driver;
pub mod expiring;
pub mod filter;
pub mod frame;
pub mod mld;
pub mod netlink;
pub mod responder;
pub mod socket;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

pub use announce::{AnnounceSchedule, Bursts};
pub use driver::{Driver, Mode};
pub use expiring::ExpiringAddresses;
pub use frame::Mac;
pub use netlink::{FakeNetlink, Link, LinkEvent, Netlink, NetlinkError, RtNetlink};
pub use responder::Responder;
pub use socket::PacketSocket;

/// The addresses this node answers for, per interface index. Shared between the responder's
/// tasks and its owner; a read is one uncontended `RwLock` read and a hash lookup.
#[derive(Debug, Clone, Default)]
pub struct HeldAddresses(Arc<RwLock<HashMap<u32, HashSet<IpAddr>>>>);

impl HeldAddresses {
    /// Holds `ip` on `ifindex`; returns whether it was new.
    pub fn insert(&self, ifindex: u32, ip: IpAddr) -> bool {
        self.0.write().unwrap_or_else(PoisonError::into_inner).entry(ifindex).or_default().insert(ip)
    }

    /// Stops holding `ip` on `ifindex`; returns whether it was held.
    pub fn remove(&self, ifindex: u32, ip: IpAddr) -> bool {
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        let Some(set) = map.get_mut(&ifindex) else { return false };
        let was = set.remove(&ip);
        if set.is_empty() {
            map.remove(&ifindex);
        }
        was
    }

    /// Whether `ip` is held on `ifindex`.
    pub fn contains(&self, ifindex: u32, ip: IpAddr) -> bool {
        self.0.read().unwrap_or_else(PoisonError::into_inner).get(&ifindex).is_some_and(|s| s.contains(&ip))
    }

    /// The addresses held on `ifindex`, sorted.
    pub fn on(&self, ifindex: u32) -> Vec<IpAddr> {
        let map = self.0.read().unwrap_or_else(PoisonError::into_inner);
        let mut v: Vec<IpAddr> = map.get(&ifindex).map(|s| s.iter().copied().collect()).unwrap_or_default();
        v.sort_unstable();
        v
    }

    /// How many (interface, address) pairs are held.
    pub fn len(&self) -> usize {
        self.0.read().unwrap_or_else(PoisonError::into_inner).values().map(HashSet::len).sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// ARP (IPv4) or NDP (IPv6): the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Arp,
    Ndp,
}

impl Protocol {
    /// The `protocol` label value.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Arp => "arp",
            Protocol::Ndp => "ndp",
        }
    }

    fn of(ip: IpAddr) -> Self {
        if ip.is_ipv4() { Protocol::Arp } else { Protocol::Ndp }
    }
}

/// Metric names.
pub mod metric {
    /// Requests answered, label `protocol` (`arp`, `ndp`).
    pub const REQUESTS_ANSWERED: &str = "ferrolb_announcer_requests_answered_total";
    /// Gratuitous ARP / unsolicited NA frames sent, label `protocol`.
    pub const GRATUITOUS_SENT: &str = "ferrolb_announcer_gratuitous_sent_total";
    /// Frames that passed the socket filter but failed validation.
    pub const MALFORMED_DROPPED: &str = "ferrolb_announcer_malformed_frames_total";
    /// Socket errors, label `op` (`send`, `recv`).
    pub const SOCKET_ERRORS: &str = "ferrolb_announcer_datapath_errors_total";

    /// Registers descriptions with the installed recorder.
    pub fn describe() {
        metrics::describe_counter!(REQUESTS_ANSWERED, "ARP requests and Neighbor Solicitations answered");
        metrics::describe_counter!(
            GRATUITOUS_SENT,
            "Gratuitous ARP and unsolicited Neighbor Advertisements sent"
        );
        metrics::describe_counter!(MALFORMED_DROPPED, "Malformed ARP/NDP frames dropped by the responder");
        metrics::describe_counter!(SOCKET_ERRORS, "Datapath socket errors");
    }
}

/// Counters of one responder, mirrored to the `metrics` recorder.
#[derive(Debug, Default)]
pub struct Counters {
    arp_answered: AtomicU64,
    ndp_answered: AtomicU64,
    gratuitous_sent: AtomicU64,
    malformed: AtomicU64,
    send_errors: AtomicU64,
    recv_errors: AtomicU64,
}

/// A copy of [`Counters`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    pub arp_answered: u64,
    pub ndp_answered: u64,
    pub gratuitous_sent: u64,
    pub malformed: u64,
    pub send_errors: u64,
    pub recv_errors: u64,
}

impl Counters {
    fn answered(&self, protocol: Protocol) {
        match protocol {
            Protocol::Arp => &self.arp_answered,
            Protocol::Ndp => &self.ndp_answered,
        }
        .fetch_add(1, Ordering::Relaxed);
        metrics::counter!(metric::REQUESTS_ANSWERED, "protocol" => protocol.label()).increment(1);
    }

    fn gratuitous_sent(&self, ip: IpAddr) {
        self.gratuitous_sent.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(metric::GRATUITOUS_SENT, "protocol" => Protocol::of(ip).label()).increment(1);
    }

    fn malformed(&self) {
        self.malformed.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(metric::MALFORMED_DROPPED).increment(1);
    }

    fn send_error(&self) {
        self.send_errors.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(metric::SOCKET_ERRORS, "op" => "send").increment(1);
    }

    fn recv_error(&self) {
        self.recv_errors.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(metric::SOCKET_ERRORS, "op" => "recv").increment(1);
    }

    /// The values now.
    pub fn snapshot(&self) -> CountersSnapshot {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CountersSnapshot {
            arp_answered: l(&self.arp_answered),
            ndp_answered: l(&self.ndp_answered),
            gratuitous_sent: l(&self.gratuitous_sent),
            malformed: l(&self.malformed),
            send_errors: l(&self.send_errors),
            recv_errors: l(&self.recv_errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_addresses_are_per_interface() {
        let h = HeldAddresses::default();
        let a: IpAddr = "198.51.100.200".parse().unwrap();
        let b: IpAddr = "2001:db8:100::1000".parse().unwrap();
        assert!(h.insert(2, a) && h.insert(2, b) && h.insert(3, a));
        assert!(!h.insert(2, a));
        assert_eq!(h.len(), 3);
        assert!(h.contains(3, a) && !h.contains(3, b));
        assert!(h.remove(3, a) && !h.remove(3, a) && !h.remove(9, a));
        assert_eq!(h.on(2), vec![a, b]);
        assert!(h.on(3).is_empty());
        let shared = h.clone();
        shared.remove(2, a);
        shared.remove(2, b);
        assert!(h.is_empty());
    }

    #[test]
    fn counters_count() {
        let c = Counters::default();
        c.answered(Protocol::Arp);
        c.answered(Protocol::Ndp);
        c.answered(Protocol::Ndp);
        c.gratuitous_sent("198.51.100.1".parse().unwrap());
        c.malformed();
        let s = c.snapshot();
        assert_eq!((s.arp_answered, s.ndp_answered, s.gratuitous_sent, s.malformed), (1, 2, 1, 1));
    }
}
