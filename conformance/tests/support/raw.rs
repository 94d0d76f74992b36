//! Raw ARP / NDP from inside a lab namespace: an AF_PACKET socket bound to one interface, frames
//! built and parsed by hand (so the instrument shares no code with the announcer it measures).
//!
//! The socket is created on a thread that has entered the namespace (`setns` affects only that
//! thread); a socket keeps its namespace for life, so it is then used from any thread. Nothing here
//! ever sends from the root namespace.

// Binding an AF_PACKET socket needs a `sockaddr_ll`, which socket2 only builds from raw storage.
// The two `unsafe` calls are in `bind_ll`, each with its safety argument.
#![allow(unsafe_code)]

use anyhow::{Context, Result, bail};
use nix::libc;
use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, SockFilter, Socket, Type};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

const ETH_P_ALL: u16 = 0x0003;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;

pub type Mac = [u8; 6];

pub fn mac_str(m: &Mac) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

pub fn parse_mac(s: &str) -> Result<Mac> {
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad MAC {s:?}"))?;
    parts.try_into().map_err(|_| anyhow::anyhow!("bad MAC {s:?}"))
}

/// A packet socket on one interface of a lab namespace, receiving every frame that arrives on it
/// (frames it sends itself are filtered out).
#[derive(Debug)]
pub struct RawPort {
    socket: Socket,
    pub mac: Mac,
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
}

/// One captured frame, with the time it was read.
#[derive(Debug, Clone)]
pub struct Captured {
    pub at: Instant,
    pub frame: Frame,
}

/// What the suite cares about in a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Arp { eth_src: Mac, op: u16, sha: Mac, spa: Ipv4Addr, tpa: Ipv4Addr },
    NeighborSolicit { eth_src: Mac, target: Ipv6Addr },
    NeighborAdvert { eth_src: Mac, src: Ipv6Addr, target: Ipv6Addr, flags: u8, tlla: Option<Mac> },
    Other,
}

impl RawPort {
    /// Opens the socket on `ifname` inside namespace `ns`; `mac`/`v4`/`v6` are the interface's own.
    pub fn open(ns: &str, ifname: &str, mac: Mac, v4: Ipv4Addr, v6: Ipv6Addr) -> Result<Self> {
        let path = format!("/var/run/netns/{ns}");
        let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
        let ifname = ifname.to_string();
        let socket = std::thread::spawn(move || -> Result<Socket> {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
            let ifindex = nix::net::if_::if_nametoindex(ifname.as_str())
                .with_context(|| format!("no interface {ifname}"))?;
            let socket = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0)))
                .context("creating an AF_PACKET socket (needs CAP_NET_RAW)")?;
            // Incoming frames only: our own requests are not captured.
            let incoming_only = [
                SockFilter::new(0x20, 0, 0, 0xffff_f000 + 4), // ld #pkttype
                SockFilter::new(0x15, 0, 1, 4),               // jeq #PACKET_OUTGOING
                SockFilter::new(0x06, 0, 0, 0),               // ret #0
                SockFilter::new(0x06, 0, 0, 0x40000),         // ret #262144
            ];
            socket.attach_filter(&incoming_only)?;
            let _ = socket.set_recv_buffer_size(4 << 20);
            bind_ll(&socket, ifindex, ETH_P_ALL)?;
            socket.set_read_timeout(Some(Duration::from_millis(20)))?;
            Ok(socket)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("raw socket thread panicked"))??;
        Ok(Self { socket, mac, v4, v6 })
    }

    /// Drops whatever is queued.
    pub fn drain(&self) {
        let mut buf = [0u8; 2048];
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(1) && (&self.socket).read(&mut buf).is_ok() {}
    }

    pub fn send_arp_request(&self, target: Ipv4Addr) -> Result<()> {
        let mut f = Vec::with_capacity(60);
        f.extend_from_slice(&[0xff; 6]);
        f.extend_from_slice(&self.mac);
        f.extend_from_slice(&ETH_P_ARP.to_be_bytes());
        f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
        f.extend_from_slice(&self.mac);
        f.extend_from_slice(&self.v4.octets());
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&target.octets());
        f.resize(60, 0);
        self.send(&f)
    }

    /// A Neighbor Solicitation for `target` to its solicited-node multicast group, with the source
    /// link-layer address option.
    pub fn send_neighbor_solicit(&self, target: Ipv6Addr) -> Result<()> {
        let t = target.octets();
        let dst = Ipv6Addr::new(
            0xff02,
            0,
            0,
            0,
            0,
            1,
            0xff00 | u16::from(t[13]),
            u16::from_be_bytes([t[14], t[15]]),
        );
        let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&t);
        icmp.extend_from_slice(&[1, 1]);
        icmp.extend_from_slice(&self.mac);
        let sum = icmpv6_checksum(&self.v6, &dst, &icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut f = Vec::with_capacity(14 + 40 + icmp.len());
        f.extend_from_slice(&[0x33, 0x33, 0xff, t[13], t[14], t[15]]);
        f.extend_from_slice(&self.mac);
        f.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
        f.extend_from_slice(&[58, 255]);
        f.extend_from_slice(&self.v6.octets());
        f.extend_from_slice(&dst.octets());
        f.extend_from_slice(&icmp);
        self.send(&f)
    }

    /// Asks for `target` (ARP or NS by family).
    pub fn solicit(&self, target: IpAddr) -> Result<()> {
        match target {
            IpAddr::V4(a) => self.send_arp_request(a),
            IpAddr::V6(a) => self.send_neighbor_solicit(a),
        }
    }

    fn send(&self, frame: &[u8]) -> Result<()> {
        let n = self.socket.send(frame).context("sending a raw frame")?;
        if n != frame.len() {
            bail!("short raw send: {n} of {}", frame.len());
        }
        Ok(())
    }

    /// Reads frames for `duration` (bounded), parsed.
    pub fn capture(&self, duration: Duration) -> Vec<Captured> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        let start = Instant::now();
        while start.elapsed() < duration {
            match (&self.socket).read(&mut buf) {
                Ok(n) => {
                    let frame = parse(&buf[..n]);
                    if frame != Frame::Other {
                        out.push(Captured { at: Instant::now(), frame });
                    }
                }
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => panic!("reading the raw socket: {e}"),
            }
        }
        out
    }

    /// Sends `count` solicitations for `target` 100 ms apart, then collects for `listen`; returns
    /// the link-layer addresses of every reply for `target` (ARP reply sender / NA target link-layer
    /// address, else its Ethernet source) with the Ethernet source.
    pub fn resolve(&self, target: IpAddr, count: u32, listen: Duration) -> Result<Vec<Reply>> {
        self.drain();
        let mut frames = Vec::new();
        for _ in 0..count {
            self.solicit(target)?;
            frames.extend(self.capture(Duration::from_millis(100)));
        }
        frames.extend(self.capture(listen));
        Ok(replies_for(&frames, target))
    }
}

/// A reply seen for an address: who said so in the payload, and the frame's Ethernet source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub lladdr: Mac,
    pub eth_src: Mac,
}

/// ARP replies (`spa == target`, op 2) and solicited Neighbor Advertisements for `target`.
pub fn replies_for(frames: &[Captured], target: IpAddr) -> Vec<Reply> {
    frames
        .iter()
        .filter_map(|c| match (&c.frame, target) {
            (Frame::Arp { eth_src, op: 2, sha, spa, tpa }, IpAddr::V4(t)) if *spa == t && *tpa != t => {
                Some(Reply { lladdr: *sha, eth_src: *eth_src })
            }
            (Frame::NeighborAdvert { eth_src, target: tt, tlla, flags, .. }, IpAddr::V6(t))
                if *tt == t && flags & 0x40 != 0 =>
            {
                Some(Reply { lladdr: tlla.unwrap_or(*eth_src), eth_src: *eth_src })
            }
            _ => None,
        })
        .collect()
}

/// Gratuitous announcements for `target`: ARP (request or reply) with sender IP == target IP ==
/// `target`, or an unsolicited NA (Solicited flag clear) for it. Returns (time, lladdr, eth_src,
/// description).
pub fn gratuitous_for(frames: &[Captured], target: IpAddr) -> Vec<(Instant, Reply, String)> {
    frames
        .iter()
        .filter_map(|c| match (&c.frame, target) {
            (Frame::Arp { eth_src, op, sha, spa, tpa }, IpAddr::V4(t)) if *spa == t && *tpa == t => {
                Some((c.at, Reply { lladdr: *sha, eth_src: *eth_src }, format!("ARP op {op}")))
            }
            (Frame::NeighborAdvert { eth_src, target: tt, tlla, flags, .. }, IpAddr::V6(t))
                if *tt == t && flags & 0x40 == 0 =>
            {
                Some((
                    c.at,
                    Reply { lladdr: tlla.unwrap_or(*eth_src), eth_src: *eth_src },
                    format!("NA flags {flags:#04x} (override {})", flags & 0x20 != 0),
                ))
            }
            _ => None,
        })
        .collect()
}

fn parse(b: &[u8]) -> Frame {
    if b.len() < 14 {
        return Frame::Other;
    }
    let eth_src: Mac = b[6..12].try_into().unwrap();
    let ethertype = u16::from_be_bytes([b[12], b[13]]);
    let p = &b[14..];
    match ethertype {
        ETH_P_ARP if p.len() >= 28 && p[4] == 6 && p[5] == 4 => Frame::Arp {
            eth_src,
            op: u16::from_be_bytes([p[6], p[7]]),
            sha: p[8..14].try_into().unwrap(),
            spa: Ipv4Addr::new(p[14], p[15], p[16], p[17]),
            tpa: Ipv4Addr::new(p[24], p[25], p[26], p[27]),
        },
        ETH_P_IPV6 if p.len() >= 40 + 24 && p[6] == 58 => {
            let src = Ipv6Addr::from(<[u8; 16]>::try_from(&p[8..24]).unwrap());
            let icmp = &p[40..];
            let target = Ipv6Addr::from(<[u8; 16]>::try_from(&icmp[8..24]).unwrap());
            match icmp[0] {
                135 => Frame::NeighborSolicit { eth_src, target },
                136 => {
                    let mut tlla = None;
                    let mut opts = &icmp[24..];
                    while opts.len() >= 8 && opts[1] != 0 {
                        let len = usize::from(opts[1]) * 8;
                        if len > opts.len() {
                            break;
                        }
                        if opts[0] == 2 {
                            tlla = Some(opts[2..8].try_into().unwrap());
                        }
                        opts = &opts[len..];
                    }
                    Frame::NeighborAdvert { eth_src, src, target, flags: icmp[4], tlla }
                }
                _ => Frame::Other,
            }
        }
        _ => Frame::Other,
    }
}

fn icmpv6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, msg: &[u8]) -> u16 {
    let mut data = Vec::with_capacity(40 + msg.len());
    data.extend_from_slice(&src.octets());
    data.extend_from_slice(&dst.octets());
    data.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    data.extend_from_slice(&[0, 0, 0, 58]);
    data.extend_from_slice(msg);
    if data.len() % 2 == 1 {
        data.push(0);
    }
    let mut sum: u32 = data.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn bind_ll(socket: &Socket, ifindex: u32, protocol: u16) -> Result<()> {
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: `sockaddr_storage` is large and aligned enough for any socket address, including
    // `sockaddr_ll`, and zeroed storage is a valid `sockaddr_ll`.
    let ll = unsafe { storage.view_as::<libc::sockaddr_ll>() };
    ll.sll_family = libc::AF_PACKET as libc::c_ushort;
    ll.sll_protocol = protocol.to_be();
    ll.sll_ifindex = i32::try_from(ifindex).context("ifindex out of range")?;
    // SAFETY: the storage holds an initialised `sockaddr_ll` whose size is the length given.
    let addr = unsafe { SockAddr::new(storage, size_of::<libc::sockaddr_ll>() as libc::socklen_t) };
    socket.bind(&addr).context("binding the AF_PACKET socket")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_known_ns() {
        // Round trip: a message with its checksum filled in sums to zero.
        let src: Ipv6Addr = "2001:db8:100::2".parse().unwrap();
        let dst: Ipv6Addr = "ff02::1:ff00:1000".parse().unwrap();
        let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&"2001:db8:100::1000".parse::<Ipv6Addr>().unwrap().octets());
        let s = icmpv6_checksum(&src, &dst, &icmp);
        icmp[2..4].copy_from_slice(&s.to_be_bytes());
        assert_eq!(icmpv6_checksum(&src, &dst, &icmp), 0);
    }
}
