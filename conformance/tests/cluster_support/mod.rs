//! The harness of the IPAM suite (`tests/ipam.rs`): a cluster where FerroLB is installed, reached
//! through a kubeconfig only, and one namespace per scenario that is removed afterwards, with
//! everything the scenario created, whether it passed or failed.
//!
//! - With `FERROLB_CONFORMANCE_KUBECONFIG` set, the cluster is that one: FerroLB must be installed
//!   (CRDs and a running `ferrolb-ipam`). Nothing is installed or changed outside what the
//!   scenarios create.
//! - Without it, each test starts its own "existing cluster": kube-sim with FerroLB's CRDs and the
//!   `ferrolb-ipam` binary running against it as a separate process, and then talks to it through
//!   its kubeconfig exactly as it would to any other cluster.
//!
//! Isolation on a shared cluster: every scenario works in its own namespace (`ferrolb-conformance-<index>-<run>`);
//! its pools are named after it, select only Services of that namespace, and take their addresses
//! from the scenario's own /28 of `FERROLB_CONFORMANCE_RANGE` (default `203.0.113.0/24`, which must
//! not overlap the cluster's pools); its Services ([`lb`]) have `spec.loadBalancerClass:
//! ferrolb.io/l2` (so k3s ServiceLB leaves them alone) and name their pool. Pools and namespaces
//! carry the label [`RUN_LABEL`], so leftovers of a killed run are found with
//! `kubectl delete namespace,lbippool -l ferrolb.io/conformance-run`.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::future::Future;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ferrolb_api::LoadBalancerIPPool;
use ferrolb_testkit::fixtures::{PoolFixture as _, ServiceFixture as _, match_labels};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::{Discovery, Scope, verbs};
use kube::{Client, ResourceExt as _};
use serde_json::{Value, json};

/// The kubeconfig of an existing cluster to run against.
pub const KUBECONFIG_ENV: &str = "FERROLB_CONFORMANCE_KUBECONFIG";
/// The kubeconfig context to use (default: the current context).
pub const CONTEXT_ENV: &str = "FERROLB_CONFORMANCE_CONTEXT";
/// The IPv4 range (a /24 or larger prefix) the scenarios' pools are carved from.
pub const RANGE_ENV: &str = "FERROLB_CONFORMANCE_RANGE";
/// On every namespace and pool the suite creates: the run's id.
pub const RUN_LABEL: &str = "ferrolb.io/conformance-run";
/// How long a scenario waits for the controller (a real cluster is slower than kube-sim).
pub const PATIENCE: Duration = Duration::from_secs(30);
/// How long a whole scenario may take.
const SCENARIO_LIMIT: Duration = Duration::from_secs(180);
/// How long cleanup waits for the namespace to be gone.
const CLEANUP_LIMIT: Duration = Duration::from_secs(120);

/// A cluster with FerroLB installed, reached through a kubeconfig.
pub struct Cluster {
    pub client: Client,
    pub kubeconfig: PathBuf,
    /// Set when this harness started the cluster (kube-sim and `ferrolb-ipam`); stopped on drop.
    own: Option<OwnCluster>,
}

/// kube-sim and a `ferrolb-ipam` process: an "existing cluster" for the tests.
pub struct OwnCluster {
    pub sim: kube_sim::KubeSim,
    ipam: std::process::Child,
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = self.ipam.kill();
        let _ = self.ipam.wait();
        self.sim.stop();
    }
}

impl Cluster {
    /// The cluster of `FERROLB_CONFORMANCE_KUBECONFIG`, else one started here.
    pub async fn from_env() -> Self {
        match std::env::var_os(KUBECONFIG_ENV) {
            Some(path) => Self::connect(Path::new(&path)).await,
            None => Self::connect_own(OwnCluster::start().await).await,
        }
    }

    /// An existing cluster, by its kubeconfig (the context of `FERROLB_CONFORMANCE_CONTEXT`, else
    /// the current one).
    pub async fn connect(kubeconfig: &Path) -> Self {
        use kube::config::{KubeConfigOptions, Kubeconfig};
        let fail = |e: &dyn std::fmt::Display| -> ! {
            panic!("cannot use kubeconfig {}: {e}", kubeconfig.display())
        };
        let options =
            KubeConfigOptions { context: std::env::var(CONTEXT_ENV).ok(), ..KubeConfigOptions::default() };
        let kc = Kubeconfig::read_from(kubeconfig).unwrap_or_else(|e| fail(&e));
        let config = kube::Config::from_custom_kubeconfig(kc, &options).await.unwrap_or_else(|e| fail(&e));
        let client = Client::try_from(config).unwrap_or_else(|e| fail(&e));
        let cluster = Self { client, kubeconfig: kubeconfig.to_path_buf(), own: None };
        cluster.preflight().await;
        cluster
    }

    /// A cluster started by [`OwnCluster::start`], reached through its kubeconfig.
    pub async fn connect_own(own: OwnCluster) -> Self {
        let mut cluster = Self::connect(own.sim.kubeconfig_path()).await;
        cluster.own = Some(own);
        cluster
    }

    /// Fails loudly when FerroLB is not installed: the suite never skips.
    async fn preflight(&self) {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        for want in ferrolb_api::crd::all() {
            let name = want.metadata.name.unwrap_or_default();
            crds.get(&name).await.unwrap_or_else(|e| {
                panic!("FerroLB's CRD {name} is not readable in the cluster ({e}); install FerroLB first")
            });
        }
    }

    /// Every object of every listable kind, as `(group/kind, namespace, name)`: to check that a
    /// run left nothing behind. Events are left out (the cluster writes its own all the time).
    pub async fn inventory(&self) -> BTreeSet<(String, String, String)> {
        let discovery = Discovery::new(self.client.clone()).run().await.expect("API discovery");
        let mut out = BTreeSet::new();
        for group in discovery.groups() {
            for (ar, caps) in group.recommended_resources() {
                if !caps.supports_operation(verbs::LIST) || ar.kind == "Event" {
                    continue;
                }
                let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
                let list = api
                    .list(&ListParams::default())
                    .await
                    .unwrap_or_else(|e| panic!("listing {}: {e}", ar.plural));
                for o in list.items {
                    let ns = if caps.scope == Scope::Namespaced {
                        o.namespace().unwrap_or_default()
                    } else {
                        String::new()
                    };
                    out.insert((format!("{}/{}", ar.group, ar.kind), ns, o.name_any()));
                }
            }
        }
        out
    }
}

impl OwnCluster {
    /// kube-sim with FerroLB's CRDs and the namespace `ferrolb-system`, and the `ferrolb-ipam`
    /// binary (from the target directory) running against it, leading once its Lease is written.
    pub async fn start() -> Self {
        let sim = kube_sim::KubeSim::start(kube_sim::Options::default()).await.expect("starting kube-sim");
        let client = sim.client().await.expect("kube-sim client");
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in ferrolb_api::crd::all() {
            crds.create(&PostParams::default(), &crd).await.expect("creating a CRD");
        }
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "ferrolb-system"}})).unwrap();
        Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.expect("namespace");
        let dir = ferrolb_lab::cluster::default_bin_dir().expect("locating the target directory");
        let bin = ferrolb_lab::cluster::find_binary(&dir, ferrolb_lab::cluster::IPAM)
            .unwrap_or_else(|e| panic!("{e:#}\nthe IPAM suite runs the workspace's ferrolb-ipam binary"));
        let ipam = std::process::Command::new(bin)
            .arg("--kubeconfig")
            .arg(sim.kubeconfig_path())
            .args(["--namespace", "ferrolb-system", "--metrics-addr", "127.0.0.1:0"])
            .env_remove("KUBECONFIG")
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("starting ferrolb-ipam");
        Self { sim, ipam }
    }
}

/// One scenario's slice of the cluster: its namespace, pools and addresses.
#[derive(Clone)]
pub struct Ctx {
    pub client: Client,
    /// The scenario's namespace (created by [`run`]).
    pub ns: String,
    /// Names the scenario's pools (`<ns>-<suffix>`).
    prefix: String,
    run_id: String,
    /// The scenario's first address (of 16).
    base: Ipv4Addr,
}

static RUNS: AtomicU32 = AtomicU32::new(0);

/// Runs `scenario` in a new namespace of `cluster` with the `index`th /28 of the range, then
/// removes everything it created (Services, pools, the namespace), also when it panicked or
/// timed out; then passes the panic on.
pub async fn run<F, Fut>(cluster: &Cluster, index: u8, name: &str, scenario: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    assert!(index < 16, "a /24 has 16 /28s: scenario index {index} is too large");
    let run_id = format!(
        "{}-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis()
            % 1_000_000
    );
    // Scenario names are too long for a namespace name (63 characters): the index says which.
    let ns = format!("ferrolb-conformance-{index}-{run_id}");
    eprintln!("scenario {name}: namespace {ns}, addresses {}/28", block(index));
    let ctx = Ctx { client: cluster.client.clone(), prefix: ns.clone(), ns, run_id, base: block(index) };
    ctx.create_namespace().await;
    let task = tokio::spawn(tokio::time::timeout(SCENARIO_LIMIT, scenario(ctx.clone())));
    let outcome = task.await;
    ctx.cleanup().await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("scenario {name} did not finish within {SCENARIO_LIMIT:?}"),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("scenario {name}: {e}"),
    }
}

/// The first address of the `index`th /28 of the range.
fn block(index: u8) -> Ipv4Addr {
    let range = std::env::var(RANGE_ENV).unwrap_or_else(|_| "203.0.113.0/24".into());
    let (addr, len) =
        range.split_once('/').unwrap_or_else(|| panic!("{RANGE_ENV}={range:?} is not a prefix"));
    let addr: Ipv4Addr = addr.parse().unwrap_or_else(|e| panic!("{RANGE_ENV}={range:?}: {e}"));
    let len: u8 = len.parse().unwrap_or_else(|e| panic!("{RANGE_ENV}={range:?}: {e}"));
    assert!(len <= 24, "{RANGE_ENV}={range:?}: the suite needs a /24 or larger");
    Ipv4Addr::from((u32::from(addr) & !0xff) + u32::from(index) * 16)
}

impl Ctx {
    async fn create_namespace(&self) {
        let ns: Namespace = serde_json::from_value(
            json!({"metadata": {"name": self.ns, "labels": {RUN_LABEL: self.run_id}}}),
        )
        .unwrap();
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {}: {e}", self.ns));
    }

    /// Deletes the Services, the pools and the namespace, and waits until they are gone. Errors
    /// are printed, not raised: cleanup goes as far as it can.
    async fn cleanup(&self) {
        let services = self.services();
        match services.list(&ListParams::default()).await {
            Ok(list) => {
                for s in list.items {
                    if let Err(e) = services.delete(&s.name_any(), &DeleteParams::default()).await {
                        eprintln!("cleanup: deleting Service {}/{}: {e}", self.ns, s.name_any());
                    }
                }
            }
            Err(e) => eprintln!("cleanup: listing Services in {}: {e}", self.ns),
        }
        let pools = self.pools();
        let mine = ListParams::default().labels(&format!("{RUN_LABEL}={}", self.run_id));
        match pools.list(&mine).await {
            Ok(list) => {
                for p in list.items {
                    if let Err(e) = pools.delete(&p.name_any(), &DeleteParams::default()).await {
                        eprintln!("cleanup: deleting LoadBalancerIPPool {}: {e}", p.name_any());
                    }
                }
            }
            Err(e) => eprintln!("cleanup: listing pools of run {}: {e}", self.run_id),
        }
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        if let Err(e) = namespaces.delete(&self.ns, &DeleteParams::default()).await {
            eprintln!("cleanup: deleting namespace {}: {e}", self.ns);
        }
        let deadline = tokio::time::Instant::now() + CLEANUP_LIMIT;
        loop {
            let ns_gone = matches!(namespaces.get_opt(&self.ns).await, Ok(None));
            let pools_gone = pools.list(&mine).await.is_ok_and(|l| l.items.is_empty());
            if ns_gone && pools_gone {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                eprintln!(
                    "cleanup: namespace {} or pools labelled {RUN_LABEL}={} still there after {CLEANUP_LIMIT:?}",
                    self.ns, self.run_id
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn services(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn pools(&self) -> Api<LoadBalancerIPPool> {
        Api::all(self.client.clone())
    }

    /// The `n`th address of the scenario's /28.
    pub fn ip(&self, n: u8) -> Ipv4Addr {
        assert!(n < 16);
        Ipv4Addr::from(u32::from(self.base) + u32::from(n))
    }

    /// The full name of the pool `suffix`.
    pub fn pool_name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.prefix)
    }

    /// Creates `pool` as the scenario's pool of its name (see [`Ctx::pool_unchecked`]), waits
    /// until the controller has counted its addresses and checks that it conflicts with no pool
    /// of the cluster; returns its full name.
    pub async fn pool(&self, pool: LoadBalancerIPPool) -> String {
        let name = self.pool_unchecked(pool).await;
        let p = self
            .wait_pool(&name, "its status", |p| p.status.as_ref().is_some_and(|s| s.ips_total.is_some()))
            .await;
        let conditions = p.status.map(|s| s.conditions).unwrap_or_default();
        if let Some(c) = conditions
            .iter()
            .find(|c| c.type_ == ferrolb_api::names::conditions::POOL_CONFLICT && c.status == "True")
        {
            panic!(
                "pool {name} overlaps a pool of the cluster ({}): choose a free /24 with {RANGE_ENV}",
                c.message
            );
        }
        name
    }

    /// Creates `pool` without waiting for anything: named [`Ctx::pool_name`] of its name,
    /// labelled with the run, and selecting this namespace's Services unless it has a
    /// `serviceSelector` of its own. Returns its full name.
    pub async fn pool_unchecked(&self, pool: LoadBalancerIPPool) -> String {
        let name = self.pool_name(&pool.name_any());
        let mut pool = pool.with_labels(&[(RUN_LABEL, &self.run_id)]);
        pool.metadata.name = Some(name.clone());
        if pool.spec.service_selector.is_none() {
            pool = pool.with_service_selector(match_labels(&[("io.kubernetes.service.namespace", &self.ns)]));
        }
        self.pools()
            .create(&PostParams::default(), &pool)
            .await
            .unwrap_or_else(|e| panic!("creating pool {name}: {e}"));
        name
    }

    /// Polls the pool until `check` holds ([`PATIENCE`] at most); returns it.
    pub async fn wait_pool(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&LoadBalancerIPPool) -> bool,
    ) -> LoadBalancerIPPool {
        let api = self.pools();
        wait(
            &format!("pool {name}: {what}"),
            || async { api.get(name).await.ok() },
            |p| p.as_ref().is_some_and(&check),
        )
        .await
        .expect("checked")
    }

    /// Creates `svc` (e.g. an [`lb`]) in the scenario's namespace.
    pub async fn service(&self, svc: Service) -> Service {
        self.services()
            .create(&PostParams::default(), &svc)
            .await
            .unwrap_or_else(|e| panic!("creating Service {}/{}: {e}", self.ns, svc.name_any()))
    }

    /// Polls the Service until `check` holds ([`PATIENCE`] at most); returns it.
    pub async fn wait_service(&self, name: &str, what: &str, check: impl Fn(&Service) -> bool) -> Service {
        let api = self.services();
        wait(
            &format!("Service {}/{name}: {what}", self.ns),
            || async { api.get(name).await.ok() },
            |s| s.as_ref().is_some_and(&check),
        )
        .await
        .expect("checked")
    }

    /// Waits until the Service's `ferrolb.io/IPAMRequestSatisfied` has `status` and `reason`.
    pub async fn wait_condition(&self, name: &str, status: &str, reason: &str) -> Service {
        self.wait_service(name, &format!("condition {status}/{reason}"), |s| {
            condition(s).is_some_and(|c| c.0 == status && c.1 == reason)
        })
        .await
    }

    /// `events.k8s.io/v1` Events about the Service `name`.
    pub async fn events(&self, name: &str) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        let list = api.list(&ListParams::default()).await.expect("listing Events");
        list.items
            .into_iter()
            .filter(|e| {
                e.regarding
                    .as_ref()
                    .is_some_and(|r| r.kind.as_deref() == Some("Service") && r.name.as_deref() == Some(name))
            })
            .collect()
    }

    /// Waits for an Event with `reason` about the Service.
    pub async fn wait_event(&self, name: &str, reason: &str) -> Event {
        wait(
            &format!("an Event {reason} about {}/{name}", self.ns),
            || self.events(name),
            |evs| evs.iter().any(|e| e.reason.as_deref() == Some(reason)),
        )
        .await
        .into_iter()
        .find(|e| e.reason.as_deref() == Some(reason))
        .expect("checked")
    }

    /// JSON merge patch of a Service.
    pub async fn patch_service(&self, name: &str, patch: Value) -> Service {
        self.services()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("patching a Service")
    }

    /// JSON merge patch of a pool (by full name).
    pub async fn patch_pool(&self, name: &str, patch: Value) -> LoadBalancerIPPool {
        self.pools()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("patching a pool")
    }

    pub async fn delete_service(&self, name: &str) {
        self.services().delete(name, &DeleteParams::default()).await.expect("deleting a Service");
    }
}

/// Polls `get` every 100 ms until `check` holds, for [`PATIENCE`] at most; returns the last value.
pub async fn wait<T, F, Fut>(what: &str, get: F, check: impl Fn(&T) -> bool) -> T
where
    F: Fn() -> Fut,
    Fut: Future<Output = T>,
    T: std::fmt::Debug,
{
    ferrolb_testkit::wait_for_every(what, PATIENCE, Duration::from_millis(100), get, check).await
}

/// The IPs of a Service's `status.loadBalancer.ingress`.
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
        .find(|c| c.type_ == ferrolb_api::names::conditions::IPAM_REQUEST_SATISFIED)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// A scenario's LoadBalancer Service: port 80, class `ferrolb.io/l2` (which k3s ServiceLB leaves
/// alone).
pub fn lb(name: &str) -> Service {
    Service::test(name).with_class("ferrolb.io/l2")
}
