//! The write pipeline every create, update, patch and apply ends in: the metadata the server
//! keeps, subresource rules, schema pruning, defaulting and validation, kind-specific logic
//! (Services, Namespaces, CRD registration), generation, ownership, dry runs, finalizers, and
//! storing the result (or not, when nothing changed).

use std::sync::Arc;

use serde_json::{Value, json};

use super::{FieldValidation, State, WriteOptions, Written, key_of, meta_str, now};
use crate::apply;
use crate::builtin;
use crate::error::ApiError;
use crate::resources::ResourceType;
use crate::schema;

impl State {
    /// Everything a write does after the new object is computed: subresource rules, schema,
    /// kind-specific logic, metadata, ownership, and finally storing it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn finish_write(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        old: Option<Arc<Value>>,
        mut new: Value,
        subresource: Option<&str>,
        opts: &WriteOptions,
        ownership_recorded: bool,
    ) -> Result<Written, ApiError> {
        let mut warnings = Vec::new();
        let old_ref = old.as_deref();
        new["apiVersion"] = json!(rt.api_version());
        new["kind"] = json!(rt.kind);
        if let Some(old) = old_ref {
            // The apiserver owns these; a client cannot change them.
            for k in
                ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"]
            {
                match old["metadata"].get(k) {
                    Some(v) => new["metadata"][k] = v.clone(),
                    None => {
                        if let Some(m) = new["metadata"].as_object_mut() {
                            m.remove(k);
                        }
                    }
                }
            }
            if rt.namespaced {
                new["metadata"]["namespace"] = old["metadata"]["namespace"].clone();
            }
            if rt.status_subresource {
                match subresource {
                    Some("status") => {
                        // Only status changes through /status (labels/annotations too on a real
                        // apiserver for some kinds; FerroLB never relies on that).
                        let status = new.get("status").cloned();
                        let mut kept = old.clone();
                        match status {
                            Some(s) => kept["status"] = s,
                            None => {
                                if let Some(m) = kept.as_object_mut() {
                                    m.remove("status");
                                }
                            }
                        }
                        kept["metadata"]["managedFields"] =
                            new["metadata"].get("managedFields").cloned().unwrap_or(Value::Null);
                        if kept["metadata"]["managedFields"].is_null()
                            && let Some(m) = kept["metadata"].as_object_mut()
                        {
                            m.remove("managedFields");
                        }
                        new = kept;
                    }
                    _ => match old.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            if let Some(m) = new.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    },
                }
            }
        } else if subresource.is_some() {
            return Err(ApiError::not_found(rt, name));
        }
        if let Some(schema) = &rt.schema {
            let before = new.clone();
            schema::prune(schema, &mut new);
            let dropped = dropped_fields(&before, &new, "");
            if !dropped.is_empty() {
                match opts.field_validation {
                    FieldValidation::Strict => {
                        let errs: Vec<String> =
                            dropped.iter().map(|f| format!("unknown field \"{f}\"")).collect();
                        return Err(ApiError::bad_request(format!(
                            "strict decoding error: {}",
                            errs.join(", ")
                        )));
                    }
                    FieldValidation::Warn => {
                        warnings.extend(dropped.iter().map(|f| format!("unknown field \"{f}\"")))
                    }
                    FieldValidation::Ignore => {}
                }
            }
            schema::apply_defaults(schema, &mut new);
            let errors = schema::validate_all(schema, &new, old_ref);

            if !errors.is_empty() {
                let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
                return Err(ApiError::invalid(rt, name, &texts, schema::status_causes(&errors)));
            }
        }
        let mut errors = Vec::new();
        if old.is_none()
            && let Some(e) = builtin::validate_name(&rt.kind, name)
        {
            errors.push(e);
        }
        errors.extend(validate_metadata(&new));
        let mut crd_type = None;
        match (rt.group.as_str(), rt.kind.as_str()) {
            ("", "Service") => {
                if subresource == Some("status") {
                    errors.extend(builtin::validate_lb_status(&new));
                } else if errors.is_empty() {
                    if let Some(o) = old_ref {
                        self.services.release(o);
                    }
                    if let Err(es) = self.services.prepare(old_ref, &mut new) {
                        errors.extend(es);
                        if let Some(o) = old_ref {
                            self.services.reserve(o);
                        }
                    }
                }
            }
            ("", "Namespace") if old.is_none() => builtin::default_namespace(&mut new),
            ("apiextensions.k8s.io", "CustomResourceDefinition") if subresource.is_none() => {
                match crd_served_type(&new, name) {
                    Ok(t) => crd_type = Some(t),
                    Err(es) => errors.extend(es),
                }
            }
            _ => {}
        }
        if !errors.is_empty() {
            let causes = json!(
                errors
                    .iter()
                    .map(|e| {
                        let (field, msg) = e.split_once(": ").unwrap_or(("", e));
                        json!({"reason": "FieldValueInvalid", "message": msg, "field": field})
                    })
                    .collect::<Vec<_>>()
            );
            return Err(ApiError::invalid(rt, name, &errors, causes));
        }
        if rt.is_custom
            && let Some(old) = old_ref
            && spec_of(old) != spec_of(&new)
        {
            let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
            new["metadata"]["generation"] = json!(g + 1);
        }
        if !ownership_recorded {
            apply::track_update(
                old_ref,
                &mut new,
                &opts.manager,
                subresource,
                rt.type_info.as_ref(),
                &rt.api_version(),
                &now(),
            );
        }
        // Nothing changed: no new resourceVersion, no event (as the apiserver short-circuits).
        if let Some(old) = &old
            && same_but_volatile(old, &new)
        {
            return Ok(Written { object: old.clone(), created: false, warnings });
        }
        if opts.dry_run {
            new["metadata"]["resourceVersion"] = json!(old_ref.and_then(|o| meta_str(o, "resourceVersion")));
            return Ok(Written { object: Arc::new(new), created: old.is_none(), warnings });
        }
        // An object marked for deletion goes once its last finalizer is removed.
        if new.pointer("/metadata/deletionTimestamp").is_some()
            && new.pointer("/metadata/finalizers").and_then(Value::as_array).is_none_or(|f| f.is_empty())
        {
            let object = self.remove(rt, ns, name, &new)?;
            return Ok(Written { object, created: false, warnings });
        }
        if let Some(t) = crd_type {
            if let Some(old) = old_ref.and_then(ResourceType::from_crd)
                && (&old.group, &old.plural) != (&t.group, &t.plural)
            {
                self.registry.remove(&old.group, &old.plural);
            }
            self.registry.remove(&t.group, &t.plural);
            self.registry.insert(t);
            new["status"] = crd_status(&new);
        }
        new["metadata"]["resourceVersion"] = json!(self.store.next_rv().to_string());
        let created = old.is_none();
        let object = self.store.commit(rt, key_of(rt, ns, name), Some(new))?;
        Ok(Written { object, created, warnings })
    }
}

fn spec_of(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    o
}

/// Equal but for what every write changes anyway (resourceVersion, managedFields), compared in
/// place: this runs on every write.
fn same_but_volatile(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else { return a == b };
    let volatile = |k: &String| k == "resourceVersion" || k == "managedFields";
    let meta_eq = |x: &Value, y: &Value| match (x.as_object(), y.as_object()) {
        (Some(x), Some(y)) => {
            x.iter().filter(|(k, _)| !volatile(k)).eq(y.iter().filter(|(k, _)| !volatile(k)))
        }
        _ => x == y,
    };
    a.len() == b.len()
        && a.iter().all(|(k, v)| match b.get(k) {
            Some(w) if k == "metadata" => meta_eq(v, w),
            Some(w) => v == w,
            None => false,
        })
}

/// Paths present in `before` but pruned from `after`, for `fieldValidation`.
fn dropped_fields(before: &Value, after: &Value, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, v) in b {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                match a.get(k) {
                    None => out.push(path),
                    Some(av) => out.extend(dropped_fields(v, av, &path)),
                }
            }
        }
        (Value::Array(b), Value::Array(a)) => {
            for (i, (bv, av)) in b.iter().zip(a).enumerate() {
                out.extend(dropped_fields(bv, av, &format!("{prefix}[{i}]")));
            }
        }
        _ => {}
    }
    out
}

fn validate_metadata(obj: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            let v = v.as_str().unwrap_or_default();
            if let Err(e) = crate::labels::qualified_name(k) {
                errors.push(format!("metadata.labels: Invalid value: \"{k}\": {e}"));
            }
            if let Err(e) = crate::labels::label_value(v) {
                errors.push(format!("metadata.labels: Invalid value: \"{v}\": {e}"));
            }
        }
    }
    if let Some(ann) = obj.pointer("/metadata/annotations").and_then(Value::as_object) {
        let size: usize = ann.iter().map(|(k, v)| k.len() + v.as_str().map_or(0, str::len)).sum();
        if size > 256 * 1024 {
            errors.push(format!(
                "metadata.annotations: Too long: may not be more than 262144 bytes, got {size}"
            ));
        }
        for k in ann.keys() {
            if let Err(e) = crate::labels::qualified_name(k) {
                errors.push(format!("metadata.annotations: Invalid value: \"{k}\": {e}"));
            }
        }
    }
    errors
}

fn crd_served_type(crd: &Value, name: &str) -> Result<ResourceType, Vec<String>> {
    let mut errors = Vec::new();
    let group = crd.pointer("/spec/group").and_then(Value::as_str).unwrap_or_default();
    let plural = crd.pointer("/spec/names/plural").and_then(Value::as_str).unwrap_or_default();
    if name != format!("{plural}.{group}") {
        errors.push(format!(
            "metadata.name: Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
        ));
    }
    for (i, v) in crd.pointer("/spec/versions").and_then(Value::as_array).into_iter().flatten().enumerate() {
        if let Some(s) = v.pointer("/schema/openAPIV3Schema") {
            for problem in schema::check_structural(s) {
                errors.push(format!("spec.versions[{i}].schema.openAPIV3Schema: Invalid value: {problem}"));
            }
            for problem in schema::check_cel_compiles(s) {
                errors.push(format!("spec.versions[{i}].schema.openAPIV3Schema: Invalid value: {problem}"));
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    ResourceType::from_crd(crd).ok_or_else(|| {
        vec!["spec: Invalid value: the CRD must have a group, names.plural, names.kind and a version".into()]
    })
}

fn crd_status(crd: &Value) -> Value {
    let t = now();
    json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": t},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": t},
        ],
        "acceptedNames": crd.pointer("/spec/names").cloned().unwrap_or(json!({})),
        "storedVersions": crd.pointer("/spec/versions").and_then(Value::as_array).into_iter().flatten()
            .filter(|v| v["storage"] == true).map(|v| v["name"].clone()).collect::<Vec<_>>(),
    })
}
