//! The speaker against BIRD 2 (Debian's `bird2` package), in network namespaces of the test's
//! own (the lab of `lab/`): a second BGP implementation reading our OPENs and UPDATEs, so the
//! codec is not only checked against FRR. BIRD imports into its own tables; it has no kernel
//! protocol here, so nothing is installed anywhere. Addresses are from 198.51.100.0/24 and
//! 2001:db8::/32 only; nothing is sent from the root namespace, and every wait is bounded.
//!
//! The fault scenarios of `lab/faults.rs` run here too: bird killed and started again, TCP MD5
//! passwords that do not match, and unusable peer settings next to a working session.

mod lab;

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use ferrolb_bgp::codec::LargeCommunity;
use ferrolb_bgp::rib::RouteAttrs;
use lab::faults::{self, Router};
use lab::netns::Netns;
use lab::{NODE1, NODE2, NODE3, PASSWORD, ROUTER, lab, start_speaker, table, wait_for};

const BIRD: &str = "/usr/sbin/bird";
const BIRDC: &str = "/usr/sbin/birdc";

/// bird in the router namespace, killed on drop.
struct Bird {
    child: Child,
    dir: tempfile::TempDir,
    ns: String,
}

impl Bird {
    /// bird with nodes 1 and 3 behind the MD5 password [`PASSWORD`] and node 2 without one.
    fn start(router: &Netns) -> Bird {
        assert!(
            Path::new(BIRD).exists() && Path::new(BIRDC).exists(),
            "BIRD is not installed: hack/test.sh installs Debian's bird2 package"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let log = dir.path().join("bird.log");
        let conf = format!(
            "log \"{log}\" all;\n\
             router id {ROUTER};\n\
             protocol device {{}}\n\
             template bgp node {{\n  \
               local {ROUTER} as 65000;\n  \
               passive on;\n  \
               hold time 9;\n  \
               ipv4 {{ import all; export none; }};\n  \
               ipv6 {{ import all; export none; }};\n\
             }}\n\
             protocol bgp n1 from node {{ neighbor {NODE1} as 65001; password \"{PASSWORD}\"; }}\n\
             protocol bgp n2 from node {{ neighbor {NODE2} as 65001; }}\n\
             protocol bgp n3 from node {{ neighbor {NODE3} as 65001; password \"{PASSWORD}\"; }}\n",
            log = log.display()
        );
        std::fs::write(dir.path().join("bird.conf"), conf).expect("write bird.conf");
        let child = Bird::spawn(&router.name, dir.path());
        Bird { child, dir, ns: router.name.clone() }
    }

    /// Starts bird in `ns` with the configuration in `dir`.
    fn spawn(ns: &str, dir: &Path) -> Child {
        let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
        Command::new("ip")
            .args(["netns", "exec", ns, BIRD])
            .args(["-f", "-c", &path("bird.conf"), "-s", &path("bird.ctl"), "-P", &path("bird.pid")])
            .spawn()
            .expect("start bird")
    }

    fn birdc(&self, cmd: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, BIRDC, "-s"])
            .arg(self.dir.path().join("bird.ctl"))
            .args(cmd.split(' '))
            .output()
            .expect("run birdc");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Routes BIRD imported from protocol `proto` (`n1` or `n2`) into `table`, or None while the
    /// session is not up.
    fn imported(&self, proto: &str, table: &str) -> Option<u64> {
        if !self.birdc(&format!("show protocols {proto}")).contains("Established") {
            return None;
        }
        let out = self.birdc(&format!("show route table {table} protocol {proto} count"));
        // "N of N routes for N networks in table T"
        out.lines().find_map(|l| l.split_whitespace().next()?.parse().ok())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bird.log")).unwrap_or_default()
    }
}

/// BIRD's protocol for a node.
fn proto(node: Ipv4Addr) -> &'static str {
    match node {
        NODE1 => "n1",
        NODE2 => "n2",
        NODE3 => "n3",
        _ => panic!("no protocol for {node}"),
    }
}

impl Router for Bird {
    fn prefixes(&self, node: Ipv4Addr) -> Option<(u64, u64)> {
        Some((self.imported(proto(node), "master4")?, self.imported(proto(node), "master6")?))
    }

    fn log(&self) -> String {
        Bird::log(self)
    }

    fn kill(&mut self) {
        self.child.kill().expect("kill bird");
        self.child.wait().expect("reap bird");
    }

    fn restart(&mut self) {
        self.child = Bird::spawn(&self.ns, self.dir.path());
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn bird_imports_both_paths_with_communities_and_sees_cease() {
    let (router, node) = lab();
    let bird = Bird::start(&router);
    let attrs = Arc::new(
        RouteAttrs::new(
            vec![(65001 << 16) | 1],
            vec![LargeCommunity { global: 65001, local1: 1, local2: 2 }],
            None,
        )
        .expect("attributes"),
    );
    let s1 = start_speaker(&node, NODE1, Some(PASSWORD), table(3, 2, &attrs), None);
    let s2 = start_speaker(&node, NODE2, None, table(3, 2, &attrs), None);
    wait_for(
        Duration::from_secs(30),
        "both sessions up with 3 IPv4 and 2 IPv6 routes",
        || bird.log(),
        || {
            ["n1", "n2"]
                .iter()
                .all(|p| bird.imported(p, "master4") == Some(3) && bird.imported(p, "master6") == Some(2))
        },
    );
    let route = bird.birdc("show route 203.0.113.0/32 all");
    for want in ["198.51.100.11", "198.51.100.12", "(65001,1)", "(65001, 1, 2)", "BGP.origin: IGP"] {
        assert!(route.contains(want), "{want} missing from:\n{route}");
    }
    assert!(!route.contains("BGP.med"), "MED sent:\n{route}");

    s1.routes.send_replace(table(1, 0, &attrs));
    wait_for(
        Duration::from_secs(10),
        "withdrawal",
        || bird.log(),
        || bird.imported("n1", "master4") == Some(1) && bird.imported("n1", "master6") == Some(0),
    );

    s2.shutdown.send_replace(true);
    s2.task.join().expect("speaker 2 stopped");
    wait_for(
        Duration::from_secs(10),
        "session 2 down",
        || bird.log(),
        || bird.imported("n2", "master4").is_none(),
    );
    let proto = bird.birdc("show protocols all n2");
    assert!(proto.to_lowercase().contains("administrative shutdown"), "{proto}");

    s1.shutdown.send_replace(true);
    s1.task.join().expect("speaker 1 stopped");
}

#[test]
fn bird_restart_gets_every_prefix_back() {
    let (router, node) = lab();
    let mut bird = Bird::start(&router);
    let took = faults::router_restart(&mut bird, &node);
    eprintln!("BIRD restart: every prefix back in BIRD's tables {took:?} after bird started");
}

#[test]
fn bird_md5_mismatch_never_establishes_and_says_why() {
    let (router, node) = lab();
    let bird = Bird::start(&router);
    faults::md5_mismatch(&bird, &node);
}

#[test]
fn bird_peer_config_error_leaves_the_other_session_up() {
    let (router, node) = lab();
    let bird = Bird::start(&router);
    faults::config_error_leaves_others_alone(&bird, &node);
}
