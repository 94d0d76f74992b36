//! Whether a node is alive, without a Lease write per Service: node heartbeat Leases plus direct peer
//! heartbeats (DESIGN.md §4, "Liveness without per-service API load").
//!
//! Each announcer renews one Lease, `ferrolb-node-<node>`, with [`ferrolb_runtime::election`]'s
//! [`Candidate`] (it is the only candidate for its own heartbeat Lease), and sends heartbeats to its
//! peers. This module composes those two signals; everything is judged on the local monotonic clock:
//!
//! - **Heartbeat Lease valid**: the record names the node and was last seen to change less than its
//!   `leaseDurationSeconds` ago (the election module's [`Observed::claim`]: local time of the change,
//!   never the remote `renewTime`).
//! - **Heard**: a heartbeat of that node reached us directly, or a peer reported (relayed) hearing it,
//!   less than `peer_timeout` ago. Relayed times are converted to local time by the adapter (receipt
//!   time minus the age the peer reported), and only from authenticated messages.
//! - **Alive** = heartbeat Lease valid OR heard. **Dead** = neither: from
//!   `max(heartbeat expiry, last heard + peer_timeout)` on ([`PeerLiveness::dead_since`]).
//! - **Process gone**: its peer port refused a connection after it was last heard. The node's kernel
//!   answered with a reset, so the node is up but no announcer listens: dead from that moment, without
//!   waiting for the heartbeat Lease (this is what makes a crashed announcer's failover sub-second).
//!   A restarted announcer holds nothing until it has read the Leases again, so nothing answers twice.
//!   A node never heard is not judged by refusals: a firewall rejecting the peer port must not make
//!   every node look dead.
//!
//! So a node cut off from the API server but heard by peers stays alive (nobody takes over while it
//! can still answer), and so does a node cut off from its peers that still renews its Lease.
//!
//! - **Quorum silence**: a majority of its monitors ([`monitors`]: the announcers that receive its
//!   heartbeats) has not heard it for `peer_timeout` ([`quorum_silent_at`]; monitors report whom
//!   they do not hear in their heartbeats). Dead from then on, without waiting for the heartbeat
//!   Lease: this is what makes a node that dies without a word (power lost, its only NIC down)
//!   sub-second. Needs three announcers or more.
//!
//! The holder's own side ([`SelfLiveness`]): it is *vouched for* while its own heartbeat claim is
//! current (`renew_deadline` from its last confirmed renewal, which is before any peer's sighting of
//! that renewal, and `renew_deadline < lease_duration`) OR a majority of its monitors and itself
//! acknowledged one of its heartbeats sent less than `ack_timeout` ago (`ack_timeout <
//! peer_timeout`: the ack carries the send time of the heartbeat it answers, on the holder's clock).
//! A holder that is vouched for by neither stops answering before any peer can find it dead; one
//! that still renews its claim but is not heard by a majority learns of the takeover from the
//! Lease watch.

use std::time::{Duration, Instant};

use ferrolb_runtime::election::{Candidate, Observed};

/// Timings of the liveness rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LivenessConfig {
    /// Heartbeat Lease duration assumed when a record carries none.
    pub heartbeat_lease_duration: Duration,
    /// How long after the last heartbeat heard (directly or relayed) a silent peer counts as unheard
    /// (missed heartbeats × interval).
    pub peer_timeout: Duration,
    /// How long after sending a heartbeat that a peer acknowledged a holder still counts itself vouched
    /// for by its peers. Must not exceed `peer_timeout`.
    pub ack_timeout: Duration,
}

impl LivenessConfig {
    /// Checks `0 < ack_timeout <= peer_timeout` and a non-zero Lease duration; the error names the flag.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat_lease_duration.is_zero() {
            return Err("--heartbeat-lease-duration must be greater than zero".into());
        }
        if self.ack_timeout.is_zero() {
            return Err("--peer-ack-timeout must be greater than zero".into());
        }
        if self.ack_timeout > self.peer_timeout {
            return Err(format!(
                "--peer-ack-timeout ({:?}) must not exceed --peer-timeout ({:?})",
                self.ack_timeout, self.peer_timeout
            ));
        }
        Ok(())
    }
}

/// What this node knows of another node's liveness.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerLiveness {
    /// That node's heartbeat Lease as observed (`None`: absent or never seen).
    pub heartbeat: Option<Observed>,
    /// Latest local time at which one of its heartbeats was heard, directly or relayed.
    pub heard_at: Option<Instant>,
    /// Local time since which its peer port refuses connections (its kernel answers, nothing listens:
    /// the announcer process is gone), if that started after it was last heard.
    pub refused_at: Option<Instant>,
    /// Since when it has reported, in every heartbeat, that it cannot reach the API server.
    pub api_down_since: Option<Instant>,
    /// Local time from which a majority of the cluster's announcers has not heard it for the peer
    /// timeout ([`quorum_silent_at`]): dead from then on, whatever its heartbeat Lease says.
    pub quorum_silent_at: Option<Instant>,
}

/// How many of a cluster's `size` announcer nodes make a majority.
pub fn majority(size: usize) -> usize {
    size / 2 + 1
}

/// When a majority of the cluster's announcers has not heard a node for `peer_timeout`: the moment
/// its death is decided by the peer channel alone, without waiting for its heartbeat Lease.
///
/// `silent_since` has one entry per observer that does not hear the node now (this node and every
/// peer whose fresh report says so), each the local time since which it has not. The node itself
/// is no observer, so with fewer than three announcers there is no majority without it and this is
/// `None` (two-node clusters wait for the heartbeat Lease, as before).
///
/// Safe because a holder whose heartbeats a majority (itself counted) has not acknowledged for
/// `ack_timeout < peer_timeout` stops answering unless it still renews its heartbeat Lease
/// ([`SelfLiveness::vouched`]): a majority of silent observers and a majority of acknowledging ones
/// share a node, and that node cannot have received, after being silent for `peer_timeout`, a
/// heartbeat sent within the last `ack_timeout`.
pub fn quorum_silent_at(
    silent_since: impl IntoIterator<Item = Instant>,
    cluster_size: usize,
    peer_timeout: Duration,
) -> Option<Instant> {
    if cluster_size < 3 {
        return None;
    }
    let need = majority(cluster_size);
    let mut since: Vec<Instant> = silent_since.into_iter().collect();
    if since.len() < need {
        return None;
    }
    since.sort_unstable();
    Some(since[need - 1] + peer_timeout)
}

/// Whether a majority of the cluster's `cluster_size` announcers (this node counted) acknowledged
/// one of this node's heartbeats sent after `since`; `acked_sends` has, per peer, the send
/// time of the latest heartbeat it acknowledged.
pub fn quorum_acked(
    acked_sends: impl IntoIterator<Item = Instant>,
    cluster_size: usize,
    since: Instant,
) -> bool {
    let need = majority(cluster_size).saturating_sub(1);
    need == 0 || acked_sends.into_iter().filter(|t| *t > since).count() >= need
}

/// Until when a majority of the cluster (this node counted) has acknowledged a heartbeat sent
/// within `ack_timeout`: the send time of the latest heartbeat that the `majority - 1`-th most
/// recent acknowledging peer answered, plus `ack_timeout`. `None`: no such majority ever.
pub fn quorum_acked_until(
    acked_sends: impl IntoIterator<Item = Instant>,
    cluster_size: usize,
    ack_timeout: Duration,
) -> Option<Instant> {
    let need = majority(cluster_size).saturating_sub(1);
    let mut sends: Vec<Instant> = acked_sends.into_iter().collect();
    sends.sort_unstable_by(|a, b| b.cmp(a));
    sends.get(need.checked_sub(1)?).map(|t| *t + ack_timeout)
}

/// How many heartbeat Lease writes the cluster makes per heartbeat retry period at most, once it has
/// more announcers than this (see [`heartbeat_write_period`]).
pub const HEARTBEAT_WRITES_PER_PERIOD: usize = 10;

/// How often an announcer writes its heartbeat Lease in a cluster of `announcers` (this one counted),
/// given the retry period T, when the peer channel runs: T up to [`HEARTBEAT_WRITES_PER_PERIOD`]
/// announcers, then T × ⌈announcers / 10⌉, so the cluster writes at most about 10 heartbeats per T
/// and each announcer's Lease watch carries about 10 renewals per T whatever the cluster size
/// (every renewal reaches every announcer: one a second from each of 100 nodes was 10,000 watch events
/// a second for the API server to send). Between writes the announcer checks its claim by reading
/// its Lease every T ([`ferrolb_runtime::election::Candidate::set_write_period`]), so its own
/// standing is judged as often as before; what grows is how long the others consider a node's
/// heartbeat Lease valid after its last write (the lease duration + this period − T), which decides
/// only when the peer channel cannot (two announcers, a majority gone at once, a node cut off from
/// the API server only). Node death is detected by the peer channel in the same time at any size.
pub fn heartbeat_write_period(announcers: usize, retry_period: Duration) -> Duration {
    let factor = announcers.div_ceil(HEARTBEAT_WRITES_PER_PERIOD).max(1);
    retry_period.saturating_mul(u32::try_from(factor).unwrap_or(u32::MAX))
}

/// How many peers watch each node's heartbeats (its *monitors*). With at most this many peers every
/// announcer watches every other one; past it each watches a fixed few, so a node's heartbeat cost
/// stays flat in the cluster size.
pub const MONITORS: usize = 4;

/// The monitors of `node` among `members` (every announcer, `node` included, sorted and without
/// duplicates): the `MONITORS` members that follow it in that order, wrapping around. Every
/// announcer derives the same sets from the same member list (the nodes whose announcers reported a
/// peer port on their heartbeat Lease). `node` sends its heartbeats to its monitors; they
/// acknowledge them (which vouches for it) and report when they stop hearing it; it is silent
/// for the cluster when a majority of them has not heard it ([`quorum_silent_at`], with
/// `cluster_size` = monitors + 1).
pub fn monitors(members: &[String], node: &str) -> Vec<String> {
    let Ok(at) = members.binary_search_by(|m| m.as_str().cmp(node)) else { return Vec::new() };
    let k = MONITORS.min(members.len().saturating_sub(1));
    (1..=k).map(|i| members[(at + i) % members.len()].clone()).collect()
}

/// Whether `node` stays a member of the peer ring (who monitors whom, [`monitors`]) for an observer
/// at `now`: while its heartbeat Lease is valid or this observer hears it. A node whose announcer is
/// gone for good (a powered-off node that is still a Node) otherwise stayed a member for ever, and a
/// majority of its monitors reported it silent for ever, so they sent every heartbeat to every
/// announcer for ever: at 100 nodes, four monitors at about 2,000 datagrams a second each, and
/// every other announcer at twice its usual heartbeat load. Its death was decided long before (by
/// the quorum of its monitors, or by its Lease expiring), and leaving the ring changes nothing of
/// it: expired and unheard is dead.
///
/// Judged only by an observer that has reached the API server for a whole heartbeat Lease duration
/// (`observer_api_since`): before that, its Lease cache may be stale, every Lease would look
/// expired, and the ring (everyone's monitors) would change under a control-plane outage, which
/// must change nothing.
pub fn in_ring(
    p: &PeerLiveness,
    node: &str,
    now: Instant,
    cfg: &LivenessConfig,
    observer_api_since: Option<Instant>,
) -> bool {
    let judged = observer_api_since.is_some_and(|s| now >= s + cfg.heartbeat_lease_duration);
    !judged
        || p.heartbeat_expiry(node, cfg).is_some_and(|e| now < e)
        || p.heard_until(cfg).is_some_and(|t| now < t)
}

/// Whom a monitor's heartbeats go to while it reports silences, besides its own monitors
/// ([`dissemination`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dissemination {
    /// Every announcer: a majority of a silent node's monitors reports it, so any observer that
    /// hears them can decide its death ([`quorum_silent_at`]) and must be told.
    pub everyone: bool,
    /// The other monitors of each node reported silent by fewer than a majority of its monitors:
    /// they are the ones whose reports can make that majority, so they are told first.
    pub monitors: std::collections::BTreeSet<String>,
}

/// Whom to tell about this node's silences. `reported` has, per member this node reports silent,
/// that member's monitors (this node among them) and how many of them report it now (this node
/// counted, and every other monitor whose fresh heartbeat lists it).
///
/// Why not every announcer at once: at 100 announcers a broadcast is 99 heartbeats (and 99 acks) per
/// interval per report, and a report that only one monitor makes (a late read on a starved machine,
/// a single lost path) can never become a quorum: no observer can count a majority from it. So a
/// lone report goes only to the silent node's other monitors (SWIM-style: piggybacked on
/// heartbeats, at most `MONITORS - 1` extra datagrams), which count it with their own; only once a
/// majority of them reports the node do they tell everyone, which is when any observer can decide.
/// The quorum rule itself is unchanged: each observer still counts the direct reports of a majority.
pub fn dissemination<'a>(
    this_node: &str,
    reported: impl IntoIterator<Item = (&'a [String], usize)>,
) -> Dissemination {
    let mut d = Dissemination::default();
    for (monitors, reporting) in reported {
        if reporting >= majority(monitors.len() + 1) {
            d.everyone = true;
        } else {
            d.monitors.extend(monitors.iter().filter(|m| *m != this_node).cloned());
        }
    }
    d
}

/// Whether a timer set for `scheduled` that fired at `fired` was late by more than `margin`: the
/// process was not scheduled for that long, so what it has read of its peers is that old, and
/// datagrams that arrived in the meantime still wait in its socket. A silence judged then would be
/// the observer's own stall, not the peer's.
pub fn timer_late(scheduled: Instant, fired: Instant, margin: Duration) -> bool {
    fired.saturating_duration_since(scheduled) > margin
}

/// When a datagram read at `read_at` arrived, from the age of the kernel's receive timestamp
/// (`kernel_age`: the wall clock at the read minus the wall-clock stamp; `None` without one), kept
/// within `[empty_at, read_at]`, `empty_at` being the last time the socket was found empty (the
/// datagram arrived after it). A starved process reads late; judging a peer by the read would count
/// the observer's own delay as the peer's silence. The bound keeps a step of the wall clock between
/// arrival and read from moving the arrival before the socket was last seen empty.
pub fn arrival(read_at: Instant, kernel_age: Option<Duration>, empty_at: Instant) -> Instant {
    let floor = empty_at.min(read_at);
    kernel_age.and_then(|age| read_at.checked_sub(age)).map_or(read_at, |t| t.max(floor))
}

/// How far this node trusts its own observations of its peers: Lifeguard's local health awareness
/// (memberlist's "awareness" score). A process that is not scheduled in time, or whose heartbeats
/// its monitors stop acknowledging or report unheard, is more likely the slow one than each of the
/// peers it stops hearing; at a hundred announcers on two cores such an observer's reports started
/// verdicts, the verdicts' broadcasts added load, and the load made more observers slow. So each such
/// sign raises a score (at most [`LocalHealth::MAX`], at most once per `step`), every `step` without
/// one lowers it again, and this node dates its own silences `score × silence` later
/// ([`LocalHealth::delay`]): a degraded observer reports later and counts its own testimony later,
/// and the monitors that are healthy decide without it. Only ever delays a verdict, so the quorum
/// rule's safety (see [`quorum_silent_at`]) is untouched; the holder's own rule ([`SelfLiveness`])
/// does not depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LocalHealth {
    score: u32,
    /// When the last sign that counted was seen.
    last_sign: Option<Instant>,
    /// Since when no sign was seen, or the score last dropped: recovery counts whole steps from it.
    quiet_since: Option<Instant>,
}

/// What a [`LocalHealth`] update did to the score, for the caller's log and metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthChange {
    Unchanged,
    /// From 0 to 1: this node starts discounting its own observations.
    Degraded,
    /// Changed, still above 0 or above 0 before.
    Moved,
    /// Back to 0.
    Recovered,
}

impl LocalHealth {
    /// The highest score: a node at it dates its own silences eight silence timeouts later (4 s with
    /// the defaults), as memberlist caps its awareness at 8.
    pub const MAX: u32 = 8;

    pub fn score(self) -> u32 {
        self.score
    }

    /// How much later this node dates its own silences of others.
    pub fn delay(self, silence: Duration) -> Duration {
        silence.saturating_mul(self.score)
    }

    /// A sign of this node's own trouble at `now` (a late timer, its heartbeats unacknowledged by a
    /// majority of its monitors, a peer reporting it unheard). One per `step` counts: the same stall
    /// seen by several timers is one sign; every sign restarts the quiet time that recovery needs.
    pub fn degrade(&mut self, now: Instant, step: Duration) -> HealthChange {
        self.quiet_since = Some(now);
        if self.score >= Self::MAX || self.last_sign.is_some_and(|t| now < t + step) {
            return HealthChange::Unchanged;
        }
        self.last_sign = Some(now);
        self.score += 1;
        if self.score == 1 { HealthChange::Degraded } else { HealthChange::Moved }
    }

    /// Nothing wrong at `now` (a timer on time, in touch with a majority of the monitors): the score
    /// drops by one for each whole `step` without a sign.
    pub fn recover(&mut self, now: Instant, step: Duration) -> HealthChange {
        let Some(since) = self.quiet_since.filter(|_| self.score > 0) else { return HealthChange::Unchanged };
        if step.is_zero() || now < since + step {
            return HealthChange::Unchanged;
        }
        let steps = u32::try_from(now.duration_since(since).as_nanos() / step.as_nanos()).unwrap_or(u32::MAX);
        self.score = self.score.saturating_sub(steps);
        self.quiet_since = Some(now);
        if self.score == 0 { HealthChange::Recovered } else { HealthChange::Moved }
    }
}

/// Whether a node is alive and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// At least one signal is fresh.
    Alive { lease_valid: bool, heard: bool },
    /// Neither: its heartbeat Lease expired and it has not been heard, since the given local time.
    Dead { since: Instant },
}

impl Liveness {
    pub fn is_alive(self) -> bool {
        matches!(self, Liveness::Alive { .. })
    }
}

impl PeerLiveness {
    /// Local time at which its heartbeat Lease stops being valid (`None`: never valid: absent, released,
    /// or naming another node).
    pub fn heartbeat_expiry(&self, node: &str, cfg: &LivenessConfig) -> Option<Instant> {
        let o = self.heartbeat.as_ref()?;
        let claim = o.claim(cfg.heartbeat_lease_duration);
        (claim.holder.as_deref() == Some(node)).then_some(claim.expiry)
    }

    /// Local time at which it stops being heard.
    pub fn heard_until(&self, cfg: &LivenessConfig) -> Option<Instant> {
        self.heard_at.map(|t| t + cfg.peer_timeout)
    }

    /// The refusal that proves its announcer process gone: its peer port refused a connection after
    /// it was last heard. A peer that was never heard proves nothing this way (a firewall that
    /// rejects the peer port must not make every node look dead).
    fn refused_after_heard(&self) -> Option<Instant> {
        match (self.refused_at, self.heard_at) {
            (Some(r), Some(h)) if r > h => Some(r),
            _ => None,
        }
    }

    /// When it became (or becomes) dead: both signals gone, or its process proven gone. `None` means
    /// it was never alive as far as we know (neither signal ever seen).
    pub fn dead_since(&self, node: &str, cfg: &LivenessConfig) -> Option<Instant> {
        if let Some(r) = self.refused_after_heard() {
            return Some(r);
        }
        let unheard = match (self.heartbeat_expiry(node, cfg), self.heard_until(cfg)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        match (unheard, self.quorum_silent_at) {
            (Some(a), Some(q)) => Some(a.min(q)),
            (a, q) => a.or(q),
        }
    }

    /// Its liveness at `now`.
    pub fn liveness(&self, node: &str, now: Instant, cfg: &LivenessConfig) -> Liveness {
        if let Some(since) = self.refused_after_heard().filter(|r| *r <= now) {
            return Liveness::Dead { since };
        }
        if let Some(since) = self.quorum_silent_at.filter(|q| *q <= now) {
            return Liveness::Dead { since };
        }
        let lease_valid = self.heartbeat_expiry(node, cfg).is_some_and(|t| now < t);
        let heard = self.heard_until(cfg).is_some_and(|t| now < t);
        if lease_valid || heard {
            Liveness::Alive { lease_valid, heard }
        } else {
            // Never seen at all: dead "since now" (the caller's readiness gate, which requires having
            // listed heartbeat Leases and run the peer channel for `peer_timeout`, makes this safe).
            Liveness::Dead { since: self.dead_since(node, cfg).unwrap_or(now) }
        }
    }
}

impl PeerLiveness {
    /// When a node that is heard but cut off from the API server may be replaced: once it has
    /// reported being cut off, and the observer has reached the API server without interruption
    /// (`observer_api_since`), for a whole heartbeat Lease duration, and its heartbeat Lease has
    /// expired. Waiting for the observer's own stable access is what keeps a control-plane outage
    /// from moving addresses when it ends: every holder gets a full Lease duration to renew first.
    /// The holder itself stops answering a little earlier ([`api_peer_ready`]).
    pub fn cut_off_at(
        &self,
        node: &str,
        cfg: &LivenessConfig,
        observer_api_since: Option<Instant>,
    ) -> Option<Instant> {
        let at = self.api_down_since?.max(observer_api_since?) + cfg.heartbeat_lease_duration;
        Some(self.heartbeat_expiry(node, cfg).map_or(at, |e| at.max(e)))
    }

    /// [`PeerLiveness::liveness`] as judged by an observer that reaches the API server since
    /// `observer_api_since`: a node heard but cut off is dead from [`PeerLiveness::cut_off_at`].
    pub fn liveness_seen_by(
        &self,
        node: &str,
        now: Instant,
        cfg: &LivenessConfig,
        observer_api_since: Option<Instant>,
    ) -> Liveness {
        let l = self.liveness(node, now, cfg);
        if let Liveness::Alive { lease_valid: false, heard: true } = l
            && let Some(at) = self.cut_off_at(node, cfg, observer_api_since)
            && now >= at
        {
            return Liveness::Dead { since: at };
        }
        l
    }
}

/// Whether a peer that reaches the API server could soon replace this node, judged from the peers'
/// own reports (`(reaches the API, since when)` per peer heard): one has reported reaching it for a
/// heartbeat Lease duration minus the peer timeout. A holder cut off from the API server stops
/// answering then, before that peer's [`PeerLiveness::cut_off_at`] (which counts from its own,
/// later, sighting). `None`: none could; else the time from which one can (possibly in the future).
pub fn api_peer_ready(
    peers: impl IntoIterator<Item = (bool, Instant)>,
    cfg: &LivenessConfig,
) -> Option<Instant> {
    let lead = cfg.heartbeat_lease_duration.saturating_sub(cfg.peer_timeout);
    peers.into_iter().filter(|(ok, _)| *ok).map(|(_, since)| since + lead).min()
}

/// This node's own standing, as a holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelfLiveness {
    /// Its own heartbeat claim is current ([`Candidate::is_leader`] on its heartbeat Lease).
    pub heartbeat_current: bool,
    /// A majority of the cluster's announcers (this node counted; with two nodes, the other one)
    /// acknowledged a heartbeat it sent less than `ack_timeout` ago ([`quorum_acked`]).
    pub peer_acked: bool,
    /// A peer that reaches the API server could replace this node ([`api_peer_ready`]).
    pub api_peer_ready: bool,
}

impl SelfLiveness {
    /// From the heartbeat Lease's election state and the send time (local) of the latest heartbeat a
    /// peer acknowledged.
    pub fn judge(
        heartbeat: &Candidate,
        acked_sends: impl IntoIterator<Item = Instant>,
        cluster_size: usize,
        now: Instant,
        cfg: &LivenessConfig,
    ) -> Self {
        Self {
            heartbeat_current: heartbeat.is_leader(now),
            peer_acked: cluster_size > 1
                && quorum_acked(acked_sends, cluster_size, now.checked_sub(cfg.ack_timeout).unwrap_or(now)),
            api_peer_ready: false,
        }
    }

    /// Whether peers would still find this node alive: a holder that is not vouched for must stop
    /// answering (when some other node could take over).
    pub fn vouched(self) -> bool {
        // Cut off from the API server: the peers' acknowledgements vouch for this node only while
        // none of them could take over (a control-plane outage); otherwise the peer that reaches the
        // API server takes over, and this node must have stopped by then.
        self.heartbeat_current || (self.peer_acked && !self.api_peer_ready)
    }
}

#[cfg(test)]
mod refusal_tests {
    use super::*;

    #[test]
    fn a_heard_node_cut_off_from_the_api_is_replaced_only_after_a_stable_lease_duration() {
        let cfg = LivenessConfig {
            heartbeat_lease_duration: Duration::from_secs(3),
            peer_timeout: Duration::from_millis(500),
            ack_timeout: Duration::from_millis(400),
        };
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_millis(n);
        let heard = PeerLiveness {
            heartbeat: None,
            heard_at: Some(s(9_900)),
            refused_at: None,
            api_down_since: Some(s(1000)),
            quorum_silent_at: None,
        };
        // The observer reaches the API since t0 + 2 s: the cut-off node is replaced 3 s later.
        assert_eq!(heard.cut_off_at("n", &cfg, Some(s(2000))), Some(s(5000)));
        assert!(heard.liveness_seen_by("n", s(4900), &cfg, Some(s(2000))).is_alive());
        assert_eq!(
            heard.liveness_seen_by("n", s(5000), &cfg, Some(s(2000))),
            Liveness::Dead { since: s(5000) }
        );
        // An observer without API access, or a node that did not report being cut off: alive.
        assert!(heard.liveness_seen_by("n", s(9000), &cfg, None).is_alive());
        let fine = PeerLiveness { api_down_since: None, ..heard.clone() };
        assert!(fine.liveness_seen_by("n", s(9000), &cfg, Some(s(2000))).is_alive());
        // The holder stops before: from the peer's first report plus D - peer timeout.
        assert_eq!(api_peer_ready([(true, s(2100)), (false, s(0))], &cfg), Some(s(4600)));
        assert_eq!(api_peer_ready([(false, s(0))], &cfg), None);
        let self_liveness = SelfLiveness { heartbeat_current: false, peer_acked: true, api_peer_ready: true };
        assert!(!self_liveness.vouched());
        assert!(SelfLiveness { api_peer_ready: false, ..self_liveness }.vouched());
    }

    #[test]
    fn a_refusal_after_being_heard_is_death_and_before_it_is_nothing() {
        let cfg = LivenessConfig {
            heartbeat_lease_duration: Duration::from_secs(3),
            peer_timeout: Duration::from_millis(500),
            ack_timeout: Duration::from_millis(400),
        };
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let p = PeerLiveness {
            heartbeat: None,
            heard_at: Some(ms(100)),
            refused_at: Some(ms(150)),
            api_down_since: None,
            quorum_silent_at: None,
        };
        assert_eq!(p.liveness("n", ms(160), &cfg), Liveness::Dead { since: ms(150) });
        assert_eq!(p.dead_since("n", &cfg), Some(ms(150)));
        let heard_again = PeerLiveness { heard_at: Some(ms(200)), ..p.clone() };
        assert!(heard_again.liveness("n", ms(210), &cfg).is_alive());
        let never_heard = PeerLiveness {
            heartbeat: None,
            heard_at: None,
            refused_at: Some(ms(150)),
            api_down_since: None,
            quorum_silent_at: None,
        };
        assert_eq!(never_heard.dead_since("n", &cfg), None);
    }
}

#[cfg(test)]
mod ring_tests {
    use super::*;
    use ferrolb_runtime::election::LeaseRecord;

    #[test]
    fn a_node_leaves_the_ring_once_its_lease_expired_unheard_and_only_for_an_observer_on_the_api() {
        let cfg = LivenessConfig {
            heartbeat_lease_duration: Duration::from_secs(3),
            peer_timeout: Duration::from_millis(500),
            ack_timeout: Duration::from_millis(400),
        };
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let lease = Observed {
            record: LeaseRecord {
                holder: Some("n".into()),
                lease_duration: Some(Duration::from_secs(3)),
                resource_version: Some("1".into()),
                ..Default::default()
            },
            changed_at: s(10),
        };
        let p = PeerLiveness { heartbeat: Some(lease), ..Default::default() };
        let on_api = Some(s(0));
        assert!(in_ring(&p, "n", s(12), &cfg, on_api));
        assert!(!in_ring(&p, "n", s(13), &cfg, on_api));
        // Heard directly: stays, whatever its Lease says.
        let heard = PeerLiveness { heard_at: Some(s(20)), ..p.clone() };
        assert!(in_ring(&heard, "n", s(20), &cfg, on_api));
        assert!(!in_ring(&heard, "n", s(21), &cfg, on_api));
        // An observer off the API, or back on it for less than a Lease duration, changes nothing.
        assert!(in_ring(&p, "n", s(30), &cfg, None));
        assert!(in_ring(&p, "n", s(30), &cfg, Some(s(28))));
        assert!(!in_ring(&p, "n", s(31), &cfg, Some(s(28))));
        // A Lease released or held by another name: not valid.
        assert!(!in_ring(&PeerLiveness::default(), "n", s(30), &cfg, on_api));
    }
}

#[cfg(test)]
mod health_tests {
    use super::*;

    const STEP: Duration = Duration::from_millis(500);

    #[test]
    fn signs_raise_the_score_once_per_step_and_quiet_steps_lower_it() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut h = LocalHealth::default();
        assert_eq!(h.delay(STEP), Duration::ZERO);
        assert_eq!(h.recover(ms(0), STEP), HealthChange::Unchanged);
        assert_eq!(h.degrade(ms(0), STEP), HealthChange::Degraded);
        // The same stall seen by another timer within the step: one sign.
        assert_eq!(h.degrade(ms(100), STEP), HealthChange::Unchanged);
        assert_eq!(h.degrade(ms(500), STEP), HealthChange::Moved);
        assert_eq!(h.score(), 2);
        assert_eq!(h.delay(STEP), Duration::from_secs(1));
        // Not yet a quiet step since the last change.
        assert_eq!(h.recover(ms(900), STEP), HealthChange::Unchanged);
        assert_eq!(h.recover(ms(1000), STEP), HealthChange::Moved);
        assert_eq!(h.score(), 1);
        assert_eq!(h.recover(ms(1400), STEP), HealthChange::Unchanged);
        assert_eq!(h.recover(ms(1500), STEP), HealthChange::Recovered);
        assert_eq!(h.recover(ms(9000), STEP), HealthChange::Unchanged);
    }

    #[test]
    fn the_score_is_capped_and_a_long_quiet_spell_clears_it_at_once() {
        let t0 = Instant::now();
        let mut h = LocalHealth::default();
        for i in 0..20 {
            h.degrade(t0 + STEP * i, STEP);
        }
        assert_eq!(h.score(), LocalHealth::MAX);
        assert_eq!(h.delay(STEP), Duration::from_secs(4));
        assert_eq!(h.recover(t0 + STEP * 19 + Duration::from_secs(60), STEP), HealthChange::Recovered);
        assert_eq!(h.score(), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_runtime::election::{Action, ElectionConfig, LeaseRecord};
    use jiff::Timestamp;

    fn cfg() -> LivenessConfig {
        LivenessConfig {
            heartbeat_lease_duration: Duration::from_secs(2),
            peer_timeout: Duration::from_millis(600),
            ack_timeout: Duration::from_millis(500),
        }
    }

    fn observed(holder: &str, secs: u64, at: Instant) -> Observed {
        Observed {
            record: LeaseRecord {
                holder: Some(holder.into()),
                lease_duration: Some(Duration::from_secs(secs)),
                resource_version: Some("1".into()),
                ..Default::default()
            },
            changed_at: at,
        }
    }

    #[test]
    fn alive_while_either_signal_is_fresh() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let p = PeerLiveness {
            heartbeat: Some(observed("n1", 2, t0)),
            heard_at: Some(t0 + ms(1800)),
            refused_at: None,
            api_down_since: None,
            quorum_silent_at: None,
        };
        assert_eq!(
            p.liveness("n1", t0 + ms(100), &cfg()),
            Liveness::Alive { lease_valid: true, heard: true }
        );
        // Lease expired at 2 s, heard until 2.4 s.
        assert_eq!(
            p.liveness("n1", t0 + ms(2100), &cfg()),
            Liveness::Alive { lease_valid: false, heard: true }
        );
        assert_eq!(p.liveness("n1", t0 + ms(2400), &cfg()), Liveness::Dead { since: t0 + ms(2400) });
        // Not heard at all (peer channel down) but renewing: alive.
        let quiet = PeerLiveness {
            heartbeat: Some(observed("n1", 2, t0)),
            heard_at: None,
            refused_at: None,
            api_down_since: None,
            quorum_silent_at: None,
        };
        assert!(quiet.liveness("n1", t0 + ms(1999), &cfg()).is_alive());
        assert_eq!(quiet.liveness("n1", t0 + ms(2000), &cfg()), Liveness::Dead { since: t0 + ms(2000) });
        // A heartbeat Lease naming someone else, or released, is not valid.
        let wrong = PeerLiveness {
            heartbeat: Some(observed("n2", 2, t0)),
            heard_at: None,
            refused_at: None,
            api_down_since: None,
            quorum_silent_at: None,
        };
        assert!(!wrong.liveness("n1", t0, &cfg()).is_alive());
        let mut released = observed("", 1, t0);
        released.record.holder = Some(String::new());
        let released = PeerLiveness {
            heartbeat: Some(released),
            heard_at: Some(t0),
            refused_at: None,
            api_down_since: None,
            quorum_silent_at: None,
        };
        assert_eq!(released.liveness("n1", t0 + ms(600), &cfg()), Liveness::Dead { since: t0 + ms(600) });
        // Never seen: dead now.
        assert_eq!(PeerLiveness::default().liveness("n1", t0, &cfg()), Liveness::Dead { since: t0 });
    }

    #[test]
    fn config_validation_names_the_flag() {
        assert!(cfg().validate().is_ok());
        let mut c = cfg();
        c.ack_timeout = Duration::from_secs(1);
        assert!(c.validate().unwrap_err().contains("--peer-ack-timeout"));
        c.ack_timeout = Duration::ZERO;
        assert!(c.validate().is_err());
        c.heartbeat_lease_duration = Duration::ZERO;
        assert!(c.validate().unwrap_err().contains("--heartbeat-lease-duration"));
    }

    #[test]
    fn self_vouched_by_own_heartbeat_or_peer_acks() {
        let t0 = Instant::now();
        let ec = ElectionConfig {
            identity: "n1".into(),
            lease_duration: Duration::from_secs(2),
            renew_deadline: Duration::from_millis(1500),
            retry_period: Duration::from_millis(500),
        };
        let mut hb = Candidate::new(ec);
        let Action::Create(rec) = hb.decide(None, t0, Timestamp::UNIX_EPOCH) else { panic!() };
        let mut rec = rec;
        rec.resource_version = Some("1".into());
        hb.written(Ok(&rec), t0);
        let s = SelfLiveness::judge(&hb, None, 2, t0 + Duration::from_millis(1000), &cfg());
        assert!(s.vouched() && s.heartbeat_current && !s.peer_acked);
        // Past the renew deadline with no renewal: only peer acks vouch.
        let late = t0 + Duration::from_millis(1600);
        assert!(!SelfLiveness::judge(&hb, None, 2, late, &cfg()).vouched());
        assert!(SelfLiveness::judge(&hb, Some(late - Duration::from_millis(100)), 2, late, &cfg()).vouched());
        assert!(
            !SelfLiveness::judge(&hb, Some(late - Duration::from_millis(500)), 2, late, &cfg()).vouched()
        );
    }
}

#[cfg(test)]
mod quorum_tests {
    use super::*;
    use proptest::prelude::*;

    const P: Duration = Duration::from_millis(500);
    const A: Duration = Duration::from_millis(400);

    #[test]
    fn heartbeat_writes_stay_about_ten_per_period_at_any_size() {
        let t = Duration::from_secs(1);
        assert_eq!(heartbeat_write_period(0, t), t);
        assert_eq!(heartbeat_write_period(3, t), t);
        assert_eq!(heartbeat_write_period(10, t), t, "small clusters are as before");
        assert_eq!(heartbeat_write_period(11, t), 2 * t);
        assert_eq!(heartbeat_write_period(20, t), 2 * t);
        assert_eq!(heartbeat_write_period(100, t), 10 * t);
        for n in 1..=1000usize {
            let per_period = n as f64 * t.as_secs_f64() / heartbeat_write_period(n, t).as_secs_f64();
            assert!(per_period <= HEARTBEAT_WRITES_PER_PERIOD as f64, "{n} announcers: {per_period}");
        }
    }

    #[test]
    fn monitors_follow_on_the_ring_and_cover_small_clusters() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let three = names(&["a", "b", "c"]);
        assert_eq!(monitors(&three, "b"), ["c", "a"]);
        assert_eq!(monitors(&three, "x"), Vec::<String>::new());
        let many: Vec<String> = (0..10).map(|i| format!("n{i}")).collect();
        assert_eq!(monitors(&many, "n8"), ["n9", "n0", "n1", "n2"]);
        // Every node is watched by MONITORS others and watches MONITORS others.
        for m in &many {
            let watching = many.iter().filter(|n| monitors(&many, n).contains(m)).count();
            assert_eq!((monitors(&many, m).len(), watching), (MONITORS, MONITORS));
        }
    }

    #[test]
    fn majorities() {
        assert_eq!([1, 2, 3, 4, 5, 100].map(majority), [1, 2, 2, 3, 3, 51]);
    }

    #[test]
    fn quorum_silence_needs_a_majority_of_observers() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // Three nodes: both others must be silent; the later silence counts.
        assert_eq!(quorum_silent_at([ms(100), ms(150)], 3, P), Some(ms(650)));
        assert_eq!(quorum_silent_at([ms(100)], 3, P), None);
        // Two nodes: the other node alone is no majority.
        assert_eq!(quorum_silent_at([ms(100)], 2, P), None);
        // Five nodes: three observers; the third earliest silence decides.
        assert_eq!(quorum_silent_at([ms(400), ms(100), ms(300), ms(200)], 5, P), Some(ms(800)));
        assert_eq!(quorum_silent_at([ms(400), ms(100)], 5, P), None);
    }

    #[test]
    fn quorum_acks_count_the_holder_itself() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        assert!(quorum_acked([ms(500)], 3, ms(400)));
        assert!(!quorum_acked([ms(300)], 3, ms(400)));
        assert!(!quorum_acked([ms(500)], 5, ms(400)));
        assert!(quorum_acked([ms(500), ms(450), ms(10)], 5, ms(400)));
        assert!(quorum_acked([], 1, ms(400)));
    }

    #[test]
    fn a_quorum_silent_node_is_dead_even_with_a_valid_heartbeat_lease() {
        let cfg = LivenessConfig {
            heartbeat_lease_duration: Duration::from_secs(3),
            peer_timeout: P,
            ack_timeout: A,
        };
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // Still heard by this node until 800 ms; a majority's silence makes it dead at 650 ms.
        let p =
            PeerLiveness { heard_at: Some(ms(300)), quorum_silent_at: Some(ms(650)), ..Default::default() };
        assert!(p.liveness("h", ms(640), &cfg).is_alive());
        assert_eq!(p.liveness("h", ms(650), &cfg), Liveness::Dead { since: ms(650) });
        assert_eq!(p.dead_since("h", &cfg), Some(ms(650)));
        let unreported = PeerLiveness { quorum_silent_at: None, ..p };
        assert!(unreported.liveness("h", ms(700), &cfg).is_alive());
        assert_eq!(unreported.dead_since("h", &cfg), Some(ms(800)));
    }

    #[test]
    fn a_lone_report_goes_to_the_other_monitors_and_a_majority_to_everyone() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let of_d = names(&["e", "f", "g", "h"]);
        let of_x = names(&["h", "y", "z"]);
        // h alone reports d: d's other monitors only.
        let d = dissemination("h", [(&of_d[..], 1)]);
        assert_eq!(
            (d.everyone, d.monitors.iter().map(String::as_str).collect::<Vec<_>>()),
            (false, vec!["e", "f", "g"])
        );
        // Two of four: still no majority of five (d's monitors and d).
        assert!(!dissemination("h", [(&of_d[..], 2)]).everyone);
        // Three of four: everyone.
        assert!(dissemination("h", [(&of_d[..], 3)]).everyone);
        // Two silent nodes: the monitors of both, without this node.
        let d = dissemination("h", [(&of_d[..], 1), (&of_x[..], 1)]);
        assert_eq!(d.monitors.iter().map(String::as_str).collect::<Vec<_>>(), ["e", "f", "g", "y", "z"]);
        assert_eq!(dissemination("h", []), Dissemination::default());
    }

    #[test]
    fn late_timers_and_arrivals() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let margin = Duration::from_millis(50);
        assert!(!timer_late(ms(100), ms(150), margin));
        assert!(timer_late(ms(100), ms(151), margin));
        assert!(!timer_late(ms(100), ms(90), margin), "early is not late");
        // The kernel stamp moves the arrival back, never before the socket was last found empty.
        assert_eq!(arrival(ms(500), Some(Duration::from_millis(300)), ms(100)), ms(200));
        assert_eq!(arrival(ms(500), Some(Duration::from_millis(450)), ms(100)), ms(100));
        assert_eq!(arrival(ms(500), None, ms(100)), ms(500));
        assert_eq!(arrival(ms(500), Some(Duration::ZERO), ms(100)), ms(500));
        // A floor after the read (cannot happen, but must not panic) is the read.
        assert_eq!(arrival(ms(500), Some(Duration::from_millis(300)), ms(600)), ms(500));
    }

    proptest! {
        /// The safety argument of [`quorum_silent_at`]: whenever a majority of observers has been
        /// silent on the holder for `P`, the holder cannot count a majority of acknowledgements of
        /// heartbeats sent within `A < P`. Each observer's last receipt from the holder comes after
        /// the send of every heartbeat it acknowledged.
        #[test]
        fn quorum_silence_and_quorum_acks_never_overlap(
            size in 3usize..9,
            // Per peer: the send time of its last acknowledged heartbeat and the transit delay to it.
            peers in proptest::collection::vec((0u64..5_000, 0u64..300), 8),
            now in 0u64..6_000,
        ) {
            let t0 = Instant::now();
            let ms = |n: u64| t0 + Duration::from_millis(n);
            let peers = &peers[..size - 1];
            // A peer received its last heartbeat at send + delay, if that is before now.
            let received: Vec<(u64, u64)> = peers.iter().map(|&(s, d)| (s, s + d)).filter(|&(_, r)| r <= now).collect();
            let acked = received.iter().map(|&(s, _)| ms(s));
            let silent = received.iter().map(|&(_, r)| ms(r));
            let dead = quorum_silent_at(silent, size, P).is_some_and(|t| t <= ms(now));
            let vouched = quorum_acked(acked, size, ms(now).checked_sub(A).unwrap_or(t0));
            prop_assert!(!(dead && vouched));
        }

        /// A report reaches, directly or by the broadcast, every monitor of the silent node that is
        /// not this node, and everyone exactly when a majority of the monitors (the node itself
        /// counted in the size) reports it: so a node that could count a majority is always told.
        #[test]
        fn dissemination_reaches_every_monitor_and_everyone_only_with_a_majority(
            k in 1usize..8,
            me_at in 0usize..8,
            reporting in 1usize..9,
        ) {
            let monitors: Vec<String> = (0..k).map(|i| format!("m{i}")).collect();
            let this_node = monitors[me_at % k].clone();
            let reporting = reporting.min(k);
            let d = dissemination(&this_node, [(&monitors[..], reporting)]);
            prop_assert_eq!(d.everyone, reporting >= majority(k + 1));
            if !d.everyone {
                prop_assert!(!d.monitors.contains(&this_node));
                prop_assert_eq!(d.monitors.len(), k - 1);
            }
        }

        /// The arrival is never after the read nor before the socket was last found empty (when
        /// that was before the read), and equals the read without a stamp.
        #[test]
        fn arrivals_stay_between_the_last_empty_socket_and_the_read(
            read in 0u64..10_000, empty in 0u64..10_000, age in proptest::option::of(0u64..20_000),
        ) {
            let t0 = Instant::now();
            let ms = |n: u64| t0 + Duration::from_millis(n);
            let a = arrival(ms(read), age.map(Duration::from_millis), ms(empty));
            prop_assert!(a <= ms(read));
            prop_assert!(a >= ms(empty.min(read)));
            if age.is_none() {
                prop_assert_eq!(a, ms(read));
            }
        }
    }
}
