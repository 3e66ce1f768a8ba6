use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use libp2p_identity::PeerId;
use p2p_protocol::RemoteError;
use tower::Service;
use tracing::field::Empty;

use super::future::ResponseFuture;

/// Traces each request of one peer in its own span, with the answered code and latency.
///
/// See the [module docs](super) for the span and its fields.
#[derive(Debug, Clone)]
pub struct Trace<S> {
    inner: S,
    /// The peer id as text, shared by the clones of this peer's service.
    peer: Arc<str>,
}

impl<S> Trace<S> {
    /// Traces the requests of `peer` to `inner`.
    pub fn new(inner: S, peer: PeerId) -> Self {
        Self::with_peer_text(inner, peer.to_string().into())
    }

    pub(super) fn with_peer_text(inner: S, peer: Arc<str>) -> Self {
        Self { inner, peer }
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

impl<S, Request, T> Service<Request> for Trace<S>
where
    S: Service<Request, Response = Result<T, RemoteError>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // A debug span: free at the default `info` level (no allocation per
        // request), full context when debugging.
        let span =
            tracing::debug_span!("greet_request", peer = &*self.peer, code = Empty, latency_us = Empty);
        // Read only for the span's fields: a disabled span costs no clock read.
        let start = (!span.is_disabled()).then(Instant::now);
        // The inner `call` runs the limiters synchronously: let them log in the span too.
        let inner = span.in_scope(|| self.inner.call(request));
        ResponseFuture::new(inner, span, start, Arc::clone(&self.peer))
    }
}
