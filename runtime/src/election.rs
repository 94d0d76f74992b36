//! Leader election decisions on a Lease, with client-go's semantics, and no I/O.
//!
//! The caller reads the Lease, hands what it saw to [`Candidate::decide`] with the current time, performs
//! the [`Action`] it gets back (a compare-and-swap create or update, or a wait), and reports the write's
//! outcome with [`Candidate::written`]. [`Candidate::claim`] then says who leads and until when.
//!
//! Safety rests on three rules:
//! - A candidate judges another holder's lease by the *local* time at which it last saw the record change,
//!   plus the record's `leaseDurationSeconds`: never by the remote `renewTime`, so clock skew between
//!   nodes does not matter (only clock *rate*, which monotonic clocks keep close).
//! - The holder trusts its leadership for `renew_deadline` from the moment it *decided* its last
//!   successful write (before sending it, so before the API server committed it, so before any other
//!   candidate could have seen it). Another candidate needs `lease_duration > renew_deadline` from that
//!   sighting before taking over, so the holder has stepped down first.
//! - Every write carries the resourceVersion it was decided on: two candidates that both decide to take an
//!   expired lease cannot both succeed.
//!
//! **Write period** ([`Candidate::set_write_period`]): a holder may renew by writing less often than it
//! checks. Between writes it reads the Lease every `retry_period`; a read that returns exactly its own
//! last write (same resourceVersion) proves nobody took the Lease and the API server answers, and keeps
//! the claim for `renew_deadline` from when that read was sent, but never past the deadline of the last
//! write. Each write then carries a `leaseDurationSeconds` longer by `write_period - retry_period`, so
//! the others' wait still exceeds the holder's claim. Reads reach no watcher: a node heartbeat renewed
//! by a write every few seconds and checked by a read every second costs each watching announcer a few
//! events per second instead of one per node per second.

use std::time::{Duration, Instant};

use jiff::Timestamp;

use crate::Error;

/// Timings and identity of one election participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionConfig {
    /// Written as the Lease's `holderIdentity`; unique per participant (a pod or node name).
    pub identity: String,
    /// How long other candidates wait, after seeing the lease last change, before taking it over.
    pub lease_duration: Duration,
    /// How long the holder keeps leading without a successful renewal.
    pub renew_deadline: Duration,
    /// Interval between renewals, and between attempts to acquire.
    pub retry_period: Duration,
}

impl ElectionConfig {
    /// Checks `lease_duration > renew_deadline > retry_period > 0` and a non-empty identity; the error
    /// names the flag to fix.
    pub fn validate(&self) -> Result<(), Error> {
        if self.identity.trim().is_empty() {
            return Err(Error::InvalidConfig("--id must not be empty".into()));
        }
        if self.retry_period.is_zero() {
            return Err(Error::InvalidConfig("--retry-period must be greater than zero".into()));
        }
        if self.renew_deadline <= self.retry_period {
            return Err(Error::InvalidConfig(format!(
                "--renew-deadline ({}) must be greater than --retry-period ({})",
                humantime::format_duration(self.renew_deadline),
                humantime::format_duration(self.retry_period),
            )));
        }
        if self.lease_duration <= self.renew_deadline {
            return Err(Error::InvalidConfig(format!(
                "--lease-duration ({}) must be greater than --renew-deadline ({})",
                humantime::format_duration(self.lease_duration),
                humantime::format_duration(self.renew_deadline),
            )));
        }
        if self.lease_duration.as_secs() >= i32::MAX as u64 {
            return Err(Error::InvalidConfig(format!(
                "--lease-duration ({}) is too long for a Lease",
                humantime::format_duration(self.lease_duration)
            )));
        }
        Ok(())
    }

    /// The `leaseDurationSeconds` to write: rounded *up* to whole seconds (at least 1), because others
    /// take over after the written duration, and it must not be shorter than the one the holder's
    /// `renew_deadline` was checked against.
    pub fn lease_duration_seconds(&self) -> i32 {
        let secs = self.lease_duration.as_secs() + u64::from(self.lease_duration.subsec_nanos() > 0);
        i32::try_from(secs.max(1)).unwrap_or(i32::MAX)
    }
}

/// Who holds a lease and until when, as one participant judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The identity named by the lease; `None` when nobody holds it.
    pub holder: Option<String>,
    /// When this participant stops considering the claim valid (its local monotonic clock).
    pub expiry: Instant,
}

impl Claim {
    /// True when `id` holds the claim and it has not expired at `now`.
    pub fn is_current_for(&self, id: &str, now: Instant) -> bool {
        self.holder.as_deref() == Some(id) && now < self.expiry
    }

    /// True when somebody holds the claim and it has not expired at `now`.
    pub fn is_current(&self, now: Instant) -> bool {
        self.holder.is_some() && now < self.expiry
    }
}

/// The election-relevant content of a Lease (`spec` plus `metadata.resourceVersion`), as read from or
/// to be written to the API server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaseRecord {
    /// `holderIdentity`; an empty string is read as `None` (client-go writes `""` on release).
    pub holder: Option<String>,
    /// `leaseDurationSeconds`; `None` when absent or not positive.
    pub lease_duration: Option<Duration>,
    /// `acquireTime`: when the current holder acquired the lease (wall clock, informative only).
    pub acquire_time: Option<Timestamp>,
    /// `renewTime`: when the holder last renewed (wall clock, informative only: never used to judge
    /// expiry, because clocks differ between nodes).
    pub renew_time: Option<Timestamp>,
    /// `leaseTransitions`: how many times the lease changed hands.
    pub transitions: i32,
    /// `metadata.resourceVersion`: the version a compare-and-swap update is conditioned on.
    pub resource_version: Option<String>,
}

impl LeaseRecord {
    /// The holder, with an empty identity read as nobody.
    pub fn holder(&self) -> Option<&str> {
        self.holder.as_deref().filter(|h| !h.is_empty())
    }

    /// The record `identity` writes to take over this one (or to create a new lease when `previous`
    /// is `None`).
    fn acquired(previous: Option<&LeaseRecord>, cfg: &ElectionConfig, wall: Timestamp) -> LeaseRecord {
        LeaseRecord {
            holder: Some(cfg.identity.clone()),
            lease_duration: Some(Duration::from_secs(cfg.lease_duration_seconds() as u64)),
            acquire_time: Some(wall),
            renew_time: Some(wall),
            transitions: previous.map_or(0, |p| p.transitions.saturating_add(1)),
            resource_version: previous.and_then(|p| p.resource_version.clone()),
        }
    }

    /// The record the holder writes to renew this one: only the renewal time (and the duration, in case
    /// the configuration changed) move.
    fn renewed(&self, cfg: &ElectionConfig, wall: Timestamp) -> LeaseRecord {
        LeaseRecord {
            holder: Some(cfg.identity.clone()),
            lease_duration: Some(Duration::from_secs(cfg.lease_duration_seconds() as u64)),
            acquire_time: self.acquire_time.or(Some(wall)),
            renew_time: Some(wall),
            transitions: self.transitions,
            resource_version: self.resource_version.clone(),
        }
    }

    /// The record the holder writes to give the lease up: no holder, and a one-second duration (as
    /// client-go does) so even a reader that ignores the empty holder waits only briefly.
    fn released(&self, wall: Timestamp) -> LeaseRecord {
        LeaseRecord {
            holder: None,
            lease_duration: Some(Duration::from_secs(1)),
            acquire_time: Some(wall),
            renew_time: Some(wall),
            transitions: self.transitions,
            resource_version: self.resource_version.clone(),
        }
    }
}

/// A lease record together with the local time at which this participant first saw that exact version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub record: LeaseRecord,
    /// Local time of the first read that returned `record`: the record was committed no later than this.
    pub changed_at: Instant,
}

impl Observed {
    /// Folds a new read into the previous observation: the clock restarts only when the record changed,
    /// so a holder that stopped renewing expires even though we keep reading its record.
    pub fn note(previous: Option<Observed>, record: LeaseRecord, now: Instant) -> Observed {
        match previous {
            Some(prev) if prev.record == record => prev,
            _ => Observed { record, changed_at: now },
        }
    }

    /// The holder's claim as judged from this observation: valid for the record's lease duration (or
    /// `default_duration` when it has none) from the moment we saw it change.
    pub fn claim(&self, default_duration: Duration) -> Claim {
        let holder = self.record.holder().map(str::to_owned);
        let duration = if holder.is_some() {
            self.record.lease_duration.unwrap_or(default_duration)
        } else {
            Duration::ZERO
        };
        Claim { holder, expiry: self.changed_at + duration }
    }
}

/// What the caller does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the lease with this record (it did not exist).
    Create(LeaseRecord),
    /// Replace the lease's election fields with this record, conditioned on its `resource_version`.
    Update(LeaseRecord),
    /// Nothing to write; read the lease again at this time.
    Wait(Instant),
}

/// Why a write did not happen (or may not have happened); all are handled the same way (retry next
/// period), the kinds are for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFailure {
    /// Someone else wrote the lease first (409): the next read tells who.
    Conflict,
    /// The lease was deleted meanwhile (404 on update): the next round creates it.
    NotFound,
    /// Any other error, including a timeout: the write may or may not have been committed, so it does
    /// not extend our claim; a later read shows what happened.
    Other,
}

/// One participant's election state machine.
#[derive(Debug, Clone)]
pub struct Candidate {
    cfg: ElectionConfig,
    observed: Option<Observed>,
    /// How often the holder writes a renewal (at least `retry_period`).
    write_period: Duration,
    /// When we decided the last write that the API server confirmed and that names us holder, and how
    /// long a claim that write gave (`renew_deadline` plus the write period's extra). `None` while we do
    /// not hold the lease.
    renewed: Option<(Instant, Duration)>,
    /// When we sent the latest read that returned our own last write unchanged (or decided that write).
    confirmed_at: Option<Instant>,
    /// When we decided the write now in flight.
    pending_since: Option<Instant>,
    next_attempt: Option<Instant>,
}

impl Candidate {
    /// A participant that has seen nothing yet and holds nothing.
    pub fn new(cfg: ElectionConfig) -> Self {
        let write_period = cfg.retry_period;
        Candidate {
            cfg,
            observed: None,
            write_period,
            renewed: None,
            confirmed_at: None,
            pending_since: None,
            next_attempt: None,
        }
    }

    /// Renew by writing every `period` (clamped to at least `retry_period`) and by reading in between;
    /// see the module docs. Takes effect from the next write; the claim of a write already made keeps
    /// the length that write gave it.
    pub fn set_write_period(&mut self, period: Duration) {
        self.write_period = period.max(self.cfg.retry_period);
    }

    /// The current write period.
    pub fn write_period(&self) -> Duration {
        self.write_period
    }

    /// How much longer than configured the next write's lease duration and claim are.
    fn extra(&self) -> Duration {
        self.write_period - self.cfg.retry_period
    }

    /// The configuration a write made now carries: lease duration and renew deadline lengthened by
    /// the write period's extra.
    fn write_cfg(&self) -> ElectionConfig {
        let extra = self.extra();
        ElectionConfig {
            lease_duration: self.cfg.lease_duration + extra,
            renew_deadline: self.cfg.renew_deadline + extra,
            ..self.cfg.clone()
        }
    }

    /// Whether the next round renews by writing (`true` also while we hold nothing): a write is due
    /// half a retry period before the write period has passed since the last one, so with the default
    /// write period every round writes.
    pub fn renewal_due(&self, now: Instant) -> bool {
        self.renewed.is_none_or(|(at, _)| now + self.cfg.retry_period / 2 >= at + self.write_period)
    }

    /// The configuration this candidate runs with.
    pub fn config(&self) -> &ElectionConfig {
        &self.cfg
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.cfg.identity
    }

    /// The last observation (read or own write) of the lease.
    pub fn observed(&self) -> Option<&Observed> {
        self.observed.as_ref()
    }

    /// Decides what to do about a fresh read of the lease (`None`: it does not exist), read at `now`
    /// (local monotonic time of the answer) and `wall` (written into `acquireTime`/`renewTime`).
    ///
    /// A write action is remembered as in flight: report its outcome with [`Candidate::written`].
    pub fn decide(&mut self, observed: Option<&LeaseRecord>, now: Instant, wall: Timestamp) -> Action {
        self.decide_read(observed, now, now, wall)
    }

    /// [`Candidate::decide`] for a read sent at `sent` and answered at `now`: a read that confirms our
    /// claim without a write counts from when it was sent (the API server's answer reflects some moment
    /// after that), while other holders' records count from when we saw them (`now`).
    pub fn decide_read(
        &mut self,
        observed: Option<&LeaseRecord>,
        sent: Instant,
        now: Instant,
        wall: Timestamp,
    ) -> Action {
        let me = self.cfg.identity.clone();
        let Some(record) = observed else {
            // No lease: nobody holds it, whatever we believed.
            self.observed = None;
            self.renewed = None;
            return self.write(Action::Create(LeaseRecord::acquired(None, &self.write_cfg(), wall)), now);
        };
        let own_last_write =
            self.renewed.is_some() && self.observed.as_ref().is_some_and(|o| o.record == *record);
        let observation = Observed::note(self.observed.take(), record.clone(), now);
        let claim = observation.claim(self.cfg.lease_duration);
        self.observed = Some(observation);

        if claim.holder.as_deref() == Some(me.as_str()) {
            if own_last_write && !self.renewal_due(now) {
                // Our own last write, unchanged: nobody took the lease and the API server answered.
                // The claim moves on without a write (bounded by that write's own deadline).
                self.confirmed_at = Some(self.confirmed_at.map_or(sent, |t| t.max(sent)));
                let next = now + self.cfg.retry_period;
                self.next_attempt = Some(next);
                return Action::Wait(next);
            }
            // Ours (or ours before a restart): renew. The compare-and-swap guarantees nobody took it
            // since this read, so this is safe even when our own claim already expired.
            return self.write(Action::Update(record.renewed(&self.write_cfg(), wall)), now);
        }
        // Someone else's, or nobody's: whatever we believed, we do not lead now.
        self.renewed = None;
        if claim.is_current(now) {
            // Wake up exactly when it expires if that is sooner than the next period, so a standby
            // takes over no later than lease_duration after it last saw the lease change.
            let next = (now + self.cfg.retry_period).min(claim.expiry);
            self.next_attempt = Some(next);
            return Action::Wait(next);
        }
        self.write(Action::Update(LeaseRecord::acquired(Some(record), &self.write_cfg(), wall)), now)
    }

    fn write(&mut self, action: Action, now: Instant) -> Action {
        self.pending_since = Some(now);
        self.next_attempt = Some(now + self.cfg.retry_period);
        action
    }

    /// Reports the outcome of the write [`Candidate::decide`] asked for: the record the API server
    /// returned, or why there is none. `now` is when the answer came.
    pub fn written(&mut self, outcome: Result<&LeaseRecord, WriteFailure>, now: Instant) {
        let decided_at = self.pending_since.take();
        self.next_attempt = Some(now + self.cfg.retry_period);
        let Ok(record) = outcome else {
            // Not confirmed: our claim is not extended; it lapses at its old expiry unless a later
            // renewal succeeds.
            return;
        };
        self.observed = Some(Observed { record: record.clone(), changed_at: now });
        if record.holder() == Some(self.cfg.identity.as_str()) {
            // The claim runs from when we decided the write, which is before the API server committed
            // it and so before any other candidate could have started counting from it.
            let from = decided_at.unwrap_or(now);
            let length = self.cfg.renew_deadline + self.extra();
            // The latest write decides (its lease duration is what the others count from).
            self.renewed = Some(match self.renewed {
                Some((at, l)) if at > from => (at, l),
                _ => (from, length),
            });
            self.confirmed_at = Some(self.confirmed_at.map_or(from, |t| t.max(from)));
        } else {
            self.renewed = None;
        }
    }

    /// Reports a read that failed (any error, including a timeout). Nothing is learned; the claim
    /// lapses at its expiry unless a later renewal succeeds.
    pub fn read_failed(&mut self, now: Instant) -> Action {
        let next = now + self.cfg.retry_period;
        self.next_attempt = Some(next);
        Action::Wait(next)
    }

    /// When to read the lease again.
    pub fn next_attempt(&self, now: Instant) -> Instant {
        self.next_attempt.unwrap_or(now)
    }

    /// Stops leading at once (for shutdown); the lease itself is given up with [`Candidate::release`].
    pub fn step_down(&mut self) {
        self.renewed = None;
    }

    /// Steps down and, when the freshly read `observed` record names us, returns the record that gives
    /// the lease up (to be written with a compare-and-swap update, then reported with
    /// [`Candidate::written`]). `None`: the lease is not ours, there is nothing to give up.
    pub fn release(
        &mut self,
        observed: Option<&LeaseRecord>,
        now: Instant,
        wall: Timestamp,
    ) -> Option<LeaseRecord> {
        self.step_down();
        let record = observed?;
        self.observed = Some(Observed::note(self.observed.take(), record.clone(), now));
        if record.holder() != Some(self.cfg.identity.as_str()) {
            return None;
        }
        self.pending_since = Some(now);
        Some(record.released(wall))
    }

    /// True while this candidate may act as the leader.
    pub fn is_leader(&self, now: Instant) -> bool {
        self.claim().is_current_for(&self.cfg.identity, now)
    }

    /// Who holds the lease and until when, as this candidate judges it. Our own claim runs
    /// `renew_deadline` from our last confirmed write; a record naming us that we have not confirmed
    /// since (a restart, or a write whose answer we lost) is shown as already expired, until renewed.
    pub fn claim(&self) -> Claim {
        let me = &self.cfg.identity;
        if let Some((at, length)) = self.renewed {
            // `renew_deadline` from the latest confirmation (a write or a read of that write), never
            // past what the last write itself gave.
            let confirmed = self.confirmed_at.map_or(at, |c| c.max(at));
            let expiry = (confirmed + self.cfg.renew_deadline).min(at + length);
            return Claim { holder: Some(me.clone()), expiry };
        }
        match &self.observed {
            Some(o) if o.record.holder() == Some(me.as_str()) => {
                Claim { holder: Some(me.clone()), expiry: o.changed_at }
            }
            Some(o) => o.claim(self.cfg.lease_duration),
            // Nothing seen yet: nobody known to hold it. The expiry is irrelevant without a holder;
            // any fixed instant will do.
            None => Claim { holder: None, expiry: self.pending_since.unwrap_or_else(Instant::now) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(id: &str) -> ElectionConfig {
        ElectionConfig {
            identity: id.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    fn wall() -> Timestamp {
        Timestamp::from_second(1_800_000_000).expect("valid")
    }

    fn with_rv(mut r: LeaseRecord, rv: u64) -> LeaseRecord {
        r.resource_version = Some(rv.to_string());
        r
    }

    #[test]
    fn validate_names_the_flag() {
        let mut c = cfg("a");
        assert!(c.validate().is_ok());
        c.renew_deadline = Duration::from_secs(15);
        assert!(c.validate().unwrap_err().to_string().contains("--lease-duration"));
        c.renew_deadline = Duration::from_secs(2);
        assert!(c.validate().unwrap_err().to_string().contains("--renew-deadline"));
        c.retry_period = Duration::ZERO;
        assert!(c.validate().unwrap_err().to_string().contains("--retry-period"));
        let mut c = cfg(" ");
        assert!(c.validate().unwrap_err().to_string().contains("--id"));
        c.identity = "a".into();
        c.lease_duration = Duration::from_secs(u64::MAX / 2);
        assert!(c.validate().is_err());
    }

    #[test]
    fn lease_duration_rounds_up() {
        let mut c = cfg("a");
        c.lease_duration = Duration::from_millis(1500);
        assert_eq!(c.lease_duration_seconds(), 2);
        c.lease_duration = Duration::from_millis(200);
        assert_eq!(c.lease_duration_seconds(), 1);
        c.lease_duration = Duration::from_secs(15);
        assert_eq!(c.lease_duration_seconds(), 15);
    }

    #[test]
    fn claim_is_current_only_for_holder_before_expiry() {
        let t = Instant::now();
        let c = Claim { holder: Some("a".into()), expiry: t + Duration::from_secs(1) };
        assert!(c.is_current_for("a", t));
        assert!(!c.is_current_for("b", t));
        assert!(!c.is_current_for("a", t + Duration::from_secs(1)));
        let nobody = Claim { holder: None, expiry: t + Duration::from_secs(1) };
        assert!(!nobody.is_current(t));
    }

    #[test]
    fn creates_missing_lease_then_leads_once_confirmed() {
        let t0 = Instant::now();
        let mut a = Candidate::new(cfg("a"));
        let Action::Create(rec) = a.decide(None, t0, wall()) else { panic!("expected create") };
        assert_eq!(rec.holder(), Some("a"));
        assert_eq!(rec.lease_duration, Some(Duration::from_secs(15)));
        assert_eq!(rec.transitions, 0);
        assert!(!a.is_leader(t0), "not before the API server confirms");
        let t1 = t0 + Duration::from_millis(50);
        a.written(Ok(&with_rv(rec, 1)), t1);
        assert!(a.is_leader(t1));
        // The claim runs from the decision, not the answer.
        assert_eq!(a.claim().expiry, t0 + Duration::from_secs(10));
        assert!(!a.is_leader(t0 + Duration::from_secs(10)));
        assert_eq!(a.next_attempt(t1), t1 + Duration::from_secs(2));
    }

    #[test]
    fn standby_waits_for_expiry_measured_locally_then_takes_over() {
        let t0 = Instant::now();
        let held = LeaseRecord {
            holder: Some("a".into()),
            lease_duration: Some(Duration::from_secs(15)),
            // A renewTime far in the past (skewed clock) must not matter.
            renew_time: Some(Timestamp::UNIX_EPOCH),
            transitions: 3,
            resource_version: Some("7".into()),
            ..Default::default()
        };
        let mut b = Candidate::new(cfg("b"));
        assert_eq!(b.decide(Some(&held), t0, wall()), Action::Wait(t0 + Duration::from_secs(2)));
        assert_eq!(b.claim().holder.as_deref(), Some("a"));
        // Same record read later: the clock keeps running from the first sighting.
        let t14 = t0 + Duration::from_secs(14);
        assert_eq!(b.decide(Some(&held), t14, wall()), Action::Wait(t0 + Duration::from_secs(15)));
        let t15 = t0 + Duration::from_secs(15);
        let Action::Update(take) = b.decide(Some(&held), t15, wall()) else { panic!("expected takeover") };
        assert_eq!(take.holder(), Some("b"));
        assert_eq!(take.transitions, 4);
        assert_eq!(take.resource_version.as_deref(), Some("7"), "conditioned on what we read");
    }

    #[test]
    fn a_changed_record_restarts_the_standby_clock() {
        let t0 = Instant::now();
        let v1 = with_rv(LeaseRecord { holder: Some("a".into()), ..Default::default() }, 1);
        let v2 = with_rv(v1.clone(), 2);
        let mut b = Candidate::new(cfg("b"));
        b.decide(Some(&v1), t0, wall());
        let t10 = t0 + Duration::from_secs(10);
        b.decide(Some(&v2), t10, wall());
        // No duration in the record: our own lease_duration applies.
        assert!(matches!(b.decide(Some(&v2), t0 + Duration::from_secs(24), wall()), Action::Wait(_)));
        assert!(matches!(b.decide(Some(&v2), t0 + Duration::from_secs(25), wall()), Action::Update(_)));
    }

    #[test]
    fn released_lease_is_taken_at_once() {
        let t0 = Instant::now();
        let released = with_rv(
            LeaseRecord {
                holder: Some(String::new()),
                lease_duration: Some(Duration::from_secs(1)),
                transitions: 2,
                ..Default::default()
            },
            9,
        );
        let mut b = Candidate::new(cfg("b"));
        let Action::Update(rec) = b.decide(Some(&released), t0, wall()) else { panic!("expected acquire") };
        assert_eq!(rec.holder(), Some("b"));
        assert_eq!(rec.transitions, 3);
    }

    #[test]
    fn holder_renews_and_steps_down_after_renew_deadline_without_success() {
        let t0 = Instant::now();
        let mut a = Candidate::new(cfg("a"));
        let Action::Create(rec) = a.decide(None, t0, wall()) else { panic!() };
        a.written(Ok(&with_rv(rec, 1)), t0);
        let t2 = t0 + Duration::from_secs(2);
        let Action::Update(renew) =
            a.decide(Some(&with_rv(a.observed().unwrap().record.clone(), 1)), t2, wall())
        else {
            panic!("expected renewal")
        };
        assert_eq!(renew.transitions, 0);
        assert_eq!(renew.acquire_time, Some(wall()));
        a.written(Ok(&with_rv(renew, 2)), t2 + Duration::from_millis(10));
        assert_eq!(a.claim().expiry, t2 + Duration::from_secs(10));
        // Renewals now fail.
        let t4 = t2 + Duration::from_secs(2);
        let _ = a.decide(Some(&a.observed().unwrap().record.clone()), t4, wall());
        a.written(Err(WriteFailure::Other), t4);
        assert!(a.is_leader(t2 + Duration::from_millis(9_999)));
        assert!(!a.is_leader(t2 + Duration::from_secs(10)));
    }

    #[test]
    fn a_longer_write_period_renews_by_reading_between_writes() {
        // cfg: lease 15 s, renew deadline 10 s, retry 2 s; writes every 8 s (extra 6 s).
        let t0 = Instant::now();
        let mut a = Candidate::new(cfg("a"));
        a.set_write_period(Duration::from_secs(8));
        let Action::Create(rec) = a.decide(None, t0, wall()) else { panic!() };
        assert_eq!(rec.lease_duration, Some(Duration::from_secs(21)), "the others wait 15 + 6 s");
        a.written(Ok(&with_rv(rec, 1)), t0);
        assert_eq!(a.claim().expiry, t0 + Duration::from_secs(10));
        // Reads of our own write, sent at 2, 4, 6 s: no write, the claim runs 10 s from each read...
        for s in [2, 4, 6] {
            let sent = t0 + Duration::from_secs(s);
            let mine = a.observed().unwrap().record.clone();
            let now = sent + Duration::from_millis(5);
            assert_eq!(
                a.decide_read(Some(&mine), sent, now, wall()),
                Action::Wait(now + Duration::from_secs(2))
            );
            assert_eq!(a.claim().expiry, sent + Duration::from_secs(10));
        }
        // ...and a write is due at 7 s (half a retry period early).
        let t7 = t0 + Duration::from_secs(7);
        assert!(a.renewal_due(t7));
        let mine = a.observed().unwrap().record.clone();
        let Action::Update(renew) = a.decide(Some(&mine), t7, wall()) else { panic!("expected a write") };
        assert_eq!(renew.lease_duration, Some(Duration::from_secs(21)));
        a.written(Ok(&with_rv(renew, 2)), t7);
        assert_eq!(a.claim().expiry, t7 + Duration::from_secs(10));
    }

    #[test]
    fn reads_never_stretch_a_claim_past_its_write_and_a_changed_record_is_written() {
        let t0 = Instant::now();
        let mut a = Candidate::new(cfg("a"));
        a.set_write_period(Duration::from_secs(8));
        let Action::Create(rec) = a.decide(None, t0, wall()) else { panic!() };
        a.written(Ok(&with_rv(rec, 1)), t0);
        let mine = a.observed().unwrap().record.clone();
        // A read sent at 6.5 s (writes failing since) would give 16.5 s; the write gave 10 + 6 s.
        let sent = t0 + Duration::from_millis(6_500);
        assert!(!a.renewal_due(sent));
        a.decide_read(Some(&mine), sent, sent, wall());
        assert_eq!(a.claim().expiry, t0 + Duration::from_secs(16));
        // Someone else changed the object (an annotation): the record differs, so we write.
        let mut changed = mine.clone();
        changed.resource_version = Some("7".into());
        let t3 = t0 + Duration::from_secs(3);
        let mut b = Candidate::new(cfg("a"));
        b.set_write_period(Duration::from_secs(8));
        let Action::Create(rec) = b.decide(None, t0, wall()) else { panic!() };
        b.written(Ok(&with_rv(rec, 1)), t0);
        assert!(matches!(b.decide(Some(&changed), t3, wall()), Action::Update(_)));
    }

    #[test]
    fn the_default_write_period_writes_every_round() {
        let t0 = Instant::now();
        let mut a = Candidate::new(cfg("a"));
        let Action::Create(rec) = a.decide(None, t0, wall()) else { panic!() };
        a.written(Ok(&with_rv(rec, 1)), t0);
        let t2 = a.next_attempt(t0);
        assert!(a.renewal_due(t2));
        let mine = a.observed().unwrap().record.clone();
        let Action::Update(renew) = a.decide(Some(&mine), t2, wall()) else { panic!("expected a write") };
        assert_eq!(renew.lease_duration, Some(Duration::from_secs(15)));
    }

    #[test]
    fn holder_that_sees_another_holder_steps_down_at_once() {
        let t0 = Instant::now();
        let mut a = Candidate::new(cfg("a"));
        let Action::Create(rec) = a.decide(None, t0, wall()) else { panic!() };
        a.written(Ok(&with_rv(rec, 1)), t0);
        assert!(a.is_leader(t0));
        let other = with_rv(LeaseRecord { holder: Some("b".into()), ..Default::default() }, 5);
        assert!(matches!(a.decide(Some(&other), t0 + Duration::from_secs(1), wall()), Action::Wait(_)));
        assert!(!a.is_leader(t0 + Duration::from_secs(1)));
        // And a deleted lease is nobody's.
        let mut a = Candidate::new(cfg("a"));
        let Action::Create(rec) = a.decide(None, t0, wall()) else { panic!() };
        a.written(Ok(&with_rv(rec, 1)), t0);
        assert!(matches!(a.decide(None, t0, wall()), Action::Create(_)));
        assert!(!a.is_leader(t0));
    }

    #[test]
    fn a_record_naming_us_is_not_trusted_until_renewed() {
        let t0 = Instant::now();
        let ours = with_rv(LeaseRecord { holder: Some("a".into()), ..Default::default() }, 3);
        let mut a = Candidate::new(cfg("a"));
        let Action::Update(renew) = a.decide(Some(&ours), t0, wall()) else { panic!("expected renewal") };
        assert!(!a.is_leader(t0));
        a.written(Err(WriteFailure::Conflict), t0);
        assert!(!a.is_leader(t0));
        let _ = a.decide(Some(&ours), t0, wall());
        a.written(Ok(&with_rv(renew, 4)), t0);
        assert!(a.is_leader(t0));
    }

    #[test]
    fn late_confirmation_does_not_extend_a_claim_past_its_deadline() {
        let t0 = Instant::now();
        let mut a = Candidate::new(cfg("a"));
        let Action::Create(rec) = a.decide(None, t0, wall()) else { panic!() };
        // The answer arrives after the renew deadline (an API server that hung).
        let late = t0 + Duration::from_secs(11);
        a.written(Ok(&with_rv(rec, 1)), late);
        assert!(!a.is_leader(late));
    }

    #[test]
    fn release_gives_up_only_our_own_lease() {
        let t0 = Instant::now();
        let mut a = Candidate::new(cfg("a"));
        let Action::Create(rec) = a.decide(None, t0, wall()) else { panic!() };
        let ours = with_rv(rec, 1);
        a.written(Ok(&ours), t0);
        let rel = a.release(Some(&ours), t0, wall()).expect("ours to release");
        assert!(!a.is_leader(t0), "stops leading before the write");
        assert_eq!(rel.holder(), None);
        assert_eq!(rel.lease_duration, Some(Duration::from_secs(1)));
        assert_eq!(rel.resource_version.as_deref(), Some("1"));
        a.written(Ok(&with_rv(rel, 2)), t0);
        assert!(!a.is_leader(t0));
        assert_eq!(a.claim().holder, None);

        let theirs = with_rv(LeaseRecord { holder: Some("b".into()), ..Default::default() }, 5);
        assert_eq!(Candidate::new(cfg("a")).release(Some(&theirs), t0, wall()), None);
        assert_eq!(Candidate::new(cfg("a")).release(None, t0, wall()), None);
    }
}
