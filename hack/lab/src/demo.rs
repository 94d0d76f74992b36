//! `ferrolb-lab demo`: three nodes, kube-sim, the IPAM controller and three announcers; a pool, a
//! policy and a LoadBalancer Service; traffic through the VIP; the leader's announcer killed; traffic
//! moving to another node.

use crate::cluster::{self, ClusterInfo, ClusterOptions, SYSTEM_NAMESPACE};
use crate::probe::{self, ProbeOptions};
use crate::{INTERRUPTED, Lab, check_interrupted};
use anyhow::{Context, Result, bail};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub nodes: u8,
    /// Leave the lab up at the end (and after an error).
    pub keep: bool,
    pub cluster: ClusterOptions,
    /// How long to wait for the address, the leader, and the takeover.
    pub timeout: Duration,
    /// The BGP demo ([`crate::demo_bgp`]) instead of the L2 one.
    pub bgp: bool,
}

pub(crate) fn step(n: u32, text: &str) {
    println!("\n[{n}] {text}");
}

pub(crate) fn say(text: &str) {
    println!("    {text}");
}

/// Runs the demo; tears the lab down at the end, after an error and after Ctrl-C (unless `keep`).
pub fn demo(lab: &Lab, self_exe: &Path, opts: &DemoOptions) -> Result<()> {
    let result = if opts.bgp { crate::demo_bgp::run(lab, self_exe, opts) } else { run(lab, self_exe, opts) };
    if let Err(e) = &result {
        println!("\nThe demo failed: {e:#}");
        if let Ok(Some(state)) = crate::LabState::load(lab) {
            for p in &state.processes {
                let tail = cluster::log_tail(&p.log, 8);
                if !tail.is_empty() && !p.role.starts_with("http-") {
                    println!("--- last lines of {} ---\n{tail}", p.log.display());
                }
            }
        }
    }
    if opts.keep {
        println!("\nThe lab stays up (--keep). Try:");
        let exe = self_exe.display();
        let from = if opts.bgp { "outside" } else { "client" };
        println!("  {exe} --prefix {} exec {from} -- {exe} http-get http://198.51.100.128/", lab.prefix);
        if opts.bgp {
            println!("  {exe} --prefix {} exec router -- ip route show 198.51.100.128", lab.prefix);
            println!("  {exe} --prefix {} kubectl -- get bgpsessionstates", lab.prefix);
        }
        println!("  {exe} --prefix {} kubectl -- get svc,leases -A", lab.prefix);
        println!(
            "  {exe} --prefix {} exec client -- {exe} probe --target 198.51.100.128 --for 5s",
            lab.prefix
        );
        println!("Remove it with: {exe} --prefix {} down", lab.prefix);
    } else {
        step(9, "Tearing the lab down");
        // A Ctrl-C during the demo must not stop the cleanup.
        INTERRUPTED.store(false, Ordering::SeqCst);
        crate::down(lab).context("tearing the lab down")?;
        say("done: namespaces, processes and state removed");
    }
    result
}

fn run(lab: &Lab, self_exe: &Path, opts: &DemoOptions) -> Result<()> {
    let t0 = Instant::now();
    step(
        1,
        &format!(
            "Building the lab: a switch, {} nodes and a client, each in its own network namespace",
            opts.nodes
        ),
    );
    let state = cluster::up_cluster(lab, opts.nodes, self_exe, &opts.cluster)?;
    let info = state.cluster.clone().context("cluster did not record its info")?;
    say(&format!("kube-sim (API server) in {} at {}", lab.switch_ns(), info.server));
    say("ferrolb-ipam in the switch namespace; ferrolb-announcer on every node");
    for i in 1..=opts.nodes {
        say(&format!(
            "node{i}: {}  LAN eth0 {} / {}, management mgmt0 {}",
            lab.node_ns(i),
            Lab::node_v4(i),
            Lab::node_v6(i),
            Lab::node_mgmt_v4(i)
        ));
    }
    say(&format!("kubeconfig: {}", info.kubeconfig.display()));

    let rt = info.runtime()?;
    step(
        2,
        "Creating LoadBalancerIPPool `demo` (198.51.100.128/25, 2001:db8:100::1000-2001:db8:100::1fff) and L2AnnouncementPolicy `demo` (interfaces ^eth0$)",
    );
    let i2 = info.clone();
    rt.block_on(async move { create_pool_and_policy(&i2).await })??;
    say("created");

    step(3, "Creating LoadBalancer Service default/web (port 80)");
    let (i2, timeout) = (info.clone(), opts.timeout);
    let vip: IpAddr = rt.block_on(async move { create_service_and_wait(&i2, timeout).await })??;
    say(&format!("ferrolb-ipam assigned {vip} (status.loadBalancer.ingress)"));

    let lease_name = cluster::service_lease_name("default", "web", vip);
    step(4, &format!("Waiting for an announcer to take Lease {SYSTEM_NAMESPACE}/{lease_name}"));
    let (i2, l2) = (info.clone(), lease_name.clone());
    let leader = rt.block_on(async move { wait_holder(&i2, &l2, None, timeout).await })??;
    say(&format!("leader: {leader}"));
    let leader_n = Lab::node_number(&leader).with_context(|| format!("unexpected holder {leader:?}"))?;

    step(5, &format!("HTTP GET http://{vip}/ from the client namespace (what curl would do)"));
    let answered = wait_answer(lab, self_exe, vip, opts.timeout)?;
    say(&format!("answered by: {answered}"));
    if answered != leader {
        say(&format!("(the Lease says {leader}; the client still has an older neighbour entry)"));
    }

    step(6, &format!("Killing {leader}'s announcer (SIGKILL) while the client sends a request every 10 ms"));
    let probe = probe::start_probe(
        lab,
        self_exe,
        &ProbeOptions {
            timeout: Duration::from_millis(200),
            stop_after_switch: Some(Duration::from_secs(2)),
            ..ProbeOptions::new(vip, Duration::from_millis(10), opts.timeout)
        },
    )?;
    std::thread::sleep(Duration::from_secs(1));
    check_interrupted()?;
    let pid = cluster::kill_announcer(lab, leader_n, nix::sys::signal::Signal::SIGKILL)?;
    let killed_at = Instant::now();
    say(&format!("killed ferrolb-announcer pid {pid} in {}", lab.node_ns(leader_n)));

    step(7, "Waiting for another announcer to take over");
    let (i2, l2, old) = (info.clone(), lease_name.clone(), leader.clone());
    let new_leader = rt.block_on(async move { wait_holder(&i2, &l2, Some(&old), timeout).await })??;
    say(&format!(
        "Lease holder now: {new_leader} ({:.1} s after the kill)",
        killed_at.elapsed().as_secs_f64()
    ));
    let gap = probe.wait()?;
    drop(rt);

    step(8, "What the client saw");
    let r = &gap.report;
    say(&format!("{} requests sent, {} answered", r.sent, r.answered));
    say(&format!("answering nodes in order: {}", r.node_sequence().join(" -> ")));
    let kill_ms = killed_at.duration_since(gap.started).as_secs_f64() * 1000.0;
    match r.answers.iter().find(|(t, n)| *t > kill_ms && *n != leader) {
        Some((t, n)) => say(&format!("{n} answers from {:.0} ms after the kill", t - kill_ms)),
        None => say(&format!("no other node answered within the probe ({:.1} s)", r.ran_ms / 1000.0)),
    }
    say("(the dead announcer's node keeps serving the VIP it still receives, as kube-proxy would; traffic");
    say(" moves once the new leader's gratuitous ARP/NA updates the client's neighbour entry)");
    say(&format!(
        "longest gap between two answered requests: {:.0} ms (from {:.0} ms to {:.0} ms; the kill was at {:.0} ms)",
        r.longest_gap_ms, r.gap_from_ms, r.gap_to_ms, kill_ms
    ));
    if !r.errors.is_empty() {
        let errs: Vec<String> = r.errors.iter().map(|(e, n)| format!("{n}x {e}")).collect();
        say(&format!("failed requests: {}", errs.join(", ")));
    }
    say(&format!("demo took {:.1} s", t0.elapsed().as_secs_f64()));
    if r.last_node() == Some(leader.as_str()) {
        bail!("traffic did not move away from {leader} (its announcer is dead)");
    }
    Ok(())
}

pub(crate) fn cr_api(client: kube::Client, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(ferrolb_api::names::GROUP, ferrolb_api::names::VERSION, kind);
    Api::all_with(client, &ApiResource::from_gvk_with_plural(&gvk, plural))
}

async fn create_pool_and_policy(info: &ClusterInfo) -> Result<()> {
    let client = info.client().await?;
    let pool: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "ferrolb.io/v1alpha1", "kind": "LoadBalancerIPPool",
        "metadata": {"name": "demo"},
        "spec": {"blocks": [
            {"cidr": "198.51.100.128/25"},
            {"start": "2001:db8:100::1000", "stop": "2001:db8:100::1fff"},
        ]},
    }))?;
    cr_api(client.clone(), "LoadBalancerIPPool", "loadbalancerippools")
        .create(&PostParams::default(), &pool)
        .await
        .context("creating LoadBalancerIPPool demo")?;
    let policy: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "ferrolb.io/v1alpha1", "kind": "L2AnnouncementPolicy",
        "metadata": {"name": "demo"},
        "spec": {"interfaces": ["^eth0$"]},
    }))?;
    cr_api(client, "L2AnnouncementPolicy", "l2announcementpolicies")
        .create(&PostParams::default(), &policy)
        .await
        .context("creating L2AnnouncementPolicy demo")?;
    Ok(())
}

/// Creates LoadBalancer Service default/web (port 80) and waits for its first address.
pub async fn create_service_and_wait(info: &ClusterInfo, timeout: Duration) -> Result<IpAddr> {
    let client = info.client().await?;
    let api: Api<Service> = Api::namespaced(client, "default");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"}]},
    }))?;
    api.create(&PostParams::default(), &svc).await.context("creating Service default/web")?;
    let start = tokio::time::Instant::now();
    loop {
        let svc = api.get("web").await?;
        let ip = svc
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|lb| lb.ingress)
            .and_then(|i| i.into_iter().find_map(|i| i.ip));
        if let Some(ip) = ip {
            return ip.parse().with_context(|| format!("ingress {ip:?} is not an IP"));
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        if start.elapsed() > timeout {
            bail!(
                "Service default/web got no address within {timeout:?} (is ferrolb-ipam running? see its log)"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the Lease has a holder other than `not`.
async fn wait_holder(info: &ClusterInfo, name: &str, not: Option<&str>, timeout: Duration) -> Result<String> {
    let client = info.client().await?;
    let api: Api<Lease> = Api::namespaced(client, SYSTEM_NAMESPACE);
    let start = tokio::time::Instant::now();
    loop {
        let holder = api
            .get_opt(name)
            .await?
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
            .filter(|h| !h.is_empty());
        if let Some(h) = holder
            && Some(h.as_str()) != not
        {
            return Ok(h);
        }
        if INTERRUPTED.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        if start.elapsed() > timeout {
            bail!("Lease {SYSTEM_NAMESPACE}/{name} got no new holder within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// GET the VIP from the client namespace until a node answers.
fn wait_answer(lab: &Lab, self_exe: &Path, vip: IpAddr, timeout: Duration) -> Result<String> {
    let start = Instant::now();
    let url = probe::url_for(vip, 80);
    loop {
        check_interrupted()?;
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &lab.client_ns()])
            .arg(self_exe)
            .args(["http-get", "--timeout-ms", "1000", &url])
            .output()?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).trim().to_string());
        }
        if start.elapsed() > timeout {
            bail!("{url} did not answer within {timeout:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
