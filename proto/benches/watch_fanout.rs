//! Watch fan-out benchmark (issue 12; docs/benchmarks.md, "Announcer API: watch fan-out").
//!
//! The real `AnnouncerService`, served by `serve_unix_listener` on a unix socket, over a table of
//! 1,000 addresses; 100 watchers, each a gRPC client on its own connection in a child process
//! (`WatchAnnouncements` from scratch, no filter, so every watcher receives every change); then
//! 10,000 ownership changes (an address moves to another node) applied to the table by a writer
//! thread, at a paced rate and in one burst. Figures:
//!
//! - delivery latency: the writer stamps each announcement's `since` with the wall clock just
//!   before it applies the change; a watcher reads the clock when the change arrives; every
//!   (watcher, change) pair is one sample. Both processes read the same CLOCK_REALTIME, which
//!   is not stepped during a run of seconds;
//! - the server's CPU: `getrusage(RUSAGE_SELF)` of this process (the clients are in the child)
//!   from the first write to the last receipt, minus the writer thread's own (`RUSAGE_THREAD`).
//!
//! ```sh
//! cargo bench -p ferrolb-proto --bench watch_fanout                  # 100 watchers x 10,000 changes
//! cargo bench -p ferrolb-proto --bench watch_fanout -- --watchers 20 --changes 2000 --rates 1000
//! ```
//!
//! Options (after `--`): `--watchers N` (100), `--changes N` (10,000), `--addresses N` (1,000),
//! `--rates a,b` (changes per second, 0 for a burst; `1000,0`), `--timeout S` (60, per case).
//! Under `cargo test` (no `--bench`) it runs at smoke size and does not judge the target; as a
//! benchmark it exits non-zero and prints MISSED when a paced case's p99 exceeds 50 ms.

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use ferrolb_proto::server::SharedTable;
use ferrolb_proto::v1;
use nix::sys::resource::UsageWho;
use serde_json::json;

mod common;
use common::{
    ChildClients, Server, announcement, cpu_time, full_run, loadavg, option, options, percentile, say,
};

/// Target: p99 delivery latency of a paced case.
const TARGET_P99: Duration = Duration::from_millis(50);
/// Nodes the addresses move between.
const NODES: usize = 10;

struct Args {
    watchers: usize,
    changes: usize,
    addresses: usize,
    rates: Vec<u32>,
    timeout: Duration,
    full: bool,
}

fn parse_args() -> Result<Args> {
    let full = full_run();
    let options = options()?;
    let rates = match option::<String>(&options, "--rates")? {
        Some(list) => list.split(',').map(|r| r.trim().parse().context("--rates")).collect::<Result<_>>()?,
        None => vec![1000, 0],
    };
    let args = Args {
        watchers: option(&options, "--watchers")?.unwrap_or(if full { 100 } else { 10 }),
        changes: option(&options, "--changes")?.unwrap_or(if full { 10_000 } else { 500 }),
        addresses: option(&options, "--addresses")?.unwrap_or(if full { 1_000 } else { 100 }),
        rates,
        timeout: Duration::from_secs(option(&options, "--timeout")?.unwrap_or(if full { 60 } else { 15 })),
        full,
    };
    if args.watchers == 0 || args.changes == 0 || args.addresses == 0 {
        bail!("--watchers, --changes and --addresses must be at least 1");
    }
    Ok(args)
}

/// One case's figures.
struct Case {
    rate: u32,
    delivered: u64,
    expected: u64,
    resyncs: u64,
    /// Watchers that reached the table's final revision before the time bound.
    current: u64,
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
    write_wall: Duration,
    window: Duration,
    server_cpu: Duration,
    writer_cpu: Duration,
    watchers_cpu: Duration,
    load_before: String,
    load_after: String,
}

impl Case {
    /// Every watcher reached the final state: change by change, or (a burst past the change log's
    /// 4,096 entries) through the COMPACTED snapshot the protocol sends a watcher that fell behind.
    fn complete(&self, watchers: usize) -> bool {
        self.current == watchers as u64
    }

    /// Every change reached every watcher as a change.
    fn every_change(&self) -> bool {
        self.delivered == self.expected && self.resyncs == 0
    }

    fn judged(&self) -> bool {
        self.rate > 0
    }

    fn met(&self) -> bool {
        self.every_change() && self.p99 <= TARGET_P99
    }

    fn rate_label(&self) -> String {
        if self.rate == 0 { "burst".into() } else { format!("{}/s", self.rate) }
    }
}

/// Applies `changes` ownership changes to `table`, `rate` per second (0: back to back); returns
/// the writer's own CPU time and the time the writes took.
fn write_changes(table: &SharedTable, addresses: usize, changes: usize, rate: u32) -> (Duration, Duration) {
    let cpu_before = cpu_time(UsageWho::RUSAGE_THREAD);
    let start = Instant::now();
    for k in 0..changes {
        if rate > 0 {
            // An absolute schedule: a late change is written at once, never skipped.
            let due = start + Duration::from_secs_f64(k as f64 / f64::from(rate));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        // Change j of address n moves it from node j % NODES to node (j + 1) % NODES.
        let (n, j) = (k % addresses, k / addresses);
        let moved = table.apply(announcement(n, (j + 1) % NODES, SystemTime::now()));
        assert!(moved.is_some(), "change {k} changed nothing");
    }
    (cpu_time(UsageWho::RUSAGE_THREAD) - cpu_before, start.elapsed())
}

fn run_case(args: &Args, runtime: &tokio::runtime::Runtime, rate: u32) -> Result<Case> {
    let load_before = loadavg();
    let table = common::table(args.addresses);
    let server = runtime.block_on(async { Server::start(table.clone()) })?;
    let mut child = ChildClients::spawn(
        "watchers",
        &server.socket,
        &[
            format!("--watchers={}", args.watchers),
            format!("--changes={}", args.changes),
            format!("--timeout={}", args.timeout.as_secs()),
        ],
    )?;
    // Every watcher has its snapshot: the changes are all that is left to deliver.
    child.ready(args.timeout)?;
    let watching = *table.subscribe_watchers().borrow();
    if watching != args.watchers {
        bail!("{watching} watch streams open, {} expected", args.watchers);
    }
    let cpu_before = cpu_time(UsageWho::RUSAGE_SELF);
    let start = Instant::now();
    let writer = {
        let table = table.clone();
        let (addresses, changes) = (args.addresses, args.changes);
        std::thread::spawn(move || write_changes(&table, addresses, changes, rate))
    };
    let figures = child.finish(args.timeout + Duration::from_secs(10));
    let window = start.elapsed();
    let (writer_cpu, write_wall) = writer.join().map_err(|_| anyhow::anyhow!("the writer panicked"))?;
    let process_cpu = cpu_time(UsageWho::RUSAGE_SELF) - cpu_before;
    runtime.block_on(server.stop())?;
    let figures = figures?;
    let micros = |key: &str| Duration::from_micros(figures[key].as_u64().unwrap_or(u64::MAX));
    Ok(Case {
        rate,
        delivered: figures["received"].as_u64().context("received")?,
        expected: figures["expected"].as_u64().context("expected")?,
        resyncs: figures["resyncs"].as_u64().context("resyncs")?,
        current: figures["current"].as_u64().context("current")?,
        p50: micros("p50_us"),
        p90: micros("p90_us"),
        p99: micros("p99_us"),
        max: micros("max_us"),
        write_wall,
        window,
        server_cpu: process_cpu.saturating_sub(writer_cpu),
        writer_cpu,
        watchers_cpu: Duration::from_micros(figures["cpu_us"].as_u64().unwrap_or(0)),
        load_before,
        load_after: loadavg(),
    })
}

fn main() -> Result<ExitCode> {
    if let Some((role, socket)) = common::child_role() {
        if role != "watchers" {
            bail!("unknown child role {role:?}");
        }
        watchers::run(&socket)?;
        return Ok(ExitCode::SUCCESS);
    }
    let args = parse_args()?;
    let runtime = tokio::runtime::Runtime::new()?;
    eprintln!(
        "watch fan-out: {} watchers x {} changes over {} addresses, rates {:?} ({}); load {}",
        args.watchers,
        args.changes,
        args.addresses,
        args.rates,
        if args.full { "full size" } else { "smoke size" },
        loadavg()
    );
    let mut cases = Vec::new();
    for &rate in &args.rates {
        let case = run_case(&args, &runtime, rate)?;
        eprintln!(
            "  {}: {}/{} delivered, p50 {:?} p99 {:?}, server CPU {:?}",
            case.rate_label(),
            case.delivered,
            case.expected,
            case.p50,
            case.p99,
            case.server_cpu
        );
        cases.push(case);
    }

    println!();
    println!(
        "| changes | watchers | delivered as changes | latency p50 | p90 | p99 | max | writes took | server CPU (% of one core over the window) | watchers' CPU | load before → after | target p99 ≤ 50 ms |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |");
    let mut ok = true;
    for c in &cases {
        let verdict = match (args.full, c.judged()) {
            (false, _) => "(smoke size: not judged)".to_string(),
            (true, false) => "(burst: no target)".to_string(),
            (true, true) if c.met() => "met".to_string(),
            (true, true) => "MISSED".to_string(),
        };
        if args.full && c.judged() && !c.met() {
            ok = false;
        }
        println!(
            "| {} x {} | {} | {}/{}{} | {} | {} | {} | {} | {:.2} s | {:.2} s ({:.0} % over {:.2} s; writer {:.3} s apart) | {:.2} s | {} → {} | {} |",
            args.changes,
            c.rate_label(),
            args.watchers,
            c.delivered,
            c.expected,
            if c.resyncs > 0 {
                format!(" as changes, {} COMPACTED resyncs; {} watchers current", c.resyncs, c.current)
            } else {
                String::new()
            },
            common::ms(c.p50),
            common::ms(c.p90),
            common::ms(c.p99),
            common::ms(c.max),
            c.write_wall.as_secs_f64(),
            c.server_cpu.as_secs_f64(),
            100.0 * c.server_cpu.as_secs_f64() / c.window.as_secs_f64(),
            c.window.as_secs_f64(),
            c.writer_cpu.as_secs_f64(),
            c.watchers_cpu.as_secs_f64(),
            c.load_before,
            c.load_after,
            verdict
        );
    }
    let incomplete: Vec<String> = cases
        .iter()
        .filter(|c| !c.complete(args.watchers))
        .map(|c| format!("{} ({} of {} watchers)", c.rate_label(), c.current, args.watchers))
        .collect();
    if !incomplete.is_empty() {
        println!(
            "MISSED: watchers not at the final revision within the time bound: {}",
            incomplete.join(", ")
        );
        return Ok(ExitCode::FAILURE);
    }
    if !ok {
        println!("MISSED: p99 delivery latency above {} ms", TARGET_P99.as_millis());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The child: the watchers.
mod watchers {
    use super::*;
    use futures::future::join_all;

    struct Watcher {
        latencies_us: Vec<u32>,
        received: u64,
        resyncs: u64,
        /// Reached the final revision (not stopped by the time bound).
        current: bool,
    }

    /// Follows the table from a snapshot; reports readiness after the snapshot, then takes
    /// `changes` changes (or until `deadline`).
    async fn watch(
        socket: std::path::PathBuf,
        changes: u64,
        ready: tokio::sync::mpsc::Sender<u64>,
        deadline: tokio::time::Instant,
    ) -> Result<Watcher> {
        let channel = ferrolb_proto::unix_channel(&socket).await?;
        let mut client = ferrolb_proto::AnnouncerClient::new(channel);
        let mut stream = client.watch_announcements(v1::WatchRequest::default()).await?.into_inner();
        let mut target = None;
        let mut in_snapshot = false;
        let mut out = Watcher {
            latencies_us: Vec::with_capacity(changes as usize),
            received: 0,
            resyncs: 0,
            current: false,
        };
        loop {
            let message = tokio::time::timeout_at(deadline, stream.message()).await;
            let Ok(message) = message else { break };
            let Some(change) = message? else { bail!("the watch stream ended") };
            let arrived = SystemTime::now();
            let last_revision = change.revision;
            match v1::ChangeKind::try_from(change.kind).unwrap_or_default() {
                v1::ChangeKind::SnapshotStart => {
                    in_snapshot = true;
                    if target.is_some() {
                        out.resyncs += 1;
                    }
                }
                v1::ChangeKind::SnapshotEnd => {
                    in_snapshot = false;
                    if target.is_none() {
                        target = Some(change.revision + changes);
                        ready.send(change.revision).await?;
                    }
                }
                v1::ChangeKind::Added | v1::ChangeKind::Updated | v1::ChangeKind::Removed if !in_snapshot => {
                    let since = change
                        .announcement
                        .and_then(|a| a.since)
                        .and_then(|t| SystemTime::try_from(t).ok())
                        .context("a change without since")?;
                    let latency = arrived.duration_since(since).unwrap_or_default();
                    out.latencies_us.push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
                    out.received += 1;
                }
                _ => {}
            }
            if target.is_some_and(|t| last_revision >= t) && !in_snapshot {
                out.current = true;
                break;
            }
        }
        Ok(out)
    }

    pub fn run(socket: &std::path::Path) -> Result<()> {
        let options = options()?;
        let watchers: usize = option(&options, "--watchers")?.context("--watchers")?;
        let changes: u64 = option(&options, "--changes")?.context("--changes")?;
        let timeout = Duration::from_secs(option(&options, "--timeout")?.context("--timeout")?);
        let runtime = tokio::runtime::Runtime::new()?;
        let (results, cpu_before) = runtime.block_on(async {
            let deadline = tokio::time::Instant::now() + timeout;
            let (ready, mut readies) = tokio::sync::mpsc::channel(watchers);
            let tasks: Vec<_> = (0..watchers)
                .map(|_| tokio::spawn(watch(socket.to_path_buf(), changes, ready.clone(), deadline)))
                .collect();
            drop(ready);
            let mut revisions = Vec::new();
            while revisions.len() < watchers {
                match tokio::time::timeout_at(deadline, readies.recv()).await {
                    Ok(Some(revision)) => revisions.push(revision),
                    _ => bail!("{} of {watchers} watchers had their snapshot in time", revisions.len()),
                }
            }
            if revisions.iter().any(|r| *r != revisions[0]) {
                bail!("the watchers' snapshots are at different revisions: the table moved too early");
            }
            say("READY")?;
            // From here on: the deliveries only, not the connections and snapshots.
            let cpu_before = cpu_time(UsageWho::RUSAGE_SELF);
            let results =
                join_all(tasks).await.into_iter().map(|joined| joined?).collect::<Result<Vec<Watcher>>>()?;
            Ok((results, cpu_before))
        })?;
        let cpu = cpu_time(UsageWho::RUSAGE_SELF) - cpu_before;
        let mut latencies: Vec<u32> = results.iter().flat_map(|w| w.latencies_us.iter().copied()).collect();
        latencies.sort_unstable();
        let figures = json!({
            "expected": changes * watchers as u64,
            "received": results.iter().map(|w| w.received).sum::<u64>(),
            "resyncs": results.iter().map(|w| w.resyncs).sum::<u64>(),
            "current": results.iter().filter(|w| w.current).count(),
            "p50_us": percentile(&latencies, 50.0),
            "p90_us": percentile(&latencies, 90.0),
            "p99_us": percentile(&latencies, 99.0),
            "max_us": latencies.last(),
            "cpu_us": cpu.as_micros() as u64,
        });
        say(&figures.to_string())
    }
}
