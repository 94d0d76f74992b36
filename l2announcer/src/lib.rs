//! FerroLB L2 announcer (DESIGN.md §4).
//!
//! This crate's decision core is pure: plain inputs (policies, Services, pools, Nodes, interfaces,
//! endpoints, Lease records, liveness observations, time) in, decisions out; no sockets, no
//! Kubernetes client, no async. The modules, in the order data flows through them:
//!
//! - [`interface`]: which interfaces a policy's (anchored) regexes or the default rules select;
//! - [`policy`]: which (Service, address) pairs the `L2AnnouncementPolicy` objects select, from which
//!   nodes and on which interfaces (several policies: the union);
//! - [`candidates`]: the nodes that may announce one address, and why the others may not;
//! - [`placement`]: rendezvous preference and the balanced, sticky assignment of addresses to nodes;
//! - [`liveness`]: whether a node is alive, from its heartbeat Lease and peer heartbeats;
//! - [`lease_state`]: per-(Service, address) Lease decisions (acquire, hold, hand over, stand down,
//!   wait), the failover rules and the worst-case double-announcement window;
//! - [`engine`]: all of the above for one node's whole view, one round at a time: a plan of what to
//!   answer and which Leases to write;
//! - [`observe`]: what a node keeps between rounds about what it observed (since when each node is
//!   ready, since when it reaches the API server, takeover notices) and its own standing;
//! - [`lease_writes`]: which Lease writes may start, which Leases to delete, backoff after a failed
//!   write, and the confirmed writes the watch has not shown yet;
//! - [`events`]: which Events a node sends after a round, and how often a warning may repeat;
//! - [`policy_status`], [`spec_condition`]: the conditions the cluster's status writer puts on the
//!   policies (and the BGP objects), once they differ from what the objects show;
//! - [`lifecycle`]: when a node is ready, rests between rounds and stops;
//! - [`round`]: all of the above for one round: every action the adapter carries out;
//! - [`delegate`]: with `--datapath delegate`, when the CNI agent's reports allow gratuitous packets
//!   and when a failed or missing report becomes a warning;
//! - [`preflight`]: what this node's policies select for the shared preflight checks
//!   ([`ferrolb_api::preflight`]), and which findings to log and post as Events.

pub mod adapter;
pub mod bgp;
pub mod candidates;
pub mod datapath;
pub mod delegate;
pub mod engine;
pub mod events;
pub mod fuzzing;
pub mod interface;
pub mod lease_state;
pub mod lease_writes;
pub mod lifecycle;
pub mod liveness;
pub mod metrics;
pub mod observe;
pub mod peer;
pub mod placement;
pub mod policy;
pub mod policy_status;
pub mod preflight;
pub mod report;
pub mod round;
pub mod spec_condition;

pub use candidates::{
    AnnouncerState, CandidateNode, Candidates, LocalEndpoints, NodeState, Rejection, candidates_for,
};
pub use interface::{Interface, InterfaceKind, InterfaceSelector};
pub use lease_state::{AddressLease, Decision, HolderStatus, Inputs, LeaseConfig, LeaseObject, lease_object};
pub use liveness::{Liveness, LivenessConfig, PeerLiveness, SelfLiveness};
pub use placement::{NodeId, Nodes, Slot, place, rendezvous_order};
pub use policy::{
    AddressKey, AddressSource, Announcement, NodeInput, Policies, PolicyError, PolicyInput, PoolInput,
    ServiceInput, ServiceKey, TrafficPolicy,
};
