//! The announcers' peer channel (DESIGN.md §4, "Liveness without per-service API load" and "Peer
//! channel security"): direct heartbeats between announcers, and takeover notices, over gRPC
//! (`ferrolb.v1.Peer`, `proto/ferrolb/v1/peer.proto`).
//!
//! **What it is for.** [`crate::liveness`] judges a node alive while its heartbeat Lease is valid *or*
//! it is heard directly; a holder keeps announcing while its own heartbeat claim is current *or* a peer
//! acknowledged one of its recent heartbeats. This module supplies the two direct signals:
//! [`PeerHub::heard_at`] (when a node's heartbeat last reached us), [`PeerHub::acked_sends`] (per
//! peer, when we sent the latest heartbeat it acknowledged) and [`PeerHub::quorum_silent_at`] (when
//! a majority of the cluster stopped hearing a node: heartbeats carry whom their sender does not
//! hear), plus [`PeerEvent`]s on changes. A node
//! that took over an address tells the old holder at once ([`PeerHub::notify_takeover`]), so a holder
//! cut off from the API server stops answering without waiting for its heartbeat Lease to expire.
//!
//! **Why one datagram per tick** ([`datagram`]): every heartbeat is its own UDP datagram, sent from
//! a socket connected to the peer, and its ack echoes its epoch, seq and send time, so
//! "acknowledged" means this very heartbeat, sent at a known local time, reached a live peer that
//! answered it. Nothing queues behind a lost heartbeat and nothing is retransmitted late (TCP's
//! back-off kept a recovered link silent for seconds, and abandoned calls piled up as HTTP/2 stream
//! resets that the receiver refused in a burst). A peer whose port answers with an ICMP port
//! unreachable is *refusing*: its node is up, its announcer is gone. Takeover notices stay unary
//! gRPC calls on the TCP port of the same number, with deadlines and retries; the gRPC `Heartbeat`
//! method is still served for announcers of earlier versions during a rolling upgrade.
//!
//! **Authentication** ([`auth`]): every message, both ways, carries the sender's node name, epoch
//! (random, chosen at start), a seq (grows with every message the process signs for that recipient), the node it is
//! for, and an HMAC-SHA256 with the shared key (`--peer-key-file`) over a canonical encoding of all
//! of that and the message's kind and fields. An **auth failure** (`reason="auth"`) means the sender
//! does not hold our key: a node of another cluster, a stale or mistyped key after a rotation, a
//! node with a key talking to one without (or the other way round), or someone else on the node
//! network. Such a message proves nothing about anyone's liveness and is answered with
//! `UNAUTHENTICATED` and otherwise ignored. Without a key (no `--peer-key-file`) messages carry an
//! empty MAC and only keyless receivers accept them; a warning at start says so.
//!
//! **Replay rule** (`reason="replay"`): an authentic message is accepted once per (sender node,
//! epoch, seq): a seq already accepted, or more than [`auth::REPLAY_WINDOW`] below the highest one
//! accepted from that sender process, is refused (`PERMISSION_DENIED`), as is a message naming our own
//! node as sender or another node as recipient. Otherwise a recording of a dead node's heartbeats,
//! played back, would keep it "alive", and an old takeover notice would make a holder stop again.
//!
//! Everything is judged on the local monotonic clock; the `sent_at` a heartbeat carries is the
//! sender's own clock and only the sender reads it back (from the ack). Heartbeats and acks are dated
//! by their arrival (the kernel's receive timestamp, [`datagram::recv_stamped`]), not by when this
//! process got round to reading them, and a silence sweep whose timer fired late decides nothing:
//! a process that was not scheduled for a while must not count its own stall as its peers' silence
//! (docs/l2-failover.md, "Quorum silence"). Metrics:
//! `ferrolb_announcer_peer_heartbeat_rtt_seconds{peer}`, `ferrolb_announcer_peer_rejected_total{reason}`
//! and `ferrolb_announcer_peers_heard`.

pub mod auth;
pub mod datagram;
mod hub;
mod server;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ring::hmac;

pub use hub::{PeerHub, Rejections};

/// Metric: heartbeat round-trip time (histogram, seconds; label `peer`).
pub const METRIC_RTT: &str = "ferrolb_announcer_peer_heartbeat_rtt_seconds";
/// Metric: peer messages rejected (counter; label `reason`: `auth`, `replay`).
pub const METRIC_REJECTED: &str = "ferrolb_announcer_peer_rejected_total";
/// Metric: peers currently heard (gauge).
pub const METRIC_PEERS_HEARD: &str = "ferrolb_announcer_peers_heard";
/// This node's local health score (0: it trusts its own observations; see
/// [`crate::liveness::LocalHealth`]).
pub const METRIC_LOCAL_HEALTH: &str = "ferrolb_announcer_peer_local_health";

/// The shortest key accepted, in bytes.
pub const MIN_KEY_LEN: usize = 16;

/// The shared key that authenticates peer messages (HMAC-SHA256).
#[derive(Clone)]
pub struct PeerKey(pub(crate) hmac::Key);

impl fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PeerKey(<redacted>)")
    }
}

impl PeerKey {
    /// A key from raw bytes: at least [`MIN_KEY_LEN`] of them.
    pub fn from_bytes(b: &[u8]) -> Result<Self, PeerError> {
        Self::checked(b, "the given key")
    }

    /// A key from a file of raw bytes (a mounted Secret); one trailing newline (`\n` or `\r\n`) is
    /// not part of the key. The errors name the file.
    pub fn from_file(path: &Path) -> Result<Self, PeerError> {
        let bytes =
            std::fs::read(path).map_err(|source| PeerError::KeyFile { path: path.to_path_buf(), source })?;
        let b = bytes.strip_suffix(b"\n").map_or(&bytes[..], |b| b.strip_suffix(b"\r").unwrap_or(b));
        Self::checked(b, &format!("peer key file {}", path.display()))
    }

    fn checked(b: &[u8], origin: &str) -> Result<Self, PeerError> {
        if b.is_empty() {
            return Err(PeerError::KeyEmpty { origin: origin.to_owned() });
        }
        if b.len() < MIN_KEY_LEN {
            return Err(PeerError::KeyTooShort { origin: origin.to_owned(), len: b.len() });
        }
        Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, b)))
    }
}

/// How the peer channel runs.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// This node's name: the sender of our messages, the recipient of theirs.
    pub node: String,
    /// Where to serve the Peer service (port 0: any free port, see [`PeerHub::local_addr`]).
    pub listen: SocketAddr,
    /// How often a heartbeat goes to each peer.
    pub interval: Duration,
    /// How long a peer may stay unheard before [`PeerEvent::Silent`].
    pub silence: Duration,
    /// The shared key; `None`: unauthenticated (a warning is logged at start).
    pub key: Option<PeerKey>,
    /// Deadline of one call (heartbeat or takeover notice attempt), connecting included.
    pub request_timeout: Duration,
}

impl PeerConfig {
    pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);
    pub const DEFAULT_SILENCE: Duration = Duration::from_millis(500);
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_millis(500);

    /// The defaults (100 ms interval, 500 ms silence, 500 ms request timeout), no key.
    pub fn new(node: impl Into<String>, listen: SocketAddr) -> Self {
        Self {
            node: node.into(),
            listen,
            interval: Self::DEFAULT_INTERVAL,
            silence: Self::DEFAULT_SILENCE,
            key: None,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
        }
    }

    fn validate(&self) -> Result<(), PeerError> {
        let invalid = |m: &str| Err(PeerError::Config(m.to_owned()));
        if self.node.is_empty() {
            return invalid("the node name is empty");
        }
        if self.interval.is_zero() {
            return invalid("--peer-interval must be greater than zero");
        }
        if self.silence.is_zero() {
            return invalid("the peer silence timeout must be greater than zero");
        }
        if self.request_timeout.is_zero() {
            return invalid("the peer request timeout must be greater than zero");
        }
        Ok(())
    }
}

/// A takeover notice: `new_holder` now holds the Lease of (`namespace`/`service`, `address`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Takeover {
    pub namespace: String,
    pub service: String,
    pub address: IpAddr,
    pub new_holder: String,
    /// The resourceVersion of the Lease write that made `new_holder` the holder.
    pub lease_resource_version: String,
    /// The resourceVersion that write replaced: the notice applies only while the receiver's view of
    /// the Lease is that version.
    pub replaced_resource_version: String,
}

/// What the peer channel tells the announcer's main loop. Heard/Silent are wake-ups on transitions
/// ([`PeerHub::heard_at`] is the authoritative state); Takeover is a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// First authenticated heartbeat of `node` after silence (or ever).
    Heard { node: String },
    /// No authenticated heartbeat of `node` for [`PeerConfig::silence`], or (a second time) a
    /// majority of the cluster has not heard it for that long ([`PeerHub::quorum_silent_at`]).
    Silent { node: String },
    /// An authenticated takeover notice addressed to us (`new_holder` is another node).
    Takeover(Takeover),
    /// `node`'s peer port started refusing connections: its announcer process is gone (see
    /// [`PeerHub::refused_at`]). Emitted once per refusal streak.
    Refused { node: String },
}

/// Why the peer channel could not start, or a key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("cannot listen for peers on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read peer key file {}: {source}", path.display())]
    KeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin} is empty")]
    KeyEmpty { origin: String },
    #[error("{origin} is too short: {len} bytes, at least {MIN_KEY_LEN} needed")]
    KeyTooShort { origin: String, len: usize },
    #[error("invalid peer configuration: {0}")]
    Config(String),
}

#[cfg(test)]
mod tests;
