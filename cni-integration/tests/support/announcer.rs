//! A real announcer API (ferrolb-proto's server over a [`SharedTable`]) on a unix socket in a
//! temporary directory, which a test can stop and start again on the same path, with the same table
//! (the gRPC server restarted) or a new one (the announcer process restarted: a new epoch).

#![allow(dead_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ferrolb_proto::server::ServeError;
use ferrolb_proto::{Announcement, AnnouncementTable, AnnouncerService, SharedTable, serve_unix};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The node the announcer runs on.
pub const LOCAL: &str = "node-a";
/// Another node.
pub const OTHER: &str = "node-b";
/// How long any wait for the system under test lasts at most.
pub const WAIT: Duration = Duration::from_secs(15);

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// `addr` held by `node` for Service default/web, announced on `eth0`.
pub fn held(addr: &str, node: &str) -> Announcement {
    let since = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    Announcement::new(ip(addr), node, since).with_service("default", "web").with_interface("eth0")
}

/// A served table.
pub struct Announcer {
    _dir: Option<tempfile::TempDir>,
    pub path: PathBuf,
    pub table: SharedTable,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), ServeError>>>,
}

impl Announcer {
    /// Serves `table` on a socket in a new temporary directory.
    pub async fn start(table: AnnouncementTable) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("announcer.sock");
        let mut announcer = Self::serve(path, SharedTable::new(table)).await;
        announcer._dir = Some(dir);
        announcer
    }

    /// Serves `table` on `path` (the caller owns its directory).
    pub async fn start_at(path: PathBuf, table: AnnouncementTable) -> Self {
        Self::serve(path, SharedTable::new(table)).await
    }

    async fn serve(path: PathBuf, table: SharedTable) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve_unix(path.clone(), AnnouncerService::new(table.clone()), async {
            let _ = stopped.await;
        }));
        wait_for_socket(&path).await;
        Self { _dir: None, path, table, stop: Some(stop), server: Some(server) }
    }

    /// Stops serving (the watch streams end with UNAVAILABLE, the socket file goes away); returns
    /// the table, the directory and the path, for [`Announcer::restart`].
    pub async fn stop(mut self) -> Stopped {
        self.stop.take().unwrap().send(()).unwrap();
        let served = tokio::time::timeout(WAIT, self.server.take().unwrap()).await.expect("server stops");
        served.unwrap().unwrap();
        assert!(!self.path.exists(), "the socket file is removed on shutdown");
        Stopped { dir: self._dir.take(), path: self.path.clone(), table: self.table.clone() }
    }
}

/// A stopped announcer's socket path and table.
pub struct Stopped {
    dir: Option<tempfile::TempDir>,
    pub path: PathBuf,
    pub table: SharedTable,
}

impl Stopped {
    /// Serves again on the same path: with the same table (`None`, a restart of the gRPC server
    /// alone) or a new one (a restarted announcer).
    pub async fn restart(self, table: Option<AnnouncementTable>) -> Announcer {
        let table = table.map_or(self.table, SharedTable::new);
        let mut announcer = Announcer::serve(self.path, table).await;
        announcer._dir = self.dir;
        announcer
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn wait_for_socket(path: &Path) {
    tokio::time::timeout(WAIT, async {
        while !path.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the socket appears");
}
