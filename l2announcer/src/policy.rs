//! Which (Service, address) pairs may be announced, by which nodes, on which interfaces, according
//! to the `L2AnnouncementPolicy` objects (DESIGN.md §2).
//!
//! - A policy selects Services with `serviceSelector`, which sees the Service's labels plus the
//!   pseudo-labels `io.kubernetes.service.namespace`, `io.kubernetes.service.name` and
//!   `ferrolb.io/load-balancer-class` (these override user labels of the same key).
//! - `loadBalancerIPs` (default true) covers `status.loadBalancer.ingress`; `externalIPs` (default
//!   false) covers `spec.externalIPs`.
//! - `poolSelector` matches the labels of the pool an ingress address came from. The pool is the
//!   first pool named in the Service's `ferrolb.io/allocated-from-pool` annotation whose blocks
//!   contain the address (or the only pool named, when none of them does: blocks may have been
//!   edited since). An ingress address with no known pool is not selected by a policy that has a
//!   `poolSelector`. External IPs come from no pool, so `poolSelector` does not restrict them.
//! - **Several policies selecting one address: the union** (MetalLB's semantics for several
//!   L2Advertisements): a node may announce when any of those policies' `nodeSelector`s matches it,
//!   and on every interface any of those policies selects on it.
//! - A policy with an invalid selector or regex is reported (for its `ferrolb.io/InvalidSpec`
//!   condition) and **not used at all**: applying the valid half of a broken policy could announce
//!   on nodes or interfaces the user meant to exclude.
//!
//! Services of a `spec.loadBalancerClass` not served ([`ServedClasses`], the IPAM controller's
//! rule too) are ignored, and so are Services without a class when the default class is off.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_api::names::labels;
use ferrolb_api::{IpRange, L2AnnouncementPolicySpec, Selector, ServedClasses};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::interface::{Interface, InterfaceSelector};

pub use ferrolb_api::{ServiceKey, TrafficPolicy};

/// One announced address of one Service: the unit of election and placement.
///
/// The Service's key is shared (with its [`ServiceInput`] and every other key of it): the engine,
/// the write book, the Events book and each round's plan keep one key per address, and with
/// thousands of addresses two strings per copy were megabytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddressKey {
    pub service: Arc<ServiceKey>,
    pub address: IpAddr,
}

impl AddressKey {
    pub fn new(service: impl Into<Arc<ServiceKey>>, address: IpAddr) -> Self {
        Self { service: service.into(), address }
    }
}

impl fmt::Display for AddressKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.service, self.address)
    }
}

/// What the announcer needs from a Service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceInput {
    /// Shared with the keys of its addresses ([`AddressKey`]).
    pub key: Arc<ServiceKey>,
    pub labels: BTreeMap<String, String>,
    pub load_balancer_class: Option<String>,
    pub external_traffic_policy: TrafficPolicy,
    /// `status.loadBalancer.ingress[].ip`.
    pub ingress: Vec<IpAddr>,
    /// `spec.externalIPs`.
    pub external_ips: Vec<IpAddr>,
    /// Pool names of the `ferrolb.io/allocated-from-pool` annotation, in order.
    pub allocated_from_pool: Vec<String>,
}

impl ServiceInput {
    /// Whether FerroLB serves this Service's class (the rule shared with the IPAM controller).
    pub fn has_served_class(&self, classes: &ServedClasses) -> bool {
        classes.serves(self.load_balancer_class.as_deref())
    }
}

/// What the announcer needs from a pool: its labels (for `poolSelector`) and its blocks (to tell
/// which pool an address came from).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PoolInput {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub ranges: Vec<IpRange>,
}

/// What the announcer needs from a Node object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeInput {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The `NetworkUnavailable` condition is `True`.
    pub network_unavailable: bool,
    /// The `Ready` condition is `False` or `Unknown` (absent: ready; kube-sim's and some test
    /// clusters' Nodes carry none).
    pub not_ready: bool,
    /// Tainted `node.kubernetes.io/out-of-service`, any effect.
    pub out_of_service: bool,
}

impl NodeInput {
    /// Excluded by `node.kubernetes.io/exclude-from-external-load-balancers` (present, any value,
    /// as Kubernetes' service controller reads it).
    pub fn excluded_by_label(&self) -> bool {
        self.labels.contains_key(labels::EXCLUDE_FROM_EXTERNAL_LB)
    }
}

/// An `L2AnnouncementPolicy`'s name and spec.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PolicyInput {
    pub name: String,
    pub spec: L2AnnouncementPolicySpec,
}

/// A problem with one policy's spec; `Display` names the policy, the field and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub policy: String,
    /// The spec field, such as `spec.nodeSelector` or `spec.interfaces[2]`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "policy {:?}: {}: {}", self.policy, self.field, self.message)
    }
}

/// A valid policy, ready to match.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    pub name: String,
    services: Selector,
    nodes: Selector,
    pools: Option<Selector>,
    interfaces: InterfaceSelector,
    load_balancer_ips: bool,
    external_ips: bool,
}

impl CompiledPolicy {
    /// Compiles one policy; every problem in it is reported.
    pub fn compile(input: &PolicyInput) -> Result<Self, Vec<PolicyError>> {
        let mut errors = Vec::new();
        let err = |field: &str, message: String| PolicyError {
            policy: input.name.clone(),
            field: field.to_owned(),
            message,
        };
        let mut selector = |field: &str, sel: Option<&LabelSelector>| match sel {
            None => Some(Selector::everything()),
            Some(s) => {
                Selector::from_label_selector(s).map_err(|e| errors.push(err(field, e.to_string()))).ok()
            }
        };
        let services = selector("spec.serviceSelector", input.spec.service_selector.as_ref());
        let nodes = selector("spec.nodeSelector", input.spec.node_selector.as_ref());
        let pools = match input.spec.pool_selector.as_ref() {
            None => Some(None),
            Some(s) => selector("spec.poolSelector", Some(s)).map(Some),
        };
        let interfaces = InterfaceSelector::compile(&input.spec.interfaces)
            .map_err(|es| {
                for e in es {
                    errors.push(err(
                        &format!("spec.interfaces[{}]", e.index),
                        format!("{:?} is not a valid regular expression: {}", e.pattern, e.why),
                    ));
                }
            })
            .ok();
        match (services, nodes, pools, interfaces) {
            (Some(services), Some(nodes), Some(pools), Some(interfaces)) if errors.is_empty() => Ok(Self {
                name: input.name.clone(),
                services,
                nodes,
                pools,
                interfaces,
                load_balancer_ips: input.spec.load_balancer_ips,
                external_ips: input.spec.external_ips,
            }),
            _ => Err(errors),
        }
    }

    /// Whether the policy selects the Service (labels plus pseudo-labels).
    pub fn selects_service(&self, svc: &ServiceInput) -> bool {
        selects_service(&self.services, svc)
    }

    /// Whether the policy lets `node` announce.
    pub fn selects_node(&self, node: &NodeInput) -> bool {
        self.nodes.matches(&node.labels)
    }

    /// Whether the policy covers an address of `source` that came from `pool` (labels of the pool,
    /// `None` when unknown).
    fn covers(&self, source: AddressSource, pool: Option<&BTreeMap<String, String>>) -> bool {
        match source {
            AddressSource::LoadBalancer => {
                self.load_balancer_ips
                    && match (&self.pools, pool) {
                        (None, _) => true,
                        (Some(sel), Some(labels)) => sel.matches(labels),
                        (Some(_), None) => false,
                    }
            }
            AddressSource::External => self.external_ips,
        }
    }

    /// The interface selector of `spec.interfaces`.
    pub fn interfaces(&self) -> &InterfaceSelector {
        &self.interfaces
    }
}

/// Where an announced address comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressSource {
    /// `status.loadBalancer.ingress`.
    LoadBalancer,
    /// `spec.externalIPs`.
    External,
}

/// An address some policy selects, and which policies do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub key: AddressKey,
    pub source: AddressSource,
    pub traffic_policy: TrafficPolicy,
    /// Indices into [`Policies::list`] of the policies selecting this address, ascending.
    pub policies: Vec<usize>,
}

/// Every valid policy, plus the errors of the invalid ones.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    list: Vec<CompiledPolicy>,
    errors: Vec<PolicyError>,
}

impl Policies {
    /// Compiles all policies, in name order (so indices and results do not depend on watch order).
    pub fn compile(inputs: &[PolicyInput]) -> Self {
        let mut sorted: Vec<&PolicyInput> = inputs.iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out = Self::default();
        for input in sorted {
            match CompiledPolicy::compile(input) {
                Ok(p) => out.list.push(p),
                Err(es) => out.errors.extend(es),
            }
        }
        out
    }

    /// The valid policies, in name order.
    pub fn list(&self) -> &[CompiledPolicy] {
        &self.list
    }

    /// Problems of invalid policies, for their `ferrolb.io/InvalidSpec` condition.
    pub fn errors(&self) -> &[PolicyError] {
        &self.errors
    }

    /// The errors of one policy (empty: the spec is valid).
    pub fn errors_of<'a>(&'a self, policy: &'a str) -> impl Iterator<Item = &'a PolicyError> + 'a {
        self.errors.iter().filter(move |e| e.policy == policy)
    }

    /// Every (Service, address) some policy selects, in key order. An address listed both as ingress
    /// and as external IP counts once, as a load-balancer address, selected by the policies that
    /// select it under either source.
    pub fn announcements<S: Borrow<ServiceInput>>(
        &self,
        services: &[S],
        pools: &[PoolInput],
        classes: &ServedClasses,
    ) -> Vec<Announcement> {
        let mut out: BTreeMap<AddressKey, Announcement> = BTreeMap::new();
        for svc in services.iter().map(Borrow::borrow).filter(|s| s.has_served_class(classes)) {
            let selecting: Vec<usize> =
                (0..self.list.len()).filter(|&i| self.list[i].selects_service(svc)).collect();
            if selecting.is_empty() {
                continue;
            }
            let sourced = svc
                .ingress
                .iter()
                .map(|a| (*a, AddressSource::LoadBalancer))
                .chain(svc.external_ips.iter().map(|a| (*a, AddressSource::External)));
            for (address, source) in sourced {
                let pool = match source {
                    AddressSource::LoadBalancer => pool_of(svc, address, pools).map(|p| &p.labels),
                    AddressSource::External => None,
                };
                let covering = selecting.iter().copied().filter(|&i| self.list[i].covers(source, pool));
                let key = AddressKey::new(svc.key.clone(), address);
                let entry = out.entry(key.clone()).or_insert_with(|| Announcement {
                    key,
                    source,
                    traffic_policy: svc.external_traffic_policy,
                    policies: Vec::new(),
                });
                entry.policies.extend(covering);
            }
        }
        out.into_values()
            .filter_map(|mut a| {
                a.policies.sort_unstable();
                a.policies.dedup();
                (!a.policies.is_empty()).then_some(a)
            })
            .collect()
    }

    /// Whether some policy of `ann` lets `node` announce it.
    pub fn node_selected(&self, ann: &Announcement, node: &NodeInput) -> bool {
        ann.policies.iter().any(|&i| self.list[i].selects_node(node))
    }

    /// The interfaces of `node` that `ann` may be announced on: the union over its policies that
    /// select the node. Link state is not considered (see [`Interface::usable`]). In `ifaces` order.
    pub fn interfaces_for<'i>(
        &self,
        ann: &Announcement,
        node: &NodeInput,
        ifaces: &'i [Interface],
    ) -> Vec<&'i Interface> {
        // No list of the policies first: this runs for every address and node each round.
        let policies = ann.policies.iter().map(|&i| &self.list[i]);
        ifaces
            .iter()
            .filter(|iface| policies.clone().any(|p| p.selects_node(node) && p.interfaces.selects(iface)))
            .collect()
    }
}

/// Whether a Service selector selects `svc`: its labels plus the pseudo-labels of the module
/// documentation, which override user labels of the same key (so a label cannot impersonate a
/// namespace). BGP advertisements select Services by the same rule.
pub fn selects_service(selector: &Selector, svc: &ServiceInput) -> bool {
    // An array, not a `Vec`: this runs for every Service and policy each round.
    let class = svc.load_balancer_class.as_deref();
    let overrides = [
        (labels::SERVICE_NAMESPACE, svc.key.namespace.as_str()),
        (labels::SERVICE_NAME, svc.key.name.as_str()),
        (labels::LOAD_BALANCER_CLASS, class.unwrap_or_default()),
    ];
    let set = if class.is_some() { &overrides[..] } else { &overrides[..2] };
    selector.matches_with(&svc.labels, set)
}

/// The pool an ingress address came from (see the module documentation).
pub fn pool_of<'p>(svc: &ServiceInput, address: IpAddr, pools: &'p [PoolInput]) -> Option<&'p PoolInput> {
    let named = || svc.allocated_from_pool.iter().filter_map(|n| pools.iter().find(|p| &p.name == n));
    named().find(|p| p.ranges.iter().any(|r| r.contains(address))).or_else(|| {
        let mut it = named();
        match (it.next(), it.next()) {
            (Some(only), None) if svc.allocated_from_pool.len() == 1 => Some(only),
            _ => None,
        }
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ferrolb_api::names::LOAD_BALANCER_CLASS;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use proptest::prelude::*;

    pub(crate) fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    pub(crate) fn match_labels(pairs: &[(&str, &str)]) -> Option<LabelSelector> {
        Some(LabelSelector { match_labels: Some(labels(pairs)), match_expressions: None })
    }

    pub(crate) fn svc(ns: &str, name: &str, ingress: &[&str]) -> ServiceInput {
        ServiceInput {
            key: ServiceKey::new(ns, name).into(),
            ingress: ingress.iter().map(|a| a.parse().unwrap()).collect(),
            ..Default::default()
        }
    }

    pub(crate) fn policy(name: &str, spec: L2AnnouncementPolicySpec) -> PolicyInput {
        PolicyInput { name: name.into(), spec }
    }

    fn node(name: &str, l: &[(&str, &str)]) -> NodeInput {
        NodeInput { name: name.into(), labels: labels(l), ..Default::default() }
    }

    fn keys(anns: &[Announcement]) -> Vec<String> {
        anns.iter().map(|a| a.key.to_string()).collect()
    }

    #[test]
    fn service_selector_sees_pseudo_labels_and_classes_are_filtered() {
        let p = Policies::compile(&[policy(
            "prod",
            L2AnnouncementPolicySpec {
                service_selector: match_labels(&[(labels::SERVICE_NAMESPACE, "prod")]),
                ..Default::default()
            },
        )]);
        let mut fake = svc("dev", "web", &["198.51.100.130"]);
        // A user label cannot impersonate the namespace.
        fake.labels = labels(&[(labels::SERVICE_NAMESPACE, "prod")]);
        let real = svc("prod", "web", &["198.51.100.131"]);
        let mut other_class = svc("prod", "other", &["198.51.100.132"]);
        other_class.load_balancer_class = Some("example.com/lb".into());
        let mut ours = svc("prod", "ours", &["198.51.100.133"]);
        ours.load_balancer_class = Some(LOAD_BALANCER_CLASS.into());
        let all = [fake, real, other_class, ours];
        assert_eq!(
            keys(&p.announcements(&all, &[], &ServedClasses::default())),
            ["prod/ours 198.51.100.133", "prod/web 198.51.100.131"]
        );
        assert_eq!(
            keys(&p.announcements(&all, &[], &ServedClasses::new(false, [] as [&str; 0]))),
            ["prod/ours 198.51.100.133"]
        );

        let by_class = Policies::compile(&[policy(
            "l2",
            L2AnnouncementPolicySpec {
                service_selector: match_labels(&[(labels::LOAD_BALANCER_CLASS, LOAD_BALANCER_CLASS)]),
                ..Default::default()
            },
        )]);
        assert_eq!(
            keys(&by_class.announcements(&all, &[], &ServedClasses::default())),
            ["prod/ours 198.51.100.133"]
        );
    }

    /// A class added with `--load-balancer-classes` is announced as it is, and a policy selecting
    /// `ferrolb.io/load-balancer-class: ingress` announces exactly that class's Services (the
    /// converted Deckhouse class); a class not served is announced by no policy, even one that
    /// selects it by name.
    #[test]
    fn added_classes_are_announced_and_policies_select_them_by_class() {
        let mut ingress = svc("prod", "ingress", &["198.51.100.140"]);
        ingress.load_balancer_class = Some("ingress".into());
        let plain = svc("prod", "plain", &["198.51.100.141"]);
        let mut l2 = svc("prod", "l2", &["198.51.100.142"]);
        l2.load_balancer_class = Some(LOAD_BALANCER_CLASS.into());
        let mut foreign = svc("prod", "foreign", &["198.51.100.143"]);
        foreign.load_balancer_class = Some("example.com/lb".into());
        let all = [ingress, plain, l2, foreign];

        let by_class = Policies::compile(&[policy(
            "ingress",
            L2AnnouncementPolicySpec {
                service_selector: match_labels(&[(labels::LOAD_BALANCER_CLASS, "ingress")]),
                ..Default::default()
            },
        )]);
        let every = Policies::compile(&[policy("all", L2AnnouncementPolicySpec::default())]);
        let served = ServedClasses::new(true, ["ingress"]);
        assert_eq!(keys(&by_class.announcements(&all, &[], &served)), ["prod/ingress 198.51.100.140"]);
        assert_eq!(
            keys(&every.announcements(&all, &[], &served)),
            ["prod/ingress 198.51.100.140", "prod/l2 198.51.100.142", "prod/plain 198.51.100.141"]
        );
        // Not served: no policy announces it, not even one that names the class.
        assert!(by_class.announcements(&all, &[], &ServedClasses::default()).is_empty());
        let foreign_policy = Policies::compile(&[policy(
            "foreign",
            L2AnnouncementPolicySpec {
                service_selector: match_labels(&[(labels::LOAD_BALANCER_CLASS, "example.com/lb")]),
                ..Default::default()
            },
        )]);
        assert!(foreign_policy.announcements(&all, &[], &served).is_empty());

        // An isDefault Deckhouse class converts to a selector that also takes class-less
        // Services: the pseudo-label is absent for them.
        let default_class = Policies::compile(&[policy(
            "ingress-default",
            L2AnnouncementPolicySpec {
                service_selector: Some(LabelSelector {
                    match_labels: None,
                    match_expressions: Some(vec![LabelSelectorRequirement {
                        key: labels::LOAD_BALANCER_CLASS.into(),
                        operator: "NotIn".into(),
                        values: Some(vec![LOAD_BALANCER_CLASS.into()]),
                    }]),
                }),
                ..Default::default()
            },
        )]);
        assert_eq!(
            keys(&default_class.announcements(&all, &[], &served)),
            ["prod/ingress 198.51.100.140", "prod/plain 198.51.100.141"]
        );
    }

    #[test]
    fn load_balancer_and_external_ip_switches() {
        let mut s = svc("default", "web", &["198.51.100.130"]);
        s.external_ips = vec!["203.0.113.5".parse().unwrap(), "198.51.100.130".parse().unwrap()];
        let default = Policies::compile(&[policy("d", L2AnnouncementPolicySpec::default())]);
        let anns = default.announcements(std::slice::from_ref(&s), &[], &ServedClasses::default());
        assert_eq!(keys(&anns), ["default/web 198.51.100.130"]);
        let ext_only = Policies::compile(&[policy(
            "e",
            L2AnnouncementPolicySpec { load_balancer_ips: false, external_ips: true, ..Default::default() },
        )]);
        let anns = ext_only.announcements(std::slice::from_ref(&s), &[], &ServedClasses::default());
        assert_eq!(keys(&anns), ["default/web 198.51.100.130", "default/web 203.0.113.5"]);
        assert_eq!(anns[0].source, AddressSource::LoadBalancer, "listed in both: counts as ingress");
        assert_eq!(anns[1].source, AddressSource::External);
    }

    #[test]
    fn pool_selector_uses_the_pool_containing_the_address() {
        let pools = [
            PoolInput {
                name: "public".into(),
                labels: labels(&[("tier", "public")]),
                ranges: vec![IpRange::parse("198.51.100.128/25").unwrap()],
            },
            PoolInput {
                name: "internal".into(),
                labels: labels(&[("tier", "internal")]),
                ranges: vec![IpRange::parse("2001:db8:100::1000-2001:db8:100::1fff").unwrap()],
            },
        ];
        let p = Policies::compile(&[policy(
            "public",
            L2AnnouncementPolicySpec {
                pool_selector: match_labels(&[("tier", "public")]),
                external_ips: true,
                ..Default::default()
            },
        )]);
        let mut s = svc("default", "web", &["198.51.100.130", "2001:db8:100::1000"]);
        s.allocated_from_pool = ferrolb_api::service::allocated_from_pool::parse("public, internal");
        s.external_ips = vec!["203.0.113.9".parse().unwrap()];
        assert_eq!(
            keys(&p.announcements(std::slice::from_ref(&s), &pools, &ServedClasses::default())),
            ["default/web 198.51.100.130", "default/web 203.0.113.9"],
            "the v6 address is from the internal pool; external IPs are not restricted by pool"
        );
        // One pool named whose blocks no longer contain the address: that pool still.
        let mut moved = svc("default", "moved", &["192.0.2.1"]);
        moved.allocated_from_pool = vec!["public".into()];
        // No annotation: unknown pool, not selected by a pool selector.
        let unknown = svc("default", "unknown", &["198.51.100.140"]);
        assert_eq!(
            keys(&p.announcements(&[moved, unknown], &pools, &ServedClasses::default())),
            ["default/moved 192.0.2.1"]
        );
    }

    #[test]
    fn several_policies_give_the_union_of_nodes_and_interfaces() {
        let p = Policies::compile(&[
            policy(
                "a",
                L2AnnouncementPolicySpec {
                    node_selector: match_labels(&[("rack", "a")]),
                    interfaces: vec!["eth0".into()],
                    ..Default::default()
                },
            ),
            policy(
                "b",
                L2AnnouncementPolicySpec {
                    node_selector: match_labels(&[("rack", "b")]),
                    interfaces: vec!["eth1".into()],
                    ..Default::default()
                },
            ),
            policy(
                "c",
                L2AnnouncementPolicySpec {
                    service_selector: match_labels(&[("app", "other")]),
                    interfaces: vec!["eth2".into()],
                    ..Default::default()
                },
            ),
        ]);
        let anns =
            p.announcements(&[svc("default", "web", &["198.51.100.130"])], &[], &ServedClasses::default());
        assert_eq!(anns[0].policies, [0, 1]);
        let ifaces = [Interface::device("eth0"), Interface::device("eth1"), Interface::device("eth2")];
        let names = |n: &NodeInput| {
            p.interfaces_for(&anns[0], n, &ifaces).iter().map(|i| i.name.clone()).collect::<Vec<_>>()
        };
        assert_eq!(names(&node("n1", &[("rack", "a")])), ["eth0"]);
        assert_eq!(names(&node("n2", &[("rack", "b")])), ["eth1"]);
        assert!(names(&node("n3", &[("rack", "c")])).is_empty());
        assert!(!p.node_selected(&anns[0], &node("n3", &[("rack", "c")])));
        // A node matched by both policies answers on both interfaces (labels are a map, so make
        // a policy pair that both match).
        let both = Policies::compile(&[
            policy("x", L2AnnouncementPolicySpec { interfaces: vec!["eth0".into()], ..Default::default() }),
            policy("y", L2AnnouncementPolicySpec { interfaces: vec!["eth1".into()], ..Default::default() }),
        ]);
        let anns =
            both.announcements(&[svc("default", "web", &["198.51.100.130"])], &[], &ServedClasses::default());
        let got: Vec<_> =
            both.interfaces_for(&anns[0], &node("n", &[]), &ifaces).iter().map(|i| i.name.as_str()).collect();
        assert_eq!(got, ["eth0", "eth1"]);
    }

    #[test]
    fn invalid_policies_are_reported_and_unused() {
        let bad_selector = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "zone".into(),
                operator: "Near".into(),
                values: None,
            }]),
        };
        let p = Policies::compile(&[
            policy(
                "broken",
                L2AnnouncementPolicySpec {
                    node_selector: Some(bad_selector),
                    interfaces: vec!["eth0".into(), "eth(".into()],
                    ..Default::default()
                },
            ),
            policy("ok", L2AnnouncementPolicySpec::default()),
        ]);
        assert_eq!(p.list().len(), 1);
        let errs: Vec<String> = p.errors_of("broken").map(ToString::to_string).collect();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].starts_with("policy \"broken\": spec.nodeSelector: unknown operator \"Near\""),
            "{}",
            errs[0]
        );
        assert!(
            errs[1].starts_with("policy \"broken\": spec.interfaces[1]: \"eth(\" is not a valid"),
            "{}",
            errs[1]
        );
        assert_eq!(p.errors_of("ok").count(), 0);
        let anns =
            p.announcements(&[svc("default", "web", &["198.51.100.130"])], &[], &ServedClasses::default());
        assert_eq!(anns[0].policies, [0], "only the valid policy selects");
    }

    #[test]
    fn node_exclusion_label() {
        assert!(node("n", &[(labels::EXCLUDE_FROM_EXTERNAL_LB, "")]).excluded_by_label());
        assert!(!node("n", &[]).excluded_by_label());
    }

    proptest! {
        /// Garbage in regexes and selector keys never panics and always names the policy.
        #[test]
        fn compile_never_panics(re in ".{0,20}", key in ".{0,20}", val in ".{0,20}") {
            let spec = L2AnnouncementPolicySpec {
                node_selector: match_labels(&[(key.as_str(), val.as_str())]),
                interfaces: vec![re],
                ..Default::default()
            };
            let p = Policies::compile(&[policy("p", spec)]);
            for e in p.errors() {
                prop_assert_eq!(&e.policy, "p");
            }
            prop_assert_eq!(p.list().len() + usize::from(!p.errors().is_empty()), 1);
        }
    }
}
