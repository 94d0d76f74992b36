//! [`PeerHub`]: the peer channel's state, its per-peer heartbeat senders, the silence ticker and
//! takeover notice delivery. The receiving side (the gRPC service) is in `server.rs`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ferrolb_proto::v1;
use ferrolb_proto::v1::peer_client::PeerClient;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

use super::auth::{self, Reject, ReplayGuard};
use super::datagram;
use super::server::PeerService;
use super::{
    METRIC_LOCAL_HEALTH, METRIC_PEERS_HEARD, METRIC_REJECTED, METRIC_RTT, PeerConfig, PeerError, PeerEvent,
    Takeover,
};

/// How many events may wait for the main loop before Heard/Silent wake-ups are dropped (and
/// takeover notices answered `RESOURCE_EXHAUSTED`, so their senders retry).
const EVENT_BUFFER: usize = 1024;
/// At most one "queue full" warning per this long (with the number dropped since the last one).
const DROP_WARNING_EVERY: Duration = Duration::from_secs(1);

/// How long delivering one takeover notice may take, retries included.
const TAKEOVER_DEADLINE: Duration = Duration::from_secs(1);
/// Pauses between takeover notice attempts.
const TAKEOVER_BACKOFF: [Duration; 3] =
    [Duration::from_millis(100), Duration::from_millis(200), Duration::from_millis(300)];

/// At most one receiver-side rejection warning per this long (each is counted in the metric).
const REJECT_WARN_EVERY: Duration = Duration::from_secs(10);

/// How many messages were rejected since start, by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rejections {
    pub auth: u64,
    pub replay: u64,
}

/// The peer channel: serves `ferrolb.v1.Peer`, heartbeats the configured peers, tracks who is heard
/// and which of our heartbeats were acknowledged. Cheap to clone; everything stops when the
/// shutdown token given to [`PeerHub::start`] is cancelled.
#[derive(Clone)]
pub struct PeerHub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PeerHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerHub")
            .field("node", &self.inner.cfg.node)
            .field("epoch", &self.inner.epoch)
            .field("local_addr", &self.inner.local_addr)
            .finish_non_exhaustive()
    }
}

pub(super) struct Inner {
    pub(super) cfg: PeerConfig,
    /// This process's epoch: random, never 0.
    pub(super) epoch: u64,
    /// The origin of the `sent_at` clock.
    start: Instant,
    /// Per recipient, the last seq signed for it (the next message to it gets one more).
    seqs: Mutex<HashMap<String, u64>>,
    local_addr: SocketAddr,
    shutdown: CancellationToken,
    runtime: tokio::runtime::Handle,
    events: mpsc::Sender<PeerEvent>,
    /// Events dropped on a full queue since the last warning, and when that warning was: under a
    /// storm a warning per drop (thousands a second at 100 nodes) was itself a large part of the
    /// load that kept the queue full.
    dropped: Mutex<(u64, Option<Instant>)>,
    /// Woken when whom we send heartbeats to may have changed (the ring, or a broadcast starting):
    /// the sender tasks of peers we do not send to sleep on it instead of ticking.
    sending_changed: tokio::sync::Notify,
    /// One guard for everything received: requests and acks.
    replay: Mutex<ReplayGuard>,
    state: Mutex<State>,
    peers: Mutex<BTreeMap<String, PeerLink>>,
    rejected_auth: AtomicU64,
    rejected_replay: AtomicU64,
    last_reject_warning: Mutex<Option<Instant>>,
}

#[derive(Debug, Default)]
struct State {
    heard: HashMap<String, HeardState>,
    rtt: HashMap<String, Duration>,
    /// Per peer: the local send time of the latest heartbeat it acknowledged.
    acked: HashMap<String, Instant>,
    /// Per peer: whom it reported not hearing in its latest heartbeat, and since when (local time,
    /// receipt minus the silence it reported: never earlier than the truth).
    reports: HashMap<String, SilenceReport>,
    /// Peers a majority has not heard for the silence timeout (reported once per streak).
    quorum_silent: std::collections::HashSet<String>,
    /// Who watches whom ([`crate::liveness::monitors`]), from the member list of the last
    /// [`PeerHub::set_peers`].
    ring: Ring,
    /// Per member we watch: since when (its heartbeats are expected from then on, so its silence
    /// counts from then: while announcers join, the ring changes and a new monitor has not heard
    /// its new member yet; reporting that as a silence made every node broadcast at once).
    watched_since: HashMap<String, Instant>,
    /// Until when our heartbeats go to every peer, not only our monitors: while a majority of a
    /// silent node's monitors (us among them) reports it, and a few intervals after, so that every
    /// node can count the reports ([`crate::liveness::dissemination`]).
    broadcast_until: Option<Instant>,
    /// Per peer that is not our monitor: until when our heartbeats also go to it, because it
    /// monitors a node we report silent (while fewer than a majority of that node's monitors do):
    /// it counts our report with its own, and the majority, if there is one, forms among them.
    extra_until: HashMap<String, Instant>,
    /// Whether the last silence sweep fired late (this process was not scheduled for a while):
    /// until the next sweep on time, our own silences count for nothing (see [`Inner::sweep`]).
    sweep_late: bool,
    /// How far we trust our own observations ([`crate::liveness::LocalHealth`]): our silences of
    /// others are dated `score × silence` later.
    health: crate::liveness::LocalHealth,
    /// Per peer: since when its peer port refuses our connections (cleared when it is heard or
    /// acknowledges a heartbeat).
    refused: HashMap<String, Instant>,
    /// Per peer: what it last reported about its API access, and since when it has reported that
    /// value without interruption.
    api: HashMap<String, (bool, Instant)>,
    /// Whether we can reach the API server (sent in our heartbeats).
    api_ok: bool,
    /// Since when a majority of our monitors (us counted) has acknowledged our heartbeats without
    /// a break of the silence timeout: only from then on do our own silences count. A node cut off
    /// from everyone hears nobody, and must not, when the network returns, report every peer silent
    /// since before the cut: after an outage of the whole segment the first node back would find
    /// the holder "silent" for the outage's length and take over from a holder that never stopped.
    observing_since: Option<Instant>,
}

/// The monitor sets of the current members.
#[derive(Debug, Default)]
struct Ring {
    /// Every member, this node included, sorted.
    members: Vec<String>,
    /// Each member's monitors.
    monitors: HashMap<String, Vec<String>>,
    /// The members whose monitor this node is (whose heartbeats it expects).
    watched: Vec<String>,
}

impl Ring {
    fn new(this_node: &str, peers: impl Iterator<Item = String>) -> Self {
        let mut members: Vec<String> = peers.chain(std::iter::once(this_node.to_owned())).collect();
        members.sort_unstable();
        members.dedup();
        let monitors: HashMap<String, Vec<String>> =
            members.iter().map(|m| (m.clone(), crate::liveness::monitors(&members, m))).collect();
        let watched =
            members.iter().filter(|m| monitors[*m].iter().any(|x| x == this_node)).cloned().collect();
        Self { members, monitors, watched }
    }

    fn monitors_of(&self, node: &str) -> &[String] {
        self.monitors.get(node).map_or(&[], Vec::as_slice)
    }
}

/// One peer's latest report of whom it does not hear.
#[derive(Debug, Default)]
struct SilenceReport {
    /// The (epoch, seq) of the heartbeat that carried it: an older heartbeat arriving late does not
    /// replace a newer report.
    from: (u64, u64),
    silent_since: HashMap<String, Instant>,
}

#[derive(Debug, Clone, Copy)]
struct HeardState {
    at: Instant,
    heard: bool,
}

/// One configured peer: its address, its sender task and, once a takeover notice went to it, its
/// gRPC channel (made on first use and kept: a channel is a task and buffers, and in a cluster of a
/// hundred most peers are never sent a notice).
struct PeerLink {
    addr: SocketAddr,
    client: Option<PeerClient<Channel>>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// The gRPC channel to a peer's port (connected on its first call).
fn peer_client(addr: SocketAddr, timeout: Duration) -> Result<PeerClient<Channel>, tonic::transport::Error> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(timeout)
        .timeout(timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .connect_lazy();
    Ok(PeerClient::new(channel))
}

/// Why a heartbeat or notice got no acceptable answer; `kind` is stable (log de-duplication).
#[derive(Debug)]
struct SendFailure {
    kind: &'static str,
    detail: String,
}

impl SendFailure {
    fn new(kind: &'static str, detail: impl Into<String>) -> Self {
        Self { kind, detail: detail.into() }
    }
}

/// What [`Inner::local_health`] is told.
#[derive(Debug, Clone, Copy)]
enum HealthSign {
    /// A timer of ours fired late: this process was not scheduled.
    LateTimer,
    /// A majority of our monitors stopped acknowledging our heartbeats.
    Unacknowledged,
    /// A peer reported not hearing us.
    ReportedUnheard,
    /// A sweep on time while in touch with a majority of our monitors.
    Quiet,
}

impl HealthSign {
    fn label(self) -> &'static str {
        match self {
            HealthSign::LateTimer => "timer late",
            HealthSign::Unacknowledged => "heartbeats unacknowledged",
            HealthSign::ReportedUnheard => "reported unheard",
            HealthSign::Quiet => "quiet",
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A random epoch, never 0.
fn random_epoch() -> u64 {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut b = [0u8; 8];
    if SystemRandom::new().fill(&mut b).is_err() {
        // No OS randomness: fall back to the clock (still differs across restarts).
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        b = ((t.as_nanos() as u64) ^ u64::from(std::process::id()).rotate_left(32)).to_be_bytes();
    }
    u64::from_be_bytes(b).max(1)
}

impl PeerHub {
    /// Binds `cfg.listen` (port 0 allowed), serves the Peer service, returns the hub and a receiver of
    /// events. Stops when `shutdown` is cancelled.
    pub async fn start(
        cfg: PeerConfig,
        shutdown: CancellationToken,
    ) -> Result<(PeerHub, mpsc::Receiver<PeerEvent>), PeerError> {
        cfg.validate()?;
        let addr = cfg.listen;
        let bind_error = |source| PeerError::Bind { addr, source };
        let (listener, udp) = bind_both(addr).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        if cfg.key.is_none() {
            tracing::warn!(
                "no --peer-key-file: the peer channel is unauthenticated; anyone on the node network can \
                 pose as a peer (keep alive a dead node, make a holder stop)"
            );
        }
        let (events, rx) = mpsc::channel(EVENT_BUFFER);
        let inner = Arc::new(Inner {
            epoch: random_epoch(),
            start: Instant::now(),
            seqs: Mutex::new(HashMap::new()),
            local_addr,
            shutdown: shutdown.clone(),
            runtime: tokio::runtime::Handle::current(),
            events,
            dropped: Mutex::new((0, None)),
            sending_changed: tokio::sync::Notify::new(),
            replay: Mutex::new(ReplayGuard::new()),
            state: Mutex::new(State::default()),
            peers: Mutex::new(BTreeMap::new()),
            rejected_auth: AtomicU64::new(0),
            rejected_replay: AtomicU64::new(0),
            last_reject_warning: Mutex::new(None),
            cfg,
        });
        tracing::info!(node = %inner.cfg.node, epoch = inner.epoch, addr = %local_addr, "peer channel listening");
        metrics::gauge!(METRIC_PEERS_HEARD).set(0.0);

        let incoming = TcpListenerStream::new(listener).map(|s| {
            let s = s?;
            // Heartbeats are tiny and latency is what they measure.
            s.set_nodelay(true)?;
            Ok::<_, std::io::Error>(s)
        });
        let server = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(10)))
            .add_service(PeerService::new(inner.clone()).into_server())
            .serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned());
        tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!(addr = %local_addr, error = %e, "peer channel server failed");
            }
        });
        tokio::spawn(silence_ticker(inner.clone()));
        tokio::spawn(datagram_server(inner.clone(), udp));
        Ok((PeerHub { inner }, rx))
    }

    /// Where the Peer service listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// This process's epoch.
    pub fn epoch(&self) -> u64 {
        self.inner.epoch
    }

    /// The peers to heartbeat (node name -> address). Replaces the set; starts and stops per-peer
    /// sender tasks; a changed address reconnects. Our own node name is ignored.
    pub fn set_peers(&self, peers: BTreeMap<String, SocketAddr>) {
        let inner = &self.inner;
        let _rt = inner.runtime.enter();
        let mut links = lock(&inner.peers);
        links.retain(|node, link| {
            let keep = peers.get(node) == Some(&link.addr);
            if !keep {
                link.cancel.cancel();
                // Gone at once, even in the middle of a call.
                link.task.abort();
                tracing::info!(peer = %node, addr = %link.addr, "stopped heartbeating peer");
            }
            keep
        });
        {
            // Called every decision round: the ring is rebuilt only when the members changed.
            let mut st = lock(&inner.state);
            let mut members: Vec<&str> =
                peers.keys().map(String::as_str).chain(std::iter::once(inner.cfg.node.as_str())).collect();
            members.sort_unstable();
            members.dedup();
            if !st.ring.members.iter().map(String::as_str).eq(members.iter().copied()) {
                st.ring = Ring::new(&inner.cfg.node, peers.keys().filter(|p| **p != inner.cfg.node).cloned());
                let now = Instant::now();
                let State { ring, watched_since, .. } = &mut *st;
                watched_since.retain(|n, _| ring.watched.contains(n));
                for n in &ring.watched {
                    watched_since.entry(n.clone()).or_insert(now);
                }
                drop(st);
                inner.sending_changed.notify_waiters();
            }
        }
        for (node, addr) in peers {
            if node == inner.cfg.node || links.contains_key(&node) {
                continue;
            }
            let cancel = inner.shutdown.child_token();
            let task = inner.runtime.spawn(heartbeat_loop(inner.clone(), node.clone(), addr, cancel.clone()));
            tracing::info!(peer = %node, %addr, "heartbeating peer");
            links.insert(node, PeerLink { addr, client: None, cancel, task });
        }
    }

    /// This node's local health score (0: it trusts its own observations of its peers; see
    /// [`crate::liveness::LocalHealth`]).
    pub fn local_health(&self) -> u32 {
        lock(&self.inner.state).health.score()
    }

    /// Local time at which an authenticated heartbeat from `node` was last received.
    pub fn heard_at(&self, node: &str) -> Option<Instant> {
        lock(&self.inner.state).heard.get(node).map(|h| h.at)
    }

    /// Per monitor of this node, the local send time of the latest own heartbeat it acknowledged
    /// (authenticated ack).
    pub fn acked_sends(&self) -> Vec<Instant> {
        let st = lock(&self.inner.state);
        st.ring.monitors_of(&self.inner.cfg.node).iter().filter_map(|p| st.acked.get(p).copied()).collect()
    }

    /// Until when a majority of this node's monitors (itself counted) vouches for it: see
    /// [`crate::liveness::quorum_acked_until`]. `None` without peers.
    pub fn acked_until(&self, ack_timeout: Duration) -> Option<Instant> {
        let monitors = lock(&self.inner.state).ring.monitors_of(&self.inner.cfg.node).len();
        (monitors > 0)
            .then(|| crate::liveness::quorum_acked_until(self.acked_sends(), monitors + 1, ack_timeout))
            .flatten()
    }

    /// Local send time of the latest own heartbeat that any peer acknowledged.
    pub fn last_acked_send(&self) -> Option<Instant> {
        lock(&self.inner.state).acked.values().max().copied()
    }

    /// How many announcers the cluster has: this one and every configured peer.
    pub fn cluster_size(&self) -> usize {
        lock(&self.inner.peers).len() + 1
    }

    /// Local time from which a majority of `node`'s monitors has not heard it for the silence
    /// timeout ([`crate::liveness::quorum_silent_at`]), from this node's own silence (when it is one
    /// of them) and the reports of the others that it hears. `None`: no such majority (yet).
    pub fn quorum_silent_at(&self, node: &str, now: Instant) -> Option<Instant> {
        self.inner.quorum_silent_at(node, now)
    }

    /// Sends a takeover notice to `node`: fire and forget, a few attempts within about a second; a
    /// failure is logged (the old holder still learns from the Lease or its heartbeat Lease expiry).
    pub fn notify_takeover(&self, node: &str, notice: Takeover) {
        let client = {
            let mut links = lock(&self.inner.peers);
            let Some(link) = links.get_mut(node) else {
                tracing::warn!(peer = %node, address = %notice.address, "takeover notice not sent: no address known for the peer");
                return;
            };
            if link.client.is_none() {
                let _rt = self.inner.runtime.enter();
                match peer_client(link.addr, self.inner.cfg.request_timeout) {
                    Ok(c) => link.client = Some(c),
                    Err(e) => {
                        tracing::error!(peer = %node, addr = %link.addr, error = %e, "takeover notice not sent: invalid peer address");
                        return;
                    }
                }
            }
            link.client.clone()
        };
        let Some(client) = client else { return };
        let inner = self.inner.clone();
        let node = node.to_owned();
        self.inner.runtime.spawn(async move { inner.deliver_takeover(node, notice, client).await });
    }

    /// Local time since which `node`'s peer port refuses our connections (a TCP reset: its kernel
    /// answers and nothing listens, so its announcer process is gone), continuously since then and
    /// without `node` having been heard or having acknowledged a heartbeat since. `None`: not refusing.
    /// Tells the peers, from the next heartbeat on, whether this node reaches the API server.
    pub fn set_api_ok(&self, ok: bool) {
        lock(&self.inner.state).api_ok = ok;
    }

    /// What `node` last reported about its API access, and since when (local time of the first
    /// heartbeat reporting it) without interruption.
    pub fn peer_api(&self, node: &str) -> Option<(bool, Instant)> {
        lock(&self.inner.state).api.get(node).copied()
    }

    pub fn refused_at(&self, node: &str) -> Option<Instant> {
        lock(&self.inner.state).refused.get(node).copied()
    }

    /// Last measured heartbeat round-trip time to `node`.
    pub fn rtt(&self, node: &str) -> Option<Duration> {
        lock(&self.inner.state).rtt.get(node).copied()
    }

    /// Messages rejected since start (also in `ferrolb_announcer_peer_rejected_total`).
    pub fn rejections(&self) -> Rejections {
        Rejections {
            auth: self.inner.rejected_auth.load(Ordering::Relaxed),
            replay: self.inner.rejected_replay.load(Ordering::Relaxed),
        }
    }

    /// Whether the sender task of `node` is running (tests).
    #[cfg(test)]
    pub(super) fn sender_running(&self, node: &str) -> bool {
        lock(&self.inner.peers).get(node).is_some_and(|l| !l.task.is_finished())
    }

    /// Whether `reporter`'s latest heartbeat to us listed `node` as silent (tests).
    #[cfg(test)]
    pub(super) fn reported_silent(&self, reporter: &str, node: &str) -> bool {
        lock(&self.inner.state).reports.get(reporter).is_some_and(|r| r.silent_since.contains_key(node))
    }

    #[cfg(test)]
    pub(super) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }
}

impl Inner {
    /// The next seq (from 1 on).
    ///
    /// One counter per recipient: a receiver judges replays by the seqs of the messages addressed to
    /// it (the recipient is signed), and those then come densely, a few per interval, so the replay
    /// window covers seconds of reordering. With one counter for everything, a node broadcasting to a
    /// hundred peers spent the window within an interval, and an ack delayed by a busy scheduler was
    /// refused as a replay, which made the peer miss acks and broadcast silences in turn.
    pub(super) fn next_seq(&self, to: &str) -> u64 {
        let mut seqs = lock(&self.seqs);
        let seq = seqs.entry(to.to_owned()).or_insert(0);
        *seq += 1;
        *seq
    }

    fn key(&self) -> Option<&super::PeerKey> {
        self.cfg.key.as_ref()
    }

    /// Runs the checks of [`auth::check_incoming`]; counts and logs a rejection.
    pub(super) fn check<M: auth::Signed>(&self, m: &M) -> Result<(), Reject> {
        let r = auth::check_incoming(self.key(), &self.cfg.node, &mut lock(&self.replay), m);
        if let Err(reject) = r {
            self.count_rejection(reject, m.header().node);
        }
        r
    }

    /// A datagram that is no peer message at all: counted as an authentication failure (it proves
    /// nothing), logged at debug.
    fn count_malformed(&self, from: &str, e: &datagram::DecodeError) {
        self.rejected_auth.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(METRIC_REJECTED, "reason" => "auth").increment(1);
        tracing::debug!(%from, error = %e, "malformed peer datagram");
    }

    fn count_rejection(&self, reject: Reject, from: &str) {
        match reject {
            Reject::Auth(_) => &self.rejected_auth,
            Reject::Replay(_) => &self.rejected_replay,
        }
        .fetch_add(1, Ordering::Relaxed);
        metrics::counter!(METRIC_REJECTED, "reason" => reject.reason()).increment(1);
        let now = Instant::now();
        let mut last = lock(&self.last_reject_warning);
        if last.is_none_or(|t| now.duration_since(t) >= REJECT_WARN_EVERY) {
            *last = Some(now);
            tracing::warn!(claimed_sender = %from, reason = reject.reason(), detail = reject.detail(),
                "rejected a peer message (further rejections counted in {METRIC_REJECTED} for a while)");
        } else {
            tracing::debug!(claimed_sender = %from, reason = reject.reason(), detail = reject.detail(), "rejected a peer message");
        }
    }

    /// See [`PeerHub::quorum_silent_at`].
    fn quorum_silent_at(&self, node: &str, now: Instant) -> Option<Instant> {
        let st = lock(&self.state);
        let monitors = st.ring.monitors_of(node);
        let silent_since = monitors.iter().filter_map(|m| {
            if *m == self.cfg.node {
                self.own_silence_since(&st, node)
            } else if self.fresh(&st, m, now) {
                st.reports.get(m).and_then(|r| r.silent_since.get(node).copied())
            } else {
                None
            }
        });
        crate::liveness::quorum_silent_at(silent_since, monitors.len() + 1, self.cfg.silence)
    }

    /// Whether `reporter`'s reports count at `now`: we heard it within the silence timeout.
    fn fresh(&self, st: &State, reporter: &str, now: Instant) -> bool {
        st.heard
            .get(reporter)
            .is_some_and(|h| h.heard && now.saturating_duration_since(h.at) < self.cfg.silence)
    }

    /// How many of `node`'s monitors report it silent at `now`: us (when we report it) and every
    /// other monitor whose fresh report lists it.
    fn reporting_monitors(&self, st: &State, node: &str, now: Instant, we_report: bool) -> usize {
        let others = st
            .ring
            .monitors_of(node)
            .iter()
            .filter(|m| **m != self.cfg.node && self.fresh(st, m, now))
            .filter(|m| st.reports.get(*m).is_some_and(|r| r.silent_since.contains_key(node)))
            .count();
        others + usize::from(we_report)
    }

    /// Whom we report not hearing at `now`: every member we monitor that we have not heard for two
    /// heartbeat intervals or more. A heartbeat to such a member lists it too: what it sends does
    /// not reach us, which is a sign of its own health ([`crate::liveness::LocalHealth`]).
    fn silences(&self, now: Instant) -> Vec<v1::Silence> {
        let st = lock(&self.state);
        let threshold = self.cfg.interval * 2;
        st.ring
            .watched
            .iter()
            .filter_map(|node| {
                let since = self.own_silence_since(&st, node)?;
                let silent = now.saturating_duration_since(since);
                (silent >= threshold).then(|| v1::Silence {
                    node: node.clone(),
                    silent_for_ms: u64::try_from(silent.as_millis()).unwrap_or(u64::MAX),
                })
            })
            .collect()
    }

    /// Since when we have not heard `node`, as far as our observation counts: from when we last
    /// heard it, but never before we were last in touch with a majority of our monitors
    /// ([`State::observing_since`]); `None` while we are not.
    fn own_silence_since(&self, st: &State, node: &str) -> Option<Instant> {
        if st.sweep_late {
            return None;
        }
        let observing = st.observing_since?;
        let expected = st.watched_since.get(node).copied().unwrap_or(observing);
        let since = st.heard.get(node).map_or(self.start, |h| h.at).max(observing).max(expected);
        Some(since + st.health.delay(self.cfg.silence))
    }

    /// Applies a sign of our own health (or its absence) at `now` ([`crate::liveness::LocalHealth`]);
    /// logs when we start or stop discounting our own observations.
    fn local_health(&self, st: &mut State, now: Instant, sign: HealthSign) {
        use crate::liveness::HealthChange;
        let step = self.cfg.silence;
        let change = match sign {
            HealthSign::Quiet => st.health.recover(now, step),
            _ => st.health.degrade(now, step),
        };
        let score = st.health.score();
        match change {
            HealthChange::Unchanged => return,
            HealthChange::Degraded => tracing::warn!(
                sign = sign.label(),
                "local health degraded: this node dates its peers' silences later until it recovers"
            ),
            HealthChange::Recovered => tracing::info!("local health recovered"),
            HealthChange::Moved => tracing::debug!(score, sign = sign.label(), "local health score"),
        }
        metrics::gauge!(METRIC_LOCAL_HEALTH).set(f64::from(score));
    }

    /// Updates [`State::observing_since`] at `now` from the acknowledgements of our heartbeats.
    fn observe_connectivity(&self, st: &mut State, now: Instant) {
        let monitors = st.ring.monitors_of(&self.cfg.node);
        let sends = monitors.iter().filter_map(|p| st.acked.get(p).copied());
        let connected = !monitors.is_empty()
            && crate::liveness::quorum_acked_until(sends, monitors.len() + 1, self.cfg.silence)
                .is_some_and(|t| t > now);
        match (connected, st.observing_since) {
            (true, None) => st.observing_since = Some(now),
            (false, Some(_)) => {
                st.observing_since = None;
                // A majority of our monitors stopped acknowledging us: cut off or not scheduled;
                // either way our view of the others is suspect.
                self.local_health(st, now, HealthSign::Unacknowledged);
            }
            _ => {}
        }
    }

    /// Whether a heartbeat goes to `peer` at `now`: to our monitors always, to the other monitors
    /// of the nodes we report silent, and to everyone while a majority reports one of them.
    fn sends_to(&self, peer: &str, now: Instant) -> bool {
        let st = lock(&self.state);
        st.broadcast_until.is_some_and(|t| now < t)
            || st.extra_until.get(peer).is_some_and(|t| now < *t)
            || st.ring.monitors_of(&self.cfg.node).iter().any(|m| m == peer)
    }

    /// Handles an incoming heartbeat at local time `now`: the ack to send back, or why not.
    pub(super) fn receive_heartbeat(
        &self,
        hb: &v1::Heartbeat,
        now: Instant,
    ) -> Result<v1::HeartbeatAck, Reject> {
        self.check(hb)?;
        self.heard(&hb.node, now);
        {
            let mut st = lock(&self.state);
            if hb.silent.iter().any(|s| s.node == self.cfg.node) {
                // A peer that expects our heartbeats has missed them for two intervals or more: what
                // we send arrives late or not at all, so what we hear may be as late.
                self.local_health(&mut st, now, HealthSign::ReportedUnheard);
            }
            let report = st.reports.entry(hb.node.clone()).or_default();
            if (hb.epoch, hb.seq) > report.from || hb.epoch != report.from.0 {
                report.from = (hb.epoch, hb.seq);
                report.silent_since = hb
                    .silent
                    .iter()
                    .filter(|s| s.node != self.cfg.node)
                    .map(|s| {
                        let age = Duration::from_millis(s.silent_for_ms);
                        (s.node.clone(), now.checked_sub(age).unwrap_or(self.start).max(self.start))
                    })
                    .collect();
            }
            let entry = st.api.entry(hb.node.clone()).or_insert((hb.api_ok, now));
            if entry.0 != hb.api_ok {
                *entry = (hb.api_ok, now);
            }
        }
        let mut ack = v1::HeartbeatAck {
            node: self.cfg.node.clone(),
            epoch: self.epoch,
            seq: self.next_seq(&hb.node),
            to: hb.node.clone(),
            mac: Vec::new(),
            heartbeat_epoch: hb.epoch,
            heartbeat_seq: hb.seq,
            heartbeat_sent_at: hb.sent_at,
        };
        auth::sign(self.key(), &mut ack);
        Ok(ack)
    }

    /// Signs the ack of an accepted takeover notice.
    pub(super) fn takeover_ack(&self, notice: &v1::TakeoverNotice) -> v1::TakeoverAck {
        let mut ack = v1::TakeoverAck {
            node: self.cfg.node.clone(),
            epoch: self.epoch,
            seq: self.next_seq(&notice.node),
            to: notice.node.clone(),
            mac: Vec::new(),
            notice_epoch: notice.epoch,
            notice_seq: notice.seq,
        };
        auth::sign(self.key(), &mut ack);
        ack
    }

    /// Queues an event for the main loop; `false` when the queue is full (or nobody listens).
    pub(super) fn emit(&self, event: PeerEvent) -> bool {
        match self.events.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(e)) => {
                let mut dropped = lock(&self.dropped);
                dropped.0 += 1;
                let now = Instant::now();
                if dropped.1.is_none_or(|at| now.duration_since(at) >= DROP_WARNING_EVERY) {
                    tracing::warn!(dropped = dropped.0, last = ?e, "peer event queue full; events dropped");
                    *dropped = (0, Some(now));
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Records an authenticated heartbeat of `node`; emits Heard on the transition.
    fn heard(&self, node: &str, now: Instant) {
        let (transition, count, watched) = {
            let mut st = lock(&self.state);
            let entry = st.heard.entry(node.to_owned()).or_insert(HeardState { at: now, heard: false });
            entry.at = entry.at.max(now);
            let transition = !entry.heard;
            entry.heard = true;
            st.refused.remove(node);
            st.quorum_silent.remove(node);
            (
                transition,
                st.heard.values().filter(|h| h.heard).count(),
                st.ring.watched.iter().any(|w| w == node),
            )
        };
        if transition {
            metrics::gauge!(METRIC_PEERS_HEARD).set(count as f64);
            // As for silences (`sweep`): only the nodes we monitor are news; the others are heard
            // while they broadcast, by every node at once.
            if watched {
                tracing::info!(peer = %node, "peer heard");
            } else {
                tracing::debug!(peer = %node, "peer heard (broadcasting)");
            }
            self.emit(PeerEvent::Heard { node: node.to_owned() });
        }
    }

    /// Marks the peers unheard for `silence` at `now` as silent, and those a majority has not heard
    /// for `silence` as quorum-silent; emits Silent for each on the transition.
    ///
    /// A sweep whose timer fired late (`late`: this process was not scheduled for a while) decides
    /// nothing, and until the next sweep on time our own silences count for nothing (not in our
    /// reports, not in our quorum counts): the heartbeats that arrived meanwhile may still wait in
    /// the socket, and judging by them would make our stall our peers' silence. At a hundred
    /// announcers on two cores that was the start of a feedback loop: late reads, silences reported,
    /// broadcasts, more load. The other monitors, scheduled in time, still decide.
    fn sweep(&self, now: Instant, late: bool) {
        {
            let mut st = lock(&self.state);
            self.observe_connectivity(&mut st, now);
            st.sweep_late = late;
            if late {
                self.local_health(&mut st, now, HealthSign::LateTimer);
            } else if st.observing_since.is_some() {
                self.local_health(&mut st, now, HealthSign::Quiet);
            }
        }
        if late {
            tracing::debug!("silence sweep skipped: its timer fired late");
            return;
        }
        self.disseminate(now);
        let peers: Vec<String> = lock(&self.peers).keys().cloned().collect();
        for node in peers {
            let dead = self.quorum_silent_at(&node, now).is_some_and(|t| t <= now);
            let new = dead && lock(&self.state).quorum_silent.insert(node.clone());
            if new {
                tracing::warn!(peer = %node, "peer silent for a majority of its monitors");
                self.emit(PeerEvent::Silent { node });
            }
        }
        let (silent, count) = {
            let mut st = lock(&self.state);
            let mut silent = Vec::new();
            for (node, h) in st.heard.iter_mut() {
                if h.heard && now.saturating_duration_since(h.at) >= self.cfg.silence {
                    h.heard = false;
                    silent.push(node.clone());
                }
            }
            (silent, st.heard.values().filter(|h| h.heard).count())
        };
        if silent.is_empty() {
            return;
        }
        metrics::gauge!(METRIC_PEERS_HEARD).set(count as f64);
        for node in silent {
            // Only the nodes we monitor are expected to keep talking to us; the others only did
            // while they broadcast a silence of their own.
            if lock(&self.state).ring.watched.contains(&node) {
                tracing::warn!(peer = %node, silence = ?self.cfg.silence, "peer silent");
            } else {
                tracing::debug!(peer = %node, "peer no longer broadcasting");
            }
            self.emit(PeerEvent::Silent { node });
        }
    }

    /// Widens whom our heartbeats go to, from the silences we report at `now`
    /// ([`crate::liveness::dissemination`]): the silent nodes' other monitors, or everyone once a
    /// majority of a silent node's monitors reports it. Each for three intervals from now.
    fn disseminate(&self, now: Instant) {
        let silent = self.silences(now);
        let changed = {
            let mut st = lock(&self.state);
            st.extra_until.retain(|_, t| now < *t);
            if silent.is_empty() {
                return;
            }
            let d = {
                let reported: Vec<(&[String], usize)> = silent
                    .iter()
                    .map(|s| (st.ring.monitors_of(&s.node), self.reporting_monitors(&st, &s.node, now, true)))
                    .collect();
                crate::liveness::dissemination(&self.cfg.node, reported)
            };
            let until = now + self.cfg.interval * 3;
            let mut changed = false;
            if d.everyone {
                changed |= st.broadcast_until.is_none_or(|t| now >= t);
                st.broadcast_until = Some(until);
            }
            for m in d.monitors {
                changed |= st.extra_until.insert(m, until).is_none();
            }
            changed
        };
        if changed {
            self.sending_changed.notify_waiters();
        }
    }

    /// The datagram of the next heartbeat to `peer`, sent at `sent`; also returns its seq and
    /// `sent_at`, which its ack must echo. Without `report_silences` it lists no silences.
    fn heartbeat_datagram(&self, peer: &str, sent: Instant, report_silences: bool) -> (Vec<u8>, u64, u64) {
        let seq = self.next_seq(peer);
        let sent_at = u64::try_from(sent.duration_since(self.start).as_nanos()).unwrap_or(u64::MAX);
        // Each lock in its own statement: a guard in the message's initializer would live until its
        // end, and `silences` takes the same lock.
        let api_ok = lock(&self.state).api_ok;
        let silent = if report_silences { self.silences(sent) } else { Vec::new() };
        let mut hb = v1::Heartbeat {
            node: self.cfg.node.clone(),
            epoch: self.epoch,
            seq,
            to: peer.to_owned(),
            mac: Vec::new(),
            sent_at,
            api_ok,
            silent,
        };
        auth::sign(self.key(), &mut hb);
        (datagram::encode(datagram::Kind::Heartbeat, &hb), seq, sent_at)
    }

    /// Handles the ack of one of our heartbeats to `peer`, received at `received`: checks it answers
    /// a heartbeat still pending, records RTT and the acknowledged send.
    fn receive_ack(
        &self,
        peer: &str,
        ack: &v1::HeartbeatAck,
        pending: &mut Pending,
        received: Instant,
    ) -> Result<(), SendFailure> {
        self.check(ack).map_err(|r| SendFailure::new(REJECTED, r.to_string()))?;
        if ack.node != peer {
            return Err(SendFailure::new(
                "wrong node",
                format!("the peer's address answers as node {:?}", ack.node),
            ));
        }
        let Some(sent) = (ack.heartbeat_epoch == self.epoch)
            .then(|| pending.take(ack.heartbeat_seq, ack.heartbeat_sent_at))
            .flatten()
        else {
            return Err(SendFailure::new("wrong ack", "the ack answers no heartbeat we are waiting for"));
        };
        let rtt = received.duration_since(sent);
        metrics::histogram!(METRIC_RTT, "peer" => peer.to_owned()).record(rtt.as_secs_f64());
        let mut st = lock(&self.state);
        st.rtt.insert(peer.to_owned(), rtt);
        let acked = st.acked.entry(peer.to_owned()).or_insert(sent);
        *acked = (*acked).max(sent);
        st.refused.remove(peer);
        self.observe_connectivity(&mut st, received);
        Ok(())
    }

    /// Records that `peer`'s port refused our datagram (an ICMP port unreachable: its kernel
    /// answers, nothing listens); emits Refused on the first refusal of a streak.
    fn refused(&self, peer: &str) {
        // When the refusal was seen (not when the heartbeat left): compared with when the peer was
        // last heard, it proves the process gone only if it came later.
        let first = {
            let mut st = lock(&self.state);
            let first = !st.refused.contains_key(peer);
            st.refused.entry(peer.to_owned()).or_insert_with(Instant::now);
            first
        };
        if first {
            self.emit(PeerEvent::Refused { node: peer.to_owned() });
        }
    }

    /// Delivers a takeover notice to `peer`: a few attempts (each freshly signed) within
    /// [`TAKEOVER_DEADLINE`]; gives up at once when the peer refuses our messages.
    async fn deliver_takeover(&self, peer: String, t: Takeover, mut client: PeerClient<Channel>) {
        let deadline = tokio::time::Instant::now() + TAKEOVER_DEADLINE;
        let mut last = SendFailure::new("not sent", "");
        for attempt in 0..=TAKEOVER_BACKOFF.len() {
            let seq = self.next_seq(&peer);
            let mut notice = v1::TakeoverNotice {
                node: self.cfg.node.clone(),
                epoch: self.epoch,
                seq,
                to: peer.clone(),
                mac: Vec::new(),
                service_namespace: t.namespace.clone(),
                service_name: t.service.clone(),
                address: t.address.to_string(),
                new_holder: t.new_holder.clone(),
                lease_resource_version: t.lease_resource_version.clone(),
                replaced_resource_version: t.replaced_resource_version.clone(),
            };
            auth::sign(self.key(), &mut notice);
            let budget = deadline.saturating_duration_since(tokio::time::Instant::now());
            let call = tokio::time::timeout(budget.min(self.cfg.request_timeout), client.takeover(notice));
            let outcome = tokio::select! {
                () = self.shutdown.cancelled() => return,
                r = call => r,
            };
            let result = match outcome {
                Err(_) => Err(SendFailure::new("timeout", "no answer within the request timeout")),
                Ok(Err(status)) => Err(status_failure(&status)),
                Ok(Ok(r)) => {
                    let ack = r.into_inner();
                    match self.check(&ack) {
                        Err(r) => Err(SendFailure::new("ack rejected", r.to_string())),
                        Ok(())
                            if ack.node != peer
                                || (ack.notice_epoch, ack.notice_seq) != (self.epoch, seq) =>
                        {
                            Err(SendFailure::new("wrong ack", "the ack answers another notice or node"))
                        }
                        Ok(()) => Ok(()),
                    }
                }
            };
            match result {
                Ok(()) => {
                    tracing::info!(peer = %peer, address = %t.address, service = %format!("{}/{}", t.namespace, t.service),
                        "takeover notice delivered");
                    return;
                }
                Err(f) if f.kind == REJECTED => {
                    last = f;
                    break;
                }
                Err(f) => last = f,
            }
            let Some(pause) = TAKEOVER_BACKOFF.get(attempt) else { break };
            let wake = tokio::time::Instant::now() + *pause;
            if wake >= deadline {
                break;
            }
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = tokio::time::sleep_until(wake) => {}
            }
        }
        tracing::warn!(peer = %peer, address = %t.address, service = %format!("{}/{}", t.namespace, t.service),
            failure = last.kind, detail = %last.detail, "takeover notice not delivered");
    }
}

/// [`SendFailure::kind`]: the peer rejected our message (authentication or replay rules).
const REJECTED: &str = "rejected";
/// [`SendFailure::kind`]: the peer's port refused the connection.
const CONNECTION_REFUSED: &str = "connection refused";

/// Whether a call failed because the connection was refused (somewhere in the error's sources).
fn is_connection_refused(status: &tonic::Status) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// A failed call's status as a failure.
fn status_failure(status: &tonic::Status) -> SendFailure {
    use tonic::Code;
    if is_connection_refused(status) {
        return SendFailure::new(CONNECTION_REFUSED, status.message().to_owned());
    }
    let kind = match status.code() {
        Code::Unauthenticated | Code::PermissionDenied => REJECTED,
        Code::Unavailable => "unavailable",
        Code::DeadlineExceeded | Code::Cancelled => "timeout",
        _ => "error",
    };
    SendFailure::new(kind, format!("{:?}: {}", status.code(), status.message()))
}

/// Heartbeats `peer` at `addr` every interval until `cancel`, one datagram per tick from a UDP
/// socket connected to it (so that an ICMP port unreachable reaches us as a refusal), and reads the
/// acks arriving on that socket. Logs when the outcome changes (not every tick).
async fn heartbeat_loop(inner: Arc<Inner>, peer: String, addr: SocketAddr, cancel: CancellationToken) {
    let socket = loop {
        match datagram::connect(addr).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(peer = %peer, %addr, error = %e, "cannot open a heartbeat socket; retrying");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    if let Err(e) = datagram::enable_receive_timestamps(&socket) {
        tracing::debug!(peer = %peer, error = %e, "no kernel receive timestamps on the heartbeat socket; acks dated by their read");
    }
    let mut empty_at = Instant::now();
    let mut tick = tokio::time::interval(inner.cfg.interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut pending = Pending::default();
    // Acks only: a buffer per peer of the largest datagram would cost 64 KiB per peer.
    let mut buf = vec![0u8; datagram::MAX_ACK_LEN];
    let late_margin = late_margin(&inner.cfg);
    // The last failure logged, and whether an ack came since the last tick.
    let mut failing: Option<&'static str> = None;
    let mut acked_since_tick = true;
    // Whether the sender just woke from sleeping on `sending_changed`: its next tick reports a
    // deadline missed while it slept on purpose, which is no sign of this process being starved.
    let mut resumed = false;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            scheduled = tick.tick() => {
                // Not one of our monitors and nothing to broadcast: sleep until that changes rather
                // than wake every interval for nothing (a hundred peers would be a thousand wake-ups
                // a second). Registered before the check, so a change in between is not missed.
                let changed = inner.sending_changed.notified();
                let mut changed = std::pin::pin!(changed);
                changed.as_mut().enable();
                if !inner.sends_to(&peer, Instant::now()) {
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = changed => {}
                    }
                    resumed = true;
                    continue;
                }
                if !acked_since_tick && pending.len() > 1 && failing.is_none() {
                    // Two heartbeats in a row without an ack: say so once.
                    tracing::warn!(peer = %peer, "heartbeats not acknowledged");
                    failing = Some("no ack");
                }
                acked_since_tick = false;
                let sent = Instant::now();
                // Sent late, this process was not scheduled: what it would report as silent may
                // be its own stall (the sweep's rule, `Inner::sweep`). A heartbeat without silences
                // withdraws our report until the next one: it only ever delays a verdict.
                let on_time =
                    std::mem::take(&mut resumed) || !crate::liveness::timer_late(scheduled.into_std(), sent, late_margin);
                let (datagram, seq, sent_at) = inner.heartbeat_datagram(&peer, sent, on_time);
                pending.push(seq, sent_at, sent);
                if let Err(e) = socket.send(&datagram).await {
                    note_send_error(&inner, &peer, &e, &mut failing);
                }
            }
            r = datagram::recv_stamped(&socket, &mut buf, &mut empty_at) => {
                let outcome = match r {
                    Err(e) => {
                        note_send_error(&inner, &peer, &e, &mut failing);
                        continue;
                    }
                    Ok(r) => match datagram::decode_ack(&buf[..r.len]) {
                        Ok(ack) => inner.receive_ack(&peer, &ack, &mut pending, r.arrived),
                        Err(e) => {
                            inner.count_malformed(&peer, &e);
                            continue;
                        }
                    },
                };
                match outcome {
                    Ok(()) => {
                        acked_since_tick = true;
                        if failing.take().is_some() {
                            tracing::info!(peer = %peer, "heartbeats acknowledged again");
                        }
                    }
                    Err(f) => {
                        if failing != Some(f.kind) {
                            tracing::warn!(peer = %peer, failure = f.kind, detail = %f.detail, "heartbeat ack not accepted");
                            failing = Some(f.kind);
                        }
                    }
                }
            }
        }
    }
}

/// A send or receive error on a heartbeat socket: a refusal is recorded (its announcer is gone);
/// anything else (no route while a link is down, ...) only logged once per streak.
fn note_send_error(inner: &Inner, peer: &str, e: &std::io::Error, failing: &mut Option<&'static str>) {
    let kind = if e.kind() == std::io::ErrorKind::ConnectionRefused {
        inner.refused(peer);
        CONNECTION_REFUSED
    } else {
        "unreachable"
    };
    if *failing != Some(kind) {
        tracing::warn!(peer = %peer, failure = kind, error = %e, "heartbeat not delivered");
        *failing = Some(kind);
    } else {
        tracing::trace!(peer = %peer, failure = kind, error = %e, "heartbeat not delivered");
    }
}

/// Serves the heartbeats arriving on the hub's UDP port: each accepted one is answered with its
/// ack, to the address it came from.
async fn datagram_server(inner: Arc<Inner>, socket: tokio::net::UdpSocket) {
    if let Err(e) = datagram::enable_receive_timestamps(&socket) {
        tracing::warn!(error = %e, "no kernel receive timestamps on the peer socket: heartbeats are dated by when \
            they are read, so a process not scheduled in time may find its peers silent");
    }
    let mut empty_at = Instant::now();
    let mut buf = vec![0u8; datagram::MAX_LEN];
    loop {
        let r = tokio::select! {
            () = inner.shutdown.cancelled() => return,
            r = datagram::recv_stamped(&socket, &mut buf, &mut empty_at) => match r {
                Ok(r) => r,
                // Errors of our own earlier sends (an ack to a vanished port) surface here: harmless.
                Err(e) => {
                    tracing::trace!(error = %e, "peer datagram socket");
                    continue;
                }
            },
        };
        let Some(from) = r.from else { continue };
        let hb = match datagram::decode_heartbeat(&buf[..r.len]) {
            Ok(hb) => hb,
            Err(e) => {
                inner.count_malformed(&from.to_string(), &e);
                continue;
            }
        };
        // Dated by its arrival: a heartbeat that waited in the socket while this process was not
        // scheduled was on time.
        if let Ok(ack) = inner.receive_heartbeat(&hb, r.arrived) {
            let _ = socket.send_to(&datagram::encode(datagram::Kind::HeartbeatAck, &ack), from).await;
        }
    }
}

/// Binds the TCP listener (takeover notices) and the UDP socket (heartbeats) on the same address
/// and port; with port 0, the UDP socket takes the port the listener got (retried if it is taken).
async fn bind_both(addr: SocketAddr) -> std::io::Result<(TcpListener, tokio::net::UdpSocket)> {
    let mut attempts = 0;
    loop {
        let listener = TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        match tokio::net::UdpSocket::bind(bound).await {
            Ok(udp) => return Ok((listener, udp)),
            Err(e) if addr.port() == 0 && e.kind() == std::io::ErrorKind::AddrInUse && attempts < 10 => {
                attempts += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The heartbeats sent to one peer that an ack may still answer: the latest few, oldest first.
#[derive(Debug, Default)]
struct Pending(std::collections::VecDeque<(u64, u64, Instant)>);

impl Pending {
    /// How many heartbeats an ack may answer: older ones are forgotten (their acks come too late
    /// to vouch for anything: `ack_timeout` is a few intervals).
    const KEEP: usize = 16;

    fn push(&mut self, seq: u64, sent_at: u64, sent: Instant) {
        if self.0.len() == Self::KEEP {
            self.0.pop_front();
        }
        self.0.push_back((seq, sent_at, sent));
    }

    /// The local send time of the pending heartbeat (seq, sent_at), removing it and every older one.
    fn take(&mut self, seq: u64, sent_at: u64) -> Option<Instant> {
        let i = self.0.iter().position(|(s, a, _)| (*s, *a) == (seq, sent_at))?;
        let sent = self.0[i].2;
        self.0.drain(..=i);
        Some(sent)
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// How late a timer may fire before this process counts as not scheduled in time: half an interval
/// (the sweeps and heartbeats come every interval; reports start at two intervals of silence).
fn late_margin(cfg: &PeerConfig) -> Duration {
    cfg.interval.min(cfg.silence) / 2
}

/// Every `min(interval, silence)`, marks peers silent after `silence` without a heartbeat (a sweep
/// whose timer fired late decides nothing: [`Inner::sweep`]).
async fn silence_ticker(inner: Arc<Inner>) {
    let mut tick = tokio::time::interval(inner.cfg.interval.min(inner.cfg.silence));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let margin = late_margin(&inner.cfg);
    loop {
        tokio::select! {
            () = inner.shutdown.cancelled() => return,
            scheduled = tick.tick() => {
                let now = Instant::now();
                inner.sweep(now, crate::liveness::timer_late(scheduled.into_std(), now, margin));
            }
        }
    }
}
