//! The default handler: answers a greeting with the node's own message.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use p2p_protocol::{GreetRequest, GreetResponse};
use tower::Service;

use crate::{BoxError, PeerContext};

/// The default handler of one peer: answers every greeting with the node's own message.
///
/// The answer quotes the request's message and tells the peer the address it
/// was seen at (`observed_addr`, the connection's remote address). It never fails.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use libp2p_identity::PeerId;
/// use p2p_protocol::GreetRequest;
/// use p2p_service::{Greeter, PeerContext};
/// use tower::ServiceExt;
///
/// let ctx = PeerContext::new(PeerId::random(), "/ip4/10.0.0.2/udp/4001/quic-v1".parse().unwrap());
/// let response = Greeter::new(ctx.clone(), "hi").oneshot(GreetRequest::new("hello")).await.unwrap();
/// assert_eq!(response.message, "hi (you said: hello)");
/// assert_eq!(response.observed_addr, ctx.remote_addr);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Greeter {
    ctx: PeerContext,
    message: Arc<str>,
}

impl Greeter {
    /// A greeter serving the peer of `ctx` that answers with `message`.
    pub fn new(ctx: PeerContext, message: impl Into<Arc<str>>) -> Self {
        Self { ctx, message: message.into() }
    }

    /// The context of the peer this greeter serves.
    pub fn context(&self) -> &PeerContext {
        &self.ctx
    }

    /// The node's own message, the first part of every answer.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl Service<GreetRequest> for Greeter {
    type Response = GreetResponse;
    type Error = BoxError;
    type Future = Ready<Result<GreetResponse, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: GreetRequest) -> Self::Future {
        ready(Ok(GreetResponse {
            message: format!("{} (you said: {})", self.message, request.message),
            observed_addr: self.ctx.remote_addr.clone(),
        }))
    }
}

/// The `MakeService<PeerContext>` of [`Greeter`]s: one greeter per peer, all with the same message.
///
/// It is always ready and never fails; cloning it is cheap (the message is shared).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use libp2p_identity::PeerId;
/// use p2p_service::{MakeGreeter, PeerContext};
/// use tower::ServiceExt;
///
/// let ctx = PeerContext::new(PeerId::random(), "/ip4/10.0.0.2/tcp/4001".parse().unwrap());
/// let greeter = MakeGreeter::new("hi").oneshot(ctx.clone()).await.unwrap();
/// assert_eq!(greeter.context(), &ctx);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MakeGreeter {
    message: Arc<str>,
}

impl MakeGreeter {
    /// Makes greeters that answer with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into().into() }
    }
}

impl Service<PeerContext> for MakeGreeter {
    type Response = Greeter;
    type Error = Infallible;
    type Future = Ready<Result<Greeter, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, ctx: PeerContext) -> Self::Future {
        ready(Ok(Greeter { ctx, message: Arc::clone(&self.message) }))
    }
}
