//! Network namespaces for the tests that need the kernel: each test creates its own (named
//! `fcni-<pid>-<n>-<role>`, deleted on drop, also when the test panics), with loopback up and, when
//! asked, a veth pair whose both ends stay inside it: no link to any physical interface and no route
//! out. Async code runs inside with the lab's `NsRuntime` (a thread that entered the namespace);
//! the test thread itself stays in the root namespace and only runs `ip -n <ns> ...`. A namespace
//! that cannot be created fails the test: CI runs as root, and a test that skipped would prove
//! nothing.

#![allow(dead_code)]

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Creates `fcni-<pid>-<n>-<role>` with its loopback up.
    pub fn new(role: &str) -> Self {
        let name = format!("fcni-{}-{}-{role}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
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

    /// Adds a veth pair `dev` <-> `peer`, both inside this namespace and up.
    pub fn add_veth(&self, dev: &str, peer: &str) {
        self.ip(&["link", "add", dev, "type", "veth", "peer", "name", peer]);
        self.ip(&["link", "set", dev, "up"]);
        self.ip(&["link", "set", peer, "up"]);
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

    /// The addresses on `dev` as (`ip/prefix`, protocol) from `ip -j address`; the protocol is
    /// `None` when the address has none (or iproute2 does not print it).
    pub fn addresses(&self, dev: &str) -> Vec<(String, Option<String>)> {
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

    /// Just the `ip/prefix` of every address on `dev`.
    pub fn address_list(&self, dev: &str) -> Vec<String> {
        self.addresses(dev).into_iter().map(|(a, _)| a).collect()
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
