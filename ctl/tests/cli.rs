//! Runs the built `ferrolbctl` binary: exit codes 0 (converted), 1 (`--check` with something
//! approximate or dropped), 2 (input errors, never a panic), stdin, `-o DIR` and `--help`.
//! Commands that talk to a cluster are in `cluster.rs`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferrolbctl")
}

fn case(kind: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/convert").join(kind).join(name).join("input")
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = stdin.unwrap_or("").to_string();
    let mut pipe = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        let _ = pipe.write_all(input.as_bytes());
    });
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn exact_conversion_exits_0_even_with_check() {
    let input = case("pass", "metallb-interfaces");
    let out = run(&["convert", "-f", input.to_str().unwrap(), "--check"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("kind: LoadBalancerIPPool"));
    assert!(text(&out.stderr).contains("fields: "));
}

#[test]
fn check_exits_1_when_something_is_approximate() {
    let input = case("pass", "metallb-bgp-kinds");
    let out = run(&["convert", "-f", input.to_str().unwrap(), "--check"], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("check failed"));
    let without = run(&["convert", "-f", input.to_str().unwrap()], None);
    assert_eq!(without.status.code(), Some(0));
}

#[test]
fn input_errors_exit_2_with_file_document_and_field() {
    for (name, needle) in [
        ("invalid-yaml", "broken.yaml, document 2 (line 12): invalid YAML"),
        ("bad-cidr", "spec.addresses[1]: \"192.0.2.64/33\""),
        ("overlapping-pools", "overlapping addresses"),
        ("unknown-kind", "unknown kind \"Deployment\""),
    ] {
        let input = case("fail", name);
        let out = run(&["convert", "-f", input.to_str().unwrap()], None);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(err.contains(needle), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(out.stdout.is_empty(), "{name}: nothing is written on error");
    }
    let missing = run(&["convert", "-f", "/nonexistent/ferrolb-input.yaml"], None);
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("/nonexistent/ferrolb-input.yaml"));
}

#[test]
fn reads_stdin_and_writes_json_report() {
    let yaml = "apiVersion: cilium.io/v2\nkind: CiliumLoadBalancerIPPool\nmetadata: {name: p}\nspec:\n  blocks: [{cidr: 192.0.2.0/28}]\n";
    let out = run(&["convert", "-f", "-", "--report", "json"], Some(yaml));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(&text(&out.stderr)).unwrap();
    assert_eq!(report["summary"]["pools"], 1);
    assert_eq!(report["entries"][0]["source"], "-, document 1");
    let garbage = run(&["convert", "-f", "-"], Some("\u{0}\u{1}: [: :"));
    assert_eq!(garbage.status.code(), Some(2), "{}", text(&garbage.stderr));
}

#[test]
fn output_directory_gets_manifests_patches_and_report() {
    let dir = std::env::temp_dir().join(format!("ferrolbctl-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let input = case("pass", "services-rewrite-annotations");
    let target = format!("{}/", dir.display());
    let out = run(&["convert", "-f", input.to_str().unwrap(), "-o", &target, "--rewrite-annotations"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for f in ["ferrolb.yaml", "service-patches.yaml", "report.txt"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let patches = std::fs::read_to_string(dir.join("service-patches.yaml")).unwrap();
    assert!(patches.contains("ferrolb.io/pool: prod-pool"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn help_documents_every_flag() {
    let out = run(&["convert", "--help"], None);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for flag in [
        "--filename",
        "--from-cluster",
        "--output",
        "--report",
        "--report-file",
        "--rewrite-annotations",
        "--check",
        "--kubeconfig",
        "--context",
        "--metallb-namespace",
        "--metallb-config",
        "Exit codes",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
    let out = run(&["status", "--help"], None);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for flag in ["--kubeconfig", "--context", "--output", "--save", "--compare", "Exit codes"] {
        assert!(help.contains(flag), "{flag} missing from status --help:\n{help}");
    }
}

#[test]
fn cluster_flags_are_checked_before_anything_is_read() {
    let out = run(&["convert", "-f", "-", "--metallb-namespace", "x"], Some(""));
    assert_eq!(out.status.code(), Some(2), "--metallb-namespace needs --from-cluster");
    let out = run(&["convert", "--from-cluster", "--metallb-config", "no-slash"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("is not NAMESPACE/NAME"), "{}", text(&out.stderr));
    let out = run(&["status", "--save", "a.json", "--compare", "b.json"], None);
    assert_eq!(out.status.code(), Some(2), "--save and --compare exclude each other");
}

#[test]
fn version_names_the_binary_and_the_workspace_version() {
    let out = run(&["--version"], None);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), format!("ferrolbctl {}\n", env!("CARGO_PKG_VERSION")));
}
