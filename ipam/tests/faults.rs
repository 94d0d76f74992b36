//! End-to-end: API faults (watch drops, 410 Gone, 409 storms, a hanging API) lose nothing and move
//! nothing.

mod common;

use std::time::Duration;

use common::*;
use kube_sim::admin::{ErrorRule, PauseMode};

async fn env_with_pool() -> Env {
    let env = Env::start().await;
    env.pool(LoadBalancerIPPool::test("p").with_block("198.51.100.0/24")).await;
    env
}

#[tokio::test]
async fn watch_drops_and_410_gone_lose_and_move_nothing() {
    let env = env_with_pool().await;
    let admin = env.sim.admin().await.unwrap();
    let ctl = env.controller();
    let tracker = Tracker::start(&env);
    let mut keys = Vec::new();
    for i in 0..30 {
        if i == 10 {
            admin.close_watches().await.unwrap();
        }
        if i == 20 {
            // History gone: the reflectors' next watch gets 410 and must re-list.
            admin.compact().await.unwrap();
            admin.close_watches().await.unwrap();
        }
        env.service("default", Service::test(&format!("s{i}"))).await;
        keys.push(format!("default/s{i}"));
    }
    let before = env.all_satisfied(&keys, 1, 20).await;
    assert_unique(&before);

    // A delete while the watches are down is seen through the re-list.
    admin.compact().await.unwrap();
    admin.close_watches().await.unwrap();
    env.delete_service("default", "s0").await;
    keys.retain(|k| k != "default/s0");
    env.service(
        "default",
        Service::test("reuse").with_annotations(&[("ferrolb.io/ips", &before["default/s0"][0])]),
    )
    .await;
    let reuse = satisfied(&env, "default", "reuse", 1).await;
    assert_eq!(ingress(&reuse), before["default/s0"], "s0's address was freed");
    let after = env.all_satisfied(&keys, 1, 10).await;
    for k in &keys {
        assert_eq!(after[k], before[k], "{k}");
    }
    tracker.assert_no_moves();
    ctl.stop().await;
}

#[tokio::test]
async fn conflict_storm_on_service_patches_converges() {
    let env = env_with_pool().await;
    let admin = env.sim.admin().await.unwrap();
    let ctl = env.controller();
    let tracker = Tracker::start(&env);
    admin.inject(ErrorRule::new(409, 0.5).verbs(&["patch"]).resources(&["services"])).await.unwrap();
    let mut keys = Vec::new();
    for i in 0..20 {
        env.service("default", Service::test(&format!("s{i}"))).await;
        keys.push(format!("default/s{i}"));
    }
    // Converges while the storm goes on.
    let during = env.all_satisfied(&keys, 1, 20).await;
    assert_unique(&during);
    admin.clear_faults().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.all_satisfied(&keys, 1, 10).await, during);
    tracker.assert_no_moves();
    ctl.stop().await;
}

#[tokio::test]
async fn paused_api_loses_nothing_and_duplicates_nothing() {
    let env = env_with_pool().await;
    let admin = env.sim.admin().await.unwrap();
    let ctl = env.controller();
    let tracker = Tracker::start(&env);
    let mut keys = Vec::new();
    for i in 0..10 {
        env.service("default", Service::test(&format!("s{i}"))).await;
        keys.push(format!("default/s{i}"));
    }
    // Creations race the pause: some land before it, the rest wait in it.
    let client = env.client.clone();
    let creator = tokio::spawn(async move {
        let api: kube::Api<k8s_openapi::api::core::v1::Service> = kube::Api::namespaced(client, "default");
        for i in 10..30 {
            let s = Service::test(&format!("s{i}"));
            api.create(&Default::default(), &s).await.unwrap();
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    admin.pause(PauseMode::Hang).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    admin.resume().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), creator).await.expect("creations finish").unwrap();
    keys.extend((10..30).map(|i| format!("default/s{i}")));
    let all = env.all_satisfied(&keys, 1, 20).await;
    assert_unique(&all);
    tracker.assert_no_moves();
    ctl.stop().await;
}
