//! What the cluster's status writer writes on the L2AnnouncementPolicies: each policy's
//! `ferrolb.io/InvalidSpec` condition (True with every problem, or False), when it differs from what
//! the policy shows.
//!
//! Only one announcer writes these: the holder of the Lease `ferrolb-announcer-status`
//! ([`ferrolb_api::names::leases::ANNOUNCER_STATUS`]), through one lease-gated writer task
//! ([`ferrolb_runtime::writer`]) that checks its claim, with its expiry, right before each write.
//! This module only decides; each update names the policy's resourceVersion as its basis, so the
//! writer writes a decision once even while the watch cache still shows the policy before the write.

use ferrolb_api::L2AnnouncementPolicy;
use ferrolb_runtime::election::ElectionConfig;
use ferrolb_runtime::writer::Update;

use crate::policy::Policies;
use crate::spec_condition;

/// How much slower than the heartbeat Lease the status writer Lease is campaigned for.
const ELECTION_SLOWDOWN: u32 = 5;

/// The status writer Lease's election: the heartbeat Lease's identity and timings, each five times
/// longer. Every standby reads the Lease once per retry period, so at 100 nodes this is 20 reads a
/// second instead of 100; conditions may wait that much longer for a new writer (a released Lease
/// is taken within a retry period, a dead writer's within a Lease duration).
pub fn election(heartbeat: &ElectionConfig) -> ElectionConfig {
    ElectionConfig {
        identity: heartbeat.identity.clone(),
        lease_duration: heartbeat.lease_duration * ELECTION_SLOWDOWN,
        renew_deadline: heartbeat.renew_deadline * ELECTION_SLOWDOWN,
        retry_period: heartbeat.retry_period * ELECTION_SLOWDOWN,
    }
}

/// The status patches (`{"status": {"conditions": [..]}}`, a merge patch) that the policies need,
/// judged from the objects as cached and their compiled form.
pub fn updates<'a>(
    objects: impl IntoIterator<Item = &'a L2AnnouncementPolicy>,
    compiled: &Policies,
) -> Vec<Update<serde_json::Value>> {
    let mut out = Vec::new();
    for policy in objects {
        let Some(name) = policy.metadata.name.as_deref() else { continue };
        let problems: Vec<String> =
            compiled.errors_of(name).map(|e| format!("{}: {}", e.field, e.message)).collect();
        let current = policy.status.as_ref().and_then(|s| spec_condition::current(&s.conditions));
        let Some(condition) = spec_condition::invalid_spec(current, &problems, policy.metadata.generation)
        else {
            continue;
        };
        out.push(Update {
            key: name.to_owned(),
            basis: policy.metadata.resource_version.clone().unwrap_or_default(),
            payload: serde_json::json!({"status": {"conditions": [condition]}}),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyInput;

    fn policy(name: &str, spec: serde_json::Value, rv: &str) -> L2AnnouncementPolicy {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "ferrolb.io/v1alpha1", "kind": "L2AnnouncementPolicy",
            "metadata": {"name": name, "resourceVersion": rv, "generation": 1},
            "spec": spec,
        }))
        .unwrap()
    }

    fn compiled(objects: &[L2AnnouncementPolicy]) -> Policies {
        let inputs: Vec<PolicyInput> = objects
            .iter()
            .map(|p| PolicyInput { name: p.metadata.name.clone().unwrap(), spec: p.spec.clone() })
            .collect();
        Policies::compile(&inputs)
    }

    #[test]
    fn the_writer_election_is_the_heartbeats_slowed_down_and_stays_valid() {
        let heartbeat = ElectionConfig {
            identity: "node-a".into(),
            lease_duration: std::time::Duration::from_secs(3),
            renew_deadline: std::time::Duration::from_secs(2),
            retry_period: std::time::Duration::from_secs(1),
        };
        let status = election(&heartbeat);
        assert_eq!(status.identity, "node-a");
        assert_eq!(status.retry_period, std::time::Duration::from_secs(5));
        status.validate().unwrap();
    }

    #[test]
    fn each_policy_gets_its_condition_once_shown_nothing_more() {
        let mut objects = vec![
            policy("everywhere", serde_json::json!({}), "5"),
            policy("broken", serde_json::json!({"interfaces": ["eth["]}), "6"),
        ];
        let all = updates(&objects, &compiled(&objects));
        assert_eq!(
            all.iter().map(|u| (u.key.as_str(), u.basis.as_str())).collect::<Vec<_>>(),
            [("everywhere", "5"), ("broken", "6")]
        );
        let condition = |u: &Update<serde_json::Value>| u.payload["status"]["conditions"][0].clone();
        assert_eq!(condition(&all[0])["status"], "False");
        assert_eq!(condition(&all[1])["status"], "True");
        assert!(condition(&all[1])["message"].as_str().unwrap().contains("eth["));

        // Once the policies show their conditions, nothing is left to write.
        for (object, update) in objects.iter_mut().zip(&all) {
            let status = serde_json::json!({"conditions": [condition(update)]});
            object.status = Some(serde_json::from_value(status).unwrap());
        }
        assert!(updates(&objects, &compiled(&objects)).is_empty());
    }
}
