//! Future types

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use p2p_protocol::RemoteError;
use pin_project_lite::pin_project;
use tracing::Span;

pin_project! {
    /// The response future of [`Trace`](super::Trace): the inner response,
    /// polled inside the request's span and logged when ready.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        // When the request came, if the span is enabled (else no clock is read).
        start: Option<Instant>,
        peer: Arc<str>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, span: Span, start: Option<Instant>, peer: Arc<str>) -> Self {
        Self { inner, span, start, peer }
    }
}

/// The code logged for a success (the wire has none; 200 reads naturally next to 408, 429, ...).
const OK_CODE: u16 = 200;

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Result<T, RemoteError>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let output = ready!(this.inner.poll(cx));
        let Some(start) = *this.start else {
            // The span is disabled, and so is (nearly always) its debug event.
            if output.is_err() {
                tracing::warn!(peer = &**this.peer, "service failed");
            }
            return Poll::Ready(output);
        };
        let latency_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        this.span.record("latency_us", latency_us);
        match &output {
            Ok(Ok(_)) => {
                this.span.record("code", OK_CODE);
                tracing::debug!(code = OK_CODE, latency_us, "answered");
            }
            Ok(Err(error)) => {
                this.span.record("code", error.code.as_u16());
                // Debug, not info: a flooding peer earns one answer per request,
                // and must not earn one log line per request too (metrics count them).
                tracing::debug!(
                    peer = &**this.peer,
                    code = error.code.as_u16(),
                    message = %error.message,
                    latency_us,
                    "answered with an error"
                );
            }
            // Only a service that can fail gets here; the default stack cannot.
            Err(_) => tracing::warn!(peer = &**this.peer, latency_us, "service failed"),
        }
        Poll::Ready(output)
    }
}
