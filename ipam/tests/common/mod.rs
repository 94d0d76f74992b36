//! Test harness: kube-sim with FerroLB's CRDs, controllers started in-process against it, and
//! builders for pools and Services.
#![allow(dead_code)]

use std::time::Duration;

use ferrolb_api::LoadBalancerIPPool;
use ferrolb_ipam::controller::{self, Settings};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube_sim::{KubeSim, Options};
use serde_json::{Value, json};
use tokio::sync::watch;

pub struct Env {
    pub sim: KubeSim,
    pub client: kube::Client,
}

impl Env {
    pub async fn start() -> Self {
        let sim = KubeSim::start(Options::default()).await.unwrap();
        let client = sim.client().await.unwrap();
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in ferrolb_api::crd::all() {
            crds.create(&PostParams::default(), &crd).await.unwrap();
        }
        Self { sim, client }
    }

    pub fn services(&self, ns: &str) -> Api<Service> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub fn pools(&self) -> Api<LoadBalancerIPPool> {
        Api::all(self.client.clone())
    }

    pub async fn namespace(&self, name: &str) {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        Api::<Namespace>::all(self.client.clone()).create(&PostParams::default(), &ns).await.unwrap();
    }

    pub async fn pool(&self, v: Value) -> LoadBalancerIPPool {
        let mut v = v;
        v["apiVersion"] = json!("ferrolb.io/v1alpha1");
        v["kind"] = json!("LoadBalancerIPPool");
        let p: LoadBalancerIPPool = serde_json::from_value(v).unwrap();
        self.pools().create(&PostParams::default(), &p).await.unwrap()
    }

    pub async fn service(&self, ns: &str, v: Value) -> Service {
        let s: Service = serde_json::from_value(v).unwrap();
        self.services(ns).create(&PostParams::default(), &s).await.unwrap()
    }

    /// Starts a controller that leads from the start; returns its handle.
    pub fn controller(&self) -> Controller {
        Controller::start(self.client.clone(), true)
    }
}

/// A controller running in-process, stopped on drop.
pub struct Controller {
    pub leader: watch::Sender<bool>,
    pub synced: watch::Receiver<bool>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), controller::Error>>,
}

impl Controller {
    pub fn start(client: kube::Client, leader: bool) -> Self {
        let (leader_tx, leader_rx) = watch::channel(leader);
        let (synced_tx, synced_rx) = watch::channel(false);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let settings = Settings { event_interval: Duration::from_millis(0), ..Settings::default() };
        let task = tokio::spawn(controller::run(client, settings, leader_rx, synced_tx, shutdown_rx));
        Self { leader: leader_tx, synced: synced_rx, shutdown: shutdown_tx, task }
    }

    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// A crash: the task is gone at once, nothing is cleaned up.
    pub fn kill(self) {
        self.task.abort();
    }
}

pub fn lb(name: &str) -> Value {
    json!({"metadata": {"name": name}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}})
}

/// The IPs in a Service's ingress.
pub fn ingress(s: &Service) -> Vec<String> {
    s.status
        .as_ref()
        .and_then(|st| st.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|i| i.iter().filter_map(|x| x.ip.clone()).collect())
        .unwrap_or_default()
}

/// `(status, reason, message)` of `ferrolb.io/IPAMRequestSatisfied`.
pub fn condition(s: &Service) -> Option<(String, String, String)> {
    s.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "ferrolb.io/IPAMRequestSatisfied")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Polls `get` until `check` holds (10 s at most), returning the last value.
pub async fn wait_for<T, F, Fut>(what: &str, get: F, check: impl Fn(&T) -> bool) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
    T: std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let v = get().await;
        if check(&v) {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}; last: {v:#?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until the Service has `n` ingress addresses and a condition; returns it.
pub async fn satisfied(env: &Env, ns: &str, name: &str, n: usize) -> Service {
    let api = env.services(ns);
    wait_for(
        &format!("{ns}/{name} to get {n} address(es)"),
        || async { api.get(name).await.unwrap() },
        |s| ingress(s).len() == n && condition(s).is_some_and(|c| c.0 == "True"),
    )
    .await
}
