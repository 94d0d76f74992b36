//! Shared runtime for FerroLB's long-running binaries.
//!
//! - [`election`]: leader election decisions on a `coordination.k8s.io/v1` Lease, pure (time is a
//!   parameter, no I/O), so they are tested without an API server or sleeping.
//! - [`lease`]: the thin Kubernetes adapter that runs those decisions against a real Lease and
//!   publishes [`lease::Leadership`] through a `tokio::sync::watch` channel.
//! - [`cli`]: the flags every binary takes (`--kubeconfig`, `--namespace`, `--metrics-addr`,
//!   `--log-format`, the election timings), the client and logging built from them.
//! - [`admin`]: the `/metrics`, `/healthz` and `/readyz` server.
//! - [`api_error`]: what a failed API request means (the one place that reads HTTP status codes).
//! - [`events`]: Events created directly, without kube's `Recorder` and its cache.
//! - [`writer`]: cluster-wide writes, made only while this replica holds a Lease claim.

pub mod admin;
mod allocator;
pub mod api_error;
pub mod cli;
pub mod election;
pub mod events;
pub mod lease;
pub mod writer;

use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything that can go wrong in the shared runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag value (or combination of values) that cannot work; the message names the flag.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// `--id` was not given and no hostname could be found to default it to.
    #[error(
        "no election identity: pass --id (or FERROLB_ID); neither /etc/hostname nor HOSTNAME gave a hostname"
    )]
    NoIdentity,

    /// The file given with `--kubeconfig` could not be read or used.
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },

    /// The Kubernetes client could not be built (including kube's own config inference).
    #[error("building the Kubernetes client: {0}")]
    Client(#[source] kube::Error),

    /// The global metrics recorder could not be installed (another recorder is already set).
    #[error("installing the Prometheus metrics recorder: {0}")]
    Metrics(String),

    /// The metrics/health server could not listen on `--metrics-addr`.
    #[error("binding the metrics server to {addr} (--metrics-addr): {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    /// The metrics/health server stopped with an I/O error.
    #[error("metrics server: {0}")]
    Serve(#[source] std::io::Error),
}

/// Resolves when the process is asked to stop: SIGTERM (the kubelet's, on pod deletion) or SIGINT
/// (Ctrl-C). Every binary shuts down gracefully on either.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        // Only fails when the process cannot install signal handlers at all; Ctrl-C is still heard.
        Err(e) => {
            tracing::error!(error = %e, "cannot install the SIGTERM handler; only SIGINT stops this process");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
