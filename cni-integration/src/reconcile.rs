//! The NIC agent's decisions, pure: which addresses the interface should carry, what to add and
//! remove to get there, and which programming reports are due. No I/O and no clock (time comes in
//! as a value), so every rule is tested here and the agent only carries the plan out.
//!
//! The rules:
//! - The agent owns only addresses it added (they carry its mark in the kernel, see
//!   `agent::netlink`). It adds a held address that is missing, removes an address it owns that is
//!   not held, and never adds, changes or removes an address that it does not own, even a held one
//!   (another component put it there; the datapath is ready, so the agent reports ok).
//! - Before the first snapshot from the announcer, nothing is removed: the agent does not know
//!   what the node holds, and a restart of the agent must not cut traffic.
//! - When the announcer has been unreachable for longer than the fence time, the agent removes
//!   every address it owns: the announcer may be dead, its Leases pass to other nodes, and a node
//!   that keeps an address would answer for it beside the new holder.
//! - A report is due for each held address whose (revision, result) was not yet accepted; the
//!   announcer sends gratuitous packets only once it has an ok report for the current revision.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

/// The addresses this node holds, with the revision of each announcement.
pub type Held = BTreeMap<IpAddr, u64>;

/// What the interface carries now, split by who put it there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Addresses with the agent's mark: the agent added them (maybe an earlier run of it).
    pub owned: BTreeSet<IpAddr>,
    /// Every other address on the interface.
    pub foreign: BTreeSet<IpAddr>,
}

impl Observed {
    /// Whether `ip` is on the interface, whoever put it there.
    pub fn has(&self, ip: &IpAddr) -> bool {
        self.owned.contains(ip) || self.foreign.contains(ip)
    }
}

/// The netlink work of one round.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Held addresses that are missing: add them with the agent's mark.
    pub add: Vec<IpAddr>,
    /// Owned addresses no longer held: remove them.
    pub remove: Vec<IpAddr>,
    /// Held addresses already on the interface without the agent's mark: left alone.
    pub not_owned: Vec<IpAddr>,
}

impl Plan {
    /// Whether the round changes nothing in the kernel.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// What the interface should carry: `Some(held)` once the agent has the announcer's state,
/// `Some(empty)` after `down_for` (how long the announcer has been unreachable; `None` while
/// connected) passed `fence_after`, and `None` (change nothing) while the agent does not know yet.
pub fn desired(held: &Held, synced: bool, down_for: Option<Duration>, fence_after: Duration) -> Option<Held> {
    if down_for.is_some_and(|down| down >= fence_after) {
        Some(Held::new())
    } else if synced {
        Some(held.clone())
    } else {
        None
    }
}

/// The netlink work that turns `observed` into `desired`.
pub fn plan(desired: &Held, observed: &Observed) -> Plan {
    Plan {
        add: desired.keys().filter(|ip| !observed.has(ip)).copied().collect(),
        remove: observed.owned.iter().filter(|ip| !desired.contains_key(ip)).copied().collect(),
        not_owned: desired.keys().filter(|ip| observed.foreign.contains(ip)).copied().collect(),
    }
}

/// One programming report to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The address.
    pub ip: IpAddr,
    /// The announcement revision it is about.
    pub revision: u64,
    /// `None`: programmed; `Some(why)`: not.
    pub error: Option<String>,
}

/// The last report the announcer took for an address: its revision and whether it said ok.
pub type Reported = BTreeMap<IpAddr, (u64, bool)>;

/// The reports due after a round: one for every desired address whose current result (on the
/// interface after the round, else the error that kept it off) differs from what the announcer
/// last took. `errors` are this round's failures by address.
pub fn reports_due(
    desired: &Held,
    after: &Observed,
    errors: &BTreeMap<IpAddr, String>,
    reported: &Reported,
) -> Vec<Report> {
    desired
        .iter()
        .filter_map(|(&ip, &revision)| {
            let error = if after.has(&ip) {
                None
            } else {
                Some(errors.get(&ip).cloned().unwrap_or_else(|| format!("{ip} is not on the interface")))
            };
            let ok = error.is_none();
            (reported.get(&ip) != Some(&(revision, ok))).then_some(Report { ip, revision, error })
        })
        .collect()
}

/// `observed` after `plan` was carried out, with the addresses in `failed` left as they were.
pub fn apply(observed: &Observed, plan: &Plan, failed: &BTreeSet<IpAddr>) -> Observed {
    let mut after = observed.clone();
    for ip in plan.add.iter().filter(|ip| !failed.contains(ip)) {
        after.owned.insert(*ip);
    }
    for ip in plan.remove.iter().filter(|ip| !failed.contains(ip)) {
        after.owned.remove(ip);
    }
    after
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn set(ips: &[&str]) -> BTreeSet<IpAddr> {
        ips.iter().map(|s| ip(s)).collect()
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn nothing_changes_before_the_first_snapshot_and_everything_goes_after_the_fence() {
        let held: Held = [(ip("198.51.100.200"), 3)].into();
        let fence = 5 * SECOND;
        assert_eq!(desired(&held, false, Some(SECOND), fence), None, "an agent that just started waits");
        assert_eq!(desired(&held, false, None, fence), None);
        assert_eq!(desired(&held, true, None, fence), Some(held.clone()));
        assert_eq!(
            desired(&held, true, Some(4 * SECOND), fence),
            Some(held.clone()),
            "a short outage keeps them"
        );
        assert_eq!(desired(&held, true, Some(fence), fence), Some(Held::new()));
        assert_eq!(
            desired(&held, false, Some(6 * SECOND), fence),
            Some(Held::new()),
            "no announcer since start"
        );
    }

    #[test]
    fn the_plan_adds_missing_removes_stale_and_leaves_foreign_alone() {
        let desired: Held =
            [(ip("198.51.100.200"), 1), (ip("198.51.100.201"), 2), (ip("2001:db8:100::1000"), 3)].into();
        let observed = Observed {
            owned: set(&["198.51.100.200", "198.51.100.66"]),
            foreign: set(&["198.51.100.201", "198.51.100.77", "198.51.100.11"]),
        };
        let plan = plan(&desired, &observed);
        assert_eq!(plan.add, vec![ip("2001:db8:100::1000")]);
        assert_eq!(plan.remove, vec![ip("198.51.100.66")], "only what the agent owns");
        assert_eq!(plan.not_owned, vec![ip("198.51.100.201")]);
    }

    #[test]
    fn reports_are_sent_once_per_revision_and_result() {
        let desired: Held = [(ip("198.51.100.200"), 4), (ip("198.51.100.201"), 5)].into();
        let after = Observed { owned: set(&["198.51.100.200"]), foreign: BTreeSet::new() };
        let errors = [(ip("198.51.100.201"), "add 198.51.100.201/32: File exists".to_string())].into();
        let due = reports_due(&desired, &after, &errors, &Reported::new());
        assert_eq!(
            due,
            vec![
                Report { ip: ip("198.51.100.200"), revision: 4, error: None },
                Report {
                    ip: ip("198.51.100.201"),
                    revision: 5,
                    error: Some("add 198.51.100.201/32: File exists".into())
                },
            ]
        );
        let reported: Reported =
            [(ip("198.51.100.200"), (4, true)), (ip("198.51.100.201"), (5, false))].into();
        assert!(reports_due(&desired, &after, &errors, &reported).is_empty(), "nothing new to say");
        let newer: Held = [(ip("198.51.100.200"), 6)].into();
        assert_eq!(
            reports_due(&newer, &after, &errors, &reported).len(),
            1,
            "a new revision is reported again"
        );
    }

    fn addresses() -> impl Strategy<Value = IpAddr> {
        // A small space, so that held, owned and foreign overlap often.
        prop_oneof![
            (0u8..12).prop_map(|n| IpAddr::from([198, 51, 100, 200 + n])),
            (0u16..6).prop_map(|n| IpAddr::from([0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x1000 + n])),
        ]
    }

    proptest! {
        #[test]
        fn a_plan_reaches_the_desired_state_and_never_touches_foreign_addresses(
            desired in proptest::collection::btree_map(addresses(), 1u64..50, 0..10),
            owned in proptest::collection::btree_set(addresses(), 0..10),
            foreign in proptest::collection::btree_set(addresses(), 0..10),
        ) {
            let owned: BTreeSet<IpAddr> = owned.difference(&foreign).copied().collect();
            let observed = Observed { owned, foreign };
            let plan = plan(&desired, &observed);

            for ip in &plan.remove {
                prop_assert!(observed.owned.contains(ip), "removes only owned addresses: {ip}");
                prop_assert!(!desired.contains_key(ip), "never removes a held address: {ip}");
            }
            for ip in &plan.add {
                prop_assert!(!observed.has(ip), "adds only missing addresses: {ip}");
            }

            let after = apply(&observed, &plan, &BTreeSet::new());
            prop_assert_eq!(&after.foreign, &observed.foreign, "foreign addresses stay as they were");
            for ip in desired.keys() {
                prop_assert!(after.has(ip), "held address {} is on the interface", ip);
            }
            for ip in &after.owned {
                prop_assert!(desired.contains_key(ip), "owned address {} is held", ip);
            }
            prop_assert!(super::plan(&desired, &after).is_empty(), "a second round changes nothing");

            // Once the due reports are taken, nothing is due until something changes.
            let reported: Reported = reports_due(&desired, &after, &BTreeMap::new(), &Reported::new())
                .into_iter()
                .map(|r| (r.ip, (r.revision, r.error.is_none())))
                .collect();
            prop_assert_eq!(reported.len(), desired.len());
            prop_assert!(reports_due(&desired, &after, &BTreeMap::new(), &reported).is_empty());
        }

        #[test]
        fn failed_operations_leave_the_rest_of_the_plan_done(
            desired in proptest::collection::btree_map(addresses(), 1u64..50, 0..10),
            owned in proptest::collection::btree_set(addresses(), 0..10),
            failed in proptest::collection::btree_set(addresses(), 0..4),
        ) {
            let observed = Observed { owned, foreign: BTreeSet::new() };
            let plan = plan(&desired, &observed);
            let after = apply(&observed, &plan, &failed);
            let errors: BTreeMap<IpAddr, String> = failed.iter().map(|ip| (*ip, "refused".to_string())).collect();
            for report in reports_due(&desired, &after, &errors, &Reported::new()) {
                let failed_add = plan.add.contains(&report.ip) && failed.contains(&report.ip);
                prop_assert_eq!(report.error.is_some(), failed_add, "{:?}", report);
            }
            // The next round retries exactly the failures.
            let retry = super::plan(&desired, &after);
            let failed_adds: Vec<IpAddr> = plan.add.iter().filter(|ip| failed.contains(ip)).copied().collect();
            let failed_removes: Vec<IpAddr> = plan.remove.iter().filter(|ip| failed.contains(ip)).copied().collect();
            prop_assert_eq!(retry.add, failed_adds);
            prop_assert_eq!(retry.remove, failed_removes);
        }
    }
}
