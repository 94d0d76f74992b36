//! Kubernetes protobuf request bodies (`Content-Type: application/vnd.kubernetes.protobuf`), which
//! client-go's typed clients send for built-in kinds (`kubectl create namespace`, `kubectl create
//! secret`, ...). A body is the 4-byte magic `k8s\0` and a `runtime.Unknown` whose `typeMeta` names
//! the kind and whose `raw` is the object's message. [`decode`] turns it into the JSON object the
//! store handles, the way the apiserver's JSON encoding would print the same Go object: zero values
//! of `omitempty` fields are left out, pointer fields that were set are kept even when zero
//! (`allocateLoadBalancerNodePorts: false`), times print as RFC 3339.
//!
//! The message types are `k8s-pb`'s. Each conversion below destructures its message without `..`,
//! so a field added by a newer `k8s-pb` fails the build here instead of being dropped unseen.
//! Responses stay JSON: client-go decodes an answer by its `Content-Type`, whatever it asked for.

use base64::Engine;
use prost::Message;
use serde_json::{Map, Value};

use k8s_pb::api::coordination::v1::{Lease, LeaseSpec};
use k8s_pb::api::core::v1::{
    AttachedVolume, ClientIpConfig, ConfigMap, ConfigMapNodeConfigSource, ContainerImage, DaemonEndpoint,
    EndpointAddress, EndpointPort as CoreEndpointPort, EndpointSubset, Endpoints, Event as CoreEvent,
    EventSeries as CoreEventSeries, EventSource, LoadBalancerIngress, LoadBalancerStatus, Namespace,
    NamespaceCondition, NamespaceSpec, NamespaceStatus, Node, NodeAddress, NodeCondition, NodeConfigSource,
    NodeConfigStatus, NodeDaemonEndpoints, NodeFeatures, NodeRuntimeHandler, NodeRuntimeHandlerFeatures,
    NodeSpec, NodeStatus, NodeSwapStatus, NodeSystemInfo, ObjectReference, PortStatus, Secret, Service,
    ServicePort, ServiceSpec, ServiceStatus, SessionAffinityConfig, Taint,
};
use k8s_pb::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointHints, EndpointPort as SliceEndpointPort, EndpointSlice, ForNode,
    ForZone,
};
use k8s_pb::api::events::v1::{Event as EventsEvent, EventSeries as EventsEventSeries};
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1::{
    Condition, DeleteOptions, FieldsV1, ManagedFieldsEntry, MicroTime, ObjectMeta, OwnerReference,
    Preconditions, Time,
};
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;

use crate::error::ApiError;

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The prefix of every protobuf body (`k8s` and a zero byte).
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// Whether a `Content-Type` header names the protobuf encoding.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

/// The kinds whose protobuf bodies are decoded, as (apiVersion, kind).
pub const KINDS: &[(&str, &str)] = &[
    ("v1", "Namespace"),
    ("v1", "Service"),
    ("v1", "Node"),
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("v1", "Event"),
    ("v1", "Endpoints"),
    ("coordination.k8s.io/v1", "Lease"),
    ("discovery.k8s.io/v1", "EndpointSlice"),
    ("events.k8s.io/v1", "Event"),
    ("meta.k8s.io/v1", "DeleteOptions"),
    ("v1", "DeleteOptions"),
];

/// Decodes a protobuf request body into the JSON object it stands for (with `apiVersion` and
/// `kind` from its `typeMeta`). Malformed bodies are 400 Bad Request; kinds outside [`KINDS`] are
/// 415 Unsupported Media Type, to be sent as JSON.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let rest = body.strip_prefix(MAGIC).ok_or_else(|| {
        ApiError::bad_request(format!(
            "the body of the request could not be decoded as protobuf: it does not start with the prefix {:?} (k8s\\0)",
            MAGIC
        ))
    })?;
    let bad = |what: &str, e: prost::DecodeError| {
        ApiError::bad_request(format!(
            "the body of the request could not be decoded as protobuf: {what}: {e}"
        ))
    };
    let unknown = Unknown::decode(rest).map_err(|e| bad("runtime.Unknown", e))?;
    if let Some(enc) = unknown.content_encoding.as_deref().filter(|e| !e.is_empty()) {
        return Err(ApiError::unsupported_media_type(format!(
            "kube-sim does not decode protobuf bodies with contentEncoding {enc:?}"
        )));
    }
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    if kind.is_empty() || api_version.is_empty() {
        return Err(ApiError::bad_request(
            "the body of the request could not be decoded as protobuf: typeMeta must name apiVersion and kind",
        ));
    }
    let raw = unknown.raw.unwrap_or_default();
    fn object<M: Message + Default + ToJson>(raw: &[u8]) -> Result<Value, prost::DecodeError> {
        M::decode(raw).map(|m| m.value())
    }
    let decoded = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Namespace") => object::<Namespace>(&raw),
        ("v1", "Service") => object::<Service>(&raw),
        ("v1", "Node") => object::<Node>(&raw),
        ("v1", "Secret") => object::<Secret>(&raw),
        ("v1", "ConfigMap") => object::<ConfigMap>(&raw),
        ("v1", "Event") => object::<CoreEvent>(&raw),
        ("v1", "Endpoints") => object::<Endpoints>(&raw),
        ("coordination.k8s.io/v1", "Lease") => object::<Lease>(&raw),
        ("discovery.k8s.io/v1", "EndpointSlice") => object::<EndpointSlice>(&raw),
        ("events.k8s.io/v1", "Event") => object::<EventsEvent>(&raw),
        ("meta.k8s.io/v1" | "v1", "DeleteOptions") => object::<DeleteOptions>(&raw),
        _ => {
            let known: Vec<String> = KINDS.iter().map(|(v, k)| format!("{k} ({v})")).collect();
            return Err(ApiError::unsupported_media_type(format!(
                "kube-sim decodes protobuf bodies of {}; send {kind} ({api_version}) as application/json",
                known.join(", ")
            )));
        }
    };
    let mut obj = decoded.map_err(|e| bad(&format!("{kind} ({api_version})"), e))?;
    if let Value::Object(map) = &mut obj {
        map.insert("apiVersion".into(), Value::String(api_version));
        map.insert("kind".into(), Value::String(kind));
    }
    Ok(obj)
}

/// Checks that a decoded body is of the kind its endpoint serves. A protobuf body always names its
/// kind, and the apiserver decodes it as that kind, not as the endpoint's.
pub fn check_kind(body: &Value, api_version: &str, kind: &str) -> Result<(), ApiError> {
    let found = |f: &str| body.get(f).and_then(Value::as_str).unwrap_or_default().to_string();
    let (found_version, found_kind) = (found("apiVersion"), found("kind"));
    if found_version != api_version {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({found_version}) does not match the expected API version ({api_version})"
        )));
    }
    if found_kind != kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({found_kind}) does not match the expected kind ({kind})"
        )));
    }
    Ok(())
}

/// A protobuf value as JSON.
trait ToJson {
    /// The value as the apiserver's JSON encoding prints it.
    fn value(&self) -> Value;
    /// Whether `omitempty` leaves the field out (Go's zero value).
    fn is_zero(&self) -> bool;
}

impl ToJson for String {
    fn value(&self) -> Value {
        Value::String(self.clone())
    }
    fn is_zero(&self) -> bool {
        self.is_empty()
    }
}

impl ToJson for bool {
    fn value(&self) -> Value {
        Value::Bool(*self)
    }
    fn is_zero(&self) -> bool {
        !*self
    }
}

impl ToJson for i32 {
    fn value(&self) -> Value {
        Value::from(*self)
    }
    fn is_zero(&self) -> bool {
        *self == 0
    }
}

impl ToJson for i64 {
    fn value(&self) -> Value {
        Value::from(*self)
    }
    fn is_zero(&self) -> bool {
        *self == 0
    }
}

/// `bytes` fields are base64 in JSON (Secret `data`, ConfigMap `binaryData`).
impl ToJson for Vec<u8> {
    fn value(&self) -> Value {
        Value::String(base64::engine::general_purpose::STANDARD.encode(self))
    }
    fn is_zero(&self) -> bool {
        self.is_empty()
    }
}

impl<T: ToJson> ToJson for Option<T> {
    fn value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToJson::value)
    }
    fn is_zero(&self) -> bool {
        self.as_ref().is_none_or(ToJson::is_zero)
    }
}

impl<T: ToJson> ToJson for Vec<T> {
    fn value(&self) -> Value {
        Value::Array(self.iter().map(ToJson::value).collect())
    }
    fn is_zero(&self) -> bool {
        self.is_empty()
    }
}

impl<T: ToJson> ToJson for std::collections::BTreeMap<String, T> {
    fn value(&self) -> Value {
        Value::Object(self.iter().map(|(k, v)| (k.clone(), v.value())).collect())
    }
    fn is_zero(&self) -> bool {
        self.is_empty()
    }
}

/// `metav1.Time`: RFC 3339 to the second; the zero time is left out.
impl ToJson for Time {
    fn value(&self) -> Value {
        timestamp(self.seconds, 0).map_or(Value::Null, |t| Value::String(t.to_string()))
    }
    fn is_zero(&self) -> bool {
        self.seconds.unwrap_or(0) == 0 && self.nanos.unwrap_or(0) == 0
    }
}

/// `metav1.MicroTime`: RFC 3339 with six fractional digits.
impl ToJson for MicroTime {
    fn value(&self) -> Value {
        let micros = self.nanos.unwrap_or(0) / 1000 * 1000;
        timestamp(self.seconds, micros).map_or(Value::Null, |t| Value::String(format!("{t:.6}")))
    }
    fn is_zero(&self) -> bool {
        self.seconds.unwrap_or(0) == 0 && self.nanos.unwrap_or(0) == 0
    }
}

fn timestamp(seconds: Option<i64>, nanos: i32) -> Option<jiff::Timestamp> {
    jiff::Timestamp::new(seconds.unwrap_or(0), nanos).ok()
}

/// `intstr.IntOrString`: type 0 is the int, type 1 the string.
impl ToJson for IntOrString {
    fn value(&self) -> Value {
        match self.r#type.unwrap_or(0) {
            1 => Value::String(self.str_val.clone().unwrap_or_default()),
            _ => Value::from(self.int_val.unwrap_or(0)),
        }
    }
    fn is_zero(&self) -> bool {
        self.r#type.is_none() && self.int_val.is_none() && self.str_val.is_none()
    }
}

impl ToJson for Quantity {
    fn value(&self) -> Value {
        Value::String(self.string.clone().unwrap_or_default())
    }
    fn is_zero(&self) -> bool {
        self.string.as_deref().unwrap_or_default().is_empty()
    }
}

/// `managedFields[].fieldsV1` carries its JSON document as bytes.
impl ToJson for FieldsV1 {
    fn value(&self) -> Value {
        let raw = self.raw.as_deref().unwrap_or_default();
        serde_json::from_slice(raw).unwrap_or_else(|_| Value::Object(Map::new()))
    }
    fn is_zero(&self) -> bool {
        self.raw.as_deref().is_none_or(<[u8]>::is_empty)
    }
}

/// The JSON name of a field: the Rust name in lowerCamelCase (`generate_name` is `generateName`).
/// Names whose JSON spelling keeps an acronym in capitals are given in the tables.
fn json_name(field: &str) -> String {
    let field = field.trim_start_matches("r#");
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.push(c.to_ascii_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

/// `ToJson` for messages, one line per message: each field by name, `as "jsonName"` where the
/// camel case of the Rust name is not the JSON name, `: ptr` for Go pointer fields, which are
/// printed whenever they are set, zero or not.
macro_rules! messages {
    ($($ty:ident { $($field:ident $(as $json:literal)? $(: $ptr:ident)?),* $(,)? })*) => {$(
        impl ToJson for $ty {
            fn value(&self) -> Value {
                let $ty { $($field),* } = self;
                let mut map = Map::new();
                $(messages!(@put map, $field, messages!(@name $field $($json)?) $(, $ptr)?);)*
                Value::Object(map)
            }
            fn is_zero(&self) -> bool {
                ToJson::value(self).as_object().is_none_or(Map::is_empty)
            }
        }
    )*};
    (@name $field:ident) => { json_name(stringify!($field)) };
    (@name $field:ident $json:literal) => { String::from($json) };
    (@put $map:ident, $field:ident, $name:expr) => {
        if !$field.is_zero() {
            $map.insert($name, $field.value());
        }
    };
    (@put $map:ident, $field:ident, $name:expr, ptr) => {
        if let Some(v) = $field {
            $map.insert($name, v.value());
        }
    };
}

messages! {
    ObjectMeta {
        name, generate_name, namespace, self_link, uid, resource_version, generation, creation_timestamp,
        deletion_timestamp, deletion_grace_period_seconds: ptr, labels, annotations, owner_references,
        finalizers, managed_fields,
    }
    OwnerReference { api_version, kind, name, uid, controller: ptr, block_owner_deletion: ptr }
    ManagedFieldsEntry { manager, operation, api_version, time, fields_type, fields_v1, subresource }
    Condition { r#type, status, observed_generation, last_transition_time, reason, message }
    DeleteOptions {
        grace_period_seconds: ptr, preconditions, orphan_dependents: ptr, propagation_policy: ptr, dry_run,
        ignore_store_read_error_with_cluster_breaking_potential: ptr,
    }
    Preconditions { uid: ptr, resource_version: ptr }

    Namespace { metadata, spec, status }
    NamespaceSpec { finalizers }
    NamespaceStatus { phase, conditions }
    NamespaceCondition { r#type, status, last_transition_time, reason, message }

    Secret { metadata, immutable: ptr, data, string_data, r#type }
    ConfigMap { metadata, immutable: ptr, data, binary_data }

    Service { metadata, spec, status }
    ServiceSpec {
        ports, selector, cluster_ip as "clusterIP", cluster_ips as "clusterIPs", r#type,
        external_ips as "externalIPs", session_affinity, load_balancer_ip as "loadBalancerIP",
        load_balancer_source_ranges, external_name, external_traffic_policy, health_check_node_port,
        publish_not_ready_addresses, session_affinity_config, ip_families, ip_family_policy: ptr,
        allocate_load_balancer_node_ports: ptr, load_balancer_class: ptr, internal_traffic_policy: ptr,
        traffic_distribution: ptr,
    }
    ServicePort { name, protocol, app_protocol: ptr, port, target_port, node_port }
    SessionAffinityConfig { client_ip as "clientIP" }
    ClientIpConfig { timeout_seconds: ptr }
    ServiceStatus { load_balancer, conditions }
    LoadBalancerStatus { ingress }
    LoadBalancerIngress { ip, hostname, ip_mode: ptr, ports }
    PortStatus { port, protocol, error: ptr }

    Endpoints { metadata, subsets }
    EndpointSubset { addresses, not_ready_addresses, ports }
    EndpointAddress { ip, hostname, node_name: ptr, target_ref }
    CoreEndpointPort { name, port, protocol, app_protocol: ptr }
    ObjectReference { kind, namespace, name, uid, api_version, resource_version, field_path }

    EndpointSlice { metadata, address_type, endpoints, ports }
    Endpoint {
        addresses, conditions, hostname: ptr, target_ref, deprecated_topology, node_name: ptr, zone: ptr, hints,
    }
    EndpointConditions { ready: ptr, serving: ptr, terminating: ptr }
    EndpointHints { for_zones, for_nodes }
    ForZone { name }
    ForNode { name }
    SliceEndpointPort { name: ptr, protocol: ptr, port: ptr, app_protocol: ptr }

    Lease { metadata, spec }
    LeaseSpec {
        holder_identity: ptr, lease_duration_seconds: ptr, acquire_time, renew_time, lease_transitions: ptr,
        strategy: ptr, preferred_holder: ptr,
    }

    CoreEvent {
        metadata, involved_object, reason, message, source, first_timestamp, last_timestamp, count, r#type,
        event_time, series, action, related, reporting_component, reporting_instance,
    }
    CoreEventSeries { count, last_observed_time }
    EventSource { component, host }
    EventsEvent {
        metadata, event_time, series, reporting_controller, reporting_instance, action, reason, regarding,
        related, note, r#type, deprecated_source, deprecated_first_timestamp, deprecated_last_timestamp,
        deprecated_count,
    }
    EventsEventSeries { count, last_observed_time }

    Node { metadata, spec, status }
    NodeSpec {
        pod_cidr as "podCIDR", pod_cid_rs as "podCIDRs", provider_id as "providerID", unschedulable, taints,
        config_source, external_id as "externalID",
    }
    Taint { key, value, effect, time_added }
    NodeConfigSource { config_map }
    ConfigMapNodeConfigSource { namespace, name, uid, resource_version, kubelet_config_key }
    NodeStatus {
        capacity, allocatable, phase, conditions, addresses, daemon_endpoints, node_info, images,
        volumes_in_use, volumes_attached, config, runtime_handlers, features, declared_features,
    }
    NodeCondition { r#type, status, last_heartbeat_time, last_transition_time, reason, message }
    NodeAddress { r#type, address }
    NodeDaemonEndpoints { kubelet_endpoint }
    DaemonEndpoint { port }
    NodeSystemInfo {
        machine_id as "machineID", system_uuid as "systemUUID", boot_id as "bootID", kernel_version,
        os_image, container_runtime_version, kubelet_version, kube_proxy_version, operating_system,
        architecture, swap,
    }
    NodeSwapStatus { capacity: ptr }
    ContainerImage { names, size_bytes }
    AttachedVolume { name, device_path }
    NodeConfigStatus { assigned, active, last_known_good, error }
    NodeRuntimeHandler { name, features }
    NodeRuntimeHandlerFeatures { recursive_read_only_mounts: ptr, user_namespaces: ptr }
    NodeFeatures { supplemental_groups_policy: ptr }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::apimachinery::pkg::runtime::TypeMeta;
    use serde_json::json;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta { api_version: Some(api_version.into()), kind: Some(kind.into()) }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        body
    }

    /// Go's encoder writes every non-pointer field, zero or not: these must not show in the JSON.
    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            generate_name: Some(String::new()),
            namespace: Some(String::new()),
            self_link: Some(String::new()),
            uid: Some(String::new()),
            resource_version: Some(String::new()),
            generation: Some(0),
            creation_timestamp: Some(Time::default()),
            ..Default::default()
        }
    }

    #[test]
    fn namespace_decodes_as_the_json_encoder_prints_it() {
        let ns = Namespace {
            metadata: Some(ObjectMeta {
                labels: [("team".to_string(), "net".to_string())].into(),
                ..meta("x")
            }),
            spec: Some(NamespaceSpec::default()),
            status: Some(NamespaceStatus { phase: Some(String::new()), conditions: vec![] }),
        };
        let obj = decode(&envelope("v1", "Namespace", ns.encode_to_vec())).unwrap();
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "labels": {"team": "net"}}})
        );
    }

    #[test]
    fn services_keep_set_pointers_int_or_string_and_acronyms() {
        use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
        let svc = Service {
            metadata: Some(meta("web")),
            spec: Some(ServiceSpec {
                ports: vec![
                    ServicePort {
                        port: Some(80),
                        target_port: Some(IntOrString {
                            r#type: Some(1),
                            int_val: Some(0),
                            str_val: Some("http".into()),
                        }),
                        node_port: Some(0),
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    },
                    ServicePort {
                        port: Some(443),
                        target_port: Some(IntOrString {
                            r#type: Some(0),
                            int_val: Some(8443),
                            str_val: None,
                        }),
                        ..Default::default()
                    },
                ],
                cluster_ip: Some("10.96.0.10".into()),
                external_ips: vec!["192.0.2.1".into()],
                r#type: Some("LoadBalancer".into()),
                allocate_load_balancer_node_ports: Some(false),
                health_check_node_port: Some(0),
                publish_not_ready_addresses: Some(false),
                ..Default::default()
            }),
            status: None,
        };
        let obj = decode(&envelope("v1", "Service", svc.encode_to_vec())).unwrap();
        assert_eq!(
            obj["spec"],
            json!({
                "ports": [
                    {"port": 80, "targetPort": "http", "protocol": "TCP"},
                    {"port": 443, "targetPort": 8443},
                ],
                "clusterIP": "10.96.0.10",
                "externalIPs": ["192.0.2.1"],
                "type": "LoadBalancer",
                "allocateLoadBalancerNodePorts": false,
            })
        );
    }

    #[test]
    fn bytes_times_and_managed_fields() {
        let secret = Secret {
            metadata: Some(ObjectMeta {
                creation_timestamp: Some(Time { seconds: Some(1_700_000_000), nanos: Some(0) }),
                managed_fields: vec![ManagedFieldsEntry {
                    manager: Some("kubectl".into()),
                    fields_v1: Some(FieldsV1 { raw: Some(br#"{"f:data":{}}"#.to_vec()) }),
                    ..Default::default()
                }],
                ..meta("s")
            }),
            immutable: Some(false),
            data: [("k".to_string(), b"\x00\xffsecret".to_vec())].into(),
            string_data: Default::default(),
            r#type: Some("Opaque".into()),
        };
        let obj = decode(&envelope("v1", "Secret", secret.encode_to_vec())).unwrap();
        assert_eq!(obj["data"]["k"], "AP9zZWNyZXQ=");
        assert_eq!(obj["immutable"], false);
        assert_eq!(obj["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(
            obj["metadata"]["managedFields"][0],
            json!({"manager": "kubectl", "fieldsV1": {"f:data": {}}})
        );

        let lease = Lease {
            metadata: Some(meta("l")),
            spec: Some(LeaseSpec {
                holder_identity: Some("a".into()),
                lease_transitions: Some(0),
                renew_time: Some(MicroTime { seconds: Some(1_700_000_000), nanos: Some(123_456_789) }),
                ..Default::default()
            }),
        };
        let obj = decode(&envelope("coordination.k8s.io/v1", "Lease", lease.encode_to_vec())).unwrap();
        assert_eq!(
            obj["spec"],
            json!({"holderIdentity": "a", "leaseTransitions": 0, "renewTime": "2023-11-14T22:13:20.123456Z"})
        );
    }

    #[test]
    fn json_names() {
        assert_eq!(json_name("generate_name"), "generateName");
        assert_eq!(json_name("r#type"), "type");
        assert_eq!(json_name("fields_v1"), "fieldsV1");
        assert_eq!(
            json_name("ignore_store_read_error_with_cluster_breaking_potential"),
            "ignoreStoreReadErrorWithClusterBreakingPotential"
        );
    }

    #[test]
    fn malformed_and_unknown_bodies_are_refused() {
        let err = |body: &[u8]| decode(body).unwrap_err();
        assert_eq!(err(b"{\"kind\":\"Namespace\"}").code, 400);
        assert_eq!(err(b"k8s\0\xff\xff\xff").code, 400);
        assert_eq!(err(b"").code, 400);
        // A field of the wrong wire type inside the object.
        let e = err(&envelope("v1", "Namespace", vec![0x0a, 0x05, 0x01]));
        assert_eq!(e.code, 400);
        assert!(e.message.contains("Namespace (v1)"), "{}", e.message);
        let e = err(&envelope("v1", "", vec![]));
        assert_eq!(e.code, 400);
        let e = err(&envelope("v1", "Pod", vec![]));
        assert_eq!(e.code, 415);
        assert!(e.message.contains("send Pod (v1) as application/json"), "{}", e.message);
        let e = err(&envelope("ferrolb.io/v1alpha1", "LoadBalancerIPPool", vec![]));
        assert_eq!(e.code, 415);
        // Arbitrary bytes after the magic never panic.
        for seed in 0..2000u64 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut body = MAGIC.to_vec();
            body.extend((0..rng.usize(0..64)).map(|_| rng.u8(..)));
            let _ = decode(&body);
            let raw: Vec<u8> = (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect();
            let (v, k) = KINDS[rng.usize(..KINDS.len())];
            let _ = decode(&envelope(v, k, raw));
        }
    }

    #[test]
    fn content_types() {
        assert!(is_protobuf("application/vnd.kubernetes.protobuf"));
        assert!(is_protobuf("application/vnd.kubernetes.protobuf; charset=utf-8"));
        assert!(!is_protobuf("application/json"));
    }
}
