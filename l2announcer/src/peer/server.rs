//! The receiving side: the `ferrolb.v1.Peer` gRPC service over the hub's state.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use ferrolb_proto::v1;
use ferrolb_proto::v1::peer_server::{Peer, PeerServer};
use tonic::{Request, Response, Status};

use super::auth::Reject;
use super::hub::Inner;
use super::{PeerEvent, Takeover};

/// The Peer service of one hub.
pub(super) struct PeerService {
    inner: Arc<Inner>,
}

impl PeerService {
    pub(super) fn new(inner: Arc<Inner>) -> Self {
        Self { inner }
    }

    pub(super) fn into_server(self) -> PeerServer<Self> {
        PeerServer::new(self)
    }
}

/// The status a rejected message gets: the sender learns it was refused, and why in general terms.
pub(super) fn reject_status(r: Reject) -> Status {
    match r {
        Reject::Auth(d) => Status::unauthenticated(format!("peer message not authenticated: {d}")),
        Reject::Replay(d) => Status::permission_denied(format!("peer message refused: {d}")),
    }
}

impl Inner {
    /// Handles an incoming takeover notice: emits [`PeerEvent::Takeover`] when it is authentic and
    /// names another node as the new holder, and returns the ack.
    pub(super) fn receive_takeover(&self, n: &v1::TakeoverNotice) -> Result<v1::TakeoverAck, Status> {
        // Authenticity first (so garbage is counted as such); an authentic notice that does not parse
        // has used up its seq, which is fine: a retry is signed afresh.
        self.check(n).map_err(reject_status)?;
        let address: IpAddr = n.address.parse().map_err(|_| {
            Status::invalid_argument(format!("address: {:?} is not an IP address", n.address))
        })?;
        if n.new_holder == self.cfg.node {
            tracing::warn!(sender = %n.node, %address, "takeover notice names this node as the new holder; ignored");
            return Ok(self.takeover_ack(n));
        }
        let takeover = Takeover {
            namespace: n.service_namespace.clone(),
            service: n.service_name.clone(),
            address,
            new_holder: n.new_holder.clone(),
            lease_resource_version: n.lease_resource_version.clone(),
            replaced_resource_version: n.replaced_resource_version.clone(),
        };
        tracing::info!(sender = %n.node, service = %format!("{}/{}", takeover.namespace, takeover.service),
            %address, new_holder = %takeover.new_holder, lease_resource_version = %takeover.lease_resource_version,
            "takeover notice received");
        if !self.emit(PeerEvent::Takeover(takeover)) {
            // Not acknowledged: the sender retries with a fresh seq.
            return Err(Status::resource_exhausted("takeover notice not queued; retry"));
        }
        Ok(self.takeover_ack(n))
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn heartbeat(&self, request: Request<v1::Heartbeat>) -> Result<Response<v1::HeartbeatAck>, Status> {
        self.inner
            .receive_heartbeat(request.get_ref(), Instant::now())
            .map(Response::new)
            .map_err(reject_status)
    }

    async fn takeover(
        &self,
        request: Request<v1::TakeoverNotice>,
    ) -> Result<Response<v1::TakeoverAck>, Status> {
        self.inner.receive_takeover(request.get_ref()).map(Response::new)
    }
}
