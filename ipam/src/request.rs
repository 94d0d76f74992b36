//! What a Service asks for: served or not, address families, explicit addresses, pools, count and
//! sharing, read from its spec and annotations (FerroLB's and, with `--compat-annotations`,
//! MetalLB's, Cilium's and Deckhouse's; a `ferrolb.io/*` key wins over a compatibility key).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_api::names::annotations::{self as ann, compat};
use ferrolb_api::range::{parse_ip, parse_ip_list};
use ferrolb_api::{Family, ServedClasses};

use crate::service::{IpFamilyPolicy, ServiceInput};
use crate::sharing::{CrossNamespace, SharingProfile};

/// Largest `ip-count` honoured; more would let one Service drain a pool by typo.
pub const MAX_IP_COUNT: u32 = 64;

/// Controller settings that change how Services are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The load-balancer classes served (`--default-class`, `--load-balancer-classes`).
    pub classes: ServedClasses,
    /// Honour MetalLB, Cilium and Deckhouse annotations (`--compat-annotations`).
    pub compat_annotations: bool,
    /// Address families the cluster has, for Services that do not say (as Cilium's
    /// `ipv4Enabled`/`ipv6Enabled`).
    pub ipv4: bool,
    pub ipv6: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self { classes: ServedClasses::default(), compat_annotations: true, ipv4: true, ipv6: true }
    }
}

impl Config {
    /// Whether FerroLB serves this Service: `type: LoadBalancer` of a served class
    /// ([`ServedClasses::serves`]).
    pub fn serves(&self, svc: &ServiceInput) -> bool {
        svc.service_type == "LoadBalancer" && self.classes.serves(svc.load_balancer_class.as_deref())
    }
}

/// How a Service's families must be satisfied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FamilyRule {
    /// Every requested family (SingleStack, RequireDualStack).
    All,
    /// At least one; the others are tried and reported (PreferDualStack).
    AtLeastOne,
}

/// A Service's request, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Request {
    /// Families to allocate automatically, in the Service's order.
    pub families: Vec<Family>,
    pub family_rule: FamilyRule,
    /// Explicit addresses (`spec.loadBalancerIP` first, then the annotation). When present they
    /// are the whole request: no automatic allocation, `ip-count` ignored (Cilium).
    pub ips: Vec<IpAddr>,
    /// Pools the Service names; empty means any pool whose selector matches and that auto-assigns.
    pub pools: Vec<String>,
    /// Addresses per family (`ferrolb.io/ip-count`), at least 1.
    pub count: u32,
    pub sharing: Option<SharingProfile>,
    /// Malformed entries, each naming the annotation or field and the entry. The valid rest is
    /// served.
    pub warnings: Vec<String>,
}

impl Request {
    /// Reads the request of a served Service.
    pub fn parse(svc: &ServiceInput, config: &Config) -> Self {
        let a = &svc.annotations;
        let mut warnings = Vec::new();
        let compat = config.compat_annotations;

        let mut ips = Vec::new();
        if let Some(v) = svc.load_balancer_ip.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            match parse_ip(v) {
                Ok(ip) => ips.push(ip),
                Err(_) => warnings.push(format!("spec.loadBalancerIP: {v:?} is not an IP address")),
            }
        }
        if let Some((key, value)) = first_set(a, ann::IPS, compat::IPS_ALIASES, compat) {
            let (list, errors) = parse_ip_list(value);
            for e in errors {
                warnings.push(format!("annotation {key}: {e}"));
            }
            for ip in list {
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
        }

        let mut pools = Vec::new();
        if let Some((key, value)) = first_set(a, ann::POOL, compat::POOL_ALIASES, compat) {
            for (i, entry) in value.split(',').map(str::trim).enumerate() {
                if entry.is_empty() {
                    continue;
                }
                if !is_object_name(entry) {
                    warnings
                        .push(format!("annotation {key}: entry {} ({entry:?}) is not a pool name", i + 1));
                } else if !pools.iter().any(|p| p == entry) {
                    pools.push(entry.to_string());
                }
            }
        }

        let mut count = 1;
        if let Some((key, value)) = first_set(a, ann::IP_COUNT, compat::IP_COUNT_ALIASES, compat) {
            match value.trim().parse::<u32>() {
                Ok(n) if (1..=MAX_IP_COUNT).contains(&n) => count = n,
                _ => warnings.push(format!(
                    "annotation {key}: {value:?} is not a number from 1 to {MAX_IP_COUNT}; using 1"
                )),
            }
        }
        if count > 1 && !ips.is_empty() {
            warnings.push("ip-count is ignored because explicit addresses are requested".into());
        }

        let (families, family_rule) = families(svc, config);
        Self { families, family_rule, ips, pools, count, sharing: sharing(svc, compat), warnings }
    }
}

/// FerroLB's key if set, else (with `compat`) the first of its aliases that is set.
fn first_set<'a>(
    a: &'a BTreeMap<String, String>,
    key: &'static str,
    aliases: &[&'static str],
    compat: bool,
) -> Option<(&'static str, &'a str)> {
    let aliases = if compat { aliases } else { &[] };
    std::iter::once(&key).chain(aliases).find_map(|k| a.get(*k).map(|v| (*k, v.as_str())))
}

/// Families as Cilium derives them: SingleStack (or no policy) takes the first of `ipFamilies`,
/// PreferDualStack the listed ones, RequireDualStack both; families the cluster lacks are dropped.
fn families(svc: &ServiceInput, config: &Config) -> (Vec<Family>, FamilyRule) {
    let enabled = |f: &Family| match f {
        Family::V4 => config.ipv4,
        Family::V6 => config.ipv6,
    };
    let both: Vec<Family> = [Family::V4, Family::V6].into_iter().filter(enabled).collect();
    let policy = svc.ip_family_policy.unwrap_or_default();
    match policy {
        IpFamilyPolicy::SingleStack => {
            // Kubernetes sets ipFamilies on every Service with a ClusterIP; the default is for
            // headless ones and hand-written inputs.
            let f = svc.ip_families.first().copied().or_else(|| both.first().copied());
            (f.into_iter().collect(), FamilyRule::All)
        }
        IpFamilyPolicy::PreferDualStack => {
            let mut fams: Vec<Family> = svc.ip_families.iter().copied().filter(enabled).collect();
            fams.dedup();
            if fams.is_empty() {
                fams = both;
            }
            (fams, FamilyRule::AtLeastOne)
        }
        IpFamilyPolicy::RequireDualStack => {
            // Keep the Service's order (its primary family first), then the other one.
            let mut fams: Vec<Family> = svc.ip_families.iter().copied().filter(enabled).collect();
            for f in both {
                if !fams.contains(&f) {
                    fams.push(f);
                }
            }
            (fams, FamilyRule::All)
        }
    }
}

/// The sharing key and rules. FerroLB's and Cilium's keys are namespaced (cross-namespace only when
/// both Services allow it); MetalLB's and Deckhouse's keys are not, so they share across
/// namespaces.
fn sharing(svc: &ServiceInput, compat: bool) -> Option<SharingProfile> {
    let a = &svc.annotations;
    let value = |k: &&'static str| a.get(*k).map(|v| v.trim()).filter(|v| !v.is_empty()).map(str::to_string);
    let aliases: &[&'static str] = if compat { compat::SHARING_KEY_NAMESPACED_ALIASES } else { &[] };
    let (key, cross_namespace) =
        if let Some(key) = std::iter::once(&ann::SHARING_KEY).chain(aliases).find_map(value) {
            let cross =
                first_set(a, ann::SHARING_CROSS_NAMESPACE, compat::SHARING_CROSS_NAMESPACE_ALIASES, compat)
                    .map(|(_, v)| CrossNamespace::parse(v))
                    .unwrap_or(CrossNamespace::Only(Default::default()));
            (key, cross)
        } else if compat {
            (compat::SHARING_KEY_GLOBAL_ALIASES.iter().find_map(value)?, CrossNamespace::All)
        } else {
            return None;
        };
    Some(SharingProfile {
        key,
        namespace: svc.key.namespace.clone(),
        cross_namespace,
        ports: svc.ports.iter().cloned().collect(),
        traffic_policy: svc.external_traffic_policy,
        selector: svc.selector.clone(),
    })
}

/// A DNS subdomain, as Kubernetes object names are.
fn is_object_name(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::TrafficPolicy;

    fn svc() -> ServiceInput {
        ServiceInput::load_balancer("default", "web")
    }

    #[test]
    fn served_classes() {
        let c = Config::default();
        assert!(c.serves(&svc()));
        let mut s = svc();
        s.load_balancer_class = Some(ferrolb_api::names::LOAD_BALANCER_CLASS.into());
        assert!(c.serves(&s));
        s.load_balancer_class = Some("io.cilium/l2-announcer".into());
        assert!(!c.serves(&s));
        let no_default =
            Config { classes: ServedClasses::new(false, ["io.cilium/l2-announcer"]), ..Config::default() };
        assert!(!no_default.serves(&svc()));
        assert!(no_default.serves(&s), "an added class is served");
        let mut cluster_ip = svc();
        cluster_ip.service_type = "ClusterIP".into();
        assert!(!c.serves(&cluster_ip));
        cluster_ip.load_balancer_class = Some("io.cilium/l2-announcer".into());
        assert!(!no_default.serves(&cluster_ip), "a served class does not make a ClusterIP Service ours");
    }

    #[test]
    fn ferrolb_keys_win_and_bad_entries_are_named() {
        let mut s = svc()
            .with_annotation(ann::IPS, "198.51.100.130, nonsense")
            .with_annotation(compat::METALLB_IPS, "198.51.100.200")
            .with_annotation(ann::IP_COUNT, "x");
        s.load_balancer_ip = Some("198.51.100.129".into());
        let r = Request::parse(&s, &Config::default());
        let ips: Vec<String> = r.ips.iter().map(|i| i.to_string()).collect();
        assert_eq!(ips, ["198.51.100.129", "198.51.100.130"]);
        assert_eq!(r.count, 1);
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
        assert!(r.warnings[0].contains("ferrolb.io/ips: entry 2 (\"nonsense\")"), "{}", r.warnings[0]);
        assert!(r.warnings[1].contains("ferrolb.io/ip-count"), "{}", r.warnings[1]);
    }

    #[test]
    fn compat_keys_only_with_the_flag() {
        let s = svc()
            .with_annotation(compat::METALLB_LEGACY_IPS, "198.51.100.200")
            .with_annotation(compat::METALLB_POOL, "legacy")
            .with_annotation(compat::DECKHOUSE_IP_COUNT, "3")
            .with_annotation(compat::METALLB_SHARED, "k");
        let r = Request::parse(&s, &Config::default());
        assert_eq!(r.ips.len(), 1);
        assert_eq!(r.pools, ["legacy"]);
        assert_eq!(r.count, 3);
        assert_eq!(r.sharing.as_ref().unwrap().cross_namespace, CrossNamespace::All);
        let off = Config { compat_annotations: false, ..Config::default() };
        let r = Request::parse(&s, &off);
        assert!(r.ips.is_empty() && r.pools.is_empty() && r.sharing.is_none());
        assert_eq!(r.count, 1);
    }

    #[test]
    fn cilium_sharing_is_namespaced() {
        let mut s = svc()
            .with_annotation(compat::CILIUM_SHARING_KEY, "k")
            .with_annotation(compat::CILIUM_SHARING_CROSS_NAMESPACE, "other")
            .with_ports(&[("TCP", 80)]);
        s.external_traffic_policy = TrafficPolicy::Local;
        let p = Request::parse(&s, &Config::default()).sharing.unwrap();
        assert_eq!(p.key, "k");
        assert_eq!(p.cross_namespace, CrossNamespace::parse("other"));
        assert_eq!(p.traffic_policy, TrafficPolicy::Local);
        // FerroLB's key wins over MetalLB's and keeps its namespacing.
        let s = svc().with_annotation(ann::SHARING_KEY, "f").with_annotation(compat::METALLB_SHARED, "m");
        let p = Request::parse(&s, &Config::default()).sharing.unwrap();
        assert_eq!((p.key.as_str(), &p.cross_namespace), ("f", &CrossNamespace::Only(Default::default())));
    }

    #[test]
    fn families_like_cilium() {
        let c = Config::default();
        let fam = |s: ServiceInput| {
            let r = Request::parse(&s, &c);
            (r.families, r.family_rule)
        };
        assert_eq!(fam(svc()), (vec![Family::V4], FamilyRule::All));
        let v6 = svc().with_families(IpFamilyPolicy::SingleStack, &[Family::V6, Family::V4]);
        assert_eq!(fam(v6), (vec![Family::V6], FamilyRule::All));
        let pref = svc().with_families(IpFamilyPolicy::PreferDualStack, &[Family::V6, Family::V4]);
        assert_eq!(fam(pref), (vec![Family::V6, Family::V4], FamilyRule::AtLeastOne));
        let req = svc().with_families(IpFamilyPolicy::RequireDualStack, &[Family::V6]);
        assert_eq!(fam(req), (vec![Family::V6, Family::V4], FamilyRule::All));
        let v4_only = Config { ipv6: false, ..Config::default() };
        let pref = svc().with_families(IpFamilyPolicy::PreferDualStack, &[Family::V4, Family::V6]);
        assert_eq!(Request::parse(&pref, &v4_only).families, vec![Family::V4]);
    }

    #[test]
    fn pool_names_are_checked() {
        let s = svc().with_annotation(ann::POOL, "a, B_ad ,b,a");
        let r = Request::parse(&s, &Config::default());
        assert_eq!(r.pools, ["a", "b"]);
        assert_eq!(r.warnings.len(), 1);
        assert!(r.warnings[0].contains("entry 2 (\"B_ad\")"));
    }
}
