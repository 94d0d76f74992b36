//! `--datapath delegate` with the real CNI agent: `ferrolb-nic-agent` runs next to each announcer,
//! in the node's namespace, on the node's socket (or on the announcer's TCP listener with mutual
//! TLS), and programs the held VIP on `eth0`. In delegate mode nothing else makes a VIP reachable
//! (the lab's nodes have `arp_ignore=1`, so their kernels answer ARP only for addresses on the
//! receiving interface, and the announcer runs no responder), so what the client sees is what the
//! agent did.
//!
//! - traffic flows only once the holder's agent programmed the address, and its announcer sends
//!   the gratuitous ARP only then; the address leaves the NIC when the node loses it (link down),
//!   on a hand-over while alive (the holder's Node excluded from load balancers) and on SIGTERM
//!   of the holder's announcer (its hand-over on shutdown);
//! - an agent whose netlink call fails makes the announcer raise the Warning Event
//!   `ProgrammingFailed` with the agent's error, and nothing answers for the address;
//! - the agent over TCP with mutual TLS (rcgen certificates made here): a client certificate from
//!   another CA programs nothing; the right one programs and reports.
//!
//! Needs root; fails loudly (never skips) without it.

mod support;

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use ferrolb_lab::Lab;
use ferrolb_lab::cluster;
use ferrolb_proto::v1;
use ferrolb_testkit::fixtures::ServiceFixture as _;
use nix::sys::signal::Signal;
use support::raw::{self, Captured};
use support::{Harness, ms, node_number, secs, v4_service};

fn node(i: u8) -> String {
    format!("node{i}")
}

/// The holder's entry for `vip` in ListAnnouncements on `socket` (default when absent).
fn local_entry(socket: &Path, vip: IpAddr) -> v1::Announcement {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut client = ferrolb_proto::connect_unix(socket).await.unwrap();
        let filter = v1::ListFilter { only_local: true, ..Default::default() };
        let list =
            client.list_announcements(v1::ListRequest { filter: Some(filter) }).await.unwrap().into_inner();
        list.announcements.into_iter().find(|a| a.ip == vip.to_string()).unwrap_or_default()
    })
}

fn state(entry: &v1::Announcement) -> v1::ProgrammingState {
    v1::ProgrammingState::try_from(entry.programming_state).unwrap_or(v1::ProgrammingState::Unspecified)
}

/// Polls node `holder`'s ListAnnouncements until `vip` is in `want`.
fn wait_state(h: &Harness, holder: u8, vip: IpAddr, want: v1::ProgrammingState, timeout: Duration) {
    let socket = cluster::announcer_socket(&h.lab, holder);
    let start = Instant::now();
    loop {
        let entry = local_entry(&socket, vip);
        if state(&entry) == want {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "{vip} on node{holder}: programming state {:?} after {timeout:?}, wanted {want:?}: {entry:?}\n\
             agent log:\n{}",
            state(&entry),
            h.agent_log(holder)
        );
        std::thread::sleep(ms(50));
    }
}

/// ARP replies for `ip` to requests the client sends every 50 ms for `duration`.
fn arp_replies(h: &Harness, ip: IpAddr, duration: Duration) -> Vec<raw::Reply> {
    let port = h.client_port();
    port.drain();
    let start = Instant::now();
    let mut frames: Vec<Captured> = Vec::new();
    while start.elapsed() < duration {
        port.solicit(ip).unwrap();
        frames.extend(port.capture(ms(50)));
    }
    raw::replies_for(&frames, ip)
}

/// Waits until the Lease of web/`ip` names another node than `old`.
fn wait_moved(h: &Harness, ip: IpAddr, old: u8, timeout: Duration, what: &str) -> (u8, Duration) {
    let (new, took) = h.wait_holder("web", ip, timeout, what, |x| x.is_some_and(|x| x != node(old)));
    (node_number(&new.unwrap()), took)
}

#[test]
fn the_nic_agent_makes_the_vip_reachable_and_removes_it_on_loss_handover_and_sigterm() {
    let h = Harness::up("agent-delegate", 3, &["--datapath", "delegate", "--delegate-report-timeout", "30s"]);
    h.default_pool_and_policy();
    let vip = h.create_service(v4_service("web"), 1)[0];
    let holder = h.wait_any_holder("web", vip);
    let others: Vec<u8> = (1..=3).filter(|n| *n != holder).collect();

    // Agents on every node but the holder: none of them holds the address, so nothing answers.
    for n in &others {
        h.start_agent(*n, &["--interface", "eth0"]);
    }
    wait_state(&h, holder, vip, v1::ProgrammingState::Pending, secs(5));
    let silent = arp_replies(&h, vip, ms(1500));
    assert!(silent.is_empty(), "ARP for {vip} answered before any agent programmed it: {silent:?}");
    assert!(h.http_get(vip, ms(500)).is_err(), "HTTP to {vip} worked before any agent programmed it");
    assert!(h.nodes_with_address(vip).is_empty(), "{vip} on a NIC before the holder's agent runs");

    // The holder's agent: the address appears on its eth0, then the gratuitous ARP, then traffic.
    let port = h.client_port();
    port.drain();
    let (frames, started, programmed_after) = std::thread::scope(|s| {
        let capture = s.spawn(|| port.capture(secs(3)));
        std::thread::sleep(ms(100));
        let started = Instant::now();
        h.start_agent(holder, &["--interface", "eth0"]);
        let programmed_after =
            h.wait_address_on(vip, &[holder], secs(3), "the holder's agent programs the VIP");
        (capture.join().unwrap(), started, programmed_after)
    });
    let garps = raw::gratuitous_for(&frames, vip);
    assert!(!garps.is_empty(), "no gratuitous ARP for {vip} within 3 s of the holder's agent start");
    assert!(garps.iter().all(|(at, _, _)| *at > started), "a gratuitous ARP before the agent ran");
    assert!(garps.iter().all(|(_, r, _)| r.eth_src == h.mac(holder)), "gratuitous ARP not from node{holder}");
    wait_state(&h, holder, vip, v1::ProgrammingState::Programmed, secs(3));
    assert_eq!(h.wait_http(vip, None, secs(5)), node(holder));
    h.log(&format!(
        "node{holder}'s agent started: {vip} on its eth0 after {} ms, first gratuitous ARP after {} ms",
        programmed_after.as_millis(),
        (garps[0].0 - started).as_millis()
    ));

    // Loss: the holder's LAN link goes down (it still reaches the API over mgmt0).
    let at = Instant::now();
    h.set_link(&h.lab.node_ns(holder), "eth0", false);
    let (second, moved) = wait_moved(&h, vip, holder, secs(5), "takeover after the holder's link went down");
    let only = h.wait_address_on(vip, &[second], secs(5), "the VIP leaves the old holder's NIC on loss");
    assert_eq!(h.wait_http(vip, Some(&node(second)), secs(5)), node(second));
    h.log(&format!(
        "loss: Lease node{holder} -> node{second} {} ms after link down; VIP only on node{second}'s NIC {} ms \
         after it; HTTP from node{second} {} ms after it",
        moved.as_millis(),
        (moved + only).as_millis(),
        at.elapsed().as_millis()
    ));

    // The link comes back: placement is sticky, the address stays where it is.
    h.set_link(&h.lab.node_ns(holder), "eth0", true);
    std::thread::sleep(secs(1));
    h.wait_address_on(vip, &[second], ms(100), "the VIP stays with its holder when the old one returns");

    // Hand-over while alive: the holder's Node gets excluded from load balancers; it hands the
    // Lease to another node and its agent removes the address.
    let at = Instant::now();
    h.exclude_node(second, true);
    let (third, moved) = wait_moved(&h, vip, second, secs(5), "hand-over from an excluded node");
    h.wait_address_on(vip, &[third], secs(5), "the VIP leaves the NIC of the node that handed it over");
    assert_eq!(h.wait_http(vip, Some(&node(third)), secs(5)), node(third));
    h.log(&format!(
        "hand-over: Lease node{second} -> node{third} {} ms after the exclusion; VIP only on node{third}'s NIC \
         {} ms after it",
        moved.as_millis(),
        at.elapsed().as_millis()
    ));
    h.exclude_node(second, false);
    let holder = third;

    // SIGTERM of the holder's announcer: it hands over, exits, and its agent removes the address.
    let at = Instant::now();
    let pid = cluster::kill_announcer(&h.lab, holder, Signal::SIGTERM).unwrap();
    let (fourth, moved) = wait_moved(&h, vip, holder, secs(5), "hand-over on SIGTERM");
    h.wait_address_on(vip, &[fourth], secs(8), "the VIP leaves the SIGTERMed node's NIC");
    let removed = at.elapsed();
    assert!(cluster::wait_exit(pid, secs(10)), "the announcer of node{holder} did not exit after SIGTERM");
    assert_eq!(h.wait_http(vip, Some(&node(fourth)), secs(5)), node(fourth));
    h.log(&format!(
        "SIGTERM: Lease node{holder} -> node{fourth} {} ms after the signal; VIP only on node{fourth}'s NIC {} ms \
         after it",
        moved.as_millis(),
        removed.as_millis()
    ));
    // The agent is told by the watch (the release reaches it before the announcer exits), not by
    // its fence (--fence-after, 5 s by default).
    assert!(
        removed < secs(4),
        "the VIP left node{holder}'s NIC only {removed:?} after SIGTERM: by the fence?"
    );
}

#[test]
fn a_nic_agent_whose_netlink_call_fails_raises_programming_failed() {
    let h = Harness::up("agent-fails", 2, &["--datapath", "delegate", "--delegate-report-timeout", "60s"]);
    // The kernel refuses IPv6 addresses on an interface with IPv6 disabled: the agent's netlink add
    // fails, as it would on a NIC that went away or a full address table.
    for n in 1..=2 {
        ferrolb_lab::run(
            "ip",
            &["netns", "exec", &h.lab.node_ns(n), "sysctl", "-q", "-w", "net.ipv6.conf.eth0.disable_ipv6=1"],
        )
        .unwrap();
        h.start_agent(n, &["--interface", "eth0"]);
    }
    h.default_pool_and_policy();
    let vip = h.create_service(
        support::service("web").with_family_policy("SingleStack").with_ip_families(&["IPv6"]),
        1,
    )[0];
    let holder = h.wait_any_holder("web", vip);
    let started = Instant::now();
    // The report timeout is 60 s: an Event within 10 s comes from the agent's failed report.
    let event = h.wait_event(
        "web",
        "Warning",
        "ProgrammingFailed",
        &["the CNI agent failed to program", &vip.to_string(), "eth0"],
        secs(10),
    );
    h.log(&format!(
        "{} ms after the holder was known: Event {:?}",
        started.elapsed().as_millis(),
        event.note
    ));
    wait_state(&h, holder, vip, v1::ProgrammingState::Failed, secs(3));
    let entry = local_entry(&cluster::announcer_socket(&h.lab, holder), vip);
    assert!(entry.programming_message.starts_with("eth0: "), "{entry:?}");
    assert!(h.nodes_with_address(vip).is_empty(), "{vip} is on a NIC although the agent failed");
    let port = h.client_port();
    let replies = port.resolve(vip, 5, ms(300)).unwrap();
    assert!(replies.is_empty(), "{vip} answered although its agent failed: {replies:?}");
}

/// rcgen certificates written to `dir`: a CA with the announcers' server certificate (a DNS name
/// only, as inside a cluster) and an agent certificate, and another CA's agent certificate.
mod certs {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
    };
    use std::path::Path;

    pub const SERVER_NAME: &str = "ferrolb-announcer.ferrolb-system.svc";

    fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    }

    fn leaf(dir: &Path, name: &str, san: &str, issuer: &CertifiedIssuer<'static, KeyPair>) {
        let mut params = CertificateParams::new(vec![san.to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, san);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, issuer).unwrap();
        std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }

    pub fn write(dir: &Path) {
        let ca = new_ca("ferrolb conformance CA");
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        leaf(dir, "server", SERVER_NAME, &ca);
        leaf(dir, "agent", "ferrolb-nic-agent", &ca);
        leaf(dir, "stranger", "ferrolb-nic-agent", &new_ca("another CA"));
    }
}

#[test]
fn the_nic_agent_over_tcp_with_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    certs::write(dir.path());
    let file = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let (cert, key, ca) = (file("server.crt"), file("server.key"), file("ca.pem"));
    let h = Harness::up(
        "agent-tls",
        2,
        &[
            "--datapath",
            "delegate",
            "--delegate-report-timeout",
            "30s",
            // Each node namespace has its own port space: every announcer listens on its own.
            "--grpc-listen",
            "0.0.0.0:7443",
            "--grpc-tls-cert",
            &cert,
            "--grpc-tls-key",
            &key,
            "--grpc-client-ca",
            &ca,
        ],
    );
    h.default_pool_and_policy();
    let vip = h.create_service(v4_service("web"), 1)[0];
    let holder = h.wait_any_holder("web", vip);
    let address = format!("{}:7443", Lab::node_v4(holder));
    let agent_args = |who: &str| {
        vec![
            "--interface".to_string(),
            "eth0".into(),
            "--grpc-addr".into(),
            address.clone(),
            "--tls-cert".into(),
            file(&format!("{who}.crt")),
            "--tls-key".into(),
            file(&format!("{who}.key")),
            "--tls-ca".into(),
            ca.clone(),
            "--tls-server-name".into(),
            certs::SERVER_NAME.into(),
        ]
    };

    // A certificate from another CA: the announcer refuses it, nothing is programmed.
    let stranger = agent_args("stranger");
    let stranger: Vec<&str> = stranger.iter().map(String::as_str).collect();
    h.start_agent(holder, &stranger);
    std::thread::sleep(secs(3));
    assert!(h.nodes_with_address(vip).is_empty(), "an agent with another CA's certificate programmed {vip}");
    wait_state(&h, holder, vip, v1::ProgrammingState::Pending, secs(1));
    let log = h.agent_log(holder);
    assert!(
        log.contains(&format!("https://{address}")),
        "the refused agent's log names the announcer:\n{log}"
    );
    cluster::signal_process(&h.lab, &cluster::nic_agent_role(holder), Signal::SIGKILL).unwrap();
    std::thread::sleep(ms(200));

    // The right certificate: programmed, reported, and the VIP answers.
    let good = agent_args("agent");
    let good: Vec<&str> = good.iter().map(String::as_str).collect();
    let started = Instant::now();
    h.start_agent(holder, &good);
    let took = h.wait_address_on(vip, &[holder], secs(5), "the agent over mTLS programs the VIP");
    wait_state(&h, holder, vip, v1::ProgrammingState::Programmed, secs(3));
    assert_eq!(h.wait_http(vip, None, secs(5)), node(holder));
    h.log(&format!(
        "agent over TCP+mTLS at {address}: {vip} programmed {} ms after start, reported; HTTP through it \
         after {} ms",
        took.as_millis(),
        started.elapsed().as_millis()
    ));
}
