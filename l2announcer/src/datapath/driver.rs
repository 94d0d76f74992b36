//! Turns a plan's "answer for IP on these interfaces" into the datapath of `--datapath`:
//!
//! - `responder`: the userspace ARP/NDP responder holds the address on each interface; a newly held
//!   pair starts a gratuitous burst;
//! - `netlink`: the address is added to the interface as a /32 or /128 (the kernel answers), plus a
//!   gratuitous burst; removed on loss. It is added with a short lifetime that is refreshed while
//!   held ([`ExpiringAddresses`]), so the kernel drops it by itself when this process is killed;
//! - `delegate`: nothing is programmed here; the CNI agent follows the gRPC table and reports back,
//!   and a burst starts when it reports the address programmed ([`Driver::agent_programmed`]).
//!
//! Releases are applied before new holds, so a moving address is never answered twice by this node.
//!
//! Generic over the [`Netlink`] facade (kept rather than dropped netavark-style, and generic since its
//! `impl Future` methods rule out `dyn`): [`super::FakeNetlink`] then runs the whole announcer without
//! root (`tests/in_process.rs`), and [`super::RtNetlink`] is exercised in namespaces (`tests/datapath.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{AnnounceSchedule, Bursts, Counters, ExpiringAddresses, Link, Netlink, PacketSocket, Responder};

/// `--datapath`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Userspace ARP replies and NDP solicited NAs from AF_PACKET sockets.
    Responder,
    /// Add the address to the interface and let the kernel answer.
    Netlink,
    /// A CNI agent programs the datapath through the gRPC API.
    Delegate,
}

/// Default `--netlink-address-lifetime`: as long as the heartbeat Lease (3 s), refreshed every
/// second, so two refreshes in a row can be late before the kernel drops a held address.
pub const DEFAULT_ADDRESS_LIFETIME: Duration = Duration::from_secs(3);

fn expiring<N: Netlink + 'static>(
    mode: Mode,
    netlink: &Arc<N>,
    lifetime: Option<Duration>,
) -> Option<ExpiringAddresses<N>> {
    (mode == Mode::Netlink).then(|| ExpiringAddresses::new(netlink.clone(), lifetime).refreshing())
}

/// Programs what this node answers for into the datapath of one [`Mode`].
pub struct Driver<N> {
    mode: Mode,
    responder: Responder,
    /// `netlink` mode: the addresses added, refreshed while held.
    addresses: Option<ExpiringAddresses<N>>,
    netlink: Arc<N>,
    links: BTreeMap<String, Link>,
    /// (IP, interface name) -> interface index, as programmed.
    current: BTreeMap<(IpAddr, String), u32>,
    senders: HashMap<u32, Arc<PacketSocket>>,
    bursts: Bursts,
}

impl<N: Netlink + 'static> Driver<N> {
    /// A driver for `mode`. In `netlink` mode addresses are added through `netlink` with
    /// [`DEFAULT_ADDRESS_LIFETIME`] (see [`Driver::with_address_lifetime`]) and refreshed while
    /// held; this starts the refresh task (it needs a tokio runtime).
    pub fn new(mode: Mode, netlink: Arc<N>, schedule: AnnounceSchedule) -> Self {
        Self {
            mode,
            responder: Responder::new(schedule.clone()),
            addresses: expiring(mode, &netlink, Some(DEFAULT_ADDRESS_LIFETIME)),
            netlink,
            links: BTreeMap::new(),
            current: BTreeMap::new(),
            senders: HashMap::new(),
            // Netlink mode's announcements are counted apart from the responder's.
            bursts: Bursts::new(&schedule, Arc::new(Counters::default())),
        }
    }

    /// `--netlink-address-lifetime`: the lifetime of the addresses added in `netlink` mode from now
    /// on (`None`: permanent).
    pub fn with_address_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.addresses = expiring(self.mode, &self.netlink, lifetime);
        self
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The responder (for its counters).
    pub fn responder(&self) -> &Responder {
        &self.responder
    }

    /// The node's links as last listed or watched.
    pub fn set_links(&mut self, links: impl IntoIterator<Item = Link>) {
        self.links = links.into_iter().map(|l| (l.name.clone(), l)).collect();
        let alive: BTreeSet<u32> = self.links.values().map(|l| l.index).collect();
        for index in self.responder.attached() {
            if !alive.contains(&index) {
                self.responder.detach(index);
            }
        }
        self.senders.retain(|i, _| alive.contains(i));
    }

    pub fn links(&self) -> impl Iterator<Item = &Link> {
        self.links.values()
    }

    /// The (IP, interface) pairs programmed now.
    pub fn programmed(&self) -> impl Iterator<Item = &(IpAddr, String)> {
        self.current.keys()
    }

    /// Makes the datapath answer exactly `want` (IP -> interface names). Returns the pairs newly
    /// taken over.
    pub async fn apply(&mut self, want: &BTreeMap<IpAddr, Vec<String>>) -> Vec<(IpAddr, String)> {
        // Borrowed names: a round over 10,000 addresses allocates only for what changed.
        let mut wanted: BTreeMap<(IpAddr, &str), u32> = BTreeMap::new();
        for (ip, ifaces) in want {
            for name in ifaces {
                if let Some(link) = self.links.get(name) {
                    wanted.insert((*ip, name.as_str()), link.index);
                }
            }
        }
        let gone: Vec<((IpAddr, String), u32)> = self
            .current
            .iter()
            .filter(|((ip, name), i)| wanted.get(&(*ip, name.as_str())) != Some(*i))
            .map(|(k, i)| (k.clone(), *i))
            .collect();
        for ((ip, name), index) in gone {
            self.release(ip, index).await;
            self.current.remove(&(ip, name));
        }
        let mut taken = Vec::new();
        for ((ip, name), index) in wanted {
            // `String::new()` does not allocate: the range starts at `ip`'s first interface.
            let programmed = self
                .current
                .range((ip, String::new())..)
                .take_while(|((i, _), _)| *i == ip)
                .any(|((_, n), _)| n == name);
            if programmed {
                continue;
            }
            if self.take(ip, index).await {
                self.current.insert((ip, name.to_owned()), index);
                taken.push((ip, name.to_owned()));
            }
        }
        taken
    }

    /// Stops answering everything (shutdown).
    pub async fn clear(&mut self) {
        self.apply(&BTreeMap::new()).await;
    }

    /// Delegate mode: the agent reports `ip` programmed on `interface`: announce it now.
    pub fn agent_programmed(&mut self, ip: IpAddr, interface: &str) {
        if self.mode != Mode::Delegate || !self.current.contains_key(&(ip, interface.to_owned())) {
            return;
        }
        if let Some(index) = self.links.get(interface).map(|l| l.index) {
            self.burst(index, ip);
        }
    }

    async fn take(&mut self, ip: IpAddr, index: u32) -> bool {
        let Some(mac) = self.links.values().find(|l| l.index == index).and_then(|l| l.mac) else {
            tracing::warn!(%ip, index, "interface has no MAC address; cannot announce on it");
            return false;
        };
        match self.mode {
            Mode::Responder => {
                if let Err(error) = self.responder.attach(index, mac) {
                    tracing::warn!(%ip, index, %error, "cannot open the responder socket");
                    return false;
                }
                self.responder.take_over(index, ip);
            }
            Mode::Netlink => {
                let Some(addresses) = &self.addresses else { return false };
                let prefix = if ip.is_ipv4() { 32 } else { 128 };
                if let Err(error) = addresses.add(index, ip, prefix).await {
                    tracing::warn!(%ip, index, %error, "adding the address failed");
                    return false;
                }
                self.burst(index, ip);
            }
            Mode::Delegate => {}
        }
        true
    }

    async fn release(&mut self, ip: IpAddr, index: u32) {
        self.bursts.cancel(index, ip);
        match self.mode {
            Mode::Responder => {
                self.responder.release(index, ip);
            }
            Mode::Netlink => {
                if let Some(addresses) = &self.addresses
                    && let Err(error) = addresses.remove(index, ip).await
                {
                    tracing::warn!(%ip, index, %error, "removing the address failed");
                }
            }
            Mode::Delegate => {}
        }
    }

    fn burst(&mut self, index: u32, ip: IpAddr) {
        // An empty schedule sends nothing, so it needs no raw socket (which needs CAP_NET_RAW).
        if self.bursts.sends_nothing() {
            return;
        }
        let Some(mac) = self.links.values().find(|l| l.index == index).and_then(|l| l.mac) else { return };
        let socket = match self.senders.get(&index) {
            Some(s) => s.clone(),
            None => match PacketSocket::sender(index) {
                Ok(s) => {
                    let s = Arc::new(s);
                    self.senders.insert(index, s.clone());
                    s
                }
                Err(error) => {
                    tracing::warn!(%ip, index, %error, "cannot open a socket for gratuitous packets");
                    return;
                }
            },
        };
        self.bursts.start(socket, mac, ip);
    }
}
