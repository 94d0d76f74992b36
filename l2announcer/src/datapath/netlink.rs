//! A small typed netlink facade (rtnetlink on tokio): the node's links as [`Link`] values, link
//! change notifications (`RTNLGRP_LINK`), and adding/removing an address for `--datapath netlink`.
//!
//! Addresses can be added with a lifetime (`IFA_CACHEINFO` valid and preferred lifetimes): the kernel
//! deletes such an address by itself when the lifetime runs out, so an announcer that is killed
//! (SIGKILL, OOM) stops being answered for within that lifetime; adding it again restarts the
//! lifetime (see [`super::expiring`], which does so while the address is held).
//!
//! Everything above this module talks to the [`Netlink`] trait, so the announcer's logic runs in
//! unit tests, and the whole announcer in `tests/in_process.rs`, against [`FakeNetlink`];
//! [`RtNetlink`] is exercised in network namespaces by `tests/datapath.rs`.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags, CacheInfo};
use rtnetlink::packet_route::link::{
    InfoKind, InfoPortKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::frame::Mac;
use crate::interface::{Interface, InterfaceKind};

/// One link of the node, as netlink reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// The hardware address, when the link has a 6-byte one.
    pub mac: Option<Mac>,
    /// `IFF_UP`: administratively up.
    pub admin_up: bool,
    /// `IFF_LOWER_UP`: carrier present.
    pub lower_up: bool,
    pub kind: InterfaceKind,
    /// `IFLA_MASTER`, if the link has one.
    pub master: Option<u32>,
    /// A bridge port or a bond slave (`IFLA_INFO_SLAVE_KIND` bridge or bond).
    pub enslaved: bool,
    /// Not loopback and no `IFF_NOARP`.
    pub arp_capable: bool,
}

impl Link {
    /// Administratively up with carrier.
    pub fn up(&self) -> bool {
        self.admin_up && self.lower_up
    }

    /// The view of the link that interface selection and candidacy use.
    pub fn interface(&self) -> Interface {
        Interface {
            name: self.name.clone(),
            up: self.up(),
            arp_capable: self.arp_capable,
            enslaved: self.enslaved,
            kind: self.kind.clone(),
        }
    }

    fn from_message(msg: &LinkMessage) -> Self {
        let flags = msg.header.flags;
        let loopback = flags.contains(LinkFlags::Loopback);
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            mac: None,
            admin_up: flags.contains(LinkFlags::Up),
            lower_up: flags.contains(LinkFlags::LowerUp),
            kind: if loopback { InterfaceKind::Loopback } else { InterfaceKind::Device },
            master: None,
            enslaved: false,
            arp_capable: !loopback && !flags.contains(LinkFlags::Noarp),
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(name) => link.name.clone_from(name),
                LinkAttribute::Address(a) => link.mac = <[u8; 6]>::try_from(a.as_slice()).ok().map(Mac),
                LinkAttribute::Controller(m) => link.master = Some(*m),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        match info {
                            LinkInfo::Kind(kind) if !loopback => link.kind = kind_of(kind),
                            LinkInfo::PortKind(InfoPortKind::Bridge | InfoPortKind::Bond) => {
                                link.enslaved = true
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }
}

fn kind_of(kind: &InfoKind) -> InterfaceKind {
    match kind {
        InfoKind::Vlan => InterfaceKind::Vlan,
        InfoKind::Bond => InterfaceKind::Bond,
        InfoKind::Bridge => InterfaceKind::Bridge,
        InfoKind::Veth => InterfaceKind::Veth,
        other => InterfaceKind::Other(other.to_string()),
    }
}

/// A change to the node's links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A link appeared or changed (state, name, master, ...): its new state.
    Changed(Link),
    /// A link was deleted.
    Removed { index: u32, name: String },
}

/// What went wrong talking to the kernel.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("cannot open a netlink socket: {0}")]
    Connect(#[source] io::Error),
    #[error("{op}: {source}")]
    Request {
        op: String,
        #[source]
        source: rtnetlink::Error,
    },
}

/// The netlink operations the announcer needs.
pub trait Netlink: Send + Sync {
    /// Every link of the node's network namespace.
    fn links(&self) -> impl Future<Output = Result<Vec<Link>, NetlinkError>> + Send;

    /// The addresses on link `index`, with their prefix lengths.
    fn addresses(&self, index: u32) -> impl Future<Output = Result<Vec<(IpAddr, u8)>, NetlinkError>> + Send;

    /// Adds `ip/prefix_len` to link `index`, or replaces it if present (already present is
    /// success). With a `lifetime` the address is valid (and preferred) for that long, rounded up
    /// to whole seconds, and the kernel deletes it then unless it is added again, which restarts
    /// its lifetime; `None`: permanent. IPv6 addresses skip duplicate address detection
    /// (`IFA_F_NODAD`): a tentative address is not answered for, and an address this node takes
    /// over may well still be answered by the previous holder for a moment, which would make DAD
    /// fail for good.
    fn add_address(
        &self,
        index: u32,
        ip: IpAddr,
        prefix_len: u8,
        lifetime: Option<Duration>,
    ) -> impl Future<Output = Result<(), NetlinkError>> + Send;

    /// Removes `ip` (any prefix length) from link `index`; absent is success.
    fn remove_address(&self, index: u32, ip: IpAddr)
    -> impl Future<Output = Result<(), NetlinkError>> + Send;

    /// Link changes from now on. After the receiver lags or the kernel reports lost messages the
    /// caller should list the links again; [`LinkEvent`]s are level-triggered (full state).
    fn watch_links(&self) -> Result<mpsc::Receiver<LinkEvent>, NetlinkError>;
}

/// [`Netlink`] over rtnetlink, in the network namespace of the thread that creates it.
#[derive(Debug)]
pub struct RtNetlink {
    handle: rtnetlink::Handle,
    connection: JoinHandle<()>,
}

impl RtNetlink {
    /// Opens the connection (needs a tokio runtime; the connection runs as a task).
    pub fn new() -> Result<Self, NetlinkError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Connect)?;
        Ok(Self { handle, connection: tokio::spawn(conn) })
    }
}

impl Drop for RtNetlink {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

fn request(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
    let op = op.into();
    move |source| NetlinkError::Request { op, source }
}

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(m.raw_code().abs()),
        _ => None,
    }
}

impl Netlink for RtNetlink {
    async fn links(&self) -> Result<Vec<Link>, NetlinkError> {
        let msgs: Vec<LinkMessage> =
            self.handle.link().get().execute().try_collect().await.map_err(request("list links"))?;
        Ok(msgs.iter().map(Link::from_message).collect())
    }

    async fn addresses(&self, index: u32) -> Result<Vec<(IpAddr, u8)>, NetlinkError> {
        let msgs: Vec<_> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(request(format!("list addresses of link {index}")))?;
        Ok(msgs
            .iter()
            .filter_map(|m| {
                // IFA_LOCAL is the address itself on point-to-point links; IFA_ADDRESS elsewhere.
                let local = m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Local(ip) => Some(*ip),
                    _ => None,
                });
                let address = m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                });
                local.or(address).map(|ip| (ip, m.header.prefix_len))
            })
            .collect())
    }

    async fn add_address(
        &self,
        index: u32,
        ip: IpAddr,
        prefix_len: u8,
        lifetime: Option<Duration>,
    ) -> Result<(), NetlinkError> {
        // NLM_F_REPLACE: adding an existing address updates it (its lifetime) instead of failing.
        let mut req = self.handle.address().add(index, ip, prefix_len).replace();
        let message = req.message_mut();
        if ip.is_ipv6() {
            message.header.flags |= AddressHeaderFlags::Nodad;
            message.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        if let Some(lifetime) = lifetime {
            let mut info = CacheInfo::default();
            info.ifa_valid = lifetime_seconds(lifetime);
            info.ifa_preferred = info.ifa_valid;
            message.attributes.push(AddressAttribute::CacheInfo(info));
        }
        req.execute().await.map_err(request(format!("add {ip}/{prefix_len} to link {index}")))
    }

    async fn remove_address(&self, index: u32, ip: IpAddr) -> Result<(), NetlinkError> {
        let msgs: Vec<_> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .set_address_filter(ip)
            .execute()
            .try_collect()
            .await
            .map_err(request(format!("find {ip} on link {index}")))?;
        for m in msgs {
            match self.handle.address().del(m).execute().await {
                Err(e) if errno(&e) == Some(nix::libc::EADDRNOTAVAIL) => {}
                r => r.map_err(request(format!("remove {ip} from link {index}")))?,
            }
        }
        Ok(())
    }

    fn watch_links(&self) -> Result<mpsc::Receiver<LinkEvent>, NetlinkError> {
        let (conn, _handle, mut messages) =
            rtnetlink::new_multicast_connection(&[rtnetlink::MulticastGroup::Link])
                .map_err(NetlinkError::Connect)?;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            let conn = tokio::spawn(conn);
            while let Some((msg, _)) = messages.next().await {
                let Some(event) = link_event(msg) else { continue };
                if tx.send(event).await.is_err() {
                    break;
                }
            }
            conn.abort();
        });
        Ok(rx)
    }
}

/// A lifetime as the kernel takes it: whole seconds, rounded up, at least 1, below `u32::MAX` (which
/// means forever).
pub fn lifetime_seconds(lifetime: Duration) -> u32 {
    let secs = lifetime.as_secs() + u64::from(lifetime.subsec_nanos() > 0);
    u32::try_from(secs).unwrap_or(u32::MAX - 1).clamp(1, u32::MAX - 1)
}

fn link_event(msg: NetlinkMessage<RouteNetlinkMessage>) -> Option<LinkEvent> {
    match msg.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => {
            Some(LinkEvent::Changed(Link::from_message(&m)))
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(m)) => {
            let link = Link::from_message(&m);
            Some(LinkEvent::Removed { index: link.index, name: link.name })
        }
        _ => None,
    }
}

/// An in-memory [`Netlink`] for unit tests: links are set by the test, addresses are a map, and
/// every [`FakeNetlink::set_link`] / [`FakeNetlink::remove_link`] is sent to the watchers.
///
/// Address lifetimes run on a clock of the fake's own that only [`FakeNetlink::advance`] moves:
/// an address added with a lifetime is gone once the clock passed it, as the kernel deletes it
/// (the fake keeps the exact duration; the kernel rounds up to whole seconds).
#[derive(Debug, Default)]
pub struct FakeNetlink {
    links: Mutex<Vec<Link>>,
    addresses: Mutex<FakeAddresses>,
    watchers: Mutex<Vec<mpsc::Sender<LinkEvent>>>,
}

#[derive(Debug, Default)]
struct FakeAddresses {
    /// The fake clock.
    now: Duration,
    /// (link, address) -> (prefix length, expiry on the fake clock; `None`: permanent).
    entries: BTreeMap<(u32, IpAddr), (u8, Option<Duration>)>,
    /// Adds and replaces so far.
    adds: u64,
}

impl FakeNetlink {
    /// A fake with these links.
    pub fn with_links(links: Vec<Link>) -> Self {
        Self { links: Mutex::new(links), ..Self::default() }
    }

    /// Adds or replaces a link (by index) and notifies watchers.
    pub fn set_link(&self, link: Link) {
        {
            let mut links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
            links.retain(|l| l.index != link.index);
            links.push(link.clone());
        }
        self.notify(LinkEvent::Changed(link));
    }

    /// Removes a link and notifies watchers.
    pub fn remove_link(&self, index: u32) {
        let removed = {
            let mut links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
            let name = links.iter().find(|l| l.index == index).map(|l| l.name.clone());
            links.retain(|l| l.index != index);
            name
        };
        if let Some(name) = removed {
            self.notify(LinkEvent::Removed { index, name });
        }
    }

    /// Every (link, address, prefix length) currently present.
    pub fn all_addresses(&self) -> Vec<(u32, IpAddr, u8)> {
        self.live().entries.iter().map(|(&(i, ip), &(p, _))| (i, ip, p)).collect()
    }

    /// How long `ip` on link `index` has left: `Some(None)` for a permanent address, `None` if absent.
    pub fn remaining_lifetime(&self, index: u32, ip: IpAddr) -> Option<Option<Duration>> {
        let addrs = self.live();
        let (_, expiry) = addrs.entries.get(&(index, ip))?;
        Some(expiry.map(|e| e - addrs.now))
    }

    /// How many adds (and replaces) the fake has seen.
    pub fn adds(&self) -> u64 {
        self.live().adds
    }

    /// Moves the fake clock on; addresses whose lifetime ran out are deleted.
    pub fn advance(&self, by: Duration) {
        self.addresses.lock().unwrap_or_else(PoisonError::into_inner).now += by;
    }

    /// The addresses, without those expired.
    fn live(&self) -> std::sync::MutexGuard<'_, FakeAddresses> {
        let mut addrs = self.addresses.lock().unwrap_or_else(PoisonError::into_inner);
        let now = addrs.now;
        addrs.entries.retain(|_, (_, expiry)| expiry.is_none_or(|e| e > now));
        addrs
    }

    fn notify(&self, event: LinkEvent) {
        let mut watchers = self.watchers.lock().unwrap_or_else(PoisonError::into_inner);
        watchers.retain(|w| w.try_send(event.clone()).is_ok());
    }
}

impl Netlink for FakeNetlink {
    async fn links(&self) -> Result<Vec<Link>, NetlinkError> {
        Ok(self.links.lock().unwrap_or_else(PoisonError::into_inner).clone())
    }

    async fn addresses(&self, index: u32) -> Result<Vec<(IpAddr, u8)>, NetlinkError> {
        let addrs = self.live();
        Ok(addrs
            .entries
            .iter()
            .filter(|((i, _), _)| *i == index)
            .map(|(&(_, ip), &(p, _))| (ip, p))
            .collect())
    }

    async fn add_address(
        &self,
        index: u32,
        ip: IpAddr,
        prefix_len: u8,
        lifetime: Option<Duration>,
    ) -> Result<(), NetlinkError> {
        let mut addrs = self.live();
        let expiry = lifetime.map(|l| addrs.now + l);
        addrs.adds += 1;
        addrs.entries.insert((index, ip), (prefix_len, expiry));
        Ok(())
    }

    async fn remove_address(&self, index: u32, ip: IpAddr) -> Result<(), NetlinkError> {
        self.live().entries.remove(&(index, ip));
        Ok(())
    }

    fn watch_links(&self) -> Result<mpsc::Receiver<LinkEvent>, NetlinkError> {
        let (tx, rx) = mpsc::channel(256);
        self.watchers.lock().unwrap_or_else(PoisonError::into_inner).push(tx);
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtnetlink::packet_route::link::InfoKind;

    fn message(index: u32, name: &str, flags: LinkFlags, infos: Vec<LinkInfo>) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = flags;
        m.attributes.push(LinkAttribute::IfName(name.into()));
        m.attributes.push(LinkAttribute::Address(vec![2, 0, 0, 0, 0, index as u8]));
        if !infos.is_empty() {
            m.attributes.push(LinkAttribute::LinkInfo(infos));
        }
        m
    }

    #[test]
    fn link_messages_map_to_interfaces() {
        let up = LinkFlags::Up | LinkFlags::LowerUp | LinkFlags::Running;
        let veth = Link::from_message(&message(3, "veth0", up, vec![LinkInfo::Kind(InfoKind::Veth)]));
        assert_eq!(veth.mac, Some(Mac([2, 0, 0, 0, 0, 3])));
        assert!(veth.up() && veth.arp_capable && !veth.enslaved);
        assert_eq!(veth.interface().kind, InterfaceKind::Veth);

        let port =
            Link::from_message(&message(4, "eth1", up, vec![LinkInfo::PortKind(InfoPortKind::Bridge)]));
        assert!(port.enslaved);
        assert_eq!(port.kind, InterfaceKind::Device);
        assert!(!port.interface().structurally_eligible());

        let down = Link::from_message(&message(5, "eth2", LinkFlags::Up, vec![]));
        assert!(!down.up(), "no carrier");
        let lo = Link::from_message(&message(1, "lo", up | LinkFlags::Loopback, vec![]));
        assert_eq!((lo.kind, lo.arp_capable), (InterfaceKind::Loopback, false));
        let noarp = Link::from_message(&message(6, "wg0", up | LinkFlags::Noarp, vec![]));
        assert!(!noarp.arp_capable);
        let vrf = Link::from_message(&message(7, "eth3", up, vec![LinkInfo::PortKind(InfoPortKind::Vrf)]));
        assert!(!vrf.enslaved, "a VRF member still answers for itself");
        let mac = Link::from_message(&message(8, "mv0", up, vec![LinkInfo::Kind(InfoKind::MacVlan)]));
        assert_eq!(mac.kind, InterfaceKind::Other("macvlan".into()));
    }

    #[test]
    fn lifetimes_are_whole_seconds_rounded_up() {
        let ms = Duration::from_millis;
        assert_eq!(lifetime_seconds(ms(3000)), 3);
        assert_eq!(lifetime_seconds(ms(2001)), 3);
        assert_eq!(lifetime_seconds(ms(1)), 1);
        assert_eq!(lifetime_seconds(Duration::ZERO), 1, "0 would be an invalid lifetime");
        assert_eq!(lifetime_seconds(Duration::from_secs(u64::MAX)), u32::MAX - 1, "never infinity");
    }

    #[tokio::test]
    async fn fake_netlink_tracks_addresses_and_notifies() {
        let link = Link::from_message(&message(3, "eth0", LinkFlags::Up | LinkFlags::LowerUp, vec![]));
        let nl = FakeNetlink::with_links(vec![link.clone()]);
        let mut events = nl.watch_links().unwrap();
        let ip: IpAddr = "198.51.100.200".parse().unwrap();
        nl.add_address(3, ip, 32, None).await.unwrap();
        nl.add_address(3, ip, 32, None).await.unwrap();
        assert_eq!(nl.addresses(3).await.unwrap(), vec![(ip, 32)]);
        nl.remove_address(3, ip).await.unwrap();
        assert!(nl.all_addresses().is_empty());

        // With a lifetime: gone once it ran out, unless added again (which restarts it).
        let secs = Duration::from_secs;
        nl.add_address(3, ip, 32, Some(secs(3))).await.unwrap();
        nl.advance(secs(2));
        assert_eq!(nl.remaining_lifetime(3, ip), Some(Some(secs(1))));
        nl.add_address(3, ip, 32, Some(secs(3))).await.unwrap();
        nl.advance(secs(2));
        assert_eq!(nl.addresses(3).await.unwrap(), vec![(ip, 32)], "refreshed");
        nl.advance(secs(1));
        assert!(nl.all_addresses().is_empty(), "expired");
        assert_eq!(nl.remaining_lifetime(3, ip), None);
        // Replacing a lifetime with none makes the address permanent, as the kernel does.
        nl.add_address(3, ip, 32, Some(secs(3))).await.unwrap();
        nl.add_address(3, ip, 32, None).await.unwrap();
        nl.advance(secs(100));
        assert_eq!(nl.remaining_lifetime(3, ip), Some(None));
        assert_eq!(nl.adds(), 6);
        nl.remove_address(3, ip).await.unwrap();
        let down = Link { lower_up: false, ..link };
        nl.set_link(down.clone());
        assert_eq!(events.recv().await, Some(LinkEvent::Changed(down)));
        nl.remove_link(3);
        assert_eq!(events.recv().await, Some(LinkEvent::Removed { index: 3, name: "eth0".into() }));
        assert!(nl.links().await.unwrap().is_empty());
    }
}
