//! A watch of the addresses this node holds that survives announcer restarts: it reconnects with
//! bounded, jittered back-off and resumes from the last revision applied, so the consumer sees every
//! change once and in order, or an explicit [`Delta::Resync`] when the announcer cannot resume (it
//! restarted, or the watcher fell behind its change log).
//!
//! The decisions (what a message means, when to resume, how long to wait) are in
//! [`crate::delta::DeltaDecoder`] and [`crate::backoff::Backoff`]; this module only runs them.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use ferrolb_proto::AnnouncerClient;
use ferrolb_proto::v1;
use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::backoff::{Backoff, BackoffPolicy};
use crate::client::{ClientError, Target, channel};
use crate::delta::{DecodeError, Delta, DeltaDecoder};

/// How the watch runs.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// Which of this node's addresses to follow (family, namespace); `only_local` is always on.
    pub filter: v1::ListFilter,
    /// The wait between reconnect attempts.
    pub backoff: BackoffPolicy,
    /// How many deltas wait for a slow consumer before the watch stops reading the stream.
    pub buffer: usize,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self { filter: v1::ListFilter::default(), backoff: BackoffPolicy::default(), buffer: 1024 }
    }
}

/// Where the watch stands with the announcer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Connection {
    /// The first connection attempt is under way.
    Connecting {
        /// When the watch started.
        since: Instant,
    },
    /// A stream is open and has delivered at least one message.
    Connected {
        /// The announcer's epoch.
        epoch: u64,
    },
    /// No stream: waiting `retry_in` before the next attempt.
    Disconnected {
        /// When the last stream ended (or the watch started, if none ever opened).
        since: Instant,
        /// Why.
        error: String,
        /// The wait before the next attempt.
        retry_in: Duration,
    },
}

impl Connection {
    /// Since when the watch has had no stream; `None` while connected.
    pub fn down_since(&self) -> Option<Instant> {
        match self {
            Self::Connecting { since } | Self::Disconnected { since, .. } => Some(*since),
            Self::Connected { .. } => None,
        }
    }
}

/// The deltas of a running watch, in order. Dropping it stops the watch.
#[derive(Debug)]
pub struct DeltaStream {
    deltas: mpsc::Receiver<Delta>,
    connection: watch::Receiver<Connection>,
    task: JoinHandle<()>,
}

impl DeltaStream {
    /// The next delta; `None` only when the watch task ended (it does not end by itself).
    pub async fn next(&mut self) -> Option<Delta> {
        self.deltas.recv().await
    }

    /// The next delta if one is waiting.
    pub fn try_next(&mut self) -> Option<Delta> {
        self.deltas.try_recv().ok()
    }

    /// The connection state, as a channel that changes with it.
    pub fn connection(&self) -> watch::Receiver<Connection> {
        self.connection.clone()
    }
}

impl Stream for DeltaStream {
    type Item = Delta;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delta>> {
        self.deltas.poll_recv(cx)
    }
}

impl Drop for DeltaStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Follows the addresses this node holds on the announcer at `target`, from a snapshot on, until the
/// stream is dropped. Must run inside a tokio runtime.
pub fn watch_local(target: Target, options: WatchOptions) -> DeltaStream {
    let (deltas, receiver) = mpsc::channel(options.buffer.max(1));
    let (connection, connection_receiver) = watch::channel(Connection::Connecting { since: Instant::now() });
    let task = tokio::spawn(run(target, options, deltas, connection));
    DeltaStream { deltas: receiver, connection: connection_receiver, task }
}

/// Why one stream ended.
#[derive(Debug, thiserror::Error)]
enum StreamEnd {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("watch stream: {}: {}", .0.code(), .0.message())]
    Status(tonic::Status),
    #[error("the announcer ended the watch stream")]
    Closed,
    #[error("{0}; starting again from a snapshot")]
    Decode(#[from] DecodeError),
    #[error("the consumer is gone")]
    ConsumerGone,
}

async fn run(
    target: Target,
    options: WatchOptions,
    deltas: mpsc::Sender<Delta>,
    connection: watch::Sender<Connection>,
) {
    let mut decoder = DeltaDecoder::new(options.filter);
    let mut backoff = Backoff::new(options.backoff);
    loop {
        let end = follow_once(&target, &mut decoder, &mut backoff, &deltas, &connection).await;
        if matches!(end, StreamEnd::ConsumerGone) {
            return;
        }
        if matches!(end, StreamEnd::Decode(_)) {
            decoder.restart();
        }
        let retry_in = backoff.next_delay(fastrand::f64());
        let since = match &*connection.borrow() {
            // A first attempt that failed: down since the watch started.
            Connection::Connecting { since } | Connection::Disconnected { since, .. } => *since,
            Connection::Connected { .. } => Instant::now(),
        };
        tracing::warn!(target = %target.describe(), error = %end, ?retry_in, revision = decoder.revision(), "announcer watch interrupted; resuming");
        connection.send_replace(Connection::Disconnected { since, error: end.to_string(), retry_in });
        tokio::select! {
            () = tokio::time::sleep(retry_in) => {}
            () = deltas.closed() => return,
        }
    }
}

/// One connection and one stream, until either ends.
async fn follow_once(
    target: &Target,
    decoder: &mut DeltaDecoder,
    backoff: &mut Backoff,
    deltas: &mpsc::Sender<Delta>,
    connection: &watch::Sender<Connection>,
) -> StreamEnd {
    let channel = match channel(target).await {
        Ok(channel) => channel,
        Err(error) => return error.into(),
    };
    let mut client = AnnouncerClient::new(channel);
    let mut stream = match client.watch_announcements(decoder.watch_request()).await {
        Ok(stream) => stream.into_inner(),
        Err(status) => return StreamEnd::Status(status),
    };
    loop {
        let message = tokio::select! {
            message = stream.message() => message,
            () = deltas.closed() => return StreamEnd::ConsumerGone,
        };
        let change = match message {
            Ok(Some(change)) => change,
            Ok(None) => return StreamEnd::Closed,
            Err(status) => return StreamEnd::Status(status),
        };
        let epoch = change.epoch;
        let decoded = match decoder.apply(change) {
            Ok(decoded) => decoded,
            Err(error) => return error.into(),
        };
        if !matches!(&*connection.borrow(), Connection::Connected { epoch: e } if *e == epoch) {
            // The first message proves the stream works: the next failure starts from a short wait.
            backoff.reset();
            connection.send_replace(Connection::Connected { epoch });
        }
        for delta in decoded {
            if deltas.send(delta).await.is_err() {
                return StreamEnd::ConsumerGone;
            }
        }
    }
}
