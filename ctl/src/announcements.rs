//! `ferrolbctl announcements`: an announcer's `ListAnnouncements` answer as a table or as JSON.
//! Pure: the binary fetches the answer over either transport and prints what these functions make.

use crate::status::table;
use ferrolb_proto::v1;

/// The text of a protobuf timestamp (RFC 3339), `-` when unset.
fn timestamp(t: Option<&prost_types::Timestamp>) -> String {
    t.map_or_else(
        || "-".into(),
        |t| {
            jiff::Timestamp::new(t.seconds, t.nanos).map_or_else(|_| t.seconds.to_string(), |t| t.to_string())
        },
    )
}

/// The delegate-mode programming state, as ferrolbctl writes it; `-` when it does not apply.
pub fn programming_state(a: &v1::Announcement) -> &'static str {
    match v1::ProgrammingState::try_from(a.programming_state) {
        Ok(v1::ProgrammingState::Pending) => "pending",
        Ok(v1::ProgrammingState::Programmed) => "programmed",
        Ok(v1::ProgrammingState::Failed) => "failed",
        Ok(v1::ProgrammingState::TimedOut) => "timed-out",
        Ok(v1::ProgrammingState::Unspecified) | Err(_) => "-",
    }
}

fn services(a: &v1::Announcement) -> Vec<String> {
    a.services.iter().map(|s| format!("{}/{}", s.namespace, s.name)).collect()
}

/// One line per announcement, sorted as the announcer sends them (by address), with the revision
/// the list was read at.
pub fn to_text(list: &v1::ListResponse) -> String {
    if list.announcements.is_empty() {
        return format!("no announcements (revision {})\n", list.revision);
    }
    let mut rows = vec![
        ["IP", "SERVICES", "NODE", "LOCAL", "INTERFACES", "SINCE", "PROGRAMMING", "MESSAGE"]
            .map(String::from),
    ];
    rows.extend(list.announcements.iter().map(|a| {
        [
            a.ip.clone(),
            services(a).join(","),
            a.node.clone(),
            if a.local { "yes" } else { "no" }.into(),
            if a.interfaces.is_empty() { "-".into() } else { a.interfaces.join(",") },
            timestamp(a.since.as_ref()),
            programming_state(a).into(),
            a.programming_message.clone(),
        ]
    }));
    let mut out = table(&rows);
    out.push_str(&format!("{} announcements at revision {}\n", list.announcements.len(), list.revision));
    out
}

/// The answer as JSON: `{epoch, revision, announcements: [...]}`.
pub fn to_json(list: &v1::ListResponse) -> serde_json::Value {
    let announcements: Vec<serde_json::Value> = list
        .announcements
        .iter()
        .map(|a| {
            serde_json::json!({
                "ip": a.ip,
                "services": services(a),
                "node": a.node,
                "local": a.local,
                "interfaces": a.interfaces,
                "since": a.since.as_ref().map(|t| timestamp(Some(t))),
                "revision": a.revision,
                "programming": programming_state(a),
                "programmingMessage": a.programming_message,
            })
        })
        .collect();
    serde_json::json!({"epoch": list.epoch, "revision": list.revision, "announcements": announcements})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> v1::ListResponse {
        v1::ListResponse {
            announcements: vec![
                v1::Announcement {
                    ip: "198.51.100.128".into(),
                    services: vec![v1::ServiceRef { namespace: "default".into(), name: "web".into() }],
                    node: "node1".into(),
                    since: Some(prost_types::Timestamp { seconds: 1_800_000_000, nanos: 0 }),
                    interfaces: vec!["eth0".into()],
                    local: true,
                    revision: 4,
                    programming_state: v1::ProgrammingState::Failed.into(),
                    programming_message: "eth0: no route".into(),
                    ..Default::default()
                },
                v1::Announcement {
                    ip: "2001:db8:100::1000".into(),
                    node: "node2".into(),
                    ..Default::default()
                },
            ],
            revision: 9,
            epoch: 77,
        }
    }

    #[test]
    fn the_table_has_a_row_per_announcement_and_the_revision() {
        let text = to_text(&list());
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("IP ") && lines[0].contains("PROGRAMMING"), "{text}");
        assert!(lines[1].contains("default/web") && lines[1].contains("2027-01-15T08:00:00Z"), "{text}");
        assert!(lines[1].contains("failed") && lines[1].ends_with("eth0: no route"), "{text}");
        assert!(lines[2].starts_with("2001:db8:100::1000") && lines[2].contains(" no "), "{text}");
        assert_eq!(lines[3], "2 announcements at revision 9");
        let empty = v1::ListResponse { revision: 3, ..Default::default() };
        assert_eq!(to_text(&empty), "no announcements (revision 3)\n");
    }

    #[test]
    fn json_carries_every_field() {
        let json = to_json(&list());
        assert_eq!(json["revision"], 9);
        assert_eq!(json["epoch"], 77);
        assert_eq!(json["announcements"][0]["services"][0], "default/web");
        assert_eq!(json["announcements"][0]["programming"], "failed");
        assert_eq!(json["announcements"][0]["since"], "2027-01-15T08:00:00Z");
        assert_eq!(json["announcements"][1]["programming"], "-");
        assert!(json["announcements"][1]["since"].is_null());
    }
}
