//! Delegate mode (`--datapath delegate`): a CNI agent programs its datapath for the addresses this
//! node holds, following the announcement table over the gRPC API, and reports each (address,
//! interface) programmed or failed with `ReportProgrammed`. This module decides, without I/O and with
//! time as a parameter, what the announcer does about it:
//!
//! - a pair this node starts to answer for (or whose announcement changes revision) **waits** for a
//!   report: no gratuitous ARP/NA goes out before the agent's datapath is ready, since clients that
//!   moved to this node's MAC would otherwise lose their traffic;
//! - an ok report for the current revision makes it **programmed** and starts the gratuitous burst
//!   ([`Action::Announce`]);
//! - a failed report, or no report within `--delegate-report-timeout`, is a **warning**
//!   ([`Action::Warn`]): the adapter turns it into a Warning Event `ProgrammingFailed` on the
//!   Service(s) and a count in `ferrolb_announcer_delegate_failures_total`. A later ok report still
//!   programs the pair;
//! - [`DelegateTracker::programming`] sums each address over its interfaces for
//!   `ListAnnouncements` (a failure anywhere wins over a timeout, over waiting, over programmed);
//! - with no WatchAnnouncements stream open, no agent follows the table: [`agent_detail`] says so
//!   for `/readyz`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_proto::table::{Programming, ProgrammingState};

/// Default `--delegate-report-timeout`: a local agent that follows the table programs an address in
/// milliseconds; seconds leave room for a slow netlink or a busy node.
pub const DEFAULT_REPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// One (address, interface) this node answers for.
pub type Pair = (IpAddr, String);

/// Why a pair is not programmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The agent reported a failure, with its message.
    Reported(String),
    /// No report within the timeout.
    TimedOut(Duration),
}

impl Failure {
    /// The `reason` label of the failure metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Failure::Reported(_) => "reported",
            Failure::TimedOut(_) => "timeout",
        }
    }

    /// The Event's message for `ip` on `interface`.
    pub fn message(&self, ip: IpAddr, interface: &str) -> String {
        match self {
            Failure::Reported(error) => {
                format!("the CNI agent failed to program {ip} on {interface}: {error}")
            }
            Failure::TimedOut(timeout) => format!(
                "the CNI agent did not report {ip} on {interface} programmed within {}; no gratuitous ARP/NA sent",
                humantime::format_duration(*timeout)
            ),
        }
    }
}

/// What the adapter does after a report or a timeout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send the gratuitous ARP/NA burst for `ip` on `interface` now.
    Announce {
        /// The address.
        ip: IpAddr,
        /// The interface.
        interface: String,
    },
    /// Warn about `ip` on `interface` (Event on its Services, metric).
    Warn {
        /// The address.
        ip: IpAddr,
        /// The interface.
        interface: String,
        /// Why.
        failure: Failure,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum SlotState {
    Waiting { since: Instant },
    Programmed,
    Failed(String),
    TimedOut,
}

#[derive(Clone, Debug)]
struct Slot {
    revision: u64,
    state: SlotState,
}

/// The programming state of every pair this node answers for in delegate mode.
#[derive(Clone, Debug)]
pub struct DelegateTracker {
    timeout: Duration,
    slots: BTreeMap<Pair, Slot>,
}

impl DelegateTracker {
    /// A tracker that waits `timeout` for each report.
    pub fn new(timeout: Duration) -> Self {
        Self { timeout, slots: BTreeMap::new() }
    }

    /// The pairs this node answers for now, each with its announcement's revision: a new pair, or
    /// one whose revision moved, waits for a report from `now`; pairs gone are forgotten.
    pub fn set_held(&mut self, held: impl IntoIterator<Item = (Pair, u64)>, now: Instant) {
        let held: BTreeMap<Pair, u64> = held.into_iter().collect();
        self.slots.retain(|pair, _| held.contains_key(pair));
        for (pair, revision) in held {
            let slot =
                self.slots.entry(pair).or_insert(Slot { revision, state: SlotState::Waiting { since: now } });
            if slot.revision != revision {
                *slot = Slot { revision, state: SlotState::Waiting { since: now } };
            }
        }
    }

    /// A report the announcement table accepted (for `revision`, the current one). Reports for pairs
    /// this node does not answer for, or for another revision than the tracked one, change nothing.
    pub fn report(
        &mut self,
        ip: IpAddr,
        interface: &str,
        ok: bool,
        error: &str,
        revision: u64,
    ) -> Vec<Action> {
        let Some(slot) = self.slots.get_mut(&(ip, interface.to_owned())) else { return Vec::new() };
        if slot.revision != revision {
            return Vec::new();
        }
        let interface = interface.to_owned();
        if ok {
            // A repeated ok report sends no second burst.
            if slot.state == SlotState::Programmed {
                return Vec::new();
            }
            slot.state = SlotState::Programmed;
            vec![Action::Announce { ip, interface }]
        } else {
            slot.state = SlotState::Failed(error.to_owned());
            vec![Action::Warn { ip, interface, failure: Failure::Reported(error.to_owned()) }]
        }
    }

    /// The pairs whose report is overdue at `now`: each warns once, then stays timed out until a
    /// report or a new revision.
    pub fn expire(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        for ((ip, interface), slot) in &mut self.slots {
            if let SlotState::Waiting { since } = slot.state
                && now >= since + self.timeout
            {
                slot.state = SlotState::TimedOut;
                actions.push(Action::Warn {
                    ip: *ip,
                    interface: interface.clone(),
                    failure: Failure::TimedOut(self.timeout),
                });
            }
        }
        actions
    }

    /// When the next report falls overdue, if any is awaited.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.slots
            .values()
            .filter_map(|slot| match slot.state {
                SlotState::Waiting { since } => Some(since + self.timeout),
                _ => None,
            })
            .min()
    }

    /// Each address's state over its interfaces, for the announcement table.
    pub fn programming(&self) -> BTreeMap<IpAddr, Programming> {
        let mut by_ip: BTreeMap<IpAddr, (ProgrammingState, BTreeSet<String>)> = BTreeMap::new();
        for ((ip, interface), slot) in &self.slots {
            let (state, message) = match &slot.state {
                SlotState::Waiting { .. } => (ProgrammingState::Pending, None),
                SlotState::Programmed => (ProgrammingState::Programmed, None),
                SlotState::Failed(error) => (ProgrammingState::Failed, Some(format!("{interface}: {error}"))),
                SlotState::TimedOut => (
                    ProgrammingState::TimedOut,
                    Some(format!(
                        "{interface}: no report within {}",
                        humantime::format_duration(self.timeout)
                    )),
                ),
            };
            let worst = by_ip.entry(*ip).or_insert((state, BTreeSet::new()));
            if state > worst.0 {
                *worst = (state, BTreeSet::new());
            }
            if state == worst.0
                && let Some(message) = message
            {
                worst.1.insert(message);
            }
        }
        by_ip
            .into_iter()
            .map(|(ip, (state, messages))| {
                (ip, Programming { state, message: messages.into_iter().collect::<Vec<_>>().join("; ") })
            })
            .collect()
    }

    /// How many addresses are failed or timed out now (the unprogrammed gauge).
    pub fn unprogrammed(&self) -> usize {
        self.programming()
            .values()
            .filter(|p| matches!(p.state, ProgrammingState::Failed | ProgrammingState::TimedOut))
            .count()
    }
}

/// The `/readyz` detail of a delegate-mode announcer followed by `watchers` WatchAnnouncements
/// streams: `None` while at least one agent follows the table.
pub fn agent_detail(watchers: usize) -> Option<String> {
    (watchers == 0).then(|| {
        "delegate mode: no CNI agent connected (no WatchAnnouncements stream open); \
         addresses held are not programmed and not announced"
            .to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn pair(addr: &str, interface: &str) -> Pair {
        (ip(addr), interface.to_owned())
    }

    fn state_of(tracker: &DelegateTracker, addr: &str) -> Option<ProgrammingState> {
        tracker.programming().get(&ip(addr)).map(|p| p.state)
    }

    #[test]
    fn an_ok_report_announces_once_and_nothing_is_announced_before() {
        let t0 = Instant::now();
        let mut tracker = DelegateTracker::new(TIMEOUT);
        tracker.set_held([(pair("198.51.100.128", "eth0"), 3)], t0);
        assert_eq!(state_of(&tracker, "198.51.100.128"), Some(ProgrammingState::Pending));
        assert!(tracker.expire(t0 + Duration::from_secs(1)).is_empty());
        assert_eq!(tracker.next_deadline(), Some(t0 + TIMEOUT));

        let actions = tracker.report(ip("198.51.100.128"), "eth0", true, "", 3);
        assert_eq!(actions, vec![Action::Announce { ip: ip("198.51.100.128"), interface: "eth0".into() }]);
        assert!(tracker.report(ip("198.51.100.128"), "eth0", true, "", 3).is_empty(), "no second burst");
        assert_eq!(state_of(&tracker, "198.51.100.128"), Some(ProgrammingState::Programmed));
        assert!(tracker.expire(t0 + TIMEOUT * 2).is_empty(), "programmed pairs never time out");
        assert_eq!(tracker.next_deadline(), None);
    }

    #[test]
    fn a_failed_report_warns_and_a_later_ok_still_announces() {
        let t0 = Instant::now();
        let mut tracker = DelegateTracker::new(TIMEOUT);
        tracker.set_held([(pair("198.51.100.128", "eth0"), 3)], t0);
        let actions = tracker.report(ip("198.51.100.128"), "eth0", false, "no route", 3);
        assert_eq!(
            actions,
            vec![Action::Warn {
                ip: ip("198.51.100.128"),
                interface: "eth0".into(),
                failure: Failure::Reported("no route".into())
            }]
        );
        assert_eq!(
            tracker.programming()[&ip("198.51.100.128")],
            Programming { state: ProgrammingState::Failed, message: "eth0: no route".into() }
        );
        assert!(tracker.expire(t0 + TIMEOUT).is_empty(), "a failed pair does not also time out");
        assert_eq!(tracker.unprogrammed(), 1);
        let actions = tracker.report(ip("198.51.100.128"), "eth0", true, "", 3);
        assert!(matches!(actions.as_slice(), [Action::Announce { .. }]));
        assert_eq!(tracker.unprogrammed(), 0);
    }

    #[test]
    fn a_missing_report_times_out_once_at_the_deadline() {
        let t0 = Instant::now();
        let mut tracker = DelegateTracker::new(TIMEOUT);
        tracker.set_held([(pair("2001:db8:100::1000", "eth0"), 1)], t0);
        assert!(tracker.expire(t0 + TIMEOUT - Duration::from_millis(1)).is_empty());
        let actions = tracker.expire(t0 + TIMEOUT);
        assert_eq!(
            actions,
            vec![Action::Warn {
                ip: ip("2001:db8:100::1000"),
                interface: "eth0".into(),
                failure: Failure::TimedOut(TIMEOUT)
            }]
        );
        assert!(tracker.expire(t0 + TIMEOUT * 3).is_empty(), "warned once");
        assert_eq!(state_of(&tracker, "2001:db8:100::1000"), Some(ProgrammingState::TimedOut));
        if let Action::Warn { failure, .. } = &actions[0] {
            assert_eq!(failure.metric_label(), "timeout");
            assert!(failure.message(ip("2001:db8:100::1000"), "eth0").contains("within 5s"));
        }
        // A late report still programs it.
        assert!(!tracker.report(ip("2001:db8:100::1000"), "eth0", true, "", 1).is_empty());
    }

    #[test]
    fn a_new_revision_waits_again_and_old_reports_change_nothing() {
        let t0 = Instant::now();
        let mut tracker = DelegateTracker::new(TIMEOUT);
        tracker.set_held([(pair("198.51.100.128", "eth0"), 3)], t0);
        tracker.report(ip("198.51.100.128"), "eth0", true, "", 3);
        let t1 = t0 + Duration::from_secs(2);
        tracker.set_held([(pair("198.51.100.128", "eth0"), 4)], t1);
        assert_eq!(state_of(&tracker, "198.51.100.128"), Some(ProgrammingState::Pending));
        assert!(tracker.report(ip("198.51.100.128"), "eth0", true, "", 3).is_empty(), "revision 3 is gone");
        assert_eq!(tracker.next_deadline(), Some(t1 + TIMEOUT));
        // The same revision again restarts nothing.
        tracker.set_held([(pair("198.51.100.128", "eth0"), 4)], t1 + Duration::from_secs(1));
        assert_eq!(tracker.next_deadline(), Some(t1 + TIMEOUT));
        // Gone pairs are forgotten, and reports for pairs not held change nothing.
        tracker.set_held([], t1);
        assert!(tracker.programming().is_empty());
        assert!(tracker.report(ip("198.51.100.128"), "eth0", false, "x", 4).is_empty());
    }

    #[test]
    fn an_address_shows_its_worst_interface() {
        let t0 = Instant::now();
        let mut tracker = DelegateTracker::new(TIMEOUT);
        tracker.set_held(
            [
                (pair("198.51.100.128", "eth0"), 2),
                (pair("198.51.100.128", "eth1"), 2),
                (pair("198.51.100.128", "eth2"), 2),
            ],
            t0,
        );
        tracker.report(ip("198.51.100.128"), "eth0", true, "", 2);
        assert_eq!(state_of(&tracker, "198.51.100.128"), Some(ProgrammingState::Pending));
        tracker.expire(t0 + TIMEOUT);
        assert_eq!(state_of(&tracker, "198.51.100.128"), Some(ProgrammingState::TimedOut));
        tracker.report(ip("198.51.100.128"), "eth2", false, "busy", 2);
        assert_eq!(
            tracker.programming()[&ip("198.51.100.128")],
            Programming { state: ProgrammingState::Failed, message: "eth2: busy".into() }
        );
    }

    #[test]
    fn no_watch_stream_means_no_agent() {
        assert!(agent_detail(0).unwrap().contains("no CNI agent connected"));
        assert_eq!(agent_detail(1), None);
    }
}
