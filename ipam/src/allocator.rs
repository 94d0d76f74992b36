//! The address allocator of one pool block: which addresses of an interval over `u128` are taken,
//! and which is the lowest free one.
//!
//! Taken addresses are kept as merged runs (`start -> end`, inclusive) in a `BTreeMap`, so memory
//! grows with the number of *gaps* between allocations, never with the size of the block: a /64
//! costs one empty map until used, and 100k consecutive allocations cost one run. Finding the lowest
//! free address is one map lookup, because runs are kept maximal: the allowed address after a run's
//! end is never taken (otherwise the two runs would have been merged).
//!
//! Two rules make addresses of a block unavailable for *new* allocations:
//! - `allowFirstLastIPs: No` on a CIDR block trims its first and last address (the bounds `lo..=hi`
//!   are already trimmed when the allocator is built, see [`Bounds::for_block`]);
//! - `avoidBuggyIPs` skips IPv4 addresses ending in `.0` or `.255`. These are skipped arithmetically
//!   (never stored), and a run may span them, so a full /8 with `avoidBuggyIPs` is still one run.

use std::collections::BTreeMap;

use ferrolb_api::Family;
use ipnet::IpNet;

/// The addresses of a block that may be handed out: `lo..=hi`, minus `.0`/`.255` when `avoid_buggy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bounds {
    pub family: Family,
    pub lo: u128,
    pub hi: u128,
    /// Skip IPv4 addresses ending in `.0` or `.255` (never applies to IPv6).
    pub avoid_buggy: bool,
}

impl Bounds {
    /// Bounds of a parsed block under the pool's rules.
    ///
    /// As in Cilium, `allowFirstLastIPs: No` reserves the first and last address of CIDR blocks
    /// only, and only when that leaves something: /31, /32, /127 and /128 keep every address.
    /// `start`/`stop` blocks are taken literally.
    pub fn for_block(
        family: Family,
        first: u128,
        last: u128,
        cidr: Option<IpNet>,
        allow_first_last: bool,
        avoid_buggy: bool,
    ) -> Self {
        let small = match cidr {
            Some(IpNet::V4(n)) => n.prefix_len() >= 31,
            Some(IpNet::V6(n)) => n.prefix_len() >= 127,
            None => true,
        };
        let (lo, hi) =
            if cidr.is_some() && !allow_first_last && !small { (first + 1, last - 1) } else { (first, last) };
        Self { family, lo, hi, avoid_buggy: avoid_buggy && family == Family::V4 }
    }

    /// Whether `x` may be handed out.
    pub fn allows(&self, x: u128) -> bool {
        self.lo <= x && x <= self.hi && !(self.avoid_buggy && is_buggy(x))
    }

    /// The smallest allowed address `>= x`.
    pub fn first_allowed_from(&self, x: u128) -> Option<u128> {
        let mut x = x.max(self.lo);
        if self.avoid_buggy {
            match x & 0xff {
                0 => x += 1,
                // .255 is followed by the next .0, so the next candidate is .1.
                0xff => x = x.checked_add(2)?,
                _ => {}
            }
        }
        (x <= self.hi).then_some(x)
    }

    /// The smallest allowed address `> x`.
    pub fn next_allowed(&self, x: u128) -> Option<u128> {
        self.first_allowed_from(x.checked_add(1)?)
    }

    /// The largest allowed address `< x`.
    pub fn prev_allowed(&self, x: u128) -> Option<u128> {
        let mut y = x.checked_sub(1)?;
        if self.avoid_buggy {
            match y & 0xff {
                0xff => y -= 1,
                0 => y = y.checked_sub(2)?,
                _ => {}
            }
        }
        (y >= self.lo && y <= self.hi).then_some(y)
    }

    /// How many addresses may be handed out in total.
    pub fn capacity(&self) -> u128 {
        if self.lo > self.hi {
            return 0;
        }
        let all = (self.hi - self.lo).saturating_add(1);
        if !self.avoid_buggy {
            return all;
        }
        // IPv4 only, so hi + 1 cannot overflow.
        all - (buggy_below(self.hi + 1) - buggy_below(self.lo))
    }
}

/// `.0` or `.255` (callers only ask for IPv4).
fn is_buggy(x: u128) -> bool {
    matches!(x & 0xff, 0 | 0xff)
}

/// Number of `.0`/`.255` addresses in `0..n`.
fn buggy_below(n: u128) -> u128 {
    2 * (n >> 8) + u128::from(n & 0xff > 0)
}

/// Taken addresses of one block, as maximal runs; see the module documentation.
#[derive(Debug, Clone)]
pub struct BlockAllocator {
    bounds: Bounds,
    runs: BTreeMap<u128, u128>,
    taken: u128,
}

impl BlockAllocator {
    pub fn new(bounds: Bounds) -> Self {
        Self { bounds, runs: BTreeMap::new(), taken: 0 }
    }

    pub fn bounds(&self) -> &Bounds {
        &self.bounds
    }

    /// Allowed addresses currently taken.
    pub fn taken(&self) -> u128 {
        self.taken
    }

    /// Allowed addresses still free.
    pub fn free(&self) -> u128 {
        self.bounds.capacity() - self.taken
    }

    /// Number of runs stored (memory use is proportional to this).
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// The run containing `x`, if `x` is taken (or an excluded address inside a run).
    fn run_containing(&self, x: u128) -> Option<(u128, u128)> {
        self.runs.range(..=x).next_back().filter(|(_, e)| **e >= x).map(|(s, e)| (*s, *e))
    }

    /// Whether `x` is taken. Addresses the bounds do not allow are never taken.
    pub fn is_taken(&self, x: u128) -> bool {
        self.bounds.allows(x) && self.run_containing(x).is_some()
    }

    /// The lowest free allowed address, without taking it.
    pub fn lowest_free(&self) -> Option<u128> {
        let c = self.bounds.first_allowed_from(self.bounds.lo)?;
        match self.run_containing(c) {
            // Runs are maximal, so the allowed address after the run is free.
            Some((_, end)) => self.bounds.next_allowed(end),
            None => Some(c),
        }
    }

    /// Takes the lowest free allowed address.
    pub fn allocate(&mut self) -> Option<u128> {
        let x = self.lowest_free()?;
        self.insert(x);
        Some(x)
    }

    /// Marks `x` taken. Returns false (and changes nothing) when `x` is not allowed or already
    /// taken: excluded addresses held by a Service (imported, or excluded by a later pool edit)
    /// are tracked by the caller's owner map, not here.
    pub fn insert(&mut self, x: u128) -> bool {
        if !self.bounds.allows(x) {
            return false;
        }
        let left = self.runs.range(..=x).next_back().map(|(s, e)| (*s, *e));
        if let Some((_, e)) = left
            && e >= x
        {
            return false;
        }
        let right = self.runs.range(x..).next().map(|(s, e)| (*s, *e));
        let next = self.bounds.next_allowed(x);
        let mut start = x;
        let mut end = x;
        if let Some((s, e)) = left
            && self.bounds.next_allowed(e) == Some(x)
        {
            start = s;
        }
        if let Some((s, e)) = right
            && next == Some(s)
        {
            self.runs.remove(&s);
            end = e;
        }
        self.runs.insert(start, end);
        self.taken += 1;
        true
    }

    /// Frees `x`. Returns false when it was not taken.
    pub fn remove(&mut self, x: u128) -> bool {
        if !self.bounds.allows(x) {
            return false;
        }
        let Some((s, e)) = self.run_containing(x) else { return false };
        self.runs.remove(&s);
        if s < x
            && let Some(p) = self.bounds.prev_allowed(x)
        {
            self.runs.insert(s, p);
        }
        if x < e
            && let Some(n) = self.bounds.next_allowed(x)
        {
            self.runs.insert(n, e);
        }
        self.taken -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn v4(s: &str) -> u128 {
        u128::from(u32::from(s.parse::<std::net::Ipv4Addr>().unwrap()))
    }

    fn cidr_bounds(s: &str, allow_first_last: bool, avoid_buggy: bool) -> Bounds {
        let net: IpNet = s.parse().unwrap();
        let r = ferrolb_api::IpRange::from_net(net);
        let fam = r.family();
        Bounds::for_block(
            fam,
            ferrolb_api::range::ip_to_u128(r.first()),
            ferrolb_api::range::ip_to_u128(r.last()),
            Some(net),
            allow_first_last,
            avoid_buggy,
        )
    }

    #[test]
    fn lowest_free_first_and_reuse_after_free() {
        let mut a = BlockAllocator::new(cidr_bounds("10.0.0.0/30", true, false));
        assert_eq!(a.allocate(), Some(v4("10.0.0.0")));
        assert_eq!(a.allocate(), Some(v4("10.0.0.1")));
        assert_eq!(a.allocate(), Some(v4("10.0.0.2")));
        assert!(a.remove(v4("10.0.0.1")));
        assert_eq!(a.allocate(), Some(v4("10.0.0.1")));
        assert_eq!(a.allocate(), Some(v4("10.0.0.3")));
        assert_eq!(a.allocate(), None);
        assert_eq!(a.runs(), 1);
        assert_eq!(a.free(), 0);
    }

    #[test]
    fn first_last_rule_follows_cilium() {
        let b = cidr_bounds("10.0.0.0/24", false, false);
        assert_eq!((b.lo, b.hi), (v4("10.0.0.1"), v4("10.0.0.254")));
        assert_eq!(b.capacity(), 254);
        assert_eq!(cidr_bounds("10.0.0.0/31", false, false).capacity(), 2);
        assert_eq!(cidr_bounds("10.0.0.7/32", false, false).capacity(), 1);
        let b6 = cidr_bounds("2001:db8::/127", false, false);
        assert_eq!(b6.capacity(), 2);
        let b6 = cidr_bounds("2001:db8::/126", false, false);
        assert_eq!(b6.capacity(), 2);
        let b6 = cidr_bounds("2001:db8::/64", false, false);
        assert_eq!(b6.capacity(), (1u128 << 64) - 2);
        // start/stop ranges are taken literally.
        let r = Bounds::for_block(Family::V4, v4("10.0.0.0"), v4("10.0.0.255"), None, false, false);
        assert_eq!(r.capacity(), 256);
    }

    #[test]
    fn buggy_addresses_are_skipped_and_runs_span_them() {
        let mut a = BlockAllocator::new(cidr_bounds("10.0.0.0/22", true, true));
        assert_eq!(a.bounds().capacity(), 1024 - 8);
        let got: Vec<u128> = std::iter::from_fn(|| a.allocate()).collect();
        assert_eq!(got.len(), 1016);
        assert!(got.iter().all(|x| !matches!(x & 0xff, 0 | 0xff)));
        assert_eq!(got[0], v4("10.0.0.1"));
        assert_eq!(got[254], v4("10.0.1.1"));
        assert_eq!(a.runs(), 1, "a full block with skipped addresses is one run");
        assert!(a.remove(v4("10.0.1.1")));
        assert_eq!(a.runs(), 2);
        assert_eq!(a.allocate(), Some(v4("10.0.1.1")));
        assert_eq!(a.runs(), 1);
        assert!(!a.insert(v4("10.0.2.0")), "an excluded address is never taken here");
    }

    #[test]
    fn a_v6_64_costs_nothing_until_used() {
        let mut a = BlockAllocator::new(cidr_bounds("2001:db8:100::/64", true, false));
        assert_eq!(a.runs(), 0);
        assert_eq!(a.free(), 1u128 << 64);
        for _ in 0..1000 {
            a.allocate().unwrap();
        }
        assert_eq!(a.runs(), 1);
        assert!(a.insert(a.bounds().hi));
        assert_eq!(a.runs(), 2);
        assert_eq!(a.taken(), 1001);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Alloc,
        Insert(u16),
        Remove(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![Just(Op::Alloc), (0u16..600).prop_map(Op::Insert), (0u16..600).prop_map(Op::Remove)]
    }

    proptest! {
        /// The run map agrees with a plain set model: same taken set, same lowest free address.
        #[test]
        fn matches_a_set_model(ops in proptest::collection::vec(op(), 0..300), buggy in any::<bool>(), trim in any::<bool>()) {
            let bounds = Bounds::for_block(Family::V4, 0, 511, Some("0.0.0.0/23".parse().unwrap()), !trim, buggy);
            let mut a = BlockAllocator::new(bounds);
            let mut model = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Alloc => {
                        let want = (0..=600u128).find(|x| bounds.allows(*x) && !model.contains(x));
                        let got = a.allocate();
                        prop_assert_eq!(got, want);
                        if let Some(x) = got { model.insert(x); }
                    }
                    Op::Insert(x) => {
                        let x = u128::from(x);
                        let want = bounds.allows(x) && !model.contains(&x);
                        prop_assert_eq!(a.insert(x), want);
                        if want { model.insert(x); }
                    }
                    Op::Remove(x) => {
                        let x = u128::from(x);
                        prop_assert_eq!(a.remove(x), model.remove(&x));
                    }
                }
                prop_assert_eq!(a.taken(), model.len() as u128);
                for x in 0..520u128 {
                    prop_assert_eq!(a.is_taken(x), model.contains(&x), "x={}", x);
                }
            }
        }

        #[test]
        fn capacity_counts_allowed_addresses(lo in 0u128..2000, len in 0u128..2000, buggy in any::<bool>()) {
            let b = Bounds { family: Family::V4, lo, hi: lo + len, avoid_buggy: buggy };
            let brute = (lo..=lo + len).filter(|x| b.allows(*x)).count() as u128;
            prop_assert_eq!(b.capacity(), brute);
        }
    }
}
