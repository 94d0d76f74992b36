//! The committed CRD YAML must match the Rust types, and every schema must be structural
//! (the API server rejects non-structural CRD schemas).

use std::path::PathBuf;

use ferrolb_api::crd;
use serde_json::Value;

fn crd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../helm/ferrolb/files/crds")
}

#[test]
fn committed_crds_match_the_types() {
    let mut expected_files = Vec::new();
    for c in crd::all() {
        let name = crd::file_name(&c);
        let path = crd_dir().join(&name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == crd::to_yaml(&c),
            "{} is out of date with the Rust types: run `cargo run -p ferrolb-api --bin crdgen` and commit",
            path.display()
        );
        expected_files.push(name);
    }
    let mut present: Vec<String> = std::fs::read_dir(crd_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    present.sort();
    expected_files.sort();
    assert_eq!(
        present, expected_files,
        "stale CRD files in helm/ferrolb/files/crds: run crdgen and remove them"
    );
}

/// Returns the structural-schema violations under `schema` (see the Kubernetes docs on
/// "Specifying a structural schema").
fn violations(schema: &Value, path: &str, out: &mut Vec<String>) {
    let Some(obj) = schema.as_object() else {
        out.push(format!("{path}: schema is not an object"));
        return;
    };
    let typed = obj.contains_key("type")
        || obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
        || obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if !typed {
        out.push(format!("{path}: no type"));
    }
    for key in ["oneOf", "anyOf", "allOf", "not"] {
        if let Some(branches) = obj.get(key) {
            // Branches may only restrict values; types and properties must live on the node itself.
            let list = branches.as_array().cloned().unwrap_or_else(|| vec![branches.clone()]);
            for b in list {
                if b.get("type").is_some() || b.get("default").is_some() || b.get("nullable").is_some() {
                    out.push(format!("{path}.{key}: type/default/nullable inside a value validation branch"));
                }
            }
        }
    }
    if let Some(t) = obj.get("type").and_then(Value::as_str) {
        if t == "array" && !obj.contains_key("items") {
            out.push(format!("{path}: array without items"));
        }
        if t == "object"
            && !obj.contains_key("properties")
            && !obj.contains_key("additionalProperties")
            && obj.get("x-kubernetes-preserve-unknown-fields") != Some(&Value::Bool(true))
            && path != "."
        {
            out.push(format!("{path}: object without properties (would prune everything)"));
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            violations(v, &format!("{path}.{k}"), out);
        }
    }
    if let Some(items) = obj.get("items") {
        violations(items, &format!("{path}[]"), out);
    }
    if let Some(ap) = obj.get("additionalProperties").filter(|v| v.is_object()) {
        violations(ap, &format!("{path}{{}}"), out);
    }
}

#[test]
fn schemas_are_structural() {
    for c in crd::all() {
        let json = serde_json::to_value(&c).unwrap();
        for v in json["spec"]["versions"].as_array().unwrap() {
            let schema = &v["schema"]["openAPIV3Schema"];
            let mut out = Vec::new();
            violations(schema, ".", &mut out);
            assert!(out.is_empty(), "{} {}: {out:#?}", c.metadata.name.as_deref().unwrap(), v["name"]);
            assert_eq!(schema["type"], "object");
            assert!(v["subresources"]["status"].is_object(), "status must be a subresource");
        }
    }
}

#[test]
fn names_and_columns_are_as_designed() {
    let crds = crd::all();
    let pool = serde_json::to_value(&crds[0]).unwrap();
    assert_eq!(pool["metadata"]["name"], "loadbalancerippools.ferrolb.io");
    assert_eq!(pool["spec"]["scope"], "Cluster");
    assert_eq!(
        pool["spec"]["names"]["shortNames"],
        serde_json::json!(["lbippool", "lbippools", "ippool", "ippools"])
    );
    let cols: Vec<String> = pool["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_uppercase())
        .collect();
    assert_eq!(cols, ["DISABLED", "CONFLICTING", "TOTAL", "USED", "AVAILABLE", "AGE"]);
    let props = &pool["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    for field in [
        "blocks",
        "serviceSelector",
        "serviceSelectors",
        "allowFirstLastIPs",
        "avoidBuggyIPs",
        "disabled",
        "autoAssign",
        "priority",
    ] {
        assert!(props.get(field).is_some(), "pool spec lacks {field}");
    }
    let policy = serde_json::to_value(&crds[1]).unwrap();
    assert_eq!(policy["metadata"]["name"], "l2announcementpolicies.ferrolb.io");
    assert_eq!(policy["spec"]["names"]["shortNames"], serde_json::json!(["l2policy", "l2policies"]));
    let props =
        &policy["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    for field in
        ["serviceSelector", "nodeSelector", "poolSelector", "interfaces", "loadBalancerIPs", "externalIPs"]
    {
        assert!(props.get(field).is_some(), "policy spec lacks {field}");
    }
}

#[test]
fn spec_round_trips_with_defaults() {
    let pool: ferrolb_api::LoadBalancerIPPool = serde_json::from_value(serde_json::json!({
        "apiVersion": "ferrolb.io/v1alpha1", "kind": "LoadBalancerIPPool",
        "metadata": {"name": "p"},
        "spec": {"blocks": [{"cidr": "198.51.100.128/25"}, {"start": "2001:db8:100::1000", "stop": "2001:db8:100::1fff"}]}
    }))
    .unwrap();
    assert!(pool.spec.auto_assign);
    assert!(pool.spec.allow_first_last());
    let policy: ferrolb_api::L2AnnouncementPolicy = serde_json::from_value(serde_json::json!({
        "apiVersion": "ferrolb.io/v1alpha1", "kind": "L2AnnouncementPolicy",
        "metadata": {"name": "p"}, "spec": {}
    }))
    .unwrap();
    assert!(policy.spec.load_balancer_ips);
    assert!(!policy.spec.external_ips);
}

#[test]
fn bgp_kinds_are_cluster_scoped_with_their_columns() {
    let crds: Vec<Value> = crd::all().iter().map(|c| serde_json::to_value(c).unwrap()).collect();
    let find = |name: &str| crds.iter().find(|c| c["metadata"]["name"] == name).unwrap().clone();
    let columns = |c: &Value| -> Vec<String> {
        c["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_uppercase())
            .collect()
    };
    for (name, kind, cols) in [
        (
            "bgppeers.ferrolb.io",
            "BGPPeer",
            &["MY ASN", "PEER ASN", "ADDRESS", "BFD PROFILE", "INVALID", "AGE"][..],
        ),
        ("bgpadvertisements.ferrolb.io", "BGPAdvertisement", &["PEERS", "LOCAL PREF", "INVALID", "AGE"][..]),
        (
            "bfdprofiles.ferrolb.io",
            "BFDProfile",
            &["RECEIVE MS", "TRANSMIT MS", "MULTIPLIER", "PASSIVE", "AGE"][..],
        ),
        (
            "bgpsessionstates.ferrolb.io",
            "BGPSessionState",
            &["NODE", "PEER", "ADDRESS", "STATE", "BFD", "SENT", "SINCE", "AGE"][..],
        ),
    ] {
        let c = find(name);
        assert_eq!(c["spec"]["scope"], "Cluster", "{name}");
        assert_eq!(c["spec"]["names"]["kind"], kind);
        assert_eq!(c["spec"]["names"]["categories"], serde_json::json!(["ferrolb"]), "{name}");
        assert_eq!(columns(&c), cols, "{name}");
    }
    let peer = find("bgppeers.ferrolb.io");
    let spec = &peer["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec["required"], serde_json::json!(["myASN", "peerASN", "peerAddress"]));
    for asn in ["myASN", "peerASN"] {
        assert_eq!(spec["properties"][asn]["minimum"].as_f64(), Some(1.0), "{asn}");
        assert_eq!(spec["properties"][asn]["maximum"].as_f64(), Some(4_294_967_295.0), "{asn}");
    }
    for field in [
        "peerAddress",
        "peerPort",
        "sourceAddress",
        "nodeSelectors",
        "holdTime",
        "keepaliveTime",
        "connectTime",
        "routerID",
        "ebgpMultiHopTTL",
        "passwordSecret",
        "gracefulRestart",
        "bfdProfile",
        "addressFamilies",
    ] {
        assert!(spec["properties"].get(field).is_some(), "peer spec lacks {field}");
    }
    assert!(spec["properties"]["holdTime"]["pattern"].is_string(), "durations are checked by pattern");
    let rules = spec["x-kubernetes-validations"].as_array().expect("CEL rules on the peer spec");
    assert!(rules.iter().any(|r| r["rule"] == "isIP(self.peerAddress)"));
}

#[test]
fn bgp_objects_round_trip_with_defaults() {
    let peer: ferrolb_api::BGPPeer = serde_json::from_value(serde_json::json!({
        "apiVersion": "ferrolb.io/v1alpha1", "kind": "BGPPeer", "metadata": {"name": "tor"},
        "spec": {"myASN": 64600, "peerASN": 64601, "peerAddress": "172.18.18.10", "holdTime": "3s"}
    }))
    .unwrap();
    let valid = peer.spec.validate().unwrap();
    assert_eq!(valid.hold_time, std::time::Duration::from_secs(3));
    assert_eq!(valid.keepalive_time, std::time::Duration::from_secs(1));
    let adv: ferrolb_api::BGPAdvertisement = serde_json::from_value(serde_json::json!({
        "apiVersion": "ferrolb.io/v1alpha1", "kind": "BGPAdvertisement", "metadata": {"name": "a"}, "spec": {}
    }))
    .unwrap();
    assert!(adv.spec.load_balancer_ips && !adv.spec.external_ips);
    let back = serde_json::to_value(&adv).unwrap();
    assert_eq!(back["spec"], serde_json::json!({"loadBalancerIPs": true, "externalIPs": false}));
}
