//! The three PATCH content types of the Kubernetes API: JSON merge patch (RFC 7386), JSON patch
//! (RFC 6902) and strategic merge patch.
//!
//! Strategic merge patch follows `k8s.io/apimachinery/pkg/util/strategicpatch` for the directives
//! clients send (`kubectl patch`, `kubectl apply` without `--server-side`, client-go), with these
//! simplifications:
//! - `$deleteFromPrimitiveList/<field>` runs before the map's other fields are merged, so a patch that
//!   both adds and deletes the same value ends up with it added;
//! - `$setElementOrder/<field>` reorders only the items it names, among the positions they already hold;
//!   items it does not name keep their positions;
//! - lists of lists are not rejected, and directives in the items of lists without a merge strategy are
//!   processed as for new values (a `{"$patch": "delete"}` item vanishes) instead of being rejected.

use serde_json::{Map, Value};

use crate::types::{StrategicList, TypeInfo};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";

/// Why a patch could not be applied. The messages follow the API server's where it has one.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PatchError {
    /// The type has no strategic merge information (custom resources); the server answers 415.
    #[error(
        "the body of the request was in an unknown format - accepted media types include: \
         application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    )]
    StrategicMergeUnsupported,
    /// The JSON patch is not a list of RFC 6902 operations.
    #[error("invalid JSON patch: {0}")]
    InvalidJsonPatch(String),
    /// A JSON patch operation failed, a `test` included; the whole patch is discarded.
    #[error("the server rejected our request due to an error in our request: {0}")]
    JsonPatchFailed(String),
    /// The strategic merge patch is malformed: a bad directive, a list item without its merge key, etc.
    #[error("invalid strategic merge patch: {0}")]
    InvalidStrategicPatch(String),
}

impl PatchError {
    /// The HTTP status a kube-apiserver answers with for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            PatchError::StrategicMergeUnsupported => 415,
            PatchError::InvalidJsonPatch(_) | PatchError::InvalidStrategicPatch(_) => 400,
            PatchError::JsonPatchFailed(_) => 422,
        }
    }
}

/// Applies a JSON merge patch (RFC 7386): objects merge recursively, `null` deletes, anything else
/// replaces. A patch that is not an object replaces the whole target.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// Applies a JSON patch (RFC 6902). Either every operation applies or `target` is left unchanged.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| PatchError::InvalidJsonPatch(e.to_string()))?;
    // Patching a copy keeps `target` intact on failure without relying on the crate's undo log.
    let mut patched = target.clone();
    json_patch::patch_unsafe(&mut patched, &ops.0).map_err(|e| {
        let op = ops.0.get(e.operation).map_or("?", op_name);
        PatchError::JsonPatchFailed(format!(
            "json patch {op} operation {} failed at path \"{}\": {}",
            e.operation, e.path, e.kind
        ))
    })?;
    *target = patched;
    Ok(())
}

fn op_name(op: &json_patch::PatchOperation) -> &'static str {
    use json_patch::PatchOperation::*;
    match op {
        Add(_) => "add",
        Remove(_) => "remove",
        Replace(_) => "replace",
        Move(_) => "move",
        Copy(_) => "copy",
        Test(_) => "test",
    }
}

/// Applies a Kubernetes strategic merge patch. Either the patch applies or `target` is left unchanged.
///
/// Maps merge recursively and `null` deletes a field. Lists follow `info.strategic_list`: merge-key lists
/// merge items by key (new items are appended), primitive merge lists take the union, other lists are
/// replaced. Directives: `$patch: replace | delete | merge` on maps and merge-list items,
/// `{"$patch": "replace"}` as a list item (replace the whole list), `$retainKeys`,
/// `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>` (see the module notes).
pub fn strategic_merge_patch(
    target: &mut Value,
    patch: &Value,
    info: &dyn TypeInfo,
) -> Result<(), PatchError> {
    if !info.strategic_merge_supported() {
        return Err(PatchError::StrategicMergeUnsupported);
    }
    let Value::Object(patch) = patch else {
        return Err(invalid(format!("the patch must be a JSON object, not {}", kind_of(patch))));
    };
    let mut merged = match target {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let mut merger = Merger { info, path: Vec::new() };
    *target = match merger.merge_map(&mut merged, patch)? {
        Outcome::Keep => Value::Object(merged),
        Outcome::Delete => Value::Object(Map::new()),
    };
    Ok(())
}

fn invalid(message: String) -> PatchError {
    PatchError::InvalidStrategicPatch(message)
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// What the patch asked of a map: keep it (merged) or delete it (`$patch: delete`).
enum Outcome {
    Keep,
    Delete,
}

struct Merger<'a> {
    info: &'a dyn TypeInfo,
    /// The field path of the value being merged, list items skipped, for `TypeInfo` lookups.
    path: Vec<String>,
}

impl Merger<'_> {
    fn strategy(&self) -> StrategicList {
        let path: Vec<&str> = self.path.iter().map(String::as_str).collect();
        self.info.strategic_list(&path)
    }

    fn location(&self) -> String {
        if self.path.is_empty() { "the object".to_string() } else { format!(".{}", self.path.join(".")) }
    }

    fn merge_map(
        &mut self,
        original: &mut Map<String, Value>,
        patch: &Map<String, Value>,
    ) -> Result<Outcome, PatchError> {
        match patch.get(PATCH) {
            None => {}
            Some(Value::String(s)) if s == "merge" => {}
            Some(Value::String(s)) if s == "delete" => return Ok(Outcome::Delete),
            Some(Value::String(s)) if s == "replace" => {
                original.clear();
                let rest: Map<String, Value> =
                    patch.iter().filter(|(k, _)| *k != PATCH).map(|(k, v)| (k.clone(), v.clone())).collect();
                return self.merge_map(original, &rest);
            }
            Some(other) => return Err(invalid(format!("unknown patch type {other} in {}", self.location()))),
        }

        if let Some(retain) = patch.get(RETAIN_KEYS) {
            let keys = string_list(retain).ok_or_else(|| {
                invalid(format!("$retainKeys in {} must be a list of strings", self.location()))
            })?;
            if let Some(field) = patch.keys().find(|k| !is_directive(k) && !keys.contains(&k.as_str())) {
                return Err(invalid(format!(
                    "$retainKeys in {} does not name the patched field \"{field}\"",
                    self.location()
                )));
            }
            original.retain(|k, _| keys.contains(&k.as_str()));
        }

        for (key, values) in patch {
            let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) else { continue };
            let Value::Array(values) = values else {
                return Err(invalid(format!("{key} in {} must be a list", self.location())));
            };
            if let Some(Value::Array(list)) = original.get_mut(field) {
                list.retain(|item| !values.contains(item));
            }
        }

        for (key, value) in patch {
            if is_directive(key) {
                continue;
            }
            self.path.push(key.clone());
            let result = self.merge_field(original, key, value);
            self.path.pop();
            result?;
        }

        for (key, order) in patch {
            let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) else { continue };
            let Value::Array(order) = order else {
                return Err(invalid(format!("{key} in {} must be a list", self.location())));
            };
            self.path.push(field.to_string());
            let strategy = self.strategy();
            self.path.pop();
            if let Some(Value::Array(list)) = original.get_mut(field) {
                set_element_order(list, order, &strategy);
            }
        }
        Ok(Outcome::Keep)
    }

    fn merge_field(
        &mut self,
        original: &mut Map<String, Value>,
        key: &str,
        patch: &Value,
    ) -> Result<(), PatchError> {
        if patch.is_null() {
            original.remove(key);
            return Ok(());
        }
        let keep = match (original.get_mut(key), patch) {
            (Some(Value::Object(live)), Value::Object(patch)) => {
                matches!(self.merge_map(live, patch)?, Outcome::Keep)
            }
            (Some(Value::Array(live)), Value::Array(patch)) => {
                self.merge_list(live, patch)?;
                true
            }
            _ => match self.fresh(patch)? {
                Some(value) => {
                    original.insert(key.to_string(), value);
                    true
                }
                None => false,
            },
        };
        if !keep {
            original.remove(key);
        }
        Ok(())
    }

    /// A patch value for a field the original lacks (or holds with another type): directives are
    /// processed against an empty value so they never end up stored. `None` means "absent".
    fn fresh(&mut self, patch: &Value) -> Result<Option<Value>, PatchError> {
        Ok(match patch {
            Value::Object(patch) => {
                let mut map = Map::new();
                match self.merge_map(&mut map, patch)? {
                    Outcome::Keep => Some(Value::Object(map)),
                    Outcome::Delete => None,
                }
            }
            Value::Array(patch) => {
                let mut list = Vec::new();
                self.merge_list(&mut list, patch)?;
                Some(Value::Array(list))
            }
            Value::Null => None,
            scalar => Some(scalar.clone()),
        })
    }

    fn merge_list(&mut self, original: &mut Vec<Value>, patch: &[Value]) -> Result<(), PatchError> {
        let strategy = self.strategy();
        if strategy == StrategicList::Replace {
            original.clear();
            for item in patch {
                original.extend(self.fresh(item)?);
            }
            return Ok(());
        }
        // An item `{"$patch": "replace"}` replaces the whole list with the other items (the marker's other
        // fields, if any, are dropped as the API server does).
        let is_replace_marker = |item: &Value| item.get(PATCH).and_then(Value::as_str) == Some("replace");
        if patch.iter().any(is_replace_marker) {
            original.clear();
            let rest: Vec<Value> = patch.iter().filter(|i| !is_replace_marker(i)).cloned().collect();
            return self.merge_list(original, &rest);
        }
        match strategy {
            StrategicList::Replace => Ok(()),
            StrategicList::MergePrimitives => {
                for item in patch {
                    if item.is_object() || item.is_array() {
                        return Err(invalid(format!(
                            "{} is a list of primitives but the patch holds {}",
                            self.location(),
                            kind_of(item)
                        )));
                    }
                    if !original.contains(item) {
                        original.push(item.clone());
                    }
                }
                Ok(())
            }
            StrategicList::MergeByKey(merge_key) => {
                for item in patch {
                    self.merge_keyed_item(original, item, &merge_key)?;
                }
                Ok(())
            }
        }
    }

    fn merge_keyed_item(
        &mut self,
        original: &mut Vec<Value>,
        item: &Value,
        merge_key: &str,
    ) -> Result<(), PatchError> {
        let Value::Object(item) = item else {
            return Err(invalid(format!(
                "{}: {} is not an object; the list merges on {merge_key}",
                self.location(),
                kind_of(item)
            )));
        };
        let Some(key) = item.get(merge_key) else {
            return Err(invalid(format!(
                "{}: map: {} does not contain declared merge key: {merge_key}",
                self.location(),
                Value::Object(item.clone())
            )));
        };
        let position = original.iter().position(|live| live.get(merge_key) == Some(key));
        match (item.get(PATCH), position) {
            (Some(Value::String(s)), _) if s == "delete" => {
                original.retain(|live| live.get(merge_key) != Some(key))
            }
            (Some(Value::String(s)), _) if s == "merge" => {
                return Err(invalid(format!(
                    "{}: merging lists cannot yet be specified in the patch",
                    self.location()
                )));
            }
            (Some(other), _) => {
                return Err(invalid(format!(
                    "{}: unknown patch type {other} in a list item",
                    self.location()
                )));
            }
            (None, Some(i)) => {
                if let Value::Object(live) = &mut original[i] {
                    if let Outcome::Delete = self.merge_map(live, item)? {
                        original.remove(i);
                    }
                } else if let Some(value) = self.fresh(&Value::Object(item.clone()))? {
                    original[i] = value;
                }
            }
            (None, None) => original.extend(self.fresh(&Value::Object(item.clone()))?),
        }
        Ok(())
    }
}

fn is_directive(key: &str) -> bool {
    key == PATCH
        || key == RETAIN_KEYS
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
        || key.starts_with(SET_ELEMENT_ORDER)
}

fn string_list(value: &Value) -> Option<Vec<&str>> {
    value.as_array()?.iter().map(Value::as_str).collect()
}

/// Reorders the items `order` names into that order, within the positions those items already occupy.
fn set_element_order(list: &mut [Value], order: &[Value], strategy: &StrategicList) {
    let rank = |item: &Value| -> Option<usize> {
        match strategy {
            StrategicList::MergeByKey(key) => {
                let id = item.get(key)?;
                order.iter().position(|o| o.get(key) == Some(id))
            }
            StrategicList::MergePrimitives => order.iter().position(|o| o == item),
            StrategicList::Replace => None,
        }
    };
    let slots: Vec<usize> = (0..list.len()).filter(|&i| rank(&list[i]).is_some()).collect();
    let mut named: Vec<Value> = slots.iter().map(|&i| list[i].clone()).collect();
    named.sort_by_key(|item| rank(item));
    for (slot, item) in slots.into_iter().zip(named) {
        list[slot] = item;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Unstructured, builtin};
    use pretty_assertions::assert_eq;
    use serde_json::json;

    fn service() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}, "finalizers": ["a"]},
            "spec": {
                "type": "LoadBalancer",
                "ports": [
                    {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
                    {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443}
                ],
                "externalIPs": ["192.0.2.1", "192.0.2.2"],
                "selector": {"app": "web"}
            }
        })
    }

    fn smp(target: &mut Value, patch: Value) -> Result<(), PatchError> {
        strategic_merge_patch(target, &patch, &builtin("", "Service"))
    }

    #[test]
    fn merge_patch_null_deletes_and_maps_merge() {
        let mut svc = service();
        merge_patch(
            &mut svc,
            &json!({"metadata": {"labels": {"tier": null, "new": "x"}}, "spec": {"externalIPs": ["192.0.2.9"]}}),
        );
        assert_eq!(svc["metadata"]["labels"], json!({"app": "web", "new": "x"}));
        assert_eq!(svc["spec"]["externalIPs"], json!(["192.0.2.9"]));
        assert_eq!(svc["spec"]["ports"].as_array().unwrap().len(), 2);
        merge_patch(&mut svc, &json!({"spec": null}));
        assert!(svc.get("spec").is_none());
    }

    #[test]
    fn json_patch_applies_all_operations() {
        let mut svc = service();
        json_patch(
            &mut svc,
            &json!([
                {"op": "test", "path": "/spec/type", "value": "LoadBalancer"},
                {"op": "replace", "path": "/spec/ports/0/port", "value": 8000},
                {"op": "add", "path": "/metadata/finalizers/-", "value": "b"},
                {"op": "remove", "path": "/metadata/labels/tier"},
                {"op": "copy", "from": "/metadata/name", "path": "/metadata/labels/name"},
                {"op": "move", "from": "/spec/selector", "path": "/spec/oldSelector"}
            ]),
        )
        .unwrap();
        assert_eq!(svc["spec"]["ports"][0]["port"], json!(8000));
        assert_eq!(svc["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(svc["metadata"]["labels"], json!({"app": "web", "name": "web"}));
        assert_eq!(svc["spec"]["oldSelector"], json!({"app": "web"}));
        assert!(svc["spec"].get("selector").is_none());
    }

    #[test]
    fn json_patch_failed_test_leaves_the_object_unchanged() {
        let mut svc = service();
        let err = json_patch(
            &mut svc,
            &json!([
                {"op": "replace", "path": "/spec/type", "value": "ClusterIP"},
                {"op": "test", "path": "/metadata/labels/app", "value": "db"}
            ]),
        )
        .unwrap_err();
        assert_eq!(svc, service());
        assert_eq!(err.http_status(), 422);
        let message = err.to_string();
        assert!(message.contains("test operation 1"), "{message}");
        assert!(message.contains("/metadata/labels/app"), "{message}");
    }

    #[test]
    fn json_patch_errors_on_bad_documents_and_paths() {
        let mut svc = service();
        for bad in [
            json!({"op": "add"}),
            json!([{"op": "frobnicate", "path": "/a"}]),
            json!([{"path": "/a"}]),
            json!("x"),
        ] {
            let err = json_patch(&mut svc, &bad).unwrap_err();
            assert!(matches!(err, PatchError::InvalidJsonPatch(_)), "{bad}: {err:?}");
            assert_eq!(err.http_status(), 400);
        }
        let err = json_patch(&mut svc, &json!([{"op": "remove", "path": "/spec/nope"}])).unwrap_err();
        assert!(matches!(err, PatchError::JsonPatchFailed(_)), "{err:?}");
        assert_eq!(svc, service());
    }

    #[test]
    fn strategic_merges_service_ports_by_port() {
        let mut svc = service();
        smp(&mut svc, json!({"spec": {"ports": [{"port": 443, "targetPort": 9443}, {"name": "dns", "port": 53, "protocol": "UDP"}]}}))
            .unwrap();
        assert_eq!(
            svc["spec"]["ports"],
            json!([
                {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
                {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 9443},
                {"name": "dns", "port": 53, "protocol": "UDP"}
            ])
        );
    }

    #[test]
    fn strategic_delete_directive_on_list_item_and_map() {
        let mut svc = service();
        smp(
            &mut svc,
            json!({"spec": {"ports": [{"port": 80, "$patch": "delete"}], "selector": {"$patch": "delete"}}}),
        )
        .unwrap();
        assert_eq!(
            svc["spec"]["ports"],
            json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443}])
        );
        assert!(svc["spec"].get("selector").is_none());
    }

    #[test]
    fn strategic_replace_directives() {
        let mut svc = service();
        smp(&mut svc, json!({"metadata": {"labels": {"$patch": "replace", "only": "me"}}})).unwrap();
        assert_eq!(svc["metadata"]["labels"], json!({"only": "me"}));
        smp(&mut svc, json!({"spec": {"ports": [{"$patch": "replace"}, {"port": 8080, "protocol": "TCP"}]}}))
            .unwrap();
        assert_eq!(svc["spec"]["ports"], json!([{"port": 8080, "protocol": "TCP"}]));
        smp(&mut svc, json!({"metadata": {"finalizers": ["x", {"$patch": "replace"}]}})).unwrap();
        assert_eq!(svc["metadata"]["finalizers"], json!(["x"]));
    }

    #[test]
    fn strategic_finalizers_union_and_delete_from_primitive_list() {
        let mut svc = service();
        smp(&mut svc, json!({"metadata": {"finalizers": ["b", "a", "c"]}})).unwrap();
        assert_eq!(svc["metadata"]["finalizers"], json!(["a", "b", "c"]));
        smp(&mut svc, json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a", "zz"]}})).unwrap();
        assert_eq!(svc["metadata"]["finalizers"], json!(["b", "c"]));
        smp(&mut svc, json!({"metadata": {"$setElementOrder/finalizers": ["c", "b"]}})).unwrap();
        assert_eq!(svc["metadata"]["finalizers"], json!(["c", "b"]));
    }

    #[test]
    fn strategic_lists_without_strategy_are_replaced() {
        let mut svc = service();
        smp(&mut svc, json!({"spec": {"externalIPs": ["192.0.2.7"], "type": null}})).unwrap();
        assert_eq!(svc["spec"]["externalIPs"], json!(["192.0.2.7"]));
        assert!(svc["spec"].get("type").is_none());
    }

    #[test]
    fn strategic_set_element_order_on_keyed_list() {
        let mut svc = service();
        smp(&mut svc, json!({"spec": {"$setElementOrder/ports": [{"port": 443}, {"port": 80}], "ports": [{"port": 443, "name": "tls"}]}}))
            .unwrap();
        let ports: Vec<&Value> =
            svc["spec"]["ports"].as_array().unwrap().iter().map(|p| &p["port"]).collect();
        assert_eq!(ports, [&json!(443), &json!(80)]);
        assert_eq!(svc["spec"]["ports"][0]["name"], json!("tls"));
    }

    #[test]
    fn strategic_retain_keys_clears_other_fields() {
        let mut svc = service();
        smp(&mut svc, json!({"spec": {"$retainKeys": ["type", "ports"], "type": "NodePort"}})).unwrap();
        assert_eq!(svc["spec"]["type"], json!("NodePort"));
        assert!(svc["spec"].get("selector").is_none());
        assert!(svc["spec"].get("ports").is_some());
        let err = smp(&mut svc, json!({"spec": {"$retainKeys": ["type"], "selector": {}}})).unwrap_err();
        assert!(err.to_string().contains("selector"), "{err}");
    }

    #[test]
    fn strategic_node_conditions_merge_by_type() {
        let node_info = builtin("", "Node");
        let mut node = json!({"status": {"conditions": [
            {"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}
        ]}});
        strategic_merge_patch(
            &mut node,
            &json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Down"}]}}),
            &node_info,
        )
        .unwrap();
        assert_eq!(
            node["status"]["conditions"],
            json!([{"type": "Ready", "status": "False", "reason": "Down"}, {"type": "MemoryPressure", "status": "False"}])
        );
    }

    #[test]
    fn strategic_new_fields_have_their_directives_processed() {
        let mut svc = json!({"metadata": {"name": "x"}});
        smp(&mut svc, json!({"spec": {"ports": [{"port": 1, "$patch": "delete"}, {"port": 2}], "selector": {"a": "b", "c": null}}})).unwrap();
        assert_eq!(svc["spec"], json!({"ports": [{"port": 2}], "selector": {"a": "b"}}));
    }

    #[test]
    fn strategic_errors() {
        let mut svc = service();
        let cases = [
            json!({"spec": {"ports": [{"name": "no-port"}]}}),
            json!({"spec": {"ports": ["80"]}}),
            json!({"spec": {"$patch": "explode"}}),
            json!({"spec": {"$patch": 3}}),
            json!({"spec": {"ports": [{"port": 80, "$patch": "merge"}]}}),
            json!({"spec": {"ports": [{"port": 80, "$patch": "nope"}]}}),
            json!({"spec": {"ports": [{"$patch": "delete"}]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
            json!({"metadata": {"finalizers": [{"a": 1}]}}),
            json!({"spec": {"$retainKeys": "type"}}),
            json!({"spec": {"$setElementOrder/ports": {}}}),
            json!(["not", "an", "object"]),
        ];
        for patch in cases {
            let err = smp(&mut svc, patch.clone()).unwrap_err();
            assert!(matches!(err, PatchError::InvalidStrategicPatch(_)), "{patch}: {err:?}");
            assert_eq!(svc, service(), "{patch} changed the object");
        }
        let err = strategic_merge_patch(&mut svc, &json!({}), &Unstructured).unwrap_err();
        assert_eq!(err, PatchError::StrategicMergeUnsupported);
        assert_eq!(err.http_status(), 415);
    }

    #[test]
    fn strategic_merge_of_non_object_target_starts_empty() {
        let mut target = json!(3);
        smp(&mut target, json!({"a": {"b": 1}})).unwrap();
        assert_eq!(target, json!({"a": {"b": 1}}));
    }

    mod properties {
        use super::*;
        use crate::types::arbitrary;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn strategic_merge_never_panics(mut target in arbitrary::object(), patch in arbitrary::value()) {
                let before = target.clone();
                let info = builtin("", "Service");
                match strategic_merge_patch(&mut target, &patch, &info) {
                    Ok(()) => prop_assert!(target.is_object()),
                    Err(_) => prop_assert_eq!(target, before),
                }
            }

            #[test]
            fn json_patch_never_panics(mut target in arbitrary::object(), patch in arbitrary::json_patch()) {
                let before = target.clone();
                if json_patch(&mut target, &patch).is_err() {
                    prop_assert_eq!(target, before);
                }
            }

            #[test]
            fn merge_patch_of_an_object_with_itself_is_identity(target in arbitrary::object()) {
                // RFC 7386 drops nulls, so compare against the null-free result of one application.
                let mut once = target.clone();
                merge_patch(&mut once, &target);
                let mut twice = once.clone();
                merge_patch(&mut twice, &once);
                prop_assert_eq!(once, twice);
            }
        }
    }
}
