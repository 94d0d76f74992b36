//! FerroLB's gRPC API, `ferrolb.v1.Announcer` (`ferrolb/v1/announcer.proto`): the generated
//! messages, client and server, and what serves and consumes them. The announcers' peer channel,
//! `ferrolb.v1.Peer` (`ferrolb/v1/peer.proto`), is generated here too (`v1::peer_client`,
//! `v1::peer_server`); the announcer crate serves and uses it.
//!
//! - [`table`]: the pure, revisioned announcement table the announcer writes and the API reads.
//! - [`watch`] and [`mirror`]: the two ends of `WatchAnnouncements` without I/O (what the server
//!   sends next; a client's copy and its resume point).
//! - [`server`]: the tonic service over a [`server::SharedTable`], served on a unix socket and on
//!   TCP with mutual TLS ([`tls`]), with the health service and server reflection.
//! - [`authority`]: why and how the unix socket accepts clients that send the socket path as
//!   `:authority` (grpcio, grpc-java).
//! - [`client`]: connecting to either.

pub mod authority;
pub mod client;
pub mod convert;
pub mod mirror;
pub mod server;
pub mod table;
pub mod tls;
pub mod watch;

/// `ferrolb.v1`: the announcer API (messages, `announcer_client`, `announcer_server`), generated
/// from `ferrolb/v1/announcer.proto`, and the peer channel (`Heartbeat`, `HeartbeatAck`,
/// `TakeoverNotice`, `TakeoverAck`, `peer_client`, `peer_server`) from `ferrolb/v1/peer.proto`.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("ferrolb.v1");
}

/// The encoded `FileDescriptorSet` of `ferrolb.v1` (with its imports), for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ferrolb_v1_descriptor.bin"));

pub use client::{ConnectError, TcpConnectError, connect_unix, tcp_channel, unix_channel};
pub use mirror::{AnnouncementMirror, Delta};
pub use server::{AnnouncerService, DEFAULT_SOCKET_PATH, ServeError, SharedTable, serve_unix};
pub use table::{
    Announcement, AnnouncementTable, Filter, Programming, ProgrammingReport, ProgrammingState, ServiceRef,
};
pub use v1::announcer_client::AnnouncerClient;
pub use v1::announcer_server::AnnouncerServer;
