//! The Kubernetes adapter around the pure core: watches in, one serial decision loop, status
//! patches and Events out with bounded concurrency, only while this replica leads.
//!
//! - Pools and Services are watched from start on every replica (so a standby is warm), but the
//!   core only exists while this replica is leader *and* both watches have listed everything.
//! - On becoming leader it lists pools and Services afresh (a consistent read, so the previous
//!   leader's last writes are seen) and rebuilds the core from them with [`Ipam::resync`], which
//!   imports every current ingress address before allocating anything: a failover or a restart
//!   moves no address.
//! - Writes are server-side applies to `/status` with the `ferrolb-ipam` field manager (FerroLB
//!   owns its ingress list and its condition, nothing else), plus a merge patch for the
//!   `ferrolb.io/allocated-from-pool` annotation when it changes. One write per object at a time;
//!   a newer desired state for an object being written waits and replaces any queued one.

mod contested;
mod convert;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use ferrolb_api::LoadBalancerIPPool;
use ferrolb_api::names::events as event_reasons;
use ferrolb_runtime::api_error::ApiFailure;
pub use ferrolb_runtime::lease::Leadership;
use ferrolb_runtime::writer::ClaimGate;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::events::Reporter;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use convert::CachedService;
pub use convert::{pool_input, service_input, service_key};

use crate::contest::{ContestConfig, Contests, Hold};
use crate::state::{Changes, EventType, Ipam, ServiceChange};
use crate::{Config, ServiceKey};

/// Delay before retrying a write that got 409 Conflict.
const CONFLICT_RETRY: Duration = Duration::from_millis(100);

/// The field manager of every FerroLB IPAM write.
pub const FIELD_MANAGER: &str = "ferrolb-ipam";

/// Adapter settings (the binary fills them from flags).
#[derive(Debug, Clone)]
pub struct Settings {
    pub ipam: Config,
    /// Status writes in flight at once.
    pub write_concurrency: usize,
    /// This replica's identity, for Events' reporting instance.
    pub instance: String,
    /// Least time between two Events of one reason on one Service.
    pub event_interval: Duration,
    /// How long a starting replica waits to learn whether it leads before it lists (see `run`).
    pub leader_wait: Duration,
    /// When to stop fighting another controller over a Service's status ([`crate::contest`]).
    pub contest: ContestConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            ipam: Config::default(),
            write_concurrency: 32,
            instance: "ferrolb-ipam".into(),
            event_interval: Duration::from_secs(10),
            leader_wait: Duration::from_secs(2),
            contest: ContestConfig::default(),
        }
    }
}

/// Errors that stop the controller (everything else is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the {0} watch ended")]
    WatchEnded(&'static str),
}

enum Input {
    Pool(Box<watcher::Event<LoadBalancerIPPool>>),
    Service(Box<watcher::Event<Service>>),
}

/// Identifies one object's pending write, so writes to one object never overlap.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum WorkKey {
    Service(ServiceKey),
    Pool(String),
    Event(u64),
}

enum Work {
    Service { key: ServiceKey, status: Value, annotation: Option<Value> },
    Pool { name: String, status: Value },
    Event { reference: Box<ObjectReference>, event: Box<kube::runtime::events::Event> },
}

/// A write's result; for a Service status write that set the ingress, what it set.
type Done = (WorkKey, Result<Option<Written>, WriteError>);

/// Why a write did not happen.
#[derive(Debug)]
enum WriteError {
    /// The API server refused it or could not be reached.
    Api(kube::Error),
    /// This replica's Lease claim had lapsed when the request was due: it was not sent.
    ClaimLapsed,
}

impl From<kube::Error> for WriteError {
    fn from(e: kube::Error) -> Self {
        Self::Api(e)
    }
}

/// The ingress FerroLB last wrote to a Service, and the resourceVersion that write produced: a later
/// version that shows other addresses was written by someone else.
#[derive(Debug, Clone)]
struct Written {
    ips: std::collections::BTreeSet<String>,
    resource_version: Option<u64>,
}

/// Collects a full listing during a (re-)list, then replaces the cache with it.
struct Cache<K, V> {
    objects: BTreeMap<K, V>,
    relisting: Option<BTreeMap<K, V>>,
    synced: bool,
    /// When the listing the cache holds was requested.
    list_started: Option<Instant>,
}

impl<K, V> Default for Cache<K, V> {
    fn default() -> Self {
        Self { objects: BTreeMap::new(), relisting: None, synced: false, list_started: None }
    }
}

impl<K: Ord, V> Cache<K, V> {
    fn start_list(&mut self) {
        self.relisting = Some(BTreeMap::new());
        self.list_started = Some(Instant::now());
    }

    /// Whether the cache's listing was requested after `t` (so it shows every write made before).
    fn listed_after(&self, t: Option<Instant>) -> bool {
        matches!((self.list_started, t), (Some(l), Some(t)) if l >= t)
    }
}

fn pool_key(p: &LoadBalancerIPPool) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

struct Controller {
    client: kube::Client,
    settings: Settings,
    pools: Cache<String, LoadBalancerIPPool>,
    /// Services as the projections the controller reads, not whole objects.
    services: Cache<ServiceKey, CachedService>,
    ipam: Option<Ipam>,
    leader: bool,
    /// When this replica last became leader.
    leader_since: Option<Instant>,
    /// The Lease claim itself, which every write checks just before it is sent (the same gate as
    /// the announcer's status writer: see `ferrolb_runtime::writer`).
    claim: ClaimGate,
    queue: VecDeque<WorkKey>,
    pending: HashMap<WorkKey, Work>,
    in_flight: HashSet<WorkKey>,
    /// What each in-flight Service write sends, to drop an identical one emitted meanwhile.
    in_flight_work: HashMap<WorkKey, Work>,
    writes: FuturesUnordered<BoxFuture<'static, Done>>,
    retry_at: Option<Instant>,
    retry_backoff: Duration,
    /// Objects whose last write failed: re-emitted by the core when the retry timer fires.
    failed: HashSet<WorkKey>,
    event_seq: u64,
    last_event: HashMap<(ServiceKey, &'static str), Instant>,
    /// Size of `last_event` at which its expired entries are dropped (then twice what is left):
    /// an entry past the interval limits nothing, and deleted Services' entries stayed for good.
    last_event_sweep: usize,
    reporter: Arc<Reporter>,
    /// What FerroLB last wrote to each Service's ingress (while leading).
    written: HashMap<ServiceKey, Written>,
    /// Services whose status another controller keeps overwriting.
    contests: Contests,
}

/// Runs the controller until `shutdown` turns true or a watch ends for good.
/// `leader` says whether this replica holds the `ferrolb-ipam` Lease; `synced` (readiness) is
/// true once both watches have listed everything and, when leading, the core has been rebuilt.
pub async fn run(
    client: kube::Client,
    settings: Settings,
    mut leader: watch::Receiver<Leadership>,
    synced: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    // A replica about to lead should list after it leads: then that one listing is consistent
    // with everything the previous leader wrote, and taking over needs no second one. A standby
    // stops waiting after `leader_wait` and warms its caches.
    if !leader.borrow().leader {
        let _ = tokio::time::timeout(settings.leader_wait, leader.wait_for(|l| l.leader)).await;
    }
    let pools = watcher(Api::<LoadBalancerIPPool>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .map(|e| e.map(|e| Input::Pool(Box::new(e))));
    let services = watcher(Api::<Service>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .map(|e| e.map(|e| Input::Service(Box::new(e))));
    let mut inputs = std::pin::pin!(futures::stream::select(pools, services));
    let reporter = Reporter { controller: FIELD_MANAGER.into(), instance: Some(settings.instance.clone()) };
    let settings_contest = settings.contest;
    let mut c = Controller {
        reporter: Arc::new(reporter),
        client,
        settings,
        pools: Cache::default(),
        services: Cache::default(),
        ipam: None,
        leader: leader.borrow().leader,
        leader_since: leader.borrow().leader.then(Instant::now),
        claim: ClaimGate::new(leader.clone()),
        queue: VecDeque::new(),
        pending: HashMap::new(),
        in_flight: HashSet::new(),
        in_flight_work: HashMap::new(),
        writes: FuturesUnordered::new(),
        retry_at: None,
        retry_backoff: Duration::from_millis(500),
        failed: HashSet::new(),
        event_seq: 0,
        last_event: HashMap::new(),
        last_event_sweep: 1024,
        written: HashMap::new(),
        contests: Contests::new(settings_contest),
    };
    loop {
        let retry = c.retry_at;
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            r = leader.changed() => {
                if r.is_err() {
                    break;
                }
                // Also wakes on every renewal (the claim's expiry moves); only the flag matters here,
                // each write checks the claim itself.
                let now_leader = leader.borrow_and_update().leader;
                if now_leader && !c.leader {
                    c.leader_since = Some(Instant::now());
                }
                c.leader = now_leader;
                if !c.leader {
                    c.deactivate();
                }
            }
            Some((key, result)) = c.writes.next(), if !c.writes.is_empty() => c.write_done(key, result),
            input = inputs.next() => match input {
                Some(Ok(Input::Pool(ev))) => c.pool_event(*ev),
                Some(Ok(Input::Service(ev))) => c.service_event(*ev),
                Some(Err(e)) => tracing::warn!(error = %e, "watch error; retrying with backoff"),
                None => return Err(Error::WatchEnded("pool or Service")),
            },
            _ = tokio::time::sleep_until(retry.unwrap_or_else(Instant::now)), if retry.is_some() => {
                c.retry_at = None;
                c.retry_failed();
            }
        }
        let both_synced = c.pools.synced && c.services.synced;
        if c.leader && both_synced && c.ipam.is_none() && c.retry_at.is_none() {
            c.activate().await;
        }
        // Ready: caches complete and, when leading, the core rebuilt.
        let ready = both_synced && (!c.leader || c.ipam.is_some());
        synced.send_if_modified(|s| std::mem::replace(s, ready) != ready);
        c.flush();
        c.schedule();
    }
    // Shutdown: nothing more is written; in-flight writes are dropped with the futures.
    c.deactivate();
    Ok(())
}

impl Controller {
    fn pool_event(&mut self, ev: watcher::Event<LoadBalancerIPPool>) {
        match ev {
            watcher::Event::Init => self.pools.start_list(),
            watcher::Event::InitApply(p) => {
                if let Some(r) = self.pools.relisting.as_mut() {
                    r.insert(pool_key(&p), p);
                }
            }
            watcher::Event::InitDone => {
                if let Some(r) = self.pools.relisting.take() {
                    self.pools.objects = r;
                }
                self.pools.synced = true;
                self.resync();
            }
            watcher::Event::Apply(p) => {
                if let Some(ipam) = self.ipam.as_mut() {
                    ipam.apply_pool(pool_input(&p));
                }
                self.pools.objects.insert(pool_key(&p), p);
            }
            watcher::Event::Delete(p) => {
                if let Some(ipam) = self.ipam.as_mut() {
                    ipam.delete_pool(&pool_key(&p));
                }
                self.pools.objects.remove(&pool_key(&p));
            }
        }
    }

    fn service_event(&mut self, ev: watcher::Event<Service>) {
        match ev {
            watcher::Event::Init => self.services.start_list(),
            watcher::Event::InitApply(s) => {
                if let Some(r) = self.services.relisting.as_mut() {
                    let c = CachedService::new(&s);
                    r.insert(c.input.key.clone(), c);
                }
            }
            watcher::Event::InitDone => {
                if let Some(r) = self.services.relisting.take() {
                    self.services.objects = r;
                }
                self.services.synced = true;
                self.resync();
            }
            watcher::Event::Apply(s) => {
                if self.ipam.is_some() {
                    self.check_contest(&s);
                }
                let c = CachedService::new(&s);
                if let Some(ipam) = self.ipam.as_mut() {
                    ipam.apply_service(c.input.clone());
                }
                self.services.objects.insert(c.input.key.clone(), c);
            }
            watcher::Event::Delete(s) => {
                let k = service_key(&s);
                self.written.remove(&k);
                self.contests.forget(&k);
                if let Some(ipam) = self.ipam.as_mut() {
                    ipam.delete_service(&k);
                }
                self.services.objects.remove(&k);
            }
        }
    }

    /// After a re-list: the core takes the whole picture again (deleting what disappeared
    /// while the watch was down) without moving any valid address.
    fn resync(&mut self) {
        if let Some(ipam) = self.ipam.as_mut() {
            ipam.resync(
                self.pools.objects.values().map(pool_input).collect(),
                self.services.objects.values().map(|c| c.input.clone()).collect(),
            );
        }
    }

    /// Became leader: build the core from listings made after leadership began, so the previous
    /// leader's last writes are all in them (it stopped writing before its Lease could be taken).
    /// The watches' own listings do when they started after this replica began to lead (the
    /// usual case at start-up); otherwise list afresh.
    async fn activate(&mut self) {
        if !(self.pools.listed_after(self.leader_since) && self.services.listed_after(self.leader_since)) {
            let list = async {
                let pools =
                    list_all(Api::<LoadBalancerIPPool>::all(self.client.clone()), |p| (pool_key(&p), p))
                        .await?;
                let services = list_all(Api::<Service>::all(self.client.clone()), |s| {
                    let c = CachedService::new(&s);
                    (c.input.key.clone(), c)
                })
                .await?;
                Ok::<_, kube::Error>((pools, services))
            };
            match list.await {
                Ok((pools, services)) => {
                    self.pools.objects = pools.into_iter().collect();
                    self.services.objects = services.into_iter().collect();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "listing for leadership failed; retrying");
                    self.retry_later();
                    return;
                }
            }
        }
        let mut ipam = Ipam::new(self.settings.ipam.clone());
        ipam.resync(
            self.pools.objects.values().map(pool_input).collect(),
            self.services.objects.values().map(|c| c.input.clone()).collect(),
        );
        tracing::info!(
            pools = self.pools.objects.len(),
            services = ipam.service_count(),
            "leading: state rebuilt"
        );
        metrics::gauge!(crate::metrics::ACTIVE).set(1.0);
        self.ipam = Some(ipam);
    }

    fn deactivate(&mut self) {
        if self.ipam.take().is_some() {
            tracing::info!("no longer leading: writes stopped");
            metrics::gauge!(crate::metrics::ACTIVE).set(0.0);
        }
        self.queue.clear();
        self.pending.clear();
        self.in_flight.clear();
        self.in_flight_work.clear();
        self.failed.clear();
        self.writes = FuturesUnordered::new();
        self.written.clear();
        self.contests.clear();
        // A hold's wake-up must not delay leading again.
        self.retry_at = None;
    }

    /// The backoff after failed writes is over: let the core emit those objects again (with
    /// whatever it wants now, which may differ from what failed).
    fn retry_failed(&mut self) {
        let Some(ipam) = self.ipam.as_mut() else { return };
        // Holds that ended: FerroLB writes those Services again.
        let now = std::time::Instant::now();
        for k in self.contests.expired(now) {
            ipam.mark_service_unwritten(&k);
        }
        for key in std::mem::take(&mut self.failed) {
            match key {
                WorkKey::Service(k) => ipam.mark_service_unwritten(&k),
                WorkKey::Pool(name) => ipam.mark_pool_unwritten(&name),
                WorkKey::Event(_) => {}
            }
        }
        if let Some(next) = self.contests.next_expiry(now) {
            self.retry_after(next.saturating_duration_since(now));
        }
    }

    /// Schedules a retry after the current backoff, which doubles up to 30 s until a write
    /// succeeds. An earlier pending retry is kept, so a stream of failures cannot starve it.
    fn retry_later(&mut self) {
        self.retry_after(self.retry_backoff);
        self.retry_backoff = (self.retry_backoff * 2).min(Duration::from_secs(30));
    }

    fn retry_after(&mut self, delay: Duration) {
        let at = Instant::now() + delay;
        self.retry_at = Some(self.retry_at.map_or(at, |t| t.min(at)));
    }

    /// Turns the core's changes into queued writes.
    fn flush(&mut self) {
        let Some(ipam) = self.ipam.as_mut() else { return };
        let changes = ipam.take_changes();
        if changes.is_empty() {
            return;
        }
        self.enqueue(changes);
    }

    fn enqueue(&mut self, changes: Changes) {
        let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        for change in changes.services {
            let (key, output) = match &change {
                ServiceChange::Update { key, output, .. } => (key, Some(output)),
                ServiceChange::Clear { key, .. } => {
                    self.contests.forget(key);
                    self.written.remove(key);
                    (key, None)
                }
            };
            if output.is_some() && self.contests.held_until(key, std::time::Instant::now()).is_some() {
                // Held: the Service is written again when the hold ends.
                continue;
            }
            let Some(svc) = self.services.objects.get(key) else {
                continue;
            };
            if let Some(out) = output
                && !out.condition.status
            {
                metrics::counter!(crate::metrics::ALLOCATION_FAILURES, "reason" => out.condition.reason.clone())
                    .increment(1);
            }
            let status = convert::service_status_apply(svc, output, &self.settings.ipam.classes, &now);
            let annotation =
                convert::pool_annotation_patch(svc, output.and_then(|o| o.allocated_from_pool()));
            self.push(WorkKey::Service(key.clone()), Work::Service { key: key.clone(), status, annotation });
        }
        for out in changes.pools {
            let Some(pool) = self.pools.objects.get(&out.name) else { continue };
            for (kind, v) in [("total", out.total), ("used", out.used), ("available", out.available)] {
                // f64 is exact to 2^53 addresses; beyond that a gauge is approximate anyway.
                metrics::gauge!(crate::metrics::POOL_IPS, "pool" => out.name.clone(), "kind" => kind)
                    .set(v as f64);
            }
            let status = convert::pool_status_apply(pool, &out, &now);
            self.push(WorkKey::Pool(out.name.clone()), Work::Pool { name: out.name, status });
        }
        for ev in changes.events {
            if ev.reason == event_reasons::IP_ALLOCATED {
                metrics::counter!(crate::metrics::ALLOCATIONS).increment(1);
            }
            let now = Instant::now();
            let slot = (ev.service.clone(), ev.reason);
            if self
                .last_event
                .get(&slot)
                .is_some_and(|t| now.duration_since(*t) < self.settings.event_interval)
            {
                metrics::counter!(crate::metrics::EVENTS_SUPPRESSED).increment(1);
                continue;
            }
            self.last_event.insert(slot, now);
            self.push_event(&ev.service, &ev.uid, ev.event_type, ev.reason, &ev.message);
        }
        if self.last_event.len() >= self.last_event_sweep {
            let (now, interval) = (Instant::now(), self.settings.event_interval);
            self.last_event.retain(|_, t| now.duration_since(*t) < interval);
            self.last_event_sweep = (2 * self.last_event.len()).max(1024);
        }
    }

    fn push_event(&mut self, service: &ServiceKey, uid: &str, type_: EventType, reason: &str, message: &str) {
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            name: Some(service.name.clone()),
            namespace: Some(service.namespace.clone()),
            uid: Some(uid.to_string()),
            ..Default::default()
        };
        let event = kube::runtime::events::Event {
            type_: match type_ {
                EventType::Normal => kube::runtime::events::EventType::Normal,
                EventType::Warning => kube::runtime::events::EventType::Warning,
            },
            reason: reason.to_string(),
            note: Some(message.chars().take(1024).collect()),
            action: "Allocate".into(),
            secondary: None,
        };
        self.event_seq += 1;
        self.push(
            WorkKey::Event(self.event_seq),
            Work::Event { reference: Box::new(reference), event: Box::new(event) },
        );
    }

    /// A Service event while leading: if it shows other addresses than FerroLB last wrote, in a
    /// later version, written by another field manager, count an overwrite; start a hold when the
    /// contest rule says so.
    fn check_contest(&mut self, s: &Service) {
        let key = service_key(s);
        let Some(ours) = self.written.get(&key) else { return };
        let version = s.metadata.resource_version.as_deref().and_then(|v| v.parse::<u64>().ok());
        if let (Some(seen), Some(wrote)) = (version, ours.resource_version)
            && seen <= wrote
        {
            return;
        }
        if contested::ingress_ips(s) == ours.ips {
            return;
        }
        // Without another owner of status.loadBalancer the change is no other controller's.
        let Some(writer) = contested::status_writer(s, FIELD_MANAGER) else { return };
        if let Some(hold) = self.contests.overwritten(&key, &writer, std::time::Instant::now()) {
            self.start_hold(s, &key, &hold);
        }
    }

    /// Reports a hold (log, Warning Event, condition) and writes nothing else to the Service until
    /// it ends.
    fn start_hold(&mut self, s: &Service, key: &ServiceKey, hold: &Hold) {
        let secs = hold.duration.as_secs();
        tracing::warn!(service = %key, writer = %hold.writer, hold_s = secs, round = hold.round,
            "another controller keeps overwriting this Service's status.loadBalancer; holding FerroLB's writes");
        metrics::counter!(crate::metrics::STATUS_CONTESTS).increment(1);
        let message = format!(
            "status.loadBalancer of this Service is also written by {:?}, which keeps replacing FerroLB's \
             addresses; FerroLB stops writing it for {secs} s (hold {}). Let one load balancer serve the \
             Service: a loadBalancerClass, or stop the other one (docs/migration.md).",
            hold.writer, hold.round
        );
        let uid = s.metadata.uid.clone().unwrap_or_default();
        self.push_event(key, &uid, EventType::Warning, event_reasons::STATUS_CONTESTED, &message);
        let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let status = contested::contested_apply(s, &message, &now);
        // Replaces whatever write of this Service was still queued.
        self.push(
            WorkKey::Service(key.clone()),
            Work::Service { key: key.clone(), status, annotation: None },
        );
        self.retry_after(hold.duration);
    }

    fn push(&mut self, key: WorkKey, work: Work) {
        // A Service write is two requests (status, then annotation); the watch event of the
        // first shows a half-written Service and makes the core emit the same write again.
        if let (
            Work::Service { status, annotation, .. },
            Some(Work::Service { status: s, annotation: a, .. }),
        ) = (&work, self.in_flight_work.get(&key))
            && (status, annotation) == (s, a)
        {
            return;
        }
        if self.pending.insert(key.clone(), work).is_none() {
            self.queue.push_back(key);
        }
    }

    /// Starts queued writes up to the concurrency limit, never two for one object.
    fn schedule(&mut self) {
        if self.ipam.is_none() {
            return;
        }
        let mut deferred = Vec::new();
        while self.writes.len() < self.settings.write_concurrency {
            let Some(key) = self.queue.pop_front() else { break };
            if self.in_flight.contains(&key) {
                deferred.push(key);
                continue;
            }
            let Some(work) = self.pending.remove(&key) else { continue };
            self.in_flight.insert(key.clone());
            if let Work::Service { key: k, status, annotation } = &work {
                let copy =
                    Work::Service { key: k.clone(), status: status.clone(), annotation: annotation.clone() };
                self.in_flight_work.insert(key.clone(), copy);
            }
            self.writes.push(self.write(key, work));
        }
        // Objects still being written keep their place for when the write finishes.
        for k in deferred.into_iter().rev() {
            self.queue.push_front(k);
        }
    }

    /// One write, sent only while this replica's Lease claim is current: a leader whose renewal is
    /// late must not write over the replica that may already have taken over. The claim is checked
    /// right before each request, not when the write was queued.
    fn write(&self, key: WorkKey, work: Work) -> BoxFuture<'static, Done> {
        let client = self.client.clone();
        let reporter = self.reporter.clone();
        let claim = self.claim.clone();
        let held = move || claim.check(std::time::Instant::now()).map_err(|_| WriteError::ClaimLapsed);
        Box::pin(async move {
            let result = match work {
                Work::Service { key: svc, status, annotation } => {
                    if let Err(e) = held() {
                        return (key, Err(e));
                    }
                    let api: Api<Service> = Api::namespaced(client, &svc.namespace);
                    let apply = PatchParams::apply(FIELD_MANAGER).force();
                    let r = api.patch_status(&svc.name, &apply, &Patch::Apply(&status)).await;
                    count("patch", "services/status", &r);
                    let written = |s: &Service| {
                        contested::applied_ips(&status).map(|ips| Written {
                            ips,
                            resource_version: s
                                .metadata
                                .resource_version
                                .as_deref()
                                .and_then(|v| v.parse().ok()),
                        })
                    };
                    match (r, annotation) {
                        (Ok(s), Some(a)) => {
                            if let Err(e) = held() {
                                return (key, Err(e));
                            }
                            let pp = PatchParams {
                                field_manager: Some(FIELD_MANAGER.into()),
                                ..Default::default()
                            };
                            let r = api.patch(&svc.name, &pp, &Patch::Merge(&a)).await;
                            count("patch", "services", &r);
                            r.map(|after| written(&after).or_else(|| written(&s))).map_err(WriteError::from)
                        }
                        (r, _) => r.map(|s| written(&s)).map_err(WriteError::from),
                    }
                }
                Work::Pool { name, status } => {
                    if let Err(e) = held() {
                        return (key, Err(e));
                    }
                    let api: Api<LoadBalancerIPPool> = Api::all(client);
                    let r = api
                        .patch_status(
                            &name,
                            &PatchParams::apply(FIELD_MANAGER).force(),
                            &Patch::Apply(&status),
                        )
                        .await;
                    count("patch", "loadbalancerippools/status", &r);
                    r.map(|_| None).map_err(WriteError::from)
                }
                Work::Event { reference, event } => {
                    if let Err(e) = held() {
                        return (key, Err(e));
                    }
                    let r = ferrolb_runtime::events::publish(&client, &reporter, &event, &reference).await;
                    count("create", "events", &r);
                    r.map(|()| None).map_err(WriteError::from)
                }
            };
            (key, result)
        })
    }

    fn write_done(&mut self, key: WorkKey, result: Result<Option<Written>, WriteError>) {
        self.in_flight.remove(&key);
        self.in_flight_work.remove(&key);
        let e = match result {
            Ok(written) => {
                if let (WorkKey::Service(k), Some(w)) = (&key, written)
                    && self.ipam.is_some()
                {
                    self.written.insert(k.clone(), w);
                }
                self.retry_backoff = Duration::from_millis(500);
                return;
            }
            Err(WriteError::ClaimLapsed) => {
                metrics::counter!(crate::metrics::WRITES_HELD).increment(1);
                tracing::debug!(?key, "write not sent: the Lease claim had lapsed");
                // Events are best effort; Service and pool writes wait for a current claim (or for
                // the core to go, if leadership is lost).
                if !matches!(key, WorkKey::Event(_)) && self.ipam.is_some() {
                    self.failed.insert(key);
                    self.retry_later();
                }
                return;
            }
            Err(WriteError::Api(e)) => e,
        };
        let failure = ApiFailure::of(&e);
        let gone = failure == ApiFailure::NotFound;
        // A conflict means the object changed under us; the watch brings the new version at
        // once, so retry soon (as client-go's RetryOnConflict does) rather than backing off.
        let conflict = failure == ApiFailure::Conflict;
        match (&key, self.ipam.as_mut()) {
            // The object is gone: its delete event will follow; nothing to retry.
            _ if gone => {}
            (WorkKey::Service(k), Some(_)) => {
                tracing::warn!(service = %format!("{}/{}", k.namespace, k.name), error = %e, "status write failed; will retry");
                self.failed.insert(key);
                if conflict { self.retry_after(CONFLICT_RETRY) } else { self.retry_later() }
            }
            (WorkKey::Pool(name), Some(_)) => {
                tracing::warn!(pool = %name, error = %e, "pool status write failed; will retry");
                self.failed.insert(key);
                if conflict { self.retry_after(CONFLICT_RETRY) } else { self.retry_later() }
            }
            // Events are best effort.
            _ => tracing::debug!(error = %e, "event not recorded"),
        }
    }
}

fn count<T, E>(verb: &'static str, resource: &'static str, r: &Result<T, E>) {
    let outcome = if r.is_ok() { "ok" } else { "error" };
    metrics::counter!(crate::metrics::API_REQUESTS, "verb" => verb, "resource" => resource, "outcome" => outcome).increment(1);
}

/// Every object, each turned by `keep` into what is cached as its page arrives (a page of whole
/// objects at a time, never the whole listing).
async fn list_all<K, T>(api: Api<K>, keep: impl Fn(K) -> T) -> Result<Vec<T>, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut out = Vec::new();
    // Large pages: a takeover lists everything, and each page costs a round trip.
    let mut lp = ListParams::default().limit(5000);
    loop {
        let page = api.list(&lp).await?;
        out.extend(page.items.into_iter().map(&keep));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => return Ok(out),
        }
    }
}
