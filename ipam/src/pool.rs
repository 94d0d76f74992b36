//! Pools as the core uses them: parsed blocks with their allocation bounds, selectors, and the
//! conflict rule between overlapping pools.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ferrolb_api::names::labels;
use ferrolb_api::range::{ip_to_u128, u128_to_ip};
use ferrolb_api::{Family, IpRange, LoadBalancerIPPoolSpec, LoadBalancerIPPoolStatus, Selector};

use crate::allocator::Bounds;
use crate::service::ServiceInput;

/// Reasons of the pool conditions FerroLB writes (not in `ferrolb_api::names`, which only lists
/// Service reasons; kept here until the API crate wants them).
pub mod reasons {
    /// `ferrolb.io/PoolConflict=True`: a block overlaps an older pool's block or another block of
    /// the same pool (Cilium's reason).
    pub const CIDR_OVERLAP: &str = "cidr_overlap";
    /// `ferrolb.io/PoolConflict=False`.
    pub const NO_CONFLICT: &str = "no_conflict";
    /// `ferrolb.io/InvalidSpec=True`: some block or selector cannot be used.
    pub const INVALID_SPEC: &str = "invalid_spec";
    /// `ferrolb.io/InvalidSpec=False` with a warning (a CIDR with host bits set).
    pub const VALID_WITH_WARNINGS: &str = "valid_with_warnings";
    /// `ferrolb.io/InvalidSpec=False`.
    pub const VALID: &str = "valid";
}

/// An address with its family, ordered IPv4 first: the key of every address map in the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Addr {
    pub family: Family,
    pub n: u128,
}

impl Addr {
    pub fn of(ip: IpAddr) -> Self {
        Self { family: Family::of(ip), n: ip_to_u128(ip) }
    }

    pub fn ip(self) -> IpAddr {
        // `n` always came from an address of `family`.
        u128_to_ip(self.family, self.n).unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ip().fmt(f)
    }
}

/// A pool as the adapter hands it over.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PoolInput {
    pub name: String,
    /// `metadata.creationTimestamp` in seconds since the epoch: the older pool wins a conflict.
    pub created: i64,
    pub spec: LoadBalancerIPPoolSpec,
    /// The status the object currently shows, so an unchanged status is not written again.
    pub status: Option<LoadBalancerIPPoolStatus>,
}

/// One usable block of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Block {
    /// Position in `spec.blocks` (0-based, as in the field path `spec.blocks[i]`).
    pub index: usize,
    pub range: IpRange,
    pub first: u128,
    pub last: u128,
    /// What new allocations may use.
    pub bounds: Bounds,
}

impl Block {
    pub fn family(&self) -> Family {
        self.range.family()
    }

    pub fn contains(&self, a: Addr) -> bool {
        a.family == self.family() && self.first <= a.n && a.n <= self.last
    }

    fn overlaps(&self, o: &Block) -> bool {
        self.family() == o.family() && self.first <= o.last && o.first <= self.last
    }
}

/// Which Services a pool selects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PoolSelector {
    /// No selector: every Service.
    Everything,
    /// Any of these (serviceSelector OR serviceSelectors).
    AnyOf(Vec<Selector>),
    /// Some selector is invalid: the pool cannot tell whom it serves, so it allocates nothing new,
    /// and the addresses it already handed out stay (a typo must not renumber Services).
    Invalid,
}

/// A parsed pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pool {
    pub name: String,
    pub created: i64,
    pub blocks: Vec<Block>,
    pub selector: PoolSelector,
    pub disabled: bool,
    pub auto_assign: bool,
    pub priority: Option<i32>,
    /// `pool "p": block 2: ...` messages for the InvalidSpec condition.
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

impl Pool {
    /// Parses a pool. Invalid blocks are left out (and reported) while the valid ones keep
    /// working, so an edit with one bad block does not release every address of the pool.
    pub fn parse(input: &PoolInput) -> Self {
        let spec = &input.spec;
        let name = &input.name;
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let mut blocks = Vec::new();
        for (index, b) in spec.blocks.iter().enumerate() {
            match IpRange::from_block(b) {
                Ok(parsed) => {
                    if let Some(w) = &parsed.warning {
                        warnings.push(format!("pool {name:?}: block {index}: {w}"));
                    }
                    let (first, last) = (ip_to_u128(parsed.range.first()), ip_to_u128(parsed.range.last()));
                    let bounds = Bounds::for_block(
                        parsed.range.family(),
                        first,
                        last,
                        parsed.cidr,
                        spec.allow_first_last(),
                        spec.avoid_buggy_ips,
                    );
                    blocks.push(Block { index, range: parsed.range, first, last, bounds });
                }
                Err(e) => errors.push(format!("pool {name:?}: block {index}: {e}")),
            }
        }
        let mut selectors = Vec::new();
        let mut selector_ok = true;
        let all = spec.service_selector.iter().map(|s| ("serviceSelector".to_string(), s)).chain(
            spec.service_selectors.iter().enumerate().map(|(i, s)| (format!("serviceSelectors[{i}]"), s)),
        );
        for (field, sel) in all {
            match Selector::from_label_selector(sel) {
                Ok(s) => selectors.push(s),
                Err(e) => {
                    selector_ok = false;
                    errors.push(format!("pool {name:?}: {field}: {e}"));
                }
            }
        }
        let selector = if !selector_ok {
            PoolSelector::Invalid
        } else if selectors.is_empty() {
            PoolSelector::Everything
        } else {
            PoolSelector::AnyOf(selectors)
        };
        Self {
            name: name.clone(),
            created: input.created,
            blocks,
            selector,
            disabled: spec.disabled,
            auto_assign: spec.auto_assign,
            priority: spec.priority,
            errors,
            warnings,
        }
    }

    /// Whether the pool's selector matches the Service, with the pseudo-labels overriding its
    /// labels. `None` when the selector is invalid (undecidable).
    pub fn selects(&self, svc: &ServiceInput) -> Option<bool> {
        match &self.selector {
            PoolSelector::Everything => Some(true),
            PoolSelector::Invalid => None,
            PoolSelector::AnyOf(sels) => {
                let mut overrides = vec![
                    (labels::SERVICE_NAMESPACE, svc.key.namespace.as_str()),
                    (labels::SERVICE_NAME, svc.key.name.as_str()),
                ];
                if let Some(class) = &svc.load_balancer_class {
                    overrides.push((labels::LOAD_BALANCER_CLASS, class.as_str()));
                }
                Some(sels.iter().any(|s| s.matches_with(&svc.labels, &overrides)))
            }
        }
    }

    /// Order of pools for automatic allocation: lower priority first, unset last, then by name.
    pub fn order_key(&self) -> (bool, i32, &str) {
        (self.priority.is_none(), self.priority.unwrap_or(0), &self.name)
    }

    /// Addresses the pool may hand out in total (ignoring conflicts and `disabled`).
    pub fn capacity(&self) -> u128 {
        self.blocks.iter().fold(0u128, |acc, b| acc.saturating_add(b.bounds.capacity()))
    }
}

/// Decides which pools are in conflict: pools are taken oldest first (creationTimestamp, then
/// name); a pool conflicts when two of its own blocks overlap or one of its blocks overlaps a block
/// of an older pool that is not itself in conflict. So the older pool always keeps working, the
/// result depends only on the set of pools (not on the order events arrived), and the blocks of
/// the pools *not* in conflict are pairwise disjoint, which the allocator index relies on.
///
/// Returns the conflict message per conflicting pool, naming both ranges.
pub fn conflicts<'a>(pools: impl IntoIterator<Item = &'a Pool>) -> BTreeMap<String, String> {
    let mut by_age: Vec<&Pool> = pools.into_iter().collect();
    by_age.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
    // Accepted blocks of non-conflicting pools, by start; disjoint by construction.
    let mut accepted: BTreeMap<Addr, (u128, &Pool, &Block)> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for pool in by_age {
        if let Some(msg) = internal_overlap(pool) {
            out.insert(pool.name.clone(), msg);
            continue;
        }
        let clash = pool.blocks.iter().find_map(|b| {
            let start = Addr { family: b.family(), n: b.first };
            let end = Addr { family: b.family(), n: b.last };
            let before = accepted
                .range(..=start)
                .next_back()
                .filter(|(k, v)| k.family == b.family() && v.0 >= b.first);
            let inside = accepted.range(start..=end).next();
            before.or(inside).map(|(_, (_, p, ob))| (b, *p, *ob))
        });
        if let Some((b, other, ob)) = clash {
            out.insert(
                pool.name.clone(),
                format!(
                    "block {} ({}) overlaps block {} ({}) of older pool {:?}",
                    b.index, b.range, ob.index, ob.range, other.name
                ),
            );
            continue;
        }
        for b in &pool.blocks {
            accepted.insert(Addr { family: b.family(), n: b.first }, (b.last, pool, b));
        }
    }
    out
}

fn internal_overlap(pool: &Pool) -> Option<String> {
    let mut sorted: Vec<&Block> = pool.blocks.iter().collect();
    sorted.sort_by_key(|b| (b.family(), b.first, b.index));
    // Sorted by start, an overlap always shows between a block and the widest one before it.
    let mut widest: Option<&Block> = None;
    for b in sorted {
        if let Some(w) = widest
            && w.overlaps(b)
        {
            let (x, y) = if w.index < b.index { (w, b) } else { (b, w) };
            return Some(format!(
                "block {} ({}) overlaps block {} ({}) of the same pool",
                y.index, y.range, x.index, x.range
            ));
        }
        if widest.is_none_or(|w| w.family() != b.family() || b.last > w.last) {
            widest = Some(b);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_api::IpBlock;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    pub(crate) fn pool(name: &str, created: i64, blocks: &[IpBlock]) -> Pool {
        Pool::parse(&PoolInput {
            name: name.into(),
            created,
            spec: LoadBalancerIPPoolSpec { blocks: blocks.to_vec(), ..Default::default() },
            status: None,
        })
    }

    #[test]
    fn errors_name_pool_block_and_value() {
        let p = pool(
            "prod",
            0,
            &[
                IpBlock::cidr("10.0.0.0/24"),
                IpBlock::cidr("10.0.3.7/24"),
                IpBlock::range("10.0.1.5", "10.0.1.1"),
            ],
        );
        assert_eq!(p.blocks.len(), 2);
        assert_eq!(p.errors, ["pool \"prod\": block 2: start 10.0.1.5 is after stop 10.0.1.1"]);
        assert_eq!(
            p.warnings,
            ["pool \"prod\": block 1: cidr 10.0.3.7/24 has host bits set; using 10.0.3.0/24"]
        );
    }

    #[test]
    fn bad_selector_freezes_the_pool() {
        let mut input = PoolInput { name: "p".into(), ..Default::default() };
        input.spec.blocks = vec![IpBlock::cidr("10.0.0.0/24")];
        input.spec.service_selectors = vec![LabelSelector {
            match_labels: Some([("bad key".to_string(), "v".to_string())].into()),
            match_expressions: None,
        }];
        let p = Pool::parse(&input);
        assert_eq!(p.selector, PoolSelector::Invalid);
        assert!(
            p.errors[0].starts_with("pool \"p\": serviceSelectors[0]: invalid label key"),
            "{:?}",
            p.errors
        );
        assert_eq!(p.selects(&ServiceInput::load_balancer("a", "b")), None);
    }

    #[test]
    fn pseudo_labels_override_user_labels() {
        let mut input = PoolInput { name: "p".into(), ..Default::default() };
        input.spec.service_selector = Some(LabelSelector {
            match_labels: Some([(labels::SERVICE_NAMESPACE.to_string(), "prod".to_string())].into()),
            match_expressions: None,
        });
        let p = Pool::parse(&input);
        let svc = ServiceInput::load_balancer("dev", "web").with_label(labels::SERVICE_NAMESPACE, "prod");
        assert_eq!(p.selects(&svc), Some(false));
        assert_eq!(p.selects(&ServiceInput::load_balancer("prod", "web")), Some(true));
    }

    #[test]
    fn newer_pool_conflicts_and_names_both_ranges() {
        let a = pool("a", 10, &[IpBlock::cidr("10.0.0.0/24")]);
        let b = pool("b", 20, &[IpBlock::cidr("10.1.0.0/24"), IpBlock::range("10.0.0.200", "10.0.1.5")]);
        let c = pool("c", 20, &[IpBlock::cidr("10.0.1.0/24")]);
        let got = conflicts([&c, &b, &a]);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(
            got["b"],
            "block 1 (10.0.0.200-10.0.1.5) overlaps block 0 (10.0.0.0-10.0.0.255) of older pool \"a\""
        );
        // b is in conflict, so c (same age, later name) only meets a: no conflict.
        let same = pool("d", 5, &[IpBlock::cidr("10.9.0.0/24"), IpBlock::cidr("10.9.0.128/25")]);
        let got = conflicts([&same]);
        assert!(got["d"].contains("of the same pool"), "{got:?}");
        // Families do not overlap each other.
        let v6 = pool("e", 0, &[IpBlock::cidr("::/96")]);
        assert!(conflicts([&a, &v6]).is_empty());
    }

    #[test]
    fn same_age_ties_break_by_name() {
        let x = pool("x", 1, &[IpBlock::cidr("10.0.0.0/24")]);
        let y = pool("y", 1, &[IpBlock::cidr("10.0.0.0/25")]);
        assert_eq!(conflicts([&y, &x]).keys().collect::<Vec<_>>(), ["y"]);
    }
}
