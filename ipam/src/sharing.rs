//! When two Services may share one address (Cilium's rules, with MetalLB's keys mapped in).

use std::collections::{BTreeMap, BTreeSet};

use crate::service::{ServicePort, TrafficPolicy};

/// Which other namespaces may share a Service's address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CrossNamespace {
    /// `*`: any namespace (also every MetalLB or Deckhouse key, which are not namespaced).
    All,
    /// The listed namespaces (empty: only the Service's own namespace).
    Only(BTreeSet<String>),
}

impl CrossNamespace {
    /// Parses `ferrolb.io/sharing-cross-namespace`: comma list, `*` for all.
    pub fn parse(s: &str) -> Self {
        let names: BTreeSet<String> =
            s.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_string).collect();
        if names.contains("*") { Self::All } else { Self::Only(names) }
    }

    fn allows(&self, namespace: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(names) => names.contains(namespace),
        }
    }
}

/// What decides whether a Service may share an address with another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SharingProfile {
    pub key: String,
    pub namespace: String,
    pub cross_namespace: CrossNamespace,
    pub ports: BTreeSet<ServicePort>,
    pub traffic_policy: TrafficPolicy,
    pub selector: BTreeMap<String, String>,
}

impl SharingProfile {
    /// Why `self` and `other` may not share an address, or `None` when they may. The reason is
    /// written for the Service condition (`already_allocated_incompatible_service`).
    pub fn incompatibility(&self, other: &SharingProfile) -> Option<String> {
        if self.key != other.key {
            return Some(format!("sharing keys differ ({:?} and {:?})", self.key, other.key));
        }
        if self.namespace != other.namespace
            && !(self.cross_namespace.allows(&other.namespace)
                && other.cross_namespace.allows(&self.namespace))
        {
            return Some(format!(
                "namespaces {:?} and {:?} do not both allow cross-namespace sharing",
                self.namespace, other.namespace
            ));
        }
        if let Some(p) = self.ports.intersection(&other.ports).next() {
            return Some(format!("both use port {}/{}", p.port, p.protocol));
        }
        if self.traffic_policy != other.traffic_policy {
            return Some("externalTrafficPolicy differs".into());
        }
        if self.traffic_policy == TrafficPolicy::Local
            && (self.selector.is_empty() || self.selector != other.selector)
        {
            return Some("externalTrafficPolicy Local needs equal, non-empty selectors".into());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(ns: &str, ports: &[(&str, u16)]) -> SharingProfile {
        SharingProfile {
            key: "k".into(),
            namespace: ns.into(),
            cross_namespace: CrossNamespace::Only(BTreeSet::new()),
            ports: ports.iter().map(|(p, n)| ServicePort::new(*p, *n)).collect(),
            traffic_policy: TrafficPolicy::Cluster,
            selector: BTreeMap::new(),
        }
    }

    #[test]
    fn rules() {
        let a = profile("a", &[("TCP", 80)]);
        assert_eq!(a.incompatibility(&profile("a", &[("TCP", 443)])), None);
        assert_eq!(a.incompatibility(&profile("a", &[("UDP", 80)])), None, "protocol counts");
        assert!(a.incompatibility(&profile("a", &[("TCP", 80)])).unwrap().contains("80/TCP"));
        let mut other_key = profile("a", &[]);
        other_key.key = "x".into();
        assert!(a.incompatibility(&other_key).is_some());

        let mut b = profile("b", &[("TCP", 443)]);
        assert!(a.incompatibility(&b).is_some(), "cross-namespace needs both sides");
        b.cross_namespace = CrossNamespace::parse("a");
        assert!(a.incompatibility(&b).is_some());
        let mut a2 = a.clone();
        a2.cross_namespace = CrossNamespace::parse(" *, x");
        assert_eq!(a2.incompatibility(&b), None);
        assert_eq!(b.incompatibility(&a2), None);

        let mut l1 = profile("a", &[("TCP", 1)]);
        l1.traffic_policy = TrafficPolicy::Local;
        let mut l2 = profile("a", &[("TCP", 2)]);
        l2.traffic_policy = TrafficPolicy::Local;
        assert!(l1.incompatibility(&l2).is_some(), "Local with empty selectors");
        l1.selector.insert("app".into(), "web".into());
        l2.selector.insert("app".into(), "web".into());
        assert_eq!(l1.incompatibility(&l2), None);
        assert!(l1.incompatibility(&profile("a", &[("TCP", 3)])).is_some(), "policies differ");
    }
}
