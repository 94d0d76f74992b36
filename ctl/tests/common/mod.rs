//! Helpers shared by the kube-sim based tests of `ferrolbctl`.
#![allow(dead_code)]

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::discovery::{Discovery, Scope};
use serde_json::{Value, json};

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A minimal CRD that keeps whatever it is given, the storage version last.
pub fn crd(
    group: &str,
    kind: &str,
    plural: &str,
    scope: &str,
    versions: &[&str],
) -> CustomResourceDefinition {
    let versions: Vec<Value> = versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            json!({
                "name": v, "served": true, "storage": i + 1 == versions.len(),
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "subresources": {"status": {}},
            })
        })
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
            "versions": versions,
        },
    }))
    .unwrap()
}

pub async fn create_crds(client: &Client, crds: Vec<CustomResourceDefinition>) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for c in crds {
        api.create(&PostParams::default(), &c).await.unwrap();
    }
}

/// Creates each object through the API, then writes its `status` through the status
/// subresource (a create ignores status, as on a real API server).
pub async fn seed(client: &Client, docs: &[Value]) {
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    for doc in docs {
        let (group, version) = doc["apiVersion"].as_str().unwrap().split_once('/').unwrap_or(("", "v1"));
        let gvk = GroupVersionKind::gvk(group, version, doc["kind"].as_str().unwrap());
        let (ar, caps) = discovery.resolve_gvk(&gvk).unwrap_or_else(|| panic!("{gvk:?} not served"));
        let api: Api<DynamicObject> = match (caps.scope, doc.pointer("/metadata/namespace")) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns.as_str().unwrap(), &ar),
            _ => Api::all_with(client.clone(), &ar),
        };
        let obj: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
        api.create(&PostParams::default(), &obj).await.unwrap();
        if let Some(status) = doc.get("status") {
            let name = doc["metadata"]["name"].as_str().unwrap();
            api.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": status})))
                .await
                .unwrap();
        }
    }
}
