//! Heartbeats and their acks as UDP datagrams: one byte of kind, then the protobuf message
//! (`ferrolb.v1.Heartbeat` / `HeartbeatAck`, authenticated by their own MAC like every peer message).
//!
//! Why datagrams and not a gRPC call per heartbeat: liveness must see the network as it is now. Over
//! TCP, a heartbeat lost while a link was down is retransmitted with exponential back-off, so after
//! the link comes back the connection stays silent for up to seconds, and every later heartbeat waits
//! behind it; calls abandoned at their deadline pile up as HTTP/2 stream resets that the receiver
//! then refuses in a burst (`pending-accept streams reached limit`), killing the connection. A
//! datagram is either there within the interval or not, each on its own, at a fraction of the cost
//! (no HTTP/2 framing, no per-call task). Takeover notices, rare and needing delivery, stay gRPC calls.

use std::net::SocketAddr;

use ferrolb_proto::v1;
use prost::Message;

/// The largest datagram read (a heartbeat lists at most every peer it does not hear).
pub const MAX_LEN: usize = 65_535;

/// The largest ack read. An ack carries two node names (at most 253 bytes each, as Kubernetes
/// names), a 32-byte MAC and six integers: under 650 bytes. A longer datagram is read truncated,
/// fails to decode and is counted as malformed.
pub const MAX_ACK_LEN: usize = 1024;

/// The first byte of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Heartbeat = 1,
    HeartbeatAck = 2,
}

/// Why a datagram is not the message expected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("empty datagram")]
    Empty,
    #[error("datagram of kind {got}, expected {expected}")]
    WrongKind { got: u8, expected: u8 },
    #[error("undecodable message: {0}")]
    Protobuf(String),
}

/// `kind` then `m`.
pub fn encode(kind: Kind, m: &impl Message) -> Vec<u8> {
    let mut buf = Vec::with_capacity(1 + m.encoded_len());
    buf.push(kind as u8);
    m.encode(&mut buf).expect("a Vec grows as needed");
    buf
}

fn decode<M: Message + Default>(kind: Kind, datagram: &[u8]) -> Result<M, DecodeError> {
    let (&first, body) = datagram.split_first().ok_or(DecodeError::Empty)?;
    if first != kind as u8 {
        return Err(DecodeError::WrongKind { got: first, expected: kind as u8 });
    }
    M::decode(body).map_err(|e| DecodeError::Protobuf(e.to_string()))
}

/// A heartbeat datagram's message (not yet authenticated: see `auth::check_incoming`).
pub fn decode_heartbeat(datagram: &[u8]) -> Result<v1::Heartbeat, DecodeError> {
    decode(Kind::Heartbeat, datagram)
}

/// An ack datagram's message (not yet authenticated).
pub fn decode_ack(datagram: &[u8]) -> Result<v1::HeartbeatAck, DecodeError> {
    decode(Kind::HeartbeatAck, datagram)
}

/// A UDP socket on an ephemeral port, connected to `peer`: its acks come back to it, and an ICMP
/// port unreachable from `peer` surfaces as `ConnectionRefused` on its next send or receive.
pub async fn connect(peer: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    let local: SocketAddr = if peer.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = tokio::net::UdpSocket::bind(local).await?;
    socket.connect(peer).await?;
    Ok(socket)
}

/// Asks the kernel to stamp every datagram `socket` receives with its arrival time
/// (`SO_TIMESTAMPNS`, read back by [`recv_stamped`]).
pub fn enable_receive_timestamps(socket: &tokio::net::UdpSocket) -> std::io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    setsockopt(socket, sockopt::ReceiveTimestampns, &true).map_err(std::io::Error::from)
}

/// One datagram read by [`recv_stamped`].
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub len: usize,
    /// The sender's address (`None` when the kernel gave none).
    pub from: Option<SocketAddr>,
    /// When it arrived on the local monotonic clock ([`crate::liveness::arrival`]).
    pub arrived: std::time::Instant,
}

/// Reads one datagram from `socket` into `buf`, with its arrival time: the kernel's receive
/// timestamp when [`enable_receive_timestamps`] is on, else the read time. `empty_at` is the last
/// time this socket was found empty (start with its creation); it is updated here, and bounds the
/// arrival from below.
///
/// Why: a process that is not scheduled for a while reads its heartbeats late, and judged by the
/// read it would count its own stall as its peers' silence. The stamp is on the wall clock (the
/// only clock `SO_TIMESTAMPNS` offers); its age at the read is converted to the monotonic clock.
pub async fn recv_stamped(
    socket: &tokio::net::UdpSocket,
    buf: &mut [u8],
    empty_at: &mut std::time::Instant,
) -> std::io::Result<Received> {
    use std::io::IoSliceMut;
    use std::os::fd::AsRawFd;

    use nix::errno::Errno;
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrLike, SockaddrStorage, recvmsg};

    let fd = socket.as_raw_fd();
    socket
        .async_io(tokio::io::Interest::READABLE, || {
            let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
            let mut iov = [IoSliceMut::new(buf)];
            let msg = match recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty()) {
                Ok(m) => m,
                Err(Errno::EAGAIN) => {
                    // Nothing queued now: whatever is read next arrived after this moment.
                    *empty_at = std::time::Instant::now();
                    return Err(std::io::ErrorKind::WouldBlock.into());
                }
                Err(e) => return Err(e.into()),
            };
            let read_at = std::time::Instant::now();
            let stamp = msg.cmsgs().ok().and_then(|mut c| {
                c.find_map(|m| match m {
                    ControlMessageOwned::ScmTimestampns(ts) => Some(ts),
                    _ => None,
                })
            });
            let age = stamp.and_then(|ts| {
                let stamp = std::time::UNIX_EPOCH
                    + std::time::Duration::new(
                        u64::try_from(ts.tv_sec()).ok()?,
                        u32::try_from(ts.tv_nsec()).ok()?,
                    );
                // A stamp ahead of the wall clock (stepped back since): the read time.
                Some(std::time::SystemTime::now().duration_since(stamp).unwrap_or_default())
            });
            let from = msg.address.as_ref().and_then(|a| match a.family() {
                Some(nix::sys::socket::AddressFamily::Inet) => {
                    a.as_sockaddr_in().map(|s| SocketAddr::V4(std::net::SocketAddrV4::from(*s)))
                }
                Some(nix::sys::socket::AddressFamily::Inet6) => {
                    a.as_sockaddr_in6().map(|s| SocketAddr::V6(std::net::SocketAddrV6::from(*s)))
                }
                _ => None,
            });
            Ok(Received { len: msg.bytes, from, arrived: crate::liveness::arrival(read_at, age, *empty_at) })
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A datagram that waited in the socket before the read is dated by its arrival, not the read.
    #[tokio::test]
    async fn a_datagram_read_late_is_dated_by_its_arrival() {
        let rx = tokio::net::UdpSocket::bind(("127.0.0.1", 0)).await.unwrap();
        enable_receive_timestamps(&rx).unwrap();
        // The kernel turns its receive stamping on asynchronously when the first socket asks for
        // it; until then datagrams are stamped at the read.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let mut empty_at = std::time::Instant::now();
        let tx = connect(rx.local_addr().unwrap()).await.unwrap();
        let sent = std::time::Instant::now();
        tx.send(b"x").await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let mut buf = [0u8; 16];
        let r = recv_stamped(&rx, &mut buf, &mut empty_at).await.unwrap();
        let read = std::time::Instant::now();
        assert_eq!((r.len, r.from), (1, Some(tx.local_addr().unwrap())));
        assert!(r.arrived >= empty_at.min(sent) && r.arrived <= read);
        assert!(
            read.duration_since(r.arrived) >= std::time::Duration::from_millis(250),
            "arrival {:?} before the read, {:?} after the send, empty {:?} after the send",
            read.duration_since(r.arrived),
            r.arrived.saturating_duration_since(sent),
            empty_at.saturating_duration_since(sent)
        );
    }

    #[test]
    fn round_trip_and_rejections() {
        let hb = v1::Heartbeat {
            node: "a".into(),
            epoch: 7,
            seq: 9,
            to: "b".into(),
            sent_at: 5,
            api_ok: true,
            silent: vec![v1::Silence { node: "c".into(), silent_for_ms: 300 }],
            ..Default::default()
        };
        let d = encode(Kind::Heartbeat, &hb);
        assert_eq!(d[0], 1);
        assert_eq!(decode_heartbeat(&d), Ok(hb));
        assert_eq!(decode_ack(&d), Err(DecodeError::WrongKind { got: 1, expected: 2 }));
        assert_eq!(decode_heartbeat(&[]), Err(DecodeError::Empty));
        assert!(matches!(decode_heartbeat(&[1, 0xff, 0xff]), Err(DecodeError::Protobuf(_))));
        let ack = v1::HeartbeatAck { node: "b".into(), heartbeat_seq: 9, ..Default::default() };
        assert_eq!(decode_ack(&encode(Kind::HeartbeatAck, &ack)), Ok(ack));
    }

    /// The largest ack there can be (longest names, largest integers, a full MAC) fits the ack
    /// buffer; one cut at the buffer's end does not decode.
    #[test]
    fn the_largest_ack_fits_the_ack_buffer() {
        let name = "n".repeat(253);
        let ack = v1::HeartbeatAck {
            node: name.clone(),
            epoch: u64::MAX,
            seq: u64::MAX,
            to: name,
            mac: vec![0xff; 32],
            heartbeat_epoch: u64::MAX,
            heartbeat_seq: u64::MAX,
            heartbeat_sent_at: u64::MAX,
        };
        let d = encode(Kind::HeartbeatAck, &ack);
        assert!(d.len() <= MAX_ACK_LEN, "{} bytes", d.len());
        let mut long = ack.clone();
        long.mac = vec![0xff; MAX_ACK_LEN];
        let d = encode(Kind::HeartbeatAck, &long);
        assert!(decode_ack(&d[..MAX_ACK_LEN]).is_err());
    }
}
