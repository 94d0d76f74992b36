//! Events: one store, two views. kube-apiserver keeps `events.k8s.io/v1` Events and core `v1`
//! Events in the same storage and converts between them, so an Event created through either API is
//! listed, watched and patched through both (`kubectl get events` shows what kube's `Recorder`
//! created through `events.k8s.io`). The simulator stores the core form and converts the
//! `events.k8s.io/v1` view on the way in and out, with the field renames of Kubernetes'
//! `events/v1` conversion.

use serde_json::{Map, Value};

use crate::resources::ResourceType;

/// `events.k8s.io/v1` name → core `v1` name, for the fields the two name differently.
const RENAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// Whether `rt` is the `events.k8s.io/v1` view, served from the core Events' store.
pub fn is_events_view(rt: &ResourceType) -> bool {
    rt.group == "events.k8s.io" && rt.kind == "Event"
}

fn rename(obj: &Value, api_version: &str, from_view: bool) -> Value {
    let Value::Object(map) = obj else { return obj.clone() };
    let mut out = Map::with_capacity(map.len());
    for (k, v) in map {
        let renamed = RENAMES.iter().find_map(|(view, core)| {
            let (from, to) = if from_view { (view, core) } else { (core, view) };
            (k == from).then_some(*to)
        });
        out.insert(renamed.unwrap_or(k).to_string(), v.clone());
    }
    out.insert("apiVersion".into(), Value::from(api_version));
    out.insert("kind".into(), Value::from("Event"));
    Value::Object(out)
}

/// The stored (core `v1`) form of an `events.k8s.io/v1` Event.
pub fn to_core(view: &Value) -> Value {
    rename(view, "v1", true)
}

/// The `events.k8s.io/v1` view of a stored Event.
pub fn to_view(core: &Value) -> Value {
    rename(core, "events.k8s.io/v1", false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_two_forms_convert_both_ways() {
        let view = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "default"},
            "eventTime": "2026-12-03T20:00:00.000000Z", "reportingController": "ferrolb.io/ipam",
            "reportingInstance": "ipam-1", "action": "Allocate", "reason": "IPAllocated",
            "regarding": {"kind": "Service", "name": "web", "namespace": "default"},
            "note": "198.51.100.128", "type": "Normal", "deprecatedCount": 2,
            "series": {"count": 2, "lastObservedTime": "2026-12-03T20:00:01.000000Z"}
        });
        let core = to_core(&view);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "web");
        assert_eq!(core["message"], "198.51.100.128");
        assert_eq!(core["reportingComponent"], "ferrolb.io/ipam");
        assert_eq!(core["count"], 2);
        assert_eq!(core["series"]["count"], 2);
        assert!(core.get("regarding").is_none() && core.get("note").is_none());
        assert_eq!(to_view(&core), view, "back to the same view");
    }
}
