//! `ferrolbctl doctor`: checks an installed FerroLB and says what to do about each problem.
//!
//! [`read::snapshot`] lists the objects (the I/O adapter); [`diagnose`] turns a [`Snapshot`] into
//! [`Finding`]s and is pure, so every check is unit-tested on plain objects. Each check gives at
//! least one finding: problems as warnings or errors, each with a concrete "what to do" line, and
//! an `ok` finding that says what was looked at when there is nothing to fix. `docs/doctor.md`
//! explains every check.

mod checks;
pub mod read;
#[cfg(test)]
mod tests;

use std::fmt::Write as _;
use std::time::Duration;

use ferrolb_api::{L2AnnouncementPolicy, LoadBalancerIPPool};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Serialize;

/// How bad a finding is. `error` makes `doctor` exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Warning,
    Error,
}

impl Severity {
    fn label(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Warning => "WARNING",
            Self::Error => "ERROR",
        }
    }
}

/// Which check a finding comes from (the names `--output json` and docs/doctor.md use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// FerroLB's CRDs are installed, serve `v1alpha1` and have this release's schema.
    Crds,
    /// The IPAM controller's Lease is held and renewed.
    Controller,
    /// Every node that can announce has a fresh heartbeat Lease from its announcer.
    Announcers,
    /// Each pool's usage and conditions.
    Pools,
    /// LoadBalancer Services FerroLB serves that have no address, and why.
    Services,
    /// k3s ServiceLB serving the same Services.
    Servicelb,
    /// The announcers' kube-proxy preflight checks: kube-proxy in IPVS mode without strictARP, and
    /// no kube-proxy nor a replacement.
    KubeProxy,
    /// L2AnnouncementPolicies whose interfaces match nothing on the nodes.
    Interfaces,
    /// `externalTrafficPolicy: Local` Services with no ready endpoint on a node that can announce.
    TrafficPolicy,
}

impl Check {
    /// The name as printed.
    pub fn name(self) -> &'static str {
        match self {
            Self::Crds => "crds",
            Self::Controller => "controller",
            Self::Announcers => "announcers",
            Self::Pools => "pools",
            Self::Services => "services",
            Self::Servicelb => "servicelb",
            Self::KubeProxy => "kube-proxy",
            Self::Interfaces => "interfaces",
            Self::TrafficPolicy => "traffic-policy",
        }
    }
}

/// One thing `doctor` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: Check,
    pub severity: Severity,
    /// The object it is about (`Lease ferrolb-system/ferrolb-ipam`, `Service shop/web`, ...).
    pub subject: String,
    /// What is the case, with the values that show it.
    pub message: String,
    /// What to do about it (absent for `ok` findings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

impl Finding {
    fn ok(check: Check, subject: impl Into<String>, message: impl Into<String>) -> Self {
        Self { check, severity: Severity::Ok, subject: subject.into(), message: message.into(), action: None }
    }

    fn warning(
        check: Check,
        subject: impl Into<String>,
        message: impl Into<String>,
        action: impl Into<String>,
    ) -> Self {
        Self::problem(Severity::Warning, check, subject.into(), message.into(), action.into())
    }

    fn error(
        check: Check,
        subject: impl Into<String>,
        message: impl Into<String>,
        action: impl Into<String>,
    ) -> Self {
        Self::problem(Severity::Error, check, subject.into(), message.into(), action.into())
    }

    fn problem(severity: Severity, check: Check, subject: String, message: String, action: String) -> Self {
        Self { check, severity, subject, message, action: Some(action) }
    }
}

/// Everything the checks look at, as read from the cluster by [`read::snapshot`].
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// FerroLB's namespace (`--namespace`): the controller's and the announcers' Leases.
    pub namespace: String,
    /// Whether `ferrolb-ipam` serves Services without a class (its `--default-class`).
    pub default_class: bool,
    /// The classes `ferrolb-ipam` serves besides `ferrolb.io/l2` (its `--load-balancer-classes`).
    pub load_balancer_classes: std::collections::BTreeSet<String>,
    /// FerroLB's CRDs as installed (those of [`ferrolb_api::crd::all`] that exist).
    pub crds: Vec<CustomResourceDefinition>,
    /// The IPAM controller's Lease, when it exists.
    pub ipam_lease: Option<Lease>,
    /// Node heartbeat Leases (`ferrolb-node-*`) in the namespace.
    pub heartbeats: Vec<Lease>,
    pub nodes: Vec<Node>,
    /// `None` when the pool CRD is not served.
    pub pools: Option<Vec<LoadBalancerIPPool>>,
    /// `None` when the policy CRD is not served.
    pub policies: Option<Vec<L2AnnouncementPolicy>>,
    /// Every Service of type LoadBalancer.
    pub services: Vec<Service>,
    /// `events.k8s.io/v1` Events about the Services FerroLB serves that have no address.
    pub events: Vec<Event>,
    /// EndpointSlices of the `externalTrafficPolicy: Local` LoadBalancer Services.
    pub endpoint_slices: Vec<EndpointSlice>,
    /// DaemonSets named `svclb-*` (k3s ServiceLB).
    pub servicelb_daemonsets: Vec<DaemonSet>,
    /// Pods labelled `svccontroller.k3s.cattle.io/svcname` (k3s ServiceLB).
    pub servicelb_pods: Vec<Pod>,
    /// ConfigMap `kube-system/kube-proxy`, when it exists.
    pub kube_proxy: Option<ConfigMap>,
    /// DaemonSet `kube-system/kube-proxy`, when it exists.
    pub kube_proxy_daemonset: Option<DaemonSet>,
    /// ConfigMap `kube-system/cilium-config`, when it exists.
    pub cilium_config: Option<ConfigMap>,
}

/// Limits the checks use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// A pool with at least this share of its addresses used gets a warning (percent).
    pub pool_nearly_full_percent: u8,
    /// Added to a Lease's duration before it counts as stale: the clocks of the writer and of the
    /// machine running `doctor` differ, and a renewal may be in flight.
    pub clock_slack: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self { pool_nearly_full_percent: 90, clock_slack: Duration::from_secs(10) }
    }
}

/// Every finding about `snapshot` at `now`, in check order.
pub fn diagnose(snapshot: &Snapshot, now: jiff::Timestamp, thresholds: &Thresholds) -> Vec<Finding> {
    let mut findings = Vec::new();
    findings.extend(checks::crds(snapshot));
    findings.extend(checks::controller(snapshot, now, thresholds));
    findings.extend(checks::announcers(snapshot, now, thresholds));
    findings.extend(checks::pools(snapshot, thresholds));
    findings.extend(checks::services(snapshot));
    findings.extend(checks::servicelb(snapshot));
    findings.extend(checks::kube_proxy(snapshot));
    findings.extend(checks::interfaces(snapshot));
    findings.extend(checks::traffic_policy(snapshot));
    findings
}

/// Whether any finding is an error (`doctor` then exits 1).
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

fn counts(findings: &[Finding]) -> [usize; 3] {
    let mut c = [0; 3];
    for f in findings {
        c[f.severity as usize] += 1;
    }
    c
}

/// The findings as text: one line per finding (severity, check, subject: message), the action on
/// the next line, and a summary.
pub fn render_text(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        let _ =
            writeln!(out, "{:<8} {:<15} {}: {}", f.severity.label(), f.check.name(), f.subject, f.message);
        if let Some(action) = &f.action {
            let _ = writeln!(out, "{:<24} what to do: {action}", "");
        }
    }
    let [ok, warnings, errors] = counts(findings);
    let _ = writeln!(out, "\n{ok} ok, {warnings} warning(s), {errors} error(s)");
    out
}

/// The findings as JSON: `{"findings": [...], "summary": {"ok": n, "warning": n, "error": n}}`.
pub fn render_json(findings: &[Finding]) -> String {
    let [ok, warning, error] = counts(findings);
    let v = serde_json::json!({
        "findings": findings,
        "summary": {"ok": ok, "warning": warning, "error": error},
    });
    let mut text = serde_json::to_string_pretty(&v).expect("findings serialize");
    text.push('\n');
    text
}
