//! The client library against the real announcer API (ferrolb-proto's server) on a unix socket:
//! typed unary calls, and a watch that outlives server restarts without a gap: it resumes by
//! revision when the announcer can, and says `Resync` with the reason when it cannot.

#[path = "support/announcer.rs"]
mod announcer;

use std::time::Duration;

use announcer::{Announcer, LOCAL, OTHER, WAIT, held, ip};
use ferrolb_cni::{
    Announced, Client, Connection, Delta, DeltaStream, ResyncReason, Target, WatchOptions, watch_local,
};
use ferrolb_proto::AnnouncementTable;
use ferrolb_proto::v1::{self, ReportOutcome};

/// The next delta, within [`WAIT`].
async fn next(deltas: &mut DeltaStream) -> Delta {
    tokio::time::timeout(WAIT, deltas.next()).await.expect("a delta within the wait").expect("the watch runs")
}

/// Asserts that no delta arrives for a while.
async fn quiet(deltas: &mut DeltaStream) {
    if let Ok(delta) = tokio::time::timeout(Duration::from_millis(300), deltas.next()).await {
        panic!("unexpected delta {delta:?}");
    }
}

async fn wait_connected(deltas: &DeltaStream, epoch: u64) {
    let mut connection = deltas.connection();
    tokio::time::timeout(WAIT, connection.wait_for(|c| *c == Connection::Connected { epoch }))
        .await
        .expect("connected within the wait")
        .unwrap();
}

fn ips(list: &[Announced]) -> Vec<String> {
    list.iter().map(|a| a.ip.to_string()).collect()
}

fn acquired(delta: &Delta) -> (String, u64) {
    match delta {
        Delta::Acquired(a) => (a.ip.to_string(), a.revision),
        other => panic!("expected Acquired, got {other:?}"),
    }
}

fn released_ip(delta: &Delta) -> String {
    match delta {
        Delta::Released(a) => a.ip.to_string(),
        other => panic!("expected Released, got {other:?}"),
    }
}

/// Fast reconnects, so that the test measures the protocol and not the back-off.
fn options() -> WatchOptions {
    WatchOptions {
        backoff: ferrolb_cni::BackoffPolicy {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
        },
        ..WatchOptions::default()
    }
}

#[tokio::test]
async fn the_watch_resumes_by_revision_after_a_server_restart_and_resyncs_after_an_announcer_restart() {
    let mut table = AnnouncementTable::new(LOCAL, 100).with_log_capacity(4);
    table.apply(held("198.51.100.200", LOCAL));
    table.apply(held("198.51.100.201", OTHER));
    let announcer = Announcer::start(table).await;
    let mut deltas = watch_local(Target::unix(&announcer.path), options());

    // The first stream starts with the node's full state; another node's address is not in it.
    let Delta::Resync { reason, held: now, released: lost } = next(&mut deltas).await else {
        panic!("no resync")
    };
    assert_eq!((reason, ips(&now), lost.len()), (ResyncReason::Initial, vec!["198.51.100.200".into()], 0));
    wait_connected(&deltas, 100).await;

    // Live changes: each local one once, in order.
    let r3 = announcer.table.apply(held("198.51.100.202", LOCAL)).unwrap();
    announcer.table.apply(held("198.51.100.200", OTHER)).unwrap();
    assert_eq!(acquired(&next(&mut deltas).await), ("198.51.100.202".into(), r3));
    assert_eq!(released_ip(&next(&mut deltas).await), "198.51.100.200");

    // The gRPC server restarts with the same table (same epoch); changes made while it is down
    // arrive after the reconnect as changes, in order, without a snapshot.
    let stopped = announcer.stop().await;
    let mut connection = deltas.connection();
    tokio::time::timeout(WAIT, connection.wait_for(|c| matches!(c, Connection::Disconnected { .. })))
        .await
        .expect("the watch notices")
        .unwrap();
    let r5 = stopped.table.apply(held("198.51.100.203", LOCAL)).unwrap();
    stopped.table.apply(held("198.51.100.209", OTHER)).unwrap();
    stopped.table.remove(ip("198.51.100.202")).unwrap();
    // Let the watch fail to connect a few times: its back-off must not lose its place.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let announcer = stopped.restart(None).await;
    assert_eq!(acquired(&next(&mut deltas).await), ("198.51.100.203".into(), r5));
    assert_eq!(released_ip(&next(&mut deltas).await), "198.51.100.202");
    quiet(&mut deltas).await;
    wait_connected(&deltas, 100).await;

    // The announcer restarts: a new process, a new epoch, revisions from 1 again. The watch cannot
    // resume and says so, with what the node holds now and what it lost.
    let stopped = announcer.stop().await;
    let mut table = AnnouncementTable::new(LOCAL, 200).with_log_capacity(4);
    table.apply(held("198.51.100.204", LOCAL));
    let announcer = stopped.restart(Some(table)).await;
    let Delta::Resync { reason, held: now, released: lost } = next(&mut deltas).await else {
        panic!("no resync")
    };
    assert_eq!(reason, ResyncReason::EpochChanged);
    assert_eq!(ips(&now), vec!["198.51.100.204"]);
    assert_eq!(ips(&lost), vec!["198.51.100.203"]);
    wait_connected(&deltas, 200).await;

    // More changes while down than the announcer's change log keeps: a resync, not a gap.
    let stopped = announcer.stop().await;
    for n in 0..6 {
        stopped.table.apply(held(&format!("198.51.100.{}", 210 + n), LOCAL)).unwrap();
    }
    stopped.table.remove(ip("198.51.100.204")).unwrap();
    let announcer = stopped.restart(None).await;
    let Delta::Resync { reason, held: now, released: lost } = next(&mut deltas).await else {
        panic!("no resync")
    };
    assert_eq!(reason, ResyncReason::Compacted);
    assert_eq!(now.len(), 6);
    assert_eq!(ips(&lost), vec!["198.51.100.204"]);

    // And live again afterwards.
    announcer.table.remove(ip("198.51.100.210")).unwrap();
    assert_eq!(released_ip(&next(&mut deltas).await), "198.51.100.210");
    quiet(&mut deltas).await;
    announcer.stop().await;
}

#[tokio::test]
async fn a_watch_started_before_the_announcer_connects_when_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("announcer.sock");
    let mut deltas = watch_local(Target::unix(&path), options());
    let mut connection = deltas.connection();
    let down =
        tokio::time::timeout(WAIT, connection.wait_for(|c| matches!(c, Connection::Disconnected { .. })))
            .await
            .expect("the first attempt fails")
            .unwrap()
            .clone();
    let Connection::Disconnected { error, retry_in, .. } = down else { unreachable!() };
    assert!(error.contains("announcer.sock"), "the error names the socket: {error}");
    assert!(retry_in <= Duration::from_millis(200), "bounded back-off: {retry_in:?}");

    // Serve on that very path.
    let mut table = AnnouncementTable::new(LOCAL, 7);
    table.apply(held("2001:db8:100::1000", LOCAL));
    let announcer = Announcer::start_at(path, table).await;
    let Delta::Resync { held: now, .. } = next(&mut deltas).await else { panic!("no resync") };
    assert_eq!(ips(&now), vec!["2001:db8:100::1000"]);
    announcer.stop().await;
}

#[tokio::test]
async fn typed_unary_calls() {
    let mut table = AnnouncementTable::new(LOCAL, 5);
    table.apply(held("198.51.100.200", LOCAL));
    table.apply(held("2001:db8:100::1000", OTHER));
    let announcer = Announcer::start(table).await;
    let mut client = Client::connect(&Target::unix(&announcer.path)).await.unwrap();

    let owner = client.get_owner(ip("198.51.100.200")).await.unwrap().expect("announced");
    assert_eq!(owner.announcement.node, LOCAL);
    assert!(owner.announcement.local);
    assert_eq!(owner.announcement.interfaces, vec!["eth0"]);
    assert!(owner.programming.is_empty());
    assert_eq!(client.get_owner(ip("198.51.100.99")).await.unwrap(), None, "NOT_FOUND is None");

    let all = client.list(v1::ListFilter::default()).await.unwrap();
    assert_eq!(
        (ips(&all.announcements), all.epoch, all.revision),
        (vec!["198.51.100.200".into(), "2001:db8:100::1000".into()], 5, 2)
    );
    let v6 = client
        .list(v1::ListFilter { family: v1::AddressFamily::Ipv6.into(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(ips(&v6.announcements), vec!["2001:db8:100::1000"]);

    let outcome = client.report_programmed(ip("198.51.100.200"), "eth0", 1, None).await.unwrap();
    assert_eq!(outcome, ReportOutcome::Accepted);
    assert!(announcer.table.read().is_programmed(ip("198.51.100.200"), "eth0"));
    let outcome =
        client.report_programmed(ip("2001:db8:100::1000"), "eth0", 2, Some("no route")).await.unwrap();
    assert_eq!(outcome, ReportOutcome::NotHeld, "another node's address");
    let owner = client.get_owner(ip("198.51.100.200")).await.unwrap().unwrap();
    assert_eq!(owner.programming.len(), 1);
    assert!(owner.programming[0].ok);

    let error = client.report_programmed(ip("198.51.100.200"), "not/valid", 1, None).await.unwrap_err();
    assert!(
        error.to_string().contains("ReportProgrammed") && error.to_string().contains("interface"),
        "{error}"
    );

    let missing = Client::connect(&Target::unix("/nonexistent/ferrolb/announcer.sock")).await.unwrap_err();
    assert!(missing.to_string().contains("/nonexistent/ferrolb/announcer.sock"), "{missing}");
    announcer.stop().await;
}
