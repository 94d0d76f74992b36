//! Services: the load-balancer annotations of MetalLB, Cilium and Deckhouse (FerroLB honours
//! them natively, so they are kept unless `--rewrite-annotations`), references to renamed
//! pools, the class, and whether each current address lies in a converted pool (the IPAM
//! controller keeps an address only then: this is the "zero address changes" check).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_api::names::annotations::{self as ann, compat};
use ferrolb_api::names::{self, labels};
use ferrolb_api::{AllowFirstLastIps, IpRange, Selector, ServedClasses};
use serde_json::{Map, Value, json};

use crate::convert::{Options, PoolDraft, SourceTool, subject_of};
use crate::error::InputError;
use crate::input::Document;
use crate::obj::Obj;
use crate::report::{ClassInUse, Report, Subject};

/// Old annotation keys by the FerroLB key they mean, preferred spelling first.
const ALIASES: &[(&str, &[&str])] = &[
    (ann::IPS, compat::IPS_ALIASES),
    (ann::POOL, compat::POOL_ALIASES),
    (
        ann::SHARING_KEY,
        &[
            compat::METALLB_SHARED,
            compat::METALLB_LEGACY_SHARED,
            compat::CILIUM_SHARING_KEY,
            compat::CILIUM_LEGACY_SHARING_KEY,
            compat::DECKHOUSE_SHARED_IP_KEY,
        ],
    ),
    (ann::SHARING_CROSS_NAMESPACE, compat::SHARING_CROSS_NAMESPACE_ALIASES),
    (ann::IP_COUNT, compat::IP_COUNT_ALIASES),
];

/// Annotations the old controllers wrote themselves.
const WRITTEN_BY_CONTROLLERS: &[&str] =
    &["metallb.universe.tf/ip-allocated-from-pool", "metallb.io/ip-allocated-from-pool"];

/// Prefixes of load-balancer annotations; other keys with them are unknown and reported.
const LB_PREFIXES: &[&str] = &[
    "metallb.universe.tf/",
    "metallb.io/",
    "lbipam.cilium.io/",
    "io.cilium/lb-ipam",
    "network.deckhouse.io/",
];

/// Cilium's BGP class: its Services' addresses were advertised by Cilium's BGP control plane;
/// served when converted Cilium BGP objects advertise to a peer.
pub const CILIUM_BGP_CLASS: &str = "io.cilium/bgp-control-plane";

/// Checks and (optionally) rewrites every Service; returns the merge patches, ordered. `served`
/// is the class set the output configures; the report lists every class in use against it.
pub fn convert(
    docs: &[&Document],
    pools: &[PoolDraft],
    served: &ServedClasses,
    opts: &Options,
    report: &mut Report,
    errors: &mut Vec<InputError>,
) -> Vec<Value> {
    let mut patches = Vec::new();
    let mut in_use: BTreeMap<Option<String>, usize> = BTreeMap::new();
    for doc in docs {
        match service(doc, pools, served, opts, report) {
            Ok(Some((class, p))) => {
                *in_use.entry(class).or_default() += 1;
                if let Some(p) = p {
                    patches.push(p);
                }
            }
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    report.classes_in_use = in_use
        .into_iter()
        .map(|(class, services)| {
            let served = served.serves(class.as_deref());
            ClassInUse { class, services, served }
        })
        .collect();
    let key = |p: &Value| {
        let get = |k: &str| p.pointer(k).and_then(Value::as_str).unwrap_or_default().to_string();
        (get("/metadata/namespace"), get("/metadata/name"))
    };
    patches.sort_by_key(key);
    patches
}

/// One Service: `None` when it is not of type LoadBalancer, else its class and its patch.
#[allow(clippy::type_complexity)]
fn service(
    doc: &Document,
    pools: &[PoolDraft],
    served: &ServedClasses,
    opts: &Options,
    report: &mut Report,
) -> Result<Option<(Option<String>, Option<Value>)>, InputError> {
    let (subject, name) = subject_of(doc, "Service");
    let mut root = Obj::new(&doc.value, "", &subject)?;
    let mut meta =
        root.obj("metadata")?.ok_or_else(|| root.error("metadata", "required field is missing"))?;
    let namespace = meta.str("namespace")?.unwrap_or("default").to_string();
    let svc_labels = meta.string_map("labels")?;
    let annotations = meta.string_map("annotations")?;
    let mut spec = match root.obj("spec")? {
        Some(s) => s,
        None => Obj::new(&Value::Null, "spec", &subject)?,
    };
    if spec.str("type")? != Some("LoadBalancer") {
        report.ignored(&subject, "spec.type", "not of type LoadBalancer: nothing to convert");
        return Ok(None);
    }
    let class = spec.str("loadBalancerClass")?;
    let has_ingress = doc
        .value
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let is_served = served.serves(class);
    match class {
        Some(c) if c == names::LOAD_BALANCER_CLASS => {
            report.exact(&subject, "spec.loadBalancerClass", None, "FerroLB's own class")
        }
        Some(c) if is_served => report.exact(
            &subject,
            "spec.loadBalancerClass",
            Some(format!("loadBalancerClasses: [{c}]")),
            format!(
                "class {c:?} is served as it is: the converted configuration serves it (ferrolb-values.yaml), so the \
                 Service keeps its class and is not recreated"
            ),
        ),
        Some(c) if c == CILIUM_BGP_CLASS => report.approximate(
            &subject,
            "spec.loadBalancerClass",
            None,
            format!(
                "class {c:?}: Cilium advertised this Service over BGP, but no converted CiliumBGPAdvertisement reaches a \
                 peer, so the output does not serve the class and FerroLB leaves the Service alone"
            ),
            "add Cilium's BGP objects (CiliumBGPClusterConfig, CiliumBGPPeerConfig, CiliumBGPAdvertisement) to the inputs, \
             or keep Cilium's LB-IPAM and BGP control plane for Services of this class",
        ),
        Some(c) if has_ingress => report.approximate(
            &subject,
            "spec.loadBalancerClass",
            None,
            format!("class {c:?}: no converted source served this class, so FerroLB leaves the Service alone"),
            format!(
                "if the old load balancer served it, add its configuration to the inputs (or add {c:?} to loadBalancerClasses \
                 and a pool holding its address); if another load balancer serves it, nothing needs doing"
            ),
        ),
        Some(c) => report.exact(
            &subject,
            "spec.loadBalancerClass",
            None,
            format!("class {c:?}: no converted source served it and FerroLB leaves it alone, as they did"),
        ),
        None if !is_served => report.approximate(
            &subject,
            "spec.loadBalancerClass",
            None,
            "no class, and the converted configuration does not serve Services without a class",
            "set defaultClass: true (--default-class) if FerroLB must serve it",
        ),
        None => {}
    }
    if let Some(ip) = spec.str("loadBalancerIP")? {
        report.exact(
            &subject,
            "spec.loadBalancerIP",
            None,
            format!("requested address {ip}: FerroLB honours the field"),
        );
    }

    let mut patch: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (target, aliases) in ALIASES {
        let present: Vec<&str> = aliases.iter().copied().filter(|k| annotations.contains_key(*k)).collect();
        if present.is_empty() {
            continue;
        }
        let ferrolb_set = annotations.contains_key(*target);
        for (i, key) in present.iter().enumerate() {
            let field = format!("metadata.annotations[{key:?}]");
            let value = &annotations[*key];
            let (mapped, note) = map_value(target, value, pools);
            if let Some(n) = &note {
                report.approximate(
                    &subject,
                    &field,
                    None,
                    n.clone(),
                    "create the pool, or change the annotation to an existing FerroLB pool",
                );
            }
            let superseded = ferrolb_set || i > 0;
            if !opts.rewrite_annotations {
                if *target == ann::POOL && mapped != *value && !ferrolb_set && i == 0 {
                    patch.insert(target.to_string(), Some(mapped.clone()));
                    report.exact(
                        &subject,
                        &field,
                        Some(format!("{target}: {mapped}")),
                        "the pool was renamed: the patch adds the FerroLB annotation with the new name, which wins over this one",
                    );
                } else if note.is_none() {
                    let why = if superseded {
                        format!("kept; {target} or a preferred spelling is also set and wins")
                    } else {
                        "kept: FerroLB honours it natively".to_string()
                    };
                    report.exact(&subject, &field, None, why);
                }
                continue;
            }
            patch.insert(key.to_string(), None);
            if superseded {
                report.exact(
                    &subject,
                    &field,
                    None,
                    format!("removed: {target} or a preferred spelling is set and wins"),
                );
                continue;
            }
            patch.insert(target.to_string(), Some(mapped.clone()));
            let mut text = "switched to the FerroLB annotation".to_string();
            let cross_ns_set = annotations.contains_key(ann::SHARING_CROSS_NAMESPACE)
                || [compat::CILIUM_SHARING_CROSS_NAMESPACE, compat::CILIUM_LEGACY_SHARING_CROSS_NAMESPACE]
                    .iter()
                    .any(|k| annotations.contains_key(*k));
            if *target == ann::SHARING_KEY && !key.contains("cilium") && !cross_ns_set {
                // MetalLB and Deckhouse share an address across namespaces by key alone; with
                // Cilium's (and FerroLB's) rules that takes an explicit opt-in.
                patch.insert(ann::SHARING_CROSS_NAMESPACE.to_string(), Some("*".into()));
                text = format!(
                    "{text}; {} \"*\" added because MetalLB shares across namespaces by key alone",
                    ann::SHARING_CROSS_NAMESPACE
                );
            }
            report.exact(&subject, &field, Some(format!("{target}: {mapped}")), text);
        }
    }
    for key in annotations.keys() {
        let known = ALIASES.iter().any(|(t, a)| t == key || a.contains(&key.as_str()));
        if known || !LB_PREFIXES.iter().any(|p| key.starts_with(p)) {
            continue;
        }
        let field = format!("metadata.annotations[{key:?}]");
        if WRITTEN_BY_CONTROLLERS.contains(&key.as_str()) {
            report.ignored(
                &subject,
                field,
                format!("written by MetalLB; FerroLB writes {} instead", ann::ALLOCATED_FROM_POOL),
            );
        } else {
            report.not_converted(
                &subject,
                field,
                "a load-balancer annotation FerroLB does not know",
                "check what it did and whether the Service still needs it",
            );
        }
    }

    let mut pseudo = svc_labels.clone();
    pseudo.insert(labels::SERVICE_NAMESPACE.into(), namespace.clone());
    pseudo.insert(labels::SERVICE_NAME.into(), name.clone());
    if let Some(c) = class {
        pseudo.insert(labels::LOAD_BALANCER_CLASS.into(), c.to_string());
    }
    let ingress = doc
        .value
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, ing) in ingress.iter().enumerate().filter(|_| is_served) {
        let field = format!("status.loadBalancer.ingress[{i}].ip");
        let Some(text) = ing.get("ip").and_then(Value::as_str) else { continue };
        let Ok(ip) = text.parse::<IpAddr>() else {
            report.approximate(
                &subject,
                field,
                None,
                format!("{text:?} is not an address"),
                "fix or clear the Service's status",
            );
            continue;
        };
        check_address(&subject, &field, ip, pools, &pseudo, report);
    }

    let class = class.map(str::to_string);
    if patch.is_empty() {
        return Ok(Some((class, None)));
    }
    let annotations: Map<String, Value> =
        patch.into_iter().map(|(k, v)| (k, v.map_or(Value::Null, Value::String))).collect();
    Ok(Some((
        class,
        Some(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": { "name": name, "namespace": namespace, "annotations": annotations },
        })),
    )))
}

/// The FerroLB value of an old annotation: pool names go through the rename map. The note says
/// what could not be mapped.
fn map_value(target: &str, value: &str, pools: &[PoolDraft]) -> (String, Option<String>) {
    if target != ann::POOL {
        return (value.to_string(), None);
    }
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for name in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match pools.iter().find(|p| p.tool == SourceTool::MetalLb && p.source_name == name) {
            Some(p) => out.push(p.name.clone()),
            None => {
                missing.push(name.to_string());
                out.push(name.to_string());
            }
        }
    }
    let note = (!missing.is_empty()).then(|| {
        format!("pool(s) {missing:?} are not among the converted pools; FerroLB will find no such pool")
    });
    (out.join(","), note)
}

/// Whether FerroLB's IPAM will keep `ip` for this Service: it must lie in a converted pool, be
/// assignable there, and the pool must accept the Service.
fn check_address(
    subject: &Subject,
    field: &str,
    ip: IpAddr,
    pools: &[PoolDraft],
    svc_labels: &BTreeMap<String, String>,
    report: &mut Report,
) {
    let Some(pool) = pools.iter().find(|p| p.ranges.iter().any(|(_, r)| r.contains(ip))) else {
        report.approximate(
            subject,
            field,
            None,
            format!("{ip} is in no converted pool: FerroLB's IPAM will not keep it and would give the Service a new address"),
            "add a pool that contains this address (was it configured outside the inputs?), or keep this Service on its old load balancer",
        );
        return;
    };
    let target = Some(format!("LoadBalancerIPPool {}", pool.name));
    // The pool may exclude the address from new allocations (avoidBuggyIPs, allowFirstLastIPs:
    // No); the IPAM still keeps it for a Service that holds it (those rules govern new
    // allocations only), so it is said, not counted against the conversion.
    let buggy = matches!(ip, IpAddr::V4(v4) if matches!(v4.octets()[3], 0 | 255));
    let mut excluded = None;
    if pool.spec.avoid_buggy_ips && buggy {
        excluded = Some("it ends in .0 or .255, which the pool's avoidBuggyIPs skips");
    } else if pool.spec.allow_first_last_ips == AllowFirstLastIps::No {
        let edge = pool
            .spec
            .blocks
            .iter()
            .filter(|b| b.cidr.is_some())
            .filter_map(|b| IpRange::from_block(b).ok())
            .any(|b| b.range.len() > 2 && (b.range.first() == ip || b.range.last() == ip));
        if edge {
            excluded = Some(
                "it is the first or last address of a CIDR block, which the pool's allowFirstLastIPs: No reserves",
            );
        }
    }
    let matchers: Vec<Selector> = pool
        .spec
        .service_selector
        .iter()
        .chain(pool.spec.service_selectors.iter())
        .filter_map(|s| Selector::from_label_selector(s).ok())
        .collect();
    if !matchers.is_empty() && !matchers.iter().any(|m| m.matches(svc_labels)) {
        report.approximate(
            subject,
            field,
            target,
            format!("{ip} lies in the pool but the pool's service selectors do not match this Service"),
            "check the pool's selectors against this Service's labels and namespace; the IPAM may move it",
        );
        return;
    }
    let mut note =
        format!("{ip} lies in the converted pool: FerroLB's IPAM keeps it when it imports the Service");
    if let Some(why) = excluded {
        note.push_str(&format!(
            " ({why}: that excludes it from new allocations only; once released it is not handed out again)"
        ));
    }
    report.exact(subject, field, target, note);
}
