//! When one announcer decides, rests and stops, without I/O.
//!
//! - Nothing is decided before this node is ready: its heartbeat Lease held once, and the peer
//!   channel given the peer timeout since start to hear the others (so nobody is judged dead merely
//!   because this node just started). Until then the loop looks again every [`NOT_READY_RETRY`].
//! - Nothing scheduled: a round every [`IDLE_ROUND`] anyway, as a safety net against a missed
//!   wake-up.
//! - Under a storm of events rounds run back to back; resting as long as the last round took (when
//!   it took more than [`REST_AFTER`]) keeps the loop at most half of one core, and lets the events
//!   of that time fold into the next round.
//! - Stopping (SIGTERM): the loop ends once this node holds no Lease and no write is in flight, or
//!   at the grace deadline; at once when it never became ready.

use std::time::{Duration, Instant};

/// Longest time between two decision rounds when nothing happens.
pub const IDLE_ROUND: Duration = Duration::from_secs(30);

/// How often a node that is not ready yet looks again.
pub const NOT_READY_RETRY: Duration = Duration::from_millis(100);

/// A round that took longer than this is followed by a rest as long.
pub const REST_AFTER: Duration = Duration::from_millis(2);

/// Whether the loop stops now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Not yet.
    No,
    /// Done: every Lease handed over.
    Done,
    /// The grace period is over with this many Leases still held (they expire).
    GraceOver(usize),
}

/// One announcer's phase: starting, ready, stopping.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    started: Instant,
    settle: Duration,
    ready: bool,
    /// Stopping, with its deadline.
    deadline: Option<Instant>,
    rest_until: Option<Instant>,
}

impl Lifecycle {
    /// Started at `started`; ready no sooner than `settle` (the peer timeout) later.
    pub fn new(started: Instant, settle: Duration) -> Self {
        Self { started, settle, ready: false, deadline: None, rest_until: None }
    }

    pub fn is_ready(&self) -> bool {
        self.ready
    }

    pub fn is_stopping(&self) -> bool {
        self.deadline.is_some()
    }

    /// Whether this node reports itself ready to the others.
    pub fn reports_ready(&self) -> bool {
        self.ready && !self.is_stopping()
    }

    /// SIGTERM: stop within `grace`.
    pub fn stop(&mut self, now: Instant, grace: Duration) {
        self.deadline = Some(now + grace);
    }

    /// Whether this node became ready now (its heartbeat Lease held: `heartbeat`).
    pub fn check_ready(&mut self, heartbeat: bool, now: Instant) -> bool {
        if self.ready || !heartbeat || now < self.started + self.settle {
            return false;
        }
        self.ready = true;
        true
    }

    /// Stopping before ever being ready: nothing to hand over.
    pub fn stopped_unready(&self) -> bool {
        self.is_stopping() && !self.ready
    }

    /// When to run a round at the latest, given the time the last one asked for.
    pub fn sleep_until(wake: Option<Instant>, now: Instant) -> Instant {
        wake.unwrap_or(now + IDLE_ROUND)
    }

    /// Until when to rest before the next round (`None`: no rest).
    pub fn rest_until(&self, now: Instant) -> Option<Instant> {
        self.rest_until.filter(|t| *t > now)
    }

    /// A round (or a not-ready check) that took `took` ended at `now`.
    pub fn round_took(&mut self, took: Duration, now: Instant) {
        self.rest_until = (took > REST_AFTER).then(|| now + took);
    }

    /// When a node that is not ready looks again.
    pub fn not_ready_wake(now: Instant) -> Instant {
        now + NOT_READY_RETRY
    }

    /// Whether a stopping loop ends, with `held` Leases still naming this node and `writes_idle`
    /// when no write is in flight.
    pub fn stop_now(&self, held: usize, writes_idle: bool, now: Instant) -> Stop {
        let Some(deadline) = self.deadline else { return Stop::No };
        if held == 0 && writes_idle {
            Stop::Done
        } else if now >= deadline {
            if held == 0 { Stop::Done } else { Stop::GraceOver(held) }
        } else {
            Stop::No
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_once_the_heartbeat_is_held_and_the_peers_had_time() {
        let t0 = Instant::now();
        let settle = Duration::from_millis(500);
        let mut l = Lifecycle::new(t0, settle);
        assert!(!l.check_ready(true, t0 + Duration::from_millis(499)), "peers not given time yet");
        assert!(!l.check_ready(false, t0 + settle), "no heartbeat Lease yet");
        assert!(!l.reports_ready());
        assert!(l.check_ready(true, t0 + settle));
        assert!(l.is_ready() && l.reports_ready());
        assert!(!l.check_ready(true, t0 + settle), "once");
        l.stop(t0 + settle, Duration::from_secs(10));
        assert!(l.is_ready() && !l.reports_ready() && !l.stopped_unready());
    }

    #[test]
    fn stopping_before_ready_stops_at_once() {
        let t0 = Instant::now();
        let mut l = Lifecycle::new(t0, Duration::from_millis(500));
        assert!(!l.stopped_unready());
        l.stop(t0, Duration::from_secs(10));
        assert!(l.stopped_unready());
    }

    #[test]
    fn stopping_waits_for_the_hand_over_or_the_deadline() {
        let t0 = Instant::now();
        let grace = Duration::from_secs(10);
        let mut l = Lifecycle::new(t0, Duration::ZERO);
        assert_eq!(l.stop_now(0, true, t0), Stop::No, "not stopping");
        l.stop(t0, grace);
        assert_eq!(l.stop_now(2, true, t0), Stop::No);
        assert_eq!(l.stop_now(0, false, t0), Stop::No, "a hand-over still in flight");
        assert_eq!(l.stop_now(0, true, t0), Stop::Done);
        assert_eq!(l.stop_now(2, false, t0 + grace), Stop::GraceOver(2));
        assert_eq!(l.stop_now(0, false, t0 + grace), Stop::Done);
    }

    #[test]
    fn a_long_round_is_followed_by_as_long_a_rest() {
        let t0 = Instant::now();
        let mut l = Lifecycle::new(t0, Duration::ZERO);
        l.round_took(Duration::from_millis(2), t0);
        assert_eq!(l.rest_until(t0), None);
        l.round_took(Duration::from_millis(50), t0);
        assert_eq!(l.rest_until(t0), Some(t0 + Duration::from_millis(50)));
        assert_eq!(l.rest_until(t0 + Duration::from_millis(50)), None, "over");
        assert_eq!(Lifecycle::sleep_until(None, t0), t0 + IDLE_ROUND);
        assert_eq!(Lifecycle::sleep_until(Some(t0), t0 + IDLE_ROUND), t0);
    }
}
