//! End-to-end: address sharing (Cilium's rules, MetalLB's keys) against kube-sim.

mod common;

use common::*;
use serde_json::{Value, json};

fn shared(name: &str, key: &str, ports: &[(&str, u16)]) -> Value {
    let mut v = lb_ports(name, ports);
    v["metadata"]["annotations"] = json!({"ferrolb.io/sharing-key": key});
    v
}

fn ip_of(s: &k8s_openapi::api::core::v1::Service) -> String {
    let ips = ingress(s);
    assert_eq!(ips.len(), 1, "{ips:?}");
    ips[0].clone()
}

#[tokio::test]
async fn same_key_disjoint_ports_share_overlap_and_policy_do_not() {
    let env = Env::start().await;
    env.pool(json!({"metadata": {"name": "p"}, "spec": {"blocks": [{"cidr": "198.51.100.0/28"}]}})).await;
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

    let mut local = shared("local", "k", &[("TCP", 8080)]);
    local["spec"]["externalTrafficPolicy"] = json!("Local");
    local["spec"]["selector"] = json!({"app": "web"});
    env.service("default", local).await;
    let local = ip_of(&satisfied(&env, "default", "local", 1).await);
    assert!(local != http && local != http2, "externalTrafficPolicy differs: not shared ({local})");

    // A Service asking for the shared address explicitly without a key is refused.
    env.service("default", lb_ann("intruder", &[("ferrolb.io/ips", &http)])).await;
    env.wait_condition("default", "intruder", "False", "already_allocated").await;
    // With the key but an overlapping port: the incompatible-service reason.
    let mut clash = shared("clash", "k", &[("TCP", 443)]);
    clash["metadata"]["annotations"]["ferrolb.io/ips"] = json!(http);
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
    env.pool(json!({"metadata": {"name": "p"}, "spec": {"blocks": [{"cidr": "198.51.100.0/28"}]}})).await;
    let ctl = env.controller();

    let mut a = shared("a", "ck", &[("TCP", 80)]);
    a["metadata"]["annotations"]["ferrolb.io/sharing-cross-namespace"] = json!("y");
    env.service("x", a).await;
    let a = ip_of(&satisfied(&env, "x", "a", 1).await);

    // y/b does not allow x: not shared.
    env.service("y", shared("b", "ck", &[("TCP", 81)])).await;
    let b = ip_of(&satisfied(&env, "y", "b", 1).await);
    assert_ne!(b, a, "only one side allows cross-namespace sharing");

    // y/c allows x, and x/a allows y: shared.
    let mut c = shared("c", "ck", &[("TCP", 82)]);
    c["metadata"]["annotations"]["ferrolb.io/sharing-cross-namespace"] = json!("x");
    env.service("y", c).await;
    assert_eq!(ip_of(&satisfied(&env, "y", "c", 1).await), a);

    // MetalLB's key is not namespaced: it shares across namespaces without more annotations.
    let mut m1 = lb_ports("m1", &[("TCP", 80)]);
    m1["metadata"]["annotations"] = json!({"metallb.io/allow-shared-ip": "mk"});
    env.service("x", m1).await;
    let m1 = ip_of(&satisfied(&env, "x", "m1", 1).await);
    assert!(m1 != a && m1 != b);
    let mut m2 = lb_ports("m2", &[("TCP", 443)]);
    m2["metadata"]["annotations"] = json!({"metallb.universe.tf/allow-shared-ip": "mk"});
    env.service("y", m2).await;
    assert_eq!(ip_of(&satisfied(&env, "y", "m2", 1).await), m1);
    ctl.stop().await;
}

#[tokio::test]
async fn shared_address_is_freed_when_its_last_user_goes() {
    let env = Env::start().await;
    env.pool(json!({"metadata": {"name": "p"}, "spec": {"blocks": [{"start": "198.51.100.1", "stop": "198.51.100.3"}]}}))
        .await;
    let ctl = env.controller();
    env.service("default", shared("one", "k", &[("TCP", 80)])).await;
    env.service("default", shared("two", "k", &[("TCP", 443)])).await;
    assert_eq!(ip_of(&satisfied(&env, "default", "one", 1).await), "198.51.100.1");
    assert_eq!(ip_of(&satisfied(&env, "default", "two", 1).await), "198.51.100.1");
    env.wait_pool("p", "1 used", |p| pool_counts(p).1 == Some("1")).await;

    env.delete_service("default", "one").await;
    env.service("default", lb("probe")).await;
    assert_eq!(ip_of(&satisfied(&env, "default", "probe", 1).await), "198.51.100.2", "still held by two");
    assert_eq!(ip_of(&env.get("default", "two").await), "198.51.100.1");
    env.wait_pool("p", "2 used", |p| pool_counts(p).1 == Some("2")).await;

    env.delete_service("default", "two").await;
    env.wait_pool("p", "only probe's address used", |p| pool_counts(p).1 == Some("1")).await;
    env.service("default", lb_ann("after", &[("ferrolb.io/ips", "198.51.100.1")])).await;
    assert_eq!(ip_of(&satisfied(&env, "default", "after", 1).await), "198.51.100.1");
    ctl.stop().await;
}
