//! Clients for the announcer's unix socket, for CNI agents and `ferrolbctl`.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

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
