use std::convert::Infallible;
use std::task::{Context, Poll};

use p2p_protocol::{ErrorCode, RemoteError};
use tower::Service;
use tower::load_shed::error::Overloaded;
use tower::timeout::error::Elapsed;

use super::future::ResponseFuture;
use crate::BoxError;
use crate::rate_limit::error::RateLimited;

/// Answers every error of the inner service as a [`RemoteError`] and never fails itself.
///
/// See the [module docs](super) for the mapping.
#[derive(Debug)]
pub struct MapRemoteError<S> {
    inner: S,
    /// The answer to the next call, when the inner service failed to get ready.
    not_ready: Option<RemoteError>,
}

impl<S> MapRemoteError<S> {
    /// Maps the errors of `inner`.
    pub const fn new(inner: S) -> Self {
        Self { inner, not_ready: None }
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
        Self::new(self.inner.clone())
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
                self.not_ready = Some(to_remote_error(e.into()));
                Poll::Ready(Ok(()))
            }
        }
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self.not_ready.take() {
            Some(error) => ResponseFuture::failed(error),
            None => ResponseFuture::called(self.inner.call(request)),
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
    let error = match error.downcast::<RemoteError>() {
        Ok(remote) => return *remote,
        Err(error) => error,
    };
    let (code, message) = if error.is::<Elapsed>() {
        (ErrorCode::TIMEOUT, "request timed out")
    } else if error.is::<RateLimited>() {
        (ErrorCode::RATE_LIMITED, "rate limited")
    } else if error.is::<Overloaded>() {
        (ErrorCode::OVERLOADED, "overloaded")
    } else {
        tracing::warn!(error = %error, "handler failed; answering 500");
        (ErrorCode::INTERNAL, "internal error")
    };
    RemoteError::new(code, message)
}
