//! The reference NIC agent behind `ferrolb-nic-agent`: follows the local announcer
//! ([`crate::watch_local`]), keeps the addresses this node holds on one interface over netlink, and
//! reports each result with `ReportProgrammed`, so that an announcer in `--datapath delegate` sends
//! its gratuitous ARP/NA once the address is really there.
//!
//! The decisions are [`crate::reconcile`]'s; this module turns deltas into its inputs and its plans
//! into netlink calls and reports. Every round is level-triggered (the interface is read again, the
//! whole plan computed), so a lost netlink answer, an address someone deleted or an agent restart
//! are all repaired by the next round.

pub mod metrics;
pub mod netlink;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use ferrolb_proto::v1::ReportOutcome;
use ferrolb_runtime::admin::Readiness;
use tokio::time::Instant;

use crate::client::{Client, Target};
use crate::reconcile::{self, Held, Observed, Reported};
use crate::watch::{Connection, DeltaStream, WatchOptions, watch_local};
use crate::{Delta, reconcile::Plan};
use netlink::{AddressNetlink, NetlinkError};

/// How the agent runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The announcer to follow.
    pub target: Target,
    /// The interface to program the held addresses on.
    pub interface: String,
    /// How long the announcer may be unreachable before the agent removes its addresses.
    pub fence_after: Duration,
    /// How often a round runs without news (repairs drift: an address someone removed).
    pub resync_every: Duration,
    /// How soon a round that failed (netlink, report) is tried again.
    pub retry_after: Duration,
}

impl AgentConfig {
    /// The defaults for `target` and `interface`: fence after 5 s (announcers fail over within a
    /// few seconds), a round every 30 s, retries after 1 s.
    pub fn new(target: Target, interface: impl Into<String>) -> Self {
        Self {
            target,
            interface: interface.into(),
            fence_after: Duration::from_secs(5),
            resync_every: Duration::from_secs(30),
            retry_after: Duration::from_secs(1),
        }
    }
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Netlink could not be opened.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
}

/// What the agent knows between rounds.
struct Agent {
    config: AgentConfig,
    netlink: AddressNetlink,
    reporter: Option<Client>,
    held: Held,
    synced: bool,
    /// Whether the last round removed everything because the announcer was unreachable too long.
    fenced: bool,
    reported: Reported,
    readiness: Readiness,
}

/// Runs the agent until `shutdown` completes. Addresses stay on the interface at shutdown: the node
/// still holds them, and the next start reconciles.
pub async fn run(
    config: AgentConfig,
    readiness: Readiness,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let netlink = AddressNetlink::new()?;
    let mut deltas = watch_local(config.target.clone(), WatchOptions::default());
    let mut connection = deltas.connection();
    let mut agent = Agent {
        config,
        netlink,
        reporter: None,
        held: Held::new(),
        synced: false,
        fenced: false,
        reported: Reported::new(),
        readiness,
    };
    tokio::pin!(shutdown);
    let mut next_round = Instant::now() + agent.config.resync_every;
    loop {
        let fence_at = connection.borrow().down_since().map(|since| since + agent.config.fence_after);
        let fence_at = fence_at.filter(|at| *at > Instant::now());
        tokio::select! {
            delta = deltas.next() => match delta {
                Some(delta) => agent.take(delta, &mut deltas),
                None => return Ok(()),
            },
            changed = connection.changed() => {
                if changed.is_err() { return Ok(()) }
                let connected = matches!(&*connection.borrow_and_update(), Connection::Connected { .. });
                ::metrics::gauge!(metrics::CONNECTED).set(if connected { 1.0 } else { 0.0 });
            }
            () = tokio::time::sleep_until(next_round) => {}
            () = sleep_until(fence_at) => {}
            () = &mut shutdown => return Ok(()),
        }
        let down_for = connection.borrow().down_since().map(|since| since.elapsed());
        let clean = agent.round(down_for).await;
        let wait = if clean { agent.config.resync_every } else { agent.config.retry_after };
        next_round = Instant::now() + wait;
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Agent {
    /// Takes `delta` and every delta already waiting, so that a burst makes one round.
    fn take(&mut self, delta: Delta, deltas: &mut DeltaStream) {
        let mut next = Some(delta);
        while let Some(delta) = next {
            self.take_one(delta);
            next = deltas.try_next();
        }
        ::metrics::gauge!(metrics::ADDRESSES_HELD).set(self.held.len() as f64);
    }

    fn take_one(&mut self, delta: Delta) {
        match delta {
            Delta::Acquired(current) | Delta::Changed { current, .. } => {
                if !current.interfaces.contains(&self.config.interface) {
                    tracing::warn!(ip = %current.ip, interface = %self.config.interface, announced_on = ?current.interfaces,
                        "the announcer does not announce this address on the agent's interface; its gratuitous packets wait for a report on theirs");
                }
                self.held.insert(current.ip, current.revision);
            }
            Delta::Released(last) => {
                self.held.remove(&last.ip);
                self.reported.remove(&last.ip);
            }
            Delta::Resync { reason, held, .. } => {
                tracing::info!(reason = reason.as_str(), held = held.len(), "full state from the announcer");
                ::metrics::counter!(metrics::RESYNCS, "reason" => reason.as_str()).increment(1);
                self.held = held.iter().map(|a| (a.ip, a.revision)).collect();
                self.synced = true;
                // A restarted announcer forgot every report; a compacted one may have missed some.
                self.reported.clear();
            }
        }
    }

    /// One reconcile round; returns whether everything succeeded.
    async fn round(&mut self, down_for: Option<Duration>) -> bool {
        let Some(desired) = reconcile::desired(&self.held, self.synced, down_for, self.config.fence_after)
        else {
            return true;
        };
        let fenced = down_for.is_some_and(|down| down >= self.config.fence_after);
        if fenced && !self.fenced {
            tracing::warn!(down_for = ?down_for, fence_after = ?self.config.fence_after,
                "the announcer is unreachable: removing this agent's addresses until it answers again");
            ::metrics::counter!(metrics::FENCES).increment(1);
            // The announcer keeps the ok reports it took; once it answers again, the re-added
            // addresses are reported afresh. The held set stays: the watch resumes from it.
            self.reported.clear();
        }
        self.fenced = fenced;
        let started = std::time::Instant::now();
        let clean = self.program(&desired, down_for.is_none()).await;
        ::metrics::histogram!(metrics::RECONCILE_SECONDS).record(started.elapsed().as_secs_f64());
        if clean {
            self.readiness.set_ready(true);
        }
        clean
    }

    async fn program(&mut self, desired: &Held, connected: bool) -> bool {
        let interface = self.config.interface.clone();
        let mut errors = BTreeMap::new();
        let (observed, after) = match self.netlink.link_index(&interface).await {
            Ok(Some(index)) => match self.observe(index).await {
                Ok(observed) => {
                    let plan = reconcile::plan(desired, &observed);
                    let failed = self.carry_out(index, &plan, &mut errors).await;
                    let after = reconcile::apply(&observed, &plan, &failed);
                    (Some(observed), after)
                }
                Err(error) => {
                    tracing::warn!(%interface, %error, "cannot read the interface's addresses");
                    for ip in desired.keys() {
                        errors.insert(*ip, error.to_string());
                    }
                    (None, Observed::default())
                }
            },
            Ok(None) => {
                for ip in desired.keys() {
                    errors.insert(*ip, format!("interface {interface} does not exist"));
                }
                (None, Observed::default())
            }
            Err(error) => {
                for ip in desired.keys() {
                    errors.insert(*ip, error.to_string());
                }
                (None, Observed::default())
            }
        };
        if observed.is_some() {
            ::metrics::gauge!(metrics::ADDRESSES_PROGRAMMED).set(after.owned.len() as f64);
        }
        let reported = if connected { self.report(desired, &after, &errors).await } else { true };
        errors.is_empty() && observed.is_some() && reported
    }

    async fn observe(&self, index: u32) -> Result<Observed, NetlinkError> {
        let mut observed = Observed::default();
        for address in self.netlink.addresses(index).await? {
            if address.owned {
                observed.owned.insert(address.ip);
            } else {
                observed.foreign.insert(address.ip);
            }
        }
        Ok(observed)
    }

    /// Removes, then adds; returns the addresses whose operation failed, with `errors` filled in.
    async fn carry_out(
        &self,
        index: u32,
        plan: &Plan,
        errors: &mut BTreeMap<IpAddr, String>,
    ) -> BTreeSet<IpAddr> {
        let interface = &self.config.interface;
        for ip in &plan.not_owned {
            tracing::debug!(%ip, %interface, "held address already on the interface, not added by the agent: left alone");
        }
        let mut failed = BTreeSet::new();
        for &ip in &plan.remove {
            let result = self.netlink.remove_owned(index, ip).await;
            count("remove", &result);
            match result {
                Ok(()) => tracing::info!(%ip, %interface, "removed an address this node no longer holds"),
                Err(error) => {
                    tracing::warn!(%ip, %interface, %error, "cannot remove an address");
                    failed.insert(ip);
                }
            }
        }
        for &ip in &plan.add {
            let result = self.netlink.add_owned(index, ip).await;
            count("add", &result);
            match result {
                Ok(()) => tracing::info!(%ip, %interface, "programmed an address this node holds"),
                Err(error) => {
                    tracing::warn!(%ip, %interface, %error, "cannot program an address");
                    errors.insert(ip, error.to_string());
                    failed.insert(ip);
                }
            }
        }
        failed
    }

    /// Sends the reports that are due; returns false when one could not be sent.
    async fn report(&mut self, desired: &Held, after: &Observed, errors: &BTreeMap<IpAddr, String>) -> bool {
        let due = reconcile::reports_due(desired, after, errors, &self.reported);
        if due.is_empty() {
            return true;
        }
        let client = match &mut self.reporter {
            Some(client) => client,
            None => match Client::connect(&self.config.target).await {
                Ok(client) => self.reporter.insert(client),
                Err(error) => {
                    tracing::warn!(%error, "cannot connect to report programming results");
                    ::metrics::counter!(metrics::REPORTS, "outcome" => "error").increment(due.len() as u64);
                    return false;
                }
            },
        };
        for report in due {
            let result = client
                .report_programmed(
                    report.ip,
                    &self.config.interface,
                    report.revision,
                    report.error.as_deref(),
                )
                .await;
            let outcome = match result {
                Ok(outcome) => outcome,
                Err(error) => {
                    tracing::warn!(ip = %report.ip, %error, "cannot report a programming result");
                    ::metrics::counter!(metrics::REPORTS, "outcome" => "error").increment(1);
                    self.reporter = None;
                    return false;
                }
            };
            let label = match outcome {
                ReportOutcome::Accepted => "accepted",
                // The watch brings the newer revision, and with it the next report.
                ReportOutcome::Stale => "stale",
                ReportOutcome::NotHeld => "not_held",
                ReportOutcome::Unspecified => "unspecified",
            };
            ::metrics::counter!(metrics::REPORTS, "outcome" => label).increment(1);
            tracing::debug!(ip = %report.ip, revision = report.revision, ok = report.error.is_none(), outcome = label, "reported");
            self.reported.insert(report.ip, (report.revision, report.error.is_none()));
        }
        true
    }
}

fn count(op: &'static str, result: &Result<(), NetlinkError>) {
    let result = if result.is_ok() { "ok" } else { "error" };
    ::metrics::counter!(metrics::NETLINK_OPERATIONS, "op" => op, "result" => result).increment(1);
}
