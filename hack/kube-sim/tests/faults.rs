//! Every fault-injection endpoint, and the request counters, observed through a real client.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube_sim::admin::{ErrorRule, PauseMode};
use kube_sim::{KubeSim, Options};
use serde_json::json;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
}

/// A client that shows injected 429/503 answers instead of retrying them as kube does by default.
async fn no_retry(sim: &KubeSim) -> kube::Client {
    let mut cfg = sim.config().await.unwrap();
    cfg.default_retry = false;
    kube::Client::try_from(cfg).unwrap()
}

fn code(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn pause_hang_blocks_until_resume() {
    let sim = KubeSim::start(Options::default()).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(sim.client().await.unwrap(), "default");
    let admin = sim.admin().await.unwrap();
    admin.pause(PauseMode::Hang).await.unwrap();
    let pending = tokio::spawn({
        let api = api.clone();
        async move { api.create(&PostParams::default(), &cm("late")).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pending.is_finished(), "a request must hang while the API is paused");
    assert!(
        sim.sim()
            .with(|s| s.get(&s.registry.get("", "v1", "configmaps").unwrap(), Some("default"), "late"))
            .is_err()
    );
    admin.resume().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), pending).await.unwrap().unwrap().unwrap();
    api.get("late").await.unwrap();
}

#[tokio::test]
async fn pause_unavailable_answers_503() {
    let sim = KubeSim::start(Options::default()).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(no_retry(&sim).await, "default");
    let admin = sim.admin().await.unwrap();
    admin.pause(PauseMode::Unavailable).await.unwrap();
    assert_eq!(code(api.list(&ListParams::default()).await.unwrap_err()), 503);
    admin.clear_faults().await.unwrap();
    api.list(&ListParams::default()).await.unwrap();
}

#[tokio::test]
async fn latency_is_added() {
    let sim = KubeSim::start(Options::default()).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(sim.client().await.unwrap(), "default");
    let admin = sim.admin().await.unwrap();
    admin.set_latency(Duration::from_millis(200)).await.unwrap();
    let t = Instant::now();
    api.list(&ListParams::default()).await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(200), "{:?}", t.elapsed());
    admin.clear_faults().await.unwrap();
    let t = Instant::now();
    api.list(&ListParams::default()).await.unwrap();
    assert!(t.elapsed() < Duration::from_millis(200));
}

#[tokio::test]
async fn injected_errors_by_code_verb_and_resource() {
    let sim = KubeSim::start(Options::default()).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(no_retry(&sim).await, "default");
    let admin = sim.admin().await.unwrap();
    api.create(&PostParams::default(), &cm("c")).await.unwrap();
    for c in [409u16, 429, 500] {
        admin.clear_faults().await.unwrap();
        admin.inject(ErrorRule::new(c, 1.0).verbs(&["patch"]).resources(&["configmaps"])).await.unwrap();
        let p = api.patch("c", &PatchParams::default(), &Patch::Merge(json!({"data": {"a": "b"}}))).await;
        assert_eq!(code(p.unwrap_err()), c);
        // Other verbs are untouched.
        api.get("c").await.unwrap();
    }
    // A rate of one half fails roughly half the requests.
    admin.clear_faults().await.unwrap();
    admin.inject(ErrorRule::new(500, 0.5).verbs(&["get"])).await.unwrap();
    let mut failed = 0;
    for _ in 0..200 {
        if api.get("c").await.is_err() {
            failed += 1;
        }
    }
    assert!((60..=140).contains(&failed), "{failed} of 200 failed at rate 0.5");
    admin.clear_faults().await.unwrap();
}

#[tokio::test]
async fn counters_count_by_verb_and_resource() {
    let sim = KubeSim::start(Options::default()).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(sim.client().await.unwrap(), "default");
    let admin = sim.admin().await.unwrap();
    admin.reset_counters().await.unwrap();
    api.create(&PostParams::default(), &cm("a")).await.unwrap();
    api.create(&PostParams::default(), &cm("b")).await.unwrap();
    api.get("a").await.unwrap();
    api.list(&ListParams::default()).await.unwrap();
    api.patch("a", &PatchParams::default(), &Patch::Merge(json!({"data": {"x": "y"}}))).await.unwrap();
    let c = admin.counters().await.unwrap();
    assert_eq!(c.count("create", Some("configmaps")), 2);
    assert_eq!(c.count("get", Some("configmaps")), 1);
    assert_eq!(c.count("list", Some("configmaps")), 1);
    assert_eq!(c.count("patch", Some("configmaps")), 1);
    assert_eq!(c.writes(Some("configmaps")), 3);
    assert_eq!(sim.counters(), c, "in-process and HTTP counters agree");
}

#[tokio::test]
async fn wrong_token_is_401() {
    let sim = KubeSim::start(Options::default()).await.unwrap();
    let text = std::fs::read_to_string(sim.kubeconfig_path()).unwrap().replace(sim.token(), "wrong");
    let path = sim.kubeconfig_path().with_file_name("wrong.kubeconfig");
    std::fs::write(&path, text).unwrap();
    let client = kube_sim::client_from_kubeconfig(&path).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    assert_eq!(code(api.list(&ListParams::default()).await.unwrap_err()), 401);
}
