//! The Kubernetes API permissions of each FerroLB binary: the one list the Helm chart's RBAC objects
//! are checked against (`conformance/tests/chart.rs`), and that the binaries' real requests against
//! kube-sim are checked against (`conformance/tests/rbac.rs`).
//!
//! Derived from the code, call by call:
//! - `ferrolb-ipam` (`ipam/src/adapter`): watches (list + watch) pools and Services; patches a
//!   Service's `status` (server-side apply) and its `ferrolb.io/allocated-from-pool` annotation (merge
//!   patch), and a pool's `status`; creates Events (`events.k8s.io/v1`,
//!   `ferrolb_runtime::events::publish`; never patches them, since a repeated Event is a new
//!   object); leader election on the Lease `ferrolb-ipam`
//!   (`runtime/src/lease.rs`: get, create, update).
//! - `ferrolb-announcer` (`l2announcer/src/adapter`): watches Nodes, Services, EndpointSlices,
//!   L2AnnouncementPolicies, pools and the Leases of its namespace; creates, patches and deletes the
//!   per-address Leases; renews its heartbeat Lease through the same election code (get, create,
//!   update) and patches its report annotation onto it; patches a policy's `status`; creates
//!   `events.k8s.io/v1` Events directly (never patches them); preflight (`l2announcer/src/adapter/
//!   preflight.rs`) gets the ConfigMaps `kube-proxy` and `cilium-config` and the DaemonSet
//!   `kube-proxy` of `kube-system`, by name.
//! - `ferrolb-announcer` in BGP mode (DESIGN.md §10; `api/src/bgp`): watches `BGPPeer`s,
//!   `BGPAdvertisement`s and `BFDProfile`s and patches their `status` (`ferrolb.io/InvalidSpec`);
//!   creates, patches (server-side apply of the status) and deletes its own node's
//!   `BGPSessionState`s, and lists and watches them (by its node's label) to find stale ones when it
//!   starts; reads the Secrets that hold the peers' MD5 passwords (`BGPPeer.spec.passwordSecret`,
//!   followed with a watch so a changed password reaches the session).
//!
//! Leases are written only in FerroLB's own namespace, so they are granted there only (a Role). The
//! preflight reads are granted in `kube-system` only, on those names only (a Role there with
//! `resourceNames`). Secrets are read only in FerroLB's own namespace (a `BGPPeer` names a Secret
//! there, as MetalLB's names one in its own namespace) and never written. No rule uses a wildcard.

/// Where a rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Every namespace and the cluster-scoped resources (ClusterRole + ClusterRoleBinding).
    Cluster,
    /// Only the namespace FerroLB is installed in (Role + RoleBinding).
    ReleaseNamespace,
    /// Only `kube-system` (Role + RoleBinding there, named `<component>-kube-system`): reading the
    /// configuration of kube-proxy and of Cilium.
    KubeSystem,
}

/// One permission: these verbs on these resources of one API group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Where it applies.
    pub scope: Scope,
    /// The API group (`""` for the core group).
    pub api_group: &'static str,
    /// Resources, subresources written as `resource/subresource` (`services/status`).
    pub resources: &'static [&'static str],
    /// Object names the rule is limited to (RBAC's `resourceNames`); empty: every object.
    pub resource_names: &'static [&'static str],
    /// Verbs, as RBAC names them (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`).
    pub verbs: &'static [&'static str],
}

/// A binary and every permission it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Component {
    /// The chart's component name (`ipam`, `announcer`), also in the RBAC objects' names.
    pub name: &'static str,
    /// Its rules.
    pub rules: &'static [Rule],
}

/// One granted (scope, group, resource, object name (`""`: any), verb), the unit two rule lists are
/// compared in.
pub type Grant = (Scope, String, String, String, String);

impl Component {
    /// Every (scope, group, resource, object name, verb) the rules grant, sorted and without repeats.
    pub fn grants(&self) -> Vec<Grant> {
        let mut out: Vec<Grant> = self
            .rules
            .iter()
            .flat_map(|r| {
                let names: &[&str] = if r.resource_names.is_empty() { &[""] } else { r.resource_names };
                r.resources.iter().flat_map(move |res| {
                    names.iter().flat_map(move |name| {
                        r.verbs.iter().map(move |v| {
                            (
                                r.scope,
                                r.api_group.to_owned(),
                                (*res).to_owned(),
                                (*name).to_owned(),
                                (*v).to_owned(),
                            )
                        })
                    })
                })
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Whether a request (`verb` on `group`/`resource`, `subresource` empty for the object itself)
    /// is allowed in some scope.
    pub fn allows(&self, verb: &str, group: &str, resource: &str, subresource: &str) -> bool {
        let full =
            if subresource.is_empty() { resource.to_owned() } else { format!("{resource}/{subresource}") };
        self.rules
            .iter()
            .any(|r| r.api_group == group && r.resources.contains(&full.as_str()) && r.verbs.contains(&verb))
    }
}

/// `ferrolb-ipam`.
pub const IPAM: Component = Component {
    name: "ipam",
    rules: &[
        Rule {
            scope: Scope::Cluster,
            api_group: crate::names::GROUP,
            resources: &["loadbalancerippools"],
            resource_names: &[],
            verbs: &["list", "watch"],
        },
        Rule {
            scope: Scope::Cluster,
            api_group: crate::names::GROUP,
            resources: &["loadbalancerippools/status"],
            resource_names: &[],
            verbs: &["patch"],
        },
        Rule {
            scope: Scope::Cluster,
            api_group: "",
            resources: &["services"],
            resource_names: &[],
            verbs: &["list", "watch", "patch"],
        },
        Rule {
            scope: Scope::Cluster,
            api_group: "",
            resources: &["services/status"],
            resource_names: &[],
            verbs: &["patch"],
        },
        Rule {
            scope: Scope::Cluster,
            api_group: "events.k8s.io",
            resources: &["events"],
            resource_names: &[],
            verbs: &["create"],
        },
        Rule {
            scope: Scope::ReleaseNamespace,
            api_group: "coordination.k8s.io",
            resources: &["leases"],
            resource_names: &[],
            verbs: &["get", "create", "update"],
        },
    ],
};

/// `ferrolb-announcer`.
pub const ANNOUNCER: Component = Component {
    name: "announcer",
    rules: &[
        Rule {
            scope: Scope::Cluster,
            api_group: "",
            resources: &["nodes", "services"],
            resource_names: &[],
            verbs: &["list", "watch"],
        },
        Rule {
            scope: Scope::Cluster,
            api_group: "discovery.k8s.io",
            resources: &["endpointslices"],
            resource_names: &[],
            verbs: &["list", "watch"],
        },
        Rule {
            scope: Scope::Cluster,
            api_group: crate::names::GROUP,
            resources: &["l2announcementpolicies", "loadbalancerippools"],
            resource_names: &[],
            verbs: &["list", "watch"],
        },
        Rule {
            scope: Scope::Cluster,
            api_group: crate::names::GROUP,
            resources: &["l2announcementpolicies/status"],
            resource_names: &[],
            verbs: &["patch"],
        },
        Rule {
            scope: Scope::Cluster,
            api_group: crate::names::GROUP,
            resources: &["bgppeers", "bgpadvertisements", "bfdprofiles"],
            resource_names: &[],
            verbs: &["list", "watch"],
        },
        Rule {
            scope: Scope::Cluster,
            api_group: crate::names::GROUP,
            resources: &["bgppeers/status", "bgpadvertisements/status", "bfdprofiles/status"],
            resource_names: &[],
            verbs: &["patch"],
        },
        Rule {
            scope: Scope::Cluster,
            api_group: crate::names::GROUP,
            resources: &["bgpsessionstates"],
            resource_names: &[],
            verbs: &["list", "watch", "create", "patch", "delete"],
        },
        Rule {
            scope: Scope::Cluster,
            api_group: crate::names::GROUP,
            resources: &["bgpsessionstates/status"],
            resource_names: &[],
            verbs: &["patch"],
        },
        Rule {
            scope: Scope::Cluster,
            api_group: "events.k8s.io",
            resources: &["events"],
            resource_names: &[],
            verbs: &["create"],
        },
        Rule {
            scope: Scope::ReleaseNamespace,
            api_group: "coordination.k8s.io",
            resources: &["leases"],
            resource_names: &[],
            verbs: &["get", "list", "watch", "create", "update", "patch", "delete"],
        },
        Rule {
            scope: Scope::ReleaseNamespace,
            api_group: "",
            resources: &["secrets"],
            resource_names: &[],
            verbs: &["get", "list", "watch"],
        },
        Rule {
            scope: Scope::KubeSystem,
            api_group: "",
            resources: &["configmaps"],
            resource_names: &[crate::preflight::KUBE_PROXY_NAME, crate::preflight::CILIUM_CONFIG_NAME],
            verbs: &["get"],
        },
        Rule {
            scope: Scope::KubeSystem,
            api_group: "apps",
            resources: &["daemonsets"],
            resource_names: &[crate::preflight::KUBE_PROXY_NAME],
            verbs: &["get"],
        },
    ],
};

/// Every component, in the chart's order.
pub const COMPONENTS: [Component; 2] = [IPAM, ANNOUNCER];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_wildcards_secrets_read_and_leases_only_in_the_namespace() {
        for c in COMPONENTS {
            for (scope, group, resource, name, verb) in c.grants() {
                assert!(
                    !group.contains('*') && !resource.contains('*') && verb != "*",
                    "{}: wildcard",
                    c.name
                );
                if resource == "secrets" {
                    assert!(
                        scope == Scope::ReleaseNamespace && ["get", "list", "watch"].contains(&verb.as_str()),
                        "{}: Secrets beyond reading them in FerroLB's namespace",
                        c.name
                    );
                }
                if scope == Scope::KubeSystem {
                    assert!(
                        !name.is_empty() && verb == "get",
                        "{}: kube-system beyond getting by name",
                        c.name
                    );
                }
                if resource == "leases" {
                    assert_eq!(scope, Scope::ReleaseNamespace, "{}: Leases outside the namespace", c.name);
                }
            }
        }
    }

    #[test]
    fn allows_checks_group_resource_subresource_and_verb() {
        assert!(IPAM.allows("patch", "", "services", "status"));
        assert!(!IPAM.allows("update", "", "services", "status"));
        assert!(!IPAM.allows("patch", "", "nodes", ""));
        assert!(!ANNOUNCER.allows("patch", "", "services", "status"));
        assert!(ANNOUNCER.allows("delete", "coordination.k8s.io", "leases", ""));
        assert!(!ANNOUNCER.allows("delete", "", "leases", ""));
        assert!(ANNOUNCER.allows("patch", "ferrolb.io", "bgpsessionstates", "status"));
        assert!(ANNOUNCER.allows("watch", "ferrolb.io", "bgppeers", ""));
        assert!(!ANNOUNCER.allows("update", "ferrolb.io", "bgppeers", ""));
        assert!(ANNOUNCER.allows("get", "", "secrets", ""));
        assert!(!IPAM.allows("get", "", "secrets", ""));
    }
}
