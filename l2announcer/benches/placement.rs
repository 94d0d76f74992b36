//! Placement benchmark: time of one full [`place`] of 10,000 and 100,000 addresses (one Service each)
//! over 5 and 100 nodes, from scratch (no holders) and again with the result as holders (the steady
//! state an announcer recomputes on every change).
//!
//! Run: `cargo bench -p ferrolb-l2announcer --bench placement` (release profile).

use std::hint::black_box;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use ferrolb_l2announcer::placement::{NodeId, Nodes, Slot, place};
use ferrolb_l2announcer::policy::ServiceKey;

fn slots(n_addrs: usize, nodes: &Nodes) -> Vec<Slot> {
    let all: Vec<NodeId> = (0..nodes.len() as u32).map(NodeId).collect();
    (0..n_addrs)
        .map(|i| Slot {
            address: IpAddr::V6(Ipv6Addr::from(0x2001_0db8_0100_0000_0000_0000_0001_0000u128 + i as u128)),
            services: vec![ServiceKey::new("default", format!("svc-{i}")).into()],
            candidates: all.clone(),
            holder: None,
        })
        .collect()
}

/// Median of `runs` timings of `f`.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut t: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    t.sort();
    t[runs / 2]
}

fn main() {
    println!("{:>9} {:>6} {:>16} {:>16}", "addresses", "nodes", "from scratch", "steady state");
    for &n_addrs in &[10_000usize, 100_000] {
        for &n_nodes in &[5usize, 100] {
            let nodes = Nodes::new((0..n_nodes).map(|i| format!("node-{i:03}")));
            let mut s = slots(n_addrs, &nodes);
            let runs = if n_addrs >= 100_000 { 5 } else { 15 };
            let scratch = median(runs, || {
                black_box(place(&nodes, black_box(&s)));
            });
            let result = place(&nodes, &s);
            for (slot, r) in s.iter_mut().zip(&result) {
                slot.holder = *r;
            }
            let steady = median(runs, || {
                black_box(place(&nodes, black_box(&s)));
            });
            println!("{n_addrs:>9} {n_nodes:>6} {:>13.1} ms {:>13.1} ms", ms(scratch), ms(steady));
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
