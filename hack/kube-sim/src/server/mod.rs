//! HTTP(S) front end: authentication, fault injection, counters, URL routing, discovery,
//! OpenAPI, content negotiation (JSON, Table, PartialObjectMetadata; protobuf request bodies) and
//! watch streams.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use crate::admin::{CounterTable, Faults, PauseMode};
use crate::error::ApiError;
use crate::fields::FieldSelector;
use crate::labels::LabelSelector;
use crate::resources::ResourceType;
use crate::sim::{FieldValidation, PatchType, Sim, WriteOptions};
use crate::table::{self, IncludeObject};

mod route;
mod watch;

use route::{Route, query_map, verb_of};
use watch::watch;

/// Everything the request handlers share.
pub struct Shared {
    pub sim: Arc<Sim>,
    pub token: String,
    pub faults: std::sync::Mutex<Faults>,
    /// Woken when a pause ends.
    pub resumed: tokio::sync::Notify,
    pub counters: CounterTable,
    /// Bumped to end every open watch.
    pub close_watches: tokio::sync::watch::Sender<u64>,
    pub bookmark_interval: Duration,
    pub max_body: usize,
}

impl Shared {
    pub fn new(sim: Arc<Sim>, token: String, bookmark_interval: Duration) -> Self {
        Self {
            sim,
            token,
            faults: std::sync::Mutex::new(Faults::default()),
            resumed: tokio::sync::Notify::new(),
            counters: CounterTable::default(),
            close_watches: tokio::sync::watch::channel(0).0,
            bookmark_interval,
            max_body: 3 * 1024 * 1024,
        }
    }

    fn faults(&self) -> Faults {
        self.faults.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        // to_vec, not to_string: Display goes through fmt::Write and costs twice as much.
        .body(Body::from(serde_json::to_vec(body).unwrap_or_default()))
        .expect("static response parts are valid")
}

fn error_response(e: &ApiError) -> Response {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = json_response(code, &e.status());
    if e.code == 429 {
        r.headers_mut().insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
    }
    r
}

/// Entry point for every request.
pub async fn handle(shared: Arc<Shared>, req: Request) -> Response {
    let authorized = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t.trim() == shared.token);
    if !authorized {
        return json_response(
            StatusCode::UNAUTHORIZED,
            &ApiError::new(401, "Unauthorized", "Unauthorized").status(),
        );
    }
    let path = req.uri().path().to_string();
    if let Some(rest) = path.strip_prefix("/_sim/") {
        return admin(&shared, req.method().clone(), rest, req).await;
    }
    let route = Route::parse(&path);
    let verb = verb_of(req.method(), &route, req.uri().query().unwrap_or_default());
    if let Some(r) = inject_faults(&shared, &verb, &route).await {
        return r;
    }
    if let Route::Resource { group, resource, subresource, .. } = &route {
        shared.counters.record(&verb, group, resource, subresource.as_deref().unwrap_or_default());
    }
    match serve(&shared, route, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

async fn inject_faults(shared: &Shared, verb: &str, route: &Route) -> Option<Response> {
    loop {
        let f = shared.faults();
        match f.pause {
            Some(PauseMode::Unavailable) => {
                return Some(error_response(&ApiError::new(
                    503,
                    "ServiceUnavailable",
                    "the server is currently unable to handle the request",
                )));
            }
            Some(PauseMode::Hang) => {
                let notified = shared.resumed.notified();
                if shared.faults().pause == Some(PauseMode::Hang) {
                    notified.await;
                }
                continue;
            }
            None => {}
        }
        if let Some(ms) = f.latency_ms.filter(|ms| *ms > 0) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let resource = match route {
            Route::Resource { resource, .. } => resource.as_str(),
            _ => "",
        };
        for rule in f.errors.iter().filter(|r| r.applies(verb, resource)) {
            if fastrand::f64() < rule.rate {
                let (reason, message) = match rule.code {
                    409 => (
                        "Conflict",
                        "Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again (injected by kube-sim)",
                    ),
                    429 => (
                        "TooManyRequests",
                        "the server has received too many requests and has asked us to try again later (injected by kube-sim)",
                    ),
                    503 => (
                        "ServiceUnavailable",
                        "the server is currently unable to handle the request (injected by kube-sim)",
                    ),
                    _ => ("InternalError", "Internal error occurred: injected by kube-sim"),
                };
                return Some(error_response(&ApiError::new(rule.code, reason, message)));
            }
        }
        return None;
    }
}

async fn admin(shared: &Shared, method: Method, rest: &str, req: Request) -> Response {
    let ok = || json_response(StatusCode::OK, &json!({"status": "ok"}));
    match (method, rest) {
        (Method::GET, "counters") => json_response(StatusCode::OK, &json!(shared.counters.snapshot())),
        (Method::POST, "counters/reset") => {
            shared.counters.reset();
            ok()
        }
        (Method::GET, "faults") => json_response(StatusCode::OK, &json!(shared.faults())),
        (Method::PUT, "faults") | (Method::POST, "faults") => {
            let body = match read_body(req, shared.max_body).await {
                Ok(b) => b,
                Err(e) => return error_response(&e),
            };
            match serde_json::from_slice::<Faults>(&body) {
                Ok(f) => {
                    let resumed = f.pause.is_none();
                    *shared.faults.lock().unwrap_or_else(|e| e.into_inner()) = f;
                    if resumed {
                        shared.resumed.notify_waiters();
                    }
                    ok()
                }
                Err(e) => error_response(&ApiError::bad_request(format!("faults: {e}"))),
            }
        }
        (Method::DELETE, "faults") => {
            *shared.faults.lock().unwrap_or_else(|e| e.into_inner()) = Faults::default();
            shared.resumed.notify_waiters();
            ok()
        }
        (Method::POST, "watches/close") => {
            shared.close_watches.send_modify(|n| *n += 1);
            ok()
        }
        (Method::POST, "compact") => {
            shared.sim.compact();
            ok()
        }
        _ => error_response(&ApiError::new(404, "NotFound", format!("no admin endpoint /_sim/{rest}"))),
    }
}

async fn read_body(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    let body = req
        .into_body()
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the body: {e}")))?;
    let bytes = body.to_bytes();
    if bytes.len() > limit {
        return Err(ApiError::new(413, "RequestEntityTooLarge", "the request body is too large"));
    }
    Ok(bytes)
}

/// How a request body is encoded, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFormat {
    Json,
    /// Server-side apply configurations.
    Yaml,
    /// `application/vnd.kubernetes.protobuf` (see `protobuf`).
    Protobuf,
}

fn body_format(headers: &HeaderMap) -> BodyFormat {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if crate::protobuf::is_protobuf(ct) { BodyFormat::Protobuf } else { BodyFormat::Json }
}

fn parse_body(bytes: &[u8], format: BodyFormat) -> Result<Value, ApiError> {
    if format == BodyFormat::Protobuf {
        return crate::protobuf::decode(bytes);
    }
    if format == BodyFormat::Yaml {
        let text = std::str::from_utf8(bytes).map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
        return serde_saphyr::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(format!("the body of the request could not be decoded as JSON: {e}"))
    })
}

/// `Accept` parameters: Table or PartialObjectMetadata conversions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Render {
    Object,
    Table,
    Metadata,
}

fn render_of(headers: &HeaderMap) -> Render {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    // The first acceptable media type wins, as in the apiserver's negotiation.
    for part in accept.split(',') {
        if part.contains("as=Table") {
            return Render::Table;
        }
        if part.contains("as=PartialObjectMetadata") {
            return Render::Metadata;
        }
        let media = part.split(';').next().unwrap_or_default().trim();
        if matches!(media, "application/json" | "*/*" | "application/*" | "") {
            return Render::Object;
        }
    }
    Render::Object
}

fn metadata_only(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
}

fn columns_for(rt: &ResourceType) -> Vec<table::Column> {
    rt.columns
        .clone()
        .or_else(|| table::builtin_columns(&rt.group, &rt.kind))
        .unwrap_or_else(table::default_columns)
}

fn manager_of(headers: &HeaderMap, q: &BTreeMap<String, String>) -> String {
    if let Some(m) = q.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.clone();
    }
    // The apiserver's default: the User-Agent up to the first '/'.
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.split('/').next().unwrap_or(ua).to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

async fn serve(shared: &Arc<Shared>, route: Route, req: Request) -> Result<Response, ApiError> {
    let sim = &shared.sim;
    let ok = |v: Value| Ok(json_response(StatusCode::OK, &v));
    match route {
        Route::Version => ok(json!({
            "major": "1", "minor": "33", "gitVersion": "v1.33.0-kube-sim", "gitCommit": "kube-sim",
            "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24",
            "compiler": "gc", "platform": "linux/amd64"
        })),
        Route::Health => Ok(Response::builder().status(200).body(Body::from("ok")).expect("valid")),
        Route::CoreVersions => ok(json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "kube-sim"}]
        })),
        Route::Groups => {
            let groups: Vec<Value> =
                sim.registry().groups().into_iter().map(|(g, vs)| group_json(&g, &vs)).collect();
            ok(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        }
        Route::Group(g) => match sim.registry().groups().get(&g) {
            Some(vs) => ok(group_json(&g, vs)),
            None => Err(ApiError::new(404, "NotFound", "the server could not find the requested resource")),
        },
        Route::ResourceList { group, version } => {
            let reg = sim.registry();
            let resources: Vec<Value> = reg
                .all()
                .filter(|t| t.group == group && t.version == version)
                .flat_map(|t| t.discovery_entries())
                .collect();
            if resources.is_empty() {
                return Err(ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ));
            }
            let gv = if group.is_empty() { version } else { format!("{group}/{version}") };
            ok(
                json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
            )
        }
        Route::OpenApiV3Root => {
            let reg = sim.registry();
            let mut paths = serde_json::Map::new();
            for t in reg.all() {
                let key = if t.group.is_empty() {
                    format!("api/{}", t.version)
                } else {
                    format!("apis/{}/{}", t.group, t.version)
                };
                paths.insert(key.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", sim.resource_version())}));
            }
            ok(json!({"paths": paths}))
        }
        Route::OpenApiV3 { group, version } => {
            ok(crate::openapi::group_version(&sim.registry(), &group, &version))
        }
        Route::OpenApiV2 => Err(ApiError::new(404, "NotFound", "kube-sim serves /openapi/v3 only")),
        Route::Unknown => {
            Err(ApiError::new(404, "NotFound", "the server could not find the requested resource"))
        }
        Route::Resource { group, version, namespace, resource, name, subresource } => {
            let rt = sim.resolve(&group, &version, &resource).ok_or_else(|| {
                ApiError::new(404, "NotFound", "the server could not find the requested resource")
            })?;
            if namespace.is_some() && !rt.namespaced {
                return Err(ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ));
            }
            if let Some(sub) = subresource.as_deref()
                && !(sub == "status" && rt.status_subresource)
                && !(sub == "finalize" && rt.kind == "Namespace")
            {
                return Err(ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ));
            }
            resource_request(shared, rt, namespace, name, subresource, req).await
        }
    }
}

fn group_json(g: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> =
        versions.iter().map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v})).collect();
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": g, "versions": vs, "preferredVersion": vs[0]})
}

fn with_list_kind(
    rt: &ResourceType,
    page_items: Vec<Value>,
    rv: u64,
    cont: Option<String>,
    remaining: Option<u64>,
) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    if let Some(r) = remaining {
        meta["remainingItemCount"] = json!(r);
    }
    json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": meta, "items": page_items})
}

async fn resource_request(
    shared: &Arc<Shared>,
    rt: Arc<ResourceType>,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let sim = shared.sim.clone();
    // `events.k8s.io/v1` Events are a view of the core Events' store (see `events`): `view` is the
    // type the client asked for (kind, columns, field selectors), `rt` the stored one.
    let view = rt.clone();
    let alias = crate::events::is_events_view(&rt);
    let rt = if alias {
        sim.resolve("", "v1", "events").ok_or_else(|| ApiError::internal("core Events are not registered"))?
    } else {
        rt
    };
    let out = move |o: &Value| if alias { crate::events::to_view(o) } else { o.clone() };
    let into = move |o: Value| if alias { crate::events::to_core(&o) } else { o };
    let q = query_map(req.uri().query().unwrap_or_default());
    let headers = req.headers().clone();
    let render = render_of(&headers);
    let ns = namespace.as_deref();
    let opts = WriteOptions {
        manager: manager_of(&headers, &q),
        dry_run: q.get("dryRun").is_some_and(|v| v == "All"),
        field_validation: match q.get("fieldValidation").map(String::as_str) {
            Some("Strict") => FieldValidation::Strict,
            Some("Ignore") => FieldValidation::Ignore,
            _ => FieldValidation::Warn,
        },
        force: q.get("force").is_some_and(|v| v == "true"),
    };
    let now = jiff::Timestamp::now();
    let respond = |code: StatusCode, stored: &Value, warnings: &[String]| -> Response {
        let obj = &out(stored);
        let body = match render {
            Render::Table => {
                table::to_table(&columns_for(&view), std::slice::from_ref(obj), include_of(&q), "", now)
            }
            Render::Metadata => metadata_only(obj),
            Render::Object => obj.clone(),
        };
        let mut r = json_response(code, &body);
        for w in warnings {
            if let Ok(v) = http::HeaderValue::from_str(&format!("299 - \"{}\"", w.replace('"', "'"))) {
                r.headers_mut().append(header::WARNING, v);
            }
        }
        r
    };
    let method = req.method().clone();
    match (method.as_str(), name) {
        ("GET", _) if q.get("watch").is_some_and(|v| v == "true" || v == "1") => {
            let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or_default())
                .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
            let fields =
                FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or_default(), &view)?;
            Ok(watch(shared.clone(), rt, view.clone(), namespace, labels, fields, &q))
        }
        ("GET", Some(name)) => {
            let obj = sim.with(|s| s.get(&rt, ns, &name))?;
            Ok(respond(StatusCode::OK, &obj, &[]))
        }
        ("GET", None) => {
            let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or_default())
                .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
            let fields =
                FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or_default(), &view)?;
            let limit = q.get("limit").and_then(|l| l.parse().ok());
            // The view's field names are not the stored ones: its field selector is applied to the
            // converted items (after paging, a difference noted in the README).
            let stored_fields = if alias { FieldSelector::default() } else { fields.clone() };
            let page = sim.with(|s| {
                s.list(&rt, ns, &labels, &stored_fields, limit, q.get("continue").map(String::as_str))
            })?;
            let items: Vec<Value> =
                page.items.iter().map(|o| out(o)).filter(|o| !alias || fields.matches(o)).collect();
            let body = match render {
                Render::Table => {
                    let mut t = table::to_table(
                        &columns_for(&view),
                        &items,
                        include_of(&q),
                        &page.resource_version.to_string(),
                        now,
                    );
                    if let Some(c) = &page.continue_token {
                        t["metadata"]["continue"] = json!(c);
                    }
                    t
                }
                Render::Metadata => {
                    let mut l = with_list_kind(
                        &view,
                        items.iter().map(metadata_only).collect(),
                        page.resource_version,
                        page.continue_token,
                        page.remaining,
                    );
                    l["kind"] = json!("PartialObjectMetadataList");
                    l["apiVersion"] = json!("meta.k8s.io/v1");
                    l
                }
                Render::Object => {
                    with_list_kind(&view, items, page.resource_version, page.continue_token, page.remaining)
                }
            };
            Ok(json_response(StatusCode::OK, &body))
        }
        ("POST", None) => {
            let format = body_format(&headers);
            let body = parse_body(&read_body(req, shared.max_body).await?, format)?;
            if format == BodyFormat::Protobuf {
                crate::protobuf::check_kind(&body, &view.api_version(), &view.kind)?;
            }
            let body = into(body);
            let w = sim.with(|s| s.create(&rt, ns, body, &opts))?;
            Ok(respond(StatusCode::CREATED, &w.object, &w.warnings))
        }
        ("PUT", Some(name)) => {
            let format = body_format(&headers);
            let body = parse_body(&read_body(req, shared.max_body).await?, format)?;
            if format == BodyFormat::Protobuf {
                crate::protobuf::check_kind(&body, &view.api_version(), &view.kind)?;
            }
            let body = into(body);
            let sub = subresource.as_deref().filter(|s| *s == "status");
            let w = sim.with(|s| s.update(&rt, ns, &name, body, sub, &opts))?;
            Ok(respond(StatusCode::OK, &w.object, &w.warnings))
        }
        ("PATCH", Some(name)) => {
            let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
            let kind = match ct.split(';').next().unwrap_or_default().trim() {
                "application/json-patch+json" => PatchType::Json,
                "application/merge-patch+json" => PatchType::Merge,
                "application/strategic-merge-patch+json" => PatchType::Strategic,
                "application/apply-patch+yaml" | "application/apply-patch+json" => PatchType::Apply,
                other => {
                    return Err(ApiError::unsupported_media_type(format!(
                        "the body of the request was in an unknown format ({other}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"
                    )));
                }
            };
            let format = if kind == PatchType::Apply { BodyFormat::Yaml } else { BodyFormat::Json };
            let body = parse_body(&read_body(req, shared.max_body).await?, format)?;
            let sub = subresource.as_deref().filter(|s| *s == "status");
            if alias {
                // The patch names the view's fields: apply it to the view, store the result.
                let w = sim.with(|s| -> Result<_, ApiError> {
                    let mut current = out(&*s.get(&rt, ns, &name)?);
                    patch_view(&view, &mut current, kind, &body)?;
                    s.update(&rt, ns, &name, into(current), None, &opts)
                })?;
                return Ok(respond(StatusCode::OK, &w.object, &w.warnings));
            }
            let w = sim.with(|s| s.patch(&rt, ns, &name, kind, &body, sub, &opts))?;
            let code = if w.created { StatusCode::CREATED } else { StatusCode::OK };
            Ok(respond(code, &w.object, &w.warnings))
        }
        ("DELETE", Some(name)) => {
            let bytes = read_body(req, shared.max_body).await?;
            let opts_body: Value =
                if bytes.is_empty() { json!({}) } else { parse_body(&bytes, body_format(&headers))? };
            let pre_rv = opts_body.pointer("/preconditions/resourceVersion").and_then(Value::as_str);
            let pre_uid = opts_body.pointer("/preconditions/uid").and_then(Value::as_str);
            let dry =
                opts.dry_run || opts_body["dryRun"].as_array().is_some_and(|a| a.iter().any(|v| v == "All"));
            let obj = sim.with(|s| s.delete(&rt, ns, &name, pre_rv, pre_uid, dry))?;
            Ok(respond(StatusCode::OK, &obj, &[]))
        }
        ("DELETE", None) => {
            let labels = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or_default())
                .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
            let fields =
                FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or_default(), &rt)?;
            let deleted = sim.with(|s| -> Result<Vec<Value>, ApiError> {
                let page = s.list(&rt, ns, &labels, &fields, None, None)?;
                let mut out_items = Vec::new();
                for o in page.items {
                    let n = o["metadata"]["name"].as_str().unwrap_or_default().to_string();
                    let ons = o["metadata"]["namespace"].as_str().map(String::from);
                    out_items.push(out(&*s.delete(&rt, ons.as_deref(), &n, None, None, opts.dry_run)?));
                }
                Ok(out_items)
            })?;
            Ok(json_response(
                StatusCode::OK,
                &with_list_kind(&view, deleted, sim.resource_version(), None, None),
            ))
        }
        _ => Err(ApiError::method_not_allowed(format!("{method} is not supported here"))),
    }
}

fn include_of(q: &BTreeMap<String, String>) -> IncludeObject {
    q.get("includeObject").and_then(|s| IncludeObject::from_query(s)).unwrap_or_default()
}

/// Applies a JSON, merge or strategic-merge patch to an object in a view (`events.k8s.io/v1`
/// Events). Server-side apply to a view is not simulated.
fn patch_view(
    view: &ResourceType,
    target: &mut Value,
    kind: PatchType,
    body: &Value,
) -> Result<(), ApiError> {
    let refused = |e: crate::patch::PatchError| {
        let reason = match e.http_status() {
            415 => "UnsupportedMediaType",
            422 => "Invalid",
            _ => "BadRequest",
        };
        ApiError::new(e.http_status(), reason, e.to_string())
    };
    match kind {
        PatchType::Merge => crate::patch::merge_patch(target, body),
        PatchType::Json => crate::patch::json_patch(target, body).map_err(refused)?,
        PatchType::Strategic => {
            crate::patch::strategic_merge_patch(target, body, view.type_info.as_ref()).map_err(refused)?
        }
        PatchType::Apply => {
            return Err(ApiError::unsupported_media_type(
                "kube-sim does not apply server-side to events.k8s.io/v1 Events (they are a view of core v1 Events); patch or update them",
            ));
        }
    }
    Ok(())
}
