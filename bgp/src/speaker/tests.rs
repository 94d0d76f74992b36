use std::time::Duration;

use super::*;

/// A connect whose SYNs go unanswered is given up at the connect-retry time, and the status says
/// so. The listener wants a TCP MD5 signature from us and we send none, so Linux drops our SYNs
/// without an answer, exactly as a router with another password does; before the status said
/// this, such a peer showed no error at all.
#[tokio::test]
async fn an_unanswered_connect_times_out_and_says_why() {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    sockopt::set_md5(&listener, IpAddr::V4(Ipv4Addr::LOCALHOST), b"the router's password").expect("MD5");
    let mut config = PeerConfig::new(65001, 65000, Ipv4Addr::new(198, 51, 100, 11));
    config.connect_retry = Duration::from_millis(300);
    config.connect_retry_max = Duration::from_millis(300);
    let transport = PeerTransport::new(listener.local_addr().expect("address"));
    let (_routes_tx, routes_rx) = watch::channel(Routes::default());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (status_tx, mut status_rx) = watch::channel(PeerStatus::INITIAL);
    let task = tokio::spawn(run_peer(config, transport, routes_rx, shutdown_rx, status_tx, None));

    let status = tokio::time::timeout(Duration::from_secs(5), status_rx.wait_for(|s| s.last_error.is_some()))
        .await
        .expect("no last_error within 5 s")
        .expect("status sender alive")
        .clone();
    let error = status.last_error.as_deref().unwrap_or_default();
    assert!(error.starts_with("connect: no answer within 300ms"), "{error}");
    assert!(error.contains("MD5"), "{error}");
    assert_eq!((status.state, status.established_count), (State::Active, 0));

    shutdown_tx.send_replace(true);
    task.await.expect("peer task").expect("run_peer");
}
