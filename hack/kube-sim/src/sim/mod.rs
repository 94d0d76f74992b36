//! The API semantics on top of the store: create/get/list/update/patch/apply/delete with
//! resourceVersions, optimistic concurrency, status subresources, generation, finalizers,
//! managedFields, CRD registration and schema validation. Transport-free: `server` maps HTTP
//! requests onto these calls.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::labels::LabelSelector;
use serde_json::{Value, json};

use crate::apply;
use crate::builtin::ServiceAllocator;
use crate::error::ApiError;
use crate::fields::FieldSelector;
use crate::patch;
use crate::resources::{Registry, ResourceType};
use crate::store::{ObjKey, Store};

mod write;

/// How a write treats unknown fields (`?fieldValidation=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Ignore,
    #[default]
    Warn,
    Strict,
}

/// Options of one write request.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `fieldManager`, else derived from the User-Agent.
    pub manager: String,
    pub dry_run: bool,
    pub field_validation: FieldValidation,
    /// Server-side apply: take fields owned by others.
    pub force: bool,
}

/// The outcome of a write: the stored object and warnings for the `Warning` header.
#[derive(Debug)]
pub struct Written {
    pub object: Arc<Value>,
    pub created: bool,
    pub warnings: Vec<String>,
}

/// `?limit=`/`?continue=` paging state.
#[derive(Debug, Default)]
pub struct ListPage {
    pub items: Vec<Arc<Value>>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<u64>,
}

/// Patch formats (by Content-Type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

pub struct Sim {
    state: Mutex<State>,
}

pub struct State {
    pub registry: Registry,
    pub store: Store,
    services: ServiceAllocator,
}

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn key_of(rt: &ResourceType, ns: Option<&str>, name: &str) -> ObjKey {
    (if rt.namespaced { ns.unwrap_or_default().to_string() } else { String::new() }, name.to_string())
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

impl Sim {
    pub fn new(service_cidrs: Vec<ipnet::IpNet>, history_limit: usize) -> Self {
        let mut state = State {
            registry: Registry::builtin(),
            store: Store::new(history_limit),
            services: ServiceAllocator::new(service_cidrs),
        };
        let opts = WriteOptions { manager: "kube-apiserver".into(), ..Default::default() };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            let rt = state.registry.get("", "v1", "namespaces").expect("namespaces are built in");
            state.create(&rt, None, obj, &opts).expect("a fresh store accepts the standard namespaces");
        }
        Self { state: Mutex::new(state) }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a bug in kube-sim; keep serving rather than cascade.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.lock().registry.get(group, version, plural)
    }

    pub fn registry(&self) -> Registry {
        self.lock().registry.clone()
    }

    pub fn resource_version(&self) -> u64 {
        self.lock().store.resource_version()
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.lock().store.subscribe()
    }

    pub fn compact(&self) {
        self.lock().store.compact();
    }
}

impl State {
    pub fn get(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> Result<Arc<Value>, ApiError> {
        self.store.get(&rt.key(), &key_of(rt, ns, name)).ok_or_else(|| ApiError::not_found(rt, name))
    }

    pub fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> Result<ListPage, ApiError> {
        let (after, list_rv) = match continue_token {
            Some(t) => {
                let (rv, key) = decode_continue(t)?;
                if self.store.is_expired(rv) {
                    return Err(ApiError::gone(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                    ));
                }
                (Some(key), rv)
            }
            None => (None, self.store.resource_version()),
        };
        let mut page = ListPage { resource_version: list_rv, ..Default::default() };
        let matching = self
            .store
            .range(&rt.key(), ns, after.as_ref())
            .filter(|(_, o)| labels.matches(&labels_of(o)) && fields.matches(o));
        let limit = limit.filter(|l| *l > 0);
        let mut last_key = None;
        let mut rest = 0u64;
        for (k, o) in matching {
            if limit.is_some_and(|l| page.items.len() >= l) {
                rest += 1;
                continue;
            }
            page.items.push(o.clone());
            last_key = Some(k.clone());
        }
        if rest > 0 {
            page.continue_token = last_key.map(|k| encode_continue(list_rv, &k));
            page.remaining = Some(rest);
        }
        Ok(page)
    }

    pub fn create(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Written, ApiError> {
        self.create_inner(rt, ns, obj, opts, false)
    }

    /// `applied`: the object comes from a server-side apply that already recorded ownership.
    fn create_inner(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        mut obj: Value,
        opts: &WriteOptions,
        applied: bool,
    ) -> Result<Written, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("the body of the request was not a JSON object"));
        }
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        let meta = &mut obj["metadata"];
        if meta_str_v(meta, "name").is_none_or(str::is_empty) {
            match meta_str_v(meta, "generateName").filter(|g| !g.is_empty()) {
                Some(prefix) => meta["name"] = json!(format!("{prefix}{}", random_suffix())),
                None => {
                    return Err(ApiError::invalid(
                        rt,
                        "",
                        &["metadata.name: Required value: name or generateName is required".into()],
                        json!([{"reason": "FieldValueRequired", "message": "Required value: name or generateName is required", "field": "metadata.name"}]),
                    ));
                }
            }
        }
        if meta.get("resourceVersion").and_then(Value::as_str).is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::bad_request("resourceVersion should not be set on objects to be created"));
        }
        let name = meta_str_v(meta, "name").unwrap_or_default().to_string();
        self.check_namespace(rt, ns, &obj)?;
        if self.store.get(&rt.key(), &key_of(rt, ns, &name)).is_some() {
            return Err(ApiError::already_exists(rt, &name));
        }
        let meta = &mut obj["metadata"];
        if rt.namespaced {
            meta["namespace"] = json!(ns.unwrap_or_default());
        } else if let Some(m) = meta.as_object_mut() {
            m.remove("namespace");
        }
        meta["uid"] = json!(uuid::Uuid::new_v4().to_string());
        meta["creationTimestamp"] = json!(now());
        if let Some(m) = meta.as_object_mut() {
            for k in ["deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "generation"] {
                m.remove(k);
            }
            if !applied {
                m.remove("managedFields");
            }
        }
        if rt.is_custom {
            obj["metadata"]["generation"] = json!(1);
        }
        if rt.status_subresource && rt.is_custom {
            // Status is written through /status only; what a create carries is dropped.
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        self.finish_write(rt, ns, &name, None, obj, None, opts, applied)
    }

    fn check_namespace(&self, rt: &ResourceType, ns: Option<&str>, obj: &Value) -> Result<(), ApiError> {
        if !rt.namespaced {
            return Ok(());
        }
        let ns = ns.unwrap_or_default();
        if let Some(body_ns) = meta_str(obj, "namespace").filter(|s| !s.is_empty())
            && body_ns != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let nst = self.registry.get("", "v1", "namespaces").expect("built in");
        match self.store.get(&nst.key(), &(String::new(), ns.to_string())) {
            None => Err(ApiError::not_found(&nst, ns)),
            Some(n) if n.pointer("/metadata/deletionTimestamp").is_some() => Err(ApiError::new(
                403,
                "Forbidden",
                format!("unable to create new content in namespace {ns} because it is being terminated"),
            )),
            Some(_) => Ok(()),
        }
    }

    /// PUT: replaces the object (or its status), honouring `metadata.resourceVersion`.
    pub fn update(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        mut obj: Value,
        subresource: Option<&str>,
        opts: &WriteOptions,
    ) -> Result<Written, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("the body of the request was not a JSON object"));
        }
        if meta_str(&obj, "name").is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta_str(&obj, "name").unwrap_or_default()
            )));
        }
        let old = self.get(rt, ns, name)?;
        match meta_str(&obj, "resourceVersion").filter(|s| !s.is_empty()) {
            Some(rv) if rv != meta_str(&old, "resourceVersion").unwrap_or_default() => {
                return Err(ApiError::conflict(rt, name));
            }
            None if !rt.allows_unconditional_update() => {
                let message = "Invalid value: 0: must be specified for an update";
                return Err(ApiError::invalid(
                    rt,
                    name,
                    &[format!("metadata.resourceVersion: {message}")],
                    json!([{"reason": "FieldValueInvalid", "message": message, "field": "metadata.resourceVersion"}]),
                ));
            }
            _ => {}
        }
        obj["metadata"]["name"] = json!(name);
        self.finish_write(rt, ns, name, Some(old), obj, subresource, opts, false)
    }

    /// PATCH in any of the four formats. Apply creates the object when missing.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        kind: PatchType,
        body: &Value,
        subresource: Option<&str>,
        opts: &WriteOptions,
    ) -> Result<Written, ApiError> {
        // Server-side apply creates a missing object; every other patch needs one.
        let old = match self.get(rt, ns, name) {
            Ok(o) => Some(o),
            Err(_) if kind == PatchType::Apply && subresource.is_none() => None,
            Err(e) => return Err(e),
        };
        let invalid_patch = |msg: String| ApiError::new(422, "Invalid", msg);
        let mut new = old.as_deref().cloned().unwrap_or(Value::Null);
        match kind {
            PatchType::Merge => patch::merge_patch(&mut new, body),
            PatchType::Json => patch::json_patch(&mut new, body).map_err(|e| invalid_patch(e.to_string()))?,
            PatchType::Strategic => {
                if !rt.type_info.strategic_merge_supported() {
                    return Err(ApiError::unsupported_media_type(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                    ));
                }
                patch::strategic_merge_patch(&mut new, body, rt.type_info.as_ref())
                    .map_err(|e| invalid_patch(e.to_string()))?
            }
            PatchType::Apply => {
                if opts.manager.is_empty() {
                    return Err(ApiError::bad_request(
                        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                    ));
                }
                if let Some(n) = meta_str(body, "name")
                    && n != name
                {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    )));
                }
                // Each side of a status subresource owns only its own part of the object.
                let mut config = body.clone();
                if let Some(m) = config.as_object_mut() {
                    if subresource == Some("status") {
                        m.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"));
                    } else if rt.status_subresource {
                        m.remove("status");
                    }
                }
                let now = now();
                let api_version = rt.api_version();
                let op = apply::Operation {
                    manager: &opts.manager,
                    subresource,
                    api_version: &api_version,
                    now: &now,
                };
                let applied =
                    apply::apply_as(old.as_deref(), &config, &op, opts.force, rt.type_info.as_ref())
                        .map_err(|e| match e {
                            apply::ApplyError::Conflicts(_) => ApiError::new(409, "Conflict", e.to_string()),
                            other => ApiError::bad_request(other.to_string()),
                        })?;
                if old.is_none() {
                    let mut obj = applied;
                    obj["metadata"]["name"] = json!(name);
                    return self.create_inner(rt, ns, obj, opts, true);
                }
                let mut obj = applied;
                obj["metadata"]["resourceVersion"] =
                    json!(meta_str(old.as_deref().unwrap_or(&Value::Null), "resourceVersion"));
                // Apply already recorded ownership; don't let the generic tracker record it again.
                return self.finish_write(rt, ns, name, old, obj, subresource, opts, true);
            }
        }
        if !new.is_object() {
            return Err(invalid_patch("the patch did not produce an object".into()));
        }
        if meta_str(&new, "name").is_some_and(|n| n != name) {
            return Err(ApiError::bad_request("metadata.name: the name cannot be changed by a patch"));
        }
        // A patch is applied to the current object, so the resourceVersion it carries (if any)
        // is a precondition, as with a PUT.
        let old_rv =
            old.as_deref().and_then(|o| meta_str(o, "resourceVersion")).unwrap_or_default().to_string();
        if let Some(rv) = meta_str(&new, "resourceVersion")
            && rv != old_rv
        {
            return Err(ApiError::conflict(rt, name));
        }
        self.finish_write(rt, ns, name, old, new, subresource, opts, false)
    }

    /// DELETE: with finalizers, marks the object (deletionTimestamp) and keeps it; without, removes it.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        precondition_rv: Option<&str>,
        precondition_uid: Option<&str>,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let old = self.get(rt, ns, name)?;
        if precondition_rv.is_some_and(|rv| Some(rv) != meta_str(&old, "resourceVersion"))
            || precondition_uid.is_some_and(|uid| Some(uid) != meta_str(&old, "uid"))
        {
            return Err(ApiError::conflict(rt, name));
        }
        let finalizers =
            old.pointer("/metadata/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
        // Namespaces are emptied at once (no namespace controller here), then removed.
        let finalizers = finalizers && rt.kind != "Namespace";
        if dry_run {
            return Ok(old);
        }
        if finalizers {
            if old.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(old);
            }
            let mut marked = (*old).clone();
            marked["metadata"]["deletionTimestamp"] = json!(now());
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            marked["metadata"]["resourceVersion"] = json!(self.store.next_rv().to_string());
            return self.store.commit(rt, key_of(rt, ns, name), Some(marked));
        }
        self.remove(rt, ns, name, &old)
    }

    fn remove(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        old: &Value,
    ) -> Result<Arc<Value>, ApiError> {
        match (rt.group.as_str(), rt.kind.as_str()) {
            ("", "Service") => self.services.release(old),
            ("", "Namespace") => {
                let namespaced: Vec<Arc<ResourceType>> =
                    self.registry.all().filter(|t| t.namespaced).cloned().collect();
                for t in namespaced {
                    let keys: Vec<ObjKey> =
                        self.store.range(&t.key(), Some(name), None).map(|(k, _)| k.clone()).collect();
                    for k in keys {
                        if let Some(o) = self.store.get(&t.key(), &k) {
                            self.remove(&t, Some(&k.0), &k.1, &o)?;
                        }
                    }
                }
            }
            ("apiextensions.k8s.io", "CustomResourceDefinition") => {
                if let Some(served) = ResourceType::from_crd(old) {
                    self.store.drop_resource(&served);
                    self.registry.remove(&served.group, &served.plural);
                }
            }
            _ => {}
        }
        self.store.commit(rt, key_of(rt, ns, name), None)
    }
}

fn meta_str_v<'a>(meta: &'a Value, field: &str) -> Option<&'a str> {
    meta.get(field)?.as_str()
}

/// Labels of an object as a map, for selector matching.
pub fn labels_of(obj: &Value) -> std::collections::BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default()
}

fn random_suffix() -> String {
    // The apiserver's alphabet: no vowels (no accidental words), no confusable characters.
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[..5].iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect()
}

fn encode_continue(rv: u64, key: &ObjKey) -> String {
    let raw = json!({"rv": rv, "ns": key.0, "name": key.1}).to_string();
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_continue(token: &str) -> Result<(u64, ObjKey), ApiError> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token:?}"));
    if !token.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes: Option<Vec<u8>> =
        (0..token.len()).step_by(2).map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok()).collect();
    let v: Value = serde_json::from_slice(&bytes.ok_or_else(bad)?).map_err(|_| bad())?;
    let rv = v["rv"].as_u64().ok_or_else(bad)?;
    Ok((rv, (v["ns"].as_str().ok_or_else(bad)?.to_string(), v["name"].as_str().ok_or_else(bad)?.to_string())))
}

impl Sim {
    /// Runs `f` with exclusive access to the state.
    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.lock())
    }
}
