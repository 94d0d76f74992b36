//! Connecting to an announcer (its unix socket, or its TCP listener with mutual TLS) and the unary
//! calls a CNI agent makes: `GetOwner`, `ListAnnouncements`, `ReportProgrammed`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrolb_proto::v1;
use ferrolb_proto::{AnnouncerClient, ConnectError};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::announced::{Listing, Malformed, Owner};

/// How long connecting may take before it counts as a failure (the watch then backs off and retries).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the announcer serves its API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The announcer's unix socket on this node (by default
    /// [`DEFAULT_SOCKET_PATH`](ferrolb_proto::DEFAULT_SOCKET_PATH)).
    Unix(PathBuf),
    /// The announcer's TCP listener, which only speaks mutual TLS.
    Tls(TlsTarget),
}

impl Target {
    /// The unix socket at `path`.
    pub fn unix(path: impl Into<PathBuf>) -> Self {
        Self::Unix(path.into())
    }

    /// Where this target is, for messages: the socket path or `https://address`.
    pub fn describe(&self) -> String {
        match self {
            Self::Unix(path) => path.display().to_string(),
            Self::Tls(tls) => format!("https://{}", tls.address),
        }
    }
}

/// A TCP target with the PEM material for mutual TLS.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsTarget {
    /// `host:port` of the announcer's TCP listener.
    pub address: String,
    /// The name the announcer's certificate must carry (a DNS SAN); the host of `address` when
    /// `None`.
    pub server_name: Option<String>,
    /// The CA certificate(s) the announcer's certificate must chain to (PEM).
    pub ca_pem: Vec<u8>,
    /// This client's certificate chain (PEM), which the announcer checks against its client CA.
    pub cert_pem: Vec<u8>,
    /// This client's private key (PEM).
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsTarget {
    // The key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTarget")
            .field("address", &self.address)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsTarget {
    /// Reads the CA, certificate and key from PEM files.
    pub fn from_files(
        address: impl Into<String>,
        ca: impl AsRef<Path>,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, ClientError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| ClientError::ReadFile { path: path.to_path_buf(), source })
        };
        Ok(Self {
            address: address.into(),
            server_name: None,
            ca_pem: read(ca.as_ref())?,
            cert_pem: read(cert.as_ref())?,
            key_pem: read(key.as_ref())?,
        })
    }

    /// Checks the announcer's certificate for `name` instead of the host of the address.
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }
}

/// What went wrong talking to the announcer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The unix socket could not be reached.
    #[error(transparent)]
    Unix(#[from] ConnectError),
    /// The TCP listener could not be reached, or the TLS handshake failed.
    #[error("cannot connect to the announcer at {target}: {}", root_cause(source))]
    Tls {
        /// `https://address`.
        target: String,
        /// The transport's error.
        #[source]
        source: tonic::transport::Error,
    },
    /// Connecting took longer than [`CONNECT_TIMEOUT`].
    #[error("cannot connect to the announcer at {target}: no connection within {CONNECT_TIMEOUT:?}")]
    ConnectTimeout {
        /// The socket path or `https://address`.
        target: String,
    },
    /// A TLS file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A call failed (the announcer answered with an error status, or the connection broke).
    #[error("{method}: {}: {}", status.code(), status.message())]
    Rpc {
        /// The method, as named in the .proto file.
        method: &'static str,
        /// The status.
        status: tonic::Status,
    },
    /// The announcer's answer could not be read.
    #[error(transparent)]
    Malformed(#[from] Malformed),
}

impl ClientError {
    /// A short, fixed label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Unix(_) | Self::Tls { .. } | Self::ConnectTimeout { .. } => "connect",
            Self::ReadFile { .. } => "read_file",
            Self::Rpc { .. } => "rpc",
            Self::Malformed(_) => "malformed",
        }
    }
}

/// The innermost error: tonic's own layers only say "transport error".
fn root_cause<'a>(error: &'a (dyn std::error::Error + 'static)) -> &'a (dyn std::error::Error + 'static) {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause
}

/// A gRPC channel to `target`, connected now. After it breaks, the channel reconnects by itself
/// on the next call.
pub async fn channel(target: &Target) -> Result<Channel, ClientError> {
    match target {
        Target::Unix(path) => {
            // ferrolb-proto's connector dials the socket again on each reconnect, so a restarted
            // announcer (a new socket file) is reached.
            let connect = ferrolb_proto::unix_channel(path);
            match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                Ok(channel) => Ok(channel?),
                Err(_) => Err(ClientError::ConnectTimeout { target: target.describe() }),
            }
        }
        Target::Tls(tls) => {
            let describe = target.describe();
            let error = |source| ClientError::Tls { target: describe.clone(), source };
            let mut config = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&tls.ca_pem))
                .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem));
            let server_name = tls.server_name.clone().or_else(|| host_of(&tls.address));
            if let Some(name) = server_name {
                config = config.domain_name(name);
            }
            Endpoint::from_shared(describe.clone())
                .map_err(error)?
                .connect_timeout(CONNECT_TIMEOUT)
                .tls_config(config)
                .map_err(error)?
                .connect()
                .await
                .map_err(error)
        }
    }
}

/// The host part of `host:port` (`[v6]:port` too).
fn host_of(address: &str) -> Option<String> {
    let (host, _port) = address.rsplit_once(':')?;
    Some(host.trim_start_matches('[').trim_end_matches(']').to_string())
}

/// A connected announcer client with typed answers.
#[derive(Clone, Debug)]
pub struct Client {
    inner: AnnouncerClient<Channel>,
}

impl Client {
    /// Connects to `target`.
    pub async fn connect(target: &Target) -> Result<Self, ClientError> {
        Ok(Self { inner: AnnouncerClient::new(channel(target).await?) })
    }

    /// Wraps a generated client (for example one over a channel the caller built).
    pub fn from_raw(inner: AnnouncerClient<Channel>) -> Self {
        Self { inner }
    }

    /// The generated client, for calls this type does not wrap (`WatchAnnouncements` itself: see
    /// [`crate::watch`] for a watch that resumes).
    pub fn raw(&mut self) -> &mut AnnouncerClient<Channel> {
        &mut self.inner
    }

    /// Who announces `ip`; `None` when no node does.
    pub async fn get_owner(&mut self, ip: IpAddr) -> Result<Option<Owner>, ClientError> {
        let request = v1::GetOwnerRequest { ip: ip.to_string() };
        match self.inner.get_owner(request).await {
            Ok(owner) => Ok(Some(owner.into_inner().try_into()?)),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(ClientError::Rpc { method: "GetOwner", status }),
        }
    }

    /// The announcements that match `filter` (`ListFilter::default()`: all).
    pub async fn list(&mut self, filter: v1::ListFilter) -> Result<Listing, ClientError> {
        let request = v1::ListRequest { filter: Some(filter) };
        let list = self
            .inner
            .list_announcements(request)
            .await
            .map_err(|status| ClientError::Rpc { method: "ListAnnouncements", status })?;
        Ok(list.into_inner().try_into()?)
    }

    /// Reports that `ip` is (`error` is `None`) or could not be (`Some(why)`) programmed on
    /// `interface` for the announcement at `revision`; returns what the announcer did with it.
    pub async fn report_programmed(
        &mut self,
        ip: IpAddr,
        interface: &str,
        revision: u64,
        error: Option<&str>,
    ) -> Result<v1::ReportOutcome, ClientError> {
        let request = v1::ReportRequest {
            ip: ip.to_string(),
            interface: interface.to_string(),
            ok: error.is_none(),
            error_message: error.unwrap_or_default().to_string(),
            revision,
        };
        let response = self
            .inner
            .report_programmed(request)
            .await
            .map_err(|status| ClientError::Rpc { method: "ReportProgrammed", status })?;
        Ok(response.into_inner().outcome())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_name_defaults_to_the_host() {
        assert_eq!(host_of("announcer.ferrolb.local:7443").as_deref(), Some("announcer.ferrolb.local"));
        assert_eq!(host_of("[2001:db8::1]:7443").as_deref(), Some("2001:db8::1"));
        assert_eq!(host_of("no-port"), None);
    }

    #[test]
    fn the_key_stays_out_of_debug_output() {
        let target = TlsTarget {
            address: "198.51.100.11:7443".into(),
            server_name: None,
            ca_pem: b"ca".to_vec(),
            cert_pem: b"cert".to_vec(),
            key_pem: b"-----BEGIN PRIVATE KEY-----secret".to_vec(),
        };
        let shown = format!("{target:?}");
        assert!(shown.contains("198.51.100.11:7443") && !shown.contains("secret"), "{shown}");
    }
}
