//! `ferrolb-lab demo --bgp`: three nodes on one NIC whose announcers peer with an FRR router; a
//! pool and a LoadBalancer Service; the Service's address in the router's FIB with one next hop
//! per node (ECMP); a client outside, behind the router, reaching the nodes through it; a node's
//! link going down and the router dropping it within BFD's detection time.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::api::{DynamicObject, PostParams};
use serde_json::json;

use crate::bgp::{self, Router};
use crate::cluster::{self, ClusterInfo};
use crate::demo::{DemoOptions, cr_api, create_service_and_wait, say, step};
use crate::{Lab, Topology, check_interrupted};

/// The node whose link the demo takes down.
const FAILING: u8 = 2;

pub(crate) fn run(lab: &Lab, self_exe: &Path, opts: &DemoOptions) -> Result<()> {
    let t0 = Instant::now();
    step(
        1,
        &format!(
            "Building the lab: {} nodes on one switch, an FRR router (zebra, bgpd, bfdd) and a client outside it",
            opts.nodes
        ),
    );
    let mut copts = opts.cluster.clone();
    copts.topology = Topology::SingleNic;
    copts.announcer_args.push("--bgp=true".into());
    let mut state = cluster::up_cluster(lab, opts.nodes, self_exe, &copts)?;
    bgp::add_router(lab, &mut state, Router::Frr)?;
    let info = state.cluster.clone().context("cluster did not record its info")?;
    say(&format!(
        "router {}: LAN {} (AS {}), outside {}; client {} in {}",
        lab.router_ns(),
        bgp::ROUTER_V4,
        bgp::ROUTER_ASN,
        bgp::OUTSIDE_ROUTER_V4,
        bgp::OUTSIDE_CLIENT_V4,
        lab.outside_ns()
    ));
    for i in 1..=opts.nodes {
        say(&format!("node{i}: {}  eth0 {} (AS {})", lab.node_ns(i), Lab::node_v4(i), bgp::NODE_ASN));
    }

    let rt = info.runtime()?;
    step(
        2,
        "Creating BGPPeer `router` (BFD profile `fast`: 100 ms × 3), BGPAdvertisement `lab` and pool `demo`",
    );
    let i2 = info.clone();
    rt.block_on(async move { create_objects(&i2).await })??;
    say("created");

    step(3, "Creating LoadBalancer Service default/web (port 80)");
    let (i2, timeout) = (info.clone(), opts.timeout);
    let vip: IpAddr = rt.block_on(async move { create_service_and_wait(&i2, timeout).await })??;
    say(&format!("ferrolb-ipam assigned {vip}"));

    let prefix = format!("{vip}/32");
    let all: Vec<IpAddr> = (1..=opts.nodes).map(node_address).collect();
    step(4, &format!("Waiting for {prefix} in the router's kernel FIB with every node as a next hop"));
    let took = wait_hops(lab, &prefix, opts.timeout, |h| h == all.as_slice())?;
    say(&format!("after {:.2} s: ip route show {vip}", took.as_secs_f64()));
    for line in crate::run("ip", &["-n", &lab.router_ns(), "route", "show", &vip.to_string()])?.lines() {
        say(&format!("  {line}"));
    }

    step(5, &format!("12 HTTP GETs to http://{vip}/ from outside, each a new connection"));
    let seen = spread(lab, self_exe, vip, 12)?;
    say(&format!("answered by: {}", describe(&seen)));
    if seen.len() < 2 {
        say("(the router hashed every connection to one node this time)");
    }

    // BFD comes up a second or two after its BGP session (slow packets until both ends are Up);
    // until then only the hold time would notice a silent node. Wait for both ends.
    if !bgp::wait_bfd_up(lab, &rt, &info, &all, opts.timeout)? {
        bail!("BFD not Up on every node and on the router after {:?}", opts.timeout);
    }
    step(
        6,
        &format!(
            "node{FAILING}'s link goes down; its announcer keeps running (the router only sees silence)"
        ),
    );
    let gone = node_address(FAILING);
    cluster::set_link(lab, FAILING, "eth0", false)?;
    let took = wait_hops(lab, &prefix, opts.timeout, |h| !h.contains(&gone))?;
    say(&format!(
        "the router dropped node{FAILING} {:.0} ms after the link went down (BFD: 3 missed packets of 100 ms)",
        took.as_secs_f64() * 1000.0
    ));
    let seen = spread(lab, self_exe, vip, 6)?;
    say(&format!("6 GETs from outside now answered by: {}", describe(&seen)));
    if seen.contains_key(&format!("node{FAILING}")) {
        bail!("node{FAILING} still answered with its link down");
    }

    step(7, &format!("node{FAILING}'s link comes back"));
    cluster::set_link(lab, FAILING, "eth0", true)?;
    let took = wait_hops(lab, &prefix, opts.timeout, |h| h == all.as_slice())?;
    say(&format!(
        "node{FAILING} is a next hop again after {:.2} s (its session's next connect attempt)",
        took.as_secs_f64()
    ));

    step(
        8,
        "BGPSessionStates (what `kubectl get bgpsessionstates` shows, once every session is Established)",
    );
    let start = Instant::now();
    let lines = loop {
        let i2 = info.clone();
        let lines = rt.block_on(async move { session_states(&i2).await })??;
        if lines.iter().skip(1).all(|l| l.contains("Established")) || start.elapsed() > opts.timeout {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    say(&format!("after {:.1} s:", start.elapsed().as_secs_f64()));
    for line in lines {
        say(&line);
    }
    say(&format!("demo took {:.1} s", t0.elapsed().as_secs_f64()));
    Ok(())
}

fn node_address(i: u8) -> IpAddr {
    Lab::node_v4(i).parse().expect("the lab's node addresses parse")
}

async fn create_objects(info: &ClusterInfo) -> Result<()> {
    let client = info.client().await?;
    bgp::create_objects(client.clone(), bgp::lab_objects(false, Some("fast"))).await?;
    let pool: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "ferrolb.io/v1alpha1", "kind": "LoadBalancerIPPool",
        "metadata": {"name": "demo"},
        "spec": {"blocks": [{"cidr": crate::VIP_RANGE_V4}]},
    }))?;
    cr_api(client, "LoadBalancerIPPool", "loadbalancerippools")
        .create(&PostParams::default(), &pool)
        .await
        .context("creating LoadBalancerIPPool demo")?;
    Ok(())
}

/// Polls the router's FIB until the next hops of `prefix` satisfy `want`; how long that took.
fn wait_hops(
    lab: &Lab,
    prefix: &str,
    timeout: Duration,
    want: impl Fn(&[IpAddr]) -> bool,
) -> Result<Duration> {
    let start = Instant::now();
    let waited = bgp::wait_next_hops(lab, prefix, timeout, want)?;
    match waited.met_at {
        Some(at) => Ok(at.duration_since(start)),
        None => bail!("{prefix}: the router's next hops are {:?} after {timeout:?}", waited.hops),
    }
}

/// `n` GETs from the outside client: how many each node answered.
fn spread(lab: &Lab, self_exe: &Path, vip: IpAddr, n: usize) -> Result<BTreeMap<String, usize>> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        check_interrupted()?;
        *seen.entry(bgp::outside_get(lab, self_exe, vip)?).or_insert(0) += 1;
    }
    Ok(seen)
}

fn describe(spread: &BTreeMap<String, usize>) -> String {
    spread.iter().map(|(n, c)| format!("{n} ×{c}")).collect::<Vec<_>>().join(", ")
}

async fn session_states(info: &ClusterInfo) -> Result<Vec<String>> {
    let rows = bgp::session_states(info.client().await?).await?;
    let mut out = vec![format!("{:<8} {:<8} {:<14} {:<6} {}", "NODE", "PEER", "STATE", "BFD", "SENT")];
    out.extend(
        rows.iter().map(|r| format!("{:<8} {:<8} {:<14} {:<6} {}", r.node, r.peer, r.state, r.bfd, r.sent)),
    );
    Ok(out)
}
