//! What this node's BGP speaker should do, decided from the watch caches alone (no I/O): which
//! peers it opens sessions to, with which settings, and which prefixes it advertises to each.
//!
//! The rules (DESIGN.md §10, `docs/bgp.md`):
//! - **Sessions.** A valid `BGPPeer` whose `nodeSelectors` select this node gets a session. An
//!   invalid one gets none (its problems go to its `ferrolb.io/InvalidSpec` condition), and the
//!   other peers are unaffected. A peer that names a `BFDProfile` that is missing or invalid still
//!   gets its session, without BFD, and the session's status says why.
//! - **Prefixes.** A served Service's address is advertised to a peer when some valid
//!   `BGPAdvertisement` selects the Service (labels and the pseudo-labels of [`crate::policy`]),
//!   the address's pool (`poolSelector`; an address whose pool is unknown only by an
//!   advertisement without one), this node (`nodeSelectors`) and the peer (`peers`), and the
//!   peer's `addressFamilies` include the address's family. The prefix is the address cut to the
//!   advertisement's aggregation length.
//! - **Several advertisements for one prefix and peer**: one route, with the union of their
//!   communities and the highest `localPref` (a router sees one path per node, never two).
//! - **Which nodes advertise** (every node decides for itself; no Lease, so API writes do not grow
//!   with the Services): every node for `externalTrafficPolicy: Cluster`; for `Local`, only a node
//!   with a ready endpoint of the Service, so the last local endpoint going withdraws the prefix.
//!   A node that is excluded (`node.kubernetes.io/exclude-from-external-load-balancers`),
//!   NetworkUnavailable, out of service, or NotReady while some other node is Ready advertises
//!   nothing but keeps its sessions up, so it comes back without a session flap. NotReady is
//!   ignored when no node is Ready: that is an API-server or control-plane outage, not this node's.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use ferrolb_api::bgp::{AddressFamily, BFDProfileSpec, BGPAdvertisementSpec, BGPPeerSpec, SpecProblem};
use ferrolb_api::{ServedClasses, ServiceKey, TrafficPolicy};
use ferrolb_bgp::bfd::BfdConfig;
use ferrolb_bgp::codec::{Family, LargeCommunity};
use ferrolb_bgp::fsm::PeerConfig;
use ferrolb_bgp::rib::RouteAttrs;
use ipnet::IpNet;

use crate::candidates::LocalEndpoints;
use crate::policy::{NodeInput, PoolInput, ServiceInput, pool_of, selects_service};

/// A user object's name and spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Named<S> {
    pub name: String,
    pub spec: S,
}

/// Everything the plan is decided from.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// This node.
    pub node: &'a NodeInput,
    /// This node's first IPv4 InternalIP: the router ID when the peer sets none.
    pub node_ipv4: Option<Ipv4Addr>,
    /// Whether some Node in the cluster is Ready (see the module documentation).
    pub some_node_ready: bool,
    pub peers: &'a [Named<BGPPeerSpec>],
    pub advertisements: &'a [Named<BGPAdvertisementSpec>],
    pub bfd_profiles: &'a [Named<BFDProfileSpec>],
    pub services: &'a [Arc<ServiceInput>],
    pub pools: &'a [PoolInput],
    /// Per Service, per node: its endpoints there.
    pub endpoints: &'a BTreeMap<ServiceKey, BTreeMap<String, LocalEndpoints>>,
    pub classes: &'a ServedClasses,
}

/// How to run one session: a change of any of it restarts the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    pub fsm: PeerConfig,
    pub address: SocketAddr,
    pub source: Option<IpAddr>,
    /// IP TTL of our packets: 1 for single-hop eBGP, the multihop TTL, or the kernel's default.
    pub ttl: Option<u8>,
    /// The MD5 password's Secret (in FerroLB's namespace) and key; the adapter reads it.
    pub password_secret: Option<(String, String)>,
    /// BFD timers, when the peer names a valid profile.
    pub bfd: Option<BfdConfig>,
}

/// One session this node should run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPlan {
    pub peer_address: IpAddr,
    /// `None` when the session cannot start; `error` says why.
    pub config: Option<SessionConfig>,
    /// Why the session cannot start, or what it runs without (a BFD profile that is missing).
    pub error: Option<String>,
    /// The routes to advertise.
    pub routes: BTreeMap<IpNet, RouteAttrs>,
}

/// Problems of invalid objects, by name, for their `ferrolb.io/InvalidSpec` conditions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems {
    pub peers: BTreeMap<String, Vec<SpecProblem>>,
    pub advertisements: BTreeMap<String, Vec<SpecProblem>>,
    pub bfd_profiles: BTreeMap<String, Vec<SpecProblem>>,
}

/// The plan: sessions by peer name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub sessions: BTreeMap<String, SessionPlan>,
    /// Why this node advertises nothing at all, when that is so.
    pub withdrawn: Option<&'static str>,
    pub problems: Problems,
}

/// Decides the plan (see the module documentation).
pub fn plan(inputs: &Inputs<'_>) -> Plan {
    let mut problems = Problems::default();
    let mut bfd_profiles = BTreeMap::new();
    for p in inputs.bfd_profiles {
        match p.spec.validate() {
            Ok(v) => {
                bfd_profiles.insert(p.name.as_str(), v);
            }
            Err(e) => {
                problems.bfd_profiles.insert(p.name.clone(), e);
            }
        }
    }
    let mut advertisements = Vec::new();
    for a in inputs.advertisements {
        match a.spec.validate() {
            Ok(v) => advertisements.push((a.name.as_str(), v)),
            Err(e) => {
                problems.advertisements.insert(a.name.clone(), e);
            }
        }
    }
    let withdrawn = withdrawn(inputs.node, inputs.some_node_ready);
    let mut sessions = BTreeMap::new();
    for p in inputs.peers {
        let peer = match p.spec.validate() {
            Ok(v) => v,
            Err(e) => {
                problems.peers.insert(p.name.clone(), e);
                continue;
            }
        };
        if !peer.selects_node(&inputs.node.labels) {
            continue;
        }
        let mut error = None;
        let config = match peer.router_id.or(inputs.node_ipv4) {
            None => {
                error = Some(
                    "no BGP router ID: the node has no IPv4 InternalIP and spec.routerID is not set".into(),
                );
                None
            }
            Some(router_id) => {
                let bfd = peer.bfd_profile.as_deref().and_then(|name| match bfd_profiles.get(name) {
                    Some(v) => Some(BfdConfig {
                        desired_min_tx: v.transmit_interval,
                        required_min_rx: v.receive_interval,
                        detect_mult: v.detect_multiplier,
                    }),
                    None => {
                        let why =
                            if problems.bfd_profiles.contains_key(name) { "invalid" } else { "not found" };
                        error = Some(format!("BFDProfile {name:?} {why}: the session runs without BFD"));
                        None
                    }
                });
                let mut fsm = PeerConfig::new(peer.my_asn, peer.peer_asn, router_id);
                fsm.hold_time = peer.hold_time;
                fsm.keepalive = peer.keepalive_time;
                fsm.connect_retry = peer.connect_time;
                fsm.families = peer.address_families.iter().map(|f| family(*f)).collect();
                fsm.graceful_restart =
                    peer.graceful_restart.map(|t| u16::try_from(t.as_secs()).unwrap_or(u16::MAX));
                fsm.connect_retry_max = fsm.connect_retry_max.max(fsm.connect_retry);
                let ttl = match peer.ebgp_multi_hop_ttl {
                    Some(ttl) => Some(ttl),
                    // RFC 4271 §5.1.3: a directly connected eBGP neighbour; routers that check
                    // (FRR without ebgp-multihop) expect TTL 1.
                    None if peer.is_ebgp() => Some(1),
                    None => None,
                };
                // The API's validation is stricter; this only guards the speaker's own rules.
                let runnable = match fsm.validate() {
                    Ok(()) => true,
                    Err(e) => {
                        error = Some(format!("the session cannot run: {e}"));
                        false
                    }
                };
                runnable.then_some(SessionConfig {
                    fsm,
                    address: SocketAddr::new(peer.peer_address, peer.peer_port),
                    source: peer.source_address,
                    ttl,
                    password_secret: peer.password_secret.clone(),
                    bfd,
                })
            }
        };
        let routes = match withdrawn {
            Some(_) => BTreeMap::new(),
            None => routes_for(inputs, &p.name, &peer.address_families, &advertisements),
        };
        sessions
            .insert(p.name.clone(), SessionPlan { peer_address: peer.peer_address, config, error, routes });
    }
    Plan { sessions, withdrawn, problems }
}

/// Why this node advertises nothing, if it does not.
fn withdrawn(node: &NodeInput, some_node_ready: bool) -> Option<&'static str> {
    if node.excluded_by_label() {
        Some("the node is labelled node.kubernetes.io/exclude-from-external-load-balancers")
    } else if node.network_unavailable {
        Some("the node's NetworkUnavailable condition is True")
    } else if node.out_of_service {
        Some("the node is tainted node.kubernetes.io/out-of-service")
    } else if node.not_ready && some_node_ready {
        Some("the node is NotReady")
    } else {
        None
    }
}

fn family(f: AddressFamily) -> Family {
    match f {
        AddressFamily::IPv4 => Family::IPV4_UNICAST,
        AddressFamily::IPv6 => Family::IPV6_UNICAST,
    }
}

/// The merged attributes of one prefix while the advertisements selecting it are gathered.
#[derive(Default)]
struct Gathered {
    communities: Vec<u32>,
    large: Vec<LargeCommunity>,
    local_pref: Option<u32>,
}

/// The routes this node advertises to peer `peer`.
fn routes_for(
    inputs: &Inputs<'_>,
    peer: &str,
    families: &[AddressFamily],
    advertisements: &[(&str, ferrolb_api::bgp::ValidAdvertisement)],
) -> BTreeMap<IpNet, RouteAttrs> {
    let selecting: Vec<&ferrolb_api::bgp::ValidAdvertisement> = advertisements
        .iter()
        .map(|(_, a)| a)
        .filter(|a| a.selects_peer(peer) && a.selects_node(&inputs.node.labels))
        .collect();
    let mut gathered: BTreeMap<IpNet, Gathered> = BTreeMap::new();
    if selecting.is_empty() {
        return BTreeMap::new();
    }
    for svc in inputs.services.iter().filter(|s| s.has_served_class(inputs.classes)) {
        if svc.external_traffic_policy == TrafficPolicy::Local
            && !inputs
                .endpoints
                .get(&svc.key)
                .and_then(|nodes| nodes.get(&inputs.node.name))
                .is_some_and(|e| e.ready)
        {
            continue;
        }
        let by_service: Vec<_> =
            selecting.iter().filter(|a| selects_service(&a.service_selector, svc)).collect();
        if by_service.is_empty() {
            continue;
        }
        let ingress = svc.ingress.iter().map(|a| (*a, true));
        let external = svc.external_ips.iter().filter(|a| !svc.ingress.contains(a)).map(|a| (*a, false));
        for (address, from_pool) in ingress.chain(external) {
            let in_family = match address {
                IpAddr::V4(_) => families.contains(&AddressFamily::IPv4),
                IpAddr::V6(_) => families.contains(&AddressFamily::IPv6),
            };
            if !in_family {
                continue;
            }
            let pool = from_pool.then(|| pool_of(svc, address, inputs.pools)).flatten();
            for a in &by_service {
                let covered = if from_pool {
                    a.load_balancer_ips
                        && (a.pool_selector.is_everything()
                            || pool.is_some_and(|p| a.pool_selector.matches(&p.labels)))
                } else {
                    a.external_ips
                };
                if !covered {
                    continue;
                }
                let len = match address {
                    IpAddr::V4(_) => a.aggregation_length,
                    IpAddr::V6(_) => a.aggregation_length_v6,
                };
                let Ok(prefix) = IpNet::new(address, len) else { continue };
                let g = gathered.entry(prefix.trunc()).or_default();
                g.communities.extend(&a.communities);
                g.large.extend(a.large_communities.iter().map(|&(global, local1, local2)| LargeCommunity {
                    global,
                    local1,
                    local2,
                }));
                g.local_pref = g.local_pref.max(a.local_pref);
            }
        }
    }
    gathered
        .into_iter()
        .filter_map(|(prefix, g)| match RouteAttrs::new(g.communities, g.large, g.local_pref) {
            Ok(attrs) => Some((prefix, attrs)),
            Err(error) => {
                // Only reachable with hundreds of communities on one prefix; the prefix goes out
                // nowhere rather than with a truncated set.
                tracing::warn!(%prefix, %error, "prefix not advertised");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
