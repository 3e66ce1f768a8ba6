//! Outbound requests as Tower services: `Client`, `PeerClient`, `MakePeerClient`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures::future::BoxFuture;
use libp2p::PeerId;
use p2p_protocol::{GreetRequest, GreetResponse, MAX_FRAME_LEN, MAX_VARINT_LEN};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio_util::sync::{PollSemaphore, PollSender};
use tower::Service;

use super::mux::{Mux, StreamTimeouts};
use super::peers::OutboundPeers;
use crate::command::Command;
use crate::{NodeConfig, RequestError};

/// The running node as a `Service<(PeerId, GreetRequest)>`.
///
/// Cheap to clone. `poll_ready` reserves a slot in the swarm task's bounded
/// command channel, so a caller that outpaces the node sees back-pressure
/// instead of an unbounded queue. Once the node has shut down, `poll_ready`
/// and every response fail with [`RequestError::Shutdown`], never hang.
///
/// Requests to a peer that speaks greet v2 go on its pipelined stream
/// instead, without passing through the swarm task; callers never see which.
/// Per-peer back-pressure belongs to [`PeerClient`]: `poll_ready` cannot
/// depend on which peer the next request goes to.
#[derive(Debug)]
pub struct Client {
    commands: PollSender<Command>,
    peers: Arc<OutboundPeers>,
    pipelining: bool,
    /// How the pipelined streams this client opens idle and write.
    timeouts: StreamTimeouts,
}

impl Clone for Client {
    fn clone(&self) -> Self {
        // A clone starts with no reserved slot, as tower's `Buffer` does.
        Self {
            commands: self.commands.clone(),
            peers: Arc::clone(&self.peers),
            pipelining: self.pipelining,
            timeouts: self.timeouts,
        }
    }
}

impl Client {
    pub(crate) fn new(
        commands: mpsc::Sender<Command>,
        peers: Arc<OutboundPeers>,
        config: &NodeConfig,
    ) -> Self {
        Self {
            commands: PollSender::new(commands),
            peers,
            pipelining: config.greet_v2,
            timeouts: StreamTimeouts::new(config),
        }
    }

    /// The protocol a request to `peer` goes on now: [`GreetVersion::V2`]
    /// when both sides speak greet 2.0.0 (identify said so for the peer),
    /// [`GreetVersion::V1`] otherwise. `call` routes by this very rule.
    pub fn protocol_for(&self, peer: &PeerId) -> GreetVersion {
        match self.v2_mux(peer) {
            Some(_) => GreetVersion::V2,
            None => GreetVersion::V1,
        }
    }

    fn v2_mux(&self, peer: &PeerId) -> Option<Arc<Mux>> {
        if self.pipelining { self.peers.v2_mux(peer) } else { None }
    }

    /// A service bound to one peer, speaking whichever protocol version the peer prefers.
    pub fn peer(&self, peer_id: PeerId) -> PeerClient {
        PeerClient { client: self.clone(), peer_id, version: GreetVersion::Auto, reserved: None, slots: None }
    }

    /// The v1 path: through the swarm task, in the slot `poll_ready` reserved.
    fn call_v1(&mut self, peer: PeerId, request: GreetRequest) -> ResponseFuture {
        if body_len(&request) > MAX_FRAME_LEN {
            self.commands.abort_send();
            return ResponseFuture::failed(RequestError::TooLarge);
        }
        let Some(swarm_task) = self.commands.get_ref().cloned() else {
            return ResponseFuture::failed(RequestError::Shutdown);
        };
        let (reply, response) = oneshot::channel();
        if self.commands.send_item(Command::Request { peer, request, reply }).is_err() {
            return ResponseFuture::failed(RequestError::Shutdown);
        }
        ResponseFuture::boxed(async move {
            // A slot reserved just before the swarm task ended still takes the
            // command, into a channel nobody reads: then the reply never comes
            // nor is dropped, and only the channel's closing says so.
            tokio::select! {
                biased;
                reply = response => reply.unwrap_or(Err(RequestError::Shutdown)),
                () = swarm_task.closed() => Err(RequestError::Shutdown),
            }
        })
    }
}

impl Service<(PeerId, GreetRequest)> for Client {
    type Response = GreetResponse;
    type Error = RequestError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RequestError>> {
        self.commands.poll_reserve(cx).map_err(|_| RequestError::Shutdown)
    }

    fn call(&mut self, (peer, request): (PeerId, GreetRequest)) -> ResponseFuture {
        if let Some(mux) = self.v2_mux(&peer) {
            // The reserved command slot is not needed: give it back.
            self.commands.abort_send();
            if body_len(&request) + MAX_VARINT_LEN > MAX_FRAME_LEN {
                return ResponseFuture::failed(RequestError::TooLarge);
            }
            return ResponseFuture::boxed(mux.call(request, self.timeouts));
        }
        self.call_v1(peer, request)
    }
}

/// Which greet protocol a [`PeerClient`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum GreetVersion {
    /// 2.0.0 when identify says the peer speaks it (and this node does), 1.0.0 otherwise.
    #[default]
    Auto,
    /// Always 1.0.0: one stream per request.
    V1,
    /// Always 2.0.0 once connected, even before identify has spoken; a peer
    /// without it fails with [`RequestError::UnsupportedProtocol`].
    V2,
}

/// A `Service<GreetRequest>` bound to one peer.
///
/// On greet v2, `poll_ready` waits for a free slot on the peer's pipelined
/// stream, so callers get real per-peer back-pressure; on v1 it reserves a
/// slot in the swarm task's command channel.
#[derive(Debug)]
pub struct PeerClient {
    client: Client,
    peer_id: PeerId,
    version: GreetVersion,
    reserved: Option<Reserved>,
    /// The pipelined stream's slots, once the peer is known to have one.
    slots: Option<(Arc<Mux>, PollSemaphore)>,
}

#[derive(Debug)]
enum Reserved {
    V1,
    V2(Arc<Mux>, OwnedSemaphorePermit),
}

impl Clone for PeerClient {
    fn clone(&self) -> Self {
        // A clone starts with no reserved slot.
        let slots = self.slots.as_ref().map(|(mux, _)| (Arc::clone(mux), PollSemaphore::new(mux.permits())));
        Self {
            client: self.client.clone(),
            peer_id: self.peer_id,
            version: self.version,
            reserved: None,
            slots,
        }
    }
}

impl PeerClient {
    /// The peer this client sends to.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// This client, speaking `version`.
    pub fn with_version(mut self, version: GreetVersion) -> Self {
        self.version = version;
        self
    }

    fn pipelined_mux(&self) -> Option<Arc<Mux>> {
        let needs_identify = match self.version {
            GreetVersion::V1 => return None,
            GreetVersion::Auto if !self.client.pipelining => return None,
            GreetVersion::Auto => true,
            GreetVersion::V2 => false,
        };
        // The mux in hand while it is still the peer's: no registry lock per call.
        if let Some((mux, _)) = &self.slots
            && mux.is_current()
            && (!needs_identify || mux.speaks_v2())
        {
            return Some(Arc::clone(mux));
        }
        if needs_identify {
            self.client.peers.v2_mux(&self.peer_id)
        } else {
            self.client.peers.any_mux(&self.peer_id)
        }
    }
}

impl Service<GreetRequest> for PeerClient {
    type Response = GreetResponse;
    type Error = RequestError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RequestError>> {
        if self.reserved.is_some() {
            return Poll::Ready(Ok(()));
        }
        match self.pipelined_mux() {
            Some(mux) => {
                if self.slots.as_ref().is_none_or(|(known, _)| !Arc::ptr_eq(known, &mux)) {
                    self.slots = Some((Arc::clone(&mux), PollSemaphore::new(mux.permits())));
                }
                let (_, slots) = self.slots.as_mut().expect("just set");
                let permit = ready!(slots.poll_acquire(cx)).ok_or(RequestError::Shutdown)?;
                self.reserved = Some(Reserved::V2(mux, permit));
            }
            None => {
                ready!(self.client.poll_ready(cx))?;
                self.reserved = Some(Reserved::V1);
            }
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: GreetRequest) -> ResponseFuture {
        match self.reserved.take() {
            Some(Reserved::V2(mux, permit)) => {
                if body_len(&request) + MAX_VARINT_LEN > MAX_FRAME_LEN {
                    return ResponseFuture::failed(RequestError::TooLarge);
                }
                ResponseFuture::boxed(mux.call_with(permit, request, self.client.timeouts))
            }
            // Without a reservation the command channel refuses the request
            // (an error, not a panic), as tower's contract allows.
            Some(Reserved::V1) | None => self.client.call_v1(self.peer_id, request),
        }
    }
}

/// The encoded size of a request body: `uvarint(len) || utf-8 bytes`.
fn body_len(request: &GreetRequest) -> usize {
    let len = request.message.len();
    p2p_protocol::uvarint_len(len as u64) + len
}

/// The response future of [`Client`] and [`PeerClient`].
#[derive(Debug)]
pub struct ResponseFuture {
    state: State,
}

enum State {
    /// Waiting for the swarm task's reply (v1) or the pipelined stream's (v2).
    Pending(BoxFuture<'static, Result<GreetResponse, RequestError>>),
    Failed(Option<RequestError>),
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pending(_) => "Pending",
            Self::Failed(_) => "Failed",
        })
    }
}

impl ResponseFuture {
    fn failed(err: RequestError) -> Self {
        Self { state: State::Failed(Some(err)) }
    }

    fn boxed(future: impl Future<Output = Result<GreetResponse, RequestError>> + Send + 'static) -> Self {
        Self { state: State::Pending(Box::pin(future)) }
    }
}

impl Future for ResponseFuture {
    type Output = Result<GreetResponse, RequestError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            State::Pending(future) => future.as_mut().poll(cx),
            State::Failed(err) => Poll::Ready(Err(err.take().unwrap_or(RequestError::Shutdown))),
        }
    }
}

/// A `MakeService<PeerId>`: yields a [`PeerClient`] for each peer.
#[derive(Debug, Clone)]
pub struct MakePeerClient {
    client: Client,
}

impl MakePeerClient {
    pub(crate) fn new(client: Client) -> Self {
        Self { client }
    }
}

impl Service<PeerId> for MakePeerClient {
    type Response = PeerClient;
    type Error = Infallible;
    type Future = std::future::Ready<Result<PeerClient, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, peer_id: PeerId) -> Self::Future {
        std::future::ready(Ok(self.client.peer(peer_id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_request_sent_as_the_swarm_task_ends_fails_instead_of_hanging() {
        let (commands, swarm_task_end) = mpsc::channel(8);
        let mut client = Client::new(commands, Arc::new(OutboundPeers::default()), &NodeConfig::default());
        // The slot is reserved while the swarm task still runs...
        std::future::poll_fn(|cx| client.poll_ready(cx)).await.unwrap();
        // ...which then ends (drops its receiver) before the command is sent.
        drop(swarm_task_end);
        let response = client.call((PeerId::random(), GreetRequest::new("late")));
        let result = tokio::time::timeout(std::time::Duration::from_secs(60), response).await;
        assert_eq!(result.expect("no hang"), Err(RequestError::Shutdown));
        // And later calls are refused at once.
        let ready = std::future::poll_fn(|cx| client.poll_ready(cx)).await;
        assert_eq!(ready, Err(RequestError::Shutdown));
    }

    #[test]
    fn body_len_matches_the_encoder() {
        for len in [0, 1, 127, 128, 16_383, 16_384, MAX_FRAME_LEN] {
            let request = GreetRequest::new("x".repeat(len));
            assert_eq!(body_len(&request), p2p_protocol::encode(&request).len(), "len {len}");
        }
    }
}
