//! IPAM footprint (docs/benchmarks.md, "IPAM footprint"): the memory of the `ferrolb-ipam` process
//! with many LoadBalancer Services, and the time it takes to assign them all.
//!
//! kube-sim runs in this process on loopback; `ferrolb-ipam` (the binary built with this bench) runs
//! as its own process against it, leading through its Lease. A pool 2001:db8:1::1-2001:db8:1::ffff
//! and N IPv6-only LoadBalancer Services are created (64 in flight); reported are the time from the
//! first create until every Service shows an address, then, after a settle pause, VmRSS and VmHWM
//! of the `ferrolb-ipam` process (`/proc/<pid>/status`). Target: VmRSS ≤ 100 MiB at 10,000
//! Services. No root and no network namespace needed.
//!
//! ```sh
//! cargo bench -p ferrolb-ipam --bench footprint                          # 10,000 Services, ~1 min
//! cargo bench -p ferrolb-ipam --bench footprint -- --services 2000       # another size
//! # heap profile: the controller under heaptrack, SIGKILLed at the end so live memory shows as leaked
//! # (--no-default-features: the system allocator, which heaptrack sees)
//! FERROLB_BENCH_IPAM_WRAPPER="heaptrack -o /tmp/ipam" \
//!     cargo bench -p ferrolb-ipam --no-default-features --bench footprint
//! heaptrack_print --print-leaks 1 /tmp/ipam.zst | less
//! ```
//!
//! Under `cargo test --all-targets` (no `--bench`) it runs at smoke size, 200 Services with a short
//! settle pause, and checks the same things: every Service gets its own address from the pool, and
//! the controller stays under the target.

use std::collections::BTreeSet;
use std::net::Ipv6Addr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use ferrolb_api::LoadBalancerIPPool;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube_sim::{KubeSim, Options};
use serde_json::json;

mod common;
use common::addresses;

const RSS_TARGET_MIB: f64 = 100.0;
/// 2001:db8:1::/112 without `::`, as in the lab's footprint bench (an address ending in `::` gives
/// the announcer a Lease name it cannot use; the same pool keeps the two benches comparable).
const POOL_START: &str = "2001:db8:1::1";
const POOL_STOP: &str = "2001:db8:1::ffff";
const NAMESPACE: &str = "default";
const SYSTEM_NAMESPACE: &str = "ferrolb-system";
const IDENTITY: &str = "footprint-bench";

/// Whether `cargo bench` runs this (it passes `--bench`), rather than `cargo test --all-targets`.
fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

struct Args {
    services: usize,
    settle: Duration,
}

fn parse_args() -> Result<Args> {
    let full = full_run();
    let mut a = Args {
        services: match std::env::var("FERROLB_BENCH_SERVICES") {
            Ok(v) => v.parse().context("FERROLB_BENCH_SERVICES")?,
            Err(_) if full => 10_000,
            Err(_) => 200,
        },
        settle: Duration::from_secs(if full { 10 } else { 1 }),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (name, value) = match arg.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        match name.as_str() {
            "--services" => {
                let v = value.or_else(|| it.next()).context("--services needs a value")?;
                a.services = v.parse().context("--services")?;
            }
            "--settle" => {
                let v = value.or_else(|| it.next()).context("--settle needs a value (seconds)")?;
                a.settle = Duration::from_secs(v.parse().context("--settle")?);
            }
            // `--bench` and cargo's filter words.
            _ => {}
        }
    }
    ensure!((1..=65_535).contains(&a.services), "--services: 1..=65535 (the pool holds 65,535)");
    Ok(a)
}

#[derive(Debug, Clone, Copy)]
struct Mem {
    rss_kib: u64,
    hwm_kib: u64,
}

fn mem(pid: u32) -> Result<Mem> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("pid {pid}"))?;
    let field = |k: &str| -> Result<u64> {
        s.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {k} in /proc/{pid}/status"))
    };
    Ok(Mem { rss_kib: field("VmRSS:")?, hwm_kib: field("VmHWM:")? })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The `ferrolb-ipam` process: the child itself, or under a wrapper (heaptrack) the descendant
/// running the binary. Killed when dropped.
struct Ipam {
    child: Child,
    pid: u32,
    wrapped: bool,
}

impl Drop for Ipam {
    fn drop(&mut self) {
        if self.wrapped {
            // SIGKILL, so a heap profiler shows everything still live as leaked.
            let _ = Command::new("kill").args(["-KILL", &self.pid.to_string()]).status();
        } else {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The first process named `comm` among `pid` and its descendants.
fn find_process(pid: u32, comm: &str) -> Option<u32> {
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    // comm is cut to 15 bytes.
    if name.trim_end() == &comm[..comm.len().min(15)] {
        return Some(pid);
    }
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().filter_map(|c| c.parse().ok()).find_map(|c| find_process(c, comm))
}

fn spawn_ipam(sim: &KubeSim) -> Result<Ipam> {
    let exe = env!("CARGO_BIN_EXE_ferrolb-ipam");
    let wrapper: Vec<String> = std::env::var("FERROLB_BENCH_IPAM_WRAPPER")
        .map(|w| w.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.args(["--kubeconfig", sim.kubeconfig_path().to_str().context("kubeconfig path")?])
        .args(["--namespace", SYSTEM_NAMESPACE, "--id", IDENTITY, "--metrics-addr", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let child = cmd.spawn().with_context(|| format!("starting {exe}"))?;
    let wrapped = !wrapper.is_empty();
    let mut ipam = Ipam { pid: child.id(), child, wrapped };
    if wrapped {
        let deadline = Instant::now() + Duration::from_secs(10);
        ipam.pid = loop {
            if let Some(pid) = find_process(ipam.child.id(), "ferrolb-ipam") {
                break pid;
            }
            ensure!(Instant::now() < deadline, "no ferrolb-ipam process under the wrapper after 10 s");
            std::thread::sleep(Duration::from_millis(50));
        };
    }
    Ok(ipam)
}

/// Waits until `ferrolb-ipam` holds its Lease (then it lists and leads).
async fn wait_leading(client: &kube::Client, ipam: &mut Ipam) -> Result<()> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = ipam.child.try_wait()? {
            bail!("ferrolb-ipam exited: {status}");
        }
        let holder = leases.get_opt("ferrolb-ipam").await?.and_then(|l| l.spec?.holder_identity);
        if holder.as_deref() == Some(IDENTITY) {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "ferrolb-ipam did not take its Lease within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn create_services(client: kube::Client, n: usize) -> Result<()> {
    let names = (0..n).map(|i| format!("svc-{i:05}"));
    Ok(ferrolb_testkit::services::create_ipv6(client, NAMESPACE, names, 64).await?)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let n = args.services;
    let sim = KubeSim::start(Options::default()).await?;
    let client = sim.client().await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in ferrolb_api::crd::all() {
        crds.create(&PostParams::default(), &crd).await?;
    }
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": SYSTEM_NAMESPACE}}))?;
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await?;
    let pool: LoadBalancerIPPool = serde_json::from_value(json!({
        "apiVersion": "ferrolb.io/v1alpha1", "kind": "LoadBalancerIPPool", "metadata": {"name": "bench"},
        "spec": {"blocks": [{"start": POOL_START, "stop": POOL_STOP}]}}))?;
    Api::<LoadBalancerIPPool>::all(client.clone()).create(&PostParams::default(), &pool).await?;

    let mut ipam = spawn_ipam(&sim)?;
    wait_leading(&client, &mut ipam).await?;
    // Listed and led: its caches hold the pool and no Service yet.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = mem(ipam.pid)?;
    eprintln!(
        "footprint: ferrolb-ipam (pid {}) leads, {:.1} MiB; creating {n} Services",
        ipam.pid,
        mib(idle.rss_kib)
    );

    let t0 = Instant::now();
    create_services(client.clone(), n).await?;
    let created = t0.elapsed();
    let mut last_print = Instant::now();
    let ips = loop {
        let ips: Vec<Vec<String>> = addresses(&sim).into_values().collect();
        let done = ips.iter().filter(|i| !i.is_empty()).count();
        if done == n {
            break ips;
        }
        if let Some(status) = ipam.child.try_wait()? {
            bail!("ferrolb-ipam exited: {status}");
        }
        ensure!(t0.elapsed() < Duration::from_secs(600), "only {done} of {n} Services assigned after 600 s");
        if last_print.elapsed() > Duration::from_secs(5) {
            eprintln!("footprint: {:.0} s: {done} of {n} assigned", t0.elapsed().as_secs_f64());
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let assigned = t0.elapsed();
    let first = POOL_START.parse::<Ipv6Addr>()?;
    let last = POOL_STOP.parse::<Ipv6Addr>()?;
    let distinct: BTreeSet<Ipv6Addr> =
        ips.iter().flatten().map(|ip| ip.parse::<Ipv6Addr>()).collect::<Result<_, _>>()?;
    ensure!(
        distinct.len() == n && ips.iter().all(|i| i.len() == 1),
        "{} distinct addresses for {n} Services",
        distinct.len()
    );
    ensure!(distinct.iter().all(|ip| (first..=last).contains(ip)), "an address outside the pool");

    // Writes finished and Events sent; a lazy allocator returns its pages meanwhile.
    tokio::time::sleep(args.settle).await;
    let after = mem(ipam.pid)?;
    if let Some(status) = ipam.child.try_wait()? {
        bail!("ferrolb-ipam exited: {status}");
    }
    drop(ipam);

    println!();
    println!(
        "| Services | creates done | all assigned | ferrolb-ipam: RSS before the Services | VmRSS | VmHWM |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| {n} | {:.2} s | {:.2} s | {:.1} MiB | {:.1} MiB | {:.1} MiB |",
        created.as_secs_f64(),
        assigned.as_secs_f64(),
        mib(idle.rss_kib),
        mib(after.rss_kib),
        mib(after.hwm_kib),
    );
    let rss = mib(after.rss_kib);
    // Judged at smoke size too, where the ceiling is far off: what fails there is the assignment
    // check above, or a controller whose memory no longer scales with the Services.
    if rss > RSS_TARGET_MIB {
        println!("Target: ferrolb-ipam VmRSS ≤ {RSS_TARGET_MIB:.0} MiB: MISSED ({rss:.1} MiB)");
        bail!("MISSED: ferrolb-ipam VmRSS {rss:.1} MiB > {RSS_TARGET_MIB:.0} MiB with {n} Services");
    }
    println!("Target: ferrolb-ipam VmRSS ≤ {RSS_TARGET_MIB:.0} MiB: met ({rss:.1} MiB)");
    Ok(())
}
