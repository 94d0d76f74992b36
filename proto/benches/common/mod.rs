//! What the API benches share: sizes (smoke or full), options, the table they serve, the server on
//! a unix socket in a temporary directory, the client child process, CPU times and percentiles.
//!
//! The clients run in a child process (this same bench binary, re-executed with a role) so that
//! the server's CPU time is its process's own (`getrusage(RUSAGE_SELF)`), as it would be beside
//! real CNI agents, and so that a slow client cannot hide inside the server's scheduler.

#![allow(dead_code)] // each bench uses its part

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use ferrolb_proto::server::{AnnouncerService, SharedTable, bind_unix, serve_unix_listener};
use ferrolb_proto::{Announcement, AnnouncementTable};
use nix::sys::resource::{UsageWho, getrusage};
use tokio_util::sync::CancellationToken;

/// The argument that makes the bench binary a client child instead of the benchmark.
pub const CHILD_ROLE: &str = "--child-role";

/// Whether `cargo bench` runs this bench (it passes `--bench`); under `cargo test --all-targets`
/// (CI) the benches run at smoke size: same code, small numbers, targets not judged.
pub fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The command line's options as (name, value) pairs, from `--name value` or `--name=value`;
/// `--bench` and bare words (cargo's filter) are skipped.
pub fn options() -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if arg == "--bench" || !arg.starts_with("--") {
            continue;
        }
        out.push(match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), value.to_owned()),
            None => {
                let value = it.next().with_context(|| format!("{arg} needs a value"))?;
                (arg, value)
            }
        });
    }
    Ok(out)
}

/// The value of `name` among `options`, parsed.
pub fn option<T: std::str::FromStr>(options: &[(String, String)], name: &str) -> Result<Option<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    options
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.parse::<T>().with_context(|| format!("{name} {v:?}")))
        .transpose()
}

/// The 1-, 5- and 15-minute load averages, as written next to every figure.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPU time (user + system) of this process, or of the calling thread.
pub fn cpu_time(who: UsageWho) -> Duration {
    getrusage(who)
        .map(|usage| {
            let user = usage.user_time();
            let system = usage.system_time();
            Duration::from_secs(user.tv_sec() as u64 + system.tv_sec() as u64)
                + Duration::from_micros(user.tv_usec() as u64 + system.tv_usec() as u64)
        })
        .unwrap_or_default()
}

/// Nearest-rank percentile of sorted values.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

/// The `n`-th announced address: the lab's IPv6 VIP range (2001:db8:100::1000-1fff), then on past
/// it in 2001:db8:100::/64. Table data only: nothing is sent to these addresses.
pub fn address(n: usize) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(0x2001_0db8_0100_0000_0000_0000_0000_1000_u128 + n as u128))
}

/// The node names of the table: the local node is `node1`.
pub fn node(n: usize) -> String {
    format!("node{}", n + 1)
}

/// Address `n` held by node `holder` since `since`, as the announcer would write it.
pub fn announcement(n: usize, holder: usize, since: SystemTime) -> Announcement {
    Announcement::new(address(n), node(holder), since)
        .with_service("bench", format!("svc-{n}"))
        .with_interface("eth0")
}

/// A table of `addresses` announcements, all held by `node1`.
pub fn table(addresses: usize) -> SharedTable {
    let mut table = AnnouncementTable::new(node(0), ferrolb_proto::server::new_epoch());
    let now = SystemTime::now();
    table.reset((0..addresses).map(|n| announcement(n, 0, now)));
    SharedTable::new(table)
}

/// How the bench serves the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// What the announcer serves: [`serve_unix_listener`] (the `:authority` rewriter, health,
    /// reflection).
    Announcer,
    /// The service alone on tonic's server, to tell the transport's cost from the service's.
    PlainTonic,
}

/// The announcer API served by [`serve_unix_listener`] on a socket in a temporary directory, on
/// the caller's runtime, until dropped or [`Server::stop`]ped.
pub struct Server {
    pub socket: PathBuf,
    stop: CancellationToken,
    served: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Serves `table`; must run inside the runtime that will serve it.
    pub fn start(table: SharedTable) -> Result<Self> {
        Self::start_with(table, Transport::Announcer)
    }

    /// [`Server::start`], or the service alone on a plain tonic server (a diagnostic baseline).
    pub fn start_with(table: SharedTable, transport: Transport) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("ferrolb-bench-").tempdir()?;
        let socket = dir.path().join("announcer.sock");
        let listener = bind_unix(&socket)?;
        let stop = CancellationToken::new();
        let cancelled = stop.clone();
        let service = AnnouncerService::new(table);
        let shutdown = async move { cancelled.cancelled().await };
        let served = match transport {
            Transport::Announcer => tokio::spawn(serve_unix_listener(listener, service, shutdown)),
            Transport::PlainTonic => tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(service.into_server())
                    .serve_with_incoming_shutdown(
                        tokio_stream::wrappers::UnixListenerStream::new(listener),
                        shutdown,
                    ),
            ),
        };
        Ok(Self { socket, stop, served, _dir: dir })
    }

    /// Stops serving and waits for the server to end.
    pub async fn stop(self) -> Result<()> {
        self.stop.cancel();
        self.served.await?.context("the gRPC server failed")
    }
}

/// The client child: this bench binary run with [`CHILD_ROLE`] `role` and `args`. It prints lines
/// on stdout: `READY` once its clients are connected, then one JSON object with its figures; a
/// child that waits for its start reads `GO` on stdin.
pub struct ChildClients {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<std::io::Result<String>>,
}

impl ChildClients {
    pub fn spawn(role: &str, socket: &Path, args: &[String]) -> Result<Self> {
        let exe = std::env::current_exe().context("locating the bench binary")?;
        let mut child = Command::new(exe)
            .arg(CHILD_ROLE)
            .arg(role)
            .arg("--socket")
            .arg(socket)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the client child process")?;
        let stdin = child.stdin.take();
        let stdout: ChildStdout = child.stdout.take().context("the child's stdout")?;
        let (send, lines) = mpsc::channel();
        // A thread, so that waiting for a line can time out.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self { child, stdin, lines })
    }

    /// Tells the child to start.
    pub fn go(&mut self) -> Result<()> {
        let stdin = self.stdin.as_mut().context("the child's stdin")?;
        stdin.write_all(b"GO\n")?;
        stdin.flush()?;
        Ok(())
    }

    /// The child's next stdout line within `timeout`.
    pub fn line(&mut self, timeout: Duration) -> Result<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Ok(line?),
            Err(mpsc::RecvTimeoutError::Timeout) => bail!("the client child said nothing for {timeout:?}"),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.child.wait()?;
                bail!("the client child ended ({status}) before saying it was done")
            }
        }
    }

    /// Waits for `READY`.
    pub fn ready(&mut self, timeout: Duration) -> Result<()> {
        let line = self.line(timeout)?;
        if line != "READY" {
            bail!("the client child said {line:?} instead of READY");
        }
        Ok(())
    }

    /// The child's JSON figures, then its exit status (which must be success).
    pub fn finish(mut self, timeout: Duration) -> Result<serde_json::Value> {
        let line = self.line(timeout)?;
        let status = self.child.wait()?;
        if !status.success() {
            bail!("the client child failed: {status}");
        }
        serde_json::from_str(&line).with_context(|| format!("the client child's figures {line:?}"))
    }
}

impl Drop for ChildClients {
    fn drop(&mut self) {
        // Only our own child, by its handle; a no-op once it has been waited for.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The role and the socket when this process is a client child.
pub fn child_role() -> Option<(String, PathBuf)> {
    let args: Vec<String> = std::env::args().collect();
    let role = args.iter().position(|a| a == CHILD_ROLE).and_then(|i| args.get(i + 1))?.clone();
    let socket = args.iter().position(|a| a == "--socket").and_then(|i| args.get(i + 1))?;
    Some((role, PathBuf::from(socket)))
}

/// In a client child: waits for the parent's `GO` on stdin.
pub fn wait_for_go() -> Result<()> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    if line.trim() != "GO" {
        bail!("the parent said {line:?} instead of GO");
    }
    Ok(())
}

/// In a client child: one line on stdout, flushed at once (the parent waits for it).
pub fn say(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

/// Milliseconds with three decimals, for tables.
pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}
