//! Deckhouse's `metallb` module: the `ModuleConfig` named `metallb` (settings version 1, where
//! `addressPools` with `protocol: layer2` were MetalLB pools announced from the speaker nodes;
//! version 2, where layer2 moved to `MetalLoadBalancerClass` and only BGP pools remain; in both,
//! `bgpPeers`, `bgpCommunities` and `protocol: bgp` pools are MetalLB's BGP format) and
//! `MetalLoadBalancerClass` (a pool plus where and how it is announced, chosen by a Service's
//! `spec.loadBalancerClass`, or by default when `isDefault`).

use ferrolb_api::names::labels::LOAD_BALANCER_CLASS;
use ferrolb_api::{L2AnnouncementPolicySpec, LoadBalancerIPPoolSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use serde_json::Value;

use crate::convert::{
    Context, PolicyDraft, PoolDraft, SourceTool, exact_interface, labels_selector, parse_address, read_meta,
    report_all_not_converted, report_unknown,
};
use crate::error::InputError;
use crate::input::Document;
use crate::metallb_bgp;
use crate::metallb_legacy::{KEBAB, pools};
use crate::obj::Obj;

const BGP_CHECK: &str = "keep Deckhouse's BGP speaker for these addresses, or configure FerroLB's BGPPeer and \
                         BGPAdvertisement objects by hand";
const CHART_CHECK: &str = "set the equivalent in the FerroLB chart's values if you need it";

/// `ModuleConfig` (deckhouse.io/v1alpha1); only the one named `metallb` is converted.
pub fn module_config(doc: &Document, cx: &mut Context) -> Result<(), InputError> {
    let (subject, _) = crate::convert::subject_of(doc, "ModuleConfig");
    let mut root = Obj::new(&doc.value, "", &subject)?;
    let meta = read_meta(&mut root, &mut cx.report, None)?;
    if meta.name != "metallb" {
        cx.report.ignored(&subject, "(object)", "configuration of another Deckhouse module");
        root.get("spec");
        return Ok(());
    }
    let mut spec = root.obj("spec")?.ok_or_else(|| root.error("spec", "required field is missing"))?;
    let enabled = spec.bool("enabled")?;
    let version = spec.int("version")?.unwrap_or(1);
    let settings = spec.get("settings").cloned().unwrap_or(Value::Null);
    if enabled == Some(false) {
        cx.report.ignored(
            &subject,
            "spec.enabled",
            "the module is disabled, so MetalLB did not run; its settings are not converted",
        );
        report_unknown(&spec, &mut cx.report);
        report_unknown(&root, &mut cx.report);
        return Ok(());
    }
    if enabled.is_some() {
        cx.report.exact(&subject, "spec.enabled", None, "the module is enabled; its settings are converted");
    }
    if !(1..=3).contains(&version) {
        return Err(
            spec.error("version", format!("settings version {version} is unknown (expected 1, 2 or 3)"))
        );
    }
    cx.report.exact(
        &subject,
        "spec.version",
        None,
        match version {
            1 => "settings version 1: layer2 addressPools are MetalLB pools announced from the speaker nodes",
            _ => "settings version 2 or later: layer2 pools live in MetalLoadBalancerClass objects; addressPools here are BGP pools",
        },
    );

    let mut s = Obj::new(&settings, "spec.settings", &subject)?;
    let mut node_selector: Option<LabelSelector> = None;
    if let Some(mut speaker) = s.obj("speaker")? {
        let ns = speaker.string_map("nodeSelector")?;
        if !ns.is_empty() {
            node_selector = labels_selector(&ns);
            if version == 1 {
                cx.report.exact(
                    &subject,
                    "spec.settings.speaker.nodeSelector",
                    Some("spec.nodeSelector of the layer2 policies".into()),
                    "speakers only ran on these nodes, so only they announced",
                );
            } else {
                cx.report.approximate(
                    &subject,
                    "spec.settings.speaker.nodeSelector",
                    None,
                    "in settings version 2 a MetalLoadBalancerClass's nodeSelector chooses the announcing nodes; this one only placed the speaker DaemonSet",
                    "nodes outside this selector never announced: if a class's nodeSelector is broader, narrow its converted policy's nodeSelector",
                );
            }
        }
        report_all_not_converted(&speaker, &mut cx.report, "a setting of the speaker DaemonSet", CHART_CHECK);
    }
    pools(&mut s, "addressPools", &subject, cx, node_selector.clone(), KEBAB)?;
    // MetalLB's format: peers and community aliases are read like a legacy ConfigMap's; the
    // speaker's nodeSelector also bounded which nodes had BGP sessions, in every version.
    metallb_bgp::legacy_peers(&mut s, "bgpPeers", &subject, node_selector.as_ref(), cx)?;
    metallb_bgp::legacy_communities(&mut s, "bgpCommunities", &subject, cx)?;
    for key in ["nodeSelector", "tolerations"] {
        if s.get(key).is_some() {
            cx.report.not_converted(&subject, s.at(key), "placement of MetalLB's controller", CHART_CHECK);
        }
    }
    if let Some(class) = s.str("loadBalancerClass")? {
        cx.serve_class(class, &subject);
        cx.report.approximate(
            &subject,
            "spec.settings.loadBalancerClass",
            Some(format!("loadBalancerClasses: [{class}]")),
            format!(
                "Services of class {class:?} are served as they are (ferrolb-values.yaml); Deckhouse's MetalLB served only \
                 this class, FerroLB also serves Services without a class"
            ),
            "if another load balancer serves the Services without a class, set defaultClass: false (--default-class=false)",
        );
    }
    report_unknown(&s, &mut cx.report);
    report_unknown(&spec, &mut cx.report);
    report_unknown(&root, &mut cx.report);
    Ok(())
}

/// `MetalLoadBalancerClass` (network.deckhouse.io/v1alpha1): a pool and a policy.
pub fn load_balancer_class(doc: &Document, cx: &mut Context) -> Result<(), InputError> {
    let (subject, _) = crate::convert::subject_of(doc, "MetalLoadBalancerClass");
    let mut root = Obj::new(&doc.value, "", &subject)?;
    let meta = read_meta(&mut root, &mut cx.report, Some("LoadBalancerIPPool and L2AnnouncementPolicy"))?;
    let mut spec = root.obj("spec")?.ok_or_else(|| root.error("spec", "required field is missing"))?;
    let name = meta.name.clone();

    let list = spec.str_list("addressPool")?;
    if list.is_empty() {
        return Err(spec.error("addressPool", "a class needs at least one address range"));
    }
    let mut blocks = Vec::new();
    let mut ranges = Vec::new();
    for (i, a) in list.iter().enumerate() {
        let field = format!("spec.addressPool[{i}]");
        let (block, range, note) = parse_address(&subject, &field, a)?;
        let mut text = format!("{a:?}; every address of it is assignable, as in Deckhouse");
        if let Some(n) = note {
            text = format!("{text}; {n}");
        }
        cx.report.exact(&subject, &field, Some(format!("LoadBalancerIPPool {name} spec.blocks[{i}]")), text);
        blocks.push(block);
        ranges.push((field, range));
    }

    match spec.str("type")? {
        None | Some("L2") => cx.report.exact(&subject, "spec.type", None, "L2: announced with ARP/NDP"),
        Some(other) => {
            cx.report.not_converted(&subject, "spec.type", format!("type {other:?} is not L2"), BGP_CHECK)
        }
    }

    let is_default = spec.bool("isDefault")?.unwrap_or(false);
    let class_req = |op: &str, values: Option<Vec<String>>| LabelSelector {
        match_labels: None,
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: LOAD_BALANCER_CLASS.into(),
            operator: op.into(),
            values,
        }]),
    };
    let mut selectors = vec![class_req("In", Some(vec![name.clone()]))];
    if is_default {
        selectors.push(class_req("DoesNotExist", None));
        cx.report.exact(
            &subject,
            "spec.isDefault",
            Some(format!("LoadBalancerIPPool {name} spec.serviceSelectors[1]")),
            "Services without a loadBalancerClass get addresses from this pool, and FerroLB serves Services without a class by default",
        );
    } else if spec.has("isDefault") {
        cx.report.exact(&subject, "spec.isDefault", None, "false: only Services naming the class use it");
    }
    cx.serve_class(&name, &subject);
    cx.report.exact(
        &subject,
        "(loadBalancerClass)",
        Some(format!("LoadBalancerIPPool {name} spec.serviceSelectors[0], loadBalancerClasses: [{name}]")),
        format!(
            "Services with spec.loadBalancerClass {name:?} chose this class in Deckhouse; FerroLB serves the class \
             (ferrolb-values.yaml), the pool selects them by the {LOAD_BALANCER_CLASS} pseudo-label and the policy \
             announces the pool's addresses from the class's nodes, so they are taken over as they are"
        ),
    );

    let mut interfaces = Vec::new();
    if let Some(mut l2) = spec.obj("l2")? {
        for (i, ifname) in l2.str_list("interfaces")?.into_iter().enumerate() {
            let re = exact_interface(ifname);
            cx.report.exact(
                &subject,
                format!("spec.l2.interfaces[{i}]"),
                Some(format!("L2AnnouncementPolicy {name} spec.interfaces[{i}]: {re}")),
                format!("the exact interface name {ifname:?} as an anchored regular expression"),
            );
            interfaces.push(re);
        }
        report_unknown(&l2, &mut cx.report);
    }
    if interfaces.is_empty() {
        cx.report.exact(
            &subject,
            "spec.l2.interfaces",
            None,
            "none: every interface (FerroLB skips loopback, veth, CNI and tunnel devices)",
        );
    }
    let node_labels = spec.string_map("nodeSelector")?;
    if !node_labels.is_empty() {
        cx.report.exact(
            &subject,
            "spec.nodeSelector",
            Some(format!("L2AnnouncementPolicy {name} spec.nodeSelector")),
            "same labels (matchLabels)",
        );
    }
    if spec.get("tolerations").is_some() {
        cx.report.not_converted(
            &subject,
            "spec.tolerations",
            "tolerations of the speaker pods on this class's nodes",
            "give the FerroLB announcer DaemonSet the same tolerations in the chart values, or it will not run on those nodes",
        );
    }
    report_unknown(&spec, &mut cx.report);
    report_unknown(&root, &mut cx.report);

    let index = cx.pools.len();
    cx.pools.push(PoolDraft {
        subject: subject.clone(),
        tool: SourceTool::Deckhouse,
        source_name: name.clone(),
        labels: meta.labels,
        spec: LoadBalancerIPPoolSpec {
            blocks,
            service_selectors: selectors,
            ..LoadBalancerIPPoolSpec::default()
        },
        ranges,
        name: String::new(),
    });
    cx.policies.push(PolicyDraft {
        subject,
        wanted: name,
        spec: L2AnnouncementPolicySpec {
            node_selector: labels_selector(&node_labels),
            interfaces,
            ..L2AnnouncementPolicySpec::default()
        },
        pools_by_name: Some(vec![index]),
        name: String::new(),
    });
    Ok(())
}

/// Deckhouse's own BGP-mode kinds (`MetalLoadBalancerBGPPeer`, ...): reported as not converted.
pub fn bgp_object(doc: &Document, cx: &mut Context, kind: &str) -> Result<(), InputError> {
    let (subject, _) = crate::convert::subject_of(doc, kind);
    let mut root = Obj::new(&doc.value, "", &subject)?;
    read_meta(&mut root, &mut cx.report, None)?;
    match root.obj("spec")? {
        Some(spec) => report_all_not_converted(
            &spec,
            &mut cx.report,
            "Deckhouse's own BGP-mode kinds are not converted (their fields have no documented MetalLB equivalent \
             ferrolbctl could map); the metallb ModuleConfig's bgpPeers and bgp pools are",
            BGP_CHECK,
        ),
        None => cx.report.not_converted(&subject, "(object)", "Deckhouse BGP-mode configuration", BGP_CHECK),
    }
    report_unknown(&root, &mut cx.report);
    Ok(())
}
