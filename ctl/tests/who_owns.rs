//! `ferrolbctl who-owns` against a real announcer gRPC server on a unix socket.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use ferrolb_proto::server::{AnnouncerService, SharedTable, bind_unix, serve_unix_listener};
use ferrolb_proto::table::{Announcement, AnnouncementTable};

async fn run(args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferrolbctl"))
        .arg("who-owns")
        .args(args)
        .output()
        .await
        .expect("ferrolbctl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn who_owns_reports_the_holder_nobody_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("announcer.sock");
    let table = SharedTable::new(AnnouncementTable::new("node1", 7));
    let vip: IpAddr = "198.51.100.128".parse().unwrap();
    table.apply(
        Announcement::new(vip, "node1", SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
            .with_service("default", "web")
            .with_interface("eth0"),
    );
    table.apply(
        Announcement::new("2001:db8:100::1000".parse().unwrap(), "node2", SystemTime::UNIX_EPOCH)
            .with_service("prod", "api"),
    );
    let listener = bind_unix(&socket).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_unix_listener(listener, AnnouncerService::new(table), async {
        let _ = stopped.await;
    }));
    let sock = socket.to_str().unwrap();

    let (code, out, err) = run(&["198.51.100.128", "--socket", sock]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("default/web") && out.contains("node1 (this node)") && out.contains("eth0"),
        "{out}"
    );
    assert!(out.contains("2027-01-15T08:00:00Z"), "since is shown: {out}");

    let (code, out, _) = run(&["2001:db8:100:0::1000", "--socket", sock, "--json"]).await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["node"], "node2");
    assert_eq!(v["local"], false);
    assert_eq!(v["ip"], "2001:db8:100::1000", "canonical form");
    assert_eq!(v["services"][0], "prod/api");

    let (code, out, _) = run(&["198.51.100.129", "--socket", sock]).await;
    assert_eq!(code, 1);
    assert!(out.contains("nobody announces it"), "{out}");

    let (code, _, err) = run(&["not-an-ip", "--socket", sock]).await;
    assert_eq!(code, 2);
    assert!(err.contains("not-an-ip"), "the message names the bad value: {err}");

    let (code, _, err) = run(&["198.51.100.128", "--socket", "/nonexistent/announcer.sock"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("cannot reach the announcer"), "{err}");

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
