//! Outbound requests as Tower services: `Client`, `PeerClient`, `MakePeerClient`,
//! each for one protocol `P`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::future::BoxFuture;
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use p2p_protocol::{Greet, GreetResponse, Protocol, RemoteError, decode, encode};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::{PollSemaphore, PollSender};
use tower::Service;

use super::mux::{Mux, StreamTimeouts};
use super::peers::OutboundPeers;
use crate::command::{Command, V1Request};
use crate::{NodeConfig, RequestError};

/// The running node as a `Service<(PeerId, P::Request)>`: greet's by
/// default, any protocol's as `node.client::<P>()`.
///
/// Cheap to clone. `poll_ready` reserves a slot in the swarm task's bounded
/// command channel, so a caller that outpaces the node sees back-pressure
/// instead of an unbounded queue. Once the node has shut down, `poll_ready`
/// and every response fail with [`RequestError::Shutdown`], never hang.
///
/// A request goes on its own stream, on `P::NAME`; the swarm task only
/// picks the connection (and dials the peer if it has none), the exchange
/// runs in a task of its own. Requests to a peer that speaks
/// `P::PIPELINED_NAME` go on its pipelined stream instead, without passing
/// through the swarm task; callers never see which.
/// Per-peer back-pressure belongs to [`PeerClient`]: `poll_ready` cannot
/// depend on which peer the next request goes to.
pub struct Client<P: Protocol = Greet> {
    commands: PollSender<Command>,
    peers: Arc<OutboundPeers<P>>,
    pipelining: bool,
    /// How the pipelined streams this client opens idle and write.
    timeouts: StreamTimeouts,
    request_timeout: Duration,
    /// Where the addresses the peers' answers say they saw us at go.
    observations: mpsc::Sender<(PeerId, Multiaddr)>,
}

impl<P: Protocol> std::fmt::Debug for Client<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("protocol", &P::NAME).finish_non_exhaustive()
    }
}

impl<P: Protocol> Clone for Client<P> {
    fn clone(&self) -> Self {
        // A clone starts with no reserved slot, as tower's `Buffer` does.
        Self {
            commands: self.commands.clone(),
            peers: Arc::clone(&self.peers),
            pipelining: self.pipelining,
            timeouts: self.timeouts,
            request_timeout: self.request_timeout,
            observations: self.observations.clone(),
        }
    }
}

impl<P: Protocol> Client<P> {
    pub(crate) fn new(
        commands: mpsc::Sender<Command>,
        peers: Arc<OutboundPeers<P>>,
        config: &NodeConfig,
        observations: mpsc::Sender<(PeerId, Multiaddr)>,
    ) -> Self {
        Self {
            commands: PollSender::new(commands),
            peers,
            pipelining: config.greet_v2 && P::PIPELINED_NAME.is_some(),
            timeouts: StreamTimeouts::new(config),
            request_timeout: config.request_timeout,
            observations,
        }
    }

    /// The name a request to `peer` goes on now: [`GreetVersion::V2`]
    /// (`P::PIPELINED_NAME`) when both sides speak it (identify said so for
    /// the peer), [`GreetVersion::V1`] (`P::NAME`) otherwise. `call` routes
    /// by this very rule.
    pub fn protocol_for(&self, peer: &PeerId) -> GreetVersion {
        match self.v2_mux(peer) {
            Some(_) => GreetVersion::V2,
            None => GreetVersion::V1,
        }
    }

    fn v2_mux(&self, peer: &PeerId) -> Option<Arc<Mux<P>>> {
        if self.pipelining { self.peers.v2_mux(peer) } else { None }
    }

    /// A service bound to one peer, speaking whichever protocol version the peer prefers.
    pub fn peer(&self, peer_id: PeerId) -> PeerClient<P> {
        PeerClient { client: self.clone(), peer_id, version: GreetVersion::Auto, reserved: None, slots: None }
    }

    /// The one-request path: the swarm task picks the connection, in the
    /// slot `poll_ready` reserved; the exchange runs in a task of its own.
    fn call_v1(&mut self, peer: PeerId, request: P::Request) -> ResponseFuture<P::Response> {
        let body = encode(&request);
        if body.len() > P::MAX_FRAME_LEN {
            self.commands.abort_send();
            return ResponseFuture::failed(RequestError::TooLarge);
        }
        let Some(swarm_task) = self.commands.get_ref().cloned() else {
            return ResponseFuture::failed(RequestError::Shutdown);
        };
        let (reply, response) = oneshot::channel();
        let request = V1Request {
            protocol: StreamProtocol::new(P::NAME),
            body,
            max_frame: P::MAX_FRAME_LEN,
            deadline: Instant::now() + self.request_timeout,
            reply,
        };
        if self.commands.send_item(Command::Request { peer, request }).is_err() {
            return ResponseFuture::failed(RequestError::Shutdown);
        }
        let observations = self.observations.clone();
        ResponseFuture::boxed(async move {
            // A slot reserved just before the swarm task ended still takes the
            // command, into a channel nobody reads: then the reply never comes
            // nor is dropped, and only the channel's closing says so.
            let body = tokio::select! {
                biased;
                reply = response => match reply {
                    Ok(answer) => answer?,
                    // Dropped unanswered: its connection closed (with the
                    // request still queued on it), or the node stopped.
                    Err(_) if swarm_task.is_closed() => return Err(RequestError::Shutdown),
                    Err(_) => return Err(RequestError::ConnectionClosed),
                },
                () = swarm_task.closed() => return Err(RequestError::Shutdown),
            };
            let answer: Result<P::Response, RemoteError> =
                decode(&body).map_err(|err| RequestError::Io(format!("undecodable answer: {err}")))?;
            if let Some(observed) = answer.as_ref().ok().and_then(P::observed_addr) {
                // A candidate only; dropped when the swarm task is busy.
                let _ = observations.try_send((peer, observed.clone()));
            }
            answer.map_err(RequestError::Remote)
        })
    }
}

impl<P: Protocol> Service<(PeerId, P::Request)> for Client<P> {
    type Response = P::Response;
    type Error = RequestError;
    type Future = ResponseFuture<P::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RequestError>> {
        self.commands.poll_reserve(cx).map_err(|_| RequestError::Shutdown)
    }

    fn call(&mut self, (peer, request): (PeerId, P::Request)) -> Self::Future {
        if let Some(mux) = self.v2_mux(&peer) {
            // The reserved command slot is not needed: give it back.
            self.commands.abort_send();
            return ResponseFuture::boxed(mux.call(request, self.timeouts));
        }
        self.call_v1(peer, request)
    }
}

/// Which of its protocol's names a [`PeerClient`] speaks: `V1` is the
/// one-request name (greet's `/p2p-node/greet/1.0.0`), `V2` the pipelined
/// one (greet's 2.0.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum GreetVersion {
    /// Pipelined when identify says the peer speaks it (and this node does),
    /// one stream per request otherwise.
    #[default]
    Auto,
    /// Always one stream per request.
    V1,
    /// Always pipelined once connected, even before identify has spoken; a
    /// peer without it fails with [`RequestError::UnsupportedProtocol`].
    V2,
}

/// A `Service<P::Request>` bound to one peer.
///
/// On the pipelined name, `poll_ready` waits for a free slot on the peer's
/// pipelined stream, so callers get real per-peer back-pressure; on the
/// one-request name it reserves a slot in the swarm task's command channel.
#[derive(Debug)]
pub struct PeerClient<P: Protocol = Greet> {
    client: Client<P>,
    peer_id: PeerId,
    version: GreetVersion,
    reserved: Option<Reserved<P>>,
    /// The pipelined stream's slots, once the peer is known to have one.
    slots: Option<(Arc<Mux<P>>, PollSemaphore)>,
}

#[derive(Debug)]
enum Reserved<P: Protocol> {
    V1,
    V2(Arc<Mux<P>>, OwnedSemaphorePermit),
}

impl<P: Protocol> Clone for PeerClient<P> {
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

impl<P: Protocol> PeerClient<P> {
    /// The peer this client sends to.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// This client, speaking `version`.
    pub fn with_version(mut self, version: GreetVersion) -> Self {
        self.version = version;
        self
    }

    fn pipelined_mux(&self) -> Option<Arc<Mux<P>>> {
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

impl<P: Protocol> Service<P::Request> for PeerClient<P> {
    type Response = P::Response;
    type Error = RequestError;
    type Future = ResponseFuture<P::Response>;

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

    fn call(&mut self, request: P::Request) -> Self::Future {
        match self.reserved.take() {
            Some(Reserved::V2(mux, permit)) => {
                ResponseFuture::boxed(mux.call_with(permit, request, self.client.timeouts))
            }
            // Without a reservation the command channel refuses the request
            // (an error, not a panic), as tower's contract allows.
            Some(Reserved::V1) | None => self.client.call_v1(self.peer_id, request),
        }
    }
}

/// The response future of [`Client`] and [`PeerClient`].
#[derive(Debug)]
pub struct ResponseFuture<T = GreetResponse> {
    state: State<T>,
}

enum State<T> {
    /// Waiting for the one-request exchange's answer or the pipelined stream's.
    Pending(BoxFuture<'static, Result<T, RequestError>>),
    Failed(Option<RequestError>),
}

impl<T> std::fmt::Debug for State<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pending(_) => "Pending",
            Self::Failed(_) => "Failed",
        })
    }
}

impl<T> ResponseFuture<T> {
    fn failed(err: RequestError) -> Self {
        Self { state: State::Failed(Some(err)) }
    }

    fn boxed(future: impl Future<Output = Result<T, RequestError>> + Send + 'static) -> Self {
        Self { state: State::Pending(Box::pin(future)) }
    }
}

impl<T> Future for ResponseFuture<T> {
    type Output = Result<T, RequestError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            State::Pending(future) => future.as_mut().poll(cx),
            State::Failed(err) => Poll::Ready(Err(err.take().unwrap_or(RequestError::Shutdown))),
        }
    }
}

/// A `MakeService<PeerId>`: yields a [`PeerClient`] for each peer.
#[derive(Debug, Clone)]
pub struct MakePeerClient<P: Protocol = Greet> {
    client: Client<P>,
}

impl<P: Protocol> MakePeerClient<P> {
    pub(crate) fn new(client: Client<P>) -> Self {
        Self { client }
    }
}

impl<P: Protocol> Service<PeerId> for MakePeerClient<P> {
    type Response = PeerClient<P>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<PeerClient<P>, Infallible>>;

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
        let observations = mpsc::channel(1).0;
        let mut client: Client =
            Client::new(commands, Arc::new(OutboundPeers::default()), &NodeConfig::default(), observations);
        // The slot is reserved while the swarm task still runs...
        std::future::poll_fn(|cx| client.poll_ready(cx)).await.unwrap();
        // ...which then ends (drops its receiver) before the command is sent.
        drop(swarm_task_end);
        let response = client.call((PeerId::random(), p2p_protocol::GreetRequest::new("late")));
        let result = tokio::time::timeout(std::time::Duration::from_secs(60), response).await;
        assert_eq!(result.expect("no hang"), Err(RequestError::Shutdown));
        // And later calls are refused at once.
        let ready = std::future::poll_fn(|cx| client.poll_ready(cx)).await;
        assert_eq!(ready, Err(RequestError::Shutdown));
    }
}
