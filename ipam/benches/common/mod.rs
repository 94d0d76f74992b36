//! What the ipam benches share.

use std::collections::BTreeMap;

use kube_sim::KubeSim;
use serde_json::Value;

/// Every Service's ingress IPs by name, read in-process from kube-sim (no API request counted, no
/// load on the controller's watch).
pub fn addresses(sim: &KubeSim) -> BTreeMap<String, Vec<String>> {
    sim.sim().with(|s| {
        let rt = s.registry.get("", "v1", "services").expect("built in");
        let page = s
            .list(&rt, None, &kube_sim::labels::LabelSelector::default(), &Default::default(), None, None)
            .expect("list");
        page.items
            .iter()
            .map(|o| {
                let ips = o
                    .pointer("/status/loadBalancer/ingress")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|i| i["ip"].as_str().map(String::from)).collect())
                    .unwrap_or_default();
                (o["metadata"]["name"].as_str().unwrap_or_default().to_string(), ips)
            })
            .collect()
    })
}
