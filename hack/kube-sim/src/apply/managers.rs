//! `metadata.managedFields`: reading, ordering and writing the managers' entries.

use serde_json::{Map, Value};

use crate::apply::field_set::FieldSet;

pub(super) const APPLY: &str = "Apply";
pub(super) const UPDATE: &str = "Update";

/// One `metadata.managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Manager {
    pub(super) manager: String,
    pub(super) operation: String,
    pub(super) subresource: Option<String>,
    pub(super) api_version: String,
    pub(super) time: Option<String>,
    pub(super) fields: FieldSet,
}

impl Manager {
    pub(super) fn is(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager && self.operation == operation && self.subresource.as_deref() == subresource
    }

    pub(super) fn parse(entry: &Value) -> Result<Manager, String> {
        let text = |name: &str| entry.get(name).and_then(Value::as_str).map(str::to_string);
        let fields = match entry.get("fieldsV1") {
            Some(fields) => FieldSet::from_fields_v1(fields).map_err(|e| e.to_string())?,
            None => FieldSet::default(),
        };
        Ok(Manager {
            manager: text("manager").unwrap_or_default(),
            operation: text("operation").ok_or("a managedFields entry has no operation")?,
            subresource: text("subresource").filter(|s| !s.is_empty()),
            api_version: text("apiVersion").unwrap_or_default(),
            time: text("time"),
            fields,
        })
    }

    pub(super) fn to_json(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("manager".into(), self.manager.clone().into());
        entry.insert("operation".into(), self.operation.clone().into());
        entry.insert("apiVersion".into(), self.api_version.clone().into());
        if let Some(time) = &self.time {
            entry.insert("time".into(), time.clone().into());
        }
        entry.insert("fieldsType".into(), "FieldsV1".into());
        entry.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if let Some(subresource) = &self.subresource {
            entry.insert("subresource".into(), subresource.clone().into());
        }
        Value::Object(entry)
    }
}

pub(super) fn managed_fields(object: &Value) -> Option<&Value> {
    object.get("metadata")?.get("managedFields").filter(|v| !v.is_null())
}

/// Reads `metadata.managedFields`. An entry that cannot be read drops them all, as the API server
/// resets managed fields it cannot decode.
pub(super) fn read_managers(object: &Value) -> Vec<Manager> {
    let Some(Value::Array(entries)) = managed_fields(object) else { return Vec::new() };
    let managers: Result<Vec<Manager>, String> =
        entries.iter().filter(|e| e.as_object().is_some_and(|e| !e.is_empty())).map(Manager::parse).collect();
    managers.unwrap_or_default()
}

/// Stores the managers in the API server's order (Apply before Update, then oldest first), dropping
/// the ones that own nothing.
pub(super) fn write_managers(object: &mut Value, mut managers: Vec<Manager>) {
    managers.retain(|m| !m.fields.is_empty());
    managers.sort_by(|a, b| {
        (&a.operation, &a.time, &a.manager, &a.api_version, &a.subresource).cmp(&(
            &b.operation,
            &b.time,
            &b.manager,
            &b.api_version,
            &b.subresource,
        ))
    });
    let Value::Object(object) = object else { return };
    if managers.is_empty() {
        if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
            metadata.remove("managedFields");
        }
        return;
    }
    let metadata = object.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if !metadata.is_object() {
        *metadata = Value::Object(Map::new());
    }
    if let Value::Object(metadata) = metadata {
        metadata
            .insert("managedFields".into(), Value::Array(managers.iter().map(Manager::to_json).collect()));
    }
}

/// A copy of `object` without `metadata.managedFields` (nor a `metadata` that held only those).
pub(super) fn without_managed_fields(object: &Value) -> Value {
    let mut object = object.clone();
    if let Value::Object(fields) = &mut object
        && let Some(Value::Object(metadata)) = fields.get_mut("metadata")
    {
        metadata.remove("managedFields");
        if metadata.is_empty() {
            fields.remove("metadata");
        }
    }
    object
}
