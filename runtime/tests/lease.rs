//! The Lease adapter against kube-sim: acquisition, one leader among several, crash and graceful
//! hand-over, an unreachable or failing API server, injected conflicts.

use std::time::{Duration, Instant};

use ferrolb_runtime::election::ElectionConfig;
use ferrolb_runtime::lease::{LeaderElector, Leadership};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube_sim::admin::{ErrorRule, PauseMode};
use tokio::sync::watch;

const NS: &str = "default";
const LEASE_DURATION: Duration = Duration::from_secs(1);
const RENEW_DEADLINE: Duration = Duration::from_millis(600);
const RETRY_PERIOD: Duration = Duration::from_millis(200);
/// Room for HTTP round trips and scheduling on a busy two-core machine.
const SLACK: Duration = Duration::from_millis(500);

fn cfg(id: &str) -> ElectionConfig {
    let cfg = ElectionConfig {
        identity: id.into(),
        lease_duration: LEASE_DURATION,
        renew_deadline: RENEW_DEADLINE,
        retry_period: RETRY_PERIOD,
    };
    cfg.validate().expect("valid test timings");
    cfg
}

async fn sim() -> anyhow::Result<(kube_sim::KubeSim, kube::Client)> {
    let sim = kube_sim::KubeSim::start(kube_sim::Options::default()).await?;
    let client = sim.client().await?;
    Ok((sim, client))
}

/// Waits until `pred` holds for the published value; false on timeout.
async fn wait_until(
    rx: &watch::Receiver<Leadership>,
    within: Duration,
    pred: impl Fn(&Leadership) -> bool,
) -> bool {
    let mut rx = rx.clone();
    tokio::time::timeout(within, rx.wait_for(|l| pred(l))).await.is_ok_and(|r| r.is_ok())
}

async fn holder(client: &kube::Client, name: &str) -> anyhow::Result<Option<String>> {
    let lease = Api::<Lease>::namespaced(client.clone(), NS).get(name).await?;
    Ok(lease.spec.and_then(|s| s.holder_identity).filter(|h| !h.is_empty()))
}

/// Watches every receiver for `during`, failing on any instant where two of them lead.
async fn never_two_leaders(rxs: &[watch::Receiver<Leadership>], during: Duration) -> usize {
    let end = Instant::now() + during;
    let mut samples_with_leader = 0;
    while Instant::now() < end {
        let leaders: Vec<usize> = (0..rxs.len()).filter(|&i| rxs[i].borrow().leader).collect();
        assert!(leaders.len() <= 1, "two leaders at once: {leaders:?}");
        samples_with_leader += usize::from(!leaders.is_empty());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    samples_with_leader
}

#[tokio::test]
async fn single_candidate_acquires_and_counts_metrics() -> anyhow::Result<()> {
    let handle = ferrolb_runtime::admin::install_metrics()?;
    let (_sim, client) = sim().await?;
    let a = LeaderElector::spawn(client.clone(), NS, "single", cfg("a"));
    assert_eq!(a.identity(), "a");
    let rx = a.leadership();
    assert!(wait_until(&rx, Duration::from_secs(2), |l| l.leader).await, "never acquired");
    let l = rx.borrow().clone();
    assert_eq!(l.holder.as_deref(), Some("a"));
    assert!(l.is_leader_at(Instant::now()));

    let lease = Api::<Lease>::namespaced(client.clone(), NS).get("single").await?;
    let spec = lease.spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("a"));
    assert_eq!(spec.lease_duration_seconds, Some(1));
    assert_eq!(spec.lease_transitions, Some(0));
    assert!(spec.acquire_time.is_some() && spec.renew_time.is_some());

    // It keeps renewing: renewTime moves, leadership never lapses.
    let first_renew = spec.renew_time;
    assert!(never_two_leaders(std::slice::from_ref(&rx), Duration::from_millis(800)).await > 0);
    assert!(rx.borrow().leader, "leadership lapsed on a healthy API server");
    let later = Api::<Lease>::namespaced(client, NS).get("single").await?.spec.expect("spec");
    assert_ne!(later.renew_time, first_renew);

    let text = handle.render();
    assert!(text.contains(r#"ferrolb_is_leader{lease="single"} 1"#), "{text}");
    assert!(text.contains(r#"ferrolb_leader_elections_total{lease="single"} 1"#), "{text}");
    Ok(())
}

#[tokio::test]
async fn two_candidates_one_leader() -> anyhow::Result<()> {
    let (_sim, client) = sim().await?;
    let a = LeaderElector::spawn(client.clone(), NS, "pair", cfg("a"));
    let b = LeaderElector::spawn(client.clone(), NS, "pair", cfg("b"));
    let rxs = [a.leadership(), b.leadership()];
    let start = Instant::now();
    while !rxs.iter().any(|rx| rx.borrow().leader) {
        assert!(start.elapsed() < Duration::from_secs(2), "nobody acquired");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    never_two_leaders(&rxs, Duration::from_secs(2)).await;
    let leader = if rxs[0].borrow().leader { "a" } else { "b" };
    assert_eq!(holder(&client, "pair").await?.as_deref(), Some(leader));
    // The standby knows who leads.
    let standby = if leader == "a" { &rxs[1] } else { &rxs[0] };
    assert_eq!(standby.borrow().holder.as_deref(), Some(leader));
    assert!(!standby.borrow().leader);
    Ok(())
}

#[tokio::test]
async fn standby_takes_over_after_a_crash_within_lease_duration() -> anyhow::Result<()> {
    let (_sim, client) = sim().await?;
    let a = LeaderElector::spawn(client.clone(), NS, "crash", cfg("a"));
    let a_rx = a.leadership();
    assert!(wait_until(&a_rx, Duration::from_secs(2), |l| l.leader).await);
    let b = LeaderElector::spawn(client.clone(), NS, "crash", cfg("b"));
    let b_rx = b.leadership();
    assert!(wait_until(&b_rx, Duration::from_secs(2), |l| l.holder.as_deref() == Some("a")).await);

    // A crash: the task stops without releasing.
    let crashed_at = Instant::now();
    drop(a);
    assert!(
        wait_until(&a_rx, Duration::from_millis(200), |l| !l.leader).await,
        "a dead task still shows leader"
    );

    assert!(wait_until(&b_rx, LEASE_DURATION + RETRY_PERIOD + SLACK, |l| l.leader).await, "no takeover");
    let took = crashed_at.elapsed();
    assert!(took >= LEASE_DURATION - RETRY_PERIOD, "took over too early: {took:?}");
    assert_eq!(holder(&client, "crash").await?.as_deref(), Some("b"));
    let spec = Api::<Lease>::namespaced(client, NS).get("crash").await?.spec.expect("spec");
    assert_eq!(spec.lease_transitions, Some(1));
    Ok(())
}

#[tokio::test]
async fn graceful_release_hands_over_within_a_retry_period() -> anyhow::Result<()> {
    let (_sim, client) = sim().await?;
    let a = LeaderElector::spawn(client.clone(), NS, "release", cfg("a"));
    let a_rx = a.leadership();
    assert!(wait_until(&a_rx, Duration::from_secs(2), |l| l.leader).await);
    let b = LeaderElector::spawn(client.clone(), NS, "release", cfg("b"));
    let b_rx = b.leadership();
    assert!(wait_until(&b_rx, Duration::from_secs(2), |l| l.holder.as_deref() == Some("a")).await);

    let started = Instant::now();
    a.release().await;
    assert!(!a_rx.borrow().leader, "still leading after release");
    assert!(started.elapsed() < RENEW_DEADLINE, "release took {:?}", started.elapsed());
    let released_at = Instant::now();
    assert!(wait_until(&b_rx, RETRY_PERIOD + SLACK, |l| l.leader).await, "standby did not take over at once");
    assert!(released_at.elapsed() < LEASE_DURATION, "waited for expiry instead");
    assert_eq!(holder(&client, "release").await?.as_deref(), Some("b"));
    // Releasing twice, or after the task stopped, returns at once.
    a.release().await;
    Ok(())
}

#[tokio::test]
async fn release_of_a_lease_we_do_not_hold_leaves_it_alone() -> anyhow::Result<()> {
    let (_sim, client) = sim().await?;
    let a = LeaderElector::spawn(client.clone(), NS, "notours", cfg("a"));
    assert!(wait_until(&a.leadership(), Duration::from_secs(2), |l| l.leader).await);
    let b = LeaderElector::spawn(client.clone(), NS, "notours", cfg("b"));
    assert!(wait_until(&b.leadership(), Duration::from_secs(2), |l| l.holder.is_some()).await);
    b.release().await;
    assert_eq!(holder(&client, "notours").await?.as_deref(), Some("a"));
    assert!(a.leadership().borrow().leader);
    Ok(())
}

#[tokio::test]
async fn unreachable_api_server_leader_steps_down_and_nobody_leads() -> anyhow::Result<()> {
    let (sim, client) = sim().await?;
    let admin = sim.admin().await?;
    let a = LeaderElector::spawn(client.clone(), NS, "hang", cfg("a"));
    let a_rx = a.leadership();
    assert!(wait_until(&a_rx, Duration::from_secs(2), |l| l.leader).await);
    let b = LeaderElector::spawn(client.clone(), NS, "hang", cfg("b"));
    let b_rx = b.leadership();
    assert!(wait_until(&b_rx, Duration::from_secs(2), |l| l.holder.as_deref() == Some("a")).await);

    admin.pause(PauseMode::Hang).await?;
    let paused_at = Instant::now();
    // The last renewal was decided before the pause, so the claim ends within renew_deadline of it.
    assert!(
        wait_until(&a_rx, RENEW_DEADLINE + Duration::from_millis(150), |l| !l.leader).await,
        "leader kept leading without the API server"
    );
    let stepped_down = paused_at.elapsed();
    assert!(stepped_down >= RENEW_DEADLINE - RETRY_PERIOD - Duration::from_millis(100), "{stepped_down:?}");
    // Nobody can take over while nobody can write.
    assert_eq!(never_two_leaders(&[a_rx.clone(), b_rx.clone()], LEASE_DURATION * 2).await, 0);

    admin.resume().await?;
    let start = Instant::now();
    while !(a_rx.borrow().leader || b_rx.borrow().leader) {
        assert!(start.elapsed() < LEASE_DURATION + 2 * RETRY_PERIOD + SLACK, "nobody leads after resume");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    never_two_leaders(&[a_rx, b_rx], Duration::from_secs(1)).await;
    Ok(())
}

#[tokio::test]
async fn failing_api_server_leader_steps_down() -> anyhow::Result<()> {
    let (sim, client) = sim().await?;
    let admin = sim.admin().await?;
    let a = LeaderElector::spawn(client.clone(), NS, "unavailable", cfg("a"));
    let a_rx = a.leadership();
    assert!(wait_until(&a_rx, Duration::from_secs(2), |l| l.leader).await);
    // 503 to everything; kube's client retries those with backoff, the renew deadline still holds.
    admin.pause(PauseMode::Unavailable).await?;
    assert!(wait_until(&a_rx, RENEW_DEADLINE + Duration::from_millis(150), |l| !l.leader).await);
    admin.resume().await?;
    assert!(wait_until(&a_rx, Duration::from_secs(3), |l| l.leader).await, "did not recover");
    Ok(())
}

#[tokio::test]
async fn injected_conflicts_never_make_two_leaders() -> anyhow::Result<()> {
    let (sim, client) = sim().await?;
    let admin = sim.admin().await?;
    admin.inject(ErrorRule::new(409, 0.5).verbs(&["update", "create"]).resources(&["leases"])).await?;
    let electors: Vec<LeaderElector> = ["a", "b", "c"]
        .iter()
        .map(|id| LeaderElector::spawn(client.clone(), NS, "conflicts", cfg(id)))
        .collect();
    let rxs: Vec<_> = electors.iter().map(LeaderElector::leadership).collect();
    let led = never_two_leaders(&rxs, Duration::from_secs(4)).await;
    assert!(led > 0, "nobody ever led with half the writes failing");
    // Every write the API server accepted is a legitimate acquisition or renewal: the transitions
    // count how often the lease changed hands, at most once per acquisition.
    let counters = sim.counters();
    assert!(counters.count("update", Some("leases")) > 0);
    Ok(())
}

#[tokio::test]
async fn deleted_lease_is_recreated() -> anyhow::Result<()> {
    let (_sim, client) = sim().await?;
    let a = LeaderElector::spawn(client.clone(), NS, "deleted", cfg("a"));
    let rx = a.leadership();
    assert!(wait_until(&rx, Duration::from_secs(2), |l| l.leader).await);
    Api::<Lease>::namespaced(client.clone(), NS).delete("deleted", &Default::default()).await?;
    let start = Instant::now();
    loop {
        if let Ok(Some(h)) = holder(&client, "deleted").await {
            assert_eq!(h, "a");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(2), "lease not recreated");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(wait_until(&rx, Duration::from_secs(1), |l| l.leader).await);
    Ok(())
}

#[tokio::test]
async fn invalid_config_never_leads() -> anyhow::Result<()> {
    let (_sim, client) = sim().await?;
    let mut bad = cfg("a");
    bad.renew_deadline = LEASE_DURATION;
    let a = LeaderElector::spawn(client.clone(), NS, "invalid", bad);
    let rx = a.leadership();
    assert!(!wait_until(&rx, Duration::from_millis(500), |l| l.leader).await);
    assert!(Api::<Lease>::namespaced(client, NS).get_opt("invalid").await?.is_none());
    a.release().await;
    Ok(())
}

#[tokio::test]
async fn cli_client_connects_with_a_kubeconfig_file() -> anyhow::Result<()> {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        common: ferrolb_runtime::cli::CommonArgs,
    }
    let (sim, _) = sim().await?;
    let path = sim.kubeconfig_path().to_str().expect("utf-8 path").to_owned();
    let cli = Cli::try_parse_from(["x", "--kubeconfig", &path])?;
    let client = cli.common.client().await?;
    let leases = Api::<Lease>::namespaced(client, NS).list(&Default::default()).await?;
    assert!(leases.items.is_empty());

    let missing = Cli::try_parse_from(["x", "--kubeconfig", "/nonexistent/kubeconfig"])?;
    let Err(err) = missing.common.client().await else { panic!("a missing kubeconfig was accepted") };
    let err = err.to_string();
    assert!(err.contains("/nonexistent/kubeconfig"), "{err}");
    Ok(())
}

#[tokio::test]
async fn a_leader_renews_with_one_request_and_survives_a_foreign_write() -> anyhow::Result<()> {
    let (sim, client) = sim().await?;
    let admin = sim.admin().await?;
    // A retry period close to the renew deadline: a renewal that conflicts must be retried at once,
    // since one retry period later the claim would have lapsed.
    let retry = Duration::from_millis(700);
    let cfg = ElectionConfig {
        identity: "a".into(),
        lease_duration: Duration::from_secs(2),
        renew_deadline: Duration::from_secs(1),
        retry_period: retry,
    };
    let a = LeaderElector::spawn(client.clone(), NS, "renewals", cfg);
    let rx = a.leadership();
    assert!(wait_until(&rx, Duration::from_secs(2), |l| l.leader).await, "never acquired");
    // Steady state: every renewal is one update, decided on the object the last one returned.
    admin.reset_counters().await?;
    tokio::time::sleep(retry * 4).await;
    let counters = sim.counters();
    let (gets, updates) = (counters.count("get", Some("leases")), counters.count("update", Some("leases")));
    assert!(updates >= 3, "{updates} renewals in {:?}", retry * 4);
    assert!(gets <= 1, "{gets} reads for {updates} renewals");
    // Someone else writes the Lease (an annotation, as the announcer's report does): the next renewal
    // conflicts, the one after reads and renews; leadership never lapses.
    let api = Api::<Lease>::namespaced(client.clone(), NS);
    let patch = serde_json::json!({"metadata": {"annotations": {"example.com/note": "x"}}});
    api.patch("renewals", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await?;
    let end = Instant::now() + retry * 4;
    while Instant::now() < end {
        assert!(rx.borrow().leader, "a foreign write made the leader lapse");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let lease = api.get("renewals").await?;
    assert_eq!(lease.metadata.annotations.unwrap_or_default()["example.com/note"], "x", "kept by renewals");
    assert_eq!(holder(&client, "renewals").await?.as_deref(), Some("a"));
    Ok(())
}

/// A holder that writes every fifth round renews by reading in between: its Lease changes about once
/// per write period (what every watcher of the Lease receives), its claim stays continuous, the Lease
/// carries the longer duration the others must wait, and an API server that stops answering still
/// ends the claim within the renew deadline, not the write period.
#[tokio::test]
async fn a_longer_write_period_writes_less_and_still_steps_down_in_time() -> anyhow::Result<()> {
    use futures::StreamExt;
    use kube::runtime::watcher;

    let (sim, client) = sim().await?;
    let admin = sim.admin().await?;
    let a = LeaderElector::spawn(client.clone(), NS, "paced", cfg("a"));
    let write_period = RETRY_PERIOD * 5;
    a.write_period().set(write_period);
    let rx = a.leadership();
    assert!(wait_until(&rx, Duration::from_secs(2), |l| l.leader).await, "never acquired");

    let api = Api::<Lease>::namespaced(client.clone(), NS);
    let config = watcher::Config::default().fields("metadata.name=paced");
    let versions = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let seen = versions.clone();
    let watch = tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(api, config));
        while let Some(Ok(event)) = events.next().await {
            if let watcher::Event::Apply(lease) = event {
                seen.lock().unwrap().insert(lease.metadata.resource_version.unwrap_or_default());
            }
        }
    });
    // Continuous leadership for 3 s while writes happen about once a second.
    let window = Duration::from_secs(3);
    let start = Instant::now();
    while start.elapsed() < window {
        assert!(rx.borrow().is_leader_at(Instant::now()), "leadership lapsed between writes");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    watch.abort();
    let writes = versions.lock().unwrap().len();
    // Every round writing would be 15 in 3 s; one write per period is 3, plus the first one.
    assert!((2..=5).contains(&writes), "{writes} writes in {window:?}");
    let spec = Api::<Lease>::namespaced(client.clone(), NS).get("paced").await?.spec.expect("spec");
    // 1 s + (1 s - 200 ms), rounded up.
    assert_eq!(spec.lease_duration_seconds, Some(2));

    admin.pause(PauseMode::Hang).await?;
    let paused_at = Instant::now();
    assert!(
        wait_until(&rx, RENEW_DEADLINE + Duration::from_millis(150), |l| !l.leader).await,
        "kept leading for longer than the renew deadline without the API server"
    );
    assert!(paused_at.elapsed() >= RENEW_DEADLINE - RETRY_PERIOD - Duration::from_millis(100));
    admin.resume().await?;
    Ok(())
}
