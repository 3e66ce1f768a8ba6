use std::convert::Infallible;
use std::task::{Context, Poll};

use p2p_protocol::{ErrorCode, RemoteError};
use tower::Service;
use tower::load_shed::error::Overloaded;
use tower::timeout::error::Elapsed;

use libp2p_identity::PeerId;

use super::future::ResponseFuture;
use crate::in_flight::error::PeerOverloaded;
use crate::rate_limit::error::RateLimited;
use crate::{BoxError, FaultReporter, PeerFault};

/// Answers every error of the inner service as a [`RemoteError`] and never fails itself.
///
/// See the [module docs](super) for the mapping.
#[derive(Debug)]
pub struct MapRemoteError<S> {
    inner: S,
    /// The answer to the next call, when the inner service failed to get ready.
    not_ready: Option<RemoteError>,
    /// Where the peer's faults go, if anywhere.
    faults: Option<Faults>,
}

/// The peer served and where its faults are reported.
pub(super) type Faults = (PeerId, FaultReporter);

impl<S> MapRemoteError<S> {
    /// Maps the errors of `inner`.
    pub const fn new(inner: S) -> Self {
        Self { inner, not_ready: None, faults: None }
    }

    /// Also reports the refusals `peer` caused to `reporter` (see [`classify`]).
    pub fn with_fault_reporter(mut self, peer: PeerId, reporter: FaultReporter) -> Self {
        self.faults = Some((peer, reporter));
        self
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone> Clone for MapRemoteError<S> {
    fn clone(&self) -> Self {
        // A clone is not ready yet (the inner clone is not either): it starts clean.
        Self { inner: self.inner.clone(), not_ready: None, faults: self.faults.clone() }
    }
}

impl<S, Request> Service<Request> for MapRemoteError<S>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
{
    type Response = Result<S::Response, RemoteError>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.not_ready.is_some() {
            return Poll::Ready(Ok(()));
        }
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            // Ready to answer: the next call gets this error instead of reaching `inner`.
            Poll::Ready(Err(e)) => {
                self.not_ready = Some(answer(e.into(), self.faults.as_ref()));
                Poll::Ready(Ok(()))
            }
        }
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self.not_ready.take() {
            Some(error) => ResponseFuture::failed(error),
            None => ResponseFuture::called(self.inner.call(request), self.faults.clone()),
        }
    }
}

/// The wire answer for an error of the stack: the specification's code and a fixed message.
///
/// `Elapsed` is 408, `RateLimited` 429, `Overloaded` 503, and a handler's own
/// [`RemoteError`] is returned unchanged. Anything else is 500 with the
/// message "internal error": the error itself is logged (at `warn`), never sent.
///
/// ```
/// use p2p_protocol::ErrorCode;
/// use p2p_service::remote_error::to_remote_error;
/// use tower::timeout::error::Elapsed;
///
/// assert_eq!(to_remote_error(Elapsed::new().into()).code, ErrorCode::TIMEOUT);
/// assert_eq!(to_remote_error("secret".into()).message, "internal error");
/// ```
pub fn to_remote_error(error: BoxError) -> RemoteError {
    classify(error).0
}

/// The wire answer for an error of the stack (as [`to_remote_error`]), and
/// whether the peer caused it: the one place both are decided.
///
/// | error | answer | the peer's fault |
/// | --- | --- | --- |
/// | [`Elapsed`] | 408 "request timed out" | no |
/// | [`RateLimited`] (its own bucket) | 429 "rate limited" | [`PeerFault::RateLimited`] |
/// | [`PeerOverloaded`] (its own in-flight share) | 503 "overloaded" | [`PeerFault::TooManyInFlight`] |
/// | [`Overloaded`] (the node-wide limit, the handler's back-pressure) | 503 "overloaded" | no |
/// | a handler's [`RemoteError`] 400 / 413 | itself | [`PeerFault::BadRequest`] / [`PeerFault::TooLarge`] |
/// | a handler's other [`RemoteError`] | itself | no |
/// | anything else | 500 "internal error" | no |
///
/// ```
/// use p2p_protocol::{ErrorCode, RemoteError};
/// use p2p_service::PeerFault;
/// use p2p_service::in_flight::error::PeerOverloaded;
/// use p2p_service::remote_error::classify;
/// use tower::load_shed::error::Overloaded;
///
/// let overloaded = RemoteError::new(ErrorCode::OVERLOADED, "overloaded");
/// // The same bytes on the wire; only one of them is the peer's doing.
/// assert_eq!(classify(PeerOverloaded::new().into()), (overloaded.clone(), Some(PeerFault::TooManyInFlight)));
/// assert_eq!(classify(Overloaded::new().into()), (overloaded, None));
/// ```
pub fn classify(error: BoxError) -> (RemoteError, Option<PeerFault>) {
    let error = match error.downcast::<RemoteError>() {
        Ok(remote) => {
            let fault = match remote.code {
                ErrorCode::BAD_REQUEST => Some(PeerFault::BadRequest),
                ErrorCode::TOO_LARGE => Some(PeerFault::TooLarge),
                _ => None,
            };
            return (*remote, fault);
        }
        Err(error) => error,
    };
    let (code, message, fault) = if error.is::<Elapsed>() {
        (ErrorCode::TIMEOUT, "request timed out", None)
    } else if error.is::<RateLimited>() {
        (ErrorCode::RATE_LIMITED, "rate limited", Some(PeerFault::RateLimited))
    } else if error.is::<PeerOverloaded>() {
        (ErrorCode::OVERLOADED, "overloaded", Some(PeerFault::TooManyInFlight))
    } else if error.is::<Overloaded>() {
        (ErrorCode::OVERLOADED, "overloaded", None)
    } else {
        tracing::warn!(error = %error, "handler failed; answering 500");
        (ErrorCode::INTERNAL, "internal error", None)
    };
    (RemoteError::new(code, message), fault)
}

/// `error`'s wire answer; a fault of the peer is reported to `faults`.
pub(super) fn answer(error: BoxError, faults: Option<&Faults>) -> RemoteError {
    let (remote, fault) = classify(error);
    if let (Some(fault), Some((peer, reporter))) = (fault, faults) {
        reporter.report(*peer, fault);
    }
    remote
}
