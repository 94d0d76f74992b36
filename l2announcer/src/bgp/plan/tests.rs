use std::collections::BTreeSet;
use std::time::Duration;

use ferrolb_api::IpRange;
use ferrolb_api::bgp::SecretKeyRef;
use proptest::prelude::*;

use super::*;
use crate::policy::tests::{labels, match_labels, svc};

fn peer(name: &str, address: &str) -> Named<BGPPeerSpec> {
    Named {
        name: name.into(),
        spec: BGPPeerSpec {
            my_asn: 64512,
            peer_asn: 64500,
            peer_address: address.into(),
            ..Default::default()
        },
    }
}

fn advertisement(name: &str, spec: BGPAdvertisementSpec) -> Named<BGPAdvertisementSpec> {
    Named { name: name.into(), spec }
}

fn all() -> BGPAdvertisementSpec {
    BGPAdvertisementSpec { load_balancer_ips: true, ..Default::default() }
}

fn node(name: &str, l: &[(&str, &str)]) -> NodeInput {
    NodeInput { name: name.into(), labels: labels(l), ..Default::default() }
}

struct World {
    node: NodeInput,
    peers: Vec<Named<BGPPeerSpec>>,
    advertisements: Vec<Named<BGPAdvertisementSpec>>,
    bfd: Vec<Named<BFDProfileSpec>>,
    services: Vec<Arc<ServiceInput>>,
    pools: Vec<PoolInput>,
    endpoints: BTreeMap<ServiceKey, BTreeMap<String, LocalEndpoints>>,
    classes: ServedClasses,
    some_node_ready: bool,
}

impl World {
    fn new() -> Self {
        Self {
            node: node("n1", &[("rack", "a")]),
            peers: vec![peer("tor", "198.51.100.1")],
            advertisements: vec![advertisement("all", all())],
            bfd: vec![],
            services: vec![Arc::new(svc("prod", "web", &["198.51.100.130"]))],
            pools: vec![],
            endpoints: BTreeMap::new(),
            classes: ServedClasses::default(),
            some_node_ready: true,
        }
    }

    fn plan(&self) -> Plan {
        plan(&Inputs {
            node: &self.node,
            node_ipv4: Some(Ipv4Addr::new(198, 51, 100, 11)),
            some_node_ready: self.some_node_ready,
            peers: &self.peers,
            advertisements: &self.advertisements,
            bfd_profiles: &self.bfd,
            services: &self.services,
            pools: &self.pools,
            endpoints: &self.endpoints,
            classes: &self.classes,
        })
    }

    fn routes(&self, peer: &str) -> Vec<String> {
        self.plan()
            .sessions
            .get(peer)
            .map_or_else(Vec::new, |s| s.routes.keys().map(|p| p.to_string()).collect())
    }
}

#[test]
fn a_selected_service_is_advertised_as_a_host_route_with_the_peers_settings() {
    let mut w = World::new();
    w.peers[0].spec.hold_time = Some("3s".into());
    w.peers[0].spec.keepalive_time = Some("1s".into());
    let plan = w.plan();
    let s = &plan.sessions["tor"];
    assert_eq!(s.routes.keys().map(ToString::to_string).collect::<Vec<_>>(), ["198.51.100.130/32"]);
    let c = s.config.as_ref().unwrap();
    assert_eq!(c.address, "198.51.100.1:179".parse().unwrap());
    assert_eq!(c.fsm.router_id, Ipv4Addr::new(198, 51, 100, 11), "the node's address by default");
    assert_eq!((c.fsm.hold_time, c.fsm.keepalive), (Duration::from_secs(3), Duration::from_secs(1)));
    assert_eq!(c.ttl, Some(1), "single-hop eBGP");
    assert_eq!(c.fsm.families, [Family::IPV4_UNICAST], "the peer address's family by default");
    assert!(s.error.is_none() && plan.withdrawn.is_none());
}

#[test]
fn peers_and_advertisements_select_nodes() {
    let mut w = World::new();
    w.peers.push(peer("other-rack", "198.51.100.2"));
    w.peers[1].spec.node_selectors = vec![match_labels(&[("rack", "b")]).unwrap()];
    assert_eq!(w.plan().sessions.keys().collect::<Vec<_>>(), ["tor"]);
    w.advertisements[0].spec.node_selectors = vec![match_labels(&[("rack", "b")]).unwrap()];
    assert!(w.routes("tor").is_empty(), "the session stays, nothing is advertised");
    w.node.labels.insert("rack".into(), "b".into());
    assert_eq!(w.routes("tor"), ["198.51.100.130/32"]);
    assert_eq!(w.routes("other-rack"), ["198.51.100.130/32"]);
}

#[test]
fn advertisements_name_their_peers_and_merge_attributes_per_prefix() {
    let mut w = World::new();
    w.peers.push(peer("edge", "198.51.100.2"));
    w.peers[1].spec.my_asn = 64500; // iBGP: local preference applies
    w.advertisements = vec![
        advertisement(
            "a",
            BGPAdvertisementSpec { communities: vec!["64500:1".into()], local_pref: Some(50), ..all() },
        ),
        advertisement(
            "b",
            BGPAdvertisementSpec {
                peers: vec!["edge".into()],
                communities: vec!["no-export".into(), "64500:1".into()],
                large_communities: vec!["64500:1:2".into()],
                local_pref: Some(200),
                ..all()
            },
        ),
    ];
    let plan = w.plan();
    let tor = &plan.sessions["tor"].routes;
    let edge = &plan.sessions["edge"].routes;
    let prefix: IpNet = "198.51.100.130/32".parse().unwrap();
    assert_eq!(tor[&prefix], RouteAttrs::new(vec![(64500 << 16) | 1], vec![], Some(50)).unwrap());
    assert_eq!(
        edge[&prefix],
        RouteAttrs::new(
            vec![(64500 << 16) | 1, 0xFFFF_FF01],
            vec![LargeCommunity { global: 64500, local1: 1, local2: 2 }],
            Some(200)
        )
        .unwrap(),
        "union of communities, highest local preference"
    );
}

#[test]
fn local_traffic_policy_advertises_only_from_nodes_with_a_ready_endpoint() {
    let mut w = World::new();
    let mut s = svc("prod", "web", &["198.51.100.130"]);
    s.external_traffic_policy = TrafficPolicy::Local;
    w.services = vec![Arc::new(s)];
    assert!(w.routes("tor").is_empty(), "no endpoint anywhere");
    let key = ServiceKey::new("prod", "web");
    w.endpoints
        .entry(key.clone())
        .or_default()
        .insert("n2".into(), LocalEndpoints { ready: true, serving: true });
    assert!(w.routes("tor").is_empty(), "an endpoint on another node only");
    w.endpoints.get_mut(&key).unwrap().insert("n1".into(), LocalEndpoints { ready: false, serving: true });
    assert!(w.routes("tor").is_empty(), "terminating: withdrawn so the router moves traffic away");
    w.endpoints.get_mut(&key).unwrap().insert("n1".into(), LocalEndpoints { ready: true, serving: true });
    assert_eq!(w.routes("tor"), ["198.51.100.130/32"]);
}

#[test]
fn an_ineligible_node_keeps_its_sessions_and_advertises_nothing() {
    let mut w = World::new();
    w.node.not_ready = true;
    assert!(w.routes("tor").is_empty());
    assert_eq!(w.plan().withdrawn, Some("the node is NotReady"));
    w.some_node_ready = false;
    assert_eq!(w.routes("tor"), ["198.51.100.130/32"], "no node Ready: a control-plane outage");
    w.node.out_of_service = true;
    assert!(w.routes("tor").is_empty());
    w.node = node("n1", &[(ferrolb_api::names::labels::EXCLUDE_FROM_EXTERNAL_LB, "")]);
    let plan = w.plan();
    assert!(plan.sessions["tor"].routes.is_empty() && plan.sessions["tor"].config.is_some());
}

#[test]
fn families_pools_classes_and_aggregation() {
    let mut w = World::new();
    let mut s = svc("prod", "web", &["198.51.100.130", "2001:db8:100::1001"]);
    s.allocated_from_pool = vec!["blue".into()];
    s.external_ips = vec!["203.0.113.7".parse().unwrap()];
    w.services = vec![Arc::new(s)];
    w.pools = vec![PoolInput {
        name: "blue".into(),
        labels: labels(&[("color", "blue")]),
        ranges: vec![
            IpRange::parse("198.51.100.128/25").unwrap(),
            IpRange::parse("2001:db8:100::1000/116").unwrap(),
        ],
    }];
    assert_eq!(w.routes("tor"), ["198.51.100.130/32"], "IPv4 peer: IPv4 only; external IPs off by default");
    w.peers[0].spec.address_families = vec![AddressFamily::IPv4, AddressFamily::IPv6];
    w.advertisements[0].spec.external_ips = true;
    w.advertisements[0].spec.aggregation_length_v6 = Some(64);
    assert_eq!(w.routes("tor"), ["198.51.100.130/32", "203.0.113.7/32", "2001:db8:100::/64"]);
    w.advertisements[0].spec.pool_selector = match_labels(&[("color", "red")]);
    assert_eq!(w.routes("tor"), ["203.0.113.7/32"], "external IPs come from no pool");
    w.advertisements[0].spec.pool_selector = match_labels(&[("color", "blue")]);
    w.advertisements[0].spec.external_ips = false;
    assert_eq!(w.routes("tor"), ["198.51.100.130/32", "2001:db8:100::/64"]);
    w.classes = ServedClasses::new(false, [] as [&str; 0]);
    assert!(w.routes("tor").is_empty(), "class-less Services are not served");
}

#[test]
fn invalid_objects_are_reported_and_leave_the_others_alone() {
    let mut w = World::new();
    w.peers.push(peer("broken", "not-an-address"));
    w.peers[1].spec.hold_time = Some("2s".into());
    w.advertisements
        .push(advertisement("bad", BGPAdvertisementSpec { communities: vec!["x".into()], ..all() }));
    w.peers[0].spec.bfd_profile = Some("fast".into());
    w.bfd = vec![Named {
        name: "fast".into(),
        spec: BFDProfileSpec { detect_multiplier: Some(1), ..Default::default() },
    }];
    let plan = w.plan();
    assert_eq!(plan.sessions.keys().collect::<Vec<_>>(), ["tor"]);
    assert_eq!(plan.problems.peers["broken"].len(), 2, "{:?}", plan.problems.peers);
    assert!(plan.problems.advertisements.contains_key("bad"));
    assert!(plan.problems.bfd_profiles.contains_key("fast"));
    let tor = &plan.sessions["tor"];
    assert_eq!(tor.routes.len(), 1, "the valid advertisement still applies");
    assert!(tor.config.as_ref().unwrap().bfd.is_none());
    assert_eq!(tor.error.as_deref(), Some("BFDProfile \"fast\" invalid: the session runs without BFD"));
}

#[test]
fn bfd_password_and_router_id() {
    let mut w = World::new();
    w.peers[0].spec.bfd_profile = Some("fast".into());
    w.peers[0].spec.password_secret = Some(SecretKeyRef { name: "bgp".into(), key: None });
    w.bfd = vec![Named {
        name: "fast".into(),
        spec: BFDProfileSpec {
            receive_interval: Some(100),
            transmit_interval: Some(100),
            detect_multiplier: Some(3),
            ..Default::default()
        },
    }];
    let c = w.plan().sessions["tor"].config.clone().unwrap();
    assert_eq!(c.bfd.unwrap().required_min_rx, Duration::from_millis(100));
    assert_eq!(c.password_secret, Some(("bgp".into(), "password".into())));
    let none = plan(&Inputs {
        node: &w.node,
        node_ipv4: None,
        some_node_ready: true,
        peers: &w.peers,
        advertisements: &w.advertisements,
        bfd_profiles: &w.bfd,
        services: &w.services,
        pools: &w.pools,
        endpoints: &w.endpoints,
        classes: &w.classes,
    });
    let s = &none.sessions["tor"];
    assert!(s.config.is_none() && s.error.as_deref().unwrap().contains("router ID"));
}

proptest! {
    /// Whatever the Services, a prefix is advertised only for an address some Service has, is cut
    /// to the aggregation length, and the plan does not depend on the order of its inputs.
    #[test]
    fn routes_come_from_service_addresses_and_ignore_input_order(
        hosts in proptest::collection::vec((0u8..8, 128u8..136, any::<bool>()), 0..12),
        len in 24u8..=32,
    ) {
        let mut w = World::new();
        w.advertisements[0].spec.aggregation_length = Some(len);
        w.services = hosts.iter().map(|(s, h, local)| {
            let mut svc = svc("ns", &format!("s{s}"), &[&format!("198.51.100.{h}")]);
            if *local { svc.external_traffic_policy = TrafficPolicy::Local; }
            Arc::new(svc)
        }).collect();
        let routes: BTreeSet<IpNet> = w.plan().sessions["tor"].routes.keys().copied().collect();
        for r in &routes {
            prop_assert_eq!(r.prefix_len(), len);
            prop_assert!(w.services.iter().any(|s| s.ingress.iter().any(|a| r.contains(a))));
        }
        let expected: BTreeSet<IpNet> = w.services.iter()
            .filter(|s| s.external_traffic_policy == TrafficPolicy::Cluster)
            .flat_map(|s| s.ingress.iter().map(|a| IpNet::new(*a, len).unwrap().trunc()))
            .collect();
        prop_assert_eq!(&routes, &expected);
        w.services.reverse();
        let again: BTreeSet<IpNet> = w.plan().sessions["tor"].routes.keys().copied().collect();
        prop_assert_eq!(routes, again);
    }
}
