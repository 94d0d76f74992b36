//! Pruning: the fields a schema does not specify are dropped, as the apiserver does on decode.

use serde_json::Value;

use crate::schema::flag;

/// Drops every field the schema does not specify, as the apiserver does on decode. The root's
/// `apiVersion`, `kind` and `metadata` (and those of `x-kubernetes-embedded-resource` nodes) are kept
/// untouched; `x-kubernetes-preserve-unknown-fields: true` keeps unknown fields at that node while
/// the fields it does specify are still pruned below it.
pub fn prune(schema: &Value, obj: &mut Value) {
    prune_node(schema, obj, true);
}

fn prune_node(s: &Value, v: &mut Value, embedded: bool) {
    match v {
        Value::Object(map) => {
            let embedded = embedded || flag(s, "x-kubernetes-embedded-resource");
            let props = s.get("properties").and_then(Value::as_object);
            let additional = s.get("additionalProperties");
            let additional_schema = additional.filter(|a| a.is_object());
            let keep_unknown = flag(s, "x-kubernetes-preserve-unknown-fields")
                || additional_schema.is_some()
                || additional == Some(&Value::Bool(true));
            let is_meta = |k: &str| embedded && matches!(k, "apiVersion" | "kind" | "metadata");
            if !keep_unknown {
                map.retain(|k, _| is_meta(k) || props.is_some_and(|p| p.contains_key(k)));
            }
            for (k, child) in map.iter_mut() {
                if is_meta(k) {
                    continue;
                }
                if let Some(ps) = props.and_then(|p| p.get(k)) {
                    prune_node(ps, child, false);
                } else if let Some(a) = additional_schema {
                    prune_node(a, child, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = s.get("items").filter(|i| i.is_object()) {
                for item in items {
                    prune_node(is, item, false);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tests::spec_schema;
    use serde_json::json;

    #[test]
    fn pruning_keeps_specified_fields_under_preserve_unknown_fields() {
        let schema = spec_schema(json!({
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
            "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}},
        }));
        let mut obj = json!({"spec": {"other": {"deep": 1}, "known": {"a": "x", "b": "y"}}});
        prune(&schema, &mut obj);
        assert_eq!(obj, json!({"spec": {"other": {"deep": 1}, "known": {"a": "x"}}}));

        let maps = spec_schema(json!({
            "type": "object",
            "additionalProperties": {"type": "object", "properties": {"a": {"type": "string"}}}
        }));
        let mut obj = json!({"spec": {"k1": {"a": "x", "b": 1}, "k2": {}}});
        prune(&maps, &mut obj);
        assert_eq!(obj, json!({"spec": {"k1": {"a": "x"}, "k2": {}}}));

        let embedded = spec_schema(json!({
            "type": "object",
            "properties": {"template": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}}}
        }));
        let mut obj = json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"x": 1}, "spec": {"y": 1}, "z": 2}}});
        prune(&embedded, &mut obj);
        assert_eq!(
            obj,
            json!({"spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"x": 1}, "spec": {}}}})
        );
    }
}
