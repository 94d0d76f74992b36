//! Lowering MetalLB's BGP objects to drafts: BFD profiles and peers by name, advertisements
//! against the pools, peers and community aliases they name.

use std::collections::BTreeMap;

use ferrolb_api::bgp::BGPAdvertisementSpec;

use super::{BgpSet, MlbBgpAdv, MlbCommunity};
use crate::bgp::{
    AdvertisementDraft, BfdDraft, Community, PeerDraft, check_advertisement, classify_community,
    community_value,
};
use crate::convert::Context;
use crate::metallb::MlbPool;

/// Turns the MetalLB BGP objects into drafts. `pools` are the MetalLB pools, whose drafts start
/// at `first_draft`; returns, per pool index, the advertisements that cover it.
pub fn lower(
    set: BgpSet,
    pools: &[MlbPool],
    first_draft: usize,
    cx: &mut Context,
) -> BTreeMap<usize, Vec<String>> {
    let mut bfd_index: BTreeMap<(Option<String>, String), usize> = BTreeMap::new();
    for b in set.bfd {
        bfd_index.insert((b.namespace.clone(), b.name.clone()), cx.bgp_bfd.len());
        cx.bgp_bfd.push(BfdDraft { subject: b.subject, wanted: b.name, spec: b.spec, name: String::new() });
    }
    let mut peer_index: Vec<(Option<String>, String, usize)> = Vec::new();
    for p in set.peers {
        let bfd = p.bfd.as_ref().and_then(|(field, profile)| {
            match bfd_index.get(&(p.namespace.clone(), profile.clone())) {
                Some(&i) => {
                    cx.report.exact(
                        &p.subject,
                        field,
                        Some(format!("spec.bfdProfile: {profile}")),
                        "the converted BFDProfile of that name (see the renames, if any)",
                    );
                    Some(i)
                }
                None => {
                    cx.report.not_converted(
                        &p.subject,
                        field,
                        format!(
                            "BFD profile {profile:?} is not among the inputs, so the peer runs without BFD"
                        ),
                        "add the BFDProfile's manifest to the inputs, or set spec.bfdProfile by hand",
                    );
                    None
                }
            }
        });
        peer_index.push((p.namespace.clone(), p.name.clone(), cx.bgp_peers.len()));
        cx.bgp_peers.push(PeerDraft {
            subject: p.subject,
            wanted: p.name,
            spec: p.spec,
            bfd,
            name: String::new(),
        });
    }

    let mut used_aliases: BTreeMap<(Option<String>, String), Vec<String>> = BTreeMap::new();
    let mut covered: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for adv in &set.advs {
        lower_adv(
            adv,
            pools,
            first_draft,
            &peer_index,
            &set.communities,
            &mut used_aliases,
            &mut covered,
            cx,
        );
    }
    for c in &set.communities {
        for (field, name, value) in &c.entries {
            let mut advs =
                used_aliases.get(&(c.namespace.clone(), name.clone())).cloned().unwrap_or_default();
            advs.sort();
            advs.dedup();
            match (!advs.is_empty()).then_some(advs) {
                Some(advs) => cx.report.exact(
                    &c.subject,
                    field,
                    Some(format!("spec.communities / spec.largeCommunities of {}", advs.join(", "))),
                    format!("alias {name:?} = {value:?}, written as its value into the advertisements that name it"),
                ),
                None => cx.report.exact(
                    &c.subject,
                    field,
                    None,
                    format!("alias {name:?} is named by no BGP advertisement among the inputs: nothing to convert"),
                ),
            }
        }
    }
    covered
}

#[allow(clippy::too_many_arguments)]
fn lower_adv(
    adv: &MlbBgpAdv,
    pools: &[MlbPool],
    first_draft: usize,
    peers: &[(Option<String>, String, usize)],
    aliases: &[MlbCommunity],
    used_aliases: &mut BTreeMap<(Option<String>, String), Vec<String>>,
    covered: &mut BTreeMap<usize, Vec<String>>,
    cx: &mut Context,
) {
    let s = &adv.subject;
    let pool_terms = crate::metallb::pool_terms(
        &crate::metallb::AdvPools {
            subject: s,
            namespace: &adv.namespace,
            name: &adv.name,
            path: &adv.path,
            pools: &adv.pools,
            pool_selectors: &adv.pool_selectors,
            pool_indices: &adv.pool_indices,
        },
        pools,
        first_draft,
        covered,
        cx,
    );
    for j in 0..adv.node_selectors.len() {
        cx.report.exact(
            s,
            format!("{}.nodeSelectors[{j}]", adv.path),
            Some(format!("spec.nodeSelectors[{j}]")),
            "same node selector (a node matching any advertises)",
        );
    }

    let mut peer_idx = Vec::new();
    for (j, name) in adv.peers.iter().enumerate() {
        let field = format!("{}.peers[{j}]", adv.path);
        match peers.iter().find(|(ns, n, _)| *ns == adv.namespace && n == name) {
            Some((_, _, i)) => {
                peer_idx.push(*i);
                cx.report.exact(s, field, Some("spec.peers".into()), format!("the converted BGPPeer {name:?}"));
            }
            None => cx.report.not_converted(
                s,
                field,
                format!("peer {name:?} is not among the converted peers; MetalLB advertised to it only if it existed"),
                "add the BGPPeer's manifest to the inputs if it exists",
            ),
        }
    }
    if !adv.peers.is_empty() && peer_idx.is_empty() {
        cx.report.not_converted(
            s,
            "(object)",
            "none of its peers was converted, so no BGPAdvertisement is written (it would advertise to every peer)",
            "add the BGPPeers it names to the inputs",
        );
        return;
    }

    let mut communities = Vec::new();
    let mut large = Vec::new();
    for (field, text) in &adv.communities {
        // An alias wins over the text's own meaning, as in MetalLB (an alias may be called
        // `no-advertise`).
        let alias = aliases
            .iter()
            .filter(|c| c.namespace == adv.namespace)
            .flat_map(|c| c.entries.iter())
            .find(|(_, n, _)| n == text.trim());
        let resolved = match (alias, classify_community(text)) {
            (Some((_, name, value)), _) => {
                used_aliases.entry((adv.namespace.clone(), name.clone())).or_default().push(adv.name.clone());
                community_value(value).ok()
            }
            (None, Community::Alias(a)) => {
                cx.report.not_converted(
                    s,
                    field,
                    format!("community alias {a:?} is defined by no Community object (bgp-communities) among the inputs"),
                    "add the Community object to the inputs, or add the community's value by hand",
                );
                continue;
            }
            (None, other) => Some(other),
        };
        match resolved {
            Some(Community::Standard(v)) => {
                cx.report.exact(s, field, Some(format!("spec.communities: {v}")), "same community");
                communities.push(v);
            }
            Some(Community::Large(v)) => {
                cx.report.exact(
                    s,
                    field,
                    Some(format!("spec.largeCommunities: {v}")),
                    "same large community",
                );
                large.push(v);
            }
            _ => {}
        }
    }
    let key = |camel: &str, kebab: &str| {
        if adv.kebab { format!("{}.{kebab}", adv.path) } else { format!("{}.{camel}", adv.path) }
    };
    if let Some(lp) = adv.local_pref {
        cx.report.exact(
            s,
            key("localPref", "localpref"),
            Some(format!("spec.localPref: {lp}")),
            "same LOCAL_PREF, sent to iBGP peers only, as MetalLB did",
        );
    }
    if let Some(l) = adv.aggregation_length {
        cx.report.exact(
            s,
            key("aggregationLength", "aggregation-length"),
            Some(format!("spec.aggregationLength: {l}")),
            "same prefix length",
        );
    }
    if let Some(l) = adv.aggregation_length_v6 {
        cx.report.exact(
            s,
            key("aggregationLengthV6", "aggregation-length-v6"),
            Some(format!("spec.aggregationLengthV6: {l}")),
            "same prefix length",
        );
    }

    let many = pool_terms.len() > 1;
    if many {
        cx.report.exact(
            s,
            "(object)",
            None,
            format!(
                "split into {} BGPAdvertisements (one per pool term); FerroLB advertises the union, which is what one \
                 MetalLB advertisement with several pool terms means",
                pool_terms.len()
            ),
        );
    }
    for (k, (by_name, pool_sel)) in pool_terms.into_iter().enumerate() {
        let wanted = if many { format!("{}-{}", adv.name, k + 1) } else { adv.name.clone() };
        let spec = BGPAdvertisementSpec {
            pool_selector: pool_sel,
            node_selectors: adv.node_selectors.clone(),
            communities: communities.clone(),
            large_communities: large.clone(),
            local_pref: adv.local_pref,
            aggregation_length: adv.aggregation_length,
            aggregation_length_v6: adv.aggregation_length_v6,
            ..BGPAdvertisementSpec::default()
        };
        if let Err(e) = check_advertisement(s, &wanted, &spec) {
            cx.fail(e);
            continue;
        }
        cx.bgp_advs.push(AdvertisementDraft {
            subject: s.clone(),
            wanted,
            spec,
            pools_by_name: by_name,
            peers: (!peer_idx.is_empty()).then(|| peer_idx.clone()),
            name: String::new(),
        });
    }
}
