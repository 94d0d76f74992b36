//! CEL rules (`x-kubernetes-validations`), compiled when a CRD is created and evaluated by kube-cel
//! on every write.

use std::fmt;

use serde_json::Value;

use crate::schema::go_format::go_quote;
use crate::schema::validate::{list_map_key, list_map_keys};
use crate::schema::{FieldError, FieldErrorKind, index, join, key};

/// Schema locations of CEL rules that do not parse, one message each, paths starting with
/// `openAPIV3Schema`. The apiserver rejects such CRDs; kube-cel parses but does not type-check,
/// so a rule calling an unknown function or comparing mismatched types passes here and fails at
/// evaluation time instead.
pub fn check_cel_compiles(schema: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check_cel_node(schema, "openAPIV3Schema", &mut out);
    out
}

fn check_cel_node(s: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(rules) = s.get("x-kubernetes-validations").and_then(Value::as_array) {
        for (i, rule) in rules.iter().enumerate() {
            let rp = format!("{path}.x-kubernetes-validations[{i}]");
            let Some(text) = rule.get("rule").and_then(Value::as_str).filter(|r| !r.trim().is_empty()) else {
                out.push(format!("{rp}.rule: Required value"));
                continue;
            };
            if let Err(e) = kube_cel::cel::Program::compile(text) {
                out.push(format!(
                    "{rp}.rule: Invalid value: {}: compilation failed: {}",
                    go_quote(text),
                    one_line(&e)
                ));
            }
            if let Some(expr) = rule.get("messageExpression").and_then(Value::as_str)
                && let Err(e) = kube_cel::cel::Program::compile(expr)
            {
                out.push(format!(
                    "{rp}.messageExpression: Invalid value: {}: messageExpression compilation failed: {}",
                    go_quote(expr),
                    one_line(&e)
                ));
            }
            if let Some(reason) = rule.get("reason").and_then(Value::as_str)
                && !matches!(
                    reason,
                    "FieldValueInvalid"
                        | "FieldValueForbidden"
                        | "FieldValueRequired"
                        | "FieldValueDuplicate"
                )
            {
                out.push(format!(
                    "{rp}.reason: Unsupported value: {}: supported values: \"FieldValueDuplicate\", \"FieldValueForbidden\", \"FieldValueInvalid\", \"FieldValueRequired\"",
                    go_quote(reason)
                ));
            }
        }
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        for (k, ps) in props {
            check_cel_node(ps, &format!("{path}.properties[{k}]"), out);
        }
    }
    if let Some(is) = s.get("items").filter(|i| i.is_object()) {
        check_cel_node(is, &format!("{path}.items"), out);
    }
    if let Some(a) = s.get("additionalProperties").filter(|a| a.is_object()) {
        check_cel_node(a, &format!("{path}.additionalProperties"), out);
    }
}

fn one_line(e: &impl fmt::Display) -> String {
    e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

thread_local! {
    /// Registering every CEL function is not free; one validator per thread is enough.
    static CEL: kube_cel::Validator = kube_cel::Validator::new();
}

/// Evaluates every `x-kubernetes-validations` rule at its node (for list items and map values, on
/// each element), with `self` bound to the node's value and, when `old` is given and the node
/// correlates with the old object, `oldSelf`. Transition rules (those using `oldSelf`) are skipped
/// without an old value, as on create. [`validate_all`](super::validate_all) calls it the way the apiserver does.
pub fn validate_cel(schema: &Value, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    CEL.with(|cel| walk_cel(cel, schema, obj, old, "", &mut errs));
    errs
}

fn walk_cel(
    cel: &kube_cel::Validator,
    s: &Value,
    v: &Value,
    old: Option<&Value>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    if !s.is_object() || v.is_null() {
        return;
    }
    if s.get("x-kubernetes-validations").and_then(Value::as_array).is_some_and(|r| !r.is_empty()) {
        // kube-cel walks the whole subtree; with the rules below this node removed it evaluates
        // exactly this node's rules, and this walker keeps control of paths and old values.
        let node = without_nested_rules(s, true);
        if let Err(failures) = cel.validate(&node, v, old) {
            let ty = s.get("type").and_then(Value::as_str).unwrap_or("");
            errs.extend(failures.iter().map(|f| cel_error(f, path, ty)));
        }
    }
    match v {
        Value::Object(map) => {
            let props = s.get("properties").and_then(Value::as_object);
            let additional = s.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in map {
                let child_old = old.and_then(|o| o.get(k));
                if let Some(ps) = props.and_then(|p| p.get(k)) {
                    walk_cel(cel, ps, child, child_old, &join(path, k), errs);
                } else if let Some(a) = additional {
                    walk_cel(cel, a, child, child_old, &key(path, k), errs);
                }
            }
        }
        Value::Array(items) => {
            let Some(is) = s.get("items").filter(|i| i.is_object()) else { return };
            // Only list-type map items correlate with old items (by key); other lists are atomic
            // or sets, whose items have no identity across updates.
            let keys = list_map_keys(s);
            let is_map = s.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map");
            let old_items = old.and_then(Value::as_array);
            for (i, item) in items.iter().enumerate() {
                let item_old = match (is_map, old_items, item.as_object()) {
                    (true, Some(olds), Some(obj)) => {
                        let k = list_map_key(s, &keys, obj);
                        olds.iter().find(|o| o.as_object().is_some_and(|o| list_map_key(s, &keys, o) == k))
                    }
                    _ => None,
                };
                walk_cel(cel, is, item, item_old, &index(path, i), errs);
            }
        }
        _ => {}
    }
}

fn without_nested_rules(s: &Value, top: bool) -> Value {
    match s {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| top || k.as_str() != "x-kubernetes-validations")
                .map(|(k, v)| {
                    let v = match k.as_str() {
                        "properties" => Value::Object(
                            v.as_object()
                                .map(|p| {
                                    p.iter()
                                        .map(|(pk, pv)| (pk.clone(), without_nested_rules(pv, false)))
                                        .collect()
                                })
                                .unwrap_or_default(),
                        ),
                        "items" | "additionalProperties" => without_nested_rules(v, false),
                        "allOf" | "anyOf" | "oneOf" => Value::Array(
                            v.as_array()
                                .map(|a| a.iter().map(|b| without_nested_rules(b, false)).collect())
                                .unwrap_or_default(),
                        ),
                        _ => v.clone(),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn cel_error(f: &kube_cel::ValidationError, path: &str, ty: &str) -> FieldError {
    let field = match f.field_path.as_str() {
        "" => path.to_owned(),
        fp if fp.starts_with('.') || fp.starts_with('[') => format!("{path}{fp}"),
        fp => join(path, fp),
    };
    let ty = Some(Value::from(ty));
    let message = f.message.clone();
    match (&f.kind, f.reason.as_deref()) {
        (kube_cel::ErrorKind::ValidationFailure, Some("FieldValueForbidden")) => {
            FieldError::new(&field, FieldErrorKind::Forbidden, None, message)
        }
        (kube_cel::ErrorKind::ValidationFailure, Some("FieldValueRequired")) => {
            FieldError::new(&field, FieldErrorKind::Required, None, message)
        }
        // field.Duplicate carries no detail, so the rule's message is lost, as in the apiserver.
        (kube_cel::ErrorKind::ValidationFailure, Some("FieldValueDuplicate")) => {
            FieldError::new(&field, FieldErrorKind::Duplicate, ty, String::new())
        }
        _ => FieldError::new(&field, FieldErrorKind::Invalid, ty, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tests::{pool_schema, spec_schema, texts};
    use crate::schema::{FieldErrorKind, status_causes};
    use serde_json::json;

    fn cel_pool(blocks: Value) -> Vec<String> {
        texts(&validate_cel(&pool_schema(), &json!({"spec": {"blocks": blocks}}), None))
    }

    #[test]
    fn ferrolb_pool_rules_compile() {
        assert_eq!(check_cel_compiles(&pool_schema()), Vec::<String>::new());
    }

    #[test]
    fn ferrolb_pool_rules_accept_valid_blocks() {
        let ok = json!([
            {"cidr": "198.51.100.128/25"},
            {"cidr": "2001:db8:100::/64"},
            {"start": "198.51.100.10", "stop": "198.51.100.20"},
            {"start": "2001:db8:100::1000", "stop": "2001:db8:100::1fff"},
            {"start": "198.51.100.10"}
        ]);
        assert_eq!(cel_pool(ok), Vec::<String>::new());
    }

    #[test]
    fn ferrolb_pool_rules_reject_invalid_blocks() {
        let prefix = "spec.blocks[0]: Invalid value: \"object\": ";
        let one = |block: Value| cel_pool(json!([block]));
        assert_eq!(one(json!({})), [format!("{prefix}exactly one of cidr or start")]);
        assert_eq!(
            one(json!({"cidr": "10.0.0.0/8", "start": "10.0.0.1"})),
            [format!("{prefix}exactly one of cidr or start")]
        );
        assert_eq!(
            one(json!({"stop": "10.0.0.1"})),
            [
                format!("{prefix}exactly one of cidr or start"),
                format!("{prefix}failed rule: !has(self.stop) || has(self.start)")
            ]
        );
        assert_eq!(
            one(json!({"cidr": "10.0.0.0/33"})),
            [format!("{prefix}failed rule: !has(self.cidr) || isCIDR(self.cidr)")]
        );
        assert_eq!(
            one(json!({"cidr": "nonsense"})),
            [format!("{prefix}failed rule: !has(self.cidr) || isCIDR(self.cidr)")]
        );
        assert_eq!(
            one(json!({"start": "10.0.0.300"})),
            [format!("{prefix}failed rule: !has(self.start) || isIP(self.start)")]
        );
        assert_eq!(
            one(json!({"start": "10.0.0.1", "stop": "x"})),
            [format!("{prefix}failed rule: !has(self.stop) || isIP(self.stop)")]
        );
        assert_eq!(
            one(json!({"start": "10.0.0.1", "stop": "2001:db8::1"})),
            [format!(
                "{prefix}failed rule: !has(self.start) || !has(self.stop) || !isIP(self.start) || !isIP(self.stop) || ip(self.start).family() == ip(self.stop).family()"
            )]
        );
        // Each element is checked on its own, with its index in the path.
        let errs = cel_pool(json!([{"cidr": "10.0.0.0/8"}, {}]));
        assert_eq!(errs, ["spec.blocks[1]: Invalid value: \"object\": exactly one of cidr or start"]);
    }

    #[test]
    fn cel_ip_library_follows_kubernetes_docs() {
        let rule = |r: &str, v: Value| {
            let schema = spec_schema(json!({"type": "string", "x-kubernetes-validations": [{"rule": r}]}));
            validate_cel(&schema, &json!({"spec": v}), None).is_empty()
        };
        // isIP rejects zone-qualified and IPv4-mapped IPv6 addresses, and isCIDR wants a prefix.
        assert!(rule("isIP(self)", json!("::1")));
        assert!(!rule("isIP(self)", json!("fe80::1%eth0")));
        assert!(!rule("isIP(self)", json!("::ffff:1.2.3.4")));
        assert!(!rule("isIP(self)", json!("010.0.0.1")));
        assert!(rule("isCIDR(self)", json!("10.0.0.0/8")));
        assert!(!rule("isCIDR(self)", json!("10.0.0.0")));
        assert!(rule("ip(self).family() == 6", json!("2001:db8::1")));
        assert!(rule("cidr(self).prefixLength() == 25", json!("198.51.100.128/25")));
        assert!(rule("cidr(self).containsIP(ip('198.51.100.130'))", json!("198.51.100.128/25")));
    }

    #[test]
    fn cel_messages_reasons_field_paths_and_transitions() {
        let schema = spec_schema(json!({
            "type": "object",
            "properties": {"replicas": {"type": "integer"}, "name": {"type": "string"}},
            "x-kubernetes-validations": [
                {"rule": "self.replicas <= 5", "messageExpression": "'too many: ' + string(self.replicas)"},
                {"rule": "self.name != 'x'", "reason": "FieldValueForbidden", "fieldPath": ".name", "message": "no x"},
                {"rule": "self.replicas >= oldSelf.replicas", "message": "cannot scale down"}
            ]
        }));
        let obj = json!({"spec": {"replicas": 9, "name": "x"}});
        assert_eq!(
            texts(&validate_cel(&schema, &obj, None)),
            ["spec: Invalid value: \"object\": too many: 9", "spec.name: Forbidden: no x"]
        );
        let old = json!({"spec": {"replicas": 10, "name": "y"}});
        let errs = validate_cel(&schema, &obj, Some(&old));
        assert_eq!(errs.len(), 3);
        assert_eq!(errs[2].to_string(), "spec: Invalid value: \"object\": cannot scale down");
        assert_eq!(status_causes(&errs)[1]["reason"], "FieldValueForbidden");
    }

    #[test]
    fn cel_transition_rules_correlate_list_map_items_by_key() {
        let schema = spec_schema(json!({
            "type": "object",
            "properties": {"ports": {
                "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "items": {"type": "object", "required": ["name"],
                    "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
                    "x-kubernetes-validations": [{"rule": "self.port == oldSelf.port", "message": "immutable"}]}
            }}
        }));
        let old = json!({"spec": {"ports": [{"name": "a", "port": 1}, {"name": "b", "port": 2}]}});
        let swapped = json!({"spec": {"ports": [{"name": "b", "port": 2}, {"name": "a", "port": 1}, {"name": "c", "port": 3}]}});
        assert!(validate_cel(&schema, &swapped, Some(&old)).is_empty());
        let changed = json!({"spec": {"ports": [{"name": "b", "port": 3}]}});
        assert_eq!(
            texts(&validate_cel(&schema, &changed, Some(&old))),
            ["spec.ports[0]: Invalid value: \"object\": immutable"]
        );
    }

    #[test]
    fn cel_rules_that_do_not_parse() {
        let schema = spec_schema(
            json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.a ==="}, {"message": "no rule"}]}),
        );
        let problems = check_cel_compiles(&schema);
        assert_eq!(problems.len(), 2);
        assert!(problems[0].starts_with("openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: \"self.a ===\": compilation failed: "));
        assert_eq!(
            problems[1],
            "openAPIV3Schema.properties[spec].x-kubernetes-validations[1].rule: Required value"
        );
        let errs = validate_cel(&schema, &json!({"spec": {}}), None);
        assert!(!errs.is_empty());
        assert!(errs.iter().all(|e| e.field == "spec" && e.kind == FieldErrorKind::Invalid));
    }
}
