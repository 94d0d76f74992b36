//! The `ferrolb-ipam` binary itself against kube-sim: flags, HA through the `ferrolb-ipam` Lease,
//! a SIGKILLed leader replaced by the standby without moving any address, graceful SIGTERM.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;

fn spawn(env: &Env, id: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ferrolb-ipam"))
        .args(["--kubeconfig", env.sim.kubeconfig_path().to_str().unwrap()])
        .args(["--namespace", "ferrolb-system", "--id", id, "--metrics-addr", "127.0.0.1:0"])
        .args(["--lease-duration", "2s", "--renew-deadline", "1500ms", "--retry-period", "300ms"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("ferrolb-ipam starts")
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill {sig} failed");
}

async fn holder(env: &Env) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), "ferrolb-system");
    leases.get_opt("ferrolb-ipam").await.unwrap()?.spec?.holder_identity.filter(|h| !h.is_empty())
}

async fn addresses(env: &Env) -> std::collections::BTreeMap<String, Vec<String>> {
    let list = env.services("default").list(&Default::default()).await.unwrap();
    list.items.iter().map(|s| (s.metadata.name.clone().unwrap(), ingress(s))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_takes_over_a_killed_leader_without_moving_addresses() {
    let env = Env::start().await;
    env.namespace("ferrolb-system").await;
    env.pool(LoadBalancerIPPool::test("lab").with_block("198.51.100.128/25")).await;
    for i in 0..20 {
        env.service("default", Service::test(&format!("s{i}"))).await;
    }
    let mut a = spawn(&env, "replica-a");
    let mut b = spawn(&env, "replica-b");
    for i in 0..20 {
        satisfied(&env, "default", &format!("s{i}"), 1).await;
    }
    let before = addresses(&env).await;
    let leader = wait_for("a leader", || holder(&env), Option::is_some).await.unwrap();
    let (dead, mut standby) = if leader == "replica-a" { (&mut a, b) } else { (&mut b, a) };

    signal(dead, "-KILL");
    let _ = dead.wait();
    let killed_at = Instant::now();
    env.service("default", Service::test("after-failover")).await;
    satisfied(&env, "default", "after-failover", 1).await;
    let took = killed_at.elapsed();
    // Lease 2 s, retry 0.3 s: the standby must lead within about one lease duration.
    assert!(took < Duration::from_secs(5), "failover took {took:?}");
    let new_leader = holder(&env).await.unwrap();
    assert_ne!(new_leader, leader);

    let mut after = addresses(&env).await;
    let new_ip = after.remove("after-failover").unwrap();
    assert_eq!(after, before, "a failover moved addresses");
    assert!(!before.values().any(|ips| ips == &new_ip), "the new Service got a taken address");

    // Graceful stop: the Lease is released at once.
    signal(&standby, "-TERM");
    let status = tokio::task::spawn_blocking(move || standby.wait()).await.unwrap().unwrap();
    assert!(status.success(), "SIGTERM exit: {status:?}");
    assert_eq!(holder(&env).await, None, "the Lease was not released on SIGTERM");
    assert_eq!(addresses(&env).await.len(), 21);
}

#[test]
fn bad_flags_exit_with_a_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb-ipam"))
        .args(["--lease-duration", "1s", "--renew-deadline", "2s", "--kubeconfig", "/nonexistent"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--renew-deadline") || err.contains("--lease-duration"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb-ipam")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--kubeconfig",
        "--namespace",
        "--id",
        "--metrics-addr",
        "--log-format",
        "--lease-duration",
        "--renew-deadline",
        "--retry-period",
        "--default-class",
        "--compat-annotations",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn version_names_the_binary_and_the_workspace_version() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb-ipam")).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("ferrolb-ipam {}\n", env!("CARGO_PKG_VERSION")));
}

/// jemalloc ignores a misspelt `malloc_conf` option with a warning on stderr: the binaries'
/// settings (`ferrolb_runtime::jemalloc_global_allocator!`) must be read and in force. Its
/// statistics at exit (asked for through the environment) list the options it runs with.
#[test]
fn the_allocator_runs_with_the_compiled_settings() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb-ipam"))
        .arg("--version")
        .env("_RJEM_MALLOC_CONF", "stats_print:true,stats_print_opts:mdablxe")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stats = String::from_utf8_lossy(&out.stderr);
    assert!(!stats.contains("<jemalloc>"), "jemalloc refused a setting:\n{stats}");
    for option in [
        "opt.background_thread: true",
        "opt.dirty_decay_ms: 2000",
        "opt.muzzy_decay_ms: 0",
        "opt.narenas: 1",
        "opt.tcache: true",
        "opt.tcache_max: 4096",
        "opt.tcache_nslots_small_max: 16",
        "opt.tcache_nslots_large: 4",
    ] {
        assert!(stats.contains(option), "{option} not in force:\n{stats}");
    }
}
