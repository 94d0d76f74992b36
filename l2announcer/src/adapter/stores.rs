//! The announcer's watch caches ([`Stores`]) and the node heartbeat Leases as observed
//! ([`HeartbeatBook`]): what the decision loop reads, kept up to date by watch tasks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use ferrolb_api::names::annotations;
use ferrolb_api::{L2AnnouncementPolicy, LoadBalancerIPPool};
use ferrolb_runtime::election::{LeaseRecord, Observed};
use ferrolb_runtime::lease::record_of;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::cache::{Projected, Wake};
use super::convert::{self, ServiceEntry, SliceEndpoints};
use super::{ADDRESS_LEASE_PREFIX, HEARTBEAT_LEASE_PREFIX};
use crate::policy::ServiceKey;

/// The watch caches. Services, EndpointSlices and per-address Leases number in the thousands: of
/// those only projections are kept (see [`cache`]); Nodes, policies and pools are few and kept whole.
pub(super) struct Stores {
    pub(super) nodes: Store<Node>,
    pub(super) services: Projected<ServiceEntry, Arc<ServiceKey>>,
    pub(super) slices: Projected<SliceEndpoints>,
    pub(super) policies: Store<L2AnnouncementPolicy>,
    pub(super) pools: Store<LoadBalancerIPPool>,
    /// The per-address Leases' records by name (node heartbeat Leases go to the [`HeartbeatBook`]).
    pub(super) leases: Projected<LeaseRecord, String>,
    /// The watch tasks: aborted when the caches are dropped (when `adapter::run` returns).
    _watches: JoinSet<()>,
}

/// Starts a reflector, its task joining `tasks` (it ends when they are dropped); `strip` drops what
/// the announcer never reads before an object is cached (the caches are most of its memory with
/// thousands of Services).
pub(crate) fn watch<K>(
    api: Api<K>,
    notify: Wake,
    what: &'static str,
    strip: fn(&mut K),
    tasks: &mut JoinSet<()>,
) -> Store<K>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default()).default_backoff().modify(strip).reflect(writer);
    tasks.spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let Err(error) = event {
                tracing::warn!(what, %error, "watch failed; retrying");
            }
            notify.wake();
        }
    });
    reader
}

/// Node heartbeat Leases as observed when their watch events arrived (lease name -> observation and
/// report annotation). Renewals are recorded here by the watch task itself, at receipt, and do not
/// wake the decision loop: a renewal changes no decision, only how long its node stays alive, and
/// the loop wakes by itself when a holder could die ([`crate::engine::Plan::wake_at`]).
#[derive(Clone, Default)]
pub(super) struct HeartbeatBook(Arc<std::sync::Mutex<HashMap<String, Sighting>>>);

/// A heartbeat Lease as last observed, with its report annotation.
pub(super) type Sighting = (Observed, Option<String>);

impl HeartbeatBook {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Sighting>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records one heartbeat Lease as seen now; whether the loop must decide again (a new Lease, a new
    /// holder or a new report).
    pub(super) fn note(&self, lease: &Lease, now: Instant) -> bool {
        let Some(name) = lease.metadata.name.clone() else { return false };
        let report =
            lease.metadata.annotations.as_ref().and_then(|a| a.get(annotations::ANNOUNCER_STATE)).cloned();
        let record = record_of(lease);
        let mut book = self.lock();
        let previous = book.remove(&name);
        let wake =
            previous.as_ref().is_none_or(|(o, r)| o.record.holder() != record.holder() || *r != report);
        let observed = Observed::note(previous.map(|(o, _)| o), record, now);
        book.insert(name, (observed, report));
        wake
    }

    pub(super) fn forget(&self, name: &str) {
        self.lock().remove(name);
    }

    pub(super) fn get(&self, name: &str) -> Option<Sighting> {
        self.lock().get(name).cloned()
    }
}

pub(super) fn watch_leases(
    api: Api<Lease>,
    notify: Wake,
    book: HeartbeatBook,
    tasks: &mut JoinSet<()>,
) -> Projected<LeaseRecord, String> {
    let project = |_: &String, lease: &Lease| is_address_lease(lease).then(|| record_of(lease));
    let observe = move |event: &watcher::Event<Lease>| match event {
        watcher::Event::Apply(lease) | watcher::Event::InitApply(lease) if is_heartbeat(lease) => {
            book.note(lease, Instant::now())
        }
        watcher::Event::Delete(lease) if is_heartbeat(lease) => {
            book.forget(lease.metadata.name.as_deref().unwrap_or_default());
            true
        }
        // Address Leases wake the loop when their record changes (the cache tells); other Leases of
        // the namespace (the IPAM controller's, anyone's) decide nothing.
        _ => false,
    };
    Projected::spawn(api, "leases", notify, project, observe, tasks)
}

pub(super) fn is_address_lease(lease: &Lease) -> bool {
    lease.metadata.name.as_deref().is_some_and(|n| n.starts_with(ADDRESS_LEASE_PREFIX))
}

pub(super) fn is_heartbeat(lease: &Lease) -> bool {
    lease.metadata.name.as_deref().is_some_and(|n| n.starts_with(HEARTBEAT_LEASE_PREFIX))
}

impl Stores {
    /// Starts the caches; those BGP mode reads too wake `bgp` as well as the decision loop.
    pub(super) fn start(
        client: &Client,
        namespace: &str,
        notify: &Arc<Notify>,
        bgp: &Arc<Notify>,
        book: &HeartbeatBook,
    ) -> Self {
        let l2 = Wake::new([notify.clone()]);
        let both = Wake::new([notify.clone(), bgp.clone()]);
        let mut tasks = JoinSet::new();
        let t = &mut tasks;
        Self {
            nodes: watch(Api::all(client.clone()), both.clone(), "nodes", convert::strip_node, t),
            services: Projected::spawn(
                Api::all(client.clone()),
                "services",
                both.clone(),
                convert::service_entry,
                |_| false,
                t,
            ),
            slices: Projected::spawn(
                Api::all(client.clone()),
                "endpointslices",
                both.clone(),
                |_, slice| convert::slice_endpoints(slice),
                |_| false,
                t,
            ),
            policies: watch(
                Api::all(client.clone()),
                l2.clone(),
                "l2announcementpolicies",
                |p| p.metadata.managed_fields = None,
                t,
            ),
            pools: watch(
                Api::all(client.clone()),
                both,
                "loadbalancerippools",
                |p| p.metadata.managed_fields = None,
                t,
            ),
            leases: watch_leases(Api::namespaced(client.clone(), namespace), l2, book.clone(), t),
            _watches: tasks,
        }
    }

    /// Returns once every cache has listed. The only task that may wait on these `Store`s: kube's
    /// `Store::wait_until_ready` wakes one waiter only (BGP mode waits on this one's outcome).
    pub(super) async fn wait_until_ready(&self) {
        let _ = tokio::join!(
            self.nodes.wait_until_ready(),
            self.services.wait_until_ready(),
            self.slices.wait_until_ready(),
            self.policies.wait_until_ready(),
            self.pools.wait_until_ready(),
            self.leases.wait_until_ready(),
        );
    }
}
