//! Kubernetes objects in, the decision core's plain inputs out. No I/O.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_api::names::{annotations, taints};
use ferrolb_api::{IpRange, L2AnnouncementPolicy, LoadBalancerIPPool};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::cache::CacheKey;
use crate::candidates::LocalEndpoints;
use crate::policy::{NodeInput, PolicyInput, PoolInput, ServiceInput, ServiceKey, TrafficPolicy};

/// The Service label on an EndpointSlice.
const SLICE_SERVICE_LABEL: &str = "kubernetes.io/service-name";

/// What the announcer needs from a Service; `None` for Services that cannot have announced
/// addresses (neither a LoadBalancer nor any external IP).
pub fn service_input(svc: &Service) -> Option<ServiceInput> {
    service_input_keyed(CacheKey::of(svc), svc)
}

/// [`service_input`] under the key `key`.
fn service_input_keyed(key: Arc<ServiceKey>, svc: &Service) -> Option<ServiceInput> {
    let spec = svc.spec.as_ref()?;
    let is_lb = spec.type_.as_deref() == Some("LoadBalancer");
    let external_ips: Vec<IpAddr> =
        spec.external_ips.iter().flatten().filter_map(|a| a.trim().parse().ok()).collect();
    if !is_lb && external_ips.is_empty() {
        return None;
    }
    let ingress = if is_lb {
        svc.status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|i| i.ip.as_deref().and_then(|a| a.trim().parse().ok()))
            .collect()
    } else {
        Vec::new()
    };
    let annotations = svc.metadata.annotations.as_ref();
    Some(ServiceInput {
        key,
        labels: svc.metadata.labels.clone().unwrap_or_default(),
        load_balancer_class: spec.load_balancer_class.clone(),
        external_traffic_policy: TrafficPolicy::parse(spec.external_traffic_policy.as_deref().unwrap_or("")),
        ingress,
        external_ips,
        allocated_from_pool: annotations
            .and_then(|a| a.get(annotations::ALLOCATED_FROM_POOL))
            .map(|v| ferrolb_api::service::allocated_from_pool::parse(v))
            .unwrap_or_default(),
    })
}

/// A pool's labels and the ranges of its valid blocks (invalid blocks are the IPAM controller's to
/// report; here they only cannot match).
pub fn pool_input(pool: &LoadBalancerIPPool) -> PoolInput {
    PoolInput {
        name: pool.metadata.name.clone().unwrap_or_default(),
        labels: pool.metadata.labels.clone().unwrap_or_default(),
        ranges: pool
            .spec
            .blocks
            .iter()
            .filter_map(|b| IpRange::from_block(b).ok())
            .map(|b| b.range)
            .collect(),
    }
}

pub fn policy_input(policy: &L2AnnouncementPolicy) -> PolicyInput {
    PolicyInput { name: policy.metadata.name.clone().unwrap_or_default(), spec: policy.spec.clone() }
}

pub fn node_input(node: &Node) -> NodeInput {
    let conditions = || node.status.as_ref().and_then(|s| s.conditions.as_ref()).into_iter().flatten();
    let network_unavailable = conditions().any(|c| c.type_ == "NetworkUnavailable" && c.status == "True");
    let not_ready = conditions().any(|c| c.type_ == "Ready" && c.status != "True");
    let out_of_service = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .any(|t| t.key == taints::OUT_OF_SERVICE);
    NodeInput {
        name: node.metadata.name.clone().unwrap_or_default(),
        labels: node.metadata.labels.clone().unwrap_or_default(),
        network_unavailable,
        not_ready,
        out_of_service,
    }
}

/// The node's InternalIP addresses (IPv4 first), where its peer channel is reached.
pub fn internal_ips(node: &Node) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .filter_map(|a| a.address.trim().parse().ok())
        .collect();
    ips.sort_by_key(|ip| ip.is_ipv6());
    ips
}

/// What the announcer keeps of one EndpointSlice: its Service and, per node, whether that node has
/// ready and serving endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceEndpoints {
    pub service: ServiceKey,
    pub nodes: Vec<(String, LocalEndpoints)>,
}

/// The endpoints per node of one EndpointSlice (`None`: the slice names no Service).
pub fn slice_endpoints(slice: &EndpointSlice) -> Option<SliceEndpoints> {
    let service = slice.metadata.labels.as_ref()?.get(SLICE_SERVICE_LABEL)?;
    let mut nodes: BTreeMap<&str, LocalEndpoints> = BTreeMap::new();
    for ep in &slice.endpoints {
        let Some(node) = &ep.node_name else { continue };
        let c = ep.conditions.as_ref();
        // Per the API: a nil `ready` means ready, a nil `serving` follows `ready`.
        let ready = c.and_then(|c| c.ready).unwrap_or(true);
        let serving = c.and_then(|c| c.serving).unwrap_or(ready);
        let entry = nodes.entry(node).or_default();
        entry.ready |= ready;
        entry.serving |= serving;
    }
    Some(SliceEndpoints {
        service: ServiceKey::new(slice.metadata.namespace.clone().unwrap_or_default(), service.clone()),
        nodes: nodes.into_iter().map(|(n, e)| (n.to_owned(), e)).collect(),
    })
}

/// Adds one slice's endpoints to `out` (Service -> node -> endpoints there).
pub fn add_endpoints(
    slice: &SliceEndpoints,
    out: &mut BTreeMap<ServiceKey, BTreeMap<String, LocalEndpoints>>,
) {
    let per_node = out.entry(slice.service.clone()).or_default();
    for (node, eps) in &slice.nodes {
        let entry = per_node.entry(node.clone()).or_default();
        entry.ready |= eps.ready;
        entry.serving |= eps.serving;
    }
}

/// What the announcer keeps of a Service: its inputs, and its uid for Events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    /// Shared with the decision rounds' snapshot.
    pub input: Arc<ServiceInput>,
    pub uid: Option<String>,
}

/// The cache's projection of a Service under its cache key `key` (`None` for Services that cannot
/// have announced addresses).
pub fn service_entry(key: &Arc<ServiceKey>, svc: &Service) -> Option<ServiceEntry> {
    let input = service_input_keyed(key.clone(), svc)?;
    Some(ServiceEntry { input: Arc::new(input), uid: svc.metadata.uid.clone() })
}

/// Keeps name, labels, InternalIP addresses, the NetworkUnavailable and Ready conditions (without
/// their heartbeat times, so kubelet's status updates change nothing kept) and the out-of-service
/// taint (real Nodes carry image lists of many kilobytes).
pub fn strip_node(node: &mut Node) {
    node.metadata.managed_fields = None;
    // Only the arguments of k3s or RKE2, which embed kube-proxy (read by preflight).
    node.metadata.annotations = node.metadata.annotations.take().map(|mut a| {
        a.retain(|k, _| ferrolb_api::preflight::NODE_ARGS_ANNOTATIONS.iter().any(|(key, _)| k == key));
        a
    });
    if node.metadata.annotations.as_ref().is_some_and(|a| a.is_empty()) {
        node.metadata.annotations = None;
    }
    let out_of_service: Vec<_> = node
        .spec
        .take()
        .and_then(|s| s.taints)
        .into_iter()
        .flatten()
        .filter(|t| t.key == taints::OUT_OF_SERVICE)
        .map(|t| k8s_openapi::api::core::v1::Taint { time_added: None, ..t })
        .collect();
    if !out_of_service.is_empty() {
        node.spec =
            Some(k8s_openapi::api::core::v1::NodeSpec { taints: Some(out_of_service), ..Default::default() });
    }
    if let Some(status) = node.status.take() {
        node.status = Some(k8s_openapi::api::core::v1::NodeStatus {
            addresses: status.addresses.map(|a| a.into_iter().filter(|a| a.type_ == "InternalIP").collect()),
            conditions: status.conditions.map(|c| {
                c.into_iter()
                    .filter(|c| c.type_ == "NetworkUnavailable" || c.type_ == "Ready")
                    .map(|c| k8s_openapi::api::core::v1::NodeCondition {
                        type_: c.type_,
                        status: c.status,
                        ..Default::default()
                    })
                    .collect()
            }),
            ..Default::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, NodeAddress, NodeCondition, NodeStatus, ServiceSpec,
        ServiceStatus,
    };
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn meta(ns: &str, name: &str) -> ObjectMeta {
        ObjectMeta { namespace: Some(ns.into()), name: Some(name.into()), ..Default::default() }
    }

    #[test]
    fn services_keep_valid_addresses_and_skip_non_lb() {
        let mut svc = Service {
            metadata: meta("default", "web"),
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                external_traffic_policy: Some("Local".into()),
                external_ips: Some(vec!["203.0.113.9".into(), "bogus".into()]),
                ..Default::default()
            }),
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(vec![
                        LoadBalancerIngress { ip: Some("198.51.100.128".into()), ..Default::default() },
                        LoadBalancerIngress { hostname: Some("lb.example".into()), ..Default::default() },
                    ]),
                }),
                ..Default::default()
            }),
        };
        svc.metadata.annotations =
            Some(BTreeMap::from([(annotations::ALLOCATED_FROM_POOL.into(), "a, b".into())]));
        let input = service_input(&svc).unwrap();
        assert_eq!(input.ingress, vec!["198.51.100.128".parse::<IpAddr>().unwrap()]);
        assert_eq!(input.external_ips, vec!["203.0.113.9".parse::<IpAddr>().unwrap()]);
        assert_eq!(input.external_traffic_policy, TrafficPolicy::Local);
        assert_eq!(input.allocated_from_pool, vec!["a", "b"]);
        svc.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
        svc.spec.as_mut().unwrap().external_ips = None;
        assert!(service_input(&svc).is_none());
    }

    #[test]
    fn nodes_and_endpoints() {
        let node = Node {
            metadata: meta("", "node1"),
            spec: None,
            status: Some(NodeStatus {
                addresses: Some(vec![
                    NodeAddress { type_: "InternalIP".into(), address: "2001:db8:100::11".into() },
                    NodeAddress { type_: "InternalIP".into(), address: "198.51.100.11".into() },
                    NodeAddress { type_: "Hostname".into(), address: "node1".into() },
                ]),
                conditions: Some(vec![NodeCondition {
                    type_: "NetworkUnavailable".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        };
        let mut stripped = node.clone();
        stripped.metadata.annotations = Some(
            [("k3s.io/node-args", "[\"server\"]"), ("flannel.alpha.coreos.com/public-ip", "192.0.2.1")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        );
        strip_node(&mut stripped);
        let kept: Vec<&String> = stripped.metadata.annotations.iter().flatten().map(|(k, _)| k).collect();
        assert_eq!(kept, ["k3s.io/node-args"], "only the arguments preflight reads are kept");
        assert_eq!(node_input(&stripped), node_input(&node));
        assert_eq!(internal_ips(&stripped), internal_ips(&node));
        assert!(node_input(&node).network_unavailable);
        assert_eq!(internal_ips(&node)[0], "198.51.100.11".parse::<IpAddr>().unwrap());
        let mut slice = EndpointSlice {
            metadata: meta("default", "web-abc"),
            address_type: "IPv4".into(),
            endpoints: vec![
                Endpoint {
                    addresses: vec!["10.0.0.1".into()],
                    node_name: Some("node1".into()),
                    conditions: Some(EndpointConditions {
                        ready: Some(false),
                        serving: Some(true),
                        terminating: Some(true),
                    }),
                    ..Default::default()
                },
                Endpoint {
                    addresses: vec!["10.0.0.2".into()],
                    node_name: Some("node2".into()),
                    ..Default::default()
                },
            ],
            ports: None,
        };
        assert!(slice_endpoints(&slice).is_none(), "a slice without the service label belongs to nobody");
        slice.metadata.labels = Some(BTreeMap::from([(SLICE_SERVICE_LABEL.into(), "web".into())]));
        let projected = slice_endpoints(&slice).unwrap();
        assert_eq!(projected.service, ServiceKey::new("default", "web"));
        assert_eq!(projected.nodes[0], ("node1".into(), LocalEndpoints { ready: false, serving: true }));
        let mut out = BTreeMap::new();
        add_endpoints(&projected, &mut out);
        // A second slice of the same Service adds to the first.
        let mut other = slice.clone();
        other.endpoints = vec![Endpoint {
            addresses: vec!["10.0.0.3".into()],
            node_name: Some("node1".into()),
            ..Default::default()
        }];
        add_endpoints(&slice_endpoints(&other).unwrap(), &mut out);
        let eps = &out[&ServiceKey::new("default", "web")];
        assert_eq!(eps["node1"], LocalEndpoints { ready: true, serving: true });
        assert_eq!(eps["node2"], LocalEndpoints { ready: true, serving: true });
    }
}
