//! The announcer's wiring: the caches, the datapath, the peer channel, the gRPC servers, the
//! heartbeat elector, the Event publisher and preflight, started in that order before the decision
//! loop, and stopped after it.

use tokio::task::JoinHandle;

use super::*;

/// What wakes the decision loop, besides the timer and the shutdown signal.
pub(super) struct Inbox {
    /// A watch cache changed.
    pub(super) notify: Arc<Notify>,
    pub(super) links: mpsc::Receiver<LinkEvent>,
    pub(super) peers: Option<mpsc::Receiver<PeerEvent>>,
    pub(super) writes: mpsc::Receiver<WriteDone>,
    /// This node starts or stops holding the status writer Lease (once ready and campaigning).
    pub(super) status_leading: Option<tokio::sync::watch::Receiver<bool>>,
    pub(super) published: mpsc::Receiver<Result<String, String>>,
    pub(super) reports: tokio::sync::broadcast::Receiver<ferrolb_proto::ProgrammingReport>,
    pub(super) watchers: tokio::sync::watch::Receiver<usize>,
    /// This node starts or stops holding its heartbeat Lease.
    pub(super) leading: tokio::sync::watch::Receiver<bool>,
    /// The elector stopped (only at shutdown): its channel no longer wakes the loop.
    pub(super) elector_gone: bool,
}

/// What runs beside the loop, stopped after it.
pub(super) struct Tasks {
    bgp: Option<JoinHandle<()>>,
    grpc: Vec<JoinHandle<()>>,
    grpc_stop: CancellationToken,
    preflight_stop: CancellationToken,
    elector: LeaderElector,
}

/// Starts everything the loop needs, for an announcer started at `started`; `None` when
/// `shutdown` came before the caches listed.
pub(super) async fn start<N: Netlink + 'static>(
    client: Client,
    settings: Settings,
    netlink: Arc<N>,
    readiness: Readiness,
    shutdown: &CancellationToken,
    started: Instant,
) -> Result<Option<(Announcer<N>, Inbox, Tasks)>, Error> {
    let notify = Arc::new(Notify::new());
    let bgp_notify = Arc::new(Notify::new());
    let book = HeartbeatBook::default();
    let stores = Stores::start(&client, &settings.namespace, &notify, &bgp_notify, &book);
    let (listed_tx, listed_rx) = tokio::sync::watch::channel(false);
    let cluster = cluster_status::ClusterWriter::new();
    let bgp = settings.bgp.clone().map(|bgp| {
        let inputs = crate::bgp::Inputs {
            nodes: stores.nodes.clone(),
            services: stores.services.clone(),
            slices: stores.slices.clone(),
            pools: stores.pools.clone(),
            wake: bgp_notify.clone(),
            listed: listed_rx,
            writer: cluster.gate(),
        };
        tokio::spawn(crate::bgp::run(client.clone(), bgp, inputs, shutdown.child_token()))
    });

    let link_rx = netlink.watch_links()?;
    let links: BTreeMap<u32, Link> = netlink.links().await?.into_iter().map(|l| (l.index, l)).collect();
    let mut driver = Driver::new(settings.datapath, netlink.clone(), settings.schedule.clone())
        .with_address_lifetime(settings.netlink_address_lifetime);
    driver.set_links(links.values().cloned());
    let (hub, peer_rx) = start_peer(&settings, shutdown).await?;

    let table = SharedTable::new(AnnouncementTable::new(settings.node.clone(), new_epoch()));
    let grpc_stop = CancellationToken::new();
    let grpc = start_grpc(&settings, &table, &grpc_stop)?;
    let reports = table.subscribe_reports();
    let watchers = table.subscribe_watchers();
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
    let leading = elector.leading();

    tracing::info!(node = %settings.node, "waiting for the caches to list");
    tokio::select! {
        () = stores.wait_until_ready() => {}
        () = shutdown.cancelled() => {
            grpc_stop.cancel();
            return Ok(None);
        }
    }
    tracing::info!("caches listed");
    listed_tx.send_replace(true);
    if settings.datapath == Mode::Netlink {
        remove_leftovers(netlink.as_ref(), &links, &stores).await;
    }

    let events_tx = spawn_event_publisher(&client, &settings.node);
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
    let (writes_tx, writes_rx) = mpsc::channel(1024);
    let (publish_tx, publish_rx) = mpsc::channel(4);
    let core = Core::new(
        CoreConfig {
            engine: settings.engine.clone(),
            event_interval: settings.event_interval,
            heartbeat_retry: settings.heartbeat.retry_period,
            peer_channel: hub.is_some(),
        },
        started,
    );
    let announcer = Announcer {
        core,
        write_slots: Arc::new(Semaphore::new(settings.write_concurrency.max(1))),
        settings,
        events_tx,
        client,
        stores,
        driver,
        links,
        table,
        hub,
        leadership: elector.leadership(),
        heartbeat_writes: elector.write_period(),
        writes_tx,
        services: Snapshot::default(),
        endpoints: Snapshot::default(),
        heartbeats: book,
        publish_tx,
        cluster,
        delegate,
        readiness,
    };
    let inbox = Inbox {
        notify,
        links: link_rx,
        peers: peer_rx,
        writes: writes_rx,
        status_leading: None,
        published: publish_rx,
        reports,
        watchers,
        leading,
        elector_gone: false,
    };
    let tasks = Tasks { bgp, grpc, grpc_stop, preflight_stop, elector };
    Ok(Some((announcer, inbox, tasks)))
}

impl Tasks {
    /// After the loop: not ready, BGP and preflight stopped, the datapath cleared, the status writer
    /// and heartbeat Leases released, the gRPC servers stopped.
    pub(super) async fn stop<N: Netlink + 'static>(self, announcer: &mut Announcer<N>) {
        announcer.readiness.set_ready(false);
        self.preflight_stop.cancel();
        if let Some(task) = self.bgp {
            // It withdrew and said Cease at the shutdown signal, beside the L2 hand-over.
            let _ = task.await;
        }
        announcer.driver.clear().await;
        announcer.table.update(|t| t.reset(Vec::new()));
        announcer.cluster.release().await;
        self.elector.release().await;
        self.grpc_stop.cancel();
        for task in self.grpc {
            let _ = task.await;
        }
    }
}

async fn start_peer(
    settings: &Settings,
    shutdown: &CancellationToken,
) -> Result<(Option<PeerHub>, Option<mpsc::Receiver<PeerEvent>>), Error> {
    match &settings.peer {
        Some(cfg) => {
            let (hub, rx) = PeerHub::start(cfg.clone(), shutdown.child_token()).await?;
            tracing::info!(addr = %hub.local_addr(), "peer channel listening");
            Ok((Some(hub), Some(rx)))
        }
        None => {
            tracing::warn!("no peer channel: liveness comes from heartbeat Leases only");
            Ok((None, None))
        }
    }
}

/// Serves the gRPC API on the Unix socket and on TCP, as configured. Bind errors surface at once:
/// each listener is bound before its task is spawned, so a taken socket or port stops the announcer
/// at startup.
fn start_grpc(
    settings: &Settings,
    table: &SharedTable,
    stop: &CancellationToken,
) -> Result<Vec<JoinHandle<()>>, Error> {
    let mut tasks = Vec::new();
    if let Some(path) = &settings.grpc_socket {
        let listener_path = path.clone();
        let service = AnnouncerService::new(table.clone());
        let stop = stop.clone();
        let bound = ferrolb_proto::server::bind_unix(&listener_path)?;
        drop(bound);
        tasks.push(tokio::spawn(async move {
            if let Err(error) = serve_unix(&listener_path, service, stop.cancelled_owned()).await {
                tracing::error!(%error, "gRPC server failed");
            }
        }));
    }
    if let Some(tcp) = &settings.grpc_tcp {
        let listener = bind_tcp(tcp.listen)?;
        tracing::info!(addr = %tcp.listen, "serving the gRPC API on TCP with mutual TLS");
        let (service, tls, stop) = (AnnouncerService::new(table.clone()), tcp.tls.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(error) = serve_tcp_listener(listener, tls, service, stop.cancelled_owned()).await {
                tracing::error!(%error, "gRPC server on TCP failed");
            }
        }));
    }
    Ok(tasks)
}

/// Events go out a few at a time from one task, so a takeover of thousands of addresses costs a
/// bounded amount of memory and API concurrency. They are created directly rather than through
/// kube's Recorder, whose series cache keeps every Event for minutes (most of the announcer's heap
/// after a takeover of thousands of addresses); the core already limits repeats.
fn spawn_event_publisher(client: &Client, node: &str) -> mpsc::Sender<(Event, ObjectReference)> {
    let reporter = Reporter { controller: FIELD_MANAGER.into(), instance: Some(node.to_owned()) };
    let (events_tx, mut events_rx) = mpsc::channel::<(Event, ObjectReference)>(EVENT_QUEUE);
    let client = client.clone();
    tokio::spawn(async move {
        let (client, reporter) = (&client, &reporter);
        let queued = futures::stream::poll_fn(move |cx| events_rx.poll_recv(cx));
        queued
            .for_each_concurrent(EVENT_CONCURRENCY, |(event, reference)| async move {
                if let Err(error) = publish_event(client, reporter, &event, &reference).await {
                    tracing::debug!(%error, "publishing an Event failed");
                }
            })
            .await;
    });
    events_tx
}

/// `--datapath netlink`: a previous announcer on this node may have been killed with addresses still
/// on its interfaces, which the kernel would keep answering. Before deciding anything, remove every
/// host address (/32, /128) that lies in a pool or is a Service's load-balancer address: whatever
/// this node should hold is added back once it holds it.
async fn remove_leftovers(netlink: &impl Netlink, links: &BTreeMap<u32, Link>, stores: &Stores) {
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
