//! Outbound requests as Tower services: `Client`, `PeerClient`, `MakePeerClient`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use libp2p::PeerId;
use p2p_protocol::{GreetRequest, GreetResponse, MAX_FRAME_LEN};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::PollSender;
use tower::Service;

use crate::RequestError;
use crate::swarm_task::Command;

/// The running node as a `Service<(PeerId, GreetRequest)>`.
///
/// Cheap to clone. `poll_ready` reserves a slot in the swarm task's bounded
/// command channel, so a caller that outpaces the node sees back-pressure
/// instead of an unbounded queue. Once the node has shut down, `poll_ready`
/// and every response fail with [`RequestError::Shutdown`], never hang.
///
/// Per-peer back-pressure belongs to [`PeerClient`]: `poll_ready` cannot
/// depend on which peer the next request goes to.
#[derive(Debug)]
pub struct Client {
    commands: PollSender<Command>,
}

impl Clone for Client {
    fn clone(&self) -> Self {
        // A clone starts with no reserved slot, as tower's `Buffer` does.
        Self { commands: self.commands.clone() }
    }
}

impl Client {
    pub(crate) fn new(commands: mpsc::Sender<Command>) -> Self {
        Self { commands: PollSender::new(commands) }
    }

    /// A service bound to one peer.
    pub fn peer(&self, peer_id: PeerId) -> PeerClient {
        PeerClient { client: self.clone(), peer_id }
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
        if body_len(&request) > MAX_FRAME_LEN {
            self.commands.abort_send();
            return ResponseFuture::failed(RequestError::TooLarge);
        }
        let (reply, response) = oneshot::channel();
        match self.commands.send_item(Command::Request { peer, request, reply }) {
            Ok(()) => ResponseFuture { state: State::Waiting(response) },
            Err(_) => ResponseFuture::failed(RequestError::Shutdown),
        }
    }
}

/// The encoded size of a request body: `uvarint(len) || utf-8 bytes`.
fn body_len(request: &GreetRequest) -> usize {
    let len = request.message.len();
    unsigned_varint_len(len as u64) + len
}

fn unsigned_varint_len(n: u64) -> usize {
    (64 - n.max(1).leading_zeros() as usize).div_ceil(7)
}

/// The response future of [`Client`] and [`PeerClient`].
#[derive(Debug)]
pub struct ResponseFuture {
    state: State,
}

#[derive(Debug)]
enum State {
    Waiting(oneshot::Receiver<Result<GreetResponse, RequestError>>),
    Failed(Option<RequestError>),
}

impl ResponseFuture {
    fn failed(err: RequestError) -> Self {
        Self { state: State::Failed(Some(err)) }
    }
}

impl Future for ResponseFuture {
    type Output = Result<GreetResponse, RequestError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            // The swarm task dropped the reply: it has ended.
            State::Waiting(rx) => {
                Poll::Ready(ready!(Pin::new(rx).poll(cx)).unwrap_or(Err(RequestError::Shutdown)))
            }
            State::Failed(err) => Poll::Ready(Err(err.take().unwrap_or(RequestError::Shutdown))),
        }
    }
}

/// A `Service<GreetRequest>` bound to one peer.
#[derive(Debug, Clone)]
pub struct PeerClient {
    client: Client,
    peer_id: PeerId,
}

impl PeerClient {
    /// The peer this client sends to.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }
}

impl Service<GreetRequest> for PeerClient {
    type Response = GreetResponse;
    type Error = RequestError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RequestError>> {
        self.client.poll_ready(cx)
    }

    fn call(&mut self, request: GreetRequest) -> ResponseFuture {
        self.client.call((self.peer_id, request))
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

    #[test]
    fn body_len_matches_the_encoder() {
        for len in [0, 1, 127, 128, 16_383, 16_384, MAX_FRAME_LEN] {
            let request = GreetRequest::new("x".repeat(len));
            assert_eq!(body_len(&request), p2p_protocol::encode(&request).len(), "len {len}");
        }
    }
}
