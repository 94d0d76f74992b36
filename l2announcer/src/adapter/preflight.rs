//! Preflight's adapter: reads the signals ([`ferrolb_api::preflight`]) from the API every
//! `interval` (kube-proxy's ConfigMap and DaemonSet and Cilium's ConfigMap in `kube-system`, by
//! name), and every few seconds from the watch caches (this Node, the policies) and from the node
//! (links over netlink, two sysctls under `/proc/sys`), and carries out what [`Memory`] says: Warning Events on the Node,
//! one log line per new or resolved finding, and the gauge `ferrolb_announcer_preflight_failed`.
//! It decides nothing and never stops the announcer: a failed read leaves the checks that need it
//! silent, and is logged when its error changes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_api::L2AnnouncementPolicy;
use ferrolb_api::preflight::{
    self, ClusterSignals, EmbeddedKubeProxy, KUBE_IPVS_INTERFACE, KUBE_SYSTEM, LocalSignals, Read, Signals,
};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Node, ObjectReference};
use kube::api::Api;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt as _};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::convert;
use crate::datapath::Netlink;
use crate::policy::{CompiledPolicy, PolicyInput};
use crate::preflight::{Memory, policy_interfaces};

/// A finding that lasts is posted again this often (Events live an hour by default).
const REPEAT: Duration = Duration::from_secs(3600);

/// How often the node-local signals and the caches are looked at again: cheap (a netlink dump, two
/// small files, the caches), and a new policy or a new `kube-ipvs0` shows within seconds.
const LOCAL_TICK: Duration = Duration::from_secs(5);

/// Where the node's sysctls are read.
const PROC_SYS_CONF_ALL: &str = "/proc/sys/net/ipv4/conf/all";

/// What the preflight task reads from, the node's links through `N`.
pub(super) struct Preflight<N> {
    pub client: Client,
    pub node: String,
    pub nodes: Store<Node>,
    pub policies: Store<L2AnnouncementPolicy>,
    pub netlink: Arc<N>,
    pub events: mpsc::Sender<(Event, ObjectReference)>,
    pub interval: Duration,
}

impl<N: Netlink + 'static> Preflight<N> {
    /// Checks now, then again every [`LOCAL_TICK`] with what the node and the watch caches show
    /// (links, sysctls, this Node, the policies: no API request), reading kube-system again every
    /// `interval`, until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let mut memory = Memory::new(REPEAT);
        let mut read_errors: BTreeMap<&'static str, String> = BTreeMap::new();
        let mut cluster = None;
        let mut read_at = Instant::now();
        loop {
            if cluster.is_none() || read_at.elapsed() >= self.interval {
                cluster = Some(self.cluster_signals(&mut read_errors).await);
                read_at = Instant::now();
            }
            let cluster = cluster.clone().unwrap_or_default();
            let signals = self.signals(cluster, &mut read_errors).await;
            let outcome = memory.observe(preflight::evaluate(&signals), Instant::now());
            for (check, failed) in &outcome.failed {
                metrics::gauge!(crate::metrics::PREFLIGHT_FAILED, "check" => check.name()).set(if *failed {
                    1.0
                } else {
                    0.0
                });
            }
            for f in &outcome.new {
                tracing::warn!(check = f.check.name(), action = %f.action, "preflight: {}", f.message);
            }
            for f in &outcome.resolved {
                tracing::info!(check = f.check.name(), "preflight: resolved: {}", f.message);
            }
            for f in outcome.post {
                self.post(&f);
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(LOCAL_TICK.min(self.interval)) => {}
            }
        }
    }

    /// The kube-system reads.
    async fn cluster_signals(&self, errors: &mut BTreeMap<&'static str, String>) -> ClusterSignals {
        let configmaps: Api<ConfigMap> = Api::namespaced(self.client.clone(), KUBE_SYSTEM);
        let daemonsets: Api<DaemonSet> = Api::namespaced(self.client.clone(), KUBE_SYSTEM);
        let (kube_proxy, daemonset, cilium) = tokio::join!(
            configmaps.get_opt(preflight::KUBE_PROXY_NAME),
            daemonsets.get_opt(preflight::KUBE_PROXY_NAME),
            configmaps.get_opt(preflight::CILIUM_CONFIG_NAME),
        );
        let key = |cm: ConfigMap, key: &str| cm.data.and_then(|mut d| d.remove(key));
        ClusterSignals {
            kube_proxy_config: read(errors, "ConfigMap kube-system/kube-proxy", kube_proxy)
                .map(|cm| key(cm, preflight::KUBE_PROXY_CONFIG_KEY)),
            kube_proxy_daemonset: read(errors, "DaemonSet kube-system/kube-proxy", daemonset).map(|_| ()),
            cilium_kube_proxy_replacement: read(errors, "ConfigMap kube-system/cilium-config", cilium)
                .map(|cm| key(cm, preflight::CILIUM_KPR_KEY)),
        }
    }

    /// `cluster` with what this node and the watch caches show now.
    async fn signals(&self, cluster: ClusterSignals, errors: &mut BTreeMap<&'static str, String>) -> Signals {
        let node = self.nodes.state().into_iter().find(|n| n.name_any() == self.node);
        let embedded = node
            .as_ref()
            .and_then(|n| n.metadata.annotations.as_ref())
            .and_then(EmbeddedKubeProxy::from_annotations);
        let links = match self.netlink.links().await {
            Ok(links) => Some(links),
            Err(error) => {
                note_error(errors, "links", Some(error.to_string()));
                None
            }
        };
        let mut local = None;
        let mut policies = None;
        let mut names = Vec::new();
        if let Some(links) = links {
            note_error(errors, "links", None);
            names = links.iter().map(|l| l.name.clone()).collect();
            local = Some(LocalSignals {
                kube_ipvs0: names.iter().any(|n| n == KUBE_IPVS_INTERFACE),
                arp_ignore: sysctl(errors, "arp_ignore"),
                arp_announce: sysctl(errors, "arp_announce"),
            });
            // Without its own Node object this node is selected by no policy yet: nothing to say.
            if let Some(node) = &node {
                let interfaces: Vec<_> = links.iter().map(|l| l.interface()).collect();
                let inputs: Vec<PolicyInput> =
                    self.policies.state().iter().map(|p| convert::policy_input(p)).collect();
                let patterns = inputs.iter().map(|p| (p.name.clone(), p.spec.interfaces.clone())).collect();
                let compiled: Vec<CompiledPolicy> =
                    inputs.iter().filter_map(|p| CompiledPolicy::compile(p).ok()).collect();
                policies =
                    Some(policy_interfaces(&compiled, &convert::node_input(node), &patterns, &interfaces));
            }
        }
        Signals { cluster, embedded, local, policies, interfaces: names }
    }

    fn post(&self, finding: &preflight::Finding) {
        let uid = self.nodes.state().into_iter().find(|n| n.name_any() == self.node).and_then(|n| n.uid());
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(self.node.clone()),
            uid,
            ..Default::default()
        };
        let event = Event {
            type_: EventType::Warning,
            reason: finding.reason().into(),
            note: Some(format!("{} What to do: {}", finding.message, finding.action)),
            action: "Preflight".into(),
            secondary: None,
        };
        if self.events.try_send((event, reference)).is_err() {
            metrics::counter!(crate::metrics::EVENTS_DROPPED).increment(1);
        }
    }
}

/// One `get_opt` as a [`Read`]; a 404 (object or kind missing) is absent.
fn read<K>(
    errors: &mut BTreeMap<&'static str, String>,
    what: &'static str,
    result: Result<Option<K>, kube::Error>,
) -> Read<K> {
    match result {
        Ok(Some(obj)) => {
            note_error(errors, what, None);
            Read::Present(obj)
        }
        Ok(None) => {
            note_error(errors, what, None);
            Read::Absent
        }
        Err(e) if ferrolb_runtime::api_error::ApiFailure::is_not_found(&e) => {
            note_error(errors, what, None);
            Read::Absent
        }
        Err(e) => {
            let text = e.to_string();
            note_error(errors, what, Some(text.clone()));
            Read::Failed(text)
        }
    }
}

/// Logs a read error when it differs from the last one of `what` (and once when it clears).
fn note_error(errors: &mut BTreeMap<&'static str, String>, what: &'static str, error: Option<String>) {
    match error {
        Some(e) if errors.get(what) != Some(&e) => {
            tracing::warn!(what, error = %e, "preflight: reading failed; the checks that need it say nothing");
            errors.insert(what, e);
        }
        Some(_) => {}
        None => {
            if errors.remove(what).is_some() {
                tracing::info!(what, "preflight: reading works again");
            }
        }
    }
}

/// `net.ipv4.conf.all.<name>` of this node (the announcer runs in the host network namespace).
fn sysctl(errors: &mut BTreeMap<&'static str, String>, name: &'static str) -> Option<u32> {
    let path = PathBuf::from(PROC_SYS_CONF_ALL).join(name);
    let result = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e}", path.display()))
        .and_then(|t| t.trim().parse::<u32>().map_err(|e| format!("{}: {t:?}: {e}", path.display())));
    match result {
        Ok(v) => {
            note_error(errors, name, None);
            Some(v)
        }
        Err(e) => {
            note_error(errors, name, Some(e));
            None
        }
    }
}
