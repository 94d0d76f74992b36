//! The announcement table: which node announces which address, as a revisioned index with a bounded
//! change log. Pure and synchronous: the announcer calls [`AnnouncementTable::apply`] and
//! [`AnnouncementTable::remove`] as its elections decide; the gRPC server reads snapshots and the
//! changes after a revision. No I/O, no clock: times come in as values.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

/// How many changes the table keeps for watchers that resume, unless told otherwise. A watcher that
/// falls further behind gets a snapshot instead.
pub const DEFAULT_LOG_CAPACITY: usize = 4096;

/// A Kubernetes Service, by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceRef {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
}

impl ServiceRef {
    /// The Service `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), name: name.into() }
    }
}

/// An IP family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of `ip`.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// One announced address: the Services using it, the node holding it, since when, and on which
/// interfaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    /// The address.
    pub ip: IpAddr,
    /// The Services that use the address (several when they share it). Kept sorted and unique.
    pub services: Vec<ServiceRef>,
    /// The node that holds the address.
    pub node: String,
    /// When `node` became the holder.
    pub since: SystemTime,
    /// The interfaces the holder announces the address on. Kept sorted and unique.
    pub interfaces: Vec<String>,
}

impl Announcement {
    /// `ip` held by `node` since `since`, with no Service and no interface yet.
    pub fn new(ip: IpAddr, node: impl Into<String>, since: SystemTime) -> Self {
        Self { ip, services: Vec::new(), node: node.into(), since, interfaces: Vec::new() }
    }

    /// Adds a Service that uses the address.
    pub fn with_service(mut self, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        self.services.push(ServiceRef::new(namespace, name));
        self.normalized()
    }

    /// Adds an interface the address is announced on.
    pub fn with_interface(mut self, interface: impl Into<String>) -> Self {
        self.interfaces.push(interface.into());
        self.normalized()
    }

    /// The family of the address.
    pub fn family(&self) -> Family {
        Family::of(self.ip)
    }

    /// Sorted, duplicate-free lists, so that equal announcements compare equal whatever order the
    /// caller listed Services and interfaces in.
    fn normalized(mut self) -> Self {
        self.services.sort();
        self.services.dedup();
        self.interfaces.sort();
        self.interfaces.dedup();
        self
    }
}

/// An announcement and the revision at which it last changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The announcement.
    pub announcement: Announcement,
    /// The table revision that created or last changed it.
    pub revision: u64,
}

/// Which announcements a snapshot or a change list covers. Every condition that is set must hold;
/// [`Filter::default`] matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only announcements held by this node.
    pub node: Option<String>,
    /// Only announcements with at least one Service in this namespace.
    pub namespace: Option<String>,
    /// Only addresses of this family.
    pub family: Option<Family>,
    /// Only announcements held by the table's local node.
    pub only_local: bool,
}

impl Filter {
    /// Whether `announcement` passes, for a table whose local node is `local_node`.
    pub fn matches(&self, announcement: &Announcement, local_node: &str) -> bool {
        self.node.as_ref().is_none_or(|node| *node == announcement.node)
            && self
                .namespace
                .as_ref()
                .is_none_or(|ns| announcement.services.iter().any(|s| s.namespace == *ns))
            && self.family.is_none_or(|family| family == announcement.family())
            && (!self.only_local || announcement.node == local_node)
    }
}

/// The announcements that match a filter at one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The table's epoch.
    pub epoch: u64,
    /// The revision the snapshot was taken at.
    pub revision: u64,
    /// The matching entries, sorted by address (IPv4 first).
    pub entries: Vec<Entry>,
}

/// What a change did, as seen through a filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// The announcement appeared, or entered the filter.
    Added,
    /// The announcement changed and still matches.
    Updated,
    /// The announcement went away, or left the filter.
    Removed,
}

/// One change after a revision, as seen through a filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The table revision of the change.
    pub revision: u64,
    /// What happened.
    pub kind: ChangeKind,
    /// The entry after the change (`Added`, `Updated`) or its last state (`Removed`).
    pub entry: Entry,
}

/// Why [`AnnouncementTable::changes_since`] cannot list the changes after a revision: the watcher
/// must start again from a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    /// The change log no longer holds the changes right after `requested`.
    #[error("revision {requested} is too old: the change log starts after revision {oldest}")]
    TooOld {
        /// The revision asked for.
        requested: u64,
        /// The oldest revision the table can resume from.
        oldest: u64,
    },
    /// `requested` is past the table's current revision: the table never issued it.
    #[error("revision {requested} is ahead of the current revision {current}")]
    Ahead {
        /// The revision asked for.
        requested: u64,
        /// The table's current revision.
        current: u64,
    },
}

/// What the local CNI agent reported about one address on one interface (delegate mode).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgrammingReport {
    /// The address.
    pub ip: IpAddr,
    /// The interface the agent programmed.
    pub interface: String,
    /// True when the datapath is ready for the address on the interface.
    pub ok: bool,
    /// Why programming failed; empty when `ok`.
    pub error_message: String,
    /// The announcement revision the agent programmed; 0 means the current one.
    pub revision: u64,
    /// When the report arrived.
    pub reported_at: SystemTime,
}

/// What [`AnnouncementTable::record_report`] did with a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportOutcome {
    /// Recorded, for the announcement at `revision`.
    Accepted {
        /// The announcement revision the report now covers.
        revision: u64,
    },
    /// Not recorded: the report is about another revision than the current one.
    Stale {
        /// The announcement's current revision.
        current: u64,
    },
    /// Not recorded: the local node does not hold the address.
    NotHeld {
        /// The announcement's current revision, 0 when nobody announces the address.
        current: u64,
    },
}

/// Delegate mode: where the local CNI agent stands with an address the local node holds, as the
/// announcer decides it (its report timeout lives there). Kept beside the revisioned state: setting
/// it never bumps the revision, so that the report that changes it never makes itself stale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Programming {
    /// The state.
    pub state: ProgrammingState,
    /// Why, for `Failed` and `TimedOut`; empty otherwise.
    pub message: String,
}

/// See [`Programming`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProgrammingState {
    /// Programmed on every interface the address is announced on.
    Programmed,
    /// Waiting for the agent's report on at least one interface.
    Pending,
    /// No report in time on at least one interface.
    TimedOut,
    /// The agent reported a failure on at least one interface.
    Failed,
}

/// One entry of the change log: the state of one address before and after one revision. The states
/// are shared with the table and with neighbouring log entries: with thousands of addresses a log of
/// copies cost as much as the table itself.
#[derive(Clone, Debug)]
struct LogEntry {
    revision: u64,
    before: Option<Arc<Entry>>,
    after: Option<Arc<Entry>>,
}

/// The revisioned table of announcements known to one announcer, with a bounded log of recent changes
/// for watchers that resume, and the local CNI agent's programming reports.
#[derive(Clone, Debug)]
pub struct AnnouncementTable {
    local_node: String,
    epoch: u64,
    revision: u64,
    entries: BTreeMap<IpAddr, Arc<Entry>>,
    log: VecDeque<LogEntry>,
    log_capacity: usize,
    /// The revision of the newest change dropped from the log: the oldest revision a watcher can
    /// resume from. The log holds exactly the revisions after it, one entry each.
    compacted_through: u64,
    reports: BTreeMap<IpAddr, BTreeMap<String, ProgrammingReport>>,
    programming: BTreeMap<IpAddr, Programming>,
}

impl AnnouncementTable {
    /// An empty table for the announcer on `local_node`. `epoch` identifies this table among restarts
    /// of the announcer (revisions restart at 1 with each new table); use a fresh random value.
    pub fn new(local_node: impl Into<String>, epoch: u64) -> Self {
        Self {
            local_node: local_node.into(),
            epoch,
            revision: 0,
            entries: BTreeMap::new(),
            log: VecDeque::new(),
            log_capacity: DEFAULT_LOG_CAPACITY,
            compacted_through: 0,
            reports: BTreeMap::new(),
            programming: BTreeMap::new(),
        }
    }

    /// Keeps at most `capacity` changes (at least 1) for resuming watchers.
    pub fn with_log_capacity(mut self, capacity: usize) -> Self {
        self.log_capacity = capacity.max(1);
        while self.log.len() > self.log_capacity {
            self.compact_one();
        }
        self
    }

    /// The node this table's announcer runs on.
    pub fn local_node(&self) -> &str {
        &self.local_node
    }

    /// The epoch given at creation.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The current revision: 0 for a new table, then one more per change.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The oldest revision [`AnnouncementTable::changes_since`] accepts.
    pub fn oldest_resumable(&self) -> u64 {
        self.compacted_through
    }

    /// How many addresses are announced.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no address is announced.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The announcement of `ip`, if any.
    pub fn get(&self, ip: IpAddr) -> Option<&Entry> {
        self.entries.get(&ip).map(|entry| &**entry)
    }

    /// Sets the announcement of its address. Returns the new revision, or `None` when nothing
    /// changed. A new holder drops the programming reports of the old one.
    pub fn apply(&mut self, announcement: Announcement) -> Option<u64> {
        let announcement = announcement.normalized();
        let ip = announcement.ip;
        let before = self.entries.get(&ip).cloned();
        if before.as_deref().is_some_and(|entry| entry.announcement == announcement) {
            return None;
        }
        if before.as_deref().is_some_and(|entry| entry.announcement.node != announcement.node) {
            self.reports.remove(&ip);
            self.programming.remove(&ip);
        }
        self.revision += 1;
        let after = Arc::new(Entry { announcement, revision: self.revision });
        self.entries.insert(ip, after.clone());
        self.push_log(LogEntry { revision: self.revision, before, after: Some(after) });
        Some(self.revision)
    }

    /// Stops announcing `ip` and forgets its programming reports. Returns the new revision, or
    /// `None` when `ip` was not announced.
    pub fn remove(&mut self, ip: IpAddr) -> Option<u64> {
        let before = self.entries.remove(&ip)?;
        self.reports.remove(&ip);
        self.programming.remove(&ip);
        self.revision += 1;
        self.push_log(LogEntry { revision: self.revision, before: Some(before), after: None });
        Some(self.revision)
    }

    /// Makes the table hold exactly `all` (after a full resync of the announcer's own state):
    /// removes what is missing and applies the rest, one revision per actual change. Returns the
    /// revision afterwards.
    pub fn reset(&mut self, all: impl IntoIterator<Item = Announcement>) -> u64 {
        let wanted: BTreeMap<IpAddr, Announcement> = all.into_iter().map(|a| (a.ip, a)).collect();
        self.retain(|ip| wanted.contains_key(&ip));
        for announcement in wanted.into_values() {
            self.apply(announcement);
        }
        self.revision
    }

    /// Removes every address for which `keep` is false, as [`AnnouncementTable::remove`] does, in
    /// address order.
    pub fn retain(&mut self, mut keep: impl FnMut(IpAddr) -> bool) {
        let gone: Vec<IpAddr> = self.entries.keys().copied().filter(|ip| !keep(*ip)).collect();
        for ip in gone {
            self.remove(ip);
        }
    }

    /// The entries that match `filter`, at the current revision.
    pub fn snapshot(&self, filter: &Filter) -> Snapshot {
        Snapshot {
            epoch: self.epoch,
            revision: self.revision,
            entries: self
                .entries
                .values()
                .filter(|entry| filter.matches(&entry.announcement, &self.local_node))
                .map(|entry| Entry::clone(entry))
                .collect(),
        }
    }

    /// The changes after revision `since`, in order, as seen through `filter`: an announcement that
    /// enters the filter is `Added`, one that leaves it is `Removed`. Changes the filter hides are
    /// left out, so revisions skip. Applying them to a snapshot at `since` (same filter) gives the
    /// snapshot at [`AnnouncementTable::revision`].
    pub fn changes_since(&self, since: u64, filter: &Filter) -> Result<Vec<Change>, ResumeError> {
        if since > self.revision {
            return Err(ResumeError::Ahead { requested: since, current: self.revision });
        }
        if since < self.compacted_through {
            return Err(ResumeError::TooOld { requested: since, oldest: self.compacted_through });
        }
        let skip = usize::try_from(since - self.compacted_through).unwrap_or(usize::MAX);
        let visible = |entry: &Option<Arc<Entry>>| {
            entry.as_deref().filter(|entry| filter.matches(&entry.announcement, &self.local_node)).cloned()
        };
        Ok(self
            .log
            .iter()
            .skip(skip)
            .filter_map(|log| {
                let (kind, entry) = match (visible(&log.before), visible(&log.after)) {
                    (None, Some(after)) => (ChangeKind::Added, after),
                    (Some(_), Some(after)) => (ChangeKind::Updated, after),
                    (Some(before), None) => (ChangeKind::Removed, before),
                    (None, None) => return None,
                };
                Some(Change { revision: log.revision, kind, entry })
            })
            .collect())
    }

    /// Records what the local CNI agent reported about an address on an interface, when the local
    /// node holds the address and the report is about its current revision (0 stands for the
    /// current revision). A newer report for the same interface replaces the older one.
    pub fn record_report(&mut self, mut report: ProgrammingReport) -> ReportOutcome {
        let Some(entry) = self.entries.get(&report.ip) else {
            return ReportOutcome::NotHeld { current: 0 };
        };
        if entry.announcement.node != self.local_node {
            return ReportOutcome::NotHeld { current: entry.revision };
        }
        if report.revision != 0 && report.revision != entry.revision {
            return ReportOutcome::Stale { current: entry.revision };
        }
        report.revision = entry.revision;
        let revision = entry.revision;
        self.reports.entry(report.ip).or_default().insert(report.interface.clone(), report);
        ReportOutcome::Accepted { revision }
    }

    /// The agent's reports for `ip` since the local node became its holder, sorted by interface.
    pub fn reports(&self, ip: IpAddr) -> impl Iterator<Item = &ProgrammingReport> {
        self.reports.get(&ip).into_iter().flat_map(|by_interface| by_interface.values())
    }

    /// Whether the agent's latest report for `ip` on `interface` says ok and covers the current
    /// revision of the announcement: the condition for sending gratuitous packets in delegate mode.
    pub fn is_programmed(&self, ip: IpAddr, interface: &str) -> bool {
        let Some(entry) = self.entries.get(&ip) else { return false };
        self.reports
            .get(&ip)
            .and_then(|by_interface| by_interface.get(interface))
            .is_some_and(|report| report.ok && report.revision == entry.revision)
    }

    /// Sets (or with `None` clears) the programming state of `ip`, which must be announced by the
    /// local node; otherwise nothing is recorded. The revision does not move.
    pub fn set_programming(&mut self, ip: IpAddr, programming: Option<Programming>) {
        let local = self.entries.get(&ip).is_some_and(|entry| entry.announcement.node == self.local_node);
        match programming.filter(|_| local) {
            Some(programming) => {
                self.programming.insert(ip, programming);
            }
            None => {
                self.programming.remove(&ip);
            }
        }
    }

    /// The programming state of `ip`, when the announcer set one.
    pub fn programming(&self, ip: IpAddr) -> Option<&Programming> {
        self.programming.get(&ip)
    }

    fn push_log(&mut self, entry: LogEntry) {
        if self.log.len() >= self.log_capacity {
            self.compact_one();
        }
        self.log.push_back(entry);
    }

    fn compact_one(&mut self) {
        if let Some(dropped) = self.log.pop_front() {
            self.compacted_through = dropped.revision;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn held(addr: &str, node: &str) -> Announcement {
        Announcement::new(ip(addr), node, at(100)).with_service("default", "web").with_interface("eth0")
    }

    #[test]
    fn apply_bumps_the_revision_only_on_change() {
        let mut table = AnnouncementTable::new("node-a", 7);
        assert_eq!(table.apply(held("198.51.100.128", "node-a")), Some(1));
        assert_eq!(table.apply(held("198.51.100.128", "node-a")), None);
        let reordered = Announcement::new(ip("198.51.100.128"), "node-a", at(100))
            .with_interface("eth0")
            .with_service("default", "web");
        assert_eq!(table.apply(reordered), None, "order of services and interfaces does not matter");
        assert_eq!(table.apply(held("198.51.100.128", "node-b")), Some(2));
        assert_eq!(table.remove(ip("198.51.100.128")), Some(3));
        assert_eq!(table.remove(ip("198.51.100.128")), None);
        assert_eq!(table.revision(), 3);
        assert_eq!(table.epoch(), 7);
    }

    #[test]
    fn changes_since_lists_changes_in_order_with_kinds() {
        let mut table = AnnouncementTable::new("node-a", 1);
        table.apply(held("198.51.100.128", "node-a"));
        table.apply(held("198.51.100.129", "node-b"));
        table.apply(held("198.51.100.128", "node-b"));
        table.remove(ip("198.51.100.129"));
        let changes = table.changes_since(1, &Filter::default()).unwrap();
        let summary: Vec<_> =
            changes.iter().map(|c| (c.revision, c.kind, c.entry.announcement.ip.to_string())).collect();
        assert_eq!(
            summary,
            vec![
                (2, ChangeKind::Added, "198.51.100.129".to_string()),
                (3, ChangeKind::Updated, "198.51.100.128".to_string()),
                (4, ChangeKind::Removed, "198.51.100.129".to_string()),
            ]
        );
        assert_eq!(changes[2].entry.revision, 2, "a removal carries the last state");
        assert!(table.changes_since(4, &Filter::default()).unwrap().is_empty());
    }

    #[test]
    fn a_filter_turns_moves_across_it_into_added_and_removed() {
        let mut table = AnnouncementTable::new("node-a", 1);
        table.apply(held("198.51.100.128", "node-b"));
        let local = Filter { only_local: true, ..Filter::default() };
        assert!(table.snapshot(&local).entries.is_empty());
        table.apply(held("198.51.100.128", "node-a"));
        table.apply(held("198.51.100.128", "node-a").with_interface("eth1"));
        table.apply(held("198.51.100.128", "node-c"));
        let kinds: Vec<_> = table.changes_since(1, &local).unwrap().iter().map(|c| c.kind).collect();
        assert_eq!(kinds, vec![ChangeKind::Added, ChangeKind::Updated, ChangeKind::Removed]);
    }

    #[test]
    fn filters_by_node_namespace_and_family() {
        let mut table = AnnouncementTable::new("node-a", 1);
        table.apply(held("198.51.100.128", "node-a"));
        table.apply(Announcement::new(ip("2001:db8:100::1000"), "node-b", at(1)).with_service("prod", "api"));
        let ips = |filter: Filter| -> Vec<String> {
            table.snapshot(&filter).entries.iter().map(|e| e.announcement.ip.to_string()).collect()
        };
        assert_eq!(ips(Filter::default()), vec!["198.51.100.128", "2001:db8:100::1000"]);
        assert_eq!(
            ips(Filter { node: Some("node-b".into()), ..Filter::default() }),
            vec!["2001:db8:100::1000"]
        );
        assert_eq!(
            ips(Filter { namespace: Some("default".into()), ..Filter::default() }),
            vec!["198.51.100.128"]
        );
        assert_eq!(ips(Filter { family: Some(Family::V6), ..Filter::default() }), vec!["2001:db8:100::1000"]);
        assert_eq!(ips(Filter { only_local: true, ..Filter::default() }), vec!["198.51.100.128"]);
        assert!(ips(Filter { only_local: true, family: Some(Family::V6), ..Filter::default() }).is_empty());
    }

    #[test]
    fn old_and_future_revisions_are_refused() {
        let mut table = AnnouncementTable::new("node-a", 1).with_log_capacity(2);
        for n in 0..5u8 {
            table.apply(held(&format!("198.51.100.{}", 128 + n), "node-a"));
        }
        assert_eq!(table.oldest_resumable(), 3);
        assert_eq!(
            table.changes_since(2, &Filter::default()),
            Err(ResumeError::TooOld { requested: 2, oldest: 3 })
        );
        assert_eq!(table.changes_since(3, &Filter::default()).unwrap().len(), 2);
        assert_eq!(
            table.changes_since(6, &Filter::default()),
            Err(ResumeError::Ahead { requested: 6, current: 5 })
        );
    }

    #[test]
    fn reset_applies_the_difference() {
        let mut table = AnnouncementTable::new("node-a", 1);
        table.apply(held("198.51.100.128", "node-a"));
        table.apply(held("198.51.100.129", "node-a"));
        let rev = table.reset([held("198.51.100.129", "node-a"), held("198.51.100.130", "node-b")]);
        assert_eq!(rev, 4, "one removal and one addition; the unchanged entry costs nothing");
        let ips: Vec<_> =
            table.snapshot(&Filter::default()).entries.iter().map(|e| e.announcement.ip).collect();
        assert_eq!(ips, vec![ip("198.51.100.129"), ip("198.51.100.130")]);
    }

    fn report(addr: &str, interface: &str, ok: bool, revision: u64) -> ProgrammingReport {
        ProgrammingReport {
            ip: ip(addr),
            interface: interface.into(),
            ok,
            error_message: if ok { String::new() } else { "no route".into() },
            revision,
            reported_at: at(200),
        }
    }

    #[test]
    fn reports_are_kept_for_the_current_local_announcement_only() {
        let mut table = AnnouncementTable::new("node-a", 1);
        assert_eq!(
            table.record_report(report("198.51.100.128", "eth0", true, 0)),
            ReportOutcome::NotHeld { current: 0 }
        );
        table.apply(held("198.51.100.129", "node-b"));
        assert_eq!(
            table.record_report(report("198.51.100.129", "eth0", true, 0)),
            ReportOutcome::NotHeld { current: 1 }
        );
        table.apply(held("198.51.100.128", "node-a"));
        assert_eq!(
            table.record_report(report("198.51.100.128", "eth0", false, 2)),
            ReportOutcome::Accepted { revision: 2 }
        );
        assert!(!table.is_programmed(ip("198.51.100.128"), "eth0"));
        assert_eq!(
            table.record_report(report("198.51.100.128", "eth0", true, 0)),
            ReportOutcome::Accepted { revision: 2 }
        );
        assert!(table.is_programmed(ip("198.51.100.128"), "eth0"));
        assert_eq!(table.reports(ip("198.51.100.128")).count(), 1, "the newer report replaced the older");

        table.apply(held("198.51.100.128", "node-a").with_interface("eth1"));
        assert!(!table.is_programmed(ip("198.51.100.128"), "eth0"), "revision 2 is no longer current");
        assert_eq!(
            table.record_report(report("198.51.100.128", "eth0", true, 2)),
            ReportOutcome::Stale { current: 3 }
        );

        table.apply(held("198.51.100.128", "node-b"));
        assert_eq!(table.reports(ip("198.51.100.128")).count(), 0, "a new holder starts with no reports");
    }

    #[test]
    fn programming_state_is_kept_beside_the_revision_for_local_addresses_only() {
        let mut table = AnnouncementTable::new("node-a", 1);
        let failed = Programming { state: ProgrammingState::Failed, message: "eth0: no route".into() };
        table.set_programming(ip("198.51.100.128"), Some(failed.clone()));
        assert_eq!(table.programming(ip("198.51.100.128")), None, "not announced: nothing recorded");
        table.apply(held("198.51.100.128", "node-a"));
        table.apply(held("198.51.100.129", "node-b"));
        table.set_programming(ip("198.51.100.129"), Some(failed.clone()));
        assert_eq!(table.programming(ip("198.51.100.129")), None, "another node's address");
        table.set_programming(ip("198.51.100.128"), Some(failed.clone()));
        assert_eq!(table.revision(), 2, "setting the state moves no revision");
        assert_eq!(table.programming(ip("198.51.100.128")), Some(&failed));
        table.apply(held("198.51.100.128", "node-b"));
        assert_eq!(table.programming(ip("198.51.100.128")), None, "a new holder starts without one");
        table.apply(held("198.51.100.128", "node-a"));
        table.set_programming(ip("198.51.100.128"), Some(failed));
        table.remove(ip("198.51.100.128"));
        assert_eq!(table.programming(ip("198.51.100.128")), None);
    }
}
