//! The rendered chart runs: the chart (`helm/ferrolb`) is rendered with a pool and a policy for the
//! lab, every object the API server would store is applied to kube-sim, and each binary is started
//! exactly as the rendered Pod specs say (command, args with `$(VAR)` expansion, env including the
//! downward-API values, the peer-key Secret mounted from what kube-sim stores, the socket directory
//! as a host path), one Deployment replica per node network namespace and one DaemonSet pod per
//! node. Each must pass its readiness and liveness probes, and a LoadBalancer Service must get an
//! address from the chart's pool and be answered through it from the client. This catches drift
//! between the chart and the binaries (a renamed flag, a missing env var, a wrong mount path).
//!
//! What a kubelet would add and this does not: the in-cluster service-account credentials (the
//! processes get `KUBECONFIG` pointing at the lab's kube-sim instead), container isolation (the
//! security contexts are checked by `chart.rs`), and objects kube-sim does not serve (workloads,
//! RBAC, ServiceAccounts, the PodDisruptionBudget), which are listed and checked by kind.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferrolb_lab::cluster::{self, SYSTEM_NAMESPACE};
use ferrolb_lab::netns::NsRuntime;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use serde_json::Value;
use support::*;

/// Kinds the chart renders that kube-sim does not serve: checked by `chart.rs`, not applied here.
const NOT_SERVED: &[&str] = &[
    "Deployment",
    "DaemonSet",
    "PodDisruptionBudget",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
];

#[test]
fn the_rendered_chart_runs_against_kube_sim() {
    let run = run_rendered_chart("chart-runs", "");
    assert_eq!(run.pods.children.len(), 2 + 3, "two ipam replicas and one announcer per node");
}

/// With `nicAgent.enabled` and `announcer.datapath: delegate`, each announcer pod runs the rendered
/// `ferrolb-nic-agent` beside it on the same socket volume: the holder's agent puts the address on
/// the interface (marked with protocol 102, the agent's), the kernel answers for it, and no other
/// node has it.
#[test]
fn the_rendered_chart_with_the_nic_agent_runs_against_kube_sim() {
    let run = run_rendered_chart(
        "chart-nic",
        "announcer:\n  datapath: delegate\nnicAgent:\n  enabled: true\n  interface: eth0\n",
    );
    assert_eq!(run.pods.children.len(), 2 + 3 * 2, "two ipam replicas, an announcer and an agent per node");
    let ip = run.ip.to_string();
    for node in 1..=run.h.nodes {
        let ns = run.h.lab.node_ns(node);
        let out = Command::new("ip")
            .args(["netns", "exec", &ns, "ip", "-o", "address", "show", "dev", "eth0"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let line =
            text.lines().find(|l| l.split_whitespace().any(|w| w.split('/').next() == Some(ip.as_str())));
        // The agent counts the addresses that carry its mark (IFA_PROTO 102, which iproute2 6.1
        // does not print): exactly the held one on the holder, none elsewhere.
        let programmed = run.agent_gauge(node, "ferrolb_nic_agent_addresses_programmed");
        if node == run.holder {
            let line = line.unwrap_or_else(|| {
                panic!("node{node} holds {ip} but eth0 lacks it:\n{text}{}", run.pods.logs())
            });
            assert!(
                line.contains(" proto 102") || !line.contains(" proto "),
                "not the agent's address: {line}"
            );
            assert_eq!(programmed, 1.0, "node{node}'s agent: addresses with its mark");
        } else {
            assert!(line.is_none(), "node{node} does not hold {ip} but has it: {line:?}");
            assert_eq!(programmed, 0.0, "node{node}'s agent: addresses with its mark");
        }
    }
    run.h.log(&format!("{ip} on node{}'s eth0 with the agent's mark, on no other node", run.holder));
}

/// The harness, the started pods, and the first Service's address and holder.
struct ChartRun {
    h: Harness,
    pods: Pods,
    ip: std::net::IpAddr,
    holder: u8,
}

impl ChartRun {
    /// A gauge from the `/metrics` of node `node`'s NIC agent (the port its container declares).
    fn agent_gauge(&self, node: u8, name: &str) -> f64 {
        let (pod, _) = self
            .pods
            .children
            .iter()
            .find(|(p, _)| p.name.ends_with(&format!("-node{node}-nic-agent")))
            .unwrap_or_else(|| panic!("no NIC agent on node{node}"));
        let port = pod.probes[0].1;
        let rt = NsRuntime::new(&pod.ns).unwrap();
        let body = rt.block_on(async move { http_body(port, "/metrics").await }).unwrap();
        let body = body.unwrap_or_else(|| panic!("{}: no answer on /metrics", pod.name));
        body.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{}: no {name} in\n{body}", pod.name))
    }
}

/// Renders the chart with a pool and a policy for the lab plus `extra` values, applies what
/// kube-sim serves, starts every container of every workload as its Pod spec says, waits for
/// every probe, then creates a Service and checks that its holder answers it from the client.
fn run_rendered_chart(name: &str, extra: &str) -> ChartRun {
    let h = Harness::up_api_only(name, 3);
    let values = std::env::temp_dir().join(format!("ferrolb-{name}-{}.yaml", std::process::id()));
    std::fs::write(
        &values,
        format!(
            "ipPools:\n  - name: lab\n    spec:\n      blocks:\n        - cidr: {POOL_V4}\n\
             l2AnnouncementPolicies:\n  - name: lab\n    spec:\n      interfaces: [\"eth0\"]\n\
             logFormat: text\n{extra}"
        ),
    )
    .unwrap();
    let objects =
        helm::try_render(std::slice::from_ref(&values), &[]).unwrap_or_else(|e| panic!("render: {e}"));
    let _ = std::fs::remove_file(&values);

    // What the API server would store.
    let mut workloads = Vec::new();
    let mut skipped = BTreeSet::new();
    for obj in &objects {
        let kind = obj["kind"].as_str().unwrap().to_string();
        if matches!(kind.as_str(), "Deployment" | "DaemonSet") {
            workloads.push(obj.clone());
        }
        if NOT_SERVED.contains(&kind.as_str()) {
            skipped.insert(kind);
            continue;
        }
        apply(&h, obj.clone());
    }
    h.log(&format!("applied {} objects; not served by kube-sim: {skipped:?}", objects.len()));
    assert_eq!(workloads.len(), 2, "the chart renders the ipam Deployment and the announcer DaemonSet");

    let dir = std::env::temp_dir().join(format!("ferrolb-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut pods = Pods { children: Vec::new(), dir: dir.clone() };
    for w in &workloads {
        let name = w["metadata"]["name"].as_str().unwrap();
        match w["kind"].as_str().unwrap() {
            "Deployment" => {
                let replicas = w["spec"]["replicas"].as_u64().unwrap_or(1);
                assert!(replicas >= 1 && replicas <= u64::from(h.nodes), "{replicas} replicas");
                for i in 1..=replicas as u8 {
                    // A pod has a network namespace of its own: each replica gets a node's.
                    pods.start(&h, w, &format!("{name}-{i}"), i);
                }
            }
            _ => {
                for i in 1..=h.nodes {
                    pods.start(&h, w, &format!("{name}-node{i}"), i);
                }
            }
        }
    }
    for pod in &pods.children {
        pods.wait_probes(pod, secs(30));
    }
    h.log(&format!("{} containers ready and live", pods.children.len()));

    // The announcers found each other and report ready on their heartbeat Leases.
    h.wait_announcers_ready();

    let ips = h.create_service(service("web"), 1);
    let ip = ips[0];
    // POOL_V4 is 198.51.100.128/25.
    assert!(
        matches!(ip, std::net::IpAddr::V4(v) if v.octets()[..3] == [198, 51, 100] && v.octets()[3] >= 128),
        "{ip} is not from the chart's pool {POOL_V4}"
    );
    let holder = h.wait_any_holder("web", ip);
    let answered = h.wait_http(ip, None, secs(10));
    assert_eq!(answered, format!("node{holder}"), "{}", pods.logs());
    h.log(&format!("{ip} from the chart's pool, held and answered by node{holder}"));
    ChartRun { h, pods, ip, holder }
}

/// Creates `obj` in kube-sim (an object that already exists, such as the CRDs the lab applied, is
/// compared by name only).
fn apply(h: &Harness, obj: Value) {
    let (group, version) = match obj["apiVersion"].as_str().unwrap().split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), obj["apiVersion"].as_str().unwrap().to_string()),
    };
    let kind = obj["kind"].as_str().unwrap().to_string();
    let what = format!("{kind} {}", obj["metadata"]["name"]);
    h.api(&format!("applying {what}"), move |c| async move {
        let gvk = GroupVersionKind::gvk(&group, &version, &kind);
        let (ar, caps) = kube::discovery::pinned_kind(&c, &gvk).await?;
        let api: Api<DynamicObject> = if caps.scope == kube::discovery::Scope::Namespaced {
            let ns = obj["metadata"]["namespace"].as_str().unwrap_or(SYSTEM_NAMESPACE).to_string();
            Api::namespaced_with(c, &ns, &ar)
        } else {
            Api::all_with(c, &ar)
        };
        match api.create(&PostParams::default(), &serde_json::from_value(obj)?).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 && kind == "CustomResourceDefinition" => Ok(()),
            Err(e) => Err(e.into()),
        }
    });
}

struct Pod {
    name: String,
    ns: String,
    /// (path, port) of the readiness and liveness probes.
    probes: Vec<(String, u16)>,
    log: PathBuf,
}

/// The started processes; killed (and their files removed) on drop.
struct Pods {
    children: Vec<(Pod, Child)>,
    dir: PathBuf,
}

impl Drop for Pods {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Pods {
    /// Starts every container of workload `w` as pod `pod` in node `node`'s network namespace, as a
    /// kubelet would: volumes mounted (here: written under the pod's directory, shared by its
    /// containers, and every mount path in args and env rewritten to it), env resolved, `$(VAR)`
    /// expanded in args.
    fn start(&mut self, h: &Harness, w: &Value, pod: &str, node: u8) {
        let containers = w["spec"]["template"]["spec"]["containers"].as_array().unwrap();
        for (i, c) in containers.iter().enumerate() {
            // The first container keeps the pod's name, so the logs read as before.
            let name =
                if i == 0 { pod.to_string() } else { format!("{pod}-{}", c["name"].as_str().unwrap()) };
            self.start_container(h, w, c, pod, &name, node);
        }
    }

    /// Starts container `c` of pod `pod` as `label` (its logs are `<label>.log` in the pod's
    /// directory).
    fn start_container(&mut self, h: &Harness, w: &Value, c: &Value, pod: &str, label: &str, node: u8) {
        let spec = &w["spec"]["template"]["spec"];
        let root = self.dir.join(pod);
        std::fs::create_dir_all(&root).unwrap();

        // Volumes: name -> local directory.
        let mut volumes: BTreeMap<String, PathBuf> = BTreeMap::new();
        for v in spec["volumes"].as_array().into_iter().flatten() {
            let name = v["name"].as_str().unwrap().to_string();
            let local = root.join(format!("vol-{name}"));
            std::fs::create_dir_all(&local).unwrap();
            if let Some(secret) = v.get("secret") {
                write_secret(h, secret, &local);
            } else if let Some(hp) = v.get("hostPath") {
                assert_eq!(hp["type"], "DirectoryOrCreate", "hostPath {name}: {hp}");
            } else {
                panic!("volume {name} of a kind this test does not mount: {v}");
            }
            volumes.insert(name, local);
        }
        let mut mounts: Vec<(String, PathBuf)> = Vec::new();
        for m in c["volumeMounts"].as_array().into_iter().flatten() {
            let vol = m["name"].as_str().unwrap();
            let local = volumes.get(vol).unwrap_or_else(|| panic!("mount of an undeclared volume {vol}"));
            mounts.push((m["mountPath"].as_str().unwrap().to_string(), local.clone()));
        }
        let remap = |s: &str| -> String {
            for (path, local) in &mounts {
                if let Some(rest) = s.strip_prefix(path.as_str()) {
                    return format!("{}{rest}", local.display());
                }
                if let Some(pos) = s.find(&format!("={path}")) {
                    return format!("{}={}{}", &s[..pos], local.display(), &s[pos + 1 + path.len()..]);
                }
            }
            s.to_string()
        };

        // Env, with the downward API.
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        for e in c["env"].as_array().into_iter().flatten() {
            let name = e["name"].as_str().unwrap().to_string();
            let value = if let Some(v) = e["value"].as_str() {
                v.to_string()
            } else {
                match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                    Some("metadata.namespace") => SYSTEM_NAMESPACE.to_string(),
                    Some("metadata.name") => pod.to_string(),
                    Some("spec.nodeName") => ferrolb_lab::Lab::node_name(node),
                    other => panic!("env {name}: a source this test does not resolve: {other:?} in {e}"),
                }
            };
            env.insert(name, remap(&value));
        }
        let expand = |s: &str| -> String {
            let mut out = s.to_string();
            for (k, v) in &env {
                out = out.replace(&format!("$({k})"), v);
            }
            out
        };

        let command: Vec<String> =
            c["command"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
        let exe_name = Path::new(&command[0]).file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            command[0] == exe_name || command[0] == format!("/usr/local/bin/{exe_name}"),
            "command {:?}: the image has its binaries in /usr/local/bin",
            command[0]
        );
        let exe = cluster::default_bin_dir().unwrap().join(&exe_name);
        assert!(exe.is_file(), "the chart runs {exe_name}, which the workspace does not build");
        let args: Vec<String> = command[1..]
            .iter()
            .map(String::as_str)
            .chain(c["args"].as_array().into_iter().flatten().filter_map(|a| a.as_str()))
            .map(|a| remap(&expand(a)))
            .collect();

        // The port of each probe (by number or by the container port's name).
        let ports: BTreeMap<String, u16> = c["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["protocol"].as_str().unwrap_or("TCP") == "TCP")
            .map(|p| {
                (p["name"].as_str().unwrap_or("").to_string(), p["containerPort"].as_u64().unwrap() as u16)
            })
            .collect();
        let mut probes = Vec::new();
        for probe in ["readinessProbe", "livenessProbe"] {
            let get = &c[probe]["httpGet"];
            assert!(get.is_object(), "{label}: no {probe} httpGet: {}", c[probe]);
            let port = match &get["port"] {
                Value::Number(n) => n.as_u64().unwrap() as u16,
                Value::String(s) => {
                    *ports.get(s).unwrap_or_else(|| panic!("{probe} names port {s}, not declared"))
                }
                other => panic!("{probe} port {other}"),
            };
            probes.push((get["path"].as_str().unwrap().to_string(), port));
        }

        let ns = h.lab.node_ns(node);
        let log = root.join(format!("{label}.log"));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns]).arg(&exe).args(&args);
        cmd.env_clear().envs(&env).env("KUBECONFIG", &h.info.kubeconfig);
        if let Ok(path) = std::env::var("PATH") {
            cmd.env("PATH", path);
        }
        cmd.stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap());
        h.log(&format!("{label} in {ns}: {exe_name} {}", args.join(" ")));
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {label}: {e}"));
        self.children.push((Pod { name: label.to_string(), ns, probes, log }, child));
    }

    /// Waits until every probe of `pod` answers 200.
    fn wait_probes(&self, (pod, _): &(Pod, Child), timeout: Duration) {
        let rt = NsRuntime::new(&pod.ns).unwrap();
        let start = Instant::now();
        for (path, port) in &pod.probes {
            loop {
                let (p, port) = (path.clone(), *port);
                let status = rt.block_on(async move { http_status(port, &p).await }).unwrap();
                if status == Some(200) {
                    break;
                }
                assert!(
                    start.elapsed() < timeout,
                    "{}: GET {path} on port {port} gave {status:?} after {timeout:?}: {}",
                    pod.name,
                    self.logs()
                );
                std::thread::sleep(ms(100));
            }
        }
    }

    fn logs(&self) -> String {
        self.children
            .iter()
            .map(|(p, _)| {
                let err = p.log.with_extension("err");
                format!(
                    "\n--- {} ---\n{}{}",
                    p.name,
                    cluster::log_tail(&p.log, 15),
                    cluster::log_tail(&err, 15)
                )
            })
            .collect()
    }
}

/// Writes a Secret volume as a kubelet would: each item (or every key) of the Secret as stored in
/// kube-sim, with the volume's mode.
fn write_secret(h: &Harness, volume: &Value, dir: &Path) {
    let name = volume["secretName"].as_str().unwrap().to_string();
    let n = name.clone();
    let secret: Secret = h.api(&format!("reading Secret {name}"), move |c| async move {
        Ok(Api::<Secret>::namespaced(c, SYSTEM_NAMESPACE).get(&n).await?)
    });
    let data = secret.data.unwrap_or_default();
    let mode = volume["defaultMode"].as_u64().unwrap_or(0o644) as u32;
    let items: Vec<(String, String)> = match volume["items"].as_array() {
        Some(items) => items
            .iter()
            .map(|i| (i["key"].as_str().unwrap().into(), i["path"].as_str().unwrap().into()))
            .collect(),
        None => data.keys().map(|k| (k.clone(), k.clone())).collect(),
    };
    for (key, path) in items {
        let bytes = data.get(&key).unwrap_or_else(|| panic!("Secret {name} has no key {key}"));
        let file = dir.join(path);
        std::fs::write(&file, &bytes.0).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// The body of `GET path` on 127.0.0.1:`port` (in the calling runtime's namespace); `None` when
/// nothing answers.
async fn http_body(port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(ms(500), tokio::net::TcpStream::connect(("127.0.0.1", port)))
        .await
        .ok()?
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(ms(1000), s.read_to_end(&mut buf)).await.ok()?.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

/// The status code of `GET path` on 127.0.0.1:`port` (in the calling runtime's namespace); `None`
/// when nothing answers.
async fn http_status(port: u16, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(ms(500), tokio::net::TcpStream::connect(("127.0.0.1", port)))
        .await
        .ok()?
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(ms(1000), s.read_to_end(&mut buf)).await.ok()?.ok()?;
    let line = String::from_utf8_lossy(&buf);
    line.split_whitespace().nth(1)?.parse().ok()
}
