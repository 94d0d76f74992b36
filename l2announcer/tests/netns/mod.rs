//! Network namespaces for datapath tests.
//!
//! Every test builds its own namespaces (named `fdpt-<pid>-<n>-<role>`, deleted on drop, also when
//! the test panics) joined by veth pairs that have no link to any physical interface and no route
//! out. Code that touches the network runs on a tokio runtime whose threads were started inside the
//! namespace ([`Netns::runtime`]); the test thread itself stays in the root namespace and only runs
//! `ip -n <ns> ...` commands. Creating a namespace that fails panics: CI runs as root, and a test
//! that silently skipped would prove nothing.

#![allow(dead_code)]

use std::fs::File;
use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferrolb_l2announcer::datapath::Mac;
use nix::sched::{CloneFlags, setns};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates `fdpt-<pid>-<n>-<role>` with its loopback up.
    pub fn new(role: &str) -> Self {
        let name = format!("fdpt-{}-{}-{role}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let out = Command::new("ip").args(["netns", "add", &name]).output().unwrap_or_else(|e| {
            panic!("cannot run `ip netns add {name}` ({e}): datapath tests need iproute2 and root")
        });
        assert!(
            out.status.success(),
            "cannot create network namespace {name}: {} (datapath tests need root and netns support)",
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

    /// Sets a sysctl inside the namespace.
    pub fn sysctl(&self, key: &str, value: &str) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "sysctl", "-q", "-w", &format!("{key}={value}")])
            .output()
            .expect("run sysctl");
        assert!(out.status.success(), "sysctl {key}={value}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// `ip -j link show dev <dev>` as JSON.
    pub fn link_json(&self, dev: &str) -> serde_json::Value {
        let out = self.ip(&["-j", "link", "show", "dev", dev]);
        serde_json::from_str::<serde_json::Value>(&out).expect("ip -j link")[0].clone()
    }

    /// Interface index and MAC of `dev`.
    pub fn link(&self, dev: &str) -> (u32, Mac) {
        let j = self.link_json(dev);
        let index = j["ifindex"].as_u64().expect("ifindex") as u32;
        let mac = j["address"].as_str().expect("address").parse().expect("mac");
        (index, mac)
    }

    /// The addresses on `dev` as `ip/prefix` strings (`ip -j addr`).
    pub fn addresses(&self, dev: &str) -> Vec<String> {
        let out = self.ip(&["-j", "addr", "show", "dev", dev]);
        let j: serde_json::Value = serde_json::from_str(&out).expect("ip -j addr");
        j[0]["addr_info"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|i| format!("{}/{}", i["local"].as_str().unwrap_or(""), i["prefixlen"]))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The link-layer address of neighbour `ip` on `dev`, if resolved.
    pub fn neighbour(&self, dev: &str, ip: &str) -> Option<String> {
        let out = self.ip(&["-j", "neigh", "show", ip, "dev", dev]);
        let j: serde_json::Value = serde_json::from_str(&out).ok()?;
        j.as_array()?.iter().find_map(|n| n["lladdr"].as_str().map(str::to_string))
    }

    /// A tokio runtime whose worker threads live in this namespace. Run work on it only with
    /// [`NsRuntime::run`] (which spawns onto those workers), never `block_on` a future directly.
    pub fn runtime(&self) -> NsRuntime {
        let path = format!("/run/netns/{}", self.name);
        let inode = std::fs::metadata(&path).expect("netns file").ino();
        let rt = std::thread::scope(|s| {
            s.spawn(|| {
                let f = File::open(&path).expect("open netns");
                setns(&f, CloneFlags::CLONE_NEWNET).expect("setns");
                // Threads inherit the creating thread's namespace: the runtime's workers are
                // started here, inside the namespace.
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .expect("runtime")
            })
            .join()
            .expect("runtime thread")
        });
        NsRuntime { rt: Some(rt), inode }
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

/// A runtime inside a namespace (see [`Netns::runtime`]).
pub struct NsRuntime {
    rt: Option<tokio::runtime::Runtime>,
    inode: u64,
}

impl NsRuntime {
    /// Runs `fut` on a worker thread inside the namespace and waits for it (panics propagate).
    pub fn run<F, R>(&self, fut: F) -> R
    where
        F: Future<Output = R> + Send + 'static,
        R: Send + 'static,
    {
        let handle = self.spawn(fut);
        self.join(handle)
    }

    /// Starts `fut` on a worker thread inside the namespace; [`NsRuntime::join`] waits for it.
    pub fn spawn<F, R>(&self, fut: F) -> tokio::task::JoinHandle<R>
    where
        F: Future<Output = R> + Send + 'static,
        R: Send + 'static,
    {
        let inode = self.inode;
        self.rt.as_ref().expect("runtime").spawn(async move {
            assert_in_namespace(inode);
            fut.await
        })
    }

    /// Waits for a task started with [`NsRuntime::spawn`] (panics propagate).
    pub fn join<R>(&self, handle: tokio::task::JoinHandle<R>) -> R {
        match self.rt.as_ref().expect("runtime").block_on(handle) {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("task failed: {e}"),
        }
    }
}

impl Drop for NsRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// Panics unless the calling thread is in the namespace with this inode: nothing may ever be sent
/// from the root namespace.
pub fn assert_in_namespace(inode: u64) {
    let here = std::fs::metadata("/proc/thread-self/ns/net").expect("own netns").ino();
    assert_eq!(here, inode, "test code ran outside its network namespace");
}

/// A "node" and a "client" namespace joined by a veth pair named `eth0` on both sides, up, with no
/// address on the node side. The client has 198.51.100.2/24 and 2001:db8:100::2/64 (no DAD).
pub struct Lab {
    pub node: Netns,
    pub client: Netns,
}

impl Lab {
    pub fn new() -> Self {
        let lab = Self { node: Netns::new("node"), client: Netns::new("client") };
        lab.add_pair("eth0");
        lab.client.ip(&["addr", "add", "198.51.100.2/24", "dev", "eth0"]);
        lab.client.ip(&["addr", "add", "2001:db8:100::2/64", "dev", "eth0", "nodad"]);
        lab
    }

    /// Another veth pair `dev` (node) <-> `dev` (client), both up.
    pub fn add_pair(&self, dev: &str) {
        self.node.ip(&["link", "add", dev, "type", "veth", "peer", "name", dev, "netns", &self.client.name]);
        self.node.ip(&["link", "set", dev, "up"]);
        self.client.ip(&["link", "set", dev, "up"]);
        self.wait_up(dev);
    }

    fn wait_up(&self, dev: &str) {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let up = |ns: &Netns| {
                ns.link_json(dev)["flags"].as_array().is_some_and(|f| f.iter().any(|x| x == "LOWER_UP"))
            };
            if up(&self.node) && up(&self.client) {
                return;
            }
            assert!(Instant::now() < deadline, "{dev} did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub use ferrolb_testkit::poll_blocking as wait_for;
