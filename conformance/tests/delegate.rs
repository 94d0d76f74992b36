//! `--datapath delegate` end to end in the network-namespace lab: the test plays the node's CNI
//! agent on the holder's announcer socket. Before the agent reports an address programmed no
//! gratuitous ARP goes out; a failed report is a Warning Event `ProgrammingFailed` on the Service
//! (through kube-sim) and shows in ListAnnouncements; an ok report starts the gratuitous burst.
//!
//! Needs root; fails loudly (never skips) without it.

mod support;

use std::net::IpAddr;

use ferrolb_proto::v1;
use support::{Harness, ms, secs, v4_service};

fn local_entry(socket: &std::path::Path, vip: IpAddr) -> v1::Announcement {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut client = ferrolb_proto::connect_unix(socket).await.unwrap();
        let filter = v1::ListFilter { only_local: true, ..Default::default() };
        let list =
            client.list_announcements(v1::ListRequest { filter: Some(filter) }).await.unwrap().into_inner();
        list.announcements.into_iter().find(|a| a.ip == vip.to_string()).unwrap_or_default()
    })
}

fn report(socket: &std::path::Path, vip: IpAddr, interfaces: &[String], error: Option<&str>) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut client = ferrolb_proto::connect_unix(socket).await.unwrap();
        for interface in interfaces {
            let request = v1::ReportRequest {
                ip: vip.to_string(),
                interface: interface.clone(),
                ok: error.is_none(),
                error_message: error.unwrap_or_default().to_owned(),
                revision: 0,
            };
            let answer = client.report_programmed(request).await.unwrap().into_inner();
            assert_eq!(answer.outcome, v1::ReportOutcome::Accepted as i32, "{answer:?}");
        }
    })
}

fn state(entry: &v1::Announcement) -> v1::ProgrammingState {
    v1::ProgrammingState::try_from(entry.programming_state).unwrap()
}

#[test]
fn delegate_mode_announces_after_the_agents_report_and_warns_on_a_failed_one() {
    // A long report timeout: this test is about reports, not about their absence.
    let h = Harness::up("delegate", 2, &["--datapath", "delegate", "--delegate-report-timeout", "60s"]);
    h.default_pool_and_policy();
    let vip = h.create_service(v4_service("web"), 1)[0];
    let holder = h.wait_any_holder("web", vip);
    let socket = ferrolb_lab::cluster::announcer_socket(&h.lab, holder);

    // The holder shows the address pending until the agent reports.
    let started = std::time::Instant::now();
    let mut entry = local_entry(&socket, vip);
    while (entry.interfaces.is_empty() || state(&entry) != v1::ProgrammingState::Pending)
        && started.elapsed() < secs(10)
    {
        std::thread::sleep(ms(100));
        entry = local_entry(&socket, vip);
    }
    assert_eq!(state(&entry), v1::ProgrammingState::Pending, "{entry:?}");
    assert!(!entry.interfaces.is_empty(), "{entry:?}");
    let port = h.client_port();
    port.drain();
    let quiet = port.capture(secs(2));
    assert!(raw_gratuitous(&quiet, vip).is_empty(), "gratuitous ARP for {vip} before any report");

    report(&socket, vip, &entry.interfaces, Some("test agent: no route to eth0"));
    let event = h.wait_event(
        "web",
        "Warning",
        "ProgrammingFailed",
        &["test agent: no route to eth0", &vip.to_string()],
        secs(10),
    );
    h.log(&format!("Event: {:?}", event.note));
    let failed = local_entry(&socket, vip);
    assert_eq!(state(&failed), v1::ProgrammingState::Failed, "{failed:?}");
    assert!(failed.programming_message.contains("test agent: no route to eth0"), "{failed:?}");
    assert_eq!(failed.revision, entry.revision, "a report moves no revision");
    let after_failure = port.capture(secs(1));
    assert!(raw_gratuitous(&after_failure, vip).is_empty(), "gratuitous ARP for {vip} after a failed report");

    let frames = std::thread::scope(|s| {
        let capture = s.spawn(|| port.capture(secs(3)));
        std::thread::sleep(ms(200));
        report(&socket, vip, &entry.interfaces, None);
        capture.join().unwrap()
    });
    let garps = raw_gratuitous(&frames, vip);
    assert!(!garps.is_empty(), "no gratuitous ARP for {vip} within 3 s of the ok report");
    assert_eq!(garps[0].1.eth_src, h.mac(holder), "sent by the holder node{holder}");
    assert_eq!(state(&local_entry(&socket, vip)), v1::ProgrammingState::Programmed);
}

fn raw_gratuitous(
    frames: &[support::raw::Captured],
    vip: IpAddr,
) -> Vec<(std::time::Instant, support::raw::Reply, String)> {
    support::raw::gratuitous_for(frames, vip)
}
