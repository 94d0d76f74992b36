//! `LoadBalancerIPPool`: the address ranges the IPAM controller hands out (DESIGN.md §2).
//!
//! Addresses are kept as strings in the types on purpose: a typo in one block must not make the
//! whole object undeserializable (a reflector would then drop or stall on it); the controller
//! parses blocks with [`crate::range::IpRange::from_block`] and reports errors as the
//! `ferrolb.io/InvalidSpec` condition. The API server still rejects most mistakes up front
//! through the formats and CEL rules in the schema.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Desired state of a `LoadBalancerIPPool`.
// Several printer columns share `type_ = "string"`, which clippy takes for repeated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ferrolb.io",
    version = "v1alpha1",
    kind = "LoadBalancerIPPool",
    plural = "loadbalancerippools",
    singular = "loadbalancerippool",
    shortname = "lbippool",
    shortname = "lbippools",
    shortname = "ippool",
    shortname = "ippools",
    category = "ferrolb",
    status = "LoadBalancerIPPoolStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A pool of addresses FerroLB assigns to LoadBalancer Services.",
    printcolumn(name = "Disabled", type_ = "boolean", json_path = ".spec.disabled"),
    printcolumn(
        name = "Conflicting",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"ferrolb.io/PoolConflict\")].status"
    ),
    printcolumn(name = "Total", type_ = "string", json_path = ".status.ipsTotal"),
    printcolumn(name = "Used", type_ = "string", json_path = ".status.ipsUsed"),
    printcolumn(name = "Available", type_ = "string", json_path = ".status.ipsAvailable"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerIPPoolSpec {
    /// Address ranges of the pool: each a `cidr` or a `start`/`stop` pair (IPv4 or IPv6).
    #[schemars(length(min = 1, max = 1024))]
    pub blocks: Vec<IpBlock>,

    /// Only Services matching this selector get addresses from the pool. The selector also sees
    /// the pseudo-labels `io.kubernetes.service.namespace`, `io.kubernetes.service.name` and
    /// `ferrolb.io/load-balancer-class`. No selector (and no `serviceSelectors`): every Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_selector: Option<LabelSelector>,

    /// More selectors, OR-ed with each other and with `serviceSelector` (MetalLB's
    /// `serviceAllocation.serviceSelectors` and `namespaces` map here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub service_selectors: Vec<LabelSelector>,

    /// Whether the first and last address of each CIDR block (network and broadcast for IPv4)
    /// may be assigned. `Yes` by default; /32, /31, /128 and /127 blocks always use every address.
    #[serde(default, rename = "allowFirstLastIPs")]
    pub allow_first_last_ips: AllowFirstLastIps,

    /// Skip IPv4 addresses ending in `.0` or `.255` (MetalLB's avoidBuggyIPs).
    #[serde(default, rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,

    /// No new allocations from this pool; existing ones stay.
    #[serde(default)]
    pub disabled: bool,

    /// When false, only Services that name this pool (annotation `ferrolb.io/pool`) or request
    /// one of its addresses get addresses from it. Default true.
    #[serde(default = "default_true")]
    pub auto_assign: bool,

    /// Among several matching pools, lower priority values are used first (MetalLB semantics);
    /// pools without a priority come after all pools with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub priority: Option<i32>,
}

fn default_true() -> bool {
    true
}

impl Default for LoadBalancerIPPoolSpec {
    fn default() -> Self {
        Self {
            blocks: Vec::new(),
            service_selector: None,
            service_selectors: Vec::new(),
            allow_first_last_ips: AllowFirstLastIps::Yes,
            avoid_buggy_ips: false,
            disabled: false,
            auto_assign: true,
            priority: None,
        }
    }
}

impl LoadBalancerIPPoolSpec {
    /// Whether the first and last address of CIDR blocks may be assigned.
    pub fn allow_first_last(&self) -> bool {
        self.allow_first_last_ips == AllowFirstLastIps::Yes
    }
}

/// `Yes` or `No` (Cilium's spelling).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub enum AllowFirstLastIps {
    #[default]
    Yes,
    No,
}

/// One address range: a CIDR, or an inclusive `start`..`stop` range (`stop` omitted: one address).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[x_kube(
    validation = Rule::new("has(self.cidr) != has(self.start)").message("a block has either cidr or start (with optional stop), not both and not neither"),
    validation = Rule::new("!has(self.stop) || has(self.start)").message("stop needs start"),
    validation = Rule::new("!has(self.cidr) || isCIDR(self.cidr)").message("cidr must be an address prefix such as 198.51.100.0/25 or 2001:db8::/64"),
    validation = Rule::new("!has(self.start) || isIP(self.start)").message("start must be an IPv4 or IPv6 address"),
    validation = Rule::new("!has(self.stop) || isIP(self.stop)").message("stop must be an IPv4 or IPv6 address"),
    validation = Rule::new("!has(self.start) || !has(self.stop) || !isIP(self.start) || !isIP(self.stop) || ip(self.start).family() == ip(self.stop).family()").message("start and stop must be of the same address family"),
)]
pub struct IpBlock {
    /// An address prefix, e.g. `198.51.100.128/25` or `2001:db8:100::/64`. Host bits are masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub cidr: Option<String>,
    /// First address of the range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub start: Option<String>,
    /// Last address of the range (inclusive); omitted means the range is `start` alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub stop: Option<String>,
}

impl IpBlock {
    /// A CIDR block.
    pub fn cidr(cidr: impl Into<String>) -> Self {
        Self { cidr: Some(cidr.into()), ..Self::default() }
    }

    /// A `start`..`stop` block.
    pub fn range(start: impl Into<String>, stop: impl Into<String>) -> Self {
        Self { start: Some(start.into()), stop: Some(stop.into()), ..Self::default() }
    }
}

/// Observed state of a `LoadBalancerIPPool`, written by the IPAM controller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerIPPoolStatus {
    /// `ferrolb.io/PoolConflict` and `ferrolb.io/InvalidSpec`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Assignable addresses in the pool, as a decimal string (IPv6 counts exceed 64 bits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ips_total: Option<String>,
    /// Addresses assigned to Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ips_used: Option<String>,
    /// Addresses still free.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ips_available: Option<String>,
}
