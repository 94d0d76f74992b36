//! Ownership taken by writes that are not applies (create, update, patch).

use serde_json::{Map, Value};

use crate::types::TypeInfo;

use crate::apply::managers::{
    Manager, UPDATE, managed_fields, read_managers, without_managed_fields, write_managers,
};
use crate::apply::merge::Comparison;

/// Records a non-apply write (create, update, patch) by `manager` in `new`'s `metadata.managedFields`:
/// the fields that appeared or changed between `old` and `new` move to this manager's Update entry for
/// `subresource`, and removed fields leave every entry. Pass the same `info` as applies to this type
/// get: it decides which list items are owned one by one, and both must agree for conflicts to show.
///
/// If the write itself changed `metadata.managedFields`, that is taken as the new ownership (an empty
/// list, or a list with one empty entry, clears it), as on a real server.
pub fn track_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
    info: &dyn TypeInfo,
    api_version: &str,
    now: &str,
) {
    let old_managed = old.and_then(managed_fields);
    let new_managed = managed_fields(new).cloned();
    let mut managers = match &new_managed {
        Some(sent) if Some(sent) != old_managed => {
            let cleared =
                sent.as_array().is_some_and(|l| l.iter().all(|e| e.as_object().is_some_and(Map::is_empty)));
            if cleared {
                write_managers(new, Vec::new());
                return;
            }
            read_managers(new)
        }
        _ => old.map(read_managers).unwrap_or_default(),
    };

    let before = old.map(without_managed_fields).unwrap_or_else(|| Value::Object(Map::new()));
    let after = without_managed_fields(new);
    let comparison = Comparison::new(&before, &after, info);
    let changed = comparison.changed();
    for entry in managers.iter_mut() {
        entry.fields = entry.fields.difference(&comparison.removed).difference(&changed);
    }
    if !changed.is_empty() {
        match managers.iter_mut().find(|m| m.is(manager, UPDATE, subresource)) {
            Some(entry) => {
                entry.fields = entry.fields.union(&changed);
                entry.api_version = api_version.into();
                entry.time = Some(now.into());
            }
            None => managers.push(Manager {
                manager: manager.into(),
                operation: UPDATE.into(),
                subresource: subresource.map(str::to_string),
                api_version: api_version.into(),
                time: Some(now.into()),
                fields: changed,
            }),
        }
    }
    write_managers(new, managers);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::tests::{T0, T1, entry, fields};
    use crate::types::{Unstructured, builtin};
    use pretty_assertions::assert_eq;
    use serde_json::json;

    #[test]
    fn track_update_on_create_and_status_writes() {
        let info = builtin("", "Node");
        let mut node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "uid": "u1",
            "labels": {"zone": "a"}}, "spec": {"podCIDRs": ["10.0.0.0/24"]}});
        track_update(None, &mut node, "kubelet", None, &info, "v1", T0);
        assert_eq!(
            node["metadata"]["managedFields"],
            json!([{"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": T0, "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {"f:zone": {}}}, "f:spec": {"f:podCIDRs": {"v:\"10.0.0.0/24\"": {}}}}}])
        );

        let mut with_status = node.clone();
        with_status["status"] = json!({"conditions": [{"type": "Ready", "status": "True"}]});
        track_update(Some(&node), &mut with_status, "kubelet", Some("status"), &info, "v1", T1);
        let status_entry = with_status["metadata"]["managedFields"][1].clone();
        assert_eq!(status_entry["subresource"], json!("status"));
        assert_eq!(
            status_entry["fieldsV1"],
            json!({"f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:type": {}, "f:status": {}}}}})
        );
        assert_eq!(
            with_status["metadata"]["managedFields"][0]["time"],
            json!(T0),
            "untouched entries keep their time"
        );

        // Another writer relabels: the label moves to it, the kubelet keeps the rest.
        let mut relabelled = with_status.clone();
        relabelled["metadata"]["labels"]["zone"] = json!("b");
        track_update(Some(&with_status), &mut relabelled, "admin", None, &info, "v1", T1);
        assert_eq!(
            fields(&relabelled, "admin", "Update"),
            &json!({"f:metadata": {"f:labels": {"f:zone": {}}}})
        );
        let kubelet = relabelled["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == json!("kubelet") && e.get("subresource").is_none())
            .unwrap();
        assert_eq!(kubelet["fieldsV1"], json!({"f:spec": {"f:podCIDRs": {"v:\"10.0.0.0/24\"": {}}}}));

        // Removing the only field an entry owned drops the entry.
        let mut unlabelled = relabelled.clone();
        unlabelled["metadata"].as_object_mut().unwrap().remove("labels");
        track_update(Some(&relabelled), &mut unlabelled, "kubelet", None, &info, "v1", T1);
        assert!(entry(&unlabelled, "admin", "Update").is_none());
    }

    #[test]
    fn track_update_without_changes_adds_nothing() {
        let info = Unstructured;
        let mut obj = json!({"metadata": {"name": "c"}, "data": {"x": "1"}});
        track_update(None, &mut obj, "alice", None, &info, "v1", T0);
        let mut same = obj.clone();
        same["metadata"]["resourceVersion"] = json!("7");
        track_update(Some(&obj), &mut same, "bob", None, &info, "v1", T1);
        assert_eq!(same["metadata"]["managedFields"], obj["metadata"]["managedFields"]);
    }

    #[test]
    fn track_update_honours_managed_fields_sent_by_the_client() {
        let info = Unstructured;
        let mut obj = json!({"metadata": {"name": "c"}, "data": {"x": "1"}});
        track_update(None, &mut obj, "alice", None, &info, "v1", T0);
        for cleared in [json!([]), json!([{}])] {
            let mut stripped = obj.clone();
            stripped["metadata"]["managedFields"] = cleared;
            track_update(Some(&obj), &mut stripped, "bob", None, &info, "v1", T1);
            assert!(stripped["metadata"].get("managedFields").is_none());
        }
        let mut reassigned = obj.clone();
        reassigned["metadata"]["managedFields"][0]["manager"] = json!("carol");
        track_update(Some(&obj), &mut reassigned, "bob", None, &info, "v1", T1);
        assert!(entry(&reassigned, "carol", "Update").is_some());
        assert!(entry(&reassigned, "alice", "Update").is_none());
        // Managed fields that cannot be read are dropped rather than failing the write.
        let mut garbage = obj.clone();
        garbage["metadata"]["managedFields"] =
            json!([{"manager": "x", "operation": "Update", "fieldsV1": {"zz": 1}}]);
        garbage["data"]["y"] = json!("2");
        track_update(Some(&obj), &mut garbage, "bob", None, &info, "v1", T1);
        assert_eq!(fields(&garbage, "bob", "Update"), &json!({"f:data": {"f:y": {}}}));
        assert_eq!(garbage["metadata"]["managedFields"].as_array().unwrap().len(), 1);
    }
}
