//! `GetOwner` throughput benchmark (issue 12; docs/benchmarks.md, "Announcer API: GetOwner calls
//! per second").
//!
//! The real `AnnouncerService`, served by `serve_unix_listener` on a unix socket, over a table of
//! 1,000 addresses. A child process (this binary again) opens several connections and keeps a
//! fixed number of calls in flight over them, each caller asking for the next address in turn,
//! until a fixed count of calls is done or a time bound passes. Figures: calls per second over
//! the whole run (first call to last answer), each call's latency as its caller sees it, and the
//! server's CPU (`getrusage(RUSAGE_SELF)` of this process, which only serves: the clients are in
//! the child).
//!
//! ```sh
//! cargo bench -p ferrolb-proto --bench get_owner                          # 400,000 calls
//! cargo bench -p ferrolb-proto --bench get_owner -- --connections 1 --in-flight 1 --calls 20000
//! ```
//!
//! Options (after `--`): `--connections N` (4), `--in-flight N` (calls outstanding over all
//! connections, 32), `--calls N` (400,000), `--duration S` (time bound, 60), `--addresses N`
//! (1,000), `--server announcer|plain-tonic` (`plain-tonic`: the service on tonic's server without
//! the `:authority` rewriter, health and reflection; a diagnostic, not the product). Under `cargo test` (no `--bench`) it runs at smoke size and does not judge the
//! target; as a benchmark it exits non-zero and prints MISSED below 20,000 calls/s.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferrolb_proto::v1;
use nix::sys::resource::UsageWho;
use serde_json::json;

mod common;
use common::{
    ChildClients, Server, Transport, cpu_time, full_run, loadavg, option, options, percentile, say,
};

/// Target: answered calls per second.
const TARGET_RATE: f64 = 20_000.0;

struct Args {
    connections: usize,
    in_flight: usize,
    calls: usize,
    duration: Duration,
    addresses: usize,
    transport: Transport,
    full: bool,
}

fn parse_args() -> Result<Args> {
    let full = full_run();
    let options = options()?;
    let args = Args {
        connections: option(&options, "--connections")?.unwrap_or(if full { 4 } else { 2 }),
        in_flight: option(&options, "--in-flight")?.unwrap_or(if full { 32 } else { 8 }),
        calls: option(&options, "--calls")?.unwrap_or(if full { 400_000 } else { 2_000 }),
        duration: Duration::from_secs(option(&options, "--duration")?.unwrap_or(if full { 60 } else { 15 })),
        addresses: option(&options, "--addresses")?.unwrap_or(1_000),
        transport: match option::<String>(&options, "--server")?.as_deref() {
            None | Some("announcer") => Transport::Announcer,
            Some("plain-tonic") => Transport::PlainTonic,
            Some(other) => bail!("--server {other:?}: announcer or plain-tonic"),
        },
        full,
    };
    if args.connections == 0 || args.in_flight < args.connections || args.calls == 0 || args.addresses == 0 {
        bail!("need --connections ≥ 1, --in-flight ≥ --connections, --calls ≥ 1, --addresses ≥ 1");
    }
    Ok(args)
}

fn main() -> Result<ExitCode> {
    if let Some((role, socket)) = common::child_role() {
        if role != "callers" {
            bail!("unknown child role {role:?}");
        }
        callers::run(&socket)?;
        return Ok(ExitCode::SUCCESS);
    }
    let args = parse_args()?;
    let load_before = loadavg();
    eprintln!(
        "GetOwner: {} calls over {} connections, {} in flight, {} addresses, server {:?} ({}); load {load_before}",
        args.calls,
        args.connections,
        args.in_flight,
        args.addresses,
        args.transport,
        if args.full { "full size" } else { "smoke size" },
    );
    let runtime = tokio::runtime::Runtime::new()?;
    let table = common::table(args.addresses);
    let server = runtime.block_on(async { Server::start_with(table, args.transport) })?;
    let mut child = ChildClients::spawn(
        "callers",
        &server.socket,
        &[
            format!("--connections={}", args.connections),
            format!("--in-flight={}", args.in_flight),
            format!("--calls={}", args.calls),
            format!("--duration={}", args.duration.as_secs()),
            format!("--addresses={}", args.addresses),
        ],
    )?;
    child.ready(Duration::from_secs(30))?;
    let cpu_before = cpu_time(UsageWho::RUSAGE_SELF);
    let start = Instant::now();
    child.go()?;
    let figures = child.finish(args.duration + Duration::from_secs(30));
    let window = start.elapsed();
    let server_cpu = cpu_time(UsageWho::RUSAGE_SELF) - cpu_before;
    runtime.block_on(server.stop())?;
    let figures = figures?;
    let load_after = loadavg();

    let answered = figures["answered"].as_u64().context("answered")?;
    let errors = figures["errors"].as_u64().context("errors")?;
    let seconds = figures["seconds"].as_f64().context("seconds")?;
    let rate = answered as f64 / seconds;
    let micros = |key: &str| Duration::from_micros(figures[key].as_u64().unwrap_or(u64::MAX));
    let complete = answered == args.calls as u64 && errors == 0;
    println!();
    println!(
        "| calls | connections | in flight | answered | errors | time | calls/s | latency p50 | p99 | max | server CPU (µs per call; % of one core) | clients' CPU | load before → after | target ≥ 20,000/s |"
    );
    println!(
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
    );
    let judged = args.full && args.transport == Transport::Announcer;
    let verdict = if !args.full {
        "(smoke size: not judged)"
    } else if !judged {
        "(diagnostic server: not judged)"
    } else if complete && rate >= TARGET_RATE {
        "met"
    } else {
        "MISSED"
    };
    println!(
        "| {} | {} | {} | {answered} | {errors} | {seconds:.2} s | {rate:.0} | {} | {} | {} | {:.2} s ({:.1} µs; {:.0} %) | {:.2} s | {load_before} → {load_after} | {verdict} |",
        args.calls,
        args.connections,
        args.in_flight,
        common::ms(micros("p50_us")),
        common::ms(micros("p99_us")),
        common::ms(micros("max_us")),
        server_cpu.as_secs_f64(),
        server_cpu.as_secs_f64() * 1e6 / answered.max(1) as f64,
        100.0 * server_cpu.as_secs_f64() / window.as_secs_f64(),
        figures["cpu_us"].as_f64().unwrap_or(0.0) / 1e6,
    );
    if !complete {
        println!(
            "MISSED: {answered} of {} calls answered within {:?}, {errors} errors",
            args.calls, args.duration
        );
        return Ok(ExitCode::FAILURE);
    }
    if judged && rate < TARGET_RATE {
        println!("MISSED: {rate:.0} GetOwner calls/s, below {TARGET_RATE:.0}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The child: the callers.
mod callers {
    use super::*;
    use futures::future::join_all;

    struct Caller {
        latencies_us: Vec<u32>,
        errors: u64,
    }

    /// Takes call numbers from `next` until `calls` are taken or `deadline` passed.
    async fn call(
        mut client: ferrolb_proto::AnnouncerClient<tonic::transport::Channel>,
        addresses: Arc<Vec<String>>,
        next: Arc<AtomicUsize>,
        calls: usize,
        deadline: Instant,
    ) -> Caller {
        let mut out = Caller { latencies_us: Vec::with_capacity(calls / 8), errors: 0 };
        loop {
            let n = next.fetch_add(1, Ordering::Relaxed);
            if n >= calls || Instant::now() >= deadline {
                return out;
            }
            let ip = addresses[n % addresses.len()].clone();
            let sent = Instant::now();
            match client.get_owner(v1::GetOwnerRequest { ip }).await {
                Ok(owner) if owner.get_ref().announcement.is_some() => {
                    out.latencies_us.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
                }
                Ok(_) | Err(_) => out.errors += 1,
            }
        }
    }

    pub fn run(socket: &std::path::Path) -> Result<()> {
        let options = options()?;
        let connections: usize = option(&options, "--connections")?.context("--connections")?;
        let in_flight: usize = option(&options, "--in-flight")?.context("--in-flight")?;
        let calls: usize = option(&options, "--calls")?.context("--calls")?;
        let duration = Duration::from_secs(option(&options, "--duration")?.context("--duration")?);
        let addresses: usize = option(&options, "--addresses")?.context("--addresses")?;
        let ips: Arc<Vec<String>> =
            Arc::new((0..addresses).map(|n| common::address(n).to_string()).collect());
        let runtime = tokio::runtime::Runtime::new()?;
        runtime.block_on(async {
            let mut clients = Vec::new();
            for _ in 0..connections {
                let mut client = ferrolb_proto::connect_unix(socket).await?;
                // One call each, so that the connections are up before the clock starts.
                client.get_owner(v1::GetOwnerRequest { ip: ips[0].clone() }).await?;
                clients.push(client);
            }
            say("READY")?;
            common::wait_for_go()?;
            let cpu_before = cpu_time(UsageWho::RUSAGE_SELF);
            let start = Instant::now();
            let deadline = start + duration;
            let next = Arc::new(AtomicUsize::new(0));
            // The callers share the connections round-robin (tonic multiplexes a channel's calls
            // as HTTP/2 streams on its one connection).
            let tasks: Vec<_> = (0..in_flight)
                .map(|i| {
                    tokio::spawn(call(
                        clients[i % connections].clone(),
                        ips.clone(),
                        next.clone(),
                        calls,
                        deadline,
                    ))
                })
                .collect();
            let results: Vec<Caller> = join_all(tasks).await.into_iter().collect::<Result<_, _>>()?;
            let seconds = start.elapsed().as_secs_f64();
            let cpu = cpu_time(UsageWho::RUSAGE_SELF) - cpu_before;
            let mut latencies: Vec<u32> =
                results.iter().flat_map(|c| c.latencies_us.iter().copied()).collect();
            latencies.sort_unstable();
            let figures = json!({
                "answered": latencies.len(),
                "errors": results.iter().map(|c| c.errors).sum::<u64>(),
                "seconds": seconds,
                "p50_us": percentile(&latencies, 50.0),
                "p99_us": percentile(&latencies, 99.0),
                "max_us": latencies.last(),
                "cpu_us": cpu.as_micros() as u64,
            });
            say(&figures.to_string())
        })
    }
}
