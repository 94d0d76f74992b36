//! End-to-end against kube-sim: the served load-balancer classes (`--load-balancer-classes`).
//! A class added to the set is served as it is (the Service keeps its class: no recreation), a
//! pool selecting `ferrolb.io/load-balancer-class: <class>` serves exactly that class, and a
//! Service of a class not in the set is never written to (no status, no condition, no
//! annotation, no Event), even when another controller left an address on it.

mod common;

use common::*;
use ferrolb_api::ServedClasses;
use ferrolb_ipam::Config;
use ferrolb_ipam::adapter::Settings;
use ferrolb_testkit::fixtures::{match_expression, match_labels};
use kube::api::{Patch, PatchParams};
use serde_json::json;

fn classy(name: &str, class: &str) -> Service {
    Service::test(name).with_class(class)
}

fn serving(env: &Env, classes: ServedClasses) -> Controller {
    let settings = Settings { ipam: Config { classes, ..Config::default() }, ..Settings::default() };
    Controller::start_with(env.client.clone(), true, settings)
}

/// What another controller (Cilium's operator) left on a Service: an address in its status.
async fn foreign_status(env: &Env, name: &str, ip: &str) {
    let pp = PatchParams { field_manager: Some("cilium-operator-generic".into()), ..Default::default() };
    env.services("default")
        .patch_status(
            name,
            &pp,
            &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}})),
        )
        .await
        .unwrap();
}

/// Nothing of FerroLB's on the Service: the ingress is exactly what was there, no condition, no
/// annotation, no field managed by ferrolb-ipam, no Event.
async fn assert_untouched(env: &Env, name: &str, ingress_before: &[&str]) {
    let s: Service = env.get("default", name).await;
    assert_eq!(ingress(&s), ingress_before, "{name}'s ingress changed");
    assert!(condition(&s).is_none(), "{name} got a condition: {:?}", condition(&s));
    assert!(allocated_from(&s).is_none(), "{name} got ferrolb.io/allocated-from-pool");
    let managers: Vec<String> =
        s.metadata.managed_fields.iter().flatten().filter_map(|m| m.manager.clone()).collect();
    assert!(!managers.iter().any(|m| m.starts_with("ferrolb")), "{name} written by {managers:?}");
    let events: Vec<_> = env
        .events("default")
        .await
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect();
    assert!(events.is_empty(), "Events about {name}: {events:?}");
}

#[tokio::test]
async fn an_added_class_is_served_by_its_own_pool_and_other_classes_are_untouched() {
    let env = Env::start().await;
    // The converted Deckhouse class: its addresses only for its Services.
    env.pool(
        LoadBalancerIPPool::test("ingress")
            .with_range("198.51.100.100", "198.51.100.150")
            .with_priority(0)
            .with_service_selectors([match_expression("ferrolb.io/load-balancer-class", "In", &["ingress"])]),
    )
    .await;
    env.pool(LoadBalancerIPPool::test("all").with_block("198.51.100.0/28").with_priority(10)).await;

    env.service(
        "default",
        classy("nginx", "ingress")
            .with_annotations(&[("network.deckhouse.io/l2-load-balancer-external-ips-count", "3")]),
    )
    .await;
    env.service("default", Service::test("plain")).await;
    env.service("default", classy("cilium-bgp", "io.cilium/bgp-control-plane")).await;
    foreign_status(&env, "cilium-bgp", "198.51.100.5").await;
    env.service("default", classy("cloud", "example.com/cloud-lb")).await;
    let ctl = serving(&env, ServedClasses::new(true, ["ingress"]));

    let nginx = satisfied(&env, "default", "nginx", 3).await;
    let uid = nginx.metadata.uid.clone();
    assert_eq!(allocated_from(&nginx).as_deref(), Some("ingress"));
    assert_eq!(ingress(&nginx), ["198.51.100.100", "198.51.100.101", "198.51.100.102"]);
    let plain = satisfied(&env, "default", "plain", 1).await;
    assert_eq!(
        allocated_from(&plain).as_deref(),
        Some("all"),
        "the class's pool is not for class-less Services"
    );
    // A new Service of the class after the fact, and one of a class nobody serves.
    env.service("default", classy("nginx-2", "ingress")).await;
    env.service("default", classy("cloud-2", "example.com/cloud-lb")).await;
    let second = satisfied(&env, "default", "nginx-2", 1).await;
    assert_eq!(allocated_from(&second).as_deref(), Some("ingress"));

    assert_untouched(&env, "cilium-bgp", &["198.51.100.5"]).await;
    assert_untouched(&env, "cloud", &[]).await;
    assert_untouched(&env, "cloud-2", &[]).await;
    assert_eq!(env.get("default", "nginx").await.metadata.uid, uid, "never recreated");
    ctl.stop().await;
}

/// Without the class in the set, the same Service is another implementation's: its address
/// (left by Cilium) stays, and FerroLB writes nothing, even though a pool covers the address and
/// selects the class.
#[tokio::test]
async fn a_class_not_in_the_set_is_never_written_to() {
    let env = Env::start().await;
    env.pool(LoadBalancerIPPool::test("lan").with_block("198.51.100.128/25").with_service_selector(
        match_labels(&[("ferrolb.io/load-balancer-class", "io.cilium/l2-announcer")]),
    ))
    .await;
    env.service("default", classy("web", "io.cilium/l2-announcer")).await;
    foreign_status(&env, "web", "198.51.100.140").await;
    env.service("default", Service::test("plain")).await;
    let ctl = serving(&env, ServedClasses::default());
    ctl.wait_synced().await;
    // plain matches no pool (the pool selects the class): it gets a condition, so the
    // controller has processed the Services by then.
    let api = env.services("default");
    wait_for("plain's condition", || async { api.get("plain").await.unwrap() }, |s| condition(s).is_some())
        .await;
    assert_untouched(&env, "web", &["198.51.100.140"]).await;
    ctl.stop().await;

    // Served now: the address is adopted as it is.
    let ctl = serving(&env, ServedClasses::new(true, ["io.cilium/l2-announcer"]));
    let web = satisfied(&env, "default", "web", 1).await;
    assert_eq!(ingress(&web), ["198.51.100.140"]);
    assert_eq!(allocated_from(&web).as_deref(), Some("lan"));
    ctl.stop().await;
}

#[test]
fn the_binary_rejects_a_malformed_class_naming_it() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrolb-ipam"))
        .args(["--load-balancer-classes", "ingress,not a class", "--kubeconfig", "/nonexistent"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--load-balancer-classes") && err.contains("\"not a class\""), "{err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrolb-ipam")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--load-balancer-classes") && help.contains("FERROLB_LOAD_BALANCER_CLASSES"),
        "{help}"
    );
}
