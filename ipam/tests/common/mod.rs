//! Test harness: kube-sim with FerroLB's CRDs and controllers started in-process against it. Pools
//! and Services are built with the testkit's fixtures (`Service::test`, `LoadBalancerIPPool::test`),
//! re-exported here with their types.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use ferrolb_api::LoadBalancerIPPool;
use ferrolb_ipam::adapter::{self, Leadership, Settings};
pub use ferrolb_testkit::fixtures::{PoolFixture, ServiceFixture};
use k8s_openapi::api::core::v1::Namespace;
pub use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube_sim::{KubeSim, Options};
use serde_json::Value;
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
        let ns = Namespace {
            metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() },
            ..Namespace::default()
        };
        Api::<Namespace>::all(self.client.clone()).create(&PostParams::default(), &ns).await.unwrap();
    }

    pub async fn pool(&self, pool: LoadBalancerIPPool) -> LoadBalancerIPPool {
        self.pools().create(&PostParams::default(), &pool).await.unwrap()
    }

    pub async fn service(&self, ns: &str, service: Service) -> Service {
        self.services(ns).create(&PostParams::default(), &service).await.unwrap()
    }

    /// Starts a controller that leads from the start; returns its handle.
    pub fn controller(&self) -> Controller {
        Controller::start(self.client.clone(), true)
    }
}

/// Makes a test's controller lead or stand by, as its Lease election would.
pub struct LeaderSwitch(watch::Sender<Leadership>);

impl LeaderSwitch {
    pub fn send(&self, leader: bool) -> Result<(), watch::error::SendError<Leadership>> {
        self.0.send(Leadership::fixed(leader))
    }

    /// Still named leader, but the claim has expired: a renewal that is late.
    pub fn send_lapsed(&self) -> Result<(), watch::error::SendError<Leadership>> {
        let now = std::time::Instant::now();
        self.0.send(Leadership { leader: true, holder: None, valid_until: Some(now) })
    }
}

/// A controller running in-process, stopped on drop.
pub struct Controller {
    pub leader: LeaderSwitch,
    pub synced: watch::Receiver<bool>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), adapter::Error>>,
}

impl Controller {
    pub fn start(client: kube::Client, leader: bool) -> Self {
        Self::start_with(client, leader, Settings::default())
    }

    /// [`Controller::start`] with `settings` (Events are never rate-limited).
    pub fn start_with(client: kube::Client, leader: bool, settings: Settings) -> Self {
        let (leader_tx, leader_rx) = watch::channel(Leadership::fixed(leader));
        let (synced_tx, synced_rx) = watch::channel(false);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let settings = Settings { event_interval: Duration::from_millis(0), ..settings };
        let task = tokio::spawn(adapter::run(client, settings, leader_rx, synced_tx, shutdown_rx));
        Self { leader: LeaderSwitch(leader_tx), synced: synced_rx, shutdown: shutdown_tx, task }
    }

    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Waits (10 s at most) until both watches have listed everything.
    pub async fn wait_synced(&self) {
        let mut r = self.synced.clone();
        tokio::time::timeout(Duration::from_secs(10), r.wait_for(|s| *s))
            .await
            .expect("controller synced within 10 s")
            .expect("controller still running");
    }

    /// A crash: the task is gone at once, nothing is cleaned up.
    pub fn kill(self) {
        self.task.abort();
    }
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

/// Polls `get` until `check` holds (10 s at most, this suite's bound), returning the last value.
pub async fn wait_for<T, F, Fut>(what: &str, get: F, check: impl Fn(&T) -> bool) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
    T: std::fmt::Debug,
{
    ferrolb_testkit::wait_for(what, Duration::from_secs(10), get, check).await
}

/// Waits until the Service has `n` ingress addresses and a condition (and, with addresses, the
/// `ferrolb.io/allocated-from-pool` annotation, written right after the status); returns it.
pub async fn satisfied(env: &Env, ns: &str, name: &str, n: usize) -> Service {
    let api = env.services(ns);
    wait_for(
        &format!("{ns}/{name} to get {n} address(es)"),
        || async { api.get(name).await.unwrap() },
        |s| {
            ingress(s).len() == n
                && condition(s).is_some_and(|c| c.0 == "True")
                && (n == 0 || allocated_from(s).is_some())
        },
    )
    .await
}

/// Like [`wait_for`] with a bound of `secs` seconds.
pub async fn wait_for_within<T, F, Fut>(secs: u64, what: &str, get: F, check: impl Fn(&T) -> bool) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
    T: std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let v = get().await;
        if check(&v) {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}; last: {v:#?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `ns/name` → ingress IPs of every Service (all namespaces).
pub type Addresses = BTreeMap<String, Vec<String>>;

impl Env {
    pub async fn get(&self, ns: &str, name: &str) -> Service {
        self.services(ns).get(name).await.unwrap()
    }

    /// JSON merge patch of a Service (spec and metadata).
    pub async fn patch_service(&self, ns: &str, name: &str, v: Value) -> Service {
        self.services(ns).patch(name, &PatchParams::default(), &Patch::Merge(&v)).await.unwrap()
    }

    /// JSON merge patch of a pool (`blocks` is replaced as a whole).
    pub async fn patch_pool(&self, name: &str, v: Value) -> LoadBalancerIPPool {
        self.pools().patch(name, &PatchParams::default(), &Patch::Merge(&v)).await.unwrap()
    }

    pub async fn delete_service(&self, ns: &str, name: &str) {
        self.services(ns).delete(name, &DeleteParams::default()).await.unwrap();
    }

    pub async fn delete_pool(&self, name: &str) {
        self.pools().delete(name, &DeleteParams::default()).await.unwrap();
    }

    /// Every Service's ingress, keyed `ns/name`.
    pub async fn addresses(&self) -> Addresses {
        let all: Api<Service> = Api::all(self.client.clone());
        all.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|s| {
                let key = format!(
                    "{}/{}",
                    s.metadata.namespace.as_deref().unwrap_or_default(),
                    s.metadata.name.as_deref().unwrap_or_default()
                );
                (key, ingress(s))
            })
            .collect()
    }

    /// `events.k8s.io/v1` Events in a namespace.
    pub async fn events(&self, ns: &str) -> Vec<k8s_openapi::api::events::v1::Event> {
        let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(self.client.clone(), ns);
        api.list(&ListParams::default()).await.unwrap().items
    }

    /// Waits until the Service's `ferrolb.io/IPAMRequestSatisfied` has this status and reason.
    pub async fn wait_condition(&self, ns: &str, name: &str, status: &str, reason: &str) -> Service {
        let api = self.services(ns);
        wait_for(
            &format!("{ns}/{name} condition {status}/{reason}"),
            || async { api.get(name).await.unwrap() },
            |s| condition(s).is_some_and(|c| c.0 == status && c.1 == reason),
        )
        .await
    }

    /// Waits until the pool satisfies `check`.
    pub async fn wait_pool(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&LoadBalancerIPPool) -> bool,
    ) -> LoadBalancerIPPool {
        let api = self.pools();
        wait_for(&format!("pool {name}: {what}"), || async { api.get(name).await.unwrap() }, check).await
    }

    /// Waits until every listed Service (`ns/name`) is satisfied with `n` addresses (`0`: any
    /// number but none) and shows `ferrolb.io/allocated-from-pool`.
    pub async fn all_satisfied(&self, keys: &[String], n: usize, secs: u64) -> Addresses {
        let all: Api<Service> = Api::all(self.client.clone());
        let svcs = wait_for_within(
            secs,
            &format!("{} Services satisfied", keys.len()),
            || async { all.list(&ListParams::default()).await.unwrap().items },
            |items: &Vec<Service>| {
                keys.iter().all(|k| {
                    items.iter().any(|s| {
                        let len = ingress(s).len();
                        key_of(s) == *k
                            && (len == n || (n == 0 && len > 0))
                            && condition(s).is_some_and(|c| c.0 == "True")
                            && allocated_from(s).is_some()
                    })
                })
            },
        )
        .await;
        svcs.iter().filter(|s| keys.contains(&key_of(s))).map(|s| (key_of(s), ingress(s))).collect()
    }
}

/// `ns/name` of a Service.
pub fn key_of(s: &Service) -> String {
    format!(
        "{}/{}",
        s.metadata.namespace.as_deref().unwrap_or_default(),
        s.metadata.name.as_deref().unwrap_or_default()
    )
}

/// `(status, reason, message)` of a pool condition.
pub fn pool_condition(p: &LoadBalancerIPPool, type_: &str) -> Option<(String, String, String)> {
    p.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// `(total, used, available)` of a pool's status.
pub fn pool_counts(p: &LoadBalancerIPPool) -> (Option<&str>, Option<&str>, Option<&str>) {
    match p.status.as_ref() {
        Some(s) => (s.ips_total.as_deref(), s.ips_used.as_deref(), s.ips_available.as_deref()),
        None => (None, None, None),
    }
}

/// Whether `ip` lies inside `net` (e.g. `198.51.100.64/28`).
pub fn in_net(ip: &str, net: &str) -> bool {
    let net: ipnet::IpNet = net.parse().unwrap();
    ip.parse::<std::net::IpAddr>().is_ok_and(|ip| net.contains(&ip))
}

/// The `ferrolb.io/allocated-from-pool` annotation.
pub fn allocated_from(s: &Service) -> Option<String> {
    s.metadata.annotations.as_ref()?.get("ferrolb.io/allocated-from-pool").cloned()
}

/// Asserts no address shows on two Services.
pub fn assert_unique(addrs: &Addresses) {
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for (svc, ips) in addrs {
        for ip in ips {
            if let Some(other) = owner.insert(ip, svc) {
                panic!("{ip} shows on both {other} and {svc}: {addrs:#?}");
            }
        }
    }
}

/// `patch` requests on a resource's subresource (`""` for the main resource).
pub fn patches(c: &kube_sim::admin::Counters, resource: &str, subresource: &str) -> u64 {
    c.requests
        .iter()
        .filter(|e| e.verb == "patch" && e.resource == resource && e.subresource == subresource)
        .map(|e| e.count)
        .sum()
}

/// Writes (create/update/patch/delete) on a resource, any subresource.
pub fn writes(c: &kube_sim::admin::Counters, resource: &str) -> u64 {
    c.writes(Some(resource))
}

/// Difference of two counter snapshots for one (verb, resource, subresource).
pub fn delta(
    before: &kube_sim::admin::Counters,
    after: &kube_sim::admin::Counters,
    f: impl Fn(&kube_sim::admin::Counters) -> u64,
) -> u64 {
    f(after) - f(before)
}

/// Records, in the background, every distinct non-empty ingress each Service shows: a Service
/// with more than one entry had an address moved.
pub struct Tracker {
    seen: Arc<Mutex<BTreeMap<String, Vec<Vec<String>>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Tracker {
    pub fn start(env: &Env) -> Self {
        let seen: Arc<Mutex<BTreeMap<String, Vec<Vec<String>>>>> = Arc::default();
        let all: Api<Service> = Api::all(env.client.clone());
        let s = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Ok(list) = all.list(&ListParams::default()).await {
                    let mut seen = s.lock().unwrap();
                    for svc in &list.items {
                        let ips = ingress(svc);
                        if ips.is_empty() {
                            continue;
                        }
                        let e = seen.entry(key_of(svc)).or_default();
                        if e.last() != Some(&ips) {
                            e.push(ips);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Self { seen, task }
    }

    /// Stops and asserts that no Service's addresses changed once it had some, except by
    /// growing (an address appended while a Service fills up, e.g. `ip-count`).
    pub fn assert_no_moves(self) {
        self.task.abort();
        let seen = self.seen.lock().unwrap();
        for (svc, history) in seen.iter() {
            for w in history.windows(2) {
                assert!(w[1].starts_with(&w[0]), "{svc} moved: {history:?}");
            }
        }
    }
}
