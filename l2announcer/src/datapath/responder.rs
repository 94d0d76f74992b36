//! The userspace ARP/NDP responder (`--datapath responder`).
//!
//! One AF_PACKET socket per attached interface, filtered in the kernel to ARP requests and
//! Neighbor Solicitations (see [`super::filter`]), read by one tokio task per socket
//! (`AsyncFd`, no dedicated threads: a frame costs one parse and one hash lookup, far below what
//! would justify a thread per link). An answer goes out only when the asked address is in the
//! [`HeldAddresses`] set for *that* interface, with that interface's MAC, so the kernel's own
//! addresses and configuration play no part: interfaces without any IP work, and a VLAN is served
//! by attaching its sub-interface (`eth0.100`).
//!
//! For each held IPv6 address the socket joins the solicited-node group's MAC
//! (`33:33:ff:xx:xx:xx`), so NICs that filter multicast in hardware deliver the solicitations, and
//! the node joins the group itself at the IP layer ([`super::mld`]), so the kernel reports it with
//! MLD and switches that snoop MLD forward the solicitations to this node.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;

use super::announce::{AnnounceSchedule, Bursts};
use super::frame::{self, Mac, Parsed, Query};
use super::mld::{self, GroupCounts, MldMemberships, MldStats};
use super::socket::PacketSocket;
use super::{Counters, CountersSnapshot, HeldAddresses, Protocol};

/// Largest frame read; longer ones are truncated (and then fail validation): no ARP or NS frame
/// comes close, and jumbo frames fit.
const RECV_BUFFER: usize = 9216;
/// Pause after a receive error (interface going down, ...), so a persistent error cannot spin.
const ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// What to do with one received frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Send this frame back.
    Reply { frame: Vec<u8>, protocol: Protocol, target: IpAddr },
    /// A question for an address this interface does not hold.
    NotHeld(IpAddr),
    /// Not a question (or one we must not answer).
    Ignored,
    /// Invalid; counted and dropped.
    Malformed(&'static str),
}

/// Decides the answer to `frame` received on an interface whose MAC is `mac` and whose held
/// addresses are `holds`.
pub fn answer(mac: Mac, holds: impl Fn(IpAddr) -> bool, frame: &[u8]) -> Outcome {
    let query = match frame::parse(frame) {
        Ok(Parsed::Query(q)) => q,
        Ok(Parsed::Ignored) => return Outcome::Ignored,
        Err(frame::Malformed(why)) => return Outcome::Malformed(why),
    };
    let target = query.target();
    if !holds(target) {
        return Outcome::NotHeld(target);
    }
    match query {
        // Our own request looped back (another socket on this link): not a question.
        Query::Arp { sender_mac, .. } if sender_mac == mac => Outcome::Ignored,
        Query::Arp { sender_mac, sender_ip, target, .. } => Outcome::Reply {
            frame: frame::arp_reply(mac, sender_mac, sender_ip, target),
            protocol: Protocol::Arp,
            target: target.into(),
        },
        Query::Ns { eth_src, .. } if eth_src == mac => Outcome::Ignored,
        Query::Ns { eth_src, source, target, sllao } => Outcome::Reply {
            frame: frame::neighbor_advertisement(mac, source, eth_src, sllao, target),
            protocol: Protocol::Ndp,
            target: target.into(),
        },
    }
}

/// Distinct solicited-node groups per link whose MACs the socket joins one by one; past this it
/// receives all multicast instead (see [`PacketSocket::join_all_multicast`]). This is the
/// link-layer filter only: the IP-layer (MLD) memberships have their own limit,
/// [`mld::MAX_GROUPS_PER_LINK`], since a switch forwards only the groups reported to it.
pub const MAX_GROUPS_PER_LINK: usize = 256;

struct Attached {
    socket: Arc<PacketSocket>,
    mac: Mac,
    task: JoinHandle<()>,
    /// Held IPv6 addresses per solicited-node group: each group is joined once.
    groups: GroupCounts,
    /// Receiving all multicast: no per-group link-layer memberships needed any more.
    all_multicast: bool,
    /// The groups joined at the IP layer (MLD); left when this is dropped (the sockets close).
    mld: MldMemberships,
    /// An MLD join failed on this link and was logged at `warn` (later failures: `debug`).
    mld_failed: bool,
}

impl Attached {
    fn new(socket: Arc<PacketSocket>, mac: Mac, task: JoinHandle<()>) -> Self {
        let ifindex = socket.ifindex();
        Self {
            socket,
            mac,
            task,
            groups: GroupCounts::default(),
            all_multicast: false,
            mld: MldMemberships::new(ifindex, mld::MAX_GROUPS_PER_LINK),
            mld_failed: false,
        }
    }

    fn join(&mut self, ip: IpAddr) {
        let IpAddr::V6(v6) = ip else { return };
        let Some(group) = self.groups.add(v6) else { return };
        self.join_link_layer(group);
        self.join_mld(group);
    }

    fn join_link_layer(&mut self, group: Ipv6Addr) {
        if self.all_multicast {
            return;
        }
        let ifindex = self.socket.ifindex();
        if self.groups.len() > MAX_GROUPS_PER_LINK {
            match self.socket.join_all_multicast() {
                Ok(()) => {
                    tracing::info!(
                        ifindex,
                        groups = self.groups.len(),
                        "many IPv6 addresses on one link: receiving all multicast instead of one group each"
                    );
                    self.all_multicast = true;
                    return;
                }
                Err(e) => tracing::warn!(ifindex, error = %e, "receiving all multicast failed"),
            }
        }
        let mac = Mac::ipv6_multicast(group);
        if let Err(e) = self.socket.join(mac) {
            // Still answered on links that deliver all multicast (veth, promiscuous, most bridges).
            tracing::warn!(ifindex, %group, %mac, error = %e, "joining the solicited-node group's MAC failed");
        }
    }

    fn join_mld(&mut self, group: Ipv6Addr) {
        let ifindex = self.socket.ifindex();
        match self.mld.join(group) {
            Ok(true) => {}
            Ok(false) => {
                if self.mld.stats().waiting == 1 {
                    tracing::warn!(
                        ifindex,
                        joined = mld::MAX_GROUPS_PER_LINK,
                        "too many solicited-node groups on one link: the rest are not reported with MLD, \
                         and switches that snoop MLD will not forward their solicitations here"
                    );
                }
            }
            Err(error) if !self.mld_failed => {
                self.mld_failed = true;
                tracing::warn!(
                    ifindex, %group, %error,
                    "joining the solicited-node group with MLD failed: switches that snoop MLD will not \
                     forward its solicitations here"
                );
            }
            Err(error) => {
                tracing::debug!(ifindex, %group, %error, "joining the solicited-node group with MLD failed")
            }
        }
    }

    fn leave(&mut self, ip: IpAddr) {
        let IpAddr::V6(v6) = ip else { return };
        let Some(group) = self.groups.remove(v6) else { return };
        let ifindex = self.socket.ifindex();
        if let Err(error) = self.mld.leave(group) {
            tracing::warn!(ifindex, %group, %error, "leaving the solicited-node group with MLD failed");
        }
        let mac = Mac::ipv6_multicast(group);
        if !self.all_multicast
            && let Err(e) = self.socket.leave(mac)
        {
            tracing::warn!(ifindex, %ip, %mac, error = %e, "leaving the solicited-node group's MAC failed");
        }
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Default)]
struct State {
    links: HashMap<u32, Attached>,
}

/// Answers ARP and NDP for held addresses on attached interfaces. Cheap to clone (shared state).
/// Methods that start tasks ([`Responder::attach`], [`Responder::take_over`]) need a tokio runtime.
#[derive(Clone)]
pub struct Responder {
    held: HeldAddresses,
    counters: Arc<Counters>,
    bursts: Arc<Bursts>,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        f.debug_struct("Responder")
            .field("links", &state.links.keys().collect::<Vec<_>>())
            .field("held", &self.held.len())
            .finish()
    }
}

impl Default for Responder {
    fn default() -> Self {
        Self::new(AnnounceSchedule::default())
    }
}

impl Responder {
    /// A responder with no interfaces and no addresses; takeovers announce on `schedule`.
    pub fn new(schedule: AnnounceSchedule) -> Self {
        let counters = Arc::new(Counters::default());
        Self {
            held: HeldAddresses::default(),
            bursts: Arc::new(Bursts::new(&schedule, counters.clone())),
            counters,
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts answering on interface `ifindex`, whose MAC is `mac`. Attaching an attached
    /// interface with the same MAC does nothing; with another MAC it reopens the socket.
    pub fn attach(&self, ifindex: u32, mac: Mac) -> io::Result<()> {
        let mut state = self.state();
        if state.links.get(&ifindex).is_some_and(|a| a.mac == mac) {
            return Ok(());
        }
        let socket = Arc::new(PacketSocket::responder(ifindex)?);
        let task = tokio::spawn(serve(socket.clone(), mac, self.held.clone(), self.counters.clone()));
        let mut attached = Attached::new(socket, mac, task);
        for ip in self.held.on(ifindex) {
            attached.join(ip);
        }
        state.links.insert(ifindex, attached);
        Ok(())
    }

    /// Stops answering on `ifindex` (its held addresses stay, for a later attach) and cancels its
    /// announcements.
    pub fn detach(&self, ifindex: u32) {
        let mut state = self.state();
        state.links.remove(&ifindex);
        self.bursts.cancel_link(ifindex);
    }

    /// The interfaces attached.
    pub fn attached(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.state().links.keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Answers for `ip` on `ifindex` from now on. Returns whether it was newly held.
    pub fn hold(&self, ifindex: u32, ip: IpAddr) -> bool {
        let mut state = self.state();
        let new = self.held.insert(ifindex, ip);
        if new && let Some(a) = state.links.get_mut(&ifindex) {
            a.join(ip);
        }
        new
    }

    /// [`Responder::hold`] plus gratuitous announcements on the schedule (restarted if one was
    /// running). Without an attached socket for `ifindex` only the hold happens.
    pub fn take_over(&self, ifindex: u32, ip: IpAddr) -> bool {
        let new = self.hold(ifindex, ip);
        // Under the state lock, as `detach`: a burst must not start on a link just detached.
        let state = self.state();
        if let Some(a) = state.links.get(&ifindex) {
            self.bursts.start(a.socket.clone(), a.mac, ip);
        }
        new
    }

    /// Stops answering for `ip` on `ifindex` and cancels its announcements. Returns whether it
    /// was held.
    pub fn release(&self, ifindex: u32, ip: IpAddr) -> bool {
        let mut state = self.state();
        self.bursts.cancel(ifindex, ip);
        let was = self.held.remove(ifindex, ip);
        if was && let Some(a) = state.links.get_mut(&ifindex) {
            a.leave(ip);
        }
        was
    }

    /// The solicited-node groups joined with MLD on `ifindex` (`None`: not attached).
    pub fn mld_memberships(&self, ifindex: u32) -> Option<MldStats> {
        self.state().links.get(&ifindex).map(|a| a.mld.stats())
    }

    /// The shared set of held addresses.
    pub fn held(&self) -> &HeldAddresses {
        &self.held
    }

    /// The responder's counters so far.
    pub fn counters(&self) -> CountersSnapshot {
        self.counters.snapshot()
    }
}

async fn serve(socket: Arc<PacketSocket>, mac: Mac, held: HeldAddresses, counters: Arc<Counters>) {
    let ifindex = socket.ifindex();
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        let n = match socket.recv(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                counters.recv_error();
                tracing::debug!(ifindex, error = %e, "receive failed");
                tokio::time::sleep(ERROR_BACKOFF).await;
                continue;
            }
        };
        match answer(mac, |ip| held.contains(ifindex, ip), &buf[..n]) {
            Outcome::Reply { frame, protocol, target } => match socket.send(&frame).await {
                Ok(()) => counters.answered(protocol),
                Err(e) => {
                    counters.send_error();
                    tracing::debug!(ifindex, %target, error = %e, "reply failed");
                }
            },
            Outcome::Malformed(why) => {
                counters.malformed();
                tracing::trace!(ifindex, why, "malformed frame dropped");
            }
            Outcome::NotHeld(_) | Outcome::Ignored => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const NODE: Mac = Mac([2, 0, 0, 0, 0, 0x11]);
    const CLIENT: Mac = Mac([2, 0, 0, 0, 0, 2]);

    #[test]
    fn answers_only_held_addresses() {
        let vip = Ipv4Addr::new(198, 51, 100, 200);
        let other = Ipv4Addr::new(198, 51, 100, 201);
        let held = |ip: IpAddr| ip == IpAddr::V4(vip);
        let req = frame::arp_request(CLIENT, Ipv4Addr::new(198, 51, 100, 2), vip);
        let Outcome::Reply { protocol, target, .. } = answer(NODE, held, &req) else { panic!() };
        assert_eq!((protocol, target), (Protocol::Arp, IpAddr::V4(vip)));
        let req = frame::arp_request(CLIENT, Ipv4Addr::new(198, 51, 100, 2), other);
        assert_eq!(answer(NODE, held, &req), Outcome::NotHeld(other.into()));
        // Our own MAC asking: a looped-back probe, not a client.
        let req = frame::arp_request(NODE, Ipv4Addr::new(198, 51, 100, 2), vip);
        assert_eq!(answer(NODE, held, &req), Outcome::Ignored);
        assert!(matches!(answer(NODE, held, &req[..25]), Outcome::Malformed(_)));
    }

    #[test]
    fn answers_ns_for_held_v6() {
        let vip: std::net::Ipv6Addr = "2001:db8:100::1000".parse().unwrap();
        let ns = frame::neighbor_solicitation(CLIENT, "2001:db8:100::2".parse().unwrap(), vip, false);
        let Outcome::Reply { protocol, .. } = answer(NODE, |ip| ip == IpAddr::V6(vip), &ns) else { panic!() };
        assert_eq!(protocol, Protocol::Ndp);
        assert!(matches!(answer(NODE, |_| false, &ns), Outcome::NotHeld(_)));
    }

    #[tokio::test]
    async fn hold_release_without_sockets() {
        let r = Responder::default();
        let ip: IpAddr = "198.51.100.200".parse().unwrap();
        assert!(r.hold(7, ip));
        assert!(!r.hold(7, ip));
        assert!(r.take_over(8, ip), "no socket on 8: hold only");
        assert!(r.held().contains(7, ip) && r.held().contains(8, ip));
        assert!(!r.held().contains(9, ip));
        assert!(r.release(7, ip));
        assert!(!r.release(7, ip));
        assert_eq!(r.held().on(8), vec![ip]);
        assert_eq!(r.counters(), CountersSnapshot::default());
        assert!(r.attached().is_empty());
    }
}
