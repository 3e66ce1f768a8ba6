//! Your own handler behind the default stack, plus a Tower layer of your own.
//!
//! Two nodes in one process on 127.0.0.1 (mDNS off): `shouter` answers every
//! greeting in capitals, behind p2p-service's default per-peer stack (timeout,
//! rate limit, load shedding, tracing, error mapping) with a concurrency limit
//! of tower's added on top; `caller` greets it through the `Client` service.
//!
//! ```text
//! cargo run -p p2p-transport --example custom_handler
//! ```

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::time::Duration;

use p2p_protocol::{Greet, GreetRequest, GreetResponse};
use p2p_service::{BoxError, Limits, PeerContext, stack};
use p2p_transport::libp2p::multiaddr::Protocol;
use p2p_transport::{NodeBuilder, NodeEvent};
use tower::{ServiceBuilder, ServiceExt, service_fn};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // A handler is any Service<GreetRequest, Response = GreetResponse>; a
    // MakeService<PeerContext> makes one per connection.
    let make_shouter = service_fn(|ctx: PeerContext| {
        let handler = ServiceBuilder::new()
            // Any tower layer fits here, inside the default stack (which
            // answers a 5th request at once with 503: it never queues).
            .concurrency_limit(4)
            .service_fn(move |request: GreetRequest| {
                let observed_addr = ctx.remote_addr.clone();
                async move {
                    Ok::<_, BoxError>(GreetResponse {
                        message: request.message.to_uppercase(),
                        observed_addr,
                    })
                }
            });
        ready(Ok::<_, Infallible>(handler))
    });
    let limits =
        Limits { request_timeout: Some(Duration::from_secs(2)), rate_per_sec: 100, ..Limits::default() };

    let (shouter, mut events) = NodeBuilder::new()
        .mdns(false)
        .listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse()?)
        .build(stack(make_shouter, limits))?;
    let address = loop {
        if let Some(NodeEvent::Listening { address }) = events.recv().await {
            break address.with(Protocol::P2p(shouter.local_peer_id()));
        }
    };

    let (caller, _caller_events) = NodeBuilder::new()
        .mdns(false)
        .listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse()?)
        .build(stack(MakeQuiet, Limits::default()))?;
    let shouter_id = caller.connect(address).await?; // resolves once connected
    let answer = caller.client::<Greet>().oneshot((shouter_id, GreetRequest::new("hello there"))).await?;
    println!("{} (the shouter sees us at {})", answer.message, answer.observed_addr);

    caller.shutdown().await;
    shouter.shutdown().await;
    Ok(())
}

/// The caller answers nobody: a MakeService whose handlers always fail (500).
#[derive(Clone)]
struct MakeQuiet;

impl tower::Service<PeerContext> for MakeQuiet {
    type Response = tower::util::BoxCloneSyncService<GreetRequest, GreetResponse, BoxError>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: PeerContext) -> Self::Future {
        let refuse =
            service_fn(|_: GreetRequest| ready(Err::<GreetResponse, BoxError>("not answering".into())));
        ready(Ok(tower::util::BoxCloneSyncService::new(refuse)))
    }
}
