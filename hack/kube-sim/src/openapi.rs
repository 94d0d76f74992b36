//! `/openapi/v3/...` documents: enough for kubectl to see that the server validates fields
//! (`fieldValidation` on PATCH) and which patch types each kind takes, plus the CRD schemas.

use serde_json::{Value, json};

use crate::resources::Registry;

/// The OpenAPI v3 document of one group/version.
pub fn group_version(reg: &Registry, group: &str, version: &str) -> Value {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    let prefix =
        if group.is_empty() { format!("/api/{version}") } else { format!("/apis/{group}/{version}") };
    for t in reg.all().filter(|t| t.group == group && t.version == version) {
        let gvk = json!([{"group": t.group, "version": t.version, "kind": t.kind}]);
        // kubectl picks strategic merge only when a PATCH advertises it *and* publishes a schema
        // it can read patch metadata from; kube-sim publishes no built-in schemas, so kubectl
        // falls back to its compiled-in types (built-ins) or JSON merge patch (custom resources),
        // exactly as it does against a real apiserver for custom resources.
        let patch = json!({
            "x-kubernetes-group-version-kind": gvk[0],
            "x-kubernetes-action": "patch",
            "parameters": [
                {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                {"name": "force", "in": "query", "schema": {"type": "boolean"}}
            ],
            "requestBody": {"content": {
                "application/json-patch+json": {"schema": {"type": "object"}},
                "application/merge-patch+json": {"schema": {"type": "object"}},
                "application/apply-patch+yaml": {"schema": {"type": "object"}}
            }},
            "responses": {"200": {"description": "OK"}}
        });
        let item = if t.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
        } else {
            format!("{prefix}/{}/{{name}}", t.plural)
        };
        paths.insert(item, json!({"patch": patch}));
        if let Some(schema) = &t.schema {
            let mut s = schema.clone();
            s["x-kubernetes-group-version-kind"] = gvk;
            let reversed: Vec<&str> = t.group.split('.').rev().collect();
            schemas.insert(format!("{}.{}.{}", reversed.join("."), t.version, t.kind), s);
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0-kube-sim"},
        "paths": paths,
        "components": {"schemas": schemas}
    })
}
