//! Cilium's LB-IPAM and L2 announcements: `CiliumLoadBalancerIPPool` (cilium.io/v2alpha1 and v2)
//! and `CiliumL2AnnouncementPolicy`. FerroLB's API is shaped after these, so most fields map
//! one to one; the differences are interface regexes (Cilium matches anywhere in the name,
//! FerroLB anchors) and the interfaces used when none are listed.

use ferrolb_api::{AllowFirstLastIps, IpBlock, IpRange, L2AnnouncementPolicySpec, LoadBalancerIPPoolSpec};
use serde_json::Value;

use crate::convert::{
    Context, PolicyDraft, PoolDraft, SourceTool, read_meta, report_all_not_converted, report_unknown,
};
use crate::error::InputError;
use crate::input::Document;
use crate::obj::{Obj, short};

/// The load-balancer class Cilium's L2 announcements serve (as well as Services without a class).
pub const L2_ANNOUNCER_CLASS: &str = "io.cilium/l2-announcer";

/// `CiliumLoadBalancerIPPool`.
pub fn pool(doc: &Document, cx: &mut Context) -> Result<(), InputError> {
    let (subject, _) = crate::convert::subject_of(doc, "CiliumLoadBalancerIPPool");
    let is_v2alpha1 = doc.value.get("apiVersion").and_then(Value::as_str) == Some("cilium.io/v2alpha1");
    let mut root = Obj::new(&doc.value, "", &subject)?;
    let meta = read_meta(&mut root, &mut cx.report, Some("LoadBalancerIPPool"))?;
    let mut spec = root.obj("spec")?.ok_or_else(|| root.error("spec", "required field is missing"))?;

    let mut blocks = Vec::new();
    let mut ranges = Vec::new();
    let mut wide_cidr = false;
    for key in ["blocks", "cidrs"] {
        for (i, b) in spec.list(key)?.iter().enumerate() {
            let path = format!("spec.{key}[{i}]");
            let mut o = Obj::new(b, &path, &subject)?;
            let block = IpBlock {
                cidr: o.str("cidr")?.map(str::to_string),
                start: o.str("start")?.map(str::to_string),
                stop: o.str("stop")?.map(str::to_string),
            };
            let parsed = IpRange::from_block(&block)
                .map_err(|e| crate::obj::field_error(&subject, &path, e.to_string()))?;
            let out = match parsed.cidr {
                Some(net) => {
                    if parsed.range.len() > 2 {
                        wide_cidr = true;
                    }
                    IpBlock::cidr(net.to_string())
                }
                None => block.clone(),
            };
            let mut note = if key == "cidrs" {
                "the deprecated cidrs field, same meaning as blocks".to_string()
            } else {
                "same block".to_string()
            };
            if let Some(w) = parsed.warning {
                note = format!("{note}; {w} (Cilium masked it the same way)");
            }
            cx.report.exact(&subject, &path, Some(format!("spec.blocks[{}]", blocks.len())), note);
            report_unknown(&o, &mut cx.report);
            ranges.push((path, parsed.range));
            blocks.push(out);
        }
    }
    if blocks.is_empty() {
        return Err(spec.error("blocks", "a pool needs at least one block"));
    }

    let service_selector = spec.selector("serviceSelector")?;
    if service_selector.is_some() {
        cx.report.exact(
            &subject,
            "spec.serviceSelector",
            Some("spec.serviceSelector".into()),
            "same selector, with the same io.kubernetes.service.namespace/name pseudo-labels",
        );
    }
    let allow = match spec.get("allowFirstLastIPs") {
        None => {
            if is_v2alpha1 && wide_cidr {
                cx.report.approximate(
                    &subject,
                    "spec.allowFirstLastIPs",
                    Some("spec.allowFirstLastIPs: Yes".into()),
                    "unset: current Cilium assigns the first and last address of each CIDR (FerroLB's default too), but \
                     Cilium releases before that default changed reserved them",
                    "if your Cilium reserved them, set allowFirstLastIPs: No on the converted pool",
                );
            }
            AllowFirstLastIps::Yes
        }
        Some(v) => {
            let yes = match v {
                Value::Bool(b) => *b,
                Value::String(s) if s.eq_ignore_ascii_case("yes") => true,
                Value::String(s) if s.eq_ignore_ascii_case("no") => false,
                other => {
                    return Err(spec
                        .error("allowFirstLastIPs", format!("expected Yes or No, found {}", short(other))));
                }
            };
            let value = if yes { AllowFirstLastIps::Yes } else { AllowFirstLastIps::No };
            cx.report.exact(
                &subject,
                "spec.allowFirstLastIPs",
                Some(format!("spec.allowFirstLastIPs: {value:?}")),
                "same meaning",
            );
            value
        }
    };
    let disabled = spec.bool("disabled")?.unwrap_or(false);
    if spec.has("disabled") || disabled {
        cx.report.exact(
            &subject,
            "spec.disabled",
            Some(format!("spec.disabled: {disabled}")),
            "same meaning: no new allocations, existing ones stay",
        );
    }
    report_unknown(&spec, &mut cx.report);
    report_unknown(&root, &mut cx.report);
    // Cilium's LB-IPAM and L2 announcer serve this class besides Services without one.
    cx.serve_class(L2_ANNOUNCER_CLASS, &subject);

    cx.pools.push(PoolDraft {
        subject,
        tool: SourceTool::Cilium,
        source_name: meta.name,
        labels: meta.labels,
        spec: LoadBalancerIPPoolSpec {
            blocks,
            service_selector,
            allow_first_last_ips: allow,
            disabled,
            ..LoadBalancerIPPoolSpec::default()
        },
        ranges,
        name: String::new(),
    });
    Ok(())
}

/// `CiliumL2AnnouncementPolicy`.
pub fn l2_policy(doc: &Document, cx: &mut Context) -> Result<(), InputError> {
    let (subject, _) = crate::convert::subject_of(doc, "CiliumL2AnnouncementPolicy");
    let mut root = Obj::new(&doc.value, "", &subject)?;
    let meta = read_meta(&mut root, &mut cx.report, Some("L2AnnouncementPolicy"))?;
    let mut spec = match root.obj("spec")? {
        Some(s) => s,
        None => Obj::new(&Value::Null, "spec", &subject)?,
    };
    let service_selector = spec.selector("serviceSelector")?;
    if service_selector.is_some() {
        cx.report.exact(
            &subject,
            "spec.serviceSelector",
            Some("spec.serviceSelector".into()),
            "same selector",
        );
    }
    let node_selector = spec.selector("nodeSelector")?;
    if node_selector.is_some() {
        cx.report.exact(&subject, "spec.nodeSelector", Some("spec.nodeSelector".into()), "same selector");
    }
    let mut interfaces = Vec::new();
    for (i, re) in spec.str_list("interfaces")?.into_iter().enumerate() {
        let field = format!("spec.interfaces[{i}]");
        if let Err(e) = regex::Regex::new(re) {
            return Err(spec.error(
                &format!("interfaces[{i}]"),
                format!(
                    "{re:?} is not a regular expression FerroLB accepts: {}",
                    e.to_string().lines().last().unwrap_or_default().trim()
                ),
            ));
        }
        let out = unanchored(re);
        let note = if out == re {
            "already anchored at both ends: same matches".to_string()
        } else {
            format!(
                "Cilium matches the expression anywhere in the interface name; FerroLB anchors, so it becomes {out:?} (same matches)"
            )
        };
        cx.report.exact(&subject, field, Some(format!("spec.interfaces[{i}]: {out}")), note);
        interfaces.push(out);
    }
    if interfaces.is_empty() {
        cx.report.approximate(
            &subject,
            "spec.interfaces",
            Some("spec.interfaces (none)".into()),
            "none listed: Cilium announced on the devices Cilium manages; FerroLB announces on every eligible interface \
             (up, ARP-capable, not loopback/veth/CNI/tunnel)",
            "if nodes have interfaces Cilium did not manage that must not answer ARP, list the interfaces",
        );
    }
    let lb = spec.bool("loadBalancerIPs")?.unwrap_or(false);
    let ext = spec.bool("externalIPs")?.unwrap_or(false);
    cx.report.exact(
        &subject,
        "spec.loadBalancerIPs",
        Some(format!("spec.loadBalancerIPs: {lb}")),
        "written out explicitly: unset means false in Cilium but true in FerroLB",
    );
    cx.report.exact(&subject, "spec.externalIPs", Some(format!("spec.externalIPs: {ext}")), "same meaning");
    report_unknown(&spec, &mut cx.report);
    report_unknown(&root, &mut cx.report);

    cx.policies.push(PolicyDraft {
        subject,
        wanted: meta.name,
        spec: L2AnnouncementPolicySpec {
            service_selector,
            node_selector,
            pool_selector: None,
            interfaces,
            load_balancer_ips: lb,
            external_ips: ext,
        },
        pools_by_name: None,
        name: String::new(),
    });
    Ok(())
}

/// Cilium BGP kinds that are not converted: the deprecated `CiliumBGPPeeringPolicy` (Cilium's
/// v1 BGP API) and `CiliumBGPNodeConfigOverride` (per-node settings FerroLB has no place for).
/// The v2 kinds are read by [`crate::cilium_bgp`].
pub fn bgp_object(doc: &Document, cx: &mut Context, kind: &str) -> Result<(), InputError> {
    let (subject, _) = crate::convert::subject_of(doc, kind);
    let mut root = Obj::new(&doc.value, "", &subject)?;
    read_meta(&mut root, &mut cx.report, None)?;
    let (note, check) = match kind {
        "CiliumBGPPeeringPolicy" => (
            "Cilium's deprecated v1 BGP API (virtualRouters/neighbors): ferrolbctl converts the v2 kinds \
             (CiliumBGPClusterConfig, CiliumBGPPeerConfig, CiliumBGPAdvertisement) only",
            "move the policy to Cilium's v2 BGP kinds as Cilium's upgrade notes describe (or write them for this \
             conversion only), then convert those",
        ),
        "CiliumBGPNodeConfigOverride" => (
            "per-node BGP settings (router ID, local port, source addresses per peer): FerroLB takes the router ID \
             from the node's address and has no per-node overrides",
            "if the router needs these router IDs or source addresses, set routerID/sourceAddress on BGPPeers limited \
             to that node by nodeSelectors",
        ),
        _ => (
            "a Cilium BGP kind this version of ferrolbctl does not know",
            "configure FerroLB's BGP objects by hand if it matters",
        ),
    };
    match root.obj("spec")? {
        Some(spec) => report_all_not_converted(&spec, &mut cx.report, note, check),
        None => cx.report.not_converted(&subject, "(object)", note, check),
    }
    report_unknown(&root, &mut cx.report);
    Ok(())
}

/// A Cilium interface expression (matched anywhere in the name) as one FerroLB anchors at both
/// ends: kept when already anchored, otherwise allowed any prefix and suffix.
pub fn unanchored(re: &str) -> String {
    let anchored_end = re.ends_with('$') && !re.ends_with("\\$");
    if re.starts_with('^') && anchored_end && !re.contains('|') {
        re.to_string()
    } else {
        format!(".*(?:{re}).*")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchoring_keeps_cilium_matches() {
        let check = |cilium: &str, name: &str| {
            let ours = regex::Regex::new(&format!("^(?:{})$", unanchored(cilium))).unwrap();
            let theirs = regex::Regex::new(cilium).unwrap();
            assert_eq!(ours.is_match(name), theirs.is_match(name), "{cilium} on {name}");
        };
        for re in ["^eth[0-9]+", "eth0", "^bond0$", "a|^b$", "ens.*"] {
            for name in ["eth0", "eth0.100", "veth1", "bond0", "bond01", "a", "xb", "b", "ens3"] {
                check(re, name);
            }
        }
        assert_eq!(unanchored("^eth0$"), "^eth0$");
    }
}
