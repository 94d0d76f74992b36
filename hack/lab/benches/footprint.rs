//! Announcer footprint with many Services (docs/benchmarks.md, "Announcer footprint in the lab").
//!
//! A lab with 1 node (then 3, each a fresh lab): kube-sim, `ferrolb-ipam`, one announcer per node, a
//! pool `2001:db8:1::/112` (outside the LAN subnet: fine to announce in the lab) and 10,000
//! IPv6-only LoadBalancer Services. Reported: the time from the first create until the announcers
//! hold (and answer for) every address, then, after a settle pause, over a 30 s steady window: the
//! memory (VmRSS sampled every second, its median and maximum, and VmHWM, from `/proc/<pid>/status`)
//! and the idle CPU (utime + stime over the window, % of one core) of every announcer, and of
//! `ferrolb-ipam` and kube-sim for context. Target: ≤ 40 MiB RSS per announcer, judged on the
//! window's median: an idle announcer still decides every address every 30 s, and that round's
//! transient (about half the steady RSS at 10,000 Services) shows in the maximum, while a single
//! sample at the window's end lands on it or not by chance.
//!
//! ```sh
//! cargo build --release -p kube-sim -p ferrolb-ipam -p ferrolb-l2announcer -p ferrolb-lab
//! cargo bench -p ferrolb-lab --bench footprint
//! cargo bench -p ferrolb-lab --bench footprint -- --nodes 1 --services 1000 --window 5s   # quick check
//! FERROLB_BENCH_JSON=/tmp/footprint.json cargo bench -p ferrolb-lab --bench footprint
//! ```
//!
//! Options (after `--`, or environment): `--nodes 1,3` (`FERROLB_BENCH_NODES`, up to 100), `--services
//! 10000` (`FERROLB_BENCH_SERVICES`), `--window 30s` (`FERROLB_BENCH_WINDOW`), `--topology
//! split|single-nic` (default split), `--announcer-arg=--flag=v` (repeat), `--prefix P` (default
//! `flbb<pid>f`). Needs root. Labs are removed at the end, on errors and on Ctrl-C.
//!
//! The liveness scale check (docs/benchmarks.md, "Liveness at scale") is this bench with few
//! Services and many nodes, where every announcer's idle CPU is what its peer channel and watches
//! cost:
//!
//! ```sh
//! cargo bench -p ferrolb-lab --bench footprint -- --nodes 5,20,100 --services 50 --topology single-nic
//! ```
//!
//! With more than ten nodes the table shows the announcers' median and maximum, not each one.

use anyhow::{Context, Result, bail};
use ferrolb_lab::cluster::{self, ClusterInfo, ClusterOptions, SYSTEM_NAMESPACE};
use ferrolb_lab::{Lab, Topology};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, ListParams};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod common;
use common::{LabGuard, check_interrupted, create_pool_and_policy, full_run, loadavg, options};

const NAMESPACE: &str = "default";
/// 2001:db8:1::/112 without its first address: `2001:db8:1::` gives the Lease name
/// `ferrolb-l2-default-svc-00000-2001-db8-1--`, which ends in `-` and is refused (422), see
/// docs/benchmarks.md.
const POOL_START: &str = "2001:db8:1::1";
const POOL_STOP: &str = "2001:db8:1::ffff";
const RSS_TARGET_MIB: f64 = 40.0;
/// Target of the liveness scale check (`--topology single-nic`): an idle announcer's CPU, median over
/// the lab's announcers, in % of one core (issue 9).
const IDLE_CPU_TARGET_PERCENT: f64 = 1.0;

#[derive(Debug)]
struct Args {
    nodes: Vec<u8>,
    services: usize,
    window: Duration,
    announcer_args: Vec<String>,
    prefix: String,
    topology: Topology,
}

fn parse_nodes(v: &str) -> Result<Vec<u8>> {
    v.split(',').map(|s| s.trim().parse::<u8>().context("node count")).collect()
}

fn parse_args() -> Result<Args> {
    let full = full_run();
    let mut a = Args {
        nodes: match std::env::var("FERROLB_BENCH_NODES") {
            Ok(v) => parse_nodes(&v)?,
            Err(_) if full => vec![1, 3],
            Err(_) => vec![1],
        },
        services: std::env::var("FERROLB_BENCH_SERVICES")
            .ok()
            .map(|v| v.parse())
            .transpose()?
            .unwrap_or(if full { 10_000 } else { 200 }),
        window: match std::env::var("FERROLB_BENCH_WINDOW") {
            Ok(v) => humantime::parse_duration(&v).context("FERROLB_BENCH_WINDOW")?,
            Err(_) if full => Duration::from_secs(30),
            Err(_) => Duration::from_secs(5),
        },
        announcer_args: Vec::new(),
        prefix: format!("flbb{}f", std::process::id()),
        topology: Topology::Split,
    };
    for (name, value) in options()? {
        match name.as_str() {
            "--nodes" => a.nodes = parse_nodes(&value)?,
            "--services" => a.services = value.parse().context("--services")?,
            "--window" => a.window = humantime::parse_duration(&value).context("--window")?,
            "--announcer-arg" => a.announcer_args.push(value),
            "--prefix" => a.prefix = value,
            "--topology" => {
                a.topology = match value.as_str() {
                    "split" => Topology::Split,
                    "single-nic" => Topology::SingleNic,
                    other => bail!("--topology: split or single-nic, not {other:?}"),
                }
            }
            other => bail!("unknown option {other}"),
        }
    }
    if a.nodes.is_empty() || a.nodes.iter().any(|n| !(1..=ferrolb_lab::MAX_NODES).contains(n)) {
        bail!("--nodes: counts between 1 and {}", ferrolb_lab::MAX_NODES);
    }
    if a.services == 0 || a.services > 65_535 {
        bail!("--services: 1..65536 (the pool holds 65,535)");
    }
    Ok(a)
}

/// Runs `f` on a new thread inside network namespace `ns`.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let path = format!("/var/run/netns/{ns}");
    let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
    let ns = ns.to_string();
    std::thread::spawn(move || {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("entering network namespace {ns}"))?;
        Ok(f())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("thread panicked"))?
}

/// Sum of a metric's samples in node `i`'s announcer `/metrics` (asked from inside its namespace).
fn announcer_metric(lab: &Lab, i: u8, name: &'static str) -> Result<f64> {
    Ok(announcer_metrics(lab, i, &[name])?[0])
}

/// Several series from one scrape of node `i`'s `/metrics`: each `series` is a metric name (summed
/// over its labels) or a name with its labels (`name{reason="x"}`).
fn announcer_metrics(lab: &Lab, i: u8, series: &[&str]) -> Result<Vec<f64>> {
    let text = in_ns(&lab.node_ns(i), || {
        ferrolb_lab::probe::http_get("http://127.0.0.1:9090/metrics", Duration::from_secs(2))
    })??;
    let mut sums = vec![0.0; series.len()];
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((key, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.parse::<f64>() else { continue };
        for (wanted, sum) in series.iter().zip(&mut sums) {
            let bare = !wanted.contains('{') && key.strip_prefix(wanted).is_some_and(|r| r.starts_with('{'));
            if key == *wanted || bare {
                *sum += value;
            }
        }
    }
    Ok(sums)
}

/// What the settle loop reads from each announcer: answered, and held but stood down by reason.
const SETTLE_SERIES: [&str; 3] = [
    "ferrolb_announcer_addresses_answered",
    "ferrolb_announcer_addresses_stood_down{reason=\"not-vouched\"}",
    "ferrolb_announcer_addresses_stood_down{reason=\"takeover-notice\"}",
];

/// Creates `n` IPv6-only Services, 64 in flight.
async fn create_services(client: kube::Client, n: usize) -> Result<()> {
    let names = (0..n).map(|i| format!("svc-{i:05}"));
    Ok(ferrolb_testkit::services::create_ipv6(client, NAMESPACE, names, 64).await?)
}

/// Per-service Leases with a holder (one API listing).
async fn held_leases(client: kube::Client) -> Result<usize> {
    let api: Api<Lease> = Api::namespaced(client, SYSTEM_NAMESPACE);
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|l| l.metadata.name.as_deref().is_some_and(|n| n.starts_with("ferrolb-l2-")))
        .filter(|l| l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()).is_some_and(|h| !h.is_empty()))
        .count())
}

#[derive(Debug, Clone, Copy, Default)]
struct Mem {
    rss_kib: u64,
    hwm_kib: u64,
}

fn mem(pid: u32) -> Result<Mem> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |k: &str| -> u64 {
        s.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Mem { rss_kib: field("VmRSS:"), hwm_kib: field("VmHWM:") })
}

/// utime + stime in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = s.rsplit_once(')').context("malformed stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime 14, stime 15.
    let utime: u64 = f.get(11).context("no utime")?.parse()?;
    let stime: u64 = f.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

fn clock_ticks() -> f64 {
    ferrolb_lab::run("getconf", &["CLK_TCK"]).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(100.0)
}

#[derive(Debug, Clone)]
struct Proc {
    role: String,
    pid: u32,
    idle: Mem,
    /// At the window's end (VmHWM: the peak since the start).
    after: Mem,
    /// VmRSS over the window, sampled every second.
    window: Samples,
    cpu_percent: f64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Samples {
    median_kib: u64,
    max_kib: u64,
}

impl Samples {
    fn of(mut kib: Vec<u64>) -> Self {
        kib.sort_unstable();
        Self {
            median_kib: kib.get(kib.len() / 2).copied().unwrap_or(0),
            max_kib: kib.last().copied().unwrap_or(0),
        }
    }
}

struct LabResult {
    nodes: u8,
    creates: Duration,
    all_held: Duration,
    leases_held_api: usize,
    addresses_answered: f64,
    procs: Vec<Proc>,
    window: Duration,
    load_before: String,
    load_after: String,
}

fn run_lab(
    args: &Args,
    nodes: u8,
    bin_dir: &std::path::Path,
    lab_exe: &std::path::Path,
) -> Result<LabResult> {
    let load_before = loadavg();
    let lab = Lab::new(&format!("{}{nodes}", args.prefix))?;
    let mut opts = ClusterOptions::with_bin_dir(bin_dir);
    opts.announcer_args = args.announcer_args.clone();
    opts.topology = args.topology;
    // A hundred announcers listing at once take kube-sim a while to serve.
    opts.startup_timeout = Duration::from_secs(120);
    eprintln!("[{nodes} node(s)] starting lab {} ({:?} topology)", lab.prefix, args.topology);
    let state = cluster::up_cluster(&lab, nodes, lab_exe, &opts)?;
    let _guard = LabGuard(lab.clone());
    let info: ClusterInfo = state.cluster.clone().context("no cluster info")?;
    let rt = info.runtime()?;
    let i2 = info.clone();
    rt.block_on(async move {
        create_pool_and_policy(i2.client().await?, json!({"start": POOL_START, "stop": POOL_STOP})).await
    })??;
    std::thread::sleep(Duration::from_secs(3));

    let mut roles: Vec<String> = (1..=nodes).map(cluster::announcer_role).collect();
    roles.push(cluster::IPAM_ROLE.into());
    roles.push(cluster::KUBE_SIM_ROLE.into());
    let mut pids = Vec::new();
    for r in &roles {
        let pid = cluster::process_pid(&lab, r)?.with_context(|| format!("{r} does not run"))?;
        pids.push((r.clone(), pid, mem(pid)?));
    }
    // The API server and the IPAM controller get their own machines in a cluster; here they share
    // two cores with up to a hundred announcers, and a starved kube-sim made every Lease read time
    // out. A higher scheduling priority models the control plane having its own CPU; what the
    // bench measures per announcer (CPU time, RSS) does not depend on it.
    for (role, pid, _) in &pids {
        if !role.starts_with("announcer") {
            let status =
                std::process::Command::new("renice").args(["-n", "-10", "-p", &pid.to_string()]).output();
            if !status.is_ok_and(|o| o.status.success()) {
                eprintln!("[{nodes} node(s)] could not raise the priority of {role} (pid {pid})");
            }
        }
    }

    eprintln!("[{nodes} node(s)] creating {} Services", args.services);
    let t0 = Instant::now();
    let i2 = info.clone();
    let n = args.services;
    rt.block_on(async move { create_services(i2.client().await?, n).await })??;
    let creates = t0.elapsed();
    eprintln!("[{nodes} node(s)] creates done after {:.2} s", creates.as_secs_f64());
    let timeout = Duration::from_secs(600);
    let mut last_print = Instant::now();
    let mut progress = (0.0, Instant::now());
    // Per node, its last successful scrape: a scrape that times out on a loaded machine says nothing,
    // it must not count as zero.
    let mut settle_by_node: Vec<[f64; 3]> = vec![[0.0; 3]; usize::from(nodes)];
    let all_held = loop {
        check_interrupted()?;
        // Held from one Lease list; the announcers' metrics (a scrape of every node, slow with a
        // hundred of them, and CPU the announcers would spend on the bench) only once all are held.
        let i2 = info.clone();
        let held = rt
            .block_on(async move { held_leases(i2.client().await?).await })
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0) as f64;
        if held as usize >= args.services {
            for i in 1..=nodes {
                if let Ok(v) = announcer_metrics(&lab, i, &SETTLE_SERIES) {
                    settle_by_node[usize::from(i - 1)] = [v[0], v[1], v[2]];
                }
            }
        }
        let sum = |k: usize| settle_by_node.iter().map(|v| v[k]).sum::<f64>();
        let (answered, not_vouched, noticed) = (sum(0), sum(1), sum(2));
        if held as usize >= args.services && answered as usize >= args.services {
            break t0.elapsed();
        }
        if last_print.elapsed() > Duration::from_secs(5) {
            // Held but silent: why the holders do not answer (a holder that can neither renew its
            // heartbeat Lease nor get its heartbeats acknowledged stands down, by design).
            eprintln!(
                "[{nodes} node(s)] {:.0} s: leases held {held}, addresses answered {answered}, stood down: \
                 {not_vouched} not vouched, {noticed} on a takeover notice",
                t0.elapsed().as_secs_f64()
            );
            last_print = Instant::now();
        }
        if held + answered > progress.0 {
            progress = (held + answered, Instant::now());
        }
        if t0.elapsed() > timeout || progress.1.elapsed() > Duration::from_secs(60) {
            keep_logs(&lab, nodes);
            bail!(
                "announcers hold {held} of {} addresses and answer {answered} after {:.0} s ({not_vouched} \
                 stood down not vouched, {noticed} on a takeover notice), no progress for 60 s (logs kept in {})",
                args.services,
                t0.elapsed().as_secs_f64(),
                logs_dir(nodes).display()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!("[{nodes} node(s)] all addresses held and answered after {:.2} s", all_held.as_secs_f64());
    let i2 = info.clone();
    let leases_held_api = rt.block_on(async move { held_leases(i2.client().await?).await })??;
    let mut addresses_answered = 0.0;
    for i in 1..=nodes {
        addresses_answered += announcer_metric(&lab, i, "ferrolb_announcer_addresses_answered")?;
    }
    // Past the hand-over settle time, then the steady window (the bench only sleeps meanwhile).
    std::thread::sleep(Duration::from_secs(6));
    let ticks = clock_ticks();
    let before: Vec<u64> = pids.iter().map(|(_, p, _)| cpu_ticks(*p)).collect::<Result<_>>()?;
    let w0 = Instant::now();
    let mut samples: Vec<Vec<u64>> = vec![Vec::new(); pids.len()];
    let mut next_sample = w0;
    while w0.elapsed() < args.window {
        check_interrupted()?;
        if Instant::now() >= next_sample {
            for ((_, pid, _), s) in pids.iter().zip(&mut samples) {
                s.push(mem(*pid)?.rss_kib);
            }
            next_sample += Duration::from_secs(1);
        }
        std::thread::sleep(Duration::from_millis(200).min(args.window.saturating_sub(w0.elapsed())));
    }
    let window = w0.elapsed();
    let mut procs = Vec::new();
    for (((role, pid, idle), b), mut s) in pids.iter().zip(before).zip(samples) {
        let a = cpu_ticks(*pid)?;
        let after = mem(*pid)?;
        s.push(after.rss_kib);
        procs.push(Proc {
            role: role.clone(),
            pid: *pid,
            idle: *idle,
            after,
            window: Samples::of(s),
            cpu_percent: (a - b) as f64 / ticks / window.as_secs_f64() * 100.0,
        });
    }
    drop(rt);
    keep_logs(&lab, nodes);
    Ok(LabResult {
        nodes,
        creates,
        all_held,
        leases_held_api,
        addresses_answered,
        procs,
        window,
        load_before,
        load_after: loadavg(),
    })
}

fn logs_dir(nodes: u8) -> PathBuf {
    std::env::temp_dir().join(format!("ferrolb-bench-footprint-{nodes}"))
}

/// Copies the lab's process logs out of the lab (they are removed with it).
fn keep_logs(lab: &Lab, nodes: u8) {
    common::keep_logs(lab, &logs_dir(nodes));
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let (bin_dir, lab_exe) = common::start("footprint")?;
    eprintln!(
        "footprint bench: {} Services, nodes {:?}, window {:?}; load {}",
        args.services,
        args.nodes,
        args.window,
        loadavg()
    );
    let mut results = Vec::new();
    // A size that fails is reported and the others still run and print: at a hundred nodes the
    // lab's limits show first, and the smaller sizes' figures should not be lost with it.
    let mut failed = Vec::new();
    for &n in &args.nodes {
        match run_lab(&args, n, &bin_dir, &lab_exe) {
            Ok(r) => results.push(r),
            Err(e) => {
                eprintln!("[{n} node(s)] FAILED: {e:#}");
                failed.push(n);
            }
        }
        check_interrupted()?;
    }

    println!();
    println!(
        "| nodes | Services | creates done | all held + answered | process | RSS before Services | VmRSS (window median / max) | VmHWM | idle CPU (% of a core) | load before → after |"
    );
    println!("| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |");
    let mut json_out = Vec::new();
    let mut worst_rss = 0.0f64;
    let mut worst_cpu_median = 0.0f64;
    for r in &results {
        let announcers: Vec<&Proc> = r.procs.iter().filter(|p| p.role.starts_with("announcer")).collect();
        worst_rss = announcers.iter().map(|p| mib(p.window.median_kib)).fold(worst_rss, f64::max);
        let mut cpu: Vec<f64> = announcers.iter().map(|p| p.cpu_percent).collect();
        cpu.sort_by(f64::total_cmp);
        if let Some(median) = cpu.get(cpu.len() / 2) {
            worst_cpu_median = worst_cpu_median.max(*median);
        }
        let rows: Vec<(String, Proc)> = if announcers.len() > 10 {
            let others = r.procs.iter().filter(|p| !p.role.starts_with("announcer")).cloned();
            summarize(&announcers).into_iter().chain(others.map(|p| (p.role.clone(), p))).collect()
        } else {
            r.procs.iter().map(|p| (p.role.clone(), p.clone())).collect()
        };
        for (role, p) in &rows {
            println!(
                "| {} | {} | {:.2} s | {:.2} s | {} | {:.1} MiB | {:.1} / {:.1} MiB | {:.1} MiB | {:.2} % | {} → {} |",
                r.nodes,
                args.services,
                r.creates.as_secs_f64(),
                r.all_held.as_secs_f64(),
                role,
                mib(p.idle.rss_kib),
                mib(p.window.median_kib),
                mib(p.window.max_kib),
                mib(p.after.hwm_kib),
                p.cpu_percent,
                r.load_before,
                r.load_after
            );
        }
        json_out.push(json!({
            "nodes": r.nodes,
            "services": args.services,
            "creates_seconds": r.creates.as_secs_f64(),
            "all_held_and_answered_seconds": r.all_held.as_secs_f64(),
            "service_leases_held_api": r.leases_held_api,
            "addresses_answered_metric": r.addresses_answered,
            "window_seconds": r.window.as_secs_f64(),
            "processes": r.procs.iter().map(|p| json!({
                "role": p.role, "pid": p.pid,
                "rss_before_services_kib": p.idle.rss_kib,
                "vm_rss_kib": p.after.rss_kib, "vm_hwm_kib": p.after.hwm_kib,
                "vm_rss_window_median_kib": p.window.median_kib,
                "vm_rss_window_max_kib": p.window.max_kib,
                "idle_cpu_percent_of_one_core": p.cpu_percent,
            })).collect::<Vec<_>>(),
            "load_before": r.load_before,
            "load_after": r.load_after,
        }));
    }
    for r in &results {
        println!(
            "{} node(s): per-service Leases held (API) {}, addresses answered (metrics, summed) {}",
            r.nodes, r.leases_held_api, r.addresses_answered
        );
    }
    // A size that failed has no figures: the targets are judged on the sizes that ran, and said
    // to be unmeasured when none did.
    let mut missed = Vec::new();
    let verdict = |ok: bool| {
        if results.is_empty() {
            "not measured"
        } else if ok {
            "met"
        } else {
            "MISSED"
        }
    };
    let rss_ok = worst_rss <= RSS_TARGET_MIB;
    println!(
        "Target: announcer VmRSS ≤ {RSS_TARGET_MIB:.0} MiB (window median): {} (largest {worst_rss:.1} MiB)",
        verdict(rss_ok)
    );
    if !rss_ok {
        missed.push(format!("announcer VmRSS {worst_rss:.1} MiB > {RSS_TARGET_MIB:.0} MiB"));
    }
    if args.topology == Topology::SingleNic {
        let cpu_ok = worst_cpu_median <= IDLE_CPU_TARGET_PERCENT;
        println!(
            "Target (liveness scale check): announcer idle CPU ≤ {IDLE_CPU_TARGET_PERCENT:.0} % of a core, median: {} (worst median {worst_cpu_median:.2} %)",
            verdict(cpu_ok)
        );
        if !cpu_ok {
            missed.push(format!(
                "announcer idle CPU median {worst_cpu_median:.2} % > {IDLE_CPU_TARGET_PERCENT:.0} %"
            ));
        }
    }
    if let Ok(path) = std::env::var("FERROLB_BENCH_JSON") {
        let doc = json!({
            "bench": "footprint",
            "services": args.services,
            "pool": format!("{POOL_START}-{POOL_STOP}"),
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "labs": json_out,
        });
        std::fs::write(&path, serde_json::to_vec_pretty(&doc)?).with_context(|| format!("writing {path}"))?;
        eprintln!("JSON written to {path}");
    }
    if !failed.is_empty() {
        bail!("no figures for {failed:?} node(s): see the errors above");
    }
    if full_run() && !missed.is_empty() {
        bail!("MISSED: {}", missed.join("; "));
    }
    Ok(())
}

/// The announcers' median and maximum of each figure (each figure on its own: the two rows are not
/// processes).
fn summarize(announcers: &[&Proc]) -> Vec<(String, Proc)> {
    let pick = |f: &dyn Fn(&Proc) -> f64, q: f64| -> f64 {
        let mut v: Vec<f64> = announcers.iter().map(|p| f(p)).collect();
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * q).round() as usize]
    };
    let row = |label: &str, q: f64| {
        let kib = |f: &dyn Fn(&Proc) -> f64| pick(f, q) as u64;
        (
            format!("{} announcers, {label}", announcers.len()),
            Proc {
                role: label.into(),
                pid: 0,
                idle: Mem {
                    rss_kib: kib(&|p| p.idle.rss_kib as f64),
                    hwm_kib: kib(&|p| p.idle.hwm_kib as f64),
                },
                after: Mem {
                    rss_kib: kib(&|p| p.after.rss_kib as f64),
                    hwm_kib: kib(&|p| p.after.hwm_kib as f64),
                },
                window: Samples {
                    median_kib: kib(&|p| p.window.median_kib as f64),
                    max_kib: kib(&|p| p.window.max_kib as f64),
                },
                cpu_percent: pick(&|p| p.cpu_percent, q),
            },
        )
    };
    vec![row("median", 0.5), row("max", 1.0)]
}
