//! The client over TCP with mutual TLS, against ferrolb-proto's real announcer service served by
//! tonic with a server certificate and a client CA (rcgen-generated), on loopback inside a network
//! namespace the test creates: the right client certificate works (unary calls and the watch), a
//! certificate from another CA and a wrong server name do not.

#[path = "support/announcer.rs"]
mod announcer;

use std::time::Duration;

use announcer::{LOCAL, OTHER, WAIT, held, ip};
use ferrolb_cni::{Client, Delta, Target, TlsTarget, WatchOptions, watch_local};
use ferrolb_proto::{AnnouncementTable, AnnouncerService, SharedTable};
use ferrolb_testkit::netns::{Netns, NsRuntime};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

const SERVER_NAME: &str = "announcer.ferrolb.test";

struct Pem {
    cert: String,
    key: String,
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(names: &[&str], issuer: &CertifiedIssuer<'static, KeyPair>) -> Pem {
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    Pem { cert: cert.pem(), key: key.serialize_pem() }
}

fn target(address: &str, ca_pem: &str, client: &Pem) -> TlsTarget {
    TlsTarget {
        address: address.to_string(),
        server_name: Some(SERVER_NAME.into()),
        ca_pem: ca_pem.as_bytes().to_vec(),
        cert_pem: client.cert.as_bytes().to_vec(),
        key_pem: client.key.as_bytes().to_vec(),
    }
}

#[test]
fn mutual_tls_over_tcp_accepts_the_right_client_only() {
    let ns = Netns::new("tls");
    let runtime = NsRuntime::new(&ns.name).unwrap();
    runtime.block_on(mutual_tls()).unwrap();
}

async fn mutual_tls() {
    let ca = new_ca("ferrolb test CA");
    let server = leaf(&[SERVER_NAME], &ca);
    let client = leaf(&["ferrolb-nic-agent"], &ca);
    let stranger_ca = new_ca("another CA");
    let stranger = leaf(&["ferrolb-nic-agent"], &stranger_ca);

    let mut table = AnnouncementTable::new(LOCAL, 9);
    table.apply(held("198.51.100.200", LOCAL));
    table.apply(held("198.51.100.201", OTHER));
    let table = SharedTable::new(table);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(&server.cert, &server.key))
        .client_ca_root(Certificate::from_pem(ca.pem()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(
        Server::builder()
            .tls_config(tls)
            .unwrap()
            .add_service(AnnouncerService::new(table.clone()).into_server())
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            }),
    );

    // The right client, with its PEM files read from disk as an agent would.
    let dir = tempfile::tempdir().unwrap();
    for (name, pem) in
        [("ca.pem", ca.pem()), ("tls.crt", client.cert.clone()), ("tls.key", client.key.clone())]
    {
        std::fs::write(dir.path().join(name), pem).unwrap();
    }
    let good = TlsTarget::from_files(
        &address,
        dir.path().join("ca.pem"),
        dir.path().join("tls.crt"),
        dir.path().join("tls.key"),
    )
    .unwrap()
    .with_server_name(SERVER_NAME);
    let good = Target::Tls(good);
    let mut client_api = Client::connect(&good).await.expect("the right client connects");
    let owner = client_api.get_owner(ip("198.51.100.201")).await.unwrap().expect("announced");
    assert_eq!(owner.announcement.node, OTHER);
    let outcome = client_api.report_programmed(ip("198.51.100.200"), "eth0", 0, None).await.unwrap();
    assert_eq!(outcome, ferrolb_proto::v1::ReportOutcome::Accepted);
    assert!(table.read().is_programmed(ip("198.51.100.200"), "eth0"));

    // The watch over mTLS: the snapshot, then a live change.
    let mut deltas = watch_local(good.clone(), WatchOptions::default());
    let first = tokio::time::timeout(WAIT, deltas.next()).await.unwrap().unwrap();
    let Delta::Resync { held: now, .. } = first else { panic!("{first:?}") };
    assert_eq!(now.iter().map(|a| a.ip).collect::<Vec<_>>(), vec![ip("198.51.100.200")]);
    table.apply(held("198.51.100.202", LOCAL));
    let next = tokio::time::timeout(WAIT, deltas.next()).await.unwrap().unwrap();
    assert!(matches!(&next, Delta::Acquired(a) if a.ip == ip("198.51.100.202")), "{next:?}");
    drop(deltas);

    // A certificate from another CA: the server refuses it (during the handshake or, with TLS 1.3,
    // on the first call).
    let refused = async {
        let mut client = Client::connect(&Target::Tls(target(&address, &ca.pem(), &stranger))).await?;
        client.get_owner(ip("198.51.100.200")).await
    };
    let refused = tokio::time::timeout(WAIT, refused).await.expect("an answer within the wait");
    assert!(refused.is_err(), "a client certificate from another CA must not be served: {refused:?}");

    // The right certificate, but the client expects another server name: the client refuses.
    let mut wrong_name = target(&address, &ca.pem(), &client);
    wrong_name.server_name = Some("someone-else.ferrolb.test".into());
    let error = Client::connect(&Target::Tls(wrong_name)).await.unwrap_err();
    assert!(error.to_string().contains(&format!("https://{address}")), "{error}");

    // Trusting another CA: the client refuses the server.
    let error =
        Client::connect(&Target::Tls(target(&address, &stranger_ca.pem(), &client))).await.unwrap_err();
    assert_eq!(error.metric_label(), "connect", "{error}");

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), serving).await.expect("server stops").unwrap().unwrap();
}
