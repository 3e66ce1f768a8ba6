use std::task::{Context, Poll};

use tower::Service;

use super::future::ResponseFuture;
use crate::BoxError;

/// Answers [`Overloaded`](tower::load_shed::error::Overloaded) at once when the inner service is not ready.
///
/// It is always ready itself. See the [module docs](super) for when and why.
#[derive(Debug, Clone)]
pub struct ShedUnready<S> {
    inner: S,
}

impl<S> ShedUnready<S> {
    /// Sheds the requests `inner` is not ready for.
    pub const fn new(inner: S) -> Self {
        Self { inner }
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

impl<S, Request> Service<Request> for ShedUnready<S>
where
    S: Service<Request> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, Request>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Never wait here: readiness is asked in the response future, inside
        // whatever deadline and in-flight slot wrap this service's call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // A clone, so the readiness the future reserves is its own (as the
        // clones of a `ConcurrencyLimit` each hold their own permit).
        ResponseFuture::new(self.inner.clone(), request)
    }
}
