//! The datapath view of a watch stream, without I/O: [`DeltaDecoder`] feeds the stream's messages to
//! ferrolb-proto's [`AnnouncementMirror`] (which keeps the resume point) and says what changed for
//! the addresses this node holds, as typed [`Delta`]s.

use std::net::IpAddr;

use ferrolb_proto::v1;
use ferrolb_proto::{AnnouncementMirror, mirror};

use crate::announced::{Announced, Malformed};

/// Why the announcer sent a full snapshot instead of the changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResyncReason {
    /// The first watch of this stream (or of a decoder started again after a broken stream).
    Initial,
    /// The watcher fell behind the announcer's bounded change log.
    Compacted,
    /// The announcer restarted: revisions start again in a new epoch.
    EpochChanged,
    /// The watcher's revision was ahead of the announcer's.
    RevisionAhead,
}

impl ResyncReason {
    fn from_wire(reason: i32) -> Self {
        match v1::ResyncReason::try_from(reason) {
            Ok(v1::ResyncReason::Compacted) => Self::Compacted,
            Ok(v1::ResyncReason::EpochChanged) => Self::EpochChanged,
            Ok(v1::ResyncReason::RevisionAhead) => Self::RevisionAhead,
            // Unknown reasons from a newer announcer are still a full snapshot.
            _ => Self::Initial,
        }
    }

    /// A short, fixed label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::Compacted => "compacted",
            Self::EpochChanged => "epoch_changed",
            Self::RevisionAhead => "revision_ahead",
        }
    }
}

/// A change to the set of addresses this node holds: the work for a datapath.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delta {
    /// This node now holds the address: program it.
    Acquired(Announced),
    /// An address this node holds changed (Services, interfaces, since): program the new state and
    /// report on its revision.
    Changed {
        /// What it was.
        previous: Announced,
        /// What it is.
        current: Announced,
    },
    /// This node no longer holds the address: remove it. The announcement is its last state.
    Released(Announced),
    /// The announcer sent its full state (first watch, announcer restarted, watcher too far
    /// behind): the node holds exactly `held`. `released` lists what the stream's consumer held
    /// before and is not in `held`, for consumers that act on changes rather than states; an
    /// announcer restart also forgets the agent's earlier programming reports, so report on
    /// everything in `held` again.
    Resync {
        /// Why.
        reason: ResyncReason,
        /// Every address this node holds, sorted by address.
        held: Vec<Announced>,
        /// Addresses held before the snapshot and not in it.
        released: Vec<Announced>,
    },
}

impl Delta {
    /// The address, for a delta about one address.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Self::Acquired(a) | Self::Released(a) | Self::Changed { current: a, .. } => Some(a.ip),
            Self::Resync { .. } => None,
        }
    }
}

/// A stream message the decoder could not apply: the watch must start again from a snapshot
/// ([`DeltaDecoder::restart`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The stream broke the watch protocol's rules.
    #[error(transparent)]
    Protocol(#[from] mirror::MirrorError),
    /// An announcement could not be read.
    #[error(transparent)]
    Malformed(#[from] Malformed),
}

/// What a watch stream's messages mean for this node's datapath. Holds the mirror (so a new stream
/// resumes where the last one stopped) and the reason of a snapshot being received.
#[derive(Clone, Debug)]
pub struct DeltaDecoder {
    filter: v1::ListFilter,
    mirror: AnnouncementMirror,
    snapshot_reason: Option<ResyncReason>,
}

impl DeltaDecoder {
    /// A decoder for the addresses this node holds that also match `filter` (its `only_local` is
    /// forced on, and `node` cleared: the announcer answering is the one on this node).
    pub fn new(filter: v1::ListFilter) -> Self {
        let filter = v1::ListFilter { only_local: true, node: String::new(), ..filter };
        Self { mirror: AnnouncementMirror::new(Some(filter.clone())), filter, snapshot_reason: None }
    }

    /// The request that starts the next stream: from the last revision applied, or a snapshot.
    pub fn watch_request(&mut self) -> v1::WatchRequest {
        self.snapshot_reason = None;
        self.mirror.watch_request()
    }

    /// Forgets the resume point: the next stream starts with a snapshot, whose `Resync` releases
    /// whatever is not in it. For a stream that broke the protocol's rules.
    pub fn restart(&mut self) {
        let held = std::mem::replace(&mut self.mirror, AnnouncementMirror::new(Some(self.filter.clone())));
        // The consumer still holds the old state: keep it, so that the next snapshot's `released`
        // lists what went away. A mirror from a list at revision 0 asks for a snapshot.
        let list = v1::ListResponse {
            // An address that did not parse made the stream fail; keeping it would fail the next
            // snapshot's `released` again.
            announcements: held.announcements().filter(|a| a.ip.parse::<IpAddr>().is_ok()).cloned().collect(),
            revision: 0,
            epoch: 0,
        };
        self.mirror = AnnouncementMirror::from_list(Some(self.filter.clone()), list);
        self.snapshot_reason = None;
    }

    /// The epoch of the announcer followed (0 before the first snapshot).
    pub fn epoch(&self) -> u64 {
        self.mirror.epoch()
    }

    /// The revision the decoder is complete up to: resuming asks for the changes after it.
    pub fn revision(&self) -> u64 {
        self.mirror.revision()
    }

    /// Whether a snapshot has been received completely at least once: `held` means something.
    pub fn synced(&self) -> bool {
        self.mirror.epoch() != 0
    }

    /// The addresses this node holds now.
    pub fn held(&self) -> impl Iterator<Item = &v1::Announcement> {
        self.mirror.announcements()
    }

    /// Applies one stream message; returns the deltas it makes (none inside a snapshot, one
    /// `Resync` at its end).
    pub fn apply(&mut self, change: v1::Change) -> Result<Vec<Delta>, DecodeError> {
        let kind = v1::ChangeKind::try_from(change.kind).ok();
        if kind == Some(v1::ChangeKind::SnapshotStart) {
            self.snapshot_reason = Some(ResyncReason::from_wire(change.resync_reason));
        }
        if kind == Some(v1::ChangeKind::SnapshotEnd) {
            let reason = self.snapshot_reason.take().unwrap_or(ResyncReason::Initial);
            let mut released = Vec::new();
            for delta in self.mirror.apply(change)? {
                if let mirror::Delta::Remove(last) = delta {
                    released.push(Announced::try_from(last)?);
                }
            }
            let held =
                self.mirror.announcements().cloned().map(Announced::try_from).collect::<Result<_, _>>()?;
            return Ok(vec![Delta::Resync { reason, held, released }]);
        }
        let previous = change.announcement.as_ref().and_then(|a| self.mirror.get(&a.ip)).cloned();
        let in_snapshot = self.mirror.in_snapshot();
        let deltas = self.mirror.apply(change)?;
        if in_snapshot {
            return Ok(Vec::new());
        }
        deltas
            .into_iter()
            .map(|delta| {
                Ok(match (delta, previous.clone()) {
                    (mirror::Delta::Upsert(current), None) => Delta::Acquired(current.try_into()?),
                    (mirror::Delta::Upsert(current), Some(previous)) => {
                        Delta::Changed { previous: previous.try_into()?, current: current.try_into()? }
                    }
                    (mirror::Delta::Remove(last), _) => Delta::Released(last.try_into()?),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPOCH: u64 = 41;

    fn announcement(ip: &str, revision: u64, interface: &str) -> v1::Announcement {
        v1::Announcement {
            ip: ip.into(),
            node: "node-a".into(),
            local: true,
            interfaces: vec![interface.into()],
            revision,
            ..Default::default()
        }
    }

    fn change(kind: v1::ChangeKind, revision: u64, announcement: Option<v1::Announcement>) -> v1::Change {
        v1::Change { revision, kind: kind.into(), announcement, epoch: EPOCH, resync_reason: 0 }
    }

    fn snapshot(
        epoch: u64,
        revision: u64,
        reason: v1::ResyncReason,
        items: &[v1::Announcement],
    ) -> Vec<v1::Change> {
        let mut start = change(v1::ChangeKind::SnapshotStart, revision, None);
        start.resync_reason = reason.into();
        let mut stream = vec![start];
        stream.extend(items.iter().map(|a| change(v1::ChangeKind::Added, revision, Some(a.clone()))));
        stream.push(change(v1::ChangeKind::SnapshotEnd, revision, None));
        for message in &mut stream {
            message.epoch = epoch;
        }
        stream
    }

    fn feed(decoder: &mut DeltaDecoder, stream: Vec<v1::Change>) -> Vec<Delta> {
        stream.into_iter().flat_map(|c| decoder.apply(c).unwrap()).collect()
    }

    fn ips(list: &[Announced]) -> Vec<String> {
        list.iter().map(|a| a.ip.to_string()).collect()
    }

    #[test]
    fn changes_after_a_snapshot_become_acquired_changed_released() {
        let mut decoder = DeltaDecoder::new(v1::ListFilter::default());
        assert!(decoder.watch_request().filter.unwrap().only_local, "the decoder only follows this node");
        assert!(!decoder.synced());
        let deltas = feed(
            &mut decoder,
            snapshot(EPOCH, 3, v1::ResyncReason::Initial, &[announcement("198.51.100.200", 3, "eth0")]),
        );
        let [Delta::Resync { reason: ResyncReason::Initial, held, released }] = &deltas[..] else {
            panic!("{deltas:?}")
        };
        assert_eq!((ips(held), released.len()), (vec!["198.51.100.200".to_string()], 0));
        assert!(decoder.synced());

        let added = announcement("2001:db8:100::1000", 4, "eth0");
        let moved = announcement("198.51.100.200", 5, "eth1");
        let deltas = feed(
            &mut decoder,
            vec![
                change(v1::ChangeKind::Added, 4, Some(added.clone())),
                change(v1::ChangeKind::Updated, 5, Some(moved.clone())),
                change(v1::ChangeKind::Removed, 6, Some(added.clone())),
                change(v1::ChangeKind::Bookmark, 9, None),
            ],
        );
        assert!(matches!(&deltas[0], Delta::Acquired(a) if a.revision == 4 && a.ip.is_ipv6()));
        let Delta::Changed { previous, current } = &deltas[1] else { panic!("{deltas:?}") };
        assert_eq!(
            (previous.interfaces.clone(), current.interfaces.clone()),
            (vec!["eth0".into()], vec!["eth1".into()])
        );
        assert!(matches!(&deltas[2], Delta::Released(a) if a.ip.is_ipv6()));
        assert_eq!(deltas.len(), 3, "a bookmark changes nothing");
        assert_eq!(decoder.revision(), 9, "but moves the resume point");
        let resume = decoder.watch_request();
        assert_eq!((resume.from_revision, resume.epoch), (9, EPOCH));
    }

    #[test]
    fn a_restarted_announcer_gives_a_resync_with_what_went_away() {
        let mut decoder = DeltaDecoder::new(v1::ListFilter::default());
        let first = [announcement("198.51.100.200", 1, "eth0"), announcement("198.51.100.201", 2, "eth0")];
        feed(&mut decoder, snapshot(EPOCH, 2, v1::ResyncReason::Initial, &first));
        // The new process counts revisions from 1 again, in another epoch.
        let deltas = feed(
            &mut decoder,
            snapshot(
                EPOCH + 1,
                1,
                v1::ResyncReason::EpochChanged,
                &[announcement("198.51.100.201", 1, "eth0")],
            ),
        );
        let [Delta::Resync { reason: ResyncReason::EpochChanged, held, released }] = &deltas[..] else {
            panic!("{deltas:?}")
        };
        assert_eq!(ips(held), vec!["198.51.100.201"]);
        assert_eq!(ips(released), vec!["198.51.100.200"]);
        assert_eq!((decoder.epoch(), decoder.revision()), (EPOCH + 1, 1));
    }

    #[test]
    fn restart_asks_for_a_snapshot_and_remembers_what_the_consumer_holds() {
        let mut decoder = DeltaDecoder::new(v1::ListFilter::default());
        feed(
            &mut decoder,
            snapshot(EPOCH, 1, v1::ResyncReason::Initial, &[announcement("198.51.100.200", 1, "eth0")]),
        );
        // A change from another epoch without a snapshot breaks the rules.
        let mut foreign = change(v1::ChangeKind::Added, 2, Some(announcement("198.51.100.9", 2, "eth0")));
        foreign.epoch = 77;
        assert!(matches!(decoder.apply(foreign), Err(DecodeError::Protocol(_))));
        decoder.restart();
        assert_eq!(decoder.watch_request().from_revision, 0, "a snapshot is asked for");
        let deltas = feed(&mut decoder, snapshot(EPOCH, 5, v1::ResyncReason::Initial, &[]));
        let [Delta::Resync { held, released, .. }] = &deltas[..] else { panic!("{deltas:?}") };
        assert!(held.is_empty());
        assert_eq!(ips(released), vec!["198.51.100.200"]);
    }

    #[test]
    fn a_malformed_address_is_an_error_not_a_delta() {
        let mut decoder = DeltaDecoder::new(v1::ListFilter::default());
        feed(&mut decoder, snapshot(EPOCH, 1, v1::ResyncReason::Initial, &[]));
        let bad = change(v1::ChangeKind::Added, 2, Some(announcement("not-an-ip", 2, "eth0")));
        assert!(matches!(decoder.apply(bad), Err(DecodeError::Malformed(_))));
    }
}
