//! `L2AnnouncementPolicy`: which Service addresses are announced over ARP/NDP, from which nodes
//! and on which interfaces (DESIGN.md §2, §4).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Desired state of an `L2AnnouncementPolicy`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ferrolb.io",
    version = "v1alpha1",
    kind = "L2AnnouncementPolicy",
    plural = "l2announcementpolicies",
    singular = "l2announcementpolicy",
    shortname = "l2policy",
    shortname = "l2policies",
    category = "ferrolb",
    status = "L2AnnouncementPolicyStatus",
    derive = "PartialEq",
    doc = "Which LoadBalancer addresses are announced with ARP/NDP, from which nodes, on which interfaces.",
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct L2AnnouncementPolicySpec {
    /// Services whose addresses this policy announces (with the same pseudo-labels as pools).
    /// No selector: every Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_selector: Option<LabelSelector>,

    /// Nodes that may announce. No selector: every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,

    /// Only addresses allocated from pools whose labels match (MetalLB's
    /// `L2Advertisement.ipAddressPools`/`ipAddressPoolSelectors`). No selector: any pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_selector: Option<LabelSelector>,

    /// Regular expressions (anchored by the announcer) naming the interfaces to answer on. Empty:
    /// every eligible interface (up, ARP-capable, not a bridge port or bond slave, not one of
    /// `lo`, `veth*`, `cali*`, `flannel*`, `cni*`, `docker*`, `kube-ipvs*`, `lxc*`, `tunl*`,
    /// `vxlan*`, `cilium*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub interfaces: Vec<String>,

    /// Announce `status.loadBalancer.ingress` addresses. Default true.
    #[serde(default = "default_true", rename = "loadBalancerIPs")]
    pub load_balancer_ips: bool,

    /// Announce `spec.externalIPs`. Default false.
    #[serde(default, rename = "externalIPs")]
    pub external_ips: bool,
}

impl Default for L2AnnouncementPolicySpec {
    fn default() -> Self {
        Self {
            service_selector: None,
            node_selector: None,
            pool_selector: None,
            interfaces: Vec::new(),
            load_balancer_ips: true,
            external_ips: false,
        }
    }
}

fn default_true() -> bool {
    true
}

/// Observed state of an `L2AnnouncementPolicy`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct L2AnnouncementPolicyStatus {
    /// `ferrolb.io/InvalidSpec` for selectors or interface regexes that cannot be used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
