//! Structural OpenAPI v3 schemas of CustomResourceDefinitions, handled the way kube-apiserver does:
//! pruning, defaulting, value validation, `x-kubernetes-list-type` checks and CEL rules
//! (`x-kubernetes-validations`), with the apiserver's error texts.
//!
//! Every function takes the `openAPIV3Schema` of one CRD version as JSON (apiextensions.k8s.io/v1
//! `JSONSchemaProps`) and a whole object. On create and update the apiserver runs, in this order:
//! [`prune`], [`apply_defaults`], then [`validate_all`] ([`validate`], then [`validate_cel`] unless a
//! schema error blocks it). CRD creation checks [`check_structural`] and [`check_cel_compiles`].
//! Nothing here panics, whatever the schema or the object look like: a malformed schema keyword is
//! ignored.
//!
//! One module per step: `prune`, `defaults`, `validate` (with `formats` for the `format` keyword),
//! `structural` (CRD creation), `cel`; `go_format` prints values as Go does in the messages.

use std::fmt;

use serde_json::Value;

use go_format::{go_quote, go_value};

mod cel;
mod defaults;
mod formats;
mod go_format;
mod prune;
mod structural;
mod validate;

pub use cel::{check_cel_compiles, validate_cel};
pub use defaults::apply_defaults;
pub(crate) use go_format::go_float;
pub use prune::prune;
pub use structural::check_structural;
pub use validate::validate;

/// The kind of a field error: `field.ErrorType` of k8s.io/apimachinery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldErrorKind {
    Invalid,
    Required,
    NotSupported,
    TooLong,
    TooMany,
    Duplicate,
    TypeInvalid,
    Forbidden,
}

impl FieldErrorKind {
    /// The text the apiserver prints for this kind ("Invalid value", "Required value", ...).
    pub fn text(self) -> &'static str {
        match self {
            Self::Invalid | Self::TypeInvalid => "Invalid value",
            Self::Required => "Required value",
            Self::NotSupported => "Unsupported value",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::Duplicate => "Duplicate value",
            Self::Forbidden => "Forbidden",
        }
    }

    /// The `metav1.CauseType` of a 422 Status cause.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Invalid => "FieldValueInvalid",
            Self::Required => "FieldValueRequired",
            Self::NotSupported => "FieldValueNotSupported",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::Duplicate => "FieldValueDuplicate",
            Self::TypeInvalid => "FieldValueTypeInvalid",
            Self::Forbidden => "FieldValueForbidden",
        }
    }
}

/// One validation failure, as `field.Error` of k8s.io/apimachinery.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// The field path, e.g. `spec.blocks[0].cidr`; `<nil>` for the object itself.
    pub field: String,
    pub kind: FieldErrorKind,
    /// The offending value; `None` where the apiserver omits it.
    pub value: Option<Value>,
    /// The detail text after the value.
    pub message: String,
}

impl FieldError {
    fn new(field: &str, kind: FieldErrorKind, value: Option<Value>, message: String) -> Self {
        let field = if field.is_empty() { "<nil>".to_owned() } else { field.to_owned() };
        Self { field, kind, value, message }
    }

    /// The error without its field path (`ErrorBody()`), which is the `message` of a Status cause.
    pub fn body(&self) -> String {
        // Go prints no value for these kinds, even when one is known.
        let omit = matches!(
            self.kind,
            FieldErrorKind::Required | FieldErrorKind::Forbidden | FieldErrorKind::TooLong
        );
        let mut s = match (&self.value, omit) {
            (Some(v), false) => format!("{}: {}", self.kind.text(), go_value(v)),
            _ => self.kind.text().to_owned(),
        };
        if !self.message.is_empty() {
            s.push_str(": ");
            s.push_str(&self.message);
        }
        s
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// The `details.causes` array of a 422 `metav1.Status` for these errors.
pub fn status_causes(errors: &[FieldError]) -> Value {
    Value::Array(
        errors
            .iter()
            .map(|e| serde_json::json!({"reason": e.kind.reason(), "message": e.body(), "field": e.field}))
            .collect(),
    )
}

/// The `message` of a 422 Status: `LoadBalancerIPPool.ferrolb.io "prod" is invalid: ...`, where
/// `qualified_kind` is `Kind.group` (just `Kind` for the core group).
pub fn invalid_message(qualified_kind: &str, name: &str, errors: &[FieldError]) -> String {
    // utilerrors.NewAggregate drops repeated messages and brackets more than one.
    let mut seen = Vec::new();
    for e in errors {
        let s = e.to_string();
        if !seen.contains(&s) {
            seen.push(s);
        }
    }
    let list = match seen.len() {
        1 => seen.remove(0),
        _ => format!("[{}]", seen.join(", ")),
    };
    format!("{qualified_kind} {} is invalid: {list}", go_quote(name))
}

/// Everything the apiserver checks in a custom resource against its schema, after [`prune`] and
/// [`apply_defaults`]: [`validate`], then the CEL rules ([`validate_cel`]) unless a schema error
/// makes them meaningless (a wrong type, a missing required field, ...), which is reported the
/// apiserver's way. `old` is the stored object on update.
pub fn validate_all(schema: &Value, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = validate(schema, obj);
    let blocking = errs.iter().any(|e| {
        matches!(
            e.kind,
            FieldErrorKind::NotSupported
                | FieldErrorKind::Required
                | FieldErrorKind::TooLong
                | FieldErrorKind::TooMany
                | FieldErrorKind::TypeInvalid
        )
    });
    if blocking {
        let msg = "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";
        errs.push(FieldError::new("", FieldErrorKind::Invalid, Some(Value::Null), msg.to_owned()));
    } else {
        errs.extend(validate_cel(schema, obj, old));
    }
    errs
}

// Paths of fields in messages, and schema flags.

fn join(path: &str, name: &str) -> String {
    if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") }
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

fn key(path: &str, k: &str) -> String {
    format!("{path}[{k}]")
}

/// The path as kube-openapi names it inside messages ("spec.x in body ...").
fn shown(path: &str) -> &str {
    if path.is_empty() { "<nil>" } else { path }
}

fn flag(s: &Value, name: &str) -> bool {
    s.get(name).and_then(Value::as_bool).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(super) fn texts(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    pub(super) fn spec_schema(spec: Value) -> Value {
        json!({"type": "object", "properties": {"spec": spec}})
    }

    pub(super) fn check(spec_prop: Value, value: Value) -> Vec<String> {
        let schema = spec_schema(json!({"type": "object", "properties": {"x": spec_prop}}));
        texts(&validate(&schema, &json!({"spec": {"x": value}})))
    }

    /// FerroLB's LoadBalancerIPPool schema, trimmed to what these tests need.
    pub(super) fn pool_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["blocks"],
                    "properties": {
                        "allowFirstLastIPs": {"type": "string", "enum": ["Yes", "No"], "default": "No"},
                        "blocks": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "properties": {
                                    "cidr": {"type": "string"},
                                    "start": {"type": "string"},
                                    "stop": {"type": "string"}
                                },
                                "x-kubernetes-validations": [
                                    {"rule": "has(self.cidr) != has(self.start)", "message": "exactly one of cidr or start"},
                                    {"rule": "!has(self.stop) || has(self.start)"},
                                    {"rule": "!has(self.cidr) || isCIDR(self.cidr)"},
                                    {"rule": "!has(self.start) || isIP(self.start)"},
                                    {"rule": "!has(self.stop) || isIP(self.stop)"},
                                    {"rule": "!has(self.start) || !has(self.stop) || !isIP(self.start) || !isIP(self.stop) || ip(self.start).family() == ip(self.stop).family()"}
                                ]
                            }
                        }
                    }
                },
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
            }
        })
    }

    #[test]
    fn status_causes_and_messages() {
        let schema = pool_schema();
        let errs =
            validate(&schema, &json!({"spec": {"blocks": [{"cidr": 5}], "allowFirstLastIPs": "Maybe"}}));
        let causes = status_causes(&errs);
        assert_eq!(
            causes,
            json!([
                {"reason": "FieldValueNotSupported", "message": "Unsupported value: \"Maybe\": supported values: \"Yes\", \"No\"", "field": "spec.allowFirstLastIPs"},
                {"reason": "FieldValueTypeInvalid", "message": "Invalid value: \"integer\": spec.blocks[0].cidr in body must be of type string: \"integer\"", "field": "spec.blocks[0].cidr"}
            ])
        );
        let one = &errs[..1];
        assert_eq!(
            invalid_message("LoadBalancerIPPool.ferrolb.io", "prod", one),
            r#"LoadBalancerIPPool.ferrolb.io "prod" is invalid: spec.allowFirstLastIPs: Unsupported value: "Maybe": supported values: "Yes", "No""#
        );
        assert!(invalid_message("Foo.x.io", "a", &errs).contains(": [spec.allowFirstLastIPs"));
    }

    #[test]
    fn garbage_never_panics() {
        let schemas = [
            json!(null),
            json!(1),
            json!({"type": 5, "properties": []}),
            json!({"items": "x", "enum": 3}),
            pool_schema(),
        ];
        let objects = [
            json!(null),
            json!([1, {"a": null}]),
            json!({"spec": {"blocks": "x"}}),
            json!({"spec": {"blocks": [null, 1]}}),
        ];
        let rules = [
            "",
            "(((",
            "self.",
            "'open",
            "a ? b",
            "self.x[",
            "1 +",
            "}{",
            "self.a.b.c == oldSelf.a.b.c",
            "ip('x').family() == 4",
        ];
        let ruled = spec_schema(
            json!({"type": "object", "x-kubernetes-validations": rules.map(|r| json!({"rule": r}))}),
        );
        assert!(!check_cel_compiles(&ruled).is_empty());
        let _ = validate_cel(&ruled, &json!({"spec": {"a": 1}}), Some(&json!({"spec": {}})));
        for s in &schemas {
            check_structural(s);
            check_cel_compiles(s);
            for o in &objects {
                let mut m = o.clone();
                prune(s, &mut m);
                apply_defaults(s, &mut m);
                validate(s, &m);
                validate_cel(s, &m, Some(o));
            }
        }
    }

    #[test]
    fn validate_all_skips_cel_after_blocking_errors() {
        let schema = pool_schema();
        let bad_type = json!({"spec": {"blocks": [{"cidr": 5}, {}]}});
        let errs = validate_all(&schema, &bad_type, None);
        assert_eq!(errs.len(), 2);
        assert_eq!(
            errs[1].to_string(),
            "<nil>: Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"
        );
        let only_cel = json!({"spec": {"blocks": [{"cidr": "10.0.0.0/8"}, {}]}});
        assert_eq!(
            texts(&validate_all(&schema, &only_cel, None)),
            ["spec.blocks[1]: Invalid value: \"object\": exactly one of cidr or start"]
        );
        // A value error that does not block (a pattern) lets CEL run too.
        let mut patterned = pool_schema();
        patterned["properties"]["spec"]["properties"]["blocks"]["items"]["properties"]["cidr"]["pattern"] =
            json!("^1");
        let both = json!({"spec": {"blocks": [{"cidr": "2001:db8::/64", "start": "10.0.0.1"}]}});
        assert_eq!(validate_all(&patterned, &both, None).len(), 2);
    }
}
