//! Many LoadBalancer Services at once, as the benchmarks create them: IPv6 single-stack (the
//! benches' pools are IPv6 ranges, large enough for 10,000), one TCP port, and no NodePorts
//! (10,000 Services exceed the 2,768 NodePorts of 30000-32767).

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};

/// An IPv6 single-stack LoadBalancer Service `name` with port 80 and no NodePorts.
pub fn ipv6_load_balancer(name: &str) -> Service {
    Service {
        metadata: ObjectMeta { name: Some(name.to_owned()), ..Default::default() },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ip_families: Some(vec!["IPv6".into()]),
            ip_family_policy: Some("SingleStack".into()),
            allocate_load_balancer_node_ports: Some(false),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(80)),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Creates [`ipv6_load_balancer`]s named `names` in `namespace`, `in_flight` requests at a time.
/// The first failure ends it, naming the Service.
pub async fn create_ipv6(
    client: kube::Client,
    namespace: &str,
    names: impl IntoIterator<Item = String>,
    in_flight: usize,
) -> Result<(), CreateError> {
    let api: Api<Service> = Api::namespaced(client, namespace);
    futures::stream::iter(names)
        .map(|name| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &ipv6_load_balancer(&name))
                    .await
                    .map(drop)
                    .map_err(|source| CreateError { name, source })
            }
        })
        .buffer_unordered(in_flight)
        .try_collect::<Vec<()>>()
        .await
        .map(drop)
}

/// A Service that could not be created.
#[derive(Debug, thiserror::Error)]
#[error("creating Service {name}")]
pub struct CreateError {
    pub name: String,
    #[source]
    pub source: kube::Error,
}
