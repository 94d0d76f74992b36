//! An announcer's report about itself, carried by its node heartbeat Lease (annotation
//! `ferrolb.io/announcer-state`), so every other announcer knows whether it is ready, which
//! interfaces it has with their link state, and where its peer channel listens.
//!
//! The heartbeat Lease is renewed anyway; the annotation changes only when the report does (a link
//! goes up or down, readiness flips), so it adds no steady-state writes. A report that does not parse
//! counts as no report: that node's announcer is not a candidate until it writes a valid one.

use serde::{Deserialize, Serialize};

use crate::candidates::AnnouncerState;
use crate::interface::{Interface, InterfaceKind};

/// The report as plain data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    pub state: AnnouncerState,
    /// TCP port of the announcer's peer channel on the node's InternalIP.
    pub peer_port: Option<u16>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    ready: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    peer_port: Option<u16>,
    #[serde(default)]
    interfaces: Vec<WireInterface>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireInterface {
    name: String,
    up: bool,
    #[serde(default = "yes")]
    arp_capable: bool,
    #[serde(default)]
    enslaved: bool,
    #[serde(default)]
    kind: String,
}

fn yes() -> bool {
    true
}

fn kind_name(kind: &InterfaceKind) -> String {
    match kind {
        InterfaceKind::Loopback => "loopback".into(),
        InterfaceKind::Device => String::new(),
        InterfaceKind::Vlan => "vlan".into(),
        InterfaceKind::Bond => "bond".into(),
        InterfaceKind::Bridge => "bridge".into(),
        InterfaceKind::Veth => "veth".into(),
        InterfaceKind::Other(o) => o.clone(),
    }
}

fn kind_of(name: &str) -> InterfaceKind {
    match name {
        "" => InterfaceKind::Device,
        "loopback" => InterfaceKind::Loopback,
        "vlan" => InterfaceKind::Vlan,
        "bond" => InterfaceKind::Bond,
        "bridge" => InterfaceKind::Bridge,
        "veth" => InterfaceKind::Veth,
        other => InterfaceKind::Other(other.to_owned()),
    }
}

impl Report {
    /// The annotation value. Only interfaces that could ever announce are listed (structurally
    /// eligible), in name order, so equal reports encode equally.
    pub fn encode(&self) -> String {
        let mut interfaces: Vec<WireInterface> = self
            .state
            .interfaces
            .iter()
            .filter(|i| i.structurally_eligible())
            .map(|i| WireInterface {
                name: i.name.clone(),
                up: i.up,
                arp_capable: i.arp_capable,
                enslaved: i.enslaved,
                kind: kind_name(&i.kind),
            })
            .collect();
        interfaces.sort_by(|a, b| a.name.cmp(&b.name));
        let wire = Wire { ready: self.state.ready, peer_port: self.peer_port, interfaces };
        serde_json::to_string(&wire).expect("plain data serializes")
    }

    /// Parses an annotation value; `None` when it is not a report.
    pub fn decode(value: &str) -> Option<Self> {
        let wire: Wire = serde_json::from_str(value).ok()?;
        Some(Self {
            state: AnnouncerState {
                ready: wire.ready,
                interfaces: wire
                    .interfaces
                    .into_iter()
                    .map(|i| Interface {
                        name: i.name,
                        up: i.up,
                        arp_capable: i.arp_capable,
                        enslaved: i.enslaved,
                        kind: kind_of(&i.kind),
                    })
                    .collect(),
            },
            peer_port: wire.peer_port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_drops_ineligible_interfaces() {
        let mut lo = Interface::device("lo");
        lo.kind = InterfaceKind::Loopback;
        lo.arp_capable = false;
        let mut vlan = Interface::device("eth0.100").with_up(false);
        vlan.kind = InterfaceKind::Vlan;
        let report = Report {
            state: AnnouncerState {
                ready: true,
                interfaces: vec![vlan.clone(), lo, Interface::device("eth0")],
            },
            peer_port: Some(7947),
        };
        let text = report.encode();
        let back = Report::decode(&text).unwrap();
        assert_eq!(back.peer_port, Some(7947));
        assert!(back.state.ready);
        assert_eq!(back.state.interfaces, vec![Interface::device("eth0"), vlan]);
    }

    #[test]
    fn garbage_is_no_report() {
        assert_eq!(Report::decode("not json"), None);
        assert_eq!(Report::decode("{\"up\":1}"), None);
        let minimal = Report::decode("{\"ready\":false}").unwrap();
        assert!(!minimal.state.ready && minimal.state.interfaces.is_empty());
    }
}
