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
        let this_node = &self.this_node;
        let mut answering: BTreeMap<AddressKey, Arc<[String]>> = BTreeMap::new();
        let mut lists: HashSet<Arc<[String]>> = HashSet::new();
        for a in plan.addresses.iter().filter(|a| a.answering) {
            let list = match lists.get(a.interfaces.as_slice()) {
                Some(l) => l.clone(),
                None => {
                    let l: Arc<[String]> = a.interfaces.as_slice().into();
                    lists.insert(l.clone());
                    l
                }
            };
            answering.insert(a.key.clone(), list);
        }
        let mut notes = Vec::new();
        let normal = |key: &AddressKey, message| Note {
            key: key.clone(),
            severity: Severity::Normal,
            reason: reasons::ANNOUNCING,
            message,
        };
        for (key, ifaces) in &answering {
            if self.answering.get(key) != Some(ifaces) {
                notes.push(normal(
                    key,
                    format!("{this_node} announces {} on {}", key.address, ifaces.join(", ")),
                ));
            }
        }
        let existing: HashSet<&ServiceKey> = services.iter().map(|s| &*s.key).collect();
        for key in self.answering.keys() {
            if !answering.contains_key(key) && existing.contains(&*key.service) {
                let status = plan.addresses.iter().find(|a| &a.key == key);
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
                    notes.push(Note { reason: reasons::NOT_ANNOUNCING, severity, ..normal(key, message) });
                    continue;
                }
                let holder = status
                    .and_then(|a| a.holder.clone())
                    .map_or_else(|| "no holder yet".to_owned(), |h| format!("now held by {h}"));
                let message = format!("{this_node} stopped announcing {} ({holder})", key.address);
                notes.push(Note { reason: reasons::NOT_ANNOUNCING, ..normal(key, message) });
            }
        }
        self.answering = answering;
        let mut why_now = HashMap::new();
        for a in &plan.addresses {
            if let Some(why) = &a.why_none {
                if writer && self.why_none.get(&a.key) != Some(why) {
                    notes.push(Note {
                        key: a.key.clone(),
                        severity: Severity::Warning,
                        reason: reasons::NOT_ANNOUNCING,
                        message: format!("nobody announces {}: {why}", a.key.address),
                    });
                }
                why_now.insert(a.key.clone(), why.clone());
            }
        }
        self.why_none = why_now;
        notes.retain(|n| self.admit(n, now));
        if self.last_warning.len() > 4 * (plan.addresses.len() + 16) {
            let interval = self.interval;
            self.last_warning.retain(|_, t| now < *t + interval);
        }
        notes
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
