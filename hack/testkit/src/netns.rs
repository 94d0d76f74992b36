//! Network namespaces for the suites that need the kernel, and async code that runs inside one.
//!
//! - [`Netns`]: a namespace a test creates for itself (`ftest-<pid>-<n>-<role>`, loopback up,
//!   deleted on drop, also when the test panics). It is joined to others only by veth pairs, which
//!   have no link to any physical interface and no route out. The test thread stays in the root
//!   namespace and only runs `ip -n <ns> ...`. Creating one that fails panics: CI runs as root, and
//!   a test that silently skipped would prove nothing.
//! - [`NsRuntime`]: a socket belongs to the network namespace of the thread that creates it, so
//!   async code that opens sockets runs on a thread that entered the namespace (`setns` affects only
//!   that thread), with a tokio runtime there. Every task it runs, and every task those spawn (a
//!   `kube::Client`'s connections included), opens its sockets inside the namespace; the calling
//!   process stays in the root namespace, which never sends to lab addresses. The lab
//!   (`ferrolb-lab`) and the suites use this one runtime.

use std::fs::File;
use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates `ftest-<pid>-<n>-<role>` with its loopback up.
    pub fn new(role: &str) -> Self {
        let name = format!("ftest-{}-{}-{role}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let out = Command::new("ip").args(["netns", "add", &name]).output().unwrap_or_else(|e| {
            panic!("cannot run `ip netns add {name}` ({e}): these tests need iproute2 and root")
        });
        assert!(
            out.status.success(),
            "cannot create network namespace {name}: {} (these tests need root and netns support)",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Runs `ip -n <ns> <args>`, panicking with its stderr on failure; returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        self.try_ip(args).unwrap_or_else(|e| panic!("ip -n {} {}: {e}", self.name, args.join(" ")))
    }

    /// Runs `ip -n <ns> <args>`: stdout, or stderr as the error.
    pub fn try_ip(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("ip").arg("-n").arg(&self.name).args(args).output().expect("run ip");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    /// A command that runs inside the namespace (`ip netns exec`).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Sets a sysctl inside the namespace.
    pub fn sysctl(&self, key: &str, value: &str) {
        let out = self
            .command("sysctl")
            .args(["-q", "-w", &format!("{key}={value}")])
            .output()
            .expect("run sysctl");
        assert!(out.status.success(), "sysctl {key}={value}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Adds a veth pair `dev` <-> `peer`, both inside this namespace and up.
    pub fn add_veth(&self, dev: &str, peer: &str) {
        self.ip(&["link", "add", dev, "type", "veth", "peer", "name", peer]);
        self.ip(&["link", "set", dev, "up"]);
        self.ip(&["link", "set", peer, "up"]);
    }

    /// Joins this namespace to `other` with a veth pair named `dev` on both sides, both up.
    pub fn join(&self, other: &Netns, dev: &str) {
        self.ip(&["link", "add", dev, "type", "veth", "peer", "name", dev, "netns", &other.name]);
        self.ip(&["link", "set", dev, "up"]);
        other.ip(&["link", "set", dev, "up"]);
    }

    /// Waits (at most 3 s) until `dev` has carrier (`LOWER_UP`).
    pub fn wait_carrier(&self, dev: &str) {
        let deadline = Instant::now() + Duration::from_secs(3);
        while !self.link_json(dev)["flags"].as_array().is_some_and(|f| f.iter().any(|x| x == "LOWER_UP")) {
            assert!(Instant::now() < deadline, "{dev} in {} did not come up", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `ip -j link show dev <dev>` as JSON.
    pub fn link_json(&self, dev: &str) -> serde_json::Value {
        let out = self.ip(&["-j", "link", "show", "dev", dev]);
        serde_json::from_str::<serde_json::Value>(&out).expect("ip -j link")[0].clone()
    }

    /// The addresses on `dev` as (`ip/prefix`, protocol) from `ip -j address`; the protocol is
    /// `None` when the address has none (or iproute2 does not print it).
    pub fn addresses_with_protocol(&self, dev: &str) -> Vec<(String, Option<String>)> {
        let out = self.ip(&["-j", "address", "show", "dev", dev]);
        let json: serde_json::Value = serde_json::from_str(&out).expect("ip -j address");
        json[0]["addr_info"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|a| {
                        let address = format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]);
                        let protocol = a.get("protocol").map(|p| p.to_string().trim_matches('"').to_string());
                        (address, protocol)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The addresses on `dev` as `ip/prefix` strings.
    pub fn addresses(&self, dev: &str) -> Vec<String> {
        self.addresses_with_protocol(dev).into_iter().map(|(a, _)| a).collect()
    }

    /// The link-layer address of neighbour `ip` on `dev`, if resolved.
    pub fn neighbour(&self, dev: &str, ip: &str) -> Option<String> {
        let out = self.ip(&["-j", "neigh", "show", ip, "dev", dev]);
        let j: serde_json::Value = serde_json::from_str(&out).ok()?;
        j.as_array()?.iter().find_map(|n| n["lladdr"].as_str().map(str::to_string))
    }

    /// A runtime inside this namespace (see [`NsRuntime`]).
    pub fn runtime(&self) -> NsRuntime {
        NsRuntime::new(&self.name).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs `fut` on a thread of its own inside this namespace; the handle gives its output.
    pub fn spawn_thread<F, R>(&self, fut: F) -> std::thread::JoinHandle<R>
    where
        F: Future<Output = R> + Send + 'static,
        R: Send + 'static,
    {
        let runtime = self.runtime();
        std::thread::spawn(move || runtime.wait(fut))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let out = Command::new("ip").args(["netns", "del", &self.name]).output();
        if !matches!(&out, Ok(o) if o.status.success()) {
            eprintln!("warning: could not delete network namespace {}: {out:?}", self.name);
        }
    }
}

/// What can go wrong with an [`NsRuntime`].
#[derive(Debug, thiserror::Error)]
pub enum NsError {
    #[error("opening {path} (does network namespace {ns} exist?)")]
    Open {
        ns: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("entering network namespace {ns}: {source}")]
    Enter { ns: String, source: nix::Error },
    #[error("starting a runtime thread in network namespace {ns}")]
    Start {
        ns: String,
        #[source]
        source: std::io::Error,
    },
    #[error("task in network namespace {ns} panicked: {message}")]
    Panicked { ns: String, message: String },
    #[error("the runtime in network namespace {ns} has stopped")]
    Stopped { ns: String },
}

/// A tokio runtime driven by one thread inside a network namespace. Dropping it stops the thread;
/// tasks still running are cancelled.
#[derive(Debug)]
pub struct NsRuntime {
    ns: String,
    inode: u64,
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NsRuntime {
    /// Starts the thread in namespace `ns` (a name under `/run/netns`).
    pub fn new(ns: &str) -> Result<Self, NsError> {
        let path = format!("/run/netns/{ns}");
        let open = |source| NsError::Open { ns: ns.to_owned(), path: path.clone(), source };
        let file = File::open(&path).map_err(open)?;
        let inode = file.metadata().map_err(open)?.ino();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<tokio::runtime::Handle, NsError>>();
        let name = ns.to_owned();
        let thread = std::thread::Builder::new()
            .name(format!("netns-{ns}"))
            .spawn(move || {
                if let Err(source) = setns(&file, CloneFlags::CLONE_NEWNET) {
                    let _ = ready_tx.send(Err(NsError::Enter { ns: name, source }));
                    return;
                }
                drop(file);
                // Built on this thread, after setns: its blocking pool's threads start from here
                // and are inside the namespace too.
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(source) => {
                        let _ = ready_tx.send(Err(NsError::Start { ns: name, source }));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(rt.handle().clone()));
                let _ = rt.block_on(stop_rx);
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(|source| NsError::Start { ns: ns.to_owned(), source })?;
        let handle = ready_rx.recv().map_err(|_| NsError::Stopped { ns: ns.to_owned() })??;
        Ok(Self { ns: ns.to_owned(), inode, handle, stop: Some(stop_tx), thread: Some(thread) })
    }

    /// The namespace this runtime's sockets live in.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// Starts `fut` inside the namespace.
    pub fn spawn<F, R>(&self, fut: F) -> tokio::task::JoinHandle<R>
    where
        F: Future<Output = R> + Send + 'static,
        R: Send + 'static,
    {
        let inode = self.inode;
        self.handle.spawn(async move {
            assert_in_namespace(inode);
            fut.await
        })
    }

    /// Runs `fut` inside the namespace and waits for its output (from async code).
    pub async fn run<F>(&self, fut: F) -> Result<F::Output, NsError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn(fut).await.map_err(|e| match e.try_into_panic() {
            Ok(panic) => NsError::Panicked { ns: self.ns.clone(), message: panic_message(&*panic) },
            Err(_) => NsError::Stopped { ns: self.ns.clone() },
        })
    }

    /// Runs `fut` inside the namespace and blocks the calling thread until it finishes. Not from a
    /// thread that drives this runtime's own tasks.
    pub fn block_on<F>(&self, fut: F) -> Result<F::Output, NsError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        futures::executor::block_on(self.run(fut))
    }

    /// Waits for a task started with [`NsRuntime::spawn`]; its panic becomes the caller's.
    pub fn join<R>(&self, task: tokio::task::JoinHandle<R>) -> R {
        match futures::executor::block_on(task) {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("task in network namespace {} failed: {e}", self.ns),
        }
    }

    /// [`NsRuntime::block_on`] for tests: its panic becomes the caller's.
    pub fn wait<F, R>(&self, fut: F) -> R
    where
        F: Future<Output = R> + Send + 'static,
        R: Send + 'static,
    {
        self.join(self.spawn(fut))
    }
}

impl Drop for NsRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Panics unless the calling thread is in the namespace with this inode: nothing may ever be sent
/// from the root namespace.
pub fn assert_in_namespace(inode: u64) {
    let here = std::fs::metadata("/proc/thread-self/ns/net").expect("own netns").ino();
    assert_eq!(here, inode, "test code ran outside its network namespace");
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(not a string)".to_owned())
}
