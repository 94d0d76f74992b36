//! What one node writes for the whole cluster: garbage collection of per-address Leases, the
//! policies' conditions (by the reporter node), and this node's own report on its heartbeat Lease.

use super::*;

impl Announcer {
    /// Deletes per-address Leases nothing announces any more: their holder does it (or, for a Lease
    /// nobody holds, the node that reports Events), conditioned on the version read.
    pub(super) fn collect_garbage(
        &mut self,
        plan: &Plan,
        leases: &BTreeMap<String, LeaseRecord>,
        nodes: &[NodeState],
    ) {
        if self.shutting_down {
            return;
        }
        let wanted: HashSet<String> = plan
            .addresses
            .iter()
            .map(|a| {
                lease_names::service_address(&a.key.service.namespace, &a.key.service.name, a.key.address)
            })
            .collect();
        let reporter = self.is_reporter(nodes);
        for (name, record) in leases {
            if self.in_flight.len() >= MAX_PENDING_WRITES {
                break;
            }
            if wanted.contains(name) || self.in_flight.contains(name) {
                continue;
            }
            let mine = match record.holder() {
                Some(h) => h == self.me(),
                None => reporter,
            };
            if !mine {
                continue;
            }
            self.in_flight.insert(name.clone());
            let api: Api<Lease> = Api::namespaced(self.client.clone(), &self.settings.namespace);
            let name = name.clone();
            let rv = record.resource_version.clone();
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
                let _ = tx
                    .send(WriteDone {
                        name,
                        pre_rv: rv,
                        result,
                        notify: None,
                        handover: false,
                        started,
                        free_since: None,
                    })
                    .await;
            });
        }
    }

    /// The node that reports cluster-wide facts (Events about addresses nobody can announce, garbage
    /// nobody holds): the first ready node by name, so exactly one does.
    pub(super) fn is_reporter(&self, nodes: &[NodeState]) -> bool {
        nodes
            .iter()
            .filter(|n| n.announcer.as_ref().is_some_and(|a| a.ready))
            .map(|n| n.node.name.as_str())
            .min()
            .is_some_and(|n| n == self.me())
    }

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

    /// Patches this node's report onto its heartbeat Lease when it changed.
    pub(super) fn publish_report(&mut self, own: &Report) {
        let text = own.encode();
        if self.publishing || self.published.as_deref() == Some(text.as_str()) {
            return;
        }
        let name = lease_names::node_heartbeat(self.me());
        if self.heartbeats.get(&name).is_none() {
            return;
        }
        self.publishing = true;
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
