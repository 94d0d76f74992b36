//! End-to-end test of the lab topology. Needs root and network namespaces; fails loudly without them.
//! Uses its own prefix (`flbt<pid>`) so it never touches a user's lab or a concurrent test run.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ferrolb-lab");

fn prefix() -> String {
    format!("flbt{}", std::process::id())
}

fn lab(args: &[&str]) -> Output {
    Command::new(BIN).arg("--prefix").arg(prefix()).args(args).output().expect("running ferrolb-lab")
}

fn ok(args: &[&str]) -> String {
    let out = lab(args);
    assert!(
        out.status.success(),
        "`ferrolb-lab {}` failed ({}):\nstdout: {}\nstderr: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the lab binary's own subcommand inside namespace `ns`.
fn in_ns(ns: &str, args: &[&str]) -> Output {
    let mut a = vec!["exec", ns, "--", BIN];
    a.extend_from_slice(args);
    lab(&a)
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(out.status.success(), "ip {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn our_namespaces() -> Vec<String> {
    let p = format!("{}-", prefix());
    ip(&["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&p))
        .map(str::to_string)
        .collect()
}

fn recorded_pids() -> Vec<u32> {
    let path = format!("/run/ferrolb-lab/{}.json", prefix());
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("reading the state file"))
            .expect("state file is JSON");
    state["processes"].as_array().unwrap().iter().map(|p| p["pid"].as_u64().unwrap() as u32).collect()
}

/// Removes the lab even if an assertion fails.
struct Guard;
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = lab(&["down"]);
    }
}

/// A VIP that no announcer holds: a connection attempt from the client must fail and the client's
/// neighbour entry must not have resolved (no node answered ARP / NS for it).
fn assert_unanswered(vip: &str, url: &str) {
    let out = in_ns("client", &["http-get", "--timeout-ms", "1500", url]);
    assert!(
        !out.status.success(),
        "{url} answered although nobody announces it: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let neigh = ip(&["-n", &format!("{}-client", prefix()), "neigh", "show", vip]);
    assert!(!neigh.contains("lladdr"), "a node answered ARP/NDP for {vip}: {neigh}");
    assert!(
        neigh.contains("INCOMPLETE") || neigh.contains("FAILED"),
        "client never tried to resolve {vip}: {neigh:?}"
    );
}

#[test]
fn lab_up_serves_and_down_cleans() {
    let started = Instant::now();
    let id = Command::new("id").arg("-u").output().expect("running id");
    assert_eq!(
        String::from_utf8_lossy(&id.stdout).trim(),
        "0",
        "the lab test must run as root (it creates network namespaces); it does not skip"
    );
    let _guard = Guard;

    ok(&["up", "--nodes", "2"]);
    // A second `up` removes the first lab's leftovers and builds it again.
    ok(&["up", "--nodes", "2"]);
    let mut nss = our_namespaces();
    nss.sort();
    let p = prefix();
    assert_eq!(
        nss,
        vec![format!("{p}-client"), format!("{p}-node1"), format!("{p}-node2"), format!("{p}-sw")]
    );

    // Reachability from the client, IPv4 and IPv6.
    let out = in_ns("client", &["ping", "198.51.100.11"]);
    assert!(out.status.success(), "ping 198.51.100.11: {}", String::from_utf8_lossy(&out.stderr));
    let out = in_ns("client", &["ping", "2001:db8:100::12"]);
    assert!(out.status.success(), "ping 2001:db8:100::12: {}", String::from_utf8_lossy(&out.stderr));
    let out = in_ns("client", &["ping", "198.51.100.1"]);
    assert!(out.status.success(), "ping the switch: {}", String::from_utf8_lossy(&out.stderr));

    // Each node's HTTP server answers with the node name.
    for (url, want) in [
        ("http://198.51.100.11/", "node1"),
        ("http://198.51.100.12/", "node2"),
        ("http://[2001:db8:100::11]/", "node1"),
        ("http://[2001:db8:100::12]:80/x", "node2"),
    ] {
        let out = in_ns("client", &["http-get", url]);
        assert!(out.status.success(), "GET {url}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want, "GET {url}");
    }

    // VIPs are local on every node (AnyIP) ...
    let out = in_ns("node2", &["http-get", "http://198.51.100.130/"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "node2",
        "AnyIP v4: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = in_ns("node1", &["http-get", "http://[2001:db8:100::1fff]/"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "node1",
        "AnyIP v6: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // ... but no node answers ARP or NDP for them by itself.
    assert_unanswered("198.51.100.130", "http://198.51.100.130/");
    assert_unanswered("2001:db8:100::1001", "http://[2001:db8:100::1001]/");

    // Control: with a static neighbour entry (what an announcer's reply would create) the VIP works,
    // so the failure above is the missing ARP/NDP answer and nothing else.
    let client = format!("{p}-client");
    let mac = ip(&["-n", &format!("{p}-node1"), "-br", "link", "show", "eth0"])
        .split_whitespace()
        .nth(2)
        .expect("node1 eth0 MAC")
        .to_string();
    for (vip, url) in
        [("198.51.100.131", "http://198.51.100.131/"), ("2001:db8:100::1002", "http://[2001:db8:100::1002]/")]
    {
        ip(&["-n", &client, "neigh", "replace", vip, "lladdr", &mac, "dev", "eth0", "nud", "permanent"]);
        let out = in_ns("client", &["http-get", url]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "node1",
            "{url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Crash recovery: without the state file, `down` still stops the servers and removes the namespaces.
    let pids = recorded_pids();
    assert_eq!(pids.len(), 2);
    std::fs::remove_file(format!("/run/ferrolb-lab/{p}.json")).unwrap();
    ok(&["down"]);
    assert!(our_namespaces().is_empty(), "namespaces left after down: {:?}", our_namespaces());
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie_or_gone =
            stat.is_empty() || stat.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
        assert!(zombie_or_gone, "HTTP server {pid} still running after down");
    }
    // Idempotent.
    ok(&["down"]);
    assert!(our_namespaces().is_empty());
    assert!(started.elapsed() < Duration::from_secs(30), "lab test took {:?}", started.elapsed());
}

#[test]
fn bad_arguments_fail_with_exit_code_1() {
    let out = Command::new(BIN).args(["--prefix", "Bad-Prefix", "down"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid prefix"));
    let out = Command::new(BIN)
        .args(["--prefix", &format!("flbx{}", std::process::id()), "up", "--nodes", "101"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("between 1 and 100"));
}
