//! The whole announcer in one process, without root: kube-sim and three announcers
//! (`adapter::run`, as the binary runs it), each with a datapath of its own ([`FakeNetlink`]) and
//! the peer channel on 127.0.0.1, as three nodes would run them. The assertions read what the
//! announcers wrote to the API (Leases, policy status, Events) and what each one told its datapath;
//! the policy status comes from one node, the status writer Lease's holder, and from another
//! once that one stops.
//!
//! The datapath is `--datapath netlink` over the fake: held addresses are added to the fake's
//! `eth0`, released ones removed. The gratuitous schedule is empty, so no raw socket is opened (that
//! needs CAP_NET_RAW, and nothing here may send a frame on the machine's interfaces); the bursts
//! and the responder are the network-namespace suite's (`tests/datapath.rs`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ferrolb_api::names::{annotations, conditions, events as reasons, labels, leases};
use ferrolb_api::{L2AnnouncementPolicy, LoadBalancerIPPool, ServedClasses};
use ferrolb_l2announcer::InterfaceKind;
use ferrolb_l2announcer::adapter::{self, Mode, Settings};
use ferrolb_l2announcer::datapath::{AnnounceSchedule, FakeNetlink, Link, Mac, Netlink as _};
use ferrolb_l2announcer::engine::EngineConfig;
use ferrolb_l2announcer::lease_state::LeaseConfig;
use ferrolb_l2announcer::liveness::LivenessConfig;
use ferrolb_l2announcer::peer::{PeerConfig, PeerKey};
use ferrolb_runtime::admin::Readiness;
use ferrolb_runtime::election::ElectionConfig;
use ferrolb_testkit::fixtures::{PolicyFixture as _, PoolFixture as _, ServiceFixture as _};
use ferrolb_testkit::{eventually, wait_for};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube_sim::{KubeSim, Options};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

/// FerroLB's namespace: the Leases.
const NAMESPACE: &str = "ferrolb-system";
/// The Service's namespace.
const APPS: &str = "apps";
/// Each fake node's announcing interface.
const ETH0: u32 = 2;
/// How long any one step may take: seconds are expected, this bounds a hang.
const STEP: Duration = Duration::from_secs(15);

/// The Service's address, from the pool.
fn vip() -> IpAddr {
    "198.51.100.130".parse().unwrap()
}

/// One announcer as a node runs it: its own datapath, readiness and shutdown signal.
struct Announcer {
    name: String,
    netlink: Arc<FakeNetlink>,
    readiness: Readiness,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), adapter::Error>>,
}

impl Announcer {
    async fn start(sim: &KubeSim, name: &str, netlink: Arc<FakeNetlink>) -> Self {
        let client = sim.client().await.unwrap();
        let readiness = Readiness::default();
        let shutdown = CancellationToken::new();
        let run = adapter::run(client, settings(name), netlink.clone(), readiness.clone(), shutdown.clone());
        let task = tokio::spawn(run.instrument(tracing::info_span!("announcer", node = name)));
        Self { name: name.to_owned(), netlink, readiness, shutdown, task }
    }

    /// The addresses its datapath was told to answer for, as (interface, address, prefix length).
    fn programmed(&self) -> Vec<(u32, IpAddr, u8)> {
        self.netlink.all_addresses()
    }

    /// SIGTERM: hands over and stops; fails the test if it did not stop cleanly.
    async fn stop(self) {
        self.shutdown.cancel();
        let result = tokio::time::timeout(STEP, self.task).await;
        let result = result.unwrap_or_else(|_| panic!("{} did not stop within {STEP:?}", self.name));
        result.expect("the announcer task panicked").expect("the announcer stopped with an error");
    }
}

/// The flags' defaults (`src/main.rs`), except: `--datapath netlink`, the peer channel on
/// 127.0.0.1 with a key, no gRPC API, no gratuitous packets and no BGP.
fn settings(node: &str) -> Settings {
    let liveness = LivenessConfig {
        heartbeat_lease_duration: Duration::from_secs(3),
        peer_timeout: Duration::from_millis(500),
        ack_timeout: Duration::from_millis(400),
    };
    let mut peer = PeerConfig::new(node, SocketAddr::from(([127, 0, 0, 1], 0)));
    peer.key = Some(PeerKey::from_bytes(b"the in-process test's peer key").unwrap());
    Settings {
        node: node.to_owned(),
        namespace: NAMESPACE.to_owned(),
        engine: EngineConfig {
            this_node: node.to_owned(),
            lease: LeaseConfig {
                acquire_stagger: Duration::from_millis(200),
                handover_settle: Duration::from_secs(5),
                heartbeat_lease_duration: liveness.heartbeat_lease_duration,
            },
            liveness,
            classes: ServedClasses::new(true, Vec::<String>::new()),
        },
        heartbeat: ElectionConfig {
            identity: node.to_owned(),
            lease_duration: Duration::from_secs(3),
            renew_deadline: Duration::from_secs(2),
            retry_period: Duration::from_secs(1),
        },
        datapath: Mode::Netlink,
        netlink_address_lifetime: Some(Duration::from_secs(3)),
        schedule: AnnounceSchedule::new(Vec::new()),
        grpc_socket: None,
        grpc_tcp: None,
        delegate_report_timeout: Duration::from_secs(5),
        peer: Some(peer),
        write_concurrency: 32,
        event_interval: Duration::from_secs(10),
        shutdown_grace: Duration::from_secs(5),
        preflight_interval: Duration::from_secs(300),
        bgp: None,
    }
}

/// A node's links: loopback, and `eth0` (up, ARP-capable) with a MAC of its own.
fn links(n: u8) -> Vec<Link> {
    let link = |index, name: &str, mac, kind, arp_capable| Link {
        index,
        name: name.to_owned(),
        mac,
        admin_up: true,
        lower_up: true,
        kind,
        master: None,
        enslaved: false,
        arp_capable,
    };
    vec![
        link(1, "lo", Some(Mac([0; 6])), InterfaceKind::Loopback, false),
        link(ETH0, "eth0", Some(Mac([2, 0, 0, 0, 0, n])), InterfaceKind::Device, true),
    ]
}

/// A Ready Node whose InternalIP is 127.0.0.1: the peers reach each other's channel on loopback.
async fn create_node(client: &kube::Client, name: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node =
        Node { metadata: ObjectMeta { name: Some(name.into()), ..ObjectMeta::default() }, ..Node::default() };
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let status = json!({"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "conditions": [{"type": "Ready", "status": "True"}],
    }});
    nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
}

/// The pool the Service's address comes from, and two policies: one that announces everything,
/// one with an invalid interface regex (which the announcers must report, and not use).
async fn create_pool_and_policies(client: &kube::Client) {
    let pool = LoadBalancerIPPool::test("lan").with_block("198.51.100.128/25");
    Api::<LoadBalancerIPPool>::all(client.clone()).create(&PostParams::default(), &pool).await.unwrap();
    let policies: Api<L2AnnouncementPolicy> = Api::all(client.clone());
    for policy in [
        L2AnnouncementPolicy::test("everywhere"),
        L2AnnouncementPolicy::test("broken").with_interfaces(&["eth["]),
    ] {
        policies.create(&PostParams::default(), &policy).await.unwrap();
    }
}

/// A LoadBalancer Service with its address in status, as the IPAM controller leaves it.
async fn create_service(client: &kube::Client, name: &str, ip: IpAddr) {
    create_service_with(client, name, ip, "Cluster").await;
}

/// [`create_service`] with the given `externalTrafficPolicy` (`Local` without endpoints: no node can
/// announce it).
async fn create_service_with(client: &kube::Client, name: &str, ip: IpAddr, traffic_policy: &str) {
    let services: Api<Service> = Api::namespaced(client.clone(), APPS);
    let service = Service::test(name)
        .with_annotations(&[(annotations::ALLOCATED_FROM_POOL, "lan")])
        .with_external_traffic_policy(traffic_policy);
    services.create(&PostParams::default(), &service).await.unwrap();
    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": ip.to_string(), "ipMode": "VIP"}]}}});
    services.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
}

/// The per-address Lease, if it exists.
async fn address_lease(client: &kube::Client, service: &str, ip: IpAddr) -> Option<Lease> {
    let api: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    api.get_opt(&leases::service_address(APPS, service, ip)).await.unwrap()
}

fn holder(lease: &Option<Lease>) -> Option<String> {
    lease.as_ref()?.spec.as_ref()?.holder_identity.clone()
}

/// Waits until a Lease names a holder other than `not`; returns that holder.
async fn wait_for_holder(client: &kube::Client, ip: IpAddr, not: Option<&str>) -> String {
    let what = format!("the Lease of {ip} held by a node other than {not:?}");
    let lease = wait_for(
        &what,
        STEP,
        || address_lease(client, "web", ip),
        |l| holder(l).is_some_and(|h| Some(h.as_str()) != not),
    )
    .await;
    holder(&lease).unwrap()
}

/// Waits until exactly `holder` programs `ip` on its `eth0`, and every other node nothing.
async fn wait_programmed_only_by(nodes: &[&Announcer], holder: &str, ip: IpAddr) {
    let what = format!("{ip} programmed on {holder}'s eth0 only");
    eventually(&what, STEP, || {
        nodes.iter().all(|n| {
            let want: &[(u32, IpAddr, u8)] = if n.name == holder { &[(ETH0, ip, 32)] } else { &[] };
            n.programmed() == want
        })
    })
    .await;
}

/// Samples the datapaths every millisecond until `stop`, and returns whether two of them were ever
/// seen answering for the same address at once (a hand-over must never do that: the old holder
/// stops before it writes the Lease, the new one starts after it reads it).
fn watch_for_double_answers(netlinks: Vec<Arc<FakeNetlink>>, stop: Arc<AtomicBool>) -> JoinHandle<bool> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let mut seen = std::collections::HashSet::new();
            for netlink in &netlinks {
                let addresses: std::collections::BTreeSet<IpAddr> =
                    netlink.all_addresses().into_iter().map(|(_, ip, _)| ip).collect();
                if addresses.into_iter().any(|ip| !seen.insert(ip)) {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        false
    })
}

/// `(reason, note)` of the Events about Service `name`, oldest first.
async fn service_events(client: &kube::Client, name: &str) -> Vec<(String, String)> {
    let api: Api<Event> = Api::namespaced(client.clone(), APPS);
    let mut events = api.list(&ListParams::default()).await.unwrap().items;
    events.sort_by_key(|e| e.metadata.resource_version.as_ref().and_then(|v| v.parse::<u64>().ok()));
    events
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

/// The reporting instances (nodes) of the Warning Events `reason` about Service `name`.
async fn warnings_by(client: &kube::Client, name: &str, reason: &str) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(client.clone(), APPS);
    let events = api.list(&ListParams::default()).await.unwrap().items;
    events
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter(|e| e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some(reason))
        .map(|e| e.reporting_instance.unwrap_or_default())
        .collect()
}

/// `(status, reason, message)` of a policy's `ferrolb.io/InvalidSpec` condition.
async fn invalid_spec(client: &kube::Client, policy: &str) -> Option<(String, String, String)> {
    let api: Api<L2AnnouncementPolicy> = Api::all(client.clone());
    let policy = api.get(policy).await.unwrap();
    let condition = policy.status?.conditions.into_iter().find(|c| c.type_ == conditions::INVALID_SPEC)?;
    Some((condition.status, condition.reason, condition.message))
}

/// The holder of the status writer Lease, if any.
async fn status_writer(client: &kube::Client) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    holder(&api.get_opt(leases::ANNOUNCER_STATUS).await.unwrap())
}

/// Waits until the status writer Lease names one of `among`; returns it.
async fn wait_for_status_writer(client: &kube::Client, among: &[&str]) -> String {
    let what = format!("the status writer Lease held by one of {among:?}");
    let found =
        wait_for(&what, STEP, || status_writer(client), |h| h.as_deref().is_some_and(|h| among.contains(&h)))
            .await;
    found.unwrap()
}

/// Status writes the API server received for L2AnnouncementPolicies, from every node together.
fn policy_status_writes(sim: &KubeSim) -> u64 {
    let counters = sim.counters();
    let writes = counters.requests.iter().filter(|e| {
        e.resource == "l2announcementpolicies"
            && e.subresource == "status"
            && ["patch", "update", "apply"].contains(&e.verb.as_str())
    });
    writes.map(|e| e.count).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_announcers_take_over_hand_over_and_clean_up() {
    // Shown only when the test fails (`RUST_LOG` for more).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("in_process=info,ferrolb_l2announcer=info,ferrolb_runtime=info")
    });
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_test_writer().try_init();
    let (sim, client) = cluster(&[NAMESPACE, APPS]).await;
    let names = ["node-a", "node-b", "node-c"];
    for name in names {
        create_node(&client, name).await;
    }
    create_pool_and_policies(&client).await;

    // node-c was killed with a pool address still on its eth0: it removes it before deciding.
    let leftover: IpAddr = "198.51.100.250".parse().unwrap();
    let mut started = Vec::new();
    for (n, name) in (1..).zip(names) {
        let netlink = Arc::new(FakeNetlink::with_links(links(n)));
        if name == "node-c" {
            netlink.add_address(ETH0, leftover, 32, None).await.unwrap();
        }
        started.push(Announcer::start(&sim, name, netlink).await);
    }
    let monitor_stop = Arc::new(AtomicBool::new(false));
    let monitor =
        watch_for_double_answers(started.iter().map(|a| a.netlink.clone()).collect(), monitor_stop.clone());
    eventually("every announcer ready", STEP, || started.iter().all(|a| a.readiness.is_ready())).await;
    eventually("node-c's leftover address removed", STEP, || started[2].programmed().is_empty()).await;

    // Takeover: one node's Lease, and only that node's datapath answers.
    let ip = vip();
    create_service(&client, "web", ip).await;
    let first = wait_for_holder(&client, ip, None).await;
    let nodes: Vec<&Announcer> = started.iter().collect();
    wait_programmed_only_by(&nodes, &first, ip).await;
    let lease = address_lease(&client, "web", ip).await.unwrap();
    let meta = &lease.metadata;
    let label = |k: &str| meta.labels.as_ref().and_then(|l| l.get(k)).cloned();
    assert_eq!(label(labels::LEASE_SERVICE_NAMESPACE).as_deref(), Some(APPS));
    assert_eq!(label(labels::LEASE_SERVICE_NAME).as_deref(), Some("web"));
    let heartbeat = meta.annotations.as_ref().and_then(|a| a.get(annotations::HEARTBEAT_LEASE));
    assert_eq!(heartbeat, Some(&leases::node_heartbeat(&first)));
    let announced = format!("{first} announces {ip} on eth0");
    wait_for(
        "an Announcing Event naming the first holder",
        STEP,
        || service_events(&client, "web"),
        |events| events.iter().any(|(reason, note)| reason == reasons::ANNOUNCING && *note == announced),
    )
    .await;

    // Policy status: the valid policy says so, the broken one names its bad regex.
    let valid = wait_for(
        "the valid policy's condition",
        STEP,
        || invalid_spec(&client, "everywhere"),
        |c| c.is_some(),
    )
    .await;
    assert_eq!(valid, Some(("False".into(), "Valid".into(), String::new())));
    let (status, reason, message) =
        wait_for("the broken policy's condition", STEP, || invalid_spec(&client, "broken"), |c| c.is_some())
            .await
            .unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("True", "InvalidSpec"));
    assert!(message.contains("eth["), "{message}");

    // One writer: a node holds the status writer Lease, and the two conditions took two writes,
    // from all three nodes together (each node alone would have written both).
    let writer = wait_for_status_writer(&client, &names).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(policy_status_writes(&sim), 2, "one status write per policy");

    // An address nobody can announce (traffic policy Local, no endpoints): the writer alone warns.
    create_service_with(&client, "nowhere", "198.51.100.131".parse().unwrap(), "Local").await;
    wait_for(
        "a NotAnnouncing Warning",
        STEP,
        || warnings_by(&client, "nowhere", reasons::NOT_ANNOUNCING),
        |by| !by.is_empty(),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        warnings_by(&client, "nowhere", reasons::NOT_ANNOUNCING).await,
        [writer],
        "one Warning, from the holder of the status writer Lease"
    );

    // Hand-over: the holder shuts down; another node takes the Lease and answers, the first one no
    // longer does.
    let position = started.iter().position(|a| a.name == first).unwrap();
    let stopping = started.remove(position);
    stopping.shutdown.cancel();
    let second = wait_for_holder(&client, ip, Some(&first)).await;
    let nodes: Vec<&Announcer> = started.iter().chain([&stopping]).collect();
    wait_programmed_only_by(&nodes, &second, ip).await;
    stopping.stop().await;
    let announced = format!("{second} announces {ip} on eth0");
    wait_for(
        "an Announcing Event naming the second holder",
        STEP,
        || service_events(&client, "web"),
        |events| events.iter().any(|(reason, note)| reason == reasons::ANNOUNCING && *note == announced),
    )
    .await;

    // Clean-up: the Service is deleted; its Lease goes and no datapath answers for its address.
    let services: Api<Service> = Api::namespaced(client.clone(), APPS);
    services.delete("web", &DeleteParams::default()).await.unwrap();
    wait_for("the address Lease deleted", STEP, || address_lease(&client, "web", ip), Option::is_none).await;
    eventually("no datapath programs the address", STEP, || {
        started.iter().all(|a| a.programmed().is_empty())
    })
    .await;

    // The status writer stops: another node takes the writer Lease over and writes.
    let running: Vec<&str> = started.iter().map(|a| a.name.as_str()).collect();
    let writer = wait_for_status_writer(&client, &running).await;
    let position = started.iter().position(|a| a.name == writer).unwrap();
    started.remove(position).stop().await;
    let running: Vec<&str> = started.iter().map(|a| a.name.as_str()).collect();
    wait_for_status_writer(&client, &running).await;
    let before = policy_status_writes(&sim);
    let policies: Api<L2AnnouncementPolicy> = Api::all(client.clone());
    let fixed = json!({"spec": {"interfaces": ["eth0"]}});
    policies.patch("broken", &PatchParams::default(), &Patch::Merge(&fixed)).await.unwrap();
    let shown = wait_for(
        "the fixed policy's condition, from the new writer",
        STEP,
        || invalid_spec(&client, "broken"),
        |c| c.as_ref().is_some_and(|(status, _, _)| status == "False"),
    )
    .await;
    assert_eq!(shown, Some(("False".into(), "Valid".into(), String::new())));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(policy_status_writes(&sim), before + 1, "one write, by the new writer alone");

    for announcer in started {
        announcer.stop().await;
    }
    monitor_stop.store(true, Ordering::Relaxed);
    assert!(!monitor.await.unwrap(), "two nodes answered for one address at once");
}

/// kube-sim in this process with FerroLB's CRDs and `namespaces`, and a client of it.
async fn cluster(namespaces: &[&str]) -> (KubeSim, kube::Client) {
    let sim = KubeSim::start(Options::default()).await.unwrap();
    let client = sim.client().await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in ferrolb_api::crd::all() {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    let api: Api<Namespace> = Api::all(client.clone());
    for name in namespaces {
        let namespace = Namespace {
            metadata: ObjectMeta { name: Some((*name).into()), ..ObjectMeta::default() },
            ..Namespace::default()
        };
        api.create(&PostParams::default(), &namespace).await.unwrap();
    }
    (sim, client)
}

/// A stopped announcer leaves no task behind: its watches, electors and writers end with `run`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_announcer_leaves_no_task_behind() {
    let (sim, client) = cluster(&[NAMESPACE]).await;
    create_node(&client, "node-a").await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();

    let announcer = Announcer::start(&sim, "node-a", Arc::new(FakeNetlink::with_links(links(1)))).await;
    eventually("the announcer ready", STEP, || announcer.readiness.is_ready()).await;
    wait_for_status_writer(&client, &["node-a"]).await;
    assert!(metrics.num_alive_tasks() > before);
    announcer.stop().await;
    // The API server's side of the announcer's connections ends as they close.
    let what = format!("the tasks alive before the announcer started, {before} at most");
    eventually(&what, STEP, || metrics.num_alive_tasks() <= before).await;
}
