//! Per-(Service, address) Lease decisions (DESIGN.md §4, "Election"), without I/O.
//!
//! One `coordination.k8s.io/v1` Lease per announced (Service, address) records who answers for it.
//! Its `holderIdentity` is a node name; it is written only to acquire, hand over or release, never to
//! renew: the holder's validity comes from its liveness ([`crate::liveness`]), so steady-state Lease
//! writes grow with the number of nodes (heartbeats), not of Services. Every write is a
//! compare-and-swap on the `resourceVersion` that was read, so two nodes deciding on the same record
//! cannot both win.
//!
//! # Failover rules
//! Terms: D = heartbeat Lease duration (`--heartbeat-lease-duration`), R = its renew deadline
//! (`--heartbeat-renew-deadline`, R < D), T = its renew period (`--heartbeat-retry-period`),
//! P = peer timeout (`--peer-timeout`, missed heartbeats × interval), A = peer ack timeout
//! (`--peer-ack-timeout`, A ≤ P), S = acquire stagger (`--acquire-stagger`), H = hand-over settle time
//! (`--handover-settle`), W = one watch event or peer message delivery. All times are local monotonic.
//! With more than 10 announcers a node writes its heartbeat Lease only every T_w = T × ⌈N / 10⌉ and
//! confirms its claim by reading every T in between; each write then carries D + T_w − T, which the
//! Lease-only rules below wait for instead of D (docs/l2-failover.md, "Heartbeat write pace").
//!
//! A node decides, for each address, from the Lease it just read ([`AddressLease::decide`]):
//! 1. **The Lease names this node.** It answers ([`Decision::Hold`]) unless, checked in this order:
//!    - a peer's authenticated takeover notice says it took the address: stop at once
//!      ([`Decision::StandDown`]); the Lease is re-read when the API server is reachable;
//!    - it is no longer a candidate (its link went down, the node is excluded, no local endpoint for
//!      `externalTrafficPolicy: Local`, no policy selects it, or shutting down): stop answering, then
//!      hand the Lease to the placement's choice, or release it ([`Decision::HandOver`]);
//!    - it is not vouched for (own heartbeat claim lapsed, R after its last confirmed renewal, and
//!      either no majority of its monitors, itself counted, acknowledged a heartbeat sent in the last
//!      A, or a peer has reported reaching the API server for D − P, so that peer will take over)
//!      while some other node could take over:
//!      stop answering ([`Decision::StandDown`]). With no other candidate it keeps answering: nobody
//!      could replace it, and stopping would only cause an outage;
//!    - placement prefers another node that has been ready for H, and this node has held the Lease for
//!      H: stop answering, then hand the Lease to that node (a returning node takes back its share,
//!      only once fully ready, and two nodes whose views differ cannot bounce an address faster
//!      than once per H).
//!
//!    After any of these stops, a record that still has the version it stopped on may be a stale
//!    view (its own hand-over, or a taker's write, not seen yet: say its only link just came back):
//!    it answers again only after a compare-and-swap write of that record ([`confirmed`]: same
//!    holder, new `renewTime`) succeeds; if anyone wrote the Lease meanwhile, the write fails and the
//!    next read shows who holds it.
//! 2. **The Lease names another node that is valid** (alive: heartbeat Lease valid OR heard by this
//!    node; not silent for a majority of its monitors; and not disqualified): wait. No write.
//! 3. **The Lease is free**: absent, released (no holder), or naming a node that is **gone**: dead
//!    (heartbeat Lease expired AND not heard for P; or silent for a majority of its monitors for P,
//!    [`crate::liveness::quorum_silent_at`]; or its process proven gone),
//!    disqualified (excluded, NetworkUnavailable, Node not Ready while another node is, tainted
//!    out-of-service, no local endpoint, not selected, its own report that its selected links are
//!    down), or deleted.
//!    The placement's choice acquires at once; any other candidate waits `(p + 1) × S` after it first
//!    saw the Lease free, p being its position in the preference order with the choice left out (so a
//!    node whose view of placement differs still fills the gap, a little later). Acquiring needs this
//!    node's own heartbeat claim to be current, and is not done while another node validly holds the
//!    Lease of another Service sharing the same IP. After a successful takeover from a live node, the
//!    new holder sends that node an authenticated takeover notice.
//!
//! A node answers ARP/NDP for an IP only while it holds (rule 1, [`Decision::Hold`]) the Lease of
//! every Service announcing that IP; it starts after its own write is confirmed or it reads a record
//! naming it, and stops before writing a hand-over or release.
//!
//! **Failover times** (from the fault to the new holder's write; add W and the gratuitous ARP/NA):
//! - planned (SIGTERM, hand-over): one write + W; the holder names its successor directly;
//! - holder's link down, holder still reaches the API server: link detection + one write + W;
//! - holder's announcer process dies, its node stays up: the next peer heartbeat to it is refused
//!   (≤ one peer interval, 100 ms by default) + one write + W;
//! - holder's node dies (power lost, its only NIC down, its process hung), three announcers or more:
//!   P after the last heartbeat the slowest of a majority heard, + one silence sweep (≤ one peer
//!   interval) + one write + W, + S × p for a fallback acquirer;
//! - the same with two announcers, or when a majority died at once: between `max(D − T, P)` and
//!   `max(D, P)` after the death (the heartbeat Lease was last renewed up to T before it);
//! - holder cut off from the API server only (its peers still hear it): it says so in its
//!   heartbeats; a peer that has reached the API server without interruption for D, D after the
//!   holder's first such report and once its heartbeat Lease expired, judges it gone and takes over;
//!   the holder stops answering D − P after that peer's first "I reach the API server" report reached
//!   it, so before. In a control-plane outage no peer reaches the API server: nobody takes over and
//!   every holder keeps answering; when the API server is back, every observer first waits D of its own
//!   stable access, by which time the holders have renewed (T < D): no address moves;
//! - holder cut off from its peers only (it still reaches the API server), three announcers or more:
//!   the majority that does not hear it takes over after P; the holder reads the taker's write and
//!   stops. With two announcers: no failover (it stays alive).
//!
//! # Worst-case double announcement
//! - Hand-over, release, shutdown: **0** (the old holder stops before its write; the new one starts
//!   after reading it).
//! - Holder dead: **0** with the `responder` datapath (a node whose only link is down cannot answer
//!   on it, and once it is back answers only after confirming the record, rule 1). With `netlink`,
//!   the addresses a killed announcer left on an interface are answered by the kernel until their
//!   lifetime runs out (`--netlink-address-lifetime`, 3 s by default, refreshed while held): about
//!   the lifetime + 0.35 s at worst, as measured (docs/l2-failover.md).
//! - Holder disqualified while alive: ≤ W (it sees the same API fact, or its own link, and the taker's
//!   notice, whichever comes first); a holder whose link is down cannot answer on it anyway.
//! - Holder cut off from its peers only: **≤ W** with three announcers or more (it reaches the API
//!   server and reads the taker's write), **0** with two (nobody takes over).
//! - Holder cut off from the API server and from a majority of its peers but still reaching clients
//!   (peers and API on another network than the announced one): **≤ R − P**, the rest of its claim.
//! - Holder cut off from the API server only: **0** while a peer's heartbeat reaches it within P: it
//!   stops D − P after the first report of the peer that takes over reached it, and that peer takes
//!   over no earlier than D after it began reaching the API server, which is before it sent that report.
//! - Holder cut off from both: **0** as long as clocks run at the same rate: peers need D after their
//!   sighting of its last renewal, which is after the holder's decision of that renewal, and the
//!   holder stops R < D after that decision; peers need P after hearing its last heartbeat, sent
//!   before they heard it, and the holder stops A ≤ P after sending the last acknowledged one. With
//!   clock rates differing by a fraction ε, up to ε × max(D, P).
//! - The exception: a partition that leaves the holder with no API access but with a peer still
//!   acknowledging it, while the node taking over hears neither of them, *and* both sides still share
//!   the L2 segment (the peer channel runs over another network than the announced one). The holder is
//!   then vouched for and keeps answering until the partition heals, when the takeover notice or its
//!   next Lease read stops it within W. When the peer channel runs over the announced L2 network (the
//!   default: node InternalIPs), such a partition also splits the L2 segment, and each side's clients
//!   see one answer.
//!
//! Steady state: a valid holder reads (watches) and decides [`Decision::Hold`], every other candidate
//! [`Decision::Wait`]: no writes. Writes happen only on acquisition, hand-over and release.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ferrolb_api::names::{annotations, labels, leases};
use ferrolb_runtime::election::LeaseRecord;
use jiff::Timestamp;

use crate::candidates::Rejection;
use crate::liveness::{Liveness, SelfLiveness};
use crate::policy::AddressKey;

/// Timings of the per-address decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Delay per fallback position before a candidate other than the placement's choice acquires.
    pub acquire_stagger: Duration,
    /// How long a node must have been ready before it is handed an address, and how long a holder
    /// keeps an address before handing it on.
    pub handover_settle: Duration,
    /// Written as `leaseDurationSeconds` (informative: the heartbeat Lease's duration, since that is
    /// what keeps the record valid).
    pub heartbeat_lease_duration: Duration,
}

/// Why the holder named by a Lease is replaced at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// Heartbeat Lease expired and not heard by peers.
    Dead,
    /// No longer a candidate, by an API fact or its own report.
    Disqualified(Rejection),
    /// Its Node object is gone.
    NodeDeleted,
}

/// How this node judges the holder a Lease names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolderStatus {
    Valid,
    Gone(Gone),
}

impl HolderStatus {
    /// Combines the holder's liveness and candidacy: `rejection` is why it is not a candidate (`None`:
    /// it is one), `node_exists` whether its Node object exists.
    pub fn judge(liveness: Liveness, rejection: Option<Rejection>, node_exists: bool) -> Self {
        if !node_exists {
            return Self::Gone(Gone::NodeDeleted);
        }
        if let Some(r) = rejection.filter(|r| r.disqualifies_holder()) {
            return Self::Gone(Gone::Disqualified(r));
        }
        if liveness.is_alive() { Self::Valid } else { Self::Gone(Gone::Dead) }
    }
}

/// Everything one decision looks at, besides the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inputs<'a> {
    /// The Lease as just read (`None`: it does not exist).
    pub lease: Option<&'a LeaseRecord>,
    /// This node's judgement of the holder the Lease names (ignored when it names nobody or this node).
    pub holder: HolderStatus,
    /// The placement's choice for this address (`None`: no candidates).
    pub desired: Option<&'a str>,
    /// Since when the placement's choice has been ready (from its own report).
    pub desired_ready_since: Option<Instant>,
    /// This node's fallback position ([`fallback_rank`]); `None`: this node is not a candidate (or
    /// is shutting down).
    pub fallback_rank: Option<usize>,
    /// This node's own standing.
    pub self_liveness: SelfLiveness,
    /// Whether a node other than this one is a candidate (a holder that could be replaced).
    pub has_other_candidates: bool,
    /// An authenticated takeover notice for this address arrived after this Lease was read.
    pub takeover_notice: bool,
    /// Another Service sharing this IP has its Lease validly held by another node.
    pub ip_held_elsewhere: bool,
}

/// Why a node stops answering without writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StandDownReason {
    TakeoverNotice,
    NotVouched,
}

impl StandDownReason {
    /// Every reason, for metrics that report each one (zero included).
    pub const ALL: [StandDownReason; 2] = [StandDownReason::TakeoverNotice, StandDownReason::NotVouched];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            StandDownReason::TakeoverNotice => "takeover-notice",
            StandDownReason::NotVouched => "not-vouched",
        }
    }

    /// For an operator reading why a node holding an address's Lease does not answer for it.
    pub fn describe(self) -> &'static str {
        match self {
            StandDownReason::TakeoverNotice => "another node announced that it took the address over",
            StandDownReason::NotVouched => {
                "this node can neither renew its heartbeat Lease nor get its heartbeats acknowledged \
                 by a majority of its monitors, so it must assume that its peers find it dead"
            }
        }
    }
}

/// What to do about one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The address is ours: answer for it. Nothing to write.
    Hold,
    /// Write `record` (create when `create`, else compare-and-swap update on its resourceVersion);
    /// answer once the write is confirmed. When `replacing` names a node, send it a takeover notice
    /// after the write.
    Acquire { record: LeaseRecord, create: bool, replacing: Option<String> },
    /// Stop answering now, then compare-and-swap `record`, which names `to` (or nobody).
    HandOver { record: LeaseRecord, to: Option<String> },
    /// Stop answering now; nothing to write.
    StandDown(StandDownReason),
    /// Not ours: do not answer. Decide again at `until` (if given) or when an input changes.
    Wait { until: Option<Instant> },
}

impl Decision {
    /// Whether this node answers for the address after this decision (before any write it asks for).
    pub fn answers(&self) -> bool {
        matches!(self, Decision::Hold)
    }

    /// Whether the decision asks for a Lease write.
    pub fn writes(&self) -> bool {
        matches!(self, Decision::Acquire { .. } | Decision::HandOver { .. })
    }
}

/// This node's position among the fallback acquirers of an address: its index in the preference
/// order with the placement's choice left out (0 for the choice itself, which does not wait). `None`
/// when it is not in `order` (not a candidate).
pub fn fallback_rank(order: &[&str], desired: Option<&str>, this_node: &str) -> Option<usize> {
    if desired == Some(this_node) {
        return order.contains(&this_node).then_some(0);
    }
    order.iter().filter(|n| Some(**n) != desired).position(|n| *n == this_node)
}

/// The decision state of one address on one node: when it first saw the Lease free (for the
/// fallback stagger) and since when it holds it (for the hand-over settle time).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressLease {
    free_since: Option<Instant>,
    held_since: Option<Instant>,
    /// The resourceVersion of the record naming this node when it last stopped answering for it
    /// (stand-down or hand-over). A record that still has that version may be a stale view (its own
    /// hand-over or the taker's write not seen yet, say after its only link came back): it answers
    /// again only after confirming the record by a write of its own.
    stood_down_on: Option<Option<String>>,
}

impl AddressLease {
    pub fn new() -> Self {
        Self::default()
    }

    /// Since when this node has seen the Lease free (released, absent, or its holder gone), while it
    /// waits to acquire it: the start of a failover, as this node saw it.
    pub fn free_since(&self) -> Option<Instant> {
        self.free_since
    }

    /// Since when this node has held the Lease, as its decisions saw it (a hand-over waits until
    /// it has held it for the settle time).
    pub fn held_since(&self) -> Option<Instant> {
        self.held_since
    }

    /// Decides for node `this_node` (see the module documentation). `wall` goes into `acquireTime` and
    /// `renewTime` of any record to write.
    pub fn decide(
        &mut self,
        this_node: &str,
        inputs: &Inputs<'_>,
        cfg: &LeaseConfig,
        now: Instant,
        wall: Timestamp,
    ) -> Decision {
        let holder = inputs.lease.and_then(LeaseRecord::holder);
        if holder == Some(this_node) {
            let lease = inputs.lease.expect("a holder implies a lease");
            let decision = self.decide_held(this_node, lease, inputs, cfg, now, wall);
            return match decision {
                Decision::Hold if self.stood_down_on.as_ref() == Some(&lease.resource_version) => {
                    Decision::Acquire { record: confirmed(lease, cfg, wall), create: false, replacing: None }
                }
                Decision::Hold => {
                    self.stood_down_on = None;
                    decision
                }
                Decision::StandDown(_) | Decision::HandOver { .. } => {
                    self.stood_down_on = Some(lease.resource_version.clone());
                    decision
                }
                Decision::Acquire { .. } | Decision::Wait { .. } => decision,
            };
        }
        self.stood_down_on = None;
        self.decide_free(this_node, holder, inputs, cfg, now, wall)
    }

    /// [`AddressLease::decide`] when the record names this node.
    fn decide_held(
        &mut self,
        this_node: &str,
        lease: &LeaseRecord,
        inputs: &Inputs<'_>,
        cfg: &LeaseConfig,
        now: Instant,
        wall: Timestamp,
    ) -> Decision {
        {
            self.free_since = None;
            let held_since = *self.held_since.get_or_insert(now);
            if inputs.takeover_notice {
                return Decision::StandDown(StandDownReason::TakeoverNotice);
            }
            let other_desired = inputs.desired.filter(|d| *d != this_node);
            if inputs.fallback_rank.is_none() {
                return Decision::HandOver {
                    record: handed_over(lease, other_desired, cfg, wall),
                    to: other_desired.map(str::to_owned),
                };
            }
            if !inputs.self_liveness.vouched() && inputs.has_other_candidates {
                return Decision::StandDown(StandDownReason::NotVouched);
            }
            let settled = |since: Instant| now >= since + cfg.handover_settle;
            if let Some(to) = other_desired
                && inputs.desired_ready_since.is_some_and(settled)
                && settled(held_since)
            {
                return Decision::HandOver {
                    record: handed_over(lease, Some(to), cfg, wall),
                    to: Some(to.to_owned()),
                };
            }
            Decision::Hold
        }
    }

    /// [`AddressLease::decide`] when the record names another node or nobody.
    fn decide_free(
        &mut self,
        this_node: &str,
        holder: Option<&str>,
        inputs: &Inputs<'_>,
        cfg: &LeaseConfig,
        now: Instant,
        wall: Timestamp,
    ) -> Decision {
        self.held_since = None;
        let replacing = match (holder, inputs.holder) {
            (Some(_), HolderStatus::Valid) => {
                self.free_since = None;
                return Decision::Wait { until: None };
            }
            (Some(h), HolderStatus::Gone(_)) => Some(h.to_owned()),
            (None, _) => None,
        };
        let Some(rank) = inputs.fallback_rank else {
            return Decision::Wait { until: None };
        };
        if inputs.ip_held_elsewhere || !inputs.self_liveness.heartbeat_current {
            return Decision::Wait { until: None };
        }
        let free_since = *self.free_since.get_or_insert(now);
        let at = if inputs.desired == Some(this_node) {
            free_since
        } else {
            free_since + cfg.acquire_stagger.saturating_mul(u32::try_from(rank + 1).unwrap_or(u32::MAX))
        };
        if now < at {
            return Decision::Wait { until: Some(at) };
        }
        Decision::Acquire {
            record: acquired(inputs.lease, this_node, cfg, wall),
            create: inputs.lease.is_none(),
            replacing,
        }
    }
}

/// The record for `this_node` to take over `previous` (or to create the Lease when `None`).
pub fn acquired(
    previous: Option<&LeaseRecord>,
    this_node: &str,
    cfg: &LeaseConfig,
    wall: Timestamp,
) -> LeaseRecord {
    LeaseRecord {
        holder: Some(this_node.to_owned()),
        lease_duration: Some(whole_seconds(cfg.heartbeat_lease_duration)),
        acquire_time: Some(wall),
        // Written at acquisition, never renewed (DESIGN.md §4).
        renew_time: Some(wall),
        transitions: previous.map_or(0, |p| p.transitions.saturating_add(1)),
        resource_version: previous.and_then(|p| p.resource_version.clone()),
    }
}

/// The record a holder that stopped answering writes to confirm, before it answers again, that
/// `previous` (naming it) is still current: the same claim, a new `renewTime`; the compare-and-swap
/// fails if anyone wrote the Lease since.
pub fn confirmed(previous: &LeaseRecord, cfg: &LeaseConfig, wall: Timestamp) -> LeaseRecord {
    LeaseRecord {
        lease_duration: Some(whole_seconds(cfg.heartbeat_lease_duration)),
        renew_time: Some(wall),
        ..previous.clone()
    }
}

/// The record the holder writes to give `previous` to `to`, or to release it (`None`).
pub fn handed_over(
    previous: &LeaseRecord,
    to: Option<&str>,
    cfg: &LeaseConfig,
    wall: Timestamp,
) -> LeaseRecord {
    match to {
        Some(to) => acquired(Some(previous), to, cfg, wall),
        None => LeaseRecord {
            holder: None,
            lease_duration: Some(whole_seconds(cfg.heartbeat_lease_duration)),
            acquire_time: Some(wall),
            renew_time: Some(wall),
            transitions: previous.transitions,
            resource_version: previous.resource_version.clone(),
        },
    }
}

/// For graceful shutdown: when `lease` names `this_node`, the record handing it to `successor` (or releasing
/// it); `None` when it is not ours. Stop answering before writing it.
pub fn release(
    this_node: &str,
    lease: Option<&LeaseRecord>,
    successor: Option<&str>,
    cfg: &LeaseConfig,
    wall: Timestamp,
) -> Option<LeaseRecord> {
    let lease = lease.filter(|l| l.holder() == Some(this_node))?;
    Some(handed_over(lease, successor.filter(|s| *s != this_node), cfg, wall))
}

fn whole_seconds(d: Duration) -> Duration {
    Duration::from_secs((d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1))
}

/// A per-address Lease as plain data: the adapter turns it into a `coordination.k8s.io/v1` Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseObject {
    /// `ferrolb-l2-<namespace>-<service>-<address>` (see [`leases::service_address`]).
    pub name: String,
    /// `ferrolb.io/service-namespace`, `ferrolb.io/service-name`.
    pub labels: BTreeMap<String, String>,
    /// `ferrolb.io/heartbeat-lease: ferrolb-node-<holder>` while somebody holds it.
    pub annotations: BTreeMap<String, String>,
    pub record: LeaseRecord,
}

/// The Lease object for `key` carrying `record`. The annotation follows the holder, so every write
/// sets it (or removes it on release).
pub fn lease_object(key: &AddressKey, record: LeaseRecord) -> LeaseObject {
    let labels = BTreeMap::from([
        (labels::LEASE_SERVICE_NAMESPACE.to_owned(), key.service.namespace.clone()),
        (labels::LEASE_SERVICE_NAME.to_owned(), key.service.name.clone()),
    ]);
    let annotations = record
        .holder()
        .map(|h| BTreeMap::from([(annotations::HEARTBEAT_LEASE.to_owned(), leases::node_heartbeat(h))]))
        .unwrap_or_default();
    LeaseObject {
        name: leases::service_address(&key.service.namespace, &key.service.name, key.address),
        labels,
        annotations,
        record,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ServiceKey;
    use proptest::prelude::*;

    const ME: &str = "node-a";

    fn cfg() -> LeaseConfig {
        LeaseConfig {
            acquire_stagger: Duration::from_millis(200),
            handover_settle: Duration::from_secs(5),
            heartbeat_lease_duration: Duration::from_millis(1500),
        }
    }

    fn wall() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    fn rec(holder: Option<&str>, rv: u64) -> LeaseRecord {
        LeaseRecord {
            holder: holder.map(str::to_owned),
            lease_duration: Some(Duration::from_secs(2)),
            transitions: 4,
            resource_version: Some(rv.to_string()),
            ..Default::default()
        }
    }

    fn alive() -> SelfLiveness {
        SelfLiveness { heartbeat_current: true, peer_acked: true, api_peer_ready: false }
    }

    fn inputs<'a>(
        lease: Option<&'a LeaseRecord>,
        desired: Option<&'a str>,
        rank: Option<usize>,
    ) -> Inputs<'a> {
        Inputs {
            lease,
            holder: HolderStatus::Valid,
            desired,
            desired_ready_since: None,
            fallback_rank: rank,
            self_liveness: alive(),
            has_other_candidates: true,
            takeover_notice: false,
            ip_held_elsewhere: false,
        }
    }

    #[test]
    fn desired_node_creates_or_takes_a_free_lease_at_once() {
        let t0 = Instant::now();
        let mut s = AddressLease::new();
        let d = s.decide(ME, &inputs(None, Some(ME), Some(0)), &cfg(), t0, wall());
        let Decision::Acquire { record, create: true, replacing: None } = d else { panic!("{d:?}") };
        assert_eq!(record.holder(), Some(ME));
        assert_eq!(record.transitions, 0);
        assert_eq!(record.lease_duration, Some(Duration::from_secs(2)), "rounded up to whole seconds");
        assert_eq!(record.renew_time, Some(wall()));
        assert!(!d_answers(&record));

        let released = rec(None, 7);
        let d = s.decide(ME, &inputs(Some(&released), Some(ME), Some(0)), &cfg(), t0, wall());
        let Decision::Acquire { record, create: false, replacing: None } = d else { panic!("{d:?}") };
        assert_eq!(record.resource_version.as_deref(), Some("7"), "CAS on what was read");
        assert_eq!(record.transitions, 5);
    }

    fn d_answers(_: &LeaseRecord) -> bool {
        Decision::Acquire { record: LeaseRecord::default(), create: true, replacing: None }.answers()
    }

    #[test]
    fn fallback_candidates_wait_their_stagger() {
        let t0 = Instant::now();
        let mut s = AddressLease::new();
        let free = rec(None, 3);
        let i = inputs(Some(&free), Some("node-b"), Some(1));
        assert_eq!(
            s.decide(ME, &i, &cfg(), t0, wall()),
            Decision::Wait { until: Some(t0 + Duration::from_millis(400)) }
        );
        let later = t0 + Duration::from_millis(399);
        assert!(matches!(s.decide(ME, &i, &cfg(), later, wall()), Decision::Wait { .. }));
        let due = t0 + Duration::from_millis(400);
        assert!(matches!(s.decide(ME, &i, &cfg(), due, wall()), Decision::Acquire { .. }));
        assert_eq!(fallback_rank(&["node-b", "node-c", ME], Some("node-b"), ME), Some(1));
        assert_eq!(fallback_rank(&["node-b", "node-c"], Some("node-b"), ME), None);
    }

    #[test]
    fn a_valid_holder_is_left_alone_and_nobody_writes() {
        let t0 = Instant::now();
        let theirs = rec(Some("node-b"), 9);
        let mut s = AddressLease::new();
        for step in 0..100u64 {
            let d = s.decide(
                ME,
                &inputs(Some(&theirs), Some(ME), Some(0)),
                &cfg(),
                t0 + Duration::from_secs(step),
                wall(),
            );
            assert_eq!(d, Decision::Wait { until: None });
        }
        let ours = rec(Some(ME), 9);
        let mut s = AddressLease::new();
        for step in 0..100u64 {
            let d = s.decide(
                ME,
                &inputs(Some(&ours), Some(ME), Some(0)),
                &cfg(),
                t0 + Duration::from_secs(step),
                wall(),
            );
            assert_eq!(d, Decision::Hold);
        }
    }

    #[test]
    fn gone_holders_are_replaced_and_notified() {
        let t0 = Instant::now();
        let theirs = rec(Some("node-b"), 9);
        for gone in [Gone::Dead, Gone::Disqualified(Rejection::NoUsableInterface), Gone::NodeDeleted] {
            let mut i = inputs(Some(&theirs), Some(ME), Some(0));
            i.holder = HolderStatus::Gone(gone);
            let d = AddressLease::new().decide(ME, &i, &cfg(), t0, wall());
            let Decision::Acquire { record, create: false, replacing } = d else { panic!("{d:?}") };
            assert_eq!(replacing.as_deref(), Some("node-b"));
            assert_eq!(record.holder(), Some(ME));
            assert_eq!(record.resource_version.as_deref(), Some("9"));
        }
    }

    #[test]
    fn holder_status_combines_liveness_and_candidacy() {
        let t0 = Instant::now();
        let up = Liveness::Alive { lease_valid: false, heard: true };
        let dead = Liveness::Dead { since: t0 };
        assert_eq!(HolderStatus::judge(up, None, true), HolderStatus::Valid);
        assert_eq!(
            HolderStatus::judge(up, Some(Rejection::NotReady), true),
            HolderStatus::Valid,
            "not ready: keep"
        );
        assert_eq!(
            HolderStatus::judge(up, Some(Rejection::NoUsableInterface), true),
            HolderStatus::Gone(Gone::Disqualified(Rejection::NoUsableInterface))
        );
        assert_eq!(HolderStatus::judge(dead, None, true), HolderStatus::Gone(Gone::Dead));
        assert_eq!(HolderStatus::judge(up, None, false), HolderStatus::Gone(Gone::NodeDeleted));
    }

    #[test]
    fn no_acquisition_without_own_heartbeat_or_while_the_ip_is_held_elsewhere() {
        let t0 = Instant::now();
        let mut i = inputs(None, Some(ME), Some(0));
        i.self_liveness.heartbeat_current = false;
        assert_eq!(AddressLease::new().decide(ME, &i, &cfg(), t0, wall()), Decision::Wait { until: None });
        let mut i = inputs(None, Some(ME), Some(0));
        i.ip_held_elsewhere = true;
        assert_eq!(AddressLease::new().decide(ME, &i, &cfg(), t0, wall()), Decision::Wait { until: None });
        // Not a candidate: never acquires.
        assert_eq!(
            AddressLease::new().decide(ME, &inputs(None, Some("node-b"), None), &cfg(), t0, wall()),
            Decision::Wait { until: None }
        );
    }

    #[test]
    fn holder_hands_over_to_a_settled_preferred_node() {
        let t0 = Instant::now();
        let ours = rec(Some(ME), 11);
        let mut s = AddressLease::new();
        let mut i = inputs(Some(&ours), Some("node-b"), Some(0));
        i.desired_ready_since = Some(t0);
        // Ready, but neither settled yet.
        assert_eq!(s.decide(ME, &i, &cfg(), t0, wall()), Decision::Hold);
        let t5 = t0 + Duration::from_secs(5);
        let d = s.decide(ME, &i, &cfg(), t5, wall());
        let Decision::HandOver { record, to } = d else { panic!("{d:?}") };
        assert_eq!(to.as_deref(), Some("node-b"));
        assert_eq!(record.holder(), Some("node-b"));
        assert_eq!(record.resource_version.as_deref(), Some("11"));
        assert_eq!(record.transitions, 5);
        // A node that only just got ready is not handed anything; but the hand-over may have been
        // written already: the holder answers again only after confirming the record by a write.
        let mut fresh = i;
        fresh.desired_ready_since = Some(t5);
        let d = s.decide(ME, &fresh, &cfg(), t5, wall());
        let Decision::Acquire { record, create: false, replacing: None } = d else { panic!("{d:?}") };
        assert_eq!((record.holder(), record.transitions), (Some(ME), 4));
        assert_eq!(record.resource_version.as_deref(), Some("11"));
        // Once a newer version names it (its confirming write), it holds again without writing.
        let newer = rec(Some(ME), 12);
        let mut confirmed = fresh;
        confirmed.lease = Some(&newer);
        assert_eq!(s.decide(ME, &confirmed, &cfg(), t5, wall()), Decision::Hold);
    }

    #[test]
    fn holder_that_is_no_longer_a_candidate_hands_over_at_once() {
        let t0 = Instant::now();
        let ours = rec(Some(ME), 11);
        let d =
            AddressLease::new().decide(ME, &inputs(Some(&ours), Some("node-b"), None), &cfg(), t0, wall());
        assert!(matches!(&d, Decision::HandOver { to: Some(to), .. } if to == "node-b"), "{d:?}");
        assert!(!d.answers() && d.writes());
        let d = AddressLease::new().decide(ME, &inputs(Some(&ours), None, None), &cfg(), t0, wall());
        let Decision::HandOver { record, to: None } = d else { panic!("{d:?}") };
        assert_eq!(record.holder(), None);
    }

    #[test]
    fn holder_stands_down_on_notice_or_when_not_vouched() {
        let t0 = Instant::now();
        let ours = rec(Some(ME), 11);
        let mut i = inputs(Some(&ours), Some(ME), Some(0));
        i.takeover_notice = true;
        assert_eq!(
            AddressLease::new().decide(ME, &i, &cfg(), t0, wall()),
            Decision::StandDown(StandDownReason::TakeoverNotice)
        );
        let mut i = inputs(Some(&ours), Some(ME), Some(0));
        i.self_liveness = SelfLiveness { heartbeat_current: false, peer_acked: false, api_peer_ready: false };
        assert_eq!(
            AddressLease::new().decide(ME, &i, &cfg(), t0, wall()),
            Decision::StandDown(StandDownReason::NotVouched)
        );
        // Vouched by peers while the API server is unreachable: keeps answering.
        i.self_liveness.peer_acked = true;
        assert_eq!(AddressLease::new().decide(ME, &i, &cfg(), t0, wall()), Decision::Hold);
        // Nobody else could take over: keeps answering.
        i.self_liveness.peer_acked = false;
        i.has_other_candidates = false;
        assert_eq!(AddressLease::new().decide(ME, &i, &cfg(), t0, wall()), Decision::Hold);
    }

    #[test]
    fn release_on_shutdown() {
        let ours = rec(Some(ME), 5);
        let r = release(ME, Some(&ours), Some("node-b"), &cfg(), wall()).unwrap();
        assert_eq!(r.holder(), Some("node-b"));
        let r = release(ME, Some(&ours), Some(ME), &cfg(), wall()).unwrap();
        assert_eq!(r.holder(), None, "never hand to ourselves");
        assert_eq!(r.transitions, 4);
        assert_eq!(release(ME, Some(&rec(Some("node-b"), 5)), None, &cfg(), wall()), None);
        assert_eq!(release(ME, None, None, &cfg(), wall()), None);
    }

    #[test]
    fn lease_objects_carry_names_labels_and_annotation() {
        let key = AddressKey::new(ServiceKey::new("default", "web"), "198.51.100.130".parse().unwrap());
        let o = lease_object(&key, rec(Some("node-a"), 1));
        assert_eq!(o.name, "ferrolb-l2-default-web-198-51-100-130");
        assert_eq!(o.labels["ferrolb.io/service-namespace"], "default");
        assert_eq!(o.labels["ferrolb.io/service-name"], "web");
        assert_eq!(o.annotations["ferrolb.io/heartbeat-lease"], "ferrolb-node-node-a");
        assert!(lease_object(&key, rec(None, 1)).annotations.is_empty());
    }

    fn status() -> impl Strategy<Value = HolderStatus> {
        prop_oneof![
            Just(HolderStatus::Valid),
            Just(HolderStatus::Gone(Gone::Dead)),
            Just(HolderStatus::Gone(Gone::NodeDeleted)),
            Just(HolderStatus::Gone(Gone::Disqualified(Rejection::NoLocalEndpoint))),
        ]
    }

    proptest! {
        /// Whatever the inputs: only a Lease naming this node lets it answer; a Lease validly held by
        /// another node is never written; a write is always conditioned on the version read.
        #[test]
        fn decisions_are_safe(
            holder in prop_oneof![Just(None), Just(Some(ME)), Just(Some("node-b")), Just(Some(""))],
            exists in any::<bool>(),
            st in status(),
            desired in prop_oneof![Just(None), Just(Some(ME)), Just(Some("node-b")), Just(Some("node-c"))],
            rank in proptest::option::of(0usize..4),
            hb in any::<bool>(), acked in any::<bool>(), others in any::<bool>(),
            notice in any::<bool>(), shared in any::<bool>(),
            ready_ago in proptest::option::of(0u64..10_000), steps in 1u64..20,
        ) {
            let t0 = Instant::now();
            let lease = rec(holder, 42);
            let lease_ref = exists.then_some(&lease);
            let i = Inputs {
                lease: lease_ref,
                holder: st,
                desired,
                desired_ready_since: ready_ago.map(|ms| t0.checked_sub(Duration::from_millis(ms)).unwrap_or(t0)),
                fallback_rank: rank,
                self_liveness: SelfLiveness { heartbeat_current: hb, peer_acked: acked, api_peer_ready: false },
                has_other_candidates: others,
                takeover_notice: notice,
                ip_held_elsewhere: shared,
            };
            let mut s = AddressLease::new();
            for step in 0..steps {
                let d = s.decide(ME, &i, &cfg(), t0 + Duration::from_millis(700 * step), wall());
                let ours = lease_ref.and_then(LeaseRecord::holder) == Some(ME);
                if d.answers() {
                    prop_assert!(ours);
                }
                let held_validly = lease_ref.and_then(LeaseRecord::holder).is_some_and(|h| h != ME) && st == HolderStatus::Valid;
                if held_validly {
                    prop_assert!(!d.writes());
                }
                match &d {
                    Decision::Acquire { record, create, .. } => {
                        prop_assert_eq!(*create, lease_ref.is_none());
                        prop_assert_eq!(record.holder(), Some(ME));
                        prop_assert_eq!(record.resource_version.is_some(), lease_ref.is_some());
                        prop_assert!(rank.is_some() && hb && !shared);
                    }
                    Decision::HandOver { record, to } => {
                        prop_assert!(ours);
                        prop_assert_eq!(record.holder(), to.as_deref());
                        prop_assert_ne!(to.as_deref(), Some(ME));
                        prop_assert_eq!(record.resource_version.as_deref(), Some("42"));
                    }
                    _ => {}
                }
            }
        }
    }
}
