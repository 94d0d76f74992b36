//! The per-address Lease writes one node has started and what their answers taught it, without I/O:
//! which writes may start now, which Leases to delete, how long a refused write waits, and the
//! confirmed writes the watch has not shown yet.
//!
//! - A write confirmed by the API server is used at once: [`WriteBook::overlay`] lays it over the
//!   watch cache until the cache shows a version other than the one it wrote over, so a takeover
//!   answers ARP one round trip after the write, not one watch delay later.
//! - At most one write per Lease is in flight, and at most [`MAX_PENDING_WRITES`] in all: the rest
//!   are decided again in a later round, so tens of thousands of pending writes never pile up in
//!   memory, and each goes out with the freshest decision.
//! - A failed write blocks rewriting that Lease for a while ([`backoff`]), unless the watch shows a
//!   newer version sooner.
//! - A per-address Lease nothing announces any more is deleted by its holder (or, for a Lease
//!   nobody holds, by the node holding the status writer Lease's claim), conditioned on the version
//!   read ([`WriteBook::garbage`]): two nodes deleting the same version at once (a writer claim
//!   changing hands) cost one failed request, never a newer Lease.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_runtime::api_error::ApiFailure;
use ferrolb_runtime::election::LeaseRecord;

use crate::engine::Plan;

/// How long a 409 on one Lease blocks rewriting it, unless the watch shows a newer version sooner.
pub const CONFLICT_BACKOFF: Duration = Duration::from_millis(200);

/// Lease writes decided and not yet answered, at most.
pub const MAX_PENDING_WRITES: usize = 1024;

/// How long a failed write blocks rewriting its Lease. A refusal (400, 403, 422) will not change by
/// retrying soon: back off long, so a bad object costs one write per half minute, not one per
/// second.
pub fn backoff(failure: ApiFailure) -> Duration {
    match failure {
        ApiFailure::Conflict => CONFLICT_BACKOFF,
        ApiFailure::Refused => Duration::from_secs(30),
        _ => CONFLICT_BACKOFF * 5,
    }
}

/// Whether a write may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Start it (it now counts as in flight).
    Start,
    /// One is in flight for this Lease, or too many are in flight: decide again later.
    Busy,
    /// Backing off after a failure until then (decide again at that time).
    Blocked(Instant),
}

/// How a write or delete ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Written: the record the API server returned.
    Written(LeaseRecord),
    Deleted,
    Failed(ApiFailure),
}

/// The writes of one node (see the module documentation).
#[derive(Debug, Default)]
pub struct WriteBook {
    in_flight: HashSet<String>,
    /// Confirmed writes the watch has not shown yet: name -> (version written over, record).
    overlay: HashMap<String, (Option<String>, LeaseRecord)>,
    /// name -> (version that failed, blocked until).
    blocked: HashMap<String, (Option<String>, Instant)>,
}

impl WriteBook {
    /// Lays the confirmed writes over the watch cache's `records`. A write stays ahead of the cache
    /// only while the cache shows the version it wrote over.
    pub fn overlay(
        &mut self,
        mut records: Arc<BTreeMap<String, LeaseRecord>>,
    ) -> Arc<BTreeMap<String, LeaseRecord>> {
        self.overlay.retain(|name, (pre_rv, _)| {
            records.get(name).and_then(|r| r.resource_version.as_ref()) == pre_rv.as_ref()
        });
        if !self.overlay.is_empty() {
            let records = Arc::make_mut(&mut records);
            for (name, (_, written)) in &self.overlay {
                records.insert(name.clone(), written.clone());
            }
        }
        records
    }

    /// Whether a write of the Lease `name`, now at version `current_rv`, may start; on
    /// [`Admission::Start`] it counts as in flight until [`WriteBook::answered`].
    pub fn admit(&mut self, name: &str, current_rv: Option<&String>, now: Instant) -> Admission {
        if self.in_flight.contains(name) || self.in_flight.len() >= MAX_PENDING_WRITES {
            return Admission::Busy;
        }
        if let Some((rv, until)) = self.blocked.get(name) {
            if rv.as_ref() == current_rv && now < *until {
                return Admission::Blocked(*until);
            }
            self.blocked.remove(name);
        }
        self.in_flight.insert(name.to_owned());
        Admission::Start
    }

    /// The Leases to delete (name, version to condition the delete on): those no address of `plan`
    /// uses that `this_node` holds, or nobody holds and `this_node` holds the writer claim (`writer`). They count
    /// as in flight.
    pub fn garbage(
        &mut self,
        plan: &Plan,
        leases: &BTreeMap<String, LeaseRecord>,
        this_node: &str,
        writer: bool,
    ) -> Vec<(String, Option<String>)> {
        let wanted: HashSet<&str> = plan.addresses.iter().map(|a| a.lease.as_str()).collect();
        let mut deletes = Vec::new();
        for (name, record) in leases {
            if self.in_flight.len() >= MAX_PENDING_WRITES {
                break;
            }
            if wanted.contains(name.as_str()) || self.in_flight.contains(name) {
                continue;
            }
            let mine = match record.holder() {
                Some(h) => h == this_node,
                None => writer,
            };
            if mine {
                self.in_flight.insert(name.clone());
                deletes.push((name.clone(), record.resource_version.clone()));
            }
        }
        deletes
    }

    /// The answer to a write or delete of `name` conditioned on `pre_rv` (`None`: a create).
    pub fn answered(&mut self, name: String, pre_rv: Option<String>, answer: Answer, now: Instant) {
        self.in_flight.remove(&name);
        match answer {
            Answer::Written(record) => {
                self.overlay.insert(name, (pre_rv, record));
            }
            Answer::Deleted => {
                self.overlay.remove(&name);
            }
            Answer::Failed(failure) => {
                self.blocked.insert(name, (pre_rv, now + backoff(failure)));
            }
        }
    }

    /// Whether no write is in flight.
    pub fn idle(&self) -> bool {
        self.in_flight.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::AddressStatus;
    use crate::policy::{AddressKey, ServiceKey};
    use ferrolb_api::names::leases as lease_names;

    fn record(holder: Option<&str>, rv: &str) -> LeaseRecord {
        LeaseRecord {
            holder: holder.map(Into::into),
            resource_version: Some(rv.into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_confirmed_write_overlays_the_cache_until_the_cache_moves_on() {
        let t0 = Instant::now();
        let mut book = WriteBook::default();
        assert_eq!(book.admit("l", Some(&"1".into()), t0), Admission::Start);
        book.answered("l".into(), Some("1".into()), Answer::Written(record(Some("a"), "2")), t0);
        assert!(book.idle());
        let cache = Arc::new(BTreeMap::from([("l".to_owned(), record(Some("b"), "1"))]));
        assert_eq!(book.overlay(cache.clone())["l"], record(Some("a"), "2"), "ahead of the cache");
        let caught_up = Arc::new(BTreeMap::from([("l".to_owned(), record(Some("a"), "2"))]));
        assert_eq!(book.overlay(caught_up)["l"], record(Some("a"), "2"));
        assert_eq!(book.overlay(cache)["l"], record(Some("b"), "1"), "dropped once the cache moved on");
    }

    #[test]
    fn a_delete_drops_the_overlay() {
        let t0 = Instant::now();
        let mut book = WriteBook::default();
        book.answered("l".into(), None, Answer::Written(record(Some("a"), "1")), t0);
        book.answered("l".into(), Some("1".into()), Answer::Deleted, t0);
        assert!(book.overlay(Arc::new(BTreeMap::new())).is_empty());
    }

    #[test]
    fn one_write_per_lease_and_a_failure_blocks_until_backoff_or_a_new_version() {
        let t0 = Instant::now();
        let mut book = WriteBook::default();
        let v1 = Some("1".to_owned());
        assert_eq!(book.admit("l", v1.as_ref(), t0), Admission::Start);
        assert_eq!(book.admit("l", v1.as_ref(), t0), Admission::Busy, "in flight");
        book.answered("l".into(), v1.clone(), Answer::Failed(ApiFailure::Conflict), t0);
        let until = t0 + CONFLICT_BACKOFF;
        assert_eq!(book.admit("l", v1.as_ref(), t0), Admission::Blocked(until));
        assert_eq!(
            book.admit("l", Some(&"2".into()), t0),
            Admission::Start,
            "the watch shows a newer version"
        );
        book.answered("l".into(), v1.clone(), Answer::Failed(ApiFailure::Conflict), t0);
        assert_eq!(book.admit("l", v1.as_ref(), until), Admission::Start, "backoff over");
    }

    #[test]
    fn refusals_back_off_long_and_other_failures_in_between() {
        assert_eq!(backoff(ApiFailure::Conflict), Duration::from_millis(200));
        assert_eq!(backoff(ApiFailure::Refused), Duration::from_secs(30));
        assert_eq!(backoff(ApiFailure::Unavailable), Duration::from_secs(1));
        assert_eq!(backoff(ApiFailure::Throttled), Duration::from_secs(1));
    }

    #[test]
    fn pending_writes_are_bounded() {
        let t0 = Instant::now();
        let mut book = WriteBook::default();
        for i in 0..MAX_PENDING_WRITES {
            assert_eq!(book.admit(&format!("l{i}"), None, t0), Admission::Start);
        }
        assert_eq!(book.admit("one-more", None, t0), Admission::Busy);
        let leases = BTreeMap::from([("orphan".to_owned(), record(Some("a"), "1"))]);
        assert!(book.garbage(&Plan::default(), &leases, "a", true).is_empty());
    }

    #[test]
    fn garbage_is_deleted_by_its_holder_or_unheld_by_the_writer() {
        let t0 = Instant::now();
        let key = AddressKey::new(ServiceKey::new("default", "web"), "198.51.100.130".parse().unwrap());
        let used = lease_names::service_address("default", "web", key.address);
        let plan = Plan {
            addresses: vec![AddressStatus {
                key,
                lease: used.clone(),
                holder: None,
                answering: false,
                stood_down: None,
                interfaces: Vec::new(),
                why_none: None,
                desired: None,
            }],
            ..Default::default()
        };
        let leases = BTreeMap::from([
            (used.clone(), record(Some("a"), "1")),
            ("mine".to_owned(), record(Some("a"), "2")),
            ("theirs".to_owned(), record(Some("b"), "3")),
            ("nobodys".to_owned(), record(None, "4")),
            ("busy".to_owned(), record(Some("a"), "5")),
        ]);
        let mut book = WriteBook::default();
        assert_eq!(book.admit("busy", None, t0), Admission::Start);
        let deletes = book.garbage(&plan, &leases, "a", false);
        assert_eq!(deletes, [("mine".to_owned(), Some("2".to_owned()))]);
        assert!(book.garbage(&plan, &leases, "a", false).is_empty(), "in flight now");
        let deletes = book.garbage(&plan, &leases, "a", true);
        assert_eq!(deletes, [("nobodys".to_owned(), Some("4".to_owned()))]);
    }
}
