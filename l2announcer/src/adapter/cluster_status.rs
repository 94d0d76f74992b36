//! What one node writes for the whole cluster, and this node's own report on its heartbeat Lease.
//!
//! Cluster-wide writes (the policies' conditions) go through one lease-gated writer: once ready,
//! every announcer campaigns for the Lease `ferrolb-announcer-status`; while it holds the claim its
//! rounds send the core's decisions ([`crate::policy_status`]) to its writer task, which checks the
//! claim with its expiry right before each write and counts what it drops
//! ([`ferrolb_runtime::writer`]). On SIGTERM the Lease is released, so another node writes at once.

use ferrolb_runtime::writer::{ClaimGate, StatusWriter};

use super::*;

/// This node's part in the cluster's status writer: nothing until it is ready, then its campaign
/// for the writer Lease and its writer task.
#[derive(Default)]
pub(super) struct ClusterWriter {
    elector: Option<LeaderElector>,
    gate: Option<ClaimGate>,
    writer: Option<StatusWriter<serde_json::Value>>,
}

impl ClusterWriter {
    /// Starts campaigning for the writer Lease in `namespace` with `election`
    /// ([`crate::policy_status::election`]), and the writer task; returns what wakes the loop when this node
    /// starts or stops holding it.
    pub(super) fn start(
        &mut self,
        client: &Client,
        namespace: &str,
        election: ElectionConfig,
    ) -> tokio::sync::watch::Receiver<bool> {
        let elector =
            LeaderElector::spawn(client.clone(), namespace, lease_names::ANNOUNCER_STATUS, election);
        let gate = ClaimGate::new(elector.leadership());
        let api: Api<L2AnnouncementPolicy> = Api::all(client.clone());
        let (writer, _task) = StatusWriter::spawn("l2-policy-status", gate.clone(), move |name, patch| {
            let api = api.clone();
            async move {
                let pp = PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
                metrics::counter!(crate::metrics::API_REQUESTS, "verb" => "patch").increment(1);
                api.patch_status(&name, &pp, &Patch::Merge(&patch)).await.map(|_| ())
            }
        });
        let leading = elector.leading();
        (self.elector, self.gate, self.writer) = (Some(elector), Some(gate), Some(writer));
        leading
    }

    /// Whether this node holds the writer Lease's claim at `now`.
    fn holds_at(&self, now: Instant) -> bool {
        self.gate.as_ref().is_some_and(|g| g.holds_at(now))
    }

    /// Gives the writer Lease up (another node takes it within its retry period); the writer task
    /// ends with the last sender.
    pub(super) async fn release(&mut self) {
        self.writer = None;
        if let Some(elector) = self.elector.take() {
            elector.release().await;
        }
    }
}

impl<N: Netlink + 'static> Announcer<N> {
    /// While this node holds the writer Lease: sends the policies' conditions that differ from what
    /// they show to the writer task (which checks the claim again when it writes).
    pub(super) fn write_policy_status(&self, objects: &[Arc<L2AnnouncementPolicy>], policies: &Policies) {
        let Some(writer) = &self.cluster.writer else { return };
        if !self.cluster.holds_at(Instant::now()) {
            return;
        }
        for update in crate::policy_status::updates(objects.iter().map(|p| &**p), policies) {
            if update.payload["status"]["conditions"][0]["status"] == "True" {
                let message = &update.payload["status"]["conditions"][0]["message"];
                tracing::warn!(policy = %update.key, %message, "L2AnnouncementPolicy not used: invalid spec");
            }
            writer.send(update);
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
