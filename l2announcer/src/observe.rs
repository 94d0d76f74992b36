//! What one node keeps between decision rounds about what it observed, without I/O: since when each
//! node's announcer has been ready, since when this node has reached the API server, the takeover
//! notices that still stand, and from those this node's own standing for [`Engine::decide`].
//!
//! The adapter reads the caches, the heartbeat Leases and the peer channel into a [`Sight`] each
//! round; [`Observer::observe`] keeps the bookkeeping and says what the engine's
//! [`View`](crate::engine::View) needs beyond the sight itself ([`Standing`]).
//!
//! [`Engine::decide`]: crate::engine::Engine::decide

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use ferrolb_runtime::election::LeaseRecord;

use crate::candidates::NodeState;
use crate::liveness::{LivenessConfig, PeerLiveness, SelfLiveness, api_peer_ready, heartbeat_write_period};

/// How long an authenticated takeover notice stands without the Lease showing the new holder.
pub const NOTICE_TTL: Duration = Duration::from_secs(30);

/// What the adapter read for one round.
#[derive(Debug, Clone, Copy)]
pub struct Sight<'a> {
    /// Every Node, with its announcer's report (this node's own from local facts).
    pub nodes: &'a [NodeState],
    /// The liveness of every other node.
    pub liveness: &'a BTreeMap<String, PeerLiveness>,
    /// Per peer, what it last reported about its own API access: (reaches it, since when).
    pub peer_api: &'a BTreeMap<String, (bool, Instant)>,
    /// Until when a majority of the cluster vouches for this node (one peer in a two-node cluster).
    pub acked_until: Option<Instant>,
    /// This node's heartbeat claim is current.
    pub heartbeat_current: bool,
    /// The per-address Lease records (with this node's confirmed writes).
    pub leases: &'a BTreeMap<String, LeaseRecord>,
}

/// This node's standing for one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub self_liveness: SelfLiveness,
    /// The Lease names whose takeover notice still stands.
    pub notices: BTreeSet<String>,
    /// Cut off from the API server: decide again when a peer could take over, or when the peers'
    /// acknowledgements lapse (neither wakes the loop by itself; the lapse of this node's own claim
    /// does, through the elector).
    pub wake_at: Option<Instant>,
}

/// The bookkeeping of what one node observed, across rounds.
#[derive(Debug)]
pub struct Observer {
    this_node: String,
    liveness: LivenessConfig,
    ready_since: BTreeMap<String, Instant>,
    api_since: Option<Instant>,
    /// Lease name -> (resourceVersion the taker wrote over, received at).
    notices: HashMap<String, (String, Instant)>,
}

impl Observer {
    pub fn new(this_node: impl Into<String>, liveness: LivenessConfig) -> Self {
        Self {
            this_node: this_node.into(),
            liveness,
            ready_since: BTreeMap::new(),
            api_since: None,
            notices: HashMap::new(),
        }
    }

    /// An authenticated takeover notice for the Lease `name`, which the taker wrote over `replaced`.
    pub fn takeover_notice(&mut self, name: String, replaced: String, now: Instant) {
        self.notices.insert(name, (replaced, now));
    }

    /// Since when (local time) each node's announcer has reported itself ready.
    pub fn ready_since(&self) -> &BTreeMap<String, Instant> {
        &self.ready_since
    }

    /// Since when this node has reached the API server without interruption (its heartbeat claim
    /// current), for the cut-off rule.
    pub fn api_stable_since(&self) -> Option<Instant> {
        self.api_since
    }

    /// Takes one round's sight into the bookkeeping; this node's standing.
    pub fn observe(&mut self, sight: &Sight<'_>, now: Instant) -> Standing {
        let cfg = self.liveness;
        self.note_ready(sight.nodes, now);
        let notices = self.standing_notices(sight.leases, now);
        match (sight.heartbeat_current, self.api_since) {
            (true, None) => self.api_since = Some(now),
            (false, Some(_)) => self.api_since = None,
            _ => {}
        }
        // Peers heard now, with what they report about their API access.
        let heard = sight
            .liveness
            .iter()
            .filter(|(_, l)| l.heard_at.is_some_and(|t| now < t + cfg.peer_timeout))
            .filter_map(|(n, _)| sight.peer_api.get(n).copied());
        let api_peer_at = api_peer_ready(heard, &cfg);
        let self_liveness = SelfLiveness {
            api_peer_ready: api_peer_at.is_some_and(|t| now >= t),
            heartbeat_current: sight.heartbeat_current,
            peer_acked: sight.acked_until.is_some_and(|t| now < t),
        };
        let cut_off = |at: Option<Instant>| at.filter(|t| !sight.heartbeat_current && *t > now);
        let wake_at = earliest([cut_off(api_peer_at), cut_off(sight.acked_until)]);
        Standing { self_liveness, notices, wake_at }
    }

    fn note_ready(&mut self, nodes: &[NodeState], now: Instant) {
        for node in nodes {
            let name = &node.node.name;
            if node.announcer.as_ref().is_some_and(|a| a.ready) {
                self.ready_since.entry(name.clone()).or_insert(now);
            } else {
                self.ready_since.remove(name);
            }
        }
        let known: BTreeSet<&str> = nodes.iter().map(|n| n.node.name.as_str()).collect();
        self.ready_since.retain(|n, _| known.contains(n.as_str()));
    }

    /// A notice applies while this node's view of the Lease is the very version the takeover
    /// replaced: any other version is either the taker's write (then the Lease no longer names this
    /// node) or a later one, which the notice knew nothing about.
    fn standing_notices(&mut self, leases: &BTreeMap<String, LeaseRecord>, now: Instant) -> BTreeSet<String> {
        let this_node = self.this_node.as_str();
        self.notices.retain(|name, (replaced, at)| {
            now < *at + NOTICE_TTL
                && leases.get(name).is_some_and(|r| {
                    r.holder() == Some(this_node) && r.resource_version.as_ref() == Some(replaced)
                })
        });
        self.notices.keys().cloned().collect()
    }
}

/// The earliest of some times.
pub fn earliest(times: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
    times.into_iter().flatten().min()
}

/// How often this node writes its heartbeat Lease. Node death is the peer channel's to detect; without
/// it the heartbeat Lease is the only signal and keeps its configured pace.
pub fn heartbeat_period(nodes: &[NodeState], peer_channel: bool, retry: Duration) -> Duration {
    if peer_channel {
        heartbeat_write_period(nodes.iter().filter(|n| n.announcer.is_some()).count(), retry)
    } else {
        retry
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candidates::AnnouncerState;
    use crate::policy::NodeInput;

    fn cfg() -> LivenessConfig {
        LivenessConfig {
            heartbeat_lease_duration: Duration::from_secs(3),
            peer_timeout: Duration::from_millis(500),
            ack_timeout: Duration::from_millis(400),
        }
    }

    fn node(name: &str, ready: Option<bool>) -> NodeState {
        NodeState {
            node: NodeInput { name: name.into(), ..Default::default() },
            announcer: ready.map(|ready| AnnouncerState { ready, interfaces: Vec::new() }),
        }
    }

    fn sight<'a>(
        nodes: &'a [NodeState],
        liveness: &'a BTreeMap<String, PeerLiveness>,
        peer_api: &'a BTreeMap<String, (bool, Instant)>,
        leases: &'a BTreeMap<String, LeaseRecord>,
    ) -> Sight<'a> {
        Sight { nodes, liveness, peer_api, acked_until: None, heartbeat_current: true, leases }
    }

    #[test]
    fn ready_since_starts_at_the_first_ready_report_and_ends_with_it() {
        let t0 = Instant::now();
        let (none, api, leases) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        let mut o = Observer::new("a", cfg());
        let nodes = [node("a", Some(true)), node("b", Some(true)), node("c", Some(false)), node("d", None)];
        o.observe(&sight(&nodes, &none, &api, &leases), t0);
        let t1 = t0 + Duration::from_secs(1);
        o.observe(&sight(&nodes, &none, &api, &leases), t1);
        assert_eq!(o.ready_since().keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(o.ready_since()["b"], t0, "kept from the first ready report");
        // b stops being ready, a's Node goes away: both forgotten.
        let nodes = [node("b", Some(false)), node("c", Some(true))];
        o.observe(&sight(&nodes, &none, &api, &leases), t1);
        assert_eq!(o.ready_since().iter().collect::<Vec<_>>(), [(&"c".to_owned(), &t1)]);
    }

    #[test]
    fn api_stability_counts_from_the_first_current_claim_and_resets_on_a_lapse() {
        let t0 = Instant::now();
        let (none, api, leases) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        let mut o = Observer::new("a", cfg());
        let nodes = [node("a", Some(true))];
        let mut s = sight(&nodes, &none, &api, &leases);
        s.heartbeat_current = false;
        o.observe(&s, t0);
        assert_eq!(o.api_stable_since(), None);
        s.heartbeat_current = true;
        o.observe(&s, t0 + Duration::from_secs(1));
        o.observe(&s, t0 + Duration::from_secs(2));
        assert_eq!(o.api_stable_since(), Some(t0 + Duration::from_secs(1)));
        s.heartbeat_current = false;
        o.observe(&s, t0 + Duration::from_secs(3));
        assert_eq!(o.api_stable_since(), None);
    }

    #[test]
    fn a_notice_stands_only_on_the_version_it_replaced_and_for_its_ttl() {
        let t0 = Instant::now();
        let (none, api) = (BTreeMap::new(), BTreeMap::new());
        let held = |rv: &str| LeaseRecord {
            holder: Some("a".into()),
            resource_version: Some(rv.into()),
            ..Default::default()
        };
        let mut leases = BTreeMap::from([("l1".to_owned(), held("5")), ("l2".to_owned(), held("9"))]);
        let mut o = Observer::new("a", cfg());
        o.takeover_notice("l1".into(), "5".into(), t0);
        o.takeover_notice("l2".into(), "8".into(), t0);
        o.takeover_notice("l3".into(), "1".into(), t0);
        let s = o.observe(&sight(&[], &none, &api, &leases), t0);
        assert_eq!(s.notices, BTreeSet::from(["l1".to_owned()]), "other versions and unknown Leases drop");
        let s = o.observe(&sight(&[], &none, &api, &leases), t0 + NOTICE_TTL);
        assert!(s.notices.is_empty(), "expired");

        o.takeover_notice("l1".into(), "5".into(), t0);
        leases.insert("l1".into(), LeaseRecord { holder: Some("b".into()), ..held("6") });
        assert!(o.observe(&sight(&[], &none, &api, &leases), t0).notices.is_empty(), "the taker's write");
    }

    #[test]
    fn cut_off_from_the_api_a_node_wakes_when_a_peer_could_take_over_or_acks_lapse() {
        let t0 = Instant::now();
        let heard = |at| PeerLiveness { heard_at: Some(at), ..Default::default() };
        let liveness = BTreeMap::from([("b".to_owned(), heard(t0)), ("c".to_owned(), heard(t0))]);
        // b reaches the API server since t0; c does not; a silent peer would not count.
        let api = BTreeMap::from([("b".to_owned(), (true, t0)), ("c".to_owned(), (false, t0))]);
        let leases = BTreeMap::new();
        let nodes = [node("a", Some(true))];
        let mut o = Observer::new("a", cfg());
        let mut s = sight(&nodes, &liveness, &api, &leases);
        s.heartbeat_current = false;
        s.acked_until = Some(t0 + Duration::from_millis(400));
        let now = t0 + Duration::from_millis(100);
        let standing = o.observe(&s, now);
        let ready_at = t0 + Duration::from_millis(2500);
        assert_eq!(
            standing.self_liveness,
            SelfLiveness { heartbeat_current: false, peer_acked: true, api_peer_ready: false }
        );
        assert_eq!(standing.wake_at, Some(t0 + Duration::from_millis(400)));
        // Holding its claim, nothing to wake for.
        s.heartbeat_current = true;
        assert_eq!(o.observe(&s, now).wake_at, None);
        // b unheard: nobody can take over.
        s.heartbeat_current = false;
        s.acked_until = None;
        let late = t0 + Duration::from_millis(600);
        assert_eq!(o.observe(&s, late).wake_at, None);
        let liveness = BTreeMap::from([("b".to_owned(), heard(ready_at))]);
        let s = Sight { liveness: &liveness, ..s };
        let standing = o.observe(&s, ready_at);
        assert!(standing.self_liveness.api_peer_ready);
        assert_eq!(standing.wake_at, None, "the time has come");
    }

    #[test]
    fn the_heartbeat_slows_with_the_announcers_only_with_a_peer_channel() {
        let retry = Duration::from_secs(2);
        let nodes: Vec<NodeState> = (0..25).map(|i| node(&format!("n{i}"), Some(i % 2 == 0))).collect();
        assert_eq!(heartbeat_period(&nodes, false, retry), retry);
        assert_eq!(heartbeat_period(&nodes, true, retry), heartbeat_write_period(25, retry));
        assert_eq!(heartbeat_period(&nodes[..3], true, retry), heartbeat_write_period(3, retry));
    }
}
