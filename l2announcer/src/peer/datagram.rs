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

#[cfg(test)]
mod tests {
    use super::*;

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
}
