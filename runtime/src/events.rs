//! Kubernetes Events, created directly as `events.k8s.io/v1` objects.
//!
//! kube's `Recorder` keeps every Event it sent for six minutes, to patch a repeat into the first
//! one's series, and scans that cache on every send: after the IPAM controller's start-up with
//! 10,000 Services it held 10,000 Events and each send cost a pass over them. FerroLB's loops
//! already limit repeats (one per object and reason per interval), so each Event is its own object
//! and nothing is kept once it is sent.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};

/// Creates one Event about `reference`, in its namespace (`default` for a cluster-scoped object).
pub async fn publish(
    client: &Client,
    reporter: &Reporter,
    event: &Event,
    reference: &ObjectReference,
) -> Result<(), kube::Error> {
    let namespace = reference.namespace.clone().unwrap_or_else(|| "default".into());
    let object = K8sEvent {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}.", reference.name.as_deref().unwrap_or(&reporter.controller))),
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
        related: event.secondary.clone(),
        reporting_controller: Some(reporter.controller.clone()),
        reporting_instance: Some(reporter.instance.clone().unwrap_or_else(|| reporter.controller.clone())),
        ..Default::default()
    };
    let api: Api<K8sEvent> = Api::namespaced(client.clone(), &namespace);
    api.create(&PostParams::default(), &object).await.map(drop)
}
