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
//! The holder's own side ([`SelfLiveness`]): it is *vouched for* while its own heartbeat claim is
//! current (`renew_deadline` from its last confirmed renewal, which is before any peer's sighting of
//! that renewal, and `renew_deadline < lease_duration`) OR a peer acknowledged one of its heartbeats
//! sent less than `ack_timeout` ago (`ack_timeout <= peer_timeout`: the ack carries the send time of
//! the heartbeat it answers, on the holder's clock). A holder that is vouched for by neither stops
//! answering before any peer can find it dead.

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
        match (self.heartbeat_expiry(node, cfg), self.heard_until(cfg)) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Its liveness at `now`.
    pub fn liveness(&self, node: &str, now: Instant, cfg: &LivenessConfig) -> Liveness {
        if let Some(since) = self.refused_after_heard().filter(|r| *r <= now) {
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
    /// A peer acknowledged a heartbeat it sent less than `ack_timeout` ago.
    pub peer_acked: bool,
    /// A peer that reaches the API server could replace this node ([`api_peer_ready`]).
    pub api_peer_ready: bool,
}

impl SelfLiveness {
    /// From the heartbeat Lease's election state and the send time (local) of the latest heartbeat a
    /// peer acknowledged.
    pub fn judge(
        heartbeat: &Candidate,
        last_acked_send: Option<Instant>,
        now: Instant,
        cfg: &LivenessConfig,
    ) -> Self {
        Self {
            heartbeat_current: heartbeat.is_leader(now),
            peer_acked: last_acked_send.is_some_and(|t| now < t + cfg.ack_timeout),
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
        let me = SelfLiveness { heartbeat_current: false, peer_acked: true, api_peer_ready: true };
        assert!(!me.vouched());
        assert!(SelfLiveness { api_peer_ready: false, ..me }.vouched());
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
        };
        assert_eq!(p.liveness("n", ms(160), &cfg), Liveness::Dead { since: ms(150) });
        assert_eq!(p.dead_since("n", &cfg), Some(ms(150)));
        let heard_again = PeerLiveness { heard_at: Some(ms(200)), ..p.clone() };
        assert!(heard_again.liveness("n", ms(210), &cfg).is_alive());
        let never_heard =
            PeerLiveness { heartbeat: None, heard_at: None, refused_at: Some(ms(150)), api_down_since: None };
        assert_eq!(never_heard.dead_since("n", &cfg), None);
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
        };
        assert!(quiet.liveness("n1", t0 + ms(1999), &cfg()).is_alive());
        assert_eq!(quiet.liveness("n1", t0 + ms(2000), &cfg()), Liveness::Dead { since: t0 + ms(2000) });
        // A heartbeat Lease naming someone else, or released, is not valid.
        let wrong = PeerLiveness {
            heartbeat: Some(observed("n2", 2, t0)),
            heard_at: None,
            refused_at: None,
            api_down_since: None,
        };
        assert!(!wrong.liveness("n1", t0, &cfg()).is_alive());
        let mut released = observed("", 1, t0);
        released.record.holder = Some(String::new());
        let released = PeerLiveness {
            heartbeat: Some(released),
            heard_at: Some(t0),
            refused_at: None,
            api_down_since: None,
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
        let s = SelfLiveness::judge(&hb, None, t0 + Duration::from_millis(1000), &cfg());
        assert!(s.vouched() && s.heartbeat_current && !s.peer_acked);
        // Past the renew deadline with no renewal: only peer acks vouch.
        let late = t0 + Duration::from_millis(1600);
        assert!(!SelfLiveness::judge(&hb, None, late, &cfg()).vouched());
        assert!(SelfLiveness::judge(&hb, Some(late - Duration::from_millis(100)), late, &cfg()).vouched());
        assert!(!SelfLiveness::judge(&hb, Some(late - Duration::from_millis(500)), late, &cfg()).vouched());
    }
}
