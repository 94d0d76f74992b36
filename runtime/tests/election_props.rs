//! Properties of the pure election state machine, against a model API server with compare-and-swap
//! writes, slow and stale reads, lost answers, writes that commit after their sender gave up on them,
//! crashes and releases. Time only moves when the test says so.

use std::time::{Duration, Instant};

use ferrolb_runtime::election::{Action, Candidate, ElectionConfig, LeaseRecord, WriteFailure};
use jiff::Timestamp;
use proptest::prelude::*;

/// The API server: one Lease, resourceVersions, compare-and-swap.
#[derive(Debug, Default)]
struct Server {
    record: Option<LeaseRecord>,
    rv: u64,
}

impl Server {
    fn apply(&mut self, action: &Action) -> Result<LeaseRecord, WriteFailure> {
        let record = match action {
            Action::Create(r) if self.record.is_none() => r,
            Action::Create(_) => return Err(WriteFailure::Conflict),
            Action::Update(r) => match &self.record {
                None => return Err(WriteFailure::NotFound),
                Some(cur) if cur.resource_version != r.resource_version => {
                    return Err(WriteFailure::Conflict);
                }
                Some(_) => r,
            },
            Action::Wait(_) => unreachable!("not a write"),
        };
        self.rv += 1;
        let mut stored = record.clone();
        stored.resource_version = Some(self.rv.to_string());
        self.record = Some(stored.clone());
        Ok(stored)
    }

    fn holder(&self) -> Option<&str> {
        self.record.as_ref().and_then(|r| r.holder())
    }
}

#[derive(Debug)]
enum Op {
    /// A read sent at the given time; `Some` once the server answered (with the state at that moment).
    Read(Instant, Option<Option<LeaseRecord>>),
    /// A write sent; `Some` once the server processed it.
    Write(Action, Option<Result<LeaseRecord, WriteFailure>>),
}

#[derive(Debug)]
struct Node {
    candidate: Candidate,
    op: Option<Op>,
    crashed: bool,
    released: bool,
}

#[derive(Debug, Clone)]
enum Event {
    Advance(u64),
    StartRead(usize),
    ServeRead(usize),
    DeliverRead(usize),
    FailRead(usize),
    CommitWrite(usize),
    DeliverWrite(usize),
    /// The sender gives up (timeout); an uncommitted write may still commit later.
    FailWrite(usize),
    CommitGhost(usize),
    Release(usize),
    Crash(usize),
    /// StartRead, ServeRead and DeliverRead at once.
    Round(usize),
    /// CommitWrite and DeliverWrite at once.
    Finish(usize),
}

fn event(nodes: usize) -> impl Strategy<Value = Event> {
    let n = 0..nodes;
    prop_oneof![
        4 => (0u64..1500).prop_map(Event::Advance),
        4 => n.clone().prop_map(Event::StartRead),
        3 => n.clone().prop_map(Event::ServeRead),
        3 => n.clone().prop_map(Event::DeliverRead),
        1 => n.clone().prop_map(Event::FailRead),
        3 => n.clone().prop_map(Event::CommitWrite),
        3 => n.clone().prop_map(Event::DeliverWrite),
        1 => n.clone().prop_map(Event::FailWrite),
        1 => (0usize..8).prop_map(Event::CommitGhost),
        1 => n.clone().prop_map(Event::Release),
        1 => n.clone().prop_map(Event::Crash),
        6 => n.clone().prop_map(Event::Round),
        6 => n.prop_map(Event::Finish),
    ]
}

fn config(id: usize) -> impl Strategy<Value = ElectionConfig> {
    (10u64..500, 1u64..1000, 1u64..2000).prop_map(move |(rp, rd_extra, ld_extra)| ElectionConfig {
        identity: format!("node-{id}"),
        retry_period: Duration::from_millis(rp),
        renew_deadline: Duration::from_millis(rp + rd_extra),
        lease_duration: Duration::from_millis(rp + rd_extra + ld_extra),
    })
}

/// Each participant with the multiple of its retry period at which it writes renewals (reading in
/// between): 1 is the default.
fn configs() -> impl Strategy<Value = Vec<(ElectionConfig, u32)>> {
    (2usize..=3).prop_flat_map(|n| (0..n).map(|i| (config(i), 1u32..=4)).collect::<Vec<_>>())
}

struct World {
    base: Instant,
    ms: u64,
    server: Server,
    nodes: Vec<Node>,
    ghosts: Vec<Action>,
}

impl World {
    fn new(cfgs: &[(ElectionConfig, u32)]) -> World {
        World {
            base: Instant::now(),
            ms: 0,
            server: Server::default(),
            nodes: cfgs
                .iter()
                .map(|(c, writes_every)| Node {
                    candidate: {
                        let mut candidate = Candidate::new(c.clone());
                        candidate.set_write_period(c.retry_period * *writes_every);
                        candidate
                    },
                    op: None,
                    crashed: false,
                    released: false,
                })
                .collect(),
            ghosts: Vec::new(),
        }
    }

    fn now(&self) -> Instant {
        self.base + Duration::from_millis(self.ms)
    }

    fn wall(&self) -> Timestamp {
        Timestamp::UNIX_EPOCH + Duration::from_millis(1_800_000_000_000 + self.ms)
    }

    fn step(&mut self, ev: &Event) {
        let now = self.now();
        let wall = self.wall();
        match *ev {
            Event::Advance(ms) => self.ms += ms,
            Event::CommitGhost(k) => {
                if !self.ghosts.is_empty() {
                    let action = self.ghosts.remove(k % self.ghosts.len());
                    let _ = self.server.apply(&action);
                }
            }
            Event::StartRead(i) => {
                let node = &mut self.nodes[i];
                if !node.crashed && !node.released && node.op.is_none() {
                    node.op = Some(Op::Read(now, None));
                }
            }
            Event::ServeRead(i) => {
                if let Some(Op::Read(_, answer @ None)) = &mut self.nodes[i].op {
                    *answer = Some(self.server.record.clone());
                }
            }
            Event::DeliverRead(i) => {
                let node = &mut self.nodes[i];
                if let Some(Op::Read(sent, Some(answer))) = &node.op {
                    let (sent, answer) = (*sent, answer.clone());
                    node.op = match node.candidate.decide_read(answer.as_ref(), sent, now, wall) {
                        Action::Wait(until) => {
                            assert!(until >= now && until <= now + node.candidate.config().retry_period);
                            None
                        }
                        write => Some(Op::Write(write, None)),
                    };
                }
            }
            Event::FailRead(i) => {
                let node = &mut self.nodes[i];
                if let Some(Op::Read(..)) = node.op {
                    node.op = None;
                    node.candidate.read_failed(now);
                }
            }
            Event::CommitWrite(i) => {
                if let Some(Op::Write(action, result @ None)) = &mut self.nodes[i].op {
                    *result = Some(self.server.apply(action));
                }
            }
            Event::DeliverWrite(i) => {
                let node = &mut self.nodes[i];
                if let Some(Op::Write(_, Some(result))) = &node.op {
                    let result = result.clone();
                    node.op = None;
                    node.candidate.written(result.as_ref().map_err(|e| *e), now);
                }
            }
            Event::FailWrite(i) => {
                let node = &mut self.nodes[i];
                if let Some(Op::Write(action, result)) = node.op.take() {
                    if result.is_none() {
                        self.ghosts.push(action);
                    }
                    node.candidate.written(Err(WriteFailure::Other), now);
                }
            }
            Event::Release(i) => {
                let node = &mut self.nodes[i];
                if !node.crashed && !node.released && node.op.is_none() {
                    node.released = true;
                    let current = self.server.record.clone();
                    if let Some(record) = node.candidate.release(current.as_ref(), now, wall) {
                        node.op = Some(Op::Write(Action::Update(record), None));
                    }
                }
            }
            Event::Round(i) => {
                for ev in [Event::StartRead(i), Event::ServeRead(i), Event::DeliverRead(i)] {
                    self.step(&ev);
                }
            }
            Event::Finish(i) => {
                for ev in [Event::CommitWrite(i), Event::DeliverWrite(i)] {
                    self.step(&ev);
                }
            }
            Event::Crash(i) => {
                let node = &mut self.nodes[i];
                node.crashed = true;
                if let Some(Op::Write(action, None)) = node.op.take() {
                    self.ghosts.push(action);
                }
            }
        }
    }

    fn leaders(&self) -> Vec<usize> {
        let now = self.now();
        (0..self.nodes.len())
            .filter(|&i| !self.nodes[i].crashed && self.nodes[i].candidate.is_leader(now))
            .collect()
    }

    /// Beliefs only change at events, and between events they only lapse, so checking after every
    /// event covers every instant.
    fn check_safety(&self) -> Result<(), TestCaseError> {
        let leaders = self.leaders();
        prop_assert!(leaders.len() <= 1, "two leaders at once: {:?}", leaders);
        if let Some(&i) = leaders.first() {
            prop_assert_eq!(
                self.server.holder(),
                Some(self.nodes[i].candidate.identity()),
                "a leader the API server does not name"
            );
            prop_assert!(!self.nodes[i].released, "a released node still leads");
        }
        Ok(())
    }

    /// Healthy from now on: every request is answered at once. Returns the time by which some live
    /// node must lead.
    fn heal(&mut self) -> Instant {
        let now = self.now();
        for action in std::mem::take(&mut self.ghosts) {
            let _ = self.server.apply(&action);
        }
        for node in &mut self.nodes {
            match node.op.take() {
                Some(Op::Write(action, result)) => {
                    let result = result.unwrap_or_else(|| self.server.apply(&action));
                    node.candidate.written(result.as_ref().map_err(|e| *e), now);
                }
                Some(Op::Read(..)) => {
                    node.candidate.read_failed(now);
                }
                None => {}
            }
        }
        let max = |f: fn(&Node) -> Duration| self.nodes.iter().map(f).max().expect("nodes");
        let rp = max(|n| n.candidate.config().retry_period);
        // What a write carries: the lease duration lengthened by the write period's extra.
        let ld = max(|n| {
            let c = n.candidate.config();
            let written = c.lease_duration + (n.candidate.write_period() - c.retry_period);
            Duration::from_secs(written.as_secs() + u64::from(written.subsec_nanos() > 0))
        });
        now + rp + ld + rp
    }

    /// Moves the clock to the next attempt of the live node due first, and returns that node.
    fn advance_to_next(&mut self, live: &[usize]) -> usize {
        let now = self.now();
        let i = *live.iter().min_by_key(|&&i| self.nodes[i].candidate.next_attempt(now)).expect("live nodes");
        let at = self.nodes[i].candidate.next_attempt(now);
        // Every instant in this world is a whole number of milliseconds after `base`.
        self.ms = self.ms.max(at.duration_since(self.base).as_millis() as u64);
        i
    }

    /// One round for node `i` on a healthy API server: read, decide, write, all answered at once.
    fn healthy_round(&mut self, i: usize) {
        let now = self.now();
        let wall = self.wall();
        let current = self.server.record.clone();
        let node = &mut self.nodes[i];
        let action = node.candidate.decide(current.as_ref(), now, wall);
        if !matches!(action, Action::Wait(_)) {
            let result = self.server.apply(&action);
            node.candidate.written(result.as_ref().map_err(|e| *e), now);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Never two leaders, a leader is always the holder the API server names, and once the API server
    /// is healthy again some live node leads within retry_period + lease_duration + retry_period, and
    /// leadership then stays continuous.
    #[test]
    fn one_leader_at_most_and_recovery(cfgs in configs(), events in prop::collection::vec(event(3), 0..300)) {
        let mut world = World::new(&cfgs);
        for ev in &events {
            world.step(&on_node(ev, world.nodes.len()));
            world.check_safety()?;
        }
        let deadline = world.heal();
        world.check_safety()?;
        let live: Vec<usize> =
            (0..world.nodes.len()).filter(|&i| !world.nodes[i].crashed && !world.nodes[i].released).collect();
        if live.is_empty() {
            return Ok(());
        }
        while world.now() < deadline + Duration::from_secs(5) {
            let i = world.advance_to_next(&live);
            // Checked before the round, so a claim that lapsed before its renewal is caught.
            if world.now() >= deadline {
                prop_assert!(!world.leaders().is_empty(), "nobody leads {:?} after the API server healed", world.now() - deadline);
            }
            world.healthy_round(i);
            world.check_safety()?;
        }
    }

    /// A standby takes over no later than the record's lease duration after it last saw the record
    /// change, however often it looked in between, and never earlier.
    #[test]
    fn standby_takes_over_exactly_at_local_expiry(
        cfg in config(1),
        duration_s in 1u64..30,
        looks in prop::collection::vec(0u64..40_000, 0..20),
        skew_s in -100_000i64..100_000,
    ) {
        let base = Instant::now();
        let held = LeaseRecord {
            holder: Some("node-0".into()),
            lease_duration: Some(Duration::from_secs(duration_s)),
            // The holder's clock is arbitrary; it must not matter.
            renew_time: Some(Timestamp::from_second(1_800_000_000 + skew_s).unwrap()),
            resource_version: Some("5".into()),
            ..Default::default()
        };
        let expiry = base + Duration::from_secs(duration_s);
        let mut standby = Candidate::new(cfg);
        let first = standby.decide(Some(&held), base, Timestamp::UNIX_EPOCH);
        prop_assert!(matches!(first, Action::Wait(_)));
        let mut looks = looks;
        looks.sort_unstable();
        for ms in looks {
            let now = base + Duration::from_millis(ms);
            let mut probe = standby.clone();
            match probe.decide(Some(&held), now, Timestamp::UNIX_EPOCH) {
                Action::Wait(until) => {
                    prop_assert!(now < expiry);
                    prop_assert!(until <= expiry, "would sleep past the expiry");
                }
                Action::Update(take) => {
                    prop_assert!(now >= expiry, "took over early");
                    prop_assert_eq!(take.holder(), Some("node-1"));
                    prop_assert_eq!(take.resource_version.as_deref(), Some("5"));
                }
                Action::Create(_) => prop_assert!(false, "lease exists"),
            }
            if now < expiry {
                standby = probe;
            }
        }
    }

    /// The holder stops trusting its claim before any standby that saw its last renewal could take
    /// over, whatever the request latency.
    #[test]
    fn holder_steps_down_before_a_standby_may_take_over(
        cfg in config(0),
        latency_ms in 0u64..5_000,
        seen_after_ms in 0u64..5_000,
    ) {
        let base = Instant::now();
        let mut holder = Candidate::new(cfg.clone());
        let Action::Create(record) = holder.decide(None, base, Timestamp::UNIX_EPOCH) else {
            return Err(TestCaseError::fail("expected create"));
        };
        let mut server = Server::default();
        let stored = server.apply(&Action::Create(record)).unwrap();
        holder.written(Ok(&stored), base + Duration::from_millis(latency_ms));
        // The standby saw the renewal no earlier than the holder decided it.
        let seen = base + Duration::from_millis(seen_after_ms);
        let mut standby = Candidate::new(ElectionConfig { identity: "node-1".into(), ..cfg.clone() });
        standby.decide(Some(&stored), seen, Timestamp::UNIX_EPOCH);
        let stepdown = holder.claim().expiry;
        prop_assert_eq!(stepdown, base + cfg.renew_deadline);
        prop_assert!(!holder.is_leader(stepdown));
        let last_leading = stepdown - Duration::from_millis(1);
        if holder.is_leader(last_leading) && seen <= last_leading {
            prop_assert!(
                matches!(standby.decide(Some(&stored), last_leading, Timestamp::UNIX_EPOCH), Action::Wait(_)),
                "a standby could take over while the holder still leads"
            );
        }
    }
}

/// The same event on an existing node (events are generated for up to three).
fn on_node(ev: &Event, nodes: usize) -> Event {
    match ev.clone() {
        e @ (Event::Advance(_) | Event::CommitGhost(_)) => e,
        Event::StartRead(i) => Event::StartRead(i % nodes),
        Event::ServeRead(i) => Event::ServeRead(i % nodes),
        Event::DeliverRead(i) => Event::DeliverRead(i % nodes),
        Event::FailRead(i) => Event::FailRead(i % nodes),
        Event::CommitWrite(i) => Event::CommitWrite(i % nodes),
        Event::DeliverWrite(i) => Event::DeliverWrite(i % nodes),
        Event::FailWrite(i) => Event::FailWrite(i % nodes),
        Event::Release(i) => Event::Release(i % nodes),
        Event::Crash(i) => Event::Crash(i % nodes),
        Event::Round(i) => Event::Round(i % nodes),
        Event::Finish(i) => Event::Finish(i % nodes),
    }
}
