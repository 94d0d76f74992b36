//! Allocator benchmark (issue 3, benchmark 1): allocations per second and heap bytes per allocation
//! for an IPv4 /16 and an IPv6 /64 pool, for the bare block allocator and for the whole IPAM core
//! (one Service per address, owner map and Service records included).
//!
//! Run: `cargo bench -p ferrolb-ipam --bench allocator` (release profile).

// A counting global allocator is the only way to measure heap bytes without a dependency; it
// needs `unsafe impl GlobalAlloc`, which simply forwards to the system allocator.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use ferrolb_api::{Family, IpBlock, LoadBalancerIPPoolSpec};
use ferrolb_ipam::{BlockAllocator, Bounds, Config, Ipam, PoolInput, ServiceInput};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call forwards to `System` with the caller's arguments unchanged; the counter
// is only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn report(what: &str, n: usize, secs: f64, bytes: isize) {
    println!(
        "{what:<58} {n:>7} allocs  {:>12.0} allocs/s  {:>8.1} bytes/alloc",
        n as f64 / secs,
        bytes as f64 / n as f64
    );
}

/// Lowest-free allocation until `n` addresses are taken.
fn fill(what: &str, bounds: Bounds, n: usize) {
    let before = live();
    let start = Instant::now();
    let mut a = BlockAllocator::new(bounds);
    for _ in 0..n {
        black_box(a.allocate().expect("room"));
    }
    let secs = start.elapsed().as_secs_f64();
    report(what, n, secs, live() - before);
    drop(a);
}

/// The worst case for run merging: every other address freed (one run per taken address), then
/// allocated again (each allocation fills a one-address hole and merges two runs). Bytes are those
/// of the fragmented allocator per taken address; speed is that of the refill.
fn fragmented(what: &str, bounds: Bounds, n: usize) {
    let before = live();
    let mut a = BlockAllocator::new(bounds);
    let got: Vec<u128> = (0..n).map(|_| a.allocate().expect("room")).collect();
    let list_bytes = live() - before;
    for x in got.iter().step_by(2) {
        a.remove(*x);
    }
    let fragmented_bytes = live() - before - list_bytes;
    let (runs, taken) = (a.runs(), a.taken());
    let start = Instant::now();
    let refill = got.len().div_ceil(2);
    for _ in 0..refill {
        black_box(a.allocate().expect("room"));
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{what:<58} {refill:>7} allocs  {:>12.0} allocs/s  {:>8.1} bytes/alloc while fragmented ({runs} runs for {taken} taken)",
        refill as f64 / secs,
        fragmented_bytes as f64 / taken as f64,
    );
}

fn pool(cidr: &str) -> PoolInput {
    PoolInput {
        name: "bench".into(),
        created: 0,
        spec: LoadBalancerIPPoolSpec { blocks: vec![IpBlock::cidr(cidr)], ..Default::default() },
        status: None,
    }
}

fn services(n: usize, family: Family) -> Vec<ServiceInput> {
    (0..n)
        .map(|i| {
            let mut s = ServiceInput::load_balancer("bench", &format!("svc-{i:06}"));
            s.created = i as i64;
            s.ip_families = vec![family];
            s
        })
        .collect()
}

/// The whole core, one Service per address: `resync` (start-up batch) and then incremental
/// `apply_service` calls (watch events), with `take_changes` as the adapter would.
fn core(what: &str, cidr: &str, family: Family, n: usize) {
    let svcs = services(n, family);
    let before = live();
    let start = Instant::now();
    let mut ipam = Ipam::new(Config::default());
    ipam.resync(vec![pool(cidr)], svcs.clone());
    let changes = ipam.take_changes();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(changes.services.len(), n);
    drop(changes);
    report(&format!("{what}: resync"), n, secs, live() - before);
    drop(ipam);

    let before = live();
    let mut ipam = Ipam::new(Config::default());
    ipam.resync(vec![pool(cidr)], Vec::<ServiceInput>::new());
    ipam.take_changes();
    let start = Instant::now();
    for s in svcs.iter().cloned() {
        ipam.apply_service(s);
        black_box(ipam.take_changes());
    }
    let secs = start.elapsed().as_secs_f64();
    report(&format!("{what}: apply_service one by one"), n, secs, live() - before);

    // Restart: import every address written, allocate nothing.
    let written: Vec<ServiceInput> = svcs
        .into_iter()
        .map(|mut s| {
            let out = ipam.service_output(&s.key).expect("served");
            s.status.ingress = out.ingress.iter().map(|i| i.to_string()).collect();
            s.status.condition = Some(out.condition.clone());
            s.status.allocated_from_pool = out.allocated_from_pool();
            s
        })
        .collect();
    let start = Instant::now();
    let mut fresh = Ipam::new(Config::default());
    fresh.resync(vec![pool(cidr)], written);
    let writes = fresh.take_changes().services.len();
    println!(
        "{:<58} {n:>7} services {:>8.1} ms, {writes} Service writes",
        format!("{what}: restart import"),
        start.elapsed().as_secs_f64() * 1e3
    );
}

fn main() {
    let v4_16 = Bounds { family: Family::V4, lo: 0x0a00_0000, hi: 0x0a00_ffff, avoid_buggy: false };
    let v6_64 = Bounds {
        family: Family::V6,
        lo: 0x2001_0db8_0100_0000 << 64,
        hi: (0x2001_0db8_0100_0000 << 64) | u128::from(u64::MAX),
        avoid_buggy: false,
    };
    let v4_16_buggy = Bounds { avoid_buggy: true, ..v4_16 };

    println!("block allocator (lowest free first):");
    fill("IPv4 /16, fill all 65,536", v4_16, 65_536);
    fill("IPv4 /16 avoidBuggyIPs, fill all 65,024", v4_16_buggy, 65_024);
    fill("IPv6 /64, 100,000", v6_64, 100_000);
    fragmented("IPv4 /16, refill every other address", v4_16, 65_536);
    fragmented("IPv6 /64, refill every other of 100,000", v6_64, 100_000);

    println!("whole IPAM core (one Service per address):");
    core("IPv4 /16, 65,536 Services", "10.0.0.0/16", Family::V4, 65_536);
    core("IPv6 /64, 100,000 Services", "2001:db8:100::/64", Family::V6, 100_000);
    core("IPv4 /16, 10,000 Services", "10.0.0.0/16", Family::V4, 10_000);
}
