//! `BGPSessionState`: one object per (node, peer), written by that node's announcer, so that
//! `kubectl get bgpsessionstates.ferrolb.io` shows every session (MetalLB 0.15 has a kind of the
//! same name and purpose).
//!
//! Why a kind of its own rather than a list in `BGPPeer.status`: API writes stay bounded and
//! nobody's watch is flooded.
//! - **One writer per object.** Each object is written only by the announcer of its node, so
//!   writes never conflict; a shared `BGPPeer.status` list would be read-modify-written by every
//!   node, with 409 retries growing with the number of nodes, and would itself grow with the
//!   nodes towards etcd's object size limit.
//! - **No fan-out.** Every announcer watches `BGPPeer`s for their spec; a session change written
//!   into a peer's status would be sent to all of them (O(nodes) per change, O(nodes²) when a
//!   router restarts). Announcers never watch `BGPSessionState`s: only kubectl and monitoring see
//!   these writes.
//! - **Writes only on change.** The status holds the state, when it last changed (kubectl shows
//!   its age), prefixes sent and the BFD state; nothing in it ticks by itself (no uptime, no
//!   heartbeat), so an established session costs no writes. The announcer writes on transitions
//!   and when the advertised set changes, at most once a second per object (a flapping session
//!   shows its latest state, not every step).
//!
//! Lifetime: created with an owner reference to the Node, so the garbage collector removes a
//! deleted node's objects; the announcer deletes the objects of peers that no longer select its
//! node (it finds its own by the `ferrolb.io/node` label when it starts).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Identity of a `BGPSessionState`: which node's session with which peer. Written once, when
/// the announcer creates the object.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "ferrolb.io",
    version = "v1alpha1",
    kind = "BGPSessionState",
    plural = "bgpsessionstates",
    singular = "bgpsessionstate",
    category = "ferrolb",
    status = "BGPSessionStateStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "The state of one node's BGP session with one BGPPeer, written by that node's announcer.",
    printcolumn(name = "Node", type_ = "string", json_path = ".spec.node"),
    printcolumn(name = "Peer", type_ = "string", json_path = ".spec.peer"),
    printcolumn(name = "Address", type_ = "string", json_path = ".spec.peerAddress"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.sessionState"),
    printcolumn(name = "BFD", type_ = "string", json_path = ".status.bfdState"),
    printcolumn(name = "Sent", type_ = "integer", json_path = ".status.prefixesSent"),
    printcolumn(name = "Since", type_ = "date", json_path = ".status.lastChangeTime"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct BGPSessionStateSpec {
    /// The node whose announcer holds the session.
    #[schemars(length(max = 253))]
    pub node: String,
    /// The `BGPPeer`'s name.
    #[schemars(length(max = 253))]
    pub peer: String,
    /// The peer's address, as the session uses it.
    #[schemars(length(max = 64))]
    pub peer_address: String,
}

/// The session as the node's announcer sees it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BGPSessionStateStatus {
    /// The BGP finite state machine's state (RFC 4271 §8.2.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_state: Option<SessionState>,
    /// When `sessionState` or `bfdState` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change_time: Option<Time>,
    /// Prefixes currently advertised to the peer over this session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefixes_sent: Option<u32>,
    /// The BFD session's state; absent when the peer has no `bfdProfile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd_state: Option<BfdState>,
    /// Why the session last went down (a NOTIFICATION's error, a refused connection, hold
    /// timer or BFD expiry), kept until it is established again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub last_error: Option<String>,
}

/// BGP finite state machine states.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum SessionState {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

/// BFD session states (RFC 5880 §4.1).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum BfdState {
    AdminDown,
    Down,
    Init,
    Up,
}

impl BGPSessionState {
    /// The object name for `node`'s session with `peer`: both names for people, and a hash of
    /// the pair so that `a-b`/`c` and `a`/`b-c` never share a name; cut with a hash past 253
    /// characters like the Lease names.
    pub fn name_for(node: &str, peer: &str) -> String {
        let hash = crate::names::leases::fnv1a(format!("{node}\0{peer}").as_bytes()) as u32;
        crate::names::leases::bounded(format!("{node}-{peer}-{hash:08x}"))
    }

    /// A new object for `node`'s session with `peer`, labelled for lookup by node and peer
    /// (owner reference and status are the announcer's to add).
    pub fn for_session(node: &str, peer: &str, peer_address: &str) -> Self {
        let mut s = Self::new(
            &Self::name_for(node, peer),
            BGPSessionStateSpec { node: node.into(), peer: peer.into(), peer_address: peer_address.into() },
        );
        s.metadata.labels = Some(
            [
                (crate::names::labels::SESSION_NODE.to_string(), node.to_string()),
                (crate::names::labels::SESSION_PEER.to_string(), peer.to_string()),
            ]
            .into_iter()
            // A label value is at most 63 characters; longer names are still in the spec.
            .filter(|(_, v)| v.len() <= 63)
            .collect(),
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_per_pair_and_bounded() {
        let a = BGPSessionState::name_for("a-b", "c");
        let b = BGPSessionState::name_for("a", "b-c");
        assert_ne!(a, b);
        assert!(a.starts_with("a-b-c-"), "{a}");
        let long = BGPSessionState::name_for(&"n".repeat(253), &"p".repeat(253));
        assert!(long.len() <= 253);
        let s = BGPSessionState::for_session("node1", "tor", "192.0.2.1");
        let labels = s.metadata.labels.unwrap();
        assert_eq!(labels["ferrolb.io/node"], "node1");
        assert_eq!(labels["ferrolb.io/bgp-peer"], "tor");
    }
}
