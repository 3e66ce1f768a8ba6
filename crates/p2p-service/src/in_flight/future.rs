//! Future types

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::sync::OwnedSemaphorePermit;
use tower::load_shed::error::Overloaded;

use crate::BoxError;

pin_project! {
    /// The response future of [`InFlightLimit`](super::InFlightLimit): the
    /// inner service's response, or [`Overloaded`] at once.
    ///
    /// It holds the request's permits until it completes or is dropped.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        // `None` when the request was shed.
        #[pin]
        inner: Option<F>,
        permits: Permits,
    }
}

/// The permits of one request: from its service's semaphore and from the shared one.
pub(super) type Permits = (Option<OwnedSemaphorePermit>, Option<OwnedSemaphorePermit>);

impl<F> ResponseFuture<F> {
    pub(super) fn called(inner: F, permits: Permits) -> Self {
        Self { inner: Some(inner), permits }
    }

    pub(super) fn shed() -> Self {
        Self { inner: None, permits: (None, None) }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.inner.as_pin_mut() {
            Some(inner) => {
                let output = ready!(inner.poll(cx));
                // The request is done: free its slots now, not when the caller drops the future.
                *this.permits = (None, None);
                Poll::Ready(output.map_err(Into::into))
            }
            None => Poll::Ready(Err(Overloaded::new().into())),
        }
    }
}
