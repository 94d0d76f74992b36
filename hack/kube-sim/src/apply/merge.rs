//! Merging an applied configuration into a live object, pruning the fields an apply no longer
//! sets, and comparing two versions of an object field by field.

use serde_json::{Map, Value};

use crate::types::{ListType, TypeInfo};

use crate::apply::field_set::{FieldSet, PathElement, item_key};

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
pub(super) fn resolve<'v>(object: &'v Value, path: &[PathElement], info: &dyn TypeInfo) -> Option<&'v Value> {
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
pub(super) fn prune(object: &mut Value, stale: &FieldSet, owned: &FieldSet, info: &dyn TypeInfo) {
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
pub(super) fn merge(live: &mut Value, config: &Value, types: &mut Vec<String>, info: &dyn TypeInfo) {
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
pub(super) struct Comparison {
    pub(super) added: FieldSet,
    pub(super) removed: FieldSet,
    pub(super) modified: FieldSet,
}

impl Comparison {
    pub(super) fn new(old: &Value, new: &Value, info: &dyn TypeInfo) -> Comparison {
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

    pub(super) fn changed(&self) -> FieldSet {
        self.added.union(&self.modified)
    }
}

#[cfg(test)]
mod tests {
    use crate::apply::apply;
    use crate::apply::tests::{T0, T1, conflicts, entry, fields, svc_config, svc_info};
    use pretty_assertions::assert_eq;
    use serde_json::json;

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
}
