//! `ferrolb-ipam`: assigns LoadBalancer addresses from `LoadBalancerIPPool`s. Run two or more
//! replicas; one leads through the `ferrolb-ipam` Lease and the others stand by, warm.

use anyhow::Context;
use clap::Parser;
use ferrolb_api::ServedClasses;
use ferrolb_ipam::Config;
use ferrolb_ipam::adapter::{self, Settings};
use ferrolb_runtime::cli::{CommonArgs, ElectionArgs};

ferrolb_runtime::jemalloc_global_allocator!();

/// FerroLB IPAM controller.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    election: ElectionArgs,
    /// Serve Services without `spec.loadBalancerClass` (as well as the classes served).
    #[arg(long, env = "FERROLB_DEFAULT_CLASS", default_value_t = true, action = clap::ArgAction::Set)]
    default_class: bool,
    /// Load-balancer classes served besides `ferrolb.io/l2` (always served), comma separated, e.g.
    /// `ingress,io.cilium/l2-announcer`: Services of these classes are taken over as they are.
    /// Services of other classes are never written to.
    #[arg(long, env = "FERROLB_LOAD_BALANCER_CLASSES", value_name = "CLASSES", default_value = "",
          value_parser = ferrolb_api::parse_class_list)]
    load_balancer_classes: std::collections::BTreeSet<String>,
    /// Honour MetalLB, Cilium and Deckhouse Service annotations (`ferrolb.io/*` wins where both are set).
    #[arg(long, env = "FERROLB_COMPAT_ANNOTATIONS", default_value_t = true, action = clap::ArgAction::Set)]
    compat_annotations: bool,
    /// Assign IPv4 addresses to Services that do not name their families.
    #[arg(long, env = "FERROLB_IPV4", default_value_t = true, action = clap::ArgAction::Set)]
    ipv4: bool,
    /// Assign IPv6 addresses to Services that do not name their families.
    #[arg(long, env = "FERROLB_IPV6", default_value_t = true, action = clap::ArgAction::Set)]
    ipv6: bool,
    /// Status writes in flight at once.
    #[arg(long, env = "FERROLB_WRITE_CONCURRENCY", default_value_t = 32)]
    write_concurrency: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.common.init_logging();
    let election = args.election.election_config().context("invalid election flags")?;
    let client = args.common.client().await.context("building the Kubernetes client")?;
    let namespace = args.common.namespace();

    let metrics = ferrolb_runtime::admin::install_metrics()?;
    ferrolb_ipam::metrics::describe();
    let readiness = ferrolb_runtime::admin::Readiness::default();
    let (bound, _server) =
        ferrolb_runtime::admin::serve(args.common.metrics_addr, metrics, readiness.clone()).await?;
    tracing::info!(%bound, "serving /metrics, /healthz and /readyz");

    let identity = election.identity.clone();
    let elector = ferrolb_runtime::lease::LeaderElector::spawn(
        client.clone(),
        &namespace,
        ferrolb_api::names::IPAM_LEASE_NAME,
        election,
    );
    let (synced_tx, mut synced_rx) = tokio::sync::watch::channel(false);
    tokio::spawn({
        let readiness = readiness.clone();
        async move {
            while synced_rx.changed().await.is_ok() {
                readiness.set_ready(*synced_rx.borrow());
            }
        }
    });
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let settings = Settings {
        ipam: Config {
            classes: ServedClasses::new(args.default_class, args.load_balancer_classes.clone()),
            compat_annotations: args.compat_annotations,
            ipv4: args.ipv4,
            ipv6: args.ipv6,
        },
        write_concurrency: args.write_concurrency.max(1),
        instance: identity,
        ..Settings::default()
    };
    tracing::info!(classes = %settings.ipam.classes, "serving Services of these load-balancer classes");
    let controller =
        tokio::spawn(adapter::run(client, settings, elector.leadership(), synced_tx, shutdown_rx));

    ferrolb_runtime::shutdown_signal().await;
    tracing::info!("shutting down: stop writing, then release the Lease");
    let _ = shutdown_tx.send(true);
    let _ = controller.await;
    elector.release().await;
    Ok(())
}
