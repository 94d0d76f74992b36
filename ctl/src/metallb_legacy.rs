//! MetalLB's configuration before CRDs: the `config` ConfigMap (`address-pools` with `protocol:
//! layer2|bgp`, the older `arp`/`ndp`, `auto-assign`, `avoid-buggy-ips`, `bgp-advertisements`,
//! `peers`, `bgp-communities`, `bfd-profiles`), the same text as `configInline` in the Helm
//! chart's values, and the short-lived `AddressPool` CRD.
//!
//! A legacy `layer2` pool was announced from every node running the speaker, on every
//! interface: it becomes a pool and a policy of the same name. A `bgp` pool becomes a pool and
//! one `BGPAdvertisement` per `bgp-advertisements` entry (one with the defaults when there are
//! none); `peers`, `bfd-profiles` and `bgp-communities` are read by [`crate::metallb_bgp`].

use std::collections::BTreeMap;

use ferrolb_api::Family as IpFamily;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

use crate::convert::{Context, labels_selector, read_meta, report_all_not_converted, report_unknown};
use crate::error::InputError;
use crate::input::Document;
use crate::metallb::{MlbAdv, MlbPool, addresses, report_flags};
use crate::metallb_bgp;
use crate::obj::{Obj, field_error, join};
use crate::report::Subject;

/// A ConfigMap: MetalLB's when it has a `config` key.
pub fn config_map(doc: &Document, cx: &mut Context) -> Result<(), InputError> {
    let (subject, _) = crate::convert::subject_of(doc, "ConfigMap");
    let mut root = Obj::new(&doc.value, "", &subject)?;
    let meta = read_meta(&mut root, &mut cx.report, None)?;
    let mut data = match root.obj("data")? {
        Some(d) => d,
        None => Obj::new(&Value::Null, "data", &subject)?,
    };
    match data.str("config")? {
        Some(text) => {
            let cfg: Value = serde_saphyr::from_str(text).map_err(|e| {
                field_error(&subject, "data.config", format!("invalid YAML: {}", first_line(&e.to_string())))
            })?;
            legacy_config(&cfg, "data.config", &subject, cx, None)?;
        }
        None if meta.name == "metallb-excludel2" => {
            cx.report.not_converted(
                &subject,
                "data",
                "MetalLB's list of interfaces never to announce on; FerroLB has its own exclude list (lo, veth*, cali*, \
                 flannel*, cni*, docker*, kube-ipvs*, lxc*, tunl*, vxlan*, cilium*)",
                "if you added interfaces here, restrict the policies' interfaces instead",
            );
            data.get("excludel2.yaml");
        }
        None => cx.report.not_converted(
            &subject,
            "data",
            "not a MetalLB configuration (no `config` key)",
            "remove it from the inputs if it is unrelated",
        ),
    }
    report_unknown(&data, &mut cx.report);
    root.get("binaryData");
    report_unknown(&root, &mut cx.report);
    Ok(())
}

/// A Helm values file of the MetalLB chart (before 0.13) with `configInline`.
pub fn helm_values(doc: &Document, cx: &mut Context) -> Result<(), InputError> {
    let subject = Subject { origin: doc.origin.clone(), object: "Helm values".into() };
    let mut root = Obj::new(&doc.value, "", &subject)?;
    if !root.has("configInline") {
        return Err(InputError::Document {
            origin: doc.origin.clone(),
            message:
                "no apiVersion/kind and no configInline: neither a Kubernetes object nor MetalLB Helm values"
                    .into(),
        });
    }
    // The speaker DaemonSet only ran on these nodes, so only they announced.
    let mut node_selector = None;
    if let Some(mut speaker) = root.obj("speaker")? {
        let ns = speaker.string_map("nodeSelector")?;
        if !ns.is_empty() {
            cx.report.exact(
                &subject,
                "speaker.nodeSelector",
                Some("spec.nodeSelector of the layer2 policies".into()),
                "speakers only ran on these nodes, so only they announced",
            );
            node_selector = labels_selector(&ns);
        }
        report_all_not_converted(
            &speaker,
            &mut cx.report,
            "a setting of MetalLB's speaker DaemonSet",
            "set the equivalent in the FerroLB chart's announcer values if you need it",
        );
    }
    let cfg = root.get("configInline").cloned().unwrap_or(Value::Null);
    let cfg = match cfg {
        Value::String(text) => serde_saphyr::from_str(&text).map_err(|e| {
            field_error(&subject, "configInline", format!("invalid YAML: {}", first_line(&e.to_string())))
        })?,
        v => v,
    };
    legacy_config(&cfg, "configInline", &subject, cx, node_selector)?;
    report_all_not_converted(
        &root,
        &mut cx.report,
        "a setting of MetalLB's own chart (images, resources, RBAC, ...)",
        "set the equivalent in the FerroLB chart's values if you need it",
    );
    Ok(())
}

/// `AddressPool` (metallb.io/v1alpha1 and v1beta1), the CRD form of a legacy pool.
pub fn address_pool(doc: &Document, cx: &mut Context) -> Result<(), InputError> {
    let (subject, _) = crate::convert::subject_of(doc, "AddressPool");
    let mut root = Obj::new(&doc.value, "", &subject)?;
    let meta = read_meta(&mut root, &mut cx.report, Some("LoadBalancerIPPool"))?;
    let mut spec = root.obj("spec")?.ok_or_else(|| root.error("spec", "required field is missing"))?;
    let names =
        Keys { protocol: "protocol", auto: "autoAssign", buggy: "avoidBuggyIPs", bgp: "bgpAdvertisements" };
    pool(&mut spec, &subject, meta.name, meta.namespace, meta.labels, names, cx, None)?;
    report_unknown(&spec, &mut cx.report);
    report_unknown(&root, &mut cx.report);
    Ok(())
}

/// Field names of a legacy pool: kebab-case in the ConfigMap, camelCase in the CRD.
#[derive(Debug, Clone, Copy)]
pub struct Keys {
    pub protocol: &'static str,
    pub auto: &'static str,
    pub buggy: &'static str,
    pub bgp: &'static str,
}

/// Keys of the ConfigMap format (also Deckhouse's settings version 1).
pub const KEBAB: Keys =
    Keys { protocol: "protocol", auto: "auto-assign", buggy: "avoid-buggy-ips", bgp: "bgp-advertisements" };

/// The legacy configuration text (a mapping), located at `path` of `container`.
pub fn legacy_config(
    cfg: &Value,
    path: &str,
    container: &Subject,
    cx: &mut Context,
    node_selector: Option<LabelSelector>,
) -> Result<(), InputError> {
    let mut o = Obj::new(cfg, path, container)?;
    pools(&mut o, "address-pools", container, cx, node_selector.clone(), KEBAB)?;
    metallb_bgp::legacy_peers(&mut o, "peers", container, node_selector.as_ref(), cx)?;
    metallb_bgp::legacy_bfd_profiles(&mut o, "bfd-profiles", container, cx)?;
    metallb_bgp::legacy_communities(&mut o, "bgp-communities", container, cx)?;
    report_unknown(&o, &mut cx.report);
    Ok(())
}

/// The `address-pools` list of a legacy configuration.
pub fn pools(
    o: &mut Obj<'_>,
    key: &str,
    container: &Subject,
    cx: &mut Context,
    node_selector: Option<LabelSelector>,
    keys: Keys,
) -> Result<(), InputError> {
    for (i, item) in o.list(key)?.iter().enumerate() {
        let path = format!("{}[{i}]", o.at(key));
        let mut p = Obj::new(item, &path, container)?;
        let name = p.required_str("name")?.to_string();
        let subject = Subject {
            origin: container.origin.clone(),
            object: format!("{} {path} ({name})", container.object),
        };
        let mut p = Obj::new(item, &path, &subject)?;
        p.get("name");
        cx.report.exact(
            &subject,
            join(&path, "name"),
            Some("LoadBalancerIPPool metadata.name".into()),
            "name kept (see the renames, if any)",
        );
        pool(&mut p, &subject, name, None, BTreeMap::new(), keys, cx, node_selector.clone())?;
        report_unknown(&p, &mut cx.report);
    }
    Ok(())
}

/// One legacy pool: a MetalLB pool, plus an implicit advertisement for layer2.
#[allow(clippy::too_many_arguments)]
fn pool(
    p: &mut Obj<'_>,
    subject: &Subject,
    name: String,
    namespace: Option<String>,
    labels: BTreeMap<String, String>,
    keys: Keys,
    cx: &mut Context,
    node_selector: Option<LabelSelector>,
) -> Result<(), InputError> {
    let protocol = p.required_str(keys.protocol)?;
    let (blocks, ranges) = addresses(p, "addresses", cx)?;
    let auto = p.bool(keys.auto)?;
    let buggy = p.bool(keys.buggy)?;
    report_flags(cx, subject, p, keys.auto, auto, keys.buggy, buggy);
    let families: Vec<IpFamily> = ranges.iter().map(|(_, r)| r.family()).collect();
    let field = p.at(keys.protocol);
    let layer2 = match protocol {
        "layer2" => {
            cx.report.exact(
                subject,
                &field,
                Some(format!("L2AnnouncementPolicy {name}")),
                "announced over ARP/NDP from every node running the speaker, on every interface",
            );
            true
        }
        "arp" | "ndp" => {
            let (expected, other) =
                if protocol == "arp" { (IpFamily::V4, "IPv6") } else { (IpFamily::V6, "IPv4") };
            if families.iter().all(|f| *f == expected) {
                cx.report.exact(
                    subject,
                    &field,
                    Some(format!("L2AnnouncementPolicy {name}")),
                    format!("{protocol:?} is MetalLB's old name of layer2 for {expected} addresses"),
                );
            } else {
                cx.report.approximate(
                    subject,
                    &field,
                    Some(format!("L2AnnouncementPolicy {name}")),
                    format!("{protocol:?} (old layer2 for {expected}) with {other} addresses, which the old speaker did not announce; FerroLB announces them"),
                    format!("move the {other} addresses to their own pool if they must stay unannounced"),
                );
            }
            true
        }
        "bgp" => {
            cx.report.exact(
                subject,
                &field,
                Some(format!("BGPAdvertisement {name}")),
                "advertised over BGP: the pool's bgp-advertisements (or, without them, MetalLB's defaults) become \
                 BGPAdvertisements selecting this pool",
            );
            false
        }
        other => {
            return Err(p.error(
                keys.protocol,
                format!("unknown protocol {other:?} (expected layer2, bgp, arp or ndp)"),
            ));
        }
    };
    let index = cx.metallb.pools.len();
    if layer2 {
        if let Some(list) = p.get(keys.bgp).and_then(Value::as_array) {
            for i in 0..list.len() {
                cx.report.not_converted(
                    subject,
                    format!("{}[{i}]", p.at(keys.bgp)),
                    "a BGP advertisement of a layer2 pool: MetalLB announced the pool over ARP/NDP only and ignored it",
                    "nothing to do unless you meant the pool to be advertised over BGP",
                );
            }
        }
    } else {
        metallb_bgp::legacy_pool_advertisements(
            p,
            keys.bgp,
            keys.bgp.contains('-'),
            subject,
            &name,
            index,
            cx,
        )?;
    }
    cx.metallb.pools.push(MlbPool {
        subject: subject.clone(),
        namespace: namespace.clone(),
        name: name.clone(),
        labels,
        blocks,
        ranges,
        auto_assign: auto.unwrap_or(true),
        avoid_buggy_ips: buggy.unwrap_or(false),
        allocation: None,
    });
    if layer2 {
        cx.metallb.advs.push(MlbAdv {
            subject: subject.clone(),
            namespace,
            name,
            path: p.path().to_string(),
            pools: Vec::new(),
            pool_selectors: Vec::new(),
            node_selectors: node_selector.into_iter().collect(),
            interfaces: Vec::new(),
            pool_indices: vec![index],
        });
    }
    Ok(())
}

fn first_line(s: &str) -> String {
    let line = s.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}
