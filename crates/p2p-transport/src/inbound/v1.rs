//! Greet 1.0.0 inbound: each negotiated stream is served in a task of its
//! own, spawned by its connection's handler (see [`super::acceptor`]): read
//! the one request, call the peer's service, write the answer, close. The
//! request and its answer never pass through the swarm task.
//!
//! Every stream is bounded: the whole exchange by the request timeout (as
//! libp2p's `request_response` bounds it), the streams open at once by a cap
//! per connection (in the acceptor), and once shutdown begins a new request
//! is answered 503 and whatever is left at the end of the grace period is
//! dropped. The tasks are tracked with the 2.0.0 responders, so the drain
//! waits for their answers to be written.

use std::sync::Arc;
use std::time::Duration;

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use p2p_protocol::{ErrorCode, GreetRequest, GreetResult, RemoteError};
use p2p_service::PeerContext;
use tokio::runtime::Handle;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::drain::{CONNECTION_WAIT, Stop, drain_over};
use super::peers::InboundPeers;
use super::service::{self, MakePeerService};
use super::stream::InboundStream;
use crate::gate::Refusals;
use crate::wire::{read_request, write_response};

/// What serves 1.0.0 streams; shared by every connection's handler.
pub(crate) struct ServeV1 {
    pub(crate) peers: Arc<InboundPeers>,
    pub(crate) make: MakePeerService,
    /// Where undecodable requests are reported (the service reports the rest).
    pub(crate) refusals: Refusals,
    /// The shutdown signal (503 from then on, and the end of the grace).
    pub(crate) shutdown: Stop,
    /// Where the stream's task is spawned, so that the drain waits for it.
    pub(crate) tasks: TaskTracker,
    /// The whole exchange, from the stream's arrival to the answer written.
    pub(crate) timeout: Duration,
    /// The node's runtime, which the stream tasks are spawned on.
    pub(crate) runtime: Handle,
}

impl ServeV1 {
    /// Serves `stream` in a task of its own.
    pub(crate) fn spawn(
        self: &Arc<Self>,
        peer: PeerId,
        connection: ConnectionId,
        remote_addr: Multiaddr,
        stream: InboundStream,
    ) {
        let this = Arc::clone(self);
        self.tasks.spawn_on(
            async move {
                let mut shutdown = this.shutdown.clone();
                let exchange =
                    tokio::time::timeout(this.timeout, this.exchange(peer, connection, remote_addr, stream));
                tokio::select! {
                    done = exchange => if done.is_err() {
                        debug!(%peer, "greet 1.0.0 stream took longer than the request timeout; dropped");
                    },
                    () = drain_over(&mut shutdown) => {
                        debug!(%peer, "shutdown grace over; dropping a greet 1.0.0 stream");
                    }
                }
            },
            &self.runtime,
        );
    }

    async fn exchange(
        &self,
        peer: PeerId,
        connection: ConnectionId,
        remote_addr: Multiaddr,
        mut stream: InboundStream,
    ) {
        let request = match read_request(&mut stream).await {
            Ok(request) => request,
            Err(err) => {
                debug!(%peer, %err, "greet 1.0.0 stream failed before its request");
                return;
            }
        };
        let result = match request {
            Err(err) => {
                debug!(%peer, %err, "undecodable greet request");
                let result = Err(RemoteError::new(err.code(), err.to_string()));
                self.refusals.note(peer, &result);
                result
            }
            Ok(_) if self.shutdown.borrow().is_some() => {
                Err(RemoteError::new(ErrorCode::OVERLOADED, "shutting down"))
            }
            Ok(request) => self.answer(peer, connection, remote_addr, request).await,
        };
        if let Err(err) = write_response(&mut stream, result).await {
            debug!(%peer, %err, "the requester's stream is gone; answer dropped");
        }
    }

    async fn answer(
        &self,
        peer: PeerId,
        connection: ConnectionId,
        remote_addr: Multiaddr,
        request: GreetRequest,
    ) -> GreetResult {
        let Some(cell) = self.peers.wait_for(&connection, CONNECTION_WAIT).await else {
            debug!(%peer, "greet 1.0.0 stream from a peer with no connection");
            return Err(RemoteError::new(ErrorCode::INTERNAL, "internal error"));
        };
        let ctx = PeerContext::new(peer, remote_addr);
        match service::peer_service(&cell, &self.make, ctx).await {
            Ok(service) => service::answer(service, peer, request).await,
            Err(err) => Err(err),
        }
    }
}
