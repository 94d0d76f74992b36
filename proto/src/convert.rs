//! Between the wire types of `ferrolb.v1` and the table's types, with the validation of requests.

use std::net::IpAddr;

use crate::table::{
    Change, ChangeKind, Entry, Family, Filter, Programming, ProgrammingReport, ProgrammingState,
};
use crate::v1;

/// A request field that cannot be understood. Shown to the client as `INVALID_ARGUMENT` with a
/// message naming the field and the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {value:?} {reason}")]
pub struct InvalidArgument {
    /// The field, as named in the .proto file (`filter.family`).
    pub field: String,
    /// The value received.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl InvalidArgument {
    /// `field` holds `value`, which is wrong for `reason`.
    pub fn new(field: impl Into<String>, value: impl ToString, reason: impl Into<String>) -> Self {
        Self { field: field.into(), value: value.to_string(), reason: reason.into() }
    }
}

impl From<InvalidArgument> for tonic::Status {
    fn from(error: InvalidArgument) -> Self {
        tonic::Status::invalid_argument(error.to_string())
    }
}

/// Parses the address in `field`.
pub fn parse_ip(field: &str, value: &str) -> Result<IpAddr, InvalidArgument> {
    if value.is_empty() {
        return Err(InvalidArgument::new(field, value, "is empty: an IPv4 or IPv6 address is required"));
    }
    value.trim().parse().map_err(|_| InvalidArgument::new(field, value, "is not an IPv4 or IPv6 address"))
}

/// Checks the Linux interface name in `field` (what the kernel accepts: 1 to 15 bytes, not `.` or
/// `..`, no `/`, `:` or whitespace).
pub fn parse_interface(field: &str, value: &str) -> Result<String, InvalidArgument> {
    let bad = |reason: &str| Err(InvalidArgument::new(field, value, reason));
    if value.is_empty() {
        return bad("is empty: an interface name is required");
    }
    if value.len() > 15 {
        return bad("is longer than 15 bytes, the longest Linux interface name");
    }
    if value == "." || value == ".." || value.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        return bad("is not a valid Linux interface name");
    }
    Ok(value.to_string())
}

/// Parses a filter; `None` is the empty filter.
pub fn parse_filter(filter: Option<&v1::ListFilter>) -> Result<Filter, InvalidArgument> {
    let Some(filter) = filter else { return Ok(Filter::default()) };
    let family = match v1::AddressFamily::try_from(filter.family) {
        Ok(v1::AddressFamily::Unspecified) => None,
        Ok(v1::AddressFamily::Ipv4) => Some(Family::V4),
        Ok(v1::AddressFamily::Ipv6) => Some(Family::V6),
        Err(_) => {
            return Err(InvalidArgument::new(
                "filter.family",
                filter.family,
                "is not an address family (0 for both, 1 for IPv4, 2 for IPv6)",
            ));
        }
    };
    // A name Kubernetes would refuse can match nothing: say so instead of answering an empty list,
    // so that a typo (`Node-A`, a namespace with a `/`) is not taken for "nothing announced".
    let node = (!filter.node.is_empty()).then(|| filter.node.clone());
    if let Some(node) = &node
        && !is_dns_subdomain(node)
    {
        return Err(InvalidArgument::new(
            "filter.node",
            node,
            "is not a Kubernetes node name (a lowercase RFC 1123 subdomain: at most 253 of a-z, 0-9, '-' \
             and '.', starting and ending with a letter or digit)",
        ));
    }
    let namespace = (!filter.namespace.is_empty()).then(|| filter.namespace.clone());
    if let Some(namespace) = &namespace
        && !is_dns_label(namespace)
    {
        return Err(InvalidArgument::new(
            "filter.namespace",
            namespace,
            "is not a Kubernetes namespace name (a lowercase RFC 1123 label: at most 63 of a-z, 0-9 and \
             '-', starting and ending with a letter or digit)",
        ));
    }
    Ok(Filter { node, namespace, family, only_local: filter.only_local })
}

/// A lowercase RFC 1123 label, as Kubernetes checks namespace names.
fn is_dns_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.iter().all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// A lowercase RFC 1123 subdomain, as Kubernetes checks node names.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// The wire form of a family.
pub fn family_to_proto(family: Family) -> v1::AddressFamily {
    match family {
        Family::V4 => v1::AddressFamily::Ipv4,
        Family::V6 => v1::AddressFamily::Ipv6,
    }
}

/// The wire form of an entry, for the announcer on `local_node`.
pub fn announcement_to_proto(entry: &Entry, local_node: &str) -> v1::Announcement {
    let announcement = &entry.announcement;
    v1::Announcement {
        ip: announcement.ip.to_string(),
        family: family_to_proto(announcement.family()).into(),
        services: announcement
            .services
            .iter()
            .map(|s| v1::ServiceRef { namespace: s.namespace.clone(), name: s.name.clone() })
            .collect(),
        node: announcement.node.clone(),
        since: Some(announcement.since.into()),
        interfaces: announcement.interfaces.clone(),
        local: announcement.node == local_node,
        revision: entry.revision,
        programming_state: v1::ProgrammingState::Unspecified.into(),
        programming_message: String::new(),
    }
}

/// Fills the programming state of an announcement (ListAnnouncements, GetOwner).
pub fn set_programming(announcement: &mut v1::Announcement, programming: Option<&Programming>) {
    let Some(programming) = programming else { return };
    let state = match programming.state {
        ProgrammingState::Pending => v1::ProgrammingState::Pending,
        ProgrammingState::Programmed => v1::ProgrammingState::Programmed,
        ProgrammingState::Failed => v1::ProgrammingState::Failed,
        ProgrammingState::TimedOut => v1::ProgrammingState::TimedOut,
    };
    announcement.programming_state = state.into();
    announcement.programming_message = programming.message.clone();
}

/// The wire form of a programming report.
pub fn report_to_proto(report: &ProgrammingReport) -> v1::ProgrammingStatus {
    v1::ProgrammingStatus {
        interface: report.interface.clone(),
        ok: report.ok,
        error_message: report.error_message.clone(),
        revision: report.revision,
        reported_at: Some(report.reported_at.into()),
    }
}

/// The wire form of a table change, in a stream of epoch `epoch` for the announcer on `local_node`.
pub fn change_to_proto(change: &Change, local_node: &str, epoch: u64) -> v1::Change {
    let kind = match change.kind {
        ChangeKind::Added => v1::ChangeKind::Added,
        ChangeKind::Updated => v1::ChangeKind::Updated,
        ChangeKind::Removed => v1::ChangeKind::Removed,
    };
    v1::Change {
        revision: change.revision,
        kind: kind.into(),
        announcement: Some(announcement_to_proto(&change.entry, local_node)),
        epoch,
        resync_reason: v1::ResyncReason::Unspecified.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_named_with_their_field() {
        assert_eq!(
            parse_ip("ip", "10.0.0.300").unwrap_err().to_string(),
            r#"ip: "10.0.0.300" is not an IPv4 or IPv6 address"#
        );
        assert_eq!(parse_ip("ip", "2001:db8::1").unwrap(), "2001:db8::1".parse::<IpAddr>().unwrap());
        let filter = v1::ListFilter { family: 9, ..Default::default() };
        assert_eq!(
            parse_filter(Some(&filter)).unwrap_err().to_string(),
            r#"filter.family: "9" is not an address family (0 for both, 1 for IPv4, 2 for IPv6)"#
        );
        assert!(parse_interface("interface", "eth0.100").is_ok());
        assert!(parse_interface("interface", "a-very-long-name0").is_err());
        assert!(parse_interface("interface", "eth0:1").is_err());
        assert!(parse_interface("interface", "").is_err());
    }

    #[test]
    fn filter_names_that_kubernetes_would_refuse_are_invalid() {
        let filter = |node: &str, namespace: &str| v1::ListFilter {
            node: node.into(),
            namespace: namespace.into(),
            ..Default::default()
        };
        for node in ["node-a", "worker-1.example.org", "a", &"a".repeat(63)] {
            assert_eq!(parse_filter(Some(&filter(node, ""))).unwrap().node.as_deref(), Some(node));
        }
        for node in
            ["Node-A", "-node", "node-", "node_a", "a..b", ".a", "node a", &format!("{}.a", "a".repeat(253))]
        {
            let error = parse_filter(Some(&filter(node, ""))).unwrap_err();
            assert_eq!((error.field.as_str(), error.value.as_str()), ("filter.node", node));
            assert!(error.reason.starts_with("is not a Kubernetes node name"), "{error}");
        }
        for namespace in ["default", "kube-system", "a1"] {
            assert_eq!(
                parse_filter(Some(&filter("", namespace))).unwrap().namespace.as_deref(),
                Some(namespace)
            );
        }
        for namespace in ["Default", "prod.eu", "ns/x", "-a", &"a".repeat(64)] {
            let error = parse_filter(Some(&filter("", namespace))).unwrap_err();
            assert_eq!((error.field.as_str(), error.value.as_str()), ("filter.namespace", namespace));
            assert!(error.reason.starts_with("is not a Kubernetes namespace name"), "{error}");
        }
    }

    #[test]
    fn an_empty_filter_matches_everything() {
        assert_eq!(parse_filter(None).unwrap(), Filter::default());
        assert_eq!(parse_filter(Some(&v1::ListFilter::default())).unwrap(), Filter::default());
    }
}
