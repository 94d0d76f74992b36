//! Typed access to the fields of an untyped document. Every key read is remembered, so what is
//! left over (fields this version does not know) can be reported instead of silently dropped.

use std::collections::{BTreeMap, BTreeSet};

use ferrolb_api::Selector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use serde_json::{Map, Value};

use crate::error::InputError;
use crate::report::Subject;

/// A JSON object being read, with the path of the object inside its document.
#[derive(Debug)]
pub struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
    subject: Subject,
    seen: BTreeSet<String>,
}

static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

impl<'a> Obj<'a> {
    /// Wraps `value`, which must be an object (`null` reads as an empty object).
    pub fn new(value: &'a Value, path: impl Into<String>, subject: &Subject) -> Result<Self, InputError> {
        let path = path.into();
        let map = match value {
            Value::Object(m) => m,
            Value::Null => &EMPTY,
            other => {
                return Err(field_error(
                    subject,
                    &path,
                    format!("expected a mapping, found {}", type_name(other)),
                ));
            }
        };
        Ok(Self { map, path, subject: subject.clone(), seen: BTreeSet::new() })
    }

    /// The subject (source object) this object belongs to.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }

    /// Path of this object (`spec`); empty for the document root.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Path of a key of this object (`spec.addresses`).
    pub fn at(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// An error about `key`.
    pub fn error(&self, key: &str, message: impl Into<String>) -> InputError {
        field_error(&self.subject, &self.at(key), message.into())
    }

    /// Whether `key` is present (and not null), without marking it read.
    pub fn has(&self, key: &str) -> bool {
        self.map.get(key).is_some_and(|v| !v.is_null())
    }

    /// The raw value of `key`; null reads as absent. Marks the key read.
    pub fn get(&mut self, key: &str) -> Option<&'a Value> {
        self.seen.insert(key.to_string());
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// A string field.
    pub fn str(&mut self, key: &str) -> Result<Option<&'a str>, InputError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.error(key, format!("expected a string, found {}", type_name(other)))),
        }
    }

    /// A required string field.
    pub fn required_str(&mut self, key: &str) -> Result<&'a str, InputError> {
        self.str(key)?.ok_or_else(|| self.error(key, "required field is missing"))
    }

    /// A boolean field. The strings `"true"`/`"false"` are accepted, as Helm users often quote.
    pub fn bool(&mut self, key: &str) -> Result<Option<bool>, InputError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" => Ok(Some(true)),
            Some(Value::String(s)) if s == "false" => Ok(Some(false)),
            Some(other) => Err(self.error(key, format!("expected true or false, found {}", short(other)))),
        }
    }

    /// An integer field.
    pub fn int(&mut self, key: &str) -> Result<Option<i64>, InputError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
            Some(other) => Err(self.error(key, format!("expected an integer, found {}", short(other)))),
        }
    }

    /// A list field (absent: empty).
    pub fn list(&mut self, key: &str) -> Result<&'a [Value], InputError> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(other) => Err(self.error(key, format!("expected a list, found {}", type_name(other)))),
        }
    }

    /// A list of strings (absent: empty).
    pub fn str_list(&mut self, key: &str) -> Result<Vec<&'a str>, InputError> {
        let items = self.list(key)?;
        let mut out = Vec::with_capacity(items.len());
        for (i, v) in items.iter().enumerate() {
            match v {
                Value::String(s) => out.push(s.as_str()),
                other => {
                    return Err(field_error(
                        &self.subject,
                        &format!("{}[{i}]", self.at(key)),
                        format!("expected a string, found {}", short(other)),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// A nested object.
    pub fn obj(&mut self, key: &str) -> Result<Option<Obj<'a>>, InputError> {
        let path = self.at(key);
        match self.get(key) {
            None => Ok(None),
            Some(v) => Obj::new(v, path, &self.subject).map(Some),
        }
    }

    /// A map of strings to strings (labels, nodeSelector).
    pub fn string_map(&mut self, key: &str) -> Result<BTreeMap<String, String>, InputError> {
        let path = self.at(key);
        string_map(self.get(key), &path, &self.subject)
    }

    /// A Kubernetes LabelSelector, validated.
    pub fn selector(&mut self, key: &str) -> Result<Option<LabelSelector>, InputError> {
        let path = self.at(key);
        match self.get(key) {
            None => Ok(None),
            Some(v) => label_selector(v, &path, &self.subject).map(Some),
        }
    }

    /// A list of LabelSelectors.
    pub fn selectors(&mut self, key: &str) -> Result<Vec<LabelSelector>, InputError> {
        let path = self.at(key);
        let items = self.list(key)?;
        items
            .iter()
            .enumerate()
            .map(|(i, v)| label_selector(v, &format!("{path}[{i}]"), &self.subject))
            .collect()
    }

    /// Keys present but never read: fields this version of ferrolbctl does not know.
    pub fn rest(&self) -> Vec<(String, &'a Value)> {
        self.map
            .iter()
            .filter(|(k, _)| !self.seen.contains(k.as_str()))
            .map(|(k, v)| (self.at(k), v))
            .collect()
    }
}

/// `a.b`, or `b` when `a` is empty.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

/// An error about a field of `subject`.
pub fn field_error(subject: &Subject, field: &str, message: String) -> InputError {
    InputError::Field {
        origin: subject.origin.clone(),
        object: subject.object.clone(),
        field: field.to_string(),
        message,
    }
}

/// A map of strings; numbers and booleans are accepted as their text (as kubectl would reject
/// them, but users of Helm values often write `node-role: true`).
pub fn string_map(
    v: Option<&Value>,
    path: &str,
    subject: &Subject,
) -> Result<BTreeMap<String, String>, InputError> {
    let Some(v) = v else { return Ok(BTreeMap::new()) };
    let Value::Object(m) = v else {
        return Err(field_error(subject, path, format!("expected a mapping, found {}", type_name(v))));
    };
    m.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            Value::Bool(_) | Value::Number(_) => Ok((k.clone(), v.to_string())),
            Value::Null => Ok((k.clone(), String::new())),
            other => Err(field_error(
                subject,
                &join(path, k),
                format!("expected a string, found {}", type_name(other)),
            )),
        })
        .collect()
}

/// Reads and validates a LabelSelector (`matchLabels`, `matchExpressions`).
pub fn label_selector(v: &Value, path: &str, subject: &Subject) -> Result<LabelSelector, InputError> {
    let mut o = Obj::new(v, path, subject)?;
    let labels = o.string_map("matchLabels")?;
    let mut exprs = Vec::new();
    for (i, e) in o.list("matchExpressions")?.iter().enumerate() {
        let mut e = Obj::new(e, format!("{}[{i}]", o.at("matchExpressions")), subject)?;
        let key = e.required_str("key")?.to_string();
        let operator = e.required_str("operator")?.to_string();
        let values: Vec<String> = e.str_list("values")?.into_iter().map(str::to_string).collect();
        exprs.push(LabelSelectorRequirement {
            key,
            operator,
            values: if values.is_empty() { None } else { Some(values) },
        });
    }
    if let Some((field, _)) = o.rest().into_iter().next() {
        return Err(field_error(subject, &field, "unknown field in a label selector".into()));
    }
    let sel = LabelSelector {
        match_labels: if labels.is_empty() { None } else { Some(labels) },
        match_expressions: if exprs.is_empty() { None } else { Some(exprs) },
    };
    Selector::from_label_selector(&sel).map_err(|e| field_error(subject, path, e.to_string()))?;
    Ok(sel)
}

/// `a string`, `a list`, ...: for messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// A value in a message, cut to a readable length.
pub fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 { format!("{}...", s.chars().take(57).collect::<String>()) } else { s }
}
