//! Debugging aids for fault-injection scripts, behind hidden flags of `p2p-node run`
//! that exist only in a binary built with `--features debug-hooks` (the module is
//! also compiled for tests, so that `cargo test --workspace` runs its tests).
//!
//! `--debug-stall-peer <PEER_ID>` wraps the node's `MakeService<PeerContext>`
//! in [`MakeStalling`]: that one peer gets a handler that never answers, so
//! the stack's handler timeout answers its requests with 408 while every
//! other peer is served as usual (`scripts/faults-netns.sh`, scenario 3).

use std::future::{Future, Pending, pending};
use std::pin::Pin;
use std::task::{Context, Poll};

use p2p_protocol::{GreetRequest, GreetResponse};
use p2p_service::{BoxError, PeerContext};
use p2p_transport::libp2p::PeerId;
use tower::Service;
use tower::util::Either;
use tracing::warn;

/// A `MakeService<PeerContext>` that makes `inner`'s handler for every peer
/// but `stalled`, which gets a [`Stalled`] handler instead.
#[derive(Debug, Clone)]
pub(crate) struct MakeStalling<M> {
    inner: M,
    stalled: Option<PeerId>,
}

impl<M> MakeStalling<M> {
    /// `inner`, except for `stalled` (none: `inner` for everyone).
    pub(crate) fn new(inner: M, stalled: Option<PeerId>) -> Self {
        Self { inner, stalled }
    }
}

impl<M> Service<PeerContext> for MakeStalling<M>
where
    M: Service<PeerContext>,
    M::Response: Send + 'static,
    M::Error: Send + 'static,
    M::Future: Send + 'static,
{
    type Response = Either<M::Response, Stalled>;
    type Error = M::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, M::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), M::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, ctx: PeerContext) -> Self::Future {
        if self.stalled == Some(ctx.peer_id) {
            warn!(peer = %ctx.peer_id, "--debug-stall-peer: this peer's requests will never be answered by the handler");
            return Box::pin(std::future::ready(Ok(Either::Right(Stalled))));
        }
        let making = self.inner.call(ctx);
        Box::pin(async move { making.await.map(Either::Left) })
    }
}

/// A handler that never answers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stalled;

impl Service<GreetRequest> for Stalled {
    type Response = GreetResponse;
    type Error = BoxError;
    type Future = Pending<Result<GreetResponse, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: GreetRequest) -> Self::Future {
        pending()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use p2p_protocol::ErrorCode;
    use p2p_service::{Limits, MakeGreeter, stack};
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn the_stalled_peer_is_answered_408_and_the_others_are_served() {
        let stalled = PeerId::random();
        let limits = Limits { request_timeout: Some(Duration::from_millis(50)), ..Limits::default() };
        let make = stack(MakeStalling::new(MakeGreeter::new("hi"), Some(stalled)), limits);
        let addr: p2p_transport::libp2p::Multiaddr = "/ip4/10.0.0.1/udp/1/quic-v1".parse().unwrap();

        let service = make.clone().oneshot(PeerContext::new(stalled, addr.clone())).await.unwrap();
        let answer = service.oneshot(GreetRequest::new("anyone?")).await.unwrap();
        assert_eq!(answer.unwrap_err().code, ErrorCode::TIMEOUT);

        let service = make.oneshot(PeerContext::new(PeerId::random(), addr)).await.unwrap();
        let answer = service.oneshot(GreetRequest::new("hello")).await.unwrap();
        assert_eq!(answer.unwrap().message, "hi (you said: hello)");
    }
}
