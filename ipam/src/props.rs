//! Property tests of the IPAM core over random histories of pool and Service events in a small
//! address universe (so addresses run out, pools overlap and Services contend).

use std::collections::BTreeMap;

use ferrolb_api::names::annotations as ann;
use ferrolb_api::{AllowFirstLastIps, Family};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use proptest::prelude::*;

use crate::service::{IpFamilyPolicy, ServiceInput, ServiceKey, TrafficPolicy};
use crate::state::{Ipam, ServiceChange};
use crate::state_tests::{pool, svc};
use crate::{Config, PoolInput};

/// Candidate blocks: some overlap, one is IPv6.
const BLOCKS: &[&str] = &[
    "10.0.0.0/29",
    "10.0.0.4-10.0.0.9",
    "10.0.0.8/30",
    "10.0.1.0/31",
    "2001:db8::/126",
    "2001:db8::2-2001:db8::5",
];
/// Addresses Services request or show as ingress.
const ADDRS: &[&str] =
    &["10.0.0.1", "10.0.0.5", "10.0.0.8", "10.0.1.1", "10.9.9.9", "2001:db8::1", "2001:db8::4"];

#[derive(Debug, Clone)]
enum Op {
    Pool(PoolInput),
    DeletePool(usize),
    Service(ServiceInput),
    DeleteService(usize),
}

fn pool_input() -> impl Strategy<Value = (usize, PoolInput)> {
    (
        0usize..3,
        proptest::sample::subsequence(BLOCKS.to_vec(), 1..3),
        0i64..3,
        any::<bool>(),
        any::<bool>(),
        prop::option::of(0i32..2),
        prop::option::of(prop::sample::select(vec!["a", "b"])),
        any::<bool>(),
    )
        .prop_map(|(i, blocks, created, disabled, no_auto, priority, team, trim)| {
            let mut p = pool(&format!("p{i}"), created, &blocks);
            // Disabled and autoAssign=false pools are rarer, so most histories allocate.
            p.spec.disabled = disabled && no_auto;
            p.spec.auto_assign = !(no_auto && !disabled && trim);
            p.spec.priority = priority;
            if trim {
                p.spec.allow_first_last_ips = AllowFirstLastIps::No;
            }
            p.spec.service_selector = team.map(|t| LabelSelector {
                match_labels: Some([("team".to_string(), t.to_string())].into()),
                match_expressions: None,
            });
            (i, p)
        })
}

fn service_input() -> impl Strategy<Value = ServiceInput> {
    (
        0usize..8,
        0u8..4,
        prop::option::of(prop::sample::select(vec!["a", "b"])),
        prop::option::of(prop::sample::subsequence(ADDRS.to_vec(), 1..3)),
        prop::option::of(0usize..3),
        prop::option::of((1u16..4, any::<bool>())),
        1u32..3,
        prop::sample::subsequence(ADDRS.to_vec(), 0..3),
    )
        .prop_map(|(i, fam, team, ips, named_pool, sharing, count, ingress)| {
            let mut s = svc(&format!("s{i}")).with_created(i as i64 % 3);
            s = match fam {
                0 => s,
                1 => s.with_families(IpFamilyPolicy::SingleStack, &[Family::V6]),
                2 => s.with_families(IpFamilyPolicy::RequireDualStack, &[Family::V4, Family::V6]),
                _ => s.with_families(IpFamilyPolicy::PreferDualStack, &[Family::V6, Family::V4]),
            };
            if let Some(t) = team {
                s = s.with_label("team", t);
            }
            // Explicit requests are rarer than automatic ones.
            if let Some(ips) = ips.filter(|_| i % 3 == 0) {
                s = s.with_annotation(ann::IPS, &ips.join(","));
            }
            if let Some(p) = named_pool.filter(|_| i % 4 == 1) {
                s = s.with_annotation(ann::POOL, &format!("p{p}"));
            }
            if let Some((port, local)) = sharing {
                s = s.with_annotation(ann::SHARING_KEY, "k").with_ports(&[("TCP", port)]);
                if local {
                    s.external_traffic_policy = TrafficPolicy::Local;
                    s.selector.insert("app".into(), "x".into());
                }
            }
            if count > 1 {
                s = s.with_annotation(ann::IP_COUNT, &count.to_string());
            }
            s.with_ingress(&ingress)
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => pool_input().prop_map(|(_, p)| Op::Pool(p)),
        1 => (0usize..3).prop_map(Op::DeletePool),
        5 => service_input().prop_map(Op::Service),
        2 => (0usize..8).prop_map(Op::DeleteService),
    ]
}

/// Applies a history to a live state, keeping the current inputs like a reflector store.
struct World {
    ipam: Ipam,
    pools: BTreeMap<String, PoolInput>,
    services: BTreeMap<ServiceKey, ServiceInput>,
}

impl World {
    fn new() -> Self {
        Self { ipam: Ipam::new(Config::default()), pools: BTreeMap::new(), services: BTreeMap::new() }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Pool(p) => {
                self.pools.insert(p.name.clone(), p.clone());
                self.ipam.apply_pool(p.clone());
            }
            Op::DeletePool(i) => {
                let name = format!("p{i}");
                self.pools.remove(&name);
                self.ipam.delete_pool(&name);
            }
            Op::Service(s) => {
                // A live Service shows what FerroLB wrote; its ingress is only a foreign import
                // the first time it appears.
                let mut s = s.clone();
                if let Some(out) = self.ipam.service_output(&s.key) {
                    s.status.ingress = out.ingress.iter().map(|i| i.to_string()).collect();
                }
                self.services.insert(s.key.clone(), s.clone());
                self.ipam.apply_service(s);
            }
            Op::DeleteService(i) => {
                let key = ServiceKey::new("default", format!("s{i}"));
                self.services.remove(&key);
                self.ipam.delete_service(&key);
            }
        }
        self.ipam.take_changes();
    }

    /// What each Service shows, as written by the adapter.
    fn written_services(&self) -> Vec<ServiceInput> {
        self.services
            .values()
            .map(|s| {
                let mut s = s.clone();
                let out = self.ipam.service_output(&s.key).expect("every stored Service is served");
                s.status.ingress = out.ingress.iter().map(|i| i.to_string()).collect();
                s.status.condition = Some(out.condition.clone());
                s.status.allocated_from_pool = out.allocated_from_pool();
                s
            })
            .collect()
    }

    fn ingress(&self, ipam: &Ipam) -> BTreeMap<ServiceKey, Vec<String>> {
        self.services
            .keys()
            .map(|k| {
                let out = ipam.service_output(k).expect("served");
                (k.clone(), out.ingress.iter().map(|i| i.to_string()).collect())
            })
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Never two owners for an address unless they share compatibly; every held address is inside
    /// a pool its Service may use; allocator, owner map and counters agree.
    #[test]
    fn invariants_hold_after_every_event(ops in proptest::collection::vec(op(), 1..40)) {
        let mut w = World::new();
        for op in &ops {
            w.apply(op);
            if let Err(e) = w.ipam.verify() {
                return Err(TestCaseError::fail(format!("after {op:?}: {e}")));
            }
        }
    }

    /// A restart (a fresh state importing what was written) and a resync move nothing, and a
    /// resync of an unchanged world writes nothing.
    #[test]
    fn import_then_replan_moves_nothing(ops in proptest::collection::vec(op(), 1..40)) {
        let mut w = World::new();
        for op in &ops {
            w.apply(op);
        }
        let before = w.ingress(&w.ipam);
        let pools: Vec<PoolInput> = w.pools.values().cloned().collect();
        let mut fresh = Ipam::new(Config::default());
        fresh.resync(pools.clone(), w.written_services());
        fresh.verify().map_err(TestCaseError::fail)?;
        prop_assert_eq!(w.ingress(&fresh), before.clone());

        let satisfied: Vec<ServiceKey> = w
            .services
            .keys()
            .filter(|k| w.ipam.service_output(k).is_some_and(|o| o.condition.status))
            .cloned()
            .collect();
        w.ipam.resync(pools, w.written_services());
        prop_assert_eq!(w.ingress(&w.ipam), before);
        // Waiting Services are re-planned by a resync (their failure message may be refreshed);
        // nothing else is written.
        let c = w.ipam.take_changes();
        for change in &c.services {
            match change {
                ServiceChange::Update { key, .. } => prop_assert!(!satisfied.contains(key), "{:?}", change),
                ServiceChange::Clear { .. } => prop_assert!(false, "{:?}", change),
            }
        }
    }

    /// Deleting every Service frees every address.
    #[test]
    fn free_after_release(ops in proptest::collection::vec(op(), 1..40)) {
        let mut w = World::new();
        for op in &ops {
            w.apply(op);
        }
        let keys: Vec<ServiceKey> = w.services.keys().cloned().collect();
        for k in keys {
            w.ipam.delete_service(&k);
        }
        w.ipam.verify().map_err(TestCaseError::fail)?;
        for name in w.pools.keys() {
            let out = w.ipam.pool_output(name).unwrap();
            prop_assert_eq!(out.used, 0);
            if !out.conflict.status {
                prop_assert_eq!(out.available, out.total);
            }
        }
    }

    /// A start-up resync does not depend on the order pools and Services are listed in.
    #[test]
    fn resync_is_order_independent(
        pools in proptest::collection::vec(pool_input(), 0..4),
        services in proptest::collection::vec(service_input(), 0..10),
        seed in any::<u64>(),
    ) {
        let pools: BTreeMap<String, PoolInput> = pools.into_iter().map(|(_, p)| (p.name.clone(), p)).collect();
        let services: BTreeMap<ServiceKey, ServiceInput> =
            services.into_iter().map(|s| (s.key.clone(), s)).collect();
        let (p1, s1): (Vec<PoolInput>, Vec<ServiceInput>) =
            (pools.values().cloned().collect(), services.values().cloned().collect());
        let (mut p2, mut s2) = (p1.clone(), s1.clone());
        shuffle(&mut p2, seed);
        shuffle(&mut s2, seed.rotate_left(17));
        let mut a = Ipam::new(Config::default());
        a.resync(p1, s1);
        let mut b = Ipam::new(Config::default());
        b.resync(p2, s2);
        let ca = a.take_changes();
        let cb = b.take_changes();
        prop_assert_eq!(ca.services, cb.services);
        prop_assert_eq!(ca.pools, cb.pools);
    }
}

/// A small deterministic shuffle (no `rand` dependency).
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let j = (seed >> 33) as usize % (i + 1);
        v.swap(i, j);
    }
}
