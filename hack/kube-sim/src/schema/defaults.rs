//! Defaulting: `default` values of absent fields (and of `null`s where the schema is not nullable).

use serde_json::Value;

use crate::schema::flag;

/// Fills in `default`s of missing properties, recursively (inside list items and
/// `additionalProperties` maps too). As in the apiserver, a `null` in a property that is not
/// `nullable` is replaced by its default, or dropped when it has none.
pub fn apply_defaults(schema: &Value, obj: &mut Value) {
    default_node(schema, obj);
}

fn default_node(s: &Value, v: &mut Value) {
    match v {
        Value::Object(map) => {
            let props = s.get("properties").and_then(Value::as_object);
            if let Some(props) = props {
                for (k, ps) in props {
                    let default = ps.get("default");
                    match (map.get(k), default) {
                        (None, Some(d)) => {
                            map.insert(k.clone(), d.clone());
                        }
                        (Some(Value::Null), Some(d)) if !flag(ps, "nullable") => {
                            map.insert(k.clone(), d.clone());
                        }
                        (Some(Value::Null), None) if !flag(ps, "nullable") => {
                            map.remove(k);
                        }
                        _ => {}
                    }
                }
            }
            let additional = s.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in map.iter_mut() {
                if let Some(ps) = props.and_then(|p| p.get(k)) {
                    default_node(ps, child);
                } else if let Some(a) = additional {
                    default_null(a, child);
                    default_node(a, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = s.get("items").filter(|i| i.is_object()) {
                for item in items {
                    default_null(is, item);
                    default_node(is, item);
                }
            }
        }
        _ => {}
    }
}

fn default_null(s: &Value, v: &mut Value) {
    if v.is_null()
        && !flag(s, "nullable")
        && let Some(d) = s.get("default")
    {
        *v = d.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tests::spec_schema;
    use serde_json::json;

    #[test]
    fn defaults_apply_in_items_and_maps_and_replace_nulls() {
        let schema = spec_schema(json!({
            "type": "object",
            "properties": {
                "mode": {"type": "string", "default": "L2"},
                "opt": {"type": "string"},
                "keep": {"type": "string", "nullable": true, "default": "d"},
                "obj": {"type": "object", "default": {}, "properties": {"inner": {"type": "integer", "default": 3}}},
                "list": {"type": "array", "items": {"type": "object", "properties": {"p": {"type": "integer", "default": 80}}}},
                "map": {"type": "object", "additionalProperties": {"type": "object", "properties": {"w": {"type": "integer", "default": 1}}}}
            }
        }));
        let mut obj = json!({"spec": {"opt": null, "keep": null, "list": [{}, {"p": 8080}], "map": {"a": {}, "b": {"w": 5}}}});
        apply_defaults(&schema, &mut obj);
        assert_eq!(
            obj,
            json!({"spec": {
                "mode": "L2", "keep": null, "obj": {"inner": 3},
                "list": [{"p": 80}, {"p": 8080}], "map": {"a": {"w": 1}, "b": {"w": 5}}
            }})
        );
    }
}
