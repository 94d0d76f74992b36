//! Convergence and restart of the IPAM controller against kube-sim (both in this process, on the
//! same 2 cores), through the real `kube` client:
//! 1. N LoadBalancer Services created while the controller runs: time until all are satisfied,
//!    and the API requests it took, by verb.
//! 2. The controller restarted with those N satisfied Services: time until it is ready (caches
//!    listed, state rebuilt), and how many addresses changed (must be 0).
//!
//! `cargo bench -p ferrolb-ipam --bench convergence` (N from `FERROLB_BENCH_SERVICES`, default 10000).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ferrolb_api::LoadBalancerIPPool;
use ferrolb_ipam::adapter::{self, Settings};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube_sim::{KubeSim, Options};
use serde_json::json;
use tokio::sync::watch;

mod common;
use common::addresses;

struct Running {
    ready: watch::Receiver<bool>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), adapter::Error>>,
}

fn start(client: kube::Client) -> Running {
    let (_leader_tx, leader_rx) = watch::channel(ferrolb_ipam::adapter::Leadership::fixed(true));
    let (ready_tx, ready) = watch::channel(false);
    let (shutdown, shutdown_rx) = watch::channel(false);
    // The sender must outlive the controller: a closed leadership channel stops it.
    std::mem::forget(_leader_tx);
    let task = tokio::spawn(adapter::run(client, Settings::default(), leader_rx, ready_tx, shutdown_rx));
    Running { ready, shutdown, task }
}

fn print_counters(sim: &KubeSim) {
    let c = sim.counters();
    let mut by_verb: BTreeMap<String, u64> = BTreeMap::new();
    for e in &c.requests {
        let res = if e.subresource.is_empty() {
            e.resource.clone()
        } else {
            format!("{}/{}", e.resource, e.subresource)
        };
        *by_verb.entry(format!("{} {}", e.verb, res)).or_default() += e.count;
    }
    for (k, v) in by_verb {
        println!("    {k:<40} {v}");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let n: usize =
        std::env::var("FERROLB_BENCH_SERVICES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let sim = KubeSim::start(Options::default()).await?;
    let client = sim.client().await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in ferrolb_api::crd::all() {
        crds.create(&PostParams::default(), &crd).await?;
    }
    let pool: LoadBalancerIPPool = serde_json::from_value(json!({
        "apiVersion": "ferrolb.io/v1alpha1", "kind": "LoadBalancerIPPool", "metadata": {"name": "bench"},
        "spec": {"blocks": [{"cidr": "198.51.0.0/16"}]}}))?;
    Api::<LoadBalancerIPPool>::all(client.clone()).create(&PostParams::default(), &pool).await?;

    let mut ctl = start(client.clone());
    while !*ctl.ready.borrow_and_update() {
        ctl.ready.changed().await?;
    }
    sim.admin().await?.reset_counters().await?;

    println!("convergence: {n} LoadBalancer Services");
    let t0 = Instant::now();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    futures::stream::iter(0..n)
        .map(|i| {
            let services = services.clone();
            async move {
                let s: Service = serde_json::from_value(json!({"metadata": {"name": format!("svc-{i}")},
                    // NodePorts are left out: a cluster has only 2768 of them, fewer than the Services here.
                    "spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "ports": [{"port": 80}]}}))
                .expect("valid");
                services.create(&PostParams::default(), &s).await.map(drop)
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let created = t0.elapsed();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let done = addresses(&sim).values().filter(|ips| !ips.is_empty()).count();
        if done == n {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "only {done} of {n} satisfied after 300 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let converged = t0.elapsed();
    let before = addresses(&sim);
    let distinct: std::collections::BTreeSet<&String> = before.values().flatten().collect();
    anyhow::ensure!(distinct.len() == n, "{} distinct addresses for {n} Services", distinct.len());
    println!("  creates finished after      {:>8.2} s", created.as_secs_f64());
    println!("  all satisfied after         {:>8.2} s", converged.as_secs_f64());
    println!("  requests during convergence (by verb and resource, incl. the {n} creates):");
    print_counters(&sim);

    println!("restart: controller stopped and started with {n} satisfied Services");
    let _ = ctl.shutdown.send(true);
    let _ = ctl.task.await;
    sim.admin().await?.reset_counters().await?;
    let t1 = Instant::now();
    let mut ctl = start(client.clone());
    while !*ctl.ready.borrow_and_update() {
        ctl.ready.changed().await?;
    }
    let ready = t1.elapsed();
    // Give it time to write anything it wanted to write, then compare.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = addresses(&sim);
    let changed = before.iter().filter(|(k, v)| after.get(*k) != Some(v)).count();
    println!("  ready after                 {:>8.2} s", ready.as_secs_f64());
    println!("  addresses changed           {changed:>8}");
    println!("  requests during restart (by verb and resource):");
    print_counters(&sim);
    let _ = ctl.shutdown.send(true);
    let _ = ctl.task.await;
    anyhow::ensure!(changed == 0, "{changed} addresses moved on restart");
    Ok(())
}
