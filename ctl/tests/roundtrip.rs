//! The migration round trip, end to end against kube-sim: an old load balancer's configuration
//! and the Services it assigned addresses to are seeded; `ferrolbctl status --save` records the
//! addresses; `ferrolbctl convert --from-cluster` writes FerroLB's objects, which are applied;
//! FerroLB's IPAM controller (in-process) takes over; `ferrolbctl status --compare` must then
//! find every Service at exactly its old address (0 changes), and a new Service must get an
//! address nobody holds.
//!
//! Setups: MetalLB's custom resources, MetalLB's legacy ConfigMap, Cilium's LB-IPAM (with and
//! without Services of class `io.cilium/l2-announcer`), Deckhouse's `metallb` ModuleConfig
//! (settings version 1) and Deckhouse's `MetalLoadBalancerClass`es with Services naming them. The
//! controller serves the classes the conversion report says to serve (`ferrolb-values.yaml`). The Services' addresses are the ones
//! the old implementation could have given them, deliberately not the lowest free ones, with
//! shared addresses, explicit requests, pool annotations, IPv6 and dual-stack.

mod common;
use common::{crd, create_crds, text};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrolb_api::names::{annotations, conditions};
use ferrolb_api::{L2AnnouncementPolicy, LoadBalancerIPPool, ServedClasses};
use ferrolb_ipam::adapter::{self, Settings};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::{Discovery, Scope};
use kube_sim::{KubeSim, Options as SimOptions};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use tokio::sync::watch;

// ---------------------------------------------------------------------------------------------
// The setups.

/// MetalLB 0.13+ custom resources: two pools with CIDRs and `a-b` ranges (one with
/// avoidBuggyIPs and an IPv6 range), a pool restricted to namespaces with a priority, one
/// restricted by a namespace selector, two that are never auto-assigned (one with a name too long
/// for FerroLB, renamed, and named by a Service: it gets a patch), and L2Advertisements.
const METALLB_CRDS: &str = include_str!("roundtrip/metallb-crds.yaml");

/// MetalLB before 0.13: the `config` ConfigMap, with a pool whose name is not a valid object
/// name (renamed; Services naming it get a patch), a pool that is not auto-assigned and a BGP
/// pool (converted so its addresses stay).
const METALLB_CONFIGMAP: &str = include_str!("roundtrip/metallb-configmap.yaml");

/// Cilium LB-IPAM: a pool restricted to a namespace (CIDR and range blocks), a default pool
/// without `allowFirstLastIPs` (IPv4 and IPv6), a disabled pool still holding an address, and an
/// L2 announcement policy.
const CILIUM: &str = include_str!("roundtrip/cilium.yaml");

/// Deckhouse's `metallb` module, settings version 1: MetalLB pools in the ModuleConfig (two
/// layer2 pools, a BGP one), speakers on labelled nodes; the Services use MetalLB annotations.
const DECKHOUSE_V1: &str = include_str!("roundtrip/deckhouse-v1.yaml");

struct Setup {
    /// CRDs of the old implementation.
    crds: Vec<CustomResourceDefinition>,
    sources: &'static str,
    /// The field manager the old controller wrote Service statuses with.
    field_manager: &'static str,
    /// (LoadBalancerIPPools, L2AnnouncementPolicies, Service patches) `convert` must write.
    outputs: (usize, usize, usize),
    /// A new Service created after the hand-over (namespace, name) and, when certain, the
    /// address it must get (the lowest free one of the pool it falls to).
    new_service: (&'static str, &'static str, Option<&'static str>),
}

fn metallb_crds() -> Vec<CustomResourceDefinition> {
    vec![
        crd("metallb.io", "IPAddressPool", "ipaddresspools", "Namespaced", &["v1beta1"]),
        crd("metallb.io", "L2Advertisement", "l2advertisements", "Namespaced", &["v1beta1"]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metallb_custom_resources_keep_every_address() {
    round_trip(Setup {
        crds: metallb_crds(),
        sources: METALLB_CRDS,
        field_manager: "metallb-controller",
        // apps/internal-named names the pool whose name was too long: one patch.
        outputs: (5, 3, 1),
        // shop: team-a (priority 10) first; its lowest free address.
        new_service: ("shop", "brand-new", Some("198.51.100.128")),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metallb_legacy_configmap_keeps_every_address() {
    round_trip(Setup {
        crds: vec![],
        sources: METALLB_CONFIGMAP,
        field_manager: "metallb-controller",
        // default/api names the renamed pool: one patch.
        outputs: (3, 2, 1),
        // Office_LAN is the only auto-assigned pool; avoid-buggy-ips skips .0.
        new_service: ("default", "brand-new", Some("192.0.2.1")),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cilium_lb_ipam_keeps_every_address() {
    round_trip(Setup {
        crds: vec![
            crd(
                "cilium.io",
                "CiliumLoadBalancerIPPool",
                "ciliumloadbalancerippools",
                "Cluster",
                &["v2alpha1", "v2"],
            ),
            crd(
                "cilium.io",
                "CiliumL2AnnouncementPolicy",
                "ciliuml2announcementpolicies",
                "Cluster",
                &["v2alpha1"],
            ),
        ],
        sources: CILIUM,
        field_manager: "cilium-operator-generic",
        outputs: (3, 1, 0),
        // staging: only default-pool (prod-pool is for prod, old-pool is disabled).
        new_service: ("staging", "brand-new", Some("198.18.2.0")),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deckhouse_module_config_v1_keeps_every_address() {
    round_trip(Setup {
        crds: vec![crd("deckhouse.io", "ModuleConfig", "moduleconfigs", "Cluster", &["v1alpha1"])],
        sources: DECKHOUSE_V1,
        field_manager: "metallb-controller",
        outputs: (3, 2, 0),
        new_service: ("web", "brand-new", None),
    })
    .await;
}

/// Addresses a pool no longer hands out (MetalLB's avoidBuggyIPs turned on after `.0`/`.255`
/// were assigned, Cilium's allowFirstLastIPs: No) stay with the Services holding them: those
/// rules govern new allocations only, and the report says so instead of predicting a move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_the_pool_excludes_from_new_allocations_are_kept() {
    const SOURCES: &str = include_str!("roundtrip/excluded-addresses-kept.yaml");
    let report = round_trip(Setup {
        crds: [
            metallb_crds(),
            vec![crd(
                "cilium.io",
                "CiliumLoadBalancerIPPool",
                "ciliumloadbalancerippools",
                "Cluster",
                &["v2"],
            )],
        ]
        .concat(),
        sources: SOURCES,
        field_manager: "metallb-controller",
        outputs: (2, 1, 0),
        // avoidBuggyIPs still applies to new allocations.
        new_service: ("apps", "brand-new", Some("198.18.0.1")),
    })
    .await;
    let notes: Vec<(&str, &str)> = report["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["field"] == "status.loadBalancer.ingress[0].ip")
        .map(|e| (e["object"].as_str().unwrap(), e["note"].as_str().unwrap()))
        .collect();
    assert_eq!(notes.len(), 5, "{report:#}");
    for (object, note) in notes {
        let excluded = !object.ends_with("/ordinary");
        assert_eq!(note.contains("excludes it from new allocations only"), excluded, "{object}: {note}");
    }
}

/// The check catches movement: Services whose MetalLB address lies outside every converted pool
/// (a pool removed from MetalLB's configuration after it assigned them) are flagged by the
/// conversion report and `convert --check`, FerroLB renumbers (or, for an explicit request,
/// cannot serve) them, and `status --compare` exits 1 naming exactly those Services.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_outside_every_converted_pool_moves_and_compare_names_it() {
    const SOURCES: &str = include_str!("roundtrip/address-outside-converted-pools.yaml");
    let m = Migration::prepare(metallb_crds(), SOURCES, "metallb-controller").await;
    let (docs, report) = m.convert(&[]).await;
    // The report predicts both moves.
    let predicted = ingress_entries(&report);
    assert_eq!(
        predicted.iter().map(|(o, s)| (o.as_str(), s.as_str())).collect::<Vec<_>>(),
        [
            ("Service apps/kept", "exact"),
            ("Service apps/stray", "approximate"),
            ("Service apps/stray-explicit", "approximate"),
        ],
        "{report:#}"
    );
    let out = m.ctl(&["convert", "--from-cluster", "--check"]).await;
    assert_eq!(out.status.code(), Some(1), "convert --check fails: {}", text(&out.stderr));

    m.apply(&docs).await;
    let c = start_controller(m.client.clone());
    let svc = |name: &'static str| {
        let api: Api<Service> = Api::namespaced(m.client.clone(), "apps");
        move || {
            let api = api.clone();
            async move { api.get(name).await.unwrap() }
        }
    };
    let stray =
        wait_for("apps/stray renumbered", svc("stray"), |s| satisfied(s) && ingress(s) != ["192.0.2.77"])
            .await;
    assert_eq!(ingress(&stray), ["198.51.100.0"], "the lowest free address of the pool");
    let explicit = wait_for("apps/stray-explicit unserved", svc("stray-explicit"), |s| {
        condition(s).is_some_and(|c| c.0 == "False") && ingress(s).is_empty()
    })
    .await;
    assert!(ingress(&explicit).is_empty());
    let kept = wait_for("apps/kept satisfied", svc("kept"), satisfied).await;
    assert_eq!(ingress(&kept), ["198.51.100.7"]);

    let out = m.ctl(&["status", "--compare", m.saved()]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("1 Service(s) kept their addresses, 2 changed\n"), "{stdout}");
    assert!(stdout.contains("  apps/stray: 192.0.2.77 -> 198.51.100.0\n"), "{stdout}");
    assert!(stdout.contains("  apps/stray-explicit: 192.0.2.78 -> no address\n"), "{stdout}");
    assert!(!stdout.contains("  apps/kept:"), "{stdout}");
    assert!(
        text(&out.stderr).contains("address check failed: 2 Service(s) changed or lost their addresses"),
        "{}",
        text(&out.stderr)
    );
    stop_controller(c).await;
}

/// Cilium's L2 announcements with Services that name Cilium's class `io.cilium/l2-announcer`
/// (one with a requested address, one dual-stack) beside a class-less one: the class is served
/// as it is, so every address stays and no Service is recreated.
const CILIUM_CLASSES: &str = include_str!("roundtrip/cilium-classes.yaml");

/// The Deckhouse seed's example: class `ingress` (its own addresses, announced from its nodes) and
/// a Service naming it with three addresses (`l2-load-balancer-external-ips-count`), beside an
/// `isDefault` class that also takes Services without a class.
const DECKHOUSE_CLASSES: &str = include_str!("roundtrip/deckhouse-classes.yaml");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cilium_l2_announcer_class_keeps_every_address() {
    let report = round_trip(Setup {
        crds: vec![
            crd("cilium.io", "CiliumLoadBalancerIPPool", "ciliumloadbalancerippools", "Cluster", &["v2"]),
            crd(
                "cilium.io",
                "CiliumL2AnnouncementPolicy",
                "ciliuml2announcementpolicies",
                "Cluster",
                &["v2alpha1"],
            ),
        ],
        sources: CILIUM_CLASSES,
        field_manager: "cilium-operator-generic",
        outputs: (1, 1, 0),
        new_service: ("shop", "brand-new", Some("198.51.100.128")),
    })
    .await;
    assert_eq!(served_classes(&report), ["io.cilium/l2-announcer"]);
    assert_class_entries_exact(&report, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deckhouse_classes_keep_every_address() {
    let report = round_trip(Setup {
        crds: vec![crd(
            "network.deckhouse.io",
            "MetalLoadBalancerClass",
            "metalloadbalancerclasses",
            "Cluster",
            &["v1alpha1"],
        )],
        sources: DECKHOUSE_CLASSES,
        field_manager: "metallb-controller",
        outputs: (2, 2, 0),
        // Without a class: the isDefault class's pool, never the ingress class's.
        new_service: ("frontend", "brand-new", Some("203.0.113.0")),
    })
    .await;
    assert_eq!(
        served_classes(&report),
        ["general", "ingress"],
        "each class is served, the isDefault one too"
    );
    assert_class_entries_exact(&report, 1);
}

/// The classes the report says to serve besides `ferrolb.io/l2` (`ferrolb-values.yaml`).
fn served_classes(report: &Value) -> Vec<String> {
    report["served_classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["class"].as_str().unwrap().to_owned())
        .collect()
}

/// Every Service's `spec.loadBalancerClass` entry is exact (served as it is), `n` of them.
fn assert_class_entries_exact(report: &Value, n: usize) {
    let entries: Vec<&Value> = report["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["field"] == "spec.loadBalancerClass")
        .collect();
    assert_eq!(entries.len(), n, "{report:#}");
    for e in entries {
        assert_eq!(e["status"], "exact", "{e:#}");
    }
}

// ---------------------------------------------------------------------------------------------
// The round trip.

/// Runs the migration of one setup and checks it moved nothing; returns the conversion report.
async fn round_trip(setup: Setup) -> Value {
    let m = Migration::prepare(setup.crds, setup.sources, setup.field_manager).await;
    let before = m.before.clone();

    // 2. Convert; the report predicts that every current address is kept.
    let (docs, report) = m.convert(&[]).await;
    let entries = ingress_entries(&report);
    let addresses: usize = before.values().map(Vec::len).sum();
    assert_eq!(entries.len(), addresses, "one report entry per address: {report:#}");
    for (object, status) in &entries {
        assert_eq!(status, "exact", "{object}: {report:#}");
    }

    // 3. Apply the converted objects (and Service patches) while nothing serves them.
    let counts = m.apply(&docs).await;
    assert_eq!(counts, setup.outputs, "(pools, policies, Service patches) applied");

    // 4. FerroLB's IPAM controller takes over; every Service is satisfied; nothing moved, not
    //    even for a moment.
    let tracker = Tracker::start(m.client.clone());
    let c = start_controller_serving(m.client.clone(), ServedClasses::new(true, served_classes(&report)));
    let keys: Vec<String> = before.keys().cloned().collect();
    let now = all_satisfied(&m.client, &keys).await;
    for (key, ips) in &before {
        assert_eq!(&now[key], ips, "{key} kept its addresses, in order");
    }

    // 5. `status --compare` agrees: 0 changes.
    let out = m.ctl(&["status", "--compare", m.saved()]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let summary = format!("{} Service(s) kept their addresses, 0 changed\n", before.len());
    assert!(stdout.contains(&summary), "{summary:?} not in:\n{stdout}");

    // 6. A new Service gets an address no existing Service holds.
    let (ns, name, expected) = setup.new_service;
    let api: Api<Service> = Api::namespaced(m.client.clone(), ns);
    let svc: Service = serde_json::from_value(
        json!({"metadata": {"name": name}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}),
    )
    .unwrap();
    api.create(&PostParams::default(), &svc).await.unwrap();
    let new = all_satisfied(&m.client, &[format!("{ns}/{name}")]).await;
    let new_ips = &new[&format!("{ns}/{name}")];
    assert_eq!(new_ips.len(), 1, "{new_ips:?}");
    for (key, ips) in &before {
        assert!(!ips.contains(&new_ips[0]), "the new Service got {}, which {key} holds", new_ips[0]);
    }
    if let Some(expected) = expected {
        assert_eq!(new_ips[0], expected);
    }
    let out = m.ctl(&["status", "--compare", m.saved()]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("0 changed (0 had no address when saved, 1 are new)\n"), "{stdout}");

    stop_controller(c).await;
    tracker.assert_no_moves(&before);
    report
}

/// A cluster with the old load balancer's configuration and Services, FerroLB's CRDs installed,
/// and the addresses saved with `ferrolbctl status --save`.
struct Migration {
    sim: KubeSim,
    client: Client,
    dir: PathBuf,
    saved: String,
    /// `namespace/name` → ingress IPs as seeded, in order (LoadBalancer Services only).
    before: BTreeMap<String, Vec<String>>,
}

impl Migration {
    async fn prepare(crds: Vec<CustomResourceDefinition>, sources: &str, field_manager: &str) -> Self {
        let sim = KubeSim::start(SimOptions::default()).await.unwrap();
        let client = sim.client().await.unwrap();
        create_crds(&client, crds).await;
        create_crds(&client, ferrolb_api::crd::all()).await;
        let docs: Vec<Value> = serde_saphyr::from_multiple(sources).unwrap();
        seed(&client, &docs, field_manager).await;
        let before: BTreeMap<String, Vec<String>> = docs
            .iter()
            .filter(|d| d["kind"] == "Service" && d["spec"]["type"] == "LoadBalancer")
            .map(|d| {
                let key = format!(
                    "{}/{}",
                    d["metadata"]["namespace"].as_str().unwrap(),
                    d["metadata"]["name"].as_str().unwrap()
                );
                let ips = d["status"]["loadBalancer"]["ingress"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["ip"].as_str().unwrap().to_string())
                    .collect();
                (key, ips)
            })
            .collect();

        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ferrolbctl-roundtrip-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let saved = dir.join("before.json").to_str().unwrap().to_string();
        let m = Self { sim, client, dir, saved, before };

        // 1. Save the addresses before anything changes.
        let out = m.ctl(&["status", "--save", m.saved()]).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let map: BTreeMap<String, Vec<String>> =
            serde_json::from_str(&std::fs::read_to_string(&m.saved).unwrap()).unwrap();
        let sorted: BTreeMap<String, Vec<String>> = m
            .before
            .iter()
            .map(|(k, v)| {
                let mut v = v.clone();
                v.sort();
                (k.clone(), v)
            })
            .collect();
        assert_eq!(map, sorted, "status --save records every LoadBalancer Service's addresses");
        m
    }

    fn saved(&self) -> &str {
        &self.saved
    }

    /// Runs the built `ferrolbctl` against the cluster.
    async fn ctl(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_ferrolbctl"))
            .args(args)
            .args(["--kubeconfig", self.sim.kubeconfig_path().to_str().unwrap()])
            .env_remove("KUBECONFIG")
            .env_remove("FERROLB_KUBECONFIG")
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .unwrap()
    }

    /// `convert --from-cluster --report json`: the manifests' documents and the report.
    async fn convert(&self, extra: &[&str]) -> (Vec<Value>, Value) {
        let mut args = vec!["convert", "--from-cluster", "--report", "json"];
        args.extend(extra);
        let out = self.ctl(&args).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text(&out.stdout)).unwrap();
        let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
        let report: Value = serde_json::from_str(&text(&out.stderr)).unwrap();
        (docs, report)
    }

    /// Creates the converted pools, policies and BGP objects and applies the Service patches
    /// (JSON merge patches), as `kubectl apply` would; returns how many pools, policies and
    /// patches.
    async fn apply(&self, docs: &[Value]) -> (usize, usize, usize) {
        let pools: Api<LoadBalancerIPPool> = Api::all(self.client.clone());
        let policies: Api<L2AnnouncementPolicy> = Api::all(self.client.clone());
        let mut counts = (0, 0, 0);
        for doc in docs {
            match doc["kind"].as_str() {
                Some("LoadBalancerIPPool") => {
                    let p: LoadBalancerIPPool =
                        serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{e}: {doc:#}"));
                    pools.create(&PostParams::default(), &p).await.unwrap();
                    counts.0 += 1;
                }
                Some("L2AnnouncementPolicy") => {
                    let p: L2AnnouncementPolicy =
                        serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{e}: {doc:#}"));
                    policies.create(&PostParams::default(), &p).await.unwrap();
                    counts.1 += 1;
                }
                Some("Service") => {
                    let ns = doc["metadata"]["namespace"].as_str().unwrap();
                    let name = doc["metadata"]["name"].as_str().unwrap();
                    let patch = json!({"metadata": {"annotations": doc["metadata"]["annotations"]}});
                    Api::<Service>::namespaced(self.client.clone(), ns)
                        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .unwrap();
                    counts.2 += 1;
                }
                // BGP objects: created (the API server accepts them by the CRDs' schemas), not
                // counted, since the IPAM controller does not read them.
                Some("BGPPeer") => {
                    let o: ferrolb_api::BGPPeer = serde_json::from_value(doc.clone()).unwrap();
                    Api::all(self.client.clone()).create(&PostParams::default(), &o).await.unwrap();
                }
                Some("BGPAdvertisement") => {
                    let o: ferrolb_api::BGPAdvertisement = serde_json::from_value(doc.clone()).unwrap();
                    Api::all(self.client.clone()).create(&PostParams::default(), &o).await.unwrap();
                }
                Some("BFDProfile") => {
                    let o: ferrolb_api::BFDProfile = serde_json::from_value(doc.clone()).unwrap();
                    Api::all(self.client.clone()).create(&PostParams::default(), &o).await.unwrap();
                }
                other => panic!("convert wrote an unexpected kind {other:?}: {doc:#}"),
            }
        }
        counts
    }
}

impl Drop for Migration {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `(object, status)` of every `status.loadBalancer.ingress[*].ip` entry of the report.
fn ingress_entries(report: &Value) -> Vec<(String, String)> {
    report["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["field"].as_str().unwrap().starts_with("status.loadBalancer.ingress"))
        .map(|e| (e["object"].as_str().unwrap().to_string(), e["status"].as_str().unwrap().to_string()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Cluster helpers.

/// Creates each object through the API; a Service's `status` is then written through the status
/// subresource by the old controller's field manager, as it assigned the address.
async fn seed(client: &Client, docs: &[Value], field_manager: &str) {
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    for doc in docs {
        let (group, version) = doc["apiVersion"].as_str().unwrap().split_once('/').unwrap_or(("", "v1"));
        let gvk = GroupVersionKind::gvk(group, version, doc["kind"].as_str().unwrap());
        let (ar, caps) = discovery.resolve_gvk(&gvk).unwrap_or_else(|| panic!("{gvk:?} not served"));
        let api: Api<DynamicObject> = match (caps.scope, doc.pointer("/metadata/namespace")) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns.as_str().unwrap(), &ar),
            (Scope::Namespaced, None) => Api::namespaced_with(client.clone(), "default", &ar),
            _ => Api::all_with(client.clone(), &ar),
        };
        let obj: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
        api.create(&PostParams::default(), &obj).await.unwrap();
        if let Some(status) = doc.get("status") {
            let name = doc["metadata"]["name"].as_str().unwrap();
            let pp = PatchParams { field_manager: Some(field_manager.into()), ..Default::default() };
            api.patch_status(name, &pp, &Patch::Merge(json!({"status": status}))).await.unwrap();
        }
    }
}

struct Controller {
    shutdown: watch::Sender<bool>,
    _leader: watch::Sender<ferrolb_ipam::adapter::Leadership>,
    task: tokio::task::JoinHandle<Result<(), adapter::Error>>,
}

/// FerroLB's IPAM controller, in-process, leading from the start.
fn start_controller(client: Client) -> Controller {
    start_controller_serving(client, ServedClasses::default())
}

/// [`start_controller`] serving `classes` (`--load-balancer-classes`).
fn start_controller_serving(client: Client, classes: ServedClasses) -> Controller {
    let (leader_tx, leader_rx) = watch::channel(ferrolb_ipam::adapter::Leadership::fixed(true));
    let (synced_tx, _synced_rx) = watch::channel(false);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut settings = Settings { event_interval: Duration::from_millis(0), ..Settings::default() };
    settings.ipam.classes = classes;
    let task = tokio::spawn(adapter::run(client, settings, leader_rx, synced_tx, shutdown_rx));
    Controller { shutdown: shutdown_tx, _leader: leader_tx, task }
}

async fn stop_controller(c: Controller) {
    let _ = c.shutdown.send(true);
    let r = c.task.await.unwrap();
    assert!(r.is_ok(), "controller: {r:?}");
}

fn ingress(s: &Service) -> Vec<String> {
    s.status
        .as_ref()
        .and_then(|st| st.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|i| i.iter().filter_map(|x| x.ip.clone()).collect())
        .unwrap_or_default()
}

/// `(status, reason, message)` of `ferrolb.io/IPAMRequestSatisfied`.
fn condition(s: &Service) -> Option<(String, String, String)> {
    s.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == conditions::IPAM_REQUEST_SATISFIED)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Satisfied, with the `ferrolb.io/allocated-from-pool` annotation written after the status.
fn satisfied(s: &Service) -> bool {
    condition(s).is_some_and(|c| c.0 == "True")
        && !ingress(s).is_empty()
        && s.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(annotations::ALLOCATED_FROM_POOL))
}

fn key_of(s: &Service) -> String {
    format!(
        "{}/{}",
        s.metadata.namespace.as_deref().unwrap_or_default(),
        s.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Polls `get` until `check` holds (20 s at most: a whole migration converges within it), returning
/// the last value.
async fn wait_for<T, F, Fut>(what: &str, get: F, check: impl Fn(&T) -> bool) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
    T: std::fmt::Debug,
{
    ferrolb_testkit::wait_for(what, Duration::from_secs(20), get, check).await
}

/// Waits until every listed Service (`ns/name`) is satisfied; returns their ingress IPs.
async fn all_satisfied(client: &Client, keys: &[String]) -> BTreeMap<String, Vec<String>> {
    let all: Api<Service> = Api::all(client.clone());
    let items = wait_for(
        &format!("{} Services satisfied", keys.len()),
        || async { all.list(&ListParams::default()).await.unwrap().items },
        |items: &Vec<Service>| keys.iter().all(|k| items.iter().any(|s| key_of(s) == *k && satisfied(s))),
    )
    .await;
    items.iter().filter(|s| keys.contains(&key_of(s))).map(|s| (key_of(s), ingress(s))).collect()
}

/// Records, in the background, every distinct ingress each Service shows.
struct Tracker {
    seen: Arc<Mutex<BTreeMap<String, Vec<Vec<String>>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Tracker {
    fn start(client: Client) -> Self {
        let seen: Arc<Mutex<BTreeMap<String, Vec<Vec<String>>>>> = Arc::default();
        let all: Api<Service> = Api::all(client);
        let s = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Ok(list) = all.list(&ListParams::default()).await {
                    let mut seen = s.lock().unwrap();
                    for svc in &list.items {
                        let e = seen.entry(key_of(svc)).or_default();
                        let ips = ingress(svc);
                        if e.last() != Some(&ips) {
                            e.push(ips);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Self { seen, task }
    }

    /// Every Service in `before` showed exactly its old addresses the whole time.
    fn assert_no_moves(self, before: &BTreeMap<String, Vec<String>>) {
        self.task.abort();
        let seen = self.seen.lock().unwrap();
        for (key, ips) in before {
            assert_eq!(seen.get(key), Some(&vec![ips.clone()]), "{key} showed other addresses at some point");
        }
    }
}
