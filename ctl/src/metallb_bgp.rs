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

use std::collections::BTreeMap;

use ferrolb_api::Selector;
use ferrolb_api::bgp::{
    AddressFamily, BFDProfileSpec, BGPAdvertisementSpec, BGPPeerSpec, GracefulRestart, SecretKeyRef,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use serde_json::Value;

use crate::bgp::{
    AdvertisementDraft, BfdDraft, Community, PeerDraft, asn, check_advertisement, check_bfd, check_peer,
    classify_community, community_value, duration_text, int_in, name_from_address,
};
use crate::convert::{Context, and_selectors, read_meta, report_unknown};
use crate::error::InputError;
use crate::input::Document;
use crate::metallb::MlbPool;
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

// ---------------------------------------------------------------------------------------------
// Fields

/// A converted peer spec and its BFD profile reference (`(field, name)`); `None`: the peer
/// cannot be converted (the report says why).
type PeerRead = Option<(BGPPeerSpec, Option<(String, String)>)>;

/// Reads a peer's fields, reporting each.
fn peer(o: &mut Obj<'_>, k: PeerKeys, name: &str, cx: &mut Context) -> Result<PeerRead, InputError> {
    let s = o.subject().clone();
    let r = &mut cx.report;
    let mut skip: Option<String> = None;

    let my_asn = asn(o, k.my_asn)?.ok_or_else(|| o.error(k.my_asn, "required field is missing"))?;
    r.exact(&s, o.at(k.my_asn), Some(format!("spec.myASN: {my_asn}")), "same ASN");
    let mut peer_asn = asn(o, k.peer_asn)?;
    if let Some(a) = peer_asn {
        r.exact(&s, o.at(k.peer_asn), Some(format!("spec.peerASN: {a}")), "same ASN");
    }
    if !k.dynamic_asn.is_empty()
        && let Some(d) = o.str(k.dynamic_asn)?
    {
        match d {
            "internal" => {
                peer_asn = Some(my_asn);
                r.exact(
                    &s,
                    o.at(k.dynamic_asn),
                    Some(format!("spec.peerASN: {my_asn}")),
                    "internal: the router is in the cluster's own AS, so its ASN is myASN",
                );
            }
            other => {
                r.not_converted(
                    &s,
                    o.at(k.dynamic_asn),
                    format!("{other:?}: FerroLB needs the router's ASN; it does not learn it from the OPEN message"),
                    "set peerASN on the converted peer by hand, then apply it",
                );
                skip = Some("its peer ASN is not known".into());
            }
        }
    }
    if peer_asn.is_none() && skip.is_none() {
        return Err(o.error(k.peer_asn, "required field is missing"));
    }
    for key in [k.vrf, k.interface] {
        if key.is_empty() {
            continue;
        }
        if let Some(v) = o.str(key)?.filter(|v| !v.is_empty()) {
            let why = if key == k.vrf {
                format!("VRF {v:?}: FerroLB opens sessions in the default VRF only")
            } else {
                format!("unnumbered BGP on interface {v:?}: FerroLB needs the router's address")
            };
            r.not_converted(
                &s,
                o.at(key),
                why,
                "keep this peer on MetalLB, or give the router an address FerroLB can reach",
            );
            skip = Some("FerroLB cannot reach the router as configured".into());
        }
    }
    let address = match o.str(k.peer_address)? {
        Some(a) => {
            a.trim()
                .parse::<std::net::IpAddr>()
                .map_err(|_| o.error(k.peer_address, format!("{a:?} is not an IP address")))?;
            r.exact(&s, o.at(k.peer_address), Some(format!("spec.peerAddress: {a}")), "same address");
            a.trim().to_string()
        }
        None if skip.is_some() => String::new(),
        None => return Err(o.error(k.peer_address, "required field is missing")),
    };

    let port = int_in::<u16>(o, k.peer_port, "a TCP port")?;
    if let Some(p) = port {
        r.exact(&s, o.at(k.peer_port), Some(format!("spec.peerPort: {p}")), "same port");
    }
    let source = o.str(k.source_address)?.map(str::to_string);
    if let Some(a) = &source {
        r.exact(&s, o.at(k.source_address), Some(format!("spec.sourceAddress: {a}")), "same source address");
    }

    let hold = duration_text(o, k.hold_time)?;
    let keepalive = duration_text(o, k.keepalive_time)?;
    let (hold_out, keep_out) = match (&hold, &keepalive) {
        (Some(h), k_set) => {
            r.exact(&s, o.at(k.hold_time), Some(format!("spec.holdTime: {h}")), "same hold time");
            if k_set.is_none() {
                r.exact(
                    &s,
                    o.at(k.keepalive_time),
                    None,
                    "unset: a third of the hold time, in MetalLB and in FerroLB",
                );
            }
            (Some(h.clone()), k_set.clone())
        }
        (None, None) => {
            r.exact(
                &s,
                o.at(k.hold_time),
                Some(format!("spec.holdTime: {METALLB_HOLD_TIME}, spec.keepaliveTime: {METALLB_KEEPALIVE_TIME}")),
                "unset: MetalLB's defaults (90s, keepalives every 30s) written out, because FerroLB's are 9s and 3s",
            );
            (Some(METALLB_HOLD_TIME.to_string()), Some(METALLB_KEEPALIVE_TIME.to_string()))
        }
        (None, Some(_)) => {
            r.exact(
                &s,
                o.at(k.hold_time),
                Some(format!("spec.holdTime: {METALLB_HOLD_TIME}")),
                "unset: MetalLB's default 90s written out, because FerroLB's is 9s",
            );
            (Some(METALLB_HOLD_TIME.to_string()), keepalive.clone())
        }
    };
    if let Some(kt) = &keepalive {
        r.exact(&s, o.at(k.keepalive_time), Some(format!("spec.keepaliveTime: {kt}")), "same keepalive time");
    }
    let connect = if k.connect_time.is_empty() { None } else { duration_text(o, k.connect_time)? };
    if let Some(c) = &connect {
        r.exact(&s, o.at(k.connect_time), Some(format!("spec.connectTime: {c}")), "same connect-retry time");
    }
    let router_id = o.str(k.router_id)?.map(str::to_string);
    if let Some(id) = &router_id {
        r.exact(&s, o.at(k.router_id), Some(format!("spec.routerID: {id}")), "same router ID");
    }

    let mut password_secret = None;
    if o.get(k.password).is_some() {
        let secret = format!("{name}-bgp-password");
        r.approximate(
            &s,
            o.at(k.password),
            Some(format!("spec.passwordSecret: {{name: {secret}}}")),
            "FerroLB reads MD5 passwords from Secrets only; the password is not copied into the output (nor into this \
             report)",
            format!("{SECRET_CHECK}; here NAME is {secret} and the password is the one in the source"),
        );
        password_secret = Some(SecretKeyRef { name: secret, key: None });
    }
    if !k.password_secret.is_empty()
        && let Some(mut ps) = o.obj(k.password_secret)?
    {
        let secret = ps.required_str("name")?.to_string();
        let ns = ps.str("namespace")?.unwrap_or("metallb-system").to_string();
        report_unknown(&ps, r);
        r.approximate(
            &s,
            o.at(k.password_secret),
            Some(format!("spec.passwordSecret: {{name: {secret}}}")),
            format!(
                "the Secret is read from FerroLB's namespace, not {ns:?}; its key `password` (a basic-auth Secret) is \
                 FerroLB's default key"
            ),
            format!(
                "copy it: kubectl -n {ns} get secret {secret} -o json | jq 'del(.metadata.namespace,.metadata.uid,\
                 .metadata.resourceVersion,.metadata.creationTimestamp)' | kubectl -n ferrolb-system apply -f -"
            ),
        );
        password_secret = Some(SecretKeyRef { name: secret, key: None });
    }

    let bfd = match o.str(k.bfd_profile)? {
        Some(p) if !p.is_empty() => Some((o.at(k.bfd_profile), p.to_string())),
        _ => None,
    };

    let mut ttl = None;
    if let Some(multi) = o.bool(k.ebgp_multihop)? {
        let ibgp = peer_asn == Some(my_asn);
        match (multi, ibgp) {
            (true, false) => {
                ttl = Some(FRR_MULTIHOP_TTL);
                r.exact(
                    &s,
                    o.at(k.ebgp_multihop),
                    Some(format!("spec.ebgpMultiHopTTL: {FRR_MULTIHOP_TTL}")),
                    "MetalLB let the session cross any number of hops (FRR's ebgp-multihop without a count is TTL 255)",
                );
            }
            (true, true) => r.exact(
                &s,
                o.at(k.ebgp_multihop),
                None,
                "an iBGP session is not limited to one hop; nothing to set",
            ),
            (false, _) => {
                r.exact(&s, o.at(k.ebgp_multihop), None, "false: directly connected, FerroLB's default")
            }
        }
    }

    let mut node_selectors = Vec::new();
    if !k.node_selectors.is_empty() && o.has(k.node_selectors) {
        let field = o.at(k.node_selectors);
        node_selectors = if k.node_selectors == "node-selectors" {
            legacy_selectors(o, k.node_selectors)?
        } else {
            o.selectors(k.node_selectors)?
        };
        r.exact(
            &s,
            field,
            Some("spec.nodeSelectors".into()),
            "same node selectors (a node matching any opens the session)",
        );
    }
    if !k.node_selector.is_empty()
        && let Some(sel) = o.selector(k.node_selector)?
    {
        r.exact(&s, o.at(k.node_selector), Some("spec.nodeSelectors[0]".into()), "same node selector");
        node_selectors.push(sel);
    }

    let mut graceful_restart = None;
    if !k.graceful_restart.is_empty()
        && let Some(gr) = o.bool(k.graceful_restart)?
    {
        if gr {
            graceful_restart =
                Some(GracefulRestart { enabled: true, restart_time: Some(FRR_RESTART_TIME.into()) });
            r.approximate(
                &s,
                o.at(k.graceful_restart),
                Some(format!("spec.gracefulRestart: {{enabled: true, restartTime: {FRR_RESTART_TIME}}}")),
                "MetalLB's FRR advertised its default restart time of 120s, written out so routers keep routes as long \
                 as before; FerroLB's own default is 15s",
                "routers keep a dead node's routes for the restart time: shorten restartTime unless you rely on it",
            );
        } else {
            r.exact(&s, o.at(k.graceful_restart), None, "false: graceful restart off, FerroLB's default");
        }
    }
    if !k.disable_mp.is_empty() && o.bool(k.disable_mp)?.is_some() {
        r.exact(
            &s,
            o.at(k.disable_mp),
            None,
            "FerroLB advertises the peer's own address family unless addressFamilies lists both, so each family keeps \
             its own session",
        );
    }
    let mut families = Vec::new();
    if !k.dual_stack.is_empty()
        && let Some(ds) = o.bool(k.dual_stack)?
    {
        if ds {
            families = vec![AddressFamily::IPv4, AddressFamily::IPv6];
            r.exact(
                &s,
                o.at(k.dual_stack),
                Some("spec.addressFamilies: [IPv4, IPv6]".into()),
                "both families over this one session",
            );
        } else {
            r.exact(&s, o.at(k.dual_stack), None, "false: the peer's own family only, FerroLB's default");
        }
    }

    if let Some(why) = skip {
        r.not_converted(
            &s,
            "(object)",
            format!("no BGPPeer is written for it: {why}"),
            "keep this peer on the old speaker or configure it by hand",
        );
        return Ok(None);
    }
    let spec = BGPPeerSpec {
        my_asn,
        peer_asn: peer_asn.unwrap_or(my_asn),
        peer_address: address,
        peer_port: port,
        source_address: source,
        node_selectors,
        hold_time: hold_out,
        keepalive_time: keep_out,
        connect_time: connect,
        router_id,
        ebgp_multi_hop_ttl: ttl,
        password_secret,
        graceful_restart,
        bfd_profile: None,
        address_families: families,
    };
    check_peer(&s, name, &spec)?;
    Ok(Some((spec, bfd)))
}

/// Reads a BFD profile's fields (reporting each).
fn bfd(o: &mut Obj<'_>, kebab: bool, cx: &mut Context) -> Result<BFDProfileSpec, InputError> {
    let key = |camel: &'static str, legacy: &'static str| if kebab { legacy } else { camel };
    let s = o.subject().clone();
    let r = &mut cx.report;
    let mut spec = BFDProfileSpec::default();
    for (k, slot, target) in [
        (key("receiveInterval", "receive-interval"), &mut spec.receive_interval, "spec.receiveInterval"),
        (key("transmitInterval", "transmit-interval"), &mut spec.transmit_interval, "spec.transmitInterval"),
    ] {
        *slot = int_in::<u32>(o, k, "an interval in milliseconds")?;
        if let Some(v) = slot {
            r.exact(&s, o.at(k), Some(format!("{target}: {v}")), "same interval in milliseconds");
        }
    }
    let mk = key("detectMultiplier", "detect-multiplier");
    spec.detect_multiplier = int_in::<u8>(o, mk, "a multiplier from 2 to 255")?;
    if let Some(m) = spec.detect_multiplier {
        r.exact(&s, o.at(mk), Some(format!("spec.detectMultiplier: {m}")), "same multiplier");
    }
    let pk = key("passiveMode", "passive-mode");
    if let Some(p) = o.bool(pk)? {
        spec.passive_mode = p;
        r.exact(&s, o.at(pk), Some(format!("spec.passiveMode: {p}")), "same meaning");
    }
    let ek = key("echoMode", "echo-mode");
    let echo = o.bool(ek)?.unwrap_or(false);
    if echo {
        r.not_converted(
            &s,
            o.at(ek),
            "FerroLB's BFD sends no echo packets: failures are detected by control packets alone",
            "lower the receive/transmit intervals if echo mode made detection faster",
        );
    } else if o.has(ek) {
        r.exact(&s, o.at(ek), None, "false: no echo packets, as in FerroLB");
    }
    let ik = key("echoInterval", "echo-interval");
    if o.get(ik).is_some() {
        if echo {
            r.not_converted(&s, o.at(ik), "echo packets are not sent by FerroLB", "see echoMode");
        } else {
            r.exact(&s, o.at(ik), None, "unused without echo mode, in MetalLB as well");
        }
    }
    let tk = key("minimumTtl", "minimum-ttl");
    if o.get(tk).is_some() {
        r.approximate(
            &s,
            o.at(tk),
            None,
            "FerroLB runs single-hop BFD (RFC 5881), which accepts only packets with TTL 255; a lower minimum applied to \
             multi-hop sessions only",
            "BFD works only with directly connected routers in FerroLB",
        );
    }
    Ok(spec)
}

/// Reads the fields every advertisement shape shares (communities, localPref, aggregation
/// lengths), reporting the plain ones; selectors and peers are the caller's.
fn advertisement_fields(
    o: &mut Obj<'_>,
    kebab: bool,
    subject: &Subject,
    namespace: Option<String>,
    name: String,
    pool_indices: Vec<usize>,
) -> Result<MlbBgpAdv, InputError> {
    let key = |camel: &'static str, legacy: &'static str| if kebab { legacy } else { camel };
    let ck = key("communities", "communities");
    let communities = o
        .str_list(ck)?
        .into_iter()
        .enumerate()
        .map(|(i, c)| (format!("{}[{i}]", o.at(ck)), c.to_string()))
        .collect();
    let lk = key("localPref", "localpref");
    let local_pref = int_in::<u32>(o, lk, "a LOCAL_PREF (0 to 4294967295)")?;
    let ak = key("aggregationLength", "aggregation-length");
    let aggregation_length = int_in::<u8>(o, ak, "an IPv4 prefix length")?;
    let a6 = key("aggregationLengthV6", "aggregation-length-v6");
    let aggregation_length_v6 = int_in::<u8>(o, a6, "an IPv6 prefix length")?;
    Ok(MlbBgpAdv {
        subject: subject.clone(),
        namespace,
        name,
        path: o.path().to_string(),
        pools: Vec::new(),
        pool_selectors: Vec::new(),
        pool_indices,
        node_selectors: Vec::new(),
        peers: Vec::new(),
        communities,
        local_pref,
        aggregation_length,
        aggregation_length_v6,
        kebab,
    })
}

/// The legacy `node-selectors` list: `match-labels` and `match-expressions` spelled in kebab case.
fn legacy_selectors(o: &mut Obj<'_>, key: &str) -> Result<Vec<LabelSelector>, InputError> {
    let base = o.at(key);
    let subject = o.subject().clone();
    let mut out = Vec::new();
    for (i, v) in o.list(key)?.iter().enumerate() {
        let path = format!("{base}[{i}]");
        let mut s = Obj::new(v, &path, &subject)?;
        let labels = s.string_map("match-labels")?;
        let mut exprs = Vec::new();
        for (j, e) in s.list("match-expressions")?.iter().enumerate() {
            let mut e = Obj::new(e, format!("{path}.match-expressions[{j}]"), &subject)?;
            let values: Vec<String> = e.str_list("values")?.into_iter().map(str::to_string).collect();
            exprs.push(LabelSelectorRequirement {
                key: e.required_str("key")?.to_string(),
                operator: e.required_str("operator")?.to_string(),
                values: (!values.is_empty()).then_some(values),
            });
        }
        if let Some((field, _)) = s.rest().into_iter().next() {
            return Err(field_error(&subject, &field, "unknown field in a node selector".into()));
        }
        let sel = LabelSelector {
            match_labels: (!labels.is_empty()).then_some(labels),
            match_expressions: (!exprs.is_empty()).then_some(exprs),
        };
        Selector::from_label_selector(&sel).map_err(|e| field_error(&subject, &path, e.to_string()))?;
        out.push(sel);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Lowering

/// Turns the MetalLB BGP objects into drafts. `pools` are the MetalLB pools, whose drafts start
/// at `first_draft`; returns, per pool index, the advertisements that cover it.
pub fn lower(
    set: BgpSet,
    pools: &[MlbPool],
    first_draft: usize,
    cx: &mut Context,
) -> BTreeMap<usize, Vec<String>> {
    let mut bfd_index: BTreeMap<(Option<String>, String), usize> = BTreeMap::new();
    for b in set.bfd {
        bfd_index.insert((b.namespace.clone(), b.name.clone()), cx.bgp_bfd.len());
        cx.bgp_bfd.push(BfdDraft { subject: b.subject, wanted: b.name, spec: b.spec, name: String::new() });
    }
    let mut peer_index: Vec<(Option<String>, String, usize)> = Vec::new();
    for p in set.peers {
        let bfd = p.bfd.as_ref().and_then(|(field, profile)| {
            match bfd_index.get(&(p.namespace.clone(), profile.clone())) {
                Some(&i) => {
                    cx.report.exact(
                        &p.subject,
                        field,
                        Some(format!("spec.bfdProfile: {profile}")),
                        "the converted BFDProfile of that name (see the renames, if any)",
                    );
                    Some(i)
                }
                None => {
                    cx.report.not_converted(
                        &p.subject,
                        field,
                        format!(
                            "BFD profile {profile:?} is not among the inputs, so the peer runs without BFD"
                        ),
                        "add the BFDProfile's manifest to the inputs, or set spec.bfdProfile by hand",
                    );
                    None
                }
            }
        });
        peer_index.push((p.namespace.clone(), p.name.clone(), cx.bgp_peers.len()));
        cx.bgp_peers.push(PeerDraft {
            subject: p.subject,
            wanted: p.name,
            spec: p.spec,
            bfd,
            name: String::new(),
        });
    }

    let mut used_aliases: BTreeMap<(Option<String>, String), Vec<String>> = BTreeMap::new();
    let mut covered: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for adv in &set.advs {
        lower_adv(
            adv,
            pools,
            first_draft,
            &peer_index,
            &set.communities,
            &mut used_aliases,
            &mut covered,
            cx,
        );
    }
    for c in &set.communities {
        for (field, name, value) in &c.entries {
            let mut advs =
                used_aliases.get(&(c.namespace.clone(), name.clone())).cloned().unwrap_or_default();
            advs.sort();
            advs.dedup();
            match (!advs.is_empty()).then_some(advs) {
                Some(advs) => cx.report.exact(
                    &c.subject,
                    field,
                    Some(format!("spec.communities / spec.largeCommunities of {}", advs.join(", "))),
                    format!("alias {name:?} = {value:?}, written as its value into the advertisements that name it"),
                ),
                None => cx.report.exact(
                    &c.subject,
                    field,
                    None,
                    format!("alias {name:?} is named by no BGP advertisement among the inputs: nothing to convert"),
                ),
            }
        }
    }
    covered
}

#[allow(clippy::too_many_arguments)]
fn lower_adv(
    adv: &MlbBgpAdv,
    pools: &[MlbPool],
    first_draft: usize,
    peers: &[(Option<String>, String, usize)],
    aliases: &[MlbCommunity],
    used_aliases: &mut BTreeMap<(Option<String>, String), Vec<String>>,
    covered: &mut BTreeMap<usize, Vec<String>>,
    cx: &mut Context,
) {
    let s = &adv.subject;
    let same_ns = |p: &MlbPool| p.namespace == adv.namespace;
    let legacy = !adv.pool_indices.is_empty();
    let mut pool_terms: Vec<(Option<Vec<usize>>, Option<LabelSelector>)> = Vec::new();
    if legacy {
        pool_terms.push((Some(adv.pool_indices.iter().map(|i| first_draft + i).collect()), None));
        for &i in &adv.pool_indices {
            covered.entry(i).or_default().push(adv.name.clone());
        }
    } else if adv.pools.is_empty() && adv.pool_selectors.is_empty() {
        pool_terms.push((None, None));
        for (i, _) in pools.iter().enumerate().filter(|(_, p)| same_ns(p)) {
            covered.entry(i).or_default().push(adv.name.clone());
        }
        cx.report.exact(
            s,
            format!("{}.ipAddressPools", adv.path),
            Some("spec.poolSelector (none)".into()),
            "no ipAddressPools and no ipAddressPoolSelectors: every pool, as in MetalLB",
        );
    } else {
        let mut idx = Vec::new();
        for (j, name) in adv.pools.iter().enumerate() {
            let field = format!("{}.ipAddressPools[{j}]", adv.path);
            match pools.iter().position(|p| same_ns(p) && &p.name == name) {
                Some(i) => {
                    idx.push(first_draft + i);
                    covered.entry(i).or_default().push(adv.name.clone());
                    cx.report.exact(
                        s,
                        field,
                        Some(format!("spec.poolSelector {}", crate::names::POOL_NAME_LABEL)),
                        format!("pool {name:?} selected by its name label"),
                    );
                }
                None => cx.report.not_converted(
                    s,
                    field,
                    format!("pool {name:?} is not among the inputs; MetalLB ignored the reference as well"),
                    "add the pool's manifest to the inputs if it exists",
                ),
            }
        }
        if !idx.is_empty() {
            pool_terms.push((Some(idx), None));
        }
        for (j, sel) in adv.pool_selectors.iter().enumerate() {
            let matcher = Selector::from_label_selector(sel).unwrap_or_default();
            for (i, _) in pools.iter().enumerate().filter(|(_, p)| same_ns(p) && matcher.matches(&p.labels)) {
                covered.entry(i).or_default().push(adv.name.clone());
            }
            cx.report.exact(
                s,
                format!("{}.ipAddressPoolSelectors[{j}]", adv.path),
                Some("spec.poolSelector".into()),
                "same selector on the pool labels, which were copied to the converted pools",
            );
            pool_terms.push((None, Some(sel.clone())));
        }
    }
    for j in 0..adv.node_selectors.len() {
        cx.report.exact(
            s,
            format!("{}.nodeSelectors[{j}]", adv.path),
            Some(format!("spec.nodeSelectors[{j}]")),
            "same node selector (a node matching any advertises)",
        );
    }

    let mut peer_idx = Vec::new();
    for (j, name) in adv.peers.iter().enumerate() {
        let field = format!("{}.peers[{j}]", adv.path);
        match peers.iter().find(|(ns, n, _)| *ns == adv.namespace && n == name) {
            Some((_, _, i)) => {
                peer_idx.push(*i);
                cx.report.exact(s, field, Some("spec.peers".into()), format!("the converted BGPPeer {name:?}"));
            }
            None => cx.report.not_converted(
                s,
                field,
                format!("peer {name:?} is not among the converted peers; MetalLB advertised to it only if it existed"),
                "add the BGPPeer's manifest to the inputs if it exists",
            ),
        }
    }
    if !adv.peers.is_empty() && peer_idx.is_empty() {
        cx.report.not_converted(
            s,
            "(object)",
            "none of its peers was converted, so no BGPAdvertisement is written (it would advertise to every peer)",
            "add the BGPPeers it names to the inputs",
        );
        return;
    }

    let mut communities = Vec::new();
    let mut large = Vec::new();
    for (field, text) in &adv.communities {
        // An alias wins over the text's own meaning, as in MetalLB (an alias may be called
        // `no-advertise`).
        let alias = aliases
            .iter()
            .filter(|c| c.namespace == adv.namespace)
            .flat_map(|c| c.entries.iter())
            .find(|(_, n, _)| n == text.trim());
        let resolved = match (alias, classify_community(text)) {
            (Some((_, name, value)), _) => {
                used_aliases.entry((adv.namespace.clone(), name.clone())).or_default().push(adv.name.clone());
                community_value(value).ok()
            }
            (None, Community::Alias(a)) => {
                cx.report.not_converted(
                    s,
                    field,
                    format!("community alias {a:?} is defined by no Community object (bgp-communities) among the inputs"),
                    "add the Community object to the inputs, or add the community's value by hand",
                );
                continue;
            }
            (None, other) => Some(other),
        };
        match resolved {
            Some(Community::Standard(v)) => {
                cx.report.exact(s, field, Some(format!("spec.communities: {v}")), "same community");
                communities.push(v);
            }
            Some(Community::Large(v)) => {
                cx.report.exact(
                    s,
                    field,
                    Some(format!("spec.largeCommunities: {v}")),
                    "same large community",
                );
                large.push(v);
            }
            _ => {}
        }
    }
    let key = |camel: &str, kebab: &str| {
        if adv.kebab { format!("{}.{kebab}", adv.path) } else { format!("{}.{camel}", adv.path) }
    };
    if let Some(lp) = adv.local_pref {
        cx.report.exact(
            s,
            key("localPref", "localpref"),
            Some(format!("spec.localPref: {lp}")),
            "same LOCAL_PREF, sent to iBGP peers only, as MetalLB did",
        );
    }
    if let Some(l) = adv.aggregation_length {
        cx.report.exact(
            s,
            key("aggregationLength", "aggregation-length"),
            Some(format!("spec.aggregationLength: {l}")),
            "same prefix length",
        );
    }
    if let Some(l) = adv.aggregation_length_v6 {
        cx.report.exact(
            s,
            key("aggregationLengthV6", "aggregation-length-v6"),
            Some(format!("spec.aggregationLengthV6: {l}")),
            "same prefix length",
        );
    }

    let many = pool_terms.len() > 1;
    if many {
        cx.report.exact(
            s,
            "(object)",
            None,
            format!(
                "split into {} BGPAdvertisements (one per pool term); FerroLB advertises the union, which is what one \
                 MetalLB advertisement with several pool terms means",
                pool_terms.len()
            ),
        );
    }
    for (k, (by_name, pool_sel)) in pool_terms.into_iter().enumerate() {
        let wanted = if many { format!("{}-{}", adv.name, k + 1) } else { adv.name.clone() };
        let spec = BGPAdvertisementSpec {
            pool_selector: pool_sel,
            node_selectors: adv.node_selectors.clone(),
            communities: communities.clone(),
            large_communities: large.clone(),
            local_pref: adv.local_pref,
            aggregation_length: adv.aggregation_length,
            aggregation_length_v6: adv.aggregation_length_v6,
            ..BGPAdvertisementSpec::default()
        };
        if let Err(e) = check_advertisement(s, &wanted, &spec) {
            cx.fail(e);
            continue;
        }
        cx.bgp_advs.push(AdvertisementDraft {
            subject: s.clone(),
            wanted,
            spec,
            pools_by_name: by_name,
            peers: (!peer_idx.is_empty()).then(|| peer_idx.clone()),
            name: String::new(),
        });
    }
}
