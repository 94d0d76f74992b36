//! Preflight: settings of the cluster and of a node that keep L2 announcements from working, found
//! from what can be read, by the announcer on its own node and by `ferrolbctl doctor` for every
//! node. This module decides; it reads nothing (the callers read, see [`Signals`]).
//!
//! ## The checks
//!
//! - **`ipvs-strict-arp`** (error): kube-proxy in IPVS mode binds every LoadBalancer address to the
//!   dummy interface `kube-ipvs0` on every node, and without `strictARP` every node answers ARP for
//!   every address, not only FerroLB's holder (metallb#153). Signals, any of which is enough:
//!   - the ConfigMap `kube-system/kube-proxy` (key `config.conf`, a KubeProxyConfiguration) says
//!     `mode: ipvs` without `ipvs.strictARP: true`. This is the configuration kube-proxy applies on
//!     every node at its next start, so it is the reliable cluster-wide signal on kubeadm-style
//!     clusters; it says nothing about k3s (no such ConfigMap) nor about a kube-proxy that was not
//!     restarted after an edit;
//!   - a k3s or RKE2 node's `<distro>.io/node-args` annotation passes `--kube-proxy-arg
//!     proxy-mode=ipvs` without `ipvs-strict-arp=true` (k3s embeds kube-proxy and has no ConfigMap;
//!     the annotation holds the server's or agent's arguments, config file included);
//!   - on the node itself (the announcer only): `kube-ipvs0` exists and
//!     `net.ipv4.conf.all.arp_ignore` is 0 or `net.ipv4.conf.all.arp_announce` is below 2. This is
//!     the effect itself, whoever configured kube-proxy and however (k3s included): strictARP is
//!     nothing but kube-proxy setting these two sysctls to 1 and 2. It is reliable where it can be
//!     read, which is only on the node.
//!
//!   When the ConfigMap asks for IPVS without strictARP but this node already has `kube-ipvs0` and
//!   the sysctls at 1/2 (set by someone else), this node does not answer for kube-ipvs0's addresses:
//!   the finding is then a warning, since other nodes may lack the sysctls.
//! - **`kube-proxy-missing`** (warning): nothing shows that kube-proxy (or a replacement) runs, so an
//!   address may reach the holder and go nowhere. kube-proxy counts as present when the ConfigMap
//!   or the DaemonSet `kube-system/kube-proxy` exists, when the node is a k3s or RKE2 node whose
//!   arguments do not say `--disable-kube-proxy`, or when the node has `kube-ipvs0`. A replacement
//!   counts when `kube-system/cilium-config` says `kube-proxy-replacement: true` (or the older
//!   `strict`). Other replacements (Calico's eBPF dataplane, ...) are not detected: the message says
//!   so. The node's `status.nodeInfo.kubeProxyVersion` is not used: the kubelet writes its own
//!   version there whether kube-proxy runs or not, and Kubernetes deprecated the field. When a read
//!   failed (forbidden, unreachable) the check says nothing rather than guess.
//! - **`interfaces`** (warning): an `L2AnnouncementPolicy` that selects this node selects none of
//!   its interfaces, so this node never announces for it. One finding per such policy. A policy
//!   some of whose regexes match nothing here while another matches is fine: nodes differ (`eno1`
//!   here, `eth0` there), and `ferrolbctl doctor` reports regexes that match on no node at all.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::names::events as reasons;

/// Name of the interface kube-proxy's IPVS mode binds Service addresses to.
pub const KUBE_IPVS_INTERFACE: &str = "kube-ipvs0";
/// Namespace of kube-proxy's and Cilium's objects.
pub const KUBE_SYSTEM: &str = "kube-system";
/// kube-proxy's ConfigMap and DaemonSet (kubeadm and most installers).
pub const KUBE_PROXY_NAME: &str = "kube-proxy";
/// The ConfigMap key holding kube-proxy's KubeProxyConfiguration.
pub const KUBE_PROXY_CONFIG_KEY: &str = "config.conf";
/// Cilium's ConfigMap.
pub const CILIUM_CONFIG_NAME: &str = "cilium-config";
/// The key of `cilium-config` that says whether Cilium replaces kube-proxy.
pub const CILIUM_KPR_KEY: &str = "kube-proxy-replacement";
/// Node annotations of the distributions that embed kube-proxy, with the distribution's name.
pub const NODE_ARGS_ANNOTATIONS: [(&str, &str); 2] =
    [("k3s.io/node-args", "k3s"), ("rke2.io/node-args", "RKE2")];
/// The sysctls kube-proxy's strictARP sets (to 1 and 2).
pub const ARP_IGNORE_SYSCTL: &str = "net.ipv4.conf.all.arp_ignore";
/// See [`ARP_IGNORE_SYSCTL`].
pub const ARP_ANNOUNCE_SYSCTL: &str = "net.ipv4.conf.all.arp_announce";

/// One preflight check: its name is the `check` label of the announcer's metric and the name
/// `ferrolbctl doctor` and the docs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    IpvsStrictArp,
    KubeProxyMissing,
    Interfaces,
}

impl Check {
    /// Every check, so a metric can say 0 for those without a finding.
    pub const ALL: [Check; 3] = [Check::IpvsStrictArp, Check::KubeProxyMissing, Check::Interfaces];

    /// The name (metric label, docs).
    pub fn name(self) -> &'static str {
        match self {
            Self::IpvsStrictArp => "ipvs-strict-arp",
            Self::KubeProxyMissing => "kube-proxy-missing",
            Self::Interfaces => "interfaces",
        }
    }

    /// The reason of the Warning Event on the Node.
    pub fn reason(self) -> &'static str {
        match self {
            Self::IpvsStrictArp => reasons::PREFLIGHT_IPVS_STRICT_ARP,
            Self::KubeProxyMissing => reasons::PREFLIGHT_KUBE_PROXY_MISSING,
            Self::Interfaces => reasons::PREFLIGHT_NO_INTERFACE,
        }
    }
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something may not work; worth a look.
    Warning,
    /// Announcements do not work as intended until it is fixed.
    Error,
}

/// One thing preflight found.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Finding {
    pub check: Check,
    pub severity: Severity,
    /// What is the case, with the values that show it (one line, names no node: the caller knows).
    pub message: String,
    /// What to do about it.
    pub action: String,
}

impl Finding {
    /// The Event reason (see [`Check::reason`]).
    pub fn reason(&self) -> &'static str {
        self.check.reason()
    }
}

/// The outcome of reading one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read<T> {
    /// It does not exist (or its kind is not served).
    Absent,
    Present(T),
    /// The read failed; the text says why. Checks that need it say nothing.
    Failed(String),
}

impl<T> Read<T> {
    /// The same outcome with `f` applied to what was read.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Read<U> {
        match self {
            Self::Absent => Read::Absent,
            Self::Present(t) => Read::Present(f(t)),
            Self::Failed(e) => Read::Failed(e),
        }
    }

    fn present(&self) -> Option<&T> {
        match self {
            Self::Present(t) => Some(t),
            _ => None,
        }
    }

    fn failed(&self) -> bool {
        matches!(self, Self::Failed(_))
    }
}

/// What was read from the API about the whole cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSignals {
    /// ConfigMap `kube-system/kube-proxy`: its `config.conf` (`None`: no such key).
    pub kube_proxy_config: Read<Option<String>>,
    /// DaemonSet `kube-system/kube-proxy`.
    pub kube_proxy_daemonset: Read<()>,
    /// ConfigMap `kube-system/cilium-config`: its `kube-proxy-replacement` (`None`: no such key).
    pub cilium_kube_proxy_replacement: Read<Option<String>>,
}

impl Default for ClusterSignals {
    fn default() -> Self {
        Self {
            kube_proxy_config: Read::Absent,
            kube_proxy_daemonset: Read::Absent,
            cilium_kube_proxy_replacement: Read::Absent,
        }
    }
}

/// What the node's own object says: the arguments of a distribution that embeds kube-proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmbeddedKubeProxy {
    /// `k3s` or `RKE2`.
    pub distribution: &'static str,
    /// `--disable-kube-proxy` was given.
    pub disabled: bool,
    /// The values of `--kube-proxy-arg`, without leading dashes (`proxy-mode=ipvs`).
    pub args: Vec<String>,
}

impl EmbeddedKubeProxy {
    /// From a Node's annotations: `None` unless it carries a `<distro>.io/node-args` annotation
    /// (a JSON array of the server's or agent's arguments). An annotation that does not parse
    /// still says the distribution embeds kube-proxy.
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Option<Self> {
        let (key, distribution) = NODE_ARGS_ANNOTATIONS.iter().find(|(k, _)| annotations.contains_key(*k))?;
        let argv: Vec<String> = serde_json::from_str(&annotations[*key]).unwrap_or_default();
        let mut out = Self { distribution, ..Self::default() };
        let mut iter = argv.iter().map(String::as_str);
        while let Some(arg) = iter.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v)),
                _ => (arg, None),
            };
            match flag {
                "--disable-kube-proxy" => out.disabled = inline.is_none_or(|v| v != "false"),
                "--kube-proxy-arg" => {
                    let value = inline.or_else(|| iter.next()).unwrap_or_default();
                    out.args.push(value.trim_start_matches('-').to_owned());
                }
                _ => {}
            }
        }
        Some(out)
    }

    /// The value of one kube-proxy flag (`proxy-mode`), the last one given.
    fn arg(&self, name: &str) -> Option<&str> {
        self.args.iter().rev().find_map(|a| a.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v))
    }
}

/// What the node itself shows (only its announcer can read it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalSignals {
    /// The interface `kube-ipvs0` exists.
    pub kube_ipvs0: bool,
    /// `net.ipv4.conf.all.arp_ignore` (`None`: unreadable).
    pub arp_ignore: Option<u32>,
    /// `net.ipv4.conf.all.arp_announce` (`None`: unreadable).
    pub arp_announce: Option<u32>,
}

impl LocalSignals {
    /// Whether the sysctls are known and keep the node from answering ARP for kube-ipvs0's
    /// addresses (arp_ignore at least 1, arp_announce at least 2: what strictARP sets).
    fn strict(&self) -> Option<bool> {
        Some(self.arp_ignore? >= 1 && self.arp_announce? >= 2)
    }

    fn sysctls(&self) -> String {
        let show = |v: Option<u32>| v.map_or_else(|| "unreadable".to_owned(), |v| v.to_string());
        format!(
            "{ARP_IGNORE_SYSCTL}={}, {ARP_ANNOUNCE_SYSCTL}={}",
            show(self.arp_ignore),
            show(self.arp_announce)
        )
    }
}

/// One `L2AnnouncementPolicy` that selects the node, with what it selects there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyInterfaces {
    pub policy: String,
    /// Its `spec.interfaces` (empty: the default selection).
    pub patterns: Vec<String>,
    /// The node's interfaces it selects (link state aside).
    pub selected: Vec<String>,
}

/// Everything one evaluation looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signals {
    pub cluster: ClusterSignals,
    /// From the Node object (`None`: not a k3s or RKE2 node).
    pub embedded: Option<EmbeddedKubeProxy>,
    /// From the node itself (`None`: not readable from where this runs, as in `ferrolbctl doctor`).
    pub local: Option<LocalSignals>,
    /// The policies that select this node (`None`: the node's interfaces are not known).
    pub policies: Option<Vec<PolicyInterfaces>>,
    /// The node's interface names, for messages.
    pub interfaces: Vec<String>,
}

/// The part of a KubeProxyConfiguration preflight reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeProxyConfig {
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub ipvs: Option<IpvsConfig>,
}

/// `ipvs` of a KubeProxyConfiguration.
#[derive(Debug, Default, Deserialize)]
pub struct IpvsConfig {
    #[serde(default, rename = "strictARP")]
    pub strict_arp: Option<bool>,
}

impl KubeProxyConfig {
    /// Parses `config.conf`; the error is one line.
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_saphyr::from_str(text).map_err(|e| e.to_string().lines().next().unwrap_or_default().to_owned())
    }

    /// The proxy mode; empty or missing is kube-proxy's default, `iptables`.
    pub fn mode(&self) -> &str {
        self.mode.as_deref().filter(|m| !m.is_empty()).unwrap_or("iptables")
    }

    /// `ipvs.strictARP`, false when missing.
    pub fn strict_arp(&self) -> bool {
        self.ipvs.as_ref().and_then(|i| i.strict_arp).unwrap_or(false)
    }
}

/// Every finding, in check order (at most one for each kube-proxy check, one per policy for
/// `interfaces`).
pub fn evaluate(s: &Signals) -> Vec<Finding> {
    let mut out = Vec::new();
    out.extend(ipvs_strict_arp(s));
    out.extend(kube_proxy_missing(s));
    out.extend(interface_findings(s.policies.as_deref().unwrap_or_default(), &s.interfaces));
    out
}

const CONFIGMAP: &str = "ConfigMap kube-system/kube-proxy";

fn ipvs_strict_arp(s: &Signals) -> Option<Finding> {
    let mut why = Vec::new();
    let mut action = Vec::new();
    let mut unreadable = None;
    let mut configured_strict = false;
    if let Some(Some(text)) = s.cluster.kube_proxy_config.present() {
        match KubeProxyConfig::parse(text) {
            Ok(c) if c.mode() == "ipvs" && !c.strict_arp() => {
                why.push(format!("{CONFIGMAP} says mode ipvs without ipvs.strictARP: true"));
                action.push(
                    "set `ipvs: {strictARP: true}` in config.conf (`kubectl -n kube-system edit configmap \
                     kube-proxy`), then restart kube-proxy (`kubectl -n kube-system rollout restart daemonset \
                     kube-proxy`)",
                );
            }
            Ok(c) => configured_strict = c.mode() == "ipvs",
            Err(e) => unreadable = Some(e),
        }
    }
    if let Some(e) = s.embedded.as_ref().filter(|e| !e.disabled)
        && e.arg("proxy-mode") == Some("ipvs")
        && e.arg("ipvs-strict-arp") != Some("true")
    {
        why.push(format!(
            "the node's {} arguments say --kube-proxy-arg proxy-mode=ipvs without ipvs-strict-arp=true",
            e.distribution
        ));
        action.push(
            "add `--kube-proxy-arg=ipvs-strict-arp=true` to the node's arguments (or `kube-proxy-arg: \
             [ipvs-strict-arp=true]` in its config.yaml) and restart it",
        );
    }
    let local_ipvs = s.local.as_ref().filter(|l| l.kube_ipvs0);
    let locally_strict = local_ipvs.and_then(LocalSignals::strict);
    if let Some(l) = local_ipvs
        && locally_strict == Some(false)
    {
        why.push(format!("this node has {KUBE_IPVS_INTERFACE} and {}", l.sysctls()));
        if configured_strict {
            action.push("kube-proxy was not restarted since strictARP was set: restart it on this node");
        } else if action.is_empty() {
            action.push(
                "enable kube-proxy's strictARP (kubeadm: `ipvs: {strictARP: true}` in the kube-proxy ConfigMap; \
                 k3s: `--kube-proxy-arg=ipvs-strict-arp=true`) and restart kube-proxy",
            );
        }
    }
    if why.is_empty() {
        let e = unreadable?;
        return Some(Finding {
            check: Check::IpvsStrictArp,
            severity: Severity::Warning,
            message: format!(
                "{CONFIGMAP}: config.conf is not a readable KubeProxyConfiguration ({e}), so whether kube-proxy runs in IPVS mode without strictARP is not known"
            ),
            action: "check it with `kubectl -n kube-system get configmap kube-proxy -o yaml`".into(),
        });
    }
    // Already strict here: other nodes may not be, but this one does not answer for kube-ipvs0.
    let severity = if locally_strict == Some(true) { Severity::Warning } else { Severity::Error };
    let mut message = format!(
        "kube-proxy runs in IPVS mode without strictARP: it puts every LoadBalancer address on {KUBE_IPVS_INTERFACE} \
         on every node, and every node answers ARP for it, not only FerroLB's holder ({})",
        why.join("; ")
    );
    if let Some(l) = local_ipvs.filter(|_| severity == Severity::Warning) {
        message.push_str(&format!(
            "; this node has {} (set by something else), so it does not answer for them",
            l.sysctls()
        ));
    }
    Some(Finding { check: Check::IpvsStrictArp, severity, message, action: action.join("; ") })
}

fn kube_proxy_missing(s: &Signals) -> Option<Finding> {
    let c = &s.cluster;
    let present = c.kube_proxy_config.present().is_some()
        || c.kube_proxy_daemonset.present().is_some()
        || s.embedded.as_ref().is_some_and(|e| !e.disabled)
        || s.local.as_ref().is_some_and(|l| l.kube_ipvs0);
    if present {
        return None;
    }
    let replacement = c.cilium_kube_proxy_replacement.present().cloned().flatten();
    if replacement
        .as_deref()
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("strict"))
    {
        return None;
    }
    if c.kube_proxy_config.failed()
        || c.kube_proxy_daemonset.failed()
        || c.cilium_kube_proxy_replacement.failed()
    {
        return None;
    }
    let embedded = match &s.embedded {
        Some(e) => format!("a {} node started with --disable-kube-proxy", e.distribution),
        None => "not a k3s or RKE2 node".into(),
    };
    let cilium = match (&c.cilium_kube_proxy_replacement, &replacement) {
        (Read::Present(_), Some(v)) => format!("cilium-config says {CILIUM_KPR_KEY}: {v}"),
        (Read::Present(_), None) => format!("cilium-config has no {CILIUM_KPR_KEY}"),
        _ => "no ConfigMap kube-system/cilium-config".into(),
    };
    let local = if s.local.is_some() { format!(", no {KUBE_IPVS_INTERFACE}") } else { String::new() };
    Some(Finding {
        check: Check::KubeProxyMissing,
        severity: Severity::Warning,
        message: format!(
            "no kube-proxy found (no ConfigMap nor DaemonSet kube-system/kube-proxy, {embedded}{local}) and no \
             kube-proxy replacement detected ({cilium}): traffic to an announced address may reach this node and \
             go nowhere"
        ),
        action: "run kube-proxy, or a CNI that replaces it (Cilium: kube-proxy-replacement: true); if your CNI \
                 replaces kube-proxy in a way FerroLB does not detect (Calico's eBPF dataplane, ...), ignore this"
            .into(),
    })
}

/// The `interfaces` check alone: `policies` select the node, `interfaces` are its interface names.
pub fn interface_findings(policies: &[PolicyInterfaces], interfaces: &[String]) -> Vec<Finding> {
    let seen = if interfaces.is_empty() { "none".to_owned() } else { interfaces.join(", ") };
    policies
        .iter()
        .filter(|p| p.selected.is_empty())
        .map(|p| {
            let wanted = if p.patterns.is_empty() {
                "selects every eligible interface (none listed), but".to_owned()
            } else {
                format!("lists interfaces {:?}, which", p.patterns)
            };
            Finding {
                check: Check::Interfaces,
                severity: Severity::Warning,
                message: format!(
                    "L2AnnouncementPolicy {} selects this node and {wanted} match no eligible interface here, so \
                     this node never announces for it (interfaces here: {seen})",
                    p.policy
                ),
                action: format!(
                    "fix spec.interfaces of L2AnnouncementPolicy {0} (regular expressions matched against the whole \
                     name, e.g. `eth0`, `enp.*`), or exclude this node with its spec.nodeSelector (`kubectl edit \
                     l2policy {0}`)",
                    p.policy
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(text: &str) -> ClusterSignals {
        ClusterSignals { kube_proxy_config: Read::Present(Some(text.into())), ..Default::default() }
    }

    fn signals(cluster: ClusterSignals) -> Signals {
        Signals { cluster, ..Default::default() }
    }

    fn checks(s: &Signals) -> Vec<(Check, Severity)> {
        evaluate(s).into_iter().map(|f| (f.check, f.severity)).collect()
    }

    fn local(ipvs: bool, ignore: u32, announce: u32) -> Option<LocalSignals> {
        Some(LocalSignals { kube_ipvs0: ipvs, arp_ignore: Some(ignore), arp_announce: Some(announce) })
    }

    fn k3s(args: &[&str]) -> Option<EmbeddedKubeProxy> {
        let annotations =
            BTreeMap::from([("k3s.io/node-args".to_owned(), serde_json::to_string(args).unwrap())]);
        EmbeddedKubeProxy::from_annotations(&annotations)
    }

    #[test]
    fn ipvs_without_strict_arp_in_the_configmap_is_an_error() {
        let s = signals(cm("mode: ipvs\nipvs:\n  strictARP: false\n"));
        let f = evaluate(&s);
        assert_eq!(checks(&s), [(Check::IpvsStrictArp, Severity::Error)]);
        assert!(
            f[0].message.starts_with("kube-proxy runs in IPVS mode without strictARP"),
            "{}",
            f[0].message
        );
        assert!(f[0].action.contains("strictARP: true"), "{}", f[0].action);
        assert_eq!(f[0].reason(), "PreflightIPVSStrictARP");
        // A missing strictARP is false too.
        assert_eq!(checks(&signals(cm("mode: \"ipvs\"\n"))), [(Check::IpvsStrictArp, Severity::Error)]);
    }

    #[test]
    fn other_modes_and_strict_ipvs_are_fine() {
        for text in [
            "mode: ipvs\nipvs: {strictARP: true}\n",
            "mode: iptables\n",
            "mode: \"\"\nipvs: {strictARP: false}\n",
            "mode: nftables\n",
        ] {
            assert_eq!(checks(&signals(cm(text))), [], "{text}");
        }
        // A ConfigMap without config.conf: kube-proxy runs with defaults (iptables), and it exists.
        let s = signals(ClusterSignals { kube_proxy_config: Read::Present(None), ..Default::default() });
        assert_eq!(checks(&s), []);
    }

    #[test]
    fn an_unreadable_config_is_a_warning_that_says_so() {
        let f = evaluate(&signals(cm("mode: [unclosed\n")));
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].check, f[0].severity), (Check::IpvsStrictArp, Severity::Warning));
        assert!(f[0].message.contains("not a readable KubeProxyConfiguration"), "{}", f[0].message);
        assert!(!f[0].message.contains('\n'));
    }

    #[test]
    fn the_node_shows_ipvs_without_the_sysctls_whatever_the_configmap_says() {
        // k3s: no ConfigMap, but kube-ipvs0 and the kernel defaults.
        let s = Signals { embedded: k3s(&["server"]), local: local(true, 0, 0), ..Default::default() };
        let f = evaluate(&s);
        assert_eq!(checks(&s), [(Check::IpvsStrictArp, Severity::Error)]);
        assert!(
            f[0].message.contains("this node has kube-ipvs0 and net.ipv4.conf.all.arp_ignore=0"),
            "{}",
            f[0].message
        );
        // Only one of the two set is not enough.
        let s = Signals { local: local(true, 1, 0), ..signals(cm("mode: ipvs\n")) };
        assert_eq!(checks(&s), [(Check::IpvsStrictArp, Severity::Error)]);
        // strictARP set in the ConfigMap, but kube-proxy not restarted: the node still answers.
        let s = Signals { local: local(true, 0, 0), ..signals(cm("mode: ipvs\nipvs: {strictARP: true}\n")) };
        let f = evaluate(&s);
        assert_eq!(checks(&s), [(Check::IpvsStrictArp, Severity::Error)]);
        assert!(f[0].action.contains("not restarted"), "{}", f[0].action);
        // The sysctls set: no kube-ipvs0 problem on this node.
        let s = Signals { embedded: k3s(&["server"]), local: local(true, 1, 2), ..Default::default() };
        assert_eq!(checks(&s), []);
        // Unreadable sysctls decide nothing.
        let unknown = Some(LocalSignals { kube_ipvs0: true, arp_ignore: None, arp_announce: Some(2) });
        let s = Signals { embedded: k3s(&["server"]), local: unknown, ..Default::default() };
        assert_eq!(checks(&s), []);
        // No kube-ipvs0: the sysctls do not matter.
        let s = Signals { embedded: k3s(&["server"]), local: local(false, 0, 0), ..Default::default() };
        assert_eq!(checks(&s), []);
    }

    #[test]
    fn a_strict_node_under_a_lax_configmap_is_only_a_warning() {
        let s = Signals { local: local(true, 1, 2), ..signals(cm("mode: ipvs\n")) };
        let f = evaluate(&s);
        assert_eq!(checks(&s), [(Check::IpvsStrictArp, Severity::Warning)]);
        assert!(f[0].message.contains("does not answer for them"), "{}", f[0].message);
    }

    #[test]
    fn k3s_arguments_show_ipvs_without_strict_arp() {
        let lax = k3s(&["server", "--kube-proxy-arg", "proxy-mode=ipvs"]);
        let s = Signals { embedded: lax, ..Default::default() };
        let f = evaluate(&s);
        assert_eq!(checks(&s), [(Check::IpvsStrictArp, Severity::Error)]);
        assert!(f[0].message.contains("k3s arguments"), "{}", f[0].message);
        assert!(f[0].action.contains("ipvs-strict-arp=true"), "{}", f[0].action);
        let strict = k3s(&[
            "server",
            "--kube-proxy-arg=--proxy-mode=ipvs",
            "--kube-proxy-arg",
            "ipvs-strict-arp=true",
        ]);
        assert_eq!(checks(&Signals { embedded: strict, ..Default::default() }), []);
        let iptables = k3s(&["agent", "--kube-proxy-arg", "proxy-mode=iptables"]);
        assert_eq!(checks(&Signals { embedded: iptables, ..Default::default() }), []);
    }

    #[test]
    fn node_args_parse_and_bad_ones_never_panic() {
        let e = k3s(&["server", "--disable-kube-proxy", "--kube-proxy-arg=proxy-mode=ipvs"]).unwrap();
        assert!(e.disabled);
        assert_eq!(e.args, ["proxy-mode=ipvs"]);
        assert_eq!(e.distribution, "k3s");
        assert!(!k3s(&["server", "--disable-kube-proxy=false"]).unwrap().disabled);
        // A trailing flag without its value, garbage JSON, another distribution.
        assert_eq!(k3s(&["--kube-proxy-arg"]).unwrap().args, [""]);
        let garbage = BTreeMap::from([("rke2.io/node-args".to_owned(), "{not json".to_owned())]);
        let e = EmbeddedKubeProxy::from_annotations(&garbage).unwrap();
        assert_eq!((e.distribution, e.disabled, e.args.len()), ("RKE2", false, 0));
        assert_eq!(EmbeddedKubeProxy::from_annotations(&BTreeMap::new()), None);
    }

    #[test]
    fn kube_proxy_missing_is_a_warning_unless_something_shows_it() {
        let none = Signals { local: local(false, 0, 0), ..Default::default() };
        let f = evaluate(&none);
        assert_eq!(checks(&none), [(Check::KubeProxyMissing, Severity::Warning)]);
        assert!(f[0].message.contains("no kube-proxy found"), "{}", f[0].message);
        assert_eq!(f[0].reason(), "PreflightKubeProxyMissing");

        let daemonset = ClusterSignals { kube_proxy_daemonset: Read::Present(()), ..Default::default() };
        assert_eq!(checks(&signals(daemonset)), []);
        assert_eq!(checks(&signals(cm("mode: iptables\n"))), []);
        assert_eq!(
            checks(&Signals { embedded: k3s(&["server"]), ..Default::default() }),
            [],
            "k3s embeds kube-proxy"
        );
        assert_eq!(checks(&Signals { local: local(true, 1, 2), ..Default::default() }), [], "kube-ipvs0");
        for replaced in ["true", "True", "strict"] {
            let cilium = ClusterSignals {
                cilium_kube_proxy_replacement: Read::Present(Some(replaced.into())),
                ..Default::default()
            };
            assert_eq!(checks(&signals(cilium)), [], "{replaced}");
        }
        // Cilium without the replacement, and k3s with kube-proxy disabled, still warn.
        let partial = ClusterSignals {
            cilium_kube_proxy_replacement: Read::Present(Some("false".into())),
            ..Default::default()
        };
        let f = evaluate(&signals(partial));
        assert!(f[0].message.contains("kube-proxy-replacement: false"), "{}", f[0].message);
        let disabled = Signals { embedded: k3s(&["server", "--disable-kube-proxy"]), ..Default::default() };
        let f = evaluate(&disabled);
        assert_eq!(checks(&disabled), [(Check::KubeProxyMissing, Severity::Warning)]);
        assert!(f[0].message.contains("k3s node started with --disable-kube-proxy"), "{}", f[0].message);
        // A failed read: no guess.
        let failed =
            ClusterSignals { kube_proxy_daemonset: Read::Failed("forbidden".into()), ..Default::default() };
        assert_eq!(checks(&signals(failed)), []);
    }

    #[test]
    fn a_policy_that_selects_no_interface_here_is_a_warning_each() {
        let policy = |name: &str, patterns: &[&str], selected: &[&str]| PolicyInterfaces {
            policy: name.into(),
            patterns: patterns.iter().map(|s| s.to_string()).collect(),
            selected: selected.iter().map(|s| s.to_string()).collect(),
        };
        let s = Signals {
            cluster: cm("mode: iptables\n"),
            policies: Some(vec![
                policy("lan", &["eth0", "eno1"], &["eth0"]),
                policy("typo", &["eht0"], &[]),
                policy("all", &[], &[]),
            ]),
            interfaces: vec!["lo".into(), "eth0".into()],
            ..Default::default()
        };
        let f = evaluate(&s);
        assert_eq!(
            checks(&s),
            [(Check::Interfaces, Severity::Warning), (Check::Interfaces, Severity::Warning)]
        );
        assert!(
            f[0].message
                .starts_with("L2AnnouncementPolicy typo selects this node and lists interfaces [\"eht0\"]"),
            "{}",
            f[0].message
        );
        assert!(f[0].message.contains("(interfaces here: lo, eth0)"), "{}", f[0].message);
        assert!(f[1].message.contains("every eligible interface"), "{}", f[1].message);
        assert_eq!(f[1].reason(), "PreflightNoInterface");
        // Unknown interfaces: nothing said.
        assert_eq!(checks(&Signals { policies: None, ..s }), []);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_inputs_never_panic(text in ".{0,200}", args in proptest::collection::vec(".{0,30}", 0..8)) {
            let _ = evaluate(&signals(cm(&text)));
            let annotations = BTreeMap::from([("k3s.io/node-args".to_owned(), text.clone())]);
            let _ = EmbeddedKubeProxy::from_annotations(&annotations);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let _ = evaluate(&Signals { embedded: k3s(&args), local: local(true, 0, 0), ..Default::default() });
        }
    }

    #[test]
    fn every_check_has_a_distinct_name_and_reason() {
        let names: std::collections::BTreeSet<_> = Check::ALL.iter().map(|c| c.name()).collect();
        let reasons: std::collections::BTreeSet<_> = Check::ALL.iter().map(|c| c.reason()).collect();
        assert_eq!((names.len(), reasons.len()), (3, 3));
    }
}
