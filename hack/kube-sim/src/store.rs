//! The object store: every object of every resource, one global resourceVersion counter, and an
//! ordered history of changes that watches read from (what etcd plus the watch cache are to a
//! kube-apiserver). Only plain JSON goes in and out; HTTP lives in `server`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;

use crate::error::ApiError;
use crate::resources::{ResKey, ResourceType};

/// `ADDED`, `MODIFIED` or `DELETED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as recorded in the history.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub res: ResKey,
    pub namespace: String,
    pub kind: EventType,
    pub object: Arc<Value>,
    /// The object before the change, so selector-filtered watches can turn a change that leaves
    /// the selection into `DELETED` and one that enters it into `ADDED`, as the apiserver does.
    pub previous: Option<Arc<Value>>,
}

/// `(namespace, name)`; the namespace is empty for cluster-scoped objects.
pub type ObjKey = (String, String);

/// What a history read found.
pub enum HistoryRead {
    /// Changes after the cursor (possibly none), and the new cursor.
    Changes(Vec<Arc<Change>>, u64),
    /// The cursor is older than the oldest change kept: the client must re-list.
    Expired,
}

pub struct Store {
    rv: u64,
    objects: HashMap<ResKey, BTreeMap<ObjKey, Arc<Value>>>,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Every change with `rv <= compacted` is gone from the history.
    compacted: u64,
    notify: tokio::sync::watch::Sender<u64>,
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        let (notify, _) = tokio::sync::watch::channel(1);
        Self {
            rv: 1,
            objects: HashMap::new(),
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted: 1,
            notify,
        }
    }

    /// The current resourceVersion: that of the latest change.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// A receiver woken on every change.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.notify.subscribe()
    }

    /// The resourceVersion the next change will get.
    pub fn next_rv(&self) -> u64 {
        self.rv + 1
    }

    pub fn get(&self, res: &ResKey, key: &ObjKey) -> Option<Arc<Value>> {
        self.objects.get(res)?.get(key).cloned()
    }

    /// Objects of a resource, in (namespace, name) order, optionally of one namespace, starting
    /// after `after` (for `continue`).
    pub fn range<'a>(
        &'a self,
        res: &ResKey,
        namespace: Option<&'a str>,
        after: Option<&'a ObjKey>,
    ) -> impl Iterator<Item = (&'a ObjKey, &'a Arc<Value>)> + 'a {
        use std::ops::Bound;
        let lower = match (after, namespace) {
            (Some(k), _) => Bound::Excluded(k.clone()),
            (None, Some(ns)) => Bound::Included((ns.to_string(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        self.objects
            .get(res)
            .into_iter()
            .flat_map(move |m| m.range((lower.clone(), Bound::Unbounded)))
            .take_while(move |((ns, _), _)| namespace.is_none_or(|want| ns == want))
    }

    pub fn count(&self, res: &ResKey) -> usize {
        self.objects.get(res).map_or(0, BTreeMap::len)
    }

    /// Stores `object` (whose `metadata.resourceVersion` must already be `next_rv()`), records
    /// the change and wakes watchers. `None` deletes.
    pub fn commit(
        &mut self,
        rt: &ResourceType,
        key: ObjKey,
        object: Option<Value>,
    ) -> Result<Arc<Value>, ApiError> {
        let res = rt.key();
        let map = self.objects.entry(res.clone()).or_default();
        let previous = map.get(&key).cloned();
        self.rv += 1;
        let (kind, stored) = match object {
            Some(obj) => {
                let obj = Arc::new(obj);
                map.insert(key.clone(), obj.clone());
                (if previous.is_some() { EventType::Modified } else { EventType::Added }, obj)
            }
            None => {
                let Some(old) = map.remove(&key) else {
                    self.rv -= 1;
                    return Err(ApiError::not_found(rt, &key.1));
                };
                // A deleted object is reported with the deletion's resourceVersion.
                let mut gone = (*old).clone();
                gone["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
                (EventType::Deleted, Arc::new(gone))
            }
        };
        self.history.push_back(Arc::new(Change {
            rv: self.rv,
            res,
            namespace: key.0,
            kind,
            object: stored.clone(),
            previous,
        }));
        while self.history.len() > self.history_limit {
            if let Some(c) = self.history.pop_front() {
                self.compacted = c.rv;
            }
        }
        self.notify.send_replace(self.rv);
        Ok(stored)
    }

    /// Changes with `rv > cursor`, at most `max`; `Expired` when some were compacted away.
    pub fn read_history(&self, cursor: u64, max: usize) -> HistoryRead {
        if cursor < self.compacted {
            return HistoryRead::Expired;
        }
        let start = self.history.partition_point(|c| c.rv <= cursor);
        let changes: Vec<_> = self.history.range(start..).take(max).cloned().collect();
        let next = changes.last().map_or(cursor, |c| c.rv);
        HistoryRead::Changes(changes, next)
    }

    /// Whether a watch or continue from `rv` can still be served.
    pub fn is_expired(&self, rv: u64) -> bool {
        rv < self.compacted
    }

    /// Forgets the whole history: every watch or `continue` from an earlier resourceVersion now
    /// gets 410 Gone (what etcd compaction does).
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
        self.notify.send_replace(self.rv);
    }

    /// Removes every object of a resource (its CRD was deleted), recording the deletions.
    pub fn drop_resource(&mut self, rt: &ResourceType) {
        let keys: Vec<ObjKey> =
            self.objects.get(&rt.key()).map(|m| m.keys().cloned().collect()).unwrap_or_default();
        for k in keys {
            let _ = self.commit(rt, k, None);
        }
        self.objects.remove(&rt.key());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Registry;
    use serde_json::json;

    fn svc_type() -> Arc<ResourceType> {
        Registry::builtin().get("", "v1", "services").unwrap()
    }

    fn obj(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default"}})
    }

    #[test]
    fn history_reads_and_expiry() {
        let rt = svc_type();
        let mut s = Store::new(2);
        let start = s.resource_version();
        s.commit(&rt, ("default".into(), "a".into()), Some(obj("a"))).unwrap();
        let HistoryRead::Changes(c, cursor) = s.read_history(start, 10) else { panic!() };
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].kind, EventType::Added);
        s.commit(&rt, ("default".into(), "a".into()), Some(obj("a"))).unwrap();
        s.commit(&rt, ("default".into(), "a".into()), None).unwrap();
        // Limit 2: the first change is gone, so a cursor from before it is expired.
        assert!(matches!(s.read_history(start, 10), HistoryRead::Expired));
        let HistoryRead::Changes(c, _) = s.read_history(cursor, 10) else { panic!() };
        assert_eq!(c.iter().map(|c| c.kind).collect::<Vec<_>>(), [EventType::Modified, EventType::Deleted]);
        assert_eq!(c[1].object["metadata"]["resourceVersion"], json!(s.resource_version().to_string()));
        s.compact();
        assert!(matches!(s.read_history(cursor, 10), HistoryRead::Expired));
        assert!(
            matches!(s.read_history(s.resource_version(), 10), HistoryRead::Changes(v, _) if v.is_empty())
        );
    }

    #[test]
    fn range_by_namespace_and_after() {
        let rt = svc_type();
        let mut s = Store::new(10);
        for (ns, n) in [("a", "x"), ("b", "x"), ("b", "y"), ("c", "z")] {
            s.commit(&rt, (ns.into(), n.into()), Some(json!({}))).unwrap();
        }
        let names =
            |it: Vec<(&ObjKey, &Arc<Value>)>| it.into_iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        assert_eq!(names(s.range(&rt.key(), Some("b"), None).collect()).len(), 2);
        let after = ("b".to_string(), "x".to_string());
        assert_eq!(
            names(s.range(&rt.key(), None, Some(&after)).collect()),
            [("b".into(), "y".into()), ("c".into(), "z".into())]
        );
        assert_eq!(s.range(&rt.key(), None, None).count(), 4);
    }
}
