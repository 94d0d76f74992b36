//! Field selectors (`?fieldSelector=metadata.name=x,metadata.namespace!=y`) and the per-kind
//! fields the apiserver lets clients select on.

use serde_json::Value;

use crate::error::ApiError;
use crate::resources::ResourceType;

/// A parsed field selector: every term must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    field: String,
    value: String,
    equal: bool,
}

impl FieldSelector {
    /// Parses and checks the fields against what `rt` supports (400 otherwise, as the apiserver).
    pub fn parse(input: &str, rt: &ResourceType) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for part in input.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, value, equal) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, true)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{input}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            if !supported(rt, field) {
                return Err(ApiError::bad_request(format!("field label not supported: {field}")));
            }
            terms.push(Term { field: field.to_string(), value: value.trim().to_string(), equal });
        }
        Ok(Self { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The name this selector pins (`metadata.name=x`), for single-object watches.
    pub fn name(&self) -> Option<&str> {
        self.terms.iter().find(|t| t.equal && t.field == "metadata.name").map(|t| t.value.as_str())
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|t| {
            let actual = lookup(obj, &t.field);
            (actual.as_deref() == Some(t.value.as_str()) || (actual.is_none() && t.value.is_empty()))
                == t.equal
        })
    }
}

fn supported(rt: &ResourceType, field: &str) -> bool {
    if matches!(field, "metadata.name" | "metadata.namespace") {
        return true;
    }
    let extra: &[&str] = match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("events.k8s.io", "Event") => {
            &["regarding.kind", "regarding.namespace", "regarding.name", "reason", "type"]
        }
        ("", "Namespace") => &["status.phase"],
        ("", "Node") => &["spec.unschedulable"],
        ("", "Secret") => &["type"],
        ("", "Pod") => {
            &["spec.nodeName", "status.phase", "spec.restartPolicy", "spec.schedulerName", "status.podIP"]
        }
        _ => &[],
    };
    extra.contains(&field)
}

fn lookup(obj: &Value, field: &str) -> Option<String> {
    let mut v = obj;
    for part in field.split('.') {
        v = v.get(part)?;
    }
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Registry;
    use serde_json::json;

    #[test]
    fn parse_and_match() {
        let reg = Registry::builtin();
        let svc = reg.get("", "v1", "services").unwrap();
        let fs = FieldSelector::parse("metadata.name=web,metadata.namespace!=kube-system", &svc).unwrap();
        assert_eq!(fs.name(), Some("web"));
        assert!(fs.matches(&json!({"metadata": {"name": "web", "namespace": "default"}})));
        assert!(!fs.matches(&json!({"metadata": {"name": "web", "namespace": "kube-system"}})));
        let err = FieldSelector::parse("spec.type=LoadBalancer", &svc).unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(err.message, "field label not supported: spec.type");
        let ev = reg.get("", "v1", "events").unwrap();
        let fs = FieldSelector::parse("involvedObject.name=web", &ev).unwrap();
        assert!(fs.matches(&json!({"involvedObject": {"name": "web"}})));
    }
}
