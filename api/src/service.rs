//! What FerroLB's components share about a Service: its key, its traffic policy.

use std::fmt;

/// `namespace/name` of a Service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl ServiceKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), name: name.into() }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// `spec.externalTrafficPolicy`, one reading for the IPAM controller and the announcer (they had a
/// copy each, and only one of them knew the legacy spelling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TrafficPolicy {
    /// Any node may receive the traffic; the API server's default.
    #[default]
    Cluster,
    /// Only nodes with a local endpoint may receive it.
    Local,
}

impl TrafficPolicy {
    /// Kubernetes' spelling: `Local` (and the pre-1.7 `OnlyLocal`), anything else is `Cluster`.
    pub fn parse(s: &str) -> Self {
        match s {
            "Local" | "OnlyLocal" => Self::Local,
            _ => Self::Cluster,
        }
    }
}

/// The `ferrolb.io/allocated-from-pool` annotation's value: the IPAM controller writes it, the
/// announcer reads it to pick the pool's interfaces and policies.
pub mod allocated_from_pool {
    /// The value for these pools (in ingress order, no repeats); `None` when there are none and the
    /// annotation goes.
    pub fn format<S: AsRef<str>>(pools: &[S]) -> Option<String> {
        (!pools.is_empty()).then(|| pools.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(","))
    }

    /// The pool names of a value, in order; blanks around names and empty entries are ignored,
    /// since a user may have edited it.
    pub fn parse(value: &str) -> Vec<String> {
        value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocated_from_pool_round_trips() {
        let pools = ["public".to_string(), "internal".to_string()];
        let value = allocated_from_pool::format(&pools).unwrap();
        assert_eq!(value, "public,internal");
        assert_eq!(allocated_from_pool::parse(&value), pools);
        assert_eq!(allocated_from_pool::parse(" a, ,b ,"), ["a", "b"]);
        assert_eq!(allocated_from_pool::format::<String>(&[]), None);
    }

    #[test]
    fn traffic_policy_spellings() {
        assert_eq!(TrafficPolicy::parse("Local"), TrafficPolicy::Local);
        assert_eq!(TrafficPolicy::parse("OnlyLocal"), TrafficPolicy::Local);
        for cluster in ["Cluster", "Global", "", "local"] {
            assert_eq!(TrafficPolicy::parse(cluster), TrafficPolicy::Cluster, "{cluster:?}");
        }
    }
}
