//! BGP failover benchmark (docs/benchmarks.md, "BGP failover in the lab", issue 13).
//!
//! A single-NIC lab with three nodes whose announcers run BGP mode (`--bgp=true`) against the
//! lab's FRR router (zebra, bgpd, bfdd); one LoadBalancer Service, so the router's kernel FIB holds
//! the Service's address with one next hop per node (ECMP). Each run breaks one node (node1, node2,
//! node3 in turn) and measures the time from the fault to the router's kernel no longer using that
//! node as a next hop, then repairs the node and measures the time until the next hop is back:
//!
//! - `bfd`: the node's `eth0` goes down, its announcer keeps running (node death as the router sees
//!   it), with the lab's BFD profile 100 ms × 3 on the peer. Target ≤ 350 ms p50.
//! - `hold`: the same without BFD, hold time 3 s (keepalive 1 s). Target: every run ≤ the hold
//!   time, plus 50 ms for the router to end the session and update its FIB.
//! - `term`: the node's announcer gets SIGTERM (planned: it withdraws and sends Cease before it
//!   exits). Target ≤ 100 ms p50.
//! - `fib`: `--services N` (10,000; 200 at smoke size) IPv6 LoadBalancer Services get their
//!   addresses first; then the lab's IPv6 BGPPeer is created, and the bench measures the time from
//!   that create to every address in the router's kernel FIB with the three nodes as next hops
//!   (sessions opened, N prefixes sent by each node, FRR's bgpd and zebra install them). Target
//!   ≤ 2 s. One run per `--runs`: the peer is deleted (and the routes gone) between runs.
//!
//! ```sh
//! cargo build --release -p kube-sim -p ferrolb-ipam -p ferrolb-l2announcer -p ferrolb-lab
//! cargo bench -p ferrolb-lab --bench bgp_failover                        # as root; 20 runs each
//! cargo bench -p ferrolb-lab --bench bgp_failover -- --runs 3 --scenario bfd
//! FERROLB_BENCH_JSON=/tmp/bgp_failover.json cargo bench -p ferrolb-lab --bench bgp_failover
//! ```
//!
//! Under `cargo test` (CI) it runs at smoke size: one run of `bfd` and `term`, judged on nothing but
//! the run completing. Under `cargo bench` a missed target prints `MISSED` and exits 1. Options
//! (after `--`): `--runs N`, `--scenario a,b`, `--prefix P`. Needs root and Debian's `frr`.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferrolb_lab::bgp::{self, Router};
use ferrolb_lab::cluster::{self, ClusterInfo, ClusterOptions};
use ferrolb_lab::{INTERRUPTED, Lab, LabState, Topology};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DynamicObject, PostParams};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::atomic::Ordering;

mod common;
use common::service::wait_all_ready;
use common::{LabGuard, check_interrupted, cr_api, full_run, loadavg, options, pct, sorted};

const NODES: u8 = 3;
/// How long a run waits for the next hop to go (or to come back) before it counts as failed.
const MAX_WAIT: Duration = Duration::from_secs(15);
/// What the `hold` scenario allows the router beyond the hold time to act on its expiry.
const HOLD_PROCESSING: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Bfd,
    Hold,
    Term,
    Fib,
}

impl Scenario {
    const ALL: [Scenario; 4] = [Scenario::Bfd, Scenario::Hold, Scenario::Term, Scenario::Fib];

    fn name(self) -> &'static str {
        match self {
            Scenario::Bfd => "bfd",
            Scenario::Hold => "hold",
            Scenario::Term => "term",
            Scenario::Fib => "fib",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Scenario::Bfd => "node's eth0 down, announcer alive; BFD 100 ms × 3",
            Scenario::Hold => "node's eth0 down, announcer alive; no BFD, hold 3 s",
            Scenario::Term => "announcer SIGTERM (withdraw + Cease)",
            Scenario::Fib => "IPv6 BGPPeer created → every Service address in the FIB, 3 next hops",
        }
    }

    /// Target for the p50 (and, for `hold`, the maximum) of fault → next hop removed, in ms.
    fn target_ms(self) -> f64 {
        match self {
            Scenario::Bfd => 350.0,
            Scenario::Hold => 3000.0,
            Scenario::Term => 100.0,
            Scenario::Fib => 2000.0,
        }
    }

    /// The lab's BGPPeer for this scenario (BGPAdvertisement and BFDProfile as the lab makes them).
    fn objects(self) -> Vec<Value> {
        let mut objects = bgp::lab_objects(false, (self != Scenario::Hold).then_some("fast"));
        if self == Scenario::Hold {
            objects[0]["spec"]["holdTime"] = json!("3s");
            objects[0]["spec"]["keepaliveTime"] = json!("1s");
        }
        objects
    }

    fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .with_context(|| format!("unknown scenario {s:?} (bfd, hold, term, fib)"))
    }
}

struct Args {
    runs: usize,
    scenarios: Vec<Scenario>,
    prefix: String,
    /// Services of the `fib` scenario.
    services: usize,
}

fn parse_args() -> Result<Args> {
    let full = full_run();
    let mut a = Args {
        runs: if full { 20 } else { 1 },
        scenarios: if full {
            Scenario::ALL.to_vec()
        } else {
            vec![Scenario::Bfd, Scenario::Term, Scenario::Fib]
        },
        prefix: format!("flbg{}", std::process::id()),
        services: if full { 10_000 } else { 200 },
    };
    for (name, value) in options()? {
        match name.as_str() {
            "--runs" => a.runs = value.parse().context("--runs")?,
            "--scenario" | "--scenarios" => {
                a.scenarios = value.split(',').map(Scenario::parse).collect::<Result<_>>()?
            }
            "--prefix" => a.prefix = value,
            "--services" => a.services = value.parse().context("--services")?,
            other => bail!("unknown option {other}"),
        }
    }
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    Ok(a)
}

/// One measured run.
#[derive(Debug, serde::Serialize)]
struct Run {
    run: usize,
    node: String,
    /// Fault → the router's FIB no longer lists the node as a next hop.
    removed_ms: Option<f64>,
    /// Repair (link up, or announcer started again) → the node is a next hop again.
    back_ms: Option<f64>,
}

fn node_address(i: u8) -> IpAddr {
    Lab::node_v4(i).parse().expect("the lab's node addresses parse")
}

/// Pool `name` with the one block `cidr`.
async fn create_pool(client: kube::Client, name: &str, cidr: &str) -> Result<()> {
    let pool: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "ferrolb.io/v1alpha1", "kind": "LoadBalancerIPPool",
        "metadata": {"name": name},
        "spec": {"blocks": [{"cidr": cidr}]},
    }))?;
    cr_api(client, "LoadBalancerIPPool", "loadbalancerippools")
        .create(&PostParams::default(), &pool)
        .await
        .with_context(|| format!("creating pool {name}"))?;
    Ok(())
}

/// `objects`, pool `bench` (the lab's IPv4 VIP range, no L2 policy: BGP only) and Service
/// default/web; returns the Service's address.
async fn setup(info: ClusterInfo, objects: Vec<Value>) -> Result<IpAddr> {
    let client = info.client().await?;
    bgp::create_objects(client.clone(), objects).await?;
    create_pool(client, "bench", ferrolb_lab::VIP_RANGE_V4).await?;
    ferrolb_lab::demo::create_service_and_wait(&info, Duration::from_secs(30)).await
}

fn fault(lab: &Lab, scenario: Scenario, node: u8) -> Result<()> {
    match scenario {
        Scenario::Bfd | Scenario::Hold => cluster::set_link(lab, node, "eth0", false),
        Scenario::Term => cluster::kill_announcer(lab, node, Signal::SIGTERM).map(|_| ()),
        Scenario::Fib => unreachable!("the fib scenario breaks no node"),
    }
}

fn repair(lab: &Lab, scenario: Scenario, node: u8) -> Result<()> {
    match scenario {
        Scenario::Bfd | Scenario::Hold => {
            cluster::set_link(lab, node, "eth0", true)?;
            // Taking eth0 down may flush its IPv6 address; the lab's nodes keep it.
            let ns = lab.node_ns(node);
            let v6 = format!("{}/64", Lab::node_v6(node));
            let out = ferrolb_lab::run("ip", &["-n", &ns, "-6", "addr", "show", "dev", "eth0"])?;
            if !out.contains(&v6) {
                ferrolb_lab::run("ip", &["-n", &ns, "addr", "add", &v6, "dev", "eth0", "nodad"])?;
            }
            Ok(())
        }
        Scenario::Term => {
            if let Some(pid) = cluster::announcer_pid(lab, node)?
                && !cluster::wait_exit(pid, Duration::from_secs(10))
            {
                bail!("node{node}'s announcer did not exit within 10 s of SIGTERM");
            }
            cluster::restart_announcer(lab, node).map(|_| ())
        }
        Scenario::Fib => unreachable!("the fib scenario breaks no node"),
    }
}

struct ScenarioResult {
    scenario: Scenario,
    runs: Vec<Run>,
    poll: Duration,
    failures: Vec<String>,
    load: (String, String),
}

fn run_scenario(args: &Args, scenario: Scenario, bin_dir: &Path, lab_exe: &Path) -> Result<ScenarioResult> {
    let load_before = loadavg();
    let lab = Lab::new(&format!("{}{}", args.prefix, &scenario.name()[..1]))?;
    let mut opts = ClusterOptions::with_bin_dir(bin_dir);
    opts.topology = Topology::SingleNic;
    opts.announcer_args.push("--bgp=true".into());
    eprintln!("[{}] starting lab {} ({NODES} nodes, FRR)", scenario.name(), lab.prefix);
    let mut state: LabState = cluster::up_cluster(&lab, NODES, lab_exe, &opts)?;
    let _guard = LabGuard(lab.clone());
    let result = measure(args, scenario, &lab, &mut state);
    // Keep the logs of the lab for a look (they are removed with it).
    let keep = std::env::temp_dir().join(format!("ferrolb-bench-bgp-{}", scenario.name()));
    common::keep_logs(&lab, &keep);
    let (runs, poll, failures) = result?;
    Ok(ScenarioResult { scenario, runs, poll, failures, load: (load_before, loadavg()) })
}

type Measured = (Vec<Run>, Duration, Vec<String>);

fn measure(args: &Args, scenario: Scenario, lab: &Lab, state: &mut LabState) -> Result<Measured> {
    let lab = lab.clone();
    bgp::add_router(&lab, state, Router::Frr)?;
    state.save(&lab)?;
    let info = state.cluster.clone().context("no cluster info")?;
    let rt = info.runtime()?;
    if scenario == Scenario::Fib {
        return measure_fib(args, &lab, &info, &rt);
    }
    let vip = rt.block_on(setup(info.clone(), scenario.objects()))??;
    let prefix = format!("{vip}/32");
    wait_all_ready(&lab, NODES, Duration::from_secs(30))?;
    let all: Vec<IpAddr> = (1..=NODES).map(node_address).collect();
    let ready = bgp::wait_next_hops(&lab, &prefix, MAX_WAIT, |h| h == all.as_slice())?;
    if ready.met_at.is_none() {
        bail!("{prefix} never had the {NODES} nodes as next hops (now {:?})", ready.hops);
    }
    eprintln!("[{}] {prefix} routed to {all:?}", scenario.name());

    let mut runs = Vec::new();
    let mut failures = Vec::new();
    let mut poll = Duration::ZERO;
    for run in 1..=args.runs {
        let node = (run - 1) as u8 % NODES + 1;
        let gone = node_address(node);
        // BFD and the sessions settle after a repair before the next fault: with BFD, the router
        // must have every node's BFD session Up (it comes up after the BGP session).
        std::thread::sleep(Duration::from_secs(1));
        if scenario == Scenario::Bfd && !bgp::wait_bfd_up(&lab, &rt, &info, &all, MAX_WAIT)? {
            failures.push(format!("run {run}: the router's BFD sessions not all Up within {MAX_WAIT:?}"));
            break;
        }
        // Timed from when the `ip` command (or the signal) returned: the fault happens inside it,
        // after the process start that is most of the command's time.
        fault(&lab, scenario, node)?;
        let at = Instant::now();
        let removed = bgp::wait_next_hops(&lab, &prefix, MAX_WAIT, |h| !h.contains(&gone))?;
        poll = poll.max(removed.poll);
        let repaired = Instant::now();
        repair(&lab, scenario, node)?;
        let back = bgp::wait_next_hops(&lab, &prefix, MAX_WAIT, |h| h == all.as_slice())?;
        let r = Run {
            run,
            node: Lab::node_name(node),
            removed_ms: removed.met_at.map(|t| t.duration_since(at).as_secs_f64() * 1000.0),
            back_ms: back.met_at.map(|t| t.duration_since(repaired).as_secs_f64() * 1000.0),
        };
        eprintln!(
            "[{}] run {run:>2}: {}  next hop removed {}  back {}",
            scenario.name(),
            r.node,
            fmt_ms(r.removed_ms),
            fmt_ms(r.back_ms)
        );
        if r.removed_ms.is_none() {
            failures.push(format!("run {run}: {} stayed a next hop for {MAX_WAIT:?}", r.node));
        }
        if r.back_ms.is_none() {
            failures.push(format!("run {run}: {} not a next hop again within {MAX_WAIT:?}", r.node));
            runs.push(r);
            break;
        }
        runs.push(r);
    }
    drop(rt);
    Ok((runs, poll, failures))
}

/// The `fib` scenario's pool: room for far more Services than the lab's VIP range.
const FIB_POOL: &str = "2001:db8:200::/112";

/// Creates `n` IPv6 LoadBalancer Services (32 at a time) and waits until each has its address.
async fn create_services(client: kube::Client, n: usize) -> Result<()> {
    create_pool(client.clone(), "bench-fib", FIB_POOL).await?;
    let names = (0..n).map(|i| format!("fib-{i}"));
    ferrolb_testkit::services::create_ipv6(client.clone(), "default", names, 32).await?;
    let api: Api<Service> = Api::namespaced(client, "default");
    let start = tokio::time::Instant::now();
    loop {
        let assigned = api
            .list(&Default::default())
            .await?
            .items
            .iter()
            .filter(|s| {
                s.status
                    .as_ref()
                    .and_then(|s| s.load_balancer.as_ref())
                    .and_then(|l| l.ingress.as_ref())
                    .is_some()
            })
            .count();
        if assigned >= n {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(600) {
            bail!("only {assigned} of {n} Services got an address within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The router's BGP routes in `FIB_POOL`: how many, and the next hops of one of them.
fn fib_routes(lab: &Lab) -> Result<(usize, Vec<IpAddr>)> {
    let out = ferrolb_lab::run("ip", &["-n", &lab.router_ns(), "-6", "route", "show", "proto", "bgp"])?;
    let mut count = 0;
    let mut sample = None;
    for line in out.lines().filter(|l| l.starts_with("2001:db8:200::")) {
        count += 1;
        sample.get_or_insert_with(|| line.split_whitespace().next().unwrap_or_default().to_string());
    }
    let hops = match sample {
        Some(prefix) => bgp::next_hops(lab, &prefix)?,
        None => Vec::new(),
    };
    Ok((count, hops))
}

fn measure_fib(
    args: &Args,
    lab: &Lab,
    info: &ClusterInfo,
    rt: &ferrolb_lab::netns::NsRuntime,
) -> Result<Measured> {
    let n = args.services;
    let t = Instant::now();
    let i = info.clone();
    let client = rt.block_on(async move { i.client().await })??;
    rt.block_on(create_services(client.clone(), n))??;
    eprintln!("[fib] {n} IPv6 Services have addresses ({:.1} s)", t.elapsed().as_secs_f64());
    wait_all_ready(lab, NODES, Duration::from_secs(60))?;
    let all: Vec<IpAddr> = (1..=NODES).map(|i| Lab::node_v6(i).parse().expect("lab address")).collect();
    // BFD plays no part in this figure; the advertisement and the IPv6 peer are the lab's.
    let mut objects = bgp::lab_objects(true, None);
    let peer = objects.remove(0);
    rt.block_on(bgp::create_objects(client.clone(), objects))??;
    let peers = cr_api(client, "BGPPeer", "bgppeers");
    let mut runs = Vec::new();
    let mut failures = Vec::new();
    let mut poll = Duration::ZERO;
    for run in 1..=args.runs {
        check_interrupted()?;
        let at = Instant::now();
        let (api, object): (_, DynamicObject) = (peers.clone(), serde_json::from_value(peer.clone())?);
        rt.block_on(async move { api.create(&PostParams::default(), &object).await })?
            .context("creating the BGPPeer")?;
        let mut polls = 0u32;
        let installed = loop {
            let (count, hops) = fib_routes(lab)?;
            polls += 1;
            if count >= n && hops == all {
                break Some(Instant::now());
            }
            if at.elapsed() > Duration::from_secs(60) {
                failures.push(format!("run {run}: {count} of {n} routes installed ({hops:?}) after 60 s"));
                break None;
            }
        };
        poll = poll.max(at.elapsed() / polls);
        let removed_at = Instant::now();
        let name = peer["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let api = peers.clone();
        rt.block_on(async move { api.delete(&name, &Default::default()).await.map(|_| ()) })?
            .context("deleting the BGPPeer")?;
        // Gone from the FIB before the next run (the sessions end with Cease, routes withdrawn).
        let mut gone = None;
        while removed_at.elapsed() < Duration::from_secs(60) {
            if fib_routes(lab)?.0 == 0 {
                gone = Some(Instant::now());
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let r = Run {
            run,
            node: format!("{n} prefixes × {NODES} nodes"),
            removed_ms: installed.map(|t| t.duration_since(at).as_secs_f64() * 1000.0),
            back_ms: gone.map(|t| t.duration_since(removed_at).as_secs_f64() * 1000.0),
        };
        eprintln!(
            "[fib] run {run:>2}: {n} prefixes in the FIB with {NODES} next hops {} after the BGPPeer was created; \
             gone {} after it was deleted",
            fmt_ms(r.removed_ms),
            fmt_ms(r.back_ms)
        );
        runs.push(r);
        if gone.is_none() {
            failures.push(format!("run {run}: routes still in the FIB 60 s after the BGPPeer was deleted"));
            break;
        }
    }
    Ok((runs, poll, failures))
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.0} ms")).unwrap_or_else(|| "-".into())
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let (bin_dir, lab_exe) = common::start("bgp_failover")?;
    eprintln!(
        "bgp_failover bench: {} run(s) per scenario, scenarios {}; load {}",
        args.runs,
        args.scenarios.iter().map(|s| s.name()).collect::<Vec<_>>().join(","),
        loadavg()
    );
    let mut results = Vec::new();
    for s in &args.scenarios {
        match run_scenario(&args, *s, &bin_dir, &lab_exe) {
            Ok(r) => results.push(r),
            Err(e) => {
                if INTERRUPTED.load(Ordering::SeqCst) {
                    return Err(e);
                }
                eprintln!("[{}] scenario failed: {e:#}", s.name());
                results.push(ScenarioResult {
                    scenario: *s,
                    runs: Vec::new(),
                    poll: Duration::ZERO,
                    failures: vec![format!("scenario failed: {e:#}")],
                    load: (String::new(), loadavg()),
                });
            }
        }
    }

    println!();
    println!(
        "| scenario | runs | removed p50 | removed p90 | removed max | back p50 | FIB poll | target | load before → after |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |");
    let mut missed = false;
    let mut json_out = Vec::new();
    for r in &results {
        let removed = sorted(r.runs.iter().filter_map(|x| x.removed_ms));
        let back = sorted(r.runs.iter().filter_map(|x| x.back_ms));
        let (p50, p90, max) = (pct(&removed, 50.0), pct(&removed, 90.0), removed.last().copied());
        let target = r.scenario.target_ms();
        let judged = if r.scenario == Scenario::Hold { max } else { p50 };
        // The removal is seen up to one FIB poll late: a figure within one poll of the target
        // meets it. The hold time bounds detection; the router then needs a few milliseconds to
        // end the session and update its FIB (HOLD_PROCESSING).
        let slack = r.poll.as_secs_f64() * 1000.0
            + if r.scenario == Scenario::Hold { HOLD_PROCESSING.as_secs_f64() * 1000.0 } else { 0.0 };
        let met = r.failures.is_empty() && judged.is_some_and(|v| v <= target + slack);
        missed |= !met;
        let what = if r.scenario == Scenario::Hold { "max" } else { "p50" };
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.1} ms | {what} ≤ {target:.0} ms: {} | {} → {} |",
            r.scenario.describe(),
            r.runs.len(),
            fmt_ms(p50),
            fmt_ms(p90),
            fmt_ms(max),
            fmt_ms(pct(&back, 50.0)),
            r.poll.as_secs_f64() * 1000.0,
            if met { "met" } else { "MISSED" },
            r.load.0,
            r.load.1
        );
        json_out.push(json!({
            "scenario": r.scenario.name(),
            "description": r.scenario.describe(),
            "runs": r.runs,
            "removed_ms": {"p50": p50, "p90": p90, "max": max},
            "back_ms_p50": pct(&back, 50.0),
            "fib_poll_ms": r.poll.as_secs_f64() * 1000.0,
            "target_ms": target,
            "met": met,
            "failures": r.failures,
        }));
    }
    for r in &results {
        for f in &r.failures {
            println!("{}: {f}", r.scenario.name());
        }
    }
    if let Ok(path) = std::env::var("FERROLB_BENCH_JSON") {
        let doc = json!({"bench": "bgp_failover", "runs_per_scenario": args.runs, "scenarios": json_out});
        std::fs::write(&path, serde_json::to_vec_pretty(&doc)?).with_context(|| format!("writing {path}"))?;
        eprintln!("JSON written to {path}");
    }
    // A smoke run (CI) must complete every run; only a full run is judged on the targets.
    let failed = results.iter().any(|r| !r.failures.is_empty());
    if failed || (full_run() && missed) {
        std::process::exit(1);
    }
    Ok(())
}
