//! Calling a peer's service, for 1.0.0 and 2.0.0 alike: whatever the user's
//! code does (fail, panic), the requester gets an answer.

use std::convert::Infallible;
use std::future::{Future, ready};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use futures::future::Either;
use libp2p::PeerId;
use p2p_protocol::{ErrorCode, Protocol, RemoteError};
use p2p_service::{BoxError, PeerContext};
use tokio::sync::OnceCell;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};
use tracing::{debug, warn};

/// The per-peer inbound service of protocol `P`, type-erased: the very
/// `p2p_service::PeerService` the default stack makes.
pub(crate) type PeerService<P> =
    p2p_service::PeerService<<P as Protocol>::Request, <P as Protocol>::Response>;

/// What a protocol's service answers.
pub(crate) type Answer<P> = Result<<P as Protocol>::Response, RemoteError>;

/// The user's `MakeService<PeerContext>` for protocol `P`, type-erased.
pub(crate) type MakePeerService<P> =
    Arc<dyn Fn(PeerContext) -> BoxFuture<'static, Result<PeerService<P>, BoxError>> + Send + Sync>;

/// `service`, type-erased: boxed once, here (each box is an allocation per
/// request, for its clone and its future). The refusals it answers are
/// reported by the stack itself, to the `FaultReporter` of the
/// `PeerContext` it was made with (`gate::Refusals::fault_reporter`), and
/// only those the peer caused: a wire code alone cannot say (a 503 may be
/// the node's overload), so none is counted here.
pub(crate) fn erased<P: Protocol, S>(service: S) -> PeerService<P>
where
    S: tower::Service<P::Request, Response = Answer<P>, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    BoxCloneSyncService::new(service)
}

/// A peer's service, made on its first request (either name) and dropped
/// with the connection; every request on the connection shares it.
pub(crate) type ServiceCell<P> = Arc<OnceCell<PeerService<P>>>;

/// The peer's service from `cell`, made with `make` on first use. A
/// `MakeService` that fails or panics is an internal error (answered 500).
pub(crate) async fn peer_service<P: Protocol>(
    cell: &OnceCell<PeerService<P>>,
    make: &MakePeerService<P>,
    ctx: PeerContext,
) -> Result<PeerService<P>, RemoteError> {
    let peer = ctx.peer_id;
    let making = cell.get_or_try_init(|| async {
        match AssertUnwindSafe(make(ctx)).catch_unwind().await {
            Ok(made) => made,
            Err(_) => Err("the MakeService panicked".into()),
        }
    });
    match making.await {
        Ok(service) => Ok(service.clone()),
        Err(err) => {
            warn!(%peer, %err, "could not make the peer's service");
            Err(internal())
        }
    }
}

/// `service`'s answer to `request`; a handler that panics is answered 500,
/// like one that fails. The panic stays in its task: the node and the
/// peer's other requests carry on.
pub(crate) async fn answer<P: Protocol>(
    service: PeerService<P>,
    peer: PeerId,
    request: P::Request,
) -> Answer<P> {
    answered::<P>(settle::<P>(service.oneshot(request)).await, &peer)
}

/// Why the node answered a request itself, not the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The handler panicked: 500.
    Panicked,
    /// It outlived the request timeout: 408.
    TimedOut,
}

/// A request's outcome, before it is answered ([`answered`]). The futures
/// that make it carry no peer id (a pipelined stream keeps one per request
/// in flight, moved as it goes): whoever reports the fault knows the peer.
pub(crate) type Outcome<P> = Result<Answer<P>, Fault>;

/// The answer to `outcome`, the fault (if any) logged as `peer`'s.
pub(crate) fn answered<P: Protocol>(outcome: Outcome<P>, peer: &PeerId) -> Answer<P> {
    match outcome {
        Ok(answer) => answer,
        Err(Fault::Panicked) => {
            warn!(%peer, "the handler panicked; answering 500");
            Err(internal())
        }
        Err(Fault::TimedOut) => {
            debug!(%peer, "a request outlived the request timeout; answering 408");
            Err(RemoteError::new(ErrorCode::TIMEOUT, "request timed out"))
        }
    }
}

/// Starts `request` on a pipelined stream's own `service`. When the service
/// is ready at once (the default stack always is: it sheds instead of
/// waiting) it is called in place: no clone of the boxed service, no
/// readiness future, a small future to keep. Otherwise the service, with
/// whatever its readiness holds (a semaphore waiter, say), goes to this
/// request, which waits for readiness as [`answer`] does (boxed: the rare
/// case does not size every request's future), and the stream carries on
/// with a fresh clone of `template`. So does it after a `call` that
/// panicked (answered 500).
pub(crate) fn start<P: Protocol>(
    service: &mut PeerService<P>,
    template: &PeerService<P>,
    request: P::Request,
) -> impl Future<Output = Outcome<P>> + Send + 'static {
    match service.poll_ready(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Ok(())) => match std::panic::catch_unwind(AssertUnwindSafe(|| service.call(request))) {
            Ok(called) => Either::Left(settle::<P>(called)),
            Err(_) => {
                *service = template.clone();
                Either::Right(Either::Left(ready(Err(Fault::Panicked))))
            }
        },
        Poll::Ready(Err(never)) => match never {},
        Poll::Pending => {
            let waiting = std::mem::replace(service, template.clone());
            Either::Right(Either::Right(Box::pin(settle::<P>(waiting.oneshot(request)))))
        }
    }
}

/// A started request's outcome; a panic while it runs is [`Fault::Panicked`].
async fn settle<P: Protocol>(answering: impl Future<Output = Result<Answer<P>, Infallible>>) -> Outcome<P> {
    match AssertUnwindSafe(answering).catch_unwind().await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(never)) => match never {},
        Err(_) => Err(Fault::Panicked),
    }
}

/// A started request ([`start`]), within `timeout` (counted from its first
/// poll that waits): a handler still running then is dropped (whatever it
/// holds with it: an in-flight slot, the stream's room) and the request is
/// answered 408, as the default stack's own timeout would, so that a
/// `MakeService` without one cannot pin a stream. Most answers are ready at
/// once: those arm no timer and read no clock; the timer of the others is
/// boxed, so it does not size every request's future.
pub(crate) async fn within<P: Protocol>(
    timeout: Duration,
    answering: impl Future<Output = Outcome<P>>,
) -> Outcome<P> {
    let mut answering = std::pin::pin!(answering);
    if let Poll::Ready(outcome) = futures::poll!(answering.as_mut()) {
        return outcome;
    }
    Box::pin(tokio::time::timeout(timeout, answering)).await.unwrap_or(Err(Fault::TimedOut))
}

fn internal() -> RemoteError {
    RemoteError::new(ErrorCode::INTERNAL, "internal error")
}
