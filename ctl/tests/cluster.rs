//! `ferrolbctl` against a live API server (kube-sim): `convert --from-cluster` and `status`,
//! through the built binary where exit codes and output matter.

mod common;
use common::{crd, create_crds, seed, text};

use std::path::Path;
use std::process::Output;

use ferrolb_api::names::{annotations, conditions};
use ferrolb_api::{IpBlock, LoadBalancerIPPool, LoadBalancerIPPoolSpec};
use ferrolb_ctl::output;
use ferrolb_ctl::{Options, SourceText, convert_texts};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube_sim::{KubeSim, Options as SimOptions};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

/// MetalLB's configuration, the Namespaces its namespaceSelectors look at, and Services with
/// addresses: seeded into the cluster, and converted from this text for comparison.
const SOURCES: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: metallb-system}
---
apiVersion: v1
kind: Namespace
metadata: {name: billing, labels: {lb-pool: by-label}}
---
apiVersion: v1
kind: Namespace
metadata: {name: reports, labels: {lb-pool: by-label}}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: team-a, namespace: metallb-system}
spec:
  addresses: [198.51.100.0/28]
  serviceAllocation:
    priority: 20
    namespaces: [shop]
    serviceSelectors:
    - matchLabels: {expose: public}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: by-label, namespace: metallb-system}
spec:
  addresses: [198.51.100.16/28]
  serviceAllocation:
    priority: 5
    namespaceSelectors:
    - matchLabels: {lb-pool: by-label}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: fallback.pool.with.a.name.longer.than.sixty-three.characters.for.labels, namespace: metallb-system}
spec:
  addresses: [198.51.100.64/26]
  avoidBuggyIPs: true
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: all, namespace: metallb-system}
spec:
  interfaces: [eth0]
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: tor, namespace: metallb-system}
spec: {myASN: 64500, peerASN: 64501, peerAddress: 192.0.2.1}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
  labels: {expose: public}
  annotations: {metallb.universe.tf/address-pool: fallback.pool.with.a.name.longer.than.sixty-three.characters.for.labels}
spec:
  type: LoadBalancer
  ports: [{port: 80}]
status:
  loadBalancer:
    ingress: [{ip: 198.51.100.65}]
---
apiVersion: v1
kind: Service
metadata: {name: ledger, namespace: billing}
spec:
  type: LoadBalancer
  ports: [{port: 443}]
status:
  loadBalancer:
    ingress: [{ip: 198.51.100.17}]
---
apiVersion: v1
kind: Service
metadata: {name: internal, namespace: shop}
spec:
  ports: [{port: 8080}]
"#;

/// The CRDs MetalLB installs for the kinds above (and the versions they are served in: the
/// group's preferred version v1beta2 serves only BGPPeer).
const METALLB_CRDS: &[(&str, &str, &[&str])] = &[
    ("IPAddressPool", "ipaddresspools", &["v1beta1"]),
    ("L2Advertisement", "l2advertisements", &["v1beta1"]),
    ("BGPAdvertisement", "bgpadvertisements", &["v1beta1"]),
    ("BGPPeer", "bgppeers", &["v1beta1", "v1beta2"]),
    ("BFDProfile", "bfdprofiles", &["v1beta1"]),
    ("Community", "communities", &["v1beta1"]),
];

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferrolbctl")
}

async fn run(args: &[&str]) -> Output {
    tokio::process::Command::new(bin())
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("FERROLB_KUBECONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap()
}

async fn metallb_cluster() -> (KubeSim, Client) {
    let sim = KubeSim::start(SimOptions::default()).await.unwrap();
    let client = sim.client().await.unwrap();
    create_crds(
        &client,
        METALLB_CRDS.iter().map(|(k, p, v)| crd("metallb.io", k, p, "Namespaced", v)).collect(),
    )
    .await;
    let docs: Vec<Value> = serde_saphyr::from_multiple(SOURCES).unwrap();
    seed(&client, &docs).await;
    (sim, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_cluster_converts_like_the_same_objects_from_files() {
    let (sim, _client) = metallb_cluster().await;
    let kubeconfig = sim.kubeconfig_path().to_str().unwrap();
    let out = run(&["convert", "--from-cluster", "--kubeconfig", kubeconfig, "--report", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let from_files = convert_texts(
        &[SourceText { name: "sources.yaml".into(), text: SOURCES.into() }],
        &Options::default(),
    )
    .unwrap();
    assert_eq!(text(&out.stdout), output::stream(&from_files));
    assert!(
        text(&out.stdout)
            .contains("ferrolb.io/pool: fallback.pool.with.a.name.longer.than.sixty-three.characters.fo"),
        "the Service follows its renamed pool"
    );

    let report: Value = serde_json::from_str(&text(&out.stderr)).unwrap();
    let entries = report["entries"].as_array().unwrap();
    let entry = |object: &str, field: &str| {
        entries
            .iter()
            .find(|e| e["object"] == object && e["field"] == field)
            .unwrap_or_else(|| panic!("no entry for {object} {field}:\n{report:#}"))
    };
    // The cluster's namespaces are all of them: the selector is resolved exactly.
    let selector =
        entry("IPAddressPool metallb-system/by-label", "spec.serviceAllocation.namespaceSelectors[0]");
    assert_eq!(selector["status"], "exact", "{selector:#}");
    assert!(selector["note"].as_str().unwrap().contains(r#"["billing", "reports"]"#), "{selector:#}");
    assert_eq!(selector["source"], "cluster");
    // From files the same selector is approximate.
    let file_entry = from_files
        .report
        .entries
        .iter()
        .find(|e| e.field == "spec.serviceAllocation.namespaceSelectors[0]")
        .unwrap();
    assert_eq!(file_entry.status, ferrolb_ctl::Status::Approximate);

    // BGPPeer is served in v1beta2 (the preferred version), read there and converted.
    assert_eq!(entry("BGPPeer metallb-system/tor", "spec.peerASN")["status"], "exact");
    assert!(text(&out.stdout).contains("kind: BGPPeer"), "the peer is in the output");
    // The Service that is not a LoadBalancer is not read at all.
    assert!(entries.iter().all(|e| e["object"] != "Service shop/internal"));

    // Kinds and objects that are not there are said to be not there.
    for absent in [
        "AddressPool.metallb.io",
        "ConfigMap metallb-system/config",
        "ModuleConfig.deckhouse.io",
        "MetalLoadBalancerClass.network.deckhouse.io",
        "CiliumLoadBalancerIPPool.cilium.io",
        "CiliumL2AnnouncementPolicy.cilium.io",
    ] {
        let e = entry(absent, "(object)");
        assert_eq!(e["status"], "ignored");
        assert!(e["note"].as_str().unwrap().contains("not present in the cluster"), "{e:#}");
    }

    // The text report says the same, first.
    let out = run(&["convert", "--from-cluster", "--kubeconfig", kubeconfig]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report = text(&out.stderr);
    let absent_at = report.find("CiliumLoadBalancerIPPool.cilium.io (cluster)").expect(&report);
    assert!(absent_at < report.find("IPAddressPool metallb-system/team-a (cluster)").unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_cluster_reads_other_sources_and_honours_the_flags() {
    let sim = KubeSim::start(SimOptions::default()).await.unwrap();
    let client = sim.client().await.unwrap();
    create_crds(
        &client,
        vec![
            crd("metallb.io", "IPAddressPool", "ipaddresspools", "Namespaced", &["v1beta1"]),
            crd("deckhouse.io", "ModuleConfig", "moduleconfigs", "Cluster", &["v1alpha1"]),
            crd(
                "cilium.io",
                "CiliumLoadBalancerIPPool",
                "ciliumloadbalancerippools",
                "Cluster",
                &["v2alpha1", "v2"],
            ),
        ],
    )
    .await;
    let docs: Vec<Value> = serde_saphyr::from_multiple(
        r#"
apiVersion: v1
kind: Namespace
metadata: {name: lb}
---
apiVersion: v1
kind: Namespace
metadata: {name: elsewhere}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: here, namespace: lb}
spec: {addresses: [192.0.2.0/28]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: there, namespace: elsewhere}
spec: {addresses: [192.0.2.16/28]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: legacy, namespace: lb}
data:
  config: |
    address-pools:
    - name: old
      protocol: layer2
      addresses: [192.0.2.32/28]
---
apiVersion: deckhouse.io/v1alpha1
kind: ModuleConfig
metadata: {name: metallb}
spec:
  enabled: true
  version: 1
  settings:
    addressPools:
    - {name: dh, protocol: layer2, addresses: [192.0.2.48/28]}
---
apiVersion: cilium.io/v2
kind: CiliumLoadBalancerIPPool
metadata: {name: cil}
spec: {blocks: [{cidr: 192.0.2.64/28}]}
"#,
    )
    .unwrap();
    seed(&client, &docs).await;

    let kubeconfig = sim.kubeconfig_path().to_str().unwrap();
    let out = run(&[
        "convert",
        "--from-cluster",
        "--kubeconfig",
        kubeconfig,
        "--context",
        "kube-sim",
        "--metallb-namespace",
        "lb",
        "--metallb-config",
        "lb/legacy",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let manifests = text(&out.stdout);
    for pool in ["name: here", "name: old", "name: dh", "name: cil"] {
        assert!(manifests.contains(pool), "{pool} missing:\n{manifests}");
    }
    assert!(!manifests.contains("name: there"), "another namespace's pool was read:\n{manifests}");
    let report = text(&out.stderr);
    assert!(!report.contains("ConfigMap metallb-system/config"), "{report}");
    assert!(report.contains("CiliumL2AnnouncementPolicy.cilium.io (cluster)"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_clusters_exit_2_with_a_clear_message() {
    let sim = KubeSim::start(SimOptions::default()).await.unwrap();
    let dir = std::env::temp_dir().join(format!("ferrolbctl-kubeconfig-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = std::fs::read_to_string(sim.kubeconfig_path()).unwrap();

    let wrong_token = dir.join("wrong-token");
    std::fs::write(&wrong_token, good.replace(sim.token(), "not-the-token")).unwrap();
    let unreachable = dir.join("unreachable");
    let port = sim.addr().port();
    // Port 1: nothing listens there, the connection is refused at once.
    std::fs::write(&unreachable, good.replace(&format!(":{port}"), ":1")).unwrap();
    let garbage = dir.join("garbage");
    std::fs::write(&garbage, "clusters: [: :").unwrap();
    let missing = dir.join("missing");

    let cases: Vec<(Vec<&str>, &Path, &str)> = vec![
        (vec![], &wrong_token, "401 Unauthorized"),
        (vec![], &unreachable, "discovering the API groups at https://127.0.0.1:1/"),
        (vec![], &garbage, "garbage"),
        (vec![], &missing, "missing"),
        (vec!["--context", "nope"], sim.kubeconfig_path(), "nope"),
    ];
    for (extra, kubeconfig, needle) in cases {
        for command in [&["convert", "--from-cluster"][..], &["status"][..]] {
            let mut args = command.to_vec();
            args.extend(["--kubeconfig", kubeconfig.to_str().unwrap()]);
            args.extend(&extra);
            let out = run(&args).await;
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(err.starts_with("error: "), "{args:?}: {err}");
            if command[0] == "convert" || !needle.starts_with("discovering") {
                assert!(err.contains(needle), "{args:?}: {needle:?} not in {err}");
            }
            assert!(!err.contains("panicked"), "{args:?}: {err}");
            assert!(out.stdout.is_empty(), "{args:?}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn pool(name: &str, cidr: &str, disabled: bool) -> LoadBalancerIPPool {
    LoadBalancerIPPool::new(
        name,
        LoadBalancerIPPoolSpec { blocks: vec![IpBlock::cidr(cidr)], disabled, ..Default::default() },
    )
}

/// FerroLB installed, two pools with statuses, three LoadBalancer Services (one pending) and a
/// ClusterIP Service, as the IPAM controller would have left them.
async fn ferrolb_cluster() -> (KubeSim, Client) {
    let sim = KubeSim::start(SimOptions::default()).await.unwrap();
    let client = sim.client().await.unwrap();
    create_crds(&client, ferrolb_api::crd::all()).await;
    let pools: Api<LoadBalancerIPPool> = Api::all(client.clone());
    for (p, status) in [
        (
            pool("prod", "198.51.100.128/25", false),
            json!({"ipsTotal": "128", "ipsUsed": "2", "ipsAvailable": "126", "conditions": [{
                "type": conditions::POOL_CONFLICT, "status": "False", "reason": "NoConflict", "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]}),
        ),
        (
            pool("old", "198.51.100.0/28", true),
            json!({"ipsTotal": "16", "ipsUsed": "0", "ipsAvailable": "16"}),
        ),
    ] {
        pools.create(&PostParams::default(), &p).await.unwrap();
        pools
            .patch_status(
                &p.metadata.name.clone().unwrap(),
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
            .unwrap();
    }
    let satisfied = |msg: &str| {
        json!([{"type": conditions::IPAM_REQUEST_SATISFIED, "status": "True", "reason": "satisfied",
            "message": msg, "lastTransitionTime": "2026-01-01T00:00:00Z"}])
    };
    let docs = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop", "annotations": {annotations::ALLOCATED_FROM_POOL: "prod"}},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.130"}]},
                "conditions": satisfied("198.51.100.130 from pool prod")}}),
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "api", "namespace": "shop", "annotations": {annotations::ALLOCATED_FROM_POOL: "prod"}},
            "spec": {"type": "LoadBalancer", "loadBalancerClass": "ferrolb.io/l2", "ports": [{"port": 443}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.131"}]},
                "conditions": satisfied("198.51.100.131 from pool prod")}}),
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "queued", "namespace": "shop"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 53, "protocol": "UDP"}]},
            "status": {"conditions": [{"type": conditions::IPAM_REQUEST_SATISFIED, "status": "False",
                "reason": "out_of_ips", "message": "no pool has a free address",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}),
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "cache", "namespace": "shop"},
            "spec": {"ports": [{"port": 6379}]}}),
    ];
    seed(&client, &docs).await;
    (sim, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_pools_and_services_as_text_and_json() {
    let (sim, _client) = ferrolb_cluster().await;
    let kubeconfig = sim.kubeconfig_path().to_str().unwrap();

    let out = run(&["status", "--kubeconfig", kubeconfig]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "\
POOL  DISABLED  CONFLICTING  TOTAL  USED  AVAILABLE
old   true      -            16     0     16
prod  false     False        128    2     126

SERVICE      CLASS          ADDRESSES       POOL  IPAM                MESSAGE
shop/api     ferrolb.io/l2  198.51.100.131  prod  satisfied (True)    198.51.100.131 from pool prod
shop/queued  -              <pending>       -     out_of_ips (False)  no pool has a free address
shop/web     -              198.51.100.130  prod  satisfied (True)    198.51.100.130 from pool prod
"
    );

    let out = run(&["status", "--kubeconfig", kubeconfig, "-o", "json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(
        v["pools"][1],
        json!({"name": "prod", "disabled": false, "conflicting": "False", "total": "128", "used": "2", "available": "126"})
    );
    assert_eq!(
        v["services"][2],
        json!({"namespace": "shop", "name": "web", "class": null, "ingress": ["198.51.100.130"], "pool": "prod",
            "ipam": {"status": "True", "reason": "satisfied", "message": "198.51.100.130 from pool prod"}})
    );
    assert_eq!(v["services"].as_array().unwrap().len(), 3, "only LoadBalancer Services");
    assert!(v.get("comparison").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_then_compare_finds_every_service_that_lost_its_address() {
    let (sim, client) = ferrolb_cluster().await;
    let kubeconfig = sim.kubeconfig_path().to_str().unwrap();
    let dir = std::env::temp_dir().join(format!("ferrolbctl-status-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let saved = dir.join("before.json");
    let saved = saved.to_str().unwrap();

    let out = run(&["status", "--kubeconfig", kubeconfig, "--save", saved]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let map: Value = serde_json::from_str(&std::fs::read_to_string(saved).unwrap()).unwrap();
    assert_eq!(
        map,
        json!({"shop/api": ["198.51.100.131"], "shop/queued": [], "shop/web": ["198.51.100.130"]})
    );

    // Nothing moved.
    let out = run(&["status", "--kubeconfig", kubeconfig, "--compare", saved]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("2 Service(s) kept their addresses, 0 changed"),
        "{}",
        text(&out.stdout)
    );

    // One Service moves, the pending one gets an address (not a change), another Service appears.
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), "shop");
    let ingress = |ip: &str| Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}));
    services.patch_status("web", &PatchParams::default(), &ingress("198.51.100.140")).await.unwrap();
    services.patch_status("queued", &PatchParams::default(), &ingress("198.51.100.141")).await.unwrap();
    let out = run(&["status", "--kubeconfig", kubeconfig, "--compare", saved]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            "1 Service(s) kept their addresses, 1 changed (1 had no address when saved, 0 are new)"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("  shop/web: 198.51.100.130 -> 198.51.100.140\n"), "{stdout}");
    assert!(!stdout.contains("  shop/queued:"), "{stdout}");
    assert!(text(&out.stderr).contains("address check failed: 1 Service(s)"), "{}", text(&out.stderr));

    // A Service deleted and one that lost its address: both listed, in JSON too.
    services.delete("api", &Default::default()).await.unwrap();
    services
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": null}}})),
        )
        .await
        .unwrap();
    let out = run(&["status", "--kubeconfig", kubeconfig, "--compare", saved, "-o", "json"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let v: Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(
        v["comparison"]["changes"],
        json!([
            {"change": "gone", "service": "shop/api", "before": ["198.51.100.131"]},
            {"change": "lost", "service": "shop/web", "before": ["198.51.100.130"]},
        ])
    );

    // A file that is not a saved map: exit 2 before asking the cluster.
    let bogus = dir.join("bogus.json");
    std::fs::write(&bogus, "[1]").unwrap();
    let out = run(&["status", "--kubeconfig", kubeconfig, "--compare", bogus.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("bogus.json: not a map of Service"), "{}", text(&out.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_before_ferrolb_is_installed_still_saves_addresses() {
    let (sim, _client) = metallb_cluster().await;
    let kubeconfig = sim.kubeconfig_path().to_str().unwrap();
    let saved = std::env::temp_dir().join(format!("ferrolbctl-before-{}.json", std::process::id()));
    let out = run(&["status", "--kubeconfig", kubeconfig, "--save", saved.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("LoadBalancerIPPools: none (FerroLB's CRDs are not installed)\n"), "{stdout}");
    assert!(stdout.contains("billing/ledger  -      198.51.100.17"), "{stdout}");
    let map: Value = serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    assert_eq!(map, json!({"billing/ledger": ["198.51.100.17"], "shop/web": ["198.51.100.65"]}));
    std::fs::remove_file(&saved).unwrap();
}
