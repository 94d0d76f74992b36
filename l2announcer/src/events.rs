//! Which Events one announcer sends about the addresses it announces, without I/O.
//!
//! - `Announcing` (Normal) when this node starts answering for an address or its interfaces change,
//!   `NotAnnouncing` (Normal) when it stops while the Service still exists: every change of this
//!   node's own answering goes out.
//! - `NotAnnouncing` (Warning) when no node can announce an address, only from the node that holds
//!   the status writer Lease's claim (the adapter says so each round), when the reason first
//!   appears or changes. Every node keeps track of the reasons, so a node that becomes the writer
//!   warns about changes from then on.
//! - Warnings repeat while their cause lasts and are limited to one per `interval` per (address,
//!   reason) ([`EventBook::admit`]); Normal Events need no such entry (10,000 addresses taken over
//!   would otherwise keep 10,000 entries).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_api::names::events as reasons;

use crate::engine::Plan;
use crate::lease_state::StandDownReason;
use crate::policy::{AddressKey, ServiceInput, ServiceKey};

/// An Event's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Normal,
    Warning,
}

/// One Event about an address's Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub key: AddressKey,
    pub severity: Severity,
    pub reason: &'static str,
    pub message: String,
}

/// What one node remembers of the Events it sent.
#[derive(Debug)]
pub struct EventBook {
    this_node: String,
    interval: Duration,
    /// The addresses this node answered for after the last round, with their interfaces. Addresses
    /// answered on the same interfaces share one list (thousands of addresses, a few interfaces).
    answering: BTreeMap<AddressKey, Arc<[String]>>,
    /// Why no node could announce an address, after the last round.
    why_none: HashMap<AddressKey, String>,
    /// The last Warning sent per (address, reason).
    last_warning: HashMap<(AddressKey, &'static str), Instant>,
}

impl EventBook {
    /// The book of node `this_node`, sending a Warning of one reason for one address at most once per
    /// `interval`.
    pub fn new(this_node: impl Into<String>, interval: Duration) -> Self {
        Self {
            this_node: this_node.into(),
            interval,
            answering: BTreeMap::new(),
            why_none: HashMap::new(),
            last_warning: HashMap::new(),
        }
    }

    /// The Events a round's `plan` calls for, already limited (see the module documentation);
    /// `writer`: this node holds the status writer Lease's claim (it sends the Warnings about
    /// addresses nobody can announce).
    pub fn after_round(
        &mut self,
        plan: &Plan,
        services: &[Arc<ServiceInput>],
        writer: bool,
        now: Instant,
    ) -> Vec<Note> {
        // The books are changed in place, not rebuilt: a round over 10,000 addresses would
        // otherwise allocate a new 10,000-entry map every time, among its transient data, and keep
        // it until the next round (jemalloc cannot give back a page one live entry is left on).
        let mut notes = Vec::new();
        self.started(plan, &mut notes);
        self.stopped(plan, services, &mut notes);
        self.warn_none(plan, writer, &mut notes);
        notes.retain(|n| self.admit(n, now));
        if self.last_warning.len() > 4 * (plan.addresses.len() + 16) {
            let interval = self.interval;
            self.last_warning.retain(|_, t| now < *t + interval);
        }
        notes
    }

    /// `NotAnnouncing` for every address this node answered for and no longer does, while its
    /// Service exists; forgets them.
    fn stopped(&mut self, plan: &Plan, services: &[Arc<ServiceInput>], notes: &mut Vec<Note>) {
        let gone: Vec<AddressKey> =
            self.answering.keys().filter(|k| !plan.status(k).is_some_and(|a| a.answering)).cloned().collect();
        if gone.is_empty() {
            return;
        }
        let this_node = &self.this_node;
        let existing: HashSet<&ServiceKey> = services.iter().map(|s| &*s.key).collect();
        for key in gone {
            self.answering.remove(&key);
            if !existing.contains(&*key.service) {
                continue;
            }
            let status = plan.status(&key);
            if let Some(why) = status.and_then(|a| a.stood_down) {
                // It still holds the Lease: say why it is silent, or the Event would name this
                // very node as the holder.
                let message = format!(
                    "{this_node} stopped announcing {} while holding its Lease: {}",
                    key.address,
                    why.describe()
                );
                let severity = match why {
                    StandDownReason::TakeoverNotice => Severity::Normal,
                    StandDownReason::NotVouched => Severity::Warning,
                };
                notes.push(Note { key, severity, reason: reasons::NOT_ANNOUNCING, message });
                continue;
            }
            let holder = status
                .and_then(|a| a.holder.clone())
                .map_or_else(|| "no holder yet".to_owned(), |h| format!("now held by {h}"));
            let message = format!("{this_node} stopped announcing {} ({holder})", key.address);
            notes.push(Note { key, severity: Severity::Normal, reason: reasons::NOT_ANNOUNCING, message });
        }
    }

    /// `Announcing` for every address this node answers for now and did not, or on other
    /// interfaces; records them. Addresses answered on the same interfaces share one list.
    fn started(&mut self, plan: &Plan, notes: &mut Vec<Note>) {
        let mut lists: Option<HashSet<Arc<[String]>>> = None;
        for a in plan.addresses.iter().filter(|a| a.answering) {
            if self.answering.get(&a.key).is_some_and(|l| **l == *a.interfaces) {
                continue;
            }
            let lists = lists.get_or_insert_with(|| self.answering.values().cloned().collect());
            let list = match lists.get(a.interfaces.as_slice()) {
                Some(l) => l.clone(),
                None => {
                    let l: Arc<[String]> = a.interfaces.as_slice().into();
                    lists.insert(l.clone());
                    l
                }
            };
            notes.push(Note {
                key: a.key.clone(),
                severity: Severity::Normal,
                reason: reasons::ANNOUNCING,
                message: format!("{} announces {} on {}", self.this_node, a.key.address, list.join(", ")),
            });
            self.answering.insert(a.key.clone(), list);
        }
    }

    /// A Warning when no node can announce an address, from the status writer, when the reason
    /// first appears or changes; every node keeps the reasons.
    fn warn_none(&mut self, plan: &Plan, writer: bool, notes: &mut Vec<Note>) {
        self.why_none.retain(|key, _| plan.status(key).is_some_and(|a| a.why_none.is_some()));
        for a in &plan.addresses {
            let Some(why) = &a.why_none else { continue };
            if self.why_none.get(&a.key) == Some(why) {
                continue;
            }
            if writer {
                notes.push(Note {
                    key: a.key.clone(),
                    severity: Severity::Warning,
                    reason: reasons::NOT_ANNOUNCING,
                    message: format!("nobody announces {}: {why}", a.key.address),
                });
            }
            self.why_none.insert(a.key.clone(), why.clone());
        }
    }

    /// Whether `note` may go out now (a Warning sent for the same address and reason less than the
    /// interval ago may not); records it if so.
    pub fn admit(&mut self, note: &Note, now: Instant) -> bool {
        if note.severity == Severity::Normal {
            return true;
        }
        let slot = (note.key.clone(), note.reason);
        if self.last_warning.get(&slot).is_some_and(|t| now < *t + self.interval) {
            return false;
        }
        self.last_warning.insert(slot, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::AddressStatus;

    fn key(ip: &str) -> AddressKey {
        AddressKey::new(ServiceKey::new("default", "web"), ip.parse().unwrap())
    }

    fn status(ip: &str, answering: bool, holder: Option<&str>, why_none: Option<&str>) -> AddressStatus {
        AddressStatus {
            key: key(ip),
            lease: ferrolb_api::names::leases::service_address("default", "web", ip.parse().unwrap()),
            holder: holder.map(Into::into),
            answering,
            stood_down: None,
            interfaces: if answering { vec!["eth0".into()] } else { Vec::new() },
            why_none: why_none.map(Into::into),
            desired: None,
        }
    }

    fn plan(addresses: Vec<AddressStatus>) -> Plan {
        Plan { addresses, ..Default::default() }
    }

    fn web() -> Vec<Arc<ServiceInput>> {
        vec![Arc::new(ServiceInput { key: ServiceKey::new("default", "web").into(), ..Default::default() })]
    }

    #[test]
    fn changes_of_answering_are_announced_once() {
        let t0 = Instant::now();
        let mut book = EventBook::new("node1", Duration::from_secs(60));
        let answering = plan(vec![status("198.51.100.1", true, Some("node1"), None)]);
        let notes = book.after_round(&answering, &web(), false, t0);
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].severity, Severity::Normal);
        assert_eq!(notes[0].reason, reasons::ANNOUNCING);
        assert_eq!(notes[0].message, "node1 announces 198.51.100.1 on eth0");
        assert!(book.after_round(&answering, &web(), false, t0).is_empty(), "no change");

        let moved = plan(vec![status("198.51.100.1", false, Some("node2"), None)]);
        let notes = book.after_round(&moved, &web(), false, t0);
        assert_eq!(notes[0].reason, reasons::NOT_ANNOUNCING);
        assert_eq!(notes[0].message, "node1 stopped announcing 198.51.100.1 (now held by node2)");

        // A Service that is gone gets no Event about it.
        book.after_round(&answering, &web(), false, t0);
        assert!(book.after_round(&plan(Vec::new()), &[], false, t0).is_empty());
    }

    #[test]
    fn a_round_that_starts_some_and_stops_others_says_each_once_and_shares_interface_lists() {
        let t0 = Instant::now();
        let mut book = EventBook::new("node1", Duration::from_secs(60));
        let ips = ["198.51.100.1", "198.51.100.2", "198.51.100.3"];
        let round = |on: [bool; 3]| {
            plan(ips.iter().zip(on).map(|(ip, on)| status(ip, on, on.then_some("node1"), None)).collect())
        };
        assert_eq!(book.after_round(&round([true, true, false]), &web(), false, t0).len(), 2);
        let lists: Vec<&Arc<[String]>> = book.answering.values().collect();
        assert!(Arc::ptr_eq(lists[0], lists[1]), "one list for the same interfaces");
        let notes = book.after_round(&round([false, true, true]), &web(), false, t0);
        let said: Vec<(&str, String)> = notes.iter().map(|n| (n.reason, n.key.address.to_string())).collect();
        assert_eq!(
            said,
            [(reasons::ANNOUNCING, "198.51.100.3".into()), (reasons::NOT_ANNOUNCING, "198.51.100.1".into())]
        );
        assert!(book.after_round(&round([false, true, true]), &web(), false, t0).is_empty());
        let moved = AddressStatus {
            interfaces: vec!["eth1".into()],
            ..status("198.51.100.2", true, Some("node1"), None)
        };
        let notes = book.after_round(
            &plan(vec![moved, status(ips[2], true, Some("node1"), None)]),
            &web(),
            false,
            t0,
        );
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].message, "node1 announces 198.51.100.2 on eth1");
        assert_eq!(book.answering.len(), 2);
    }

    #[test]
    fn a_holder_that_stands_down_says_why_and_does_not_name_itself() {
        let t0 = Instant::now();
        let mut book = EventBook::new("node1", Duration::from_secs(60));
        let answering = plan(vec![status("198.51.100.1", true, Some("node1"), None)]);
        book.after_round(&answering, &web(), false, t0);
        let silent = AddressStatus {
            stood_down: Some(StandDownReason::NotVouched),
            ..status("198.51.100.1", false, Some("node1"), None)
        };
        let notes = book.after_round(&plan(vec![silent]), &web(), false, t0);
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].severity, Severity::Warning);
        assert_eq!(notes[0].reason, reasons::NOT_ANNOUNCING);
        assert!(
            notes[0].message.starts_with("node1 stopped announcing 198.51.100.1 while holding its Lease: "),
            "{}",
            notes[0].message
        );
        assert!(!notes[0].message.contains("now held by node1"), "{}", notes[0].message);

        book.after_round(&answering, &web(), false, t0);
        let notice = AddressStatus {
            stood_down: Some(StandDownReason::TakeoverNotice),
            ..status("198.51.100.1", false, Some("node1"), None)
        };
        let notes = book.after_round(&plan(vec![notice]), &web(), false, t0);
        assert_eq!(notes[0].severity, Severity::Normal, "a takeover is no fault of this node");
    }

    #[test]
    fn nobody_announcing_is_warned_by_the_writer_when_the_reason_changes_and_limited() {
        let t0 = Instant::now();
        let interval = Duration::from_secs(60);
        let mut book = EventBook::new("node1", interval);
        let down = plan(vec![status("198.51.100.1", false, None, Some("link down"))]);
        assert!(book.after_round(&down, &web(), false, t0).is_empty(), "not the writer");
        let mut book = EventBook::new("node1", interval);
        let notes = book.after_round(&down, &web(), true, t0);
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].severity, Severity::Warning);
        assert_eq!(notes[0].message, "nobody announces 198.51.100.1: link down");
        assert!(book.after_round(&down, &web(), true, t0).is_empty(), "same reason");
        let other = plan(vec![status("198.51.100.1", false, None, Some("no policy"))]);
        assert!(book.after_round(&other, &web(), true, t0).is_empty(), "limited per address and reason");
        let notes = book.after_round(&down, &web(), true, t0 + interval);
        assert_eq!(notes.len(), 1, "a new reason after the interval");
    }

    #[test]
    fn admit_limits_warnings_only() {
        let t0 = Instant::now();
        let mut book = EventBook::new("node1", Duration::from_secs(10));
        let warning = Note {
            key: key("198.51.100.1"),
            severity: Severity::Warning,
            reason: reasons::PROGRAMMING_FAILED,
            message: "x".into(),
        };
        assert!(book.admit(&warning, t0));
        assert!(!book.admit(&warning, t0 + Duration::from_secs(9)));
        assert!(book.admit(&warning, t0 + Duration::from_secs(10)));
        let normal = Note { severity: Severity::Normal, ..warning };
        assert!(book.admit(&normal, t0) && book.admit(&normal, t0));
    }
}
