//! Fuzzing with proptest: arbitrary bytes and strings, and mutated valid inputs, into every
//! parser entry point. The property is "no panic": an input is either converted or rejected
//! with an error. Case counts come from `PROPTEST_CASES` (default below).

use ferrolb_ctl::{Options, SourceText, convert_texts, parse_documents};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(5000)
}

fn run(name: &str, text: String) {
    let t = SourceText { name: name.to_string(), text };
    let _ = parse_documents(&t);
    for rewrite in [false, true] {
        let _ = convert_texts(
            std::slice::from_ref(&t),
            &Options { rewrite_annotations: rewrite, ..Options::default() },
        );
    }
}

/// Valid documents of every kind, to mutate: random text alone rarely gets past the YAML parser.
const SEEDS: &[&str] = &[
    "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a, namespace: m}\nspec:\n  addresses: [192.0.2.0/28, 192.0.2.20-192.0.2.30]\n  serviceAllocation: {priority: 2, namespaces: [x], namespaceSelectors: [{matchLabels: {a: b}}], serviceSelectors: [{matchLabels: {c: d}}]}\n",
    "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: a, namespace: m}\nspec: {ipAddressPools: [a], interfaces: [eth0], nodeSelectors: [{matchLabels: {n: x}}], ipAddressPoolSelectors: [{matchLabels: {p: q}}]}\n",
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config}\ndata:\n  config: |\n    address-pools:\n    - {name: p, protocol: layer2, addresses: [192.0.2.0/28]}\n    peers: [{peer-address: 192.0.2.1, bfd-profile: x}]\n",
    "configInline:\n  address-pools:\n  - {name: p, protocol: arp, addresses: [192.0.2.0/28]}\nspeaker: {nodeSelector: {a: b}}\n",
    "apiVersion: deckhouse.io/v1alpha1\nkind: ModuleConfig\nmetadata: {name: metallb}\nspec: {version: 1, settings: {speaker: {nodeSelector: {a: b}}, addressPools: [{name: p, protocol: layer2, addresses: [192.0.2.0/28]}]}}\n",
    "apiVersion: network.deckhouse.io/v1alpha1\nkind: MetalLoadBalancerClass\nmetadata: {name: c}\nspec: {isDefault: true, addressPool: [192.0.2.0/28], l2: {interfaces: [eth1]}, nodeSelector: {a: b}}\n",
    "apiVersion: cilium.io/v2alpha1\nkind: CiliumLoadBalancerIPPool\nmetadata: {name: c}\nspec: {blocks: [{cidr: 192.0.2.0/28}, {start: 192.0.2.20, stop: 192.0.2.30}], allowFirstLastIPs: \"No\"}\n",
    "apiVersion: cilium.io/v2alpha1\nkind: CiliumL2AnnouncementPolicy\nmetadata: {name: c}\nspec: {interfaces: ['^eth[0-9]+'], loadBalancerIPs: true}\n",
    "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: n, annotations: {metallb.universe.tf/address-pool: a, lbipam.cilium.io/ips: 192.0.2.3}}\nspec: {type: LoadBalancer}\nstatus: {loadBalancer: {ingress: [{ip: 192.0.2.3}]}}\n",
];

fn mutate(seed: &str, at: usize, cut: usize, insert: &str) -> String {
    let chars: Vec<char> = seed.chars().collect();
    let at = at % (chars.len() + 1);
    let end = (at + cut).min(chars.len());
    chars[..at].iter().chain(insert.chars().collect::<Vec<_>>().iter()).chain(chars[end..].iter()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        run("fuzz.yaml", text.clone());
        run("fuzz.json", text);
    }

    #[test]
    fn arbitrary_strings_never_panic(text in "(?s).{0,400}") {
        run("fuzz.yaml", text);
    }

    #[test]
    fn mutated_valid_inputs_never_panic(
        seed in 0..SEEDS.len(),
        at in any::<usize>(),
        cut in 0usize..12,
        insert in "[-:{}\\[\\],|>'\"#&*!%@ a-z0-9./\n]{0,12}",
    ) {
        run("fuzz.yaml", mutate(SEEDS[seed], at, cut, &insert));
    }

    #[test]
    fn yaml_structures_never_panic(v in arb_json()) {
        run("fuzz.json", v.to_string());
        if let Ok(y) = serde_saphyr::to_string(&v) {
            run("fuzz.yaml", y);
        }
    }
}

/// Arbitrary JSON trees using the keys the converters look at, so type confusion in every field
/// is exercised.
fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let keys = prop::sample::select(vec![
        "apiVersion",
        "kind",
        "metadata",
        "name",
        "namespace",
        "labels",
        "spec",
        "addresses",
        "autoAssign",
        "avoidBuggyIPs",
        "serviceAllocation",
        "priority",
        "namespaces",
        "namespaceSelectors",
        "serviceSelectors",
        "ipAddressPools",
        "ipAddressPoolSelectors",
        "nodeSelectors",
        "interfaces",
        "matchLabels",
        "matchExpressions",
        "key",
        "operator",
        "values",
        "blocks",
        "cidr",
        "start",
        "stop",
        "cidrs",
        "serviceSelector",
        "nodeSelector",
        "data",
        "config",
        "configInline",
        "address-pools",
        "protocol",
        "settings",
        "version",
        "addressPool",
        "isDefault",
        "l2",
        "items",
        "status",
        "annotations",
        "myASN",
        "peerASN",
        "peerAddress",
        "holdTime",
        "keepaliveTime",
        "bfdProfile",
        "communities",
        "peers",
        "peer-address",
        "peer-asn",
        "my-asn",
        "hold-time",
        "bgp-advertisements",
        "bgpInstances",
        "localASN",
        "peerConfigRef",
        "advertisements",
        "advertisementType",
    ]);
    let values = prop::sample::select(vec![
        "metallb.io/v1beta1",
        "metallb.io/v1beta2",
        "IPAddressPool",
        "L2Advertisement",
        "BGPPeer",
        "BGPAdvertisement",
        "BFDProfile",
        "Community",
        "CiliumBGPClusterConfig",
        "CiliumBGPPeerConfig",
        "CiliumBGPAdvertisement",
        "v1",
        "ConfigMap",
        "Service",
        "List",
        "cilium.io/v2",
        "CiliumLoadBalancerIPPool",
        "CiliumL2AnnouncementPolicy",
        "deckhouse.io/v1alpha1",
        "ModuleConfig",
        "metallb",
        "network.deckhouse.io/v1alpha1",
        "MetalLoadBalancerClass",
        "192.0.2.0/28",
        "192.0.2.1-192.0.2.9",
        "2001:db8::/120",
        "layer2",
        "bgp",
        "In",
        "Exists",
        "eth0",
        "LoadBalancer",
        "192.0.2.1",
        "90s",
        "no-advertise",
        "64500:1",
        "x",
    ]);
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        values.prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..6).prop_map(|m| serde_json::Value::Object(
                m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}
