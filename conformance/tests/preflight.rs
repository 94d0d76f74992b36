//! The announcer's preflight end to end, in the network-namespace lab (kube-sim and one announcer,
//! `--preflight-interval 1s`): findings become Warning Events on the Node (once, not every pass)
//! and the gauge `ferrolb_announcer_preflight_failed{check}` as the cluster changes through the
//! API; a fix clears the gauge.
//!
//! Needs root; fails loudly (never skips) without it, without network namespaces or without the
//! binaries.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use ferrolb_api::L2AnnouncementPolicy;
use ferrolb_api::names::events as reasons;
use ferrolb_testkit::fixtures::PolicyFixture as _;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{Harness, secs};

/// Warning Events about Node `node` with `reason`.
fn node_events(h: &Harness, node: &str, reason: &'static str) -> Vec<Event> {
    let node = node.to_owned();
    h.api("listing Events", move |c| async move {
        let api: Api<Event> = Api::namespaced(c, "default");
        Ok(api
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .filter(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.type_.as_deref() == Some("Warning")
                    && e.regarding.as_ref().is_some_and(|r| {
                        r.kind.as_deref() == Some("Node") && r.name.as_deref() == Some(node.as_str())
                    })
            })
            .collect())
    })
}

fn wait_node_event(h: &Harness, node: &str, reason: &'static str, needle: &str, timeout: Duration) -> Event {
    let start = Instant::now();
    loop {
        let events = node_events(h, node, reason);
        if let Some(e) = events.iter().find(|e| e.note.as_deref().unwrap_or_default().contains(needle)) {
            return e.clone();
        }
        assert!(
            start.elapsed() < timeout,
            "no Warning {reason} Event on Node {node} mentioning {needle:?} within {timeout:?}; those with the \
             reason: {:?}",
            events.iter().map(|e| &e.note).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `/metrics` of node `i`'s announcer (it listens on 127.0.0.1:9090 inside the node's namespace).
fn metrics(h: &Harness, i: u8) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &h.lab.node_ns(i), "curl", "-sS", "--max-time", "5"])
        .arg("http://127.0.0.1:9090/metrics")
        .output()
        .expect("running curl in the node's namespace");
    assert!(out.status.success(), "scraping node{i}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("metrics are UTF-8")
}

fn gauge(h: &Harness, i: u8, check: &str) -> Option<f64> {
    let prefix = format!("ferrolb_announcer_preflight_failed{{check=\"{check}\"}} ");
    metrics(h, i).lines().find_map(|l| l.strip_prefix(&prefix).map(|v| v.trim().parse().expect("a number")))
}

fn wait_gauge(h: &Harness, i: u8, check: &str, want: f64, timeout: Duration) {
    let start = Instant::now();
    loop {
        let got = gauge(h, i, check);
        if got == Some(want) {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "preflight_failed{{check={check:?}}} is {got:?}, not {want} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn kube_proxy_configmap(strict: bool) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
    "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
    "data": {"config.conf": format!(
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\nipvs:\n  strictARP: {strict}\n"
    )}})
}

#[test]
fn preflight_findings_are_node_events_and_gauges() {
    let h = Harness::up("preflight", 1, &["--preflight-interval", "1s"]);

    // The lab runs no kube-proxy: a warning, posted once.
    let missing =
        wait_node_event(&h, "node1", reasons::PREFLIGHT_KUBE_PROXY_MISSING, "no kube-proxy found", secs(10));
    h.log(&format!("kube-proxy missing: {:?}", missing.note));
    wait_gauge(&h, 1, "kube-proxy-missing", 1.0, secs(5));
    let text = metrics(&h, 1);
    assert!(text.contains("# HELP ferrolb_announcer_preflight_failed "), "{text}");
    assert_eq!(gauge(&h, 1, "ipvs-strict-arp"), Some(0.0));

    // kube-proxy in IPVS mode without strictARP, in its ConfigMap.
    h.api("creating the kube-proxy ConfigMap", |c| async move {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "kube-system"}}))?;
        match Api::<Namespace>::all(c.clone()).create(&PostParams::default(), &ns).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        let cm: ConfigMap = serde_json::from_value(kube_proxy_configmap(false))?;
        Api::<ConfigMap>::namespaced(c, "kube-system").create(&PostParams::default(), &cm).await?;
        Ok(())
    });
    let ipvs = wait_node_event(
        &h,
        "node1",
        reasons::PREFLIGHT_IPVS_STRICT_ARP,
        "kube-proxy runs in IPVS mode without strictARP",
        secs(10),
    );
    let note = ipvs.note.clone().unwrap_or_default();
    assert!(note.contains("ConfigMap kube-system/kube-proxy says mode ipvs"), "{note}");
    assert!(note.contains("strictARP: true"), "the Event says what to do: {note}");
    let regarding = ipvs.regarding.clone().expect("regarding");
    assert_eq!(regarding.api_version.as_deref(), Some("v1"));
    assert!(regarding.uid.is_some(), "the Event names the Node's uid: {regarding:?}");
    assert_eq!(ipvs.reporting_controller.as_deref(), Some("ferrolb-announcer"));
    wait_gauge(&h, 1, "ipvs-strict-arp", 1.0, secs(5));
    wait_gauge(&h, 1, "kube-proxy-missing", 0.0, secs(5));

    // A policy whose only interface regex matches nothing on the node.
    h.create_policy(L2AnnouncementPolicy::test("typo").with_interfaces(&["eht0"]));
    wait_node_event(&h, "node1", reasons::PREFLIGHT_NO_INTERFACE, "L2AnnouncementPolicy typo", secs(10));
    wait_gauge(&h, 1, "interfaces", 1.0, secs(5));

    // Several passes later: still one Event of each (not one per pass).
    std::thread::sleep(secs(4));
    for reason in [
        reasons::PREFLIGHT_KUBE_PROXY_MISSING,
        reasons::PREFLIGHT_IPVS_STRICT_ARP,
        reasons::PREFLIGHT_NO_INTERFACE,
    ] {
        let n = node_events(&h, "node1", reason).len();
        assert_eq!(n, 1, "{reason}: {n} Events after several passes");
    }

    // Fixed: strictARP set. The gauge goes back to 0.
    h.api("setting strictARP", |c| async move {
        let patch = kube_proxy_configmap(true);
        Api::<ConfigMap>::namespaced(c, "kube-system")
            .patch("kube-proxy", &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    });
    wait_gauge(&h, 1, "ipvs-strict-arp", 0.0, secs(10));
    assert_eq!(gauge(&h, 1, "interfaces"), Some(1.0), "the other finding stays");
    h.assert_announcers_running();
}
