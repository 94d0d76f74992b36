//! Scenario tests of the IPAM core: one behaviour each, driven through the adapter-facing API.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_api::names::annotations::{self as ann, compat};
use ferrolb_api::names::{events, labels, reasons};
use ferrolb_api::{AllowFirstLastIps, Family, IpBlock, LoadBalancerIPPoolSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::service::{ConditionView, IpFamilyPolicy, ServiceInput, ServiceKey, TrafficPolicy};
use crate::state::{Changes, Ipam, ServiceChange, ServiceStatusOutput};
use crate::{Config, PoolInput};

pub(crate) fn pool(name: &str, created: i64, blocks: &[&str]) -> PoolInput {
    let blocks = blocks
        .iter()
        .map(|b| match b.split_once('-') {
            Some((s, e)) => IpBlock::range(s, e),
            None if b.contains('/') => IpBlock::cidr(*b),
            None => IpBlock { start: Some(b.to_string()), ..Default::default() },
        })
        .collect();
    PoolInput {
        name: name.into(),
        created,
        spec: LoadBalancerIPPoolSpec { blocks, ..Default::default() },
        status: None,
    }
}

fn selector(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        match_expressions: None,
    }
}

pub(crate) fn svc(name: &str) -> ServiceInput {
    ServiceInput::load_balancer("default", name)
}

fn key(name: &str) -> ServiceKey {
    ServiceKey::new("default", name)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ingress(ipam: &Ipam, name: &str) -> Vec<String> {
    ipam.service_output(&key(name))
        .map(|o| o.ingress.iter().map(|i| i.to_string()).collect())
        .unwrap_or_default()
}

fn output(ipam: &Ipam, name: &str) -> ServiceStatusOutput {
    ipam.service_output(&key(name)).expect("served")
}

fn cond(ipam: &Ipam, name: &str) -> ConditionView {
    output(ipam, name).condition
}

fn started(pools: Vec<PoolInput>, services: Vec<ServiceInput>) -> Ipam {
    let mut ipam = Ipam::new(Config::default());
    ipam.resync(pools, services);
    ipam.verify().unwrap();
    ipam
}

/// What a Service would look like after the adapter wrote `output` (for restart tests).
fn written(mut s: ServiceInput, out: &ServiceStatusOutput) -> ServiceInput {
    s.status.ingress = out.ingress.iter().map(|i| i.to_string()).collect();
    s.status.condition = Some(out.condition.clone());
    s.status.allocated_from_pool = out.allocated_from_pool();
    s
}

fn event_reasons(c: &Changes) -> Vec<&'static str> {
    c.events.iter().map(|e| e.reason).collect()
}

#[test]
fn lowest_free_first_and_outputs_only_once() {
    let mut ipam = started(vec![pool("lab", 0, &["198.51.100.128/25"])], vec![]);
    ipam.take_changes();
    ipam.apply_service(svc("a"));
    ipam.apply_service(svc("b"));
    assert_eq!(ingress(&ipam, "a"), ["198.51.100.128"]);
    assert_eq!(ingress(&ipam, "b"), ["198.51.100.129"]);
    let c = ipam.take_changes();
    assert_eq!(c.services.len(), 2);
    assert_eq!(event_reasons(&c), [events::IP_ALLOCATED, events::IP_ALLOCATED]);
    let p = &c.pools[0];
    assert_eq!((p.total, p.used, p.available), (128, 2, 126));
    match &c.services[0] {
        ServiceChange::Update { output, .. } => {
            assert_eq!(output.allocated_from_pool().as_deref(), Some("lab"));
            assert_eq!(output.condition, ConditionView::new(true, reasons::SATISFIED, ""));
        }
        other => panic!("{other:?}"),
    }
    // Nothing changed: nothing to write.
    ipam.apply_service(svc("a"));
    assert!(ipam.take_changes().is_empty());
    // The adapter's write comes back through the watch: still nothing to write.
    let out = output(&ipam, "a");
    ipam.apply_service(written(svc("a"), &out));
    assert!(ipam.take_changes().is_empty());
    // Released addresses are reused lowest first.
    ipam.delete_service(&key("a"));
    ipam.apply_service(svc("c"));
    assert_eq!(ingress(&ipam, "c"), ["198.51.100.128"]);
    ipam.verify().unwrap();
}

#[test]
fn families() {
    let pools =
        vec![pool("v4", 0, &["198.51.100.0/30"]), pool("v6", 0, &["2001:db8:100::1000-2001:db8:100::1fff"])];
    let dual = svc("dual").with_families(IpFamilyPolicy::RequireDualStack, &[Family::V6, Family::V4]);
    let ipam = started(pools, vec![dual]);
    assert_eq!(ingress(&ipam, "dual"), ["2001:db8:100::1000", "198.51.100.0"]);
    assert!(cond(&ipam, "dual").status);

    let only_v4 = vec![pool("v4", 0, &["198.51.100.0/30"])];
    let req = svc("req").with_families(IpFamilyPolicy::RequireDualStack, &[Family::V4, Family::V6]);
    let pref = svc("pref").with_families(IpFamilyPolicy::PreferDualStack, &[Family::V4, Family::V6]);
    let v6 = svc("v6").with_families(IpFamilyPolicy::SingleStack, &[Family::V6]);
    let ipam = started(only_v4, vec![req, pref, v6]);
    let c = cond(&ipam, "req");
    assert!(!c.status);
    assert_eq!(c.reason, reasons::NO_POOL);
    assert!(c.message.contains("IPv6"), "{}", c.message);
    assert_eq!(ingress(&ipam, "req").len(), 1, "the family it can get is kept");
    let c = cond(&ipam, "pref");
    assert!(c.status, "PreferDualStack is satisfied by one family: {c:?}");
    assert!(c.message.contains("IPv6"));
    assert_eq!(cond(&ipam, "v6").reason, reasons::NO_POOL);
    assert!(ingress(&ipam, "v6").is_empty());
}

#[test]
fn requested_addresses() {
    let mut sel = pool("picky", 0, &["203.0.113.0/24"]);
    sel.spec.service_selector = Some(selector(&[("team", "x")]));
    let mut reserved = pool("cidr", 0, &["198.51.100.0/24"]);
    reserved.spec.allow_first_last_ips = AllowFirstLastIps::No;
    let inside = svc("inside").with_annotation(ann::IPS, "198.51.100.77");
    let outside = svc("outside").with_annotation(ann::IPS, "192.0.2.1");
    let mismatch = svc("mismatch").with_annotation(ann::IPS, "203.0.113.9");
    let taken = svc("taken").with_annotation(ann::IPS, "198.51.100.77").with_created(5);
    let first = svc("first").with_annotation(ann::IPS, "198.51.100.0");
    let mut lb_ip = svc("lbip").with_annotation(ann::IPS, "198.51.100.80, bogus");
    lb_ip.load_balancer_ip = Some("198.51.100.79".into());
    let ipam = started(vec![sel, reserved], vec![inside, outside, mismatch, taken, first, lb_ip]);
    assert_eq!(ingress(&ipam, "inside"), ["198.51.100.77"]);
    assert_eq!(cond(&ipam, "outside").reason, reasons::NO_POOL);
    assert_eq!(cond(&ipam, "mismatch").reason, reasons::POOL_SELECTOR_MISMATCH);
    assert_eq!(cond(&ipam, "taken").reason, reasons::ALREADY_ALLOCATED);
    assert_eq!(cond(&ipam, "first").reason, reasons::ALREADY_ALLOCATED);
    assert!(cond(&ipam, "first").message.contains("reserved"));
    assert_eq!(ingress(&ipam, "lbip"), ["198.51.100.79", "198.51.100.80"]);
    let c = cond(&ipam, "lbip");
    assert!(c.status);
    assert!(c.message.contains("ignored: annotation ferrolb.io/ips: entry 2 (\"bogus\")"), "{}", c.message);
}

#[test]
fn invalid_annotation_events_once() {
    let mut ipam = started(vec![pool("p", 0, &["198.51.100.0/24"])], vec![]);
    ipam.take_changes();
    ipam.apply_service(svc("a").with_annotation(ann::IP_COUNT, "lots"));
    let c = ipam.take_changes();
    assert!(event_reasons(&c).contains(&events::INVALID_ANNOTATION));
    let out = output(&ipam, "a");
    ipam.apply_service(written(svc("a").with_annotation(ann::IP_COUNT, "lots").with_label("x", "y"), &out));
    assert!(!event_reasons(&ipam.take_changes()).contains(&events::INVALID_ANNOTATION));
}

#[test]
fn a_requested_address_is_given_when_freed() {
    let holder = svc("holder").with_annotation(ann::IPS, "198.51.100.5");
    let wants = svc("wants").with_annotation(ann::IPS, "198.51.100.5").with_created(1);
    let mut ipam = started(vec![pool("p", 0, &["198.51.100.0/24"])], vec![holder, wants]);
    assert_eq!(cond(&ipam, "wants").reason, reasons::ALREADY_ALLOCATED);
    ipam.delete_service(&key("holder"));
    assert_eq!(ingress(&ipam, "wants"), ["198.51.100.5"]);
    assert!(cond(&ipam, "wants").status);
}

fn sharer(name: &str, key: &str, ports: &[(&str, u16)]) -> ServiceInput {
    svc(name).with_annotation(ann::SHARING_KEY, key).with_ports(ports)
}

#[test]
fn sharing_rules() {
    let a = sharer("a", "k", &[("TCP", 80)]);
    let b = sharer("b", "k", &[("TCP", 443)]).with_created(1);
    let clash =
        sharer("clash", "k", &[("TCP", 80)]).with_created(2).with_annotation(ann::IPS, "198.51.100.0");
    let udp = sharer("udp", "k", &[("UDP", 80)]).with_created(3);
    let mut ipam = started(vec![pool("p", 0, &["198.51.100.0/24"])], vec![a, b, clash, udp]);
    assert_eq!(ingress(&ipam, "a"), ["198.51.100.0"]);
    assert_eq!(ingress(&ipam, "b"), ["198.51.100.0"]);
    assert_eq!(ingress(&ipam, "udp"), ["198.51.100.0"], "(protocol, port) pairs, not ports");
    let c = cond(&ipam, "clash");
    assert_eq!(c.reason, reasons::ALREADY_ALLOCATED_INCOMPATIBLE_SERVICE);
    assert!(c.message.contains("port 80/TCP"), "{}", c.message);
    assert_eq!(ipam.holders(ip("198.51.100.0")).len(), 3);
    assert_eq!(ipam.pool_output("p").unwrap().used, 1);
    // The shared address is freed when its last user goes.
    ipam.delete_service(&key("a"));
    ipam.delete_service(&key("udp"));
    assert_eq!(ipam.pool_output("p").unwrap().used, 1);
    ipam.delete_service(&key("b"));
    // ... and then the waiting request gets it.
    assert_eq!(ingress(&ipam, "clash"), ["198.51.100.0"]);
    ipam.delete_service(&key("clash"));
    assert_eq!(ipam.pool_output("p").unwrap().used, 0);
    ipam.verify().unwrap();
}

#[test]
fn a_change_that_breaks_sharing_moves_the_changed_service() {
    let a = sharer("a", "k", &[("TCP", 80)]);
    let b = sharer("b", "k", &[("TCP", 443)]).with_created(1);
    let mut ipam = started(vec![pool("p", 0, &["198.51.100.0/24"])], vec![a.clone(), b]);
    assert_eq!(ingress(&ipam, "b"), ["198.51.100.0"]);
    ipam.apply_service(sharer("b", "k", &[("TCP", 80)]).with_created(1));
    assert_eq!(ingress(&ipam, "a"), ["198.51.100.0"]);
    assert_eq!(ingress(&ipam, "b"), ["198.51.100.1"]);
    ipam.verify().unwrap();
}

#[test]
fn cross_namespace_sharing() {
    let mk = |ns: &str, port: u16| ServiceInput::load_balancer(ns, "s").with_ports(&[("TCP", port)]);
    let a =
        mk("a", 80).with_annotation(ann::SHARING_KEY, "k").with_annotation(ann::SHARING_CROSS_NAMESPACE, "b");
    let b_only = mk("b", 81).with_annotation(ann::SHARING_KEY, "k").with_created(1);
    let ipam = started(vec![pool("p", 0, &["198.51.100.0/24"])], vec![a.clone(), b_only]);
    let out = |ipam: &Ipam, ns: &str| ipam.service_output(&ServiceKey::new(ns, "s")).unwrap().ingress;
    assert_ne!(out(&ipam, "a"), out(&ipam, "b"), "b does not allow a");
    let b_both = mk("b", 81)
        .with_annotation(ann::SHARING_KEY, "k")
        .with_annotation(ann::SHARING_CROSS_NAMESPACE, "*")
        .with_created(1);
    let ipam = started(vec![pool("p", 0, &["198.51.100.0/24"])], vec![a, b_both]);
    assert_eq!(out(&ipam, "a"), out(&ipam, "b"));
    // MetalLB keys are not namespaced.
    let m1 = mk("x", 80).with_annotation(compat::METALLB_SHARED, "m");
    let m2 = mk("y", 81).with_annotation(compat::METALLB_LEGACY_SHARED, "m").with_created(1);
    let ipam = started(vec![pool("p", 0, &["198.51.100.0/24"])], vec![m1, m2]);
    assert_eq!(out(&ipam, "x"), out(&ipam, "y"));
}

#[test]
fn local_policy_sharing_needs_equal_selectors() {
    let mut a = sharer("a", "k", &[("TCP", 80)]);
    a.external_traffic_policy = TrafficPolicy::Local;
    a.selector = BTreeMap::from([("app".to_string(), "web".to_string())]);
    let mut b = sharer("b", "k", &[("TCP", 81)]).with_created(1);
    b.external_traffic_policy = TrafficPolicy::Local;
    b.selector = a.selector.clone();
    let mut c = b.clone();
    c.key = key("c");
    c.ports = vec![crate::ServicePort::new("TCP", 82)];
    c.selector = BTreeMap::from([("app".to_string(), "db".to_string())]);
    let ipam = started(vec![pool("p", 0, &["198.51.100.0/24"])], vec![a, b, c]);
    assert_eq!(ingress(&ipam, "a"), ingress(&ipam, "b"));
    assert_ne!(ingress(&ipam, "a"), ingress(&ipam, "c"));
}

#[test]
fn ip_count_partial_then_completed() {
    let small = vec![pool("p", 0, &["198.51.100.0-198.51.100.2"])];
    let hog = svc("hog").with_annotation(ann::IPS, "198.51.100.1");
    let multi = svc("multi").with_annotation(ann::IP_COUNT, "3").with_created(1);
    let mut ipam = started(small, vec![hog, multi]);
    assert_eq!(ingress(&ipam, "multi"), ["198.51.100.0", "198.51.100.2"]);
    let c = cond(&ipam, "multi");
    assert_eq!((c.status, c.reason.as_str()), (false, reasons::PARTIALLY_SATISFIED));
    assert!(c.message.starts_with("2 of 3 assigned"), "{}", c.message);
    ipam.delete_service(&key("hog"));
    assert_eq!(
        ingress(&ipam, "multi"),
        ["198.51.100.0", "198.51.100.2", "198.51.100.1"],
        "order stays stable"
    );
    assert!(cond(&ipam, "multi").status);
    // Lowering the count keeps the first ones.
    ipam.apply_service(svc("multi").with_annotation(ann::IP_COUNT, "1").with_created(1));
    assert_eq!(ingress(&ipam, "multi"), ["198.51.100.0"]);
    // Deckhouse's annotation counts too.
    ipam.apply_service(svc("multi").with_annotation(compat::DECKHOUSE_IP_COUNT, "2").with_created(1));
    assert_eq!(ingress(&ipam, "multi").len(), 2);
    ipam.verify().unwrap();
}

#[test]
fn conflicts_appear_and_clear_without_moving_anything() {
    let mut ipam = started(vec![pool("old", 0, &["198.51.100.0/28"])], vec![svc("a")]);
    // An overlapping newer pool is in conflict and hands out nothing.
    let mut newer = pool("new", 10, &["198.51.100.8/29", "203.0.113.0/24"]);
    newer.spec.priority = Some(0);
    ipam.apply_pool(newer.clone());
    let c = ipam.take_changes();
    let p = c.pools.iter().find(|p| p.name == "new").unwrap();
    assert!(p.conflict.status);
    assert_eq!(
        p.conflict.message,
        "block 0 (198.51.100.8-198.51.100.15) overlaps block 0 (198.51.100.0-198.51.100.15) of older pool \"old\""
    );
    assert_eq!(p.available, 0);
    ipam.apply_service(svc("b").with_created(1));
    assert_eq!(ingress(&ipam, "b"), ["198.51.100.1"], "not from the conflicting pool despite its priority");
    // An edit of the OLD pool that makes it overlap the new one does not take the new pool's
    // addresses away: first clear the conflict, let the new pool hand out an address...
    newer.spec.blocks.remove(0);
    ipam.apply_pool(newer.clone());
    assert!(!ipam.pool_output("new").unwrap().conflict.status);
    ipam.apply_service(svc("c").with_created(2).with_annotation(ann::POOL, "new"));
    assert_eq!(ingress(&ipam, "c"), ["203.0.113.0"]);
    // ... then widen the old pool over it: new conflicts, c keeps its address.
    ipam.apply_pool(pool("old", 0, &["198.51.100.0/28", "203.0.113.0/25"]));
    assert!(ipam.pool_output("new").unwrap().conflict.status);
    assert_eq!(ingress(&ipam, "c"), ["203.0.113.0"]);
    assert_eq!(ingress(&ipam, "a"), ["198.51.100.0"]);
    ipam.verify().unwrap();
    // And the old pool never hands out what the new pool's Service holds.
    ipam.apply_service(svc("d").with_created(3).with_annotation(ann::IPS, "203.0.113.0"));
    assert_eq!(cond(&ipam, "d").reason, reasons::ALREADY_ALLOCATED);
    // A restart keeps everything too.
    record(
        vec![pool("old", 0, &["198.51.100.0/28", "203.0.113.0/25"]), newer],
        vec![
            svc("a"),
            svc("b").with_created(1),
            svc("c").with_created(2).with_annotation(ann::POOL, "new"),
            svc("d").with_created(3).with_annotation(ann::IPS, "203.0.113.0"),
        ],
    );
    let restarted = restart(&ipam);
    for n in ["a", "b", "c"] {
        assert_eq!(ingress(&restarted, n), ingress(&ipam, n), "{n}");
    }
}

/// Builds a fresh state from what the adapter would have written, as after a restart.
fn restart(ipam: &Ipam) -> Ipam {
    let (pools, services) = snapshot(ipam);
    let mut fresh = Ipam::new(ipam.config().clone());
    fresh.resync(pools, services);
    fresh.verify().unwrap();
    fresh
}

thread_local! {
    static INPUTS: std::cell::RefCell<(Vec<PoolInput>, Vec<ServiceInput>)> = Default::default();
}

/// Tests that restart record the inputs they applied here.
fn snapshot(ipam: &Ipam) -> (Vec<PoolInput>, Vec<ServiceInput>) {
    INPUTS.with(|i| {
        let (pools, services) = i.borrow().clone();
        let services = services
            .into_iter()
            .filter_map(|s| ipam.service_output(&s.key).map(|o| written(s, &o)))
            .collect();
        (pools, services)
    })
}

fn record(pools: Vec<PoolInput>, services: Vec<ServiceInput>) {
    INPUTS.with(|i| *i.borrow_mut() = (pools, services));
}

#[test]
fn restart_keeps_foreign_and_non_lowest_addresses_and_writes_nothing() {
    let mut disabled = pool("frozen", 0, &["203.0.113.0/24"]);
    disabled.spec.disabled = true;
    let mut manual = pool("manual", 0, &["192.0.2.0/24"]);
    manual.spec.auto_assign = false;
    let mut buggy = pool("buggy", 0, &["198.51.100.0/24"]);
    buggy.spec.avoid_buggy_ips = true;
    buggy.spec.allow_first_last_ips = AllowFirstLastIps::No;
    let pools = vec![disabled, manual, buggy];
    let services = vec![
        // Written by MetalLB: not the lowest free address.
        svc("metallb").with_ingress(&["198.51.100.200"]),
        // In a disabled pool and in an autoAssign=false pool.
        svc("frozen").with_ingress(&["203.0.113.9"]),
        svc("manual").with_ingress(&["192.0.2.7"]),
        // Excluded for new allocations, kept when already held.
        svc("network").with_ingress(&["198.51.100.0"]),
        // Outside every pool, garbage, and a second IPv4 for a single-stack Service.
        svc("stray").with_ingress(&["10.9.9.9"]),
        svc("garbage").with_ingress(&["not-an-ip", "198.51.100.201", "198.51.100.202"]),
    ];
    let mut ipam = Ipam::new(Config::default());
    ipam.resync(pools.clone(), services.clone());
    ipam.verify().unwrap();
    assert_eq!(ingress(&ipam, "metallb"), ["198.51.100.200"]);
    assert_eq!(ingress(&ipam, "frozen"), ["203.0.113.9"]);
    assert_eq!(ingress(&ipam, "manual"), ["192.0.2.7"]);
    assert_eq!(ingress(&ipam, "network"), ["198.51.100.0"]);
    assert_eq!(ingress(&ipam, "stray"), ["198.51.100.1"], "moved into a pool");
    assert_eq!(ingress(&ipam, "garbage"), ["198.51.100.201"]);
    let first = ipam.take_changes();
    assert!(!first.events.iter().any(|e| e.service.name == "metallb"), "imports are not announced");

    // Second restart from what was written: nothing to write at all.
    let written_services: Vec<ServiceInput> = services
        .into_iter()
        .map(|s| {
            let o = output(&ipam, &s.key.name);
            written(s, &o)
        })
        .collect();
    let mut again = Ipam::new(Config::default());
    let mut pools_with_status = pools.clone();
    let mut first_pools = first.pools.clone();
    first_pools.sort_by(|a, b| a.name.cmp(&b.name));
    for p in &mut pools_with_status {
        let out = first_pools.iter().find(|o| o.name == p.name).unwrap();
        p.status = Some(to_status(out));
    }
    again.resync(pools_with_status, written_services);
    let c = again.take_changes();
    assert!(c.is_empty(), "{c:#?}");
}

fn to_status(o: &crate::PoolStatusOutput) -> ferrolb_api::LoadBalancerIPPoolStatus {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
    let cond = |t: &str, c: &ConditionView| Condition {
        type_: t.into(),
        status: if c.status { "True".into() } else { "False".into() },
        reason: c.reason.clone(),
        message: c.message.clone(),
        last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ),
        observed_generation: None,
    };
    ferrolb_api::LoadBalancerIPPoolStatus {
        conditions: vec![
            cond(ferrolb_api::names::conditions::POOL_CONFLICT, &o.conflict),
            cond(ferrolb_api::names::conditions::INVALID_SPEC, &o.invalid_spec),
        ],
        ips_total: Some(o.total.to_string()),
        ips_used: Some(o.used.to_string()),
        ips_available: Some(o.available.to_string()),
    }
}

#[test]
fn import_contest_is_won_by_the_older_service_in_any_order() {
    let old = svc("zz-old").with_ingress(&["198.51.100.9"]).with_created(1);
    let young = svc("aa-young").with_ingress(&["198.51.100.9"]).with_created(2);
    for services in [vec![old.clone(), young.clone()], vec![young.clone(), old.clone()]] {
        let ipam = started(vec![pool("p", 0, &["198.51.100.0/24"])], services);
        assert_eq!(ingress(&ipam, "zz-old"), ["198.51.100.9"]);
        assert_eq!(ingress(&ipam, "aa-young"), ["198.51.100.0"]);
    }
}

#[test]
fn disabled_and_auto_assign() {
    let mut off = pool("off", 0, &["198.51.100.0/24"]);
    off.spec.disabled = true;
    let mut manual = pool("manual", 0, &["203.0.113.0/24"]);
    manual.spec.auto_assign = false;
    let mut ipam = started(vec![off.clone(), manual], vec![svc("auto")]);
    assert_eq!(cond(&ipam, "auto").reason, reasons::NO_POOL);
    ipam.apply_service(svc("named").with_annotation(ann::POOL, "manual"));
    assert_eq!(ingress(&ipam, "named"), ["203.0.113.0"]);
    ipam.apply_service(svc("asks").with_annotation(ann::IPS, "203.0.113.50"));
    assert_eq!(ingress(&ipam, "asks"), ["203.0.113.50"]);
    // Enabling the pool serves the waiting Service; disabling it again keeps what it holds.
    off.spec.disabled = false;
    ipam.apply_pool(off.clone());
    assert_eq!(ingress(&ipam, "auto"), ["198.51.100.0"]);
    off.spec.disabled = true;
    ipam.apply_pool(off);
    assert_eq!(ingress(&ipam, "auto"), ["198.51.100.0"]);
    ipam.verify().unwrap();
}

#[test]
fn priority_then_name() {
    let mut low = pool("z-low", 0, &["203.0.113.0/24"]);
    low.spec.priority = Some(1);
    let mut high = pool("y-high", 0, &["192.0.2.0/24"]);
    high.spec.priority = Some(5);
    let unset = pool("a-unset", 0, &["198.51.100.0/24"]);
    let mut ipam = started(vec![unset, high, low.clone()], vec![svc("a")]);
    assert_eq!(ingress(&ipam, "a"), ["203.0.113.0"]);
    // A new pool with better priority moves nothing.
    let mut best = pool("best", 5, &["10.0.0.0/24"]);
    best.spec.priority = Some(0);
    ipam.apply_pool(best);
    assert_eq!(ingress(&ipam, "a"), ["203.0.113.0"]);
    ipam.apply_service(svc("b"));
    assert_eq!(ingress(&ipam, "b"), ["10.0.0.0"]);
}

#[test]
fn selectors_with_pseudo_labels() {
    let mut prod = pool("prod", 0, &["203.0.113.0/24"]);
    prod.spec.service_selector = Some(selector(&[(labels::SERVICE_NAMESPACE, "prod")]));
    let mut web = pool("web", 0, &["192.0.2.0/24"]);
    web.spec.service_selectors =
        vec![selector(&[("tier", "web")]), selector(&[(labels::SERVICE_NAME, "special")])];
    let p = ServiceInput::load_balancer("prod", "x");
    let spoof = svc("spoof").with_label(labels::SERVICE_NAMESPACE, "prod");
    let special = svc("special");
    let mut ipam = started(vec![prod, web], vec![p, spoof, special]);
    assert_eq!(ipam.service_output(&ServiceKey::new("prod", "x")).unwrap().ingress, [ip("203.0.113.0")]);
    assert_eq!(cond(&ipam, "spoof").reason, reasons::NO_POOL);
    assert_eq!(ingress(&ipam, "special"), ["192.0.2.0"]);
    // Labels change so the Service matches another pool only: its address moves (Cilium).
    ipam.apply_service(svc("spoof").with_label("tier", "web"));
    assert_eq!(ingress(&ipam, "spoof"), ["192.0.2.1"]);
    ipam.apply_service(svc("spoof").with_label("tier", "db"));
    assert!(ingress(&ipam, "spoof").is_empty());
    let c = ipam.take_changes();
    assert!(c.events.iter().any(|e| e.reason == events::IP_RELEASED && e.service.name == "spoof"));
    ipam.verify().unwrap();
}

#[test]
fn pool_edits_that_keep_addresses_move_nothing() {
    let mut ipam = started(vec![pool("p", 0, &["198.51.100.10-198.51.100.20"])], vec![]);
    for i in 0..5 {
        ipam.apply_service(svc(&format!("s{i}")).with_created(i));
    }
    ipam.delete_service(&key("s1"));
    let before: Vec<Vec<String>> = (0..5).map(|i| ingress(&ipam, &format!("s{i}"))).collect();
    // Widen, split into two blocks around the holes, reorder blocks, toggle first/last.
    for blocks in [
        vec!["198.51.100.0/24"],
        vec!["198.51.100.12-198.51.100.14", "198.51.100.10"],
        vec!["198.51.100.14", "198.51.100.12-198.51.100.13", "198.51.100.10"],
    ] {
        let mut p = pool("p", 0, &blocks);
        p.spec.allow_first_last_ips = AllowFirstLastIps::No;
        ipam.apply_pool(p);
        let now: Vec<Vec<String>> = (0..5).map(|i| ingress(&ipam, &format!("s{i}"))).collect();
        assert_eq!(now, before, "blocks {blocks:?}");
        ipam.verify().unwrap();
    }
}

#[test]
fn pool_delete_rehomes_or_releases_and_recreate_gives_addresses_back() {
    let a_pool = pool("a", 0, &["198.51.100.0/24"]);
    let mut ipam = started(vec![a_pool.clone(), pool("b", 1, &["203.0.113.0/24"])], vec![]);
    for i in 0..3 {
        ipam.apply_service(svc(&format!("s{i}")).with_created(i));
    }
    ipam.delete_service(&key("s0"));
    assert_eq!(ingress(&ipam, "s2"), ["198.51.100.2"]);
    ipam.take_changes();
    ipam.delete_pool("a");
    assert_eq!(ingress(&ipam, "s1"), ["203.0.113.0"]);
    assert_eq!(ingress(&ipam, "s2"), ["203.0.113.1"]);
    let c = ipam.take_changes();
    assert!(event_reasons(&c).contains(&events::IP_RELEASED));
    // Re-homing: a pool covering the address keeps it in place.
    let mut ipam2 = started(vec![a_pool.clone()], vec![svc("x")]);
    let mut wide = pool("wide", 5, &["198.51.100.0/23"]);
    wide.spec.disabled = true;
    ipam2.apply_pool(wide);
    assert!(ipam2.pool_output("wide").unwrap().conflict.status);
    ipam2.delete_pool("a");
    assert_eq!(ingress(&ipam2, "x"), ["198.51.100.0"]);
    assert_eq!(output(&ipam2, "x").pools, ["wide"]);
    ipam2.verify().unwrap();
    // Deleting and re-creating a pool gives freed addresses back to those who lost them... only
    // when they have nowhere else to go; here s1/s2 went to pool b and stay there.
    ipam.apply_pool(a_pool.clone());
    assert_eq!(ingress(&ipam, "s2"), ["203.0.113.1"]);
    // Without another pool, a Service waits and then gets its old address back.
    let mut ipam3 = started(vec![a_pool.clone()], vec![]);
    for i in 0..3 {
        ipam3.apply_service(svc(&format!("s{i}")).with_created(i));
    }
    ipam3.delete_service(&key("s0"));
    ipam3.delete_pool("a");
    assert!(ingress(&ipam3, "s2").is_empty());
    assert_eq!(cond(&ipam3, "s2").reason, reasons::NO_POOL);
    ipam3.apply_pool(a_pool);
    assert_eq!(ingress(&ipam3, "s1"), ["198.51.100.1"]);
    assert_eq!(ingress(&ipam3, "s2"), ["198.51.100.2"]);
    ipam3.verify().unwrap();
}

#[test]
fn unserved_services_are_cleared_once_and_never_touched() {
    let mut ipam = started(vec![pool("p", 0, &["198.51.100.0/24"])], vec![svc("a")]);
    ipam.take_changes();
    let mut other = svc("a");
    other.load_balancer_class = Some("example.com/other".into());
    ipam.apply_service(other.clone());
    let c = ipam.take_changes();
    assert_eq!(c.services, [ServiceChange::Clear { key: key("a"), uid: other.uid.clone() }]);
    assert_eq!(ipam.pool_output("p").unwrap().used, 0);
    ipam.apply_service(other);
    assert!(ipam.take_changes().is_empty());
    let mut cluster_ip = svc("c");
    cluster_ip.service_type = "ClusterIP".into();
    ipam.apply_service(cluster_ip);
    assert!(ipam.take_changes().is_empty());
    // Back to FerroLB's class: served again.
    let mut back = svc("a");
    back.load_balancer_class = Some(ferrolb_api::names::LOAD_BALANCER_CLASS.into());
    ipam.apply_service(back);
    assert_eq!(ingress(&ipam, "a"), ["198.51.100.0"]);
}

#[test]
fn recreated_service_with_new_uid_starts_over() {
    let mut ipam =
        started(vec![pool("p", 0, &["198.51.100.0/24"])], vec![svc("a").with_annotation(ann::IP_COUNT, "2")]);
    let mut again = svc("a");
    again.uid = "another".into();
    ipam.apply_service(again);
    assert_eq!(ingress(&ipam, "a"), ["198.51.100.0"]);
    assert_eq!(ipam.pool_output("p").unwrap().used, 1);
}

#[test]
fn pool_conditions() {
    let mut p = pool("prod", 0, &["10.0.3.7/24"]);
    p.spec.blocks.push(IpBlock::range("10.0.1.5", "10.0.1.1"));
    let ipam = started(vec![p], vec![]);
    let out = ipam.pool_output("prod").unwrap();
    assert!(out.invalid_spec.status);
    assert!(
        out.invalid_spec.message.contains("pool \"prod\": block 1: start 10.0.1.5 is after stop 10.0.1.1")
    );
    assert!(out.invalid_spec.message.contains("host bits"));
    assert_eq!(out.total, 256, "the valid block still works");
    let v6 = started(vec![pool("v6", 0, &["2001:db8:100::/64"])], vec![]);
    let out = v6.pool_output("v6").unwrap();
    assert_eq!((out.total, out.available), (1 << 64, 1 << 64));
    assert!(!out.invalid_spec.status);
}

#[test]
fn a_failed_write_is_emitted_again() {
    let mut ipam = started(vec![pool("p", 0, &["198.51.100.0/24"])], vec![svc("a")]);
    assert_eq!(ipam.take_changes().services.len(), 1);
    ipam.mark_service_unwritten(&key("a"));
    ipam.mark_pool_unwritten("p");
    let c = ipam.take_changes();
    assert_eq!((c.services.len(), c.pools.len()), (1, 1));
}

#[test]
fn compat_flag_off_ignores_foreign_annotations() {
    let mut ipam = Ipam::new(Config { compat_annotations: false, ..Config::default() });
    ipam.resync(
        vec![pool("p", 0, &["198.51.100.0/24"])],
        vec![svc("a").with_annotation(compat::CILIUM_IPS, "198.51.100.50")],
    );
    assert_eq!(ingress(&ipam, "a"), ["198.51.100.0"]);
}

#[test]
fn restart_after_a_busy_history_moves_nothing() {
    let pools = vec![pool("a", 0, &["198.51.100.0/28"]), pool("b", 1, &["2001:db8::/120"])];
    let mut services = Vec::new();
    for i in 0..12 {
        let mut s = svc(&format!("s{i}")).with_created(i);
        if i % 3 == 0 {
            s = s.with_families(IpFamilyPolicy::RequireDualStack, &[Family::V4, Family::V6]);
        }
        if i % 4 == 1 {
            s = s.with_annotation(ann::SHARING_KEY, "k").with_ports(&[("TCP", 1000 + i as u16)]);
        }
        services.push(s);
    }
    let mut ipam = started(pools.clone(), vec![]);
    for s in &services {
        ipam.apply_service(s.clone());
    }
    ipam.delete_service(&key("s2"));
    ipam.delete_service(&key("s5"));
    services.retain(|s| s.key.name != "s2" && s.key.name != "s5");
    record(pools, services.clone());
    let fresh = restart(&ipam);
    for s in &services {
        assert_eq!(ingress(&fresh, &s.key.name), ingress(&ipam, &s.key.name), "{}", s.key);
    }
}

#[test]
fn gaining_a_sharing_key_lets_a_waiting_service_join() {
    let mut p0 = pool("p0", 0, &["10.0.0.4-10.0.0.9", "10.0.0.8/30"]);
    p0.spec.blocks.truncate(2);
    let mut ipam = started(vec![p0], vec![]);
    let local = |s: ServiceInput, port: u16| {
        let mut s = s
            .with_annotation(ann::SHARING_KEY, "k")
            .with_families(IpFamilyPolicy::RequireDualStack, &[Family::V4, Family::V6])
            .with_ports(&[("TCP", port)]);
        s.external_traffic_policy = TrafficPolicy::Local;
        s.selector.insert("app".into(), "x".into());
        s
    };
    ipam.apply_service(local(svc("s7").with_created(1), 3));
    ipam.apply_service(svc("s3").with_ingress(&["10.0.0.5"]));
    assert_eq!(ingress(&ipam, "s3"), ["10.0.0.5"], "held in a pool in conflict");
    ipam.apply_service(local(svc("s3").with_ingress(&["10.0.0.5"]), 1));
    assert_eq!(ingress(&ipam, "s7"), ["10.0.0.5"]);
    ipam.verify().unwrap();
}
