//! `meta.k8s.io/v1` Table output, what `kubectl get` asks for with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`: printer columns of CRDs (evaluated with a
//! small Kubernetes-JSONPath subset) and of the built-in kinds FerroLB touches (computed the way
//! kubernetes/pkg/printers does), with ages rendered as the apiserver does.
//!
//! `jsonpath` evaluates CRD printer columns; `columns` holds the built-in kinds' columns.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

use crate::schema::go_float;

mod columns;
mod jsonpath;

pub use columns::builtin_columns;
pub use jsonpath::jsonpath;

/// Computes one cell of a built-in column from a whole object, at time `now`.
pub type CellFn = fn(&Value, Timestamp) -> Value;

/// One column of a Table: a `TableColumnDefinition`, plus how its cells are computed.
#[derive(Clone, Debug)]
pub struct Column {
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: String,
    pub format: String,
    pub description: String,
    /// 0 is shown by `kubectl get`; higher only with `-o wide`.
    pub priority: i32,
    /// A Kubernetes JSONPath (`.status.phase`), used when `cell` is `None`.
    pub json_path: String,
    /// Computes the cell instead of `json_path`: built-in kinds and the implicit Name column.
    pub cell: Option<CellFn>,
}

impl Column {
    fn computed(name: &str, type_: &str, description: &str, priority: i32, cell: CellFn) -> Self {
        Self {
            name: name.to_owned(),
            type_: type_.to_owned(),
            format: String::new(),
            description: description.to_owned(),
            priority,
            json_path: String::new(),
            cell: Some(cell),
        }
    }

    fn definition(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// What each row carries in `object`: the `includeObject` query parameter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    /// The apiserver's default: a `PartialObjectMetadata` with the object's metadata.
    #[default]
    Metadata,
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter (`None`, `Metadata`, `Object`).
    pub fn from_query(value: &str) -> Option<Self> {
        match value {
            "None" => Some(Self::None),
            "Metadata" => Some(Self::Metadata),
            "Object" => Some(Self::Object),
            _ => None,
        }
    }
}

const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const CREATION_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// The string at a JSON pointer, or "".
fn text<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

fn name_column() -> Column {
    Column {
        name: "Name".to_owned(),
        type_: "string".to_owned(),
        format: "name".to_owned(),
        description: NAME_DESCRIPTION.to_owned(),
        priority: 0,
        json_path: ".metadata.name".to_owned(),
        cell: Some(|obj, _| Value::from(text(obj, "/metadata/name"))),
    }
}

fn crd_age_column() -> Column {
    Column {
        name: "Age".to_owned(),
        type_: "date".to_owned(),
        format: String::new(),
        description: CREATION_DESCRIPTION.to_owned(),
        priority: 0,
        json_path: ".metadata.creationTimestamp".to_owned(),
        cell: None,
    }
}

/// The columns of a CRD version (one entry of `spec.versions`): the implicit Name first, then its
/// `additionalPrinterColumns`, or Age when it has none, as the apiserver does.
pub fn columns_from_crd_version(version: &Value) -> Vec<Column> {
    let mut columns = vec![name_column()];
    let printer = version.get("additionalPrinterColumns").and_then(Value::as_array);
    match printer {
        Some(defs) if !defs.is_empty() => {
            for def in defs {
                let field = |k: &str| def.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
                columns.push(Column {
                    name: field("name"),
                    type_: field("type"),
                    format: field("format"),
                    description: field("description"),
                    priority: def
                        .get("priority")
                        .and_then(Value::as_i64)
                        .and_then(|p| i32::try_from(p).ok())
                        .unwrap_or(0),
                    json_path: field("jsonPath"),
                    cell: None,
                });
            }
        }
        _ => columns.push(crd_age_column()),
    }
    columns
}

/// Name and Age: the columns of a custom resource without printer columns, and what kube-sim
/// uses for any kind that [`builtin_columns`] does not know.
pub fn default_columns() -> Vec<Column> {
    vec![name_column(), crd_age_column()]
}

/// Renders objects as a `meta.k8s.io/v1` Table. `list_resource_version` is the list's (or the single
/// object's) resourceVersion.
pub fn to_table(
    columns: &[Column],
    objects: &[Value],
    include_object: IncludeObject,
    list_resource_version: &str,
    now: Timestamp,
) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let cells: Vec<Value> = columns.iter().map(|c| cell(c, obj, now)).collect();
            let object = match include_object {
                IncludeObject::None => Value::Null,
                IncludeObject::Metadata => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
                }),
                IncludeObject::Object => obj.clone(),
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    let mut metadata = Map::new();
    if !list_resource_version.is_empty() {
        metadata.insert("resourceVersion".to_owned(), Value::from(list_resource_version));
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns.iter().map(Column::definition).collect::<Vec<_>>(),
        "rows": rows,
    })
}

fn cell(column: &Column, obj: &Value, now: Timestamp) -> Value {
    if let Some(f) = column.cell {
        return f(obj, now);
    }
    // The apiserver prints only the first result of a column's JSONPath, even for `[*]`.
    match jsonpath(obj, &column.json_path).into_iter().next() {
        Some(value) => typed_cell(&column.type_, &value, now),
        None => Value::Null,
    }
}

/// A JSON value as a cell of the column's type (apiextensions' `cellForJSONValue`): a value of the
/// wrong type is an empty (null) cell.
fn typed_cell(type_: &str, value: &Value, now: Timestamp) -> Value {
    match (type_, value) {
        (_, Value::Null) => Value::Null,
        ("string", Value::String(_)) => value.clone(),
        ("string", Value::Number(n)) if n.is_f64() => Value::from(go_float(n.as_f64().unwrap_or_default())),
        ("string", Value::Number(n)) => Value::from(n.to_string()),
        ("string", Value::Bool(b)) => Value::from(b.to_string()),
        ("string", other) => Value::from(other.to_string()),
        ("integer", Value::Number(n)) => match n.as_i64() {
            Some(i) => Value::from(i),
            None => n.as_f64().map_or(Value::Null, |f| Value::from(f as i64)),
        },
        ("number", Value::Number(n)) => n.as_f64().map_or(Value::Null, Value::from),
        ("boolean", Value::Bool(_)) => value.clone(),
        ("date", Value::String(s)) => match s.parse::<Timestamp>() {
            Ok(ts) => Value::from(age(ts, now)),
            Err(_) => Value::from("<invalid>"),
        },
        _ => Value::Null,
    }
}

/// `metatable.ConvertToHumanReadableDateType`: Go's zero time has no age.
fn age(ts: Timestamp, now: Timestamp) -> String {
    if ts.as_second() == ZERO_TIME_SECONDS {
        "<unknown>".to_owned()
    } else {
        human_duration(now.duration_since(ts))
    }
}

/// 0001-01-01T00:00:00Z, Go's zero `time.Time`, which an unset `metav1.Time` marshals to.
const ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// The age of a timestamp field for built-in printers (`translateTimestampSince`).
fn age_of(obj: &Value, pointer: &str, now: Timestamp) -> Value {
    match obj.pointer(pointer).and_then(Value::as_str).map(str::parse::<Timestamp>) {
        Some(Ok(ts)) => Value::from(age(ts, now)),
        _ => Value::from("<unknown>"),
    }
}

/// A duration as k8s.io/apimachinery `duration.HumanDuration` renders it: `5s`, `3m12s`, `2d`, ...
pub fn human_duration(d: SignedDuration) -> String {
    // Up to two seconds in the future is clock skew, "now".
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 { format!("{}d", hours / 24) } else { format!("{}d{h}h", hours / 24) };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn at(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn human_durations_match_apimachinery() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (192, "3m12s"),
            (599, "9m59s"),
            (600, "10m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 25 * 60, "3h25m"),
            (8 * 3600, "8h"),
            (47 * 3600 + 59 * 60, "47h"),
            (48 * 3600, "2d"),
            (50 * 3600, "2d2h"),
            (8 * 86400, "8d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (800 * 86400, "2y70d"),
            (8 * 365 * 86400, "8y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(SignedDuration::from_secs(secs)), want, "{secs}s");
        }
        assert_eq!(human_duration(SignedDuration::from_millis(-1500)), "0s");
    }

    fn pool_version() -> Value {
        json!({
            "name": "v1alpha1",
            "additionalPrinterColumns": [
                {"name": "Blocks", "type": "string", "jsonPath": ".spec.blocks[*].cidr"},
                {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
                {"name": "Free", "type": "integer", "jsonPath": ".status.free", "description": "Free addresses"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                {"name": "Auto", "type": "boolean", "jsonPath": ".spec.autoAssign", "priority": 1}
            ]
        })
    }

    #[test]
    fn crd_table_golden() {
        let columns = columns_from_crd_version(&pool_version());
        let obj = json!({
            "apiVersion": "ferrolb.io/v1alpha1",
            "kind": "LoadBalancerIPPool",
            "metadata": {"name": "prod", "resourceVersion": "41", "creationTimestamp": "2026-11-02T10:00:00Z"},
            "spec": {"blocks": [{"cidr": "198.51.100.128/25"}, {"cidr": "2001:db8:100::/64"}], "autoAssign": "yes"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "free": 125.0}
        });
        let now = at("2026-11-02T10:03:12Z");
        let table = to_table(&columns, &[obj], IncludeObject::Metadata, "42", now);
        let expected = json!({
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": "42"},
            "columnDefinitions": [
                {"name": "Name", "type": "string", "format": "name", "description": NAME_DESCRIPTION, "priority": 0},
                {"name": "Blocks", "type": "string", "format": "", "description": "", "priority": 0},
                {"name": "Ready", "type": "string", "format": "", "description": "", "priority": 0},
                {"name": "Free", "type": "integer", "format": "", "description": "Free addresses", "priority": 0},
                {"name": "Age", "type": "date", "format": "", "description": "", "priority": 0},
                {"name": "Auto", "type": "boolean", "format": "", "description": "", "priority": 1}
            ],
            "rows": [{
                "cells": ["prod", "198.51.100.128/25", "True", 125, "3m12s", null],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": {"name": "prod", "resourceVersion": "41", "creationTimestamp": "2026-11-02T10:00:00Z"}
                }
            }]
        });
        assert_eq!(table, expected);
    }

    #[test]
    fn crd_without_columns_gets_name_and_age() {
        let columns = columns_from_crd_version(&json!({"name": "v1"}));
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["Name", "Age"]);
        assert_eq!(columns[1].type_, "date");
        let now = at("2026-11-04T10:00:00Z");
        let objs = [
            json!({"metadata": {"name": "a", "creationTimestamp": "2026-11-02T10:00:00Z"}}),
            json!({"metadata": {"name": "b"}}),
            json!({"metadata": {"name": "c", "creationTimestamp": "garbage"}}),
        ];
        let table = to_table(&columns, &objs, IncludeObject::None, "", now);
        assert_eq!(table["metadata"], json!({}));
        assert_eq!(table["rows"][0], json!({"cells": ["a", "2d"], "object": null}));
        assert_eq!(table["rows"][1]["cells"], json!(["b", null]));
        assert_eq!(table["rows"][2]["cells"], json!(["c", "<invalid>"]));
        let full = to_table(&columns, &objs[..1], IncludeObject::Object, "1", now);
        assert_eq!(full["rows"][0]["object"], objs[0]);
        assert_eq!(IncludeObject::from_query("Object"), Some(IncludeObject::Object));
        assert_eq!(IncludeObject::from_query("object"), None);
    }

    #[test]
    fn typed_cells() {
        let now = at("2026-11-02T10:00:00Z");
        assert_eq!(typed_cell("string", &json!(3), now), json!("3"));
        assert_eq!(typed_cell("string", &json!(2.5), now), json!("2.5"));
        assert_eq!(typed_cell("string", &json!(true), now), json!("true"));
        assert_eq!(typed_cell("string", &json!({"a": 1}), now), json!("{\"a\":1}"));
        assert_eq!(typed_cell("integer", &json!(2.7), now), json!(2));
        assert_eq!(typed_cell("integer", &json!("2"), now), Value::Null);
        assert_eq!(typed_cell("number", &json!(2), now), json!(2.0));
        assert_eq!(typed_cell("boolean", &json!("true"), now), Value::Null);
        assert_eq!(typed_cell("date", &json!("0001-01-01T00:00:00Z"), now), json!("<unknown>"));
        assert_eq!(typed_cell("date", &json!(5), now), Value::Null);
    }

    pub(super) fn names(columns: &[Column]) -> Vec<(&str, i32)> {
        columns.iter().map(|c| (c.name.as_str(), c.priority)).collect()
    }
}
