//! The BFD adapter: the UDP sockets of single-hop BFD (RFC 5881) around [`crate::bfd`]'s
//! sessions, one task per local address ([`run_bfd`]).
//!
//! - One socket bound to the local address and port 3784 receives for every session from that
//!   address; a packet goes to the session its Your Discriminator names, or, while that is still
//!   zero, the session of its source address.
//! - Each session sends from a socket of its own, bound to a port in 49152–65535 that it keeps
//!   (RFC 5881 §4), with TTL 255; the receiving socket drops packets whose TTL is below 255
//!   (RFC 5881 §5: a single-hop packet arrives with 255, which no remote sender can forge).
//! - Each session's status is published on a watch channel; [`crate::speaker::run_peer`] reads it
//!   and ends the BGP session when BFD goes from Up to Down for any reason but the peer's own
//!   AdminDown (RFC 5882 §3.2).
//! - On shutdown every session goes AdminDown and says so once, so peers do not blame the path.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::bfd::{BfdAction, BfdConfig, BfdSession, BfdState, CONTROL_PORT, ControlPacket};
use crate::speaker::sockopt;

/// One session's status as published to its BGP peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfdStatus {
    /// Our state.
    pub state: BfdState,
    /// Whether the peer last said it is AdminDown (a Down that is no path failure).
    pub remote_admin_down: bool,
}

impl BfdStatus {
    /// The status before any packet.
    pub const INITIAL: BfdStatus = BfdStatus { state: BfdState::Down, remote_admin_down: false };
}

/// One peer that asked for BFD.
#[derive(Debug)]
pub struct BfdPeer {
    /// The peer's address (on a directly connected network).
    pub address: IpAddr,
    /// Timers and multiplier.
    pub config: BfdConfig,
    /// Our discriminator for this session: unique among the sessions of this node.
    pub discriminator: NonZeroU32,
    /// Where the session's status goes.
    pub status: watch::Sender<BfdStatus>,
}

struct Running {
    peer: BfdPeer,
    session: BfdSession,
    tx: UdpSocket,
}

/// A change to the set of sessions [`serve_bfd`] runs.
#[derive(Debug)]
pub enum BfdCommand {
    /// Start a session (a session to the same address is replaced).
    Add(BfdPeer),
    /// End the session to this address: it says AdminDown once, so the peer does not blame the
    /// path, and its status sender is dropped.
    Remove(IpAddr),
}

/// Runs the BFD sessions of `peers` from `local` until `shutdown` turns true (or its sender is
/// dropped).
pub async fn run_bfd(local: IpAddr, peers: Vec<BfdPeer>, shutdown: watch::Receiver<bool>) -> io::Result<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(peers.len().max(1));
    for peer in peers {
        tx.try_send(BfdCommand::Add(peer)).map_err(|_| io::Error::other("BFD command queue full"))?;
    }
    drop(tx);
    serve_bfd(local, rx, shutdown).await
}

/// Runs BFD sessions from `local`, as `commands` add and remove them, until `shutdown` turns
/// true (or its sender is dropped). The receiving socket is bound once, so sessions come and go
/// without disturbing the others; the end of `commands` leaves the running sessions running.
pub async fn serve_bfd(
    local: IpAddr,
    commands: tokio::sync::mpsc::Receiver<BfdCommand>,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let rx = UdpSocket::bind(SocketAddr::new(local, CONTROL_PORT)).await?;
    sockopt::set_min_ttl(&rx, local.is_ipv6(), 255)?;
    let mut commands = Some(commands);
    let mut running: Vec<Running> = Vec::new();
    let mut buf = vec![0u8; 512];
    loop {
        let now = Instant::now();
        for r in &mut running {
            let actions = r.session.poll(now);
            carry_out(r, actions).await;
        }
        let next = running.iter().filter_map(|r| r.session.next_deadline()).min();
        let sleep = async {
            match next {
                Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                None => std::future::pending().await,
            }
        };
        let command = async {
            match commands.as_mut() {
                Some(c) => c.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            command = command => match command {
                Some(BfdCommand::Add(peer)) => {
                    if let Some(old) = take(&mut running, peer.address) {
                        end(old).await;
                    }
                    match start(local, peer).await {
                        Ok(r) => running.push(r),
                        Err(e) => tracing::warn!(%local, error = %e, "BFD session not started"),
                    }
                }
                Some(BfdCommand::Remove(address)) => {
                    if let Some(old) = take(&mut running, address) {
                        end(old).await;
                    }
                }
                None => commands = None,
            },
            received = rx.recv_from(&mut buf) => {
                let Ok((n, from)) = received else { continue };
                let Ok(packet) = ControlPacket::decode(&buf[..n]) else { continue };
                let target = running.iter_mut().find(|r| {
                    if packet.your_discriminator != 0 {
                        r.session.local_discriminator() == packet.your_discriminator
                    } else {
                        r.peer.address == from.ip()
                    }
                });
                if let Some(r) = target
                    && r.peer.address == from.ip()
                {
                    let actions = r.session.on_packet(&packet, Instant::now());
                    carry_out(r, actions).await;
                }
            }
            () = sleep => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow_and_update() {
                    break;
                }
            }
        }
    }
    for r in running {
        end(r).await;
    }
    Ok(())
}

/// A session's sending socket (TTL 255) and its state machine.
async fn start(local: IpAddr, peer: BfdPeer) -> io::Result<Running> {
    let tx = bind_source_port(local, peer.discriminator).await?;
    let s = socket2::SockRef::from(&tx);
    if local.is_ipv6() {
        s.set_unicast_hops_v6(255)?;
    } else {
        s.set_ttl_v4(255)?;
    }
    let session = BfdSession::new(peer.config, peer.discriminator, Instant::now());
    Ok(Running { peer, session, tx })
}

fn take(running: &mut Vec<Running>, address: IpAddr) -> Option<Running> {
    let i = running.iter().position(|r| r.peer.address == address)?;
    Some(running.swap_remove(i))
}

/// Says AdminDown once and drops the session.
async fn end(mut r: Running) {
    let now = Instant::now();
    let mut actions = r.session.admin_down(now);
    actions.extend(r.session.poll(now));
    carry_out(&mut r, actions).await;
}

/// A sending socket on `local` with a port in 49152–65535, starting from one derived from the
/// discriminator so sessions rarely collide.
async fn bind_source_port(local: IpAddr, discriminator: NonZeroU32) -> io::Result<UdpSocket> {
    let start = (discriminator.get() % 16384) as u16;
    let mut last = None;
    for i in 0..64u16 {
        let port = 49152 + (start + i) % 16384;
        match UdpSocket::bind(SocketAddr::new(local, port)).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free BFD source port")))
}

async fn carry_out(r: &mut Running, actions: Vec<BfdAction>) {
    for a in actions {
        match a {
            BfdAction::Transmit(p) => {
                // A lost control packet is what BFD tolerates by design: no retry.
                if let Err(e) = r.tx.send_to(&p.encode(), SocketAddr::new(r.peer.address, CONTROL_PORT)).await
                {
                    tracing::debug!(peer = %r.peer.address, error = %e, "BFD send failed");
                }
            }
            BfdAction::StateChanged { from, to, diag } => {
                tracing::info!(peer = %r.peer.address, ?from, ?to, diag, "BFD state");
            }
        }
    }
    let now = BfdStatus {
        state: r.session.state(),
        remote_admin_down: r.session.remote_state() == BfdState::AdminDown,
    };
    // Only changes wake the BGP session's task.
    r.peer.status.send_if_modified(|s| std::mem::replace(s, now) != now);
}
