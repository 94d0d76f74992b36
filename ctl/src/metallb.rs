//! MetalLB's CRDs (`metallb.io/v1beta1` IPAddressPool, L2Advertisement; the BGP kinds are read by
//! [`crate::metallb_bgp`]), and the lowering of every MetalLB-shaped source (CRDs, the legacy
//! ConfigMap, Helm `configInline`, Deckhouse's settings) to FerroLB pools, policies and BGP
//! objects.
//!
//! MetalLB semantics kept here (from its controller and speaker):
//! - A pool with `serviceAllocation` is tried first ("pinned") for Services in its namespaces /
//!   matching its selectors, ordered by `priority` (lower first, 0 = unset = last); a pinned pool
//!   is never used for other Services. Pools without `serviceAllocation` come after.
//! - `namespaces` and the namespaces matched by `namespaceSelectors` form one set (OR); the
//!   Service must be in it (when the set is not empty) AND match one `serviceSelectors` entry
//!   (when there are any).
//! - An L2Advertisement with neither `ipAddressPools` nor `ipAddressPoolSelectors` covers every
//!   pool; several advertisements for one pool are a union (a node may announce if any
//!   advertisement selects it, on the union of their interfaces); no `nodeSelectors`: every node;
//!   no `interfaces`: every interface.
//! - A pool no L2Advertisement covers is never announced in L2 mode; one no BGPAdvertisement
//!   covers is never advertised over BGP.

use std::collections::{BTreeMap, BTreeSet};

use ferrolb_api::names::labels::{LOAD_BALANCER_CLASS, SERVICE_NAME, SERVICE_NAMESPACE};
use ferrolb_api::{IpBlock, IpRange, L2AnnouncementPolicySpec, LoadBalancerIPPoolSpec, Selector};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use crate::convert::{
    Context, PolicyDraft, PoolDraft, SourceTool, and_selectors, exact_interface, parse_address, read_meta,
    report_unknown,
};
use crate::error::InputError;
use crate::input::Document;
use crate::obj::Obj;
use crate::report::Subject;

/// MetalLB pools and advertisements from every source, lowered together because
/// advertisements refer to pools by name and by label.
#[derive(Debug, Default)]
pub struct Set {
    pub pools: Vec<MlbPool>,
    pub advs: Vec<MlbAdv>,
}

/// One MetalLB address pool, whatever its source.
#[derive(Debug, Clone)]
pub struct MlbPool {
    pub subject: Subject,
    /// Namespace of the CRD (advertisements only see pools of their own namespace).
    pub namespace: Option<String>,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub blocks: Vec<IpBlock>,
    pub ranges: Vec<(String, IpRange)>,
    pub auto_assign: bool,
    pub avoid_buggy_ips: bool,
    pub allocation: Option<Allocation>,
}

/// `spec.serviceAllocation`.
#[derive(Debug, Clone, Default)]
pub struct Allocation {
    pub priority: i64,
    pub namespaces: Vec<String>,
    pub namespace_selectors: Vec<LabelSelector>,
    pub service_selectors: Vec<LabelSelector>,
}

/// One MetalLB L2Advertisement (or the implicit one of a legacy `layer2` pool).
#[derive(Debug, Clone)]
pub struct MlbAdv {
    pub subject: Subject,
    pub namespace: Option<String>,
    pub name: String,
    /// Path of the spec in the source, for the report (`spec`, `address-pools[0]`).
    pub path: String,
    pub pools: Vec<String>,
    pub pool_selectors: Vec<LabelSelector>,
    pub node_selectors: Vec<LabelSelector>,
    pub interfaces: Vec<String>,
    /// Pools that must be covered, found by index (legacy layer2 pools): set instead of names.
    pub pool_indices: Vec<usize>,
}

/// `IPAddressPool` (metallb.io/v1beta1).
pub fn ip_address_pool(doc: &Document, cx: &mut Context) -> Result<(), InputError> {
    let (subject, _) = crate::convert::subject_of(doc, "IPAddressPool");
    let mut root = Obj::new(&doc.value, "", &subject)?;
    let meta = read_meta(&mut root, &mut cx.report, Some("LoadBalancerIPPool"))?;
    let mut spec = root.obj("spec")?.ok_or_else(|| root.error("spec", "required field is missing"))?;
    let (blocks, ranges) = addresses(&mut spec, "addresses", cx)?;
    let auto_assign = spec.bool("autoAssign")?;
    let avoid = spec.bool("avoidBuggyIPs")?;
    report_flags(cx, &subject, &spec, "autoAssign", auto_assign, "avoidBuggyIPs", avoid);
    let allocation = match spec.obj("serviceAllocation")? {
        None => None,
        Some(mut a) => {
            let alloc = Allocation {
                priority: a.int("priority")?.unwrap_or(0),
                namespaces: a.str_list("namespaces")?.into_iter().map(str::to_string).collect(),
                namespace_selectors: a.selectors("namespaceSelectors")?,
                service_selectors: a.selectors("serviceSelectors")?,
            };
            report_unknown(&a, &mut cx.report);
            Some(alloc)
        }
    };
    report_unknown(&spec, &mut cx.report);
    report_unknown(&root, &mut cx.report);
    cx.metallb.pools.push(MlbPool {
        subject,
        namespace: meta.namespace,
        name: meta.name,
        labels: meta.labels,
        blocks,
        ranges,
        auto_assign: auto_assign.unwrap_or(true),
        avoid_buggy_ips: avoid.unwrap_or(false),
        allocation,
    });
    Ok(())
}

/// Each block's range with the source field it came from.
pub type Ranges = Vec<(String, IpRange)>;

/// Parses a MetalLB address list (CIDRs, `a-b` ranges), reporting each entry.
pub fn addresses(o: &mut Obj<'_>, key: &str, cx: &mut Context) -> Result<(Vec<IpBlock>, Ranges), InputError> {
    let list = o.str_list(key)?;
    if list.is_empty() {
        return Err(o.error(key, "a pool needs at least one address range"));
    }
    let mut blocks = Vec::new();
    let mut ranges = Vec::new();
    for (i, a) in list.iter().enumerate() {
        let field = format!("{}[{i}]", o.at(key));
        let (block, range, note) = parse_address(o.subject(), &field, a)?;
        let target = Some(format!("spec.blocks[{i}]"));
        let kind = if block.cidr.is_some() { "CIDR" } else { "range" };
        let mut text =
            format!("{a:?} as a {kind} block; every address of it is assignable, as in the source");
        if let Some(n) = note {
            text = format!("{text}; {n}");
        }
        cx.report.exact(o.subject(), &field, target, text);
        blocks.push(block);
        ranges.push((field, range));
    }
    Ok((blocks, ranges))
}

/// Reports auto-assign and avoid-buggy-IPs style flags (same meaning in FerroLB).
pub fn report_flags(
    cx: &mut Context,
    subject: &Subject,
    o: &Obj<'_>,
    auto_key: &str,
    auto: Option<bool>,
    buggy_key: &str,
    buggy: Option<bool>,
) {
    if let Some(v) = auto {
        cx.report.exact(
            subject,
            o.at(auto_key),
            Some(format!("spec.autoAssign: {v}")),
            "same meaning: when false, only Services that ask for the pool or one of its addresses use it",
        );
    }
    if let Some(v) = buggy {
        cx.report.exact(
            subject,
            o.at(buggy_key),
            Some(format!("spec.avoidBuggyIPs: {v}")),
            "FerroLB skips IPv4 addresses ending in .0 and .255 the same way",
        );
    }
}

/// `L2Advertisement` (metallb.io/v1beta1).
pub fn l2_advertisement(doc: &Document, cx: &mut Context) -> Result<(), InputError> {
    let (subject, _) = crate::convert::subject_of(doc, "L2Advertisement");
    let mut root = Obj::new(&doc.value, "", &subject)?;
    let meta = read_meta(&mut root, &mut cx.report, Some("L2AnnouncementPolicy"))?;
    let mut spec = match root.obj("spec")? {
        Some(s) => s,
        None => Obj::new(&serde_json::Value::Null, "spec", &subject)?,
    };
    let adv = MlbAdv {
        subject: subject.clone(),
        namespace: meta.namespace,
        name: meta.name,
        path: "spec".into(),
        pools: spec.str_list("ipAddressPools")?.into_iter().map(str::to_string).collect(),
        pool_selectors: spec.selectors("ipAddressPoolSelectors")?,
        node_selectors: spec.selectors("nodeSelectors")?,
        interfaces: spec.str_list("interfaces")?.into_iter().map(str::to_string).collect(),
        pool_indices: Vec::new(),
    };
    report_unknown(&spec, &mut cx.report);
    report_unknown(&root, &mut cx.report);
    cx.metallb.advs.push(adv);
    Ok(())
}

/// Turns every MetalLB pool and advertisement into drafts, with the semantic report entries.
pub fn lower(cx: &mut Context) {
    let set = std::mem::take(&mut cx.metallb);
    let max_priority = set
        .pools
        .iter()
        .filter_map(|p| p.allocation.as_ref().map(|a| a.priority))
        .filter(|&p| p > 0)
        .max()
        .unwrap_or(0);

    let first_draft = cx.pools.len();
    for p in &set.pools {
        let spec = pool_spec(p, max_priority, cx);
        cx.pools.push(PoolDraft {
            subject: p.subject.clone(),
            tool: SourceTool::MetalLb,
            source_name: p.name.clone(),
            labels: p.labels.clone(),
            spec,
            ranges: p.ranges.clone(),
            name: String::new(),
        });
    }

    let mut covered: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for adv in &set.advs {
        lower_adv(adv, &set.pools, first_draft, &mut covered, cx);
    }
    let bgp = std::mem::take(&mut cx.metallb_bgp);
    let covered_bgp = crate::metallb_bgp::lower(bgp, &set.pools, first_draft, cx);
    for (i, p) in set.pools.iter().enumerate() {
        if let Some(advs) = covered_bgp.get(&i) {
            let mut advs = advs.clone();
            advs.dedup();
            cx.report.exact(
                &p.subject,
                "(bgp)",
                None,
                format!(
                    "advertised over BGP by {} ({}), converted to BGPAdvertisements selecting this pool",
                    if advs.len() == 1 {
                        "one advertisement".to_string()
                    } else {
                        format!("{} advertisements", advs.len())
                    },
                    advs.join(", ")
                ),
            );
        }
        match covered.get(&i) {
            None if covered_bgp.contains_key(&i) => cx.report.exact(
                &p.subject,
                "(announcement)",
                None,
                "no L2Advertisement selects this pool, so MetalLB announced it over BGP only; no L2AnnouncementPolicy \
                 is created for it",
            ),
            None => cx.report.exact(
                &p.subject,
                "(announcement)",
                None,
                "no L2Advertisement selects this pool, so MetalLB never announced its addresses over ARP/NDP; \
                 no L2AnnouncementPolicy is created for it and FerroLB will not announce them either",
            ),
            Some(advs) if advs.len() > 1 => cx.report.exact(
                &p.subject,
                "(announcement)",
                None,
                format!(
                    "announced by {} L2Advertisements ({}): union semantics, a node may announce when any of the \
                     converted policies selects it, on the union of their interfaces",
                    advs.len(),
                    advs.join(", ")
                ),
            ),
            Some(_) => {}
        }
    }
}

fn pool_spec(p: &MlbPool, max_priority: i64, cx: &mut Context) -> LoadBalancerIPPoolSpec {
    let mut spec = LoadBalancerIPPoolSpec {
        blocks: p.blocks.clone(),
        auto_assign: p.auto_assign,
        avoid_buggy_ips: p.avoid_buggy_ips,
        ..LoadBalancerIPPoolSpec::default()
    };
    let Some(a) = &p.allocation else { return spec };
    let s = &p.subject;
    let base = "spec.serviceAllocation";

    // Priority: MetalLB tries pinned pools before unpinned ones even without a priority; in
    // FerroLB only a priority orders pools, so an unset one becomes "after every explicit one".
    if a.priority > 0 {
        spec.priority = Some(a.priority.min(i64::from(i32::MAX)) as i32);
        cx.report.exact(
            s,
            format!("{base}.priority"),
            Some(format!("spec.priority: {}", a.priority)),
            "lower first, as in MetalLB",
        );
    } else {
        let synthetic = (max_priority + 1).min(i64::from(i32::MAX)) as i32;
        spec.priority = Some(synthetic);
        cx.report.exact(
            s,
            base,
            Some(format!("spec.priority: {synthetic}")),
            "MetalLB tries pools with serviceAllocation (and no priority) after those with a priority but before \
             pools without serviceAllocation; FerroLB orders by priority alone, so this pool gets the next \
             priority after the highest one given",
        );
    }

    // Namespaces: explicit ones plus those matched by namespaceSelectors.
    let mut ns: BTreeSet<String> = a.namespaces.iter().cloned().collect();
    let mut ns_known = true;
    if !a.namespaces.is_empty() {
        cx.report.exact(
            s,
            format!("{base}.namespaces"),
            Some(format!("spec.serviceSelectors[*] {SERVICE_NAMESPACE} In [...]")),
            format!(
                "namespaces {:?} become a requirement on the Service's namespace pseudo-label",
                a.namespaces
            ),
        );
    }
    for (i, sel) in a.namespace_selectors.iter().enumerate() {
        let field = format!("{base}.namespaceSelectors[{i}]");
        match (&cx.namespaces, Selector::from_label_selector(sel)) {
            (Some(list), Ok(matcher)) if cx.namespaces_complete => {
                let matched: Vec<String> =
                    list.iter().filter(|(_, l)| matcher.matches(l)).map(|(n, _)| n.clone()).collect();
                cx.report.exact(
                    s,
                    &field,
                    Some(format!("spec.serviceSelectors[*] {SERVICE_NAMESPACE} In [...]")),
                    format!(
                        "resolved against the cluster's {} namespaces: matches {:?}, the namespaces MetalLB serves \
                         today; FerroLB pools select by namespace name, so rerun the conversion after relabelling \
                         or adding namespaces",
                        list.len(),
                        matched
                    ),
                );
                ns.extend(matched);
            }
            (Some(list), Ok(matcher)) => {
                let matched: Vec<String> =
                    list.iter().filter(|(_, l)| matcher.matches(l)).map(|(n, _)| n.clone()).collect();
                cx.report.approximate(
                    s,
                    &field,
                    Some(format!("spec.serviceSelectors[*] {SERVICE_NAMESPACE} In [...]")),
                    format!(
                        "resolved against the {} Namespace object(s) given: matches {:?}; FerroLB pools select by \
                         namespace name, so namespaces created or relabelled later are not followed as MetalLB would",
                        list.len(),
                        matched
                    ),
                    "after relabelling or adding namespaces, rerun the conversion (or add them to the pool's serviceSelectors)",
                );
                ns.extend(matched);
            }
            _ => {
                ns_known = false;
                cx.report.approximate(
                    s,
                    &field,
                    None,
                    "no Namespace objects were given, so the namespaces this selector matches are unknown; the pool's \
                     namespace restriction was dropped (broader: Services in any namespace may get its addresses)",
                    "rerun with --from-cluster, or with the cluster's namespaces as input (kubectl get namespaces -o yaml > ns.yaml; -f ns.yaml), \
                     or add `io.kubernetes.service.namespace In [...]` to the pool's serviceSelectors by hand",
                );
            }
        }
    }

    for (i, sel) in a.service_selectors.iter().enumerate() {
        let field = format!("{base}.serviceSelectors[{i}]");
        let pseudo = [SERVICE_NAMESPACE, SERVICE_NAME, LOAD_BALANCER_CLASS];
        let keys: Vec<&str> = sel
            .match_labels
            .iter()
            .flat_map(|m| m.keys().map(String::as_str))
            .chain(sel.match_expressions.iter().flatten().map(|e| e.key.as_str()))
            .filter(|k| pseudo.contains(k))
            .collect();
        if keys.is_empty() {
            cx.report.exact(
                s,
                &field,
                Some(format!("spec.serviceSelectors[{i}]")),
                "same label selector (OR of the list, as in MetalLB)",
            );
        } else {
            cx.report.approximate(
                s,
                &field,
                Some(format!("spec.serviceSelectors[{i}]")),
                format!("uses {keys:?}, which FerroLB fills with the Service's own namespace/name/class (pseudo-labels) instead of the Service's labels"),
                "make sure the Services' real labels of these keys agree with the pseudo-labels, or change the selector",
            );
        }
    }

    let ns_req = (ns_known && !ns.is_empty()).then(|| LabelSelector {
        match_labels: None,
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: SERVICE_NAMESPACE.into(),
            operator: "In".into(),
            values: Some(ns.iter().cloned().collect()),
        }]),
    });
    if !a.service_selectors.is_empty() {
        spec.service_selectors = a
            .service_selectors
            .iter()
            .map(|sel| and_selectors(Some(sel), ns_req.as_ref()).unwrap_or_default())
            .collect();
    } else if let Some(r) = ns_req {
        spec.service_selectors = vec![r];
    } else if ns_known && p.auto_assign {
        // MetalLB indexes pinned pools by namespace and by service selector only: a pool with
        // serviceAllocation but neither (or whose namespaceSelectors matched nothing) is never
        // picked automatically.
        spec.auto_assign = false;
        cx.report.exact(
            s,
            base,
            Some("spec.autoAssign: false".into()),
            "this serviceAllocation selects no namespace and no Service, so MetalLB never assigned from the pool \
             automatically; only Services that name it do",
        );
    }
    spec
}

/// One pool term of an advertisement: converted pools by draft index, or a pool label selector;
/// `(None, None)` selects every pool.
pub(crate) type PoolTerm = (Option<Vec<usize>>, Option<LabelSelector>);

/// The pool references an advertisement has (L2 and BGP advertisements name pools alike).
pub(crate) struct AdvPools<'a> {
    pub subject: &'a Subject,
    pub namespace: &'a Option<String>,
    pub name: &'a str,
    pub path: &'a str,
    pub pools: &'a [String],
    pub pool_selectors: &'a [LabelSelector],
    /// Implicit advertisements of legacy pools: the converted pools' indices.
    pub pool_indices: &'a [usize],
}

/// Resolves an advertisement's `ipAddressPools` and `ipAddressPoolSelectors` into pool terms,
/// notes which source pools it covers and reports each field.
pub(crate) fn pool_terms(
    adv: &AdvPools<'_>,
    pools: &[MlbPool],
    first_draft: usize,
    covered: &mut BTreeMap<usize, Vec<String>>,
    cx: &mut Context,
) -> Vec<PoolTerm> {
    let s = adv.subject;
    let same_ns = |p: &MlbPool| &p.namespace == adv.namespace;
    let mut pool_terms: Vec<PoolTerm> = Vec::new();
    if !adv.pool_indices.is_empty() {
        pool_terms.push((Some(adv.pool_indices.iter().map(|i| first_draft + i).collect()), None));
        for &i in adv.pool_indices {
            covered.entry(i).or_default().push(adv.name.to_string());
        }
    } else if adv.pools.is_empty() && adv.pool_selectors.is_empty() {
        pool_terms.push((None, None));
        for (i, _) in pools.iter().enumerate().filter(|(_, p)| same_ns(p)) {
            covered.entry(i).or_default().push(adv.name.to_string());
        }
        cx.report.exact(
            s,
            format!("{}.ipAddressPools", adv.path),
            Some("spec.poolSelector (none)".into()),
            "no ipAddressPools and no ipAddressPoolSelectors: every pool, as in MetalLB",
        );
    } else {
        if !adv.pools.is_empty() {
            let mut idx = Vec::new();
            for (j, name) in adv.pools.iter().enumerate() {
                let field = format!("{}.ipAddressPools[{j}]", adv.path);
                match pools.iter().position(|p| same_ns(p) && &p.name == name) {
                    Some(i) => {
                        idx.push(first_draft + i);
                        covered.entry(i).or_default().push(adv.name.to_string());
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
                        format!(
                            "pool {name:?} is not among the inputs; MetalLB ignored the reference as well"
                        ),
                        "add the pool's manifest to the inputs if it exists",
                    ),
                }
            }
            if !idx.is_empty() {
                pool_terms.push((Some(idx), None));
            }
        }
        for (j, sel) in adv.pool_selectors.iter().enumerate() {
            let matcher = Selector::from_label_selector(sel).unwrap_or_default();
            for (i, _) in pools.iter().enumerate().filter(|(_, p)| same_ns(p) && matcher.matches(&p.labels)) {
                covered.entry(i).or_default().push(adv.name.to_string());
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
    pool_terms
}

fn lower_adv(
    adv: &MlbAdv,
    pools: &[MlbPool],
    first_draft: usize,
    covered: &mut BTreeMap<usize, Vec<String>>,
    cx: &mut Context,
) {
    let s = &adv.subject;
    // Implicit advertisements of legacy layer2 pools: their source fields are reported where
    // they are read.
    let synthetic = !adv.pool_indices.is_empty();
    let pool_terms = pool_terms(
        &AdvPools {
            subject: s,
            namespace: &adv.namespace,
            name: &adv.name,
            path: &adv.path,
            pools: &adv.pools,
            pool_selectors: &adv.pool_selectors,
            pool_indices: &adv.pool_indices,
        },
        pools,
        first_draft,
        covered,
        cx,
    );

    let node_terms: Vec<Option<LabelSelector>> = if adv.node_selectors.is_empty() {
        vec![None]
    } else {
        for j in (0..adv.node_selectors.len()).filter(|_| !synthetic) {
            cx.report.exact(
                s,
                format!("{}.nodeSelectors[{j}]", adv.path),
                Some("spec.nodeSelector".into()),
                "same node selector; several selectors (OR) become several policies",
            );
        }
        adv.node_selectors.iter().cloned().map(Some).collect()
    };

    let interfaces: Vec<String> = adv.interfaces.iter().map(|i| exact_interface(i)).collect();
    for (j, name) in adv.interfaces.iter().enumerate() {
        cx.report.exact(
            s,
            format!("{}.interfaces[{j}]", adv.path),
            Some(format!("spec.interfaces[{j}]: {}", interfaces[j])),
            format!("the exact interface name {name:?} as an anchored regular expression"),
        );
    }
    if adv.interfaces.is_empty() && !synthetic {
        cx.report.exact(
            s,
            format!("{}.interfaces", adv.path),
            Some("spec.interfaces (none)".into()),
            "every interface; FerroLB, like MetalLB's default exclude list, skips loopback, veth, CNI and tunnel devices",
        );
    }

    let terms: Vec<_> =
        pool_terms.iter().flat_map(|p| node_terms.iter().map(move |n| (p.clone(), n.clone()))).collect();
    if pool_terms.is_empty() {
        return;
    }
    let many = terms.len() > 1;
    if many && !synthetic {
        cx.report.exact(
            s,
            "(object)",
            None,
            format!(
                "split into {} L2AnnouncementPolicies (one per pool term and node selector); FerroLB announces the \
                 union of its policies, which is what one MetalLB advertisement with several selectors means",
                terms.len()
            ),
        );
    }
    for (k, ((by_name, pool_sel), node_sel)) in terms.into_iter().enumerate() {
        let wanted = if many { format!("{}-{}", adv.name, k + 1) } else { adv.name.clone() };
        cx.policies.push(PolicyDraft {
            subject: s.clone(),
            wanted,
            spec: L2AnnouncementPolicySpec {
                service_selector: None,
                node_selector: node_sel,
                pool_selector: pool_sel,
                interfaces: interfaces.clone(),
                load_balancer_ips: true,
                external_ips: false,
            },
            pools_by_name: by_name,
            name: String::new(),
        });
    }
}
