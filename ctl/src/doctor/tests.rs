//! Each check on plain objects: a healthy cluster has only `ok` findings, and each fault gives
//! the finding that names it.

use ferrolb_api::names::{annotations, conditions, labels, leases, reasons};
use ferrolb_api::{L2AnnouncementPolicy, LoadBalancerIPPool};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};

use super::*;

const NS: &str = "ferrolb-system";

fn now() -> jiff::Timestamp {
    "2026-12-01T12:00:00Z".parse().unwrap()
}

fn ago(secs: i64) -> String {
    (now() - jiff::SignedDuration::from_secs(secs)).to_string()
}

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn node(name: &str) -> Node {
    from(json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}}))
}

fn lease(name: &str, holder: &str, renewed_secs_ago: i64, duration: i32) -> Lease {
    from(json!({"metadata": {"name": name, "namespace": NS},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration,
            "renewTime": ago(renewed_secs_ago), "acquireTime": ago(3600)}}))
}

fn heartbeat(node: &str, ifaces: &[(&str, bool)]) -> Lease {
    let mut l = lease(&leases::node_heartbeat(node), node, 1, 3);
    let interfaces: Vec<Value> = ifaces.iter().map(|(n, up)| json!({"name": n, "up": up})).collect();
    let report = json!({"ready": true, "peerPort": 7947, "interfaces": interfaces}).to_string();
    l.metadata.annotations = Some([(annotations::ANNOUNCER_STATE.to_string(), report)].into());
    l
}

fn pool(name: &str, total: u32, used: u32) -> LoadBalancerIPPool {
    from(
        json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "LoadBalancerIPPool", "metadata": {"name": name},
        "spec": {"blocks": [{"cidr": "198.51.100.128/25"}]},
        "status": {"ipsTotal": total.to_string(), "ipsUsed": used.to_string(),
            "ipsAvailable": (total - used).to_string()}}),
    )
}

fn policy(name: &str, interfaces: &[&str]) -> L2AnnouncementPolicy {
    from(
        json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "L2AnnouncementPolicy", "metadata": {"name": name},
        "spec": {"interfaces": interfaces}}),
    )
}

fn svc(name: &str, ip: Option<&str>) -> Service {
    let status = match ip {
        Some(ip) => json!({"loadBalancer": {"ingress": [{"ip": ip}]}, "conditions": [{
            "type": conditions::IPAM_REQUEST_SATISFIED, "status": "True", "reason": reasons::SATISFIED,
            "message": "", "lastTransitionTime": ago(60)}]}),
        None => json!({}),
    };
    from(json!({"metadata": {"name": name, "namespace": "shop"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "externalTrafficPolicy": "Cluster"},
        "status": status}))
}

fn slice(service: &str, node: &str, ready: bool) -> EndpointSlice {
    from(json!({"metadata": {"name": format!("{service}-abc"), "namespace": "shop",
            "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.42.0.5"], "nodeName": node, "conditions": {"ready": ready, "serving": ready}}]}))
}

/// FerroLB installed and working: two nodes, a pool a quarter used, a policy on eth0, a Service
/// with an address and a Local one with a ready endpoint, kube-proxy in IPVS mode with strictARP.
fn healthy() -> Snapshot {
    Snapshot {
        namespace: NS.into(),
        default_class: true,
        crds: ferrolb_api::crd::all(),
        ipam_lease: Some(lease(ferrolb_api::names::IPAM_LEASE_NAME, "ferrolb-ipam-7f9-x2", 2, 15)),
        heartbeats: vec![
            heartbeat("node1", &[("eth0", true), ("eth1", true)]),
            heartbeat("node2", &[("eth0", true)]),
        ],
        nodes: vec![node("node1"), node("node2")],
        pools: Some(vec![pool("prod", 128, 32)]),
        policies: Some(vec![policy("lan", &["eth0"])]),
        services: vec![svc("web", Some("198.51.100.128")), {
            let mut s = svc("local", Some("198.51.100.129"));
            s.spec.as_mut().unwrap().external_traffic_policy = Some("Local".into());
            s
        }],
        endpoint_slices: vec![slice("local", "node2", true)],
        kube_proxy: Some(from(json!({"metadata": {"name": "kube-proxy", "namespace": "kube-system"},
            "data": {"config.conf": "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\nipvs:\n  strictARP: true\n"}}))),
        ..Snapshot::default()
    }
}

fn run(s: &Snapshot) -> Vec<Finding> {
    diagnose(s, now(), &Thresholds::default())
}

/// The findings of one check that are not ok.
fn problems(s: &Snapshot, check: Check) -> Vec<Finding> {
    run(s).into_iter().filter(|f| f.check == check && f.severity != Severity::Ok).collect()
}

fn one(s: &Snapshot, check: Check) -> Finding {
    let p = problems(s, check);
    assert_eq!(p.len(), 1, "{p:#?}");
    let f = p.into_iter().next().unwrap();
    assert!(f.action.as_deref().is_some_and(|a| !a.is_empty()), "a problem says what to do: {f:#?}");
    f
}

#[test]
fn a_healthy_cluster_has_only_ok_findings_and_one_per_check_at_least() {
    let findings = run(&healthy());
    let bad: Vec<&Finding> = findings.iter().filter(|f| f.severity != Severity::Ok).collect();
    assert!(bad.is_empty(), "{bad:#?}");
    assert!(!has_errors(&findings));
    for check in [
        Check::Crds,
        Check::Controller,
        Check::Announcers,
        Check::Pools,
        Check::Services,
        Check::Servicelb,
        Check::KubeProxy,
        Check::Interfaces,
        Check::TrafficPolicy,
    ] {
        assert!(findings.iter().any(|f| f.check == check), "{check:?} said nothing: {findings:#?}");
    }
    let pools: Vec<&Finding> = findings.iter().filter(|f| f.check == Check::Pools).collect();
    assert_eq!(pools[0].message, "total 128, used 32, available 96");
    let iface = findings.iter().find(|f| f.check == Check::Interfaces).unwrap();
    assert_eq!(iface.message, "announces on node1: eth0; node2: eth0");
}

#[test]
fn missing_and_outdated_crds() {
    let mut s = healthy();
    s.crds.retain(|c| c.metadata.name.as_deref() != Some("l2announcementpolicies.ferrolb.io"));
    let f = one(&s, Check::Crds);
    assert_eq!((f.severity, f.subject.as_str()), (Severity::Error, "CRD l2announcementpolicies.ferrolb.io"));
    assert_eq!(f.message, "not installed");

    let mut s = healthy();
    s.crds[0].spec.versions[0].name = "v1alpha0".into();
    let f = one(&s, Check::Crds);
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.message, "does not serve v1alpha1 (served: v1alpha0)");

    let mut s = healthy();
    let schema = s.crds[0].spec.versions[0].schema.as_mut().unwrap().open_api_v3_schema.as_mut().unwrap();
    schema.properties.as_mut().unwrap().remove("spec");
    let f = one(&s, Check::Crds);
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.message.contains("schema differs"), "{f:#?}");
}

#[test]
fn controller_lease_missing_unheld_or_stale() {
    let mut s = healthy();
    s.ipam_lease = None;
    let f = one(&s, Check::Controller);
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.subject, "Lease ferrolb-system/ferrolb-ipam");
    assert!(f.message.starts_with("not found"), "{f:#?}");

    let mut s = healthy();
    s.ipam_lease.as_mut().unwrap().spec.as_mut().unwrap().holder_identity = Some(String::new());
    assert!(one(&s, Check::Controller).message.starts_with("held by nobody"));

    let mut s = healthy();
    s.ipam_lease = Some(lease("ferrolb-ipam", "old-pod", 26, 15));
    let f = one(&s, Check::Controller);
    assert_eq!(
        f.message,
        "held by old-pod but last renewed 26s ago (lease duration 15s): the leader is gone or stuck and no \
         standby took over"
    );
    // Within duration + slack: still fresh.
    s.ipam_lease = Some(lease("ferrolb-ipam", "pod", 24, 15));
    assert!(problems(&s, Check::Controller).is_empty());
}

#[test]
fn announcer_heartbeats_missing_stale_or_not_ready_on_nodes_that_can_announce() {
    let mut s = healthy();
    s.nodes.push(node("node3"));
    let f = one(&s, Check::Announcers);
    assert_eq!((f.severity, f.subject.as_str()), (Severity::Error, "Node node3"));
    assert_eq!(f.message, "no heartbeat Lease ferrolb-system/ferrolb-node-node3: no announcer runs there");

    // Nodes that cannot announce are not expected to have one.
    let mut excluded = node("node3");
    excluded.metadata.labels.as_mut().unwrap().insert(labels::EXCLUDE_FROM_EXTERNAL_LB.into(), "true".into());
    let mut not_ready = node("node4");
    not_ready.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "False".into();
    let mut s = healthy();
    s.nodes.extend([excluded, not_ready]);
    assert!(problems(&s, Check::Announcers).is_empty());

    let mut s = healthy();
    s.heartbeats[1].spec.as_mut().unwrap().renew_time = Some(from(json!(ago(60))));
    let f = one(&s, Check::Announcers);
    assert_eq!((f.severity, f.subject.as_str()), (Severity::Error, "Node node2"));
    assert!(f.message.contains("last renewed 60s ago (lease duration 3s)"), "{f:#?}");

    let mut s = healthy();
    s.heartbeats[0].metadata.annotations =
        Some([(annotations::ANNOUNCER_STATE.to_string(), r#"{"ready":false}"#.to_string())].into());
    let f = one(&s, Check::Announcers);
    assert_eq!((f.severity, f.subject.as_str()), (Severity::Warning, "Node node1"));
    assert!(f.message.contains("not ready"));
}

#[test]
fn pools_nearly_full_exhausted_conflicting_or_without_status() {
    let mut s = healthy();
    s.pools = Some(vec![pool("prod", 128, 116)]);
    let f = one(&s, Check::Pools);
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(f.message, "90% used: total 128, used 116, available 12");

    s.pools = Some(vec![pool("prod", 4, 4)]);
    assert_eq!(one(&s, Check::Pools).message, "exhausted: total 4, used 4, available 0");

    let mut conflicting = pool("late", 16, 0);
    conflicting.status.as_mut().unwrap().conditions = vec![from(json!({"type": conditions::POOL_CONFLICT,
        "status": "True", "reason": "Overlap", "message": "overlaps pool prod (198.51.100.128/25)",
        "lastTransitionTime": ago(5)}))];
    s.pools = Some(vec![pool("prod", 128, 1), conflicting]);
    let f = one(&s, Check::Pools);
    assert_eq!((f.severity, f.subject.as_str()), (Severity::Error, "LoadBalancerIPPool late"));
    assert!(f.message.contains("overlaps pool prod"));

    let mut fresh = pool("new", 1, 0);
    fresh.status = None;
    s.pools = Some(vec![fresh]);
    assert!(one(&s, Check::Pools).message.starts_with("no status"));

    s.pools = Some(vec![]);
    assert!(one(&s, Check::Pools).message.starts_with("no pool"));
}

#[test]
fn services_without_an_address_say_why() {
    let mut s = healthy();
    let mut waiting = svc("queued", None);
    waiting.status = Some(from(json!({"conditions": [{"type": conditions::IPAM_REQUEST_SATISFIED,
        "status": "False", "reason": reasons::OUT_OF_IPS, "message": "pool prod has no free IPv4 address",
        "lastTransitionTime": ago(5)}]})));
    s.services.push(waiting);
    s.events.push(from(json!({"metadata": {"name": "queued.1", "namespace": "shop"},
        "eventTime": ago(5), "type": "Warning", "reason": "AllocationFailed",
        "note": "out_of_ips: pool prod has no free IPv4 address", "action": "Allocate",
        "reportingController": "ferrolb.io/ipam", "reportingInstance": "x",
        "regarding": {"kind": "Service", "namespace": "shop", "name": "queued"}})));
    // Not FerroLB's: another class is left alone, whatever its state.
    let mut other = svc("other", None);
    other.spec.as_mut().unwrap().load_balancer_class = Some("example.com/lb".into());
    s.services.push(other);
    let f = one(&s, Check::Services);
    assert_eq!((f.severity, f.subject.as_str()), (Severity::Error, "Service shop/queued"));
    assert_eq!(
        f.message,
        "no address: out_of_ips (False): pool prod has no free IPv4 address; last Warning Event AllocationFailed: \
         out_of_ips: pool prod has no free IPv4 address"
    );
    assert!(f.action.unwrap().starts_with("add a block"));

    let mut s = healthy();
    s.services.push(svc("new", None));
    let f = one(&s, Check::Services);
    assert!(f.message.starts_with("no address and no ferrolb.io/IPAMRequestSatisfied condition"), "{f:#?}");

    // With --default-class=false, Services without a class are not FerroLB's.
    s.default_class = false;
    assert!(problems(&s, Check::Services).is_empty());

    // A Service of another class is FerroLB's only when --load-balancer-classes names the class.
    let mut s = healthy();
    let mut ingress = svc("ingress", None);
    ingress.spec.as_mut().unwrap().load_balancer_class = Some("ingress".into());
    s.services.push(ingress);
    assert!(problems(&s, Check::Services).is_empty(), "class ingress is not served by default");
    s.load_balancer_classes.insert("ingress".into());
    assert_eq!(problems(&s, Check::Services).len(), 1, "served: its missing address is a problem");
}

#[test]
fn services_whose_status_another_controller_contests() {
    let mut s = healthy();
    s.services[0].status.as_mut().unwrap().conditions.as_mut().unwrap().push(from(json!({
        "type": conditions::STATUS_CONTESTED, "status": "True", "reason": "OtherWriter",
        "message": "field manager \"svclb\" overwrote status.loadBalancer 3 times; holding writes for 40s",
        "lastTransitionTime": ago(5)})));
    let f = one(&s, Check::Services);
    assert_eq!((f.severity, f.subject.as_str()), (Severity::Error, "Service shop/web"));
    assert!(f.message.contains("field manager \"svclb\""), "{f:#?}");
}

#[test]
fn servicelb_fighting_for_the_same_services() {
    let mut s = healthy();
    s.servicelb_pods = vec![from::<Pod>(
        json!({"metadata": {"name": "svclb-web-1a2b3c4d-x", "namespace": "kube-system",
        "labels": {"svccontroller.k3s.cattle.io/svcname": "web", "svccontroller.k3s.cattle.io/svcnamespace": "shop"}}}),
    )];
    let f = one(&s, Check::Servicelb);
    assert_eq!((f.severity, f.subject.as_str()), (Severity::Error, "Service shop/web"));

    // Present, serving only a Service of its own namespace: a warning about the next one.
    s.servicelb_pods[0]
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("svccontroller.k3s.cattle.io/svcnamespace".into(), "elsewhere".into());
    let f = one(&s, Check::Servicelb);
    assert_eq!((f.severity, f.subject.as_str()), (Severity::Warning, "k3s ServiceLB"));
}

#[test]
fn kube_proxy_ipvs_without_strict_arp() {
    let mut s = healthy();
    let cm = |text: &str| -> ConfigMap {
        from(
            json!({"metadata": {"name": "kube-proxy", "namespace": "kube-system"}, "data": {"config.conf": text}}),
        )
    };
    s.kube_proxy = Some(cm("mode: ipvs\nipvs:\n  strictARP: false\n"));
    assert_eq!(one(&s, Check::KubeProxy).severity, Severity::Error);
    s.kube_proxy = Some(cm("mode: \"ipvs\"\n"));
    assert_eq!(one(&s, Check::KubeProxy).severity, Severity::Error);
    s.kube_proxy = Some(cm("mode: iptables\n"));
    assert!(problems(&s, Check::KubeProxy).is_empty());
    s.kube_proxy = Some(cm("mode: \"\"\nipvs: {strictARP: false}\n"));
    assert!(problems(&s, Check::KubeProxy).is_empty(), "the default mode is iptables");
}

fn k3s_node(name: &str, args: &[&str]) -> Node {
    let mut n = node(name);
    n.metadata.annotations =
        Some([("k3s.io/node-args".to_string(), serde_json::to_string(args).unwrap())].into());
    n
}

#[test]
fn kube_proxy_checks_are_the_announcers_preflight() {
    let mut s = healthy();
    // No kube-proxy anywhere: the announcers' warning, once for all nodes.
    s.kube_proxy = None;
    let f = one(&s, Check::KubeProxy);
    assert_eq!((f.severity, f.subject.as_str()), (Severity::Warning, "kube-proxy"));
    assert!(f.message.starts_with("no kube-proxy found"), "{}", f.message);

    // A DaemonSet, or Cilium's replacement, is enough.
    s.kube_proxy_daemonset =
        Some(from(json!({"metadata": {"name": "kube-proxy", "namespace": "kube-system"}})));
    assert!(problems(&s, Check::KubeProxy).is_empty());
    s.kube_proxy_daemonset = None;
    s.cilium_config = Some(from(json!({"metadata": {"name": "cilium-config", "namespace": "kube-system"},
        "data": {"kube-proxy-replacement": "true"}})));
    let ok = run(&s).into_iter().find(|f| f.check == Check::KubeProxy).unwrap();
    assert_eq!(ok.severity, Severity::Ok);
    assert!(ok.message.starts_with("Cilium replaces kube-proxy"), "{}", ok.message);
    s.cilium_config = None;

    // k3s embeds kube-proxy; in IPVS mode without strictARP on one node, that node is named.
    s.nodes = vec![
        k3s_node("node1", &["server", "--kube-proxy-arg", "proxy-mode=ipvs"]),
        k3s_node("node2", &["agent"]),
    ];
    let f = one(&s, Check::KubeProxy);
    assert_eq!((f.severity, f.subject.as_str()), (Severity::Error, "Node node1"));
    assert!(f.message.contains("k3s arguments say --kube-proxy-arg proxy-mode=ipvs"), "{}", f.message);
    s.nodes = vec![k3s_node("node1", &["server"]), k3s_node("node2", &["agent"])];
    let ok = run(&s).into_iter().find(|f| f.check == Check::KubeProxy).unwrap();
    assert_eq!(ok.severity, Severity::Ok);
    assert!(ok.message.starts_with("kube-proxy runs inside k3s on 2 node(s)"), "{}", ok.message);
    // ... unless it was disabled there.
    s.nodes = vec![k3s_node("node1", &["server", "--disable-kube-proxy"]), k3s_node("node2", &["agent"])];
    let f = one(&s, Check::KubeProxy);
    assert_eq!((f.severity, f.subject.as_str()), (Severity::Warning, "Node node1"));
}

#[test]
fn policies_whose_interfaces_match_nothing() {
    let mut s = healthy();
    s.policies = Some(vec![policy("typo", &["eht0"])]);
    let f = one(&s, Check::Interfaces);
    assert_eq!((f.severity, f.subject.as_str()), (Severity::Error, "L2AnnouncementPolicy typo"));
    assert_eq!(
        f.message,
        "interfaces [\"eht0\"] match no interface on any node it selects, so it announces nothing; the nodes have \
         node1: eth0, eth1; node2: eth0"
    );

    // Anchored, as the announcer matches: `eth` is not `eth0`.
    s.policies = Some(vec![policy("prefix", &["eth"])]);
    assert_eq!(one(&s, Check::Interfaces).severity, Severity::Error);

    s.policies = Some(vec![policy("partly", &["eth1", "bond0"])]);
    let f = one(&s, Check::Interfaces);
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(
        f.message,
        "node2: L2AnnouncementPolicy partly selects this node and lists interfaces [\"eth1\", \"bond0\"], which \
         match no eligible interface here, so this node never announces for it (interfaces here: eth0); \
         interfaces [\"bond0\"] match nothing on any node (a typo?); it announces on node1: eth1"
    );
    assert!(f.action.as_deref().unwrap().contains("spec.nodeSelector"), "{f:?}");

    // Every regex matches somewhere, but one node the policy selects has none of them: the
    // announcers' own check, node by node.
    s.policies = Some(vec![policy("eth1-only", &["eth1"])]);
    let f = one(&s, Check::Interfaces);
    assert_eq!(f.severity, Severity::Warning);
    assert!(
        f.message.starts_with("node2: L2AnnouncementPolicy eth1-only selects this node"),
        "{}",
        f.message
    );
    assert!(f.message.ends_with("; it announces on node1: eth1"), "{}", f.message);

    // No list: the default exclusions apply.
    s.heartbeats = vec![heartbeat("node1", &[("flannel.1", true), ("cni0", true)]), heartbeat("node2", &[])];
    s.policies = Some(vec![policy("all", &[])]);
    assert_eq!(one(&s, Check::Interfaces).severity, Severity::Error);

    let mut s = healthy();
    s.heartbeats = vec![heartbeat("node1", &[("eth0", false)]), heartbeat("node2", &[("eth0", false)])];
    let f = one(&s, Check::Interfaces);
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.message.starts_with("every interface it selects is down"));

    let mut s = healthy();
    s.policies = Some(vec![policy("bad", &["eth(0"])]);
    assert_eq!(one(&s, Check::Interfaces).severity, Severity::Error);

    let mut s = healthy();
    s.policies = Some(vec![]);
    assert_eq!(one(&s, Check::Interfaces).severity, Severity::Warning);
}

#[test]
fn local_services_without_a_ready_endpoint_on_a_node_that_can_announce() {
    let mut s = healthy();
    s.endpoint_slices = vec![slice("local", "node2", false)];
    let f = one(&s, Check::TrafficPolicy);
    assert_eq!((f.severity, f.subject.as_str()), (Severity::Warning, "Service shop/local"));
    assert!(f.message.contains("no ready endpoint on any node"));

    s.endpoint_slices = vec![];
    assert_eq!(one(&s, Check::TrafficPolicy).subject, "Service shop/local");

    let mut s = healthy();
    s.endpoint_slices = vec![slice("local", "node9", true)];
    let f = one(&s, Check::TrafficPolicy);
    assert!(f.message.contains("only on nodes that cannot announce (node9)"), "{f:#?}");
}

#[test]
fn renderings() {
    let mut s = healthy();
    s.ipam_lease = None;
    let findings = run(&s);
    let text = render_text(&findings);
    assert!(text.contains("ERROR    controller      Lease ferrolb-system/ferrolb-ipam: not found"), "{text}");
    assert!(
        text.contains("\n                         what to do: check that ferrolb-ipam is deployed"),
        "{text}"
    );
    assert!(text.ends_with(&format!("\n{} ok, 0 warning(s), 1 error(s)\n", findings.len() - 1)), "{text}");
    let v: Value = serde_json::from_str(&render_json(&findings)).unwrap();
    assert_eq!(v["summary"]["error"], 1);
    let controller = v["findings"].as_array().unwrap().iter().find(|f| f["check"] == "controller").unwrap();
    assert_eq!(controller["severity"], "error");
    assert!(controller["action"].is_string());
    let ok = &v["findings"][0];
    assert_eq!(ok["severity"], "ok");
    assert!(ok.get("action").is_none());
}
