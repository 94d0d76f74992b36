//! `ferrolb-nic-agent` end to end: the real binary, run inside a network namespace the test creates
//! (a veth pair whose both ends stay inside it: no link out, no route out), follows the real
//! announcer API (ferrolb-proto's server over a table the test changes) on a unix socket, and
//! programs the held addresses on `eth0`. Addresses are from 198.51.100.0/24 and 2001:db8::/32 only.
//!
//! Checked with the kernel (`ip -n <ns> -j address`) and the announcer's table (the agent's
//! ReportProgrammed calls): held addresses appear, lost ones go, addresses the agent did not add are
//! never touched (even when the node holds them), a restarted agent removes what an earlier run
//! added and the node no longer holds, and an unreachable announcer makes the agent withdraw its
//! addresses until it answers again.

#[path = "support/announcer.rs"]
mod announcer;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use announcer::{Announcer, LOCAL, OTHER, WAIT, held, ip};
use ferrolb_proto::AnnouncementTable;
use ferrolb_testkit::netns::{Netns, NsRuntime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const METRICS_PORT: u16 = 9464;

/// The agent process, killed on drop; its log goes to a file the failure messages show.
struct Agent {
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Agent {
    fn start(ns: &Netns, socket: &Path) -> Self {
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, env!("CARGO_BIN_EXE_ferrolb-nic-agent")])
            .arg("--socket")
            .arg(socket)
            .args(["--interface", "eth0", "--fence-after", "1s", "--resync-interval", "2s"])
            .args(["--metrics-addr", &format!("127.0.0.1:{METRICS_PORT}")])
            .env("RUST_LOG", "info,ferrolb_cni=debug")
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("start ferrolb-nic-agent");
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// SIGKILL: no chance to clean up, as after an OOM kill or a node's hard reboot of the pod.
    fn kill(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.log()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `check` holds, or panics with `what`, the addresses on eth0 and the agent's log.
async fn wait_until(what: &str, ns: &Netns, agent: &Agent, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {WAIT:?}\naddresses on eth0: {:?}\nagent log:\n{}",
            ns.addresses_with_protocol("eth0"),
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn has(ns: &Netns, address: &str) -> bool {
    ns.addresses("eth0").iter().any(|a| a == address)
}

/// GET /metrics from inside the namespace.
async fn scrape(runtime: &NsRuntime) -> String {
    runtime
        .run(async {
            let mut stream =
                tokio::net::TcpStream::connect(("127.0.0.1", METRICS_PORT)).await.expect("connect");
            let request = "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).await.unwrap();
            response
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_programs_held_addresses_removes_lost_ones_and_reports() {
    let ns = Netns::new("agent");
    ns.add_veth("eth0", "eth0p");
    // Addresses someone else put there: the agent must never touch them, held or not.
    ns.ip(&["address", "add", "198.51.100.77/32", "dev", "eth0"]);
    ns.ip(&["address", "add", "2001:db8:100::77/128", "dev", "eth0", "nodad"]);

    let mut table = AnnouncementTable::new(LOCAL, 31);
    table.apply(held("198.51.100.200", LOCAL));
    table.apply(held("2001:db8:100::1000", LOCAL));
    table.apply(held("198.51.100.201", OTHER));
    table.apply(held("198.51.100.77", LOCAL));
    let announcer = Announcer::start(table).await;
    let table = announcer.table.clone();
    let programmed = |addr: &str| table.read().is_programmed(ip(addr), "eth0");

    let agent = Agent::start(&ns, &announcer.path);
    wait_until("the held addresses are programmed", &ns, &agent, || {
        has(&ns, "198.51.100.200/32") && has(&ns, "2001:db8:100::1000/128")
    })
    .await;
    wait_until("each is reported ok for its current revision", &ns, &agent, || {
        programmed("198.51.100.200") && programmed("2001:db8:100::1000") && programmed("198.51.100.77")
    })
    .await;
    assert!(!has(&ns, "198.51.100.201/32"), "another node's address is not programmed");
    let protocols: Vec<_> =
        ns.addresses_with_protocol("eth0").into_iter().filter(|(a, _)| a == "198.51.100.200/32").collect();
    assert!(
        protocols.iter().all(|(_, p)| p.as_deref().is_none_or(|p| p == "102" || p == "0x66")),
        "the agent's mark: {protocols:?}"
    );

    // The node loses one address, gains another, and stops holding the foreign one.
    let changed = Instant::now();
    table.apply(held("198.51.100.200", OTHER)).unwrap();
    table.apply(held("198.51.100.202", LOCAL)).unwrap();
    table.remove(ip("198.51.100.77")).unwrap();
    wait_until("the lost address goes and the new one comes", &ns, &agent, || {
        !has(&ns, "198.51.100.200/32") && has(&ns, "198.51.100.202/32")
    })
    .await;
    let in_kernel = changed.elapsed();
    wait_until("the new address is reported", &ns, &agent, || programmed("198.51.100.202")).await;
    eprintln!("table change -> kernel {in_kernel:?}, -> report accepted {:?}", changed.elapsed());
    assert!(has(&ns, "198.51.100.77/32"), "an address the agent did not add stays when released");
    assert!(has(&ns, "2001:db8:100::77/128"));

    let metrics = scrape(&NsRuntime::new(&ns.name).unwrap()).await;
    for line in [
        r#"ferrolb_nic_agent_netlink_operations_total{op="add",result="ok"} 3"#,
        r#"ferrolb_nic_agent_netlink_operations_total{op="remove",result="ok"} 1"#,
        "ferrolb_nic_agent_addresses_programmed 2",
        r#"ferrolb_nic_agent_resyncs_total{reason="initial"} 1"#,
        "ferrolb_nic_agent_announcer_connected 1",
    ] {
        assert!(metrics.contains(line), "/metrics lacks {line}:\n{metrics}");
    }
    assert!(metrics.contains(r#"ferrolb_nic_agent_reports_total{outcome="accepted"}"#), "{metrics}");

    // The agent dies; while it is down the node loses .202 and gains .203. The next run removes
    // what the earlier one added and the node no longer holds, and leaves the rest alone.
    let first_log = agent.kill();
    table.remove(ip("198.51.100.202")).unwrap();
    table.apply(held("198.51.100.203", LOCAL)).unwrap();
    assert!(has(&ns, "198.51.100.202/32"), "nothing removed it yet:\n{first_log}");
    let restarting = Instant::now();
    let agent = Agent::start(&ns, &announcer.path);
    wait_until("the restarted agent reconciles", &ns, &agent, || {
        !has(&ns, "198.51.100.202/32") && has(&ns, "198.51.100.203/32") && has(&ns, "2001:db8:100::1000/128")
    })
    .await;
    eprintln!("agent start -> reconciled {:?}", restarting.elapsed());
    wait_until("and reports", &ns, &agent, || programmed("198.51.100.203")).await;
    assert!(has(&ns, "198.51.100.77/32") && has(&ns, "2001:db8:100::77/128"), "foreign addresses stay");

    // The announcer goes away: after --fence-after the agent withdraws its addresses (another
    // node takes them over), and programs them again when the announcer is back.
    let stopping = Instant::now();
    let stopped = announcer.stop().await;
    wait_until("the agent fences", &ns, &agent, || {
        !has(&ns, "198.51.100.203/32") && !has(&ns, "2001:db8:100::1000/128")
    })
    .await;
    eprintln!("announcer stopped -> addresses withdrawn {:?} (--fence-after 1s)", stopping.elapsed());
    assert!(has(&ns, "198.51.100.77/32") && has(&ns, "2001:db8:100::77/128"), "foreign addresses stay");
    // The table kept the agent's earlier ok reports; the ones that matter now are new.
    let mut reports = stopped.table.subscribe_reports();
    let announcer = stopped.restart(None).await;
    let back = Instant::now();
    wait_until("the agent programs again", &ns, &agent, || {
        has(&ns, "198.51.100.203/32") && has(&ns, "2001:db8:100::1000/128")
    })
    .await;
    let report = tokio::time::timeout(WAIT, async {
        loop {
            let report = reports.recv().await.expect("reports");
            if report.ip == ip("198.51.100.203") {
                return report;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no new report for 198.51.100.203; agent log:\n{}", agent.log()));
    assert!(report.ok && report.interface == "eth0", "{report:?}");
    eprintln!("announcer back -> programmed and reported again {:?}", back.elapsed());
    let metrics = scrape(&NsRuntime::new(&ns.name).unwrap()).await;
    assert!(metrics.contains("ferrolb_nic_agent_fences_total 1"), "{metrics}");
    drop(agent);
    announcer.stop().await;
}
