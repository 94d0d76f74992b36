//! The nodes that may announce one address (DESIGN.md §4, "Placement"), and why the others may not.
//!
//! A node is a candidate for an [`Announcement`] when, in this order of checks:
//! 1. a policy selecting the address selects the node (`nodeSelector`);
//! 2. it does not carry `node.kubernetes.io/exclude-from-external-load-balancers`;
//! 3. its `NetworkUnavailable` condition is not `True`, it does not carry the
//!    `node.kubernetes.io/out-of-service` taint, and its `Ready` condition is not `False` or
//!    `Unknown` (unless no node at all would be left: when every otherwise eligible node is not
//!    ready, as when the node controller loses the whole cluster, readiness is ignored, as the node
//!    lifecycle controller stops evicting in a full disruption);
//! 4. for `externalTrafficPolicy: Local`, it has a ready or serving endpoint of the Service;
//! 5. its announcer is known: this node's own, or a peer that reported its state over the peer channel;
//! 6. one of the interfaces the policies select on it has its link up (interfaces are node-local facts:
//!    a peer's come from its own report, so "link down" here is the holder's own report);
//! 7. its announcer is fully ready (caches synced, datapath up): a returning node takes nothing before.
//!
//! Facts 1-4 (readiness and taints included) come from the API server and 6 from the node itself, so a holder failing one of them is
//! replaced at once ([`Rejection::disqualifies_holder`]); 5 and 7 only mean "do not give it more work":
//! whether a current holder is alive is the liveness rules' business, not candidacy's.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::interface::Interface;
use crate::policy::{Announcement, NodeInput, Policies, TrafficPolicy};

/// What a node's announcer reports about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnnouncerState {
    /// Caches synced, datapath ready, peers heard: ready to take addresses.
    pub ready: bool,
    pub interfaces: Vec<Interface>,
}

/// A node and, when known, its announcer's state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeState {
    pub node: NodeInput,
    /// `None`: no report from this node's announcer (not running, or not heard yet).
    pub announcer: Option<AnnouncerState>,
}

/// A Service's endpoints on one node, from its EndpointSlices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LocalEndpoints {
    /// At least one endpoint on the node with `conditions.ready`.
    pub ready: bool,
    /// At least one endpoint on the node with `conditions.serving` (also terminating ones).
    pub serving: bool,
}

/// Why a node is not a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rejection {
    /// No policy selecting the address selects the node.
    NotSelected,
    /// `node.kubernetes.io/exclude-from-external-load-balancers`.
    ExcludedByLabel,
    /// `NetworkUnavailable` is `True`.
    NetworkUnavailable,
    /// Tainted `node.kubernetes.io/out-of-service` (the node is shut down for good).
    OutOfService,
    /// The Node's `Ready` condition is `False` or `Unknown`.
    NodeNotReady,
    /// `externalTrafficPolicy: Local` and no ready or serving endpoint on the node.
    NoLocalEndpoint,
    /// Its announcer has not reported.
    NoAnnouncer,
    /// No selected interface with its link up.
    NoUsableInterface,
    /// Its announcer is not fully ready.
    NotReady,
}

impl Rejection {
    /// Whether a node rejected so must stop holding the address at once (a fact from the API server or
    /// the node's own report), as opposed to merely not taking more.
    pub fn disqualifies_holder(self) -> bool {
        !matches!(self, Rejection::NoAnnouncer | Rejection::NotReady)
    }

    fn describe(self) -> &'static str {
        match self {
            Rejection::NotSelected => "not selected by the nodeSelector of any matching L2AnnouncementPolicy",
            Rejection::ExcludedByLabel => {
                "excluded by node.kubernetes.io/exclude-from-external-load-balancers"
            }
            Rejection::NetworkUnavailable => "NetworkUnavailable",
            Rejection::OutOfService => "tainted node.kubernetes.io/out-of-service",
            Rejection::NodeNotReady => "Node not Ready",
            Rejection::NoLocalEndpoint => "no ready or serving local endpoint (externalTrafficPolicy: Local)",
            Rejection::NoAnnouncer => "no announcer heard",
            Rejection::NoUsableInterface => "no selected interface with link up",
            Rejection::NotReady => "announcer not ready",
        }
    }
}

/// A node that may announce, and the interfaces it would answer on (selected and up, by name).
/// Names are borrowed from the round's nodes: a round builds this for every address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidateNode<'n> {
    pub node: &'n str,
    pub interfaces: Vec<&'n str>,
}

/// The candidates for one address, by node name, and the rejected nodes with their reason.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Candidates<'n> {
    pub nodes: Vec<CandidateNode<'n>>,
    pub rejected: BTreeMap<&'n str, Rejection>,
}

impl<'n> Candidates<'n> {
    /// Whether `node` is a candidate.
    pub fn contains(&self, node: &str) -> bool {
        self.nodes.binary_search_by(|c| c.node.cmp(node)).is_ok()
    }

    /// The candidate names, sorted.
    pub fn names(&self) -> Vec<&'n str> {
        self.nodes.iter().map(|c| c.node).collect()
    }

    /// Why `node` is not a candidate (`None`: it is, or it is not a known node).
    pub fn rejection(&self, node: &str) -> Option<Rejection> {
        self.rejected.get(node).copied()
    }

    /// For the Service Event when nobody can announce: every reason with its node count, such as
    /// `no node can announce: 2 nodes not selected by ...; 1 node no selected interface with link up`.
    /// `None` when there are candidates.
    pub fn why_none(&self) -> Option<String> {
        if !self.nodes.is_empty() {
            return None;
        }
        if self.rejected.is_empty() {
            return Some("no node can announce: no nodes".into());
        }
        let mut counts: BTreeMap<Rejection, usize> = BTreeMap::new();
        for r in self.rejected.values() {
            *counts.entry(*r).or_default() += 1;
        }
        let mut msg = String::from("no node can announce:");
        for (i, (r, n)) in counts.iter().enumerate() {
            let sep = if i == 0 { " " } else { "; " };
            let _ = write!(msg, "{sep}{n} node{} {}", if *n == 1 { "" } else { "s" }, r.describe());
        }
        Some(msg)
    }
}

/// The candidates for `ann` among `nodes`. `endpoints` maps node names to the Service's endpoints
/// there (only read for `externalTrafficPolicy: Local`; a node absent from it has none).
pub fn candidates_for<'n>(
    policies: &Policies,
    ann: &Announcement,
    nodes: &'n [NodeState],
    endpoints: &BTreeMap<String, LocalEndpoints>,
) -> Candidates<'n> {
    let out = candidates_among(policies, ann, nodes, endpoints, true);
    if out.nodes.is_empty() && out.rejected.values().any(|r| *r == Rejection::NodeNotReady) {
        return candidates_among(policies, ann, nodes, endpoints, false);
    }
    out
}

fn candidates_among<'n>(
    policies: &Policies,
    ann: &Announcement,
    nodes: &'n [NodeState],
    endpoints: &BTreeMap<String, LocalEndpoints>,
    readiness: bool,
) -> Candidates<'n> {
    let mut out = Candidates::default();
    for state in nodes {
        match check(policies, ann, state, endpoints, readiness) {
            Ok(interfaces) => out.nodes.push(CandidateNode { node: &state.node.name, interfaces }),
            Err(r) => {
                out.rejected.insert(&state.node.name, r);
            }
        }
    }
    out.nodes.sort_by(|a, b| a.node.cmp(b.node));
    out.nodes.dedup_by(|a, b| a.node == b.node);
    out
}

fn check<'n>(
    policies: &Policies,
    ann: &Announcement,
    state: &'n NodeState,
    endpoints: &BTreeMap<String, LocalEndpoints>,
    readiness: bool,
) -> Result<Vec<&'n str>, Rejection> {
    let node = &state.node;
    if !policies.node_selected(ann, node) {
        return Err(Rejection::NotSelected);
    }
    if node.excluded_by_label() {
        return Err(Rejection::ExcludedByLabel);
    }
    if node.network_unavailable {
        return Err(Rejection::NetworkUnavailable);
    }
    if node.out_of_service {
        return Err(Rejection::OutOfService);
    }
    if readiness && node.not_ready {
        return Err(Rejection::NodeNotReady);
    }
    if ann.traffic_policy == TrafficPolicy::Local {
        let local = endpoints.get(&node.name).copied().unwrap_or_default();
        if !(local.ready || local.serving) {
            return Err(Rejection::NoLocalEndpoint);
        }
    }
    let Some(announcer) = &state.announcer else {
        return Err(Rejection::NoAnnouncer);
    };
    let usable: Vec<&str> = policies
        .interfaces_for(ann, node, &announcer.interfaces)
        .into_iter()
        .filter(|i| i.up)
        .map(|i| i.name.as_str())
        .collect();
    if usable.is_empty() {
        return Err(Rejection::NoUsableInterface);
    }
    if !announcer.ready {
        return Err(Rejection::NotReady);
    }
    Ok(usable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tests::{labels, match_labels, policy, svc};
    use ferrolb_api::names::labels as keys;
    use ferrolb_api::{L2AnnouncementPolicySpec, ServedClasses};

    fn ready(name: &str, node_labels: &[(&str, &str)], ifaces: Vec<Interface>) -> NodeState {
        NodeState {
            node: NodeInput { name: name.into(), labels: labels(node_labels), ..Default::default() },
            announcer: Some(AnnouncerState { ready: true, interfaces: ifaces }),
        }
    }

    #[test]
    fn every_rule_rejects_with_its_reason() {
        let policies = Policies::compile(&[policy(
            "p",
            L2AnnouncementPolicySpec {
                node_selector: match_labels(&[("l2", "yes")]),
                interfaces: vec!["eth0".into()],
                ..Default::default()
            },
        )]);
        let mut s = svc("default", "web", &["198.51.100.130"]);
        s.external_traffic_policy = TrafficPolicy::Local;
        let ann = &policies.announcements(&[s], &[], &ServedClasses::default())[0];
        let yes = [("l2", "yes")];
        let eth0 = || vec![Interface::device("eth0"), Interface::device("eth1")];
        let mut unavailable = ready("e-unavailable", &yes, eth0());
        unavailable.node.network_unavailable = true;
        let mut unheard = ready("f-unheard", &yes, eth0());
        unheard.announcer = None;
        let mut out_of_service = ready("e2-out-of-service", &yes, eth0());
        out_of_service.node.out_of_service = true;
        let mut node_not_ready = ready("e3-node-not-ready", &yes, eth0());
        node_not_ready.node.not_ready = true;
        let mut not_ready = ready("h-not-ready", &yes, eth0());
        not_ready.announcer.as_mut().unwrap().ready = false;
        let nodes = vec![
            ready("a-ok", &yes, eth0()),
            ready("b-other", &[("l2", "no")], eth0()),
            ready("c-excluded", &[("l2", "yes"), (keys::EXCLUDE_FROM_EXTERNAL_LB, "true")], eth0()),
            ready("d-no-endpoint", &yes, eth0()),
            unavailable,
            out_of_service,
            node_not_ready,
            unheard,
            ready(
                "g-link-down",
                &yes,
                vec![Interface::device("eth0").with_up(false), Interface::device("eth1")],
            ),
            not_ready,
            ready("i-serving", &yes, eth0()),
        ];
        let mut eps = BTreeMap::new();
        for n in [
            "a-ok",
            "b-other",
            "c-excluded",
            "e-unavailable",
            "e2-out-of-service",
            "e3-node-not-ready",
            "f-unheard",
            "g-link-down",
            "h-not-ready",
        ] {
            eps.insert(n.to_string(), LocalEndpoints { ready: true, serving: true });
        }
        eps.insert("i-serving".into(), LocalEndpoints { ready: false, serving: true });
        let c = candidates_for(&policies, ann, &nodes, &eps);
        assert_eq!(c.names(), ["a-ok", "i-serving"]);
        assert_eq!(c.nodes[0].interfaces, ["eth0"]);
        use Rejection::*;
        let expect = [
            ("b-other", NotSelected),
            ("c-excluded", ExcludedByLabel),
            ("d-no-endpoint", NoLocalEndpoint),
            ("e-unavailable", NetworkUnavailable),
            ("e2-out-of-service", OutOfService),
            ("e3-node-not-ready", NodeNotReady),
            ("f-unheard", NoAnnouncer),
            ("g-link-down", NoUsableInterface),
            ("h-not-ready", NotReady),
        ];
        for (n, r) in expect {
            assert_eq!(c.rejection(n), Some(r), "{n}");
            assert_eq!(r.disqualifies_holder(), !matches!(r, NoAnnouncer | NotReady));
        }
        assert!(c.why_none().is_none());
    }

    #[test]
    fn readiness_is_ignored_only_when_no_node_is_ready() {
        let policies = Policies::compile(&[policy("p", L2AnnouncementPolicySpec::default())]);
        let ann = &policies.announcements(
            &[svc("default", "web", &["198.51.100.130"])],
            &[],
            &ServedClasses::default(),
        )[0];
        let mut a = ready("a", &[], vec![Interface::device("eth0")]);
        a.node.not_ready = true;
        let b = ready("b", &[], vec![Interface::device("eth0")]);
        let nodes = [a.clone(), b.clone()];
        let c = candidates_for(&policies, ann, &nodes, &BTreeMap::new());
        assert_eq!(c.names(), ["b"]);
        assert_eq!(c.rejection("a"), Some(Rejection::NodeNotReady));
        // Every node not ready (the node controller lost them all): readiness says nothing.
        let mut b = b;
        b.node.not_ready = true;
        let nodes = [a.clone(), b];
        let c = candidates_for(&policies, ann, &nodes, &BTreeMap::new());
        assert_eq!(c.names(), ["a", "b"]);
        // Out of service is never ignored.
        a.node.out_of_service = true;
        let nodes = [a];
        let c = candidates_for(&policies, ann, &nodes, &BTreeMap::new());
        assert!(c.names().is_empty());
    }

    #[test]
    fn cluster_policy_ignores_endpoints_and_why_none_explains() {
        let policies = Policies::compile(&[policy("p", L2AnnouncementPolicySpec::default())]);
        let ann = &policies.announcements(
            &[svc("default", "web", &["198.51.100.130"])],
            &[],
            &ServedClasses::default(),
        )[0];
        let nodes = [ready("a", &[], vec![Interface::device("eth0")])];
        let c = candidates_for(&policies, ann, &nodes, &BTreeMap::new());
        assert_eq!(c.names(), ["a"]);
        let nodes = [
            ready("a", &[], vec![Interface::device("veth0")]),
            ready("b", &[], vec![Interface::device("eth0").with_up(false)]),
            ready("c", &[(keys::EXCLUDE_FROM_EXTERNAL_LB, "")], vec![]),
        ];
        let c = candidates_for(&policies, ann, &nodes, &BTreeMap::new());
        assert_eq!(
            c.why_none().unwrap(),
            "no node can announce: 1 node excluded by node.kubernetes.io/exclude-from-external-load-balancers; \
             2 nodes no selected interface with link up"
        );
        assert_eq!(Candidates::default().why_none().unwrap(), "no node can announce: no nodes");
    }
}
