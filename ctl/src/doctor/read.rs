//! Reads the [`Snapshot`] `doctor` diagnoses. Decides nothing: kinds the cluster does not serve
//! (FerroLB's CRDs before installation, apps/v1 on a test API server) and objects that do not exist
//! are read as absent; any other API error stops the command.

use std::collections::BTreeSet;

use ferrolb_api::{L2AnnouncementPolicy, LoadBalancerIPPool, names, preflight};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams};
use kube::{Resource, ResourceExt as _};
use serde::de::DeserializeOwned;

use super::Snapshot;
use super::checks::{SERVICELB_SVCNAME_LABEL, served};
use crate::cluster::{Cluster, ClusterError, is_not_found};

/// Every object the checks need. `namespace` is FerroLB's; `default_class` and
/// `load_balancer_classes` mirror `ferrolb-ipam --default-class` and `--load-balancer-classes`.
pub async fn snapshot(
    cluster: &Cluster,
    namespace: &str,
    default_class: bool,
    load_balancer_classes: std::collections::BTreeSet<String>,
) -> Result<Snapshot, ClusterError> {
    let client = &cluster.client;
    let mut s = Snapshot {
        namespace: namespace.to_owned(),
        default_class,
        load_balancer_classes,
        ..Snapshot::default()
    };

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for want in ferrolb_api::crd::all() {
        let name = want.metadata.name.unwrap_or_default();
        if let Some(crd) =
            get(cluster, &crds, &name, format!("reading CustomResourceDefinition {name}")).await?
        {
            s.crds.push(crd);
        }
    }

    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    s.ipam_lease = get(
        cluster,
        &leases,
        names::IPAM_LEASE_NAME,
        format!("reading Lease {namespace}/{}", names::IPAM_LEASE_NAME),
    )
    .await?;
    let prefix = names::leases::node_heartbeat("");
    s.heartbeats =
        list(cluster, &leases, &ListParams::default(), &format!("listing leases in namespace {namespace}"))
            .await?
            .unwrap_or_default()
            .into_iter()
            .filter(|l| l.name_any().starts_with(&prefix))
            .collect();

    s.nodes = list_all::<Node>(cluster, client, &ListParams::default()).await?.unwrap_or_default();
    s.pools = list_all::<LoadBalancerIPPool>(cluster, client, &ListParams::default()).await?;
    s.policies = list_all::<L2AnnouncementPolicy>(cluster, client, &ListParams::default()).await?;
    s.services = list_all::<Service>(cluster, client, &ListParams::default())
        .await?
        .unwrap_or_default()
        .into_iter()
        .filter(|svc| svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer"))
        .collect();

    // Events only where a served Service waits for an address; EndpointSlices only of the
    // externalTrafficPolicy: Local ones.
    let mut waiting_namespaces = BTreeSet::new();
    let mut local = BTreeSet::new();
    for svc in s.services.iter().filter(|svc| served(&s, svc)) {
        let ns = svc.namespace().unwrap_or_default();
        let has_ip = svc
            .status
            .as_ref()
            .and_then(|st| st.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .is_some_and(|i| i.iter().any(|x| x.ip.is_some()));
        if !has_ip {
            waiting_namespaces.insert(ns.clone());
        }
        if svc.spec.as_ref().and_then(|s| s.external_traffic_policy.as_deref()) == Some("Local") {
            local.insert((ns, svc.name_any()));
        }
    }
    for ns in &waiting_namespaces {
        let events: Api<Event> = Api::namespaced(client.clone(), ns);
        s.events.extend(
            list(
                cluster,
                &events,
                &ListParams::default(),
                &format!("listing events.events.k8s.io in namespace {ns}"),
            )
            .await?
            .unwrap_or_default(),
        );
    }
    for (ns, name) in &local {
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
        let params = ListParams::default().labels(&format!("kubernetes.io/service-name={name}"));
        s.endpoint_slices.extend(
            list(cluster, &slices, &params, &format!("listing endpointslices in namespace {ns}"))
                .await?
                .unwrap_or_default(),
        );
    }

    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), "kube-system");
    let kube_system_daemonsets =
        list(cluster, &daemonsets, &ListParams::default(), "listing daemonsets in namespace kube-system")
            .await?
            .unwrap_or_default();
    s.kube_proxy_daemonset =
        kube_system_daemonsets.iter().find(|d| d.name_any() == preflight::KUBE_PROXY_NAME).cloned();
    s.servicelb_daemonsets =
        kube_system_daemonsets.into_iter().filter(|d| d.name_any().starts_with("svclb-")).collect();
    s.servicelb_pods =
        list_all::<Pod>(cluster, client, &ListParams::default().labels(SERVICELB_SVCNAME_LABEL))
            .await?
            .unwrap_or_default();

    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    s.kube_proxy =
        get(cluster, &configmaps, "kube-proxy", "reading ConfigMap kube-system/kube-proxy".into()).await?;
    s.cilium_config = get(
        cluster,
        &configmaps,
        preflight::CILIUM_CONFIG_NAME,
        "reading ConfigMap kube-system/cilium-config".into(),
    )
    .await?;
    Ok(s)
}

/// One object; `None` when it or its kind does not exist.
async fn get<K>(cluster: &Cluster, api: &Api<K>, name: &str, what: String) -> Result<Option<K>, ClusterError>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.get(name).await {
        Ok(obj) => Ok(Some(obj)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(cluster.fail(what, &e)),
    }
}

/// Every object of a kind in all namespaces (or cluster-wide); `None` when the kind is not served.
async fn list_all<K>(
    cluster: &Cluster,
    client: &kube::Client,
    params: &ListParams,
) -> Result<Option<Vec<K>>, ClusterError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    let plural = K::plural(&());
    let group = K::group(&());
    let what =
        if group.is_empty() { format!("listing {plural}") } else { format!("listing {plural}.{group}") };
    list(cluster, &api, params, &what).await
}

/// Every object `api` lists, page by page; `None` when the kind is not served.
async fn list<K>(
    cluster: &Cluster,
    api: &Api<K>,
    params: &ListParams,
    what: &str,
) -> Result<Option<Vec<K>>, ClusterError>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut params = params.clone().limit(500);
    loop {
        let page = match api.list(&params).await {
            Ok(page) => page,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(cluster.fail(what, &e)),
        };
        out.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(Some(out)),
        }
    }
}
