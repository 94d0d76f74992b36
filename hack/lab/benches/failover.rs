//! Failover benchmark (docs/benchmarks.md, "L2 failover in the lab").
//!
//! A client in the lab sends an HTTP GET to a Service's VIP every 10 ms; the leader (the node
//! holding the VIP's Lease) is then broken in one of these ways, and the bench measures (a) the
//! longest gap between two answered requests and (b) the takeover time (fault -> the first answer
//! from another node):
//!
//! - `kill`: the leader's announcer gets SIGKILL (unplanned; its node's kernel keeps serving the VIP
//!   until the new holder's gratuitous ARP repoints the client, so the gap can be ~0);
//! - `link`: the leader's LAN link (`eth0`) goes down; its API access over `mgmt0` stays up;
//! - `term`: the leader's announcer gets SIGTERM (planned hand-over);
//! - `node-death`: `eth0` and `mgmt0` go down and, right after, the announcer gets SIGKILL (the node
//!   vanishes from the LAN and from the API: takeover by the majority's silence);
//! - `node-death-fast`: the same with a 1 s heartbeat Lease (`--heartbeat-lease-duration=1s
//!   --heartbeat-renew-deadline=700ms --heartbeat-retry-period=250ms`);
//! - `single-death`: on a single-NIC lab (API, peers and VIP traffic on each node's one `eth0`), the
//!   leader's `eth0` goes down and its announcer gets SIGKILL (a node losing power), default flags;
//! - `single-flap`: on a single-NIC lab, the leader's `eth0` goes down with its announcer alive, and
//!   comes back after the run; each run is one flap cycle (down, takeover, up, take-back, down again
//!   in the next run), so 20 runs are 20 cycles of the same lab.
//!
//! ```sh
//! cargo build --release -p kube-sim -p ferrolb-ipam -p ferrolb-l2announcer -p ferrolb-lab
//! cargo bench -p ferrolb-lab --bench failover                       # 20 runs per scenario
//! cargo bench -p ferrolb-lab --bench failover -- --runs 2 --scenario kill,term
//! FERROLB_BENCH_JSON=/tmp/failover.json cargo bench -p ferrolb-lab --bench failover
//! ```
//!
//! Options (after `--`, or environment): `--runs N` (`FERROLB_BENCH_RUNS`, default 20), `--scenario
//! a,b` (`FERROLB_BENCH_SCENARIOS`, default all), `--nodes N` (default 3), `--announcer-arg=--flag=v`
//! (repeat; added to every scenario), `--prefix P` (lab prefix, default `flbb<pid>`). Needs root.
//! Every lab is removed at the end, on errors and on Ctrl-C. Under `cargo bench` a missed target
//! exits non-zero after the table (under `cargo test` the smoke run only reports).

use anyhow::{Context, Result, bail};
use ferrolb_lab::cluster::{self, ClusterInfo, ClusterOptions, SYSTEM_NAMESPACE};
use ferrolb_lab::probe::{self, ProbeOptions, ProbeReport};
use ferrolb_lab::{INTERRUPTED, Lab, Topology};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use nix::sys::signal::Signal;
use serde_json::json;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

mod common;
use common::service::{
    SERVICE, in_ns, join, lease_holder, setup_service, traffic_stable, wait_all_ready, wait_stable_holder,
};
use common::{LabGuard, check_interrupted, full_run, loadavg, options, pct, sorted};

const FAST_HEARTBEAT: [&str; 3] =
    ["--heartbeat-lease-duration=1s", "--heartbeat-renew-deadline=700ms", "--heartbeat-retry-period=250ms"];
/// Probe interval and per-request timeout.
const INTERVAL: Duration = Duration::from_millis(10);
const REQUEST_TIMEOUT: Duration = Duration::from_millis(200);
/// Probing before the fault.
const PRE_FAULT: Duration = Duration::from_secs(1);
/// The probe stops this long after another node answered.
const AFTER_SWITCH: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Kill,
    Link,
    Term,
    NodeDeath,
    NodeDeathFast,
    SingleDeath,
    SingleFlap,
}

impl Scenario {
    const ALL: [Scenario; 7] = [
        Scenario::Kill,
        Scenario::Link,
        Scenario::Term,
        Scenario::NodeDeath,
        Scenario::NodeDeathFast,
        Scenario::SingleDeath,
        Scenario::SingleFlap,
    ];

    /// The lab's topology for this scenario.
    fn topology(self) -> Topology {
        match self {
            Scenario::SingleDeath | Scenario::SingleFlap => Topology::SingleNic,
            _ => Topology::Split,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Scenario::Kill => "kill",
            Scenario::Link => "link",
            Scenario::Term => "term",
            Scenario::NodeDeath => "node-death",
            Scenario::NodeDeathFast => "node-death-fast",
            Scenario::SingleDeath => "single-death",
            Scenario::SingleFlap => "single-flap",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Scenario::Kill => "announcer SIGKILL (unplanned, node up)",
            Scenario::Link => "LAN link eth0 down (mgmt0 up)",
            Scenario::Term => "announcer SIGTERM (planned)",
            Scenario::NodeDeath => "node death: eth0+mgmt0 down + SIGKILL, heartbeat Lease 3s",
            Scenario::NodeDeathFast => "node death, heartbeat Lease 1s/700ms/250ms",
            Scenario::SingleDeath => "single NIC: node death (eth0 down + SIGKILL), defaults",
            Scenario::SingleFlap => "single NIC: eth0 down, announcer alive (flap cycles)",
        }
    }

    /// How long to wait for a takeover before giving up on a run.
    fn max_wait(self) -> Duration {
        match self {
            Scenario::NodeDeath => Duration::from_secs(10),
            _ => Duration::from_secs(6),
        }
    }

    /// (gap p50, gap p99) targets in ms, where the issue sets one.
    fn target(self) -> Option<(f64, f64)> {
        match self {
            Scenario::Kill
            | Scenario::Link
            | Scenario::NodeDeath
            | Scenario::NodeDeathFast
            | Scenario::SingleDeath
            | Scenario::SingleFlap => Some((1000.0, 1500.0)),
            Scenario::Term => Some((200.0, 200.0)),
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|x| x.name() == s).with_context(|| {
            format!(
                "unknown scenario {s:?} (kill, link, term, node-death, node-death-fast, single-death, \
                 single-flap)"
            )
        })
    }
}

#[derive(Debug)]
struct Args {
    runs: usize,
    scenarios: Vec<Scenario>,
    nodes: u8,
    announcer_args: Vec<String>,
    prefix: String,
}

fn parse_args() -> Result<Args> {
    let full = full_run();
    let mut a = Args {
        runs: std::env::var("FERROLB_BENCH_RUNS").ok().map(|v| v.parse()).transpose()?.unwrap_or(if full {
            20
        } else {
            1
        }),
        scenarios: match std::env::var("FERROLB_BENCH_SCENARIOS") {
            Ok(v) => v.split(',').map(Scenario::parse).collect::<Result<_>>()?,
            Err(_) if full => Scenario::ALL.to_vec(),
            Err(_) => vec![Scenario::parse("kill")?, Scenario::parse("term")?],
        },
        nodes: 3,
        announcer_args: Vec::new(),
        prefix: format!("flbb{}", std::process::id()),
    };
    for (name, value) in options()? {
        match name.as_str() {
            "--runs" => a.runs = value.parse().context("--runs")?,
            "--scenario" | "--scenarios" => {
                a.scenarios = value.split(',').map(Scenario::parse).collect::<Result<_>>()?
            }
            "--nodes" => a.nodes = value.parse().context("--nodes")?,
            "--announcer-arg" => a.announcer_args.push(value),
            "--prefix" => a.prefix = value,
            other => bail!("unknown option {other}"),
        }
    }
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if a.nodes < 2 {
        bail!("--nodes must be at least 2 (someone has to take over)");
    }
    Ok(a)
}

/// Polls the Lease every 20 ms until it names another node than `old` (or `timeout`); returns the
/// new holder and when it was first seen.
async fn wait_new_holder(
    info: ClusterInfo,
    lease: String,
    old: String,
    timeout: Duration,
) -> Result<Option<(String, Instant)>> {
    let api: Api<Lease> = Api::namespaced(info.client().await?, SYSTEM_NAMESPACE);
    let start = tokio::time::Instant::now();
    while start.elapsed() < timeout {
        if let Ok(Some(h)) = lease_holder(&api, &lease).await
            && h != old
        {
            return Ok(Some((h, Instant::now())));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(None)
}

/// One measured failover.
#[derive(Debug, Clone, serde::Serialize)]
struct Run {
    run: usize,
    old: String,
    /// Node answering the client after the fault (the first other node).
    new: Option<String>,
    /// Longest interval between two answered requests (probe's figure, ms).
    gap_ms: f64,
    /// Fault -> first answered request (by send time) from another node (ms).
    takeover_ms: Option<f64>,
    /// Fault -> the Lease seen naming another node (20 ms polling, ms).
    lease_moved_ms: Option<f64>,
    sent: u64,
    answered: u64,
    errors: Vec<(String, u64)>,
}

fn apply_fault(lab: &Lab, scenario: Scenario, node: u8) -> Result<()> {
    match scenario {
        Scenario::Kill => cluster::kill_announcer(lab, node, Signal::SIGKILL).map(|_| ()),
        Scenario::Term => cluster::kill_announcer(lab, node, Signal::SIGTERM).map(|_| ()),
        Scenario::Link | Scenario::SingleFlap => cluster::set_link(lab, node, "eth0", false),
        Scenario::NodeDeath | Scenario::NodeDeathFast | Scenario::SingleDeath => {
            // Links first (one `ip` call), so the peers never see a refused connection.
            links(lab, node, false, scenario.topology())?;
            cluster::kill_announcer(lab, node, Signal::SIGKILL).map(|_| ())
        }
    }
}

/// Every link of a node (`eth0`, and `mgmt0` on a split lab) up or down in one `ip -batch` call.
fn links(lab: &Lab, node: u8, up: bool, topology: Topology) -> Result<()> {
    use std::io::Write;
    let state = if up { "up" } else { "down" };
    let mut child = std::process::Command::new("ip")
        .args(["-n", &lab.node_ns(node), "-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .context("running ip -batch")?;
    child.stdin.take().context("ip stdin")?.write_all(
        match topology {
            Topology::Split => format!("link set dev eth0 {state}\nlink set dev mgmt0 {state}\n"),
            Topology::SingleNic => format!("link set dev eth0 {state}\n"),
        }
        .as_bytes(),
    )?;
    let status = child.wait()?;
    if !status.success() {
        bail!("ip -batch (links {state} on node{node}) failed: {status}");
    }
    Ok(())
}

/// The node's IPv6 LAN address, re-added if taking `eth0` down flushed it.
fn ensure_v6_address(lab: &Lab, node: u8) -> Result<()> {
    let ns = lab.node_ns(node);
    let out = ferrolb_lab::run("ip", &["-n", &ns, "-6", "addr", "show", "dev", "eth0"])?;
    let v6 = Lab::node_v6(node);
    if !out.contains(&format!("{v6}/64")) {
        ferrolb_lab::run("ip", &["-n", &ns, "addr", "add", &format!("{v6}/64"), "dev", "eth0", "nodad"])?;
        return Ok(());
    }
    Ok(())
}

fn restore(lab: &Lab, scenario: Scenario, node: u8) -> Result<bool> {
    let mut v6_flushed = false;
    match scenario {
        Scenario::Kill => {
            cluster::restart_announcer(lab, node)?;
        }
        Scenario::Term => {
            if let Some(pid) = cluster::announcer_pid(lab, node)? {
                cluster::wait_exit(pid, Duration::from_secs(10));
            }
            cluster::restart_announcer(lab, node)?;
        }
        Scenario::Link | Scenario::SingleFlap => {
            cluster::set_link(lab, node, "eth0", true)?;
            v6_flushed = v6_missing(lab, node);
            ensure_v6_address(lab, node)?;
        }
        Scenario::NodeDeath | Scenario::NodeDeathFast | Scenario::SingleDeath => {
            links(lab, node, true, scenario.topology())?;
            v6_flushed = v6_missing(lab, node);
            ensure_v6_address(lab, node)?;
            cluster::restart_announcer(lab, node)?;
        }
    }
    Ok(v6_flushed)
}

fn v6_missing(lab: &Lab, node: u8) -> bool {
    ferrolb_lab::run("ip", &["-n", &lab.node_ns(node), "-6", "addr", "show", "dev", "eth0"])
        .map(|o| !o.contains(&format!("{}/64", Lab::node_v6(node))))
        .unwrap_or(false)
}

struct ScenarioResult {
    scenario: Scenario,
    runs: Vec<Run>,
    failures: Vec<String>,
    v6_flushes: usize,
    /// Runs that started with the Lease away from its first holder (no hand-back after a restore).
    handbacks_missing: usize,
    load_before: String,
    load_after: String,
    elapsed: Duration,
}

fn run_scenario(args: &Args, scenario: Scenario, bin_dir: &Path, lab_exe: &Path) -> Result<ScenarioResult> {
    let t0 = Instant::now();
    let load_before = loadavg();
    let lab = Lab::new(&format!("{}{}", args.prefix, scenario_tag(scenario)))?;
    let mut opts = ClusterOptions::with_bin_dir(bin_dir);
    opts.topology = scenario.topology();
    opts.announcer_args = args.announcer_args.clone();
    if scenario == Scenario::NodeDeathFast {
        opts.announcer_args.extend(FAST_HEARTBEAT.iter().map(|s| s.to_string()));
    }
    eprintln!("[{}] starting lab {} ({} nodes)", scenario.name(), lab.prefix, args.nodes);
    let state = cluster::up_cluster(&lab, args.nodes, lab_exe, &opts)?;
    let _guard = LabGuard(lab.clone());
    let info = state.cluster.clone().context("no cluster info")?;
    let rt = info.runtime()?;
    let vip = rt.block_on(setup_service(info.clone(), Duration::from_secs(30)))??;
    let lease = cluster::service_lease_name("default", SERVICE, vip);
    wait_all_ready(&lab, args.nodes, Duration::from_secs(30))?;
    let home = rt.block_on(wait_stable_holder(
        info.clone(),
        lease.clone(),
        None,
        Duration::from_secs(1),
        Duration::from_secs(30),
    ))??;
    eprintln!("[{}] VIP {vip}, Lease {lease} held by {home}", scenario.name());

    let mut runs = Vec::new();
    let mut failures = Vec::new();
    let mut v6_flushes = 0;
    let mut handbacks_missing = 0;
    for run in 1..=args.runs {
        check_interrupted()?;
        // Stable: every announcer ready, the placement's choice holds the Lease, the client reaches it.
        wait_all_ready(&lab, args.nodes, Duration::from_secs(30))?;
        // A restored node may take its share back once it has been ready for the hand-over settle
        // time (5 s by default): let that pass, then take whoever holds the Lease stably.
        if run > 1 {
            std::thread::sleep(Duration::from_secs(6));
        }
        let holder = rt.block_on(wait_stable_holder(
            info.clone(),
            lease.clone(),
            None,
            Duration::from_secs(1),
            Duration::from_secs(30),
        ))??;
        if holder != home {
            handbacks_missing += 1;
        }
        let mut stable = false;
        for _ in 0..20 {
            if traffic_stable(&lab, vip, &holder)? {
                stable = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        if !stable {
            bail!("traffic to {vip} not answered by {holder} alone before run {run}");
        }
        let node = Lab::node_number(&holder).with_context(|| format!("holder {holder:?}"))?;

        // The probe runs on a thread inside the client namespace (no process start to time).
        let popts = ProbeOptions {
            timeout: REQUEST_TIMEOUT,
            stop_after_switch: Some(AFTER_SWITCH),
            ..ProbeOptions::new(vip, INTERVAL, PRE_FAULT + scenario.max_wait())
        };
        let probe_start = Instant::now();
        let handle = in_ns(&lab.client_ns(), move || probe::run_probe(&popts))?;
        std::thread::sleep(PRE_FAULT);
        let fault = Instant::now();
        apply_fault(&lab, scenario, node)?;
        let moved = rt
            .block_on(wait_new_holder(info.clone(), lease.clone(), holder.clone(), scenario.max_wait()))?
            .unwrap_or_else(|e| {
                eprintln!("  lease poll failed: {e:#}");
                None
            });
        let report = join(handle)?;
        let fault_ms = fault.duration_since(probe_start).as_secs_f64() * 1000.0;
        let r = measure(run, &holder, fault_ms, &report, moved.map(|(_, at)| at.duration_since(fault)));
        eprintln!(
            "[{}] run {run:>2}: {} -> {}  gap {:>6.0} ms  takeover {}  lease moved {}  ({}/{} answered)",
            scenario.name(),
            r.old,
            r.new.as_deref().unwrap_or("-"),
            r.gap_ms,
            fmt_opt(r.takeover_ms),
            fmt_opt(r.lease_moved_ms),
            r.answered,
            r.sent
        );
        if r.takeover_ms.is_none() {
            failures.push(format!(
                "run {run}: no other node answered within {:?} (lease moved: {})",
                scenario.max_wait(),
                fmt_opt(r.lease_moved_ms)
            ));
        }
        runs.push(r);
        if restore(&lab, scenario, node)? {
            v6_flushes += 1;
        }
    }
    // Keep the logs of the last lab for a look (they are removed with the lab).
    let keep = std::env::temp_dir().join(format!("ferrolb-bench-failover-{}", scenario.name()));
    common::keep_logs(&lab, &keep);
    drop(rt);
    Ok(ScenarioResult {
        scenario,
        runs,
        failures,
        v6_flushes,
        handbacks_missing,
        load_before,
        load_after: loadavg(),
        elapsed: t0.elapsed(),
    })
}

fn scenario_tag(s: Scenario) -> &'static str {
    match s {
        Scenario::Kill => "k",
        Scenario::Link => "l",
        Scenario::Term => "t",
        Scenario::NodeDeath => "d",
        Scenario::NodeDeathFast => "f",
        Scenario::SingleDeath => "s",
        Scenario::SingleFlap => "p",
    }
}

fn measure(run: usize, old: &str, fault_ms: f64, r: &ProbeReport, moved: Option<Duration>) -> Run {
    let first_new = r.answers.iter().find(|(t, n)| *t >= fault_ms && n != old);
    Run {
        run,
        old: old.to_string(),
        new: first_new.map(|(_, n)| n.clone()),
        gap_ms: r.longest_gap_ms,
        takeover_ms: first_new.map(|(t, _)| t - fault_ms),
        lease_moved_ms: moved.map(|d| d.as_secs_f64() * 1000.0),
        sent: r.sent,
        answered: r.answered,
        errors: r.errors.clone(),
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.0} ms")).unwrap_or_else(|| "-".into())
}

fn stats(values: impl Iterator<Item = f64>) -> (Option<f64>, Option<f64>, Option<f64>) {
    let v = sorted(values);
    (pct(&v, 50.0), pct(&v, 99.0), v.last().copied())
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let (bin_dir, lab_exe) = common::start("failover")?;
    eprintln!(
        "failover bench: {} run(s) per scenario, {} nodes, scenarios {}; load {}",
        args.runs,
        args.nodes,
        args.scenarios.iter().map(|s| s.name()).collect::<Vec<_>>().join(","),
        loadavg()
    );
    let mut results = Vec::new();
    for s in &args.scenarios {
        match run_scenario(&args, *s, &bin_dir, &lab_exe) {
            Ok(r) => results.push(r),
            Err(e) => {
                eprintln!("[{}] scenario failed: {e:#}", s.name());
                if INTERRUPTED.load(Ordering::SeqCst) {
                    return Err(e);
                }
                results.push(ScenarioResult {
                    scenario: *s,
                    runs: Vec::new(),
                    failures: vec![format!("scenario failed: {e:#}")],
                    v6_flushes: 0,
                    handbacks_missing: 0,
                    load_before: String::new(),
                    load_after: loadavg(),
                    elapsed: Duration::ZERO,
                });
            }
        }
    }

    println!();
    println!(
        "| scenario | runs | gap p50 | gap p99 | gap max | takeover p50 | takeover p99 | takeover max | Lease moved p50 | target (gap p50 / p99) | load before → after |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |");
    let mut json_out = Vec::new();
    let mut missed = Vec::new();
    for r in &results {
        let (g50, g99, gmax) = stats(r.runs.iter().map(|x| x.gap_ms));
        let (t50, t99, tmax) = stats(r.runs.iter().filter_map(|x| x.takeover_ms));
        let (l50, _, _) = stats(r.runs.iter().filter_map(|x| x.lease_moved_ms));
        let target = r
            .scenario
            .target()
            .map(|(a, b)| {
                let ok = g50.is_some_and(|g| g <= a) && g99.is_some_and(|g| g <= b) && r.failures.is_empty();
                if !ok {
                    missed.push(r.scenario.name());
                }
                format!("≤ {a:.0} / ≤ {b:.0} ms: {}", if ok { "met" } else { "MISSED" })
            })
            .unwrap_or_default();
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} → {} |",
            r.scenario.describe(),
            r.runs.len(),
            fmt_opt(g50),
            fmt_opt(g99),
            fmt_opt(gmax),
            fmt_opt(t50),
            fmt_opt(t99),
            fmt_opt(tmax),
            fmt_opt(l50),
            target,
            r.load_before,
            r.load_after
        );
        json_out.push(json!({
            "scenario": r.scenario.name(),
            "description": r.scenario.describe(),
            "runs": r.runs,
            "gap_ms": {"p50": g50, "p99": g99, "max": gmax},
            "takeover_ms": {"p50": t50, "p99": t99, "max": tmax},
            "lease_moved_ms_p50": l50,
            "failures": r.failures,
            "ipv6_address_flushed_by_link_down": r.v6_flushes,
            "runs_started_away_from_first_holder": r.handbacks_missing,
            "load_before": r.load_before,
            "load_after": r.load_after,
            "seconds": r.elapsed.as_secs_f64(),
        }));
    }
    for r in &results {
        for f in &r.failures {
            println!("{}: {f}", r.scenario.name());
        }
        if r.handbacks_missing > 0 {
            println!(
                "{}: {} run(s) started with the Lease on another node than its first holder {} (no hand-back)",
                r.scenario.name(),
                r.handbacks_missing,
                r.runs.first().map(|x| x.old.as_str()).unwrap_or("?")
            );
        }
        if r.v6_flushes > 0 {
            println!(
                "{}: taking eth0 down flushed the node's IPv6 address {} time(s) (re-added by the bench)",
                r.scenario.name(),
                r.v6_flushes
            );
        }
    }
    if let Ok(path) = std::env::var("FERROLB_BENCH_JSON") {
        let doc = json!({
            "bench": "failover",
            "runs_per_scenario": args.runs,
            "nodes": args.nodes,
            "interval_ms": INTERVAL.as_millis() as u64,
            "request_timeout_ms": REQUEST_TIMEOUT.as_millis() as u64,
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "scenarios": json_out,
        });
        std::fs::write(&path, serde_json::to_vec_pretty(&doc)?).with_context(|| format!("writing {path}"))?;
        eprintln!("JSON written to {path}");
    }
    // As a benchmark, a missed target is a failure (a smoke run under `cargo test` only reports).
    if full_run() && !missed.is_empty() {
        bail!("MISSED: {}", missed.join(", "));
    }
    Ok(())
}
