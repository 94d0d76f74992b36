//! The failover probe: an HTTP GET to a VIP every few milliseconds from the client namespace,
//! recording which node answered each one, and the longest time between two answered requests.
//!
//! [`run_probe`] does the probing in the current namespace (the `ferrolb-lab probe` subcommand);
//! [`start_probe`] / [`probe_gap`] run that subcommand inside the lab's client namespace and parse
//! its JSON report.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::Lab;

/// Minimal HTTP/1.1 GET over plain TCP: `http://host[:port][/path]`, host may be `[v6]`.
/// Returns the body; fails on connection errors, timeouts and non-2xx statuses.
pub fn http_get(url: &str, timeout: Duration) -> Result<String> {
    let rest =
        url.strip_prefix("http://").with_context(|| format!("only http:// URLs are supported: {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let has_port =
        if authority.starts_with('[') { authority.contains("]:") } else { authority.contains(':') };
    let with_port = if has_port { authority.to_string() } else { format!("{authority}:80") };
    let addr = with_port
        .to_socket_addrs()
        .with_context(|| format!("bad address {with_port}"))?
        .next()
        .with_context(|| format!("no address for {with_port}"))?;
    let deadline = Instant::now() + timeout;
    let mut s =
        TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connecting to {addr}"))?;
    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    s.set_read_timeout(Some(left))?;
    s.set_write_timeout(Some(left))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: ferrolb-lab\r\nConnection: close\r\n\r\n"
    )?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).with_context(|| format!("reading the response from {addr}"))?;
    let resp = String::from_utf8_lossy(&resp);
    let (head, body) =
        resp.split_once("\r\n\r\n").with_context(|| format!("malformed response from {addr}"))?;
    let status = head.lines().next().unwrap_or_default();
    let code: u16 = status.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    if !(200..300).contains(&code) {
        bail!("{url}: {status}");
    }
    Ok(body.to_string())
}

/// The URL of the lab's HTTP servers on `target`.
pub fn url_for(target: IpAddr, port: u16) -> String {
    format!("http://{}/", SocketAddr::new(target, port))
}

/// What to probe and for how long.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    pub target: IpAddr,
    pub port: u16,
    /// One request is started every `interval` (they overlap when answers are slow).
    pub interval: Duration,
    /// Stop sending after this long.
    pub duration: Duration,
    /// Per-request timeout (connect and answer).
    pub timeout: Duration,
    /// Stop this long after the first answer from another node than the first one answering.
    pub stop_after_switch: Option<Duration>,
}

impl ProbeOptions {
    pub fn new(target: IpAddr, interval: Duration, duration: Duration) -> Self {
        Self {
            target,
            port: 80,
            interval,
            duration,
            timeout: Duration::from_millis(200),
            stop_after_switch: None,
        }
    }
}

/// The probe's JSON report. Times are milliseconds since the probe started, by send time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProbeReport {
    pub target: String,
    pub interval_ms: f64,
    pub timeout_ms: f64,
    /// Requests started.
    pub sent: u64,
    /// Requests answered with 2xx in time.
    pub answered: u64,
    /// Requests not started because too many were in flight.
    pub skipped: u64,
    /// Time of the last request sent.
    pub ran_ms: f64,
    /// Longest interval between the send times of two consecutive answered requests (the probe's
    /// start and its last send count as answered edges, so a probe that never or no longer gets
    /// answers reports that whole stretch).
    pub longest_gap_ms: f64,
    /// Where that gap starts and ends.
    pub gap_from_ms: f64,
    pub gap_to_ms: f64,
    /// Every answered request: (send time, node name).
    pub answers: Vec<(f64, String)>,
    /// Failure messages and how often each happened (first 10 kinds).
    pub errors: Vec<(String, u64)>,
}

impl ProbeReport {
    /// Node names in the order they answered, consecutive repeats folded (`["node1", "node3"]`).
    pub fn node_sequence(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for (_, n) in &self.answers {
            if v.last() != Some(n) {
                v.push(n.clone());
            }
        }
        v
    }
    pub fn first_node(&self) -> Option<&str> {
        self.answers.first().map(|(_, n)| n.as_str())
    }
    pub fn last_node(&self) -> Option<&str> {
        self.answers.last().map(|(_, n)| n.as_str())
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Most requests in flight at once.
const MAX_IN_FLIGHT: usize = 256;

/// Probes `opts.target` from the current namespace (blocking).
pub fn run_probe(opts: &ProbeOptions) -> ProbeReport {
    let url = url_for(opts.target, opts.port);
    let start = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel::<(f64, Result<String, String>)>();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut report = ProbeReport {
        target: url.clone(),
        interval_ms: ms(opts.interval),
        timeout_ms: ms(opts.timeout),
        ..Default::default()
    };
    let mut results: Vec<(f64, Result<String, String>)> = Vec::new();
    let mut first: Option<String> = None;
    let mut switched_at: Option<Instant> = None;
    let interval = opts.interval.max(Duration::from_millis(1));
    let mut n: u32 = 0;
    loop {
        let due = start + interval * n;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if start.elapsed() >= opts.duration || crate::INTERRUPTED.load(Ordering::SeqCst) {
            break;
        }
        if let (Some(at), Some(after)) = (switched_at, opts.stop_after_switch)
            && at.elapsed() >= after
        {
            break;
        }
        let sent_ms = ms(start.elapsed());
        report.ran_ms = sent_ms;
        n += 1;
        if in_flight.load(Ordering::SeqCst) >= MAX_IN_FLIGHT {
            report.skipped += 1;
        } else {
            report.sent += 1;
            in_flight.fetch_add(1, Ordering::SeqCst);
            let (tx, url, timeout, in_flight) = (tx.clone(), url.clone(), opts.timeout, in_flight.clone());
            std::thread::spawn(move || {
                let r = http_get(&url, timeout).map(|b| b.trim().to_string()).map_err(|e| short_error(&e));
                let _ = tx.send((sent_ms, r));
                in_flight.fetch_sub(1, Ordering::SeqCst);
            });
        }
        while let Ok(r) = rx.try_recv() {
            if let Ok(node) = &r.1 {
                match &first {
                    None => first = Some(node.clone()),
                    Some(f) if f != node && switched_at.is_none() => switched_at = Some(Instant::now()),
                    _ => {}
                }
            }
            results.push(r);
        }
    }
    drop(tx);
    // Requests still in flight end within their timeout.
    let deadline = Instant::now() + opts.timeout + Duration::from_secs(1);
    while let Ok(r) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        results.push(r);
    }
    summarize(&mut report, results);
    report
}

fn short_error(e: &anyhow::Error) -> String {
    // The outermost context names the address; the root cause says what happened.
    let root = e.root_cause().to_string();
    if root.contains("timed out") || root.contains("temporarily unavailable") {
        "timeout".into()
    } else {
        root
    }
}

fn summarize(report: &mut ProbeReport, mut results: Vec<(f64, Result<String, String>)>) {
    results.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut errors: Vec<(String, u64)> = Vec::new();
    let mut prev = 0.0;
    let (mut longest, mut from, mut to) = (0.0f64, 0.0, 0.0);
    for (t, r) in results {
        match r {
            Ok(node) => {
                report.answered += 1;
                if t - prev > longest {
                    (longest, from, to) = (t - prev, prev, t);
                }
                prev = t;
                report.answers.push((t, node));
            }
            Err(e) => {
                if let Some(i) = errors.iter().position(|(m, _)| *m == e) {
                    errors[i].1 += 1;
                } else if errors.len() < 10 {
                    errors.push((e, 1));
                }
            }
        }
    }
    if report.ran_ms - prev > longest {
        (longest, from, to) = (report.ran_ms - prev, prev, report.ran_ms);
    }
    report.longest_gap_ms = longest;
    report.gap_from_ms = from;
    report.gap_to_ms = to;
    report.errors = errors;
}

/// A probe's result as seen from the caller's clock.
#[derive(Debug, Clone)]
pub struct Gap {
    /// When the probe process was started (answers are placed relative to this).
    pub started: Instant,
    /// Longest interval between two answered requests (see [`ProbeReport::longest_gap_ms`]).
    pub longest_gap: Duration,
    /// Where that gap lies, as instants.
    pub gap_from: Instant,
    pub gap_to: Instant,
    pub sent: u64,
    pub answered: u64,
    /// Every answer: (approximate send instant, node name).
    pub answered_by: Vec<(Instant, String)>,
    /// The raw report.
    pub report: ProbeReport,
}

impl Gap {
    fn from_report(started: Instant, report: ProbeReport) -> Self {
        let at = |ms: f64| started + Duration::from_secs_f64(ms.max(0.0) / 1000.0);
        Self {
            started,
            longest_gap: Duration::from_secs_f64(report.longest_gap_ms.max(0.0) / 1000.0),
            gap_from: at(report.gap_from_ms),
            gap_to: at(report.gap_to_ms),
            sent: report.sent,
            answered: report.answered,
            answered_by: report.answers.iter().map(|(t, n)| (at(*t), n.clone())).collect(),
            report,
        }
    }
}

/// A probe running in the client namespace.
#[derive(Debug)]
pub struct Probe {
    started: Instant,
    child: std::process::Child,
    limit: Duration,
}

/// Starts `ferrolb-lab probe` (`lab_exe`) in the lab's client namespace.
pub fn start_probe(lab: &Lab, lab_exe: &Path, opts: &ProbeOptions) -> Result<Probe> {
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["netns", "exec", &lab.client_ns()])
        .arg(lab_exe)
        .args(["probe", "--json", "--target", &opts.target.to_string(), "--port", &opts.port.to_string()])
        .args(["--interval", &humantime::format_duration(opts.interval).to_string()])
        .args(["--for", &humantime::format_duration(opts.duration).to_string()])
        .args(["--timeout", &humantime::format_duration(opts.timeout).to_string()]);
    if let Some(d) = opts.stop_after_switch {
        cmd.args(["--stop-after-switch", &humantime::format_duration(d).to_string()]);
    }
    {
        use std::os::unix::process::CommandExt;
        // Its own process group: a Ctrl-C meant for the caller does not cut the report short.
        cmd.process_group(0);
    }
    let started = Instant::now();
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting the probe in the client namespace")?;
    Ok(Probe { started, child, limit: opts.duration + opts.timeout + Duration::from_secs(10) })
}

impl Probe {
    /// Waits for the probe's report.
    pub fn wait(self) -> Result<Gap> {
        let pid = self.child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        let child = self.child;
        // Read the output on another thread so a large report cannot fill the pipe and stall.
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let left = (self.started + self.limit).saturating_duration_since(Instant::now());
        let out = match rx.recv_timeout(left) {
            Ok(out) => out?,
            Err(_) => {
                let _ =
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::SIGKILL);
                bail!("probe did not finish within {:?}", self.limit);
            }
        };
        if !out.status.success() {
            bail!("probe failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
        }
        let report: ProbeReport =
            serde_json::from_slice(&out.stdout).context("parsing the probe's JSON report")?;
        Ok(Gap::from_report(self.started, report))
    }

    /// The probe process's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Probes `target` (port 80) from the client namespace every `interval` for `duration` (blocking).
pub fn probe_gap(
    lab: &Lab,
    lab_exe: &Path,
    target: IpAddr,
    interval: Duration,
    duration: Duration,
) -> Result<Gap> {
    start_probe(lab, lab_exe, &ProbeOptions::new(target, interval, duration))?.wait()
}
