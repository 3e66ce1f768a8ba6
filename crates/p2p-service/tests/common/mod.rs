//! Helpers shared by the stack's tests.
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::future::{pending, ready};
use std::task::Poll;

use libp2p_identity::PeerId;
use p2p_protocol::{ErrorCode, GreetRequest, GreetResponse, GreetResult, RemoteError};
use p2p_service::{BoxError, Limits, MakePeerService, PeerContext, PeerService, stack};
use tokio_test::task::{Spawn, spawn};
use tower::util::Oneshot;
use tower::{Service, ServiceExt, service_fn};

// ----- helpers -----

/// The context of test peer `i`.
pub fn ctx(i: usize) -> PeerContext {
    connection(PeerId::random(), i)
}

/// The context of connection `i` of `peer`.
pub fn connection(peer: PeerId, i: usize) -> PeerContext {
    PeerContext::new(peer, format!("/ip4/10.0.0.{i}/udp/4001/quic-v1").parse().unwrap())
}

/// The service `make` makes for `ctx`, as the transport makes one for a new connection.
pub async fn make_for<M>(make: &mut MakePeerService<M>, ctx: PeerContext) -> PeerService
where
    MakePeerService<M>: Service<PeerContext, Response = PeerService, Error = BoxError>,
{
    make.ready().await.unwrap().call(ctx).await.unwrap()
}

/// Limits with everything switched off, to turn on one at a time.
pub fn no_limits() -> Limits {
    Limits {
        request_timeout: None,
        rate_per_sec: 0,
        rate_burst: 0,
        max_in_flight_per_peer: 0,
        max_in_flight_total: 0,
    }
}

pub fn overloaded() -> GreetResult {
    Err(RemoteError::new(ErrorCode::OVERLOADED, "overloaded"))
}

/// A `MakeService<PeerContext>` whose handlers are all clones of `handler`.
pub fn clones_of<H: Clone + Send + 'static>(
    handler: H,
) -> impl Service<PeerContext, Response = H, Error = Infallible, Future: Send> + Clone + Send + 'static {
    service_fn(move |_: PeerContext| ready(Ok::<_, Infallible>(handler.clone())))
}

/// The services of `n` peers, all made by one `MakePeerService` around clones of `handler`.
pub async fn peers<H>(handler: H, limits: Limits, n: usize) -> Vec<PeerService>
where
    H: Service<GreetRequest, Response = GreetResponse> + Clone + Send + Sync + 'static,
    H::Error: Into<BoxError>,
    H::Future: Send + 'static,
{
    peers_of(clones_of(handler), limits, n).await
}

/// The services of `n` peers, all made by one `MakePeerService` around the handlers `make_handler` makes.
pub async fn peers_of<M, H>(make_handler: M, limits: Limits, n: usize) -> Vec<PeerService>
where
    M: Service<PeerContext, Response = H, Error = Infallible, Future: Send> + Clone + Send + 'static,
    H: Service<GreetRequest, Response = GreetResponse> + Clone + Send + Sync + 'static,
    H::Error: Into<BoxError>,
    H::Future: Send + 'static,
{
    let mut make = stack(make_handler, limits);
    let mut services = Vec::new();
    for i in 0..n {
        services.push(make_for(&mut make, ctx(i)).await);
    }
    services
}

/// A handler that never answers.
pub fn stuck()
-> impl Service<GreetRequest, Response = GreetResponse, Error = BoxError, Future: Send> + Clone + Sync {
    service_fn(|_: GreetRequest| pending::<Result<GreetResponse, BoxError>>())
}

/// A request in flight, polled by hand.
pub type InFlight = Spawn<Oneshot<PeerService, GreetRequest>>;

/// Sends `message` on a fresh clone of `service`, as the transport does (it is called on its first poll).
pub fn send(service: &PeerService, message: &str) -> InFlight {
    spawn(service.clone().oneshot(GreetRequest::new(message)))
}

/// The answer to `request` if it is ready now.
pub fn answer_now(request: &mut InFlight) -> Option<GreetResult> {
    match request.poll() {
        Poll::Ready(Ok(answer)) => Some(answer),
        Poll::Ready(Err(never)) => match never {},
        Poll::Pending => None,
    }
}

/// The answer to a request on `service` that must be answered without waiting.
pub fn ask_now(service: &PeerService, message: &str) -> GreetResult {
    let mut request = spawn(service.clone().oneshot(GreetRequest::new(message)));
    answer_now(&mut request).expect("the stack must answer at once")
}

/// The code of an answer (200 for a response).
pub fn code(answer: &GreetResult) -> u16 {
    answer.as_ref().map_or_else(|e| e.code.as_u16(), |_| 200)
}

pub fn response(message: &str) -> GreetResponse {
    GreetResponse { message: message.into(), observed_addr: "/ip4/10.9.9.9/tcp/1".parse().unwrap() }
}
