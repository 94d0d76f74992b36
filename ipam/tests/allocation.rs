//! End-to-end: the IPAM controller against kube-sim through the real `kube` client.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn assigns_v4_v6_and_dual_stack_and_reports() {
    let env = Env::start().await;
    env.pool(
        LoadBalancerIPPool::test("lab")
            .with_block("198.51.100.128/25")
            .with_range("2001:db8:100::1000", "2001:db8:100::1fff"),
    )
    .await;
    let ctl = env.controller();
    env.service("default", Service::test("v4")).await;
    env.service("default", Service::test("v6").with_ip_families(&["IPv6"])).await;
    env.service("default", Service::test("dual").with_family_policy("RequireDualStack")).await;

    let v4 = satisfied(&env, "default", "v4", 1).await;
    assert_eq!(ingress(&v4), ["198.51.100.128"], "lowest free address first");
    assert_eq!(condition(&v4).unwrap().1, "satisfied");
    assert_eq!(v4.metadata.annotations.unwrap()["ferrolb.io/allocated-from-pool"], "lab");
    let v6 = satisfied(&env, "default", "v6", 1).await;
    assert_eq!(ingress(&v6), ["2001:db8:100::1000"]);
    let dual = satisfied(&env, "default", "dual", 2).await;
    assert_eq!(ingress(&dual), ["198.51.100.129", "2001:db8:100::1001"]);
    // ipMode is VIP, as DESIGN.md §2 says.
    let mode = dual.status.unwrap().load_balancer.unwrap().ingress.unwrap()[0].ip_mode.clone();
    assert_eq!(mode.as_deref(), Some("VIP"));

    let pool = wait_for(
        "pool status",
        || async { env.pools().get("lab").await.unwrap() },
        |p| p.status.as_ref().and_then(|s| s.ips_used.as_deref()) == Some("4"),
    )
    .await;
    let st = pool.status.unwrap();
    assert_eq!(st.ips_total.as_deref(), Some("4224"));
    assert_eq!(st.ips_available.as_deref(), Some("4220"));

    let events: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(env.client.clone(), "default");
    let evs = events.list(&Default::default()).await.unwrap();
    assert!(evs.items.iter().any(|e| e.reason.as_deref() == Some("IPAllocated")), "{evs:?}");
    ctl.stop().await;
}

#[tokio::test]
async fn stops_serving_when_type_changes_and_ignores_other_classes() {
    let env = Env::start().await;
    env.pool(LoadBalancerIPPool::test("lab").with_block("198.51.100.128/25")).await;
    let ctl = env.controller();
    env.service("default", Service::test("web")).await;
    env.service("default", Service::test("other").with_class("example.com/other")).await;
    satisfied(&env, "default", "web", 1).await;

    let api = env.services("default");
    let patch = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80, "nodePort": null}]}});
    api.patch("web", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    wait_for(
        "ingress, condition and annotation removed",
        || async { api.get("web").await.unwrap() },
        |s| {
            ingress(s).is_empty()
                && condition(s).is_none()
                && s.metadata
                    .annotations
                    .as_ref()
                    .is_none_or(|a| !a.contains_key("ferrolb.io/allocated-from-pool"))
        },
    )
    .await;
    let other = api.get("other").await.unwrap();
    assert!(ingress(&other).is_empty() && condition(&other).is_none(), "another class is left alone");
    ctl.stop().await;
}
