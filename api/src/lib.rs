//! FerroLB's API contract (DESIGN.md §2, §10): the `LoadBalancerIPPool` and
//! `L2AnnouncementPolicy` custom resources, BGP mode's `BGPPeer`, `BGPAdvertisement`,
//! `BFDProfile` and `BGPSessionState`, the names FerroLB shares with users (annotations, labels,
//! conditions, Event reasons), and parsers for the user-facing strings those carry.

pub mod bgp;
pub mod class;
pub mod crd;
pub mod names;
pub mod policy;
pub mod pool;
pub mod preflight;
pub mod range;
pub mod rbac;
pub mod selector;
pub mod service;

pub use bgp::{BFDProfile, BGPAdvertisement, BGPPeer, BGPSessionState, SpecProblem};
pub use class::{ClassError, ServedClasses, parse_class_list};
pub use policy::{L2AnnouncementPolicy, L2AnnouncementPolicySpec, L2AnnouncementPolicyStatus};
pub use pool::{
    AllowFirstLastIps, IpBlock, LoadBalancerIPPool, LoadBalancerIPPoolSpec, LoadBalancerIPPoolStatus,
};
pub use range::{Family, IpRange, RangeError};
pub use selector::{Selector, SelectorError};
pub use service::{ServiceKey, TrafficPolicy};
