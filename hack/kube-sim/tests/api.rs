//! API semantics through the real `kube` client: optimistic concurrency, status subresources,
//! server-side apply ownership, CRD registration and schema validation, finalizers, paging,
//! Services' allocations and validation.

use ferrolb_api::{IpBlock, LoadBalancerIPPool, LoadBalancerIPPoolSpec, LoadBalancerIPPoolStatus};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, CustomResourceExt};
use kube_sim::{KubeSim, Options};
use serde_json::json;

async fn sim_with_crds() -> (KubeSim, Client) {
    let sim = KubeSim::start(Options::default()).await.unwrap();
    let client = sim.client().await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in ferrolb_api::crd::all() {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    (sim, client)
}

fn pool(name: &str, cidr: &str) -> LoadBalancerIPPool {
    LoadBalancerIPPool::new(
        name,
        LoadBalancerIPPoolSpec { blocks: vec![IpBlock::cidr(cidr)], ..Default::default() },
    )
}

fn api_err(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn stale_writes_conflict() {
    let (_sim, client) = sim_with_crds().await;
    let api: Api<LoadBalancerIPPool> = Api::all(client);
    let created = api.create(&PostParams::default(), &pool("p", "198.51.100.128/25")).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));

    // Two writers start from the same version; the second must get 409 and lose nothing.
    let mut first = created.clone();
    let mut second = created.clone();
    first.spec.disabled = true;
    second.spec.priority = Some(3);
    let updated = api.replace("p", &PostParams::default(), &first).await.unwrap();
    assert_eq!(updated.metadata.generation, Some(2), "a spec change bumps generation");
    let err = api_err(api.replace("p", &PostParams::default(), &second).await.unwrap_err());
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, "Conflict");
    assert!(err.message.contains("the object has been modified"), "{}", err.message);
    let now = api.get("p").await.unwrap();
    assert!(now.spec.disabled && now.spec.priority.is_none());

    // A label change alone does not bump generation.
    let labelled = api
        .patch("p", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})))
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(2));
    // A JSON patch carrying a stale resourceVersion test fails.
    let stale = json!([{"op": "test", "path": "/metadata/resourceVersion", "value": created.metadata.resource_version}]);
    let p: json_patch::Patch = serde_json::from_value(stale).unwrap();
    assert_eq!(
        api_err(api.patch("p", &PatchParams::default(), &Patch::<()>::Json(p)).await.unwrap_err()).code,
        422
    );
}

#[tokio::test]
async fn status_subresource_is_separate() {
    let (_sim, client) = sim_with_crds().await;
    let api: Api<LoadBalancerIPPool> = Api::all(client);
    let mut p = pool("p", "198.51.100.128/25");
    p.status = Some(LoadBalancerIPPoolStatus { ips_total: Some("1".into()), ..Default::default() });
    let created = api.create(&PostParams::default(), &p).await.unwrap();
    assert!(created.status.is_none(), "a create does not set status");

    let status = json!({"status": {"ipsTotal": "128", "ipsUsed": "0", "ipsAvailable": "128"}, "spec": {"disabled": true}});
    let after = api.patch_status("p", &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
    assert_eq!(after.status.unwrap().ips_total.as_deref(), Some("128"));
    assert!(!after.spec.disabled, "a status write ignores spec");
    assert_eq!(after.metadata.generation, Some(1));

    let main = json!({"status": {"ipsTotal": "5"}, "spec": {"disabled": true}});
    let after = api.patch("p", &PatchParams::default(), &Patch::Merge(&main)).await.unwrap();
    assert!(after.spec.disabled);
    assert_eq!(after.status.unwrap().ips_total.as_deref(), Some("128"), "a main write ignores status");
}

#[tokio::test]
async fn server_side_apply_ownership() {
    let (_sim, client) = sim_with_crds().await;
    let api: Api<LoadBalancerIPPool> = Api::all(client);
    let doc = json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "LoadBalancerIPPool", "metadata": {"name": "p"},
        "spec": {"blocks": [{"cidr": "198.51.100.128/25"}], "priority": 1}});
    api.patch("p", &PatchParams::apply("alice"), &Patch::Apply(&doc)).await.unwrap();
    let bob = json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "LoadBalancerIPPool", "metadata": {"name": "p"},
        "spec": {"blocks": [{"cidr": "198.51.100.128/25"}], "priority": 2}});
    let err = api_err(api.patch("p", &PatchParams::apply("bob"), &Patch::Apply(&bob)).await.unwrap_err());
    assert_eq!(err.code, 409);
    assert!(err.message.contains("conflict with \"alice\""), "{}", err.message);
    let forced = api.patch("p", &PatchParams::apply("bob").force(), &Patch::Apply(&bob)).await.unwrap();
    assert_eq!(forced.spec.priority, Some(2));
    let managers: Vec<String> =
        forced.metadata.managed_fields.unwrap().into_iter().filter_map(|m| m.manager).collect();
    assert!(managers.contains(&"bob".to_string()), "{managers:?}");
}

#[tokio::test]
async fn crd_schema_validation_and_defaults() {
    let (_sim, client) = sim_with_crds().await;
    let api: Api<LoadBalancerIPPool> = Api::all(client.clone());
    let created = api.create(&PostParams::default(), &pool("ok", "2001:db8:100::/64")).await.unwrap();
    assert!(created.spec.auto_assign, "schema default applied");

    let bad = json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "LoadBalancerIPPool", "metadata": {"name": "bad"},
        "spec": {"blocks": [{"cidr": "198.51.100.0/24"}], "allowFirstLastIPs": "Maybe"}});
    let dynamic: Api<kube::api::DynamicObject> =
        Api::all_with(client.clone(), &kube::api::ApiResource::erase::<LoadBalancerIPPool>(&()));
    let obj: kube::api::DynamicObject = serde_json::from_value(bad).unwrap();
    let err = api_err(dynamic.create(&PostParams::default(), &obj).await.unwrap_err());
    assert_eq!(err.code, 422);
    assert!(err.message.contains("spec.allowFirstLastIPs: Unsupported value: \"Maybe\""), "{}", err.message);

    // CEL rules of the CRD are evaluated: start and stop of different families.
    let mixed = json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "LoadBalancerIPPool", "metadata": {"name": "mixed"},
        "spec": {"blocks": [{"start": "198.51.100.1", "stop": "2001:db8::1"}]}});
    let obj: kube::api::DynamicObject = serde_json::from_value(mixed).unwrap();
    let err = api_err(dynamic.create(&PostParams::default(), &obj).await.unwrap_err());
    assert!(err.message.contains("start and stop must be of the same address family"), "{}", err.message);
    let both = json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "LoadBalancerIPPool", "metadata": {"name": "both"},
        "spec": {"blocks": [{"cidr": "198.51.100.0/24", "start": "198.51.100.1"}]}});
    let obj: kube::api::DynamicObject = serde_json::from_value(both).unwrap();
    let err = api_err(dynamic.create(&PostParams::default(), &obj).await.unwrap_err());
    assert!(err.message.contains("not both"), "{}", err.message);

    // A non-structural CRD is rejected.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut broken = serde_json::to_value(LoadBalancerIPPool::crd()).unwrap();
    broken["metadata"]["name"] = json!("brokens.example.com");
    broken["spec"]["group"] = json!("example.com");
    broken["spec"]["names"] = json!({"plural": "brokens", "kind": "Broken", "singular": "broken"});
    broken["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["blocks"]
        .as_object_mut()
        .unwrap()
        .remove("type");
    let broken: CustomResourceDefinition = serde_json::from_value(broken).unwrap();
    assert_eq!(api_err(crds.create(&PostParams::default(), &broken).await.unwrap_err()).code, 422);

    // Deleting the CRD stops serving the resource.
    crds.delete("loadbalancerippools.ferrolb.io", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_err(api.list(&ListParams::default()).await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn finalizers_delay_deletion() {
    let (_sim, client) = sim_with_crds().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "f", "finalizers": ["ferrolb.io/test"]}}))
            .unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
    api.delete("f", &DeleteParams::default()).await.unwrap();
    let marked = api.get("f").await.unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    api.patch("f", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
        .await
        .unwrap();
    assert_eq!(api_err(api.get("f").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn generate_name_paging_and_selectors() {
    let (_sim, client) = sim_with_crds().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..7 {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"generateName": "gen-", "labels": {"i": i.to_string(), "even": (i % 2 == 0).to_string()}}})).unwrap();
        let c = api.create(&PostParams::default(), &cm).await.unwrap();
        assert!(c.metadata.name.unwrap().starts_with("gen-"));
    }
    let page = api.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(page.items.len(), 3);
    let token = page.metadata.continue_.clone().unwrap();
    assert_eq!(page.metadata.remaining_item_count, Some(4));
    let page2 = api.list(&ListParams::default().limit(3).continue_token(&token)).await.unwrap();
    assert_eq!(page2.items.len(), 3);
    assert_eq!(page2.metadata.resource_version, page.metadata.resource_version);
    let evens = api.list(&ListParams::default().labels("even=true,i notin (0)")).await.unwrap();
    assert_eq!(evens.items.len(), 3);
    let one = api.list(&ListParams::default().fields("metadata.name=nope")).await.unwrap();
    assert!(one.items.is_empty());
    let err = api_err(api.list(&ListParams::default().fields("data.k=v")).await.unwrap_err());
    assert_eq!(err.code, 400);

    // Namespaced objects need their namespace; deleting the namespace removes its contents.
    let other: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
    assert_eq!(api_err(other.create(&PostParams::default(), &cm).await.unwrap_err()).code, 404);
    let nss: Api<Namespace> = Api::all(client);
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap(),
    )
    .await
    .unwrap();
    other.create(&PostParams::default(), &cm).await.unwrap();
    nss.delete("team", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_err(other.get("x").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn services_get_cluster_ips_and_ingress_is_validated() {
    let (_sim, client) = sim_with_crds().await;
    let api: Api<Service> = Api::namespaced(client, "default");
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"type": "LoadBalancer", "ipFamilyPolicy": "RequireDualStack", "ports": [{"name": "http", "port": 80}]}}))
    .unwrap();
    let created = api.create(&PostParams::default(), &svc).await.unwrap();
    let spec = created.spec.unwrap();
    assert_eq!(spec.cluster_ips.unwrap().len(), 2);
    assert!(spec.ports.unwrap()[0].node_port.is_some());

    let good = json!({"status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.130", "ipMode": "VIP"}]}}});
    let after = api.patch_status("web", &PatchParams::default(), &Patch::Merge(&good)).await.unwrap();
    assert_eq!(
        after.status.unwrap().load_balancer.unwrap().ingress.unwrap()[0].ip.as_deref(),
        Some("198.51.100.130")
    );
    let bad = json!({"status": {"loadBalancer": {"ingress": [{"ip": "not-an-ip"}]}}});
    let err =
        api_err(api.patch_status("web", &PatchParams::default(), &Patch::Merge(&bad)).await.unwrap_err());
    assert_eq!(err.code, 422);
    assert!(err.message.contains("must be a valid IP address"), "{}", err.message);

    // Strategic merge on a built-in type merges ports by key.
    let sm = json!({"spec": {"ports": [{"port": 443, "name": "https"}]}});
    let merged = api.patch("web", &PatchParams::default(), &Patch::Strategic(&sm)).await.unwrap();
    assert_eq!(merged.spec.unwrap().ports.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_lose_no_update() {
    // Two writers increment one counter with read-modify-write; every 409 is retried from a fresh
    // read. Optimistic concurrency must make the final value exactly the number of increments.
    let (_sim, client) = sim_with_crds().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "counter"}, "data": {"n": "0"}})).unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
    let writer = |api: Api<ConfigMap>| async move {
        let mut conflicts = 0;
        for _ in 0..50 {
            loop {
                let mut cur = api.get("counter").await.unwrap();
                let n: u32 = cur.data.as_ref().unwrap()["n"].parse().unwrap();
                cur.data.as_mut().unwrap().insert("n".into(), (n + 1).to_string());
                match api.replace("counter", &PostParams::default(), &cur).await {
                    Ok(_) => break,
                    Err(kube::Error::Api(s)) if s.code == 409 => conflicts += 1,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        conflicts
    };
    let (a, b) = tokio::join!(tokio::spawn(writer(api.clone())), tokio::spawn(writer(api.clone())));
    let conflicts = a.unwrap() + b.unwrap();
    let n: u32 = api.get("counter").await.unwrap().data.unwrap()["n"].parse().unwrap();
    assert_eq!(n, 100, "lost updates ({conflicts} conflicts seen)");
}

/// Fidelity with kube-apiserver 1.36: a Lease or a custom resource is only replaced from a version
/// read (its strategy refuses unconditional updates); a ConfigMap may be.
#[tokio::test]
async fn leases_and_custom_resources_need_a_resource_version_to_be_replaced() {
    use k8s_openapi::api::coordination::v1::Lease;
    let (_sim, client) = sim_with_crds().await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let mut lease = Lease::default();
    lease.metadata.name = Some("l".into());
    let created = leases.create(&PostParams::default(), &lease).await.unwrap();
    let mut blind = created.clone();
    blind.metadata.resource_version = None;
    let err = api_err(leases.replace("l", &PostParams::default(), &blind).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(
        err.message.contains("metadata.resourceVersion: Invalid value: 0: must be specified for an update"),
        "{}",
        err.message
    );
    leases.replace("l", &PostParams::default(), &created).await.expect("with the version read");

    let pools: Api<LoadBalancerIPPool> = Api::all(client.clone());
    let mut p = pools.create(&PostParams::default(), &pool("p", "198.51.100.128/25")).await.unwrap();
    p.metadata.resource_version = None;
    assert_eq!(api_err(pools.replace("p", &PostParams::default(), &p).await.unwrap_err()).code, 422);

    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("c".into());
    cms.create(&PostParams::default(), &cm).await.unwrap();
    cms.replace("c", &PostParams::default(), &cm).await.expect("ConfigMaps allow unconditional updates");
}

/// A strategic-merge patch merges Service ports by port number, so it can add a second port that
/// reuses a name: kube-apiserver refuses the result, and so must the simulator.
#[tokio::test]
async fn service_port_names_are_required_and_unique() {
    let (_sim, client) = sim_with_crds().await;
    let svcs: Api<Service> = Api::namespaced(client, "default");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"type": "ClusterIP", "ports": [{"name": "http", "port": 80}]}
    }))
    .unwrap();
    svcs.create(&PostParams::default(), &svc).await.unwrap();
    let dup = json!({"spec": {"ports": [{"name": "http", "port": 8080}]}});
    let err = api_err(svcs.patch("web", &PatchParams::default(), &Patch::Strategic(dup)).await.unwrap_err());
    assert_eq!(err.code, 422);
    assert!(err.message.contains("spec.ports[1].name: Duplicate value: \"http\""), "{}", err.message);
    let unnamed = json!({"spec": {"ports": [{"port": 8443}]}});
    let err =
        api_err(svcs.patch("web", &PatchParams::default(), &Patch::Strategic(unnamed)).await.unwrap_err());
    assert!(err.message.contains("spec.ports[1].name: Required value"), "{}", err.message);
    let ok = json!({"spec": {"ports": [{"name": "https", "port": 8443}]}});
    let svc = svcs.patch("web", &PatchParams::default(), &Patch::Strategic(ok)).await.unwrap();
    assert_eq!(svc.spec.unwrap().ports.unwrap().len(), 2);
}

/// One store, two views: an Event created through `events.k8s.io/v1` (as kube's `Recorder` does)
/// is listed by core `v1` (`kubectl get events`), and the other way round; a patch through the
/// newer API names its fields.
#[tokio::test]
async fn events_are_one_store_with_two_views() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event as NewEvent;
    let (_sim, client) = sim_with_crds().await;
    let new: Api<NewEvent> = Api::namespaced(client.clone(), "default");
    let core: Api<CoreEvent> = Api::namespaced(client, "default");
    let ev: NewEvent = serde_json::from_value(json!({
        "metadata": {"name": "web.1"}, "eventTime": "2026-12-03T20:00:00.000000Z",
        "reportingController": "ferrolb.io/ipam", "reportingInstance": "ipam-1", "action": "Allocate",
        "reason": "IPAllocated", "type": "Normal", "note": "198.51.100.128",
        "regarding": {"kind": "Service", "name": "web", "namespace": "default"}
    }))
    .unwrap();
    new.create(&PostParams::default(), &ev).await.unwrap();
    let listed = core.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(listed.len(), 1, "created through events.k8s.io, listed through v1");
    assert_eq!(listed[0].message.as_deref(), Some("198.51.100.128"));
    assert_eq!(listed[0].involved_object.name.as_deref(), Some("web"));
    assert_eq!(listed[0].reporting_component.as_deref(), Some("ferrolb.io/ipam"));

    let patched = new
        .patch("web.1", &PatchParams::default(), &Patch::Merge(json!({"note": "again", "series": {"count": 2, "lastObservedTime": "2026-12-03T20:00:05.000000Z"}})))
        .await
        .unwrap();
    assert_eq!(patched.note.as_deref(), Some("again"));
    let seen = core.get("web.1").await.unwrap();
    assert_eq!(seen.message.as_deref(), Some("again"));
    assert_eq!(seen.series.and_then(|s| s.count), Some(2));

    let mut old = CoreEvent::default();
    old.metadata.name = Some("web.2".into());
    old.involved_object.name = Some("web".into());
    old.reason = Some("Announcing".into());
    old.message = Some("node1".into());
    core.create(&PostParams::default(), &old).await.unwrap();
    let both = new.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(both.len(), 2);
    let second = new.get("web.2").await.unwrap();
    assert_eq!(second.note.as_deref(), Some("node1"));
    assert_eq!(second.regarding.and_then(|r| r.name).as_deref(), Some("web"));
}
