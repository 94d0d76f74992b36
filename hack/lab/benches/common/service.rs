//! The lab benches' Service under test: one pool, one policy, one Service `default/web`, its
//! Lease's holder, and the announcers' and the client's view of them (shared by `failover` and
//! `delegate_takeover`).

#![allow(dead_code)] // each bench uses its part

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferrolb_lab::Lab;
use ferrolb_lab::cluster::{ClusterInfo, SYSTEM_NAMESPACE};
use ferrolb_lab::probe::{self, ProbeOptions};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use serde_json::json;

use super::{check_interrupted, create_pool_and_policy};

/// The Service's name (namespace `default`).
pub const SERVICE: &str = "web";

/// Runs `f` on a new thread inside network namespace `ns` (threads it spawns inherit the namespace).
pub fn in_ns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<std::thread::JoinHandle<Result<T>>> {
    let path = format!("/var/run/netns/{ns}");
    let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
    let ns = ns.to_string();
    Ok(std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("entering network namespace {ns}"))?;
        Ok(f())
    }))
}

pub fn join<T>(h: std::thread::JoinHandle<Result<T>>) -> Result<T> {
    h.join().map_err(|_| anyhow::anyhow!("thread panicked"))?
}

/// True when node `i`'s announcer answers `/readyz` with 2xx (asked from inside its namespace).
pub fn announcer_ready(lab: &Lab, i: u8) -> bool {
    in_ns(&lab.node_ns(i), || {
        probe::http_get("http://127.0.0.1:9090/readyz", Duration::from_millis(500)).is_ok()
    })
    .and_then(join)
    .unwrap_or(false)
}

pub fn wait_all_ready(lab: &Lab, nodes: u8, timeout: Duration) -> Result<Duration> {
    let start = Instant::now();
    loop {
        check_interrupted()?;
        if (1..=nodes).all(|i| announcer_ready(lab, i)) {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            let not: Vec<String> =
                (1..=nodes).filter(|i| !announcer_ready(lab, *i)).map(Lab::node_name).collect();
            bail!("announcers not ready within {timeout:?}: {}", not.join(", "));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Pool `bench` (198.51.100.128/25), policy `bench` (`^eth0$`), Service default/web; returns its VIP.
pub async fn setup_service(info: ClusterInfo, timeout: Duration) -> Result<IpAddr> {
    let client = info.client().await?;
    create_pool_and_policy(client.clone(), json!({"cidr": ferrolb_lab::VIP_RANGE_V4})).await?;
    let api: Api<Service> = Api::namespaced(client, "default");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": SERVICE},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"}]},
    }))?;
    api.create(&PostParams::default(), &svc).await.context("creating the Service")?;
    let start = tokio::time::Instant::now();
    loop {
        let ip = api
            .get(SERVICE)
            .await?
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|lb| lb.ingress)
            .and_then(|i| i.into_iter().find_map(|i| i.ip));
        if let Some(ip) = ip {
            return ip.parse().context("ingress is not an IP");
        }
        if start.elapsed() > timeout {
            bail!("the Service got no address within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn lease_holder(api: &Api<Lease>, name: &str) -> Result<Option<String>> {
    Ok(api
        .get_opt(name)
        .await?
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty()))
}

/// Waits until the Lease has the same holder for `stable` in a row; returns it.
pub async fn wait_stable_holder(
    info: ClusterInfo,
    lease: String,
    want: Option<String>,
    stable: Duration,
    timeout: Duration,
) -> Result<String> {
    let api: Api<Lease> = Api::namespaced(info.client().await?, SYSTEM_NAMESPACE);
    let start = tokio::time::Instant::now();
    let mut cur: Option<(String, tokio::time::Instant)> = None;
    loop {
        let h = lease_holder(&api, &lease).await.ok().flatten();
        match (&cur, h) {
            (Some((c, since)), Some(h)) if *c == h => {
                if since.elapsed() >= stable && want.as_ref().is_none_or(|w| *w == h) {
                    return Ok(h);
                }
            }
            (_, Some(h)) => cur = Some((h, tokio::time::Instant::now())),
            (_, None) => cur = None,
        }
        if start.elapsed() > timeout {
            bail!("Lease {lease} not held stably (by {want:?}) within {timeout:?}; last holder {cur:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A short probe: every answer must come from `holder`.
pub fn traffic_stable(lab: &Lab, vip: IpAddr, holder: &str) -> Result<bool> {
    let opts = ProbeOptions::new(vip, Duration::from_millis(20), Duration::from_millis(400));
    let r = join(in_ns(&lab.client_ns(), move || probe::run_probe(&opts))?)?;
    Ok(r.answered > 0 && r.answered == r.sent && r.answers.iter().all(|(_, n)| n == holder))
}
