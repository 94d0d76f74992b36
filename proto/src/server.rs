//! The `ferrolb.v1.Announcer` gRPC service over a shared [`AnnouncementTable`], and its unix-socket
//! transport.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, SystemTime};

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::transport::server::{Connected, TcpIncoming};
use tonic::transport::{Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

use crate::authority::NormalizeAuthority;
use crate::convert::{
    InvalidArgument, announcement_to_proto, parse_filter, parse_interface, parse_ip, report_to_proto,
    set_programming,
};
use crate::table::{Announcement, AnnouncementTable, ProgrammingReport, ReportOutcome};
use crate::v1;
use crate::v1::announcer_server::{Announcer, AnnouncerServer};
use crate::watch::WatchCursor;

/// Where announcers serve the API unless told otherwise.
pub const DEFAULT_SOCKET_PATH: &str = "/run/ferrolb/announcer.sock";

/// The mode of the socket file: the announcer's user and group may connect.
pub const SOCKET_MODE: u32 = 0o660;

/// The mode of the socket's directory when the announcer creates it (subject to the umask).
pub const SOCKET_DIR_MODE: u32 = 0o750;

/// A fresh epoch for a new table: differs across restarts of the announcer, never 0.
pub fn new_epoch() -> u64 {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mixed = (nanos as u64) ^ (u64::from(std::process::id()) << 32) ^ (nanos >> 64) as u64;
    mixed.max(1)
}

/// The announcement table shared between the announcer (which writes it) and the gRPC service (which
/// reads it), with the notifications that wake watch streams and report consumers.
#[derive(Clone, Debug)]
pub struct SharedTable {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    table: RwLock<AnnouncementTable>,
    revision: watch::Sender<u64>,
    reports: broadcast::Sender<ProgrammingReport>,
    /// Open WatchAnnouncements streams: CNI agents follow the table with one each.
    watchers: watch::Sender<usize>,
}

impl SharedTable {
    /// How many programming reports a slow report subscriber may lag behind before it loses some.
    const REPORT_BUFFER: usize = 1024;

    /// Shares `table`.
    pub fn new(table: AnnouncementTable) -> Self {
        let (revision, _) = watch::channel(table.revision());
        let (reports, _) = broadcast::channel(Self::REPORT_BUFFER);
        let (watchers, _) = watch::channel(0);
        Self { inner: Arc::new(Shared { table: RwLock::new(table), revision, reports, watchers }) }
    }

    /// Reads the table. Do not hold the guard across an `.await`.
    pub fn read(&self) -> RwLockReadGuard<'_, AnnouncementTable> {
        self.inner.table.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the table with `change` and wakes the watch streams when its revision moved.
    pub fn update<R>(&self, change: impl FnOnce(&mut AnnouncementTable) -> R) -> R {
        let (result, revision) = {
            let mut table = self.inner.table.write().unwrap_or_else(PoisonError::into_inner);
            let result = change(&mut table);
            (result, table.revision())
        };
        self.inner.revision.send_if_modified(|current| {
            let moved = *current != revision;
            *current = revision;
            moved
        });
        result
    }

    /// [`AnnouncementTable::apply`], then wakes the watchers.
    pub fn apply(&self, announcement: Announcement) -> Option<u64> {
        self.update(|table| table.apply(announcement))
    }

    /// [`AnnouncementTable::remove`], then wakes the watchers.
    pub fn remove(&self, ip: IpAddr) -> Option<u64> {
        self.update(|table| table.remove(ip))
    }

    /// The table's revision, as a channel that changes with it.
    pub fn subscribe_revisions(&self) -> watch::Receiver<u64> {
        self.inner.revision.subscribe()
    }

    /// Every programming report the table accepts from now on (delegate mode: the announcer sends
    /// gratuitous packets when one says ok, and records failures in events and metrics).
    pub fn subscribe_reports(&self) -> broadcast::Receiver<ProgrammingReport> {
        self.inner.reports.subscribe()
    }

    /// How many WatchAnnouncements streams are open, as a channel that changes with it (delegate
    /// mode: none means no CNI agent follows the table, so nothing gets programmed).
    pub fn subscribe_watchers(&self) -> watch::Receiver<usize> {
        self.inner.watchers.subscribe()
    }

    /// Counts one open watch stream until the guard is dropped.
    fn watching(&self) -> WatchGuard {
        self.inner.watchers.send_modify(|n| *n += 1);
        WatchGuard(self.clone())
    }
}

/// One open watch stream, counted in [`SharedTable::subscribe_watchers`] while it lives.
#[derive(Debug)]
struct WatchGuard(SharedTable);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.inner.watchers.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The `ferrolb.v1.Announcer` service.
#[derive(Clone, Debug)]
pub struct AnnouncerService {
    table: SharedTable,
    shutdown: CancellationToken,
    watch_buffer: usize,
}

impl AnnouncerService {
    /// How many messages a watch stream buffers for a slow client before it waits.
    pub const DEFAULT_WATCH_BUFFER: usize = 256;

    /// The service over `table`.
    pub fn new(table: SharedTable) -> Self {
        Self { table, shutdown: CancellationToken::new(), watch_buffer: Self::DEFAULT_WATCH_BUFFER }
    }

    /// Ends every watch stream (with `UNAVAILABLE`, so that clients reconnect and resume) once
    /// `shutdown` is cancelled; without this, open streams would keep a graceful shutdown waiting.
    pub fn with_shutdown(mut self, shutdown: CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// The table the service reads.
    pub fn table(&self) -> &SharedTable {
        &self.table
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> AnnouncerServer<Self> {
        AnnouncerServer::new(self)
    }

    async fn run_watch(
        table: SharedTable,
        mut cursor: WatchCursor,
        sender: mpsc::Sender<Result<v1::Change, Status>>,
        shutdown: CancellationToken,
    ) {
        let _counted = table.watching();
        let mut revisions = table.subscribe_revisions();
        loop {
            // Seen before reading, so that a change made while we send wakes the next round.
            revisions.borrow_and_update();
            let batch = cursor.next_batch(&table.read());
            for change in batch {
                tokio::select! {
                    sent = sender.send(Ok(change)) => if sent.is_err() { return },
                    () = shutdown.cancelled() => return Self::end_watch(&sender),
                }
            }
            tokio::select! {
                changed = revisions.changed() => if changed.is_err() { return },
                () = sender.closed() => return,
                () = shutdown.cancelled() => return Self::end_watch(&sender),
            }
        }
    }

    fn end_watch(sender: &mpsc::Sender<Result<v1::Change, Status>>) {
        // The stream's end tells the client to resume; a full buffer ends it just the same.
        let _ = sender.try_send(Err(Status::unavailable("the announcer is shutting down; resume the watch")));
    }
}

#[tonic::async_trait]
impl Announcer for AnnouncerService {
    async fn get_owner(&self, request: Request<v1::GetOwnerRequest>) -> Result<Response<v1::Owner>, Status> {
        let ip = parse_ip("ip", &request.get_ref().ip)?;
        let table = self.table.read();
        let Some(entry) = table.get(ip) else {
            return Err(Status::not_found(format!("no node announces {ip}")));
        };
        let mut announcement = announcement_to_proto(entry, table.local_node());
        set_programming(&mut announcement, table.programming(ip));
        Ok(Response::new(v1::Owner {
            announcement: Some(announcement),
            programming: table.reports(ip).map(report_to_proto).collect(),
        }))
    }

    async fn list_announcements(
        &self,
        request: Request<v1::ListRequest>,
    ) -> Result<Response<v1::ListResponse>, Status> {
        let filter = parse_filter(request.get_ref().filter.as_ref())?;
        let table = self.table.read();
        let snapshot = table.snapshot(&filter);
        Ok(Response::new(v1::ListResponse {
            announcements: snapshot
                .entries
                .iter()
                .map(|entry| {
                    let mut announcement = announcement_to_proto(entry, table.local_node());
                    set_programming(&mut announcement, table.programming(entry.announcement.ip));
                    announcement
                })
                .collect(),
            revision: snapshot.revision,
            epoch: snapshot.epoch,
        }))
    }

    type WatchAnnouncementsStream = ReceiverStream<Result<v1::Change, Status>>;

    async fn watch_announcements(
        &self,
        request: Request<v1::WatchRequest>,
    ) -> Result<Response<Self::WatchAnnouncementsStream>, Status> {
        let cursor = WatchCursor::new(request.get_ref(), &self.table.read())?;
        let (sender, receiver) = mpsc::channel(self.watch_buffer);
        tokio::spawn(Self::run_watch(self.table.clone(), cursor, sender, self.shutdown.clone()));
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn report_programmed(
        &self,
        request: Request<v1::ReportRequest>,
    ) -> Result<Response<v1::ReportResponse>, Status> {
        let request = request.into_inner();
        let ip = parse_ip("ip", &request.ip)?;
        let interface = parse_interface("interface", &request.interface)?;
        if request.ok && !request.error_message.is_empty() {
            return Err(InvalidArgument::new(
                "error_message",
                &request.error_message,
                "must be empty when ok is true",
            )
            .into());
        }
        let report = ProgrammingReport {
            ip,
            interface,
            ok: request.ok,
            error_message: request.error_message,
            revision: request.revision,
            reported_at: SystemTime::now(),
        };
        let outcome = self.table.update(|table| table.record_report(report.clone()));
        let (outcome, current_revision) = match outcome {
            ReportOutcome::Accepted { revision } => {
                if !report.ok {
                    tracing::warn!(%ip, interface = %report.interface, error = %report.error_message, "the CNI agent failed to program an address");
                }
                // No subscriber is fine: the table keeps the report.
                let _ = self.table.inner.reports.send(ProgrammingReport { revision, ..report });
                (v1::ReportOutcome::Accepted, revision)
            }
            ReportOutcome::Stale { current } => (v1::ReportOutcome::Stale, current),
            ReportOutcome::NotHeld { current } => (v1::ReportOutcome::NotHeld, current),
        };
        Ok(Response::new(v1::ReportResponse { outcome: outcome.into(), current_revision }))
    }
}

/// Why the API could not be served on a unix socket.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The socket's directory was missing and could not be created.
    #[error(
        "cannot serve on {}: cannot create directory {}: {source} (create it, or mount a hostPath volume there)",
        path.display(),
        dir.display()
    )]
    CreateDirectory {
        /// The socket path.
        path: PathBuf,
        /// Its directory.
        dir: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Something other than a socket is in the way.
    #[error("cannot serve on {}: it exists and is not a socket; remove it yourself if it is not needed", path.display())]
    NotASocket {
        /// The socket path.
        path: PathBuf,
    },
    /// Another server answers on the socket.
    #[error("cannot serve on {}: another process is serving on it", path.display())]
    InUse {
        /// The socket path.
        path: PathBuf,
    },
    /// A file-system or socket operation failed.
    #[error("cannot serve on {}: {action}: {source}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The gRPC server failed.
    #[error("gRPC server on {}: {source}", path.display())]
    Transport {
        /// The socket path.
        path: PathBuf,
        /// The error.
        source: tonic::transport::Error,
    },
}

/// Binds the unix socket `path` with mode 0660: creates its directory (mode 0750) when missing,
/// removes a stale socket left by a dead announcer first, and refuses to touch a live one or a file
/// that is not a socket. The socket appears at `path` with its final mode (bound under a temporary
/// name, then renamed). Must run inside a tokio runtime.
pub fn bind_unix(path: impl AsRef<Path>) -> Result<UnixListener, ServeError> {
    let path = path.as_ref();
    let io_error =
        |action: &'static str| move |source| ServeError::Io { path: path.to_path_buf(), action, source };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    // A pod whose hostPath volume is `DirectoryOrCreate`, or an announcer run by hand, may find no
    // directory yet. Group members need search permission to reach the 0660 socket; others none.
    std::fs::DirBuilder::new().recursive(true).mode(SOCKET_DIR_MODE).create(dir).map_err(|source| {
        ServeError::CreateDirectory { path: path.to_path_buf(), dir: dir.to_path_buf(), source }
    })?;
    remove_stale_socket(path)?;
    let file_name = path.file_name().ok_or_else(|| ServeError::Io {
        path: path.to_path_buf(),
        action: "take the file name",
        source: io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"),
    })?;
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(file_name);
    temporary_name.push(format!(".{}.tmp", std::process::id()));
    let temporary = dir.join(temporary_name);
    match std::fs::remove_file(&temporary) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            return Err(io_error("remove the temporary socket")(error));
        }
        _ => {}
    }
    let listener = UnixListener::bind(&temporary).map_err(io_error("bind"))?;
    let placed = std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(io_error("set the socket mode"))
        .and_then(|()| std::fs::rename(&temporary, path).map_err(io_error("move the socket in place")));
    if let Err(error) = placed {
        let _ = std::fs::remove_file(&temporary);
        return Err(error);
    }
    Ok(listener)
}

fn remove_stale_socket(path: &Path) -> Result<(), ServeError> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(ServeError::Io { path: path.to_path_buf(), action: "inspect", source }),
    };
    if !metadata.file_type().is_socket() {
        return Err(ServeError::NotASocket { path: path.to_path_buf() });
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(ServeError::InUse { path: path.to_path_buf() }),
        Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
            std::fs::remove_file(path).map_err(|source| ServeError::Io {
                path: path.to_path_buf(),
                action: "remove the stale socket",
                source,
            })
        }
        Err(source) => {
            Err(ServeError::Io { path: path.to_path_buf(), action: "probe the existing socket", source })
        }
    }
}

/// How long a shutdown waits for open requests before it drops them. Watch streams of the announcer
/// end at once; this bounds the others (a client watching the health service, a stuck peer).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The API's full name, as the health service and reflection know it.
pub const SERVICE_NAME: &str = "ferrolb.v1.Announcer";

/// Serves the announcer API and the standard gRPC health service (`grpc.health.v1.Health`, both
/// `""` and `ferrolb.v1.Announcer` SERVING) on `listener` until `shutdown` completes; then reports
/// NOT_SERVING, ends the watch streams and waits for the open requests, at most
/// [`SHUTDOWN_GRACE`]. Server reflection (`grpc.reflection.v1` and `v1alpha`) is served too.
pub async fn serve_unix_listener(
    listener: UnixListener,
    service: AnnouncerService,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    // Through the `:authority` rewriter: without it h2 resets every request of grpcio, grpc-java and
    // older grpcurl, which name the socket path there (see `crate::authority`).
    let incoming = UnixListenerStream::new(listener).map(|accepted| accepted.map(NormalizeAuthority::new));
    serve_incoming(Server::builder(), incoming, service, shutdown).await
}

/// Binds the TCP listener of `--grpc-listen`. Must run inside a tokio runtime.
pub fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, TcpServeError> {
    let bind = || {
        let socket = std::net::TcpListener::bind(addr)?;
        socket.set_nonblocking(true)?;
        TcpListener::from_std(socket)
    };
    bind().map_err(|source| TcpServeError::Bind { addr, source })
}

/// Like [`serve_unix_listener`], on a TCP `listener`, and only with mutual TLS: `tls` (from
/// [`crate::tls::server_tls_config`]) requires a client certificate that chains to its client CA.
/// There is no plaintext TCP: anyone who reaches the port could otherwise report addresses
/// programmed or read the node's announcements.
pub async fn serve_tcp_listener(
    listener: TcpListener,
    tls: ServerTlsConfig,
    service: AnnouncerService,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), TcpServeError> {
    let addr = listener
        .local_addr()
        .map_err(|source| TcpServeError::Bind { addr: SocketAddr::from(([0, 0, 0, 0], 0)), source })?;
    let builder =
        Server::builder().tls_config(tls).map_err(|source| TcpServeError::Transport { addr, source })?;
    serve_incoming(builder, TcpIncoming::from(listener), service, shutdown)
        .await
        .map_err(|source| TcpServeError::Transport { addr, source })
}

/// Why the API could not be served on TCP.
#[derive(Debug, thiserror::Error)]
pub enum TcpServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: io::Error,
    },
    /// The gRPC server failed.
    #[error("gRPC server on {addr}: {source}")]
    Transport {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: tonic::transport::Error,
    },
}

/// The services every transport serves: the API, health and reflection, with the shutdown
/// sequence of [`serve_unix_listener`].
async fn serve_incoming<I, IO, IE>(
    builder: Server,
    incoming: I,
    service: AnnouncerService,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error>
where
    I: futures::Stream<Item = Result<IO, IE>>,
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Connected + Unpin + Send + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<AnnouncerServer<AnnouncerService>>().await;
    let stop_watches = CancellationToken::new();
    let service = service.with_shutdown(stop_watches.clone());
    let (signalled, on_signal) = oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        health.set_not_serving::<AnnouncerServer<AnnouncerService>>().await;
        health.set_service_status("", tonic_health::ServingStatus::NotServing).await;
        stop_watches.cancel();
        let _ = signalled.send(());
    };
    let mut routes = tonic::service::Routes::new(health_service).add_service(service.into_server());
    // Reflection is a convenience (grpcurl, grpcui): a descriptor set that fails to load is logged,
    // not fatal. It lists the API, health and itself; the peer channel shares the descriptor set
    // but is not served here.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(SERVICE_NAME)
            .with_service_name("grpc.health.v1.Health")
            .with_service_name("grpc.reflection.v1.ServerReflection")
            .with_service_name("grpc.reflection.v1alpha.ServerReflection")
    };
    match (reflection().build_v1(), reflection().build_v1alpha()) {
        (Ok(v1), Ok(v1alpha)) => routes = routes.add_service(v1).add_service(v1alpha),
        (Err(error), _) | (_, Err(error)) => tracing::warn!(%error, "server reflection not served"),
    }
    let server = builder.serve_with_incoming_shutdown(routes.prepare(), incoming, signal);
    let grace_over = async {
        if on_signal.await.is_err() {
            // The server ended without a shutdown: its own result decides.
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        served = server => served,
        () = grace_over => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "requests still open after the shutdown grace period; dropping them");
            Ok(())
        }
    }
}

/// [`bind_unix`] then [`serve_unix_listener`]; removes the socket file when done.
pub async fn serve_unix(
    path: impl AsRef<Path>,
    service: AnnouncerService,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let path = path.as_ref();
    let listener = bind_unix(path)?;
    let served = serve_unix_listener(listener, service, shutdown).await;
    let _ = std::fs::remove_file(path);
    served.map_err(|source| ServeError::Transport { path: path.to_path_buf(), source })
}
