//! Writes one replica makes for the whole cluster, gated by a real Lease claim.
//!
//! The rule (the linkerd policy-controller's status writer is the model): whatever one replica writes
//! on behalf of all (a policy's conditions, a pool's status) is decided by the pure core, sent over a
//! channel as an [`Update`], and written by one task that checks the Lease claim *with its expiry*
//! ([`ClaimGate::holds_at`]) right before each request. A replica whose renewal is late therefore
//! never writes over the one that may already have taken the Lease; what it does not write is
//! counted (`ferrolb_writes_without_claim_total`, by writer) and left to the new holder, whose own
//! decisions cover it.
//!
//! - [`ClaimGate`]: the check itself, on the [`Leadership`] an elector publishes; the IPAM controller
//!   checks it before each of its writes, the announcer's [`StatusWriter`] before each of its own.
//! - [`StatusWriter`]: the channel and the task. An update repeated with the same `basis` (the
//!   version of the object it was decided on) after it was written is not written again: the watch
//!   cache may show the object before the write for a while, and the core decides the same update
//!   again meanwhile. A failed write is not remembered, so the next decision retries it. The caller
//!   says which objects still exist ([`StatusWriter::keep_only`]), so what was written to deleted
//!   objects is forgotten rather than kept for the process's lifetime.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::time::Instant;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::lease::Leadership;

/// Counter: updates a [`StatusWriter`] did not write because the claim had lapsed (or its queue was
/// full), by writer.
pub const WRITES_WITHOUT_CLAIM: &str = "ferrolb_writes_without_claim_total";
/// Counter: writes a [`StatusWriter`] sent, by writer and outcome (`ok`, `error`).
pub const WRITES: &str = "ferrolb_status_writes_total";

/// Updates waiting for the writer at most; past it they are dropped (and counted), since the core
/// decides them again.
const QUEUE: usize = 256;

/// The Lease claim of one elector, checked with its expiry at the moment of a write.
#[derive(Debug, Clone)]
pub struct ClaimGate {
    leadership: watch::Receiver<Leadership>,
}

impl ClaimGate {
    /// A gate on the claim published by an elector (`LeaderElector::leadership`).
    pub fn new(leadership: watch::Receiver<Leadership>) -> Self {
        Self { leadership }
    }

    /// Whether this replica holds the claim at `now`: the published value says so *and* its expiry
    /// is still ahead (the value can be read after the claim lapsed, before the elector publishes the
    /// step-down).
    pub fn holds_at(&self, now: Instant) -> bool {
        self.leadership.borrow().is_leader_at(now)
    }

    /// Resolves once holding the claim differs from `held`, as judged when the elector publishes
    /// (a renewal that only moves the expiry does not wake; a late one that restores the claim
    /// does); never once the elector is gone. For a loop that decides its cluster-wide writes again
    /// when this replica starts or stops holding the claim.
    pub async fn changed_from(&mut self, held: bool) {
        let changed = self.leadership.wait_for(|l| l.is_leader_at(Instant::now()) != held).await.is_ok();
        if !changed {
            std::future::pending::<()>().await;
        }
    }

    /// [`ClaimGate::holds_at`] as a result, for a write that is about to go out.
    pub fn check(&self, now: Instant) -> Result<(), ClaimLapsed> {
        if self.holds_at(now) { Ok(()) } else { Err(ClaimLapsed) }
    }
}

/// A write not sent: this replica did not hold the Lease claim when it was about to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not written: the Lease claim had lapsed")]
pub struct ClaimLapsed;

/// One decided write: what to write (`payload`) to which object (`key`), and the version of the
/// object it was decided on (`basis`: the same basis again means the same decision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update<P> {
    pub key: String,
    pub basis: String,
    pub payload: P,
}

/// The basis each object was last written on: an update on the same basis is already written.
/// Private to the writer task, which alone records and forgets.
#[derive(Debug, Default)]
struct Written(HashMap<String, String>);

impl Written {
    /// Whether an update on `basis` still has to be written to `key`.
    fn is_new(&self, key: &str, basis: &str) -> bool {
        self.0.get(key).is_none_or(|b| b != basis)
    }

    /// The write of `key` on `basis` succeeded.
    fn record(&mut self, key: String, basis: String) {
        self.0.insert(key, basis);
    }

    /// Forgets every object but `keys` (the others were deleted).
    fn keep_only(&mut self, keys: &[String]) {
        self.0.retain(|key, _| keys.contains(key));
    }
}

/// What the writer task is sent.
#[derive(Debug)]
enum Message<P> {
    Write(Update<P>),
    /// The keys of the objects that exist now.
    KeepOnly(Vec<String>),
}

/// The sending side of one lease-gated writer task; cheap to clone. The task ends when every
/// sender is gone.
#[derive(Debug)]
pub struct StatusWriter<P> {
    name: &'static str,
    tx: mpsc::Sender<Message<P>>,
}

impl<P> Clone for StatusWriter<P> {
    fn clone(&self) -> Self {
        Self { name: self.name, tx: self.tx.clone() }
    }
}

impl<P: Send + 'static> StatusWriter<P> {
    /// Starts the writer task `name` (the metrics' `writer` label): each update is written with
    /// `write(key, payload)`, one at a time, only while `gate` holds.
    pub fn spawn<F, Fut, E>(name: &'static str, gate: ClaimGate, write: F) -> (Self, JoinHandle<()>)
    where
        F: Fn(String, P) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send,
        E: Display,
    {
        let (tx, mut rx) = mpsc::channel::<Message<P>>(QUEUE);
        let task = tokio::spawn(async move {
            let mut written = Written::default();
            while let Some(message) = rx.recv().await {
                let update = match message {
                    Message::Write(update) => update,
                    Message::KeepOnly(keys) => {
                        written.keep_only(&keys);
                        continue;
                    }
                };
                if !written.is_new(&update.key, &update.basis) {
                    continue;
                }
                if gate.check(Instant::now()).is_err() {
                    metrics::counter!(WRITES_WITHOUT_CLAIM, "writer" => name).increment(1);
                    tracing::debug!(writer = name, key = %update.key, "not written: the Lease claim had lapsed");
                    continue;
                }
                let Update { key, basis, payload } = update;
                match write(key.clone(), payload).await {
                    Ok(()) => {
                        metrics::counter!(WRITES, "writer" => name, "outcome" => "ok").increment(1);
                        written.record(key, basis);
                    }
                    Err(error) => {
                        metrics::counter!(WRITES, "writer" => name, "outcome" => "error").increment(1);
                        tracing::warn!(writer = name, %key, %error, "status write failed; decided again next round");
                    }
                }
            }
        });
        (Self { name, tx }, task)
    }
}

impl<P> StatusWriter<P> {
    /// Queues `update` for the writer; a full queue drops it (counted), since the core decides it
    /// again.
    pub fn send(&self, update: Update<P>) {
        if self.tx.try_send(Message::Write(update)).is_err() {
            metrics::counter!(WRITES_WITHOUT_CLAIM, "writer" => self.name).increment(1);
        }
    }

    /// Tells the writer that only the objects `keys` exist, so it forgets what it wrote to others.
    /// Returns whether it was queued (a full queue drops it; the caller says it again later).
    pub fn keep_only(&self, keys: Vec<String>) -> bool {
        self.tx.try_send(Message::KeepOnly(keys)).is_ok()
    }
}

/// Registers the descriptions of the writer metrics with the installed recorder.
pub fn describe_metrics() {
    metrics::describe_counter!(
        WRITES_WITHOUT_CLAIM,
        "Cluster-wide writes not sent because this replica did not hold the writer's Lease claim (or its queue was full), by writer."
    );
    metrics::describe_counter!(
        WRITES,
        "Cluster-wide writes sent by the lease-gated writer, by writer and outcome."
    );
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    type Shared<T> = std::sync::Arc<std::sync::Mutex<T>>;

    fn leading_until(until: Instant) -> Leadership {
        Leadership { leader: true, holder: Some("a".into()), valid_until: Some(until) }
    }

    #[test]
    fn the_gate_checks_the_claims_expiry_not_only_the_flag() {
        let now = Instant::now();
        let (tx, rx) = watch::channel(leading_until(now + Duration::from_secs(2)));
        let gate = ClaimGate::new(rx);
        assert!(gate.holds_at(now));
        assert_eq!(gate.check(now + Duration::from_secs(2)), Err(ClaimLapsed), "still `leader`, but expired");
        tx.send_replace(Leadership::default());
        assert!(!gate.holds_at(now));
    }

    #[tokio::test]
    async fn a_change_of_holding_wakes_and_a_renewal_does_not() {
        let now = Instant::now();
        let (tx, rx) = watch::channel(Leadership::default());
        let mut gate = ClaimGate::new(rx);
        let wait = Duration::from_millis(50);
        assert!(tokio::time::timeout(wait, gate.changed_from(false)).await.is_err(), "nothing yet");
        tx.send_replace(leading_until(now + Duration::from_secs(60)));
        tokio::time::timeout(wait, gate.changed_from(false)).await.expect("now held");
        tx.send_replace(leading_until(now + Duration::from_secs(61)));
        assert!(tokio::time::timeout(wait, gate.changed_from(true)).await.is_err(), "a renewal");
        drop(tx);
        assert!(tokio::time::timeout(wait, gate.changed_from(true)).await.is_err(), "the elector is gone");
    }

    #[test]
    fn an_update_on_the_basis_already_written_is_not_new() {
        let mut written = Written::default();
        assert!(written.is_new("p", "7"));
        written.record("p".into(), "7".into());
        assert!(!written.is_new("p", "7"));
        assert!(written.is_new("p", "8"), "the object changed since");
        assert!(written.is_new("q", "7"));
    }

    #[test]
    fn what_was_written_to_deleted_objects_is_forgotten() {
        let mut written = Written::default();
        written.record("p".into(), "7".into());
        written.record("q".into(), "3".into());
        written.keep_only(&["q".into()]);
        assert_eq!(written.0.len(), 1, "only q is remembered");
        assert!(written.is_new("p", "7"), "p was deleted: a new p is written");
        assert!(!written.is_new("q", "3"));
        written.keep_only(&[]);
        assert!(written.0.is_empty(), "nothing is remembered");
    }

    /// The writer writes while the claim holds, once per basis, and drops what comes after it lapsed.
    #[tokio::test]
    async fn writes_only_while_the_claim_holds() {
        let (tx, rx) = watch::channel(leading_until(Instant::now() + Duration::from_secs(60)));
        let log: Shared<Vec<(String, u32)>> = Shared::default();
        let sink = log.clone();
        let (writer, task) = StatusWriter::spawn("test", ClaimGate::new(rx), move |key, payload: u32| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push((key, payload));
                Ok::<(), String>(())
            }
        });
        let update =
            |key: &str, basis: &str, payload| Update { key: key.into(), basis: basis.into(), payload };
        writer.send(update("p", "1", 1));
        writer.send(update("p", "1", 1));
        writer.send(update("p", "2", 2));
        // p deleted and made again by the same name: its first version is written again.
        assert!(writer.keep_only(vec![]));
        writer.send(update("p", "1", 4));
        // A claim whose expiry has passed, although the flag still says leader.
        let lapse = tx.clone();
        let writer2 = writer.clone();
        tokio::task::yield_now().await;
        while log.lock().unwrap().len() < 3 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        lapse.send_replace(leading_until(Instant::now()));
        writer2.send(update("q", "1", 3));
        drop((writer, writer2));
        task.await.unwrap();
        assert_eq!(*log.lock().unwrap(), vec![("p".into(), 1), ("p".into(), 2), ("p".into(), 4)]);
    }
}
