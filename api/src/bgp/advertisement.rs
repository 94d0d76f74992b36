//! `BGPAdvertisement`: which Service addresses are advertised to which peers, from which
//! nodes, with which path attributes.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{SpecProblem, check_name, parse_selector, parse_selectors};
use crate::selector::Selector;

/// Desired state of a `BGPAdvertisement`.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ferrolb.io",
    version = "v1alpha1",
    kind = "BGPAdvertisement",
    plural = "bgpadvertisements",
    singular = "bgpadvertisement",
    category = "ferrolb",
    status = "BGPAdvertisementStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "Which LoadBalancer addresses are advertised over BGP, to which peers, from which nodes, with which communities.",
    printcolumn(name = "Peers", type_ = "string", json_path = ".spec.peers"),
    printcolumn(name = "Local Pref", type_ = "integer", json_path = ".spec.localPref"),
    printcolumn(
        name = "Invalid",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"ferrolb.io/InvalidSpec\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct BGPAdvertisementSpec {
    /// Services whose addresses are advertised (with the same pseudo-labels as pools). No
    /// selector: every Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_selector: Option<LabelSelector>,

    /// Only addresses allocated from pools whose labels match (MetalLB's `ipAddressPools` and
    /// `ipAddressPoolSelectors`). No selector: any pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_selector: Option<LabelSelector>,

    /// Nodes that advertise: a node matching any selector. Empty: every node with a session.
    /// With `externalTrafficPolicy: Local`, only nodes with a ready local endpoint advertise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub node_selectors: Vec<LabelSelector>,

    /// Names of the `BGPPeer`s to advertise to. Empty: every peer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 253)))]
    pub peers: Vec<String>,

    /// Standard communities (RFC 1997): `65535:65282`, or a well-known name (`no-export`,
    /// `no-advertise`, `no-export-subconfed`, `no-peer`, `blackhole`, `graceful-shutdown`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 32)))]
    pub communities: Vec<String>,

    /// Large communities (RFC 8092): `global:local1:local2`, each part 0 to 4294967295.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 32)))]
    pub large_communities: Vec<String>,

    /// LOCAL_PREF sent to iBGP peers (eBGP peers never receive it). Unset: none sent, the
    /// router applies its default (usually 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<u32>,

    /// Prefix length IPv4 addresses are advertised with. Default 32 (each address alone); a
    /// shorter length advertises the covering prefix once for all addresses in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 32))]
    pub aggregation_length: Option<u8>,

    /// Prefix length for IPv6 addresses. Default 128.
    #[serde(default, rename = "aggregationLengthV6", skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 128))]
    pub aggregation_length_v6: Option<u8>,

    /// Advertise `status.loadBalancer.ingress` addresses. Default true.
    #[serde(default = "default_true", rename = "loadBalancerIPs")]
    pub load_balancer_ips: bool,

    /// Advertise `spec.externalIPs`. Default false.
    #[serde(default, rename = "externalIPs")]
    pub external_ips: bool,
}

fn default_true() -> bool {
    true
}

impl Default for BGPAdvertisementSpec {
    fn default() -> Self {
        Self {
            service_selector: None,
            pool_selector: None,
            node_selectors: Vec::new(),
            peers: Vec::new(),
            communities: Vec::new(),
            large_communities: Vec::new(),
            local_pref: None,
            aggregation_length: None,
            aggregation_length_v6: None,
            load_balancer_ips: true,
            external_ips: false,
        }
    }
}

/// Observed state of a `BGPAdvertisement`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BGPAdvertisementStatus {
    /// `ferrolb.io/InvalidSpec` when the spec cannot be used; the message lists every problem.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// The value of a well-known community name (RFC 1997, RFC 3765, RFC 7999, RFC 8326).
pub fn well_known_community(name: &str) -> Option<u32> {
    Some(match name {
        "graceful-shutdown" => 0xFFFF_0000,
        "blackhole" => 0xFFFF_029A,
        "no-export" => 0xFFFF_FF01,
        "no-advertise" => 0xFFFF_FF02,
        "no-export-subconfed" => 0xFFFF_FF03,
        "no-peer" => 0xFFFF_FF04,
        _ => return None,
    })
}

/// A standard community: `high:low` (each 0 to 65535) or a well-known name.
pub fn parse_community(text: &str) -> Result<u32, String> {
    if let Some(v) = well_known_community(text) {
        return Ok(v);
    }
    let parts: Vec<&str> = text.split(':').collect();
    let [high, low] = parts.as_slice() else {
        return Err(format!(
            "{text:?} is not a community: write it as 65535:65282 (two numbers 0 to 65535) or a well-known name"
        ));
    };
    let num =
        |s: &str| s.parse::<u16>().map_err(|_| format!("{text:?}: {s:?} is not a number from 0 to 65535"));
    Ok((u32::from(num(high)?) << 16) | u32::from(num(low)?))
}

/// A large community: `global:local1:local2`, each 0 to 4294967295.
pub fn parse_large_community(text: &str) -> Result<(u32, u32, u32), String> {
    let parts: Vec<&str> = text.split(':').collect();
    let [a, b, c] = parts.as_slice() else {
        return Err(format!("{text:?} is not a large community: write it as 64500:1:2 (three numbers)"));
    };
    let num = |s: &str| {
        s.parse::<u32>().map_err(|_| format!("{text:?}: {s:?} is not a number from 0 to 4294967295"))
    };
    Ok((num(a)?, num(b)?, num(c)?))
}

/// A `BGPAdvertisement` spec with defaults applied and every value parsed.
#[derive(Debug, Clone)]
pub struct ValidAdvertisement {
    pub service_selector: Selector,
    pub pool_selector: Selector,
    /// Empty: every node.
    pub node_selectors: Vec<Selector>,
    /// Empty: every peer.
    pub peers: Vec<String>,
    /// Sorted, without repeats.
    pub communities: Vec<u32>,
    /// Sorted, without repeats.
    pub large_communities: Vec<(u32, u32, u32)>,
    pub local_pref: Option<u32>,
    pub aggregation_length: u8,
    pub aggregation_length_v6: u8,
    pub load_balancer_ips: bool,
    pub external_ips: bool,
}

impl ValidAdvertisement {
    /// Whether addresses are advertised to the peer of this name.
    pub fn selects_peer(&self, peer: &str) -> bool {
        self.peers.is_empty() || self.peers.iter().any(|p| p == peer)
    }

    /// Whether a node with these labels advertises.
    pub fn selects_node(&self, labels: &BTreeMap<String, String>) -> bool {
        self.node_selectors.is_empty() || self.node_selectors.iter().any(|s| s.matches(labels))
    }
}

impl BGPAdvertisementSpec {
    /// Checks every field; returns the effective advertisement, or every problem found.
    pub fn validate(&self) -> Result<ValidAdvertisement, Vec<SpecProblem>> {
        let mut out = Vec::new();
        let service_selector =
            parse_selector("spec.serviceSelector", self.service_selector.as_ref(), &mut out);
        let pool_selector = parse_selector("spec.poolSelector", self.pool_selector.as_ref(), &mut out);
        let node_selectors = parse_selectors("spec.nodeSelectors", &self.node_selectors, &mut out);
        for (i, p) in self.peers.iter().enumerate() {
            check_name(&format!("spec.peers[{i}]"), p, &mut out);
            if self.peers[..i].contains(p) {
                out.push(SpecProblem::new(format!("spec.peers[{i}]"), format!("{p:?} is listed twice")));
            }
        }
        let mut communities = Vec::new();
        for (i, c) in self.communities.iter().enumerate() {
            match parse_community(c) {
                Ok(v) => communities.push(v),
                Err(e) => out.push(SpecProblem::new(format!("spec.communities[{i}]"), e)),
            }
        }
        communities.sort_unstable();
        communities.dedup();
        let mut large = Vec::new();
        for (i, c) in self.large_communities.iter().enumerate() {
            match parse_large_community(c) {
                Ok(v) => large.push(v),
                Err(e) => out.push(SpecProblem::new(format!("spec.largeCommunities[{i}]"), e)),
            }
        }
        large.sort_unstable();
        large.dedup();
        let v4 = self.aggregation_length.unwrap_or(32);
        if v4 > 32 {
            out.push(SpecProblem::new("spec.aggregationLength", format!("{v4} is longer than 32")));
        }
        let v6 = self.aggregation_length_v6.unwrap_or(128);
        if v6 > 128 {
            out.push(SpecProblem::new("spec.aggregationLengthV6", format!("{v6} is longer than 128")));
        }
        if !self.load_balancer_ips && !self.external_ips {
            out.push(SpecProblem::new(
                "spec.loadBalancerIPs",
                "false, and externalIPs is false too: the advertisement would advertise nothing",
            ));
        }
        if !out.is_empty() {
            return Err(out);
        }
        Ok(ValidAdvertisement {
            service_selector,
            pool_selector,
            node_selectors,
            peers: self.peers.clone(),
            communities,
            large_communities: large,
            local_pref: self.local_pref,
            aggregation_length: v4,
            aggregation_length_v6: v6,
            load_balancer_ips: self.load_balancer_ips,
            external_ips: self.external_ips,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn defaults_advertise_every_address_alone_to_every_peer() {
        let a = BGPAdvertisementSpec::default().validate().unwrap();
        assert_eq!((a.aggregation_length, a.aggregation_length_v6), (32, 128));
        assert!(a.selects_peer("any") && a.selects_node(&BTreeMap::new()));
        assert!(a.load_balancer_ips && !a.external_ips && a.local_pref.is_none());
    }

    #[test]
    fn communities_parse_by_number_and_name() {
        assert_eq!(parse_community("65535:65282"), Ok(0xFFFF_FF02));
        assert_eq!(parse_community("no-advertise"), Ok(0xFFFF_FF02));
        assert_eq!(parse_community("64500:100"), Ok((64500 << 16) | 100));
        assert!(parse_community("65536:1").unwrap_err().contains("\"65536\""));
        assert!(parse_community("1:2:3").unwrap_err().contains("two numbers"));
        assert_eq!(parse_large_community("64500:1:2"), Ok((64500, 1, 2)));
        assert!(parse_large_community("64500:1").is_err());
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let bad = BGPAdvertisementSpec {
            peers: vec!["tor".into(), "tor".into(), "Bad".into()],
            communities: vec!["no-export".into(), "70000:1".into()],
            large_communities: vec!["1:2".into()],
            aggregation_length: Some(33),
            aggregation_length_v6: Some(129),
            load_balancer_ips: false,
            ..BGPAdvertisementSpec::default()
        };
        let fields: Vec<String> = bad.validate().unwrap_err().into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "spec.peers[1]",
                "spec.peers[2]",
                "spec.communities[1]",
                "spec.largeCommunities[0]",
                "spec.aggregationLength",
                "spec.aggregationLengthV6",
                "spec.loadBalancerIPs",
            ]
        );
    }

    proptest! {
        /// Every `high:low` pair reads back as its 32-bit value.
        #[test]
        fn community_numbers_round_trip(high in any::<u16>(), low in any::<u16>()) {
            let v = parse_community(&format!("{high}:{low}")).unwrap();
            prop_assert_eq!(v, (u32::from(high) << 16) | u32::from(low));
        }

        #[test]
        fn any_text_parses_without_panic(s in "\\PC{0,30}") {
            let _ = parse_community(&s);
            let _ = parse_large_community(&s);
        }
    }
}
