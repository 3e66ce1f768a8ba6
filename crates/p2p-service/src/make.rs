//! The default per-peer stack and the `MakeService<PeerContext>` that builds it.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use libp2p_identity::PeerId;
use p2p_protocol::{GreetRequest, GreetResponse, RemoteError};
use tokio::sync::Semaphore;
use tower::layer::layer_fn;
use tower::timeout::TimeoutLayer;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder};

use crate::in_flight::InFlightLimit;
use crate::peer_state::{PeerState, PeerStates};
use crate::rate_limit::RateLimit;
use crate::remote_error::MapRemoteErrorLayer;
use crate::shed_unready::ShedUnreadyLayer;
use crate::trace::TraceLayer;
use crate::{BoxError, FaultReporter, Limits, PeerContext};

/// The service that answers one peer's requests on one connection, as the
/// transport calls it: greet's by default, any protocol's as
/// `PeerService<P::Request, P::Response>`.
///
/// It never fails and answers every request, with a response or a
/// [`RemoteError`](p2p_protocol::RemoteError), and never makes its caller
/// wait in `poll_ready`. The transport clones it once per request and calls
/// the clones concurrently (it is `Sync`, so one can be shared between
/// tasks). Its per-peer limits are shared by its clones and by every other
/// service the same [`MakePeerService`] made for the same peer.
pub type PeerService<Req = GreetRequest, Resp = GreetResponse> =
    BoxCloneSyncService<Req, Result<Resp, RemoteError>, Infallible>;

/// How many peers' limit state a [`MakePeerService`] remembers at most, unless
/// [`with_max_remembered_peers`](MakePeerService::with_max_remembered_peers) says otherwise.
///
/// An entry takes some 350 bytes (its `PeerId`, its bucket and in-flight
/// count, the hash table's slack), so a full table about 22 MB.
pub const DEFAULT_MAX_REMEMBERED_PEERS: usize = 65_536;

/// The `MakeService<PeerContext>` of the default per-peer stack around the handlers `M` makes.
///
/// Each call makes one handler for the peer and wraps it, outermost first, in
/// [`Trace`](crate::trace::Trace) → [`MapRemoteError`](crate::remote_error::MapRemoteError)
/// → [`RateLimit`](crate::rate_limit::RateLimit) →
/// [`InFlightLimit`](crate::in_flight::InFlightLimit) →
/// [`Timeout`](tower::timeout::Timeout) →
/// [`ShedUnready`](crate::shed_unready::ShedUnready) → handler, configured by [`Limits`]:
///
/// - the rate limit comes before the in-flight limit, so a flooding peer is
///   refused before it can take in-flight slots from others;
/// - the timeout sits inside the in-flight limit, so a request's slot is
///   freed at its deadline;
/// - the handler's readiness is asked last, once the limits have let the
///   request through, and a handler that is not ready is answered 503 at
///   once: nothing waits in `poll_ready`, so the deadline bounds the whole
///   request, readiness and call;
/// - a disabled limit is left out of the stack;
/// - a [`PeerContext`] with a [`FaultReporter`] gets its peer's faults
///   reported (429 from its bucket, 503 from its own in-flight share, 400
///   and 413 from the handler; never a 503 from the node-wide limit or the
///   handler's back-pressure), see [`remote_error::classify`](crate::remote_error::classify).
///
/// # Per-peer state
///
/// The rate limit and the per-peer in-flight limit belong to the peer, not to
/// the service: every service this value and its clones make for the same
/// `PeerId` shares one token bucket and one in-flight count, so the transport
/// may (and should) make one service per connection, each with its own
/// [`PeerContext::remote_addr`]. That state outlives the peer's services: a
/// peer that reconnects finds its bucket as it left it. It is forgotten once
/// no service or request of the peer holds it and its bucket is full again
/// (when a new one would be the same: at most `rate_burst / rate_per_sec`
/// after the peer's last request), and at most
/// [`DEFAULT_MAX_REMEMBERED_PEERS`] peers are remembered (see
/// [`with_max_remembered_peers`](Self::with_max_remembered_peers)). The
/// global in-flight limit is shared by every service this value and its
/// clones make.
///
/// # Any protocol
///
/// `Req` is the request type of the handlers (greet's by default): the same
/// stack serves any protocol's handlers, and one `MakePeerService` per
/// mounted protocol keeps each protocol's limits its own.
#[derive(Debug)]
pub struct MakePeerService<M, Req = GreetRequest> {
    make_handler: M,
    limits: Limits,
    peers: Arc<PeerStates>,
    shared_in_flight: Option<Arc<Semaphore>>,
    _request: PhantomData<fn(Req)>,
}

impl<M: Clone, Req> Clone for MakePeerService<M, Req> {
    fn clone(&self) -> Self {
        Self {
            make_handler: self.make_handler.clone(),
            limits: self.limits.clone(),
            peers: Arc::clone(&self.peers),
            shared_in_flight: self.shared_in_flight.clone(),
            _request: PhantomData,
        }
    }
}

impl<M, Req> MakePeerService<M, Req> {
    /// Wraps the handlers `make_handler` makes in the default stack, configured by `limits`.
    pub fn new(make_handler: M, limits: Limits) -> Self {
        let shared_in_flight =
            (limits.max_in_flight_total > 0).then(|| Arc::new(Semaphore::new(limits.max_in_flight_total)));
        let peers = Arc::new(PeerStates::new(&limits, DEFAULT_MAX_REMEMBERED_PEERS));
        Self { make_handler, limits, peers, shared_in_flight, _request: PhantomData }
    }

    /// Remembers the limit state of at most `max` peers (default: [`DEFAULT_MAX_REMEMBERED_PEERS`]).
    ///
    /// A new peer that finds the table full evicts the idle entries whose
    /// buckets are full soonest, an eighth of the table at a time; entries in
    /// use are never evicted, and a peer that finds no room gets a state shared
    /// with no other service. `0` remembers no peer: every service has limits
    /// of its own. Call it before making services: it starts a new, empty table.
    ///
    /// ```
    /// use p2p_service::{Limits, MakeGreeter, MakePeerService, stack};
    ///
    /// // (The request type, greet's by default, is usually inferred from where the stack goes.)
    /// let make_peer_service: MakePeerService<_> =
    ///     stack(MakeGreeter::new("hi"), Limits::default()).with_max_remembered_peers(1024);
    /// assert_eq!(make_peer_service.max_remembered_peers(), 1024);
    /// ```
    pub fn with_max_remembered_peers(mut self, max: usize) -> Self {
        self.peers = Arc::new(PeerStates::new(&self.limits, max));
        self
    }

    /// How many peers' limit state this remembers at most.
    pub fn max_remembered_peers(&self) -> usize {
        self.peers.capacity()
    }

    /// The limits of the stacks this makes.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// Builds the default per-peer stack around the handlers `make_handler` makes: [`MakePeerService::new`].
///
/// `Req`, the handlers' request type, is inferred from where the stack goes
/// (`NodeBuilder::serve::<P>` wants `P::Request`); alone, name it:
///
/// ```
/// use p2p_service::{Limits, MakeGreeter, MakePeerService, stack};
///
/// let make_peer_service: MakePeerService<_> = stack(MakeGreeter::new("hi"), Limits::default());
/// assert_eq!(make_peer_service.limits().rate_per_sec, 10);
/// ```
pub fn stack<M, Req>(make_handler: M, limits: Limits) -> MakePeerService<M, Req> {
    MakePeerService::new(make_handler, limits)
}

impl<M, H, Req> Service<PeerContext> for MakePeerService<M, Req>
where
    M: Service<PeerContext, Response = H> + Clone + Send + 'static,
    M::Error: Into<BoxError>,
    M::Future: Send,
    H: Service<Req> + Clone + Send + Sync + 'static,
    H::Response: Send + 'static,
    H::Error: Into<BoxError>,
    H::Future: Send + 'static,
    Req: Send + 'static,
{
    type Response = PeerService<Req, H::Response>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.make_handler.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, ctx: PeerContext) -> Self::Future {
        let peer = ctx.peer_id;
        let state = self.peers.state(peer);
        let faults = ctx.fault_reporter().cloned();
        let making = self.make_handler.call(ctx);
        let limits = self.limits.clone();
        let shared_in_flight = self.shared_in_flight.clone();
        Box::pin(async move {
            let handler = making.await.map_err(Into::into)?;
            Ok(peer_stack(handler, peer, &limits, state, shared_in_flight, faults))
        })
    }
}

/// The stack of one peer's service around `handler`, on the peer's shared `state`; see [`MakePeerService`].
fn peer_stack<H, Req>(
    handler: H,
    peer: PeerId,
    limits: &Limits,
    state: PeerState,
    shared_in_flight: Option<Arc<Semaphore>>,
    faults: Option<FaultReporter>,
) -> PeerService<Req, H::Response>
where
    H: Service<Req> + Clone + Send + Sync + 'static,
    H::Response: Send + 'static,
    H::Error: Into<BoxError>,
    H::Future: Send + 'static,
    Req: Send + 'static,
{
    let PeerState { bucket, in_flight } = state;
    let rate_limit =
        bucket.map(|bucket| layer_fn(move |inner| RateLimit::with_bucket(inner, bucket.clone())));
    let in_flight = (in_flight.is_some() || shared_in_flight.is_some()).then(|| {
        layer_fn(move |inner| InFlightLimit::new(inner, in_flight.clone(), shared_in_flight.clone()))
    });
    let timeout = limits.request_timeout.map(TimeoutLayer::new);
    let service = ServiceBuilder::new()
        .layer(TraceLayer::new(peer))
        .layer(match faults {
            Some(reporter) => MapRemoteErrorLayer::new().with_fault_reporter(peer, reporter),
            None => MapRemoteErrorLayer::new(),
        })
        .option_layer(rate_limit)
        .option_layer(in_flight)
        .option_layer(timeout)
        // Innermost, so the limits decide before the handler's readiness is asked;
        // it also speaks `BoxError`, as every layer under the error mapping must.
        .layer(ShedUnreadyLayer::new())
        .service(handler);
    BoxCloneSyncService::new(service)
}
