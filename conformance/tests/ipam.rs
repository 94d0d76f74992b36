//! FerroLB's IPAM behaviour as any cluster shows it through the API (DESIGN.md §2-3): what a user
//! sees when creating pools and Services, with no access to the controller itself. Each scenario
//! runs in its own namespace and /28 of the suite's range and removes everything it created.
//!
//! Against an existing cluster with FerroLB installed:
//! `FERROLB_CONFORMANCE_KUBECONFIG=~/.kube/config cargo test -p ferrolb-conformance --test ipam`.
//! Without that variable every test starts its own kube-sim and `ferrolb-ipam` (build it first:
//! `cargo build -p ferrolb-ipam`) and reaches them the same way, through a kubeconfig.
//! `existing_cluster_mode_cleans_up_after_itself` runs every scenario, and one that fails on
//! purpose, against one such cluster and checks that not one object is left behind.

mod cluster_support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use cluster_support::{Cluster, Ctx, OwnCluster, condition, ingress, lb, run};
use ferrolb_api::LoadBalancerIPPool;
use ferrolb_api::names::{IPAM_LEASE_NAME, annotations, conditions, events, reasons};
use ferrolb_testkit::fixtures::{PoolFixture as _, ServiceFixture as _, match_labels};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt as _;
use kube::api::Api;
use serde_json::json;

type Scenario = fn(Ctx) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Every scenario with its index (its /28 of the range): one `#[tokio::test]` each, and the
/// list [`ALL`] for the cleanup test.
macro_rules! scenarios {
    ($($index:literal => $name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let cluster = Cluster::from_env().await;
                run(&cluster, $index, stringify!($name), scenarios::$name).await;
            }
        )*
        const ALL: &[(u8, &str, Scenario)] = &[$(($index, stringify!($name), |ctx| Box::pin(scenarios::$name(ctx)))),*];
    };
}

scenarios! {
    0 => lowest_free_address_with_condition_annotation_event_and_pool_status,
    1 => requested_addresses_honoured_taken_and_outside_refused,
    2 => out_of_ips_until_an_address_is_freed,
    3 => a_sharing_key_shares_one_address,
    4 => unknown_pools_and_selector_mismatches_are_explained,
    5 => other_load_balancer_classes_are_left_alone,
    6 => leaving_type_load_balancer_releases_the_address,
    7 => an_overlapping_pool_is_conflicting_and_unused,
    8 => ip_count_assigns_that_many_addresses,
    9 => pool_edits_never_move_assigned_addresses,
}

/// The scenarios. Every Service names its pool (`ferrolb.io/pool`), so pools of the cluster
/// itself never take part.
mod scenarios {
    use super::*;

    /// A scenario's Service that names `pool`.
    pub fn in_pool(name: &str, pool: &str) -> Service {
        lb(name).with_annotations(&[(annotations::POOL, pool)])
    }

    /// The pool `name` of the scenario's addresses `first..=last`.
    fn range(ctx: &Ctx, name: &str, first: u8, last: u8) -> LoadBalancerIPPool {
        LoadBalancerIPPool::test(name).with_range(&ctx.ip(first).to_string(), &ctx.ip(last).to_string())
    }

    fn satisfied_with(ips: Vec<String>) -> impl Fn(&k8s_openapi::api::core::v1::Service) -> bool {
        move |s| ingress(s) == ips && condition(s).is_some_and(|c| c.0 == "True")
    }

    pub async fn lowest_free_address_with_condition_annotation_event_and_pool_status(ctx: Ctx) {
        let pool = ctx.pool(range(&ctx, "main", 1, 6)).await;
        ctx.wait_pool(&pool, "6 addresses, none used", |p| {
            p.status
                .as_ref()
                .is_some_and(|s| s.ips_total.as_deref() == Some("6") && s.ips_used.as_deref() == Some("0"))
        })
        .await;
        ctx.service(in_pool("web", &pool)).await;
        let web = ctx
            .wait_service("web", "the pool's first address", |s| {
                satisfied_with(vec![ctx.ip(1).to_string()])(s)
                    && s.annotations().get(annotations::ALLOCATED_FROM_POOL) == Some(&pool)
            })
            .await;
        let (_, reason, message) = condition(&web).unwrap();
        assert_eq!(reason, reasons::SATISFIED, "{message}");
        let lb = web.status.unwrap().load_balancer.unwrap().ingress.unwrap();
        assert_eq!(lb[0].ip_mode.as_deref(), Some("VIP"));
        let event = ctx.wait_event("web", events::IP_ALLOCATED).await;
        assert_eq!(event.type_.as_deref(), Some("Normal"));
        assert!(event.note.as_deref().unwrap_or_default().contains(&ctx.ip(1).to_string()), "{event:?}");

        ctx.service(in_pool("api", &pool)).await;
        ctx.wait_service("api", "the next address", satisfied_with(vec![ctx.ip(2).to_string()])).await;
        ctx.wait_pool(&pool, "2 used, 4 available", |p| {
            p.status.as_ref().is_some_and(|s| {
                s.ips_used.as_deref() == Some("2") && s.ips_available.as_deref() == Some("4")
            })
        })
        .await;
    }

    pub async fn requested_addresses_honoured_taken_and_outside_refused(ctx: Ctx) {
        let pool = ctx.pool(range(&ctx, "main", 1, 6)).await;
        let want = ctx.ip(5).to_string();
        let ask = |name: &str, ip: &str| in_pool(name, &pool).with_annotations(&[(annotations::IPS, ip)]);
        ctx.service(ask("wants", &want)).await;
        ctx.wait_service("wants", "the requested address", satisfied_with(vec![want.clone()])).await;
        ctx.service(ask("taken", &want)).await;
        let s = ctx.wait_condition("taken", "False", reasons::ALREADY_ALLOCATED).await;
        assert!(ingress(&s).is_empty());
        ctx.wait_event("taken", events::ALLOCATION_FAILED).await;
        ctx.service(ask("outside", &ctx.ip(12).to_string())).await;
        let s = ctx.wait_condition("outside", "False", reasons::NO_POOL).await;
        assert!(ingress(&s).is_empty());
        // spec.loadBalancerIP is a request too.
        ctx.service(in_pool("legacy", &pool).with_load_balancer_ip(&ctx.ip(3).to_string())).await;
        ctx.wait_service("legacy", "spec.loadBalancerIP", satisfied_with(vec![ctx.ip(3).to_string()])).await;
    }

    pub async fn out_of_ips_until_an_address_is_freed(ctx: Ctx) {
        let pool = ctx.pool(LoadBalancerIPPool::test("one").with_address(&ctx.ip(3).to_string())).await;
        let only = ctx.ip(3).to_string();
        ctx.service(in_pool("first", &pool)).await;
        ctx.wait_service("first", "the only address", satisfied_with(vec![only.clone()])).await;
        ctx.service(in_pool("second", &pool)).await;
        let s = ctx.wait_condition("second", "False", reasons::OUT_OF_IPS).await;
        assert!(ingress(&s).is_empty());
        ctx.wait_pool(&pool, "exhausted", |p| {
            p.status.as_ref().is_some_and(|s| s.ips_available.as_deref() == Some("0"))
        })
        .await;
        ctx.delete_service("first").await;
        ctx.wait_service("second", "the freed address", satisfied_with(vec![only])).await;
    }

    pub async fn a_sharing_key_shares_one_address(ctx: Ctx) {
        let pool = ctx.pool(range(&ctx, "main", 1, 6)).await;
        let shared = |name: &str, port: u16| {
            in_pool(name, &pool).with_annotations(&[(annotations::SHARING_KEY, "web")]).with_port(port)
        };
        ctx.service(shared("http", 80)).await;
        let http = ctx.wait_service("http", "an address", |s| ingress(s).len() == 1).await;
        ctx.service(shared("https", 443)).await;
        ctx.wait_service("https", "the same address", satisfied_with(ingress(&http))).await;
        ctx.wait_pool(&pool, "one address used", |p| {
            p.status.as_ref().is_some_and(|s| s.ips_used.as_deref() == Some("1"))
        })
        .await;
    }

    pub async fn unknown_pools_and_selector_mismatches_are_explained(ctx: Ctx) {
        ctx.service(in_pool("unknown", &ctx.pool_name("missing"))).await;
        let s = ctx.wait_condition("unknown", "False", reasons::NO_POOL).await;
        assert!(condition(&s).unwrap().2.contains(&ctx.pool_name("missing")), "{:?}", condition(&s));
        let picky = range(&ctx, "picky", 1, 2).with_service_selector(match_labels(&[
            ("io.kubernetes.service.namespace", &ctx.ns),
            ("tier", "gold"),
        ]));
        let picky = ctx.pool(picky).await;
        // Named, the pool refuses it and says why.
        ctx.service(in_pool("named", &picky)).await;
        let s = ctx.wait_condition("named", "False", reasons::NO_POOL).await;
        assert!(condition(&s).unwrap().2.contains("does not select this Service"), "{:?}", condition(&s));
        // An address of that pool, requested: the selector does not match.
        ctx.service(lb("plain").with_annotations(&[(annotations::IPS, &ctx.ip(1).to_string())])).await;
        ctx.wait_condition("plain", "False", reasons::POOL_SELECTOR_MISMATCH).await;
        // Labelled as the selector wants, it gets the address.
        ctx.patch_service("plain", json!({"metadata": {"labels": {"tier": "gold"}}})).await;
        ctx.wait_service("plain", "the address once selected", satisfied_with(vec![ctx.ip(1).to_string()]))
            .await;
    }

    pub async fn other_load_balancer_classes_are_left_alone(ctx: Ctx) {
        let pool = ctx.pool(range(&ctx, "main", 1, 6)).await;
        ctx.service(in_pool("theirs", &pool).with_class("example.com/not-ferrolb")).await;
        // A Service created after it, and served: the controller has seen both.
        ctx.service(in_pool("ours", &pool)).await;
        ctx.wait_service("ours", "an address", satisfied_with(vec![ctx.ip(1).to_string()])).await;
        let s = ctx.services().get("theirs").await.unwrap();
        assert!(ingress(&s).is_empty(), "{:?}", s.status);
        assert_eq!(condition(&s), None);
        assert_eq!(s.annotations().get(annotations::ALLOCATED_FROM_POOL), None);
        assert!(ctx.events("theirs").await.is_empty(), "no Event about a Service FerroLB does not serve");
    }

    pub async fn leaving_type_load_balancer_releases_the_address(ctx: Ctx) {
        let pool = ctx.pool(range(&ctx, "main", 1, 6)).await;
        ctx.service(in_pool("web", &pool)).await;
        ctx.wait_service("web", "an address", satisfied_with(vec![ctx.ip(1).to_string()])).await;
        ctx.patch_service(
            "web",
            json!({"spec": {"type": "ClusterIP", "loadBalancerClass": null, "externalTrafficPolicy": null,
                "allocateLoadBalancerNodePorts": null, "ports": [{"port": 80, "protocol": "TCP"}]}}),
        )
        .await;
        ctx.wait_service("web", "no address", |s| ingress(s).is_empty()).await;
        ctx.wait_pool(&pool, "nothing used", |p| {
            p.status.as_ref().is_some_and(|s| s.ips_used.as_deref() == Some("0"))
        })
        .await;
        ctx.service(in_pool("next", &pool)).await;
        ctx.wait_service("next", "the released address", satisfied_with(vec![ctx.ip(1).to_string()])).await;
    }

    pub async fn an_overlapping_pool_is_conflicting_and_unused(ctx: Ctx) {
        let first = ctx.pool(range(&ctx, "first", 1, 6)).await;
        let second = ctx.pool_unchecked(range(&ctx, "second", 4, 9)).await;
        let conflict = |p: &ferrolb_api::LoadBalancerIPPool| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == conditions::POOL_CONFLICT))
                .map(|c| c.status.clone())
        };
        ctx.wait_pool(&second, "PoolConflict True", |p| conflict(p).as_deref() == Some("True")).await;
        assert_ne!(
            conflict(&ctx.pools().get(&first).await.unwrap()).as_deref(),
            Some("True"),
            "the older pool stays in use"
        );
        ctx.service(in_pool("web", &second)).await;
        let s = ctx.wait_condition("web", "False", reasons::NO_POOL).await;
        assert!(ingress(&s).is_empty());
        ctx.service(in_pool("ok", &first)).await;
        ctx.wait_service("ok", "an address from the older pool", satisfied_with(vec![ctx.ip(1).to_string()]))
            .await;
    }

    pub async fn ip_count_assigns_that_many_addresses(ctx: Ctx) {
        let pool = ctx.pool(range(&ctx, "main", 1, 6)).await;
        ctx.service(in_pool("wide", &pool).with_annotations(&[(annotations::IP_COUNT, "3")])).await;
        let want: Vec<String> = (1..=3).map(|n| ctx.ip(n).to_string()).collect();
        let s = ctx.wait_service("wide", "3 addresses", satisfied_with(want)).await;
        assert_eq!(condition(&s).unwrap().1, reasons::SATISFIED);
    }

    pub async fn pool_edits_never_move_assigned_addresses(ctx: Ctx) {
        let pool = ctx.pool(range(&ctx, "main", 2, 4)).await;
        ctx.service(in_pool("a", &pool)).await;
        ctx.wait_service("a", "an address", satisfied_with(vec![ctx.ip(2).to_string()])).await;
        ctx.service(in_pool("b", &pool)).await;
        ctx.wait_service("b", "an address", satisfied_with(vec![ctx.ip(3).to_string()])).await;
        // Lower addresses become available: nothing moves, the next Service takes the lowest.
        ctx.patch_pool(
            &pool,
            json!({"spec": {"blocks": [{"start": ctx.ip(0).to_string(), "stop": ctx.ip(7).to_string()}]}}),
        )
        .await;
        ctx.wait_pool(&pool, "8 addresses", |p| {
            p.status.as_ref().is_some_and(|s| s.ips_total.as_deref() == Some("8"))
        })
        .await;
        ctx.service(in_pool("c", &pool)).await;
        ctx.wait_service("c", "the new lowest address", satisfied_with(vec![ctx.ip(0).to_string()])).await;
        for (name, ip) in [("a", 2), ("b", 3)] {
            let s = ctx.services().get(name).await.unwrap();
            assert_eq!(ingress(&s), vec![ctx.ip(ip).to_string()], "{name} kept its address");
        }
    }
}

/// The mode for existing clusters, against a kube-sim and `ferrolb-ipam` started here: every
/// scenario at once, and one that fails after creating a pool and a Service; afterwards the
/// cluster holds exactly the objects it held before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_cluster_mode_cleans_up_after_itself() {
    let own = OwnCluster::start().await;
    let kubeconfig = own.sim.kubeconfig_path().to_path_buf();
    let observer = Arc::new(Cluster::connect(&kubeconfig).await);
    // The controller's Lease exists before the inventory is taken, so the only objects that may
    // appear are the scenarios'.
    let leases: Api<Lease> = Api::namespaced(observer.client.clone(), "ferrolb-system");
    cluster_support::wait(
        "the ferrolb-ipam Lease held",
        || async { leases.get_opt(IPAM_LEASE_NAME).await.ok().flatten() },
        |l| {
            l.as_ref()
                .and_then(|l| l.spec.as_ref())
                .and_then(|s| s.holder_identity.as_ref())
                .is_some_and(|h| !h.is_empty())
        },
    )
    .await;
    let before = observer.inventory().await;

    let cluster = Arc::new(Cluster::connect(&kubeconfig).await);
    let mut tasks = tokio::task::JoinSet::new();
    for &(index, name, scenario) in ALL {
        let cluster = cluster.clone();
        tasks.spawn(async move { run(&cluster, index, name, scenario).await });
    }
    let (cluster2, observer2) = (cluster.clone(), observer.clone());
    tasks.spawn(async move {
        run(&cluster2, 15, "fails", |ctx| async move {
            let pool = ctx.pool(LoadBalancerIPPool::test("main").with_address(&ctx.ip(1).to_string())).await;
            ctx.service(scenarios::in_pool("web", &pool)).await;
            ctx.wait_service("web", "an address", |s| !ingress(s).is_empty()).await;
            // The inventory sees what a scenario creates, so an equal one afterwards means gone.
            let now = observer2.inventory().await;
            for (kind, ns, name) in [
                ("/Namespace", "", ctx.ns.as_str()),
                ("/Service", ctx.ns.as_str(), "web"),
                ("ferrolb.io/LoadBalancerIPPool", "", pool.as_str()),
            ] {
                assert!(
                    now.contains(&(kind.into(), ns.into(), name.into())),
                    "inventory misses {kind} {ns}/{name}"
                );
            }
            panic!("deliberate failure after creating a pool and a Service");
        })
        .await;
    });
    let mut failures = Vec::new();
    while let Some(result) = tasks.join_next().await {
        if let Err(e) = result {
            let message = e
                .into_panic()
                .downcast::<String>()
                .map(|s| *s)
                .unwrap_or_else(|p| p.downcast::<&str>().map(|s| s.to_string()).unwrap_or_default());
            failures.push(message);
        }
    }
    assert_eq!(failures, vec!["deliberate failure after creating a pool and a Service".to_string()]);

    let after = observer.inventory().await;
    let left: Vec<_> = after.difference(&before).collect();
    let gone: Vec<_> = before.difference(&after).collect();
    assert!(left.is_empty() && gone.is_empty(), "left behind: {left:#?}\nremoved: {gone:#?}");
    assert!(
        before.iter().any(|(kind, _, _)| kind == "coordination.k8s.io/Lease"),
        "the inventory sees Leases"
    );
    drop(own);
}
