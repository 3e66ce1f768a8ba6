//! Greet 1.0.0 inbound: each request runs in a task of its own; the answer
//! comes back to the swarm task over a bounded channel and is sent from there.

use std::collections::HashSet;
use std::sync::Arc;

use libp2p::request_response::{self, InboundRequestId, ResponseChannel};
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use p2p_protocol::{ErrorCode, GreetResult, RemoteError};
use p2p_service::PeerContext;
use tokio::sync::mpsc;
use tracing::debug;

use super::peers::InboundPeers;
use super::service::{self, MakePeerService};
use crate::gate::Refusals;
use crate::wire::{GreetCodec, InboundRequest};

/// Answers in flight back to the swarm task. Handler tasks wait for room
/// here; the swarm task only ever receives from it.
const ANSWER_CAPACITY: usize = 1024;

/// At most this many queued answers are taken per wake-up, so the swarm
/// itself is still polled often under load.
const BATCH: usize = 64;

/// A handler's answer on its way back to the swarm task.
pub(crate) struct Answer {
    request_id: InboundRequestId,
    channel: ResponseChannel<GreetResult>,
    result: GreetResult,
}

/// The swarm task's side of inbound 1.0.0 requests.
pub(crate) struct InboundV1 {
    make: MakePeerService,
    peers: Arc<InboundPeers>,
    answers_tx: mpsc::Sender<Answer>,
    answers: mpsc::Receiver<Answer>,
    /// Requests handed to a handler and not yet answered.
    in_flight: usize,
    /// Answers handed to libp2p and not yet written to their stream.
    unsent: HashSet<InboundRequestId>,
    /// Where undecodable requests are reported (the service reports the rest).
    refusals: Refusals,
}

type Greet = request_response::Behaviour<GreetCodec>;

impl InboundV1 {
    pub(crate) fn new(make: MakePeerService, peers: Arc<InboundPeers>, refusals: Refusals) -> Self {
        let (answers_tx, answers) = mpsc::channel(ANSWER_CAPACITY);
        Self { make, peers, answers_tx, answers, in_flight: 0, unsent: HashSet::new(), refusals }
    }

    /// Hands `request` to its peer's service in a task of its own; refused
    /// at once (503) while `draining`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_request(
        &mut self,
        greet: &mut Greet,
        peer: PeerId,
        connection: ConnectionId,
        remote_addr: Multiaddr,
        request_id: InboundRequestId,
        request: InboundRequest,
        channel: ResponseChannel<GreetResult>,
        draining: bool,
    ) {
        let request = match request {
            Ok(request) => request,
            Err(err) => {
                debug!(%peer, %err, "undecodable greet request");
                let answer = Err(RemoteError::new(err.code(), err.to_string()));
                self.refusals.note(peer, &answer);
                return self.respond(greet, request_id, channel, answer);
            }
        };
        if draining {
            let err = RemoteError::new(ErrorCode::OVERLOADED, "shutting down");
            return self.respond(greet, request_id, channel, Err(err));
        }
        let Some(cell) = self.peers.get(&connection) else {
            // A request always arrives on an established connection; be safe anyway.
            let err = RemoteError::new(ErrorCode::INTERNAL, "internal error");
            return self.respond(greet, request_id, channel, Err(err));
        };
        let make = Arc::clone(&self.make);
        let answers = self.answers_tx.clone();
        self.in_flight += 1;
        tokio::spawn(async move {
            let ctx = PeerContext::new(peer, remote_addr);
            let result = match service::peer_service(&cell, &make, ctx).await {
                Ok(service) => service::answer(service, peer, request).await,
                Err(err) => Err(err),
            };
            // Fails only if the swarm task has ended: nobody is left to answer.
            let _ = answers.send(Answer { request_id, channel, result }).await;
        });
    }

    /// The next handler's answer (cancel-safe, for the swarm task's `select!`).
    pub(crate) async fn next_answer(&mut self) -> Option<Answer> {
        self.answers.recv().await
    }

    /// Sends `answer`, and those ready behind it: under load answers arrive
    /// in bursts, better taken now than one per wake-up of the whole loop.
    pub(crate) fn on_answers(&mut self, greet: &mut Greet, answer: Answer) {
        self.on_answer(greet, answer);
        for _ in 0..BATCH {
            let Ok(answer) = self.answers.try_recv() else { break };
            self.on_answer(greet, answer);
        }
    }

    fn on_answer(&mut self, greet: &mut Greet, Answer { request_id, channel, result }: Answer) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.respond(greet, request_id, channel, result);
    }

    fn respond(
        &mut self,
        greet: &mut Greet,
        request_id: InboundRequestId,
        channel: ResponseChannel<GreetResult>,
        result: GreetResult,
    ) {
        if greet.send_response(channel, result).is_ok() {
            // Tracked until written, so that a shutdown does not cut it off.
            self.unsent.insert(request_id);
        } else {
            debug!("the requester's stream is gone; answer dropped");
        }
    }

    /// The answer to `request_id` was written, or its stream failed.
    pub(crate) fn on_done(&mut self, request_id: InboundRequestId) {
        self.unsent.remove(&request_id);
    }

    /// Requests still with a handler.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Nothing in flight and every answer written: a drain may end.
    pub(crate) fn is_idle(&self) -> bool {
        self.in_flight == 0 && self.unsent.is_empty()
    }
}
