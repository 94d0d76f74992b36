//! End-to-end: pool behaviour (conflicts, invalid specs, disabled, autoAssign, priority, delete,
//! block removal, status counts) against kube-sim.

mod common;

use common::*;
use ferrolb_testkit::fixtures::match_labels;
use serde_json::json;

const CONFLICT: &str = "ferrolb.io/PoolConflict";
const INVALID: &str = "ferrolb.io/InvalidSpec";

#[tokio::test]
async fn overlap_marks_the_newer_pool_until_the_overlap_goes() {
    let env = Env::start().await;
    // Same-second creation timestamps are ordered by name: p2-new is the newer one either way.
    env.pool(LoadBalancerIPPool::test("p1-old").with_block("198.51.100.0/28")).await;
    let ctl = env.controller();
    env.service("default", Service::test("first")).await;
    assert_eq!(ingress(&satisfied(&env, "default", "first", 1).await), ["198.51.100.0"]);

    env.pool(
        LoadBalancerIPPool::test("p2-new")
            .with_block("203.0.113.64/29")
            .with_block("198.51.100.8/29")
            .with_priority(0),
    )
    .await;
    let p = env
        .wait_pool("p2-new", "PoolConflict=True", |p| {
            pool_condition(p, CONFLICT).is_some_and(|c| c.0 == "True")
        })
        .await;
    let (_, reason, msg) = pool_condition(&p, CONFLICT).unwrap();
    assert_eq!(reason, "cidr_overlap");
    assert!(
        msg.contains("198.51.100.8") && msg.contains("198.51.100.0") && msg.contains("p1-old"),
        "names both ranges and the other pool: {msg}"
    );
    assert_eq!(pool_counts(&p).2, Some("0"), "a pool in conflict offers nothing");
    let old = env.wait_pool("p1-old", "status", |p| pool_condition(p, CONFLICT).is_some()).await;
    assert_eq!(pool_condition(&old, CONFLICT).unwrap().0, "False");

    // The newer pool allocates nothing, even from its non-overlapping block and with priority 0.
    env.service("default", Service::test("wants-new").with_annotations(&[("ferrolb.io/pool", "p2-new")]))
        .await;
    let s = env.wait_condition("default", "wants-new", "False", "no_pool").await;
    assert!(ingress(&s).is_empty());
    env.service("default", Service::test("second")).await;
    assert_eq!(ingress(&satisfied(&env, "default", "second", 1).await), ["198.51.100.1"]);

    // The overlap goes: the mark clears and the pool allocates.
    env.patch_pool("p2-new", json!({"spec": {"blocks": [{"cidr": "203.0.113.64/29"}]}})).await;
    let p = env
        .wait_pool("p2-new", "PoolConflict=False", |p| {
            pool_condition(p, CONFLICT).is_some_and(|c| c.0 == "False")
        })
        .await;
    assert_eq!(pool_condition(&p, CONFLICT).unwrap().1, "no_conflict");
    let s = satisfied(&env, "default", "wants-new", 1).await;
    assert_eq!(ingress(&s), ["203.0.113.64"]);
    assert_eq!(ingress(&env.get("default", "first").await), ["198.51.100.0"]);
    ctl.stop().await;
}

#[tokio::test]
async fn invalid_specs_are_reported_and_other_pools_keep_working() {
    let env = Env::start().await;
    // A reversed range passes the API's CEL rules; the controller must catch it.
    env.pool(LoadBalancerIPPool::test("bad").with_range("198.51.100.20", "198.51.100.10")).await;
    env.pool(
        LoadBalancerIPPool::test("badsel")
            .with_block("198.51.100.32/28")
            .with_service_selector(match_labels(&[("bad key", "v")])),
    )
    .await;
    env.pool(LoadBalancerIPPool::test("good").with_block("198.51.100.128/28")).await;
    env.pool(
        LoadBalancerIPPool::test("mixed")
            .with_block("203.0.113.0/29")
            .with_range("203.0.113.20", "203.0.113.16"),
    )
    .await;
    let ctl = env.controller();

    let invalid = |name: &'static str| {
        let env = &env;
        async move {
            env.wait_pool(name, "InvalidSpec=True", |p| {
                pool_condition(p, INVALID).is_some_and(|c| c.0 == "True")
            })
            .await
        }
    };
    let bad = invalid("bad").await;
    let (_, reason, msg) = pool_condition(&bad, INVALID).unwrap();
    assert_eq!(reason, "invalid_spec");
    assert!(msg.contains("198.51.100.20") && msg.contains("198.51.100.10"), "{msg}");
    let badsel = invalid("badsel").await;
    assert!(pool_condition(&badsel, INVALID).unwrap().2.contains("bad key"), "{badsel:?}");
    let mixed = invalid("mixed").await;
    assert!(pool_condition(&mixed, INVALID).unwrap().2.contains("block 1"), "{mixed:?}");
    let good = env.wait_pool("good", "InvalidSpec=False", |p| pool_condition(p, INVALID).is_some()).await;
    assert_eq!(pool_condition(&good, INVALID).unwrap().0, "False");

    env.service("default", Service::test("web")).await;
    let s = satisfied(&env, "default", "web", 1).await;
    assert_eq!(ingress(&s), ["198.51.100.128"], "neither the empty nor the bad-selector pool serves");
    // The valid block of a partly invalid pool keeps working.
    env.service("default", Service::test("explicit").with_annotations(&[("ferrolb.io/ips", "203.0.113.1")]))
        .await;
    assert_eq!(ingress(&satisfied(&env, "default", "explicit", 1).await), ["203.0.113.1"]);

    // Fixing the spec clears the condition; the controller is alive and well.
    env.patch_pool("bad", json!({"spec": {"blocks": [{"start": "198.51.100.10", "stop": "198.51.100.20"}]}}))
        .await;
    env.wait_pool("bad", "InvalidSpec=False", |p| pool_condition(p, INVALID).is_some_and(|c| c.0 == "False"))
        .await;
    env.service("default", Service::test("fixed").with_annotations(&[("ferrolb.io/pool", "bad")])).await;
    assert_eq!(ingress(&satisfied(&env, "default", "fixed", 1).await), ["198.51.100.10"]);
    ctl.stop().await;
}

#[tokio::test]
async fn disabled_pool_keeps_addresses_and_gives_no_new_ones() {
    let env = Env::start().await;
    env.pool(LoadBalancerIPPool::test("p").with_block("198.51.100.0/29")).await;
    let ctl = env.controller();
    env.service("default", Service::test("old")).await;
    assert_eq!(ingress(&satisfied(&env, "default", "old", 1).await), ["198.51.100.0"]);

    env.patch_pool("p", json!({"spec": {"disabled": true}})).await;
    env.service("default", Service::test("new")).await;
    let s = env.wait_condition("default", "new", "False", "no_pool").await;
    assert!(ingress(&s).is_empty());
    let old = env.get("default", "old").await;
    assert_eq!(ingress(&old), ["198.51.100.0"], "existing allocations stay");
    assert_eq!(condition(&old).unwrap().0, "True");

    env.patch_pool("p", json!({"spec": {"disabled": false}})).await;
    assert_eq!(ingress(&satisfied(&env, "default", "new", 1).await), ["198.51.100.1"]);
    assert_eq!(ingress(&env.get("default", "old").await), ["198.51.100.0"]);
    ctl.stop().await;
}

#[tokio::test]
async fn auto_assign_false_serves_only_explicit_requests() {
    let env = Env::start().await;
    env.pool(
        LoadBalancerIPPool::test("manual")
            .with_block("198.51.100.0/29")
            .with_auto_assign(false)
            .with_priority(0),
    )
    .await;
    let ctl = env.controller();
    env.service("default", Service::test("plain")).await;
    let s = env.wait_condition("default", "plain", "False", "no_pool").await;
    assert!(ingress(&s).is_empty());

    env.service("default", Service::test("by-ip").with_annotations(&[("ferrolb.io/ips", "198.51.100.3")]))
        .await;
    assert_eq!(ingress(&satisfied(&env, "default", "by-ip", 1).await), ["198.51.100.3"]);
    env.service("default", Service::test("by-pool").with_annotations(&[("ferrolb.io/pool", "manual")])).await;
    assert_eq!(ingress(&satisfied(&env, "default", "by-pool", 1).await), ["198.51.100.0"]);

    // An auto-assigning pool appears: the plain Service gets its address there, not from manual.
    env.pool(LoadBalancerIPPool::test("auto").with_block("203.0.113.0/29")).await;
    assert_eq!(ingress(&satisfied(&env, "default", "plain", 1).await), ["203.0.113.0"]);
    ctl.stop().await;
}

#[tokio::test]
async fn priority_orders_pools_lower_first_unset_last() {
    let env = Env::start().await;
    env.pool(LoadBalancerIPPool::test("a-unset").with_block("198.51.100.64/29")).await;
    env.pool(
        LoadBalancerIPPool::test("b-second").with_range("198.51.100.0", "198.51.100.1").with_priority(5),
    )
    .await;
    env.pool(LoadBalancerIPPool::test("z-first").with_address("203.0.113.1").with_priority(1)).await;
    let ctl = env.controller();
    let expect = [
        ("s1", "203.0.113.1", "z-first"),
        ("s2", "198.51.100.0", "b-second"),
        ("s3", "198.51.100.1", "b-second"),
        ("s4", "198.51.100.64", "a-unset"),
    ];
    for (name, ip, pool) in expect {
        env.service("default", Service::test(name)).await;
        let s = satisfied(&env, "default", name, 1).await;
        assert_eq!(ingress(&s), [ip], "{name}");
        assert_eq!(allocated_from(&s).as_deref(), Some(pool), "{name}");
    }
    ctl.stop().await;
}

#[tokio::test]
async fn pool_delete_rehomes_or_releases() {
    let env = Env::start().await;
    env.pool(LoadBalancerIPPool::test("p1-home").with_block("198.51.100.0/28")).await;
    env.pool(LoadBalancerIPPool::test("p3-lone").with_block("203.0.113.0/29")).await;
    let ctl = env.controller();
    env.service("default", Service::test("s1")).await;
    env.service("default", Service::test("s2")).await;
    env.service("default", Service::test("pinned").with_annotations(&[("ferrolb.io/pool", "p3-lone")])).await;
    let before =
        env.all_satisfied(&["default/s1".into(), "default/s2".into(), "default/pinned".into()], 1, 10).await;
    assert_eq!(before["default/pinned"], ["203.0.113.0"]);

    // A wider, newer pool covering p1-home: in conflict while p1-home exists.
    env.pool(LoadBalancerIPPool::test("p2-backup").with_block("198.51.100.0/27")).await;
    env.wait_pool("p2-backup", "PoolConflict=True", |p| {
        pool_condition(p, CONFLICT).is_some_and(|c| c.0 == "True")
    })
    .await;

    env.delete_pool("p1-home").await;
    env.wait_pool("p2-backup", "conflict cleared and 2 used", |p| {
        pool_condition(p, CONFLICT).is_some_and(|c| c.0 == "False") && pool_counts(p).1 == Some("2")
    })
    .await;
    for name in ["s1", "s2"] {
        let s = wait_for(
            &format!("{name} re-homed to p2-backup"),
            || async { env.get("default", name).await },
            |s| allocated_from(s).as_deref() == Some("p2-backup"),
        )
        .await;
        assert_eq!(ingress(&s), before[&format!("default/{name}")], "{name} keeps its address");
        assert_eq!(condition(&s).unwrap().0, "True");
    }

    // No other pool covers p3-lone's addresses: the pinned Service is released.
    env.delete_pool("p3-lone").await;
    let s = wait_for(
        "pinned released, its pool annotation removed",
        || async { env.get("default", "pinned").await },
        |s| {
            ingress(s).is_empty()
                && condition(s).is_some_and(|c| c.0 == "False")
                && allocated_from(s).is_none()
        },
    )
    .await;
    assert_eq!(condition(&s).unwrap().1, "no_pool");

    // Re-created: the pinned Service gets its old address back, even with a newer rival waiting.
    env.service("default", Service::test("rival").with_annotations(&[("ferrolb.io/pool", "p3-lone")])).await;
    env.wait_condition("default", "rival", "False", "no_pool").await;
    env.pool(LoadBalancerIPPool::test("p3-lone").with_block("203.0.113.0/29")).await;
    let s = satisfied(&env, "default", "pinned", 1).await;
    assert_eq!(ingress(&s), ["203.0.113.0"]);
    assert_eq!(ingress(&satisfied(&env, "default", "rival", 1).await), ["203.0.113.1"]);
    ctl.stop().await;
}

#[tokio::test]
async fn block_delete_releases_its_addresses_and_counts_follow() {
    let env = Env::start().await;
    env.pool(LoadBalancerIPPool::test("p").with_block("198.51.100.0/30").with_block("203.0.113.0/30")).await;
    let ctl = env.controller();
    let mut keys = Vec::new();
    for i in 0..5 {
        env.service("default", Service::test(&format!("s{i}"))).await;
        keys.push(format!("default/s{i}"));
    }
    env.service("default", Service::test("explicit").with_annotations(&[("ferrolb.io/ips", "203.0.113.2")]))
        .await;
    let before = env.all_satisfied(&keys, 1, 10).await;
    satisfied(&env, "default", "explicit", 1).await;
    let in_second: Vec<&String> =
        before.iter().filter(|(_, ips)| in_net(&ips[0], "203.0.113.0/30")).map(|(k, _)| k).collect();
    assert_eq!(in_second.len(), 1, "{before:?}");
    let moved = in_second[0].trim_start_matches("default/").to_string();
    let p = env.wait_pool("p", "6 used", |p| pool_counts(p).1 == Some("6")).await;
    assert_eq!(pool_counts(&p), (Some("8"), Some("6"), Some("2")));

    env.patch_pool("p", json!({"spec": {"blocks": [{"cidr": "198.51.100.0/30"}]}})).await;
    let s = env.wait_condition("default", &moved, "False", "out_of_ips").await;
    assert!(ingress(&s).is_empty(), "{s:?}");
    let s = env.wait_condition("default", "explicit", "False", "no_pool").await;
    assert!(ingress(&s).is_empty(), "{s:?}");
    let p = env.wait_pool("p", "4 total", |p| pool_counts(p).0 == Some("4")).await;
    assert_eq!(pool_counts(&p), (Some("4"), Some("4"), Some("0")));
    let after = env.addresses().await;
    for (k, ips) in &before {
        if *k != format!("default/{moved}") {
            assert_eq!(&after[k], ips, "{k} is untouched");
        }
    }
    ctl.stop().await;
}
