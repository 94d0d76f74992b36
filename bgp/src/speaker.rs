//! The tokio adapter: one task per peer ([`run_peer`]) that carries out what [`crate::fsm`] and
//! [`crate::rib`] decide, over a TCP connection it opens itself. It decides nothing: it turns
//! socket results, messages, timer deadlines and route changes into [`Event`]s and the session's
//! [`Action`]s into writes, closes and UPDATEs.
//!
//! - The connection is opened from the configured source address, with the TCP MD5 signature
//!   option (RFC 2385, `TCP_MD5SIG`) when a password is set and the configured TTL (eBGP multihop).
//!   A connect with no answer within the connect-retry time is given up and reported in
//!   [`PeerStatus::last_error`]: Linux drops SYNs whose MD5 signature is wrong or missing without
//!   a reset, so that is all a password mismatch ever shows on our side.
//! - Next hops: the configured ones, else the connection's own local address for its family, so a
//!   plain single-hop IPv4 session needs no next-hop setting.
//! - A planned stop ([`run_peer`]'s `shutdown`) withdraws every route, sends Cease, and returns
//!   once the bytes are written.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use ipnet::IpNet;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

use crate::bfd::BfdState;
use crate::bfd_socket::BfdStatus;
use crate::codec::{Message, frame_len};
use crate::fsm::{Action, Event, Negotiated, PeerConfig, Session, State};
use crate::rib::{AdjRibOut, RouteAttrs, SessionAttrs};

/// The routes to announce: one shared table that every peer task watches.
pub type Routes = Arc<BTreeMap<IpNet, Arc<RouteAttrs>>>;

/// How to reach one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerTransport {
    /// The peer's address and port (179).
    pub address: SocketAddr,
    /// The address to connect from; the kernel chooses when `None`.
    pub source: Option<IpAddr>,
    /// TCP MD5 signature password (at most 80 bytes).
    pub md5_password: Option<String>,
    /// IP TTL / hop limit of our packets (eBGP multihop); the kernel default when `None`.
    pub ttl: Option<u8>,
    /// NEXT_HOP for IPv4 routes; the connection's local address when it is IPv4 and this is unset.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Next hop for IPv6 routes; the connection's local address when it is IPv6 and this is unset.
    pub next_hop_v6: Option<Ipv6Addr>,
}

impl PeerTransport {
    /// A transport to `address` with everything else left to the kernel.
    pub fn new(address: SocketAddr) -> PeerTransport {
        PeerTransport {
            address,
            source: None,
            md5_password: None,
            ttl: None,
            next_hop_v4: None,
            next_hop_v6: None,
        }
    }
}

/// What a peer task reports about its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// Session state.
    pub state: State,
    /// What was negotiated, while Established.
    pub negotiated: Option<Negotiated>,
    /// Routes the peer holds from us.
    pub routes_sent: usize,
    /// Established sessions so far (a flap counter).
    pub established_count: u64,
    /// Why the session last went down or could not connect; cleared when it comes up.
    pub last_error: Option<String>,
}

impl PeerStatus {
    /// The status before the first attempt.
    pub const INITIAL: PeerStatus = PeerStatus {
        state: State::Idle,
        negotiated: None,
        routes_sent: 0,
        established_count: 0,
        last_error: None,
    };
}

/// Why a peer task ended other than by its shutdown.
#[derive(Debug, Error)]
pub enum SpeakerError {
    /// The settings are unusable.
    #[error("peer {peer}: {source}")]
    Config {
        /// The peer address.
        peer: SocketAddr,
        /// What is wrong.
        source: crate::fsm::ConfigError,
    },
    /// The MD5 password is longer than the kernel accepts.
    #[error("peer {0}: MD5 password longer than 80 bytes")]
    Md5TooLong(SocketAddr),
}

/// Runs one peer's session until `shutdown` turns true, then withdraws every route, sends Cease
/// with the shutdown communication "ferrolb shutting down", and returns. With `bfd`, the BFD
/// session of this peer ([`crate::bfd_socket::run_bfd`]) going from Up to Down ends the BGP
/// session at once, unless the peer itself went AdminDown (RFC 5882 §3.2).
pub async fn run_peer(
    config: PeerConfig,
    transport: PeerTransport,
    mut routes: watch::Receiver<Routes>,
    mut shutdown: watch::Receiver<bool>,
    status: watch::Sender<PeerStatus>,
    mut bfd: Option<watch::Receiver<BfdStatus>>,
) -> Result<(), SpeakerError> {
    let peer = transport.address;
    config.validate().map_err(|source| SpeakerError::Config { peer, source })?;
    if transport.md5_password.as_ref().is_some_and(|p| p.len() > sockopt::MAX_MD5_KEY_LEN) {
        return Err(SpeakerError::Md5TooLong(peer));
    }
    let mut session = Session::new(config);
    let mut rib = AdjRibOut::new();
    let mut peer_task = PeerTask { transport, stream: None, attrs: None, established_count: 0 };
    rib.replace_all(routes.borrow_and_update().iter().map(|(p, a)| (*p, Arc::clone(a))));
    let mut actions = session.handle(Instant::now(), Event::Start);
    let mut connecting: Option<tokio::task::JoinHandle<io::Result<TcpStream>>> = None;
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 8192];
    let mut bfd_up = false;
    let mut last_error: Option<String> = None;
    loop {
        if *shutdown.borrow_and_update() {
            break;
        }
        // Carry out the actions, which may produce more events (a failed write closes).
        while !actions.is_empty() {
            let mut events = Vec::new();
            for action in std::mem::take(&mut actions) {
                match action {
                    Action::Connect => {
                        let t = peer_task.transport.clone();
                        connecting = Some(tokio::spawn(async move { connect(&t).await }));
                    }
                    Action::Close => {
                        if let Some(c) = connecting.take() {
                            // Only the connect-retry timer closes a pending connect (a planned
                            // stop leaves this loop first). Linux drops a SYN whose TCP MD5
                            // signature is wrong, missing or unexpected without a word, so a
                            // password mismatch looks exactly like this, and this is the only
                            // trace of it the status can carry.
                            c.abort();
                            last_error = Some(format!(
                                "connect: no answer within {:?} (peer down or unreachable, or SYNs dropped: \
                                 a TCP MD5 password mismatch does that)",
                                session.config().connect_retry
                            ));
                        }
                        peer_task.stream = None;
                        peer_task.attrs = None;
                        buf.clear();
                    }
                    Action::Send(msg) => {
                        if let Err(e) = peer_task.send(&[msg]).await {
                            tracing::info!(%peer, error = %e, "write failed");
                            events.push(Event::TcpClosed);
                        }
                    }
                    Action::SessionUp(negotiated) => {
                        tracing::info!(%peer, "session established");
                        peer_task.established_count += 1;
                        last_error = None;
                        peer_task.attrs = Some(peer_task.session_attrs(session.config(), &negotiated));
                        rib.reset();
                        if let Err(e) = peer_task.send_updates(&mut rib).await {
                            tracing::info!(%peer, error = %e, "write failed");
                            events.push(Event::TcpClosed);
                        }
                    }
                    Action::SessionDown(reason) => {
                        tracing::info!(%peer, ?reason, "session down");
                        last_error = Some(format!("session down: {reason:?}"));
                        rib.reset();
                    }
                    Action::RouteRefresh(_) => {
                        rib.reset();
                        if let Err(e) = peer_task.send_updates(&mut rib).await {
                            tracing::info!(%peer, error = %e, "write failed");
                            events.push(Event::TcpClosed);
                        }
                    }
                    // Deadlines are read back from the session below.
                    Action::StartTimer(..) | Action::StopTimer(_) => {}
                }
            }
            for e in events {
                actions.extend(session.handle(Instant::now(), e));
            }
        }
        status.send_replace(PeerStatus {
            state: session.state(),
            negotiated: session.negotiated().cloned().filter(|_| session.state() == State::Established),
            routes_sent: rib.sent().len(),
            established_count: peer_task.established_count,
            last_error: last_error.clone(),
        });

        let deadline = session.next_deadline();
        let sleep = async {
            match deadline {
                Some((_, d)) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                None => std::future::pending().await,
            }
        };
        let connect_result = async {
            match connecting.as_mut() {
                Some(c) => c.await,
                None => std::future::pending().await,
            }
        };
        let read = async {
            match peer_task.stream.as_mut() {
                Some(s) => s.read(&mut chunk).await,
                None => std::future::pending().await,
            }
        };
        let bfd_change = async {
            match bfd.as_mut() {
                Some(rx) => match rx.changed().await {
                    Ok(()) => Some(*rx.borrow_and_update()),
                    Err(_) => None,
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            change = bfd_change => {
                match change {
                    Some(s) => {
                        if bfd_up && s.state != BfdState::Up && !s.remote_admin_down {
                            tracing::info!(%peer, "BFD down: ending the BGP session");
                            actions = session.handle(Instant::now(), Event::BfdDown);
                        }
                        bfd_up = s.state == BfdState::Up;
                    }
                    // The BFD task ended: BGP goes on by its own timers.
                    None => bfd = None,
                }
            }
            result = connect_result => {
                connecting = None;
                let event = match result {
                    Ok(Ok(stream)) => {
                        peer_task.stream = Some(stream);
                        Event::TcpConnected
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "connect failed");
                        last_error = Some(format!("connect: {e}"));
                        Event::TcpFailed
                    }
                    Err(_) => Event::TcpFailed,
                };
                actions = session.handle(Instant::now(), event);
            }
            n = read => {
                match n {
                    Ok(0) | Err(_) => {
                        // Before Established nothing else would say why the attempt ended: a
                        // router that refuses us for a while (BIRD's error wait time) closes
                        // the connection right after accepting it.
                        if session.state() != State::Established {
                            let why = match &n {
                                Err(e) => format!("connection failed in {:?}: {e}", session.state()),
                                Ok(_) => format!("the peer closed the connection in {:?}", session.state()),
                            };
                            tracing::info!(%peer, "{why}");
                            last_error = Some(why);
                        }
                        actions = session.handle(Instant::now(), Event::TcpClosed);
                    }
                    Ok(n) => {
                        buf.extend_from_slice(&chunk[..n]);
                        actions = drain_messages(&mut session, &mut buf);
                    }
                }
            }
            () = sleep => {
                if let Some((timer, _)) = deadline {
                    actions = session.handle(Instant::now(), Event::TimerExpired(timer));
                }
            }
            changed = routes.changed() => {
                if changed.is_err() {
                    // The route owner is gone: treat it as a shutdown.
                    break;
                }
                rib.replace_all(routes.borrow_and_update().iter().map(|(p, a)| (*p, Arc::clone(a))));
                if session.state() == State::Established
                    && let Err(e) = peer_task.send_updates(&mut rib).await
                {
                    tracing::info!(%peer, error = %e, "write failed");
                    actions = session.handle(Instant::now(), Event::TcpClosed);
                }
            }
            changed = shutdown.changed() => {
                // A dropped sender also means stop: nobody can ask any more.
                if changed.is_err() || *shutdown.borrow_and_update() {
                    break;
                }
            }
        }
    }

    // Planned shutdown: withdraw, then Cease, then close.
    if session.state() == State::Established {
        rib.withdraw_all();
        let _ = peer_task.send_updates(&mut rib).await;
    }
    for action in session.handle(Instant::now(), Event::Stop("ferrolb shutting down".into())) {
        if let Action::Send(msg) = action {
            let _ = peer_task.send(&[msg]).await;
        }
    }
    if let Some(mut s) = peer_task.stream.take() {
        let _ = s.shutdown().await;
    }
    status.send_replace(PeerStatus {
        state: session.state(),
        negotiated: None,
        routes_sent: 0,
        established_count: peer_task.established_count,
        last_error,
    });
    Ok(())
}

/// The connection side of a peer task.
struct PeerTask {
    transport: PeerTransport,
    stream: Option<TcpStream>,
    attrs: Option<SessionAttrs>,
    established_count: u64,
}

impl PeerTask {
    /// Encodes and writes `messages` in one write.
    async fn send(&mut self, messages: &[Message]) -> io::Result<()> {
        let Some(stream) = self.stream.as_mut() else { return Ok(()) };
        let mut out = Vec::new();
        for m in messages {
            m.encode_into(&mut out).map_err(io::Error::other)?;
        }
        stream.write_all(&out).await
    }

    /// Sends what the Adj-RIB-Out has pending.
    async fn send_updates(&mut self, rib: &mut AdjRibOut) -> io::Result<()> {
        let Some(attrs) = self.attrs.as_ref() else { return Ok(()) };
        let updates: Vec<Message> = rib.take_updates(attrs).into_iter().map(Message::Update).collect();
        if updates.is_empty() {
            return Ok(());
        }
        self.send(&updates).await
    }

    fn session_attrs(&self, config: &PeerConfig, negotiated: &Negotiated) -> SessionAttrs {
        let local = self.stream.as_ref().and_then(|s| s.local_addr().ok()).map(|a| a.ip());
        SessionAttrs {
            local_as: config.local_as,
            ebgp: config.is_ebgp(),
            families: negotiated.families.clone(),
            next_hop_v4: self.transport.next_hop_v4.or(match local {
                Some(IpAddr::V4(a)) => Some(a),
                _ => None,
            }),
            next_hop_v6: self.transport.next_hop_v6.or(match local {
                Some(IpAddr::V6(a)) if !a.is_unicast_link_local() => Some(a),
                _ => None,
            }),
            link_local_v6: None,
        }
    }
}

/// Decodes every whole message in `buf` into events for the session.
fn drain_messages(session: &mut Session, buf: &mut Vec<u8>) -> Vec<Action> {
    let mut actions = Vec::new();
    loop {
        let event = match frame_len(buf) {
            Ok(None) => break,
            Ok(Some(len)) => {
                let event = match Message::decode(&buf[..len]) {
                    Ok(m) => Event::Received(m),
                    Err(e) => Event::Malformed(e),
                };
                buf.drain(..len);
                event
            }
            Err(e) => {
                // The stream is out of step: nothing after this can be framed.
                buf.clear();
                Event::Malformed(e)
            }
        };
        actions.extend(session.handle(Instant::now(), event));
        if !matches!(session.state(), State::OpenSent | State::OpenConfirm | State::Established) {
            // The session closed the connection: the rest of the bytes are for nobody.
            buf.clear();
            break;
        }
    }
    actions
}

async fn connect(t: &PeerTransport) -> io::Result<TcpStream> {
    let socket = if t.address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(source) = t.source {
        socket.bind(SocketAddr::new(source, 0))?;
    }
    if let Some(password) = &t.md5_password {
        sockopt::set_md5(&socket, t.address.ip(), password.as_bytes())?;
    }
    if let Some(ttl) = t.ttl {
        let s = socket2::SockRef::from(&socket);
        if t.address.is_ipv4() {
            s.set_ttl_v4(u32::from(ttl))?;
        } else {
            s.set_unicast_hops_v6(u32::from(ttl))?;
        }
    }
    socket.set_nodelay(true)?;
    socket.connect(t.address).await
}

/// Socket options neither tokio nor socket2 offers: `TCP_MD5SIG` (RFC 2385) and the minimum
/// TTL of received packets (GTSM, RFC 5082, which single-hop BFD relies on).
pub(crate) mod sockopt {
    #![allow(unsafe_code)]

    use std::io;
    use std::net::IpAddr;
    use std::os::fd::AsRawFd;

    /// The kernel's `TCP_MD5SIG_MAXKEYLEN`.
    pub const MAX_MD5_KEY_LEN: usize = 80;

    /// `struct tcp_md5sig` of `linux/tcp.h` (libc does not define it). Only the kernel reads
    /// the fields left at zero (no prefix or interface scoping).
    #[repr(C)]
    #[allow(dead_code)]
    struct TcpMd5Sig {
        addr: libc::sockaddr_storage,
        flags: u8,
        prefix_len: u8,
        key_len: u16,
        ifindex: libc::c_int,
        key: [u8; MAX_MD5_KEY_LEN],
    }

    /// Sets the MD5 key for segments to and from `peer` on `socket`.
    pub fn set_md5(socket: &impl AsRawFd, peer: IpAddr, key: &[u8]) -> io::Result<()> {
        if key.len() > MAX_MD5_KEY_LEN {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "MD5 key longer than 80 bytes"));
        }
        // SAFETY: all-zero bytes are a valid value of this plain C struct.
        let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
        match peer {
            IpAddr::V4(a) => {
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                let sin = unsafe { &mut *(&raw mut sig.addr).cast::<libc::sockaddr_in>() };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_addr = libc::in_addr { s_addr: u32::from_ne_bytes(a.octets()) };
            }
            IpAddr::V6(a) => {
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
                let sin6 = unsafe { &mut *(&raw mut sig.addr).cast::<libc::sockaddr_in6>() };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_addr = libc::in6_addr { s6_addr: a.octets() };
            }
        }
        sig.key_len = key.len() as u16;
        sig.key[..key.len()].copy_from_slice(key);
        set(socket, libc::IPPROTO_TCP, libc::TCP_MD5SIG, &sig)
    }

    /// Drops received packets whose TTL (hop limit) is below `min`.
    pub fn set_min_ttl(socket: &impl AsRawFd, ipv6: bool, min: u8) -> io::Result<()> {
        let min = libc::c_int::from(min);
        if ipv6 {
            set(socket, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, &min)
        } else {
            set(socket, libc::IPPROTO_IP, libc::IP_MINTTL, &min)
        }
    }

    fn set<T>(socket: &impl AsRawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
        // SAFETY: the pointer and length describe `value`, which outlives the call.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                level,
                name,
                (value as *const T).cast::<libc::c_void>(),
                std::mem::size_of::<T>() as libc::socklen_t,
            )
        };
        if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    }
}

#[cfg(test)]
mod tests;
