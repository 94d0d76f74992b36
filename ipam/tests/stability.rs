//! End-to-end: addresses never move (restart, migration from another implementation, pool
//! edits, failover) against kube-sim.

mod common;

use std::time::Duration;

use common::*;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

/// 50 Services of assorted shapes: plain, ip-count 2, dual-stack, and sharing pairs.
fn assorted(i: usize) -> Service {
    let name = format!("s{i:02}");
    match i % 10 {
        0 => Service::test(&name).with_annotations(&[("ferrolb.io/ip-count", "2")]),
        1 => Service::test(&name).with_family_policy("RequireDualStack"),
        2 | 3 => {
            let port = if i % 10 == 2 { 80 } else { 443 };
            let key = format!("k{}", i / 10);
            Service::test(&name)
                .with_ports(&[("TCP", port)])
                .with_annotations(&[("ferrolb.io/sharing-key", &key)])
        }
        _ => Service::test(&name),
    }
}

fn unique_count(addrs: &Addresses, v6: bool) -> usize {
    let mut all: Vec<&String> = addrs.values().flatten().filter(|ip| ip.contains(':') == v6).collect();
    all.sort();
    all.dedup();
    all.len()
}

#[tokio::test]
async fn restart_with_50_services_moves_nothing_and_writes_nothing() {
    let env = Env::start().await;
    env.pool(LoadBalancerIPPool::test("v4").with_block("198.51.100.0/24")).await;
    env.pool(LoadBalancerIPPool::test("v6").with_block("2001:db8:5::/120")).await;
    let ctl = env.controller();
    let mut keys = Vec::new();
    for i in 0..50 {
        env.service("default", assorted(i)).await;
        keys.push(format!("default/s{i:02}"));
    }
    let before = env.all_satisfied(&keys, 0, 20).await;
    assert_eq!(before["default/s00"].len(), 2, "ip-count 2");
    assert_eq!(before["default/s01"].len(), 2, "dual stack");
    assert_eq!(before["default/s02"], before["default/s03"], "sharing pair");
    // Let the pool status writes land before the stop, so the new controller has nothing to fix.
    let (n4, n6) = (unique_count(&before, false).to_string(), unique_count(&before, true).to_string());
    env.wait_pool("v4", "used settled", |p| pool_counts(p).1 == Some(n4.as_str())).await;
    env.wait_pool("v6", "used settled", |p| pool_counts(p).1 == Some(n6.as_str())).await;
    ctl.stop().await;

    let counters = env.sim.counters();
    let ctl = env.controller();
    ctl.wait_synced().await;
    // The restart's sync: leading, listed, imported; give it time to write anything it wants.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after_counters = env.sim.counters();
    let after = env.addresses().await;
    assert_eq!(after, before, "no address changed across the restart");
    let d = |f: &dyn Fn(&kube_sim::admin::Counters) -> u64| f(&after_counters) - f(&counters);
    assert_eq!(d(&|c| patches(c, "services", "status")), 0, "no services/status patch after the restart");
    assert_eq!(d(&|c| patches(c, "services", "")), 0, "no Service annotation patch after the restart");
    assert_eq!(
        d(&|c| patches(c, "loadbalancerippools", "status")),
        0,
        "no pool status patch after the restart"
    );
    // Leading from the start, the watch's own listing is taken after leadership began, so it is
    // consistent and no second listing is needed.
    assert_eq!(d(&|c| c.count("list", Some("services"))), 1, "one listing of Services on a leader's start");

    // The new controller does lead: a new Service gets the next address.
    env.service("default", Service::test("late")).await;
    let late = satisfied(&env, "default", "late", 1).await;
    assert!(!before.values().flatten().any(|ip| *ip == ingress(&late)[0]));
    let mut all = env.addresses().await;
    for j in 0..5 {
        assert_eq!(all[&format!("default/s{j}2")], all[&format!("default/s{j}3")], "sharing pair {j}");
    }
    // Each pair counted once, every other address on one Service only.
    all.retain(|k, _| !(k.starts_with("default/s") && k.ends_with('3')));
    assert_unique(&all);
    ctl.stop().await;
}

/// Writes a Service's ingress as MetalLB's controller would (its own field manager).
async fn metallb_status(env: &Env, name: &str, ingress: Value) {
    let pp = PatchParams { field_manager: Some("metallb-controller".into()), ..Default::default() };
    let body = json!({"status": {"loadBalancer": {"ingress": ingress}}});
    env.services("default").patch_status(name, &pp, &Patch::Merge(&body)).await.unwrap();
}

#[tokio::test]
async fn addresses_written_by_another_implementation_are_kept() {
    let env = Env::start().await;
    env.pool(LoadBalancerIPPool::test("p").with_block("198.51.100.0/28")).await;
    for name in ["m1", "m2", "m3", "m5"] {
        env.service("default", Service::test(name)).await;
    }
    env.service(
        "default",
        Service::test("m4").with_annotations(&[("metallb.io/loadBalancerIPs", "198.51.100.9")]),
    )
    .await;
    // Not the lowest free addresses, in both the bare and the ipMode forms.
    metallb_status(&env, "m1", json!([{"ip": "198.51.100.7"}])).await;
    metallb_status(&env, "m2", json!([{"ip": "198.51.100.3", "ipMode": "VIP"}])).await;
    metallb_status(&env, "m3", json!([{"ip": "198.51.100.12"}])).await;
    metallb_status(&env, "m4", json!([{"ip": "198.51.100.9"}])).await;
    // Outside every pool: not valid, so it gets a new address.
    metallb_status(&env, "m5", json!([{"ip": "203.0.113.9"}])).await;

    let ctl = env.controller();
    let want =
        [("m1", "198.51.100.7"), ("m2", "198.51.100.3"), ("m3", "198.51.100.12"), ("m4", "198.51.100.9")];
    for (name, ip) in want {
        let s = satisfied(&env, "default", name, 1).await;
        assert_eq!(ingress(&s), [ip], "{name} keeps MetalLB's address");
        assert_eq!(allocated_from(&s).as_deref(), Some("p"));
    }
    let m5 = satisfied(&env, "default", "m5", 1).await;
    assert_eq!(ingress(&m5), ["198.51.100.0"], "an address outside every pool is replaced");
    env.service("default", Service::test("fresh")).await;
    assert_eq!(ingress(&satisfied(&env, "default", "fresh", 1).await), ["198.51.100.1"]);
    assert_unique(&env.addresses().await);
    ctl.stop().await;
}

#[tokio::test]
async fn migrated_address_released_later_leaves_no_stale_ingress() {
    let env = Env::start().await;
    env.pool(LoadBalancerIPPool::test("p").with_block("198.51.100.0/28")).await;
    env.service("default", Service::test("bare")).await;
    env.service("default", Service::test("vip")).await;
    metallb_status(&env, "bare", json!([{"ip": "198.51.100.7"}])).await;
    metallb_status(&env, "vip", json!([{"ip": "198.51.100.8", "ipMode": "VIP"}])).await;
    let ctl = env.controller();
    assert_eq!(ingress(&satisfied(&env, "default", "bare", 1).await), ["198.51.100.7"]);
    assert_eq!(ingress(&satisfied(&env, "default", "vip", 1).await), ["198.51.100.8"]);

    // The request changes to an address no pool has: the old address is released and must not
    // stay in the ingress (another Service may get it now).
    for name in ["bare", "vip"] {
        env.patch_service(
            "default",
            name,
            json!({"metadata": {"annotations": {"ferrolb.io/ips": "203.0.113.200"}}}),
        )
        .await;
        let s = env.wait_condition("default", name, "False", "no_pool").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let s2 = env.get("default", name).await;
        assert!(
            ingress(&s2).is_empty(),
            "{name}: released address still shown (ingress {:?}, managedFields {:#?})",
            ingress(&s2),
            s.metadata.managed_fields
        );
    }
    ctl.stop().await;
}

#[tokio::test]
async fn new_widened_and_edited_pools_move_nothing() {
    let env = Env::start().await;
    env.pool(LoadBalancerIPPool::test("p").with_block("198.51.100.0/28")).await;
    let ctl = env.controller();
    let tracker = Tracker::start(&env);
    let keys: Vec<String> = (0..5).map(|i| format!("default/s{i}")).collect();
    for i in 0..5 {
        env.service("default", Service::test(&format!("s{i}"))).await;
    }
    let before = env.all_satisfied(&keys, 1, 10).await;
    assert!(before.values().any(|ips| ips == &["198.51.100.0"]), "{before:?}");

    // A new, preferred pool.
    env.pool(LoadBalancerIPPool::test("q").with_block("203.0.113.0/28").with_priority(0)).await;
    env.wait_pool("q", "status", |p| pool_counts(p).0 == Some("16")).await;
    assert_eq!(env.all_satisfied(&keys, 1, 10).await, before, "new pool");

    // Widened.
    env.patch_pool("p", json!({"spec": {"blocks": [{"cidr": "198.51.100.0/27"}]}})).await;
    env.wait_pool("p", "widened", |p| pool_counts(p).0 == Some("32")).await;
    assert_eq!(env.all_satisfied(&keys, 1, 10).await, before, "widened pool");

    // Rewritten as a range, with .0 now excluded from new allocations: held addresses stay.
    env.patch_pool(
        "p",
        json!({"spec": {"blocks": [{"start": "198.51.100.0", "stop": "198.51.100.20"}],
            "avoidBuggyIPs": true, "allowFirstLastIPs": "No"}}),
    )
    .await;
    env.wait_pool("p", "edited", |p| pool_counts(p).0.is_some_and(|t| t != "32")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(env.all_satisfied(&keys, 1, 10).await, before, "edited pool");

    // And across a restart with that edit.
    ctl.stop().await;
    let ctl = env.controller();
    ctl.wait_synced().await;
    env.service("default", Service::test("late")).await;
    assert_eq!(ingress(&satisfied(&env, "default", "late", 1).await), ["203.0.113.0"], "priority 0 pool");
    assert_eq!(env.all_satisfied(&keys, 1, 10).await, before, "restart after the edit");
    tracker.assert_no_moves();
    ctl.stop().await;
}

#[tokio::test]
async fn failover_by_lease_handover_moves_nothing() {
    let env = Env::start().await;
    env.pool(LoadBalancerIPPool::test("p").with_block("198.51.100.0/24")).await;
    let a = Controller::start(env.client.clone(), true);
    let b = Controller::start(env.client.clone(), false);
    let tracker = Tracker::start(&env);
    let mut keys: Vec<String> = Vec::new();
    for i in 0..10 {
        env.service("default", Service::test(&format!("a{i}"))).await;
        keys.push(format!("default/a{i}"));
    }
    let before = env.all_satisfied(&keys, 1, 10).await;

    a.leader.send(false).unwrap();
    b.leader.send(true).unwrap();
    let mut new_keys = Vec::new();
    for i in 0..5 {
        env.service("default", Service::test(&format!("b{i}"))).await;
        new_keys.push(format!("default/b{i}"));
    }
    env.all_satisfied(&new_keys, 1, 10).await;
    let all = env.addresses().await;
    assert_unique(&all);
    for k in &keys {
        assert_eq!(all[k], before[k], "{k}");
    }

    // And back again.
    b.leader.send(false).unwrap();
    a.leader.send(true).unwrap();
    env.service("default", Service::test("back")).await;
    satisfied(&env, "default", "back", 1).await;
    assert_unique(&env.addresses().await);
    tracker.assert_no_moves();
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn failover_after_leader_crash_moves_nothing() {
    let env = Env::start().await;
    env.pool(LoadBalancerIPPool::test("p").with_block("198.51.100.0/24")).await;
    let a = Controller::start(env.client.clone(), true);
    let b = Controller::start(env.client.clone(), false);
    let tracker = Tracker::start(&env);
    let mut keys: Vec<String> = Vec::new();
    for i in 0..10 {
        env.service("default", Service::test(&format!("a{i}"))).await;
        keys.push(format!("default/a{i}"));
    }
    env.all_satisfied(&keys, 1, 10).await;
    // More Services while A is busy, then A dies mid-way.
    for i in 10..20 {
        env.service("default", Service::test(&format!("a{i}"))).await;
        keys.push(format!("default/a{i}"));
    }
    a.kill();
    b.leader.send(true).unwrap();
    for i in 0..5 {
        env.service("default", Service::test(&format!("b{i}"))).await;
        keys.push(format!("default/b{i}"));
    }
    let all = env.all_satisfied(&keys, 1, 10).await;
    assert_unique(&all);
    tracker.assert_no_moves();
    b.stop().await;
}

#[tokio::test]
async fn restart_with_unsatisfied_and_warned_services_writes_nothing() {
    let env = Env::start().await;
    env.pool(LoadBalancerIPPool::test("p").with_range("198.51.100.1", "198.51.100.4")).await;
    let ctl = env.controller();
    env.service("default", Service::test("holder").with_annotations(&[("ferrolb.io/ips", "198.51.100.4")]))
        .await;
    satisfied(&env, "default", "holder", 1).await;
    env.service("default", Service::test("taken").with_annotations(&[("ferrolb.io/ips", "198.51.100.4")]))
        .await;
    env.service("default", Service::test("outside").with_annotations(&[("ferrolb.io/ips", "203.0.113.5")]))
        .await;
    env.service(
        "default",
        Service::test("typo").with_annotations(&[("ferrolb.io/ips", "198.51.100.1,bogus")]),
    )
    .await;
    env.service("default", Service::test("partial").with_annotations(&[("ferrolb.io/ip-count", "4")])).await;
    env.wait_condition("default", "taken", "False", "already_allocated").await;
    env.wait_condition("default", "outside", "False", "no_pool").await;
    satisfied(&env, "default", "typo", 1).await;
    let partial = env.wait_condition("default", "partial", "False", "partially_satisfied").await;
    wait_for(
        "partial annotated",
        || async { env.get("default", "partial").await },
        |s| allocated_from(s).is_some(),
    )
    .await;
    assert_eq!(ingress(&partial).len(), 2, "{:?}", ingress(&partial));
    env.wait_pool("p", "used settled", |p| pool_counts(p).1 == Some("4")).await;
    // Events of the first run have landed (they are best effort, written asynchronously).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = env.addresses().await;
    ctl.stop().await;

    let counters = env.sim.counters();
    let ctl = env.controller();
    ctl.wait_synced().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after_counters = env.sim.counters();
    assert_eq!(env.addresses().await, before);
    let d = |f: &dyn Fn(&kube_sim::admin::Counters) -> u64| f(&after_counters) - f(&counters);
    assert_eq!(d(&|c| patches(c, "services", "status")), 0, "no services/status patch after the restart");
    assert_eq!(d(&|c| patches(c, "services", "")), 0, "no Service annotation patch after the restart");
    assert_eq!(d(&|c| c.count("create", Some("events"))), 0, "no repeated Events after the restart");
    ctl.stop().await;
}

#[tokio::test]
async fn standby_writes_nothing() {
    let env = Env::start().await;
    env.pool(LoadBalancerIPPool::test("p").with_block("198.51.100.0/28")).await;
    let counters = env.sim.counters();
    let standby = Controller::start(env.client.clone(), false);
    standby.wait_synced().await;
    env.service("default", Service::test("web")).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after = env.sim.counters();
    let d =
        |verb: &str, resource: &str| after.count(verb, Some(resource)) - counters.count(verb, Some(resource));
    assert_eq!(d("patch", "services"), 0, "a standby patches no Service");
    assert_eq!(d("patch", "loadbalancerippools"), 0, "a standby patches no pool");
    assert_eq!(d("create", "events"), 0, "a standby records no Event");
    let s = env.get("default", "web").await;
    assert!(ingress(&s).is_empty() && condition(&s).is_none());
    // Promoted: it serves.
    standby.leader.send(true).unwrap();
    satisfied(&env, "default", "web", 1).await;
    standby.stop().await;
}

/// A leader whose Lease claim has lapsed (its renewal is late) sends no write, so it cannot
/// overwrite a replica that may already be taking over; once the claim is current again the
/// writes go out.
#[tokio::test]
async fn no_writes_while_the_lease_claim_has_lapsed() {
    let env = Env::start().await;
    env.pool(LoadBalancerIPPool::test("lab").with_block("198.51.100.128/25")).await;
    env.service("default", Service::test("web")).await;
    let ctl = Controller::start(env.client.clone(), false);
    ctl.leader.send_lapsed().unwrap();
    ctl.wait_synced().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let svc = env.get("default", "web").await;
    assert!(ingress(&svc).is_empty(), "written without a current claim: {:?}", ingress(&svc));
    assert!(condition(&svc).is_none(), "condition written without a current claim");

    ctl.leader.send(true).unwrap();
    let svc = satisfied(&env, "default", "web", 1).await;
    assert_eq!(ingress(&svc), ["198.51.100.128"]);
    ctl.stop().await;
}
