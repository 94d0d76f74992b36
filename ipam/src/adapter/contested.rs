//! Reading a Service for the contest rule ([`crate::contest`]): which addresses its status shows,
//! and which other field manager wrote them.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Service;
use serde_json::{Value, json};

use ferrolb_api::names::conditions;

/// The addresses of `status.loadBalancer.ingress` (IPs, and hostnames as they are).
pub fn ingress_ips(svc: &Service) -> BTreeSet<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
        .collect()
}

/// The addresses of an apply body's `status.loadBalancer.ingress`; `None` when the body does not
/// set the ingress (a condition-only write).
pub fn applied_ips(body: &Value) -> Option<BTreeSet<String>> {
    let ingress = body["status"]["loadBalancer"]["ingress"].as_array()?;
    Some(ingress.iter().filter_map(|i| i["ip"].as_str().map(str::to_string)).collect())
}

/// The field manager other than `ours` that owns `status.loadBalancer` (the latest, by the entries'
/// times), from `metadata.managedFields`.
pub fn status_writer(svc: &Service, ours: &str) -> Option<String> {
    svc.metadata
        .managed_fields
        .as_ref()?
        .iter()
        .filter(|e| e.manager.as_deref().is_some_and(|m| m != ours))
        .filter(|e| e.subresource.as_deref() == Some("status"))
        .filter(|e| e.fields_v1.as_ref().is_some_and(|f| f.0["f:status"].get("f:loadBalancer").is_some()))
        .max_by_key(|e| e.time.as_ref().map(|t| t.0))
        .and_then(|e| e.manager.clone())
}

/// The server-side-apply body written when a hold starts: FerroLB's `IPAMRequestSatisfied` condition
/// as it is and a `StatusContested` condition naming the other writer, and no ingress (so FerroLB
/// lets go of the addresses' field instead of overwriting the other writer's value).
pub fn contested_apply(svc: &Service, message: &str, now: &str) -> Value {
    let existing = svc.status.as_ref().and_then(|s| s.conditions.as_ref());
    let mut conds: Vec<Value> = existing
        .into_iter()
        .flatten()
        .filter(|c| c.type_ == conditions::IPAM_REQUEST_SATISFIED)
        .map(|c| serde_json::to_value(c).unwrap_or(Value::Null))
        .collect();
    let since = existing
        .into_iter()
        .flatten()
        .find(|c| c.type_ == conditions::STATUS_CONTESTED && c.status == "True")
        .map_or_else(|| now.to_string(), |c| c.last_transition_time.0.to_string());
    conds.push(json!({
        "type": conditions::STATUS_CONTESTED,
        "status": "True",
        "reason": "OtherWriter",
        "message": message,
        "lastTransitionTime": since,
    }));
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": svc.metadata.name, "namespace": svc.metadata.namespace},
        "status": {"conditions": conds},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(v: Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn finds_the_other_writer_of_the_load_balancer_status() {
        let s = svc(json!({
            "metadata": {"name": "web", "namespace": "default", "managedFields": [
                {"manager": "ferrolb-ipam", "operation": "Apply", "subresource": "status",
                 "time": "2026-12-03T10:00:02Z",
                 "fieldsV1": {"f:status": {"f:conditions": {}}}},
                {"manager": "kubectl", "operation": "Update", "time": "2026-12-03T10:00:05Z",
                 "fieldsV1": {"f:spec": {}}},
                {"manager": "old-controller", "operation": "Update", "subresource": "status",
                 "time": "2026-12-03T09:00:00Z",
                 "fieldsV1": {"f:status": {"f:loadBalancer": {}}}},
                {"manager": "metallb-controller", "operation": "Update", "subresource": "status",
                 "time": "2026-12-03T10:00:03Z",
                 "fieldsV1": {"f:status": {"f:loadBalancer": {"f:ingress": {}}}}},
            ]},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}, {"hostname": "lb.example"}]}},
        }));
        assert_eq!(status_writer(&s, "ferrolb-ipam").as_deref(), Some("metallb-controller"));
        assert_eq!(ingress_ips(&s), BTreeSet::from(["198.51.100.7".to_string(), "lb.example".to_string()]));
        let none = svc(json!({"metadata": {"name": "web", "managedFields": [
            {"manager": "ferrolb-ipam", "operation": "Apply", "subresource": "status",
             "fieldsV1": {"f:status": {"f:loadBalancer": {}}}}]}}));
        assert_eq!(status_writer(&none, "ferrolb-ipam"), None);
    }

    #[test]
    fn the_hold_body_keeps_the_request_condition_and_sets_no_ingress() {
        let s = svc(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "status": {"conditions": [
                {"type": conditions::IPAM_REQUEST_SATISFIED, "status": "True", "reason": "satisfied",
                 "message": "ok", "lastTransitionTime": "2026-12-03T10:00:00Z"}]},
        }));
        let body = contested_apply(&s, "also written by metallb-controller", "2026-12-03T11:00:00Z");
        assert_eq!(applied_ips(&body), None);
        let conds = body["status"]["conditions"].as_array().unwrap();
        assert_eq!(conds.len(), 2);
        assert_eq!(conds[0]["reason"], "satisfied");
        assert_eq!(conds[1]["type"], conditions::STATUS_CONTESTED);
        assert_eq!(conds[1]["message"], "also written by metallb-controller");
        let full =
            json!({"status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.9", "ipMode": "VIP"}]}}});
        assert_eq!(applied_ips(&full), Some(BTreeSet::from(["198.51.100.9".to_string()])));
    }
}
