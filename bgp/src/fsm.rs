//! The session state machine of an announce-only speaker (RFC 4271 §8), without I/O.
//!
//! [`Session::handle`] takes an [`Event`] and the current time and returns the [`Action`]s the
//! adapter must carry out, in order: open or close the TCP connection, send a message, arm or
//! disarm a timer, report the session up or down. Timers are deadlines the session keeps itself;
//! the adapter reports their expiry, and an expiry that is stale (the timer was re-armed or
//! stopped meanwhile) is ignored, so a race between a timer and a message cannot cause a false
//! hold-timer expiry.
//!
//! # Differences from the full RFC 4271 machine, and why
//! - **We only connect out** (no listening socket, so no connection collision, §6.8): every node
//!   peers with a router that it is configured for, and routers are configured with the nodes as
//!   neighbours, so one side dialing is enough. A router that dials us gets a reset and keeps
//!   trying; FRR and BIRD both still accept our connection.
//! - **Nothing is imported.** UPDATEs from the peer only restart the hold timer; a malformed one
//!   is dropped without ending the session (RFC 7606's treat-as-withdraw, applied to routes we
//!   never use), since tearing the session down would withdraw our routes for nothing.
//! - **4-octet AS numbers are required** (RFC 6793): a peer without the capability is refused with
//!   Unsupported Capability. Every router this project targets has it, and it keeps AS_PATH in one
//!   format.
//! - **Connect-retry backs off after session failures only**: a connect that fails or gets no
//!   answer is tried again after the configured connect-retry time, always (RFC 4271's fixed
//!   timer): it costs the peer one SYN, and the speaker only connects out, so a longer wait would
//!   be added to every recovery after a link or router outage. A connection that ends before or
//!   after Established (refused OPEN, NOTIFICATION, hold timer, closed by the peer) doubles the
//!   delay before the next attempt, up to `connect_retry_max`, so a peer that accepts and rejects
//!   us is not made to process an OPEN every few seconds; reaching Established resets it. This
//!   replaces RFC 4271's optional peer-oscillation damping.
//! - **Route refresh is tolerated, not advertised**: a ROUTE-REFRESH for a negotiated family asks
//!   the owner to send its Adj-RIB-Out again ([`Action::RouteRefresh`]).
//! - **BFD down tears the session down at once** (RFC 5882 §4.3), with a Cease / BFD Down
//!   NOTIFICATION (RFC 9384) that the router may or may not still receive.
//!
//! A planned stop ([`Event::Stop`]) sends Cease / Administrative Shutdown with a shutdown
//! communication (RFC 9003) and does not reconnect until [`Event::Start`]; the owner withdraws
//! its routes first ([`crate::rib::AdjRibOut::withdraw_all`]).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::codec::{
    Capability, DecodeError, Family, GracefulRestart, GracefulRestartFamily, Message, Notification, Open,
    error_code, subcode,
};

/// The hold time used in OpenSent, before the peer's OPEN has been negotiated (RFC 4271 §8.2.2
/// suggests 4 minutes).
pub const OPEN_SENT_HOLD_TIME: Duration = Duration::from_secs(240);

/// One peer's session settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// Our AS.
    pub local_as: u32,
    /// The AS the peer must have.
    pub peer_as: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Proposed hold time (0, or 3 s or more): default 9 s.
    pub hold_time: Duration,
    /// Keepalive interval, at most a third of the negotiated hold time: default 3 s.
    pub keepalive: Duration,
    /// First connect-retry delay: default 5 s.
    pub connect_retry: Duration,
    /// Longest connect-retry delay after repeated failures: default 60 s.
    pub connect_retry_max: Duration,
    /// Families we announce.
    pub families: Vec<Family>,
    /// Graceful-restart time in seconds to advertise; `None` (the default) leaves graceful
    /// restart off, so a router drops a dead node's routes at once.
    pub graceful_restart: Option<u16>,
}

impl PeerConfig {
    /// Settings with the defaults: hold 9 s, keepalive 3 s, connect retry 5 s (up to 60 s),
    /// IPv4 and IPv6 unicast, no graceful restart.
    pub fn new(local_as: u32, peer_as: u32, router_id: Ipv4Addr) -> PeerConfig {
        PeerConfig {
            local_as,
            peer_as,
            router_id,
            hold_time: Duration::from_secs(9),
            keepalive: Duration::from_secs(3),
            connect_retry: Duration::from_secs(5),
            connect_retry_max: Duration::from_secs(60),
            families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            graceful_restart: None,
        }
    }

    /// Whether the peer is in another AS.
    pub fn is_ebgp(&self) -> bool {
        self.local_as != self.peer_as
    }

    /// Checks the settings a session cannot run with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let hold = self.hold_time.as_secs();
        if hold != 0 && !(3..=65535).contains(&hold) {
            return Err(ConfigError::HoldTime(self.hold_time));
        }
        if hold != 0 && (self.keepalive.is_zero() || self.keepalive > self.hold_time / 3) {
            return Err(ConfigError::Keepalive { keepalive: self.keepalive, hold: self.hold_time });
        }
        if self.connect_retry.is_zero() || self.connect_retry_max < self.connect_retry {
            return Err(ConfigError::ConnectRetry { first: self.connect_retry, max: self.connect_retry_max });
        }
        if self.families.is_empty() {
            return Err(ConfigError::NoFamily);
        }
        if self.local_as == 0 || self.peer_as == 0 {
            return Err(ConfigError::ZeroAs);
        }
        if self.router_id.is_unspecified() {
            return Err(ConfigError::RouterId);
        }
        if self.graceful_restart.is_some_and(|t| t > 4095) {
            return Err(ConfigError::RestartTime);
        }
        Ok(())
    }
}

/// A setting a session cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// Hold time neither 0 nor 3..=65535 s.
    #[error("hold time {0:?}: must be 0 or from 3 s to 65535 s")]
    HoldTime(Duration),
    /// Keepalive zero or more than a third of the hold time.
    #[error("keepalive {keepalive:?}: must be more than 0 and at most a third of the hold time {hold:?}")]
    Keepalive {
        /// Keepalive interval.
        keepalive: Duration,
        /// Hold time.
        hold: Duration,
    },
    /// Connect retry zero, or its maximum below it.
    #[error("connect retry {first:?} up to {max:?}: must be more than 0, and the maximum at least the first")]
    ConnectRetry {
        /// First delay.
        first: Duration,
        /// Longest delay.
        max: Duration,
    },
    /// No address family.
    #[error("no address family to announce")]
    NoFamily,
    /// AS 0 (RFC 7607).
    #[error("AS 0 cannot be used (RFC 7607)")]
    ZeroAs,
    /// Router ID 0.0.0.0.
    #[error("router ID 0.0.0.0 is not valid")]
    RouterId,
    /// Restart time over 12 bits.
    #[error("graceful-restart time must be at most 4095 s")]
    RestartTime,
}

/// Session states (RFC 4271 §8.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Stopped, or waiting to retry after a session failed.
    Idle,
    /// A TCP connection is being opened.
    Connect,
    /// Waiting to retry after a TCP connection failed.
    Active,
    /// Our OPEN is sent; waiting for the peer's.
    OpenSent,
    /// OPENs exchanged; waiting for the peer's KEEPALIVE.
    OpenConfirm,
    /// Routes can be sent.
    Established,
}

/// The session's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Connect attempt timeout, and the delay before the next attempt.
    ConnectRetry,
    /// No message from the peer for the hold time ends the session.
    Hold,
    /// Time to send a KEEPALIVE.
    Keepalive,
}

impl Timer {
    const ALL: [Timer; 3] = [Timer::ConnectRetry, Timer::Hold, Timer::Keepalive];

    fn index(self) -> usize {
        match self {
            Timer::ConnectRetry => 0,
            Timer::Hold => 1,
            Timer::Keepalive => 2,
        }
    }
}

/// What happens to a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Start (or restart) the session.
    Start,
    /// Planned stop: Cease / Administrative Shutdown with this shutdown communication.
    Stop(String),
    /// The TCP connection asked for by [`Action::Connect`] is up.
    TcpConnected,
    /// The TCP connection could not be opened.
    TcpFailed,
    /// The peer closed the connection, or it broke.
    TcpClosed,
    /// A message arrived.
    Received(Message),
    /// Bytes arrived that are not a valid message.
    Malformed(DecodeError),
    /// A timer's deadline passed.
    TimerExpired(Timer),
    /// The peer's BFD session went down.
    BfdDown,
}

/// What the adapter must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to the peer.
    Connect,
    /// Send a message on the connection.
    Send(Message),
    /// Close the connection (after sending what came before).
    Close,
    /// Arm a timer for this deadline (replacing any earlier one).
    StartTimer(Timer, Instant),
    /// Disarm a timer.
    StopTimer(Timer),
    /// The session is Established: send the Adj-RIB-Out from scratch.
    SessionUp(Negotiated),
    /// The Established session ended: the peer has dropped our routes.
    SessionDown(DownReason),
    /// The peer asked for our routes of this family again.
    RouteRefresh(Family),
}

/// What both sides agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Hold time (zero: no hold timer and no keepalives).
    pub hold_time: Duration,
    /// Keepalive interval.
    pub keepalive: Duration,
    /// Families both sides announced.
    pub families: Vec<Family>,
    /// The peer's BGP identifier.
    pub peer_router_id: Ipv4Addr,
    /// Whether the peer advertised route refresh.
    pub route_refresh: bool,
    /// Whether both sides advertised graceful restart.
    pub graceful_restart: bool,
}

/// Why an Established session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// Nothing from the peer for the hold time.
    HoldTimerExpired,
    /// The peer sent this NOTIFICATION.
    NotificationReceived(Notification),
    /// We sent this NOTIFICATION (an error in what the peer sent).
    NotificationSent(Notification),
    /// The connection closed without a NOTIFICATION.
    TcpClosed,
    /// BFD declared the peer down.
    BfdDown,
    /// Planned stop.
    Stopped,
}

/// One peer's session (see the module documentation).
#[derive(Debug)]
pub struct Session {
    config: PeerConfig,
    state: State,
    started: bool,
    timers: [Option<Instant>; 3],
    negotiated: Option<Negotiated>,
    retry_delay: Duration,
}

impl Session {
    /// A stopped session; [`Event::Start`] starts it.
    pub fn new(config: PeerConfig) -> Session {
        let retry_delay = config.connect_retry;
        Session {
            config,
            state: State::Idle,
            started: false,
            timers: [None; 3],
            negotiated: None,
            retry_delay,
        }
    }

    /// The settings.
    pub fn config(&self) -> &PeerConfig {
        &self.config
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// What was negotiated, from OpenConfirm until the session ends.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// A timer's deadline, if armed.
    pub fn deadline(&self, timer: Timer) -> Option<Instant> {
        self.timers[timer.index()]
    }

    /// The earliest armed deadline and its timer: when the adapter must next wake up.
    pub fn next_deadline(&self) -> Option<(Timer, Instant)> {
        Timer::ALL.iter().filter_map(|t| self.deadline(*t).map(|d| (*t, d))).min_by_key(|(_, d)| *d)
    }

    /// Handles one event at `now`.
    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Start => self.start(now, &mut out),
            Event::Stop(message) => self.stop(&message, &mut out),
            Event::TcpConnected => self.tcp_connected(now, &mut out),
            Event::TcpFailed if self.state == State::Connect => {
                self.stop_timer(Timer::ConnectRetry, &mut out);
                self.state = State::Active;
                self.schedule_connect_retry(now, &mut out);
            }
            Event::TcpClosed if self.is_connected() => self.fail(now, None, DownReason::TcpClosed, &mut out),
            Event::Received(msg) if self.is_connected() => self.received(now, msg, &mut out),
            Event::Malformed(err) if self.is_connected() => {
                if self.state == State::Established && err.is_update_body() {
                    tracing::debug!(error = %err, "dropping a malformed UPDATE: nothing is imported");
                    self.restart_hold(now, &mut out);
                } else {
                    let n = err.notification();
                    self.fail(now, Some(n.clone()), DownReason::NotificationSent(n), &mut out);
                }
            }
            Event::TimerExpired(timer) => {
                let due = self.deadline(timer).is_some_and(|d| now >= d);
                if due {
                    self.timers[timer.index()] = None;
                    self.timer_expired(now, timer, &mut out);
                }
            }
            Event::BfdDown if self.is_connected() => {
                let n = Notification::new(error_code::CEASE, subcode::BFD_DOWN);
                self.fail(now, Some(n), DownReason::BfdDown, &mut out);
            }
            // Transport and peer events that do not apply to the current state: a connection
            // the adapter is already tearing down.
            Event::TcpFailed
            | Event::TcpClosed
            | Event::Received(_)
            | Event::Malformed(_)
            | Event::BfdDown => {}
        }
        out
    }

    fn is_connected(&self) -> bool {
        matches!(self.state, State::OpenSent | State::OpenConfirm | State::Established)
    }

    fn start(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.started = true;
        if matches!(self.state, State::Idle | State::Active) {
            self.connect(now, out);
        }
    }

    fn connect(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.state = State::Connect;
        out.push(Action::Connect);
        // The connect attempt's timeout.
        self.start_timer(Timer::ConnectRetry, now + self.config.connect_retry, out);
    }

    fn stop(&mut self, message: &str, out: &mut Vec<Action>) {
        self.started = false;
        match self.state {
            State::Idle | State::Active => {}
            State::Connect => out.push(Action::Close),
            State::OpenSent | State::OpenConfirm | State::Established => {
                out.push(Action::Send(Message::Notification(Notification::administrative_shutdown(message))));
                out.push(Action::Close);
                if self.state == State::Established {
                    out.push(Action::SessionDown(DownReason::Stopped));
                }
            }
        }
        self.state = State::Idle;
        self.negotiated = None;
        for t in Timer::ALL {
            self.stop_timer(t, out);
        }
    }

    fn tcp_connected(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.state != State::Connect {
            // A late connection the adapter should not have reported: drop it.
            return;
        }
        self.stop_timer(Timer::ConnectRetry, out);
        out.push(Action::Send(Message::Open(self.open())));
        self.start_timer(Timer::Hold, now + OPEN_SENT_HOLD_TIME, out);
        self.state = State::OpenSent;
    }

    /// Our OPEN.
    pub fn open(&self) -> Open {
        let c = &self.config;
        let mut caps: Vec<Capability> = c.families.iter().map(|f| Capability::Multiprotocol(*f)).collect();
        if let Some(restart_time) = c.graceful_restart {
            // Forwarding state preserved (0x80): the node's addresses stay in place while the
            // announcer restarts, so the router may keep forwarding to it (RFC 4724 §4.2).
            caps.push(Capability::GracefulRestart(GracefulRestart {
                flags: 0,
                restart_time,
                families: c
                    .families
                    .iter()
                    .map(|f| GracefulRestartFamily { family: *f, flags: 0x80 })
                    .collect(),
            }));
        }
        let hold = u16::try_from(c.hold_time.as_secs()).unwrap_or(u16::MAX);
        Open::new(c.local_as, hold, c.router_id, caps)
    }

    fn received(&mut self, now: Instant, msg: Message, out: &mut Vec<Action>) {
        if let Message::Notification(n) = msg {
            tracing::info!(code = n.code, subcode = n.subcode, "peer sent a NOTIFICATION");
            self.fail(now, None, DownReason::NotificationReceived(n), out);
            return;
        }
        match (self.state, msg) {
            (State::OpenSent, Message::Open(open)) => match self.check_open(&open) {
                Ok(negotiated) => {
                    out.push(Action::Send(Message::Keepalive));
                    self.negotiated = Some(negotiated);
                    self.state = State::OpenConfirm;
                    self.restart_hold(now, out);
                    self.restart_keepalive(now, out);
                }
                Err(n) => self.fail(now, Some(n.clone()), DownReason::NotificationSent(n), out),
            },
            (State::OpenConfirm, Message::Keepalive) => {
                self.state = State::Established;
                self.retry_delay = self.config.connect_retry;
                self.restart_hold(now, out);
                if let Some(n) = &self.negotiated {
                    out.push(Action::SessionUp(n.clone()));
                }
            }
            (State::Established, Message::Keepalive | Message::Update(_)) => self.restart_hold(now, out),
            (State::Established, Message::RouteRefresh(rr)) => {
                self.restart_hold(now, out);
                let negotiated = self.negotiated.as_ref().is_some_and(|n| n.families.contains(&rr.family));
                // Subtypes 1 and 2 only mark an enhanced refresh's borders (RFC 7313).
                if negotiated && rr.subtype == 0 {
                    out.push(Action::RouteRefresh(rr.family));
                }
            }
            (state, _) => {
                let sub = match state {
                    State::OpenSent => subcode::FSM_IN_OPEN_SENT,
                    State::OpenConfirm => subcode::FSM_IN_OPEN_CONFIRM,
                    _ => subcode::FSM_IN_ESTABLISHED,
                };
                let n = Notification::new(error_code::FSM, sub);
                self.fail(now, Some(n.clone()), DownReason::NotificationSent(n), out);
            }
        }
    }

    /// Judges the peer's OPEN (RFC 4271 §6.2, RFC 5492, RFC 6286, RFC 6793).
    fn check_open(&self, open: &Open) -> Result<Negotiated, Notification> {
        let c = &self.config;
        let Some(peer_as) = open.four_octet_as() else {
            let mut data = Vec::new();
            let _ = Capability::FourOctetAs(c.local_as).encode_into(&mut data);
            return Err(Notification {
                code: error_code::OPEN,
                subcode: subcode::UNSUPPORTED_CAPABILITY,
                data,
            });
        };
        if peer_as != c.peer_as {
            return Err(Notification::new(error_code::OPEN, subcode::BAD_PEER_AS));
        }
        if matches!(open.hold_time, 1 | 2) {
            return Err(Notification::new(error_code::OPEN, subcode::UNACCEPTABLE_HOLD_TIME));
        }
        // The same identifier on both ends is only an error inside one AS (RFC 6286 §2.2).
        if open.router_id.is_unspecified() || (!c.is_ebgp() && open.router_id == c.router_id) {
            return Err(Notification::new(error_code::OPEN, subcode::BAD_BGP_IDENTIFIER));
        }
        let mut peer_families = open.families();
        if peer_families.is_empty() {
            peer_families.push(Family::IPV4_UNICAST);
        }
        let families: Vec<Family> =
            c.families.iter().filter(|f| peer_families.contains(f)).copied().collect();
        if families.is_empty() {
            let mut data = Vec::new();
            for f in &c.families {
                let _ = Capability::Multiprotocol(*f).encode_into(&mut data);
            }
            return Err(Notification {
                code: error_code::OPEN,
                subcode: subcode::UNSUPPORTED_CAPABILITY,
                data,
            });
        }
        let hold_time = c.hold_time.min(Duration::from_secs(u64::from(open.hold_time)));
        let keepalive = if hold_time.is_zero() { Duration::ZERO } else { c.keepalive.min(hold_time / 3) };
        Ok(Negotiated {
            hold_time,
            keepalive,
            families,
            peer_router_id: open.router_id,
            route_refresh: open.capabilities.contains(&Capability::RouteRefresh),
            graceful_restart: c.graceful_restart.is_some()
                && open.capabilities.iter().any(|cap| matches!(cap, Capability::GracefulRestart(_))),
        })
    }

    fn timer_expired(&mut self, now: Instant, timer: Timer, out: &mut Vec<Action>) {
        match (timer, self.state) {
            (Timer::ConnectRetry, State::Connect) => {
                // The attempt took too long: give it up and wait before the next.
                out.push(Action::Close);
                self.state = State::Active;
                self.schedule_connect_retry(now, out);
            }
            (Timer::ConnectRetry, State::Idle | State::Active) if self.started => self.connect(now, out),
            (Timer::Hold, State::OpenSent | State::OpenConfirm | State::Established) => {
                let n = Notification::new(error_code::HOLD_TIMER_EXPIRED, 0);
                self.fail(now, Some(n), DownReason::HoldTimerExpired, out);
            }
            (Timer::Keepalive, State::OpenConfirm | State::Established) => {
                out.push(Action::Send(Message::Keepalive));
                self.restart_keepalive(now, out);
            }
            _ => {}
        }
    }

    /// Ends the connection (with `notification` first, if any) and waits to retry.
    fn fail(
        &mut self,
        now: Instant,
        notification: Option<Notification>,
        reason: DownReason,
        out: &mut Vec<Action>,
    ) {
        if let Some(n) = notification {
            out.push(Action::Send(Message::Notification(n)));
        }
        out.push(Action::Close);
        if self.state == State::Established {
            out.push(Action::SessionDown(reason));
        }
        self.negotiated = None;
        self.state = State::Idle;
        self.stop_timer(Timer::Hold, out);
        self.stop_timer(Timer::Keepalive, out);
        self.schedule_retry(now, out);
    }

    /// Arms connect-retry after a connect that failed: the configured time, no back-off.
    fn schedule_connect_retry(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.arm_retry(now, self.config.connect_retry, out);
    }

    /// Arms connect-retry after a session failure with the current back-off delay, then doubles it.
    fn schedule_retry(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.arm_retry(now, self.retry_delay, out) {
            self.retry_delay = (self.retry_delay * 2).min(self.config.connect_retry_max);
        }
    }

    /// Arms connect-retry `delay` from now while started (a stopped session never reconnects);
    /// whether it did.
    fn arm_retry(&mut self, now: Instant, delay: Duration, out: &mut Vec<Action>) -> bool {
        if !self.started {
            self.stop_timer(Timer::ConnectRetry, out);
            return false;
        }
        self.start_timer(Timer::ConnectRetry, now + delay, out);
        true
    }

    fn restart_hold(&mut self, now: Instant, out: &mut Vec<Action>) {
        let hold = self.negotiated.as_ref().map_or(OPEN_SENT_HOLD_TIME, |n| n.hold_time);
        if hold.is_zero() {
            self.stop_timer(Timer::Hold, out);
        } else {
            self.start_timer(Timer::Hold, now + hold, out);
        }
    }

    fn restart_keepalive(&mut self, now: Instant, out: &mut Vec<Action>) {
        match self.negotiated.as_ref().map(|n| n.keepalive) {
            Some(k) if !k.is_zero() => self.start_timer(Timer::Keepalive, now + k, out),
            _ => self.stop_timer(Timer::Keepalive, out),
        }
    }

    fn start_timer(&mut self, timer: Timer, deadline: Instant, out: &mut Vec<Action>) {
        self.timers[timer.index()] = Some(deadline);
        out.push(Action::StartTimer(timer, deadline));
    }

    fn stop_timer(&mut self, timer: Timer, out: &mut Vec<Action>) {
        if self.timers[timer.index()].take().is_some() {
            out.push(Action::StopTimer(timer));
        }
    }
}

#[cfg(test)]
mod tests;
