//! Field paths and sets of owned fields, read from and written as `FieldsV1`, computed from an
//! object the way structured-merge-diff does (set and map list items owned one by one).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Bound;

use serde_json::{Map, Value};

use crate::types::{ListType, TypeInfo};

use crate::apply::ApplyError;

/// One step of a field path, as in `FieldsV1`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// `f:<name>`: a field of a map.
    Field(String),
    /// `k:<json object>`: a map-list item by its keys; the text is canonical (keys sorted, compact).
    Key(String),
    /// `v:<json>`: a set item by its value; the text is canonical compact JSON.
    Value(String),
    /// `i:<index>`: a list item by position (only read from stored field sets, never produced here).
    Index(usize),
}

impl PathElement {
    pub(super) fn to_fields_v1_key(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(text) => format!("k:{text}"),
            PathElement::Value(text) => format!("v:{text}"),
            PathElement::Index(index) => format!("i:{index}"),
        }
    }

    pub(super) fn from_fields_v1_key(key: &str) -> Result<PathElement, String> {
        let bad = |why: &str| format!("invalid FieldsV1 key {key:?}: {why}");
        if let Some(name) = key.strip_prefix("f:") {
            return Ok(PathElement::Field(name.to_string()));
        }
        if let Some(text) = key.strip_prefix("k:") {
            let value: Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
            let Value::Object(fields) = value else { return Err(bad("keys must be a JSON object")) };
            return Ok(PathElement::Key(key_text(fields.iter().map(|(k, v)| (k.as_str(), v)))));
        }
        if let Some(text) = key.strip_prefix("v:") {
            let value: Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
            return Ok(PathElement::Value(value.to_string()));
        }
        if let Some(index) = key.strip_prefix("i:") {
            return index.parse().map(PathElement::Index).map_err(|_| bad("not an index"));
        }
        Err(bad("unknown prefix"))
    }
}

impl fmt::Display for PathElement {
    /// The notation of the API server's conflict messages: `.name`, `[port=80,protocol="TCP"]`,
    /// `[="value"]`, `[3]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(text) => match serde_json::from_str::<Map<String, Value>>(text) {
                Ok(keys) => {
                    let keys: Vec<String> = keys.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    write!(f, "[{}]", keys.join(","))
                }
                Err(_) => write!(f, "[{text}]"),
            },
            PathElement::Value(text) => write!(f, "[={text}]"),
            PathElement::Index(index) => write!(f, "[{index}]"),
        }
    }
}

/// The canonical text of a map-list item's keys: a compact JSON object with its fields sorted, whatever
/// serde_json's map order is.
fn key_text<'a>(fields: impl Iterator<Item = (&'a str, &'a Value)>) -> String {
    let mut fields: Vec<_> = fields.collect();
    fields.sort_by_key(|(name, _)| *name);
    let fields: Vec<String> =
        fields.iter().map(|(name, value)| format!("{}:{value}", Value::from(*name))).collect();
    format!("{{{}}}", fields.join(","))
}

/// Renders a path as the API server does in conflict messages, e.g. `.spec.ports[port=80,protocol="TCP"]`.
pub fn path_to_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// A set of owned fields: every path in it is a leaf (a scalar, an atomic list or map, an empty map) or
/// an item of a set or map list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet(pub(super) BTreeSet<Vec<PathElement>>);

impl FieldSet {
    /// The fields of `object`, minus those the server owns (apiVersion, kind, metadata.name, namespace,
    /// uid, resourceVersion, generation, creationTimestamp, deletionTimestamp, selfLink, managedFields).
    /// Invalid map or set lists are owned as a whole.
    pub fn from_object(object: &Value, info: &dyn TypeInfo) -> FieldSet {
        let mut walker = Walker { info, strict: false, paths: BTreeSet::new() };
        // A lenient walk never fails: invalid lists become atomic.
        let _ = walker.value(object, &mut Vec::new(), &mut Vec::new());
        FieldSet(walker.paths).without_server_fields()
    }

    /// Like `from_object`, but a map list with an item missing a key or repeating one, or a set list with
    /// an object or a repeated value, is an error (an applied configuration must be valid).
    pub(super) fn from_config(config: &Value, info: &dyn TypeInfo) -> Result<FieldSet, String> {
        let mut walker = Walker { info, strict: true, paths: BTreeSet::new() };
        walker.value(config, &mut Vec::new(), &mut Vec::new())?;
        Ok(FieldSet(walker.paths).without_server_fields())
    }

    /// Reads a `fieldsV1` object.
    pub fn from_fields_v1(fields: &Value) -> Result<FieldSet, ApplyError> {
        fn parse(
            node: &Value,
            prefix: &mut Vec<PathElement>,
            out: &mut BTreeSet<Vec<PathElement>>,
        ) -> Result<(), String> {
            let Value::Object(children) = node else {
                return Err(format!("invalid FieldsV1: {} is not an object", path_to_string(prefix)));
            };
            if children.is_empty() && !prefix.is_empty() {
                out.insert(prefix.clone());
            }
            for (key, child) in children {
                if key == "." {
                    if !prefix.is_empty() {
                        out.insert(prefix.clone());
                    }
                    continue;
                }
                prefix.push(PathElement::from_fields_v1_key(key)?);
                parse(child, prefix, out)?;
                prefix.pop();
            }
            Ok(())
        }
        let mut paths = BTreeSet::new();
        parse(fields, &mut Vec::new(), &mut paths).map_err(ApplyError::Invalid)?;
        Ok(FieldSet(paths))
    }

    /// Writes the set as a `fieldsV1` object: `{}` for a leaf, `".": {}` for an owned item that also has
    /// owned children.
    pub fn to_fields_v1(&self) -> Value {
        #[derive(Default)]
        struct Node {
            member: bool,
            children: BTreeMap<String, Node>,
        }
        fn to_json(node: &Node) -> Value {
            let mut map: Map<String, Value> =
                node.children.iter().map(|(k, child)| (k.clone(), to_json(child))).collect();
            if node.member && !node.children.is_empty() {
                map.insert(".".to_string(), Value::Object(Map::new()));
            }
            Value::Object(map)
        }
        let mut root = Node::default();
        for path in &self.0 {
            let node = path.iter().fold(&mut root, |node, element| {
                node.children.entry(element.to_fields_v1_key()).or_default()
            });
            node.member = true;
        }
        to_json(&root)
    }

    /// Whether `path` is in the set.
    pub fn contains(&self, path: &[PathElement]) -> bool {
        self.0.contains(path)
    }

    /// The paths in the set, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &[PathElement]> {
        self.0.iter().map(Vec::as_slice)
    }

    /// Whether the set owns nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn union(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.union(&other.0).cloned().collect())
    }

    pub(super) fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.difference(&other.0).cloned().collect())
    }

    pub(super) fn intersection(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.intersection(&other.0).cloned().collect())
    }

    /// Whether the set holds a path strictly below `prefix`.
    pub(super) fn has_descendant(&self, prefix: &[PathElement]) -> bool {
        // Descendants sort right after their ancestor.
        self.0
            .range((Bound::Excluded(prefix.to_vec()), Bound::Unbounded))
            .next()
            .is_some_and(|p| p.starts_with(prefix))
    }

    pub(super) fn without_server_fields(mut self) -> FieldSet {
        self.0.retain(|path| !is_server_field(path));
        self
    }
}

/// Fields the server sets, which nobody owns (the API server's field manager strips the same ones).
fn is_server_field(path: &[PathElement]) -> bool {
    const METADATA: &[&str] = &[
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "managedFields",
    ];
    match path {
        [PathElement::Field(f), ..] if f == "apiVersion" || f == "kind" => true,
        [PathElement::Field(m)] if m == "metadata" => true,
        [PathElement::Field(m), PathElement::Field(f), ..] if m == "metadata" => {
            METADATA.contains(&f.as_str())
        }
        _ => false,
    }
}

/// Computes field sets; `type_path` is the `TypeInfo` path (list items skipped).
struct Walker<'a> {
    info: &'a dyn TypeInfo,
    strict: bool,
    paths: BTreeSet<Vec<PathElement>>,
}

impl Walker<'_> {
    fn value(
        &mut self,
        value: &Value,
        type_path: &mut Vec<String>,
        path: &mut Vec<PathElement>,
    ) -> Result<(), String> {
        let types: Vec<&str> = type_path.iter().map(String::as_str).collect();
        match value {
            Value::Null => Ok(()),
            Value::Object(map) if map.is_empty() || (!path.is_empty() && self.info.map_is_atomic(&types)) => {
                self.leaf(path);
                Ok(())
            }
            Value::Object(map) => self.map(map, type_path, path),
            Value::Array(items) => match self.info.list_type(&types) {
                ListType::Atomic => {
                    self.leaf(path);
                    Ok(())
                }
                list_type => match item_elements(items, &list_type, &types, self.info) {
                    Ok(elements) => {
                        for (item, element) in items.iter().zip(elements) {
                            path.push(element);
                            self.leaf(path);
                            if let Value::Object(fields) = item {
                                self.map(fields, type_path, path)?;
                            }
                            path.pop();
                        }
                        Ok(())
                    }
                    Err(e) if self.strict => Err(format!("{}: {e}", path_to_string(path))),
                    Err(_) => {
                        self.leaf(path);
                        Ok(())
                    }
                },
            },
            _ => {
                self.leaf(path);
                Ok(())
            }
        }
    }

    fn map(
        &mut self,
        map: &Map<String, Value>,
        type_path: &mut Vec<String>,
        path: &mut Vec<PathElement>,
    ) -> Result<(), String> {
        for (name, child) in map {
            type_path.push(name.clone());
            path.push(PathElement::Field(name.clone()));
            let result = self.value(child, type_path, path);
            path.pop();
            type_path.pop();
            result?;
        }
        Ok(())
    }

    fn leaf(&mut self, path: &[PathElement]) {
        if !path.is_empty() {
            self.paths.insert(path.to_vec());
        }
    }
}

/// The path element of every item of a set or map list, or why the list is not a valid one.
fn item_elements(
    items: &[Value],
    list_type: &ListType,
    types: &[&str],
    info: &dyn TypeInfo,
) -> Result<Vec<PathElement>, String> {
    let mut seen = BTreeSet::new();
    let mut elements = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let element = match list_type {
            ListType::Atomic => return Err("atomic list".to_string()),
            ListType::Set => {
                if item.is_object() || item.is_array() || item.is_null() {
                    return Err(format!("element {index}: a set may only hold strings, numbers and booleans"));
                }
                PathElement::Value(item.to_string())
            }
            ListType::Map(keys) => PathElement::Key(
                item_key(item, keys, types, info)
                    .ok_or_else(|| format!("element {index}: associative list with keys {keys:?} has an element that omits a key field"))?,
            ),
        };
        if !seen.insert(element.clone()) {
            return Err(format!("duplicate entries for key {element}"));
        }
        elements.push(element);
    }
    Ok(elements)
}

/// The canonical key text of a map-list item; `None` when a key is missing (and not defaulted) or is
/// not a scalar.
pub(super) fn item_key(item: &Value, keys: &[String], types: &[&str], info: &dyn TypeInfo) -> Option<String> {
    let fields = item.as_object()?;
    let mut values = Vec::with_capacity(keys.len());
    for key in keys {
        let value = match fields.get(key) {
            Some(Value::Null) | None => info.list_map_key_default(types, key)?,
            Some(value) => value.clone(),
        };
        if !matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
            return None;
        }
        values.push((key.as_str(), value));
    }
    Some(key_text(values.iter().map(|(k, v)| (*k, v))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::ApplyError;
    use crate::apply::tests::svc_info;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    #[test]
    fn field_set_of_a_service_in_fields_v1() {
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "uid": "u", "resourceVersion": "5", "labels": {"app": "web"},
                "finalizers": ["a"], "annotations": {}},
            "spec": {"ports": [{"port": 80, "targetPort": 8080}], "externalIPs": ["192.0.2.1"], "selector": {"app": "web"}}
        });
        let set = FieldSet::from_object(&svc, &svc_info());
        assert_eq!(
            set.to_fields_v1(),
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}, "f:finalizers": {"v:\"a\"": {}}, "f:annotations": {}},
                "f:spec": {
                    "f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:targetPort": {}}},
                    "f:externalIPs": {},
                    "f:selector": {}
                }
            })
        );
        assert!(set.contains(&[PathElement::Field("spec".into()), PathElement::Field("externalIPs".into())]));
        let back = FieldSet::from_fields_v1(&set.to_fields_v1()).unwrap();
        assert_eq!(back, set);
        let port: Vec<String> = set.paths().map(path_to_string).filter(|p| p.contains("ports")).collect();
        assert_eq!(
            port,
            [
                ".spec.ports[port=80,protocol=\"TCP\"]",
                ".spec.ports[port=80,protocol=\"TCP\"].port",
                ".spec.ports[port=80,protocol=\"TCP\"].targetPort"
            ]
        );
    }

    #[test]
    fn fields_v1_keys_are_canonicalised_and_bad_ones_rejected() {
        let set = FieldSet::from_fields_v1(
            &json!({"f:spec": {"f:ports": {"k:{\"protocol\": \"TCP\", \"port\": 80}": {}},
            "f:list": {"i:3": {}, "v:[1]": {}}}}),
        )
        .unwrap();
        assert_eq!(
            set.to_fields_v1(),
            json!({"f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {}}, "f:list": {"i:3": {}, "v:[1]": {}}}})
        );
        for bad in [
            json!({"x:y": {}}),
            json!({"k:[1]": {}}),
            json!({"k:{": {}}),
            json!({"i:-1": {}}),
            json!({"f:a": 1}),
            json!(3),
        ] {
            assert!(matches!(FieldSet::from_fields_v1(&bad), Err(ApplyError::Invalid(_))), "{bad}");
        }
    }
}
