use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use tokio::time::Instant;
use tower::Service;

use super::bucket::Bucket;
use super::future::ResponseFuture;
use crate::BoxError;

/// Limits the request rate of one peer with a token bucket shared by all clones.
///
/// See the [module docs](super) for how it answers.
#[derive(Debug, Clone)]
pub struct RateLimit<S> {
    inner: S,
    bucket: Arc<Mutex<Bucket>>,
}

impl<S> RateLimit<S> {
    /// Limits `inner` to `rate_per_sec` requests a second, with bursts of up to `burst`.
    ///
    /// The bucket starts full. A `burst` of 0 is treated as 1; a `rate_per_sec` of 0 disables the limit.
    pub fn new(inner: S, rate_per_sec: u32, burst: u32) -> Self {
        let bucket = Bucket::new(rate_per_sec, burst, Instant::now());
        Self::with_bucket(inner, Arc::new(Mutex::new(bucket)))
    }

    /// Limits `inner` by `bucket`, which other services may share (the default
    /// stack shares one per peer between all the peer's services).
    pub(crate) fn with_bucket(inner: S, bucket: Arc<Mutex<Bucket>>) -> Self {
        Self { inner, bucket }
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

impl<S, Request> Service<Request> for RateLimit<S>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The limiter itself never makes a caller wait: it refuses in `call`.
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // No request-dependent work happens under the lock, and nothing in
        // `try_take` can panic, so a poisoned lock still holds a sound bucket.
        let taken = self.bucket.lock().unwrap_or_else(PoisonError::into_inner).try_take(Instant::now());
        if taken { ResponseFuture::called(self.inner.call(request)) } else { ResponseFuture::refused() }
    }
}
