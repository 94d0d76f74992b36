//! End-to-end: what a Service asks for (selectors, explicit addresses, pools, compatibility
//! annotations, families, ip-count) against kube-sim.

mod common;

use common::*;
use ferrolb_testkit::fixtures::{match_expression, match_labels};
use serde_json::json;

#[tokio::test]
async fn selectors_with_pseudo_labels_or_and_no_selector() {
    let env = Env::start().await;
    env.namespace("prod").await;
    env.pool(
        LoadBalancerIPPool::test("ns-prod")
            .with_block("198.51.100.0/28")
            .with_priority(0)
            .with_service_selector(match_labels(&[("io.kubernetes.service.namespace", "prod")])),
    )
    .await;
    env.pool(
        LoadBalancerIPPool::test("by-name")
            .with_block("198.51.100.16/28")
            .with_priority(0)
            .with_service_selector(match_labels(&[("io.kubernetes.service.name", "special")])),
    )
    .await;
    // Label values cannot hold a class name ("x/y"): a user label "other" stands for a spoof.
    env.pool(
        LoadBalancerIPPool::test("spoofed-class")
            .with_block("198.51.100.80/28")
            .with_priority(0)
            .with_service_selector(match_labels(&[("ferrolb.io/load-balancer-class", "other")])),
    )
    .await;
    env.pool(
        LoadBalancerIPPool::test("teams")
            .with_block("198.51.100.48/28")
            .with_priority(0)
            .with_service_selectors([match_labels(&[("team", "a")]), match_labels(&[("team", "b")])]),
    )
    .await;
    // No selector: every Service; last by priority so the selective pools are tried first.
    env.pool(LoadBalancerIPPool::test("all").with_block("198.51.100.64/28").with_priority(10)).await;
    let ctl = env.controller();

    let labelled = |name: &str, labels: &[(&str, &str)]| Service::test(name).with_labels(labels);
    env.service("prod", Service::test("web")).await;
    // User labels with the pseudo-labels' keys are overridden by the real values.
    env.service("default", labelled("fake-ns", &[("io.kubernetes.service.namespace", "prod")])).await;
    env.service("default", Service::test("special")).await;
    env.service("default", labelled("fake-name", &[("io.kubernetes.service.name", "special")])).await;
    let classy =
        labelled("classy", &[("ferrolb.io/load-balancer-class", "other")]).with_class("ferrolb.io/l2");
    env.service("default", classy).await;
    env.service("default", labelled("team-b", &[("team", "b")])).await;
    env.service("default", labelled("team-c", &[("team", "c")])).await;
    env.service("default", Service::test("plain")).await;

    let expect = [
        ("prod", "web", "ns-prod", "198.51.100.0/28"),
        ("default", "fake-ns", "all", "198.51.100.64/28"),
        ("default", "special", "by-name", "198.51.100.16/28"),
        ("default", "fake-name", "all", "198.51.100.64/28"),
        ("default", "classy", "all", "198.51.100.64/28"),
        ("default", "team-b", "teams", "198.51.100.48/28"),
        ("default", "team-c", "all", "198.51.100.64/28"),
        ("default", "plain", "all", "198.51.100.64/28"),
    ];
    for (ns, name, pool, net) in expect {
        let s = satisfied(&env, ns, name, 1).await;
        let ip = &ingress(&s)[0];
        assert!(in_net(ip, net), "{ns}/{name} got {ip}, expected one of pool {pool} ({net})");
        assert_eq!(allocated_from(&s).as_deref(), Some(pool), "{ns}/{name}");
    }
    assert_unique(&env.addresses().await);
    ctl.stop().await;
}

/// The class pseudo-label carries `spec.loadBalancerClass`, which always has a `/`
/// (`ferrolb.io/l2`): a pool must be able to select on it.
#[tokio::test]
async fn class_pseudo_label_selects_by_load_balancer_class() {
    let env = Env::start().await;
    env.pool(
        LoadBalancerIPPool::test("by-class")
            .with_block("198.51.100.32/28")
            .with_priority(0)
            .with_service_selector(match_labels(&[("ferrolb.io/load-balancer-class", "ferrolb.io/l2")])),
    )
    .await;
    env.pool(
        LoadBalancerIPPool::test("by-class-expr")
            .with_block("198.51.100.48/28")
            .with_priority(1)
            .with_service_selector(match_expression(
                "ferrolb.io/load-balancer-class",
                "In",
                &["ferrolb.io/l2"],
            )),
    )
    .await;
    env.pool(LoadBalancerIPPool::test("all").with_block("198.51.100.64/28").with_priority(10)).await;
    let ctl = env.controller();
    env.service("default", Service::test("classy").with_class("ferrolb.io/l2")).await;
    env.service("default", Service::test("classless")).await;

    for name in ["by-class", "by-class-expr"] {
        let p = env
            .wait_pool(name, "InvalidSpec", |p| pool_condition(p, "ferrolb.io/InvalidSpec").is_some())
            .await;
        assert_eq!(
            pool_condition(&p, "ferrolb.io/InvalidSpec").unwrap().0,
            "False",
            "a selector on the class pseudo-label with a class value is valid: {:?}",
            pool_condition(&p, "ferrolb.io/InvalidSpec")
        );
    }
    let s = satisfied(&env, "default", "classy", 1).await;
    assert_eq!(allocated_from(&s).as_deref(), Some("by-class"), "{:?}", ingress(&s));
    let s = satisfied(&env, "default", "classless", 1).await;
    assert_eq!(allocated_from(&s).as_deref(), Some("all"), "{:?}", ingress(&s));
    ctl.stop().await;
}

#[tokio::test]
async fn explicit_requests_inside_outside_mismatched_and_taken() {
    let env = Env::start().await;
    env.pool(LoadBalancerIPPool::test("a").with_block("198.51.100.0/27").with_priority(0)).await;
    env.pool(LoadBalancerIPPool::test("b").with_block("198.51.100.32/27").with_priority(1)).await;
    env.pool(
        LoadBalancerIPPool::test("gold")
            .with_block("198.51.100.64/27")
            .with_service_selector(match_labels(&[("tier", "gold")])),
    )
    .await;
    let ctl = env.controller();

    env.service("default", Service::test("inside").with_annotations(&[("ferrolb.io/ips", "198.51.100.10")]))
        .await;
    let s = satisfied(&env, "default", "inside", 1).await;
    assert_eq!(ingress(&s), ["198.51.100.10"]);
    assert_eq!(condition(&s).unwrap().1, "satisfied");

    env.service("default", Service::test("outside").with_annotations(&[("ferrolb.io/ips", "203.0.113.5")]))
        .await;
    let s = env.wait_condition("default", "outside", "False", "no_pool").await;
    assert!(ingress(&s).is_empty(), "{s:?}");
    assert!(condition(&s).unwrap().2.contains("203.0.113.5"), "{:?}", condition(&s));

    env.service(
        "default",
        Service::test("mismatch").with_annotations(&[("ferrolb.io/ips", "198.51.100.70")]),
    )
    .await;
    let s = env.wait_condition("default", "mismatch", "False", "pool_selector_mismatch").await;
    assert!(ingress(&s).is_empty(), "{s:?}");

    env.service("default", Service::test("taken").with_annotations(&[("ferrolb.io/ips", "198.51.100.10")]))
        .await;
    let s = env.wait_condition("default", "taken", "False", "already_allocated").await;
    assert!(ingress(&s).is_empty(), "{s:?}");
    assert_eq!(ingress(&env.get("default", "inside").await), ["198.51.100.10"], "the holder keeps it");

    // The mismatched request becomes valid when the Service gets the label.
    env.patch_service("default", "mismatch", json!({"metadata": {"labels": {"tier": "gold"}}})).await;
    let s = satisfied(&env, "default", "mismatch", 1).await;
    assert_eq!(ingress(&s), ["198.51.100.70"]);
    assert_eq!(allocated_from(&s).as_deref(), Some("gold"));

    // The taken address goes to the waiting Service once its holder lets go of it.
    env.delete_service("default", "inside").await;
    let s = satisfied(&env, "default", "taken", 1).await;
    assert_eq!(ingress(&s), ["198.51.100.10"]);

    // spec.loadBalancerIP.
    env.service("default", Service::test("lbip").with_load_balancer_ip("198.51.100.11")).await;
    assert_eq!(ingress(&satisfied(&env, "default", "lbip", 1).await), ["198.51.100.11"]);

    // ferrolb.io/pool picks a pool other than the first by priority.
    env.service("default", Service::test("named").with_annotations(&[("ferrolb.io/pool", "b")])).await;
    let s = satisfied(&env, "default", "named", 1).await;
    assert_eq!(ingress(&s), ["198.51.100.32"]);
    assert_eq!(allocated_from(&s).as_deref(), Some("b"));
    // And an unannotated one still gets the lowest free address of the first pool.
    env.service("default", Service::test("auto")).await;
    assert_eq!(ingress(&satisfied(&env, "default", "auto", 1).await), ["198.51.100.0"]);
    ctl.stop().await;
}

#[tokio::test]
async fn compatibility_annotations_and_ferrolb_precedence() {
    let env = Env::start().await;
    env.pool(LoadBalancerIPPool::test("a").with_block("198.51.100.0/27").with_priority(0)).await;
    env.pool(LoadBalancerIPPool::test("b").with_block("198.51.100.32/27").with_priority(1)).await;
    env.pool(LoadBalancerIPPool::test("c").with_block("198.51.100.64/27").with_priority(2)).await;
    let ctl = env.controller();

    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 8] = [
        ("metallb", vec![("metallb.io/loadBalancerIPs", "198.51.100.12")], "198.51.100.12"),
        ("metallb-legacy", vec![("metallb.universe.tf/loadBalancerIPs", "198.51.100.13")], "198.51.100.13"),
        ("cilium", vec![("lbipam.cilium.io/ips", "198.51.100.14")], "198.51.100.14"),
        ("cilium-legacy", vec![("io.cilium/lb-ipam-ips", "198.51.100.15")], "198.51.100.15"),
        ("deckhouse", vec![("network.deckhouse.io/load-balancer-ips", "198.51.100.16")], "198.51.100.16"),
        ("metallb-pool", vec![("metallb.io/address-pool", "b")], "198.51.100.32"),
        ("metallb-legacy-pool", vec![("metallb.universe.tf/address-pool", "c")], "198.51.100.64"),
        (
            "both",
            vec![("ferrolb.io/ips", "198.51.100.17"), ("metallb.io/loadBalancerIPs", "198.51.100.18")],
            "198.51.100.17",
        ),
    ];
    for (name, anns, _) in &cases {
        env.service("default", Service::test(name).with_annotations(anns)).await;
    }
    env.service(
        "default",
        Service::test("both-pools")
            .with_annotations(&[("ferrolb.io/pool", "c"), ("metallb.io/address-pool", "b")]),
    )
    .await;
    for (name, _, want) in &cases {
        let s = satisfied(&env, "default", name, 1).await;
        assert_eq!(ingress(&s), [*want], "{name}");
    }
    let s = satisfied(&env, "default", "both-pools", 1).await;
    assert!(in_net(&ingress(&s)[0], "198.51.100.64/27"), "ferrolb.io/pool wins: {:?}", ingress(&s));
    assert_eq!(allocated_from(&s).as_deref(), Some("c"));

    // The loser of "both" is not reserved: someone else may request it.
    env.service("default", Service::test("loser").with_annotations(&[("ferrolb.io/ips", "198.51.100.18")]))
        .await;
    assert_eq!(ingress(&satisfied(&env, "default", "loser", 1).await), ["198.51.100.18"]);
    assert_unique(&env.addresses().await);
    ctl.stop().await;
}

#[tokio::test]
async fn malformed_entries_warn_and_the_valid_rest_is_served() {
    let env = Env::start().await;
    env.pool(LoadBalancerIPPool::test("a").with_block("198.51.100.0/27")).await;
    let ctl = env.controller();
    env.service(
        "default",
        Service::test("typo")
            .with_annotations(&[("ferrolb.io/ips", "198.51.100.20, not-an-ip, 198.51.100.21")]),
    )
    .await;
    let s = satisfied(&env, "default", "typo", 2).await;
    assert_eq!(ingress(&s), ["198.51.100.20", "198.51.100.21"]);
    let (_, _, msg) = condition(&s).unwrap();
    assert!(msg.contains("not-an-ip"), "the condition names the bad entry: {msg}");

    let events = wait_for(
        "an InvalidAnnotation Warning Event",
        || async { env.events("default").await },
        |evs| evs.iter().any(|e| e.reason.as_deref() == Some("InvalidAnnotation")),
    )
    .await;
    let ev = events.iter().find(|e| e.reason.as_deref() == Some("InvalidAnnotation")).unwrap();
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    let note = ev.note.clone().unwrap_or_default();
    assert!(note.contains("ferrolb.io/ips") && note.contains("not-an-ip"), "{note}");
    let regarding = ev.regarding.as_ref().unwrap();
    assert_eq!(regarding.name.as_deref(), Some("typo"));
    assert_eq!(regarding.kind.as_deref(), Some("Service"));

    // A bad ip-count falls back to 1 and is reported the same way.
    env.service("default", Service::test("count").with_annotations(&[("ferrolb.io/ip-count", "many")])).await;
    let s = satisfied(&env, "default", "count", 1).await;
    assert!(condition(&s).unwrap().2.contains("ferrolb.io/ip-count"), "{:?}", condition(&s));
    wait_for(
        "an InvalidAnnotation Event for count",
        || async { env.events("default").await },
        |evs| {
            evs.iter().any(|e| {
                e.reason.as_deref() == Some("InvalidAnnotation")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("count")
            })
        },
    )
    .await;
    ctl.stop().await;
}

#[tokio::test]
async fn families_single_v6_prefer_and_require_dual_stack() {
    let env = Env::start().await;
    env.pool(LoadBalancerIPPool::test("v4").with_block("198.51.100.0/28")).await;
    let ctl = env.controller();

    let dual = |name: &str, policy: &str| {
        Service::test(name).with_family_policy(policy).with_ip_families(&["IPv4", "IPv6"])
    };
    env.service("default", dual("prefer", "PreferDualStack")).await;
    env.service("default", dual("require", "RequireDualStack")).await;
    let six = Service::test("six").with_family_policy("SingleStack").with_ip_families(&["IPv6"]);
    env.service("default", six).await;

    // PreferDualStack with only a v4 pool: satisfied with one address.
    let p = satisfied(&env, "default", "prefer", 1).await;
    let prefer_v4 = ingress(&p)[0].clone();
    assert!(in_net(&prefer_v4, "198.51.100.0/28"));
    // RequireDualStack with only v4: not satisfied.
    let r = wait_for(
        "require not satisfied",
        || async { env.get("default", "require").await },
        |s| condition(s).is_some_and(|c| c.0 == "False"),
    )
    .await;
    assert_eq!(condition(&r).unwrap().1, "no_pool", "{:?}", condition(&r));
    assert!(ingress(&r).iter().all(|ip| !ip.contains(':')), "{:?}", ingress(&r));
    let s = env.wait_condition("default", "six", "False", "no_pool").await;
    assert!(ingress(&s).is_empty());

    // A v6 pool appears: every Service completes, the v4 addresses stay.
    env.pool(LoadBalancerIPPool::test("v6").with_block("2001:db8:1::/120")).await;
    let six = satisfied(&env, "default", "six", 1).await;
    assert!(in_net(&ingress(&six)[0], "2001:db8:1::/120"), "{:?}", ingress(&six));
    let r = satisfied(&env, "default", "require", 2).await;
    let ips = ingress(&r);
    assert!(in_net(&ips[0], "198.51.100.0/28") && in_net(&ips[1], "2001:db8:1::/120"), "{ips:?}");
    let p = satisfied(&env, "default", "prefer", 2).await;
    assert_eq!(ingress(&p)[0], prefer_v4, "the v4 address stays first and unchanged");
    assert!(in_net(&ingress(&p)[1], "2001:db8:1::/120"));
    assert_unique(&env.addresses().await);
    ctl.stop().await;
}

#[tokio::test]
async fn ip_count_partial_then_completed() {
    let env = Env::start().await;
    env.pool(LoadBalancerIPPool::test("small").with_range("198.51.100.1", "198.51.100.5")).await;
    let ctl = env.controller();
    env.service("default", Service::test("big").with_annotations(&[("ferrolb.io/ip-count", "3")])).await;
    let big = satisfied(&env, "default", "big", 3).await;
    assert_eq!(ingress(&big), ["198.51.100.1", "198.51.100.2", "198.51.100.3"]);

    env.service("default", Service::test("three").with_annotations(&[("ferrolb.io/ip-count", "3")])).await;
    let s = env.wait_condition("default", "three", "False", "partially_satisfied").await;
    let s = if ingress(&s).len() == 2 {
        s
    } else {
        wait_for("three to show 2", || async { env.get("default", "three").await }, |s| ingress(s).len() == 2)
            .await
    };
    assert_eq!(ingress(&s), ["198.51.100.4", "198.51.100.5"]);
    let (_, _, msg) = condition(&s).unwrap();
    assert!(msg.contains("2 of 3 assigned"), "{msg}");

    env.delete_service("default", "big").await;
    let s = satisfied(&env, "default", "three", 3).await;
    assert_eq!(ingress(&s), ["198.51.100.4", "198.51.100.5", "198.51.100.1"], "kept two, added one");
    assert_eq!(condition(&s).unwrap().1, "satisfied");

    // Deckhouse's count annotation works the same way.
    env.pool(LoadBalancerIPPool::test("more").with_block("203.0.113.0/29")).await;
    env.service(
        "default",
        Service::test("deckhouse")
            .with_annotations(&[("network.deckhouse.io/l2-load-balancer-external-ips-count", "2")]),
    )
    .await;
    let s = satisfied(&env, "default", "deckhouse", 2).await;
    assert!(ingress(&s).iter().all(|ip| in_net(ip, "203.0.113.0/29")), "{:?}", ingress(&s));
    ctl.stop().await;
}
