//! BGP mode's API (DESIGN.md §10): `BGPPeer`, `BGPAdvertisement` and `BFDProfile`, which users
//! write, and `BGPSessionState`, which each announcer writes for its own sessions.
//!
//! The kinds and most field names are MetalLB's (`myASN`, `peerASN`, `peerAddress`, `holdTime`,
//! `bfdProfile`, `aggregationLength`, `localPref`), so a MetalLB user reads them without a
//! manual; where FerroLB's meaning differs the name differs too (`ebgpMultiHopTTL` is a TTL, not
//! MetalLB's boolean). All kinds are cluster-scoped, like FerroLB's pools and policies.
//!
//! As in [`crate::pool`], values a typo can break (addresses, durations, communities) are kept
//! as strings in the types: a bad one must not make the object undeserializable, which would
//! stall the announcer's reflector. The API server rejects most mistakes through the schema;
//! what it cannot check (`keepaliveTime` below `holdTime`, durations, community syntax) the
//! `validate` functions here find, every problem at once, for the `ferrolb.io/InvalidSpec`
//! condition.
//!
//! During a migration MetalLB's kinds of the same names may be installed too: name the group
//! (`kubectl get bgppeers.ferrolb.io`) or list FerroLB's objects with `kubectl get ferrolb`.

mod advertisement;
mod bfd;
pub mod duration;
mod peer;
mod session;

use std::fmt;
use std::net::IpAddr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use thiserror::Error;

pub use advertisement::{
    BGPAdvertisement, BGPAdvertisementSpec, BGPAdvertisementStatus, ValidAdvertisement, parse_community,
    parse_large_community, well_known_community,
};
pub use bfd::{BFDProfile, BFDProfileSpec, BFDProfileStatus, ValidBfdProfile};
pub use duration::{DurationError, format_duration, parse_duration};
pub use peer::{
    AddressFamily, BGPPeer, BGPPeerSpec, BGPPeerStatus, GracefulRestart, SecretKeyRef, ValidPeer, defaults,
};
pub use session::{BGPSessionState, BGPSessionStateSpec, BGPSessionStateStatus, BfdState, SessionState};

use crate::selector::Selector;

/// One thing wrong with a spec: the field's path and what is wrong with its value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {message}")]
pub struct SpecProblem {
    /// `spec.holdTime`, `spec.nodeSelectors[1]`.
    pub field: String,
    /// Names the value: `"2s" is below the minimum of 3s`.
    pub message: String,
}

impl SpecProblem {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// Every problem of one object, for a condition message or a log line:
/// `BGPPeer "tor": spec.holdTime: ...; spec.keepaliveTime: ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecProblems<'a> {
    pub kind: &'a str,
    pub name: &'a str,
    pub problems: &'a [SpecProblem],
}

impl fmt::Display for SpecProblems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}: ", self.kind, self.name)?;
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// An address field: parsed, or a problem naming the field and the text.
fn parse_ip(field: &str, text: &str, out: &mut Vec<SpecProblem>) -> Option<IpAddr> {
    match text.trim().parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) => {
            out.push(SpecProblem::new(field, format!("{text:?} is not an IPv4 or IPv6 address")));
            None
        }
    }
}

/// Label selectors, each checked; the parsed ones in order (a bad one is left out).
fn parse_selectors(field: &str, selectors: &[LabelSelector], out: &mut Vec<SpecProblem>) -> Vec<Selector> {
    selectors
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match Selector::from_label_selector(s) {
            Ok(sel) => Some(sel),
            Err(e) => {
                out.push(SpecProblem::new(format!("{field}[{i}]"), e.to_string()));
                None
            }
        })
        .collect()
}

/// One optional label selector, checked (`None`: everything).
fn parse_selector(field: &str, selector: Option<&LabelSelector>, out: &mut Vec<SpecProblem>) -> Selector {
    match selector.map(Selector::from_label_selector) {
        None => Selector::everything(),
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            out.push(SpecProblem::new(field, e.to_string()));
            Selector::everything()
        }
    }
}

/// Whether `name` is a valid object name (DNS subdomain), for references to other objects.
fn is_object_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && part.as_bytes()[0].is_ascii_alphanumeric()
                && part.as_bytes()[part.len() - 1].is_ascii_alphanumeric()
        })
}

/// A reference to another object by name: a problem unless it is a valid object name.
fn check_name(field: &str, name: &str, out: &mut Vec<SpecProblem>) {
    if !is_object_name(name) {
        out.push(SpecProblem::new(
            field,
            format!("{name:?} is not an object name (lower-case letters, digits, '-' and '.')"),
        ));
    }
}
