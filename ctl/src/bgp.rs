//! BGP objects about to be written, shared by every source: [`PeerDraft`], [`AdvertisementDraft`]
//! and [`BfdDraft`], linked to each other (and to pools) by index until names are final, and
//! the helpers the source modules read BGP fields with.

use ferrolb_api::bgp::{
    BFDProfileSpec, BGPAdvertisementSpec, BGPPeerSpec, SpecProblems, parse_community, parse_duration,
    parse_large_community, well_known_community,
};
use serde_json::Value;

use crate::error::InputError;
use crate::obj::{Obj, field_error, short};
use crate::report::Subject;

/// A `BGPPeer` about to be written.
#[derive(Debug, Clone)]
pub struct PeerDraft {
    pub subject: Subject,
    pub wanted: String,
    pub spec: BGPPeerSpec,
    /// The BFD profile (index into the BFD drafts); names `spec.bfdProfile` once names are final.
    pub bfd: Option<usize>,
    pub name: String,
}

/// A `BGPAdvertisement` about to be written.
#[derive(Debug, Clone)]
pub struct AdvertisementDraft {
    pub subject: Subject,
    pub wanted: String,
    pub spec: BGPAdvertisementSpec,
    /// Pools (indices into the pool drafts) selected by name once names are final; `None`:
    /// `spec.pool_selector` stands as it is.
    pub pools_by_name: Option<Vec<usize>>,
    /// Peers (indices into the peer drafts) listed in `spec.peers` once names are final; `None`:
    /// every peer.
    pub peers: Option<Vec<usize>>,
    pub name: String,
}

/// A `BFDProfile` about to be written.
#[derive(Debug, Clone)]
pub struct BfdDraft {
    pub subject: Subject,
    pub wanted: String,
    pub spec: BFDProfileSpec,
    pub name: String,
}

/// An ASN field (1 to 4294967295).
pub fn asn(o: &mut Obj<'_>, key: &str) -> Result<Option<u32>, InputError> {
    match o.int(key)? {
        None => Ok(None),
        Some(n) if (1..=i64::from(u32::MAX)).contains(&n) => Ok(Some(n as u32)),
        Some(n) => Err(o.error(key, format!("{n} is not an AS number (1 to 4294967295)"))),
    }
}

/// A duration field written as Go duration text (`90s`), or as a number of seconds (MetalLB's
/// oldest ConfigMaps): the text to write, checked.
pub fn duration_text(o: &mut Obj<'_>, key: &str) -> Result<Option<String>, InputError> {
    match o.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => match parse_duration(s) {
            Ok(_) => Ok(Some(s.trim().to_string())),
            Err(e) => Err(o.error(key, e.to_string())),
        },
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(Some(format!("{}s", n.as_u64().unwrap_or(0)))),
        Some(other) => {
            Err(o.error(key, format!("expected a duration such as \"90s\", found {}", short(other))))
        }
    }
}

/// Seconds as duration text (`90s`, not `1m30s`: the number the source had), for Cilium's
/// `*Seconds` fields.
pub fn seconds_text(secs: u64) -> String {
    format!("{secs}s")
}

/// An integer field that must fit `T`.
pub fn int_in<T: TryFrom<i64>>(o: &mut Obj<'_>, key: &str, what: &str) -> Result<Option<T>, InputError> {
    match o.int(key)? {
        None => Ok(None),
        Some(n) => T::try_from(n).map(Some).map_err(|_| o.error(key, format!("{n} is not {what}"))),
    }
}

/// How a source community string becomes FerroLB's: standard, large, or a name to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Community {
    Standard(String),
    Large(String),
    /// A name the source resolves through its community aliases (MetalLB's `Community` objects,
    /// `bgp-communities`, Deckhouse's `bgpCommunities`).
    Alias(String),
}

/// Classifies a MetalLB community value: `large:a:b:c`, `a:b`, a well-known name, or an alias.
pub fn classify_community(text: &str) -> Community {
    let t = text.trim();
    if let Some(large) = t.strip_prefix("large:") {
        return Community::Large(large.to_string());
    }
    if parse_community(t).is_ok() {
        return Community::Standard(t.to_string());
    }
    Community::Alias(t.to_string())
}

/// A community value (from an alias table) as FerroLB's: `Ok(Standard|Large)`, or why not.
pub fn community_value(text: &str) -> Result<Community, String> {
    match classify_community(text) {
        Community::Large(l) => parse_large_community(&l).map(|_| Community::Large(l)),
        Community::Standard(s) => Ok(Community::Standard(s)),
        Community::Alias(a) if well_known_community(&a).is_some() => Ok(Community::Standard(a)),
        Community::Alias(a) => {
            Err(format!("{a:?} is neither a community (65535:65282, large:1:2:3) nor a well-known name"))
        }
    }
}

/// Checks a converted spec with FerroLB's own validation: a converted object must be usable.
/// A failure means the source held a value its own tool would refuse as well.
pub fn check_peer(subject: &Subject, name: &str, spec: &BGPPeerSpec) -> Result<(), InputError> {
    spec.validate().map(|_| ()).map_err(|p| {
        field_error(
            subject,
            "spec",
            format!("cannot be converted: {}", SpecProblems { kind: "BGPPeer", name, problems: &p }),
        )
    })
}

/// See [`check_peer`].
pub fn check_advertisement(
    subject: &Subject,
    name: &str,
    spec: &BGPAdvertisementSpec,
) -> Result<(), InputError> {
    spec.validate().map(|_| ()).map_err(|p| {
        field_error(
            subject,
            "spec",
            format!("cannot be converted: {}", SpecProblems { kind: "BGPAdvertisement", name, problems: &p }),
        )
    })
}

/// See [`check_peer`].
pub fn check_bfd(subject: &Subject, name: &str, spec: &BFDProfileSpec) -> Result<(), InputError> {
    spec.validate().map(|_| ()).map_err(|p| {
        field_error(
            subject,
            "spec",
            format!("cannot be converted: {}", SpecProblems { kind: "BFDProfile", name, problems: &p }),
        )
    })
}

/// `peer-192-0-2-1`: a name for a peer that has none in its source (legacy ConfigMap entries,
/// Deckhouse `bgpPeers`), from its address.
pub fn name_from_address(address: &str) -> String {
    let mut s = format!("peer-{}", address.trim().replace(['.', ':'], "-").to_ascii_lowercase());
    if s.ends_with('-') {
        s.push('0');
    }
    s
}
