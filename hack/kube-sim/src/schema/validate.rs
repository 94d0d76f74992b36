//! Value validation: types, `required`, enums, string, number, array and object keywords, the
//! junctors (allOf/anyOf/oneOf/not) and `x-kubernetes-list-type`, with kube-openapi's messages.

use serde_json::{Map, Value};

use crate::schema::formats::{check_format, with_regex};
use crate::schema::go_format::{go_float, go_quote};
use crate::schema::{FieldError, FieldErrorKind, flag, index, join, key, shown};

/// Validates an object against the schema's value validations, then its `x-kubernetes-list-type`
/// rules, returning the errors in the apiserver's order and wording. Of the root's `metadata` only
/// `name` and `generateName` are checked against the schema (the only restrictions a structural
/// schema may put there); the rest of ObjectMeta validation is the store's business.
pub fn validate(schema: &Value, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match obj {
        Value::Object(map) if map.contains_key("metadata") => {
            let mut root = map.clone();
            if let Some(Value::Object(meta)) = root.get_mut("metadata") {
                meta.retain(|k, _| k == "name" || k == "generateName");
            }
            validate_node(schema, &Value::Object(root), "", &mut errs);
        }
        _ => validate_node(schema, obj, "", &mut errs),
    }
    validate_list_types(schema, obj, "", &mut errs);
    errs
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    }
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => is_integer(v),
        "number" => v.is_number(),
        // An unknown type name was rejected when the CRD was created; nothing to check.
        _ => true,
    }
}

fn schema_f64(s: &Value, name: &str) -> Option<f64> {
    s.get(name).and_then(Value::as_f64)
}

fn schema_usize(s: &Value, name: &str) -> Option<u64> {
    s.get(name).and_then(Value::as_u64)
}

fn validate_node(s: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if !s.is_object() {
        return;
    }
    let p = shown(path);
    let int_or_string = flag(s, "x-kubernetes-int-or-string");
    let ty = s.get("type").and_then(Value::as_str).filter(|t| !t.is_empty());

    if v.is_null() {
        // kube-openapi only checks type and enum of a null.
        let want = if int_or_string { Some("integer,string") } else { ty };
        if let Some(want) = want
            && !flag(s, "nullable")
        {
            errs.push(type_error(path, want, "null"));
        }
        check_enum(s, v, path, errs);
        return;
    }

    if int_or_string && ty.is_none() {
        if !(is_integer(v) || v.is_string()) {
            errs.push(type_error(path, "integer,string", json_type(v)));
        }
    } else if let Some(ty) = ty
        && !type_matches(ty, v)
    {
        errs.push(type_error(path, ty, json_type(v)));
    }

    if let Some(format) = s.get("format").and_then(Value::as_str) {
        check_format(format, v, path, errs);
    }

    if let Value::String(text) = v {
        let chars = text.chars().count() as u64;
        if let Some(max) = schema_usize(s, "maxLength")
            && chars > max
        {
            let unit = if max == 1 { "byte" } else { "bytes" };
            let msg = format!("may not be more than {max} {unit}");
            errs.push(FieldError::new(path, FieldErrorKind::TooLong, Some(v.clone()), msg));
        }
        if let Some(min) = schema_usize(s, "minLength")
            && chars < min
        {
            let msg = format!("{p} in body should be at least {min} chars long");
            errs.push(FieldError::new(path, FieldErrorKind::Invalid, Some(v.clone()), msg));
        }
        if let Some(pattern) = s.get("pattern").and_then(Value::as_str)
            && let Some(false) = with_regex(pattern, |re| re.is_match(text))
        {
            let msg = format!("{p} in body should match '{pattern}'");
            errs.push(FieldError::new(path, FieldErrorKind::Invalid, Some(v.clone()), msg));
        }
    }

    if let Value::Number(n) = v
        && let Some(x) = n.as_f64()
    {
        check_number(s, x, v, path, errs);
    }

    check_enum(s, v, path, errs);

    if let Value::Array(items) = v {
        let len = items.len() as u64;
        if let Some(max) = schema_usize(s, "maxItems")
            && len > max
        {
            errs.push(too_many(path, len, max));
        }
        if let Some(min) = schema_usize(s, "minItems")
            && len < min
        {
            let msg = format!("{p} in body should have at least {min} items");
            errs.push(FieldError::new(path, FieldErrorKind::Invalid, Some(Value::from(len)), msg));
        }
        if flag(s, "uniqueItems") && first_duplicate(items).is_some() {
            let msg = format!("{p} in body shouldn't contain duplicates");
            errs.push(FieldError::new(path, FieldErrorKind::Invalid, Some(Value::from("")), msg));
        }
        if let Some(is) = s.get("items").filter(|i| i.is_object()) {
            for (i, item) in items.iter().enumerate() {
                validate_node(is, item, &index(path, i), errs);
            }
        }
    }

    if let Value::Object(map) = v {
        check_object(s, map, path, errs);
    }

    check_junctors(s, v, path, errs);
}

fn type_error(path: &str, want: &str, got: &str) -> FieldError {
    let msg = format!("{} in body must be of type {want}: {}", shown(path), go_quote(got));
    FieldError::new(path, FieldErrorKind::TypeInvalid, Some(Value::from(got)), msg)
}

fn too_many(path: &str, actual: u64, max: u64) -> FieldError {
    let unit = if max == 1 { "item" } else { "items" };
    let msg = format!("must have at most {max} {unit}");
    FieldError::new(path, FieldErrorKind::TooMany, Some(Value::from(actual)), msg)
}

fn check_number(s: &Value, x: f64, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let p = shown(path);
    let mut invalid = |msg: String| {
        errs.push(FieldError::new(path, FieldErrorKind::Invalid, Some(v.clone()), msg));
    };
    if let Some(m) = schema_f64(s, "multipleOf")
        && m > 0.0
        && (x / m).fract() != 0.0
    {
        invalid(format!("{p} in body should be a multiple of {}", go_float(m)));
    }
    if let Some(max) = schema_f64(s, "maximum") {
        if flag(s, "exclusiveMaximum") && x >= max {
            invalid(format!("{p} in body should be less than {}", go_float(max)));
        } else if x > max {
            invalid(format!("{p} in body should be less than or equal to {}", go_float(max)));
        }
    }
    if let Some(min) = schema_f64(s, "minimum") {
        if flag(s, "exclusiveMinimum") && x <= min {
            invalid(format!("{p} in body should be greater than {}", go_float(min)));
        } else if x < min {
            invalid(format!("{p} in body should be greater than or equal to {}", go_float(min)));
        }
    }
}

fn check_enum(s: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(allowed) = s.get("enum").and_then(Value::as_array) else { return };
    if allowed.iter().any(|a| json_equal(a, v)) {
        return;
    }
    let quoted: Vec<String> = allowed
        .iter()
        .map(|a| match a {
            Value::String(s) => go_quote(s),
            other => go_quote(&other.to_string()),
        })
        .collect();
    let msg =
        if quoted.is_empty() { String::new() } else { format!("supported values: {}", quoted.join(", ")) };
    errs.push(FieldError::new(path, FieldErrorKind::NotSupported, Some(v.clone()), msg));
}

/// JSON equality where `1` and `1.0` are the same number, as after Go's JSON decoding compared
/// with reflect.DeepEqual on float64 enums.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, a)| y.get(k).is_some_and(|b| json_equal(a, b)))
        }
        _ => a == b,
    }
}

fn first_duplicate(items: &[Value]) -> Option<usize> {
    (1..items.len()).find(|&i| items[..i].iter().any(|e| json_equal(e, &items[i])))
}

fn check_object(s: &Value, map: &Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    let p = shown(path);
    let count = map.len() as u64;
    if let Some(max) = schema_usize(s, "maxProperties")
        && count > max
    {
        errs.push(too_many(path, count, max));
    }
    if let Some(min) = schema_usize(s, "minProperties")
        && count < min
    {
        let msg = format!("{p} in body should have at least {min} properties");
        errs.push(FieldError::new(path, FieldErrorKind::Invalid, Some(Value::from(count)), msg));
    }
    if let Some(required) = s.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(name) {
                errs.push(FieldError::new(&join(path, name), FieldErrorKind::Required, None, String::new()));
            }
        }
    }
    let props = s.get("properties").and_then(Value::as_object);
    let additional = s.get("additionalProperties").filter(|a| a.is_object());
    for (k, child) in map {
        if let Some(ps) = props.and_then(|p| p.get(k)) {
            validate_node(ps, child, &join(path, k), errs);
        } else if let Some(a) = additional {
            validate_node(a, child, &join(path, k), errs);
        }
    }
}

fn branch_errors(s: &Value, v: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    validate_node(s, v, path, &mut errs);
    errs
}

fn check_junctors(s: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let p = shown(path);
    let branches = |name: &str| s.get(name).and_then(Value::as_array).cloned().unwrap_or_default();
    let invalid = |msg: String| FieldError::new(path, FieldErrorKind::Invalid, Some(Value::from("")), msg);

    for b in branches("allOf") {
        errs.extend(branch_errors(&b, v, path));
    }

    let any_of = branches("anyOf");
    if !any_of.is_empty() {
        let results: Vec<_> = any_of.iter().map(|b| branch_errors(b, v, path)).collect();
        if results.iter().all(|r| !r.is_empty()) {
            errs.push(invalid(format!("{p} must validate at least one schema (anyOf)")));
            // kube-openapi reports the failures of the branch that came closest.
            if let Some(best) = results.into_iter().min_by_key(Vec::len) {
                errs.extend(best);
            }
        }
    }

    let one_of = branches("oneOf");
    if !one_of.is_empty() {
        let results: Vec<_> = one_of.iter().map(|b| branch_errors(b, v, path)).collect();
        let valid = results.iter().filter(|r| r.is_empty()).count();
        if valid == 0 {
            errs.push(invalid(format!(
                "{p} must validate one and only one schema (oneOf). Found none valid"
            )));
            if let Some(best) = results.into_iter().min_by_key(Vec::len) {
                errs.extend(best);
            }
        } else if valid > 1 {
            errs.push(invalid(format!(
                "{p} must validate one and only one schema (oneOf). Found {valid} valid alternatives"
            )));
        }
    }

    if let Some(not) = s.get("not").filter(|n| n.is_object())
        && branch_errors(not, v, path).is_empty()
    {
        errs.push(invalid(format!("{p} must not validate the schema (not)")));
    }
}

fn validate_list_types(s: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match v {
        Value::Object(map) => {
            let props = s.get("properties").and_then(Value::as_object);
            let additional = s.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in map {
                if path.is_empty() && k == "metadata" {
                    continue;
                }
                if let Some(ps) = props.and_then(|p| p.get(k)) {
                    validate_list_types(ps, child, &join(path, k), errs);
                } else if let Some(a) = additional {
                    validate_list_types(a, child, &key(path, k), errs);
                }
            }
        }
        Value::Array(items) => {
            match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => {
                    for i in 1..items.len() {
                        if items[..i].iter().any(|e| e == &items[i]) {
                            let e = FieldError::new(
                                &index(path, i),
                                FieldErrorKind::Duplicate,
                                Some(items[i].clone()),
                                String::new(),
                            );
                            errs.push(e);
                        }
                    }
                }
                Some("map") => check_list_map(s, items, path, errs),
                _ => {}
            }
            if let Some(is) = s.get("items").filter(|i| i.is_object()) {
                for (i, item) in items.iter().enumerate() {
                    validate_list_types(is, item, &index(path, i), errs);
                }
            }
        }
        _ => {}
    }
}

pub(super) fn list_map_keys(s: &Value) -> Vec<&str> {
    s.get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The key of a list-map item: its key fields, missing ones taken from their defaults.
pub(super) fn list_map_key(s: &Value, keys: &[&str], item: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for &k in keys {
        let default = s
            .get("items")
            .and_then(|i| i.get("properties"))
            .and_then(|p| p.get(k))
            .and_then(|p| p.get("default"));
        if let Some(v) = item.get(k).or(default) {
            out.insert(k.to_owned(), v.clone());
        }
    }
    out
}

fn check_list_map(s: &Value, items: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    let keys = list_map_keys(s);
    let mut seen: Vec<Map<String, Value>> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Object(item) = item else {
            let msg = "must be an object for an array of list-type map".to_owned();
            errs.push(FieldError::new(&index(path, i), FieldErrorKind::Invalid, Some(items[i].clone()), msg));
            continue;
        };
        let k = list_map_key(s, &keys, item);
        if seen.contains(&k) {
            errs.push(FieldError::new(
                &index(path, i),
                FieldErrorKind::Duplicate,
                Some(Value::Object(k)),
                String::new(),
            ));
        } else {
            seen.push(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::FieldErrorKind;
    use crate::schema::defaults::apply_defaults;
    use crate::schema::prune::prune;
    use crate::schema::tests::{check, pool_schema, texts};
    use serde_json::json;

    #[test]
    fn type_errors_read_like_the_apiserver() {
        let schema = pool_schema();
        let obj = json!({"spec": {"blocks": [{"cidr": 5}]}});
        assert_eq!(
            texts(&validate(&schema, &obj)),
            [
                r#"spec.blocks[0].cidr: Invalid value: "integer": spec.blocks[0].cidr in body must be of type string: "integer""#
            ]
        );
        let errs = validate(&schema, &obj);
        assert_eq!(errs[0].kind, FieldErrorKind::TypeInvalid);
        assert_eq!(check(json!({"type": "integer"}), json!("3")).len(), 1);
        assert!(check(json!({"type": "integer"}), json!(3.0)).is_empty());
        assert!(check(json!({"type": "number"}), json!(3)).is_empty());
        assert_eq!(
            check(json!({"type": "integer"}), json!(3.5)),
            [r#"spec.x: Invalid value: "number": spec.x in body must be of type integer: "number""#]
        );
        assert!(check(json!({"type": "boolean"}), json!(true)).is_empty());
        assert_eq!(check(json!({"type": "boolean"}), json!("true")).len(), 1);
        assert_eq!(check(json!({"type": "array", "items": {"type": "string"}}), json!({})).len(), 1);
        assert_eq!(check(json!({"type": "object"}), json!([])).len(), 1);
    }

    #[test]
    fn nullable_and_int_or_string() {
        assert_eq!(
            check(json!({"type": "string"}), Value::Null),
            [r#"spec.x: Invalid value: "null": spec.x in body must be of type string: "null""#]
        );
        assert!(check(json!({"type": "string", "nullable": true}), Value::Null).is_empty());
        let ios = json!({"x-kubernetes-int-or-string": true});
        assert!(check(ios.clone(), json!(8080)).is_empty());
        assert!(check(ios.clone(), json!("http")).is_empty());
        assert_eq!(
            check(ios, json!(true)),
            [r#"spec.x: Invalid value: "boolean": spec.x in body must be of type integer,string: "boolean""#]
        );
    }

    #[test]
    fn required_and_enum() {
        let schema = pool_schema();
        assert_eq!(texts(&validate(&schema, &json!({"spec": {}}))), ["spec.blocks: Required value"]);
        let obj = json!({"spec": {"blocks": [{"cidr": "10.0.0.0/24"}], "allowFirstLastIPs": "Maybe"}});
        assert_eq!(
            texts(&validate(&schema, &obj)),
            [r#"spec.allowFirstLastIPs: Unsupported value: "Maybe": supported values: "Yes", "No""#]
        );
        assert_eq!(
            check(json!({"type": "integer", "enum": [1, 2]}), json!(3)),
            [r#"spec.x: Unsupported value: 3: supported values: "1", "2""#]
        );
        assert!(check(json!({"type": "number", "enum": [1.0]}), json!(1)).is_empty());
    }

    #[test]
    fn string_keywords() {
        let s = json!({"type": "string", "maxLength": 3, "minLength": 2, "pattern": "^[a-z]+$"});
        assert!(check(s.clone(), json!("ab")).is_empty());
        assert_eq!(check(s.clone(), json!("abcd")), ["spec.x: Too long: may not be more than 3 bytes"]);
        assert_eq!(
            check(s.clone(), json!("a")),
            [r#"spec.x: Invalid value: "a": spec.x in body should be at least 2 chars long"#]
        );
        assert_eq!(
            check(s, json!("A1")),
            [r#"spec.x: Invalid value: "A1": spec.x in body should match '^[a-z]+$'"#]
        );
        // Lengths count characters, not bytes.
        assert!(check(json!({"type": "string", "maxLength": 2}), json!("éé")).is_empty());
        // An invalid pattern is ignored here (check_structural reports it).
        assert!(check(json!({"type": "string", "pattern": "("}), json!("x")).is_empty());
    }

    #[test]
    fn number_keywords() {
        let s = json!({"type": "integer", "minimum": 1, "maximum": 10});
        assert!(check(s.clone(), json!(10)).is_empty());
        assert_eq!(
            check(s.clone(), json!(15)),
            ["spec.x: Invalid value: 15: spec.x in body should be less than or equal to 10"]
        );
        assert_eq!(
            check(s, json!(0)),
            ["spec.x: Invalid value: 0: spec.x in body should be greater than or equal to 1"]
        );
        let ex = json!({"type": "number", "minimum": 1, "maximum": 10, "exclusiveMinimum": true, "exclusiveMaximum": true});
        assert_eq!(
            check(ex.clone(), json!(10)),
            ["spec.x: Invalid value: 10: spec.x in body should be less than 10"]
        );
        assert_eq!(
            check(ex.clone(), json!(1)),
            ["spec.x: Invalid value: 1: spec.x in body should be greater than 1"]
        );
        assert!(check(ex, json!(5.5)).is_empty());
        assert_eq!(
            check(json!({"type": "number", "multipleOf": 0.5}), json!(1.25)),
            ["spec.x: Invalid value: 1.25: spec.x in body should be a multiple of 0.5"]
        );
        assert_eq!(
            check(json!({"type": "number", "maximum": 1000000.0}), json!(1e22)),
            ["spec.x: Invalid value: 1e+22: spec.x in body should be less than or equal to 1e+06"]
        );
    }

    #[test]
    fn array_and_object_keywords() {
        let a = json!({"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 2, "uniqueItems": true});
        assert!(check(a.clone(), json!([1, 2])).is_empty());
        assert_eq!(check(a.clone(), json!([1, 2, 3])), ["spec.x: Too many: 3: must have at most 2 items"]);
        assert_eq!(
            check(a.clone(), json!([])),
            ["spec.x: Invalid value: 0: spec.x in body should have at least 1 items"]
        );
        assert_eq!(
            check(a.clone(), json!([1, 1])),
            [r#"spec.x: Invalid value: "": spec.x in body shouldn't contain duplicates"#]
        );
        assert_eq!(
            check(a, json!([1, "a"])),
            [r#"spec.x[1]: Invalid value: "string": spec.x[1] in body must be of type integer: "string""#]
        );
        let o = json!({"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1, "maxProperties": 1});
        assert!(check(o.clone(), json!({"a": "b"})).is_empty());
        assert_eq!(
            check(o.clone(), json!({"a": "b", "c": "d"})),
            ["spec.x: Too many: 2: must have at most 1 item"]
        );
        assert_eq!(
            check(o.clone(), json!({})),
            ["spec.x: Invalid value: 0: spec.x in body should have at least 1 properties"]
        );
        assert_eq!(
            check(o, json!({"a": 1})),
            [r#"spec.x.a: Invalid value: "integer": spec.x.a in body must be of type string: "integer""#]
        );
    }

    #[test]
    fn junctors() {
        let any = json!({"type": "string", "anyOf": [{"pattern": "^a"}, {"pattern": "^b"}]});
        assert!(check(any.clone(), json!("bx")).is_empty());
        assert_eq!(
            check(any, json!("cx")),
            [
                r#"spec.x: Invalid value: "": spec.x must validate at least one schema (anyOf)"#,
                r#"spec.x: Invalid value: "cx": spec.x in body should match '^a'"#
            ]
        );
        let one = json!({"type": "string", "oneOf": [{"pattern": "a"}, {"pattern": "b"}]});
        assert!(check(one.clone(), json!("a")).is_empty());
        assert_eq!(
            check(one, json!("ab")),
            [
                r#"spec.x: Invalid value: "": spec.x must validate one and only one schema (oneOf). Found 2 valid alternatives"#
            ]
        );
        let all = json!({"type": "integer", "allOf": [{"minimum": 1}, {"maximum": 5}]});
        assert_eq!(check(all, json!(7)).len(), 1);
        let not = json!({"type": "string", "not": {"enum": ["forbidden"]}});
        assert!(check(not.clone(), json!("fine")).is_empty());
        assert_eq!(
            check(not, json!("forbidden")),
            [r#"spec.x: Invalid value: "": spec.x must not validate the schema (not)"#]
        );
    }

    #[test]
    fn list_types() {
        let set = json!({"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}});
        assert_eq!(check(set, json!(["a", "b", "a"])), [r#"spec.x[2]: Duplicate value: "a""#]);
        let map = json!({
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name", "proto"],
            "items": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"}, "proto": {"type": "string", "default": "TCP"}, "port": {"type": "integer"}
            }}
        });
        assert!(check(map.clone(), json!([{"name": "a"}, {"name": "a", "proto": "UDP"}])).is_empty());
        assert_eq!(
            check(map, json!([{"name": "a", "port": 1}, {"name": "a", "proto": "TCP"}])),
            [r#"spec.x[1]: Duplicate value: {"name":"a","proto":"TCP"}"#]
        );
    }

    #[test]
    fn metadata_is_not_validated_or_pruned() {
        let schema = pool_schema();
        let mut obj = json!({
            "apiVersion": "ferrolb.io/v1alpha1", "kind": "LoadBalancerIPPool",
            "metadata": {"name": "prod", "labels": {"a": "b"}, "unknown": 1},
            "spec": {"blocks": [{"cidr": "10.0.0.0/24", "junk": true}], "junk": 1},
            "status": {"anything": {"goes": 1}},
            "junk": "x"
        });
        prune(&schema, &mut obj);
        assert_eq!(
            obj,
            json!({
                "apiVersion": "ferrolb.io/v1alpha1", "kind": "LoadBalancerIPPool",
                "metadata": {"name": "prod", "labels": {"a": "b"}, "unknown": 1},
                "spec": {"blocks": [{"cidr": "10.0.0.0/24"}]},
                "status": {"anything": {"goes": 1}}
            })
        );
        apply_defaults(&schema, &mut obj);
        assert_eq!(obj["spec"]["allowFirstLastIPs"], "No");
        assert!(validate(&schema, &obj).is_empty());

        let named = json!({"type": "object", "properties": {
            "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 3}}}
        }});
        let obj = json!({"metadata": {"name": "toolong", "labels": {"x": "y"}}});
        assert_eq!(texts(&validate(&named, &obj)), ["metadata.name: Too long: may not be more than 3 bytes"]);
    }
}
