//! Fault injection and request counters, served under `/_sim/` (with the same bearer token as the
//! API) and driven from Rust tests through [`AdminClient`].
//!
//! Endpoints:
//! - `GET /_sim/counters` → [`Counters`]; `POST /_sim/counters/reset`
//! - `GET /_sim/faults` → [`Faults`]; `PUT /_sim/faults` with a [`Faults`] body; `DELETE /_sim/faults`
//! - `POST /_sim/watches/close`: ends every open watch (clients see the stream close)
//! - `POST /_sim/compact`: forgets the change history (older resourceVersions get 410 Gone)

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What the API does wrong on purpose. The default is a healthy API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Faults {
    /// `hang`: requests wait until the pause ends (an unreachable API server); `unavailable`:
    /// requests get 503 at once (an API server that is up but failing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseMode>,
    /// Added before every API request is handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Injected errors, each with its own rate and scope.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorRule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PauseMode {
    Hang,
    Unavailable,
}

/// Answer `code` (409, 429 or 500; others are allowed too) to a `rate` fraction of matching requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorRule {
    pub code: u16,
    /// 0.0 to 1.0.
    pub rate: f64,
    /// Verbs to affect (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`); empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verbs: Vec<String>,
    /// Resources to affect (plural, e.g. `services`, `leases`); empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
}

impl ErrorRule {
    pub fn new(code: u16, rate: f64) -> Self {
        Self { code, rate, verbs: Vec::new(), resources: Vec::new() }
    }

    pub fn verbs(mut self, verbs: &[&str]) -> Self {
        self.verbs = verbs.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn resources(mut self, resources: &[&str]) -> Self {
        self.resources = resources.iter().map(|s| s.to_string()).collect();
        self
    }

    pub(crate) fn applies(&self, verb: &str, resource: &str) -> bool {
        (self.verbs.is_empty() || self.verbs.iter().any(|v| v == verb))
            && (self.resources.is_empty() || self.resources.iter().any(|r| r == resource))
    }
}

/// Requests served, by verb and resource, as the apiserver's `apiserver_request_total` counts
/// them (`subresource` is `status` for status writes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    pub requests: Vec<CounterEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterEntry {
    pub verb: String,
    pub group: String,
    pub resource: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subresource: String,
    pub count: u64,
}

impl Counters {
    /// Sum of requests with this verb (and resource, when given).
    pub fn count(&self, verb: &str, resource: Option<&str>) -> u64 {
        self.requests
            .iter()
            .filter(|e| e.verb == verb && resource.is_none_or(|r| e.resource == r))
            .map(|e| e.count)
            .sum()
    }

    /// Sum of all write requests (create, update, patch, delete, deletecollection).
    pub fn writes(&self, resource: Option<&str>) -> u64 {
        ["create", "update", "patch", "delete", "deletecollection"]
            .iter()
            .map(|v| self.count(v, resource))
            .sum()
    }
}

/// Server-side counter table.
#[derive(Debug, Default)]
pub struct CounterTable {
    map: Mutex<BTreeMap<(String, String, String, String), u64>>,
}

impl CounterTable {
    pub fn record(&self, verb: &str, group: &str, resource: &str, subresource: &str) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((verb.into(), group.into(), resource.into(), subresource.into())).or_default() += 1;
    }

    pub fn snapshot(&self) -> Counters {
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        Counters {
            requests: m
                .iter()
                .map(|((verb, group, resource, subresource), count)| CounterEntry {
                    verb: verb.clone(),
                    group: group.clone(),
                    resource: resource.clone(),
                    subresource: subresource.clone(),
                    count: *count,
                })
                .collect(),
        }
    }

    pub fn reset(&self) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// Errors of the admin client.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("kube-sim admin request failed: {0}")]
    Request(#[from] kube::Error),
    #[error("kube-sim admin answer is not understood: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Drives `/_sim/` through a `kube::Client` (so TLS and the token are the client's own).
#[derive(Clone)]
pub struct AdminClient {
    client: kube::Client,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminClient")
    }
}

impl AdminClient {
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }

    async fn call(&self, method: &str, path: &str, body: Option<String>) -> Result<String, AdminError> {
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(body.unwrap_or_default().into_bytes())
            .expect("static request parts are valid");
        Ok(self.client.request_text(req).await?)
    }

    pub async fn faults(&self) -> Result<Faults, AdminError> {
        Ok(serde_json::from_str(&self.call("GET", "/_sim/faults", None).await?)?)
    }

    pub async fn set_faults(&self, faults: &Faults) -> Result<(), AdminError> {
        self.call("PUT", "/_sim/faults", Some(serde_json::to_string(faults)?)).await.map(drop)
    }

    /// Back to a healthy API.
    pub async fn clear_faults(&self) -> Result<(), AdminError> {
        self.call("DELETE", "/_sim/faults", None).await.map(drop)
    }

    pub async fn pause(&self, mode: PauseMode) -> Result<(), AdminError> {
        let mut f = self.faults().await?;
        f.pause = Some(mode);
        self.set_faults(&f).await
    }

    pub async fn resume(&self) -> Result<(), AdminError> {
        let mut f = self.faults().await?;
        f.pause = None;
        self.set_faults(&f).await
    }

    pub async fn set_latency(&self, latency: Duration) -> Result<(), AdminError> {
        let mut f = self.faults().await?;
        f.latency_ms = Some(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX));
        self.set_faults(&f).await
    }

    pub async fn inject(&self, rule: ErrorRule) -> Result<(), AdminError> {
        let mut f = self.faults().await?;
        f.errors.push(rule);
        self.set_faults(&f).await
    }

    pub async fn close_watches(&self) -> Result<(), AdminError> {
        self.call("POST", "/_sim/watches/close", None).await.map(drop)
    }

    pub async fn compact(&self) -> Result<(), AdminError> {
        self.call("POST", "/_sim/compact", None).await.map(drop)
    }

    pub async fn counters(&self) -> Result<Counters, AdminError> {
        Ok(serde_json::from_str(&self.call("GET", "/_sim/counters", None).await?)?)
    }

    pub async fn reset_counters(&self) -> Result<(), AdminError> {
        self.call("POST", "/_sim/counters/reset", None).await.map(drop)
    }
}
