//! Delegate mode's side of the loop: the pairs this node answers for go to the CNI agent's tracker,
//! its programming reports come back, and readiness says whether an agent follows.

use std::net::IpAddr;
use std::time::Instant;

use ferrolb_api::names::events as reasons;

use super::Announcer;
use crate::datapath::Netlink;
use crate::delegate as delegation;
use crate::events::{Note, Severity};
use crate::policy::{AddressKey, ServiceKey};

impl<N: Netlink + 'static> Announcer<N> {
    /// Delegate mode: the pairs this node answers for, as the table shows them to the agent, go to
    /// the tracker; overdue reports become warnings; the table shows each address's state. Returns
    /// when the next report falls overdue.
    pub(super) fn sync_delegate(&mut self, now: Instant) -> Option<Instant> {
        let tracker = self.delegate.as_mut()?;
        let held: Vec<(delegation::Pair, u64)> = {
            let table = self.table.read();
            let filter = ferrolb_proto::Filter { only_local: true, ..Default::default() };
            table
                .snapshot(&filter)
                .entries
                .iter()
                .flat_map(|entry| {
                    let ip = entry.announcement.ip;
                    entry.announcement.interfaces.iter().map(move |i| ((ip, i.clone()), entry.revision))
                })
                .collect()
        };
        tracker.set_held(held, now);
        let actions = tracker.expire(now);
        let next = tracker.next_deadline();
        self.delegate_actions(actions, now);
        next
    }

    /// A programming report the table accepted.
    pub(super) fn agent_report(&mut self, report: &ferrolb_proto::ProgrammingReport) {
        let Some(tracker) = self.delegate.as_mut() else { return };
        let actions =
            tracker.report(report.ip, &report.interface, report.ok, &report.error_message, report.revision);
        self.delegate_actions(actions, Instant::now());
    }

    /// Carries out the tracker's decisions, then shows its states in the table and the gauge.
    pub(super) fn delegate_actions(&mut self, actions: Vec<delegation::Action>, now: Instant) {
        for action in actions {
            match action {
                delegation::Action::Announce { ip, interface } => {
                    self.driver.agent_programmed(ip, &interface)
                }
                delegation::Action::Warn { ip, interface, failure } => {
                    metrics::counter!(crate::metrics::DELEGATE_FAILURES, "reason" => failure.metric_label())
                        .increment(1);
                    let message = failure.message(ip, &interface);
                    tracing::warn!(%ip, %interface, "{message}");
                    let services = self
                        .table
                        .read()
                        .get(ip)
                        .map(|e| e.announcement.services.clone())
                        .unwrap_or_default();
                    for service in services {
                        let note = Note {
                            key: AddressKey::new(ServiceKey::new(&service.namespace, &service.name), ip),
                            severity: Severity::Warning,
                            reason: reasons::PROGRAMMING_FAILED,
                            message: message.clone(),
                        };
                        if self.core.events_mut().admit(&note, now) {
                            self.send_event(&note);
                        }
                    }
                }
            }
        }
        let Some(tracker) = &self.delegate else { return };
        let states = tracker.programming();
        metrics::gauge!(crate::metrics::DELEGATE_UNPROGRAMMED).set(tracker.unprogrammed() as f64);
        self.table.update(|table| {
            let local: Vec<IpAddr> = table
                .snapshot(&ferrolb_proto::Filter { only_local: true, ..Default::default() })
                .entries
                .iter()
                .map(|e| e.announcement.ip)
                .collect();
            for ip in local {
                table.set_programming(ip, states.get(&ip).cloned());
            }
        });
    }

    /// The count of WatchAnnouncements streams changed.
    pub(super) fn watchers_changed(&mut self, open: usize) {
        metrics::gauge!(crate::metrics::GRPC_WATCHERS).set(open as f64);
        if self.delegate.is_some() {
            let detail = delegation::agent_detail(open);
            if detail.is_some() {
                tracing::warn!("delegate mode: no CNI agent follows the announcement table");
            } else {
                tracing::info!(streams = open, "delegate mode: a CNI agent follows the announcement table");
            }
            self.readiness.set_detail(detail);
        }
    }
}
