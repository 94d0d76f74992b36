//! MetalLB's BGP configuration, in every shape it comes in: the CRDs (`BGPPeer` v1beta1 and
//! v1beta2, `BGPAdvertisement`, `BFDProfile`, `Community`), the legacy ConfigMap's and Helm
//! `configInline`'s `peers`, `bfd-profiles`, `bgp-communities` and the `bgp-advertisements` of
//! `protocol: bgp` pools, and Deckhouse's `bgpPeers`/`bgpCommunities` (MetalLB's format).
//!
//! MetalLB semantics kept here (from its configuration docs and speaker):
//! - A peer's `holdTime` defaults to 90s and `keepaliveTime` to a third of it; FerroLB's
//!   defaults are shorter (9s/3s), so MetalLB's are written out.
//! - A `BGPAdvertisement` without `ipAddressPools` and `ipAddressPoolSelectors` covers every
//!   pool of its namespace; without `peers`, every peer; without `nodeSelectors`, every node.
//!   Several advertisements for one pool are a union.
//! - Communities are `a:b`, `large:a:b:c`, or the name of an alias defined by a `Community`
//!   object (ConfigMap: `bgp-communities`) of the same namespace.
//! - A legacy `protocol: bgp` pool without `bgp-advertisements` is advertised to every peer with
//!   the defaults; with them, once per entry.

mod fields;
mod lower;

use ferrolb_api::bgp::{BFDProfileSpec, BGPPeerSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

use self::fields::{advertisement_fields, bfd, peer};
pub use self::lower::lower;
use crate::bgp::{check_bfd, community_value, name_from_address};
use crate::convert::{Context, and_selectors, read_meta, report_unknown};
use crate::error::InputError;
use crate::input::Document;
use crate::obj::{Obj, field_error, join};
use crate::report::Subject;

/// MetalLB's default hold time (FerroLB's is 9s).
const METALLB_HOLD_TIME: &str = "90s";
/// MetalLB's default keepalive time: a third of the hold time.
const METALLB_KEEPALIVE_TIME: &str = "30s";
/// The restart time FRR (MetalLB's BGP implementation) advertises with graceful restart.
const FRR_RESTART_TIME: &str = "120s";
/// The TTL FRR uses for `ebgp-multihop` without a hop count, which is what MetalLB configures.
const FRR_MULTIHOP_TTL: u8 = 255;

const SECRET_CHECK: &str = "create the Secret in FerroLB's namespace before the announcers start (kubectl -n ferrolb-system \
                            create secret generic NAME --from-literal=password=...), or the session stays down";

/// MetalLB-shaped BGP objects from every source, lowered together with the pools because
/// advertisements refer to pools, peers, BFD profiles and communities by name.
#[derive(Debug, Default)]
pub struct BgpSet {
    pub peers: Vec<MlbPeer>,
    pub advs: Vec<MlbBgpAdv>,
    pub bfd: Vec<MlbBfd>,
    pub communities: Vec<MlbCommunity>,
}

/// One MetalLB peer, its fields already reported.
#[derive(Debug, Clone)]
pub struct MlbPeer {
    pub subject: Subject,
    pub namespace: Option<String>,
    /// The name the source knew it by (CRD name; generated for legacy entries).
    pub name: String,
    pub spec: BGPPeerSpec,
    /// `(field, profile name)` of its BFD profile reference.
    pub bfd: Option<(String, String)>,
}

/// One MetalLB BFD profile, its fields already reported.
#[derive(Debug, Clone)]
pub struct MlbBfd {
    pub subject: Subject,
    pub namespace: Option<String>,
    pub name: String,
    pub spec: BFDProfileSpec,
}

/// Community aliases: `(field, name, value)`.
#[derive(Debug, Clone)]
pub struct MlbCommunity {
    pub subject: Subject,
    pub namespace: Option<String>,
    pub entries: Vec<(String, String, String)>,
}

/// One MetalLB BGP advertisement (or the implicit one of a legacy `bgp` pool).
#[derive(Debug, Clone)]
pub struct MlbBgpAdv {
    pub subject: Subject,
    pub namespace: Option<String>,
    pub name: String,
    /// Path of the advertisement in the source (`spec`, `data.config.address-pools[0].bgp-advertisements[1]`).
    pub path: String,
    pub pools: Vec<String>,
    pub pool_selectors: Vec<LabelSelector>,
    /// Legacy pools (indices into the MetalLB pools) this advertisement belongs to.
    pub pool_indices: Vec<usize>,
    pub node_selectors: Vec<LabelSelector>,
    pub peers: Vec<String>,
    /// `(field, text)` of each community.
    pub communities: Vec<(String, String)>,
    pub local_pref: Option<u32>,
    pub aggregation_length: Option<u8>,
    pub aggregation_length_v6: Option<u8>,
    /// Field names are kebab-case (ConfigMap, Deckhouse) rather than camelCase (CRDs).
    pub kebab: bool,
}

/// Field names of a peer in the CRD and in the legacy format (`""`: the format has no such field).
#[derive(Debug, Clone, Copy)]
pub struct PeerKeys {
    pub my_asn: &'static str,
    pub peer_asn: &'static str,
    pub peer_address: &'static str,
    pub peer_port: &'static str,
    pub source_address: &'static str,
    pub hold_time: &'static str,
    pub keepalive_time: &'static str,
    pub connect_time: &'static str,
    pub router_id: &'static str,
    pub password: &'static str,
    pub password_secret: &'static str,
    pub bfd_profile: &'static str,
    pub ebgp_multihop: &'static str,
    pub node_selectors: &'static str,
    /// Deckhouse's single `node-selector` (a LabelSelector).
    pub node_selector: &'static str,
    pub graceful_restart: &'static str,
    pub dynamic_asn: &'static str,
    pub vrf: &'static str,
    pub disable_mp: &'static str,
    pub dual_stack: &'static str,
    pub interface: &'static str,
}

/// `BGPPeer` (metallb.io/v1beta1 and v1beta2).
pub const CRD_PEER: PeerKeys = PeerKeys {
    my_asn: "myASN",
    peer_asn: "peerASN",
    peer_address: "peerAddress",
    peer_port: "peerPort",
    source_address: "sourceAddress",
    hold_time: "holdTime",
    keepalive_time: "keepaliveTime",
    connect_time: "connectTime",
    router_id: "routerID",
    password: "password",
    password_secret: "passwordSecret",
    bfd_profile: "bfdProfile",
    ebgp_multihop: "ebgpMultiHop",
    node_selectors: "nodeSelectors",
    node_selector: "",
    graceful_restart: "enableGracefulRestart",
    dynamic_asn: "dynamicASN",
    vrf: "vrf",
    disable_mp: "disableMP",
    dual_stack: "dualStackAddressFamily",
    interface: "interface",
};

/// The ConfigMap's `peers` entries (also Helm `configInline` and Deckhouse `bgpPeers`).
pub const LEGACY_PEER: PeerKeys = PeerKeys {
    my_asn: "my-asn",
    peer_asn: "peer-asn",
    peer_address: "peer-address",
    peer_port: "peer-port",
    source_address: "source-address",
    hold_time: "hold-time",
    keepalive_time: "keepalive-time",
    connect_time: "",
    router_id: "router-id",
    password: "password",
    password_secret: "",
    bfd_profile: "bfd-profile",
    ebgp_multihop: "ebgp-multihop",
    node_selectors: "node-selectors",
    node_selector: "node-selector",
    graceful_restart: "",
    dynamic_asn: "",
    vrf: "",
    disable_mp: "",
    dual_stack: "",
    interface: "",
};

// ---------------------------------------------------------------------------------------------
// The CRDs

/// `BGPPeer` (metallb.io/v1beta1, v1beta2).
pub fn bgp_peer(doc: &Document, cx: &mut Context) -> Result<(), InputError> {
    let (subject, _) = crate::convert::subject_of(doc, "BGPPeer");
    let mut root = Obj::new(&doc.value, "", &subject)?;
    let meta = read_meta(&mut root, &mut cx.report, Some("BGPPeer"))?;
    let mut spec = root.obj("spec")?.ok_or_else(|| root.error("spec", "required field is missing"))?;
    let read = peer(&mut spec, CRD_PEER, &meta.name, cx)?;
    report_unknown(&spec, &mut cx.report);
    report_unknown(&root, &mut cx.report);
    if let Some((spec, bfd)) = read {
        cx.metallb_bgp.peers.push(MlbPeer { subject, namespace: meta.namespace, name: meta.name, spec, bfd });
    }
    Ok(())
}

/// `BFDProfile` (metallb.io/v1beta1).
pub fn bfd_profile(doc: &Document, cx: &mut Context) -> Result<(), InputError> {
    let (subject, _) = crate::convert::subject_of(doc, "BFDProfile");
    let mut root = Obj::new(&doc.value, "", &subject)?;
    let meta = read_meta(&mut root, &mut cx.report, Some("BFDProfile"))?;
    let mut spec = match root.obj("spec")? {
        Some(s) => s,
        None => Obj::new(&Value::Null, "spec", &subject)?,
    };
    let spec_out = bfd(&mut spec, false, cx)?;
    check_bfd(&subject, &meta.name, &spec_out)?;
    report_unknown(&spec, &mut cx.report);
    report_unknown(&root, &mut cx.report);
    cx.metallb_bgp.bfd.push(MlbBfd { subject, namespace: meta.namespace, name: meta.name, spec: spec_out });
    Ok(())
}

/// `Community` (metallb.io/v1beta1): aliases, resolved into the advertisements that use them.
pub fn community(doc: &Document, cx: &mut Context) -> Result<(), InputError> {
    let (subject, _) = crate::convert::subject_of(doc, "Community");
    let mut root = Obj::new(&doc.value, "", &subject)?;
    let meta = read_meta(&mut root, &mut cx.report, None)?;
    cx.report.exact(
        &subject,
        "(object)",
        None,
        "community aliases: no object is written; each alias becomes its value in the advertisements that name it",
    );
    let mut spec = match root.obj("spec")? {
        Some(s) => s,
        None => Obj::new(&Value::Null, "spec", &subject)?,
    };
    let mut entries = Vec::new();
    for (i, item) in spec.list("communities")?.iter().enumerate() {
        let path = format!("spec.communities[{i}]");
        let mut e = Obj::new(item, &path, &subject)?;
        let name = e.required_str("name")?.to_string();
        let value = e.required_str("value")?.to_string();
        community_value(&value).map_err(|m| e.error("value", m))?;
        report_unknown(&e, &mut cx.report);
        entries.push((path, name, value));
    }
    report_unknown(&spec, &mut cx.report);
    report_unknown(&root, &mut cx.report);
    cx.metallb_bgp.communities.push(MlbCommunity { subject, namespace: meta.namespace, entries });
    Ok(())
}

/// `BGPAdvertisement` (metallb.io/v1beta1).
pub fn bgp_advertisement(doc: &Document, cx: &mut Context) -> Result<(), InputError> {
    let (subject, _) = crate::convert::subject_of(doc, "BGPAdvertisement");
    let mut root = Obj::new(&doc.value, "", &subject)?;
    let meta = read_meta(&mut root, &mut cx.report, Some("BGPAdvertisement"))?;
    let mut spec = match root.obj("spec")? {
        Some(s) => s,
        None => Obj::new(&Value::Null, "spec", &subject)?,
    };
    let mut adv = advertisement_fields(&mut spec, false, &subject, meta.namespace, meta.name, Vec::new())?;
    adv.pools = spec.str_list("ipAddressPools")?.into_iter().map(str::to_string).collect();
    adv.pool_selectors = spec.selectors("ipAddressPoolSelectors")?;
    adv.node_selectors = spec.selectors("nodeSelectors")?;
    adv.peers = spec.str_list("peers")?.into_iter().map(str::to_string).collect();
    report_unknown(&spec, &mut cx.report);
    report_unknown(&root, &mut cx.report);
    cx.metallb_bgp.advs.push(adv);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The legacy format

/// The `peers` list of a legacy configuration (ConfigMap, Helm `configInline`; Deckhouse's
/// `bgpPeers`).
/// `speaker_nodes`: the speaker DaemonSet's node selector (Helm values, Deckhouse), AND-ed into
/// every peer's node selectors, since only nodes running a speaker had sessions.
pub fn legacy_peers(
    o: &mut Obj<'_>,
    key: &str,
    container: &Subject,
    speaker_nodes: Option<&LabelSelector>,
    cx: &mut Context,
) -> Result<(), InputError> {
    for (i, item) in o.list(key)?.iter().enumerate() {
        let path = format!("{}[{i}]", o.at(key));
        let address = item.get("peer-address").and_then(Value::as_str).unwrap_or("(no address)");
        let subject = Subject {
            origin: container.origin.clone(),
            object: format!("{} {path} ({address})", container.object),
        };
        let name = name_from_address(address);
        let mut p = Obj::new(item, &path, &subject)?;
        // MetalLB's ConfigMap spelled the BFD reference both ways over its releases.
        let keys = if p.has("bfdProfile") {
            PeerKeys { bfd_profile: "bfdProfile", ..LEGACY_PEER }
        } else {
            LEGACY_PEER
        };
        cx.report.exact(
            &subject,
            &path,
            Some(format!("BGPPeer {name}")),
            "a legacy peer entry has no name: the converted peer is named after its address",
        );
        let read = peer(&mut p, keys, &name, cx)?;
        report_unknown(&p, &mut cx.report);
        if let Some((mut spec, bfd)) = read {
            if let Some(speakers) = speaker_nodes {
                spec.node_selectors = if spec.node_selectors.is_empty() {
                    vec![speakers.clone()]
                } else {
                    spec.node_selectors
                        .iter()
                        .filter_map(|s| and_selectors(Some(s), Some(speakers)))
                        .collect()
                };
                cx.report.exact(
                    &subject,
                    "(speaker nodes)",
                    Some("spec.nodeSelectors".into()),
                    "the speaker ran only on the nodes its nodeSelector chose, so only they had sessions: that selector \
                     is AND-ed into the peer's node selectors",
                );
            }
            cx.metallb_bgp.peers.push(MlbPeer { subject, namespace: None, name, spec, bfd });
        }
    }
    Ok(())
}

/// The `bfd-profiles` list of a legacy configuration.
pub fn legacy_bfd_profiles(
    o: &mut Obj<'_>,
    key: &str,
    container: &Subject,
    cx: &mut Context,
) -> Result<(), InputError> {
    for (i, item) in o.list(key)?.iter().enumerate() {
        let path = format!("{}[{i}]", o.at(key));
        let name = item.get("name").and_then(Value::as_str).unwrap_or("(unnamed)").to_string();
        let subject = Subject {
            origin: container.origin.clone(),
            object: format!("{} {path} ({name})", container.object),
        };
        let mut p = Obj::new(item, &path, &subject)?;
        let name = p.required_str("name")?.to_string();
        cx.report.exact(&subject, join(&path, "name"), Some("BFDProfile metadata.name".into()), "name kept");
        let spec = bfd(&mut p, true, cx)?;
        check_bfd(&subject, &name, &spec)?;
        report_unknown(&p, &mut cx.report);
        cx.metallb_bgp.bfd.push(MlbBfd { subject, namespace: None, name, spec });
    }
    Ok(())
}

/// A legacy community alias map (`bgp-communities`, Deckhouse's `bgpCommunities`).
pub fn legacy_communities(
    o: &mut Obj<'_>,
    key: &str,
    container: &Subject,
    cx: &mut Context,
) -> Result<(), InputError> {
    let path = o.at(key);
    let map = o.string_map(key)?;
    let mut entries = Vec::new();
    for (name, value) in map {
        let field = join(&path, &name);
        community_value(&value).map_err(|m| field_error(container, &field, m))?;
        entries.push((field, name, value));
    }
    if !entries.is_empty() {
        cx.metallb_bgp.communities.push(MlbCommunity {
            subject: container.clone(),
            namespace: None,
            entries,
        });
    }
    Ok(())
}

/// The `bgp-advertisements` of a legacy `bgp` pool (index `pool` among the MetalLB pools):
/// one advertisement per entry, or one with the defaults when there are none.
pub fn legacy_pool_advertisements(
    p: &mut Obj<'_>,
    key: &str,
    kebab: bool,
    subject: &Subject,
    pool_name: &str,
    pool: usize,
    cx: &mut Context,
) -> Result<(), InputError> {
    let list = p.list(key)?;
    if list.is_empty() {
        cx.report.exact(
            subject,
            p.at(key),
            Some(format!("BGPAdvertisement {pool_name}")),
            "none: MetalLB advertised the pool's addresses one by one (/32, /128) to every peer from every node; so \
             does the converted advertisement",
        );
        cx.metallb_bgp.advs.push(MlbBgpAdv {
            subject: subject.clone(),
            namespace: None,
            name: pool_name.to_string(),
            path: p.at(key),
            pools: Vec::new(),
            pool_selectors: Vec::new(),
            pool_indices: vec![pool],
            node_selectors: Vec::new(),
            peers: Vec::new(),
            communities: Vec::new(),
            local_pref: None,
            aggregation_length: None,
            aggregation_length_v6: None,
            kebab,
        });
        return Ok(());
    }
    let many = list.len() > 1;
    for (i, item) in list.iter().enumerate() {
        let path = format!("{}[{i}]", p.at(key));
        let mut a = Obj::new(item, &path, subject)?;
        let name = if many { format!("{pool_name}-{}", i + 1) } else { pool_name.to_string() };
        let adv = advertisement_fields(&mut a, kebab, subject, None, name, vec![pool])?;
        report_unknown(&a, &mut cx.report);
        cx.metallb_bgp.advs.push(adv);
    }
    Ok(())
}
