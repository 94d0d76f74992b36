//! Issue 13's memory budget: the speaker's route state for 10,000 prefixes and 3 peers stays
//! under 10 MiB. Counts live heap bytes with a counting allocator (this test binary only) around
//! building the shared table and three peers' Adj-RIB-Outs after their initial sync, which is
//! when they hold the most: every route wanted and every route sent.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ferrolb_bgp::codec::{Family, LargeCommunity};
use ferrolb_bgp::rib::{AdjRibOut, RouteAttrs, SessionAttrs};
use ipnet::IpNet;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: same layout as given.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: ptr came from alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MIB: usize = 1024 * 1024;

#[test]
fn ten_thousand_prefixes_and_three_peers_fit_in_10_mib() {
    let before = LIVE.load(Ordering::Relaxed);
    // Routes as the announcer would hold them: a few advertisements' attributes, shared.
    let attrs: Vec<Arc<RouteAttrs>> = (0..4)
        .map(|i| {
            Arc::new(
                RouteAttrs::new(
                    vec![(65001 << 16) | i],
                    vec![LargeCommunity { global: 65001, local1: i, local2: 0 }],
                    None,
                )
                .expect("attributes"),
            )
        })
        .collect();
    let mut table = BTreeMap::new();
    for i in 0..10_000u32 {
        let prefix = if i % 2 == 0 {
            IpNet::new(IpAddr::V4(Ipv4Addr::from(0xcb00_7100 + i)), 32)
        } else {
            IpNet::new(IpAddr::V6(Ipv6Addr::from((0x2001_0db8_0200_u128 << 80) | u128::from(i))), 128)
        }
        .expect("a prefix");
        table.insert(prefix, Arc::clone(&attrs[(i % 4) as usize]));
    }
    let table = Arc::new(table);
    let session = SessionAttrs {
        local_as: 65001,
        ebgp: true,
        families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
        next_hop_v4: Some(Ipv4Addr::new(198, 51, 100, 11)),
        next_hop_v6: Some("2001:db8:100::11".parse().expect("an address")),
        link_local_v6: None,
    };
    let mut peers: Vec<AdjRibOut> = (0..3).map(|_| AdjRibOut::new()).collect();
    let mut sent = 0;
    for rib in &mut peers {
        rib.replace_all(table.iter().map(|(p, a)| (*p, Arc::clone(a))));
        // The UPDATEs of the initial sync are written and dropped one session at a time.
        sent += rib.take_updates(&session).len();
    }
    let live = LIVE.load(Ordering::Relaxed) - before;
    let peak = PEAK.load(Ordering::Relaxed) - before;
    eprintln!("10,000 prefixes, 3 peers: {live} bytes live, {peak} bytes at peak, {sent} UPDATEs");
    assert!(peers.iter().all(|r| r.sent().len() == 10_000));
    assert!(live <= 10 * MIB, "{live} bytes live");
    assert!(peak <= 10 * MIB, "{peak} bytes at peak");
}
