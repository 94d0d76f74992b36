//! A CNI agent's view while leadership moves: `ferrolb-cni`'s `watch_local` follows one node's
//! announcer (its unix socket, through a forwarder the test can cut) while the test moves the
//! address away from that node (its LAN link down, or its Node excluded from load balancers: a
//! hand-over) and back (the other nodes excluded for a moment, since placement is sticky). The
//! watcher must see exactly the changes the Lease went through, in order, with increasing
//! revisions, no gap and nothing else:
//!
//! - the first snapshot, then `Released` and `Acquired` as the address leaves and returns;
//! - a dropped gRPC connection (the forwarder cuts it and refuses new ones while the address
//!   moves away) resumes by revision: the move arrives as `Released`, with no snapshot and in the
//!   same epoch;
//! - a restarted announcer cannot resume: an explicit snapshot with the reason `EpochChanged`,
//!   then changes again.
//!
//! Needs root; fails loudly (never skips) without it.

mod support;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrolb_cni::{Connection, Delta, DeltaStream, ResyncReason, Target, WatchOptions, watch_local};
use ferrolb_lab::cluster;
use support::{Harness, ms, secs, v4_service};
use tokio::net::{UnixListener, UnixStream};
use tokio::runtime::Runtime;

/// A unix-socket forwarder between the watcher and the announcer's socket. [`Proxy::cut`] breaks
/// every connection through it and refuses new ones until [`Proxy::restore`]: the gRPC connection
/// drops while the announcer keeps running, which the lab cannot do to the socket itself.
struct Proxy {
    path: PathBuf,
    open: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    fn start(rt: &Runtime, path: &Path, upstream: &Path) -> Self {
        let _ = std::fs::remove_file(path);
        let listener = rt.block_on(async { UnixListener::bind(path) }).expect("binding the forwarder");
        let open = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (o, c, upstream) = (open.clone(), connections.clone(), upstream.to_path_buf());
        let task = rt.spawn(async move {
            loop {
                let Ok((mut down, _)) = listener.accept().await else { continue };
                if !o.load(Ordering::SeqCst) {
                    continue; // dropped: the client's HTTP/2 handshake fails
                }
                let upstream = upstream.clone();
                let forward = tokio::spawn(async move {
                    if let Ok(mut up) = UnixStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                c.lock().unwrap().push(forward.abort_handle());
                // A connection accepted while a cut began is cut too.
                if !o.load(Ordering::SeqCst) {
                    forward.abort();
                }
            }
        });
        Self { path: path.to_path_buf(), open, connections, task }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for c in self.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What the watcher must see next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Snapshot(ResyncReason, bool),
    Released,
    Acquired,
}

struct Watcher<'a> {
    rt: &'a Runtime,
    h: &'a Harness,
    deltas: DeltaStream,
    vip: IpAddr,
    seen: Vec<String>,
    last_revision: u64,
}

impl Watcher<'_> {
    /// The next delta must be `want` (for the VIP), within `timeout`.
    fn expect(&mut self, want: Want, timeout: Duration) -> Duration {
        let start = Instant::now();
        let next = self.rt.block_on(async { tokio::time::timeout(timeout, self.deltas.next()).await });
        let delta = next.unwrap_or_else(|_| {
            panic!(
                "[watch] no delta within {timeout:?}, wanted {want:?}; seen so far: {:#?}; connection: {:?}",
                self.seen,
                *self.deltas.connection().borrow()
            )
        });
        let delta = delta.expect("the watch task ended");
        self.seen.push(format!("{delta:?}"));
        let got = match &delta {
            Delta::Resync { reason, held, .. } => {
                let holds = held.iter().any(|a| a.ip == self.vip);
                assert!(held.iter().all(|a| a.ip == self.vip), "only one address exists: {delta:?}");
                Want::Snapshot(*reason, holds)
            }
            Delta::Released(a) if a.ip == self.vip => Want::Released,
            Delta::Acquired(a) if a.ip == self.vip => Want::Acquired,
            other => panic!("[watch] unexpected {other:?}, wanted {want:?}; seen: {:#?}", self.seen),
        };
        assert_eq!(got, want, "[watch] seen: {:#?}", self.seen);
        match &delta {
            Delta::Resync { held, .. } => {
                self.last_revision = held.iter().map(|a| a.revision).max().unwrap_or(0);
            }
            // A release carries the address's last state: the one this watcher saw last, or a
            // change went missing.
            Delta::Released(a) => {
                assert_eq!(a.revision, self.last_revision, "[watch] a change was missed: {:#?}", self.seen);
            }
            Delta::Acquired(a) => {
                assert!(
                    a.revision > self.last_revision,
                    "[watch] revision {} after {}: {:#?}",
                    a.revision,
                    self.last_revision,
                    self.seen
                );
                self.last_revision = a.revision;
            }
            Delta::Changed { .. } => unreachable!(),
        }
        self.h.log(&format!("watcher: {want:?} ({} ms)", start.elapsed().as_millis()));
        start.elapsed()
    }

    /// The first snapshot; whether it holds the address.
    fn expect_initial(&mut self, timeout: Duration) -> bool {
        let next = self.rt.block_on(async { tokio::time::timeout(timeout, self.deltas.next()).await });
        let delta = next.expect("[watch] no initial snapshot").expect("the watch task ended");
        self.seen.push(format!("{delta:?}"));
        let Delta::Resync { reason: ResyncReason::Initial, held, .. } = &delta else {
            panic!("[watch] wanted the initial snapshot; seen: {:#?}", self.seen);
        };
        assert!(held.iter().all(|a| a.ip == self.vip), "only one address exists: {delta:?}");
        self.last_revision = held.iter().map(|a| a.revision).max().unwrap_or(0);
        held.iter().any(|a| a.ip == self.vip)
    }

    /// Nothing more arrives within `quiet`.
    fn expect_quiet(&mut self, quiet: Duration) {
        let next = self.rt.block_on(async { tokio::time::timeout(quiet, self.deltas.next()).await });
        if let Ok(delta) = next {
            panic!("[watch] unexpected {delta:?}; seen: {:#?}", self.seen);
        }
    }

    fn epoch(&self) -> Option<u64> {
        match *self.deltas.connection().borrow() {
            Connection::Connected { epoch } => Some(epoch),
            _ => None,
        }
    }
}

#[test]
fn a_watcher_on_a_node_sees_every_move_in_order_across_a_dropped_connection_and_a_restart() {
    let h = Harness::up("agent-watch", 3, &[]);
    h.default_pool_and_policy();
    let vip = h.create_service(v4_service("web"), 1)[0];
    let a = h.wait_any_holder("web", vip);
    let ns = h.lab.node_ns(a);
    let node_a = format!("node{a}");

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let proxy =
        Proxy::start(&rt, &h.lab.state_dir().join("watch-proxy.sock"), &cluster::announcer_socket(&h.lab, a));
    let deltas = rt.block_on(async { watch_local(Target::unix(&proxy.path), WatchOptions::default()) });
    let mut w = Watcher { rt: &rt, h: &h, deltas, vip, seen: Vec::new(), last_revision: 0 };
    // The Lease names the holder a moment before its announcer records the address in the table
    // the watch serves, so a watcher that connects in between gets the address as an acquisition.
    if !w.expect_initial(secs(5)) {
        w.expect(Want::Acquired, secs(3));
    }
    let epoch = w.epoch().expect("connected after the snapshot");

    let others: Vec<u8> = (1..=3).filter(|n| *n != a).collect();
    // Placement is sticky: to bring the address back, the other nodes are excluded for a moment.
    let bring_back = |what: &str| {
        for o in &others {
            h.exclude_node(*o, true);
        }
        h.wait_holder("web", vip, secs(5), what, |x| x == Some(&*node_a));
        for o in &others {
            h.exclude_node(*o, false);
        }
    };

    // Away (the holder's LAN link goes down) and back.
    h.set_link(&ns, "eth0", false);
    h.wait_holder("web", vip, secs(5), "takeover from the watched node", |x| x.is_some_and(|x| x != node_a));
    w.expect(Want::Released, secs(3));
    h.set_link(&ns, "eth0", true);
    bring_back("the address comes back to the watched node");
    w.expect(Want::Acquired, secs(3));

    // The gRPC connection drops, and the address moves away (a hand-over: the watched node is
    // excluded) while it is down.
    proxy.cut();
    let cut_at = Instant::now();
    h.exclude_node(a, true);
    h.wait_holder("web", vip, secs(5), "hand-over while the watcher is cut off", |x| {
        x.is_some_and(|x| x != node_a)
    });
    h.exclude_node(a, false);
    std::thread::sleep(ms(500));
    assert!(w.epoch().is_none(), "the watcher did not notice the cut: {:?}", *w.deltas.connection().borrow());
    proxy.restore();
    let restored = Instant::now();
    // The back-off after a cut of about a second is a few seconds at most.
    w.expect(Want::Released, secs(8));
    assert_eq!(w.epoch(), Some(epoch), "same announcer, same epoch");
    h.log(&format!(
        "connection cut for {} ms; the move made meanwhile arrived as a change {} ms after the restore",
        (restored - cut_at).as_millis(),
        restored.elapsed().as_millis()
    ));

    // The announcer restarts (its address is elsewhere): a snapshot with the new epoch.
    cluster::restart_announcer(&h.lab, a).unwrap();
    w.expect(Want::Snapshot(ResyncReason::EpochChanged, false), secs(10));
    let new_epoch = w.epoch().expect("connected after the snapshot");
    assert_ne!(new_epoch, epoch, "a restarted announcer has a new epoch");
    h.wait_announcers_ready();
    bring_back("the address comes back to the restarted node");
    w.expect(Want::Acquired, secs(3));
    w.expect_quiet(secs(1));
    h.log(&format!("watcher saw, in order: {:#?}", w.seen));
    drop(w);
    drop(proxy);
}
