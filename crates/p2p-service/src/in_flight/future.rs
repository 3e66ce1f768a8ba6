//! Future types

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::sync::OwnedSemaphorePermit;
use tower::load_shed::error::Overloaded;

use super::error::PeerOverloaded;
use crate::BoxError;

pin_project! {
    /// The response future of [`InFlightLimit`](super::InFlightLimit): the
    /// inner service's response, or at once [`PeerOverloaded`] (its own
    /// limit was full) or [`Overloaded`] (the shared one was).
    ///
    /// It holds the request's permits until it completes or is dropped.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        // `None` when the request was shed.
        #[pin]
        inner: Option<F>,
        permits: Permits,
        shed: Shed,
    }
}

/// Which limit shed a request.
#[derive(Debug, Clone, Copy)]
pub(super) enum Shed {
    /// The service's own (the peer's share).
    Own,
    /// The shared one.
    Shared,
}

/// The permits of one request: from its service's semaphore and from the shared one.
pub(super) type Permits = (Option<OwnedSemaphorePermit>, Option<OwnedSemaphorePermit>);

impl<F> ResponseFuture<F> {
    pub(super) fn called(inner: F, permits: Permits) -> Self {
        Self { inner: Some(inner), permits, shed: Shed::Shared }
    }

    pub(super) fn shed(by: Shed) -> Self {
        Self { inner: None, permits: (None, None), shed: by }
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
            None => Poll::Ready(Err(match this.shed {
                Shed::Own => PeerOverloaded::new().into(),
                Shed::Shared => Overloaded::new().into(),
            })),
        }
    }
}
