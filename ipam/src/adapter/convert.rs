//! Kubernetes objects in, plain core inputs out; core outputs in, the patch bodies FerroLB writes
//! out. No I/O: the loop and the writer are elsewhere.

use std::collections::BTreeMap;
use std::sync::Arc;

use ferrolb_api::names::{annotations, conditions};
use ferrolb_api::{Family, LoadBalancerIPPool, ServedClasses};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde_json::{Value, json};

use crate::PoolInput;
use crate::service::{
    ConditionView, IpFamilyPolicy, ObservedStatus, ServiceInput, ServiceKey, ServicePort, TrafficPolicy,
};
use crate::state::{PoolStatusOutput, ServiceStatusOutput};

fn created(t: Option<&Time>) -> i64 {
    t.map_or(0, |t| t.0.as_second())
}

fn condition_view(c: &Condition) -> ConditionView {
    ConditionView::new(c.status == "True", c.reason.clone(), c.message.clone())
}

/// The key of a Service object.
pub fn service_key(svc: &Service) -> ServiceKey {
    ServiceKey::new(
        svc.metadata.namespace.clone().unwrap_or_default(),
        svc.metadata.name.clone().unwrap_or_default(),
    )
}

/// What the adapter keeps of a Service between its events: the core's input, and the one thing a
/// status write needs beyond it. A whole `Service` object is several KiB (its managedFields alone
/// are trees of JSON maps); at 10,000 Services the cache of whole objects was most of the
/// controller's memory. Whatever else an event carries (managedFields for the contest rule) is
/// read from the event and not kept.
#[derive(Debug, Clone)]
pub struct CachedService {
    /// Shared with the core ([`crate::Ipam`] keeps the same input while leading).
    pub input: Arc<ServiceInput>,
    /// The `IPAMRequestSatisfied` condition's `lastTransitionTime`, and whether its status is
    /// `True`, when it is `True` or `False`: a write with the same status keeps the time.
    pub condition_since: Option<(bool, Time)>,
}

impl CachedService {
    pub fn new(svc: &Service) -> Self {
        let condition_since = svc
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == conditions::IPAM_REQUEST_SATISFIED))
            .and_then(|c| match c.status.as_str() {
                "True" => Some((true, c.last_transition_time.clone())),
                "False" => Some((false, c.last_transition_time.clone())),
                _ => None,
            });
        Self { input: Arc::new(service_input(svc)), condition_since }
    }

    fn previous_condition(&self) -> Option<(&str, &Time)> {
        self.condition_since.as_ref().map(|(ok, t)| (if *ok { "True" } else { "False" }, t))
    }
}

/// What the core needs from a Service.
pub fn service_input(svc: &Service) -> ServiceInput {
    let spec = svc.spec.clone().unwrap_or_default();
    let status = svc.status.clone().unwrap_or_default();
    let ingress = status
        .load_balancer
        .and_then(|lb| lb.ingress)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| i.ip)
        .collect();
    let condition = status
        .conditions
        .unwrap_or_default()
        .iter()
        .find(|c| c.type_ == conditions::IPAM_REQUEST_SATISFIED)
        .map(condition_view);
    let annotations: BTreeMap<String, String> = svc.metadata.annotations.clone().unwrap_or_default();
    ServiceInput {
        key: service_key(svc),
        uid: svc.metadata.uid.clone().unwrap_or_default(),
        created: created(svc.metadata.creation_timestamp.as_ref()),
        labels: svc.metadata.labels.clone().unwrap_or_default(),
        status: ObservedStatus {
            ingress,
            condition,
            allocated_from_pool: annotations.get(annotations::ALLOCATED_FROM_POOL).cloned(),
        },
        annotations,
        service_type: spec.type_.unwrap_or_else(|| "ClusterIP".into()),
        load_balancer_class: spec.load_balancer_class,
        ip_family_policy: spec.ip_family_policy.as_deref().map(IpFamilyPolicy::parse),
        ip_families: spec
            .ip_families
            .unwrap_or_default()
            .iter()
            .filter_map(|f| match f.as_str() {
                "IPv4" => Some(Family::V4),
                "IPv6" => Some(Family::V6),
                _ => None,
            })
            .collect(),
        ports: spec
            .ports
            .unwrap_or_default()
            .iter()
            .filter_map(|p| {
                Some(ServicePort::new(
                    p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    u16::try_from(p.port).ok()?,
                ))
            })
            .collect(),
        external_traffic_policy: spec
            .external_traffic_policy
            .as_deref()
            .map(TrafficPolicy::parse)
            .unwrap_or_default(),
        selector: spec.selector.unwrap_or_default(),
        load_balancer_ip: spec.load_balancer_ip.filter(|s| !s.is_empty()),
    }
}

/// What the core needs from a pool.
pub fn pool_input(pool: &LoadBalancerIPPool) -> PoolInput {
    PoolInput {
        name: pool.metadata.name.clone().unwrap_or_default(),
        created: created(pool.metadata.creation_timestamp.as_ref()),
        spec: pool.spec.clone(),
        status: pool.status.clone(),
    }
}

/// A condition as written, keeping `lastTransitionTime` when the status did not change;
/// `previous` is the status and time the object shows.
fn condition_json(
    type_: &str,
    view: &ConditionView,
    previous: Option<(&str, &Time)>,
    generation: Option<i64>,
    now: &str,
) -> Value {
    let status = if view.status { "True" } else { "False" };
    let since = previous
        .filter(|(s, _)| *s == status)
        .map(|(_, t)| t.0.to_string())
        .unwrap_or_else(|| now.to_string());
    let mut c = json!({
        "type": type_,
        "status": status,
        "reason": view.reason,
        "message": view.message,
        "lastTransitionTime": since,
    });
    if let Some(g) = generation {
        c["observedGeneration"] = json!(g);
    }
    c
}

/// The server-side-apply body for a Service's `/status`: FerroLB's ingress and condition.
///
/// A served Service always gets the ingress list, empty when nothing is assigned: forced, so a
/// released address disappears even when another manager (MetalLB before a migration) co-owns
/// the list with the same value. A Service no longer served (`output` None) gets an empty
/// ingress too, unless it now belongs to a load-balancer class not in `classes` (that
/// implementation's list is not ours to clear); the condition is dropped by owning no condition.
pub fn service_status_apply(
    svc: &CachedService,
    output: Option<&ServiceStatusOutput>,
    classes: &ServedClasses,
    now: &str,
) -> Value {
    let mut status = json!({});
    match output {
        Some(out) => {
            let ingress: Vec<Value> =
                out.ingress.iter().map(|ip| json!({"ip": ip.to_string(), "ipMode": "VIP"})).collect();
            status["loadBalancer"] = json!({"ingress": ingress});
            status["conditions"] = json!([condition_json(
                conditions::IPAM_REQUEST_SATISFIED,
                &out.condition,
                svc.previous_condition(),
                None,
                now
            )]);
        }
        None => {
            let class = svc.input.load_balancer_class.as_deref();
            if class.is_none() || classes.serves(class) {
                status["loadBalancer"] = json!({"ingress": []});
            }
        }
    }
    let key = &svc.input.key;
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": key.name, "namespace": key.namespace},
        "status": status,
    })
}

/// The merge patch that sets (or removes) `ferrolb.io/allocated-from-pool`, when it must change.
pub fn pool_annotation_patch(svc: &CachedService, desired: Option<String>) -> Option<Value> {
    (svc.input.status.allocated_from_pool != desired)
        .then(|| json!({"metadata": {"annotations": {annotations::ALLOCATED_FROM_POOL: desired}}}))
}

/// The server-side-apply body for a pool's `/status`.
pub fn pool_status_apply(pool: &LoadBalancerIPPool, out: &PoolStatusOutput, now: &str) -> Value {
    let previous = |t: &str| {
        let c = pool.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == t))?;
        Some((c.status.as_str(), &c.last_transition_time))
    };
    let generation = pool.metadata.generation;
    json!({
        "apiVersion": "ferrolb.io/v1alpha1",
        "kind": "LoadBalancerIPPool",
        "metadata": {"name": pool.metadata.name},
        "status": {
            "conditions": [
                condition_json(conditions::POOL_CONFLICT, &out.conflict, previous(conditions::POOL_CONFLICT), generation, now),
                condition_json(conditions::INVALID_SPEC, &out.invalid_spec, previous(conditions::INVALID_SPEC), generation, now),
            ],
            "ipsTotal": out.total.to_string(),
            "ipsUsed": out.used.to_string(),
            "ipsAvailable": out.available.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(v: Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn service_inputs_read_what_the_core_needs() {
        let s = svc(json!({
            "metadata": {"name": "web", "namespace": "prod", "uid": "u1", "creationTimestamp": "2026-01-01T00:00:00Z",
                "labels": {"app": "web"}, "annotations": {"ferrolb.io/allocated-from-pool": "lab"}},
            "spec": {"type": "LoadBalancer", "ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv6", "IPv4"],
                "ports": [{"port": 53, "protocol": "UDP"}, {"port": 80}], "externalTrafficPolicy": "Local",
                "selector": {"app": "web"}, "loadBalancerIP": ""},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.130"}, {"hostname": "x.example"}]},
                "conditions": [{"type": "ferrolb.io/IPAMRequestSatisfied", "status": "True", "reason": "satisfied",
                    "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }));
        let i = service_input(&s);
        assert_eq!(i.key, ServiceKey::new("prod", "web"));
        assert_eq!(i.created, 1_767_225_600);
        assert_eq!(i.ip_families, [Family::V6, Family::V4]);
        assert_eq!(i.ports, [ServicePort::new("UDP", 53), ServicePort::new("TCP", 80)]);
        assert_eq!(i.external_traffic_policy, TrafficPolicy::Local);
        assert_eq!(i.status.ingress, ["198.51.100.130"]);
        assert_eq!(i.status.allocated_from_pool.as_deref(), Some("lab"));
        assert!(i.status.condition.unwrap().status);
        assert!(i.load_balancer_ip.is_none(), "an empty loadBalancerIP is no request");
    }

    #[test]
    fn status_body_keeps_transition_time_when_status_is_unchanged() {
        let classes = ServedClasses::default();
        let s = svc(json!({"metadata": {"name": "web", "namespace": "prod"},
            "status": {"conditions": [{"type": "ferrolb.io/IPAMRequestSatisfied", "status": "True", "reason": "satisfied",
                "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}));
        let out = ServiceStatusOutput {
            ingress: vec!["198.51.100.130".parse().unwrap()],
            pools: vec!["lab".into()],
            condition: ConditionView::new(true, "satisfied", "1 of 1 assigned"),
        };
        let body =
            service_status_apply(&CachedService::new(&s), Some(&out), &classes, "2026-11-21T00:00:00Z");
        assert_eq!(
            body["status"]["loadBalancer"]["ingress"],
            json!([{"ip": "198.51.100.130", "ipMode": "VIP"}])
        );
        assert_eq!(body["status"]["conditions"][0]["lastTransitionTime"], "2026-01-01T00:00:00Z");
        let failed = ServiceStatusOutput {
            ingress: vec![],
            pools: vec![],
            condition: ConditionView::new(false, "no_pool", "x"),
        };
        let body =
            service_status_apply(&CachedService::new(&s), Some(&failed), &classes, "2026-11-21T00:00:00Z");
        assert_eq!(body["status"]["loadBalancer"], json!({"ingress": []}), "a released address must go");
        assert_eq!(body["status"]["conditions"][0]["lastTransitionTime"], "2026-11-21T00:00:00Z");
        assert_eq!(
            service_status_apply(&CachedService::new(&s), None, &classes, "now")["status"],
            json!({"loadBalancer": {"ingress": []}})
        );
        let other =
            svc(json!({"metadata": {"name": "o"}, "spec": {"loadBalancerClass": "example.com/other"}}));
        assert_eq!(
            service_status_apply(&CachedService::new(&other), None, &classes, "now")["status"],
            json!({}),
            "another class's ingress is left alone"
        );
        let served_other = ServedClasses::new(true, ["example.com/other"]);
        assert_eq!(
            service_status_apply(&CachedService::new(&other), None, &served_other, "now")["status"],
            json!({"loadBalancer": {"ingress": []}}),
            "a served class's ingress is FerroLB's to clear"
        );
    }

    #[test]
    fn annotation_patch_only_when_changed() {
        let s = svc(
            json!({"metadata": {"name": "web", "annotations": {"ferrolb.io/allocated-from-pool": "lab"}}}),
        );
        assert!(pool_annotation_patch(&CachedService::new(&s), Some("lab".into())).is_none());
        assert_eq!(
            pool_annotation_patch(&CachedService::new(&s), None).unwrap()["metadata"]["annotations"]["ferrolb.io/allocated-from-pool"],
            Value::Null
        );
    }
}
