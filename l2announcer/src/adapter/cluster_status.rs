//! What one node writes for the whole cluster: the policies' conditions (by the reporter node), and
//! this node's own report on its heartbeat Lease.

use super::*;

impl<N: Netlink + 'static> Announcer<N> {
    /// Sets each policy's `ferrolb.io/InvalidSpec` condition (True with every problem, or False) when
    /// it differs from what the policy shows. Only the reporter node writes it.
    pub(super) fn write_policy_status(&mut self, policies: &Policies) {
        for policy in self.stores.policies.state() {
            let Some(name) = policy.metadata.name.clone() else { continue };
            if self.policy_writes.contains(&name) {
                continue;
            }
            let problems: Vec<String> =
                policies.errors_of(&name).map(|e| format!("{}: {}", e.field, e.message)).collect();
            let current = policy.status.as_ref().and_then(|s| spec_condition::current(&s.conditions));
            let Some(condition) =
                spec_condition::invalid_spec(current, &problems, policy.metadata.generation)
            else {
                continue;
            };
            if !problems.is_empty() {
                let message = problems.join("; ");
                tracing::warn!(policy = %name, %message, "L2AnnouncementPolicy not used: invalid spec");
            }
            self.policy_writes.insert(name.clone());
            let api: Api<L2AnnouncementPolicy> = Api::all(self.client.clone());
            let tx = self.policy_tx.clone();
            tokio::spawn(async move {
                let patch = serde_json::json!({"status": {"conditions": [condition]}});
                let pp = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
                if let Err(error) = api.patch_status(&name, &pp, &Patch::Merge(&patch)).await {
                    tracing::warn!(policy = %name, %error, "writing the policy status failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                let _ = tx.send(name).await;
            });
        }
    }

    /// Patches this node's report (encoded) onto its heartbeat Lease.
    pub(super) fn publish_report(&self, text: String) {
        let name = lease_names::node_heartbeat(self.me());
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &self.settings.namespace);
        let tx = self.publish_tx.clone();
        tokio::spawn(async move {
            let patch =
                serde_json::json!({"metadata": {"annotations": {annotations::ANNOUNCER_STATE: text}}});
            let pp = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
            metrics::counter!(crate::metrics::API_REQUESTS, "verb" => "patch").increment(1);
            let result =
                api.patch(&name, &pp, &Patch::Merge(&patch)).await.map(|_| text).map_err(|e| e.to_string());
            let _ = tx.send(result).await;
        });
    }
}
