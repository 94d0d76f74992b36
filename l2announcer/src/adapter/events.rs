//! Events about Services and Nodes: which the announcer sends after a round, and how one is written
//! (an `events.k8s.io/v1` Event).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use ferrolb_api::names::events as reasons;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};

use super::Announcer;
use super::cache::ObjectName;
use crate::candidates::NodeState;
use crate::engine::Plan;
use crate::policy::{AddressKey, ServiceInput, ServiceKey};

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
    pub(super) fn emit_events(&mut self, plan: &Plan, services: &[Arc<ServiceInput>], nodes: &[NodeState]) {
        let now = Instant::now();
        let me = self.me().to_owned();
        let mut answering: BTreeMap<AddressKey, Vec<String>> = BTreeMap::new();
        for a in plan.addresses.iter().filter(|a| a.answering) {
            answering.insert(a.key.clone(), a.interfaces.clone());
        }
        let mut events: Vec<(AddressKey, EventType, &'static str, String)> = Vec::new();
        for (key, ifaces) in &answering {
            if self.answering.get(key) != Some(ifaces) {
                let msg = format!("{me} announces {} on {}", key.address, ifaces.join(", "));
                events.push((key.clone(), EventType::Normal, reasons::ANNOUNCING, msg));
            }
        }
        let existing: HashSet<&ServiceKey> = services.iter().map(|s| &s.key).collect();
        for key in self.answering.keys() {
            if !answering.contains_key(key) && existing.contains(&key.service) {
                let holder = plan
                    .addresses
                    .iter()
                    .find(|a| &a.key == key)
                    .and_then(|a| a.holder.clone())
                    .map_or_else(|| "no holder yet".to_owned(), |h| format!("now held by {h}"));
                let msg = format!("{me} stopped announcing {} ({holder})", key.address);
                events.push((key.clone(), EventType::Normal, reasons::NOT_ANNOUNCING, msg));
            }
        }
        self.answering = answering;
        let reporter = self.is_reporter(nodes);
        let mut why_now = HashMap::new();
        for a in &plan.addresses {
            if let Some(why) = &a.why_none {
                if reporter && self.why_none.get(&a.key) != Some(why) {
                    let msg = format!("nobody announces {}: {why}", a.key.address);
                    events.push((a.key.clone(), EventType::Warning, reasons::NOT_ANNOUNCING, msg));
                }
                why_now.insert(a.key.clone(), why.clone());
            }
        }
        self.why_none = why_now;
        for (key, type_, reason, note) in events {
            self.send_event(&key, type_, reason, note, now);
        }
        if self.last_event.len() > 4 * (plan.addresses.len() + 16) {
            let interval = self.settings.event_interval;
            self.last_event.retain(|_, t| now < *t + interval);
        }
    }

    /// Queues one Event about `key`'s Service.
    pub(super) fn send_event(
        &mut self,
        key: &AddressKey,
        type_: EventType,
        reason: &'static str,
        note: String,
        now: Instant,
    ) {
        {
            // Warnings repeat while the cause lasts and are limited per (address, reason); the
            // Normal Events mark changes of this node's own answering and all go out (so they need
            // no entry here: 10,000 addresses taken over would otherwise keep 10,000 entries).
            if type_ == EventType::Warning {
                let slot = (key.clone(), reason);
                if self.last_event.get(&slot).is_some_and(|t| now < *t + self.settings.event_interval) {
                    return;
                }
                self.last_event.insert(slot, now);
            }
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
                type_,
                reason: reason.into(),
                note: Some(note),
                action: "Announce".into(),
                secondary: None,
            };
            if self.events_tx.try_send((event, reference)).is_err() {
                metrics::counter!(crate::metrics::EVENTS_DROPPED).increment(1);
            }
        }
    }
}
