//! Cilium's BGP control plane, v2 API: `CiliumBGPClusterConfig` (which nodes peer with which
//! routers, per BGP instance), `CiliumBGPPeerConfig` (timers, port, authentication, graceful
//! restart, multihop, address families, and by label which advertisements a peer gets) and
//! `CiliumBGPAdvertisement` (what is advertised, with which attributes).
//!
//! Cilium semantics kept here (from its BGP control plane docs):
//! - Each peer of each instance of a cluster config is a session from every node the cluster
//!   config's `nodeSelector` selects: a `BGPPeer` with that node selector.
//! - A peer without `peerConfigRef` uses Cilium's defaults (hold 90s, keepalive 30s, connect
//!   retry 120s, IPv4 and IPv6 unicast) and, selecting no advertisement, is sent nothing.
//! - A peer config's `families[].advertisements` selects `CiliumBGPAdvertisement`s by their
//!   labels; a `Service` advertisement without a `selector` matches no Service.
//! - Only `Service` advertisements of `LoadBalancerIP` (and `ExternalIP`) addresses have a
//!   FerroLB equivalent; Pod CIDRs, Pod IP pools, interfaces and ClusterIPs are not converted.

use std::collections::BTreeMap;

use ferrolb_api::Selector;
use ferrolb_api::bgp::{AddressFamily, BGPAdvertisementSpec, BGPPeerSpec, GracefulRestart, SecretKeyRef};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

use crate::bgp::{AdvertisementDraft, PeerDraft, asn, check_advertisement, check_peer, int_in, seconds_text};
use crate::convert::{Context, read_meta, report_unknown};
use crate::error::InputError;
use crate::input::Document;
use crate::obj::Obj;
use crate::report::Subject;
use crate::services::CILIUM_BGP_CLASS;

/// Cilium's peer defaults (used without a `peerConfigRef`, and for unset timers).
const HOLD_SECONDS: u64 = 90;
const KEEPALIVE_SECONDS: u64 = 30;
const CONNECT_RETRY_SECONDS: u64 = 120;
const RESTART_SECONDS: u64 = 120;

/// Every Cilium BGP object read, lowered together at the end.
#[derive(Debug, Default)]
pub struct Set {
    peers: Vec<ClusterPeer>,
    configs: Vec<PeerConfig>,
    advs: Vec<Advertisement>,
}

/// One peer of one instance of a `CiliumBGPClusterConfig`.
#[derive(Debug, Clone)]
struct ClusterPeer {
    subject: Subject,
    /// `spec.bgpInstances[0].peers[1]`.
    path: String,
    name: String,
    local_asn: u32,
    peer_asn: u32,
    address: String,
    config: Option<String>,
    node_selector: Option<LabelSelector>,
}

/// A `CiliumBGPPeerConfig`, its fields reported; `spec` lacks only what comes from the cluster
/// config (ASNs, address, nodes).
#[derive(Debug, Clone)]
struct PeerConfig {
    subject: Subject,
    name: String,
    spec: BGPPeerSpec,
    selectors: FamilySelectors,
}

/// The advertisement selector of each address family of a peer config.
type FamilySelectors = Vec<(AddressFamily, Option<LabelSelector>)>;

/// A `CiliumBGPAdvertisement`: its labels and the Service advertisements it holds.
#[derive(Debug, Clone)]
struct Advertisement {
    subject: Subject,
    name: String,
    labels: BTreeMap<String, String>,
    entries: Vec<BGPAdvertisementSpec>,
}

/// `CiliumBGPClusterConfig` (cilium.io/v2, v2alpha1).
pub fn cluster_config(doc: &Document, cx: &mut Context) -> Result<(), InputError> {
    let (subject, _) = crate::convert::subject_of(doc, "CiliumBGPClusterConfig");
    let mut root = Obj::new(&doc.value, "", &subject)?;
    read_meta(&mut root, &mut cx.report, None)?;
    let mut spec = root.obj("spec")?.ok_or_else(|| root.error("spec", "required field is missing"))?;
    let node_selector = spec.selector("nodeSelector")?;
    cx.report.exact(
        &subject,
        "spec.nodeSelector",
        Some("spec.nodeSelectors of each converted BGPPeer".into()),
        if node_selector.is_some() {
            "the nodes that peer: the same selector on every peer of this config"
        } else {
            "unset: every node peers, as in FerroLB without nodeSelectors"
        },
    );
    for (i, inst) in spec.list("bgpInstances")?.iter().enumerate() {
        let path = format!("spec.bgpInstances[{i}]");
        let mut inst = Obj::new(inst, &path, &subject)?;
        let instance = inst.required_str("name")?.to_string();
        cx.report.exact(
            &subject,
            inst.at("name"),
            None,
            format!("instance {instance:?}: FerroLB has one BGP speaker per node; its peers become BGPPeers"),
        );
        let local_asn =
            asn(&mut inst, "localASN")?.ok_or_else(|| inst.error("localASN", "required field is missing"))?;
        cx.report.exact(
            &subject,
            inst.at("localASN"),
            Some(format!("spec.myASN: {local_asn} of its peers")),
            "same ASN",
        );
        if inst.get("localPort").is_some() {
            cx.report.not_converted(
                &subject,
                inst.at("localPort"),
                "the port Cilium listened on for BGP: FerroLB only connects out, it does not listen",
                "make sure the routers open the sessions towards the nodes' port 179, or connect to them (the default)",
            );
        }
        for (j, p) in inst.list("peers")?.iter().enumerate() {
            let ppath = format!("{path}.peers[{j}]");
            let mut p = Obj::new(p, &ppath, &subject)?;
            let name = p.required_str("name")?.to_string();
            let peer_asn = asn(&mut p, "peerASN")?;
            let address = p.str("peerAddress")?.map(str::to_string);
            let config = match p.obj("peerConfigRef")? {
                Some(mut r) => {
                    let n = r.required_str("name")?.to_string();
                    r.get("group");
                    r.get("kind");
                    report_unknown(&r, &mut cx.report);
                    Some(n)
                }
                None => None,
            };
            let auto = p.get("autoDiscovery").is_some();
            let skip = match (peer_asn, &address) {
                (None, _) => Some(
                    "peerASN unset or 0: Cilium accepted any ASN from the OPEN message; FerroLB needs it",
                ),
                (_, None) if auto => {
                    Some("autoDiscovery: Cilium found the router's address itself; FerroLB needs it")
                }
                (_, None) => Some("no peerAddress"),
                _ => None,
            };
            if let Some(why) = skip {
                cx.report.not_converted(
                    &subject,
                    &ppath,
                    format!("peer {name:?}: {why}, so no BGPPeer is written"),
                    "write this BGPPeer by hand with the router's address and ASN",
                );
                continue;
            }
            let address = address.unwrap_or_default();
            address
                .trim()
                .parse::<std::net::IpAddr>()
                .map_err(|_| p.error("peerAddress", format!("{address:?} is not an IP address")))?;
            cx.report.exact(
                &subject,
                &ppath,
                Some(format!("BGPPeer {name}")),
                "one BGPPeer per Cilium peer, named after it",
            );
            cx.report.exact(
                &subject,
                p.at("peerASN"),
                Some(format!("spec.peerASN: {}", peer_asn.unwrap_or_default())),
                "same ASN",
            );
            cx.report.exact(
                &subject,
                p.at("peerAddress"),
                Some(format!("spec.peerAddress: {address}")),
                "same address",
            );
            report_unknown(&p, &mut cx.report);
            cx.cilium_bgp.peers.push(ClusterPeer {
                subject: subject.clone(),
                path: ppath,
                name,
                local_asn,
                peer_asn: peer_asn.unwrap_or_default(),
                address: address.trim().to_string(),
                config,
                node_selector: node_selector.clone(),
            });
        }
        report_unknown(&inst, &mut cx.report);
    }
    report_unknown(&spec, &mut cx.report);
    report_unknown(&root, &mut cx.report);
    Ok(())
}

/// `CiliumBGPPeerConfig`.
pub fn peer_config(doc: &Document, cx: &mut Context) -> Result<(), InputError> {
    let (subject, _) = crate::convert::subject_of(doc, "CiliumBGPPeerConfig");
    let mut root = Obj::new(&doc.value, "", &subject)?;
    let meta = read_meta(&mut root, &mut cx.report, None)?;
    let mut spec = match root.obj("spec")? {
        Some(s) => s,
        None => Obj::new(&Value::Null, "spec", &subject)?,
    };
    let s = subject.clone();
    let target = |f: &str| Some(format!("{f} of the BGPPeers that reference it"));
    let mut out = BGPPeerSpec {
        my_asn: 1,
        peer_asn: 1,
        peer_address: String::new(),
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
    };
    if let Some(mut t) = spec.obj("transport")? {
        out.peer_port = int_in::<u16>(&mut t, "peerPort", "a TCP port")?;
        if let Some(p) = out.peer_port {
            cx.report.exact(&s, t.at("peerPort"), target(&format!("spec.peerPort: {p}")), "same port");
        }
        if t.get("localPort").is_some() {
            cx.report.not_converted(
                &s,
                t.at("localPort"),
                "the local port of the session: FerroLB connects from an ephemeral port",
                "only matters when the router filters on the source port",
            );
        }
        report_unknown(&t, &mut cx.report);
    }
    let mut timers = spec.obj("timers")?;
    let mut timer = |key: &str, default: u64, field: &str| -> Result<String, InputError> {
        let set = match timers.as_mut() {
            Some(t) => int_in::<u64>(t, key, "a number of seconds")?,
            None => None,
        };
        let v = seconds_text(set.unwrap_or(default));
        let note = if set.is_some() {
            "same time".to_string()
        } else {
            format!("unset: Cilium's default {v} written out (FerroLB's differs)")
        };
        cx.report.exact(&s, format!("spec.timers.{key}"), target(&format!("{field}: {v}")), note);
        Ok(v)
    };
    out.hold_time = Some(timer("holdTimeSeconds", HOLD_SECONDS, "spec.holdTime")?);
    out.keepalive_time = Some(timer("keepAliveTimeSeconds", KEEPALIVE_SECONDS, "spec.keepaliveTime")?);
    out.connect_time = Some(timer("connectRetryTimeSeconds", CONNECT_RETRY_SECONDS, "spec.connectTime")?);
    if let Some(t) = &timers {
        report_unknown(t, &mut cx.report);
    }
    if let Some(secret) = spec.str("authSecretRef")? {
        cx.report.approximate(
            &s,
            "spec.authSecretRef",
            target(&format!("spec.passwordSecret: {{name: {secret}}}")),
            "the Secret is read from FerroLB's namespace, not Cilium's BGP secrets namespace (kube-system by default); \
             its key `password` is FerroLB's default key",
            format!(
                "copy it: kubectl -n kube-system get secret {secret} -o json | jq 'del(.metadata.namespace,.metadata.uid,\
                 .metadata.resourceVersion,.metadata.creationTimestamp)' | kubectl -n ferrolb-system apply -f -"
            ),
        );
        out.password_secret = Some(SecretKeyRef { name: secret.to_string(), key: None });
    }
    if let Some(mut gr) = spec.obj("gracefulRestart")? {
        let enabled = gr.bool("enabled")?.unwrap_or(false);
        let restart = int_in::<u64>(&mut gr, "restartTimeSeconds", "a number of seconds")?;
        if enabled {
            let t = seconds_text(restart.unwrap_or(RESTART_SECONDS));
            cx.report.exact(
                &s,
                "spec.gracefulRestart",
                target(&format!("spec.gracefulRestart: {{enabled: true, restartTime: {t}}}")),
                if restart.is_some() {
                    "same restart time"
                } else {
                    "Cilium's default restart time written out"
                },
            );
            out.graceful_restart = Some(GracefulRestart { enabled: true, restart_time: Some(t) });
        } else {
            cx.report.exact(&s, "spec.gracefulRestart", None, "disabled, FerroLB's default");
        }
        report_unknown(&gr, &mut cx.report);
    }
    if let Some(ttl) = int_in::<u8>(&mut spec, "ebgpMultihop", "a TTL from 1 to 255")? {
        if ttl > 1 {
            out.ebgp_multi_hop_ttl = Some(ttl);
            cx.report.exact(
                &s,
                "spec.ebgpMultihop",
                target(&format!("spec.ebgpMultiHopTTL: {ttl} (eBGP peers)")),
                "same TTL for eBGP sessions; iBGP sessions are not limited",
            );
        } else {
            cx.report.exact(&s, "spec.ebgpMultihop", None, "1: directly connected, FerroLB's default");
        }
    }
    let mut selectors = Vec::new();
    let families = spec.list("families")?;
    if families.is_empty() {
        out.address_families = vec![AddressFamily::IPv4, AddressFamily::IPv6];
        cx.report.exact(
            &s,
            "spec.families",
            target("spec.addressFamilies: [IPv4, IPv6]"),
            "unset: Cilium's defaults, IPv4 and IPv6 unicast, with no advertisements selected",
        );
        selectors = vec![(AddressFamily::IPv4, None), (AddressFamily::IPv6, None)];
    }
    for (i, f) in families.iter().enumerate() {
        let path = format!("spec.families[{i}]");
        let mut f = Obj::new(f, &path, &s)?;
        let afi = f.required_str("afi")?;
        let safi = f.required_str("safi")?;
        let family = match (afi, safi) {
            ("ipv4", "unicast") => Some(AddressFamily::IPv4),
            ("ipv6", "unicast") => Some(AddressFamily::IPv6),
            _ => None,
        };
        let sel = f.selector("advertisements")?;
        match family {
            Some(fam) => {
                cx.report.exact(
                    &s,
                    &path,
                    target(&format!("spec.addressFamilies: {fam:?}")),
                    "same family; its advertisements selector chooses the BGPAdvertisements listing these peers",
                );
                if !out.address_families.contains(&fam) {
                    out.address_families.push(fam);
                }
                selectors.push((fam, sel));
            }
            None => cx.report.not_converted(
                &s,
                &path,
                format!("{afi}/{safi}: FerroLB advertises unicast IPv4 and IPv6 routes only"),
                "nothing to do for Service addresses",
            ),
        }
        report_unknown(&f, &mut cx.report);
    }
    out.address_families.sort();
    report_unknown(&spec, &mut cx.report);
    report_unknown(&root, &mut cx.report);
    cx.cilium_bgp.configs.push(PeerConfig { subject, name: meta.name, spec: out, selectors });
    Ok(())
}

/// `CiliumBGPAdvertisement`.
pub fn advertisement(doc: &Document, cx: &mut Context) -> Result<(), InputError> {
    let (subject, _) = crate::convert::subject_of(doc, "CiliumBGPAdvertisement");
    let mut root = Obj::new(&doc.value, "", &subject)?;
    let meta = read_meta(&mut root, &mut cx.report, None)?;
    let mut spec = root.obj("spec")?.ok_or_else(|| root.error("spec", "required field is missing"))?;
    let mut entries = Vec::new();
    for (i, a) in spec.list("advertisements")?.iter().enumerate() {
        let path = format!("spec.advertisements[{i}]");
        let mut a = Obj::new(a, &path, &subject)?;
        let kind = a.required_str("advertisementType")?;
        if kind != "Service" {
            cx.report.not_converted(
                &subject,
                &path,
                format!("advertisementType {kind}: FerroLB advertises Service addresses only"),
                "keep advertising these routes another way (the CNI's own BGP, static routes)",
            );
            a.get("selector");
            a.get("attributes");
            a.get("service");
            continue;
        }
        let mut out = BGPAdvertisementSpec { load_balancer_ips: false, ..BGPAdvertisementSpec::default() };
        if let Some(mut svc) = a.obj("service")? {
            for (j, addr) in svc.str_list("addresses")?.into_iter().enumerate() {
                let field = format!("{path}.service.addresses[{j}]");
                match addr {
                    "LoadBalancerIP" => {
                        out.load_balancer_ips = true;
                        cx.report.exact(
                            &subject,
                            field,
                            Some("spec.loadBalancerIPs: true".into()),
                            "same addresses",
                        );
                    }
                    "ExternalIP" => {
                        out.external_ips = true;
                        cx.report.exact(
                            &subject,
                            field,
                            Some("spec.externalIPs: true".into()),
                            "same addresses",
                        );
                    }
                    other => cx.report.not_converted(
                        &subject,
                        field,
                        format!("{other} addresses: FerroLB advertises LoadBalancer and external IPs only"),
                        "advertise ClusterIPs another way if routers need them",
                    ),
                }
            }
            report_unknown(&svc, &mut cx.report);
        }
        let selector = a.selector("selector")?;
        if !out.load_balancer_ips && !out.external_ips {
            cx.report.exact(
                &subject,
                &path,
                None,
                "advertises no LoadBalancer or external IP: nothing to convert",
            );
            a.get("attributes");
            report_unknown(&a, &mut cx.report);
            continue;
        }
        if selector.is_none() {
            cx.report.exact(
                &subject,
                format!("{path}.selector"),
                None,
                "unset: Cilium advertised no Service for this entry, so no BGPAdvertisement is written",
            );
            a.get("attributes");
            report_unknown(&a, &mut cx.report);
            continue;
        }
        cx.report.exact(
            &subject,
            format!("{path}.selector"),
            Some("spec.serviceSelector".into()),
            "same selector, with the same io.kubernetes.service.namespace/name pseudo-labels",
        );
        out.service_selector = selector;
        if let Some(mut attrs) = a.obj("attributes")? {
            if let Some(mut c) = attrs.obj("communities")? {
                for key in ["standard", "wellKnown"] {
                    for (j, v) in c.str_list(key)?.into_iter().enumerate() {
                        let field = format!("{path}.attributes.communities.{key}[{j}]");
                        ferrolb_api::bgp::parse_community(v)
                            .map_err(|e| crate::obj::field_error(&subject, &field, e))?;
                        cx.report.exact(
                            &subject,
                            field,
                            Some(format!("spec.communities: {v}")),
                            "same community",
                        );
                        out.communities.push(v.to_string());
                    }
                }
                for (j, v) in c.str_list("large")?.into_iter().enumerate() {
                    let field = format!("{path}.attributes.communities.large[{j}]");
                    ferrolb_api::bgp::parse_large_community(v)
                        .map_err(|e| crate::obj::field_error(&subject, &field, e))?;
                    cx.report.exact(
                        &subject,
                        field,
                        Some(format!("spec.largeCommunities: {v}")),
                        "same large community",
                    );
                    out.large_communities.push(v.to_string());
                }
                report_unknown(&c, &mut cx.report);
            }
            out.local_pref = int_in::<u32>(&mut attrs, "localPreference", "a LOCAL_PREF")?;
            if let Some(lp) = out.local_pref {
                cx.report.exact(
                    &subject,
                    format!("{path}.attributes.localPreference"),
                    Some(format!("spec.localPref: {lp}")),
                    "same LOCAL_PREF, sent to iBGP peers only",
                );
            }
            report_unknown(&attrs, &mut cx.report);
        }
        report_unknown(&a, &mut cx.report);
        entries.push(out);
    }
    report_unknown(&spec, &mut cx.report);
    report_unknown(&root, &mut cx.report);
    cx.cilium_bgp.advs.push(Advertisement { subject, name: meta.name, labels: meta.labels, entries });
    Ok(())
}

/// Turns the Cilium BGP objects into peer and advertisement drafts.
pub fn lower(cx: &mut Context) {
    let set = std::mem::take(&mut cx.cilium_bgp);
    // Per converted peer (draft index): the advertisement selectors of its peer config.
    let mut selected_by: Vec<(usize, FamilySelectors)> = Vec::new();
    for p in &set.peers {
        let config = p.config.as_ref().and_then(|n| set.configs.iter().find(|c| &c.name == n));
        let base = match (&p.config, config) {
            (Some(_), Some(c)) => {
                cx.report.exact(
                    &p.subject,
                    format!("{}.peerConfigRef", p.path),
                    Some(format!("BGPPeer {}", p.name)),
                    format!("the settings of CiliumBGPPeerConfig {:?} are written into the peer", c.name),
                );
                c.spec.clone()
            }
            (Some(n), None) => {
                cx.report.not_converted(
                    &p.subject,
                    format!("{}.peerConfigRef", p.path),
                    format!("CiliumBGPPeerConfig {n:?} is not among the inputs: the peer gets Cilium's default timers and no advertisements"),
                    "add the CiliumBGPPeerConfig to the inputs",
                );
                default_config()
            }
            (None, _) => {
                cx.report.exact(
                    &p.subject,
                    format!("{}.peerConfigRef", p.path),
                    None,
                    "unset: Cilium's defaults (hold 90s, keepalive 30s, connect retry 120s) written out; with no \
                     advertisements selected, Cilium sent this peer nothing, and neither will FerroLB",
                );
                default_config()
            }
        };
        let selectors = config.map(|c| c.selectors.clone()).unwrap_or_default();
        let mut spec = BGPPeerSpec {
            my_asn: p.local_asn,
            peer_asn: p.peer_asn,
            peer_address: p.address.clone(),
            node_selectors: p.node_selector.clone().into_iter().collect(),
            ..base
        };
        if spec.my_asn == spec.peer_asn {
            // ebgpMultihop only ever applied to eBGP sessions.
            spec.ebgp_multi_hop_ttl = None;
        }
        if let Err(e) = check_peer(&p.subject, &p.name, &spec) {
            cx.fail(e);
            continue;
        }
        selected_by.push((cx.bgp_peers.len(), selectors));
        cx.bgp_peers.push(PeerDraft {
            subject: p.subject.clone(),
            wanted: p.name.clone(),
            spec,
            bfd: None,
            name: String::new(),
        });
    }

    for a in &set.advs {
        let mut peers = Vec::new();
        let mut partial = false;
        for (idx, sels) in &selected_by {
            let matches: Vec<bool> = sels
                .iter()
                .map(|(_, s)| {
                    s.as_ref()
                        .and_then(|s| Selector::from_label_selector(s).ok())
                        .is_some_and(|m| m.matches(&a.labels))
                })
                .collect();
            if matches.iter().any(|m| *m) {
                peers.push(*idx);
                partial |= !matches.iter().all(|m| *m);
            }
        }
        if a.entries.is_empty() {
            continue;
        }
        if peers.is_empty() {
            cx.report.exact(
                &a.subject,
                "(peers)",
                None,
                "no converted peer's CiliumBGPPeerConfig selects this advertisement by its labels, so Cilium advertised \
                 it to no peer; no BGPAdvertisement is written",
            );
            continue;
        }
        if partial {
            cx.report.approximate(
                &a.subject,
                "(peers)",
                None,
                "some peer configs select this advertisement for one address family only; FerroLB advertises both \
                 families of a selected Service to the peer",
                "if a family must not be advertised to those peers, restrict the Services with the advertisement's serviceSelector",
            );
        } else {
            cx.report.exact(
                &a.subject,
                "(peers)",
                Some("spec.peers".into()),
                "the peers whose CiliumBGPPeerConfig families select this advertisement by its labels",
            );
        }
        cx.serve_class(CILIUM_BGP_CLASS, &a.subject);
        let note = format!(
            "Services of class {CILIUM_BGP_CLASS} are served as they are (ferrolb-values.yaml) and advertised over BGP"
        );
        if cx.policies.is_empty() {
            cx.report.exact(
                &a.subject,
                "(loadBalancerClass)",
                Some(format!("loadBalancerClasses: [{CILIUM_BGP_CLASS}]")),
                note,
            );
        } else {
            cx.report.approximate(
                &a.subject,
                "(loadBalancerClass)",
                Some(format!("loadBalancerClasses: [{CILIUM_BGP_CLASS}]")),
                format!(
                    "{note}; the converted L2AnnouncementPolicies also announce them over ARP/NDP when they select them, \
                     which Cilium's L2 announcer did not"
                ),
                format!(
                    "add `{} NotIn [{CILIUM_BGP_CLASS}]` to the L2AnnouncementPolicies' serviceSelector if these Services \
                     must stay BGP-only",
                    ferrolb_api::names::labels::LOAD_BALANCER_CLASS
                ),
            );
        }
        let many = a.entries.len() > 1;
        for (k, spec) in a.entries.iter().enumerate() {
            let wanted = if many { format!("{}-{}", a.name, k + 1) } else { a.name.clone() };
            if let Err(e) = check_advertisement(&a.subject, &wanted, spec) {
                cx.fail(e);
                continue;
            }
            cx.bgp_advs.push(AdvertisementDraft {
                subject: a.subject.clone(),
                wanted,
                spec: spec.clone(),
                pools_by_name: None,
                peers: Some(peers.clone()),
                name: String::new(),
            });
        }
    }
    for c in &set.configs {
        if !set.peers.iter().any(|p| p.config.as_deref() == Some(c.name.as_str())) {
            cx.report.exact(
                &c.subject,
                "(peers)",
                None,
                "no peer among the inputs references it: nothing to convert",
            );
        }
    }
}

/// The settings of a peer without a `CiliumBGPPeerConfig`.
fn default_config() -> BGPPeerSpec {
    BGPPeerSpec {
        my_asn: 1,
        peer_asn: 1,
        peer_address: String::new(),
        peer_port: None,
        source_address: None,
        node_selectors: Vec::new(),
        hold_time: Some(seconds_text(HOLD_SECONDS)),
        keepalive_time: Some(seconds_text(KEEPALIVE_SECONDS)),
        connect_time: Some(seconds_text(CONNECT_RETRY_SECONDS)),
        router_id: None,
        ebgp_multi_hop_ttl: None,
        password_secret: None,
        graceful_restart: None,
        bfd_profile: None,
        address_families: vec![AddressFamily::IPv4, AddressFamily::IPv6],
    }
}
