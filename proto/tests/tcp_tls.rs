//! The announcer API on TCP with mutual TLS, on 127.0.0.1 with certificates made at test time: a
//! client with a certificate from the client CA is served (API, health, reflection); one without a
//! certificate, or with one from another CA, is refused in the handshake. Bad TLS files are clear
//! errors. Reflection and health answer on the unix socket too.

mod pki;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use ferrolb_proto::server::{bind_tcp, bind_unix, serve_tcp_listener, serve_unix_listener};
use ferrolb_proto::tls::{ClientTlsFiles, ServerTlsFiles, TlsError, client_tls_config, server_tls_config};
use ferrolb_proto::{Announcement, AnnouncementTable, AnnouncerClient, AnnouncerService, SharedTable, v1};
use pki::{Ca, SERVER_NAME};
use tokio::sync::oneshot;
use tokio_stream::StreamExt;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

const WAIT: Duration = Duration::from_secs(10);

fn table() -> SharedTable {
    let table = SharedTable::new(AnnouncementTable::new("node-a", 1));
    let vip: IpAddr = "198.51.100.128".parse().unwrap();
    table.apply(Announcement::new(vip, "node-a", SystemTime::UNIX_EPOCH).with_service("default", "web"));
    table
}

struct Served {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<Result<(), ferrolb_proto::server::TcpServeError>>,
}

impl Served {
    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(WAIT, self.server).await.expect("server stops").unwrap().unwrap();
    }
}

fn serve(files: &ServerTlsFiles) -> Served {
    let tls = server_tls_config(files).unwrap();
    let listener = bind_tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve_tcp_listener(listener, tls, AnnouncerService::new(table()), async {
        let _ = stopped.await;
    }));
    Served { addr, stop: Some(stop), server }
}

async fn channel(addr: SocketAddr, tls: ClientTlsConfig) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("https://{addr}")).unwrap().tls_config(tls)?.connect().await
}

async fn list(channel: Channel) -> Result<v1::ListResponse, tonic::Status> {
    AnnouncerClient::new(channel).list_announcements(v1::ListRequest::default()).await.map(|r| r.into_inner())
}

/// Whether a client's attempt fails: at connect (the handshake) or at its first request (TLS 1.3
/// clients learn of a refused certificate only when they read).
async fn refused(addr: SocketAddr, tls: ClientTlsConfig) -> bool {
    match channel(addr, tls).await {
        Err(_) => true,
        Ok(channel) => list(channel).await.is_err(),
    }
}

async fn services_listed(channel: Channel) -> Vec<String> {
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut client = ServerReflectionClient::new(channel);
    let mut answers =
        client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let answer = answers.next().await.unwrap().unwrap();
    match answer.message_response.unwrap() {
        MessageResponse::ListServicesResponse(list) => list.service.into_iter().map(|s| s.name).collect(),
        other => panic!("not a service list: {other:?}"),
    }
}

async fn announcer_is_described(channel: Channel) -> bool {
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol("ferrolb.v1.Announcer".into())),
    };
    let mut client = ServerReflectionClient::new(channel);
    let mut answers =
        client.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    matches!(
        answers.next().await.unwrap().unwrap().message_response,
        Some(MessageResponse::FileDescriptorResponse(files)) if !files.file_descriptor_proto.is_empty()
    )
}

async fn assert_health_and_reflection(channel: Channel) {
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "ferrolb.v1.Announcer"] {
        let status =
            health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner().status;
        assert_eq!(status, ServingStatus::Serving as i32, "health of {service:?}");
    }
    let services = services_listed(channel.clone()).await;
    for name in ["ferrolb.v1.Announcer", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"] {
        assert!(services.iter().any(|s| s == name), "{name} not listed: {services:?}");
    }
    assert!(
        !services.iter().any(|s| s == "ferrolb.v1.Peer"),
        "the peer channel is not served here: {services:?}"
    );
    assert!(announcer_is_described(channel).await, "reflection describes ferrolb.v1.Announcer");
}

#[tokio::test]
async fn a_client_certificate_from_the_client_ca_is_served_others_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (server_ca, client_ca, stranger_ca) =
        (Ca::new(dir.path(), "server"), Ca::new(dir.path(), "client"), Ca::new(dir.path(), "stranger"));
    let server = server_ca.server(dir.path());
    let served =
        serve(&ServerTlsFiles { cert: server.cert, key: server.key, client_ca: client_ca.cert.clone() });

    let good = client_ca.client(dir.path());
    let files = ClientTlsFiles {
        cert: good.cert.clone(),
        key: good.key.clone(),
        ca: server_ca.cert.clone(),
        server_name: Some(SERVER_NAME.into()),
    };
    let channel =
        channel(served.addr, client_tls_config(&files).unwrap()).await.expect("mutual TLS handshake");
    let listed = list(channel.clone()).await.unwrap();
    assert_eq!(listed.announcements.len(), 1);
    assert_eq!(listed.announcements[0].ip, "198.51.100.128");
    assert_health_and_reflection(channel).await;
    // The same through the library's own client.
    let tls = client_tls_config(&files).unwrap();
    let via_library = ferrolb_proto::tcp_channel(&served.addr.to_string(), tls).await.unwrap();
    assert_eq!(list(via_library).await.unwrap().revision, listed.revision);

    let anonymous = ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(std::fs::read(&server_ca.cert).unwrap()))
        .domain_name(SERVER_NAME);
    assert!(refused(served.addr, anonymous).await, "a client without a certificate is refused");

    let stranger = stranger_ca.client(dir.path());
    let files = ClientTlsFiles { cert: stranger.cert, key: stranger.key, ..files };
    assert!(
        refused(served.addr, client_tls_config(&files).unwrap()).await,
        "a client certificate from another CA is refused"
    );

    // Plaintext HTTP/2 to the TLS port gets nothing.
    let plain = Endpoint::from_shared(format!("http://{}", served.addr)).unwrap().connect().await;
    if let Ok(plain) = plain {
        assert!(list(plain).await.is_err(), "plaintext is not served on the TLS port");
    }
    served.stop().await;
}

#[tokio::test]
async fn health_and_reflection_answer_on_the_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("announcer.sock");
    let listener = bind_unix(&path).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve_unix_listener(listener, AnnouncerService::new(table()), async {
        let _ = stopped.await;
    }));
    let channel = ferrolb_proto::unix_channel(&path).await.unwrap();
    assert_health_and_reflection(channel).await;
    stop.send(()).unwrap();
    tokio::time::timeout(WAIT, server).await.unwrap().unwrap().unwrap();
}

#[test]
fn bad_tls_files_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "server");
    let other = Ca::new(dir.path(), "other");
    let server = ca.server(dir.path());
    let client = ca.client(dir.path());
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a PEM file\n").unwrap();
    let broken = dir.path().join("broken.pem");
    std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n").unwrap();
    let good =
        ServerTlsFiles { cert: server.cert.clone(), key: server.key.clone(), client_ca: ca.cert.clone() };
    assert!(server_tls_config(&good).is_ok());

    let error = |files: ServerTlsFiles| server_tls_config(&files).unwrap_err();
    let missing = error(ServerTlsFiles { cert: dir.path().join("nope.pem"), ..good.clone() });
    assert!(matches!(missing, TlsError::Read { .. }), "{missing}");
    assert!(
        missing.to_string().starts_with("--grpc-tls-cert ") && missing.to_string().contains("nope.pem"),
        "{missing}"
    );
    let no_pem = error(ServerTlsFiles { key: garbage.clone(), ..good.clone() }).to_string();
    assert!(no_pem.contains("--grpc-tls-key") && no_pem.contains("no PEM PRIVATE KEY"), "{no_pem}");
    let no_ca = error(ServerTlsFiles { client_ca: garbage.clone(), ..good.clone() }).to_string();
    assert!(no_ca.contains("--grpc-client-ca") && no_ca.contains("no PEM CERTIFICATE"), "{no_ca}");
    let bad_pem = error(ServerTlsFiles { cert: broken.clone(), ..good.clone() }).to_string();
    assert!(bad_pem.contains("--grpc-tls-cert") && bad_pem.contains("bad PEM"), "{bad_pem}");
    // A key that is not the certificate's.
    let mismatch = error(ServerTlsFiles { key: client.key.clone(), ..good.clone() }).to_string();
    assert!(mismatch.contains("--grpc-tls-cert") && mismatch.contains("--grpc-tls-key"), "{mismatch}");

    let client_files =
        ClientTlsFiles { cert: client.cert, key: client.key, ca: other.cert, server_name: None };
    assert!(client_tls_config(&client_files).is_ok());
    let error = client_tls_config(&ClientTlsFiles { ca: garbage, ..client_files }).unwrap_err().to_string();
    assert!(error.contains("--tls-ca") && error.contains("no PEM CERTIFICATE"), "{error}");
}
