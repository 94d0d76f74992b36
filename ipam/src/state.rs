//! The IPAM decision state: pools, Services and who holds which address, changed incrementally by
//! the adapter's watch events, producing only the outputs that changed.
//!
//! # How the adapter drives it
//! - Start: after pools and Services are fully listed, call [`Ipam::resync`] (or wrap the
//!   individual `apply_*` calls in [`Ipam::begin_batch`] / [`Ipam::end_batch`]). Inside a batch
//!   every new Service's current ingress is imported before anything is allocated, in age order,
//!   so a restart never moves an address.
//! - Then per watch event: [`Ipam::apply_pool`], [`Ipam::delete_pool`], [`Ipam::apply_service`],
//!   [`Ipam::delete_service`]. A Service event costs O(log n) plus retries of Services still
//!   waiting for addresses when one is freed; a pool event re-plans only Services holding an
//!   address inside the changed pools' blocks, and the waiting ones.
//! - After each event (or batch), [`Ipam::take_changes`] returns Service status updates, Service
//!   clean-ups, pool status updates and Events, each only when it differs from what the object
//!   shows. A failed write: [`Ipam::mark_service_unwritten`] / [`Ipam::mark_pool_unwritten`].
//!
//! # When a held address stays ("still valid")
//! An address A held by Service S stays with S, across events, resyncs and restarts, while all of:
//! 1. S is served (type LoadBalancer, FerroLB's class or none with `--default-class`);
//! 2. S requests explicit addresses and A is one of them; or S requests none and A's family is one
//!    S asks for, and A is among the first `ip-count` addresses of that family S holds;
//! 3. A lies inside a parsed block of an existing pool P whose selector matches S (an invalid
//!    selector counts as matching: it cannot be evaluated, and a typo must not renumber Services)
//!    and, when S names pools (`ferrolb.io/pool`), P is one of them. P may be disabled, have
//!    `autoAssign: false`, be in conflict, or exclude A from *new* allocations (first/last,
//!    `.0`/`.255`): those rules govern new allocations only;
//! 4. when A is shared, S is compatible with every other holder (a Service whose change breaks
//!    compatibility is the one that leaves).
//!
//! Conflicts therefore never take an address away: the newer pool of an overlap allocates nothing
//! new, the older keeps working, and both keep what they hold (Cilium also keeps them until its
//! restart, then drops the newer pool's; we keep them across restarts too, since a conflict is
//! often caused by an edit of the *older* pool, and it would renumber the newer pool's Services).
//! An address is released when no pool covers it any more (pool deleted, block removed or
//! shrunk), when S no longer matches the selector or names another pool, or when S's request
//! changes (as in Cilium): those are explicit user decisions. It is re-homed to another covering
//! pool S may use if there is one, and remembered as a hint: if S gets a new address of that family
//! while the old one is free and allocatable for it (a pool deleted and re-created), it gets the
//! old one back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_api::names::{conditions, events, reasons};
use ferrolb_api::{Family, LoadBalancerIPPoolStatus};

use crate::allocator::BlockAllocator;
use crate::pool::{self, Addr, Block, Pool, PoolInput};
use crate::request::{Config, FamilyRule, Request};
use crate::service::{ConditionView, ServiceInput, ServiceKey};
use crate::sharing::SharingProfile;

/// Events kept as hints per Service (a pool delete and re-create gives the old address back).
const MAX_HINTS: usize = 16;

/// Normal or Warning, as Kubernetes Events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

/// An Event to emit on a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub service: ServiceKey,
    pub uid: String,
    pub event_type: EventType,
    /// One of `ferrolb_api::names::events`.
    pub reason: &'static str,
    pub message: String,
}

/// What FerroLB writes on a served Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatusOutput {
    /// `status.loadBalancer.ingress[].ip` (with `ipMode: VIP`), in a stable order: addresses
    /// keep their position; new ones are appended.
    pub ingress: Vec<IpAddr>,
    /// Pools the addresses came from, in ingress order, without repeats.
    pub pools: Vec<String>,
    /// The `ferrolb.io/IPAMRequestSatisfied` condition.
    pub condition: ConditionView,
}

impl ServiceStatusOutput {
    /// The `ferrolb.io/allocated-from-pool` annotation value; `None`: remove the annotation.
    pub fn allocated_from_pool(&self) -> Option<String> {
        ferrolb_api::service::allocated_from_pool::format(&self.pools)
    }
}

/// A Service write the adapter should make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceChange {
    /// Set ingress, condition and the pool annotation.
    Update { key: ServiceKey, uid: String, output: ServiceStatusOutput },
    /// The Service stopped being served: remove ingress, our condition and our annotation.
    Clear { key: ServiceKey, uid: String },
}

/// A pool's status as FerroLB writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStatusOutput {
    pub name: String,
    /// `ferrolb.io/PoolConflict`.
    pub conflict: ConditionView,
    /// `ferrolb.io/InvalidSpec`.
    pub invalid_spec: ConditionView,
    /// Addresses the pool may hand out (after first/last and `.0`/`.255` exclusions).
    pub total: u128,
    /// Addresses held by Services and attributed to this pool.
    pub used: u128,
    /// Free addresses new allocations could take (0 while the pool is in conflict).
    pub available: u128,
}

/// Everything that changed since the last [`Ipam::take_changes`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub services: Vec<ServiceChange>,
    pub pools: Vec<PoolStatusOutput>,
    pub events: Vec<Event>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.services.is_empty() && self.pools.is_empty() && self.events.is_empty()
    }
}

type SvcId = u32;

/// What the Service object shows (or will, once the last emitted update is written).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shown {
    ingress: Vec<String>,
    pools: Option<String>,
    condition: Option<ConditionView>,
}

struct Svc {
    /// Shared with the adapter's cache, which keeps the same input for every Service.
    input: Arc<ServiceInput>,
    request: Request,
    held: Vec<Addr>,
    condition: Option<ConditionView>,
    /// Whether the last plan left something unassigned (then it waits in `pending`).
    incomplete: bool,
    warnings_reported: Vec<String>,
    shown: Option<Shown>,
    hints: Vec<Addr>,
}

impl Svc {
    fn order_key(&self) -> (i64, ServiceKey) {
        (self.input.created, self.input.key.clone())
    }
}

struct Holding {
    pool: Arc<str>,
    owners: Vec<SvcId>,
}

/// An allocatable block: a block of a pool that is not in conflict.
struct Slot {
    last: u128,
    pool: Arc<str>,
    alloc: BlockAllocator,
}

struct PoolState {
    name: Arc<str>,
    pool: Pool,
    conflict: Option<String>,
    used: u128,
    shown: Option<PoolStatusOutput>,
}

/// Why an address could not be assigned: a reason of `ferrolb_api::names::reasons` and a message.
#[derive(Debug, Clone)]
struct Failure {
    reason: &'static str,
    message: String,
}

impl Failure {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self { reason, message: message.into() }
    }
}

/// The IPAM core. See the module documentation for how to drive it.
pub struct Ipam {
    config: Config,
    pools: BTreeMap<String, PoolState>,
    /// Pool names in automatic-allocation order.
    order: Vec<Arc<str>>,
    /// Blocks of pools not in conflict, by first address (disjoint by construction).
    slots: BTreeMap<Addr, Slot>,
    /// Blocks of pools in conflict: they allocate nothing but still cover what they hold.
    conflicted: Vec<(Arc<str>, Block)>,
    addrs: BTreeMap<Addr, Holding>,
    /// Addresses held by Services with a sharing key, by key.
    sharing: HashMap<String, BTreeSet<Addr>>,
    svcs: Vec<Option<Svc>>,
    free_ids: Vec<SvcId>,
    ids: HashMap<ServiceKey, SvcId>,
    pending: BTreeSet<(i64, ServiceKey)>,
    dirty_svcs: BTreeSet<SvcId>,
    dirty_pools: BTreeSet<String>,
    cleared: Vec<ServiceChange>,
    events: Vec<Event>,
    /// Addresses freed, left by one of their sharers, or offered to a sharing group since waiting
    /// Services were last retried.
    touched: Vec<Addr>,
    /// Inside a batch: Services to plan at its end, in age order.
    batch: Option<BTreeSet<(i64, ServiceKey)>>,
}

impl Ipam {
    pub fn new(config: Config) -> Self {
        Self {
            config,
            pools: BTreeMap::new(),
            order: Vec::new(),
            slots: BTreeMap::new(),
            conflicted: Vec::new(),
            addrs: BTreeMap::new(),
            sharing: HashMap::new(),
            svcs: Vec::new(),
            free_ids: Vec::new(),
            ids: HashMap::new(),
            pending: BTreeSet::new(),
            dirty_svcs: BTreeSet::new(),
            dirty_pools: BTreeSet::new(),
            cleared: Vec::new(),
            events: Vec::new(),
            touched: Vec::new(),
            batch: None,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    // ---------------------------------------------------------------- batches and resync

    /// Defers planning until [`Ipam::end_batch`]: addresses of new Services are imported at once,
    /// allocation waits, so no Service takes an address another one of the batch already shows.
    pub fn begin_batch(&mut self) {
        if self.batch.is_none() {
            self.batch = Some(BTreeSet::new());
        }
    }

    /// Plans every Service the batch touched, oldest first, then the waiting ones.
    pub fn end_batch(&mut self) {
        let Some(todo) = self.batch.take() else { return };
        for (_, key) in todo {
            if let Some(&id) = self.ids.get(&key) {
                self.plan(id);
            }
        }
        self.retry_all_pending();
        self.retry_touched();
    }

    /// Replaces the whole picture with a full listing: pools and Services not listed are deleted,
    /// the others applied, all in one batch. This is the start-up path (and a re-list's); the
    /// result does not depend on the order of either list.
    pub fn resync<S: Into<Arc<ServiceInput>>>(&mut self, pools: Vec<PoolInput>, services: Vec<S>) {
        let mut services: Vec<Arc<ServiceInput>> = services.into_iter().map(Into::into).collect();
        self.begin_batch();
        let listed: BTreeSet<&str> = pools.iter().map(|p| p.name.as_str()).collect();
        let gone: Vec<String> = self.pools.keys().filter(|n| !listed.contains(n.as_str())).cloned().collect();
        for name in gone {
            self.delete_pool(&name);
        }
        for p in pools {
            self.apply_pool(p);
        }
        let listed: BTreeSet<&ServiceKey> = services.iter().map(|s| &s.key).collect();
        let gone: Vec<ServiceKey> = self.ids.keys().filter(|k| !listed.contains(k)).cloned().collect();
        for key in gone {
            self.delete_service(&key);
        }
        // Age order makes imports of contested addresses deterministic: the older Service wins.
        services.sort_by(|a, b| (a.created, &a.key).cmp(&(b.created, &b.key)));
        for s in services {
            self.apply_service(s);
        }
        self.end_batch();
    }

    // ---------------------------------------------------------------- pools

    /// A pool was added or changed.
    pub fn apply_pool(&mut self, input: PoolInput) {
        let parsed = Pool::parse(&input);
        let shown = input.status.as_ref().map(|s| shown_pool(&input.name, s));
        if let Some(ps) = self.pools.get_mut(&input.name) {
            if shown.is_some() && shown != ps.shown {
                ps.shown = shown;
                self.dirty_pools.insert(input.name.clone());
            }
            if ps.pool == parsed {
                return;
            }
            let old = std::mem::replace(&mut ps.pool, parsed);
            self.pools_changed(vec![old], &[input.name]);
        } else {
            let name = input.name.clone();
            let arc: Arc<str> = Arc::from(name.as_str());
            // Addresses may still be attributed to a pool of this name deleted earlier in a batch.
            let used = self.addrs.values().filter(|h| *h.pool == *name).count() as u128;
            self.pools
                .insert(name.clone(), PoolState { name: arc, pool: parsed, conflict: None, used, shown });
            self.pools_changed(Vec::new(), &[name]);
        }
    }

    /// A pool was deleted: its addresses are re-homed to another covering pool or released.
    pub fn delete_pool(&mut self, name: &str) {
        if let Some(ps) = self.pools.remove(name) {
            self.dirty_pools.remove(name);
            self.pools_changed(vec![ps.pool], &[]);
        }
    }

    /// Recomputes conflicts, order and slots after pool changes; re-plans the Services holding
    /// addresses in the blocks of pools whose effective state changed, then the waiting ones.
    fn pools_changed(&mut self, old: Vec<Pool>, changed: &[String]) {
        let conflicts = pool::conflicts(self.pools.values().map(|p| &p.pool));
        let mut affected_pools: Vec<Pool> = old;
        for (name, ps) in &mut self.pools {
            let c = conflicts.get(name).cloned();
            if c != ps.conflict || changed.contains(name) {
                ps.conflict = c;
                affected_pools.push(ps.pool.clone());
                self.dirty_pools.insert(name.clone());
            }
        }
        let mut order: Vec<&PoolState> = self.pools.values().collect();
        order.sort_by(|a, b| a.pool.order_key().cmp(&b.pool.order_key()));
        self.order = order.iter().map(|p| p.name.clone()).collect();

        // Rebuild slots, reusing the allocator of every unchanged block.
        let mut old_slots = std::mem::take(&mut self.slots);
        self.conflicted.clear();
        for ps in self.pools.values() {
            for b in &ps.pool.blocks {
                let key = Addr { family: b.family(), n: b.first };
                if ps.conflict.is_some() {
                    self.conflicted.push((ps.name.clone(), b.clone()));
                    continue;
                }
                let reuse = old_slots
                    .remove(&key)
                    .filter(|s| s.last == b.last && s.pool == ps.name && *s.alloc.bounds() == b.bounds);
                let slot = reuse.unwrap_or_else(|| {
                    let mut alloc = BlockAllocator::new(b.bounds);
                    let end = Addr { family: b.family(), n: b.last };
                    for a in self.addrs.range(key..=end).map(|(a, _)| a) {
                        alloc.insert(a.n);
                    }
                    Slot { last: b.last, pool: ps.name.clone(), alloc }
                });
                self.slots.insert(key, slot);
            }
        }

        // Everyone holding an address inside a block that changed in any way.
        let mut holders = BTreeSet::new();
        for p in &affected_pools {
            for b in &p.blocks {
                let (s, e) =
                    (Addr { family: b.family(), n: b.first }, Addr { family: b.family(), n: b.last });
                for h in self.addrs.range(s..=e).map(|(_, h)| h) {
                    for id in &h.owners {
                        if let Some(svc) = self.svc(*id) {
                            holders.insert(svc.order_key());
                        }
                    }
                }
            }
        }
        for (_, key) in holders {
            if let Some(&id) = self.ids.get(&key) {
                self.plan_or_defer(id);
            }
        }
        self.retry_all_pending();
        self.retry_touched();
    }

    // ---------------------------------------------------------------- services

    /// A Service was added or changed (any field, including its status).
    /// The input is taken shared (`Arc`) or owned: the adapter keeps its own handle on it.
    pub fn apply_service(&mut self, input: impl Into<Arc<ServiceInput>>) {
        let input: Arc<ServiceInput> = input.into();
        let served = self.config.serves(&input);
        let existing = self.ids.get(&input.key).copied();
        if let Some(id) = existing
            && self.svc(id).is_some_and(|s| s.input.uid != input.uid)
        {
            // Deleted and re-created while we were not looking: the old one is gone.
            self.remove_service(id, "the Service was re-created");
            return self.apply_service(input);
        }
        match (existing, served) {
            (None, false) => {}
            (Some(id), false) => {
                let uid = input.uid.clone();
                let key = input.key.clone();
                self.remove_service(id, "the Service is no longer served by FerroLB");
                self.cleared.push(ServiceChange::Clear { key, uid });
            }
            (None, true) => {
                let id = self.insert_service(input);
                self.import(id);
                self.plan_or_defer(id);
            }
            (Some(id), true) => {
                let request = Request::parse(&input, &self.config);
                let svc = self.svc_mut(id);
                let observed = shown_service(&input);
                let status_changed = svc.input.status != input.status;
                let plan_inputs_changed = svc.request != request
                    || svc.input.labels != input.labels
                    || svc.input.load_balancer_class != input.load_balancer_class;
                svc.input = input;
                svc.request = request;
                if status_changed {
                    // Someone else edited what we wrote (or our write landed): compare afresh.
                    svc.shown = Some(observed);
                    self.dirty_svcs.insert(id);
                }
                if plan_inputs_changed {
                    self.plan_or_defer(id);
                }
            }
        }
        // Whatever this Service let go of may complete a waiting one.
        self.retry_touched();
    }

    /// A Service was deleted: its addresses are released (a shared one when its last user goes).
    pub fn delete_service(&mut self, key: &ServiceKey) {
        if let Some(&id) = self.ids.get(key) {
            self.remove_service(id, "the Service was deleted");
            self.retry_touched();
        }
    }

    fn insert_service(&mut self, input: Arc<ServiceInput>) -> SvcId {
        let request = Request::parse(&input, &self.config);
        let shown = shown_service(&input);
        // Warnings already in the condition were reported before a restart.
        let warnings_reported = match &shown.condition {
            Some(c) if request.warnings.iter().all(|w| c.message.contains(w.as_str())) => {
                request.warnings.clone()
            }
            _ => Vec::new(),
        };
        let svc = Svc {
            condition: shown.condition.clone(),
            input,
            request,
            held: Vec::new(),
            incomplete: false,
            warnings_reported,
            shown: Some(shown),
            hints: Vec::new(),
        };
        let key = svc.input.key.clone();
        let id = match self.free_ids.pop() {
            Some(id) => {
                self.svcs[id as usize] = Some(svc);
                id
            }
            None => {
                self.svcs.push(Some(svc));
                (self.svcs.len() - 1) as SvcId
            }
        };
        self.ids.insert(key, id);
        self.dirty_svcs.insert(id);
        id
    }

    fn remove_service(&mut self, id: SvcId, why: &str) {
        let held = self.svc(id).map(|s| s.held.clone()).unwrap_or_default();
        for a in held {
            self.release(id, a, why);
        }
        if let Some(svc) = self.svcs[id as usize].take() {
            self.pending.remove(&svc.order_key());
            if let Some(b) = &mut self.batch {
                b.remove(&svc.order_key());
            }
            self.ids.remove(&svc.input.key);
            self.dirty_svcs.remove(&id);
            self.free_ids.push(id);
        }
    }

    fn svc(&self, id: SvcId) -> Option<&Svc> {
        self.svcs.get(id as usize).and_then(Option::as_ref)
    }

    fn svc_mut(&mut self, id: SvcId) -> &mut Svc {
        self.svcs[id as usize].as_mut().expect("live service id")
    }

    // ---------------------------------------------------------------- outputs

    /// Outputs that changed since the last call, in a deterministic order.
    pub fn take_changes(&mut self) -> Changes {
        let mut services = std::mem::take(&mut self.cleared);
        let dirty = std::mem::take(&mut self.dirty_svcs);
        let mut updates = Vec::new();
        for id in dirty {
            let Some(out) = self.output_of(id) else { continue };
            let svc = self.svc_mut(id);
            let desired = Shown {
                ingress: out.ingress.iter().map(|i| i.to_string()).collect(),
                pools: out.allocated_from_pool(),
                condition: Some(out.condition.clone()),
            };
            if svc.shown.as_ref() != Some(&desired) {
                svc.shown = Some(desired);
                updates.push(ServiceChange::Update {
                    key: svc.input.key.clone(),
                    uid: svc.input.uid.clone(),
                    output: out,
                });
            }
        }
        updates.sort_by(|a, b| change_key(a).cmp(change_key(b)));
        services.extend(updates);

        let mut pools = Vec::new();
        for name in std::mem::take(&mut self.dirty_pools) {
            let Some(out) = self.pool_output(&name) else { continue };
            let ps = self.pools.get_mut(&name).expect("dirty pool exists");
            if ps.shown.as_ref() != Some(&out) {
                ps.shown = Some(out.clone());
                pools.push(out);
            }
        }
        Changes { services, pools, events: std::mem::take(&mut self.events) }
    }

    /// The output FerroLB wants on a served Service now.
    pub fn service_output(&self, key: &ServiceKey) -> Option<ServiceStatusOutput> {
        self.ids.get(key).and_then(|id| self.output_of(*id))
    }

    fn output_of(&self, id: SvcId) -> Option<ServiceStatusOutput> {
        let svc = self.svc(id)?;
        let mut pools: Vec<String> = Vec::new();
        for a in &svc.held {
            if let Some(h) = self.addrs.get(a)
                && !pools.iter().any(|p| **p == *h.pool)
            {
                pools.push(h.pool.to_string());
            }
        }
        Some(ServiceStatusOutput {
            ingress: svc.held.iter().map(|a| a.ip()).collect(),
            pools,
            condition: svc
                .condition
                .clone()
                .unwrap_or_else(|| ConditionView::new(false, reasons::NO_POOL, "")),
        })
    }

    /// The status FerroLB wants on a pool now.
    pub fn pool_output(&self, name: &str) -> Option<PoolStatusOutput> {
        let ps = self.pools.get(name)?;
        let total = ps.pool.capacity();
        let available = if ps.conflict.is_some() {
            0
        } else {
            ps.pool.blocks.iter().fold(0u128, |acc, b| {
                let key = Addr { family: b.family(), n: b.first };
                acc.saturating_add(self.slots.get(&key).map_or(0, |s| s.alloc.free()))
            })
        };
        let conflict = match &ps.conflict {
            Some(m) => ConditionView::new(true, pool::reasons::CIDR_OVERLAP, m.clone()),
            None => ConditionView::new(false, pool::reasons::NO_CONFLICT, ""),
        };
        let invalid_spec = if !ps.pool.errors.is_empty() {
            let all = ps.pool.errors.iter().chain(&ps.pool.warnings).cloned().collect::<Vec<_>>();
            ConditionView::new(true, pool::reasons::INVALID_SPEC, all.join("; "))
        } else if !ps.pool.warnings.is_empty() {
            ConditionView::new(false, pool::reasons::VALID_WITH_WARNINGS, ps.pool.warnings.join("; "))
        } else {
            ConditionView::new(false, pool::reasons::VALID, "")
        };
        Some(PoolStatusOutput {
            name: name.to_string(),
            conflict,
            invalid_spec,
            total,
            used: ps.used,
            available,
        })
    }

    /// The last Service update could not be written: emit it again on the next `take_changes`.
    pub fn mark_service_unwritten(&mut self, key: &ServiceKey) {
        if let Some(&id) = self.ids.get(key) {
            self.svc_mut(id).shown = None;
            self.dirty_svcs.insert(id);
        }
    }

    /// The last pool status could not be written: emit it again on the next `take_changes`.
    pub fn mark_pool_unwritten(&mut self, name: &str) {
        if let Some(ps) = self.pools.get_mut(name) {
            ps.shown = None;
            self.dirty_pools.insert(name.to_string());
        }
    }

    /// Who holds an address (for `ferrolbctl who-owns` and tests), oldest holder first.
    pub fn holders(&self, ip: IpAddr) -> Vec<ServiceKey> {
        let mut v: Vec<(i64, ServiceKey)> = self
            .addrs
            .get(&Addr::of(ip))
            .map(|h| h.owners.iter().filter_map(|id| self.svc(*id)).map(Svc::order_key).collect())
            .unwrap_or_default();
        v.sort();
        v.into_iter().map(|(_, k)| k).collect()
    }

    /// Number of Services known (served).
    pub fn service_count(&self) -> usize {
        self.ids.len()
    }

    // ---------------------------------------------------------------- planning

    fn plan_or_defer(&mut self, id: SvcId) {
        let Some(key) = self.svc(id).map(Svc::order_key) else { return };
        match &mut self.batch {
            Some(b) => {
                b.insert(key);
            }
            None => self.plan(id),
        }
    }

    fn retry_all_pending(&mut self) {
        let pending: Vec<(i64, ServiceKey)> = self.pending.iter().cloned().collect();
        for (_, key) in pending {
            if let Some(&id) = self.ids.get(&key) {
                self.plan_or_defer(id);
            }
        }
    }

    /// Gives freed addresses to waiting Services, oldest first. Only Services that could use one
    /// of them (same family, or requesting it) are re-planned.
    fn retry_touched(&mut self) {
        if self.batch.is_some() {
            return;
        }
        // Each round only re-plans; a release inside it adds to `touched` for the next round.
        for _ in 0..8 {
            let touched = std::mem::take(&mut self.touched);
            if touched.is_empty() || self.pending.is_empty() {
                self.touched.clear();
                return;
            }
            let pending: Vec<(i64, ServiceKey)> = self.pending.iter().cloned().collect();
            for (_, key) in pending {
                let Some(&id) = self.ids.get(&key) else { continue };
                let svc = self.svc(id).expect("pending service exists");
                let could_use = touched.iter().any(|a| {
                    if svc.request.ips.is_empty() {
                        svc.request.families.contains(&a.family)
                    } else {
                        svc.request.ips.contains(&a.ip())
                    }
                });
                if could_use {
                    self.plan(id);
                }
            }
        }
    }

    /// Imports a new Service's current ingress: every address that is still valid for it (see
    /// the module documentation) and free, or shared compatibly, stays, in the order shown.
    fn import(&mut self, id: SvcId) {
        let svc = self.svc(id).expect("new service");
        let mut seen = Vec::new();
        for s in &svc.input.status.ingress {
            if let Ok(ip) = s.trim().parse::<IpAddr>()
                && !seen.contains(&ip)
            {
                seen.push(ip);
            }
        }
        let mut per_family: BTreeMap<Family, u32> = BTreeMap::new();
        for ip in seen {
            let a = Addr::of(ip);
            let svc = self.svc(id).expect("new service");
            let req = &svc.request;
            let auto = req.ips.is_empty();
            if auto {
                let n = per_family.get(&a.family).copied().unwrap_or(0);
                if !req.families.contains(&a.family) || n >= req.count {
                    continue;
                }
            } else if !req.ips.contains(&ip) {
                continue;
            }
            let Some(pool) = self.holding_pool(id, a) else { continue };
            if self.join_check(id, a).is_err() {
                continue;
            }
            self.take(id, a, pool, false);
            if auto {
                *per_family.entry(a.family).or_default() += 1;
            }
        }
    }

    /// Re-decides one Service: drops what is no longer valid, then fills what is missing.
    fn plan(&mut self, id: SvcId) {
        let Some(svc) = self.svc(id) else { return };
        let request = svc.request.clone();
        let held = svc.held.clone();

        // 1. Validate held addresses.
        let mut kept_per_family: BTreeMap<Family, u32> = BTreeMap::new();
        for a in held {
            let why = if request.ips.is_empty() {
                let n = kept_per_family.entry(a.family).or_default();
                if !request.families.contains(&a.family) {
                    Some(format!("{} is no longer requested", a.family))
                } else if *n >= request.count {
                    Some(format!("ip-count is {}", request.count))
                } else {
                    *n += 1;
                    None
                }
            } else if !request.ips.contains(&a.ip()) {
                Some("it is no longer requested".to_string())
            } else {
                None
            };
            let why = why.or_else(|| match self.holding_pool(id, a) {
                None => Some("no pool this Service may use contains it any more".into()),
                Some(p) => {
                    let h = self.addrs.get(&a).expect("held address is recorded");
                    if *h.pool != *p && !self.pool_covers(&h.pool, a) {
                        self.reattribute(a, p);
                    }
                    None
                }
            });
            let why = why.or_else(|| self.sharing_check(id, a).err());
            if let Some(why) = why {
                if request.ips.is_empty() {
                    // Only an address that counted towards its family is lost: forget the count.
                    let svc = self.svc_mut(id);
                    if !svc.hints.contains(&a) {
                        svc.hints.push(a);
                        if svc.hints.len() > MAX_HINTS {
                            svc.hints.remove(0);
                        }
                    }
                }
                self.release(id, a, &why);
            }
        }

        // A Service with a sharing key offers what it holds to its group; its profile may have
        // just become compatible with a waiting Service, so those are retried too.
        if let Some(k) = request.sharing.as_ref().map(|p| p.key.clone()) {
            let held = self.svc(id).expect("live").held.clone();
            self.sharing.entry(k).or_default().extend(held.iter().copied());
            self.touched.extend(held);
        }

        // 2. Fill.
        let mut failures: Vec<(Option<Family>, Failure)> = Vec::new();
        if !request.ips.is_empty() {
            for ip in &request.ips {
                let a = Addr::of(*ip);
                if self.svc(id).expect("live").held.contains(&a) {
                    continue;
                }
                if let Err(f) = self.take_explicit(id, a) {
                    failures.push((None, f));
                }
            }
        } else {
            for fam in &request.families {
                let have = self.held_in(id, *fam);
                if have < request.count
                    && let Err(f) = self.fill_family(id, *fam, request.count - have)
                {
                    failures.push((Some(*fam), f));
                }
            }
        }

        // 3. Condition and bookkeeping.
        let condition = self.condition_for(id, &request, &failures);
        let incomplete = !failures.is_empty();
        let svc = self.svc_mut(id);
        let key = svc.order_key();
        let uid = svc.input.uid.clone();
        let prev = svc.condition.replace(condition.clone());
        svc.incomplete = incomplete;
        let new_warnings: Vec<String> =
            request.warnings.iter().filter(|w| !svc.warnings_reported.contains(w)).cloned().collect();
        svc.warnings_reported = request.warnings.clone();
        if incomplete {
            self.pending.insert(key.clone());
        } else {
            self.pending.remove(&key);
        }
        for w in new_warnings {
            self.event(&key.1, &uid, EventType::Warning, events::INVALID_ANNOTATION, w);
        }
        if !condition.status && prev.as_ref() != Some(&condition) {
            self.event(
                &key.1,
                &uid,
                EventType::Warning,
                events::ALLOCATION_FAILED,
                condition.message.clone(),
            );
        }
        self.dirty_svcs.insert(id);
    }

    fn condition_for(
        &self,
        id: SvcId,
        request: &Request,
        failures: &[(Option<Family>, Failure)],
    ) -> ConditionView {
        let mut cond = if !request.ips.is_empty() {
            match failures.first() {
                None => ConditionView::new(true, reasons::SATISFIED, ""),
                Some((_, f)) => ConditionView::new(false, f.reason, join_messages(failures)),
            }
        } else {
            let counts: Vec<(Family, u32)> =
                request.families.iter().map(|f| (*f, self.held_in(id, *f))).collect();
            let any = counts.iter().any(|(_, n)| *n > 0);
            let fully = |n: u32| n >= request.count;
            let relevant: Vec<&(Family, u32)> = match request.family_rule {
                FamilyRule::All => counts.iter().collect(),
                FamilyRule::AtLeastOne => counts.iter().filter(|(_, n)| *n > 0).collect(),
            };
            let missing_family = relevant.iter().any(|(_, n)| *n == 0) || !any;
            if missing_family {
                let reason = failures.first().map_or(reasons::NO_POOL, |(_, f)| f.reason);
                ConditionView::new(false, reason, join_messages(failures))
            } else if relevant.iter().all(|(_, n)| fully(*n)) {
                // PreferDualStack: satisfied with one family; say why the other is missing.
                ConditionView::new(true, reasons::SATISFIED, join_messages(failures))
            } else {
                let multi = counts.len() > 1;
                let parts: Vec<String> = relevant
                    .iter()
                    .filter(|(_, n)| !fully(*n))
                    .map(|(f, n)| {
                        let prefix = if multi { format!("{f}: ") } else { String::new() };
                        format!("{prefix}{n} of {} assigned", request.count)
                    })
                    .collect();
                let mut msg = parts.join("; ");
                let why = join_messages(failures);
                if !why.is_empty() {
                    msg = format!("{msg} ({why})");
                }
                ConditionView::new(false, reasons::PARTIALLY_SATISFIED, msg)
            }
        };
        if !request.warnings.is_empty() {
            let ignored = format!("ignored: {}", request.warnings.join("; "));
            cond.message =
                if cond.message.is_empty() { ignored } else { format!("{}; {ignored}", cond.message) };
        }
        cond
    }

    fn held_in(&self, id: SvcId, fam: Family) -> u32 {
        self.svc(id).map_or(0, |s| s.held.iter().filter(|a| a.family == fam).count() as u32)
    }

    /// Fills `need` addresses of one family: first by joining the sharing group, then hints, then
    /// the lowest free address of the first usable pool.
    fn fill_family(&mut self, id: SvcId, fam: Family, mut need: u32) -> Result<(), Failure> {
        // Join addresses of the same sharing key.
        let key = self.svc(id).and_then(|s| s.request.sharing.as_ref()).map(|p| p.key.clone());
        if let Some(key) = key {
            let group: Vec<Addr> = self
                .sharing
                .get(&key)
                .map(|s| s.iter().filter(|a| a.family == fam).copied().collect())
                .unwrap_or_default();
            for a in group {
                if need == 0 {
                    return Ok(());
                }
                if self.svc(id).expect("live").held.contains(&a) || self.join_check(id, a).is_err() {
                    continue;
                }
                if let Some(pool) = self.holding_pool(id, a) {
                    self.take(id, a, pool, true);
                    need -= 1;
                }
            }
        }
        // Hints: addresses this Service lost to a pool change, if allocatable again.
        let hints: Vec<Addr> =
            self.svc(id).expect("live").hints.iter().filter(|a| a.family == fam).copied().collect();
        for a in hints {
            if need == 0 {
                return Ok(());
            }
            if self.addrs.contains_key(&a) {
                continue;
            }
            if let Some((_, slot)) = self.slot_of(a)
                && slot.alloc.bounds().allows(a.n)
                && self.may_allocate(&slot.pool.clone(), id, false).is_ok()
            {
                let pool = slot.pool.clone();
                self.svc_mut(id).hints.retain(|h| *h != a);
                self.take(id, a, pool, true);
                need -= 1;
            }
        }
        if need == 0 {
            return Ok(());
        }
        // Pools in order: the named ones in the Service's order, else every pool by priority.
        let named = self.svc(id).expect("live").request.pools.clone();
        let candidates: Vec<Arc<str>> = if named.is_empty() {
            self.order.clone()
        } else {
            named.iter().filter_map(|n| self.pools.get(n).map(|p| p.name.clone())).collect()
        };
        let mut usable = false;
        let mut first_refusal: Option<Failure> = None;
        for pool in candidates {
            match self.may_allocate(&pool, id, false) {
                Ok(()) => {}
                Err(f) => {
                    first_refusal.get_or_insert(f);
                    continue;
                }
            }
            let keys = self.slot_keys(&pool, fam);
            if keys.is_empty() {
                continue;
            }
            usable = true;
            for k in keys {
                while need > 0 {
                    let slot = self.slots.get_mut(&k).expect("slot key");
                    let Some(n) = slot.alloc.lowest_free() else { break };
                    let a = Addr { family: fam, n };
                    self.take(id, a, pool.clone(), true);
                    need -= 1;
                }
                if need == 0 {
                    return Ok(());
                }
            }
        }
        let name = self.svc(id).expect("live").input.key.to_string();
        if usable {
            Err(Failure::new(reasons::OUT_OF_IPS, format!("every {fam} pool usable by {name} is full")))
        } else if !named.is_empty() {
            let why = first_refusal.map(|f| f.message).unwrap_or_else(|| {
                format!("none of the named pools ({}) exists or has {fam} addresses", named.join(", "))
            });
            Err(Failure::new(reasons::NO_POOL, why))
        } else {
            Err(Failure::new(
                reasons::NO_POOL,
                format!("no enabled pool with {fam} addresses selects this Service"),
            ))
        }
    }

    /// Assigns a requested address.
    fn take_explicit(&mut self, id: SvcId, a: Addr) -> Result<(), Failure> {
        let Some((_, slot)) = self.slot_of(a) else {
            if let Some((p, _)) = self.conflicted.iter().find(|(_, b)| b.contains(a)) {
                return Err(Failure::new(
                    reasons::NO_POOL,
                    format!("{a}: pool {p:?} containing it is in conflict with another pool"),
                ));
            }
            return Err(Failure::new(reasons::NO_POOL, format!("{a}: no pool contains it")));
        };
        let pool = slot.pool.clone();
        let allowed = slot.alloc.bounds().allows(a.n);
        self.may_allocate(&pool, id, true)
            .map_err(|f| Failure::new(f.reason, format!("{a}: {}", f.message)))?;
        if self.addrs.contains_key(&a) {
            self.join_check(id, a)?;
            self.take(id, a, pool, true);
            return Ok(());
        }
        if !allowed {
            return Err(Failure::new(
                reasons::ALREADY_ALLOCATED,
                format!("{a} is reserved by pool {pool:?} (allowFirstLastIPs: No or avoidBuggyIPs)"),
            ));
        }
        self.take(id, a, pool, true);
        Ok(())
    }

    /// Whether `id` may get *new* addresses from `pool`; `explicit` for requested addresses.
    fn may_allocate(&self, pool: &str, id: SvcId, explicit: bool) -> Result<(), Failure> {
        let ps = &self.pools[pool];
        let svc = self.svc(id).expect("live");
        if ps.conflict.is_some() {
            return Err(Failure::new(
                reasons::NO_POOL,
                format!("pool {pool:?} is in conflict with another pool"),
            ));
        }
        if ps.pool.disabled {
            return Err(Failure::new(reasons::NO_POOL, format!("pool {pool:?} is disabled")));
        }
        if !svc.request.pools.is_empty() && !svc.request.pools.iter().any(|p| p == pool) {
            return Err(Failure::new(
                reasons::POOL_SELECTOR_MISMATCH,
                format!("pool {pool:?} is not one the Service names ({})", svc.request.pools.join(", ")),
            ));
        }
        match ps.pool.selects(&svc.input) {
            Some(true) => {}
            Some(false) => {
                return Err(Failure::new(
                    reasons::POOL_SELECTOR_MISMATCH,
                    format!("pool {pool:?} does not select this Service"),
                ));
            }
            None => {
                return Err(Failure::new(reasons::NO_POOL, format!("pool {pool:?} has an invalid selector")));
            }
        }
        if !explicit && svc.request.pools.is_empty() && !ps.pool.auto_assign {
            return Err(Failure::new(
                reasons::NO_POOL,
                format!("pool {pool:?} only serves explicit requests"),
            ));
        }
        Ok(())
    }

    /// The pool an address held by (or offered to) `id` is attributed to: its current pool when
    /// that still covers it and lets `id` hold it, else the best covering pool `id` may hold
    /// from (not in conflict first, then allocation order). `None`: the address is not valid.
    fn holding_pool(&self, id: SvcId, a: Addr) -> Option<Arc<str>> {
        let svc = self.svc(id)?;
        let ok = |pool: &str| {
            let Some(ps) = self.pools.get(pool) else { return false };
            (svc.request.pools.is_empty() || svc.request.pools.iter().any(|p| p == pool))
                && ps.pool.selects(&svc.input) != Some(false)
        };
        if let Some(h) = self.addrs.get(&a)
            && ok(&h.pool)
            && self.pool_covers(&h.pool, a)
        {
            return Some(h.pool.clone());
        }
        if let Some((_, slot)) = self.slot_of(a)
            && ok(&slot.pool)
        {
            return Some(slot.pool.clone());
        }
        let mut conflicted: Vec<&Arc<str>> =
            self.conflicted.iter().filter(|(p, b)| b.contains(a) && ok(p)).map(|(p, _)| p).collect();
        conflicted.sort_by_key(|p| self.order.iter().position(|o| o == *p));
        conflicted.first().map(|p| (*p).clone())
    }

    fn pool_covers(&self, pool: &str, a: Addr) -> bool {
        self.pools.get(pool).is_some_and(|ps| ps.pool.blocks.iter().any(|b| b.contains(a)))
    }

    /// The allocatable block containing `a`, if any.
    fn slot_of(&self, a: Addr) -> Option<(Addr, &Slot)> {
        self.slots
            .range(..=a)
            .next_back()
            .filter(|(k, s)| k.family == a.family && s.last >= a.n)
            .map(|(k, s)| (*k, s))
    }

    fn slot_of_mut(&mut self, a: Addr) -> Option<&mut Slot> {
        self.slots
            .range_mut(..=a)
            .next_back()
            .filter(|(k, s)| k.family == a.family && s.last >= a.n)
            .map(|(_, s)| s)
    }

    /// Slots of one pool and family, lowest first.
    fn slot_keys(&self, pool: &str, fam: Family) -> Vec<Addr> {
        let Some(ps) = self.pools.get(pool) else { return Vec::new() };
        let mut keys: Vec<Addr> = ps
            .pool
            .blocks
            .iter()
            .filter(|b| b.family() == fam)
            .map(|b| Addr { family: fam, n: b.first })
            .filter(|k| self.slots.contains_key(k))
            .collect();
        keys.sort();
        keys
    }

    /// Whether `id` may join the holders of `a` (free addresses always pass).
    fn join_check(&self, id: SvcId, a: Addr) -> Result<(), Failure> {
        let Some(h) = self.addrs.get(&a) else { return Ok(()) };
        if h.owners.contains(&id) {
            return Ok(());
        }
        let svc = self.svc(id).expect("live");
        let Some(mine) = &svc.request.sharing else {
            return Err(Failure::new(
                reasons::ALREADY_ALLOCATED,
                format!("{a} is already allocated to another Service"),
            ));
        };
        for o in &h.owners {
            let other = self.svc(*o).expect("owner is live");
            let why = match &other.request.sharing {
                None => Some("the other Service has no sharing key".to_string()),
                Some(theirs) => mine.incompatibility(theirs),
            };
            if let Some(why) = why {
                return Err(Failure::new(
                    reasons::ALREADY_ALLOCATED_INCOMPATIBLE_SERVICE,
                    format!("{a} is already allocated to {}, which cannot share it: {why}", other.input.key),
                ));
            }
        }
        Ok(())
    }

    /// Whether `id` may keep sharing `a` with its other holders.
    fn sharing_check(&self, id: SvcId, a: Addr) -> Result<(), String> {
        let h = self.addrs.get(&a).expect("held address is recorded");
        if h.owners.len() == 1 {
            return Ok(());
        }
        let svc = self.svc(id).expect("live");
        let mine: Option<&SharingProfile> = svc.request.sharing.as_ref();
        for o in h.owners.iter().filter(|o| **o != id) {
            let other = self.svc(*o).expect("owner is live");
            let why = match (mine, &other.request.sharing) {
                (Some(m), Some(t)) => m.incompatibility(t),
                _ => Some("a sharing key was removed".into()),
            };
            if let Some(why) = why {
                return Err(format!("it can no longer be shared with {}: {why}", other.input.key));
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------- taking and releasing

    fn take(&mut self, id: SvcId, a: Addr, pool: Arc<str>, announce: bool) {
        let key = self.svc(id).and_then(|s| s.request.sharing.as_ref()).map(|p| p.key.clone());
        let shared = match self.addrs.get_mut(&a) {
            Some(h) => {
                h.owners.push(id);
                true
            }
            None => {
                self.addrs.insert(a, Holding { pool: pool.clone(), owners: vec![id] });
                if let Some(slot) = self.slot_of_mut(a) {
                    slot.alloc.insert(a.n);
                }
                if let Some(ps) = self.pools.get_mut(&*pool) {
                    ps.used += 1;
                    self.dirty_pools.insert(pool.to_string());
                }
                if let Some(k) = &key {
                    self.sharing.entry(k.clone()).or_default().insert(a);
                }
                false
            }
        };
        if key.is_some() {
            // Offered to the sharing group: a waiting Service with the same key may join it.
            self.touched.push(a);
        }
        let svc = self.svc_mut(id);
        svc.held.push(a);
        svc.hints.retain(|h| *h != a);
        if announce {
            let (k, uid) = (svc.input.key.clone(), svc.input.uid.clone());
            let msg = if shared {
                format!("sharing {a} (pool {:?}) with other Services", &*pool)
            } else {
                format!("assigned {a} from pool {:?}", &*pool)
            };
            self.event(&k, &uid, EventType::Normal, events::IP_ALLOCATED, msg);
        }
        self.dirty_svcs.insert(id);
    }

    fn release(&mut self, id: SvcId, a: Addr, why: &str) {
        let key = self.svc(id).and_then(|s| s.request.sharing.as_ref()).map(|p| p.key.clone());
        let Some(h) = self.addrs.get_mut(&a) else { return };
        h.owners.retain(|o| *o != id);
        let pool = h.pool.clone();
        if h.owners.is_empty() {
            self.addrs.remove(&a);
            if let Some(slot) = self.slot_of_mut(a) {
                slot.alloc.remove(a.n);
            }
            if let Some(ps) = self.pools.get_mut(&*pool) {
                ps.used -= 1;
                self.dirty_pools.insert(pool.to_string());
            }
            // The sharing key may have changed since the address was indexed: look everywhere
            // only in that rare case.
            let removed = key.as_ref().is_some_and(|k| self.sharing.get_mut(k).is_some_and(|s| s.remove(&a)));
            if !removed {
                for set in self.sharing.values_mut() {
                    set.remove(&a);
                }
            }
            if let Some(k) = key
                && self.sharing.get(&k).is_some_and(BTreeSet::is_empty)
            {
                self.sharing.remove(&k);
            }
        }
        self.touched.push(a);
        let svc = self.svc_mut(id);
        svc.held.retain(|x| *x != a);
        let (k, uid) = (svc.input.key.clone(), svc.input.uid.clone());
        self.event(
            &k,
            &uid,
            EventType::Normal,
            events::IP_RELEASED,
            format!("released {a} (pool {:?}): {why}", &*pool),
        );
        self.dirty_svcs.insert(id);
    }

    /// Moves an address to another pool's count (its old pool no longer covers it).
    fn reattribute(&mut self, a: Addr, to: Arc<str>) {
        let Some(h) = self.addrs.get_mut(&a) else { return };
        let from = std::mem::replace(&mut h.pool, to.clone());
        let owners = h.owners.clone();
        if let Some(ps) = self.pools.get_mut(&*from) {
            ps.used -= 1;
            self.dirty_pools.insert(from.to_string());
        }
        if let Some(ps) = self.pools.get_mut(&*to) {
            ps.used += 1;
            self.dirty_pools.insert(to.to_string());
        }
        self.dirty_svcs.extend(owners);
    }

    fn event(
        &mut self,
        key: &ServiceKey,
        uid: &str,
        event_type: EventType,
        reason: &'static str,
        message: String,
    ) {
        self.events.push(Event { service: key.clone(), uid: uid.to_string(), event_type, reason, message });
    }

    // ---------------------------------------------------------------- checks for tests

    /// Checks the internal invariants; `Err` describes the first broken one. Cheap enough for
    /// property tests, not meant for production loops.
    pub fn verify(&self) -> Result<(), String> {
        for (a, h) in &self.addrs {
            if h.owners.is_empty() {
                return Err(format!("{a} has no owner"));
            }
            for (i, o) in h.owners.iter().enumerate() {
                let svc = self.svc(*o).ok_or(format!("{a} owned by a dead id"))?;
                if !svc.held.contains(a) {
                    return Err(format!("{a} owner {} does not list it", svc.input.key));
                }
                if self.holding_pool(*o, *a).is_none() {
                    return Err(format!("{a} held by {} outside any pool it may use", svc.input.key));
                }
                for o2 in &h.owners[i + 1..] {
                    let other = self.svc(*o2).ok_or("dead id")?;
                    match (&svc.request.sharing, &other.request.sharing) {
                        (Some(x), Some(y)) if x.incompatibility(y).is_none() => {}
                        _ => {
                            return Err(format!(
                                "{a} shared by incompatible {} and {}",
                                svc.input.key, other.input.key
                            ));
                        }
                    }
                }
            }
            if let Some((_, slot)) = self.slot_of(*a)
                && slot.alloc.bounds().allows(a.n)
                && !slot.alloc.is_taken(a.n)
            {
                return Err(format!("{a} held but free in its allocator"));
            }
        }
        for (k, slot) in &self.slots {
            let end = Addr { family: k.family, n: slot.last };
            let held =
                self.addrs.range(*k..=end).filter(|(a, _)| slot.alloc.bounds().allows(a.n)).count() as u128;
            if held != slot.alloc.taken() {
                return Err(format!("slot {k}: {} taken but {held} held", slot.alloc.taken()));
            }
        }
        for (id, svc) in self.svcs.iter().enumerate() {
            let Some(svc) = svc else { continue };
            for a in &svc.held {
                if !self.addrs.get(a).is_some_and(|h| h.owners.contains(&(id as SvcId))) {
                    return Err(format!("{} lists {a} but does not own it", svc.input.key));
                }
            }
        }
        for ps in self.pools.values() {
            let used = self.addrs.values().filter(|h| *h.pool == *ps.name).count() as u128;
            if used != ps.used {
                return Err(format!("pool {}: used {} but {used} attributed", ps.name, ps.used));
            }
        }
        Ok(())
    }
}

fn join_messages(failures: &[(Option<Family>, Failure)]) -> String {
    failures.iter().map(|(_, f)| f.message.as_str()).collect::<Vec<_>>().join("; ")
}

fn change_key(c: &ServiceChange) -> &ServiceKey {
    match c {
        ServiceChange::Update { key, .. } | ServiceChange::Clear { key, .. } => key,
    }
}

fn shown_service(input: &ServiceInput) -> Shown {
    Shown {
        ingress: input.status.ingress.clone(),
        pools: input.status.allocated_from_pool.clone(),
        condition: input.status.condition.clone(),
    }
}

fn shown_pool(name: &str, s: &LoadBalancerIPPoolStatus) -> PoolStatusOutput {
    let cond = |t: &str| {
        s.conditions
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| ConditionView::new(c.status == "True", c.reason.clone(), c.message.clone()))
            .unwrap_or_else(|| ConditionView::new(false, "", ""))
    };
    let num = |v: &Option<String>| v.as_deref().and_then(|v| v.parse().ok()).unwrap_or(u128::MAX);
    PoolStatusOutput {
        name: name.to_string(),
        conflict: cond(conditions::POOL_CONFLICT),
        invalid_spec: cond(conditions::INVALID_SPEC),
        total: num(&s.ips_total),
        used: num(&s.ips_used),
        available: num(&s.ips_available),
    }
}
