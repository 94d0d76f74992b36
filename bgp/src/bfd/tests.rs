use std::collections::VecDeque;

use super::*;
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap()).collect()
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

#[test]
fn known_wire_bytes() {
    // Version 1, no diagnostic; state Up with Poll; detect mult 3; length 24; discriminators 1
    // and 2; 100 ms (100000 µs = 0x186a0) tx and rx; no echo.
    let wire = hex("20 e0 03 18 00000001 00000002 000186a0 000186a0 00000000");
    let p = ControlPacket::decode(&wire).unwrap();
    assert_eq!(p.state, BfdState::Up);
    assert!(p.poll && !p.final_);
    assert_eq!((p.my_discriminator, p.your_discriminator), (1, 2));
    assert_eq!((p.desired_min_tx, p.required_min_rx), (100_000, 100_000));
    assert_eq!(p.encode(), wire);
}

#[test]
fn packets_to_discard() {
    let good = hex("20 40 03 18 00000001 00000000 000f4240 000186a0 00000000");
    assert_eq!(ControlPacket::decode(&good).unwrap().state, BfdState::Down);
    let with = |i: usize, b: u8| {
        let mut w = good.clone();
        w[i] = b;
        ControlPacket::decode(&w).unwrap_err()
    };
    assert_eq!(with(0, 0x40), BfdDecodeError::Version(2));
    assert_eq!(with(2, 0), BfdDecodeError::ZeroDetectMult);
    assert_eq!(with(1, 0x41), BfdDecodeError::Multipoint);
    assert_eq!(with(7, 0), BfdDecodeError::ZeroMyDiscriminator);
    assert_eq!(with(1, 0xc0), BfdDecodeError::ZeroYourDiscriminator(BfdState::Up));
    assert_eq!(with(3, 25), BfdDecodeError::Length { field: 25, received: 24 });
    assert_eq!(with(1, 0x44), BfdDecodeError::Length { field: 24, received: 24 });
    assert_eq!(ControlPacket::decode(&good[..23]), Err(BfdDecodeError::TooShort(23)));
}

/// Two sessions on a link that can be cut, with packets delivered at once.
struct Link {
    a: BfdSession,
    b: BfdSession,
    now: Instant,
    up: bool,
    /// (time, side, from, to, diag) of every state change.
    changes: Vec<(Instant, char, BfdState, BfdState, u8)>,
}

impl Link {
    fn new(config: BfdConfig) -> Link {
        let now = Instant::now();
        Link {
            a: BfdSession::new(config, nz(0x11), now),
            b: BfdSession::new(config, nz(0x22), now),
            now,
            up: true,
            changes: vec![],
        }
    }

    fn handle(&mut self, side: char, actions: Vec<BfdAction>, queue: &mut VecDeque<(char, ControlPacket)>) {
        for a in actions {
            match a {
                BfdAction::Transmit(p) => {
                    assert!(!(p.poll && p.final_), "Poll and Final together");
                    assert_eq!(
                        ControlPacket::decode(&p.encode()),
                        Ok(p.clone()),
                        "we sent a packet we would discard"
                    );
                    if self.up {
                        queue.push_back((if side == 'a' { 'b' } else { 'a' }, p));
                    }
                }
                BfdAction::StateChanged { from, to, diag } => {
                    self.changes.push((self.now, side, from, to, diag))
                }
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = [self.a.next_deadline(), self.b.next_deadline()].into_iter().flatten().min();
            let Some(next) = next.filter(|n| *n <= end) else { break };
            self.now = next;
            let mut queue = VecDeque::new();
            let out = self.a.poll(self.now);
            self.handle('a', out, &mut queue);
            let out = self.b.poll(self.now);
            self.handle('b', out, &mut queue);
            while let Some((to, p)) = queue.pop_front() {
                let out =
                    if to == 'a' { self.a.on_packet(&p, self.now) } else { self.b.on_packet(&p, self.now) };
                self.handle(to, out, &mut queue);
            }
        }
        self.now = end;
    }
}

#[test]
fn two_sessions_come_up_detect_a_cut_in_300_ms_and_recover() {
    let mut link = Link::new(BfdConfig::default());
    link.run_for(Duration::from_millis(50));
    assert_eq!((link.a.state(), link.b.state()), (BfdState::Up, BfdState::Up));
    assert_eq!(link.a.remote_discriminator(), 0x22);
    link.run_for(Duration::from_secs(3));
    // The poll sequences have finished and the fast rate is in use on both sides.
    assert_eq!(link.a.tx_interval(), Duration::from_millis(100));
    assert_eq!(link.a.detection_time(), Duration::from_millis(300));
    assert!(!link.a.polling && !link.b.polling);

    link.up = false;
    let cut = link.now;
    link.run_for(Duration::from_secs(1));
    let downs: Vec<_> = link.changes.iter().filter(|c| c.0 >= cut).collect();
    assert_eq!(downs.len(), 2, "{downs:?}");
    for (t, _, from, to, d) in downs {
        assert_eq!((*from, *to, *d), (BfdState::Up, BfdState::Down, diag::CONTROL_DETECTION_TIME_EXPIRED));
        assert!(*t - cut <= Duration::from_millis(300), "detected after {:?}", *t - cut);
    }

    link.up = true;
    link.run_for(Duration::from_secs(3));
    assert_eq!((link.a.state(), link.b.state()), (BfdState::Up, BfdState::Up));
}

#[test]
fn admin_down_brings_the_peer_down_with_neighbor_signaled_down() {
    let mut link = Link::new(BfdConfig::default());
    link.run_for(Duration::from_secs(2));
    let now = link.now;
    let out = link.a.admin_down(now);
    let mut queue = VecDeque::new();
    link.handle('a', out, &mut queue);
    link.run_for(Duration::from_millis(200));
    assert_eq!(link.a.state(), BfdState::AdminDown);
    assert_eq!(link.b.state(), BfdState::Down);
    assert_eq!(link.b.diag(), diag::NEIGHBOR_SIGNALED_DOWN);
    let out = link.a.admin_up(link.now);
    link.handle('a', out, &mut queue);
    link.run_for(Duration::from_secs(3));
    assert_eq!((link.a.state(), link.b.state()), (BfdState::Up, BfdState::Up));
}

#[test]
fn sends_slowly_until_up() {
    let now = Instant::now();
    let mut s = BfdSession::new(BfdConfig::default(), nz(7), now);
    let out = s.poll(now);
    let [BfdAction::Transmit(p)] = &out[..] else { panic!("{out:?}") };
    assert_eq!((p.state, p.desired_min_tx, p.your_discriminator), (BfdState::Down, 1_000_000, 0));
    let next = s.next_deadline().unwrap();
    assert!(next - now >= Duration::from_millis(750) && next - now <= SLOW_TX);
}

#[test]
fn a_poll_is_answered_with_final_at_once() {
    let now = Instant::now();
    let mut s = BfdSession::new(BfdConfig::default(), nz(7), now);
    let p = ControlPacket::decode(&hex("20 60 03 18 00000009 00000007 000186a0 000186a0 00000000")).unwrap();
    let out = s.on_packet(&p, now);
    let finals: Vec<_> =
        out.iter().filter(|a| matches!(a, BfdAction::Transmit(p) if p.final_ && !p.poll)).collect();
    assert_eq!(finals.len(), 1);
    assert_eq!(s.state(), BfdState::Init);
}

#[test]
fn packets_for_another_discriminator_or_with_auth_are_ignored() {
    let now = Instant::now();
    let mut s = BfdSession::new(BfdConfig::default(), nz(7), now);
    let mut p =
        ControlPacket::decode(&hex("20 40 03 18 00000009 00000008 000186a0 000186a0 00000000")).unwrap();
    assert!(s.on_packet(&p, now).is_empty());
    p.your_discriminator = 7;
    p.auth = Some(Auth { auth_type: 1, data: vec![1, 0, b'k'] });
    assert!(s.on_packet(&p, now).is_empty());
    assert_eq!(s.remote_discriminator(), 0);
}

// ---- property tests ----

fn state() -> impl Strategy<Value = BfdState> {
    prop_oneof![Just(BfdState::AdminDown), Just(BfdState::Down), Just(BfdState::Init), Just(BfdState::Up)]
}

fn packet() -> impl Strategy<Value = ControlPacket> {
    (
        (0u8..32, state(), any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), 1u8..=255),
        (1u32..=u32::MAX, any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()),
        prop::option::of((any::<u8>(), prop::collection::vec(any::<u8>(), 0..30))),
    )
        .prop_map(
            |((diag, state, poll, final_, cpi, demand, detect_mult), (my, your, tx, rx, echo), auth)| {
                let your = if your == 0 && !matches!(state, BfdState::Down | BfdState::AdminDown) {
                    1
                } else {
                    your
                };
                ControlPacket {
                    diag,
                    state,
                    poll,
                    final_,
                    control_plane_independent: cpi,
                    demand,
                    detect_mult,
                    my_discriminator: my,
                    your_discriminator: your,
                    desired_min_tx: tx,
                    required_min_rx: rx,
                    required_min_echo_rx: echo,
                    auth: auth.map(|(auth_type, data)| Auth { auth_type, data }),
                }
            },
        )
}

fn allowed(from: BfdState, to: BfdState) -> bool {
    use BfdState::*;
    matches!(
        (from, to),
        (Down, Init)
            | (Down, Up)
            | (Init, Up)
            | (Init, Down)
            | (Up, Down)
            | (_, AdminDown)
            | (AdminDown, Down)
    )
}

proptest! {
    #[test]
    fn packets_round_trip(p in packet()) {
        prop_assert_eq!(ControlPacket::decode(&p.encode()), Ok(p));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..80)) {
        if let Ok(p) = ControlPacket::decode(&bytes) {
            // The first 24 bytes come back as they were, but for the length when it covered
            // ignored bytes (allowed without the A bit, RFC 5880 §6.8.6).
            let again = p.encode();
            prop_assert_eq!(&again[..3], &bytes[..3]);
            prop_assert_eq!(&again[4..24], &bytes[4..24]);
            prop_assert_eq!(ControlPacket::decode(&again), Ok(p));
        }
    }

    /// Whatever arrives, whenever: state changes follow RFC 5880 §6.2, Up is reached only from a
    /// peer that names us, and what we send is valid and never Poll with Final.
    #[test]
    fn session_invariants(
        inputs in prop::collection::vec((prop::option::of(packet()), 0u64..2_000_000, any::<bool>()), 1..60),
    ) {
        let mut now = Instant::now();
        let mut s = BfdSession::new(BfdConfig::default(), nz(7), now);
        for (p, wait_us, mut_discr) in inputs {
            now += Duration::from_micros(wait_us);
            let polled = p.is_none();
            let out = match p {
                Some(mut p) => {
                    if mut_discr {
                        p.your_discriminator = 7;
                        p.auth = None;
                    }
                    s.on_packet(&p, now)
                }
                None => s.poll(now),
            };
            for a in out {
                match a {
                    BfdAction::Transmit(p) => {
                        prop_assert!(!(p.poll && p.final_));
                        prop_assert_eq!(p.my_discriminator, 7);
                        prop_assert_eq!(ControlPacket::decode(&p.encode()), Ok(p));
                    }
                    BfdAction::StateChanged { from, to, .. } => {
                        prop_assert!(allowed(from, to), "{:?} -> {:?}", from, to);
                        if to == BfdState::Up {
                            prop_assert_ne!(s.remote_discriminator(), 0);
                        }
                    }
                }
            }
            if polled {
                // After a poll nothing is overdue: the adapter never spins.
                prop_assert!(s.next_deadline().is_none_or(|d| d > now));
            }
        }
    }
}
