//! Delegate-mode takeover benchmark (issue 12; docs/benchmarks.md, "Delegate-mode takeover").
//!
//! The same planned hand-over (SIGTERM to the holder's announcer) in two labs of 3 nodes: one with
//! the default `--datapath responder`, one with `--datapath delegate` and `ferrolb-nic-agent
//! --interface eth0` beside each announcer on its socket, so that the new holder's agent must add
//! the VIP to `eth0` (the kernel then answers ARP for it) and report it programmed before the
//! announcer sends its gratuitous ARP. Per run:
//!
//! - **Lease written**: a watch on the Service's Lease (from the switch namespace, started before
//!   the fault) sees it name another node; the time the event arrives stands for the write;
//! - **first answer**: a client in the lab sends an HTTP GET to the VIP every 5 ms; the send time
//!   of the first request the new holder answers;
//! - **takeover** = first answer − Lease written: what delegate mode adds on top of the election
//!   (watch, netlink, report, gratuitous ARP) is the difference between the two modes.
//!
//! ```sh
//! cargo build --release -p kube-sim -p ferrolb-ipam -p ferrolb-l2announcer -p ferrolb-lab -p ferrolb-cni
//! cargo bench -p ferrolb-lab --bench delegate_takeover                 # as root; 10 runs per mode
//! cargo bench -p ferrolb-lab --bench delegate_takeover -- --runs 3 --modes delegate
//! ```
//!
//! Options (after `--`): `--runs N` (10; 1 under `cargo test`), `--modes a,b` (`responder,delegate`),
//! `--prefix P` (lab prefix, default `flbd<pid>`). Target: delegate's takeover p50 and p99 at most
//! 50 ms above responder's; as a benchmark it exits non-zero and prints MISSED otherwise (under
//! `cargo test` the single run is not judged). Every lab is removed at the end, on errors and on
//! Ctrl-C.

use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferrolb_lab::cluster::{self, Binary, ClusterInfo, ClusterOptions, SYSTEM_NAMESPACE};
use ferrolb_lab::probe::{self, ProbeOptions};
use ferrolb_lab::{Lab, LabState};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, WatchEvent, WatchParams};
use nix::sys::signal::Signal;

mod common;
use common::service::{
    SERVICE, in_ns, join, setup_service, traffic_stable, wait_all_ready, wait_stable_holder,
};
use common::{LabGuard, check_interrupted, full_run, loadavg, options};

const NIC_AGENT: Binary = Binary { name: "ferrolb-nic-agent", package: "ferrolb-cni" };
const NODES: u8 = 3;
/// Probe interval (the resolution of the first answer) and per-request timeout.
const INTERVAL: Duration = Duration::from_millis(5);
const REQUEST_TIMEOUT: Duration = Duration::from_millis(200);
/// Probing before the fault, and how long a run waits for another node to answer.
const PRE_FAULT: Duration = Duration::from_millis(500);
const MAX_WAIT: Duration = Duration::from_secs(6);
/// Target: delegate's takeover at most this much above responder's (p50 and p99).
const TARGET_EXTRA_MS: f64 = 50.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Responder,
    Delegate,
}

impl Mode {
    fn parse(s: &str) -> Result<Self> {
        match s {
            "responder" => Ok(Self::Responder),
            "delegate" => Ok(Self::Delegate),
            other => bail!("unknown mode {other:?} (responder, delegate)"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Responder => "responder",
            Self::Delegate => "delegate",
        }
    }
}

struct Args {
    runs: usize,
    modes: Vec<Mode>,
    prefix: String,
    full: bool,
}

fn parse_args() -> Result<Args> {
    let full = full_run();
    let mut args = Args {
        runs: if full { 10 } else { 1 },
        modes: vec![Mode::Responder, Mode::Delegate],
        prefix: format!("flbd{}", std::process::id()),
        full,
    };
    for (name, value) in options()? {
        match name.as_str() {
            "--runs" => args.runs = value.parse().context("--runs")?,
            "--modes" => args.modes = value.split(',').map(Mode::parse).collect::<Result<_>>()?,
            "--prefix" => args.prefix = value,
            other => bail!("unknown option {other}"),
        }
    }
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    Ok(args)
}

/// One measured hand-over (ms).
#[derive(Debug, Clone)]
struct Run {
    /// Fault -> the Lease watch names another node.
    lease_ms: Option<f64>,
    /// Fault -> send time of the first request the new holder answered.
    answer_ms: Option<f64>,
    /// Lease written -> first answer: the takeover.
    takeover_ms: Option<f64>,
    /// Delegate mode: the new holder's `eth0` carries the VIP after the run (the agent's work).
    programmed: Option<bool>,
}

/// Watches the Lease from its current version and returns when an event names a holder other than
/// `old` (the arrival time of that event); `armed` is told once the watch is open.
async fn watch_lease_moved(
    info: ClusterInfo,
    lease: String,
    old: String,
    armed: std::sync::mpsc::Sender<()>,
    timeout: Duration,
) -> Result<Option<Instant>> {
    let api: Api<Lease> = Api::namespaced(info.client().await?, SYSTEM_NAMESPACE);
    let version = api.get(&lease).await?.metadata.resource_version.context("Lease without a version")?;
    let params = WatchParams::default()
        .fields(&format!("metadata.name={lease}"))
        .timeout(timeout.as_secs() as u32 + 5);
    let mut events = api.watch(&params, &version).await?.boxed();
    let _ = armed.send(());
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let event = match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(event)) => event?,
            Ok(None) | Err(_) => return Ok(None),
        };
        let arrived = Instant::now();
        if let WatchEvent::Added(l) | WatchEvent::Modified(l) = event {
            let holder = l.spec.and_then(|s| s.holder_identity).filter(|h| !h.is_empty());
            if holder.is_some_and(|h| h != old) {
                return Ok(Some(arrived));
            }
        }
    }
}

/// Starts `ferrolb-nic-agent` beside every announcer, on its socket, programming `eth0`.
fn start_agents(lab: &Lab, agent: &Path) -> Result<()> {
    let mut state = LabState::load(lab)?.context("no lab state")?;
    for i in 1..=NODES {
        let argv = vec![
            agent.to_str().context("agent path")?.to_string(),
            "--interface".into(),
            "eth0".into(),
            "--socket".into(),
            cluster::announcer_socket(lab, i).to_str().context("socket path")?.to_string(),
            "--metrics-addr".into(),
            "127.0.0.1:9092".into(),
        ];
        ferrolb_lab::spawn_in_ns_env(
            lab,
            &mut state,
            &format!("nic-agent-node{i}"),
            &lab.node_ns(i),
            &argv,
            &[],
        )?;
    }
    Ok(())
}

/// Whether `vip` is an address of `eth0` on node `node` (put there by its agent).
fn vip_on_eth0(lab: &Lab, node: u8, vip: IpAddr) -> Result<bool> {
    let out = ferrolb_lab::run("ip", &["-n", &lab.node_ns(node), "addr", "show", "dev", "eth0"])?;
    Ok(out.contains(&format!(" {vip}/")))
}

struct ModeResult {
    mode: Mode,
    runs: Vec<Run>,
    failures: Vec<String>,
    load_before: String,
    load_after: String,
}

fn run_mode(args: &Args, mode: Mode, bin_dir: &Path, lab_exe: &Path, agent: &Path) -> Result<ModeResult> {
    let load_before = loadavg();
    let lab = Lab::new(&format!("{}{}", args.prefix, &mode.name()[..1]))?;
    let mut opts = ClusterOptions::with_bin_dir(bin_dir);
    if mode == Mode::Delegate {
        opts.announcer_args = vec!["--datapath".into(), "delegate".into()];
    }
    eprintln!("[{}] starting lab {} ({NODES} nodes)", mode.name(), lab.prefix);
    let state = cluster::up_cluster(&lab, NODES, lab_exe, &opts)?;
    let _guard = LabGuard(lab.clone());
    if mode == Mode::Delegate {
        start_agents(&lab, agent)?;
    }
    let info = state.cluster.clone().context("no cluster info")?;
    let rt = info.runtime()?;
    let vip = rt.block_on(setup_service(info.clone(), Duration::from_secs(30)))??;
    let lease = cluster::service_lease_name("default", SERVICE, vip);
    let mut runs = Vec::new();
    let mut failures = Vec::new();
    for run in 1..=args.runs {
        check_interrupted()?;
        wait_all_ready(&lab, NODES, Duration::from_secs(30))?;
        if run > 1 {
            // A restarted node may take its share back after the hand-over settle time (5 s).
            std::thread::sleep(Duration::from_secs(6));
        }
        let holder = rt.block_on(wait_stable_holder(
            info.clone(),
            lease.clone(),
            None,
            Duration::from_secs(1),
            Duration::from_secs(30),
        ))??;
        let mut stable = false;
        for _ in 0..40 {
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

        let (armed, is_armed) = std::sync::mpsc::channel();
        let watcher = {
            let (info, lease, old) = (info.clone(), lease.clone(), holder.clone());
            let rt = info.runtime()?;
            std::thread::spawn(move || rt.block_on(watch_lease_moved(info, lease, old, armed, MAX_WAIT)))
        };
        is_armed.recv_timeout(Duration::from_secs(10)).context("the Lease watch did not open")?;
        let popts = ProbeOptions {
            timeout: REQUEST_TIMEOUT,
            stop_after_switch: Some(Duration::from_millis(500)),
            ..ProbeOptions::new(vip, INTERVAL, PRE_FAULT + MAX_WAIT)
        };
        let probe_start = Instant::now();
        let probe = in_ns(&lab.client_ns(), move || probe::run_probe(&popts))?;
        std::thread::sleep(PRE_FAULT);
        let fault = Instant::now();
        cluster::kill_announcer(&lab, node, Signal::SIGTERM)?;
        let moved = watcher.join().map_err(|_| anyhow::anyhow!("the Lease watch panicked"))???;
        let report = join(probe)?;
        let fault_ms = fault.duration_since(probe_start).as_secs_f64() * 1000.0;
        let first_new = report.answers.iter().find(|(t, n)| *t >= fault_ms && *n != holder);
        let lease_ms = moved.map(|at| at.duration_since(fault).as_secs_f64() * 1000.0);
        let answer_ms = first_new.map(|(t, _)| t - fault_ms);
        let programmed = match (mode, first_new) {
            (Mode::Delegate, Some((_, new))) => {
                Some(vip_on_eth0(&lab, Lab::node_number(new).unwrap_or(0), vip)?)
            }
            _ => None,
        };
        let r =
            Run { lease_ms, answer_ms, takeover_ms: lease_ms.zip(answer_ms).map(|(l, a)| a - l), programmed };
        eprintln!(
            "[{}] run {run:>2}: {holder} -> {}  Lease {}  first answer {}  takeover {}{}",
            mode.name(),
            first_new.map_or("-", |(_, n)| n.as_str()),
            fmt(r.lease_ms),
            fmt(r.answer_ms),
            fmt(r.takeover_ms),
            match r.programmed {
                Some(true) => "  (VIP on the new holder's eth0)",
                Some(false) => "  (VIP NOT on the new holder's eth0)",
                None => "",
            }
        );
        if r.takeover_ms.is_none() {
            failures.push(format!(
                "run {run}: Lease moved {}, first answer {}",
                fmt(lease_ms),
                fmt(answer_ms)
            ));
        }
        if r.programmed == Some(false) {
            failures.push(format!("run {run}: the new holder answered without the VIP on its eth0"));
        }
        runs.push(r);
        if let Some(pid) = cluster::announcer_pid(&lab, node)? {
            cluster::wait_exit(pid, Duration::from_secs(10));
        }
        cluster::restart_announcer(&lab, node)?;
    }
    keep_logs(&lab, mode);
    drop(rt);
    Ok(ModeResult { mode, runs, failures, load_before, load_after: loadavg() })
}

/// Keeps the last lab's logs for a look (they are removed with the lab).
fn keep_logs(lab: &Lab, mode: Mode) {
    common::keep_logs(
        lab,
        &std::env::temp_dir().join(format!("ferrolb-bench-delegate-takeover-{}", mode.name())),
    );
}

fn fmt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.0} ms")).unwrap_or_else(|| "-".into())
}

/// Nearest-rank percentile.
fn pct(values: impl Iterator<Item = f64>, p: f64) -> Option<f64> {
    common::pct(&common::sorted(values), p)
}

fn main() -> Result<ExitCode> {
    let args = parse_args()?;
    let (bin_dir, lab_exe) = common::start("delegate_takeover")?;
    let agent = cluster::find_binary(&bin_dir, NIC_AGENT)?;
    eprintln!(
        "delegate takeover: {} run(s) per mode, modes {}; load {}",
        args.runs,
        args.modes.iter().map(|m| m.name()).collect::<Vec<_>>().join(","),
        loadavg()
    );
    let mut results = Vec::new();
    for &mode in &args.modes {
        results.push(run_mode(&args, mode, &bin_dir, &lab_exe, &agent)?);
    }

    println!();
    println!(
        "| datapath | runs | Lease written p50 (after SIGTERM) | first answer p50 | takeover (Lease → answer) p50 | p99 | max | load before → after |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for r in &results {
        let takeovers = || r.runs.iter().filter_map(|x| x.takeover_ms);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} → {} |",
            r.mode.name(),
            r.runs.len(),
            fmt(pct(r.runs.iter().filter_map(|x| x.lease_ms), 50.0)),
            fmt(pct(r.runs.iter().filter_map(|x| x.answer_ms), 50.0)),
            fmt(pct(takeovers(), 50.0)),
            fmt(pct(takeovers(), 99.0)),
            fmt(pct(takeovers(), 100.0)),
            r.load_before,
            r.load_after
        );
    }
    let mut ok = true;
    for r in &results {
        for f in &r.failures {
            println!("{}: {f}", r.mode.name());
            ok = false;
        }
    }
    let by_mode = |m: Mode| results.iter().find(|r| r.mode == m);
    if let (Some(resp), Some(del)) = (by_mode(Mode::Responder), by_mode(Mode::Delegate)) {
        let take = |r: &ModeResult, p| pct(r.runs.iter().filter_map(|x| x.takeover_ms), p);
        let extra50 = take(del, 50.0).zip(take(resp, 50.0)).map(|(d, r)| d - r);
        let extra99 = take(del, 99.0).zip(take(resp, 99.0)).map(|(d, r)| d - r);
        let met =
            extra50.is_some_and(|x| x <= TARGET_EXTRA_MS) && extra99.is_some_and(|x| x <= TARGET_EXTRA_MS);
        let verdict = match (args.full, met) {
            (false, _) => "smoke size: not judged",
            (true, true) => "met",
            (true, false) => "MISSED",
        };
        println!(
            "delegate over responder: p50 {} , p99 {} (target ≤ {TARGET_EXTRA_MS:.0} ms): {verdict}",
            fmt(extra50),
            fmt(extra99)
        );
        if args.full && !met {
            ok = false;
        }
    }
    if !ok {
        println!("MISSED");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
