//! `ferrolb-announcer` refuses, at startup and before it talks to anyone, a TCP gRPC listener
//! without mutual TLS and TLS files it cannot use: a clear message and a failing exit code.

use std::process::Command;

fn announcer(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb-announcer"))
        .args(["--node-name", "node1", "--metrics-addr", "127.0.0.1:0", "--grpc-socket", "none"])
        .args(args)
        // Never reach a cluster, whatever the environment says.
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("the announcer runs");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn plaintext_tcp_is_refused_at_startup() {
    let (code, stderr) = announcer(&["--grpc-listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("plaintext gRPC over TCP is refused"), "{stderr}");
    assert!(stderr.contains("missing --grpc-tls-cert, --grpc-tls-key, --grpc-client-ca"), "{stderr}");
}

#[test]
fn unusable_tls_files_are_refused_at_startup() {
    let dir = std::env::temp_dir().join(format!("ferrolb-grpc-startup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "not PEM\n").unwrap();
    let g = garbage.to_str().unwrap();
    let (code, stderr) = announcer(&[
        "--grpc-listen",
        "127.0.0.1:0",
        "--grpc-tls-cert",
        g,
        "--grpc-tls-key",
        g,
        "--grpc-client-ca",
        g,
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--grpc-tls-cert") && stderr.contains("no PEM CERTIFICATE"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
