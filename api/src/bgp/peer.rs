//! `BGPPeer`: a router the announcers open BGP sessions to, from the nodes it selects.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::duration::parse_duration;
use super::{SpecProblem, check_name, parse_ip, parse_selectors};
use crate::range::Family;
use crate::selector::Selector;

/// The values a `BGPPeer` field has when it is not set.
pub mod defaults {
    use std::time::Duration;

    /// BGP's well-known port.
    pub const PEER_PORT: u16 = 179;
    /// Short enough that a silent peer is dropped within seconds even without BFD (MetalLB's
    /// 90 s keeps a dead next hop for a minute and a half).
    pub const HOLD_TIME: Duration = Duration::from_secs(9);
    /// A third of the hold time, as RFC 4271 suggests.
    pub const KEEPALIVE_TIME: Duration = Duration::from_secs(3);
    /// How long the speaker waits before retrying a refused or failed connection.
    pub const CONNECT_TIME: Duration = Duration::from_secs(5);
    /// Restart time advertised with graceful restart: short, because a GR-aware router keeps a
    /// dead node's routes for that long (DESIGN.md §10).
    pub const GRACEFUL_RESTART_TIME: Duration = Duration::from_secs(15);
    /// The key of the MD5 password in its Secret (a `kubernetes.io/basic-auth` Secret's key).
    pub const PASSWORD_KEY: &str = "password";
    /// RFC 4271: a non-zero hold time is at least 3 s.
    pub const MIN_HOLD_TIME: Duration = Duration::from_secs(3);
    /// The hold time is a 16-bit count of seconds.
    pub const MAX_HOLD_TIME: Duration = Duration::from_secs(65_535);
    /// RFC 4724: the restart time is a 12-bit count of seconds.
    pub const MAX_GRACEFUL_RESTART_TIME: Duration = Duration::from_secs(4_095);
}

/// Go-style duration text (`9s`, `1m30s`); checked again, with a clear message, by
/// [`BGPPeerSpec::validate`].
const DURATION_PATTERN: &str = r"^\+?([0-9]*\.?[0-9]+(ns|us|µs|ms|s|m|h))+$|^0$";

/// Desired state of a `BGPPeer`.
// Several printer columns share a type, which clippy takes for repeated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "ferrolb.io",
    version = "v1alpha1",
    kind = "BGPPeer",
    plural = "bgppeers",
    singular = "bgppeer",
    category = "ferrolb",
    status = "BGPPeerStatus",
    derive = "PartialEq",
    doc = "A BGP router the announcers advertise Service addresses to, from the nodes it selects.",
    printcolumn(name = "My ASN", type_ = "integer", json_path = ".spec.myASN"),
    printcolumn(name = "Peer ASN", type_ = "integer", json_path = ".spec.peerASN"),
    printcolumn(name = "Address", type_ = "string", json_path = ".spec.peerAddress"),
    printcolumn(name = "BFD Profile", type_ = "string", json_path = ".spec.bfdProfile"),
    printcolumn(
        name = "Invalid",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"ferrolb.io/InvalidSpec\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(
    validation = Rule::new("isIP(self.peerAddress)").message("peerAddress must be an IPv4 or IPv6 address"),
    validation = Rule::new("!has(self.sourceAddress) || isIP(self.sourceAddress)").message("sourceAddress must be an IPv4 or IPv6 address"),
    validation = Rule::new("!has(self.sourceAddress) || !isIP(self.sourceAddress) || !isIP(self.peerAddress) || ip(self.sourceAddress).family() == ip(self.peerAddress).family()").message("sourceAddress and peerAddress must be of the same address family"),
    validation = Rule::new("!has(self.routerID) || (isIP(self.routerID) && ip(self.routerID).family() == 4)").message("routerID must be an IPv4 address (a BGP identifier is 32 bits)"),
    validation = Rule::new("!has(self.ebgpMultiHopTTL) || self.myASN != self.peerASN").message("ebgpMultiHopTTL applies to eBGP sessions only (myASN equals peerASN)"),
)]
#[serde(rename_all = "camelCase")]
pub struct BGPPeerSpec {
    /// The cluster's autonomous system number, 1 to 4294967295 (4-byte ASNs are supported).
    #[serde(rename = "myASN")]
    #[schemars(range(min = 1, max = 4_294_967_295_u32))]
    pub my_asn: u32,

    /// The router's autonomous system number. Equal to `myASN`: an iBGP session.
    #[serde(rename = "peerASN")]
    #[schemars(range(min = 1, max = 4_294_967_295_u32))]
    pub peer_asn: u32,

    /// The router's address, IPv4 or IPv6.
    #[schemars(length(max = 64))]
    pub peer_address: String,

    /// The router's TCP port. Default 179.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub peer_port: Option<u16>,

    /// The local address sessions are opened from; it must be configured on every selected
    /// node's interface. Default: the kernel chooses by route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub source_address: Option<String>,

    /// Nodes that open a session to this router: a node matching any selector. Empty: every
    /// node (MetalLB semantics).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub node_selectors: Vec<LabelSelector>,

    /// Hold time proposed in OPEN: `0` (no keepalives, never expires) or at least `3s`.
    /// Default `9s`. Whole seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = DURATION_PATTERN))]
    pub hold_time: Option<String>,

    /// Interval between KEEPALIVEs, less than `holdTime`. Default `3s`, or a third of
    /// `holdTime` when only that is set. Whole seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = DURATION_PATTERN))]
    pub keepalive_time: Option<String>,

    /// Connect-retry time: how long to wait before opening the connection again after it
    /// failed. Default `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = DURATION_PATTERN))]
    pub connect_time: Option<String>,

    /// BGP identifier, an IPv4 address. Default: the node's IPv4 address.
    #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 15))]
    pub router_id: Option<String>,

    /// For an eBGP router more than one hop away: the TTL of the session's packets (1 to 255).
    /// Unset: directly connected (TTL 1).
    #[serde(default, rename = "ebgpMultiHopTTL", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 255))]
    pub ebgp_multi_hop_ttl: Option<u8>,

    /// TCP MD5 password (RFC 2385), from a Secret in FerroLB's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretKeyRef>,

    /// Graceful restart (RFC 4724). Off by default: a router that supports it keeps a dead
    /// node's routes for the restart time instead of withdrawing them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_restart: Option<GracefulRestart>,

    /// Name of a `BFDProfile`: run BFD with this router and drop the session when BFD says it
    /// is down. Unset: no BFD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub bfd_profile: Option<String>,

    /// Address families advertised over this session (multiprotocol BGP). Empty: the family
    /// of `peerAddress` only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2))]
    pub address_families: Vec<AddressFamily>,
}

/// A key of a Secret in FerroLB's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name (in the namespace FerroLB runs in).
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key holding the password. Default `password` (as in a `kubernetes.io/basic-auth`
    /// Secret, which MetalLB uses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub key: Option<String>,
}

/// Graceful restart settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GracefulRestart {
    /// Advertise the graceful restart capability. Default false.
    #[serde(default)]
    pub enabled: bool,
    /// How long the router keeps this node's routes after the session drops. Default `15s`;
    /// at most `4095s`. Whole seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = DURATION_PATTERN))]
    pub restart_time: Option<String>,
}

/// An address family of unicast routes.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, schemars::JsonSchema,
)]
pub enum AddressFamily {
    /// IPv4 unicast.
    IPv4,
    /// IPv6 unicast.
    IPv6,
}

impl AddressFamily {
    fn of(ip: IpAddr) -> Self {
        match Family::of(ip) {
            Family::V4 => Self::IPv4,
            Family::V6 => Self::IPv6,
        }
    }
}

/// Observed state of a `BGPPeer`. Session state is per node, in `BGPSessionState` objects.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BGPPeerStatus {
    /// `ferrolb.io/InvalidSpec` when the spec cannot be used; the message lists every problem.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// A `BGPPeer` spec with every default applied and every value parsed: what the speaker uses.
#[derive(Debug, Clone)]
pub struct ValidPeer {
    pub my_asn: u32,
    pub peer_asn: u32,
    pub peer_address: IpAddr,
    pub peer_port: u16,
    pub source_address: Option<IpAddr>,
    /// Empty: every node.
    pub node_selectors: Vec<Selector>,
    pub hold_time: Duration,
    /// Zero exactly when the hold time is zero.
    pub keepalive_time: Duration,
    pub connect_time: Duration,
    /// `None`: the node's IPv4 address.
    pub router_id: Option<Ipv4Addr>,
    /// `None`: directly connected (TTL 1 for eBGP).
    pub ebgp_multi_hop_ttl: Option<u8>,
    /// Secret name and key.
    pub password_secret: Option<(String, String)>,
    /// The restart time when graceful restart is on.
    pub graceful_restart: Option<Duration>,
    pub bfd_profile: Option<String>,
    /// Sorted, at least one.
    pub address_families: Vec<AddressFamily>,
}

impl ValidPeer {
    /// An eBGP session (the ASNs differ).
    pub fn is_ebgp(&self) -> bool {
        self.my_asn != self.peer_asn
    }

    /// Whether a node with these labels opens a session to this peer.
    pub fn selects_node(&self, labels: &BTreeMap<String, String>) -> bool {
        self.node_selectors.is_empty() || self.node_selectors.iter().any(|s| s.matches(labels))
    }
}

/// A timer field: parsed, or a problem. `whole`: BGP carries it in seconds.
fn timer(field: &str, text: Option<&str>, whole: bool, out: &mut Vec<SpecProblem>) -> Option<Duration> {
    let text = text?;
    match parse_duration(text) {
        Ok(d) if whole && d.subsec_nanos() != 0 => {
            out.push(SpecProblem::new(field, format!("{text:?} is not a whole number of seconds")));
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            out.push(SpecProblem::new(field, e.to_string()));
            None
        }
    }
}

fn secs(d: Duration) -> String {
    super::duration::format_duration(d)
}

impl BGPPeerSpec {
    /// Checks every field; returns the effective peer, or every problem found.
    pub fn validate(&self) -> Result<ValidPeer, Vec<SpecProblem>> {
        let mut out = Vec::new();
        for (field, asn) in [("spec.myASN", self.my_asn), ("spec.peerASN", self.peer_asn)] {
            if asn == 0 {
                out.push(SpecProblem::new(field, "0 is reserved: an ASN is 1 to 4294967295"));
            }
        }
        let peer = parse_ip("spec.peerAddress", &self.peer_address, &mut out);
        if let Some(ip) = peer
            && (ip.is_unspecified() || ip.is_multicast())
        {
            out.push(SpecProblem::new(
                "spec.peerAddress",
                format!("{ip} is not a unicast address a router can have"),
            ));
        }
        let port = self.peer_port.unwrap_or(defaults::PEER_PORT);
        if port == 0 {
            out.push(SpecProblem::new("spec.peerPort", "0 is not a TCP port"));
        }
        let source = self.source_address.as_deref().and_then(|s| parse_ip("spec.sourceAddress", s, &mut out));
        if let (Some(s), Some(p)) = (source, peer)
            && Family::of(s) != Family::of(p)
        {
            out.push(SpecProblem::new(
                "spec.sourceAddress",
                format!("{s} and peerAddress {p} are of different address families"),
            ));
        }
        let node_selectors = parse_selectors("spec.nodeSelectors", &self.node_selectors, &mut out);

        let (hold, keepalive) = self.timers(&mut out);
        let connect = timer("spec.connectTime", self.connect_time.as_deref(), false, &mut out)
            .unwrap_or(defaults::CONNECT_TIME);
        if connect < Duration::from_secs(1) {
            out.push(SpecProblem::new(
                "spec.connectTime",
                format!("{} is below the minimum of 1s", secs(connect)),
            ));
        }

        let router_id = self.router_id.as_deref().and_then(|r| match r.trim().parse::<Ipv4Addr>() {
            Ok(id) if id.is_unspecified() => {
                out.push(SpecProblem::new("spec.routerID", "0.0.0.0 is not a valid BGP identifier"));
                None
            }
            Ok(id) => Some(id),
            Err(_) => {
                out.push(SpecProblem::new(
                    "spec.routerID",
                    format!("{r:?} is not an IPv4 address (a BGP identifier is 32 bits)"),
                ));
                None
            }
        });
        if let Some(ttl) = self.ebgp_multi_hop_ttl {
            if ttl == 0 {
                out.push(SpecProblem::new("spec.ebgpMultiHopTTL", "0 is not a TTL (1 to 255)"));
            }
            if self.my_asn == self.peer_asn {
                out.push(SpecProblem::new(
                    "spec.ebgpMultiHopTTL",
                    format!("applies to eBGP sessions only, but myASN equals peerASN ({})", self.my_asn),
                ));
            }
        }
        let password_secret = self.password_secret.as_ref().map(|s| {
            check_name("spec.passwordSecret.name", &s.name, &mut out);
            let key = s.key.clone().unwrap_or_else(|| defaults::PASSWORD_KEY.to_string());
            let key_ok = !key.is_empty()
                && key.len() <= 253
                && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !key_ok {
                out.push(SpecProblem::new(
                    "spec.passwordSecret.key",
                    format!("{key:?} is not a Secret key (letters, digits, '-', '_' and '.')"),
                ));
            }
            (s.name.clone(), key)
        });
        let graceful_restart = self.graceful_restart.as_ref().and_then(|g| {
            let t = timer("spec.gracefulRestart.restartTime", g.restart_time.as_deref(), true, &mut out)
                .unwrap_or(defaults::GRACEFUL_RESTART_TIME);
            if t.is_zero() || t > defaults::MAX_GRACEFUL_RESTART_TIME {
                out.push(SpecProblem::new(
                    "spec.gracefulRestart.restartTime",
                    format!("{} is outside 1s to 4095s", secs(t)),
                ));
            }
            g.enabled.then_some(t)
        });
        if let Some(p) = &self.bfd_profile {
            check_name("spec.bfdProfile", p, &mut out);
        }
        let mut families = self.address_families.clone();
        families.sort();
        if families.windows(2).any(|w| w[0] == w[1]) {
            out.push(SpecProblem::new("spec.addressFamilies", "lists a family twice"));
        }
        families.dedup();

        match (out.is_empty(), peer) {
            (true, Some(peer_address)) => {
                if families.is_empty() {
                    families.push(AddressFamily::of(peer_address));
                }
                Ok(ValidPeer {
                    my_asn: self.my_asn,
                    peer_asn: self.peer_asn,
                    peer_address,
                    peer_port: port,
                    source_address: source,
                    node_selectors,
                    hold_time: hold,
                    keepalive_time: keepalive,
                    connect_time: connect,
                    router_id,
                    ebgp_multi_hop_ttl: self.ebgp_multi_hop_ttl,
                    password_secret,
                    graceful_restart,
                    bfd_profile: self.bfd_profile.clone(),
                    address_families: families,
                })
            }
            _ => Err(out),
        }
    }

    /// Hold and keepalive times with their defaults and the rules between them. The rules
    /// between the two are checked only when each is valid on its own, so one typo gives one
    /// problem.
    fn timers(&self, out: &mut Vec<SpecProblem>) -> (Duration, Duration) {
        let before = out.len();
        let hold_set = timer("spec.holdTime", self.hold_time.as_deref(), true, out);
        let hold = hold_set.unwrap_or(defaults::HOLD_TIME);
        if !hold.is_zero() && hold < defaults::MIN_HOLD_TIME {
            out.push(SpecProblem::new(
                "spec.holdTime",
                format!("{} is below the minimum of 3s (use 0 to disable the hold timer)", secs(hold)),
            ));
        }
        if hold > defaults::MAX_HOLD_TIME {
            out.push(SpecProblem::new(
                "spec.holdTime",
                format!("{} is above the maximum of 65535s", secs(hold)),
            ));
        }
        let keep_set = timer("spec.keepaliveTime", self.keepalive_time.as_deref(), true, out);
        if out.len() > before {
            return (hold, defaults::KEEPALIVE_TIME);
        }
        let keepalive = match (hold_set, keep_set) {
            (_, Some(k)) => k,
            (Some(h), None) => Duration::from_secs(h.as_secs() / 3),
            (None, None) => defaults::KEEPALIVE_TIME,
        };
        if hold.is_zero() {
            if !keepalive.is_zero() && keep_set.is_some() {
                out.push(SpecProblem::new(
                    "spec.keepaliveTime",
                    format!(
                        "{} with holdTime 0: no keepalives are sent without a hold timer; remove it or set it to 0",
                        secs(keepalive)
                    ),
                ));
            }
            return (hold, Duration::ZERO);
        }
        if keepalive.is_zero() {
            out.push(SpecProblem::new(
                "spec.keepaliveTime",
                format!(
                    "0 sends no keepalives, so the router drops the session after holdTime {}",
                    secs(hold)
                ),
            ));
        } else if keepalive >= hold {
            let whose = if hold_set.is_some() { "" } else { " (the default)" };
            out.push(SpecProblem::new(
                "spec.keepaliveTime",
                format!("{} must be less than holdTime {}{whose}", secs(keepalive), secs(hold)),
            ));
        }
        (hold, keepalive)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn spec() -> BGPPeerSpec {
        BGPPeerSpec {
            my_asn: 64500,
            peer_asn: 64501,
            peer_address: "192.0.2.1".into(),
            peer_port: None,
            source_address: None,
            node_selectors: Vec::new(),
            hold_time: None,
            keepalive_time: None,
            connect_time: None,
            router_id: None,
            ebgp_multi_hop_ttl: None,
            password_secret: None,
            graceful_restart: None,
            bfd_profile: None,
            address_families: Vec::new(),
        }
    }

    fn fields(r: Result<ValidPeer, Vec<SpecProblem>>) -> Vec<String> {
        r.err().unwrap_or_default().into_iter().map(|p| p.field).collect()
    }

    #[test]
    fn defaults_apply() {
        let p = spec().validate().unwrap();
        assert_eq!(p.peer_port, 179);
        assert_eq!(p.hold_time, Duration::from_secs(9));
        assert_eq!(p.keepalive_time, Duration::from_secs(3));
        assert_eq!(p.connect_time, Duration::from_secs(5));
        assert_eq!(p.address_families, [AddressFamily::IPv4]);
        assert!(p.graceful_restart.is_none() && p.router_id.is_none() && p.is_ebgp());
        let v6 = BGPPeerSpec { peer_address: "2001:db8::1".into(), ..spec() }.validate().unwrap();
        assert_eq!(v6.address_families, [AddressFamily::IPv6]);
    }

    #[test]
    fn keepalive_follows_a_set_hold_time() {
        let p = BGPPeerSpec { hold_time: Some("90s".into()), ..spec() }.validate().unwrap();
        assert_eq!(p.keepalive_time, Duration::from_secs(30));
        let p = BGPPeerSpec { hold_time: Some("0".into()), ..spec() }.validate().unwrap();
        assert_eq!((p.hold_time, p.keepalive_time), (Duration::ZERO, Duration::ZERO));
        let p = BGPPeerSpec { hold_time: Some("3s".into()), ..spec() }.validate().unwrap();
        assert_eq!(p.keepalive_time, Duration::from_secs(1));
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let bad = BGPPeerSpec {
            my_asn: 0,
            peer_address: "192.0.2.300".into(),
            source_address: Some("2001:db8::1".into()),
            hold_time: Some("2s".into()),
            keepalive_time: Some("3 s".into()),
            connect_time: Some("0s".into()),
            router_id: Some("2001:db8::1".into()),
            password_secret: Some(SecretKeyRef { name: "Bad_Name".into(), key: None }),
            graceful_restart: Some(GracefulRestart { enabled: true, restart_time: Some("2h".into()) }),
            bfd_profile: Some("".into()),
            address_families: vec![AddressFamily::IPv6, AddressFamily::IPv6],
            node_selectors: vec![LabelSelector {
                match_labels: Some([("bad key!".to_string(), "x".to_string())].into()),
                match_expressions: None,
            }],
            ..spec()
        };
        let problems = bad.validate().unwrap_err();
        let got: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            got,
            [
                "spec.myASN",
                "spec.peerAddress",
                "spec.nodeSelectors[0]",
                "spec.holdTime",
                "spec.keepaliveTime",
                "spec.connectTime",
                "spec.routerID",
                "spec.passwordSecret.name",
                "spec.gracefulRestart.restartTime",
                "spec.bfdProfile",
                "spec.addressFamilies",
            ]
        );
        let text = crate::bgp::SpecProblems { kind: "BGPPeer", name: "tor", problems: &problems }.to_string();
        assert!(text.starts_with("BGPPeer \"tor\": spec.myASN: 0 is reserved"), "{text}");
        assert!(text.contains("spec.holdTime: 2s is below the minimum of 3s"), "{text}");
    }

    #[test]
    fn keepalive_must_stay_below_hold() {
        let r = BGPPeerSpec { keepalive_time: Some("9s".into()), ..spec() }.validate();
        let e = r.unwrap_err();
        assert_eq!(e[0].field, "spec.keepaliveTime");
        assert!(e[0].message.contains("less than holdTime 9s (the default)"), "{}", e[0].message);
        assert_eq!(
            fields(
                BGPPeerSpec { hold_time: Some("0".into()), keepalive_time: Some("3s".into()), ..spec() }
                    .validate()
            ),
            ["spec.keepaliveTime"]
        );
        assert_eq!(
            fields(BGPPeerSpec { hold_time: Some("9.5s".into()), ..spec() }.validate()),
            ["spec.holdTime"]
        );
    }

    #[test]
    fn multihop_is_for_ebgp_only() {
        let ibgp = BGPPeerSpec { peer_asn: 64500, ebgp_multi_hop_ttl: Some(2), ..spec() };
        assert_eq!(fields(ibgp.validate()), ["spec.ebgpMultiHopTTL"]);
        let ebgp = BGPPeerSpec { ebgp_multi_hop_ttl: Some(2), ..spec() }.validate().unwrap();
        assert_eq!(ebgp.ebgp_multi_hop_ttl, Some(2));
    }

    #[test]
    fn graceful_restart_is_off_unless_enabled() {
        let off = BGPPeerSpec { graceful_restart: Some(GracefulRestart::default()), ..spec() };
        assert_eq!(off.validate().unwrap().graceful_restart, None);
        let on = BGPPeerSpec {
            graceful_restart: Some(GracefulRestart { enabled: true, restart_time: None }),
            ..spec()
        };
        assert_eq!(on.validate().unwrap().graceful_restart, Some(Duration::from_secs(15)));
    }

    proptest! {
        /// Any hold/keepalive pair either validates to timers that obey RFC 4271 or is
        /// refused with a problem on one of the two fields.
        #[test]
        fn timers_obey_the_rules(hold in proptest::option::of(0u64..200), keep in proptest::option::of(0u64..200)) {
            let s = BGPPeerSpec {
                hold_time: hold.map(|h| format!("{h}s")),
                keepalive_time: keep.map(|k| format!("{k}s")),
                ..spec()
            };
            match s.validate() {
                Ok(p) => {
                    prop_assert!(p.hold_time.is_zero() || p.hold_time >= Duration::from_secs(3));
                    prop_assert_eq!(p.hold_time.is_zero(), p.keepalive_time.is_zero());
                    prop_assert!(p.hold_time.is_zero() || p.keepalive_time < p.hold_time);
                }
                Err(problems) => {
                    prop_assert!(!problems.is_empty());
                    prop_assert!(problems.iter().all(|p| p.field == "spec.holdTime" || p.field == "spec.keepaliveTime"));
                }
            }
        }

        /// Validation never panics, whatever the strings hold.
        #[test]
        fn any_strings_validate_without_panic(
            addr in "\\PC{0,40}", hold in "\\PC{0,12}", rid in "\\PC{0,16}", my in any::<u32>(), peer in any::<u32>()
        ) {
            let s = BGPPeerSpec {
                my_asn: my,
                peer_asn: peer,
                peer_address: addr,
                hold_time: Some(hold),
                router_id: Some(rid),
                ..spec()
            };
            let _ = s.validate();
        }
    }
}
