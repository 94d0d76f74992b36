//! IP-layer memberships of the solicited-node groups of the IPv6 addresses the responder holds, so
//! that the kernel speaks MLD for them.
//!
//! A Neighbor Solicitation for an address goes to its solicited-node group (`ff02::1:ffXX:XXXX`,
//! the address's last 24 bits). The responder's AF_PACKET socket joins that group's MAC
//! (`PACKET_ADD_MEMBERSHIP`), which only opens the NIC's multicast filter: the kernel reports
//! nothing to the network. A switch that snoops MLD forwards a group's frames only to the ports
//! that reported it, so the solicitations never reach the node (cilium#46274, cilium#46332).
//! Joining the group on an AF_INET6 socket (`IPV6_ADD_MEMBERSHIP`) makes the kernel send MLD
//! reports (MLDv2 type 143, or MLDv1 after it heard an MLDv1 querier), answer queries for the
//! group, and report the leave when the last membership goes, also when the socket closes: a
//! killed announcer leaves its groups.
//!
//! The kernel sends these reports from the interface's link-local address, or from `::` when it
//! has none (RFC 3590; the Linux bridge accepts those, some switches may not). With IPv6 disabled
//! on the interface (`disable_ipv6`) a join succeeds and nothing is sent; the responder still
//! answers, on links that deliver the solicitations anyway.
//!
//! Two kernel limits shape this (measured, see `docs/benchmarks.md`):
//! - a membership takes 56 bytes of its socket's option memory, bounded by `net.core.optmem_max`
//!   (per network namespace; 128 KiB on recent kernels, room for 2,340 groups; 20 KiB on older
//!   ones, about 365): past it the join fails with `ENOMEM`, so memberships spread over as many sockets
//!   as needed;
//! - each join walks the interface's list of groups, so joining n groups costs O(n²): 2,048 take
//!   about 0.05 s, 8,192 about 1 s, 16,384 about 7 s, 30,000 over a minute. So at most
//!   [`MAX_GROUPS_PER_LINK`] groups per link are joined; the rest wait, in order, for a joined
//!   group to be left. The link-layer filter is not limited this way (past 256 groups the
//!   responder receives all multicast), but a switch only forwards what was reported; switches'
//!   snooping tables rarely hold more groups than that anyway.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::Ipv6Addr;

use socket2::{Domain, Protocol, Socket, Type};

use super::frame;

/// Most solicited-node groups joined at the IP layer per link: below the point where joins turn
/// slow (quadratic in the number of groups), and within one socket's default option memory.
pub const MAX_GROUPS_PER_LINK: usize = 2048;

/// Held IPv6 addresses per solicited-node group on one link: addresses sharing their last 24 bits
/// share a group, joined once.
#[derive(Debug, Default)]
pub struct GroupCounts(HashMap<Ipv6Addr, usize>);

impl GroupCounts {
    /// Counts `ip`; returns its group when `ip` is the group's first address (join it).
    pub fn add(&mut self, ip: Ipv6Addr) -> Option<Ipv6Addr> {
        let group = frame::solicited_node(ip);
        let count = self.0.entry(group).or_insert(0);
        *count += 1;
        (*count == 1).then_some(group)
    }

    /// Uncounts `ip` (which was counted); returns its group when `ip` was the group's last address
    /// (leave it).
    pub fn remove(&mut self, ip: Ipv6Addr) -> Option<Ipv6Addr> {
        let group = frame::solicited_node(ip);
        let count = self.0.get_mut(&group)?;
        *count -= 1;
        if *count > 0 {
            return None;
        }
        self.0.remove(&group);
        Some(group)
    }

    /// How many distinct groups.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no group is counted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A socket that holds IPv6 multicast memberships (the kernel's; a fake in unit tests).
pub trait GroupSocket: Sized {
    /// A new socket.
    fn open() -> io::Result<Self>;
    /// `IPV6_ADD_MEMBERSHIP` of `group` on interface `ifindex`.
    fn join(&self, group: Ipv6Addr, ifindex: u32) -> io::Result<()>;
    /// `IPV6_DROP_MEMBERSHIP`.
    fn leave(&self, group: Ipv6Addr, ifindex: u32) -> io::Result<()>;
}

impl GroupSocket for Socket {
    /// An unbound UDP socket: it receives nothing (no port), it only holds memberships.
    fn open() -> io::Result<Self> {
        Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))
    }

    fn join(&self, group: Ipv6Addr, ifindex: u32) -> io::Result<()> {
        self.join_multicast_v6(&group, ifindex)
    }

    fn leave(&self, group: Ipv6Addr, ifindex: u32) -> io::Result<()> {
        self.leave_multicast_v6(&group, ifindex)
    }
}

/// The kernel refused a membership for lack of the socket's option memory (`optmem_max`).
fn out_of_option_memory(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(nix::libc::ENOMEM | nix::libc::ENOBUFS))
}

struct Slot<S> {
    socket: S,
    groups: usize,
    /// Refused a join for lack of option memory; not tried again until it leaves a group.
    full: bool,
}

/// How many groups are joined and waiting on one link, and over how many sockets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MldStats {
    pub joined: usize,
    pub waiting: usize,
    pub sockets: usize,
}

/// The IP-layer memberships of one link: each group joined on one of a few sockets, at most
/// `limit` of them, the others waiting.
///
/// A socket belongs to the network namespace of the thread that opens it, and `ifindex` means an
/// interface of that namespace. The first socket is opened with the memberships (by whoever
/// attaches the link, in its namespace); a later one only from a thread in that same namespace,
/// or the join fails: a membership on an interface of another namespace would report a group on
/// some other network.
pub struct MldMemberships<S = Socket> {
    ifindex: u32,
    limit: usize,
    /// The network namespace the sockets belong to (inode of `/proc/thread-self/ns/net`), if known.
    netns: Option<u64>,
    sockets: Vec<Slot<S>>,
    /// group -> index of the socket holding it.
    joined: HashMap<Ipv6Addr, usize>,
    /// Groups wanted past the limit, joined (lowest first) as joined ones are left.
    waiting: BTreeSet<Ipv6Addr>,
}

impl<S> std::fmt::Debug for MldMemberships<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MldMemberships")
            .field("ifindex", &self.ifindex)
            .field("stats", &self.stats())
            .finish()
    }
}

/// The network namespace of the calling thread, if `/proc` says.
fn current_netns() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net").ok().map(|m| m.ino())
}

impl<S> MldMemberships<S> {
    /// The counts now.
    pub fn stats(&self) -> MldStats {
        MldStats { joined: self.joined.len(), waiting: self.waiting.len(), sockets: self.sockets.len() }
    }
}

impl<S: GroupSocket> MldMemberships<S> {
    /// No memberships yet on link `ifindex` of the calling thread's network namespace. The first
    /// socket is opened now; if that fails, the first join tries again (and reports the error).
    pub fn new(ifindex: u32, limit: usize) -> Self {
        let sockets = S::open().ok().map(|socket| Slot { socket, groups: 0, full: false });
        Self {
            ifindex,
            limit,
            netns: current_netns(),
            sockets: sockets.into_iter().collect(),
            joined: HashMap::new(),
            waiting: BTreeSet::new(),
        }
    }

    /// Joins `group`. `Ok(true)`: joined (or already); `Ok(false)`: the link is at its limit, the
    /// group waits; `Err`: the kernel refused (the group is not kept).
    pub fn join(&mut self, group: Ipv6Addr) -> io::Result<bool> {
        if self.joined.contains_key(&group) {
            return Ok(true);
        }
        if self.joined.len() >= self.limit {
            self.waiting.insert(group);
            return Ok(false);
        }
        self.join_now(group).map(|()| true)
    }

    fn join_now(&mut self, group: Ipv6Addr) -> io::Result<()> {
        for (index, slot) in self.sockets.iter_mut().enumerate().filter(|(_, s)| !s.full) {
            match slot.socket.join(group, self.ifindex) {
                Ok(()) => {
                    slot.groups += 1;
                    self.joined.insert(group, index);
                    return Ok(());
                }
                Err(e) if out_of_option_memory(&e) => slot.full = true,
                Err(e) => return Err(e),
            }
        }
        // Every socket is full (or there is none yet). A fresh socket that cannot take one group
        // is a real failure, not a full socket: give up rather than open more.
        if let Some(netns) = self.netns
            && current_netns().is_some_and(|here| here != netns)
        {
            return Err(io::Error::other("called from another network namespace than the link's"));
        }
        let socket = S::open()?;
        socket.join(group, self.ifindex)?;
        self.sockets.push(Slot { socket, groups: 1, full: false });
        self.joined.insert(group, self.sockets.len() - 1);
        Ok(())
    }

    /// Leaves `group` (or stops waiting for it); a waiting group, if any, is joined in its place.
    /// Sockets left empty at the end of the list are closed, all but the first.
    pub fn leave(&mut self, group: Ipv6Addr) -> io::Result<()> {
        if self.waiting.remove(&group) {
            return Ok(());
        }
        let Some(index) = self.joined.remove(&group) else { return Ok(()) };
        let slot = &mut self.sockets[index];
        let result = slot.socket.leave(group, self.ifindex);
        slot.groups -= 1;
        slot.full = false;
        while self.sockets.len() > 1 && self.sockets.last().is_some_and(|s| s.groups == 0) {
            self.sockets.pop();
        }
        while self.joined.len() < self.limit
            && let Some(next) = self.waiting.pop_first()
        {
            if let Err(error) = self.join_now(next) {
                tracing::warn!(ifindex = self.ifindex, group = %next, %error, "joining a waiting solicited-node group failed");
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A socket with room for `capacity` groups; `MEMBERS` is every (socket, group) membership.
    struct FakeSocket {
        id: usize,
        capacity: usize,
        groups: RefCell<BTreeSet<Ipv6Addr>>,
    }

    thread_local! {
        static OPENED: RefCell<usize> = const { RefCell::new(0) };
        static CAPACITY: RefCell<usize> = const { RefCell::new(2) };
        static MEMBERS: RefCell<BTreeSet<(usize, Ipv6Addr)>> = RefCell::default();
    }

    impl GroupSocket for FakeSocket {
        fn open() -> io::Result<Self> {
            let capacity = CAPACITY.with(|c| *c.borrow());
            if capacity == 0 {
                return Err(io::Error::from_raw_os_error(nix::libc::ENOMEM));
            }
            let id = OPENED.with(|o| {
                *o.borrow_mut() += 1;
                *o.borrow()
            });
            Ok(Self { id, capacity, groups: RefCell::default() })
        }
        fn join(&self, group: Ipv6Addr, ifindex: u32) -> io::Result<()> {
            assert_eq!(ifindex, 7);
            if self.groups.borrow().len() == self.capacity {
                return Err(io::Error::from_raw_os_error(nix::libc::ENOMEM));
            }
            self.groups.borrow_mut().insert(group);
            MEMBERS.with(|m| m.borrow_mut().insert((self.id, group)));
            Ok(())
        }
        fn leave(&self, group: Ipv6Addr, _: u32) -> io::Result<()> {
            assert!(self.groups.borrow_mut().remove(&group), "left a group not joined");
            MEMBERS.with(|m| m.borrow_mut().remove(&(self.id, group)));
            Ok(())
        }
    }

    fn group(i: u16) -> Ipv6Addr {
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, i)
    }

    fn members() -> Vec<(usize, Ipv6Addr)> {
        MEMBERS.with(|m| m.borrow().iter().copied().collect())
    }

    #[test]
    fn addresses_sharing_their_last_24_bits_share_one_group() {
        let mut counts = GroupCounts::default();
        let a: Ipv6Addr = "2001:db8:100::1000".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:101::1000".parse().unwrap();
        let c: Ipv6Addr = "2001:db8:100::1001".parse().unwrap();
        let g = "ff02::1:ff00:1000".parse().unwrap();
        assert_eq!(counts.add(a), Some(g), "first: join");
        assert_eq!(counts.add(b), None, "same group: already joined");
        assert_eq!(counts.add(c), Some("ff02::1:ff00:1001".parse().unwrap()));
        assert_eq!(counts.len(), 2);
        assert_eq!(counts.remove(a), None, "b still needs the group");
        assert_eq!(counts.remove(b), Some(g), "last: leave");
        assert_eq!(counts.remove(b), None, "never counted any more");
        assert_eq!(counts.remove(c), Some("ff02::1:ff00:1001".parse().unwrap()));
        assert!(counts.is_empty());
    }

    #[test]
    fn memberships_spread_over_sockets_when_one_is_full() {
        let mut m = MldMemberships::<FakeSocket>::new(7, 100);
        assert_eq!(m.stats(), MldStats { joined: 0, waiting: 0, sockets: 1 }, "opened at once");
        for i in 0..5 {
            assert!(m.join(group(i)).unwrap());
        }
        assert!(m.join(group(0)).unwrap(), "joining twice is fine");
        assert_eq!(m.stats(), MldStats { joined: 5, waiting: 0, sockets: 3 });
        let on = |s: usize| members().iter().filter(|(id, _)| *id == s).count();
        assert_eq!((on(1), on(2), on(3)), (2, 2, 1));
        // Room freed on the first socket is used again before the last one.
        m.leave(group(0)).unwrap();
        m.join(group(9)).unwrap();
        assert!(members().contains(&(1, group(9))));
        // Emptied sockets at the end are closed.
        m.leave(group(4)).unwrap();
        assert_eq!(m.stats().sockets, 2);
        for i in [1, 2, 3, 9] {
            m.leave(group(i)).unwrap();
        }
        assert_eq!(m.stats(), MldStats { joined: 0, waiting: 0, sockets: 1 }, "the first socket stays");
        assert!(members().is_empty());
        m.leave(group(1)).expect("leaving a group not joined is fine");
    }

    #[test]
    fn past_the_limit_groups_wait_and_take_a_freed_place() {
        let mut m = MldMemberships::<FakeSocket>::new(7, 3);
        for i in 0..3 {
            assert!(m.join(group(i)).unwrap());
        }
        assert!(!m.join(group(5)).unwrap(), "at the limit: waits");
        assert!(!m.join(group(4)).unwrap());
        assert_eq!(m.stats(), MldStats { joined: 3, waiting: 2, sockets: 2 });
        m.leave(group(5)).unwrap();
        assert_eq!(m.stats().waiting, 1, "a waiting group left: just forgotten");
        m.leave(group(1)).unwrap();
        assert_eq!(m.stats(), MldStats { joined: 3, waiting: 0, sockets: 2 });
        assert!(members().iter().any(|(_, g)| *g == group(4)), "group 4 took the freed place");
    }

    #[test]
    fn a_fresh_socket_that_cannot_join_is_an_error_and_nothing_is_kept() {
        CAPACITY.with(|c| *c.borrow_mut() = 0);
        let mut m = MldMemberships::<FakeSocket>::new(7, 100);
        assert!(m.join(group(1)).is_err());
        assert_eq!(m.stats(), MldStats::default());
        m.leave(group(1)).unwrap();
    }
}
