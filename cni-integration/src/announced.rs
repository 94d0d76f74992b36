//! The announcer's answers as Rust types: addresses as [`IpAddr`], times as [`SystemTime`], instead
//! of the wire's text and protobuf timestamps.

use std::net::IpAddr;
use std::time::SystemTime;

use ferrolb_proto::ServiceRef;
use ferrolb_proto::v1;

/// An answer from the announcer that breaks the API's rules (an address that does not parse, a
/// missing field). The watch starts again from a snapshot when a stream carries one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed answer from the announcer: {0}")]
pub struct Malformed(pub String);

/// One announced address: which node answers ARP/NDP for it, for which Services, on which
/// interfaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announced {
    /// The address.
    pub ip: IpAddr,
    /// The Services using it, sorted (several when they share it).
    pub services: Vec<ServiceRef>,
    /// The node holding it.
    pub node: String,
    /// When that node became the holder (`None` when the announcer did not say).
    pub since: Option<SystemTime>,
    /// The interfaces the holder announces it on, sorted.
    pub interfaces: Vec<String>,
    /// Whether the node of the announcer that answered holds it.
    pub local: bool,
    /// The revision at which the announcement last changed; a programming report names it.
    pub revision: u64,
}

impl TryFrom<v1::Announcement> for Announced {
    type Error = Malformed;

    fn try_from(announcement: v1::Announcement) -> Result<Self, Malformed> {
        let ip = announcement
            .ip
            .parse()
            .map_err(|_| Malformed(format!("announcement ip {:?} is not an IP address", announcement.ip)))?;
        Ok(Self {
            ip,
            services: announcement
                .services
                .into_iter()
                .map(|s| ServiceRef::new(s.namespace, s.name))
                .collect(),
            node: announcement.node,
            since: announcement.since.and_then(|t| SystemTime::try_from(t).ok()),
            interfaces: announcement.interfaces,
            local: announcement.local,
            revision: announcement.revision,
        })
    }
}

/// What the local CNI agent last reported about an address on one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Programming {
    /// The interface.
    pub interface: String,
    /// Whether the datapath was ready there.
    pub ok: bool,
    /// Why not, when not.
    pub error_message: String,
    /// The announcement revision the report was about.
    pub revision: u64,
    /// When the announcer received it.
    pub reported_at: Option<SystemTime>,
}

/// The answer to `GetOwner`: the announcement and the local agent's reports about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Who announces the address.
    pub announcement: Announced,
    /// The local agent's reports, one per interface (empty unless this node holds the address).
    pub programming: Vec<Programming>,
}

impl TryFrom<v1::Owner> for Owner {
    type Error = Malformed;

    fn try_from(owner: v1::Owner) -> Result<Self, Malformed> {
        let announcement =
            owner.announcement.ok_or_else(|| Malformed("owner without announcement".into()))?;
        Ok(Self {
            announcement: announcement.try_into()?,
            programming: owner
                .programming
                .into_iter()
                .map(|p| Programming {
                    interface: p.interface,
                    ok: p.ok,
                    error_message: p.error_message,
                    revision: p.revision,
                    reported_at: p.reported_at.and_then(|t| SystemTime::try_from(t).ok()),
                })
                .collect(),
        })
    }
}

/// The answer to `ListAnnouncements`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    /// The matching announcements, sorted by address.
    pub announcements: Vec<Announced>,
    /// The table revision they were read at.
    pub revision: u64,
    /// The epoch of the announcer process that answered.
    pub epoch: u64,
}

impl TryFrom<v1::ListResponse> for Listing {
    type Error = Malformed;

    fn try_from(list: v1::ListResponse) -> Result<Self, Malformed> {
        Ok(Self {
            announcements: list
                .announcements
                .into_iter()
                .map(Announced::try_from)
                .collect::<Result<_, _>>()?,
            revision: list.revision,
            epoch: list.epoch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_announcements_become_typed_or_are_refused() {
        let wire = v1::Announcement {
            ip: "2001:db8:100::1000".into(),
            services: vec![v1::ServiceRef { namespace: "default".into(), name: "web".into() }],
            node: "node-a".into(),
            since: Some(prost_types::Timestamp { seconds: 1_700_000_000, nanos: 0 }),
            interfaces: vec!["eth0".into()],
            local: true,
            revision: 7,
            ..Default::default()
        };
        let typed = Announced::try_from(wire.clone()).unwrap();
        assert_eq!(typed.ip, "2001:db8:100::1000".parse::<IpAddr>().unwrap());
        assert_eq!(typed.services, vec![ServiceRef::new("default", "web")]);
        assert_eq!(typed.since, Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000)));
        assert_eq!((typed.local, typed.revision), (true, 7));

        let bad = v1::Announcement { ip: "198.51.100.300".into(), ..wire };
        assert_eq!(
            Announced::try_from(bad).unwrap_err().to_string(),
            r#"malformed answer from the announcer: announcement ip "198.51.100.300" is not an IP address"#
        );
        assert!(Owner::try_from(v1::Owner::default()).is_err(), "an owner needs its announcement");
    }
}
