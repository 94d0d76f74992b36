//! Server-side apply and `metadata.managedFields` tracking, after
//! <https://kubernetes.io/docs/reference/using-api/server-side-apply/> and the structured-merge-diff
//! algorithm behind it.
//!
//! Field ownership is a set of paths ([`FieldSet`]) per manager, stored as `FieldsV1` JSON. An apply
//! merges the configuration into the live object, prunes the fields its manager applied last time and
//! no longer applies (unless someone else owns them), and refuses to change fields another manager owns
//! unless forced. Every other write (`track_update`) takes ownership of what it changed.
//!
//! Knowingly simplified compared with a kube-apiserver:
//! - Managers are keyed by (manager, operation, subresource): an Update entry is not split per API
//!   version, and there is no cap on the number of Update entries (no "ancient-changes" entry).
//! - Objects are untyped JSON: a map is never told apart from a struct, so the difference in how the two
//!   are owned when their value is a non-empty map does not exist here, and unions are not normalised.
//! - `null` in an applied configuration removes the field and owns nothing.
//! - As on a real server, an empty map is owned as a leaf but an empty set or map list owns nothing.
//! - Merged map-list and set items keep the live order, new items are appended in configuration order.
//! - Maps and lists that an apply's pruning leaves empty are removed (Go's `omitempty` would hide them on
//!   a built-in type).
//! - Live objects with a map-list whose items lack keys or repeat them (or set lists with objects or
//!   duplicates) are tolerated by treating that list as atomic; in an applied configuration those are
//!   errors, as on a real server.
//! - The caller resets what its endpoint must not change (status on the main resource of a type with a
//!   status subresource, everything but status on `/status`) before calling, by removing those fields
//!   from the configuration or restoring them in the new object.
//!
//! `field_set` computes and encodes owned fields, `merge` merges, prunes and compares objects,
//! `managers` reads and writes `metadata.managedFields`, `update` tracks non-apply writes.

use serde_json::{Map, Value};

use crate::apply::managers::{
    APPLY, Manager, UPDATE, managed_fields, read_managers, without_managed_fields, write_managers,
};
use crate::apply::merge::{Comparison, merge, prune};
use crate::types::TypeInfo;

mod field_set;
mod managers;
mod merge;
mod update;

pub use field_set::{FieldSet, PathElement, path_to_string};
pub use update::track_update;

/// A field another manager owns that an apply would change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager's name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The other manager's subresource, if any.
    pub subresource: Option<String>,
    /// The API version the other manager's entry was written with.
    pub api_version: String,
    /// The field, in the API server's notation (`.spec.ports[port=80,protocol="TCP"].targetPort`).
    pub field: String,
}

impl Conflict {
    /// The manager as the API server names it in conflict messages.
    fn describe_manager(&self) -> String {
        let mut text = format!("{:?}", self.manager);
        if let Some(subresource) = &self.subresource {
            text.push_str(&format!(" with subresource {subresource:?}"));
        }
        if self.operation == "Update" {
            text.push_str(&format!(" using {}", self.api_version));
        }
        text
    }
}

fn conflicts_message(conflicts: &[Conflict]) -> String {
    if let [conflict] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            conflict.describe_manager(),
            conflict.field
        );
    }
    let mut managers: Vec<String> = conflicts.iter().map(Conflict::describe_manager).collect();
    managers.sort();
    managers.dedup();
    let mut lines = Vec::new();
    for manager in managers {
        lines.push(format!("conflicts with {manager}:"));
        for conflict in conflicts.iter().filter(|c| c.describe_manager() == manager) {
            lines.push(format!("- {}", conflict.field));
        }
    }
    format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
}

/// Why an apply was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ApplyError {
    /// Fields owned by other managers would change; the server answers 409 Conflict.
    #[error("{}", conflicts_message(.0))]
    Conflicts(Vec<Conflict>),
    /// The configuration (or a field set) is malformed; the server answers 400 Bad Request.
    #[error("{0}")]
    Invalid(String),
}

impl ApplyError {
    /// The HTTP status a kube-apiserver answers with for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            ApplyError::Conflicts(_) => 409,
            ApplyError::Invalid(_) => 400,
        }
    }
}

/// Who is writing, and when.
#[derive(Clone, Copy, Debug)]
pub struct Operation<'a> {
    /// The field manager (`?fieldManager=`, or the client's default).
    pub manager: &'a str,
    /// `Some("status")` for writes to the status subresource.
    pub subresource: Option<&'a str>,
    /// The API version of the request, recorded in the managedFields entry.
    pub api_version: &'a str,
    /// The current time, RFC 3339 with second precision (`2026-11-02T10:00:00Z`).
    pub now: &'a str,
}

/// Server-side apply to the main resource; see [`apply_as`].
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    info: &dyn TypeInfo,
    api_version: &str,
    now: &str,
) -> Result<Value, ApplyError> {
    apply_as(live, config, &Operation { manager, subresource: None, api_version, now }, force, info)
}

/// Server-side apply: merges `config` into `live` (or creates the object when `live` is `None`) and
/// returns the new object with its `metadata.managedFields` updated.
///
/// Fields in `config` that another manager owns with a different value are conflicts unless `force`,
/// which moves them to this manager; fields whose value does not change become shared. Fields this
/// manager applied last time and omits now are removed, unless another manager owns them too.
pub fn apply_as(
    live: Option<&Value>,
    config: &Value,
    op: &Operation<'_>,
    force: bool,
    info: &dyn TypeInfo,
) -> Result<Value, ApplyError> {
    if !config.is_object() {
        return Err(ApplyError::Invalid("the applied configuration must be a JSON object".into()));
    }
    if config.get("metadata").is_some_and(|m| !m.is_object()) {
        return Err(ApplyError::Invalid("metadata must be an object".into()));
    }
    if managed_fields(config).is_some_and(|m| m.as_array().is_none_or(|m| !m.is_empty())) {
        return Err(ApplyError::Invalid("metadata.managedFields must be nil".into()));
    }
    let config_set = FieldSet::from_config(config, info)
        .map_err(|e| ApplyError::Invalid(format!("failed to create typed patch object: {e}")))?;

    let live_object = match live {
        Some(object @ Value::Object(_)) => without_managed_fields(object),
        _ => Value::Object(Map::new()),
    };
    let mut managers = live.map(read_managers).unwrap_or_default();
    if live.is_some() && managers.is_empty() {
        // What was there before anyone applied is owned by a placeholder, so applying different values
        // over it is a conflict, as on a real server.
        let fields = FieldSet::from_object(&live_object, info);
        managers.push(Manager {
            manager: "before-first-apply".into(),
            operation: UPDATE.into(),
            subresource: None,
            api_version: op.api_version.into(),
            time: None,
            fields,
        });
    }

    let mut merged = live_object.clone();
    merge(&mut merged, &without_managed_fields(config), &mut Vec::new(), info);

    let own = managers.iter().position(|m| m.is(op.manager, APPLY, op.subresource));
    let last_set = own.map(|i| managers[i].fields.clone()).unwrap_or_default();
    let others = managers
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != own)
        .fold(FieldSet::default(), |all, (_, m)| all.union(&m.fields));
    let owned = others.union(&config_set);
    prune(&mut merged, &last_set.difference(&owned), &owned, info);

    let comparison = Comparison::new(&live_object, &merged, info);
    let changed = comparison.changed();
    let mut conflicts = Vec::new();
    for (i, manager) in managers.iter_mut().enumerate() {
        if Some(i) == own {
            continue;
        }
        let taken = manager.fields.intersection(&changed);
        for path in taken.paths() {
            conflicts.push(Conflict {
                manager: manager.manager.clone(),
                operation: manager.operation.clone(),
                subresource: manager.subresource.clone(),
                api_version: manager.api_version.clone(),
                field: path_to_string(path),
            });
        }
        manager.fields = manager.fields.difference(&taken).difference(&comparison.removed);
    }
    if !conflicts.is_empty() && !force {
        return Err(ApplyError::Conflicts(conflicts));
    }

    let unchanged = without_managed_fields(&merged) == live_object && last_set == config_set;
    let time = match own {
        Some(i) if unchanged => managers[i].time.clone(),
        _ => Some(op.now.to_string()),
    };
    let entry = Manager {
        manager: op.manager.into(),
        operation: APPLY.into(),
        subresource: op.subresource.map(str::to_string),
        api_version: op.api_version.into(),
        time,
        fields: config_set,
    };
    match own {
        Some(i) => managers[i] = entry,
        None => managers.push(entry),
    }
    write_managers(&mut merged, managers);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::managers::{APPLY, Manager, read_managers};
    use crate::apply::merge::resolve;
    use crate::types::{Unstructured, builtin, from_openapi_schema};
    use pretty_assertions::assert_eq;
    use serde_json::json;

    pub(super) const T0: &str = "2026-11-02T10:00:00Z";

    pub(super) const T1: &str = "2026-11-02T10:05:00Z";

    pub(super) fn svc_info() -> Box<dyn TypeInfo> {
        builtin("", "Service")
    }

    pub(super) fn svc_config(ports: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "ports": ports}
        })
    }

    pub(super) fn entry<'v>(object: &'v Value, manager: &str, operation: &str) -> Option<&'v Value> {
        object["metadata"]["managedFields"]
            .as_array()?
            .iter()
            .find(|e| e["manager"] == json!(manager) && e["operation"] == json!(operation))
    }

    pub(super) fn fields<'v>(object: &'v Value, manager: &str, operation: &str) -> &'v Value {
        &entry(object, manager, operation).unwrap_or_else(|| panic!("no entry for {manager}/{operation}"))["fieldsV1"]
    }

    pub(super) fn conflicts(err: ApplyError) -> Vec<(String, String)> {
        match err {
            ApplyError::Conflicts(c) => c.into_iter().map(|c| (c.manager, c.field)).collect(),
            other => panic!("expected conflicts, got {other:?}"),
        }
    }

    #[test]
    fn apply_creates_an_object_with_an_apply_entry() {
        let config = svc_config(json!([{"port": 80, "protocol": "TCP"}]));
        let created = apply(None, &config, "ferrolb", false, &svc_info(), "v1", T0).unwrap();
        assert_eq!(created["spec"], config["spec"]);
        assert_eq!(
            created["metadata"]["managedFields"],
            json!([{
                "manager": "ferrolb", "operation": "Apply", "apiVersion": "v1", "time": T0, "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:type": {}, "f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {
                    ".": {}, "f:port": {}, "f:protocol": {}}}}}
            }])
        );
    }

    #[test]
    fn apply_conflicts_unless_forced() {
        let info = svc_info();
        let first =
            apply(None, &svc_config(json!([{"port": 80}])), "kubectl", false, &info, "v1", T0).unwrap();
        let mut other = svc_config(json!([{"port": 80}]));
        other["spec"]["type"] = json!("ClusterIP");
        let err = apply(Some(&first), &other, "ferrolb", false, &info, "v1", T1).unwrap_err();
        assert_eq!(err.http_status(), 409);
        assert_eq!(err.to_string(), "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.type");
        assert_eq!(conflicts(err), [("kubectl".to_string(), ".spec.type".to_string())]);

        let forced = apply(Some(&first), &other, "ferrolb", true, &info, "v1", T1).unwrap();
        assert_eq!(forced["spec"]["type"], json!("ClusterIP"));
        assert!(fields(&forced, "kubectl", "Apply")["f:spec"].get("f:type").is_none());
        assert_eq!(fields(&forced, "ferrolb", "Apply")["f:spec"]["f:type"], json!({}));
        // The port both applied with the same value stays shared.
        let port = "k:{\"port\":80,\"protocol\":\"TCP\"}";
        assert!(fields(&forced, "kubectl", "Apply")["f:spec"]["f:ports"].get(port).is_some());
        assert!(fields(&forced, "ferrolb", "Apply")["f:spec"]["f:ports"].get(port).is_some());
    }

    #[test]
    fn equal_values_are_shared_and_survive_one_owner_leaving() {
        let info = Unstructured;
        let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"team": "net"}},
            "data": {"a": "1"}});
        let first = apply(None, &config, "alice", false, &info, "v1", T0).unwrap();
        let shared = apply(
            Some(&first),
            &json!({"metadata": {"labels": {"team": "net"}}}),
            "bob",
            false,
            &info,
            "v1",
            T1,
        )
        .unwrap();
        assert_eq!(fields(&shared, "bob", "Apply"), &json!({"f:metadata": {"f:labels": {"f:team": {}}}}));
        assert_eq!(fields(&shared, "alice", "Apply")["f:metadata"], json!({"f:labels": {"f:team": {}}}));

        // Alice stops applying the label: Bob still owns it, so it stays.
        let without = json!({"metadata": {"name": "c"}, "data": {"a": "1"}});
        let after = apply(Some(&shared), &without, "alice", false, &info, "v1", T1).unwrap();
        assert_eq!(after["metadata"]["labels"], json!({"team": "net"}));
        assert_eq!(fields(&after, "alice", "Apply"), &json!({"f:data": {"f:a": {}}}));
    }

    #[test]
    fn omitted_fields_are_removed() {
        let info = Unstructured;
        let config =
            json!({"metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": {"x": "1", "y": "2"}});
        let first = apply(None, &config, "alice", false, &info, "v1", T0).unwrap();
        let second = apply(
            Some(&first),
            &json!({"metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"x": "1"}}),
            "alice",
            false,
            &info,
            "v1",
            T1,
        )
        .unwrap();
        assert_eq!(second["metadata"]["labels"], json!({"a": "1"}));
        assert_eq!(second["data"], json!({"x": "1"}));
        // Dropping everything under a map removes the map too.
        let third = apply(
            Some(&second),
            &json!({"metadata": {"name": "c"}, "data": {"x": "1"}}),
            "alice",
            false,
            &info,
            "v1",
            T1,
        )
        .unwrap();
        assert!(third["metadata"].get("labels").is_none());
        assert_eq!(third["metadata"]["name"], json!("c"));
    }

    #[test]
    fn fields_owned_by_an_update_are_not_pruned_but_conflict() {
        let info = Unstructured;
        let first = apply(
            None,
            &json!({"metadata": {"name": "c"}, "data": {"x": "1"}}),
            "alice",
            false,
            &info,
            "v1",
            T0,
        )
        .unwrap();
        let mut edited = first.clone();
        edited["data"]["x"] = json!("2");
        track_update(Some(&first), &mut edited, "kubectl-edit", None, &info, "v1", T1);
        assert!(entry(&edited, "alice", "Apply").is_none(), "alice's only field moved away");
        assert_eq!(fields(&edited, "kubectl-edit", "Update"), &json!({"f:data": {"f:x": {}}}));

        let err =
            apply(Some(&edited), &json!({"data": {"x": "3"}}), "alice", false, &info, "v1", T1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using v1: .data.x"
        );
        // Applying the value the editor set is shared ownership, not a conflict.
        let shared =
            apply(Some(&edited), &json!({"data": {"x": "2"}}), "alice", false, &info, "v1", T1).unwrap();
        assert_eq!(fields(&shared, "alice", "Apply"), fields(&shared, "kubectl-edit", "Update"));
    }

    #[test]
    fn atomic_lists_conflict_as_a_whole() {
        let info = svc_info();
        let a =
            apply(None, &json!({"spec": {"externalIPs": ["192.0.2.1"]}}), "alice", false, &info, "v1", T0)
                .unwrap();
        let err = apply(
            Some(&a),
            &json!({"spec": {"externalIPs": ["192.0.2.1", "192.0.2.2"]}}),
            "bob",
            false,
            &info,
            "v1",
            T1,
        )
        .unwrap_err();
        assert_eq!(conflicts(err), [("alice".to_string(), ".spec.externalIPs".to_string())]);
        let forced =
            apply(Some(&a), &json!({"spec": {"externalIPs": ["192.0.2.9"]}}), "bob", true, &info, "v1", T1)
                .unwrap();
        assert_eq!(forced["spec"]["externalIPs"], json!(["192.0.2.9"]));
        assert!(entry(&forced, "alice", "Apply").is_none());
    }

    #[test]
    fn several_conflicts_are_grouped_by_manager() {
        let info = Unstructured;
        let a = apply(None, &json!({"data": {"x": "1", "y": "1"}}), "alice", false, &info, "v1", T0).unwrap();
        let ab = apply(Some(&a), &json!({"data": {"z": "1"}}), "bob", false, &info, "v1", T0).unwrap();
        let err = apply(
            Some(&ab),
            &json!({"data": {"x": "2", "y": "2", "z": "2"}}),
            "carol",
            false,
            &info,
            "v1",
            T1,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Apply failed with 3 conflicts: conflicts with \"alice\":\n- .data.x\n- .data.y\nconflicts with \"bob\":\n- .data.z"
        );
    }

    #[test]
    fn noop_apply_keeps_the_time() {
        let info = Unstructured;
        let config = json!({"data": {"x": "1"}});
        let a = apply(None, &config, "alice", false, &info, "v1", T0).unwrap();
        let again = apply(Some(&a), &config, "alice", false, &info, "v1", T1).unwrap();
        assert_eq!(again, a);
        let changed = apply(Some(&a), &json!({"data": {"x": "2"}}), "alice", false, &info, "v1", T1).unwrap();
        assert_eq!(entry(&changed, "alice", "Apply").unwrap()["time"], json!(T1));
    }

    #[test]
    fn apply_over_untracked_fields_conflicts_with_before_first_apply() {
        let info = Unstructured;
        let live = json!({"metadata": {"name": "c"}, "data": {"x": "1"}});
        let err =
            apply(Some(&live), &json!({"data": {"x": "2"}}), "alice", false, &info, "v1", T0).unwrap_err();
        assert_eq!(conflicts(err), [("before-first-apply".to_string(), ".data.x".to_string())]);
        let ok = apply(Some(&live), &json!({"data": {"y": "2"}}), "alice", false, &info, "v1", T0).unwrap();
        assert_eq!(fields(&ok, "before-first-apply", "Update"), &json!({"f:data": {"f:x": {}}}));
    }

    #[test]
    fn invalid_configurations_are_rejected() {
        let info = svc_info();
        let cases = [
            json!([1]),
            json!({"metadata": {"managedFields": [{"manager": "x"}]}}),
            json!({"metadata": null}),
            json!({"spec": {"ports": [{"port": 80}, {"port": 80, "protocol": "TCP"}]}}),
            json!({"spec": {"ports": [{"name": "no-port"}]}}),
            json!({"spec": {"ports": [{"port": {"nested": 1}}]}}),
            json!({"metadata": {"finalizers": ["a", "a"]}}),
            json!({"metadata": {"finalizers": [{"a": 1}]}}),
        ];
        for config in cases {
            let err = apply(None, &config, "alice", false, &info, "v1", T0).unwrap_err();
            assert!(matches!(err, ApplyError::Invalid(_)), "{config}: {err:?}");
            assert_eq!(err.http_status(), 400);
        }
        let msg = apply(None, &cases_dup(), "alice", false, &info, "v1", T0).unwrap_err().to_string();
        assert!(msg.contains(".spec.ports"), "{msg}");
        // An empty managedFields list is allowed, as nil.
        apply(None, &json!({"metadata": {"managedFields": []}}), "alice", false, &info, "v1", T0).unwrap();
    }

    fn cases_dup() -> Value {
        json!({"spec": {"ports": [{"port": 80}, {"port": 80}]}})
    }

    #[test]
    fn status_subresource_apply_gets_its_own_entry() {
        let info = svc_info();
        let live = apply(None, &svc_config(json!([{"port": 80}])), "alice", false, &info, "v1", T0).unwrap();
        let op = Operation { manager: "ferrolb", subresource: Some("status"), api_version: "v1", now: T1 };
        let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.128"}]}}});
        let with_status = apply_as(Some(&live), &status, &op, false, &info).unwrap();
        let e = entry(&with_status, "ferrolb", "Apply").unwrap();
        assert_eq!(e["subresource"], json!("status"));
        assert_eq!(e["fieldsV1"], json!({"f:status": {"f:loadBalancer": {"f:ingress": {}}}}));
        // The main-resource apply of the same manager does not prune what it applied to status.
        let main = apply(
            Some(&with_status),
            &json!({"metadata": {"labels": {"x": "y"}}}),
            "ferrolb",
            false,
            &info,
            "v1",
            T1,
        )
        .unwrap();
        assert_eq!(main["status"], status["status"]);
    }

    #[test]
    fn custom_resource_lists_follow_the_schema() {
        let info = from_openapi_schema(
            &json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "peers": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["address"]}}}}}),
        );
        let a = apply(
            None,
            &json!({"spec": {"peers": [{"address": "192.0.2.1", "asn": 1}]}}),
            "alice",
            false,
            &info,
            "v1",
            T0,
        )
        .unwrap();
        let ab = apply(
            Some(&a),
            &json!({"spec": {"peers": [{"address": "192.0.2.2", "asn": 2}]}}),
            "bob",
            false,
            &info,
            "v1",
            T0,
        )
        .unwrap();
        assert_eq!(ab["spec"]["peers"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn live_objects_with_invalid_keyed_lists_are_owned_atomically() {
        let info = svc_info();
        let live = json!({"spec": {"ports": [{"port": 80}, {"port": 80}]}});
        let set = FieldSet::from_object(&live, &info);
        assert_eq!(set.to_fields_v1(), json!({"f:spec": {"f:ports": {}}}));
        let mut new = live.clone();
        new["spec"]["ports"] = json!([{"port": 81}]);
        track_update(Some(&live), &mut new, "x", None, &info, "v1", T0);
        assert!(entry(&new, "x", "Update").is_some());
    }

    mod properties {
        use super::*;
        use crate::types::arbitrary;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn apply_never_panics_and_is_idempotent(live in arbitrary::object(), config in arbitrary::object(), force in any::<bool>()) {
                let info = svc_info();
                let live = if live.as_object().is_some_and(|m| m.is_empty()) { None } else { Some(&live) };
                if let Ok(applied) = apply(live, &config, "alice", force, &info, "v1", T0) {
                    prop_assert!(applied.is_object());
                    // A configuration owning nothing leaves no entry, and the next apply then meets
                    // "before-first-apply", as on a real server.
                    if entry(&applied, "alice", "Apply").is_some() {
                        let again = apply(Some(&applied), &config, "alice", force, &info, "v1", T1);
                        prop_assert_eq!(again, Ok(applied));
                    }
                }
            }

            #[test]
            fn applies_by_several_managers_set_what_they_apply(
                steps in prop::collection::vec((prop::sample::select(&["alice", "bob", "carol"][..]), arbitrary::service(), any::<bool>()), 1..6)
            ) {
                let info = svc_info();
                let mut live: Option<Value> = None;
                for (manager, config, force) in steps {
                    match apply(live.as_ref(), &config, manager, force, &info, "v1", T0) {
                        Ok(applied) => {
                            for path in FieldSet::from_config(&config, &info).unwrap().paths() {
                                // An owned empty map says nothing about what others put in it.
                                let wanted = resolve(&config, path, &info);
                                if matches!(path.last(), Some(PathElement::Field(_))) && wanted != Some(&json!({})) {
                                    prop_assert_eq!(resolve(&applied, path, &info), wanted, "{}", path_to_string(path));
                                }
                            }
                            let managers = read_managers(&applied);
                            prop_assert!(managers.iter().all(|m| !m.fields.is_empty()));
                            prop_assert!(managers.iter().any(|m| m.is(manager, APPLY, None)));
                            live = Some(applied);
                        }
                        Err(ApplyError::Conflicts(conflicts)) => prop_assert!(!force && !conflicts.is_empty()),
                        Err(e) => prop_assert!(false, "{e}"),
                    }
                }
            }

            #[test]
            fn track_update_never_panics(old in arbitrary::object(), mut new in arbitrary::object(), status in any::<bool>()) {
                let subresource = status.then_some("status");
                track_update(Some(&old), &mut new, "bob", subresource, &svc_info(), "v1", T0);
                let managed = new.get("metadata").and_then(|m| m.get("managedFields")).cloned();
                // Whatever was written can be read back.
                if let Some(Value::Array(entries)) = managed {
                    for entry in entries {
                        prop_assert!(Manager::parse(&entry).is_ok(), "{}", entry);
                    }
                }
            }

            #[test]
            fn field_sets_round_trip_through_fields_v1(object in arbitrary::object()) {
                let set = FieldSet::from_object(&object, &svc_info());
                prop_assert_eq!(FieldSet::from_fields_v1(&set.to_fields_v1()), Ok(set));
            }

            #[test]
            fn reading_arbitrary_fields_v1_never_panics(fields in arbitrary::value()) {
                if let Ok(set) = FieldSet::from_fields_v1(&fields) {
                    prop_assert_eq!(FieldSet::from_fields_v1(&set.to_fields_v1()), Ok(set));
                }
            }
        }
    }
}
