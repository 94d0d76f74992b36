//! Snapshot tests over the fixture directories `tests/convert/{pass,fail}/<case>/`:
//! `input/` holds the source files; `args` optional flags (`--rewrite-annotations`).
//! A pass case compares `expected.yaml`, `expected-values.yaml`, `expected-report.txt` and
//! `expected-report.json`;
//! a fail case compares `expected-error.txt`. `FERROLB_BLESS=1` rewrites the expectations.

use std::path::{Path, PathBuf};

use ferrolb_ctl::output::{self, ReportFormat};
use ferrolb_ctl::{Options, SourceText, convert_texts};
use pretty_assertions::assert_eq;

fn cases(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/convert").join(kind);
    let mut out: Vec<PathBuf> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    out.sort();
    assert!(!out.is_empty(), "no cases in {}", dir.display());
    out
}

fn inputs(case: &Path) -> Vec<SourceText> {
    ferrolb_ctl::input::collect_files(&case.join("input"))
        .unwrap()
        .into_iter()
        .map(|f| SourceText {
            name: f.strip_prefix(case).unwrap().display().to_string(),
            text: std::fs::read_to_string(&f).unwrap(),
        })
        .collect()
}

fn options(case: &Path) -> Options {
    let args = std::fs::read_to_string(case.join("args")).unwrap_or_default();
    Options {
        rewrite_annotations: args.split_whitespace().any(|a| a == "--rewrite-annotations"),
        ..Options::default()
    }
}

fn compare(case: &Path, file: &str, actual: &str, failures: &mut Vec<String>) {
    let path = case.join(file);
    if std::env::var_os("FERROLB_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing; run with FERROLB_BLESS=1", path.display()));
    if expected != actual {
        failures.push(format!(
            "{}:\n{}",
            path.display(),
            pretty_assertions::StrComparison::new(&expected, actual)
        ));
    }
}

#[test]
fn pass_cases() {
    let mut failures = Vec::new();
    for case in cases("pass") {
        let conv = convert_texts(&inputs(&case), &options(&case))
            .unwrap_or_else(|e| panic!("{}: conversion failed:\n{e}", case.display()));
        compare(&case, "expected.yaml", &output::stream(&conv), &mut failures);
        compare(&case, "expected-values.yaml", &output::values(&conv), &mut failures);
        compare(&case, "expected-report.txt", &output::report(&conv, ReportFormat::Text), &mut failures);
        compare(&case, "expected-report.json", &output::report(&conv, ReportFormat::Json), &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fail_cases() {
    let mut failures = Vec::new();
    for case in cases("fail") {
        match convert_texts(&inputs(&case), &options(&case)) {
            Ok(_) => failures.push(format!("{}: converted, but an input error was expected", case.display())),
            Err(e) => compare(&case, "expected-error.txt", &format!("{e}\n"), &mut failures),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn output_is_stable_across_runs() {
    for case in cases("pass") {
        let a = convert_texts(&inputs(&case), &options(&case)).unwrap();
        let b = convert_texts(&inputs(&case), &options(&case)).unwrap();
        assert_eq!(output::stream(&a), output::stream(&b));
        assert_eq!(a.report, b.report);
    }
}

#[test]
fn converted_manifests_parse_back_as_ferrolb_objects() {
    for case in cases("pass") {
        let conv = convert_texts(&inputs(&case), &options(&case)).unwrap();
        let text = output::manifests(&conv);
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
        assert_eq!(
            docs.len(),
            conv.pools.len()
                + conv.policies.len()
                + conv.bfd_profiles.len()
                + conv.bgp_peers.len()
                + conv.bgp_advertisements.len(),
            "{}",
            case.display()
        );
        let peer_names: Vec<String> = conv.bgp_peers.iter().filter_map(|p| p.metadata.name.clone()).collect();
        let bfd_names: Vec<String> =
            conv.bfd_profiles.iter().filter_map(|p| p.metadata.name.clone()).collect();
        for d in docs {
            match d["kind"].as_str() {
                Some("LoadBalancerIPPool") => {
                    let p: ferrolb_api::LoadBalancerIPPool = serde_json::from_value(d).unwrap();
                    for b in &p.spec.blocks {
                        ferrolb_api::IpRange::from_block(b).unwrap();
                    }
                }
                Some("L2AnnouncementPolicy") => {
                    let p: ferrolb_api::L2AnnouncementPolicy = serde_json::from_value(d).unwrap();
                    for re in &p.spec.interfaces {
                        regex::Regex::new(re).unwrap();
                    }
                }
                // Every converted BGP object passes FerroLB's own validation, and its references
                // name converted objects.
                Some("BGPPeer") => {
                    let p: ferrolb_api::BGPPeer = serde_json::from_value(d).unwrap();
                    p.spec.validate().unwrap_or_else(|e| panic!("{}: {e:?}", case.display()));
                    if let Some(b) = &p.spec.bfd_profile {
                        assert!(bfd_names.contains(b), "{}: {b}", case.display());
                    }
                }
                Some("BGPAdvertisement") => {
                    let a: ferrolb_api::BGPAdvertisement = serde_json::from_value(d).unwrap();
                    a.spec.validate().unwrap_or_else(|e| panic!("{}: {e:?}", case.display()));
                    for p in &a.spec.peers {
                        assert!(peer_names.contains(p), "{}: {p}", case.display());
                    }
                }
                Some("BFDProfile") => {
                    let b: ferrolb_api::BFDProfile = serde_json::from_value(d).unwrap();
                    b.spec.validate().unwrap_or_else(|e| panic!("{}: {e:?}", case.display()));
                }
                other => panic!("{}: unexpected kind {other:?}", case.display()),
            }
        }
    }
}

/// An inline MD5 password is neither copied into the manifests nor quoted in the report.
#[test]
fn bgp_passwords_never_reach_the_output() {
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/convert/pass/metallb-bgp-kinds");
    let input = inputs(&case);
    assert!(
        input.iter().any(|t| t.text.contains("not-printed-anywhere")),
        "the fixture has an inline password"
    );
    let conv = convert_texts(&input, &options(&case)).unwrap();
    for text in [
        output::stream(&conv),
        output::report(&conv, ReportFormat::Text),
        output::report(&conv, ReportFormat::Json),
    ] {
        assert!(!text.contains("not-printed-anywhere"));
    }
    let peer = conv.bgp_peers.iter().find(|p| p.metadata.name.as_deref() == Some("tor-b")).unwrap();
    assert_eq!(peer.spec.password_secret.as_ref().unwrap().name, "tor-b-bgp-password");
}

/// The Deckhouse peer of the example keeps its 3 s hold time (keepalive a third of it).
#[test]
fn deckhouse_peer_keeps_its_timers() {
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/convert/pass/deckhouse-bgp");
    let conv = convert_texts(&inputs(&case), &options(&case)).unwrap();
    let peer = conv.bgp_peers.iter().find(|p| p.spec.peer_address == "172.18.18.10").unwrap();
    assert_eq!((peer.spec.my_asn, peer.spec.peer_asn), (64600, 64601));
    let valid = peer.spec.validate().unwrap();
    assert_eq!(valid.hold_time, std::time::Duration::from_secs(3));
    assert_eq!(valid.keepalive_time, std::time::Duration::from_secs(1));
}
