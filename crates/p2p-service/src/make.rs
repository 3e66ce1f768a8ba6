//! The default per-peer stack and the `MakeService<PeerContext>` that builds it.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use p2p_protocol::{GreetRequest, GreetResponse};
use tokio::sync::Semaphore;
use tower::timeout::TimeoutLayer;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder};

use crate::in_flight::InFlightLimitLayer;
use crate::rate_limit::RateLimitLayer;
use crate::remote_error::MapRemoteErrorLayer;
use crate::trace::TraceLayer;
use crate::{BoxError, Limits, PeerContext};

/// The service that answers one peer's requests, as the transport calls it.
///
/// It never fails and answers every request, with a response or a
/// [`RemoteError`](p2p_protocol::RemoteError). The transport clones it once per
/// request and calls the clones concurrently (it is `Sync`, so one can be
/// shared between tasks); all its per-peer state is shared
/// by the clones.
pub type PeerService = BoxCloneSyncService<GreetRequest, p2p_protocol::GreetResult, Infallible>;

/// The `MakeService<PeerContext>` of the default per-peer stack around the handlers `M` makes.
///
/// Each call makes one handler for the peer and wraps it, outermost first, in
/// [`Trace`](crate::trace::Trace) → [`MapRemoteError`](crate::remote_error::MapRemoteError)
/// → [`RateLimit`](crate::rate_limit::RateLimit) →
/// [`InFlightLimit`](crate::in_flight::InFlightLimit) →
/// [`Timeout`](tower::timeout::Timeout) → handler, configured by [`Limits`]:
///
/// - the rate limit comes before the in-flight limit, so a flooding peer is
///   refused before it can take in-flight slots from others;
/// - the timeout sits inside the in-flight limit, so a request's slot is
///   freed at its deadline;
/// - a disabled limit is left out of the stack.
///
/// The rate limit and the per-peer in-flight limit belong to one call (one
/// peer); the global in-flight limit is shared by every peer service this
/// value and its clones make.
#[derive(Debug, Clone)]
pub struct MakePeerService<M> {
    make_handler: M,
    limits: Limits,
    shared_in_flight: Option<Arc<Semaphore>>,
}

impl<M> MakePeerService<M> {
    /// Wraps the handlers `make_handler` makes in the default stack, configured by `limits`.
    pub fn new(make_handler: M, limits: Limits) -> Self {
        let shared_in_flight =
            (limits.max_in_flight_total > 0).then(|| Arc::new(Semaphore::new(limits.max_in_flight_total)));
        Self { make_handler, limits, shared_in_flight }
    }

    /// The limits of the stacks this makes.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// Builds the default per-peer stack around the handlers `make_handler` makes: [`MakePeerService::new`].
///
/// ```
/// use p2p_service::{Limits, MakeGreeter, stack};
///
/// let make_peer_service = stack(MakeGreeter::new("hi"), Limits::default());
/// assert_eq!(make_peer_service.limits().rate_per_sec, 10);
/// ```
pub fn stack<M>(make_handler: M, limits: Limits) -> MakePeerService<M> {
    MakePeerService::new(make_handler, limits)
}

impl<M, H> Service<PeerContext> for MakePeerService<M>
where
    M: Service<PeerContext, Response = H> + Clone + Send + 'static,
    M::Error: Into<BoxError>,
    M::Future: Send,
    H: Service<GreetRequest, Response = GreetResponse> + Clone + Send + Sync + 'static,
    H::Error: Into<BoxError>,
    H::Future: Send + 'static,
{
    type Response = PeerService;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<PeerService, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.make_handler.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, ctx: PeerContext) -> Self::Future {
        let peer = ctx.peer_id;
        let making = self.make_handler.call(ctx);
        let limits = self.limits.clone();
        let shared_in_flight = self.shared_in_flight.clone();
        Box::pin(async move {
            let handler = making.await.map_err(Into::into)?;
            Ok(peer_stack(handler, peer, &limits, shared_in_flight))
        })
    }
}

/// The stack of one peer around `handler`; see [`MakePeerService`].
fn peer_stack<H>(
    handler: H,
    peer: libp2p_identity::PeerId,
    limits: &Limits,
    shared_in_flight: Option<Arc<Semaphore>>,
) -> PeerService
where
    H: Service<GreetRequest, Response = GreetResponse> + Clone + Send + Sync + 'static,
    H::Error: Into<BoxError>,
    H::Future: Send + 'static,
{
    let rate_limit =
        (limits.rate_per_sec > 0).then(|| RateLimitLayer::new(limits.rate_per_sec, limits.rate_burst));
    let in_flight = (limits.max_in_flight_per_peer > 0 || shared_in_flight.is_some()).then(|| {
        let layer = InFlightLimitLayer::new(limits.max_in_flight_per_peer);
        match shared_in_flight {
            Some(shared) => layer.with_shared(shared),
            None => layer,
        }
    });
    let timeout = limits.request_timeout.map(TimeoutLayer::new);
    let service = ServiceBuilder::new()
        .layer(TraceLayer::new(peer))
        .layer(MapRemoteErrorLayer::new())
        .option_layer(rate_limit)
        .option_layer(in_flight)
        .option_layer(timeout)
        // Every layer below the error mapping speaks `BoxError`; so must the handler.
        .map_err(|e: H::Error| -> BoxError { e.into() })
        .service(handler);
    BoxCloneSyncService::new(service)
}
