//! The per-address Lease writes and deletes the core admitted: starting one (a new Lease, a merge
//! patch conditioned on the version decided on, or a conditioned delete), and taking its answer back
//! to the core ([`crate::lease_writes`]).

use ferrolb_api::names::annotations;
use ferrolb_runtime::api_error::ApiFailure;
use ferrolb_runtime::lease::apply_record;
use k8s_openapi::api::coordination::v1::Lease;

use crate::lease_state::LeaseObject;

use super::*;

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

impl<N: Netlink + 'static> Announcer<N> {
    /// A write's or delete's answer: counted, the old holder told of a takeover, and the outcome
    /// given to the core.
    pub(super) fn write_done(&mut self, done: WriteDone) {
        let elapsed = done.started.elapsed();
        metrics::histogram!(crate::metrics::LEASE_WRITE_SECONDS).record(elapsed.as_secs_f64());
        let answer = match done.result {
            Outcome::Deleted => Answer::Deleted,
            Outcome::Written(record) => {
                tracing::debug!(lease = %done.name, holder = ?record.holder(), ?elapsed, "lease written");
                if let Some((node, mut notice)) = done.notify {
                    notice.lease_resource_version = record.resource_version.clone().unwrap_or_default();
                    metrics::counter!(crate::metrics::TAKEOVERS).increment(1);
                    if let Some(hub) = &self.hub {
                        hub.notify_takeover(&node, notice);
                    }
                }
                if done.handover {
                    metrics::counter!(crate::metrics::HANDOVERS).increment(1);
                }
                if let Some(since) = done.free_since {
                    metrics::histogram!(crate::metrics::FAILOVER_SECONDS)
                        .record(since.elapsed().as_secs_f64());
                }
                Answer::Written(*record)
            }
            Outcome::Failed(error) => {
                let failure = ApiFailure::of(&error);
                if failure == ApiFailure::Conflict {
                    tracing::debug!(lease = %done.name, "lease changed meanwhile (409); deciding again");
                } else {
                    tracing::warn!(lease = %done.name, %error, "lease write failed; retrying");
                }
                Answer::Failed(failure)
            }
        };
        self.core.answered(done.name, done.pre_rv, answer, Instant::now());
    }

    /// Starts one Lease write the core admitted: a create, or a merge patch conditioned on the
    /// version decided on.
    pub(super) fn start_write(&self, write: &LeaseWrite) {
        let name = write.name.clone();
        let object = write.object();
        let notify = write.notify.clone().map(|node| {
            (
                node,
                Takeover {
                    namespace: write.key.service.namespace.clone(),
                    service: write.key.service.name.clone(),
                    address: write.key.address,
                    new_holder: self.settings.node.clone(),
                    lease_resource_version: String::new(),
                    replaced_resource_version: write.record.resource_version.clone().unwrap_or_default(),
                },
            )
        });
        tracing::info!(
            lease = %name,
            holder = write.record.holder().unwrap_or(""),
            handover = write.handover,
            create = write.create,
            "writing lease"
        );
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &self.settings.namespace);
        let tx = self.writes_tx.clone();
        let slots = self.write_slots.clone();
        let create = write.create;
        let handover = write.handover;
        let pre_rv = if create { None } else { write.record.resource_version.clone() };
        let namespace = self.settings.namespace.clone();
        let free_since = write.free_since;
        tokio::spawn(async move {
            let _permit = slots.acquire_owned().await;
            let started = Instant::now();
            let result = if create {
                metrics::counter!(crate::metrics::API_REQUESTS, "verb" => "create").increment(1);
                let pp = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
                api.create(&pp, &new_lease(&namespace, &object)).await
            } else {
                metrics::counter!(crate::metrics::API_REQUESTS, "verb" => "patch").increment(1);
                let pp = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
                api.patch(&name, &pp, &Patch::Merge(lease_patch(&object))).await
            };
            let result = result.map_or_else(Outcome::Failed, |l| Outcome::Written(Box::new(record_of(&l))));
            let _ = tx.send(WriteDone { name, pre_rv, result, notify, handover, started, free_since }).await;
        });
    }

    /// Deletes a per-address Lease nothing announces any more, conditioned on the version read.
    pub(super) fn start_delete(&self, name: String, rv: Option<String>) {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &self.settings.namespace);
        let tx = self.writes_tx.clone();
        tokio::spawn(async move {
            let dp = DeleteParams {
                preconditions: Some(Preconditions { resource_version: rv.clone(), uid: None }),
                ..Default::default()
            };
            metrics::counter!(crate::metrics::API_REQUESTS, "verb" => "delete").increment(1);
            let started = Instant::now();
            let result = match api.delete(&name, &dp).await {
                Ok(_) => {
                    tracing::info!(lease = %name, "deleted the Lease of an address nothing announces");
                    Outcome::Deleted
                }
                Err(e) => Outcome::Failed(e),
            };
            let done = WriteDone {
                name,
                pre_rv: rv,
                result,
                notify: None,
                handover: false,
                started,
                free_since: None,
            };
            let _ = tx.send(done).await;
        });
    }
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
