//! One request per stream, inbound: each negotiated stream is served in a
//! task of its own, spawned by its connection's handler (see
//! [`super::acceptor`]): read the one request, call the peer's service,
//! write the answer, close. The request and its answer never pass through
//! the swarm task.
//!
//! Every stream is bounded: the whole exchange by the request timeout (as
//! libp2p's `request_response` bounds it), the streams open at once by a cap
//! per connection (in the acceptor), and once shutdown begins a new request
//! is answered 503 and whatever is left at the end of the grace period is
//! dropped. The tasks are tracked with the pipelined responders, so the
//! drain waits for their answers to be written.

use std::sync::Arc;

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use p2p_protocol::{ErrorCode, Protocol, RemoteError};
use p2p_service::PeerContext;
use tracing::debug;

use super::drain::{CONNECTION_WAIT, drain_over};
use super::server::Server;
use super::service::{self, Answer};
use crate::wakers::WakingStream;
use crate::wire::{read_request, write_response};

impl<P: Protocol> Server<P> {
    /// Serves the one-request `stream` in a task of its own.
    pub(crate) fn spawn_v1(
        self: &Arc<Self>,
        peer: PeerId,
        connection: ConnectionId,
        remote_addr: Multiaddr,
        stream: WakingStream,
    ) {
        let this = Arc::clone(self);
        self.tasks.spawn_on(
            async move {
                let mut shutdown = this.shutdown.clone();
                let exchange =
                    tokio::time::timeout(this.timeout, this.exchange(peer, connection, remote_addr, stream));
                tokio::select! {
                    done = exchange => if done.is_err() {
                        debug!(%peer, protocol = P::NAME, "a stream took longer than the request timeout; dropped");
                    },
                    () = drain_over(&mut shutdown) => {
                        debug!(%peer, protocol = P::NAME, "shutdown grace over; dropping a stream");
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
        mut stream: WakingStream,
    ) {
        let request = match read_request::<P, _>(&mut stream).await {
            Ok(request) => request,
            Err(err) => {
                debug!(%peer, %err, protocol = P::NAME, "a stream failed before its request");
                return;
            }
        };
        let result = match request {
            Err(err) => {
                debug!(%peer, %err, protocol = P::NAME, "undecodable request");
                let result = Err(RemoteError::new(err.code(), err.to_string()));
                self.refusals.note(peer, &result);
                result
            }
            Ok(_) if self.draining() => Err(RemoteError::new(ErrorCode::OVERLOADED, "shutting down")),
            Ok(request) => self.answer(peer, connection, remote_addr, request).await,
        };
        if let Err(err) = write_response::<P, _>(&mut stream, result).await {
            debug!(%peer, %err, "the requester's stream is gone; answer dropped");
        }
    }

    async fn answer(
        &self,
        peer: PeerId,
        connection: ConnectionId,
        remote_addr: Multiaddr,
        request: P::Request,
    ) -> Answer<P> {
        let Some(cell) = self.peers.wait_for(&connection, CONNECTION_WAIT).await else {
            debug!(%peer, "a stream from a peer with no connection");
            return Err(RemoteError::new(ErrorCode::INTERNAL, "internal error"));
        };
        let ctx = PeerContext::new(peer, remote_addr);
        match service::peer_service::<P>(&cell, &self.make, ctx).await {
            Ok(service) => service::answer::<P>(service, peer, request).await,
            Err(err) => Err(err),
        }
    }
}
