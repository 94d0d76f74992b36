//! Clients for the announcer API over its unix socket or its TCP endpoint (mutual TLS), for CNI
//! agents and `ferrolbctl`.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint, Uri};

use crate::v1::announcer_client::AnnouncerClient;

/// The announcer's socket could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to the announcer on {}: {}", path.display(), root_cause(source))]
pub struct ConnectError {
    /// The socket path.
    pub path: PathBuf,
    /// The transport's error (its source says why, e.g. no such file or connection refused).
    #[source]
    pub source: tonic::transport::Error,
}

/// The innermost error: tonic's own layers only say "transport error".
fn root_cause<'a>(error: &'a (dyn std::error::Error + 'static)) -> &'a (dyn std::error::Error + 'static) {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause
}

/// A gRPC channel to the unix socket `path` (for the announcer client, the health client or both).
/// Connects now; after a failure the channel reconnects by itself on the next request.
pub async fn unix_channel(path: impl AsRef<Path>) -> Result<Channel, ConnectError> {
    let path = path.as_ref().to_path_buf();
    let socket = path.clone();
    // The URI is required by HTTP/2 but never resolved: the connector dials the socket.
    Endpoint::from_static("http://announcer.ferrolb.local")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { UnixStream::connect(socket).await.map(TokioIo::new) }
        }))
        .await
        .map_err(|source| ConnectError { path, source })
}

/// An announcer client over the unix socket `path` (by default
/// [`DEFAULT_SOCKET_PATH`](crate::server::DEFAULT_SOCKET_PATH)).
pub async fn connect_unix(path: impl AsRef<Path>) -> Result<AnnouncerClient<Channel>, ConnectError> {
    Ok(AnnouncerClient::new(unix_channel(path).await?))
}

/// The announcer's TCP endpoint could not be reached (or refused this client's certificate).
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to the announcer at {addr}: {}", root_cause(source))]
pub struct TcpConnectError {
    /// The address dialled (`host:port`).
    pub addr: String,
    /// The transport's error.
    #[source]
    pub source: tonic::transport::Error,
}

/// A gRPC channel to the announcer's TCP endpoint `addr` (`host:port`), with mutual TLS from `tls`
/// ([`crate::tls::client_tls_config`]). The announcer serves TCP with mutual TLS only.
pub async fn tcp_channel(addr: &str, tls: ClientTlsConfig) -> Result<Channel, TcpConnectError> {
    let error = |source| TcpConnectError { addr: addr.to_owned(), source };
    Endpoint::from_shared(format!("https://{addr}"))
        .map_err(error)?
        .tls_config(tls)
        .map_err(error)?
        .connect()
        .await
        .map_err(error)
}
