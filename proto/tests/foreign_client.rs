//! Clients that are not ours on the announcer's unix socket: Google's gRPC client for Python
//! (grpcio, gRPC C-core) with its default channel, and a hand-made HTTP/2 request whose
//! `:authority` is the socket path (as grpc-java sends it). Both name the socket in `:authority`,
//! which h2 rejects unless `ferrolb_proto::authority` rewrites it.
//!
//! The grpcio test runs `tests/foreign/grpcio_client.py` with the Python of the venv that
//! `hack/grpc-venv.sh` prepares (`hack/test.sh` exports it as `FERROLB_GRPC_PYTHON`). Without the
//! venv it fails; it never skips.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use bytes::{Buf, BufMut, BytesMut};
use ferrolb_proto::server::{ServeError, bind_unix};
use ferrolb_proto::{Announcement, AnnouncementTable, AnnouncerService, SharedTable, serve_unix, v1};
use prost::Message;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const LOCAL: &str = "node-a";
const EPOCH: u64 = 1234;
const RESTARTED_EPOCH: u64 = 5678;
const WAIT: Duration = Duration::from_secs(30);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn web(addr: &str, node: &str) -> Announcement {
    Announcement::new(ip(addr), node, SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .with_service("default", "web")
        .with_interface("eth0")
}

fn table(epoch: u64) -> AnnouncementTable {
    let mut table = AnnouncementTable::new(LOCAL, epoch);
    table.apply(web("198.51.100.128", LOCAL).with_interface("eth1"));
    table.apply(web("2001:db8:100::1000", "node-b").with_service("prod", "api"));
    table.apply(web("198.51.100.129", "node-c"));
    table
}

/// The announcer API served on `path` until stopped.
struct Served {
    table: SharedTable,
    stop: oneshot::Sender<()>,
    server: JoinHandle<Result<(), ServeError>>,
}

impl Served {
    async fn start(path: &Path, table: AnnouncementTable) -> Self {
        let table = SharedTable::new(table);
        let (stop, stopped) = oneshot::channel::<()>();
        let server =
            tokio::spawn(serve_unix(path.to_path_buf(), AnnouncerService::new(table.clone()), async {
                let _ = stopped.await;
            }));
        tokio::time::timeout(WAIT, async {
            while !path.exists() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the socket appears");
        Self { table, stop, server }
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(WAIT, self.server).await.expect("the server stops").unwrap().unwrap();
    }
}

/// The venv's Python: `FERROLB_GRPC_PYTHON`, else `.venv-grpc/bin/python` at the repository root.
/// Panics when neither is there: this test never skips.
fn python() -> PathBuf {
    let python = std::env::var_os("FERROLB_GRPC_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-grpc/bin/python"));
    assert!(
        python.is_file(),
        "the foreign-client test needs the venv with grpcio and grpcio-tools, and {} does not exist: run \
         `hack/grpc-venv.sh` (hack/test.sh does) and export FERROLB_GRPC_PYTHON=$(hack/grpc-venv.sh)",
        python.display()
    );
    python
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect()
}

/// (kind, revision, ip) of each change a step reported, with every change's epoch checked.
fn changes(value: &Value, epoch: u64) -> Vec<(String, u64, String)> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["epoch"], json!(epoch), "{c}");
            (
                c["kind"].as_str().unwrap().to_owned(),
                c["revision"].as_u64().unwrap(),
                c["ip"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn kinds(expected: &[(&str, u64, &str)]) -> Vec<(String, u64, String)> {
    expected.iter().map(|(k, r, ip)| (format!("CHANGE_KIND_{k}"), *r, (*ip).to_owned())).collect()
}

#[tokio::test]
async fn grpcio_with_its_default_channel_uses_every_call() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("announcer.sock");
    let mut served = Some(Served::start(&path, table(EPOCH)).await);

    let mut child = tokio::process::Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/foreign/grpcio_client.py"))
        .arg(&path)
        .arg(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the venv's Python runs");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = child.stderr.take().unwrap();
    let mut steps: HashMap<String, Value> = HashMap::new();
    let mut restarted: Option<Served> = None;

    loop {
        let line = tokio::time::timeout(WAIT, lines.next_line()).await.expect("the client goes on").unwrap();
        let Some(line) = line else {
            let mut errors = String::new();
            stderr.read_to_string(&mut errors).await.unwrap();
            panic!("the client stopped after {:?}:\n{errors}", steps.keys().collect::<Vec<_>>());
        };
        let step: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        let name = step["step"].as_str().unwrap().to_owned();
        if name == "done" {
            break;
        }
        if name != "wait" {
            steps.insert(name, step);
            continue;
        }
        match step["for"].as_str().unwrap() {
            "live change" => {
                served.as_ref().unwrap().table.apply(web("198.51.100.130", LOCAL));
            }
            "changes while away" => {
                let table = &served.as_ref().unwrap().table;
                table.apply(web("198.51.100.131", "node-b"));
                table.remove(ip("198.51.100.129"));
            }
            "restart" => {
                served.take().unwrap().stop().await;
                assert!(!path.exists());
                restarted = Some(Served::start(&path, table(RESTARTED_EPOCH)).await);
            }
            other => panic!("the client waits for {other:?}"),
        }
        stdin.write_all(b"go\n").await.unwrap();
    }
    let status = tokio::time::timeout(WAIT, child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
    let step = |name: &str| steps.get(name).unwrap_or_else(|| panic!("no step {name}: {steps:?}"));

    assert!(step("versions")["grpcio"].as_str().unwrap().starts_with("1."));
    let owner = &step("get_owner")["announcement"];
    assert_eq!(owner["ip"], "198.51.100.128");
    assert_eq!(owner["node"], LOCAL);
    assert_eq!(owner["local"], true);
    assert_eq!(owner["family"], "ADDRESS_FAMILY_IPV4");
    assert_eq!(strings(&owner["services"]), ["default/web"]);
    assert_eq!(strings(&owner["interfaces"]), ["eth0", "eth1"]);
    assert_eq!((owner["since"].as_u64(), owner["revision"].as_u64()), (Some(1_700_000_000), Some(1)));
    for (name, code, message) in [
        (
            "get_owner_unparsable",
            "INVALID_ARGUMENT",
            r#"ip: "198.51.100.300" is not an IPv4 or IPv6 address"#,
        ),
        ("get_owner_empty", "INVALID_ARGUMENT", r#"ip: "" is empty: an IPv4 or IPv6 address is required"#),
        ("get_owner_unknown", "NOT_FOUND", "no node announces 198.51.100.200"),
        (
            "list_unknown_family",
            "INVALID_ARGUMENT",
            r#"filter.family: "7" is not an address family (0 for both, 1 for IPv4, 2 for IPv6)"#,
        ),
        (
            "watch_unknown_family",
            "INVALID_ARGUMENT",
            r#"filter.family: "9" is not an address family (0 for both, 1 for IPv4, 2 for IPv6)"#,
        ),
        (
            "report_bad_interface",
            "INVALID_ARGUMENT",
            r#"interface: "eth0/1" is not a valid Linux interface name"#,
        ),
        ("report_unparsable_ip", "INVALID_ARGUMENT", r#"ip: "fe80::1%eth0" is not an IPv4 or IPv6 address"#),
    ] {
        assert_eq!(
            (step(name)["code"].as_str(), step(name)["message"].as_str()),
            (Some(code), Some(message)),
            "{name}"
        );
    }
    let without_epoch = step("watch_without_epoch");
    assert_eq!(without_epoch["code"], "INVALID_ARGUMENT");
    assert!(
        without_epoch["message"]
            .as_str()
            .unwrap()
            .starts_with(r#"epoch: "0" is required with from_revision 6"#)
    );

    let list = step("list");
    assert_eq!(strings(&list["ips"]), ["198.51.100.128", "198.51.100.129", "2001:db8:100::1000"]);
    assert_eq!((list["revision"].as_u64(), list["epoch"].as_u64()), (Some(3), Some(EPOCH)));
    assert_eq!(strings(&step("list_ipv6")["ips"]), ["2001:db8:100::1000"]);

    let snapshot = &step("watch_snapshot")["changes"];
    assert_eq!(snapshot[0]["reason"], "RESYNC_REASON_INITIAL");
    assert_eq!(
        changes(snapshot, EPOCH),
        kinds(&[
            ("SNAPSHOT_START", 3, ""),
            ("ADDED", 3, "198.51.100.128"),
            ("ADDED", 3, "198.51.100.129"),
            ("ADDED", 3, "2001:db8:100::1000"),
            ("SNAPSHOT_END", 3, ""),
        ])
    );
    assert_eq!(
        changes(&json!([step("watch_live")["change"]]), EPOCH),
        kinds(&[("ADDED", 4, "198.51.100.130")])
    );
    assert_eq!(
        changes(&step("watch_resumed")["changes"], EPOCH),
        kinds(&[("ADDED", 5, "198.51.100.131"), ("REMOVED", 6, "198.51.100.129")]),
        "a resume by revision sends only what was missed, no snapshot"
    );
    let restarted_changes = &step("watch_restarted")["changes"];
    assert_eq!(restarted_changes[0]["reason"], "RESYNC_REASON_EPOCH_CHANGED");
    assert_eq!(
        changes(restarted_changes, RESTARTED_EPOCH),
        kinds(&[
            ("SNAPSHOT_START", 3, ""),
            ("ADDED", 3, "198.51.100.128"),
            ("ADDED", 3, "198.51.100.129"),
            ("ADDED", 3, "2001:db8:100::1000"),
            ("SNAPSHOT_END", 3, ""),
        ])
    );

    assert_eq!(step("report_ok")["outcome"], "REPORT_OUTCOME_ACCEPTED");
    assert_eq!(step("report_ok")["current_revision"], 1);
    assert_eq!(step("report_failed")["outcome"], "REPORT_OUTCOME_ACCEPTED");
    assert_eq!(step("report_not_held")["outcome"], "REPORT_OUTCOME_NOT_HELD");
    let restarted = restarted.unwrap();
    assert!(restarted.table.read().is_programmed(ip("198.51.100.128"), "eth0"));
    assert!(!restarted.table.read().is_programmed(ip("198.51.100.128"), "eth1"));
    restarted.stop().await;
}

/// What the server answered to one raw request on stream 1.
#[derive(Debug, PartialEq)]
enum RawAnswer {
    /// Response headers, the gRPC message and the trailers.
    Response { headers: Vec<(String, String)>, message: Vec<u8>, trailers: Vec<(String, String)> },
    /// RST_STREAM with this error code.
    Reset(u32),
}

fn write_frame(out: &mut BytesMut, kind: u8, flags: u8, stream_id: u32, payload: &[u8]) {
    out.put_uint(payload.len() as u64, 3);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream_id);
    out.put_slice(payload);
}

/// Sends one GetOwner request on a fresh HTTP/2 connection to `path` with `authority` as its
/// `:authority`, encoded the way gRPC C-core encodes it (literal fields, indexed into the dynamic
/// table), and reads the answer.
async fn raw_get_owner(path: &Path, authority: &str, ip: &str) -> RawAnswer {
    const HEADERS: u8 = 0x1;
    const END_STREAM: u8 = 0x1;
    const END_HEADERS: u8 = 0x4;
    let mut socket = UnixStream::connect(path).await.unwrap();
    let mut out = BytesMut::new();
    out.put_slice(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    write_frame(&mut out, 0x4, 0, 0, &[]);
    let block = loona_hpack::Encoder::new().encode([
        (&b":method"[..], &b"POST"[..]),
        (b":scheme", b"http"),
        (b":path", b"/ferrolb.v1.Announcer/GetOwner"),
        (b":authority", authority.as_bytes()),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
    ]);
    write_frame(&mut out, HEADERS, END_HEADERS, 1, &block);
    let request = v1::GetOwnerRequest { ip: ip.into() }.encode_to_vec();
    let mut message = vec![0];
    message.extend(u32::try_from(request.len()).unwrap().to_be_bytes());
    message.extend(request);
    write_frame(&mut out, 0x0, END_STREAM, 1, &message);
    socket.write_all(&out).await.unwrap();

    let mut decoder = loona_hpack::Decoder::new();
    let mut input = BytesMut::new();
    let (mut headers, mut body) = (None, Vec::new());
    loop {
        while input.len() < 9
            || input.len()
                < 9 + (usize::from(input[0]) << 16 | usize::from(input[1]) << 8 | usize::from(input[2]))
        {
            let read =
                tokio::time::timeout(WAIT, socket.read_buf(&mut input)).await.expect("an answer").unwrap();
            assert_ne!(read, 0, "the server closed the connection without answering");
        }
        let length = usize::from(input[0]) << 16 | usize::from(input[1]) << 8 | usize::from(input[2]);
        let (kind, flags) = (input[3], input[4]);
        let stream_id = u32::from_be_bytes([input[5], input[6], input[7], input[8]]);
        input.advance(9);
        let payload = input.split_to(length);
        match (kind, stream_id) {
            (0x4, 0) if flags & 0x1 == 0 => {
                let mut ack = BytesMut::new();
                write_frame(&mut ack, 0x4, 0x1, 0, &[]);
                socket.write_all(&ack).await.unwrap();
            }
            (0x3, 1) => return RawAnswer::Reset(u32::from_be_bytes(payload[..4].try_into().unwrap())),
            (HEADERS, 1) => {
                assert_ne!(flags & END_HEADERS, 0, "the answer's headers fit one frame");
                let decoded: Vec<(String, String)> = decoder
                    .decode(&payload)
                    .unwrap()
                    .into_iter()
                    .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
                    .collect();
                match headers.take() {
                    None if flags & END_STREAM == 0 => headers = Some(decoded),
                    // A trailers-only answer (an error) or the trailers after the message.
                    None => {
                        return RawAnswer::Response { headers: Vec::new(), message: body, trailers: decoded };
                    }
                    Some(headers) => {
                        return RawAnswer::Response { headers, message: body, trailers: decoded };
                    }
                }
            }
            (0x0, 1) => body.extend_from_slice(&payload),
            _ => {}
        }
    }
}

fn value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn a_raw_request_naming_the_socket_path_in_authority_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("announcer.sock");
    let served = Served::start(&path, table(EPOCH)).await;

    // grpc-java's and C-core's forms, and a valid one that must pass as it is.
    for authority in [path.to_str().unwrap(), "tmp%2Fannouncer.sock", "localhost"] {
        let answer = raw_get_owner(&path, authority, "198.51.100.128").await;
        let RawAnswer::Response { headers, message, trailers } = answer else {
            panic!("{authority:?}: {answer:?}");
        };
        assert_eq!(value(&headers, ":status"), Some("200"), "{authority:?}");
        assert_eq!(value(&trailers, "grpc-status"), Some("0"), "{authority:?}: {trailers:?}");
        let owner = v1::Owner::decode(&message[5..]).unwrap();
        assert_eq!(owner.announcement.unwrap().node, LOCAL);
    }
    let RawAnswer::Response { trailers, .. } =
        raw_get_owner(&path, "/run/ferrolb/announcer.sock", "nope").await
    else {
        panic!("answered with a reset");
    };
    assert_eq!(value(&trailers, "grpc-status"), Some("3"), "INVALID_ARGUMENT: {trailers:?}");
    // grpc-message is percent-encoded on the wire (gRPC over HTTP/2).
    assert_eq!(
        value(&trailers, "grpc-message"),
        Some("ip:%20%22nope%22%20is%20not%20an%20IPv4%20or%20IPv6%20address")
    );
    served.stop().await;
}

/// Why `ferrolb_proto::authority` exists: tonic served on the same socket without it resets the same
/// request with PROTOCOL_ERROR (h2 rejects the authority). When this fails, h2 accepts such
/// authorities by itself and the rewriting can go.
#[tokio::test]
async fn without_the_rewriting_h2_resets_such_requests() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.sock");
    let listener = bind_unix(&path).unwrap();
    let service = AnnouncerService::new(SharedTable::new(table(EPOCH)));
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service.into_server())
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)),
    );
    assert_eq!(raw_get_owner(&path, path.to_str().unwrap(), "198.51.100.128").await, RawAnswer::Reset(1));
    assert_eq!(raw_get_owner(&path, "tmp%2Fplain.sock", "198.51.100.128").await, RawAnswer::Reset(1));
    let valid = raw_get_owner(&path, "localhost", "198.51.100.128").await;
    assert!(matches!(valid, RawAnswer::Response { .. }), "{valid:?}");
    server.abort();
}
