//! Two controllers writing one Service's `status.loadBalancer`: FerroLB stops fighting.
//!
//! While an old load balancer still runs beside FerroLB (a migration in progress, k3s's ServiceLB
//! left on, MetalLB serving the same class), both may write the same Service's status, each
//! undoing the other's write as soon as it sees it: an endless loop of writes that loads the API
//! server and makes the address flip. This module decides, per Service, when FerroLB backs off: once
//! another writer has overwritten FerroLB's `status.loadBalancer` `threshold` times within `window`,
//! FerroLB holds its writes to that Service for `first_hold`, then doubling holds up to `max_hold`
//! while the other writer keeps overwriting (after a hold, one overwrite is enough to hold again).
//! A Service left alone for `max_hold` after its last overwrite and its last hold starts afresh. The adapter reports each hold once (a
//! Warning Event and a condition that name the other writer) and writes nothing else meanwhile, so
//! FerroLB's writes to a contested Service are bounded by one per hold plus `threshold`.
//!
//! No I/O: the caller passes the time.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::service::ServiceKey;

/// When to back off (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContestConfig {
    pub window: Duration,
    pub threshold: usize,
    pub first_hold: Duration,
    pub max_hold: Duration,
}

impl Default for ContestConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(60),
            threshold: 3,
            first_hold: Duration::from_secs(30),
            max_hold: Duration::from_secs(600),
        }
    }
}

/// A hold that starts now: report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub until: Instant,
    pub duration: Duration,
    /// The field manager that overwrote FerroLB's status last.
    pub writer: String,
    /// How many holds in a row (1 for the first).
    pub round: u32,
}

#[derive(Debug, Default)]
struct Contest {
    /// Overwrites not yet answered by a hold, within the window.
    overwrites: VecDeque<Instant>,
    /// Holds in a row so far.
    holds: u32,
    until: Option<Instant>,
    /// Whether the core must be asked to write again when the hold ends.
    expired_reported: bool,
    last_overwrite: Option<Instant>,
}

/// Per-Service contest state.
#[derive(Debug, Default)]
pub struct Contests {
    cfg: ContestConfig,
    by_service: HashMap<ServiceKey, Contest>,
}

impl Contests {
    pub fn new(cfg: ContestConfig) -> Self {
        Self { cfg, by_service: HashMap::new() }
    }

    /// `writer` replaced what FerroLB last wrote to `key`'s `status.loadBalancer`, seen at `now`.
    /// Returns the hold that starts, if one does.
    pub fn overwritten(&mut self, key: &ServiceKey, writer: &str, now: Instant) -> Option<Hold> {
        let cfg = self.cfg;
        let c = self.by_service.entry(key.clone()).or_default();
        // Left alone for `max_hold` since the last overwrite and the end of the last hold (the
        // other writer is quiet during a hold: it has what it wants): a new contest.
        let quiet_since = c.last_overwrite.max(c.until);
        if quiet_since.is_some_and(|t| now.saturating_duration_since(t) >= cfg.max_hold) {
            *c = Contest::default();
        }
        c.last_overwrite = Some(now);
        if c.until.is_some_and(|u| now < u) {
            return None;
        }
        c.overwrites.push_back(now);
        while c.overwrites.front().is_some_and(|t| now.saturating_duration_since(*t) > cfg.window) {
            c.overwrites.pop_front();
        }
        let need = if c.holds == 0 { cfg.threshold.max(1) } else { 1 };
        if c.overwrites.len() < need {
            return None;
        }
        c.overwrites.clear();
        c.holds += 1;
        let duration = cfg
            .first_hold
            .saturating_mul(1u32 << (c.holds - 1).min(16))
            .min(cfg.max_hold.max(cfg.first_hold));
        let until = now + duration;
        c.until = Some(until);
        c.expired_reported = false;
        Some(Hold { until, duration, writer: writer.to_string(), round: c.holds })
    }

    /// Until when writes to `key` are held, if they are at `now`.
    pub fn held_until(&self, key: &ServiceKey, now: Instant) -> Option<Instant> {
        self.by_service.get(key).and_then(|c| c.until).filter(|u| now < *u)
    }

    /// The Services whose hold ended by `now` and that were not returned before: FerroLB writes
    /// them again (once; another overwrite starts the next, longer hold).
    pub fn expired(&mut self, now: Instant) -> Vec<ServiceKey> {
        let mut out = Vec::new();
        for (k, c) in &mut self.by_service {
            if c.until.is_some_and(|u| u <= now) && !c.expired_reported {
                c.expired_reported = true;
                out.push(k.clone());
            }
        }
        out.sort();
        out
    }

    /// The earliest end of a running hold.
    pub fn next_expiry(&self, now: Instant) -> Option<Instant> {
        self.by_service.values().filter_map(|c| c.until).filter(|u| *u > now).min()
    }

    /// The Service is gone or no longer served.
    pub fn forget(&mut self, key: &ServiceKey) {
        self.by_service.remove(key);
    }

    pub fn clear(&mut self) {
        self.by_service.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cfg() -> ContestConfig {
        ContestConfig {
            window: Duration::from_secs(60),
            threshold: 3,
            first_hold: Duration::from_secs(30),
            max_hold: Duration::from_secs(240),
        }
    }

    fn key() -> ServiceKey {
        ServiceKey::new("default", "web")
    }

    #[test]
    fn holds_after_the_threshold_within_the_window_then_doubles() {
        let mut c = Contests::new(cfg());
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(c.overwritten(&key(), "metallb-controller", t0), None);
        assert_eq!(c.overwritten(&key(), "metallb-controller", t0 + s(1)), None);
        let hold = c.overwritten(&key(), "metallb-controller", t0 + s(2)).expect("third overwrite holds");
        assert_eq!((hold.duration, hold.round, hold.writer.as_str()), (s(30), 1, "metallb-controller"));
        assert_eq!(c.held_until(&key(), t0 + s(3)), Some(t0 + s(32)));
        // Overwrites during the hold change nothing.
        assert_eq!(c.overwritten(&key(), "metallb-controller", t0 + s(10)), None);
        assert!(c.expired(t0 + s(31)).is_empty());
        assert_eq!(c.expired(t0 + s(32)), [key()]);
        assert!(c.expired(t0 + s(33)).is_empty(), "reported once");
        assert_eq!(c.held_until(&key(), t0 + s(32)), None);
        // After a hold, one overwrite holds again, twice as long, up to the cap.
        let h2 = c.overwritten(&key(), "svccontroller", t0 + s(33)).unwrap();
        assert_eq!((h2.duration, h2.round, h2.writer.as_str()), (s(60), 2, "svccontroller"));
        let h3 = c.overwritten(&key(), "x", h2.until).unwrap();
        assert_eq!(h3.duration, s(120));
        let h4 = c.overwritten(&key(), "x", h3.until).unwrap();
        assert_eq!(h4.duration, s(240));
        let h5 = c.overwritten(&key(), "x", h4.until).unwrap();
        assert_eq!(h5.duration, s(240), "capped");
    }

    #[test]
    fn overwrites_spread_beyond_the_window_never_hold_and_peace_starts_afresh() {
        let mut c = Contests::new(cfg());
        let t0 = Instant::now();
        let s = Duration::from_secs;
        for i in 0..10 {
            assert_eq!(c.overwritten(&key(), "w", t0 + s(61 * i)), None, "overwrite {i}");
        }
        let mut t = t0 + s(1000);
        for _ in 0..2 {
            assert_eq!(c.overwritten(&key(), "w", t), None);
            t += s(1);
        }
        let h = c.overwritten(&key(), "w", t).unwrap();
        assert_eq!(h.round, 1);
        // Left alone for max_hold after the hold's end: the next contest starts at round 1.
        let later = h.until + s(240);
        assert_eq!(c.overwritten(&key(), "w", later), None);
        c.forget(&key());
        assert_eq!(c.held_until(&key(), later), None);
    }

    proptest! {
        /// Whatever the overwrite times, FerroLB's writes are bounded: the number of holds started
        /// never exceeds one per overwrite after the first `threshold - 1`, and never two holds
        /// overlap.
        #[test]
        fn holds_never_overlap(gaps in proptest::collection::vec(0u64..5_000, 1..200)) {
            let mut c = Contests::new(cfg());
            let mut t = Instant::now();
            let mut last_until: Option<Instant> = None;
            let mut holds = 0usize;
            for g in gaps {
                t += Duration::from_millis(g);
                if let Some(h) = c.overwritten(&key(), "w", t) {
                    prop_assert!(last_until.is_none_or(|u| u <= t), "a hold started while another ran");
                    prop_assert!(h.duration >= cfg().first_hold && h.duration <= cfg().max_hold);
                    last_until = Some(h.until);
                    holds += 1;
                }
            }
            prop_assert!(holds <= 200);
        }
    }
}
