//! Single-hop asynchronous BFD (RFC 5880, RFC 5881), without I/O: the control packet codec and
//! one session's state machine. No BFD crate exists, so this is the project's own.
//!
//! One session runs per BGP peer that asks for BFD. When it goes from Up to Down, the owner sends
//! [`crate::fsm::Event::BfdDown`] to that peer's BGP session, which ends it at once: the router
//! drops our routes in the detection time (3 × 100 ms by default) instead of the hold time.
//!
//! # What is implemented
//! - Asynchronous mode, active role (we send from the start), no echo, no demand mode, no
//!   authentication: a packet with the A bit is discarded (RFC 5880 §6.8.6, since we use none).
//!   Single-hop BFD is protected by TTL 255 instead (RFC 5881 §5), which the adapter checks.
//! - The state machine of RFC 5880 §6.2 and the reception rules of §6.8.6, including AdminDown.
//! - Timers per §6.8.2–§6.8.4: while not Up we send at most once a second; once Up, at the
//!   configured rate, announced with a Poll Sequence (§6.5); the transmit interval is the larger
//!   of ours and the peer's required receive interval, jittered down by up to 25% (10–25% with a
//!   detect multiplier of 1, §6.8.7); the detection time is the peer's detect multiplier times the
//!   larger of our required receive interval and the peer's desired transmit interval.
//! - A Poll from the peer is answered at once with Final (§6.5).
//!
//! Time is a parameter: [`BfdSession::on_packet`] and [`BfdSession::poll`] take `now`, and
//! [`BfdSession::next_deadline`] says when to call `poll` next. Jitter comes from a small
//! generator seeded by the local discriminator, so a run is reproducible.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use thiserror::Error;

/// BFD protocol version (RFC 5880 §4.1).
pub const VERSION: u8 = 1;
/// Size of a control packet without authentication.
pub const CONTROL_LEN: usize = 24;
/// UDP destination port of single-hop control packets (RFC 5881 §4).
pub const CONTROL_PORT: u16 = 3784;
/// The slowest we may send while not Up is no faster than once a second (RFC 5880 §6.8.3).
pub const SLOW_TX: Duration = Duration::from_secs(1);

/// Diagnostic codes (RFC 5880 §4.1).
pub mod diag {
    /// No diagnostic.
    pub const NONE: u8 = 0;
    /// Control Detection Time Expired.
    pub const CONTROL_DETECTION_TIME_EXPIRED: u8 = 1;
    /// Neighbor Signaled Session Down.
    pub const NEIGHBOR_SIGNALED_DOWN: u8 = 3;
    /// Administratively Down.
    pub const ADMIN_DOWN: u8 = 7;
}

/// Session states (RFC 5880 §4.1 and §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BfdState {
    /// Held down by configuration.
    AdminDown,
    /// Down.
    Down,
    /// The peer is heard, but has not confirmed hearing us.
    Init,
    /// Both sides hear each other.
    Up,
}

impl BfdState {
    fn code(self) -> u8 {
        match self {
            BfdState::AdminDown => 0,
            BfdState::Down => 1,
            BfdState::Init => 2,
            BfdState::Up => 3,
        }
    }

    fn from_code(code: u8) -> BfdState {
        match code & 3 {
            0 => BfdState::AdminDown,
            1 => BfdState::Down,
            2 => BfdState::Init,
            _ => BfdState::Up,
        }
    }
}

/// The authentication section of a control packet, kept raw: we use no authentication, so a
/// packet with one is only ever discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// Auth Type.
    pub auth_type: u8,
    /// Everything after the type and length octets (at most 253 bytes).
    pub data: Vec<u8>,
}

/// A BFD control packet (RFC 5880 §4.1). Intervals are in microseconds, as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPacket {
    /// Diagnostic (5 bits).
    pub diag: u8,
    /// Sender's state.
    pub state: BfdState,
    /// Poll.
    pub poll: bool,
    /// Final.
    pub final_: bool,
    /// Control Plane Independent.
    pub control_plane_independent: bool,
    /// Demand.
    pub demand: bool,
    /// Detect Mult.
    pub detect_mult: u8,
    /// My Discriminator.
    pub my_discriminator: u32,
    /// Your Discriminator.
    pub your_discriminator: u32,
    /// Desired Min TX Interval (µs).
    pub desired_min_tx: u32,
    /// Required Min RX Interval (µs).
    pub required_min_rx: u32,
    /// Required Min Echo RX Interval (µs).
    pub required_min_echo_rx: u32,
    /// Authentication section, if the A bit is set.
    pub auth: Option<Auth>,
}

/// Why bytes are not a control packet we may act on (RFC 5880 §6.8.6, first checks): each is
/// a packet to discard.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BfdDecodeError {
    /// Fewer than 24 bytes.
    #[error("control packet of {0} bytes is shorter than 24")]
    TooShort(usize),
    /// Version other than 1.
    #[error("BFD version {0}, not 1")]
    Version(u8),
    /// Length field too small for the packet, or larger than what arrived.
    #[error("length field {field} does not fit a packet of {received} bytes")]
    Length {
        /// Length field.
        field: u8,
        /// Bytes received.
        received: usize,
    },
    /// Detect Mult zero.
    #[error("detect multiplier 0")]
    ZeroDetectMult,
    /// Multipoint bit set.
    #[error("multipoint bit set")]
    Multipoint,
    /// My Discriminator zero.
    #[error("my discriminator 0")]
    ZeroMyDiscriminator,
    /// Your Discriminator zero in a state that must know it.
    #[error("your discriminator 0 in state {0:?}")]
    ZeroYourDiscriminator(BfdState),
    /// Authentication section length inconsistent.
    #[error("authentication section length does not match the packet")]
    AuthLength,
}

impl ControlPacket {
    /// Decodes a control packet (the UDP payload), never panicking.
    pub fn decode(buf: &[u8]) -> Result<ControlPacket, BfdDecodeError> {
        if buf.len() < CONTROL_LEN {
            return Err(BfdDecodeError::TooShort(buf.len()));
        }
        let version = buf[0] >> 5;
        if version != VERSION {
            return Err(BfdDecodeError::Version(version));
        }
        let flags = buf[1];
        let has_auth = flags & 0x04 != 0;
        let len = buf[3];
        let min = if has_auth { CONTROL_LEN + 2 } else { CONTROL_LEN };
        if usize::from(len) < min || usize::from(len) > buf.len() {
            return Err(BfdDecodeError::Length { field: len, received: buf.len() });
        }
        let u32_at = |i: usize| u32::from_be_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
        let p = ControlPacket {
            diag: buf[0] & 0x1f,
            state: BfdState::from_code(flags >> 6),
            poll: flags & 0x20 != 0,
            final_: flags & 0x10 != 0,
            control_plane_independent: flags & 0x08 != 0,
            demand: flags & 0x02 != 0,
            detect_mult: buf[2],
            my_discriminator: u32_at(4),
            your_discriminator: u32_at(8),
            desired_min_tx: u32_at(12),
            required_min_rx: u32_at(16),
            required_min_echo_rx: u32_at(20),
            auth: if has_auth {
                let auth_len = usize::from(buf[25]);
                if auth_len < 2 || CONTROL_LEN + auth_len != usize::from(len) {
                    return Err(BfdDecodeError::AuthLength);
                }
                Some(Auth { auth_type: buf[24], data: buf[26..usize::from(len)].to_vec() })
            } else {
                None
            },
        };
        if p.detect_mult == 0 {
            return Err(BfdDecodeError::ZeroDetectMult);
        }
        if flags & 0x01 != 0 {
            return Err(BfdDecodeError::Multipoint);
        }
        if p.my_discriminator == 0 {
            return Err(BfdDecodeError::ZeroMyDiscriminator);
        }
        if p.your_discriminator == 0 && !matches!(p.state, BfdState::Down | BfdState::AdminDown) {
            return Err(BfdDecodeError::ZeroYourDiscriminator(p.state));
        }
        Ok(p)
    }

    /// Encodes the packet. An authentication section longer than 253 bytes is cut to fit its
    /// one-octet length.
    pub fn encode(&self) -> Vec<u8> {
        let auth_data = self.auth.as_ref().map(|a| &a.data[..a.data.len().min(253)]);
        let len = CONTROL_LEN + auth_data.map_or(0, |d| d.len() + 2);
        let mut out = Vec::with_capacity(len);
        out.push((VERSION << 5) | (self.diag & 0x1f));
        let mut flags = self.state.code() << 6;
        for (bit, on) in [
            (0x20, self.poll),
            (0x10, self.final_),
            (0x08, self.control_plane_independent),
            (0x04, self.auth.is_some()),
            (0x02, self.demand),
        ] {
            if on {
                flags |= bit;
            }
        }
        out.extend_from_slice(&[flags, self.detect_mult, len as u8]);
        for v in [
            self.my_discriminator,
            self.your_discriminator,
            self.desired_min_tx,
            self.required_min_rx,
            self.required_min_echo_rx,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        if let (Some(a), Some(d)) = (&self.auth, auth_data) {
            out.extend_from_slice(&[a.auth_type, (d.len() + 2) as u8]);
            out.extend_from_slice(d);
        }
        out
    }
}

/// A BFD profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfdConfig {
    /// How often we would like to send once Up: default 100 ms.
    pub desired_min_tx: Duration,
    /// The fastest we accept packets: default 100 ms.
    pub required_min_rx: Duration,
    /// Packets missed before the peer is declared down: default 3.
    pub detect_mult: u8,
}

impl Default for BfdConfig {
    fn default() -> BfdConfig {
        BfdConfig {
            desired_min_tx: Duration::from_millis(100),
            required_min_rx: Duration::from_millis(100),
            detect_mult: 3,
        }
    }
}

/// What the adapter must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BfdAction {
    /// Send this packet to the peer.
    Transmit(ControlPacket),
    /// The session changed state; `Up` to anything else ends the BGP session.
    StateChanged {
        /// Previous state.
        from: BfdState,
        /// New state.
        to: BfdState,
        /// The diagnostic explaining it.
        diag: u8,
    },
}

/// One single-hop asynchronous BFD session (see the module documentation).
#[derive(Debug)]
pub struct BfdSession {
    config: BfdConfig,
    state: BfdState,
    local_discr: u32,
    remote_discr: u32,
    remote_state: BfdState,
    local_diag: u8,
    /// bfd.DesiredMinTxInterval: what we announce (slow while not Up).
    desired_min_tx: Duration,
    /// bfd.RemoteMinRxInterval: 1 µs until the peer says otherwise (RFC 5880 §6.8.1).
    remote_min_rx: Duration,
    remote_desired_min_tx: Duration,
    remote_detect_mult: u8,
    /// A Poll Sequence is running: periodic packets carry P until a Final arrives.
    polling: bool,
    next_tx: Option<Instant>,
    detect_deadline: Option<Instant>,
    rng: u64,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl BfdSession {
    /// A session in Down that sends its first packet at `now`.
    pub fn new(config: BfdConfig, local_discriminator: NonZeroU32, now: Instant) -> BfdSession {
        let config = BfdConfig { detect_mult: config.detect_mult.max(1), ..config };
        BfdSession {
            config,
            state: BfdState::Down,
            local_discr: local_discriminator.get(),
            remote_discr: 0,
            remote_state: BfdState::Down,
            local_diag: diag::NONE,
            desired_min_tx: config.desired_min_tx.max(SLOW_TX),
            remote_min_rx: Duration::from_micros(1),
            remote_desired_min_tx: Duration::ZERO,
            remote_detect_mult: 0,
            polling: false,
            next_tx: Some(now),
            detect_deadline: None,
            // Any nonzero seed works for xorshift; mix the discriminator so sessions differ.
            rng: u64::from(local_discriminator.get()).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
        }
    }

    /// The current state.
    pub fn state(&self) -> BfdState {
        self.state
    }

    /// Our discriminator, which the peer echoes in Your Discriminator.
    pub fn local_discriminator(&self) -> u32 {
        self.local_discr
    }

    /// The peer's last reported state (Down while unknown).
    pub fn remote_state(&self) -> BfdState {
        self.remote_state
    }

    /// The peer's discriminator (0 while unknown).
    pub fn remote_discriminator(&self) -> u32 {
        self.remote_discr
    }

    /// The diagnostic of the last state change.
    pub fn diag(&self) -> u8 {
        self.local_diag
    }

    /// When [`BfdSession::poll`] must next be called.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.next_tx, self.detect_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The detection time: how long without a packet before the peer is declared down.
    pub fn detection_time(&self) -> Duration {
        self.config.required_min_rx.max(self.remote_desired_min_tx) * u32::from(self.remote_detect_mult)
    }

    /// The interval between our packets, before jitter.
    pub fn tx_interval(&self) -> Duration {
        self.desired_min_tx.max(self.remote_min_rx)
    }

    /// Holds the session in AdminDown (the peer sees AdminDown and goes Down without blaming the
    /// path).
    pub fn admin_down(&mut self, now: Instant) -> Vec<BfdAction> {
        let mut out = Vec::new();
        if self.state != BfdState::AdminDown {
            self.set_state(BfdState::AdminDown, diag::ADMIN_DOWN, now, &mut out);
            self.detect_deadline = None;
        }
        out
    }

    /// Leaves AdminDown.
    pub fn admin_up(&mut self, now: Instant) -> Vec<BfdAction> {
        let mut out = Vec::new();
        if self.state == BfdState::AdminDown {
            self.set_state(BfdState::Down, diag::NONE, now, &mut out);
        }
        out
    }

    /// Handles a received packet (RFC 5880 §6.8.6, after the checks [`ControlPacket::decode`]
    /// made).
    pub fn on_packet(&mut self, p: &ControlPacket, now: Instant) -> Vec<BfdAction> {
        let mut out = Vec::new();
        if p.auth.is_some() || (p.your_discriminator != 0 && p.your_discriminator != self.local_discr) {
            return out;
        }
        self.remote_discr = p.my_discriminator;
        self.remote_state = p.state;
        self.remote_min_rx = Duration::from_micros(u64::from(p.required_min_rx));
        self.remote_desired_min_tx = Duration::from_micros(u64::from(p.desired_min_tx));
        self.remote_detect_mult = p.detect_mult;
        if p.final_ && self.polling {
            self.polling = false;
        }
        if self.state == BfdState::AdminDown {
            return out;
        }
        self.detect_deadline = Some(now + self.detection_time());
        if p.required_min_rx == 0 {
            // The peer wants no packets from us (RFC 5880 §6.8.7).
            self.next_tx = None;
        } else if self.next_tx.is_none_or(|t| t > now + self.tx_interval()) {
            // The peer's faster receive rate or a restart of transmission: do not wait for an
            // interval chosen under the old parameters.
            self.next_tx = Some(now);
        }
        match (self.state, p.state) {
            // A peer going AdminDown is not a path failure, but we stop relying on it.
            (BfdState::Init | BfdState::Up, BfdState::AdminDown) => {
                self.set_state(BfdState::Down, diag::NEIGHBOR_SIGNALED_DOWN, now, &mut out)
            }
            (BfdState::Down, BfdState::Down) => self.set_state(BfdState::Init, diag::NONE, now, &mut out),
            (BfdState::Down, BfdState::Init) | (BfdState::Init, BfdState::Init | BfdState::Up) => {
                self.set_state(BfdState::Up, diag::NONE, now, &mut out)
            }
            (BfdState::Up, BfdState::Down) => {
                self.set_state(BfdState::Down, diag::NEIGHBOR_SIGNALED_DOWN, now, &mut out)
            }
            _ => {}
        }
        if p.poll && self.remote_min_rx > Duration::ZERO {
            // Final goes out at once, without Poll (both bits never together, §6.5).
            let mut reply = self.packet();
            reply.poll = false;
            reply.final_ = true;
            out.push(BfdAction::Transmit(reply));
        }
        out
    }

    /// Handles the passage of time: the detection timer and periodic transmission.
    pub fn poll(&mut self, now: Instant) -> Vec<BfdAction> {
        let mut out = Vec::new();
        if self.detect_deadline.is_some_and(|d| now >= d) {
            self.detect_deadline = None;
            // RFC 5880 §6.8.1: a Detection Time without packets forgets the peer.
            self.remote_discr = 0;
            self.remote_state = BfdState::Down;
            if matches!(self.state, BfdState::Init | BfdState::Up) {
                self.set_state(BfdState::Down, diag::CONTROL_DETECTION_TIME_EXPIRED, now, &mut out);
            }
        }
        if let Some(t) = self.next_tx
            && now >= t
        {
            out.push(BfdAction::Transmit(self.packet()));
            self.next_tx = Some(now + self.jittered(self.tx_interval()));
        }
        out
    }

    /// The periodic packet as things stand.
    fn packet(&self) -> ControlPacket {
        ControlPacket {
            diag: self.local_diag,
            state: self.state,
            poll: self.polling,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: self.config.detect_mult,
            my_discriminator: self.local_discr,
            your_discriminator: self.remote_discr,
            desired_min_tx: micros(self.desired_min_tx),
            required_min_rx: micros(self.config.required_min_rx),
            required_min_echo_rx: 0,
            auth: None,
        }
    }

    fn set_state(&mut self, to: BfdState, diag: u8, now: Instant, out: &mut Vec<BfdAction>) {
        let from = self.state;
        self.state = to;
        self.local_diag = diag;
        let desired = if to == BfdState::Up {
            self.config.desired_min_tx
        } else {
            self.config.desired_min_tx.max(SLOW_TX)
        };
        if desired != self.desired_min_tx {
            self.desired_min_tx = desired;
            // The peer must learn the new rate before relying on it (§6.8.3).
            self.polling = to == BfdState::Up;
        }
        out.push(BfdAction::StateChanged { from, to, diag });
        // Tell the peer about the change now rather than at the next periodic packet.
        if self.remote_min_rx > Duration::ZERO {
            self.next_tx = Some(now);
        }
    }

    /// `interval` less 0–25% (10–25% with a detect multiplier of 1), RFC 5880 §6.8.7.
    fn jittered(&mut self, interval: Duration) -> Duration {
        // xorshift64: reproducible and enough to keep sessions from synchronising.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let (lo, span) = if self.config.detect_mult == 1 { (75, 15) } else { (75, 25) };
        let percent = lo + (self.rng % (span + 1));
        interval * percent as u32 / 100
    }
}

#[cfg(test)]
mod tests;
