//! Fixture builders on the real types: `Service::test("web").with_class("ferrolb.io/l2")`,
//! `LoadBalancerIPPool::test("lab").with_block("198.51.100.0/28")` and
//! `L2AnnouncementPolicy::test("lan").with_interfaces(&["eth0"])`, instead of `json!` blobs
//! mutated by path. A misspelt field is then a compile error, not an object the API server
//! silently defaults, and a test reads as what it sets.
//!
//! Each builder consumes and returns the object, so a fixture is one expression. Only what the
//! suites set is here; anything rarer is a field of the real type, set directly.
//! JSON merge patches stay JSON: a patch is a patch, not an object.

use std::collections::BTreeMap;

use ferrolb_api::{
    IpBlock, L2AnnouncementPolicy, L2AnnouncementPolicySpec, LoadBalancerIPPool, LoadBalancerIPPoolSpec,
};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta};

/// Builders for test `Service`s.
pub trait ServiceFixture: Sized {
    /// A LoadBalancer Service `name` with one port, 80, whose protocol is left to the API
    /// server's default (TCP), as a user's minimal manifest leaves it. No namespace: the API it
    /// is created through gives it one.
    fn test(name: &str) -> Self;
    /// Sets `metadata.namespace`, for objects that are serialized rather than created through a
    /// namespaced API.
    fn in_namespace(self, namespace: &str) -> Self;
    /// Adds labels (keeping those already set; a repeated key takes the new value).
    fn with_labels(self, labels: &[(&str, &str)]) -> Self;
    /// Adds annotations (keeping those already set; a repeated key takes the new value).
    fn with_annotations(self, annotations: &[(&str, &str)]) -> Self;
    /// `spec.loadBalancerClass`.
    fn with_class(self, class: &str) -> Self;
    /// Replaces the ports with one unnamed `port`, protocol defaulted, as [`ServiceFixture::test`].
    fn with_port(self, port: u16) -> Self;
    /// Replaces the ports with these `(protocol, port)` pairs, named `p<port>-<protocol>` (several
    /// ports need names).
    fn with_ports(self, ports: &[(&str, u16)]) -> Self;
    /// `spec.ipFamilies`, e.g. `["IPv6"]`.
    fn with_ip_families(self, families: &[&str]) -> Self;
    /// `spec.ipFamilyPolicy`: `SingleStack`, `PreferDualStack` or `RequireDualStack`.
    fn with_family_policy(self, policy: &str) -> Self;
    /// The deprecated `spec.loadBalancerIP`, which FerroLB still honours as a request.
    fn with_load_balancer_ip(self, ip: &str) -> Self;
    /// `spec.externalTrafficPolicy`: `Cluster` or `Local`.
    fn with_external_traffic_policy(self, policy: &str) -> Self;
    /// `spec.selector`: the Pods behind the Service (not a pool's Service selector).
    fn with_pod_selector(self, labels: &[(&str, &str)]) -> Self;
}

impl ServiceFixture for Service {
    fn test(name: &str) -> Self {
        Service {
            metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                ports: Some(vec![ServicePort { port: 80, ..ServicePort::default() }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    fn in_namespace(mut self, namespace: &str) -> Self {
        self.metadata.namespace = Some(namespace.into());
        self
    }

    fn with_labels(mut self, labels: &[(&str, &str)]) -> Self {
        insert(&mut self.metadata.labels, labels);
        self
    }

    fn with_annotations(mut self, annotations: &[(&str, &str)]) -> Self {
        insert(&mut self.metadata.annotations, annotations);
        self
    }

    fn with_class(mut self, class: &str) -> Self {
        spec(&mut self).load_balancer_class = Some(class.into());
        self
    }

    fn with_port(mut self, port: u16) -> Self {
        spec(&mut self).ports = Some(vec![ServicePort { port: port.into(), ..ServicePort::default() }]);
        self
    }

    fn with_ports(mut self, ports: &[(&str, u16)]) -> Self {
        let ports = ports
            .iter()
            .map(|(protocol, port)| ServicePort {
                name: Some(format!("p{port}-{}", protocol.to_lowercase())),
                port: (*port).into(),
                protocol: Some((*protocol).into()),
                ..ServicePort::default()
            })
            .collect();
        spec(&mut self).ports = Some(ports);
        self
    }

    fn with_ip_families(mut self, families: &[&str]) -> Self {
        spec(&mut self).ip_families = Some(families.iter().map(|f| (*f).into()).collect());
        self
    }

    fn with_family_policy(mut self, policy: &str) -> Self {
        spec(&mut self).ip_family_policy = Some(policy.into());
        self
    }

    fn with_load_balancer_ip(mut self, ip: &str) -> Self {
        spec(&mut self).load_balancer_ip = Some(ip.into());
        self
    }

    fn with_external_traffic_policy(mut self, policy: &str) -> Self {
        spec(&mut self).external_traffic_policy = Some(policy.into());
        self
    }

    fn with_pod_selector(mut self, labels: &[(&str, &str)]) -> Self {
        insert(&mut spec(&mut self).selector, labels);
        self
    }
}

fn spec(s: &mut Service) -> &mut ServiceSpec {
    s.spec.get_or_insert_with(ServiceSpec::default)
}

/// Builders for test `LoadBalancerIPPool`s.
pub trait PoolFixture: Sized {
    /// A pool `name` with no blocks yet (the API server wants at least one) and every other
    /// field at its default: enabled, auto-assigning, no selector, no priority.
    fn test(name: &str) -> Self;
    /// Adds labels to the pool's metadata (what a policy's `poolSelector` sees).
    fn with_labels(self, labels: &[(&str, &str)]) -> Self;
    /// Adds a CIDR block.
    fn with_block(self, cidr: &str) -> Self;
    /// Adds an inclusive `start`..`stop` block. Not checked: a reversed range is a test's to send.
    fn with_range(self, start: &str, stop: &str) -> Self;
    /// Adds a block of the one address `ip` (a `start` without a `stop`).
    fn with_address(self, ip: &str) -> Self;
    /// `spec.priority`: lower values are tried first.
    fn with_priority(self, priority: i32) -> Self;
    /// `spec.serviceSelector` (see [`match_labels`], [`match_expression`]).
    fn with_service_selector(self, selector: LabelSelector) -> Self;
    /// Adds to `spec.serviceSelectors`, OR-ed with each other and with `serviceSelector`.
    fn with_service_selectors(self, selectors: impl IntoIterator<Item = LabelSelector>) -> Self;
    /// `spec.autoAssign`: `false` serves only Services that name the pool or ask for its addresses.
    fn with_auto_assign(self, auto_assign: bool) -> Self;
    /// `spec.disabled: true`: no new allocations.
    fn disabled(self) -> Self;
}

impl PoolFixture for LoadBalancerIPPool {
    fn test(name: &str) -> Self {
        LoadBalancerIPPool::new(name, LoadBalancerIPPoolSpec::default())
    }

    fn with_labels(mut self, labels: &[(&str, &str)]) -> Self {
        insert(&mut self.metadata.labels, labels);
        self
    }

    fn with_block(mut self, cidr: &str) -> Self {
        self.spec.blocks.push(IpBlock::cidr(cidr));
        self
    }

    fn with_range(mut self, start: &str, stop: &str) -> Self {
        self.spec.blocks.push(IpBlock::range(start, stop));
        self
    }

    fn with_address(mut self, ip: &str) -> Self {
        self.spec.blocks.push(IpBlock { start: Some(ip.into()), ..IpBlock::default() });
        self
    }

    fn with_priority(mut self, priority: i32) -> Self {
        self.spec.priority = Some(priority);
        self
    }

    fn with_service_selector(mut self, selector: LabelSelector) -> Self {
        self.spec.service_selector = Some(selector);
        self
    }

    fn with_service_selectors(mut self, selectors: impl IntoIterator<Item = LabelSelector>) -> Self {
        self.spec.service_selectors.extend(selectors);
        self
    }

    fn with_auto_assign(mut self, auto_assign: bool) -> Self {
        self.spec.auto_assign = auto_assign;
        self
    }

    fn disabled(mut self) -> Self {
        self.spec.disabled = true;
        self
    }
}

/// Builders for test `L2AnnouncementPolicy`s.
pub trait PolicyFixture: Sized {
    /// A policy `name` with every field at its default: every Service, every node, every pool,
    /// every eligible interface, announcing `loadBalancerIPs` but not `externalIPs`.
    fn test(name: &str) -> Self;
    /// Adds interface regexes (anchored by the announcer) to `spec.interfaces`. Not checked: a
    /// regex that matches nothing, or does not compile, is a test's to send.
    fn with_interfaces(self, interfaces: &[&str]) -> Self;
    /// `spec.serviceSelector` (see [`match_labels`], [`match_expression`]).
    fn with_service_selector(self, selector: LabelSelector) -> Self;
}

impl PolicyFixture for L2AnnouncementPolicy {
    fn test(name: &str) -> Self {
        L2AnnouncementPolicy::new(name, L2AnnouncementPolicySpec::default())
    }

    fn with_interfaces(mut self, interfaces: &[&str]) -> Self {
        self.spec.interfaces.extend(interfaces.iter().map(|i| (*i).to_owned()));
        self
    }

    fn with_service_selector(mut self, selector: LabelSelector) -> Self {
        self.spec.service_selector = Some(selector);
        self
    }
}

/// A selector of `matchLabels` alone.
pub fn match_labels(labels: &[(&str, &str)]) -> LabelSelector {
    let mut map = None;
    insert(&mut map, labels);
    LabelSelector { match_labels: map, match_expressions: None }
}

/// A selector of one `matchExpressions` entry, e.g. `(key, "In", ["a", "b"])`.
pub fn match_expression(key: &str, operator: &str, values: &[&str]) -> LabelSelector {
    let requirement = LabelSelectorRequirement {
        key: key.into(),
        operator: operator.into(),
        values: Some(values.iter().map(|v| (*v).into()).collect()),
    };
    LabelSelector { match_labels: None, match_expressions: Some(vec![requirement]) }
}

fn insert(map: &mut Option<BTreeMap<String, String>>, entries: &[(&str, &str)]) {
    let map = map.get_or_insert_with(BTreeMap::new);
    map.extend(entries.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_test_service_is_the_minimal_load_balancer_manifest() {
        let s = Service::test("web").with_annotations(&[("a", "1")]).with_annotations(&[("b", "2")]);
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "annotations": {"a": "1", "b": "2"}},
                "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}})
        );
    }

    #[test]
    fn ports_are_named_by_port_and_protocol() {
        let s = Service::test("dns").with_ports(&[("UDP", 53), ("TCP", 53)]);
        assert_eq!(
            serde_json::to_value(s.spec.unwrap().ports).unwrap(),
            json!([{"name": "p53-udp", "port": 53, "protocol": "UDP"},
                {"name": "p53-tcp", "port": 53, "protocol": "TCP"}])
        );
    }

    #[test]
    fn a_test_pool_serializes_its_blocks_and_selector() {
        let p = LoadBalancerIPPool::test("lab")
            .with_block("198.51.100.0/28")
            .with_range("2001:db8::1", "2001:db8::9")
            .with_address("203.0.113.1")
            .with_priority(0)
            .with_service_selector(match_expression("team", "In", &["a"]));
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["apiVersion"], "ferrolb.io/v1alpha1");
        assert_eq!(v["metadata"]["name"], "lab");
        assert_eq!(
            v["spec"]["blocks"],
            json!([{"cidr": "198.51.100.0/28"}, {"start": "2001:db8::1", "stop": "2001:db8::9"},
                {"start": "203.0.113.1"}])
        );
        assert_eq!(v["spec"]["priority"], 0);
        assert_eq!(
            v["spec"]["serviceSelector"],
            json!({"matchExpressions": [{"key": "team", "operator": "In", "values": ["a"]}]})
        );
    }

    #[test]
    fn a_test_policy_serializes_its_interfaces_and_selector() {
        let p = L2AnnouncementPolicy::test("lan")
            .with_interfaces(&["eth0"])
            .with_interfaces(&["nomatch[0-9]+"])
            .with_service_selector(match_labels(&[("conformance/announce", "lan")]));
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["apiVersion"], "ferrolb.io/v1alpha1");
        assert_eq!(v["kind"], "L2AnnouncementPolicy");
        assert_eq!(v["metadata"], json!({"name": "lan"}));
        assert_eq!(
            v["spec"],
            json!({"interfaces": ["eth0", "nomatch[0-9]+"],
                "serviceSelector": {"matchLabels": {"conformance/announce": "lan"}},
                "loadBalancerIPs": true, "externalIPs": false})
        );
    }
}
