//! The IPAM core's view of a Service: plain data the adapter fills from a `core/v1` Service, so
//! the core needs no Kubernetes types.

use std::collections::BTreeMap;

use ferrolb_api::Family;

pub use ferrolb_api::{ServiceKey, TrafficPolicy};

/// `spec.ipFamilyPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IpFamilyPolicy {
    #[default]
    SingleStack,
    PreferDualStack,
    RequireDualStack,
}

impl IpFamilyPolicy {
    /// Kubernetes' spelling; unknown values are treated as `SingleStack`, as the API server would
    /// not have accepted them anyway.
    pub fn parse(s: &str) -> Self {
        match s {
            "PreferDualStack" => Self::PreferDualStack,
            "RequireDualStack" => Self::RequireDualStack,
            _ => Self::SingleStack,
        }
    }
}

/// One entry of `spec.ports`: what matters for sharing an address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServicePort {
    /// `TCP`, `UDP` or `SCTP` (the API server defaults it to `TCP`).
    pub protocol: String,
    pub port: u16,
}

impl ServicePort {
    pub fn new(protocol: impl Into<String>, port: u16) -> Self {
        Self { protocol: protocol.into(), port }
    }
}

/// A condition as the core decides it, and as the adapter reads it back from the object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConditionView {
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl ConditionView {
    pub fn new(status: bool, reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self { status, reason: reason.into(), message: message.into() }
    }
}

/// What the Service object currently shows of FerroLB's output. Used to import addresses on first
/// sight and to write only when the desired output differs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObservedStatus {
    /// `status.loadBalancer.ingress[].ip`, as written (may hold garbage; hostnames left out).
    pub ingress: Vec<String>,
    /// The `ferrolb.io/IPAMRequestSatisfied` condition, if present.
    pub condition: Option<ConditionView>,
    /// The `ferrolb.io/allocated-from-pool` annotation, if present.
    pub allocated_from_pool: Option<String>,
}

/// Everything the core needs from a Service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceInput {
    pub key: ServiceKey,
    pub uid: String,
    /// `metadata.creationTimestamp` in seconds since the epoch: older Services win ties.
    pub created: i64,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// `spec.type` (`LoadBalancer`, `ClusterIP`, ...).
    pub service_type: String,
    pub load_balancer_class: Option<String>,
    pub ip_family_policy: Option<IpFamilyPolicy>,
    /// `spec.ipFamilies`, in order.
    pub ip_families: Vec<Family>,
    pub ports: Vec<ServicePort>,
    pub external_traffic_policy: TrafficPolicy,
    /// `spec.selector`.
    pub selector: BTreeMap<String, String>,
    /// `spec.loadBalancerIP` (deprecated in Kubernetes, still honoured).
    pub load_balancer_ip: Option<String>,
    pub status: ObservedStatus,
}

impl ServiceInput {
    /// A LoadBalancer Service with no class, single-stack IPv4, no ports: a base for tests and
    /// fixtures, refined with the `with_*` builders.
    pub fn load_balancer(namespace: &str, name: &str) -> Self {
        Self {
            key: ServiceKey::new(namespace, name),
            uid: format!("uid-{namespace}-{name}"),
            service_type: "LoadBalancer".into(),
            ip_families: vec![Family::V4],
            ..Self::default()
        }
    }

    pub fn with_annotation(mut self, k: &str, v: &str) -> Self {
        self.annotations.insert(k.into(), v.into());
        self
    }

    pub fn with_label(mut self, k: &str, v: &str) -> Self {
        self.labels.insert(k.into(), v.into());
        self
    }

    pub fn with_families(mut self, policy: IpFamilyPolicy, families: &[Family]) -> Self {
        self.ip_family_policy = Some(policy);
        self.ip_families = families.to_vec();
        self
    }

    pub fn with_ports(mut self, ports: &[(&str, u16)]) -> Self {
        self.ports = ports.iter().map(|(p, n)| ServicePort::new(*p, *n)).collect();
        self
    }

    pub fn with_ingress(mut self, ips: &[&str]) -> Self {
        self.status.ingress = ips.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn with_created(mut self, created: i64) -> Self {
        self.created = created;
        self
    }
}
