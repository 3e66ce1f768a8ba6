//! Future types

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use super::error::RateLimited;
use crate::BoxError;

pin_project! {
    /// The response future of [`RateLimit`](super::RateLimit): the inner
    /// service's response, or [`RateLimited`] at once.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        // `None` when the request was refused.
        #[pin]
        inner: Option<F>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn called(inner: F) -> Self {
        Self { inner: Some(inner) }
    }

    pub(super) fn refused() -> Self {
        Self { inner: None }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().inner.as_pin_mut() {
            Some(inner) => Poll::Ready(ready!(inner.poll(cx)).map_err(Into::into)),
            None => Poll::Ready(Err(RateLimited::new().into())),
        }
    }
}
