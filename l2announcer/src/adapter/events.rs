//! Events about Services and Nodes: how one the core decided on ([`crate::events`]) is written (an
//! `events.k8s.io/v1` Event).

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};

use super::Announcer;
use super::cache::ObjectName;
use crate::events::{Note, Severity};

/// Creates one `events.k8s.io/v1` Event about `reference`.
pub(super) async fn publish_event(
    client: &Client,
    reporter: &Reporter,
    event: &Event,
    reference: &ObjectReference,
) -> Result<(), kube::Error> {
    use k8s_openapi::api::events::v1::Event as K8sEvent;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    let namespace = reference.namespace.clone().unwrap_or_else(|| "default".into());
    let object = K8sEvent {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}.", reference.name.as_deref().unwrap_or("ferrolb"))),
            namespace: Some(namespace.clone()),
            ..Default::default()
        },
        event_time: Some(MicroTime(Timestamp::now())),
        action: Some(event.action.clone()),
        reason: Some(event.reason.clone()),
        note: event.note.clone(),
        type_: Some(match event.type_ {
            EventType::Normal => "Normal".into(),
            EventType::Warning => "Warning".into(),
        }),
        regarding: Some(reference.clone()),
        reporting_controller: Some(reporter.controller.clone()),
        reporting_instance: reporter.instance.clone(),
        ..Default::default()
    };
    let api: Api<K8sEvent> = Api::namespaced(client.clone(), &namespace);
    metrics::counter!(crate::metrics::API_REQUESTS, "verb" => "create").increment(1);
    api.create(&PostParams::default(), &object).await.map(|_| ())
}

impl Announcer {
    /// Queues one Event the core decided on, about its address's Service.
    pub(super) fn send_event(&mut self, note: &Note) {
        let key = &note.key;
        let uid = self
            .stores
            .services
            .get(&ObjectName::new(&key.service.namespace, &key.service.name))
            .and_then(|s| s.uid);
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
