//! The per-address Lease objects the announcer writes: a new one, or a conditioned merge patch.

use ferrolb_api::names::annotations;
use ferrolb_runtime::lease::apply_record;
use k8s_openapi::api::coordination::v1::Lease;

use crate::lease_state::LeaseObject;

/// A new per-address Lease.
pub(super) fn new_lease(namespace: &str, object: &LeaseObject) -> Lease {
    let mut lease = ferrolb_runtime::lease::new_lease(namespace, &object.name, &object.record);
    lease.metadata.labels = Some(object.labels.clone());
    lease.metadata.annotations = Some(object.annotations.clone());
    lease
}

/// A JSON merge patch that writes `object` over the version it was decided on: the
/// `resourceVersion` it carries makes the API server refuse it (409) if the Lease changed meanwhile,
/// like an update, while fields others set on the Lease stay as they are (the announcer's caches
/// keep only the election record, not the whole object an update would need).
pub(super) fn lease_patch(object: &LeaseObject) -> serde_json::Value {
    let mut lease = Lease::default();
    apply_record(&mut lease, &object.record);
    let mut spec = serde_json::to_value(lease.spec.unwrap_or_default()).unwrap_or_default();
    if let Some(spec) = spec.as_object_mut() {
        // A merge patch removes a field only where it says null (a release clears the holder).
        for field in ["holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime"] {
            spec.entry(field).or_insert(serde_json::Value::Null);
        }
    }
    let mut annots = serde_json::Map::new();
    annots.insert(annotations::HEARTBEAT_LEASE.to_owned(), serde_json::Value::Null);
    for (k, v) in &object.annotations {
        annots.insert(k.clone(), v.clone().into());
    }
    serde_json::json!({
        "metadata": {
            "resourceVersion": object.record.resource_version,
            "labels": object.labels,
            "annotations": annots,
        },
        "spec": spec,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ferrolb_runtime::election::LeaseRecord;
    use ferrolb_runtime::lease::record_of;
    use jiff::Timestamp;

    use super::*;
    use crate::lease_state::lease_object;
    use crate::policy::{AddressKey, ServiceKey};

    fn key() -> AddressKey {
        AddressKey::new(ServiceKey::new("default", "web"), "198.51.100.130".parse().unwrap())
    }

    #[test]
    fn a_lease_patch_is_conditioned_and_clears_what_a_release_drops() {
        let wall = Timestamp::from_second(1_800_000_000).unwrap();
        let held = LeaseRecord {
            holder: Some("node-a".into()),
            lease_duration: Some(Duration::from_secs(15)),
            acquire_time: Some(wall),
            renew_time: Some(wall),
            transitions: 3,
            resource_version: Some("41".into()),
        };
        let patch = lease_patch(&lease_object(&key(), held.clone()));
        assert_eq!(patch["metadata"]["resourceVersion"], "41");
        assert_eq!(patch["metadata"]["labels"]["ferrolb.io/service-name"], "web");
        assert_eq!(patch["metadata"]["annotations"][annotations::HEARTBEAT_LEASE], "ferrolb-node-node-a");
        assert_eq!(patch["spec"]["holderIdentity"], "node-a");
        assert_eq!(patch["spec"]["leaseDurationSeconds"], 15);
        assert_eq!(patch["spec"]["leaseTransitions"], 3);
        // Applied to the Lease it was decided on, the patch yields the record it carries.
        let mut lease = new_lease("ferrolb-system", &lease_object(&key(), held.clone()));
        lease.metadata.resource_version = Some("41".into());
        let mut value = serde_json::to_value(&lease).unwrap();
        json_patch::merge(&mut value, &patch);
        assert_eq!(record_of(&serde_json::from_value(value).unwrap()), held);

        let released =
            LeaseRecord { resource_version: Some("42".into()), transitions: 3, ..Default::default() };
        let patch = lease_patch(&lease_object(&key(), released));
        assert!(patch["spec"]["holderIdentity"].is_null() && patch["spec"].get("holderIdentity").is_some());
        assert!(patch["spec"]["renewTime"].is_null() && patch["spec"].get("renewTime").is_some());
        assert!(patch["metadata"]["annotations"][annotations::HEARTBEAT_LEASE].is_null());
        assert!(patch["metadata"]["annotations"].get(annotations::HEARTBEAT_LEASE).is_some());
    }

    #[test]
    fn a_new_lease_carries_no_resource_version() {
        let record = LeaseRecord {
            holder: Some("node-a".into()),
            resource_version: Some("7".into()),
            ..Default::default()
        };
        let lease = new_lease("ferrolb-system", &lease_object(&key(), record));
        assert_eq!(lease.metadata.resource_version, None);
        assert_eq!(lease.metadata.namespace.as_deref(), Some("ferrolb-system"));
        assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("node-a"));
    }
}
