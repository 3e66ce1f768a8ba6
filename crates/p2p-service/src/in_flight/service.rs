use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::Semaphore;
use tower::Service;

use super::future::{ResponseFuture, Shed};
use crate::BoxError;

/// Sheds the requests that find no free slot in their service's or the global in-flight limit.
///
/// Clones share both semaphores. See the [module docs](super) for how it answers.
#[derive(Debug, Clone)]
pub struct InFlightLimit<S> {
    inner: S,
    own: Option<Arc<Semaphore>>,
    shared: Option<Arc<Semaphore>>,
}

impl<S> InFlightLimit<S> {
    /// Limits `inner` by the permits of `own` (this service and its clones)
    /// and of `shared` (shared with other services); `None` is no limit.
    pub fn new(inner: S, own: Option<Arc<Semaphore>>, shared: Option<Arc<Semaphore>>) -> Self {
        Self { inner, own, shared }
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

/// A permit from `semaphore` if there is one free; `Some(None)` when there is no limit.
fn try_permit(semaphore: &Option<Arc<Semaphore>>) -> Option<Option<tokio::sync::OwnedSemaphorePermit>> {
    match semaphore {
        None => Some(None),
        Some(semaphore) => Arc::clone(semaphore).try_acquire_owned().ok().map(Some),
    }
}

impl<S, Request> Service<Request> for InFlightLimit<S>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Never wait for a permit here: a full house is answered in `call`.
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The peer's own limit first, so a peer over its share never takes a global slot.
        let Some(own) = try_permit(&self.own) else { return ResponseFuture::shed(Shed::Own) };
        let Some(shared) = try_permit(&self.shared) else { return ResponseFuture::shed(Shed::Shared) };
        ResponseFuture::called(self.inner.call(request), (own, shared))
    }
}
