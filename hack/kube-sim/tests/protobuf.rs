//! Protobuf request bodies, as client-go's typed clients (and so `kubectl create namespace`) send
//! them for built-in kinds: encoded here with `k8s-pb`, read back as JSON through `kube`.

use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pbmeta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use kube::Client;
use kube::api::Api;
use kube_sim::{KubeSim, Options};
use prost::Message;
use serde_json::Value;

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// The body client-go sends: `k8s\0` and a `runtime.Unknown` around the object's message.
fn envelope(api_version: &str, kind: &str, object: &impl Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta { api_version: Some(api_version.into()), kind: Some(kind.into()) }),
        raw: Some(object.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = b"k8s\0".to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

/// Sends a protobuf body the way client-go does (protobuf first, JSON accepted); returns the
/// status code, the response's Content-Type and its body as JSON.
async fn send(client: &Client, method: &str, uri: &str, body: Vec<u8>) -> (u16, String, Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::CONTENT_TYPE, PROTOBUF)
        .header(http::header::ACCEPT, format!("{PROTOBUF}, application/json"))
        .body(kube::client::Body::from(body))
        .unwrap();
    let resp = client.send(req).await.unwrap();
    let code = resp.status().as_u16();
    let ct = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (code, ct, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn meta(name: &str) -> pbmeta::ObjectMeta {
    // Go's encoder writes the zero values of non-pointer fields; the apiserver ignores them.
    pbmeta::ObjectMeta {
        name: Some(name.into()),
        generate_name: Some(String::new()),
        resource_version: Some(String::new()),
        generation: Some(0),
        creation_timestamp: Some(pbmeta::Time::default()),
        labels: [("team".to_string(), "net".to_string())].into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn protobuf_bodies_create_and_update_built_in_kinds() {
    let sim = KubeSim::start(Options::default()).await.unwrap();
    let client = sim.client().await.unwrap();

    let ns = k8s_pb::api::core::v1::Namespace { metadata: Some(meta("x")), ..Default::default() };
    let (code, ct, created) =
        send(&client, "POST", "/api/v1/namespaces", envelope("v1", "Namespace", &ns)).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(ct, "application/json", "answers stay JSON, which client-go decodes by Content-Type");
    assert_eq!(created["kind"], "Namespace");
    let read = Api::<Namespace>::all(client.clone()).get("x").await.unwrap();
    assert_eq!(read.metadata.labels.unwrap()["team"], "net");
    assert!(read.metadata.uid.is_some() && read.metadata.creation_timestamp.is_some());

    let cm = k8s_pb::api::core::v1::ConfigMap {
        metadata: Some(meta("settings")),
        data: [("mode".to_string(), "l2".to_string())].into(),
        binary_data: [("blob".to_string(), vec![0, 1, 2])].into(),
        immutable: None,
    };
    let (code, _, body) =
        send(&client, "POST", "/api/v1/namespaces/x/configmaps", envelope("v1", "ConfigMap", &cm)).await;
    assert_eq!(code, 201, "{body}");
    let configmaps = Api::<ConfigMap>::namespaced(client.clone(), "x");
    let read = configmaps.get("settings").await.unwrap();
    assert_eq!(read.data.unwrap()["mode"], "l2");
    assert_eq!(read.binary_data.unwrap()["blob"].0, vec![0, 1, 2]);

    // An update (PUT) carries the resourceVersion it read.
    let mut cm = cm;
    let cm_meta = cm.metadata.as_mut().unwrap();
    cm_meta.resource_version = read.metadata.resource_version.clone();
    cm_meta.namespace = Some("x".into());
    cm.data.insert("mode".into(), "bgp".into());
    let (code, _, body) =
        send(&client, "PUT", "/api/v1/namespaces/x/configmaps/settings", envelope("v1", "ConfigMap", &cm))
            .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(configmaps.get("settings").await.unwrap().data.unwrap()["mode"], "bgp");

    // events.k8s.io/v1 Events are a view of the core ones: a protobuf body goes through the view.
    let event = k8s_pb::api::events::v1::Event {
        metadata: Some(pbmeta::ObjectMeta { namespace: Some("x".into()), ..meta("web.1") }),
        event_time: Some(pbmeta::MicroTime { seconds: Some(1_700_000_000), nanos: Some(5_000) }),
        reporting_controller: Some("ferrolb.io/controller".into()),
        reporting_instance: Some("ctrl-0".into()),
        action: Some("Allocate".into()),
        reason: Some("IPAllocated".into()),
        regarding: Some(k8s_pb::api::core::v1::ObjectReference {
            kind: Some("Service".into()),
            name: Some("web".into()),
            namespace: Some("x".into()),
            ..Default::default()
        }),
        note: Some("Assigned 198.51.100.130".into()),
        r#type: Some("Normal".into()),
        ..Default::default()
    };
    let (code, _, body) = send(
        &client,
        "POST",
        "/apis/events.k8s.io/v1/namespaces/x/events",
        envelope("events.k8s.io/v1", "Event", &event),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["eventTime"], "2023-11-14T22:13:20.000005Z", "{body}");
    let core =
        Api::<k8s_openapi::api::core::v1::Event>::namespaced(client.clone(), "x").get("web.1").await.unwrap();
    assert_eq!(core.message.as_deref(), Some("Assigned 198.51.100.130"));
    assert_eq!(core.involved_object.name.as_deref(), Some("web"));

    // DeleteOptions in protobuf: a precondition that does not hold refuses the delete.
    let opts = pbmeta::DeleteOptions {
        preconditions: Some(pbmeta::Preconditions {
            uid: Some("not-the-uid".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    let (code, _, body) = send(
        &client,
        "DELETE",
        "/api/v1/namespaces/x/configmaps/settings",
        envelope("meta.k8s.io/v1", "DeleteOptions", &opts),
    )
    .await;
    assert_eq!(code, 409, "{body}");
    let opts = pbmeta::DeleteOptions::default();
    let (code, _, body) = send(
        &client,
        "DELETE",
        "/api/v1/namespaces/x/configmaps/settings",
        envelope("meta.k8s.io/v1", "DeleteOptions", &opts),
    )
    .await;
    assert_eq!(code, 200, "{body}");
}

#[tokio::test]
async fn malformed_or_unknown_protobuf_bodies_get_a_status() {
    let sim = KubeSim::start(Options::default()).await.unwrap();
    let client = sim.client().await.unwrap();
    let status = |body: &Value, code: u16, reason: &str| {
        assert_eq!(body["kind"], "Status", "{body}");
        assert_eq!(body["code"], code, "{body}");
        assert_eq!(body["reason"], reason, "{body}");
        body["message"].as_str().unwrap().to_string()
    };

    let (code, _, body) =
        send(&client, "POST", "/api/v1/namespaces", b"{\"kind\":\"Namespace\"}".to_vec()).await;
    assert_eq!(code, 400);
    assert!(status(&body, 400, "BadRequest").contains("could not be decoded as protobuf"));

    let (code, _, body) = send(&client, "POST", "/api/v1/namespaces", b"k8s\0\x0a\xff\xff".to_vec()).await;
    assert_eq!(code, 400);
    status(&body, 400, "BadRequest");

    // A body names its kind: a Namespace sent to the ConfigMaps endpoint is not a ConfigMap.
    let ns = k8s_pb::api::core::v1::Namespace { metadata: Some(meta("y")), ..Default::default() };
    let (code, _, body) =
        send(&client, "POST", "/api/v1/namespaces/default/configmaps", envelope("v1", "Namespace", &ns))
            .await;
    assert_eq!(code, 400);
    assert!(status(&body, 400, "BadRequest").contains("kind in the data (Namespace)"));
    let lease = k8s_pb::api::coordination::v1::Lease { metadata: Some(meta("y")), ..Default::default() };
    let (code, _, body) = send(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        envelope("coordination.k8s.io/v1", "Lease", &lease),
    )
    .await;
    assert_eq!(code, 400);
    assert!(status(&body, 400, "BadRequest").contains("API version in the data (coordination.k8s.io/v1)"));

    let pod = pbmeta::ObjectMeta { name: Some("p".into()), ..Default::default() };
    let (code, _, body) =
        send(&client, "POST", "/api/v1/namespaces/default/pods", envelope("v1", "Pod", &pod)).await;
    assert_eq!(code, 415);
    assert!(status(&body, 415, "UnsupportedMediaType").contains("send Pod (v1) as application/json"));

    // Nothing was created along the way.
    let names: Vec<String> = Api::<Namespace>::all(client.clone())
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(!names.iter().any(|n| n.is_empty() || n == "p" || n == "y"), "{names:?}");
    let configmaps = Api::<ConfigMap>::namespaced(client, "default").list(&Default::default()).await.unwrap();
    assert!(configmaps.items.is_empty(), "{:?}", configmaps.items);
}
