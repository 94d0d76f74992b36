//! Events about Services and Nodes: how one the core decided on ([`crate::events`]) is written (an
//! `events.k8s.io/v1` Event).

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Reporter};

use super::Announcer;
use crate::datapath::Netlink;
use crate::events::{Note, Severity};

/// Creates one `events.k8s.io/v1` Event about `reference` (the same writer as the IPAM controller's).
pub(super) async fn publish_event(
    client: &Client,
    reporter: &Reporter,
    event: &Event,
    reference: &ObjectReference,
) -> Result<(), kube::Error> {
    metrics::counter!(crate::metrics::API_REQUESTS, "verb" => "create").increment(1);
    ferrolb_runtime::events::publish(client, reporter, event, reference).await
}

impl<N: Netlink + 'static> Announcer<N> {
    /// Queues one Event the core decided on, about its address's Service.
    pub(super) fn send_event(&mut self, note: &Note) {
        let key = &note.key;
        let uid = self.stores.services.get(&key.service).and_then(|s| s.uid);
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            namespace: Some(key.service.namespace.clone()),
            name: Some(key.service.name.clone()),
            uid,
            ..Default::default()
        };
        let event = Event {
            type_: match note.severity {
                Severity::Normal => EventType::Normal,
                Severity::Warning => EventType::Warning,
            },
            reason: note.reason.into(),
            note: Some(note.message.clone()),
            action: "Announce".into(),
            secondary: None,
        };
        if self.events_tx.try_send((event, reference)).is_err() {
            metrics::counter!(crate::metrics::EVENTS_DROPPED).increment(1);
        }
    }
}
