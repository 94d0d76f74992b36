//! The resource types kube-sim serves: the built-in ones FerroLB uses, and every CRD created
//! through `apiextensions.k8s.io/v1`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::table::{self, Column};
use crate::types::{self, TypeInfo};

/// One served resource (a group/version/plural).
#[derive(Clone)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub namespaced: bool,
    /// Whether `/status` is a subresource: then main writes ignore status and status writes
    /// ignore everything else.
    pub status_subresource: bool,
    /// `openAPIV3Schema` of a CRD version: incoming objects are pruned, defaulted and validated.
    pub schema: Option<Value>,
    /// Printer columns of a CRD version; built-in kinds have their own (see `table`).
    pub columns: Option<Vec<Column>>,
    /// List semantics for patches and server-side apply.
    pub type_info: Arc<dyn TypeInfo>,
    /// Custom resources carry `metadata.generation`, bumped on spec changes.
    pub is_custom: bool,
}

impl ResourceType {
    /// Whether a PUT without `metadata.resourceVersion` overwrites whatever is stored (the
    /// strategy's `AllowUnconditionalUpdate`). Leases and custom resources refuse it: a lock or an
    /// object whose writers must not lose each other's changes is only updated from a version read.
    pub fn allows_unconditional_update(&self) -> bool {
        !(self.is_custom || (self.group == "coordination.k8s.io" && self.kind == "Lease"))
    }
}

impl std::fmt::Debug for ResourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.key())
    }
}

/// Identifies a stored resource: group and plural (one stored version per resource).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResKey {
    pub group: String,
    pub plural: String,
}

impl std::fmt::Display for ResKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.plural)
        } else {
            write!(f, "{}.{}", self.plural, self.group)
        }
    }
}

impl ResourceType {
    pub fn key(&self) -> ResKey {
        ResKey { group: self.group.clone(), plural: self.plural.clone() }
    }

    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// The `<plural>.<group>` resource name used in error messages (`services`, `leases.coordination.k8s.io`).
    pub fn qualified(&self) -> String {
        self.key().to_string()
    }

    fn builtin(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool, status: bool) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_ascii_lowercase(),
            short_names: Vec::new(),
            categories: Vec::new(),
            namespaced,
            status_subresource: status,
            schema: None,
            columns: None,
            type_info: Arc::from(types::builtin(group, kind)),
            is_custom: false,
        }
    }

    fn short(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Reads the served, storage version of a CRD; `None` when it has none.
    pub fn from_crd(crd: &Value) -> Option<Self> {
        let spec = crd.get("spec")?;
        let names = spec.get("names")?;
        let group = spec.get("group")?.as_str()?.to_string();
        let version = spec
            .get("versions")?
            .as_array()?
            .iter()
            .find(|v| v.get("storage").and_then(Value::as_bool).unwrap_or(false))
            .or_else(|| spec.get("versions")?.as_array()?.first())?;
        let strings = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
                .unwrap_or_default()
        };
        let plural = names.get("plural")?.as_str()?.to_string();
        let kind = names.get("kind")?.as_str()?.to_string();
        let schema = version.pointer("/schema/openAPIV3Schema").cloned();
        let type_info: Arc<dyn TypeInfo> = match &schema {
            Some(s) => Arc::new(types::from_openapi_schema(s)),
            None => Arc::from(types::builtin("", "")),
        };
        Some(Self {
            group,
            version: version.get("name")?.as_str()?.to_string(),
            singular: names
                .get("singular")
                .and_then(Value::as_str)
                .map(String::from)
                .unwrap_or_else(|| kind.to_ascii_lowercase()),
            kind,
            plural,
            short_names: strings(names.get("shortNames")),
            categories: strings(names.get("categories")),
            namespaced: spec.get("scope").and_then(Value::as_str) == Some("Namespaced"),
            status_subresource: version.pointer("/subresources/status").is_some(),
            columns: Some(table::columns_from_crd_version(version)),
            schema,
            type_info,
            is_custom: true,
        })
    }

    /// An entry of an `APIResourceList`.
    pub fn discovery_entries(&self) -> Vec<Value> {
        let verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
        let mut main = json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": verbs,
        });
        if !self.short_names.is_empty() {
            main["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            main["categories"] = json!(self.categories);
        }
        let mut out = vec![main];
        if self.status_subresource {
            out.push(json!({
                "name": format!("{}/status", self.plural),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        out
    }
}

/// Every resource type served now, by (group, version, plural).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    types: BTreeMap<(String, String, String), Arc<ResourceType>>,
}

impl Registry {
    /// The built-in types FerroLB and its tests use.
    pub fn builtin() -> Self {
        let mut r = Registry::default();
        let core = [
            ResourceType::builtin("", "v1", "Namespace", "namespaces", false, true).short(&["ns"]),
            ResourceType::builtin("", "v1", "Node", "nodes", false, true).short(&["no"]),
            ResourceType::builtin("", "v1", "Service", "services", true, true).short(&["svc"]),
            ResourceType::builtin("", "v1", "Endpoints", "endpoints", true, false).short(&["ep"]),
            ResourceType::builtin("", "v1", "Event", "events", true, false).short(&["ev"]),
            ResourceType::builtin("", "v1", "ConfigMap", "configmaps", true, false).short(&["cm"]),
            ResourceType::builtin("", "v1", "Secret", "secrets", true, false),
            ResourceType::builtin("", "v1", "Pod", "pods", true, true).short(&["po"]),
            ResourceType::builtin("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", true, false),
            ResourceType::builtin("coordination.k8s.io", "v1", "Lease", "leases", true, false),
            ResourceType::builtin("events.k8s.io", "v1", "Event", "events", true, false).short(&["ev"]),
            ResourceType::builtin(
                "apiextensions.k8s.io",
                "v1",
                "CustomResourceDefinition",
                "customresourcedefinitions",
                false,
                true,
            )
            .short(&["crd", "crds"]),
        ];
        for t in core {
            r.insert(t);
        }
        r
    }

    pub fn insert(&mut self, t: ResourceType) {
        self.types.insert((t.group.clone(), t.version.clone(), t.plural.clone()), Arc::new(t));
    }

    pub fn remove(&mut self, group: &str, plural: &str) {
        self.types.retain(|(g, _, p), _| !(g == group && p == plural));
    }

    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.types.get(&(group.to_string(), version.to_string(), plural.to_string())).cloned()
    }

    /// All types, ordered by group, version and plural.
    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceType>> {
        self.types.values()
    }

    /// Group name → its versions, for `/apis`.
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (g, v, _) in self.types.keys() {
            if g.is_empty() {
                continue;
            }
            let versions = out.entry(g.clone()).or_default();
            if !versions.contains(v) {
                versions.push(v.clone());
            }
        }
        out
    }
}
