//! Debian's `kubectl` against kube-sim: apply the committed CRDs, then create, read (JSON and
//! printer-column tables), patch, label and delete FerroLB objects and a Service; `kubectl create`
//! of built-in kinds, which sends protobuf bodies.

use std::path::Path;
use std::process::{Command, Stdio};

use kube_sim::{KubeSim, Options};

fn kubectl_path() -> &'static str {
    let path = "/usr/bin/kubectl";
    assert!(
        Path::new(path).exists(),
        "kubectl is required at {path} for these tests (hack/test.sh installs what it can)"
    );
    path
}

/// Runs kubectl; returns stdout, panics with stderr on failure.
async fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let (ok, out, err) = kubectl_raw(kubeconfig, args, stdin).await;
    assert!(ok, "kubectl {args:?} failed:\n{err}\n{out}");
    out
}

async fn kubectl_raw(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let kubeconfig = kubeconfig.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let stdin = stdin.map(String::from);
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(kubectl_path())
            .args(&args)
            .env("KUBECONFIG", &kubeconfig)
            .env("HOME", kubeconfig.parent().unwrap())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl starts");
        if let Some(input) = stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

const POOL: &str = r#"
apiVersion: ferrolb.io/v1alpha1
kind: LoadBalancerIPPool
metadata:
  name: lab
spec:
  blocks:
  - cidr: 198.51.100.128/25
  - start: 2001:db8:100::1000
    stop: 2001:db8:100::1fff
"#;

const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_manages_ferrolb_objects() {
    let sim = KubeSim::start(Options::default()).await.unwrap();
    let kc = sim.kubeconfig_path();
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../helm/ferrolb/files/crds");
    let out = kubectl(kc, &["apply", "-f", crds.to_str().unwrap()], None).await;
    assert!(out.contains("loadbalancerippools.ferrolb.io created"), "{out}");
    // Applying again changes nothing.
    let out = kubectl(kc, &["apply", "-f", crds.to_str().unwrap()], None).await;
    assert!(out.contains("unchanged"), "{out}");

    kubectl(kc, &["apply", "-f", "-"], Some(POOL)).await;
    let table = kubectl(kc, &["get", "lbippools"], None).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "DISABLED", "CONFLICTING", "TOTAL", "USED", "AVAILABLE", "AGE"], "{table}");
    assert!(table.lines().nth(1).unwrap().starts_with("lab "), "{table}");
    for short in ["ippool", "ippools", "lbippool", "loadbalancerippools"] {
        assert!(
            kubectl(kc, &["get", short, "-o", "name"], None)
                .await
                .contains("loadbalancerippool.ferrolb.io/lab")
        );
    }

    let json: serde_json::Value =
        serde_json::from_str(&kubectl(kc, &["get", "ippool", "lab", "-o", "json"], None).await).unwrap();
    assert_eq!(json["spec"]["blocks"][0]["cidr"], "198.51.100.128/25");
    assert_eq!(json["spec"]["autoAssign"], true, "schema defaults are applied");

    kubectl(kc, &["patch", "ippool", "lab", "--type", "merge", "-p", r#"{"spec":{"disabled":true}}"#], None)
        .await;
    kubectl(kc, &["label", "ippool", "lab", "tier=gold"], None).await;
    let listed = kubectl(kc, &["get", "ippools", "-l", "tier=gold", "-o", "name"], None).await;
    assert_eq!(listed.trim(), "loadbalancerippool.ferrolb.io/lab");
    let table = kubectl(kc, &["get", "ippool", "lab"], None).await;
    assert!(table.lines().nth(1).unwrap().split_whitespace().nth(1) == Some("true"), "{table}");

    // Validation errors come back as kubectl shows them for a real apiserver.
    let bad = POOL
        .replace("name: lab", "name: bad")
        .replace("- cidr: 198.51.100.128/25", "- cidr: 198.51.100.128/25\n    start: 198.51.100.1");
    let (ok, _, err) = kubectl_raw(kc, &["apply", "-f", "-"], Some(&bad)).await;
    assert!(!ok && err.contains("is invalid"), "{err}");
    let unknown = POOL.replace("name: lab", "name: strict").replace("spec:\n", "spec:\n  bogus: 1\n");
    let (ok, _, err) = kubectl_raw(kc, &["apply", "-f", "-"], Some(&unknown)).await;
    assert!(!ok && err.contains("unknown field"), "{err}");

    kubectl(kc, &["delete", "ippool", "lab"], None).await;
    let empty = kubectl_raw(kc, &["get", "ippools"], None).await;
    assert!(empty.2.contains("No resources found"), "{empty:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_manages_services() {
    let sim = KubeSim::start(Options::default()).await.unwrap();
    let kc = sim.kubeconfig_path();
    kubectl(kc, &["apply", "-f", "-"], Some(SERVICE)).await;
    let table = kubectl(kc, &["get", "svc", "web"], None).await;
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[0], "web");
    assert_eq!(row[1], "LoadBalancer");
    assert_eq!(row[3], "<pending>", "{table}");
    // Re-applying a changed manifest goes through kubectl's strategic merge patch.
    kubectl(kc, &["apply", "-f", "-"], Some(&SERVICE.replace("port: 80", "port: 81"))).await;
    let json: serde_json::Value =
        serde_json::from_str(&kubectl(kc, &["get", "svc", "web", "-o", "json"], None).await).unwrap();
    assert_eq!(json["spec"]["ports"].as_array().unwrap().len(), 1, "{json}");
    assert_eq!(json["spec"]["ports"][0]["port"], 81);
    kubectl(
        kc,
        &[
            "patch",
            "svc",
            "web",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"loadBalancer":{"ingress":[{"ip":"198.51.100.130","ipMode":"VIP"}]}}}"#,
        ],
        None,
    )
    .await;
    let table = kubectl(kc, &["get", "svc", "web"], None).await;
    assert!(table.contains("198.51.100.130"), "{table}");
    kubectl(kc, &["delete", "svc", "web"], None).await;
}

/// `kubectl create` goes through client-go's typed clients, which send built-in kinds as protobuf
/// (`Content-Type: application/vnd.kubernetes.protobuf`) and accept JSON answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_sends_protobuf() {
    let sim = KubeSim::start(Options::default()).await.unwrap();
    let kc = sim.kubeconfig_path();
    let (ok, out, log) = kubectl_raw(kc, &["create", "namespace", "x", "-v=8"], None).await;
    assert!(ok, "kubectl create namespace failed:\n{log}\n{out}");
    assert!(out.contains("namespace/x created"), "{out}");
    assert!(
        log.contains("Content-Type: application/vnd.kubernetes.protobuf"),
        "kubectl no longer sends protobuf, this test checks nothing:\n{log}"
    );
    kubectl(kc, &["create", "configmap", "c", "-n", "x", "--from-literal=mode=l2"], None).await;
    kubectl(kc, &["create", "secret", "generic", "s", "-n", "x", "--from-literal=k=v"], None).await;
    kubectl(kc, &["create", "service", "loadbalancer", "web", "-n", "x", "--tcp=80:8080"], None).await;

    let ns: serde_json::Value =
        serde_json::from_str(&kubectl(kc, &["get", "namespace", "x", "-o", "json"], None).await).unwrap();
    assert_eq!(ns["status"]["phase"], "Active", "{ns}");
    let cm = kubectl(kc, &["get", "configmap", "c", "-n", "x", "-o", "jsonpath={.data.mode}"], None).await;
    assert_eq!(cm, "l2");
    let secret = kubectl(kc, &["get", "secret", "s", "-n", "x", "-o", "jsonpath={.data.k}"], None).await;
    assert_eq!(secret, "dg==");
    let svc: serde_json::Value =
        serde_json::from_str(&kubectl(kc, &["get", "svc", "web", "-n", "x", "-o", "json"], None).await)
            .unwrap();
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080, "{svc}");
    assert!(svc["spec"]["ports"][0]["nodePort"].as_u64().is_some_and(|p| p >= 30000), "{svc}");
    assert!(svc["spec"]["clusterIP"].as_str().is_some_and(|ip| !ip.is_empty()), "{svc}");

    // Creating it again is refused the way kubectl reports it for a real apiserver.
    let (ok, _, err) = kubectl_raw(kc, &["create", "namespace", "x"], None).await;
    assert!(!ok && err.contains("AlreadyExists") && err.contains("already exists"), "{err}");
}
