//! What the binaries really ask the API server for is allowed by their rules in `api/src/rbac.rs`
//! (which the chart's RBAC objects equal: `tests/chart.rs`).
//!
//! kube-sim has no RBAC, but counts requests by verb, group, resource and subresource. In one lab
//! (2 nodes), everything the test itself writes is created first; then, with the counters reset and
//! the test making no API request but reading the counters (the admin endpoint is not counted),
//! `ferrolb-ipam` runs alone until it has assigned addresses and written pool status, and is stopped
//! with SIGTERM (releasing its Lease); then the announcers run alone until they hold Leases, have
//! written a policy's status and Events, and are stopped with SIGTERM (handing over, deleting
//! Leases). Each phase's counters must be covered by that binary's rules.
//!
//! Not checked here: namespaces (the counters have none). Leases are checked afterwards to exist
//! only in FerroLB's namespace.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use ferrolb_api::rbac::{self, Component};
use ferrolb_lab::cluster::{self, ClusterInfo, ClusterOptions, SYSTEM_NAMESPACE};
use ferrolb_lab::{Lab, LabState};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube_sim::admin::Counters;
use nix::sys::signal::Signal;
use serde_json::json;

fn preflight() -> PathBuf {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the RBAC coverage test runs the binaries in the network-namespace lab and must run as root; it \
         never skips"
    );
    let ip = Command::new("ip").arg("-V").output();
    assert!(ip.as_ref().is_ok_and(|o| o.status.success()), "iproute2's `ip` is needed by the lab: {ip:?}");
    let dir = cluster::default_bin_dir().expect("locating the target directory");
    for b in [cluster::KUBE_SIM, cluster::IPAM, cluster::ANNOUNCER, cluster::LAB] {
        if let Err(e) = cluster::find_binary(&dir, b) {
            panic!(
                "{e:#}\nbuild the binaries with `cargo build -p kube-sim -p ferrolb-ipam -p ferrolb-l2announcer -p ferrolb-lab`"
            );
        }
    }
    dir
}

/// Removes the lab when the test ends, also when it fails.
struct Down(Lab);

impl Drop for Down {
    fn drop(&mut self) {
        if let Err(e) = ferrolb_lab::down(&self.0) {
            eprintln!("removing lab {}: {e:#}", self.0.prefix);
        }
    }
}

/// `(verb, group, resource/subresource)` of every counted request not allowed to `c`.
fn uncovered(c: &Component, counters: &Counters) -> Vec<String> {
    counters
        .requests
        .iter()
        .filter(|e| !c.allows(&e.verb, &e.group, &e.resource, &e.subresource))
        .map(|e| format!("{} {}/{}{} (x{})", e.verb, e.group, e.resource, sub(&e.subresource), e.count))
        .collect()
}

fn sub(s: &str) -> String {
    if s.is_empty() { String::new() } else { format!("/{s}") }
}

fn count(counters: &Counters, verb: &str, resource: &str, subresource: &str) -> u64 {
    counters
        .requests
        .iter()
        .filter(|e| e.verb == verb && e.resource == resource && e.subresource == subresource)
        .map(|e| e.count)
        .sum()
}

fn wait_counters(
    rt: &ferrolb_lab::netns::NsRuntime,
    info: &ClusterInfo,
    what: &str,
    done: impl Fn(&Counters) -> bool,
) -> Counters {
    let start = Instant::now();
    loop {
        let i = info.clone();
        let c = rt
            .wait(async move { i.admin().await?.counters().await.map_err(anyhow::Error::from) })
            .expect("reading kube-sim's counters");
        if done(&c) {
            return c;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{what}: not within 30 s; counters: {c:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn snapshot_after_reset(rt: &ferrolb_lab::netns::NsRuntime, info: &ClusterInfo, reset: bool) -> Counters {
    let i = info.clone();
    rt.wait(async move {
        let admin = i.admin().await?;
        if reset {
            admin.reset_counters().await?;
        }
        Ok::<_, anyhow::Error>(admin.counters().await?)
    })
    .expect("kube-sim's counters")
}

fn stop(lab: &Lab, role: &str) {
    let pid = cluster::signal_process(lab, role, Signal::SIGTERM).expect("SIGTERM");
    assert!(cluster::wait_exit(pid, Duration::from_secs(15)), "{role} did not exit within 15 s of SIGTERM");
}

#[test]
fn the_binaries_ask_only_for_what_their_rbac_rules_allow() {
    let dir = preflight();
    let lab = Lab::new(&format!("flbr{}", std::process::id())).expect("lab prefix");
    let mut opts = ClusterOptions::with_bin_dir(&dir);
    opts.ipam = false;
    opts.announcers = false;
    let nodes = 2;
    let mut state: LabState = cluster::up_cluster(&lab, nodes, &dir.join("ferrolb-lab"), &opts)
        .unwrap_or_else(|e| panic!("cannot build the lab: {e:#}"));
    let _down = Down(Lab { prefix: lab.prefix.clone() });
    let info = state.cluster.clone().expect("cluster info");
    let rt = info.runtime().expect("runtime in the switch namespace");

    // Everything the test writes, before any counted phase.
    let i = info.clone();
    rt.wait(async move {
        let client = i.client().await?;
        for (kind, plural, spec) in [
            ("LoadBalancerIPPool", "loadbalancerippools", json!({"blocks": [{"cidr": "198.51.100.128/25"}]})),
            ("L2AnnouncementPolicy", "l2announcementpolicies", json!({"interfaces": ["eth0"]})),
        ] {
            let gvk = GroupVersionKind::gvk(ferrolb_api::names::GROUP, ferrolb_api::names::VERSION, kind);
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &ApiResource::from_gvk_with_plural(&gvk, plural));
            let obj = json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": kind, "metadata": {"name": "rbac"}, "spec": spec});
            api.create(&PostParams::default(), &serde_json::from_value(obj)?).await?;
        }
        let services: Api<Service> = Api::namespaced(client, "default");
        for name in ["web", "api"] {
            let svc = json!({"metadata": {"name": name, "namespace": "default"},
                             "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]}});
            services.create(&PostParams::default(), &serde_json::from_value(svc)?).await?;
        }
        anyhow::Ok(())
    })
    .expect("creating the pool, the policy and the Services");
    let env = [("NO_COLOR".to_owned(), "1".to_owned())];

    // Phase 1: ferrolb-ipam alone.
    snapshot_after_reset(&rt, &info, true);
    let ipam = cluster::find_binary(&dir, cluster::IPAM).unwrap();
    let argv: Vec<String> = [
        ipam.to_str().unwrap(),
        "--kubeconfig",
        info.kubeconfig.to_str().unwrap(),
        "--namespace",
        SYSTEM_NAMESPACE,
        "--metrics-addr",
        "127.0.0.1:0",
        "--id",
        "ipam-rbac",
    ]
    .map(str::to_owned)
    .to_vec();
    ferrolb_lab::spawn_in_ns_env(&lab, &mut state, cluster::IPAM_ROLE, &lab.switch_ns(), &argv, &env)
        .expect("starting ferrolb-ipam");
    wait_counters(&rt, &info, "ferrolb-ipam assigns both Services and writes the pool's status", |c| {
        count(c, "patch", "services", "status") >= 2
            && count(c, "patch", "loadbalancerippools", "status") >= 1
            && count(c, "create", "events", "") >= 2
    });
    stop(&lab, cluster::IPAM_ROLE);
    let ipam_counters = snapshot_after_reset(&rt, &info, false);
    eprintln!("ferrolb-ipam's requests: {ipam_counters:#?}");
    assert!(count(&ipam_counters, "update", "leases", "") >= 1, "the Lease was never renewed or released");
    let missing = uncovered(&rbac::IPAM, &ipam_counters);
    assert!(missing.is_empty(), "ferrolb-ipam made requests api/src/rbac.rs does not allow: {missing:#?}");

    // Phase 2: the announcers alone (the Services already have their addresses).
    snapshot_after_reset(&rt, &info, true);
    let announcer = cluster::find_binary(&dir, cluster::ANNOUNCER).unwrap();
    for n in 1..=nodes {
        let argv = cluster::announcer_argv(&lab, &info, &announcer, n).unwrap();
        std::fs::create_dir_all(lab.state_dir().join(Lab::node_name(n))).unwrap();
        ferrolb_lab::spawn_in_ns_env(
            &lab,
            &mut state,
            &cluster::announcer_role(n),
            &lab.node_ns(n),
            &argv,
            &env,
        )
        .expect("starting an announcer");
    }
    wait_counters(&rt, &info, "the announcers take both addresses and write the policy's status", |c| {
        // Two heartbeat Leases and two address Leases.
        count(c, "create", "leases", "") >= 4
            && count(c, "patch", "l2announcementpolicies", "status") >= 1
            && count(c, "create", "events", "") >= 1
    });
    for n in 1..=nodes {
        stop(&lab, &cluster::announcer_role(n));
    }
    let announcer_counters = snapshot_after_reset(&rt, &info, false);
    eprintln!("the announcers' requests: {announcer_counters:#?}");
    let missing = uncovered(&rbac::ANNOUNCER, &announcer_counters);
    assert!(
        missing.is_empty(),
        "ferrolb-announcer made requests api/src/rbac.rs does not allow: {missing:#?}"
    );

    // Leases only in FerroLB's namespace.
    let i = info.clone();
    let leases = rt
        .wait(async move {
            let api: Api<Lease> = Api::all(i.client().await?);
            anyhow::Ok(api.list(&Default::default()).await?.items)
        })
        .expect("listing Leases");
    assert!(!leases.is_empty());
    for l in &leases {
        assert_eq!(l.metadata.namespace.as_deref(), Some(SYSTEM_NAMESPACE), "Lease {:?}", l.metadata.name);
    }
}
