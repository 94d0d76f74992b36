//! End-to-end: address sharing (Cilium's rules, MetalLB's keys) against kube-sim.

mod common;

use common::*;

fn shared(name: &str, key: &str, ports: &[(&str, u16)]) -> Service {
    Service::test(name).with_ports(ports).with_annotations(&[("ferrolb.io/sharing-key", key)])
}

fn ip_of(s: &k8s_openapi::api::core::v1::Service) -> String {
    let ips = ingress(s);
    assert_eq!(ips.len(), 1, "{ips:?}");
    ips[0].clone()
}

#[tokio::test]
async fn same_key_disjoint_ports_share_overlap_and_policy_do_not() {
    let env = Env::start().await;
    env.pool(LoadBalancerIPPool::test("p").with_block("198.51.100.0/28")).await;
    let ctl = env.controller();

    env.service("default", shared("http", "k", &[("TCP", 80)])).await;
    let http = ip_of(&satisfied(&env, "default", "http", 1).await);
    env.service("default", shared("https", "k", &[("TCP", 443)])).await;
    let https = ip_of(&satisfied(&env, "default", "https", 1).await);
    assert_eq!(https, http, "same key, disjoint ports: one address");
    // Same port number, other protocol: still disjoint.
    env.service("default", shared("dns", "k", &[("UDP", 80)])).await;
    assert_eq!(ip_of(&satisfied(&env, "default", "dns", 1).await), http);

    env.service("default", shared("http2", "k", &[("TCP", 80)])).await;
    let http2 = ip_of(&satisfied(&env, "default", "http2", 1).await);
    assert_ne!(http2, http, "80/TCP overlaps: not shared");

    let local = shared("local", "k", &[("TCP", 8080)])
        .with_external_traffic_policy("Local")
        .with_pod_selector(&[("app", "web")]);
    env.service("default", local).await;
    let local = ip_of(&satisfied(&env, "default", "local", 1).await);
    assert!(local != http && local != http2, "externalTrafficPolicy differs: not shared ({local})");

    // A Service asking for the shared address explicitly without a key is refused.
    env.service("default", Service::test("intruder").with_annotations(&[("ferrolb.io/ips", &http)])).await;
    env.wait_condition("default", "intruder", "False", "already_allocated").await;
    // With the key but an overlapping port: the incompatible-service reason.
    let clash = shared("clash", "k", &[("TCP", 443)]).with_annotations(&[("ferrolb.io/ips", &http)]);
    env.service("default", clash).await;
    let s = env.wait_condition("default", "clash", "False", "already_allocated_incompatible_service").await;
    assert!(condition(&s).unwrap().2.contains("443"), "{:?}", condition(&s));
    ctl.stop().await;
}

#[tokio::test]
async fn cross_namespace_needs_both_sides_metallb_keys_are_global() {
    let env = Env::start().await;
    env.namespace("x").await;
    env.namespace("y").await;
    env.pool(LoadBalancerIPPool::test("p").with_block("198.51.100.0/28")).await;
    let ctl = env.controller();

    let a =
        shared("a", "ck", &[("TCP", 80)]).with_annotations(&[("ferrolb.io/sharing-cross-namespace", "y")]);
    env.service("x", a).await;
    let a = ip_of(&satisfied(&env, "x", "a", 1).await);

    // y/b does not allow x: not shared.
    env.service("y", shared("b", "ck", &[("TCP", 81)])).await;
    let b = ip_of(&satisfied(&env, "y", "b", 1).await);
    assert_ne!(b, a, "only one side allows cross-namespace sharing");

    // y/c allows x, and x/a allows y: shared.
    let c =
        shared("c", "ck", &[("TCP", 82)]).with_annotations(&[("ferrolb.io/sharing-cross-namespace", "x")]);
    env.service("y", c).await;
    assert_eq!(ip_of(&satisfied(&env, "y", "c", 1).await), a);

    // MetalLB's key is not namespaced: it shares across namespaces without more annotations.
    let m1 = Service::test("m1")
        .with_ports(&[("TCP", 80)])
        .with_annotations(&[("metallb.io/allow-shared-ip", "mk")]);
    env.service("x", m1).await;
    let m1 = ip_of(&satisfied(&env, "x", "m1", 1).await);
    assert!(m1 != a && m1 != b);
    let m2 = Service::test("m2")
        .with_ports(&[("TCP", 443)])
        .with_annotations(&[("metallb.universe.tf/allow-shared-ip", "mk")]);
    env.service("y", m2).await;
    assert_eq!(ip_of(&satisfied(&env, "y", "m2", 1).await), m1);
    ctl.stop().await;
}

#[tokio::test]
async fn shared_address_is_freed_when_its_last_user_goes() {
    let env = Env::start().await;
    env.pool(LoadBalancerIPPool::test("p").with_range("198.51.100.1", "198.51.100.3")).await;
    let ctl = env.controller();
    env.service("default", shared("one", "k", &[("TCP", 80)])).await;
    env.service("default", shared("two", "k", &[("TCP", 443)])).await;
    assert_eq!(ip_of(&satisfied(&env, "default", "one", 1).await), "198.51.100.1");
    assert_eq!(ip_of(&satisfied(&env, "default", "two", 1).await), "198.51.100.1");
    env.wait_pool("p", "1 used", |p| pool_counts(p).1 == Some("1")).await;

    env.delete_service("default", "one").await;
    env.service("default", Service::test("probe")).await;
    assert_eq!(ip_of(&satisfied(&env, "default", "probe", 1).await), "198.51.100.2", "still held by two");
    assert_eq!(ip_of(&env.get("default", "two").await), "198.51.100.1");
    env.wait_pool("p", "2 used", |p| pool_counts(p).1 == Some("2")).await;

    env.delete_service("default", "two").await;
    env.wait_pool("p", "only probe's address used", |p| pool_counts(p).1 == Some("1")).await;
    env.service("default", Service::test("after").with_annotations(&[("ferrolb.io/ips", "198.51.100.1")]))
        .await;
    assert_eq!(ip_of(&satisfied(&env, "default", "after", 1).await), "198.51.100.1");
    ctl.stop().await;
}
