//! Watch caches that keep what the announcer reads of each object, not the object.
//!
//! With 10,000 Services a kube reflector holds 10,000 Services, 10,000 EndpointSlices and 10,000
//! Leases as full `k8s-openapi` objects (and, while a watch event passes through, a second copy):
//! most of the announcer's memory. A [`Projected`] cache runs the same watcher (list, watch,
//! re-list on 410, backoff) but stores only `project(object)`: a [`ServiceInput`], a slice's
//! endpoints per node, a Lease's election record. It also knows whether an event changed what it
//! stores, so an event that changes nothing the announcer reads (a Service's status conditions, a
//! Lease of someone else) does not wake the decision loop.
//!
//! What is kept is shared with the rounds ([`Entries::shared`]) and copied only when the watch
//! changes it while a round still reads it: 10,000 Lease records read by every round are kept once,
//! not once in the cache and again in a round's copy.
//!
//! [`ServiceInput`]: crate::policy::ServiceInput

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::policy::ServiceKey;

/// An object's namespace (empty for cluster-scoped objects) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectName {
    pub namespace: String,
    pub name: String,
}

impl ObjectName {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), name: name.into() }
    }
}

/// How a cache names what it keeps.
pub trait CacheKey: Ord + Clone + Send + Sync + 'static {
    fn of<K: Resource>(object: &K) -> Self;
}

impl CacheKey for ObjectName {
    fn of<K: Resource>(object: &K) -> Self {
        let meta = object.meta();
        Self::new(meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default())
    }
}

/// A Service's key, shared with its projection ([`crate::policy::ServiceInput::key`]): the cache
/// keeps one copy of each name, not two.
impl CacheKey for Arc<ServiceKey> {
    fn of<K: Resource>(object: &K) -> Self {
        let meta = object.meta();
        Arc::new(ServiceKey::new(
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        ))
    }
}

/// The name alone, for a cache of one namespace (the per-address Leases): the rounds look Leases up
/// by name.
impl CacheKey for String {
    fn of<K: Resource>(object: &K) -> Self {
        object.meta().name.clone().unwrap_or_default()
    }
}

/// One watch event, already projected (`None`: the object is not kept, as if deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<V, N = ObjectName> {
    /// A (re-)list starts.
    Init,
    /// An object of the list.
    InitApply(N, Option<V>),
    /// The list is complete: it replaces what was kept.
    InitDone,
    Apply(N, Option<V>),
    Delete(N),
}

/// The projections kept, and how often they changed.
#[derive(Debug)]
pub struct Entries<V, N = ObjectName> {
    /// Shared with the rounds that read it; a change while one does copies it first.
    entries: Arc<BTreeMap<N, V>>,
    /// Counts the changes; a reader compares it to know whether to copy again.
    generation: u64,
    /// The list in progress (a re-list after a 410 or a restarted watch).
    listing: Option<BTreeMap<N, V>>,
    listed: bool,
}

impl<V, N> Default for Entries<V, N> {
    fn default() -> Self {
        Self { entries: Arc::new(BTreeMap::new()), generation: 0, listing: None, listed: false }
    }
}

impl<V: PartialEq + Clone, N: Ord + Clone> Entries<V, N> {
    /// Applies one change; whether what is kept changed.
    pub fn apply(&mut self, change: Change<V, N>) -> bool {
        let changed = match change {
            Change::Init => {
                self.listing = Some(BTreeMap::new());
                false
            }
            Change::InitApply(name, value) => {
                if let (Some(listing), Some(value)) = (self.listing.as_mut(), value) {
                    listing.insert(name, value);
                }
                false
            }
            Change::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                let changed = !self.listed || listed != *self.entries;
                self.entries = Arc::new(listed);
                self.listed = true;
                changed
            }
            Change::Apply(name, Some(value)) => {
                if self.entries.get(&name) == Some(&value) {
                    false
                } else {
                    Arc::make_mut(&mut self.entries).insert(name, value);
                    true
                }
            }
            Change::Apply(name, None) | Change::Delete(name) => {
                self.entries.contains_key(&name) && Arc::make_mut(&mut self.entries).remove(&name).is_some()
            }
        };
        if changed {
            self.generation += 1;
        }
        changed
    }
}

impl<V, N> Entries<V, N> {
    pub fn entries(&self) -> &BTreeMap<N, V> {
        &self.entries
    }

    /// What is kept, shared (see the module documentation). A reader that holds it across changes
    /// makes the cache copy it: drop it after the round.
    pub fn shared(&self) -> Arc<BTreeMap<N, V>> {
        self.entries.clone()
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether a first list completed.
    pub fn listed(&self) -> bool {
        self.listed
    }
}

/// Who a cache wakes on a change: the L2 decision loop, and the BGP loop for the caches both read.
#[derive(Clone)]
pub struct Wake(Arc<[Arc<Notify>]>);

impl Wake {
    pub fn new(notifies: impl IntoIterator<Item = Arc<Notify>>) -> Self {
        Self(notifies.into_iter().collect())
    }

    pub fn wake(&self) {
        for n in self.0.iter() {
            n.notify_one();
        }
    }
}

/// A watch cache of projections (see the module documentation).
pub struct Projected<V, N = ObjectName> {
    entries: Arc<Mutex<Entries<V, N>>>,
    listed: watch::Receiver<bool>,
}

impl<V, N> Clone for Projected<V, N> {
    fn clone(&self) -> Self {
        Self { entries: self.entries.clone(), listed: self.listed.clone() }
    }
}

impl<V: PartialEq + Clone + Send + Sync + 'static, N: CacheKey> Projected<V, N> {
    /// Watches `api`, keeping `project(object)`. `observe` sees every event first (for what is not
    /// kept, such as heartbeat Leases) and returns whether it must wake the loop; `notify` is woken
    /// when that or a change of what is kept happens. The watch task joins `tasks`: it ends when
    /// they are dropped.
    pub fn spawn<K>(
        api: Api<K>,
        what: &'static str,
        notify: Wake,
        project: impl Fn(&N, &K) -> Option<V> + Send + 'static,
        mut observe: impl FnMut(&watcher::Event<K>) -> bool + Send + 'static,
        tasks: &mut JoinSet<()>,
    ) -> Self
    where
        K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    {
        let entries = Arc::new(Mutex::new(Entries::default()));
        let (listed_tx, listed) = watch::channel(false);
        let stream = watcher(api, watcher::Config::default()).default_backoff();
        let shared = entries.clone();
        tasks.spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(error) => {
                        tracing::warn!(what, %error, "watch failed; retrying");
                        continue;
                    }
                };
                let mut wake = observe(&event);
                let change = match &event {
                    watcher::Event::Init => Change::Init,
                    watcher::Event::InitApply(o) => {
                        let name = N::of(o);
                        let value = project(&name, o);
                        Change::InitApply(name, value)
                    }
                    watcher::Event::InitDone => Change::InitDone,
                    watcher::Event::Apply(o) => {
                        let name = N::of(o);
                        let value = project(&name, o);
                        Change::Apply(name, value)
                    }
                    watcher::Event::Delete(o) => Change::Delete(N::of(o)),
                };
                // The object itself goes here; only its projection is kept.
                drop(event);
                let done = matches!(change, Change::InitDone);
                wake |= lock(&shared).apply(change);
                if done {
                    listed_tx.send_replace(true);
                }
                if wake {
                    notify.wake();
                }
            }
        });
        Self { entries, listed }
    }
}

impl<V, N> Projected<V, N> {
    /// Returns once the first list is complete.
    pub async fn wait_until_ready(&self) {
        let mut listed = self.listed.clone();
        let _ = listed.wait_for(|l| *l).await;
    }

    /// Reads what is kept.
    pub fn read<R>(&self, f: impl FnOnce(&Entries<V, N>) -> R) -> R {
        f(&lock(&self.entries))
    }
}

impl<V: Clone, N: Ord> Projected<V, N> {
    pub fn get(&self, name: &N) -> Option<V> {
        self.read(|e| e.entries().get(name).cloned())
    }
}

fn lock<V, N>(entries: &Mutex<Entries<V, N>>) -> MutexGuard<'_, Entries<V, N>> {
    entries.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A copy of a cache's values for the decision rounds, made again only after the cache changed.
#[derive(Debug)]
pub struct Snapshot<T> {
    generation: Option<u64>,
    value: Arc<T>,
}

impl<T: Default> Default for Snapshot<T> {
    fn default() -> Self {
        Self { generation: None, value: Arc::new(T::default()) }
    }
}

impl<T> Snapshot<T> {
    /// The current copy, rebuilt with `build` when `cache` changed since the last one.
    pub fn get<V, N>(&mut self, cache: &Projected<V, N>, build: impl FnOnce(&BTreeMap<N, V>) -> T) -> Arc<T> {
        cache.read(|e| {
            if self.generation != Some(e.generation()) {
                self.value = Arc::new(build(e.entries()));
                self.generation = Some(e.generation());
            }
        });
        self.value.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(name: &str) -> ObjectName {
        ObjectName::new("default", name)
    }

    #[test]
    fn applies_and_deletes_count_only_real_changes() {
        let mut e = Entries::default();
        assert!(!e.apply(Change::Init));
        assert!(!e.apply(Change::InitApply(n("a"), Some(1))));
        assert!(!e.apply(Change::InitApply(n("skipped"), None)));
        assert!(e.apply(Change::InitDone), "the first list is a change, even when empty");
        assert!(e.listed());
        assert_eq!(e.entries().len(), 1);
        let g = e.generation();
        assert!(!e.apply(Change::Apply(n("a"), Some(1))), "same projection: nothing to decide");
        assert_eq!(e.generation(), g);
        assert!(e.apply(Change::Apply(n("a"), Some(2))));
        assert!(e.apply(Change::Apply(n("b"), Some(3))));
        assert!(e.apply(Change::Apply(n("b"), None)), "projected away: removed");
        assert!(!e.apply(Change::Apply(n("b"), None)));
        assert!(!e.apply(Change::Delete(n("c"))));
        assert!(e.apply(Change::Delete(n("a"))));
        assert!(e.entries().is_empty());
        assert_eq!(e.generation(), g + 4);
    }

    #[test]
    fn a_relist_replaces_everything_once_complete() {
        let mut e = Entries::default();
        for c in [Change::Init, Change::InitApply(n("a"), Some(1)), Change::InitApply(n("b"), Some(2))] {
            e.apply(c);
        }
        e.apply(Change::InitDone);
        // A re-list after a 410: `b` was deleted meanwhile, `c` created, `a` unchanged.
        assert!(!e.apply(Change::Init));
        assert!(!e.apply(Change::InitApply(n("a"), Some(1))));
        assert!(!e.apply(Change::InitApply(n("c"), Some(3))));
        assert_eq!(e.entries().len(), 2, "the old entries serve until the list is complete");
        assert!(e.entries().contains_key(&n("b")));
        assert!(e.apply(Change::InitDone));
        assert_eq!(e.entries().keys().cloned().collect::<Vec<_>>(), vec![n("a"), n("c")]);
        // The same list again changes nothing.
        let g = e.generation();
        for c in [Change::Init, Change::InitApply(n("a"), Some(1)), Change::InitApply(n("c"), Some(3))] {
            e.apply(c);
        }
        assert!(!e.apply(Change::InitDone));
        assert_eq!(e.generation(), g);
    }
}
