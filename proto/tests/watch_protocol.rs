//! The watch protocol without sockets: the server's cursor ([`WatchCursor`]) feeding a client's
//! [`AnnouncementMirror`] through disconnects, compactions and restarts.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use ferrolb_proto::mirror::{AnnouncementMirror, Delta};
use ferrolb_proto::table::{Announcement, AnnouncementTable};
use ferrolb_proto::v1;
use ferrolb_proto::watch::WatchCursor;
use proptest::prelude::*;

const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
const LOCAL: &str = "node-a";

fn address(index: u8) -> IpAddr {
    if index.is_multiple_of(2) {
        format!("198.51.100.{}", 128 + index).parse().unwrap()
    } else {
        format!("2001:db8:100::{:x}", 0x1000 + u16::from(index)).parse().unwrap()
    }
}

#[derive(Clone, Debug)]
enum Op {
    Apply {
        ip: u8,
        node: u8,
        interfaces: u8,
        namespace: u8,
        since: u8,
    },
    Remove {
        ip: u8,
    },
    /// Send the pending batch; `cut` drops the connection after that many of its messages.
    Deliver {
        cut: Option<u8>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..6u8, 0..3u8, 0..4u8, 0..2u8, 0..3u8).prop_map(|(ip, node, interfaces, namespace, since)| {
            Op::Apply { ip, node, interfaces, namespace, since }
        }),
        2 => (0..6u8).prop_map(|ip| Op::Remove { ip }),
        3 => proptest::option::weighted(0.3, any::<u8>()).prop_map(|cut| Op::Deliver { cut }),
    ]
}

fn filter() -> impl Strategy<Value = Option<v1::ListFilter>> {
    prop_oneof![
        Just(None),
        Just(Some(v1::ListFilter { only_local: true, ..Default::default() })),
        Just(Some(v1::ListFilter { node: "node-b".into(), ..Default::default() })),
        Just(Some(v1::ListFilter { namespace: "prod".into(), ..Default::default() })),
        Just(Some(v1::ListFilter { family: v1::AddressFamily::Ipv6.into(), ..Default::default() })),
    ]
}

fn announcement(ip: u8, node: u8, interfaces: u8, namespace: u8, since: u8) -> Announcement {
    let mut announcement = Announcement::new(
        address(ip),
        NODES[usize::from(node)],
        SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(since)),
    )
    .with_service(["default", "prod"][usize::from(namespace)], format!("svc-{ip}"));
    if interfaces & 1 != 0 {
        announcement = announcement.with_interface("eth0");
    }
    if interfaces & 2 != 0 {
        announcement = announcement.with_interface("eth1.100");
    }
    announcement
}

/// What the table holds for `filter`, as the API shows it.
fn expected(table: &AnnouncementTable, filter: &Option<v1::ListFilter>) -> Vec<v1::Announcement> {
    let filter = ferrolb_proto::convert::parse_filter(filter.as_ref()).unwrap();
    let mut all: Vec<_> = table
        .snapshot(&filter)
        .entries
        .iter()
        .map(|entry| ferrolb_proto::convert::announcement_to_proto(entry, table.local_node()))
        .collect();
    all.sort_by(|a, b| a.ip.cmp(&b.ip));
    all
}

fn held(mirror: &AnnouncementMirror) -> Vec<v1::Announcement> {
    mirror.announcements().cloned().collect()
}

/// A CNI agent: its mirror, and a datapath programmed from the mirror's deltas alone.
#[derive(Clone, Debug)]
struct Agent {
    mirror: AnnouncementMirror,
    datapath: BTreeMap<String, v1::Announcement>,
}

impl Agent {
    fn receive(&mut self, change: v1::Change) {
        for delta in self.mirror.apply(change).unwrap() {
            match delta {
                Delta::Upsert(a) => self.datapath.insert(a.ip.clone(), a),
                Delta::Remove(a) => self.datapath.remove(&a.ip),
            };
        }
    }

    fn programmed(&self) -> Vec<v1::Announcement> {
        self.datapath.values().cloned().collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// An agent that is cut off at any point (inside a snapshot too) and resumes from where its
    /// mirror stands ends with exactly the table; and an agent that kept any state it once had and
    /// resumes from there also does, through a COMPACTED snapshot exactly when the table no longer
    /// holds the changes after it.
    #[test]
    fn resuming_watchers_reconstruct_the_table(
        ops in proptest::collection::vec(op(), 0..60),
        filter in filter(),
        log_capacity in 1..12usize,
    ) {
        let mut table = AnnouncementTable::new(LOCAL, 42).with_log_capacity(log_capacity);
        let mut agent = Agent { mirror: AnnouncementMirror::new(filter.clone()), datapath: BTreeMap::new() };
        let mut cursor = WatchCursor::new(&agent.mirror.watch_request(), &table).unwrap();
        let mut saved: Vec<Agent> = Vec::new();
        for op in ops {
            match op {
                Op::Apply { ip, node, interfaces, namespace, since } => {
                    table.apply(announcement(ip, node, interfaces, namespace, since));
                }
                Op::Remove { ip } => {
                    table.remove(address(ip));
                }
                Op::Deliver { cut } => {
                    let batch = cursor.next_batch(&table);
                    let keep = cut.map_or(batch.len(), |cut| usize::from(cut) % (batch.len() + 1));
                    let mut last_revision = 0;
                    for change in batch.into_iter().take(keep) {
                        prop_assert!(change.revision >= last_revision, "revisions never go back in a stream");
                        last_revision = change.revision;
                        agent.receive(change);
                    }
                    if cut.is_some() {
                        cursor = WatchCursor::new(&agent.mirror.watch_request(), &table).unwrap();
                    }
                    if !agent.mirror.in_snapshot() {
                        saved.push(agent.clone());
                    }
                }
            }
        }
        for change in cursor.next_batch(&table) {
            agent.receive(change);
        }
        prop_assert_eq!(held(&agent.mirror), expected(&table, &filter));
        prop_assert_eq!(agent.programmed(), expected(&table, &filter));
        prop_assert_eq!(agent.mirror.revision(), table.revision());

        for mut old in saved {
            let request = old.mirror.watch_request();
            let batch = WatchCursor::new(&request, &table).unwrap().next_batch(&table);
            let resync = batch.first().and_then(|first| {
                (first.kind == i32::from(v1::ChangeKind::SnapshotStart)).then_some(first.resync_reason)
            });
            let wanted = if request.from_revision == 0 {
                Some(v1::ResyncReason::Initial.into())
            } else if request.from_revision < table.oldest_resumable() {
                Some(v1::ResyncReason::Compacted.into())
            } else {
                None
            };
            prop_assert_eq!(resync, wanted, "resuming from revision {}", request.from_revision);
            for change in batch {
                old.receive(change);
            }
            prop_assert_eq!(held(&old.mirror), expected(&table, &filter));
            prop_assert_eq!(old.programmed(), expected(&table, &filter));
        }
    }
}

fn table_with(count: u8) -> AnnouncementTable {
    let mut table = AnnouncementTable::new(LOCAL, 7).with_log_capacity(4);
    for ip in 0..count {
        table.apply(announcement(ip, 0, 1, 0, 0));
    }
    table
}

fn kinds(batch: &[v1::Change]) -> Vec<v1::ChangeKind> {
    batch.iter().map(|c| v1::ChangeKind::try_from(c.kind).unwrap()).collect()
}

#[test]
fn a_new_watch_gets_a_snapshot_between_markers() {
    let table = table_with(2);
    let mut cursor = WatchCursor::new(&v1::WatchRequest::default(), &table).unwrap();
    let batch = cursor.next_batch(&table);
    use v1::ChangeKind::*;
    assert_eq!(kinds(&batch), vec![SnapshotStart, Added, Added, SnapshotEnd]);
    assert!(batch.iter().all(|c| c.revision == 2 && c.epoch == 7));
    assert_eq!(batch[0].resync_reason, i32::from(v1::ResyncReason::Initial));
    assert!(cursor.next_batch(&table).is_empty(), "nothing new, nothing sent");
}

#[test]
fn a_resumed_watch_that_is_current_gets_a_bookmark() {
    let table = table_with(2);
    let request = v1::WatchRequest { from_revision: 2, epoch: 7, filter: None };
    let mut cursor = WatchCursor::new(&request, &table).unwrap();
    let batch = cursor.next_batch(&table);
    assert_eq!(kinds(&batch), vec![v1::ChangeKind::Bookmark]);
    assert_eq!(batch[0].revision, 2);
}

#[test]
fn changes_hidden_by_the_filter_still_move_the_resume_point() {
    let mut table = table_with(1);
    let request = v1::WatchRequest {
        from_revision: 0,
        epoch: 0,
        filter: Some(v1::ListFilter { node: "node-c".into(), ..Default::default() }),
    };
    let mut cursor = WatchCursor::new(&request, &table).unwrap();
    cursor.next_batch(&table);
    table.apply(announcement(3, 1, 1, 0, 0));
    let batch = cursor.next_batch(&table);
    assert_eq!(kinds(&batch), vec![v1::ChangeKind::Bookmark]);
    assert_eq!(batch[0].revision, 2);
}

#[test]
fn another_epoch_or_a_future_revision_gets_a_resync() {
    let table = table_with(2);
    let restarted = v1::WatchRequest { from_revision: 2, epoch: 6, filter: None };
    let batch = WatchCursor::new(&restarted, &table).unwrap().next_batch(&table);
    assert_eq!(batch[0].resync_reason, i32::from(v1::ResyncReason::EpochChanged));
    let ahead = v1::WatchRequest { from_revision: 9, epoch: 7, filter: None };
    let batch = WatchCursor::new(&ahead, &table).unwrap().next_batch(&table);
    assert_eq!(batch[0].resync_reason, i32::from(v1::ResyncReason::RevisionAhead));
}

#[test]
fn a_revision_without_its_epoch_is_refused() {
    let table = table_with(1);
    let request = v1::WatchRequest { from_revision: 1, epoch: 0, filter: None };
    let error = WatchCursor::new(&request, &table).unwrap_err();
    assert_eq!(error.field, "epoch");
    assert!(error.to_string().contains("from_revision 1"), "{error}");
}

#[test]
fn a_mirror_built_from_a_list_resumes_after_it() {
    let mut table = table_with(2);
    let list = v1::ListResponse {
        announcements: expected(&table, &None),
        revision: table.revision(),
        epoch: table.epoch(),
    };
    let mut mirror = AnnouncementMirror::from_list(None, list);
    table.remove(address(0));
    let mut cursor = WatchCursor::new(&mirror.watch_request(), &table).unwrap();
    let mut deltas = Vec::new();
    for change in cursor.next_batch(&table) {
        deltas.extend(mirror.apply(change).unwrap());
    }
    assert!(matches!(&deltas[..], [Delta::Remove(a)] if a.ip == "198.51.100.128"), "{deltas:?}");
    assert_eq!(held(&mirror), expected(&table, &None));
}
