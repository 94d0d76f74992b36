//! Server-side apply and `metadata.managedFields` tracking, after
//! <https://kubernetes.io/docs/reference/using-api/server-side-apply/> and the structured-merge-diff
//! algorithm behind it.
//!
//! Field ownership is a set of paths ([`FieldSet`]) per manager, stored as `FieldsV1` JSON. An apply
//! merges the configuration into the live object, prunes the fields its manager applied last time and
//! no longer applies (unless someone else owns them), and refuses to change fields another manager owns
//! unless forced. Every other write (`track_update`) takes ownership of what it changed.
//!
//! Knowingly simplified compared with a kube-apiserver:
//! - Managers are keyed by (manager, operation, subresource): an Update entry is not split per API
//!   version, and there is no cap on the number of Update entries (no "ancient-changes" entry).
//! - Objects are untyped JSON: a map is never told apart from a struct, so the difference in how the two
//!   are owned when their value is a non-empty map does not exist here, and unions are not normalised.
//! - `null` in an applied configuration removes the field and owns nothing.
//! - As on a real server, an empty map is owned as a leaf but an empty set or map list owns nothing.
//! - Merged map-list and set items keep the live order, new items are appended in configuration order.
//! - Maps and lists that an apply's pruning leaves empty are removed (Go's `omitempty` would hide them on
//!   a built-in type).
//! - Live objects with a map-list whose items lack keys or repeat them (or set lists with objects or
//!   duplicates) are tolerated by treating that list as atomic; in an applied configuration those are
//!   errors, as on a real server.
//! - The caller resets what its endpoint must not change (status on the main resource of a type with a
//!   status subresource, everything but status on `/status`) before calling, by removing those fields
//!   from the configuration or restoring them in the new object.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Bound;

use serde_json::{Map, Value};

use crate::types::{ListType, TypeInfo};

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
    fn to_fields_v1_key(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(text) => format!("k:{text}"),
            PathElement::Value(text) => format!("v:{text}"),
            PathElement::Index(index) => format!("i:{index}"),
        }
    }

    fn from_fields_v1_key(key: &str) -> Result<PathElement, String> {
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
pub struct FieldSet(BTreeSet<Vec<PathElement>>);

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
    fn from_config(config: &Value, info: &dyn TypeInfo) -> Result<FieldSet, String> {
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

    fn union(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.union(&other.0).cloned().collect())
    }

    fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.difference(&other.0).cloned().collect())
    }

    fn intersection(&self, other: &FieldSet) -> FieldSet {
        FieldSet(self.0.intersection(&other.0).cloned().collect())
    }

    /// Whether the set holds a path strictly below `prefix`.
    fn has_descendant(&self, prefix: &[PathElement]) -> bool {
        // Descendants sort right after their ancestor.
        self.0
            .range((Bound::Excluded(prefix.to_vec()), Bound::Unbounded))
            .next()
            .is_some_and(|p| p.starts_with(prefix))
    }

    fn without_server_fields(mut self) -> FieldSet {
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
fn item_key(item: &Value, keys: &[String], types: &[&str], info: &dyn TypeInfo) -> Option<String> {
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

/// Where a path element leads inside a container.
enum Child {
    Field(String),
    Item(usize),
}

fn find_child(
    container: &Value,
    element: &PathElement,
    types: &[&str],
    info: &dyn TypeInfo,
) -> Option<Child> {
    match (element, container) {
        (PathElement::Field(name), Value::Object(map)) => {
            map.contains_key(name).then(|| Child::Field(name.clone()))
        }
        (PathElement::Key(text), Value::Array(items)) => {
            let ListType::Map(keys) = info.list_type(types) else { return None };
            items
                .iter()
                .position(|item| item_key(item, &keys, types, info).as_deref() == Some(text))
                .map(Child::Item)
        }
        (PathElement::Value(text), Value::Array(items)) => {
            let wanted: Value = serde_json::from_str(text).ok()?;
            items.iter().position(|item| *item == wanted).map(Child::Item)
        }
        (PathElement::Index(index), Value::Array(items)) => {
            (*index < items.len()).then_some(Child::Item(*index))
        }
        _ => None,
    }
}

fn child<'v>(container: &'v Value, child: &Child) -> Option<&'v Value> {
    match child {
        Child::Field(name) => container.get(name),
        Child::Item(index) => container.get(index),
    }
}

fn child_mut<'v>(container: &'v mut Value, child: &Child) -> Option<&'v mut Value> {
    match child {
        Child::Field(name) => container.get_mut(name),
        Child::Item(index) => container.get_mut(index),
    }
}

/// The value at `path` in `object`, if any.
fn resolve<'v>(object: &'v Value, path: &[PathElement], info: &dyn TypeInfo) -> Option<&'v Value> {
    let mut types: Vec<&str> = Vec::new();
    let mut node = object;
    for element in path {
        node = child(node, &find_child(node, element, &types, info)?)?;
        if let PathElement::Field(name) = element {
            types.push(name);
        }
    }
    Some(node)
}

/// Removes the value at `path`; then removes the containers that this left empty, up to the first list
/// item and unless `keep` owns them. Returns whether something was removed.
fn remove_path(object: &mut Value, path: &[PathElement], keep: &FieldSet, info: &dyn TypeInfo) -> bool {
    let Some((last, parent_path)) = path.split_last() else { return false };
    let types: Vec<&str> = parent_path
        .iter()
        .filter_map(|e| if let PathElement::Field(f) = e { Some(f.as_str()) } else { None })
        .collect();
    let mut node = &mut *object;
    let mut parent_types: Vec<&str> = Vec::new();
    for element in parent_path {
        let Some(found) = find_child(node, element, &parent_types, info) else { return false };
        let Some(next) = child_mut(node, &found) else { return false };
        node = next;
        if let PathElement::Field(name) = element {
            parent_types.push(name);
        }
    }
    let Some(found) = find_child(node, last, &types, info) else { return false };
    match (found, node) {
        (Child::Field(name), Value::Object(map)) => {
            map.remove(&name);
        }
        (Child::Item(index), Value::Array(items)) => {
            items.remove(index);
        }
        _ => return false,
    }
    let now_empty = resolve(object, parent_path, info)
        .is_some_and(|v| v.as_object().is_some_and(Map::is_empty) || v.as_array().is_some_and(Vec::is_empty));
    let inside_item = matches!(
        parent_path.last(),
        Some(PathElement::Key(_) | PathElement::Value(_) | PathElement::Index(_))
    );
    if now_empty && !parent_path.is_empty() && !inside_item && !keep.contains(parent_path) {
        remove_path(object, parent_path, keep, info);
    }
    true
}

/// Removes the `stale` fields from `object`, except containers holding a field in `owned` and the key
/// fields of list items that stay (removing those would change the items' identity).
fn prune(object: &mut Value, stale: &FieldSet, owned: &FieldSet, info: &dyn TypeInfo) {
    let mut removed: Vec<&[PathElement]> = Vec::new();
    // Parents sort before their children, so a removed item or map takes its stale fields along.
    for path in stale.paths() {
        if removed.iter().any(|r| path.starts_with(r)) || owned.has_descendant(path) {
            continue;
        }
        if let [.., PathElement::Key(keys), PathElement::Field(name)] = path {
            let keys: Map<String, Value> = serde_json::from_str(keys).unwrap_or_default();
            if keys.contains_key(name) {
                continue;
            }
        }
        if remove_path(object, path, owned, info) {
            removed.push(path);
        }
    }
}

/// Merges an applied configuration into the live object: maps merge, atomic lists and scalars are
/// replaced, set lists take the union and map lists merge items by key.
fn merge(live: &mut Value, config: &Value, types: &mut Vec<String>, info: &dyn TypeInfo) {
    let here = types.clone();
    let type_refs: Vec<&str> = here.iter().map(String::as_str).collect();
    match (live, config) {
        (Value::Object(live), Value::Object(config))
            if types.is_empty() || !info.map_is_atomic(&type_refs) =>
        {
            for (name, value) in config {
                if value.is_null() {
                    live.remove(name);
                    continue;
                }
                match live.get_mut(name) {
                    Some(existing) => {
                        types.push(name.clone());
                        merge(existing, value, types, info);
                        types.pop();
                    }
                    None => {
                        live.insert(name.clone(), without_nulls(value));
                    }
                }
            }
        }
        (Value::Array(live), Value::Array(config)) => match info.list_type(&type_refs) {
            ListType::Atomic => *live = config.iter().map(without_nulls).collect(),
            ListType::Set => {
                for item in config {
                    if !live.contains(item) {
                        live.push(item.clone());
                    }
                }
            }
            ListType::Map(keys) => {
                for item in config {
                    let key = item_key(item, &keys, &type_refs, info);
                    let matching = key.as_ref().and_then(|key| {
                        live.iter().position(|l| item_key(l, &keys, &type_refs, info).as_ref() == Some(key))
                    });
                    match matching {
                        Some(index) => merge(&mut live[index], item, types, info),
                        None => live.push(without_nulls(item)),
                    }
                }
            }
        },
        (live, config) => *live = without_nulls(config),
    }
}

fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), without_nulls(v))).collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// How two versions of an object differ, field by field.
struct Comparison {
    added: FieldSet,
    removed: FieldSet,
    modified: FieldSet,
}

impl Comparison {
    fn new(old: &Value, new: &Value, info: &dyn TypeInfo) -> Comparison {
        let before = FieldSet::from_object(old, info);
        let after = FieldSet::from_object(new, info);
        let modified = before
            .intersection(&after)
            .0
            .into_iter()
            // List items are identified by their value or keys, so only their fields can change.
            .filter(|path| matches!(path.last(), Some(PathElement::Field(_) | PathElement::Index(_))))
            .filter(|path| resolve(old, path, info) != resolve(new, path, info))
            .collect();
        Comparison {
            added: after.difference(&before),
            removed: before.difference(&after),
            modified: FieldSet(modified),
        }
    }

    fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }
}

/// A field another manager owns that an apply would change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The other manager's subresource, if any.
    pub subresource: Option<String>,
    /// The API version the other manager's entry was written with.
    pub api_version: String,
    /// The field, in the API server's notation (`.spec.ports[port=80,protocol="TCP"].targetPort`).
    pub field: String,
}

impl Conflict {
    /// The manager as the API server names it in conflict messages.
    fn describe_manager(&self) -> String {
        let mut text = format!("{:?}", self.manager);
        if let Some(subresource) = &self.subresource {
            text.push_str(&format!(" with subresource {subresource:?}"));
        }
        if self.operation == "Update" {
            text.push_str(&format!(" using {}", self.api_version));
        }
        text
    }
}

fn conflicts_message(conflicts: &[Conflict]) -> String {
    if let [conflict] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            conflict.describe_manager(),
            conflict.field
        );
    }
    let mut managers: Vec<String> = conflicts.iter().map(Conflict::describe_manager).collect();
    managers.sort();
    managers.dedup();
    let mut lines = Vec::new();
    for manager in managers {
        lines.push(format!("conflicts with {manager}:"));
        for conflict in conflicts.iter().filter(|c| c.describe_manager() == manager) {
            lines.push(format!("- {}", conflict.field));
        }
    }
    format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
}

/// Why an apply was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ApplyError {
    /// Fields owned by other managers would change; the server answers 409 Conflict.
    #[error("{}", conflicts_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The configuration (or a field set) is malformed; the server answers 400 Bad Request.
    #[error("{0}")]
    Invalid(String),
}

impl ApplyError {
    /// The HTTP status a kube-apiserver answers with for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            ApplyError::Conflicts(_) => 409,
            ApplyError::Invalid(_) => 400,
        }
    }
}

const APPLY: &str = "Apply";
const UPDATE: &str = "Update";

/// One `metadata.managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
struct Manager {
    manager: String,
    operation: String,
    subresource: Option<String>,
    api_version: String,
    time: Option<String>,
    fields: FieldSet,
}

impl Manager {
    fn is(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager && self.operation == operation && self.subresource.as_deref() == subresource
    }

    fn parse(entry: &Value) -> Result<Manager, String> {
        let text = |name: &str| entry.get(name).and_then(Value::as_str).map(str::to_string);
        let fields = match entry.get("fieldsV1") {
            Some(fields) => FieldSet::from_fields_v1(fields).map_err(|e| e.to_string())?,
            None => FieldSet::default(),
        };
        Ok(Manager {
            manager: text("manager").unwrap_or_default(),
            operation: text("operation").ok_or("a managedFields entry has no operation")?,
            subresource: text("subresource").filter(|s| !s.is_empty()),
            api_version: text("apiVersion").unwrap_or_default(),
            time: text("time"),
            fields,
        })
    }

    fn to_json(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("manager".into(), self.manager.clone().into());
        entry.insert("operation".into(), self.operation.clone().into());
        entry.insert("apiVersion".into(), self.api_version.clone().into());
        if let Some(time) = &self.time {
            entry.insert("time".into(), time.clone().into());
        }
        entry.insert("fieldsType".into(), "FieldsV1".into());
        entry.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if let Some(subresource) = &self.subresource {
            entry.insert("subresource".into(), subresource.clone().into());
        }
        Value::Object(entry)
    }
}

fn managed_fields(object: &Value) -> Option<&Value> {
    object.get("metadata")?.get("managedFields").filter(|v| !v.is_null())
}

/// Reads `metadata.managedFields`. An entry that cannot be read drops them all, as the API server
/// resets managed fields it cannot decode.
fn read_managers(object: &Value) -> Vec<Manager> {
    let Some(Value::Array(entries)) = managed_fields(object) else { return Vec::new() };
    let managers: Result<Vec<Manager>, String> =
        entries.iter().filter(|e| e.as_object().is_some_and(|e| !e.is_empty())).map(Manager::parse).collect();
    managers.unwrap_or_default()
}

/// Stores the managers in the API server's order (Apply before Update, then oldest first), dropping
/// the ones that own nothing.
fn write_managers(object: &mut Value, mut managers: Vec<Manager>) {
    managers.retain(|m| !m.fields.is_empty());
    managers.sort_by(|a, b| {
        (&a.operation, &a.time, &a.manager, &a.api_version, &a.subresource).cmp(&(
            &b.operation,
            &b.time,
            &b.manager,
            &b.api_version,
            &b.subresource,
        ))
    });
    let Value::Object(object) = object else { return };
    if managers.is_empty() {
        if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
            metadata.remove("managedFields");
        }
        return;
    }
    let metadata = object.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if !metadata.is_object() {
        *metadata = Value::Object(Map::new());
    }
    if let Value::Object(metadata) = metadata {
        metadata
            .insert("managedFields".into(), Value::Array(managers.iter().map(Manager::to_json).collect()));
    }
}

/// A copy of `object` without `metadata.managedFields` (nor a `metadata` that held only those).
fn without_managed_fields(object: &Value) -> Value {
    let mut object = object.clone();
    if let Value::Object(fields) = &mut object
        && let Some(Value::Object(metadata)) = fields.get_mut("metadata")
    {
        metadata.remove("managedFields");
        if metadata.is_empty() {
            fields.remove("metadata");
        }
    }
    object
}

/// Who is writing, and when.
#[derive(Clone, Copy, Debug)]
pub struct Operation<'a> {
    /// The field manager (`?fieldManager=`, or the client's default).
    pub manager: &'a str,
    /// `Some("status")` for writes to the status subresource.
    pub subresource: Option<&'a str>,
    /// The API version of the request, recorded in the managedFields entry.
    pub api_version: &'a str,
    /// The current time, RFC 3339 with second precision (`2026-11-02T10:00:00Z`).
    pub now: &'a str,
}

/// Server-side apply to the main resource; see [`apply_as`].
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    info: &dyn TypeInfo,
    api_version: &str,
    now: &str,
) -> Result<Value, ApplyError> {
    apply_as(live, config, &Operation { manager, subresource: None, api_version, now }, force, info)
}

/// Server-side apply: merges `config` into `live` (or creates the object when `live` is `None`) and
/// returns the new object with its `metadata.managedFields` updated.
///
/// Fields in `config` that another manager owns with a different value are conflicts unless `force`,
/// which moves them to this manager; fields whose value does not change become shared. Fields this
/// manager applied last time and omits now are removed, unless another manager owns them too.
pub fn apply_as(
    live: Option<&Value>,
    config: &Value,
    op: &Operation<'_>,
    force: bool,
    info: &dyn TypeInfo,
) -> Result<Value, ApplyError> {
    if !config.is_object() {
        return Err(ApplyError::Invalid("the applied configuration must be a JSON object".into()));
    }
    if config.get("metadata").is_some_and(|m| !m.is_object()) {
        return Err(ApplyError::Invalid("metadata must be an object".into()));
    }
    if managed_fields(config).is_some_and(|m| m.as_array().is_none_or(|m| !m.is_empty())) {
        return Err(ApplyError::Invalid("metadata.managedFields must be nil".into()));
    }
    let config_set = FieldSet::from_config(config, info)
        .map_err(|e| ApplyError::Invalid(format!("failed to create typed patch object: {e}")))?;

    let live_object = match live {
        Some(object @ Value::Object(_)) => without_managed_fields(object),
        _ => Value::Object(Map::new()),
    };
    let mut managers = live.map(read_managers).unwrap_or_default();
    if live.is_some() && managers.is_empty() {
        // What was there before anyone applied is owned by a placeholder, so applying different values
        // over it is a conflict, as on a real server.
        let fields = FieldSet::from_object(&live_object, info);
        managers.push(Manager {
            manager: "before-first-apply".into(),
            operation: UPDATE.into(),
            subresource: None,
            api_version: op.api_version.into(),
            time: None,
            fields,
        });
    }

    let mut merged = live_object.clone();
    merge(&mut merged, &without_managed_fields(config), &mut Vec::new(), info);

    let own = managers.iter().position(|m| m.is(op.manager, APPLY, op.subresource));
    let last_set = own.map(|i| managers[i].fields.clone()).unwrap_or_default();
    let others = managers
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != own)
        .fold(FieldSet::default(), |all, (_, m)| all.union(&m.fields));
    let owned = others.union(&config_set);
    prune(&mut merged, &last_set.difference(&owned), &owned, info);

    let comparison = Comparison::new(&live_object, &merged, info);
    let changed = comparison.changed();
    let mut conflicts = Vec::new();
    for (i, manager) in managers.iter_mut().enumerate() {
        if Some(i) == own {
            continue;
        }
        let taken = manager.fields.intersection(&changed);
        for path in taken.paths() {
            conflicts.push(Conflict {
                manager: manager.manager.clone(),
                operation: manager.operation.clone(),
                subresource: manager.subresource.clone(),
                api_version: manager.api_version.clone(),
                field: path_to_string(path),
            });
        }
        manager.fields = manager.fields.difference(&taken).difference(&comparison.removed);
    }
    if !conflicts.is_empty() && !force {
        return Err(ApplyError::Conflicts(conflicts));
    }

    let unchanged = without_managed_fields(&merged) == live_object && last_set == config_set;
    let time = match own {
        Some(i) if unchanged => managers[i].time.clone(),
        _ => Some(op.now.to_string()),
    };
    let entry = Manager {
        manager: op.manager.into(),
        operation: APPLY.into(),
        subresource: op.subresource.map(str::to_string),
        api_version: op.api_version.into(),
        time,
        fields: config_set,
    };
    match own {
        Some(i) => managers[i] = entry,
        None => managers.push(entry),
    }
    write_managers(&mut merged, managers);
    Ok(merged)
}

/// Records a non-apply write (create, update, patch) by `manager` in `new`'s `metadata.managedFields`:
/// the fields that appeared or changed between `old` and `new` move to this manager's Update entry for
/// `subresource`, and removed fields leave every entry. Pass the same `info` as applies to this type
/// get: it decides which list items are owned one by one, and both must agree for conflicts to show.
///
/// If the write itself changed `metadata.managedFields`, that is taken as the new ownership (an empty
/// list, or a list with one empty entry, clears it), as on a real server.
pub fn track_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    info: &dyn TypeInfo,
    api_version: &str,
    now: &str,
) {
    let old_managed = old.and_then(managed_fields);
    let new_managed = managed_fields(new).cloned();
    let mut managers = match &new_managed {
        Some(sent) if Some(sent) != old_managed => {
            let cleared =
                sent.as_array().is_some_and(|l| l.iter().all(|e| e.as_object().is_some_and(Map::is_empty)));
            if cleared {
                write_managers(new, Vec::new());
                return;
            }
            read_managers(new)
        }
        _ => old.map(read_managers).unwrap_or_default(),
    };

    let before = old.map(without_managed_fields).unwrap_or_else(|| Value::Object(Map::new()));
    let after = without_managed_fields(new);
    let comparison = Comparison::new(&before, &after, info);
    let changed = comparison.changed();
    for entry in managers.iter_mut() {
        entry.fields = entry.fields.difference(&comparison.removed).difference(&changed);
    }
    if !changed.is_empty() {
        match managers.iter_mut().find(|m| m.is(manager, UPDATE, subresource)) {
            Some(entry) => {
                entry.fields = entry.fields.union(&changed);
                entry.api_version = api_version.into();
                entry.time = Some(now.into());
            }
            None => managers.push(Manager {
                manager: manager.into(),
                operation: UPDATE.into(),
                subresource: subresource.map(str::to_string),
                api_version: api_version.into(),
                time: Some(now.into()),
                fields: changed,
            }),
        }
    }
    write_managers(new, managers);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Unstructured, builtin, from_openapi_schema};
    use pretty_assertions::assert_eq;
    use serde_json::json;

    const T0: &str = "2026-11-02T10:00:00Z";
    const T1: &str = "2026-11-02T10:05:00Z";

    fn svc_info() -> Box<dyn TypeInfo> {
        builtin("", "Service")
    }

    fn svc_config(ports: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "ports": ports}
        })
    }

    fn entry<'v>(object: &'v Value, manager: &str, operation: &str) -> Option<&'v Value> {
        object["metadata"]["managedFields"]
            .as_array()?
            .iter()
            .find(|e| e["manager"] == json!(manager) && e["operation"] == json!(operation))
    }

    fn fields<'v>(object: &'v Value, manager: &str, operation: &str) -> &'v Value {
        &entry(object, manager, operation).unwrap_or_else(|| panic!("no entry for {manager}/{operation}"))["fieldsV1"]
    }

    fn conflicts(err: ApplyError) -> Vec<(String, String)> {
        match err {
            ApplyError::Conflicts(c) => c.into_iter().map(|c| (c.manager, c.field)).collect(),
            other => panic!("expected conflicts, got {other:?}"),
        }
    }

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

    #[test]
    fn apply_creates_an_object_with_an_apply_entry() {
        let config = svc_config(json!([{"port": 80, "protocol": "TCP"}]));
        let created = apply(None, &config, "ferrolb", false, &svc_info(), "v1", T0).unwrap();
        assert_eq!(created["spec"], config["spec"]);
        assert_eq!(
            created["metadata"]["managedFields"],
            json!([{
                "manager": "ferrolb", "operation": "Apply", "apiVersion": "v1", "time": T0, "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:type": {}, "f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {
                    ".": {}, "f:port": {}, "f:protocol": {}}}}}
            }])
        );
    }

    #[test]
    fn apply_conflicts_unless_forced() {
        let info = svc_info();
        let first =
            apply(None, &svc_config(json!([{"port": 80}])), "kubectl", false, &info, "v1", T0).unwrap();
        let mut other = svc_config(json!([{"port": 80}]));
        other["spec"]["type"] = json!("ClusterIP");
        let err = apply(Some(&first), &other, "ferrolb", false, &info, "v1", T1).unwrap_err();
        assert_eq!(err.http_status(), 409);
        assert_eq!(err.to_string(), "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.type");
        assert_eq!(conflicts(err), [("kubectl".to_string(), ".spec.type".to_string())]);

        let forced = apply(Some(&first), &other, "ferrolb", true, &info, "v1", T1).unwrap();
        assert_eq!(forced["spec"]["type"], json!("ClusterIP"));
        assert!(fields(&forced, "kubectl", "Apply")["f:spec"].get("f:type").is_none());
        assert_eq!(fields(&forced, "ferrolb", "Apply")["f:spec"]["f:type"], json!({}));
        // The port both applied with the same value stays shared.
        let port = "k:{\"port\":80,\"protocol\":\"TCP\"}";
        assert!(fields(&forced, "kubectl", "Apply")["f:spec"]["f:ports"].get(port).is_some());
        assert!(fields(&forced, "ferrolb", "Apply")["f:spec"]["f:ports"].get(port).is_some());
    }

    #[test]
    fn equal_values_are_shared_and_survive_one_owner_leaving() {
        let info = Unstructured;
        let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"team": "net"}},
            "data": {"a": "1"}});
        let first = apply(None, &config, "alice", false, &info, "v1", T0).unwrap();
        let shared = apply(
            Some(&first),
            &json!({"metadata": {"labels": {"team": "net"}}}),
            "bob",
            false,
            &info,
            "v1",
            T1,
        )
        .unwrap();
        assert_eq!(fields(&shared, "bob", "Apply"), &json!({"f:metadata": {"f:labels": {"f:team": {}}}}));
        assert_eq!(fields(&shared, "alice", "Apply")["f:metadata"], json!({"f:labels": {"f:team": {}}}));

        // Alice stops applying the label: Bob still owns it, so it stays.
        let without = json!({"metadata": {"name": "c"}, "data": {"a": "1"}});
        let after = apply(Some(&shared), &without, "alice", false, &info, "v1", T1).unwrap();
        assert_eq!(after["metadata"]["labels"], json!({"team": "net"}));
        assert_eq!(fields(&after, "alice", "Apply"), &json!({"f:data": {"f:a": {}}}));
    }

    #[test]
    fn omitted_fields_are_removed() {
        let info = Unstructured;
        let config =
            json!({"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": {"x": "1", "y": "2"}});
        let first = apply(None, &config, "alice", false, &info, "v1", T0).unwrap();
        let second = apply(
            Some(&first),
            &json!({"metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"x": "1"}}),
            "alice",
            false,
            &info,
            "v1",
            T1,
        )
        .unwrap();
        assert_eq!(second["metadata"]["labels"], json!({"a": "1"}));
        assert_eq!(second["data"], json!({"x": "1"}));
        // Dropping everything under a map removes the map too.
        let third = apply(
            Some(&second),
            &json!({"metadata": {"name": "c"}, "data": {"x": "1"}}),
            "alice",
            false,
            &info,
            "v1",
            T1,
        )
        .unwrap();
        assert!(third["metadata"].get("labels").is_none());
        assert_eq!(third["metadata"]["name"], json!("c"));
    }

    #[test]
    fn fields_owned_by_an_update_are_not_pruned_but_conflict() {
        let info = Unstructured;
        let first = apply(
            None,
            &json!({"metadata": {"name": "c"}, "data": {"x": "1"}}),
            "alice",
            false,
            &info,
            "v1",
            T0,
        )
        .unwrap();
        let mut edited = first.clone();
        edited["data"]["x"] = json!("2");
        track_update(Some(&first), &mut edited, "kubectl-edit", None, &info, "v1", T1);
        assert!(entry(&edited, "alice", "Apply").is_none(), "alice's only field moved away");
        assert_eq!(fields(&edited, "kubectl-edit", "Update"), &json!({"f:data": {"f:x": {}}}));

        let err =
            apply(Some(&edited), &json!({"data": {"x": "3"}}), "alice", false, &info, "v1", T1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using v1: .data.x"
        );
        // Applying the value the editor set is shared ownership, not a conflict.
        let shared =
            apply(Some(&edited), &json!({"data": {"x": "2"}}), "alice", false, &info, "v1", T1).unwrap();
        assert_eq!(fields(&shared, "alice", "Apply"), fields(&shared, "kubectl-edit", "Update"));
    }

    #[test]
    fn service_ports_merge_by_port_and_protocol() {
        let info = svc_info();
        let first = apply(
            None,
            &svc_config(json!([{"port": 80, "targetPort": 8080}])),
            "alice",
            false,
            &info,
            "v1",
            T0,
        )
        .unwrap();
        let second = apply(
            Some(&first),
            &json!({"spec": {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 80, "protocol": "TCP", "targetPort": 8080}]}}),
            "bob",
            false,
            &info,
            "v1",
            T1,
        )
        .unwrap();
        assert_eq!(
            second["spec"]["ports"],
            json!([{"port": 80, "protocol": "TCP", "targetPort": 8080}, {"port": 53, "protocol": "UDP"}]),
            "items keep the live order; the new one is appended"
        );
        let bob_ports = fields(&second, "bob", "Apply")["f:spec"]["f:ports"].as_object().unwrap();
        assert_eq!(bob_ports.len(), 2);
        // Alice stops applying port 80: Bob owns it too, so it stays; her own fields inside go with her.
        let third = apply(Some(&second), &svc_config(json!([])), "alice", false, &info, "v1", T1).unwrap();
        assert_eq!(third["spec"]["ports"].as_array().unwrap().len(), 2);
        // Bob drops port 53 (only his): removed.
        let fourth = apply(
            Some(&third),
            &json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}}),
            "bob",
            false,
            &info,
            "v1",
            T1,
        )
        .unwrap();
        // Key fields of an item that stays are never pruned, so the item keeps its identity.
        assert_eq!(fourth["spec"]["ports"], json!([{"port": 80, "protocol": "TCP", "targetPort": 8080}]));
        // Another manager changing port 80's target port conflicts on exactly that field.
        let err = apply(
            Some(&fourth),
            &json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
            "carol",
            false,
            &info,
            "v1",
            T1,
        )
        .unwrap_err();
        assert_eq!(
            conflicts(err),
            [("bob".to_string(), ".spec.ports[port=80,protocol=\"TCP\"].targetPort".to_string())]
        );
    }

    #[test]
    fn set_lists_union_and_prune_per_item() {
        let info = svc_info();
        let a = apply(
            None,
            &json!({"metadata": {"name": "s", "finalizers": ["a"]}}),
            "alice",
            false,
            &info,
            "v1",
            T0,
        )
        .unwrap();
        let ab = apply(Some(&a), &json!({"metadata": {"finalizers": ["b"]}}), "bob", false, &info, "v1", T1)
            .unwrap();
        assert_eq!(ab["metadata"]["finalizers"], json!(["a", "b"]));
        let b =
            apply(Some(&ab), &json!({"metadata": {"name": "s"}}), "alice", false, &info, "v1", T1).unwrap();
        assert_eq!(b["metadata"]["finalizers"], json!(["b"]));
        assert!(entry(&b, "alice", "Apply").is_none(), "alice owns nothing any more");
    }

    #[test]
    fn atomic_lists_conflict_as_a_whole() {
        let info = svc_info();
        let a =
            apply(None, &json!({"spec": {"externalIPs": ["192.0.2.1"]}}), "alice", false, &info, "v1", T0)
                .unwrap();
        let err = apply(
            Some(&a),
            &json!({"spec": {"externalIPs": ["192.0.2.1", "192.0.2.2"]}}),
            "bob",
            false,
            &info,
            "v1",
            T1,
        )
        .unwrap_err();
        assert_eq!(conflicts(err), [("alice".to_string(), ".spec.externalIPs".to_string())]);
        let forced =
            apply(Some(&a), &json!({"spec": {"externalIPs": ["192.0.2.9"]}}), "bob", true, &info, "v1", T1)
                .unwrap();
        assert_eq!(forced["spec"]["externalIPs"], json!(["192.0.2.9"]));
        assert!(entry(&forced, "alice", "Apply").is_none());
    }

    #[test]
    fn several_conflicts_are_grouped_by_manager() {
        let info = Unstructured;
        let a = apply(None, &json!({"data": {"x": "1", "y": "1"}}), "alice", false, &info, "v1", T0).unwrap();
        let ab = apply(Some(&a), &json!({"data": {"z": "1"}}), "bob", false, &info, "v1", T0).unwrap();
        let err = apply(
            Some(&ab),
            &json!({"data": {"x": "2", "y": "2", "z": "2"}}),
            "carol",
            false,
            &info,
            "v1",
            T1,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 3 conflicts: conflicts with \"alice\":\n- .data.x\n- .data.y\nconflicts with \"bob\":\n- .data.z"
        );
    }

    #[test]
    fn noop_apply_keeps_the_time() {
        let info = Unstructured;
        let config = json!({"data": {"x": "1"}});
        let a = apply(None, &config, "alice", false, &info, "v1", T0).unwrap();
        let again = apply(Some(&a), &config, "alice", false, &info, "v1", T1).unwrap();
        assert_eq!(again, a);
        let changed = apply(Some(&a), &json!({"data": {"x": "2"}}), "alice", false, &info, "v1", T1).unwrap();
        assert_eq!(entry(&changed, "alice", "Apply").unwrap()["time"], json!(T1));
    }

    #[test]
    fn apply_over_untracked_fields_conflicts_with_before_first_apply() {
        let info = Unstructured;
        let live = json!({"metadata": {"name": "c"}, "data": {"x": "1"}});
        let err =
            apply(Some(&live), &json!({"data": {"x": "2"}}), "alice", false, &info, "v1", T0).unwrap_err();
        assert_eq!(conflicts(err), [("before-first-apply".to_string(), ".data.x".to_string())]);
        let ok = apply(Some(&live), &json!({"data": {"y": "2"}}), "alice", false, &info, "v1", T0).unwrap();
        assert_eq!(fields(&ok, "before-first-apply", "Update"), &json!({"f:data": {"f:x": {}}}));
    }

    #[test]
    fn invalid_configurations_are_rejected() {
        let info = svc_info();
        let cases = [
            json!([1]),
            json!({"metadata": {"managedFields": [{"manager": "x"}]}}),
            json!({"metadata": null}),
            json!({"spec": {"ports": [{"port": 80}, {"port": 80, "protocol": "TCP"}]}}),
            json!({"spec": {"ports": [{"name": "no-port"}]}}),
            json!({"spec": {"ports": [{"port": {"nested": 1}}]}}),
            json!({"metadata": {"finalizers": ["a", "a"]}}),
            json!({"metadata": {"finalizers": [{"a": 1}]}}),
        ];
        for config in cases {
            let err = apply(None, &config, "alice", false, &info, "v1", T0).unwrap_err();
            assert!(matches!(err, ApplyError::Invalid(_)), "{config}: {err:?}");
            assert_eq!(err.http_status(), 400);
        }
        let msg = apply(None, &cases_dup(), "alice", false, &info, "v1", T0).unwrap_err().to_string();
        assert!(msg.contains(".spec.ports"), "{msg}");
        // An empty managedFields list is allowed, as nil.
        apply(None, &json!({"metadata": {"managedFields": []}}), "alice", false, &info, "v1", T0).unwrap();
    }

    fn cases_dup() -> Value {
        json!({"spec": {"ports": [{"port": 80}, {"port": 80}]}})
    }

    #[test]
    fn status_subresource_apply_gets_its_own_entry() {
        let info = svc_info();
        let live = apply(None, &svc_config(json!([{"port": 80}])), "alice", false, &info, "v1", T0).unwrap();
        let op = Operation { manager: "ferrolb", subresource: Some("status"), api_version: "v1", now: T1 };
        let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.128"}]}}});
        let with_status = apply_as(Some(&live), &status, &op, false, &info).unwrap();
        let e = entry(&with_status, "ferrolb", "Apply").unwrap();
        assert_eq!(e["subresource"], json!("status"));
        assert_eq!(e["fieldsV1"], json!({"f:status": {"f:loadBalancer": {"f:ingress": {}}}}));
        // The main-resource apply of the same manager does not prune what it applied to status.
        let main = apply(
            Some(&with_status),
            &json!({"metadata": {"labels": {"x": "y"}}}),
            "ferrolb",
            false,
            &info,
            "v1",
            T1,
        )
        .unwrap();
        assert_eq!(main["status"], status["status"]);
    }

    #[test]
    fn track_update_on_create_and_status_writes() {
        let info = builtin("", "Node");
        let mut node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "uid": "u1",
            "labels": {"zone": "a"}}, "spec": {"podCIDRs": ["10.0.0.0/24"]}});
        track_update(None, &mut node, "kubelet", None, &info, "v1", T0);
        assert_eq!(
            node["metadata"]["managedFields"],
            json!([{"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": T0, "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {"f:zone": {}}}, "f:spec": {"f:podCIDRs": {"v:\"10.0.0.0/24\"": {}}}}}])
        );

        let mut with_status = node.clone();
        with_status["status"] = json!({"conditions": [{"type": "Ready", "status": "True"}]});
        track_update(Some(&node), &mut with_status, "kubelet", Some("status"), &info, "v1", T1);
        let status_entry = with_status["metadata"]["managedFields"][1].clone();
        assert_eq!(status_entry["subresource"], json!("status"));
        assert_eq!(
            status_entry["fieldsV1"],
            json!({"f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:type": {}, "f:status": {}}}}})
        );
        assert_eq!(
            with_status["metadata"]["managedFields"][0]["time"],
            json!(T0),
            "untouched entries keep their time"
        );

        // Another writer relabels: the label moves to it, the kubelet keeps the rest.
        let mut relabelled = with_status.clone();
        relabelled["metadata"]["labels"]["zone"] = json!("b");
        track_update(Some(&with_status), &mut relabelled, "admin", None, &info, "v1", T1);
        assert_eq!(
            fields(&relabelled, "admin", "Update"),
            &json!({"f:metadata": {"f:labels": {"f:zone": {}}}})
        );
        let kubelet = relabelled["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == json!("kubelet") && e.get("subresource").is_none())
            .unwrap();
        assert_eq!(kubelet["fieldsV1"], json!({"f:spec": {"f:podCIDRs": {"v:\"10.0.0.0/24\"": {}}}}));

        // Removing the only field an entry owned drops the entry.
        let mut unlabelled = relabelled.clone();
        unlabelled["metadata"].as_object_mut().unwrap().remove("labels");
        track_update(Some(&relabelled), &mut unlabelled, "kubelet", None, &info, "v1", T1);
        assert!(entry(&unlabelled, "admin", "Update").is_none());
    }

    #[test]
    fn track_update_without_changes_adds_nothing() {
        let info = Unstructured;
        let mut obj = json!({"metadata": {"name": "c"}, "data": {"x": "1"}});
        track_update(None, &mut obj, "alice", None, &info, "v1", T0);
        let mut same = obj.clone();
        same["metadata"]["resourceVersion"] = json!("7");
        track_update(Some(&obj), &mut same, "bob", None, &info, "v1", T1);
        assert_eq!(same["metadata"]["managedFields"], obj["metadata"]["managedFields"]);
    }

    #[test]
    fn track_update_honours_managed_fields_sent_by_the_client() {
        let info = Unstructured;
        let mut obj = json!({"metadata": {"name": "c"}, "data": {"x": "1"}});
        track_update(None, &mut obj, "alice", None, &info, "v1", T0);
        for cleared in [json!([]), json!([{}])] {
            let mut stripped = obj.clone();
            stripped["metadata"]["managedFields"] = cleared;
            track_update(Some(&obj), &mut stripped, "bob", None, &info, "v1", T1);
            assert!(stripped["metadata"].get("managedFields").is_none());
        }
        let mut reassigned = obj.clone();
        reassigned["metadata"]["managedFields"][0]["manager"] = json!("carol");
        track_update(Some(&obj), &mut reassigned, "bob", None, &info, "v1", T1);
        assert!(entry(&reassigned, "carol", "Update").is_some());
        assert!(entry(&reassigned, "alice", "Update").is_none());
        // Managed fields that cannot be read are dropped rather than failing the write.
        let mut garbage = obj.clone();
        garbage["metadata"]["managedFields"] =
            json!([{"manager": "x", "operation": "Update", "fieldsV1": {"zz": 1}}]);
        garbage["data"]["y"] = json!("2");
        track_update(Some(&obj), &mut garbage, "bob", None, &info, "v1", T1);
        assert_eq!(fields(&garbage, "bob", "Update"), &json!({"f:data": {"f:y": {}}}));
        assert_eq!(garbage["metadata"]["managedFields"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn custom_resource_lists_follow_the_schema() {
        let info = from_openapi_schema(
            &json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "peers": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["address"]}}}}}),
        );
        let a = apply(
            None,
            &json!({"spec": {"peers": [{"address": "192.0.2.1", "asn": 1}]}}),
            "alice",
            false,
            &info,
            "v1",
            T0,
        )
        .unwrap();
        let ab = apply(
            Some(&a),
            &json!({"spec": {"peers": [{"address": "192.0.2.2", "asn": 2}]}}),
            "bob",
            false,
            &info,
            "v1",
            T0,
        )
        .unwrap();
        assert_eq!(ab["spec"]["peers"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn live_objects_with_invalid_keyed_lists_are_owned_atomically() {
        let info = svc_info();
        let live = json!({"spec": {"ports": [{"port": 80}, {"port": 80}]}});
        let set = FieldSet::from_object(&live, &info);
        assert_eq!(set.to_fields_v1(), json!({"f:spec": {"f:ports": {}}}));
        let mut new = live.clone();
        new["spec"]["ports"] = json!([{"port": 81}]);
        track_update(Some(&live), &mut new, "x", None, &info, "v1", T0);
        assert!(entry(&new, "x", "Update").is_some());
    }

    mod properties {
        use super::*;
        use crate::types::arbitrary;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn apply_never_panics_and_is_idempotent(live in arbitrary::object(), config in arbitrary::object(), force in any::<bool>()) {
                let info = svc_info();
                let live = if live.as_object().is_some_and(|m| m.is_empty()) { None } else { Some(&live) };
                if let Ok(applied) = apply(live, &config, "alice", force, &info, "v1", T0) {
                    prop_assert!(applied.is_object());
                    // A configuration owning nothing leaves no entry, and the next apply then meets
                    // "before-first-apply", as on a real server.
                    if entry(&applied, "alice", "Apply").is_some() {
                        let again = apply(Some(&applied), &config, "alice", force, &info, "v1", T1);
                        prop_assert_eq!(again, Ok(applied));
                    }
                }
            }

            #[test]
            fn applies_by_several_managers_set_what_they_apply(
                steps in prop::collection::vec((prop::sample::select(&["alice", "bob", "carol"][..]), arbitrary::service(), any::<bool>()), 1..6)
            ) {
                let info = svc_info();
                let mut live: Option<Value> = None;
                for (manager, config, force) in steps {
                    match apply(live.as_ref(), &config, manager, force, &info, "v1", T0) {
                        Ok(applied) => {
                            for path in FieldSet::from_config(&config, &info).unwrap().paths() {
                                // An owned empty map says nothing about what others put in it.
                                let wanted = resolve(&config, path, &info);
                                if matches!(path.last(), Some(PathElement::Field(_))) && wanted != Some(&json!({})) {
                                    prop_assert_eq!(resolve(&applied, path, &info), wanted, "{}", path_to_string(path));
                                }
                            }
                            let managers = read_managers(&applied);
                            prop_assert!(managers.iter().all(|m| !m.fields.is_empty()));
                            prop_assert!(managers.iter().any(|m| m.is(manager, APPLY, None)));
                            live = Some(applied);
                        }
                        Err(ApplyError::Conflicts(conflicts)) => prop_assert!(!force && !conflicts.is_empty()),
                        Err(e) => prop_assert!(false, "{e}"),
                    }
                }
            }

            #[test]
            fn track_update_never_panics(old in arbitrary::object(), mut new in arbitrary::object(), status in any::<bool>()) {
                let subresource = status.then_some("status");
                track_update(Some(&old), &mut new, "bob", subresource, &svc_info(), "v1", T0);
                let managed = new.get("metadata").and_then(|m| m.get("managedFields")).cloned();
                // Whatever was written can be read back.
                if let Some(Value::Array(entries)) = managed {
                    for entry in entries {
                        prop_assert!(Manager::parse(&entry).is_ok(), "{}", entry);
                    }
                }
            }

            #[test]
            fn field_sets_round_trip_through_fields_v1(object in arbitrary::object()) {
                let set = FieldSet::from_object(&object, &svc_info());
                prop_assert_eq!(FieldSet::from_fields_v1(&set.to_fields_v1()), Ok(set));
            }

            #[test]
            fn reading_arbitrary_fields_v1_never_panics(fields in arbitrary::value()) {
                if let Ok(set) = FieldSet::from_fields_v1(&fields) {
                    prop_assert_eq!(FieldSet::from_fields_v1(&set.to_fields_v1()), Ok(set));
                }
            }
        }
    }
}
