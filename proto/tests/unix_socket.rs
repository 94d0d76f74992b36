//! The announcer API over a real unix socket in a temporary directory: server, client, health.

use std::net::IpAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ferrolb_proto::server::{ServeError, bind_unix};
use ferrolb_proto::table::ReportOutcome;
use ferrolb_proto::v1;
use ferrolb_proto::{
    Announcement, AnnouncementMirror, AnnouncementTable, AnnouncerClient, AnnouncerService, SharedTable,
    connect_unix, serve_unix, unix_channel,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::{Code, Streaming};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const LOCAL: &str = "node-a";
const EPOCH: u64 = 1234;
const WAIT: Duration = Duration::from_secs(10);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn since() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn web(addr: &str, node: &str) -> Announcement {
    Announcement::new(ip(addr), node, since()).with_service("default", "web").with_interface("eth0")
}

/// A served table, stopped (and checked to stop) when dropped through [`Announcer::stop`].
struct Announcer {
    _dir: tempfile::TempDir,
    path: PathBuf,
    table: SharedTable,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), ServeError>>>,
}

impl Announcer {
    async fn start(table: AnnouncementTable) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("announcer.sock");
        let table = SharedTable::new(table);
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve_unix(path.clone(), AnnouncerService::new(table.clone()), async {
            let _ = stopped.await;
        }));
        wait_for_socket(&path).await;
        Self { _dir: dir, path, table, stop: Some(stop), server: Some(server) }
    }

    async fn client(&self) -> AnnouncerClient<Channel> {
        connect_unix(&self.path).await.unwrap()
    }

    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        let served = tokio::time::timeout(WAIT, self.server.take().unwrap()).await.expect("server stops");
        served.unwrap().unwrap();
        assert!(!self.path.exists(), "the socket file is removed on shutdown");
    }
}

async fn wait_for_socket(path: &Path) {
    tokio::time::timeout(WAIT, async {
        while !path.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the socket appears");
}

fn table() -> AnnouncementTable {
    let mut table = AnnouncementTable::new(LOCAL, EPOCH);
    table.apply(web("198.51.100.128", LOCAL).with_interface("eth1"));
    table.apply(
        Announcement::new(ip("2001:db8:100::1000"), "node-b", since())
            .with_service("prod", "api")
            .with_service("default", "web"),
    );
    table.apply(Announcement::new(ip("198.51.100.129"), "node-c", since()).with_service("prod", "db"));
    table
}

async fn next(stream: &mut Streaming<v1::Change>) -> v1::Change {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("a change arrives")
        .expect("the stream goes on")
        .unwrap()
}

fn kind(change: &v1::Change) -> v1::ChangeKind {
    v1::ChangeKind::try_from(change.kind).unwrap()
}

fn summary(change: &v1::Change) -> (u64, v1::ChangeKind, String) {
    (change.revision, kind(change), change.announcement.as_ref().map(|a| a.ip.clone()).unwrap_or_default())
}

/// Reads from `stream` into `mirror` until it is current at `revision` (and not inside a snapshot).
async fn follow_until(stream: &mut Streaming<v1::Change>, mirror: &mut AnnouncementMirror, revision: u64) {
    while mirror.revision() < revision || mirror.in_snapshot() {
        mirror.apply(next(stream).await).unwrap();
    }
}

fn ips(announcements: &[v1::Announcement]) -> Vec<&str> {
    announcements.iter().map(|a| a.ip.as_str()).collect()
}

#[tokio::test]
async fn get_owner_answers_for_held_unknown_and_invalid_addresses() {
    let announcer = Announcer::start(table()).await;
    let mut client = announcer.client().await;

    let owner =
        client.get_owner(v1::GetOwnerRequest { ip: "198.51.100.128".into() }).await.unwrap().into_inner();
    let announcement = owner.announcement.unwrap();
    assert_eq!(announcement.node, LOCAL);
    assert!(announcement.local);
    assert_eq!(announcement.interfaces, vec!["eth0", "eth1"]);
    assert_eq!(
        announcement.services,
        vec![v1::ServiceRef { namespace: "default".into(), name: "web".into() }]
    );
    assert_eq!(announcement.family, i32::from(v1::AddressFamily::Ipv4));
    assert_eq!(announcement.since.unwrap().seconds, 1_700_000_000);
    assert_eq!(announcement.revision, 1);
    assert!(owner.programming.is_empty());

    let shared = client
        .get_owner(v1::GetOwnerRequest { ip: "2001:DB8:100:0::1000".into() })
        .await
        .unwrap()
        .into_inner()
        .announcement
        .unwrap();
    assert_eq!(shared.ip, "2001:db8:100::1000", "answers use the canonical form");
    assert!(!shared.local);
    assert_eq!(shared.node, "node-b");
    assert_eq!(shared.services.len(), 2);

    let unknown = client.get_owner(v1::GetOwnerRequest { ip: "198.51.100.200".into() }).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(unknown.message().contains("198.51.100.200"), "{}", unknown.message());

    let invalid = client.get_owner(v1::GetOwnerRequest { ip: "198.51.100.300".into() }).await.unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert_eq!(invalid.message(), r#"ip: "198.51.100.300" is not an IPv4 or IPv6 address"#);
    announcer.stop().await;
}

#[tokio::test]
async fn list_applies_every_filter() {
    let announcer = Announcer::start(table()).await;
    let mut client = announcer.client().await;
    let mut list = async |filter: v1::ListFilter| {
        client.list_announcements(v1::ListRequest { filter: Some(filter) }).await.map(|r| r.into_inner())
    };

    let all = list(v1::ListFilter::default()).await.unwrap();
    assert_eq!(ips(&all.announcements), vec!["198.51.100.128", "198.51.100.129", "2001:db8:100::1000"]);
    assert_eq!((all.revision, all.epoch), (3, EPOCH));

    let by_node = list(v1::ListFilter { node: "node-c".into(), ..Default::default() }).await.unwrap();
    assert_eq!(ips(&by_node.announcements), vec!["198.51.100.129"]);
    let by_namespace =
        list(v1::ListFilter { namespace: "default".into(), ..Default::default() }).await.unwrap();
    assert_eq!(ips(&by_namespace.announcements), vec!["198.51.100.128", "2001:db8:100::1000"]);
    let v6 =
        list(v1::ListFilter { family: v1::AddressFamily::Ipv6.into(), ..Default::default() }).await.unwrap();
    assert_eq!(ips(&v6.announcements), vec!["2001:db8:100::1000"]);
    let local = list(v1::ListFilter { only_local: true, ..Default::default() }).await.unwrap();
    assert_eq!(ips(&local.announcements), vec!["198.51.100.128"]);
    let combined = list(v1::ListFilter {
        namespace: "prod".into(),
        family: v1::AddressFamily::Ipv4.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(ips(&combined.announcements), vec!["198.51.100.129"]);

    let bad = list(v1::ListFilter { family: 7, ..Default::default() }).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().starts_with(r#"filter.family: "7""#), "{}", bad.message());
    announcer.stop().await;
}

#[tokio::test]
async fn watch_from_zero_sends_the_snapshot_then_live_changes_in_order() {
    let announcer = Announcer::start(table()).await;
    let mut client = announcer.client().await;
    let mut stream = client.watch_announcements(v1::WatchRequest::default()).await.unwrap().into_inner();

    let start = next(&mut stream).await;
    assert_eq!(kind(&start), v1::ChangeKind::SnapshotStart);
    assert_eq!(start.resync_reason, i32::from(v1::ResyncReason::Initial));
    let mut snapshot = Vec::new();
    for _ in 0..3 {
        snapshot.push(summary(&next(&mut stream).await));
    }
    let added = v1::ChangeKind::Added;
    assert_eq!(
        snapshot,
        vec![
            (3, added, "198.51.100.128".into()),
            (3, added, "198.51.100.129".into()),
            (3, added, "2001:db8:100::1000".into()),
        ]
    );
    assert_eq!(summary(&next(&mut stream).await), (3, v1::ChangeKind::SnapshotEnd, String::new()));

    announcer.table.apply(web("198.51.100.130", LOCAL));
    announcer.table.apply(web("198.51.100.128", "node-b"));
    announcer.table.remove(ip("198.51.100.129"));
    let mut live = Vec::new();
    for _ in 0..3 {
        let change = next(&mut stream).await;
        assert_eq!(change.epoch, EPOCH);
        live.push(summary(&change));
    }
    assert_eq!(
        live,
        vec![
            (4, v1::ChangeKind::Added, "198.51.100.130".into()),
            (5, v1::ChangeKind::Updated, "198.51.100.128".into()),
            (6, v1::ChangeKind::Removed, "198.51.100.129".into()),
        ]
    );
    drop(stream);
    announcer.stop().await;
}

#[tokio::test]
async fn a_watcher_that_reconnects_misses_nothing() {
    let announcer = Announcer::start(table()).await;
    let mut client = announcer.client().await;
    let filter = v1::ListFilter { only_local: true, ..Default::default() };
    let mut mirror = AnnouncementMirror::new(Some(filter.clone()));
    let mut stream = client.watch_announcements(mirror.watch_request()).await.unwrap().into_inner();
    follow_until(&mut stream, &mut mirror, 3).await;
    assert_eq!(mirror.announcements().count(), 1);

    // Changes while the stream is up, then the watcher disconnects and more happen while it is away:
    // an address moves to this node, one leaves it, one is added elsewhere.
    announcer.table.apply(web("198.51.100.140", LOCAL));
    follow_until(&mut stream, &mut mirror, 4).await;
    drop(stream);
    drop(client);
    announcer.table.apply(web("198.51.100.129", LOCAL));
    announcer.table.apply(web("198.51.100.128", "node-c"));
    announcer.table.apply(web("198.51.100.141", "node-b"));
    announcer.table.apply(web("198.51.100.140", LOCAL).with_interface("eth9"));

    let mut client = announcer.client().await;
    let request = mirror.watch_request();
    assert_eq!((request.from_revision, request.epoch), (4, EPOCH));
    let mut stream = client.watch_announcements(request).await.unwrap().into_inner();
    let mut resumed = Vec::new();
    while mirror.revision() < 8 {
        let change = next(&mut stream).await;
        resumed.push(summary(&change));
        mirror.apply(change).unwrap();
    }
    assert_eq!(
        resumed,
        vec![
            (5, v1::ChangeKind::Added, "198.51.100.129".into()),
            (6, v1::ChangeKind::Removed, "198.51.100.128".into()),
            (8, v1::ChangeKind::Updated, "198.51.100.140".into()),
        ],
        "no snapshot, only the changes this filter sees"
    );
    let list =
        client.list_announcements(v1::ListRequest { filter: Some(filter) }).await.unwrap().into_inner();
    assert_eq!(mirror.announcements().cloned().collect::<Vec<_>>(), list.announcements);

    // Live again after the resume.
    announcer.table.remove(ip("198.51.100.140"));
    assert_eq!(summary(&next(&mut stream).await), (9, v1::ChangeKind::Removed, "198.51.100.140".into()));
    drop(stream);
    announcer.stop().await;
}

#[tokio::test]
async fn resuming_from_a_compacted_revision_or_another_epoch_resyncs() {
    let announcer = Announcer::start(table().with_log_capacity(2)).await;
    let mut client = announcer.client().await;
    for n in 0..5u8 {
        announcer.table.apply(web(&format!("198.51.100.{}", 150 + n), "node-b"));
    }
    let too_old = v1::WatchRequest { from_revision: 3, epoch: EPOCH, filter: None };
    let mut stream = client.watch_announcements(too_old).await.unwrap().into_inner();
    let start = next(&mut stream).await;
    assert_eq!(kind(&start), v1::ChangeKind::SnapshotStart);
    assert_eq!(start.resync_reason, i32::from(v1::ResyncReason::Compacted));
    assert_eq!(start.revision, 8);
    let mut mirror = AnnouncementMirror::new(None);
    mirror.apply(start).unwrap();
    follow_until(&mut stream, &mut mirror, 8).await;
    assert_eq!(mirror.announcements().count(), 8);
    drop(stream);

    // Still resumable: the log holds revisions 7 and 8.
    let recent = v1::WatchRequest { from_revision: 6, epoch: EPOCH, filter: None };
    let mut stream = client.watch_announcements(recent).await.unwrap().into_inner();
    assert_eq!(summary(&next(&mut stream).await).0, 7);
    drop(stream);

    let restarted = v1::WatchRequest { from_revision: 8, epoch: EPOCH + 1, filter: None };
    let mut stream = client.watch_announcements(restarted).await.unwrap().into_inner();
    assert_eq!(next(&mut stream).await.resync_reason, i32::from(v1::ResyncReason::EpochChanged));
    drop(stream);

    let no_epoch = v1::WatchRequest { from_revision: 8, epoch: 0, filter: None };
    let error = client.watch_announcements(no_epoch).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().starts_with(r#"epoch: "0" is required with from_revision 8"#),
        "{}",
        error.message()
    );
    announcer.stop().await;
}

#[tokio::test]
async fn programming_reports_are_recorded_and_published() {
    let announcer = Announcer::start(table()).await;
    let mut reports = announcer.table.subscribe_reports();
    let mut client = announcer.client().await;
    let report = |ip: &str, interface: &str, ok: bool, error: &str, revision: u64| v1::ReportRequest {
        ip: ip.into(),
        interface: interface.into(),
        ok,
        error_message: error.into(),
        revision,
    };

    let failed = client
        .report_programmed(report("198.51.100.128", "eth1", false, "nft: table busy", 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(failed.outcome, i32::from(v1::ReportOutcome::Accepted));
    assert_eq!(failed.current_revision, 1);
    let ok =
        client.report_programmed(report("198.51.100.128", "eth0", true, "", 0)).await.unwrap().into_inner();
    assert_eq!(ok.outcome, i32::from(v1::ReportOutcome::Accepted));

    let published = tokio::time::timeout(WAIT, reports.recv()).await.unwrap().unwrap();
    assert_eq!((published.interface.as_str(), published.ok), ("eth1", false));
    assert_eq!(published.error_message, "nft: table busy");
    let published = tokio::time::timeout(WAIT, reports.recv()).await.unwrap().unwrap();
    assert_eq!((published.interface.as_str(), published.ok, published.revision), ("eth0", true, 1));

    assert!(announcer.table.read().is_programmed(ip("198.51.100.128"), "eth0"));
    assert!(!announcer.table.read().is_programmed(ip("198.51.100.128"), "eth1"));
    let owner =
        client.get_owner(v1::GetOwnerRequest { ip: "198.51.100.128".into() }).await.unwrap().into_inner();
    let programming: Vec<_> =
        owner.programming.iter().map(|p| (p.interface.as_str(), p.ok, p.error_message.as_str())).collect();
    assert_eq!(programming, vec![("eth0", true, ""), ("eth1", false, "nft: table busy")]);
    assert!(owner.programming.iter().all(|p| p.reported_at.is_some() && p.revision == 1));

    let stale =
        client.report_programmed(report("198.51.100.128", "eth0", true, "", 9)).await.unwrap().into_inner();
    assert_eq!((stale.outcome, stale.current_revision), (i32::from(v1::ReportOutcome::Stale), 1));
    let remote =
        client.report_programmed(report("198.51.100.129", "eth0", true, "", 0)).await.unwrap().into_inner();
    assert_eq!(remote.outcome, i32::from(v1::ReportOutcome::NotHeld));
    let nobody =
        client.report_programmed(report("198.51.100.250", "eth0", true, "", 0)).await.unwrap().into_inner();
    assert_eq!((nobody.outcome, nobody.current_revision), (i32::from(v1::ReportOutcome::NotHeld), 0));
    assert_eq!(
        announcer.table.update(|t| t.record_report(ferrolb_proto::ProgrammingReport {
            ip: ip("198.51.100.129"),
            interface: "eth0".into(),
            ok: true,
            error_message: String::new(),
            revision: 0,
            reported_at: SystemTime::now(),
        })),
        ReportOutcome::NotHeld { current: 3 }
    );

    for (request, field) in [
        (report("not-an-ip", "eth0", true, "", 0), "ip: \"not-an-ip\""),
        (report("198.51.100.128", "", true, "", 0), "interface: \"\""),
        (report("198.51.100.128", "eth0/1", true, "", 0), "interface: \"eth0/1\""),
        (report("198.51.100.128", "eth0", true, "but broken", 0), "error_message: \"but broken\""),
    ] {
        let error = client.report_programmed(request).await.unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument);
        assert!(error.message().starts_with(field), "{} should name {field}", error.message());
    }
    announcer.stop().await;
}

#[tokio::test]
async fn the_health_service_reports_serving() {
    let announcer = Announcer::start(table()).await;
    let mut health = HealthClient::new(unix_channel(&announcer.path).await.unwrap());
    for service in ["", "ferrolb.v1.Announcer"] {
        let status =
            health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner().status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }
    let unknown = health.check(HealthCheckRequest { service: "nope".into() }).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    announcer.stop().await;
}

#[tokio::test]
async fn shutdown_ends_open_watches_so_that_clients_resume() {
    let announcer = Announcer::start(table()).await;
    let mut client = announcer.client().await;
    let mut stream = client.watch_announcements(v1::WatchRequest::default()).await.unwrap().into_inner();
    next(&mut stream).await;
    let path = announcer.path.clone();
    announcer.stop().await;
    let end = tokio::time::timeout(WAIT, async {
        loop {
            match stream.next().await {
                Some(Ok(_)) => continue,
                Some(Err(status)) => return Some(status.code()),
                None => return None,
            }
        }
    })
    .await
    .unwrap();
    assert!(matches!(end, Some(Code::Unavailable) | None), "{end:?}");
    assert!(!path.exists());
}

#[tokio::test]
async fn the_socket_has_mode_0660_and_replaces_only_a_stale_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("announcer.sock");

    // A socket left by a dead announcer: nobody listens, so it is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(std::fs::symlink_metadata(&path).unwrap().file_type().is_socket());
    let listener = bind_unix(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660);

    // A live one is left alone.
    let in_use = bind_unix(&path).unwrap_err();
    assert!(matches!(in_use, ServeError::InUse { .. }), "{in_use}");
    drop(listener);

    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, "keep me").unwrap();
    let error = bind_unix(&file).unwrap_err();
    assert!(matches!(error, ServeError::NotASocket { .. }), "{error}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");

    // A missing directory is created, with search permission for the socket's group only.
    let missing = dir.path().join("run/ferrolb/announcer.sock");
    let listener = bind_unix(&missing).unwrap();
    let created = std::fs::metadata(dir.path().join("run/ferrolb")).unwrap();
    assert!(created.is_dir());
    // 0750 less the umask: never writable by the group nor open to others.
    assert_eq!(created.permissions().mode() & 0o727, 0o700, "{:o}", created.permissions().mode());
    assert!(std::fs::symlink_metadata(&missing).unwrap().file_type().is_socket());
    drop(listener);

    // One that cannot be created (a file is in the way) is named with the reason.
    let blocked = file.join("announcer.sock");
    let error = bind_unix(&blocked).unwrap_err();
    assert!(matches!(error, ServeError::CreateDirectory { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains(&format!("cannot create directory {}: ", file.display())), "{message}");

    let served = serve_unix(&blocked, AnnouncerService::new(SharedTable::new(table())), async {}).await;
    assert!(matches!(served, Err(ServeError::CreateDirectory { .. })));
}

#[tokio::test]
async fn connecting_to_a_missing_socket_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.sock");
    let error = connect_unix(&path).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "cannot connect to the announcer on {}: No such file or directory (os error 2)",
            path.display()
        )
    );
}

#[tokio::test]
async fn an_open_health_watch_does_not_hold_up_shutdown() {
    let announcer = Announcer::start(table()).await;
    let mut health = HealthClient::new(unix_channel(&announcer.path).await.unwrap());
    let mut statuses =
        health.watch(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    let first = tokio::time::timeout(WAIT, statuses.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    let started = std::time::Instant::now();
    announcer.stop().await;
    assert!(started.elapsed() < ferrolb_proto::server::SHUTDOWN_GRACE + Duration::from_secs(2));
}

/// Every request field the server checks, over the socket: `INVALID_ARGUMENT`, with a message that
/// starts with the field and the value.
#[tokio::test]
async fn every_invalid_argument_names_its_field_and_value() {
    let announcer = Announcer::start(table()).await;
    let mut client = announcer.client().await;
    let filter = |node: &str, namespace: &str, family: i32| {
        Some(v1::ListFilter { node: node.into(), namespace: namespace.into(), family, only_local: false })
    };
    let report = |ip: &str, interface: &str, ok: bool, error: &str| v1::ReportRequest {
        ip: ip.into(),
        interface: interface.into(),
        ok,
        error_message: error.into(),
        revision: 0,
    };
    let get_owner = [
        ("", r#"ip: "" is empty"#),
        ("198.51.100.300", r#"ip: "198.51.100.300" is not"#),
        ("fe80::1%eth0", r#"ip: "fe80::1%eth0" is not"#),
        ("198.51.100.0/24", r#"ip: "198.51.100.0/24" is not"#),
    ];
    let filters = [
        (filter("", "", 3), r#"filter.family: "3" is not an address family"#),
        (filter("", "", -1), r#"filter.family: "-1" is not an address family"#),
        (filter("Node-A", "", 0), r#"filter.node: "Node-A" is not a Kubernetes node name"#),
        (filter("", "prod/x", 0), r#"filter.namespace: "prod/x" is not a Kubernetes namespace name"#),
    ];
    let reports = [
        (report("", "eth0", true, ""), r#"ip: "" is empty"#),
        (report("nope", "eth0", true, ""), r#"ip: "nope" is not"#),
        (report("198.51.100.128", "", true, ""), r#"interface: "" is empty"#),
        (
            report("198.51.100.128", "a-very-long-name0", true, ""),
            r#"interface: "a-very-long-name0" is longer"#,
        ),
        (report("198.51.100.128", "eth0:1", true, ""), r#"interface: "eth0:1" is not"#),
        (report("198.51.100.128", "..", true, ""), r#"interface: ".." is not"#),
        (
            report("198.51.100.128", "eth0", true, "oops"),
            r#"error_message: "oops" must be empty when ok is true"#,
        ),
    ];

    let mut failures = Vec::new();
    for (ip, expected) in get_owner {
        failures.push((client.get_owner(v1::GetOwnerRequest { ip: ip.into() }).await.unwrap_err(), expected));
    }
    for (filter, expected) in filters {
        failures.push((
            client.list_announcements(v1::ListRequest { filter: filter.clone() }).await.unwrap_err(),
            expected,
        ));
        let watch = v1::WatchRequest { filter, ..Default::default() };
        failures.push((client.watch_announcements(watch).await.unwrap_err(), expected));
    }
    let no_epoch = v1::WatchRequest { from_revision: 2, epoch: 0, filter: None };
    failures.push((
        client.watch_announcements(no_epoch).await.unwrap_err(),
        r#"epoch: "0" is required with from_revision 2"#,
    ));
    for (request, expected) in reports {
        failures.push((client.report_programmed(request).await.unwrap_err(), expected));
    }
    for (status, expected) in failures {
        assert_eq!(status.code(), Code::InvalidArgument, "{expected}: {status:?}");
        assert!(
            status.message().starts_with(expected),
            "{:?} should start with {expected:?}",
            status.message()
        );
    }
    assert!(
        !announcer.table.read().is_programmed(ip("198.51.100.128"), "eth0"),
        "nothing invalid was recorded"
    );
    announcer.stop().await;
}

/// A channel to `path` whose streams get `window` bytes of HTTP/2 flow-control window: a stream
/// that is never read stops the server's writes to it after that much.
async fn channel_with_window(path: &Path, window: u32) -> Channel {
    let socket = path.to_path_buf();
    tonic::transport::Endpoint::from_static("http://announcer.ferrolb.local")
        .initial_stream_window_size(window)
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let socket = socket.clone();
            async move { tokio::net::UnixStream::connect(socket).await.map(hyper_util::rt::TokioIo::new) }
        }))
        .await
        .unwrap()
}

/// A watcher that never reads fills its bounded buffer and stops there: the announcer's writes and
/// the other watchers (on their own connection or on the stalled one's) go on at once, and the
/// stalled watcher, once it reads again, is told to resync and gets a snapshot.
#[tokio::test]
async fn a_watcher_that_never_reads_delays_no_other_watcher() {
    const CHANGES: u64 = 600;
    let announcer = Announcer::start(table().with_log_capacity(64)).await;
    let shared = channel_with_window(&announcer.path, 1024).await;
    let mut stalled = AnnouncerClient::new(shared.clone())
        .watch_announcements(v1::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut same_connection = AnnouncerClient::new(shared)
        .watch_announcements(v1::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut own_connection =
        announcer.client().await.watch_announcements(v1::WatchRequest::default()).await.unwrap().into_inner();
    let (mut same_mirror, mut own_mirror) = (AnnouncementMirror::new(None), AnnouncementMirror::new(None));
    follow_until(&mut same_connection, &mut same_mirror, 3).await;
    follow_until(&mut own_connection, &mut own_mirror, 3).await;

    let mut latencies = Vec::new();
    for n in 0..CHANGES {
        let started = std::time::Instant::now();
        let revision =
            announcer.table.apply(web(&format!("198.51.{}.{}", 101 + n / 250, n % 250), "node-b")).unwrap();
        for (stream, mirror) in
            [(&mut same_connection, &mut same_mirror), (&mut own_connection, &mut own_mirror)]
        {
            let change = next(stream).await;
            assert_eq!((kind(&change), change.revision), (v1::ChangeKind::Added, revision));
            mirror.apply(change).unwrap();
        }
        latencies.push(started.elapsed());
    }
    latencies.sort_unstable();
    let (median, worst) = (latencies[latencies.len() / 2], latencies[latencies.len() - 1]);
    eprintln!(
        "{CHANGES} changes beside a stalled watcher: delivery to both live watchers median {median:?}, worst {worst:?}"
    );
    assert!(worst < Duration::from_secs(1), "worst {worst:?}");

    // The stalled watcher reads again: what was buffered for it, then a resync.
    let current = announcer.table.read().revision();
    let mut mirror = AnnouncementMirror::new(None);
    let mut resync = None;
    while mirror.revision() < current || mirror.in_snapshot() {
        let change = next(&mut stalled).await;
        if kind(&change) == v1::ChangeKind::SnapshotStart
            && change.resync_reason != i32::from(v1::ResyncReason::Initial)
        {
            resync = Some((v1::ResyncReason::try_from(change.resync_reason).unwrap(), change.revision));
        }
        mirror.apply(change).unwrap();
    }
    assert_eq!(
        resync,
        Some((v1::ResyncReason::Compacted, current)),
        "the stalled watcher fell behind the log"
    );
    assert_eq!(mirror.announcements().count(), 3 + CHANGES as usize);
    assert_eq!(mirror.announcements().collect::<Vec<_>>(), own_mirror.announcements().collect::<Vec<_>>());
    drop((stalled, same_connection, own_connection));
    announcer.stop().await;
}
