//! Watch streams: initial events, changes from the history, bookmarks, timeouts, `410 Gone`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{StatusCode, header};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::fields::FieldSelector;
use crate::labels::LabelSelector;
use crate::resources::ResourceType;
use crate::sim::labels_of;
use crate::store::{EventType, HistoryRead};

use super::Shared;

/// Starts a watch: initial events when asked for, then changes from the history, bookmarks,
/// and a server-side timeout; ends early when the client goes away or watches are closed.
pub(super) fn watch(
    shared: Arc<Shared>,
    rt: Arc<ResourceType>,
    view: Arc<ResourceType>,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    q: &BTreeMap<String, String>,
) -> Response {
    let rv_param = q.get("resourceVersion").cloned().unwrap_or_default();
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|v| v == "true");
    let send_initial = q.get("sendInitialEvents").map(|v| v == "true");
    // The apiserver picks a timeout between its minimum and twice it when none is asked for.
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(256);
    let matches = move |o: &Value| labels.matches(&labels_of(o)) && fields.matches(o);
    // Objects go out (and are matched) in the view the client asked for.
    let alias = crate::events::is_events_view(&view);
    let out = move |o: &Value| if alias { crate::events::to_view(o) } else { o.clone() };
    let in_scope = {
        let ns = namespace.clone();
        move |change_ns: &str| ns.as_deref().is_none_or(|n| n == change_ns)
    };
    let line = |kind: &str, obj: &Value| {
        let mut buf = serde_json::to_vec(&json!({"type": kind, "object": obj})).unwrap_or_default();
        buf.push(b'\n');
        Bytes::from(buf)
    };
    let mut closed = shared.close_watches.subscribe();
    closed.mark_unchanged();
    tokio::spawn(async move {
        let sim = shared.sim.clone();
        let mut changed = sim.subscribe();
        // Initial state: for "" or "0" (list-then-watch in one call), or sendInitialEvents=true.
        let initial = send_initial.unwrap_or(rv_param.is_empty() || rv_param == "0");
        let mut cursor: u64 = if initial {
            let (items, rv) = sim.with(|s| {
                let page = s.list(
                    &rt,
                    namespace.as_deref(),
                    &LabelSelector::default(),
                    &FieldSelector::default(),
                    None,
                    None,
                );
                (page.map(|p| p.items).unwrap_or_default(), s.store.resource_version())
            });
            for o in items.iter().map(|o| out(o)).filter(|o| matches(o)) {
                if tx.send(line("ADDED", &o)).await.is_err() {
                    return;
                }
            }
            if send_initial == Some(true) {
                let bm = json!({"kind": view.kind, "apiVersion": view.api_version(), "metadata": {
                    "resourceVersion": rv.to_string(),
                    "annotations": {"k8s.io/initial-events-end": "true"}}});
                if tx.send(line("BOOKMARK", &bm)).await.is_err() {
                    return;
                }
            }
            rv
        } else {
            match rv_param.parse::<u64>() {
                Ok(rv) => rv,
                Err(_) => {
                    let e = ApiError::bad_request(format!("invalid resource version: {rv_param:?}"));
                    let _ = tx.send(line("ERROR", &e.status())).await;
                    return;
                }
            }
        };
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut bookmark_timer = tokio::time::interval(shared.bookmark_interval);
        bookmark_timer.tick().await;
        loop {
            let read = sim.with(|s| s.store.read_history(cursor, 1000));
            match read {
                HistoryRead::Expired => {
                    let current = sim.resource_version();
                    let e = ApiError::gone(format!("too old resource version: {cursor} ({current})"));
                    let _ = tx.send(line("ERROR", &e.status())).await;
                    return;
                }
                HistoryRead::Changes(changes, next) => {
                    let more = changes.len() == 1000;
                    for c in changes {
                        if c.res != rt.key() || !in_scope(&c.namespace) {
                            continue;
                        }
                        let object = out(&c.object);
                        let now_in = matches(&object);
                        let was_in = c.previous.as_deref().map(&out).is_some_and(|p| matches(&p));
                        let kind = match (c.kind, was_in, now_in) {
                            (EventType::Deleted, true, _) => "DELETED",
                            (EventType::Deleted, false, _) => continue,
                            (EventType::Added, _, true) => "ADDED",
                            (EventType::Modified, true, true) => "MODIFIED",
                            (EventType::Modified, false, true) => "ADDED",
                            (EventType::Modified, true, false) => "DELETED",
                            _ => continue,
                        };
                        if tx.send(line(kind, &object)).await.is_err() {
                            return;
                        }
                    }
                    cursor = next;
                    if more {
                        continue;
                    }
                }
            }
            tokio::select! {
                r = changed.changed() => if r.is_err() { return },
                _ = bookmark_timer.tick() => {
                    if bookmarks {
                        let bm = json!({"kind": view.kind, "apiVersion": view.api_version(),
                            "metadata": {"resourceVersion": cursor.to_string()}});
                        if tx.send(line("BOOKMARK", &bm)).await.is_err() {
                            return;
                        }
                    }
                }
                _ = &mut deadline => return,
                _ = closed.changed() => return,
                _ = tx.closed() => return,
            }
        }
    });
    let stream =
        futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx)) },
        );
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::TRANSFER_ENCODING, "chunked")
        .body(Body::from_stream(stream))
        .expect("static response parts are valid")
}
