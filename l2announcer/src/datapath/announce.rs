//! Gratuitous announcements on takeover: gratuitous ARP in request and reply forms (IPv4) or an
//! unsolicited Neighbor Advertisement with Override (IPv6), sent at once and repeated on a
//! schedule for lossy links and for clients of a returning old leader. One task per [`Bursts`]
//! sends every address's announcements from a queue; cancelling an address's burst stops it (the
//! address was released).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::Counters;
use super::frame::{self, Mac};
use super::socket::PacketSocket;

/// When the announcements of one takeover are sent, as offsets from the takeover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceSchedule(Vec<Duration>);

impl AnnounceSchedule {
    /// Offsets from the takeover, sorted; an empty list sends nothing.
    pub fn new(mut offsets: Vec<Duration>) -> Self {
        offsets.sort();
        Self(offsets)
    }

    /// The offsets.
    pub fn offsets(&self) -> &[Duration] {
        &self.0
    }
}

impl Default for AnnounceSchedule {
    /// At 0, 0.5, 1, 2 and 5 s: quick repeats while a switch or client may still be catching up,
    /// and a last one after the typical ARP retry interval.
    fn default() -> Self {
        Self::new([0, 500, 1000, 2000, 5000].into_iter().map(Duration::from_millis).collect())
    }
}

/// The frames of one announcement round for `ip` from `mac`.
pub fn gratuitous_frames(mac: Mac, ip: IpAddr) -> Vec<Vec<u8>> {
    match ip {
        IpAddr::V4(v4) => vec![frame::gratuitous_arp_request(mac, v4), frame::gratuitous_arp_reply(mac, v4)],
        IpAddr::V6(v6) => vec![frame::unsolicited_na(mac, v6)],
    }
}

/// How many sends the burst task makes between two looks at its queue: a takeover of thousands of
/// addresses is sent in slices, so that a cancel or a new takeover waits for one slice at most.
const SLICE: usize = 256;

/// One address's burst in progress.
#[derive(Debug)]
struct Running<L> {
    link: L,
    start: Instant,
    /// Rounds sent so far.
    sent: usize,
    /// Tells this burst from an earlier one of the same address (restarted or cancelled) whose
    /// queue entry is still waiting.
    generation: u64,
}

/// One round of one address's burst, taken from the queue to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Due<L> {
    link: L,
    ifindex: u32,
    ip: IpAddr,
    generation: u64,
}

/// The bursts in progress and when each sends next, without I/O. `L` is what a send needs of the
/// link (its socket and MAC).
///
/// Why one queue rather than a task per burst: a takeover of 10,000 addresses would spawn 10,000
/// tasks, each with a timer and its frames, kept until swept; here it is one map entry and one queue
/// entry per address, given back when the bursts end.
#[derive(Debug)]
struct Queue<L> {
    /// The schedule: offsets from each burst's start.
    offsets: Vec<Duration>,
    running: HashMap<(u32, IpAddr), Running<L>>,
    /// (time, generation, interface, address), earliest first; entries of bursts cancelled or
    /// restarted since are skipped when they come up.
    due: BinaryHeap<Reverse<(Instant, u64, u32, IpAddr)>>,
    generation: u64,
    /// The bursts whose last round was taken, to forget once it is sent.
    finished: Vec<((u32, IpAddr), u64)>,
}

impl<L: Clone> Queue<L> {
    /// A queue whose bursts send at `offsets` (sorted) from their start.
    fn new(offsets: Vec<Duration>) -> Self {
        Self { offsets, running: HashMap::new(), due: BinaryHeap::new(), generation: 0, finished: Vec::new() }
    }

    /// Starts the burst of `ip` on `ifindex` at `now` (restarts it if one runs).
    fn start(&mut self, ifindex: u32, ip: IpAddr, link: L, now: Instant) {
        let Some(first) = self.offsets.first() else { return };
        self.generation += 1;
        let generation = self.generation;
        self.due.push(Reverse((now + *first, generation, ifindex, ip)));
        self.running.insert((ifindex, ip), Running { link, start: now, sent: 0, generation });
    }

    /// Stops the burst of `ip` on `ifindex`.
    fn cancel(&mut self, ifindex: u32, ip: IpAddr) {
        self.running.remove(&(ifindex, ip));
        self.give_back();
    }

    /// Stops every burst on `ifindex`.
    fn cancel_link(&mut self, ifindex: u32) {
        self.running.retain(|(i, _), _| *i != ifindex);
        self.give_back();
    }

    /// Up to `max` rounds due at `now`; schedules every burst's next round. A burst whose last
    /// round this is stays (for [`Queue::is_current`]) until [`Queue::sweep`].
    fn take_due(&mut self, now: Instant, max: usize) -> Vec<Due<L>> {
        let mut sends = Vec::new();
        while sends.len() < max
            && let Some(Reverse((at, generation, ifindex, ip))) = self.due.peek().copied()
            && at <= now
        {
            self.due.pop();
            let key = (ifindex, ip);
            let Some(burst) = self.running.get_mut(&key).filter(|b| b.generation == generation) else {
                continue;
            };
            sends.push(Due { link: burst.link.clone(), ifindex, ip, generation });
            burst.sent += 1;
            match self.offsets.get(burst.sent) {
                Some(offset) => self.due.push(Reverse((burst.start + *offset, generation, ifindex, ip))),
                None => self.finished.push((key, generation)),
            }
        }
        sends
    }

    /// Whether a taken round is still to be sent: its burst was neither cancelled nor restarted
    /// since (a release between taking and sending stops it, as an aborted task did).
    fn is_current(&self, due: &Due<L>) -> bool {
        self.running.get(&(due.ifindex, due.ip)).is_some_and(|b| b.generation == due.generation)
    }

    /// Forgets the bursts whose last round has been sent.
    fn sweep(&mut self) {
        for (key, generation) in std::mem::take(&mut self.finished) {
            if self.running.get(&key).is_some_and(|b| b.generation == generation) {
                self.running.remove(&key);
            }
        }
        self.give_back();
    }

    /// When the next entry comes up (perhaps a cancelled burst's: an early look costs nothing).
    fn next_at(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((at, ..))| *at)
    }

    /// The bursts with rounds still to take.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.running.values().filter(|b| b.sent < self.offsets.len()).count()
    }

    /// A takeover of thousands of addresses grows the map and the queue; their buffers are given
    /// back once most of it is over.
    fn give_back(&mut self) {
        if self.running.capacity() > 4 * self.running.len().max(16) {
            self.running.shrink_to_fit();
        }
        if self.due.capacity() > 4 * self.due.len().max(16) {
            self.due.shrink_to_fit();
        }
    }
}

/// What a send needs of a link.
#[derive(Debug, Clone)]
struct Link {
    socket: Arc<PacketSocket>,
    mac: Mac,
}

#[derive(Debug)]
struct Shared {
    queue: Queue<Link>,
    /// The task that sends, started with the first burst (a runtime exists by then).
    task: Option<JoinHandle<()>>,
}

/// The gratuitous announcements of every address taken over, sent by one task on `schedule`.
/// Dropping it stops them.
#[derive(Debug)]
pub struct Bursts {
    shared: Arc<Mutex<Shared>>,
    wake: Arc<Notify>,
    counters: Arc<Counters>,
}

impl Bursts {
    pub fn new(schedule: &AnnounceSchedule, counters: Arc<Counters>) -> Self {
        let queue = Queue::new(schedule.offsets().to_vec());
        Self {
            shared: Arc::new(Mutex::new(Shared { queue, task: None })),
            wake: Arc::new(Notify::new()),
            counters,
        }
    }

    /// The schedule sends nothing (its bursts need no socket).
    pub fn sends_nothing(&self) -> bool {
        self.shared().queue.offsets.is_empty()
    }

    fn shared(&self) -> MutexGuard<'_, Shared> {
        lock(&self.shared)
    }

    /// Starts announcing `ip` with `mac` on `socket`'s interface, restarting a burst in progress
    /// (needs a tokio runtime).
    pub fn start(&self, socket: Arc<PacketSocket>, mac: Mac, ip: IpAddr) {
        let mut shared = self.shared();
        let now = tokio::time::Instant::now().into_std();
        shared.queue.start(socket.ifindex(), ip, Link { socket, mac }, now);
        // Started once; again only if it ended (it does not, short of a panic).
        if shared.task.as_ref().is_none_or(JoinHandle::is_finished) {
            shared.task =
                Some(tokio::spawn(send_due(self.shared.clone(), self.wake.clone(), self.counters.clone())));
        }
        drop(shared);
        self.wake.notify_one();
    }

    /// Stops announcing `ip` on `ifindex`.
    pub fn cancel(&self, ifindex: u32, ip: IpAddr) {
        self.shared().queue.cancel(ifindex, ip);
    }

    /// Stops every announcement on `ifindex`.
    pub fn cancel_link(&self, ifindex: u32) {
        self.shared().queue.cancel_link(ifindex);
    }
}

impl Drop for Bursts {
    fn drop(&mut self) {
        if let Some(task) = self.shared().task.take() {
            task.abort();
        }
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The burst task: sends what is due, a slice at a time, then sleeps until the next entry or a new
/// burst.
async fn send_due(shared: Arc<Mutex<Shared>>, wake: Arc<Notify>, counters: Arc<Counters>) {
    loop {
        let now = tokio::time::Instant::now().into_std();
        let sends = lock(&shared).queue.take_due(now, SLICE);
        let full = sends.len() == SLICE;
        for due in sends {
            if !lock(&shared).queue.is_current(&due) {
                continue;
            }
            for f in gratuitous_frames(due.link.mac, due.ip) {
                match due.link.socket.send(&f).await {
                    Ok(()) => counters.gratuitous_sent(due.ip),
                    Err(e) => {
                        counters.send_error();
                        tracing::debug!(ip = %due.ip, ifindex = due.ifindex, error = %e, "gratuitous send failed");
                    }
                }
            }
        }
        let next = {
            let mut shared = lock(&shared);
            shared.queue.sweep();
            shared.queue.next_at()
        };
        if full {
            tokio::task::yield_now().await;
            continue;
        }
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at.into()) => {}
                    () = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_spans_five_seconds() {
        let s = AnnounceSchedule::default();
        assert_eq!(s.offsets().first(), Some(&Duration::ZERO));
        assert_eq!(s.offsets().last(), Some(&Duration::from_secs(5)));
        assert!(s.offsets().windows(2).all(|w| w[0] <= w[1]));
        let s = AnnounceSchedule::new(vec![Duration::from_secs(2), Duration::ZERO]);
        assert_eq!(s.offsets(), &[Duration::ZERO, Duration::from_secs(2)]);
    }

    #[test]
    fn both_arp_forms_or_one_na() {
        let mac = Mac([2, 0, 0, 0, 0, 1]);
        assert_eq!(gratuitous_frames(mac, "198.51.100.200".parse().unwrap()).len(), 2);
        assert_eq!(gratuitous_frames(mac, "2001:db8:100::1000".parse().unwrap()).len(), 1);
    }

    fn offsets() -> Vec<Duration> {
        [0, 500, 1000].into_iter().map(Duration::from_millis).collect()
    }

    fn v4(last: u8) -> IpAddr {
        IpAddr::from([198, 51, 100, last])
    }

    /// The rounds due at `now` as (link, address), sent at once (swept after).
    fn send<L: Clone>(q: &mut Queue<L>, now: Instant) -> Vec<(L, IpAddr)> {
        let due = q.take_due(now, SLICE);
        let sent = due.into_iter().filter(|d| q.is_current(d)).map(|d| (d.link, d.ip)).collect();
        q.sweep();
        sent
    }

    #[test]
    fn every_round_is_sent_once_at_its_offset_and_the_burst_then_ends() {
        let t0 = Instant::now();
        let mut q = Queue::new(offsets());
        q.start(1, v4(200), "eth0", t0);
        assert_eq!(send(&mut q, t0), vec![("eth0", v4(200))]);
        assert_eq!(send(&mut q, t0), vec![], "the second round is not due yet");
        assert_eq!(q.next_at(), Some(t0 + Duration::from_millis(500)));
        assert_eq!(send(&mut q, t0 + Duration::from_millis(499)), vec![]);
        assert_eq!(send(&mut q, t0 + Duration::from_millis(500)).len(), 1);
        assert_eq!(q.len(), 1);
        // A look after the last offset sends the round due, and the burst is over.
        assert_eq!(send(&mut q, t0 + Duration::from_secs(9)).len(), 1);
        assert_eq!(q.len(), 0);
        assert!(q.running.is_empty(), "a burst whose last round is sent is forgotten");
        assert_eq!(q.next_at(), None);
    }

    #[test]
    fn a_cancelled_or_restarted_burst_sends_nothing_of_its_old_schedule() {
        let t0 = Instant::now();
        let mut q = Queue::new(offsets());
        q.start(1, v4(200), "eth0", t0);
        q.start(1, v4(201), "eth0", t0);
        q.start(2, v4(200), "eth1", t0);
        q.cancel(1, v4(200));
        q.cancel_link(2);
        assert_eq!(send(&mut q, t0), vec![("eth0", v4(201))]);
        // A restart at 0.7 s begins the schedule again: no send at 1 s from the first start.
        let t1 = t0 + Duration::from_millis(700);
        q.start(1, v4(201), "eth0", t1);
        assert_eq!(send(&mut q, t1), vec![("eth0", v4(201))]);
        assert_eq!(send(&mut q, t0 + Duration::from_millis(1000)), vec![]);
        assert_eq!(send(&mut q, t1 + Duration::from_millis(500)).len(), 1);
        assert_eq!(send(&mut q, t1 + Duration::from_millis(1000)).len(), 1);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn a_release_between_taking_and_sending_a_round_stops_it() {
        let t0 = Instant::now();
        let mut q = Queue::new(vec![Duration::ZERO]);
        q.start(1, v4(200), "eth0", t0);
        q.start(1, v4(201), "eth0", t0);
        let due = q.take_due(t0, SLICE);
        assert_eq!(due.len(), 2);
        q.cancel(1, v4(200));
        let sent: Vec<IpAddr> = due.iter().filter(|d| q.is_current(d)).map(|d| d.ip).collect();
        assert_eq!(sent, [v4(201)], "the last round of a burst is still current until swept");
        // A restart between taking and sending: the old round is not current, the new one is.
        q.start(1, v4(201), "eth0", t0);
        assert!(!q.is_current(&due[1]));
        q.sweep();
        assert_eq!(q.len(), 1, "the sweep keeps the restarted burst");
        assert_eq!(send(&mut q, t0), vec![("eth0", v4(201))]);
        assert!(q.running.is_empty());
    }

    #[test]
    fn a_large_takeover_is_sent_in_slices_and_its_buffers_given_back() {
        let t0 = Instant::now();
        let mut q = Queue::new(vec![Duration::ZERO]);
        for i in 0..10_000u32 {
            q.start(1, IpAddr::from([10, 0, (i >> 8) as u8, i as u8]), (), t0);
        }
        let mut slices = 0;
        while !send(&mut q, t0).is_empty() {
            slices += 1;
        }
        assert_eq!(slices, 10_000usize.div_ceil(SLICE));
        assert_eq!(q.len(), 0);
        assert!(q.running.capacity() < 1_000 && q.due.capacity() < 1_000, "buffers kept after the takeover");
    }

    #[test]
    fn an_empty_schedule_starts_nothing() {
        let mut q = Queue::new(Vec::new());
        q.start(1, v4(200), (), Instant::now());
        assert_eq!(q.len(), 0);
    }
}
