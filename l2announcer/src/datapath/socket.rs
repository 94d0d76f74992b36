//! AF_PACKET sockets bound to one interface, registered with tokio (`AsyncFd`).
//!
//! The workspace denies `unsafe_code`; this module allows it because binding an AF_PACKET socket
//! needs a `sockaddr_ll` (socket2 only builds one from raw storage) and joining a link-layer
//! multicast group needs `setsockopt(PACKET_ADD_MEMBERSHIP)`, which neither socket2 nor nix wrap;
//! registering the fd with tokio (`AsyncFd::register`) is `unsafe` too.
//! Each `unsafe` block is a single call with its safety argument next to it.
#![allow(unsafe_code)]

use std::io::{self, Read};
use std::os::fd::AsRawFd;

use nix::libc;
use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, SockFilter, Socket, Type};
use tokio::io::unix::AsyncFd;

use super::filter;
use super::frame::Mac;

const ETH_P_ALL: u16 = 0x0003;
const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_DROP_MEMBERSHIP: libc::c_int = 2;
const PACKET_MR_MULTICAST: libc::c_ushort = 0;
const PACKET_MR_ALLMULTI: libc::c_ushort = 2;

/// `struct packet_mreq` from `<linux/if_packet.h>`.
#[repr(C)]
struct PacketMreq {
    mr_ifindex: libc::c_int,
    mr_type: libc::c_ushort,
    mr_alen: libc::c_ushort,
    mr_address: [libc::c_uchar; 8],
}

/// A raw Ethernet socket on one interface. Frames are sent with their Ethernet header.
#[derive(Debug)]
pub struct PacketSocket {
    fd: AsyncFd<Socket>,
    ifindex: u32,
}

impl PacketSocket {
    /// A socket that receives only what [`filter::PROGRAM`] passes (ARP requests and Neighbor
    /// Solicitations arriving untagged on `ifindex`) and sends on `ifindex`.
    pub fn responder(ifindex: u32) -> io::Result<Self> {
        Self::open(ifindex, Some(&filter::socket_filter()))
    }

    /// A socket that only sends (binds with protocol 0, so the kernel queues nothing to it).
    pub fn sender(ifindex: u32) -> io::Result<Self> {
        Self::open(ifindex, None)
    }

    /// A socket that receives every frame arriving on `ifindex` (not the ones sent from it), for
    /// packet captures in tests and diagnostics.
    pub fn capture(ifindex: u32) -> io::Result<Self> {
        let incoming_only = [
            SockFilter::new(0x20, 0, 0, 0xffff_f000 + 4), // ld #pkttype
            SockFilter::new(0x15, 0, 1, 4),               // jeq #PACKET_OUTGOING
            SockFilter::new(0x06, 0, 0, 0),               // ret #0
            SockFilter::new(0x06, 0, 0, 0x40000),         // ret #262144
        ];
        Self::open(ifindex, Some(&incoming_only))
    }

    fn open(ifindex: u32, receive: Option<&[SockFilter]>) -> io::Result<Self> {
        // Created with protocol 0 (receives nothing), filtered, and only then bound with ETH_P_ALL:
        // no unfiltered frame from any interface can be queued in between.
        let socket = Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0)))?;
        socket.set_nonblocking(true)?;
        let protocol = match receive {
            Some(program) => {
                socket.attach_filter(program)?;
                ETH_P_ALL
            }
            None => 0,
        };
        bind(&socket, ifindex, protocol)?;
        // SAFETY: `Socket` owns its fd, which stays open and the same until the `Socket` (owned by
        // the `AsyncFd`) is dropped; `as_raw_fd` always returns that fd.
        let fd = unsafe { AsyncFd::register(socket) }.map_err(io::Error::from)?;
        Ok(Self { fd, ifindex })
    }

    /// The interface this socket is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Receives one frame into `buf` (truncated to its length).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            if let Ok(result) = guard.try_io(|fd| fd.get_ref().read(buf)) {
                return result;
            }
        }
    }

    /// Sends one complete Ethernet frame on the bound interface.
    pub async fn send(&self, frame: &[u8]) -> io::Result<()> {
        loop {
            let mut guard = self.fd.writable().await?;
            if let Ok(result) = guard.try_io(|fd| fd.get_ref().send(frame)) {
                return result.map(|_| ());
            }
        }
    }

    /// Joins a link-layer multicast group on the bound interface (reference-counted by the kernel
    /// per socket; left when the socket closes).
    pub fn join(&self, group: Mac) -> io::Result<()> {
        self.membership(PACKET_ADD_MEMBERSHIP, PACKET_MR_MULTICAST, Some(group))
    }

    /// Leaves a group joined with [`PacketSocket::join`].
    pub fn leave(&self, group: Mac) -> io::Result<()> {
        self.membership(PACKET_DROP_MEMBERSHIP, PACKET_MR_MULTICAST, Some(group))
    }

    /// Receives every multicast frame of the interface (the socket filter still passes only ARP
    /// requests and Neighbor Solicitations). Used instead of one group per address once a link
    /// holds many IPv6 addresses: each group membership costs the kernel a walk of the socket's
    /// membership list under the RTNL lock, so thousands of them grow quadratically.
    pub fn join_all_multicast(&self) -> io::Result<()> {
        self.membership(PACKET_ADD_MEMBERSHIP, PACKET_MR_ALLMULTI, None)
    }

    fn membership(&self, op: libc::c_int, mr_type: libc::c_ushort, group: Option<Mac>) -> io::Result<()> {
        let mut mr_address = [0u8; 8];
        if let Some(group) = group {
            mr_address[..6].copy_from_slice(&group.0);
        }
        let mreq = PacketMreq {
            mr_ifindex: ifindex_c(self.ifindex)?,
            mr_type,
            mr_alen: if group.is_some() { 6 } else { 0 },
            mr_address,
        };
        // SAFETY: `mreq` is a properly initialised `struct packet_mreq` that outlives the call, and
        // its exact size is passed; the fd is a valid open socket owned by `self`.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.get_ref().as_raw_fd(),
                libc::SOL_PACKET,
                op,
                (&raw const mreq).cast(),
                size_of::<PacketMreq>() as libc::socklen_t,
            )
        };
        if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    }
}

fn ifindex_c(ifindex: u32) -> io::Result<libc::c_int> {
    libc::c_int::try_from(ifindex)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ifindex out of range"))
}

fn bind(socket: &Socket, ifindex: u32, protocol: u16) -> io::Result<()> {
    let mut storage = SockAddrStorage::zeroed();
    // SAFETY: `sockaddr_storage` is large and aligned enough for any socket address, including
    // `sockaddr_ll`, and zeroed storage is a valid `sockaddr_ll`.
    let ll = unsafe { storage.view_as::<libc::sockaddr_ll>() };
    ll.sll_family = libc::AF_PACKET as libc::c_ushort;
    ll.sll_protocol = protocol.to_be();
    ll.sll_ifindex = ifindex_c(ifindex)?;
    // SAFETY: the storage holds an initialised `sockaddr_ll` whose size is the length given.
    let addr = unsafe { SockAddr::new(storage, size_of::<libc::sockaddr_ll>() as libc::socklen_t) };
    socket.bind(&addr)
}
