//! The live cluster, through the kube API: the client (`--kubeconfig`, `--context`), the source
//! objects `convert --from-cluster` reads (as [`Document`]s, so the conversion stays the same
//! pure function it is for files), and what `status` shows.
//!
//! Kinds whose API the cluster does not serve (a CRD not installed) are skipped and listed as
//! [`Absent`], so the report still says that nothing of that kind was read. Any other API error
//! (discovery, credentials, permissions, an unreachable server) stops the command.

use std::fmt;
use std::path::{Path, PathBuf};

use ferrolb_api::LoadBalancerIPPool;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::discovery::{ApiGroup, Discovery, Scope, verbs};
use kube::{Client, Config, ResourceExt as _};
use serde_json::Value;
use thiserror::Error;

use crate::error::{InputErrors, Origin};
use crate::input::{Document, DocumentSource};
use crate::report::{Report, Status, Subject};

/// Why the cluster could not be read.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// `--kubeconfig` could not be read or has no usable context.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: PathBuf, message: String },
    /// No `--kubeconfig`, and neither KUBECONFIG, ~/.kube/config nor an in-cluster service account
    /// gave a configuration.
    #[error("no cluster configuration ({0}); pass --kubeconfig or set KUBECONFIG")]
    NoConfig(String),
    /// A request failed.
    #[error("{what} at {url}: {message}")]
    Api { what: String, url: String, message: String },
}

/// A connected client and the server it talks to (for messages).
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    pub url: String,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster").field("url", &self.url).finish()
    }
}

/// Builds the client: `kubeconfig` when given; otherwise KUBECONFIG or ~/.kube/config (with
/// `context`), else the in-cluster service account. Nothing is requested yet.
pub async fn connect(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Cluster, ClusterError> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let options = KubeConfigOptions { context: context.map(str::to_string), ..KubeConfigOptions::default() };
    let config = match kubeconfig {
        Some(path) => {
            let fail = |e: &dyn std::error::Error| ClusterError::Kubeconfig {
                path: path.to_path_buf(),
                message: chain(e),
            };
            let kc = Kubeconfig::read_from(path).map_err(|e| fail(&e))?;
            Config::from_custom_kubeconfig(kc, &options).await.map_err(|e| fail(&e))?
        }
        None if context.is_some() => {
            Config::from_kubeconfig(&options).await.map_err(|e| ClusterError::NoConfig(chain(&e)))?
        }
        None => Config::infer().await.map_err(|e| ClusterError::NoConfig(chain(&e)))?,
    };
    let url = config.cluster_url.to_string();
    let client = Client::try_from(config).map_err(|e| ClusterError::Api {
        what: "building the API client".into(),
        url: url.clone(),
        message: chain(&e),
    })?;
    Ok(Cluster { client, url })
}

impl Cluster {
    pub(crate) fn fail(&self, what: impl Into<String>, e: &kube::Error) -> ClusterError {
        ClusterError::Api { what: what.into(), url: self.url.clone(), message: describe(e) }
    }
}

/// An error and its causes on one line (kube wraps connection errors several levels deep).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// What a user can act on: the HTTP code spelled out for the usual failures.
fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => {
            let hint = match s.code {
                401 => {
                    "the API server rejected the credentials (401 Unauthorized); check the kubeconfig's user"
                }
                403 => "forbidden (403): the user may not read this; ferrolbctl needs get and list on it",
                _ => "",
            };
            let detail = if s.message.is_empty() { s.reason.clone() } else { s.message.clone() };
            if hint.is_empty() {
                format!("{} {}: {detail}", s.code, s.reason)
            } else {
                format!("{hint}: {detail}")
            }
        }
        other => chain(other),
    }
}

pub(crate) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Which source objects to read.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Read MetalLB's custom resources only from this namespace (all namespaces when `None`).
    pub metallb_namespace: Option<String>,
    /// MetalLB's legacy ConfigMap (before 0.13): namespace and name.
    pub metallb_config: (String, String),
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self { metallb_namespace: None, metallb_config: ("metallb-system".into(), "config".into()) }
    }
}

/// A source kind that the cluster does not serve, or a named object that does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Absent {
    /// `IPAddressPool.metallb.io`, `ConfigMap metallb-system/config`.
    pub object: String,
    pub note: String,
}

/// Everything read from the cluster: the documents, in a stable order (Namespaces, MetalLB,
/// Deckhouse, Cilium, Services; objects by namespace and name within a kind), and what was not
/// there.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub documents: Vec<Document>,
    pub absent: Vec<Absent>,
}

impl DocumentSource for Snapshot {
    fn documents(&mut self) -> Result<Vec<Document>, InputErrors> {
        Ok(self.documents.clone())
    }
}

impl Snapshot {
    /// Adds one report entry per absent kind or object, before the converted objects' entries,
    /// so the report says what was looked for and not found.
    pub fn note_absent(&self, report: &mut Report) {
        let mut notes = Report::default();
        for a in &self.absent {
            let subject = Subject { origin: Origin::cluster(0), object: a.object.clone() };
            notes.add(&subject, "(object)", Status::Ignored, None, a.note.clone(), None);
        }
        notes.entries.append(&mut report.entries);
        report.entries = notes.entries;
        report.count();
    }
}

/// A custom resource kind `convert` reads.
struct SourceKind {
    group: &'static str,
    kind: &'static str,
}

/// In the order the documents are produced (the order the converter names objects in).
const METALLB_KINDS: &[SourceKind] = &[
    SourceKind { group: "metallb.io", kind: "IPAddressPool" },
    SourceKind { group: "metallb.io", kind: "L2Advertisement" },
    SourceKind { group: "metallb.io", kind: "AddressPool" },
    SourceKind { group: "metallb.io", kind: "BGPAdvertisement" },
    SourceKind { group: "metallb.io", kind: "BGPPeer" },
    SourceKind { group: "metallb.io", kind: "BFDProfile" },
    SourceKind { group: "metallb.io", kind: "Community" },
];
const DECKHOUSE_MODULE_CONFIG: SourceKind = SourceKind { group: "deckhouse.io", kind: "ModuleConfig" };
const OTHER_KINDS: &[SourceKind] = &[
    SourceKind { group: "network.deckhouse.io", kind: "MetalLoadBalancerClass" },
    SourceKind { group: "cilium.io", kind: "CiliumLoadBalancerIPPool" },
    SourceKind { group: "cilium.io", kind: "CiliumL2AnnouncementPolicy" },
];
/// Kinds read when served and otherwise not mentioned: BGP objects the report lists as not
/// converted, present only where BGP was configured.
const OPTIONAL_KINDS: &[SourceKind] = &[
    SourceKind { group: "network.deckhouse.io", kind: "MetalLoadBalancerBGPPeer" },
    SourceKind { group: "network.deckhouse.io", kind: "MetalLoadBalancerPool" },
    SourceKind { group: "network.deckhouse.io", kind: "MetalLoadBalancerConfiguration" },
];
const GROUPS: &[&str] = &["metallb.io", "deckhouse.io", "network.deckhouse.io", "cilium.io"];
/// The Deckhouse module whose ModuleConfig holds MetalLB's settings.
const DECKHOUSE_MODULE: &str = "metallb";
/// MetalLB's list of interfaces never to announce on, next to its legacy ConfigMap.
const METALLB_EXCLUDE_L2: &str = "metallb-excludel2";

/// The kind in any version the group serves, the preferred version first (MetalLB serves
/// `IPAddressPool` in v1beta1 only, while its preferred version can be v1beta2).
fn find_kind(group: &ApiGroup, kind: &str) -> Option<(ApiResource, kube::discovery::ApiCapabilities)> {
    let preferred = group.preferred_version_or_latest().to_string();
    let others: Vec<String> = group.versions().filter(|v| *v != preferred).map(str::to_string).collect();
    std::iter::once(preferred)
        .chain(others)
        .find_map(|v| group.versioned_resources(&v).into_iter().find(|(ar, _)| ar.kind == kind))
}

/// Reads every source object `convert` understands.
pub async fn read_sources(cluster: &Cluster, opts: &ReadOptions) -> Result<Snapshot, ClusterError> {
    let discovery = Discovery::new(cluster.client.clone())
        .filter(GROUPS)
        .run()
        .await
        .map_err(|e| cluster.fail("discovering the API groups", &e))?;
    let mut reader = Reader { cluster, docs: Vec::new(), absent: Vec::new() };

    let namespaces = ApiResource::erase::<Namespace>(&());
    reader.list(&namespaces, None, true).await?;

    for k in METALLB_KINDS {
        reader.list_kind(&discovery, k, opts.metallb_namespace.as_deref(), true).await?;
    }
    let (cm_ns, cm_name) = &opts.metallb_config;
    let config_maps = ApiResource::erase::<ConfigMap>(&());
    reader
        .get(&config_maps, Some(cm_ns), cm_name, true, "MetalLB before 0.13 read its configuration from it")
        .await?;
    reader.get(&config_maps, Some(cm_ns), METALLB_EXCLUDE_L2, false, "").await?;

    match discovery
        .get(DECKHOUSE_MODULE_CONFIG.group)
        .and_then(|g| find_kind(g, DECKHOUSE_MODULE_CONFIG.kind))
    {
        Some((ar, _)) => {
            reader
                .get(&ar, None, DECKHOUSE_MODULE, true, "Deckhouse keeps the metallb module's settings in it")
                .await?
        }
        None => reader.not_served(&DECKHOUSE_MODULE_CONFIG),
    }
    for k in OTHER_KINDS {
        reader.list_kind(&discovery, k, None, true).await?;
    }
    for k in OPTIONAL_KINDS {
        reader.list_kind(&discovery, k, None, false).await?;
    }
    // Cilium's BGP kinds change between releases: every CiliumBGP* kind served.
    if let Some(g) = discovery.get("cilium.io") {
        let mut bgp: Vec<String> = g
            .versions()
            .flat_map(|v| g.versioned_resources(v))
            .map(|(ar, _)| ar.kind)
            .filter(|k| k.starts_with("CiliumBGP"))
            .collect();
        bgp.sort();
        bgp.dedup();
        for kind in bgp {
            if let Some((ar, caps)) = find_kind(g, &kind) {
                reader.list_served(&ar, &caps, None).await?;
            }
        }
    }

    let services = ApiResource::erase::<Service>(&());
    reader.list(&services, None, true).await?;
    reader.docs.retain(|d| {
        d.value.get("kind").and_then(Value::as_str) != Some("Service")
            || d.value.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer")
    });
    for (i, d) in reader.docs.iter_mut().enumerate() {
        d.origin = Origin::cluster(i + 1);
    }
    Ok(Snapshot { documents: reader.docs, absent: reader.absent })
}

struct Reader<'a> {
    cluster: &'a Cluster,
    docs: Vec<Document>,
    absent: Vec<Absent>,
}

impl Reader<'_> {
    fn not_served(&mut self, k: &SourceKind) {
        self.absent.push(Absent {
            object: format!("{}.{}", k.kind, k.group),
            note: format!(
                "not present in the cluster: no {} API serves {} (its CRD is not installed), so there was nothing to read",
                k.group, k.kind
            ),
        });
    }

    async fn list_kind(
        &mut self,
        discovery: &Discovery,
        k: &SourceKind,
        namespace: Option<&str>,
        report_absent: bool,
    ) -> Result<(), ClusterError> {
        match discovery.get(k.group).and_then(|g| find_kind(g, k.kind)) {
            Some((ar, caps)) => self.list_served(&ar, &caps, namespace).await,
            None => {
                if report_absent {
                    self.not_served(k);
                }
                Ok(())
            }
        }
    }

    async fn list_served(
        &mut self,
        ar: &ApiResource,
        caps: &kube::discovery::ApiCapabilities,
        namespace: Option<&str>,
    ) -> Result<(), ClusterError> {
        if !caps.supports_operation(verbs::LIST) {
            return Ok(());
        }
        let namespace = namespace.filter(|_| caps.scope == Scope::Namespaced);
        self.list(ar, namespace, false).await
    }

    /// Every object of a resource, page by page, sorted by namespace and name.
    async fn list(
        &mut self,
        ar: &ApiResource,
        namespace: Option<&str>,
        core: bool,
    ) -> Result<(), ClusterError> {
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(self.cluster.client.clone(), ns, ar),
            None => Api::all_with(self.cluster.client.clone(), ar),
        };
        let what = match namespace {
            Some(ns) => format!("listing {} in namespace {ns}", ar.plural),
            None if core => format!("listing {}", ar.plural),
            None => format!("listing {}.{}", ar.plural, ar.group),
        };
        let mut objects = Vec::new();
        let mut params = ListParams::default().limit(500);
        loop {
            let page = api.list(&params).await.map_err(|e| self.cluster.fail(&what, &e))?;
            objects.extend(page.items);
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        objects.sort_by_key(|o| (o.namespace(), o.name_any()));
        for obj in objects {
            self.push(ar, obj);
        }
        Ok(())
    }

    /// One named object; a missing one is listed as absent when `report_absent` (with `why`
    /// saying what it would have held).
    async fn get(
        &mut self,
        ar: &ApiResource,
        namespace: Option<&str>,
        name: &str,
        report_absent: bool,
        why: &str,
    ) -> Result<(), ClusterError> {
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(self.cluster.client.clone(), ns, ar),
            None => Api::all_with(self.cluster.client.clone(), ar),
        };
        let object = match namespace {
            Some(ns) => format!("{} {ns}/{name}", ar.kind),
            None => format!("{} {name}", ar.kind),
        };
        match api.get(name).await {
            Ok(obj) => self.push(ar, obj),
            Err(e) if is_not_found(&e) => {
                if report_absent {
                    self.absent.push(Absent {
                        object,
                        note: format!("not present in the cluster ({why}), so there was nothing to read"),
                    });
                }
            }
            Err(e) => return Err(self.cluster.fail(format!("reading {object}"), &e)),
        }
        Ok(())
    }

    /// Adds an object as `kubectl get -o yaml` shows it: with apiVersion and kind (list items of
    /// built-in kinds come without), without managedFields.
    fn push(&mut self, ar: &ApiResource, mut obj: DynamicObject) {
        obj.types = Some(kube::api::TypeMeta { api_version: ar.api_version.clone(), kind: ar.kind.clone() });
        obj.metadata.managed_fields = None;
        let value = serde_json::to_value(&obj).expect("an object read from JSON serializes");
        self.docs.push(Document { origin: Origin::cluster(0), value });
    }
}

/// What `status` shows: FerroLB's pools (`None` when the CRD is not installed, as before a
/// migration) and the LoadBalancer Services.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub pools: Option<Vec<LoadBalancerIPPool>>,
    pub services: Vec<Service>,
}

/// Reads FerroLB's pools and every LoadBalancer Service.
pub async fn read_state(cluster: &Cluster) -> Result<State, ClusterError> {
    let pools: Api<LoadBalancerIPPool> = Api::all(cluster.client.clone());
    let pools = match pools.list(&ListParams::default()).await {
        Ok(list) => Some(list.items),
        Err(e) if is_not_found(&e) => None,
        Err(e) => return Err(cluster.fail("listing loadbalancerippools.ferrolb.io", &e)),
    };
    let services: Api<Service> = Api::all(cluster.client.clone());
    let mut list = Vec::new();
    let mut params = ListParams::default().limit(500);
    loop {
        let page = services.list(&params).await.map_err(|e| cluster.fail("listing services", &e))?;
        list.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    list.retain(|s| s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer"));
    list.sort_by_key(|s| (s.namespace(), s.name_any()));
    Ok(State { pools, services: list })
}
