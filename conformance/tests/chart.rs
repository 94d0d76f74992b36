//! The Helm chart (`helm/ferrolb`): lint, render, schema, Kubernetes validation and RBAC.
//!
//! There is no helm binary: `hack/helm.py` drives Helm 4 through PyPI's helm-python-sdk, and
//! kubernetes-validate checks the rendered objects, both from the venv `hack/helm-venv.sh` prepares
//! (`hack/test.sh` exports its Python as `FERROLB_HELM_PYTHON`). Without the venv every test here
//! fails, saying how to make one: nothing is skipped.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use ferrolb_api::rbac::{self, Component, Grant, Scope};
use serde_json::{Value, json};
use support::helm::{chart, driver, repo};

const NAMESPACE: &str = "lb-system";

fn all_features() -> PathBuf {
    chart().join("ci/all-features-values.yaml")
}

fn examples() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(chart().join("examples"))
        .expect("helm/ferrolb/examples")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no example values files");
    out
}

/// A values file in the temp directory with `yaml` as its text.
fn temp_values(yaml: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "ferrolb-chart-{}-{}.yaml",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::write(&path, yaml).unwrap();
    path
}

#[derive(Debug, Default, Clone)]
struct RenderOpts<'a> {
    values: Vec<PathBuf>,
    upgrade: bool,
    kubeconfig: Option<&'a Path>,
}

/// Renders the chart: every object, or Helm's error message.
fn try_render(opts: &RenderOpts) -> Result<Vec<Value>, String> {
    let chart = chart();
    let mut args =
        vec!["render".to_owned(), chart.display().to_string(), "--namespace".into(), NAMESPACE.into()];
    for v in &opts.values {
        args.push("-f".into());
        args.push(v.display().to_string());
    }
    if opts.upgrade {
        args.push("--upgrade".into());
    }
    if let Some(k) = opts.kubeconfig {
        args.push("--kubeconfig".into());
        args.push(k.display().to_string());
    }
    let out = driver(&args.iter().map(String::as_str).collect::<Vec<_>>());
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let items: Vec<Value> = serde_json::from_slice(&out.stdout).expect("render prints JSON");
    Ok(items.into_iter().map(|i| i["object"].clone()).collect())
}

fn render(values: &[PathBuf]) -> Vec<Value> {
    try_render(&RenderOpts { values: values.to_vec(), ..Default::default() })
        .unwrap_or_else(|e| panic!("rendering with {values:?} failed: {e}"))
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} among {:?}", summary(objects)))
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn summary(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| format!("{}/{}", o["kind"].as_str().unwrap(), o["metadata"]["name"].as_str().unwrap()))
        .collect()
}

fn container(workload: &Value) -> &Value {
    let containers = workload["spec"]["template"]["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    &containers[0]
}

/// The container `name` of a workload.
fn named_container<'a>(workload: &'a Value, name: &str) -> &'a Value {
    let containers = workload["spec"]["template"]["spec"]["containers"].as_array().unwrap();
    containers.iter().find(|c| c["name"] == name).unwrap_or_else(|| {
        panic!("no container {name} in {:?}", containers.iter().map(|c| &c["name"]).collect::<Vec<_>>())
    })
}

/// The value of `--flag=value` in one container's arguments.
fn container_flag(c: &Value, name: &str) -> String {
    let prefix = format!("{name}=");
    strings(&c["args"])
        .iter()
        .find_map(|a| a.strip_prefix(&prefix).map(str::to_owned))
        .unwrap_or_else(|| panic!("no {name} in {}", c["args"]))
}

fn args(workload: &Value) -> Vec<String> {
    container(workload)["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect()
}

/// The value of `--flag=value` in a container's arguments.
fn flag(workload: &Value, name: &str) -> String {
    let prefix = format!("{name}=");
    args(workload)
        .iter()
        .find_map(|a| a.strip_prefix(&prefix).map(str::to_owned))
        .unwrap_or_else(|| panic!("no {name} in {:?}", args(workload)))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Chart metadata and lint

#[test]
fn chart_version_and_app_version_are_the_workspace_version() {
    let text = std::fs::read_to_string(chart().join("Chart.yaml")).unwrap();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}:")))
            .map(|v| v.trim().trim_matches('"').to_owned())
            .unwrap_or_else(|| panic!("Chart.yaml has no {key}"))
    };
    // This crate's version is `version.workspace = true`.
    assert_eq!(field("version"), env!("CARGO_PKG_VERSION"), "Chart.yaml version");
    assert_eq!(field("appVersion"), env!("CARGO_PKG_VERSION"), "Chart.yaml appVersion");
    assert_eq!(field("apiVersion"), "v2");
}

fn lint(values: &[PathBuf]) {
    let chart = chart();
    let mut args = vec!["lint".to_owned(), chart.display().to_string(), "--strict".into()];
    for v in values {
        args.push("-f".into());
        args.push(v.display().to_string());
    }
    let out = driver(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "helm lint --strict with {values:?}:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["total_charts_linted"], 1);
}

#[test]
fn lint_strict_with_default_values() {
    lint(&[]);
}

#[test]
fn lint_strict_with_every_optional_feature() {
    lint(&[all_features()]);
}

#[test]
fn lint_strict_with_each_example() {
    for e in examples() {
        lint(&[e]);
    }
}

#[test]
fn lint_reports_schema_errors() {
    // The instrument works: lint fails on values the schema rejects.
    let bad = temp_values("ipam:\n  replicaz: 2\n");
    let out = driver(&["lint", chart().to_str().unwrap(), "--strict", "-f", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("replicaz"));
}

// ---------------------------------------------------------------------------------------------
// Rendering with the defaults

#[test]
fn default_render_has_every_part_and_nothing_optional() {
    let objects = render(&[]);
    let mut kinds: Vec<String> = summary(&objects);
    kinds.sort();
    let expected = [
        "ClusterRole/ferrolb-announcer",
        "ClusterRole/ferrolb-ipam",
        "ClusterRoleBinding/ferrolb-announcer",
        "ClusterRoleBinding/ferrolb-ipam",
        "CustomResourceDefinition/bfdprofiles.ferrolb.io",
        "CustomResourceDefinition/bgpadvertisements.ferrolb.io",
        "CustomResourceDefinition/bgppeers.ferrolb.io",
        "CustomResourceDefinition/bgpsessionstates.ferrolb.io",
        "CustomResourceDefinition/l2announcementpolicies.ferrolb.io",
        "CustomResourceDefinition/loadbalancerippools.ferrolb.io",
        "DaemonSet/ferrolb-announcer",
        "Deployment/ferrolb-ipam",
        "PodDisruptionBudget/ferrolb-ipam",
        "Role/ferrolb-announcer",
        "Role/ferrolb-announcer-kube-system",
        "Role/ferrolb-ipam",
        "RoleBinding/ferrolb-announcer",
        "RoleBinding/ferrolb-announcer-kube-system",
        "RoleBinding/ferrolb-ipam",
        "Secret/ferrolb-peer-key",
        "Service/ferrolb-announcer-metrics",
        "Service/ferrolb-ipam-metrics",
        "ServiceAccount/ferrolb-announcer",
        "ServiceAccount/ferrolb-ipam",
    ];
    assert_eq!(kinds, expected);
    for o in &objects {
        let namespaced = !["ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"]
            .contains(&o["kind"].as_str().unwrap());
        // The announcer's preflight reads kube-proxy's and Cilium's configuration where they live.
        let kube_system = o["metadata"]["name"].as_str().unwrap().ends_with("-kube-system");
        if namespaced {
            let want = if kube_system { "kube-system" } else { NAMESPACE };
            assert_eq!(o["metadata"]["namespace"], want, "{}", o["metadata"]["name"]);
        }
        assert_eq!(o["metadata"]["labels"]["app.kubernetes.io/instance"], "ferrolb");
        assert_eq!(o["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm");
    }
}

/// `v` with integral floats as integers (schemars writes `minimum: 0.0`, YAML reads back `0`).
fn integral(v: Value) -> Value {
    match v {
        Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0 && !n.is_i64() && !n.is_u64()) => {
            json!(n.as_f64().unwrap() as i64)
        }
        Value::Array(a) => Value::Array(a.into_iter().map(integral).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, integral(v))).collect()),
        other => other,
    }
}

#[test]
fn crds_are_the_generated_ones_kept_on_uninstall() {
    let objects = render(&[]);
    for crd in ferrolb_api::crd::all() {
        let expected = serde_json::to_value(&crd).unwrap();
        let name = expected["metadata"]["name"].as_str().unwrap();
        let rendered = find(&objects, "CustomResourceDefinition", name);
        assert_eq!(
            integral(rendered["spec"].clone()),
            integral(expected["spec"].clone()),
            "{name}: rendered spec differs from ferrolb_api::crd"
        );
        assert_eq!(rendered["metadata"]["annotations"]["helm.sh/resource-policy"], "keep");
        assert_eq!(rendered["metadata"]["labels"]["app.kubernetes.io/name"], "ferrolb");
        // Templates, not crds/: Helm upgrades them.
        assert!(
            !chart().join("crds").exists(),
            "helm/ferrolb/crds/ would be installed once and never upgraded"
        );
    }
    let off = temp_values("crds:\n  enabled: false\n");
    assert!(of_kind(&render(&[off]), "CustomResourceDefinition").is_empty());
}

#[test]
fn ipam_deployment_is_highly_available_and_restricted() {
    let objects = render(&[]);
    let d = find(&objects, "Deployment", "ferrolb-ipam");
    assert_eq!(d["spec"]["replicas"], 2);
    let pod = &d["spec"]["template"]["spec"];
    let c = container(d);
    assert_eq!(c["command"], json!(["/usr/local/bin/ferrolb-ipam"]));
    let term = &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(term["podAffinityTerm"]["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(term["podAffinityTerm"]["labelSelector"]["matchLabels"], d["spec"]["selector"]["matchLabels"]);
    let pdb = find(&objects, "PodDisruptionBudget", "ferrolb-ipam");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(pdb["spec"]["selector"], d["spec"]["selector"]);

    // Probes on the metrics port, which --metrics-addr binds.
    let port = c["ports"][0]["containerPort"].as_u64().unwrap();
    assert_eq!(c["ports"][0]["name"], "metrics");
    assert_eq!(flag(d, "--metrics-addr"), format!("0.0.0.0:{port}"));
    assert_eq!(c["livenessProbe"]["httpGet"], json!({"path": "/healthz", "port": "metrics"}));
    assert_eq!(c["readinessProbe"]["httpGet"], json!({"path": "/readyz", "port": "metrics"}));
    assert!(c["resources"]["requests"]["cpu"].is_string() && c["resources"]["limits"]["memory"].is_string());

    // The restricted Pod Security profile.
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"], json!({"drop": ["ALL"]}));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);

    // The Lease lives in the pod's namespace; the identity is the pod's name.
    let env = &c["env"];
    assert!(
        env.as_array().unwrap().iter().any(|e| e["name"] == "POD_NAMESPACE"
            && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace")
    );
    assert_eq!(flag(d, "--namespace"), "$(POD_NAMESPACE)");
    assert_eq!(flag(d, "--id"), "$(POD_NAME)");
    assert_eq!(flag(d, "--default-class"), "true");
    assert_eq!(pod["serviceAccountName"], "ferrolb-ipam");
}

#[test]
fn announcer_daemonset_has_host_network_two_capabilities_and_the_peer_key() {
    let objects = render(&[]);
    let ds = find(&objects, "DaemonSet", "ferrolb-announcer");
    let pod = &ds["spec"]["template"]["spec"];
    let c = container(ds);
    assert_eq!(c["command"], json!(["/usr/local/bin/ferrolb-announcer"]));
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet");
    assert_eq!(
        ds["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}})
    );

    let sc = &c["securityContext"];
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    let mut added = strings(&sc["capabilities"]["add"]);
    added.sort();
    assert_eq!(added, ["NET_ADMIN", "NET_RAW"]);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");

    // The node's name from the downward API.
    let env = c["env"].as_array().unwrap();
    assert!(
        env.iter()
            .any(|e| e["name"] == "NODE_NAME" && e["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName")
    );
    assert_eq!(flag(ds, "--node-name"), "$(NODE_NAME)");

    // The gRPC socket's directory from the host.
    let socket = flag(ds, "--grpc-socket");
    assert_eq!(socket, "/run/ferrolb/announcer.sock");
    let volumes = pod["volumes"].as_array().unwrap();
    let host = volumes.iter().find(|v| v["hostPath"].is_object()).expect("a hostPath volume");
    assert_eq!(host["hostPath"], json!({"path": "/run/ferrolb", "type": "DirectoryOrCreate"}));
    let mounts = c["volumeMounts"].as_array().unwrap();
    assert!(mounts.iter().any(|m| m["name"] == host["name"] && m["mountPath"] == "/run/ferrolb"));

    // The peer key: the chart's Secret, mounted where --peer-key-file points.
    let key_file = flag(ds, "--peer-key-file");
    let secret_volume = volumes.iter().find(|v| v["secret"].is_object()).expect("a Secret volume");
    assert_eq!(secret_volume["secret"]["secretName"], "ferrolb-peer-key");
    let mount = mounts.iter().find(|m| m["name"] == secret_volume["name"]).unwrap();
    let item = &secret_volume["secret"]["items"][0];
    assert_eq!(
        key_file,
        format!("{}/{}", mount["mountPath"].as_str().unwrap(), item["path"].as_str().unwrap())
    );
    let secret = find(&objects, "Secret", "ferrolb-peer-key");
    let key = secret["data"][item["key"].as_str().unwrap()].as_str().expect("the key in the Secret");
    let decoded = base64_decode(key);
    assert!(decoded.len() >= 32, "peer key of {} bytes", decoded.len());

    // Peer port declared for TCP and UDP, the one --peer-addr binds.
    let peer_port: u64 = flag(ds, "--peer-addr").rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(peer_port, 7947);
    let ports = c["ports"].as_array().unwrap();
    for proto in ["TCP", "UDP"] {
        assert!(
            ports.iter().any(|p| p["containerPort"] == peer_port && p["protocol"] == proto),
            "peer port {proto}: {ports:?}"
        );
    }

    // SIGTERM hands addresses over for --shutdown-grace; the kubelet waits longer.
    let grace = humantime_secs(&flag(ds, "--shutdown-grace"));
    assert!(
        pod["terminationGracePeriodSeconds"].as_u64().unwrap() >= grace + 5,
        "terminationGracePeriodSeconds vs {grace}s"
    );

    // Control-plane nodes (a single-node k3s) are tolerated.
    let tolerations = pod["tolerations"].as_array().unwrap();
    for key in ["node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"] {
        assert!(
            tolerations
                .iter()
                .any(|t| t["key"] == key && t["effect"] == "NoSchedule" && t["operator"] == "Exists")
        );
    }
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(pod["serviceAccountName"], "ferrolb-announcer");
}

/// Appends the text of every `.rs` file under `dir`.
fn read_sources(dir: &Path, out: &mut String) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            read_sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push_str(&std::fs::read_to_string(&p).unwrap());
        }
    }
}

fn humantime_secs(s: &str) -> u64 {
    s.strip_suffix('s').and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{s} is not whole seconds"))
}

fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c).unwrap_or_else(|| panic!("not base64: {s}")) as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Every `--flag` the chart passes, in every container of every workload, with the defaults, every
/// optional feature and each example, is one the container's binary accepts (its `--help`), when
/// the binaries are built (`cargo test --workspace --all-targets` builds them; missing ones fail the
/// test).
#[test]
fn every_flag_the_chart_passes_exists() {
    use ferrolb_lab::cluster::{self, Binary};
    let dir = cluster::default_bin_dir().unwrap();
    let binaries = [cluster::IPAM, cluster::ANNOUNCER, cluster::NIC_AGENT];
    let mut sets = vec![vec![], vec![all_features()]];
    sets.extend(examples().into_iter().map(|e| vec![e]));
    let mut checked = BTreeSet::new();
    for values in sets {
        let objects = render(&values);
        for w in objects.iter().filter(|o| o["kind"] == "Deployment" || o["kind"] == "DaemonSet") {
            for c in w["spec"]["template"]["spec"]["containers"].as_array().unwrap() {
                let command = c["command"][0].as_str().unwrap();
                let name = Path::new(command).file_name().unwrap().to_str().unwrap();
                let bin: Binary = *binaries.iter().find(|b| b.name == name).unwrap_or_else(|| {
                    panic!("container {} runs {command}, not a FerroLB binary", c["name"])
                });
                let exe = cluster::find_binary(&dir, bin).unwrap_or_else(|e| panic!("{e:#}"));
                let help = Command::new(&exe).arg("--help").output().unwrap();
                let help = String::from_utf8_lossy(&help.stdout);
                for a in strings(&c["args"]) {
                    let f = a.split('=').next().unwrap();
                    assert!(
                        help.contains(&format!("{f} "))
                            || help.contains(&format!("{f}\n"))
                            || help.contains(&format!("{f} <")),
                        "{} has no flag {f} (chart arg {a}, values {values:?})",
                        bin.name
                    );
                }
                checked.insert(bin.name);
            }
        }
    }
    assert_eq!(checked.len(), binaries.len(), "only {checked:?} ran in some rendering");
}

// ---------------------------------------------------------------------------------------------
// Every optional feature

#[test]
fn all_features_render_monitoring_policies_pools_and_no_secret() {
    let objects = render(&[all_features()]);
    assert_eq!(of_kind(&objects, "ServiceMonitor").len(), 2);
    assert_eq!(of_kind(&objects, "PodMonitor").len(), 2);
    assert!(of_kind(&objects, "Secret").is_empty(), "peerKey.existingSecret: the chart creates no Secret");
    let ds = find(&objects, "DaemonSet", "ferrolb-announcer");
    let volumes = ds["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    assert!(volumes.iter().any(|v| v["secret"]["secretName"] == "ferrolb-peer-key-from-vault"));
    assert_eq!(flag(ds, "--peer-addr"), "[::]:7950");
    assert_eq!(flag(ds, "--datapath"), "netlink");
    assert_eq!(flag(ds, "--default-class"), "false");
    assert_eq!(flag(find(&objects, "Deployment", "ferrolb-ipam"), "--default-class"), "false");
    let d = find(&objects, "Deployment", "ferrolb-ipam");
    assert_eq!(d["spec"]["template"]["spec"]["serviceAccountName"], "lb-controller");
    assert!(d["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"].is_array());
    assert!(
        container(d)["image"]
            .as_str()
            .unwrap()
            .ends_with(":0.1.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
    );

    let np = find(&objects, "NetworkPolicy", "ferrolb-ipam");
    assert_eq!(np["spec"]["podSelector"]["matchLabels"], d["spec"]["selector"]["matchLabels"]);
    assert_eq!(np["spec"]["ingress"][0]["ports"][0]["port"], 9090);

    // Alerts on metric names the binaries really export.
    let rule = find(&objects, "PrometheusRule", "ferrolb");
    let alerts: Vec<&Value> = rule["spec"]["groups"][0]["rules"].as_array().unwrap().iter().collect();
    let names: Vec<&str> = alerts.iter().map(|a| a["alert"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "FerroLBNoIPAMLeader",
            "FerroLBServicesWithoutAddress",
            "FerroLBPoolNearlyExhausted",
            "FerroLBFrequentFailovers"
        ]
    );
    let mut sources = String::new();
    for dir in ["ipam/src", "l2announcer/src", "runtime/src"] {
        read_sources(&repo().join(dir), &mut sources);
    }
    for a in &alerts {
        let expr = a["expr"].as_str().unwrap();
        let metrics: Vec<&str> = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("ferrolb_"))
            .collect();
        assert!(!metrics.is_empty(), "{expr}");
        for m in metrics {
            assert!(
                sources.contains(&format!("\"{m}\"")),
                "alert {} uses {m}, which no binary exports",
                a["alert"]
            );
        }
    }
    // FerroLBNoIPAMLeader selects the elector's gauge by the Lease's name.
    assert!(
        alerts[0]["expr"]
            .as_str()
            .unwrap()
            .contains(&format!("lease=\"{}\"", ferrolb_api::names::IPAM_LEASE_NAME))
    );
}

#[test]
fn pools_and_policies_are_hooks_on_install_and_release_objects_on_upgrade() {
    let values = vec![chart().join("examples/metallb-l2.yaml")];
    let install = render(&values);
    let pool = find(&install, "LoadBalancerIPPool", "default");
    assert_eq!(pool["spec"]["blocks"], json!([{"start": "10.0.0.100", "stop": "10.0.0.200"}]));
    assert_eq!(pool["metadata"]["annotations"]["helm.sh/hook"], "post-install");
    let policy = find(&install, "L2AnnouncementPolicy", "default");
    assert_eq!(policy["spec"], json!({}));
    assert_eq!(policy["metadata"]["annotations"]["helm.sh/hook"], "post-install");
    let weight = |o: &Value| {
        o["metadata"]["annotations"]["helm.sh/hook-weight"].as_str().unwrap().parse::<i32>().unwrap()
    };
    assert!(weight(pool) < weight(policy), "pools before policies");

    for o in [pool, policy] {
        assert_eq!(
            o["metadata"]["annotations"]["helm.sh/resource-policy"], "keep",
            "uninstall keeps the pools"
        );
    }

    let upgrade = try_render(&RenderOpts { values, upgrade: true, ..Default::default() }).unwrap();
    for (kind, name) in [("LoadBalancerIPPool", "default"), ("L2AnnouncementPolicy", "default")] {
        let o = find(&upgrade, kind, name);
        let annotations = &o["metadata"]["annotations"];
        assert!(annotations.get("helm.sh/hook").is_none(), "{kind} is a hook on upgrade");
        // What lets Helm adopt the hook-created object.
        assert_eq!(annotations["meta.helm.sh/release-name"], "ferrolb");
        assert_eq!(annotations["meta.helm.sh/release-namespace"], NAMESPACE);
        assert_eq!(o["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm");
    }
}

/// An install into a cluster that already has the CRDs (a reinstall: the CRDs and the pools were
/// kept) renders the pools and policies as release objects, so Helm adopts the kept ones instead of
/// failing on a hook that creates an existing object. The cluster is kube-sim, whose discovery
/// gives Helm its Capabilities.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_are_release_objects_on_install_when_the_crds_exist() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, PostParams};
    let sim = kube_sim::KubeSim::start(kube_sim::Options::default()).await.unwrap();
    let client = sim.client().await.unwrap();
    let kubeconfig = sim.kubeconfig_path().to_path_buf();
    let values = vec![chart().join("examples/metallb-l2.yaml")];

    let (kc, v) = (kubeconfig.clone(), values.clone());
    let without = tokio::task::spawn_blocking(move || {
        try_render(&RenderOpts { values: v, kubeconfig: Some(&kc), ..Default::default() }).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        find(&without, "LoadBalancerIPPool", "default")["metadata"]["annotations"]["helm.sh/hook"],
        "post-install"
    );

    let crds: Api<CustomResourceDefinition> = Api::all(client);
    for crd in ferrolb_api::crd::all() {
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    let with = tokio::task::spawn_blocking(move || {
        try_render(&RenderOpts { values, kubeconfig: Some(&kubeconfig), ..Default::default() }).unwrap()
    })
    .await
    .unwrap();
    for (kind, name) in [("LoadBalancerIPPool", "default"), ("L2AnnouncementPolicy", "default")] {
        let annotations = &find(&with, kind, name)["metadata"]["annotations"];
        assert!(annotations.get("helm.sh/hook").is_none(), "{kind}: a hook although the CRD exists");
        assert_eq!(annotations["meta.helm.sh/release-name"], "ferrolb");
    }
}

#[test]
fn k3s_example_leaves_classless_services_to_servicelb() {
    let objects = render(&[chart().join("examples/k3s-servicelb.yaml")]);
    assert_eq!(flag(find(&objects, "Deployment", "ferrolb-ipam"), "--default-class"), "false");
    assert_eq!(flag(find(&objects, "DaemonSet", "ferrolb-announcer"), "--default-class"), "false");
    find(&objects, "LoadBalancerIPPool", "lan");
}

#[test]
fn notes_say_what_to_do_next() {
    let out = driver(&["notes", chart().to_str().unwrap(), "--namespace", NAMESPACE]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let notes = String::from_utf8_lossy(&out.stdout);
    for want in [
        &format!("ferrolbctl doctor -n {NAMESPACE}"),
        &format!("kubectl -n {NAMESPACE} get lease ferrolb-ipam"),
        "kind: LoadBalancerIPPool",
        "7947",
        "pod-security.kubernetes.io/enforce=privileged",
    ] {
        assert!(notes.contains(want), "NOTES.txt lacks {want:?}:\n{notes}");
    }
}

// ---------------------------------------------------------------------------------------------
// The values schema: one rejection per test

fn rejected(yaml: &str, expect: &str) {
    let f = temp_values(yaml);
    match try_render(&RenderOpts { values: vec![f], ..Default::default() }) {
        Ok(_) => panic!("values accepted, should be rejected:\n{yaml}"),
        Err(e) => assert!(e.contains(expect), "rejected, but the message lacks {expect:?}:\n{e}"),
    }
}

macro_rules! rejects {
    ($($name:ident: $yaml:expr => $expect:expr;)*) => {$(
        #[test]
        fn $name() {
            rejected($yaml, $expect);
        }
    )*};
}

rejects! {
    schema_rejects_a_wrong_type: "ipam:\n  replicas: two\n" => "/ipam/replicas";
    schema_rejects_an_unknown_top_level_key: "annoucer: {}\n" => "annoucer";
    schema_rejects_an_unknown_nested_key: "announcer:\n  peer:\n    prot: 7947\n" => "prot";
    schema_rejects_a_bad_datapath: "announcer:\n  datapath: ebpf\n" => "/announcer/datapath";
    schema_rejects_a_bad_log_format: "logFormat: xml\n" => "/logFormat";
    schema_rejects_a_duration_without_unit: "ipam:\n  leaderElection:\n    leaseDuration: \"15\"\n" => "/ipam/leaderElection/leaseDuration";
    schema_rejects_a_fractional_heartbeat_lease: "announcer:\n  heartbeat:\n    leaseDuration: 1500ms\n" => "/announcer/heartbeat/leaseDuration";
    schema_rejects_a_port_out_of_range: "announcer:\n  peer:\n    port: 70000\n" => "/announcer/peer/port";
    schema_rejects_negative_replicas: "ipam:\n  replicas: -1\n" => "/ipam/replicas";
    schema_rejects_a_string_for_announcer_enabled: "announcer:\n  enabled: \"no\"\n" => "/announcer/enabled";
    schema_rejects_a_bad_anti_affinity: "ipam:\n  podAntiAffinity: always\n" => "/ipam/podAntiAffinity";
    schema_rejects_a_bad_digest: "image:\n  digest: latest\n" => "/image/digest";
    schema_rejects_a_bad_pull_policy: "image:\n  pullPolicy: Sometimes\n" => "/image/pullPolicy";
    schema_rejects_a_string_for_a_boolean: "defaultClass: \"false\"\n" => "/defaultClass";
    schema_rejects_a_netlink_lifetime_under_2s: "announcer:\n  netlinkAddressLifetime: 1s\n" => "/announcer/netlinkAddressLifetime";
    schema_rejects_a_pool_without_blocks: "ipPools:\n  - name: p\n    spec: {}\n" => "blocks";
    schema_rejects_an_unknown_block_field: "ipPools:\n  - name: p\n    spec:\n      blocks:\n        - start: 10.0.0.1\n          end: 10.0.0.9\n" => "end";
    schema_rejects_a_bad_allow_first_last: "ipPools:\n  - name: p\n    spec:\n      blocks: [{cidr: 10.0.0.0/24}]\n      allowFirstLastIPs: \"yes\"\n" => "allowFirstLastIPs";
    schema_rejects_a_bad_selector_operator: "l2AnnouncementPolicies:\n  - name: p\n    spec:\n      nodeSelector:\n        matchExpressions: [{key: a, operator: Is}]\n" => "operator";
    schema_rejects_an_unknown_policy_field: "l2AnnouncementPolicies:\n  - name: p\n    spec:\n      interface: [eth0]\n" => "interface";
    schema_rejects_an_object_name_with_capitals: "ipPools:\n  - name: Default\n    spec:\n      blocks: [{cidr: 10.0.0.0/24}]\n" => "/ipPools/0/name";
    schema_rejects_a_bad_toleration_effect: "announcer:\n  tolerations: [{key: a, operator: Exists, effect: Never}]\n" => "effect";
    schema_rejects_extra_args_that_are_not_flags: "ipam:\n  extraArgs: [\"rm -rf\"]\n" => "/ipam/extraArgs/0";
    schema_rejects_a_ratio_above_one: "metrics:\n  prometheusRule:\n    enabled: true\n    poolAvailableRatio: 2\n" => "poolAvailableRatio";
    schema_rejects_a_malformed_load_balancer_class: "loadBalancerClasses: [\"not a class\"]\n" => "/loadBalancerClasses/0";
    template_rejects_a_grace_period_shorter_than_the_hand_over: "announcer:\n  shutdownGraceSeconds: 20\n  terminationGracePeriodSeconds: 21\n" => "terminationGracePeriodSeconds (21) must be at least";
    template_rejects_grpc_over_tcp_without_a_tls_secret: "announcer:\n  grpcTcp:\n    enabled: true\n" => "announcer.grpcTcp.enabled needs announcer.grpcTcp.tls.secretName";
    template_rejects_the_nic_agent_beside_another_datapath: "nicAgent:\n  enabled: true\n  interface: eth0\n" => "nicAgent.enabled needs announcer.datapath delegate, not responder";
    template_rejects_the_nic_agent_without_an_interface: "announcer:\n  datapath: delegate\nnicAgent:\n  enabled: true\n" => "nicAgent.enabled needs nicAgent.interface";
    template_rejects_the_nic_agent_without_the_socket: "announcer:\n  datapath: delegate\n  grpcEnabled: false\nnicAgent:\n  enabled: true\n  interface: eth0\n" => "nicAgent.enabled needs announcer.grpcEnabled";
    template_rejects_two_listeners_on_one_host_port: "announcer:\n  grpcTcp:\n    enabled: true\n    port: 7947\n    tls:\n      secretName: s\n" => "announcer.peer.port and announcer.grpcTcp.port are both 7947";
    template_rejects_the_nic_agent_on_the_announcers_metrics_port: "announcer:\n  datapath: delegate\nnicAgent:\n  enabled: true\n  interface: eth0\n  metricsPort: 7948\n" => "announcer.metricsPort and nicAgent.metricsPort are both 7948";
    schema_rejects_an_interface_name_past_15_characters: "nicAgent:\n  interface: enp0s31f6-too-long\n" => "/nicAgent/interface";
    schema_rejects_an_unknown_tls_key: "announcer:\n  grpcTcp:\n    tls:\n      caKey: ca.crt\n" => "caKey";
}

// ---------------------------------------------------------------------------------------------
// Kubernetes validation

/// Validates the objects with kubernetes-validate (strict) for Kubernetes 1.31 to the newest it
/// knows; returns the kinds it has no schema for.
fn kube_validate(objects: &[Value]) -> Vec<String> {
    let items: Vec<Value> = objects.iter().map(|o| json!({"source": "test", "object": o})).collect();
    let file = temp_values(&serde_json::to_string(&items).unwrap());
    let out = driver(&["kube-validate", "--from", "1.31", file.to_str().unwrap()]);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("kube-validate: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success() && report["errors"].as_array().unwrap().is_empty(), "{report:#}");
    let versions = strings(&report["versions"]);
    assert_eq!(versions.first().map(String::as_str), Some("1.31"), "{versions:?}");
    assert!(versions.len() >= 7, "kubernetes-validate 1.37.0 knows 1.31..1.37: {versions:?}");
    strings(&report["no_schema"])
}

#[test]
fn every_rendered_object_validates_for_kubernetes_1_31_to_newest() {
    let allowed_without_schema = [
        "ferrolb.io/v1alpha1/LoadBalancerIPPool",
        "ferrolb.io/v1alpha1/L2AnnouncementPolicy",
        "monitoring.coreos.com/v1/ServiceMonitor",
        "monitoring.coreos.com/v1/PodMonitor",
        "monitoring.coreos.com/v1/PrometheusRule",
    ];
    let mut sets = vec![vec![], vec![all_features()]];
    sets.extend(examples().into_iter().map(|e| vec![e]));
    for values in sets {
        let objects = render(&values);
        for kind in kube_validate(&objects) {
            assert!(allowed_without_schema.contains(&kind.as_str()), "{kind} ({values:?}) was not validated");
        }
    }
}

#[test]
fn kube_validate_is_strict() {
    // The instrument works: an unknown field in a Deployment's container fails.
    let mut objects = render(&[]);
    let d = objects.iter_mut().find(|o| o["kind"] == "Deployment").unwrap();
    d["spec"]["template"]["spec"]["containers"][0]["comand"] = json!(["x"]);
    let items: Vec<Value> = vec![json!({"source": "test", "object": d})];
    let file = temp_values(&serde_json::to_string(&items).unwrap());
    let out = driver(&["kube-validate", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("comand"));
}

/// The CRDs as the chart renders them are served by kube-sim, and the pools and policies rendered
/// from values pass their schemas (and CEL rules).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_from_values_are_accepted_by_the_rendered_crds() {
    use kube::api::{Api, DynamicObject, PostParams};
    use kube::core::{ApiResource, GroupVersionKind};
    let objects = tokio::task::spawn_blocking(|| render(&[all_features()])).await.unwrap();
    let sim = kube_sim::KubeSim::start(kube_sim::Options::default()).await.unwrap();
    let client = sim.client().await.unwrap();
    let crds: Api<
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    > = Api::all(client.clone());
    for crd in of_kind(&objects, "CustomResourceDefinition") {
        crds.create(&PostParams::default(), &serde_json::from_value(crd.clone()).unwrap()).await.unwrap();
    }
    let mut created = 0;
    for (kind, plural) in
        [("LoadBalancerIPPool", "loadbalancerippools"), ("L2AnnouncementPolicy", "l2announcementpolicies")]
    {
        let gvk = GroupVersionKind::gvk(ferrolb_api::names::GROUP, ferrolb_api::names::VERSION, kind);
        let api: Api<DynamicObject> =
            Api::all_with(client.clone(), &ApiResource::from_gvk_with_plural(&gvk, plural));
        for o in of_kind(&objects, kind) {
            api.create(&PostParams::default(), &serde_json::from_value(o.clone()).unwrap())
                .await
                .unwrap_or_else(|e| panic!("{kind} {} rejected: {e}", o["metadata"]["name"]));
            created += 1;
        }
    }
    assert_eq!(created, 2);
}

// ---------------------------------------------------------------------------------------------
// The peer key across upgrades

/// Rendered against a cluster where the Secret exists (kube-sim), the chart keeps its key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_key_secret_is_kept_on_upgrade() {
    use k8s_openapi::api::core::v1::{Namespace, Secret};
    use kube::api::{Api, PostParams};
    let sim = kube_sim::KubeSim::start(kube_sim::Options::default()).await.unwrap();
    let client = sim.client().await.unwrap();
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).unwrap();
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.unwrap();
    let kubeconfig = sim.kubeconfig_path().to_path_buf();

    // No Secret yet: a fresh random key.
    let kc = kubeconfig.clone();
    let first = tokio::task::spawn_blocking(move || {
        try_render(&RenderOpts { kubeconfig: Some(&kc), ..Default::default() }).unwrap()
    })
    .await
    .unwrap();
    let fresh = find(&first, "Secret", "ferrolb-peer-key")["data"]["peer.key"].as_str().unwrap().to_owned();

    let kept = "a2VwdCBhY3Jvc3MgdXBncmFkZXMsIDMyIGJ5dGVzIGxvbmch"; // base64 of a 36-byte key
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "ferrolb-peer-key", "namespace": NAMESPACE},
        "data": {"peer.key": kept},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client, NAMESPACE).create(&PostParams::default(), &secret).await.unwrap();
    let kc = kubeconfig.clone();
    let upgrade = tokio::task::spawn_blocking(move || {
        try_render(&RenderOpts { kubeconfig: Some(&kc), upgrade: true, ..Default::default() }).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(find(&upgrade, "Secret", "ferrolb-peer-key")["data"]["peer.key"], kept);
    assert_ne!(fresh, kept);
}

// ---------------------------------------------------------------------------------------------
// RBAC

/// The (scope, group, resource, object name, verb) grants of the rendered Roles and ClusterRoles of a
/// component, checking the bindings on the way. The kube-system Role exists only for components
/// with rules there.
fn rendered_grants(objects: &[Value], c: &Component) -> Vec<Grant> {
    let sa = format!("ferrolb-{}", c.name);
    let mut out = BTreeSet::new();
    for (role_kind, binding_kind, scope) in [
        ("ClusterRole", "ClusterRoleBinding", Scope::Cluster),
        ("Role", "RoleBinding", Scope::ReleaseNamespace),
        ("Role", "RoleBinding", Scope::KubeSystem),
    ] {
        let name = match scope {
            Scope::KubeSystem => format!("ferrolb-{}-kube-system", c.name),
            _ => format!("ferrolb-{}", c.name),
        };
        if scope == Scope::KubeSystem && !c.rules.iter().any(|r| r.scope == scope) {
            assert!(
                of_kind(objects, role_kind).iter().all(|r| r["metadata"]["name"] != name.as_str()),
                "{name}: a kube-system Role without rules for it"
            );
            continue;
        }
        let role = find(objects, role_kind, &name);
        let binding = find(objects, binding_kind, &name);
        assert_eq!(
            binding["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": name})
        );
        assert_eq!(
            binding["subjects"],
            json!([{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}])
        );
        let namespace = match scope {
            Scope::Cluster => None,
            Scope::ReleaseNamespace => Some(NAMESPACE),
            Scope::KubeSystem => Some("kube-system"),
        };
        if let Some(ns) = namespace {
            assert_eq!(role["metadata"]["namespace"], ns);
            assert_eq!(binding["metadata"]["namespace"], ns);
        }
        for rule in role["rules"].as_array().unwrap() {
            assert!(rule.get("nonResourceURLs").is_none());
            let names = rule.get("resourceNames").map_or_else(|| vec![String::new()], strings);
            for g in strings(&rule["apiGroups"]) {
                for r in strings(&rule["resources"]) {
                    for n in &names {
                        for v in strings(&rule["verbs"]) {
                            out.insert((scope, g.clone(), r.clone(), n.clone(), v));
                        }
                    }
                }
            }
        }
    }
    out.into_iter().collect()
}

#[test]
fn rendered_rbac_equals_api_rbac() {
    let objects = render(&[]);
    for c in rbac::COMPONENTS {
        assert_eq!(
            rendered_grants(&objects, &c),
            c.grants(),
            "{}: chart RBAC differs from api/src/rbac.rs",
            c.name
        );
        find(&objects, "ServiceAccount", &format!("ferrolb-{}", c.name));
    }
    let off = temp_values("rbac:\n  create: false\n");
    let objects = render(&[off]);
    assert!(of_kind(&objects, "ClusterRole").is_empty() && of_kind(&objects, "Role").is_empty());
}

/// `loadBalancerClasses` reaches both binaries as one `--load-balancer-classes` comma list; an
/// empty list passes no flag (the binaries' default: no class and `ferrolb.io/l2`).
#[test]
fn load_balancer_classes_reach_both_binaries() {
    let default = render(&[]);
    let all = render(&[all_features()]);
    for (kind, name) in [("Deployment", "ferrolb-ipam"), ("DaemonSet", "ferrolb-announcer")] {
        let a = args(find(&default, kind, name));
        assert!(!a.iter().any(|a| a.starts_with("--load-balancer-classes")), "{name}: {a:?}");
        assert_eq!(flag(find(&all, kind, name), "--load-balancer-classes"), "ingress,io.cilium/l2-announcer");
    }
}

/// A migration's first step: installed with everything FerroLB needs, serving nothing (no ipam
/// replica, no announcer), and NOTES says so and how to start.
#[test]
fn installed_but_not_serving_for_a_migration() {
    let values = temp_values("ipam:\n  replicas: 0\nannouncer:\n  enabled: false\n");
    let objects = render(std::slice::from_ref(&values));
    assert!(of_kind(&objects, "DaemonSet").is_empty(), "{:?}", summary(&objects));
    assert!(of_kind(&objects, "PodDisruptionBudget").is_empty(), "{:?}", summary(&objects));
    assert_eq!(find(&objects, "Deployment", "ferrolb-ipam")["spec"]["replicas"], 0);
    for kind in ["CustomResourceDefinition", "ClusterRole", "Secret", "ServiceAccount"] {
        assert!(!of_kind(&objects, kind).is_empty(), "{kind} is still installed");
    }
    let notes = driver(&["notes", &chart().display().to_string(), "-f", &values.display().to_string()]);
    let text = String::from_utf8_lossy(&notes.stdout);
    assert!(
        text.contains("NOT SERVING YET")
            && text.contains("--set ipam.replicas=2 --set announcer.enabled=true"),
        "{text}"
    );
    let default_notes = driver(&["notes", &chart().display().to_string()]);
    assert!(!String::from_utf8_lossy(&default_notes.stdout).contains("NOT SERVING"));
}

/// `announcer.grpcTcp`: the API on TCP with mutual TLS, every TLS file from the Secret, mounted
/// read-only, each flag pointing at its file; the default serves the socket only.
#[test]
fn grpc_over_tcp_is_mutual_tls_from_a_read_only_secret() {
    let default = find(&render(&[]), "DaemonSet", "ferrolb-announcer").clone();
    let a = args(&default);
    for f in ["--grpc-listen", "--grpc-tls-cert", "--grpc-tls-key", "--grpc-client-ca"] {
        assert!(!a.iter().any(|x| x.starts_with(f)), "default passes {f}: {a:?}");
    }

    let objects = render(&[all_features()]);
    let ds = find(&objects, "DaemonSet", "ferrolb-announcer");
    let c = named_container(ds, "announcer");
    assert_eq!(container_flag(c, "--grpc-listen"), "[::]:7949");
    let ports = c["ports"].as_array().unwrap();
    assert!(
        ports.iter().any(|p| p["name"] == "grpc" && p["containerPort"] == 7949 && p["protocol"] == "TCP"),
        "{ports:?}"
    );
    let volumes = ds["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    let volume = volumes
        .iter()
        .find(|v| v["secret"]["secretName"] == "ferrolb-grpc-tls")
        .expect("a volume of the TLS Secret");
    assert_eq!(volume["secret"]["defaultMode"], 0o400);
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume["name"])
        .expect("the TLS volume mounted");
    assert_eq!(mount["readOnly"], true);
    let dir = mount["mountPath"].as_str().unwrap();
    // Each flag names the file of the Secret key the values chose.
    let items = volume["secret"]["items"].as_array().unwrap();
    for (flag_name, key) in [
        ("--grpc-tls-cert", "server.pem"),
        ("--grpc-tls-key", "server-key.pem"),
        ("--grpc-client-ca", "clients-ca.pem"),
    ] {
        let item = items.iter().find(|i| i["key"] == key).unwrap_or_else(|| panic!("no item for {key}"));
        assert_eq!(container_flag(c, flag_name), format!("{dir}/{}", item["path"].as_str().unwrap()));
    }
    assert_eq!(items.len(), 3);
}

/// `nicAgent`: ferrolb-nic-agent as a second container of the announcer's pods, on the same host
/// network and socket, with NET_ADMIN only; its metrics beside the announcer's.
#[test]
fn nic_agent_runs_beside_the_announcer_on_its_socket_with_net_admin_only() {
    assert_eq!(
        find(&render(&[]), "DaemonSet", "ferrolb-announcer")["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "no agent by default"
    );
    let values = temp_values(
        "announcer:\n  datapath: delegate\nnicAgent:\n  enabled: true\n  interface: enp1s0\n  fenceAfter: 2s\n\
         metrics:\n  serviceMonitor:\n    enabled: true\n  podMonitor:\n    enabled: true\n",
    );
    let objects = render(std::slice::from_ref(&values));
    let ds = find(&objects, "DaemonSet", "ferrolb-announcer");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true, "the agent programs the node's interface");
    let announcer = named_container(ds, "announcer");
    let agent = named_container(ds, "nic-agent");
    assert_eq!(container_flag(announcer, "--datapath"), "delegate");
    assert_eq!(agent["command"], json!(["/usr/local/bin/ferrolb-nic-agent"]));
    assert_eq!(agent["image"], announcer["image"]);
    assert_eq!(container_flag(agent, "--interface"), "enp1s0");
    assert_eq!(container_flag(agent, "--fence-after"), "2s");

    // The socket the announcer serves is the one the agent dials, through the same volume.
    let socket = container_flag(announcer, "--grpc-socket");
    assert_eq!(container_flag(agent, "--socket"), socket);
    let mount_of = |c: &Value| -> (String, String) {
        c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| socket.starts_with(&format!("{}/", m["mountPath"].as_str().unwrap())))
            .map(|m| (m["name"].as_str().unwrap().to_owned(), m["mountPath"].as_str().unwrap().to_owned()))
            .unwrap_or_else(|| panic!("{} does not mount the socket's directory", c["name"]))
    };
    assert_eq!(mount_of(agent), mount_of(announcer));

    let sc = &agent["securityContext"];
    assert_eq!(sc["capabilities"], json!({"drop": ["ALL"], "add": ["NET_ADMIN"]}));
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["runAsUser"], announcer["securityContext"]["runAsUser"]);

    // Probes and metrics on its own port, which --metrics-addr binds.
    let port = agent["ports"][0]["containerPort"].as_u64().unwrap();
    assert_eq!(container_flag(agent, "--metrics-addr"), format!("0.0.0.0:{port}"));
    assert_eq!(
        agent["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": agent["ports"][0]["name"]})
    );
    assert_eq!(
        agent["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": agent["ports"][0]["name"]})
    );
    let service = find(&objects, "Service", "ferrolb-announcer-metrics");
    assert!(
        service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["port"] == port && p["targetPort"] == agent["ports"][0]["name"]),
        "{}",
        service["spec"]["ports"]
    );
    let endpoints = &find(&objects, "ServiceMonitor", "ferrolb-announcer")["spec"]["endpoints"];
    assert!(
        endpoints.as_array().unwrap().iter().any(|e| e["port"] == agent["ports"][0]["name"]),
        "{endpoints}"
    );
    let pod_endpoints = &find(&objects, "PodMonitor", "ferrolb-announcer")["spec"]["podMetricsEndpoints"];
    assert!(
        pod_endpoints.as_array().unwrap().iter().any(|e| e["port"] == agent["ports"][0]["name"]),
        "{pod_endpoints}"
    );

    let notes = driver(&["notes", &chart().display().to_string(), "-f", &values.display().to_string()]);
    let notes = String::from_utf8_lossy(&notes.stdout);
    assert!(notes.contains("ferrolb-nic-agent") && notes.contains("enp1s0"), "{notes}");
}
