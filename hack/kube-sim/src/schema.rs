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

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use regex::Regex;
use serde_json::{Map, Value};

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

// ---------------------------------------------------------------------------------------------
// Pruning

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

// ---------------------------------------------------------------------------------------------
// Defaulting

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

// ---------------------------------------------------------------------------------------------
// Validation

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

// ---------------------------------------------------------------------------------------------
// Formats

fn check_format(format: &str, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let ok = match v {
        Value::String(s) => string_format_ok(format, s),
        Value::Number(n) => match format {
            "int32" => match n.as_i64() {
                Some(i) => i32::try_from(i).is_ok(),
                None => {
                    !n.is_u64()
                        && n.as_f64().is_some_and(|f| f >= f64::from(i32::MIN) && f <= f64::from(i32::MAX))
                }
            },
            "int64" => n.as_i64().is_some() || (!n.is_u64() && n.as_f64().is_some_and(|f| f.abs() < 9.2e18)),
            _ => true,
        },
        _ => true,
    };
    if !ok {
        let shown_value = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let msg = format!("{} in body must be of type {format}: {}", shown(path), go_quote(&shown_value));
        errs.push(FieldError::new(path, FieldErrorKind::TypeInvalid, Some(v.clone()), msg));
    }
}

/// The string formats kube-openapi's strfmt registry validates; any other format is accepted, as
/// the apiserver does.
fn string_format_ok(format: &str, s: &str) -> bool {
    match format {
        "ipv4" => parse_ipv4(s).is_some(),
        "ipv6" => s.contains(':') && s.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => is_cidr(s),
        "date-time" | "datetime" => is_date_time(s),
        "date" => s.len() == 10 && s.parse::<jiff::civil::Date>().is_ok(),
        "uuid" => is_uuid(s, None),
        "uuid3" => is_uuid(s, Some('3')),
        "uuid4" => is_uuid(s, Some('4')),
        "uuid5" => is_uuid(s, Some('5')),
        "byte" => is_base64(s),
        "hostname" => is_hostname(s),
        "mac" => is_mac(s),
        "bsonobjectid" => s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()),
        "hexcolor" => {
            let h = s.strip_prefix('#').unwrap_or(s);
            (h.len() == 3 || h.len() == 6) && h.bytes().all(|b| b.is_ascii_hexdigit())
        }
        "duration" => is_duration(s),
        "email" => is_email(s),
        "uri" => !s.is_empty() && !s.contains(char::is_whitespace),
        _ => true,
    }
}

/// Parses an IPv4 address the way Go's netutils.ParseIPSloppy does, which Kubernetes uses for
/// formats: leading zeros are allowed (and read as decimal).
fn parse_ipv4(s: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = s.split('.');
    for o in &mut out {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *o = part.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

fn is_cidr(s: &str) -> bool {
    let Some((addr, len)) = s.split_once('/') else { return false };
    if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Ok(len) = len.parse::<u8>() else { return false };
    if parse_ipv4(addr).is_some() {
        len <= 32
    } else {
        addr.parse::<std::net::Ipv6Addr>().is_ok() && len <= 128
    }
}

fn is_date_time(s: &str) -> bool {
    // strfmt accepts RFC 3339 with a 'T' or a space, with or without fractional seconds.
    s.len() >= 20 && s.replacen(' ', "T", 1).parse::<jiff::Timestamp>().is_ok()
}

fn is_uuid(s: &str, version: Option<char>) -> bool {
    let b = s.as_bytes();
    if b.len() != 36 {
        return false;
    }
    let shape = b.iter().enumerate().all(|(i, &c)| match i {
        8 | 13 | 18 | 23 => c == b'-',
        _ => c.is_ascii_hexdigit(),
    });
    let version_ok = version.is_none_or(|v| b[14] as char == v);
    let variant_ok = version.is_none() || matches!(b[19].to_ascii_lowercase(), b'8' | b'9' | b'a' | b'b');
    shape && version_ok && variant_ok
}

fn is_base64(s: &str) -> bool {
    let s: Vec<u8> = s.bytes().filter(|b| !matches!(b, b'\r' | b'\n')).collect();
    if !s.len().is_multiple_of(4) {
        return false;
    }
    let pad = s.iter().rev().take_while(|&&b| b == b'=').count();
    pad <= 2 && s[..s.len() - pad].iter().all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

fn is_hostname(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 255
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn is_mac(s: &str) -> bool {
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    let groups = |sep: char, n: usize| {
        let parts: Vec<&str> = s.split(sep).collect();
        matches!(parts.len() * n / 2, 6 | 8 | 20) && parts.iter().all(|p| hex(p, n))
    };
    groups(':', 2) || groups('-', 2) || groups('.', 4)
}

fn is_duration(s: &str) -> bool {
    with_regex(r"^(?:[0-9]+(?:\.[0-9]+)?\s*(?:ns|us|µs|ms|s|m|h|d|w))+$", |re| re.is_match(s.trim()))
        .unwrap_or(false)
}

fn is_email(s: &str) -> bool {
    match s.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && !local.contains(char::is_whitespace) && is_hostname(domain)
        }
        None => false,
    }
}

thread_local! {
    /// Schemas are few and objects many: compile each pattern once per thread.
    static REGEXES: RefCell<HashMap<String, Option<Regex>>> = RefCell::new(HashMap::new());
}

/// Runs `f` on the compiled pattern; `None` when the pattern does not compile (the CRD would have
/// been rejected, so the keyword is ignored).
fn with_regex<T>(pattern: &str, f: impl FnOnce(&Regex) -> T) -> Option<T> {
    REGEXES.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() > 1024 {
            cache.clear();
        }
        let re = cache.entry(pattern.to_owned()).or_insert_with(|| Regex::new(pattern).ok());
        re.as_ref().map(f)
    })
}

// ---------------------------------------------------------------------------------------------
// x-kubernetes-list-type

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

fn list_map_keys(s: &Value) -> Vec<&str> {
    s.get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The key of a list-map item: its key fields, missing ones taken from their defaults.
fn list_map_key(s: &Value, keys: &[&str], item: &Map<String, Value>) -> Map<String, Value> {
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

// ---------------------------------------------------------------------------------------------
// Structural schema rules

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

// ---------------------------------------------------------------------------------------------
// CEL rules (x-kubernetes-validations), evaluated by kube-cel

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
/// without an old value, as on create. [`validate_all`] calls it the way the apiserver does.
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

// ---------------------------------------------------------------------------------------------
// Go formatting, so that messages read exactly like the apiserver's

/// `strconv.Quote`.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A float as Go's `%v` prints it: the shortest representation, in exponent form from 1e6 on
/// and below 1e-4 (`strconv.FormatFloat(f, 'g', -1, 64)`).
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if f == 0.0 {
        return "0".to_owned();
    }
    let exp = f.abs().log10().floor() as i32;
    if (-4..6).contains(&exp) {
        format!("{f}")
    } else {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((mantissa, e)) => {
                let (sign, digits) = e.strip_prefix('-').map_or(("+", e), |d| ("-", d));
                format!("{mantissa}e{sign}{digits:0>2}")
            }
            None => s,
        }
    }
}

/// A value as the apiserver prints a field error's value: Go `%v` for numbers and booleans, `%q`
/// for strings, JSON for the rest.
fn go_value(v: &Value) -> String {
    match v {
        // Go turns a nil value into the string "null" before quoting it.
        Value::Null => go_quote("null"),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        Value::Number(n) => n.as_f64().map(go_float).unwrap_or_else(|| n.to_string()),
        Value::String(s) => go_quote(s),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn texts(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    fn spec_schema(spec: Value) -> Value {
        json!({"type": "object", "properties": {"spec": spec}})
    }

    fn check(spec_prop: Value, value: Value) -> Vec<String> {
        let schema = spec_schema(json!({"type": "object", "properties": {"x": spec_prop}}));
        texts(&validate(&schema, &json!({"spec": {"x": value}})))
    }

    /// FerroLB's LoadBalancerIPPool schema, trimmed to what these tests need.
    fn pool_schema() -> Value {
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
    fn formats() {
        let f = |format: &str, v: Value| check(json!({"type": "string", "format": format}), v).is_empty();
        assert!(f("ipv4", json!("10.0.0.1")));
        assert!(!f("ipv4", json!("10.0.0.256")));
        assert!(!f("ipv4", json!("::1")));
        assert!(f("ipv6", json!("2001:db8::1")));
        assert!(!f("ipv6", json!("10.0.0.1")));
        assert!(f("cidr", json!("198.51.100.128/25")));
        assert!(f("cidr", json!("2001:db8:100::/64")));
        assert!(!f("cidr", json!("10.0.0.0/33")));
        assert!(!f("cidr", json!("10.0.0.0")));
        assert!(f("date-time", json!("2026-11-02T10:00:00Z")));
        assert!(f("date-time", json!("2026-11-02T10:00:00.123+01:00")));
        assert!(!f("date-time", json!("yesterday")));
        assert!(f("date", json!("2026-11-02")));
        assert!(f("uuid", json!("123e4567-e89b-12d3-a456-426614174000")));
        assert!(!f("uuid", json!("123e4567e89b12d3a456426614174000")));
        assert!(f("uuid4", json!("9f1c7f5e-8f7a-4b3c-9d2e-1a2b3c4d5e6f")));
        assert!(!f("uuid4", json!("123e4567-e89b-12d3-a456-426614174000")));
        assert!(f("byte", json!("aGVsbG8=")));
        assert!(!f("byte", json!("hello!")));
        assert!(f("hostname", json!("node-1.example.com")));
        assert!(!f("hostname", json!("-bad")));
        assert!(f("mac", json!("02:42:ac:11:00:02")));
        assert!(f("duration", json!("1h30m")));
        assert!(f("whatever-unknown", json!("anything")));
        assert_eq!(
            check(json!({"type": "string", "format": "cidr"}), json!("x")),
            [r#"spec.x: Invalid value: "x": spec.x in body must be of type cidr: "x""#]
        );
        let i = |format: &str, v: Value| check(json!({"type": "integer", "format": format}), v).is_empty();
        assert!(i("int32", json!(2147483647)));
        assert!(!i("int32", json!(2147483648_i64)));
        assert!(!i("int32", json!(-2147483649_i64)));
        assert!(i("int64", json!(i64::MIN)));
        assert!(!i("int64", json!(u64::MAX)));
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
    fn go_formatting() {
        assert_eq!(go_quote("a\"b\\c\n\u{1}é"), r#""a\"b\\c\n\x01é""#);
        assert_eq!(go_float(10.0), "10");
        assert_eq!(go_float(0.5), "0.5");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(1234567.5), "1.2345675e+06");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_value(&json!({"b": 1, "a": [true]})), r#"{"a":[true],"b":1}"#);
    }

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
