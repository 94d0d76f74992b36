//! How each resource type's lists and maps merge: the facts server-side apply and strategic merge patch
//! need and that a real API server reads from Go struct tags (`+listType`, `+patchStrategy`) or from a
//! CRD's `openAPIV3Schema` (`x-kubernetes-list-type`).
//!
//! Paths are field names from the object root with list items skipped: `["spec", "ports"]` names the
//! ports list and `["spec", "ports", "targetPort"]` a field inside every port.

use serde_json::Value;

/// How server-side apply treats a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole and owned as one field.
    Atomic,
    /// A set of scalars: each value is owned on its own.
    Set,
    /// A list of objects identified by these key fields: each item is owned on its own.
    Map(Vec<String>),
}

/// How a strategic merge patch treats a list (`patchStrategy` / `patchMergeKey` on the Go field).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StrategicList {
    /// No patch strategy: the patch's list replaces the live one.
    Replace,
    /// `patchStrategy=merge` on a list of scalars: the union of both lists.
    MergePrimitives,
    /// `patchStrategy=merge` with `patchMergeKey`: items are merged by this single key field.
    MergeByKey(String),
}

/// Merge semantics of one resource type.
pub trait TypeInfo: Send + Sync {
    /// The server-side apply list type of the list at `path`; lists nobody declared are atomic.
    fn list_type(&self, path: &[&str]) -> ListType;

    /// Whether `application/strategic-merge-patch+json` is accepted (it is not for custom resources).
    fn strategic_merge_supported(&self) -> bool;

    /// The strategic merge patch strategy of the list at `path`.
    ///
    /// Defaults to what `list_type` implies; built-in types override it where Kubernetes' patch tags
    /// differ from the list type (Service ports merge on `port` alone, EndpointSlice addresses replace).
    fn strategic_list(&self, path: &[&str]) -> StrategicList {
        match self.list_type(path) {
            ListType::Atomic => StrategicList::Replace,
            ListType::Set => StrategicList::MergePrimitives,
            ListType::Map(keys) if keys.len() == 1 => StrategicList::MergeByKey(keys[0].clone()),
            ListType::Map(_) => StrategicList::Replace,
        }
    }

    /// Whether the map (or struct) at `path` is owned as one field by server-side apply
    /// (`+mapType=atomic`, `x-kubernetes-map-type: atomic`).
    fn map_is_atomic(&self, _path: &[&str]) -> bool {
        false
    }

    /// The value a missing key field of a map-list item stands for, such as `protocol: TCP` in Service
    /// ports, so that an applied port without a protocol matches the defaulted live one.
    fn list_map_key_default(&self, _path: &[&str], _key: &str) -> Option<Value> {
        None
    }
}

/// Lets a `Box<dyn TypeInfo>` or `Arc<dyn TypeInfo>` be passed where a `&dyn TypeInfo` is expected.
macro_rules! forward_type_info {
    ($($pointer:ident)::+) => {
        impl<T: TypeInfo + ?Sized> TypeInfo for $($pointer)::+<T> {
            fn list_type(&self, path: &[&str]) -> ListType {
                (**self).list_type(path)
            }
            fn strategic_merge_supported(&self) -> bool {
                (**self).strategic_merge_supported()
            }
            fn strategic_list(&self, path: &[&str]) -> StrategicList {
                (**self).strategic_list(path)
            }
            fn map_is_atomic(&self, path: &[&str]) -> bool {
                (**self).map_is_atomic(path)
            }
            fn list_map_key_default(&self, path: &[&str], key: &str) -> Option<Value> {
                (**self).list_map_key_default(path, key)
            }
        }
    };
}

forward_type_info!(Box);
forward_type_info!(std::sync::Arc);

#[derive(Clone, Copy, Debug)]
enum Ssa {
    Atomic,
    Set,
    Map(&'static [&'static str]),
}

#[derive(Clone, Copy, Debug)]
enum Smp {
    Replace,
    Primitives,
    Key(&'static str),
}

/// One list of a built-in type: its apply semantics and its strategic merge semantics.
#[derive(Clone, Copy, Debug)]
struct ListRule {
    path: &'static [&'static str],
    ssa: Ssa,
    smp: Smp,
}

const fn rule(path: &'static [&'static str], ssa: Ssa, smp: Smp) -> ListRule {
    ListRule { path, ssa, smp }
}

const TYPE_KEY: &[&str] = &["type"];

/// `ObjectMeta`, shared by every kind, custom resources included.
const METADATA: &[ListRule] = &[
    rule(&["metadata", "finalizers"], Ssa::Set, Smp::Primitives),
    rule(&["metadata", "ownerReferences"], Ssa::Map(&["uid"]), Smp::Key("uid")),
    rule(&["metadata", "managedFields"], Ssa::Atomic, Smp::Replace),
];

const SERVICE: &[ListRule] = &[
    // Apply keys ports by (port, protocol) but the older patch tag merges on port alone.
    rule(&["spec", "ports"], Ssa::Map(&["port", "protocol"]), Smp::Key("port")),
    rule(&["spec", "externalIPs"], Ssa::Atomic, Smp::Replace),
    rule(&["spec", "clusterIPs"], Ssa::Atomic, Smp::Replace),
    rule(&["spec", "ipFamilies"], Ssa::Atomic, Smp::Replace),
    rule(&["spec", "loadBalancerSourceRanges"], Ssa::Atomic, Smp::Replace),
    rule(&["status", "conditions"], Ssa::Map(TYPE_KEY), Smp::Key("type")),
    rule(&["status", "loadBalancer", "ingress"], Ssa::Atomic, Smp::Replace),
];

const NODE: &[ListRule] = &[
    rule(&["spec", "podCIDRs"], Ssa::Set, Smp::Primitives),
    rule(&["spec", "taints"], Ssa::Atomic, Smp::Replace),
    rule(&["status", "addresses"], Ssa::Map(TYPE_KEY), Smp::Key("type")),
    rule(&["status", "conditions"], Ssa::Map(TYPE_KEY), Smp::Key("type")),
];

const NAMESPACE: &[ListRule] = &[
    rule(&["spec", "finalizers"], Ssa::Atomic, Smp::Replace),
    rule(&["status", "conditions"], Ssa::Map(TYPE_KEY), Smp::Key("type")),
];

const ENDPOINT_SLICE: &[ListRule] = &[
    rule(&["endpoints"], Ssa::Atomic, Smp::Replace),
    rule(&["ports"], Ssa::Atomic, Smp::Replace),
    // Only reachable if `endpoints` stops being atomic, kept so the table matches Kubernetes.
    rule(&["endpoints", "addresses"], Ssa::Set, Smp::Replace),
];

const NAME_KEY: &[&str] = &["name"];

const POD: &[ListRule] = &[
    rule(&["spec", "containers"], Ssa::Map(NAME_KEY), Smp::Key("name")),
    rule(&["spec", "initContainers"], Ssa::Map(NAME_KEY), Smp::Key("name")),
    rule(
        &["spec", "containers", "ports"],
        Ssa::Map(&["containerPort", "protocol"]),
        Smp::Key("containerPort"),
    ),
    rule(
        &["spec", "initContainers", "ports"],
        Ssa::Map(&["containerPort", "protocol"]),
        Smp::Key("containerPort"),
    ),
    rule(&["spec", "containers", "env"], Ssa::Map(NAME_KEY), Smp::Key("name")),
    rule(&["spec", "initContainers", "env"], Ssa::Map(NAME_KEY), Smp::Key("name")),
    rule(&["spec", "containers", "volumeMounts"], Ssa::Map(&["mountPath"]), Smp::Key("mountPath")),
    rule(&["spec", "initContainers", "volumeMounts"], Ssa::Map(&["mountPath"]), Smp::Key("mountPath")),
    rule(&["spec", "volumes"], Ssa::Map(NAME_KEY), Smp::Key("name")),
    rule(&["status", "conditions"], Ssa::Map(TYPE_KEY), Smp::Key("type")),
    rule(&["status", "podIPs"], Ssa::Map(&["ip"]), Smp::Key("ip")),
    rule(&["status", "hostIPs"], Ssa::Map(&["ip"]), Smp::Key("ip")),
];

const CRD: &[ListRule] = &[
    rule(&["spec", "versions"], Ssa::Atomic, Smp::Replace),
    rule(&["status", "conditions"], Ssa::Map(TYPE_KEY), Smp::Key("type")),
];

/// Type information for a built-in kind (see [`builtin`]). Lists not in its table are atomic and replace.
#[derive(Clone, Copy, Debug)]
pub struct Builtin {
    lists: &'static [ListRule],
    atomic_maps: &'static [&'static [&'static str]],
    /// (list path, key field, value) for map-list keys the API server defaults.
    key_defaults: &'static [(&'static [&'static str], &'static str, &'static str)],
}

const fn with_lists(lists: &'static [ListRule]) -> Builtin {
    Builtin { lists, atomic_maps: &[], key_defaults: &[] }
}

impl Builtin {
    fn rule(&self, path: &[&str]) -> Option<&'static ListRule> {
        METADATA.iter().chain(self.lists).find(|r| r.path == path)
    }
}

impl TypeInfo for Builtin {
    fn list_type(&self, path: &[&str]) -> ListType {
        match self.rule(path).map(|r| r.ssa) {
            Some(Ssa::Set) => ListType::Set,
            Some(Ssa::Map(keys)) => ListType::Map(keys.iter().map(|k| k.to_string()).collect()),
            Some(Ssa::Atomic) | None => ListType::Atomic,
        }
    }

    fn strategic_merge_supported(&self) -> bool {
        true
    }

    fn strategic_list(&self, path: &[&str]) -> StrategicList {
        match self.rule(path).map(|r| r.smp) {
            Some(Smp::Primitives) => StrategicList::MergePrimitives,
            Some(Smp::Key(key)) => StrategicList::MergeByKey(key.to_string()),
            Some(Smp::Replace) | None => StrategicList::Replace,
        }
    }

    fn map_is_atomic(&self, path: &[&str]) -> bool {
        self.atomic_maps.contains(&path)
    }

    fn list_map_key_default(&self, path: &[&str], key: &str) -> Option<Value> {
        self.key_defaults.iter().find(|(p, k, _)| *p == path && *k == key).map(|(_, _, v)| Value::from(*v))
    }
}

/// The type information of a built-in kind, by API group (`""` or `"core"` for core/v1) and kind.
///
/// Kinds without a table here (Pod's rarely used lists aside, any kind kube-sim does not model) get
/// `ObjectMeta`'s rules and atomic lists, with strategic merge patch accepted as for every built-in
/// type. An empty kind gives [`Unstructured`], for custom resources without a schema.
pub fn builtin(group: &str, kind: &str) -> Box<dyn TypeInfo> {
    let group = if group == "core" { "" } else { group };
    Box::new(match (group, kind) {
        (_, "") => return Box::new(Unstructured),
        ("", "Service") => Builtin {
            lists: SERVICE,
            atomic_maps: &[&["spec", "selector"]],
            key_defaults: &[(&["spec", "ports"], "protocol", "TCP")],
        },
        ("", "Pod") => Builtin {
            lists: POD,
            atomic_maps: &[],
            key_defaults: &[
                (&["spec", "containers", "ports"], "protocol", "TCP"),
                (&["spec", "initContainers", "ports"], "protocol", "TCP"),
            ],
        },
        ("", "Node") => with_lists(NODE),
        ("", "Namespace") => with_lists(NAMESPACE),
        ("discovery.k8s.io", "EndpointSlice") => with_lists(ENDPOINT_SLICE),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => with_lists(CRD),
        // Endpoints, Event, ConfigMap, Secret, Lease and events.k8s.io Event only have atomic lists.
        _ => with_lists(&[]),
    })
}

/// Type information for a custom resource, read from its CRD version's `openAPIV3Schema`.
///
/// `metadata` follows `ObjectMeta`'s rules whatever the schema says, as on a real server.
#[derive(Clone, Debug)]
pub struct SchemaTypes {
    schema: Value,
}

/// Reads `x-kubernetes-list-type`, `x-kubernetes-list-map-keys` and `x-kubernetes-map-type` from a
/// structural schema, following `properties`, `items` and `additionalProperties`.
pub fn from_openapi_schema(schema: &Value) -> SchemaTypes {
    SchemaTypes { schema: schema.clone() }
}

impl SchemaTypes {
    fn node(&self, path: &[&str]) -> Option<&Value> {
        let mut node = &self.schema;
        for field in path {
            node = skip_items(node);
            node = match node.get("properties").and_then(|p| p.get(*field)) {
                Some(child) => child,
                None => node.get("additionalProperties").filter(|a| a.is_object())?,
            };
        }
        Some(node)
    }
}

/// Lists are transparent in paths, so a path step into a list schema continues at its items.
fn skip_items(mut node: &Value) -> &Value {
    while let Some(items) = node.get("items").filter(|i| i.is_object()) {
        node = items;
    }
    node
}

impl TypeInfo for SchemaTypes {
    fn list_type(&self, path: &[&str]) -> ListType {
        if path.first() == Some(&"metadata") {
            return builtin_metadata().list_type(path);
        }
        let Some(node) = self.node(path) else { return ListType::Atomic };
        match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => ListType::Set,
            Some("map") => {
                let keys: Vec<String> = node
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|keys| keys.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default();
                // A map list without keys is rejected by a real server's CRD validation.
                if keys.is_empty() { ListType::Atomic } else { ListType::Map(keys) }
            }
            _ => ListType::Atomic,
        }
    }

    fn strategic_merge_supported(&self) -> bool {
        false
    }

    fn map_is_atomic(&self, path: &[&str]) -> bool {
        if path.first() == Some(&"metadata") {
            return false;
        }
        self.node(path)
            .and_then(|n| n.get("x-kubernetes-map-type"))
            .and_then(Value::as_str)
            .is_some_and(|t| t == "atomic")
    }

    fn list_map_key_default(&self, path: &[&str], key: &str) -> Option<Value> {
        let node = self.node(path)?;
        skip_items(node).get("properties")?.get(key)?.get("default").cloned()
    }
}

/// Type information for objects of unknown kinds: `ObjectMeta`'s rules, every other list atomic, and no
/// strategic merge patch (as for a custom resource).
#[derive(Clone, Copy, Debug, Default)]
pub struct Unstructured;

fn builtin_metadata() -> Builtin {
    with_lists(&[])
}

impl TypeInfo for Unstructured {
    fn list_type(&self, path: &[&str]) -> ListType {
        builtin_metadata().list_type(path)
    }

    fn strategic_merge_supported(&self) -> bool {
        false
    }
}

/// Generators of arbitrary objects and patches for the property tests of `patch` and `apply`: small
/// values built from the field names and directives those modules give meaning to.
#[cfg(test)]
pub(crate) mod arbitrary {
    use proptest::prelude::*;
    use serde_json::Value;

    const KEYS: &[&str] = &[
        "metadata",
        "spec",
        "status",
        "ports",
        "port",
        "protocol",
        "finalizers",
        "labels",
        "type",
        "conditions",
        "selector",
        "externalIPs",
        "a",
        "b",
        "$patch",
        "$retainKeys",
        "$deleteFromPrimitiveList/finalizers",
        "$setElementOrder/ports",
        "$setElementOrder/finalizers",
        "managedFields",
        "manager",
        "operation",
        "fieldsV1",
        "subresource",
        "f:spec",
        "f:ports",
        "k:{\"port\":80}",
        "v:\"a\"",
        "i:0",
        ".",
    ];
    const STRINGS: &[&str] =
        &["a", "b", "TCP", "UDP", "replace", "delete", "merge", "Update", "Apply", "80", "/spec"];

    pub fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-2i64..100).prop_map(Value::from),
            prop::sample::select(STRINGS).prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 48, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(prop::sample::select(KEYS).prop_map(String::from), inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// An object value (what the API server would have after decoding a request body).
    pub fn object() -> impl Strategy<Value = Value> {
        prop::collection::btree_map(prop::sample::select(KEYS).prop_map(String::from), value(), 0..5)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    /// Plausible Service configurations: a few ports, labels and finalizers out of small pools, so that
    /// successive applies by different managers overlap.
    pub fn service() -> impl Strategy<Value = Value> {
        let port = (
            prop::sample::select(&[80u16, 443, 53][..]),
            prop::option::of(prop::sample::select(&["TCP", "UDP"][..])),
            prop::option::of(8000u16..8002),
        )
            .prop_map(|(port, protocol, target)| {
                let mut item = serde_json::json!({"port": port});
                if let Some(protocol) = protocol {
                    item["protocol"] = protocol.into();
                }
                if let Some(target) = target {
                    item["targetPort"] = target.into();
                }
                item
            });
        let ports = prop::collection::vec(port, 0..3).prop_map(|ports| {
            // Apply configurations must not repeat keys; keep the first of each (port, protocol).
            let mut seen = Vec::new();
            ports
                .into_iter()
                .filter(|p| {
                    let key = (p["port"].clone(), p.get("protocol").cloned().unwrap_or("TCP".into()));
                    let fresh = !seen.contains(&key);
                    seen.push(key);
                    fresh
                })
                .collect::<Vec<_>>()
        });
        let labels = prop::collection::btree_map(
            prop::sample::select(&["app", "tier", "zone"][..]),
            prop::sample::select(&["x", "y"][..]),
            0..3,
        );
        let finalizers = prop::sample::subsequence(&["a", "b", "c"][..], 0..3);
        let kind = prop::option::of(prop::sample::select(&["ClusterIP", "LoadBalancer"][..]));
        (ports, labels, finalizers, kind).prop_map(|(ports, labels, finalizers, kind)| {
            let mut svc = serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {}});
            if !ports.is_empty() {
                svc["spec"]["ports"] = ports.into();
            }
            if !labels.is_empty() {
                svc["metadata"]["labels"] = serde_json::to_value(labels).unwrap_or_default();
            }
            if !finalizers.is_empty() {
                svc["metadata"]["finalizers"] = finalizers.into();
            }
            if let Some(kind) = kind {
                svc["spec"]["type"] = kind.into();
            }
            svc
        })
    }

    /// JSON patch documents, mostly well formed.
    pub fn json_patch() -> impl Strategy<Value = Value> {
        let op = prop::sample::select(&["add", "remove", "replace", "move", "copy", "test", "frob"][..]);
        let path = prop::sample::select(
            &["", "/spec", "/spec/ports/0", "/spec/ports/-", "/a/b", "/ports/1", "x"][..],
        );
        let operation = (op, path.clone(), path, value()).prop_map(|(op, path, from, value)| {
            serde_json::json!({"op": op, "path": path, "from": from, "value": value})
        });
        prop_oneof![prop::collection::vec(operation, 0..4).prop_map(Value::Array), value()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_lists_are_common_to_all_kinds() {
        for info in [builtin("", "ConfigMap"), builtin("coordination.k8s.io", "Lease"), builtin("", "Pod")] {
            assert_eq!(info.list_type(&["metadata", "finalizers"]), ListType::Set);
            assert_eq!(info.list_type(&["metadata", "ownerReferences"]), ListType::Map(vec!["uid".into()]));
            assert_eq!(info.list_type(&["metadata", "managedFields"]), ListType::Atomic);
            assert_eq!(info.strategic_list(&["metadata", "finalizers"]), StrategicList::MergePrimitives);
            assert_eq!(
                info.strategic_list(&["metadata", "ownerReferences"]),
                StrategicList::MergeByKey("uid".into())
            );
        }
        assert_eq!(Unstructured.list_type(&["metadata", "finalizers"]), ListType::Set);
        assert!(!Unstructured.strategic_merge_supported());
    }

    #[test]
    fn service_ports_keys_differ_between_apply_and_strategic_merge() {
        let svc = builtin("", "Service");
        assert_eq!(svc.list_type(&["spec", "ports"]), ListType::Map(vec!["port".into(), "protocol".into()]));
        assert_eq!(svc.strategic_list(&["spec", "ports"]), StrategicList::MergeByKey("port".into()));
        assert_eq!(svc.list_map_key_default(&["spec", "ports"], "protocol"), Some(json!("TCP")));
        assert_eq!(svc.list_map_key_default(&["spec", "ports"], "port"), None);
        assert_eq!(svc.list_type(&["spec", "externalIPs"]), ListType::Atomic);
        assert_eq!(svc.list_type(&["status", "loadBalancer", "ingress"]), ListType::Atomic);
        assert_eq!(svc.list_type(&["status", "conditions"]), ListType::Map(vec!["type".into()]));
        assert!(svc.map_is_atomic(&["spec", "selector"]));
        assert!(!svc.map_is_atomic(&["metadata", "labels"]));
        assert!(svc.strategic_merge_supported());
    }

    #[test]
    fn node_and_endpoint_slice_rules() {
        let node = builtin("core", "Node");
        assert_eq!(node.strategic_list(&["status", "addresses"]), StrategicList::MergeByKey("type".into()));
        assert_eq!(node.list_type(&["spec", "taints"]), ListType::Atomic);
        assert_eq!(node.strategic_list(&["spec", "taints"]), StrategicList::Replace);
        assert_eq!(node.list_map_key_default(&["status", "addresses"], "type"), None);
        let slice = builtin("discovery.k8s.io", "EndpointSlice");
        assert_eq!(slice.list_type(&["endpoints"]), ListType::Atomic);
        assert_eq!(slice.strategic_list(&["endpoints", "addresses"]), StrategicList::Replace);
        let pod = builtin("", "Pod");
        assert_eq!(
            pod.list_type(&["spec", "containers", "ports"]),
            ListType::Map(vec!["containerPort".into(), "protocol".into()])
        );
        assert_eq!(
            pod.list_map_key_default(&["spec", "containers", "ports"], "protocol"),
            Some(json!("TCP"))
        );
        assert_eq!(pod.strategic_list(&["spec", "containers"]), StrategicList::MergeByKey("name".into()));
        // Unmodelled built-in kinds still take strategic merge patches; schema-less custom kinds do not.
        let unknown = builtin("apps", "Deployment");
        assert!(unknown.strategic_merge_supported());
        assert_eq!(unknown.list_type(&["spec", "ports"]), ListType::Atomic);
        assert!(!builtin("", "").strategic_merge_supported());
    }

    #[test]
    fn openapi_schema_list_types() {
        let schema = json!({
            "type": "object",
            "properties": {
                "spec": {"type": "object", "properties": {
                    "blocks": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                    "peers": {"type": "array", "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name", "port"],
                        "items": {"type": "object", "properties": {
                            "name": {"type": "string"},
                            "port": {"type": "integer", "default": 179},
                            "prefixes": {"type": "array", "x-kubernetes-list-type": "set"}
                        }}},
                    "selector": {"type": "object", "x-kubernetes-map-type": "atomic"},
                    "byNode": {"type": "object", "additionalProperties": {
                        "type": "array", "x-kubernetes-list-type": "set"}},
                    "plain": {"type": "array"}
                }},
                "status": {"type": "object", "properties": {"conditions": {
                    "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}}}
            }
        });
        let info = from_openapi_schema(&schema);
        assert_eq!(info.list_type(&["spec", "blocks"]), ListType::Set);
        assert_eq!(info.list_type(&["spec", "peers"]), ListType::Map(vec!["name".into(), "port".into()]));
        assert_eq!(info.list_type(&["spec", "peers", "prefixes"]), ListType::Set);
        assert_eq!(info.list_map_key_default(&["spec", "peers"], "port"), Some(json!(179)));
        assert_eq!(info.list_type(&["spec", "byNode", "node-a"]), ListType::Set);
        assert_eq!(info.list_type(&["spec", "plain"]), ListType::Atomic);
        assert_eq!(info.list_type(&["spec", "missing"]), ListType::Atomic);
        assert_eq!(info.list_type(&["status", "conditions"]), ListType::Map(vec!["type".into()]));
        assert_eq!(info.list_type(&["metadata", "finalizers"]), ListType::Set);
        assert!(info.map_is_atomic(&["spec", "selector"]));
        assert!(!info.map_is_atomic(&["spec"]));
        assert!(!info.strategic_merge_supported());
        // Garbage schemas answer "atomic" rather than failing.
        let junk = from_openapi_schema(&json!([1, {"properties": 3}]));
        assert_eq!(junk.list_type(&["spec", "x"]), ListType::Atomic);
    }
}
