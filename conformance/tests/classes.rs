//! Class-based Services taken over as they are (issue 14), in the network-namespace lab: the
//! Deckhouse seed's example converted with `ferrolbctl`'s library, FerroLB started with the class
//! the conversion says to serve (`--load-balancer-classes` on `ferrolb-ipam` and every announcer),
//! and a Service of another class left untouched.
//!
//! Needs root; fails loudly (never skips) without it, without network namespaces or without the
//! binaries.

mod support;

use std::collections::BTreeSet;
use std::net::IpAddr;

use ferrolb_ctl::{Options, SourceText, convert_texts};
use ferrolb_testkit::fixtures::ServiceFixture as _;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{Harness, ingress, ms, node_number, secs};

/// The Deckhouse seed's `MetalLoadBalancerClass` with lab addresses: `192.168.2.100-150` becomes
/// a range of the lab's VIP subnet, the node selector is the seed's.
const CLASS: &str = r#"
apiVersion: network.deckhouse.io/v1alpha1
kind: MetalLoadBalancerClass
metadata:
  name: ingress
spec:
  type: L2
  addressPool:
  - 198.51.100.200-198.51.100.220
  l2:
    interfaces: [eth0]
  nodeSelector:
    node-role.kubernetes.io/loadbalancer: ""
"#;

/// The seed's Service: class `ingress`, three addresses by Deckhouse's annotation. In `default`
/// (not only created there): the conversion reads it as a manifest.
fn nginx() -> Service {
    Service::test("nginx")
        .in_namespace("default")
        .with_annotations(&[("network.deckhouse.io/l2-load-balancer-external-ips-count", "3")])
        .with_class("ingress")
        .with_family_policy("SingleStack")
        .with_ip_families(&["IPv4"])
        .with_ports(&[("TCP", 80)])
}

/// A Service of a class no source served and FerroLB is not told to serve.
fn foreign() -> Service {
    Service::test("foreign")
        .in_namespace("default")
        .with_class("example.com/other-lb")
        .with_ports(&[("TCP", 80)])
}

/// Nodes 2-4 carry the class's node label; node 1 does not.
const LABELLED: [u8; 3] = [2, 3, 4];

#[test]
fn deckhouse_class_is_served_as_it_is_from_its_nodes() {
    // 1. Convert the class (and the Services, for the report) with ferrolbctl's library.
    let texts = vec![
        SourceText { name: "classes.yaml".into(), text: CLASS.into() },
        SourceText {
            name: "services.yaml".into(),
            text: serde_json::to_string(
                &json!({"apiVersion": "v1", "kind": "List", "items": [nginx(), foreign()]}),
            )
            .unwrap(),
        },
    ];
    let conv = convert_texts(&texts, &Options::default()).unwrap_or_else(|e| panic!("convert: {e}"));
    let classes: Vec<&str> = conv.classes.extra().collect();
    assert_eq!(classes, ["ingress"], "the conversion must ask to serve the class");
    let class_entry = |object: &str| {
        conv.report
            .entries
            .iter()
            .find(|e| e.object == object && e.field == "spec.loadBalancerClass")
            .unwrap_or_else(|| panic!("no class entry for {object}: {:#?}", conv.report.entries))
            .status
    };
    assert_eq!(class_entry("Service default/nginx"), ferrolb_ctl::Status::Exact, "served as it is");
    let values = ferrolb_ctl::output::values(&conv);
    assert!(values.contains("loadBalancerClasses:\n  - ingress\n"), "{values}");
    assert!(values.contains("--load-balancer-classes=ingress"), "{values}");

    // 2. FerroLB serves the class the conversion named (both binaries).
    let flag = format!("--load-balancer-classes={}", classes.join(","));
    let h = Harness::up_both("deckhouse-class", 4, &[flag.as_str()]);
    for n in LABELLED {
        let name = format!("node{n}");
        h.api("labelling a Node", move |c| async move {
            let patch = json!({"metadata": {"labels": {"node-role.kubernetes.io/loadbalancer": ""}}});
            Api::<Node>::all(c).patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
            Ok(())
        });
    }

    // 3. The Services exist before the converted objects: nothing serves nginx yet.
    let uid = create(&h, nginx());
    let foreign_uid = create(&h, foreign());
    std::thread::sleep(ms(500));
    assert!(ingress(&get(&h, "nginx")).is_empty(), "no pool serves the class yet");

    // 4. Apply the converted pool and policy.
    for pool in &conv.pools {
        h.create_ferrolb_object(serde_json::to_value(pool).unwrap());
    }
    for policy in &conv.policies {
        h.create_ferrolb_object(serde_json::to_value(policy).unwrap());
    }

    // 5. Three addresses from the class's range, each held by a different labelled node and
    //    answering HTTP from the client.
    let ips = wait_addresses(&h, "nginx", 3);
    let range = 200..=220u8;
    for ip in &ips {
        let IpAddr::V4(v4) = ip else { panic!("{ip} is not IPv4") };
        assert!(
            v4.octets()[..3] == [198, 51, 100] && range.contains(&v4.octets()[3]),
            "{ip} is not from the class's addresses 198.51.100.200-220"
        );
    }
    let holders: Vec<u8> = ips.iter().map(|ip| h.wait_any_holder("nginx", *ip)).collect();
    h.log(&format!("nginx {ips:?} held by nodes {holders:?}"));
    let distinct: BTreeSet<u8> = holders.iter().copied().collect();
    assert_eq!(distinct.len(), 3, "3 addresses held by {holders:?}: not 3 different nodes");
    assert!(
        holders.iter().all(|n| LABELLED.contains(n)),
        "holders {holders:?} must all match the class's nodeSelector (nodes {LABELLED:?})"
    );
    for (ip, n) in ips.iter().zip(&holders) {
        let answered = h.wait_http(*ip, None, secs(10));
        assert_eq!(node_number(&answered), *n, "HTTP to {ip} answered by {answered}, its holder is node{n}");
    }

    // 6. The same Service throughout: never recreated.
    let now = get(&h, "nginx");
    assert_eq!(now.metadata.uid.as_deref(), Some(uid.as_str()), "nginx was recreated");
    assert_eq!(now.spec.as_ref().unwrap().load_balancer_class.as_deref(), Some("ingress"));

    // 7. The Service of a class not served: no status, no Event, no Lease.
    let f = get(&h, "foreign");
    assert_eq!(f.metadata.uid.as_deref(), Some(foreign_uid.as_str()));
    assert!(ingress(&f).is_empty(), "foreign got addresses: {:?}", f.status);
    let conditions = f.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    assert!(conditions.is_empty(), "foreign got conditions: {conditions:?}");
    assert!(
        f.metadata.annotations.as_ref().is_none_or(|a| !a.contains_key("ferrolb.io/allocated-from-pool")),
        "foreign got FerroLB's annotation"
    );
    let managers: Vec<String> = f
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .filter(|m| m.starts_with("ferrolb"))
        .collect();
    assert!(managers.is_empty(), "FerroLB wrote to foreign: {managers:?}");
    assert!(h.events("foreign").is_empty(), "Events about foreign: {:?}", h.events("foreign"));
    let leases: Vec<String> = h.api("listing Leases", |c| async move {
        let api: Api<Lease> = Api::namespaced(c, ferrolb_lab::cluster::SYSTEM_NAMESPACE);
        Ok(api
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .filter_map(|l| l.metadata.name)
            .filter(|n| n.starts_with("ferrolb-l2-default-foreign-"))
            .collect())
    });
    assert!(leases.is_empty(), "Leases for foreign: {leases:?}");
}

fn create(h: &Harness, svc: Service) -> String {
    h.api("creating a Service", move |c| async move {
        let api: Api<Service> = Api::namespaced(c, "default");
        let created = api.create(&PostParams::default(), &svc).await?;
        Ok(created.metadata.uid.unwrap_or_default())
    })
}

fn get(h: &Harness, name: &str) -> Service {
    let name = name.to_string();
    h.api("reading a Service", move |c| async move {
        Ok(Api::<Service>::namespaced(c, "default").get(&name).await?)
    })
}

fn wait_addresses(h: &Harness, name: &str, n: usize) -> Vec<IpAddr> {
    let start = std::time::Instant::now();
    loop {
        let ips = ingress(&get(h, name));
        if ips.len() >= n {
            return ips;
        }
        assert!(start.elapsed() < secs(15), "{name} has {ips:?} after 15 s, wanted {n} addresses");
        std::thread::sleep(ms(100));
    }
}
