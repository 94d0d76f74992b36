//! The lab with a cluster: kube-sim in the switch namespace reached over the management network,
//! Node objects, ferrolb-ipam and the announcers running, link and process faults, the probe, and
//! `down` removing everything. Needs root and network namespaces; fails loudly without them, and
//! fails (after checking everything else) when `ferrolb-announcer` has not been built.

use ferrolb_lab::Lab;
use ferrolb_lab::cluster::{self, ANNOUNCER, ClusterInfo, IPAM, KUBE_SIM};
use ferrolb_lab::netns::NsRuntime;
use ferrolb_lab::probe::{self, ProbeOptions};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ferrolb-lab");

fn prefix() -> String {
    format!("flbt{}", std::process::id())
}

fn lab_cmd(args: &[&str]) -> Output {
    Command::new(BIN).arg("--prefix").arg(prefix()).args(args).output().expect("running ferrolb-lab")
}

fn ok(args: &[&str]) -> String {
    let out = lab_cmd(args);
    assert!(
        out.status.success(),
        "`ferrolb-lab {}` failed ({}):\nstdout: {}\nstderr: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn our_namespaces() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().expect("running ip");
    let p = format!("{}-", prefix());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&p))
        .map(str::to_string)
        .collect()
}

fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty() && !stat.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
}

struct Guard;
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = lab_cmd(&["down"]);
    }
}

/// Lists Nodes through `server` (or the kubeconfig's) from inside namespace `ns`.
fn list_nodes(ns: &str, info: &ClusterInfo, server: Option<&str>) -> anyhow::Result<Vec<Node>> {
    let rt = NsRuntime::new(ns)?;
    let kubeconfig = info.kubeconfig.clone();
    let server = server.map(str::to_string);
    rt.block_on(async move {
        let mut config = kube_sim::config_from_kubeconfig(&kubeconfig).await?;
        if let Some(s) = server {
            config.cluster_url = s.parse()?;
        }
        config.read_timeout = Some(Duration::from_secs(3));
        config.connect_timeout = Some(Duration::from_secs(3));
        let api: Api<Node> = Api::all(kube::Client::try_from(config)?);
        anyhow::Ok(api.list(&Default::default()).await?.items)
    })?
}

fn ipam_lease_holder(info: &ClusterInfo) -> Option<String> {
    let rt = info.runtime().unwrap();
    let i = info.clone();
    rt.block_on(async move {
        let api: Api<Lease> = Api::namespaced(i.client().await?, cluster::SYSTEM_NAMESPACE);
        anyhow::Ok(api.get_opt("ferrolb-ipam").await?.and_then(|l| l.spec).and_then(|s| s.holder_identity))
    })
    .unwrap()
    .unwrap()
}

use ferrolb_testkit::eventually_blocking as eventually;

#[test]
fn cluster_up_serves_the_api_over_mgmt_and_down_cleans() {
    let started = Instant::now();
    let id = Command::new("id").arg("-u").output().expect("running id");
    assert_eq!(
        String::from_utf8_lossy(&id.stdout).trim(),
        "0",
        "the lab test must run as root (it creates network namespaces); it does not skip"
    );
    let bin_dir: PathBuf = Path::new(BIN).parent().unwrap().to_path_buf();
    for b in [KUBE_SIM, IPAM] {
        if let Err(e) = cluster::find_binary(&bin_dir, b) {
            panic!("{e:#}");
        }
    }
    let announcer_missing = cluster::find_binary(&bin_dir, ANNOUNCER).err();
    let _guard = Guard;
    let lab = Lab::new(&prefix()).unwrap();
    let p = prefix();

    let mut args = vec!["up", "--nodes", "2", "--cluster", "--announcer-arg=--log-format=text"];
    if announcer_missing.is_some() {
        args.push("--no-announcers");
    }
    let out = ok(&args);
    assert!(out.contains("https://203.0.113.1:6443"), "{out}");
    let mut nss = our_namespaces();
    nss.sort();
    assert_eq!(
        nss,
        vec![format!("{p}-client"), format!("{p}-node1"), format!("{p}-node2"), format!("{p}-sw")]
    );

    let state = ferrolb_lab::LabState::load(&lab).unwrap().expect("state file");
    let info = state.cluster.clone().expect("cluster info in the state file");
    assert_eq!(info.server, "https://203.0.113.1:6443");
    assert!(info.kubeconfig.starts_with(lab.state_dir()), "{}", info.kubeconfig.display());
    let key = std::fs::metadata(&info.peer_key_file).expect("peer key file");
    assert_eq!(key.len(), 32);
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777, 0o600);

    // The API from a node, over mgmt0, with the kubeconfig as written; the Nodes are there.
    let mut nodes = list_nodes(&lab.node_ns(1), &info, None).expect("listing Nodes from node1 over mgmt");
    nodes.sort_by_key(|n| n.metadata.name.clone());
    let names: Vec<_> = nodes.iter().map(|n| n.metadata.name.clone().unwrap()).collect();
    assert_eq!(names, ["node1", "node2"]);
    let st = nodes[1].status.clone().expect("node2 status");
    let addrs: Vec<(String, String)> =
        st.addresses.unwrap().into_iter().map(|a| (a.type_, a.address)).collect();
    assert_eq!(
        addrs,
        [
            ("InternalIP".to_string(), "198.51.100.12".to_string()),
            ("InternalIP".into(), "2001:db8:100::12".into()),
            ("Hostname".into(), "node2".into())
        ]
    );
    let ready = st.conditions.unwrap().into_iter().find(|c| c.type_ == "Ready").expect("Ready condition");
    assert_eq!(ready.status, "True");
    assert_eq!(nodes[1].metadata.labels.as_ref().unwrap()["kubernetes.io/hostname"], "node2");

    // The certificate covers the LAN address and loopback too (from the switch namespace).
    for server in ["https://198.51.100.1:6443", "https://127.0.0.1:6443"] {
        list_nodes(&lab.switch_ns(), &info, Some(server)).unwrap_or_else(|e| panic!("{server}: {e:#}"));
    }

    // The management network is separate: with node1's LAN link down, its API access stays up and
    // the client no longer reaches it.
    cluster::set_link(&lab, 1, "eth0", false).unwrap();
    list_nodes(&lab.node_ns(1), &info, None).expect("API over mgmt0 with eth0 down");
    let out =
        lab_cmd(&["exec", "client", "--", BIN, "http-get", "--timeout-ms", "300", "http://198.51.100.11/"]);
    assert!(!out.status.success(), "node1 answered on the LAN with eth0 down");
    cluster::set_link(&lab, 1, "eth0", true).unwrap();
    // Nodes cannot reach the LAN through mgmt, nor the client the API server's mgmt address.
    let out = lab_cmd(&["exec", "client", "--", BIN, "ping", "--timeout-ms", "300", "203.0.113.1"]);
    assert!(!out.status.success(), "the client reached the management network");

    // ferrolb-ipam runs and leads through the API.
    let ipam_pid = cluster::process_pid(&lab, cluster::IPAM_ROLE).unwrap().expect("ipam running");
    eventually("ferrolb-ipam holds its Lease", Duration::from_secs(10), || {
        ipam_lease_holder(&info).as_deref() == Some("ipam-1")
    });
    assert_eq!(cluster::node_of_pid(&lab, ipam_pid).unwrap(), None);
    let new_ipam = cluster::restart_process(&lab, cluster::IPAM_ROLE).unwrap();
    assert_ne!(new_ipam, ipam_pid);
    assert!(!alive(ipam_pid), "old ipam still runs after restart");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        alive(new_ipam),
        "restarted ipam exited: {}",
        cluster::log_tail(&lab.log_dir().join("ipam.log"), 10)
    );

    // Announcers: running, one per node namespace; kill and restart.
    if announcer_missing.is_none() {
        for i in 1..=2 {
            let pid = cluster::announcer_pid(&lab, i).unwrap().unwrap_or_else(|| {
                panic!(
                    "announcer of node{i} not running; log:\n{}",
                    cluster::log_tail(&lab.log_dir().join(format!("announcer-node{i}.log")), 20)
                )
            });
            assert_eq!(cluster::node_of_pid(&lab, pid).unwrap(), Some(i));
        }
        let pid = cluster::kill_announcer(&lab, 2, nix::sys::signal::Signal::SIGKILL).unwrap();
        assert!(cluster::wait_exit(pid, Duration::from_secs(2)), "SIGKILLed announcer still runs");
        assert_eq!(cluster::announcer_pid(&lab, 2).unwrap(), None);
        let pid2 = cluster::restart_announcer(&lab, 2).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(cluster::announcer_pid(&lab, 2).unwrap(), Some(pid2));
    }

    // The probe, as a subcommand in the client namespace: every request to node2's own address
    // answered by node2.
    let out =
        ok(&["exec", "client", "--", BIN, "probe", "--target", "198.51.100.12", "--for", "500ms", "--json"]);
    let report: probe::ProbeReport = serde_json::from_str(&out).expect("probe JSON");
    assert!(report.sent >= 40, "{report:?}");
    assert_eq!(report.answered, report.sent, "{report:?}");
    assert_eq!(report.node_sequence(), ["node2"]);
    assert!(report.longest_gap_ms < 200.0, "{report:?}");

    // Through the library, across a fault: node1's LAN link down for ~600 ms shows as the gap.
    let probe = probe::start_probe(
        &lab,
        Path::new(BIN),
        &ProbeOptions::new(
            "198.51.100.11".parse().unwrap(),
            Duration::from_millis(10),
            Duration::from_secs(3),
        ),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let down_at = Instant::now();
    cluster::set_link(&lab, 1, "eth0", false).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    cluster::set_link(&lab, 1, "eth0", true).unwrap();
    let up_at = Instant::now();
    let gap = probe.wait().unwrap();
    assert!(gap.answered > 0 && gap.answered < gap.sent, "{:?}", gap.report);
    assert!(
        gap.longest_gap >= Duration::from_millis(500) && gap.longest_gap < Duration::from_millis(1500),
        "gap {:?} for a 600 ms outage: {:?}",
        gap.longest_gap,
        gap.report.errors
    );
    assert!(gap.gap_from <= down_at + Duration::from_millis(50), "gap starts after the link went down");
    assert!(gap.gap_to >= up_at - Duration::from_millis(50), "gap ends before the link came up");
    assert!(gap.answered_by.iter().all(|(_, n)| n == "node1"));

    // `down` removes namespaces, processes and the state directory.
    let pids: Vec<u32> =
        ferrolb_lab::LabState::load(&lab).unwrap().unwrap().processes.iter().map(|p| p.pid).collect();
    assert!(pids.len() >= 4, "{pids:?}");
    ok(&["down"]);
    assert!(our_namespaces().is_empty(), "namespaces left after down: {:?}", our_namespaces());
    for pid in pids {
        assert!(!alive(pid), "process {pid} still running after down");
    }
    assert!(!lab.state_dir().exists(), "{} left after down", lab.state_dir().display());
    assert!(!lab.state_path().exists());
    assert!(started.elapsed() < Duration::from_secs(60), "cluster test took {:?}", started.elapsed());

    if let Some(e) = announcer_missing {
        panic!("everything else passed, but the announcers could not be checked: {e:#}");
    }
}
