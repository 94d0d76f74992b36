//! The Kubernetes side of leader election: runs an [`election::Candidate`](crate::election::Candidate)
//! against a `coordination.k8s.io/v1` Lease and publishes [`Leadership`] through a watch channel.
//!
//! ```no_run
//! # async fn demo(client: kube::Client, cfg: ferrolb_runtime::election::ElectionConfig) {
//! use ferrolb_runtime::lease::LeaderElector;
//! let elector = LeaderElector::spawn(client, "ferrolb-system", "ferrolb-ipam", cfg);
//! let mut rx = elector.leadership();
//! loop {
//!     if rx.borrow().leader { /* write */ }
//!     if rx.changed().await.is_err() { break; }
//! }
//! elector.release().await; // on SIGTERM
//! # }
//! ```
//!
//! Errors from the API server never stop the task: every failed read or write is retried the next retry
//! period (as client-go does), and the holder publishes `leader: false` as soon as its last confirmed
//! renewal is `renew_deadline` old, even while a request is still hanging.

use std::future::Future;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::election::{Action, Candidate, ElectionConfig, LeaseRecord, WriteFailure};

/// What the elector currently knows about the lease, as published on its watch channel.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Leadership {
    /// True while this process may act as the leader.
    pub leader: bool,
    /// The identity the lease names (ours included), as last seen; `None` when nobody holds it or it
    /// has not been read yet. It may name a holder whose lease has expired but not yet been taken over.
    pub holder: Option<String>,
    /// While `leader`: when our claim expires unless renewed. A writer that wants to be strict about
    /// the time between reading `leader` and acting on it checks [`Leadership::is_leader_at`].
    pub valid_until: Option<Instant>,
}

impl Leadership {
    /// True when we lead and the claim has not expired at `now` (the watch value may be read a little
    /// after the claim lapsed, before the elector task publishes the step-down).
    pub fn is_leader_at(&self, now: Instant) -> bool {
        self.leader && self.valid_until.is_some_and(|t| now < t)
    }

    /// Leadership decided without a Lease, whose claim never lapses: for a controller driven by
    /// tests or benchmarks rather than an election.
    pub fn fixed(leader: bool) -> Self {
        // Ten years: far beyond any run, and far from `Instant`'s overflow.
        let forever = Duration::from_secs(10 * 365 * 24 * 3600);
        Self { leader, holder: None, valid_until: leader.then(|| Instant::now() + forever) }
    }
}

/// A running election on one Lease. Dropping it stops the task without giving the lease up (others take
/// over when it expires); call [`LeaderElector::release`] to hand over at once.
#[derive(Debug)]
pub struct LeaderElector {
    identity: String,
    rx: watch::Receiver<Leadership>,
    release_tx: mpsc::Sender<oneshot::Sender<()>>,
    write_period: WritePeriod,
    task: JoinHandle<()>,
}

/// Sets how often a running [`LeaderElector`] renews by writing ([`Candidate::set_write_period`]);
/// cheap to clone, usable after the elector is gone (then it does nothing).
#[derive(Debug, Clone)]
pub struct WritePeriod(std::sync::Arc<watch::Sender<Duration>>);

impl WritePeriod {
    /// Renew by writing every `period` and by reading every retry period in between; the retry
    /// period (the default) writes every time. Takes effect from the elector's next round.
    pub fn set(&self, period: Duration) {
        self.0.send_if_modified(|p| std::mem::replace(p, period) != period);
    }
}

impl LeaderElector {
    /// Starts campaigning for the Lease `lease_name` in `namespace` (creating it when missing) on a new
    /// tokio task. `cfg` should have passed [`ElectionConfig::validate`]; an invalid configuration is
    /// logged and never leads.
    pub fn spawn(
        client: kube::Client,
        namespace: &str,
        lease_name: &str,
        cfg: ElectionConfig,
    ) -> LeaderElector {
        let (tx, rx) = watch::channel(Leadership::default());
        let (release_tx, release_rx) = mpsc::channel(1);
        let identity = cfg.identity.clone();
        let (write_period, write_period_rx) = watch::channel(cfg.retry_period);
        let write_period = WritePeriod(std::sync::Arc::new(write_period));
        let publisher = Publisher { tx, lease: lease_name.to_owned(), identity: identity.clone() };
        let runner = Runner {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: lease_name.to_owned(),
            candidate: Candidate::new(cfg),
            publisher,
            last_read: None,
            own_write: None,
            write_period: write_period_rx,
        };
        let task = tokio::spawn(runner.main(release_rx));
        LeaderElector { identity, rx, release_tx, write_period, task }
    }

    /// The handle that sets this elector's write period.
    pub fn write_period(&self) -> WritePeriod {
        self.write_period.clone()
    }

    /// A receiver of leadership changes; `rx.borrow().leader` says whether we lead now.
    pub fn leadership(&self) -> watch::Receiver<Leadership> {
        self.rx.clone()
    }

    /// Only whether we lead: it changes when we start or stop leading, not on every renewal (which
    /// moves [`Leadership::valid_until`] only), for loops that should not wake on renewals. Must be
    /// called inside a tokio runtime; the bridging task ends with the elector.
    pub fn leading(&self) -> watch::Receiver<bool> {
        let mut leadership = self.rx.clone();
        let (tx, rx) = watch::channel(leadership.borrow().leader);
        tokio::spawn(async move {
            loop {
                let leader = leadership.borrow_and_update().leader;
                tx.send_if_modified(|l| std::mem::replace(l, leader) != leader);
                if leadership.changed().await.is_err() {
                    break;
                }
            }
        });
        rx
    }

    /// The identity this elector campaigns as.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Stops leading at once (publishes `leader: false`), gives the lease up when we hold it (clears the
    /// holder, so a standby takes over within its retry period), and stops the task. Gives up on the
    /// API server after `renew_deadline`; errors are logged, since there is nothing more to do on
    /// shutdown. Returns immediately when the task already stopped.
    pub async fn release(&self) {
        let (done_tx, done_rx) = oneshot::channel();
        if self.release_tx.send(done_tx).await.is_ok() {
            let _ = done_rx.await;
        }
    }
}

impl Drop for LeaderElector {
    fn drop(&mut self) {
        // No orphaned renewals after the owner is gone.
        self.task.abort();
    }
}

/// Owns the sending side of the leadership channel and the metrics that mirror it.
struct Publisher {
    tx: watch::Sender<Leadership>,
    lease: String,
    identity: String,
}

impl Publisher {
    fn publish(&self, candidate: &Candidate) {
        let now = Instant::now();
        let claim = candidate.claim();
        let leader = claim.is_current_for(candidate.identity(), now);
        let next = Leadership {
            leader,
            holder: candidate.observed().and_then(|o| o.record.holder().map(str::to_owned)),
            valid_until: leader.then_some(claim.expiry),
        };
        self.send(next);
    }

    fn send(&self, next: Leadership) {
        let lease = &self.lease;
        let identity = &self.identity;
        self.tx.send_if_modified(|current| {
            if *current == next {
                return false;
            }
            if next.leader && !current.leader {
                tracing::info!(lease, identity, "became leader");
                metrics::counter!("ferrolb_leader_elections_total", "lease" => lease.clone()).increment(1);
            } else if current.leader && !next.leader {
                tracing::warn!(lease, identity, holder = ?next.holder, "stopped leading");
            }
            if next.holder != current.holder {
                tracing::info!(lease, holder = ?next.holder, "lease holder changed");
            }
            metrics::gauge!("ferrolb_is_leader", "lease" => lease.clone()).set(if next.leader {
                1.0
            } else {
                0.0
            });
            *current = next;
            true
        });
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        // The task ended (released, aborted or panicked): whoever still reads the channel must not
        // keep seeing `leader: true`.
        self.send(Leadership::default());
    }
}

struct Runner {
    api: Api<Lease>,
    namespace: String,
    name: String,
    candidate: Candidate,
    publisher: Publisher,
    /// The full object of the last read, so an update keeps fields we do not own (labels, annotations,
    /// `preferredHolder`, `strategy`).
    last_read: Option<Lease>,
    /// The object of our last confirmed write while it names us: what a read would return unless
    /// someone else wrote since, so the next renewal is decided on it without a GET. If someone did
    /// write, the update conflicts (409) and the round after reads again.
    own_write: Option<Lease>,
    /// The write period asked for by [`LeaderElector::set_write_period`].
    write_period: watch::Receiver<Duration>,
}

impl Runner {
    async fn main(mut self, mut release_rx: mpsc::Receiver<oneshot::Sender<()>>) {
        describe_metrics();
        // The series exists from the start, so "not leader" is visible rather than absent.
        metrics::gauge!("ferrolb_is_leader", "lease" => self.name.clone()).set(0.0);
        self.publisher.publish(&self.candidate);
        if let Err(error) = self.candidate.config().validate() {
            tracing::error!(lease = %self.name, %error, "leader election disabled");
            if let Some(done) = release_rx.recv().await {
                let _ = done.send(());
            }
            return;
        }
        let done = tokio::select! {
            () = self.campaign() => None,
            done = release_rx.recv() => done,
        };
        // The campaign future is dropped here, together with any request in flight.
        if let Some(done) = done {
            self.release().await;
            let _ = done.send(());
        }
    }

    /// Reads, decides, writes, waits; forever.
    async fn campaign(&mut self) {
        let timeout = self.candidate.config().renew_deadline;
        let pp = PostParams::default();
        loop {
            self.candidate.set_write_period(*self.write_period.borrow_and_update());
            let sent = Instant::now();
            // Our last write stands in for a read only when a write follows: a round that renews by
            // reading must ask the API server.
            let own_write = self.own_write.take().filter(|_| self.candidate.renewal_due(sent));
            let reused = own_write.is_some();
            let read = match own_write {
                Some(lease) => Some(Ok(Some(lease))),
                None => {
                    guarded(&self.candidate, &self.publisher, timeout, self.api.get_opt(&self.name)).await
                }
            };
            let now = Instant::now();
            let action = match read {
                Some(Ok(lease)) => {
                    let record = lease.as_ref().map(record_of);
                    self.last_read = lease;
                    let action = self.candidate.decide_read(record.as_ref(), sent, now, Timestamp::now());
                    if matches!(action, Action::Wait(_)) && self.candidate.is_leader(now) {
                        // Confirmed by this read: still our write, reusable for the next renewal.
                        self.own_write.clone_from(&self.last_read);
                    }
                    action
                }
                Some(Err(error)) => {
                    tracing::warn!(lease = %self.name, %error, "reading the lease failed; retrying");
                    self.candidate.read_failed(now)
                }
                None => {
                    tracing::warn!(lease = %self.name, ?timeout, "reading the lease timed out; retrying");
                    self.candidate.read_failed(now)
                }
            };
            match action {
                Action::Create(record) => {
                    let lease = new_lease(&self.namespace, &self.name, &record);
                    let write = self.api.create(&pp, &lease);
                    let result = guarded(&self.candidate, &self.publisher, timeout, write).await;
                    self.report(result, "creating");
                }
                Action::Update(record) => {
                    let mut lease = self.last_read.clone().unwrap_or_default();
                    apply_record(&mut lease, &record);
                    let write = self.api.replace(&self.name, &pp, &lease);
                    let result = guarded(&self.candidate, &self.publisher, timeout, write).await;
                    let conflict = matches!(&result, Some(Err(e)) if failure_of(e) == WriteFailure::Conflict);
                    self.report(result, "updating");
                    if reused && conflict {
                        // Someone else wrote since our last renewal (an annotation, say): read and
                        // renew now, not a retry period later, which could be past our deadline.
                        self.publisher.publish(&self.candidate);
                        continue;
                    }
                }
                Action::Wait(_) => {}
            }
            self.publisher.publish(&self.candidate);
            let next = self.candidate.next_attempt(Instant::now());
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(next));
            guarded(&self.candidate, &self.publisher, Duration::MAX, sleep).await;
        }
    }

    fn report(&mut self, result: Option<Result<Lease, kube::Error>>, what: &str) {
        let now = Instant::now();
        let lease = &self.name;
        match result {
            Some(Ok(written)) => {
                let record = record_of(&written);
                let ours = record.holder() == Some(self.candidate.config().identity.as_str());
                self.own_write = ours.then(|| written.clone());
                self.last_read = Some(written);
                self.candidate.written(Ok(&record), now);
            }
            Some(Err(error)) => {
                let failure = failure_of(&error);
                match failure {
                    WriteFailure::Conflict => {
                        tracing::debug!(lease, %error, "{what} the lease: someone else wrote it first")
                    }
                    WriteFailure::NotFound => tracing::info!(lease, "{what} the lease: it was deleted"),
                    WriteFailure::Other => tracing::warn!(lease, %error, "{what} the lease failed; retrying"),
                }
                self.candidate.written(Err(failure), now);
            }
            None => {
                tracing::warn!(lease, "{what} the lease timed out; retrying");
                self.candidate.written(Err(WriteFailure::Other), now);
            }
        }
    }

    /// Gives the lease up if it is ours; bounded by `renew_deadline`, since this runs on shutdown.
    async fn release(&mut self) {
        self.candidate.step_down();
        self.publisher.publish(&self.candidate);
        let cfg = self.candidate.config().clone();
        let deadline = Instant::now() + cfg.renew_deadline;
        let lease = &self.name;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(
                    lease,
                    "could not release the lease before the renew deadline; it will expire"
                );
                return;
            }
            let read = tokio::time::timeout(left, self.api.get_opt(&self.name)).await;
            let current = match read {
                Ok(Ok(current)) => current,
                Ok(Err(error)) => {
                    tracing::warn!(lease, %error, "reading the lease to release it failed");
                    tokio::time::sleep(cfg.retry_period.min(left)).await;
                    continue;
                }
                Err(_) => continue,
            };
            let record = current.as_ref().map(record_of);
            let Some(released) = self.candidate.release(record.as_ref(), Instant::now(), Timestamp::now())
            else {
                tracing::info!(lease, "not holding the lease; nothing to release");
                return;
            };
            let mut object = current.unwrap_or_default();
            apply_record(&mut object, &released);
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.api.replace(&self.name, &PostParams::default(), &object))
                .await
            {
                Ok(Ok(written)) => {
                    self.candidate.written(Ok(&record_of(&written)), Instant::now());
                    self.publisher.publish(&self.candidate);
                    tracing::info!(lease, "released the lease");
                    return;
                }
                Ok(Err(error)) => {
                    let failure = failure_of(&error);
                    self.candidate.written(Err(failure), Instant::now());
                    if failure != WriteFailure::Conflict {
                        tracing::warn!(lease, %error, "releasing the lease failed");
                        tokio::time::sleep(cfg.retry_period.min(left)).await;
                    }
                }
                Err(_) => {}
            }
        }
    }
}

/// Awaits `fut` for at most `timeout`, meanwhile publishing the step-down the moment our claim expires
/// (a renewal that hangs must not keep us "leader" past the renew deadline). `None` on timeout.
async fn guarded<F: Future>(
    candidate: &Candidate,
    publisher: &Publisher,
    timeout: Duration,
    fut: F,
) -> Option<F::Output> {
    let deadline = tokio::time::Instant::now().checked_add(timeout);
    let timeout = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(fut, timeout);
    loop {
        let claim = candidate.claim();
        let stepdown = claim
            .is_current_for(candidate.identity(), Instant::now())
            .then(|| tokio::time::Instant::from_std(claim.expiry));
        tokio::select! {
            out = &mut fut => return Some(out),
            () = &mut timeout => return None,
            () = tokio::time::sleep_until(stepdown.unwrap_or_else(tokio::time::Instant::now)), if stepdown.is_some() => {
                publisher.publish(candidate);
            }
        }
    }
}

fn failure_of(error: &kube::Error) -> WriteFailure {
    match crate::api_error::ApiFailure::of(error) {
        crate::api_error::ApiFailure::Conflict => WriteFailure::Conflict,
        crate::api_error::ApiFailure::NotFound => WriteFailure::NotFound,
        _ => WriteFailure::Other,
    }
}

/// The election fields of a Lease.
pub fn record_of(lease: &Lease) -> LeaseRecord {
    let spec = lease.spec.clone().unwrap_or_default();
    LeaseRecord {
        holder: spec.holder_identity.filter(|h| !h.is_empty()),
        lease_duration: spec
            .lease_duration_seconds
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(s.unsigned_abs().into())),
        acquire_time: spec.acquire_time.map(|t| t.0),
        renew_time: spec.renew_time.map(|t| t.0),
        transitions: spec.lease_transitions.unwrap_or(0),
        resource_version: lease.metadata.resource_version.clone(),
    }
}

/// Writes `record`'s election fields into `lease`, leaving every other field as it is.
pub fn apply_record(lease: &mut Lease, record: &LeaseRecord) {
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = record.holder.clone();
    spec.lease_duration_seconds =
        record.lease_duration.map(|d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX));
    spec.acquire_time = record.acquire_time.map(MicroTime);
    spec.renew_time = record.renew_time.map(MicroTime);
    spec.lease_transitions = Some(record.transitions);
    lease.metadata.resource_version = record.resource_version.clone();
}

/// A new Lease `namespace/name` carrying `record` (without a resourceVersion: it is created).
pub fn new_lease(namespace: &str, name: &str, record: &LeaseRecord) -> Lease {
    let mut lease = Lease {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..Default::default()
        },
        spec: None,
    };
    apply_record(&mut lease, record);
    lease.metadata.resource_version = None;
    lease
}

/// Registers the descriptions of the leader-election metrics with the installed recorder.
pub fn describe_metrics() {
    metrics::describe_counter!(
        "ferrolb_leader_elections_total",
        "Times this process became the leader of a Lease, by lease."
    );
    metrics::describe_gauge!("ferrolb_is_leader", "1 while this process leads the Lease, else 0; by lease.");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_through_a_lease() {
        let record = LeaseRecord {
            holder: Some("a".into()),
            lease_duration: Some(Duration::from_secs(15)),
            acquire_time: Some(Timestamp::from_second(1_800_000_000).unwrap()),
            renew_time: Some(Timestamp::from_second(1_800_000_010).unwrap()),
            transitions: 4,
            resource_version: Some("12".into()),
        };
        let mut lease = Lease::default();
        lease.metadata.labels = Some([("keep".to_string(), "me".to_string())].into());
        apply_record(&mut lease, &record);
        assert_eq!(record_of(&lease), record);
        assert!(lease.metadata.labels.is_some(), "fields we do not own are kept");
        let created = new_lease("ns", "l", &record);
        assert_eq!(created.metadata.resource_version, None);
        assert_eq!(created.metadata.namespace.as_deref(), Some("ns"));
    }

    #[test]
    fn empty_holder_and_bad_duration_read_as_absent() {
        let lease = Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(String::new()),
                lease_duration_seconds: Some(0),
                ..Default::default()
            }),
            ..Default::default()
        };
        let record = record_of(&lease);
        assert_eq!(record.holder, None);
        assert_eq!(record.lease_duration, None);
    }

    #[test]
    fn leadership_is_strict_about_expiry() {
        let now = Instant::now();
        let l = Leadership { leader: true, holder: Some("a".into()), valid_until: Some(now) };
        assert!(!l.is_leader_at(now));
        assert!(l.is_leader_at(now - Duration::from_millis(1)));
        assert!(!Leadership::default().is_leader_at(now));
    }
}
