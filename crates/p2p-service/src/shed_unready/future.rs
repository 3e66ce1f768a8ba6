//! Future types

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use crate::BoxError;

pin_project! {
    /// The response future of [`ShedUnready`](super::ShedUnready): the inner
    /// service's response, or at once the reason it was not called
    /// ([`Overloaded`](tower::load_shed::error::Overloaded), or its readiness error).
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        // `None` when the request was shed.
        #[pin]
        inner: Option<F>,
        // The answer of a shed request, taken when it is given.
        shed: Option<BoxError>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn called(inner: F) -> Self {
        Self { inner: Some(inner), shed: None }
    }

    pub(super) fn shed(error: BoxError) -> Self {
        Self { inner: None, shed: Some(error) }
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
            Some(inner) => Poll::Ready(ready!(inner.poll(cx)).map_err(Into::into)),
            None => Poll::Ready(Err(this.shed.take().expect("ResponseFuture polled after completion"))),
        }
    }
}
