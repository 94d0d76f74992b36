//! The server side of `WatchAnnouncements`, without I/O: which messages a watch stream sends next,
//! given the table. The gRPC server calls [`WatchCursor::next_batch`] each time the table changes.

use crate::convert::{InvalidArgument, announcement_to_proto, change_to_proto, parse_filter};
use crate::table::{AnnouncementTable, Filter, ResumeError};
use crate::v1;

/// Where one watch stream stands.
#[derive(Clone, Debug)]
pub struct WatchCursor {
    filter: Filter,
    position: Position,
    started: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Position {
    /// The next batch is a snapshot, sent for this reason.
    Snapshot(v1::ResyncReason),
    /// The watcher has everything up to this revision.
    At(u64),
}

impl WatchCursor {
    /// A cursor for `request` against `table`: resumes after `from_revision` when the epoch is the
    /// table's, else starts with a snapshot.
    pub fn new(request: &v1::WatchRequest, table: &AnnouncementTable) -> Result<Self, InvalidArgument> {
        let filter = parse_filter(request.filter.as_ref())?;
        let position = if request.from_revision == 0 {
            Position::Snapshot(v1::ResyncReason::Initial)
        } else if request.epoch == 0 {
            return Err(InvalidArgument::new(
                "epoch",
                request.epoch,
                format!(
                    "is required with from_revision {}: pass the epoch of the ListResponse or Change that \
                     revision came from",
                    request.from_revision
                ),
            ));
        } else if request.epoch != table.epoch() {
            Position::Snapshot(v1::ResyncReason::EpochChanged)
        } else {
            Position::At(request.from_revision)
        };
        Ok(Self { filter, position, started: false })
    }

    /// The revision the watcher has everything up to, once a batch has been sent.
    pub fn revision(&self) -> Option<u64> {
        match self.position {
            Position::At(revision) if self.started => Some(revision),
            _ => None,
        }
    }

    /// The messages to send now, in order, and the cursor moved past them; empty when the watcher is
    /// current. The first batch is a snapshot or the changes after `from_revision` (then a
    /// bookmark), later batches the new changes (then a bookmark when the filter hid the last ones).
    pub fn next_batch(&mut self, table: &AnnouncementTable) -> Vec<v1::Change> {
        let from = match self.position {
            Position::Snapshot(reason) => return self.snapshot(table, reason),
            Position::At(from) => from,
        };
        let changes = match table.changes_since(from, &self.filter) {
            Ok(changes) => changes,
            Err(ResumeError::TooOld { .. }) => return self.snapshot(table, v1::ResyncReason::Compacted),
            Err(ResumeError::Ahead { .. }) => return self.snapshot(table, v1::ResyncReason::RevisionAhead),
        };
        let mut batch: Vec<v1::Change> =
            changes.iter().map(|change| change_to_proto(change, table.local_node(), table.epoch())).collect();
        let current = table.revision();
        let last_sent = batch.last().map(|change| change.revision);
        if last_sent.unwrap_or(from) < current || (!self.started && last_sent.is_none()) {
            batch.push(marker(v1::ChangeKind::Bookmark, current, table.epoch()));
        }
        self.position = Position::At(current);
        self.started = true;
        batch
    }

    fn snapshot(&mut self, table: &AnnouncementTable, reason: v1::ResyncReason) -> Vec<v1::Change> {
        let snapshot = table.snapshot(&self.filter);
        let mut start = marker(v1::ChangeKind::SnapshotStart, snapshot.revision, snapshot.epoch);
        start.resync_reason = reason.into();
        let mut batch = Vec::with_capacity(snapshot.entries.len() + 2);
        batch.push(start);
        batch.extend(snapshot.entries.iter().map(|entry| v1::Change {
            revision: snapshot.revision,
            kind: v1::ChangeKind::Added.into(),
            announcement: Some(announcement_to_proto(entry, table.local_node())),
            epoch: snapshot.epoch,
            resync_reason: v1::ResyncReason::Unspecified.into(),
        }));
        batch.push(marker(v1::ChangeKind::SnapshotEnd, snapshot.revision, snapshot.epoch));
        self.position = Position::At(snapshot.revision);
        self.started = true;
        batch
    }
}

/// A message without an announcement.
fn marker(kind: v1::ChangeKind, revision: u64, epoch: u64) -> v1::Change {
    v1::Change {
        revision,
        kind: kind.into(),
        announcement: None,
        epoch,
        resync_reason: v1::ResyncReason::Unspecified.into(),
    }
}
