//! Greet 1.0.0 outbound: requests sent by the swarm task, answers matched by
//! libp2p's request id and handed back to the caller's oneshot.

use std::collections::HashMap;

use libp2p::request_response::{self, OutboundFailure, OutboundRequestId};
use libp2p::{Multiaddr, PeerId};
use p2p_protocol::{GreetRequest, GreetResponse, GreetResult};
use tokio::sync::oneshot;
use tracing::debug;

use crate::RequestError;
use crate::wire::GreetCodec;

type Reply = oneshot::Sender<Result<GreetResponse, RequestError>>;

/// The swarm task's 1.0.0 requests awaiting answers.
#[derive(Default)]
pub(crate) struct OutboundV1 {
    pending: HashMap<OutboundRequestId, Reply>,
}

impl OutboundV1 {
    /// Sends `request` to `peer`, unless the caller gave up already or the
    /// peer is known not to speak greet.
    pub(crate) fn send(
        &mut self,
        greet: &mut request_response::Behaviour<GreetCodec>,
        peer: PeerId,
        request: GreetRequest,
        reply: Reply,
        speaks_greet: Option<bool>,
    ) {
        if reply.is_closed() {
            return; // the caller gave up before we got to it
        }
        if speaks_greet == Some(false) {
            let _ = reply.send(Err(RequestError::UnsupportedProtocol));
            return;
        }
        let id = greet.send_request(&peer, Ok(request));
        self.pending.insert(id, reply);
    }

    /// Hands the answer to its caller; returns the address the peer says it
    /// saw us at (a candidate for our external addresses).
    pub(crate) fn on_response(&mut self, id: OutboundRequestId, response: GreetResult) -> Option<Multiaddr> {
        let reply = self.pending.remove(&id)?;
        let observed = response.as_ref().ok().map(|r| r.observed_addr.clone());
        let _ = reply.send(response.map_err(RequestError::Remote));
        observed
    }

    pub(crate) fn on_failure(&mut self, peer: PeerId, id: OutboundRequestId, error: OutboundFailure) {
        debug!(%peer, %error, "outbound greet failed");
        if let Some(reply) = self.pending.remove(&id) {
            let _ = reply.send(Err(error.into()));
        }
    }

    /// Fails every waiting caller with [`RequestError::Shutdown`].
    pub(crate) fn shut_down(&mut self) {
        for (_, reply) in self.pending.drain() {
            let _ = reply.send(Err(RequestError::Shutdown));
        }
    }
}
