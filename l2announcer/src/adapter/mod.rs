//! The announcer's adapter: watches in, one serial decision loop around [`Engine`], Lease writes,
//! the datapath, the gRPC table and Events out.
//!
//! - Watches (kube reflectors) on Nodes, Services, EndpointSlices, L2AnnouncementPolicies, pools and
//!   the Leases of FerroLB's namespace; link changes from netlink; peer heartbeats and takeover
//!   notices from the peer channel. Any of them wakes the loop; rounds run back to back at most (a
//!   burst of events costs one round).
//! - The node heartbeat Lease `ferrolb-node-<node>` is renewed by [`LeaderElector`] (this node is its
//!   only candidate); this node's report (ready, interfaces, peer port) rides on it as an annotation,
//!   patched only when it changes.
//! - A Lease write is confirmed by the API server's answer: the written object is used at once (an
//!   overlay on the watch cache until the watch catches up), so a takeover answers ARP one round
//!   trip after the write, not one watch delay later.
//! - Nothing is decided before this node is ready: caches listed, links listed, its heartbeat Lease
//!   held once, and the peer channel given `peer_timeout` to hear the others (so nobody is judged dead
//!   merely because this node just started). After that, an API outage changes nothing by itself:
//!   holders keep answering (see `lease_state`).
//! - SIGTERM (the `shutdown` token): this node reports itself not ready, hands every Lease it holds to
//!   its successor (stopping to answer just before each write), waits until none names it (bounded by
//!   `shutdown_grace`), then stops the datapath and releases its heartbeat Lease.
//! - Preflight ([`preflight`]) runs beside the loop once the caches are listed, every
//!   `preflight_interval`, and posts its findings as Warning Events on this node's Node object.
//!
//! The loop's parts, each an `impl Announcer` or functions of its own: the caches (`stores`),
//! Lease writes and their outcomes (`lease_write`), Events (`events`), what one node writes for
//! the cluster (`cluster_status`), delegate mode (`delegate_sync`).

pub mod cache;
mod cluster_status;
pub mod convert;
pub mod datapath;
mod delegate_sync;
mod events;
mod lease_write;
mod preflight;
pub mod spec_condition;
mod stores;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ferrolb_api::L2AnnouncementPolicy;
use ferrolb_api::names::{annotations, leases as lease_names};
use ferrolb_proto::server::{
    AnnouncerService, SharedTable, bind_tcp, new_epoch, serve_tcp_listener, serve_unix,
};
use ferrolb_proto::table::{Announcement as TableEntry, AnnouncementTable};
use ferrolb_runtime::admin::Readiness;
use ferrolb_runtime::election::{ElectionConfig, LeaseRecord};
use ferrolb_runtime::lease::{LeaderElector, WritePeriod, record_of};
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::{Event, Reporter};
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::candidates::{AnnouncerState, LocalEndpoints, NodeState};
use crate::datapath::{AnnounceSchedule, Link, LinkEvent, Netlink, RtNetlink};
use crate::delegate::{self as delegation, DelegateTracker};
use crate::engine::{Engine, EngineConfig, LeaseWrite, Plan, View};
use crate::liveness::{PeerLiveness, SelfLiveness, api_peer_ready, heartbeat_write_period};
use crate::peer::{PeerConfig, PeerEvent, PeerHub, Takeover};
use crate::policy::{AddressKey, Policies, ServiceInput, ServiceKey};
use crate::report::Report;

use cache::Snapshot;
pub use datapath::Mode;
use events::publish_event;
pub(crate) use stores::watch;
use stores::{HeartbeatBook, Stores};

/// The field manager / Event reporter of the announcer.
pub const FIELD_MANAGER: &str = "ferrolb-announcer";

/// Node heartbeat Lease names start with this.
const HEARTBEAT_LEASE_PREFIX: &str = "ferrolb-node-";

/// Per-address Lease names start with this.
const ADDRESS_LEASE_PREFIX: &str = "ferrolb-l2-";

/// How long a 409 on one Lease blocks rewriting it, unless the watch shows a newer version sooner.
const CONFLICT_BACKOFF: Duration = Duration::from_millis(200);

/// Lease writes decided and not yet answered, at most.
const MAX_PENDING_WRITES: usize = 1024;

/// Events queued for publishing at most.
const EVENT_QUEUE: usize = 1024;

/// Events published at once.
const EVENT_CONCURRENCY: usize = 4;

/// Longest time between two decision rounds when nothing happens.
const IDLE_ROUND: Duration = Duration::from_secs(30);

/// How long an authenticated takeover notice stands without the Lease showing the new holder.
const NOTICE_TTL: Duration = Duration::from_secs(30);

/// Adapter settings (the binary fills them from flags).
#[derive(Debug, Clone)]
pub struct Settings {
    pub node: String,
    /// FerroLB's namespace (Leases).
    pub namespace: String,
    pub engine: EngineConfig,
    /// The node heartbeat Lease's election settings (identity = node name).
    pub heartbeat: ElectionConfig,
    pub datapath: Mode,
    /// `--datapath netlink`: the lifetime of the addresses added, refreshed while held (`None`:
    /// permanent).
    pub netlink_address_lifetime: Option<Duration>,
    pub schedule: AnnounceSchedule,
    /// Where to serve the gRPC API (`None`: not served).
    pub grpc_socket: Option<PathBuf>,
    /// Where to serve the gRPC API on TCP, always with mutual TLS (`None`: not served).
    pub grpc_tcp: Option<GrpcTcp>,
    /// `--delegate-report-timeout`: how long a held address waits for the CNI agent's report before
    /// it is a warning.
    pub delegate_report_timeout: Duration,
    /// The peer channel (`None`: liveness from heartbeat Leases only).
    pub peer: Option<PeerConfig>,
    /// Lease writes in flight at once.
    pub write_concurrency: usize,
    /// Least time between two Events of one reason for one address.
    pub event_interval: Duration,
    /// Longest time SIGTERM waits for the successors to take over.
    pub shutdown_grace: Duration,
    /// How often preflight checks this node and the cluster's kube-proxy again.
    pub preflight_interval: Duration,
    /// BGP mode (`None`: off, the BGP objects are not watched).
    pub bgp: Option<crate::bgp::Settings>,
}

/// The gRPC API's TCP listener: an address and the mutual TLS configuration (checked at startup,
/// see [`ferrolb_proto::tls::server_tls_config`]).
#[derive(Debug, Clone)]
pub struct GrpcTcp {
    pub listen: SocketAddr,
    pub tls: tonic::transport::ServerTlsConfig,
}

/// Errors that stop the announcer (everything else is logged and retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("netlink: {0}")]
    Netlink(#[from] crate::datapath::NetlinkError),
    #[error("peer channel: {0}")]
    Peer(#[from] crate::peer::PeerError),
    #[error("gRPC socket: {0}")]
    Grpc(#[from] ferrolb_proto::server::ServeError),
    #[error("gRPC over TCP: {0}")]
    GrpcTcp(#[from] ferrolb_proto::server::TcpServeError),
}

/// The outcome of one Lease write, back in the loop.
struct WriteDone {
    name: String,
    /// The resourceVersion the write was conditioned on (`None`: create).
    pre_rv: Option<String>,
    result: Outcome,
    notify: Option<(String, Takeover)>,
    handover: bool,
    started: Instant,
    free_since: Option<Instant>,
}

enum Outcome {
    Written(Box<LeaseRecord>),
    Deleted,
    Failed(kube::Error),
}

/// Everything the loop keeps between rounds.
struct Announcer {
    settings: Settings,
    client: Client,
    stores: Stores,
    engine: Engine,
    driver: datapath::Driver,
    links: BTreeMap<u32, Link>,
    table: SharedTable,
    hub: Option<PeerHub>,
    leadership: tokio::sync::watch::Receiver<ferrolb_runtime::lease::Leadership>,
    /// Sets how often the heartbeat Lease is written ([`crate::liveness::heartbeat_write_period`]).
    heartbeat_writes: WritePeriod,
    writes_tx: mpsc::Sender<WriteDone>,
    write_slots: Arc<Semaphore>,
    in_flight: HashSet<String>,
    /// Our confirmed writes the watch has not shown yet: name -> (version written over, record).
    overlay: HashMap<String, (Option<String>, LeaseRecord)>,
    /// The caches' values as the rounds read them, copied again only after a change.
    services: Snapshot<Vec<Arc<ServiceInput>>>,
    endpoints: Snapshot<BTreeMap<ServiceKey, BTreeMap<String, LocalEndpoints>>>,
    leases: Snapshot<BTreeMap<String, LeaseRecord>>,
    /// name -> (version that conflicted, blocked until).
    blocked: HashMap<String, (Option<String>, Instant)>,
    /// Lease name -> (resourceVersion the taker wrote, received at).
    notices: HashMap<String, (String, Instant)>,
    heartbeats: HeartbeatBook,
    ready_since: BTreeMap<String, Instant>,
    published: Option<String>,
    publishing: bool,
    publish_tx: mpsc::Sender<Result<String, String>>,
    answering: BTreeMap<AddressKey, Vec<String>>,
    why_none: HashMap<AddressKey, String>,
    /// Events waiting for the publisher task (bounded: past it, Events are dropped and counted).
    events_tx: mpsc::Sender<(Event, ObjectReference)>,
    /// Policies whose status write is in flight.
    policy_writes: HashSet<String>,
    policy_tx: mpsc::Sender<String>,
    last_event: HashMap<(AddressKey, &'static str), Instant>,
    ready: bool,
    shutting_down: bool,
    /// Since when this node has reached the API server without interruption (its heartbeat claim
    /// current), for the cut-off rule.
    api_since: Option<Instant>,
    /// `--datapath delegate`: the CNI agent's programming of what this node answers for.
    delegate: Option<DelegateTracker>,
    readiness: Readiness,
}

/// Runs the announcer until `shutdown` is cancelled and the hand-over is done.
pub async fn run(
    client: Client,
    settings: Settings,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let started = Instant::now();
    let notify = Arc::new(Notify::new());
    let bgp_notify = Arc::new(Notify::new());
    let book = HeartbeatBook::default();
    let stores = Stores::start(&client, &settings.namespace, &notify, &bgp_notify, &book);
    let (listed_tx, listed_rx) = tokio::sync::watch::channel(false);
    let bgp_task = settings.bgp.clone().map(|bgp| {
        let inputs = crate::bgp::Inputs {
            nodes: stores.nodes.clone(),
            services: stores.services.clone(),
            slices: stores.slices.clone(),
            pools: stores.pools.clone(),
            wake: bgp_notify.clone(),
            listed: listed_rx,
        };
        tokio::spawn(crate::bgp::run(client.clone(), bgp, inputs, shutdown.child_token()))
    });

    let netlink = Arc::new(RtNetlink::new()?);
    let mut link_rx = netlink.watch_links()?;
    let mut links: BTreeMap<u32, Link> = netlink.links().await?.into_iter().map(|l| (l.index, l)).collect();
    let mut driver =
        datapath::Driver::new(settings.datapath, Some(netlink.clone()), settings.schedule.clone())
            .with_address_lifetime(settings.netlink_address_lifetime);
    driver.set_links(links.values().cloned());

    let (hub, mut peer_rx) = match &settings.peer {
        Some(cfg) => {
            let (hub, rx) = PeerHub::start(cfg.clone(), shutdown.child_token()).await?;
            tracing::info!(addr = %hub.local_addr(), "peer channel listening");
            (Some(hub), Some(rx))
        }
        None => {
            tracing::warn!("no peer channel: liveness comes from heartbeat Leases only");
            (None, None)
        }
    };

    let table = SharedTable::new(AnnouncementTable::new(settings.node.clone(), new_epoch()));
    let grpc_stop = CancellationToken::new();
    let grpc_task = match &settings.grpc_socket {
        Some(path) => {
            let listener_path = path.clone();
            let service = AnnouncerService::new(table.clone());
            let stop = grpc_stop.clone();
            // Bind errors surface at once: the socket is bound before this task is spawned.
            let bound = ferrolb_proto::server::bind_unix(&listener_path)?;
            drop(bound);
            Some(tokio::spawn(async move {
                if let Err(error) = serve_unix(&listener_path, service, stop.cancelled_owned()).await {
                    tracing::error!(%error, "gRPC server failed");
                }
            }))
        }
        None => None,
    };
    let grpc_tcp_task = match &settings.grpc_tcp {
        Some(tcp) => {
            // Bound here so that a taken port stops the announcer at startup.
            let listener = bind_tcp(tcp.listen)?;
            tracing::info!(addr = %tcp.listen, "serving the gRPC API on TCP with mutual TLS");
            let (service, tls, stop) =
                (AnnouncerService::new(table.clone()), tcp.tls.clone(), grpc_stop.clone());
            Some(tokio::spawn(async move {
                if let Err(error) = serve_tcp_listener(listener, tls, service, stop.cancelled_owned()).await {
                    tracing::error!(%error, "gRPC server on TCP failed");
                }
            }))
        }
        None => None,
    };
    let mut reports = table.subscribe_reports();
    let mut watchers = table.subscribe_watchers();
    let delegate =
        (settings.datapath == Mode::Delegate).then(|| DelegateTracker::new(settings.delegate_report_timeout));
    if delegate.is_some() {
        readiness.set_detail(delegation::agent_detail(0));
    }

    let elector = LeaderElector::spawn(
        client.clone(),
        &settings.namespace,
        &lease_names::node_heartbeat(&settings.node),
        settings.heartbeat.clone(),
    );
    // The decision loop wakes when this node starts or stops holding its heartbeat Lease, not on
    // every renewal (which only moves the claim's expiry: the loop wakes at that expiry itself when
    // it matters, see `round`).
    let mut leader_rx = elector.leading();
    let leadership = elector.leadership();

    tracing::info!(node = %settings.node, "waiting for the caches to list");
    tokio::select! {
        () = stores.wait_until_ready() => {}
        () = shutdown.cancelled() => {
            grpc_stop.cancel();
            return Ok(());
        }
    }
    tracing::info!("caches listed");
    listed_tx.send_replace(true);
    if settings.datapath == Mode::Netlink {
        remove_leftovers(netlink.as_ref(), &links, &stores).await;
    }

    let reporter = Reporter { controller: FIELD_MANAGER.into(), instance: Some(settings.node.clone()) };
    let (events_tx, mut events_rx) = mpsc::channel::<(Event, ObjectReference)>(EVENT_QUEUE);
    // Events go out a few at a time from one task, so a takeover of thousands of addresses costs a
    // bounded amount of memory and API concurrency. They are created directly rather than through
    // kube's Recorder, whose series cache keeps every Event for minutes (most of the announcer's
    // heap after a takeover of thousands of addresses); the loop already limits repeats.
    let events_client = client.clone();
    tokio::spawn(async move {
        let (client, reporter) = (&events_client, &reporter);
        let queued = futures::stream::poll_fn(move |cx| events_rx.poll_recv(cx));
        queued
            .for_each_concurrent(EVENT_CONCURRENCY, |(event, reference)| async move {
                if let Err(error) = publish_event(client, reporter, &event, &reference).await {
                    tracing::debug!(%error, "publishing an Event failed");
                }
            })
            .await;
    });
    let preflight_stop = CancellationToken::new();
    tokio::spawn(
        preflight::Preflight {
            client: client.clone(),
            node: settings.node.clone(),
            nodes: stores.nodes.clone(),
            policies: stores.policies.clone(),
            netlink: netlink.clone(),
            events: events_tx.clone(),
            interval: settings.preflight_interval,
        }
        .run(preflight_stop.clone()),
    );
    let (writes_tx, mut writes_rx) = mpsc::channel(1024);
    let (publish_tx, mut publish_rx) = mpsc::channel(4);
    let (policy_tx, mut policy_rx) = mpsc::channel(64);
    let mut me = Announcer {
        engine: Engine::new(settings.engine.clone()),
        write_slots: Arc::new(Semaphore::new(settings.write_concurrency.max(1))),
        settings,
        events_tx,
        client,
        stores,
        driver,
        links: BTreeMap::new(),
        table,
        hub,
        leadership: leadership.clone(),
        heartbeat_writes: elector.write_period(),
        writes_tx,
        in_flight: HashSet::new(),
        overlay: HashMap::new(),
        services: Snapshot::default(),
        endpoints: Snapshot::default(),
        leases: Snapshot::default(),
        blocked: HashMap::new(),
        notices: HashMap::new(),
        heartbeats: book,
        ready_since: BTreeMap::new(),
        published: None,
        publishing: false,
        publish_tx,
        answering: BTreeMap::new(),
        why_none: HashMap::new(),
        policy_writes: HashSet::new(),
        policy_tx,
        last_event: HashMap::new(),
        ready: false,
        shutting_down: false,
        api_since: None,
        delegate,
        readiness: readiness.clone(),
    };
    me.links = std::mem::take(&mut links);
    let peer_settle = me.settings.engine.liveness.peer_timeout;
    let mut wake: Option<Instant> = None;
    let mut shutdown_deadline: Option<Instant> = None;
    let mut next_round_at: Option<Instant> = None;
    let mut elector_gone = false;
    loop {
        // Nothing scheduled: a periodic round anyway, as a safety net against a missed wake-up.
        let sleep_until = wake.unwrap_or_else(|| Instant::now() + IDLE_ROUND);
        tokio::select! {
            () = notify.notified() => tracing::trace!("round: watch event"),
            Some(event) = link_rx.recv() => {
                match event {
                    LinkEvent::Changed(link) => { me.links.insert(link.index, link); }
                    LinkEvent::Removed { index, .. } => { me.links.remove(&index); }
                }
                me.driver.set_links(me.links.values().cloned());
            }
            Some(event) = recv_opt(&mut peer_rx) => me.peer_event(event),
            Some(done) = writes_rx.recv() => me.write_done(done),
            Some(policy) = policy_rx.recv() => { me.policy_writes.remove(&policy); }
            Some(result) = publish_rx.recv() => {
                me.publishing = false;
                match result {
                    Ok(text) => me.published = Some(text),
                    Err(error) => tracing::warn!(%error, "publishing this node's report failed; retrying"),
                }
            }
            Ok(report) = reports.recv() => me.agent_report(&report),
            Ok(()) = watchers.changed() => {
                let open = *watchers.borrow_and_update();
                me.watchers_changed(open);
            }
            changed = leader_rx.changed(), if !elector_gone => {
                if changed.is_err() {
                    // Only at shutdown; without this guard the closed channel would wake the
                    // loop at once, forever.
                    tracing::error!("the heartbeat elector stopped");
                    elector_gone = true;
                }
            }
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(sleep_until)) => tracing::trace!("round: timer"),
            () = shutdown.cancelled(), if !me.shutting_down => {
                tracing::info!("shutting down: handing over every address");
                me.shutting_down = true;
                shutdown_deadline = Some(Instant::now() + me.settings.shutdown_grace);
            }
        }
        // Coalesce whatever else is ready before deciding: one round for a burst, not one per
        // event (at 100 nodes a broadcast makes every peer heard and then silent at once).
        while let Ok(done) = writes_rx.try_recv() {
            me.write_done(done);
        }
        while let Some(Ok(event)) = peer_rx.as_mut().map(mpsc::Receiver::try_recv) {
            me.peer_event(event);
        }
        let now = Instant::now();
        if !me.ready {
            let heartbeat = me.leadership.borrow().leader;
            if heartbeat && now >= started + peer_settle {
                me.ready = true;
                readiness.set_ready(true);
                tracing::info!("ready: deciding and announcing");
            }
        }
        if me.shutting_down && !me.ready {
            break;
        }
        // Under a storm of events (thousands of Services changing at once) rounds run back to back;
        // resting as long as the last round took keeps the loop at most half of one core, and lets
        // the events of that time fold into the next round.
        if let Some(earliest) = next_round_at.filter(|t| *t > now) {
            tokio::time::sleep_until(tokio::time::Instant::from_std(earliest)).await;
        }
        let now = Instant::now();
        wake = if me.ready { me.round(now).await } else { Some(now + Duration::from_millis(100)) };
        let took = now.elapsed();
        metrics::histogram!(crate::metrics::ROUND_SECONDS).record(took.as_secs_f64());
        next_round_at = (took > Duration::from_millis(2)).then(|| Instant::now() + took);
        if me.shutting_down {
            let mine = me.leases_held_by_me();
            let deadline = shutdown_deadline.expect("set with shutting_down");
            if (mine == 0 && me.in_flight.is_empty()) || Instant::now() >= deadline {
                if mine > 0 {
                    tracing::warn!(leases = mine, "shutdown grace over; leaving the rest to expire");
                }
                break;
            }
        }
    }
    readiness.set_ready(false);
    preflight_stop.cancel();
    if let Some(task) = bgp_task {
        // It withdrew and said Cease at the shutdown signal, beside the L2 hand-over.
        let _ = task.await;
    }
    me.driver.clear().await;
    me.table.update(|t| t.reset(Vec::new()));
    elector.release().await;
    grpc_stop.cancel();
    for task in [grpc_task, grpc_tcp_task].into_iter().flatten() {
        let _ = task.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// `--datapath netlink`: a previous announcer on this node may have been killed with addresses still
/// on its interfaces, which the kernel would keep answering. Before deciding anything, remove every
/// host address (/32, /128) that lies in a pool or is a Service's load-balancer address: whatever
/// this node should hold is added back once it holds it.
async fn remove_leftovers(netlink: &RtNetlink, links: &BTreeMap<u32, Link>, stores: &Stores) {
    let pools: Vec<_> = stores.pools.state().iter().map(|p| convert::pool_input(p)).collect();
    let ingress: HashSet<IpAddr> = stores.services.read(|e| {
        e.entries()
            .values()
            .flat_map(|s| s.input.ingress.iter().chain(&s.input.external_ips).copied())
            .collect()
    });
    for link in links.values() {
        let Ok(addresses) = netlink.addresses(link.index).await else { continue };
        for (ip, prefix) in addresses {
            let host = prefix == if ip.is_ipv4() { 32 } else { 128 };
            let ours = ingress.contains(&ip) || pools.iter().any(|p| p.ranges.iter().any(|r| r.contains(ip)));
            if host && ours {
                tracing::info!(%ip, interface = %link.name, "removing an address left by a previous announcer");
                if let Err(error) = netlink.remove_address(link.index, ip).await {
                    tracing::warn!(%ip, interface = %link.name, %error, "removing a leftover address failed");
                }
            }
        }
    }
}

async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Announcer {
    fn me(&self) -> &str {
        &self.settings.node
    }

    fn peer_event(&mut self, event: PeerEvent) {
        match event {
            PeerEvent::Takeover(t) => {
                let name = lease_names::service_address(&t.namespace, &t.service, t.address);
                tracing::info!(lease = %name, by = %t.new_holder, "takeover notice: stop answering");
                self.notices.insert(name, (t.replaced_resource_version, Instant::now()));
            }
            // The hub logs these; here they only wake the loop, since a round reads the hub's
            // view of every peer.
            PeerEvent::Heard { .. } | PeerEvent::Silent { .. } => {}
            PeerEvent::Refused { node } => {
                tracing::info!(%node, "peer refuses connections: its announcer is gone")
            }
        }
    }

    /// The per-address Lease records: the watch cache with our confirmed writes on top.
    fn address_leases(&mut self) -> Arc<BTreeMap<String, LeaseRecord>> {
        let mut records = self
            .leases
            .get(&self.stores.leases, |e| e.iter().map(|(n, r)| (n.name.clone(), r.clone())).collect());
        // Still ahead of the cache only while the cache shows the version we wrote over.
        self.overlay.retain(|name, (pre_rv, _)| {
            records.get(name).and_then(|r| r.resource_version.as_ref()) == pre_rv.as_ref()
        });
        if !self.overlay.is_empty() {
            let records = Arc::make_mut(&mut records);
            for (name, (_, written)) in &self.overlay {
                records.insert(name.clone(), written.clone());
            }
        }
        records
    }

    fn leases_held_by_me(&mut self) -> usize {
        let me = self.me().to_owned();
        self.address_leases().values().filter(|r| r.holder() == Some(me.as_str())).count()
    }

    /// This node's own report.
    fn own_report(&self) -> Report {
        Report {
            state: AnnouncerState {
                ready: self.ready && !self.shutting_down,
                interfaces: self.links.values().map(Link::interface).collect(),
            },
            peer_port: self.hub.as_ref().map(|h| h.local_addr().port()),
        }
    }

    /// One decision round; returns when to decide again at the latest.
    async fn round(&mut self, now: Instant) -> Option<Instant> {
        let me = self.me().to_owned();
        let wall = Timestamp::now();
        let services =
            self.services.get(&self.stores.services, |e| e.values().map(|s| s.input.clone()).collect());
        let pools: Vec<_> = self.stores.pools.state().iter().map(|p| convert::pool_input(p)).collect();
        let policy_inputs: Vec<_> =
            self.stores.policies.state().iter().map(|p| convert::policy_input(p)).collect();
        let policies = Policies::compile(&policy_inputs);
        let endpoints = self.endpoints.get(&self.stores.slices, |e| {
            let mut endpoints = BTreeMap::new();
            for slice in e.values() {
                convert::add_endpoints(slice, &mut endpoints);
            }
            endpoints
        });
        let own = self.own_report();
        let node_objects = self.stores.nodes.state();
        let mut nodes = Vec::with_capacity(node_objects.len());
        let mut liveness = BTreeMap::new();
        let mut peers: BTreeMap<String, SocketAddr> = BTreeMap::new();
        for node in &node_objects {
            let input = convert::node_input(node);
            let name = input.name.clone();
            let report = if name == me {
                Some(own.clone())
            } else {
                let hb = self.heartbeats.get(&lease_names::node_heartbeat(&name));
                hb.and_then(|(_, report)| report).and_then(|v| Report::decode(&v))
            };
            if name != me {
                let port = report.as_ref().and_then(|r| r.peer_port);
                if let (Some(port), Some(ip)) = (port, convert::internal_ips(node).first()) {
                    peers.insert(name.clone(), SocketAddr::new(*ip, port));
                }
                liveness.insert(
                    name.clone(),
                    PeerLiveness {
                        heartbeat: self.heartbeats.get(&lease_names::node_heartbeat(&name)).map(|(o, _)| o),
                        heard_at: self.hub.as_ref().and_then(|h| h.heard_at(&name)),
                        refused_at: self.hub.as_ref().and_then(|h| h.refused_at(&name)),
                        api_down_since: self
                            .hub
                            .as_ref()
                            .and_then(|h| h.peer_api(&name))
                            .and_then(|(ok, since)| (!ok).then_some(since)),
                        quorum_silent_at: self.hub.as_ref().and_then(|h| h.quorum_silent_at(&name, now)),
                    },
                );
            }
            match report.as_ref().filter(|r| r.state.ready) {
                Some(_) => {
                    self.ready_since.entry(name.clone()).or_insert(now);
                }
                None => {
                    self.ready_since.remove(&name);
                }
            }
            nodes.push(NodeState { node: input, announcer: report.map(|r| r.state) });
        }
        let known: BTreeSet<&str> = nodes.iter().map(|n| n.node.name.as_str()).collect();
        self.ready_since.retain(|n, _| known.contains(n.as_str()));
        if let Some(hub) = &self.hub {
            hub.set_peers(peers);
        }
        // Node death is the peer channel's to detect; without it the heartbeat Lease is the only
        // signal and keeps its configured pace.
        let retry = self.settings.heartbeat.retry_period;
        self.heartbeat_writes.set(match &self.hub {
            Some(_) => heartbeat_write_period(nodes.iter().filter(|n| n.announcer.is_some()).count(), retry),
            None => retry,
        });

        let leases = self.address_leases();
        // A notice applies while this node's view of the Lease is the very version the takeover
        // replaced: any other version is either the taker's write (then the Lease no longer names
        // this node) or a later one, which the notice knew nothing about.
        self.notices.retain(|name, (replaced, at)| {
            let record = leases.get(name);
            now < *at + NOTICE_TTL
                && record.is_some_and(|r| {
                    r.holder() == Some(me.as_str()) && r.resource_version.as_ref() == Some(replaced)
                })
        });
        let notices: BTreeSet<String> = self.notices.keys().cloned().collect();
        let heartbeat_current = self.leadership.borrow().is_leader_at(now);
        match (heartbeat_current, self.api_since) {
            (true, None) => self.api_since = Some(now),
            (false, Some(_)) => self.api_since = None,
            _ => {}
        }
        // Peers heard now, with what they report about their API access.
        let peer_api: Vec<(bool, Instant)> = match &self.hub {
            Some(hub) => liveness
                .keys()
                .filter(|n| {
                    hub.heard_at(n).is_some_and(|t| now < t + self.settings.engine.liveness.peer_timeout)
                })
                .filter_map(|n| hub.peer_api(n))
                .collect(),
            None => Vec::new(),
        };
        let api_peer_at = api_peer_ready(peer_api, &self.settings.engine.liveness);
        if let Some(hub) = &self.hub {
            hub.set_api_ok(heartbeat_current);
        }
        // Until when a majority of the cluster vouches for this node (one peer in a two-node cluster).
        let acked_until =
            self.hub.as_ref().and_then(|hub| hub.acked_until(self.settings.engine.liveness.ack_timeout));
        let self_liveness = SelfLiveness {
            api_peer_ready: api_peer_at.is_some_and(|t| now >= t),
            heartbeat_current,
            peer_acked: acked_until.is_some_and(|t| now < t),
        };
        let view = View {
            policies: &policies,
            services: &services,
            pools: &pools,
            nodes: &nodes,
            endpoints: &endpoints,
            leases: &leases,
            liveness: &liveness,
            ready_since: &self.ready_since,
            me: self_liveness,
            takeover_notices: &notices,
            api_stable_since: self.api_since,
        };
        let plan = self.engine.decide(&view, now, wall);

        // Stop answering what we no longer hold before any write (hand-overs) goes out.
        self.driver.apply(&plan.answer).await;
        let mut wake = plan.wake_at;
        // Cut off from the API server: decide again when a peer could take over. (The lapse of this
        // node's own claim wakes the loop through the elector.)
        if let Some(at) = api_peer_at.filter(|t| !heartbeat_current && *t > now) {
            wake = Some(wake.map_or(at, |w| w.min(at)));
        }
        // Cut off from the API server and vouched for only by the peers' acknowledgements: decide
        // again when they lapse (acknowledgements do not wake the loop).
        if let Some(at) = acked_until.filter(|t| !heartbeat_current && *t > now) {
            wake = Some(wake.map_or(at, |w| w.min(at)));
        }
        for write in &plan.writes {
            if let Some(until) = self.start_write(write, &leases, now) {
                wake = Some(wake.map_or(until, |w| w.min(until)));
            }
        }
        self.collect_garbage(&plan, &leases, &nodes);
        if self.is_reporter(&nodes) {
            self.write_policy_status(&policies);
        }
        self.update_table(&plan, &leases);
        if let Some(at) = self.sync_delegate(now) {
            wake = Some(wake.map_or(at, |w| w.min(at)));
        }
        self.emit_events(&plan, &services, &nodes);
        self.publish_report(&own);
        metrics::gauge!(crate::metrics::ADDRESSES_ANSWERED).set(plan.answer.len() as f64);
        metrics::gauge!(crate::metrics::LEASES_HELD)
            .set(plan.addresses.iter().filter(|a| a.answering).count() as f64);
        wake
    }

    fn update_table(&mut self, plan: &Plan, leases: &BTreeMap<String, LeaseRecord>) {
        let mut by_ip: BTreeMap<IpAddr, TableEntry> = BTreeMap::new();
        for status in &plan.addresses {
            let Some(holder) = &status.holder else { continue };
            let key = &status.key;
            let name = lease_names::service_address(&key.service.namespace, &key.service.name, key.address);
            let since = leases
                .get(&name)
                .and_then(|r| r.acquire_time)
                .map_or(SystemTime::UNIX_EPOCH, SystemTime::from);
            let entry = by_ip
                .entry(key.address)
                .or_insert_with(|| TableEntry::new(key.address, holder.clone(), since));
            *entry = entry.clone().with_service(key.service.namespace.clone(), key.service.name.clone());
            for iface in &status.interfaces {
                *entry = entry.clone().with_interface(iface.clone());
            }
        }
        self.table.update(|t| t.reset(by_ip.into_values()));
    }
}
