//! `meta.k8s.io/v1` Table output, what `kubectl get` asks for with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`: printer columns of CRDs (evaluated with a
//! small Kubernetes-JSONPath subset) and of the built-in kinds FerroLB touches (computed the way
//! kubernetes/pkg/printers does), with ages rendered as the apiserver does.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

use crate::schema::go_float;

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

// ---------------------------------------------------------------------------------------------
// JSONPath

#[derive(Clone, Debug, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    Wildcard,
    Descendants,
    Filter(Filter),
}

#[derive(Clone, Debug, PartialEq)]
struct Filter {
    left: Vec<Step>,
    /// None: the filter only tests that the left side exists.
    compare: Option<(Op, Value)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Evaluates a Kubernetes JSONPath against an object, returning every match in order; a path that
/// does not parse matches nothing. Supported: `.a.b`, `.a[0]` (and `[-1]`), `.a[*].b`, `.*`, `..a`,
/// `['key.with.dots']`, and filters `[?(@.type=="X")]` / `[?(@.type=='X')]` with `==`, `!=`, `<`,
/// `<=`, `>`, `>=` against a string, number or boolean, or `[?(@.field)]` for presence. The path may
/// be wrapped in `{}` and start with `$`.
pub fn jsonpath(obj: &Value, path: &str) -> Vec<Value> {
    let Some(steps) = parse_path(path) else { return Vec::new() };
    eval(obj, &steps).into_iter().cloned().collect()
}

fn parse_path(path: &str) -> Option<Vec<Step>> {
    let mut p = path.trim();
    if let Some(inner) = p.strip_prefix('{').and_then(|x| x.strip_suffix('}')) {
        p = inner.trim();
    }
    let p = p.strip_prefix('$').unwrap_or(p);
    let chars: Vec<char> = p.chars().collect();
    let (steps, end) = parse_steps(&chars, 0)?;
    (end == chars.len()).then_some(steps)
}

/// Parses steps from `i` until the end or a character that cannot continue a path (an operator
/// or space inside a filter); returns the steps and where parsing stopped.
fn parse_steps(c: &[char], mut i: usize) -> Option<(Vec<Step>, usize)> {
    let mut steps = Vec::new();
    while i < c.len() {
        match c[i] {
            '.' if c.get(i + 1) == Some(&'.') => {
                steps.push(Step::Descendants);
                i += 2;
                if c.get(i) == Some(&'*') {
                    steps.push(Step::Wildcard);
                    i += 1;
                } else {
                    let (name, next) = field_name(c, i);
                    if !name.is_empty() {
                        steps.push(Step::Field(name));
                    }
                    i = next;
                }
            }
            '.' => {
                i += 1;
                if c.get(i) == Some(&'*') {
                    steps.push(Step::Wildcard);
                    i += 1;
                } else {
                    let (name, next) = field_name(c, i);
                    // A lone trailing "." (or "$.") names the object itself.
                    if !name.is_empty() {
                        steps.push(Step::Field(name));
                    }
                    i = next;
                }
            }
            '[' => {
                let (step, next) = parse_bracket(c, i + 1)?;
                steps.push(step);
                i = next;
            }
            _ => break,
        }
    }
    Some((steps, i))
}

fn field_name(c: &[char], start: usize) -> (String, usize) {
    let mut i = start;
    while i < c.len() && (c[i].is_alphanumeric() || matches!(c[i], '_' | '-' | '/' | '$')) {
        i += 1;
    }
    (c[start..i].iter().collect(), i)
}

/// Parses what follows `[`, returning the step and the index after the closing `]`.
fn parse_bracket(c: &[char], mut i: usize) -> Option<(Step, usize)> {
    let skip_ws = |mut i: usize| {
        while c.get(i).is_some_and(|ch| ch.is_whitespace()) {
            i += 1;
        }
        i
    };
    i = skip_ws(i);
    let step = match *c.get(i)? {
        '*' => {
            i += 1;
            Step::Wildcard
        }
        q @ ('\'' | '"') => {
            let (s, next) = quoted(c, i, q)?;
            i = next;
            Step::Field(s)
        }
        '?' => {
            i = skip_ws(i + 1);
            if c.get(i) != Some(&'(') {
                return None;
            }
            let (filter, next) = parse_filter(c, i + 1)?;
            i = next;
            Step::Filter(filter)
        }
        _ => {
            let start = i;
            while c.get(i).is_some_and(|ch| ch.is_ascii_digit() || *ch == '-') {
                i += 1;
            }
            let n: String = c[start..i].iter().collect();
            Step::Index(n.parse().ok()?)
        }
    };
    i = skip_ws(i);
    (c.get(i) == Some(&']')).then_some((step, i + 1))
}

fn quoted(c: &[char], start: usize, q: char) -> Option<(String, usize)> {
    let mut s = String::new();
    let mut i = start + 1;
    while let Some(&ch) = c.get(i) {
        match ch {
            '\\' if c.get(i + 1).is_some() => {
                s.push(c[i + 1]);
                i += 2;
            }
            ch if ch == q => return Some((s, i + 1)),
            ch => {
                s.push(ch);
                i += 1;
            }
        }
    }
    None
}

/// Parses `@.path [op literal])` after `?(`, returning the index after `)`.
fn parse_filter(c: &[char], mut i: usize) -> Option<(Filter, usize)> {
    while c.get(i).is_some_and(|ch| ch.is_whitespace()) {
        i += 1;
    }
    if c.get(i) != Some(&'@') {
        return None;
    }
    let (left, mut i) = parse_steps(c, i + 1)?;
    let ws = |mut i: usize| {
        while c.get(i).is_some_and(|ch| ch.is_whitespace()) {
            i += 1;
        }
        i
    };
    i = ws(i);
    if c.get(i) == Some(&')') {
        return Some((Filter { left, compare: None }, i + 1));
    }
    let two: String = c[i..c.len().min(i + 2)].iter().collect();
    let (op, len) = match two.as_str() {
        "==" => (Op::Eq, 2),
        "!=" => (Op::Ne, 2),
        "<=" => (Op::Le, 2),
        ">=" => (Op::Ge, 2),
        _ if two.starts_with('<') => (Op::Lt, 1),
        _ if two.starts_with('>') => (Op::Gt, 1),
        _ => return None,
    };
    i = ws(i + len);
    let literal = match *c.get(i)? {
        q @ ('\'' | '"') => {
            let (s, next) = quoted(c, i, q)?;
            i = next;
            Value::from(s)
        }
        _ => {
            let start = i;
            while c.get(i).is_some_and(|ch| !ch.is_whitespace() && *ch != ')') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            match word.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => Value::from(word.parse::<f64>().ok()?),
            }
        }
    };
    i = ws(i);
    (c.get(i) == Some(&')')).then_some((Filter { left, compare: Some((op, literal)) }, i + 1))
}

fn eval<'a>(obj: &'a Value, steps: &[Step]) -> Vec<&'a Value> {
    let mut current = vec![obj];
    for step in steps {
        let mut next = Vec::new();
        for v in current {
            match step {
                Step::Field(name) => next.extend(v.get(name.as_str())),
                Step::Index(i) => {
                    if let Value::Array(a) = v {
                        let idx = if *i < 0 { a.len() as i64 + i } else { *i };
                        next.extend(usize::try_from(idx).ok().and_then(|idx| a.get(idx)));
                    }
                }
                Step::Wildcard => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Descendants => descendants(v, &mut next),
                Step::Filter(f) => {
                    if let Value::Array(a) = v {
                        next.extend(a.iter().filter(|item| filter_matches(f, item)));
                    }
                }
            }
        }
        current = next;
    }
    current
}

fn descendants<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(v);
    match v {
        Value::Array(a) => a.iter().for_each(|c| descendants(c, out)),
        Value::Object(m) => m.values().for_each(|c| descendants(c, out)),
        _ => {}
    }
}

fn filter_matches(f: &Filter, item: &Value) -> bool {
    let lefts = eval(item, &f.left);
    let Some(left) = lefts.first() else { return false };
    let Some((op, right)) = &f.compare else { return true };
    let ordering = match (left, right) {
        (Value::Number(a), Value::Number(b)) => {
            a.as_f64().zip(b.as_f64()).and_then(|(a, b)| a.partial_cmp(&b))
        }
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) if matches!(op, Op::Eq | Op::Ne) => Some(a.cmp(b)),
        _ => None,
    };
    match (op, ordering) {
        (Op::Ne, None) => true,
        (_, None) => false,
        (Op::Eq, Some(o)) => o.is_eq(),
        (Op::Ne, Some(o)) => o.is_ne(),
        (Op::Lt, Some(o)) => o.is_lt(),
        (Op::Le, Some(o)) => o.is_le(),
        (Op::Gt, Some(o)) => o.is_gt(),
        (Op::Ge, Some(o)) => o.is_ge(),
    }
}

// ---------------------------------------------------------------------------------------------
// Built-in kinds

fn text<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

fn array<'a>(obj: &'a Value, pointer: &str) -> &'a [Value] {
    obj.pointer(pointer).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

fn or_none(s: String) -> Value {
    Value::from(if s.is_empty() { "<none>".to_owned() } else { s })
}

fn builtin_name() -> Column {
    name_column()
}

fn builtin_age() -> Column {
    Column::computed("Age", "string", CREATION_DESCRIPTION, 0, |o, now| {
        age_of(o, "/metadata/creationTimestamp", now)
    })
}

/// The columns kubectl shows for the built-in kinds kube-sim serves, as the apiserver's printers
/// compute them (`Wide` columns have priority 1); `None` for any other kind, which gets
/// [`default_columns`] (or its CRD's printer columns).
pub fn builtin_columns(group: &str, kind: &str) -> Option<Vec<Column>> {
    let columns = match (group, kind) {
        ("", "Service") => service_columns(),
        ("", "Node") => node_columns(),
        ("", "Namespace") => vec![
            builtin_name(),
            Column::computed("Status", "string", "The status of the namespace", 0, |o, _| {
                Value::from(text(o, "/status/phase"))
            }),
            builtin_age(),
        ],
        ("coordination.k8s.io", "Lease") => vec![
            builtin_name(),
            Column::computed("Holder", "string", "The holder of the lease", 0, |o, _| {
                Value::from(text(o, "/spec/holderIdentity"))
            }),
            builtin_age(),
        ],
        ("", "Endpoints") => vec![
            builtin_name(),
            Column::computed("Endpoints", "string", "Endpoints of the service", 0, |o, _| {
                Value::from(format_endpoints(o))
            }),
            builtin_age(),
        ],
        ("discovery.k8s.io", "EndpointSlice") => endpoint_slice_columns(),
        ("", "Event") => event_columns(false),
        ("events.k8s.io", "Event") => event_columns(true),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => vec![
            builtin_name(),
            Column::computed("Created At", "date", CREATION_DESCRIPTION, 0, |o, _| {
                // The default table convertor prints the RFC 3339 time itself, not an age.
                match text(o, "/metadata/creationTimestamp").parse::<Timestamp>() {
                    Ok(ts) => Value::from(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
                    Err(_) => Value::from("0001-01-01T00:00:00Z"),
                }
            }),
        ],
        _ => return None,
    };
    Some(columns)
}

fn service_columns() -> Vec<Column> {
    vec![
        builtin_name(),
        Column::computed("Type", "string", "type determines how the Service is exposed.", 0, |o, _| {
            Value::from(service_type(o))
        }),
        Column::computed("Cluster-IP", "string", "clusterIP is the IP address of the service.", 0, |o, _| {
            let ip = array(o, "/spec/clusterIPs")
                .first()
                .and_then(Value::as_str)
                .unwrap_or(text(o, "/spec/clusterIP"));
            or_none(ip.to_owned())
        }),
        Column::computed(
            "External-IP",
            "string",
            "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
            0,
            |o, _| Value::from(service_external_ip(o)),
        ),
        Column::computed(
            "Port(s)",
            "string",
            "The list of ports that are exposed by this service.",
            0,
            |o, _| {
                let ports: Vec<String> = array(o, "/spec/ports")
                    .iter()
                    .map(|p| {
                        let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                        let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                        match p.get("nodePort").and_then(Value::as_i64).filter(|n| *n > 0) {
                            Some(node_port) => format!("{port}:{node_port}/{proto}"),
                            None => format!("{port}/{proto}"),
                        }
                    })
                    .collect();
                or_none(ports.join(","))
            },
        ),
        builtin_age(),
        Column::computed(
            "Selector",
            "string",
            "Route service traffic to pods with label keys and values matching this selector.",
            1,
            |o, _| or_none(format_labels(o.pointer("/spec/selector"))),
        ),
    ]
}

fn service_type(o: &Value) -> &str {
    match text(o, "/spec/type") {
        "" => "ClusterIP",
        t => t,
    }
}

fn strings_at(o: &Value, pointer: &str) -> Vec<String> {
    array(o, pointer).iter().filter_map(Value::as_str).map(str::to_owned).collect()
}

fn service_external_ip(o: &Value) -> String {
    let external = strings_at(o, "/spec/externalIPs");
    match service_type(o) {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".to_owned()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            // A sorted set of ingress IPs (or hostnames), then the external IPs.
            let mut ingress: Vec<String> = array(o, "/status/loadBalancer/ingress")
                .iter()
                .filter_map(|i| {
                    let ip = i.get("ip").and_then(Value::as_str).filter(|s| !s.is_empty());
                    ip.or_else(|| i.get("hostname").and_then(Value::as_str).filter(|s| !s.is_empty()))
                })
                .map(str::to_owned)
                .collect();
            ingress.sort();
            ingress.dedup();
            ingress.extend(external);
            if ingress.is_empty() { "<pending>".to_owned() } else { ingress.join(",") }
        }
        "ExternalName" => text(o, "/spec/externalName").to_owned(),
        _ => "<unknown>".to_owned(),
    }
}

/// `labels.FormatLabels`: sorted `k=v` pairs.
fn format_labels(map: Option<&Value>) -> String {
    let Some(Value::Object(m)) = map else { return String::new() };
    let mut pairs: Vec<String> =
        m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect();
    pairs.sort();
    pairs.join(",")
}

fn node_columns() -> Vec<Column> {
    vec![
        builtin_name(),
        Column::computed("Status", "string", "The status of the node", 0, |o, _| Value::from(node_status(o))),
        Column::computed("Roles", "string", "The roles of the node", 0, |o, _| {
            or_none(node_roles(o).join(","))
        }),
        builtin_age(),
        Column::computed("Version", "string", "Kubelet Version reported by the node.", 0, |o, _| {
            Value::from(text(o, "/status/nodeInfo/kubeletVersion"))
        }),
        Column::computed("Internal-IP", "string", "List of addresses reachable to the node.", 1, |o, _| {
            Value::from(node_address(o, "InternalIP"))
        }),
        Column::computed("External-IP", "string", "List of addresses reachable to the node.", 1, |o, _| {
            Value::from(node_address(o, "ExternalIP"))
        }),
        Column::computed("OS-Image", "string", "OS Image reported by the node.", 1, |o, _| {
            node_info(o, "osImage")
        }),
        Column::computed("Kernel-Version", "string", "Kernel Version reported by the node.", 1, |o, _| {
            node_info(o, "kernelVersion")
        }),
        Column::computed(
            "Container-Runtime",
            "string",
            "Container runtime version reported by the node.",
            1,
            |o, _| node_info(o, "containerRuntimeVersion"),
        ),
    ]
}

fn node_address(o: &Value, kind: &str) -> String {
    array(o, "/status/addresses")
        .iter()
        .find(|a| a.get("type").and_then(Value::as_str) == Some(kind))
        .and_then(|a| a.get("address").and_then(Value::as_str))
        .unwrap_or("<none>")
        .to_owned()
}

fn node_info(o: &Value, field: &str) -> Value {
    match text(o, &format!("/status/nodeInfo/{field}")) {
        "" => Value::from("<unknown>"),
        s => Value::from(s),
    }
}

fn node_status(o: &Value) -> String {
    // Only the Ready condition is shown (its last occurrence wins, as in a Go map).
    let ready = array(o, "/status/conditions")
        .iter()
        .rev()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"));
    let mut status = vec![match ready {
        Some(c) if c.get("status").and_then(Value::as_str) == Some("True") => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if o.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled");
    }
    status.join(",")
}

fn node_roles(o: &Value) -> Vec<String> {
    let mut roles: Vec<String> = o
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
                    Some(role) if !role.is_empty() => Some(role.to_owned()),
                    _ if k == "kubernetes.io/role" => v.as_str().filter(|s| !s.is_empty()).map(str::to_owned),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    roles.sort();
    roles.dedup();
    roles
}

/// `formatEndpoints`: up to three `ip:port`, then `+ N more...`.
fn format_endpoints(o: &Value) -> String {
    let subsets = array(o, "/subsets");
    if subsets.is_empty() {
        return "<none>".to_owned();
    }
    const MAX: usize = 3;
    let mut list = Vec::new();
    let mut more = false;
    let mut count = 0;
    for ss in subsets {
        let addresses = ss.get("addresses").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let ips = addresses.iter().map(|a| a.get("ip").and_then(Value::as_str).unwrap_or_default());
        let ports = ss.get("ports").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        if ports.is_empty() {
            count += addresses.len();
            for ip in ips.clone() {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(ip.to_owned());
            }
            continue;
        }
        for port in ports {
            let port = port.get("port").and_then(Value::as_i64).unwrap_or(0);
            count += addresses.len();
            for ip in ips.clone() {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") });
            }
        }
    }
    let joined = list.join(",");
    if more { format!("{joined} + {} more...", count - MAX) } else { joined }
}

fn endpoint_slice_columns() -> Vec<Column> {
    vec![
        builtin_name(),
        Column::computed(
            "AddressType",
            "string",
            "addressType specifies the type of address carried by this EndpointSlice.",
            0,
            |o, _| Value::from(text(o, "/addressType")),
        ),
        Column::computed(
            "Ports",
            "string",
            "ports specifies the list of network ports exposed by each endpoint in this slice.",
            0,
            |o, _| {
                let ports: Vec<String> = array(o, "/ports")
                    .iter()
                    .map(|p| {
                        match (p.get("port").and_then(Value::as_i64), p.get("name").and_then(Value::as_str)) {
                            (Some(n), _) => n.to_string(),
                            (None, Some(name)) => name.to_owned(),
                            (None, None) => "*".to_owned(),
                        }
                    })
                    .collect();
                Value::from(list_with_more(ports))
            },
        ),
        Column::computed(
            "Endpoints",
            "string",
            "endpoints is a list of unique endpoints in this slice.",
            0,
            |o, _| {
                let addresses: Vec<String> = array(o, "/endpoints")
                    .iter()
                    .flat_map(|e| {
                        e.get("addresses").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
                    })
                    .map(|a| a.as_str().unwrap_or_default().to_owned())
                    .collect();
                Value::from(list_with_more(addresses))
            },
        ),
        builtin_age(),
    ]
}

/// `listWithMoreString` of the EndpointSlice printer.
fn list_with_more(items: Vec<String>) -> String {
    const MAX: usize = 3;
    let count = items.len();
    let joined = items.into_iter().take(MAX).collect::<Vec<_>>().join(",");
    if count > MAX {
        format!("{joined} + {} more...", count - MAX)
    } else if joined.is_empty() {
        "<unset>".to_owned()
    } else {
        joined
    }
}

/// Reads core/v1 and events.k8s.io/v1 Events alike: the latter names the same fields differently.
struct EventView<'a> {
    o: &'a Value,
    v1: bool,
}

impl EventView<'_> {
    fn field(&self, core: &str, events: &str) -> &str {
        text(self.o, if self.v1 { events } else { core })
    }

    fn first_seen(&self, now: Timestamp) -> Value {
        let first = if self.v1 { "/deprecatedFirstTimestamp" } else { "/firstTimestamp" };
        if text(self.o, first).is_empty() {
            age_of(self.o, "/eventTime", now)
        } else {
            age_of(self.o, first, now)
        }
    }

    fn last_seen(&self, now: Timestamp) -> Value {
        if self.o.get("series").is_some_and(Value::is_object) {
            return age_of(self.o, "/series/lastObservedTime", now);
        }
        let last = if self.v1 { "/deprecatedLastTimestamp" } else { "/lastTimestamp" };
        if text(self.o, last).is_empty() { self.first_seen(now) } else { age_of(self.o, last, now) }
    }

    fn count(&self) -> i64 {
        if let Some(n) = self.o.pointer("/series/count").and_then(Value::as_i64) {
            return n;
        }
        let count = self
            .o
            .pointer(if self.v1 { "/deprecatedCount" } else { "/count" })
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if count == 0 { 1 } else { count }
    }

    fn object(&self) -> String {
        let base = if self.v1 { "/regarding" } else { "/involvedObject" };
        let kind = text(self.o, &format!("{base}/kind")).to_lowercase();
        match text(self.o, &format!("{base}/name")) {
            "" => kind,
            name => format!("{kind}/{name}"),
        }
    }

    fn source(&self) -> String {
        let component = match self.field("/source/component", "/deprecatedSource/component") {
            "" => text(self.o, "/reportingController"),
            c => c,
        };
        let instance = match self.field("/source/host", "/deprecatedSource/host") {
            "" => text(self.o, "/reportingInstance"),
            h => h,
        };
        if instance.is_empty() { component.to_owned() } else { format!("{component}, {instance}") }
    }
}

fn event_columns(v1: bool) -> Vec<Column> {
    // fn pointers cannot capture `v1`, so each column exists in both flavours.
    let pick = |core: CellFn, events: CellFn| if v1 { events } else { core };
    vec![
        Column::computed(
            "Last Seen",
            "string",
            "The time at which the most recent occurrence of this event was recorded.",
            0,
            pick(
                |o, now| EventView { o, v1: false }.last_seen(now),
                |o, now| EventView { o, v1: true }.last_seen(now),
            ),
        ),
        Column::computed(
            "Type",
            "string",
            "Type of this event (Normal, Warning), new types could be added in the future",
            0,
            |o, _| Value::from(text(o, "/type")),
        ),
        Column::computed(
            "Reason",
            "string",
            "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
            0,
            |o, _| Value::from(text(o, "/reason")),
        ),
        Column::computed(
            "Object",
            "string",
            "The object that this event is about.",
            0,
            pick(
                |o, _| Value::from(EventView { o, v1: false }.object()),
                |o, _| Value::from(EventView { o, v1: true }.object()),
            ),
        ),
        Column::computed(
            "Subobject",
            "string",
            "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].",
            1,
            pick(
                |o, _| Value::from(text(o, "/involvedObject/fieldPath")),
                |o, _| Value::from(text(o, "/regarding/fieldPath")),
            ),
        ),
        Column::computed(
            "Source",
            "string",
            "The component reporting this event. Should be a short machine understandable string.",
            1,
            pick(
                |o, _| Value::from(EventView { o, v1: false }.source()),
                |o, _| Value::from(EventView { o, v1: true }.source()),
            ),
        ),
        Column::computed(
            "Message",
            "string",
            "A human-readable description of the status of this operation.",
            0,
            pick(|o, _| Value::from(text(o, "/message").trim()), |o, _| Value::from(text(o, "/note").trim())),
        ),
        Column::computed(
            "First Seen",
            "string",
            "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
            1,
            pick(
                |o, now| EventView { o, v1: false }.first_seen(now),
                |o, now| EventView { o, v1: true }.first_seen(now),
            ),
        ),
        Column::computed(
            "Count",
            "string",
            "The number of times this event has occurred.",
            1,
            pick(
                |o, _| Value::from(EventView { o, v1: false }.count()),
                |o, _| Value::from(EventView { o, v1: true }.count()),
            ),
        ),
        Column { priority: 1, ..name_column() },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
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

    fn conditions() -> Value {
        json!({
            "metadata": {"name": "x", "annotations": {"a.b/c": "dotted"}},
            "spec": {"blocks": [{"cidr": "10.0.0.0/24"}, {"start": "10.0.1.1", "stop": "10.0.1.9"}], "n": 3},
            "status": {"conditions": [
                {"type": "Ready", "status": "True", "n": 1},
                {"type": "Degraded", "status": "False", "n": 2}
            ]}
        })
    }

    #[test]
    fn jsonpath_fields_indexes_and_wildcards() {
        let o = conditions();
        assert_eq!(jsonpath(&o, ".metadata.name"), [json!("x")]);
        assert_eq!(jsonpath(&o, "{.metadata.name}"), [json!("x")]);
        assert_eq!(jsonpath(&o, "$.spec.n"), [json!(3)]);
        assert_eq!(jsonpath(&o, ".spec.blocks[1].start"), [json!("10.0.1.1")]);
        assert_eq!(jsonpath(&o, ".spec.blocks[-1].stop"), [json!("10.0.1.9")]);
        assert_eq!(jsonpath(&o, ".spec.blocks[*].cidr"), [json!("10.0.0.0/24")]);
        assert_eq!(jsonpath(&o, ".status.conditions[*].type"), [json!("Ready"), json!("Degraded")]);
        assert_eq!(jsonpath(&o, ".metadata.annotations['a.b/c']"), [json!("dotted")]);
        assert_eq!(jsonpath(&o, ".metadata.annotations[\"a.b/c\"]"), [json!("dotted")]);
        assert_eq!(jsonpath(&o, "..stop"), [json!("10.0.1.9")]);
        assert_eq!(jsonpath(&o, ".spec.*").len(), 2);
        assert!(jsonpath(&o, ".spec.missing.deeper").is_empty());
        assert!(jsonpath(&o, ".spec.blocks[7]").is_empty());
        assert!(jsonpath(&o, ".spec[").is_empty());
        assert!(jsonpath(&o, "spec").is_empty());
    }

    #[test]
    fn jsonpath_filters() {
        let o = conditions();
        assert_eq!(jsonpath(&o, r#".status.conditions[?(@.type=="Ready")].status"#), [json!("True")]);
        assert_eq!(jsonpath(&o, ".status.conditions[?(@.type=='Degraded')].status"), [json!("False")]);
        assert_eq!(jsonpath(&o, ".status.conditions[?( @.type != 'Ready' )].type"), [json!("Degraded")]);
        assert_eq!(jsonpath(&o, ".status.conditions[?(@.n > 1)].type"), [json!("Degraded")]);
        assert_eq!(jsonpath(&o, ".status.conditions[?(@.n<=1)].type"), [json!("Ready")]);
        assert_eq!(jsonpath(&o, ".spec.blocks[?(@.cidr)]"), [json!({"cidr": "10.0.0.0/24"})]);
        assert!(jsonpath(&o, ".status.conditions[?(@.type=='Nope')].status").is_empty());
        assert!(jsonpath(&o, ".status.conditions[?(@.type=='Ready'").is_empty());
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

    fn names(columns: &[Column]) -> Vec<(&str, i32)> {
        columns.iter().map(|c| (c.name.as_str(), c.priority)).collect()
    }

    fn cells(group: &str, kind: &str, obj: Value, now: &str) -> Value {
        let columns = builtin_columns(group, kind).unwrap_or_default();
        to_table(&columns, &[obj], IncludeObject::None, "", at(now))["rows"][0]["cells"].clone()
    }

    #[test]
    fn service_table_golden() {
        let columns = builtin_columns("", "Service").unwrap_or_default();
        assert_eq!(
            names(&columns),
            [
                ("Name", 0),
                ("Type", 0),
                ("Cluster-IP", 0),
                ("External-IP", 0),
                ("Port(s)", 0),
                ("Age", 0),
                ("Selector", 1)
            ]
        );
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2026-11-02T10:00:00Z"},
            "spec": {
                "type": "LoadBalancer", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
                "selector": {"app": "web", "tier": "front"}
            },
            "status": {"loadBalancer": {}}
        });
        let table = to_table(&columns, &[svc], IncludeObject::Metadata, "7", at("2026-11-02T10:00:05Z"));
        let defs: Vec<Value> = table["columnDefinitions"].as_array().cloned().unwrap_or_default();
        assert_eq!(
            defs[1],
            json!({"name": "Type", "type": "string", "format": "", "description": "type determines how the Service is exposed.", "priority": 0})
        );
        assert_eq!(
            table["rows"],
            json!([{
                "cells": ["web", "LoadBalancer", "10.96.0.10", "<pending>", "80:30080/TCP,53/UDP", "5s", "app=web,tier=front"],
                "object": {
                    "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                    "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2026-11-02T10:00:00Z"}
                }
            }])
        );
    }

    #[test]
    fn service_external_ips() {
        let now = "2026-11-02T10:00:00Z";
        let lb = json!({"metadata": {"name": "s"}, "spec": {"type": "LoadBalancer", "externalIPs": ["192.0.2.1"]},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.130"}, {"hostname": "lb.example"}, {"ip": "198.51.100.129"}]}}});
        assert_eq!(cells("", "Service", lb, now)[3], "198.51.100.129,198.51.100.130,lb.example,192.0.2.1");
        let cluster = json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "None"}});
        let c = cells("", "Service", cluster, now);
        assert_eq!(c, json!(["s", "ClusterIP", "None", "<none>", "<none>", "<unknown>", "<none>"]));
        let ext = json!({"metadata": {"name": "s"}, "spec": {"type": "ExternalName", "externalName": "db.example"}});
        assert_eq!(cells("", "Service", ext, now)[3], "db.example");
    }

    #[test]
    fn node_namespace_lease_tables() {
        let now = "2026-11-02T12:00:00Z";
        let node = json!({
            "metadata": {"name": "n1", "creationTimestamp": "2026-11-02T10:00:00Z",
                "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/worker": "", "kubernetes.io/role": "edge"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "False"}],
                "addresses": [{"type": "InternalIP", "address": "198.51.100.11"}],
                "nodeInfo": {"kubeletVersion": "v1.34.0", "osImage": "Debian"}}
        });
        assert_eq!(
            cells("", "Node", node, now),
            json!([
                "n1",
                "NotReady,SchedulingDisabled",
                "control-plane,edge,worker",
                "120m",
                "v1.34.0",
                "198.51.100.11",
                "<none>",
                "Debian",
                "<unknown>",
                "<unknown>"
            ])
        );
        let bare = cells("", "Node", json!({"metadata": {"name": "n2"}}), now);
        assert_eq!(bare[1], "Unknown");
        assert_eq!(bare[2], "<none>");
        let ns = json!({"metadata": {"name": "default", "creationTimestamp": "2026-11-02T11:59:00Z"}, "status": {"phase": "Active"}});
        assert_eq!(cells("", "Namespace", ns, now), json!(["default", "Active", "60s"]));
        let lease = json!({"metadata": {"name": "ferrolb-ipam"}, "spec": {"holderIdentity": "ctrl-0"}});
        assert_eq!(
            cells("coordination.k8s.io", "Lease", lease, now),
            json!(["ferrolb-ipam", "ctrl-0", "<unknown>"])
        );
        assert!(builtin_columns("ferrolb.io", "LoadBalancerIPPool").is_none());
        assert!(builtin_columns("", "Lease").is_none());
        assert_eq!(names(&default_columns()), [("Name", 0), ("Age", 0)]);
    }

    #[test]
    fn endpoints_tables() {
        let now = "2026-11-02T12:00:00Z";
        let ep = json!({"metadata": {"name": "web"}, "subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]}
        ]});
        assert_eq!(cells("", "Endpoints", ep, now)[1], "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more...");
        let v6 = json!({"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": "2001:db8::1"}], "ports": [{"port": 80}]}]});
        assert_eq!(cells("", "Endpoints", v6, now)[1], "[2001:db8::1]:80");
        assert_eq!(cells("", "Endpoints", json!({"metadata": {"name": "e"}}), now)[1], "<none>");
        let slice = json!({"metadata": {"name": "web-abc"}, "addressType": "IPv4",
            "ports": [{"port": 80}, {"name": "https"}, {}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3", "10.0.0.4"]}]});
        assert_eq!(
            cells("discovery.k8s.io", "EndpointSlice", slice, now),
            json!(["web-abc", "IPv4", "80,https,*", "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...", "<unknown>"])
        );
        let empty = json!({"metadata": {"name": "e"}, "addressType": "IPv6"});
        assert_eq!(cells("discovery.k8s.io", "EndpointSlice", empty, now)[2], "<unset>");
    }

    #[test]
    fn event_and_crd_tables() {
        let now = "2026-11-02T12:00:00Z";
        let columns = builtin_columns("", "Event").unwrap_or_default();
        assert_eq!(
            names(&columns),
            [
                ("Last Seen", 0),
                ("Type", 0),
                ("Reason", 0),
                ("Object", 0),
                ("Subobject", 1),
                ("Source", 1),
                ("Message", 0),
                ("First Seen", 1),
                ("Count", 1),
                ("Name", 1)
            ]
        );
        let ev = json!({"metadata": {"name": "web.1"}, "type": "Normal", "reason": "IPAllocated",
            "involvedObject": {"kind": "Service", "name": "web"}, "message": " Assigned 198.51.100.130 \n",
            "firstTimestamp": "2026-11-02T11:00:00Z", "lastTimestamp": "2026-11-02T11:59:30Z", "count": 2,
            "source": {"component": "ferrolb-controller"}});
        assert_eq!(
            cells("", "Event", ev, now),
            json!([
                "30s",
                "Normal",
                "IPAllocated",
                "service/web",
                "",
                "ferrolb-controller",
                "Assigned 198.51.100.130",
                "60m",
                2,
                "web.1"
            ])
        );
        let ev1 = json!({"metadata": {"name": "web.2"}, "type": "Warning", "reason": "NoIP",
            "regarding": {"kind": "Service", "name": "web"}, "note": "pool exhausted",
            "eventTime": "2026-11-02T11:58:00.000000Z", "reportingController": "ferrolb.io/controller", "reportingInstance": "ctrl-0"});
        assert_eq!(
            cells("events.k8s.io", "Event", ev1, now),
            json!([
                "2m",
                "Warning",
                "NoIP",
                "service/web",
                "",
                "ferrolb.io/controller, ctrl-0",
                "pool exhausted",
                "2m",
                1,
                "web.2"
            ])
        );
        let crd = json!({"metadata": {"name": "loadbalancerippools.ferrolb.io", "creationTimestamp": "2026-11-02T10:00:00Z"}});
        assert_eq!(
            cells("apiextensions.k8s.io", "CustomResourceDefinition", crd, now),
            json!(["loadbalancerippools.ferrolb.io", "2026-11-02T10:00:00Z"])
        );
    }
}
