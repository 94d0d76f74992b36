//! One node's announcer decisions over its whole view of the cluster, without I/O.
//!
//! Each round [`crate::round::Core`] builds a [`View`] (policies, Services, pools, Nodes with their
//! announcers' reports, endpoints, the per-address Lease records, every node's liveness) from what
//! the adapter read and asks [`Engine::decide`] for a [`Plan`]: which addresses to answer for and
//! on which interfaces, which Lease writes to make, and when to decide again. The steps, each a module of this crate:
//!
//! 1. [`Policies::announcements`]: every (Service, address) some policy selects;
//! 2. [`candidates_for`]: per announcement, the nodes that may announce it and why the others may not;
//! 3. [`place`]: per IP (Services sharing an IP are one unit, with the intersection of their
//!    candidates), the balanced, sticky choice of node;
//! 4. [`AddressLease::decide`]: per (Service, address), this node's decision on its Lease.
//!
//! A node answers for an IP only while it holds the Lease of every Service announcing that IP, and
//! only on the interfaces every one of them may use on this node.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use ferrolb_api::ServedClasses;
use ferrolb_api::names::leases;
use ferrolb_runtime::election::LeaseRecord;
use jiff::Timestamp;

use crate::candidates::{Candidates, LocalEndpoints, NodeState, candidates_for};
use crate::lease_state::{
    AddressLease, Decision, HolderStatus, Inputs, LeaseConfig, LeaseObject, StandDownReason, fallback_rank,
    lease_object,
};
use crate::liveness::{Liveness, LivenessConfig, PeerLiveness, SelfLiveness};
use crate::placement::{Nodes, Slot, place, rendezvous_order};
use crate::policy::{AddressKey, Policies, PoolInput, ServiceInput, ServiceKey};

/// Fixed settings of one node's engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This node's name.
    pub this_node: String,
    pub lease: LeaseConfig,
    pub liveness: LivenessConfig,
    /// The load-balancer classes served (with or without Services that have no class).
    pub classes: ServedClasses,
}

/// The cluster as the adapter read it for one round: the watch caches and the peer channel.
#[derive(Debug, Clone, Copy)]
pub struct Cluster<'a> {
    pub policies: &'a Policies,
    /// Shared with the adapter's cache snapshot: a round copies no Service.
    pub services: &'a [Arc<ServiceInput>],
    pub pools: &'a [PoolInput],
    /// Every Node, with its announcer's report (this node's own from local facts).
    pub nodes: &'a [NodeState],
    /// Per Service, its endpoints per node name.
    pub endpoints: &'a BTreeMap<ServiceKey, BTreeMap<String, LocalEndpoints>>,
    /// The liveness of every other node.
    pub liveness: &'a BTreeMap<String, PeerLiveness>,
}

/// Everything one decision round looks at.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub cluster: Cluster<'a>,
    /// The per-address Leases, by name.
    pub leases: &'a BTreeMap<String, LeaseRecord>,
    /// Since when (local time) each node's announcer has reported itself ready.
    pub ready_since: &'a BTreeMap<String, Instant>,
    /// This node's own standing.
    pub self_liveness: SelfLiveness,
    /// Lease names for which a takeover notice arrived after the record now in `leases` was read.
    pub takeover_notices: &'a BTreeSet<String>,
    /// Since when this node has reached the API server without interruption (`None`: it does not).
    pub api_stable_since: Option<Instant>,
}

/// A Lease write the plan asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseWrite {
    pub key: AddressKey,
    /// The Lease's name.
    pub name: String,
    /// The record to write (its `resource_version`: the version this write replaces).
    pub record: LeaseRecord,
    /// Create (the Lease does not exist) rather than compare-and-swap update.
    pub create: bool,
    /// After a successful takeover from a live node: tell it (peer takeover notice).
    pub notify: Option<String>,
    /// A hand-over or release by the holder (as opposed to an acquisition).
    pub handover: bool,
    /// For an acquisition of a Lease another node held: since when this node saw it free (its
    /// holder gone or released), for the failover duration.
    pub free_since: Option<Instant>,
}

impl LeaseWrite {
    /// The Lease as plain data. Built only for writes that go out: a round over thousands of
    /// addresses may decide thousands of writes of which a bounded number start.
    pub fn object(&self) -> LeaseObject {
        lease_object(&self.key, self.record.clone())
    }
}

/// What this node knows about one announced address, for the gRPC table and Events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressStatus {
    pub key: AddressKey,
    /// Its Lease's name (built once per round, for the Lease clean-up and the table too).
    pub lease: String,
    /// The node holding its Lease, when that holder is valid (or is this node).
    pub holder: Option<String>,
    /// Whether this node answers for it now.
    pub answering: bool,
    /// Why this node, holding the Lease, does not answer for it now.
    pub stood_down: Option<StandDownReason>,
    /// The interfaces this node answers on (empty unless `answering`).
    pub interfaces: Vec<String>,
    /// Why no node can announce it (`None`: some can).
    pub why_none: Option<String>,
    /// The node placement chose.
    pub desired: Option<String>,
}

/// The outcome of one round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// IP -> the interfaces (by name, sorted, no duplicates) to answer ARP/NDP on. A list, not a
    /// set: a one-element `BTreeSet` allocates a whole B-tree node (about 300 bytes), and every
    /// round builds this for every address answered (3 MB of each round's transient at 10,000).
    pub answer: BTreeMap<IpAddr, Vec<String>>,
    pub writes: Vec<LeaseWrite>,
    /// Decide again at this time at the latest (an input may change sooner).
    pub wake_at: Option<Instant>,
    /// Every announced address, in key order.
    pub addresses: Vec<AddressStatus>,
}

impl Plan {
    /// The status of the address `key` (`addresses` is in key order).
    pub fn status(&self, key: &AddressKey) -> Option<&AddressStatus> {
        self.addresses.binary_search_by(|a| a.key.cmp(key)).ok().map(|i| &self.addresses[i])
    }
}

/// The per-address decision state of one node.
#[derive(Debug)]
pub struct Engine {
    cfg: EngineConfig,
    state: HashMap<AddressKey, AddressLease>,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        Self { cfg, state: HashMap::new() }
    }

    /// This engine's settings.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Decides everything for one round (see the module documentation).
    pub fn decide(&mut self, view: &View<'_>, now: Instant, wall: Timestamp) -> Plan {
        let cfg = self.cfg.clone();
        let this_node = cfg.this_node.as_str();
        let anns =
            view.cluster.policies.announcements(view.cluster.services, view.cluster.pools, &cfg.classes);
        let liveness_of = |node: &str| {
            view.cluster.liveness.get(node).map_or(Liveness::Dead { since: now }, |p| {
                p.liveness_seen_by(node, now, &cfg.liveness, view.api_stable_since)
            })
        };
        // A node judged dead takes no addresses, whatever its last report said: placement must not
        // choose it, or the nodes that can take over would wait for their fallback stagger.
        let nodes: Vec<NodeState> = view
            .cluster
            .nodes
            .iter()
            .map(|n| {
                let mut n = n.clone();
                if n.node.name != this_node && !liveness_of(&n.node.name).is_alive() {
                    n.announcer = None;
                }
                n
            })
            .collect();
        let no_endpoints = BTreeMap::new();
        let cands: Vec<Candidates> = anns
            .iter()
            .map(|a| {
                let eps = view.cluster.endpoints.get(&a.key.service).unwrap_or(&no_endpoints);
                candidates_for(view.cluster.policies, a, &nodes, eps)
            })
            .collect();
        let table = Nodes::new(nodes.iter().map(|n| n.node.name.clone()));
        let mut lease_names: Vec<String> = anns
            .iter()
            .map(|a| leases::service_address(&a.key.service.namespace, &a.key.service.name, a.key.address))
            .collect();
        let holders: Vec<Option<&str>> =
            lease_names.iter().map(|n| view.leases.get(n).and_then(LeaseRecord::holder)).collect();
        let judge = |holder: &str, c: &Candidates| -> HolderStatus {
            let exists = nodes.iter().any(|n| n.node.name == holder);
            HolderStatus::judge(liveness_of(holder), c.rejection(holder), exists)
        };
        let valid_holder = |i: usize| -> Option<&str> {
            let h = holders[i]?;
            (h == this_node || judge(h, &cands[i]) == HolderStatus::Valid).then_some(h)
        };

        // One placement slot per IP: Services sharing an IP are placed together.
        let mut by_ip: BTreeMap<IpAddr, Vec<usize>> = BTreeMap::new();
        for (i, a) in anns.iter().enumerate() {
            by_ip.entry(a.key.address).or_default().push(i);
        }
        let mut slots = Vec::with_capacity(by_ip.len());
        let mut slot_candidates: Vec<Vec<&str>> = Vec::with_capacity(by_ip.len());
        for (ip, members) in &by_ip {
            // Candidate names are sorted and unique: the intersection keeps that order.
            let mut common: Option<Vec<&str>> = None;
            for &i in members {
                let names = cands[i].names();
                common = Some(match common {
                    None => names,
                    Some(c) => c.into_iter().filter(|n| names.binary_search(n).is_ok()).collect(),
                });
            }
            let common: Vec<&str> = common.unwrap_or_default();
            let mut ids = table.ids(common.iter().copied());
            ids.sort_unstable();
            let holder = members
                .iter()
                .find_map(|&i| valid_holder(i))
                .filter(|h| common.contains(h))
                .and_then(|h| table.id(h));
            slots.push(Slot {
                address: *ip,
                services: members.iter().map(|&i| anns[i].key.service.clone()).collect(),
                candidates: ids,
                holder,
            });
            slot_candidates.push(common);
        }
        let placed = place(&table, &slots);

        let mut plan = Plan::default();
        let wake = |t: Instant, plan: &mut Plan| {
            if t > now {
                plan.wake_at = Some(plan.wake_at.map_or(t, |w| w.min(t)));
            }
        };
        let mut keep = BTreeSet::new();
        for (slot_index, (ip, members)) in by_ip.iter().enumerate() {
            let desired = placed[slot_index].map(|id| table.name(id).to_owned());
            let common = &slot_candidates[slot_index];
            let ids = &slots[slot_index].candidates;
            let order: Vec<&str> =
                rendezvous_order(&table, *ip, ids).into_iter().map(|id| table.name(id)).collect();
            let has_other = common.iter().any(|c| *c != this_node);
            let mut all_hold = true;
            let mut ifaces: Option<Vec<&str>> = None;
            let mut statuses = Vec::with_capacity(members.len());
            for &i in members {
                let ann = &anns[i];
                keep.insert(ann.key.clone());
                let lease = view.leases.get(&lease_names[i]);
                let holder_status = match holders[i] {
                    Some(h) if h != this_node => judge(h, &cands[i]),
                    _ => HolderStatus::Valid,
                };
                if let (Some(h), HolderStatus::Valid) = (holders[i], holder_status)
                    && h != this_node
                    && let Some(p) = view.cluster.liveness.get(h)
                {
                    // While the holder is heard, its silence is reported by the peer channel (which
                    // wakes the loop); only an unheard holder needs a timer, at its heartbeat
                    // Lease's expiry. Waking at every moving deadline would cost a round per
                    // heartbeat.
                    let heard = p.heard_until(&cfg.liveness).is_some_and(|t| t > now);
                    let dead = if heard { None } else { p.dead_since(h, &cfg.liveness) };
                    for at in
                        [dead, p.cut_off_at(h, &cfg.liveness, view.api_stable_since)].into_iter().flatten()
                    {
                        wake(at, &mut plan);
                    }
                }
                let ip_held_elsewhere = members.iter().filter(|&&j| j != i).any(|&j| {
                    holders[j].is_some_and(|h| h != this_node && judge(h, &cands[j]) == HolderStatus::Valid)
                });
                let inputs = Inputs {
                    lease,
                    holder: holder_status,
                    desired: desired.as_deref(),
                    desired_ready_since: desired.as_ref().and_then(|d| view.ready_since.get(d)).copied(),
                    fallback_rank: fallback_rank(&order, desired.as_deref(), this_node),
                    self_liveness: view.self_liveness,
                    has_other_candidates: has_other,
                    takeover_notice: view.takeover_notices.contains(&lease_names[i]),
                    ip_held_elsewhere,
                };
                let state = self.state.entry(ann.key.clone()).or_default();
                let decision = state.decide(this_node, &inputs, &cfg.lease, now, wall);
                if let Some(d) = desired.as_deref()
                    && d != this_node
                    && holders[i] == Some(this_node)
                    && let Some(since) = inputs.desired_ready_since
                {
                    // A hand-over to a returning node waits until both it has been ready and this
                    // node has held the Lease for the settle time: decide again then (nothing else
                    // may happen to wake the loop).
                    let held = state.held_since().unwrap_or(now);
                    wake(since.max(held) + cfg.lease.handover_settle, &mut plan);
                }
                let mut answering = false;
                let mut stood_down = None;
                match decision {
                    Decision::Hold => answering = true,
                    Decision::Acquire { record, create, replacing } => plan.writes.push(LeaseWrite {
                        key: ann.key.clone(),
                        name: lease_names[i].clone(),
                        record,
                        create,
                        notify: replacing,
                        handover: false,
                        free_since: if create { None } else { state.free_since() },
                    }),
                    Decision::HandOver { record, .. } => plan.writes.push(LeaseWrite {
                        key: ann.key.clone(),
                        name: lease_names[i].clone(),
                        record,
                        create: false,
                        notify: None,
                        handover: true,
                        free_since: None,
                    }),
                    Decision::StandDown(reason) => stood_down = Some(reason),
                    Decision::Wait { until } => {
                        if let Some(t) = until {
                            wake(t, &mut plan);
                        }
                    }
                }
                let mut mine: Vec<&str> = cands[i]
                    .nodes
                    .iter()
                    .find(|c| c.node == this_node)
                    .map(|c| c.interfaces.clone())
                    .unwrap_or_default();
                mine.sort_unstable();
                mine.dedup();
                all_hold &= answering;
                ifaces = Some(match ifaces {
                    None => mine,
                    Some(s) => s.into_iter().filter(|x| mine.binary_search(x).is_ok()).collect(),
                });
                let holder =
                    if answering { Some(this_node.to_owned()) } else { valid_holder(i).map(str::to_owned) };
                statuses.push(AddressStatus {
                    key: ann.key.clone(),
                    lease: std::mem::take(&mut lease_names[i]),
                    holder,
                    answering,
                    stood_down,
                    interfaces: Vec::new(),
                    why_none: cands[i].why_none(),
                    desired: desired.clone(),
                });
            }
            let ifaces = ifaces.unwrap_or_default();
            if all_hold && !ifaces.is_empty() {
                let ifaces: Vec<String> = ifaces.into_iter().map(str::to_owned).collect();
                for s in &mut statuses {
                    s.interfaces = ifaces.clone();
                }
                plan.answer.insert(*ip, ifaces);
            } else {
                for s in &mut statuses {
                    s.answering = false;
                    if s.holder.as_deref() == Some(this_node) {
                        s.holder = None;
                    }
                }
            }
            plan.addresses.extend(statuses);
        }
        self.state.retain(|k, _| keep.contains(k));
        plan.addresses.sort_by(|a, b| a.key.cmp(&b.key));
        plan
    }

    /// Forgets the decision state of every address (after this node stops being ready).
    pub fn reset(&mut self) {
        self.state.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candidates::AnnouncerState;
    use crate::interface::Interface;
    use crate::policy::{NodeInput, PolicyInput};
    use ferrolb_api::L2AnnouncementPolicySpec;
    use ferrolb_runtime::election::Observed;
    use std::time::Duration;

    fn cfg(this_node: &str) -> EngineConfig {
        EngineConfig {
            this_node: this_node.into(),
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
        }
    }

    fn node(name: &str) -> NodeState {
        NodeState {
            node: NodeInput { name: name.into(), ..Default::default() },
            announcer: Some(AnnouncerState { ready: true, interfaces: vec![Interface::device("eth0")] }),
        }
    }

    fn svc(name: &str, ips: &[&str]) -> ServiceInput {
        ServiceInput {
            key: ServiceKey::new("default", name).into(),
            ingress: ips.iter().map(|a| a.parse().unwrap()).collect(),
            ..Default::default()
        }
    }

    struct World {
        policies: Policies,
        services: Vec<Arc<ServiceInput>>,
        nodes: Vec<NodeState>,
        leases: BTreeMap<String, LeaseRecord>,
        liveness: BTreeMap<String, PeerLiveness>,
        ready_since: BTreeMap<String, Instant>,
        endpoints: BTreeMap<ServiceKey, BTreeMap<String, LocalEndpoints>>,
        notices: BTreeSet<String>,
        api_since: Instant,
    }

    impl World {
        fn new(nodes: &[&str], services: Vec<ServiceInput>, t0: Instant) -> Self {
            let policies = Policies::compile(&[PolicyInput {
                name: "all".into(),
                spec: L2AnnouncementPolicySpec { load_balancer_ips: true, ..Default::default() },
            }]);
            let heard = |_: &&str| PeerLiveness {
                heartbeat: None,
                heard_at: Some(t0),
                refused_at: None,
                api_down_since: None,
                quorum_silent_at: None,
            };
            Self {
                policies,
                services: services.into_iter().map(Arc::new).collect(),
                nodes: nodes.iter().map(|n| node(n)).collect(),
                leases: BTreeMap::new(),
                liveness: nodes.iter().map(|n| (n.to_string(), heard(n))).collect(),
                ready_since: nodes.iter().map(|n| (n.to_string(), t0)).collect(),
                endpoints: BTreeMap::new(),
                notices: BTreeSet::new(),
                api_since: t0,
            }
        }

        fn view(&self) -> View<'_> {
            View {
                cluster: Cluster {
                    policies: &self.policies,
                    services: &self.services,
                    pools: &[],
                    nodes: &self.nodes,
                    endpoints: &self.endpoints,
                    liveness: &self.liveness,
                },
                leases: &self.leases,
                ready_since: &self.ready_since,
                self_liveness: SelfLiveness {
                    heartbeat_current: true,
                    peer_acked: true,
                    api_peer_ready: false,
                },
                takeover_notices: &self.notices,
                api_stable_since: Some(self.api_since),
            }
        }

        /// Applies a plan's writes as the API server would (no conflicts in this model).
        fn commit(&mut self, plan: &Plan, rv: &mut u64) {
            for w in &plan.writes {
                *rv += 1;
                let mut record = w.record.clone();
                record.resource_version = Some(rv.to_string());
                self.leases.insert(w.name.clone(), record);
            }
        }
    }

    fn wall() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    /// Runs every node's engine until no node writes; returns who answers each IP.
    fn converge(
        world: &mut World,
        engines: &mut BTreeMap<String, Engine>,
        now: Instant,
    ) -> BTreeMap<IpAddr, String> {
        let mut rv = 1000;
        for _ in 0..10 {
            let mut wrote = false;
            for engine in engines.values_mut() {
                let plan = engine.decide(&world.view(), now, wall());
                wrote |= !plan.writes.is_empty();
                world.commit(&plan, &mut rv);
            }
            if !wrote {
                break;
            }
        }
        let mut answering = BTreeMap::new();
        for (name, engine) in engines.iter_mut() {
            let plan = engine.decide(&world.view(), now, wall());
            assert!(plan.writes.is_empty(), "{name} still writes after convergence: {:?}", plan.writes);
            for ip in plan.answer.keys() {
                let prev = answering.insert(*ip, name.clone());
                assert!(prev.is_none(), "{ip} answered by {prev:?} and {name}");
            }
        }
        answering
    }

    fn engines(nodes: &[&str]) -> BTreeMap<String, Engine> {
        nodes.iter().map(|n| (n.to_string(), Engine::new(cfg(n)))).collect()
    }

    /// Two nodes, one Service with one address, converged at `t0`: the world, the engines, the
    /// holder and the other node.
    fn one_address_held(t0: Instant) -> (World, BTreeMap<String, Engine>, String, String) {
        let nodes = ["node1", "node2"];
        let mut world = World::new(&nodes, vec![svc("web", &["198.51.100.128"])], t0);
        let mut engines = engines(&nodes);
        let before = converge(&mut world, &mut engines, t0);
        let holder = before[&"198.51.100.128".parse::<IpAddr>().unwrap()].clone();
        let other = nodes.iter().find(|n| **n != holder).unwrap().to_string();
        (world, engines, holder, other)
    }

    #[test]
    fn every_address_gets_exactly_one_answering_node_and_leaders_spread() {
        let t0 = Instant::now();
        let nodes = ["node1", "node2", "node3"];
        let services: Vec<ServiceInput> =
            (0..9).map(|i| svc(&format!("s{i}"), &[&format!("198.51.100.{}", 130 + i)])).collect();
        let mut world = World::new(&nodes, services, t0);
        let mut engines = engines(&nodes);
        let answering = converge(&mut world, &mut engines, t0);
        assert_eq!(answering.len(), 9);
        let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
        for n in answering.values() {
            *per_node.entry(n.as_str()).or_default() += 1;
        }
        assert_eq!(per_node.values().copied().collect::<Vec<_>>(), vec![3, 3, 3], "{per_node:?}");
        // Steady state: nobody writes.
        for engine in engines.values_mut() {
            assert!(engine.decide(&world.view(), t0 + Duration::from_millis(300), wall()).writes.is_empty());
        }
    }

    /// A Service of a class not served gets no Lease and no answer, on any node; serving the
    /// class (`--load-balancer-classes`) makes it announced like any other.
    #[test]
    fn only_served_classes_get_leases() {
        let t0 = Instant::now();
        let nodes = ["node1", "node2"];
        let mut ingress = svc("ingress", &["198.51.100.140"]);
        ingress.load_balancer_class = Some("ingress".into());
        let mut foreign = svc("foreign", &["198.51.100.141"]);
        foreign.load_balancer_class = Some("example.com/other".into());
        let plain = svc("plain", &["198.51.100.142"]);
        let mut world = World::new(&nodes, vec![ingress, foreign, plain], t0);
        let answering = converge(&mut world, &mut engines(&nodes), t0);
        let ips = |m: &BTreeMap<IpAddr, String>| m.keys().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(ips(&answering), ["198.51.100.142"], "only the class-less Service by default");
        assert_eq!(world.leases.len(), 1, "{:?}", world.leases.keys());

        let mut world = World::new(&nodes, world.services.iter().map(|s| (**s).clone()).collect(), t0);
        let mut serving: BTreeMap<String, Engine> = nodes
            .iter()
            .map(|n| {
                let cfg = EngineConfig { classes: ServedClasses::new(true, ["ingress"]), ..cfg(n) };
                (n.to_string(), Engine::new(cfg))
            })
            .collect();
        let answering = converge(&mut world, &mut serving, t0);
        assert_eq!(ips(&answering), ["198.51.100.140", "198.51.100.142"]);
        assert!(
            world.leases.keys().all(|l| !l.contains("foreign")),
            "a Lease for the foreign class: {:?}",
            world.leases.keys()
        );
        assert_eq!(world.leases.len(), 2, "{:?}", world.leases.keys());
    }

    #[test]
    fn a_dead_holder_is_replaced_and_a_live_one_is_not() {
        let t0 = Instant::now();
        let (world, mut engines, holder, other) = one_address_held(t0);
        let ip: IpAddr = "198.51.100.128".parse().unwrap();
        // Still heard: nobody moves, even long after.
        let later = t0 + Duration::from_millis(300);
        let plan = engines.get_mut(&other).unwrap().decide(&world.view(), later, wall());
        assert!(plan.writes.is_empty() && !plan.answer.contains_key(&ip));
        assert_eq!(plan.wake_at, None, "a heard holder's silence is reported by the peer channel");
        // Silent past the peer timeout and no heartbeat Lease: dead, replaced at once.
        let dead = t0 + Duration::from_millis(600);
        let plan = engines.get_mut(&other).unwrap().decide(&world.view(), dead, wall());
        assert_eq!(plan.writes.len(), 1);
        let w = &plan.writes[0];
        assert_eq!(w.record.holder(), Some(other.as_str()));
        assert_eq!(w.notify.as_deref(), Some(holder.as_str()), "the old holder is told");
        assert!(!w.create);
    }

    #[test]
    fn a_valid_heartbeat_lease_keeps_a_silent_holder() {
        let t0 = Instant::now();
        let (mut world, mut engines, holder, other) = one_address_held(t0);
        let hb = LeaseRecord {
            holder: Some(holder.clone()),
            lease_duration: Some(Duration::from_secs(3)),
            resource_version: Some("7".into()),
            ..Default::default()
        };
        world.liveness.get_mut(&holder).unwrap().heartbeat = Some(Observed::note(None, hb, t0));
        let plan =
            engines.get_mut(&other).unwrap().decide(&world.view(), t0 + Duration::from_secs(2), wall());
        assert!(plan.writes.is_empty(), "peer silence alone is not death");
        let plan =
            engines.get_mut(&other).unwrap().decide(&world.view(), t0 + Duration::from_secs(4), wall());
        assert_eq!(plan.writes.len(), 1);
    }

    #[test]
    fn a_holder_not_vouched_for_stands_down_and_says_why() {
        let t0 = Instant::now();
        let (mut world, mut engines, holder, _) = one_address_held(t0);
        let mut view = world.view();
        view.self_liveness =
            SelfLiveness { heartbeat_current: false, peer_acked: false, api_peer_ready: false };
        let plan = engines.get_mut(&holder).unwrap().decide(&view, t0, wall());
        assert!(plan.answer.is_empty(), "a holder nobody vouches for is silent");
        assert!(plan.writes.is_empty(), "and keeps the Lease");
        let status = &plan.addresses[0];
        assert!(!status.answering);
        assert_eq!(status.stood_down, Some(StandDownReason::NotVouched));
        // Vouched for again: it answers once a write of the same record confirms it still holds it.
        let plan = engines.get_mut(&holder).unwrap().decide(&world.view(), t0, wall());
        assert_eq!(plan.addresses[0].stood_down, None);
        assert_eq!(plan.writes.len(), 1);
        assert_eq!(plan.writes[0].record.holder(), Some(holder.as_str()));
        let mut rv = 100;
        world.commit(&plan, &mut rv);
        let plan = engines.get_mut(&holder).unwrap().decide(&world.view(), t0, wall());
        assert!(plan.addresses[0].answering);
    }

    #[test]
    fn the_holder_hands_over_when_its_link_goes_down() {
        let t0 = Instant::now();
        let (mut world, mut engines, holder, other) = one_address_held(t0);
        let state = world.nodes.iter_mut().find(|n| n.node.name == holder).unwrap();
        state.announcer.as_mut().unwrap().interfaces = vec![Interface::device("eth0").with_up(false)];
        let plan = engines.get_mut(&holder).unwrap().decide(&world.view(), t0, wall());
        assert!(plan.answer.is_empty(), "stops answering before the write");
        assert_eq!(plan.writes.len(), 1);
        assert!(plan.writes[0].handover);
        assert_eq!(plan.writes[0].record.holder(), Some(other.as_str()));
        let after = converge(&mut world, &mut engines, t0);
        assert_eq!(after.values().next(), Some(&other));
    }

    #[test]
    fn shared_ip_is_one_unit_and_answered_only_when_every_lease_is_held() {
        let t0 = Instant::now();
        let nodes = ["node1", "node2", "node3"];
        let services = vec![svc("a", &["198.51.100.128"]), svc("b", &["198.51.100.128"])];
        let mut world = World::new(&nodes, services, t0);
        let mut engines = engines(&nodes);
        let answering = converge(&mut world, &mut engines, t0);
        assert_eq!(answering.len(), 1);
        let holder = answering.values().next().unwrap();
        let holders: BTreeSet<&str> = world.leases.values().filter_map(LeaseRecord::holder).collect();
        assert_eq!(holders, BTreeSet::from([holder.as_str()]), "both Leases on one node");
    }

    #[test]
    fn a_hand_over_waits_for_both_sides_to_settle_and_says_when() {
        let t0 = Instant::now();
        let settle = Duration::from_secs(5);
        let nodes = ["node1", "node2"];
        let services = vec![svc("a", &["198.51.100.128"]), svc("b", &["198.51.100.129"])];
        let t1 = t0 + Duration::from_secs(3);
        let mut world = World::new(&nodes, services, t1);
        // node2 won both Leases in a start-up race; node1 has been ready since t0.
        for since in world.ready_since.values_mut() {
            *since = t0;
        }
        for (name, ip) in [("a", "198.51.100.128"), ("b", "198.51.100.129")] {
            let record = LeaseRecord {
                holder: Some("node2".into()),
                lease_duration: Some(Duration::from_secs(15)),
                resource_version: Some("1".into()),
                ..Default::default()
            };
            world.leases.insert(leases::service_address("default", name, ip.parse().unwrap()), record);
        }
        let mut node2 = Engine::new(cfg("node2"));
        let plan = node2.decide(&world.view(), t1, wall());
        assert!(plan.writes.is_empty(), "node2 has held nothing for the settle time yet");
        assert_eq!(plan.answer.len(), 2);
        assert_eq!(plan.wake_at, Some(t1 + settle), "decide again when node2 has held for the settle time");
        for peer in world.liveness.values_mut() {
            peer.heard_at = Some(t1 + settle);
        }
        let plan = node2.decide(&world.view(), t1 + settle, wall());
        assert_eq!(plan.writes.len(), 1, "{:?}", plan.writes);
        assert!(plan.writes[0].handover);
        assert_eq!(plan.writes[0].record.holder(), Some("node1"));
    }

    #[test]
    fn ip_count_addresses_go_to_different_nodes() {
        let t0 = Instant::now();
        let nodes = ["node1", "node2", "node3"];
        let services = vec![svc("multi", &["198.51.100.128", "198.51.100.129", "198.51.100.130"])];
        let mut world = World::new(&nodes, services, t0);
        let mut engines = engines(&nodes);
        let answering = converge(&mut world, &mut engines, t0);
        let distinct: BTreeSet<&String> = answering.values().collect();
        assert_eq!(distinct.len(), 3, "{answering:?}");
    }

    #[test]
    fn no_candidates_is_explained() {
        let t0 = Instant::now();
        let mut world = World::new(&["node1"], vec![svc("web", &["198.51.100.128"])], t0);
        world.nodes[0].announcer.as_mut().unwrap().interfaces =
            vec![Interface::device("eth0").with_up(false)];
        let mut engine = Engine::new(cfg("node1"));
        let plan = engine.decide(&world.view(), t0, wall());
        assert!(plan.writes.is_empty() && plan.answer.is_empty());
        let why = plan.addresses[0].why_none.as_deref().unwrap();
        assert!(why.contains("no selected interface with link up"), "{why}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Whatever the numbers of nodes and Services, and whichever nodes die, the announcers
        /// converge to exactly one answering node per address, balanced within ±1, and a node's
        /// death moves only the addresses it held.
        #[test]
        fn converges_balanced_and_a_death_moves_only_its_addresses(
            n_nodes in 1usize..6,
            n_services in 0usize..40,
            victim in 0usize..6,
        ) {
            let t0 = Instant::now();
            let names: Vec<String> = (1..=n_nodes).map(|i| format!("node{i}")).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let services: Vec<ServiceInput> = (0..n_services)
                .map(|i| svc(&format!("s{i}"), &[&format!("198.51.100.{}", 128 + i)]))
                .collect();
            let mut world = World::new(&refs, services, t0);
            let mut engines = engines(&refs);
            let before = converge(&mut world, &mut engines, t0);
            proptest::prop_assert_eq!(before.len(), n_services);
            let mut load: BTreeMap<&str, usize> = refs.iter().map(|n| (*n, 0)).collect();
            for n in before.values() {
                *load.get_mut(n.as_str()).unwrap() += 1;
            }
            let (min, max) = (load.values().min().copied().unwrap(), load.values().max().copied().unwrap());
            proptest::prop_assert!(max - min <= 1, "unbalanced: {:?}", load);

            if n_nodes > 1 {
                let dead = names[victim % n_nodes].clone();
                engines.remove(&dead);
                // Silent for longer than the peer timeout, no heartbeat Lease: dead.
                let later = t0 + Duration::from_secs(1);
                for (n, l) in world.liveness.iter_mut() {
                    if *n != dead {
                        l.heard_at = Some(later);
                    }
                }
                let after = converge(&mut world, &mut engines, later);
                proptest::prop_assert_eq!(after.len(), n_services);
                for (ip, holder) in &before {
                    if *holder != dead {
                        proptest::prop_assert_eq!(&after[ip], holder, "{} moved without cause", ip);
                    } else {
                        proptest::prop_assert_ne!(&after[ip], &dead);
                    }
                }
            }
        }
    }
}
