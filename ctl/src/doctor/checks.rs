//! The checks, one function each: plain objects in, findings out.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ferrolb_api::names::{self, annotations, conditions, labels, reasons, taints};
use ferrolb_api::{L2AnnouncementPolicy, Selector, preflight};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt as _;
use regex::Regex;
use serde::Deserialize;

use super::{Check, Finding, Severity, Snapshot, Thresholds};

/// Label k3s ServiceLB puts on its pods: the Service's name.
pub const SERVICELB_SVCNAME_LABEL: &str = "svccontroller.k3s.cattle.io/svcname";
/// Label k3s ServiceLB puts on its pods: the Service's namespace (k3s 1.25 and later).
pub const SERVICELB_SVCNAMESPACE_LABEL: &str = "svccontroller.k3s.cattle.io/svcnamespace";
/// EndpointSlices name their Service with this label.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

const CRDS_ACTION: &str = "install or upgrade FerroLB's CRDs from the release you run: `helm upgrade --install \
     ferrolb <chart>` installs and updates them (or apply the CRD manifests of the chart with `kubectl apply \
     --server-side`)";

fn condition<'a>(conds: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conds.iter().find(|c| c.type_ == type_)
}

fn service_conditions(s: &Service) -> &[Condition] {
    s.status.as_ref().and_then(|st| st.conditions.as_deref()).unwrap_or_default()
}

fn service_key(s: &Service) -> String {
    format!("{}/{}", s.namespace().unwrap_or_default(), s.name_any())
}

/// Whole seconds, for messages.
fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

// ---------------------------------------------------------------------------------------------
// crds

pub fn crds(s: &Snapshot) -> Vec<Finding> {
    let version = names::VERSION;
    let mut out = Vec::new();
    for want in ferrolb_api::crd::all() {
        let name = want.metadata.name.clone().unwrap_or_default();
        let subject = format!("CRD {name}");
        let Some(have) = s.crds.iter().find(|c| c.metadata.name.as_deref() == Some(&name)) else {
            out.push(Finding::error(Check::Crds, subject, "not installed", CRDS_ACTION));
            continue;
        };
        let established = have
            .status
            .as_ref()
            .and_then(|st| st.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Established"));
        if let Some(c) = established.filter(|c| c.status == "False") {
            out.push(Finding::error(
                Check::Crds,
                subject,
                format!("not established: {}", c.message.as_deref().unwrap_or_default()),
                format!("read `kubectl get crd {name} -o yaml` (status.conditions), fix what it names, then {CRDS_ACTION}"),
            ));
            continue;
        }
        let served: Vec<&str> =
            have.spec.versions.iter().filter(|v| v.served).map(|v| v.name.as_str()).collect();
        let Some(have_version) = have.spec.versions.iter().find(|v| v.name == version && v.served) else {
            out.push(Finding::error(
                Check::Crds,
                subject,
                format!("does not serve {version} (served: {})", list_or_none(&served)),
                CRDS_ACTION,
            ));
            continue;
        };
        let want_schema = want
            .spec
            .versions
            .iter()
            .find(|v| v.name == version)
            .and_then(|v| v.schema.as_ref())
            .map(|s| serde_json::to_value(s).expect("a schema serializes"));
        let have_schema =
            have_version.schema.as_ref().map(|s| serde_json::to_value(s).expect("a schema serializes"));
        if want_schema != have_schema {
            out.push(Finding::warning(
                Check::Crds,
                subject,
                format!(
                    "serves {version}, but its schema differs from the one of this ferrolbctl ({}): the CRDs \
                     and the release are from different versions",
                    env!("CARGO_PKG_VERSION")
                ),
                format!("{CRDS_ACTION}; or use the ferrolbctl of the installed release"),
            ));
            continue;
        }
        out.push(Finding::ok(
            Check::Crds,
            subject,
            format!("installed, serves {version}, schema as expected"),
        ));
    }
    out
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() { "none".into() } else { items.join(", ") }
}

// ---------------------------------------------------------------------------------------------
// Leases

/// A Lease's holder and how long ago it was last renewed (acquired, when never renewed).
struct LeaseView {
    holder: Option<String>,
    age: Option<Duration>,
    duration: Duration,
}

fn lease_view(lease: &Lease, now: jiff::Timestamp) -> LeaseView {
    let spec = lease.spec.as_ref();
    let holder = spec.and_then(|s| s.holder_identity.clone()).filter(|h| !h.is_empty());
    let at = spec.and_then(|s| s.renew_time.as_ref().or(s.acquire_time.as_ref())).map(|t| t.0);
    let age = at.map(|t| {
        let d = now.duration_since(t);
        // A renewal stamped by a clock ahead of ours is fresh.
        Duration::try_from(d).unwrap_or(Duration::ZERO)
    });
    let duration = spec
        .and_then(|s| s.lease_duration_seconds)
        .map_or(Duration::from_secs(15), |d| Duration::from_secs(u64::try_from(d).unwrap_or(0)));
    LeaseView { holder, age, duration }
}

impl LeaseView {
    fn fresh(&self, slack: Duration) -> bool {
        self.age.is_some_and(|a| a <= self.duration + slack)
    }

    fn age_text(&self) -> String {
        self.age.map_or_else(|| "never".into(), |a| format!("{} ago", secs(a)))
    }
}

pub fn controller(s: &Snapshot, now: jiff::Timestamp, t: &Thresholds) -> Vec<Finding> {
    let subject = format!("Lease {}/{}", s.namespace, names::IPAM_LEASE_NAME);
    let logs = format!(
        "read the controller's logs: `kubectl -n {} logs deploy/ferrolb-ipam` (and `kubectl -n {} get pods` for \
         crashing or pending replicas)",
        s.namespace, s.namespace
    );
    let Some(lease) = &s.ipam_lease else {
        return vec![Finding::error(
            Check::Controller,
            subject,
            "not found: no IPAM controller has run in this namespace, so no Service gets an address",
            format!(
                "check that ferrolb-ipam is deployed here ({logs}); if FerroLB is installed in another \
                 namespace, pass --namespace"
            ),
        )];
    };
    let view = lease_view(lease, now);
    match &view.holder {
        None => vec![Finding::error(
            Check::Controller,
            subject,
            "held by nobody: no replica leads, so nothing assigns addresses",
            logs,
        )],
        Some(holder) if !view.fresh(t.clock_slack) => vec![Finding::error(
            Check::Controller,
            subject,
            format!(
                "held by {holder} but last renewed {} (lease duration {}): the leader is gone or stuck and \
                 no standby took over",
                view.age_text(),
                secs(view.duration)
            ),
            logs,
        )],
        Some(holder) => vec![Finding::ok(
            Check::Controller,
            subject,
            format!("held by {holder}, renewed {}", view.age_text()),
        )],
    }
}

// ---------------------------------------------------------------------------------------------
// Nodes and announcers

/// Why a node cannot announce, or `None` when it can (the announcer's own rules, DESIGN.md §4).
fn not_announcing_because(node: &Node) -> Option<&'static str> {
    if node.labels().contains_key(labels::EXCLUDE_FROM_EXTERNAL_LB) {
        return Some("excluded by label");
    }
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default();
    if taints.iter().any(|t| t.key == taints::OUT_OF_SERVICE) {
        return Some("out of service");
    }
    let conds = node.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    if conds.iter().any(|c| c.type_ == "NetworkUnavailable" && c.status == "True") {
        return Some("NetworkUnavailable");
    }
    if !conds.iter().any(|c| c.type_ == "Ready" && c.status == "True") {
        return Some("not Ready");
    }
    None
}

/// Nodes that should run an announcer, by name.
fn announcing_nodes(s: &Snapshot) -> Vec<&Node> {
    let mut nodes: Vec<&Node> = s.nodes.iter().filter(|n| not_announcing_because(n).is_none()).collect();
    nodes.sort_by_key(|n| n.name_any());
    nodes
}

fn heartbeat<'a>(s: &'a Snapshot, node: &str) -> Option<&'a Lease> {
    let name = names::leases::node_heartbeat(node);
    s.heartbeats.iter().find(|l| l.metadata.name.as_deref() == Some(name.as_str()))
}

/// The parts of an announcer's report (`ferrolb.io/announcer-state`, written by
/// `l2announcer/src/report.rs`) that `doctor` reads.
#[derive(Debug, Clone, Deserialize)]
struct Report {
    ready: bool,
    #[serde(default)]
    interfaces: Vec<ReportedInterface>,
}

#[derive(Debug, Clone, Deserialize)]
struct ReportedInterface {
    name: String,
    up: bool,
}

fn report(lease: &Lease) -> Option<Report> {
    let text = lease.annotations().get(annotations::ANNOUNCER_STATE)?;
    serde_json::from_str(text).ok()
}

pub fn announcers(s: &Snapshot, now: jiff::Timestamp, t: &Thresholds) -> Vec<Finding> {
    let nodes = announcing_nodes(s);
    if nodes.is_empty() {
        return vec![Finding::warning(
            Check::Announcers,
            "Nodes",
            format!(
                "no node can announce ({} node(s): none Ready and free of {}, the out-of-service taint and \
                 NetworkUnavailable)",
                s.nodes.len(),
                labels::EXCLUDE_FROM_EXTERNAL_LB
            ),
            "check `kubectl get nodes`; remove the exclude label from the nodes that should announce",
        )];
    }
    let pods = |node: &str| {
        format!(
            "check the announcer pod on it: `kubectl -n {} get pods -o wide --field-selector spec.nodeName={node}` \
             and its logs (a DaemonSet nodeSelector or a taint it does not tolerate keeps it off the node); a node \
             that should not announce can be labelled {}=true",
            s.namespace,
            labels::EXCLUDE_FROM_EXTERNAL_LB
        )
    };
    let mut out = Vec::new();
    let mut fine = Vec::new();
    for node in nodes {
        let name = node.name_any();
        let lease_name = names::leases::node_heartbeat(&name);
        let subject = format!("Node {name}");
        let Some(lease) = heartbeat(s, &name) else {
            out.push(Finding::error(
                Check::Announcers,
                subject,
                format!("no heartbeat Lease {}/{lease_name}: no announcer runs there", s.namespace),
                pods(&name),
            ));
            continue;
        };
        let view = lease_view(lease, now);
        if !view.fresh(t.clock_slack) {
            out.push(Finding::error(
                Check::Announcers,
                subject,
                format!(
                    "heartbeat Lease {lease_name} last renewed {} (lease duration {}): its announcer is gone or \
                     cannot reach the API server, and it holds no address",
                    view.age_text(),
                    secs(view.duration)
                ),
                pods(&name),
            ));
            continue;
        }
        match report(lease) {
            None => out.push(Finding::warning(
                Check::Announcers,
                subject,
                format!(
                    "heartbeat Lease {lease_name} is fresh but carries no readable {} report: other announcers \
                     do not count this node as a candidate",
                    annotations::ANNOUNCER_STATE
                ),
                format!("run the same FerroLB release on every node; then {}", pods(&name)),
            )),
            Some(r) if !r.ready => out.push(Finding::warning(
                Check::Announcers,
                subject,
                "the announcer reports it is not ready: it announces nothing yet",
                pods(&name),
            )),
            Some(_) => fine.push(name),
        }
    }
    if out.is_empty() {
        out.push(Finding::ok(
            Check::Announcers,
            "Nodes",
            format!("fresh heartbeats from every node that can announce: {}", fine.join(", ")),
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// pools

/// A decimal count from a pool's status; `None` when absent or unreadable.
fn count(v: Option<&String>) -> Option<u128> {
    v.and_then(|v| v.parse().ok())
}

pub fn pools(s: &Snapshot, t: &Thresholds) -> Vec<Finding> {
    let Some(pools) = &s.pools else {
        return Vec::new(); // the CRD check says the CRD is missing
    };
    if pools.is_empty() {
        return vec![Finding::warning(
            Check::Pools,
            "LoadBalancerIPPools",
            "no pool: no Service can get an address",
            "create a LoadBalancerIPPool with the addresses FerroLB may hand out (see docs/ipam.md)",
        )];
    }
    let mut pools: Vec<_> = pools.iter().collect();
    pools.sort_by_key(|p| p.name_any());
    let mut out = Vec::new();
    for p in pools {
        let name = p.name_any();
        let subject = format!("LoadBalancerIPPool {name}");
        let Some(st) = &p.status else {
            out.push(Finding::warning(
                Check::Pools,
                subject,
                "no status: the IPAM controller has not processed this pool",
                "see the controller check: the leading replica writes every pool's status",
            ));
            continue;
        };
        if let Some(c) = condition(&st.conditions, conditions::POOL_CONFLICT).filter(|c| c.status == "True") {
            out.push(Finding::error(
                Check::Pools,
                subject,
                format!("{} (disabled while it lasts): {}", conditions::POOL_CONFLICT, c.message),
                "make the pools' blocks disjoint: edit or delete one of the overlapping pools",
            ));
            continue;
        }
        if let Some(c) = condition(&st.conditions, conditions::INVALID_SPEC).filter(|c| c.status == "True") {
            out.push(Finding::error(
                Check::Pools,
                subject,
                format!("{}: {}", conditions::INVALID_SPEC, c.message),
                format!("fix the pool's spec as the message says (`kubectl edit lbippool {name}`)"),
            ));
            continue;
        }
        let (total, used, available) =
            (count(st.ips_total.as_ref()), count(st.ips_used.as_ref()), count(st.ips_available.as_ref()));
        let usage = format!(
            "total {}, used {}, available {}",
            st.ips_total.as_deref().unwrap_or("?"),
            st.ips_used.as_deref().unwrap_or("?"),
            st.ips_available.as_deref().unwrap_or("?"),
        );
        let disabled = if p.spec.disabled { " (disabled: no new allocations)" } else { "" };
        let full = match (total, used, available) {
            (_, _, Some(0)) => Some("exhausted".to_string()),
            (Some(total), Some(used), _)
                if total > 0
                    && used.saturating_mul(100) >= total * u128::from(t.pool_nearly_full_percent) =>
            {
                Some(format!("{}% used", used * 100 / total))
            }
            _ => None,
        };
        match full {
            Some(how) if !p.spec.disabled => out.push(Finding::warning(
                Check::Pools,
                subject,
                format!("{how}: {usage}"),
                "add a block to the pool, or delete Services that no longer need their address; Services \
                 that find no free address wait with reason out_of_ips",
            )),
            _ => out.push(Finding::ok(Check::Pools, subject, format!("{usage}{disabled}"))),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// services

/// Whether FerroLB serves this LoadBalancer Service: the controller's rule
/// ([`ferrolb_api::ServedClasses`]) with the classes it was told to serve.
pub(super) fn served(s: &Snapshot, svc: &Service) -> bool {
    let spec = svc.spec.as_ref();
    spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
        && ferrolb_api::ServedClasses::new(s.default_class, s.load_balancer_classes.iter().cloned())
            .serves(spec.and_then(|s| s.load_balancer_class.as_deref()))
}

fn ingress_ips(svc: &Service) -> Vec<String> {
    svc.status
        .as_ref()
        .and_then(|st| st.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|i| i.iter().filter_map(|x| x.ip.clone()).collect())
        .unwrap_or_default()
}

/// What to do for each reason of `ferrolb.io/IPAMRequestSatisfied`.
fn reason_action(reason: &str) -> &'static str {
    match reason {
        reasons::NO_POOL => {
            "create a pool whose serviceSelector selects this Service, or fix the requested pool name \
             (ferrolb.io/pool, metallb.io/address-pool) or address (ferrolb.io/ips, spec.loadBalancerIP)"
        }
        reasons::POOL_SELECTOR_MISMATCH => {
            "the requested pool's serviceSelector does not select this Service: change the selector or the \
             Service's labels, or request another pool"
        }
        reasons::OUT_OF_IPS => {
            "add a block to the pool, or free addresses by deleting Services that do not need them"
        }
        reasons::ALREADY_ALLOCATED => {
            "the requested address belongs to another Service: request another address, or share it with \
             ferrolb.io/sharing-key on both Services"
        }
        reasons::ALREADY_ALLOCATED_INCOMPATIBLE_SERVICE => {
            "the Services sharing the address break the sharing rules (same key, no overlapping protocol and \
             port, same externalTrafficPolicy, equal selectors for Local): make them compatible or use another \
             address"
        }
        _ => "read the condition message and the Service's Events (`kubectl describe service`)",
    }
}

/// The note of the newest Warning Event FerroLB wrote about the Service.
fn last_warning(s: &Snapshot, svc: &Service) -> Option<String> {
    let (ns, name) = (svc.namespace().unwrap_or_default(), svc.name_any());
    s.events
        .iter()
        .filter(|e| {
            e.type_.as_deref() == Some("Warning")
                && e.metadata.namespace.as_deref() == Some(ns.as_str())
                && e.regarding.as_ref().is_some_and(|r| {
                    r.kind.as_deref() == Some("Service") && r.name.as_deref() == Some(name.as_str())
                })
        })
        .max_by_key(|e| {
            e.series.as_ref().map(|s| s.last_observed_time.0).or(e.event_time.as_ref().map(|t| t.0)).or(e
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0))
        })
        .map(|e| format!("{}: {}", e.reason.as_deref().unwrap_or("?"), e.note.as_deref().unwrap_or_default()))
}

pub fn services(s: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut served_count = 0;
    let mut services: Vec<&Service> = s.services.iter().filter(|svc| served(s, svc)).collect();
    services.sort_by_key(|svc| service_key(svc));
    for svc in services {
        served_count += 1;
        let subject = format!("Service {}", service_key(svc));
        let cond = condition(service_conditions(svc), conditions::IPAM_REQUEST_SATISFIED);
        let event = last_warning(s, svc).map(|e| format!("; last Warning Event {e}")).unwrap_or_default();
        let contested =
            condition(service_conditions(svc), conditions::STATUS_CONTESTED).filter(|c| c.status == "True");
        if let Some(c) = contested {
            out.push(Finding::error(
                Check::Services,
                subject,
                format!(
                    "another controller keeps overwriting its status.loadBalancer, so FerroLB stopped writing it \
                     for a while ({}): {}{event}",
                    conditions::STATUS_CONTESTED,
                    c.message
                ),
                format!(
                    "find the other controller by the field manager the message names (k3s ServiceLB, MetalLB, a \
                     cloud provider...) and disable it, or recreate the Service with spec.loadBalancerClass: {} so \
                     that only FerroLB serves it",
                    names::LOAD_BALANCER_CLASS
                ),
            ));
            continue;
        }
        let ips = ingress_ips(svc);
        if !ips.is_empty() {
            if let Some(c) = cond.filter(|c| c.reason == reasons::PARTIALLY_SATISFIED) {
                out.push(Finding::warning(
                    Check::Services,
                    subject,
                    format!("only some addresses assigned ({}): {}{event}", ips.join(", "), c.message),
                    reason_action(reasons::OUT_OF_IPS),
                ));
            }
            continue;
        }
        match cond {
            None => out.push(Finding::error(
                Check::Services,
                subject,
                format!(
                    "no address and no {} condition: the IPAM controller has not looked at it{event}",
                    conditions::IPAM_REQUEST_SATISFIED
                ),
                format!(
                    "see the controller check; if ferrolb-ipam runs with --default-class=false, give the Service \
                     spec.loadBalancerClass: {} (run doctor with --default-class=false to match)",
                    names::LOAD_BALANCER_CLASS
                ),
            )),
            Some(c) => out.push(Finding::error(
                Check::Services,
                subject,
                format!("no address: {} ({}): {}{event}", c.reason, c.status, c.message),
                reason_action(&c.reason),
            )),
        }
    }
    if out.is_empty() {
        out.push(Finding::ok(
            Check::Services,
            "Services",
            format!("every LoadBalancer Service FerroLB serves has its addresses ({served_count})"),
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// servicelb

pub fn servicelb(s: &Snapshot) -> Vec<Finding> {
    if s.servicelb_daemonsets.is_empty() && s.servicelb_pods.is_empty() {
        return vec![Finding::ok(Check::Servicelb, "k3s ServiceLB", "not running")];
    }
    // (namespace or None when the label is absent, name) of every Service ServiceLB serves.
    let mut claimed: BTreeSet<(Option<String>, String)> = BTreeSet::new();
    let pod_labels = s.servicelb_pods.iter().map(|p| p.labels().clone());
    let ds_labels = s.servicelb_daemonsets.iter().filter_map(|d| {
        d.spec.as_ref().and_then(|s| s.template.metadata.as_ref()).and_then(|m| m.labels.clone())
    });
    for l in pod_labels.chain(ds_labels) {
        if let Some(name) = l.get(SERVICELB_SVCNAME_LABEL) {
            claimed.insert((l.get(SERVICELB_SVCNAMESPACE_LABEL).cloned(), name.clone()));
        }
    }
    let mut out = Vec::new();
    let mut services: Vec<&Service> = s.services.iter().filter(|svc| served(s, svc)).collect();
    services.sort_by_key(|svc| service_key(svc));
    for svc in services {
        let (ns, name) = (svc.namespace().unwrap_or_default(), svc.name_any());
        let both =
            claimed.contains(&(Some(ns.clone()), name.clone())) || claimed.contains(&(None, name.clone()));
        if both {
            out.push(Finding::error(
                Check::Servicelb,
                format!("Service {ns}/{name}"),
                "served by both FerroLB and k3s ServiceLB (svclb pods exist for it): they overwrite each \
                 other's status.loadBalancer.ingress and both answer for it",
                format!(
                    "disable ServiceLB (k3s server flag --disable=servicelb), or recreate the Service with \
                     spec.loadBalancerClass: {} (the class cannot be changed in place; ServiceLB ignores \
                     Services with a class)",
                    names::LOAD_BALANCER_CLASS
                ),
            ));
        }
    }
    if out.is_empty() {
        out.push(Finding::warning(
            Check::Servicelb,
            "k3s ServiceLB",
            format!(
                "running ({} svclb DaemonSet(s), {} pod(s)) but serving none of FerroLB's Services; a new Service \
                 without spec.loadBalancerClass would be served by both",
                s.servicelb_daemonsets.len(),
                s.servicelb_pods.len()
            ),
            format!(
                "disable ServiceLB (--disable=servicelb), or run ferrolb-ipam with --default-class=false and give \
                 FerroLB's Services spec.loadBalancerClass: {}",
                names::LOAD_BALANCER_CLASS
            ),
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// kube-proxy

/// The cluster-wide preflight signals, as `doctor` read them (it stops on failed reads, so every
/// one is present or absent).
fn cluster_signals(s: &Snapshot) -> preflight::ClusterSignals {
    let read = |present: bool| if present { preflight::Read::Present(()) } else { preflight::Read::Absent };
    let key = |cm: &ConfigMap, key: &str| cm.data.as_ref().and_then(|d| d.get(key)).cloned();
    preflight::ClusterSignals {
        kube_proxy_config: read(s.kube_proxy.is_some())
            .map(|()| s.kube_proxy.as_ref().and_then(|cm| key(cm, preflight::KUBE_PROXY_CONFIG_KEY))),
        kube_proxy_daemonset: read(s.kube_proxy_daemonset.is_some()),
        cilium_kube_proxy_replacement: read(s.cilium_config.is_some())
            .map(|()| s.cilium_config.as_ref().and_then(|cm| key(cm, preflight::CILIUM_KPR_KEY))),
    }
}

/// The announcers' kube-proxy checks (`ferrolb_api::preflight`), for every node from what the API
/// shows (the node-local signals, `kube-ipvs0` and the sysctls, only the announcers see): findings
/// that several nodes share are one, naming the nodes unless it is all of them.
pub fn kube_proxy(s: &Snapshot) -> Vec<Finding> {
    let cluster = cluster_signals(s);
    let configmap = "ConfigMap kube-system/kube-proxy";
    let cluster_subject = if s.kube_proxy.is_some() { configmap } else { "kube-proxy" };
    let mut nodes: Vec<(String, Option<preflight::EmbeddedKubeProxy>)> = s
        .nodes
        .iter()
        .map(|n| {
            (
                n.name_any(),
                n.metadata.annotations.as_ref().and_then(preflight::EmbeddedKubeProxy::from_annotations),
            )
        })
        .collect();
    if nodes.is_empty() {
        nodes.push((String::new(), None));
    }
    let mut grouped: BTreeMap<(preflight::Check, String), (preflight::Finding, Vec<String>)> =
        BTreeMap::new();
    for (node, embedded) in &nodes {
        let signals =
            preflight::Signals { cluster: cluster.clone(), embedded: embedded.clone(), ..Default::default() };
        for f in preflight::evaluate(&signals) {
            grouped
                .entry((f.check, f.message.clone()))
                .or_insert_with(|| (f, Vec::new()))
                .1
                .push(node.clone());
        }
    }
    let mut out: Vec<Finding> = grouped
        .into_values()
        .map(|(f, on)| {
            let subject = if on.len() == nodes.len() {
                cluster_subject.to_owned()
            } else {
                format!("Node {}", on.join(", "))
            };
            let severity = match f.severity {
                preflight::Severity::Warning => Severity::Warning,
                preflight::Severity::Error => Severity::Error,
            };
            Finding::problem(severity, Check::KubeProxy, subject, f.message, f.action)
        })
        .collect();
    if out.is_empty() {
        out.push(Finding::ok(Check::KubeProxy, cluster_subject, kube_proxy_summary(s, &nodes)));
    }
    out
}

/// What the kube-proxy check saw when it found nothing wrong.
fn kube_proxy_summary(s: &Snapshot, nodes: &[(String, Option<preflight::EmbeddedKubeProxy>)]) -> String {
    let embedded: Vec<&str> = nodes
        .iter()
        .filter_map(|(_, e)| e.as_ref().filter(|e| !e.disabled).map(|e| e.distribution))
        .collect();
    let config = s.kube_proxy.as_ref().and_then(|cm| cm.data.as_ref()?.get(preflight::KUBE_PROXY_CONFIG_KEY));
    if let Some(text) = config
        && let Ok(c) = preflight::KubeProxyConfig::parse(text)
    {
        let detail = if c.mode() == "ipvs" { " with strictARP" } else { "" };
        return format!("mode {}{detail}", c.mode());
    }
    if s.kube_proxy.is_some() {
        return "no config.conf key: kube-proxy runs with its defaults".into();
    }
    if let Some(distribution) = embedded.first() {
        return format!(
            "kube-proxy runs inside {distribution} on {} node(s) (no IPVS without strictARP in their arguments;              the announcers also check kube-ipvs0 and the arp sysctls on each node)",
            embedded.len()
        );
    }
    if s.kube_proxy_daemonset.is_some() {
        return "DaemonSet kube-system/kube-proxy runs with no ConfigMap".into();
    }
    "Cilium replaces kube-proxy (cilium-config: kube-proxy-replacement)".into()
}

// ---------------------------------------------------------------------------------------------
// interfaces

/// A policy's `spec.interfaces` as the announcer reads them: anchored, whole names.
fn compile(patterns: &[String]) -> Result<Vec<Regex>, String> {
    patterns
        .iter()
        .enumerate()
        .map(|(i, p)| Regex::new(&format!("^(?:{p})$")).map_err(|e| format!("interfaces[{i}] {p:?}: {e}")))
        .collect()
}

pub fn interfaces(s: &Snapshot) -> Vec<Finding> {
    let Some(policies) = &s.policies else {
        return Vec::new(); // the CRD check says the CRD is missing
    };
    if policies.is_empty() {
        return vec![Finding::warning(
            Check::Interfaces,
            "L2AnnouncementPolicies",
            "no policy: addresses are assigned but no node announces them",
            "create an L2AnnouncementPolicy (with no selectors it announces every Service from every node on \
             every eligible interface)",
        )];
    }
    let nodes = announcing_nodes(s);
    let mut policies: Vec<&L2AnnouncementPolicy> = policies.iter().collect();
    policies.sort_by_key(|p| p.name_any());
    policies.into_iter().map(|p| interfaces_of(s, &nodes, p)).collect()
}

fn interfaces_of(s: &Snapshot, nodes: &[&Node], p: &L2AnnouncementPolicy) -> Finding {
    let name = p.name_any();
    let subject = format!("L2AnnouncementPolicy {name}");
    let edit = format!("`kubectl edit l2policy {name}`");
    let conds = p.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    if let Some(c) = condition(conds, conditions::INVALID_SPEC).filter(|c| c.status == "True") {
        return Finding::error(
            Check::Interfaces,
            subject,
            format!("{}: {}", conditions::INVALID_SPEC, c.message),
            format!("fix the spec as the message says ({edit})"),
        );
    }
    let regexes = match compile(&p.spec.interfaces) {
        Ok(r) => r,
        Err(e) => {
            return Finding::error(
                Check::Interfaces,
                subject,
                format!("invalid regular expression {e}"),
                edit,
            );
        }
    };
    let selector = match p.spec.node_selector.as_ref().map(Selector::from_label_selector).transpose() {
        Ok(sel) => sel.unwrap_or_else(Selector::everything),
        Err(e) => return Finding::error(Check::Interfaces, subject, format!("spec.nodeSelector: {e}"), edit),
    };
    let selected: Vec<&&Node> = nodes.iter().filter(|n| selector.matches(n.labels())).collect();
    if selected.is_empty() {
        return Finding::warning(
            Check::Interfaces,
            subject,
            format!("spec.nodeSelector ({selector}) selects no node that can announce"),
            format!("change spec.nodeSelector or label the nodes that should announce ({edit})"),
        );
    }
    // Node -> its reported interfaces; nodes without a report are not judged.
    let reports: BTreeMap<String, Vec<ReportedInterface>> = selected
        .iter()
        .filter_map(|n| {
            let name = n.name_any();
            heartbeat(s, &name).and_then(report).map(|r| (name, r.interfaces))
        })
        .collect();
    if reports.is_empty() {
        return Finding::warning(
            Check::Interfaces,
            subject,
            "cannot check the interfaces: no announcer on the nodes it selects has reported its interfaces",
            "see the announcers check",
        );
    }
    let selects = |iface: &str| {
        if regexes.is_empty() {
            !names::interfaces::excluded_by_default(iface)
        } else {
            regexes.iter().any(|re| re.is_match(iface))
        }
    };
    let mut matched: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut any_up = false;
    for (node, ifaces) in &reports {
        for i in ifaces.iter().filter(|i| selects(&i.name)) {
            any_up |= i.up;
            let down = if i.up { "" } else { " (down)" };
            matched.entry(node).or_default().push(format!("{}{down}", i.name));
        }
    }
    let wanted = if regexes.is_empty() {
        "every eligible interface (none listed)".to_string()
    } else {
        format!("interfaces {:?}", p.spec.interfaces)
    };
    if matched.is_empty() {
        let seen: Vec<String> = reports
            .iter()
            .map(|(n, i)| {
                format!("{n}: {}", list_or_none(&i.iter().map(|i| i.name.as_str()).collect::<Vec<_>>()))
            })
            .collect();
        return Finding::error(
            Check::Interfaces,
            subject,
            format!(
                "{wanted} match no interface on any node it selects, so it announces nothing; the nodes have {}",
                seen.join("; ")
            ),
            format!(
                "fix spec.interfaces: each entry is a regular expression matched against the whole interface \
                 name (`eth0`, `enp.*`) ({edit})"
            ),
        );
    }
    let unused: Vec<&String> = p
        .spec
        .interfaces
        .iter()
        .zip(&regexes)
        .filter(|(_, re)| !reports.values().flatten().any(|i| re.is_match(&i.name)))
        .map(|(p, _)| p)
        .collect();
    let on = matched.iter().map(|(n, i)| format!("{n}: {}", i.join(", "))).collect::<Vec<_>>().join("; ");
    if !any_up {
        return Finding::warning(
            Check::Interfaces,
            subject,
            format!("every interface it selects is down ({on}), so it announces nothing"),
            "bring the links up, or select other interfaces",
        );
    }
    // The announcers' own check, node by node: a node the policy selects where it selects nothing.
    let mut nowhere = Vec::new();
    let mut action = String::new();
    for (node, ifaces) in &reports {
        let names: Vec<String> = ifaces.iter().map(|i| i.name.clone()).collect();
        let here = preflight::PolicyInterfaces {
            policy: name.clone(),
            patterns: p.spec.interfaces.clone(),
            selected: names.iter().filter(|i| selects(i)).cloned().collect(),
        };
        for f in preflight::interface_findings(std::slice::from_ref(&here), &names) {
            nowhere.push(format!("{node}: {}", f.message));
            action = f.action;
        }
    }
    let mut problems = nowhere;
    let mut actions = Vec::new();
    if !problems.is_empty() {
        actions.push(action);
    }
    if !unused.is_empty() {
        problems.push(format!("interfaces {unused:?} match nothing on any node (a typo?)"));
        actions.push(format!("remove or fix those entries ({edit})"));
    }
    if !problems.is_empty() {
        return Finding::warning(
            Check::Interfaces,
            subject,
            format!("{}; it announces on {on}", problems.join("; ")),
            actions.join("; "),
        );
    }
    Finding::ok(Check::Interfaces, subject, format!("announces on {on}"))
}

// ---------------------------------------------------------------------------------------------
// traffic-policy

pub fn traffic_policy(s: &Snapshot) -> Vec<Finding> {
    let can_announce: BTreeSet<String> = announcing_nodes(s).iter().map(|n| n.name_any()).collect();
    let mut services: Vec<&Service> = s
        .services
        .iter()
        .filter(|svc| served(s, svc))
        .filter(|svc| svc.spec.as_ref().and_then(|s| s.external_traffic_policy.as_deref()) == Some("Local"))
        .collect();
    services.sort_by_key(|svc| service_key(svc));
    let mut out = Vec::new();
    let count = services.len();
    for svc in services {
        let (ns, name) = (svc.namespace().unwrap_or_default(), svc.name_any());
        let nodes: BTreeSet<String> = s
            .endpoint_slices
            .iter()
            .filter(|e| {
                e.metadata.namespace.as_deref() == Some(ns.as_str())
                    && e.labels().get(SERVICE_NAME_LABEL) == Some(&name)
            })
            .flat_map(|e| &e.endpoints)
            .filter(|ep| {
                let c = ep.conditions.as_ref();
                // `ready` unset means ready (the EndpointSlice API's rule); the announcer also takes serving.
                c.is_none_or(|c| c.ready != Some(false) || c.serving == Some(true))
            })
            .filter_map(|ep| ep.node_name.clone())
            .collect();
        let subject = format!("Service {ns}/{name}");
        let check = format!(
            "check its pods: `kubectl -n {ns} get endpointslices -l {SERVICE_NAME_LABEL}={name}` and \
             `kubectl -n {ns} get pods -o wide`; or set externalTrafficPolicy: Cluster"
        );
        if nodes.is_empty() {
            out.push(Finding::warning(
                Check::TrafficPolicy,
                subject,
                "externalTrafficPolicy: Local and no ready endpoint on any node: no node announces its address, \
                 it is unreachable",
                check,
            ));
        } else if nodes.is_disjoint(&can_announce) {
            let on: Vec<&str> = nodes.iter().map(String::as_str).collect();
            out.push(Finding::warning(
                Check::TrafficPolicy,
                subject,
                format!(
                    "externalTrafficPolicy: Local and its ready endpoints are only on nodes that cannot announce \
                     ({}): no node announces its address",
                    on.join(", ")
                ),
                check,
            ));
        }
    }
    if out.is_empty() {
        out.push(Finding::ok(
            Check::TrafficPolicy,
            "Services",
            format!("every externalTrafficPolicy: Local Service has a ready endpoint on a node that can announce ({count})"),
        ));
    }
    out
}
