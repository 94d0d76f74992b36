//! Structural schema rules, checked when a CRD is created.

use regex::Regex;
use serde_json::{Map, Value};

use crate::schema::flag;
use crate::schema::go_format::go_quote;
use crate::schema::validate::list_map_keys;

/// The violations of the structural-schema rules (and the other schema checks of CRD creation
/// that FerroLB relies on), one message each, every path starting with `openAPIV3Schema`; the
/// caller prefixes `spec.versions[i].schema.`. Empty when the schema is acceptable.
pub fn check_structural(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let root = "openAPIV3Schema";
    match schema.get("type").and_then(Value::as_str) {
        None | Some("") => out.push(format!("{root}.type: Required value: must not be empty at the root")),
        Some("object") => {}
        Some(other) => {
            out.push(format!("{root}.type: Invalid value: {}: must be object at the root", go_quote(other)))
        }
    }
    check_node(schema, root, Level::Root, &mut out);
    if let Some(meta) = schema.get("properties").and_then(|p| p.get("metadata")) {
        check_root_metadata(meta, &format!("{root}.properties[metadata]"), &mut out);
    }
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Level {
    Root,
    Field,
    Item,
}

fn check_node(s: &Value, path: &str, level: Level, out: &mut Vec<String>) {
    let Some(obj) = s.as_object() else {
        out.push(format!("{path}: Invalid value: {}: must be a schema object", s));
        return;
    };
    let ty = obj.get("type").and_then(Value::as_str).unwrap_or("");
    let int_or_string = flag(s, "x-kubernetes-int-or-string");
    let preserve = flag(s, "x-kubernetes-preserve-unknown-fields");

    if ty.is_empty() && !int_or_string && !preserve {
        match level {
            Level::Field => out
                .push(format!("{path}.type: Required value: must not be empty for specified object fields")),
            Level::Item => {
                out.push(format!("{path}.type: Required value: must not be empty for specified array items"))
            }
            Level::Root => {}
        }
    }
    if int_or_string && !ty.is_empty() {
        out.push(format!(
            "{path}.type: Invalid value: {}: must be empty if x-kubernetes-int-or-string is true",
            go_quote(ty)
        ));
    }
    if obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        out.push(format!(
            "{path}.x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined"
        ));
    }
    if flag(s, "x-kubernetes-embedded-resource") {
        if ty != "object" {
            out.push(format!(
                "{path}.type: Invalid value: {}: must be object if x-kubernetes-embedded-resource is true",
                go_quote(ty)
            ));
        }
        if !preserve && obj.get("properties").and_then(Value::as_object).is_none_or(Map::is_empty) {
            out.push(format!(
                "{path}.properties: Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields"
            ));
        }
    }
    if obj.contains_key("$ref") {
        out.push(format!("{path}.$ref: Forbidden: $ref is not supported"));
    }
    if obj.get("additionalProperties") == Some(&Value::Bool(false)) {
        out.push(format!("{path}.additionalProperties: Forbidden: must not be false"));
    }
    if obj.get("additionalProperties").is_some_and(Value::is_object) && obj.contains_key("properties") {
        out.push(format!(
            "{path}.additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
        ));
    }
    if flag(s, "uniqueItems") {
        out.push(format!(
            "{path}.uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
        ));
    }
    if let Some(pattern) = obj.get("pattern").and_then(Value::as_str)
        && let Err(e) = Regex::new(pattern)
    {
        out.push(format!(
            "{path}.pattern: Invalid value: {}: must be a valid regular expression, but isn't: {}",
            go_quote(pattern),
            e.to_string().lines().last().unwrap_or_default()
        ));
    }
    if ty == "array" && !obj.get("items").is_some_and(Value::is_object) {
        out.push(format!("{path}.items: Required value: must be specified"));
    }
    match obj.get("x-kubernetes-list-type").and_then(Value::as_str) {
        None | Some("atomic") => {}
        Some("set") => {}
        Some("map") => check_list_map_schema(s, path, out),
        Some(other) => out.push(format!(
            "{path}.x-kubernetes-list-type: Unsupported value: {}: supported values: \"atomic\", \"map\", \"set\"",
            go_quote(other)
        )),
    }

    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, ps) in props {
            // The root's metadata is special-cased by check_root_metadata.
            if level == Level::Root && k == "metadata" {
                continue;
            }
            check_node(ps, &format!("{path}.properties[{k}]"), Level::Field, out);
        }
    }
    if let Some(is) = obj.get("items") {
        check_node(is, &format!("{path}.items"), Level::Item, out);
    }
    if let Some(a) = obj.get("additionalProperties").filter(|a| a.is_object()) {
        check_node(a, &format!("{path}.additionalProperties"), Level::Field, out);
    }

    for junctor in ["allOf", "anyOf", "oneOf"] {
        if let Some(branches) = obj.get(junctor).and_then(Value::as_array) {
            for (i, b) in branches.iter().enumerate() {
                let allow_type = int_or_string && is_int_or_string_pattern(s, junctor);
                check_value_validation(b, s, &format!("{path}.{junctor}[{i}]"), allow_type, out);
            }
        }
    }
    if let Some(b) = obj.get("not") {
        check_value_validation(b, s, &format!("{path}.not"), false, out);
    }
}

/// `x-kubernetes-int-or-string` may carry `anyOf: [{type: integer}, {type: string}]`, directly or
/// inside an `allOf`, which are the only types allowed inside junctors.
fn is_int_or_string_pattern(s: &Value, junctor: &str) -> bool {
    let is_pair = |v: &Value| {
        v.get("anyOf").and_then(Value::as_array).is_some_and(|a| {
            a.len() == 2
                && a[0].get("type").and_then(Value::as_str) == Some("integer")
                && a[1].get("type").and_then(Value::as_str) == Some("string")
        })
    };
    match junctor {
        "anyOf" => is_pair(s),
        "allOf" => s.get("allOf").and_then(Value::as_array).is_some_and(|a| a.iter().any(is_pair)),
        _ => false,
    }
}

/// Inside allOf/anyOf/oneOf/not only value validations may appear, and only on fields and items
/// that the enclosing schema itself specifies.
fn check_value_validation(b: &Value, parent: &Value, path: &str, allow_type: bool, out: &mut Vec<String>) {
    let Some(obj) = b.as_object() else {
        out.push(format!("{path}: Invalid value: {b}: must be a schema object"));
        return;
    };
    for (name, verb) in [
        ("type", "must be empty to be structural"),
        ("default", "must be undefined to be structural"),
        ("nullable", "must be false to be structural"),
        ("additionalProperties", "must be undefined to be structural"),
        ("x-kubernetes-preserve-unknown-fields", "must be undefined to be structural"),
        ("x-kubernetes-embedded-resource", "must be undefined to be structural"),
        ("x-kubernetes-int-or-string", "must be undefined to be structural"),
        ("x-kubernetes-list-type", "must be undefined to be structural"),
        ("x-kubernetes-list-map-keys", "must be undefined to be structural"),
        ("x-kubernetes-map-type", "must be undefined to be structural"),
    ] {
        if name == "type" && allow_type {
            continue;
        }
        if name == "nullable" && obj.get(name) == Some(&Value::Bool(false)) {
            continue;
        }
        if obj.contains_key(name) {
            out.push(format!("{path}.{name}: Forbidden: {verb}"));
        }
    }
    let parent_props = parent.get("properties").and_then(Value::as_object);
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, ps) in props {
            match parent_props.and_then(|p| p.get(k)) {
                Some(pp) => check_value_validation(ps, pp, &format!("{path}.properties[{k}]"), false, out),
                None => out.push(format!(
                    "{path}.properties[{k}]: Required value: because it is specified in a value validation"
                )),
            }
        }
    }
    if let Some(is) = obj.get("items") {
        match parent.get("items") {
            Some(pi) => check_value_validation(is, pi, &format!("{path}.items"), false, out),
            None => out
                .push(format!("{path}.items: Required value: because it is specified in a value validation")),
        }
    }
    for junctor in ["allOf", "anyOf", "oneOf"] {
        if let Some(branches) = obj.get(junctor).and_then(Value::as_array) {
            for (i, nb) in branches.iter().enumerate() {
                check_value_validation(nb, parent, &format!("{path}.{junctor}[{i}]"), allow_type, out);
            }
        }
    }
    if let Some(nb) = obj.get("not") {
        check_value_validation(nb, parent, &format!("{path}.not"), false, out);
    }
}

fn check_list_map_schema(s: &Value, path: &str, out: &mut Vec<String>) {
    let keys = list_map_keys(s);
    if keys.is_empty() {
        out.push(format!(
            "{path}.x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map"
        ));
        return;
    }
    let items = s.get("items");
    if items.and_then(|i| i.get("type")).and_then(Value::as_str) != Some("object") {
        out.push(format!(
            "{path}.items.type: Invalid value: must be object if x-kubernetes-list-type is map"
        ));
        return;
    }
    let props = items.and_then(|i| i.get("properties")).and_then(Value::as_object);
    let required: Vec<&str> = items
        .and_then(|i| i.get("required"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for k in keys {
        match props.and_then(|p| p.get(k)) {
            None => out.push(format!(
                "{path}.x-kubernetes-list-map-keys: Invalid value: {}: entries must all be names of item properties",
                go_quote(k)
            )),
            Some(ps) => {
                if !required.contains(&k) && ps.get("default").is_none() {
                    out.push(format!(
                        "{path}.items.properties[{k}]: Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property"
                    ));
                }
            }
        }
    }
}

fn check_root_metadata(meta: &Value, path: &str, out: &mut Vec<String>) {
    let Some(obj) = meta.as_object() else { return };
    let allowed_here = |k: &str| matches!(k, "type" | "properties" | "description" | "title");
    let ty = obj.get("type").and_then(Value::as_str);
    let extra_props = obj
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| p.keys().any(|k| k != "name" && k != "generateName"));
    if ty != Some("object") || obj.keys().any(|k| !allowed_here(k)) || extra_props {
        out.push(format!(
            "{path}: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
        ));
        return;
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, ps) in props {
            let p = format!("{path}.properties[{k}]");
            if ps.get("type").and_then(Value::as_str) != Some("string") {
                out.push(format!("{p}.type: Invalid value: must be string"));
            }
            check_node(ps, &p, Level::Field, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tests::{pool_schema, spec_schema};
    use serde_json::json;

    #[test]
    fn structural_schemas() {
        assert!(check_structural(&pool_schema()).is_empty());
        let bad = json!({
            "type": "object",
            "properties": {
                "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}},
                "spec": {
                    "type": "object",
                    "properties": {
                        "untyped": {"description": "no type"},
                        "list": {"type": "array", "items": {"properties": {}}, "uniqueItems": true},
                        "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                        "choice": {"type": "string", "anyOf": [{"type": "string"}], "allOf": [{"properties": {"nope": {"type": "string"}}}]},
                        "re": {"type": "string", "pattern": "("},
                        "free": {"x-kubernetes-preserve-unknown-fields": true}
                    }
                }
            }
        });
        assert_eq!(
            check_structural(&bad),
            [
                "openAPIV3Schema.properties[spec].properties[choice].allOf[0].properties[nope]: Required value: because it is specified in a value validation",
                "openAPIV3Schema.properties[spec].properties[choice].anyOf[0].type: Forbidden: must be empty to be structural",
                "openAPIV3Schema.properties[spec].properties[list].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
                "openAPIV3Schema.properties[spec].properties[list].items.type: Required value: must not be empty for specified array items",
                "openAPIV3Schema.properties[spec].properties[re].pattern: Invalid value: \"(\": must be a valid regular expression, but isn't: error: unclosed group",
                "openAPIV3Schema.properties[spec].properties[untyped].type: Required value: must not be empty for specified object fields",
                "openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified",
            ]
        );
        assert_eq!(
            check_structural(&json!({"properties": {}})),
            ["openAPIV3Schema.type: Required value: must not be empty at the root"]
        );
        let list_map = spec_schema(
            json!({"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object"}}),
        );
        assert_eq!(check_structural(&list_map).len(), 1);
        let names_only = json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 63}}}}});
        assert!(check_structural(&names_only).is_empty());
    }
}
