//! Steady-state API load of the announcers (docs/benchmarks.md, "Announcer API load in the lab").
//!
//! A lab with 5 nodes (kube-sim, `ferrolb-ipam`, one announcer per node), a pool over the lab's IPv6
//! VIP range (2001:db8:100::1000-2001:db8:100::1fff) and IPv6-only LoadBalancer Services: first 100,
//! then 1000 (900 more in the same lab). For each count: the time from the first create until every
//! Service has its address and every (Service, address) Lease has a holder, the holders per node, then
//! a steady-state window (60 s, the bench itself sends nothing meanwhile) with kube-sim's request
//! counters reset at its start: Lease writes per second (create + update + patch on leases; those of
//! the announcers, counted by a Lease watch, apart from the IPAM controller's own Lease) and all
//! requests per second by verb and resource. Target: Lease writes independent of the Service count
//! and ≤ nodes / renew period (5 / 1 s).
//!
//! ```sh
//! cargo build --release -p kube-sim -p ferrolb-ipam -p ferrolb-l2announcer -p ferrolb-lab
//! cargo bench -p ferrolb-lab --bench api_load
//! cargo bench -p ferrolb-lab --bench api_load -- --services 100 --window 10s   # quick check
//! FERROLB_BENCH_JSON=/tmp/api_load.json cargo bench -p ferrolb-lab --bench api_load
//! ```
//!
//! Options (after `--`, or environment): `--services 100,1000` (`FERROLB_BENCH_SERVICES`), `--window
//! 60s` (`FERROLB_BENCH_WINDOW`), `--nodes 5`, `--announcer-arg=--flag=v` (repeat), `--prefix P`
//! (default `flbb<pid>a`). Needs root. The lab is removed at the end, on errors and on Ctrl-C.
//! Under `cargo bench` a missed target exits non-zero (under `cargo test` the smoke run only reports).

use anyhow::{Context, Result, bail};
use ferrolb_lab::cluster::{self, ClusterInfo, ClusterOptions, SYSTEM_NAMESPACE};
use ferrolb_lab::{INTERRUPTED, Lab};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

mod common;
use common::{LabGuard, check_interrupted, create_pool_and_policy, full_run, loadavg, options};

const NAMESPACE: &str = "default";
const LEASE_VERBS: [&str; 3] = ["create", "update", "patch"];

#[derive(Debug)]
struct Args {
    services: Vec<usize>,
    window: Duration,
    nodes: u8,
    announcer_args: Vec<String>,
    prefix: String,
}

fn parse_list(v: &str) -> Result<Vec<usize>> {
    v.split(',').map(|s| s.trim().parse::<usize>().context("service count")).collect()
}

fn parse_args() -> Result<Args> {
    let full = full_run();
    let mut a = Args {
        services: match std::env::var("FERROLB_BENCH_SERVICES") {
            Ok(v) => parse_list(&v)?,
            Err(_) if full => vec![100, 1000],
            Err(_) => vec![10, 30],
        },
        window: match std::env::var("FERROLB_BENCH_WINDOW") {
            Ok(v) => humantime::parse_duration(&v).context("FERROLB_BENCH_WINDOW")?,
            Err(_) if full => Duration::from_secs(60),
            Err(_) => Duration::from_secs(5),
        },
        nodes: if full { 5 } else { 3 },
        announcer_args: Vec::new(),
        prefix: format!("flbb{}a", std::process::id()),
    };
    for (name, value) in options()? {
        match name.as_str() {
            "--services" => a.services = parse_list(&value)?,
            "--window" => a.window = humantime::parse_duration(&value).context("--window")?,
            "--nodes" => a.nodes = value.parse().context("--nodes")?,
            "--announcer-arg" => a.announcer_args.push(value),
            "--prefix" => a.prefix = value,
            other => bail!("unknown option {other}"),
        }
    }
    if a.services.is_empty() || a.services.windows(2).any(|w| w[0] >= w[1]) {
        bail!("--services must be increasing counts (e.g. 100,1000)");
    }
    if *a.services.last().unwrap_or(&0) > 4096 {
        bail!("the lab's IPv6 VIP range holds 4096 addresses");
    }
    Ok(a)
}

fn service_name(i: usize) -> String {
    format!("svc-{i:04}")
}

/// Creates Services `from..to` (IPv6 only), 32 in flight.
async fn create_services(client: kube::Client, from: usize, to: usize) -> Result<()> {
    Ok(ferrolb_testkit::services::create_ipv6(client, NAMESPACE, (from..to).map(service_name), 32).await?)
}

/// Every expected (Service, address) Lease name, from the Services' ingress.
async fn expected_leases(client: kube::Client) -> Result<(usize, Vec<String>)> {
    let api: Api<Service> = Api::namespaced(client, NAMESPACE);
    let mut with_address = 0;
    let mut names = Vec::new();
    for s in api.list(&ListParams::default()).await?.items {
        let name = s.metadata.name.clone().unwrap_or_default();
        let ips: Vec<IpAddr> = s
            .status
            .and_then(|st| st.load_balancer)
            .and_then(|lb| lb.ingress)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| i.ip.and_then(|ip| ip.parse().ok()))
            .collect();
        if !ips.is_empty() {
            with_address += 1;
        }
        for ip in ips {
            names.push(cluster::service_lease_name(NAMESPACE, &name, ip));
        }
    }
    Ok((with_address, names))
}

/// Holder and resourceVersion of every Lease in the system namespace.
async fn leases(client: kube::Client) -> Result<HashMap<String, (Option<String>, String)>> {
    let api: Api<Lease> = Api::namespaced(client, SYSTEM_NAMESPACE);
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|l| {
            let holder = l.spec.and_then(|s| s.holder_identity).filter(|h| !h.is_empty());
            (l.metadata.name.unwrap_or_default(), (holder, l.metadata.resource_version.unwrap_or_default()))
        })
        .collect())
}

struct Converged {
    /// First create -> every Service has its address.
    addressed: Duration,
    /// First create -> every Lease has a holder.
    held: Duration,
    creates: Duration,
    per_node: BTreeMap<String, usize>,
}

async fn converge(info: ClusterInfo, from: usize, to: usize, timeout: Duration) -> Result<Converged> {
    let client = info.client().await?;
    let t0 = Instant::now();
    create_services(client.clone(), from, to).await?;
    let creates = t0.elapsed();
    let mut addressed = None;
    loop {
        if INTERRUPTED.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        let (n_addr, names) = expected_leases(client.clone()).await?;
        if n_addr == to && addressed.is_none() {
            addressed = Some(t0.elapsed());
        }
        if let Some(addressed) = addressed {
            let all = leases(client.clone()).await?;
            let held: Vec<&String> =
                names.iter().filter_map(|n| all.get(n).and_then(|(h, _)| h.as_ref())).collect();
            if held.len() == names.len() {
                let mut per_node = BTreeMap::new();
                for h in held {
                    *per_node.entry(h.clone()).or_insert(0) += 1;
                }
                return Ok(Converged { addressed, held: t0.elapsed(), creates, per_node });
            }
        }
        if t0.elapsed() > timeout {
            bail!("not converged within {timeout:?} (Services with an address: {n_addr}/{to})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Window {
    counters: kube_sim::admin::Counters,
    elapsed: Duration,
    /// Per-service Leases whose resourceVersion changed during the window.
    service_leases_written: usize,
    /// Per-service Leases whose holder changed during the window.
    holders_changed: usize,
    per_node_after: BTreeMap<String, usize>,
    /// Lease writes seen by a watch during the window, by writer: the announcers' (heartbeat and
    /// per-service Leases) and the rest (the IPAM controller's own Lease).
    announcer_lease_writes: u64,
    other_lease_writes: u64,
}

/// Counts the Lease writes of `namespace` from now until `stop`: (announcers', others').
fn count_lease_writes(
    client: kube::Client,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<Result<(u64, u64)>> {
    tokio::spawn(async move {
        let api: Api<Lease> = Api::namespaced(client, SYSTEM_NAMESPACE);
        let rv =
            api.list_metadata(&ListParams::default()).await?.metadata.resource_version.unwrap_or_default();
        let mut events = std::pin::pin!(api.watch(&kube::api::WatchParams::default(), &rv).await?);
        let mut stop = std::pin::pin!(stop);
        let (mut announcers, mut others) = (0, 0);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                event = events.next() => match event {
                    Some(Ok(
                        kube::api::WatchEvent::Added(l)
                        | kube::api::WatchEvent::Modified(l)
                        | kube::api::WatchEvent::Deleted(l),
                    )) => {
                        let name = l.metadata.name.unwrap_or_default();
                        if name.starts_with("ferrolb-node-") || name.starts_with("ferrolb-l2-") {
                            announcers += 1;
                        } else {
                            others += 1;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => bail!("watching the Leases: {e}"),
                    None => bail!("the Lease watch ended during the window"),
                },
            }
        }
        Ok((announcers, others))
    })
}

async fn steady_window(info: ClusterInfo, window: Duration) -> Result<Window> {
    let client = info.client().await?;
    let admin = info.admin().await?;
    let before = leases(client.clone()).await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let watch = count_lease_writes(client.clone(), stop_rx);
    admin.reset_counters().await?;
    let t0 = Instant::now();
    // Nothing from the bench during the window.
    let step = Duration::from_millis(250);
    while t0.elapsed() < window {
        if INTERRUPTED.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        tokio::time::sleep(step.min(window.saturating_sub(t0.elapsed()))).await;
    }
    let counters = admin.counters().await?;
    let elapsed = t0.elapsed();
    let _ = stop_tx.send(());
    let (announcer_lease_writes, other_lease_writes) = watch.await??;
    let after = leases(client).await?;
    let mut written = 0;
    let mut changed = 0;
    let mut per_node_after = BTreeMap::new();
    for (name, (holder, rv)) in &after {
        if !name.starts_with("ferrolb-l2-") {
            continue;
        }
        if let Some(h) = holder {
            *per_node_after.entry(h.clone()).or_insert(0) += 1;
        }
        match before.get(name) {
            Some((h0, rv0)) => {
                written += usize::from(rv0 != rv);
                changed += usize::from(h0 != holder);
            }
            None => {
                written += 1;
                changed += 1;
            }
        }
    }
    Ok(Window {
        counters,
        elapsed,
        service_leases_written: written,
        holders_changed: changed,
        per_node_after,
        announcer_lease_writes,
        other_lease_writes,
    })
}

struct PhaseResult {
    services: usize,
    converged: Converged,
    window: Window,
    load_before: String,
    load_after: String,
}

fn lease_writes(c: &kube_sim::admin::Counters) -> u64 {
    LEASE_VERBS.iter().map(|v| c.count(v, Some("leases"))).sum()
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let (bin_dir, lab_exe) = common::start("api_load")?;
    eprintln!(
        "api_load bench: {} nodes, Services {:?}, window {:?}; load {}",
        args.nodes,
        args.services,
        args.window,
        loadavg()
    );
    let lab = Lab::new(&args.prefix)?;
    let mut opts = ClusterOptions::with_bin_dir(&bin_dir);
    opts.announcer_args = args.announcer_args.clone();
    let state = cluster::up_cluster(&lab, args.nodes, &lab_exe, &opts)?;
    let _guard = LabGuard(lab.clone());
    let info = state.cluster.clone().context("no cluster info")?;
    let rt = info.runtime()?;
    let i2 = info.clone();
    rt.block_on(async move {
        create_pool_and_policy(
            i2.client().await?,
            json!({"start": "2001:db8:100::1000", "stop": "2001:db8:100::1fff"}),
        )
        .await
    })??;
    // Let every announcer become ready first (readiness needs the heartbeat Lease and a peer timeout).
    std::thread::sleep(Duration::from_secs(3));

    let mut results = Vec::new();
    let mut have = 0;
    for &n in &args.services {
        check_interrupted()?;
        let load_before = loadavg();
        eprintln!("[{n}] creating Services {have}..{n}");
        let converged = rt.block_on(converge(info.clone(), have, n, Duration::from_secs(300)))??;
        have = n;
        eprintln!(
            "[{n}] all addressed after {:.2} s, all Leases held after {:.2} s; holders {:?}",
            converged.addressed.as_secs_f64(),
            converged.held.as_secs_f64(),
            converged.per_node
        );
        // Past any hand-over settle time before measuring the steady state.
        std::thread::sleep(Duration::from_secs(6));
        eprintln!("[{n}] steady-state window of {:?}", args.window);
        let window = rt.block_on(steady_window(info.clone(), args.window))??;
        let secs = window.elapsed.as_secs_f64();
        eprintln!(
            "[{n}] Lease writes {:.2}/s (announcers {:.2}/s), all requests {:.2}/s, per-service Leases written {}",
            lease_writes(&window.counters) as f64 / secs,
            window.announcer_lease_writes as f64 / secs,
            window.counters.requests.iter().map(|e| e.count).sum::<u64>() as f64 / secs,
            window.service_leases_written
        );
        results.push(PhaseResult { services: n, converged, window, load_before, load_after: loadavg() });
    }
    // Keep the logs for a look (they are removed with the lab).
    let keep = std::env::temp_dir().join("ferrolb-bench-api-load");
    common::keep_logs(&lab, &keep);
    drop(rt);

    let target = args.nodes as f64; // nodes / 1 s default renew period
    println!();
    println!(
        "| Services | creates done | all addressed | all Leases held | holders per node | Lease writes/s (all) | of which announcers | per-service Lease writes in window | all requests/s | load before → after |"
    );
    println!("| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |");
    let mut json_out = Vec::new();
    for r in &results {
        let secs = r.window.elapsed.as_secs_f64();
        let lw = lease_writes(&r.window.counters) as f64 / secs;
        let total: u64 = r.window.counters.requests.iter().map(|e| e.count).sum();
        let per_node: Vec<String> = r.converged.per_node.iter().map(|(n, c)| format!("{n} {c}")).collect();
        println!(
            "| {} | {:.2} s | {:.2} s | {:.2} s | {} | {:.2} | {:.2} | {} | {:.2} | {} → {} |",
            r.services,
            r.converged.creates.as_secs_f64(),
            r.converged.addressed.as_secs_f64(),
            r.converged.held.as_secs_f64(),
            per_node.join(", "),
            lw,
            r.window.announcer_lease_writes as f64 / secs,
            r.window.service_leases_written,
            total as f64 / secs,
            r.load_before,
            r.load_after
        );
        json_out.push(json!({
            "services": r.services,
            "creates_seconds": r.converged.creates.as_secs_f64(),
            "all_addressed_seconds": r.converged.addressed.as_secs_f64(),
            "all_leases_held_seconds": r.converged.held.as_secs_f64(),
            "holders_per_node": r.converged.per_node,
            "holders_per_node_after_window": r.window.per_node_after,
            "window_seconds": secs,
            "lease_writes_per_second": lw,
            "announcer_lease_writes_per_second": r.window.announcer_lease_writes as f64 / secs,
            "other_lease_writes_per_second": r.window.other_lease_writes as f64 / secs,
            "service_lease_writes_in_window": r.window.service_leases_written,
            "service_lease_holders_changed_in_window": r.window.holders_changed,
            "requests_per_second": total as f64 / secs,
            "counters": r.window.counters.requests,
            "load_before": r.load_before,
            "load_after": r.load_after,
        }));
    }
    for r in &results {
        let secs = r.window.elapsed.as_secs_f64();
        println!();
        println!("Requests during the {:.0} s window with {} Services:", secs, r.services);
        println!("| verb | resource | count | per second |");
        println!("| --- | --- | ---: | ---: |");
        let mut by_verb: BTreeMap<String, u64> = BTreeMap::new();
        for e in &r.window.counters.requests {
            let res = if e.subresource.is_empty() {
                e.resource.clone()
            } else {
                format!("{}/{}", e.resource, e.subresource)
            };
            println!("| {} | {} | {} | {:.2} |", e.verb, res, e.count, e.count as f64 / secs);
            *by_verb.entry(e.verb.clone()).or_default() += e.count;
        }
        for (v, c) in by_verb {
            println!("| {v} | (all) | {c} | {:.2} |", c as f64 / secs);
        }
    }
    // The target is the announcers': the IPAM controller's own Lease is renewed too, whatever the
    // announcers do.
    let rates: Vec<f64> = results
        .iter()
        .map(|r| r.window.announcer_lease_writes as f64 / r.window.elapsed.as_secs_f64())
        .collect();
    let max = rates.iter().copied().fold(0.0, f64::max);
    println!();
    println!(
        "Target: announcer Lease writes ≤ {target:.0}/s ({} nodes / 1 s) and independent of the Service count: {}",
        args.nodes,
        if max <= target { "met" } else { "MISSED" }
    );
    if let Ok(path) = std::env::var("FERROLB_BENCH_JSON") {
        let doc = json!({
            "bench": "api_load",
            "nodes": args.nodes,
            "window_seconds": args.window.as_secs_f64(),
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "target_lease_writes_per_second": target,
            "phases": json_out,
        });
        std::fs::write(&path, serde_json::to_vec_pretty(&doc)?).with_context(|| format!("writing {path}"))?;
        eprintln!("JSON written to {path}");
    }
    // As a benchmark, a missed target is a failure (a smoke run under `cargo test` only reports).
    if full_run() && max > target {
        bail!("MISSED: announcer Lease writes {max:.1}/s > {target:.0}/s");
    }
    Ok(())
}
