//! Network namespaces for the speaker's tests against real routers.
//!
//! The same shape as `l2announcer/tests/netns/`: every test builds its own namespaces (named
//! `fbgp-<pid>-<n>-<role>`, deleted on drop, also when the test panics) joined by veth pairs that
//! have no link to any physical interface. Code that opens sockets runs on a tokio runtime whose
//! thread entered the namespace first ([`Netns::runtime`]); the test thread stays in the root
//! namespace and only runs `ip` commands, and routers run under `ip netns exec`. Creating a
//! namespace that fails panics: CI runs as root, and a test that silently skipped would prove
//! nothing.

#![allow(dead_code)]

use std::fs::File;
use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sched::{CloneFlags, setns};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates `fbgp-<pid>-<n>-<role>` with its loopback up.
    pub fn new(role: &str) -> Self {
        let name = format!("fbgp-{}-{}-{role}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
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
        let out = Command::new("ip").arg("-n").arg(&self.name).args(args).output().expect("run ip");
        assert!(
            out.status.success(),
            "ip -n {} {}: {}",
            self.name,
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A command that runs inside the namespace (`ip netns exec`).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// A current-thread tokio runtime on a thread that entered this namespace; runs `fut` there
    /// and returns its output. Sockets the future opens belong to the namespace.
    pub fn run<F, R>(&self, fut: F) -> std::thread::JoinHandle<R>
    where
        F: Future<Output = R> + Send + 'static,
        R: Send + 'static,
    {
        let path = format!("/run/netns/{}", self.name);
        let inode = std::fs::metadata(&path).expect("netns file").ino();
        std::thread::spawn(move || {
            let f = File::open(&path).expect("open netns");
            setns(&f, CloneFlags::CLONE_NEWNET).expect("setns");
            let here = std::fs::metadata("/proc/thread-self/ns/net").expect("own netns").ino();
            assert_eq!(here, inode, "test code ran outside its network namespace");
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(fut)
        })
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

/// Joins `a` and `b` with a veth pair named `eth0` on both sides, both up.
pub fn veth(a: &Netns, b: &Netns) {
    let out = Command::new("ip")
        .args([
            "link", "add", "eth0", "netns", &a.name, "type", "veth", "peer", "name", "eth0", "netns", &b.name,
        ])
        .output()
        .expect("run ip");
    assert!(out.status.success(), "veth: {}", String::from_utf8_lossy(&out.stderr));
    a.ip(&["link", "set", "eth0", "up"]);
    b.ip(&["link", "set", "eth0", "up"]);
}
