//! One node's whole decision round, without I/O: everything the adapter must do after reading its
//! inputs, as plain data ([`Actions`]).
//!
//! [`Core`] keeps what lasts between rounds: the [`Engine`]'s per-address state, what this node
//! observed ([`Observer`]), its Lease writes ([`WriteBook`]), the Events it sent ([`EventBook`]) and
//! its phase ([`Lifecycle`]). Each round the adapter reads the caches, the heartbeat Leases and the
//! peer channel into [`RoundInputs`]; [`Core::round`] returns what to answer, which Lease writes
//! and deletes to start, which Events to send, how often to renew the heartbeat Lease and when to
//! decide again. The adapter carries them out in that order (stopping to answer comes before any
//! write, so a hand-over never answers twice) and reports each write's answer back
//! ([`Core::answered`]).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_runtime::election::LeaseRecord;
use jiff::Timestamp;

use crate::engine::{AddressStatus, Cluster, Engine, EngineConfig, LeaseWrite, View};
use crate::events::{EventBook, Note};
use crate::lease_writes::{Admission, Answer, WriteBook};
use crate::lifecycle::{Lifecycle, Stop};
use crate::observe::{Observer, Sight, earliest, heartbeat_period};
use crate::report::Report;

/// Fixed settings of one node's core.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub engine: EngineConfig,
    /// Least time between two Warning Events of one reason for one address.
    pub event_interval: Duration,
    /// The heartbeat Lease's configured retry period.
    pub heartbeat_retry: Duration,
    /// Whether the peer channel runs.
    pub peer_channel: bool,
}

/// What the adapter read for one round.
#[derive(Debug, Clone, Copy)]
pub struct RoundInputs<'a> {
    pub cluster: Cluster<'a>,
    /// Per peer, what it last reported about its own API access: (reaches it, since when).
    pub peer_api: &'a BTreeMap<String, (bool, Instant)>,
    /// Until when a majority of the cluster vouches for this node.
    pub acked_until: Option<Instant>,
    /// This node's heartbeat claim is current.
    pub heartbeat_current: bool,
    /// This node's own report, for its heartbeat Lease.
    pub own: &'a Report,
    /// The watch has shown this node's heartbeat Lease (its report can be patched onto it).
    pub heartbeat_seen: bool,
    /// This node holds the status writer Lease's claim now (`ferrolb-announcer-status`, checked
    /// with its expiry): it makes the writes one node makes for the cluster, the Warnings about
    /// addresses nobody can announce and the deletes of Leases nobody holds.
    pub writer: bool,
}

/// Everything one round asks of the adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actions {
    /// IP -> the interfaces (by name, sorted, no duplicates) to answer ARP/NDP on. Applied before
    /// any write.
    pub answer: BTreeMap<IpAddr, Vec<String>>,
    /// Lease writes to start now (each counts as in flight until [`Core::answered`]).
    pub writes: Vec<LeaseWrite>,
    /// Lease deletes to start now (name, version to condition on), in flight likewise.
    pub deletes: Vec<(String, Option<String>)>,
    /// Events to send.
    pub events: Vec<Note>,
    /// Every announced address, in key order (for the announcement table).
    pub addresses: Vec<AddressStatus>,
    /// The per-address Lease records the round read: the cache with this node's confirmed writes.
    pub leases: Arc<BTreeMap<String, LeaseRecord>>,
    /// How often to write the heartbeat Lease.
    pub heartbeat_period: Duration,
    /// Decide again at this time at the latest.
    pub wake_at: Option<Instant>,
    /// This node's report to patch onto its heartbeat Lease (encoded), when it changed; the result
    /// goes back through [`Core::report_published`].
    pub publish: Option<String>,
}

/// One node's decision state (see the module documentation).
#[derive(Debug)]
pub struct Core {
    cfg: CoreConfig,
    engine: Engine,
    observer: Observer,
    writes: WriteBook,
    events: EventBook,
    lifecycle: Lifecycle,
    /// This node's report as last published on its heartbeat Lease.
    published: Option<String>,
    /// A report patch is in flight.
    publishing: bool,
}

impl Core {
    /// A node started at `started`.
    pub fn new(cfg: CoreConfig, started: Instant) -> Self {
        let this_node = cfg.engine.this_node.clone();
        Self {
            engine: Engine::new(cfg.engine.clone()),
            observer: Observer::new(this_node.clone(), cfg.engine.liveness),
            writes: WriteBook::default(),
            events: EventBook::new(this_node, cfg.event_interval),
            lifecycle: Lifecycle::new(started, cfg.engine.liveness.peer_timeout),
            published: None,
            publishing: false,
            cfg,
        }
    }

    fn this_node(&self) -> &str {
        &self.cfg.engine.this_node
    }

    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    pub fn lifecycle_mut(&mut self) -> &mut Lifecycle {
        &mut self.lifecycle
    }

    /// The Events book, for Events decided outside rounds (delegate mode's warnings).
    pub fn events_mut(&mut self) -> &mut EventBook {
        &mut self.events
    }

    /// Since when this node has reached the API server without interruption ([`Observer`]).
    pub fn api_stable_since(&self) -> Option<Instant> {
        self.observer.api_stable_since()
    }

    /// An authenticated takeover notice for the Lease `name`, written over version `replaced`.
    pub fn takeover_notice(&mut self, name: String, replaced: String, now: Instant) {
        self.observer.takeover_notice(name, replaced, now);
    }

    /// The answer to a write or delete [`Actions`] asked for.
    pub fn answered(&mut self, name: String, pre_rv: Option<String>, answer: Answer, now: Instant) {
        self.writes.answered(name, pre_rv, answer, now);
    }

    /// The result of a report patch [`Actions::publish`] asked for (`None`: it failed, and is
    /// retried in a later round).
    pub fn report_published(&mut self, text: Option<String>) {
        self.publishing = false;
        if text.is_some() {
            self.published = text;
        }
    }

    /// The report to publish: only when it changed, one patch at a time.
    fn publish(&mut self, own: &Report, heartbeat_seen: bool) -> Option<String> {
        let text = own.encode();
        if self.publishing || self.published.as_deref() == Some(text.as_str()) || !heartbeat_seen {
            return None;
        }
        self.publishing = true;
        Some(text)
    }

    /// Decides one round over `input` and the watch cache's per-address Lease records `leases`.
    pub fn round(
        &mut self,
        input: &RoundInputs<'_>,
        leases: Arc<BTreeMap<String, LeaseRecord>>,
        now: Instant,
        wall: Timestamp,
    ) -> Actions {
        let leases = self.writes.overlay(leases);
        let sight = Sight {
            nodes: input.cluster.nodes,
            liveness: input.cluster.liveness,
            peer_api: input.peer_api,
            acked_until: input.acked_until,
            heartbeat_current: input.heartbeat_current,
            leases: &leases,
        };
        let standing = self.observer.observe(&sight, now);
        let view = View {
            cluster: input.cluster,
            leases: &leases,
            ready_since: self.observer.ready_since(),
            self_liveness: standing.self_liveness,
            takeover_notices: &standing.notices,
            api_stable_since: self.observer.api_stable_since(),
        };
        let mut plan = self.engine.decide(&view, now, wall);
        let mut retry = None;
        let mut writes = std::mem::take(&mut plan.writes);
        writes.retain(|w| {
            let current = leases.get(&w.name).and_then(|r| r.resource_version.as_ref());
            match self.writes.admit(&w.name, current, now) {
                Admission::Start => true,
                Admission::Busy => false,
                Admission::Blocked(until) => {
                    retry = earliest([retry, Some(until)]);
                    false
                }
            }
        });
        let this_node = self.cfg.engine.this_node.clone();
        let deletes = if self.lifecycle.is_stopping() {
            Vec::new()
        } else {
            self.writes.garbage(&plan, &leases, &this_node, input.writer)
        };
        let events = self.events.after_round(&plan, input.cluster.services, input.writer, now);
        Actions {
            answer: plan.answer,
            writes,
            deletes,
            events,
            addresses: plan.addresses,
            leases,
            heartbeat_period: heartbeat_period(
                input.cluster.nodes,
                self.cfg.peer_channel,
                self.cfg.heartbeat_retry,
            ),
            wake_at: earliest([plan.wake_at, standing.wake_at, retry]),
            publish: self.publish(input.own, input.heartbeat_seen),
        }
    }

    /// Whether a stopping loop ends, given the watch cache's per-address Lease records.
    pub fn stop_now(&mut self, leases: Arc<BTreeMap<String, LeaseRecord>>, now: Instant) -> Stop {
        if !self.lifecycle.is_stopping() {
            return Stop::No;
        }
        let this_node = self.this_node().to_owned();
        let held =
            self.writes.overlay(leases).values().filter(|r| r.holder() == Some(this_node.as_str())).count();
        self.lifecycle.stop_now(held, self.writes.idle(), now)
    }
}

#[cfg(test)]
mod tests {
    use ferrolb_api::{L2AnnouncementPolicySpec, ServedClasses};

    use super::*;
    use crate::candidates::{AnnouncerState, LocalEndpoints, NodeState};
    use crate::interface::Interface;
    use crate::lease_state::LeaseConfig;
    use crate::liveness::{LivenessConfig, PeerLiveness};
    use crate::policy::{NodeInput, Policies, PolicyInput, ServiceInput, ServiceKey};

    fn core_at(started: Instant) -> Core {
        let engine = EngineConfig {
            this_node: "node1".into(),
            lease: LeaseConfig {
                acquire_stagger: Duration::from_millis(200),
                handover_settle: Duration::from_secs(5),
                heartbeat_lease_duration: Duration::from_secs(3),
            },
            liveness: LivenessConfig {
                heartbeat_lease_duration: Duration::from_secs(3),
                peer_timeout: Duration::from_millis(500),
                ack_timeout: Duration::from_millis(400),
            },
            classes: ServedClasses::default(),
        };
        let cfg = CoreConfig {
            engine,
            event_interval: Duration::from_secs(60),
            heartbeat_retry: Duration::from_secs(2),
            peer_channel: false,
        };
        Core::new(cfg, started)
    }

    struct World {
        policies: Policies,
        services: Vec<Arc<ServiceInput>>,
        nodes: Vec<NodeState>,
        endpoints: BTreeMap<ServiceKey, BTreeMap<String, LocalEndpoints>>,
        liveness: BTreeMap<String, PeerLiveness>,
        peer_api: BTreeMap<String, (bool, Instant)>,
        own: Report,
    }

    impl World {
        fn new() -> Self {
            Self {
                policies: Policies::compile(&[PolicyInput {
                    name: "all".into(),
                    spec: L2AnnouncementPolicySpec { load_balancer_ips: true, ..Default::default() },
                }]),
                services: vec![Arc::new(ServiceInput {
                    key: ServiceKey::new("default", "web").into(),
                    ingress: vec!["198.51.100.128".parse().unwrap()],
                    ..Default::default()
                })],
                nodes: vec![NodeState {
                    node: NodeInput { name: "node1".into(), ..Default::default() },
                    announcer: Some(AnnouncerState {
                        ready: true,
                        interfaces: vec![Interface::device("eth0")],
                    }),
                }],
                endpoints: BTreeMap::new(),
                liveness: BTreeMap::new(),
                peer_api: BTreeMap::new(),
                own: Report::default(),
            }
        }

        fn inputs(&self) -> RoundInputs<'_> {
            RoundInputs {
                cluster: Cluster {
                    policies: &self.policies,
                    services: &self.services,
                    pools: &[],
                    nodes: &self.nodes,
                    endpoints: &self.endpoints,
                    liveness: &self.liveness,
                },
                peer_api: &self.peer_api,
                acked_until: None,
                heartbeat_current: true,
                own: &self.own,
                heartbeat_seen: true,
                writer: true,
            }
        }
    }

    fn wall() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    #[test]
    fn a_write_is_started_once_and_its_confirmation_is_answered_at_once() {
        let t0 = Instant::now();
        let world = World::new();
        let mut core = core_at(t0);
        let none = Arc::new(BTreeMap::new());
        let actions = core.round(&world.inputs(), none.clone(), t0, wall());
        assert_eq!(actions.writes.len(), 1, "{actions:?}");
        assert!(actions.writes[0].create && actions.answer.is_empty());
        assert_eq!(actions.heartbeat_period, Duration::from_secs(2));
        let again = core.round(&world.inputs(), none.clone(), t0, wall());
        assert!(again.writes.is_empty(), "in flight");

        let write = &actions.writes[0];
        let mut record = write.record.clone();
        record.resource_version = Some("1".into());
        core.answered(write.name.clone(), None, Answer::Written(record), t0);
        // The watch has not shown the Lease yet: the confirmed write is used.
        let actions = core.round(&world.inputs(), none, t0, wall());
        assert!(actions.writes.is_empty());
        assert_eq!(actions.answer.len(), 1);
        assert_eq!(actions.events.len(), 1, "Announcing");
        assert!(actions.leases.contains_key(&write.name));
    }

    #[test]
    fn a_failed_write_is_retried_after_its_backoff() {
        let t0 = Instant::now();
        let world = World::new();
        let mut core = core_at(t0);
        let none = Arc::new(BTreeMap::new());
        let actions = core.round(&world.inputs(), none.clone(), t0, wall());
        let name = actions.writes[0].name.clone();
        core.answered(name, None, Answer::Failed(ferrolb_runtime::api_error::ApiFailure::Conflict), t0);
        let actions = core.round(&world.inputs(), none.clone(), t0, wall());
        assert!(actions.writes.is_empty());
        let retry = t0 + crate::lease_writes::CONFLICT_BACKOFF;
        assert_eq!(actions.wake_at, Some(retry));
        assert_eq!(core.round(&world.inputs(), none, retry, wall()).writes.len(), 1);
    }

    #[test]
    fn leftover_leases_are_deleted_unless_stopping_and_stopping_waits_for_them() {
        let t0 = Instant::now();
        let world = World::new();
        let mut core = core_at(t0);
        let held = LeaseRecord {
            holder: Some("node1".into()),
            resource_version: Some("3".into()),
            ..Default::default()
        };
        let leases = Arc::new(BTreeMap::from([("ferrolb-l2-gone".to_owned(), held)]));
        core.lifecycle_mut().stop(t0, Duration::from_secs(10));
        assert!(core.round(&world.inputs(), leases.clone(), t0, wall()).deletes.is_empty());
        assert_eq!(core.stop_now(leases.clone(), t0), Stop::No, "still held");
        let mut core = core_at(t0);
        let actions = core.round(&world.inputs(), leases.clone(), t0, wall());
        assert_eq!(actions.deletes, [("ferrolb-l2-gone".to_owned(), Some("3".to_owned()))]);
        assert_eq!(core.stop_now(leases, t0), Stop::No, "not stopping");
    }

    /// Only the holder of the writer claim warns about addresses nobody can announce and deletes
    /// Leases nobody holds; a node's own garbage is its own to delete either way.
    #[test]
    fn cluster_wide_writes_only_with_the_writer_claim() {
        let t0 = Instant::now();
        let mut world = World::new();
        // The only node has no usable interface: nobody can announce the address.
        world.nodes[0].announcer = Some(AnnouncerState { ready: true, interfaces: Vec::new() });
        let record = |holder: Option<&str>, rv: &str| LeaseRecord {
            holder: holder.map(Into::into),
            resource_version: Some(rv.into()),
            ..Default::default()
        };
        let leases = Arc::new(BTreeMap::from([
            ("ferrolb-l2-unheld".to_owned(), record(None, "4")),
            ("ferrolb-l2-mine".to_owned(), record(Some("node1"), "5")),
        ]));
        let warnings =
            |a: &Actions| a.events.iter().filter(|n| n.severity == crate::events::Severity::Warning).count();

        let mut core = core_at(t0);
        let input = RoundInputs { writer: false, ..world.inputs() };
        let actions = core.round(&input, leases.clone(), t0, wall());
        assert_eq!(warnings(&actions), 0, "{actions:?}");
        assert_eq!(actions.deletes, [("ferrolb-l2-mine".to_owned(), Some("5".to_owned()))]);

        let mut core = core_at(t0);
        let actions = core.round(&world.inputs(), leases, t0, wall());
        assert_eq!(warnings(&actions), 1, "{actions:?}");
        let mut deletes = actions.deletes.clone();
        deletes.sort();
        assert_eq!(
            deletes,
            [
                ("ferrolb-l2-mine".to_owned(), Some("5".to_owned())),
                ("ferrolb-l2-unheld".to_owned(), Some("4".to_owned())),
            ]
        );
    }

    #[test]
    fn the_report_is_published_when_it_changes_one_patch_at_a_time() {
        let t0 = Instant::now();
        let mut world = World::new();
        let mut core = core_at(t0);
        let none = Arc::new(BTreeMap::new());
        let round =
            |core: &mut Core, world: &World| core.round(&world.inputs(), none.clone(), t0, wall()).publish;
        let first = round(&mut core, &world);
        assert_eq!(first, Some(world.own.encode()));
        assert_eq!(round(&mut core, &world), None, "in flight");
        core.report_published(None);
        assert_eq!(round(&mut core, &world), first, "failed: again");
        core.report_published(first.clone());
        assert_eq!(round(&mut core, &world), None, "published");
        world.own.peer_port = Some(7946);
        assert_eq!(round(&mut core, &world), Some(world.own.encode()), "changed");
    }

    #[test]
    fn no_report_before_the_heartbeat_lease_is_seen() {
        let t0 = Instant::now();
        let world = World::new();
        let mut core = core_at(t0);
        let input = RoundInputs { heartbeat_seen: false, ..world.inputs() };
        assert_eq!(core.round(&input, Arc::new(BTreeMap::new()), t0, wall()).publish, None);
    }
}
