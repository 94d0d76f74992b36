//! The real `kube` watcher and reflector against kube-sim: create/update/delete cycles, watch
//! drops, 410 Gone recovery, bookmarks and selector transitions.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube_sim::{KubeSim, Options};
use serde_json::json;

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})).unwrap()
}

async fn eventually<F: Fn() -> bool>(what: &str, f: F) {
    ferrolb_testkit::eventually(what, Duration::from_secs(10), f).await;
}

#[tokio::test]
async fn reflector_follows_changes_across_watch_drops_and_410() {
    let sim = KubeSim::start(Options { bookmark_interval: Duration::from_millis(200), ..Default::default() })
        .await
        .unwrap();
    let client = sim.client().await.unwrap();
    let admin = sim.admin().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &cm("a", json!({}))).await.unwrap();

    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector(writer, watcher(api.clone(), watcher::Config::default().any_semantic()))
        .default_backoff()
        .applied_objects();
    let task = tokio::spawn(async move {
        let mut s = std::pin::pin!(stream);
        while s.try_next().await.is_ok() {}
    });
    let has = |r: &reflector::Store<ConfigMap>, n: &str| {
        r.state().iter().any(|c| c.metadata.name.as_deref() == Some(n))
    };

    eventually("initial list", || has(&reader, "a")).await;
    api.create(&PostParams::default(), &cm("b", json!({}))).await.unwrap();
    eventually("create seen", || has(&reader, "b")).await;

    // A dropped watch: the watcher re-watches from its last resourceVersion and misses nothing.
    admin.close_watches().await.unwrap();
    api.create(&PostParams::default(), &cm("c", json!({}))).await.unwrap();
    eventually("create after watch drop", || has(&reader, "c")).await;

    // A 410: history compacted and the watch dropped; the watcher must re-list.
    admin.compact().await.unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    admin.close_watches().await.unwrap();
    api.create(&PostParams::default(), &cm("d", json!({}))).await.unwrap();
    eventually("state converged after 410", || has(&reader, "d") && !has(&reader, "a")).await;

    let patch = json!({"data": {"k": "changed"}});
    api.patch("b", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    eventually("update seen", || {
        reader.state().iter().any(|c| {
            c.metadata.name.as_deref() == Some("b")
                && c.data.as_ref().and_then(|d| d.get("k")).map(String::as_str) == Some("changed")
        })
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn watch_events_bookmarks_and_selector_transitions() {
    let sim = KubeSim::start(Options { bookmark_interval: Duration::from_millis(100), ..Default::default() })
        .await
        .unwrap();
    let client = sim.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let start = api.list(&Default::default()).await.unwrap().metadata.resource_version.unwrap();

    let wp = kube::api::WatchParams::default().labels("app=web").timeout(10);
    let mut events = api.watch(&wp, &start).await.unwrap().boxed();

    api.create(&PostParams::default(), &cm("x", json!({"app": "web"}))).await.unwrap();
    api.create(&PostParams::default(), &cm("y", json!({"app": "db"}))).await.unwrap();
    // Leaving the selection is a DELETED, entering it an ADDED, as on a real apiserver.
    api.patch("x", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"app": "other"}}})))
        .await
        .unwrap();
    api.patch("y", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}})))
        .await
        .unwrap();

    let mut seen = Vec::new();
    while seen.len() < 3 {
        match events.try_next().await.unwrap().unwrap() {
            kube::api::WatchEvent::Added(c) => seen.push(format!("ADDED {}", c.metadata.name.unwrap())),
            kube::api::WatchEvent::Modified(c) => seen.push(format!("MODIFIED {}", c.metadata.name.unwrap())),
            kube::api::WatchEvent::Deleted(c) => seen.push(format!("DELETED {}", c.metadata.name.unwrap())),
            kube::api::WatchEvent::Bookmark(_) => {}
            kube::api::WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    assert_eq!(seen, ["ADDED x", "DELETED x", "ADDED y"]);

    // With nothing happening, bookmarks keep the client's resourceVersion fresh.
    let wp = kube::api::WatchParams::default().timeout(5);
    let rv = api.list(&Default::default()).await.unwrap().metadata.resource_version.unwrap();
    let mut idle = api.watch(&wp, &rv).await.unwrap().boxed();
    let ev = tokio::time::timeout(Duration::from_secs(3), idle.try_next()).await.unwrap().unwrap().unwrap();
    assert!(
        matches!(ev, kube::api::WatchEvent::Bookmark(ref b) if b.metadata.resource_version == rv),
        "{ev:?}"
    );
}

#[tokio::test]
async fn watch_from_a_compacted_version_is_410() {
    let sim = KubeSim::start(Options { history: 3, ..Default::default() }).await.unwrap();
    let client = sim.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let old = api.list(&Default::default()).await.unwrap().metadata.resource_version.unwrap();
    for i in 0..5 {
        api.create(&PostParams::default(), &cm(&format!("n{i}"), json!({}))).await.unwrap();
    }
    let mut events = api.watch(&Default::default(), &old).await.unwrap().boxed();
    match events.try_next().await {
        Ok(Some(kube::api::WatchEvent::Error(e))) => assert_eq!(e.code, 410),
        other => panic!("expected a 410 error event, got {other:?}"),
    }
}

#[tokio::test]
async fn streaming_list_initial_events() {
    let sim = KubeSim::start(Options::default()).await.unwrap();
    let client = sim.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for n in ["p", "q"] {
        api.create(&PostParams::default(), &cm(n, json!({}))).await.unwrap();
    }
    let cfg = watcher::Config::default().streaming_lists();
    let mut names = Vec::new();
    let mut s = std::pin::pin!(watcher(api, cfg));
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(5), s.try_next()).await.unwrap().unwrap() {
        match ev {
            watcher::Event::InitApply(c) => names.push(c.metadata.name.unwrap()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    names.sort();
    assert_eq!(names, ["p", "q"]);
}
