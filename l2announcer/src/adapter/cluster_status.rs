//! What one node writes for the whole cluster, and this node's own report on its heartbeat Lease.
//!
//! Every write one node makes for the whole cluster goes through one Lease, `ferrolb-announcer-status`:
//! once ready, every announcer campaigns for it, and only the holder of its claim (checked with its
//! expiry, [`ClaimGate`]) writes:
//! - the policies' conditions: its rounds send the core's decisions ([`crate::policy_status`]) to
//!   its writer task, which checks the claim again right before each write and counts what it drops
//!   ([`ferrolb_runtime::writer`]);
//! - the Warning Events about addresses nobody can announce and the deletes of per-address Leases
//!   nobody holds: its rounds tell the core they hold the claim ([`crate::round::RoundInputs::writer`]);
//! - in BGP mode, the BGP objects' `ferrolb.io/InvalidSpec` conditions: BGP mode gets the same gate
//!   ([`ClusterWriter::gate`]) from the start, before this node campaigns, and checks it right
//!   before each write.
//!
//! The L2 loop runs in BGP-only setups too (it is what makes the node ready), so they campaign
//! alike. On SIGTERM the Lease is released, so another node writes at once; a writer that dies
//! without releasing it is replaced within the Lease's duration, and these writes pause meanwhile.

use ferrolb_runtime::lease::Leadership;
use ferrolb_runtime::writer::{ClaimGate, StatusWriter};
use tokio::task::JoinHandle;

use super::*;

/// This node's part in the cluster's status writer: a gate that never holds until it is ready,
/// then its campaign for the writer Lease and its writer task.
pub(super) struct ClusterWriter {
    /// Where the elector's claim is forwarded to once it runs (taken by the forwarding task).
    claim: Option<tokio::sync::watch::Sender<Leadership>>,
    /// The claim as forwarded: what this node's writes, and BGP mode's, check.
    gate: ClaimGate,
    elector: Option<LeaderElector>,
    /// Forwards the elector's claim to `claim`; aborted when this is dropped.
    forward: Option<JoinHandle<()>>,
    writer: Option<StatusWriter<serde_json::Value>>,
    /// The policies the writer was last told exist, so that it forgets deleted ones.
    policies_known: Vec<String>,
}

impl Drop for ClusterWriter {
    fn drop(&mut self) {
        if let Some(task) = &self.forward {
            task.abort();
        }
    }
}

impl ClusterWriter {
    /// A node that does not campaign yet: its gate never holds.
    pub(super) fn new() -> Self {
        let (claim, rx) = tokio::sync::watch::channel(Leadership::default());
        Self {
            claim: Some(claim),
            gate: ClaimGate::new(rx),
            elector: None,
            forward: None,
            writer: None,
            policies_known: Vec::new(),
        }
    }

    /// The gate on this node's writer claim, for writes made outside the decision loop (BGP mode's).
    pub(super) fn gate(&self) -> ClaimGate {
        self.gate.clone()
    }

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
        if let Some(claim) = self.claim.take() {
            // Ends when the elector stops, after forwarding its last word (not leading).
            let mut leadership = elector.leadership();
            self.forward = Some(tokio::spawn(async move {
                loop {
                    let now = leadership.borrow_and_update().clone();
                    claim.send_replace(now);
                    if leadership.changed().await.is_err() {
                        break;
                    }
                }
            }));
        }
        let gate = self.gate.clone();
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
        (self.elector, self.writer) = (Some(elector), Some(writer));
        leading
    }

    /// Whether this node holds the writer Lease's claim at `now`.
    pub(super) fn holds_at(&self, now: Instant) -> bool {
        self.gate.holds_at(now)
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
    pub(super) fn write_policy_status(&mut self, objects: &[Arc<L2AnnouncementPolicy>], policies: &Policies) {
        let Some(writer) = &self.cluster.writer else { return };
        let names = || objects.iter().filter_map(|p| p.metadata.name.as_deref());
        if !names().eq(self.cluster.policies_known.iter().map(String::as_str)) {
            let names: Vec<String> = names().map(str::to_owned).collect();
            if writer.keep_only(names.clone()) {
                self.cluster.policies_known = names;
            }
        }
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
        let name = lease_names::node_heartbeat(self.this_node());
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
