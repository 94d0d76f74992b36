//! The announcer's adapter: watches in, one serial decision loop around the pure [`Core`], Lease
//! writes, the datapath, the gRPC table and Events out. It decides nothing: each round it reads its
//! inputs (`inputs`), asks [`Core::round`] for [`Actions`] and carries them out.
//!
//! - Watches (kube reflectors) on Nodes, Services, EndpointSlices, L2AnnouncementPolicies, pools and
//!   the Leases of FerroLB's namespace; link changes from netlink; peer heartbeats and takeover
//!   notices from the peer channel. Any of them wakes the loop; rounds run back to back at most (a
//!   burst of events costs one round; see [`crate::lifecycle`]).
//! - The node heartbeat Lease `ferrolb-node-<node>` is renewed by [`LeaderElector`] (this node is its
//!   only candidate); this node's report (ready, interfaces, peer port) rides on it as an annotation,
//!   patched only when it changes.
//! - A Lease write is confirmed by the API server's answer, which goes back to the core at once
//!   ([`crate::lease_writes`]): a takeover answers ARP one round trip after the write, not one watch
//!   delay later.
//! - Nothing is decided before this node is ready ([`crate::lifecycle`]): caches listed, links
//!   listed, its heartbeat Lease held once, and the peer channel given `peer_timeout` to hear the
//!   others. After that, an API outage changes nothing by itself: holders keep answering (see
//!   `lease_state`).
//! - SIGTERM (the `shutdown` token): this node reports itself not ready, hands every Lease it holds to
//!   its successor (stopping to answer just before each write), waits until none names it (bounded by
//!   `shutdown_grace`), then stops the datapath and releases its heartbeat Lease.
//! - What one node writes for the cluster (the policies' and, in BGP mode, the BGP objects'
//!   conditions, the Warnings about addresses nobody can announce, the deletes of address Leases
//!   nobody holds) is written only by the holder of the status writer Lease (`cluster_status`).
//! - The watch tasks end when [`run`] returns (they belong to the caches it drops).
//! - Preflight (`preflight`) runs beside the loop once the caches are listed, every
//!   `preflight_interval`, and posts its findings as Warning Events on this node's Node object.
//!
//! The loop's parts, each an `impl Announcer` or functions of its own: the wiring (`startup`), the
//! caches (`stores`), reading a round's inputs (`inputs`), Lease writes (`lease_write`), Events
//! (`events`), what one node writes for the cluster (`cluster_status`), the announcement table
//! (`table`), delegate mode (`delegate_sync`).

pub mod cache;
mod cluster_status;
pub mod convert;
mod delegate_sync;
mod events;
mod inputs;
mod lease_write;
mod preflight;
mod startup;
mod stores;
mod table;

/// The `ferrolb.io/InvalidSpec` rule, pure, in the core; also here, where the BGP status writer finds it.
pub use crate::spec_condition;

use std::collections::{BTreeMap, HashSet};
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
use crate::datapath::{AnnounceSchedule, Driver, Link, LinkEvent, Netlink};
use crate::delegate::{self as delegation, DelegateTracker};
use crate::engine::{EngineConfig, LeaseWrite};
use crate::lease_state::StandDownReason;
use crate::lease_writes::Answer;
use crate::lifecycle::{Lifecycle, Stop};
use crate::peer::{PeerConfig, PeerEvent, PeerHub, Takeover};
use crate::policy::{Policies, ServiceInput, ServiceKey};
use crate::report::Report;
use crate::round::{Actions, Core, CoreConfig, RoundInputs};

pub use crate::datapath::Mode;
use cache::Snapshot;
use events::publish_event;
pub(crate) use stores::watch;
use stores::{HeartbeatBook, Stores};

/// The field manager / Event reporter of the announcer.
pub const FIELD_MANAGER: &str = "ferrolb-announcer";

/// Node heartbeat Lease names start with this.
const HEARTBEAT_LEASE_PREFIX: &str = "ferrolb-node-";

/// Per-address Lease names start with this.
const ADDRESS_LEASE_PREFIX: &str = "ferrolb-l2-";

/// Events queued for publishing at most.
const EVENT_QUEUE: usize = 1024;

/// Events published at once.
const EVENT_CONCURRENCY: usize = 4;

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

/// Everything the loop keeps between rounds, with the datapath over the netlink facade `N`.
struct Announcer<N> {
    settings: Settings,
    client: Client,
    stores: Stores,
    /// Every decision and what it remembers between rounds.
    core: Core,
    driver: Driver<N>,
    links: BTreeMap<u32, Link>,
    table: SharedTable,
    hub: Option<PeerHub>,
    leadership: tokio::sync::watch::Receiver<ferrolb_runtime::lease::Leadership>,
    /// Sets how often the heartbeat Lease is written ([`crate::liveness::heartbeat_write_period`]).
    heartbeat_writes: WritePeriod,
    writes_tx: mpsc::Sender<WriteDone>,
    write_slots: Arc<Semaphore>,
    /// The caches' values as the rounds read them, copied again only after a change.
    services: Snapshot<Vec<Arc<ServiceInput>>>,
    endpoints: Snapshot<BTreeMap<ServiceKey, BTreeMap<String, LocalEndpoints>>>,
    heartbeats: HeartbeatBook,
    publish_tx: mpsc::Sender<Result<String, String>>,
    /// Events waiting for the publisher task (bounded: past it, Events are dropped and counted).
    events_tx: mpsc::Sender<(Event, ObjectReference)>,
    /// The cluster's status writer, on this node.
    cluster: cluster_status::ClusterWriter,
    /// `--datapath delegate`: the CNI agent's programming of what this node answers for.
    delegate: Option<DelegateTracker>,
    readiness: Readiness,
}

/// Runs the announcer until `shutdown` is cancelled and the hand-over is done. `netlink` is the
/// node's datapath: links, link changes and, with `--datapath netlink`, its addresses (the binary
/// passes [`crate::datapath::RtNetlink`]).
pub async fn run<N: Netlink + 'static>(
    client: Client,
    settings: Settings,
    netlink: Arc<N>,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let started = Instant::now();
    let Some((mut announcer, mut inbox, tasks)) =
        startup::start(client, settings, netlink, readiness, &shutdown, started).await?
    else {
        return Ok(());
    };
    let mut wake: Option<Instant> = None;
    loop {
        announcer.wait(&mut inbox, Lifecycle::sleep_until(wake, Instant::now()), &shutdown).await;
        // Coalesce whatever else is ready before deciding: one round for a burst, not one per
        // event (at 100 nodes a broadcast makes every peer heard and then silent at once).
        while let Ok(done) = inbox.writes.try_recv() {
            announcer.write_done(done);
        }
        while let Some(Ok(event)) = inbox.peers.as_mut().map(mpsc::Receiver::try_recv) {
            announcer.peer_event(event);
        }
        let heartbeat = announcer.leadership.borrow().leader;
        if announcer.core.lifecycle_mut().check_ready(heartbeat, Instant::now()) {
            announcer.readiness.set_ready(true);
            tracing::info!("ready: deciding and announcing");
            // Only a ready node campaigns: a node still starting must not hold up the writes.
            let (client, namespace) = (announcer.client.clone(), announcer.settings.namespace.clone());
            let election = crate::policy_status::election(&announcer.settings.heartbeat);
            inbox.status_leading = Some(announcer.cluster.start(&client, &namespace, election));
        }
        if announcer.core.lifecycle().stopped_unready() {
            break;
        }
        if let Some(rest) = announcer.core.lifecycle().rest_until(Instant::now()) {
            tokio::time::sleep_until(tokio::time::Instant::from_std(rest)).await;
        }
        let now = Instant::now();
        wake = if announcer.core.lifecycle().is_ready() {
            announcer.round(now).await
        } else {
            Some(Lifecycle::not_ready_wake(now))
        };
        let took = now.elapsed();
        metrics::histogram!(crate::metrics::ROUND_SECONDS).record(took.as_secs_f64());
        announcer.core.lifecycle_mut().round_took(took, Instant::now());
        if announcer.core.lifecycle().is_stopping() && announcer.handed_over() {
            break;
        }
    }
    tasks.stop(&mut announcer).await;
    tracing::info!("stopped");
    Ok(())
}

async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Resolves when the optional receiver's value changes (never without one, or once it closed).
async fn changed_opt(rx: &mut Option<tokio::sync::watch::Receiver<bool>>) -> Result<(), ()> {
    if let Some(r) = rx
        && r.changed().await.is_ok()
    {
        return Ok(());
    }
    std::future::pending().await
}

impl<N: Netlink + 'static> Announcer<N> {
    fn this_node(&self) -> &str {
        &self.settings.node
    }

    /// Waits until something wakes the loop (or `until`), and takes it in.
    async fn wait(&mut self, inbox: &mut startup::Inbox, until: Instant, shutdown: &CancellationToken) {
        tokio::select! {
            () = inbox.notify.notified() => tracing::trace!("round: watch event"),
            Some(event) = inbox.links.recv() => {
                match event {
                    LinkEvent::Changed(link) => { self.links.insert(link.index, link); }
                    LinkEvent::Removed { index, .. } => { self.links.remove(&index); }
                }
                self.driver.set_links(self.links.values().cloned());
            }
            Some(event) = recv_opt(&mut inbox.peers) => self.peer_event(event),
            Some(done) = inbox.writes.recv() => self.write_done(done),
            Ok(()) = changed_opt(&mut inbox.status_leading) => tracing::debug!("status writer Lease: holder changed"),
            Some(result) = inbox.published.recv() => match result {
                Ok(text) => self.core.report_published(Some(text)),
                Err(error) => {
                    tracing::warn!(%error, "publishing this node's report failed; retrying");
                    self.core.report_published(None);
                }
            },
            Ok(report) = inbox.reports.recv() => self.agent_report(&report),
            Ok(()) = inbox.watchers.changed() => {
                let open = *inbox.watchers.borrow_and_update();
                self.watchers_changed(open);
            }
            changed = inbox.leading.changed(), if !inbox.elector_gone => {
                if changed.is_err() {
                    // Only at shutdown; without this guard the closed channel would wake the
                    // loop at once, forever.
                    tracing::error!("the heartbeat elector stopped");
                    inbox.elector_gone = true;
                }
            }
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(until)) => tracing::trace!("round: timer"),
            () = shutdown.cancelled(), if !self.core.lifecycle().is_stopping() => {
                tracing::info!("shutting down: handing over every address");
                self.core.lifecycle_mut().stop(Instant::now(), self.settings.shutdown_grace);
            }
        }
    }

    fn peer_event(&mut self, event: PeerEvent) {
        match event {
            PeerEvent::Takeover(t) => {
                let name = lease_names::service_address(&t.namespace, &t.service, t.address);
                tracing::info!(lease = %name, by = %t.new_holder, "takeover notice: stop answering");
                self.core.takeover_notice(name, t.replaced_resource_version, Instant::now());
            }
            // The hub logs these; here they only wake the loop, since a round reads the hub's
            // view of every peer.
            PeerEvent::Heard { .. } | PeerEvent::Silent { .. } => {}
            PeerEvent::Refused { node } => {
                tracing::info!(%node, "peer refuses connections: its announcer is gone")
            }
        }
    }

    /// The per-address Lease records of the watch cache, shared with it, not copied (the core lays
    /// its confirmed writes on top). Held only for one round: the cache copies what a round still
    /// holds when the watch changes it.
    fn cached_leases(&self) -> Arc<BTreeMap<String, LeaseRecord>> {
        self.stores.leases.read(cache::Entries::shared)
    }

    /// Stopping: whether every Lease is handed over, or the grace period is over.
    fn handed_over(&mut self) -> bool {
        let leases = self.cached_leases();
        match self.core.stop_now(leases, Instant::now()) {
            Stop::No => false,
            Stop::Done => true,
            Stop::GraceOver(held) => {
                tracing::warn!(leases = held, "shutdown grace over; leaving the rest to expire");
                true
            }
        }
    }

    /// One decision round: read, decide, carry out; returns when to decide again at the latest.
    async fn round(&mut self, now: Instant) -> Option<Instant> {
        let mut read = self.read(now);
        if let Some(hub) = &self.hub {
            hub.set_peers(std::mem::take(&mut read.peers));
            hub.set_api_ok(read.heartbeat_current);
        }
        let leases = self.cached_leases();
        let actions = self.core.round(&read.inputs(), leases, now, Timestamp::now());
        self.heartbeat_writes.set(actions.heartbeat_period);
        self.carry_out(&actions, &read, now).await
    }

    /// Carries out one round's actions, in order: stop answering what this node no longer holds
    /// before any write (hand-overs) goes out.
    async fn carry_out(&mut self, actions: &Actions, read: &inputs::Read, now: Instant) -> Option<Instant> {
        self.driver.apply(&actions.answer).await;
        for write in &actions.writes {
            self.start_write(write);
        }
        for (name, rv) in &actions.deletes {
            self.start_delete(name.clone(), rv.clone());
        }
        self.write_policy_status(&read.policy_objects, &read.policies);
        self.update_table(&actions.addresses, &actions.leases);
        let delegate_at = self.sync_delegate(now);
        for note in &actions.events {
            self.send_event(note);
        }
        if let Some(text) = &actions.publish {
            self.publish_report(text.clone());
        }
        metrics::gauge!(crate::metrics::ADDRESSES_ANSWERED).set(actions.answer.len() as f64);
        let this_node = Some(self.this_node());
        metrics::gauge!(crate::metrics::LEASES_HELD)
            .set(actions.leases.values().filter(|r| r.holder() == this_node).count() as f64);
        for reason in StandDownReason::ALL {
            let stood_down = actions.addresses.iter().filter(|a| a.stood_down == Some(reason)).count();
            metrics::gauge!(crate::metrics::ADDRESSES_STOOD_DOWN, "reason" => reason.label())
                .set(stood_down as f64);
        }
        crate::observe::earliest([actions.wake_at, delegate_at])
    }
}
