//! The client side of `WatchAnnouncements`, without I/O: a CNI agent's copy of the announcer's table,
//! kept by applying the stream's messages, with the resume point to reconnect from.

use std::collections::BTreeMap;

use crate::v1;

/// What changed in a mirror: the datapath work for a CNI agent.
#[derive(Clone, Debug, PartialEq)]
pub enum Delta {
    /// Program (or re-program) this announcement.
    Upsert(v1::Announcement),
    /// Stop handling this address; the announcement is its last known state.
    Remove(v1::Announcement),
}

/// A watch stream message that the mirror cannot apply: the stream broke its rules.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MirrorError {
    /// A change without an announcement, or a message of unknown kind.
    #[error("malformed change at revision {revision}: {what}")]
    Malformed {
        /// The message's revision.
        revision: u64,
        /// What is wrong.
        what: String,
    },
    /// A change from another epoch than the mirror's, outside a snapshot.
    #[error("change of epoch {got} in a stream of epoch {expected} without a snapshot")]
    EpochMismatch {
        /// The mirror's epoch.
        expected: u64,
        /// The message's.
        got: u64,
    },
    /// A revision lower than one already applied.
    #[error("revision {got} after revision {after}")]
    OutOfOrder {
        /// The revision already applied.
        after: u64,
        /// The message's.
        got: u64,
    },
}

/// A watcher's copy of the announcements that match its filter, keyed by address text.
#[derive(Clone, Debug, Default)]
pub struct AnnouncementMirror {
    epoch: u64,
    revision: u64,
    filter: Option<v1::ListFilter>,
    announcements: BTreeMap<String, v1::Announcement>,
    /// A snapshot being received: applied to `announcements` at its end.
    pending: Option<BTreeMap<String, v1::Announcement>>,
}

impl AnnouncementMirror {
    /// An empty mirror for `filter` (`None`: everything); its first watch asks for a snapshot.
    pub fn new(filter: Option<v1::ListFilter>) -> Self {
        Self { filter, ..Self::default() }
    }

    /// A mirror holding a `ListAnnouncements` answer for `filter`; its first watch resumes after it.
    pub fn from_list(filter: Option<v1::ListFilter>, list: v1::ListResponse) -> Self {
        Self {
            epoch: list.epoch,
            revision: list.revision,
            filter,
            announcements: list.announcements.into_iter().map(|a| (a.ip.clone(), a)).collect(),
            pending: None,
        }
    }

    /// The request that (re)starts the watch from the last revision applied. Call it for every new
    /// stream: it drops a snapshot that an earlier stream left unfinished.
    pub fn watch_request(&mut self) -> v1::WatchRequest {
        self.pending = None;
        v1::WatchRequest { from_revision: self.revision, epoch: self.epoch, filter: self.filter.clone() }
    }

    /// The epoch of the announcer the mirror follows (0 before the first message).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The revision the mirror is complete up to (0 before the first snapshot).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Whether a snapshot is being received.
    pub fn in_snapshot(&self) -> bool {
        self.pending.is_some()
    }

    /// The announcement of `ip` (canonical text).
    pub fn get(&self, ip: &str) -> Option<&v1::Announcement> {
        self.announcements.get(ip)
    }

    /// Every announcement, by address text.
    pub fn announcements(&self) -> impl Iterator<Item = &v1::Announcement> {
        self.announcements.values()
    }

    /// Applies one message of the stream and returns what changed: nothing inside a snapshot, the
    /// difference between the old and the new state at its end.
    pub fn apply(&mut self, change: v1::Change) -> Result<Vec<Delta>, MirrorError> {
        let kind = v1::ChangeKind::try_from(change.kind).map_err(|_| MirrorError::Malformed {
            revision: change.revision,
            what: format!("unknown kind {}", change.kind),
        })?;
        match kind {
            v1::ChangeKind::SnapshotStart => {
                self.pending = Some(BTreeMap::new());
                return Ok(Vec::new());
            }
            v1::ChangeKind::SnapshotEnd => {
                let Some(snapshot) = self.pending.take() else {
                    return Err(MirrorError::Malformed {
                        revision: change.revision,
                        what: "SNAPSHOT_END without SNAPSHOT_START".into(),
                    });
                };
                let old = std::mem::replace(&mut self.announcements, snapshot);
                self.epoch = change.epoch;
                self.revision = change.revision;
                return Ok(diff(&old, &self.announcements));
            }
            _ => {}
        }
        if let Some(pending) = &mut self.pending {
            let announcement = announcement_of(&change)?;
            if kind != v1::ChangeKind::Added {
                return Err(MirrorError::Malformed {
                    revision: change.revision,
                    what: format!("{} inside a snapshot", kind.as_str_name()),
                });
            }
            pending.insert(announcement.ip.clone(), announcement);
            return Ok(Vec::new());
        }
        if change.epoch != self.epoch {
            return Err(MirrorError::EpochMismatch { expected: self.epoch, got: change.epoch });
        }
        if change.revision < self.revision {
            return Err(MirrorError::OutOfOrder { after: self.revision, got: change.revision });
        }
        let delta = match kind {
            v1::ChangeKind::Added | v1::ChangeKind::Updated => {
                let announcement = announcement_of(&change)?;
                self.announcements.insert(announcement.ip.clone(), announcement.clone());
                vec![Delta::Upsert(announcement)]
            }
            v1::ChangeKind::Removed => {
                let announcement = announcement_of(&change)?;
                self.announcements.remove(&announcement.ip);
                vec![Delta::Remove(announcement)]
            }
            v1::ChangeKind::Bookmark => Vec::new(),
            _ => {
                return Err(MirrorError::Malformed {
                    revision: change.revision,
                    what: format!("unexpected kind {}", kind.as_str_name()),
                });
            }
        };
        self.revision = change.revision;
        Ok(delta)
    }
}

fn announcement_of(change: &v1::Change) -> Result<v1::Announcement, MirrorError> {
    change
        .announcement
        .clone()
        .ok_or_else(|| MirrorError::Malformed { revision: change.revision, what: "no announcement".into() })
}

/// What turns `old` into `new`, removals first.
fn diff(old: &BTreeMap<String, v1::Announcement>, new: &BTreeMap<String, v1::Announcement>) -> Vec<Delta> {
    let removed = old.iter().filter(|(ip, _)| !new.contains_key(*ip)).map(|(_, a)| Delta::Remove(a.clone()));
    let upserted = new
        .iter()
        .filter(|(ip, announcement)| old.get(*ip) != Some(announcement))
        .map(|(_, a)| Delta::Upsert(a.clone()));
    removed.chain(upserted).collect()
}
