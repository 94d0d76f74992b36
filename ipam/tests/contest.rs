//! Two controllers writing one Service's status: FerroLB backs off instead of looping, names the other
//! writer in a Warning Event and a condition, and its write rate stays bounded (kube-sim's request
//! counters).

mod common;

use std::time::{Duration, Instant};

use common::*;
use ferrolb_api::names::{conditions, events};
use ferrolb_ipam::adapter::{self, Leadership, Settings};
use ferrolb_ipam::contest::ContestConfig;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tokio::sync::watch;

const RIVAL: &str = "rival-lb-controller";
const RIVAL_IP: &str = "198.51.100.200";

/// A controller of another implementation that serves the same Service: whenever the status does
/// not show its address, it writes it back (as an Update of `/status`, like most controllers).
/// Runs for `run`; returns how many writes it made.
async fn rival(env: &Env, name: &str, run: Duration) -> u64 {
    let api = env.services("default");
    let pp = PatchParams { field_manager: Some(RIVAL.into()), ..Default::default() };
    let body = json!({"status": {"loadBalancer": {"ingress": [{"ip": RIVAL_IP}]}}});
    let (start, mut writes) = (Instant::now(), 0);
    while start.elapsed() < run {
        if ingress(&api.get(name).await.unwrap()) != [RIVAL_IP] {
            api.patch_status(name, &pp, &Patch::Merge(&body)).await.unwrap();
            writes += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    writes
}

fn contested(s: &k8s_openapi::api::core::v1::Service) -> Option<(String, String)> {
    s.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == conditions::STATUS_CONTESTED)
        .map(|c| (c.status.clone(), c.message.clone()))
}

type Running =
    (watch::Sender<Leadership>, watch::Sender<bool>, tokio::task::JoinHandle<Result<(), adapter::Error>>);

/// A leading controller with these contest settings: (leader, shutdown, task).
fn start(env: &Env, contest: ContestConfig) -> Running {
    let (leader_tx, leader_rx) = watch::channel(Leadership::fixed(true));
    let (synced_tx, _synced_rx) = watch::channel(false);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let settings = Settings { event_interval: Duration::from_millis(0), contest, ..Settings::default() };
    let task = tokio::spawn(adapter::run(env.client.clone(), settings, leader_rx, synced_tx, shutdown_rx));
    (leader_tx, shutdown_tx, task)
}

#[tokio::test]
async fn ferrolb_backs_off_from_another_writer_and_names_it() {
    let env = Env::start().await;
    env.pool(LoadBalancerIPPool::test("p").with_block("198.51.100.0/28")).await;
    env.service("default", Service::test("web")).await;
    env.service("default", Service::test("calm")).await;
    let ctl = env.controller();
    let ours = ingress(&satisfied(&env, "default", "web", 1).await);
    let calm = ingress(&satisfied(&env, "default", "calm", 1).await);

    let before = env.sim.counters();
    let rival_writes = rival(&env, "web", Duration::from_secs(6)).await;
    let after = env.sim.counters();
    let total = patches(&after, "services", "status") - patches(&before, "services", "status");
    let ferrolb_writes = total - rival_writes;
    // Without the back-off every rival write is undone at once (about one FerroLB write per rival
    // write, 100 or so in 6 s); with it: the overwrites of the threshold (3) and the hold's
    // condition write.
    assert!(
        ferrolb_writes <= 5 && rival_writes <= 5,
        "FerroLB wrote web's status {ferrolb_writes} times, the rival {rival_writes} times in 6 s"
    );

    let web = env.get("default", "web").await;
    assert_eq!(ingress(&web), [RIVAL_IP], "FerroLB holds its writes: the other writer's address stays");
    let (status, message) = contested(&web).expect("a StatusContested condition");
    assert_eq!(status, "True");
    assert!(message.contains(RIVAL), "the condition names the other writer: {message}");
    let warnings: Vec<_> = env
        .events("default")
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(events::STATUS_CONTESTED))
        .collect();
    assert_eq!(warnings.len(), 1, "one Warning per hold: {warnings:?}");
    assert!(warnings[0].series.is_none(), "one hold, reported once: {warnings:?}");
    assert_eq!(warnings[0].type_.as_deref(), Some("Warning"));
    assert!(warnings[0].note.as_deref().is_some_and(|n| n.contains(RIVAL)));
    // The request condition is kept as it was, and the Service left alone keeps its address.
    assert_eq!(condition(&web).map(|c| c.1), Some("satisfied".to_string()), "{ours:?}");
    assert_eq!(ingress(&env.get("default", "calm").await), calm);
    assert!(contested(&env.get("default", "calm").await).is_none());
    ctl.stop().await;
}

/// After a hold, FerroLB writes its address again once; the rival undoing it starts the next hold at
/// once (twice as long); when the rival is gone, FerroLB's address stays and the condition goes.
#[tokio::test]
async fn holds_end_grow_and_clear() {
    let env = Env::start().await;
    env.pool(LoadBalancerIPPool::test("p").with_block("198.51.100.0/28")).await;
    env.service("default", Service::test("web")).await;
    let cfg = ContestConfig {
        window: Duration::from_secs(60),
        threshold: 2,
        first_hold: Duration::from_millis(1500),
        max_hold: Duration::from_secs(3),
    };
    let (_leader, shutdown, task) = start(&env, cfg);
    let ours = ingress(&satisfied(&env, "default", "web", 1).await);

    let before = env.sim.counters();
    // Hold 1 (1.5 s) starts after 2 overwrites, FerroLB writes again when it ends, the rival undoes
    // it: hold 2 (3 s), which outlasts the rival's 4 s.
    let rival_writes = rival(&env, "web", Duration::from_secs(4)).await;
    let after = env.sim.counters();
    let ferrolb_writes =
        patches(&after, "services", "status") - patches(&before, "services", "status") - rival_writes;
    assert!((2..=6).contains(&ferrolb_writes), "FerroLB wrote {ferrolb_writes} times (rival {rival_writes})");
    assert!(rival_writes >= 3, "the rival had to write after the first hold ended ({rival_writes})");
    let events = env.events("default").await;
    // A repeated Event is one object whose series counts the repeats (kube's Recorder).
    let holds: i32 = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some(events::STATUS_CONTESTED))
        .map(|e| e.series.as_ref().map_or(1, |s| s.count))
        .sum();
    assert_eq!(holds, 2, "two holds, each reported once");

    // The rival is gone: after the second hold FerroLB's address comes back and stays.
    let web = wait_for_within(
        8,
        "web shows FerroLB's address again without the StatusContested condition",
        || async { env.get("default", "web").await },
        |s| ingress(s) == ours && contested(s).is_none(),
    )
    .await;
    assert_eq!(condition(&web).map(|c| c.1), Some("satisfied".to_string()));
    let _ = shutdown.send(true);
    let _ = task.await;
}
