//! Flags every long-running FerroLB binary takes, and what they build: the Kubernetes client, logging
//! and the election configuration. Each flag also reads `FERROLB_<FLAG>` from the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::Error;
use crate::election::ElectionConfig;

/// The namespace used when neither `--namespace` nor `POD_NAMESPACE` says otherwise.
pub const DEFAULT_NAMESPACE: &str = "ferrolb-system";

/// How log lines are written.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Connection, namespace, metrics and logging flags.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// Kubeconfig file to connect with. Without it: the KUBECONFIG environment variable, then
    /// ~/.kube/config, then the in-cluster service account.
    #[arg(long, env = "FERROLB_KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// Namespace of FerroLB's own objects (Leases). Without it: the POD_NAMESPACE environment
    /// variable, then `ferrolb-system`.
    #[arg(long, env = "FERROLB_NAMESPACE", value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// Address of the HTTP server for /metrics (Prometheus), /healthz and /readyz. Port 0 picks a free
    /// port.
    #[arg(long, env = "FERROLB_METRICS_ADDR", value_name = "ADDR", default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,

    /// Log format. The RUST_LOG environment variable filters what is logged (default: info).
    #[arg(long, env = "FERROLB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl CommonArgs {
    /// The namespace for FerroLB's own objects: `--namespace`, else `POD_NAMESPACE`, else
    /// `ferrolb-system`.
    pub fn namespace(&self) -> String {
        resolve_namespace(self.namespace.as_deref(), std::env::var("POD_NAMESPACE").ok().as_deref())
    }

    /// A Kubernetes client: from the `--kubeconfig` file when given (its current context), else kube's
    /// default inference (KUBECONFIG, ~/.kube/config, in-cluster).
    pub async fn client(&self) -> Result<kube::Client, Error> {
        let Some(path) = &self.kubeconfig else {
            return kube::Client::try_default().await.map_err(Error::Client);
        };
        let kubeconfig = kube::config::Kubeconfig::read_from(path)
            .map_err(|source| Error::Kubeconfig { path: path.clone(), source })?;
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .map_err(|source| Error::Kubeconfig { path: path.clone(), source })?;
        kube::Client::try_from(config).map_err(Error::Client)
    }

    /// Installs the global tracing subscriber in the chosen format, filtered by RUST_LOG (default
    /// `info`). Does nothing when one is already installed (tests, or a second call).
    pub fn init_logging(&self) {
        use tracing_subscriber::EnvFilter;
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
        let _ = match self.log_format {
            LogFormat::Text => builder.try_init(),
            LogFormat::Json => builder.json().try_init(),
        };
    }
}

fn resolve_namespace(flag: Option<&str>, pod_namespace: Option<&str>) -> String {
    [flag, pod_namespace]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|ns| !ns.is_empty())
        .unwrap_or(DEFAULT_NAMESPACE)
        .to_owned()
}

/// Leader election flags (client-go's defaults).
#[derive(clap::Args, Debug, Clone)]
pub struct ElectionArgs {
    /// How long standbys wait, after the leader's Lease last changed, before taking over. Must be
    /// greater than --renew-deadline. Humantime syntax: 15s, 500ms, 1m.
    #[arg(long, env = "FERROLB_LEASE_DURATION", value_name = "DURATION", default_value = "15s",
          value_parser = humantime::parse_duration)]
    pub lease_duration: Duration,

    /// How long the leader keeps leading without a successful renewal before it stops. Must be greater
    /// than --retry-period.
    #[arg(long, env = "FERROLB_RENEW_DEADLINE", value_name = "DURATION", default_value = "10s",
          value_parser = humantime::parse_duration)]
    pub renew_deadline: Duration,

    /// Interval between the leader's renewals and the standbys' attempts to acquire.
    #[arg(long, env = "FERROLB_RETRY_PERIOD", value_name = "DURATION", default_value = "2s",
          value_parser = humantime::parse_duration)]
    pub retry_period: Duration,

    /// Identity written into the Lease as its holder; must be unique per replica. Default: the hostname
    /// (/etc/hostname, then the HOSTNAME environment variable), which is the pod name in Kubernetes.
    #[arg(long, env = "FERROLB_ID", value_name = "ID")]
    pub id: Option<String>,
}

impl ElectionArgs {
    /// The validated election configuration.
    pub fn election_config(&self) -> Result<ElectionConfig, Error> {
        let identity = match &self.id {
            Some(id) => id.clone(),
            None => hostname().ok_or(Error::NoIdentity)?,
        };
        let cfg = ElectionConfig {
            identity,
            lease_duration: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry_period: self.retry_period,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// The hostname from /etc/hostname, else the HOSTNAME environment variable.
fn hostname() -> Option<String> {
    let from_file = std::fs::read_to_string("/etc/hostname").ok();
    first_nonempty(from_file.as_deref(), std::env::var("HOSTNAME").ok().as_deref())
}

fn first_nonempty(a: Option<&str>, b: Option<&str>) -> Option<String> {
    [a, b].into_iter().flatten().map(str::trim).find(|s| !s.is_empty()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        common: CommonArgs,
        #[command(flatten)]
        election: ElectionArgs,
    }

    #[test]
    fn command_is_well_formed_and_documents_every_flag() {
        Cli::command().debug_assert();
        let help = Cli::command().render_long_help().to_string();
        for flag in [
            "--kubeconfig",
            "--namespace",
            "--metrics-addr",
            "--log-format",
            "--lease-duration",
            "--renew-deadline",
            "--retry-period",
            "--id",
        ] {
            assert!(help.contains(flag), "{flag} missing from --help");
        }
        for arg in Cli::command().get_arguments() {
            if arg.get_id() != "help" {
                assert!(arg.get_help().is_some(), "{} has no help", arg.get_id());
            }
        }
        assert!(help.contains("FERROLB_METRICS_ADDR"));
    }

    #[test]
    fn defaults() {
        let cli = Cli::try_parse_from(["x", "--id", "me"]).unwrap();
        assert_eq!(cli.common.metrics_addr, "0.0.0.0:9090".parse().unwrap());
        assert_eq!(cli.common.log_format, LogFormat::Text);
        let cfg = cli.election.election_config().unwrap();
        assert_eq!(cfg.identity, "me");
        assert_eq!(cfg.lease_duration, Duration::from_secs(15));
        assert_eq!(cfg.renew_deadline, Duration::from_secs(10));
        assert_eq!(cfg.retry_period, Duration::from_secs(2));
    }

    #[test]
    fn parses_flags() {
        let cli = Cli::try_parse_from([
            "x",
            "--kubeconfig",
            "/tmp/kc",
            "--namespace",
            "lb",
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--lease-duration",
            "1s",
            "--renew-deadline",
            "600ms",
            "--retry-period",
            "200ms",
            "--id",
            "pod-a",
        ])
        .unwrap();
        assert_eq!(cli.common.kubeconfig, Some(PathBuf::from("/tmp/kc")));
        assert_eq!(cli.common.namespace(), "lb");
        assert_eq!(cli.common.metrics_addr.port(), 0);
        assert_eq!(cli.common.log_format, LogFormat::Json);
        let cfg = cli.election.election_config().unwrap();
        assert_eq!(cfg.renew_deadline, Duration::from_millis(600));
        assert_eq!(cfg.retry_period, Duration::from_millis(200));
    }

    #[test]
    fn rejects_bad_values_naming_the_flag() {
        let err = Cli::try_parse_from(["x", "--lease-duration", "soon"]).unwrap_err().to_string();
        assert!(err.contains("--lease-duration"), "{err}");
        let err = Cli::try_parse_from(["x", "--log-format", "xml"]).unwrap_err().to_string();
        assert!(err.contains("--log-format"), "{err}");
        let cli = Cli::try_parse_from(["x", "--id", "a", "--renew-deadline", "20s"]).unwrap();
        let err = cli.election.election_config().unwrap_err().to_string();
        assert!(err.contains("--lease-duration"), "{err}");
    }

    #[test]
    fn namespace_falls_back_to_pod_namespace_then_default() {
        assert_eq!(resolve_namespace(Some("a"), Some("b")), "a");
        assert_eq!(resolve_namespace(None, Some("b")), "b");
        assert_eq!(resolve_namespace(Some(""), Some(" ")), DEFAULT_NAMESPACE);
        assert_eq!(resolve_namespace(None, None), DEFAULT_NAMESPACE);
    }

    #[test]
    fn identity_defaults_to_a_hostname() {
        assert_eq!(first_nonempty(Some("node-1\n"), Some("h")), Some("node-1".into()));
        assert_eq!(first_nonempty(Some("  "), Some("h")), Some("h".into()));
        assert_eq!(first_nonempty(None, None), None);
        let cli = Cli::try_parse_from(["x"]).unwrap();
        if hostname().is_some() {
            assert_eq!(cli.election.election_config().unwrap().identity, hostname().unwrap());
        }
    }

    #[test]
    fn init_logging_twice_is_harmless() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        cli.common.init_logging();
        cli.common.init_logging();
    }
}
