//! `ferrolbctl doctor` against kube-sim, through the built binary: a healthy installation gives
//! only `ok` findings and exit 0; a cluster seeded with one fault per check gives exactly the
//! findings that name them and exit 1; a cluster without FerroLB says to install it.

mod common;
use common::{create_crds, seed, text};

use std::collections::BTreeSet;
use std::process::Output;

use ferrolb_api::names::{IPAM_LEASE_NAME, annotations, conditions, leases};
use kube_sim::{KubeSim, Options as SimOptions};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

async fn doctor(sim: &KubeSim, extra: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_ferrolbctl"))
        .arg("doctor")
        .arg("--kubeconfig")
        .arg(sim.kubeconfig_path())
        .args(extra)
        .env_remove("KUBECONFIG")
        .env_remove("FERROLB_KUBECONFIG")
        .env_remove("FERROLB_NAMESPACE")
        .env_remove("FERROLB_OUTPUT")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap()
}

fn ago(secs: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs)).to_string()
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn node(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
}

fn lease(ns: &str, name: &str, holder: &str, renewed_secs_ago: i64, duration: i32) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name, "namespace": ns},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration,
            "acquireTime": ago(600), "renewTime": ago(renewed_secs_ago)}})
}

/// A node's heartbeat Lease with its announcer's report, as `ferrolb-announcer` writes it.
fn heartbeat(ns: &str, node: &str, renewed_secs_ago: i64, interfaces: &[&str]) -> Value {
    let mut l = lease(ns, &leases::node_heartbeat(node), node, renewed_secs_ago, 3);
    let ifaces: Vec<Value> = interfaces.iter().map(|i| json!({"name": i, "up": true})).collect();
    l["metadata"]["annotations"] = json!({
        annotations::ANNOUNCER_STATE: json!({"ready": true, "peerPort": 7947, "interfaces": ifaces}).to_string(),
    });
    l
}

fn pool(name: &str, cidr: &str, total: u32, used: u32) -> Value {
    json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "LoadBalancerIPPool", "metadata": {"name": name},
        "spec": {"blocks": [{"cidr": cidr}]},
        "status": {"ipsTotal": total.to_string(), "ipsUsed": used.to_string(),
            "ipsAvailable": (total - used).to_string()}})
}

fn policy(name: &str, interfaces: &[&str]) -> Value {
    json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "L2AnnouncementPolicy", "metadata": {"name": name},
        "spec": {"interfaces": interfaces}})
}

fn service(name: &str, ip: Option<&str>, traffic_policy: &str) -> Value {
    let status = match ip {
        Some(ip) => json!({"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]},
            "conditions": [{"type": conditions::IPAM_REQUEST_SATISFIED, "status": "True", "reason": "satisfied",
                "message": format!("{ip} from pool prod"), "lastTransitionTime": ago(60)}]}),
        None => json!({"conditions": [{"type": conditions::IPAM_REQUEST_SATISFIED, "status": "False",
            "reason": "out_of_ips", "message": "pool prod has no free IPv4 address",
            "lastTransitionTime": ago(60)}]}),
    };
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "shop",
            "annotations": {annotations::ALLOCATED_FROM_POOL: "prod"}},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "externalTrafficPolicy": traffic_policy},
        "status": status})
}

fn endpoints(service: &str, node: &str, ready: bool) -> Value {
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-x1"), "namespace": "shop",
            "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.42.1.7"], "nodeName": node,
            "conditions": {"ready": ready, "serving": ready, "terminating": false}}],
        "ports": [{"port": 8080, "protocol": "TCP"}]})
}

fn kube_proxy(config: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
        "data": {"config.conf": config}})
}

/// FerroLB installed in `ns` and working on two nodes.
fn healthy(ns: &str) -> Vec<Value> {
    vec![
        namespace(ns),
        namespace("shop"),
        node("node1"),
        node("node2"),
        lease(ns, IPAM_LEASE_NAME, "ferrolb-ipam-6d8f-abcde", 1, 15),
        heartbeat(ns, "node1", 1, &["eth0", "eth1"]),
        heartbeat(ns, "node2", 1, &["eth0"]),
        pool("prod", "198.51.100.128/25", 128, 2),
        policy("lan", &["eth0"]),
        service("web", Some("198.51.100.128"), "Cluster"),
        service("local", Some("198.51.100.129"), "Local"),
        endpoints("local", "node2", true),
        kube_proxy(
            "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\nipvs:\n  strictARP: true\n",
        ),
    ]
}

async fn cluster(docs: &[Value], crds: bool) -> KubeSim {
    let sim = KubeSim::start(SimOptions::default()).await.unwrap();
    let client = sim.client().await.unwrap();
    if crds {
        create_crds(&client, ferrolb_api::crd::all()).await;
    }
    seed(&client, docs).await;
    sim
}

fn json_of(out: &Output) -> Value {
    serde_json::from_str(&text(&out.stdout)).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
}

/// `(check, severity, subject)` of every finding that is not ok.
fn problems(v: &Value) -> BTreeSet<(String, String, String)> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] != "ok")
        .map(|f| {
            assert!(f["action"].as_str().is_some_and(|a| !a.is_empty()), "a problem says what to do: {f}");
            (
                f["check"].as_str().unwrap().into(),
                f["severity"].as_str().unwrap().into(),
                f["subject"].as_str().unwrap().into(),
            )
        })
        .collect()
}

fn set(items: &[(&str, &str, &str)]) -> BTreeSet<(String, String, String)> {
    items.iter().map(|(a, b, c)| ((*a).into(), (*b).into(), (*c).into())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_installation_has_no_problem() {
    let sim = cluster(&healthy("ferrolb-system"), true).await;

    let out = doctor(&sim, &["-o", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}{}", text(&out.stdout), text(&out.stderr));
    let v = json_of(&out);
    assert_eq!(problems(&v), BTreeSet::new(), "{v:#}");
    assert_eq!(v["summary"]["warning"], 0);
    assert_eq!(v["summary"]["error"], 0);
    let checks: BTreeSet<&str> =
        v["findings"].as_array().unwrap().iter().map(|f| f["check"].as_str().unwrap()).collect();
    assert_eq!(
        checks,
        BTreeSet::from([
            "crds",
            "controller",
            "announcers",
            "pools",
            "services",
            "servicelb",
            "kube-proxy",
            "interfaces",
            "traffic-policy"
        ]),
        "every check reports"
    );

    let out = doctor(&sim, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(
        t.contains("OK       pools           LoadBalancerIPPool prod: total 128, used 2, available 126\n"),
        "{t}"
    );
    assert!(
        t.contains(
            "OK       interfaces      L2AnnouncementPolicy lan: announces on node1: eth0; node2: eth0\n"
        ),
        "{t}"
    );
    assert!(t.ends_with(" ok, 0 warning(s), 0 error(s)\n"), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_gives_its_finding() {
    let ns = "lb";
    let mut docs = healthy(ns);
    // Replace what the faults change; keep the rest healthy.
    docs.retain(|d| {
        let name = d["metadata"]["name"].as_str().unwrap();
        !matches!(
            (d["kind"].as_str().unwrap(), name),
            ("Lease", _)
                | ("ConfigMap", _)
                | ("EndpointSlice", _)
                | ("LoadBalancerIPPool", _)
                | ("Service", "web")
        )
    });
    docs.extend([
        // The controller's leader stopped renewing 5 minutes ago.
        lease(ns, IPAM_LEASE_NAME, "ferrolb-ipam-6d8f-abcde", 300, 15),
        heartbeat(ns, "node1", 1, &["eth0", "eth1"]),
        // node2's announcer is gone; node3 never had one.
        heartbeat(ns, "node2", 120, &["eth0"]),
        node("node3"),
        // A nearly full pool, and a newer pool overlapping it.
        pool("prod", "198.51.100.128/25", 128, 120),
        {
            let mut p = pool("late", "198.51.100.192/26", 64, 0);
            p["status"]["conditions"] = json!([{"type": conditions::POOL_CONFLICT, "status": "True",
                "reason": "Overlap", "message": "198.51.100.192/26 overlaps pool prod",
                "lastTransitionTime": ago(30)}]);
            p
        },
        // A Service waiting for an address, with the controller's Warning Event.
        service("queued", None, "Cluster"),
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "queued.17f3", "namespace": "shop"},
            "eventTime": "2026-12-01T11:59:00.000000Z", "type": "Warning", "reason": "AllocationFailed",
            "note": "out_of_ips: pool prod has no free IPv4 address", "action": "Allocate",
            "reportingController": "ferrolb.io/ipam", "reportingInstance": "ferrolb-ipam-6d8f-abcde",
            "regarding": {"apiVersion": "v1", "kind": "Service", "namespace": "shop", "name": "queued"}}),
        // k3s ServiceLB serves web too, and the controller noticed its writes being overwritten.
        {
            let mut web = service("web", None, "Cluster");
            web["status"] = json!({"conditions": [{"type": conditions::STATUS_CONTESTED, "status": "True",
                "reason": "OtherWriter", "lastTransitionTime": ago(20),
                "message": "field manager \"svclb\" overwrote status.loadBalancer 3 times; holding writes for 40s"}]});
            web
        },
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "svclb-web-0a1b2c3d-q8x7z",
            "namespace": "kube-system", "labels": {"app": "svclb-web-0a1b2c3d",
            "svccontroller.k3s.cattle.io/svcname": "web", "svccontroller.k3s.cattle.io/svcnamespace": "shop"}},
            "spec": {"containers": [{"name": "lb-tcp-80", "image": "rancher/klipper-lb:v0.4.9"}]}}),
        kube_proxy("mode: ipvs\nipvs:\n  strictARP: false\n"),
        // A policy with a typo in its interface.
        policy("typo", &["eht0"]),
        // The Local Service's only endpoint is not ready.
        endpoints("local", "node2", false),
    ]);
    let sim = sim_with_old_policy_crd(&docs).await;

    let out = doctor(&sim, &["--namespace", ns, "-o", "json"]).await;
    assert_eq!(out.status.code(), Some(1), "errors exit 1: {}{}", text(&out.stdout), text(&out.stderr));
    let v = json_of(&out);
    assert_eq!(
        problems(&v),
        set(&[
            ("crds", "warning", "CRD l2announcementpolicies.ferrolb.io"),
            ("controller", "error", "Lease lb/ferrolb-ipam"),
            ("announcers", "error", "Node node2"),
            ("announcers", "error", "Node node3"),
            ("pools", "warning", "LoadBalancerIPPool prod"),
            ("pools", "error", "LoadBalancerIPPool late"),
            ("services", "error", "Service shop/queued"),
            ("services", "error", "Service shop/web"),
            ("servicelb", "error", "Service shop/web"),
            ("kube-proxy", "error", "ConfigMap kube-system/kube-proxy"),
            ("interfaces", "error", "L2AnnouncementPolicy typo"),
            ("traffic-policy", "warning", "Service shop/local"),
        ]),
        "{v:#}"
    );
    let message = |subject: &str| {
        v["findings"].as_array().unwrap().iter().find(|f| f["subject"] == subject).unwrap()["message"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        message("Service shop/queued"),
        "no address: out_of_ips (False): pool prod has no free IPv4 address; last Warning Event AllocationFailed: \
         out_of_ips: pool prod has no free IPv4 address"
    );
    assert_eq!(message("Node node3"), "no heartbeat Lease lb/ferrolb-node-node3: no announcer runs there");
    assert!(message("L2AnnouncementPolicy typo").contains("the nodes have node1: eth0, eth1"));
    assert_eq!(message("LoadBalancerIPPool prod"), "93% used: total 128, used 120, available 8");

    // The same as text: a line per finding, the action below it.
    let out = doctor(&sim, &["--namespace", ns]).await;
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out.stdout);
    assert!(
        t.contains("ERROR    kube-proxy      ConfigMap kube-system/kube-proxy: kube-proxy runs in IPVS mode"),
        "{t}"
    );
    assert!(t.contains("\n                         what to do: set `ipvs: {strictARP: true}`"), "{t}");
    assert!(t.ends_with(" ok, 3 warning(s), 9 error(s)\n"), "{t}");

    // In the wrong namespace the controller's Lease is not found.
    let out = doctor(&sim, &["-o", "json"]).await;
    let v = json_of(&out);
    assert!(problems(&v).contains(&(
        "controller".into(),
        "error".into(),
        "Lease ferrolb-system/ferrolb-ipam".into()
    )));
}

/// The L2AnnouncementPolicy CRD of an older release (a schema without `externalIPs`), the pool
/// CRD of this one, and `docs`.
async fn sim_with_old_policy_crd(docs: &[Value]) -> KubeSim {
    let sim = KubeSim::start(SimOptions::default()).await.unwrap();
    let client = sim.client().await.unwrap();
    let mut crds = ferrolb_api::crd::all();
    let policy = crds
        .iter_mut()
        .find(|c| c.metadata.name.as_deref() == Some("l2announcementpolicies.ferrolb.io"))
        .unwrap();
    let schema = policy.spec.versions[0].schema.as_mut().unwrap().open_api_v3_schema.as_mut().unwrap();
    let spec = schema.properties.as_mut().unwrap().get_mut("spec").unwrap();
    assert!(spec.properties.as_mut().unwrap().remove("externalIPs").is_some());
    create_crds(&client, crds).await;
    seed(&client, docs).await;
    sim
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_ferrolb_is_told_to_install_it() {
    let sim = cluster(&[node("node1")], false).await;
    let out = doctor(&sim, &["-o", "json"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v = json_of(&out);
    assert_eq!(
        problems(&v),
        set(&[
            ("crds", "error", "CRD l2announcementpolicies.ferrolb.io"),
            ("crds", "error", "CRD loadbalancerippools.ferrolb.io"),
            ("crds", "error", "CRD bgppeers.ferrolb.io"),
            ("crds", "error", "CRD bgpadvertisements.ferrolb.io"),
            ("crds", "error", "CRD bfdprofiles.ferrolb.io"),
            ("crds", "error", "CRD bgpsessionstates.ferrolb.io"),
            ("controller", "error", "Lease ferrolb-system/ferrolb-ipam"),
            ("announcers", "error", "Node node1"),
            ("kube-proxy", "warning", "kube-proxy"),
        ]),
        "{v:#}"
    );
}

fn k3s_node(name: &str, args: &[&str]) -> Value {
    let mut n = node(name);
    n["metadata"]["annotations"] = json!({"k3s.io/node-args": serde_json::to_string(args).unwrap()});
    n
}

/// Healthy, but without the kube-proxy ConfigMap and with `nodes` instead of plain ones.
fn healthy_with(nodes: Vec<Value>) -> Vec<Value> {
    let mut docs: Vec<Value> = healthy("ferrolb-system")
        .into_iter()
        .filter(|d| d["kind"] != "Node" && d["kind"] != "ConfigMap")
        .collect();
    docs.extend(nodes);
    docs
}

/// The announcers' preflight checks, as doctor reads their signals from the API: k3s's kube-proxy
/// arguments on the Node objects, Cilium's replacement, a policy that selects no interface on one
/// node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_checks_from_the_api() {
    // k3s, IPVS without strictARP on node1 only.
    let sim = cluster(
        &healthy_with(vec![
            k3s_node("node1", &["server", "--kube-proxy-arg", "proxy-mode=ipvs"]),
            k3s_node(
                "node2",
                &["agent", "--kube-proxy-arg=proxy-mode=ipvs", "--kube-proxy-arg=ipvs-strict-arp=true"],
            ),
        ]),
        true,
    )
    .await;
    let out = doctor(&sim, &["-o", "json"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v = json_of(&out);
    assert_eq!(problems(&v), set(&[("kube-proxy", "error", "Node node1")]), "{v:#}");
    let out = doctor(&sim, &[]).await;
    let t = text(&out.stdout);
    assert!(
        t.contains("ERROR    kube-proxy      Node node1: kube-proxy runs in IPVS mode without strictARP"),
        "{t}"
    );
    assert!(t.contains("--kube-proxy-arg=ipvs-strict-arp=true"), "the action says the k3s flag: {t}");

    // No kube-proxy, Cilium without the replacement, and a policy only node1 can serve.
    let mut docs = healthy_with(vec![node("node1"), node("node2")]);
    docs.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cilium-config", "namespace": "kube-system"},
        "data": {"kube-proxy-replacement": "false"}}));
    docs.retain(|d| d["kind"] != "L2AnnouncementPolicy");
    docs.push(policy("second-nic", &["eth1"]));
    let sim = cluster(&docs, true).await;
    let out = doctor(&sim, &["-o", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "warnings only: {}", text(&out.stderr));
    let v = json_of(&out);
    assert_eq!(
        problems(&v),
        set(&[
            ("kube-proxy", "warning", "kube-proxy"),
            ("interfaces", "warning", "L2AnnouncementPolicy second-nic"),
        ]),
        "{v:#}"
    );
    let findings = v["findings"].as_array().unwrap();
    let message = |check: &str| {
        findings.iter().find(|f| f["check"] == check).unwrap()["message"].as_str().unwrap().to_owned()
    };
    assert!(message("kube-proxy").contains("cilium-config says kube-proxy-replacement: false"), "{v:#}");
    assert!(
        message("interfaces").starts_with("node2: L2AnnouncementPolicy second-nic selects this node"),
        "{v:#}"
    );

    // Cilium replaces kube-proxy: nothing to say about kube-proxy.
    let client = sim.client().await.unwrap();
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(client, "kube-system");
    let patch = json!({"data": {"kube-proxy-replacement": "true"}});
    api.patch("cilium-config", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
        .await
        .unwrap();
    let v = json_of(&doctor(&sim, &["-o", "json"]).await);
    assert_eq!(problems(&v), set(&[("interfaces", "warning", "L2AnnouncementPolicy second-nic")]), "{v:#}");
}
