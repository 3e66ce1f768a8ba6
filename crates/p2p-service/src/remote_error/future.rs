//! Future types

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use p2p_protocol::RemoteError;
use pin_project_lite::pin_project;

use super::service::{Faults, answer};
use crate::BoxError;

pin_project! {
    /// The response future of [`MapRemoteError`](super::MapRemoteError): the
    /// inner response, or its error as a [`RemoteError`].
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    #[derive(Debug)]
    enum State<F> {
        // The inner service was called.
        Called { #[pin] inner: F, faults: Option<Faults> },
        // The inner service failed to get ready: this is the answer.
        Failed { error: Option<RemoteError> },
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn called(inner: F, faults: Option<Faults>) -> Self {
        Self { state: State::Called { inner, faults } }
    }

    pub(super) fn failed(error: RemoteError) -> Self {
        Self { state: State::Failed { error: Some(error) } }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Result<T, RemoteError>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { inner, faults } => {
                Poll::Ready(Ok(ready!(inner.poll(cx)).map_err(|e| answer(e.into(), faults.as_ref()))))
            }
            StateProj::Failed { error } => {
                let error = error.take().expect("ResponseFuture polled after completion");
                Poll::Ready(Ok(Err(error)))
            }
        }
    }
}
