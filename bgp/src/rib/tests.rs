use super::*;
use crate::codec::Message;
use proptest::prelude::*;

fn ebgp_both() -> SessionAttrs {
    SessionAttrs {
        local_as: 65001,
        ebgp: true,
        families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
        next_hop_v4: Some(Ipv4Addr::new(198, 51, 100, 11)),
        next_hop_v6: Some("2001:db8:100::11".parse().unwrap()),
        link_local_v6: None,
    }
}

fn attrs(communities: &[u32]) -> Arc<RouteAttrs> {
    Arc::new(RouteAttrs::new(communities.to_vec(), vec![], None).unwrap())
}

fn v4(i: u32) -> IpNet {
    IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0xcb00_7100u32.wrapping_add(i << 8)), 32).unwrap())
}

/// Encodes and decodes every UPDATE (each must fit 4096 bytes) and applies it to `table`.
fn deliver(table: &mut BTreeMap<IpNet, RouteAttrs>, updates: &[Update]) {
    for u in updates {
        let wire = Message::Update(u.clone()).encode().expect("every UPDATE fits 4096 bytes");
        let Ok(Message::Update(back)) = Message::decode(&wire) else { panic!("UPDATE does not decode") };
        assert_eq!(&back, u);
        apply_update(table, &back);
    }
}

/// What the peer should hold for what is wanted: the routes it is sent, with the attributes as
/// the session sends them (LOCAL_PREF on iBGP only, defaulted).
fn expected(rib: &AdjRibOut, s: &SessionAttrs) -> BTreeMap<IpNet, RouteAttrs> {
    rib.desired()
        .iter()
        .filter(|(p, _)| s.sends(p))
        .map(|(p, a)| {
            let mut a = (**a).clone();
            a.local_pref = if s.ebgp { None } else { Some(a.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)) };
            (*p, a)
        })
        .collect()
}

/// The routes wanted that this session sends, with their attributes as given.
fn wanted(rib: &AdjRibOut, s: &SessionAttrs) -> BTreeMap<IpNet, Arc<RouteAttrs>> {
    rib.desired().iter().filter(|(p, _)| s.sends(p)).map(|(p, a)| (*p, Arc::clone(a))).collect()
}

#[test]
fn first_sync_sends_routes_then_end_of_rib_per_family() {
    let mut rib = AdjRibOut::new();
    rib.announce(v4(1), attrs(&[]));
    rib.announce("2001:db8:100::1000/128".parse().unwrap(), attrs(&[]));
    let s = ebgp_both();
    let ups = rib.take_updates(&s);
    assert_eq!(ups.len(), 4);
    assert_eq!(ups[2].end_of_rib_family(), Some(Family::IPV4_UNICAST));
    assert_eq!(ups[3].end_of_rib_family(), Some(Family::IPV6_UNICAST));
    assert_eq!(
        ups[0].attributes,
        vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(vec![AsSegment { kind: SegmentKind::Sequence, asns: vec![65001] }]),
            PathAttribute::NextHop(Ipv4Addr::new(198, 51, 100, 11)),
        ]
    );
    assert!(!rib.has_pending());
    assert!(rib.take_updates(&s).is_empty());
}

#[test]
fn ibgp_sends_local_pref_and_an_empty_as_path() {
    let mut rib = AdjRibOut::new();
    rib.announce(v4(1), Arc::new(RouteAttrs::new(vec![], vec![], Some(200)).unwrap()));
    let s = SessionAttrs { ebgp: false, ..ebgp_both() };
    let ups = rib.take_updates(&s);
    assert!(ups[0].attributes.contains(&PathAttribute::LocalPref(200)));
    assert!(ups[0].attributes.contains(&PathAttribute::AsPath(vec![])));
}

#[test]
fn ten_thousand_prefixes_take_thirteen_updates_and_one_change_one_update() {
    let mut rib = AdjRibOut::new();
    let a = attrs(&[0xfde9_0001]);
    for i in 0..10_000 {
        rib.announce(v4(i), Arc::clone(&a));
    }
    let s = ebgp_both();
    let ups = rib.take_updates(&s);
    // 10,000 × 5 bytes of NLRI in messages of 4096 bytes less 23 + 27 of header and attributes.
    assert_eq!(ups.len(), 13 + 2, "{} UPDATEs", ups.len());
    let mut table = BTreeMap::new();
    deliver(&mut table, &ups);
    assert_eq!(table, expected(&rib, &s));

    rib.withdraw(v4(17));
    rib.announce(v4(20_000), Arc::clone(&a));
    let ups = rib.take_updates(&s);
    assert_eq!(ups.len(), 2);
    assert_eq!(ups[0].withdrawn.len(), 1);
    assert_eq!(ups[1].nlri.len(), 1);
}

#[test]
fn shutdown_withdraws_everything() {
    let mut rib = AdjRibOut::new();
    let s = ebgp_both();
    for i in 0..1000 {
        rib.announce(v4(i), attrs(&[]));
        rib.announce(
            IpNet::V6(Ipv6Net::new(Ipv6Addr::from((0x2001_0db8_u128 << 96) | u128::from(i)), 128).unwrap()),
            attrs(&[]),
        );
    }
    let mut table = BTreeMap::new();
    deliver(&mut table, &rib.take_updates(&s));
    assert_eq!(table.len(), 2000);
    rib.withdraw_all();
    let ups = rib.take_updates(&s);
    assert!(
        ups.iter().all(
            |u| u.nlri.is_empty() && !u.attributes.iter().any(|a| matches!(a, PathAttribute::MpReach(_)))
        )
    );
    deliver(&mut table, &ups);
    assert!(table.is_empty());
}

#[test]
fn unnegotiated_family_is_kept_but_not_sent() {
    let mut rib = AdjRibOut::new();
    rib.announce("2001:db8:100::1000/128".parse().unwrap(), attrs(&[]));
    let v4_only = SessionAttrs { families: vec![Family::IPV4_UNICAST], ..ebgp_both() };
    let ups = rib.take_updates(&v4_only);
    assert_eq!(ups, vec![Update::end_of_rib(Family::IPV4_UNICAST)]);
    rib.reset();
    let ups = rib.take_updates(&ebgp_both());
    assert_eq!(ups.len(), 3);
}

#[test]
fn host_bits_are_dropped() {
    let mut rib = AdjRibOut::new();
    rib.announce("198.51.100.129/25".parse().unwrap(), attrs(&[]));
    assert!(rib.desired().contains_key(&"198.51.100.128/25".parse().unwrap()));
}

#[test]
fn too_many_communities_are_refused() {
    assert_eq!(RouteAttrs::new((0..300).collect(), vec![], None), Err(RibError::TooManyCommunities(300)));
}

// ---- property tests ----

fn prefix() -> impl Strategy<Value = IpNet> {
    // A small pool, so successive tables overlap and change attributes, with enough prefixes
    // now and then to need several UPDATEs per attribute set.
    prop_oneof![
        (0u32..3000).prop_map(v4),
        (0u32..2000, 120u8..=128).prop_map(|(i, l)| {
            IpNet::V6(
                Ipv6Net::new(Ipv6Addr::from((0x2001_0db8_0100_u128 << 80) | (u128::from(i) << 8)), l)
                    .unwrap(),
            )
        }),
        (0u32..64, 8u8..=32).prop_map(|(i, l)| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(i << 26), l).unwrap())),
    ]
}

fn route_attrs() -> impl Strategy<Value = Arc<RouteAttrs>> {
    let large = (0u32..3).prop_map(|i| LargeCommunity { global: 65001, local1: i, local2: 7 });
    (
        prop::collection::vec(0u32..4, 0..3),
        prop::collection::vec(large, 0..2),
        prop::option::of(prop_oneof![Just(100u32), Just(200)]),
    )
        .prop_map(|(c, l, lp)| Arc::new(RouteAttrs::new(c, l, lp).unwrap()))
}

fn table() -> impl Strategy<Value = Vec<(IpNet, Arc<RouteAttrs>)>> {
    prop_oneof![
        prop::collection::vec((prefix(), route_attrs()), 0..40),
        prop::collection::vec((prefix(), route_attrs()), 0..2500),
    ]
}

#[derive(Debug, Clone)]
enum Step {
    Replace(Vec<(IpNet, Arc<RouteAttrs>)>),
    Announce(IpNet, Arc<RouteAttrs>),
    Withdraw(IpNet),
    SessionReset,
    WithdrawAll,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => table().prop_map(Step::Replace),
        3 => (prefix(), route_attrs()).prop_map(|(p, a)| Step::Announce(p, a)),
        2 => prefix().prop_map(Step::Withdraw),
        1 => Just(Step::SessionReset),
        1 => Just(Step::WithdrawAll),
    ]
}

fn session() -> impl Strategy<Value = SessionAttrs> {
    (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(ebgp, v4, v6, ll)| {
        let mut families = vec![];
        if v4 {
            families.push(Family::IPV4_UNICAST);
        }
        if v6 {
            families.push(Family::IPV6_UNICAST);
        }
        SessionAttrs { ebgp, families, link_local_v6: ll.then(|| "fe80::11".parse().unwrap()), ..ebgp_both() }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Applying the emitted UPDATEs to what the peer had always gives the wanted table; each batch
    /// withdraws before it announces, names only prefixes that changed, and a session's first
    /// batch ends with End-of-RIB for each family sent.
    #[test]
    fn peer_table_follows_the_wanted_table(s in session(), steps in prop::collection::vec(step(), 1..12)) {
        let mut rib = AdjRibOut::new();
        let mut peer = BTreeMap::new();
        let mut first = true;
        for st in steps {
            let before = wanted(&rib, &s);
            match st {
                Step::Replace(t) => rib.replace_all(t),
                Step::Announce(p, a) => rib.announce(p, a),
                Step::Withdraw(p) => rib.withdraw(p),
                Step::WithdrawAll => rib.withdraw_all(),
                Step::SessionReset => {
                    rib.reset();
                    peer.clear();
                    first = true;
                }
            }
            let mut ups = rib.take_updates(&s);
            if first {
                let eors: Vec<Family> = ups.iter().rev().map_while(|u| u.end_of_rib_family()).collect();
                let want = usize::from(s.sends_v4()) + usize::from(s.sends_v6());
                // An IPv4 End-of-RIB is an empty UPDATE, which nothing else is.
                prop_assert_eq!(eors.len(), want);
                ups.truncate(ups.len() - want);
            }
            let after = wanted(&rib, &s);
            // Only changed prefixes appear, each once.
            let mut named = Vec::new();
            let mut announcing = false;
            for u in &ups {
                let mut withdrawals: Vec<IpNet> = u.withdrawn.iter().map(|p| IpNet::V4(*p)).collect();
                let mut announcements: Vec<IpNet> = u.nlri.iter().map(|p| IpNet::V4(*p)).collect();
                for a in &u.attributes {
                    match a {
                        PathAttribute::MpUnreach(w) => withdrawals.extend(w.iter().map(|p| IpNet::V6(*p))),
                        PathAttribute::MpReach(m) => announcements.extend(m.nlri.iter().map(|p| IpNet::V6(*p))),
                        _ => {}
                    }
                }
                prop_assert!(withdrawals.is_empty() || !announcing, "a withdrawal after an announcement");
                announcing |= !announcements.is_empty();
                prop_assert!(!withdrawals.is_empty() || !announcements.is_empty(), "an empty UPDATE");
                named.extend(withdrawals);
                named.extend(announcements);
            }
            let changed: BTreeSet<IpNet> = if first {
                after.keys().copied().collect()
            } else {
                before.keys().chain(after.keys()).filter(|p| before.get(p) != after.get(p)).copied().collect()
            };
            let named_set: BTreeSet<IpNet> = named.iter().copied().collect();
            prop_assert_eq!(named.len(), named_set.len(), "a prefix named twice");
            prop_assert_eq!(named_set, changed);
            deliver(&mut peer, &ups);
            prop_assert_eq!(&peer, &expected(&rib, &s));
            first = false;
        }
    }
}
