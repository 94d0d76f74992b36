//! One round's inputs, read from the watch caches, the node heartbeat Leases and the peer channel
//! into the core's plain types ([`RoundInputs`]).

use crate::engine::Cluster;
use crate::liveness::PeerLiveness;
use crate::policy::PoolInput;

use super::*;

/// What one round read, owned (the core borrows it through [`Read::inputs`]).
pub(super) struct Read {
    pub(super) policies: Policies,
    /// The policy objects `policies` was compiled from: the status writer judges each policy's
    /// condition on the same version (a newer one read later would pair its status with the old
    /// version's problems).
    pub(super) policy_objects: Vec<Arc<L2AnnouncementPolicy>>,
    pub(super) services: Arc<Vec<Arc<ServiceInput>>>,
    pub(super) pools: Vec<PoolInput>,
    pub(super) endpoints: Arc<BTreeMap<ServiceKey, BTreeMap<String, LocalEndpoints>>>,
    pub(super) nodes: Vec<NodeState>,
    /// The peers' heartbeat addresses: their reported peer port on their first internal IP.
    pub(super) peers: BTreeMap<String, SocketAddr>,
    pub(super) liveness: BTreeMap<String, PeerLiveness>,
    pub(super) peer_api: BTreeMap<String, (bool, Instant)>,
    pub(super) acked_until: Option<Instant>,
    pub(super) heartbeat_current: bool,
    pub(super) own: Report,
    pub(super) heartbeat_seen: bool,
    /// This node holds the status writer Lease's claim ([`RoundInputs::writer`]).
    pub(super) writer: bool,
}

impl Read {
    pub(super) fn inputs(&self) -> RoundInputs<'_> {
        RoundInputs {
            cluster: Cluster {
                policies: &self.policies,
                services: &self.services,
                pools: &self.pools,
                nodes: &self.nodes,
                endpoints: &self.endpoints,
                liveness: &self.liveness,
            },
            peer_api: &self.peer_api,
            acked_until: self.acked_until,
            heartbeat_current: self.heartbeat_current,
            own: &self.own,
            heartbeat_seen: self.heartbeat_seen,
            writer: self.writer,
        }
    }
}

impl<N: Netlink + 'static> Announcer<N> {
    /// Reads one round's inputs.
    pub(super) fn read(&mut self, now: Instant) -> Read {
        let services =
            self.services.get(&self.stores.services, |e| e.values().map(|s| s.input.clone()).collect());
        let pools = self.stores.pools.state().iter().map(|p| convert::pool_input(p)).collect();
        let policy_objects = self.stores.policies.state();
        let policy_inputs: Vec<_> = policy_objects.iter().map(|p| convert::policy_input(p)).collect();
        let endpoints = self.endpoints.get(&self.stores.slices, |e| {
            let mut endpoints = BTreeMap::new();
            for slice in e.values() {
                convert::add_endpoints(slice, &mut endpoints);
            }
            endpoints
        });
        let mut read = Read {
            policies: Policies::compile(&policy_inputs),
            policy_objects,
            services,
            pools,
            endpoints,
            nodes: Vec::new(),
            peers: BTreeMap::new(),
            liveness: BTreeMap::new(),
            peer_api: BTreeMap::new(),
            acked_until: None,
            heartbeat_current: self.leadership.borrow().is_leader_at(now),
            own: self.own_report(),
            heartbeat_seen: self.heartbeats.get(&lease_names::node_heartbeat(self.this_node())).is_some(),
            writer: self.cluster.holds_at(now),
        };
        self.read_nodes(now, &mut read);
        read.acked_until =
            self.hub.as_ref().and_then(|hub| hub.acked_until(self.settings.engine.liveness.ack_timeout));
        read
    }

    /// This node's own report.
    fn own_report(&self) -> Report {
        Report {
            state: AnnouncerState {
                ready: self.core.lifecycle().reports_ready(),
                interfaces: self.links.values().map(Link::interface).collect(),
            },
            peer_port: self.hub.as_ref().map(|h| h.local_addr().port()),
        }
    }

    /// Every Node with its announcer's report, and every other node's liveness and peer address.
    fn read_nodes(&self, now: Instant, read: &mut Read) {
        let this_node = self.this_node();
        let node_objects = self.stores.nodes.state();
        let cfg = &self.settings.engine.liveness;
        let api_since = self.core.api_stable_since();
        read.nodes.reserve(node_objects.len());
        for node in &node_objects {
            let input = convert::node_input(node);
            let name = input.name.clone();
            if name == this_node {
                read.nodes.push(NodeState { node: input, announcer: Some(read.own.state.clone()) });
                continue;
            }
            let heartbeat = self.heartbeats.get(&lease_names::node_heartbeat(&name));
            let report =
                heartbeat.as_ref().and_then(|(_, report)| report.as_deref()).and_then(Report::decode);
            let port = report.as_ref().and_then(|r| r.peer_port);
            let hub = self.hub.as_ref();
            let peer_api = hub.and_then(|h| h.peer_api(&name));
            if let Some(api) = peer_api {
                read.peer_api.insert(name.clone(), api);
            }
            let liveness = PeerLiveness {
                heartbeat: heartbeat.map(|(o, _)| o),
                heard_at: hub.and_then(|h| h.heard_at(&name)),
                refused_at: hub.and_then(|h| h.refused_at(&name)),
                api_down_since: peer_api.and_then(|(ok, since)| (!ok).then_some(since)),
                quorum_silent_at: hub.and_then(|h| h.quorum_silent_at(&name, now)),
            };
            let member = crate::liveness::in_ring(&liveness, &name, now, cfg, api_since);
            if let (true, Some(port), Some(ip)) = (member, port, convert::internal_ips(node).first()) {
                read.peers.insert(name.clone(), SocketAddr::new(*ip, port));
            }
            read.liveness.insert(name, liveness);
            read.nodes.push(NodeState { node: input, announcer: report.map(|r| r.state) });
        }
    }
}
