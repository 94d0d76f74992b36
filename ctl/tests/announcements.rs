//! `ferrolbctl announcements` (and `who-owns`) against a real announcer gRPC server, over its unix
//! socket and over TCP on 127.0.0.1 with mutual TLS (certificates made at test time).

#[path = "../../proto/tests/pki/mod.rs"]
mod pki;

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use ferrolb_proto::server::{bind_tcp, bind_unix, serve_tcp_listener, serve_unix_listener};
use ferrolb_proto::table::{Announcement, AnnouncementTable, Programming, ProgrammingState};
use ferrolb_proto::tls::{ServerTlsFiles, server_tls_config};
use ferrolb_proto::{AnnouncerService, SharedTable};
use pki::{Ca, SERVER_NAME};

async fn ferrolbctl(args: &[&str]) -> (i32, String, String) {
    let out =
        tokio::process::Command::new(env!("CARGO_BIN_EXE_ferrolbctl")).args(args).output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn table() -> SharedTable {
    let table = SharedTable::new(AnnouncementTable::new("node1", 7));
    let vip: IpAddr = "198.51.100.128".parse().unwrap();
    table.apply(
        Announcement::new(vip, "node1", SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
            .with_service("default", "web")
            .with_interface("eth0"),
    );
    table.update(|t| {
        t.set_programming(
            vip,
            Some(Programming { state: ProgrammingState::Failed, message: "eth0: no route".into() }),
        )
    });
    table.apply(
        Announcement::new("2001:db8:100::1000".parse().unwrap(), "node2", SystemTime::UNIX_EPOCH)
            .with_service("prod", "api"),
    );
    table
}

fn assert_listed(code: i32, out: &str, err: &str) {
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("IP "), "{out}");
    assert!(lines[1].starts_with("198.51.100.128") && lines[1].contains("default/web"), "{out}");
    assert!(lines[1].contains("failed") && lines[1].ends_with("eth0: no route"), "{out}");
    assert!(lines[2].starts_with("2001:db8:100::1000") && lines[2].contains("prod/api"), "{out}");
    assert_eq!(lines[3], "2 announcements at revision 2");
}

#[tokio::test]
async fn announcements_over_the_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("announcer.sock");
    let listener = bind_unix(&socket).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_unix_listener(listener, AnnouncerService::new(table()), async {
        let _ = stopped.await;
    }));
    let sock = socket.to_str().unwrap();

    let (code, out, err) = ferrolbctl(&["announcements", "--socket", sock]).await;
    assert_listed(code, &out, &err);

    let (code, out, err) =
        ferrolbctl(&["announcements", "--socket", sock, "-o", "json", "--family", "ipv6"]).await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["epoch"], 7);
    assert_eq!(v["announcements"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(v["announcements"][0]["node"], "node2");

    let (code, out, _) = ferrolbctl(&["announcements", "--socket", sock, "--local", "-o", "json"]).await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["announcements"][0]["ip"], "198.51.100.128");
    assert_eq!(v["announcements"][0]["programming"], "failed");
    assert_eq!(v["announcements"].as_array().unwrap().len(), 1);

    let (code, _, err) = ferrolbctl(&["announcements", "--socket", "/nonexistent/announcer.sock"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("cannot reach the announcer at /nonexistent/announcer.sock"), "{err}");

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn announcements_and_who_owns_over_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (server_ca, client_ca, stranger_ca) =
        (Ca::new(dir.path(), "server"), Ca::new(dir.path(), "client"), Ca::new(dir.path(), "stranger"));
    let server = server_ca.server(dir.path());
    let tls = server_tls_config(&ServerTlsFiles {
        cert: server.cert,
        key: server.key,
        client_ca: client_ca.cert.clone(),
    })
    .unwrap();
    let listener = bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_tcp_listener(listener, tls, AnnouncerService::new(table()), async {
        let _ = stopped.await;
    }));
    let good = client_ca.client(dir.path());
    let ca = server_ca.cert.to_str().unwrap();
    let tls_args = |leaf: &pki::Leaf| {
        vec![
            "--grpc-addr".to_owned(),
            addr.clone(),
            "--tls-cert".into(),
            leaf.cert.to_str().unwrap().into(),
            "--tls-key".into(),
            leaf.key.to_str().unwrap().into(),
            "--tls-ca".into(),
            ca.into(),
            "--tls-server-name".into(),
            SERVER_NAME.into(),
        ]
    };
    let with = |command: &[&str], leaf: &pki::Leaf| {
        let mut args: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        args.extend(tls_args(leaf));
        args
    };

    let args = with(&["announcements"], &good);
    let (code, out, err) = ferrolbctl(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_listed(code, &out, &err);

    let args = with(&["who-owns", "198.51.100.128", "--json"], &good);
    let (code, out, err) = ferrolbctl(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["services"][0], "default/web");

    let stranger = stranger_ca.client(dir.path());
    let args = with(&["announcements"], &stranger);
    let (code, out, err) = ferrolbctl(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(code, 2, "a certificate from another CA is refused: {out}");
    assert!(err.contains("error:"), "{err}");

    // TCP without the TLS files is a usage error, never a plaintext connection.
    let (code, _, err) = ferrolbctl(&["announcements", "--grpc-addr", &addr]).await;
    assert_eq!(code, 2);
    assert!(err.contains("--tls-cert") && err.contains("--tls-key") && err.contains("--tls-ca"), "{err}");

    let mut args = with(&["announcements"], &good);
    args[4] = dir.path().join("missing.pem").to_str().unwrap().into();
    let (code, _, err) = ferrolbctl(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert_eq!(code, 2);
    assert!(err.contains("--tls-cert") && err.contains("missing.pem: cannot read"), "{err}");

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
