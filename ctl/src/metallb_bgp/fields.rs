//! Reading the fields of MetalLB's peers, BFD profiles and advertisements, in the CRD and the
//! legacy spelling, with a report entry for each.

use ferrolb_api::Selector;
use ferrolb_api::bgp::{AddressFamily, BFDProfileSpec, BGPPeerSpec, GracefulRestart, SecretKeyRef};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::{
    FRR_MULTIHOP_TTL, FRR_RESTART_TIME, METALLB_HOLD_TIME, METALLB_KEEPALIVE_TIME, MlbBgpAdv, PeerKeys,
    SECRET_CHECK,
};
use crate::bgp::{asn, check_peer, duration_text, int_in};
use crate::convert::{Context, report_unknown};
use crate::error::InputError;
use crate::obj::{Obj, field_error};
use crate::report::Subject;

/// A converted peer spec and its BFD profile reference (`(field, name)`); `None`: the peer
/// cannot be converted (the report says why).
type PeerRead = Option<(BGPPeerSpec, Option<(String, String)>)>;

/// Reads a peer's fields, reporting each.
pub(super) fn peer(
    o: &mut Obj<'_>,
    k: PeerKeys,
    name: &str,
    cx: &mut Context,
) -> Result<PeerRead, InputError> {
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
pub(super) fn bfd(o: &mut Obj<'_>, kebab: bool, cx: &mut Context) -> Result<BFDProfileSpec, InputError> {
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
pub(super) fn advertisement_fields(
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
