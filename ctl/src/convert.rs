//! The conversion: documents in, FerroLB objects, Service patches and a report out. Pure: no
//! I/O, so every case is a fixture test.
//!
//! Each source module turns its objects into drafts ([`PoolDraft`], [`PolicyDraft`], and the BGP
//! drafts of [`crate::bgp`]) and report entries; this module classifies documents, names the
//! drafts, links policies and advertisements to pools (and peers to BFD profiles, advertisements
//! to peers) by name, checks for overlapping addresses and orders the output.

use std::collections::BTreeMap;

use ferrolb_api::range::ParsedBlock;
use ferrolb_api::{
    BFDProfile, BGPAdvertisement, BGPPeer, IpBlock, IpRange, L2AnnouncementPolicy, L2AnnouncementPolicySpec,
    LoadBalancerIPPool, LoadBalancerIPPoolSpec, ServedClasses,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use serde_json::Value;

use crate::bgp::{AdvertisementDraft, BfdDraft, PeerDraft};
use crate::error::{InputError, InputErrors};
use crate::input::Document;
use crate::names::{MAX_NAME, MAX_POOL_NAME, Namer, POOL_NAME_LABEL};
use crate::obj::{Obj, field_error};
use crate::report::{Rename, Report, ServedClass, Subject};
use crate::{cilium, cilium_bgp, deckhouse, metallb, metallb_bgp, metallb_legacy, services};

/// Conversion options (the command line's flags that change the result).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Emit patches that switch Services from MetalLB/Cilium/Deckhouse annotations to
    /// `ferrolb.io/*` ones. Without it, those annotations are kept (FerroLB honours them) and
    /// only references to renamed pools are patched.
    pub rewrite_annotations: bool,
    /// The Namespace documents are every namespace of the cluster, read live (`--from-cluster`):
    /// MetalLB namespaceSelectors resolved against them are exact, not approximate.
    pub namespaces_complete: bool,
}

/// The result of a conversion.
#[derive(Debug, Clone)]
pub struct Conversion {
    /// Pools, ordered by name.
    pub pools: Vec<LoadBalancerIPPool>,
    /// Policies, ordered by name.
    pub policies: Vec<L2AnnouncementPolicy>,
    /// BFD profiles, ordered by name.
    pub bfd_profiles: Vec<BFDProfile>,
    /// BGP peers, ordered by name.
    pub bgp_peers: Vec<BGPPeer>,
    /// BGP advertisements, ordered by name.
    pub bgp_advertisements: Vec<BGPAdvertisement>,
    /// JSON merge patches for Services (`null` removes an annotation), ordered by namespace/name.
    pub service_patches: Vec<Value>,
    /// The load-balancer classes FerroLB must serve for the migration (`ferrolb-values.yaml`).
    pub classes: ServedClasses,
    pub report: Report,
}

/// Which tool a converted pool came from: annotations name pools within their tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceTool {
    MetalLb,
    Deckhouse,
    Cilium,
}

/// A pool about to be written.
#[derive(Debug, Clone)]
pub struct PoolDraft {
    pub subject: Subject,
    /// The tool the pool was converted from.
    pub tool: SourceTool,
    /// The name the source tool (and the Services' annotations) knew the pool by.
    pub source_name: String,
    pub labels: BTreeMap<String, String>,
    pub spec: LoadBalancerIPPoolSpec,
    /// Each block's range and the source field it came from (for overlap errors).
    pub ranges: Vec<(String, IpRange)>,
    /// The output name; set when names are handed out.
    pub name: String,
}

/// A policy about to be written.
#[derive(Debug, Clone)]
pub struct PolicyDraft {
    pub subject: Subject,
    pub wanted: String,
    pub spec: L2AnnouncementPolicySpec,
    /// Pools (indices into the pool drafts) this policy announces, selected by name once names
    /// are final. `None`: `spec.pool_selector` stands as it is.
    pub pools_by_name: Option<Vec<usize>>,
    pub name: String,
}

/// What the source modules write into.
#[derive(Debug, Default)]
pub struct Context {
    pub report: Report,
    pub pools: Vec<PoolDraft>,
    pub policies: Vec<PolicyDraft>,
    pub errors: Vec<InputError>,
    /// Namespaces (name, labels) from the inputs, for MetalLB's namespaceSelectors. `None` when
    /// no Namespace object was given.
    pub namespaces: Option<Vec<(String, BTreeMap<String, String>)>>,
    /// [`Options::namespaces_complete`].
    pub namespaces_complete: bool,
    /// MetalLB pools and advertisements from every MetalLB-shaped source, lowered together.
    pub metallb: metallb::Set,
    /// MetalLB-shaped BGP objects, lowered with the MetalLB pools.
    pub metallb_bgp: metallb_bgp::BgpSet,
    /// Cilium's BGP objects, lowered together (cluster configs name peer configs, which select
    /// advertisements by label).
    pub cilium_bgp: cilium_bgp::Set,
    pub bgp_peers: Vec<PeerDraft>,
    pub bgp_advs: Vec<AdvertisementDraft>,
    pub bgp_bfd: Vec<BfdDraft>,
    /// Load-balancer classes the sources served, each with the first source that did: FerroLB
    /// must serve them too, so their Services are taken over as they are.
    pub classes: BTreeMap<String, String>,
}

impl Context {
    /// Records that a source served Services of `class` (the report says `subject` did).
    pub fn serve_class(&mut self, class: &str, subject: &Subject) {
        if class != ferrolb_api::names::LOAD_BALANCER_CLASS {
            self.classes
                .entry(class.to_string())
                .or_insert_with(|| format!("{} ({})", subject.object, subject.origin));
        }
    }

    /// The classes to serve: the defaults plus every class a source served.
    pub fn served(&self) -> ServedClasses {
        ServedClasses::new(true, self.classes.keys().cloned())
    }

    /// Records an error and goes on: all errors are reported in one run.
    pub fn fail(&mut self, e: InputError) {
        self.errors.push(e);
    }
}

/// Converts `docs`. Errors in the inputs are all collected and returned together.
pub fn convert(docs: &[Document], opts: &Options) -> Result<Conversion, InputErrors> {
    let mut cx = Context { namespaces_complete: opts.namespaces_complete, ..Context::default() };
    let mut service_docs = Vec::new();

    for doc in docs {
        if is_kind(doc, "v1", "Namespace") {
            let name = doc.value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            let labels: BTreeMap<String, String> = doc
                .value
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
                .unwrap_or_default();
            let mut labels = labels;
            // The API server sets this label on every namespace; objects written by hand may
            // lack it, and namespace selectors often use it.
            labels.entry("kubernetes.io/metadata.name".into()).or_insert_with(|| name.to_string());
            cx.namespaces.get_or_insert_with(Vec::new).push((name.to_string(), labels));
        }
    }

    for doc in docs {
        if let Err(e) = dispatch(doc, &mut cx, &mut service_docs) {
            cx.fail(e);
        }
    }
    metallb::lower(&mut cx);
    cilium_bgp::lower(&mut cx);
    order_by_origin(&mut cx);

    name_objects(&mut cx);
    check_overlaps(&mut cx);

    let served = cx.served();
    let patches = services::convert(&service_docs, &cx.pools, &served, opts, &mut cx.report, &mut cx.errors);

    if !cx.errors.is_empty() {
        return Err(InputErrors(cx.errors));
    }
    Ok(finish(cx, patches))
}

fn is_kind(doc: &Document, api_version: &str, kind: &str) -> bool {
    doc.value.get("apiVersion").and_then(Value::as_str) == Some(api_version)
        && doc.value.get("kind").and_then(Value::as_str) == Some(kind)
}

fn dispatch<'a>(
    doc: &'a Document,
    cx: &mut Context,
    services: &mut Vec<&'a Document>,
) -> Result<(), InputError> {
    let v = &doc.value;
    if !v.is_object() {
        return Err(InputError::Document {
            origin: doc.origin.clone(),
            message: format!(
                "expected a mapping (a Kubernetes object or Helm values), found {}",
                crate::obj::type_name(v)
            ),
        });
    }
    let api_version = v.get("apiVersion").and_then(Value::as_str);
    let kind = v.get("kind").and_then(Value::as_str);
    let (api_version, kind) = match (api_version, kind) {
        (Some(a), Some(k)) => (a, k),
        (None, None) => return metallb_legacy::helm_values(doc, cx),
        _ => {
            return Err(InputError::Document {
                origin: doc.origin.clone(),
                message: "a Kubernetes object needs both apiVersion and kind".into(),
            });
        }
    };
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    match (group, kind) {
        ("", "Namespace") => Ok(()),
        ("", "Service") => {
            services.push(doc);
            Ok(())
        }
        ("", "ConfigMap") => metallb_legacy::config_map(doc, cx),
        ("metallb.io", "IPAddressPool") => metallb::ip_address_pool(doc, cx),
        ("metallb.io", "L2Advertisement") => metallb::l2_advertisement(doc, cx),
        ("metallb.io", "AddressPool") => metallb_legacy::address_pool(doc, cx),
        ("metallb.io", "BGPPeer") => metallb_bgp::bgp_peer(doc, cx),
        ("metallb.io", "BGPAdvertisement") => metallb_bgp::bgp_advertisement(doc, cx),
        ("metallb.io", "BFDProfile") => metallb_bgp::bfd_profile(doc, cx),
        ("metallb.io", "Community") => metallb_bgp::community(doc, cx),
        ("metallb.io", "ServiceL2Status" | "ServiceBGPStatus" | "ConfigurationState" | "BGPSessionState") => {
            status_object(doc, cx, kind, "written by MetalLB to show its state")
        }
        ("deckhouse.io", "ModuleConfig") => deckhouse::module_config(doc, cx),
        ("network.deckhouse.io", "MetalLoadBalancerClass") => deckhouse::load_balancer_class(doc, cx),
        (
            "network.deckhouse.io",
            "MetalLoadBalancerBGPPeer" | "MetalLoadBalancerPool" | "MetalLoadBalancerConfiguration",
        ) => deckhouse::bgp_object(doc, cx, kind),
        ("network.deckhouse.io", "SDNInternalL2LBService") => {
            status_object(doc, cx, kind, "Deckhouse's internal per-Service bookkeeping")
        }
        ("cilium.io", "CiliumLoadBalancerIPPool") => cilium::pool(doc, cx),
        ("cilium.io", "CiliumL2AnnouncementPolicy") => cilium::l2_policy(doc, cx),
        ("cilium.io", "CiliumBGPClusterConfig") => cilium_bgp::cluster_config(doc, cx),
        ("cilium.io", "CiliumBGPPeerConfig") => cilium_bgp::peer_config(doc, cx),
        ("cilium.io", "CiliumBGPAdvertisement") => cilium_bgp::advertisement(doc, cx),
        ("cilium.io", "CiliumBGPNodeConfig") => {
            status_object(doc, cx, kind, "written by Cilium's operator from the CiliumBGPClusterConfigs")
        }
        ("cilium.io", k) if k.starts_with("CiliumBGP") => cilium::bgp_object(doc, cx, k),
        _ => Err(InputError::UnknownKind {
            origin: doc.origin.clone(),
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        }),
    }
}

/// Objects that only mirror another controller's state: listed, nothing to convert.
fn status_object(doc: &Document, cx: &mut Context, kind: &str, why: &str) -> Result<(), InputError> {
    let (subject, _) = subject_of(doc, kind);
    cx.report.ignored(&subject, "(object)", format!("{why}; FerroLB keeps its own state"));
    Ok(())
}

/// The subject of a Kubernetes object and its name.
pub fn subject_of(doc: &Document, kind: &str) -> (Subject, String) {
    let name = doc.value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("(unnamed)").to_string();
    let ns = doc.value.pointer("/metadata/namespace").and_then(Value::as_str);
    (Subject::new(&doc.origin, kind, ns, &name), name)
}

/// Name, namespace and labels of a source object, with every metadata field reported.
#[derive(Debug, Clone)]
pub struct Meta {
    pub name: String,
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// Reads `metadata`, reports each of its fields, and marks `apiVersion`, `kind` and `status` of
/// the root as handled. `target` is what the object becomes (for the report), `None` when it
/// becomes nothing.
pub fn read_meta(root: &mut Obj<'_>, report: &mut Report, target: Option<&str>) -> Result<Meta, InputError> {
    root.get("apiVersion");
    root.get("kind");
    let subject = root.subject().clone();
    let mut m = root.obj("metadata")?.ok_or_else(|| root.error("metadata", "required field is missing"))?;
    let name = m.required_str("name")?.to_string();
    let namespace = m.str("namespace")?.map(str::to_string);
    let labels = m.string_map("labels")?;
    if let Some(t) = target {
        report.exact(
            &subject,
            "metadata.name",
            Some(format!("{t} metadata.name")),
            "name kept (see the renames, if any)",
        );
        if let Some(ns) = &namespace {
            report.exact(
                &subject,
                "metadata.namespace",
                None,
                format!(
                    "FerroLB objects are cluster-scoped; namespace {ns:?} only located the source object"
                ),
            );
        }
        if !labels.is_empty() {
            report.exact(&subject, "metadata.labels", Some(format!("{t} metadata.labels")), "labels copied");
        }
    }
    if m.get("annotations").is_some() {
        report.ignored(
            &subject,
            "metadata.annotations",
            "annotations of the source object are tool bookkeeping; not copied",
        );
    }
    let server_set: Vec<String> = m.rest().into_iter().map(|(k, _)| k).collect();
    if !server_set.is_empty() {
        report.ignored(&subject, server_set.join(", "), "set by the API server");
    }
    if root.get("status").is_some() {
        report.ignored(&subject, "status", "observed state written by the source controller");
    }
    Ok(Meta { name, namespace, labels })
}

/// Reports every field of `obj` nobody read as not converted: fields this version does not know.
pub fn report_unknown(obj: &Obj<'_>, report: &mut Report) {
    for (field, value) in obj.rest() {
        report.not_converted(
            obj.subject(),
            field,
            format!(
                "unknown field (value {}): ferrolbctl does not know it, so it was not converted",
                crate::obj::short(value)
            ),
            "check whether this field changes the source's behaviour; if it does, configure FerroLB by hand",
        );
    }
}

/// Reports every field below `obj` as not converted with one reason (BGP objects and the like).
pub fn report_all_not_converted(obj: &Obj<'_>, report: &mut Report, note: &str, check: &str) {
    for (field, _) in obj.rest() {
        report.not_converted(obj.subject(), field, note, check);
    }
}

/// Parses one address string (CIDR, `a-b` range or single address) of a source pool.
pub fn parse_address(
    subject: &Subject,
    field: &str,
    value: &str,
) -> Result<(IpBlock, IpRange, Option<String>), InputError> {
    let err = |e: ferrolb_api::RangeError| field_error(subject, field, e.to_string());
    let v = value.trim();
    if v.contains('/') {
        let ParsedBlock { range, cidr, warning } = IpRange::from_block(&IpBlock::cidr(v)).map_err(err)?;
        let net = cidr.expect("a cidr block has a prefix");
        let note = warning.map(|w| format!("{w} (the source masked it the same way)"));
        Ok((IpBlock::cidr(net.to_string()), range, note))
    } else {
        let range = IpRange::parse(v).map_err(err)?;
        let block = if range.first() == range.last() {
            IpBlock { start: Some(range.first().to_string()), ..IpBlock::default() }
        } else {
            IpBlock::range(range.first().to_string(), range.last().to_string())
        };
        Ok((block, range, None))
    }
}

/// `^name$` with regex metacharacters escaped: an exact interface name as a FerroLB interface
/// pattern (anchored, so `eth0` does not also match `eth0.100` or `veth0`).
pub fn exact_interface(name: &str) -> String {
    format!("^{}$", regex::escape(name))
}

/// The AND of two selectors (`None` is "everything").
pub fn and_selectors(a: Option<&LabelSelector>, b: Option<&LabelSelector>) -> Option<LabelSelector> {
    match (a, b) {
        (None, None) => None,
        (Some(x), None) | (None, Some(x)) => Some(x.clone()),
        (Some(x), Some(y)) => {
            let mut labels = x.match_labels.clone().unwrap_or_default();
            let mut exprs = x.match_expressions.clone().unwrap_or_default();
            for (k, v) in y.match_labels.iter().flatten() {
                match labels.get(k) {
                    // Two different values for one key can never both hold: keep both as
                    // expressions so the result stays unsatisfiable, as the AND is.
                    Some(existing) if existing != v => exprs.push(LabelSelectorRequirement {
                        key: k.clone(),
                        operator: "In".into(),
                        values: Some(vec![v.clone()]),
                    }),
                    _ => {
                        labels.insert(k.clone(), v.clone());
                    }
                }
            }
            exprs.extend(y.match_expressions.clone().unwrap_or_default());
            Some(LabelSelector {
                match_labels: if labels.is_empty() { None } else { Some(labels) },
                match_expressions: if exprs.is_empty() { None } else { Some(exprs) },
            })
        }
    }
}

/// A selector from `matchLabels` alone (`None` when empty).
pub fn labels_selector(labels: &BTreeMap<String, String>) -> Option<LabelSelector> {
    (!labels.is_empty())
        .then(|| LabelSelector { match_labels: Some(labels.clone()), match_expressions: None })
}

/// Puts drafts in input order (MetalLB pools are lowered after everything else was read), so
/// that when two objects want one name, the one read first keeps it.
fn order_by_origin(cx: &mut Context) {
    let mut order: Vec<usize> = (0..cx.pools.len()).collect();
    order.sort_by(|&a, &b| cx.pools[a].subject.origin.cmp(&cx.pools[b].subject.origin));
    let mut new_index = vec![0; order.len()];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new;
    }
    let mut old: Vec<Option<PoolDraft>> = std::mem::take(&mut cx.pools).into_iter().map(Some).collect();
    cx.pools = order.iter().map(|&i| old[i].take().expect("each index once")).collect();
    for pol in &mut cx.policies {
        if let Some(idx) = &mut pol.pools_by_name {
            for i in idx.iter_mut() {
                *i = new_index[*i];
            }
        }
    }
    cx.policies.sort_by(|a, b| a.subject.origin.cmp(&b.subject.origin));
    for adv in &mut cx.bgp_advs {
        if let Some(idx) = &mut adv.pools_by_name {
            for i in idx.iter_mut() {
                *i = new_index[*i];
            }
        }
    }
}

/// A selector on the pool-name label for these pools (by index).
fn pools_by_name_selector(idx: &[usize], pools: &[PoolDraft]) -> LabelSelector {
    let mut values: Vec<String> = idx.iter().map(|&i| pools[i].name.clone()).collect();
    values.sort();
    values.dedup();
    if values.len() == 1 {
        LabelSelector {
            match_labels: Some(BTreeMap::from([(POOL_NAME_LABEL.to_string(), values.remove(0))])),
            match_expressions: None,
        }
    } else {
        LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: POOL_NAME_LABEL.into(),
                operator: "In".into(),
                values: Some(values),
            }]),
        }
    }
}

/// Hands out a name per draft of one kind and records the renames.
fn claim_names<'a>(
    report: &mut Report,
    kind: &str,
    drafts: impl Iterator<Item = (&'a Subject, &'a str, &'a mut String)>,
) {
    let mut names = Namer::default();
    for (subject, wanted, name) in drafts {
        let (n, why) = names.claim(wanted, MAX_NAME);
        if let Some(reason) = why {
            let from = if subject.object.ends_with(&format!(" {wanted}"))
                || subject.object.ends_with(&format!("/{wanted}"))
            {
                subject.object.clone()
            } else {
                format!("{} ({kind} {wanted:?})", subject.object)
            };
            report.renames.push(Rename {
                source: subject.origin.to_string(),
                from,
                to: format!("{kind} {n}"),
                reason,
            });
        }
        *name = n;
    }
}

/// Names the BGP drafts and fills in their references to each other and to pools.
fn name_bgp(cx: &mut Context) {
    claim_names(
        &mut cx.report,
        "BFDProfile",
        cx.bgp_bfd
            .iter_mut()
            .map(|BfdDraft { subject, wanted, name, .. }| (&*subject, wanted.as_str(), name)),
    );
    claim_names(
        &mut cx.report,
        "BGPPeer",
        cx.bgp_peers
            .iter_mut()
            .map(|PeerDraft { subject, wanted, name, .. }| (&*subject, wanted.as_str(), name)),
    );
    claim_names(
        &mut cx.report,
        "BGPAdvertisement",
        cx.bgp_advs
            .iter_mut()
            .map(|AdvertisementDraft { subject, wanted, name, .. }| (&*subject, wanted.as_str(), name)),
    );
    for p in &mut cx.bgp_peers {
        p.spec.bfd_profile = p.bfd.map(|i| cx.bgp_bfd[i].name.clone());
    }
    for a in &mut cx.bgp_advs {
        if let Some(idx) = &a.peers {
            let mut names: Vec<String> = idx.iter().map(|&i| cx.bgp_peers[i].name.clone()).collect();
            names.sort();
            names.dedup();
            a.spec.peers = names;
        }
        if let Some(idx) = &a.pools_by_name {
            a.spec.pool_selector = Some(pools_by_name_selector(idx, &cx.pools));
        }
    }
}

/// Hands out final names, records renames, and fills policies' pool selectors.
fn name_objects(cx: &mut Context) {
    let mut pool_names = Namer::default();
    for p in &mut cx.pools {
        let (name, why) = pool_names.claim(&p.source_name, MAX_POOL_NAME);
        if let Some(reason) = why {
            cx.report.renames.push(Rename {
                source: p.subject.origin.to_string(),
                from: p.subject.object.clone(),
                to: format!("LoadBalancerIPPool {name}"),
                reason,
            });
        }
        p.name = name;
        p.labels.insert(POOL_NAME_LABEL.to_string(), p.name.clone());
    }
    let mut policy_names = Namer::default();
    for pol in &mut cx.policies {
        let (name, why) = policy_names.claim(&pol.wanted, MAX_NAME);
        if let Some(reason) = why {
            cx.report.renames.push(Rename {
                source: pol.subject.origin.to_string(),
                from: format!("{} (policy {:?})", pol.subject.object, pol.wanted),
                to: format!("L2AnnouncementPolicy {name}"),
                reason,
            });
        }
        pol.name = name;
        if let Some(idx) = &pol.pools_by_name {
            pol.spec.pool_selector = Some(pools_by_name_selector(idx, &cx.pools));
        }
    }
    name_bgp(cx);
}

/// Overlapping addresses would be a `PoolConflict` in FerroLB (one pool disabled): the source
/// cannot have meant that, so it is an input error.
fn check_overlaps(cx: &mut Context) {
    let all: Vec<(usize, &String, &IpRange)> =
        cx.pools.iter().enumerate().flat_map(|(i, p)| p.ranges.iter().map(move |(f, r)| (i, f, r))).collect();
    for (a, (pi, fi, ri)) in all.iter().enumerate() {
        for (pj, fj, rj) in all.iter().skip(a + 1) {
            if ri.overlaps(rj) {
                let first = ip_max(ri.first(), rj.first());
                let last = ip_min(ri.last(), rj.last());
                let shared = IpRange::new(first, last).map(|r| r.to_string()).unwrap_or_default();
                let describe = |i: usize, f: &str, r: &IpRange| {
                    let p = &cx.pools[i];
                    format!("{}: {}: {} ({r})", p.subject.origin, p.subject.object, f)
                };
                let e = InputError::Overlap {
                    first: describe(*pi, fi, ri),
                    second: describe(*pj, fj, rj),
                    shared,
                };
                cx.errors.push(e);
            }
        }
    }
}

fn ip_max(a: std::net::IpAddr, b: std::net::IpAddr) -> std::net::IpAddr {
    if ferrolb_api::range::ip_to_u128(a) >= ferrolb_api::range::ip_to_u128(b) { a } else { b }
}

fn ip_min(a: std::net::IpAddr, b: std::net::IpAddr) -> std::net::IpAddr {
    if ferrolb_api::range::ip_to_u128(a) <= ferrolb_api::range::ip_to_u128(b) { a } else { b }
}

fn finish(mut cx: Context, service_patches: Vec<Value>) -> Conversion {
    let mut pools: Vec<LoadBalancerIPPool> = cx
        .pools
        .iter()
        .map(|p| {
            let mut pool = LoadBalancerIPPool::new(&p.name, p.spec.clone());
            pool.metadata.labels = Some(p.labels.clone());
            pool
        })
        .collect();
    pools.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut policies: Vec<L2AnnouncementPolicy> =
        cx.policies.iter().map(|p| L2AnnouncementPolicy::new(&p.name, p.spec.clone())).collect();
    policies.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut bfd_profiles: Vec<BFDProfile> =
        cx.bgp_bfd.iter().map(|d| BFDProfile::new(&d.name, d.spec.clone())).collect();
    bfd_profiles.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut bgp_peers: Vec<BGPPeer> =
        cx.bgp_peers.iter().map(|d| BGPPeer::new(&d.name, d.spec.clone())).collect();
    bgp_peers.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut bgp_advertisements: Vec<BGPAdvertisement> =
        cx.bgp_advs.iter().map(|d| BGPAdvertisement::new(&d.name, d.spec.clone())).collect();
    bgp_advertisements.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    cx.report.summary.pools = pools.len();
    cx.report.summary.policies = policies.len();
    cx.report.summary.bfd_profiles = bfd_profiles.len();
    cx.report.summary.bgp_peers = bgp_peers.len();
    cx.report.summary.bgp_advertisements = bgp_advertisements.len();
    cx.report.summary.service_patches = service_patches.len();
    cx.report.served_classes = cx
        .classes
        .iter()
        .map(|(class, why)| ServedClass { class: class.clone(), why: why.clone() })
        .collect();
    cx.report.count();
    Conversion {
        pools,
        policies,
        bfd_profiles,
        bgp_peers,
        bgp_advertisements,
        service_patches,
        classes: cx.served(),
        report: cx.report,
    }
}
