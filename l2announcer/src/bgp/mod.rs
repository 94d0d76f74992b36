//! BGP mode (DESIGN.md §10, `docs/bgp.md`): this node's announce-only BGP sessions, beside L2.
//!
//! [`plan`] decides, from the watch caches alone, which peers this node talks to and which
//! prefixes it advertises to each; this module carries it out: one [`ferrolb_bgp::speaker`] task
//! per session, BFD sessions on one socket per local address ([`ferrolb_bgp::bfd_socket`]), MD5
//! passwords read from Secrets, and the status (`status`): a `BGPSessionState` per session and
//! the `ferrolb.io/InvalidSpec` conditions of the BGP objects, these written only by the node that
//! holds the announcers' status writer Lease (the gate in [`Inputs::writer`]).
//!
//! - Services, EndpointSlices, Nodes and pools are the L2 loop's caches (no second watch); the
//!   BGP objects have their own. A cluster without BGP objects costs three idle watches.
//! - A session restarts only when its settings change (peer, timers, password, BFD timers); a
//!   change of the advertised prefixes is an UPDATE on the running session.
//! - SIGTERM (the `shutdown` token): every session withdraws its prefixes and sends Cease before
//!   the process exits, so routers move traffic first; then BFD says AdminDown.

pub mod plan;
mod secrets;
mod status;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_api::bgp::{BFDProfile, BGPAdvertisement, BGPPeer};
use ferrolb_api::{LoadBalancerIPPool, ServedClasses, ServiceKey};
use ferrolb_bgp::bfd_socket::{BfdCommand, BfdPeer, BfdStatus, serve_bfd};
use ferrolb_bgp::fsm::State;
use ferrolb_bgp::speaker::{PeerStatus, PeerTransport, Routes, run_peer};
use ferrolb_runtime::writer::ClaimGate;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::reflector::Store;
use kube::{Api, Client};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::adapter::cache::{Projected, Snapshot, Wake};
use crate::adapter::convert::{self, ServiceEntry, SliceEndpoints};
use crate::adapter::watch;
use crate::candidates::LocalEndpoints;
use crate::policy::ServiceInput;
use plan::{Named, Plan, SessionConfig};
use secrets::Secrets;
use status::{Desired, StatusWriter};

/// How long a planned stop waits for the sessions to withdraw and say Cease.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// BGP mode's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub node: String,
    /// FerroLB's namespace: where MD5 password Secrets are read.
    pub namespace: String,
    pub classes: ServedClasses,
}

/// The L2 loop's caches that BGP mode reads, and the notify they wake it with.
pub struct Inputs {
    pub nodes: Store<Node>,
    pub services: Projected<ServiceEntry, Arc<ServiceKey>>,
    pub slices: Projected<SliceEndpoints>,
    pub pools: Store<LoadBalancerIPPool>,
    pub wake: Arc<Notify>,
    /// Turns true once the L2 side has seen its caches (these among them) listed. BGP mode waits
    /// for that instead of on the caches: a kube `Store` wakes only one of two tasks waiting for
    /// its first list (its `DelayedInit` keeps one waker), so a second waiter could wait forever.
    pub listed: watch::Receiver<bool>,
    /// This node's claim on the status writer Lease (`ferrolb-announcer-status`), which the L2 loop
    /// campaigns for once ready: the BGP objects' conditions are written only while it holds.
    pub writer: ClaimGate,
}

/// One running session.
struct Running {
    config: SessionConfig,
    password: Option<String>,
    routes: watch::Sender<Routes>,
    stop: watch::Sender<bool>,
    status: watch::Receiver<PeerStatus>,
    bfd: Option<(IpAddr, watch::Receiver<BfdStatus>)>,
    task: JoinHandle<()>,
}

/// The BFD sockets, one per local address, and the discriminators handed out.
#[derive(Default)]
struct Bfd {
    servers: BTreeMap<IpAddr, mpsc::Sender<BfdCommand>>,
    stop: Option<watch::Sender<bool>>,
    tasks: Vec<JoinHandle<()>>,
    next_discriminator: u32,
}

impl Bfd {
    /// Starts a session to `peer` from `local` (replacing one to the same peer).
    fn add(
        &mut self,
        local: IpAddr,
        peer: IpAddr,
        config: ferrolb_bgp::bfd::BfdConfig,
    ) -> watch::Receiver<BfdStatus> {
        let stop = self.stop.get_or_insert_with(|| watch::channel(false).0);
        let server = self.servers.entry(local).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(64);
            let stop = stop.subscribe();
            self.tasks.push(tokio::spawn(async move {
                if let Err(error) = serve_bfd(local, rx, stop).await {
                    tracing::warn!(%local, %error, "BFD cannot run on this address");
                }
            }));
            tx
        });
        self.next_discriminator = self.next_discriminator.wrapping_add(1).max(1);
        let discriminator = NonZeroU32::new(self.next_discriminator).unwrap_or(NonZeroU32::MIN);
        let (status, rx) = watch::channel(BfdStatus::INITIAL);
        let bfd_peer = BfdPeer { address: peer, config, discriminator, status };
        if server.try_send(BfdCommand::Add(bfd_peer)).is_err() {
            tracing::warn!(%peer, "BFD command queue full: the session runs without BFD");
        }
        rx
    }

    fn remove(&mut self, local: IpAddr, peer: IpAddr) {
        if let Some(server) = self.servers.get(&local) {
            let _ = server.try_send(BfdCommand::Remove(peer));
        }
    }

    async fn stop(self) {
        if let Some(stop) = self.stop {
            stop.send_replace(true);
        }
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        }
    }
}

/// Runs BGP mode until `shutdown`; then withdraws, says Cease and returns.
pub async fn run(client: Client, settings: Settings, inputs: Inputs, shutdown: CancellationToken) {
    let bgp_only = Wake::new([inputs.wake.clone()]);
    // The watch tasks end when this returns.
    let mut watches = JoinSet::new();
    let strip_peer = |p: &mut BGPPeer| p.metadata.managed_fields = None;
    let peers = watch(Api::all(client.clone()), bgp_only.clone(), "bgppeers", strip_peer, &mut watches);
    let strip_ad = |a: &mut BGPAdvertisement| a.metadata.managed_fields = None;
    let advertisements =
        watch(Api::all(client.clone()), bgp_only.clone(), "bgpadvertisements", strip_ad, &mut watches);
    let strip_profile = |p: &mut BFDProfile| p.metadata.managed_fields = None;
    let profiles = watch(Api::all(client.clone()), bgp_only, "bfdprofiles", strip_profile, &mut watches);
    let mut listed = inputs.listed.clone();
    tokio::select! {
        _ = listed.wait_for(|l| *l) => {}
        () = shutdown.cancelled() => return,
    }

    let mut secrets = Secrets::new(client.clone(), &settings.namespace, inputs.wake.clone());
    let writer = StatusWriter::spawn(
        client.clone(),
        settings.node.clone(),
        inputs.nodes.clone(),
        inputs.writer.clone(),
    );
    let mut claim = inputs.writer.clone();
    let mut running: BTreeMap<String, Running> = BTreeMap::new();
    let mut bfd = Bfd::default();
    let mut services: Snapshot<Vec<Arc<ServiceInput>>> = Snapshot::default();
    let mut endpoints: Snapshot<BTreeMap<ServiceKey, BTreeMap<String, LocalEndpoints>>> = Snapshot::default();
    let mut logged: Option<Plan> = None;
    loop {
        let plan = {
            let services = services.get(&inputs.services, |e| e.values().map(|s| s.input.clone()).collect());
            let endpoints = endpoints.get(&inputs.slices, |e| {
                let mut out = BTreeMap::new();
                for slice in e.values() {
                    convert::add_endpoints(slice, &mut out);
                }
                out
            });
            decide(&settings, &inputs, &peers, &advertisements, &profiles, &services, &endpoints)
        };
        if logged.as_ref().map(|p| p.withdrawn) != Some(plan.withdrawn) {
            match plan.withdrawn {
                Some(why) => tracing::info!(why, "BGP: this node advertises nothing"),
                None if logged.is_some() => tracing::info!("BGP: this node advertises again"),
                None => {}
            }
        }
        secrets.keep_only(plan.sessions.values().filter_map(|s| s.config.as_ref()?.password_secret.clone()));
        let mut desired = BTreeMap::new();
        for (name, session) in &plan.sessions {
            let mut error = session.error.clone();
            let want = session.config.as_ref().and_then(|config| {
                let password = match &config.password_secret {
                    None => Ok(None),
                    Some((secret, key)) => secrets.password(secret, key).map(Some),
                };
                match password {
                    Ok(password) => Some((config.clone(), password)),
                    Err(why) => {
                        error = Some(why);
                        None
                    }
                }
            });
            let routes: Routes =
                Arc::new(session.routes.iter().map(|(p, a)| (*p, Arc::new(a.clone()))).collect());
            match want {
                Some((config, password)) => {
                    let keep =
                        running.get(name).is_some_and(|r| r.config == config && r.password == password);
                    if !keep {
                        if let Some(old) = running.remove(name) {
                            tracing::info!(peer = %name, "BGP session settings changed: restarting it");
                            stop_session(old, &mut bfd);
                        }
                        running.insert(name.clone(), start_session(name, config, password, routes, &mut bfd));
                    } else if let Some(r) = running.get(name) {
                        r.routes.send_if_modified(|current| {
                            let changed = **current != *routes;
                            if changed {
                                *current = routes;
                            }
                            changed
                        });
                    }
                }
                None => {
                    if let Some(old) = running.remove(name) {
                        stop_session(old, &mut bfd);
                    }
                }
            }
            let r = running.get(name);
            desired.insert(
                name.clone(),
                Desired {
                    peer_address: session.peer_address.to_string(),
                    peer: r.map(|r| r.status.borrow().clone()),
                    bfd: r.and_then(|r| r.bfd.as_ref().map(|(_, b)| *b.borrow())),
                    error,
                },
            );
        }
        for name in running.keys().filter(|n| !plan.sessions.contains_key(*n)).cloned().collect::<Vec<_>>() {
            if let Some(old) = running.remove(&name) {
                tracing::info!(peer = %name, "BGP peer no longer selects this node: ending the session");
                stop_session(old, &mut bfd);
            }
        }
        let established = running.values().filter(|r| r.status.borrow().state == State::Established).count();
        metrics::gauge!(crate::metrics::BGP_SESSIONS_ESTABLISHED).set(established as f64);
        let sent: usize = running.values().map(|r| r.status.borrow().routes_sent).sum();
        metrics::gauge!(crate::metrics::BGP_PREFIXES_ADVERTISED).set(sent as f64);
        // Only the holder of the status writer Lease writes the BGP objects' conditions.
        let held = claim.holds_at(std::time::Instant::now());
        writer.publish(
            desired,
            held.then_some(&plan.problems),
            &peers.state(),
            &advertisements.state(),
            &profiles.state(),
        );
        logged = Some(plan);

        // Wake on a cache change, a session's or BFD's status change, or a Secret's change.
        let changes = running
            .values()
            .map(|r| {
                let mut s = r.status.clone();
                let mut b = r.bfd.as_ref().map(|(_, b)| b.clone());
                Box::pin(async move {
                    match b.as_mut() {
                        Some(b) => tokio::select! { _ = s.changed() => {}, _ = b.changed() => {} },
                        None => {
                            let _ = s.changed().await;
                        }
                    }
                }) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
            })
            .collect::<Vec<_>>();
        let any_change = async {
            if changes.is_empty() {
                std::future::pending::<()>().await;
            } else {
                futures::future::select_all(changes).await;
            }
        };
        tokio::select! {
            () = inputs.wake.notified() => {}
            () = any_change => {}
            // This node starts or stops holding the writer claim: its conditions, or none.
            () = claim.changed_from(held) => {}
            // A safety net against a missed wake-up, and the retry of status writes.
            () = tokio::time::sleep(Duration::from_secs(30)) => {}
            () = shutdown.cancelled() => break,
        }
        // Let a burst of watch events fold into one decision.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    tracing::info!(sessions = running.len(), "BGP: withdrawing and closing every session");
    let mut tasks = Vec::new();
    for (_, r) in std::mem::take(&mut running) {
        r.stop.send_replace(true);
        tasks.push(r.task);
    }
    let _ = tokio::time::timeout(STOP_GRACE, futures::future::join_all(tasks)).await;
    bfd.stop().await;
    writer.stop().await;
}

/// The plan from the caches.
fn decide(
    settings: &Settings,
    inputs: &Inputs,
    peers: &Store<BGPPeer>,
    advertisements: &Store<BGPAdvertisement>,
    profiles: &Store<BFDProfile>,
    services: &[Arc<ServiceInput>],
    endpoints: &BTreeMap<ServiceKey, BTreeMap<String, LocalEndpoints>>,
) -> Plan {
    let nodes = inputs.nodes.state();
    let own = nodes.iter().find(|n| n.metadata.name.as_deref() == Some(settings.node.as_str()));
    let node = own
        .map(|n| convert::node_input(n))
        .unwrap_or_else(|| crate::policy::NodeInput { name: settings.node.clone(), ..Default::default() });
    let node_ipv4 = own.and_then(|n| {
        convert::internal_ips(n).into_iter().find_map(|ip| match ip {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
    });
    let some_node_ready = nodes.iter().any(|n| !convert::node_input(n).not_ready);
    let named = |name: &Option<String>| name.clone().unwrap_or_default();
    let peers: Vec<_> =
        peers.state().iter().map(|p| Named { name: named(&p.metadata.name), spec: p.spec.clone() }).collect();
    let advertisements: Vec<_> = advertisements
        .state()
        .iter()
        .map(|a| Named { name: named(&a.metadata.name), spec: a.spec.clone() })
        .collect();
    let profiles: Vec<_> = profiles
        .state()
        .iter()
        .map(|p| Named { name: named(&p.metadata.name), spec: p.spec.clone() })
        .collect();
    let pools: Vec<_> = inputs.pools.state().iter().map(|p| convert::pool_input(p)).collect();
    plan::plan(&plan::Inputs {
        node: &node,
        node_ipv4,
        some_node_ready,
        peers: &peers,
        advertisements: &advertisements,
        bfd_profiles: &profiles,
        services,
        pools: &pools,
        endpoints,
        classes: &settings.classes,
    })
}

/// Starts one session (and its BFD session).
fn start_session(
    name: &str,
    config: SessionConfig,
    password: Option<String>,
    routes: Routes,
    bfd: &mut Bfd,
) -> Running {
    let bfd_rx = config.bfd.and_then(|timers| {
        let local = config.source.or_else(|| local_address_towards(config.address))?;
        Some((local, bfd.add(local, config.address.ip(), timers)))
    });
    if config.bfd.is_some() && bfd_rx.is_none() {
        tracing::warn!(peer = %name, "no local address towards the peer: BFD not started");
    }
    let transport = PeerTransport {
        source: config.source,
        md5_password: password.clone(),
        ttl: config.ttl,
        ..PeerTransport::new(config.address)
    };
    let (routes_tx, routes_rx) = watch::channel(routes);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (status_tx, status_rx) = watch::channel(PeerStatus::INITIAL);
    let status_on_error = status_tx.clone();
    let fsm = config.fsm.clone();
    let peer = name.to_owned();
    let bfd_status = bfd_rx.as_ref().map(|(_, rx)| rx.clone());
    let task = tokio::spawn(async move {
        if let Err(error) = run_peer(fsm, transport, routes_rx, stop_rx, status_tx, bfd_status).await {
            tracing::warn!(%peer, %error, "BGP session not started");
            status_on_error.send_modify(|s| s.last_error = Some(error.to_string()));
        }
    });
    tracing::info!(peer = %name, address = %config.address, bfd = config.bfd.is_some(), "BGP session starting");
    Running { config, password, routes: routes_tx, stop: stop_tx, status: status_rx, bfd: bfd_rx, task }
}

/// Stops a session: it withdraws and says Cease in its own time.
fn stop_session(r: Running, bfd: &mut Bfd) {
    r.stop.send_replace(true);
    if let Some((local, _)) = &r.bfd {
        bfd.remove(*local, r.config.address.ip());
    }
}

/// The address the kernel would send from towards `peer` (a UDP socket's connect sends nothing).
fn local_address_towards(peer: SocketAddr) -> Option<IpAddr> {
    let any: SocketAddr = if peer.is_ipv4() { "0.0.0.0:0".parse().ok()? } else { "[::]:0".parse().ok()? };
    let socket = std::net::UdpSocket::bind(any).ok()?;
    socket.connect(peer).ok()?;
    Some(socket.local_addr().ok()?.ip())
}
